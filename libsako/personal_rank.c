/* The personal engine's answer: one Thompson draw over a per-(user, item) posterior,
 * exact over a candidate set.
 *
 * For user u at time t, with W_u its decayed basket count and n_uj its decayed count
 * of baskets holding product j (docs/architecture.md, "The personal engine"):
 *   pi_uj = q_j * r_j * A_u(c_j) * l_uj        (prior mean, clipped to [1e-9, 0.9])
 *   mu_uj = (a0 pi_uj + n_uj) / (a0 + W_u) * due_uj   (clipped to [1e-9, 0.99])
 *   draw  ~ Beta(S mu_uj, S (1 - mu_uj)),  S = (a0 + W_u) / temperature
 * q_j: demand (demand.c); r_j: what recommendation outcomes did to the product's
 * population posterior (posterior mean / prior mean, clipped to [0.1, 10]);
 * A_u: the user's category affinity, department share and category share each
 * shrunk to the population's with affinity_strength pseudo-purchases; l_uj: mean
 * shrunk lift of j with the latest basket and the query's recent items;
 * due_uj = min(1, since / interval)^kappa for a product the user bought before.
 *
 * Candidates: the user's products, the catalog's SAKO_DEMAND_TOP best-selling, the
 * SAKO_CATEGORY_TOP best of the user's SAKO_TOP_CATEGORIES heaviest categories,
 * SAKO_COPURCHASE_TOP bought-together partners, and the population engine's own top
 * k (its exact draw). A product outside them is not drawn: the draw is exact over
 * the candidates, not over the catalog.
 *
 * Matrix factorisation (when served to this user, see mf_served): pi_uj is also
 * multiplied by m_uj = ((e + s_uj) / (e + s_u))^w, clipped to [0.1, 10], where s_uj is
 * the factor score x_u . y_j clipped to [0, 1] (it estimates the preference p_uj), s_u
 * = x_u . y_mean clipped the same way, y_mean the item vectors' mean weighted by their
 * interactions: a product the factors rate above the platform's typical interaction
 * gets m > 1, as the category affinity is a share over the population's share (the
 * reference depends on the user and the training only, never on which other
 * candidates a request has), e = SAKO_MF_EPS and
 * w = mf_weight; and the mf_candidates products with the best factor scores (the
 * index's answer) join the candidates. m_uj applies to products new to the user only
 * (m = 1 for the user's own): for a product the user bought, n_uj and due_uj are the
 * user's own evidence, and the factors' reconstruction of that row only re-ranked the
 * staples by what similar users buy, which cost NDCG on the Complete Journey's tuning
 * split at every weight (docs/journey/mf_quality.md); the factors' job is the products
 * the user's history cannot rate. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "demand_internal.h"
#include "engine_internal.h"
#include "factors_internal.h"
#include "personal_rank_internal.h"
#include "topk_internal.h"

#define SAKO_TOP_CATEGORIES 8
#define SAKO_COPURCHASE_TOP 60
/* Keeps the factor signal finite for a user whose scores are all about 0. */
#define SAKO_MF_EPS 0.05

enum { FROM_OWN = 1, FROM_LIST = 2, FROM_PARTNER = 4, FROM_MF = 8 };

typedef struct candidate {
    uint32_t item;
    uint32_t from;
    float lift_sum;        /* sum over the sources of (lift - 1), lift > 1 only */
    float mf;              /* its factor score clipped to [0, 1]; < 0: no vector */
    uint8_t src;           /* the sako_source it is attributed to, once drawn */
    const sako_history_entry *own;
} candidate;

