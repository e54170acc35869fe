/* The retrain policy: when a retrain is due, and the counters that say so.
 *
 * Three triggers, any combination: events since the last activation (the engine's
 * event count minus the count then), wall-clock seconds since it, and drift of the
 * conversion of served recommendations. The first two need no counter of their
 * own. Drift needs two samples: the baseline, the first drift_window rec-attributed
 * impressions after the activation, and the recent window, a ring of 16 buckets of
 * ceil(window / 16) impressions each, filled only once the baseline is complete so
 * that the two samples never share an event. A success (click, cart, purchase with
 * a rec_id) counts in the sample being filled when it arrives: matching it to its
 * impression would need a map of every open recommendation, and with a window far
 * longer than the delay between a view and a click the edge effect is small.
 *
 * The engine only says that a retrain is due; who runs it (the service's background
 * task, a cron job) calls sako_retrain(), whose activation resets the counters. */
#include <math.h>
#include <string.h>

#include "engine_internal.h"
#include "killpoint_internal.h"
#include "policy_internal.h"

/* The fields a version-1 struct has (0.3): the rest of a sako_policy follows them. */
typedef struct policy_v1 {
    unsigned version;
    uint64_t every_events, every_seconds;
    double drift_fraction;
    uint64_t drift_window, drift_min_impressions;
} policy_v1;

static int policy_check(const sako_policy *p)
{
    if (p->version != SAKO_POLICY_VERSION)
        return sako__error(SAKO_INVALID, "policy: version %u is not 1 or %d (use SAKO_POLICY_INIT)",
                           p->version, SAKO_POLICY_VERSION);
    if (p->every_events > SAKO_POLICY_MAX)
        return sako__error(SAKO_INVALID, "policy: every_events %llu is above 2^53-1",
                           (unsigned long long)p->every_events);
    if (p->every_seconds > SAKO_POLICY_MAX)
        return sako__error(SAKO_INVALID, "policy: every_seconds %llu is above 2^53-1",
                           (unsigned long long)p->every_seconds);
    if (!(p->drift_fraction >= 0.0 && p->drift_fraction < 1.0))
        return sako__error(SAKO_INVALID, "policy: drift_fraction %g is not in [0, 1) (0 = off)",
                           p->drift_fraction);
    if (p->drift_window < 1 || p->drift_window > SAKO_POLICY_MAX)
        return sako__error(SAKO_INVALID, "policy: drift_window %llu is not in [1, 2^53-1]",
                           (unsigned long long)p->drift_window);
    if (p->drift_min_impressions < 1 || p->drift_min_impressions > p->drift_window)
        return sako__error(SAKO_INVALID, "policy: drift_min_impressions %llu is not in [1, "
                           "drift_window = %llu]", (unsigned long long)p->drift_min_impressions,
                           (unsigned long long)p->drift_window);
    if (!(p->gate_margin >= 0.0 && p->gate_margin <= 1.0))
        return sako__error(SAKO_INVALID, "policy: gate_margin %g is not in [0, 1] (an NDCG "
                           "difference; 1 = finiteness only)", p->gate_margin);
    if (!(p->gate_holdout_fraction >= 0.0 && p->gate_holdout_fraction <= 0.5))
        return sako__error(SAKO_INVALID, "policy: gate_holdout_fraction %g is not in [0, 0.5]",
                           p->gate_holdout_fraction);
    if (p->gate_holdout_events > SAKO_POLICY_MAX || p->gate_min_baskets > SAKO_POLICY_MAX)
        return sako__error(SAKO_INVALID, "policy: gate_holdout_events or gate_min_baskets is "
                           "above 2^53-1");
    if (p->keep_versions < 1 || p->keep_versions > SAKO_POLICY_KEEP_MAX)
        return sako__error(SAKO_INVALID, "policy: keep_versions %llu is not in [1, %d]",
                           (unsigned long long)p->keep_versions, SAKO_POLICY_KEEP_MAX);
    return SAKO_OK;
}

