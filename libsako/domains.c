/* Sampling domains: which pruned samplers (pruned.c) hold which items.
 *
 * The whole catalog is one domain; every category whose subtree holds at least
 * SAKO_DOMAIN_MIN active items is another (smaller categories are brute-forced:
 * at a few hundred items that is as fast). A domain holds the active items of its
 * subtree with a copy of each posterior, so every posterior change must be
 * mirrored here under the same write lock; a query then sees one consistent
 * snapshot, which is what keeps the pruned draw exact.
 *
 * The set is rebuilt whole, outside the lock, at every prior epoch (all posteriors
 * move) and when the category tree changes shape, then swapped in. In between,
 * items are set, added and removed one at a time. If one of those small steps
 * fails for lack of memory, the set is marked broken and queries brute-force until
 * the next rebuild: slower, never wrong. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

void sako__domains_free(sako_domains *d)
{
    if (!d)
        return;
    sako__pruned_free(d->root);
    for (size_t c = 0; c < d->n_categories; c++)
        sako__pruned_free(d->by_category[c]);
    free(d->by_category);
    free(d);
}

/* A fresh sampler over the active items of one category's subtree (SAKO_NONE: the
 * whole catalog), tuned for k. Reads engine state only: the caller holds the
 * writer mutex, so nothing changes underneath, and readers are not blocked. */
static int build_one(const sako_engine *e, const sako_beta *post, uint32_t cat, int k,
                     sako_rng *rng, sako_pruned **out)
{
    sako_pruned *p = NULL;
    int rc = sako__pruned_create(&p);
    if (cat == SAKO_NONE) {
        for (size_t i = 0; i < e->n_items && rc == SAKO_OK; i++)
            if (e->items[i].active)
                rc = sako__pruned_set(p, (uint32_t)i, &post[i]);
    } else {
        const sako_category_state *c = &e->categories[cat];
        for (size_t j = 0; j < c->n_subtree && rc == SAKO_OK; j++) {
            const sako_category_state *sub = &e->categories[c->subtree[j]];
            for (size_t m = 0; m < sub->n_members && rc == SAKO_OK; m++)
                if (e->items[sub->members[m]].active)
                    rc = sako__pruned_set(p, sub->members[m], &post[sub->members[m]]);
        }
    }
    /* The threshold comes from draws of its own stream, never a query's. */
    if (rc == SAKO_OK)
        rc = sako__pruned_retune(p, k, rng);
    if (rc != SAKO_OK) {
        sako__pruned_free(p);
        return sako__error(SAKO_NOMEM, "out of memory building a sampling domain");
    }
    *out = p;
    return SAKO_OK;
}

int sako__domains_build(const sako_engine *e, const sako_beta *post, int k_target,
                        sako_domains **out)
{
    *out = NULL;
    size_t nc = e->n_categories;
    sako_domains *d = calloc(1, sizeof *d);
    size_t *active = calloc(nc ? nc : 1, sizeof *active);
    int rc = SAKO_OK;
    if (!d || !active || !(d->by_category = calloc(nc ? nc : 1, sizeof *d->by_category))) {
        rc = sako__error(SAKO_NOMEM, "out of memory building sampling domains");
        goto fail;
    }
    d->n_categories = nc;
    d->k_target = k_target;
    for (size_t i = 0; i < e->n_items; i++)
        if (e->items[i].active)
            for (uint32_t c = e->items[i].category; c != SAKO_NONE; c = e->categories[c].parent)
                active[c]++;
    sako_rng rng;
    sako__rng_seed(&rng, e->seed ^ 0x7e57ab1eULL ^ (uint64_t)e->n_events);
    if ((rc = build_one(e, post, SAKO_NONE, k_target, &rng, &d->root)))
        goto fail;
    for (size_t c = 0; c < nc; c++)
        if (active[c] >= SAKO_DOMAIN_MIN &&
            (rc = build_one(e, post, (uint32_t)c, k_target, &rng, &d->by_category[c])))
            goto fail;
    free(active);
    *out = d;
    return SAKO_OK;
fail:
    free(active);
    sako__domains_free(d);
    return rc;
}

/* Mirror item i's state (active flag, category, posterior) into every domain on
 * its category chain. `old_category` is where it was (SAKO_NONE for the root or
 * when it did not move); `was_active` whether it was a member. */
