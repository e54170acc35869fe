/* Product demand: how often each product is bought, per basket, and what that says
 * about P(bought | shown).
 *
 * c_j is the number of baskets holding product j and B the number of baskets (both
 * from the personal state, so organic purchases count). A category's mean rate is
 * shrunk to its parent's with SAKO_DEMAND_NODE_PSEUDO pseudo-products:
 *   m_c = (C_c / B + k m_parent) / (N_c + k),   C_c, N_c: purchases and products of c's subtree,
 * and a product's rate to its category's with the category's method-of-moments Beta
 * strength s_c (between-product variance of c_j / B net of binomial noise):
 *   q_j = (c_j + s_c m_c) / (B + s_c).
 * Recommendation outcomes calibrate demand: lambda = (A + K) / (E + K) with A the
 * outcome successes (reward-weighted, as the Beta model counts them) and E the sum
 * of impressions x q_j over products shown so far, K = SAKO_CALIBRATION_PSEUDO.
 * Once organic purchases reach demand_min_purchases, a product's population prior
 * mean is lambda q_j (computed with this epoch's m_c, s_c, B and the product's own
 * current c_j); before that, its category's pooled mean as in 0.1.
 * The epoch's constants are stored with the category priors, so a reopen restores
 * them; the candidate lists are rebuilt from the current counts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "demand_internal.h"
#include "engine_internal.h"
#include "model_internal.h"

#define MEAN_FLOOR 1e-9
#define STRENGTH_MIN 1.0
#define STRENGTH_MAX 1e7

static double clamp01(double m)
{
    if (!(m > MEAN_FLOOR))
        return MEAN_FLOOR;
    return m > 1.0 - MEAN_FLOOR ? 1.0 - MEAN_FLOOR : m;
}

void sako__demand_free(sako_demand *d)
{
    if (!d)
        return;
    free(d->cat_mean);
    free(d->cat_strength);
    free(d->cat_share);
    free(d->top);
    free(d->cat_top);
    free(d->cat_top_n);
    free(d);
}

/* Method-of-moments Beta strength of rates p_i = c_i / B with sums s1 = sum p, s2 =
 * sum p^2 over n products. */
static double mom_strength(double s1, double s2, double n, double b)
{
    if (n < 2.0)
        return STRENGTH_MAX;
    double m = s1 / n, var = s2 / n - m * m;
    double noise = m * (1.0 - m) / b;
    double v = var - noise;
    if (!(v > 1e-15))
        v = 1e-15;
    double s = m * (1.0 - m) / v - 1.0;
    if (!isfinite(s) || s > STRENGTH_MAX)
        return STRENGTH_MAX;
    return s < STRENGTH_MIN ? STRENGTH_MIN : s;
}

/* ------------------------------------------------------------ top lists */

typedef struct minheap {
    double *v;
    uint32_t *item;
    size_t n, k;
} minheap;

static void heap_offer(minheap *h, double v, uint32_t item)
{
    size_t i;
    if (h->n < h->k) {
        i = h->n++;
        while (i > 0 && h->v[(i - 1) / 2] > v) {
            h->v[i] = h->v[(i - 1) / 2];
            h->item[i] = h->item[(i - 1) / 2];
            i = (i - 1) / 2;
        }
    } else {
        if (!(v > h->v[0]))
            return;
        i = 0;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= h->n)
                break;
            if (c + 1 < h->n && h->v[c + 1] < h->v[c])
                c++;
            if (h->v[c] >= v)
                break;
            h->v[i] = h->v[c];
            h->item[i] = h->item[c];
            i = c;
        }
    }
    h->v[i] = v;
    h->item[i] = item;
}

/* The heap's items, best first, into out. */
static size_t heap_drain(minheap *h, uint32_t *out)
{
    size_t n = h->n;
    /* Selection by repeated extraction of the minimum: small k. */
    for (size_t w = n; w > 0; w--) {
        size_t best = 0;
        for (size_t j = 1; j < h->n; j++)
            if (h->v[j] < h->v[best] || (h->v[j] == h->v[best] && h->item[j] > h->item[best]))
                best = j;
        out[w - 1] = h->item[best];
        h->v[best] = h->v[h->n - 1];
        h->item[best] = h->item[h->n - 1];
        h->n--;
    }
    return n;
}

