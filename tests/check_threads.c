/* The threading contract: sako_recommend() runs concurrently with itself and with
 * sako_update(), sako_retrain() and catalog upserts on one handle; every result is
 * valid, and no reader ever sees half of a batch. Time-bounded; run under `make
 * tsan` for data races. */
#include <pthread.h>
#include <sys/stat.h>

#include "check_sako.h"
#include "engine_internal.h"
#include "sampler_internal.h"

/* Catalog: department 1 with aisles 11 (odd items) and 12 (even items), items
 * 1..200; a pair 1001/1002 in aisle 12 that every update batch touches together;
 * items 500..509 never active; items 2000.. added (active, aisle 11) while the
 * test runs; items 150..159 toggled on and off. */
enum { BASE_ITEMS = 200, PAIR_A = 1001, PAIR_B = 1002, NEW_BASE = 2000, BATCH = 64 };
#define N_READERS 3
#define RUN_SECONDS 1.5

typedef struct shared {
    sako_engine *e;
    int personal;        /* the writer also buys: users get histories */
    int retrainers;      /* threads of their own run sako_retrain() in a loop (else the writer) */
    double deadline;
    int stop;            /* set by the writer when done (atomic) */
    int64_t max_new;     /* highest new item id published so far (atomic) */
    double strength;     /* the engine's prior_strength */
    /* results */
    long reader_calls[N_READERS];
    char reader_fail[N_READERS][256];
    long pair_checks, pair_decisive;
    char pair_fail[256];
    long writer_batches, writer_retrains, writer_upserts;
    char writer_fail[256];
    long retrains[2], busy[2];
    char retrain_fail[2][256];
} shared;

/* The readers' exclusion list is {3, 4, 5, 9, 99999}. */
static int is_excluded(int64_t id) { return id == 3 || id == 4 || id == 5 || id == 9; }

/* Whether id may appear under the category filter (0 = everything). */
static int valid_for(const shared *s, int64_t cat, int64_t id)
{
    int64_t max_new = __atomic_load_n(&s->max_new, __ATOMIC_ACQUIRE);
    int base = id >= 1 && id <= BASE_ITEMS;
    int pair = id == PAIR_A || id == PAIR_B;
    int fresh = id >= NEW_BASE && id <= max_new;
    if (!(base || pair || fresh) || is_excluded(id))
        return 0;
    if (cat == 11)
        return (base && id % 2 == 1) || fresh;
    if (cat == 12)
        return (base && id % 2 == 0) || pair;
    return 1;
}

typedef struct reader_arg {
    shared *s;
    int idx;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    shared *s = a->s;
    sako_rng r;
    sako__rng_seed(&r, 100 + (uint64_t)a->idx);
    static const int64_t cats[] = {0, 1, 11, 12};
    int64_t ex[] = {3, 4, 5, 9, 99999};
    sako_rec out[64];
    long calls = 0;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        sako_query q = SAKO_QUERY_INIT;
        q.k = 1 + (int)(sako__rng_uniform(&r) * 63);
        q.category_id = cats[calls % 4];
        q.exclude = ex;
        q.n_exclude = 5;
        q.user_id = 1 + calls % 7;
        size_t n = 0;
        int rc = sako_recommend(s->e, &q, out, 64, &n);
        calls++;
        if (rc != SAKO_OK) {
            snprintf(s->reader_fail[a->idx], 256, "recommend = %d: %s", rc, sako_errmsg());
            break;
        }
        if (n == 0 || n > (size_t)q.k) {
            snprintf(s->reader_fail[a->idx], 256, "%zu results for k = %d", n, q.k);
            break;
        }
        for (size_t i = 0; i < n && !s->reader_fail[a->idx][0]; i++) {
            int64_t id = out[i].item_id;
            if (!valid_for(s, q.category_id, id))
                snprintf(s->reader_fail[a->idx], 256, "item %lld under category %lld",
                         (long long)id, (long long)q.category_id);
            else if (!(out[i].score >= 0.0 && out[i].score <= 1.0))
                snprintf(s->reader_fail[a->idx], 256, "score %g", out[i].score);
            else if ((out[i].source < SAKO_SOURCE_THOMPSON || out[i].source >= SAKO_SOURCES))
                snprintf(s->reader_fail[a->idx], 256, "source %d", out[i].source);
            else if (i > 0 && out[i - 1].score < out[i].score)
                snprintf(s->reader_fail[a->idx], 256, "unsorted at %zu", i);
            for (size_t j = 0; j < i; j++)
                if (out[j].item_id == id)
                    snprintf(s->reader_fail[a->idx], 256, "duplicate %lld", (long long)id);
        }
        if (s->reader_fail[a->idx][0])
            break;
    }
    s->reader_calls[a->idx] = calls;
    return NULL;
}

