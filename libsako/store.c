/* SQLite persistence: schema, identification, loading, the event log, checkpoints.
 *
 * The stored state is the last checkpoint (each item's counts, each user's totals,
 * the category priors of the current epoch) plus the event batches logged after
 * it. A batch is one row holding its events packed in a blob, written in the same
 * transaction as the bookkeeping it changes, so what was acknowledged is on disk
 * and a reopen replays the tail after the checkpoint to come back exactly. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

static const char *const schema_v1 =
    "CREATE TABLE sako_meta(key TEXT PRIMARY KEY, value NOT NULL);"
    "CREATE TABLE categories(id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL, prior_mean REAL NOT NULL);"
    "CREATE TABLE items(id INTEGER PRIMARY KEY, category_id INTEGER NOT NULL,"
    "  active INTEGER NOT NULL, added_at INTEGER NOT NULL,"
    "  n_impression REAL NOT NULL DEFAULT 0, n_click REAL NOT NULL DEFAULT 0,"
    "  n_cart REAL NOT NULL DEFAULT 0, n_purchase REAL NOT NULL DEFAULT 0,"
    "  last_event_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE users(id INTEGER PRIMARY KEY, n_events INTEGER NOT NULL,"
    "  last_event_at INTEGER NOT NULL);"
    /* One row per acknowledged sako_update() batch; events packed, see encode below. */
    "CREATE TABLE event_batches(seq INTEGER PRIMARY KEY, n_events INTEGER NOT NULL,"
    "  created_at INTEGER NOT NULL, events BLOB NOT NULL);"
    "CREATE TABLE models(version INTEGER PRIMARY KEY, created_at INTEGER NOT NULL,"
    "  n_events INTEGER NOT NULL, kind TEXT NOT NULL);";

/* Migrations from schema version i to i+1; none yet (version 1 is the first). */
static const char *const migrations[] = { NULL };

/* ------------------------------------------------------- statements */

static int exec(sako_engine *e, const char *sql, const char *what)
{
    int rc = sqlite3_exec(e->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(e->db, rc, what);
}

int sako__store_begin(sako_engine *e)
{
    return exec(e, "BEGIN IMMEDIATE", "starting a transaction");
}

int sako__store_commit(sako_engine *e)
{
    int rc = exec(e, "COMMIT", "committing");
    if (rc)
        sako__store_rollback(e);
    return rc;
}

void sako__store_rollback(sako_engine *e)
{
    if (!sqlite3_get_autocommit(e->db))
        sqlite3_exec(e->db, "ROLLBACK", NULL, NULL, NULL);
}

static int step_done(sako_engine *e, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(e->db, rc, what);
}

int sako__store_set_meta_int(sako_engine *e, const char *key, int64_t v)
{
    sqlite3_bind_text(e->st_set_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(e->st_set_meta, 2, v);
    return step_done(e, e->st_set_meta, "writing metadata");
}

int sako__store_set_meta_real(sako_engine *e, const char *key, double v)
{
    sqlite3_bind_text(e->st_set_meta, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_double(e->st_set_meta, 2, v);
    return step_done(e, e->st_set_meta, "writing metadata");
}

/* ------------------------------------------------------ event blobs */

/* Events are packed little-endian, 33 bytes each: user, item, time, rec_id (int64)
 * and type (one byte), so the log reads the same on any host. */
#define EVENT_BYTES 33

size_t sako__events_encoded_size(size_t n)
{
    return n * EVENT_BYTES;
}

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

void sako__events_encode(const sako_event *ev, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++, out += EVENT_BYTES) {
        put64(out, ev[i].user_id);
        put64(out + 8, ev[i].item_id);
        put64(out + 16, ev[i].time);
        put64(out + 24, ev[i].rec_id);
        out[32] = (unsigned char)ev[i].type;
    }
}

int sako__events_decode(const void *blob, size_t bytes, sako_event *out, size_t n)
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
        if (!sako__valid_id(out[i].user_id) || !sako__valid_id(out[i].item_id) ||
            out[i].type >= SAKO_EVENT_TYPES || out[i].time < 0)
            return sako__error(SAKO_CORRUPT, "event log: event %zu of a batch is malformed", i);
    }
    return SAKO_OK;
}

