/* The catalog: categories (a tree of at most SAKO_MAX_DEPTH levels) and items.
 *
 * Upserts follow one pattern, so that a batch is all or nothing: validate every
 * entry, reserve every byte of memory the change will need, write it to SQLite in
 * one transaction, and only after the commit publish it in memory under the write
 * lock (a step that can no longer fail). Each call stages its batch in a struct
 * and runs these steps as small functions over it; sako_update() (events.c) has
 * the same shape. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "replica_internal.h"
#include "model_internal.h"

/* ------------------------------------------------------------ growth */

static int grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return SAKO_OK;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*ptr, ncap * elem);
    if (!p)
        return sako__error(SAKO_NOMEM, "out of memory growing an array to %zu entries", ncap);
    *ptr = p;
    *cap = ncap;
    return SAKO_OK;
}

int sako__catalog_reserve_items(sako_engine *e, size_t extra)
{
    size_t need = e->n_items + extra;
    if (need > (size_t)UINT32_MAX - 1)
        return sako__error(SAKO_RANGE, "catalog would exceed %u items", UINT32_MAX - 1);
    if (need > e->cap_items) {
        size_t cap = e->cap_items;
        int rc = grow((void **)&e->items, &cap, need, sizeof *e->items);
        if (rc)
            return rc;
        size_t cap2 = e->cap_items;
        rc = grow((void **)&e->posterior, &cap2, need, sizeof *e->posterior);
        if (rc)
            return rc;
        size_t cap3 = e->cap_items;
        rc = grow((void **)&e->item_class, &cap3, need, sizeof *e->item_class);
        if (rc)
            return rc;
        /* The arrays now hold at least `need`; keep the smallest capacity. */
        e->cap_items = cap < cap2 ? cap : cap2;
        if (cap3 < e->cap_items)
            e->cap_items = cap3;
    }
    int rc = sako__personal_reserve_items(&e->personal, need);
    return rc ? rc : sako__idmap_reserve(&e->item_index, extra);
}

int sako__catalog_reserve_members(sako_engine *e, uint32_t category, size_t extra)
{
    if (category == SAKO_NONE)
        return grow((void **)&e->root_members, &e->cap_root_members,
                    e->n_root_members + extra, sizeof(uint32_t));
    sako_category_state *c = &e->categories[category];
    return grow((void **)&c->members, &c->cap_members, c->n_members + extra, sizeof(uint32_t));
}

static void member_add(sako_engine *e, uint32_t item)
{
    sako_item_state *it = &e->items[item];
    if (it->category == SAKO_NONE) {
        it->member_pos = (uint32_t)e->n_root_members;
        e->root_members[e->n_root_members++] = item;
    } else {
        sako_category_state *c = &e->categories[it->category];
        it->member_pos = (uint32_t)c->n_members;
        c->members[c->n_members++] = item;
    }
}

static void member_remove(sako_engine *e, uint32_t item)
{
    sako_item_state *it = &e->items[item];
    uint32_t *list;
    size_t *n;
    if (it->category == SAKO_NONE) {
        list = e->root_members;
        n = &e->n_root_members;
    } else {
        list = e->categories[it->category].members;
        n = &e->categories[it->category].n_members;
    }
    /* Swap with the last member; O(1). */
    uint32_t last = list[--*n];
    list[it->member_pos] = last;
    e->items[last].member_pos = it->member_pos;
}

uint32_t sako__catalog_add_item(sako_engine *e, int64_t id, uint32_t category, int active,
                                int64_t added_at)
{
    uint32_t i = (uint32_t)e->n_items++;
    sako_item_state *it = &e->items[i];
    memset(it, 0, sizeof *it);
    it->id = id;
    it->category = category;
    it->active = (uint8_t)(active != 0);
    it->added_at = added_at;
    e->item_class[i].category = category;
    e->item_class[i].active = it->active;
    it->dirty = 1;
    e->n_dirty_items++;
    sako__idmap_put(&e->item_index, id, i);
    member_add(e, i);
    if (it->active)
        e->n_active++;
    sako__model_update_posterior(e, i);
    sako__domains_item_changed(e, i, SAKO_NONE, 0);
    return i;
}

