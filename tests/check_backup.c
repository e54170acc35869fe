/* Online backup: a backup taken while updates continue opens as the engine was at
 * one acknowledged instant (every item's posterior, every user's state), holds every
 * batch acknowledged before the backup started, and bad targets are refused without
 * touching anything. */
#include <pthread.h>
#include <sqlite3.h>

#include "backup_internal.h"
#include "check_sako.h"
#include "sampler_internal.h"

enum { BK_ITEMS = 80, BK_USERS = 50, BK_PRELOAD = 40, BK_MAX_BATCHES = 4000 };

static sako_options bk_opts(void)
{
    sako_options o = sk_opts(91);
    o.personal = 1;                 /* users' histories are part of the state compared */
    o.prior_refresh_events = 500;   /* prior epochs happen during the run */
    return o;
}

static void bk_catalog(sako_engine *e)
{
    sako_category cats[] = {{1, 0, "A"}, {2, 1, "A1"}, {3, 0, "B"}};
    ck_assert_ok(sako_categories_upsert(e, cats, 3));
    sako_item items[BK_ITEMS];
    for (int i = 0; i < BK_ITEMS; i++)
        items[i] = (sako_item){i + 1, i % 4 == 3 ? 0 : 1 + i % 3, 1, 1000 + i};
    ck_assert_ok(sako_items_upsert(e, items, BK_ITEMS));
}

/* Batch b: a fixed-seed mix of impressions, clicks and purchases, with orders. */
static size_t bk_batch(int b, sako_event *ev, int64_t *orders)
{
    sako_rng r;
    sako__rng_seed(&r, 5000 + (uint64_t)b);
    size_t n = 10 + (size_t)(sako__rng_uniform(&r) * 40);
    for (size_t i = 0; i < n; i++) {
        int64_t item = 1 + (int64_t)(sako__rng_uniform(&r) * BK_ITEMS);
        int64_t user = 1 + (int64_t)(sako__rng_uniform(&r) * BK_USERS);
        double u = sako__rng_uniform(&r);
        int type = u < 0.7 ? SAKO_EVENT_IMPRESSION : u < 0.85 ? SAKO_EVENT_CLICK : SAKO_EVENT_PURCHASE;
        ev[i] = sk_ev(user > BK_USERS ? BK_USERS : user, item > BK_ITEMS ? BK_ITEMS : item, type,
                      1700000000000LL + (int64_t)b * 60000 + (int64_t)i);
        orders[i] = type == SAKO_EVENT_PURCHASE ? 1 + b : 0;
    }
    return n;
}

static void bk_apply(sako_engine *e, int b)
{
    sako_event ev[64];
    int64_t orders[64];
    size_t n = bk_batch(b, ev, orders);
    ck_assert_ok(sako_update_orders(e, ev, orders, n));
}

/* Events in batches [0, b). */
static uint64_t bk_events_before(int b)
{
    sako_event ev[64];
    int64_t orders[64];
    uint64_t total = 0;
    for (int i = 0; i < b; i++)
        total += bk_batch(i, ev, orders);
    return total;
}

/* Every item, every user and every (user, item) history entry, bit for bit. */
static void bk_expect_same(sako_engine *a, sako_engine *b)
{
    sako_stats sa = sk_stats(a), sb = sk_stats(b);
    ck_assert_msg(sk_same_stats(&sa, &sb), "stats differ: events %llu/%llu users %llu/%llu",
                  (unsigned long long)sa.n_events, (unsigned long long)sb.n_events,
                  (unsigned long long)sa.n_users, (unsigned long long)sb.n_users);
    for (int64_t id = 1; id <= BK_ITEMS; id++) {
        sako_item_info x = sk_info(a, id), y = sk_info(b, id);
        ck_assert_msg(sk_same_info(&x, &y), "item %" PRId64 ": a %.17g/%.17g b %.17g/%.17g", id,
                      x.alpha, y.alpha, x.beta, y.beta);
    }
    for (int64_t u = 1; u <= BK_USERS; u++) {
        sako_user_info x, y;
        memset(&x, 0, sizeof x);
        memset(&y, 0, sizeof y);
        int rx = sako_user_get(a, u, &x), ry = sako_user_get(b, u, &y);
        ck_assert_int_eq(rx, ry);
        if (rx != SAKO_OK)
            continue;
        ck_assert_msg(x.n_events == y.n_events && x.last_event_at == y.last_event_at &&
                      x.n_baskets == y.n_baskets && x.n_products == y.n_products &&
                      sk_same_double(x.weight, y.weight) && x.last_basket_at == y.last_basket_at &&
                      x.personal == y.personal, "user %" PRId64 " differs", u);
        for (int64_t id = 1; id <= BK_ITEMS; id++) {
            sako_user_item p, q;
            memset(&p, 0, sizeof p);
            memset(&q, 0, sizeof q);
            int rp = sako_user_item_get(a, u, id, &p), rq = sako_user_item_get(b, u, id, &q);
            ck_assert_int_eq(rp, rq);
            ck_assert_msg(rp != SAKO_OK || (p.n_baskets == q.n_baskets &&
                                            sk_same_double(p.weight, q.weight) &&
                                            p.last_bought_at == q.last_bought_at &&
                                            sk_same_double(p.mean_gap_days, q.mean_gap_days)),
                          "user %" PRId64 " item %" PRId64 " differs", u, id);
        }
    }
}

