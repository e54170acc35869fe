/* SQLite persistence: schema, identification, loading, the event log, checkpoints.
 *
 * The stored state is the last checkpoint (each item's counts, each user's totals,
 * the category priors of the current epoch) plus the event batches logged after
 * it. A batch is one row holding its events packed in a blob, written in the same
 * transaction as the bookkeeping it changes, so what was acknowledged is on disk
 * and a reopen replays the tail after the checkpoint to come back exactly. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "checksum_internal.h"
#include "error_internal.h"
#include "idmap_internal.h"
#include "store_internal.h"

#define SAKO_SCHEMA_VERSION 5          /* PRAGMA user_version written by this library */
#define SAKO_APPLICATION_ID 0x53414B4F /* 'SAKO' in PRAGMA application_id */

/* Version 1's tables (libsako 0.1), which the migrations below start from, are kept in
 * tests/check_sako.h (SK_SCHEMA_V1): a new database no longer runs them. */

/* The tables a migration creates as they still are, shared with schema_current below
 * (a later change to one of them is a new migration, and schema_current changes). */
#define LOG_CHECKPOINT_TABLE \
    "CREATE TABLE log_checkpoint(batch INTEGER NOT NULL, part INTEGER NOT NULL," \
    "  chunk INTEGER NOT NULL, data BLOB NOT NULL, checksum INTEGER NOT NULL," \
    "  PRIMARY KEY(batch, part, chunk));"
#define MODEL_VERSIONS_TABLE \
    "CREATE TABLE model_versions(version INTEGER PRIMARY KEY, created_at INTEGER NOT NULL," \
    "  status INTEGER NOT NULL, pinned INTEGER NOT NULL DEFAULT 0, reasons INTEGER NOT NULL," \
    "  verdict TEXT NOT NULL, first_batch INTEGER NOT NULL, last_batch INTEGER NOT NULL," \
    "  n_events INTEGER NOT NULL, champion INTEGER NOT NULL, scored INTEGER NOT NULL," \
    "  score REAL NOT NULL, champion_score REAL NOT NULL, holdout_events INTEGER NOT NULL," \
    "  holdout_baskets INTEGER NOT NULL, fit BLOB NOT NULL, checksum INTEGER NOT NULL);"
#define MF_FACTORS_TABLE \
    "CREATE TABLE mf_factors(serial INTEGER NOT NULL, part INTEGER NOT NULL," \
    "  chunk INTEGER NOT NULL, data BLOB NOT NULL, checksum INTEGER NOT NULL," \
    "  PRIMARY KEY(serial, part, chunk));"

/* Migrations from schema version i to i+1, for existing files. A new database is made
 * in one step (schema_current below); persist/test_new_schema_equals_migrated_v1
 * checks that a version-1 file migrated has the same tables, columns, indexes and
 * metadata rows. */
static const char *const migrations[] = {
    /* 1 -> 2 (libsako 0.2): order ids in the log; the personal engine's parameters,
     * with organic_demand off so that a 0.1 database keeps its posteriors. */
    "ALTER TABLE event_batches ADD COLUMN order_ids BLOB;"
    "INSERT INTO sako_meta(key, value) VALUES ('organic_demand', 0),"
    " ('demand_min_purchases', 100), ('personal', 1), ('personal_min_baskets', 1),"
    " ('half_life_days', 45.0), ('personal_strength', 1.0), ('personal_temperature', 0.0),"
    " ('due_exponent', 0.2), ('affinity_strength', 20.0), ('lift_strength', 5.0),"
    " ('basket_gap_ms', 1800000), ('demand_active', 0), ('demand_calibration', 1.0),"
    " ('demand_baskets', 1.0), ('demand_root_mean', 0.0), ('demand_root_strength', 1.0);"
    "ALTER TABLE categories ADD COLUMN demand_mean REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE categories ADD COLUMN demand_strength REAL NOT NULL DEFAULT 0;"
    "ALTER TABLE categories ADD COLUMN demand_share REAL NOT NULL DEFAULT 0;",
    /* 2 -> 3 (libsako 0.3), retrain policy: the policy with every trigger off, and
     * its last activation: the latest retrain (its time, its event count, and the
     * last batch of the log it saw: the batch where the running count reaches it),
     * or before any retrain the first logged batch's time (now for a new file). */
    "INSERT INTO sako_meta(key, value) VALUES ('policy_every_events', 0),"
    " ('policy_every_seconds', 0), ('policy_drift_fraction', 0.0),"
    " ('policy_drift_window', 25000), ('policy_drift_min_impressions', 12500);"
    "INSERT INTO sako_meta(key, value) SELECT 'policy_activated_at', coalesce("
    " (SELECT created_at FROM models ORDER BY version DESC LIMIT 1),"
    " (SELECT min(created_at) FROM event_batches),"
    " CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER));"
    "INSERT INTO sako_meta(key, value) SELECT 'policy_activated_events', coalesce("
    " (SELECT n_events FROM models ORDER BY version DESC LIMIT 1), 0);"
    "INSERT INTO sako_meta(key, value) SELECT 'policy_activated_batch', coalesce(max(seq), 0)"
    " FROM (SELECT seq, sum(n_events) OVER (ORDER BY seq) AS upto FROM event_batches)"
    " WHERE upto <= (SELECT n_events FROM models ORDER BY version DESC LIMIT 1);"
    /* 2 -> 3 (libsako 0.3), decay (issue 9 item 1): its half-life, 0 so that a 0.2
     * database keeps its state and posteriors; the frame of the stored item counts
     * (offset, latest event time) and the time of the current prior epoch. */
    "INSERT INTO sako_meta(key, value) VALUES ('decay_half_life_days', 0.0),"
    " ('decay_offset', 0), ('decay_latest', 0), ('decay_epoch_at', 0);"
    /* 2 -> 3, checksummed event log (issue 12): a CRC-32C per batch (batch_checksum
     * below). Batches logged before the upgrade have none (NULL); every batch from
     * checksum_from_batch on must have one, so that damage cannot pass as "old". */
    "ALTER TABLE event_batches ADD COLUMN checksum INTEGER;"
    "INSERT INTO sako_meta(key, value) SELECT 'checksum_from_batch', coalesce(max(seq), 0) + 1"
    " FROM event_batches;",
    /* ---- 3 -> 4, log compaction (issue 9 item 5) ----
     * The log checkpoint: the whole replayed state (item counts and their decay
     * frame, the personal state) as of batch compact_batch, in checksummed chunks
     * (logstate.c), so that the batches up to it can be deleted. Rows of another
     * batch are a compaction that did not finish switching, or the previous one not
     * yet deleted: open ignores them. compact_events counts the events of the
     * deleted batches. Until a first compaction (compact_batch 0) the file behaves
     * as schema 3. */
    LOG_CHECKPOINT_TABLE
    "INSERT INTO sako_meta(key, value) VALUES ('compact_batch', 0), ('compact_events', 0);"
    /* The regular checkpoint's rows (item counts, user totals, category priors and
     * demand) get a CRC-32C each (row_checksum below, computed by SQL functions this
     * library registers on its connection): stamped here over what the file holds. */
    "ALTER TABLE items ADD COLUMN checksum INTEGER;"
    "UPDATE items SET checksum = sako_item_crc(id, category_id, active, added_at, n_impression,"
    "  n_click, n_cart, n_purchase, last_event_at);"
    "ALTER TABLE users ADD COLUMN checksum INTEGER;"
    "UPDATE users SET checksum = sako_user_crc(id, n_events, last_event_at);"
    "ALTER TABLE categories ADD COLUMN checksum INTEGER;"
    "UPDATE categories SET checksum = sako_category_crc(id, parent_id, name, prior_mean,"
    "  demand_mean, demand_strength, demand_share);"
    /* ---- end of 3 -> 4, log compaction ---- */
    /* ---- 3 -> 4, model versions (issue 9 item 3) ---- begin
     * One row per version a retrain built: what asked for it, the log it saw, its
     * gate's figures and verdict, its status (1 active, 2 inactive, 3 rejected) and
     * pin, and its fitted population model as a blob with a CRC-32C (fit_encode
     * below). The gate's and keep-N settings join the retrain policy. A 0.3 file's
     * model in force becomes version `model_version` (adopt_current_model, run in
     * the same transaction); its older `models` rows stay as history only. */
    MODEL_VERSIONS_TABLE
    "INSERT INTO sako_meta(key, value) VALUES ('policy_gate_margin', 0.01),"
    " ('policy_gate_holdout_events', 50000), ('policy_gate_holdout_fraction', 0.05),"
    " ('policy_gate_min_baskets', 200), ('policy_keep_versions', 10);"
    /* ---- 3 -> 4, model versions ---- end */
    "",
    /* 4 -> 5 (issue 10), matrix factorisation: its options (off: mf_factors 0) and the
     * trained factors with the training's parameters and log range, in checksummed
     * chunks (factors.c encodes them). mf_serial numbers the trainings and names the
     * one served: a new training's rows are written beside it in short transactions,
     * switched to in one, and the old rows deleted afterwards (as the log checkpoint's);
     * every chunk's checksum covers its serial. */
    MF_FACTORS_TABLE
    "INSERT INTO sako_meta(key, value) VALUES ('mf_factors', 0), ('mf_iterations', 15),"
    " ('mf_regularization', 0.01), ('mf_alpha', 1.0), ('mf_cg_steps', 3), ('mf_seed', 0),"
    " ('mf_mode', 0), ('mf_min_users', 100), ('mf_min_user_items', 3), ('mf_weight', 1.0),"
    " ('mf_candidates', 200), ('mf_serial', 0);",
};

/* The current schema of a new database in one step: the tables as the migrations above
 * leave them (the columns an ALTER TABLE adds at the end, in the same order) and the
 * metadata rows they insert that the options do not set (sako__store_write_params
 * writes those). Four migrations' ALTER TABLEs reparse the schema each: making a new
 * database this way costs a fraction of version 1 plus migrations. Keep the two in step:
 * a change of schema is a migration and the same change here. */
static const char *const schema_current =
    "CREATE TABLE sako_meta(key TEXT PRIMARY KEY, value NOT NULL);"
    "CREATE TABLE categories(id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL, prior_mean REAL NOT NULL,"
    "  demand_mean REAL NOT NULL DEFAULT 0, demand_strength REAL NOT NULL DEFAULT 0,"
    "  demand_share REAL NOT NULL DEFAULT 0, checksum INTEGER);"
    "CREATE TABLE items(id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL,"
    "  active INTEGER NOT NULL, added_at INTEGER NOT NULL,"
    "  n_impression REAL NOT NULL DEFAULT 0, n_click REAL NOT NULL DEFAULT 0,"
    "  n_cart REAL NOT NULL DEFAULT 0, n_purchase REAL NOT NULL DEFAULT 0,"
    "  last_event_at INTEGER NOT NULL DEFAULT 0, checksum INTEGER);"
    "CREATE TABLE users(id INTEGER PRIMARY KEY, n_events INTEGER NOT NULL,"
    "  last_event_at INTEGER NOT NULL, checksum INTEGER);"
    "CREATE TABLE event_batches(seq INTEGER PRIMARY KEY, n_events INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, events BLOB NOT NULL, order_ids BLOB, checksum INTEGER);"
    "CREATE TABLE models(version INTEGER PRIMARY KEY, created_at INTEGER NOT NULL,"
    "  n_events INTEGER NOT NULL, kind TEXT NOT NULL);"
    LOG_CHECKPOINT_TABLE
    MODEL_VERSIONS_TABLE
    MF_FACTORS_TABLE
    /* 1 -> 2's demand state; 2 -> 3's policy (every trigger off, activated now with
     * no events and no batch), decay frame and checksum start; 3 -> 4's compaction,
     * gate and keep-N; 4 -> 5's factor serial. */
    "INSERT INTO sako_meta(key, value) VALUES ('demand_active', 0), ('demand_calibration', 1.0),"
    " ('demand_baskets', 1.0), ('demand_root_mean', 0.0), ('demand_root_strength', 1.0),"
    " ('policy_every_events', 0), ('policy_every_seconds', 0), ('policy_drift_fraction', 0.0),"
    " ('policy_drift_window', 25000), ('policy_drift_min_impressions', 12500),"
    " ('policy_activated_at', CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)),"
    " ('policy_activated_events', 0), ('policy_activated_batch', 0),"
    " ('decay_offset', 0), ('decay_latest', 0), ('decay_epoch_at', 0),"
    " ('checksum_from_batch', 1), ('compact_batch', 0), ('compact_events', 0),"
    " ('policy_gate_margin', 0.01), ('policy_gate_holdout_events', 50000),"
    " ('policy_gate_holdout_fraction', 0.05), ('policy_gate_min_baskets', 200),"
    " ('policy_keep_versions', 10), ('mf_serial', 0);";

/* The last batch logged: the log's, or the log checkpoint's when compaction deleted
 * every batch (sequence numbers never go back, so a batch is never taken for one
 * the checkpoint already holds). */
#define LAST_BATCH_SQL "max(coalesce((SELECT max(seq) FROM event_batches), 0)," \
    " coalesce((SELECT value FROM sako_meta WHERE key = 'compact_batch'), 0))"

/* ------------------------------------------------------- row checksums */

/* The CRC-32C of a row of the regular checkpoint (schema 4): its integer columns,
 * its real columns (as their bits) and its text, in the order of the table. The
 * same function runs in SQL (the writers' statements compute it from the values
 * they store, so an upsert that keeps some columns covers them too) and in C (the
 * readers check it). */
static uint32_t row_checksum(char table, const int64_t *ints, int ni, const double *reals, int nr,
                             const unsigned char *text, size_t text_bytes)
{
    unsigned char buf[8];
    uint32_t crc = sako__checksum_update(0, &table, 1);
    for (int i = 0; i < ni; i++) {
        for (int b = 0; b < 8; b++)
            buf[b] = (unsigned char)((uint64_t)ints[i] >> (8 * b));
        crc = sako__checksum_update(crc, buf, 8);
    }
    for (int i = 0; i < nr; i++) {
        uint64_t u;
        memcpy(&u, &reals[i], 8);
        for (int b = 0; b < 8; b++)
            buf[b] = (unsigned char)(u >> (8 * b));
        crc = sako__checksum_update(crc, buf, 8);
    }
    if (text) {
        for (int b = 0; b < 8; b++)
            buf[b] = (unsigned char)((uint64_t)text_bytes >> (8 * b));
        crc = sako__checksum_update(crc, buf, 8);
        crc = sako__checksum_update(crc, text, text_bytes);
    }
    return crc;
}

/* items: id, category_id, active, added_at, last_event_at | the four counts */
static uint32_t item_row_checksum(const int64_t ints[5], const double reals[4])
{
    return row_checksum('i', ints, 5, reals, 4, NULL, 0);
}

/* users: id, n_events, last_event_at */
static uint32_t user_row_checksum(const int64_t ints[3])
{
    return row_checksum('u', ints, 3, NULL, 0, NULL, 0);
}

