/* Rebuilding the model from the event log, prior epochs and checkpoints; since 0.4
 * a retrain's model version, its gate, and the activation of a stored version. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "factors_internal.h"
#include "gate_internal.h"
#include "killpoint_internal.h"
#include "logstate_internal.h"
#include "model_internal.h"
#include "replica_internal.h"
#include "retrain_internal.h"
#include "snapshot_internal.h"

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

/* The state a replay holds at the log checkpoint (none: fresh), loaded into
 * `personal` and, with `counts` (cap_counts items), the counts and their frame;
 * resolved through the engine's maps (under its read lock when `lock`). */
static int load_log_checkpoint(sako_engine *e, sako_store *st, int64_t batch, pthread_rwlock_t *lock,
                               size_t n_users, sako_counts *counts, size_t cap_counts,
                               sako_decay *counts_decay, sako_personal *personal)
{
    if (batch == 0)
        return SAKO_OK;
    sako_decay frame;
    sako__decay_init(&frame, e->params.decay_half_life_days);
    int rc = sako__personal_reserve(personal, n_users, NULL, NULL, NULL, 0);
    if (rc)
        return rc;
    sako_logstate_dst d = { batch, &e->item_index, &e->users.index, lock, &e->personal_params,
                            counts, cap_counts, counts_decay ? counts_decay : &frame, personal, 0 };
    return sako__logstate_load(st, &d);
}

int sako__retrain_replay(sako_engine *e, int64_t model_after, sako_counts *counts,
                         sako_decay *counts_decay, sako_personal *personal)
{
    replay_state rs = { e, counts, counts_decay, personal ? personal : &e->personal, model_after,
                        NULL, NULL, 0 };
    /* From the log checkpoint (the batches before it are gone). */
    int rc = load_log_checkpoint(e, &e->store, e->compact_batch, NULL, e->users.n, counts,
                                 counts ? e->n_items : 0, counts_decay, rs.personal);
    if (rc == SAKO_OK)
        rc = sako__store_read_batches(&e->store, e->compact_batch, replay_batch, &rs);
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

/* A new version's row, its fit and the housekeeping around it, inside the caller's
 * transaction: the legacy `models` row, the version counter, and the versions
 * beyond keep_versions deleted. `ver->version` is set here. */
static int version_write(sako_engine *e, sako_store_version *ver, const sako_store_fit *fit)
{
    ver->version = e->model_version + 1;
    SAKO_KILL_POINT("version.before_row");
    int rc = sako__store_version_insert(&e->store, ver, fit);
    if (rc == SAKO_OK && ver->status == SAKO_MODEL_ACTIVE)
        rc = sako__store_version_activate(&e->store, ver->version);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "model_version", ver->version);
    if (rc == SAKO_OK)
        rc = sako__store_record_model(&e->store, ver->version, ver->created_at, ver->n_events);
    if (rc == SAKO_OK)
        rc = sako__store_versions_prune(&e->store, e->policy.policy.keep_versions, NULL);
    if (rc == SAKO_OK) /* a replica's retrain entry: consumed with the version it built */
        rc = sako__replica_write(e, e->retrain_at);
    SAKO_KILL_POINT("version.after_row");
    return rc;
}

/* A version that is not activated (rejected, or kept inactive under a pin): its row
 * in a transaction of its own; the served model stays. */
static int version_record(sako_engine *e, sako_store_version *ver, const sako_store_fit *fit)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = version_write(e, ver, fit))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    SAKO_KILL_POINT("version.record_before_commit");
    if ((rc = sako__store_commit(&e->store)))
        return rc;
    pthread_rwlock_wrlock(&e->lock);
    e->model_version = ver->version;
    pthread_rwlock_unlock(&e->lock);
    e->last_retrain_version = ver->version;
    int hold = e->version_hold;
    if (sako__store_versions_hold(&e->store, &hold) == SAKO_OK)
        e->version_hold = hold;
    sako__error_clear();
    return SAKO_OK;
}

/* The new priors on disk, as of the log's time `epoch_at`, with `counts` (when
 * given, in decay frame `frame`) as a checkpoint and, with `ver` (a retrain), a
 * new model version, activated, with its fit and the parameters the counts were
 * built with (a reconfigured half-life reaches the file only with counts weighted
 * for it); `since` events were logged after the batch whose evidence the epoch used. */
static int epoch_write(sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                       int64_t epoch_at, sako_store_version *ver, double root,
                       const double *means, const sako_demand *demand, uint64_t since)
{
    sako_store_fit fit;
    memset(&fit, 0, sizeof fit);
    int version = ver != NULL;
    int rc = ver ? sako__model_fit_capture(e, root, means, demand, epoch_at, &fit) : SAKO_OK;
    if (rc == SAKO_OK)
        rc = sako__store_begin(&e->store);
    if (rc) {
        sako__store_fit_free(&fit);
        return rc;
    }
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
    if (rc == SAKO_OK && (counts || version))
        rc = sako__store_write_params(&e->store, &e->params);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "decay_epoch_at", epoch_at);
    if (rc == SAKO_OK)
        rc = sako__store_set_meta_int(&e->store, "events_since_refresh", (int64_t)since);
    if (rc == SAKO_OK && version) {
        ver->status = SAKO_MODEL_ACTIVE;
        rc = version_write(e, ver, &fit);
    }
    sako__store_fit_free(&fit);
    if (rc) {
        sako__store_rollback(&e->store);
        return rc;
    }
    SAKO_KILL_POINT(version ? "retrain.before_commit" : "refresh.before_commit");
    if (version)
        SAKO_KILL_POINT("version.publish_before_commit");
    if ((rc = sako__store_commit(&e->store)))
        return rc;
    if (version) {
        SAKO_KILL_POINT("version.publish_after_commit");
        e->last_retrain_version = ver->version;
        e->version_hold = 0; /* the newest version, just activated, and not pinned */
    }
    return SAKO_OK;
}

/* Swap a computed epoch (of the log's time `epoch_at`) in, under the write lock;
 * with `counts`, those in decay frame `frame` replace the items'. `*post`,
 * `*demand` and (when given) `*personal` get the old ones back, for the caller to
 * free. */
static void epoch_swap(sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                       int64_t epoch_at, int version, double root, const double *means,
                       sako_demand **demand, sako_beta **post, sako_domains *domains,
                       sako_personal *personal, uint64_t since)
{
    sako_decay_ref ref = sako__decay_ref(frame->half_life_ms, epoch_at);
    SAKO_KILL_POINT(version ? "retrain.before_swap" : "refresh.before_swap");
    pthread_rwlock_wrlock(&e->lock);
    if (personal) {
        sako_personal old = e->personal;
        e->personal = *personal;
        *personal = old;
    }
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
        e->n_dirty_items = 0;
        sako__users_clean(&e->users);
        e->events_since_checkpoint = 0;
    }
    if (version)
        e->model_version++;
    sako_beta *old = e->posterior;
    e->posterior = *post;
    *post = old;
    sako_domains *old_domains = e->domains;
    e->domains = domains;
    sako_demand *old_demand = e->demand;
    e->demand = *demand;
    *demand = old_demand;
    e->events_since_refresh = since;
    e->epoch_serial++;
    pthread_rwlock_unlock(&e->lock);
    sako__domains_free(old_domains);
}

/* What computing one item's posterior under a new epoch and mirroring it into the
 * new samplers reads of the engine (caller holds the writer mutex), with the new
 * posterior array and samplers. Not a copy of the whole struct: readers change
 * some of its fields (request counter, scratch pool) concurrently. */
static void epoch_view(const sako_engine *e, sako_beta *post, sako_domains *domains,
                       sako_engine *v)
{
    memset(v, 0, sizeof *v);
    v->params = e->params;
    v->personal_params = e->personal_params;
    v->items = e->items;
    v->n_items = e->n_items;
    v->cap_items = e->cap_items;
    v->categories = e->categories;
    v->n_categories = e->n_categories;
    v->personal = e->personal;
    v->decay = e->decay;
    v->decay_epoch_at = e->decay_epoch_at;
    v->decay_ref = e->decay_ref;
    v->posterior = post;
    v->domains = domains;
}

/* The k the samplers are tuned for (at least what queries have asked). */
static int domains_k(sako_engine *e)
{
    pthread_rwlock_rdlock(&e->lock);
    int k = e->domains ? e->domains->k_target : SAKO_DOMAIN_DEFAULT_K;
    pthread_rwlock_unlock(&e->lock);
    int want = (int)__atomic_load_n(&e->k_hint, __ATOMIC_RELAXED);
    return want > k ? want : k;
}

/* Swap the new epoch in. Posteriors and samplers are computed before taking the
 * lock, so readers keep sampling the old epoch meanwhile. `*post` gets the old
 * posterior array back, for the caller to free. */
static void epoch_publish(sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                          int64_t epoch_at, int version, double root, const double *means,
                          sako_demand **demand, sako_beta **post)
{
    sako_decay_ref ref = sako__decay_ref(frame->half_life_ms, epoch_at);
    sako__model_fill_posteriors_with(e, counts, frame, ref, root, means, *demand, *post);
    sako_domains *domains = NULL;
    int k = e->domains ? e->domains->k_target : SAKO_DOMAIN_DEFAULT_K;
    if (sako__domains_build(e, *post, k, &domains) != SAKO_OK)
        domains = NULL; /* queries brute-force until the next rebuild */
    epoch_swap(e, counts, frame, epoch_at, version, root, means, demand, post, domains,
               NULL, 0);
}

