/* sako_recommend(): the exact top k of one joint Thompson draw.
 *
 * Large domains (the catalog, big categories) go through their pruned sampler
 * (pruned.c), which draws only the items that can reach the top. Small ones, and
 * any domain whose sampler is not ready for this k, are brute-forced: every
 * eligible item gets one draw from its Beta posterior and a min-heap of size k
 * keeps the best, O(n log k) without sorting the catalog. Both are exact. Working memory comes from a per-engine pool, so a steady stream of
 * requests allocates nothing. Each request draws from its own RNG stream
 * (seed, request number), so a single-threaded run with a fixed seed repeats. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "personal_rank_internal.h"
#include "recommend_internal.h"
#include "topk_internal.h"

/* ------------------------------------------------------------ scratch */

/* A recommend call's private working memory, pooled so the hot path allocates nothing. */
typedef struct sako_scratch {
    struct sako_scratch *next;
    double *heap_score;       /* min-heap of the best candidates so far */
    uint32_t *heap_item;
    uint32_t *excluded;       /* sorted item indices to skip */
    size_t n_excluded;
    sako_pruned_scratch *pruned;
    uint32_t *members;        /* pruned results: k + exclusions */
    double *values;
    sako_rec *population;     /* a personal request's population answer */
    uint32_t *population_items;
    sako_personal_scratch *personal;
} sako_scratch;

static void scratch_destroy(sako_scratch *s)
{
    sako__pruned_scratch_free(s->pruned);
    free(s->members);
    free(s->values);
    free(s->heap_score);
    free(s->heap_item);
    free(s->excluded);
    free(s->population);
    free(s->population_items);
    sako__personal_scratch_free(s->personal);
    free(s);
}

static sako_scratch *scratch_acquire(sako_engine *e)
{
    pthread_mutex_lock(&e->scratch_mutex);
    sako_scratch *s = e->scratch_free;
    if (s)
        e->scratch_free = s->next;
    pthread_mutex_unlock(&e->scratch_mutex);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t most = SAKO_MAX_K + SAKO_MAX_EXCLUDE;
    s->heap_score = malloc(SAKO_MAX_K * sizeof *s->heap_score);
    s->heap_item = malloc(SAKO_MAX_K * sizeof *s->heap_item);
    s->excluded = malloc(SAKO_MAX_EXCLUDE * sizeof *s->excluded);
    s->members = malloc(most * sizeof *s->members);
    s->values = malloc(most * sizeof *s->values);
    s->population = malloc(SAKO_MAX_K * sizeof *s->population);
    s->population_items = malloc(SAKO_MAX_K * sizeof *s->population_items);
    if (!s->heap_score || !s->heap_item || !s->excluded || !s->members || !s->values ||
        !s->population || !s->population_items ||
        sako__pruned_scratch_create(&s->pruned) != SAKO_OK) {
        scratch_destroy(s);
        return NULL;
    }
    return s;
}

static void scratch_release(sako_engine *e, sako_scratch *s)
{
    pthread_mutex_lock(&e->scratch_mutex);
    s->next = e->scratch_free;
    e->scratch_free = s;
    pthread_mutex_unlock(&e->scratch_mutex);
}

void sako__recommend_free_scratch(sako_engine *e)
{
    sako_scratch *s = e->scratch_free;
    while (s) {
        sako_scratch *next = s->next;
        scratch_destroy(s);
        s = next;
    }
    e->scratch_free = NULL;
}

/* --------------------------------------------------------------- heap */

typedef struct topk {
    sako_topk h;
    const uint32_t *excluded;
    size_t n_excluded;
} topk;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static int is_excluded(const topk *h, uint32_t item)
{
    if (h->n_excluded == 0)
        return 0;
    return bsearch(&item, h->excluded, h->n_excluded, sizeof item, cmp_u32) != NULL;
}

static void offer(topk *h, double score, uint32_t item)
{
    if (sako__topk_admits(&h->h, score) && !is_excluded(h, item))
        sako__topk_push(&h->h, score, item);
}

/* -------------------------------------------------------------- draws */

static void draw_members(const sako_engine *e, const uint32_t *members, size_t n, topk *h,
                         sako_rng *rng)
{
    for (size_t j = 0; j < n; j++) {
        uint32_t i = members[j];
        if (e->items[i].active)
            offer(h, sako__beta_sample(&e->posterior[i], rng), i);
    }
}

static void draw_all(const sako_engine *e, topk *h, sako_rng *rng)
{
    for (size_t i = 0; i < e->n_items; i++)
        if (e->items[i].active)
            offer(h, sako__beta_sample(&e->posterior[i], rng), (uint32_t)i);
}

/* The pruned sampler of this request's domain, if it is worth using: it must
 * exist, be intact, and expect at least `want` candidates above its threshold
 * (otherwise its exact completion is O(n) and slower than brute force). */
