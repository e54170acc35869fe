/* sako_backup: an online copy of the engine's database into a new file.
 *
 * SQLite's backup API copies the file a few pages at a time. The copy runs through
 * the engine's own connection, so a write made through that connection between two
 * steps is applied to the copy as well (a copy through a second connection would
 * restart after every write and might never finish under steady traffic). The
 * connection is used by one thread at a time, so each step holds the writer mutex,
 * and only for that step: updates go on between steps, recommendations are never
 * held. The last step ends the copy with the writer mutex held, so the backup is
 * the database at that instant: every batch acknowledged before it, none after,
 * and opening it replays its log tail as any reopen does.
 *
 * The pages go to a private file next to the target ("<path>.partial-XXXXXX"),
 * which is synced and then linked to the target name, which must not exist: a
 * backup never overwrites a file, and a crash leaves at worst a stray partial file,
 * never a half-written backup under the target's name. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_internal.h"
#include "engine_internal.h"
#include "killpoint_internal.h"

/* 64 pages (256 KiB with SQLite's default page size) per step: each hold of the
 * writer mutex copies about that much memory into the destination's page cache. */
#define SAKO_BACKUP_STEP_PAGES 64
/* Between two steps the mutex is left free this long, so that a waiting writer
 * gets it (a mutex is not fair: unlock-then-lock would often win it back). */
#define SAKO_BACKUP_PAUSE_NS 200000L

int sako__backup_step_pages = SAKO_BACKUP_STEP_PAGES;
long long sako__backup_max_hold_ns;
long sako__backup_steps;

static long long mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Flush a file (or directory) to stable storage. */
static int sync_path(const char *path, int directory)
{
    int fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (fd < 0)
        return sako__error(SAKO_IO, "%s: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems cannot sync a directory: the data itself is synced. */
    if (rc != 0 && !(directory && (err == EINVAL || err == EBADF)))
        return sako__error(SAKO_IO, "syncing %s: %s", path, strerror(err));
    return SAKO_OK;
}

/* Copy page by page; the mutex is held per step only. */
static int copy_pages(sako_engine *e, const char *tmp)
{
    sako_store_backup *bk = NULL;
    pthread_mutex_lock(&e->write_mutex);
    int rc = sako__store_backup_begin(&e->store, tmp, &bk);
    pthread_mutex_unlock(&e->write_mutex);
    if (rc)
        return rc;
    int done = 0, busy = 0;
    int pages = sako__backup_step_pages > 0 ? sako__backup_step_pages : SAKO_BACKUP_STEP_PAGES;
    long long max_hold = 0;
    long steps = 0;
    while (rc == SAKO_OK && !done) {
        pthread_mutex_lock(&e->write_mutex);
        long long t0 = mono_ns();
        rc = sako__store_backup_step(bk, pages, &done);
        /* Another connection to the file (a reader such as the sqlite3 shell) may
         * hold a lock for a moment: the step is retried, for about 5 s at most. */
        if (rc == SAKO_BUSY && ++busy < 25000)
            rc = SAKO_OK;
        if (rc != SAKO_OK || done) {
            int fin = sako__store_backup_finish(bk);
            rc = rc ? rc : fin;
        }
        long long held = mono_ns() - t0;
        pthread_mutex_unlock(&e->write_mutex);
        max_hold = held > max_hold ? held : max_hold;
        steps++;
        if (rc == SAKO_OK && !done) {
            SAKO_KILL_POINT("backup.mid_copy");
            struct timespec pause = {0, SAKO_BACKUP_PAUSE_NS};
            nanosleep(&pause, NULL);
        }
    }
    sako__store_backup_free(bk);
    sako__backup_max_hold_ns = max_hold;
    sako__backup_steps = steps;
    return rc;
}

int sako_backup(sako_engine *e, const char *path)
{
    if (!e || !path)
        return sako__error(SAKO_MISUSE, "sako_backup: NULL engine or path");
    if (!*path || strcmp(path, ":memory:") == 0)
        return sako__error(SAKO_INVALID, "sako_backup: the target must be a file path");
    struct stat sb;
    if (lstat(path, &sb) == 0)
        return sako__error(SAKO_INVALID, "sako_backup: %s exists; a backup never overwrites a file",
                           path);
    if (errno != ENOENT)
        return sako__error(SAKO_IO, "sako_backup: %s: %s", path, strerror(errno));
    sako__error_clear();

    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".partial-XXXXXX");
    /* The directory is synced once the backup is linked into it; its name is made
     * now, so that nothing can fail for want of memory after the link. */
    char *parent = strdup(path);
    if (!tmp || !parent) {
        free(tmp);
        free(parent);
        return sako__error(SAKO_NOMEM, "out of memory");
    }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".partial-XXXXXX", sizeof ".partial-XXXXXX");
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = sako__error(SAKO_IO, "sako_backup: creating %s: %s", tmp, strerror(errno));
        free(tmp);
        free(parent);
        return rc;
    }
    close(fd);

    int rc = copy_pages(e, tmp);
    if (rc == SAKO_OK && (rc = sync_path(tmp, 0)) == SAKO_OK) {
        SAKO_KILL_POINT("backup.before_link");
        /* link() fails with EEXIST where rename() would overwrite silently. */
        if (link(tmp, path) != 0)
            rc = errno == EEXIST
                     ? sako__error(SAKO_INVALID, "sako_backup: %s was created during the backup; "
                                   "it was left alone", path)
                     : sako__error(SAKO_IO, "sako_backup: %s: %s", path, strerror(errno));
    }
    unlink(tmp);
    free(tmp);
    /* On failure no file is left at path: a backup whose directory entry could not
     * be synced is not reported as made. */
    if (rc == SAKO_OK && (rc = sync_path(dirname(parent), 1)) != SAKO_OK)
        unlink(path);
    free(parent);
    if (rc == SAKO_OK)
        sako__error_clear();
    return rc;
}