int sako__store_append_batch(sako_engine *e, const sako_event *ev, size_t n, int64_t *seq_out)
{
    size_t bytes = sako__events_encoded_size(n);
    unsigned char *blob = malloc(bytes ? bytes : 1);
    if (!blob)
        return sako__error(SAKO_NOMEM, "out of memory packing %zu events", n);
    sako__events_encode(ev, n, blob);
    sqlite3_stmt *st = e->st_insert_batch;
    sqlite3_bind_int64(st, 1, (int64_t)n);
    sqlite3_bind_int64(st, 2, sako__now_ms());
    sqlite3_bind_blob64(st, 3, blob, bytes, SQLITE_STATIC);
    int rc = step_done(e, st, "appending to the event log");
    sqlite3_clear_bindings(st);
    free(blob);
    if (rc == SAKO_OK)
        *seq_out = sqlite3_last_insert_rowid(e->db);
    return rc;
}

/* --------------------------------------------------------------- open */

static int query_int(sako_engine *e, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(e->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? SAKO_OK : sako__error_sqlite(e->db, rc, "reading the database header");
}

int sako__store_write_params(sako_engine *e)
{
    const sako_model_params *p = &e->params;
    int rc;
    if ((rc = sako__store_set_meta_real(e, "reward_click", p->reward[SAKO_EVENT_CLICK])) ||
        (rc = sako__store_set_meta_real(e, "reward_cart", p->reward[SAKO_EVENT_CART])) ||
        (rc = sako__store_set_meta_real(e, "reward_purchase", p->reward[SAKO_EVENT_PURCHASE])) ||
        (rc = sako__store_set_meta_real(e, "penalty_impression", p->penalty_impression)) ||
        (rc = sako__store_set_meta_int(e, "prior", p->prior)) ||
        (rc = sako__store_set_meta_real(e, "prior_strength", p->prior_strength)) ||
        (rc = sako__store_set_meta_real(e, "category_shrinkage", p->category_shrinkage)) ||
        (rc = sako__store_set_meta_int(e, "prior_refresh_events", (int64_t)p->prior_refresh_events)))
        return rc;
    return SAKO_OK;
}

static int create_schema(sako_engine *e)
{
    char sql[128];
    int rc = sako__store_begin(e);
    if (rc)
        return rc;
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
             SAKO_APPLICATION_ID, SAKO_SCHEMA_VERSION);
    if ((rc = exec(e, schema_v1, "creating the schema")) ||
        (rc = exec(e, sql, "stamping the schema")))
        goto fail;
    rc = sqlite3_prepare_v2(e->db, "INSERT OR REPLACE INTO sako_meta(key, value) VALUES(?1, ?2)",
                            -1, &e->st_set_meta, NULL);
    if (rc != SQLITE_OK) {
        rc = sako__error_sqlite(e->db, rc, "preparing metadata writes");
        goto fail;
    }
    if ((rc = sako__store_write_params(e)) ||
        (rc = sako__store_set_meta_real(e, "root_mean", 0.5)) ||
        (rc = sako__store_set_meta_int(e, "n_events", 0)) ||
        (rc = sako__store_set_meta_int(e, "events_since_refresh", 0)) ||
        (rc = sako__store_set_meta_int(e, "checkpoint_batch", 0)) ||
        (rc = sako__store_set_meta_int(e, "model_version", 0)))
        goto fail;
    return sako__store_commit(e);
fail:
    sako__store_rollback(e);
    return rc;
}

static int migrate(sako_engine *e, int64_t from)
{
    for (int64_t v = from; v < SAKO_SCHEMA_VERSION; v++) {
        if (!migrations[v - 1])
            return sako__error(SAKO_CORRUPT, "no migration from schema version %lld", (long long)v);
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %lld;", (long long)(v + 1));
        int rc = sako__store_begin(e);
        if (rc == SAKO_OK && !(rc = exec(e, migrations[v - 1], "migrating the schema")) &&
            !(rc = exec(e, sql, "migrating the schema")))
            rc = sako__store_commit(e);
        else
            sako__store_rollback(e);
        if (rc)
            return rc;
    }
    return SAKO_OK;
}

/* Two engines on one file would each keep their own in-memory state and overwrite
 * each other's bookkeeping: an advisory lock on a side file keeps one engine per
 * file (readers such as backup tools are not affected). */