struct sako_personal_scratch {
    uint32_t *slot;        /* per item: its candidate index, valid when mark == gen */
    uint32_t *mark;
    size_t cap_items;
    uint32_t gen;
    candidate *cand;
    size_t n_cand, cap_cand;
    double *cat_weight;    /* per category: the user's decayed purchases in its subtree */
    double *cat_affinity;  /* per category: A_u, valid when cat_mark == gen */
    uint32_t *cat_dept;    /* per category: its department, valid when dept_mark == gen */
    uint32_t *cat_mark, *dept_mark;
    uint32_t *cat_touched;
    size_t n_touched, cap_categories;
    double *heap_v;        /* the top k: draws and candidate indices */
    uint32_t *heap_i;
    /* matrix factorisation: the user's vector, the index's answer and its scratch */
    float *mf_user;
    uint32_t mf_k;
    uint32_t *mf_items;
    float *mf_scores;
    size_t cap_mf;
    void *mf_index_scratch;
    size_t cap_mf_index;
    sako_factors_workspace mf_fold;  /* a fold-in's system and entries, kept */
};

void sako__personal_scratch_free(sako_personal_scratch *s)
{
    if (!s)
        return;
    free(s->slot);
    free(s->mark);
    free(s->cand);
    free(s->cat_weight);
    free(s->cat_affinity);
    free(s->cat_dept);
    free(s->cat_mark);
    free(s->dept_mark);
    free(s->cat_touched);
    free(s->heap_v);
    free(s->heap_i);
    free(s->mf_user);
    free(s->mf_items);
    free(s->mf_scores);
    free(s->mf_index_scratch);
    sako__factors_workspace_free(&s->mf_fold);
    free(s);
}

static int scratch_fit(sako_personal_scratch **ps, size_t n_items, size_t n_categories)
{
    sako_personal_scratch *s = *ps;
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return SAKO_NOMEM;
        s->heap_v = malloc(SAKO_MAX_K * sizeof *s->heap_v);
        s->heap_i = malloc(SAKO_MAX_K * sizeof *s->heap_i);
        /* Kept only whole: a later call takes a kept scratch's heaps as there. */
        if (!s->heap_v || !s->heap_i) {
            sako__personal_scratch_free(s);
            return SAKO_NOMEM;
        }
        *ps = s;
    }
    if (n_items > s->cap_items) {
        size_t cap = n_items + n_items / 4 + 64;
        uint32_t *slot = realloc(s->slot, cap * sizeof *slot);
        if (slot)
            s->slot = slot;
        uint32_t *mark = realloc(s->mark, cap * sizeof *mark);
        if (mark)
            s->mark = mark;
        if (!slot || !mark)
            return SAKO_NOMEM;
        memset(s->mark + s->cap_items, 0, (cap - s->cap_items) * sizeof *mark);
        s->cap_items = cap;
    }
    if (n_categories > s->cap_categories) {
        size_t cap = n_categories + 16;
        double *w = realloc(s->cat_weight, cap * sizeof *w);
        if (w)
            s->cat_weight = w;
        uint32_t *t = realloc(s->cat_touched, cap * sizeof *t);
        if (t)
            s->cat_touched = t;
        double *af = realloc(s->cat_affinity, cap * sizeof *af);
        if (af)
            s->cat_affinity = af;
        uint32_t *dp = realloc(s->cat_dept, cap * sizeof *dp);
        if (dp)
            s->cat_dept = dp;
        uint32_t *cm = realloc(s->cat_mark, cap * sizeof *cm);
        if (cm)
            s->cat_mark = cm;
        uint32_t *dm = realloc(s->dept_mark, cap * sizeof *dm);
        if (dm)
            s->dept_mark = dm;
        if (!w || !t || !af || !dp || !cm || !dm)
            return SAKO_NOMEM;
        memset(s->cat_weight, 0, cap * sizeof *w);
        memset(s->cat_mark, 0, cap * sizeof *cm);
        memset(s->dept_mark, 0, cap * sizeof *dm);
        s->cap_categories = cap;
    }
    if (++s->gen == 0) { /* wrapped: forget every mark */
        memset(s->mark, 0, s->cap_items * sizeof *s->mark);
        memset(s->cat_mark, 0, s->cap_categories * sizeof *s->cat_mark);
        memset(s->dept_mark, 0, s->cap_categories * sizeof *s->dept_mark);
        s->gen = 1;
    }
    s->n_cand = 0;
    return SAKO_OK;
}

