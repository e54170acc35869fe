/* Power loss: a workload of update batches (one new user each, so that each batch can
 * be found whole or not at all), two retrains and a catalog change, with a simulated
 * power loss before the nth write or sync of the database or its WAL: writes not
 * synced by then are forgotten (all of them, or a random half of their sectors).
 * The snapshot must open, pass sako_verify, hold every batch acknowledged at
 * SAKO_DURABLE_FULL (at NORMAL: a prefix of them), the batch in flight whole or not
 * at all, and nothing after it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "powerloss.h"

#define BATCHES 24
#define USER0 3000

static int batch_size(int i)
{
    return 1 + (i * 7) % 5;
}

static int acked;    /* batches acknowledged */
static int in_flight_at_crash = -1, acked_at_crash = -1;

static void note_crash(int batch)
{
    if (acked_at_crash < 0 && powerloss_taken()) {
        acked_at_crash = acked;
        in_flight_at_crash = batch;
    }
}

/* The workload; returns 0 or a status. Batch i is in flight while its update runs. */
static int workload(const char *path, int durability)
{
    sako_options o = scenario_options(durability);
    sako_engine *e;
    acked = 0;
    int rc = sako_init(&e, path, &o);
    note_crash(-1);
    if (rc)
        return rc;
    for (int i = 0; i < BATCHES; i++) {
        sako_event ev[8];
        int n = batch_size(i);
        for (int j = 0; j < n; j++)
            ev[j] = (sako_event){ USER0 + i, 1 + (i * 3 + j) % 40, j % 4,
                                  1700000000000LL + 50 * 86400000LL + i * 1000 + j, 0 };
        rc = sako_update(e, ev, (size_t)n);
        note_crash(i);
        if (rc)
            break;
        acked++;
        if (i == 8 || i == 17) {
            rc = sako_retrain(e);
            note_crash(-1);
        } else if (i == 12) {
            sako_item it = { 44, 2, 1, 1700000000000LL };
            rc = sako_items_upsert(e, &it, 1);
            note_crash(-1);
        }
        if (rc)
            break;
    }
    sako_close(e);
    note_crash(-1);
    return rc;
}

/* Checks a snapshot; returns the number of broken invariants. */
static int check_snapshot(const char *snap, int durability, long n, int *lost_out)
{
    int broken = 0;
    sako_verify_report rep;
    int rc = sako_verify(snap, &rep);
    if (rc) {
        fprintf(stderr, "  power loss at %ld: sako_verify: %s (%s)\n", n, sako_errstr(rc), sako_errmsg());
        return 1;
    }
    sako_options o = scenario_options(durability);
    sako_engine *e;
    if ((rc = sako_init(&e, snap, &o))) {
        fprintf(stderr, "  power loss at %ld: open: %s (%s)\n", n, sako_errstr(rc), sako_errmsg());
        return 1;
    }
    int present_run = 1, lost = 0;
    for (int i = 0; i < BATCHES; i++) {
        sako_user_info u;
        rc = sako_user_get(e, USER0 + i, &u);
        uint64_t have = rc == SAKO_OK ? u.n_events : 0;
        if (rc != SAKO_OK && rc != SAKO_NOTFOUND) {
            fprintf(stderr, "  power loss at %ld: user_get: %s\n", n, sako_errstr(rc));
            broken++;
        }
        if (have != 0 && have != (uint64_t)batch_size(i)) {
            fprintf(stderr, "  power loss at %ld: batch %d is torn: %llu of %d events\n", n, i,
                    (unsigned long long)have, batch_size(i));
            broken++;
        }
        if (have && !present_run) {
            fprintf(stderr, "  power loss at %ld: batch %d is there but an earlier one is not\n", n, i);
            broken++;
        }
        if (!have)
            present_run = 0;
        int must_have = i < acked_at_crash && durability == SAKO_DURABLE_FULL;
        if (must_have && !have) {
            fprintf(stderr, "  power loss at %ld: acknowledged batch %d is lost\n", n, i);
            broken++;
        }
        if (!have && i < acked_at_crash)
            lost++;
        int may_have = i < acked_at_crash || i == in_flight_at_crash;
        if (have && !may_have) {
            fprintf(stderr, "  power loss at %ld: batch %d was not yet submitted\n", n, i);
            broken++;
        }
    }
    sako_rec recs[5];
    size_t got = 0;
    sako_query q = SAKO_QUERY_INIT;
    q.k = 5;
    if ((rc = sako_recommend(e, &q, recs, 5, &got)) || got == 0) {
        fprintf(stderr, "  power loss at %ld: recommend: %s\n", n, sako_errstr(rc));
        broken++;
    }
    if ((rc = scenario_followup(e))) {
        fprintf(stderr, "  power loss at %ld: a batch after: %s (%s)\n", n, sako_errstr(rc), sako_errmsg());
        broken++;
    }
    sako_close(e);
    *lost_out = lost;
    return broken;
}

int powerloss_run(const powerloss_env *env, powerloss_result *res)
{
    char work[1100], snap[1100];
    snprintf(work, sizeof work, "%s/pl-work.db", env->dir);
    snprintf(snap, sizeof snap, "%s/pl-snap.db", env->dir);
    memset(res, 0, sizeof *res);
    powerloss_record(1);

    /* Count the crash points of a whole run. */
    long total = 0;
    for (long probe = 1;; probe *= 2) {
        powerloss_reset();
        file_copy_db(env->base, work);
        acked_at_crash = -1;
        powerloss_at_write(probe, work, snap, 0, 1);
        workload(work, env->durability);
        if (!powerloss_taken()) {
            long lo = probe / 2, hi = probe; /* taken at lo, not at hi */
            while (hi - lo > 1) {
                long mid = (lo + hi) / 2;
                powerloss_reset();
                file_copy_db(env->base, work);
                acked_at_crash = -1;
                powerloss_at_write(mid, work, snap, 0, 1);
                workload(work, env->durability);
                if (powerloss_taken())
                    lo = mid;
                else
                    hi = mid;
            }
            total = lo;
            break;
        }
    }
    res->points = total;
    long stride = env->max_points > 0 && total > env->max_points
                      ? (total + env->max_points - 1) / env->max_points : 1;
    for (long n = 1; n <= total; n += stride) {
        powerloss_reset();
        file_copy_db(env->base, work);
        acked_at_crash = -1;
        in_flight_at_crash = -1;
        powerloss_at_write(n, work, snap, env->keep_percent, (uint64_t)n * 2654435761u);
        int rc = workload(work, env->durability);
        if (rc) {
            fprintf(stderr, "  power loss at %ld: the workload failed: %s\n", n, sako_errstr(rc));
            res->broken++;
        }
        if (!powerloss_taken())
            continue;
        int lost = 0;
        res->broken += check_snapshot(snap, env->durability, n, &lost);
        res->runs++;
        res->acked_lost += lost;
        res->runs_losing += lost > 0;
        file_remove_db(snap);
    }
    powerloss_record(0);
    powerloss_reset();
    file_remove_db(work);
    return (int)res->broken;
}
