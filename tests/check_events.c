/* sako_update: the reward rule, validation, atomicity of a batch, unknown items. */
#include "check_sako.h"

/* alpha/beta of an item against the documented rule, with the prior mean read from
 * sako_category_prior and strength s. */
static void check_posterior(sako_engine *e, int64_t id, double s, double rc, double rcart,
                            double rp, double pen)
{
    sako_item_info in = sk_info(e, id);
    double m;
    ck_assert_ok(sako_category_prior(e, in.category_id, &m));
    ck_assert_double_eq(in.prior_mean, m);
    double miss = in.impressions - in.clicks;
    double a = s * m + rc * in.clicks + rcart * in.carts + rp * in.purchases;
    double b = s * (1.0 - m) + pen * (miss > 0 ? miss : 0);
    ck_assert_msg(fabs(in.alpha - a) <= 1e-12 * (1 + a), "item %" PRId64 ": alpha %.17g, want %.17g",
                  id, in.alpha, a);
    ck_assert_msg(fabs(in.beta - b) <= 1e-12 * (1 + b), "item %" PRId64 ": beta %.17g, want %.17g",
                  id, in.beta, b);
}

START_TEST(test_reward_rule_default)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev[100];
    size_t n = 0;
    sk_push(ev, &n, 1, 101, SAKO_EVENT_IMPRESSION, 10, 1000);
    sk_push(ev, &n, 1, 101, SAKO_EVENT_CLICK, 3, 1001);
    sk_push(ev, &n, 2, 101, SAKO_EVENT_CART, 2, 1002);
    sk_push(ev, &n, 2, 101, SAKO_EVENT_PURCHASE, 1, 1003);
    /* More clicks than impressions: no misses, never a negative b. */
    sk_push(ev, &n, 3, 102, SAKO_EVENT_IMPRESSION, 2, 1004);
    sk_push(ev, &n, 3, 102, SAKO_EVENT_CLICK, 5, 1005);
    /* Purchases only. */
    sk_push(ev, &n, 4, 201, SAKO_EVENT_PURCHASE, 4, 1006);
    /* An inactive item still learns. */
    sk_push(ev, &n, 4, SK_INACTIVE_ID, SAKO_EVENT_IMPRESSION, 3, 1007);
    ck_assert_ok(sako_update(e, ev, n));

    sako_item_info i101 = sk_info(e, 101);
    ck_assert_double_eq(i101.impressions, 10);
    ck_assert_double_eq(i101.clicks, 3);
    ck_assert_double_eq(i101.carts, 2);
    ck_assert_double_eq(i101.purchases, 1);
    ck_assert_int_eq(i101.last_event_at, 1003);
    check_posterior(e, 101, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    check_posterior(e, 102, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    check_posterior(e, 201, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    check_posterior(e, SK_INACTIVE_ID, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    check_posterior(e, 103, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    double m;
    ck_assert_ok(sako_category_prior(e, 11, &m));
    sako_item_info i102 = sk_info(e, 102);
    ck_assert_double_eq_tol(i102.beta, sk_options(e).prior_strength * (1 - m), 1e-12);
    ck_assert_double_eq(sk_info(e, SK_INACTIVE_ID).impressions, 3);
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_events, n);
    ck_assert_uint_eq(st.n_users, 4);
    sako_close(e);
}
END_TEST

/* Custom rewards, flat prior: exactly Beta(1, 1) plus the evidence. */
START_TEST(test_reward_rule_flat_custom)
{
    sako_options o = sk_opts(1);
    o.prior = SAKO_PRIOR_FLAT;
    o.reward_click = 0.25;
    o.reward_cart = 0.5;
    o.reward_purchase = 2.0;
    o.penalty_impression = 0.75;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_item_info fresh = sk_info(e, 104);
    ck_assert_double_eq(fresh.alpha, 1.0);
    ck_assert_double_eq(fresh.beta, 1.0);
    ck_assert_double_eq(fresh.prior_mean, 0.5);
    double m;
    ck_assert_ok(sako_category_prior(e, 11, &m));
    ck_assert_double_eq(m, 0.5);
    sako_event ev[100];
    size_t n = 0;
    sk_push(ev, &n, 1, 104, SAKO_EVENT_IMPRESSION, 8, 10);
    sk_push(ev, &n, 1, 104, SAKO_EVENT_CLICK, 4, 10);
    sk_push(ev, &n, 1, 104, SAKO_EVENT_CART, 2, 10);
    sk_push(ev, &n, 1, 104, SAKO_EVENT_PURCHASE, 1, 10);
    ck_assert_ok(sako_update(e, ev, n));
    sako_item_info in = sk_info(e, 104);
    ck_assert_double_eq(in.alpha, 1.0 + 0.25 * 4 + 0.5 * 2 + 2.0 * 1);
    ck_assert_double_eq(in.beta, 1.0 + 0.75 * 4);
    /* Zero rewards are allowed: impressions alone move nothing but b. */
    sako_close(e);
}
END_TEST

/* The prior strength s scales the prior: a = s*m + evidence, b = s*(1-m) + evidence. */
START_TEST(test_reward_rule_strength)
{
    sako_options o = sk_opts(1);
    o.prior_strength = 10.0;
    o.reward_cart = 0.0;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[100];
    size_t n = 0;
    sk_push(ev, &n, 1, 111, SAKO_EVENT_IMPRESSION, 30, 10);
    sk_push(ev, &n, 1, 111, SAKO_EVENT_CLICK, 10, 10);
    sk_push(ev, &n, 1, 111, SAKO_EVENT_CART, 7, 10);
    ck_assert_ok(sako_update(e, ev, n));
    check_posterior(e, 111, 10.0, 0.7, 0.0, 1.0, 1.0);
    ck_assert_double_eq(sk_info(e, 111).carts, 7);
    sako_close(e);
}
END_TEST

/* Events in several batches add up to the same counts as one batch. */
START_TEST(test_batches_add_up)
{
    sako_engine *one = sk_open_mem(1), *many = sk_open_mem(1);
    sk_catalog(one);
    sk_catalog(many);
    sako_event ev[300];
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        ev[n++] = sk_ev(1 + i % 7, sk_active_ids[i % SK_N_ACTIVE], i % 4, 1000 + i);
    ck_assert_ok(sako_update(one, ev, n));
    for (size_t off = 0; off < n; off += 37)
        ck_assert_ok(sako_update(many, ev + off, n - off < 37 ? n - off : 37));
    for (int i = 0; i < SK_N_ACTIVE; i++) {
        sako_item_info x = sk_info(one, sk_active_ids[i]), y = sk_info(many, sk_active_ids[i]);
        ck_assert(sk_same_info(&x, &y));
    }
    sako_stats a = sk_stats(one), b = sk_stats(many);
    ck_assert(sk_same_stats(&a, &b));
    ck_assert_uint_eq(a.n_users, 7);
    ck_assert_uint_eq(a.n_events, 300);
    sako_close(one);
    sako_close(many);
}
END_TEST

/* Every kind of bad entry rejects the whole batch, names the entry, and leaves
 * memory untouched. */
START_TEST(test_bad_entry_rejects_batch)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event warm = sk_ev(1, 101, SAKO_EVENT_IMPRESSION, 50);
    ck_assert_ok(sako_update(e, &warm, 1));
    sako_item_info before101 = sk_info(e, 101), before102 = sk_info(e, 102);
    sako_stats before = sk_stats(e);

    struct {
        sako_event ev;
        int want;
        const char *what;
    } bad[] = {
        {{0, 101, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "user 0"},
        {{-1, 101, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "user -1"},
        {{SAKO_ID_MAX + 1, 101, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "user max+1"},
        {{INT64_MIN, 101, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "user min"},
        {{5, 0, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "item 0"},
        {{5, -101, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "item -101"},
        {{5, SAKO_ID_MAX + 1, SAKO_EVENT_CLICK, 10, 0}, SAKO_INVALID, "item max+1"},
        {{5, 101, -1, 10, 0}, SAKO_INVALID, "type -1"},
        {{5, 101, SAKO_EVENT_TYPES, 10, 0}, SAKO_INVALID, "type 4"},
        {{5, 101, 1000, 10, 0}, SAKO_INVALID, "type 1000"},
        {{5, 101, SAKO_EVENT_CLICK, -1, 0}, SAKO_INVALID, "time -1"},
        {{5, 101, SAKO_EVENT_CLICK, INT64_MIN, 0}, SAKO_INVALID, "time min"},
        {{5, 101, SAKO_EVENT_CLICK, 10, -1}, SAKO_INVALID, "rec_id -1"},
        {{5, 101, SAKO_EVENT_CLICK, 10, SAKO_ID_MAX + 1}, SAKO_INVALID, "rec_id max+1"},
        {{5, 4242, SAKO_EVENT_CLICK, 10, 0}, SAKO_NOTFOUND, "unknown item"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        /* Good entries around the bad one, including a new user (6) and other items. */
        sako_event batch[6] = {
            sk_ev(6, 101, SAKO_EVENT_IMPRESSION, 100), sk_ev(6, 101, SAKO_EVENT_CLICK, 101),
            sk_ev(1, 102, SAKO_EVENT_PURCHASE, 102),   bad[k].ev,
            sk_ev(7, 102, SAKO_EVENT_IMPRESSION, 103), sk_ev(7, 101, SAKO_EVENT_CART, 104),
        };
        int rc = sako_update(e, batch, 6);
        ck_assert_msg(rc == bad[k].want, "%s: %d (%s), want %d", bad[k].what, rc, sako_errstr(rc),
                      bad[k].want);
        ck_assert_errmsg_index(3);
        sako_item_info a = sk_info(e, 101), b = sk_info(e, 102);
        ck_assert_msg(sk_same_info(&a, &before101) && sk_same_info(&b, &before102),
                      "%s: part of the batch was applied", bad[k].what);
        sako_stats st = sk_stats(e);
        ck_assert_msg(sk_same_stats(&st, &before), "%s: stats changed", bad[k].what);
    }
    /* The bad entry first or last is named too. */
    sako_event first[3] = {sk_ev(1, 101, 9, 1), sk_ev(1, 101, 0, 1), sk_ev(1, 101, 0, 1)};
    ck_assert_rc(sako_update(e, first, 3), SAKO_INVALID);
    ck_assert_errmsg_index(0);
    sako_event last[3] = {sk_ev(1, 101, 0, 1), sk_ev(1, 101, 0, 1), sk_ev(1, 0, 0, 1)};
    ck_assert_rc(sako_update(e, last, 3), SAKO_INVALID);
    ck_assert_errmsg_index(2);
    /* A valid boundary event is accepted. */
    sako_event edge = {SAKO_ID_MAX, 101, SAKO_EVENT_CLICK, 1, SAKO_ID_MAX};
    ck_assert_ok(sako_update(e, &edge, 1));
    ck_assert_uint_eq(sk_stats(e).n_users, before.n_users + 1);
    sako_close(e);
}
END_TEST

/* The entry index in the message is the real one even deep in a big batch. */
START_TEST(test_bad_entry_index_large)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    size_t n = 5000;
    sako_event *ev = malloc(n * sizeof *ev);
    ck_assert_ptr_nonnull(ev);
    for (size_t i = 0; i < n; i++)
        ev[i] = sk_ev(1 + (int64_t)(i % 13), sk_active_ids[i % SK_N_ACTIVE], (int)(i % 4), 5);
    ev[4321].type = 17;
    ck_assert_rc(sako_update(e, ev, n), SAKO_INVALID);
    ck_assert_errmsg_index(4321);
    ck_assert_uint_eq(sk_stats(e).n_events, 0);
    ev[4321].type = 0;
    ck_assert_ok(sako_update(e, ev, n));
    ck_assert_uint_eq(sk_stats(e).n_events, n);
    ck_assert_uint_eq(sk_stats(e).n_users, 13);
    free(ev);
    sako_close(e);
}
END_TEST

START_TEST(test_update_batch_limit)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev = sk_ev(1, 101, SAKO_EVENT_CLICK, 1);
    /* A fake large n with a one-entry array: the limit is checked before reading. */
    ck_assert_rc(sako_update(e, &ev, (size_t)SAKO_MAX_BATCH + 1), SAKO_RANGE);
    ck_assert_rc(sako_update(e, &ev, SIZE_MAX), SAKO_RANGE);
    ck_assert_int_gt((int)strlen(sako_errmsg()), 0);
    ck_assert_uint_eq(sk_stats(e).n_events, 0);
    sako_close(e);
}
END_TEST

/* SAKO_MAX_BATCH events exactly are accepted in one batch. */
START_TEST(test_update_max_batch)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event *ev = malloc((size_t)SAKO_MAX_BATCH * sizeof *ev);
    ck_assert_ptr_nonnull(ev);
    for (size_t i = 0; i < SAKO_MAX_BATCH; i++)
        ev[i] = sk_ev(1 + (int64_t)(i % 1000), 201 + (int64_t)(i % 4),
                      i % 10 == 0 ? SAKO_EVENT_CLICK : SAKO_EVENT_IMPRESSION, 7);
    ck_assert_ok(sako_update(e, ev, SAKO_MAX_BATCH));
    free(ev);
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_events, SAKO_MAX_BATCH);
    ck_assert_uint_eq(st.n_users, 1000);
    sako_item_info in = sk_info(e, 201);
    ck_assert_double_eq(in.impressions + in.clicks, SAKO_MAX_BATCH / 4);
    sako_close(e);
}
END_TEST

START_TEST(test_unknown_item_reject)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev[2] = {sk_ev(1, 101, SAKO_EVENT_CLICK, 1), sk_ev(1, 777, SAKO_EVENT_CLICK, 1)};
    ck_assert_rc(sako_update(e, ev, 2), SAKO_NOTFOUND);
    ck_assert_errmsg_index(1);
    sako_item_info info;
    ck_assert_rc(sako_item_get(e, 777, &info), SAKO_NOTFOUND);
    ck_assert_double_eq(sk_info(e, 101).clicks, 0);
    ck_assert_uint_eq(sk_stats(e).n_items, SK_N_ITEMS);
    sako_close(e);
}
END_TEST

/* SAKO_UNKNOWN_CREATE: the item appears, active, at the root, with its events. */
START_TEST(test_unknown_item_create)
{
    sako_options o = sk_opts(1);
    o.unknown_items = SAKO_UNKNOWN_CREATE;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[4] = {sk_ev(1, 777, SAKO_EVENT_IMPRESSION, 10), sk_ev(1, 777, SAKO_EVENT_CLICK, 11),
                        sk_ev(2, 778, SAKO_EVENT_PURCHASE, 12), sk_ev(2, 101, SAKO_EVENT_CLICK, 13)};
    ck_assert_ok(sako_update(e, ev, 4));
    sako_item_info in = sk_info(e, 777);
    ck_assert_int_eq(in.category_id, 0);
    ck_assert_int_eq(in.active, 1);
    ck_assert_double_eq(in.impressions, 1);
    ck_assert_double_eq(in.clicks, 1);
    ck_assert_int_eq(in.last_event_at, 11);
    check_posterior(e, 777, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    ck_assert_double_eq(sk_info(e, 778).purchases, 1);
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_items, SK_N_ITEMS + 2);
    ck_assert_uint_eq(st.n_active_items, SK_N_ACTIVE + 2);
    /* A created item is recommendable at the root level. */
    sako_query q = SAKO_QUERY_INIT;
    q.k = SAKO_MAX_K;
    sako_rec r[SAKO_MAX_K];
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, r, SAKO_MAX_K, &n));
    ck_assert_uint_eq(n, SK_N_ACTIVE + 2);
    /* A batch that would create an item but has a bad entry creates nothing. */
    sako_event bad[2] = {sk_ev(1, 779, SAKO_EVENT_CLICK, 1), sk_ev(1, 101, 42, 1)};
    ck_assert_rc(sako_update(e, bad, 2), SAKO_INVALID);
    ck_assert_errmsg_index(1);
    sako_item_info info;
    ck_assert_rc(sako_item_get(e, 779, &info), SAKO_NOTFOUND);
    ck_assert_uint_eq(sk_stats(e).n_items, SK_N_ITEMS + 2);
    /* An invalid id is still invalid, not created. */
    sako_event inv = sk_ev(1, SAKO_ID_MAX + 1, SAKO_EVENT_CLICK, 1);
    ck_assert_rc(sako_update(e, &inv, 1), SAKO_INVALID);
    sako_close(e);
}
END_TEST

/* time 0 is now; out-of-order times are accepted; last_event_at is the newest. */
START_TEST(test_event_times)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev[3] = {sk_ev(1, 103, 0, 5000), sk_ev(1, 103, 0, 3000), sk_ev(1, 103, 1, 4000)};
    ck_assert_ok(sako_update(e, ev, 3));
    ck_assert_int_eq(sk_info(e, 103).last_event_at, 5000);
    sako_event older = sk_ev(1, 103, 0, 1);
    ck_assert_ok(sako_update(e, &older, 1));
    ck_assert_int_eq(sk_info(e, 103).last_event_at, 5000);
    ck_assert_double_eq(sk_info(e, 103).impressions, 3);
    int64_t t0 = sk_now_ms();
    sako_event now = sk_ev(1, 104, 0, 0);
    ck_assert_ok(sako_update(e, &now, 1));
    int64_t t1 = sk_now_ms();
    int64_t t = sk_info(e, 104).last_event_at;
    ck_assert_int_ge(t, t0);
    ck_assert_int_le(t, t1);
    sako_close(e);
}
END_TEST

/* Identical events in one batch are separate events: they all count. */
START_TEST(test_duplicate_events_count)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev[4];
    for (int i = 0; i < 4; i++)
        ev[i] = sk_ev(3, 112, SAKO_EVENT_CLICK, 99);
    ck_assert_ok(sako_update(e, ev, 4));
    ck_assert_double_eq(sk_info(e, 112).clicks, 4);
    ck_assert_uint_eq(sk_stats(e).n_events, 4);
    ck_assert_uint_eq(sk_stats(e).n_users, 1);
    sako_close(e);
}
END_TEST

