/* Status codes, their static descriptions, the per-thread message, versions. */
#include <pthread.h>

#include "check_sako.h"

static const int all_codes[] = {SAKO_OK,     SAKO_ERROR, SAKO_NOMEM,   SAKO_INVALID,
                                SAKO_NOTFOUND, SAKO_RANGE, SAKO_IO,    SAKO_CORRUPT,
                                SAKO_BUSY,   SAKO_MISUSE, SAKO_VERSION};
#define N_CODES (sizeof all_codes / sizeof all_codes[0])

/* The values are part of the ABI: never renumbered. */
START_TEST(test_status_values)
{
    ck_assert_int_eq(SAKO_OK, 0);
    ck_assert_int_eq(SAKO_ERROR, -1);
    ck_assert_int_eq(SAKO_NOMEM, -2);
    ck_assert_int_eq(SAKO_INVALID, -3);
    ck_assert_int_eq(SAKO_NOTFOUND, -4);
    ck_assert_int_eq(SAKO_RANGE, -5);
    ck_assert_int_eq(SAKO_IO, -6);
    ck_assert_int_eq(SAKO_CORRUPT, -7);
    ck_assert_int_eq(SAKO_BUSY, -8);
    ck_assert_int_eq(SAKO_MISUSE, -9);
    ck_assert_int_eq(SAKO_VERSION, -10);
    ck_assert_int_eq(SAKO_EVENT_TYPES, 4);
    ck_assert_int_eq(SAKO_EVENT_PURCHASE + 1, SAKO_EVENT_TYPES);
}
END_TEST

/* Every code has its own non-empty, static description; others share "unknown status". */
START_TEST(test_errstr_distinct_static)
{
    const char *unknown = sako_errstr(12345);
    ck_assert_ptr_nonnull(unknown);
    ck_assert_str_eq(unknown, "unknown status");
    for (size_t i = 0; i < N_CODES; i++) {
        const char *s = sako_errstr(all_codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_int_gt((int)strlen(s), 0);
        ck_assert_str_ne(s, unknown);
        /* Static: the same pointer every time, and unchanged by other calls. */
        ck_assert_ptr_eq(s, sako_errstr(all_codes[i]));
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(strcmp(s, sako_errstr(all_codes[j])) != 0,
                          "codes %d and %d share the description \"%s\"", all_codes[i],
                          all_codes[j], s);
    }
    static const int others[] = {1, 2, -11, -12, -100, 1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        ck_assert_str_eq(sako_errstr(others[i]), "unknown status");
}
END_TEST

START_TEST(test_version)
{
    ck_assert_int_eq(sako_version_number(), SAKO_VERSION_NUMBER);
    ck_assert_str_eq(sako_version_string(), SAKO_VERSION_STRING);
    ck_assert_int_eq(SAKO_VERSION_NUMBER,
                     SAKO_VERSION_MAJOR * 10000 + SAKO_VERSION_MINOR * 100 + SAKO_VERSION_PATCH);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", SAKO_VERSION_MAJOR, SAKO_VERSION_MINOR,
             SAKO_VERSION_PATCH);
    ck_assert_str_eq(sako_version_string(), buf);
    ck_assert_int_eq(sako_threadsafe(), 1);
}
END_TEST

/* A failure leaves a message; a success clears it; it is never NULL. */
START_TEST(test_errmsg_set_and_cleared)
{
    ck_assert_ptr_nonnull(sako_errmsg());
    ck_assert_rc(sako_init(NULL, NULL, NULL), SAKO_MISUSE);
    ck_assert_ptr_nonnull(sako_errmsg());
    ck_assert_int_gt((int)strlen(sako_errmsg()), 0);

    sako_engine *e = sk_open_mem(1);
    ck_assert_str_eq(sako_errmsg(), "");
    ck_assert_rc(sako_item_get(e, 424242, &(sako_item_info){0}), SAKO_NOTFOUND);
    ck_assert_int_gt((int)strlen(sako_errmsg()), 0);
    sako_stats st;
    ck_assert_ok(sako_stats_get(e, &st));
    ck_assert_str_eq(sako_errmsg(), "");

    /* Each failing call leaves its own message. */
    ck_assert_rc(sako_item_get(e, -5, &(sako_item_info){0}), SAKO_INVALID);
    char first[600];
    snprintf(first, sizeof first, "%s", sako_errmsg());
    ck_assert_rc(sako_stats_get(e, NULL), SAKO_MISUSE);
    ck_assert_str_ne(sako_errmsg(), first);
    sako_close(e);
}
END_TEST

/* Every successful call leaves "" whatever failed before it. */
static void fail_first(sako_engine *e)
{
    sako_item_info info;
    ck_assert_rc(sako_item_get(e, 0, &info), SAKO_INVALID);
    ck_assert_str_ne(sako_errmsg(), "");
}

START_TEST(test_errmsg_cleared_by_every_success)
{
    sako_engine *e = sk_open_mem(1);
    sako_category c = {1, 0, "c"};
    sako_item it = {1, 1, 1, 0};
    sako_event ev = sk_ev(1, 1, SAKO_EVENT_CLICK, 0);
    sako_query q = SAKO_QUERY_INIT;
    sako_rec r[20];
    size_t n;
    sako_item_info info;
    sako_stats st;
    sako_options o;
    double m;
    fail_first(e);
    ck_assert_ok(sako_categories_upsert(e, &c, 1));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_items_upsert(e, &it, 1));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_update(e, &ev, 1));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_update(e, NULL, 0));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_str_eq(sako_errmsg(), "");
    q.k = 0;
    fail_first(e);
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_retrain(e));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_item_get(e, 1, &info));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_category_prior(e, 1, &m));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_stats_get(e, &st));
    ck_assert_str_eq(sako_errmsg(), "");
    fail_first(e);
    ck_assert_ok(sako_options_get(e, &o));
    ck_assert_str_eq(sako_errmsg(), "");
    sako_engine *e2 = NULL;
    fail_first(e);
    ck_assert_ok(sako_init(&e2, NULL, NULL));
    ck_assert_str_eq(sako_errmsg(), "");
    sako_close(e2);
    sako_close(e);
}
END_TEST

