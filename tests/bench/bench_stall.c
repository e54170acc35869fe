/* Stalls during a retrain: `bench_sako --only stall` (make bench-stall).
 *
 * For each catalog (50k and 1M items; --quick: 50k only, with 1M events), a file
 * is filled with 10M events (batches of 250,000 with SAKO_DURABLE_OFF: about
 * 20 s at 1M items), then reopened durable (SAKO_DURABLE_FULL). Each repetition
 * runs two loops on threads of their own, one sako_recommend(k = 20) after
 * another for anonymous users, and one durable sako_update of 100 events after
 * another, first for a baseline window without a retrain and then while the main
 * thread runs sako_retrain(). The longest and the 99th-percentile latency of each
 * loop in each window are reported, medians over the repetitions, and their
 * ratios (retrain / baseline). See docs/benchmarks.md.
 *
 * --items N runs one catalog of N items. --fill-cache DIR keeps each filled file in
 * DIR (stall-<items>-<events>-<seed>.db) and copies it from there on the next run
 * instead of filling again, so that A/B runs of two builds (same file format) spend
 * their time in the measured windows. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sako.h"
#include "engine_internal.h" /* the writer mutex's holds, instrumented */

#define STALL_REPS 3
#define STALL_FILL_BATCH 250000
#define STALL_UPDATE_BATCH 100
#define STALL_USERS 100000
#define STALL_T0 1764000000000LL
#define STALL_MAX_SAMPLES 4000000

static double stall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t stall_rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static double stall_u(uint64_t *x) { return (double)(stall_rng(x) >> 11) * (1.0 / 9007199254740992.0); }

/* A skewed item (a few are popular) and a plausible event for it. */
static sako_event stall_event(uint64_t *x, size_t n_items, int64_t j)
{
    double u = stall_u(x);
    int64_t item = 1 + (int64_t)((double)n_items * u * u * u);
    if (item > (int64_t)n_items)
        item = (int64_t)n_items;
    double t = stall_u(x);
    int type = t < 0.90 ? SAKO_EVENT_IMPRESSION : t < 0.96 ? SAKO_EVENT_CLICK
               : t < 0.97 ? SAKO_EVENT_CART : SAKO_EVENT_PURCHASE;
    int organic = type == SAKO_EVENT_PURCHASE && stall_u(x) < 0.5;
    sako_event ev = {1 + (int64_t)(stall_rng(x) % STALL_USERS), item, type,
                     STALL_T0 + j * 1000, organic ? 0 : 1 + j / 20};
    return ev;
}

static int stall_fill(const char *path, size_t n_items, uint64_t n_events, uint64_t seed)
{
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = seed;
    o.durability = SAKO_DURABLE_OFF;
    sako_engine *e = NULL;
    if (sako_init(&e, path, &o) != SAKO_OK)
        return -1;
    sako_category cats[21 + 134];
    char names[21 + 134][16];
    for (int d = 0; d < 21; d++) {
        snprintf(names[d], 16, "d%d", d);
        cats[d] = (sako_category){1 + d, 0, names[d]};
    }
    for (int a = 0; a < 134; a++) {
        snprintf(names[21 + a], 16, "a%d", a);
        cats[21 + a] = (sako_category){1001 + a, 1 + a % 21, names[21 + a]};
    }
    int rc = sako_categories_upsert(e, cats, 21 + 134);
    sako_item *items = malloc(100000 * sizeof *items);
    sako_event *ev = malloc(STALL_FILL_BATCH * sizeof *ev);
    for (size_t at = 0; rc == SAKO_OK && at < n_items; at += 100000) {
        size_t m = n_items - at < 100000 ? n_items - at : 100000;
        for (size_t i = 0; i < m; i++)
            items[i] = (sako_item){(int64_t)(at + i + 1), 1001 + (int64_t)((at + i) * 7919 % 134), 1, 1};
        rc = sako_items_upsert(e, items, m);
    }
    uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (uint64_t j = 0; rc == SAKO_OK && j < n_events; j += STALL_FILL_BATCH) {
        size_t m = n_events - j < STALL_FILL_BATCH ? (size_t)(n_events - j) : STALL_FILL_BATCH;
        for (size_t i = 0; i < m; i++)
            ev[i] = stall_event(&x, n_items, (int64_t)(j + i));
        rc = sako_update(e, ev, m);
    }
    if (rc != SAKO_OK)
        fprintf(stderr, "bench_stall: filling: %s\n", sako_errmsg());
    free(items);
    free(ev);
    sako_close(e);
    return rc == SAKO_OK ? 0 : -1;
}

