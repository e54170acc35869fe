/* The retrain policy: each trigger alone and together; drift fires for a real drop
 * and not for noise at the default minimum sample; the counters survive a reopen and
 * are reset by a retrain; a bad policy is refused whole; a 0.2 (schema 2) file
 * migrates with its last retrain as the activation. */
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>

#include "check_sako.h"

/* ------------------------------------------------------------ helpers */

/* splitmix64: the test's own stream, so the samples do not depend on the engine. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s) { return (double)(mix(s) >> 11) * 0x1.0p-53; }

/* n recommended impressions, each clicked with probability p (the click answers the
 * same rec_id); returns the clicks. Batches of up to 4096 events. */
static uint64_t feed(sako_engine *e, uint64_t *rng, uint64_t n, double p)
{
    enum { CAP = 4096 };
    static sako_event ev[CAP];
    size_t m = 0;
    uint64_t clicks = 0;
    for (uint64_t i = 0; i < n; i++) {
        int64_t user = 1 + (int64_t)(mix(rng) % 500);
        int64_t item = sk_active_ids[mix(rng) % SK_N_ACTIVE];
        int64_t rec = 1 + (int64_t)(mix(rng) % 1000000);
        ev[m++] = (sako_event){user, item, SAKO_EVENT_IMPRESSION, 1000 + (int64_t)i, rec};
        if (uniform(rng) < p) {
            ev[m++] = (sako_event){user, item, SAKO_EVENT_CLICK, 1000 + (int64_t)i, rec};
            clicks++;
        }
        if (m >= CAP - 1) {
            ck_assert_ok(sako_update(e, ev, m));
            m = 0;
        }
    }
    if (m)
        ck_assert_ok(sako_update(e, ev, m));
    return clicks;
}

/* n organic events (no rec_id): they count for every_events, not for drift. */
static void feed_organic(sako_engine *e, size_t n)
{
    sako_event *ev = malloc(n * sizeof *ev);
    ck_assert_ptr_nonnull(ev);
    for (size_t i = 0; i < n; i++)
        ev[i] = (sako_event){1 + (int64_t)(i % 7), sk_active_ids[i % SK_N_ACTIVE],
                             (int)(i % 2 ? SAKO_EVENT_IMPRESSION : SAKO_EVENT_CLICK), 0, 0};
    ck_assert_ok(sako_update(e, ev, n));
    free(ev);
}

static sako_retrain_status due(sako_engine *e)
{
    sako_retrain_status s;
    memset(&s, 0xff, sizeof s);
    ck_assert_ok(sako_retrain_due(e, &s));
    ck_assert_ptr_nonnull(s.reason);
    ck_assert_int_eq(s.due, s.reasons != 0);
    return s;
}

static sako_engine *open_policy(const char *path, uint64_t seed)
{
    sako_options o = sk_opts(seed);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    return e;
}

static void set_policy(sako_engine *e, uint64_t every_events, uint64_t every_seconds,
                       double fraction, uint64_t window, uint64_t min)
{
    sako_policy p = SAKO_POLICY_INIT;
    p.every_events = every_events;
    p.every_seconds = every_seconds;
    p.drift_fraction = fraction;
    p.drift_window = window;
    p.drift_min_impressions = min;
    ck_assert_ok(sako_policy_set(e, &p));
}

static int same_policy(const sako_policy *a, const sako_policy *b)
{
    return a->version == b->version && a->every_events == b->every_events &&
           a->every_seconds == b->every_seconds && sk_same_double(a->drift_fraction, b->drift_fraction) &&
           a->drift_window == b->drift_window && a->drift_min_impressions == b->drift_min_impressions &&
           sk_same_double(a->gate_margin, b->gate_margin) &&
           a->gate_holdout_events == b->gate_holdout_events &&
           sk_same_double(a->gate_holdout_fraction, b->gate_holdout_fraction) &&
           a->gate_min_baskets == b->gate_min_baskets && a->keep_versions == b->keep_versions;
}

/* -------------------------------------------------------------- tests */

