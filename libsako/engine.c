/* The engine's life cycle, options, introspection and versions. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "model_internal.h"
#include "recommend_internal.h"
#include "retrain_internal.h"

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
           a->prior_refresh_events == b->prior_refresh_events;
}

/* opts->reconfigure: the given model parameters replace the stored ones and the
 * priors are recomputed from the stored evidence. */
static int reconfigure(sako_engine *e)
{
    sako_model_params wanted;
    sako__model_params_from_options(&wanted, &e->opts);
    if (same_params(&wanted, &e->params))
        return SAKO_OK;
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
    return sako__retrain_epoch(e, NULL);
}

/* The stored metadata; its parameters must pass the same checks as options. */
static int load_meta(sako_engine *e)
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
    e->model_version = m.model_version;
    const sako_model_params *p = &m.params;
    sako_options o = e->opts;
    o.reward_click = p->reward[SAKO_EVENT_CLICK];
    o.reward_cart = p->reward[SAKO_EVENT_CART];
    o.reward_purchase = p->reward[SAKO_EVENT_PURCHASE];
    o.penalty_impression = p->penalty_impression;
    o.prior = p->prior;
    o.prior_strength = p->prior_strength;
    o.category_shrinkage = p->category_shrinkage;
    if (sako__model_validate_options(&o) != SAKO_OK || !(m.root_mean > 0.0 && m.root_mean < 1.0) ||
        m.checkpoint_batch < 0 || m.model_version < 0)
        return sako__error(SAKO_CORRUPT, "database damaged: invalid model parameters");
    return SAKO_OK;
}

/* The last checkpoint, then the events logged after it folded in again. */
static int load(sako_engine *e)
{
    int rc;
    if ((rc = load_meta(e)) || (rc = sako__catalog_load(e)) ||
        (rc = sako__users_load(&e->users, &e->store)) ||
        (rc = sako__retrain_replay(e, e->checkpoint_batch, NULL)))
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
    sako_options defaults = SAKO_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    int rc = sako__model_validate_options(opts);
    if (rc)
        return rc;

    sako_engine *e = calloc(1, sizeof *e);
    if (!e)
        return sako__error(SAKO_NOMEM, "out of memory allocating an engine");
    e->opts = *opts;
    sako__model_params_from_options(&e->params, opts);
    e->root_mean = 0.5;
    e->store.lock_fd = -1;
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
                               &e->params)) ||
        (rc = load(e)) ||
        (opts->reconfigure && (rc = reconfigure(e)))) {
        engine_free(e, 0);
        return rc;
    }
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
        out->impressions = it->counts.n[SAKO_EVENT_IMPRESSION];
        out->clicks = it->counts.n[SAKO_EVENT_CLICK];
        out->carts = it->counts.n[SAKO_EVENT_CART];
        out->purchases = it->counts.n[SAKO_EVENT_PURCHASE];
        out->prior_mean = sako__model_prior_mean(e, it->category);
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
    pthread_rwlock_rdlock(&e->lock);
    *out = e->opts;
    out->reward_click = e->params.reward[SAKO_EVENT_CLICK];
    out->reward_cart = e->params.reward[SAKO_EVENT_CART];
    out->reward_purchase = e->params.reward[SAKO_EVENT_PURCHASE];
    out->penalty_impression = e->params.penalty_impression;
    out->prior = e->params.prior;
    out->prior_strength = e->params.prior_strength;
    out->category_shrinkage = e->params.category_shrinkage;
    out->prior_refresh_events = e->params.prior_refresh_events;
    out->reconfigure = 0;
    pthread_rwlock_unlock(&e->lock);
    return SAKO_OK;
}