/* The candidate of `item`, added if new; NULL only when out of memory. */
static candidate *cand_get(sako_personal_scratch *s, uint32_t item, uint32_t from)
{
    if (s->mark[item] == s->gen) {
        candidate *c = &s->cand[s->slot[item]];
        c->from |= from;
        return c;
    }
    if (s->n_cand == s->cap_cand) {
        size_t cap = s->cap_cand ? 2 * s->cap_cand : 1024;
        candidate *v = realloc(s->cand, cap * sizeof *v);
        if (!v)
            return NULL;
        s->cand = v;
        s->cap_cand = cap;
    }
    s->mark[item] = s->gen;
    s->slot[item] = (uint32_t)s->n_cand;
    candidate *c = &s->cand[s->n_cand++];
    c->item = item;
    c->from = from;
    c->lift_sum = 0.0f;
    c->mf = -1.0f;
    c->own = NULL;
    return c;
}

/* Whether the factors take part for user u: trained factors, mf_factors > 0 and not
 * pinned off; in auto mode, the platform's training saw mf_min_users users and this
 * user interacted with mf_min_user_items products. */
static int mf_served(const sako_engine *e, const sako_factors *f, uint32_t u)
{
    const sako_model_params *mp = &e->params;
    if (!f || mp->mf_factors == 0 || mp->mf_mode == SAKO_MF_OFF)
        return 0;
    if (mp->mf_mode == SAKO_MF_ON)
        return 1;
    const sako_interactions *x = &e->personal.inter;
    return f->n_user_vectors >= mp->mf_min_users && u < x->cap_users &&
           x->users[u].n >= mp->mf_min_user_items;
}

static int mf_scratch(sako_personal_scratch *s, const sako_factors *f, size_t want)
{
    if (f->k > s->mf_k) {
        float *v = realloc(s->mf_user, f->k * sizeof *v);
        if (!v)
            return SAKO_NOMEM;
        s->mf_user = v;
        s->mf_k = f->k;
    }
    if (want > s->cap_mf) {
        uint32_t *i = realloc(s->mf_items, want * sizeof *i);
        if (i)
            s->mf_items = i;
        float *v = i ? realloc(s->mf_scores, want * sizeof *v) : NULL;
        if (!v)
            return SAKO_NOMEM;
        s->mf_scores = v;
        s->cap_mf = want;
    }
    size_t bytes = sako__factor_index_scratch_size(f->index, want);
    if (bytes > s->cap_mf_index) {
        void *p = realloc(s->mf_index_scratch, bytes);
        if (!p)
            return SAKO_NOMEM;
        s->mf_index_scratch = p;
        s->cap_mf_index = bytes;
    }
    return SAKO_OK;
}