/* Every batch gives PAIR_A and PAIR_B three impressions and one click each, spread
 * over the batch. Reads A, B, A: when both reads of A agree no batch was published
 * in between, so B must show the same counts; and each item's own counts and
 * posterior always belong to whole batches. */
static void *pair_reader(void *p)
{
    shared *s = p;
    long checks = 0, decisive = 0;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        sako_item_info a1, b, a2;
        if (sako_item_get(s->e, PAIR_A, &a1) || sako_item_get(s->e, PAIR_B, &b) ||
            sako_item_get(s->e, PAIR_A, &a2)) {
            snprintf(s->pair_fail, 256, "item_get failed: %s", sako_errmsg());
            break;
        }
        checks++;
        const sako_item_info *x[3] = {&a1, &b, &a2};
        for (int i = 0; i < 3 && !s->pair_fail[0]; i++) {
            if (x[i]->impressions != 3 * x[i]->clicks)
                snprintf(s->pair_fail, 256, "item %lld: %g impressions, %g clicks (torn batch)",
                         (long long)x[i]->id, x[i]->impressions, x[i]->clicks);
            /* The posterior matches the counts and prior of the same snapshot. */
            double m = x[i]->prior_mean;
            double alpha = s->strength * m + 0.7 * x[i]->clicks;
            double beta = s->strength * (1 - m) + (x[i]->impressions - x[i]->clicks);
            if (fabs(x[i]->alpha - alpha) > 1e-9 * (1 + alpha) ||
                fabs(x[i]->beta - beta) > 1e-9 * (1 + beta))
                snprintf(s->pair_fail, 256, "item %lld: posterior %g/%g, counts say %g/%g",
                         (long long)x[i]->id, x[i]->alpha, x[i]->beta, alpha, beta);
        }
        if (a1.impressions == a2.impressions) {
            decisive++;
            if (b.impressions != a1.impressions || b.clicks != a1.clicks)
                snprintf(s->pair_fail, 256, "pair seen apart: A %g/%g, B %g/%g", a1.impressions,
                         a1.clicks, b.impressions, b.clicks);
        }
        sako_stats st;
        if (sako_stats_get(s->e, &st) == SAKO_OK && st.n_events % BATCH != 0)
            snprintf(s->pair_fail, 256, "n_events %llu is not a whole number of batches",
                     (unsigned long long)st.n_events);
        if (s->pair_fail[0])
            break;
    }
    s->pair_checks = checks;
    s->pair_decisive = decisive;
    return NULL;
}

