/* The Beta-Bernoulli model: rewards -> evidence, category priors by empirical Bayes.
 *
 * An item's evidence is A = sum over types of reward[type] * count[type] successes
 * and B = penalty * max(0, impressions - clicks) failures. Its posterior is
 * Beta(s*m + A, s*(1-m) + B) where m is the prior mean of its category and s the
 * prior strength. The category means form a hierarchy (empirical Bayes with
 * back-off): m_root = (A_all + 1) / (A_all + B_all + 2), and for a category c with
 * parent p, m_c = (A_c + k*m_p) / (A_c + B_c + k), where A_c, B_c pool the evidence
 * of every item in c's subtree and k is the category shrinkage. A category with
 * little evidence thus sits at its parent's mean; one with much at its own rate.
 *
 * Means change only at a refresh (a "prior epoch"), so one event changes exactly
 * one item's posterior. Pooled sums are taken over integer-valued counts before
 * weighting, so they are exact and independent of summation order: a retrain
 * from the log reproduces them bit for bit. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "demand_internal.h"
#include "factor_index_internal.h"
#include "model_internal.h"

/* A prior refresh also waits until the evidence grew by this share (see below). */
#define SAKO_REFRESH_GROWTH 0.25

/* With decay, a prior epoch is also due once the log's time has moved this share of
 * a half-life past the epoch's time: between epochs an event weighs at most
 * 2^(1/8) = 1.09 times what it will weigh at the next epoch. */
#define SAKO_DECAY_EPOCH_SHARE 8.0
/* With decay, decayed evidence above this is scaled down (mean kept): reached only
 * when a batch jumps far past the epoch's time, until the epoch right after it. */
#define SAKO_EVIDENCE_MAX 1e12

/* Means are kept strictly inside (0, 1) so that both Beta shapes stay positive. */
#define MEAN_FLOOR 1e-9

static double clamp_mean(double m)
{
    if (!(m > MEAN_FLOOR))
        return MEAN_FLOOR;
    if (m > 1.0 - MEAN_FLOOR)
        return 1.0 - MEAN_FLOOR;
    return m;
}

void sako__model_params_from_options(sako_model_params *p, const sako_options *o)
{
    memset(p, 0, sizeof *p);
    p->reward[SAKO_EVENT_IMPRESSION] = 0.0;
    p->reward[SAKO_EVENT_CLICK] = o->reward_click;
    p->reward[SAKO_EVENT_CART] = o->reward_cart;
    p->reward[SAKO_EVENT_PURCHASE] = o->reward_purchase;
    p->penalty_impression = o->penalty_impression;
    p->prior = o->prior;
    p->prior_strength = o->prior_strength;
    p->category_shrinkage = o->category_shrinkage;
    p->prior_refresh_events = o->prior_refresh_events;
    p->organic_demand = o->organic_demand;
    p->demand_min_purchases = o->demand_min_purchases;
    p->personal = o->personal;
    p->personal_min_baskets = o->personal_min_baskets;
    p->half_life_days = o->half_life_days;
    p->personal_strength = o->personal_strength;
    p->personal_temperature = o->personal_temperature;
    p->due_exponent = o->due_exponent;
    p->affinity_strength = o->affinity_strength;
    p->lift_strength = o->lift_strength;
    p->basket_gap_ms = o->basket_gap_ms;
    p->decay_half_life_days = o->decay_half_life_days;
    p->mf_factors = o->mf_factors;
    p->mf_iterations = o->mf_iterations;
    p->mf_cg_steps = o->mf_cg_steps;
    p->mf_regularization = o->mf_regularization;
    p->mf_alpha = o->mf_alpha;
    p->mf_seed = o->mf_seed;
    p->mf_mode = o->mf_mode;
    p->mf_min_users = o->mf_min_users;
    p->mf_min_user_items = o->mf_min_user_items;
    p->mf_weight = o->mf_weight;
    p->mf_candidates = o->mf_candidates;
}

