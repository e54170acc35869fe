/* sako_init / sako_close: options, NULL handling, in-memory and file engines. */
#include <stddef.h>
#include "check_sako.h"

START_TEST(test_init_memory)
{
    const char *paths[] = {NULL, ":memory:"};
    for (int i = 0; i < 2; i++) {
        sako_engine *e = NULL;
        ck_assert_ok(sako_init(&e, paths[i], NULL));
        ck_assert_ptr_nonnull(e);
        sako_stats st = sk_stats(e);
        ck_assert_uint_eq(st.n_items, 0);
        ck_assert_uint_eq(st.n_active_items, 0);
        ck_assert_uint_eq(st.n_categories, 0);
        ck_assert_uint_eq(st.n_users, 0);
        ck_assert_uint_eq(st.n_events, 0);
        ck_assert_uint_eq(st.events_since_refresh, 0);
        ck_assert_int_eq(st.model_version, 0);
        ck_assert(st.global_mean > 0.0 && st.global_mean < 1.0);
        sako_close(e);
    }
}
END_TEST

/* Two in-memory engines are private: nothing is shared between them. */
START_TEST(test_memory_private)
{
    sako_engine *a = sk_open_mem(1), *b = sk_open_mem(1);
    sk_catalog(a);
    ck_assert_uint_eq(sk_stats(a).n_items, SK_N_ITEMS);
    ck_assert_uint_eq(sk_stats(b).n_items, 0);
    sako_close(a);
    a = sk_open_mem(1);
    ck_assert_uint_eq(sk_stats(a).n_items, 0);
    sako_close(a);
    sako_close(b);
}
END_TEST

START_TEST(test_init_misuse)
{
    ck_assert_rc(sako_init(NULL, NULL, NULL), SAKO_MISUSE);
    sako_options o = SAKO_OPTIONS_INIT;
    ck_assert_rc(sako_init(NULL, ":memory:", &o), SAKO_MISUSE);
    sako_close(NULL); /* harmless no-op */
}
END_TEST

/* One bad option field at a time; *out is set to NULL on failure. */
enum opt_field { F_CLICK, F_CART, F_PURCHASE, F_PENALTY, F_STRENGTH, F_SHRINK, N_DOUBLE_FIELDS };

static double *dfield(sako_options *o, int f)
{
    switch (f) {
    case F_CLICK: return &o->reward_click;
    case F_CART: return &o->reward_cart;
    case F_PURCHASE: return &o->reward_purchase;
    case F_PENALTY: return &o->penalty_impression;
    case F_STRENGTH: return &o->prior_strength;
    default: return &o->category_shrinkage;
    }
}

static void expect_bad_options(const sako_options *o, const char *what)
{
    sako_engine *e = (sako_engine *)o; /* any non-NULL garbage; must become NULL */
    int rc = sako_init(&e, NULL, o);
    ck_assert_msg(rc == SAKO_INVALID, "%s: sako_init = %d (%s), expected SAKO_INVALID", what, rc,
                  sako_errstr(rc));
    ck_assert_msg(e == NULL, "%s: *out not set to NULL on failure", what);
    ck_assert_msg(strlen(sako_errmsg()) > 0, "%s: no message", what);
}

START_TEST(test_options_nonfinite_negative)
{
    const double bad[] = {NAN, -NAN, INFINITY, -INFINITY, -1.0, -1e-300};
    for (int f = 0; f < N_DOUBLE_FIELDS; f++)
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            sako_options o = sk_opts(1);
            *dfield(&o, f) = bad[i];
            char what[64];
            snprintf(what, sizeof what, "field %d = %g", f, bad[i]);
            expect_bad_options(&o, what);
        }
}
END_TEST