static sako_pruned *pick_domain(sako_engine *e, uint32_t cat, size_t want)
{
    sako_domains *d = e->domains;
    if (!d || d->broken)
        return NULL;
    sako_pruned *p = cat == SAKO_NONE ? d->root
                     : cat < d->n_categories ? d->by_category[cat] : NULL;
    if (!p)
        return NULL;
    if (want > (size_t)d->k_target) {
        /* Ask the next writer to retune for this k. */
        uint32_t hint = want > 4 * SAKO_MAX_K ? 4 * SAKO_MAX_K : (uint32_t)want;
        uint32_t cur = __atomic_load_n(&e->k_hint, __ATOMIC_RELAXED);
        while (hint > cur &&
               !__atomic_compare_exchange_n(&e->k_hint, &cur, hint, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED))
            ;
    }
    return sako__pruned_sum_p(p) >= (double)want ? p : NULL;
}

static int check_ids(const int64_t *ids, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!sako__idmap_valid_id(ids[i]))
            return sako__error(SAKO_INVALID, "query: %s[%zu] = %lld is out of range [1, 2^53-1]",
                               what, i, (long long)ids[i]);
    return SAKO_OK;
}

static int validate_query(const sako_query *q, size_t cap)
{
    if (q->mode < 0 || q->mode >= SAKO_MODES)
        return sako__error(SAKO_INVALID, "query: mode %d is not a sako_mode", q->mode);
    if (q->time < 0 || q->time > SAKO_TIME_MAX)
        return sako__error(SAKO_INVALID, "query: time %lld is not a unix time in ms", (long long)q->time);
    if (q->k < 0)
        return sako__error(SAKO_INVALID, "query: k = %d is negative", q->k);
    if (q->k > SAKO_MAX_K)
        return sako__error(SAKO_RANGE, "query: k = %d exceeds SAKO_MAX_K = %d", q->k, SAKO_MAX_K);
    if (cap < (size_t)q->k)
        return sako__error(SAKO_RANGE, "query: output capacity %zu is smaller than k = %d", cap, q->k);
    if (q->user_id != 0 && !sako__idmap_valid_id(q->user_id))
        return sako__error(SAKO_INVALID, "query: user_id %lld is out of range", (long long)q->user_id);
    if (q->category_id != 0 && !sako__idmap_valid_id(q->category_id))
        return sako__error(SAKO_INVALID, "query: category_id %lld is out of range",
                           (long long)q->category_id);
    if (q->n_exclude > SAKO_MAX_EXCLUDE || q->n_recent > SAKO_MAX_EXCLUDE)
        return sako__error(SAKO_RANGE, "query: exclude (%zu) or recent (%zu) longer than %d",
                           q->n_exclude, q->n_recent, SAKO_MAX_EXCLUDE);
    if ((!q->exclude && q->n_exclude) || (!q->recent && q->n_recent))
        return sako__error(SAKO_MISUSE, "query: a NULL list with a non-zero length");
    int rc = check_ids(q->exclude, q->n_exclude, "exclude");
    return rc ? rc : check_ids(q->recent, q->n_recent, "recent");
}

static int by_score_desc(const void *a, const void *b)
{
    const sako_rec *x = a, *y = b;
    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->item_id > y->item_id) - (x->item_id < y->item_id);
}

/* The top k of a pruned domain's draw. The top k + |exclude| of the draw hold
 * the top k of the rest. */
static int answer_pruned(const sako_engine *e, sako_pruned *dom, const topk *h, sako_scratch *s,
                         sako_rng *rng, sako_rec *out, size_t *n_out)
{
    size_t got = 0;
    if (sako__pruned_topk(dom, (int)(h->h.cap + h->n_excluded), rng, s->pruned, s->members,
                          s->values, &got))
        return sako__error(SAKO_NOMEM, "out of memory drawing recommendations");
    size_t w = 0;
    for (size_t j = 0; j < got && w < h->h.cap; j++) {
        if (is_excluded(h, s->members[j]))
            continue;
        out[w].item_id = e->items[s->members[j]].id;
        out[w].score = s->values[j];
        out[w].source = SAKO_SOURCE_THOMPSON;
        w++;
    }
    *n_out = w;
    return SAKO_OK;
}

/* The top k by drawing every eligible item (the catalog, or one category's subtree). */
static void answer_brute(const sako_engine *e, uint32_t cat, topk *h, sako_rng *rng,
                         sako_rec *out, size_t *n_out)
{
    if (cat == SAKO_NONE) {
        draw_all(e, h, rng);
    } else {
        const sako_category_state *c = &e->categories[cat];
        for (size_t j = 0; j < c->n_subtree; j++) {
            const sako_category_state *sub = &e->categories[c->subtree[j]];
            draw_members(e, sub->members, sub->n_members, h, rng);
        }
    }
    for (size_t j = 0; j < h->h.n; j++) {
        out[j].item_id = e->items[h->h.id[j]].id;
        out[j].score = h->h.v[j];
        out[j].source = SAKO_SOURCE_THOMPSON;
    }
    *n_out = h->h.n;
}

