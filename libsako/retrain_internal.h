/* Log replay, prior epochs and checkpoints (retrain.c). Callers hold the writer mutex. */
#ifndef SAKO_RETRAIN_INTERNAL_H
#define SAKO_RETRAIN_INTERNAL_H

#include <stdint.h>

#include "decay_internal.h"
#include "personal_internal.h"
#include "sako.h"
#include "store_internal.h"

/* Catalogs up to this size refresh their priors inline (a few milliseconds);
 * larger ones on a background thread. */
#define SAKO_REFRESH_SYNC_ITEMS 10000

/* Replay the whole event log. With `counts` (a retrain): item counts into `counts`
 * (one per item) and personal state into `personal`, both fresh. Without (open):
 * every batch into the engine's personal state, and the batches after
 * `model_after` (the checkpoint) also into its items and users, as sako_update()
 * would. */
int sako__retrain_replay(sako_engine *e, int64_t model_after, sako_counts *counts,
                         sako_decay *counts_decay, sako_personal *personal);
/* After an update (writer mutex held): if a prior refresh is due, run it inline on
 * a small catalog (up to refresh_sync_items), else start it on a background thread
 * unless one runs already (or a retrain does). */
void sako__retrain_refresh(sako_engine *e);
/* Wait until a background refresh has finished and been published (a replica's
 * `_at` calls: the refresh lands between the same two batches everywhere; writer
 * mutex not held). */
void sako__retrain_settle(sako_engine *e);
/* Stop and join a background refresh (sako_close; writer mutex not held). */
void sako__retrain_stop(sako_engine *e);
/* A new prior epoch at the log's latest event time: fresh priors, published
 * atomically (a refresh, a reconfigure). With `counts` (in decay frame
 * `counts_decay`) those counts replace the items' and are checkpointed. No model
 * version is built here: a retrain builds and gates its own (retrain.c). */
int sako__retrain_epoch(sako_engine *e, const sako_counts *counts, const sako_decay *counts_decay);
/* Serve stored version `version`'s fitted model (rollback): its priors and demand
 * replace the served ones, on disk (with the version marked active, one
 * transaction) and in memory (swapped under the write lock). Writer mutex held. */
int sako__retrain_activate(sako_engine *e, int64_t version, const sako_store_fit *fit);
/* Checkpoint only (no new priors). */
int sako__retrain_checkpoint(sako_engine *e);

/* What a retrain's replay holds at a batch (compaction). */
typedef struct sako_retrain_state {
    sako_counts *counts;       /* per item index (cap_counts) */
    size_t cap_counts;
    sako_decay decay;          /* their frame */
    sako_personal personal;
    int64_t batch;             /* the last batch replayed into it */
    uint64_t events;           /* events replayed after the log checkpoint */
} sako_retrain_state;
/* The retrain replay's state at the last batch in (from, upto] before the first
 * that holds an event later than `cutoff` or would take the events replayed past
 * max_events, starting from the log checkpoint at `from`, read on `reader` (the
 * engine's own store with `locked`: the caller holds the writer mutex; else a
 * second connection, ids resolved under the read lock). cap_items and n_users: the
 * engine's when the range was chosen. */
int sako__retrain_state_at(sako_engine *e, sako_store *reader, int locked, int64_t from,
                           int64_t upto, int64_t cutoff, uint64_t max_events, size_t cap_items,
                           size_t n_users, sako_retrain_state *out);
void sako__retrain_state_free(sako_retrain_state *s);

#endif