/* The message is per thread: another thread's failures do not touch it. */
typedef struct msg_thread {
    pthread_barrier_t *barrier;
    char seen_at_start[600];
    char own[600];
    char own_after[600];
} msg_thread;

static void *msg_worker(void *arg)
{
    msg_thread *t = arg;
    /* Step 1: the main thread has failed; this thread's message is still empty. */
    pthread_barrier_wait(t->barrier);
    snprintf(t->seen_at_start, sizeof t->seen_at_start, "%s", sako_errmsg());
    sako_options bad = SAKO_OPTIONS_INIT;
    bad.version = 77;
    sako_engine *e = (sako_engine *)&bad; /* must be overwritten with NULL */
    int rc = sako_init(&e, NULL, &bad);
    snprintf(t->own, sizeof t->own, "%d %s %s", rc, e == NULL ? "null" : "set", sako_errmsg());
    /* Step 2: let the main thread fail again, then re-read this thread's message. */
    pthread_barrier_wait(t->barrier);
    pthread_barrier_wait(t->barrier);
    snprintf(t->own_after, sizeof t->own_after, "%s", sako_errmsg());
    return NULL;
}

START_TEST(test_errmsg_thread_local)
{
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    msg_thread t;
    memset(&t, 0, sizeof t);
    t.barrier = &barrier;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, msg_worker, &t), 0);

    ck_assert_rc(sako_init(NULL, NULL, NULL), SAKO_MISUSE);
    char mine[600];
    snprintf(mine, sizeof mine, "%s", sako_errmsg());
    ck_assert_int_gt((int)strlen(mine), 0);
    pthread_barrier_wait(&barrier); /* step 1 */
    pthread_barrier_wait(&barrier); /* worker has failed with INVALID */
    /* The worker's failure did not change this thread's message. */
    ck_assert_str_eq(sako_errmsg(), mine);
    sako_engine *e = sk_open_mem(3);
    ck_assert_rc(sako_recommend(e, NULL, NULL, 0, NULL), SAKO_MISUSE);
    pthread_barrier_wait(&barrier); /* step 2 */
    pthread_join(th, NULL);
    sako_close(e);
    pthread_barrier_destroy(&barrier);

    ck_assert_str_eq(t.seen_at_start, "");
    char want[32];
    snprintf(want, sizeof want, "%d null ", SAKO_INVALID);
    ck_assert_msg(strncmp(t.own, want, strlen(want)) == 0 && strlen(t.own) > strlen(want),
                  "worker saw \"%s\"", t.own);
    ck_assert_str_eq(t.own_after, t.own + strlen(want));
}
END_TEST

/* The getters that make check's coverage showed untested with a NULL engine or
 * out-pointer: each is SAKO_MISUSE with a message, never a crash. */