typedef struct bk_writer {
    sako_engine *e;
    int next;     /* atomic: batches acknowledged so far (batch numbers < next) */
    int stop;     /* atomic */
} bk_writer;

static void *bk_writer_main(void *arg)
{
    bk_writer *w = arg;
    while (!__atomic_load_n(&w->stop, __ATOMIC_SEQ_CST)) {
        int b = __atomic_load_n(&w->next, __ATOMIC_SEQ_CST);
        if (b >= BK_MAX_BATCHES)
            break;
        bk_apply(w->e, b);
        __atomic_store_n(&w->next, b + 1, __ATOMIC_SEQ_CST);
        /* Traffic with gaps, as from requests: a writer that relocks the mutex the
         * moment it leaves it can starve the backup's steps (mutexes are not fair). */
        struct timespec gap = {0, 50000};
        nanosleep(&gap, NULL);
    }
    return NULL;
}

/* The backup is a prefix of the acknowledged batches: it holds every batch
 * acknowledged before sako_backup() was called, at most those acknowledged when it
 * returned, and equals an engine fed exactly that prefix. */
START_TEST(test_backup_during_updates)
{
    char path[512], out[512];
    sk_tmp_path(path, sizeof path, "backup-src");
    sk_tmp_path(out, sizeof out, "backup-out");
    sako_options o = bk_opts();
    sako_engine *e = sk_open_opts(path, &o);
    bk_catalog(e);
    for (int b = 0; b < BK_PRELOAD; b++)
        bk_apply(e, b);

    sako__backup_step_pages = 1; /* many steps: the writer gets in between them */
    bk_writer w = {e, BK_PRELOAD, 0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, bk_writer_main, &w), 0);
    while (__atomic_load_n(&w.next, __ATOMIC_SEQ_CST) < BK_PRELOAD + 5)
        sched_yield();
    int before = __atomic_load_n(&w.next, __ATOMIC_SEQ_CST);
    ck_assert_ok(sako_backup(e, out));
    int after = __atomic_load_n(&w.next, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w.stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    sako_close(e);

    sako_options ob = bk_opts();
    sako_engine *bk = sk_open_opts(out, &ob);
    uint64_t n = sk_stats(bk).n_events;
    /* Which prefix: the backup's event count falls on a batch boundary. */
    int k = -1;
    for (int b = before; b <= after + 1 && k < 0; b++)
        if (bk_events_before(b) == n)
            k = b;
    ck_assert_msg(k >= before && k <= after + 1,
                  "backup holds %llu events: not a prefix of batches in [%d, %d]",
                  (unsigned long long)n, before, after + 1);
    fprintf(stderr, "backup during updates: batches acknowledged %d before, %d after, "
            "backup holds %d\n", before, after, k);

    sako_options orf = bk_opts();
    sako_engine *ref = sk_open_opts(NULL, &orf);
    bk_catalog(ref);
    for (int b = 0; b < k; b++)
        bk_apply(ref, b);
    bk_expect_same(bk, ref);
    sako_close(ref);
    sako_close(bk);
    sako__backup_step_pages = 64;
    sk_remove_db(path);
    sk_remove_db(out);
}
END_TEST

static int64_t bk_sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* An idle engine's backup is a libsako file equal to the engine: integrity ok, same
 * schema stamp, same state; an in-memory engine can be backed up too. */
