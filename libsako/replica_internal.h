/* The log position of a replica's `_at` calls (replica.c; sako.h, "replication").
 * Not API. Every function here runs under the engine's writer mutex. */
#ifndef SAKO_REPLICA_INTERNAL_H
#define SAKO_REPLICA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"

/* One `_at` call: its position and what became of its batch. */
typedef struct sako_at {
    int64_t position;  /* in [1, INT64_MAX] */
    int outcome;       /* a sako_at_outcome */
} sako_at;

/* The stored position into the engine (open; absent = 0). */
int sako__replica_load(sako_engine *e);
/* Whether the batch goes on: SAKO_OK, or 1 when it is at or below the stored
 * position (outcome SKIPPED). */
int sako__replica_begin(sako_engine *e, sako_at *at);
/* The writer mutex for a batch of n entries whose argument check gave *rc. With a
 * position, a batch at or below it is skipped (*rc SAKO_OK), and one that failed the
 * check or is empty consumes it (sako__replica_failed / _consume set *rc): then 1 is
 * returned and the mutex is not held. Otherwise 0, with the mutex held and *rc kept. */
int sako__replica_enter(sako_engine *e, sako_at *at, size_t n, int *rc);
/* Inside the batch's transaction: the position with it (nothing when at is NULL). */
int sako__replica_write(sako_engine *e, const sako_at *at);
/* The batch's transaction committed (nothing when at is NULL). */
void sako__replica_applied(sako_engine *e, sako_at *at);
/* The batch failed with `rc`: a validation failure (INVALID, NOTFOUND, RANGE) is a
 * function of the log, so its position is consumed in a transaction of its own
 * (outcome REJECTED). Returns rc, its message kept, or the failure to store. */
int sako__replica_failed(sako_engine *e, sako_at *at, int rc);
/* An empty batch: only its position, in a transaction of its own (APPLIED). */
int sako__replica_consume(sako_engine *e, sako_at *at);

#endif
