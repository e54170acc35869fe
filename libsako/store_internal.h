/* The bottom layer: every SQL statement of the library (store.c).
 *
 * The store knows the schema and the blob encoding, nothing of the engine: it
 * takes plain records and arrays, and hands what it reads to callbacks (which
 * return SAKO_OK to go on, or a status that stops the read and is returned).
 * It calls only error.c and idmap.h's id check. */
#ifndef SAKO_STORE_INTERNAL_H
#define SAKO_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "sako.h"

/* Raw event counts of one item (doubles so that decay can come later). */
typedef struct sako_counts {
    double n[SAKO_EVENT_TYPES];
} sako_counts;

/* The model parameters, as stored in sako_meta (model.c gives them meaning). */
typedef struct sako_model_params {
    double reward[SAKO_EVENT_TYPES]; /* added to a per event (impression: 0) */
    double penalty_impression;
    int prior;
    double prior_strength;
    double category_shrinkage;
    uint64_t prior_refresh_events;
    /* the personal engine (options version 2) */
    int organic_demand;
    uint64_t demand_min_purchases;
    int personal;
    uint32_t personal_min_baskets;
    double half_life_days;
    double personal_strength;
    double personal_temperature;
    double due_exponent;
    double affinity_strength;
    double lift_strength;
    int64_t basket_gap_ms;
    /* decay (options version 3) */
    double decay_half_life_days;
    /* matrix factorisation (options version 4, schema 5; mf_threads is run time) */
    uint32_t mf_factors, mf_iterations, mf_cg_steps;
    double mf_regularization, mf_alpha;
    uint64_t mf_seed;
    int mf_mode;
    uint32_t mf_min_users, mf_min_user_items;
    double mf_weight;
    uint32_t mf_candidates;
} sako_model_params;

/* A demand epoch's constants (demand.c). */
typedef struct sako_store_demand {
    int active;
    double calibration, baskets, root_mean, root_strength;
} sako_store_demand;

typedef struct sako_category_demand_row {
    int64_t id;
    double mean, strength, share;   /* strength 0: not part of the stored epoch */
} sako_category_demand_row;

/* The retrain policy's last activation (policy.c). */
typedef struct sako_store_activation {
    int64_t at;          /* unix ms */
    uint64_t n_events;   /* events logged before it */
    int64_t batch;       /* the last logged batch before it */
} sako_store_activation;

/* Everything sako_meta holds. */
typedef struct sako_store_meta {
    sako_model_params params;
    double root_mean;
    uint64_t n_events;
    uint64_t events_since_refresh;
    int64_t checkpoint_batch; /* last event batch folded into the stored counts */
    int64_t model_version;
    sako_store_demand demand;
    /* decay: the population counts' frame as of the checkpoint, and the time of the
     * current prior epoch (decay_internal.h) */
    int64_t decay_offset, decay_latest, decay_epoch_at;
    /* log compaction: the batch of the log checkpoint (0: none) and the events of
     * the batches deleted up to it */
    int64_t compact_batch, compact_events;
    /* matrix factorisation: the stored training's serial (0: never trained) */
    int64_t mf_serial;
} sako_store_meta;

typedef struct sako_category_row {
    int64_t id, parent_id;     /* parent 0: a department */
    const char *name;          /* valid during the callback only */
    double prior_mean;
} sako_category_row;

typedef struct sako_item_row {
    int64_t id, category_id;   /* category 0: the root */
    int active;
    int64_t added_at, last_event_at;
    sako_counts counts;
} sako_item_row;

typedef struct sako_user_row {
    int64_t id;
    uint64_t n_events;
    int64_t last_event_at;
} sako_user_row;

/* The WAL checkpointer (store.c): a thread with a connection of its own. */
typedef struct sako_store_ckpt sako_store_ckpt;

