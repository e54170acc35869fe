/* Snapshots: a private copy of what a prior epoch is computed from, taken while
 * updates go on, so that the O(catalog) work of an epoch needs neither the writer
 * mutex nor the read lock.
 *
 * A snapshot is a "view": an engine struct of its own holding copies of the first
 * n items (their categories and activity), the category tree (parents, members,
 * subtrees), the model parameters and the seed. The model, demand and domain
 * builders take a const engine, so they run on a view exactly as on the engine.
 * The copy is made in chunks under the read lock (a writer waits for one chunk at
 * most); an upsert that moves an item or changes the tree meanwhile bumps the
 * engine's catalog_gen, which the caller compares when it publishes (and then
 * rebuilds under the writer mutex: rare, and correct). Items appended meanwhile
 * have indices >= n and are not part of the view. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "snapshot_internal.h"

/* Items copied per hold of the read lock (about a millisecond). */
#define SNAPSHOT_CHUNK 16384

void sako__snapshot_free(sako_engine *v)
{
    if (!v)
        return;
    for (size_t c = 0; c < v->n_categories; c++) {
        free(v->categories[c].members);
        free(v->categories[c].subtree);
    }
    free(v->categories);
    free(v->items);
    free(v);
}

static int copy_categories(const sako_engine *e, sako_engine *v)
{
    size_t nc = e->n_categories;
    v->categories = calloc(nc ? nc : 1, sizeof *v->categories);
    if (!v->categories)
        return sako__error(SAKO_NOMEM, "out of memory copying %zu categories", nc);
    v->n_categories = v->cap_categories = nc;
    for (size_t c = 0; c < nc; c++) {
        const sako_category_state *src = &e->categories[c];
        sako_category_state *dst = &v->categories[c];
        *dst = *src;
        dst->name = NULL;
        dst->members = malloc((src->n_members ? src->n_members : 1) * sizeof *dst->members);
        dst->subtree = malloc((src->n_subtree ? src->n_subtree : 1) * sizeof *dst->subtree);
        if (!dst->members || !dst->subtree) {
            v->n_categories = c + 1;
            return sako__error(SAKO_NOMEM, "out of memory copying category %lld",
                               (long long)src->id);
        }
        if (src->n_members)
            memcpy(dst->members, src->members, src->n_members * sizeof *dst->members);
        if (src->n_subtree)
            memcpy(dst->subtree, src->subtree, src->n_subtree * sizeof *dst->subtree);
        dst->cap_members = src->n_members;
    }
    return SAKO_OK;
}

int sako__snapshot_catalog(sako_engine *e, size_t n_items, uint64_t n_events, sako_engine **out)
{
    *out = NULL;
    sako_engine *v = calloc(1, sizeof *v);
    if (!v || !(v->items = malloc((n_items ? n_items : 1) * sizeof *v->items))) {
        free(v);
        return sako__error(SAKO_NOMEM, "out of memory copying %zu items", n_items);
    }
    /* Read-only after open: parameters, options, seed. */
    v->opts = e->opts;
    v->params = e->params;
    v->personal_params = e->personal_params;
    v->seed = e->seed;
    v->n_events = n_events;
    v->n_items = v->cap_items = n_items;
    v->store.lock_fd = -1;
    for (size_t at = 0; at < n_items; at += SNAPSHOT_CHUNK) {
        size_t m = n_items - at < SNAPSHOT_CHUNK ? n_items - at : SNAPSHOT_CHUNK;
        pthread_rwlock_rdlock(&e->lock);
        memcpy(v->items + at, e->items + at, m * sizeof *v->items);
        pthread_rwlock_unlock(&e->lock);
    }
    size_t n_active = 0;
    for (size_t i = 0; i < n_items; i++)
        n_active += v->items[i].active;
    v->n_active = n_active;
    pthread_rwlock_rdlock(&e->lock);
    int rc = copy_categories(e, v);
    v->root_mean = e->root_mean;
    pthread_rwlock_unlock(&e->lock);
    if (rc) {
        sako__snapshot_free(v);
        return rc;
    }
    /* A member appended after the first n items is not part of the view. */
    for (size_t c = 0; c < v->n_categories; c++) {
        sako_category_state *cs = &v->categories[c];
        size_t w = 0;
        for (size_t j = 0; j < cs->n_members; j++)
            if (cs->members[j] < n_items)
                cs->members[w++] = cs->members[j];
        cs->n_members = w;
    }
    *out = v;
    return SAKO_OK;
}

