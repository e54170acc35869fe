/* A VFS shim over SQLite's default VFS, registered as the default: it fails the nth
 * write, sync, truncate or read when a fault is armed (plan.c), and, for power-loss
 * tests, keeps each file's bytes as of its last sync so that a snapshot can forget
 * what was written since (SQLite's own crash tests do the same with their VFS). */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faults.h"

#define SECTOR 512

/* One file's history since its last sync, shared by every handle on it (an fsync
 * makes the whole file durable, whoever wrote it). */
typedef struct tracked {
    char path[1024];
    int refs;
    sqlite3_int64 synced_size;
    unsigned char *saved_map;  /* 1 byte per sector: its pre-sync bytes are in undo */
    size_t map_len;
    struct undo {
        sqlite3_int64 sector;
        unsigned char data[SECTOR];
    } *undo;
    size_t n_undo, cap_undo;
    struct tracked *next;
} tracked;

typedef struct shim_file {
    sqlite3_file base;
    tracked *t;            /* NULL: not a database or WAL file */
    sqlite3_file *real;    /* the default VFS's file, right after this struct */
} shim_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs shim_vfs;
static pthread_mutex_t track_mutex = PTHREAD_MUTEX_INITIALIZER;
static tracked *files;
static int recording;

/* Power loss armed at the nth write or sync. */
static long crash_nth, crash_count;
static int crash_taken, crash_keep;
static uint64_t crash_seed;
static char crash_src[1024], crash_dst[1024];

static tracked *track_get(const char *path)
{
    for (tracked *t = files; t; t = t->next)
        if (strcmp(t->path, path) == 0)
            return t;
    return NULL;
}

static void track_forget_unsynced(tracked *t)
{
    t->n_undo = 0;
    if (t->saved_map)
        memset(t->saved_map, 0, t->map_len);
}

