/* sako_recommend: argument checks, eligibility (active, category subtree, exclude),
 * ordering, determinism, and a statistical differential test of the top k against a
 * brute-force joint Thompson draw. */
#include "check_sako.h"
#include "engine_internal.h"
#include "pruned_internal.h"
#include "sampler_internal.h"

static int rec_has(const sako_rec *r, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].item_id == id)
            return 1;
    return 0;
}

START_TEST(test_recommend_misuse)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_query q = SAKO_QUERY_INIT;
    sako_rec r[20];
    size_t n = 77;
    ck_assert_rc(sako_recommend(e, NULL, r, 20, &n), SAKO_MISUSE);
    ck_assert_rc(sako_recommend(e, &q, r, 20, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_recommend(e, &q, NULL, 20, &n), SAKO_MISUSE);
    /* No output array is fine when nothing can be written. */
    q.k = 0;
    n = 77;
    ck_assert_ok(sako_recommend(e, &q, NULL, 0, &n));
    ck_assert_uint_eq(n, 0);
    sako_close(e);
}
END_TEST

START_TEST(test_recommend_k_and_cap)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    static sako_rec r[SAKO_MAX_K + 1];
    sako_query q = SAKO_QUERY_INIT;
    size_t n;
    q.k = -1;
    ck_assert_rc(sako_recommend(e, &q, r, SAKO_MAX_K, &n), SAKO_INVALID);
    q.k = INT32_MIN;
    ck_assert_rc(sako_recommend(e, &q, r, SAKO_MAX_K, &n), SAKO_INVALID);
    q.k = SAKO_MAX_K + 1;
    ck_assert_rc(sako_recommend(e, &q, r, SAKO_MAX_K + 1, &n), SAKO_RANGE);
    q.k = INT32_MAX;
    ck_assert_rc(sako_recommend(e, &q, r, SIZE_MAX, &n), SAKO_RANGE);
    /* cap < k, checked before writing anything: a one-entry array is enough. */
    sako_rec one[1];
    q.k = 2;
    ck_assert_rc(sako_recommend(e, &q, one, 1, &n), SAKO_RANGE);
    q.k = SAKO_MAX_K;
    ck_assert_rc(sako_recommend(e, &q, one, SAKO_MAX_K - 1, &n), SAKO_RANGE);
    /* k = 0: nothing, OK. */
    q.k = 0;
    n = 5;
    ck_assert_ok(sako_recommend(e, &q, r, SAKO_MAX_K, &n));
    ck_assert_uint_eq(n, 0);
    /* k = SAKO_MAX_K with 14 active items gives all 14. */
    q.k = SAKO_MAX_K;
    ck_assert_ok(sako_recommend(e, &q, r, SAKO_MAX_K, &n));
    ck_assert_uint_eq(n, SK_N_ACTIVE);
    sk_check_recs(r, n);
    /* A larger cap than k is fine, and k bounds the result. */
    q.k = 3;
    ck_assert_ok(sako_recommend(e, &q, r, SAKO_MAX_K + 1, &n));
    ck_assert_uint_eq(n, 3);
    sk_check_recs(r, n);
    q.k = 1;
    ck_assert_ok(sako_recommend(e, &q, one, 1, &n));
    ck_assert_uint_eq(n, 1);
    sako_close(e);
}
END_TEST

/* SAKO_MAX_K results from a catalog bigger than that. */
START_TEST(test_recommend_max_k_full)
{
    sako_engine *e = sk_open_mem(2);
    enum { N = 1500 };
    sako_item *items = malloc(N * sizeof *items);
    for (int i = 0; i < N; i++)
        items[i] = (sako_item){i + 1, 0, 1, 1};
    ck_assert_ok(sako_items_upsert(e, items, N));
    free(items);
    static sako_rec r[SAKO_MAX_K];
    sako_query q = SAKO_QUERY_INIT;
    q.k = SAKO_MAX_K;
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, r, SAKO_MAX_K, &n));
    ck_assert_uint_eq(n, SAKO_MAX_K);
    sk_check_recs(r, n);
    for (size_t i = 0; i < n; i++)
        ck_assert(r[i].item_id >= 1 && r[i].item_id <= N);
    sako_close(e);
}
END_TEST