static int lock_file(sako_engine *e, const char *path)
{
    size_t len = strlen(path);
    char *name = malloc(len + 6);
    if (!name)
        return sako__error(SAKO_NOMEM, "out of memory");
    memcpy(name, path, len);
    memcpy(name + len, "-lock", 6);
    e->lock_fd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    free(name);
    if (e->lock_fd < 0)
        return sako__error(SAKO_IO, "%s-lock: %s", path, strerror(errno));
    if (flock(e->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(e->lock_fd);
        e->lock_fd = -1;
        return busy ? sako__error(SAKO_BUSY, "%s is open in another engine", path)
                    : sako__error(SAKO_IO, "%s-lock: %s", path, strerror(errno));
    }
    return SAKO_OK;
}

int sako__store_open(sako_engine *e, const char *path)
{
    e->in_memory = path == NULL || strcmp(path, ":memory:") == 0;
    e->lock_fd = -1;
    if (!e->in_memory) {
        /* Refuse anything that is not SQLite before SQLite touches it. */
        FILE *f = fopen(path, "rb");
        if (f) {
            char head[16];
            size_t got = fread(head, 1, sizeof head, f);
            fclose(f);
            if (got > 0 && (got < sizeof head || memcmp(head, "SQLite format 3", 16) != 0))
                return sako__error(SAKO_CORRUPT, "%s is not an SQLite database", path);
        }
    }
    if (!e->in_memory) {
        int lrc = lock_file(e, path);
        if (lrc)
            return lrc;
    }
    int rc = sqlite3_open_v2(e->in_memory ? ":memory:" : path, &e->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return sako__error_sqlite(e->db, rc, path ? path : ":memory:");
    sqlite3_extended_result_codes(e->db, 1);
    sqlite3_busy_timeout(e->db, e->opts.busy_timeout_ms);

    int64_t app_id = 0, version = 0, n_tables = 0;
    if ((rc = query_int(e, "PRAGMA application_id", &app_id)) ||
        (rc = query_int(e, "PRAGMA user_version", &version)) ||
        (rc = query_int(e, "SELECT count(*) FROM sqlite_schema", &n_tables)))
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;

    int fresh = app_id == 0 && version == 0 && n_tables == 0;
    if (!fresh && app_id != SAKO_APPLICATION_ID)
        return sako__error(SAKO_CORRUPT, "%s is an SQLite database of another application",
                           path ? path : ":memory:");
    if (version > SAKO_SCHEMA_VERSION)
        return sako__error(SAKO_VERSION, "schema version %lld is newer than this library's %d "
                           "(libsako %s)", (long long)version, SAKO_SCHEMA_VERSION,
                           SAKO_VERSION_STRING);
    if (!fresh && version < 1)
        return sako__error(SAKO_CORRUPT, "schema version %lld is not a libsako schema",
                           (long long)version);
    /* Only a file known to be ours (or empty) is switched to WAL: a refused file
     * must be left exactly as it was. */
    if (!e->in_memory) {
        static const char *const sync[] = { "FULL", "NORMAL", "OFF" };
        char sql[96];
        snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;",
                 sync[e->opts.durability]);
        if ((rc = exec(e, sql, "setting the journal mode")))
            return rc;
    }
    if (fresh)
        return create_schema(e);
    if ((rc = migrate(e, version)))
        return rc;
    rc = sqlite3_prepare_v2(e->db, "INSERT OR REPLACE INTO sako_meta(key, value) VALUES(?1, ?2)",
                            -1, &e->st_set_meta, NULL);
    if (rc != SQLITE_OK) {
        sako__error_sqlite(e->db, rc, "database damaged: the metadata table");
        return SAKO_CORRUPT;
    }
    return SAKO_OK;
}

/* --------------------------------------------------------------- load */

static int corrupt(const char *what, long long id)
{
    return sako__error(SAKO_CORRUPT, "database damaged: %s (id %lld)", what, id);
}

/* Run a SELECT; any failure to prepare means a table or column is missing. */
static int prepare_read(sako_engine *e, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(e->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) {
        int status = sako__error_sqlite(e->db, rc, "reading the database");
        return status == SAKO_ERROR ? SAKO_CORRUPT : status;
    }
    return SAKO_OK;
}

static int finish_read(sako_engine *e, sqlite3_stmt *st, int rc_step)
{
    sqlite3_finalize(st);
    if (rc_step == SQLITE_DONE)
        return SAKO_OK;
    int status = sako__error_sqlite(e->db, rc_step, "reading the database");
    return status == SAKO_ERROR ? SAKO_CORRUPT : status;
}

static int load_meta(sako_engine *e)
{
    sqlite3_stmt *st;
    int rc = prepare_read(e, "SELECT key, value FROM sako_meta", &st);
    if (rc)
        return rc;
    unsigned seen = 0;
    sako_model_params *p = &e->params;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        double r = sqlite3_column_double(st, 1);
        int64_t i = sqlite3_column_int64(st, 1);
        if (!k)
            continue;
#define META(name, bit, assign) else if (strcmp(k, name) == 0) { assign; seen |= 1u << bit; }
        if (0) {}
        META("reward_click", 0, p->reward[SAKO_EVENT_CLICK] = r)
        META("reward_cart", 1, p->reward[SAKO_EVENT_CART] = r)
        META("reward_purchase", 2, p->reward[SAKO_EVENT_PURCHASE] = r)
        META("penalty_impression", 3, p->penalty_impression = r)
        META("prior", 4, p->prior = (int)i)
        META("prior_strength", 5, p->prior_strength = r)
        META("category_shrinkage", 6, p->category_shrinkage = r)
        META("prior_refresh_events", 7, p->prior_refresh_events = (uint64_t)i)
        META("root_mean", 8, e->root_mean = r)
        META("n_events", 9, e->n_events = (uint64_t)i)
        META("events_since_refresh", 10, e->events_since_refresh = (uint64_t)i)
        META("checkpoint_batch", 11, e->checkpoint_batch = i)
        META("model_version", 12, e->model_version = i)
#undef META
    }
    rc = finish_read(e, st, step);
    if (rc)
        return rc;
    if (seen != (1u << 13) - 1)
        return sako__error(SAKO_CORRUPT, "database damaged: metadata incomplete (mask %#x)", seen);
    /* Stored parameters must pass the same checks as options. */
    sako_options o = e->opts;
    o.reward_click = p->reward[SAKO_EVENT_CLICK];
    o.reward_cart = p->reward[SAKO_EVENT_CART];
    o.reward_purchase = p->reward[SAKO_EVENT_PURCHASE];
    o.penalty_impression = p->penalty_impression;
    o.prior = p->prior;
    o.prior_strength = p->prior_strength;
    o.category_shrinkage = p->category_shrinkage;
    if (sako__options_validate(&o) != SAKO_OK || !(e->root_mean > 0.0 && e->root_mean < 1.0) ||
        e->checkpoint_batch < 0 || e->model_version < 0)
        return sako__error(SAKO_CORRUPT, "database damaged: invalid model parameters");
    p->reward[SAKO_EVENT_IMPRESSION] = 0.0;
    return SAKO_OK;
}