/* categories: id, parent_id | prior_mean, demand mean, strength, share | name */
static uint32_t category_row_checksum(const int64_t ints[2], const double reals[4],
                                      const unsigned char *name, size_t bytes)
{
    return row_checksum('c', ints, 2, reals, 4, name ? name : (const unsigned char *)"", bytes);
}

/* sako_item_crc(id, category_id, active, added_at, n_impression, n_click, n_cart,
 * n_purchase, last_event_at) */
static void sql_item_crc(sqlite3_context *ctx, int argc, sqlite3_value **v)
{
    (void)argc;
    int64_t ints[5] = { sqlite3_value_int64(v[0]), sqlite3_value_int64(v[1]),
                        sqlite3_value_int64(v[2]), sqlite3_value_int64(v[3]),
                        sqlite3_value_int64(v[8]) };
    double reals[4] = { sqlite3_value_double(v[4]), sqlite3_value_double(v[5]),
                        sqlite3_value_double(v[6]), sqlite3_value_double(v[7]) };
    sqlite3_result_int64(ctx, item_row_checksum(ints, reals));
}

static void sql_user_crc(sqlite3_context *ctx, int argc, sqlite3_value **v)
{
    (void)argc;
    int64_t ints[3] = { sqlite3_value_int64(v[0]), sqlite3_value_int64(v[1]),
                        sqlite3_value_int64(v[2]) };
    sqlite3_result_int64(ctx, user_row_checksum(ints));
}

/* sako_category_crc(id, parent_id, name, prior_mean, demand_mean, demand_strength,
 * demand_share) */
static void sql_category_crc(sqlite3_context *ctx, int argc, sqlite3_value **v)
{
    (void)argc;
    int64_t ints[2] = { sqlite3_value_int64(v[0]), sqlite3_value_int64(v[1]) };
    double reals[4] = { sqlite3_value_double(v[3]), sqlite3_value_double(v[4]),
                        sqlite3_value_double(v[5]), sqlite3_value_double(v[6]) };
    const unsigned char *name = sqlite3_value_text(v[2]);
    sqlite3_result_int64(ctx, category_row_checksum(ints, reals, name,
                                                    (size_t)sqlite3_value_bytes(v[2])));
}

static int register_functions(sako_store *st)
{
    int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC;
    int rc = sqlite3_create_function(st->db, "sako_item_crc", 9, flags, NULL, sql_item_crc, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(st->db, "sako_user_crc", 3, flags, NULL, sql_user_crc, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(st->db, "sako_category_crc", 7, flags, NULL, sql_category_crc,
                                     NULL, NULL);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(st->db, rc, "registering functions");
}

/* SAKO_CORRUPT naming the row when its stored checksum (column `col` of `s`) is
 * missing or differs; rows of a schema-3 file have one since the migration. */
static int check_row(sqlite3_stmt *s, int col, uint32_t want, const char *table, int64_t id)
{
    if (sqlite3_column_type(s, col) == SQLITE_NULL)
        return sako__error(SAKO_CORRUPT, "database damaged: %s %lld has lost its checksum", table,
                           (long long)id);
    int64_t stored = sqlite3_column_int64(s, col);
    if (stored != (int64_t)want)
        return sako__error(SAKO_CORRUPT, "database damaged: the row of %s %lld does not match its "
                           "checksum (%08llx, stored %08llx)", table, (long long)id,
                           (unsigned long long)want, (unsigned long long)stored);
    return SAKO_OK;
}

/* ------------------------------------------------------- statements */

int64_t sako__store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int exec(sako_store *st, const char *sql, const char *what)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(st->db, rc, what);
}

/* A statement kept for the connection's life (sqlite3_prepare_v3 with
 * SQLITE_PREPARE_PERSISTENT), prepared on first use. Parsing is most of the cost of a
 * short statement: BEGIN or COMMIT through sqlite3_exec cost ~30k instructions a call. */
static int cached(sako_store *st, sqlite3_stmt **slot, const char *sql, const char *what)
{
    if (*slot)
        return SAKO_OK;
    int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(st->db, rc, what);
}

static int step_done(sako_store *st, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(st->db, rc, what);
}

/* A kept statement without parameters or rows (BEGIN IMMEDIATE, COMMIT) run once. */
static int run_kept(sako_store *st, sqlite3_stmt **slot, const char *sql, const char *what)
{
    int rc = cached(st, slot, sql, what);
    return rc ? rc : step_done(st, *slot, what);
}

int sako__store_begin(sako_store *st)
{
    /* A ROLLBACK that could not run (out of memory) left its transaction open: end it
     * now, or every later write would fail ("within a transaction"). */
    if (!sqlite3_get_autocommit(st->db)) {
        int rc = exec(st, "ROLLBACK", "rolling back a failed transaction");
        if (rc)
            return rc;
    }
    return run_kept(st, &st->st_begin, "BEGIN IMMEDIATE", "starting a transaction");
}

int sako__store_commit(sako_store *st)
{
    int rc = run_kept(st, &st->st_commit, "COMMIT", "committing");
    if (rc)
        sako__store_rollback(st);
    return rc;
}

void sako__store_rollback(sako_store *st)
{
    st->next_seq = 0; /* a rolled-back batch may have taken it: ask the table again */
    if (sqlite3_get_autocommit(st->db))
        return;
    if (st->st_rollback) {
        sqlite3_step(st->st_rollback);
        sqlite3_reset(st->st_rollback);
    }
    if (!sqlite3_get_autocommit(st->db))
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

void sako__store_settle(sako_store *st)
{
    if (st->db && !sqlite3_get_autocommit(st->db))
        sako__store_rollback(st);
}


/* Run a statement prepared for one batch over n rows, `bind` filling row i. */
static int run_rows(sako_store *st, const char *sql, size_t n, const char *what,
                    void (*bind)(sqlite3_stmt *s, size_t i, const void *arg), const void *arg)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        bind(s, i, arg);
        rc = sqlite3_step(s);
        rc = rc == SQLITE_DONE ? sqlite3_reset(s) : rc;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(st->db, rc, what);
}

int sako__store_set_meta_int(sako_store *st, const char *key, int64_t v)
{
    sqlite3_bind_text(st->st_set_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st->st_set_meta, 2, v);
    return step_done(st, st->st_set_meta, "writing metadata");
}

int sako__store_set_meta_real(sako_store *st, const char *key, double v)
{
    sqlite3_bind_text(st->st_set_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_double(st->st_set_meta, 2, v);
    return step_done(st, st->st_set_meta, "writing metadata");
}

int sako__store_write_params(sako_store *st, const sako_model_params *p)
{
    int rc;
    if ((rc = sako__store_set_meta_real(st, "reward_click", p->reward[SAKO_EVENT_CLICK])) ||
        (rc = sako__store_set_meta_real(st, "reward_cart", p->reward[SAKO_EVENT_CART])) ||
        (rc = sako__store_set_meta_real(st, "reward_purchase", p->reward[SAKO_EVENT_PURCHASE])) ||
        (rc = sako__store_set_meta_real(st, "penalty_impression", p->penalty_impression)) ||
        (rc = sako__store_set_meta_int(st, "prior", p->prior)) ||
        (rc = sako__store_set_meta_real(st, "prior_strength", p->prior_strength)) ||
        (rc = sako__store_set_meta_real(st, "category_shrinkage", p->category_shrinkage)) ||
        (rc = sako__store_set_meta_int(st, "prior_refresh_events", (int64_t)p->prior_refresh_events)) ||
        (rc = sako__store_set_meta_int(st, "organic_demand", p->organic_demand)) ||
        (rc = sako__store_set_meta_int(st, "demand_min_purchases", (int64_t)p->demand_min_purchases)) ||
        (rc = sako__store_set_meta_int(st, "personal", p->personal)) ||
        (rc = sako__store_set_meta_int(st, "personal_min_baskets", p->personal_min_baskets)) ||
        (rc = sako__store_set_meta_real(st, "half_life_days", p->half_life_days)) ||
        (rc = sako__store_set_meta_real(st, "personal_strength", p->personal_strength)) ||
        (rc = sako__store_set_meta_real(st, "personal_temperature", p->personal_temperature)) ||
        (rc = sako__store_set_meta_real(st, "due_exponent", p->due_exponent)) ||
        (rc = sako__store_set_meta_real(st, "affinity_strength", p->affinity_strength)) ||
        (rc = sako__store_set_meta_real(st, "lift_strength", p->lift_strength)) ||
        (rc = sako__store_set_meta_int(st, "basket_gap_ms", p->basket_gap_ms)) ||
        (rc = sako__store_set_meta_real(st, "decay_half_life_days", p->decay_half_life_days)) ||
        (rc = sako__store_set_meta_int(st, "mf_factors", p->mf_factors)) ||
        (rc = sako__store_set_meta_int(st, "mf_iterations", p->mf_iterations)) ||
        (rc = sako__store_set_meta_real(st, "mf_regularization", p->mf_regularization)) ||
        (rc = sako__store_set_meta_real(st, "mf_alpha", p->mf_alpha)) ||
        (rc = sako__store_set_meta_int(st, "mf_cg_steps", p->mf_cg_steps)) ||
        (rc = sako__store_set_meta_int(st, "mf_seed", (int64_t)p->mf_seed)) ||
        (rc = sako__store_set_meta_int(st, "mf_mode", p->mf_mode)) ||
        (rc = sako__store_set_meta_int(st, "mf_min_users", p->mf_min_users)) ||
        (rc = sako__store_set_meta_int(st, "mf_min_user_items", p->mf_min_user_items)) ||
        (rc = sako__store_set_meta_real(st, "mf_weight", p->mf_weight)) ||
        (rc = sako__store_set_meta_int(st, "mf_candidates", p->mf_candidates)))
        return rc;
    return SAKO_OK;
}

/* ------------------------------------------------------ catalog rows */

typedef struct category_args {
    const sako_category *cats;
    char *const *names;
    const double *means;
} category_args;

static void bind_category(sqlite3_stmt *s, size_t i, const void *arg)
{
    const category_args *a = arg;
    sqlite3_bind_int64(s, 1, a->cats[i].id);
    sqlite3_bind_int64(s, 2, a->cats[i].parent_id);
    sqlite3_bind_text(s, 3, a->names[i], -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, a->means[i]);
}

int sako__store_write_categories(sako_store *st, const sako_category *cats,
                                 char *const *names, const double *means, size_t n)
{
    category_args a = { cats, names, means };
    return run_rows(st,
        "INSERT INTO categories(id, parent_id, name, prior_mean, checksum) VALUES(?1, ?2, ?3, ?4,"
        " sako_category_crc(?1, ?2, ?3, ?4, 0, 0, 0)) "
        "ON CONFLICT(id) DO UPDATE SET parent_id = excluded.parent_id, name = excluded.name,"
        " checksum = sako_category_crc(id, excluded.parent_id, excluded.name, prior_mean,"
        " demand_mean, demand_strength, demand_share)",
        n, "writing categories", bind_category, &a);
}

int sako__store_write_category(sako_store *st, int64_t id, double prior_mean)
{
    int rc = cached(st, &st->st_write_category,
                    "UPDATE categories SET prior_mean = ?2, checksum = sako_category_crc(id,"
                    " parent_id, name, ?2, demand_mean, demand_strength, demand_share)"
                    " WHERE id = ?1", "writing category priors");
    if (rc)
        return rc;
    sqlite3_bind_int64(st->st_write_category, 1, id);
    sqlite3_bind_double(st->st_write_category, 2, prior_mean);
    return step_done(st, st->st_write_category, "writing category priors");
}

typedef struct item_args {
    const sako_item *items;
    const int64_t *ids;
    int64_t now;
} item_args;

static void bind_item(sqlite3_stmt *s, size_t i, const void *arg)
{
    const item_args *a = arg;
    sqlite3_bind_int64(s, 1, a->items[i].id);
    sqlite3_bind_int64(s, 2, a->items[i].category_id);
    sqlite3_bind_int(s, 3, a->items[i].active);
    sqlite3_bind_int64(s, 4, a->items[i].added_at ? a->items[i].added_at : a->now);
}

int sako__store_write_items(sako_store *st, const sako_item *items, size_t n, int64_t now)
{
    item_args a = { items, NULL, now };
    return run_rows(st,
        "INSERT INTO items(id, category_id, active, added_at, checksum) VALUES(?1, ?2, ?3, ?4,"
        " sako_item_crc(?1, ?2, ?3, ?4, 0, 0, 0, 0, 0)) "
        "ON CONFLICT(id) DO UPDATE SET category_id = excluded.category_id, active = excluded.active,"
        " checksum = sako_item_crc(id, excluded.category_id, excluded.active, added_at,"
        " n_impression, n_click, n_cart, n_purchase, last_event_at)",
        n, "writing items", bind_item, &a);
}

static void bind_new_item(sqlite3_stmt *s, size_t i, const void *arg)
{
    const item_args *a = arg;
    sqlite3_bind_int64(s, 1, a->ids[i]);
    sqlite3_bind_int64(s, 2, a->now);
}

int sako__store_create_items(sako_store *st, const int64_t *ids, size_t n, int64_t now)
{
    item_args a = { NULL, ids, now };
    return run_rows(st, "INSERT INTO items(id, category_id, active, added_at, checksum) "
                        "VALUES(?1, 0, 1, ?2, sako_item_crc(?1, 0, 1, ?2, 0, 0, 0, 0, 0))"
                        " ON CONFLICT(id) DO NOTHING",
                    n, "creating unknown items", bind_new_item, &a);
}

/* ------------------------------------------------------ event blobs */

/* Events are packed little-endian, 33 bytes each: user, item, time, rec_id (int64)
 * and type (one byte), so the log reads the same on any host. */
#define EVENT_BYTES 33

static void put64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

static int64_t get64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)p[i] << (8 * i);
    return (int64_t)u;
}

static void encode_events(const sako_event *ev, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++, out += EVENT_BYTES) {
        put64(out, ev[i].user_id);
        put64(out + 8, ev[i].item_id);
        put64(out + 16, ev[i].time);
        put64(out + 24, ev[i].rec_id);
        out[32] = (unsigned char)ev[i].type;
    }
}

/* SAKO_CORRUPT if the blob is not n well-formed events. */
static int decode_events(const void *blob, size_t bytes, sako_event *out, size_t n)
{
    if (bytes != n * EVENT_BYTES)
        return sako__error(SAKO_CORRUPT, "event log: a batch of %zu events has %zu bytes", n, bytes);
    const unsigned char *p = blob;
    for (size_t i = 0; i < n; i++, p += EVENT_BYTES) {
        out[i].user_id = get64(p);
        out[i].item_id = get64(p + 8);
        out[i].time = get64(p + 16);
        out[i].rec_id = get64(p + 24);
        out[i].type = p[32];
        if (!sako__idmap_valid_id(out[i].user_id) || !sako__idmap_valid_id(out[i].item_id) ||
            out[i].type >= SAKO_EVENT_TYPES || out[i].time < 0)
            return sako__error(SAKO_CORRUPT, "event log: event %zu of a batch is malformed", i);
    }
    return SAKO_OK;
}