void sako__model_options_from_params(sako_options *o, const sako_model_params *p)
{
    o->reward_click = p->reward[SAKO_EVENT_CLICK];
    o->reward_cart = p->reward[SAKO_EVENT_CART];
    o->reward_purchase = p->reward[SAKO_EVENT_PURCHASE];
    o->penalty_impression = p->penalty_impression;
    o->prior = p->prior;
    o->prior_strength = p->prior_strength;
    o->category_shrinkage = p->category_shrinkage;
    o->prior_refresh_events = p->prior_refresh_events;
    o->organic_demand = p->organic_demand;
    o->demand_min_purchases = p->demand_min_purchases;
    o->personal = p->personal;
    o->personal_min_baskets = p->personal_min_baskets;
    o->half_life_days = p->half_life_days;
    o->personal_strength = p->personal_strength;
    o->personal_temperature = p->personal_temperature;
    o->due_exponent = p->due_exponent;
    o->affinity_strength = p->affinity_strength;
    o->lift_strength = p->lift_strength;
    o->basket_gap_ms = p->basket_gap_ms;
    o->decay_half_life_days = p->decay_half_life_days;
    o->mf_factors = p->mf_factors;
    o->mf_iterations = p->mf_iterations;
    o->mf_cg_steps = p->mf_cg_steps;
    o->mf_regularization = p->mf_regularization;
    o->mf_alpha = p->mf_alpha;
    o->mf_seed = p->mf_seed;
    o->mf_mode = p->mf_mode;
    o->mf_min_users = p->mf_min_users;
    o->mf_min_user_items = p->mf_min_user_items;
    o->mf_weight = p->mf_weight;
    o->mf_candidates = p->mf_candidates;
}

void sako__model_options_upgrade(sako_options *dst, const sako_options *src)
{
    static const sako_options defaults = SAKO_OPTIONS_INIT;
    if (src->version >= 1 && src->version <= 4) {
        /* Only the fields an older struct has are read: it may end right there. */
        *dst = defaults;
        memcpy(dst, src, src->version == 1 ? offsetof(sako_options, organic_demand)
                         : src->version == 2 ? offsetof(sako_options, decay_half_life_days)
                         : src->version == 3 ? offsetof(sako_options, mf_factors)
                                             : offsetof(sako_options, mf_probe));
        dst->version = SAKO_OPTIONS_VERSION;
    } else {
        *dst = *src;
    }
}

static int check_weight(const char *name, double v, int strictly_positive)
{
    if (!isfinite(v) || v < 0.0 || (strictly_positive && v == 0.0) || v > 1e6)
        return sako__error(SAKO_INVALID, "options: %s = %g must be a finite number in %s",
                           name, v, strictly_positive ? "(0, 1e6]" : "[0, 1e6]");
    return SAKO_OK;
}

