/* Blackbox crash test: a child writes events (and retrains now and then) into a
 * database with durability FULL and reports each acknowledged batch to the parent;
 * the parent kills it with SIGKILL at a random moment, reopens the database and
 * checks that
 *   - every acknowledged event is there, and nothing beyond what was submitted;
 *   - the stored counts agree with the log (a retrain changes no count);
 *   - SQLite's integrity_check passes and the file reopens without any recovery.
 * A child that exits before the kill fails the run ("exit before killing").
 *
 * usage: kill9 [iterations] [dir]      (defaults: 20, build/tmp)
 * Ends with a line "N passed, N failed". */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sako.h"

#define N_ITEMS 200

/* Messages from the child: an intent (highest event number it is about to
 * submit) and an acknowledgement (highest event number acknowledged). */
typedef struct msg {
    int64_t kind; /* 1 intent, 2 ack */
    int64_t upto;
} msg;

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "kill9: %s: %s (%s)\n", what, sako_errstr(rc), sako_errmsg());
    exit(2);
}

static void child(const char *path, int fd, uint64_t seed)
{
    sako_engine *e;
    int rc = sako_init(&e, path, NULL);
    if (rc)
        die("child open", rc);
    sako_stats st;
    sako_stats_get(e, &st);
    int64_t next = (int64_t)st.n_events + 1; /* event numbers continue the log */
    sako_event batch[256];
    for (uint64_t round = 0;; round++) {
        int n = 1 + (int)(xorshift(&seed) % 200);
        for (int j = 0; j < n; j++) {
            batch[j].user_id = 1 + (int64_t)(xorshift(&seed) % 50);
            batch[j].item_id = 1 + (int64_t)(xorshift(&seed) % N_ITEMS);
            batch[j].type = (int)(xorshift(&seed) % 4);
            batch[j].time = 1700000000000LL + next + j;
            batch[j].rec_id = next + j; /* the event's number, for the oracle */
        }
        msg m = { 1, next + n - 1 };
        if (write(fd, &m, sizeof m) != sizeof m)
            _exit(3);
        if ((rc = sako_update(e, batch, (size_t)n)))
            die("child update", rc);
        m.kind = 2;
        if (write(fd, &m, sizeof m) != sizeof m)
            _exit(3);
        next += n;
        if (round % 25 == 24 && (rc = sako_retrain(e)))
            die("child retrain", rc);
        if (round % 5 == 0) {
            sako_query q = SAKO_QUERY_INIT;
            sako_rec out[20];
            size_t got;
            if ((rc = sako_recommend(e, &q, out, 20, &got)))
                die("child recommend", rc);
        }
    }
}

static int integrity_ok(const char *path)
{
    sqlite3 *db;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    return ok;
}

