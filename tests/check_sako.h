/* Shared helpers of the libcheck suite: suites, temp paths, a small catalog, asserts. */
#ifndef CHECK_SAKO_H
#define CHECK_SAKO_H

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "sako.h"

/* One suite per library concept (tests/check_<concept>.c). */
Suite *suite_errors(void);
Suite *suite_engine(void);
Suite *suite_catalog(void);
Suite *suite_events(void);
Suite *suite_recommend(void);
Suite *suite_persist(void);
Suite *suite_retrain(void);
Suite *suite_sampler(void);
Suite *suite_bandit(void);
Suite *suite_threads(void);
Suite *suite_personal(void);
Suite *suite_policy(void);
Suite *suite_backup(void);
Suite *suite_files(void);
Suite *suite_checksum(void);
Suite *suite_versions(void);
Suite *suite_decay(void);
Suite *suite_compact(void);
Suite *suite_mf(void);
Suite *suite_replica(void);
Suite *suite_edges(void);

/* The schema this library writes (store.c). */
#define SK_SCHEMA_VERSION 5
#define SK_STR_(x) #x
#define SK_STR(x) SK_STR_(x)

/* Version 1's tables as libsako 0.1 made them (the migrations in libsako/store.c start
 * from these; a new database is made in one step since), and the metadata keys 0.1
 * wrote at creation. */
#define SK_SCHEMA_V1 \
    "CREATE TABLE sako_meta(key TEXT PRIMARY KEY, value NOT NULL);" \
    "CREATE TABLE categories(id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL," \
    "  name TEXT NOT NULL, prior_mean REAL NOT NULL);" \
    "CREATE TABLE items(id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL," \
    "  active INTEGER NOT NULL, added_at INTEGER NOT NULL," \
    "  n_impression REAL NOT NULL DEFAULT 0, n_click REAL NOT NULL DEFAULT 0," \
    "  n_cart REAL NOT NULL DEFAULT 0, n_purchase REAL NOT NULL DEFAULT 0," \
    "  last_event_at INTEGER NOT NULL DEFAULT 0);" \
    "CREATE TABLE users(id INTEGER PRIMARY KEY, n_events INTEGER NOT NULL," \
    "  last_event_at INTEGER NOT NULL);" \
    "CREATE TABLE event_batches(seq INTEGER PRIMARY KEY, n_events INTEGER NOT NULL," \
    "  created_at INTEGER NOT NULL, events BLOB NOT NULL);" \
    "CREATE TABLE models(version INTEGER PRIMARY KEY, created_at INTEGER NOT NULL," \
    "  n_events INTEGER NOT NULL, kind TEXT NOT NULL);"
#define SK_META_V1_KEYS \
    "'reward_click', 'reward_cart', 'reward_purchase', 'penalty_impression', 'prior'," \
    " 'prior_strength', 'category_shrinkage', 'prior_refresh_events', 'root_mean', 'n_events'," \
    " 'events_since_refresh', 'checkpoint_batch', 'model_version'"

/* SQL that turns a new file back into schema 4: the 4 -> 5 migration's matrix
 * factorisation (its table and meta keys). */
#define SK_SCHEMA5_TO_4 \
    "DROP TABLE IF EXISTS mf_factors;" \
    " DELETE FROM sako_meta WHERE key LIKE 'mf\\_%' ESCAPE '\\';" \
    " PRAGMA user_version = 4;"

/* SQL that turns a new file back into schema 3: the 3 -> 4 migration's log compaction
 * part (its table and meta keys, the checkpoint rows' checksums) and its model
 * versions part (the versions table, the gate's and keep-N policy keys). A 0.3 file's
 * `models` rows are left as they are (the migration adopts the latest). */