static void counters_reset(sako_policy_state *ps)
{
    ps->base_imp = ps->base_succ = 0.0;
    memset(ps->bucket_imp, 0, sizeof ps->bucket_imp);
    memset(ps->bucket_succ, 0, sizeof ps->bucket_succ);
    ps->bucket = 0;
}

int sako__policy_load(sako_engine *e)
{
    sako_policy_state *ps = &e->policy;
    memset(ps, 0, sizeof *ps);
    ps->policy.version = SAKO_POLICY_VERSION;
    int rc = sako__store_read_policy(&e->store, &ps->policy, &ps->act);
    if (rc)
        return rc;
    if (policy_check(&ps->policy) != SAKO_OK || ps->act.batch < 0 || ps->act.at < 0)
        return sako__error(SAKO_CORRUPT, "database damaged: invalid retrain policy");
    return SAKO_OK;
}

void sako__policy_observe(sako_policy_state *ps, const double *reward, const sako_event *ev)
{
    if (ev->rec_id == 0)
        return;
    double window = (double)ps->policy.drift_window;
    int baseline = ps->base_imp < window;
    if (ev->type != SAKO_EVENT_IMPRESSION) {
        /* to the sample holding the latest impression */
        if (baseline || (ps->bucket == 0 && ps->bucket_imp[0] == 0.0))
            ps->base_succ += reward[ev->type];
        else
            ps->bucket_succ[ps->bucket] += reward[ev->type];
        return;
    }
    if (baseline) {
        ps->base_imp += 1.0;
        return;
    }
    double size = ceil(window / SAKO_POLICY_BUCKETS);
    if (ps->bucket_imp[ps->bucket] >= size) {
        ps->bucket = (ps->bucket + 1) % SAKO_POLICY_BUCKETS;
        ps->bucket_imp[ps->bucket] = ps->bucket_succ[ps->bucket] = 0.0;
    }
    ps->bucket_imp[ps->bucket] += 1.0;
}

void sako__policy_replay(sako_engine *e, int64_t seq, const sako_event *ev, size_t n)
{
    if (seq <= e->policy.act.batch)
        return;
    for (size_t i = 0; i < n; i++)
        sako__policy_observe(&e->policy, e->params.reward, &ev[i]);
}

/* Replay the log after the last activation into fresh counters (a new window). */
typedef struct rebuild_state {
    sako_policy_state *ps;
    const double *reward;
} rebuild_state;

static int rebuild_batch(void *payload, int64_t seq, const sako_event *ev, const int64_t *orders,
                         size_t n)
{
    (void)seq;
    (void)orders;
    rebuild_state *rs = payload;
    for (size_t i = 0; i < n; i++)
        sako__policy_observe(rs->ps, rs->reward, &ev[i]);
    return SAKO_OK;
}

void sako__policy_activated(sako_engine *e)
{
    sako_store_activation act = { sako__store_now_ms(), e->n_events, 0 };
    int rc = sako__store_last_batch(&e->store, &act.batch);
    if (rc == SAKO_OK && (rc = sako__store_begin(&e->store)) == SAKO_OK) {
        if ((rc = sako__store_write_activation(&e->store, &act))) {
            sako__store_rollback(&e->store);
        } else {
            SAKO_KILL_POINT("policy.activation_before_commit");
            rc = sako__store_commit(&e->store);
        }
    }
    (void)rc; /* see policy_internal.h: the activation stands either way */
    pthread_rwlock_wrlock(&e->lock);
    e->policy.act = act;
    counters_reset(&e->policy);
    pthread_rwlock_unlock(&e->lock);
}

