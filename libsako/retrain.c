/* Rebuilding the model from the event log, prior epochs and checkpoints. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "model_internal.h"
#include "retrain_internal.h"

typedef struct replay_state {
    sako_engine *e;
    sako_counts *counts;        /* a retrain: item counts rebuilt here (in this frame)... */
    sako_decay *counts_decay;
    sako_personal *personal;    /* ...and personal state here (else the engine's) */
    int64_t model_after;        /* without counts: batches after this reach items and users too */
    uint32_t *user, *item;      /* per-event indices, grown as needed */
    size_t cap;
} replay_state;

static int replay_batch(void *payload, int64_t seq, const sako_event *ev, const int64_t *orders,
                        size_t n)
{
    replay_state *rs = payload;
    sako_engine *e = rs->e;
    int model_too = !rs->counts && seq > rs->model_after;
    int rc;
    size_t n_users = 0;
    if (n > rs->cap) {
        free(rs->user);
        free(rs->item);
        rs->user = malloc(n * sizeof *rs->user);
        rs->item = malloc(n * sizeof *rs->item);
        rs->cap = rs->user && rs->item ? n : 0;
        if (!rs->cap)
            return sako__error(SAKO_NOMEM, "out of memory replaying the event log");
    }
    if ((model_too && (rc = sako__users_reserve(&e->users, n))) ||
        (rc = sako__users_indices(&e->users, ev, n, rs->user, &n_users)))
        return rc;
    if (!model_too && n_users != e->users.n)
        return sako__error(SAKO_CORRUPT, "event log: batch %lld names a user with no stored row",
                           (long long)seq);
    for (size_t j = 0; j < n; j++) {
        rs->item[j] = sako__idmap_get(&e->item_index, ev[j].item_id);
        if (rs->item[j] == SAKO_NONE)
            return sako__error(SAKO_CORRUPT, "event log names item %lld, not in the catalog",
                               (long long)ev[j].item_id);
    }
    if ((rc = sako__personal_reserve(rs->personal, n_users, ev, rs->user, rs->item, n)))
        return rc;
    if (!rs->counts) /* open: the retrain policy's counters since its last activation */
        sako__policy_replay(e, seq, ev, n);
    for (size_t j = 0; j < n; j++) {
        uint32_t item = rs->item[j];
        if (model_too)
            sako__users_apply(&e->users, &ev[j]);
        sako__personal_apply(rs->personal, &e->personal_params, &ev[j], orders ? orders[j] : 0,
                             rs->user[j], item);
        if (rs->counts) {
            /* As sako__model_apply_event does online, in the same order. */
            int64_t delta = sako__decay_observe(rs->counts_decay, ev[j].time);
            for (size_t i = 0; delta && i < e->n_items; i++)
                for (int t = 0; t < SAKO_EVENT_TYPES; t++)
                    rs->counts[i].n[t] = sako__decay_shrink(rs->counts[i].n[t], delta);
            rs->counts[item].n[ev[j].type] += sako__decay_weight(rs->counts_decay, ev[j].time);
        } else if (model_too) {
            /* n_events and events_since_refresh are stored per batch already. */
            sako__model_apply_event(e, &ev[j], item);
            e->events_since_checkpoint++;
        }
    }
    return SAKO_OK;
}

int sako__retrain_replay(sako_engine *e, int64_t model_after, sako_counts *counts,
                         sako_decay *counts_decay, sako_personal *personal)
{
    replay_state rs = { e, counts, counts_decay, personal ? personal : &e->personal, model_after,
                        NULL, NULL, 0 };
    int rc = sako__store_read_batches(&e->store, 0, replay_batch, &rs);
    free(rs.user);
    free(rs.item);
    return rc;
}

/* The counts of every dirty item (or, with `counts`, of every item whose counts
 * differ from those) and the totals of every dirty user, then the log position and
 * the counts' decay frame. The caller owns the transaction and clears the dirty
 * flags after it commits. */
static int write_checkpoint(sako_engine *e, const sako_counts *counts, const sako_decay *frame)
{
    int rc = SAKO_OK;
    for (size_t i = 0; i < e->n_items && rc == SAKO_OK; i++) {
        const sako_item_state *it = &e->items[i];
        const sako_counts *c = counts ? &counts[i] : &it->counts;
        if (!it->dirty && (!counts || memcmp(c, &it->counts, sizeof *c) == 0))
            continue;
        rc = sako__store_write_item_counts(&e->store, it->id, c, it->last_event_at);
    }
    if (rc == SAKO_OK)
        rc = sako__users_checkpoint(&e->users, &e->store);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "decay_offset", frame->offset);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "decay_latest", frame->latest);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "decay_epoch_at", e->decay_epoch_at);
    return rc ? rc : sako__store_checkpoint_done(&e->store);
}

/* The new priors (and, for a retrain, the counts and a model version) on disk. */
static int epoch_write(sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                       int64_t epoch_at, double root, const double *means, const sako_demand *demand)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    for (size_t c = 0; c < e->n_categories && rc == SAKO_OK; c++)
        rc = sako__store_write_category(&e->store, e->categories[c].id, means[c]);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_real(&e->store, "root_mean", root);
    if (rc == SAKO_OK)
        rc = sako__demand_write(e, demand);
    /* Counts are stored by checkpoints, independently of epochs; only a
     * retrain, which may change them, must write them now. */
    if (rc == SAKO_OK && counts)
        rc = write_checkpoint(e, counts, frame);
    /* With the counts, the parameters they were built with (a reconfigured half-life
     * reaches the file only with counts weighted for it). */
    if (rc == SAKO_OK && counts)
        rc = sako__store_write_params(&e->store, &e->params);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "decay_epoch_at", epoch_at);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "events_since_refresh", 0);
    if (rc == SAKO_OK && counts) {
        rc = sako__store_set_meta_int(&e->store, "model_version", e->model_version + 1);
        if (rc == SAKO_OK)
            rc = sako__store_record_model(&e->store, e->model_version + 1,
                                          sako__store_now_ms(), e->n_events);
    }
    if (rc) {
        sako__store_rollback(&e->store);
        return rc;
    }
    return sako__store_commit(&e->store);
}

