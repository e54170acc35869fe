/* One representative call of every public function, as the sweeps run it. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h" /* refresh_sync_items and the refresh thread's flags */
#include "retrain_internal.h" /* SAKO_REFRESH_SYNC_ITEMS */
#include "steps.h"

static int run_init_open(step_ctx *c)
{
    sako_options o = scenario_options(SAKO_DURABLE_FULL);
    return sako_init(&c->e, c->path, &o);
}

static int run_init_memory(step_ctx *c)
{
    sako_options o = scenario_options(SAKO_DURABLE_FULL);
    return sako_init(&c->e, NULL, &o);
}

static int run_close(step_ctx *c)
{
    sako_close(c->e);
    c->e = NULL;
    return SAKO_OK;
}

static int run_categories(step_ctx *c)
{
    sako_category cats[3] = { { 7, 1, "new aisle" }, { 3, 2, "renamed" }, { 8, 7, NULL } };
    return sako_categories_upsert(c->e, cats, 3);
}

static int run_items(step_ctx *c)
{
    sako_item items[4] = { { 41, 3, 1, 1700000000000LL }, { 42, 0, 1, 1700000000000LL },
                           { 2, 4, 1, 1700000000000LL }, { 3, 3, 0, 1700000000000LL } };
    return sako_items_upsert(c->e, items, 4);
}

#define TU 1700000000000LL + 40 * 86400000LL

static int run_update(step_ctx *c)
{
    sako_event ev[6] = {
        { 501, 4, SAKO_EVENT_IMPRESSION, TU, 9 }, { 501, 4, SAKO_EVENT_CLICK, TU + 1, 9 },
        { 502, 1000, SAKO_EVENT_PURCHASE, TU + 2, 0 }, { 501, 5, SAKO_EVENT_CART, TU + 3, 0 },
        { 1, 6, SAKO_EVENT_PURCHASE, TU + 4, 0 }, { 502, 6, SAKO_EVENT_IMPRESSION, TU + 5, 0 },
    };
    return sako_update(c->e, ev, 6);
}

static int run_update_orders(step_ctx *c)
{
    sako_event ev[5] = {
        { 503, 8, SAKO_EVENT_PURCHASE, TU, 0 }, { 503, 9, SAKO_EVENT_PURCHASE, TU + 1, 0 },
        { 503, 1001, SAKO_EVENT_PURCHASE, TU + 2, 0 }, { 2, 8, SAKO_EVENT_PURCHASE, TU + 3, 0 },
        { 2, 10, SAKO_EVENT_PURCHASE, TU + 4, 0 },
    };
    int64_t orders[5] = { 77, 77, 77, 78, 78 };
    return sako_update_orders(c->e, ev, orders, 5);
}

/* sako_update() whose prior refresh runs on the background thread (as on a catalog
 * over SAKO_REFRESH_SYNC_ITEMS), waited for, so that its allocations and writes are
 * failed too and the state compared is the refreshed one. */
static int run_update_background(step_ctx *c)
{
    c->e->refresh_sync_items = 0;
    int rc = run_update(c);
    while (c->e->refresh_running && !__atomic_load_n(&c->e->refresh_done, __ATOMIC_ACQUIRE)) {
        struct timespec ms = { 0, 1000000 };
        nanosleep(&ms, NULL);
    }
    /* Later batches (the sweep's follow-up) refresh inline again, as in the reference. */
    c->e->refresh_sync_items = SAKO_REFRESH_SYNC_ITEMS;
    return rc;
}

static int run_recommend(step_ctx *c)
{
    sako_rec out[10];
    size_t n = 0;
    int64_t exclude[2] = { 1, 2 }, recent[2] = { 8, 9 };
    sako_query q = SAKO_QUERY_INIT;
    q.user_id = 3; /* a user with baskets: the personal engine */
    q.k = 10;
    q.exclude = exclude;
    q.n_exclude = 2;
    q.recent = recent;
    q.n_recent = 2;
    q.time = TU;
    int rc = sako_recommend(c->e, &q, out, 10, &n);
    if (rc)
        return rc;
    sako_query anon = SAKO_QUERY_INIT;
    anon.k = 5;
    anon.category_id = 1;
    return sako_recommend(c->e, &anon, out, 10, &n);
}

static int run_retrain(step_ctx *c)
{
    return sako_retrain(c->e);
}

static int run_policy_set(step_ctx *c)
{
    sako_policy p = SAKO_POLICY_INIT;
    p.every_events = 500;
    p.drift_fraction = 0.5;
    p.drift_window = 200;
    p.drift_min_impressions = 10;
    return sako_policy_set(c->e, &p);
}

static int run_policy_get(step_ctx *c)
{
    sako_policy p = SAKO_POLICY_INIT;
    return sako_policy_get(c->e, &p);
}

