/* The cost of an online backup to writers (docs/benchmarks.md, "Online backup").
 *
 * Builds a database of N items and E events, then runs a writer that logs batches of
 * 100 events back to back (with a 100 us gap, as request traffic) for a few seconds
 * without a backup and then while sako_backup() runs, and prints the backup's duration
 * and the writer's latency percentiles in each phase.
 *
 *   make bench-backup BACKUP_ARGS="50000 2000000"        (items, events) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup_internal.h"
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
    while (!w->stop) {
        for (int i = 0; i < 100; i++)
            ev[i] = (sako_event){1 + (int64_t)(rnd() % 100000), 1 + (int64_t)(rnd() % (uint64_t)w->n_items),
                                 rnd() % 10 ? SAKO_EVENT_IMPRESSION : SAKO_EVENT_CLICK, 0, 0};
        sako_stats before, after;
        sako_stats_get(w->e, &before);
        double t0 = now_s();
        if (sako_update(w->e, ev, 100) != SAKO_OK) {
            fprintf(stderr, "update: %s\n", sako_errmsg());
            exit(1);
        }
        double dt = now_s() - t0;
        if (w->n < w->cap)
            w->lat[w->n++] = dt;
        /* Name the long ones: a prior refresh resets events_since_refresh; otherwise
         * it is the writer's checkpoint (every 500,000 events) or the machine. */
        sako_stats_get(w->e, &after);
        if (dt > 0.05)
            printf("  update of %.1f ms at %llu events: %s\n", dt * 1e3,
                   (unsigned long long)after.n_events,
                   after.events_since_refresh < before.events_since_refresh
                       ? "a prior refresh" : "no refresh (a checkpoint, or the machine)");
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
    printf("%-16s %6zu batches in %.2f s   p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", phase, w->n,
           seconds, 1e3 * w->lat[w->n / 2], 1e3 * w->lat[w->n * 99 / 100], 1e3 * w->lat[w->n - 1]);
}

static void run_phase(writer *w, const char *phase, const char *backup_path, double seconds)
{
    pthread_t th;
    w->n = 0;
    w->stop = 0;
    pthread_create(&th, NULL, writer_main, w);
    double t0 = now_s();
    if (backup_path) {
        usleep(200000);
        double b0 = now_s();
        if (sako_backup(w->e, backup_path) != SAKO_OK) {
            fprintf(stderr, "backup: %s\n", sako_errmsg());
            exit(1);
        }
        printf("backup: %.2f s, %ld steps, longest hold of the writer mutex %.3f ms\n",
               now_s() - b0, sako__backup_steps, sako__backup_max_hold_ns / 1e6);
        usleep(200000);
    } else {
        usleep((useconds_t)(seconds * 1e6));
    }
    w->stop = 1;
    pthread_join(th, NULL);
    report(phase, w, now_s() - t0);
}

int main(int argc, char **argv)
{
    long n_items = argc > 1 ? atol(argv[1]) : 50000;
    long n_events = argc > 2 ? atol(argv[2]) : 2000000;
    const char *dir = argc > 3 ? argv[3] : "build/tmp";
    char path[512], out[512];
    snprintf(path, sizeof path, "%s/backup-stall-%ld.db", dir, (long)getpid());
    snprintf(out, sizeof out, "%s/backup-stall-%ld.bak", dir, (long)getpid());
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 1;
    o.durability = SAKO_DURABLE_NORMAL;
    if (getenv("BACKUP_NO_REFRESH"))
        o.prior_refresh_events = 0; /* isolate the backup from prior refreshes */
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
    for (long done = 0; done < n_events; done += B) {
        for (int i = 0; i < B; i++)
            ev[i] = (sako_event){1 + (int64_t)(rnd() % 100000), 1 + (int64_t)(rnd() % (uint64_t)n_items),
                                 rnd() % 10 ? SAKO_EVENT_IMPRESSION : SAKO_EVENT_CLICK, 0, 0};
        sako_update(e, ev, B);
    }
    free(ev);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    printf("database: %ld items, %ld events, %.1f MB\n", n_items, n_events, ftell(f) / 1e6);
    fclose(f);
    writer w = {e, n_items, 0, malloc(1000000 * sizeof(double)), 0, 1000000};
    run_phase(&w, "no backup", NULL, 3.0);
    run_phase(&w, "during backup", out, 0);
    free(w.lat);
    sako_close(e);
    sako_engine *b = NULL;
    int rc = sako_init(&b, out, &o);
    printf("backup reopens: %s\n", rc == SAKO_OK ? "ok" : sako_errmsg());
    sako_close(b);
    char side[600];
    const char *sfx[] = {"", "-wal", "-shm", "-lock"};
    for (int i = 0; i < 4; i++) {
        snprintf(side, sizeof side, "%s%s", path, sfx[i]);
        unlink(side);
        snprintf(side, sizeof side, "%s%s", out, sfx[i]);
        unlink(side);
    }
    return 0;
}