/* The matrix factorisation's fields (the solver's own ranges: include/sako.h). */
static int validate_mf(const sako_options *o)
{
    if (o->mf_factors > 1024)
        return sako__error(SAKO_INVALID, "options: mf_factors = %u is not 0 (off) or in [1, 1024]",
                           o->mf_factors);
    if (o->mf_iterations < 1 || o->mf_iterations > 10000)
        return sako__error(SAKO_INVALID, "options: mf_iterations = %u is not in [1, 10000]",
                           o->mf_iterations);
    if (!isfinite(o->mf_regularization) || o->mf_regularization < 0.0 || o->mf_regularization > 1e6)
        return sako__error(SAKO_INVALID, "options: mf_regularization = %g is not a finite number "
                           "in [0, 1e6]", o->mf_regularization);
    if (!isfinite(o->mf_alpha) || !(o->mf_alpha > 0.0) || o->mf_alpha > 1e6)
        return sako__error(SAKO_INVALID, "options: mf_alpha = %g is not a finite number in (0, 1e6]",
                           o->mf_alpha);
    uint32_t max_cg = o->mf_factors ? o->mf_factors : 1024;
    if (o->mf_cg_steps < 1 || o->mf_cg_steps > max_cg)
        return sako__error(SAKO_INVALID, "options: mf_cg_steps = %u is not in [1, %u] (at most "
                           "mf_factors)", o->mf_cg_steps, max_cg);
    if (o->mf_threads > 256)
        return sako__error(SAKO_INVALID, "options: mf_threads = %u is not 0 (online cores) or in "
                           "[1, 256]", o->mf_threads);
    if (o->mf_mode != SAKO_MF_AUTO && o->mf_mode != SAKO_MF_OFF && o->mf_mode != SAKO_MF_ON)
        return sako__error(SAKO_INVALID, "options: mf_mode = %d is not a sako_mf_mode (0 auto, "
                           "1 off, 2 on)", o->mf_mode);
    if (o->mf_min_users < 1 || o->mf_min_users > 1000000000)
        return sako__error(SAKO_INVALID, "options: mf_min_users = %u is not in [1, 1e9]",
                           o->mf_min_users);
    if (o->mf_min_user_items < 1 || o->mf_min_user_items > 1000000)
        return sako__error(SAKO_INVALID, "options: mf_min_user_items = %u is not in [1, 1e6]",
                           o->mf_min_user_items);
    if (!isfinite(o->mf_weight) || o->mf_weight < 0.0 || o->mf_weight > 10.0)
        return sako__error(SAKO_INVALID, "options: mf_weight = %g is not a finite number in [0, 10]",
                           o->mf_weight);
    if (o->mf_candidates > 10000)
        return sako__error(SAKO_INVALID, "options: mf_candidates = %u is not in [0, 10000]",
                           o->mf_candidates);
    if (o->mf_probe > SAKO_FACTOR_INDEX_LISTS_MAX)
        return sako__error(SAKO_INVALID, "options: mf_probe = %u is not 0 (the index's default) "
                           "or in [1, %d]", o->mf_probe, SAKO_FACTOR_INDEX_LISTS_MAX);
    return SAKO_OK;
}

int sako__model_validate_options(const sako_options *o)
{
    int rc;
    if (o->version != SAKO_OPTIONS_VERSION)
        return sako__error(SAKO_INVALID, "options: version %u is not 1 to 4 or %d (use SAKO_OPTIONS_INIT)",
                           o->version, SAKO_OPTIONS_VERSION);
    if ((rc = check_weight("reward_click", o->reward_click, 0)) ||
        (rc = check_weight("reward_cart", o->reward_cart, 0)) ||
        (rc = check_weight("reward_purchase", o->reward_purchase, 0)) ||
        (rc = check_weight("penalty_impression", o->penalty_impression, 0)) ||
        (rc = check_weight("prior_strength", o->prior_strength, 1)) ||
        (rc = check_weight("category_shrinkage", o->category_shrinkage, 1)))
        return rc;
    if (o->prior != SAKO_PRIOR_CATEGORY && o->prior != SAKO_PRIOR_FLAT)
        return sako__error(SAKO_INVALID, "options: prior = %d is not a sako_prior", o->prior);
    if (o->durability < SAKO_DURABLE_FULL || o->durability > SAKO_DURABLE_OFF)
        return sako__error(SAKO_INVALID, "options: durability = %d is not a sako_durability",
                           o->durability);
    if (o->unknown_items != SAKO_UNKNOWN_REJECT && o->unknown_items != SAKO_UNKNOWN_CREATE)
        return sako__error(SAKO_INVALID, "options: unknown_items = %d is not a sako_unknown_item",
                           o->unknown_items);
    if (o->busy_timeout_ms < 0)
        return sako__error(SAKO_INVALID, "options: busy_timeout_ms = %d is negative",
                           o->busy_timeout_ms);
    if (o->reconfigure != 0 && o->reconfigure != 1)
        return sako__error(SAKO_INVALID, "options: reconfigure = %d is not 0 or 1", o->reconfigure);
    if (o->create_empty != 0 && o->create_empty != 1)
        return sako__error(SAKO_INVALID, "options: create_empty = %d is not 0 or 1", o->create_empty);
    if (o->organic_demand != 0 && o->organic_demand != 1)
        return sako__error(SAKO_INVALID, "options: organic_demand = %d is not 0 or 1", o->organic_demand);
    if (o->personal != 0 && o->personal != 1)
        return sako__error(SAKO_INVALID, "options: personal = %d is not 0 or 1", o->personal);
    if (o->personal_min_baskets < 1 || o->personal_min_baskets > 1000000)
        return sako__error(SAKO_INVALID, "options: personal_min_baskets = %u is not in [1, 1e6]",
                           o->personal_min_baskets);
    if (o->demand_min_purchases > (uint64_t)1e12)
        return sako__error(SAKO_INVALID, "options: demand_min_purchases = %llu exceeds 1e12",
                           (unsigned long long)o->demand_min_purchases);
    if ((rc = check_weight("half_life_days", o->half_life_days, 1)) ||
        (rc = check_weight("personal_strength", o->personal_strength, 1)) ||
        (rc = check_weight("personal_temperature", o->personal_temperature, 0)) ||
        (rc = check_weight("due_exponent", o->due_exponent, 0)) ||
        (rc = check_weight("affinity_strength", o->affinity_strength, 1)) ||
        (rc = check_weight("lift_strength", o->lift_strength, 1)))
        return rc;
    if (o->half_life_days < 1.0 / 24.0)
        return sako__error(SAKO_INVALID, "options: half_life_days = %g is shorter than an hour",
                           o->half_life_days);
    if (o->basket_gap_ms < 0 || o->basket_gap_ms > (int64_t)30 * 86400000)
        return sako__error(SAKO_INVALID, "options: basket_gap_ms = %lld is not in [0, 30 days]",
                           (long long)o->basket_gap_ms);
    /* Below a day, epochs (every eighth of a half-life of event time, each O(catalog))
     * would come too often, and a day is already shorter than any drift worth following. */
    double h = o->decay_half_life_days;
    if (!isfinite(h) || (h != 0.0 && (h < 1.0 || h > 1e6)))
        return sako__error(SAKO_INVALID, "options: decay_half_life_days = %g is not 0 (no decay) "
                           "or a number of days in [1, 1e6]", h);
    return validate_mf(o);
}