static int load_categories(sako_engine *e)
{
    int64_t count = 0;
    int rc = query_int(e, "SELECT count(*) FROM categories", &count);
    if (rc)
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    e->categories = calloc((size_t)count + 1, sizeof *e->categories);
    int64_t *parent_ids = malloc(((size_t)count + 1) * sizeof *parent_ids);
    if (!e->categories || !parent_ids || sako__idmap_reserve(&e->category_index, (size_t)count)) {
        free(parent_ids);
        return sako__error(SAKO_NOMEM, "out of memory loading %lld categories", (long long)count);
    }
    e->cap_categories = (size_t)count + 1;
    sqlite3_stmt *st;
    if ((rc = prepare_read(e, "SELECT id, parent_id, name, prior_mean FROM categories", &st))) {
        free(parent_ids);
        return rc;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (e->n_categories >= (size_t)count) {
            step = SQLITE_CORRUPT;
            break;
        }
        sako_category_state *c = &e->categories[e->n_categories];
        c->id = sqlite3_column_int64(st, 0);
        parent_ids[e->n_categories] = sqlite3_column_int64(st, 1);
        const char *name = (const char *)sqlite3_column_text(st, 2);
        c->prior_mean = sqlite3_column_double(st, 3);
        c->name = strdup(name ? name : "");
        if (!c->name) {
            step = SQLITE_NOMEM;
            break;
        }
        e->n_categories++;
        if (!sako__valid_id(c->id) || !(c->prior_mean > 0.0 && c->prior_mean < 1.0)) {
            sqlite3_finalize(st);
            free(parent_ids);
            return corrupt("category row out of range", (long long)c->id);
        }
        sako__idmap_put(&e->category_index, c->id, (uint32_t)(e->n_categories - 1));
    }
    if ((rc = finish_read(e, st, step))) {
        free(parent_ids);
        return rc;
    }
    for (size_t c = 0; c < e->n_categories; c++) {
        e->categories[c].parent = parent_ids[c] == 0 ? SAKO_NONE
                                  : sako__idmap_get(&e->category_index, parent_ids[c]);
        if (parent_ids[c] != 0 && e->categories[c].parent == SAKO_NONE) {
            free(parent_ids);
            return corrupt("category with an unknown parent", (long long)e->categories[c].id);
        }
    }
    free(parent_ids);
    for (size_t c = 0; c < e->n_categories; c++) {
        int d = 0;
        for (uint32_t x = (uint32_t)c; x != SAKO_NONE && d <= SAKO_MAX_DEPTH; x = e->categories[x].parent)
            d++;
        if (d > SAKO_MAX_DEPTH)
            return corrupt("category tree has a cycle or is too deep", (long long)e->categories[c].id);
    }
    return sako__catalog_rebuild_subtrees(e);
}