/* A batch's checksum covers everything its replay depends on: its place in the log
 * (seq), its size, its time, its events, and its order ids (or their absence). */
static uint32_t batch_checksum(int64_t seq, int64_t n, int64_t created_at, const void *events,
                               size_t bytes, const void *orders, size_t order_bytes, int has_orders)
{
    unsigned char head[25];
    put64(head, seq);
    put64(head + 8, n);
    put64(head + 16, created_at);
    head[24] = (unsigned char)(has_orders != 0);
    uint32_t crc = sako__checksum_update(0, head, sizeof head);
    crc = sako__checksum_update(crc, events, bytes);
    return has_orders ? sako__checksum_update(crc, orders, order_bytes) : crc;
}

int sako__store_append_batch(sako_store *st, const sako_event *ev, const int64_t *order_ids,
                             size_t n, int64_t created_at, int64_t *seq_out)
{
    int rc = cached(st, &st->st_insert_batch, "INSERT INTO event_batches(seq, n_events, created_at, "
                    "events, order_ids, checksum) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    "appending to the event log");
    if (rc == SAKO_OK && st->next_seq <= 0)
        rc = cached(st, &st->st_next_seq, "SELECT " LAST_BATCH_SQL " + 1",
                    "appending to the event log");
    if (rc)
        return rc;
    /* The checksum covers seq, so seq is chosen here: the largest plus one, as SQLite
     * would, asked once and then counted (one engine writes a file; a rollback makes
     * it ask again). */
    if (st->next_seq <= 0) {
        sqlite3_stmt *q = st->st_next_seq;
        int step = sqlite3_step(q);
        st->next_seq = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
        if (step != SQLITE_ROW) {
            st->next_seq = 0;
            return sako__error_sqlite(st->db, step, "appending to the event log");
        }
    }
    int64_t seq = st->next_seq;
    size_t bytes = n * EVENT_BYTES, order_bytes = order_ids ? n * 8 : 0;
    unsigned char *blob = malloc(bytes + order_bytes + 1);
    if (!blob)
        return sako__error(SAKO_NOMEM, "out of memory packing %zu events", n);
    encode_events(ev, n, blob);
    for (size_t i = 0; i < n && order_ids; i++)
        put64(blob + bytes + 8 * i, order_ids[i]);
    sqlite3_stmt *s = st->st_insert_batch;
    sqlite3_bind_int64(s, 1, seq);
    sqlite3_bind_int64(s, 2, (int64_t)n);
    sqlite3_bind_int64(s, 3, created_at);
    sqlite3_bind_blob64(s, 4, blob, bytes, SQLITE_STATIC);
    if (order_ids)
        sqlite3_bind_blob64(s, 5, blob + bytes, order_bytes, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 5);
    sqlite3_bind_int64(s, 6, batch_checksum(seq, (int64_t)n, created_at, blob, bytes,
                                            blob + bytes, order_bytes, order_ids != NULL));
    rc = step_done(st, s, "appending to the event log");
    sqlite3_clear_bindings(s);
    free(blob);
    if (rc == SAKO_OK) {
        *seq_out = seq;
        st->next_seq = seq + 1;
    } else {
        st->next_seq = 0;
    }
    return rc;
}

/* ------------------------------------------------------ checkpoints */

int sako__store_write_item_counts(sako_store *st, int64_t id, const sako_counts *c,
                                  int64_t last_event_at)
{
    int rc = cached(st, &st->st_write_counts,
        "UPDATE items SET n_impression = ?2, n_click = ?3, n_cart = ?4, n_purchase = ?5,"
        " last_event_at = ?6, checksum = sako_item_crc(id, category_id, active, added_at,"
        " ?2, ?3, ?4, ?5, ?6) WHERE id = ?1", "writing a checkpoint");
    if (rc)
        return rc;
    sqlite3_bind_int64(st->st_write_counts, 1, id);
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        sqlite3_bind_double(st->st_write_counts, 2 + t, c->n[t]);
    sqlite3_bind_int64(st->st_write_counts, 6, last_event_at);
    return step_done(st, st->st_write_counts, "writing a checkpoint");
}

int sako__store_write_user(sako_store *st, const sako_user_row *u)
{
    int rc = cached(st, &st->st_write_user,
        "INSERT OR REPLACE INTO users(id, n_events, last_event_at, checksum)"
        " VALUES(?1, ?2, ?3, sako_user_crc(?1, ?2, ?3))",
        "writing a checkpoint");
    if (rc)
        return rc;
    sqlite3_bind_int64(st->st_write_user, 1, u->id);
    sqlite3_bind_int64(st->st_write_user, 2, (int64_t)u->n_events);
    sqlite3_bind_int64(st->st_write_user, 3, u->last_event_at);
    return step_done(st, st->st_write_user, "writing a checkpoint");
}

/* The first column of a query's first row. */
static int query_one(sako_store *st, sqlite3_stmt *s, int rc, int64_t *out)
{
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        }
    }
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(st->db, rc, "reading the database header");
}

static int query_int(sako_store *st, const char *sql, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    rc = query_one(st, s, rc, out);
    sqlite3_finalize(s);
    return rc;
}

/* The one-value queries run on every open, update or retrain, kept in st->st_query. */
enum kept_query { Q_LAST_BATCH, Q_CHECKED_FROM, Q_VERSIONS_HOLD, Q_VERSION_ACTIVE, Q_FIRST_BATCH,
                  Q_KEPT };
typedef char kept_queries_fit[Q_KEPT == sizeof ((sako_store *)0)->st_query / sizeof (sqlite3_stmt *)
                              ? 1 : -1];

static int query_kept(sako_store *st, enum kept_query q, const char *sql, int64_t *out)
{
    sqlite3_stmt **slot = &st->st_query[q];
    int rc = *slot ? SQLITE_OK
                   : sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
    int status = query_one(st, *slot, rc, out);
    sqlite3_reset(*slot); /* (a NULL statement is a harmless no-op) */
    return status;
}

/* Every batch logged so far is now folded into the stored counts. */
int sako__store_checkpoint_done(sako_store *st)
{
    int64_t last_batch = 0;
    int rc = query_kept(st, Q_LAST_BATCH, "SELECT " LAST_BATCH_SQL, &last_batch);
    return rc ? rc : sako__store_set_meta_int(st, "checkpoint_batch", last_batch);
}

int sako__store_write_demand(sako_store *st, const sako_store_demand *d)
{
    int rc;
    if ((rc = sako__store_set_meta_int(st, "demand_active", d->active)) ||
        (rc = sako__store_set_meta_real(st, "demand_calibration", d->calibration)) ||
        (rc = sako__store_set_meta_real(st, "demand_baskets", d->baskets)) ||
        (rc = sako__store_set_meta_real(st, "demand_root_mean", d->root_mean)) ||
        (rc = sako__store_set_meta_real(st, "demand_root_strength", d->root_strength)))
        return rc;
    return SAKO_OK;
}

int sako__store_write_category_demand(sako_store *st, const sako_category_demand_row *r)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "UPDATE categories SET demand_mean = ?2, demand_strength = ?3,"
                                " demand_share = ?4, checksum = sako_category_crc(id, parent_id,"
                                " name, prior_mean, ?2, ?3, ?4) WHERE id = ?1", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, r->id);
        sqlite3_bind_double(s, 2, r->mean);
        sqlite3_bind_double(s, 3, r->strength);
        sqlite3_bind_double(s, 4, r->share);
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(st->db, rc, "writing category demand");
}

int sako__store_record_model(sako_store *st, int64_t version, int64_t created_at,
                             uint64_t n_events)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "INSERT INTO models(version, created_at, n_events, kind) "
                                "VALUES(?1, ?2, ?3, 'thompson')", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, version);
        sqlite3_bind_int64(s, 2, created_at);
        sqlite3_bind_int64(s, 3, (int64_t)n_events);
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(st->db, rc, "recording the model version");
}

/* The retrain policy (policy.c validates it). */
int sako__store_write_policy(sako_store *st, const sako_policy *p)
{
    int rc;
    if ((rc = sako__store_set_meta_int(st, "policy_every_events", (int64_t)p->every_events)) ||
        (rc = sako__store_set_meta_int(st, "policy_every_seconds", (int64_t)p->every_seconds)) ||
        (rc = sako__store_set_meta_real(st, "policy_drift_fraction", p->drift_fraction)) ||
        (rc = sako__store_set_meta_int(st, "policy_drift_window", (int64_t)p->drift_window)) ||
        (rc = sako__store_set_meta_int(st, "policy_drift_min_impressions",
                                       (int64_t)p->drift_min_impressions)) ||
        (rc = sako__store_set_meta_real(st, "policy_gate_margin", p->gate_margin)) ||
        (rc = sako__store_set_meta_int(st, "policy_gate_holdout_events",
                                       (int64_t)p->gate_holdout_events)) ||
        (rc = sako__store_set_meta_real(st, "policy_gate_holdout_fraction",
                                        p->gate_holdout_fraction)) ||
        (rc = sako__store_set_meta_int(st, "policy_gate_min_baskets",
                                       (int64_t)p->gate_min_baskets)) ||
        (rc = sako__store_set_meta_int(st, "policy_keep_versions", (int64_t)p->keep_versions)))
        return rc;
    return SAKO_OK;
}

int sako__store_write_activation(sako_store *st, const sako_store_activation *a)
{
    int rc;
    if ((rc = sako__store_set_meta_int(st, "policy_activated_at", a->at)) ||
        (rc = sako__store_set_meta_int(st, "policy_activated_events", (int64_t)a->n_events)) ||
        (rc = sako__store_set_meta_int(st, "policy_activated_batch", a->batch)))
        return rc;
    return SAKO_OK;
}

int sako__store_last_batch(sako_store *st, int64_t *out)
{
    return query_kept(st, Q_LAST_BATCH, "SELECT " LAST_BATCH_SQL, out);
}

/* --------------------------------------------------------------- open */

static int prepare_meta(sako_store *st)
{
    int rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO sako_meta(key, value) "
                                "VALUES(?1, ?2)", -1, &st->st_set_meta, NULL);
    /* Compiling a ROLLBACK needs memory; a write that failed out of memory must still
     * be able to roll back, or its uncommitted rows stay visible on this connection. */
    if (rc == SQLITE_OK && !st->st_rollback)
        rc = sqlite3_prepare_v2(st->db, "ROLLBACK", -1, &st->st_rollback, NULL);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(st->db, rc, "preparing metadata writes");
}

static int create_schema(sako_store *st, const sako_model_params *params)
{
    char sql[128];
    int rc = sako__store_begin(st);
    if (rc)
        return rc;
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             SAKO_APPLICATION_ID, SAKO_SCHEMA_VERSION);
    if ((rc = exec(st, schema_current, "creating the schema")) ||
        (rc = exec(st, sql, "stamping the schema")) || (rc = prepare_meta(st)))
        goto fail;
    if ((rc = sako__store_write_params(st, params)) ||
        (rc = sako__store_set_meta_real(st, "root_mean", 0.5)) ||
        (rc = sako__store_set_meta_int(st, "n_events", 0)) ||
        (rc = sako__store_set_meta_int(st, "events_since_refresh", 0)) ||
        (rc = sako__store_set_meta_int(st, "checkpoint_batch", 0)) ||
        (rc = sako__store_set_meta_int(st, "model_version", 0)))
        goto fail;
    return sako__store_commit(st);
fail:
    sako__store_rollback(st);
    return rc;
}

static int adopt_current_model(sako_store *st);

/* A migration's SQL fails with a plain SQL error ("table mf_factors already exists",
 * "no such table") only when the file's tables are not those of the version its header
 * claims: that is a damaged or forged file, not an internal error (found by fuzz_open). */
static int exec_migration(sako_store *st, const char *sql, int64_t from)
{
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return SAKO_OK;
    if ((rc & 0xff) == SQLITE_ERROR)
        return sako__error(SAKO_CORRUPT,
                           "the tables do not match schema version %lld in the file's header "
                           "(migrating: %s)", (long long)from, sqlite3_errmsg(st->db));
    return sako__error_sqlite(st->db, rc, "migrating the schema");
}

static int migrate(sako_store *st, int64_t from)
{
    for (int64_t v = from; v < SAKO_SCHEMA_VERSION; v++) {
        if (!migrations[v - 1])
            return sako__error(SAKO_CORRUPT, "no migration from schema version %lld", (long long)v);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %lld;", (long long)(v + 1));
        int rc = sako__store_begin(st);
        st->before_mf = v < 4;
        if (rc == SAKO_OK && !(rc = exec_migration(st, migrations[v - 1], v)) &&
            !(rc = exec(st, sql, "migrating the schema")) &&
            !(rc = v == 3 ? adopt_current_model(st) : SAKO_OK))
            rc = sako__store_commit(st);
        else
            sako__store_rollback(st);
        st->before_mf = 0;
        if (rc)
            return rc;
    }
    return SAKO_OK;
}

/* Two engines on one file would each keep their own in-memory state and overwrite
 * each other's bookkeeping: an advisory lock on a side file keeps one engine per
 * file (readers such as backup tools are not affected). A lock file this open
 * created is remembered, so that a refused open can remove it again (see
 * sako__store_refuse); the loop makes sure the file locked is still the one named
 * `path`-lock, in case a refusing engine removed it between our open and flock. */
static int lock_file(sako_store *st, const char *path)
{
    size_t len = strlen(path);
    char *name = malloc(len + 6);
    if (!name)
        return sako__error(SAKO_NOMEM, "out of memory");
    memcpy(name, path, len);
    memcpy(name + len, "-lock", 6);
    for (int attempt = 0; attempt < 8; attempt++) {
        int created = 1;
        st->lock_fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (st->lock_fd < 0 && errno == EEXIST) {
            created = 0;
            st->lock_fd = open(name, O_RDWR | O_CLOEXEC);
        }
        if (st->lock_fd < 0) {
            if (errno == ENOENT)
                continue; /* removed between the two opens */
            break;
        }
        struct stat held, named;
        int err = 0, named_ok = 0;
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0 || fstat(st->lock_fd, &held) != 0)
            err = errno;
        else if (stat(name, &named) == 0)
            named_ok = 1;
        else if (errno != ENOENT) /* ENOENT: removed since our open; try again */
            err = errno;
        if (err) {
            close(st->lock_fd);
            st->lock_fd = -1;
            if (created && err != EWOULDBLOCK)
                unlink(name); /* an I/O error: the lock file this open made goes */
            free(name);
            return err == EWOULDBLOCK ? sako__error(SAKO_BUSY, "%s is open in another engine", path)
                                      : sako__error(SAKO_IO, "%s-lock: %s", path, strerror(err));
        }
        if (named_ok && held.st_dev == named.st_dev && held.st_ino == named.st_ino) {
            st->lock_path = created ? name : NULL;
            if (!created)
                free(name);
            return SAKO_OK;
        }
        close(st->lock_fd);
        st->lock_fd = -1;
    }
    int err = errno;
    free(name);
    return sako__error(SAKO_IO, "%s-lock: %s", path, strerror(err));
}

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Refuse what can be refused from the file's own bytes, before SQLite or the lock
 * touches anything: a missing file is created; a zero-length one is a database
 * truncated to nothing unless the caller asked to create in it; anything that is
 * not SQLite, or is another application's SQLite (an application id that is not
 * ours, or no id and tables of its own in the main file), is refused without being
 * opened, so a hot journal or -wal of that application is never rolled back or
 * checkpointed; a file we may not write is refused before any -wal or -shm exists.
 * The one case the header cannot decide (no id, no tables in the main file, so
 * either empty or with everything still in a -wal) is left to identify(), which runs
 * on a connection that does not checkpoint on close. */