/* ------------------------------------------------------------ build */

static double rate_of(const sako_demand *d, const sako_engine *e, uint32_t item, double c, double b)
{
    uint32_t cat = e->items[item].category;
    double m = d->root_mean, s = d->root_strength;
    if (cat != SAKO_NONE && cat < d->n_categories && d->cat_strength[cat] > 0.0) {
        m = d->cat_mean[cat];
        s = d->cat_strength[cat];
    }
    return (c + s * m) / (b + s);
}

static int build_lists(const sako_engine *e, sako_demand *d, double b, double ps)
{
    size_t nc = e->n_categories;
    d->listed_items = e->n_items;
    d->listed_categories = nc;
    double hv[SAKO_DEMAND_TOP];
    uint32_t hi[SAKO_DEMAND_TOP];
    minheap h = { hv, hi, 0, SAKO_DEMAND_TOP };
    d->top = malloc(SAKO_DEMAND_TOP * sizeof *d->top);
    d->cat_top = malloc((nc ? nc : 1) * SAKO_CATEGORY_TOP * sizeof *d->cat_top);
    d->cat_top_n = calloc(nc ? nc : 1, sizeof *d->cat_top_n);
    if (!d->top || !d->cat_top || !d->cat_top_n)
        return sako__error(SAKO_NOMEM, "out of memory building demand lists");
    for (size_t i = 0; i < e->n_items; i++)
        if (e->items[i].active)
            heap_offer(&h, rate_of(d, e, (uint32_t)i, e->personal.item_baskets[i] * ps, b), (uint32_t)i);
    d->n_top = heap_drain(&h, d->top);
    for (size_t c = 0; c < nc; c++) {
        const sako_category_state *cs = &e->categories[c];
        minheap ch = { hv, hi, 0, SAKO_CATEGORY_TOP };
        for (size_t j = 0; j < cs->n_members; j++) {
            uint32_t i = cs->members[j];
            if (e->items[i].active)
                heap_offer(&ch, rate_of(d, e, i, e->personal.item_baskets[i] * ps, b), i);
        }
        d->cat_top_n[c] = (uint8_t)heap_drain(&ch, d->cat_top + c * SAKO_CATEGORY_TOP);
    }
    return SAKO_OK;
}

/* Category means parents first (order_by_depth gives that order). */
static void category_means(const sako_engine *e, sako_demand *d, const uint32_t *order,
                           size_t n_ordered, const double *sub_c, const double *sub_n, double b)
{
    const double k = SAKO_DEMAND_NODE_PSEUDO;
    for (size_t j = 0; j < n_ordered; j++) {
        uint32_t c = order[j];
        uint32_t parent = e->categories[c].parent;
        double mp = parent == SAKO_NONE ? d->root_mean : d->cat_mean[parent];
        d->cat_mean[c] = (sub_c[c] / b + k * mp) / (sub_n[c] + k);
    }
}

/* B at the epoch's time, at least 1. */
static double baskets_at(const sako_engine *e, double ps)
{
    double b = e->personal.baskets * ps;
    return b > 1.0 ? b : 1.0;
}

double sako__demand_personal_scale(const sako_engine *e)
{
    return sako__decay_scale(&e->personal.decay, e->decay_ref);
}

static double scale_of(const sako_engine *e, const sako_demand *d)
{
    return sako__decay_scale(&e->personal.decay, d->ref);
}