START_TEST(test_recommend_query_checks)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_rec r[20];
    size_t n;
    sako_query q = SAKO_QUERY_INIT;
    q.version = 0;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    q.version = SAKO_QUERY_VERSION + 1;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    /* user ids: 0 is anonymous, unknown users are fine, out of range is not. */
    static const int64_t bad_users[] = {-1, SAKO_ID_MAX + 1, INT64_MIN};
    for (size_t i = 0; i < 3; i++) {
        q = (sako_query)SAKO_QUERY_INIT;
        q.user_id = bad_users[i];
        ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    }
    q = (sako_query)SAKO_QUERY_INIT;
    q.user_id = SAKO_ID_MAX;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, SK_N_ACTIVE);
    /* categories: unknown -> NOTFOUND, out of range -> INVALID. */
    q = (sako_query)SAKO_QUERY_INIT;
    q.category_id = 999;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_NOTFOUND);
    /* The category is checked before k: k = 0 does not hide an unknown one
     * (issue 12, item 6), with or without an output array. */
    q.k = 0;
    n = 77;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_NOTFOUND);
    ck_assert_uint_eq(n, 0);
    ck_assert_rc(sako_recommend(e, &q, NULL, 0, &n), SAKO_NOTFOUND);
    q.k = 10;
    q.category_id = -1;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    q.category_id = SAKO_ID_MAX + 1;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    /* Too long lists, with a small array: the length is checked first. */
    int64_t one_id = 101;
    q = (sako_query)SAKO_QUERY_INIT;
    q.exclude = &one_id;
    q.n_exclude = SAKO_MAX_EXCLUDE + 1;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_RANGE);
    q.n_exclude = SIZE_MAX;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_RANGE);
    q = (sako_query)SAKO_QUERY_INIT;
    q.recent = &one_id;
    q.n_recent = SAKO_MAX_EXCLUDE + 1;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_RANGE);
    /* Ids in the lists must be valid ids (unknown ones are fine, see below). */
    int64_t bad_ids[] = {101, 0};
    q = (sako_query)SAKO_QUERY_INIT;
    q.exclude = bad_ids;
    q.n_exclude = 2;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    bad_ids[1] = -4;
    q.exclude = NULL, q.n_exclude = 0;
    q.recent = bad_ids;
    q.n_recent = 2;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &n), SAKO_INVALID);
    /* A NULL list with a length is a caller's mistake, refused either way. */
    q = (sako_query)SAKO_QUERY_INIT;
    q.n_exclude = 3;
    int rc = sako_recommend(e, &q, r, 20, &n);
    ck_assert_msg(rc == SAKO_MISUSE || rc == SAKO_INVALID, "NULL exclude: %d", rc);
    /* SAKO_MAX_EXCLUDE itself is fine. */
    int64_t *many = malloc(SAKO_MAX_EXCLUDE * sizeof *many);
    for (int i = 0; i < SAKO_MAX_EXCLUDE; i++)
        many[i] = 100000 + i;
    many[SAKO_MAX_EXCLUDE - 1] = 101;
    q = (sako_query)SAKO_QUERY_INIT;
    q.exclude = many;
    q.n_exclude = SAKO_MAX_EXCLUDE;
    q.recent = many;
    q.n_recent = SAKO_MAX_EXCLUDE;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, SK_N_ACTIVE - 1);
    ck_assert(!rec_has(r, n, 101));
    free(many);
    sako_close(e);
}
END_TEST

START_TEST(test_recommend_empty_catalog)
{
    sako_engine *e = sk_open_mem(1);
    sako_query q = SAKO_QUERY_INIT;
    sako_rec r[20];
    size_t n = 9;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 0);
    /* A category with no items, and one with only inactive items. */
    sako_category c[] = {{1, 0, "empty"}, {2, 0, "inactive only"}};
    ck_assert_ok(sako_categories_upsert(e, c, 2));
    sako_item it = {5, 2, 0, 0};
    ck_assert_ok(sako_items_upsert(e, &it, 1));
    q.category_id = 1;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 0);
    q.category_id = 2;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 0);
    q.category_id = 0;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 0);
    sako_close(e);
}
END_TEST