typedef struct sako_store {
    sqlite3 *db;
    int in_memory;
    int durability;            /* SAKO_DURABLE_*: the checkpointer's synchronous setting too */
    sako_store_ckpt *ckpt;     /* started on the first WAL past the bound, NULL until then */
    int ckpt_failed;           /* it could not start: the writer checkpoints, as SQLite would */
    int lock_fd;               /* flock()ed "<path>-lock": one engine per file, -1 if none */
    /* Statements used per batch or per row, prepared once (the last four on first use). */
    sqlite3_stmt *st_set_meta;
    sqlite3_stmt *st_insert_batch;
    sqlite3_stmt *st_write_category;
    sqlite3_stmt *st_write_counts;
    sqlite3_stmt *st_write_user;
    char *lock_path;           /* "<path>-lock" while an open that created it may still refuse */
    char *created_path;        /* the database file, while an open that created it may still refuse */
    sqlite3_stmt *st_next_seq; /* asks the table for the next batch's seq (its checksum covers it) */
    sqlite3_stmt *st_rollback; /* ROLLBACK, prepared at open: running it needs no new memory */
    int64_t next_seq;          /* the next batch's seq once known, 0 when it must be asked */
    int before_mf;             /* migrating below schema 5: sako_meta has no mf_* keys yet */
    /* Kept for the connection's life, prepared on first use: BEGIN IMMEDIATE and COMMIT
     * (every write) and the one-value queries of the open, update and retrain paths
     * (store.c, enum kept_query); finalized by sako__store_close. */
    sqlite3_stmt *st_begin, *st_commit;
    sqlite3_stmt *st_query[5];
} sako_store;

/* The time stored rows carry: unix milliseconds, wall clock. */
int64_t sako__store_now_ms(void);

/* Open (or create, stamped and holding `fresh_params`) the file at `path`; NULL or
 * ":memory:" for a private in-memory database. A zero-length file is refused unless
 * `create_empty`. Then exactly one of open_done (the engine keeps the file) or
 * refuse (it does not: the lock file this open created is removed, and the close
 * leaves any -wal as it is) before sako__store_close. */
int sako__store_open(sako_store *st, const char *path, int busy_timeout_ms, int durability,
                     int create_empty, const sako_model_params *fresh_params);
void sako__store_open_done(sako_store *st);
void sako__store_refuse(sako_store *st);
/* 1 once open succeeded up to the metadata statement (a close may checkpoint). */
int sako__store_ready(const sako_store *st);
void sako__store_close(sako_store *st);

/* Transactions: the writers below run inside one the caller owns. */
int sako__store_begin(sako_store *st);
int sako__store_commit(sako_store *st);   /* rolls back when it fails */
void sako__store_rollback(sako_store *st);
/* Ends a write transaction that a failed ROLLBACK (out of memory) left open, so that
 * a read on this connection does not see its uncommitted rows. Only outside the
 * engine's own transactions (callers hold the writer mutex). */
void sako__store_settle(sako_store *st);

/* ------------------------------------------------------------ writers */
int sako__store_set_meta_int(sako_store *st, const char *key, int64_t v);
int sako__store_set_meta_real(sako_store *st, const char *key, double v);
int sako__store_write_params(sako_store *st, const sako_model_params *p);
/* Insert or update categories (a new one gets means[i]; an existing one keeps its
 * stored prior), names[i] replacing cats[i].name. */
int sako__store_write_categories(sako_store *st, const sako_category *cats,
                                 char *const *names, const double *means, size_t n);
/* One category's prior mean (a prior epoch). */
int sako__store_write_category(sako_store *st, int64_t id, double prior_mean);
/* Insert or update items; added_at 0 stands for `now`. */
int sako__store_write_items(sako_store *st, const sako_item *items, size_t n, int64_t now);
/* Items created by events (root, active), left alone when they exist. */
int sako__store_create_items(sako_store *st, const int64_t *ids, size_t n, int64_t now);
/* Log one event batch (order_ids: NULL, or n ids); its sequence number goes to *seq_out. */
int sako__store_append_batch(sako_store *st, const sako_event *ev, const int64_t *order_ids,
                             size_t n, int64_t created_at, int64_t *seq_out);
/* Checkpoint rows, then sako__store_checkpoint_done() to mark the log as folded in. */
int sako__store_write_item_counts(sako_store *st, int64_t id, const sako_counts *c,
                                  int64_t last_event_at);