static int run_retrain_due(step_ctx *c)
{
    sako_retrain_status s;
    return sako_retrain_due(c->e, &s);
}

static int run_item_get(step_ctx *c)
{
    sako_item_info it;
    return sako_item_get(c->e, 4, &it);
}

static int run_user_get(step_ctx *c)
{
    sako_user_info u;
    return sako_user_get(c->e, 3, &u);
}

static int run_user_item_get(step_ctx *c)
{
    sako_user_info u;
    sako_user_item ui;
    int rc = sako_user_get(c->e, 3, &u);
    if (rc)
        return rc;
    rc = sako_user_item_get(c->e, 3, 4, &ui);
    return rc == SAKO_NOTFOUND ? SAKO_OK : rc;
}

static int run_category_prior(step_ctx *c)
{
    double m;
    int rc = sako_category_prior(c->e, 3, &m);
    return rc ? rc : sako_category_prior(c->e, 0, &m);
}

static int run_stats(step_ctx *c)
{
    sako_stats s;
    return sako_stats_get(c->e, &s);
}

static int run_options(step_ctx *c)
{
    sako_options o = SAKO_OPTIONS_INIT;
    return sako_options_get(c->e, &o);
}

static int run_ready(step_ctx *c)
{
    int ready = 0;
    return sako_ready(c->e, &ready);
}

static int run_compact(step_ctx *c)
{
    sako_compact_options o = SAKO_COMPACT_OPTIONS_INIT;
    o.keep_days = 0;
    o.keep_events = 0; /* raised to SAKO_COMPACT_MIN_EVENTS (the scenario's gate holdout
                        * is below it) */
    sako_compact_report r;
    int rc = sako_compact(c->e, &o, &r);
    if (rc == SAKO_OK && r.batches_removed == 0)
        return SAKO_ERROR; /* the scenario must give it something to fold away */
    return rc;
}

static int run_retrain_v2(step_ctx *c)
{
    return sako_retrain_v2(c->e, SAKO_RETRAIN_EVENTS);
}

/* The outcome of a retrain this handle ran: none yet on a fresh handle, which the
 * call must say (SAKO_NOTFOUND) without changing anything. */
static int run_retrain_result(step_ctx *c)
{
    sako_version_info v;
    int rc = sako_retrain_result(c->e, &v);
    return rc == SAKO_NOTFOUND ? SAKO_OK : rc == SAKO_OK ? SAKO_ERROR : rc;
}

static int run_versions_list(step_ctx *c)
{
    sako_version_info v[8];
    size_t n = 0, total = 0;
    return sako_versions_list(c->e, v, 8, &n, &total);
}

static int run_version_get(step_ctx *c)
{
    sako_version_info v;
    return sako_version_get(c->e, 0, &v);
}

/* Rollback: the scenario's second retrain made version 2 active; version 1 is
 * activated again (the lookups before it only read). */
static int run_version_activate(step_ctx *c)
{
    sako_version_info v[4];
    size_t n = 0;
    int rc = sako_versions_list(c->e, v, 4, &n, NULL);
    for (size_t i = 0; rc == SAKO_OK && i < n; i++)
        if (v[i].status == SAKO_MODEL_INACTIVE)
            return sako_version_activate(c->e, v[i].version);
    return rc ? rc : SAKO_ERROR; /* the scenario must leave an older version to go back to */
}

static int run_version_pin(step_ctx *c)
{
    sako_version_info v;
    int rc = sako_version_get(c->e, 0, &v);
    return rc ? rc : sako_version_pin(c->e, v.version, 1);
}

static int run_log_stats(step_ctx *c)
{
    sako_log_stats ls;
    return sako_log_stats_get(c->e, &ls);
}

static int run_verify(step_ctx *c)
{
    memset(&c->report, 0, sizeof c->report);
    return sako_verify(c->path, &c->report);
}

static int run_backup(step_ctx *c)
{
    return sako_backup(c->e, c->other);
}

/* The replica's calls (issue 11): the batch and its log position commit together,
 * so a failure leaves both as they were (the fingerprint holds the position). */
static int run_update_at(step_ctx *c)
{
    sako_event ev[4] = {
        { 504, 4, SAKO_EVENT_IMPRESSION, TU, 9 }, { 504, 4, SAKO_EVENT_CLICK, TU + 1, 9 },
        { 504, 1001, SAKO_EVENT_PURCHASE, TU + 2, 0 }, { 3, 6, SAKO_EVENT_PURCHASE, TU + 3, 0 },
    };
    int64_t orders[4] = { 0, 0, 80, 81 };
    return sako_update_at(c->e, 17, ev, orders, 4, NULL);
}

static int run_items_at(step_ctx *c)
{
    sako_item items[2] = { { 43, 3, 1, 1700000000000LL }, { 2, 4, 0, 1700000000000LL } };
    return sako_items_upsert_at(c->e, 18, items, 2, NULL);
}

