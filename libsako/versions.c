/* Model versions: list, read, activate (roll back) and pin what retrains built.
 *
 * A version is a retrain's fitted population model (retrain.c builds, gates and
 * records it; store.c keeps it with a checksum). The event counts and personal
 * histories are the log's, shared by every version, so activating one swaps only
 * its priors and demand constants in, the way a retrain publishes an epoch. Reads
 * go through the engine's connection and so take the writer mutex (a retrain
 * holds it only for its last step). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine_internal.h"
#include "model_internal.h"
#include "retrain_internal.h"
#include "versions_internal.h"

static void info_from(sako_version_info *out, const sako_store_version *v,
                      const sako_store_fit *fit)
{
    memset(out, 0, sizeof *out);
    out->version = v->version;
    out->created_at = v->created_at;
    out->status = v->status;
    out->pinned = v->pinned;
    out->reasons = v->reasons;
    snprintf(out->verdict, sizeof out->verdict, "%s", v->verdict);
    out->first_batch = v->first_batch;
    out->last_batch = v->last_batch;
    out->n_events = v->n_events;
    out->champion = v->champion;
    out->scored = v->scored;
    out->score = v->score;
    out->champion_score = v->champion_score;
    out->holdout_events = v->holdout_events;
    out->holdout_baskets = v->holdout_baskets;
    if (fit) {
        out->root_mean = fit->root_mean;
        out->epoch_at = fit->epoch_at;
        sako__model_options_from_params(&out->options, &fit->params);
        out->options.version = SAKO_OPTIONS_VERSION;
    } else {
        out->root_mean = NAN; /* its stored model is damaged: activation refuses it */
    }
}

typedef struct list_state {
    sako_version_info *out;
    size_t cap, n, total;
} list_state;

static int list_row(void *payload, const sako_store_version *v, const sako_store_fit *fit,
                    int damaged)
{
    (void)damaged;
    list_state *ls = payload;
    if (ls->n < ls->cap)
        info_from(&ls->out[ls->n++], v, fit);
    ls->total++;
    return SAKO_OK;
}

int sako_versions_list(sako_engine *e, sako_version_info *out, size_t cap, size_t *n_out,
                       size_t *total_out)
{
    if (!e || !n_out || (!out && cap > 0))
        return sako__error(SAKO_MISUSE, "sako_versions_list: NULL engine, n_out, or out with "
                           "cap > 0");
    sako__error_clear();
    *n_out = 0;
    list_state ls = { out, cap, 0, 0 };
    pthread_mutex_lock(&e->write_mutex);
    sako__store_settle(&e->store);
    int rc = sako__store_versions_read(&e->store, -1, list_row, &ls);
    pthread_mutex_unlock(&e->write_mutex);
    *n_out = ls.n;
    if (total_out)
        *total_out = ls.total;
    return rc;
}

/* One version (0: the active one) under the writer mutex. */
static int get_locked(sako_engine *e, int64_t version, sako_version_info *out)
{
    list_state ls = { out, 1, 0, 0 };
    sako__store_settle(&e->store);
    int rc = sako__store_versions_read(&e->store, version, list_row, &ls);
    if (rc == SAKO_OK && ls.n == 0)
        rc = version ? sako__error(SAKO_NOTFOUND, "no model version %lld", (long long)version)
                     : sako__error(SAKO_NOTFOUND, "no active model version (no retrain yet)");
    return rc;
}

int sako_version_get(sako_engine *e, int64_t version, sako_version_info *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_version_get: NULL engine or output");
    if (version < 0)
        return sako__error(SAKO_INVALID, "sako_version_get: version %lld is negative (0 names the "
                           "active one)", (long long)version);
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    int rc = get_locked(e, version, out);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}

int sako_retrain_result(sako_engine *e, sako_version_info *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_retrain_result: NULL engine or output");
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    int rc = e->last_retrain_version
                 ? get_locked(e, e->last_retrain_version, out)
                 : sako__error(SAKO_NOTFOUND, "no retrain has run on this handle yet");
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}

int sako__versions_load(sako_engine *e)
{
    int64_t active = 0;
    int rc = sako__store_version_active(&e->store, &active);
    if (rc == SAKO_OK && active > 0) {
        /* The served epoch's rows are the active version's (or a refresh's since);
         * its own stored model must still be whole, since a rollback may need it. */
        sako_store_fit fit;
        rc = sako__store_version_fit(&e->store, active, &fit);
        sako__store_fit_free(&fit);
    }
    if (rc == SAKO_OK)
        rc = sako__store_versions_hold(&e->store, &e->version_hold);
    return rc;
}

static int hold_update(sako_engine *e)
{
    int hold = e->version_hold;
    int rc = sako__store_versions_hold(&e->store, &hold);
    if (rc == SAKO_OK)
        e->version_hold = hold;
    return rc;
}

int sako_version_activate(sako_engine *e, int64_t version)
{
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_version_activate: engine is NULL");
    if (version < 1)
        return sako__error(SAKO_INVALID, "sako_version_activate: version %lld is not a stored "
                           "version (they start at 1)", (long long)version);
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    int rc = SAKO_OK;
    sako_version_info info;
    sako_store_fit fit;
    memset(&fit, 0, sizeof fit);
    if (e->retraining)
        rc = sako__error(SAKO_BUSY, "sako_version_activate: a retrain is running (retry after it)");
    if (rc == SAKO_OK)
        rc = get_locked(e, version, &info);
    if (rc == SAKO_OK && info.status == SAKO_MODEL_REJECTED)
        rc = sako__error(SAKO_INVALID, "model version %lld was rejected by its gate (%s): it is "
                         "never activated", (long long)version, info.verdict);
    if (rc == SAKO_OK && info.status != SAKO_MODEL_ACTIVE) {
        if ((rc = sako__store_version_fit(&e->store, version, &fit)) == SAKO_OK &&
            (rc = sako__retrain_activate(e, version, &fit)) == SAKO_OK) {
            hold_update(e);
            sako__error_clear();
            sako__policy_activated(e); /* the policy counts from this activation */
        }
    }
    sako__store_fit_free(&fit);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}

int sako_version_pin(sako_engine *e, int64_t version, int pinned)
{
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_version_pin: engine is NULL");
    if (version < 1)
        return sako__error(SAKO_INVALID, "sako_version_pin: version %lld is not a stored version "
                           "(they start at 1)", (long long)version);
    if (pinned != 0 && pinned != 1)
        return sako__error(SAKO_INVALID, "sako_version_pin: pinned is %d, not 0 or 1", pinned);
    sako__error_clear();
    pthread_mutex_lock(&e->write_mutex);
    /* The pin and the refresh hold it implies in one transaction: a failure reading
     * the hold leaves the pin as it was. */
    int hold = e->version_hold;
    int rc = sako__store_begin(&e->store);
    if (rc == SAKO_OK && !(rc = sako__store_version_pin(&e->store, version, pinned)) &&
        !(rc = sako__store_versions_hold(&e->store, &hold)))
        rc = sako__store_commit(&e->store);
    else if (rc != SAKO_OK)
        sako__store_rollback(&e->store);
    if (rc == SAKO_OK)
        e->version_hold = hold;
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}