/* Over many calls: only active items, every active item eventually, valid lists. */
START_TEST(test_recommend_eligibility)
{
    sako_engine *e = sk_open_mem(11);
    sk_catalog(e);
    sako_query q = SAKO_QUERY_INIT;
    q.k = 5;
    sako_rec r[5];
    int seen[SK_N_ACTIVE] = {0};
    for (int call = 0; call < 400; call++) {
        size_t n = 0;
        ck_assert_ok(sako_recommend(e, &q, r, 5, &n));
        ck_assert_uint_eq(n, 5);
        sk_check_recs(r, n);
        for (size_t i = 0; i < n; i++) {
            ck_assert_int_ne(r[i].item_id, SK_INACTIVE_ID);
            int known = 0;
            for (int j = 0; j < SK_N_ACTIVE; j++)
                if (sk_active_ids[j] == r[i].item_id)
                    known = 1, seen[j]++;
            ck_assert_msg(known, "unknown id %" PRId64, r[i].item_id);
        }
    }
    for (int j = 0; j < SK_N_ACTIVE; j++)
        ck_assert_msg(seen[j] > 0, "item %" PRId64 " never recommended", sk_active_ids[j]);
    sako_close(e);
}
END_TEST

/* Deactivating removes an item at once; reactivating brings it back. */
START_TEST(test_recommend_deactivate)
{
    sako_engine *e = sk_open_mem(12);
    sk_catalog(e);
    sako_query q = SAKO_QUERY_INIT;
    q.category_id = 12; /* Milk: 111, 112, 113 */
    sako_rec r[20];
    size_t n;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 3);
    sako_item off = {112, 12, 0, 0};
    ck_assert_ok(sako_items_upsert(e, &off, 1));
    for (int i = 0; i < 50; i++) {
        ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
        ck_assert_uint_eq(n, 2);
        ck_assert(!rec_has(r, n, 112));
    }
    sako_item on = {112, 12, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &on, 1));
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert(rec_has(r, n, 112));
    /* Moving an item out of the category removes it from the filter. */
    sako_item moved = {113, 21, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &moved, 1));
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert(!rec_has(r, n, 113));
    q.category_id = 2;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 5);
    ck_assert(rec_has(r, n, 113));
    sako_close(e);
}
END_TEST

static void expect_set(sako_engine *e, int64_t cat, const int64_t *want, size_t n_want)
{
    sako_query q = SAKO_QUERY_INIT;
    q.category_id = cat;
    q.k = SAKO_MAX_K;
    static sako_rec r[SAKO_MAX_K];
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, r, SAKO_MAX_K, &n));
    sk_check_recs(r, n);
    ck_assert_msg(n == n_want, "category %" PRId64 ": %zu results, want %zu", cat, n, n_want);
    for (size_t i = 0; i < n_want; i++)
        ck_assert_msg(rec_has(r, n, want[i]), "category %" PRId64 ": %" PRId64 " missing", cat,
                      want[i]);
}

/* A category filter covers its subtree: a department includes its aisles and its
 * own items; an aisle only itself. */