int sako__demand_build(const sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                       sako_decay_ref ref, double root_prior, const double *cat_prior_means,
                       sako_demand **out)
{
    (void)root_prior;
    (void)cat_prior_means;
    *out = NULL;
    size_t nc = e->n_categories, n = e->n_items;
    sako_demand *d = calloc(1, sizeof *d);
    double *sub_c = calloc(nc ? nc : 1, sizeof *sub_c), *sub_n = calloc(nc ? nc : 1, sizeof *sub_n);
    double *s1 = calloc(nc + 1, sizeof *s1), *s2 = calloc(nc + 1, sizeof *s2),
           *cnt = calloc(nc + 1, sizeof *cnt);
    uint32_t *order = malloc((nc ? nc : 1) * sizeof *order);
    int rc = SAKO_OK;
    if (!d || !sub_c || !sub_n || !s1 || !s2 || !cnt || !order ||
        !(d->cat_mean = calloc(nc ? nc : 1, sizeof *d->cat_mean)) ||
        !(d->cat_strength = calloc(nc ? nc : 1, sizeof *d->cat_strength)) ||
        !(d->cat_share = calloc(nc ? nc : 1, sizeof *d->cat_share))) {
        rc = sako__error(SAKO_NOMEM, "out of memory building product demand");
        goto done;
    }
    d->n_categories = nc;
    d->ref = ref;
    double ps = scale_of(e, d);
    double b = baskets_at(e, ps);
    double total = 0.0, shown_q = 0.0, successes = 0.0;
    for (size_t i = 0; i < n; i++) {
        const sako_item_state *it = &e->items[i];
        double c = e->personal.item_baskets[i] * ps;
        total += c;
        for (uint32_t x = it->category; x != SAKO_NONE; x = e->categories[x].parent) {
            sub_c[x] += c;
            sub_n[x] += 1.0;
        }
        size_t g = it->category == SAKO_NONE ? nc : it->category;
        double p = c / b;
        s1[g] += p;
        s2[g] += p * p;
        cnt[g] += 1.0;
    }
    d->root_mean = (total / b + 1.0 / (double)(n ? n : 1)) / ((double)(n ? n : 1) + 1.0);
    d->root_strength = mom_strength(s1[nc], s2[nc], cnt[nc], b);
    size_t n_ordered = sako__model_order_by_depth(e, order);
    category_means(e, d, order, n_ordered, sub_c, sub_n, b);
    for (size_t c = 0; c < nc; c++) {
        d->cat_strength[c] = mom_strength(s1[c], s2[c], cnt[c], b);
        d->cat_share[c] = total > 0.0 ? sub_c[c] / total : 0.0;
    }
    /* Calibration over the products shown so far. */
    for (size_t i = 0; i < n; i++) {
        sako_counts oc = sako__model_outcomes(e, (uint32_t)i, counts ? &counts[i] : &e->items[i].counts,
                                              frame, ref);
        if (oc.n[SAKO_EVENT_IMPRESSION] <= 0.0)
            continue;
        double a, bb;
        sako__model_evidence(&e->params, &oc, &a, &bb);
        successes += a;
        shown_q += oc.n[SAKO_EVENT_IMPRESSION] * rate_of(d, e, (uint32_t)i, e->personal.item_baskets[i] * ps, b);
    }
    d->calibration = (successes + SAKO_CALIBRATION_PSEUDO) / (shown_q + SAKO_CALIBRATION_PSEUDO);
    d->baskets = b;
    d->active = e->params.organic_demand && e->params.prior == SAKO_PRIOR_CATEGORY &&
                e->personal.organic_purchases >= (double)e->params.demand_min_purchases &&
                e->personal.baskets > 0.0;
    rc = build_lists(e, d, b, ps);
done:
    free(sub_c);
    free(sub_n);
    free(s1);
    free(s2);
    free(cnt);
    free(order);
    if (rc) {
        sako__demand_free(d);
        return rc;
    }
    *out = d;
    return SAKO_OK;
}

int sako__demand_relist(sako_engine *e)
{
    sako_demand *d = e->demand;
    if (!d || (e->n_items * 10 < d->listed_items * 11 && e->n_categories == d->listed_categories))
        return SAKO_OK;
    /* New lists on a copy of the header (the constants do not change). */
    sako_demand fresh = *d;
    fresh.top = NULL;
    fresh.cat_top = NULL;
    fresh.cat_top_n = NULL;
    /* Lists cover every category now; the constants stay the epoch's (a category
     * newer than it falls back to the root's). */
    double ps = scale_of(e, d);
    int rc = build_lists(e, &fresh, baskets_at(e, ps), ps);
    if (rc) {
        free(fresh.top);
        free(fresh.cat_top);
        free(fresh.cat_top_n);
        return rc;
    }
    pthread_rwlock_wrlock(&e->lock);
    uint32_t *old_top = d->top, *old_cat_top = d->cat_top;
    uint8_t *old_n = d->cat_top_n;
    d->top = fresh.top;
    d->n_top = fresh.n_top;
    d->cat_top = fresh.cat_top;
    d->cat_top_n = fresh.cat_top_n;
    d->listed_items = fresh.listed_items;
    d->listed_categories = fresh.listed_categories;
    pthread_rwlock_unlock(&e->lock);
    free(old_top);
    free(old_cat_top);
    free(old_n);
    return SAKO_OK;
}