/* Without decay both scales are exactly 1 and x * 1 == x: the 0.2 arithmetic. */
sako_counts sako__model_outcomes(const sako_engine *e, uint32_t item, const sako_counts *c,
                                 const sako_decay *frame, sako_decay_ref ref)
{
    sako_counts o;
    double fc = sako__decay_scale(frame, ref);
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        o.n[t] = c->n[t] * fc;
    if (!e->params.organic_demand || item >= e->personal.cap_items)
        return o;
    const double *org = e->personal.items[item].organic;
    double fp = sako__decay_scale(&e->personal.decay, ref);
    for (int t = SAKO_EVENT_CLICK; t < SAKO_EVENT_TYPES; t++) {
        o.n[t] -= org[t] * fp;
        if (o.n[t] < 0.0)
            o.n[t] = 0.0;
    }
    return o;
}

/* Successes and failures of some counts under the model's rewards. */
void sako__model_evidence(const sako_model_params *p, const sako_counts *c, double *a, double *b)
{
    *a = p->reward[SAKO_EVENT_CLICK] * c->n[SAKO_EVENT_CLICK] +
         p->reward[SAKO_EVENT_CART] * c->n[SAKO_EVENT_CART] +
         p->reward[SAKO_EVENT_PURCHASE] * c->n[SAKO_EVENT_PURCHASE];
    double misses = c->n[SAKO_EVENT_IMPRESSION] - c->n[SAKO_EVENT_CLICK];
    *b = p->penalty_impression * (misses > 0.0 ? misses : 0.0);
}

/* Pooled counts, kept per type so that weighting happens once, after exact sums. */
typedef struct pooled {
    double n[SAKO_EVENT_TYPES];
    double misses;
} pooled;

static void pool_add(pooled *dst, const sako_counts *c)
{
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        dst->n[t] += c->n[t];
    double m = c->n[SAKO_EVENT_IMPRESSION] - c->n[SAKO_EVENT_CLICK];
    dst->misses += m > 0.0 ? m : 0.0;
}

static void pooled_evidence(const sako_model_params *p, const pooled *s, double *a, double *b)
{
    *a = p->reward[SAKO_EVENT_CLICK] * s->n[SAKO_EVENT_CLICK] +
         p->reward[SAKO_EVENT_CART] * s->n[SAKO_EVENT_CART] +
         p->reward[SAKO_EVENT_PURCHASE] * s->n[SAKO_EVENT_PURCHASE];
    *b = p->penalty_impression * s->misses;
}