START_TEST(test_recommend_category_subtree)
{
    sako_engine *e = sk_open_mem(13);
    sk_catalog(e);
    static const int64_t dairy[] = {101, 102, 103, 104, 105, 111, 112, 113, 150};
    static const int64_t yog[] = {101, 102, 103, 104, 105};
    static const int64_t milk[] = {111, 112, 113};
    static const int64_t produce[] = {201, 202, 203, 204};
    expect_set(e, 1, dairy, 9);
    expect_set(e, 11, yog, 5);
    expect_set(e, 12, milk, 3);
    expect_set(e, 2, produce, 4);
    expect_set(e, 21, produce, 4);
    expect_set(e, 0, sk_active_ids, SK_N_ACTIVE);
    /* Re-parenting an aisle moves its items with it. */
    sako_category move = {12, 2, NULL};
    ck_assert_ok(sako_categories_upsert(e, &move, 1));
    static const int64_t dairy2[] = {101, 102, 103, 104, 105, 150};
    static const int64_t produce2[] = {201, 202, 203, 204, 111, 112, 113};
    expect_set(e, 1, dairy2, 6);
    expect_set(e, 2, produce2, 7);
    /* A new sub-aisle below an aisle (depth 3) is in the department too. */
    sako_category deeper = {121, 12, "Oat milk"};
    ck_assert_ok(sako_categories_upsert(e, &deeper, 1));
    sako_item oat = {1210, 121, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &oat, 1));
    static const int64_t produce3[] = {201, 202, 203, 204, 111, 112, 113, 1210};
    expect_set(e, 2, produce3, 8);
    static const int64_t oat_only[] = {1210};
    expect_set(e, 121, oat_only, 1);
    sako_close(e);
}
END_TEST

START_TEST(test_recommend_exclude)
{
    sako_engine *e = sk_open_mem(14);
    sk_catalog(e);
    sako_query q = SAKO_QUERY_INIT;
    /* Exclude all but 203 (plus unknown and inactive ids, which are ignored). */
    int64_t ex[SK_N_ACTIVE + 3];
    size_t nx = 0;
    for (int i = 0; i < SK_N_ACTIVE; i++)
        if (sk_active_ids[i] != 203)
            ex[nx++] = sk_active_ids[i];
    ex[nx++] = 99999;
    ex[nx++] = SK_INACTIVE_ID;
    ex[nx++] = 101; /* twice */
    q.exclude = ex;
    q.n_exclude = nx;
    sako_rec r[20];
    size_t n;
    for (int i = 0; i < 20; i++) {
        ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(r[0].item_id, 203);
    }
    /* With k smaller than what is left, the excluded ones still never appear. */
    q.n_exclude = 3; /* 101, 102, 103 */
    q.k = 4;
    for (int i = 0; i < 100; i++) {
        ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
        ck_assert_uint_eq(n, 4);
        sk_check_recs(r, n);
        ck_assert(!rec_has(r, n, 101) && !rec_has(r, n, 102) && !rec_has(r, n, 103));
    }
    /* Exclusion together with a category filter. */
    q = (sako_query)SAKO_QUERY_INIT;
    q.category_id = 11;
    int64_t ex2[] = {101, 104};
    q.exclude = ex2;
    q.n_exclude = 2;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert(rec_has(r, n, 102) && rec_has(r, n, 103) && rec_has(r, n, 105));
    sako_close(e);
}
END_TEST

/* Same seed, same state, same calls: identical results; another seed differs. */
START_TEST(test_recommend_deterministic)
{
    sako_engine *a = sk_open_mem(2024), *b = sk_open_mem(2024), *c = sk_open_mem(2025);
    sako_engine *all[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        sk_catalog(all[k]);
        sako_event ev[40];
        size_t n = 0;
        sk_push(ev, &n, 1, 101, SAKO_EVENT_IMPRESSION, 20, 5);
        sk_push(ev, &n, 1, 101, SAKO_EVENT_CLICK, 5, 5);
        sk_push(ev, &n, 1, 202, SAKO_EVENT_IMPRESSION, 15, 5);
        ck_assert_ok(sako_update(all[k], ev, n));
    }
    sako_query q = SAKO_QUERY_INIT;
    q.k = 10;
    int differs = 0;
    for (int call = 0; call < 50; call++) {
        sako_rec ra[10], rb[10], rc[10];
        size_t na, nb, nc;
        memset(ra, 0, sizeof ra), memset(rb, 0, sizeof rb), memset(rc, 0, sizeof rc);
        ck_assert_ok(sako_recommend(a, &q, ra, 10, &na));
        ck_assert_ok(sako_recommend(b, &q, rb, 10, &nb));
        ck_assert_ok(sako_recommend(c, &q, rc, 10, &nc));
        ck_assert_uint_eq(na, nb);
        for (size_t i = 0; i < na; i++) {
            ck_assert_int_eq(ra[i].item_id, rb[i].item_id);
            ck_assert(sk_same_double(ra[i].score, rb[i].score));
            ck_assert_int_eq(ra[i].source, rb[i].source);
        }
        differs += memcmp(ra, rc, sizeof ra) != 0;
    }
    ck_assert_int_gt(differs, 40);
    sako_close(a);
    sako_close(b);
    sako_close(c);
}
END_TEST