void sako__domains_item_changed(sako_engine *e, uint32_t i, uint32_t old_category, int was_active)
{
    sako_domains *d = e->domains;
    if (!d || d->broken)
        return;
    const sako_item_state *it = &e->items[i];
    if (was_active && old_category != it->category)
        for (uint32_t c = old_category; c != SAKO_NONE; c = e->categories[c].parent)
            if (c < d->n_categories && d->by_category[c])
                sako__pruned_remove(d->by_category[c], i);
    int rc = SAKO_OK;
    if (!it->active) {
        sako__pruned_remove(d->root, i);
        for (uint32_t c = it->category; c != SAKO_NONE; c = e->categories[c].parent)
            if (c < d->n_categories && d->by_category[c])
                sako__pruned_remove(d->by_category[c], i);
        return;
    }
    rc = sako__pruned_set(d->root, i, &e->posterior[i]);
    for (uint32_t c = it->category; c != SAKO_NONE && rc == SAKO_OK; c = e->categories[c].parent)
        if (c < d->n_categories && d->by_category[c])
            rc = sako__pruned_set(d->by_category[c], i, &e->posterior[i]);
    if (rc != SAKO_OK)
        d->broken = 1;
}

/* Replace every sampler whose expected candidate count left its band (or that is
 * tuned for a smaller k than queries ask for) by a fresh one. The O(n) builds run
 * outside the lock, readers going on with the old samplers; only the pointer swap
 * takes the write lock. Called by a writer holding the writer mutex, not the lock. */
void sako__domains_maintain(sako_engine *e)
{
    sako_domains *d = e->domains;
    if (!d || d->broken)
        return;
    int want = (int)__atomic_load_n(&e->k_hint, __ATOMIC_RELAXED);
    int k = want > d->k_target ? want : d->k_target;
    int all = k != d->k_target;
    sako_rng rng;
    sako__rng_seed(&rng, e->seed ^ 0x5eed5eedULL ^ (uint64_t)e->n_events);
    for (size_t c = 0; c <= d->n_categories; c++) {
        /* c == n_categories stands for the root. */
        sako_pruned **slot = c == d->n_categories ? &d->root : &d->by_category[c];
        if (!*slot || !(all || sako__pruned_needs_retune(*slot, k)))
            continue;
        sako_pruned *fresh = NULL;
        if (build_one(e, e->posterior, c == d->n_categories ? SAKO_NONE : (uint32_t)c, k, &rng,
                      &fresh) != SAKO_OK) {
            pthread_rwlock_wrlock(&e->lock);
            d->broken = 1;
            pthread_rwlock_unlock(&e->lock);
            sako__error_clear();
            return;
        }
        pthread_rwlock_wrlock(&e->lock);
        sako_pruned *old = *slot;
        *slot = fresh;
        pthread_rwlock_unlock(&e->lock);
        sako__pruned_free(old);
    }
    pthread_rwlock_wrlock(&e->lock);
    d->k_target = k;
    pthread_rwlock_unlock(&e->lock);
}

/* Catalogs up to this size get their samplers before sako_init() returns; larger
 * ones get them from a background thread so that opening stays fast. */
#define SAKO_DOMAIN_SYNC_ITEMS 100000

static void *builder_main(void *arg)
{
    sako_engine *e = arg;
    pthread_mutex_lock(&e->write_mutex);
    sako__domains_rebuild(e);
    pthread_mutex_unlock(&e->write_mutex);
    return NULL;
}

void sako__domains_start(sako_engine *e)
{
    if (e->n_items > SAKO_DOMAIN_SYNC_ITEMS &&
        pthread_create(&e->domains_builder, NULL, builder_main, e) == 0) {
        e->domains_builder_running = 1;
        return;
    }
    sako__domains_rebuild(e);
}

void sako__domains_join(sako_engine *e)
{
    if (e->domains_builder_running)
        pthread_join(e->domains_builder, NULL);
    e->domains_builder_running = 0;
}

/* Build a new set from the current posteriors and swap it in (writer, no lock
 * held: readers go on with the old set). On failure the old set is marked broken. */
void sako__domains_rebuild(sako_engine *e)
{
    sako_domains *fresh = NULL;
    int k = e->domains ? e->domains->k_target : SAKO_DOMAIN_DEFAULT_K;
    int want = (int)__atomic_load_n(&e->k_hint, __ATOMIC_RELAXED);
    if (want > k)
        k = want;
    int rc = sako__domains_build(e, e->posterior, k, &fresh);
    sako_domains *old = NULL;
    pthread_rwlock_wrlock(&e->lock);
    if (rc == SAKO_OK) {
        old = e->domains;
        e->domains = fresh;
    } else if (e->domains) {
        e->domains->broken = 1;
    }
    pthread_rwlock_unlock(&e->lock);
    sako__domains_free(old);
    sako__error_clear();
}
