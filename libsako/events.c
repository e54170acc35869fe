/* sako_update(): a batch of events staged, validated whole, logged, then applied
 * (the shape of the catalog's upserts, catalog.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint_internal.h"
#include "engine_internal.h"
#include "killpoint_internal.h"
#include "model_internal.h"
#include "replica_internal.h"
#include "retrain_internal.h"
#include "snapshot_internal.h"

/* Monotonic seconds: sako_update's phases, for benchmarks (0 unless `timed`: the
 * reads cost ~40 ns each, 1-2 % of a one-event batch in memory). */
static double update_clock(int timed)
{
    if (!timed)
        return 0.0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int check_event(const sako_event *ev, size_t i)
{
    if (!sako__idmap_valid_id(ev->user_id))
        return sako__error(SAKO_INVALID, "event [%zu]: user_id %lld is out of range [1, 2^53-1]",
                           i, (long long)ev->user_id);
    if (!sako__idmap_valid_id(ev->item_id))
        return sako__error(SAKO_INVALID, "event [%zu]: item_id %lld is out of range [1, 2^53-1]",
                           i, (long long)ev->item_id);
    if (ev->type < 0 || ev->type >= SAKO_EVENT_TYPES)
        return sako__error(SAKO_INVALID, "event [%zu]: type %d is not a sako_event_type", i, ev->type);
    if (ev->time < 0 || ev->time > SAKO_TIME_MAX)
        return sako__error(SAKO_INVALID, "event [%zu]: time %lld is not a unix time in ms",
                           i, (long long)ev->time);
    if (ev->rec_id != 0 && !sako__idmap_valid_id(ev->rec_id))
        return sako__error(SAKO_INVALID, "event [%zu]: rec_id %lld is out of range", i,
                           (long long)ev->rec_id);
    return SAKO_OK;
}

/* An event batch staged: a private copy with times resolved and items looked up. */
typedef struct event_batch {
    const sako_event *in;
    const int64_t *orders;   /* NULL or n order ids */
    size_t n;
    int64_t now;         /* the time of events that give none, and of created items */
    int replicated;      /* an `_at` batch: times must be given, created items are added
                            at the batch's latest event time (not the replica's clock) */
    sako_event *ev;
    uint32_t *item;      /* item index per event, SAKO_NONE for one the batch creates */
    uint32_t *user;      /* user index per event, provisional for users the batch creates */
    sako_idmap created;  /* unknown item id -> its order of first appearance */
    int64_t seq;         /* its sequence number in the log, once written */
    size_t n_created;
    int64_t *created_ids;
} event_batch;

static int event_stage(event_batch *b)
{
    b->ev = malloc(b->n * sizeof *b->ev);
    b->item = malloc(b->n * sizeof *b->item);
    b->user = malloc(b->n * sizeof *b->user);
    if (!b->ev || !b->item || !b->user)
        return sako__error(SAKO_NOMEM, "out of memory staging %zu events", b->n);
    return SAKO_OK;
}

/* An event on an unknown item: refused, or its item created (SAKO_UNKNOWN_CREATE). */
static int event_unknown_item(const sako_engine *e, event_batch *b, size_t i)
{
    int64_t id = b->ev[i].item_id;
    if (e->opts.unknown_items == SAKO_UNKNOWN_REJECT)
        return sako__error(SAKO_NOTFOUND, "event [%zu]: unknown item %lld", i, (long long)id);
    int rc = sako__idmap_reserve(&b->created, 1);
    if (rc == SAKO_OK && sako__idmap_get(&b->created, id) == SAKO_NONE)
        sako__idmap_put(&b->created, id, (uint32_t)b->n_created++);
    return rc;
}

static int event_validate(const sako_engine *e, event_batch *b)
{
    int rc;
    for (size_t i = 0; i < b->n; i++) {
        if ((rc = check_event(&b->in[i], i)))
            return rc;
        if (b->orders && (b->orders[i] < 0 || b->orders[i] > SAKO_ID_MAX))
            return sako__error(SAKO_INVALID, "event [%zu]: order_id %lld is out of range [0, 2^53-1]",
                               i, (long long)b->orders[i]);
        b->ev[i] = b->in[i];
        if (b->replicated && b->ev[i].time == 0)
            return sako__error(SAKO_INVALID, "event [%zu]: time 0 (now) in a replicated batch: "
                               "the publisher gives every event its time", i);
        if (b->replicated && b->ev[i].time > b->now)
            b->now = b->ev[i].time;
        if (b->ev[i].time == 0)
            b->ev[i].time = b->now;
        b->item[i] = sako__idmap_get(&e->item_index, b->ev[i].item_id);
        if (b->item[i] == SAKO_NONE && (rc = event_unknown_item(e, b, i)))
            return rc;
    }
    return SAKO_OK;
}

/* Every byte the publish step needs, before anything is written. Growing may move
 * arrays that concurrent readers use under the read lock (items, posteriors, the
 * item index, the root's members): hold the write lock while they move (see the
 * same fix in sako_items_upsert). */
static int event_reserve(sako_engine *e, event_batch *b)
{
    int rc;
    size_t n_users = 0;
    uint32_t *items = NULL;
    if ((rc = sako__users_indices(&e->users, b->ev, b->n, b->user, &n_users)))
        return rc;
    if (!(items = malloc(b->n * sizeof *items)))
        return sako__error(SAKO_NOMEM, "out of memory staging %zu events", b->n);
    for (size_t i = 0; i < b->n; i++)
        items[i] = b->item[i] != SAKO_NONE ? b->item[i]
                   : (uint32_t)(e->n_items + sako__idmap_get(&b->created, b->ev[i].item_id));
    pthread_rwlock_wrlock(&e->lock);
    if (!(rc = sako__users_reserve(&e->users, b->n)) &&
        !(rc = sako__catalog_reserve_items(e, b->n_created)) &&
        !(rc = sako__catalog_reserve_members(e, SAKO_NONE, b->n_created)))
        rc = sako__personal_reserve(&e->personal, n_users, b->ev, b->user, items, b->n);
    pthread_rwlock_unlock(&e->lock);
    free(items);
    if (rc || b->n_created == 0)
        return rc;
    b->created_ids = malloc(b->n_created * sizeof *b->created_ids);
    if (!b->created_ids)
        return sako__error(SAKO_NOMEM, "out of memory creating unknown items");
    for (size_t i = 0; i < b->n; i++)
        if (b->item[i] == SAKO_NONE)
            b->created_ids[sako__idmap_get(&b->created, b->ev[i].item_id)] = b->ev[i].item_id;
    return SAKO_OK;
}

/* Created items, the batch, the counters it moves and (a replica) its log
 * position, in one transaction. */
static int event_write(sako_engine *e, event_batch *b, const sako_at *at)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((b->n_created &&
         (rc = sako__store_create_items(&e->store, b->created_ids, b->n_created, b->now))) ||
        (rc = sako__store_append_batch(&e->store, b->ev, b->orders, b->n, sako__store_now_ms(),
                                       &b->seq)) ||
        (rc = sako__store_set_meta_int(&e->store, "n_events", (int64_t)(e->n_events + b->n))) ||
        (rc = sako__store_set_meta_int(&e->store, "events_since_refresh",
                                       (int64_t)(e->events_since_refresh + b->n))) ||
        (rc = sako__replica_write(e, at))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    SAKO_KILL_POINT("events.before_commit");
    return sako__store_commit(&e->store);
}

/* Acknowledged: into memory. Nothing here can fail (a sampling domain that cannot
 * follow marks itself broken and is rebuilt later). */
static void event_publish(sako_engine *e, event_batch *b)
{
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < b->n; i++) {
        uint32_t x = b->item[i];
        if (x == SAKO_NONE) {
            x = sako__idmap_get(&e->item_index, b->ev[i].item_id);
            if (x == SAKO_NONE)
                x = sako__catalog_add_item(e, b->ev[i].item_id, SAKO_NONE, 1, b->now);
            b->item[i] = x;
        }
        sako__snapshot_save(e, x); /* a background refresh keeps x as it was */
        sako__users_apply(&e->users, &b->ev[i]);
        sako__personal_apply(&e->personal, &e->personal_params, &b->ev[i],
                             b->orders ? b->orders[i] : 0, b->user[i], x);
        sako__model_apply_event(e, &b->ev[i], x);
        sako__policy_observe(&e->policy, e->params.reward, &b->ev[i]);
    }
    /* Each touched item's new posterior goes to the samplers once per batch. */
    uint32_t mark = ++e->batch_seq;
    for (size_t i = 0; i < b->n; i++) {
        sako_item_state *it = &e->items[b->item[i]];
        if (it->batch_mark == mark)
            continue;
        it->batch_mark = mark;
        sako__domains_item_changed(e, b->item[i], it->category, it->active);
    }
    e->n_events += b->n;
    e->events_since_refresh += b->n;
    e->events_since_checkpoint += b->n;
    __atomic_store_n(&e->last_batch, b->seq, __ATOMIC_RELEASE);
    pthread_rwlock_unlock(&e->lock);
    sako__domains_maintain(e);
}