/* Keep the pre-sync bytes of every sector in [from, to) not yet kept. */
static int track_save(tracked *t, sqlite3_file *real, sqlite3_int64 from, sqlite3_int64 to)
{
    for (sqlite3_int64 s = from / SECTOR; s * SECTOR < to; s++) {
        if ((size_t)s >= t->map_len) {
            size_t len = t->map_len ? t->map_len : 1024;
            while (len <= (size_t)s)
                len *= 2;
            unsigned char *m = realloc(t->saved_map, len);
            if (!m)
                return SQLITE_NOMEM;
            memset(m + t->map_len, 0, len - t->map_len);
            t->saved_map = m;
            t->map_len = len;
        }
        if (t->saved_map[s])
            continue;
        if (t->n_undo == t->cap_undo) {
            size_t cap = t->cap_undo ? 2 * t->cap_undo : 64;
            struct undo *u = realloc(t->undo, cap * sizeof *u);
            if (!u)
                return SQLITE_NOMEM;
            t->undo = u;
            t->cap_undo = cap;
        }
        struct undo *u = &t->undo[t->n_undo++];
        u->sector = s;
        memset(u->data, 0, SECTOR);
        if (s * SECTOR < t->synced_size) {
            int rc = real->pMethods->xRead(real, u->data, SECTOR, s * SECTOR);
            if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
                return rc;
        }
        t->saved_map[s] = 1;
    }
    return SQLITE_OK;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int copy_undone(const tracked *t, const char *dst, int keep_percent, uint64_t *seed)
{
    FILE *in = fopen(t->path, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, got, out);
    fclose(in);
    long size = ftell(out);
    int kept_past_end = 0;
    for (size_t i = 0; i < t->n_undo; i++) {
        const struct undo *u = &t->undo[i];
        if (u->sector * SECTOR >= size)
            continue; /* truncated since, and the truncation was kept */
        if (keep_percent > 0 && (int)(next_rand(seed) % 100) < keep_percent) {
            kept_past_end |= (u->sector + 1) * SECTOR > t->synced_size;
            continue;
        }
        fseek(out, (long)(u->sector * SECTOR), SEEK_SET);
        long len = size - (long)(u->sector * SECTOR);
        fwrite(u->data, 1, len < SECTOR ? (size_t)len : SECTOR, out);
    }
    fclose(out);
    /* Growth since the sync is lost unless a kept sector lies past the synced end
     * (then the size stayed, and dropped sectors there read as zeros). */
    if (!kept_past_end && size > t->synced_size && truncate(dst, (off_t)t->synced_size) != 0)
        return -1;
    if (size < t->synced_size && truncate(dst, (off_t)t->synced_size) != 0)
        return -1;
    return 0;
}

static int snapshot_locked(const char *src_db, const char *dst_db, int keep_percent, uint64_t seed)
{
    char wal[1100], dst_wal[1100];
    snprintf(wal, sizeof wal, "%s-wal", src_db);
    snprintf(dst_wal, sizeof dst_wal, "%s-wal", dst_db);
    file_remove_db(dst_db);
    uint64_t s = seed ? seed : 1;
    const tracked *db = track_get(src_db), *w = track_get(wal);
    if (db && copy_undone(db, dst_db, keep_percent, &s) != 0)
        return -1;
    if (w && copy_undone(w, dst_wal, keep_percent, &s) != 0)
        return -1;
    return 0;
}

int powerloss_snapshot(const char *src_db, const char *dst_db, int keep_percent, uint64_t seed)
{
    pthread_mutex_lock(&track_mutex);
    int rc = snapshot_locked(src_db, dst_db, keep_percent, seed);
    pthread_mutex_unlock(&track_mutex);
    return rc;
}

void powerloss_at_write(long nth, const char *src_db, const char *dst_db, int keep_percent,
                        uint64_t seed)
{
    pthread_mutex_lock(&track_mutex);
    crash_nth = nth;
    crash_count = 0;
    crash_taken = 0;
    crash_keep = keep_percent;
    crash_seed = seed;
    snprintf(crash_src, sizeof crash_src, "%s", src_db);
    snprintf(crash_dst, sizeof crash_dst, "%s", dst_db);
    pthread_mutex_unlock(&track_mutex);
}

int powerloss_taken(void)
{
    pthread_mutex_lock(&track_mutex);
    int taken = crash_taken;
    pthread_mutex_unlock(&track_mutex);
    return taken;
}

/* Called with track_mutex held before each write or sync of a tracked file. */
static void crash_point(void)
{
    if (crash_nth > 0 && !crash_taken && ++crash_count == crash_nth) {
        if (snapshot_locked(crash_src, crash_dst, crash_keep, crash_seed) != 0)
            fprintf(stderr, "faults: power-loss snapshot of %s failed\n", crash_src);
        crash_taken = 1;
    }
}

void powerloss_record(int on)
{
    pthread_mutex_lock(&track_mutex);
    recording = on;
    pthread_mutex_unlock(&track_mutex);
}

void powerloss_reset(void)
{
    pthread_mutex_lock(&track_mutex);
    crash_nth = 0;
    crash_taken = 0;
    for (tracked *t = files; t; t = t->next)
        track_forget_unsynced(t);
    pthread_mutex_unlock(&track_mutex);
}

/* ------------------------------------------------------------ io methods */

static int shim_close(sqlite3_file *f)
{
    shim_file *sf = (shim_file *)f;
    int rc = sf->real->pMethods->xClose(sf->real);
    if (sf->t) {
        pthread_mutex_lock(&track_mutex);
        if (--sf->t->refs == 0) {
            tracked **p = &files;
            while (*p != sf->t)
                p = &(*p)->next;
            *p = sf->t->next;
            free(sf->t->saved_map);
            free(sf->t->undo);
            free(sf->t);
        }
        pthread_mutex_unlock(&track_mutex);
    }
    return rc;
}

static int shim_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    shim_file *sf = (shim_file *)f;
    if (fault_hit(FAULT_READ))
        return SQLITE_IOERR_READ;
    return sf->real->pMethods->xRead(sf->real, buf, amt, off);
}

int fault_write_full; /* 1: a failed write says the disk is full, else an I/O error */

static int shim_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    shim_file *sf = (shim_file *)f;
    if (fault_hit(FAULT_WRITE))
        return fault_write_full ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    if (sf->t) {
        pthread_mutex_lock(&track_mutex);
        crash_point();
        int rc = recording ? track_save(sf->t, sf->real, off, off + amt) : SQLITE_OK;
        pthread_mutex_unlock(&track_mutex);
        if (rc != SQLITE_OK)
            return rc;
    }
    return sf->real->pMethods->xWrite(sf->real, buf, amt, off);
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    shim_file *sf = (shim_file *)f;
    if (fault_hit(FAULT_WRITE))
        return SQLITE_IOERR_TRUNCATE;
    if (sf->t) {
        sqlite3_int64 cur = 0;
        sf->real->pMethods->xFileSize(sf->real, &cur);
        pthread_mutex_lock(&track_mutex);
        int rc = recording && size < cur ? track_save(sf->t, sf->real, size, cur) : SQLITE_OK;
        pthread_mutex_unlock(&track_mutex);
        if (rc != SQLITE_OK)
            return rc;
    }
    return sf->real->pMethods->xTruncate(sf->real, size);
}