START_TEST(test_defaults)
{
    int64_t before = sk_now_ms();
    sako_engine *e = open_policy(NULL, 1);
    sako_policy got, want = SAKO_POLICY_INIT;
    memset(&got, 0, sizeof got);
    got.version = SAKO_POLICY_VERSION;
    ck_assert_ok(sako_policy_get(e, &got));
    ck_assert(same_policy(&got, &want));
    ck_assert_double_eq(want.drift_fraction, 0.0); /* every trigger off by default */
    uint64_t rng = 1;
    feed(e, &rng, 3000, 0.5);
    sako_retrain_status s = due(e);
    ck_assert_int_eq(s.due, 0);
    ck_assert_str_eq(s.reason, "not due");
    ck_assert_uint_eq(s.events_since, sk_stats(e).n_events);
    ck_assert(s.retrained_at >= before - 1000 && s.retrained_at <= sk_now_ms());
    ck_assert_uint_eq(s.baseline_impressions, 3000); /* counted even while drift is off */
    ck_assert_uint_eq(s.recent_impressions, 0);
    sako_close(e);
}
END_TEST

START_TEST(test_bad_policy_refused)
{
    sako_engine *e = open_policy(NULL, 2);
    set_policy(e, 7, 9, 0.5, 100, 50);
    sako_policy before = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &before));
    struct { const char *field; sako_policy p; } bad[] = {
        {"version", {99, 0, 0, 0.0, 100, 50, 0.01, 50000, 0.05, 200, 10}},
        {"drift_fraction", {SAKO_POLICY_VERSION, 0, 0, 1.0, 100, 50, 0.01, 50000, 0.05, 200, 10}},
        {"drift_fraction", {SAKO_POLICY_VERSION, 0, 0, -0.1, 100, 50, 0.01, 50000, 0.05, 200, 10}},
        {"drift_fraction", {SAKO_POLICY_VERSION, 0, 0, NAN, 100, 50, 0.01, 50000, 0.05, 200, 10}},
        {"drift_fraction", {SAKO_POLICY_VERSION, 0, 0, INFINITY, 100, 50, 0.01, 50000, 0.05, 200, 10}},
        {"drift_window", {SAKO_POLICY_VERSION, 0, 0, 0.5, 0, 0, 0.01, 50000, 0.05, 200, 10}},
        {"drift_window", {SAKO_POLICY_VERSION, 0, 0, 0.5, SAKO_POLICY_MAX + 1, 50, 0.01, 50000, 0.05, 200, 10}},
        {"drift_min_impressions", {SAKO_POLICY_VERSION, 0, 0, 0.5, 100, 0, 0.01, 50000, 0.05, 200, 10}},
        {"drift_min_impressions", {SAKO_POLICY_VERSION, 0, 0, 0.5, 100, 101, 0.01, 50000, 0.05, 200, 10}},
        {"every_events", {SAKO_POLICY_VERSION, SAKO_POLICY_MAX + 1, 0, 0.5, 100, 50, 0.01, 50000, 0.05, 200, 10}},
        {"every_seconds", {SAKO_POLICY_VERSION, 0, UINT64_MAX, 0.5, 100, 50, 0.01, 50000, 0.05, 200, 10}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_rc(sako_policy_set(e, &bad[i].p), SAKO_INVALID);
        ck_assert_msg(strstr(sako_errmsg(), bad[i].field), "[%zu] message \"%s\" does not name %s",
                      i, sako_errmsg(), bad[i].field);
        sako_policy now = SAKO_POLICY_INIT;
        ck_assert_ok(sako_policy_get(e, &now));
        ck_assert(same_policy(&now, &before));
    }
    ck_assert_rc(sako_policy_set(NULL, &before), SAKO_MISUSE);
    ck_assert_rc(sako_policy_set(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_policy_get(e, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_due(NULL, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_due(e, NULL), SAKO_MISUSE);
    /* the edges are accepted */
    set_policy(e, SAKO_POLICY_MAX, SAKO_POLICY_MAX, 0.999, 1, 1);
    sako_close(e);
}
END_TEST

START_TEST(test_events_trigger)
{
    sako_engine *e = open_policy(NULL, 3);
    set_policy(e, 100, 0, 0.0, 25000, 12500);
    feed_organic(e, 99);
    sako_retrain_status s = due(e);
    ck_assert_int_eq(s.due, 0);
    ck_assert_uint_eq(s.events_since, 99);
    ck_assert_uint_eq(s.baseline_impressions, 0); /* organic: not a served recommendation */
    feed_organic(e, 1);
    s = due(e);
    ck_assert_int_eq(s.reasons, SAKO_RETRAIN_EVENTS);
    ck_assert_str_eq(s.reason, "events");
    ck_assert_uint_eq(s.events_since, 100);
    ck_assert_ok(sako_retrain(e));
    s = due(e);
    ck_assert_int_eq(s.due, 0);
    ck_assert_uint_eq(s.events_since, 0);
    feed_organic(e, 250);
    s = due(e);
    ck_assert_int_eq(s.reasons, SAKO_RETRAIN_EVENTS);
    ck_assert_uint_eq(s.events_since, 250);
    sako_close(e);
}
END_TEST

START_TEST(test_time_trigger)
{
    sako_engine *e = open_policy(NULL, 4);
    set_policy(e, 0, 1, 0.0, 25000, 12500);
    feed_organic(e, 10);
    ck_assert_ok(sako_retrain(e));
    sako_retrain_status s = due(e);
    ck_assert_int_eq(s.due, 0);
    ck_assert(s.seconds_since >= 0.0 && s.seconds_since < 1.0);
    usleep(1100 * 1000);
    s = due(e);
    ck_assert_int_eq(s.reasons, SAKO_RETRAIN_TIME);
    ck_assert_str_eq(s.reason, "time");
    ck_assert(s.seconds_since >= 1.0);
    ck_assert_ok(sako_retrain(e));
    s = due(e);
    ck_assert_int_eq(s.due, 0);
    sako_close(e);
}
END_TEST

/* Small windows so that drift fires after a few hundred impressions. */
START_TEST(test_combined_triggers)
{
    sako_engine *e = open_policy(NULL, 5);
    set_policy(e, 1000, 1, 0.5, 400, 300);
    uint64_t rng = 5;
    feed(e, &rng, 400, 0.6);  /* baseline */
    feed(e, &rng, 400, 0.05); /* recent: a twelfth of it */
    sako_retrain_status s = due(e);
    ck_assert_int_eq(s.reasons, SAKO_RETRAIN_EVENTS | SAKO_RETRAIN_DRIFT);
    ck_assert_str_eq(s.reason, "events, drift");
    usleep(1100 * 1000);
    s = due(e);
    ck_assert_int_eq(s.reasons, SAKO_RETRAIN_EVENTS | SAKO_RETRAIN_TIME | SAKO_RETRAIN_DRIFT);
    ck_assert_str_eq(s.reason, "events, time, drift");
    ck_assert_ok(sako_retrain(e));
    s = due(e);
    ck_assert_int_eq(s.reasons, 0);
    ck_assert_uint_eq(s.baseline_impressions, 0);
    ck_assert_uint_eq(s.recent_impressions, 0);
    sako_close(e);
}
END_TEST

/* Drift alone, and the counters' arithmetic: the baseline takes the first window,
 * the recent window the latest 15/16..16/16 of it, successes weighted by reward. */
START_TEST(test_drift_counters)
{
    sako_engine *e = open_policy(NULL, 6);
    set_policy(e, 0, 0, 0.8, 160, 100);
    uint64_t rng = 6;
    uint64_t clicks = feed(e, &rng, 160, 0.5);
    sako_retrain_status s = due(e);
    ck_assert_uint_eq(s.baseline_impressions, 160);
    ck_assert_double_eq_tol(s.baseline_conversion, 0.7 * (double)clicks / 160.0, 1e-12);
    ck_assert_uint_eq(s.recent_impressions, 0);
    feed(e, &rng, 99, 0.5);
    s = due(e);
    ck_assert_uint_eq(s.recent_impressions, 99);
    ck_assert_int_eq(s.due, 0); /* below the minimum whatever the rate */
    feed(e, &rng, 1000, 0.0);
    s = due(e);
    /* buckets of 10: the current one holds 1..10, the 15 before it are full */
    ck_assert(s.recent_impressions > 150 && s.recent_impressions <= 160);
    ck_assert_double_eq(s.recent_conversion, 0.0);
    ck_assert_int_eq(s.reasons, SAKO_RETRAIN_DRIFT);
    ck_assert_str_eq(s.reason, "drift");
    ck_assert_uint_eq(s.baseline_impressions, 160); /* the baseline does not move */
    sako_close(e);
}
END_TEST

/* The default minimum against noise: conversion p = 5 % (the rate it is sized for),
 * unchanged, with the default window and minimum and the default fraction 0.8. At
 * the first check with both samples complete the statistic recent - 0.8 baseline
 * has mean 0.2 p = 0.01 and standard error sqrt(p(1-p)(1/12500 + 0.64/25000)) =
 * 0.00224, z = 4.5: P(false trigger) = 4e-6 per seed, so none in 20 seeds (a
 * failure here has probability 8e-5). Each sample's conversion must also sit
 * within 4.5 binomial standard errors of 0.7 p. */
START_TEST(test_drift_noise_not_triggered)
{
    const double p = 0.05;
    sako_policy d = SAKO_POLICY_INIT;
    int fired = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        sako_engine *e = open_policy(NULL, seed);
        set_policy(e, 0, 0, SAKO_POLICY_DRIFT_FRACTION, d.drift_window, d.drift_min_impressions);
        uint64_t rng = 1000 + seed;
        feed(e, &rng, d.drift_window + d.drift_min_impressions, p);
        sako_retrain_status s = due(e);
        ck_assert_uint_eq(s.baseline_impressions, d.drift_window);
        ck_assert_uint_eq(s.recent_impressions, d.drift_min_impressions);
        double se_b = 0.7 * sqrt(p * (1 - p) / (double)s.baseline_impressions);
        double se_r = 0.7 * sqrt(p * (1 - p) / (double)s.recent_impressions);
        ck_assert_double_eq_tol(s.baseline_conversion, 0.7 * p, 4.5 * se_b);
        ck_assert_double_eq_tol(s.recent_conversion, 0.7 * p, 4.5 * se_r);
        fired += s.due;
        sako_close(e);
    }
    ck_assert_int_eq(fired, 0);
}
END_TEST

/* A real drop at the default minimum: 5 % -> 3 % (0.6 of the baseline, below 0.8).
 * recent - 0.8 baseline has mean -0.01 and standard error
 * sqrt(0.03*0.97/12500 + 0.64*0.05*0.95/25000) = 0.00188, z = -5.3: it fires for
 * every seed but with probability 6e-8. */
START_TEST(test_drift_drop_triggers)
{
    sako_policy d = SAKO_POLICY_INIT;
    for (uint64_t seed = 1; seed <= 5; seed++) {
        sako_engine *e = open_policy(NULL, seed);
        set_policy(e, 0, 0, SAKO_POLICY_DRIFT_FRACTION, d.drift_window, d.drift_min_impressions);
        uint64_t rng = 2000 + seed;
        feed(e, &rng, d.drift_window, 0.05);
        feed(e, &rng, d.drift_min_impressions - 1, 0.03);
        ck_assert_int_eq(due(e).due, 0); /* one short of the minimum */
        feed(e, &rng, 1, 0.03);
        sako_retrain_status s = due(e);
        ck_assert_msg(s.reasons == SAKO_RETRAIN_DRIFT, "seed %llu: baseline %g recent %g",
                      (unsigned long long)seed, s.baseline_conversion, s.recent_conversion);
        sako_close(e);
    }
}
END_TEST

static void assert_same_status(const sako_retrain_status *a, const sako_retrain_status *b)
{
    ck_assert_int_eq(a->reasons, b->reasons);
    ck_assert_uint_eq(a->events_since, b->events_since);
    ck_assert_int_eq(a->retrained_at, b->retrained_at);
    ck_assert_uint_eq(a->baseline_impressions, b->baseline_impressions);
    ck_assert_uint_eq(a->recent_impressions, b->recent_impressions);
    ck_assert(sk_same_double(a->baseline_conversion, b->baseline_conversion));
    ck_assert(sk_same_double(a->recent_conversion, b->recent_conversion));
}

/* Reopen: the policy is stored, the counters are rebuilt from the log after the last
 * retrain, exactly (before any retrain, from the whole log). */
START_TEST(test_reopen_keeps_counters)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "policy-reopen");
    sako_engine *e = open_policy(path, 7);
    set_policy(e, 5000, 3600, 0.5, 320, 200);
    uint64_t rng = 7;
    feed(e, &rng, 500, 0.4);
    sako_retrain_status s0 = due(e);
    sako_close(e);
    e = open_policy(path, 7);
    sako_retrain_status s1 = due(e);
    assert_same_status(&s0, &s1);
    ck_assert_ok(sako_retrain(e));
    feed(e, &rng, 320, 0.5);
    feed(e, &rng, 700, 0.1);
    feed_organic(e, 33);
    sako_retrain_status s2 = due(e);
    ck_assert_uint_eq(s2.baseline_impressions, 320);
    ck_assert(s2.recent_impressions >= 300);
    ck_assert_int_eq(s2.reasons, SAKO_RETRAIN_DRIFT);
    sako_policy p0 = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &p0));
    sako_close(e);
    e = open_policy(path, 7);
    sako_policy p1 = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &p1));
    ck_assert(same_policy(&p0, &p1));
    sako_retrain_status s3 = due(e);
    assert_same_status(&s2, &s3);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* A retrain resets every counter; a changed window rebuilds them from the log since
 * the last retrain, equal to counting with that window from the start. */