static void *writer(void *p)
{
    shared *s = p;
    sako_rng r;
    sako__rng_seed(&r, 4242);
    sako_event ev[BATCH];
    long b = 0;
    /* RUN_SECONDS, and on a loaded machine longer (up to a minute) until the 10
     * batches the assertions below need are in: the test is about what concurrent
     * calls do, not how fast they are. */
    while (sk_mono() < s->deadline || (b < 10 && sk_mono() < s->deadline + 60.0)) {
        for (int i = 0; i < BATCH; i++) {
            int64_t item = 1 + (int64_t)(sako__rng_uniform(&r) * BASE_ITEMS);
            if (item > BASE_ITEMS)
                item = BASE_ITEMS;
            int type = sako__rng_uniform(&r) < 0.1 ? SAKO_EVENT_CLICK : SAKO_EVENT_IMPRESSION;
            if (s->personal && type == SAKO_EVENT_IMPRESSION && sako__rng_uniform(&r) < 0.2)
                type = SAKO_EVENT_PURCHASE;
            ev[i] = sk_ev(1 + b % 11, item, type, s->personal ? 1000 + b * 3600000LL : 1000 + b);
        }
        /* The pair, spread from the first to the last entry. */
        static const int pos_a[4] = {0, 20, 40, 63}, pos_b[4] = {1, 21, 41, 62};
        for (int j = 0; j < 4; j++) {
            ev[pos_a[j]] = sk_ev(1, PAIR_A, j == 3 ? SAKO_EVENT_CLICK : SAKO_EVENT_IMPRESSION, 1000 + b);
            ev[pos_b[j]] = sk_ev(1, PAIR_B, j == 3 ? SAKO_EVENT_CLICK : SAKO_EVENT_IMPRESSION, 1000 + b);
        }
        int rc = sako_update(s->e, ev, BATCH);
        if (rc) {
            snprintf(s->writer_fail, 256, "update = %d: %s", rc, sako_errmsg());
            break;
        }
        b++;
        if (!s->retrainers && b % 5 == 0) {
            if ((rc = sako_retrain(s->e))) {
                snprintf(s->writer_fail, 256, "retrain = %d: %s", rc, sako_errmsg());
                break;
            }
            s->writer_retrains++;
        }
        if (b % 3 == 0) {
            /* Toggle 150..159, add one new item to aisle 11, rename an aisle. */
            sako_item it[11];
            for (int j = 0; j < 10; j++)
                it[j] = (sako_item){150 + j, (150 + j) % 2 ? 11 : 12, (int)((b / 3) % 2), 0};
            int64_t fresh = NEW_BASE + b / 3;
            it[10] = (sako_item){fresh, 11, 1, 0};
            /* Announced before it exists, so that a reader never sees it unannounced. */
            __atomic_store_n(&s->max_new, fresh, __ATOMIC_RELEASE);
            if ((rc = sako_items_upsert(s->e, it, 11))) {
                snprintf(s->writer_fail, 256, "items_upsert = %d: %s", rc, sako_errmsg());
                break;
            }
            sako_category c = {11, 1, (b / 3) % 2 ? "odd" : "odd items"};
            if ((rc = sako_categories_upsert(s->e, &c, 1))) {
                snprintf(s->writer_fail, 256, "categories_upsert = %d: %s", rc, sako_errmsg());
                break;
            }
            s->writer_upserts++;
        }
    }
    s->writer_batches = b;
    __atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* Retrains back to back while the writer and readers go on; with two of these,
 * one may find the other running (SAKO_BUSY). */
typedef struct retrainer_arg {
    shared *s;
    int idx;
} retrainer_arg;

static void *retrainer(void *p)
{
    retrainer_arg *a = p;
    shared *s = a->s;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
        int rc = sako_retrain(s->e);
        if (rc == SAKO_BUSY) {
            s->busy[a->idx]++;
            usleep(1000);
        } else if (rc != SAKO_OK) {
            snprintf(s->retrain_fail[a->idx], 256, "retrain = %d: %s", rc, sako_errmsg());
            break;
        } else {
            s->retrains[a->idx]++;
        }
    }
    return NULL;
}

static sako_engine *threads_engine(const char *path, int personal)
{
    sako_options o = sk_opts(5150);
    o.personal = personal;          /* readers then also walk the personal state */
    o.personal_temperature = 0.05;
    o.prior_refresh_events = 500; /* refreshes happen online too */
    sako_engine *e = sk_open_opts(path, &o);
    sako_category c[] = {{1, 0, "dept"}, {11, 1, "odd"}, {12, 1, "even"}};
    ck_assert_ok(sako_categories_upsert(e, c, 3));
    sako_item items[BASE_ITEMS + 12];
    size_t n = 0;
    for (int i = 1; i <= BASE_ITEMS; i++)
        items[n++] = (sako_item){i, i % 2 ? 11 : 12, 1, 1};
    items[n++] = (sako_item){PAIR_A, 12, 1, 1};
    items[n++] = (sako_item){PAIR_B, 12, 1, 1};
    for (int i = 0; i < 10; i++)
        items[n++] = (sako_item){500 + i, i % 2 ? 11 : 12, 0, 1};
    ck_assert_ok(sako_items_upsert(e, items, n));
    return e;
}