static int shim_sync(sqlite3_file *f, int flags)
{
    shim_file *sf = (shim_file *)f;
    if (fault_hit(FAULT_WRITE))
        return SQLITE_IOERR_FSYNC;
    if (sf->t) {
        pthread_mutex_lock(&track_mutex);
        crash_point();
        pthread_mutex_unlock(&track_mutex);
    }
    int rc = sf->real->pMethods->xSync(sf->real, flags);
    if (rc == SQLITE_OK && sf->t) {
        sqlite3_int64 size = 0;
        sf->real->pMethods->xFileSize(sf->real, &size);
        pthread_mutex_lock(&track_mutex);
        track_forget_unsynced(sf->t);
        sf->t->synced_size = size;
        pthread_mutex_unlock(&track_mutex);
    }
    return rc;
}

#define FORWARD(name, sig, args)                     \
    static int shim_##name sig                       \
    {                                                \
        shim_file *sf = (shim_file *)f;              \
        return sf->real->pMethods->x##name args;     \
    }

FORWARD(FileSize, (sqlite3_file *f, sqlite3_int64 *size), (sf->real, size))
FORWARD(Lock, (sqlite3_file *f, int lock), (sf->real, lock))
FORWARD(Unlock, (sqlite3_file *f, int lock), (sf->real, lock))
FORWARD(CheckReservedLock, (sqlite3_file *f, int *out), (sf->real, out))
FORWARD(FileControl, (sqlite3_file *f, int op, void *arg), (sf->real, op, arg))
FORWARD(SectorSize, (sqlite3_file *f), (sf->real))
FORWARD(DeviceCharacteristics, (sqlite3_file *f), (sf->real))
FORWARD(ShmMap, (sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp),
        (sf->real, pg, pgsz, extend, pp))
FORWARD(ShmLock, (sqlite3_file *f, int off, int n, int flags), (sf->real, off, n, flags))
FORWARD(ShmUnmap, (sqlite3_file *f, int del), (sf->real, del))

static void shim_ShmBarrier(sqlite3_file *f)
{
    shim_file *sf = (shim_file *)f;
    sf->real->pMethods->xShmBarrier(sf->real);
}

/* No memory-mapped reads: every read goes through xRead, where faults are. */
static int shim_Fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    (void)f;
    (void)off;
    (void)amt;
    *pp = NULL;
    return SQLITE_OK;
}

static int shim_Unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    (void)f;
    (void)off;
    (void)p;
    return SQLITE_OK;
}

static const sqlite3_io_methods shim_io = {
    3, shim_close, shim_read, shim_write, shim_truncate, shim_sync, shim_FileSize,
    shim_Lock, shim_Unlock, shim_CheckReservedLock, shim_FileControl, shim_SectorSize,
    shim_DeviceCharacteristics, shim_ShmMap, shim_ShmLock, shim_ShmBarrier, shim_ShmUnmap,
    shim_Fetch, shim_Unfetch
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    sf->t = NULL;
    int rc = real_vfs->xOpen(real_vfs, name, sf->real, flags, out_flags);
    if (!sf->real->pMethods) {
        sf->base.pMethods = NULL;
        return rc;
    }
    sf->base.pMethods = &shim_io;
    if (rc != SQLITE_OK || !name || !(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)))
        return rc;
    pthread_mutex_lock(&track_mutex);
    tracked *t = track_get(name);
    if (!t && (t = calloc(1, sizeof *t)) != NULL) {
        snprintf(t->path, sizeof t->path, "%s", name);
        sqlite3_int64 size = 0;
        sf->real->pMethods->xFileSize(sf->real, &size);
        t->synced_size = size; /* what was there before is taken as durable */
        t->next = files;
        files = t;
    }
    if (t) {
        t->refs++;
        sf->t = t;
    }
    pthread_mutex_unlock(&track_mutex);
    return rc;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    if (fault_hit(FAULT_WRITE))
        return SQLITE_IOERR_DELETE;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int shim_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int shim_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

void fault_vfs_install(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs) {
        fprintf(stderr, "faults: no default VFS\n");
        exit(2);
    }
    memset(&shim_vfs, 0, sizeof shim_vfs);
    shim_vfs.iVersion = 2;
    shim_vfs.szOsFile = (int)sizeof(shim_file) + real_vfs->szOsFile;
    shim_vfs.mxPathname = real_vfs->mxPathname;
    shim_vfs.zName = "sako-faults";
    shim_vfs.xOpen = shim_open;
    shim_vfs.xDelete = shim_delete;
    shim_vfs.xAccess = shim_access;
    shim_vfs.xFullPathname = shim_full_pathname;
    shim_vfs.xRandomness = shim_randomness;
    shim_vfs.xSleep = shim_sleep;
    shim_vfs.xCurrentTime = shim_current_time;
    shim_vfs.xGetLastError = shim_last_error;
    shim_vfs.xCurrentTimeInt64 = shim_current_time64;
    if (sqlite3_vfs_register(&shim_vfs, 1) != SQLITE_OK) {
        fprintf(stderr, "faults: cannot register the VFS shim\n");
        exit(2);
    }
}
