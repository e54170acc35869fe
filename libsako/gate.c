/* The gate's score: a model version's NDCG@20 on held-out recent baskets.
 *
 * Versions differ only in their population model (priors and demand constants);
 * the counts and histories are the log's. So the gate replays the holdout once and
 * scores every model on it with the same state, as the evaluation harness replays
 * baskets: before a batch is applied, each basket in it is scored against each
 * model's ranking, then the batch is applied. The ranking is deterministic, by
 * posterior mean (the Thompson draw's expectation), over the active items.
 *
 * Between two batches only the items a batch touched change their means (a
 * product's demand prior moves with its own purchases only; the epoch's constants
 * are fixed), so each model keeps its catalog's best k + (most touched) items
 * sorted once and a list of the items touched since: a ranking is the merge of the
 * first untouched entries and the touched items' current means, O(k + touched)
 * instead of O(catalog). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "gate_internal.h"
#include "model_internal.h"

typedef struct model_rank {
    sako_gate_model m;
    double *mean;       /* per item: its posterior mean now */
    uint32_t *order;    /* active items by mean at the start, best first */
    size_t n_order;
    double ndcg_sum;
} model_rank;

struct sako_gate {
    size_t n_items;
    uint8_t *touched;
    uint32_t *touched_list;
    size_t n_touched;
    const sako_engine *e;
    model_rank *models;
    size_t n_models;
    uint64_t baskets;
    uint32_t *basket_items;   /* scratch: one basket's items */
    size_t *buys;             /* scratch: a batch's purchases, by basket */
};

static double mean_of(const sako_engine *e, const sako_gate_model *m, const sako_counts *counts,
                      const sako_decay *frame, uint32_t i)
{
    sako_beta b;
    sako__model_posterior_with(e, counts, frame, m->ref, m->root, m->means, m->demand, i, &b);
    return b.a / (b.a + b.b);
}

/* Sorting by mean needs the means: a file-static pointer would not be thread-safe,
 * so the order is sorted as (mean, index) pairs. */
typedef struct ranked {
    double mean;
    uint32_t item;
} ranked;

static int by_mean_desc(const void *x, const void *y)
{
    const ranked *a = x, *b = y;
    if (a->mean != b->mean)
        return a->mean < b->mean ? 1 : -1;
    return (a->item > b->item) - (a->item < b->item);
}

static void swap_ranked(ranked *a, ranked *b)
{
    ranked t = *a;
    *a = *b;
    *b = t;
}

/* Puts the `m` best entries of r[0..n) first (in no order): quickselect, O(n) on
 * average, with the middle element as pivot. */
static void select_best(ranked *r, size_t n, size_t m)
{
    size_t lo = 0, hi = n;
    while (hi - lo > 1 && m > lo && m < hi) {
        swap_ranked(&r[lo + (hi - lo) / 2], &r[hi - 1]);
        ranked pivot = r[hi - 1];
        size_t store = lo;
        for (size_t i = lo; i + 1 < hi; i++)
            if (by_mean_desc(&r[i], &pivot) < 0)
                swap_ranked(&r[i], &r[store++]);
        swap_ranked(&r[store], &r[hi - 1]);
        if (store == m || store + 1 == m)
            return;
        if (store > m)
            hi = store;
        else
            lo = store + 1;
    }
}