/* A fit that is not finite everywhere is recorded as rejected and not published
 * (*published_out = 0). */
static int gate_finite(sako_engine *e, double root, const double *means, const sako_demand *demand,
                       int64_t epoch_at, sako_store_version *ver, int *published_out)
{
    sako_store_fit fit;
    char why[160];
    int rc = sako__model_fit_capture(e, root, means, demand, epoch_at, &fit);
    if (rc == SAKO_OK && !sako__model_fit_finite(&fit, why, sizeof why)) {
        ver->status = SAKO_MODEL_REJECTED;
        snprintf(ver->verdict, sizeof ver->verdict, "rejected: not finite (%s)", why);
        rc = version_record(e, ver, &fit);
        *published_out = 0;
    }
    sako__store_fit_free(&fit);
    return rc;
}

/* An epoch; with `ver` (a retrain computing it under the writer mutex), a version
 * gated on finiteness only, then activated. */
static int retrain_epoch_as(sako_engine *e, const sako_counts *counts,
                            const sako_decay *counts_decay, sako_store_version *ver)
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
    if (rc == SAKO_OK && ver && e->fit_hook)
        e->fit_hook(e, &root, means, nc, e->fit_hook_arg);
    if (rc == SAKO_OK)
        rc = sako__demand_build(e, counts, frame, ref, root, means, &demand);
    int publish = 1;
    if (rc == SAKO_OK && ver)
        rc = gate_finite(e, root, means, demand, epoch_at, ver, &publish);
    if (rc == SAKO_OK && publish)
        rc = epoch_write(e, counts, frame, epoch_at, ver, root, means, demand, 0);
    if (rc == SAKO_OK && publish)
        epoch_publish(e, counts, frame, epoch_at, ver != NULL, root, means, &demand, &post);
    sako__demand_free(demand);
    free(means);
    free(post);
    return rc;
}

int sako__retrain_epoch(sako_engine *e, const sako_counts *counts, const sako_decay *counts_decay)
{
    return retrain_epoch_as(e, counts, counts_decay, NULL);
}

/* ------------------------------------------------ the prior refresh off the mutex
 *
 * A refresh falls due after an update (sako__model_refresh_due). On a large
 * catalog it runs on a thread of its own: the update that found it due notes the
 * log position P (its own batch) and starts copying the evidence on write
 * (snapshot.c), and returns. The thread copies the rest, computes the epoch of P
 * on a catalog snapshot (priors, demand, posteriors, samplers) with neither the
 * writer mutex nor the read lock, then takes the writer mutex to give every item
 * changed or created since P its posterior under the new priors, writes the
 * priors and swaps. The result is that of an inline refresh at P followed by the
 * later batches. It is dropped (and started again by a later update) if the
 * catalog changed shape or another epoch was published meanwhile. */

typedef struct refresh_job {
    sako_engine *e;
    uint64_t n_events;        /* at P */
    size_t n_items;           /* at P */
    size_t cap_items;         /* room at P */
    uint64_t catalog_gen, serial;
    sako_evidence_snap *snap; /* also holds the decay frames at P */
} refresh_job;

/* Under the writer mutex: the items changed since P, the write and the swap. */
static int refresh_finish(sako_engine *e, const refresh_job *r, double root, const double *means,
                          sako_demand **demand, sako_beta **post, sako_domains **domains)
{
    int64_t epoch_at = r->snap->decay.latest;
    sako_decay_ref ref = sako__decay_ref(r->snap->decay.half_life_ms, epoch_at);
    sako_beta *p = *post;
    if (e->cap_items > r->cap_items) {
        if (!(p = realloc(*post, e->cap_items * sizeof *p)))
            return sako__error(SAKO_NOMEM, "out of memory growing posteriors to %zu items",
                               e->cap_items);
        *post = p;
    }
    sako_engine now;
    epoch_view(e, p, *domains, &now);
    now.decay_epoch_at = epoch_at;
    now.decay_ref = ref;
    for (size_t i = 0; i < e->n_items; i++) {
        if (i < r->n_items && !r->snap->touched[i])
            continue;
        sako__model_posterior_with(&now, NULL, &e->decay, ref, root, means, *demand, (uint32_t)i,
                                   &p[i]);
        sako__domains_item_changed(&now, (uint32_t)i, SAKO_NONE,
                                   i < r->n_items && e->items[i].active);
    }
    uint64_t since = e->n_events - r->n_events;
    int rc = epoch_write(e, NULL, &e->decay, epoch_at, NULL, root, means, *demand, since);
    if (rc)
        return rc;
    epoch_swap(e, NULL, &e->decay, epoch_at, 0, root, means, demand, post, *domains, NULL, since);
    *domains = NULL;
    return SAKO_OK;
}

/* Monotonic seconds (how long the writer mutex is held: benchmarks). */
static double retrain_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int refresh_cancelled(sako_engine *e)
{
    return __atomic_load_n(&e->refresh_cancel, __ATOMIC_ACQUIRE);
}

/* Catch-up rounds before the last step, and items per hold of the read lock. */
#define REFRESH_ROUNDS 4
#define REFRESH_CHUNK 16384

/* Off the writer mutex, in rounds under short read locks: every item a batch after
 * P touched gets its posterior under the new priors (from its counts now) and the
 * new samplers follow, its flag cleared; a later batch that touches it again sets it
 * again. The last step under the mutex (refresh_finish) then redoes only the items
 * touched since the last round, instead of all those touched while the epoch was
 * computed (seconds at 1M items under load). Items created since P are left to it. */
static void refresh_catch_up(sako_engine *e, const refresh_job *r, double root,
                             const double *means, const sako_demand *demand, sako_beta *post,
                             sako_domains *domains)
{
    int64_t epoch_at = r->snap->decay.latest;
    sako_decay_ref ref = sako__decay_ref(r->snap->decay.half_life_ms, epoch_at);
    for (int round = 0; round < REFRESH_ROUNDS && !refresh_cancelled(e); round++) {
        size_t redone = 0;
        for (size_t at = 0; at < r->n_items; at += REFRESH_CHUNK) {
            size_t end = r->n_items - at < REFRESH_CHUNK ? r->n_items : at + REFRESH_CHUNK;
            pthread_rwlock_rdlock(&e->lock);
            /* A rebase or another epoch makes the whole refresh void (checked under
             * the mutex at the end): nothing more to do here. */
            if (e->decay.offset != r->snap->decay.offset || e->epoch_serial != r->serial) {
                pthread_rwlock_unlock(&e->lock);
                return;
            }
            sako_engine now;
            epoch_view(e, post, domains, &now);
            now.decay_epoch_at = epoch_at;
            now.decay_ref = ref;
            for (size_t i = at; i < end; i++) {
                /* Writers set the flags under the write lock; this thread is the
                 * only one that clears them, under the read lock. */
                if (!r->snap->touched[i])
                    continue;
                r->snap->touched[i] = 0;
                sako__model_posterior_with(&now, NULL, &e->decay, ref, root, means, demand,
                                           (uint32_t)i, &post[i]);
                sako__domains_item_changed(&now, (uint32_t)i, SAKO_NONE, e->items[i].active);
                redone++;
            }
            pthread_rwlock_unlock(&e->lock);
        }
        if (e->refresh_round_hook)
            e->refresh_round_hook(e, e->refresh_hook_arg);
        if (redone < REFRESH_CHUNK / 16)
            break;
    }
}

