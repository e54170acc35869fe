/* A replica's calls (issue 11): batches applied at an external log position, skipped
 * at or below the stored one, the position stored with the batch and kept by a
 * reopen, validation failures consuming their position, bad arguments refused, and
 * two replicas fed the same log ending bit for bit equal. */
#include "check_sako.h"

#define RP_T0 1700000000000LL

static int64_t rp_position(sako_engine *e)
{
    int64_t p = -1;
    ck_assert_ok(sako_log_position(e, &p));
    return p;
}

/* Batch b of a fixed stream: events on the small catalog (and, every 5th batch, on
 * an item the batch creates under SAKO_UNKNOWN_CREATE). */
static size_t rp_batch(int b, sako_event *ev)
{
    static const int64_t items[] = {101, 102, 103, 111, 112, 150, 201, 202, 301};
    size_t n = 0;
    for (int i = 0; i < 12; i++) {
        int64_t item = items[(b * 7 + i * 3) % 9];
        int type = (b + i) % 5 == 0 ? SAKO_EVENT_PURCHASE : (b + i) % 3 == 0 ? SAKO_EVENT_CLICK
                                                                              : SAKO_EVENT_IMPRESSION;
        ev[n++] = sk_ev(1 + (b * 5 + i) % 17, item, type, RP_T0 + (int64_t)b * 3600000 + i);
    }
    if (b % 5 == 4)
        ev[n++] = sk_ev(3, 9000 + b, SAKO_EVENT_PURCHASE, RP_T0 + (int64_t)b * 3600000 + 99);
    return n;
}

static sako_options rp_opts(void)
{
    sako_options o = sk_opts(7);
    o.unknown_items = SAKO_UNKNOWN_CREATE;
    o.personal = 1;
    o.prior_refresh_events = 40; /* prior epochs happen during the stream */
    return o;
}