int sako__store_write_user(sako_store *st, const sako_user_row *u);
int sako__store_checkpoint_done(sako_store *st);
int sako__store_write_demand(sako_store *st, const sako_store_demand *d);
int sako__store_write_category_demand(sako_store *st, const sako_category_demand_row *r);
int sako__store_record_model(sako_store *st, int64_t version, int64_t created_at,
                             uint64_t n_events);
/* The retrain policy and its last activation (sako_meta policy_* keys). */
int sako__store_write_policy(sako_store *st, const sako_policy *p);
int sako__store_write_activation(sako_store *st, const sako_store_activation *a);
/* The sequence number of the last logged batch (0 for none). */
int sako__store_last_batch(sako_store *st, int64_t *out);

/* ------------------------------------------------------------ readers */
/* SAKO_CORRUPT when a key is missing; values are checked by the caller. */
int sako__store_read_meta(sako_store *st, sako_store_meta *out);
/* Each reader first calls `begin` with the number of rows, then `row` per row. */
int sako__store_read_categories(sako_store *st, int (*begin)(void *payload, size_t n),
                                int (*row)(void *payload, const sako_category_row *r),
                                void *payload);
int sako__store_read_items(sako_store *st, int (*begin)(void *payload, size_t n),
                           int (*row)(void *payload, const sako_item_row *r), void *payload);
int sako__store_read_users(sako_store *st, int (*begin)(void *payload, size_t n),
                           int (*row)(void *payload, const sako_user_row *r), void *payload);
int sako__store_read_category_demand(sako_store *st,
                                     int (*row)(void *payload, const sako_category_demand_row *r),
                                     void *payload);
/* The logged batches after `after_batch`, in order, decoded (empty ones skipped);
 * order_ids is NULL for a batch logged without them. */
int sako__store_read_batches(sako_store *st, int64_t after_batch,
                             int (*batch)(void *payload, int64_t seq, const sako_event *ev,
                                          const int64_t *order_ids, size_t n),
                             void *payload);
/* The same, up to and including batch `upto_batch`; with `max_events`, stopping
 * after the batch that reaches that many events (*last_out: the last batch read,
 * or upto_batch when the range was read to its end). */
int sako__store_read_batch_range(sako_store *st, int64_t after_batch, int64_t upto_batch,
                                 size_t max_events, int64_t *last_out,
                                 int (*batch)(void *payload, int64_t seq, const sako_event *ev,
                                              const int64_t *order_ids, size_t n),
                                 void *payload);

/* ------------------------------------------ the log checkpoint (compaction, logstate.c) */
/* Parts of a log checkpoint: its head, then item and user records. */
#define SAKO_LOG_PART_HEAD 0
#define SAKO_LOG_PART_ITEMS 1
#define SAKO_LOG_PART_USERS 2
/* The CRC-32C a log checkpoint chunk is stored with: over its checkpoint's batch, its
 * part and number, its size and its bytes (the tests re-seal chunks they rewrite). */
uint32_t sako__store_log_chunk_checksum(int64_t batch, int part, int64_t chunk, const void *data,
                                       size_t bytes);
const char *sako__store_log_part_name(int part);
/* One chunk of the checkpoint at `batch` (CRC-32C written with it). */
int sako__store_write_log_chunk(sako_store *st, int64_t batch, int part, int64_t chunk,
                                const void *data, size_t bytes);
/* The chunks of the checkpoint at `batch` in order (part, chunk), each checked
 * against its checksum first: SAKO_CORRUPT naming the part and chunk. */
int sako__store_read_log_chunks(sako_store *st, int64_t batch,
                                int (*chunk)(void *payload, int part, int64_t n, const void *data,
                                             size_t bytes),
                                void *payload);
/* ------------------------------------------------ matrix factors (schema 5, factors.c) */
#define SAKO_MF_PART_HEAD 0
#define SAKO_MF_PART_ITEMS 1
#define SAKO_MF_PART_USERS 2
uint32_t sako__store_mf_chunk_checksum(int64_t serial, int part, int64_t chunk, const void *data,
                                      size_t bytes);
const char *sako__store_mf_part_name(int part);
/* One chunk of training `serial` (its CRC-32C written with it); rows of a serial no
 * meta key names are ignored by the readers. */