/* Each category's subtree list: itself and every descendant, for category filters. */
static int rebuild_subtrees(sako_engine *e)
{
    size_t nc = e->n_categories;
    size_t *counts = calloc(nc ? nc : 1, sizeof *counts);
    if (!counts)
        return sako__error(SAKO_NOMEM, "out of memory indexing categories");
    for (size_t c = 0; c < nc; c++)
        for (uint32_t x = (uint32_t)c; x != SAKO_NONE; x = e->categories[x].parent)
            counts[x]++;
    uint32_t **lists = calloc(nc ? nc : 1, sizeof *lists);
    if (!lists) {
        free(counts);
        return sako__error(SAKO_NOMEM, "out of memory indexing categories");
    }
    for (size_t c = 0; c < nc; c++) {
        lists[c] = malloc(counts[c] * sizeof(uint32_t));
        if (!lists[c]) {
            for (size_t j = 0; j < c; j++)
                free(lists[j]);
            free(lists);
            free(counts);
            return sako__error(SAKO_NOMEM, "out of memory indexing categories");
        }
        counts[c] = 0;
    }
    for (size_t c = 0; c < nc; c++)
        for (uint32_t x = (uint32_t)c; x != SAKO_NONE; x = e->categories[x].parent)
            lists[x][counts[x]++] = (uint32_t)c;
    for (size_t c = 0; c < nc; c++) {
        free(e->categories[c].subtree);
        e->categories[c].subtree = lists[c];
        e->categories[c].n_subtree = counts[c];
    }
    free(lists);
    free(counts);
    return SAKO_OK;
}

void sako__catalog_free(sako_engine *e)
{
    for (size_t c = 0; c < e->n_categories; c++) {
        free(e->categories[c].name);
        free(e->categories[c].members);
        free(e->categories[c].subtree);
    }
    free(e->categories);
    free(e->items);
    free(e->posterior);
    free(e->item_class);
    free(e->root_members);
    sako__idmap_free(&e->item_index);
    sako__idmap_free(&e->category_index);
}

/* ------------------------------------------------------------- load */

static int corrupt(const char *what, long long id)
{
    return sako__error(SAKO_CORRUPT, "database damaged: %s (id %lld)", what, id);
}

typedef struct load_state {
    sako_engine *e;
    size_t count;
    int64_t *parent_ids;  /* categories: each one's stored parent id */
} load_state;

static int categories_begin(void *payload, size_t count)
{
    load_state *ls = payload;
    sako_engine *e = ls->e;
    ls->count = count;
    e->categories = calloc(count + 1, sizeof *e->categories);
    ls->parent_ids = malloc((count + 1) * sizeof *ls->parent_ids);
    if (!e->categories || !ls->parent_ids || sako__idmap_reserve(&e->category_index, count))
        return sako__error(SAKO_NOMEM, "out of memory loading %zu categories", count);
    e->cap_categories = count + 1;
    return SAKO_OK;
}

static int category_row(void *payload, const sako_category_row *r)
{
    load_state *ls = payload;
    sako_engine *e = ls->e;
    if (e->n_categories >= ls->count)
        return corrupt("more categories than counted", (long long)r->id);
    sako_category_state *c = &e->categories[e->n_categories];
    c->id = r->id;
    ls->parent_ids[e->n_categories] = r->parent_id;
    c->prior_mean = r->prior_mean;
    c->name = strdup(r->name);
    if (!c->name)
        return sako__error(SAKO_NOMEM, "out of memory loading category names");
    e->n_categories++;
    if (!sako__idmap_valid_id(c->id) || !(c->prior_mean > 0.0 && c->prior_mean < 1.0))
        return corrupt("category row out of range", (long long)c->id);
    sako__idmap_put(&e->category_index, c->id, (uint32_t)(e->n_categories - 1));
    return SAKO_OK;
}

/* Parents resolved once every category is known; the tree must be one. */
static int link_categories(sako_engine *e, const int64_t *parent_ids)
{
    for (size_t c = 0; c < e->n_categories; c++) {
        e->categories[c].parent = parent_ids[c] == 0 ? SAKO_NONE
                                  : sako__idmap_get(&e->category_index, parent_ids[c]);
        if (parent_ids[c] != 0 && e->categories[c].parent == SAKO_NONE)
            return corrupt("category with an unknown parent", (long long)e->categories[c].id);
    }
    for (size_t c = 0; c < e->n_categories; c++) {
        int d = 0;
        for (uint32_t x = (uint32_t)c; x != SAKO_NONE && d <= SAKO_MAX_DEPTH; x = e->categories[x].parent)
            d++;
        if (d > SAKO_MAX_DEPTH)
            return corrupt("category tree has a cycle or is too deep", (long long)e->categories[c].id);
    }
    return rebuild_subtrees(e);
}

