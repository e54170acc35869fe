/* libFuzzer target: the event log's batch reader. A real database (a catalog and a
 * few logged batches, made once per process) gets one more batch whose row is the
 * fuzzer's: its event count, time, events blob and order ids, with its checksum made
 * right (so that the decoder behind the CRC is reached) unless the input says not.
 * Open (which replays the log), retrain and verify must accept it cleanly or refuse
 * it with a documented status; never crash. */
#include <sqlite3.h>

#include "checksum_internal.h"
#include "fuzz_file.h"
#include "provider.h"

static unsigned char *template_db;
static size_t template_len;

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

static void make_template(void)
{
    const char *path = fuzz_path();
    fuzz_remove(path);
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 3;
    o.durability = SAKO_DURABLE_OFF;
    sako_engine *e;
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
    sako_close(e);
    FILE *f = fopen(path, "rb");
    FCHECK(f != NULL, "template read");
    fseek(f, 0, SEEK_END);
    template_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    template_db = malloc(template_len);
    FCHECK(template_db && fread(template_db, 1, template_len, f) == template_len, "template read");
    fclose(f);
    fuzz_remove(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!template_db)
        make_template();
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
    const uint8_t *orders = in.p + (in.n - order_bytes);
    const uint8_t *events = in.p;
    size_t event_bytes = in.n - order_bytes;

    const char *path = fuzz_path();
    fuzz_remove(path);
    fuzz_write(path, template_db, template_len);
    sqlite3 *db;
    FCHECK(sqlite3_open(path, &db) == SQLITE_OK, "sqlite open");
    sqlite3_stmt *s;
    FCHECK(sqlite3_prepare_v2(db, "SELECT coalesce(max(seq), 0) + 1 FROM event_batches", -1, &s,
                              NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW, "next seq");
    int64_t seq = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    FCHECK(sqlite3_prepare_v2(db, "INSERT INTO event_batches(seq, n_events, created_at, events, "
                              "order_ids, checksum) VALUES(?6, ?1, ?2, ?3, ?4, ?5)", -1, &s,
                              NULL) == SQLITE_OK, "prepare: %s", sqlite3_errmsg(db));
    sqlite3_bind_int64(s, 6, seq);
    sqlite3_bind_int64(s, 1, n);
    sqlite3_bind_int64(s, 2, created_at);
    sqlite3_bind_blob(s, 3, event_bytes ? (const void *)events : "", (int)event_bytes, SQLITE_STATIC);
    if (has_orders)
        sqlite3_bind_blob(s, 4, order_bytes ? (const void *)orders : "", (int)order_bytes,
                          SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 4);
    uint32_t crc = batch_crc(seq, n, created_at, events, event_bytes, orders, order_bytes,
                             has_orders);
    if (flags & 2)
        sqlite3_bind_null(s, 5); /* a lost checksum */
    else
        sqlite3_bind_int64(s, 5, (flags & 4) ? crc ^ 1u : crc); /* a wrong one, or right */
    FCHECK(sqlite3_step(s) == SQLITE_DONE, "insert: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    if (flags & 8) /* the log's bookkeeping agrees with the new batch, or not */
        sqlite3_exec(db, "UPDATE sako_meta SET value = value + 1 WHERE key = 'n_events'", NULL, NULL,
                     NULL);
    sqlite3_close(db);
    fuzz_use_file(path);
    fuzz_remove(path);
    return 0;
}