int sako__store_mf_write_chunk(sako_store *st, int64_t serial, int part, int64_t chunk,
                               const void *data, size_t bytes);
/* The served training is now `serial` (whose chunks are written). */
int sako__store_mf_switch(sako_store *st, int64_t serial);
/* Delete up to max_rows chunks of other trainings; *done_out = 1 when none is left. */
int sako__store_mf_trim(sako_store *st, int64_t keep, int max_rows, int *done_out);
/* The chunks of the served training (sako_meta.mf_serial) in order (part, chunk), each
 * checked against its checksum first: SAKO_CORRUPT naming the part and chunk. */
int sako__store_mf_read_chunks(sako_store *st,
                               int (*chunk)(void *payload, int part, int64_t n, const void *data,
                                            size_t bytes),
                               void *payload);

/* The log now starts after `batch`, whose checkpoint is written; `events` were
 * logged up to it. */
int sako__store_log_switch(sako_store *st, int64_t batch, int64_t events);
/* Delete a few redundant rows: up to max_rows chunks of other checkpoints, or else
 * the oldest batches up to `batch`, at most max_rows and about max_events events (at
 * least one); the batches and events deleted, *done_out = 1 when none is left. */
int sako__store_log_trim(sako_store *st, int64_t batch, int max_rows, uint64_t max_events,
                         int64_t *batches_out, int64_t *events_out, int *done_out);
typedef struct sako_store_log_info {
    int64_t first_batch;       /* of the log after `after` (0: none) */
    int64_t checkpoint_bytes;  /* of the checkpoint at `after` */
    int64_t file_bytes, free_bytes;
} sako_store_log_info;
int sako__store_log_info(sako_store *st, int64_t after, sako_store_log_info *out);
/* Copy what the WAL holds into the database file soon (passive, best effort): the
 * checkpointer thread is woken when it runs, else the writer's connection copies it
 * now. The writer's connection never checkpoints on its own commits (see
 * sako__store_open_done): past SAKO_STORE_WAL_PAGES pages in the WAL, a commit wakes
 * the checkpointer thread, which copies them on its own connection, so that no
 * sako_update() pays for a large write's pages in its commit. */
void sako__store_wal_checkpoint(sako_store *st);
/* WAL pages after which a commit wakes the checkpointer (SQLite's default automatic
 * checkpoint bound), and the bound past which the writer copies them itself (the
 * checkpointer cannot keep up: the WAL must not grow without end). */
#define SAKO_STORE_WAL_PAGES 1000
#define SAKO_STORE_WAL_PAGES_MAX 65536
/* Checkpoints the checkpointer thread ran (0 while it has not started): for tests. */
long sako__store_ckpt_runs(sako_store *st);
/* One integer of sako_meta (SAKO_CORRUPT when missing). */
int sako__store_read_meta_int(sako_store *st, const char *key, int64_t *out);

/* A replica's log position, sako_meta 'log_position' (0 when absent). */
int sako__store_read_log_position(sako_store *st, int64_t *out);

/* ------------------------------------------------ a second connection (retrain) */
/* A read-only connection to the same file, for reading the log while the writer
 * commits (WAL: each statement reads one consistent snapshot). SAKO_MISUSE for an
 * in-memory database. Close it with sako__store_close(). */
int sako__store_open_reader(const sako_store *st, int busy_timeout_ms, sako_store *reader);

/* The retrain policy and its last activation; SAKO_CORRUPT when a key is missing. */
int sako__store_read_policy(sako_store *st, sako_policy *p, sako_store_activation *a);

/* ------------------------------------------------------ model versions */
/* A version's fitted population model (what a retrain's epoch computes): the
 * catalog's and each category's prior mean, the demand constants, the epoch's time
 * and the parameters it was fitted with. Rows are sorted by category id. */
typedef struct sako_store_fit_row {
    int64_t id;
    double prior_mean, demand_mean, demand_strength, demand_share;
} sako_store_fit_row;

typedef struct sako_store_fit {
    double root_mean;
    int64_t epoch_at;
    sako_store_demand demand;
    sako_model_params params;
    sako_store_fit_row *rows;
    size_t n_rows;
} sako_store_fit;

void sako__store_fit_free(sako_store_fit *f);