START_TEST(test_getters_refuse_null)
{
    sako_engine *e = sk_open_mem(1);
    sako_user_info u;
    sako_user_item ui;
    sako_policy p;
    sako_retrain_status rs;
    ck_assert_rc(sako_user_get(NULL, 1, &u), SAKO_MISUSE);
    ck_assert_rc(sako_user_get(e, 1, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_user_item_get(NULL, 1, 1, &ui), SAKO_MISUSE);
    ck_assert_rc(sako_user_item_get(e, 1, 1, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_policy_get(NULL, &p), SAKO_MISUSE);
    ck_assert_rc(sako_policy_get(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_due(NULL, &rs), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_due(e, NULL), SAKO_MISUSE);
    ck_assert_int_gt((int)strlen(sako_errmsg()), 0);
    sako_close(e);
}
END_TEST

/* A users row damaged on disk (an id out of range) is refused at open, naming it. */
START_TEST(test_damaged_user_row_refused)
{
    static const char *const bad[] = { "0", "-5", "9007199254740992" };
    char path[512];
    sk_tmp_path(path, sizeof path, "errors-user-row");
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sako_options o = sk_opts(1);
        sako_engine *e = sk_open_opts(path, &o);
        if (i == 0) {
            sk_catalog(e);
            sako_event ev = { 7, 101, SAKO_EVENT_CLICK, 1700000000000LL, 0 };
            ck_assert_ok(sako_update(e, &ev, 1));
        }
        sako_close(e); /* writes the users' totals */
        char sql[160];
        snprintf(sql, sizeof sql, "UPDATE users SET id = %s WHERE id = (SELECT max(id) FROM users)",
                 bad[i]);
        sk_sql_exec(path, sql);
        ck_assert_rc(sako_init(&e, path, &o), SAKO_CORRUPT);
        ck_assert_ptr_null(e);
        ck_assert_ptr_nonnull(strstr(sako_errmsg(), bad[i]));
        sk_sql_exec(path, "UPDATE users SET id = 7");
    }
}
END_TEST

/* The metadata table missing any one of its keys (a hand-edited or damaged file):
 * open refuses the file (SAKO_CORRUPT, "metadata incomplete") and leaves it as it
 * was; put back, it opens. A row without a key is not one of ours and is skipped. */
START_TEST(test_metadata_missing_key_refused)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "errors-meta");
    sako_options o = sk_opts(1);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event ev = { 7, 101, SAKO_EVENT_PURCHASE, 1700000000000LL, 0 };
    ck_assert_ok(sako_update(e, &ev, 1));
    sako_close(e);
    int64_t keys = sk_sql_int(path, "SELECT count(*) FROM sako_meta");
    ck_assert_int_ge(keys, 35);
    static const char *const some[] = { "reward_click", "n_events", "basket_gap_ms",
                                        "decay_latest", "compact_events" };
    for (size_t i = 0; i < sizeof some / sizeof *some; i++) {
        char sql[200];
        snprintf(sql, sizeof sql, "CREATE TABLE saved AS SELECT * FROM sako_meta WHERE key = '%s';"
                 " DELETE FROM sako_meta WHERE key = '%s'", some[i], some[i]);
        sk_sql_exec(path, sql);
        ck_assert_int_eq(sk_sql_int(path, "SELECT count(*) FROM sako_meta"), keys - 1);
        ck_assert_rc(sako_init(&e, path, &o), SAKO_CORRUPT);
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), "metadata incomplete"), "%s: %s", some[i],
                      sako_errmsg());
        ck_assert_int_eq(sk_sql_int(path, "SELECT count(*) FROM sako_meta"), keys - 1);
        sk_sql_exec(path, "INSERT INTO sako_meta SELECT * FROM saved; DROP TABLE saved");
    }
    sk_sql_exec(path, "INSERT INTO sako_meta(key, value) VALUES(NULL, 1)");
    e = sk_open_opts(path, &o);
    ck_assert_double_eq(sk_info(e, 101).purchases, 1);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

Suite *suite_errors(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_status_values);
    tcase_add_test(tc, test_errstr_distinct_static);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_errmsg_set_and_cleared);
    tcase_add_test(tc, test_errmsg_thread_local);
    tcase_add_test(tc, test_errmsg_cleared_by_every_success);
    tcase_add_test(tc, test_getters_refuse_null);
    tcase_add_test(tc, test_damaged_user_row_refused);
    tcase_add_test(tc, test_metadata_missing_key_refused);
    suite_add_tcase(s, tc);
    return s;
}
