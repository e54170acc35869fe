/* Log replay, prior epochs and checkpoints (retrain.c). Callers hold the writer mutex. */
#ifndef SAKO_RETRAIN_INTERNAL_H
#define SAKO_RETRAIN_INTERNAL_H

#include <stdint.h>

#include "sako.h"
#include "store_internal.h"

/* Replay the logged batches after `after_batch`: into `counts` (one per item) when
 * given, else into the engine's items and users as sako_update() would. */
int sako__retrain_replay(sako_engine *e, int64_t after_batch, sako_counts *counts);
/* A new prior epoch: fresh priors, published atomically. With `counts` (a retrain)
 * those counts replace the items', are checkpointed, and the model version increases. */
int sako__retrain_epoch(sako_engine *e, const sako_counts *counts);
/* Checkpoint only (no new priors). */
int sako__retrain_checkpoint(sako_engine *e);

#endif