/* A version's row without its model (sako_version_info's stored fields). */
typedef struct sako_store_version {
    int64_t version, created_at;
    int status, pinned;
    unsigned reasons;
    char verdict[200];
    int64_t first_batch, last_batch;
    uint64_t n_events;
    int64_t champion;
    int scored;
    double score, champion_score;
    uint64_t holdout_events, holdout_baskets;
} sako_store_version;

/* Inside the caller's transaction: a new version row with its model. */
int sako__store_version_insert(sako_store *st, const sako_store_version *v,
                               const sako_store_fit *fit);
/* Inside the caller's transaction: `version` becomes the only active one. */
int sako__store_version_activate(sako_store *st, int64_t version);
/* Its own statement: SAKO_NOTFOUND when no such version. */
int sako__store_version_pin(sako_store *st, int64_t version, int pinned);
/* Inside the caller's transaction: all but the newest `keep` versions go, except the
 * active and the pinned ones; *deleted_out (may be NULL) counts them. */
int sako__store_versions_prune(sako_store *st, uint64_t keep, uint64_t *deleted_out);
/* Rows, newest first: every one (version -1), the active one (0) or one (> 0). With
 * `fit`, each row's model is decoded too (NULL when its checksum or encoding fails:
 * `damaged` is then 1). */
int sako__store_versions_read(sako_store *st, int64_t version,
                              int (*row)(void *payload, const sako_store_version *v,
                                         const sako_store_fit *fit, int damaged),
                              void *payload);
/* One version's model, checked: SAKO_NOTFOUND, SAKO_CORRUPT naming the version. */
int sako__store_version_fit(sako_store *st, int64_t version, sako_store_fit *out);
/* 1 when prior refreshes are held back: an active version exists and is pinned, or
 * a newer version exists (a rollback, a pinned retrain's result, a rejected one). */
int sako__store_versions_hold(sako_store *st, int *hold_out);
/* Whether a version is pinned (0 when there is no such version). */
int sako__store_version_pinned(sako_store *st, int64_t version, int *pinned_out);
/* The active version's number (0 for none). */
int sako__store_version_active(sako_store *st, int64_t *version_out);
/* Batch H such that the batches in (H, upto] hold the newest `events` events or just
 * more (whole batches); *held_out gets their count. H = upto when events is 0. */
int sako__store_holdout_start(sako_store *st, int64_t upto, uint64_t events, int64_t *start_out,
                              uint64_t *held_out);
/* The first logged batch (0 for none). */
int sako__store_first_batch(sako_store *st, int64_t *out);
/* The events logged in the batches (after, upto]. */
int sako__store_events_between(sako_store *st, int64_t after, int64_t upto, uint64_t *events_out);

/* ------------------------------------------------------ online backup */
/* A copy of the database in progress (SQLite's backup API) into a new file. Every
 * call that reaches the source connection (begin, step, end) must run where that
 * connection may be used, i.e. under the engine's writer mutex; the copy sees the
 * writes made through the same connection between steps instead of restarting. */
typedef struct sako_store_backup sako_store_backup;
/* Open `dest_path` (an empty file the caller created) as the destination. */
int sako__store_backup_begin(sako_store *st, const char *dest_path, sako_store_backup **out);
/* Copy up to `pages` pages; *done_out = 1 once the copy is complete. */
int sako__store_backup_step(sako_store_backup *bk, int pages, int *done_out);
/* Release the source side (under the writer mutex): SAKO_OK if the copy completed. */
int sako__store_backup_finish(sako_store_backup *bk);
/* Close the destination and free (no source access: outside the mutex). */
void sako__store_backup_free(sako_store_backup *bk);

/* sako_verify: what was checked. */
typedef struct sako_store_verify {
    uint64_t n_batches, n_checksummed, n_events;
    int64_t compact_batch;     /* the log checkpoint's batch (0: none)... */
    uint64_t n_chunks;         /* ...its chunks, all verified */
    int checkpoint_head;
} sako_store_verify;

/* Check the file at path without changing it: integrity_check, then every event
 * batch against its checksum. SAKO_CORRUPT names the first damage. */
int sako__store_verify(const char *path, sako_store_verify *out);

#endif
