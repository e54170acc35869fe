/* The retrain policy and the counters behind it (policy.c).
 *
 * The counters move in O(1) per event from events.c's publish step (under the
 * write lock), are rebuilt at open from the log after the last activation (the
 * replay in retrain.c) and are reset when a model is activated (a retrain). */
#ifndef SAKO_POLICY_INTERNAL_H
#define SAKO_POLICY_INTERNAL_H

#include <stdint.h>

#include "sako.h"
#include "store_internal.h"

/* The recent window is kept as a ring of buckets of ceil(window / 16) impressions. */
#define SAKO_POLICY_BUCKETS 16
/* Most versions keep_versions may keep. */
#define SAKO_POLICY_KEEP_MAX 10000

typedef struct sako_policy_state {
    sako_policy policy;
    sako_store_activation act;      /* the last activation: time, events, log position */
    double base_imp, base_succ;     /* the baseline: first drift_window rec impressions */
    double bucket_imp[SAKO_POLICY_BUCKETS], bucket_succ[SAKO_POLICY_BUCKETS];
    unsigned bucket;                /* the bucket being filled */
} sako_policy_state;

struct sako_engine;

/* The stored policy and activation into the engine (open, before the log replay). */
int sako__policy_load(struct sako_engine *e);
/* One acknowledged event (publish step; write lock held). */
void sako__policy_observe(sako_policy_state *ps, const double *reward, const sako_event *ev);
/* One logged batch replayed at open: observed if it came after the last activation. */
void sako__policy_replay(struct sako_engine *e, int64_t seq, const sako_event *ev, size_t n);
/* A model was activated (a retrain, later a rollback): the counters start again from
 * here, in memory and on disk (its own transaction; call with the writer mutex held,
 * outside any transaction). The activation already happened, so a failure to store
 * it is not reported: the next open counts from the previous one instead. */
void sako__policy_activated(struct sako_engine *e);

#endif
