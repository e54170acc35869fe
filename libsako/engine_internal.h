/* The engine's in-memory state, shared by the library's .c files. Not API. */
#ifndef SAKO_ENGINE_INTERNAL_H
#define SAKO_ENGINE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>

#include "pruned_internal.h"
#include "sako.h"
#include "sampler_internal.h"

#define SAKO_NONE UINT32_MAX        /* "no index": the catalog root, an absent entry */
#define SAKO_SCHEMA_VERSION 1       /* PRAGMA user_version written by this library */
#define SAKO_APPLICATION_ID 0x53414B4F /* 'SAKO' in PRAGMA application_id */
#define SAKO_TIME_MAX ((int64_t)253402300799999LL) /* 9999-12-31, unix ms */
/* A prior refresh also waits until the evidence grew by this share (see model.c). */
#define SAKO_REFRESH_GROWTH 0.25
/* Categories with fewer active items than this are brute-forced, not pruned. */
#define SAKO_DOMAIN_MIN 256
/* The k the pruned samplers are first tuned for; larger requests raise it. */
#define SAKO_DOMAIN_DEFAULT_K 20
/* Write every dirty item back (a checkpoint) at least this often, so that a reopen
 * replays a bounded tail of the event log. */
#define SAKO_CHECKPOINT_EVENTS 500000

/* ------------------------------------------------------------ errors */

/* Set this thread's message and return `status` (printf-style). */
int sako__error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sako__error_clear(void);
/* Map an SQLite result code to a status, with the database's message. */
int sako__error_sqlite(sqlite3 *db, int rc, const char *what);

/* ----------------------------------------------------------- id maps */

/* Open-addressing hash map from a positive 64-bit id to a 32-bit index. */
typedef struct sako_idmap {
    int64_t *keys;    /* 0 = empty slot (valid ids are >= 1) */
    uint32_t *values;
    size_t mask;      /* capacity - 1; capacity is a power of two */
    size_t count;
} sako_idmap;

void sako__idmap_free(sako_idmap *m);
/* Make room for `extra` more keys without rehashing later; SAKO_OK or SAKO_NOMEM. */
int sako__idmap_reserve(sako_idmap *m, size_t extra);
uint32_t sako__idmap_get(const sako_idmap *m, int64_t key); /* SAKO_NONE if absent */
/* Insert or overwrite; room must have been reserved. */
void sako__idmap_put(sako_idmap *m, int64_t key, uint32_t value);

/* ------------------------------------------------------- model state */

/* Evidence of one item: raw event counts (doubles so that decay can come later). */
typedef struct sako_counts {
    double n[SAKO_EVENT_TYPES];
} sako_counts;

typedef struct sako_item_state {
    int64_t id;
    int64_t added_at;
    int64_t last_event_at;
    uint32_t category;     /* index into categories, SAKO_NONE for the root */
    uint32_t member_pos;   /* position in its category's member list */
    uint8_t active;
    uint8_t dirty;         /* counts changed since the last checkpoint */
    uint32_t batch_mark;   /* last update batch that touched it (dedupe) */
    sako_counts counts;
} sako_item_state;

typedef struct sako_category_state {
    int64_t id;
    uint32_t parent;       /* index, SAKO_NONE for a department */
    char *name;
    double prior_mean;     /* the pooled mean of this prior epoch */
    uint32_t *members;     /* items directly in this category */
    size_t n_members, cap_members;
    uint32_t *subtree;     /* this category and all its descendants (indices) */
    size_t n_subtree;
} sako_category_state;

typedef struct sako_user_state {
    int64_t id;
    int64_t last_event_at;
    uint64_t n_events;
    uint8_t dirty;
} sako_user_state;