/* Successive calls draw afresh: the top item varies, and the scores are draws
 * (not means): an item at Beta(1, 1) gets scores spread over (0, 1). */
START_TEST(test_recommend_scores_are_draws)
{
    sako_options o = sk_opts(3);
    o.prior = SAKO_PRIOR_FLAT;
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_item it = {1, 0, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &it, 1));
    sako_query q = SAKO_QUERY_INIT;
    q.k = 1;
    enum { N = 4000 };
    double s = 0, s2 = 0;
    int below = 0;
    for (int i = 0; i < N; i++) {
        sako_rec r;
        size_t n;
        ck_assert_ok(sako_recommend(e, &q, &r, 1, &n));
        ck_assert_uint_eq(n, 1);
        s += r.score, s2 += r.score * r.score;
        below += r.score < 0.25;
    }
    /* Uniform: mean 1/2 (sd 1/sqrt(12 N)), P(X < 1/4) = 1/4. */
    double z = sk_z(0.001);
    ck_assert_double_eq_tol(s / N, 0.5, z * sqrt(1.0 / 12 / N));
    ck_assert_double_eq_tol((double)below / N, 0.25, z * sqrt(0.25 * 0.75 / N));
    sako_close(e);
}
END_TEST

/* --------------------------------------------------- differential (statistics) */

/* Catalog for the differential test: `n` items with varied posteriors (a few clear
 * leaders, a middle, and a long tail), set up through events. With `cats`, odd
 * items are in aisle 11 and even ones in aisle 12, both under department 1. */
static sako_engine *diff_engine(int n, uint64_t seed, int flat, int cats)
{
    sako_options o = sk_opts(seed);
    o.prior_refresh_events = 0;
    if (flat)
        o.prior = SAKO_PRIOR_FLAT;
    sako_engine *e = sk_open_opts(NULL, &o);
    if (cats) {
        sako_category c[] = {{1, 0, "d"}, {11, 1, "odd"}, {12, 1, "even"}};
        ck_assert_ok(sako_categories_upsert(e, c, 3));
    }
    sako_item *items = malloc((size_t)n * sizeof *items);
    for (int i = 0; i < n; i++)
        items[i] = (sako_item){i + 1, cats ? ((i + 1) % 2 ? 11 : 12) : 0, 1, 1};
    ck_assert_ok(sako_items_upsert(e, items, (size_t)n));
    free(items);
    sako_event *ev = malloc(200000 * sizeof *ev);
    size_t ne = 0;
    sako_rng rng;
    sako__rng_seed(&rng, seed * 31 + 7);
    for (int i = 0; i < n && ne < 190000; i++) {
        /* Impressions 0..60, click rate spread so that means overlap. */
        int imps = (int)(sako__rng_uniform(&rng) * 60);
        double ctr = i < 10 ? 0.3 + 0.03 * i : 0.25 * sako__rng_uniform(&rng);
        sk_push(ev, &ne, 1, i + 1, SAKO_EVENT_IMPRESSION, imps, 1);
        for (int j = 0; j < imps; j++)
            if (sako__rng_uniform(&rng) < ctr)
                ev[ne++] = sk_ev(2, i + 1, SAKO_EVENT_CLICK, 1);
    }
    for (size_t off = 0; off < ne; off += 50000)
        ck_assert_ok(sako_update(e, ev + off, ne - off < 50000 ? ne - off : 50000));
    free(ev);
    /* Category domains are (re)built at a prior epoch: make one. */
    if (cats)
        ck_assert_ok(sako_retrain(e));
    return e;
}

