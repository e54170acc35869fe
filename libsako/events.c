/* sako_update(): validate a batch whole, log it, then apply it. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "model_internal.h"
#include "retrain_internal.h"

/* Write every dirty item back (a checkpoint) at least this often, so that a reopen
 * replays a bounded tail of the event log. */
#define SAKO_CHECKPOINT_EVENTS 500000

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

int sako_update(sako_engine *e, const sako_event *events, size_t n)
{
    int rc = sako__engine_check_batch(e, events, n, "sako_update", "events");
    if (rc != SAKO_OK || n == 0)
        return rc;

    pthread_mutex_lock(&e->write_mutex);
    int64_t now = sako__engine_now_ms();
    /* A private copy: times resolved, item indices looked up once. */
    sako_event *ev = malloc(n * sizeof *ev);
    uint32_t *item = malloc(n * sizeof *item);
    sako_idmap created = { 0 }; /* unknown items this batch creates (SAKO_UNKNOWN_CREATE) */
    size_t n_created = 0;
    if (!ev || !item) {
        rc = sako__error(SAKO_NOMEM, "out of memory staging %zu events", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_event(&events[i], i)))
            goto done;
        ev[i] = events[i];
        if (ev[i].time == 0)
            ev[i].time = now;
        item[i] = sako__idmap_get(&e->item_index, ev[i].item_id);
        if (item[i] != SAKO_NONE)
            continue;
        if (e->opts.unknown_items == SAKO_UNKNOWN_REJECT) {
            rc = sako__error(SAKO_NOTFOUND, "event [%zu]: unknown item %lld", i,
                             (long long)ev[i].item_id);
            goto done;
        }
        if ((rc = sako__idmap_reserve(&created, 1)))
            goto done;
        if (sako__idmap_get(&created, ev[i].item_id) == SAKO_NONE)
            sako__idmap_put(&created, ev[i].item_id, (uint32_t)n_created++);
    }
    /* Every byte the apply step needs, before anything is written. Growing may
     * move arrays that concurrent readers use under the read lock (items,
     * posteriors, the item index, the root's members): hold the write lock while
     * they move (see the same fix in sako_items_upsert). */
    pthread_rwlock_wrlock(&e->lock);
    if (!(rc = sako__users_reserve(&e->users, n)) && !(rc = sako__catalog_reserve_items(e, n_created)))
        rc = sako__catalog_reserve_members(e, SAKO_NONE, n_created);
    pthread_rwlock_unlock(&e->lock);
    if (rc)
        goto done;

    if ((rc = sako__store_begin(&e->store)))
        goto done;
    if (n_created) {
        int64_t *ids = malloc(n_created * sizeof *ids);
        if (!ids)
            rc = sako__error(SAKO_NOMEM, "out of memory creating unknown items");
        for (size_t i = 0; i < n && ids; i++)
            if (item[i] == SAKO_NONE)
                ids[sako__idmap_get(&created, ev[i].item_id)] = ev[i].item_id;
        if (ids)
            rc = sako__store_create_items(&e->store, ids, n_created, now);
        free(ids);
    }
    int64_t seq = 0;
    if (rc == SAKO_OK)
        rc = sako__store_append_batch(&e->store, ev, n, sako__engine_now_ms(), &seq);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "n_events", (int64_t)(e->n_events + n));
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "events_since_refresh",
                                      (int64_t)(e->events_since_refresh + n));
    if (rc == SAKO_OK)
        rc = sako__store_commit(&e->store);
    else
        sako__store_rollback(&e->store);
    if (rc)
        goto done;

    /* Acknowledged: publish. Nothing below can fail (a sampling domain that cannot
     * follow marks itself broken and is rebuilt later). */
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < n; i++) {
        uint32_t x = item[i];
        if (x == SAKO_NONE) {
            x = sako__idmap_get(&e->item_index, ev[i].item_id);
            if (x == SAKO_NONE)
                x = sako__catalog_add_item(e, ev[i].item_id, SAKO_NONE, 1, now);
            item[i] = x;
        }
        sako__model_apply_event(e, &ev[i], x);
        sako__users_apply(&e->users, &ev[i]);
    }
    /* Each touched item's new posterior goes to the samplers once per batch. */
    uint32_t mark = ++e->batch_seq;
    for (size_t i = 0; i < n; i++) {
        sako_item_state *it = &e->items[item[i]];
        if (it->batch_mark == mark)
            continue;
        it->batch_mark = mark;
        sako__domains_item_changed(e, item[i], it->category, it->active);
    }
    e->n_events += n;
    e->events_since_refresh += n;
    e->events_since_checkpoint += n;
    pthread_rwlock_unlock(&e->lock);
    sako__domains_maintain(e);

    /* Housekeeping in its own transaction: the batch is already safe, so a failure
     * here is reported nowhere but retried after the next batch. */
    if (sako__model_refresh_due(e))
        sako__retrain_epoch(e, NULL);
    if (e->events_since_checkpoint >= SAKO_CHECKPOINT_EVENTS)
        sako__retrain_checkpoint(e);
    sako__error_clear();
done:
    free(ev);
    free(item);
    sako__idmap_free(&created);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}