START_TEST(test_backup_idle_and_memory)
{
    char path[512], out[512], out_mem[512];
    sk_tmp_path(path, sizeof path, "backup-idle");
    sk_tmp_path(out, sizeof out, "backup-idle-out");
    sk_tmp_path(out_mem, sizeof out_mem, "backup-mem-out");
    sako_options o = bk_opts();
    sako_engine *e = sk_open_opts(path, &o);
    sako_engine *m = sk_open_opts(NULL, &o);
    bk_catalog(e);
    bk_catalog(m);
    for (int b = 0; b < 30; b++) {
        bk_apply(e, b);
        bk_apply(m, b);
    }
    ck_assert_ok(sako_backup(e, out));
    ck_assert_ok(sako_backup(m, out_mem));
    ck_assert_int_eq(bk_sql_int(out, "PRAGMA application_id"), 0x53414B4F);
    ck_assert_int_eq(bk_sql_int(out, "PRAGMA user_version"), bk_sql_int(path, "PRAGMA user_version"));
    ck_assert_int_eq(bk_sql_int(out, "SELECT count(*) FROM pragma_integrity_check "
                                     "WHERE integrity_check <> 'ok'"), 0);
    sako_engine *b1 = sk_open_opts(out, &o);
    sako_engine *b2 = sk_open_opts(out_mem, &o);
    bk_expect_same(b1, e);
    bk_expect_same(b2, m);
    /* The backup is an ordinary database: it takes updates like its source. */
    bk_apply(b1, 30);
    bk_apply(e, 30);
    bk_expect_same(b1, e);
    sako_close(b1);
    sako_close(b2);
    sako_close(m);
    sako_close(e);
    sk_remove_db(path);
    sk_remove_db(out);
    sk_remove_db(out_mem);
}
END_TEST

static int bk_partial_left(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : dir;
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s.partial-", base);
    if (slash)
        *slash = '\0';
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c -F '%s' > /dev/null", slash ? dir : ".", prefix);
    return system(cmd) == 0;
}

/* Bad targets: refused with the documented status, nothing written or removed. */
START_TEST(test_backup_refuses)
{
    char path[512], out[512];
    sk_tmp_path(path, sizeof path, "backup-bad");
    sk_tmp_path(out, sizeof out, "backup-bad-out");
    sako_options o = bk_opts();
    sako_engine *e = sk_open_opts(path, &o);
    bk_catalog(e);
    bk_apply(e, 0);

    ck_assert_rc(sako_backup(NULL, out), SAKO_MISUSE);
    ck_assert_rc(sako_backup(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_backup(e, ""), SAKO_INVALID);
    ck_assert_rc(sako_backup(e, ":memory:"), SAKO_INVALID);
    /* An existing file is never overwritten, whatever it holds. */
    FILE *f = fopen(out, "w");
    ck_assert_ptr_nonnull(f);
    fputs("keep me", f);
    fclose(f);
    ck_assert_rc(sako_backup(e, out), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "exists"));
    char buf[16] = {0};
    f = fopen(out, "r");
    ck_assert_ptr_nonnull(fgets(buf, sizeof buf, f));
    fclose(f);
    ck_assert_str_eq(buf, "keep me");
    /* The source itself exists, so it is refused too. */
    ck_assert_rc(sako_backup(e, path), SAKO_INVALID);
    /* A missing directory: SAKO_IO, nothing created. */
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s.no-such-dir/b.db", path);
    ck_assert_rc(sako_backup(e, nodir), SAKO_IO);
    ck_assert_int_ne(access(nodir, F_OK), 0);
    unlink(out);
    ck_assert_int_eq(bk_partial_left(out), 0);
    /* The engine is unharmed and a later backup works. */
    bk_apply(e, 1);
    ck_assert_ok(sako_backup(e, out));
    ck_assert_int_eq(bk_partial_left(out), 0);
    sako_engine *b = sk_open_opts(out, &o);
    bk_expect_same(b, e);
    sako_close(b);
    sako_close(e);
    sk_remove_db(path);
    sk_remove_db(out);
}
END_TEST

/* Readiness: a small catalog's samplers are built before sako_init() returns. */
START_TEST(test_ready)
{
    int ready = -1;
    sako_engine *e = sk_open_mem(3);
    ck_assert_rc(sako_ready(NULL, &ready), SAKO_MISUSE);
    ck_assert_rc(sako_ready(e, NULL), SAKO_MISUSE);
    ck_assert_ok(sako_ready(e, &ready));
    ck_assert_int_eq(ready, 1);
    sk_catalog(e);
    ck_assert_ok(sako_ready(e, &ready));
    ck_assert_int_eq(ready, 1);
    sako_close(e);
}
END_TEST

Suite *suite_backup(void)
{
    Suite *s = suite_create("backup");
    TCase *tc = tcase_create("backup");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_backup_during_updates);
    tcase_add_test(tc, test_backup_idle_and_memory);
    tcase_add_test(tc, test_backup_refuses);
    tcase_add_test(tc, test_ready);
    suite_add_tcase(s, tc);
    return s;
}