/* Rank-1 identity and top-k membership frequencies of sako_recommend against a
 * Monte-Carlo estimate from independent Beta(alpha, beta) draws of every eligible
 * item (alpha, beta from sako_item_get) and a full selection. Two-sample tests: a
 * chi-square on the rank-1 counts (cells with few expected draws pooled), and a
 * per-item two-proportion z-test on top-k membership, Bonferroni-corrected.
 * cat: 0, or 11 (odd items only); n_excl: the first n_excl eligible ids excluded
 * (the strongest items, so that exclusion matters). */
typedef struct diff_case {
    int n_items, k, calls, mc_draws;
    uint64_t seed;
    int flat;
    int64_t cat;
    int n_excl;
    int expect_pruned; /* the catalog is big enough that the pruned sampler must serve */
    int warm;          /* ask once for this k, then write, so that domains retune for it */
} diff_case;

static int eligible(const diff_case *c, int64_t id)
{
    if (id < 1 || id > c->n_items)
        return 0;
    if (c->cat == 11 && id % 2 == 0)
        return 0;
    int rank = c->cat == 11 ? (int)(id + 1) / 2 : (int)id; /* position among eligible */
    return rank > c->n_excl;
}

static int cmp_dbl(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Two-sample Kolmogorov-Smirnov distance (sorts both samples). */
static double ks2(double *x, size_t n, double *y, size_t m)
{
    qsort(x, n, sizeof *x, cmp_dbl);
    qsort(y, m, sizeof *y, cmp_dbl);
    size_t i = 0, j = 0;
    double d = 0;
    while (i < n && j < m) {
        double v = x[i] < y[j] ? x[i] : y[j];
        while (i < n && x[i] == v)
            i++;
        while (j < m && y[j] == v)
            j++;
        double diff = fabs((double)i / n - (double)j / m);
        if (diff > d)
            d = diff;
    }
    return d;
}

static void differential(const diff_case *cc)
{
    diff_case c_sized = *cc;
    const diff_case *c = &c_sized;
    if (c_sized.n_items < 0)
        c_sized.n_items = 2 * SAKO_DOMAIN_MIN + 1000;
    int n_items = c->n_items, k = c->k;
    sako_engine *e = diff_engine(n_items, c->seed, c->flat, c->cat != 0);
    if (c->warm) {
        sako_query wq = SAKO_QUERY_INIT;
        wq.k = k;
        wq.category_id = c->cat;
        sako_rec *wr = malloc((size_t)k * sizeof *wr);
        size_t wn;
        ck_assert_ok(sako_recommend(e, &wq, wr, (size_t)k, &wn));
        free(wr);
        sako_event ev = sk_ev(3, n_items, SAKO_EVENT_IMPRESSION, 1);
        ck_assert_ok(sako_update(e, &ev, 1));
    }
    sako_beta *post = malloc((size_t)n_items * sizeof *post);
    for (int i = 0; i < n_items; i++) {
        sako_item_info in = sk_info(e, i + 1);
        sako__beta_set(&post[i], in.alpha, in.beta);
    }
    int64_t *ex = malloc(((size_t)c->n_excl + 1) * sizeof *ex);
    int nx = 0;
    for (int64_t id = 1; id <= n_items && nx < c->n_excl; id++)
        if (c->cat != 11 || id % 2 == 1)
            ex[nx++] = id;
    long *lib_first = calloc((size_t)n_items, sizeof(long));
    long *lib_topk = calloc((size_t)n_items, sizeof(long));
    long *mc_first = calloc((size_t)n_items, sizeof(long));
    long *mc_topk = calloc((size_t)n_items, sizeof(long));
    sako_rec *r = malloc((size_t)k * sizeof *r);
    sako_query q = SAKO_QUERY_INIT;
    q.k = k;
    q.category_id = c->cat;
    q.exclude = ex;
    q.n_exclude = (size_t)nx;
    double *lib_v1 = malloc((size_t)c->calls * sizeof(double));
    double *lib_vk = malloc((size_t)c->calls * sizeof(double));
    double *mc_v1 = malloc((size_t)c->mc_draws * sizeof(double));
    double *mc_vk = malloc((size_t)c->mc_draws * sizeof(double));
    int bad = 0;
    for (int call = 0; call < c->calls; call++) {
        size_t n = 0;
        int rc = sako_recommend(e, &q, r, (size_t)k, &n);
        bad += rc != SAKO_OK || n != (size_t)k;
        lib_v1[call] = n > 0 ? r[0].score : -1;
        lib_vk[call] = n > 0 ? r[n - 1].score : -1;
        for (size_t i = 0; i < n; i++) {
            int64_t id = r[i].item_id;
            bad += !eligible(c, id) || (i > 0 && r[i - 1].score < r[i].score);
            if (id >= 1 && id <= n_items) {
                lib_topk[id - 1]++;
                if (i == 0)
                    lib_first[id - 1]++;
            }
        }
    }
    ck_assert_int_eq(bad, 0);
    if (c->expect_pruned) {
        /* White-box: the optimised path is the one under test. */
        sako_domains *d = e->domains;
        ck_assert_ptr_nonnull(d);
        ck_assert(!d->broken);
        sako_pruned *p = c->cat == 0 ? d->root
                         : d->by_category[sako__idmap_get(&e->category_index, c->cat)];
        ck_assert_ptr_nonnull(p);
        ck_assert_msg(sako__pruned_sum_p(p) >= (double)(k + nx),
                      "the pruned sampler was not used (sum p %g)", sako__pruned_sum_p(p));
    }

    /* Reference: a full joint draw, then the k largest by insertion into a sorted list. */
    sako_rng rng;
    sako__rng_seed(&rng, c->seed ^ 0xabcdef);
    int *top = malloc((size_t)k * sizeof *top);
    double *topv = malloc((size_t)k * sizeof *topv);
    for (int d = 0; d < c->mc_draws; d++) {
        int filled = 0;
        for (int i = 0; i < n_items; i++) {
            if (!eligible(c, i + 1))
                continue;
            double x = sako__beta_sample(&post[i], &rng);
            if (filled == k && x <= topv[k - 1])
                continue;
            int j = filled < k ? filled++ : k - 1;
            while (j > 0 && topv[j - 1] < x) {
                topv[j] = topv[j - 1];
                top[j] = top[j - 1];
                j--;
            }
            topv[j] = x;
            top[j] = i;
        }
        for (int j = 0; j < k; j++)
            mc_topk[top[j]]++;
        mc_first[top[0]]++;
        mc_v1[d] = topv[0];
        mc_vk[d] = topv[k - 1];
    }

    /* The values drawn: rank 1 and rank k against the full draw (two-sample KS). */
    double crit_ks = 1.9494746840148158 * sqrt((double)(c->calls + c->mc_draws) /
                                                ((double)c->calls * c->mc_draws));
    double d1 = ks2(lib_v1, (size_t)c->calls, mc_v1, (size_t)c->mc_draws);
    double dk = ks2(lib_vk, (size_t)c->calls, mc_vk, (size_t)c->mc_draws);
    ck_assert_msg(d1 <= crit_ks, "rank-1 scores differ from a full draw: KS %.5f > %.5f", d1, crit_ks);
    ck_assert_msg(dk <= crit_ks, "rank-%d scores differ from a full draw: KS %.5f > %.5f", k, dk,
                  crit_ks);
    free(lib_v1), free(lib_vk), free(mc_v1), free(mc_vk);

    /* Chi-square two-sample test on the rank-1 identity. */
    double n1 = c->calls, n2 = c->mc_draws;
    double chi2 = 0, pool1 = 0, pool2 = 0;
    int df = -1;
    for (int i = 0; i <= n_items; i++) {
        double o1, o2;
        if (i < n_items) {
            o1 = (double)lib_first[i], o2 = (double)mc_first[i];
            double p = (o1 + o2) / (n1 + n2);
            if (p * n1 < 10 || p * n2 < 10) {
                pool1 += o1, pool2 += o2;
                continue;
            }
        } else {
            o1 = pool1, o2 = pool2;
            if ((o1 + o2) / (n1 + n2) * (n1 < n2 ? n1 : n2) < 10)
                continue;
        }
        double p = (o1 + o2) / (n1 + n2);
        chi2 += (o1 - n1 * p) * (o1 - n1 * p) / (n1 * p) + (o2 - n2 * p) * (o2 - n2 * p) / (n2 * p);
        df++;
    }
    ck_assert_msg(df >= 2, "too few cells (%d) for the rank-1 test", df + 1);
    double crit = sk_chi2_crit(df, 0.001);
    ck_assert_msg(chi2 <= crit, "rank-1 frequencies differ from a full draw: chi2 %.1f > %.1f (df %d)",
                  chi2, crit, df);

    /* Top-k membership per item. */
    double z = sk_z(0.001 / n_items);
    int tested = 0;
    for (int i = 0; i < n_items; i++) {
        double p1 = lib_topk[i] / n1, p2 = mc_topk[i] / n2;
        double p = (lib_topk[i] + mc_topk[i]) / (n1 + n2);
        if (p * n1 < 5 || (1 - p) * n1 < 5)
            continue;
        tested++;
        double se = sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
        ck_assert_msg(fabs(p1 - p2) <= z * se,
                      "item %d: in top %d %.4f of calls, %.4f of full draws (z %.2f > %.2f)", i + 1,
                      k, p1, p2, fabs(p1 - p2) / se, z);
    }
    ck_assert_int_ge(tested, k);
    free(topv), free(top), free(r), free(post), free(ex);
    free(lib_first), free(lib_topk), free(mc_first), free(mc_topk);
    sako_close(e);
}

static const diff_case diff_cases[] = {
    /* n, k, calls, mc draws, seed, flat, category, excluded, pruned, warm */
    {30, 5, 20000, 20000, 101, 0, 0, 0, 0, 0},
    {30, 3, 20000, 20000, 202, 1, 0, 0, 0, 0},
    {40, 4, 20000, 20000, 203, 0, 11, 3, 0, 0},
    {3000, 10, 10000, 4000, 303, 0, 0, 0, 1, 0},
    {3000, 10, 10000, 4000, 304, 0, 0, 4, 1, 0},
    {-1, 5, 10000, 3000, 305, 0, 11, 2, 1, 0}, /* -1: big enough for a category domain */
    {3000, 20, 6000, 3000, 306, 1, 0, 0, 1, 0},
    {3000, 10, 6000, 3000, 307, 0, 0, 500, 0, 0}, /* a long exclusion list */
    {3000, 200, 3000, 2000, 308, 0, 0, 0, 1, 1},  /* a large k, after a retune for it */
};

START_TEST(test_differential)
{
    differential(&diff_cases[_i]);
}
END_TEST

Suite *suite_recommend(void)
{
    Suite *s = suite_create("recommend");
    TCase *tc = tcase_create("recommend");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_recommend_misuse);
    tcase_add_test(tc, test_recommend_k_and_cap);
    tcase_add_test(tc, test_recommend_max_k_full);
    tcase_add_test(tc, test_recommend_query_checks);
    tcase_add_test(tc, test_recommend_empty_catalog);
    tcase_add_test(tc, test_recommend_eligibility);
    tcase_add_test(tc, test_recommend_deactivate);
    tcase_add_test(tc, test_recommend_category_subtree);
    tcase_add_test(tc, test_recommend_exclude);
    tcase_add_test(tc, test_recommend_deterministic);
    tcase_add_test(tc, test_recommend_scores_are_draws);
    suite_add_tcase(s, tc);

    tc = tcase_create("differential");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_differential, 0, (int)(sizeof diff_cases / sizeof diff_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}
