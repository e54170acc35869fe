/* sako_retrain: the model rebuilt from the log equals the online model after a prior
 * refresh, bit for bit; the evidence rebuilt from the log equals the online counts
 * exactly; the priors are the documented function of them. */
#include <sqlite3.h>

#include "check_sako.h"
#include "sampler_internal.h"

enum { RT_ITEMS = 80 };

/* Departments 1, 2; aisles 11, 12 under 1, 21 under 2; a deep aisle 111 under 11;
 * a department 3 with no items; items spread over all of them and the root. */
static const int64_t rt_cats[] = {1, 2, 3, 11, 12, 21, 111};
#define RT_N_CATS (sizeof rt_cats / sizeof rt_cats[0])

static void rt_catalog(sako_engine *e)
{
    sako_category c[] = {{1, 0, "d1"},   {2, 0, "d2"},   {3, 0, "d3 (empty)"}, {11, 1, "a11"},
                         {12, 1, "a12"}, {21, 2, "a21"}, {111, 11, "a111"}};
    ck_assert_ok(sako_categories_upsert(e, c, RT_N_CATS));
    static const int64_t homes[] = {0, 1, 2, 11, 12, 21, 111};
    sako_item items[RT_ITEMS];
    for (int i = 0; i < RT_ITEMS; i++)
        items[i] = (sako_item){i + 1, homes[i % 7], 1, 1};
    ck_assert_ok(sako_items_upsert(e, items, RT_ITEMS));
}

/* Batch b of a fixed-seed workload; the true rate depends on the item's home. */
static size_t rt_batch(int b, sako_event *ev)
{
    sako_rng r;
    sako__rng_seed(&r, 500 + (uint64_t)b);
    size_t n = 50 + (size_t)(sako__rng_uniform(&r) * 150);
    for (size_t i = 0; i < n; i++) {
        int64_t item = 1 + (int64_t)(sako__rng_uniform(&r) * RT_ITEMS);
        if (item > RT_ITEMS)
            item = RT_ITEMS;
        double rate = 0.02 + 0.06 * (double)((item - 1) % 7);
        double u = sako__rng_uniform(&r);
        int type = u < rate ? SAKO_EVENT_CLICK : u < rate * 1.3 ? SAKO_EVENT_CART
                   : u < rate * 1.4 ? SAKO_EVENT_PURCHASE : SAKO_EVENT_IMPRESSION;
        ev[i] = sk_ev(1 + (int64_t)(sako__rng_uniform(&r) * 25), item, type, 100 + b);
    }
    return n;
}

static void rt_run(sako_engine *e, int from, int to)
{
    sako_event ev[200];
    for (int b = from; b < to; b++)
        ck_assert_ok(sako_update(e, ev, rt_batch(b, ev)));
}

static sako_engine *rt_engine(uint64_t refresh, int prior)
{
    sako_options o = sk_opts(9);
    o.prior_refresh_events = refresh;
    o.prior = prior;
    sako_engine *e = sk_open_opts(NULL, &o);
    rt_catalog(e);
    return e;
}

/* In memory (_i = 0) and on a file (_i = 1: the retrain reads the log on a second
 * connection and scores a holdout, with nothing in it). */
START_TEST(test_retrain_empty_and_versions)
{
    char path[512] = "";
    sako_engine *e;
    if (_i) {
        sk_tmp_path(path, sizeof path, "retrain-empty");
        sako_options o = sk_opts(1);
        e = sk_open_opts(path, &o);
    } else {
        e = sk_open_mem(1);
    }
    ck_assert_int_eq(sk_stats(e).model_version, 0);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(sk_stats(e).model_version, 1);
    ck_assert_str_eq(sako_errmsg(), "");
    sk_catalog(e);
    ck_assert_ok(sako_retrain(e));
    ck_assert_ok(sako_retrain(e));
    sako_stats st = sk_stats(e);
    ck_assert_int_eq(st.model_version, 3);
    ck_assert_uint_eq(st.n_events, 0);
    /* Without evidence every prior is the root's, and it is 1/2. */
    double m;
    ck_assert_ok(sako_category_prior(e, 0, &m));
    ck_assert_double_eq(m, 0.5);
    ck_assert_ok(sako_category_prior(e, 21, &m));
    ck_assert_double_eq(m, 0.5);
    ck_assert_rc(sako_retrain(NULL), SAKO_MISUSE);
    sako_close(e);
    if (path[0]) {
        sako_verify_report v;
        ck_assert_ok(sako_verify(path, &v));
        sk_remove_db(path);
    }
}
END_TEST