START_TEST(test_options_enums)
{
    sako_options o;
    o = sk_opts(1), o.version = 0, expect_bad_options(&o, "version 0");
    o = sk_opts(1), o.version = SAKO_OPTIONS_VERSION + 1, expect_bad_options(&o, "version 2");
    o = sk_opts(1), o.prior = 2, expect_bad_options(&o, "prior 2");
    o = sk_opts(1), o.prior = -1, expect_bad_options(&o, "prior -1");
    o = sk_opts(1), o.durability = 3, expect_bad_options(&o, "durability 3");
    o = sk_opts(1), o.durability = -1, expect_bad_options(&o, "durability -1");
    o = sk_opts(1), o.unknown_items = 2, expect_bad_options(&o, "unknown_items 2");
    o = sk_opts(1), o.unknown_items = -1, expect_bad_options(&o, "unknown_items -1");
    o = sk_opts(1), o.busy_timeout_ms = -1, expect_bad_options(&o, "busy_timeout_ms -1");
    o = sk_opts(1), o.reconfigure = 2, expect_bad_options(&o, "reconfigure 2");
    /* A prior with no pseudo-observations would give Beta(0, 0) to a new item. */
    o = sk_opts(1), o.prior_strength = 0.0, expect_bad_options(&o, "prior_strength 0");
}
END_TEST

/* The personal engine's and decay's options outside their ranges: each refused
 * with SAKO_INVALID, its message naming the field. */
