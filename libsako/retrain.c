/* Rebuilding the model from the event log, prior epochs and checkpoints. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

int sako__replay_log(sako_engine *e, int64_t after_batch, sako_counts *counts)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(e->db, "SELECT seq, n_events, events FROM event_batches "
                                "WHERE seq > ?1 ORDER BY seq", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        sako__error_sqlite(e->db, rc, "database damaged: reading the event log");
        return SAKO_CORRUPT;
    }
    sqlite3_bind_int64(st, 1, after_batch);
    sako_event *events = NULL;
    size_t cap = 0;
    int status = SAKO_OK;
    while (status == SAKO_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 1);
        const void *blob = sqlite3_column_blob(st, 2);
        size_t bytes = (size_t)sqlite3_column_bytes(st, 2);
        if (n < 0 || n > SAKO_MAX_BATCH) {
            status = sako__error(SAKO_CORRUPT, "event log: batch %lld claims %lld events",
                                 (long long)sqlite3_column_int64(st, 0), (long long)n);
            break;
        }
        if ((size_t)n > cap) {
            free(events);
            cap = (size_t)n;
            events = malloc(cap * sizeof *events);
            if (!events) {
                status = sako__error(SAKO_NOMEM, "out of memory replaying the event log");
                break;
            }
        }
        if (n == 0)
            continue;
        if ((status = sako__events_decode(blob, bytes, events, (size_t)n)))
            break;
        if (!counts && (status = sako__users_reserve(e, (size_t)n)))
            break;
        for (int64_t j = 0; j < n; j++) {
            uint32_t item = sako__idmap_get(&e->item_index, events[j].item_id);
            if (item == SAKO_NONE) {
                status = sako__error(SAKO_CORRUPT, "event log names item %lld, not in the catalog",
                                     (long long)events[j].item_id);
                break;
            }
            if (counts) {
                counts[item].n[events[j].type] += 1.0;
            } else {
                /* n_events and events_since_refresh are stored per batch already. */
                sako__model_apply_event(e, &events[j], item);
                e->events_since_checkpoint++;
            }
        }
    }
    free(events);
    if (status == SAKO_OK && rc != SQLITE_DONE) {
        status = sako__error_sqlite(e->db, rc, "reading the event log");
        if (status == SAKO_ERROR)
            status = SAKO_CORRUPT;
    }
    sqlite3_finalize(st);
    return status;
}

int sako__refresh_epoch(sako_engine *e, const sako_counts *counts)
{
    size_t nc = e->n_categories;
    double *means = malloc((nc ? nc : 1) * sizeof *means);
    sako_beta *post = malloc((e->cap_items ? e->cap_items : 1) * sizeof *post);
    double root = 0.5;
    int rc = SAKO_OK;
    if (!means || !post)
        rc = sako__error(SAKO_NOMEM, "out of memory starting a prior epoch");
    if (rc == SAKO_OK)
        rc = sako__model_refresh_priors(e, counts, &root, means);
    if (rc == SAKO_OK)
        rc = sako__store_begin(e);
    if (rc == SAKO_OK) {
        sqlite3_stmt *st = NULL;
        int src = sqlite3_prepare_v2(e->db, "UPDATE categories SET prior_mean = ?2 WHERE id = ?1",
                                     -1, &st, NULL);
        for (size_t c = 0; c < nc && src == SQLITE_OK; c++) {
            sqlite3_bind_int64(st, 1, e->categories[c].id);
            sqlite3_bind_double(st, 2, means[c]);
            src = sqlite3_step(st);
            src = src == SQLITE_DONE ? sqlite3_reset(st) : src;
        }
        sqlite3_finalize(st);
        if (src != SQLITE_OK)
            rc = sako__error_sqlite(e->db, src, "writing category priors");
        if (rc == SAKO_OK)
            rc = sako__store_set_meta_real(e, "root_mean", root);
        /* Counts are stored by checkpoints, independently of epochs; only a
         * retrain, which may change them, must write them now. */
        if (rc == SAKO_OK && counts)
            rc = sako__store_checkpoint(e, counts);
        if (rc == SAKO_OK)
            rc = sako__store_set_meta_int(e, "events_since_refresh", 0);
        if (rc == SAKO_OK && counts) {
            rc = sako__store_set_meta_int(e, "model_version", e->model_version + 1);
            sqlite3_stmt *sm = NULL;
            src = sqlite3_prepare_v2(e->db, "INSERT INTO models(version, created_at, n_events, kind) "
                                     "VALUES(?1, ?2, ?3, 'thompson')", -1, &sm, NULL);
            if (src == SQLITE_OK) {
                sqlite3_bind_int64(sm, 1, e->model_version + 1);
                sqlite3_bind_int64(sm, 2, sako__now_ms());
                sqlite3_bind_int64(sm, 3, (int64_t)e->n_events);
                src = sqlite3_step(sm);
            }
            sqlite3_finalize(sm);
            if (rc == SAKO_OK && src != SQLITE_DONE)
                rc = sako__error_sqlite(e->db, src, "recording the model version");
        }
        if (rc == SAKO_OK)
            rc = sako__store_commit(e);
        else
            sako__store_rollback(e);
    }
    sako_domains *domains = NULL;
    if (rc == SAKO_OK) {
        /* Computed before taking the lock: readers keep sampling the old epoch. */
        sako__model_fill_posteriors_with(e, counts, root, means, post);
        int k = e->domains ? e->domains->k_target : SAKO_DOMAIN_DEFAULT_K;
        if (sako__domains_build(e, post, k, &domains) != SAKO_OK)
            domains = NULL; /* queries brute-force until the next rebuild */
        pthread_rwlock_wrlock(&e->lock);
        for (size_t c = 0; c < nc; c++)
            e->categories[c].prior_mean = means[c];
        e->root_mean = root;
        if (counts) {
            for (size_t i = 0; i < e->n_items; i++) {
                e->items[i].counts = counts[i];
                e->items[i].dirty = 0;
            }
            for (size_t u = 0; u < e->n_users; u++)
                e->users[u].dirty = 0;
            e->events_since_checkpoint = 0;
            e->model_version++;
        }
        sako_beta *old = e->posterior;
        e->posterior = post;
        post = old;
        sako_domains *old_domains = e->domains;
        e->domains = domains;
        domains = old_domains;
        e->events_since_refresh = 0;
        pthread_rwlock_unlock(&e->lock);
    }
    sako__domains_free(domains);
    free(means);
    free(post);
    return rc;
}

int sako__checkpoint_now(sako_engine *e)
{
    int rc = sako__store_begin(e);
    if (rc)
        return rc;
    if ((rc = sako__store_checkpoint(e, NULL)) || (rc = sako__store_commit(e))) {
        sako__store_rollback(e);
        return rc;
    }
    pthread_rwlock_wrlock(&e->lock);
    for (size_t i = 0; i < e->n_items; i++)
        e->items[i].dirty = 0;
    for (size_t u = 0; u < e->n_users; u++)
        e->users[u].dirty = 0;
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
    sako_counts *counts = calloc(e->n_items ? e->n_items : 1, sizeof *counts);
    if (!counts)
        rc = sako__error(SAKO_NOMEM, "out of memory rebuilding %zu items", e->n_items);
    if (rc == SAKO_OK)
        rc = sako__replay_log(e, 0, counts);
    if (rc == SAKO_OK)
        rc = sako__refresh_epoch(e, counts);
    free(counts);
    pthread_mutex_unlock(&e->write_mutex);
    return rc;
}