static float clip01(float v)
{
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* x . y_item clipped to [0, 1]. */
static float mf_score(const sako_factors *f, const float *x, uint32_t item)
{
    return clip01(sako__factor_index_dot(x, f->item + (size_t)item * f->k, f->k));
}

/* The factors' candidates and every candidate's factor score; the reference score. */
static int mf_candidates(const sako_engine *e, sako_factors *f, const sako_personal_query *pq,
                         sako_personal_scratch *s, double *mean, int *used)
{
    *used = 0;
    size_t want = e->params.mf_candidates;
    if (mf_scratch(s, f, want) != SAKO_OK)
        return SAKO_NOMEM;
    int got = sako__factors_user_vector(f, &e->personal.inter, pq->user, &s->mf_fold,
                                        s->mf_user);
    if (got == SAKO_NOMEM)
        return got;
    if (got <= 0) { /* no interaction, or a solve that failed: served without factors */
        sako__error_clear();
        return SAKO_OK;
    }
    *used = 1;
    if (want > 0 && pq->q->mode != SAKO_MODE_REPEAT && f->index) {
        /* The user's vector changes only at a fold-in (a new event count) or with a
         * new training: the answer is cached per user (factors.c). */
        size_t n = sako__factors_candidates(f, &e->personal.inter, pq->user, s->mf_user,
                                            e->opts.mf_probe, want, s->mf_index_scratch,
                                            s->mf_items, s->mf_scores);
        /* The index's score is the same dot product of the same floats (its copy of
         * the vector): kept, not computed again. */
        for (size_t j = 0; j < n; j++) {
            candidate *c = cand_get(s, s->mf_items[j], FROM_MF);
            if (!c)
                return SAKO_NOMEM;
            c->mf = clip01(s->mf_scores[j]);
        }
    }
    for (size_t j = 0; j < s->n_cand; j++) {
        candidate *c = &s->cand[j];
        /* rows scattered over the item factors: ask for a later one's now */
        if (j + 4 < s->n_cand && s->cand[j + 4].item < f->n_items) {
            const char *row = (const char *)(f->item + (size_t)s->cand[j + 4].item * f->k);
            for (size_t b = 0; b < f->k * sizeof(float); b += 64)
                __builtin_prefetch(row + b);
        }
        if (c->from && !c->own && c->mf < 0.0f && c->item < f->n_items && f->has[c->item])
            c->mf = mf_score(f, s->mf_user, c->item);
    }
    double ref = 0.0;
    for (uint32_t t = 0; t < f->k; t++)
        ref += s->mf_user[t] * f->mean[t];
    *mean = ref < 0.0 ? 0.0 : ref > 1.0 ? 1.0 : ref;
    return SAKO_OK;
}

static uint32_t department_of(const sako_engine *e, uint32_t c)
{
    while (c != SAKO_NONE && e->categories[c].parent != SAKO_NONE)
        c = e->categories[c].parent;
    return c;
}

/* department_of, remembered per request (categories are shared by many products). */
static uint32_t department_cached(const sako_engine *e, sako_personal_scratch *s, uint32_t c)
{
    if (s->dept_mark[c] != s->gen) {
        s->cat_dept[c] = department_of(e, c);
        s->dept_mark[c] = s->gen;
    }
    return s->cat_dept[c];
}

static int in_subtree(const sako_engine *e, uint32_t item, uint32_t cat)
{
    if (cat == SAKO_NONE)
        return 1;
    for (uint32_t c = e->item_class[item].category; c != SAKO_NONE; c = e->categories[c].parent)
        if (c == cat)
            return 1;
    return 0;
}

/* Decayed weights of the user's purchases per category and department. */
static double user_categories(const sako_engine *e, const sako_history *h, int64_t now,
                              double half_life, sako_personal_scratch *s)
{
    double total = 0.0;
    s->n_touched = 0;
    for (uint32_t j = 0; j < h->n; j++) {
        const sako_history_entry *x = &h->v[j];
        double w = x->weight * sako__personal_decay(now - SAKO_ENTRY_LAST(x), half_life);
        total += w;
        uint32_t c = e->item_class[x->item].category;
        if (c == SAKO_NONE || c >= s->cap_categories)
            continue;
        uint32_t d = department_cached(e, s, c);
        uint32_t both[2] = { c, d };
        for (int k = 0; k < (d == c ? 1 : 2); k++) {
            if (s->cat_weight[both[k]] == 0.0)
                s->cat_touched[s->n_touched++] = both[k];
            s->cat_weight[both[k]] += w;
        }
    }
    return total;
}

static double affinity(const sako_engine *e, sako_personal_scratch *s, uint32_t c, double total,
                       double k)
{
    const sako_demand *d = e->demand;
    if (!d || c == SAKO_NONE || c >= d->n_categories)
        return 1.0;
    uint32_t dep = department_cached(e, s, c);
    double pd = dep < d->n_categories ? d->cat_share[dep] : 0.0;
    double pc = d->cat_share[c];
    double ad = pd > 0.0 ? (s->cat_weight[dep] + k * pd) / (total + k) / pd : 1.0;
    if (c == dep)
        return ad;
    return pc > 0.0 ? (s->cat_weight[c] + k * pc * ad) / (total + k) / pc : 1.0;
}

static int by_weight_desc(const void *a, const void *b, void *w)
{
    const double *cw = w;
    double x = cw[*(const uint32_t *)a], y = cw[*(const uint32_t *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return (*(const uint32_t *)a > *(const uint32_t *)b) - (*(const uint32_t *)a < *(const uint32_t *)b);
}

/* Partners of the latest basket and of the query's recent items. */
static int add_partners(const sako_engine *e, const sako_history *h, const sako_query *q,
                        sako_personal_scratch *s, double lift_k, size_t *n_sources)
{
    size_t sources = 0;
    const sako_personal *p = &e->personal;
    double scale = sako__demand_personal_scale(e);
    for (size_t r = 0; r < h->n + q->n_recent; r++) {
        uint32_t i;
        if (r < h->n) {
            if (h->v[r].basket != h->n_baskets)
                continue;
            i = h->v[r].item;
        } else {
            i = sako__idmap_get(&e->item_index, q->recent[r - h->n]);
            if (i == SAKO_NONE)
                continue;
        }
        sources++;
        const sako_item_demand *d = &p->items[i];
        for (uint32_t j = 0; j < d->n_partners; j++) {
            double lift = sako__personal_lift(p, i, &d->partners[j], lift_k, scale);
            if (!(lift > 1.0))
                continue;
            candidate *c = cand_get(s, d->partners[j].item, FROM_PARTNER);
            if (!c)
                return SAKO_NOMEM;
            c->lift_sum += (float)(lift - 1.0);
        }
    }
    *n_sources = sources;
    return SAKO_OK;
}

/* Keep the SAKO_COPURCHASE_TOP partners that came from nothing else, by l * q (a
 * bounded heap: there can be thousands of them; ties go to the earlier candidate). */
static void trim_partners(const sako_engine *e, sako_personal_scratch *s, size_t n_sources)
{
    double v[SAKO_COPURCHASE_TOP];
    uint32_t id[SAKO_COPURCHASE_TOP];
    sako_topk top = { v, id, 0, SAKO_COPURCHASE_TOP };
    size_t n_only = 0;
    for (size_t j = 0; j < s->n_cand; j++)
        n_only += s->cand[j].from == FROM_PARTNER;
    if (n_only <= SAKO_COPURCHASE_TOP)
        return;
    for (size_t j = 0; j < s->n_cand; j++)
        if (s->cand[j].from == FROM_PARTNER) {
            double ell = 1.0 + s->cand[j].lift_sum / (double)n_sources;
            sako__topk_push(&top, ell * sako__demand_rate(e, s->cand[j].item), (uint32_t)j);
            s->cand[j].from = 0; /* dropped, unless kept below */
        }
    for (size_t j = 0; j < top.n; j++)
        s->cand[id[j]].from = FROM_PARTNER;
}

static int excluded(const uint32_t *ex, size_t n, uint32_t item)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ex[mid] < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ex[lo] == item;
}

int sako__personal_rank(const sako_engine *e, const sako_personal_query *pq,
                        sako_personal_scratch **ps, sako_rng *rng, sako_rec *out, size_t *n_out)
{
    const sako_query *q = pq->q;
    const sako_model_params *mp = &e->params;
    const sako_history *h = &e->personal.users[pq->user];
    const sako_demand *dem = e->demand;
    int rc = scratch_fit(ps, e->n_items, e->n_categories);
    if (rc)
        return sako__error(rc, "out of memory for a personal recommendation");
    sako_personal_scratch *s = *ps;
    int64_t now = pq->now;
    double hl = mp->half_life_days, a0 = mp->personal_strength;
    double W = h->weight * sako__personal_decay(now - h->basket_at, hl);
    double total = user_categories(e, h, now, hl, s);
    size_t n_sources = 0;

    /* Candidates. Partners first: their lift accumulates per candidate. */
    if (q->mode != SAKO_MODE_REPEAT && (rc = add_partners(e, h, q, s, mp->lift_strength, &n_sources)))
        goto nomem;
    trim_partners(e, s, n_sources);
    for (uint32_t j = 0; j < h->n; j++) {
        candidate *c = cand_get(s, h->v[j].item, FROM_OWN);
        if (!c)
            goto nomem;
        c->own = &h->v[j];
    }
    if (q->mode != SAKO_MODE_REPEAT) {
        for (size_t j = 0; j < pq->n_population; j++)
            if (!cand_get(s, pq->population[j], FROM_LIST))
                goto nomem;
        if (dem) {
            for (size_t j = 0; j < dem->n_top; j++)
                if (!cand_get(s, dem->top[j], FROM_LIST))
                    goto nomem;
            /* The user's heaviest categories (not departments: those are too broad). */
            size_t n_cats = 0;
            for (size_t j = 0; j < s->n_touched; j++) {
                uint32_t c = s->cat_touched[j];
                if (c < dem->listed_categories &&
                    (e->categories[c].parent != SAKO_NONE || dem->cat_top_n[c] > 0))
                    s->cat_touched[n_cats++] = c;
            }
            if (n_cats > 1) /* (a NULL list when nothing was touched: qsort wants none) */
                qsort_r(s->cat_touched, n_cats, sizeof *s->cat_touched, by_weight_desc, s->cat_weight);
            for (size_t j = 0; j < n_cats && j < SAKO_TOP_CATEGORIES; j++) {
                uint32_t c = s->cat_touched[j];
                if (c >= dem->listed_categories)
                    continue;
                for (uint32_t m = 0; m < dem->cat_top_n[c]; m++)
                    if (!cand_get(s, dem->cat_top[c * SAKO_CATEGORY_TOP + m], FROM_LIST))
                        goto nomem;
            }
        }
    }

    /* The factors: more candidates, and a score for each. */
    int use_mf = 0;
    double mf_mean = 0.0, mf_w = mp->mf_weight;
    if (mf_served(e, e->factors, pq->user)) {
        rc = mf_candidates(e, e->factors, pq, s, &mf_mean, &use_mf);
        if (rc == SAKO_NOMEM)
            goto nomem;
        if (rc)
            goto done;
    }

    /* One draw per eligible candidate; the top k by a heap. */
    sako_topk top = { s->heap_v, s->heap_i, 0, (size_t)q->k };
    double temp = mp->personal_temperature, kappa = mp->due_exponent;
    double scale = sako__demand_personal_scale(e);
    for (size_t j = 0; j < s->n_cand; j++) {
        candidate *c = &s->cand[j];
        uint32_t i = c->item;
        /* Candidates are scattered over the catalog: ask for a later one's lines now. */
        if (j + 8 < s->n_cand) {
            uint32_t ahead = s->cand[j + 8].item;
            __builtin_prefetch(&e->posterior[ahead]);
            __builtin_prefetch(&e->item_class[ahead]);
            __builtin_prefetch(&e->personal.item_baskets[ahead]);
        }
        if (!c->from || !e->item_class[i].active || (q->mode == SAKO_MODE_DISCOVER && c->own) ||
            (q->mode == SAKO_MODE_REPEAT && !c->own) || !in_subtree(e, i, pq->category) ||
            excluded(pq->excluded, pq->n_excluded, i))
            continue;
        double qj, prior;
        sako__demand_rate_prior(e, i, &qj, &prior);
        const sako_beta *post = &e->posterior[i];
        double r = post->a / (post->a + post->b) / prior;
        r = r < 0.1 ? 0.1 : r > 10.0 ? 10.0 : r;
        uint32_t ci = e->item_class[i].category;
        double aff = 1.0;
        if (ci != SAKO_NONE && ci < s->cap_categories) {
            if (s->cat_mark[ci] != s->gen) {
                s->cat_affinity[ci] = affinity(e, s, ci, total, mp->affinity_strength);
                s->cat_mark[ci] = s->gen;
            }
            aff = s->cat_affinity[ci];
        }
        double ell = n_sources ? 1.0 + c->lift_sum / (double)n_sources : 1.0;
        double mf = 1.0;
        if (use_mf && !c->own && c->mf >= 0.0f && mf_w > 0.0) {
            mf = (SAKO_MF_EPS + c->mf) / (SAKO_MF_EPS + mf_mean);
            if (mf_w != 1.0) /* (pow(x, 1) is x: the default weight skips the call) */
                mf = pow(mf, mf_w);
            mf = mf < 0.1 ? 0.1 : mf > 10.0 ? 10.0 : mf;
        }
        double pi = qj * r * aff * ell * mf;
        pi = pi < 1e-9 ? 1e-9 : pi > 0.9 ? 0.9 : pi;
        double n_uj = 0.0, due = 1.0;
        if (c->own) {
            int64_t last = SAKO_ENTRY_LAST(c->own);
            n_uj = c->own->weight * sako__personal_decay(now - last, hl);
            if (kappa > 0.0) {
                double interval = ((double)c->own->gap_days + sako__personal_interval(&e->personal, i, scale)) /
                                  (double)SAKO_ENTRY_BUYS(c->own);
                double since = (double)(now - last) / SAKO_DAY_MS;
                double x = interval > 0.0 ? since / interval : 1.0;
                due = x >= 1.0 ? 1.0 : x <= 0.0 ? 0.0 : pow(x, kappa);
            }
        }
        double mu = (a0 * pi + n_uj) / (a0 + W) * due;
        mu = mu < 1e-9 ? 1e-9 : mu > 0.99 ? 0.99 : mu;
        double v = mu;
        if (temp > 0.0) {
            double strength = (a0 + W) / temp;
            sako_beta b;
            sako__beta_set(&b, strength * mu, strength * (1.0 - mu));
            v = sako__beta_sample(&b, rng);
        }
        if (!sako__topk_push(&top, v, (uint32_t)j))
            continue;
        if (c->own && n_uj >= a0 * pi)
            c->src = SAKO_SOURCE_REPEAT;
        else if (mf > 1.0 && mf >= ell && mf >= aff)
            c->src = SAKO_SOURCE_MF;
        else if (ell > 1.0 && ell >= aff)
            c->src = SAKO_SOURCE_COPURCHASE;
        else if (aff > 1.0)
            c->src = SAKO_SOURCE_AFFINITY;
        else
            c->src = c->own ? SAKO_SOURCE_REPEAT : SAKO_SOURCE_DEMAND;
    }
    for (size_t j = 0; j < top.n; j++) {
        const candidate *c = &s->cand[top.id[j]];
        out[j].item_id = e->items[c->item].id;
        out[j].score = top.v[j];
        out[j].source = c->src;
    }
    *n_out = top.n;
    rc = SAKO_OK;
    goto done;
nomem:
    rc = sako__error(SAKO_NOMEM, "out of memory for a personal recommendation");
done:
    /* cat_touched was compacted: clear every category the history touches. */
    for (uint32_t j = 0; j < h->n; j++) {
        uint32_t c = e->item_class[h->v[j].item].category;
        if (c != SAKO_NONE && c < s->cap_categories) {
            s->cat_weight[c] = 0.0;
            s->cat_weight[department_cached(e, s, c)] = 0.0;
        }
    }
    return rc;
}
