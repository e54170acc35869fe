/* Status codes, their static descriptions, and the per-thread detailed message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error_internal.h"

/* Thread-local so that a message survives a released GIL and a failed sako_init(). */
static __thread char last_message[512];

const char *sako_errstr(int status)
{
    switch (status) {
    case SAKO_OK: return "success";
    case SAKO_ERROR: return "internal error";
    case SAKO_NOMEM: return "out of memory";
    case SAKO_INVALID: return "invalid argument";
    case SAKO_NOTFOUND: return "not found";
    case SAKO_RANGE: return "out of range";
    case SAKO_IO: return "input/output error";
    case SAKO_CORRUPT: return "not a libsako database, or damaged";
    case SAKO_BUSY: return "database is busy";
    case SAKO_MISUSE: return "library misuse";
    case SAKO_VERSION: return "database schema is newer than this library";
    default: return "unknown status";
    }
}

const char *sako_errmsg(void)
{
    return last_message;
}

void sako__error_clear(void)
{
    last_message[0] = '\0';
}

int sako__error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    return status;
}

int sako__error_sqlite(sqlite3 *db, int rc, const char *what)
{
    int status;
    switch (rc & 0xff) {
    case SQLITE_NOMEM: status = SAKO_NOMEM; break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: status = SAKO_BUSY; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: status = SAKO_CORRUPT; break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM: status = SAKO_IO; break;
    default: status = SAKO_ERROR; break;
    }
    return sako__error(status, "%s: %s", what,
                       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int sako__error_check_batch(const sako_engine *e, const void *entries, size_t n, const char *fn,
                            const char *what)
{
    if (!e)
        return sako__error(SAKO_MISUSE, "%s: engine is NULL", fn);
    if (!entries && n > 0)
        return sako__error(SAKO_MISUSE, "%s: %s is NULL but n = %zu", fn, what, n);
    if (n > SAKO_MAX_BATCH)
        return sako__error(SAKO_RANGE, "%s: %zu %s exceed the batch limit %d", fn, n, what,
                           SAKO_MAX_BATCH);
    sako__error_clear();
    return SAKO_OK;
}
