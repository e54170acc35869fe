/* A scratch database path per fuzzing process (in memory-backed /dev/shm when there),
 * and the calls every file target makes on whatever opened. */
#ifndef SAKO_FUZZ_FILE_H
#define SAKO_FUZZ_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sako.h"

#define FCHECK(cond, ...)                                         \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "fuzz: " __VA_ARGS__);                \
            fprintf(stderr, " (%s)\n", sako_errmsg());            \
            abort();                                              \
        }                                                         \
    } while (0)

static inline const char *fuzz_path(void)
{
    static char path[256];
    if (!path[0])
        snprintf(path, sizeof path, "%s/sako-fuzz-%ld.db",
                 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (long)getpid());
    return path;
}

static inline void fuzz_remove(const char *path)
{
    static const char *suffix[] = { "", "-wal", "-shm", "-journal", "-lock" };
    char buf[300];
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        snprintf(buf, sizeof buf, "%s%s", path, suffix[i]);
        unlink(buf);
    }
}

static inline void fuzz_write(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    FCHECK(f && fwrite(data, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);
}

static inline int fuzz_status_ok(int rc)
{
    return rc <= 0 && rc >= SAKO_VERSION && (rc == SAKO_OK || sako_errmsg()[0]);
}

/* What every file target does with an engine that opened: a read, a recommendation,
 * a batch, a retrain and another recommendation, each a documented status; then close. */
static inline void fuzz_use_engine(sako_engine *e)
{
    int rc;
    sako_stats st;
    FCHECK(sako_stats_get(e, &st) == SAKO_OK, "stats");
    sako_rec out[10];
    size_t n = 0;
    sako_query q = SAKO_QUERY_INIT;
    q.k = 10;
    q.user_id = 1;
    rc = sako_recommend(e, &q, out, 10, &n);
    FCHECK(fuzz_status_ok(rc), "recommend %d", rc);
    sako_event ev = { 1, 1, SAKO_EVENT_CLICK, 1700000000000LL, 0 };
    rc = sako_update(e, &ev, 1);
    FCHECK(fuzz_status_ok(rc), "update %d", rc);
    rc = sako_retrain(e);
    FCHECK(fuzz_status_ok(rc), "retrain %d", rc);
    rc = sako_recommend(e, &q, out, 10, &n);
    FCHECK(fuzz_status_ok(rc), "recommend %d", rc);
    sako_close(e);
}

/* The options the file targets open with. */
static inline sako_options fuzz_options(void)
{
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 7;
    o.durability = SAKO_DURABLE_OFF;
    return o;
}

/* Verify the file, then open it; if it opens, use it (read, write, retrain) and close
 * it. Both must return documented statuses with messages. Returns open's status. */
static inline int fuzz_use_file(const char *path)
{
    sako_options o = fuzz_options();
    sako_verify_report rep;
    int vrc = sako_verify(path, &rep);
    FCHECK(fuzz_status_ok(vrc), "sako_verify returned %d", vrc);
    sako_engine *e = NULL;
    int rc = sako_init(&e, path, &o);
    FCHECK(fuzz_status_ok(rc), "sako_init returned %d", rc);
    FCHECK((rc == SAKO_OK) == (e != NULL), "sako_init %d with out %p", rc, (void *)e);
    /* sako_verify checks the file's integrity and every batch's checksum and encoding,
     * not what the events mean: a batch naming an item the catalog lacks (possible
     * only if written by hand, as here) verifies, and open refuses it (SAKO_CORRUPT). */
    FCHECK(vrc != SAKO_OK || rc == SAKO_OK || rc == SAKO_NOMEM || rc == SAKO_CORRUPT,
           "the file verifies but open says %s", sako_errstr(rc));
    if (rc == SAKO_OK)
        fuzz_use_engine(e);
    return rc;
}

#endif