static int items_begin(void *payload, size_t count)
{
    load_state *ls = payload;
    ls->count = count;
    return sako__catalog_reserve_items(ls->e, count);
}

static int item_row(void *payload, const sako_item_row *r)
{
    load_state *ls = payload;
    sako_engine *e = ls->e;
    uint32_t c = r->category_id == 0 ? SAKO_NONE : sako__idmap_get(&e->category_index, r->category_id);
    int bad = !sako__idmap_valid_id(r->id) || (r->category_id != 0 && c == SAKO_NONE) ||
              (r->active != 0 && r->active != 1) || e->n_items >= ls->count;
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        bad |= !isfinite(r->counts.n[t]) || r->counts.n[t] < 0.0;
    if (bad)
        return corrupt("item row out of range", (long long)r->id);
    /* Member lists grow by doubling here (amortised O(1)). */
    int rc = sako__catalog_reserve_members(e, c, 1);
    if (rc)
        return rc;
    uint32_t i = sako__catalog_add_item(e, r->id, c, r->active, r->added_at);
    e->items[i].counts = r->counts;
    e->items[i].last_event_at = r->last_event_at;
    e->items[i].dirty = 0; /* as stored */
    e->n_dirty_items--;
    return SAKO_OK;
}

int sako__catalog_load(sako_engine *e)
{
    load_state ls = { e, 0, NULL };
    int rc = sako__store_read_categories(&e->store, categories_begin, category_row, &ls);
    if (rc == SAKO_OK)
        rc = link_categories(e, ls.parent_ids);
    free(ls.parent_ids);
    if (rc == SAKO_OK)
        rc = sako__store_read_items(&e->store, items_begin, item_row, &ls);
    /* A repeated id would have overwritten its map entry: the counts would differ. */
    if (rc == SAKO_OK && e->item_index.count != e->n_items)
        rc = corrupt("an item id appears twice", 0);
    return rc;
}

/* ------------------------------------------------------- categories */