/* Housekeeping in its own transaction: the batch is already safe, so a failure
 * here is reported nowhere but retried after the next batch. */
static void event_housekeeping(sako_engine *e)
{
    sako__retrain_refresh(e);
    /* An engine without a file is never reopened: the row budget would only cost. */
    if (e->events_since_checkpoint >= SAKO_CHECKPOINT_EVENTS ||
        (!e->store.in_memory && e->n_dirty_items + e->users.n_dirty >= SAKO_CHECKPOINT_ROWS))
        sako__retrain_checkpoint(e);
    sako__error_clear();
}

static void event_batch_free(event_batch *b)
{
    free(b->ev);
    free(b->item);
    free(b->user);
    free(b->created_ids);
    sako__idmap_free(&b->created);
}

static int update(sako_engine *e, const sako_event *events, const int64_t *orders, size_t n,
                  const char *fn, sako_at *at)
{
    int timed = e && e->time_update_phases;
    double t0 = update_clock(timed);
    int rc = sako__error_check_batch(e, events, n, fn, "events");
    if (rc == SAKO_MISUSE || (!at && (rc != SAKO_OK || n == 0)))
        return rc;
    if (sako__replica_enter(e, at, n, &rc))
        return rc;
    event_batch b = { .in = events, .orders = orders, .n = n, .replicated = at != NULL,
                      .now = at ? 0 : sako__store_now_ms() };
    double t[6];
    t[0] = t0;
    t[1] = t[2] = update_clock(timed);
    if (!(rc = event_stage(&b)) && !(rc = event_validate(e, &b)) && !(rc = event_reserve(e, &b)) &&
        (t[2] = update_clock(timed), !(rc = event_write(e, &b, at)))) {
        t[3] = update_clock(timed);
        SAKO_KILL_POINT("events.before_apply");
        sako__replica_applied(e, at);
        event_publish(e, &b);
        t[4] = update_clock(timed);
        event_housekeeping(e);
        t[5] = update_clock(timed);
        for (int k = 0; timed && k < 5; k++)
            if (t[k + 1] - t[k] > e->update_phase_max_s[k])
                e->update_phase_max_s[k] = t[k + 1] - t[k];
    } else if (at) {
        rc = sako__replica_failed(e, at, rc);
    }
    event_batch_free(&b);
    pthread_mutex_unlock(&e->write_mutex);
    /* A replica's background prior refresh lands before its next batch, as on every
     * other replica. */
    if (at && at->outcome == SAKO_AT_APPLIED)
        sako__retrain_settle(e);
    return rc;
}

int sako_update(sako_engine *e, const sako_event *events, size_t n)
{
    return update(e, events, NULL, n, "sako_update", NULL);
}

int sako_update_orders(sako_engine *e, const sako_event *events, const int64_t *order_ids, size_t n)
{
    return update(e, events, order_ids, n, "sako_update_orders", NULL);
}

int sako_update_at(sako_engine *e, int64_t position, const sako_event *events,
                   const int64_t *order_ids, size_t n, int *outcome_out)
{
    sako_at at = { position, SAKO_AT_NONE };
    if (outcome_out)
        *outcome_out = SAKO_AT_NONE;
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_update_at: engine is NULL");
    if (position < 1)
        return sako__error(SAKO_INVALID, "sako_update_at: position %lld is not >= 1",
                           (long long)position);
    int rc = update(e, events, order_ids, n, "sako_update_at", &at);
    if (outcome_out)
        *outcome_out = at.outcome;
    return rc;
}