/* Products with no category (under the root only), one inactive: refreshes on the
 * background thread, retrains and a compaction work on that shape, and the inactive
 * product is never recommended. In memory (_i = 0) and on a file (_i = 1). */
START_TEST(test_retrain_root_only_catalog)
{
    char path[512] = "";
    sako_options o = sk_opts(3);
    o.prior_refresh_events = 1; /* a refresh after every batch */
    sako_engine *e;
    if (_i)
        sk_tmp_path(path, sizeof path, "retrain-root"), e = sk_open_opts(path, &o);
    else
        e = sk_open_opts(NULL, &o);
    sako_item items[3] = {{1, 0, 1, 0}, {2, 0, 1, 0}, {3, 0, 0, 0}};
    ck_assert_ok(sako_items_upsert(e, items, 3));
    for (int b = 0; b < 20; b++) {
        sako_event ev[3] = {sk_ev(1 + b % 4, 1 + b % 3, SAKO_EVENT_IMPRESSION, 1000 * b),
                            sk_ev(1 + b % 4, 1 + b % 3, SAKO_EVENT_PURCHASE, 1000 * b + 1),
                            sk_ev(1 + b % 4, 2, SAKO_EVENT_CLICK, 1000 * b + 2)};
        ck_assert_ok(sako_update(e, ev, 3));
    }
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(sk_stats(e).model_version, 1);
    ck_assert_ok(sako_compact(e, NULL, NULL));
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(sk_stats(e).model_version, 2);
    sako_item_info three = sk_info(e, 3);
    ck_assert_double_eq(three.purchases, 6); /* b = 2, 5, ..., 17 */
    for (int u = 1; u <= 5; u++) {
        sako_query q = SAKO_QUERY_INIT;
        q.user_id = u;
        q.k = 3;
        sako_rec out[3];
        size_t n = 0;
        ck_assert_ok(sako_recommend(e, &q, out, 3, &n));
        ck_assert_uint_eq(n, 2);
        for (size_t j = 0; j < n; j++)
            ck_assert(out[j].item_id == 1 || out[j].item_id == 2);
    }
    sako_close(e);
    if (path[0]) {
        sako_verify_report v;
        ck_assert_ok(sako_verify(path, &v));
        ck_assert_uint_eq(v.n_events, 60);
        sk_remove_db(path);
    }
}
END_TEST

/* Counts rebuilt from the log equal the online counts exactly (several batches,
 * refreshes along the way, duplicates, out-of-order times). */
START_TEST(test_retrain_keeps_counts)
{
    sako_engine *e = rt_engine(1000, SAKO_PRIOR_CATEGORY);
    rt_run(e, 0, 25);
    sako_item_info before[RT_ITEMS];
    for (int i = 0; i < RT_ITEMS; i++)
        before[i] = sk_info(e, i + 1);
    sako_stats s0 = sk_stats(e);
    ck_assert_ok(sako_retrain(e));
    sako_stats s1 = sk_stats(e);
    ck_assert_uint_eq(s1.n_events, s0.n_events);
    ck_assert_uint_eq(s1.n_users, s0.n_users);
    ck_assert_uint_eq(s1.events_since_refresh, 0);
    ck_assert_int_eq(s1.model_version, s0.model_version + 1);
    for (int i = 0; i < RT_ITEMS; i++) {
        sako_item_info a = sk_info(e, i + 1);
        ck_assert(sk_same_double(a.impressions, before[i].impressions));
        ck_assert(sk_same_double(a.clicks, before[i].clicks));
        ck_assert(sk_same_double(a.carts, before[i].carts));
        ck_assert(sk_same_double(a.purchases, before[i].purchases));
        ck_assert_int_eq(a.last_event_at, before[i].last_event_at);
        ck_assert_int_eq(a.category_id, before[i].category_id);
    }
    sako_close(e);
}
END_TEST