/* Category indices, parents before children (by depth); returns how many. */
size_t sako__model_order_by_depth(const sako_engine *e, uint32_t *order)
{
    size_t nc = e->n_categories, n_ordered = 0;
    for (int depth = 1; depth <= SAKO_MAX_DEPTH && n_ordered < nc; depth++)
        for (size_t c = 0; c < nc; c++) {
            int d = 0;
            for (uint32_t x = (uint32_t)c; x != SAKO_NONE; x = e->categories[x].parent)
                d++;
            if (d == depth)
                order[n_ordered++] = (uint32_t)c;
        }
    return n_ordered;
}

int sako__model_refresh_priors(const sako_engine *e, const sako_counts *counts,
                               const sako_decay *frame, sako_decay_ref ref,
                               double *root_out, double *cat_means_out)
{
    size_t nc = e->n_categories;
    pooled *sums = calloc(nc ? nc : 1, sizeof *sums);
    uint32_t *order = malloc((nc ? nc : 1) * sizeof *order);
    if (!sums || !order) {
        free(sums);
        free(order);
        return sako__error(SAKO_NOMEM, "out of memory refreshing category priors");
    }
    pooled all;
    memset(&all, 0, sizeof all);
    for (size_t i = 0; i < e->n_items; i++) {
        const sako_item_state *it = &e->items[i];
        sako_counts ct = sako__model_outcomes(e, (uint32_t)i, counts ? &counts[i] : &it->counts,
                                              frame, ref);
        pool_add(&all, &ct);
        /* Credit the item's category and every ancestor (depth <= SAKO_MAX_DEPTH). */
        for (uint32_t c = it->category; c != SAKO_NONE; c = e->categories[c].parent)
            pool_add(&sums[c], &ct);
    }
    double a, b;
    pooled_evidence(&e->params, &all, &a, &b);
    double root = clamp_mean((a + 1.0) / (a + b + 2.0));

    size_t n_ordered = sako__model_order_by_depth(e, order);
    double k = e->params.category_shrinkage;
    for (size_t j = 0; j < n_ordered; j++) {
        uint32_t c = order[j];
        uint32_t parent = e->categories[c].parent;
        double mp = parent == SAKO_NONE ? root : cat_means_out[parent];
        pooled_evidence(&e->params, &sums[c], &a, &b);
        cat_means_out[c] = clamp_mean((a + k * mp) / (a + b + k));
    }
    *root_out = root;
    free(sums);
    free(order);
    return SAKO_OK;
}

/* Refresh after prior_refresh_events events, and once the evidence has also grown
 * by SAKO_REFRESH_GROWTH since the last refresh. Early on, when every event moves
 * the pooled means, that is every prior_refresh_events; later, when they hardly
 * move, refreshes (each O(catalog), since every posterior changes) space out
 * geometrically, so their total cost grows with the log of the event count. */
int sako__model_refresh_due(const sako_engine *e)
{
    uint64_t since = e->events_since_refresh, every = e->params.prior_refresh_events;
    /* Decay bites only through epochs: take one when the log's time has moved on. */
    if (e->decay.half_life_ms > 0.0 && since > 0 &&
        (double)(e->decay.latest - e->decay_epoch_at) >= e->decay.half_life_ms / SAKO_DECAY_EPOCH_SHARE)
        return 1;
    if (every == 0 || since < every)
        return 0;
    uint64_t before = e->n_events - since;
    return (double)since >= SAKO_REFRESH_GROWTH * (double)before;
}

double sako__model_prior_mean(const sako_engine *e, uint32_t category)
{
    if (e->params.prior == SAKO_PRIOR_FLAT)
        return 0.5;
    return category == SAKO_NONE ? e->root_mean : e->categories[category].prior_mean;
}