#define SK_SCHEMA4_TO_3_COMPACT \
    SK_SCHEMA5_TO_4 \
    " DROP TABLE IF EXISTS log_checkpoint;" \
    " DELETE FROM sako_meta WHERE key IN ('compact_batch', 'compact_events');" \
    " ALTER TABLE items DROP COLUMN checksum;" \
    " ALTER TABLE users DROP COLUMN checksum;" \
    " ALTER TABLE categories DROP COLUMN checksum;"
#define SK_SCHEMA4_TO_3_VERSIONS \
    " DROP TABLE model_versions;" \
    " DELETE FROM sako_meta WHERE key LIKE 'policy\\_gate\\_%' ESCAPE '\\'" \
    " OR key = 'policy_keep_versions';"
#define SK_SCHEMA4_TO_3 \
    SK_SCHEMA4_TO_3_COMPACT SK_SCHEMA4_TO_3_VERSIONS " PRAGMA user_version = 3;"

/* SQL that turns a new file back into schema 2: everything the 2 -> 3 migration adds
 * (the retrain policy's and decay's keys, the event log's checksums), after 4 -> 3. */
#define SK_SCHEMA3_TO_2 \
    SK_SCHEMA4_TO_3 \
    " DELETE FROM sako_meta WHERE key LIKE 'policy\\_%' ESCAPE '\\' OR key LIKE 'decay\\_%' ESCAPE '\\'" \
    " OR key = 'checksum_from_batch';" \
    " ALTER TABLE event_batches DROP COLUMN checksum;" \
    " PRAGMA user_version = 2;"

/* The status, its name and this thread's message, for failure output. */
#define ck_assert_rc(expr, want)                                                          \
    do {                                                                                  \
        int ck_rc_ = (expr);                                                              \
        int ck_want_ = (want);                                                            \
        ck_assert_msg(ck_rc_ == ck_want_, "%s returned %d (%s), expected %d (%s): %s",    \
                      #expr, ck_rc_, sako_errstr(ck_rc_), ck_want_, sako_errstr(ck_want_), \
                      sako_errmsg());                                                     \
    } while (0)

#define ck_assert_ok(expr) ck_assert_rc(expr, SAKO_OK)

/* Asserts that sako_errmsg() names the batch entry idx (the number appears as a
 * whole token, e.g. "[3]" or "entry 3"). */
#define ck_assert_errmsg_index(idx) sk_assert_errmsg_index((idx), __FILE__, __LINE__)

static inline void sk_assert_errmsg_index(size_t idx, const char *file, int line)
{
    const char *m = sako_errmsg();
    char num[32];
    snprintf(num, sizeof num, "%zu", idx);
    size_t len = strlen(num);
    int found = 0;
    for (const char *p = strstr(m, num); p && !found; p = strstr(p + 1, num)) {
        int before_ok = p == m || !(p[-1] >= '0' && p[-1] <= '9');
        int after_ok = !(p[len] >= '0' && p[len] <= '9');
        found = before_ok && after_ok;
    }
    if (!found)
        ck_abort_msg("%s:%d: errmsg \"%s\" does not name entry %zu", file, line, m, idx);
}

/* Wall clock in unix milliseconds. */
static inline int64_t sk_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Monotonic seconds, for time-bounded loops. */
static inline double sk_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* mkdir -p */
static inline void sk_mkdirs(const char *dir)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0777);
            *p = '/';
        }
    }
    mkdir(buf, 0777);
}

static inline const char *sk_tmp_dir(void)
{
    const char *d = getenv("SAKO_TEST_TMP");
    return d && *d ? d : "build/tmp";
}

static inline void sk_remove_db(const char *path)
{
    char buf[1100];
    unlink(path);
    snprintf(buf, sizeof buf, "%s-wal", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-shm", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-journal", path);
    unlink(buf);
    snprintf(buf, sizeof buf, "%s-lock", path);
    unlink(buf);
}

/* A fresh (removed) database path under $SAKO_TEST_TMP, unique to this process and
 * call, so tests may run in parallel and with CK_FORK=no. */