static void run_stress_with(const char *path, int personal, int retrainers)
{
    static shared s;
    memset(&s, 0, sizeof s);
    s.e = threads_engine(path, personal);
    s.personal = personal;
    s.retrainers = retrainers;
    if (retrainers)
        s.e->refresh_sync_items = 0; /* refreshes on the background thread too */
    s.max_new = NEW_BASE - 1;
    s.strength = sk_options(s.e).prior_strength;
    s.deadline = sk_mono() + RUN_SECONDS;
    pthread_t w, pr, rd[N_READERS];
    reader_arg args[N_READERS];
    for (int i = 0; i < N_READERS; i++) {
        args[i] = (reader_arg){&s, i};
        ck_assert_int_eq(pthread_create(&rd[i], NULL, reader, &args[i]), 0);
    }
    ck_assert_int_eq(pthread_create(&pr, NULL, pair_reader, &s), 0);
    ck_assert_int_eq(pthread_create(&w, NULL, writer, &s), 0);
    pthread_t rt[2];
    retrainer_arg rargs[2];
    for (int i = 0; i < retrainers; i++) {
        rargs[i] = (retrainer_arg){&s, i};
        ck_assert_int_eq(pthread_create(&rt[i], NULL, retrainer, &rargs[i]), 0);
    }
    pthread_join(w, NULL);
    for (int i = 0; i < retrainers; i++) {
        pthread_join(rt[i], NULL);
        ck_assert_msg(!s.retrain_fail[i][0], "retrainer %d: %s", i, s.retrain_fail[i]);
        s.writer_retrains += s.retrains[i];
    }
    pthread_join(pr, NULL);
    for (int i = 0; i < N_READERS; i++)
        pthread_join(rd[i], NULL);

    ck_assert_msg(!s.writer_fail[0], "writer: %s", s.writer_fail);
    ck_assert_msg(!s.pair_fail[0], "pair reader: %s", s.pair_fail);
    for (int i = 0; i < N_READERS; i++) {
        ck_assert_msg(!s.reader_fail[i][0], "reader %d: %s", i, s.reader_fail[i]);
        ck_assert_msg(s.reader_calls[i] >= 10, "reader %d made only %ld calls", i, s.reader_calls[i]);
    }
    ck_assert_msg(s.writer_batches >= 10 && s.writer_retrains >= 2 && s.writer_upserts >= 3,
                  "writer did %ld batches, %ld retrains, %ld upserts", s.writer_batches,
                  s.writer_retrains, s.writer_upserts);
    ck_assert_msg(s.pair_decisive >= 10, "only %ld of %ld pair checks were decisive",
                  s.pair_decisive, s.pair_checks);
    /* The end state is consistent: every batch is in, whole. */
    sako_stats st = sk_stats(s.e);
    ck_assert_uint_eq(st.n_events, (uint64_t)s.writer_batches * BATCH);
    sako_item_info a = sk_info(s.e, PAIR_A), b = sk_info(s.e, PAIR_B);
    ck_assert_double_eq(a.impressions, 3.0 * s.writer_batches);
    ck_assert_double_eq(b.clicks, 1.0 * s.writer_batches);
    if (retrainers) {
        /* No event lost or counted twice: a fresh retrain from the log finds the
         * counts the engine holds, and a reopen the posteriors it then holds. */
        enum { N_CHECK = BASE_ITEMS + 2 };
        static sako_item_info before[N_CHECK];
        for (int i = 0; i < N_CHECK; i++)
            before[i] = sk_info(s.e, i < BASE_ITEMS ? i + 1 : PAIR_A + (i - BASE_ITEMS));
        ck_assert_ok(sako_retrain(s.e));
        for (int i = 0; i < N_CHECK; i++) {
            sako_item_info x = sk_info(s.e, before[i].id);
            ck_assert_msg(x.impressions == before[i].impressions && x.clicks == before[i].clicks &&
                          x.purchases == before[i].purchases,
                          "item %lld: online %g/%g/%g, retrained %g/%g/%g", (long long)x.id,
                          before[i].impressions, before[i].clicks, before[i].purchases,
                          x.impressions, x.clicks, x.purchases);
            before[i] = x;
        }
        sako_options o = sk_options(s.e);
        sako_close(s.e);
        s.e = sk_open_opts(path, &o);
        for (int i = 0; i < N_CHECK; i++) {
            sako_item_info x = sk_info(s.e, before[i].id);
            ck_assert_msg(x.alpha == before[i].alpha && x.beta == before[i].beta,
                          "item %lld: %.17g/%.17g after reopen, %.17g/%.17g before",
                          (long long)x.id, x.alpha, x.beta, before[i].alpha, before[i].beta);
        }
    }
    sako_close(s.e);
}

static void run_stress(const char *path, int personal)
{
    run_stress_with(path, personal, 0);
}

START_TEST(test_stress_memory)
{
    run_stress(NULL, 0);
}
END_TEST

/* The same with the personal engine serving the readers' users. */
START_TEST(test_stress_personal)
{
    run_stress(NULL, 1);
}
END_TEST

/* Retrains on two threads of their own and background refreshes while the writer
 * updates and upserts and the readers recommend: serving and ingest go on, and
 * nothing acknowledged is lost. */