static int stall_copy(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    static char buf[1 << 20];
    ssize_t n = 0;
    while (out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    int rc = in < 0 || out < 0 || n < 0 ? -1 : 0;
    if (rc)
        fprintf(stderr, "bench_stall: copying %s to %s: %s\n", from, to, strerror(errno));
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc;
}

/* The filled file at `path`: from the cache when it holds one, else filled (and
 * copied into the cache). sako_close checkpointed it: it has no -wal. */
static int stall_prepare(const char *path, const char *cache, size_t n_items,
                         uint64_t n_events, uint64_t seed)
{
    char cached[700];
    if (cache) {
        snprintf(cached, sizeof cached, "%s/stall-%zu-%llu-%llu.db", cache, n_items,
                 (unsigned long long)n_events, (unsigned long long)seed);
        if (access(cached, R_OK) == 0) {
            fprintf(stderr, "stall: copying %s\n", cached);
            return stall_copy(cached, path);
        }
    }
    if (stall_fill(path, n_items, n_events, seed))
        return -1;
    return cache ? stall_copy(path, cached) : 0;
}

typedef struct stall_loop {
    sako_engine *e;
    size_t n_items;
    int stop;               /* atomic */
    int record;             /* atomic: latencies are kept while set */
    double *lat;
    size_t n, cap;
    int failed;
    uint64_t x;
    int64_t j;
} stall_loop;

static void stall_keep(stall_loop *l, double t)
{
    if (__atomic_load_n(&l->record, __ATOMIC_ACQUIRE) && l->n < l->cap)
        l->lat[l->n++] = t;
}

static void *stall_recommender(void *p)
{
    stall_loop *l = p;
    sako_rec out[20];
    int64_t r = 0;
    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        sako_query q = SAKO_QUERY_INIT;
        q.k = 20;
        q.user_id = 10 * STALL_USERS + 1 + r++ % STALL_USERS; /* no history: population path */
        size_t n = 0;
        double t0 = stall_now();
        if (sako_recommend(l->e, &q, out, 20, &n) != SAKO_OK)
            l->failed = 1;
        stall_keep(l, stall_now() - t0);
    }
    return NULL;
}

static void *stall_updater(void *p)
{
    stall_loop *l = p;
    sako_event ev[STALL_UPDATE_BATCH];
    while (!__atomic_load_n(&l->stop, __ATOMIC_ACQUIRE)) {
        for (int i = 0; i < STALL_UPDATE_BATCH; i++)
            ev[i] = stall_event(&l->x, l->n_items, l->j++);
        double t0 = stall_now();
        if (sako_update(l->e, ev, STALL_UPDATE_BATCH) != SAKO_OK)
            l->failed = 1;
        stall_keep(l, stall_now() - t0);
    }
    return NULL;
}

static int stall_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* max and p99 of the latencies kept, in ms; the sample is cleared. */
static void stall_take(stall_loop *l, double *max, double *p99, size_t *n)
{
    __atomic_store_n(&l->record, 0, __ATOMIC_RELEASE);
    usleep(20000); /* a call in flight finishes (and is not kept) */
    qsort(l->lat, l->n, sizeof *l->lat, stall_cmp);
    *n = l->n;
    *max = l->n ? l->lat[l->n - 1] * 1e3 : 0.0;
    *p99 = l->n ? l->lat[(size_t)(0.99 * (double)(l->n - 1))] * 1e3 : 0.0;
    l->n = 0;
}

static double stall_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, stall_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct stall_row {
    size_t n_items;
    uint64_t n_events;
    double fill_s, retrain_s;
    double rec_max[2], rec_p99[2], upd_max[2], upd_p99[2]; /* [0] baseline, [1] retrain */
    size_t rec_n[2], upd_n[2];
} stall_row;