static inline void sk_tmp_path(char *buf, size_t cap, const char *name)
{
    static int counter;
    const char *dir = sk_tmp_dir();
    sk_mkdirs(dir);
    snprintf(buf, cap, "%s/%s-%ld-%d.db", dir, name, (long)getpid(), counter++);
    sk_remove_db(buf);
}

/* Run SQL on a database file through a connection of its own (fails the test on error). */
static inline void sk_sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
}

/* The first column of the first row of a query on a database file. */
static inline int64_t sk_sql_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A whole file's bytes (malloc'ed, *len set), and writing them back. */
static inline unsigned char *sk_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline void sk_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Options for fast tests: fixed seed, no fsync. */
static inline sako_options sk_opts(uint64_t seed)
{
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = seed;
    o.durability = SAKO_DURABLE_OFF;
    /* These tests are about the population engine; check_personal.c turns it on. */
    o.personal = 0;
    return o;
}

static inline sako_engine *sk_open_opts(const char *path, const sako_options *o)
{
    sako_engine *e = NULL;
    int rc = sako_init(&e, path, o);
    ck_assert_msg(rc == SAKO_OK && e != NULL, "sako_init(%s) = %d (%s): %s",
                  path ? path : "NULL", rc, sako_errstr(rc), sako_errmsg());
    return e;
}

/* An in-memory engine with a fixed seed. */
static inline sako_engine *sk_open_mem(uint64_t seed)
{
    sako_options o = sk_opts(seed);
    return sk_open_opts(NULL, &o);
}

/* The small catalog most tests use:
 *   department 1 "Dairy":   aisle 11 "Yoghurt" (items 101..105, 190 inactive),
 *                           aisle 12 "Milk"    (items 111..113),
 *                           item 150 directly in the department;
 *   department 2 "Produce": aisle 21 "Fruit"   (items 201..204);
 *   item 301 at the catalog root (no category).
 * 15 items, 14 active, 5 categories. */
#define SK_N_ITEMS 15
#define SK_N_ACTIVE 14
#define SK_N_CATS 5
static const int64_t sk_active_ids[SK_N_ACTIVE] = {101, 102, 103, 104, 105, 111, 112,
                                                   113, 150, 201, 202, 203, 204, 301};
#define SK_INACTIVE_ID 190

static inline void sk_catalog(sako_engine *e)
{
    static const sako_category cats[] = {
        {1, 0, "Dairy"}, {11, 1, "Yoghurt"}, {12, 1, "Milk"}, {2, 0, "Produce"}, {21, 2, "Fruit"},
    };
    ck_assert_ok(sako_categories_upsert(e, cats, sizeof cats / sizeof cats[0]));
    static const sako_item items[] = {
        {101, 11, 1, 1000}, {102, 11, 1, 1000}, {103, 11, 1, 1000}, {104, 11, 1, 1000},
        {105, 11, 1, 1000}, {190, 11, 0, 1000}, {111, 12, 1, 1000}, {112, 12, 1, 1000},
        {113, 12, 1, 1000}, {150, 1, 1, 1000},  {201, 21, 1, 1000}, {202, 21, 1, 1000},
        {203, 21, 1, 1000}, {204, 21, 1, 1000},
    };
    ck_assert_ok(sako_items_upsert(e, items, sizeof items / sizeof items[0]));
    static const sako_item root_item = {301, 0, 1, 1000};
    ck_assert_ok(sako_items_upsert(e, &root_item, 1));
}

/* A click, cart or purchase here answers a recommendation (rec_id 1): these tests
 * are about P(bought | shown). Organic events are made explicitly. */
static inline sako_event sk_ev(int64_t user, int64_t item, int type, int64_t time)
{
    sako_event ev = {user, item, type, time, type == SAKO_EVENT_IMPRESSION ? 0 : 1};
    return ev;
}

