/* The matrix factorisation as the engine serves it (factors.c): a training's item and
 * user factors, the cached Gram matrix for fold-in, the retrieval index, the users
 * folded in since, and their persistence (schema 5).
 *
 * A sako_factors is immutable once published (engine field `factors`, swapped under
 * the write lock, read under the read lock), except for its fold-in cache, which has
 * its own mutex. */
#ifndef SAKO_FACTORS_INTERNAL_H
#define SAKO_FACTORS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "catalog_internal.h"
#include "factor_index_internal.h"
#include "idmap_internal.h"
#include "interactions_internal.h"
#include "mf_internal.h"
#include "store_internal.h"
#include "users_internal.h"

/* A user's vector is stale when its interaction count moved past this. */
#define SAKO_FACTORS_NO_VECTOR UINT32_MAX

/* One user's cached index answer: the key (user, event count, probe, want), when it
 * was last served (cand_tick), and its n entries at slot * cand_want. */
struct sako_cand_slot {
    uint32_t user;       /* SAKO_FACTORS_CAND_EMPTY: no answer held */
    uint32_t events;
    uint32_t probe, want, n;
    uint64_t used;
};
#define SAKO_FACTORS_CAND_EMPTY UINT32_MAX

typedef struct sako_factors {
    uint32_t k;
    /* the training: its parameters, the rewards r_ui was weighed with, the log it saw */
    uint32_t iterations, cg_steps;
    double regularization, alpha;
    uint64_t seed;
    double reward[SAKO_EVENT_TYPES];
    int64_t trained_at;            /* wall clock, unix ms */
    int64_t first_batch, last_batch;
    uint64_t n_events;
    double train_seconds;          /* 0 after a reopen */
    /* item rows: item indices below n_items; has[i] = 1 when the training saw it */
    size_t n_items;
    float *item;
    uint8_t *has;
    size_t n_item_vectors;
    /* user rows: user indices below n_users; events[u] as the training saw them
     * (SAKO_FACTORS_NO_VECTOR: none stored) */
    size_t n_users;
    float *user;
    uint32_t *events;
    size_t n_user_vectors;
    double *gram;                  /* k x k: Y^T Y, the fold-in's cached half */
    double *mean;                  /* k: the item vectors' mean weighted by the users who
                                      interacted with each (a typical interaction's vector) */
    sako_factor_index *index;
    /* fold-in cache: per user, the vector solved from the full history at `fold_events` */
    pthread_mutex_t fold_mutex;
    float *fold;
    uint32_t *fold_events;
    size_t cap_fold;
    uint64_t n_folded;
    /* the index's answer per recently served user (sako__factors_candidates): a
     * 2-way set-associative cache of n_sets * 2 slots, allocated at its first use,
     * under its own mutex */
    pthread_mutex_t cand_mutex;
    struct sako_cand_slot *cand_slot;
    uint32_t *cand_items;          /* slot s: cand_want entries from s * cand_want */
    float *cand_scores;
    size_t cand_sets, cand_want;
    uint64_t cand_tick;
    uint64_t n_cand_hits, n_cand_misses;
} sako_factors;

/* What the candidate cache may hold, in bytes (at mf_candidates 200: 4,096 users). */
#define SAKO_FACTORS_CAND_BYTES (8u << 20)

/* The log range a training saw. */
typedef struct sako_factors_range {
    int64_t first_batch, last_batch;
    uint64_t n_events;
} sako_factors_range;

/* Train on the interactions of users [0, n_users) with items [0, n_items): r_ui weighed
 * with mp's rewards, mp's mf_* parameters, `threads` threads. *out NULL (and SAKO_OK)
 * when mp->mf_factors is 0 or there is nothing to train on. `items` gives the ids
 * (the index is built in id order). */
int sako__factors_train(const sako_interactions *inter, size_t n_users,
                        const sako_item_state *items, size_t n_items,
                        const sako_model_params *mp, uint32_t threads,
                        const sako_factors_range *range, sako_factors **out);
/* f's stored form, one chunk (~1 MiB) at a time: item chunks, user chunks, the head.
 * init copies the ids (writer mutex held); next returns 1 with a chunk, 0 when done. */
typedef struct sako_factors_writer {
    const sako_factors *f;
    int64_t *item_ids, *user_ids;
    unsigned char *buf;
    size_t per_item, per_user, next;
    uint64_t n_item_chunks, n_user_chunks;
    int part;
    int64_t chunk;
} sako_factors_writer;
int sako__factors_writer_init(sako_factors_writer *w, const sako_factors *f,
                              const sako_item_state *items, const sako_user_state *users);
int sako__factors_writer_next(sako_factors_writer *w, int *part, int64_t *chunk,
                              const void **data, size_t *bytes);
void sako__factors_writer_free(sako_factors_writer *w);
/* The stored factors, resolved through the maps (NULL when none are stored);
 * SAKO_CORRUPT naming a damaged chunk or an unknown id. */
int sako__factors_load(sako_store *st, const sako_idmap *item_index, size_t n_items,
                       const sako_item_state *items, const sako_idmap *user_index,
                       size_t n_users, sako_factors **out);
/* What a fold-in works in (the exact solve's k x k system, the history's entries):
 * zero-initialised, kept by a caller across fold-ins, freed with _workspace_free. */
typedef struct sako_factors_workspace {
    uint32_t k;
    size_t cap;
    int32_t *items;        /* cap entries, then `values` in the same block */
    float *values;
    sako_mf_scratch mf;
} sako_factors_workspace;
void sako__factors_workspace_free(sako_factors_workspace *ws);
/* User u's vector into out (k floats): the trained one while the user has not
 * interacted since, else the one folded in from the full history (exact solve)
 * the last time the user's event count was what it is now (cached per user: an
 * update of that user is what invalidates it), else a new fold-in, in `ws` (NULL: a
 * workspace of its own). Returns 1 with a vector, 0 without one (no interaction),
 * < 0 on failure. Caller holds the engine's read lock (inter does not change
 * meanwhile). */
int sako__factors_user_vector(sako_factors *f, const sako_interactions *inter, uint32_t u,
                              sako_factors_workspace *ws, float *out);
/* The index's best `want` items for user u (rows into items, scores into scores,
 * best first; returns how many), x being u's vector at the user's current event
 * count (sako__factors_user_vector's answer). The answer of a user served before at
 * the same event count, probe and want is copied from a bounded per-user cache (the
 * least recently served of two users sharing a set is replaced); the vector only
 * changes when the event count does (a fold-in) or with a new training (a new
 * sako_factors, a new cache), so a cached answer is the one a search would give, to
 * the bit. `scratch` is sako__factor_index_scratch_size(f->index, want) bytes.
 * Caller holds the engine's read lock. */
size_t sako__factors_candidates(sako_factors *f, const sako_interactions *inter, uint32_t u,
                                const float *x, size_t probe, size_t want, void *scratch,
                                uint32_t *items, float *scores);
/* Bytes f holds (factors, Gram, index, fold-in and candidate caches). */
size_t sako__factors_bytes(sako_factors *f);
void sako__factors_free(sako_factors *f);

#endif