static int stall_one(const char *dir, const char *cache, size_t n_items, uint64_t n_events,
                     uint64_t seed, stall_row *row)
{
    char path[700];
    snprintf(path, sizeof path, "%s/stall-%zu.db", dir, n_items);
    memset(row, 0, sizeof *row);
    row->n_items = n_items;
    row->n_events = n_events;
    fprintf(stderr, "stall: filling %zu items with %llu events\n", n_items,
            (unsigned long long)n_events);
    double t0 = stall_now();
    if (stall_prepare(path, cache, n_items, n_events, seed))
        return -1;
    row->fill_s = stall_now() - t0;
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = seed;
    o.durability = SAKO_DURABLE_FULL;
    sako_engine *e = NULL;
    if (sako_init(&e, path, &o) != SAKO_OK) {
        fprintf(stderr, "bench_stall: reopen: %s\n", sako_errmsg());
        return -1;
    }
    e->time_update_phases = 1; /* before the loops' threads start */
    /* The samplers of a large catalog are built after open: wait for fast answers. */
    for (int fast = 0; fast < 50;) {
        sako_query q = SAKO_QUERY_INIT;
        sako_rec out[20];
        size_t n;
        double s = stall_now();
        sako_recommend(e, &q, out, 20, &n);
        fast = stall_now() - s < 1e-3 ? fast + 1 : 0;
    }
    stall_loop rec = {e, n_items, 0, 0, malloc(STALL_MAX_SAMPLES * sizeof(double)), 0,
                      STALL_MAX_SAMPLES, 0, 0, 0};
    stall_loop upd = {e, n_items, 0, 0, malloc(STALL_MAX_SAMPLES * sizeof(double)), 0,
                      STALL_MAX_SAMPLES, 0, seed * 31 + 7, (int64_t)n_events};
    pthread_t tr, tu;
    pthread_create(&tr, NULL, stall_recommender, &rec);
    pthread_create(&tu, NULL, stall_updater, &upd);
    double v[8][STALL_REPS];
    double window = 2.0;
    int rc = 0;
    for (int r = 0; r < STALL_REPS && rc == 0; r++) {
        /* Baseline: the same loops, as long as the last retrain took. */
        __atomic_store_n(&rec.record, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&upd.record, 1, __ATOMIC_RELEASE);
        usleep((useconds_t)(window * 1e6));
        stall_take(&rec, &v[0][r], &v[1][r], &row->rec_n[0]);
        stall_take(&upd, &v[2][r], &v[3][r], &row->upd_n[0]);
        __atomic_store_n(&rec.record, 1, __ATOMIC_RELEASE);
        __atomic_store_n(&upd.record, 1, __ATOMIC_RELEASE);
        double s = stall_now();
        if (sako_retrain(e) != SAKO_OK) {
            fprintf(stderr, "bench_stall: retrain: %s\n", sako_errmsg());
            rc = -1;
        }
        window = stall_now() - s;
        stall_take(&rec, &v[4][r], &v[5][r], &row->rec_n[1]);
        stall_take(&upd, &v[6][r], &v[7][r], &row->upd_n[1]);
        fprintf(stderr, "stall: %zu items, rep %d: retrain %.2f s; recommend max %.2f/%.2f ms, "
                "update max %.2f/%.2f ms (baseline/retrain)\n", n_items, r, window, v[0][r], v[4][r],
                v[2][r], v[6][r]);
        fprintf(stderr, "stall: %zu items, rep %d: writer mutex held %.1f ms by the retrain's "
                "final step (%.1f ms its transaction); state checkpoints so far %ld, longest "
                "rows %.1f ms, commit %.1f ms\n", n_items, r, e->retrain_hold_s * 1e3,
                e->retrain_commit_s * 1e3, e->n_checkpoints, e->checkpoint_rows_max_s * 1e3,
                e->checkpoint_commit_max_s * 1e3);
        fprintf(stderr, "stall: %zu items, rep %d: longest update phases since the last line: "
                "mutex wait %.1f, reserve %.1f, write+commit %.1f, publish %.1f, housekeeping "
                "%.1f ms; a prior refresh's last step held the mutex %.1f ms\n", n_items, r,
                e->update_phase_max_s[0] * 1e3,
                e->update_phase_max_s[1] * 1e3, e->update_phase_max_s[2] * 1e3,
                e->update_phase_max_s[3] * 1e3, e->update_phase_max_s[4] * 1e3,
                e->refresh_hold_max_s * 1e3);
        memset(e->update_phase_max_s, 0, sizeof e->update_phase_max_s);
        e->refresh_hold_max_s = 0;
        row->retrain_s += window / STALL_REPS;
    }
    __atomic_store_n(&rec.stop, 1, __ATOMIC_RELEASE);
    __atomic_store_n(&upd.stop, 1, __ATOMIC_RELEASE);
    pthread_join(tr, NULL);
    pthread_join(tu, NULL);
    if (rec.failed || upd.failed) {
        fprintf(stderr, "bench_stall: a recommend or update failed\n");
        rc = -1;
    }
    for (int w = 0; w < 2; w++) {
        row->rec_max[w] = stall_median(v[4 * w + 0], STALL_REPS);
        row->rec_p99[w] = stall_median(v[4 * w + 1], STALL_REPS);
        row->upd_max[w] = stall_median(v[4 * w + 2], STALL_REPS);
        row->upd_p99[w] = stall_median(v[4 * w + 3], STALL_REPS);
    }
    free(rec.lat);
    free(upd.lat);
    sako_close(e);
    char aux[720];
    const char *ext[] = {"", "-wal", "-shm", "-lock"};
    for (int i = 0; i < 4; i++) {
        snprintf(aux, sizeof aux, "%s%s", path, ext[i]);
        unlink(aux);
    }
    return rc;
}

