/* What the state checkpoints cost durable ingest (docs/benchmarks.md, "Branch
 * `stall2`: checkpoints bounded by rows"): a file filled by bench_stall (`--fill-cache DIR`) is copied,
 * opened with SAKO_DURABLE_FULL, and fed batches of events with bench_stall's skew
 * (item 1 + n * u^3) until `events` were sent; prints the events per second, the
 * state checkpoints that ran, the longest one (rows, commit) and the events logged
 * since the last one (what a reopen after a crash would replay).
 *
 *   build/ingest_ckpt FILLED.db ITEMS BATCH EVENTS TMPDIR
 *
 * Built against each tree's own headers (it reads engine_internal.h), so that two
 * builds can be compared in alternation. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine_internal.h"
#include "sako.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static double unif(uint64_t *x) { return (double)(rng(x) >> 11) * (1.0 / 9007199254740992.0); }

static int copy_file(const char *from, const char *to)
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
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s FILLED.db ITEMS BATCH EVENTS TMPDIR\n", argv[0]);
        return 2;
    }
    size_t n_items = (size_t)atol(argv[2]), batch = (size_t)atol(argv[3]);
    long events = atol(argv[4]);
    char path[600];
    snprintf(path, sizeof path, "%s/ingest-%d.db", argv[5], (int)getpid());
    if (copy_file(argv[1], path)) {
        fprintf(stderr, "cannot copy %s to %s\n", argv[1], path);
        return 1;
    }
    sako_options o = SAKO_OPTIONS_INIT;
    o.durability = SAKO_DURABLE_FULL;
    sako_engine *e = NULL;
    double t0 = now_s();
    if (sako_init(&e, path, &o) != SAKO_OK) {
        fprintf(stderr, "open: %s\n", sako_errmsg());
        return 1;
    }
    double open_s = now_s() - t0;
    sako_event *ev = malloc(batch * sizeof *ev);
    uint64_t x = 12345;
    int64_t j = 20000000; /* after the filled log's times */
    double busy = 0;
    long sent = 0;
    int rc = SAKO_OK;
    while (rc == SAKO_OK && sent < events) {
        for (size_t i = 0; i < batch; i++, j++) {
            double u = unif(&x);
            int64_t item = 1 + (int64_t)((double)n_items * u * u * u);
            double t = unif(&x);
            int type = t < 0.90 ? SAKO_EVENT_IMPRESSION : t < 0.96 ? SAKO_EVENT_CLICK
                       : t < 0.97 ? SAKO_EVENT_CART : SAKO_EVENT_PURCHASE;
            ev[i] = (sako_event){1 + (int64_t)(rng(&x) % 100000),
                                 item > (int64_t)n_items ? (int64_t)n_items : item, type,
                                 1764000000000LL + j * 1000, 1 + j / 20};
        }
        double t = now_s();
        rc = sako_update(e, ev, batch);
        busy += now_s() - t;
        sent += (long)batch;
    }
    if (rc != SAKO_OK)
        fprintf(stderr, "update: %s\n", sako_errmsg());
    printf("items %zu batch %zu events %ld: %.0f events/s, open %.2f s, checkpoints %ld "
           "(rows max %.1f ms, commit max %.1f ms), events since the last %llu\n",
           n_items, batch, sent, (double)sent / busy, open_s, e->n_checkpoints,
           e->checkpoint_rows_max_s * 1e3, e->checkpoint_commit_max_s * 1e3,
           (unsigned long long)e->events_since_checkpoint);
    sako_close(e);
    free(ev);
    unlink(path);
    char side[620];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(side, sizeof side, "%s.lock", path);
    unlink(side);
    return rc == SAKO_OK ? 0 : 1;
}