static int check_file(const char *path, int create_empty, int need_write, int *missing)
{
    struct stat sb;
    *missing = 0;
    if (stat(path, &sb) != 0) {
        *missing = errno == ENOENT;
        return *missing ? SAKO_OK : sako__error(SAKO_IO, "%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return sako__error(SAKO_IO, "%s: %s", path, strerror(EISDIR));
    if (S_ISREG(sb.st_mode) && sb.st_size == 0) {
        /* A new database whose first writes are all still in its -wal (a crash
         * before the first checkpoint) is not empty: SQLite reads it. */
        size_t len = strlen(path);
        char *wal = malloc(len + 5);
        if (!wal)
            return sako__error(SAKO_NOMEM, "out of memory");
        memcpy(wal, path, len);
        memcpy(wal + len, "-wal", 5);
        struct stat wb;
        int has_wal = stat(wal, &wb) == 0 && wb.st_size > 0;
        free(wal);
        if (!create_empty && !has_wal)
            return sako__error(SAKO_CORRUPT, "%s is empty (0 bytes): a truncated or damaged "
                               "database? set create_empty in sako_options to create a new "
                               "database in an existing empty file", path);
    } else {
        FILE *f = fopen(path, "rb");
        if (!f)
            return sako__error(SAKO_IO, "%s: %s", path, strerror(errno));
        unsigned char head[108];
        size_t got = fread(head, 1, sizeof head, f);
        int read_err = ferror(f) ? errno : 0;
        fclose(f);
        /* A read that failed says nothing about the file: not damage. */
        if (read_err)
            return sako__error(SAKO_IO, "reading %s: %s", path, strerror(read_err));
        if (got < 16 || memcmp(head, "SQLite format 3", 16) != 0)
            return sako__error(SAKO_CORRUPT, "%s is not an SQLite database", path);
        if (got >= 105) {
            /* Header: user_version at 60, application_id at 68; page 1's b-tree
             * header (sqlite_schema) at 100: its type and number of cells. */
            uint32_t app_id = get_be32(head + 68), version = get_be32(head + 60);
            int schema_empty = head[100] == 0x0D && head[103] == 0 && head[104] == 0;
            if (app_id != SAKO_APPLICATION_ID && (app_id != 0 || version != 0 || !schema_empty))
                return sako__error(SAKO_CORRUPT, "%s is an SQLite database of another "
                                   "application", path);
        }
    }
    if (need_write && access(path, W_OK) != 0)
        return sako__error(SAKO_IO, "%s is not writable (%s): libsako writes to its database "
                           "file and its -wal beside it; make it writable, or work on a copy",
                           path, strerror(errno));
    return SAKO_OK;
}

/* Whether the open database is empty (*fresh) or a libsako schema this library
 * can read (*version); anything else is refused before it is changed. */
static int identify(sako_store *st, const char *path, int64_t *version, int *fresh)
{
    int64_t app_id = 0, n_tables = 0;
    int rc;
    if ((rc = query_int(st, "PRAGMA application_id", &app_id)) ||
        (rc = query_int(st, "PRAGMA user_version", version)) ||
        (rc = query_int(st, "SELECT count(*) FROM sqlite_schema", &n_tables)))
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    *fresh = app_id == 0 && *version == 0 && n_tables == 0;
    if (!*fresh && app_id != SAKO_APPLICATION_ID)
        return sako__error(SAKO_CORRUPT, "%s is an SQLite database of another application",
                           path ? path : ":memory:");
    if (*version > SAKO_SCHEMA_VERSION)
        return sako__error(SAKO_VERSION, "schema version %lld is newer than this library's %d "
                           "(libsako %s)", (long long)*version, SAKO_SCHEMA_VERSION,
                           SAKO_VERSION_STRING);
    if (!*fresh && *version < 1)
        return sako__error(SAKO_CORRUPT, "schema version %lld is not a libsako schema",
                           (long long)*version);
    return SAKO_OK;
}

/* A statement of ours that does not prepare on an opened file means a schema that is
 * not ours (damaged), unless SQLite ran out of memory or could not read the file. */
static int prepare_failed(sqlite3 *db, int rc, const char *what)
{
    int status = sako__error_sqlite(db, rc, what);
    if (status == SAKO_NOMEM || status == SAKO_IO || status == SAKO_BUSY)
        return status;
    char damaged[128];
    snprintf(damaged, sizeof damaged, "database damaged: %s", what);
    sako__error_sqlite(db, rc, damaged);
    return SAKO_CORRUPT;
}

int sako__store_open(sako_store *st, const char *path, int busy_timeout_ms, int durability,
                     int create_empty, const sako_model_params *fresh_params)
{
    st->in_memory = path == NULL || strcmp(path, ":memory:") == 0;
    st->lock_fd = -1;
    st->durability = durability;
    int rc;
    int missing = 0;
    if (!st->in_memory &&
        ((rc = check_file(path, create_empty, 1, &missing)) || (rc = lock_file(st, path))))
        return rc;
    /* Under the lock: no other engine can create it now; refusing removes it. */
    if (missing && !(st->created_path = strdup(path)))
        return sako__error(SAKO_NOMEM, "out of memory");
    rc = sqlite3_open_v2(st->in_memory ? ":memory:" : path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return sako__error_sqlite(st->db, rc, path ? path : ":memory:");
    sqlite3_extended_result_codes(st->db, 1);
    if ((rc = register_functions(st)))
        return rc;
    /* Until the open succeeds, closing must not checkpoint: a refused file's -wal
     * (another application's) stays as it is; sako__store_open_done() turns the
     * usual checkpoint on close back on. */
    sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
    sqlite3_busy_timeout(st->db, busy_timeout_ms);

    int64_t version = 0;
    int fresh = 0;
    if ((rc = identify(st, path, &version, &fresh)))
        return rc;
    /* Only a file known to be ours (or empty) is switched to WAL: a refused file
     * must be left exactly as it was. */
    if (!st->in_memory) {
        static const char *const sync[] = { "FULL", "NORMAL", "OFF" };
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
                 sync[durability]);
        if ((rc = exec(st, sql, "setting the journal mode")))
            return rc;
    }
    if (fresh)
        return create_schema(st, fresh_params);
    if ((rc = migrate(st, version)))
        return rc;
    if (prepare_meta(st) != SAKO_OK)
        return prepare_failed(st->db, sqlite3_errcode(st->db), "the metadata table");
    return SAKO_OK;
}

int sako__store_ready(const sako_store *st)
{
    return st->db && st->st_set_meta;
}

static void ckpt_stop(sako_store *st);

/* Finalizes the statements kept on st->db, before the connection closes. */
static void forget_statements(sako_store *st)
{
    sqlite3_stmt **cache[] = { &st->st_set_meta, &st->st_insert_batch, &st->st_write_category,
                               &st->st_write_counts, &st->st_write_user, &st->st_next_seq,
                               &st->st_rollback, &st->st_begin, &st->st_commit };
    for (size_t i = 0; i < sizeof cache / sizeof cache[0]; i++) {
        sqlite3_finalize(*cache[i]);
        *cache[i] = NULL;
    }
    for (size_t i = 0; i < Q_KEPT; i++) {
        sqlite3_finalize(st->st_query[i]);
        st->st_query[i] = NULL;
    }
}

void sako__store_close(sako_store *st)
{
    ckpt_stop(st);
    forget_statements(st);
    if (st->db)
        sqlite3_close_v2(st->db);
    st->db = NULL;
    if (st->lock_fd >= 0)
        close(st->lock_fd);
    st->lock_fd = -1;
    free(st->lock_path);
    st->lock_path = NULL;
    free(st->created_path);
    st->created_path = NULL;
}

static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages);

void sako__store_open_done(sako_store *st)
{
    if (st->db)
        sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
    /* From now on the writer's commits do not checkpoint the WAL themselves (this
     * hook replaces SQLite's automatic checkpoint): the checkpointer thread does. */
    if (st->db && !st->in_memory)
        sqlite3_wal_hook(st->db, wal_hook, st);
    free(st->lock_path);
    st->lock_path = NULL;
    free(st->created_path);
    st->created_path = NULL;
}

/* Called instead of open_done when the engine refuses the file: the lock file this
 * open created goes (removed while still locked, so no other engine can hold it). */
void sako__store_refuse(sako_store *st)
{
    /* A file this open created goes too, so that a retry creates it again rather
     * than finding it empty (refused) or half made. The connection does not
     * checkpoint on close yet, so closing it cannot bring the files back. */
    if (st->created_path && st->lock_fd >= 0) {
        static const char *const side[] = { "-wal", "-shm", "" };
        size_t len = strlen(st->created_path);
        char *name = malloc(len + 5);
        for (size_t i = 0; name && i < sizeof side / sizeof *side; i++) {
            memcpy(name, st->created_path, len);
            memcpy(name + len, side[i], strlen(side[i]) + 1);
            unlink(name);
        }
        if (!name)
            unlink(st->created_path); /* at least the (empty) database itself */
        free(name);
    }
    free(st->created_path);
    st->created_path = NULL;
    if (st->lock_path && st->lock_fd >= 0)
        unlink(st->lock_path);
    free(st->lock_path);
    st->lock_path = NULL;
}

/* ------------------------------------------------------------ readers */

/* Any failure to prepare or run a SELECT means a table or column is missing or
 * damaged. */
static int read_failed(sako_store *st, int rc, const char *what)
{
    int status = sako__error_sqlite(st->db, rc, what);
    return status == SAKO_ERROR ? SAKO_CORRUPT : status;
}

static int prepare_read(sako_store *st, const char *sql, sqlite3_stmt **s)
{
    int rc = sqlite3_prepare_v2(st->db, sql, -1, s, NULL);
    return rc == SQLITE_OK ? SAKO_OK : read_failed(st, rc, "reading the database");
}

/* The end of a read: the callback's status if it stopped it, else the step's. */
static int finish_read(sako_store *st, sqlite3_stmt *s, int rc_step, int status)
{
    sqlite3_finalize(s);
    if (status != SAKO_OK || rc_step == SQLITE_DONE)
        return status;
    return read_failed(st, rc_step, "reading the database");
}

/* Number of rows of a table, then its SELECT prepared. */
static int start_read(sako_store *st, const char *count_sql, const char *sql,
                      int (*begin)(void *, size_t), void *payload, sqlite3_stmt **s)
{
    int64_t count = 0;
    int rc = query_int(st, count_sql, &count);
    if (rc)
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    if ((rc = begin(payload, (size_t)count)))
        return rc;
    return prepare_read(st, sql, s);
}

int sako__store_read_meta(sako_store *st, sako_store_meta *out)
{
    sqlite3_stmt *s;
    int rc = prepare_read(st, "SELECT key, value FROM sako_meta", &s);
    if (rc)
        return rc;
    uint64_t seen = 0;
    sako_model_params *p = &out->params;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        double r = sqlite3_column_double(s, 1);
        int64_t i = sqlite3_column_int64(s, 1);
        if (!k)
            continue;
#define META(name, bit, assign) else if (strcmp(k, name) == 0) { assign; seen |= (uint64_t)1 << bit; }
        if (0) {}
        META("reward_click", 0, p->reward[SAKO_EVENT_CLICK] = r)
        META("reward_cart", 1, p->reward[SAKO_EVENT_CART] = r)
        META("reward_purchase", 2, p->reward[SAKO_EVENT_PURCHASE] = r)
        META("penalty_impression", 3, p->penalty_impression = r)
        META("prior", 4, p->prior = (int)i)
        META("prior_strength", 5, p->prior_strength = r)
        META("category_shrinkage", 6, p->category_shrinkage = r)
        META("prior_refresh_events", 7, p->prior_refresh_events = (uint64_t)i)
        META("root_mean", 8, out->root_mean = r)
        META("n_events", 9, out->n_events = (uint64_t)i)
        META("events_since_refresh", 10, out->events_since_refresh = (uint64_t)i)
        META("checkpoint_batch", 11, out->checkpoint_batch = i)
        META("model_version", 12, out->model_version = i)
        META("organic_demand", 13, p->organic_demand = (int)i)
        META("demand_min_purchases", 14, p->demand_min_purchases = (uint64_t)i)
        META("personal", 15, p->personal = (int)i)
        META("personal_min_baskets", 16, p->personal_min_baskets = (uint32_t)i)
        META("half_life_days", 17, p->half_life_days = r)
        META("personal_strength", 18, p->personal_strength = r)
        META("personal_temperature", 19, p->personal_temperature = r)
        META("due_exponent", 20, p->due_exponent = r)
        META("affinity_strength", 21, p->affinity_strength = r)
        META("lift_strength", 22, p->lift_strength = r)
        META("basket_gap_ms", 23, p->basket_gap_ms = i)
        META("demand_active", 24, out->demand.active = (int)i)
        META("demand_calibration", 25, out->demand.calibration = r)
        META("demand_baskets", 26, out->demand.baskets = r)
        META("demand_root_mean", 27, out->demand.root_mean = r)
        META("demand_root_strength", 28, out->demand.root_strength = r)
        META("decay_half_life_days", 29, p->decay_half_life_days = r)
        META("decay_offset", 30, out->decay_offset = i)
        META("decay_latest", 31, out->decay_latest = i)
        META("decay_epoch_at", 32, out->decay_epoch_at = i)
        META("compact_batch", 33, out->compact_batch = i)
        META("compact_events", 34, out->compact_events = i)
        META("mf_factors", 35, p->mf_factors = (uint32_t)i)
        META("mf_iterations", 36, p->mf_iterations = (uint32_t)i)
        META("mf_regularization", 37, p->mf_regularization = r)
        META("mf_alpha", 38, p->mf_alpha = r)
        META("mf_cg_steps", 39, p->mf_cg_steps = (uint32_t)i)
        META("mf_seed", 40, p->mf_seed = (uint64_t)i)
        META("mf_mode", 41, p->mf_mode = (int)i)
        META("mf_min_users", 42, p->mf_min_users = (uint32_t)i)
        META("mf_min_user_items", 43, p->mf_min_user_items = (uint32_t)i)
        META("mf_weight", 44, p->mf_weight = r)
        META("mf_candidates", 45, p->mf_candidates = (uint32_t)i)
        META("mf_serial", 46, out->mf_serial = i)
#undef META
    }
    if ((rc = finish_read(st, s, step, SAKO_OK)))
        return rc;
    /* (the 3 -> 4 migration reads the model in force before 4 -> 5 adds the mf keys) */
    if (seen != ((uint64_t)1 << (st->before_mf ? 35 : 47)) - 1)
        return sako__error(SAKO_CORRUPT, "database damaged: metadata incomplete (mask %#llx)",
                           (unsigned long long)seen);
    p->reward[SAKO_EVENT_IMPRESSION] = 0.0;
    return SAKO_OK;
}