/* Reopen and check against the oracle; returns 1 when everything holds. */
static int verify(const char *path, int64_t acked, int64_t intended, int iteration)
{
    if (!integrity_ok(path)) {
        printf("iteration %d: integrity_check failed\n", iteration);
        return 0;
    }
    sako_engine *e;
    int rc = sako_init(&e, path, NULL);
    if (rc) {
        printf("iteration %d: reopen failed: %s\n", iteration, sako_errmsg());
        return 0;
    }
    sako_stats st;
    sako_stats_get(e, &st);
    int ok = 1;
    if ((int64_t)st.n_events < acked) {
        printf("iteration %d: LOST events: %llu in the log, %lld acknowledged\n", iteration,
               (unsigned long long)st.n_events, (long long)acked);
        ok = 0;
    }
    if ((int64_t)st.n_events > intended) {
        printf("iteration %d: PHANTOM events: %llu in the log, only %lld submitted\n", iteration,
               (unsigned long long)st.n_events, (long long)intended);
        ok = 0;
    }
    /* The counts as reopened (checkpoint + replayed tail) must equal a rebuild. */
    double before[N_ITEMS][4], total = 0;
    for (int i = 0; i < N_ITEMS; i++) {
        sako_item_info info;
        if (sako_item_get(e, i + 1, &info) != SAKO_OK)
            return printf("iteration %d: item %d missing\n", iteration, i + 1), 0;
        before[i][0] = info.impressions;
        before[i][1] = info.clicks;
        before[i][2] = info.carts;
        before[i][3] = info.purchases;
        total += info.impressions + info.clicks + info.carts + info.purchases;
    }
    if (total != (double)st.n_events) {
        printf("iteration %d: counts sum to %.0f, log has %llu events\n", iteration, total,
               (unsigned long long)st.n_events);
        ok = 0;
    }
    if ((rc = sako_retrain(e))) {
        printf("iteration %d: retrain failed: %s\n", iteration, sako_errmsg());
        ok = 0;
    }
    for (int i = 0; i < N_ITEMS && ok; i++) {
        sako_item_info info;
        sako_item_get(e, i + 1, &info);
        if (info.impressions != before[i][0] || info.clicks != before[i][1] ||
            info.carts != before[i][2] || info.purchases != before[i][3]) {
            printf("iteration %d: item %d counts differ from a rebuild from the log\n", iteration, i + 1);
            ok = 0;
        }
    }
    sako_close(e);
    return ok;
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 20;
    const char *dir = argc > 2 ? argv[2] : "build/tmp";
    mkdir(dir, 0755);
    char path[512];
    snprintf(path, sizeof path, "%s/kill9-%d.db", dir, (int)getpid());
    char wal[600], shm[600];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(path);
    unlink(wal);
    unlink(shm);

    sako_engine *e;
    int rc = sako_init(&e, path, NULL);
    if (rc)
        die("create", rc);
    sako_category cats[] = { { 1, 0, "Dairy" }, { 2, 1, "Milk" }, { 3, 1, "Yoghurt" } };
    sako_item items[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++) {
        items[i].id = i + 1;
        items[i].category_id = 2 + i % 2;
        items[i].active = 1;
        items[i].added_at = 1700000000000LL;
    }
    if ((rc = sako_categories_upsert(e, cats, 3)) || (rc = sako_items_upsert(e, items, N_ITEMS)))
        die("catalog", rc);
    sako_close(e);

    uint64_t seed = 0x5eed ^ (uint64_t)time(NULL);
    int passed = 0, failed = 0;
    int64_t acked = 0, intended = 0;
    for (int it = 0; it < iterations; it++) {
        int fds[2];
        if (pipe(fds) != 0)
            return perror("pipe"), 2;
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(path, fds[1], xorshift(&seed) | 1);
            _exit(0);
        }
        close(fds[1]);
        /* Kill between 5 ms and ~400 ms after the start (open included). */
        useconds_t delay = 5000 + (useconds_t)(xorshift(&seed) % 400000);
        usleep(delay);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        msg m;
        while (read(fds[0], &m, sizeof m) == sizeof m) {
            if (m.kind == 1 && m.upto > intended)
                intended = m.upto;
            if (m.kind == 2 && m.upto > acked)
                acked = m.upto;
        }
        close(fds[0]);
        int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
        if (!killed) {
            printf("iteration %d: the child exited before the kill (status %d)\n", it, status);
            failed++;
            continue;
        }
        if (verify(path, acked, intended, it)) {
            passed++;
        } else {
            failed++;
        }
        /* Whatever was committed but not acknowledged is now part of the log:
         * the oracle catches up to the log before the next child. */
        sako_engine *r;
        if (sako_init(&r, path, NULL) == SAKO_OK) {
            sako_stats st;
            sako_stats_get(r, &st);
            acked = intended = (int64_t)st.n_events;
            sako_close(r);
        }
    }
    unlink(path);
    unlink(wal);
    unlink(shm);
    printf("kill9: %lld events acknowledged over %d kills\n", (long long)acked, iterations);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
