/* Writes the fuzz targets' seed corpora (no binary files in the repository): real
 * small databases for fuzz_open, well-formed batches for fuzz_eventlog, call sequences
 * for fuzz_api. usage: fuzz_seeds DIR  (makes DIR/open, DIR/eventlog, DIR/api) */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sako.h"

static void die(const char *what)
{
    fprintf(stderr, "fuzz_seeds: %s: %s\n", what, sako_errmsg());
    exit(1);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
        die(path);
}

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    if (!f)
        die(from);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        die(from);
    fclose(f);
    write_file(to, buf, (size_t)n);
    free(buf);
}

static void remove_db(const char *path)
{
    static const char *suffix[] = { "", "-wal", "-shm", "-lock" };
    char buf[1100];
    for (size_t i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%s%s", path, suffix[i]);
        unlink(buf);
    }
}

/* A current database turned back into schema 1 (libsako 0.1): the tables, columns and
 * metadata the migrations add are removed, and the file compacted. */
#define SCHEMA_BACK_TO_V1 \
    "DROP TABLE mf_factors; DROP TABLE log_checkpoint; DROP TABLE model_versions;" \
    "ALTER TABLE items DROP COLUMN checksum; ALTER TABLE users DROP COLUMN checksum;" \
    "ALTER TABLE categories DROP COLUMN checksum;" \
    "ALTER TABLE categories DROP COLUMN demand_mean;" \
    "ALTER TABLE categories DROP COLUMN demand_strength;" \
    "ALTER TABLE categories DROP COLUMN demand_share;" \
    "ALTER TABLE event_batches DROP COLUMN checksum;" \
    "ALTER TABLE event_batches DROP COLUMN order_ids;" \
    "DELETE FROM sako_meta WHERE key NOT IN ('reward_click', 'reward_cart', 'reward_purchase'," \
    " 'penalty_impression', 'prior', 'prior_strength', 'category_shrinkage'," \
    " 'prior_refresh_events', 'root_mean', 'n_events', 'events_since_refresh'," \
    " 'checkpoint_batch', 'model_version');" \
    "PRAGMA journal_mode = DELETE; PRAGMA user_version = 1; VACUUM;"

/* Databases: new and empty; a catalog with a logged history (and the same in schema 1);
 * the same retrained. */
static void seeds_open(const char *dir)
{
    char db[1024], out[1100];
    snprintf(db, sizeof db, "%s/.seed.db", dir);
    remove_db(db);
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 1;
    o.durability = SAKO_DURABLE_OFF;
    sako_engine *e;
    if (sako_init(&e, db, &o))
        die("open");
    sako_close(e);
    snprintf(out, sizeof out, "%s/empty.db", dir);
    copy_file(db, out);
    if (sako_init(&e, db, &o))
        die("open");
    sako_category c[2] = { { 1, 0, "dept" }, { 2, 1, "aisle" } };
    sako_item items[6];
    for (int i = 0; i < 6; i++)
        items[i] = (sako_item){ i + 1, i % 3, i != 4, 1700000000000LL };
    if (sako_categories_upsert(e, c, 2) || sako_items_upsert(e, items, 6))
        die("catalog");
    for (int b = 0; b < 4; b++) {
        sako_event ev[3];
        int64_t orders[3];
        for (int j = 0; j < 3; j++) {
            ev[j] = (sako_event){ 1 + (b + j) % 3, 1 + (b * 2 + j) % 6, (b + j) % 4,
                                  1700000000000LL + b * 86400000LL + j, j == 0 ? 5 : 0 };
            orders[j] = ev[j].type == SAKO_EVENT_PURCHASE ? 100 + b : 0;
        }
        if (sako_update_orders(e, ev, orders, 3))
            die("update");
    }
    sako_close(e);
    snprintf(out, sizeof out, "%s/history.db", dir);
    copy_file(db, out);
    /* the same history as libsako 0.1 stored it (schema 1): a new database is made in
     * one step now, so this is what runs the four migrations under the fuzzer */
    snprintf(out, sizeof out, "%s/history-v1.db", dir);
    copy_file(db, out);
    sqlite3 *sdb;
    if (sqlite3_open(out, &sdb) != SQLITE_OK ||
        sqlite3_exec(sdb, SCHEMA_BACK_TO_V1, NULL, NULL, NULL) != SQLITE_OK || sqlite3_close(sdb))
        die("schema 1");
    if (sako_init(&e, out, &o))
        die("schema 1 open");
    sako_close(e);
    remove_db(out);
    copy_file(db, out); /* (the open migrated it: back to the bytes of schema 1) */
    if (sqlite3_open(out, &sdb) != SQLITE_OK ||
        sqlite3_exec(sdb, SCHEMA_BACK_TO_V1, NULL, NULL, NULL) != SQLITE_OK || sqlite3_close(sdb))
        die("schema 1");
    if (sako_init(&e, db, &o) || sako_retrain(e))
        die("retrain");
    sako_close(e);
    snprintf(out, sizeof out, "%s/retrained.db", dir);
    copy_file(db, out);
    remove_db(db);
}