static int load_items(sako_engine *e)
{
    int64_t count = 0;
    int rc = query_int(e, "SELECT count(*) FROM items", &count);
    if (rc)
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    if ((rc = sako__catalog_reserve_items(e, (size_t)count)))
        return rc;
    sqlite3_stmt *st;
    int step;
    if ((rc = prepare_read(e, "SELECT id, category_id, active, added_at, n_impression, n_click,"
                              " n_cart, n_purchase, last_event_at FROM items", &st)))
        return rc;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int64_t cid = sqlite3_column_int64(st, 1);
        int active = sqlite3_column_int(st, 2);
        uint32_t c = cid == 0 ? SAKO_NONE : sako__idmap_get(&e->category_index, cid);
        int bad = !sako__valid_id(id) || (cid != 0 && c == SAKO_NONE) || (active != 0 && active != 1) ||
                  e->n_items >= (size_t)count;
        sako_counts counts;
        for (int t = 0; t < SAKO_EVENT_TYPES; t++) {
            counts.n[t] = sqlite3_column_double(st, 4 + t);
            bad |= !isfinite(counts.n[t]) || counts.n[t] < 0.0;
        }
        if (bad) {
            sqlite3_finalize(st);
            return corrupt("item row out of range", (long long)id);
        }
        /* Member lists grow by doubling here (amortised O(1)). */
        if ((rc = sako__catalog_reserve_members(e, c, 1))) {
            sqlite3_finalize(st);
            return rc;
        }
        uint32_t i = sako__catalog_add_item(e, id, c, active, sqlite3_column_int64(st, 3));
        e->items[i].counts = counts;
        e->items[i].last_event_at = sqlite3_column_int64(st, 8);
        e->items[i].dirty = 0;
    }
    if ((rc = finish_read(e, st, step)))
        return rc;
    /* A repeated id would have overwritten its map entry: the counts would differ. */
    if (e->item_index.count != e->n_items)
        return corrupt("an item id appears twice", 0);
    return SAKO_OK;
}

static int load_users(sako_engine *e)
{
    int64_t count = 0;
    int rc = query_int(e, "SELECT count(*) FROM users", &count);
    if (rc)
        return rc == SAKO_ERROR ? SAKO_CORRUPT : rc;
    if ((rc = sako__users_reserve(e, (size_t)count)))
        return rc;
    sqlite3_stmt *st;
    if ((rc = prepare_read(e, "SELECT id, n_events, last_event_at FROM users", &st)))
        return rc;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        if (!sako__valid_id(id) || e->n_users >= (size_t)count ||
            sako__idmap_get(&e->user_index, id) != SAKO_NONE) {
            sqlite3_finalize(st);
            return corrupt("user row out of range", (long long)id);
        }
        sako_user_state *u = &e->users[e->n_users];
        u->id = id;
        u->n_events = (uint64_t)sqlite3_column_int64(st, 1);
        u->last_event_at = sqlite3_column_int64(st, 2);
        u->dirty = 0;
        sako__idmap_put(&e->user_index, id, (uint32_t)e->n_users++);
    }
    return finish_read(e, st, step);
}