START_TEST(test_retrain_resets_and_window_rebuilds)
{
    sako_engine *e = open_policy(NULL, 8);
    sako_engine *ref = open_policy(NULL, 8);
    set_policy(e, 0, 0, 0.5, 1000, 500);
    set_policy(ref, 0, 0, 0.5, 1000, 500);
    uint64_t rng = 8, rng_ref = 8;
    feed(e, &rng, 777, 0.3);
    feed(ref, &rng_ref, 777, 0.3);
    int64_t t0 = due(e).retrained_at;
    usleep(20 * 1000);
    ck_assert_ok(sako_retrain(e));
    ck_assert_ok(sako_retrain(ref));
    sako_retrain_status s = due(e);
    ck_assert_uint_eq(s.events_since, 0);
    ck_assert_uint_eq(s.baseline_impressions, 0);
    ck_assert_uint_eq(s.recent_impressions, 0);
    ck_assert(s.retrained_at > t0);
    feed(e, &rng, 900, 0.3);
    feed(ref, &rng_ref, 900, 0.3);
    set_policy(ref, 0, 0, 0.5, 200, 100); /* from the retrain on, with the smaller window */
    sako_engine *fresh = open_policy(NULL, 8);
    set_policy(fresh, 0, 0, 0.5, 200, 100);
    uint64_t rng_fresh = 8;
    feed(fresh, &rng_fresh, 777, 0.3);
    ck_assert_ok(sako_retrain(fresh));
    feed(fresh, &rng_fresh, 900, 0.3);
    sako_retrain_status a = due(ref), b = due(fresh);
    ck_assert_uint_eq(a.baseline_impressions, 200);
    ck_assert_uint_eq(a.baseline_impressions, b.baseline_impressions);
    ck_assert_uint_eq(a.recent_impressions, b.recent_impressions);
    ck_assert(sk_same_double(a.baseline_conversion, b.baseline_conversion));
    ck_assert(sk_same_double(a.recent_conversion, b.recent_conversion));
    sako_close(e);
    sako_close(ref);
    sako_close(fresh);
}
END_TEST