/* ------------------------------------------------ the evidence at a log position
 *
 * A background prior refresh needs every item's counts, organic events and basket
 * count as of one batch P, while updates go on changing them. Copy on write: from
 * begin() (under the writer mutex, right after P) a writer saves an item's values
 * before its first change (sako__snapshot_save, under the write lock), and the
 * builder copies every item not saved yet in chunks under the read lock. Either
 * way each item's copy is its value at P. `touched` tells the publisher which
 * items changed since. */

int sako__snapshot_evidence_begin(sako_engine *e, sako_evidence_snap **out)
{
    *out = NULL;
    size_t n = e->n_items;
    sako_evidence_snap *s = calloc(1, sizeof *s);
    if (!s || !(s->counts = calloc(n ? n : 1, sizeof *s->counts)) ||
        !(s->demand = calloc(n ? n : 1, sizeof *s->demand)) ||
        !(s->item_baskets = calloc(n ? n : 1, sizeof *s->item_baskets)) ||
        !(s->copied = calloc(n ? n : 1, 1)) || !(s->touched = calloc(n ? n : 1, 1))) {
        sako__snapshot_evidence_free(s);
        return sako__error(SAKO_NOMEM, "out of memory snapshotting %zu items", n);
    }
    s->n = n;
    s->baskets = e->personal.baskets;
    s->organic_purchases = e->personal.organic_purchases;
    s->decay = e->decay;
    s->personal_decay = e->personal.decay;
    pthread_rwlock_wrlock(&e->lock);
    e->snap = s;
    pthread_rwlock_unlock(&e->lock);
    *out = s;
    return SAKO_OK;
}

static void save_one(const sako_engine *e, sako_evidence_snap *s, size_t i)
{
    s->counts[i] = e->items[i].counts;
    if (i < e->personal.cap_items) {
        memcpy(s->demand[i].organic, e->personal.items[i].organic, sizeof s->demand[i].organic);
        s->item_baskets[i] = e->personal.item_baskets[i];
    }
    s->copied[i] = 1;
}

void sako__snapshot_save(sako_engine *e, uint32_t item)
{
    sako_evidence_snap *s = e->snap;
    if (!s || item >= s->n)
        return;
    if (!s->copied[item])
        save_one(e, s, item);
    s->touched[item] = 1;
}

void sako__snapshot_evidence_copy(sako_engine *e, sako_evidence_snap *s)
{
    for (size_t at = 0; at < s->n; at += SNAPSHOT_CHUNK) {
        size_t end = s->n - at < SNAPSHOT_CHUNK ? s->n : at + SNAPSHOT_CHUNK;
        pthread_rwlock_rdlock(&e->lock);
        for (size_t i = at; i < end; i++)
            if (!s->copied[i])
                save_one(e, s, i);
        pthread_rwlock_unlock(&e->lock);
    }
}

void sako__snapshot_evidence_view(sako_evidence_snap *s, sako_engine *view)
{
    memset(&view->personal, 0, sizeof view->personal);
    view->personal.items = s->demand;
    view->personal.item_baskets = s->item_baskets;
    view->personal.cap_items = s->n;
    view->personal.baskets = s->baskets;
    view->personal.organic_purchases = s->organic_purchases;
    view->personal.decay = s->personal_decay;
    view->decay = s->decay;
    view->decay_epoch_at = s->decay.latest;
    view->decay_ref = sako__decay_ref(s->decay.half_life_ms, s->decay.latest);
    for (size_t i = 0; i < s->n && i < view->n_items; i++)
        view->items[i].counts = s->counts[i];
}

void sako__snapshot_evidence_end(sako_engine *e, sako_evidence_snap *s)
{
    pthread_rwlock_wrlock(&e->lock);
    if (e->snap == s)
        e->snap = NULL;
    pthread_rwlock_unlock(&e->lock);
    sako__snapshot_evidence_free(s);
}

void sako__snapshot_evidence_free(sako_evidence_snap *s)
{
    if (!s)
        return;
    free(s->counts);
    free(s->demand);
    free(s->item_baskets);
    free(s->copied);
    free(s->touched);
    free(s);
}