int sako__store_load(sako_engine *e)
{
    int rc;
    if ((rc = load_meta(e)) || (rc = load_categories(e)) || (rc = load_items(e)) ||
        (rc = load_users(e)))
        return rc;
    rc = sqlite3_prepare_v2(e->db, "INSERT INTO event_batches(n_events, created_at, events) "
                            "VALUES(?1, ?2, ?3)", -1, &e->st_insert_batch, NULL);
    if (rc != SQLITE_OK) {
        sako__error_sqlite(e->db, rc, "database damaged: the event log");
        return SAKO_CORRUPT;
    }
    /* Events logged after the checkpoint: fold them into the counts again. */
    if ((rc = sako__replay_log(e, e->checkpoint_batch, NULL)))
        return rc;
    sako__model_fill_posteriors(e, e->posterior);
    return SAKO_OK;
}

/* -------------------------------------------------------- checkpoint */

int sako__store_write_category(sako_engine *e, uint32_t c)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(e->db, "UPDATE categories SET prior_mean = ?2 WHERE id = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, e->categories[c].id);
        sqlite3_bind_double(st, 2, e->categories[c].prior_mean);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SAKO_OK : sako__error_sqlite(e->db, rc, "writing a category prior");
}

/* Writes the counts of every dirty item (or, with `counts`, every item whose counts
 * differ from those) and the totals of every dirty user. The caller owns the
 * transaction and clears the dirty flags after it commits. */
int sako__store_checkpoint(sako_engine *e, const sako_counts *counts)
{
    sqlite3_stmt *si = NULL, *su = NULL;
    int rc = sqlite3_prepare_v2(e->db,
        "UPDATE items SET n_impression = ?2, n_click = ?3, n_cart = ?4, n_purchase = ?5,"
        " last_event_at = ?6 WHERE id = ?1", -1, &si, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(e->db,
            "INSERT OR REPLACE INTO users(id, n_events, last_event_at) VALUES(?1, ?2, ?3)",
            -1, &su, NULL);
    for (size_t i = 0; i < e->n_items && rc == SQLITE_OK; i++) {
        const sako_item_state *it = &e->items[i];
        const sako_counts *c = counts ? &counts[i] : &it->counts;
        if (!it->dirty && (!counts || memcmp(c, &it->counts, sizeof *c) == 0))
            continue;
        sqlite3_bind_int64(si, 1, it->id);
        for (int t = 0; t < SAKO_EVENT_TYPES; t++)
            sqlite3_bind_double(si, 2 + t, c->n[t]);
        sqlite3_bind_int64(si, 6, it->last_event_at);
        rc = sqlite3_step(si);
        rc = rc == SQLITE_DONE ? sqlite3_reset(si) : rc;
    }
    for (size_t u = 0; u < e->n_users && rc == SQLITE_OK; u++) {
        const sako_user_state *us = &e->users[u];
        if (!us->dirty)
            continue;
        sqlite3_bind_int64(su, 1, us->id);
        sqlite3_bind_int64(su, 2, (int64_t)us->n_events);
        sqlite3_bind_int64(su, 3, us->last_event_at);
        rc = sqlite3_step(su);
        rc = rc == SQLITE_DONE ? sqlite3_reset(su) : rc;
    }
    sqlite3_finalize(si);
    sqlite3_finalize(su);
    if (rc != SQLITE_OK)
        return sako__error_sqlite(e->db, rc, "writing a checkpoint");
    int64_t last_batch = 0;
    if ((rc = query_int(e, "SELECT coalesce(max(seq), 0) FROM event_batches", &last_batch)))
        return rc;
    return sako__store_set_meta_int(e, "checkpoint_batch", last_batch);
}

void sako__store_close(sako_engine *e)
{
    sqlite3_finalize(e->st_insert_batch);
    sqlite3_finalize(e->st_set_meta);
    e->st_insert_batch = NULL;
    e->st_set_meta = NULL;
    if (e->db)
        sqlite3_close_v2(e->db);
    e->db = NULL;
    if (e->lock_fd >= 0)
        close(e->lock_fd);
    e->lock_fd = -1;
}