/* A 0.2 file (schema 2: no policy keys) opens, migrates to 3 with every trigger off
 * and its latest retrain as the last activation, and counts the events after it. */
START_TEST(test_schema2_migrates)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "policy-schema2");
    sako_engine *e = open_policy(path, 9);
    uint64_t rng = 9;
    feed(e, &rng, 300, 0.3);
    ck_assert_ok(sako_retrain(e));
    feed(e, &rng, 150, 0.3);
    feed_organic(e, 21);
    sako_retrain_status before = due(e);
    sako_close(e);
    /* what libsako 0.2 wrote: the same tables without the policy keys */
    sk_sql_exec(path, SK_SCHEMA3_TO_2);
    e = open_policy(path, 9);
    ck_assert_int_eq(sk_sql_int(path, "PRAGMA user_version"), SK_SCHEMA_VERSION);
    sako_policy got = SAKO_POLICY_INIT, want = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &got));
    ck_assert(same_policy(&got, &want));
    sako_retrain_status s = due(e);
    ck_assert_int_eq(s.due, 0);
    ck_assert_uint_eq(s.events_since, before.events_since);
    ck_assert_uint_eq(s.baseline_impressions, 150);
    ck_assert(sk_same_double(s.baseline_conversion, before.baseline_conversion));
    ck_assert_int_eq(s.retrained_at, sk_sql_int(path, "SELECT max(created_at) FROM models"));
    sako_close(e);
    /* never retrained: everything since the first batch counts */
    sk_sql_exec(path, "DELETE FROM models; " SK_SCHEMA3_TO_2);
    e = open_policy(path, 9);
    s = due(e);
    ck_assert_uint_eq(s.events_since, sk_stats(e).n_events);
    ck_assert_uint_eq(s.baseline_impressions, 450);
    ck_assert_int_eq(s.retrained_at, sk_sql_int(path, "SELECT min(created_at) FROM event_batches"));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Readers of the policy and its status race a writer that ingests, retrains and
 * changes the policy (run under TSan by `make tsan`). */
