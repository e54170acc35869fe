/* What a log compaction costs writers, and what it saves at open (docs/operations.md,
 * "Log compaction"; docs/benchmarks.md).
 *
 * Builds a database of N items and E events (10 % clicks, 2 % purchases in orders, so
 * that the personal state is not empty), retrains, then runs a writer that logs
 * batches of 100 events back to back (a 100 us gap, as request traffic) for a few
 * seconds without a compaction and then while sako_compact() folds everything but the
 * last 10,000 events into a checkpoint; prints the compaction's report, the writer's
 * latency percentiles in each phase, and the time to reopen the file before and after.
 *
 *   make bench-compact COMPACT_ARGS="50000 2000000"        (items, events) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "compact_internal.h"
#include "engine_internal.h"
#include "sako.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int64_t clock_ms = 1700000000000LL; /* event time: 100 ms per event */

static void fill(sako_event *ev, int64_t *orders, int n, long n_items)
{
    for (int i = 0; i < n; i++) {
        uint64_t r = rnd();
        int type = r % 50 == 0 ? SAKO_EVENT_PURCHASE : r % 10 == 1 ? SAKO_EVENT_CLICK
                                                                  : SAKO_EVENT_IMPRESSION;
        int64_t user = 1 + (int64_t)((r >> 8) % 100000);
        ev[i] = (sako_event){user, 1 + (int64_t)((r >> 30) % (uint64_t)n_items), type,
                             clock_ms += 100, 0};
        orders[i] = type == SAKO_EVENT_PURCHASE ? user * 1000 + clock_ms / 3600000 : 0;
    }
}

typedef struct writer {
    sako_engine *e;
    long n_items;
    volatile int stop;
    double *lat;
    size_t n, cap;
} writer;