/* Category priors move only at a refresh, every prior_refresh_events events: then a
 * category that converts well gets a higher prior than one that does not. */
START_TEST(test_prior_refresh)
{
    sako_options o = sk_opts(1);
    o.prior_refresh_events = 400;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    double root0, fruit0, yog0;
    ck_assert_ok(sako_category_prior(e, 0, &root0));
    ck_assert_ok(sako_category_prior(e, 21, &fruit0));
    ck_assert_ok(sako_category_prior(e, 11, &yog0));
    sako_event ev[200];
    size_t n = 0;
    /* Fruit converts at 50 %, yoghurt at 0 %. */
    for (int64_t id = 201; id <= 204; id++) {
        sk_push(ev, &n, 1, id, SAKO_EVENT_IMPRESSION, 25, 10);
        sk_push(ev, &n, 1, id, SAKO_EVENT_CLICK, 12, 10);
    }
    ck_assert_uint_eq(n, 148);
    ck_assert_ok(sako_update(e, ev, n));
    n = 0;
    for (int64_t id = 101; id <= 105; id++)
        sk_push(ev, &n, 1, id, SAKO_EVENT_IMPRESSION, 40, 10);
    ck_assert_ok(sako_update(e, ev, n)); /* 348 events: below the refresh */
    double fruit1, yog1;
    ck_assert_ok(sako_category_prior(e, 21, &fruit1));
    ck_assert_ok(sako_category_prior(e, 11, &yog1));
    ck_assert_double_eq(fruit1, fruit0);
    ck_assert_double_eq(yog1, yog0);
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 348);

    n = 0;
    sk_push(ev, &n, 2, 111, SAKO_EVENT_IMPRESSION, 60, 10);
    ck_assert_ok(sako_update(e, ev, n)); /* 408 events: a refresh */
    ck_assert_uint_lt(sk_stats(e).events_since_refresh, 400);
    double root2, fruit2, yog2, dairy2;
    ck_assert_ok(sako_category_prior(e, 0, &root2));
    ck_assert_ok(sako_category_prior(e, 21, &fruit2));
    ck_assert_ok(sako_category_prior(e, 11, &yog2));
    ck_assert_ok(sako_category_prior(e, 1, &dairy2));
    ck_assert_msg(fruit2 > root2 && root2 > yog2, "fruit %g, root %g, yoghurt %g", fruit2, root2,
                  yog2);
    ck_assert_msg(dairy2 < root2, "dairy %g, root %g", dairy2, root2);
    /* Items start from the new priors, and their posteriors follow. */
    check_posterior(e, 202, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    check_posterior(e, 103, sk_options(e).prior_strength, 0.7, 0.85, 1.0, 1.0);
    sako_item_info fresh = sk_info(e, 190);
    ck_assert_double_eq(fresh.prior_mean, yog2);
    sako_close(e);
}
END_TEST