/* The header's promise: the retrained model equals the online state after a prior
 * refresh, bit for bit. Engine `online` refreshes after every batch (so its last
 * refresh saw every event); engine `lazy` never refreshes and then retrains. */
START_TEST(test_retrain_equals_online_refresh)
{
    static const int priors[] = {SAKO_PRIOR_CATEGORY, SAKO_PRIOR_FLAT};
    for (int p = 0; p < 2; p++) {
        sako_engine *online = rt_engine(1, priors[p]);
        sako_engine *lazy = rt_engine(0, priors[p]);
        sako_engine *stale = rt_engine(0, priors[p]);
        rt_run(online, 0, 30);
        rt_run(lazy, 0, 30);
        rt_run(stale, 0, 30);
        /* A last batch as big as all before it, so that the online engine refreshes
         * after it whatever the spacing of refreshes (see prior_refresh_events). */
        static sako_event big[200 * 30];
        size_t nb = 0;
        for (int b = 30; b < 60; b++)
            nb += rt_batch(b, big + nb);
        ck_assert_ok(sako_update(online, big, nb));
        ck_assert_ok(sako_update(lazy, big, nb));
        ck_assert_ok(sako_update(stale, big, nb));
        ck_assert_uint_eq(sk_stats(online).events_since_refresh, 0);
        ck_assert_uint_gt(sk_stats(lazy).events_since_refresh, 6000);
        ck_assert_ok(sako_retrain(lazy));
        int stale_differs = 0;
        for (int i = 0; i < RT_ITEMS; i++) {
            sako_item_info a = sk_info(online, i + 1), b = sk_info(lazy, i + 1),
                           c = sk_info(stale, i + 1);
            ck_assert_msg(sk_same_info(&a, &b),
                          "prior %d item %d: online %.17g/%.17g (m %.17g), retrained %.17g/%.17g (m %.17g)",
                          priors[p], i + 1, a.alpha, a.beta, a.prior_mean, b.alpha, b.beta,
                          b.prior_mean);
            stale_differs += !sk_same_double(a.alpha, c.alpha);
        }
        for (size_t c = 0; c < RT_N_CATS; c++) {
            double ma, mb;
            ck_assert_ok(sako_category_prior(online, rt_cats[c], &ma));
            ck_assert_ok(sako_category_prior(lazy, rt_cats[c], &mb));
            ck_assert(sk_same_double(ma, mb));
        }
        sako_stats sa = sk_stats(online), sb = sk_stats(lazy);
        ck_assert(sk_same_double(sa.global_mean, sb.global_mean));
        ck_assert_uint_eq(sa.n_events, sb.n_events);
        /* The comparison has teeth: without a refresh the priors (category prior) are
         * stale; with flat priors there are none to be stale. */
        if (priors[p] == SAKO_PRIOR_CATEGORY)
            ck_assert_int_gt(stale_differs, RT_ITEMS / 2);
        else
            ck_assert_int_eq(stale_differs, 0);
        sako_close(online);
        sako_close(lazy);
        sako_close(stale);
    }
}
END_TEST

/* The priors after a retrain, recomputed here from the items' counts with the
 * documented rule: the catalog mean is the pooled posterior mean of everything
 * under Beta(1, 1); a category's mean pools its subtree's evidence with
 * category_shrinkage pseudo-observations at its parent's mean. Items then start
 * from Beta(s*m, s*(1-m)). */