START_TEST(test_stress_concurrent_retrain)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "threads-retrain");
    run_stress_with(path, 1, 2);
    sk_remove_db(path);
}
END_TEST

START_TEST(test_stress_file)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "threads");
    run_stress(path, 0);
    /* What the threads acknowledged is on disk. */
    sako_options o = sk_opts(1);
    sako_engine *e = sk_open_opts(path, &o);
    sako_item_info a = sk_info(e, PAIR_A);
    ck_assert_uint_eq(sk_stats(e).n_events, (uint64_t)(a.clicks * BATCH));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Many threads, one seed: each thread's own sequence of results is valid, and the
 * engine-wide request counter gives every request a distinct stream (no two
 * threads get identical full rankings every time). */
typedef struct par_arg {
    sako_engine *e;
    int64_t first[200];
    int ok;
} par_arg;

static void *par_reader(void *p)
{
    par_arg *a = p;
    sako_query q = SAKO_QUERY_INIT;
    q.k = 10;
    a->ok = 1;
    for (int i = 0; i < 200; i++) {
        sako_rec r[10];
        size_t n;
        if (sako_recommend(a->e, &q, r, 10, &n) != SAKO_OK || n != 10) {
            a->ok = 0;
            break;
        }
        a->first[i] = r[0].item_id;
    }
    return NULL;
}

START_TEST(test_parallel_readers_distinct_streams)
{
    sako_engine *e = threads_engine(NULL, 0);
    enum { T = 4 };
    static par_arg args[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        memset(&args[i], 0, sizeof args[i]);
        args[i].e = e;
        ck_assert_int_eq(pthread_create(&th[i], NULL, par_reader, &args[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < T; i++) {
        ck_assert(args[i].ok);
        for (int j = 0; j < i; j++)
            ck_assert(memcmp(args[i].first, args[j].first, sizeof args[i].first) != 0);
    }
    sako_close(e);
}
END_TEST


static int64_t file_bytes(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

/* The WAL is copied into the database file by the store's checkpointer thread, on a
 * connection of its own, while the engine is open and the writer goes on: a log of
 * some MiB reaches the database file before the close (the writer's commits do not
 * checkpoint: without the thread it would stay in the -wal until then), and the
 * reopen has every event. */
START_TEST(test_wal_checkpointer)
{
    char path[512], wal[600];
    sk_tmp_path(path, sizeof path, "threads-wal");
    snprintf(wal, sizeof wal, "%s-wal", path);
    sako_options o = sk_opts(1);
    o.durability = SAKO_DURABLE_NORMAL;
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    int64_t before = file_bytes(path);
    ck_assert_int_eq(sako__store_ckpt_runs(&e->store), 0); /* a small WAL: no thread */
    enum { N = 1000, BATCHES = 400 };
    static sako_event ev[N];
    uint64_t x = 7;
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < N; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            ev[i] = sk_ev(1 + (int64_t)(x >> 40) % 5000, sk_active_ids[(x >> 20) % SK_N_ACTIVE],
                          SAKO_EVENT_IMPRESSION, 1000000 + b);
        }
        ck_assert_ok(sako_update(e, ev, N));
    }
    /* The log's pages (4 KiB each, 400k events) land in the database file while the
     * engine is open; the thread may lag the writer, so wait for it (bounded). */
    double deadline = sk_mono() + 60.0;
    while (file_bytes(path) < before + (4 << 20) && sk_mono() < deadline) {
        ck_assert_ok(sako_update(e, ev, 1)); /* a commit wakes the checkpointer */
        usleep(20000);
    }
    ck_assert_int_gt(sako__store_ckpt_runs(&e->store), 0);
    ck_assert_int_ge(file_bytes(path), before + (4 << 20));
    uint64_t n = sk_stats(e).n_events;
    sako_close(e);
    ck_assert_int_lt(file_bytes(wal), 0); /* the close stopped it and checkpointed */
    e = sk_open_opts(path, &o);
    ck_assert_uint_eq(sk_stats(e).n_events, n);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

Suite *suite_threads(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_stress_memory);
    tcase_add_test(tc, test_stress_file);
    tcase_add_test(tc, test_stress_personal);
    tcase_add_test(tc, test_stress_concurrent_retrain);
    tcase_add_test(tc, test_parallel_readers_distinct_streams);
    tcase_add_test(tc, test_wal_checkpointer);
    suite_add_tcase(s, tc);
    return s;
}
