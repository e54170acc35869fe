/* The log checkpoint's encoding (logstate.c): the state a replay of the event log
 * holds at a batch C, so that the batches up to C can be deleted and a replay
 * starts from it instead (issue 9 item 5).
 *
 * That state is what open and sako_retrain() rebuild from the log and nothing
 * else: every item's counts in their decay frame (retrain) and the personal state
 * (histories, demand sums, partners, in their own frame; open and retrain). The
 * rest a replay does not need: users' totals and the counts open starts from are
 * the regular checkpoint (items and users tables, at or after C); priors and demand
 * constants are an epoch's, computed from the state; the retrain policy's counters
 * start after its last activation, which is at or after C.
 *
 * Records carry ids, not indices, so a checkpoint loads into any engine whose
 * catalog and users hold them. Values are stored bit for bit (doubles and floats
 * as their bits), so a replay from the checkpoint continues exactly as one from the
 * first batch. A checkpoint is a head and chunks of item and user records of
 * about SAKO_LOGSTATE_CHUNK bytes, each a row with its CRC-32C (store.c). */
#ifndef SAKO_LOGSTATE_INTERNAL_H
#define SAKO_LOGSTATE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "decay_internal.h"
#include "idmap_internal.h"
#include "personal_internal.h"
#include "store_internal.h"

#define SAKO_LOGSTATE_CHUNK (1 << 20)

/* What is written: the state at `batch` (indices as in the arrays of ids). */
typedef struct sako_logstate_src {
    int64_t batch, events;            /* C, and the events logged up to it */
    const sako_counts *counts;        /* n_items */
    const sako_decay *counts_decay;
    const sako_personal *personal;
    const sako_personal_params *pp;
    const int64_t *item_ids;          /* per item index */
    size_t n_items;
    const int64_t *user_ids;          /* per user index */
    size_t n_users;
} sako_logstate_src;

/* Encodes a checkpoint chunk by chunk (item chunks, user chunks, then the head). */
typedef struct sako_logstate_writer {
    const sako_logstate_src *src;
    int part;                         /* the part being encoded; 3 once the head is out */
    size_t next;                      /* its next record */
    int64_t chunk;                    /* its next chunk number */
    int64_t n_chunks[3], n_records[3];
    unsigned char *buf;
    size_t len, cap;
    size_t bytes;                     /* everything encoded so far */
} sako_logstate_writer;

void sako__logstate_writer_init(sako_logstate_writer *w, const sako_logstate_src *src);
/* The next chunk (valid until the next call): 1 and its part, number and bytes; 0
 * when the head has been produced; SAKO_NOMEM. */
int sako__logstate_next(sako_logstate_writer *w, int *part, int64_t *chunk, const void **data,
                        size_t *bytes);
void sako__logstate_writer_free(sako_logstate_writer *w);

/* What a load fills: the state at `batch`. The caller reserved the personal state
 * for the engine's items and users and (with counts) cap_counts items; items and
 * users are resolved through the maps, under `lock` (read) when given. */
typedef struct sako_logstate_dst {
    int64_t batch;
    const sako_idmap *items, *users;
    pthread_rwlock_t *lock;
    const sako_personal_params *pp;   /* must be the checkpoint's */
    sako_counts *counts;              /* NULL: the personal state only (open) */
    size_t cap_counts;
    sako_decay *counts_decay;         /* its half-life must be the checkpoint's */
    sako_personal *personal;          /* fresh */
    int64_t events;                   /* out: events logged up to batch */
} sako_logstate_dst;

/* Load the checkpoint at d->batch. SAKO_CORRUPT naming the damaged part and chunk
 * (checksum, malformed record, unknown id, missing chunk); SAKO_INVALID when the
 * parameters the state was built with differ from those in force; SAKO_NOMEM. On
 * failure the destination holds a partial state the caller must discard. */
int sako__logstate_load(sako_store *st, sako_logstate_dst *d);

#endif