static void put64(unsigned char *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((uint64_t)v >> (8 * i));
}

/* fuzz_eventlog's input: flags, n (2 bytes), created_at offset (4), [orders count (1)],
 * the events (33 bytes each: user, item, time, rec_id, type), the order ids. */
static void seeds_eventlog(const char *dir)
{
    /* flags 0x70: fuzz_eventlog runs the batch on a file too (for n = 1 and 3) */
    for (int v = 0; v < 12; v++) {
        int n = v < 8 ? v / 2 : 1 + 2 * ((v - 8) / 2), with_orders = v % 2, on_file = v >= 8;
        {
            unsigned char buf[512];
            size_t len = 0;
            buf[len++] = (unsigned char)(with_orders | (on_file ? 0x70 : 0));
            buf[len++] = (unsigned char)n;
            buf[len++] = 0;
            memset(buf + len, 0, 4);
            buf[len] = 7;
            len += 4;
            if (with_orders)
                buf[len++] = (unsigned char)n;
            for (int i = 0; i < n; i++) {
                put64(buf + len, 1 + i);
                put64(buf + len + 8, 1 + (i * 3) % 8);
                put64(buf + len + 16, 1700000000000LL + i * 1000);
                put64(buf + len + 24, i == 1 ? 9 : 0);
                buf[len + 32] = (unsigned char)(i % 4);
                len += 33;
            }
            for (int i = 0; with_orders && i < n; i++, len += 8)
                put64(buf + len, 200 + i / 2);
            char path[1100];
            snprintf(path, sizeof path, "%s/batch-%d-%d%s", dir, n, with_orders,
                     on_file ? "-file" : "");
            write_file(path, buf, len);
        }
    }
}

/* fuzz_api's input is a byte program; a few pseudo-random ones start it off. */
static void seeds_api(const char *dir)
{
    uint64_t s = 88172645463325252ULL;
    for (int k = 0; k < 16; k++) {
        unsigned char buf[600];
        size_t len = 64 + (size_t)k * 32;
        for (size_t i = 0; i < len; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            buf[i] = (unsigned char)s;
        }
        /* unknown items created, personal on; the last two on a file engine (bit 7) */
        buf[0] = k < 14 ? 0x03 : 0x83;
        char path[1100];
        snprintf(path, sizeof path, "%s/program-%02d", dir, k);
        write_file(path, buf, len);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_seeds DIR\n");
        return 2;
    }
    char sub[1024];
    static const char *names[] = { "open", "eventlog", "api" };
    void (*make[])(const char *) = { seeds_open, seeds_eventlog, seeds_api };
    mkdir(argv[1], 0777);
    for (int i = 0; i < 3; i++) {
        snprintf(sub, sizeof sub, "%s/%s", argv[1], names[i]);
        mkdir(sub, 0777);
        make[i](sub);
    }
    return 0;
}