static void posterior_of(const sako_model_params *p, const sako_counts *c, double mean,
                         double *a, double *b)
{
    double ea, eb;
    sako__model_evidence(p, c, &ea, &eb);
    if (p->decay_half_life_days > 0.0 && ea + eb > SAKO_EVIDENCE_MAX) {
        double f = SAKO_EVIDENCE_MAX / (ea + eb);
        ea *= f;
        eb *= f;
    }
    if (p->prior == SAKO_PRIOR_FLAT) {
        *a = 1.0 + ea;
        *b = 1.0 + eb;
        return;
    }
    *a = p->prior_strength * mean + ea;
    *b = p->prior_strength * (1.0 - mean) + eb;
}

static void model_posterior(const sako_engine *e, uint32_t item, double *a, double *b)
{
    sako_counts oc = sako__model_outcomes(e, item, &e->items[item].counts, &e->decay, e->decay_ref);
    posterior_of(&e->params, &oc, sako__demand_prior(e, item), a, b);
}

void sako__model_posterior_with(const sako_engine *e, const sako_counts *counts,
                                 const sako_decay *frame, sako_decay_ref ref, double root,
                                 const double *cat_means, const sako_demand *demand, uint32_t i,
                                 sako_beta *dst)
{
    uint32_t c = e->items[i].category;
    double a, b;
    double prior = sako__demand_prior_with(e, demand, i, c == SAKO_NONE ? root : cat_means[c]);
    sako_counts oc = sako__model_outcomes(e, i, counts ? &counts[i] : &e->items[i].counts, frame, ref);
    posterior_of(&e->params, &oc, prior, &a, &b);
    sako__beta_set(dst, a, b);
}

void sako__model_fill_posteriors_with(const sako_engine *e, const sako_counts *counts,
                                      const sako_decay *frame, sako_decay_ref ref,
                                      double root, const double *cat_means,
                                      const sako_demand *demand, sako_beta *dst)
{
    for (size_t i = 0; i < e->n_items; i++)
        sako__model_posterior_with(e, counts, frame, ref, root, cat_means, demand, (uint32_t)i, &dst[i]);
}

void sako__model_update_posterior(sako_engine *e, uint32_t item)
{
    double a, b;
    model_posterior(e, item, &a, &b);
    sako__beta_set(&e->posterior[item], a, b);
}

void sako__model_fill_posteriors(const sako_engine *e, sako_beta *dst)
{
    for (size_t i = 0; i < e->n_items; i++) {
        double a, b;
        model_posterior(e, (uint32_t)i, &a, &b);
        sako__beta_set(&dst[i], a, b);
    }
}

void sako__model_apply_event(sako_engine *e, const sako_event *ev, uint32_t item)
{
    sako_item_state *it = &e->items[item];
    if (e->decay.half_life_ms > 0.0 && e->decay_epoch_at == 0) {
        /* No epoch yet: the first event's time is the reference until the first one. */
        e->decay_epoch_at = ev->time;
        e->decay_ref = sako__decay_ref(e->decay.half_life_ms, ev->time);
    }
    int64_t delta = sako__decay_observe(&e->decay, ev->time);
    if (delta) {
        /* Every count times 2^-delta: exact, so no posterior changes (the scale at
         * the epoch's time grows by 2^delta); each item is written at the next
         * checkpoint. */
        for (size_t i = 0; i < e->n_items; i++) {
            for (int t = 0; t < SAKO_EVENT_TYPES; t++)
                e->items[i].counts.n[t] = sako__decay_shrink(e->items[i].counts.n[t], delta);
            e->items[i].dirty = 1;
        }
        e->n_dirty_items = e->n_items;
    }
    it->counts.n[ev->type] += sako__decay_weight(&e->decay, ev->time);
    if (ev->time > it->last_event_at)
        it->last_event_at = ev->time;
    if (!it->dirty) {
        it->dirty = 1;
        e->n_dirty_items++;
    }
    sako__model_update_posterior(e, item);
}

/* ------------------------------------------------------------ model versions */

static int fit_row_by_id(const void *x, const void *y)
{
    int64_t a = ((const sako_store_fit_row *)x)->id, b = ((const sako_store_fit_row *)y)->id;
    return (a > b) - (a < b);
}