int sako__store_read_categories(sako_store *st, int (*begin)(void *payload, size_t n),
                                int (*row)(void *payload, const sako_category_row *r),
                                void *payload)
{
    sqlite3_stmt *s;
    int rc = start_read(st, "SELECT count(*) FROM categories",
                        "SELECT id, parent_id, name, prior_mean, demand_mean, demand_strength,"
                        " demand_share, checksum FROM categories", begin, payload, &s);
    if (rc)
        return rc;
    int step = SQLITE_DONE;
    while (rc == SAKO_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 2);
        sako_category_row r = { sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                                name ? name : "", sqlite3_column_double(s, 3) };
        int64_t ints[2] = { r.id, r.parent_id };
        double reals[4] = { r.prior_mean, sqlite3_column_double(s, 4), sqlite3_column_double(s, 5),
                            sqlite3_column_double(s, 6) };
        uint32_t want = category_row_checksum(ints, reals, (const unsigned char *)r.name,
                                              (size_t)sqlite3_column_bytes(s, 2));
        if ((rc = check_row(s, 7, want, "category", r.id)) == SAKO_OK)
            rc = row(payload, &r);
    }
    return finish_read(st, s, step, rc);
}

int sako__store_read_items(sako_store *st, int (*begin)(void *payload, size_t n),
                           int (*row)(void *payload, const sako_item_row *r), void *payload)
{
    sqlite3_stmt *s;
    int rc = start_read(st, "SELECT count(*) FROM items",
                        "SELECT id, category_id, active, added_at, n_impression, n_click,"
                        " n_cart, n_purchase, last_event_at, checksum FROM items", begin, payload, &s);
    if (rc)
        return rc;
    int step = SQLITE_DONE;
    while (rc == SAKO_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        sako_item_row r;
        r.id = sqlite3_column_int64(s, 0);
        r.category_id = sqlite3_column_int64(s, 1);
        r.active = sqlite3_column_int(s, 2);
        r.added_at = sqlite3_column_int64(s, 3);
        for (int t = 0; t < SAKO_EVENT_TYPES; t++)
            r.counts.n[t] = sqlite3_column_double(s, 4 + t);
        r.last_event_at = sqlite3_column_int64(s, 8);
        int64_t ints[5] = { r.id, r.category_id, sqlite3_column_int64(s, 2), r.added_at,
                            r.last_event_at };
        if ((rc = check_row(s, 9, item_row_checksum(ints, r.counts.n), "item", r.id)) == SAKO_OK)
            rc = row(payload, &r);
    }
    return finish_read(st, s, step, rc);
}

int sako__store_read_users(sako_store *st, int (*begin)(void *payload, size_t n),
                           int (*row)(void *payload, const sako_user_row *r), void *payload)
{
    sqlite3_stmt *s;
    int rc = start_read(st, "SELECT count(*) FROM users",
                        "SELECT id, n_events, last_event_at, checksum FROM users", begin,
                        payload, &s);
    if (rc)
        return rc;
    int step = SQLITE_DONE;
    while (rc == SAKO_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        sako_user_row r = { sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1),
                            sqlite3_column_int64(s, 2) };
        int64_t ints[3] = { r.id, sqlite3_column_int64(s, 1), r.last_event_at };
        if ((rc = check_row(s, 3, user_row_checksum(ints), "user", r.id)) == SAKO_OK)
            rc = row(payload, &r);
    }
    return finish_read(st, s, step, rc);
}

int sako__store_read_category_demand(sako_store *st,
                                     int (*row)(void *payload, const sako_category_demand_row *r),
                                     void *payload)
{
    sqlite3_stmt *s;
    int rc = prepare_read(st, "SELECT id, demand_mean, demand_strength, demand_share FROM categories", &s);
    if (rc)
        return rc;
    int step = SQLITE_DONE;
    while (rc == SAKO_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        sako_category_demand_row r = { sqlite3_column_int64(s, 0), sqlite3_column_double(s, 1),
                                       sqlite3_column_double(s, 2), sqlite3_column_double(s, 3) };
        rc = row(payload, &r);
    }
    return finish_read(st, s, step, rc);
}

/* SAKO_CORRUPT naming the batch if its checksum is missing (from checked_from on) or
 * does not match; `s` is positioned on the row (columns as in read_batches). */
static int check_batch(sqlite3_stmt *s, int64_t seq, int64_t n, const void *blob, size_t bytes,
                       const void *ob, size_t obytes, int64_t checked_from)
{
    if (sqlite3_column_type(s, 5) == SQLITE_NULL) {
        if (checked_from > 0 && seq >= checked_from)
            return sako__error(SAKO_CORRUPT, "event log: batch %lld has lost its checksum",
                               (long long)seq);
        return SAKO_OK; /* logged before 0.3 */
    }
    int64_t stored = sqlite3_column_int64(s, 5);
    uint32_t got = batch_checksum(seq, n, sqlite3_column_int64(s, 4), blob, bytes, ob, obytes,
                                  sqlite3_column_type(s, 3) != SQLITE_NULL);
    if (stored != (int64_t)got)
        return sako__error(SAKO_CORRUPT, "event log: batch %lld is damaged (checksum %08llx, "
                           "stored %08llx)", (long long)seq, (unsigned long long)got,
                           (unsigned long long)stored);
    return SAKO_OK;
}

int sako__store_read_batches(sako_store *st, int64_t after_batch,
                             int (*batch)(void *payload, int64_t seq, const sako_event *ev,
                                          const int64_t *order_ids, size_t n),
                             void *payload)
{
    return sako__store_read_batch_range(st, after_batch, INT64_MAX, 0, NULL, batch, payload);
}

int sako__store_read_batch_range(sako_store *st, int64_t after_batch, int64_t upto_batch,
                                 size_t max_events, int64_t *last_out,
                                 int (*batch)(void *payload, int64_t seq, const sako_event *ev,
                                              const int64_t *order_ids, size_t n),
                                 void *payload)
{
    size_t read = 0;
    if (last_out)
        *last_out = upto_batch;
    int64_t checked_from = 0;
    int rc = query_kept(st, Q_CHECKED_FROM,
                        "SELECT value FROM sako_meta WHERE key = 'checksum_from_batch'",
                       &checked_from);
    if (rc)
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(st->db, "SELECT seq, n_events, events, order_ids, created_at, checksum "
                            "FROM event_batches WHERE seq > ?1 AND seq <= ?2 ORDER BY seq", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return prepare_failed(st->db, rc, "reading the event log");
    sqlite3_bind_int64(s, 1, after_batch);
    sqlite3_bind_int64(s, 2, upto_batch);
    sako_event *events = NULL;
    int64_t *orders = NULL;
    size_t cap = 0;
    int status = SAKO_OK;
    while (status == SAKO_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(s, 1);
        const void *blob = sqlite3_column_blob(s, 2);
        size_t bytes = (size_t)sqlite3_column_bytes(s, 2);
        if (n < 0 || n > SAKO_MAX_BATCH) {
            status = sako__error(SAKO_CORRUPT, "event log: batch %lld claims %lld events",
                                 (long long)sqlite3_column_int64(s, 0), (long long)n);
            break;
        }
        if ((size_t)n > cap) {
            free(events);
            free(orders);
            cap = (size_t)n;
            events = malloc(cap * sizeof *events);
            orders = malloc(cap * sizeof *orders);
            if (!events || !orders) {
                status = sako__error(SAKO_NOMEM, "out of memory replaying the event log");
                break;
            }
        }
        int64_t seq = sqlite3_column_int64(s, 0);
        const unsigned char *ob = sqlite3_column_blob(s, 3);
        size_t obytes = (size_t)sqlite3_column_bytes(s, 3);
        if ((status = check_batch(s, seq, n, blob, bytes, ob, obytes, checked_from)))
            break;
        if (n == 0)
            continue;
        if ((status = decode_events(blob, bytes, events, (size_t)n)))
            break;
        if (sqlite3_column_type(s, 3) != SQLITE_NULL) {
            if (obytes != (size_t)n * 8) {
                status = sako__error(SAKO_CORRUPT, "event log: batch %lld has %zu bytes of order ids "
                                     "for %lld events", (long long)seq, obytes, (long long)n);
                break;
            }
            for (size_t i = 0; i < (size_t)n; i++) {
                orders[i] = get64(ob + 8 * i);
                if (orders[i] < 0 || orders[i] > SAKO_ID_MAX) {
                    status = sako__error(SAKO_CORRUPT, "event log: batch %lld has a bad order id",
                                         (long long)seq);
                    break;
                }
            }
            if (status)
                break;
        }
        status = batch(payload, seq, events, sqlite3_column_type(s, 3) == SQLITE_NULL ? NULL : orders,
                       (size_t)n);
        read += (size_t)n;
        if (status == SAKO_OK && max_events && read >= max_events) {
            /* Stop here (the statement's read transaction ends with it). */
            if (last_out)
                *last_out = seq;
            rc = SQLITE_DONE;
            break;
        }
    }
    free(events);
    free(orders);
    if (status == SAKO_OK && rc != SQLITE_DONE)
        status = read_failed(st, rc, "reading the event log");
    sqlite3_finalize(s);
    return status;
}

/* ------------------------------------------------ the log checkpoint (compaction) */

static const char *const log_part_name[] = { "head", "items", "users" };

const char *sako__store_log_part_name(int part)
{
    return part >= 0 && part < 3 ? log_part_name[part] : "unknown part";
}

/* A chunk's checksum covers the checkpoint it belongs to (batch), its place in it
 * (part, chunk) and its size, so that a chunk of another checkpoint, or one moved
 * or cut short, does not pass. */
uint32_t sako__store_log_chunk_checksum(int64_t batch, int part, int64_t chunk, const void *data,
                                       size_t bytes)
{
    unsigned char head[32];
    put64(head, batch);
    put64(head + 8, part);
    put64(head + 16, chunk);
    put64(head + 24, (int64_t)bytes);
    return sako__checksum_update(sako__checksum_update(0, head, sizeof head), data, bytes);
}

/* One chunk of a checksummed blob set (see chunk_set below), replacing any at its place:
 * `sql` inserts key, part, chunk, data and checksum as ?1..?5; `what` names the write
 * in an error. */
static int write_checked_chunk(sako_store *st, const char *sql, int64_t key, int part,
                               int64_t chunk, const void *data, size_t bytes,
                               uint32_t (*checksum)(int64_t key, int part, int64_t chunk,
                                                    const void *data, size_t bytes),
                               const char *what)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, key);
        sqlite3_bind_int(s, 2, part);
        sqlite3_bind_int64(s, 3, chunk);
        sqlite3_bind_blob64(s, 4, bytes ? data : "", bytes, SQLITE_STATIC);
        sqlite3_bind_int64(s, 5, checksum(key, part, chunk, data, bytes));
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(st->db, rc, what);
}

int sako__store_write_log_chunk(sako_store *st, int64_t batch, int part, int64_t chunk,
                                const void *data, size_t bytes)
{
    return write_checked_chunk(st, "INSERT OR REPLACE INTO log_checkpoint(batch, part, chunk,"
                               " data, checksum) VALUES(?1, ?2, ?3, ?4, ?5)", batch, part, chunk,
                               data, bytes, sako__store_log_chunk_checksum,
                               "writing the log checkpoint");
}

/* The chunks of one checksummed blob set in (part, chunk) order, each verified before
 * `chunk` sees it: `sql` selects part, chunk, data and checksum for the key ?1 (a log
 * checkpoint's batch, a training's serial); `label` names the set in a damage report. */
typedef struct chunk_set {
    const char *sql;
    int64_t key;
    const char *label;
    uint32_t (*checksum)(int64_t key, int part, int64_t chunk, const void *data, size_t bytes);
    const char *(*part_name)(int part);
} chunk_set;

static int read_checked_chunks(sako_store *st, const chunk_set *set,
                               int (*chunk)(void *payload, int part, int64_t n,
                                            const void *data, size_t bytes),
                               void *payload)
{
    sqlite3_stmt *s;
    int rc = prepare_read(st, set->sql, &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, set->key);
    int step = SQLITE_DONE;
    while (rc == SAKO_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        int part = sqlite3_column_int(s, 0);
        int64_t n = sqlite3_column_int64(s, 1);
        const void *data = sqlite3_column_blob(s, 2);
        size_t bytes = (size_t)sqlite3_column_bytes(s, 2);
        int64_t stored = sqlite3_column_int64(s, 3);
        uint32_t got = set->checksum(set->key, part, n, data, bytes);
        if (stored != (int64_t)got)
            rc = sako__error(SAKO_CORRUPT, "%s: %s chunk %lld is damaged (checksum %08llx, "
                             "stored %08llx)", set->label, set->part_name(part), (long long)n,
                             (unsigned long long)got, (unsigned long long)stored);
        else
            rc = chunk(payload, part, n, data, bytes);
    }
    return finish_read(st, s, step, rc);
}

int sako__store_read_log_chunks(sako_store *st, int64_t batch,
                                int (*chunk)(void *payload, int part, int64_t n, const void *data,
                                             size_t bytes),
                                void *payload)
{
    char label[64];
    snprintf(label, sizeof label, "log checkpoint at batch %lld", (long long)batch);
    chunk_set set = { "SELECT part, chunk, data, checksum FROM log_checkpoint"
                      " WHERE batch = ?1 ORDER BY part, chunk",
                      batch, label, sako__store_log_chunk_checksum, sako__store_log_part_name };
    return read_checked_chunks(st, &set, chunk, payload);
}

/* ------------------------------------------------ matrix factors (schema 5) */

static const char *const mf_part_name[] = { "head", "items", "users" };

const char *sako__store_mf_part_name(int part)
{
    return part >= 0 && part < 3 ? mf_part_name[part] : "unknown part";
}

/* As a log checkpoint chunk's, with the training's serial in place of the batch. */
uint32_t sako__store_mf_chunk_checksum(int64_t serial, int part, int64_t chunk, const void *data,
                                      size_t bytes)
{
    unsigned char head[33];
    head[0] = 'M';
    put64(head + 1, serial);
    put64(head + 9, part);
    put64(head + 17, chunk);
    put64(head + 25, (int64_t)bytes);
    return sako__checksum_update(sako__checksum_update(0, head, sizeof head), data, bytes);
}

int sako__store_mf_switch(sako_store *st, int64_t serial)
{
    return sako__store_set_meta_int(st, "mf_serial", serial);
}

int sako__store_mf_trim(sako_store *st, int64_t keep, int max_rows, int *done_out)
{
    *done_out = 0;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "DELETE FROM mf_factors WHERE rowid IN (SELECT rowid"
                                " FROM mf_factors WHERE serial <> ?1 LIMIT ?2)", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, keep);
        sqlite3_bind_int(s, 2, max_rows);
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return sako__error_sqlite(st->db, rc, "deleting old matrix factors");
    *done_out = sqlite3_changes(st->db) < max_rows;
    return SAKO_OK;
}