int sako_policy_set(sako_engine *e, const sako_policy *p_in)
{
    if (!e || !p_in)
        return sako__error(SAKO_MISUSE, "sako_policy_set: NULL engine or policy");
    /* A version-1 struct (0.3) has only the first fields: read those, and keep the
     * gate's and keep_versions as they are. */
    sako_policy merged;
    const sako_policy *p = p_in;
    if (p_in->version == 1) {
        pthread_rwlock_rdlock(&e->lock);
        merged = e->policy.policy;
        pthread_rwlock_unlock(&e->lock);
        policy_v1 v1;
        memcpy(&v1, p_in, sizeof v1);
        merged.every_events = v1.every_events;
        merged.every_seconds = v1.every_seconds;
        merged.drift_fraction = v1.drift_fraction;
        merged.drift_window = v1.drift_window;
        merged.drift_min_impressions = v1.drift_min_impressions;
        p = &merged;
    }
    int rc = policy_check(p);
    if (rc)
        return rc;
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    sako_policy_state fresh = e->policy; /* only this thread changes it: no lock to read */
    fresh.policy = *p;
    int rebuild = p->drift_window != e->policy.policy.drift_window;
    if (rebuild) {
        counters_reset(&fresh);
        rebuild_state rs = { &fresh, e->params.reward };
        rc = sako__store_read_batches(&e->store, fresh.act.batch, rebuild_batch, &rs);
    }
    if (rc == SAKO_OK && (rc = sako__store_begin(&e->store)) == SAKO_OK) {
        if ((rc = sako__store_write_policy(&e->store, p))) {
            sako__store_rollback(&e->store);
        } else {
            SAKO_KILL_POINT("policy.set_before_commit");
            rc = sako__store_commit(&e->store);
        }
    }
    if (rc == SAKO_OK) {
        pthread_rwlock_wrlock(&e->lock);
        e->policy = fresh;
        pthread_rwlock_unlock(&e->lock);
    }
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}

int sako_policy_get(sako_engine *e, sako_policy *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_policy_get: NULL engine or output");
    sako__error_clear();
    pthread_rwlock_rdlock(&e->lock);
    sako_policy p = e->policy.policy;
    pthread_rwlock_unlock(&e->lock);
    if (out->version == SAKO_POLICY_VERSION) {
        *out = p;
    } else {
        /* Any other value: a version-1 struct (0.3), which ends after these. */
        policy_v1 v1 = { 1, p.every_events, p.every_seconds, p.drift_fraction, p.drift_window,
                         p.drift_min_impressions };
        memcpy(out, &v1, sizeof v1);
    }
    return SAKO_OK;
}

/* One static text per combination of reasons. */
static const char *const reason_text[8] = {
    "not due", "events", "time", "events, time", "drift", "events, drift", "time, drift",
    "events, time, drift",
};

int sako_retrain_due(sako_engine *e, sako_retrain_status *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_retrain_due: NULL engine or output");
    sako__error_clear();
    int64_t now = sako__store_now_ms();
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&e->lock);
    const sako_policy_state *ps = &e->policy;
    const sako_policy *p = &ps->policy;
    double recent_imp = 0.0, recent_succ = 0.0;
    for (int b = 0; b < SAKO_POLICY_BUCKETS; b++) {
        recent_imp += ps->bucket_imp[b];
        recent_succ += ps->bucket_succ[b];
    }
    out->events_since = e->n_events >= ps->act.n_events ? e->n_events - ps->act.n_events : 0;
    out->retrained_at = ps->act.at;
    out->seconds_since = now > ps->act.at ? (double)(now - ps->act.at) / 1000.0 : 0.0;
    out->baseline_impressions = (uint64_t)ps->base_imp;
    out->baseline_conversion = ps->base_imp > 0 ? ps->base_succ / ps->base_imp : 0.0;
    out->recent_impressions = (uint64_t)recent_imp;
    out->recent_conversion = recent_imp > 0 ? recent_succ / recent_imp : 0.0;
    if (p->every_events && out->events_since >= p->every_events)
        out->reasons |= SAKO_RETRAIN_EVENTS;
    if (p->every_seconds && out->seconds_since >= (double)p->every_seconds)
        out->reasons |= SAKO_RETRAIN_TIME;
    double min = (double)p->drift_min_impressions;
    if (p->drift_fraction > 0.0 && ps->base_imp >= min && recent_imp >= min &&
        out->baseline_conversion > 0.0 &&
        out->recent_conversion < p->drift_fraction * out->baseline_conversion)
        out->reasons |= SAKO_RETRAIN_DRIFT;
    pthread_rwlock_unlock(&e->lock);
    out->due = out->reasons != 0;
    out->reason = reason_text[out->reasons];
    return SAKO_OK;
}
