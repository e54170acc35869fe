/* The gate's score (gate.c): NDCG@20 of a population model on held-out baskets. */
#ifndef SAKO_GATE_INTERNAL_H
#define SAKO_GATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "decay_internal.h"
#include "sako.h"
#include "store_internal.h"

/* Rank cut of the score, as the evaluation harness's NDCG@20. */
#define SAKO_GATE_K 20
/* Most models scored on one replay (the gate scores two: challenger, champion). */
#define SAKO_GATE_MODELS 4

struct sako_demand;

/* A fitted population model: what versions differ in. */
typedef struct sako_gate_model {
    double root;
    const double *means;             /* per category of the engine scored on */
    const struct sako_demand *demand;
    sako_decay_ref ref;
} sako_gate_model;

typedef struct sako_gate sako_gate;

/* Score `n_models` models on the same replay. `e` is the catalog (a retrain's
 * snapshot) whose personal state is the replay's; `counts` (in `frame`) its item
 * counts at the holdout's start. Items from `n_items` on are not ranked. The replay
 * touches at most `max_touched` items (its event count will do). */
int sako__gate_begin(const struct sako_engine *e, size_t n_items, const sako_counts *counts,
                     const sako_decay *frame, const sako_gate_model *models, size_t n_models,
                     size_t max_touched, sako_gate **out);
/* One batch, before it is applied: each basket (a user's purchases of one order, or
 * of the batch without order ids) is scored against each model's ranking by
 * posterior mean. `items` are the events' item indices (SAKO_NONE: not ranked). */
void sako__gate_score(sako_gate *g, const sako_event *ev, const int64_t *orders,
                      const uint32_t *items, size_t n);
/* The same batch, after it was applied to `counts` and the personal state of `e`:
 * the items it touched get their new posterior means. */
void sako__gate_changed(sako_gate *g, const struct sako_engine *e, const sako_counts *counts,
                        const sako_decay *frame, const uint32_t *items, size_t n);
/* Mean NDCG per model (0 with no basket), and the baskets scored. */
void sako__gate_result(const sako_gate *g, double *scores, uint64_t *baskets_out);
void sako__gate_free(sako_gate *g);

#endif