int sako__store_mf_write_chunk(sako_store *st, int64_t serial, int part, int64_t chunk,
                               const void *data, size_t bytes)
{
    return write_checked_chunk(st, "INSERT OR REPLACE INTO mf_factors(serial, part, chunk,"
                               " data, checksum) VALUES(?1, ?2, ?3, ?4, ?5)", serial, part, chunk,
                               data, bytes, sako__store_mf_chunk_checksum,
                               "writing the matrix factors");
}

int sako__store_mf_read_chunks(sako_store *st,
                               int (*chunk)(void *payload, int part, int64_t n, const void *data,
                                            size_t bytes),
                               void *payload)
{
    int64_t serial = 0;
    int rc = sako__store_read_meta_int(st, "mf_serial", &serial);
    if (rc)
        return rc;
    char label[64];
    snprintf(label, sizeof label, "matrix factors (training %lld)", (long long)serial);
    chunk_set set = { "SELECT part, chunk, data, checksum FROM mf_factors"
                      " WHERE serial = ?1 ORDER BY part, chunk",
                      serial, label, sako__store_mf_chunk_checksum, sako__store_mf_part_name };
    return read_checked_chunks(st, &set, chunk, payload);
}

int sako__store_log_switch(sako_store *st, int64_t batch, int64_t events)
{
    int rc = sako__store_set_meta_int(st, "compact_batch", batch);
    return rc ? rc : sako__store_set_meta_int(st, "compact_events", events);
}

/* Delete a few rows that the checkpoint at `batch` has made redundant: up to
 * max_rows chunks of other checkpoints first, then the oldest batches up to it. */
int sako__store_log_trim(sako_store *st, int64_t batch, int max_rows, uint64_t max_events,
                         int64_t *batches_out, int64_t *events_out, int *done_out)
{
    *batches_out = *events_out = 0;
    *done_out = 0;
    int64_t n = 0, events = 0;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "DELETE FROM log_checkpoint WHERE rowid IN (SELECT rowid"
                                " FROM log_checkpoint WHERE batch <> ?1 LIMIT ?2)", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, batch);
        sqlite3_bind_int(s, 2, max_rows);
        rc = sqlite3_step(s);
        n = sqlite3_changes(st->db);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return sako__error_sqlite(st->db, rc, "deleting an old log checkpoint");
    if (n > 0)
        return SAKO_OK;
    /* The oldest batches, up to max_rows of them and about max_events events (at
     * least one batch): each delete frees that many pages, whatever the batch sizes. */
    int64_t last = 0;
    rc = sqlite3_prepare_v2(st->db, "SELECT seq, n_events FROM event_batches WHERE seq <= ?1"
                            " ORDER BY seq LIMIT ?2", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, batch);
        sqlite3_bind_int(s, 2, max_rows);
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            last = sqlite3_column_int64(s, 0);
            events += sqlite3_column_int64(s, 1);
            n++;
            if ((uint64_t)events >= max_events)
                break;
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
        return sako__error_sqlite(st->db, rc, "compacting the event log");
    if (n == 0) {
        *done_out = 1;
        return SAKO_OK;
    }
    rc = sqlite3_prepare_v2(st->db, "DELETE FROM event_batches WHERE seq <= ?1", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, last);
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return sako__error_sqlite(st->db, rc, "compacting the event log");
    *batches_out = n;
    *events_out = events;
    return SAKO_OK;
}

int sako__store_log_info(sako_store *st, int64_t after, sako_store_log_info *out)
{
    memset(out, 0, sizeof *out);
    /* Cheap reads only (metrics call this under the writer mutex): the first batch
     * through the primary key, the page counts from the header, the checkpoint's
     * chunk sizes from their record headers. */
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, "SELECT coalesce(min(seq), 0) FROM event_batches"
                                " WHERE seq > ?1", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, after);
        if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            out->first_batch = sqlite3_column_int64(s, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(st->db, "SELECT coalesce(sum(length(data)), 0) FROM log_checkpoint"
                                " WHERE batch = ?1", -1, &s, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(s, 1, after);
            if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                out->checkpoint_bytes = sqlite3_column_int64(s, 0);
                rc = SQLITE_OK;
            }
        }
        sqlite3_finalize(s);
    }
    if (rc != SQLITE_OK)
        return read_failed(st, rc, "reading the event log");
    int64_t pages = 0, page_size = 0, free_pages = 0;
    if ((rc = query_int(st, "PRAGMA page_count", &pages)) ||
        (rc = query_int(st, "PRAGMA page_size", &page_size)) ||
        (rc = query_int(st, "PRAGMA freelist_count", &free_pages)))
        return rc;
    out->file_bytes = pages * page_size;
    out->free_bytes = free_pages * page_size;
    return SAKO_OK;
}

/* ------------------------------------------------ the WAL checkpointer
 *
 * SQLite's automatic checkpoint runs in the commit that takes the WAL past 1000
 * pages: that commit (some sako_update) copies every page the WAL holds into the
 * database file and syncs it, after a large write (a state checkpoint of most of a
 * 1M-item catalog, a retrain's last transaction) hundreds of milliseconds under the
 * writer mutex. Instead, the writer's connection has a WAL hook in its place that
 * wakes a thread of this store's: on a connection of its own it runs passive
 * checkpoints, which take no lock a writer needs (the writer goes on appending to
 * the WAL meanwhile; a later write restarts the WAL once a checkpoint has copied all
 * of it). The thread starts on the first WAL past the bound, so a small database
 * never has one; if it cannot start or open its connection, or the WAL grows past
 * SAKO_STORE_WAL_PAGES_MAX all the same, the writer checkpoints as SQLite would.
 * The close stops it before the writer's connection closes (and checkpoints). */

struct sako_store_ckpt {
    pthread_t thread;
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    int pending, stop, failed;  /* under the mutex */
    int durability;
    long runs;                  /* atomic */
    char path[];
};

/* The checkpointer's own connection, reading and writing the same file; NULL if it
 * cannot be opened. It never checkpoints on close (the writer's close does). */
static sqlite3 *ckpt_open(const sako_store_ckpt *c)
{
    static const char *const sync[] = { "PRAGMA synchronous = FULL", "PRAGMA synchronous = NORMAL",
                                        "PRAGMA synchronous = OFF" };
    sqlite3 *db = NULL;
    int ok = sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK &&
             sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) == SQLITE_OK &&
             sqlite3_exec(db, sync[c->durability], NULL, NULL, NULL) == SQLITE_OK &&
             /* a first read opens the WAL: a checkpoint on a connection that has not
              * read the file yet does nothing */
             sqlite3_exec(db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok) {
        sqlite3_close_v2(db);
        return NULL;
    }
    return db;
}

static void *ckpt_main(void *arg)
{
    sako_store_ckpt *c = arg;
    sqlite3 *db = ckpt_open(c);
    pthread_mutex_lock(&c->mutex);
    c->failed = db == NULL;
    while (db) {
        while (!c->pending && !c->stop)
            pthread_cond_wait(&c->wake, &c->mutex);
        if (c->stop)
            break;
        c->pending = 0;
        pthread_mutex_unlock(&c->mutex);
        /* Best effort: a failure leaves the pages in the WAL for the next one. */
        sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
        __atomic_add_fetch(&c->runs, 1, __ATOMIC_RELAXED);
        pthread_mutex_lock(&c->mutex);
    }
    pthread_mutex_unlock(&c->mutex);
    sqlite3_close_v2(db);
    return NULL;
}

/* Wake the checkpointer, starting it the first time: 0 if there is none (the
 * caller checkpoints itself). Called by the writer (under the engine's writer
 * mutex). */
static int ckpt_wake(sako_store *st)
{
    if (st->ckpt_failed)
        return 0;
    sako_store_ckpt *c = st->ckpt;
    if (!c) {
        const char *path = sqlite3_db_filename(st->db, "main");
        size_t len = path ? strlen(path) : 0;
        if (!len || !(c = calloc(1, sizeof *c + len + 1))) {
            st->ckpt_failed = 1;
            return 0;
        }
        memcpy(c->path, path, len + 1);
        c->durability = st->durability;
        c->pending = 1;
        int made = pthread_mutex_init(&c->mutex, NULL) == 0;
        made += made && pthread_cond_init(&c->wake, NULL) == 0;
        made += made == 2 && pthread_create(&c->thread, NULL, ckpt_main, c) == 0;
        if (made == 3) {
            st->ckpt = c;
            return 1;
        }
        if (made == 2)
            pthread_cond_destroy(&c->wake);
        if (made >= 1)
            pthread_mutex_destroy(&c->mutex);
        free(c);
        st->ckpt_failed = 1;
        return 0;
    }
    pthread_mutex_lock(&c->mutex);
    int running = !c->failed;
    c->pending = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mutex);
    return running;
}

static void ckpt_stop(sako_store *st)
{
    sako_store_ckpt *c = st->ckpt;
    if (!c)
        return;
    pthread_mutex_lock(&c->mutex);
    c->stop = 1;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->mutex);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->mutex);
    free(c);
    st->ckpt = NULL;
}

long sako__store_ckpt_runs(sako_store *st)
{
    return st->ckpt ? __atomic_load_n(&st->ckpt->runs, __ATOMIC_RELAXED) : 0;
}

/* In place of SQLite's automatic checkpoint, after each commit of the writer's
 * connection (`pages`: the WAL's size in pages). */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
    sako_store *st = arg;
    if (pages < SAKO_STORE_WAL_PAGES || (pages < SAKO_STORE_WAL_PAGES_MAX && ckpt_wake(st)))
        return SQLITE_OK;
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    return SQLITE_OK;
}

void sako__store_wal_checkpoint(sako_store *st)
{
    if (st->in_memory)
        return;
    if (!st->ckpt || !ckpt_wake(st))
        sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

int sako__store_read_meta_int(sako_store *st, const char *key, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = prepare_read(st, "SELECT value FROM sako_meta WHERE key = ?1", &s);
    if (rc)
        return rc;
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int step = sqlite3_step(s);
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (step == SQLITE_ROW)
        return SAKO_OK;
    if (step == SQLITE_DONE)
        return sako__error(SAKO_CORRUPT, "database damaged: metadata %s is missing", key);
    return read_failed(st, step, "reading the database");
}

/* A replica's log position (replica.c): absent until its first `_at` call. */
int sako__store_read_log_position(sako_store *st, int64_t *out)
{
    sqlite3_stmt *s = NULL;
    int rc = prepare_read(st, "SELECT value FROM sako_meta WHERE key = 'log_position'", &s);
    if (rc)
        return rc;
    int step = sqlite3_step(s);
    *out = step == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return step == SQLITE_ROW || step == SQLITE_DONE ? SAKO_OK
                                                     : read_failed(st, step, "reading the log position");
}

/* ------------------------------------------------ a second connection (retrain) */

int sako__store_open_reader(const sako_store *st, int busy_timeout_ms, sako_store *reader)
{
    memset(reader, 0, sizeof *reader);
    reader->lock_fd = -1;
    const char *path = st->db && !st->in_memory ? sqlite3_db_filename(st->db, "main") : NULL;
    if (!path || !*path)
        return sako__error(SAKO_MISUSE, "an in-memory database has no second connection");
    int rc = sqlite3_open_v2(path, &reader->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int status = sako__error_sqlite(reader->db, rc, path);
        sako__store_close(reader);
        return status;
    }
    sqlite3_extended_result_codes(reader->db, 1);
    sqlite3_busy_timeout(reader->db, busy_timeout_ms);
    return SAKO_OK;
}
int sako__store_read_policy(sako_store *st, sako_policy *p, sako_store_activation *a)
{
    sqlite3_stmt *s;
    int rc = prepare_read(st, "SELECT key, value FROM sako_meta WHERE key LIKE 'policy\\_%' ESCAPE '\\'", &s);
    if (rc)
        return rc;
    unsigned seen = 0;
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        double r = sqlite3_column_double(s, 1);
        int64_t i = sqlite3_column_int64(s, 1);
        if (!k)
            continue;
#define META(name, bit, assign) else if (strcmp(k, name) == 0) { assign; seen |= 1u << bit; }
        if (0) {}
        META("policy_every_events", 0, p->every_events = (uint64_t)i)
        META("policy_every_seconds", 1, p->every_seconds = (uint64_t)i)
        META("policy_drift_fraction", 2, p->drift_fraction = r)
        META("policy_drift_window", 3, p->drift_window = (uint64_t)i)
        META("policy_drift_min_impressions", 4, p->drift_min_impressions = (uint64_t)i)
        META("policy_activated_at", 5, a->at = i)
        META("policy_activated_events", 6, a->n_events = (uint64_t)i)
        META("policy_activated_batch", 7, a->batch = i)
        META("policy_gate_margin", 8, p->gate_margin = r)
        META("policy_gate_holdout_events", 9, p->gate_holdout_events = (uint64_t)i)
        META("policy_gate_holdout_fraction", 10, p->gate_holdout_fraction = r)
        META("policy_gate_min_baskets", 11, p->gate_min_baskets = (uint64_t)i)
        META("policy_keep_versions", 12, p->keep_versions = (uint64_t)i)
#undef META
    }
    if ((rc = finish_read(st, s, step, SAKO_OK)))
        return rc;
    if (seen != (1u << 13) - 1)
        return sako__error(SAKO_CORRUPT, "database damaged: retrain policy incomplete (mask %#x)", seen);
    return SAKO_OK;
}

/* ------------------------------------------------------ online backup */

/* The destination is a private new file that becomes the backup only once it is
 * complete and synced (backup.c renames it into place), so it needs no journal of
 * its own and no sync of its own: a crash mid-copy leaves a partial file that was
 * never the backup. */
struct sako_store_backup {
    sqlite3 *dest;
    sqlite3_backup *copy;
    int done;
};