static void *writer_main(void *arg)
{
    writer *w = arg;
    sako_event ev[100];
    int64_t orders[100];
    while (!w->stop) {
        fill(ev, orders, 100, w->n_items);
        sako_stats before, after;
        sako_stats_get(w->e, &before);
        uint64_t ckpt_before = __atomic_load_n(&w->e->events_since_checkpoint, __ATOMIC_RELAXED);
        double t0 = now_s();
        if (sako_update_orders(w->e, ev, orders, 100) != SAKO_OK) {
            fprintf(stderr, "update: %s\n", sako_errmsg());
            exit(1);
        }
        double dt = now_s() - t0;
        if (w->n < w->cap)
            w->lat[w->n++] = dt;
        /* Name the long ones: the update's own housekeeping (a prior refresh, the
         * checkpoint every 500,000 events), or else waiting (the compaction, the machine). */
        sako_stats_get(w->e, &after);
        uint64_t ckpt_after = __atomic_load_n(&w->e->events_since_checkpoint, __ATOMIC_RELAXED);
        if (dt > 0.05)
            printf("  update of %.1f ms: %s\n", dt * 1e3,
                   after.events_since_refresh < before.events_since_refresh ? "a prior refresh"
                   : ckpt_after < ckpt_before + 100 ? "a checkpoint (its own, or the compaction's)"
                   : "neither (waiting for the compaction, or the machine)");
        struct timespec gap = {0, 100000};
        nanosleep(&gap, NULL);
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *phase, writer *w, double seconds)
{
    qsort(w->lat, w->n, sizeof *w->lat, cmp);
    printf("%-18s %6zu batches in %.2f s   p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", phase, w->n,
           seconds, 1e3 * w->lat[w->n / 2], 1e3 * w->lat[w->n * 99 / 100], 1e3 * w->lat[w->n - 1]);
}

static void run_phase(writer *w, const char *phase, int compact, double seconds)
{
    pthread_t th;
    w->n = 0;
    w->stop = 0;
    pthread_create(&th, NULL, writer_main, w);
    double t0 = now_s();
    if (compact) {
        usleep(200000);
        sako_compact_options opt = SAKO_COMPACT_OPTIONS_INIT;
        opt.keep_days = 0.0;
        opt.keep_events = 0;
        sako_compact_report r;
        if (sako_compact(w->e, &opt, &r) != SAKO_OK) {
            fprintf(stderr, "compact: %s\n", sako_errmsg());
            exit(1);
        }
        printf("compaction: %.2f s, up to batch %lld, %llu batches and %llu events deleted, "
               "checkpoint %.1f MB; %ld holds of the writer mutex: the first (regular "
               "checkpoint, choice of C) %.3f ms, the longest other %.3f ms\n",
               r.elapsed_ms / 1e3, (long long)r.compact_batch,
               (unsigned long long)r.batches_removed, (unsigned long long)r.events_removed,
               r.checkpoint_bytes / 1e6, sako__compact_holds, sako__compact_first_hold_ns / 1e6,
               sako__compact_max_hold_ns / 1e6);
        usleep(200000);
    } else {
        usleep((useconds_t)(seconds * 1e6));
    }
    w->stop = 1;
    pthread_join(th, NULL);
    report(phase, w, now_s() - t0);
}

static sako_engine *open_timed(const char *path, const sako_options *o, const char *what)
{
    sako_engine *e = NULL;
    double t0 = now_s();
    if (sako_init(&e, path, o) != SAKO_OK) {
        fprintf(stderr, "init: %s\n", sako_errmsg());
        exit(1);
    }
    sako_log_stats ls;
    sako_log_stats_get(e, &ls);
    printf("open %-26s %.3f s (%llu events in the log, file %.1f MB, %.1f MB free)\n", what,
           now_s() - t0, (unsigned long long)ls.n_events, ls.file_bytes / 1e6,
           ls.free_bytes / 1e6);
    return e;
}

int main(int argc, char **argv)
{
    long n_items = argc > 1 ? atol(argv[1]) : 50000;
    long n_events = argc > 2 ? atol(argv[2]) : 2000000;
    const char *dir = argc > 3 ? argv[3] : "build/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/compact-stall-%ld.db", dir, (long)getpid());
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 1;
    o.durability = SAKO_DURABLE_NORMAL;
    o.personal = 1;
    sako_engine *e = NULL;
    if (sako_init(&e, path, &o) != SAKO_OK) {
        fprintf(stderr, "init: %s\n", sako_errmsg());
        return 1;
    }
    sako_category cat = {1, 0, "all"};
    sako_categories_upsert(e, &cat, 1);
    sako_item *items = malloc((size_t)n_items * sizeof *items);
    for (long i = 0; i < n_items; i++)
        items[i] = (sako_item){i + 1, 1, 1, 1000};
    sako_items_upsert(e, items, (size_t)n_items);
    free(items);
    enum { B = 10000 };
    sako_event *ev = malloc(B * sizeof *ev);
    int64_t *orders = malloc(B * sizeof *orders);
    for (long done = 0; done < n_events; done += B) {
        fill(ev, orders, B, n_items);
        sako_update_orders(e, ev, orders, B);
    }
    free(ev);
    free(orders);
    if (sako_retrain(e) != SAKO_OK) {
        fprintf(stderr, "retrain: %s\n", sako_errmsg());
        return 1;
    }
    sako_close(e);
    printf("database: %ld items, %ld events\n", n_items, n_events);
    e = open_timed(path, &o, "before compaction:");
    writer w = {e, n_items, 0, malloc(1000000 * sizeof(double)), 0, 1000000};
    run_phase(&w, "no compaction", 0, 3.0);
    run_phase(&w, "during compaction", 1, 0);
    free(w.lat);
    sako_close(e);
    e = open_timed(path, &o, "after compaction:");
    sako_close(e);
    char side[600];
    const char *sfx[] = {"", "-wal", "-shm", "-lock"};
    for (int i = 0; i < 4; i++) {
        snprintf(side, sizeof side, "%s%s", path, sfx[i]);
        unlink(side);
    }
    return 0;
}