int sako__gate_begin(const sako_engine *e, size_t n_items, const sako_counts *counts,
                     const sako_decay *frame, const sako_gate_model *models, size_t n_models,
                     size_t max_touched, sako_gate **out)
{
    *out = NULL;
    sako_gate *g = calloc(1, sizeof *g);
    ranked *tmp = malloc((n_items ? n_items : 1) * sizeof *tmp);
    if (!g || !tmp || !(g->touched = calloc(n_items ? n_items : 1, 1)) ||
        !(g->touched_list = malloc((n_items ? n_items : 1) * sizeof *g->touched_list)) ||
        !(g->basket_items = malloc(SAKO_MAX_BATCH * sizeof *g->basket_items)) ||
        !(g->buys = malloc(SAKO_MAX_BATCH * sizeof *g->buys)) || n_models > SAKO_GATE_MODELS ||
        !(g->models = calloc(n_models, sizeof *g->models))) {
        free(tmp);
        sako__gate_free(g);
        return sako__error(SAKO_NOMEM, "out of memory starting the gate");
    }
    g->n_items = n_items;
    g->e = e;
    g->n_models = n_models;
    for (size_t k = 0; k < n_models; k++) {
        model_rank *mr = &g->models[k];
        mr->m = models[k];
        mr->mean = malloc((n_items ? n_items : 1) * sizeof *mr->mean);
        mr->order = malloc((n_items ? n_items : 1) * sizeof *mr->order);
        if (!mr->mean || !mr->order) {
            free(tmp);
            sako__gate_free(g);
            return sako__error(SAKO_NOMEM, "out of memory starting the gate");
        }
        size_t n = 0;
        for (size_t i = 0; i < n_items; i++) {
            mr->mean[i] = mean_of(e, &mr->m, counts, frame, (uint32_t)i);
            if (e->items[i].active) {
                tmp[n].mean = mr->mean[i];
                tmp[n++].item = (uint32_t)i;
            }
        }
        /* A ranking walks the order skipping touched items: with at most max_touched
         * of them, its k untouched entries are among the first k + max_touched. */
        size_t keep = max_touched < n - (n < SAKO_GATE_K ? n : SAKO_GATE_K)
                          ? SAKO_GATE_K + max_touched : n;
        if (keep < n)
            select_best(tmp, n, keep);
        qsort(tmp, keep, sizeof *tmp, by_mean_desc);
        for (size_t j = 0; j < keep; j++)
            mr->order[j] = tmp[j].item;
        mr->n_order = keep;
    }
    free(tmp);
    *out = g;
    return SAKO_OK;
}

/* Insert (mean, item) into the top list of size *n <= k, best first, ties by index. */
static void top_offer(ranked *top, size_t *n, size_t k, double mean, uint32_t item)
{
    size_t at = *n;
    while (at > 0 && (top[at - 1].mean < mean ||
                      (top[at - 1].mean == mean && top[at - 1].item > item)))
        at--;
    if (at >= k)
        return;
    size_t end = *n < k ? *n : k - 1;
    memmove(top + at + 1, top + at, (end - at) * sizeof *top);
    top[at].mean = mean;
    top[at].item = item;
    if (*n < k)
        (*n)++;
}

static size_t ranking(const sako_gate *g, const model_rank *mr, uint32_t *out)
{
    ranked top[SAKO_GATE_K];
    size_t n = 0;
    for (size_t j = 0, taken = 0; j < mr->n_order && taken < SAKO_GATE_K; j++) {
        uint32_t i = mr->order[j];
        if (g->touched[i])
            continue;
        top_offer(top, &n, SAKO_GATE_K, mr->mean[i], i);
        taken++;
    }
    for (size_t t = 0; t < g->n_touched; t++) {
        uint32_t i = g->touched_list[t];
        if (g->e->items[i].active)
            top_offer(top, &n, SAKO_GATE_K, mr->mean[i], i);
    }
    for (size_t r = 0; r < n; r++)
        out[r] = top[r].item;
    return n;
}

static int holds(const uint32_t *set, size_t n, uint32_t item)
{
    for (size_t j = 0; j < n; j++)
        if (set[j] == item)
            return 1;
    return 0;
}

static double ndcg(const uint32_t *ranked_items, size_t n_ranked, const uint32_t *bought,
                   size_t n_bought)
{
    double dcg = 0.0, idcg = 0.0;
    for (size_t r = 0; r < n_ranked; r++)
        if (holds(bought, n_bought, ranked_items[r]))
            dcg += 1.0 / log2((double)r + 2.0);
    for (size_t r = 0; r < n_bought && r < SAKO_GATE_K; r++)
        idcg += 1.0 / log2((double)r + 2.0);
    return idcg > 0.0 ? dcg / idcg : 0.0;
}