/* Swap the new epoch in. Posteriors and samplers are computed before taking the
 * lock, so readers keep sampling the old epoch meanwhile. `*post` gets the old
 * posterior array back, for the caller to free. */
static void epoch_publish(sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                          int64_t epoch_at, double root, const double *means,
                          sako_demand **demand, sako_beta **post)
{
    sako_decay_ref ref = sako__decay_ref(frame->half_life_ms, epoch_at);
    sako__model_fill_posteriors_with(e, counts, frame, ref, root, means, *demand, *post);
    sako_domains *domains = NULL;
    int k = e->domains ? e->domains->k_target : SAKO_DOMAIN_DEFAULT_K;
    if (sako__domains_build(e, *post, k, &domains) != SAKO_OK)
        domains = NULL; /* queries brute-force until the next rebuild */
    pthread_rwlock_wrlock(&e->lock);
    for (size_t c = 0; c < e->n_categories; c++)
        e->categories[c].prior_mean = means[c];
    e->root_mean = root;
    e->decay_epoch_at = epoch_at;
    e->decay_ref = ref;
    if (counts) {
        e->decay = *frame;
        for (size_t i = 0; i < e->n_items; i++) {
            e->items[i].counts = counts[i];
            e->items[i].dirty = 0;
        }
        sako__users_clean(&e->users);
        e->events_since_checkpoint = 0;
        e->model_version++;
    }
    sako_beta *old = e->posterior;
    e->posterior = *post;
    *post = old;
    sako_domains *old_domains = e->domains;
    e->domains = domains;
    sako_demand *old_demand = e->demand;
    e->demand = *demand;
    *demand = old_demand;
    e->events_since_refresh = 0;
    pthread_rwlock_unlock(&e->lock);
    sako__domains_free(old_domains);
}

int sako__retrain_epoch(sako_engine *e, const sako_counts *counts, const sako_decay *counts_decay)
{
    /* The epoch's time is the log's latest event time, never the wall clock, so that
     * a replay of the log agrees. */
    const sako_decay *frame = counts ? counts_decay : &e->decay;
    int64_t epoch_at = frame->latest;
    sako_decay_ref ref = sako__decay_ref(frame->half_life_ms, epoch_at);
    size_t nc = e->n_categories;
    double *means = malloc((nc ? nc : 1) * sizeof *means);
    sako_beta *post = malloc((e->cap_items ? e->cap_items : 1) * sizeof *post);
    double root = 0.5;
    int rc = SAKO_OK;
    if (!means || !post)
        rc = sako__error(SAKO_NOMEM, "out of memory starting a prior epoch");
    sako_demand *demand = NULL;
    if (rc == SAKO_OK)
        rc = sako__model_refresh_priors(e, counts, frame, ref, &root, means);
    if (rc == SAKO_OK)
        rc = sako__demand_build(e, counts, frame, ref, root, means, &demand);
    if (rc == SAKO_OK)
        rc = epoch_write(e, counts, frame, epoch_at, root, means, demand);
    if (rc == SAKO_OK)
        epoch_publish(e, counts, frame, epoch_at, root, means, &demand, &post);
    sako__demand_free(demand);
    free(means);
    free(post);
    return rc;
}

int sako__retrain_checkpoint(sako_engine *e)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = write_checkpoint(e, NULL, &e->decay)) || (rc = sako__store_commit(&e->store))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < e->n_items; i++)
        e->items[i].dirty = 0;
    sako__users_clean(&e->users);
    e->events_since_checkpoint = 0;
    pthread_rwlock_unlock(&e->lock);
    return SAKO_OK;
}

int sako_retrain(sako_engine *e)
{
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_retrain: engine is NULL");
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    int rc = SAKO_OK;
    sako_personal fresh;
    memset(&fresh, 0, sizeof fresh);
    sako_decay frame;
    sako__decay_init(&frame, e->params.decay_half_life_days);
    sako_counts *counts = calloc(e->n_items ? e->n_items : 1, sizeof *counts);
    if (!counts)
        rc = sako__error(SAKO_NOMEM, "out of memory rebuilding %zu items", e->n_items);
    if (rc == SAKO_OK)
        rc = sako__personal_reserve_items(&fresh, e->cap_items);
    if (rc == SAKO_OK)
        rc = sako__retrain_replay(e, 0, counts, &frame, &fresh);
    if (rc == SAKO_OK) {
        /* The rebuilt personal state replaces the online one; the item counts follow
         * with the epoch (until then readers sample the old posteriors). */
        pthread_rwlock_wrlock(&e->lock);
        sako_personal old = e->personal;
        e->personal = fresh;
        fresh = old;
        pthread_rwlock_unlock(&e->lock);
        rc = sako__retrain_epoch(e, counts, &frame);
    }
    if (rc == SAKO_OK) /* the new model is active: the retrain policy counts from here */
        sako__policy_activated(e);
    sako__personal_free(&fresh);
    free(counts);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}