/* 1 when s is well-formed UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF): names travel to JSON and Python, which need valid text. */
static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s++;
        if (c < 0x80)
            continue;
        int extra;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) { extra = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { extra = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { extra = 3; cp = c & 0x07; min = 0x10000; }
        else return 0;
        for (int i = 0; i < extra; i++, s++) {
            if ((*s & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (*s & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
    }
    return 1;
}

/* Depth of category c under a parent map; 0 if the chain loops or is too deep. */
static int chain_depth(const uint32_t *parent, uint32_t c)
{
    int d = 0;
    for (uint32_t x = c; x != SAKO_NONE; x = parent[x])
        if (++d > SAKO_MAX_DEPTH)
            return 0;
    return d;
}

/* A category batch staged: the tree it would make, and what each entry becomes. */
typedef struct category_batch {
    const sako_category *cats;
    size_t n;
    size_t nc;           /* categories before the batch */
    size_t n_new;        /* categories it adds (indices nc .. nc + n_new - 1) */
    uint32_t *parent;    /* the parent map after the batch */
    uint32_t *target;    /* the index each entry maps to */
    int *batch_of;       /* per index: the entry that last set it, or -1 */
    sako_idmap staged;   /* id -> entry */
    char **names;        /* owned copies, moved into the catalog when published */
    double *means;       /* each entry's prior mean */
} category_batch;

static int category_stage(const sako_engine *e, category_batch *b)
{
    size_t total = b->nc + b->n;
    b->parent = malloc(total * sizeof *b->parent);
    b->target = malloc(b->n * sizeof *b->target);
    b->batch_of = malloc(total * sizeof *b->batch_of);
    if (!b->parent || !b->target || !b->batch_of || sako__idmap_reserve(&b->staged, b->n))
        return sako__error(SAKO_NOMEM, "out of memory staging %zu categories", b->n);
    for (size_t c = 0; c < b->nc; c++) {
        b->parent[c] = e->categories[c].parent;
        b->batch_of[c] = -1;
    }
    return SAKO_OK;
}

static int category_check(const sako_category *in, size_t i)
{
    if (!sako__idmap_valid_id(in->id))
        return sako__error(SAKO_INVALID, "category [%zu]: id %lld is out of range [1, 2^53-1]",
                           i, (long long)in->id);
    if (in->parent_id != 0 && !sako__idmap_valid_id(in->parent_id))
        return sako__error(SAKO_INVALID, "category [%zu]: parent_id %lld is out of range",
                           i, (long long)in->parent_id);
    if (in->parent_id == in->id)
        return sako__error(SAKO_INVALID, "category [%zu]: id %lld is its own parent",
                           i, (long long)in->id);
    if (in->name && strlen(in->name) > SAKO_MAX_NAME)
        return sako__error(SAKO_INVALID, "category [%zu]: name longer than %d bytes",
                           i, SAKO_MAX_NAME);
    if (in->name && !valid_utf8((const unsigned char *)in->name))
        return sako__error(SAKO_INVALID, "category [%zu]: name is not valid UTF-8", i);
    return SAKO_OK;
}

/* Entry i into the staged tree: its index, and its parent's (known or earlier in
 * the batch). */
static int category_place(const sako_engine *e, category_batch *b, size_t i)
{
    const sako_category *in = &b->cats[i];
    if (sako__idmap_get(&b->staged, in->id) != SAKO_NONE)
        return sako__error(SAKO_INVALID, "category [%zu]: id %lld appears twice in the batch",
                           i, (long long)in->id);
    uint32_t idx = sako__idmap_get(&e->category_index, in->id);
    if (idx == SAKO_NONE)
        idx = (uint32_t)(b->nc + b->n_new++);
    b->target[i] = idx;
    sako__idmap_put(&b->staged, in->id, (uint32_t)i);
    uint32_t p = SAKO_NONE;
    if (in->parent_id != 0) {
        p = sako__idmap_get(&e->category_index, in->parent_id);
        if (p == SAKO_NONE) {
            uint32_t j = sako__idmap_get(&b->staged, in->parent_id);
            if (j != SAKO_NONE)
                p = b->target[j];
        }
        if (p == SAKO_NONE)
            return sako__error(SAKO_NOTFOUND,
                               "category [%zu]: parent %lld is neither known nor earlier in the batch",
                               i, (long long)in->parent_id);
    }
    b->parent[idx] = p;
    b->batch_of[idx] = (int)i;
    return SAKO_OK;
}

/* The final tree must have no cycle and no chain deeper than SAKO_MAX_DEPTH. A
 * bad chain always passes through an entry of this batch; name the first one. */
static int category_check_tree(const category_batch *b)
{
    for (size_t c = 0; c < b->nc + b->n_new; c++) {
        if (chain_depth(b->parent, (uint32_t)c) != 0)
            continue;
        int culprit = -1, steps = 0;
        for (uint32_t x = (uint32_t)c; x != SAKO_NONE && steps <= 2 * SAKO_MAX_DEPTH + 2;
             x = b->parent[x], steps++)
            if (b->batch_of[x] >= 0) {
                culprit = b->batch_of[x];
                break;
            }
        return sako__error(SAKO_INVALID, "category [%d]: the parent makes a cycle or a chain deeper than %d",
                           culprit, SAKO_MAX_DEPTH);
    }
    return SAKO_OK;
}

static int category_validate(const sako_engine *e, category_batch *b)
{
    int rc;
    for (size_t i = 0; i < b->n; i++)
        if ((rc = category_check(&b->cats[i], i)) || (rc = category_place(e, b, i)))
            return rc;
    return category_check_tree(b);
}

/* Names (copied; NULL keeps an existing category's) and prior means. New
 * categories start at their parent's current mean: what a refresh would give them
 * with no evidence of their own. Parents precede children in the batch. */
static int category_stage_rows(const sako_engine *e, category_batch *b)
{
    b->names = calloc(b->n, sizeof *b->names);
    if (!b->names)
        return sako__error(SAKO_NOMEM, "out of memory copying category names");
    for (size_t i = 0; i < b->n; i++) {
        const char *src = b->cats[i].name ? b->cats[i].name
                          : b->target[i] < b->nc ? e->categories[b->target[i]].name : "";
        b->names[i] = strdup(src ? src : "");
        if (!b->names[i])
            return sako__error(SAKO_NOMEM, "out of memory copying category names");
    }
    b->means = malloc(b->n * sizeof *b->means);
    if (!b->means)
        return sako__error(SAKO_NOMEM, "out of memory staging category priors");
    for (size_t i = 0; i < b->n; i++) {
        uint32_t t = b->target[i], p = b->parent[t];
        b->means[i] = t < b->nc ? e->categories[t].prior_mean
                      : p == SAKO_NONE ? e->root_mean
                      : p < b->nc ? e->categories[p].prior_mean
                      : b->means[b->batch_of[p]];
    }
    return SAKO_OK;
}

/* Every byte the publish step needs. Growing may move e->categories and the
 * category index, which concurrent sako_recommend() calls read under the read
 * lock: hold the write lock while they move (found by tests/check_threads.c under
 * ASan/TSan: heap-use-after-free). */
static int category_reserve(sako_engine *e, category_batch *b)
{
    pthread_rwlock_wrlock(&e->lock);
    int grow_rc = grow((void **)&e->categories, &e->cap_categories, b->nc + b->n_new,
                       sizeof *e->categories) ||
                  sako__idmap_reserve(&e->category_index, b->n_new);
    pthread_rwlock_unlock(&e->lock);
    return grow_rc ? SAKO_NOMEM : category_stage_rows(e, b);
}

static int category_write(sako_engine *e, const category_batch *b, const sako_at *at)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = sako__store_write_categories(&e->store, b->cats, b->names, b->means, b->n)) ||
        (rc = sako__replica_write(e, at))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    return sako__store_commit(&e->store);
}

/* Committed: into memory. Cannot fail (subtree lists that cannot be rebuilt for
 * lack of memory stay as they were: stale but safe). */
static void category_publish(sako_engine *e, category_batch *b)
{
    pthread_rwlock_wrlock(&e->lock);
    int reshaped = b->n_new > 0; /* a rename alone leaves epochs being built valid */
    for (size_t i = 0; i < b->n; i++) {
        uint32_t idx = b->target[i];
        sako_category_state *c = &e->categories[idx];
        if (idx < b->nc && c->parent != b->parent[idx])
            reshaped = 1;
        if (idx >= b->nc) {
            memset(c, 0, sizeof *c);
            c->id = b->cats[i].id;
            c->prior_mean = b->means[i];
            sako__idmap_put(&e->category_index, c->id, idx);
        } else {
            free(c->name);
        }
        c->name = b->names[i];
        b->names[i] = NULL;
        c->parent = b->parent[idx];
    }
    e->n_categories = b->nc + b->n_new;
    rebuild_subtrees(e);
    if (reshaped)
        e->catalog_gen++;
    pthread_rwlock_unlock(&e->lock);
    /* The tree changed shape: every category domain's membership may have. */
    sako__domains_rebuild(e);
}

static void category_batch_free(category_batch *b)
{
    for (size_t i = 0; b->names && i < b->n; i++)
        free(b->names[i]);
    free(b->names);
    free(b->means);
    free(b->parent);
    free(b->target);
    free(b->batch_of);
    sako__idmap_free(&b->staged);
}

static int categories_upsert(sako_engine *e, const sako_category *cats, size_t n, const char *fn,
                             sako_at *at)
{
    int rc = sako__error_check_batch(e, cats, n, fn, "categories");
    if (rc == SAKO_MISUSE || (!at && (rc != SAKO_OK || n == 0)))
        return rc;
    if (sako__replica_enter(e, at, n, &rc))
        return rc;
    category_batch b = { .cats = cats, .n = n, .nc = e->n_categories };
    if (!(rc = category_stage(e, &b)) && !(rc = category_validate(e, &b)) &&
        !(rc = category_reserve(e, &b)) && !(rc = category_write(e, &b, at))) {
        sako__replica_applied(e, at);
        category_publish(e, &b);
    } else if (at) {
        rc = sako__replica_failed(e, at, rc);
    }
    category_batch_free(&b);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}

int sako_categories_upsert(sako_engine *e, const sako_category *cats, size_t n)
{
    return categories_upsert(e, cats, n, "sako_categories_upsert", NULL);
}

/* The shared head of the `_at` calls: arguments the position cannot consume. */
static int at_start(sako_engine *e, int64_t position, int *outcome_out, const char *fn)
{
    if (outcome_out)
        *outcome_out = SAKO_AT_NONE;
    if (!e)
        return sako__error(SAKO_MISUSE, "%s: engine is NULL", fn);
    if (position < 1)
        return sako__error(SAKO_INVALID, "%s: position %lld is not >= 1", fn, (long long)position);
    return SAKO_OK;
}

int sako_categories_upsert_at(sako_engine *e, int64_t position, const sako_category *cats,
                              size_t n, int *outcome_out)
{
    int rc = at_start(e, position, outcome_out, "sako_categories_upsert_at");
    if (rc)
        return rc;
    sako_at at = { position, SAKO_AT_NONE };
    rc = categories_upsert(e, cats, n, "sako_categories_upsert_at", &at);
    if (outcome_out)
        *outcome_out = at.outcome;
    return rc;
}

/* ------------------------------------------------------------ items */

/* An item batch staged: each entry's category and whether it exists. */
typedef struct item_batch {
    const sako_item *items;
    size_t n;
    int64_t now;            /* added_at of entries that give none */
    int replicated;         /* an `_at` batch: added_at must be given */
    uint32_t *cat;          /* category index per entry, SAKO_NONE for the root */
    uint32_t *existing;     /* item index per entry, SAKO_NONE when new */
    size_t n_new;
    size_t *extra_members;  /* per category (the root last): members it gains */
    sako_idmap staged;      /* id -> entry */
} item_batch;

static int item_stage(const sako_engine *e, item_batch *b)
{
    b->cat = malloc(b->n * sizeof *b->cat);
    b->existing = malloc(b->n * sizeof *b->existing);
    b->extra_members = calloc(e->n_categories + 1, sizeof *b->extra_members);
    if (!b->cat || !b->existing || !b->extra_members || sako__idmap_reserve(&b->staged, b->n))
        return sako__error(SAKO_NOMEM, "out of memory staging %zu items", b->n);
    return SAKO_OK;
}

static int item_check(const sako_engine *e, item_batch *b, size_t i)
{
    const sako_item *in = &b->items[i];
    if (!sako__idmap_valid_id(in->id))
        return sako__error(SAKO_INVALID, "item [%zu]: id %lld is out of range [1, 2^53-1]",
                           i, (long long)in->id);
    if (in->active != 0 && in->active != 1)
        return sako__error(SAKO_INVALID, "item [%zu]: active = %d is not 0 or 1", i, in->active);
    if (in->added_at < 0 || in->added_at > SAKO_TIME_MAX)
        return sako__error(SAKO_INVALID, "item [%zu]: added_at %lld is not a unix time in ms",
                           i, (long long)in->added_at);
    if (b->replicated && in->added_at == 0)
        return sako__error(SAKO_INVALID, "item [%zu]: added_at 0 (now) in a replicated batch: "
                           "the publisher gives every item its time", i);
    if (sako__idmap_get(&b->staged, in->id) != SAKO_NONE)
        return sako__error(SAKO_INVALID, "item [%zu]: id %lld appears twice in the batch",
                           i, (long long)in->id);
    sako__idmap_put(&b->staged, in->id, (uint32_t)i);
    b->cat[i] = SAKO_NONE;
    if (in->category_id == 0)
        return SAKO_OK;
    if (!sako__idmap_valid_id(in->category_id))
        return sako__error(SAKO_INVALID, "item [%zu]: category_id %lld is out of range",
                           i, (long long)in->category_id);
    b->cat[i] = sako__idmap_get(&e->category_index, in->category_id);
    if (b->cat[i] == SAKO_NONE)
        return sako__error(SAKO_NOTFOUND, "item [%zu]: unknown category %lld",
                           i, (long long)in->category_id);
    return SAKO_OK;
}

static int item_validate(const sako_engine *e, item_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        int rc = item_check(e, b, i);
        if (rc)
            return rc;
        uint32_t x = sako__idmap_get(&e->item_index, b->items[i].id);
        b->existing[i] = x;
        if (x == SAKO_NONE)
            b->n_new++;
        if (x == SAKO_NONE || e->items[x].category != b->cat[i])
            b->extra_members[b->cat[i] == SAKO_NONE ? e->n_categories : b->cat[i]]++;
    }
    return SAKO_OK;
}

/* Growing may move e->items, e->posterior, the item index and member lists,
 * which concurrent readers use under the read lock: hold the write lock while
 * they move (found by tests/check_threads.c: heap-use-after-free in
 * draw_members after a realloc in sako__catalog_reserve_members). */
static int item_reserve(sako_engine *e, const item_batch *b)
{
    pthread_rwlock_wrlock(&e->lock);
    int rc = sako__catalog_reserve_items(e, b->n_new);
    for (size_t c = 0; c <= e->n_categories && rc == SAKO_OK; c++)
        if (b->extra_members[c])
            rc = sako__catalog_reserve_members(e, c == e->n_categories ? SAKO_NONE : (uint32_t)c,
                                               b->extra_members[c]);
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

static int item_write(sako_engine *e, const item_batch *b, const sako_at *at)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = sako__store_write_items(&e->store, b->items, b->n, b->now)) ||
        (rc = sako__replica_write(e, at))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    return sako__store_commit(&e->store);
}