START_TEST(test_options_ranges)
{
    static const struct { const char *field; int k; double v; } cases[] = {
        {"organic_demand", 0, 2}, {"personal_min_baskets", 1, 0},
        {"personal_min_baskets", 1, 1000001}, {"demand_min_purchases", 2, 1e12 + 1},
        {"half_life_days", 3, 0.0}, {"half_life_days", 3, 0.5 / 24.0},
        {"half_life_days", 3, 2e6}, {"personal_strength", 4, 0.0},
        {"personal_temperature", 5, -1.0}, {"personal_temperature", 5, 1e7},
        {"due_exponent", 6, NAN}, {"affinity_strength", 7, 0.0}, {"lift_strength", 8, INFINITY},
        {"basket_gap_ms", 9, -1}, {"basket_gap_ms", 9, 31.0 * 86400000},
        {"decay_half_life_days", 10, 0.5}, {"decay_half_life_days", 10, 2e6},
        {"create_empty", 11, 2}, {"personal", 12, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sako_options o = sk_opts(1);
        double v = cases[i].v;
        switch (cases[i].k) {
        case 0: o.organic_demand = (int)v; break;
        case 1: o.personal_min_baskets = (uint32_t)v; break;
        case 2: o.demand_min_purchases = (uint64_t)v; break;
        case 3: o.half_life_days = v; break;
        case 4: o.personal_strength = v; break;
        case 5: o.personal_temperature = v; break;
        case 6: o.due_exponent = v; break;
        case 7: o.affinity_strength = v; break;
        case 8: o.lift_strength = v; break;
        case 9: o.basket_gap_ms = (int64_t)v; break;
        case 10: o.decay_half_life_days = v; break;
        case 11: o.create_empty = (int)v; break;
        case 12: o.personal = (int)v; break;
        }
        expect_bad_options(&o, cases[i].field);
        ck_assert_msg(strstr(sako_errmsg(), cases[i].field), "%s = %g: message \"%s\"",
                      cases[i].field, v, sako_errmsg());
    }
    /* The edges themselves are accepted. */
    sako_options o = sk_opts(1);
    o.personal_min_baskets = 1000000, o.demand_min_purchases = (uint64_t)1e12;
    o.half_life_days = 1.0 / 24.0, o.basket_gap_ms = (int64_t)30 * 86400000;
    o.decay_half_life_days = 1.0, o.personal_temperature = 0.0;
    sako_close(sk_open_opts(NULL, &o));
    o.decay_half_life_days = 1e6;
    sako_close(sk_open_opts(NULL, &o));
}
END_TEST

/* Every valid enumerator and edge value is accepted. */
START_TEST(test_options_valid_values)
{
    for (int p = SAKO_PRIOR_CATEGORY; p <= SAKO_PRIOR_FLAT; p++)
        for (int d = SAKO_DURABLE_FULL; d <= SAKO_DURABLE_OFF; d++)
            for (int u = SAKO_UNKNOWN_REJECT; u <= SAKO_UNKNOWN_CREATE; u++) {
                sako_options o = SAKO_OPTIONS_INIT;
                o.prior = p, o.durability = d, o.unknown_items = u;
                sako_engine *e = sk_open_opts(NULL, &o);
                sako_close(e);
            }
    sako_options o = SAKO_OPTIONS_INIT;
    o.reward_click = 0.0, o.reward_cart = 0.0, o.penalty_impression = 0.0;
    o.prior_refresh_events = 0, o.busy_timeout_ms = 0, o.seed = UINT64_MAX;
    sako_close(sk_open_opts(NULL, &o));
}
END_TEST

/* The defaults are those the header documents. */
START_TEST(test_options_defaults)
{
    sako_options o = SAKO_OPTIONS_INIT;
    ck_assert_uint_eq(o.version, SAKO_OPTIONS_VERSION);
    ck_assert_double_eq(o.reward_click, 0.7);
    ck_assert_double_eq(o.reward_cart, 0.85);
    ck_assert_double_eq(o.reward_purchase, 1.0);
    ck_assert_double_eq(o.penalty_impression, 1.0);
    ck_assert_int_eq(o.prior, SAKO_PRIOR_CATEGORY);
    ck_assert_double_eq(o.prior_strength, 20.0);
    ck_assert_double_eq(o.category_shrinkage, 20.0);
    ck_assert_uint_eq(o.prior_refresh_events, 1000);
    ck_assert_uint_eq(o.seed, 0);
    ck_assert_int_eq(o.durability, SAKO_DURABLE_FULL);
    ck_assert_int_eq(o.unknown_items, SAKO_UNKNOWN_REJECT);
    ck_assert_int_eq(o.busy_timeout_ms, 5000);
    ck_assert_int_eq(o.reconfigure, 0);
    sako_query q = SAKO_QUERY_INIT;
    ck_assert_uint_eq(q.version, SAKO_QUERY_VERSION);
    ck_assert_int_eq(q.k, 20);
    ck_assert_int_eq(q.user_id, 0);
    ck_assert_int_eq(q.category_id, 0);
    ck_assert_ptr_null(q.exclude);
    ck_assert_ptr_null(q.recent);
    ck_assert_uint_eq(q.n_exclude, 0);
    ck_assert_uint_eq(q.n_recent, 0);
}
END_TEST

/* The NULL-handle rule of every entry point. */
START_TEST(test_null_engine_everywhere)
{
    sako_category c = {1, 0, "x"};
    sako_item it = {1, 0, 1, 0};
    sako_event ev = {1, 1, SAKO_EVENT_CLICK, 0, 0};
    sako_query q = SAKO_QUERY_INIT;
    sako_rec out[20];
    size_t n = 99;
    sako_item_info info;
    double m;
    sako_stats st;
    ck_assert_rc(sako_categories_upsert(NULL, &c, 1), SAKO_MISUSE);
    ck_assert_rc(sako_items_upsert(NULL, &it, 1), SAKO_MISUSE);
    ck_assert_rc(sako_update(NULL, &ev, 1), SAKO_MISUSE);
    ck_assert_rc(sako_recommend(NULL, &q, out, 20, &n), SAKO_MISUSE);
    ck_assert_rc(sako_retrain(NULL), SAKO_MISUSE);
    ck_assert_rc(sako_item_get(NULL, 1, &info), SAKO_MISUSE);
    ck_assert_rc(sako_category_prior(NULL, 0, &m), SAKO_MISUSE);
    ck_assert_rc(sako_stats_get(NULL, &st), SAKO_MISUSE);
    /* NULL handles win over other bad arguments. */
    ck_assert_rc(sako_categories_upsert(NULL, NULL, 5), SAKO_MISUSE);
    ck_assert_rc(sako_update(NULL, NULL, SAKO_MAX_BATCH + 1), SAKO_MISUSE);
}
END_TEST

/* NULL out-pointers on a valid engine. */
START_TEST(test_null_out_pointers)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    ck_assert_rc(sako_item_get(e, 101, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_category_prior(e, 0, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_category_prior(e, 11, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_stats_get(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_categories_upsert(e, NULL, 1), SAKO_MISUSE);
    ck_assert_rc(sako_items_upsert(e, NULL, 1), SAKO_MISUSE);
    ck_assert_rc(sako_update(e, NULL, 1), SAKO_MISUSE);
    /* NULL with n == 0 is a no-op. */
    ck_assert_ok(sako_categories_upsert(e, NULL, 0));
    ck_assert_ok(sako_items_upsert(e, NULL, 0));
    ck_assert_ok(sako_update(e, NULL, 0));
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_items, SK_N_ITEMS);
    ck_assert_uint_eq(st.n_events, 0);
    sako_close(e);
}
END_TEST

/* A file engine round trip: what was stored is there after reopening. */
START_TEST(test_file_round_trip)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "engine");
    sako_options o = sk_opts(5);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event ev[3] = {sk_ev(1, 101, SAKO_EVENT_IMPRESSION, 5000),
                        sk_ev(1, 101, SAKO_EVENT_CLICK, 5001),
                        sk_ev(2, 201, SAKO_EVENT_PURCHASE, 5002)};
    ck_assert_ok(sako_update(e, ev, 3));
    sako_stats before = sk_stats(e);
    sako_close(e);

    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    e = sk_open_opts(path, &o);
    sako_stats after = sk_stats(e);
    ck_assert_uint_eq(after.n_items, SK_N_ITEMS);
    ck_assert_uint_eq(after.n_active_items, SK_N_ACTIVE);
    ck_assert_uint_eq(after.n_categories, SK_N_CATS);
    ck_assert_uint_eq(after.n_users, 2);
    ck_assert_uint_eq(after.n_events, 3);
    ck_assert(sk_same_stats(&before, &after));
    sako_item_info info = sk_info(e, 101);
    ck_assert_double_eq(info.impressions, 1);
    ck_assert_double_eq(info.clicks, 1);
    ck_assert_int_eq(info.last_event_at, 5001);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* A path that cannot be created is SAKO_IO; *out becomes NULL. */
START_TEST(test_init_bad_path)
{
    char path[600];
    snprintf(path, sizeof path, "%s/no-such-dir-%ld/x/y.db", sk_tmp_dir(), (long)getpid());
    sako_engine *e = (sako_engine *)path;
    ck_assert_rc(sako_init(&e, path, NULL), SAKO_IO);
    ck_assert_ptr_null(e);
    ck_assert_int_gt((int)strlen(sako_errmsg()), 0);
    /* A directory is not a database file. */
    sk_mkdirs(sk_tmp_dir());
    e = (sako_engine *)path;
    int rc = sako_init(&e, sk_tmp_dir(), NULL);
    ck_assert_msg(rc == SAKO_IO || rc == SAKO_CORRUPT, "directory: %d (%s)", rc, sako_errstr(rc));
    ck_assert_ptr_null(e);
}
END_TEST

/* Every durability level opens a file engine that keeps what it acknowledged. */
START_TEST(test_durability_levels)
{
    for (int d = SAKO_DURABLE_FULL; d <= SAKO_DURABLE_OFF; d++) {
        char path[512];
        sk_tmp_path(path, sizeof path, "durable");
        sako_options o = sk_opts(1);
        o.durability = d;
        sako_engine *e = sk_open_opts(path, &o);
        sk_catalog(e);
        sako_event ev = sk_ev(9, 102, SAKO_EVENT_CART, 77);
        ck_assert_ok(sako_update(e, &ev, 1));
        sako_close(e);
        e = sk_open_opts(path, &o);
        ck_assert_double_eq(sk_info(e, 102).carts, 1);
        ck_assert_uint_eq(sk_stats(e).n_events, 1);
        sako_close(e);
        sk_remove_db(path);
    }
}
END_TEST

/* The model options are stored: on reopen the stored values win, unless
 * `reconfigure` is set, which recomputes posteriors from the kept evidence. */
START_TEST(test_stored_model_options)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "reconf");
    sako_options o = sk_opts(1);
    o.prior = SAKO_PRIOR_FLAT;
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event ev[3] = {sk_ev(1, 101, SAKO_EVENT_IMPRESSION, 10), sk_ev(1, 101, SAKO_EVENT_IMPRESSION, 11),
                        sk_ev(1, 101, SAKO_EVENT_CLICK, 12)};
    ck_assert_ok(sako_update(e, ev, 3));
    sako_item_info i1 = sk_info(e, 101);
    ck_assert_double_eq(i1.alpha, 1.0 + 0.7);
    ck_assert_double_eq(i1.beta, 1.0 + 1.0);
    sako_close(e);

    /* Other values without reconfigure: the stored model is kept. */
    sako_options o2 = sk_opts(1);
    o2.reward_click = 3.0;
    o2.penalty_impression = 0.5;
    e = sk_open_opts(path, &o2);
    sako_item_info i2 = sk_info(e, 101);
    ck_assert(sk_same_info(&i1, &i2));
    sako_close(e);

    /* With reconfigure: the new values apply to the same evidence. */
    o2.prior = SAKO_PRIOR_FLAT;
    o2.reconfigure = 1;
    e = sk_open_opts(path, &o2);
    sako_item_info i3 = sk_info(e, 101);
    ck_assert_double_eq(i3.impressions, 2);
    ck_assert_double_eq(i3.clicks, 1);
    ck_assert_double_eq(i3.alpha, 1.0 + 3.0);
    ck_assert_double_eq(i3.beta, 1.0 + 0.5);
    sako_close(e);

    /* And the reconfigured values are now the stored ones. */
    e = sk_open_opts(path, NULL);
    sako_item_info i4 = sk_info(e, 101);
    ck_assert(sk_same_info(&i3, &i4));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Change model parameter k of o (each to a valid value other than the default). */
static void change_parameter(sako_options *o, int k)
{
    switch (k) {
    case 0: o->reward_click = 0.6; break;
    case 1: o->reward_cart = 0.9; break;
    case 2: o->reward_purchase = 1.5; break;
    case 3: o->penalty_impression = 0.8; break;
    case 4: o->prior = SAKO_PRIOR_FLAT; break;
    case 5: o->prior_strength = 10.0; break;
    case 6: o->category_shrinkage = 5.0; break;
    case 7: o->prior_refresh_events = 77; break;
    case 8: o->organic_demand = 0; break;
    case 9: o->demand_min_purchases = 5; break;
    case 10: o->personal = 1; break;
    case 11: o->personal_min_baskets = 3; break;
    case 12: o->half_life_days = 30.0; break;
    case 13: o->personal_strength = 2.0; break;
    case 14: o->personal_temperature = 1.0; break;
    case 15: o->due_exponent = 0.5; break;
    case 16: o->affinity_strength = 10.0; break;
    case 17: o->lift_strength = 2.5; break;
    case 18: o->basket_gap_ms = 600000; break;
    case 19: o->decay_half_life_days = 60.0; break;
    }
}
#define MODEL_PARAMETERS 20

static int same_model_options(const sako_options *a, const sako_options *b)
{
    return a->reward_click == b->reward_click && a->reward_cart == b->reward_cart &&
           a->reward_purchase == b->reward_purchase &&
           a->penalty_impression == b->penalty_impression && a->prior == b->prior &&
           a->prior_strength == b->prior_strength &&
           a->category_shrinkage == b->category_shrinkage &&
           a->prior_refresh_events == b->prior_refresh_events &&
           a->organic_demand == b->organic_demand &&
           a->demand_min_purchases == b->demand_min_purchases && a->personal == b->personal &&
           a->personal_min_baskets == b->personal_min_baskets &&
           a->half_life_days == b->half_life_days && a->personal_strength == b->personal_strength &&
           a->personal_temperature == b->personal_temperature &&
           a->due_exponent == b->due_exponent && a->affinity_strength == b->affinity_strength &&
           a->lift_strength == b->lift_strength && a->basket_gap_ms == b->basket_gap_ms &&
           a->decay_half_life_days == b->decay_half_life_days;
}

/* reconfigure takes each model parameter on its own: changing only parameter k
 * stores the new value (a plain reopen afterwards reports it) and keeps every other
 * stored value and the evidence; reconfiguring with the values already stored
 * changes nothing. */
START_TEST(test_reconfigure_each_parameter)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "reconf-each");
    sako_options want = sk_opts(1);
    sako_engine *e = sk_open_opts(path, &want);
    sk_catalog(e);
    sako_event ev[3] = {sk_ev(1, 101, SAKO_EVENT_IMPRESSION, 10), sk_ev(1, 101, SAKO_EVENT_CLICK, 11),
                        sk_ev(2, 102, SAKO_EVENT_PURCHASE, 12)};
    ck_assert_ok(sako_update(e, ev, 3));
    sako_close(e);
    for (int k = -1; k < MODEL_PARAMETERS; k++) {
        sako_options o = want; /* the values stored so far, and parameter k changed */
        if (k >= 0)
            change_parameter(&o, k);
        ck_assert_msg(k < 0 || !same_model_options(&o, &want), "parameter %d unchanged", k);
        o.reconfigure = 1;
        e = sk_open_opts(path, &o);
        sako_close(e);
        e = sk_open_opts(path, NULL); /* the stored values win */
        sako_options got;
        memset(&got, 0, sizeof got);
        got.version = SAKO_OPTIONS_VERSION;
        ck_assert_ok(sako_options_get(e, &got));
        ck_assert_msg(same_model_options(&got, &o), "parameter %d: not stored as given", k);
        sako_item_info a = sk_info(e, 101), b = sk_info(e, 102);
        /* (decay, the last change, weights them by 2^(-age/half-life): ages of ms) */
        ck_assert_double_eq_tol(a.impressions, 1, 1e-6);
        ck_assert_double_eq_tol(a.clicks, 1, 1e-6);
        ck_assert_double_eq_tol(b.purchases, 1, 1e-6);
        sako_close(e);
        want = o;
        want.reconfigure = 0;
    }
    sk_remove_db(path);
}
END_TEST