/* The pruned samplers in use (domains.c). */
typedef struct sako_domains {
    sako_pruned *root;          /* every active item */
    sako_pruned **by_category;  /* per category (subtree); NULL when small */
    size_t n_categories;        /* categories when built */
    int k_target;               /* k the thresholds are tuned for */
    int broken;                 /* a mirror step failed: brute-force until rebuilt */
} sako_domains;

/* A recommend call's private working memory, pooled so the hot path allocates nothing. */
typedef struct sako_scratch {
    struct sako_scratch *next;
    double *heap_score;       /* min-heap of the best candidates so far */
    uint32_t *heap_item;
    uint32_t *excluded;       /* sorted item indices to skip */
    size_t n_excluded;
    sako_pruned_scratch *pruned;
    uint32_t *members;        /* pruned results: k + exclusions */
    double *values;
} sako_scratch;

/* Model parameters stored in the database. */
typedef struct sako_model_params {
    double reward[SAKO_EVENT_TYPES]; /* added to a per event (impression: 0) */
    double penalty_impression;
    int prior;
    double prior_strength;
    double category_shrinkage;
    uint64_t prior_refresh_events;
} sako_model_params;

struct sako_engine {
    sqlite3 *db;
    int in_memory;
    int lock_fd;                 /* flock()ed "<path>-lock": one engine per file, -1 if none */
    sako_options opts;           /* run-time options as given (model part overwritten by stored) */
    sako_model_params params;

    pthread_mutex_t write_mutex; /* serialises writers: update, retrain, upserts */
    pthread_rwlock_t lock;       /* readers share it; writers take it to publish */

    /* catalog */
    sako_item_state *items;
    sako_beta *posterior;        /* parallel to items: what recommend samples */
    size_t n_items, cap_items, n_active;
    sako_idmap item_index;
    sako_category_state *categories;
    size_t n_categories, cap_categories;
    sako_idmap category_index;
    uint32_t *root_members;      /* items with no category */
    size_t n_root_members, cap_root_members;
    double root_mean;            /* pooled mean of the whole catalog, this epoch */

    /* users */
    sako_user_state *users;
    size_t n_users, cap_users;
    sako_idmap user_index;

    /* log bookkeeping (mirrored in sako_meta) */
    uint64_t n_events;
    uint64_t events_since_refresh;
    uint64_t events_since_checkpoint;
    int64_t checkpoint_batch;    /* last event batch folded into the stored counts */
    int64_t model_version;

    /* recommend */
    sako_domains *domains;       /* NULL until built */
    pthread_t domains_builder;   /* builds the first set after a large open */
    int domains_builder_running;
    uint32_t k_hint;             /* atomic: largest k + exclusions asked of a domain */
    uint32_t batch_seq;          /* update batches applied, for batch_mark */
    uint64_t seed;
    uint64_t request_counter;    /* atomic; each request's RNG stream */
    pthread_mutex_t scratch_mutex;
    sako_scratch *scratch_free;

    /* prepared statements */
    sqlite3_stmt *st_insert_batch;
    sqlite3_stmt *st_set_meta;
};

/* meta keys and parameters (store.c) */
int sako__store_open(sako_engine *e, const char *path);
int sako__store_begin(sako_engine *e);
int sako__store_commit(sako_engine *e);
void sako__store_rollback(sako_engine *e);
int sako__store_set_meta_int(sako_engine *e, const char *key, int64_t v);
int sako__store_set_meta_real(sako_engine *e, const char *key, double v);
int sako__store_load(sako_engine *e);            /* catalog, users, counts, tail replay */
int sako__store_write_params(sako_engine *e);
int sako__store_write_category(sako_engine *e, uint32_t c);
int sako__store_write_item(sako_engine *e, uint32_t i);
int sako__store_append_batch(sako_engine *e, const sako_event *ev, size_t n, int64_t *seq_out);
int sako__store_checkpoint(sako_engine *e, const sako_counts *counts); /* dirty items/users */
void sako__store_close(sako_engine *e);
/* Decode one stored batch blob into events; SAKO_CORRUPT if malformed. */
int sako__events_decode(const void *blob, size_t bytes, sako_event *out, size_t n);
size_t sako__events_encoded_size(size_t n);
void sako__events_encode(const sako_event *ev, size_t n, unsigned char *out);