int sako__store_backup_begin(sako_store *st, const char *dest_path, sako_store_backup **out)
{
    sako_store_backup *bk = calloc(1, sizeof *bk);
    if (!bk)
        return sako__error(SAKO_NOMEM, "out of memory starting a backup");
    int rc = sqlite3_open_v2(dest_path, &bk->dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(bk->dest, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;",
                          NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int status = sako__error_sqlite(bk->dest, rc, dest_path);
        sako__store_backup_free(bk);
        return status == SAKO_CORRUPT || status == SAKO_ERROR ? SAKO_IO : status;
    }
    bk->copy = sqlite3_backup_init(bk->dest, "main", st->db, "main");
    if (!bk->copy) {
        int status = sako__error_sqlite(bk->dest, sqlite3_errcode(bk->dest), "starting a backup");
        sako__store_backup_free(bk);
        return status;
    }
    *out = bk;
    return SAKO_OK;
}

int sako__store_backup_step(sako_store_backup *bk, int pages, int *done_out)
{
    int rc = sqlite3_backup_step(bk->copy, pages);
    bk->done = rc == SQLITE_DONE;
    *done_out = bk->done;
    if (rc == SQLITE_OK || rc == SQLITE_DONE)
        return SAKO_OK;
    /* BUSY/LOCKED are transient (another connection writes the file); the caller
     * retries. Anything else ends the copy. */
    return sako__error_sqlite(bk->dest, rc, "copying pages to the backup");
}

int sako__store_backup_finish(sako_store_backup *bk)
{
    if (!bk->copy)
        return SAKO_ERROR;
    int rc = sqlite3_backup_finish(bk->copy);
    bk->copy = NULL;
    if (rc != SQLITE_OK)
        return sako__error_sqlite(bk->dest, rc, "finishing the backup");
    return bk->done ? SAKO_OK : sako__error(SAKO_ERROR, "backup ended before the copy was complete");
}

void sako__store_backup_free(sako_store_backup *bk)
{
    if (!bk)
        return;
    if (bk->copy)
        sqlite3_backup_finish(bk->copy); /* only after a failure, see backup.c */
    sqlite3_close_v2(bk->dest);
    free(bk);
}

/* ------------------------------------------------------------- verify */

static char *side_name(const char *path, const char *suffix)
{
    size_t len = strlen(path), slen = strlen(suffix);
    char *name = malloc(len + slen + 1);
    if (name) {
        memcpy(name, path, len);
        memcpy(name + len, suffix, slen + 1);
    }
    return name;
}

/* "file:" URI of path, immutable: percent-encode what a URI would read otherwise. */
static char *immutable_uri(const char *path)
{
    size_t len = strlen(path);
    char *uri = malloc(5 + 3 * len + sizeof "?immutable=1");
    if (!uri)
        return NULL;
    char *p = uri;
    memcpy(p, "file:", 5);
    p += 5;
    for (const char *c = path; *c; c++) {
        if (*c == '%' || *c == '?' || *c == '#') {
            p += sprintf(p, "%%%02X", (unsigned char)*c);
        } else {
            *p++ = *c;
        }
    }
    strcpy(p, "?immutable=1");
    return uri;
}

static int count_batch(void *payload, int64_t seq, const sako_event *ev, const int64_t *order_ids,
                       size_t n)
{
    (void)seq, (void)ev, (void)order_ids;
    ((sako_store_verify *)payload)->n_events += n;
    return SAKO_OK;
}

/* integrity_check did not say "ok": damage, unless what stopped it was memory or a
 * read (it reports those in its rows too, as "out of memory" or "error code=N"). */
static int integrity_failed(sqlite3 *db, int rc, const char *path, const char *text)
{
    int status = SAKO_CORRUPT;
    if (rc != SQLITE_OK) {
        status = sako__error_sqlite(db, rc, "integrity_check");
        if (status != SAKO_NOMEM && status != SAKO_IO && status != SAKO_BUSY)
            status = SAKO_CORRUPT;
    } else if (text && strstr(text, "out of memory")) {
        status = SAKO_NOMEM;
    } else if (text) {
        const char *code = strstr(text, "error code=");
        int c = code ? atoi(code + 11) & 0xff : 0;
        if (c == SQLITE_NOMEM)
            status = SAKO_NOMEM;
        else if (c == SQLITE_IOERR)
            status = SAKO_IO;
    }
    return sako__error(status, "%s: integrity_check%s: %s", path,
                       status == SAKO_CORRUPT ? "" : " could not finish",
                       text ? text : sqlite3_errmsg(db));
}

static int skip_begin(void *payload, size_t n) { (void)payload, (void)n; return SAKO_OK; }
static int skip_category(void *payload, const sako_category_row *r) { (void)payload, (void)r; return SAKO_OK; }
static int skip_item(void *payload, const sako_item_row *r) { (void)payload, (void)r; return SAKO_OK; }
static int skip_user(void *payload, const sako_user_row *r) { (void)payload, (void)r; return SAKO_OK; }

static int count_chunk(void *payload, int part, int64_t n, const void *data, size_t bytes)
{
    (void)n, (void)data, (void)bytes;
    sako_store_verify *v = payload;
    v->n_chunks++;
    v->checkpoint_head |= part == SAKO_LOG_PART_HEAD;
    return SAKO_OK;
}

static int count_mf_chunk(void *payload, int part, int64_t n, const void *data, size_t bytes)
{
    (void)payload, (void)part, (void)n, (void)data, (void)bytes;
    return SAKO_OK;
}

/* Reads and checks, never writes: a file no engine has open is read under its lock
 * (so none can start meanwhile) as immutable, creating no -wal or -shm; a file an
 * engine has open is read through its WAL like any reader. */
static int verify_version(void *payload, const sako_store_version *v, const sako_store_fit *fit,
                          int damaged)
{
    (void)payload;
    (void)fit;
    return damaged ? sako__error(SAKO_CORRUPT, "database damaged: model version %lld fails its "
                                 "checksum", (long long)v->version)
                   : SAKO_OK;
}

static int verify_open(sako_store *st, const char *path, sako_store_verify *out)
{
    int64_t version = 0, n = 0, n_sum = 0;
    int is_fresh = 0, rc;
    if ((rc = identify(st, path, &version, &is_fresh)))
        return rc;
    if (is_fresh)
        return sako__error(SAKO_CORRUPT, "%s is an empty SQLite database, not a libsako one", path);
    /* A page integrity_check could not get for want of memory or a failed read is
     * reported like damage ("failed to get page N"), often without saying why: a
     * failed check is run once more, and only a second failure counts. */
    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *s = NULL;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA integrity_check(20)", -1, &s, NULL);
        if (rc != SQLITE_OK)
            return integrity_failed(st->db, rc, path, NULL);
        rc = sqlite3_step(s);
        const char *first = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
        if (first && strcmp(first, "ok") == 0) {
            sqlite3_finalize(s);
            break;
        }
        if (attempt > 0) {
            rc = integrity_failed(st->db, rc == SQLITE_ROW ? SQLITE_OK : rc, path, first);
            sqlite3_finalize(s);
            return rc;
        }
        sqlite3_finalize(s);
    }
    if ((rc = query_int(st, "SELECT count(*) FROM event_batches", &n)) ||
        (rc = query_int(st, "SELECT coalesce(sum(n_events), 0) FROM event_batches", &n_sum)))
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    out->n_batches = (uint64_t)n;
    out->n_events = (uint64_t)n_sum;
    if (version < 3) /* written before checksums (0.2): integrity_check is all there is */
        return SAKO_OK;
    out->n_events = 0; /* counted again as each batch is read and checked */
    if ((rc = query_int(st, "SELECT count(checksum) FROM event_batches", &n)))
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    out->n_checksummed = (uint64_t)n;
    if ((rc = sako__store_read_batches(st, 0, count_batch, out)) || version < 4)
        return rc;
    /* The regular checkpoint's rows, each against its checksum. */
    if ((rc = sako__store_read_categories(st, skip_begin, skip_category, NULL)) ||
        (rc = sako__store_read_items(st, skip_begin, skip_item, NULL)) ||
        (rc = sako__store_read_users(st, skip_begin, skip_user, NULL)))
        return rc;
    /* Every model version's stored model against its checksum. */
    if ((rc = sako__store_versions_read(st, -1, verify_version, NULL)))
        return rc;
    /* The matrix factors (schema 5): every chunk against its checksum. */
    if (version >= 5 && (rc = sako__store_mf_read_chunks(st, count_mf_chunk, NULL)))
        return rc;
    /* The log checkpoint the file starts from: every chunk against its checksum. */
    int64_t batch = 0;
    if ((rc = sako__store_read_meta_int(st, "compact_batch", &batch)) || batch == 0)
        return rc;
    out->compact_batch = batch;
    if ((rc = sako__store_read_log_chunks(st, batch, count_chunk, out)))
        return rc;
    if (!out->checkpoint_head)
        return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: its head is missing "
                           "(the batches up to it were deleted)", (long long)batch);
    return SAKO_OK;
}

int sako__store_verify(const char *path, sako_store_verify *out)
{
    memset(out, 0, sizeof *out);
    int missing;
    int rc = check_file(path, 0, 0, &missing);
    if (rc)
        return rc;
    if (access(path, F_OK) != 0)
        return sako__error(SAKO_IO, "%s: %s", path, strerror(ENOENT));
    sako_store st;
    memset(&st, 0, sizeof st);
    st.lock_fd = -1;
    rc = lock_file(&st, path);
    /* No lock file can be made (a backup on read-only media): no engine can write
     * there either; one that already holds the file shows by its -wal. */
    int locked = rc == SAKO_OK, live = rc == SAKO_BUSY;
    if (rc == SAKO_NOMEM)
        return rc;
    char *wal = side_name(path, "-wal"), *shm = side_name(path, "-shm");
    char *uri = immutable_uri(path);
    if (!wal || !shm || !uri) {
        rc = sako__error(SAKO_NOMEM, "out of memory");
        goto done;
    }
    if (!locked && !live && access(wal, F_OK) == 0)
        live = 1;
    int had_shm = access(shm, F_OK) == 0;
    int immutable = !live && access(wal, F_OK) != 0;
    rc = sqlite3_open_v2(immutable ? uri : path, &st.db,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = sako__error_sqlite(st.db, rc, path);
    } else {
        sqlite3_db_config(st.db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
        rc = verify_open(&st, path, out);
    }
    forget_statements(&st); /* (read_batches keeps a query on it) */
    sqlite3_close_v2(st.db);
    st.db = NULL;
    /* A crashed engine's -wal was read in place; the -shm that reading made goes. */
    if (locked && !had_shm)
        unlink(shm);
done:
    free(wal);
    free(shm);
    free(uri);
    sako__store_refuse(&st); /* a lock file made for this check goes too */
    if (st.lock_fd >= 0)
        close(st.lock_fd);
    return rc;
}

/* ------------------------------------------------------ model versions */

/* A version's model, little-endian: "SKF1", the row count (8 bytes), the root
 * mean, the epoch's time, the demand constants, the 20 parameters, then 40 bytes
 * per category (id, prior mean, demand mean, strength, share). The checksum covers
 * the version number too, so a model copied into another row is refused. */
#define FIT_PARAMS 20
#define FIT_HEAD (4 + 8 + 8 + 8 + 5 * 8 + FIT_PARAMS * 8)
#define FIT_ROW 40

static void put_real(unsigned char *p, double v)
{
    int64_t i;
    memcpy(&i, &v, sizeof i);
    put64(p, i);
}

static double get_real(const unsigned char *p)
{
    int64_t i = get64(p);
    double v;
    memcpy(&v, &i, sizeof v);
    return v;
}

/* The parameters in a fixed order, each as 8 bytes (ints as int64, reals as doubles). */
static void params_encode(const sako_model_params *p, unsigned char *out)
{
    double r[] = { p->reward[SAKO_EVENT_CLICK], p->reward[SAKO_EVENT_CART],
                   p->reward[SAKO_EVENT_PURCHASE], p->penalty_impression, p->prior_strength,
                   p->category_shrinkage, p->half_life_days, p->personal_strength,
                   p->personal_temperature, p->due_exponent, p->affinity_strength,
                   p->lift_strength, p->decay_half_life_days };
    int64_t i[] = { p->prior, (int64_t)p->prior_refresh_events, p->organic_demand,
                    (int64_t)p->demand_min_purchases, p->personal, p->personal_min_baskets,
                    p->basket_gap_ms };
    for (size_t k = 0; k < sizeof r / sizeof *r; k++)
        put_real(out + 8 * k, r[k]);
    for (size_t k = 0; k < sizeof i / sizeof *i; k++)
        put64(out + 8 * (13 + k), i[k]);
}

static void params_decode(const unsigned char *in, sako_model_params *p)
{
    memset(p, 0, sizeof *p);
    p->reward[SAKO_EVENT_CLICK] = get_real(in);
    p->reward[SAKO_EVENT_CART] = get_real(in + 8);
    p->reward[SAKO_EVENT_PURCHASE] = get_real(in + 16);
    p->penalty_impression = get_real(in + 24);
    p->prior_strength = get_real(in + 32);
    p->category_shrinkage = get_real(in + 40);
    p->half_life_days = get_real(in + 48);
    p->personal_strength = get_real(in + 56);
    p->personal_temperature = get_real(in + 64);
    p->due_exponent = get_real(in + 72);
    p->affinity_strength = get_real(in + 80);
    p->lift_strength = get_real(in + 88);
    p->decay_half_life_days = get_real(in + 96);
    p->prior = (int)get64(in + 104);
    p->prior_refresh_events = (uint64_t)get64(in + 112);
    p->organic_demand = (int)get64(in + 120);
    p->demand_min_purchases = (uint64_t)get64(in + 128);
    p->personal = (int)get64(in + 136);
    p->personal_min_baskets = (uint32_t)get64(in + 144);
    p->basket_gap_ms = get64(in + 152);
}

static unsigned char *fit_encode(const sako_store_fit *f, size_t *bytes_out)
{
    size_t bytes = FIT_HEAD + f->n_rows * FIT_ROW;
    unsigned char *b = malloc(bytes), *p = b;
    if (!b)
        return NULL;
    memcpy(p, "SKF1", 4);
    put64(p + 4, (int64_t)f->n_rows);
    put_real(p + 12, f->root_mean);
    put64(p + 20, f->epoch_at);
    put64(p + 28, f->demand.active);
    put_real(p + 36, f->demand.calibration);
    put_real(p + 44, f->demand.baskets);
    put_real(p + 52, f->demand.root_mean);
    put_real(p + 60, f->demand.root_strength);
    params_encode(&f->params, p + 68);
    p += FIT_HEAD;
    for (size_t i = 0; i < f->n_rows; i++, p += FIT_ROW) {
        const sako_store_fit_row *r = &f->rows[i];
        put64(p, r->id);
        put_real(p + 8, r->prior_mean);
        put_real(p + 16, r->demand_mean);
        put_real(p + 24, r->demand_strength);
        put_real(p + 32, r->demand_share);
    }
    *bytes_out = bytes;
    return b;
}

static int fit_decode(const unsigned char *b, size_t bytes, sako_store_fit *f)
{
    memset(f, 0, sizeof *f);
    if (bytes < FIT_HEAD || memcmp(b, "SKF1", 4) != 0)
        return SAKO_CORRUPT;
    int64_t n = get64(b + 4);
    if (n < 0 || (uint64_t)n != (bytes - FIT_HEAD) / FIT_ROW || (bytes - FIT_HEAD) % FIT_ROW)
        return SAKO_CORRUPT;
    f->root_mean = get_real(b + 12);
    f->epoch_at = get64(b + 20);
    f->demand.active = (int)get64(b + 28);
    f->demand.calibration = get_real(b + 36);
    f->demand.baskets = get_real(b + 44);
    f->demand.root_mean = get_real(b + 52);
    f->demand.root_strength = get_real(b + 60);
    params_decode(b + 68, &f->params);
    f->n_rows = (size_t)n;
    f->rows = malloc((n ? (size_t)n : 1) * sizeof *f->rows);
    if (!f->rows)
        return SAKO_NOMEM;
    const unsigned char *p = b + FIT_HEAD;
    for (size_t i = 0; i < f->n_rows; i++, p += FIT_ROW) {
        f->rows[i].id = get64(p);
        f->rows[i].prior_mean = get_real(p + 8);
        f->rows[i].demand_mean = get_real(p + 16);
        f->rows[i].demand_strength = get_real(p + 24);
        f->rows[i].demand_share = get_real(p + 32);
    }
    return SAKO_OK;
}

static uint32_t fit_checksum(int64_t version, const void *blob, size_t bytes)
{
    unsigned char head[8];
    put64(head, version);
    return sako__checksum_update(sako__checksum_update(0, head, sizeof head), blob, bytes);
}

void sako__store_fit_free(sako_store_fit *f)
{
    if (f) {
        free(f->rows);
        f->rows = NULL;
        f->n_rows = 0;
    }
}

static int write_version(sako_store *st, const sako_store_version *v, const void *blob,
                         size_t bytes)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db,
        "INSERT INTO model_versions(version, created_at, status, pinned, reasons, verdict,"
        " first_batch, last_batch, n_events, champion, scored, score, champion_score,"
        " holdout_events, holdout_baskets, fit, checksum)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, v->version);
        sqlite3_bind_int64(s, 2, v->created_at);
        sqlite3_bind_int(s, 3, v->status);
        sqlite3_bind_int(s, 4, v->pinned);
        sqlite3_bind_int64(s, 5, v->reasons);
        /* Static: a copy (SQLITE_TRANSIENT) can fail for memory, and a failed bind
         * leaves NULL, which the NOT NULL column refused as a constraint error. The
         * verdict outlives the statement. */
        sqlite3_bind_text(s, 6, v->verdict, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 7, v->first_batch);
        sqlite3_bind_int64(s, 8, v->last_batch);
        sqlite3_bind_int64(s, 9, (int64_t)v->n_events);
        sqlite3_bind_int64(s, 10, v->champion);
        sqlite3_bind_int(s, 11, v->scored);
        /* SQLite stores NaN as NULL: a non-finite score is kept as 0 (the verdict says). */
        sqlite3_bind_double(s, 12, v->score == v->score ? v->score : 0.0);
        sqlite3_bind_double(s, 13, v->champion_score == v->champion_score ? v->champion_score : 0.0);
        sqlite3_bind_int64(s, 14, (int64_t)v->holdout_events);
        sqlite3_bind_int64(s, 15, (int64_t)v->holdout_baskets);
        sqlite3_bind_blob(s, 16, blob, (int)bytes, SQLITE_STATIC);
        sqlite3_bind_int64(s, 17, fit_checksum(v->version, blob, bytes));
        rc = sqlite3_step(s);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(st->db, rc, "recording a model version");
}

