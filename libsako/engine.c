/* The engine's life cycle, options, introspection and versions. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "factors_internal.h"
#include "replica_internal.h"
#include "model_internal.h"
#include "recommend_internal.h"
#include "retrain_internal.h"
#include "versions_internal.h"

int sako_version_number(void) { return SAKO_VERSION_NUMBER; }
const char *sako_version_string(void) { return SAKO_VERSION_STRING; }
int sako_threadsafe(void) { return 1; }

static int same_params(const sako_model_params *a, const sako_model_params *b)
{
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        if (a->reward[t] != b->reward[t])
            return 0;
    return a->penalty_impression == b->penalty_impression && a->prior == b->prior &&
           a->prior_strength == b->prior_strength &&
           a->category_shrinkage == b->category_shrinkage &&
           a->prior_refresh_events == b->prior_refresh_events &&
           a->organic_demand == b->organic_demand &&
           a->demand_min_purchases == b->demand_min_purchases && a->personal == b->personal &&
           a->personal_min_baskets == b->personal_min_baskets &&
           a->half_life_days == b->half_life_days && a->personal_strength == b->personal_strength &&
           a->personal_temperature == b->personal_temperature &&
           a->due_exponent == b->due_exponent && a->affinity_strength == b->affinity_strength &&
           a->lift_strength == b->lift_strength && a->basket_gap_ms == b->basket_gap_ms &&
           a->decay_half_life_days == b->decay_half_life_days &&
           a->mf_factors == b->mf_factors && a->mf_iterations == b->mf_iterations &&
           a->mf_cg_steps == b->mf_cg_steps && a->mf_regularization == b->mf_regularization &&
           a->mf_alpha == b->mf_alpha && a->mf_seed == b->mf_seed && a->mf_mode == b->mf_mode &&
           a->mf_min_users == b->mf_min_users && a->mf_min_user_items == b->mf_min_user_items &&
           a->mf_weight == b->mf_weight && a->mf_candidates == b->mf_candidates;
}

static void set_personal_params(sako_engine *e, const sako_model_params *p)
{
    e->personal_params.half_life_days = p->half_life_days;
    e->personal_params.basket_gap_ms = p->basket_gap_ms;
    e->personal_params.decay_half_life_days = p->decay_half_life_days;
}

/* opts->reconfigure: the given model parameters replace the stored ones and the
 * priors are recomputed from the stored evidence. */
static int reconfigure(sako_engine *e)
{
    sako_model_params wanted;
    sako__model_params_from_options(&wanted, &e->opts);
    if (same_params(&wanted, &e->params))
        return SAKO_OK;
    if (wanted.decay_half_life_days != e->params.decay_half_life_days) {
        /* The stored counts are weighted for the old half-life: a new one rebuilds
         * everything from the log (a retrain), which stores the parameters in the same
         * transaction as the rebuilt counts, so a failure leaves the file as it was. */
        sako_model_params old = e->params;
        e->params = wanted;
        int rc = sako_retrain(e);
        if (rc)
            e->params = old;
        return rc;
    }
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    sako_model_params old = e->params;
    e->params = wanted;
    if ((rc = sako__store_write_params(&e->store, &e->params)) ||
        (rc = sako__store_commit(&e->store))) {
        sako__store_rollback(&e->store);
        e->params = old;
        return rc;
    }
    return sako__retrain_epoch(e, NULL, NULL);
}