/* model.c: priors and posteriors */
void sako__params_from_options(sako_model_params *p, const sako_options *o);
int sako__options_validate(const sako_options *o);
/* The root and every category mean computed from `counts` (one per item; NULL for
 * the items' own): the priors of a new epoch. */
int sako__model_refresh_priors(const sako_engine *e, const sako_counts *counts,
                               double *root_out, double *cat_means_out);
double sako__model_prior_mean(const sako_engine *e, uint32_t category);
/* Whether the events since the last refresh call for a new prior epoch. */
int sako__refresh_due(const sako_engine *e);
void sako__model_posterior(const sako_engine *e, uint32_t item, double *a, double *b);
void sako__model_update_posterior(sako_engine *e, uint32_t item);
/* The whole posterior array into `dst` (n_items entries), from the current state
 * or, when `counts` and `cat_means` are given, from those instead. */
void sako__model_fill_posteriors(const sako_engine *e, sako_beta *dst);
void sako__model_fill_posteriors_with(const sako_engine *e, const sako_counts *counts,
                                      double root, const double *cat_means, sako_beta *dst);
/* Add one event to the in-memory counts (items, users). Room for users reserved. */
void sako__model_apply_event(sako_engine *e, const sako_event *ev, uint32_t item);

/* catalog.c */
int sako__catalog_reserve_items(sako_engine *e, size_t extra);
/* Append a new item (room reserved); returns its index. */
uint32_t sako__catalog_add_item(sako_engine *e, int64_t id, uint32_t category, int active,
                                int64_t added_at);
void sako__catalog_member_add(sako_engine *e, uint32_t item);
void sako__catalog_member_remove(sako_engine *e, uint32_t item);
int sako__catalog_reserve_members(sako_engine *e, uint32_t category, size_t extra);
int sako__catalog_rebuild_subtrees(sako_engine *e);
void sako__catalog_free(sako_engine *e);

/* users (events.c) */
int sako__users_reserve(sako_engine *e, size_t extra);

/* engine.c */
int64_t sako__now_ms(void);
int sako__valid_id(int64_t id);
/* The checks every batch call starts with (engine, entries pointer, batch limit);
 * SAKO_OK to go on. `fn` and `what` name the call and its entries in messages. */
int sako__check_batch(const sako_engine *e, const void *entries, size_t n, const char *fn,
                      const char *what);

/* recommend.c */
void sako__scratch_free_all(sako_engine *e);

/* domains.c */
int sako__domains_build(const sako_engine *e, const sako_beta *post, int k_target,
                        sako_domains **out);
void sako__domains_free(sako_domains *d);
void sako__domains_item_changed(sako_engine *e, uint32_t item, uint32_t old_category,
                                int was_active);
void sako__domains_maintain(sako_engine *e);
void sako__domains_rebuild(sako_engine *e);
/* The first build after open: synchronous for small catalogs, else on a thread of
 * its own holding the writer mutex (queries brute-force meanwhile). */
void sako__domains_start(sako_engine *e);
void sako__domains_join(sako_engine *e);

/* retrain.c */
/* Replay the logged batches after `after_batch`: into `counts` (one per item) when
 * given, else into the engine's items and users as sako_update() would. */
int sako__replay_log(sako_engine *e, int64_t after_batch, sako_counts *counts);
/* A new prior epoch: fresh priors, published atomically. With `counts` (a retrain)
 * those counts replace the items', are checkpointed, and the model version increases. */
int sako__refresh_epoch(sako_engine *e, const sako_counts *counts);
/* Checkpoint only (no new priors). */
int sako__checkpoint_now(sako_engine *e);

#endif