/* ------------------------------------------------------------ reads */

double sako__demand_rate(const sako_engine *e, uint32_t item)
{
    const sako_demand *d = e->demand;
    double ps = sako__demand_personal_scale(e);
    double b = baskets_at(e, ps);
    double c = item < e->personal.cap_items ? e->personal.item_baskets[item] * ps : 0.0;
    if (!d)
        return (c + 1e-9) / (b + 1.0);
    return rate_of(d, e, item, c, b);
}

void sako__demand_rate_prior(const sako_engine *e, uint32_t item, double *rate, double *prior)
{
    const sako_demand *d = e->demand;
    double ps = sako__demand_personal_scale(e);
    double b = baskets_at(e, ps);
    double c = item < e->personal.cap_items ? e->personal.item_baskets[item] * ps : 0.0;
    uint32_t cat = e->item_class[item].category;
    if (!d) {
        *rate = (c + 1e-9) / (b + 1.0);
        *prior = sako__model_prior_mean(e, cat);
        return;
    }
    double m = d->root_mean, st = d->root_strength;
    if (cat != SAKO_NONE && cat < d->n_categories && d->cat_strength[cat] > 0.0) {
        m = d->cat_mean[cat];
        st = d->cat_strength[cat];
    }
    *rate = (c + st * m) / (b + st);
    *prior = d->active ? clamp01(d->calibration * ((c + st * m) / (d->baskets + st)))
                       : sako__model_prior_mean(e, cat);
}

double sako__demand_prior_with(const sako_engine *e, const sako_demand *d, uint32_t item,
                               double category_prior)
{
    if (!d || !d->active)
        return category_prior;
    double c = item < e->personal.cap_items ? e->personal.item_baskets[item] * scale_of(e, d) : 0.0;
    return clamp01(d->calibration * rate_of(d, e, item, c, d->baskets));
}

double sako__demand_prior(const sako_engine *e, uint32_t item)
{
    return sako__demand_prior_with(e, e->demand, item,
                                   sako__model_prior_mean(e, e->items[item].category));
}

/* ------------------------------------------------------------ persistence */

int sako__demand_write(const sako_engine *e, const sako_demand *d)
{
    sako_store_demand sd = { d->active, d->calibration, d->baskets, d->root_mean, d->root_strength };
    int rc = sako__store_write_demand((sako_store *)&e->store, &sd);
    for (size_t c = 0; c < d->n_categories && rc == SAKO_OK; c++) {
        sako_category_demand_row r = { e->categories[c].id, d->cat_mean[c], d->cat_strength[c],
                                       d->cat_share[c] };
        rc = sako__store_write_category_demand((sako_store *)&e->store, &r);
    }
    return rc;
}

typedef struct restore_state {
    const sako_engine *e;
    sako_demand *d;
} restore_state;

static int restore_row(void *payload, const sako_category_demand_row *r)
{
    restore_state *rs = payload;
    uint32_t c = sako__idmap_get(&rs->e->category_index, r->id);
    if (c == SAKO_NONE || c >= rs->d->n_categories)
        return SAKO_OK;
    if (!isfinite(r->mean) || r->mean < 0.0 || r->mean > 1.0 || !isfinite(r->strength) ||
        r->strength < 0.0 || !isfinite(r->share) || r->share < 0.0 || r->share > 1.0 + 1e-9)
        return sako__error(SAKO_CORRUPT, "database damaged: demand of category %lld",
                           (long long)r->id);
    rs->d->cat_mean[c] = r->mean;
    rs->d->cat_strength[c] = r->strength;
    rs->d->cat_share[c] = r->share;
    return SAKO_OK;
}