/* Purchases of a batch ordered by basket (user, order id), then item, then position,
 * so that each basket is a run and its repeated items are adjacent. */
typedef struct basket_key {
    const sako_event *ev;
    const int64_t *orders;
    const uint32_t *items;
} basket_key;

static int by_basket(const void *x, const void *y, void *arg)
{
    const basket_key *k = arg;
    size_t i = *(const size_t *)x, j = *(const size_t *)y;
    int64_t ui = k->ev[i].user_id, uj = k->ev[j].user_id;
    int64_t oi = k->orders ? k->orders[i] : 0, oj = k->orders ? k->orders[j] : 0;
    if (ui != uj)
        return ui < uj ? -1 : 1;
    if (oi != oj)
        return oi < oj ? -1 : 1;
    if (k->items[i] != k->items[j])
        return k->items[i] < k->items[j] ? -1 : 1;
    return (i > j) - (i < j);
}

void sako__gate_score(sako_gate *g, const sako_event *ev, const int64_t *orders,
                      const uint32_t *items, size_t n)
{
    size_t n_buys = 0;
    for (size_t j = 0; j < n; j++)
        if (ev[j].type == SAKO_EVENT_PURCHASE)
            g->buys[n_buys++] = j;
    if (n_buys == 0)
        return;
    uint32_t lists[SAKO_GATE_MODELS][SAKO_GATE_K];
    size_t sizes[SAKO_GATE_MODELS];
    for (size_t k = 0; k < g->n_models; k++)
        sizes[k] = ranking(g, &g->models[k], lists[k]);
    /* A basket: the purchases of one (user, order); without an order id, a user's
     * purchases in this batch. */
    basket_key key = { ev, orders, items };
    if (n_buys > 1) /* no purchases: maybe no array, and qsort wants one */
        qsort_r(g->buys, n_buys, sizeof *g->buys, by_basket, &key);
    for (size_t at = 0; at < n_buys;) {
        size_t first = g->buys[at];
        int64_t user = ev[first].user_id, order = orders ? orders[first] : 0;
        size_t nb = 0;
        uint32_t last = SAKO_NONE;
        int any = 0;
        for (; at < n_buys; at++) {
            size_t j = g->buys[at];
            if (ev[j].user_id != user || (orders ? orders[j] : 0) != order)
                break;
            if (any && items[j] == last)
                continue;
            any = 1;
            last = items[j];
            /* a product the ranking cannot hold (created after the snapshot) still
             * counts as bought: a placeholder no ranking contains */
            g->basket_items[nb++] = items[j] < g->n_items ? items[j] : SAKO_NONE;
        }
        for (size_t k = 0; k < g->n_models; k++)
            g->models[k].ndcg_sum += ndcg(lists[k], sizes[k], g->basket_items, nb);
        g->baskets++;
    }
}

void sako__gate_changed(sako_gate *g, const sako_engine *e, const sako_counts *counts,
                        const sako_decay *frame, const uint32_t *items, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        uint32_t i = items[j];
        if (i >= g->n_items)
            continue;
        if (!g->touched[i]) {
            g->touched[i] = 1;
            g->touched_list[g->n_touched++] = i;
        }
        for (size_t k = 0; k < g->n_models; k++)
            g->models[k].mean[i] = mean_of(e, &g->models[k].m, counts, frame, i);
    }
}

void sako__gate_result(const sako_gate *g, double *scores, uint64_t *baskets_out)
{
    for (size_t k = 0; k < g->n_models; k++)
        scores[k] = g->baskets ? g->models[k].ndcg_sum / (double)g->baskets : 0.0;
    *baskets_out = g->baskets;
}

void sako__gate_free(sako_gate *g)
{
    if (!g)
        return;
    for (size_t k = 0; g->models && k < g->n_models; k++) {
        free(g->models[k].mean);
        free(g->models[k].order);
    }
    free(g->models);
    free(g->touched);
    free(g->touched_list);
    free(g->basket_items);
    free(g->buys);
    free(g);
}