/* A bad option is refused before anything is created on disk. */
START_TEST(test_bad_options_create_nothing)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "badopts");
    sako_options o = sk_opts(1);
    o.reward_purchase = NAN;
    sako_engine *e = NULL;
    ck_assert_rc(sako_init(&e, path, &o), SAKO_INVALID);
    ck_assert_ptr_null(e);
    ck_assert_int_ne(access(path, F_OK), 0);
}
END_TEST

/* sako_options_get: model fields as stored, run-time fields as given, the seed as
 * actually used. */
START_TEST(test_options_get)
{
    sako_options o = sk_opts(123);
    o.reward_click = 0.5;
    o.prior_strength = 4.0;
    o.busy_timeout_ms = 77;
    o.unknown_items = SAKO_UNKNOWN_CREATE;
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_options g;
    /* A caller that does not set the version (code built against 0.1) gets the
     * version-1 fields and nothing written past them. */
    memset(&g, 0xA5, sizeof g);
    ck_assert_ok(sako_options_get(e, &g));
    ck_assert_uint_eq(g.version, 1);
    ck_assert_double_eq(g.prior_strength, 4.0);
    const unsigned char *tail = (const unsigned char *)&g + offsetof(sako_options, organic_demand);
    for (size_t i = 0; i < sizeof g - offsetof(sako_options, organic_demand); i++)
        ck_assert_uint_eq(tail[i], 0xA5);
    memset(&g, 0xA5, sizeof g);
    g.version = SAKO_OPTIONS_VERSION;
    ck_assert_ok(sako_options_get(e, &g));
    ck_assert_uint_eq(g.version, SAKO_OPTIONS_VERSION);
    ck_assert_int_eq(g.personal, 0);
    ck_assert_double_eq(g.half_life_days, 45.0);
    ck_assert_int_eq(g.basket_gap_ms, 1800000);
    ck_assert_double_eq(g.reward_click, 0.5);
    ck_assert_double_eq(g.reward_cart, 0.85);
    ck_assert_double_eq(g.prior_strength, 4.0);
    ck_assert_uint_eq(g.seed, 123);
    ck_assert_int_eq(g.busy_timeout_ms, 77);
    ck_assert_int_eq(g.unknown_items, SAKO_UNKNOWN_CREATE);
    ck_assert_int_eq(g.durability, SAKO_DURABLE_OFF);
    ck_assert_int_eq(g.reconfigure, 0);
    ck_assert_rc(sako_options_get(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_options_get(NULL, &g), SAKO_MISUSE);
    sako_close(e);

    /* Seed 0 picks one; reusing it reproduces the engine's draws. */
    sako_options z = sk_opts(0);
    sako_engine *a = sk_open_opts(NULL, &z);
    ck_assert_ok(sako_options_get(a, &g));
    ck_assert_uint_ne(g.seed, 0);
    sako_options same = sk_opts(g.seed);
    sako_engine *b = sk_open_opts(NULL, &same);
    sk_catalog(a);
    sk_catalog(b);
    sako_query q = SAKO_QUERY_INIT;
    for (int i = 0; i < 10; i++) {
        sako_rec ra[20], rb[20];
        size_t na, nb;
        ck_assert_ok(sako_recommend(a, &q, ra, 20, &na));
        ck_assert_ok(sako_recommend(b, &q, rb, 20, &nb));
        ck_assert_uint_eq(na, nb);
        for (size_t j = 0; j < na; j++) {
            ck_assert_int_eq(ra[j].item_id, rb[j].item_id);
            ck_assert(sk_same_double(ra[j].score, rb[j].score));
        }
    }
    sako_close(a);
    sako_close(b);

    /* On a reopened file the stored model fields are reported, not the given ones. */
    char path[512];
    sk_tmp_path(path, sizeof path, "optget");
    sako_options first = sk_opts(1);
    first.reward_purchase = 3.0;
    first.prior = SAKO_PRIOR_FLAT;
    sako_close(sk_open_opts(path, &first));
    sako_options second = sk_opts(2);
    second.reward_purchase = 9.0;
    e = sk_open_opts(path, &second);
    ck_assert_ok(sako_options_get(e, &g));
    ck_assert_double_eq(g.reward_purchase, 3.0);
    ck_assert_int_eq(g.prior, SAKO_PRIOR_FLAT);
    ck_assert_uint_eq(g.seed, 2);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

Suite *suite_engine(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tcase_create("engine");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_init_memory);
    tcase_add_test(tc, test_memory_private);
    tcase_add_test(tc, test_init_misuse);
    tcase_add_test(tc, test_options_nonfinite_negative);
    tcase_add_test(tc, test_options_enums);
    tcase_add_test(tc, test_options_ranges);
    tcase_add_test(tc, test_options_valid_values);
    tcase_add_test(tc, test_options_defaults);
    tcase_add_test(tc, test_null_engine_everywhere);
    tcase_add_test(tc, test_null_out_pointers);
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_init_bad_path);
    tcase_add_test(tc, test_durability_levels);
    tcase_add_test(tc, test_stored_model_options);
    tcase_add_test(tc, test_reconfigure_each_parameter);
    tcase_add_test(tc, test_bad_options_create_nothing);
    tcase_add_test(tc, test_options_get);
    suite_add_tcase(s, tc);
    return s;
}