int sako__demand_from_fit(const sako_engine *e, const sako_store_demand *stored,
                          const double *cat_mean, const double *cat_strength,
                          const double *cat_share, sako_decay_ref ref, int lists,
                          sako_demand **out)
{
    *out = NULL;
    size_t nc = e->n_categories;
    if (!isfinite(stored->calibration) || stored->calibration <= 0.0 || !(stored->baskets >= 1.0) ||
        !isfinite(stored->baskets) || !(stored->root_mean >= 0.0 && stored->root_mean <= 1.0) ||
        !(stored->root_strength >= STRENGTH_MIN && stored->root_strength <= STRENGTH_MAX))
        return sako__error(SAKO_CORRUPT, "model version: invalid demand constants");
    for (size_t c = 0; c < nc; c++)
        if (!isfinite(cat_mean[c]) || cat_mean[c] < 0.0 || cat_mean[c] > 1.0 ||
            !isfinite(cat_strength[c]) || cat_strength[c] < 0.0 || !isfinite(cat_share[c]) ||
            cat_share[c] < 0.0 || cat_share[c] > 1.0 + 1e-9)
            return sako__error(SAKO_CORRUPT, "model version: invalid demand of category %lld",
                               (long long)e->categories[c].id);
    sako_demand *d = calloc(1, sizeof *d);
    if (!d || !(d->cat_mean = malloc((nc ? nc : 1) * sizeof *d->cat_mean)) ||
        !(d->cat_strength = malloc((nc ? nc : 1) * sizeof *d->cat_strength)) ||
        !(d->cat_share = malloc((nc ? nc : 1) * sizeof *d->cat_share))) {
        sako__demand_free(d);
        return sako__error(SAKO_NOMEM, "out of memory restoring product demand");
    }
    memcpy(d->cat_mean, cat_mean, nc * sizeof *cat_mean);
    memcpy(d->cat_strength, cat_strength, nc * sizeof *cat_strength);
    memcpy(d->cat_share, cat_share, nc * sizeof *cat_share);
    d->n_categories = nc;
    d->active = stored->active != 0;
    d->calibration = stored->calibration;
    d->baskets = stored->baskets;
    d->root_mean = stored->root_mean;
    d->root_strength = stored->root_strength;
    d->ref = ref;
    if (lists) {
        double ps = scale_of(e, d);
        int rc = build_lists(e, d, baskets_at(e, ps), ps);
        if (rc) {
            sako__demand_free(d);
            return rc;
        }
    }
    *out = d;
    return SAKO_OK;
}

int sako__demand_restore(const sako_engine *e, const sako_store_demand *stored, sako_demand **out)
{
    *out = NULL;
    size_t nc = e->n_categories;
    if (!isfinite(stored->calibration) || stored->calibration <= 0.0 || !(stored->baskets >= 1.0) ||
        !isfinite(stored->baskets) || !(stored->root_mean >= 0.0 && stored->root_mean <= 1.0) ||
        !(stored->root_strength >= STRENGTH_MIN && stored->root_strength <= STRENGTH_MAX))
        return sako__error(SAKO_CORRUPT, "database damaged: invalid demand epoch");
    sako_demand *d = calloc(1, sizeof *d);
    if (!d || !(d->cat_mean = calloc(nc ? nc : 1, sizeof *d->cat_mean)) ||
        !(d->cat_strength = calloc(nc ? nc : 1, sizeof *d->cat_strength)) ||
        !(d->cat_share = calloc(nc ? nc : 1, sizeof *d->cat_share))) {
        sako__demand_free(d);
        return sako__error(SAKO_NOMEM, "out of memory restoring product demand");
    }
    d->n_categories = nc;
    d->active = stored->active != 0;
    d->calibration = stored->calibration;
    d->baskets = stored->baskets;
    d->root_mean = stored->root_mean;
    d->root_strength = stored->root_strength;
    d->ref = e->decay_ref;
    restore_state rs = { e, d };
    int rc = sako__store_read_category_demand((sako_store *)&e->store, restore_row, &rs);
    if (rc == SAKO_OK) {
        double ps = scale_of(e, d);
        rc = build_lists(e, d, baskets_at(e, ps), ps);
    }
    if (rc) {
        sako__demand_free(d);
        return rc;
    }
    *out = d;
    return SAKO_OK;
}