static void rp_catalog_at(sako_engine *e, int64_t cat_pos, int64_t item_pos)
{
    static const sako_category cats[] = {
        {1, 0, "Dairy"}, {11, 1, "Yoghurt"}, {12, 1, "Milk"}, {2, 0, "Produce"}, {21, 2, "Fruit"},
    };
    int outcome = -1;
    ck_assert_ok(sako_categories_upsert_at(e, cat_pos, cats, 5, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
    static const sako_item items[] = {
        {101, 11, 1, 1000}, {102, 11, 1, 1000}, {103, 11, 1, 1000}, {111, 12, 1, 1000},
        {112, 12, 1, 1000}, {150, 1, 1, 1000},  {201, 21, 1, 1000}, {202, 21, 1, 1000},
        {301, 0, 1, 1000},
    };
    ck_assert_ok(sako_items_upsert_at(e, item_pos, items, 9, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
}

START_TEST(skip_at_or_below)
{
    sako_options o = rp_opts();
    sako_engine *e = sk_open_opts(NULL, &o);
    ck_assert_int_eq(rp_position(e), 0);
    rp_catalog_at(e, 1, 2);
    ck_assert_int_eq(rp_position(e), 2);
    sako_event ev[16];
    size_t n = rp_batch(0, ev);
    int outcome = -1;
    ck_assert_ok(sako_update_at(e, 5, ev, NULL, n, &outcome)); /* a gap: 3 and 4 elsewhere */
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
    ck_assert_int_eq(rp_position(e), 5);
    sako_stats before = sk_stats(e);
    sako_item_info info = sk_info(e, ev[0].item_id);
    /* A redelivery, and an older position: skipped, nothing changes. */
    ck_assert_ok(sako_update_at(e, 5, ev, NULL, n, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    ck_assert_ok(sako_update_at(e, 3, ev, NULL, n, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    sako_item other = {101, 12, 0, 5};
    ck_assert_ok(sako_items_upsert_at(e, 4, &other, 1, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    sako_category cat = {11, 0, "moved"};
    ck_assert_ok(sako_categories_upsert_at(e, 1, &cat, 1, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    ck_assert_ok(sako_retrain_at(e, 5, SAKO_RETRAIN_MANUAL, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    sako_stats after = sk_stats(e);
    ck_assert(sk_same_stats(&before, &after));
    sako_item_info again = sk_info(e, ev[0].item_id);
    ck_assert(sk_same_info(&info, &again));
    ck_assert_int_eq(sk_info(e, 101).category_id, 11);
    ck_assert_int_eq(rp_position(e), 5);
    /* The outcome may be omitted. */
    ck_assert_ok(sako_update_at(e, 6, ev, NULL, n, NULL));
    ck_assert_int_eq(sk_stats(e).n_events, before.n_events + n);
    ck_assert_int_eq(rp_position(e), 6);
    sako_close(e);
}
END_TEST

START_TEST(rejected_consumes_position)
{
    sako_options o = sk_opts(3); /* unknown items rejected */
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_stats before = sk_stats(e);
    int outcome = -1;
    /* A bad type in entry 1: rejected whole, position consumed, message names it. */
    sako_event bad[2] = {sk_ev(1, 101, SAKO_EVENT_CLICK, RP_T0), sk_ev(1, 102, 9, RP_T0)};
    ck_assert_rc(sako_update_at(e, 10, bad, NULL, 2, &outcome), SAKO_INVALID);
    ck_assert_errmsg_index(1);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "log position 10"));
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    ck_assert_int_eq(rp_position(e), 10);
    sako_stats after = sk_stats(e);
    ck_assert(sk_same_stats(&before, &after));
    ck_assert_ok(sako_update_at(e, 10, bad, NULL, 2, &outcome)); /* redelivered: skipped */
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    /* Time 0 ("now") is the replica's clock: refused in a replicated batch. */
    sako_event now = sk_ev(1, 101, SAKO_EVENT_CLICK, 0);
    ck_assert_rc(sako_update_at(e, 11, &now, NULL, 1, &outcome), SAKO_INVALID);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    /* An unknown item (SAKO_UNKNOWN_REJECT): NOTFOUND, consumed. */
    sako_event unknown = sk_ev(1, 77777, SAKO_EVENT_CLICK, RP_T0);
    ck_assert_rc(sako_update_at(e, 12, &unknown, NULL, 1, &outcome), SAKO_NOTFOUND);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    ck_assert_int_eq(rp_position(e), 12);
    /* A bad order id, and a batch over the limit (RANGE, before anything is read). */
    sako_event ok = sk_ev(1, 101, SAKO_EVENT_PURCHASE, RP_T0);
    int64_t order = -1;
    ck_assert_rc(sako_update_at(e, 13, &ok, &order, 1, &outcome), SAKO_INVALID);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    ck_assert_rc(sako_update_at(e, 14, &ok, NULL, (size_t)SAKO_MAX_BATCH + 1, &outcome), SAKO_RANGE);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    /* Catalog: an added_at of 0, an unknown category, a cycle. */
    sako_item item_now = {400, 11, 1, 0};
    ck_assert_rc(sako_items_upsert_at(e, 15, &item_now, 1, &outcome), SAKO_INVALID);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    sako_item item_cat = {400, 99, 1, 5};
    ck_assert_rc(sako_items_upsert_at(e, 16, &item_cat, 1, &outcome), SAKO_NOTFOUND);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    sako_category cycle = {1, 11, NULL};
    ck_assert_rc(sako_categories_upsert_at(e, 17, &cycle, 1, &outcome), SAKO_INVALID);
    ck_assert_int_eq(outcome, SAKO_AT_REJECTED);
    ck_assert_int_eq(rp_position(e), 17);
    after = sk_stats(e);
    ck_assert(sk_same_stats(&before, &after));
    ck_assert_rc(sako_item_get(e, 400, &(sako_item_info){0}), SAKO_NOTFOUND);
    /* An empty batch only consumes its position. */
    ck_assert_ok(sako_update_at(e, 18, NULL, NULL, 0, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
    ck_assert_ok(sako_items_upsert_at(e, 19, NULL, 0, &outcome));
    ck_assert_ok(sako_categories_upsert_at(e, 20, NULL, 0, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
    ck_assert_int_eq(rp_position(e), 20);
    sako_close(e);
}
END_TEST

START_TEST(bad_arguments)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev = sk_ev(1, 101, SAKO_EVENT_CLICK, RP_T0);
    sako_item item = {500, 11, 1, 5};
    sako_category cat = {50, 0, "x"};
    int outcome = -1;
    int64_t pos;
    ck_assert_rc(sako_log_position(NULL, &pos), SAKO_MISUSE);
    ck_assert_rc(sako_log_position(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_update_at(NULL, 1, &ev, NULL, 1, &outcome), SAKO_MISUSE);
    ck_assert_int_eq(outcome, SAKO_AT_NONE);
    ck_assert_rc(sako_items_upsert_at(NULL, 1, &item, 1, &outcome), SAKO_MISUSE);
    ck_assert_rc(sako_categories_upsert_at(NULL, 1, &cat, 1, &outcome), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_at(NULL, 1, SAKO_RETRAIN_MANUAL, &outcome), SAKO_MISUSE);
    /* NULL entries with n > 0: a caller's bug, nothing consumed. */
    ck_assert_rc(sako_update_at(e, 1, NULL, NULL, 3, &outcome), SAKO_MISUSE);
    ck_assert_rc(sako_items_upsert_at(e, 1, NULL, 3, &outcome), SAKO_MISUSE);
    ck_assert_rc(sako_categories_upsert_at(e, 1, NULL, 3, &outcome), SAKO_MISUSE);
    ck_assert_int_eq(outcome, SAKO_AT_NONE);
    /* Positions start at 1; bad retrain reasons consume nothing either. */
    ck_assert_rc(sako_update_at(e, 0, &ev, NULL, 1, &outcome), SAKO_INVALID);
    ck_assert_rc(sako_update_at(e, -5, &ev, NULL, 1, &outcome), SAKO_INVALID);
    ck_assert_rc(sako_items_upsert_at(e, 0, &item, 1, &outcome), SAKO_INVALID);
    ck_assert_rc(sako_categories_upsert_at(e, INT64_MIN, &cat, 1, &outcome), SAKO_INVALID);
    ck_assert_rc(sako_retrain_at(e, 0, SAKO_RETRAIN_MANUAL, &outcome), SAKO_INVALID);
    ck_assert_rc(sako_retrain_at(e, 1, 0, &outcome), SAKO_INVALID);
    ck_assert_rc(sako_retrain_at(e, 1, 64, &outcome), SAKO_INVALID);
    ck_assert_int_eq(outcome, SAKO_AT_NONE);
    ck_assert_int_eq(rp_position(e), 0);
    ck_assert_int_eq(sk_stats(e).n_events, 0);
    sako_close(e);
}
END_TEST

/* The position is on disk with its batch: a reopen resumes after it; a write that
 * cannot commit (another connection holds the lock) leaves both as they were. */
START_TEST(reopen_and_same_transaction)
{
    char path[1024];
    sk_tmp_path(path, sizeof path, "replica-reopen");
    sako_options o = rp_opts();
    o.busy_timeout_ms = 50;
    sako_engine *e = sk_open_opts(path, &o);
    rp_catalog_at(e, 1, 2);
    sako_event ev[16];
    for (int b = 0; b < 20; b++) {
        size_t n = rp_batch(b, ev);
        ck_assert_ok(sako_update_at(e, 10 + 2 * b, ev, NULL, n, NULL));
    }
    ck_assert_ok(sako_retrain_at(e, 60, SAKO_RETRAIN_MANUAL, NULL));
    ck_assert_int_eq(sk_sql_int(path, "SELECT value FROM sako_meta WHERE key = 'log_position'"), 60);
    sako_stats st = sk_stats(e);
    ck_assert_int_eq(st.model_version, 1);

    /* Another connection holds the write lock: the batch fails (BUSY), unconsumed. */
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    size_t n = rp_batch(30, ev);
    int outcome = -1;
    ck_assert_rc(sako_update_at(e, 61, ev, NULL, n, &outcome), SAKO_BUSY);
    ck_assert_int_eq(outcome, SAKO_AT_NONE);
    ck_assert_int_eq(rp_position(e), 60);
    ck_assert_int_eq(sk_stats(e).n_events, st.n_events);
    ck_assert_rc(sako_retrain_at(e, 61, SAKO_RETRAIN_MANUAL, &outcome), SAKO_BUSY);
    ck_assert_int_eq(outcome, SAKO_AT_NONE);
    ck_assert_int_eq(sk_stats(e).model_version, 1);
    ck_assert_int_eq(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(sk_sql_int(path, "SELECT value FROM sako_meta WHERE key = 'log_position'"), 60);
    ck_assert_ok(sako_update_at(e, 61, ev, NULL, n, &outcome)); /* the retry applies it */
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
    st = sk_stats(e);
    sako_item_info before[9];
    static const int64_t ids[] = {101, 102, 103, 111, 112, 150, 201, 202, 301};
    for (int i = 0; i < 9; i++)
        before[i] = sk_info(e, ids[i]);
    sako_close(e);

    e = sk_open_opts(path, &o);
    ck_assert_int_eq(rp_position(e), 61);
    /* Every batch redelivered after the restart is skipped. */
    for (int b = 0; b < 20; b++) {
        size_t m = rp_batch(b, ev);
        ck_assert_ok(sako_update_at(e, 10 + 2 * b, ev, NULL, m, &outcome));
        ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    }
    ck_assert_ok(sako_retrain_at(e, 60, SAKO_RETRAIN_MANUAL, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_SKIPPED);
    sako_stats again = sk_stats(e);
    ck_assert(sk_same_stats(&st, &again));
    for (int i = 0; i < 9; i++) {
        sako_item_info x = sk_info(e, ids[i]);
        ck_assert_msg(sk_same_info(&before[i], &x), "item %lld differs after reopen",
                      (long long)ids[i]);
    }
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Two replicas fed the same log (one of them killed and reopened half-way, with
 * every batch redelivered, and its retrain entry applied on a catalog large enough
 * for a background prior refresh) end bit for bit equal, created items included. */
START_TEST(replicas_converge)
{
    enum { N_BIG = 10050 };
    char pa[1024], pb[1024];
    sk_tmp_path(pa, sizeof pa, "replica-a");
    sk_tmp_path(pb, sizeof pb, "replica-b");
    sako_options o = rp_opts();
    sako_engine *a = sk_open_opts(pa, &o), *b = sk_open_opts(pb, &o);
    sako_item *big = malloc(N_BIG * sizeof *big);
    ck_assert_ptr_nonnull(big);
    for (int i = 0; i < N_BIG; i++)
        big[i] = (sako_item){20000 + i, i % 2 ? 11 : 21, 1, RP_T0 - i};
    sako_engine *both[2] = {a, b};
    for (int r = 0; r < 2; r++) {
        rp_catalog_at(both[r], 1, 2);
        ck_assert_ok(sako_items_upsert_at(both[r], 3, big, N_BIG, NULL));
    }
    sako_event ev[16];
    for (int k = 0; k < 60; k++) {
        size_t n = rp_batch(k, ev);
        int64_t pos = 10 + k;
        ck_assert_ok(sako_update_at(a, pos, ev, NULL, n, NULL));
        if (k == 30) {
            ck_assert_ok(sako_retrain_at(a, 1000, SAKO_RETRAIN_MANUAL, NULL));
            break;
        }
    }
    sako_close(a);
    a = sk_open_opts(pa, &o);
    /* Replica a gets everything again; b once. */
    for (int r = 0; r < 2; r++) {
        sako_engine *e = r ? b : a;
        for (int k = 0; k < 60; k++) {
            size_t n = rp_batch(k, ev);
            ck_assert_ok(sako_update_at(e, 10 + k, ev, NULL, n, NULL));
            if (k == 30)
                ck_assert_ok(sako_retrain_at(e, 1000, SAKO_RETRAIN_MANUAL, NULL));
        }
    }
    /* Positions must increase: after the retrain entry (1000) batches 31.. at 41..
     * were skipped by both. Feed them past it. */
    for (int r = 0; r < 2; r++)
        for (int k = 31; k < 60; k++) {
            size_t n = rp_batch(k, ev);
            int outcome = -1;
            ck_assert_ok(sako_update_at(r ? b : a, 1001 + k, ev, NULL, n, &outcome));
            ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
        }
    sako_stats sa = sk_stats(a), sb = sk_stats(b);
    ck_assert(sk_same_stats(&sa, &sb));
    ck_assert_int_eq(sa.model_version, 1);
    ck_assert_int_eq(rp_position(a), rp_position(b));
    for (int k = 0; k < 60; k++) {
        int64_t id = k % 5 == 4 ? 9000 + k : 0;
        sako_item_info x, y;
        if (id) {
            x = sk_info(a, id);
            y = sk_info(b, id);
            ck_assert(sk_same_info(&x, &y));
            ck_assert_int_eq(x.added_at, RP_T0 + (int64_t)k * 3600000 + 99);
        }
    }
    for (int i = 0; i < N_BIG; i += 7) {
        sako_item_info x = sk_info(a, 20000 + i), y = sk_info(b, 20000 + i);
        ck_assert_msg(sk_same_info(&x, &y), "item %d differs", 20000 + i);
    }
    static const int64_t ids[] = {101, 102, 103, 111, 112, 150, 201, 202, 301};
    for (int i = 0; i < 9; i++) {
        sako_item_info x = sk_info(a, ids[i]), y = sk_info(b, ids[i]);
        ck_assert_msg(sk_same_info(&x, &y), "item %lld differs", (long long)ids[i]);
    }
    for (int64_t u = 1; u <= 17; u++) {
        sako_user_info x, y;
        ck_assert_ok(sako_user_get(a, u, &x));
        ck_assert_ok(sako_user_get(b, u, &y));
        ck_assert(x.n_events == y.n_events && x.n_baskets == y.n_baskets &&
                  sk_same_double(x.weight, y.weight) && x.last_basket_at == y.last_basket_at);
    }
    free(big);
    sako_close(a);
    sako_close(b);
    sk_remove_db(pa);
    sk_remove_db(pb);
}
END_TEST

Suite *suite_replica(void)
{
    Suite *s = suite_create("replica");
    TCase *t = tcase_create("positions");
    tcase_add_test(t, skip_at_or_below);
    tcase_add_test(t, rejected_consumes_position);
    tcase_add_test(t, bad_arguments);
    tcase_add_test(t, reopen_and_same_transaction);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("converge");
    tcase_set_timeout(c, 120);
    tcase_add_test(c, replicas_converge);
    suite_add_tcase(s, c);
    return s;
}