/* The refresh schedule: after prior_refresh_events events, once the log has also
 * grown by 25 % since the last refresh. */
START_TEST(test_prior_refresh_schedule)
{
    sako_options o = sk_opts(1);
    o.prior_refresh_events = 100;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    static sako_event ev[1000];
    for (int i = 0; i < 1000; i++)
        ev[i] = sk_ev(1, sk_active_ids[i % SK_N_ACTIVE], i % 5 ? 0 : 1, 1);
    ck_assert_ok(sako_update(e, ev, 99));
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 99); /* fewer than N */
    ck_assert_ok(sako_update(e, ev, 901));
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0); /* 1000 >= N, log new */
    ck_assert_ok(sako_update(e, ev, 100));
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 100); /* N, but 10 % growth */
    ck_assert_ok(sako_update(e, ev, 100));
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 200); /* 20 % */
    ck_assert_ok(sako_update(e, ev, 60));
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0); /* 26 % */
    ck_assert_uint_eq(sk_stats(e).n_events, 1260);
    sako_close(e);
}
END_TEST

Suite *suite_events(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reward_rule_default);
    tcase_add_test(tc, test_reward_rule_flat_custom);
    tcase_add_test(tc, test_reward_rule_strength);
    tcase_add_test(tc, test_batches_add_up);
    tcase_add_test(tc, test_bad_entry_rejects_batch);
    tcase_add_test(tc, test_bad_entry_index_large);
    tcase_add_test(tc, test_update_batch_limit);
    tcase_add_test(tc, test_update_max_batch);
    tcase_add_test(tc, test_unknown_item_reject);
    tcase_add_test(tc, test_unknown_item_create);
    tcase_add_test(tc, test_event_times);
    tcase_add_test(tc, test_duplicate_events_count);
    tcase_add_test(tc, test_prior_refresh);
    tcase_add_test(tc, test_prior_refresh_schedule);
    suite_add_tcase(s, tc);
    return s;
}
