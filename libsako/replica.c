/* The log position of a replica: the last batch of an external log (JetStream)
 * applied with an `_at` call. It lives in sako_meta ('log_position') and is written
 * in the batch's own transaction, so the file says exactly which batches it holds. */
#include <stdio.h>
#include <string.h>

#include "engine_internal.h"
#include "replica_internal.h"

int sako__replica_load(sako_engine *e)
{
    int64_t position = 0;
    int rc = sako__store_read_log_position(&e->store, &position);
    if (rc)
        return rc;
    if (position < 0)
        return sako__error(SAKO_CORRUPT, "database damaged: log_position %lld is negative",
                           (long long)position);
    e->log_position = position;
    return SAKO_OK;
}

int sako__replica_begin(sako_engine *e, sako_at *at)
{
    at->outcome = SAKO_AT_NONE;
    if (at->position > e->log_position)
        return SAKO_OK;
    at->outcome = SAKO_AT_SKIPPED;
    return 1;
}

int sako__replica_enter(sako_engine *e, sako_at *at, size_t n, int *rc)
{
    pthread_mutex_lock(&e->write_mutex);
    if (!at)
        return 0;
    if (sako__replica_begin(e, at))
        *rc = SAKO_OK; /* already applied */
    else if (*rc != SAKO_OK || n == 0)
        *rc = *rc ? sako__replica_failed(e, at, *rc) : sako__replica_consume(e, at);
    else
        return 0;
    pthread_mutex_unlock(&e->write_mutex);
    return 1;
}

int sako__replica_write(sako_engine *e, const sako_at *at)
{
    return at ? sako__store_set_meta_int(&e->store, "log_position", at->position) : SAKO_OK;
}

void sako__replica_applied(sako_engine *e, sako_at *at)
{
    if (!at)
        return;
    __atomic_store_n(&e->log_position, at->position, __ATOMIC_RELEASE);
    at->outcome = SAKO_AT_APPLIED;
}

/* The position alone, in its own transaction. */
static int consume(sako_engine *e, sako_at *at)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = sako__replica_write(e, at))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    if ((rc = sako__store_commit(&e->store)))
        return rc;
    __atomic_store_n(&e->log_position, at->position, __ATOMIC_RELEASE);
    return SAKO_OK;
}

int sako__replica_failed(sako_engine *e, sako_at *at, int rc)
{
    if (rc != SAKO_INVALID && rc != SAKO_NOTFOUND && rc != SAKO_RANGE)
        return rc; /* transient or a caller's bug: the batch is tried again */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sako_errmsg());
    int stored = consume(e, at);
    if (stored)
        return stored;
    at->outcome = SAKO_AT_REJECTED;
    return sako__error(rc, "%s (rejected at log position %lld)", msg, (long long)at->position);
}

int sako__replica_consume(sako_engine *e, sako_at *at)
{
    int rc = consume(e, at);
    if (rc == SAKO_OK)
        at->outcome = SAKO_AT_APPLIED;
    return rc;
}

int sako_log_position(sako_engine *e, int64_t *position_out)
{
    if (!e || !position_out)
        return sako__error(SAKO_MISUSE, "sako_log_position: NULL engine or position_out");
    *position_out = __atomic_load_n(&e->log_position, __ATOMIC_ACQUIRE);
    sako__error_clear();
    return SAKO_OK;
}