static int run_categories_at(step_ctx *c)
{
    sako_category cats[2] = { { 7, 1, "replicated aisle" }, { 3, 2, NULL } };
    return sako_categories_upsert_at(c->e, 19, cats, 2, NULL);
}

static int run_retrain_at(step_ctx *c)
{
    return sako_retrain_at(c->e, 20, SAKO_RETRAIN_MANUAL, NULL);
}

/* The matrix factors' calls on an engine whose retrains trained them (the scenario's
 * mf options): what they report, a stored item's vector and a user's, folded in. */
static int run_factors_info(step_ctx *c)
{
    sako_factors_info info = { .version = SAKO_FACTORS_INFO_VERSION };
    int rc = sako_factors_info_get(c->e, &info);
    return rc ? rc : info.factors == 4 ? SAKO_OK : SAKO_ERROR; /* the scenario trained k = 4 */
}

static int run_factors_vector(step_ctx *c)
{
    float v[8];
    size_t n = 0;
    int rc = sako_factors_vector(c->e, 0, 4, v, 8, &n);
    if (rc == SAKO_OK)
        rc = sako_factors_vector(c->e, 3, 0, v, 8, &n);
    return rc;
}

/* The standalone matrix calls (no engine). A user x item matrix of 130 rows, so that
 * sako_mf_fit() solves rows on two threads (64 rows a chunk); its results are
 * deterministic, so a call that met a fault and still succeeded must give exactly
 * the factors of the first run (made before any fault, by the sweep's counting run),
 * and a failed sako_mf_fold_in() must leave x as it was (the header's promise). */
#define MF_ROWS 130
#define MF_COLS 20
#define MF_K 4

static void mf_matrix(sako_csr *r)
{
    static int64_t ptr[MF_ROWS + 1];
    static int32_t idx[MF_ROWS * 3];
    static float val[MF_ROWS * 3];
    for (int u = 0; u < MF_ROWS; u++) {
        ptr[u + 1] = ptr[u] + 3;
        for (int j = 0; j < 3; j++) {
            idx[3 * u + j] = (u + 7 * j) % MF_COLS; /* ascending for j = 0..2 when no wrap */
            val[3 * u + j] = 1.0f + (float)((u + j) % 4);
        }
        /* columns ascending: sort the three */
        for (int a = 0; a < 3; a++)
            for (int b = a + 1; b < 3; b++)
                if (idx[3 * u + b] < idx[3 * u + a]) {
                    int32_t t = idx[3 * u + a];
                    idx[3 * u + a] = idx[3 * u + b];
                    idx[3 * u + b] = t;
                }
    }
    *r = (sako_csr){ MF_ROWS, MF_COLS, ptr, idx, val };
}

static sako_mf_options mf_options(void)
{
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = MF_K;
    o.iterations = 2;
    o.cg_steps = 2;
    o.threads = 2;
    return o;
}

/* 1 the first time (the reference is kept), else whether got equals it. */
static int same_as_first(float *ref, int *have, const float *got, size_t n)
{
    if (!*have) {
        memcpy(ref, got, n * sizeof *ref);
        *have = 1;
        return 1;
    }
    return memcmp(ref, got, n * sizeof *ref) == 0;
}

static int run_mf_fit(step_ctx *c)
{
    (void)c;
    static float ref[(MF_ROWS + MF_COLS) * MF_K];
    static int have;
    static float x[(MF_ROWS + MF_COLS) * MF_K];
    sako_csr r;
    mf_matrix(&r);
    sako_mf_options o = mf_options();
    int rc = sako_mf_fit(&r, &o, x, x + MF_ROWS * MF_K);
    if (rc == SAKO_OK && !same_as_first(ref, &have, x, sizeof x / sizeof *x))
        return SAKO_ERROR; /* succeeded with other factors */
    return rc;
}

static int run_mf_gram(step_ctx *c)
{
    (void)c;
    static float y[MF_COLS * MF_K];
    for (size_t i = 0; i < sizeof y / sizeof *y; i++)
        y[i] = 0.01f * (float)(i % 13) + 0.001f;
    double g[MF_K * MF_K];
    return sako_mf_gram(y, MF_COLS, MF_K, g);
}