static int64_t parent_of(int64_t c)
{
    switch (c) {
    case 11: case 12: return 1;
    case 21: return 2;
    case 111: return 11;
    default: return 0;
    }
}

static int in_subtree(int64_t cat, int64_t root)
{
    for (int64_t x = cat; x != 0; x = parent_of(x))
        if (x == root)
            return 1;
    return 0;
}

START_TEST(test_retrain_prior_formula)
{
    sako_engine *e = rt_engine(0, SAKO_PRIOR_CATEGORY);
    const double k = sk_options(e).category_shrinkage, s = sk_options(e).prior_strength;
    rt_run(e, 0, 30);
    ck_assert_ok(sako_retrain(e));
    sako_item_info info[RT_ITEMS];
    for (int i = 0; i < RT_ITEMS; i++)
        info[i] = sk_info(e, i + 1);
    double A = 0, B = 0;
    for (int i = 0; i < RT_ITEMS; i++) {
        A += 0.7 * info[i].clicks + 0.85 * info[i].carts + 1.0 * info[i].purchases;
        double miss = info[i].impressions - info[i].clicks;
        B += miss > 0 ? miss : 0;
    }
    double root = (A + 1) / (A + B + 2);
    double m;
    ck_assert_ok(sako_category_prior(e, 0, &m));
    ck_assert_double_eq_tol(m, root, 1e-12);
    ck_assert_double_eq_tol(sk_stats(e).global_mean, root, 1e-12);
    /* Parents before children in rt_cats. */
    double mean[RT_N_CATS];
    for (size_t c = 0; c < RT_N_CATS; c++) {
        double a = 0, b = 0;
        for (int i = 0; i < RT_ITEMS; i++) {
            if (!in_subtree(info[i].category_id, rt_cats[c]))
                continue;
            a += 0.7 * info[i].clicks + 0.85 * info[i].carts + 1.0 * info[i].purchases;
            double miss = info[i].impressions - info[i].clicks;
            b += miss > 0 ? miss : 0;
        }
        double mp = root;
        for (size_t j = 0; j < c; j++)
            if (rt_cats[j] == parent_of(rt_cats[c]))
                mp = mean[j];
        mean[c] = (a + k * mp) / (a + b + k);
        ck_assert_ok(sako_category_prior(e, rt_cats[c], &m));
        ck_assert_msg(fabs(m - mean[c]) <= 1e-12, "category %" PRId64 ": %.17g, want %.17g",
                      rt_cats[c], m, mean[c]);
    }
    /* The empty department backs off to the catalog exactly. */
    ck_assert_ok(sako_category_prior(e, 3, &m));
    ck_assert_double_eq_tol(m, root, 1e-15);
    /* Items follow a = s*m + evidence, b = s*(1-m) + misses. */
    for (int i = 0; i < RT_ITEMS; i++) {
        double mi;
        ck_assert_ok(sako_category_prior(e, info[i].category_id, &mi));
        double miss = info[i].impressions - info[i].clicks;
        double a = s * mi + 0.7 * info[i].clicks + 0.85 * info[i].carts + info[i].purchases;
        double b = s * (1 - mi) + (miss > 0 ? miss : 0);
        ck_assert_double_eq_tol(info[i].alpha, a, 1e-9);
        ck_assert_double_eq_tol(info[i].beta, b, 1e-9);
    }
    sako_close(e);
}
END_TEST

/* A file engine: closed, reopened, retrained: the counts rebuilt from the stored log
 * equal the restored ones; the retrain itself persists. */
