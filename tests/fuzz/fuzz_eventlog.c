/* libFuzzer target: the event log's batch reader. A real database (a catalog and a
 * few logged batches, made once per process) gets one more batch whose row is the
 * fuzzer's: its event count, time, events blob and order ids, with its checksum made
 * right (so that the decoder behind the CRC is reached) unless the input says not.
 * Open (which replays the log), retrain and verify must accept it cleanly or refuse
 * it with a documented status; never crash. Every input first goes to the log reader
 * alone (on a store opened once, the row added and rolled back: decoder speed); a
 * batch it takes then goes to an in-memory engine (its database an image, memdb.h:
 * no file, lock, WAL or schema per input); one input in eight (bits 0x70 of the first
 * byte) also runs on a file, with sako_verify, and open must agree. */
#include <sqlite3.h>

#include "checksum_internal.h"
#include "store_internal.h"
#include "fuzz_file.h"
#include "memdb.h"
#include "provider.h"

/* The database before the fuzzer's batch: on a file (what sako_init on a path opens)
 * and in memory (the same catalog and log, made by an in-memory engine). */
static memdb_image template_file, template_mem;

/* The decoder's store: the in-memory template opened once with libsako's store layer
 * (the log's last batch noted); each input's row is added inside a savepoint, read
 * back through sako__store_read_batches (the reader open and retrain replay through:
 * checksum, encoding, order ids) and rolled back. */
static sako_store reader;
static int64_t template_last_batch;

static int count_events(void *payload, int64_t seq, const sako_event *ev, const int64_t *order_ids,
                        size_t n)
{
    (void)ev;
    (void)order_ids;
    FCHECK(seq > template_last_batch && n > 0, "the reader gave batch %lld of %zu events",
           (long long)seq, n);
    *(size_t *)payload += n;
    return SAKO_OK;
}

static void open_reader(void)
{
    memdb_install();
    memdb_pending = &template_mem;
    FCHECK(sako__store_open(&reader, NULL, 1000, SAKO_DURABLE_OFF, 0, NULL) == SAKO_OK &&
           !memdb_pending, "reader open");
    sako__store_open_done(&reader);
    FCHECK(sako__store_last_batch(&reader, &template_last_batch) == SAKO_OK &&
           template_last_batch > 0, "the template's log");
}

static void put64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(u >> (8 * i));
}

/* The CRC store.c writes with a batch: seq, n, created_at, has_orders; events; orders. */
static uint32_t batch_crc(int64_t seq, int64_t n, int64_t created_at, const void *ev, size_t evb,
                          const void *ord, size_t ordb, int has_orders)
{
    unsigned char head[25];
    put64(head, seq);
    put64(head + 8, n);
    put64(head + 16, created_at);
    head[24] = (unsigned char)(has_orders != 0);
    uint32_t crc = sako__checksum_update(0, head, sizeof head);
    crc = sako__checksum_update(crc, ev, evb);
    return has_orders ? sako__checksum_update(crc, ord, ordb) : crc;
}

/* A catalog (two categories, eight items) and three logged batches with order ids,
 * made by an engine on `path` or, with NULL, in memory; returns the database's bytes. */
static memdb_image make_template(const char *path)
{
    if (path)
        fuzz_remove(path);
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 3;
    o.durability = SAKO_DURABLE_OFF;
    sako_engine *e;
    memdb_install();
    FCHECK(sako_init(&e, path, &o) == SAKO_OK, "template open");
    sako_category c[2] = { { 1, 0, "dept" }, { 2, 1, "aisle" } };
    FCHECK(sako_categories_upsert(e, c, 2) == SAKO_OK, "template categories");
    sako_item items[8];
    for (int i = 0; i < 8; i++)
        items[i] = (sako_item){ i + 1, i % 3, 1, 1700000000000LL };
    FCHECK(sako_items_upsert(e, items, 8) == SAKO_OK, "template items");
    for (int b = 0; b < 3; b++) {
        sako_event ev[4];
        int64_t orders[4];
        for (int j = 0; j < 4; j++) {
            ev[j] = (sako_event){ 1 + j % 2, 1 + (b + j) % 8, (b + j) % 4,
                                  1700000000000LL + b * 3600000LL + j, 0 };
            orders[j] = 10 + b;
        }
        FCHECK(sako_update_orders(e, ev, orders, 4) == SAKO_OK, "template update");
    }
    memdb_image img = { NULL, 0 };
    if (!path)
        img = memdb_capture(memdb_last); /* the engine's connection, opened last */
    sako_close(e);
    if (path) {
        img = fuzz_read(path);
        fuzz_remove(path);
    }
    return img;
}

/* The fuzzer's batch as the next row of the log of `db`. */
typedef struct batch_row {
    uint8_t flags;
    int64_t n, created_at;
    const uint8_t *events, *orders;
    size_t event_bytes, order_bytes;
} batch_row;