static int run_mf_fold_in(step_ctx *c)
{
    (void)c;
    static float y[MF_COLS * MF_K];
    for (size_t i = 0; i < sizeof y / sizeof *y; i++)
        y[i] = 0.01f * (float)(i % 13) + 0.001f;
    int32_t items[3] = { 5, 1, 12 };
    float values[3] = { 1.0f, 3.0f, 2.0f };
    sako_mf_options o = mf_options();
    static float ref[2][MF_K];
    static int have[2];
    for (int exact = 0; exact <= 1; exact++) {
        float x[MF_K] = { 0.1f, 0.2f, 0.3f, 0.4f }, before[MF_K];
        memcpy(before, x, sizeof x);
        /* gram NULL: the call computes it (its allocations are failed too) */
        int rc = sako_mf_fold_in(y, MF_COLS, NULL, items, values, 3, &o, exact, x);
        if (rc != SAKO_OK)
            return memcmp(x, before, sizeof x) ? SAKO_ERROR : rc; /* x must be unchanged */
        if (!same_as_first(ref[exact], &have[exact], x, MF_K))
            return SAKO_ERROR;
    }
    return SAKO_OK;
}

static int run_diagnostics(step_ctx *c)
{
    (void)c;
    if (sako_version_number() != SAKO_VERSION_NUMBER ||
        strcmp(sako_version_string(), SAKO_VERSION_STRING) != 0 ||
        strcmp(sako_errstr(SAKO_NOMEM), "out of memory") != 0 || sako_errmsg() == NULL ||
        sako_threadsafe() != 1)
        return SAKO_ERROR;
    return SAKO_OK;
}

const step steps[] = {
    { "sako_init (open)", STEP_OPENS, 0, run_init_open },
    { "sako_init (create)", STEP_CREATES, 1, run_init_open },
    { "sako_init (memory)", STEP_OPENS_MEMORY, 0, run_init_memory },
    { "sako_close", STEP_CLOSES, 0, run_close },
    { "sako_categories_upsert", STEP_ON_ENGINE, 1, run_categories },
    { "sako_items_upsert", STEP_ON_ENGINE, 1, run_items },
    { "sako_update", STEP_ON_ENGINE, 1, run_update },
    { "sako_update_orders", STEP_ON_ENGINE, 1, run_update_orders },
    { "sako_update (background refresh)", STEP_ON_ENGINE, 1, run_update_background },
    { "sako_recommend", STEP_ON_ENGINE, 0, run_recommend },
    { "sako_retrain", STEP_ON_ENGINE, 1, run_retrain },
    { "sako_policy_set", STEP_ON_ENGINE, 1, run_policy_set },
    { "sako_policy_get", STEP_ON_ENGINE, 0, run_policy_get },
    { "sako_retrain_due", STEP_ON_ENGINE, 0, run_retrain_due },
    { "sako_item_get", STEP_ON_ENGINE, 0, run_item_get },
    { "sako_user_get", STEP_ON_ENGINE, 0, run_user_get },
    { "sako_user_item_get", STEP_ON_ENGINE, 0, run_user_item_get },
    { "sako_category_prior", STEP_ON_ENGINE, 0, run_category_prior },
    { "sako_stats_get", STEP_ON_ENGINE, 0, run_stats },
    { "sako_options_get", STEP_ON_ENGINE, 0, run_options },
    { "sako_ready", STEP_ON_ENGINE, 0, run_ready },
    { "sako_compact", STEP_ON_ENGINE, 1, run_compact },
    { "sako_retrain_v2", STEP_ON_ENGINE, 1, run_retrain_v2 },
    { "sako_retrain_result", STEP_ON_ENGINE, 0, run_retrain_result },
    { "sako_versions_list", STEP_ON_ENGINE, 0, run_versions_list },
    { "sako_version_get", STEP_ON_ENGINE, 0, run_version_get },
    { "sako_version_activate", STEP_ON_ENGINE, 1, run_version_activate },
    { "sako_version_pin", STEP_ON_ENGINE, 1, run_version_pin },
    { "sako_log_stats_get", STEP_ON_ENGINE, 0, run_log_stats },
    { "sako_verify", STEP_ON_FILE, 0, run_verify },
    { "sako_backup", STEP_BACKUP, 0, run_backup },
    { "sako_update_at", STEP_ON_ENGINE, 1, run_update_at },
    { "sako_items_upsert_at", STEP_ON_ENGINE, 1, run_items_at },
    { "sako_categories_upsert_at", STEP_ON_ENGINE, 1, run_categories_at },
    { "sako_retrain_at", STEP_ON_ENGINE, 1, run_retrain_at },
    { "sako_factors_info_get", STEP_ON_ENGINE, 0, run_factors_info },
    { "sako_factors_vector", STEP_ON_ENGINE, 0, run_factors_vector },
    { "sako_mf_fit", STEP_NO_ENGINE, 0, run_mf_fit },
    { "sako_mf_gram", STEP_NO_ENGINE, 0, run_mf_gram },
    { "sako_mf_fold_in", STEP_NO_ENGINE, 0, run_mf_fold_in },
    { "diagnostics (version, errstr, errmsg, threadsafe)", STEP_NO_ENGINE, 0, run_diagnostics },
};
const size_t n_steps = sizeof steps / sizeof *steps;