/* An existing item moved or switched on/off: member lists, posterior, domains. */
static void item_change(sako_engine *e, uint32_t x, uint32_t category, int active)
{
    sako_item_state *it = &e->items[x];
    uint32_t old_category = it->category;
    int was_active = it->active;
    if (it->category != category) {
        member_remove(e, x);
        it->category = category;
        member_add(e, x);
        sako__model_update_posterior(e, x); /* the prior is its new category's */
    }
    if (it->active != active) {
        e->n_active += active ? 1 : (size_t)-1;
        it->active = (uint8_t)active;
    }
    e->item_class[x].category = it->category;
    e->item_class[x].active = it->active;
    if (old_category != it->category || was_active != it->active) {
        sako__domains_item_changed(e, x, old_category, was_active);
        e->catalog_gen++;
    }
}

static void item_publish(sako_engine *e, const item_batch *b)
{
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < b->n; i++) {
        const sako_item *in = &b->items[i];
        if (b->existing[i] == SAKO_NONE)
            sako__catalog_add_item(e, in->id, b->cat[i], in->active,
                                   in->added_at ? in->added_at : b->now);
        else
            item_change(e, b->existing[i], b->cat[i], in->active);
    }
    pthread_rwlock_unlock(&e->lock);
    sako__domains_maintain(e);
}