/* The stored metadata; its parameters must pass the same checks as options. */
static int load_meta(sako_engine *e, sako_store_demand *demand)
{
    sako_store_meta m;
    memset(&m, 0, sizeof m);
    int rc = sako__store_read_meta(&e->store, &m);
    if (rc)
        return rc;
    e->params = m.params;
    e->root_mean = m.root_mean;
    e->n_events = m.n_events;
    e->events_since_refresh = m.events_since_refresh;
    e->checkpoint_batch = m.checkpoint_batch;
    e->compact_batch = m.compact_batch;
    e->compact_events = m.compact_events;
    e->model_version = m.model_version;
    e->mf_serial = m.mf_serial;
    sako_options o = e->opts;
    sako__model_options_from_params(&o, &m.params);
    *demand = m.demand;
    /* The state is rebuilt with the parameters that will be in force: the stored
     * ones, or with reconfigure the new ones (which then also go to the file). */
    if (e->opts.reconfigure) {
        sako_model_params wanted;
        sako__model_params_from_options(&wanted, &e->opts);
        set_personal_params(e, &wanted);
    } else {
        set_personal_params(e, &m.params);
    }
    if (sako__model_validate_options(&o) != SAKO_OK || !(m.root_mean > 0.0 && m.root_mean < 1.0) ||
        m.checkpoint_batch < 0 || m.model_version < 0 || m.compact_batch < 0 ||
        m.compact_events < 0 || m.compact_batch > m.checkpoint_batch)
        return sako__error(SAKO_CORRUPT, "database damaged: invalid model parameters");
    /* The stored counts' frame, and the epoch their posteriors are decayed to (from a
     * half-life checked above: a damaged one would make the frame's arithmetic overflow). */
    sako__decay_init(&e->decay, m.params.decay_half_life_days);
    e->decay.offset = m.decay_offset;
    e->decay.latest = m.decay_latest;
    e->decay_epoch_at = m.decay_epoch_at;
    e->decay_ref = sako__decay_ref(e->decay.half_life_ms, m.decay_epoch_at);
    return SAKO_OK;
}

/* The last checkpoint, then the events logged after it folded in again; the
 * personal state from the whole log; the demand epoch as stored. */
static int load(sako_engine *e)
{
    int rc;
    sako_store_demand demand;
    if ((rc = load_meta(e, &demand)) || (rc = sako__catalog_load(e)) ||
        (rc = sako__users_load(&e->users, &e->store)) ||
        (rc = sako__personal_reserve_items(&e->personal, e->cap_items)) ||
        (rc = sako__store_last_batch(&e->store, &e->last_batch)) ||
        (rc = sako__policy_load(e)) ||
        (rc = sako__versions_load(e)) ||
        (rc = sako__retrain_replay(e, e->checkpoint_batch, NULL, NULL, NULL)) ||
        (rc = sako__demand_restore(e, &demand, &e->demand)) ||
        (rc = sako__factors_load(&e->store, &e->item_index, e->n_items, e->items,
                                 &e->users.index, e->users.n, &e->factors)))
        return rc;
    sako__model_fill_posteriors(e, e->posterior);
    return SAKO_OK;
}

static void engine_free(sako_engine *e, int checkpoint);

int sako_init(sako_engine **out, const char *path, const sako_options *opts)
{
    if (!out)
        return sako__error(SAKO_MISUSE, "sako_init: out is NULL");
    *out = NULL;
    sako__error_clear();
    /* SQLite would open "" as a private temporary file: updates would be
     * acknowledged and vanish at close. */
    if (path && !*path)
        return sako__error(SAKO_INVALID, "sako_init: the path is empty (give a file name, or "
                           "NULL or \":memory:\" for an in-memory database)");
    sako_options defaults = SAKO_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    if (opts->version < 1 || opts->version > SAKO_OPTIONS_VERSION)
        return sako__error(SAKO_INVALID, "options: version %u is not 1 to %d (use SAKO_OPTIONS_INIT)",
                           opts->version, SAKO_OPTIONS_VERSION);
    sako_options upgraded;
    sako__model_options_upgrade(&upgraded, opts);
    opts = &upgraded;
    int rc = sako__model_validate_options(opts);
    if (rc)
        return rc;

    sako_engine *e = calloc(1, sizeof *e);
    if (!e)
        return sako__error(SAKO_NOMEM, "out of memory allocating an engine");
    e->opts = *opts;
    sako__model_params_from_options(&e->params, opts);
    set_personal_params(e, &e->params);
    sako__decay_init(&e->decay, e->params.decay_half_life_days);
    e->root_mean = 0.5;
    e->store.lock_fd = -1;
    e->refresh_sync_items = SAKO_REFRESH_SYNC_ITEMS;
    e->seed = opts->seed ? opts->seed
                         : (uint64_t)sako__store_now_ms() ^ ((uint64_t)(uintptr_t)e << 16) ^ (uint64_t)clock();
    e->opts.seed = e->seed;
    pthread_mutex_init(&e->write_mutex, NULL);
    pthread_mutex_init(&e->scratch_mutex, NULL);
    /* Prefer writers so that a stream of recommendations cannot starve updates. */
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&e->lock, &attr);
    pthread_rwlockattr_destroy(&attr);

    if ((rc = sako__store_open(&e->store, path, opts->busy_timeout_ms, opts->durability,
                               opts->create_empty, &e->params)) ||
        (rc = load(e)) || (rc = sako__replica_load(e)) ||
        (opts->reconfigure && (rc = reconfigure(e)))) {
        sako__store_refuse(&e->store);
        engine_free(e, 0);
        return rc;
    }
    sako__store_open_done(&e->store);
    sako__domains_start(e);
    sako__error_clear();
    *out = e;
    return SAKO_OK;
}