static void stall_report(FILE *f, const stall_row *rows, int n)
{
    fprintf(f, "| items | events in log | retrain (s) | recommend max: base / retrain (ms) | "
               "recommend p99 (ms) | update max (ms) | update p99 (ms) | calls during retrain "
               "(rec / upd) |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const stall_row *r = &rows[i];
        fprintf(f, "| %zu | %llu | %.2f | %.2f / %.2f (x%.1f) | %.3f / %.3f (x%.1f) | %.1f / %.1f "
                   "(x%.1f) | %.1f / %.1f (x%.1f) | %zu / %zu |\n",
                r->n_items, (unsigned long long)r->n_events, r->retrain_s, r->rec_max[0],
                r->rec_max[1], r->rec_max[1] / r->rec_max[0], r->rec_p99[0], r->rec_p99[1],
                r->rec_p99[1] / r->rec_p99[0], r->upd_max[0], r->upd_max[1],
                r->upd_max[1] / r->upd_max[0], r->upd_p99[0], r->upd_p99[1],
                r->upd_p99[1] / r->upd_p99[0], r->rec_n[1], r->upd_n[1]);
    }
}

int bench_stall(int quick, uint64_t seed, const char *dir, const char *md_path, size_t items,
                const char *cache)
{
    stall_row rows[2];
    int n = 0, rc = 0;
    if (items) {
        if (stall_one(dir, cache, items, quick ? 1000000 : 10000000, seed, &rows[n]) == 0)
            n++;
        else
            rc = 1;
    } else if (stall_one(dir, cache, 50000, quick ? 1000000 : 10000000, seed, &rows[n]) == 0)
        n++;
    else
        rc = 1;
    if (!quick && !items) {
        if (stall_one(dir, cache, 1000000, 10000000, seed, &rows[n]) == 0)
            n++;
        else
            rc = 1;
    }
    printf("Stalls during a retrain (medians of %d repetitions; base = the same loops without "
           "a retrain, as long as the retrain)\n", STALL_REPS);
    stall_report(stdout, rows, n);
    if (md_path) {
        FILE *f = fopen(md_path, "w");
        if (f) {
            stall_report(f, rows, n);
            fclose(f);
        }
    }
    return rc;
}