static void item_batch_free(item_batch *b)
{
    free(b->cat);
    free(b->existing);
    free(b->extra_members);
    sako__idmap_free(&b->staged);
}

static int items_upsert(sako_engine *e, const sako_item *items, size_t n, const char *fn,
                        sako_at *at)
{
    int rc = sako__error_check_batch(e, items, n, fn, "items");
    if (rc == SAKO_MISUSE || (!at && (rc != SAKO_OK || n == 0)))
        return rc;
    if (sako__replica_enter(e, at, n, &rc))
        return rc;
    item_batch b = { .items = items, .n = n, .replicated = at != NULL,
                     .now = at ? 0 : sako__store_now_ms() };
    if (!(rc = item_stage(e, &b)) && !(rc = item_validate(e, &b)) && !(rc = item_reserve(e, &b)) &&
        !(rc = item_write(e, &b, at))) {
        sako__replica_applied(e, at);
        item_publish(e, &b);
        sako__demand_relist(e); /* best effort: the lists only pick candidates */
        sako__error_clear();
    } else if (at) {
        rc = sako__replica_failed(e, at, rc);
    }
    item_batch_free(&b);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}

int sako_items_upsert(sako_engine *e, const sako_item *items, size_t n)
{
    return items_upsert(e, items, n, "sako_items_upsert", NULL);
}

int sako_items_upsert_at(sako_engine *e, int64_t position, const sako_item *items, size_t n,
                         int *outcome_out)
{
    int rc = at_start(e, position, outcome_out, "sako_items_upsert_at");
    if (rc)
        return rc;
    sako_at at = { position, SAKO_AT_NONE };
    rc = items_upsert(e, items, n, "sako_items_upsert_at", &at);
    if (outcome_out)
        *outcome_out = at.outcome;
    return rc;
}