int sako__store_version_insert(sako_store *st, const sako_store_version *v,
                               const sako_store_fit *fit)
{
    size_t bytes = 0;
    unsigned char *blob = fit_encode(fit, &bytes);
    if (!blob)
        return sako__error(SAKO_NOMEM, "out of memory encoding model version %lld",
                           (long long)v->version);
    int rc = write_version(st, v, blob, bytes);
    free(blob);
    return rc;
}

int sako__store_version_activate(sako_store *st, int64_t version)
{
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE model_versions SET status = 2 WHERE status = 1;"
             " UPDATE model_versions SET status = 1 WHERE version = %lld;", (long long)version);
    return exec(st, sql, "activating a model version");
}

int sako__store_version_pin(sako_store *st, int64_t version, int pinned)
{
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE model_versions SET pinned = %d WHERE version = %lld",
             pinned != 0, (long long)version);
    int rc = exec(st, sql, "pinning a model version");
    if (rc == SAKO_OK && sqlite3_changes(st->db) == 0)
        return sako__error(SAKO_NOTFOUND, "no model version %lld", (long long)version);
    return rc;
}

int sako__store_versions_prune(sako_store *st, uint64_t keep, uint64_t *deleted_out)
{
    char sql[256];
    snprintf(sql, sizeof sql, "DELETE FROM model_versions WHERE status != 1 AND pinned = 0"
             " AND version NOT IN (SELECT version FROM model_versions ORDER BY version DESC"
             " LIMIT %lld)", (long long)keep);
    int rc = exec(st, sql, "deleting old model versions");
    if (rc == SAKO_OK && deleted_out)
        *deleted_out = (uint64_t)sqlite3_changes(st->db);
    return rc;
}

#define VERSION_COLUMNS \
    "SELECT version, created_at, status, pinned, reasons, verdict, first_batch, last_batch," \
    " n_events, champion, scored, score, champion_score, holdout_events, holdout_baskets," \
    " fit, checksum FROM model_versions "

/* A row's model when `fit` is asked for: NULL (damaged) unless its checksum holds. */
static int row_fit(sqlite3_stmt *s, int64_t version, sako_store_fit *fit, int *damaged)
{
    const void *blob = sqlite3_column_blob(s, 15);
    size_t bytes = (size_t)sqlite3_column_bytes(s, 15);
    int64_t sum = sqlite3_column_int64(s, 16);
    *damaged = 1;
    if (!blob || (int64_t)fit_checksum(version, blob, bytes) != sum)
        return SAKO_OK;
    int rc = fit_decode(blob, bytes, fit);
    if (rc == SAKO_NOMEM)
        return sako__error(SAKO_NOMEM, "out of memory reading model version %lld",
                           (long long)version);
    if (rc == SAKO_OK)
        *damaged = 0;
    else
        sako__store_fit_free(fit);
    return SAKO_OK;
}

static void row_version(sqlite3_stmt *s, sako_store_version *v)
{
    memset(v, 0, sizeof *v);
    v->version = sqlite3_column_int64(s, 0);
    v->created_at = sqlite3_column_int64(s, 1);
    v->status = sqlite3_column_int(s, 2);
    v->pinned = sqlite3_column_int(s, 3);
    v->reasons = (unsigned)sqlite3_column_int64(s, 4);
    const unsigned char *t = sqlite3_column_text(s, 5);
    snprintf(v->verdict, sizeof v->verdict, "%s", t ? (const char *)t : "");
    v->first_batch = sqlite3_column_int64(s, 6);
    v->last_batch = sqlite3_column_int64(s, 7);
    v->n_events = (uint64_t)sqlite3_column_int64(s, 8);
    v->champion = sqlite3_column_int64(s, 9);
    v->scored = sqlite3_column_int(s, 10);
    v->score = sqlite3_column_double(s, 11);
    v->champion_score = sqlite3_column_double(s, 12);
    v->holdout_events = (uint64_t)sqlite3_column_int64(s, 13);
    v->holdout_baskets = (uint64_t)sqlite3_column_int64(s, 14);
}

int sako__store_versions_read(sako_store *st, int64_t version,
                              int (*row)(void *payload, const sako_store_version *v,
                                         const sako_store_fit *fit, int damaged),
                              void *payload)
{
    char sql[512];
    if (version < 0)
        snprintf(sql, sizeof sql, VERSION_COLUMNS "ORDER BY version DESC");
    else if (version == 0)
        snprintf(sql, sizeof sql, VERSION_COLUMNS "WHERE status = 1");
    else
        snprintf(sql, sizeof sql, VERSION_COLUMNS "WHERE version = %lld", (long long)version);
    sqlite3_stmt *s;
    int rc = prepare_read(st, sql, &s);
    if (rc)
        return rc;
    int step = SQLITE_DONE, status = SAKO_OK;
    while (status == SAKO_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        sako_store_version v;
        sako_store_fit fit;
        int damaged = 1;
        memset(&fit, 0, sizeof fit);
        row_version(s, &v);
        status = row_fit(s, v.version, &fit, &damaged);
        if (status == SAKO_OK)
            status = row(payload, &v, damaged ? NULL : &fit, damaged);
        sako__store_fit_free(&fit);
    }
    return finish_read(st, s, status == SAKO_OK ? step : SQLITE_DONE, status);
}

typedef struct fit_read {
    sako_store_fit *out;
    int found, damaged;
} fit_read;

static int take_fit(void *payload, const sako_store_version *v, const sako_store_fit *fit,
                    int damaged)
{
    (void)v;
    fit_read *fr = payload;
    fr->found = 1;
    fr->damaged = damaged;
    if (fit) {
        *fr->out = *fit;
        size_t bytes = (fit->n_rows ? fit->n_rows : 1) * sizeof *fit->rows;
        if (!(fr->out->rows = malloc(bytes)))
            return sako__error(SAKO_NOMEM, "out of memory reading a model version");
        memcpy(fr->out->rows, fit->rows, fit->n_rows * sizeof *fit->rows);
    }
    return SAKO_OK;
}

int sako__store_version_fit(sako_store *st, int64_t version, sako_store_fit *out)
{
    memset(out, 0, sizeof *out);
    fit_read fr = { out, 0, 0 };
    int rc = sako__store_versions_read(st, version, take_fit, &fr);
    if (rc)
        return rc;
    if (!fr.found)
        return sako__error(SAKO_NOTFOUND, "no model version %lld", (long long)version);
    if (fr.damaged)
        return sako__error(SAKO_CORRUPT, "database damaged: model version %lld fails its "
                           "checksum", (long long)version);
    return SAKO_OK;
}

int sako__store_versions_hold(sako_store *st, int *hold_out)
{
    int64_t hold = 0;
    int rc = query_kept(st, Q_VERSIONS_HOLD,
                        "SELECT EXISTS(SELECT 1 FROM model_versions AS a WHERE a.status = 1"
                       " AND (a.pinned OR EXISTS(SELECT 1 FROM model_versions AS b"
                       " WHERE b.version > a.version)))", &hold);
    *hold_out = hold != 0;
    return rc;
}

int sako__store_version_active(sako_store *st, int64_t *version_out)
{
    return query_kept(st, Q_VERSION_ACTIVE,
                      "SELECT coalesce((SELECT version FROM model_versions WHERE status = 1), 0)",
                      version_out);
}

int sako__store_first_batch(sako_store *st, int64_t *out)
{
    return query_kept(st, Q_FIRST_BATCH, "SELECT coalesce(min(seq), 0) FROM event_batches", out);
}

int sako__store_events_between(sako_store *st, int64_t after, int64_t upto, uint64_t *events_out)
{
    char sql[160];
    int64_t n = 0;
    snprintf(sql, sizeof sql, "SELECT coalesce(sum(n_events), 0) FROM event_batches WHERE seq > %lld"
             " AND seq <= %lld", (long long)after, (long long)upto);
    int rc = query_int(st, sql, &n);
    *events_out = (uint64_t)n;
    return rc;
}

int sako__store_holdout_start(sako_store *st, int64_t upto, uint64_t events, int64_t *start_out,
                              uint64_t *held_out)
{
    *start_out = upto;
    *held_out = 0;
    if (events == 0)
        return SAKO_OK;
    sqlite3_stmt *s = NULL;
    int rc = prepare_read(st, "SELECT seq, n_events FROM event_batches WHERE seq <= ?1"
                          " ORDER BY seq DESC", &s);
    if (rc)
        return rc;
    sqlite3_bind_int64(s, 1, upto);
    int step = SQLITE_DONE;
    while (*held_out < events && (step = sqlite3_step(s)) == SQLITE_ROW) {
        *held_out += (uint64_t)sqlite3_column_int64(s, 1);
        *start_out = sqlite3_column_int64(s, 0) - 1;
    }
    return finish_read(st, s, *held_out >= events ? SQLITE_DONE : step, SAKO_OK);
}

/* The 3 -> 4 migration's C part: the model in force in a 0.3 file (its current
 * epoch: category priors, demand constants, time, parameters) becomes version
 * `model_version`, active, when the file has been retrained; a file never
 * retrained starts with no version (its first retrain is gated on finiteness). */
typedef struct adopt_state {
    sako_store_fit *fit;
    size_t cap;
    int failed;
} adopt_state;

static int adopt_begin(void *payload, size_t n)
{
    adopt_state *a = payload;
    a->fit->rows = calloc(n ? n : 1, sizeof *a->fit->rows);
    a->cap = n;
    return a->fit->rows ? SAKO_OK : sako__error(SAKO_NOMEM, "out of memory migrating models");
}

static int adopt_row(void *payload, const sako_category_row *r)
{
    adopt_state *a = payload;
    if (a->fit->n_rows < a->cap) {
        a->fit->rows[a->fit->n_rows].id = r->id;
        a->fit->rows[a->fit->n_rows++].prior_mean = r->prior_mean;
    }
    return SAKO_OK;
}

static int adopt_demand(void *payload, const sako_category_demand_row *r)
{
    adopt_state *a = payload;
    for (size_t i = 0; i < a->fit->n_rows; i++)
        if (a->fit->rows[i].id == r->id) {
            a->fit->rows[i].demand_mean = r->mean;
            a->fit->rows[i].demand_strength = r->strength;
            a->fit->rows[i].demand_share = r->share;
        }
    return SAKO_OK;
}

static int by_row_id(const void *x, const void *y)
{
    int64_t a = ((const sako_store_fit_row *)x)->id, b = ((const sako_store_fit_row *)y)->id;
    return (a > b) - (a < b);
}

static int adopt_current_model(sako_store *st)
{
    sako_store_meta m;
    memset(&m, 0, sizeof m);
    int rc = sako__store_read_meta(st, &m);
    if (rc || m.model_version <= 0)
        return rc;
    sako_store_fit fit;
    memset(&fit, 0, sizeof fit);
    adopt_state a = { &fit, 0, 0 };
    fit.root_mean = m.root_mean;
    fit.epoch_at = m.decay_epoch_at;
    fit.demand = m.demand;
    fit.params = m.params;
    if ((rc = sako__store_read_categories(st, adopt_begin, adopt_row, &a)) == SAKO_OK &&
        (rc = sako__store_read_category_demand(st, adopt_demand, &a)) == SAKO_OK) {
        qsort(fit.rows, fit.n_rows, sizeof *fit.rows, by_row_id);
        sako_store_version v;
        memset(&v, 0, sizeof v);
        v.version = m.model_version;
        v.status = 1;
        v.reasons = SAKO_RETRAIN_MANUAL;
        v.created_at = sako__store_now_ms();
        snprintf(v.verdict, sizeof v.verdict, "adopted: the model in force when the file was "
                 "upgraded to schema 4 (not gated)");
        v.n_events = m.n_events;
        if ((rc = sako__store_first_batch(st, &v.first_batch)) == SAKO_OK &&
            (rc = sako__store_last_batch(st, &v.last_batch)) == SAKO_OK)
            rc = sako__store_version_insert(st, &v, &fit);
    }
    sako__store_fit_free(&fit);
    return rc;
}

int sako__store_version_pinned(sako_store *st, int64_t version, int *pinned_out)
{
    char sql[128];
    int64_t pinned = 0;
    snprintf(sql, sizeof sql, "SELECT coalesce((SELECT pinned FROM model_versions WHERE version"
             " = %lld), 0)", (long long)version);
    int rc = query_int(st, sql, &pinned);
    *pinned_out = pinned != 0;
    return rc;
}