typedef struct reader_arg {
    sako_engine *e;
    int stop;
    long reads;
    int bad;
} reader_arg;

static void *status_reader(void *p)
{
    reader_arg *a = p;
    while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
        sako_retrain_status s;
        sako_policy pol;
        /* one consistent state: no recent sample before the baseline (64 impressions,
         * 128 after the window changes) is complete */
        if (sako_retrain_due(a->e, &s) != SAKO_OK || sako_policy_get(a->e, &pol) != SAKO_OK ||
            (s.recent_impressions > 0 && s.baseline_impressions != 64 &&
             s.baseline_impressions != 128)) {
            __atomic_store_n(&a->bad, 1, __ATOMIC_RELAXED);
            break;
        }
        __atomic_add_fetch(&a->reads, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

START_TEST(test_concurrent_readers)
{
    sako_engine *e = open_policy(NULL, 10);
    set_policy(e, 500, 0, 0.5, 64, 32);
    reader_arg a = { e, 0, 0, 0 };
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, status_reader, &a), 0);
    /* On a loaded machine the writer could finish before a reader ran at all. */
    while (__atomic_load_n(&a.reads, __ATOMIC_RELAXED) == 0 && !__atomic_load_n(&a.bad, __ATOMIC_RELAXED))
        sched_yield();
    uint64_t rng = 10;
    for (int round = 0; round < 20; round++) {
        feed(e, &rng, 150, 0.3);
        if (round % 5 == 4)
            ck_assert_ok(sako_retrain(e));
        if (round == 10)
            set_policy(e, 500, 0, 0.5, 128, 32);
    }
    __atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ck_assert(a.reads > 0);
    ck_assert_int_eq(a.bad, 0);
    sako_close(e);
}
END_TEST

Suite *suite_policy(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("policy");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_bad_policy_refused);
    tcase_add_test(tc, test_events_trigger);
    tcase_add_test(tc, test_time_trigger);
    tcase_add_test(tc, test_combined_triggers);
    tcase_add_test(tc, test_drift_counters);
    tcase_add_test(tc, test_drift_noise_not_triggered);
    tcase_add_test(tc, test_drift_drop_triggers);
    tcase_add_test(tc, test_reopen_keeps_counters);
    tcase_add_test(tc, test_retrain_resets_and_window_rebuilds);
    tcase_add_test(tc, test_schema2_migrates);
    suite_add_tcase(s, tc);
    TCase *conc = tcase_create("concurrent");
    tcase_set_timeout(conc, 120);
    tcase_add_test(conc, test_concurrent_readers);
    suite_add_tcase(s, conc);
    return s;
}