/* Appends `count` events of one kind for (user, item) to evs[*n...]. */
static inline void sk_push(sako_event *evs, size_t *n, int64_t user, int64_t item, int type,
                           int count, int64_t time)
{
    for (int i = 0; i < count; i++)
        evs[(*n)++] = sk_ev(user, item, type, time);
}

static inline sako_item_info sk_info(sako_engine *e, int64_t id)
{
    sako_item_info info;
    memset(&info, 0, sizeof info);
    ck_assert_ok(sako_item_get(e, id, &info));
    return info;
}

/* The model options in force (prior_strength, rewards...), as the engine reports them. */
static inline sako_options sk_options(sako_engine *e)
{
    sako_options o;
    memset(&o, 0, sizeof o);
    ck_assert_ok(sako_options_get(e, &o));
    return o;
}

static inline sako_stats sk_stats(sako_engine *e)
{
    sako_stats st;
    memset(&st, 0, sizeof st);
    ck_assert_ok(sako_stats_get(e, &st));
    return st;
}

/* Exact equality of two doubles including the sign of zero and NaN payloads. */
static inline int sk_same_double(double x, double y) { return memcmp(&x, &y, sizeof x) == 0; }

/* Same evidence and posterior, bit for bit (fields compared one by one: the struct
 * has padding). */
static inline int sk_same_info(const sako_item_info *x, const sako_item_info *y)
{
    return x->id == y->id && x->category_id == y->category_id && x->active == y->active &&
           x->added_at == y->added_at && x->last_event_at == y->last_event_at &&
           sk_same_double(x->impressions, y->impressions) && sk_same_double(x->clicks, y->clicks) &&
           sk_same_double(x->carts, y->carts) && sk_same_double(x->purchases, y->purchases) &&
           sk_same_double(x->prior_mean, y->prior_mean) && sk_same_double(x->alpha, y->alpha) &&
           sk_same_double(x->beta, y->beta);
}

static inline int sk_same_stats(const sako_stats *x, const sako_stats *y)
{
    return x->n_items == y->n_items && x->n_active_items == y->n_active_items &&
           x->n_categories == y->n_categories && x->n_users == y->n_users &&
           x->n_events == y->n_events && x->events_since_refresh == y->events_since_refresh &&
           x->model_version == y->model_version && sk_same_double(x->global_mean, y->global_mean);
}

/* Checks one recommendation list: known, distinct ids, sorted by score descending,
 * scores in [0, 1], source Thompson. */
static inline void sk_check_recs(const sako_rec *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(r[i].item_id >= 1 && r[i].item_id <= SAKO_ID_MAX, "bad id %" PRId64,
                      r[i].item_id);
        ck_assert_msg(r[i].score >= 0.0 && r[i].score <= 1.0, "score %g out of [0,1]", r[i].score);
        ck_assert_int_eq(r[i].source, SAKO_SOURCE_THOMPSON);
        if (i > 0)
            ck_assert_msg(r[i - 1].score >= r[i].score, "not sorted at %zu: %g < %g", i,
                          r[i - 1].score, r[i].score);
        for (size_t j = 0; j < i; j++)
            ck_assert_msg(r[j].item_id != r[i].item_id, "duplicate id %" PRId64, r[i].item_id);
    }
}

/* Critical values. z for a two-sided alpha, by bisection on erfc. */
static inline double sk_z(double alpha_two_sided)
{
    double lo = 0.0, hi = 40.0;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (erfc(mid / sqrt(2.0)) > alpha_two_sided)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* Upper alpha critical value of chi-square with df degrees of freedom
 * (Wilson-Hilferty; accurate to a fraction of a percent for df >= 3). */
static inline double sk_chi2_crit(double df, double alpha)
{
    double z = sk_z(2.0 * alpha);
    double t = 2.0 / (9.0 * df);
    double c = 1.0 - t + z * sqrt(t);
    return df * c * c * c;
}

#endif