/* The user's index when the personal engine serves this query, else SAKO_NONE. */
static uint32_t personal_user(const sako_engine *e, const sako_query *q)
{
    if (!e->params.personal || q->user_id == 0)
        return SAKO_NONE;
    uint32_t u = sako__idmap_get(&e->users.index, q->user_id);
    if (u == SAKO_NONE || u >= e->personal.cap_users ||
        e->personal.users[u].n_baskets < e->params.personal_min_baskets)
        return SAKO_NONE;
    return u;
}

/* The population answer first (its exact top k joins the candidates), then the
 * personal draw over the candidates. */
static int answer_personal(const sako_engine *e, sako_pruned *dom, const sako_query *q, uint32_t user,
                           uint32_t cat, topk *h, sako_scratch *s, sako_rng *rng, sako_rec *out,
                           size_t *n_out)
{
    size_t n_pop = 0;
    int rc = SAKO_OK;
    if (q->mode != SAKO_MODE_REPEAT) {
        if (dom)
            rc = answer_pruned(e, dom, h, s, rng, s->population, &n_pop);
        else
            answer_brute(e, cat, h, rng, s->population, &n_pop);
        if (rc)
            return rc;
        for (size_t j = 0; j < n_pop; j++)
            s->population_items[j] = sako__idmap_get(&e->item_index, s->population[j].item_id);
    }
    sako_personal_query pq = { q, user, cat, q->time ? q->time : sako__store_now_ms(),
                               h->excluded, h->n_excluded, s->population_items, n_pop };
    return sako__personal_rank(e, &pq, &s->personal, rng, out, n_out);
}

int sako_recommend(sako_engine *e, const sako_query *q_in, sako_rec *out, size_t cap, size_t *n_out)
{
    if (n_out)
        *n_out = 0;
    if (!e || !q_in || !n_out || (!out && cap > 0))
        return sako__error(SAKO_MISUSE, "sako_recommend: NULL engine, query, output or count");
    if (q_in->version != 1 && q_in->version != SAKO_QUERY_VERSION)
        return sako__error(SAKO_INVALID, "query: version %u is not 1 or %d (use SAKO_QUERY_INIT)",
                           q_in->version, SAKO_QUERY_VERSION);
    /* A version-1 query ends before `mode`: read what it has, default the rest. */
    sako_query qv = SAKO_QUERY_INIT;
    memcpy(&qv, q_in, q_in->version == 1 ? offsetof(sako_query, mode) : sizeof qv);
    const sako_query *q = &qv;
    int rc = validate_query(q, cap);
    if (rc)
        return rc;
    sako__error_clear();

    sako_scratch *s = scratch_acquire(e);
    if (!s)
        return sako__error(SAKO_NOMEM, "out of memory for a request's working memory");
    uint64_t request = __atomic_fetch_add(&e->request_counter, 1, __ATOMIC_RELAXED);
    sako_rng rng;
    sako__rng_seed(&rng, e->seed ^ (request * 0xd1342543de82ef95ULL));

    pthread_rwlock_rdlock(&e->lock);
    uint32_t cat = SAKO_NONE;
    if (q->category_id != 0) {
        cat = sako__idmap_get(&e->category_index, q->category_id);
        if (cat == SAKO_NONE) {
            rc = sako__error(SAKO_NOTFOUND, "query: unknown category %lld", (long long)q->category_id);
            goto done;
        }
    }
    if (q->k == 0)
        goto done;
    topk h = { { s->heap_score, s->heap_item, 0, (size_t)q->k }, s->excluded, 0 };
    for (size_t j = 0; j < q->n_exclude; j++) {
        uint32_t x = sako__idmap_get(&e->item_index, q->exclude[j]);
        if (x != SAKO_NONE)
            s->excluded[h.n_excluded++] = x;
    }
    if (h.n_excluded > 1)
        qsort(s->excluded, h.n_excluded, sizeof *s->excluded, cmp_u32);

    sako_pruned *dom = pick_domain(e, cat, h.h.cap + h.n_excluded);
    uint32_t user = personal_user(e, q);
    if (user != SAKO_NONE)
        rc = answer_personal(e, dom, q, user, cat, &h, s, &rng, out, n_out);
    else if (q->mode == SAKO_MODE_REPEAT)
        *n_out = 0; /* nothing bought before: an empty shelf */
    else if (dom)
        rc = answer_pruned(e, dom, &h, s, &rng, out, n_out);
    else
        answer_brute(e, cat, &h, &rng, out, n_out);
done:
    pthread_rwlock_unlock(&e->lock);
    scratch_release(e, s);
    if (rc == SAKO_OK && *n_out > 1)
        qsort(out, *n_out, sizeof *out, by_score_desc);
    return rc;
}