void sako_close(sako_engine *e)
{
    if (e)
        engine_free(e, 1);
}

/* Release everything; with `checkpoint`, first fold the log tail into the stored
 * counts so the next open replays little (best effort: the log already holds every
 * acknowledged event). A refused open never checkpoints: it would write the state
 * loaded so far over a file it has just judged damaged, and the next open would then
 * accept that file without the batches it refused. */
static void engine_free(sako_engine *e, int checkpoint)
{
    sako__domains_join(e);
    sako__retrain_stop(e);
    if (checkpoint && sako__store_ready(&e->store) && !e->store.in_memory &&
        e->events_since_checkpoint > 0) {
        pthread_mutex_lock(&e->write_mutex);
        sako__retrain_checkpoint(e);
        pthread_mutex_unlock(&e->write_mutex);
    }
    sako__store_close(&e->store);
    sako__recommend_free_scratch(e);
    sako__domains_free(e->domains);
    sako__catalog_free(e);
    sako__users_free(&e->users);
    sako__personal_free(&e->personal);
    sako__demand_free(e->demand);
    sako__factors_free(e->factors);
    pthread_rwlock_destroy(&e->lock);
    pthread_mutex_destroy(&e->write_mutex);
    pthread_mutex_destroy(&e->scratch_mutex);
    free(e);
}