static void *refresh_main(void *arg)
{
    refresh_job *r = arg;
    sako_engine *e = r->e, *v = NULL;
    double root = 0.5, *means = NULL;
    sako_demand *demand = NULL;
    sako_beta *post = NULL;
    sako_domains *domains = NULL;
    if (e->refresh_hook)
        e->refresh_hook(e, e->refresh_hook_arg);
    sako__snapshot_evidence_copy(e, r->snap);
    int rc = refresh_cancelled(e) ? SAKO_ERROR : sako__snapshot_catalog(e, r->n_items, r->n_events, &v);
    if (rc == SAKO_OK) {
        sako__snapshot_evidence_view(r->snap, v);
        size_t nc = v->n_categories;
        means = malloc((nc ? nc : 1) * sizeof *means);
        post = malloc((r->cap_items ? r->cap_items : 1) * sizeof *post);
        if (!means || !post)
            rc = sako__error(SAKO_NOMEM, "out of memory computing a prior epoch");
    }
    /* The epoch of P: at the log's time then, from the evidence in its frames then. */
    sako_decay_ref ref = sako__decay_ref(r->snap->decay.half_life_ms, r->snap->decay.latest);
    if (rc == SAKO_OK)
        rc = sako__model_refresh_priors(v, NULL, &v->decay, ref, &root, means);
    if (rc == SAKO_OK)
        rc = sako__demand_build(v, NULL, &v->decay, ref, root, means, &demand);
    if (rc == SAKO_OK) {
        sako__model_fill_posteriors_with(v, NULL, &v->decay, ref, root, means, demand, post);
        if (refresh_cancelled(e) || sako__domains_build(v, post, domains_k(e), &domains) != SAKO_OK)
            domains = NULL; /* queries brute-force until the next rebuild */
    }
    if (v) {
        memset(&v->personal, 0, sizeof v->personal);
        sako__snapshot_free(v);
    }
    if (rc == SAKO_OK && domains)
        refresh_catch_up(e, r, root, means, demand, post, domains);
    pthread_mutex_lock(&e->write_mutex);
    double held = retrain_clock();
    /* Dropped (and started again by a later update) if the catalog changed shape,
     * another epoch was published, or a decay rebase rescaled the evidence while it
     * was being copied (offsets only grow: an equal offset means no rebase). */
    if (rc == SAKO_OK && !refresh_cancelled(e) && e->catalog_gen == r->catalog_gen &&
        e->epoch_serial == r->serial && e->decay.offset == r->snap->decay.offset &&
        e->personal.decay.offset == r->snap->personal_decay.offset)
        refresh_finish(e, r, root, means, &demand, &post, &domains);
    sako__snapshot_evidence_end(e, r->snap);
    held = retrain_clock() - held;
    if (held > e->refresh_hold_max_s)
        e->refresh_hold_max_s = held;
    pthread_mutex_unlock(&e->write_mutex);
    sako__domains_free(domains);
    sako__demand_free(demand);
    free(post);
    free(means);
    free(r);
    sako__error_clear();
    __atomic_store_n(&e->refresh_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

void sako__retrain_refresh(sako_engine *e)
{
    if (e->refresh_running && __atomic_load_n(&e->refresh_done, __ATOMIC_ACQUIRE)) {
        pthread_join(e->refresh_thread, NULL);
        e->refresh_running = 0;
    }
    if (e->refresh_running || e->retraining || e->version_hold || !sako__model_refresh_due(e))
        return;
    if (e->n_items <= e->refresh_sync_items) {
        sako__retrain_epoch(e, NULL, NULL);
        return;
    }
    refresh_job *r = calloc(1, sizeof *r);
    if (!r || sako__snapshot_evidence_begin(e, &r->snap) != SAKO_OK) {
        free(r);
        return; /* tried again after the next batch */
    }
    r->e = e;
    r->n_events = e->n_events;
    r->n_items = e->n_items;
    r->cap_items = e->cap_items;
    r->catalog_gen = e->catalog_gen;
    r->serial = e->epoch_serial;
    e->refresh_done = 0;
    if (pthread_create(&e->refresh_thread, NULL, refresh_main, r) != 0) {
        sako__snapshot_evidence_end(e, r->snap);
        free(r);
        sako__retrain_epoch(e, NULL, NULL);
        return;
    }
    e->refresh_running = 1;
}

void sako__retrain_settle(sako_engine *e)
{
    for (;;) {
        pthread_mutex_lock(&e->write_mutex);
        int running = e->refresh_running;
        if (running && __atomic_load_n(&e->refresh_done, __ATOMIC_ACQUIRE)) {
            pthread_join(e->refresh_thread, NULL);
            e->refresh_running = 0;
            running = 0;
        }
        pthread_mutex_unlock(&e->write_mutex);
        if (!running)
            return;
        struct timespec ts = { 0, 200000 }; /* the refresh takes the mutex to finish */
        nanosleep(&ts, NULL);
    }
}

void sako__retrain_stop(sako_engine *e)
{
    if (!e->refresh_running)
        return;
    __atomic_store_n(&e->refresh_cancel, 1, __ATOMIC_RELEASE);
    pthread_join(e->refresh_thread, NULL);
    e->refresh_running = 0;
    __atomic_store_n(&e->refresh_cancel, 0, __ATOMIC_RELEASE);
}

int sako__retrain_checkpoint(sako_engine *e)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    SAKO_KILL_POINT("checkpoint.before_write");
    double t0 = retrain_clock();
    if ((rc = write_checkpoint(e, NULL, &e->decay))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    double t1 = retrain_clock();
    if ((rc = sako__store_commit(&e->store))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    double t2 = retrain_clock();
    if (t1 - t0 > e->checkpoint_rows_max_s)
        e->checkpoint_rows_max_s = t1 - t0;
    if (t2 - t1 > e->checkpoint_commit_max_s)
        e->checkpoint_commit_max_s = t2 - t1;
    e->n_checkpoints++;
    SAKO_KILL_POINT("checkpoint.committed");
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < e->n_items; i++)
        e->items[i].dirty = 0;
    e->n_dirty_items = 0;
    sako__users_clean(&e->users);
    e->events_since_checkpoint = 0;
    pthread_rwlock_unlock(&e->lock);
    return SAKO_OK;
}

/* ------------------------------------------------ the retrain off the writer mutex
 *
 * A retrain notes the log's last batch P under the writer mutex and lets go of it.
 * It then replays batches <= P into fresh counts and a fresh personal state on a
 * second, read-only connection, and computes the epoch of P (priors, demand,
 * posteriors, samplers) on a snapshot of the catalog: readers keep sampling the
 * active state and updates keep being acknowledged meanwhile. It catches up with
 * the batches logged since in rounds, then takes the writer mutex for the last
 * few: every item those batches touched (or created) gets its posterior from the
 * epoch's priors and its final counts, exactly as sako_update() would have given
 * it after a retrain at P. The checkpoint and the model row are written in one
 * transaction and the new state swapped in under the write lock. The result is
 * therefore that of a retrain run right after batch P, followed by the later
 * batches: bit for bit what a reopen rebuilds. */

/* Catch-up rounds off the mutex before the last one under it. */
#define RETRAIN_ROUNDS 4
/* Events read per statement: each is a read transaction of its own, so that the
 * writer's WAL checkpoints are not held back for the whole replay. */
#define RETRAIN_READ_EVENTS 100000
/* Events whose ids are resolved per hold of the read lock. */
#define RETRAIN_RESOLVE_EVENTS 4096

typedef struct fresh_state {
    sako_engine *e;
    int locked;               /* the caller holds the writer mutex: no read lock needed */
    int catching_up;          /* batches after P: mark what they touch */
    sako_counts *counts;      /* per item, grown with the catalog... */
    sako_decay decay;         /* ...in this decay frame */
    int64_t epoch_at;         /* the epoch's time, and the reference the items touched */
    sako_decay_ref ref;       /* after P are computed at (see fresh_batch) */
    uint8_t *touched;         /* per item: changed by a batch after P */
    size_t cap_counts;
    sako_personal personal;
    uint32_t *pending;        /* items touched after P whose posterior is not redone yet */
    size_t n_pending, cap_pending;
    int failed;               /* out of memory listing them: redo every item at the end */
    uint64_t since;           /* events in the batches after P */
    uint32_t *user, *item;
    size_t cap;
} fresh_state;

static int fresh_grow(fresh_state *fs, size_t n_items)
{
    if (n_items <= fs->cap_counts)
        return SAKO_OK;
    size_t cap = fs->cap_counts ? fs->cap_counts : 16;
    while (cap < n_items)
        cap *= 2;
    sako_counts *c = realloc(fs->counts, cap * sizeof *c);
    if (c)
        fs->counts = c;
    uint8_t *t = c ? realloc(fs->touched, cap) : NULL;
    if (!t)
        return sako__error(SAKO_NOMEM, "out of memory rebuilding %zu items", n_items);
    fs->touched = t;
    memset(fs->counts + fs->cap_counts, 0, (cap - fs->cap_counts) * sizeof *c);
    memset(fs->touched + fs->cap_counts, 0, cap - fs->cap_counts);
    fs->cap_counts = cap;
    return SAKO_OK;
}

/* One logged batch into the fresh state. Ids are resolved under the read lock
 * (writers may be growing the maps), then applied to the private state unlocked. */
static int fresh_batch(void *payload, int64_t seq, const sako_event *ev, const int64_t *orders,
                       size_t n)
{
    fresh_state *fs = payload;
    sako_engine *e = fs->e;
    if (n > fs->cap) {
        free(fs->user);
        free(fs->item);
        fs->user = malloc(n * sizeof *fs->user);
        fs->item = malloc(n * sizeof *fs->item);
        fs->cap = fs->user && fs->item ? n : 0;
        if (!fs->cap)
            return sako__error(SAKO_NOMEM, "out of memory replaying the event log");
    }
    size_t n_users = 0, n_items = 0;
    int rc = SAKO_OK;
    for (size_t at = 0; at < n && rc == SAKO_OK; at += RETRAIN_RESOLVE_EVENTS) {
        size_t m = n - at < RETRAIN_RESOLVE_EVENTS ? n - at : RETRAIN_RESOLVE_EVENTS;
        if (!fs->locked)
            pthread_rwlock_rdlock(&e->lock);
        rc = sako__users_indices(&e->users, ev + at, m, fs->user + at, &n_users);
        if (rc == SAKO_OK && n_users != e->users.n)
            rc = sako__error(SAKO_CORRUPT, "event log: batch %lld names a user with no stored "
                             "row", (long long)seq);
        for (size_t j = at; j < at + m && rc == SAKO_OK; j++) {
            fs->item[j] = sako__idmap_get(&e->item_index, ev[j].item_id);
            if (fs->item[j] == SAKO_NONE)
                rc = sako__error(SAKO_CORRUPT, "event log names item %lld, not in the catalog",
                                 (long long)ev[j].item_id);
        }
        n_items = e->n_items;
        if (!fs->locked)
            pthread_rwlock_unlock(&e->lock);
    }
    if (rc || (rc = fresh_grow(fs, n_items)) ||
        (rc = sako__personal_reserve(&fs->personal, n_users, ev, fs->user, fs->item, n)))
        return rc;
    for (size_t j = 0; j < n; j++) {
        uint32_t item = fs->item[j];
        if (fs->catching_up && fs->decay.half_life_ms > 0.0 && fs->epoch_at == 0) {
            /* An epoch of an empty log: as online, the first event's time becomes the
             * reference until the next epoch (sako__model_apply_event). */
            fs->epoch_at = ev[j].time;
            fs->ref = sako__decay_ref(fs->decay.half_life_ms, ev[j].time);
        }
        sako__personal_apply(&fs->personal, &e->personal_params, &ev[j], orders ? orders[j] : 0,
                             fs->user[j], item);
        /* As sako__model_apply_event does online, in the same order. A rebase
         * rescales every item exactly (by a power of two): no posterior changes,
         * so only the event's item counts as touched. */
        int64_t delta = sako__decay_observe(&fs->decay, ev[j].time);
        for (size_t i = 0; delta && i < fs->cap_counts; i++)
            for (int t = 0; t < SAKO_EVENT_TYPES; t++)
                fs->counts[i].n[t] = sako__decay_shrink(fs->counts[i].n[t], delta);
        fs->counts[item].n[ev[j].type] += sako__decay_weight(&fs->decay, ev[j].time);
        if (fs->catching_up && !fs->touched[item]) {
            fs->touched[item] = 1;
            if (fs->n_pending == fs->cap_pending) {
                size_t cap = fs->cap_pending ? 2 * fs->cap_pending : 1024;
                uint32_t *p = realloc(fs->pending, cap * sizeof *p);
                if (!p) {
                    fs->failed = 1;
                    continue;
                }
                fs->pending = p;
                fs->cap_pending = cap;
            }
            fs->pending[fs->n_pending++] = item;
        }
    }
    if (fs->catching_up)
        fs->since += n;
    return SAKO_OK;
}

/* A retrain in progress: the epoch of batch P, built off the mutex. */
typedef struct retrain_job {
    int64_t position;         /* P, then the last batch replayed */
    int64_t from;             /* the log checkpoint's batch: the replay starts after it */
    size_t n_users;           /* users at P */
    int64_t fitted_at;        /* P: the batch the new version is fitted up to */
    uint64_t catalog_gen;     /* the catalog the epoch was computed on */
    size_t n_items;           /* items at P */
    size_t cap_items;         /* room at P: the posteriors are allocated for it */
    uint64_t n_events;        /* events at P */
    sako_store reader;
    fresh_state fs;
    double root, *means;
    int64_t epoch_at;         /* the log's time at P: the epoch's priors and demand are */
    sako_decay_ref ref;       /* built at it */
    sako_demand *demand;
    sako_beta *post;
    sako_domains *domains;
    sako_engine *view;        /* the catalog snapshot the epoch was computed on */
    uint8_t *suspect;         /* per item of the snapshot: online counts differed after
                                 the last round (or the comparison could not be made) */
    /* the version and its gate */
    sako_policy policy;       /* as at the start */
    sako_store_version ver;   /* its row, filled as the gate goes */
    int passed;               /* the gate's decision (before the pin is considered) */
    uint32_t *gate_items;     /* scratch: a holdout batch's item indices */
    size_t cap_gate_items;
    sako_gate *gate;
    sako_factors *factors;    /* trained on the state at P (NULL: factors off or no data) */
} retrain_job;

static void job_free(retrain_job *j)
{
    sako__store_close(&j->reader);
    free(j->fs.counts);
    free(j->fs.touched);
    free(j->fs.user);
    free(j->fs.item);
    free(j->fs.pending);
    free(j->suspect);
    free(j->gate_items);
    sako__gate_free(j->gate);
    if (j->view)
        memset(&j->view->personal, 0, sizeof j->view->personal);
    sako__snapshot_free(j->view);
    sako__personal_free(&j->fs.personal);
    free(j->means);
    sako__demand_free(j->demand);
    free(j->post);
    sako__domains_free(j->domains);
    sako__factors_free(j->factors);
}

/* The catalog snapshot the epochs are computed on (once per retrain). */
static int job_view(sako_engine *e, retrain_job *j)
{
    if (!j->view) {
        int rc = sako__snapshot_catalog(e, j->n_items, j->n_events, &j->view);
        if (rc)
            return rc;
    }
    j->view->personal = j->fs.personal; /* borrowed: given back before the view is freed */
    return SAKO_OK;
}

/* The epoch of P on a snapshot of the catalog, from the fresh state. */
static int job_compute(sako_engine *e, retrain_job *j)
{
    int rc = job_view(e, j);
    if (rc)
        return rc;
    sako_engine *v = j->view;
    size_t nc = v->n_categories;
    j->means = malloc((nc ? nc : 1) * sizeof *j->means);
    j->post = malloc((j->cap_items ? j->cap_items : 1) * sizeof *j->post);
    if (!j->means || !j->post)
        rc = sako__error(SAKO_NOMEM, "out of memory computing a prior epoch");
    j->epoch_at = j->fs.decay.latest;
    j->ref = sako__decay_ref(j->fs.decay.half_life_ms, j->epoch_at);
    v->decay = j->fs.decay;
    v->decay_epoch_at = j->epoch_at;
    v->decay_ref = j->ref;
    j->fs.epoch_at = j->epoch_at;
    j->fs.ref = j->ref;
    const sako_decay *frame = &j->fs.decay;
    if (rc == SAKO_OK)
        rc = sako__model_refresh_priors(v, j->fs.counts, frame, j->ref, &j->root, j->means);
    if (rc == SAKO_OK && e->fit_hook)
        e->fit_hook(e, &j->root, j->means, nc, e->fit_hook_arg);
    if (rc == SAKO_OK)
        rc = sako__demand_build(v, j->fs.counts, frame, j->ref, j->root, j->means, &j->demand);
    if (rc == SAKO_OK) {
        sako__model_fill_posteriors_with(v, j->fs.counts, frame, j->ref, j->root, j->means,
                                         j->demand, j->post);
        if (sako__domains_build(v, j->post, domains_k(e), &j->domains) != SAKO_OK)
            j->domains = NULL; /* queries brute-force until the next rebuild */
        sako__error_clear();
    }
    return rc;
}

/* The items touched after P get their posterior under the epoch's priors from
 * their counts so far, and the new samplers follow; those of the snapshot here
 * (off the mutex: both are still private), those appended since it at the end. */
static void job_redo_pending(retrain_job *j, const sako_engine *catalog)
{
    fresh_state *fs = &j->fs;
    sako_engine v;
    memset(&v, 0, sizeof v);
    v.params = catalog->params;
    v.items = catalog->items;
    v.n_items = catalog->n_items;
    v.categories = catalog->categories;
    v.n_categories = catalog->n_categories;
    v.personal = fs->personal;
    v.decay = fs->decay;
    v.decay_epoch_at = fs->epoch_at;
    v.decay_ref = fs->ref;
    v.posterior = j->post;
    v.domains = j->domains;
    size_t keep = 0;
    for (size_t k = 0; k < fs->n_pending; k++) {
        uint32_t i = fs->pending[k];
        if (i >= j->n_items) {
            fs->pending[keep++] = i;
            continue;
        }
        sako__model_posterior_with(&v, fs->counts, &fs->decay, fs->ref, j->root, j->means, j->demand,
                                   i, &j->post[i]);
        sako__domains_item_changed(&v, i, SAKO_NONE, v.items[i].active);
        fs->touched[i] = 0;
    }
    fs->n_pending = keep;
}

/* Batches (after, upto] through `batch` (fresh_batch: into the fresh state), a
 * statement per RETRAIN_READ_EVENTS. */
static int job_read_with(retrain_job *j, int64_t after, int64_t upto,
                         int (*batch)(void *, int64_t, const sako_event *, const int64_t *, size_t),
                         void *payload)
{
    int rc = SAKO_OK;
    while (after < upto && rc == SAKO_OK)
        rc = sako__store_read_batch_range(&j->reader, after, upto, RETRAIN_READ_EVENTS, &after,
                                          batch, payload);
    return rc;
}

static int job_read(retrain_job *j, int64_t after, int64_t upto)
{
    return job_read_with(j, after, upto, fresh_batch, &j->fs);
}

/* ------------------------------------------------------------ the gate
 *
 * Validate, then refit: the candidate ("challenger") is the epoch of the log up to
 * the holdout's start H; it and the active version (the "champion", its stored fit)
 * are scored on the holdout (H, P] with the same replayed state (gate.c); if the
 * challenger is not worse than the champion by more than gate_margin, the version
 * activated is the epoch of the whole log up to P, computed next as any retrain's.
 * Every fit must be finite everywhere. Without a champion, a holdout, or enough
 * baskets in it, finiteness alone decides, and the verdict says so. */

/* One holdout batch: scored before it is applied, then applied, then the items it
 * touched get their new means. */
static int gate_batch(void *payload, int64_t seq, const sako_event *ev, const int64_t *orders,
                      size_t n)
{
    retrain_job *j = payload;
    sako_engine *e = j->fs.e;
    if (n > j->cap_gate_items) {
        uint32_t *p = realloc(j->gate_items, n * sizeof *p);
        if (!p)
            return sako__error(SAKO_NOMEM, "out of memory scoring the holdout");
        j->gate_items = p;
        j->cap_gate_items = n;
    }
    pthread_rwlock_rdlock(&e->lock);
    for (size_t k = 0; k < n; k++)
        j->gate_items[k] = sako__idmap_get(&e->item_index, ev[k].item_id);
    pthread_rwlock_unlock(&e->lock);
    sako__gate_score(j->gate, ev, orders, j->gate_items, n);
    int rc = fresh_batch(&j->fs, seq, ev, orders, n);
    if (rc)
        return rc;
    j->view->personal = j->fs.personal; /* the replay may have grown it */
    sako__gate_changed(j->gate, j->view, j->fs.counts, &j->fs.decay, j->gate_items, n);
    return SAKO_OK;
}

/* The holdout, the challenger and the scores; on entry the fresh state is at the
 * log checkpoint (j->from), on return at *read_upto (H, or P after a scored
 * holdout). */
static int job_gate(sako_engine *e, retrain_job *j, int64_t *read_upto)
{
    sako_store_version *ver = &j->ver;
    const sako_policy *p = &j->policy;
    *read_upto = j->from;
    double share = floor(p->gate_holdout_fraction * (double)j->n_events);
    uint64_t want = share < (double)p->gate_holdout_events ? (uint64_t)share : p->gate_holdout_events;
    int64_t start = j->position;
    uint64_t held = 0;
    int rc = sako__store_holdout_start(&j->reader, j->position, want, &start, &held);
    if (rc)
        return rc;
    /* The batches up to the log checkpoint are gone (compaction keeps at least
     * gate_holdout_events after it, so only a policy raised since, or a compaction's
     * unfinished deletion, gets here): the holdout is what the log still holds after
     * it, and the challenger the epoch of the checkpoint's state. */
    int cut = j->from > 0 && start <= j->from && want > 0;
    if (cut) {
        start = j->from;
        if ((rc = sako__store_events_between(&j->reader, start, j->position, &held)))
            return rc;
    }
    if (want == 0 || start <= 0 || start >= j->position) {
        if (cut)
            snprintf(ver->verdict, sizeof ver->verdict, "no holdout: the log up to batch %lld "
                     "was compacted (%llu events wanted of %llu)", (long long)j->from,
                     (unsigned long long)want, (unsigned long long)j->n_events);
        else
            snprintf(ver->verdict, sizeof ver->verdict, "no holdout (%llu events wanted of %llu)",
                     (unsigned long long)want, (unsigned long long)j->n_events);
        return SAKO_OK;
    }
    ver->holdout_events = held;
    if ((rc = job_read(j, j->from, start)) || (rc = job_view(e, j)))
        return rc;
    *read_upto = start;
    sako_engine *v = j->view;
    size_t nc = v->n_categories;
    double *means = malloc(2 * (nc ? nc : 1) * sizeof *means);
    sako_demand *demand[2] = { NULL, NULL };
    sako_store_fit champion, challenger;
    memset(&champion, 0, sizeof champion);
    memset(&challenger, 0, sizeof challenger);
    if (!means)
        return sako__error(SAKO_NOMEM, "out of memory fitting the challenger");
    /* The challenger: the epoch of H. */
    sako_gate_model models[2];
    memset(models, 0, sizeof models);
    models[0].means = means;
    models[0].ref = sako__decay_ref(j->fs.decay.half_life_ms, j->fs.decay.latest);
    v->decay = j->fs.decay;
    v->decay_epoch_at = j->fs.decay.latest;
    v->decay_ref = models[0].ref;
    rc = sako__model_refresh_priors(v, j->fs.counts, &j->fs.decay, models[0].ref, &models[0].root,
                                    means);
    if (rc == SAKO_OK && e->fit_hook)
        e->fit_hook(e, &models[0].root, means, nc, e->fit_hook_arg);
    if (rc == SAKO_OK)
        rc = sako__demand_build(v, j->fs.counts, &j->fs.decay, models[0].ref, models[0].root,
                                means, &demand[0]);
    models[0].demand = demand[0];
    char why[160];
    if (rc == SAKO_OK &&
        (rc = sako__model_fit_capture(v, models[0].root, means, demand[0],
                                      j->fs.decay.latest, &challenger)) == SAKO_OK &&
        !sako__model_fit_finite(&challenger, why, sizeof why)) {
        snprintf(ver->verdict, sizeof ver->verdict, "rejected: challenger not finite (%s)", why);
        j->passed = -1;
    }
    /* The champion: the active version's stored fit, on the same catalog. */
    size_t n_models = 1;
    if (rc == SAKO_OK && j->passed == 0 && ver->champion > 0) {
        int crc = sako__store_version_fit(&j->reader, ver->champion, &champion);
        if (crc == SAKO_OK)
            crc = sako__model_fit_restore(v, &champion, 0, means + (nc ? nc : 1), &demand[1]);
        if (crc == SAKO_NOMEM) {
            rc = crc;
        } else if (crc == SAKO_OK) {
            models[1].root = champion.root_mean;
            models[1].means = means + (nc ? nc : 1);
            models[1].demand = demand[1];
            models[1].ref = sako__decay_ref(j->fs.decay.half_life_ms, champion.epoch_at);
            n_models = 2;
        } else {
            snprintf(ver->verdict, sizeof ver->verdict, "champion %lld unreadable (%s)",
                     (long long)ver->champion, sako_errmsg());
            ver->champion = 0;
            sako__error_clear();
        }
    }
    if (rc == SAKO_OK && j->passed == 0)
        rc = sako__gate_begin(v, j->n_items, j->fs.counts, &j->fs.decay, models, n_models,
                              (size_t)held, &j->gate);
    if (rc == SAKO_OK && j->passed == 0) {
        rc = job_read_with(j, start, j->position, gate_batch, j);
        *read_upto = j->position;
        double scores[2] = { 0.0, 0.0 };
        uint64_t baskets = 0;
        sako__gate_result(j->gate, scores, &baskets);
        ver->score = scores[0];
        ver->champion_score = n_models == 2 ? scores[1] : 0.0;
        ver->holdout_baskets = baskets;
        ver->scored = n_models == 2 && baskets >= p->gate_min_baskets && baskets > 0;
        if (ver->scored && scores[0] < scores[1] - p->gate_margin) {
            j->passed = -1;
            snprintf(ver->verdict, sizeof ver->verdict, "rejected: NDCG@%d %.4f vs %.4f of "
                     "version %lld (margin %g, %llu baskets)", SAKO_GATE_K, scores[0], scores[1],
                     (long long)ver->champion, p->gate_margin, (unsigned long long)baskets);
        } else if (ver->scored) {
            snprintf(ver->verdict, sizeof ver->verdict, "passed: NDCG@%d %.4f vs %.4f of "
                     "version %lld (margin %g, %llu baskets)", SAKO_GATE_K, scores[0], scores[1],
                     (long long)ver->champion, p->gate_margin, (unsigned long long)baskets);
        } else {
            snprintf(ver->verdict, sizeof ver->verdict, "%s (NDCG@%d %.4f, %llu baskets, %llu "
                     "needed)", n_models == 2 ? "too few baskets" : "no active version",
                     SAKO_GATE_K, scores[0], (unsigned long long)baskets,
                     (unsigned long long)p->gate_min_baskets);
        }
    }
    if (cut && rc == SAKO_OK) {
        size_t at = strlen(ver->verdict);
        snprintf(ver->verdict + at, sizeof ver->verdict - at, "; holdout cut to the log after "
                 "the compaction point (batch %lld): %llu of %llu events wanted",
                 (long long)j->from, (unsigned long long)held, (unsigned long long)want);
    }
    sako__gate_free(j->gate);
    j->gate = NULL;
    sako__demand_free(demand[0]);
    sako__demand_free(demand[1]);
    sako__store_fit_free(&champion);
    sako__store_fit_free(&challenger);
    free(means);
    return rc;
}

/* `prefix` before the verdict (cut to fit). */
static void verdict_prefix(char *verdict, const char *prefix)
{
    size_t p = strlen(prefix), n = strlen(verdict);
    if (p >= SAKO_VERDICT_MAX - 1)
        return;
    if (p + n >= SAKO_VERDICT_MAX)
        n = SAKO_VERDICT_MAX - 1 - p;
    memmove(verdict + p, verdict, n);
    memcpy(verdict, prefix, p);
    verdict[p + n] = '\0';
}

/* The first batch the version is fitted on: the log's first, or batch 1 when the
 * log checkpoint stands for the batches up to it. */
static int version_first_batch(retrain_job *j)
{
    if (j->from > 0 && j->position > 0) {
        j->ver.first_batch = 1;
        return SAKO_OK;
    }
    return sako__store_first_batch(&j->reader, &j->ver.first_batch);
}

/* Off the mutex: the gate's holdout, the fresh state at P, its epoch (finite?),
 * then catch-up rounds. */
static int job_build(sako_engine *e, retrain_job *j)
{
    int rc;
    int64_t read_upto = 0;
    j->fs.e = e;
    sako__decay_init(&j->fs.decay, e->params.decay_half_life_days);
    if ((rc = sako__store_open_reader(&e->store, e->opts.busy_timeout_ms, &j->reader)) ||
        (rc = fresh_grow(&j->fs, j->cap_items)) ||
        (rc = sako__personal_reserve_items(&j->fs.personal, j->cap_items)) ||
        (rc = load_log_checkpoint(e, &j->reader, j->from, &e->lock, j->n_users, j->fs.counts,
                                  j->fs.cap_counts, &j->fs.decay, &j->fs.personal)) ||
        (rc = version_first_batch(j)) ||
        (rc = job_gate(e, j, &read_upto)) ||
        (rc = job_read(j, read_upto, j->position)) ||
        (rc = job_compute(e, j)))
        return rc;
    /* The matrix factorisation, on the same state at P, off the mutex: recommendations
     * keep the current factors until the new ones are published. */
    sako_factors_range range = { j->ver.first_batch, j->fitted_at, j->n_events };
    if ((rc = sako__factors_train(&j->fs.personal.inter, j->n_users, j->view->items, j->n_items,
                                  &e->params, e->opts.mf_threads, &range, &j->factors)))
        return rc;
    /* Finite everywhere: the fit at P, and every posterior it gives. */
    sako_store_fit fit;
    char why[160];
    if ((rc = sako__model_fit_capture(j->view, j->root, j->means, j->demand, j->epoch_at, &fit)))
        return rc;
    int finite = sako__model_fit_finite(&fit, why, sizeof why);
    sako__store_fit_free(&fit);
    for (size_t i = 0; finite && i < j->n_items; i++)
        if (!(isfinite(j->post[i].a) && isfinite(j->post[i].b) && j->post[i].a > 0.0 &&
              j->post[i].b > 0.0)) {
            finite = 0;
            snprintf(why, sizeof why, "posterior of item %lld: Beta(%g, %g)",
                     (long long)j->view->items[i].id, j->post[i].a, j->post[i].b);
        }
    if (!finite) {
        j->passed = -1;
        snprintf(j->ver.verdict, sizeof j->ver.verdict, "rejected: not finite (%s)", why);
    } else if (j->passed == 0) {
        if (strncmp(j->ver.verdict, "passed", 6) != 0)
            verdict_prefix(j->ver.verdict, "passed on finiteness: ");
        j->passed = 1;
    }
    SAKO_KILL_POINT("version.after_gate");
    if (e->retrain_hook)
        e->retrain_hook(e, e->retrain_hook_arg);
    j->fs.catching_up = 1;
    for (int round = 0; round < RETRAIN_ROUNDS; round++) {
        int64_t last = __atomic_load_n(&e->last_batch, __ATOMIC_ACQUIRE);
        if (last == j->position)
            break;
        if ((rc = job_read(j, j->position, last)))
            return rc;
        j->position = last;
        job_redo_pending(j, j->view);
    }
    /* Which online counts differ from the rebuilt ones, compared here under short
     * read locks so that the last step need not scan the catalog. An update logged
     * after the last round makes its items differ here spuriously; they are in the
     * last batches and compared again there. */
    j->suspect = calloc(j->n_items ? j->n_items : 1, 1);
    for (size_t at = 0; at < j->n_items; at += 16384) {
        size_t end = j->n_items - at < 16384 ? j->n_items : at + 16384;
        pthread_rwlock_rdlock(&e->lock);
        for (size_t i = at; i < end; i++)
            if (!j->suspect ||
                memcmp(&j->fs.counts[i], &e->items[i].counts, sizeof j->fs.counts[i]) != 0) {
                if (!j->suspect)
                    break;
                j->suspect[i] = 1;
            }
        pthread_rwlock_unlock(&e->lock);
        if (!j->suspect)
            break;
    }
    return SAKO_OK;
}

/* Whether a version that passed its gate is activated: not when the active version
 * is pinned and no one asked by hand (writer mutex held). */
static int pinned_against(sako_engine *e, sako_store_version *ver)
{
    int64_t active = 0;
    int pinned = 0;
    if ((ver->reasons & SAKO_RETRAIN_MANUAL) ||
        sako__store_version_active(&e->store, &active) != SAKO_OK || active == 0 ||
        sako__store_version_pinned(&e->store, active, &pinned) != SAKO_OK || !pinned) {
        sako__error_clear();
        return 0;
    }
    char prefix[80];
    snprintf(prefix, sizeof prefix, "not activated: active version %lld pinned; ", (long long)active);
    verdict_prefix(ver->verdict, prefix);
    return 1;
}

/* Under the writer mutex: the last batches, the items they touched, the write and
 * the swap (or, for a version not activated, its row only). */
static int job_finish(sako_engine *e, retrain_job *j)
{
    fresh_state *fs = &j->fs;
    fs->locked = 1;
    int rc;
    if ((rc = job_read(j, j->position, e->last_batch)) ||
        (rc = fresh_grow(fs, e->n_items)) ||
        (rc = sako__personal_reserve_items(&fs->personal, e->cap_items)) ||
        (rc = sako__personal_reserve(&fs->personal, e->users.n, NULL, NULL, NULL, 0)))
        return rc;
    if (j->passed < 0 || pinned_against(e, &j->ver)) {
        /* Recorded, not activated: the served model and the online state stay (the
         * rebuilt counts and histories equal them: they are the log's). */
        sako_store_fit fit;
        j->ver.status = j->passed < 0 ? SAKO_MODEL_REJECTED : SAKO_MODEL_INACTIVE;
        if ((rc = sako__model_fit_capture(j->view, j->root, j->means, j->demand, j->epoch_at,
                                          &fit)))
            return rc;
        rc = version_record(e, &j->ver, &fit);
        sako__store_fit_free(&fit);
        return rc ? rc : 1; /* 1: nothing activated */
    }
    if (e->catalog_gen != j->catalog_gen) {
        /* An item moved or the tree changed while the epoch was computed: compute
         * it again here, on the catalog as it is, from the state at the last batch. */
        pthread_rwlock_wrlock(&e->lock);
        sako_personal old = e->personal;
        e->personal = fs->personal;
        fs->personal = old;
        pthread_rwlock_unlock(&e->lock);
        rc = retrain_epoch_as(e, fs->counts, &fs->decay, &j->ver);
        return rc ? rc : j->ver.status == SAKO_MODEL_ACTIVE ? SAKO_OK : 1;
    }
    if (e->cap_items > j->cap_items) {
        sako_beta *post = realloc(j->post, e->cap_items * sizeof *post);
        if (!post)
            return sako__error(SAKO_NOMEM, "out of memory growing posteriors to %zu items",
                               e->cap_items);
        j->post = post;
    }
    /* The epoch's priors with each item's final state: those touched by the last
     * batches, and those appended since the snapshot. */
    sako_engine now;
    epoch_view(e, j->post, j->domains, &now);
    now.personal = fs->personal;
    now.decay = fs->decay;
    now.decay_epoch_at = fs->epoch_at;
    now.decay_ref = fs->ref;
    for (size_t i = 0; i < e->n_items; i++) {
        if (i < j->n_items && !fs->touched[i] && !fs->failed)
            continue;
        sako__model_posterior_with(&now, fs->counts, &fs->decay, fs->ref, j->root, j->means,
                                   j->demand, (uint32_t)i, &j->post[i]);
        sako__domains_item_changed(&now, (uint32_t)i, SAKO_NONE,
                                   i < j->n_items && e->items[i].active);
    }
    /* The rebuilt counts equal the online ones unless the online state went wrong:
     * only then are they written (a whole checkpoint). Otherwise the dirty items
     * wait for the next regular checkpoint and the transaction stays small. */
    const sako_counts *fix = NULL;
    if (memcmp(&fs->decay, &e->decay, sizeof fs->decay) != 0)
        fix = fs->counts; /* a reconfigured half-life, or a frame gone wrong */
    for (size_t i = 0; i < e->n_items && !fix; i++) {
        if (i < j->n_items && j->suspect && !j->suspect[i] && !fs->touched[i])
            continue;
        if (memcmp(&fs->counts[i], &e->items[i].counts, sizeof fs->counts[i]) != 0)
            fix = fs->counts;
    }
    double t0 = retrain_clock();
    rc = epoch_write(e, fix, &fs->decay, fs->epoch_at, &j->ver, j->root, j->means, j->demand,
                     fs->since);
    e->retrain_commit_s = retrain_clock() - t0;
    if (rc)
        return rc;
    epoch_swap(e, fix, &fs->decay, fs->epoch_at, 1, j->root, j->means, &j->demand, &j->post,
               j->domains, &fs->personal, fs->since);
    j->domains = NULL;
    return SAKO_OK;
}

/* Stored factors of other trainings than the served one (a replaced training, or one a
 * crash or failure left unswitched) deleted, a few rows per transaction, each taking
 * the writer mutex unless `locked` (best effort: what is left goes next time). */
#define FACTORS_TRIM_ROWS 8
static void factors_trim(sako_engine *e, int locked)
{
    for (int done = 0; !done;) {
        if (!locked)
            pthread_mutex_lock(&e->write_mutex);
        int rc = sako__store_begin(&e->store);
        if (rc == SAKO_OK && !(rc = sako__store_mf_trim(&e->store, e->mf_serial, FACTORS_TRIM_ROWS,
                                                        &done)))
            rc = sako__store_commit(&e->store);
        if (rc)
            sako__store_rollback(&e->store);
        if (!locked)
            pthread_mutex_unlock(&e->write_mutex);
        if (rc) {
            sako__error_clear();
            return;
        }
    }
}

/* New factors written beside the served ones as training e->mf_serial + 1, one chunk
 * (~1 MiB) per transaction, each holding the writer mutex only for itself unless
 * `locked`: at 1M products that is hundreds of short stalls instead of one of seconds.
 * Nothing serves them until factors_publish switches to them. Only one retrain runs at
 * a time, so the serial is this one's. */
static int factors_store(sako_engine *e, const sako_factors *f, int locked, int64_t *serial_out)
{
    factors_trim(e, locked);
    if (!locked)
        pthread_mutex_lock(&e->write_mutex);
    int64_t serial = e->mf_serial + 1;
    sako_factors_writer w;
    int rc = sako__factors_writer_init(&w, f, e->items, e->users.v);
    if (!locked)
        pthread_mutex_unlock(&e->write_mutex);
    while (rc == SAKO_OK) {
        int part;
        int64_t chunk;
        const void *data;
        size_t bytes;
        int more = sako__factors_writer_next(&w, &part, &chunk, &data, &bytes);
        if (more <= 0) {
            rc = more;
            break;
        }
        if (!locked)
            pthread_mutex_lock(&e->write_mutex);
        rc = sako__store_begin(&e->store);
        if (rc == SAKO_OK &&
            !(rc = sako__store_mf_write_chunk(&e->store, serial, part, chunk, data, bytes)))
            rc = sako__store_commit(&e->store);
        if (rc)
            sako__store_rollback(&e->store);
        if (!locked)
            pthread_mutex_unlock(&e->write_mutex);
        SAKO_KILL_POINT("mf.chunk_written");
    }
    sako__factors_writer_free(&w);
    *serial_out = serial;
    return rc;
}

/* The stored training `serial` becomes the served one, in one small transaction, and
 * the factors are swapped in under the write lock (writer mutex held). They are not
 * versioned: each training replaces the last, whatever the gate decides about the
 * population model (docs/architecture.md, "Matrix factorisation in the engine"). */
static int factors_publish(sako_engine *e, sako_factors **fp, int64_t serial)
{
    sako_factors *f = *fp;
    if (!f)
        return SAKO_OK;
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = sako__store_mf_switch(&e->store, serial))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    SAKO_KILL_POINT("mf.before_commit");
    if ((rc = sako__store_commit(&e->store))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    SAKO_KILL_POINT("mf.after_commit");
    pthread_rwlock_wrlock(&e->lock);
    sako_factors *old = e->factors;
    e->factors = f;
    e->mf_serial = serial;
    pthread_rwlock_unlock(&e->lock);
    sako__factors_free(old);
    *fp = NULL;
    return SAKO_OK;
}

/* A version's row as a retrain starts it (writer mutex held). */
static void version_start(sako_engine *e, sako_store_version *ver, unsigned reasons)
{
    memset(ver, 0, sizeof *ver);
    ver->created_at = sako__store_now_ms();
    ver->reasons = reasons;
    ver->last_batch = e->last_batch;
    ver->n_events = e->n_events;
    if (sako__store_version_active(&e->store, &ver->champion) != SAKO_OK)
        ver->champion = 0;
    sako__error_clear();
}

/* In-memory databases have no second connection: the whole retrain holds the
 * writer mutex (readers still go on until the swap). Their gate is finiteness only
 * (no holdout is scored). Returns 1 when the version was not activated. */
static int retrain_blocking(sako_engine *e, unsigned reasons)
{
    int rc = SAKO_OK;
    sako_personal fresh;
    memset(&fresh, 0, sizeof fresh);
    sako_decay frame;
    sako__decay_init(&frame, e->params.decay_half_life_days);
    sako_store_version ver;
    version_start(e, &ver, reasons);
    ver.first_batch = ver.last_batch > 0 ? 1 : 0;
    snprintf(ver.verdict, sizeof ver.verdict, "passed on finiteness: in-memory database (no "
             "holdout is scored)");
    sako_counts *counts = calloc(e->n_items ? e->n_items : 1, sizeof *counts);
    if (!counts)
        rc = sako__error(SAKO_NOMEM, "out of memory rebuilding %zu items", e->n_items);
    if (rc == SAKO_OK)
        rc = sako__personal_reserve_items(&fresh, e->cap_items);
    if (rc == SAKO_OK)
        rc = sako__retrain_replay(e, 0, counts, &frame, &fresh);
    if (rc == SAKO_OK) {
        sako_factors *factors = NULL;
        sako_factors_range range = { ver.first_batch, ver.last_batch, ver.n_events };
        int64_t serial = 0;
        rc = sako__factors_train(&fresh.inter, e->users.n, e->items, e->n_items, &e->params,
                                 e->opts.mf_threads, &range, &factors);
        if (rc == SAKO_OK && factors)
            rc = factors_store(e, factors, 1, &serial);
        if (rc == SAKO_OK)
            rc = factors_publish(e, &factors, serial);
        if (rc == SAKO_OK && serial)
            factors_trim(e, 1);
        sako__factors_free(factors);
    }
    if (rc == SAKO_OK) {
        /* The rebuilt personal state replaces the online one (they are equal: the
         * log's); the item counts follow with the epoch (until then readers sample
         * the old posteriors). */
        pthread_rwlock_wrlock(&e->lock);
        sako_personal old = e->personal;
        e->personal = fresh;
        fresh = old;
        pthread_rwlock_unlock(&e->lock);
        if (pinned_against(e, &ver)) {
            sako_decay_ref ref = sako__decay_ref(frame.half_life_ms, frame.latest);
            size_t nc = e->n_categories;
            double root = 0.5, *means = malloc((nc ? nc : 1) * sizeof *means);
            sako_demand *demand = NULL;
            sako_store_fit fit;
            memset(&fit, 0, sizeof fit);
            ver.status = SAKO_MODEL_INACTIVE;
            rc = means ? sako__model_refresh_priors(e, counts, &frame, ref, &root, means)
                       : sako__error(SAKO_NOMEM, "out of memory fitting a version");
            if (rc == SAKO_OK)
                rc = sako__demand_build(e, counts, &frame, ref, root, means, &demand);
            if (rc == SAKO_OK)
                rc = sako__model_fit_capture(e, root, means, demand, frame.latest, &fit);
            if (rc == SAKO_OK)
                rc = version_record(e, &ver, &fit);
            sako__store_fit_free(&fit);
            sako__demand_free(demand);
            free(means);
        } else {
            rc = retrain_epoch_as(e, counts, &frame, &ver);
        }
    }
    sako__personal_free(&fresh);
    free(counts);
    return rc ? rc : ver.status == SAKO_MODEL_ACTIVE ? SAKO_OK : 1;
}

static int check_reasons(unsigned reasons, const char *fn)
{
    unsigned all = SAKO_RETRAIN_EVENTS | SAKO_RETRAIN_TIME | SAKO_RETRAIN_DRIFT | SAKO_RETRAIN_MANUAL;
    if (reasons == 0 || (reasons & ~all))
        return sako__error(SAKO_INVALID, "%s: reasons %#x are not sako_retrain_reason "
                           "bits (1 events, 2 time, 4 drift, 8 manual; not 0)", fn, reasons);
    return SAKO_OK;
}

/* A retrain; with `at` (a replica's retrain entry), skipped at or below the stored
 * position, else its position is written with the version it builds. */
static int retrain_run(sako_engine *e, unsigned reasons, sako_at *at)
{
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    if (e->retraining) {
        pthread_mutex_unlock(&e->write_mutex);
        return sako__error(SAKO_BUSY, "sako_retrain: another retrain of this engine is running");
    }
    if (e->compacting) {
        pthread_mutex_unlock(&e->write_mutex);
        return sako__error(SAKO_BUSY, "sako_retrain: a compaction of this engine's log is running");
    }
    if (at && sako__replica_begin(e, at)) {
        pthread_mutex_unlock(&e->write_mutex);
        return SAKO_OK; /* already applied */
    }
    e->retrain_at = at;
    int rc;
    if (e->store.in_memory) {
        rc = retrain_blocking(e, reasons);
        e->retrain_at = NULL;
        if (rc >= SAKO_OK) { /* the retrain policy counts from here (see below) */
            sako__replica_applied(e, at);
            sako__policy_activated(e);
        }
        pthread_mutex_unlock(&e->write_mutex);
        return rc > 0 ? SAKO_OK : rc;
    }
    e->retraining = 1;
    retrain_job j;
    memset(&j, 0, sizeof j);
    j.reader.lock_fd = -1;
    j.position = e->last_batch;
    j.from = e->compact_batch;
    j.n_users = e->users.n;
    j.fitted_at = e->last_batch;
    j.catalog_gen = e->catalog_gen;
    j.n_items = e->n_items;
    j.cap_items = e->cap_items;
    j.n_events = e->n_events;
    j.policy = e->policy.policy;
    version_start(e, &j.ver, reasons);
    pthread_mutex_unlock(&e->write_mutex);

    rc = job_build(e, &j);
    int64_t mf_serial = 0;
    if (rc == SAKO_OK && j.factors)
        rc = factors_store(e, j.factors, 0, &mf_serial);
    SAKO_KILL_POINT("retrain.before_publish");
    pthread_mutex_lock(&e->write_mutex);
    double held = retrain_clock();
    e->retrain_commit_s = 0;
    if (rc == SAKO_OK)
        rc = factors_publish(e, &j.factors, mf_serial);
    if (rc == SAKO_OK)
        rc = job_finish(e, &j);
    e->retraining = 0;
    e->retrain_at = NULL;
    if (rc >= SAKO_OK) {
        sako__replica_applied(e, at);
        SAKO_KILL_POINT("retrain.before_activation");
        /* A version was built: the retrain policy counts from here, whether it was
         * activated or not (a rejected or kept-back candidate is not retried until
         * its trigger fires again, instead of at every check) */
        sako__policy_activated(e);
        /* a prior refresh that fell due meanwhile (by events or decay's time rule)
         * was held back by the retrain: it runs now, as it would have after the
         * batch that made it due (unless a pinned or rolled-back version holds it) */
        sako__retrain_refresh(e);
    }
    e->retrain_hold_s = retrain_clock() - held;
    pthread_mutex_unlock(&e->write_mutex);
    /* The replaced training's rows. After a failure the new rows stay until the next
     * retrain's (trimming now would wipe the failure's message). */
    if (mf_serial && rc >= SAKO_OK)
        factors_trim(e, 0);
    job_free(&j);
    return rc > 0 ? SAKO_OK : rc;
}

int sako_retrain_v2(sako_engine *e, unsigned reasons)
{
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_retrain: engine is NULL");
    int rc = check_reasons(reasons, "sako_retrain_v2");
    return rc ? rc : retrain_run(e, reasons, NULL);
}

int sako_retrain_at(sako_engine *e, int64_t position, unsigned reasons, int *outcome_out)
{
    if (outcome_out)
        *outcome_out = SAKO_AT_NONE;
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_retrain_at: engine is NULL");
    if (position < 1)
        return sako__error(SAKO_INVALID, "sako_retrain_at: position %lld is not >= 1",
                           (long long)position);
    int rc = check_reasons(reasons, "sako_retrain_at");
    if (rc)
        return rc;
    sako_at at = { position, SAKO_AT_NONE };
    rc = retrain_run(e, reasons, &at);
    if (outcome_out)
        *outcome_out = at.outcome;
    if (at.outcome == SAKO_AT_APPLIED)
        sako__retrain_settle(e); /* the refresh the retrain may have started */
    return rc;
}

int sako_retrain(sako_engine *e)
{
    return sako_retrain_v2(e, SAKO_RETRAIN_MANUAL);
}

/* ------------------------------------------------ activating a stored version */

int sako__retrain_activate(sako_engine *e, int64_t version, const sako_store_fit *fit)
{
    size_t nc = e->n_categories;
    double *means = malloc((nc ? nc : 1) * sizeof *means);
    sako_beta *post = malloc((e->cap_items ? e->cap_items : 1) * sizeof *post);
    sako_demand *demand = NULL;
    sako_domains *domains = NULL;
    int rc = means && post ? SAKO_OK
                           : sako__error(SAKO_NOMEM, "out of memory activating version %lld",
                                         (long long)version);
    if (rc == SAKO_OK)
        rc = sako__model_fit_restore(e, fit, 1, means, &demand);
    if (rc == SAKO_OK) {
        /* Its priors with today's counts, computed before the lock as any epoch's. */
        sako_decay_ref ref = sako__decay_ref(e->decay.half_life_ms, fit->epoch_at);
        sako__model_fill_posteriors_with(e, NULL, &e->decay, ref, fit->root_mean, means, demand,
                                         post);
        int k = e->domains ? e->domains->k_target : SAKO_DOMAIN_DEFAULT_K;
        if (sako__domains_build(e, post, k, &domains) != SAKO_OK)
            domains = NULL; /* queries brute-force until the next rebuild */
        sako__error_clear();
        rc = sako__store_begin(&e->store);
    }
    if (rc == SAKO_OK) {
        /* The served epoch's rows become the version's (a reopen loads them), and
         * the version row says it is active, in one transaction. */
        for (size_t c = 0; c < nc && rc == SAKO_OK; c++)
            rc = sako__store_write_category(&e->store, e->categories[c].id, means[c]);
        if (rc == SAKO_OK)
            rc = sako__store_set_meta_real(&e->store, "root_mean", fit->root_mean);
        if (rc == SAKO_OK)
            rc = sako__demand_write(e, demand);
        if (rc == SAKO_OK)
            rc = sako__store_set_meta_int(&e->store, "decay_epoch_at", fit->epoch_at);
        if (rc == SAKO_OK)
            rc = sako__store_set_meta_int(&e->store, "events_since_refresh", 0);
        if (rc == SAKO_OK)
            rc = sako__store_version_activate(&e->store, version);
        SAKO_KILL_POINT("version.activate_before_commit");
        if (rc)
            sako__store_rollback(&e->store);
        else
            rc = sako__store_commit(&e->store);
    }
    if (rc == SAKO_OK) {
        SAKO_KILL_POINT("version.activate_after_commit");
        epoch_swap(e, NULL, &e->decay, fit->epoch_at, 0, fit->root_mean, means, &demand, &post,
                   domains, NULL, 0);
        domains = NULL;
    }
    sako__domains_free(domains);
    sako__demand_free(demand);
    free(means);
    free(post);
    return rc;
}

/* ------------------------------------------------ compaction's replay (compact.c)
 *
 * The state the retrain replay holds at a batch C, built the same way (the same
 * fresh_batch, from the same log checkpoint), so that a retrain starting from a
 * checkpoint of it continues exactly as one from the first batch. */

typedef struct upto_state {
    fresh_state *fs;
    int64_t cutoff;     /* stop before a batch holding an event later than this... */
    uint64_t budget;    /* ...or one that would take the events replayed past this */
    int64_t last;       /* the last batch applied */
    uint64_t events;
} upto_state;

static int upto_batch(void *payload, int64_t seq, const sako_event *ev, const int64_t *orders,
                      size_t n)
{
    upto_state *us = payload;
    if (n > us->budget - us->events)
        return 1; /* this batch and the later ones stay in the log */
    for (size_t j = 0; j < n; j++)
        if (ev[j].time > us->cutoff)
            return 1;
    int rc = fresh_batch(us->fs, seq, ev, orders, n);
    if (rc == SAKO_OK) {
        us->last = seq;
        us->events += n;
    }
    return rc;
}

int sako__retrain_state_at(sako_engine *e, sako_store *reader, int locked, int64_t from,
                           int64_t upto, int64_t cutoff, uint64_t max_events, size_t cap_items,
                           size_t n_users, sako_retrain_state *out)
{
    memset(out, 0, sizeof *out);
    fresh_state fs;
    memset(&fs, 0, sizeof fs);
    fs.e = e;
    fs.locked = locked;
    sako__decay_init(&fs.decay, e->params.decay_half_life_days);
    upto_state us = { &fs, cutoff, max_events, from, 0 };
    int rc;
    if ((rc = fresh_grow(&fs, cap_items)) ||
        (rc = sako__personal_reserve_items(&fs.personal, cap_items)) ||
        (rc = load_log_checkpoint(e, reader, from, locked ? NULL : &e->lock, n_users, fs.counts,
                                  fs.cap_counts, &fs.decay, &fs.personal)))
        goto done;
    for (int64_t after = from; after < upto && rc == SAKO_OK;)
        rc = sako__store_read_batch_range(reader, after, upto, RETRAIN_READ_EVENTS, &after,
                                          upto_batch, &us);
    if (rc == 1)
        rc = SAKO_OK;
done:
    free(fs.touched);
    free(fs.user);
    free(fs.item);
    free(fs.pending);
    if (rc) {
        free(fs.counts);
        sako__personal_free(&fs.personal);
        return rc;
    }
    out->counts = fs.counts;
    out->cap_counts = fs.cap_counts;
    out->decay = fs.decay;
    out->personal = fs.personal;
    out->batch = us.last;
    out->events = us.events;
    return SAKO_OK;
}

void sako__retrain_state_free(sako_retrain_state *s)
{
    free(s->counts);
    sako__personal_free(&s->personal);
    memset(s, 0, sizeof *s);
}
