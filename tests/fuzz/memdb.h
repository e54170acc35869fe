/* In-memory engines that start from a database image instead of running the schema.
 *
 * A new engine's schema (the v1 DDL and every migration) costs most of a short input
 * (~8M instructions per sako_init(NULL), 83 % of it in SQLite's parser), and a
 * file engine pays for a file, a lock and the WAL besides. The targets make what
 * they need once (a new database for a set of options, or one with a catalog and a
 * log) and hand its bytes to the next in-memory connection: SQLite calls the hook
 * below (sqlite3_auto_extension) for every connection it opens, and the hook loads
 * the image with sqlite3_deserialize when one is pending and the connection is an
 * in-memory one. sako_init(NULL) then finds a database of the current version and
 * opens it as it opens an existing file (reading the catalog, replaying the log), so
 * the fuzzed calls run on exactly the engine a new one would be, and the open path of
 * an existing database is fuzzed as well. */
#ifndef SAKO_FUZZ_MEMDB_H
#define SAKO_FUZZ_MEMDB_H

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"

typedef struct memdb_image {
    unsigned char *bytes; /* malloc'd */
    size_t len;
} memdb_image;

/* A file's bytes. */
static inline memdb_image fuzz_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    FCHECK(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    memdb_image img = { NULL, (size_t)ftell(f) };
    fseek(f, 0, SEEK_SET);
    img.bytes = malloc(img.len ? img.len : 1);
    FCHECK(img.bytes && fread(img.bytes, 1, img.len, f) == img.len, "cannot read %s", path);
    fclose(f);
    return img;
}

static const memdb_image *memdb_pending; /* for the next in-memory connection */
static sqlite3 *memdb_last;              /* the last connection opened */

static int memdb_hook(sqlite3 *db, char **err, const void *api)
{
    (void)err;
    (void)api;
    memdb_last = db;
    const char *name = sqlite3_db_filename(db, "main");
    if (!memdb_pending || (name && name[0]))
        return SQLITE_OK;
    const memdb_image *img = memdb_pending;
    memdb_pending = NULL;
    unsigned char *buf = sqlite3_malloc64(img->len);
    if (!buf)
        return SQLITE_NOMEM;
    memcpy(buf, img->bytes, img->len);
    return sqlite3_deserialize(db, "main", buf, (sqlite3_int64)img->len, (sqlite3_int64)img->len,
                               SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
}

static void memdb_install(void)
{
    static int done;
    if (!done) {
        FCHECK(sqlite3_auto_extension((void (*)(void))memdb_hook) == SQLITE_OK, "auto extension");
        done = 1;
    }
}

/* The bytes of an open connection's main database (an in-memory one included). */
static memdb_image memdb_capture(sqlite3 *db)
{
    sqlite3_int64 len = 0;
    unsigned char *s = sqlite3_serialize(db, "main", &len, 0);
    FCHECK(s != NULL && len > 0, "serializing a template");
    memdb_image img = { malloc((size_t)len), (size_t)len };
    FCHECK(img.bytes != NULL, "template copy");
    memcpy(img.bytes, s, (size_t)len);
    sqlite3_free(s);
    return img;
}

/* sako_init(&e, NULL, o) on a copy of `img` (the schema not run again). */
static int memdb_open(sako_engine **e, const memdb_image *img, const sako_options *o)
{
    memdb_install();
    memdb_pending = img;
    int rc = sako_init(e, NULL, o);
    memdb_pending = NULL;
    return rc;
}

#endif