START_TEST(test_retrain_after_reopen)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "retrain");
    sako_options o = sk_opts(9);
    o.prior_refresh_events = 777;
    sako_engine *e = sk_open_opts(path, &o);
    rt_catalog(e);
    rt_run(e, 0, 20);
    sako_close(e);
    e = sk_open_opts(path, &o);
    sako_item_info before[RT_ITEMS];
    for (int i = 0; i < RT_ITEMS; i++)
        before[i] = sk_info(e, i + 1);
    ck_assert_ok(sako_retrain(e));
    sako_item_info after[RT_ITEMS];
    for (int i = 0; i < RT_ITEMS; i++) {
        after[i] = sk_info(e, i + 1);
        ck_assert(sk_same_double(after[i].impressions, before[i].impressions));
        ck_assert(sk_same_double(after[i].clicks, before[i].clicks));
        ck_assert(sk_same_double(after[i].carts, before[i].carts));
        ck_assert(sk_same_double(after[i].purchases, before[i].purchases));
    }
    sako_stats st = sk_stats(e);
    sako_close(e);
    e = sk_open_opts(path, &o);
    sako_stats st2 = sk_stats(e);
    ck_assert(sk_same_stats(&st, &st2));
    ck_assert_int_eq(st2.model_version, 1);
    for (int i = 0; i < RT_ITEMS; i++) {
        sako_item_info x = sk_info(e, i + 1);
        ck_assert(sk_same_info(&x, &after[i]));
    }
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* The log names an item that is no longer in the catalog (removed behind the
 * library's back): SAKO_CORRUPT, and the model in memory is untouched. */
START_TEST(test_retrain_corrupt_log)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "orphan");
    sako_options o = sk_opts(9);
    sako_engine *e = sk_open_opts(path, &o);
    rt_catalog(e);
    rt_run(e, 0, 5);
    sako_close(e); /* checkpointed: a reopen need not read the log */

    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "DELETE FROM items WHERE id = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    sako_engine *x = NULL;
    int rc = sako_init(&x, path, &o);
    if (rc == SAKO_CORRUPT) {
        /* Refusing at open is as good: the damage is detected. */
        ck_assert_ptr_null(x);
    } else {
        ck_assert_ok(rc);
        sako_stats s0 = sk_stats(x);
        sako_item_info i1 = sk_info(x, 1);
        ck_assert_rc(sako_retrain(x), SAKO_CORRUPT);
        ck_assert_int_gt((int)strlen(sako_errmsg()), 0);
        sako_stats s1 = sk_stats(x);
        ck_assert(sk_same_stats(&s0, &s1));
        sako_item_info i2 = sk_info(x, 1);
        ck_assert(sk_same_info(&i1, &i2));
        sako_close(x);
    }
    sk_remove_db(path);
}
END_TEST

/* Retraining twice in a row changes nothing but the version. */
START_TEST(test_retrain_idempotent)
{
    sako_engine *e = rt_engine(0, SAKO_PRIOR_CATEGORY);
    rt_run(e, 0, 10);
    ck_assert_ok(sako_retrain(e));
    sako_item_info first[RT_ITEMS];
    for (int i = 0; i < RT_ITEMS; i++)
        first[i] = sk_info(e, i + 1);
    ck_assert_ok(sako_retrain(e));
    for (int i = 0; i < RT_ITEMS; i++) {
        sako_item_info x = sk_info(e, i + 1);
        ck_assert(sk_same_info(&x, &first[i]));
    }
    ck_assert_int_eq(sk_stats(e).model_version, 2);
    sako_close(e);
}
END_TEST

Suite *suite_retrain(void)
{
    Suite *s = suite_create("retrain");
    TCase *tc = tcase_create("retrain");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_retrain_empty_and_versions, 0, 2);
    tcase_add_loop_test(tc, test_retrain_root_only_catalog, 0, 2);
    tcase_add_test(tc, test_retrain_keeps_counts);
    tcase_add_test(tc, test_retrain_equals_online_refresh);
    tcase_add_test(tc, test_retrain_prior_formula);
    tcase_add_test(tc, test_retrain_after_reopen);
    tcase_add_test(tc, test_retrain_corrupt_log);
    tcase_add_test(tc, test_retrain_idempotent);
    suite_add_tcase(s, tc);
    return s;
}