int sako__model_fit_capture(const sako_engine *e, double root, const double *means,
                            const sako_demand *demand, int64_t epoch_at, sako_store_fit *out)
{
    memset(out, 0, sizeof *out);
    size_t nc = e->n_categories;
    out->rows = calloc(nc ? nc : 1, sizeof *out->rows);
    if (!out->rows)
        return sako__error(SAKO_NOMEM, "out of memory recording a model version");
    out->n_rows = nc;
    out->root_mean = root;
    out->epoch_at = epoch_at;
    out->params = e->params;
    if (demand) {
        out->demand.active = demand->active;
        out->demand.calibration = demand->calibration;
        out->demand.baskets = demand->baskets;
        out->demand.root_mean = demand->root_mean;
        out->demand.root_strength = demand->root_strength;
    }
    for (size_t c = 0; c < nc; c++) {
        sako_store_fit_row *r = &out->rows[c];
        r->id = e->categories[c].id;
        r->prior_mean = means[c];
        if (demand && c < demand->n_categories) {
            r->demand_mean = demand->cat_mean[c];
            r->demand_strength = demand->cat_strength[c];
            r->demand_share = demand->cat_share[c];
        }
    }
    qsort(out->rows, nc, sizeof *out->rows, fit_row_by_id);
    return SAKO_OK;
}

int sako__model_fit_finite(const sako_store_fit *fit, char *why, size_t n)
{
    if (!(fit->root_mean > 0.0 && fit->root_mean < 1.0)) {
        snprintf(why, n, "catalog prior mean %g", fit->root_mean);
        return 0;
    }
    for (size_t c = 0; c < fit->n_rows; c++) {
        const sako_store_fit_row *r = &fit->rows[c];
        if (!(r->prior_mean >= 0.0 && r->prior_mean <= 1.0) || !isfinite(r->demand_mean) ||
            !isfinite(r->demand_strength) || !isfinite(r->demand_share)) {
            snprintf(why, n, "category %lld: prior mean %g, demand %g/%g/%g", (long long)r->id,
                     r->prior_mean, r->demand_mean, r->demand_strength, r->demand_share);
            return 0;
        }
    }
    const sako_store_demand *d = &fit->demand;
    if (!isfinite(d->calibration) || !isfinite(d->baskets) || !isfinite(d->root_mean) ||
        !isfinite(d->root_strength)) {
        snprintf(why, n, "demand constants %g/%g/%g/%g", d->calibration, d->baskets,
                 d->root_mean, d->root_strength);
        return 0;
    }
    return 1;
}

int sako__model_fit_restore(const sako_engine *e, const sako_store_fit *fit, int lists,
                            double *means, sako_demand **demand_out)
{
    *demand_out = NULL;
    size_t nc = e->n_categories;
    double *dm = calloc(3 * (nc ? nc : 1), sizeof *dm);
    uint32_t *order = malloc((nc ? nc : 1) * sizeof *order);
    if (!dm || !order) {
        free(dm);
        free(order);
        return sako__error(SAKO_NOMEM, "out of memory restoring a model version");
    }
    double *ds = dm + (nc ? nc : 1), *dsh = ds + (nc ? nc : 1);
    /* Parents first, so that a category the version does not know (created after it
     * was fitted) backs off to its parent's mean, or the catalog's. */
    size_t n_ordered = sako__model_order_by_depth(e, order);
    for (size_t j = 0; j < n_ordered; j++) {
        uint32_t c = order[j];
        sako_store_fit_row key = { e->categories[c].id, 0, 0, 0, 0 };
        const sako_store_fit_row *r = fit->n_rows ? bsearch(&key, fit->rows, fit->n_rows,
                                                            sizeof key, fit_row_by_id) : NULL;
        uint32_t p = e->categories[c].parent;
        means[c] = r ? r->prior_mean : p == SAKO_NONE ? fit->root_mean : means[p];
        dm[c] = r ? r->demand_mean : 0.0;
        ds[c] = r ? r->demand_strength : 0.0;
        dsh[c] = r ? r->demand_share : 0.0;
    }
    sako_decay_ref ref = sako__decay_ref(e->decay.half_life_ms, fit->epoch_at);
    int rc = sako__demand_from_fit(e, &fit->demand, dm, ds, dsh, ref, lists, demand_out);
    free(dm);
    free(order);
    return rc;
}