int sako_item_get(sako_engine *e, int64_t item_id, sako_item_info *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_item_get: NULL engine or output");
    if (!sako__idmap_valid_id(item_id))
        return sako__error(SAKO_INVALID, "item id %lld is out of range [1, 2^53-1]", (long long)item_id);
    sako__error_clear();
    int rc = SAKO_OK;
    pthread_rwlock_rdlock(&e->lock);
    uint32_t i = sako__idmap_get(&e->item_index, item_id);
    if (i == SAKO_NONE) {
        rc = sako__error(SAKO_NOTFOUND, "unknown item %lld", (long long)item_id);
    } else {
        const sako_item_state *it = &e->items[i];
        memset(out, 0, sizeof *out);
        out->id = it->id;
        out->category_id = it->category == SAKO_NONE ? 0 : e->categories[it->category].id;
        out->active = it->active;
        out->added_at = it->added_at;
        out->last_event_at = it->last_event_at;
        /* Decayed to the epoch's time (the scale is exactly 1 without decay). */
        double f = sako__decay_scale(&e->decay, e->decay_ref);
        out->impressions = it->counts.n[SAKO_EVENT_IMPRESSION] * f;
        out->clicks = it->counts.n[SAKO_EVENT_CLICK] * f;
        out->carts = it->counts.n[SAKO_EVENT_CART] * f;
        out->purchases = it->counts.n[SAKO_EVENT_PURCHASE] * f;
        out->prior_mean = sako__demand_prior(e, i);
        out->alpha = e->posterior[i].a;
        out->beta = e->posterior[i].b;
    }
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

int sako_category_prior(sako_engine *e, int64_t category_id, double *mean_out)
{
    if (!e || !mean_out)
        return sako__error(SAKO_MISUSE, "sako_category_prior: NULL engine or output");
    if (category_id != 0 && !sako__idmap_valid_id(category_id))
        return sako__error(SAKO_INVALID, "category id %lld is out of range", (long long)category_id);
    sako__error_clear();
    int rc = SAKO_OK;
    pthread_rwlock_rdlock(&e->lock);
    uint32_t c = category_id == 0 ? SAKO_NONE : sako__idmap_get(&e->category_index, category_id);
    if (category_id != 0 && c == SAKO_NONE)
        rc = sako__error(SAKO_NOTFOUND, "unknown category %lld", (long long)category_id);
    else
        *mean_out = sako__model_prior_mean(e, c);
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

int sako_stats_get(sako_engine *e, sako_stats *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_stats_get: NULL engine or output");
    sako__error_clear();
    pthread_rwlock_rdlock(&e->lock);
    memset(out, 0, sizeof *out);
    out->n_items = e->n_items;
    out->n_active_items = e->n_active;
    out->n_categories = e->n_categories;
    out->n_users = e->users.n;
    out->n_events = e->n_events;
    out->events_since_refresh = e->events_since_refresh;
    out->model_version = e->model_version;
    out->global_mean = e->root_mean;
    pthread_rwlock_unlock(&e->lock);
    return SAKO_OK;
}

int sako_options_get(sako_engine *e, sako_options *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_options_get: NULL engine or output");
    sako__error_clear();
    unsigned want = out->version;
    pthread_rwlock_rdlock(&e->lock);
    sako_options o = e->opts;
    sako__model_options_from_params(&o, &e->params);
    o.reconfigure = 0;
    pthread_rwlock_unlock(&e->lock);
    if (want == SAKO_OPTIONS_VERSION) {
        *out = o;
    } else if (want == 4) {
        /* A caller built against 0.5 has room up to mf_candidates. */
        o.version = 4;
        memcpy(out, &o, offsetof(sako_options, mf_probe));
    } else if (want == 3) {
        /* A caller built against 0.3 or 0.4 has room up to create_empty. */
        o.version = 3;
        memcpy(out, &o, offsetof(sako_options, mf_factors));
    } else if (want == 2) {
        /* A caller built against 0.2 has room up to basket_gap_ms. */
        o.version = 2;
        memcpy(out, &o, offsetof(sako_options, decay_half_life_days));
    } else {
        /* A caller built against 0.1 has room for the version-1 fields only. */
        o.version = 1;
        memcpy(out, &o, offsetof(sako_options, organic_demand));
    }
    return SAKO_OK;
}

/* ------------------------------------------------------------- users */

static int user_lookup(sako_engine *e, int64_t user_id, const char *fn, uint32_t *out)
{
    uint32_t u = sako__idmap_get(&e->users.index, user_id);
    if (u == SAKO_NONE)
        return sako__error(SAKO_NOTFOUND, "%s: unknown user %lld", fn, (long long)user_id);
    *out = u;
    return SAKO_OK;
}

int sako_user_get(sako_engine *e, int64_t user_id, sako_user_info *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_user_get: NULL engine or output");
    if (!sako__idmap_valid_id(user_id))
        return sako__error(SAKO_INVALID, "user id %lld is out of range [1, 2^53-1]", (long long)user_id);
    sako__error_clear();
    uint32_t u = SAKO_NONE;
    pthread_rwlock_rdlock(&e->lock);
    int rc = user_lookup(e, user_id, "sako_user_get", &u);
    if (rc == SAKO_OK) {
        const sako_user_state *us = &e->users.v[u];
        const sako_history *h = &e->personal.users[u];
        memset(out, 0, sizeof *out);
        out->id = us->id;
        out->n_events = us->n_events;
        out->last_event_at = us->last_event_at;
        out->n_baskets = h->n_baskets;
        out->n_products = h->n;
        out->weight = h->weight;
        out->last_basket_at = h->n_baskets ? h->basket_at : 0;
        out->personal = e->params.personal && h->n_baskets >= e->params.personal_min_baskets;
    }
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

int sako_user_item_get(sako_engine *e, int64_t user_id, int64_t item_id, sako_user_item *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_user_item_get: NULL engine or output");
    if (!sako__idmap_valid_id(user_id) || !sako__idmap_valid_id(item_id))
        return sako__error(SAKO_INVALID, "user id %lld or item id %lld is out of range [1, 2^53-1]",
                           (long long)user_id, (long long)item_id);
    sako__error_clear();
    uint32_t u = SAKO_NONE;
    pthread_rwlock_rdlock(&e->lock);
    int rc = user_lookup(e, user_id, "sako_user_item_get", &u);
    if (rc == SAKO_OK) {
        uint32_t i = sako__idmap_get(&e->item_index, item_id);
        const sako_history_entry *x = i == SAKO_NONE ? NULL : sako__personal_find(&e->personal.users[u], i);
        if (!x) {
            rc = sako__error(SAKO_NOTFOUND, "sako_user_item_get: user %lld never bought item %lld",
                             (long long)user_id, (long long)item_id);
        } else {
            uint32_t buys = SAKO_ENTRY_BUYS(x);
            memset(out, 0, sizeof *out);
            out->item_id = item_id;
            out->n_baskets = buys;
            out->weight = x->weight;
            out->last_bought_at = SAKO_ENTRY_LAST(x);
            out->mean_gap_days = buys > 1 ? (double)x->gap_days / (double)(buys - 1) : 0.0;
        }
    }
    pthread_rwlock_unlock(&e->lock);
    return rc;
}

/* ------------------------------------------------------------ readiness */

int sako_ready(sako_engine *e, int *ready_out)
{
    if (!e || !ready_out)
        return sako__error(SAKO_MISUSE, "sako_ready: NULL engine or output");
    sako__error_clear();
    pthread_rwlock_rdlock(&e->lock);
    *ready_out = e->domains != NULL; /* built once; a broken set is rebuilt by the next writer */
    pthread_rwlock_unlock(&e->lock);
    return SAKO_OK;
}

/* ------------------------------------------------------------- factors */

int sako_factors_info_get(sako_engine *e, sako_factors_info *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_factors_info_get: NULL engine or output");
    if (out->version != SAKO_FACTORS_INFO_VERSION)
        return sako__error(SAKO_INVALID, "sako_factors_info_get: version %u is not %d",
                           out->version, SAKO_FACTORS_INFO_VERSION);
    sako__error_clear();
    memset(out, 0, sizeof *out);
    out->version = SAKO_FACTORS_INFO_VERSION;
    pthread_rwlock_rdlock(&e->lock);
    sako_factors *f = e->factors;
    if (f) {
        out->factors = f->k;
        out->iterations = f->iterations;
        out->cg_steps = f->cg_steps;
        out->regularization = f->regularization;
        out->alpha = f->alpha;
        out->seed = f->seed;
        out->trained_at = f->trained_at;
        out->first_batch = f->first_batch;
        out->last_batch = f->last_batch;
        out->n_events = f->n_events;
        out->n_users = f->n_user_vectors;
        out->n_items = f->n_item_vectors;
        out->index_lists = sako__factor_index_lists(f->index);
        out->train_seconds = f->train_seconds;
        out->serving = e->params.mf_factors > 0 && e->params.mf_mode != SAKO_MF_OFF &&
                       (e->params.mf_mode == SAKO_MF_ON || f->n_user_vectors >= e->params.mf_min_users);
        pthread_mutex_lock(&f->fold_mutex);
        out->n_folded = f->n_folded;
        out->bytes = sako__factors_bytes(f);
        pthread_mutex_unlock(&f->fold_mutex);
    }
    pthread_rwlock_unlock(&e->lock);
    return SAKO_OK;
}

int sako_factors_vector(sako_engine *e, int64_t user_id, int64_t item_id, float *out, size_t cap,
                        size_t *n_out)
{
    if (!e || !n_out || (cap && !out))
        return sako__error(SAKO_MISUSE, "sako_factors_vector: NULL engine or output");
    *n_out = 0;
    if ((user_id != 0) == (item_id != 0))
        return sako__error(SAKO_INVALID, "sako_factors_vector: give exactly one of user_id and "
                           "item_id (got %lld and %lld)", (long long)user_id, (long long)item_id);
    int64_t id = user_id ? user_id : item_id;
    if (!sako__idmap_valid_id(id))
        return sako__error(SAKO_INVALID, "sako_factors_vector: id %lld is out of range [1, 2^53-1]",
                           (long long)id);
    sako__error_clear();
    int rc = SAKO_OK;
    pthread_rwlock_rdlock(&e->lock);
    sako_factors *f = e->factors;
    uint32_t x = user_id ? sako__idmap_get(&e->users.index, id) : sako__idmap_get(&e->item_index, id);
    if (x == SAKO_NONE) {
        rc = sako__error(SAKO_NOTFOUND, "sako_factors_vector: unknown %s %lld",
                         user_id ? "user" : "item", (long long)id);
    } else if (f && cap < f->k) {
        rc = sako__error(SAKO_RANGE, "sako_factors_vector: room for %zu floats, %u needed", cap, f->k);
    } else if (f && item_id) {
        if (x < f->n_items && f->has[x]) {
            memcpy(out, f->item + (size_t)x * f->k, f->k * sizeof *out);
            *n_out = f->k;
        }
    } else if (f) {
        int got = sako__factors_user_vector(f, &e->personal.inter, x, NULL, out);
        if (got < 0)
            rc = got;
        else if (got)
            *n_out = f->k;
    }
    pthread_rwlock_unlock(&e->lock);
    return rc;
}
