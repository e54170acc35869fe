/* The engine's in-memory state. Not API.
 *
 * Only the modules that read or change the engine's fields include this (engine,
 * catalog, events, model, retrain, domains, recommend, policy). The layers below them
 * (store, users, idmap, error, the samplers) take narrow arguments instead. */
#ifndef SAKO_ENGINE_INTERNAL_H
#define SAKO_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "catalog_internal.h"
#include "decay_internal.h"
#include "demand_internal.h"
#include "domains_internal.h"
#include "error_internal.h"
#include "idmap_internal.h"
#include "personal_internal.h"
#include "policy_internal.h"
#include "sako.h"
#include "sampler_internal.h"
#include "store_internal.h"
#include "users_internal.h"


struct sako_scratch; /* recommend.c */
struct sako_evidence_snap; /* snapshot.c */

struct sako_engine {
    sako_store store;
    sako_options opts;           /* run-time options as given (model part overwritten by stored) */
    sako_model_params params;

    pthread_mutex_t write_mutex; /* serialises writers: update, retrain, upserts */
    pthread_rwlock_t lock;       /* readers share it; writers take it to publish */

    /* catalog */
    sako_item_state *items;
    sako_beta *posterior;        /* parallel to items: what recommend samples */
    sako_item_class *item_class; /* parallel to items: category and active, dense (the
                                    personal draw reads them for hundreds of candidates) */
    size_t n_items, cap_items, n_active;
    sako_idmap item_index;
    sako_category_state *categories;
    size_t n_categories, cap_categories;
    sako_idmap category_index;
    uint32_t *root_members;      /* items with no category */
    size_t n_root_members, cap_root_members;
    double root_mean;            /* pooled mean of the whole catalog, this epoch */
    /* decay (decay_internal.h): the frame of the items' counts, and the prior epoch's
     * time, to which posteriors and demand are decayed (0: no epoch yet) */
    sako_decay decay;
    int64_t decay_epoch_at;
    sako_decay_ref decay_ref;

    sako_users users;
    sako_personal personal;      /* histories, demand counts, partners (whole log) */
    sako_personal_params personal_params;
    sako_demand *demand;         /* this epoch's demand constants and candidate lists */

    /* log bookkeeping (mirrored in sako_meta) */
    uint64_t n_events;
    uint64_t events_since_refresh;
    uint64_t events_since_checkpoint;
    size_t n_dirty_items;        /* items whose `dirty` is set (users.n_dirty: users') */
    int64_t checkpoint_batch;    /* last event batch folded into the stored counts */
    int64_t compact_batch;       /* the log checkpoint's batch: the log starts after it
                                    (0: never compacted; writer mutex) */
    int64_t compact_events;      /* events of the batches deleted up to it */
    int compacting;              /* a sako_compact() runs (under the writer mutex) */
    int64_t model_version;
    int64_t log_position;        /* a replica's last `_at` batch (replica.c; writer mutex,
                                    read atomically) */

    /* recommend */
    sako_domains *domains;       /* NULL until built */
    pthread_t domains_builder;   /* builds the first set after a large open */
    int domains_builder_running;
    uint32_t k_hint;             /* atomic: largest k + exclusions asked of a domain */
    uint32_t batch_seq;          /* update batches applied, for batch_mark */
    uint64_t seed;
    uint64_t request_counter;    /* atomic; each request's RNG stream */
    pthread_mutex_t scratch_mutex;
    struct sako_scratch *scratch_free;

    /* epochs built off the writer mutex (retrain.c) */
    int64_t last_batch;          /* the last logged batch; written under the writer mutex,
                                    read atomically */
    uint64_t catalog_gen;        /* bumped when an item changes category or activity, or the
                                    category tree changes: an epoch built before is stale */
    int retraining;              /* a sako_retrain() runs (under the writer mutex) */
    /* The last retrain's final step: how long it held the writer mutex (its last
     * catch-up round, the version's transaction and the swap), and the time in it
     * spent on the transaction; seconds, under the writer mutex. For benchmarks. */
    double retrain_hold_s, retrain_commit_s;
    /* The longest periodic state checkpoint (sako__retrain_checkpoint) so far: writing
     * the rows, and the commit; and how many ran. For benchmarks. */
    double checkpoint_rows_max_s, checkpoint_commit_max_s;
    long n_checkpoints;
    /* sako_update's longest phases (writer mutex wait, reserve, log write and commit,
     * publish, housekeeping), seconds; written under the writer mutex. Benchmarks:
     * timed only while time_update_phases is set (six clock reads per batch). */
    double update_phase_max_s[5];
    int time_update_phases;
    /* The longest hold of the writer mutex by a background prior refresh's last step
     * (refresh_main), seconds. Benchmarks. */
    double refresh_hold_max_s;
    void (*retrain_hook)(sako_engine *e, void *arg); /* tests: runs while a retrain builds */
    void *retrain_hook_arg;
    void (*refresh_hook)(sako_engine *e, void *arg); /* tests: runs as a background refresh starts */
    void (*refresh_round_hook)(sako_engine *e, void *arg); /* tests: after each catch-up round
                                                              (refresh_hook_arg) */
    void *refresh_hook_arg;
    struct sako_evidence_snap *snap; /* a background refresh's copy-on-write (write lock) */
    uint64_t epoch_serial;       /* epochs published; a refresh from an older one is dropped */
    size_t refresh_sync_items;   /* catalogs up to this size refresh inline */
    pthread_t refresh_thread;    /* the background prior refresh... */
    int refresh_running;         /* ...started and not yet joined (writer mutex) */
    int refresh_done;            /* atomic: it has finished */
    int refresh_cancel;          /* atomic: sako_close() wants it to stop */
    /* retrain policy (policy.c): the policy and its counters since the last activation */
    sako_policy_state policy;
    /* model versions (versions.c, retrain.c; writer mutex) */
    int version_hold;            /* prior refreshes held back: the active version is pinned
                                    or older than another (rolled back, kept back, rejected) */
    int64_t last_retrain_version;/* the version this handle's last retrain built (0: none) */
    /* matrix factorisation (factors.c): the last training's factors, swapped under the
     * write lock (NULL: none), and its serial in the file (writer mutex) */
    struct sako_factors *factors;
    int64_t mf_serial;
    /* tests: alters a fit (catalog mean, category means) before the gate sees it */
    void (*fit_hook)(sako_engine *e, double *root, double *means, size_t n, void *arg);
    void *fit_hook_arg;
    /* a sako_retrain_at() running: its position goes into the version's transaction */
    struct sako_at *retrain_at;
};

#endif
