/* Status codes with a thread-local message (error.c). Bottom layer: every file may use it. */
#ifndef SAKO_ERROR_INTERNAL_H
#define SAKO_ERROR_INTERNAL_H

#include <sqlite3.h>

#include "sako.h"

/* Set this thread's message and return `status` (printf-style). */
int sako__error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sako__error_clear(void);
/* Map an SQLite result code to a status, with the database's message. */
int sako__error_sqlite(sqlite3 *db, int rc, const char *what);
/* The checks every batch call starts with (engine, entries pointer, batch limit);
 * SAKO_OK, with the message cleared, to go on. `fn` and `what` name the call and
 * its entries in messages. */
int sako__error_check_batch(const sako_engine *e, const void *entries, size_t n,
                            const char *fn, const char *what);

#endif
