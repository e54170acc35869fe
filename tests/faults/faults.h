/* Fault injection for libsako's own tests (tests/faults): which allocation or I/O
 * call to fail, a VFS that fails or forgets writes, and the scenario the sweeps run.
 * Nothing here is linked into the library; the driver links the library's objects
 * with -Wl,--wrap for the C allocator and installs SQLite hooks at start-up. */
#ifndef SAKO_FAULTS_H
#define SAKO_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"

/* ------------------------------------------------------------ the plan */

enum fault_kind {
    FAULT_ALLOC = 1, /* malloc, calloc, realloc, strdup, posix_memalign, SQLite's allocator */
    FAULT_WRITE = 2, /* the VFS's xWrite, xSync and xTruncate (SQLITE_IOERR_* or SQLITE_FULL) */
    FAULT_READ = 4,  /* the VFS's xRead (SQLITE_IOERR_READ) */
    FAULT_SYS = 8    /* libsako's own file calls: lock file, header check, backup (sys.c) */
};

/* Fail the nth counted call of the kinds in `kinds` (n >= 1), and every later one
 * when persistent. Counting starts at arming; disarming returns how many calls
 * were failed. Thread-safe (a retrain's helper thread counts too). */
void fault_arm(unsigned kinds, long nth, int persistent);
long fault_disarm(void);
/* 1 if this call of kind `kind` is to fail (counts it). */
int fault_hit(unsigned kind);
/* Calls counted since arming (all kinds armed). */
long fault_counted(void);

/* Install SQLite's failing allocator (before sqlite3_initialize) and the VFS shim
 * as the default VFS. */
void fault_alloc_install(void);
void fault_vfs_install(void);

/* --------------------------------------------------------- power loss */

/* Record, for every file opened through the VFS, the bytes as they were at its last
 * xSync, so that a simulated power loss can put back what was not synced. */
void powerloss_record(int on);
/* Copy every recorded file under `src_db` (the database, its -wal) to `dst_db` as
 * a power loss now would leave them: writes since the file's last sync are undone
 * (keep_percent = 0) or each unsynced 512-byte sector kept with that probability
 * (seeded). Returns 0 or -1. */
int powerloss_snapshot(const char *src_db, const char *dst_db, int keep_percent, uint64_t seed);
/* Take a snapshot from inside the VFS at its nth write (xWrite) from now, before
 * that write happens: a power loss at that moment. */
void powerloss_at_write(long nth, const char *src_db, const char *dst_db, int keep_percent,
                        uint64_t seed);
/* 1 once the armed snapshot was taken. */
int powerloss_taken(void);
/* Forget every file's history (between runs). */
void powerloss_reset(void);

/* ------------------------------------------------------------ scenario */

#define FP_CAP (1 << 20)

/* Everything a caller can read of an engine's state, as text (ids, counts,
 * posteriors, users, histories, priors, policy), for exact comparison. */
void fp_engine(sako_engine *e, char *out, size_t cap);
/* Lines starting with '~' are the model's epoch (priors, posteriors, decayed counts):
 * a prior refresh after an acknowledged batch is housekeeping that may fail and is
 * retried by the next batch, so a call that met a fault and still returned SAKO_OK is
 * compared on the rest (the evidence) only. */
int fp_same(const char *want, const char *got, int evidence_only);
/* Open, fingerprint and close a database file (no fault armed); 0 or a status. */
int fp_file(const char *path, char *out, size_t cap);
/* Print the first line where two fingerprints differ. */
void fp_diff(const char *what, const char *want, const char *got);

sako_options scenario_options(int durability);
/* Build the base database every sweep starts from. */
void scenario_base(const char *path, int durability);
/* Copy a database file (and its -wal when present); 0 or -1. */
int file_copy_db(const char *src, const char *dst);
void file_remove_db(const char *path);
int file_exists(const char *path);

/* The batch a step's follow-up writes, to prove the engine still takes writes. */
int scenario_followup(sako_engine *e);

extern int fault_verbose;

#endif