static void append_row(sqlite3 *db, const batch_row *b)
{
    int has_orders = b->flags & 1;
    sqlite3_stmt *s;
    FCHECK(sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), 0) + 1 FROM event_batches", -1, &s,
                              NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW, "next seq");
    int64_t seq = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    FCHECK(sqlite3_prepare_v2(db, "INSERT INTO event_batches(seq, n_events, created_at, events, "
                              "order_ids, checksum) VALUES(?6, ?1, ?2, ?3, ?4, ?5)", -1, &s,
                              NULL) == SQLITE_OK, "prepare: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(s, 6, seq);
    sqlite3_bind_int64(s, 1, b->n);
    sqlite3_bind_int64(s, 2, b->created_at);
    sqlite3_bind_blob(s, 3, b->event_bytes ? (const void *)b->events : "", (int)b->event_bytes,
                      SQLITE_STATIC);
    if (has_orders)
        sqlite3_bind_blob(s, 4, b->order_bytes ? (const void *)b->orders : "", (int)b->order_bytes,
                          SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 4);
    uint32_t crc = batch_crc(seq, b->n, b->created_at, b->events, b->event_bytes, b->orders,
                             b->order_bytes, has_orders);
    if (b->flags & 2)
        sqlite3_bind_null(s, 5); /* a lost checksum */
    else
        sqlite3_bind_int64(s, 5, (b->flags & 4) ? crc ^ 1u : crc); /* a wrong one, or right */
    FCHECK(sqlite3_step(s) == SQLITE_DONE, "insert: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    if (b->flags & 8) /* the log's bookkeeping agrees with the new batch, or not */
        sqlite3_exec(db, "UPDATE sako_meta SET value = value + 1 WHERE key = 'n_events'", NULL, NULL,
                     NULL);
}

/* sako_init on the in-memory template plus the batch, then use: open's status. */
static int open_in_memory(const batch_row *b)
{
    sqlite3 *db;
    memdb_install();
    memdb_pending = &template_mem;
    FCHECK(sqlite3_open(":memory:", &db) == SQLITE_OK && !memdb_pending, "memory open");
    append_row(db, b);
    memdb_image img = memdb_capture(db);
    sqlite3_close(db);
    sako_options o = fuzz_options();
    sako_engine *e = NULL;
    int rc = memdb_open(&e, &img, &o);
    free(img.bytes);
    FCHECK(fuzz_status_ok(rc), "sako_init returned %d", rc);
    FCHECK((rc == SAKO_OK) == (e != NULL), "sako_init %d with out %p", rc, (void *)e);
    if (rc == SAKO_OK)
        fuzz_use_engine(e);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!template_file.bytes) {
        template_file = make_template(fuzz_path());
        template_mem = make_template(NULL);
        open_reader();
    }
    provider in = { data, size };
    uint8_t flags = take_u8(&in);
    int64_t n = (int64_t)take_u64(&in, 2);
    if (flags & 0x80)
        n = (int64_t)take_u64(&in, 8); /* any claim, negative and huge included */
    int64_t created_at = 1700000000000LL + (int64_t)take_u64(&in, 4);
    int has_orders = flags & 1;
    size_t order_bytes = has_orders ? (size_t)take_u8(&in) * 8 : 0;
    if (order_bytes > in.n)
        order_bytes = in.n;

    batch_row b = { flags, n, created_at, in.p, in.p + (in.n - order_bytes), 0, 0 };
    b.event_bytes = in.n - order_bytes;
    b.order_bytes = order_bytes;

    /* Every input: the decoder, at the speed of a read of one row. */
    FCHECK(sqlite3_exec(reader.db, "SAVEPOINT fuzz", NULL, NULL, NULL) == SQLITE_OK, "savepoint");
    append_row(reader.db, &b);
    size_t events = 0;
    int read_rc = sako__store_read_batches(&reader, template_last_batch, count_events, &events);
    FCHECK(sqlite3_exec(reader.db, "ROLLBACK TO fuzz; RELEASE fuzz", NULL, NULL, NULL) == SQLITE_OK,
           "rollback");
    FCHECK(read_rc == SAKO_OK || (read_rc == SAKO_CORRUPT && sako_errmsg()[0]),
           "the log reader returned %s", sako_errstr(read_rc));
    FCHECK(read_rc != SAKO_OK || events == (size_t)b.n, "read %zu events of a batch of %lld",
           events, (long long)b.n);

    /* A batch the reader takes, in memory: the template's image gets the row on a plain
     * connection, and an in-memory engine opens the result (replaying the log into the
     * catalog and the counts) and is used as the file targets use a file. */
    int rc = read_rc;
    if (read_rc == SAKO_OK)
        rc = open_in_memory(&b);

    /* On a file, one input in eight (flags 0x70 all set): sako_verify, then open, as
     * fuzz_open does; open must say what it said in memory (a batch the reader refuses
     * is refused by open, with the reader's status). */
    if ((flags & 0x70) != 0x70)
        return 0;
    const char *path = fuzz_path();
    fuzz_remove(path);
    fuzz_write(path, template_file.bytes, template_file.len);
    sqlite3 *db;
    FCHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite open");
    append_row(db, &b);
    sqlite3_close(db);
    int file_rc = fuzz_use_file(path);
    FCHECK(file_rc == rc, "open said %s on a file and %s in memory", sako_errstr(file_rc),
           sako_errstr(rc));
    fuzz_remove(path);
    return 0;
}
