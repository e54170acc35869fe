/* Product demand (demand.c): per-basket purchase rates shrunk inside the category
 * tree, their calibration to recommendation outcomes, and the candidate lists of the
 * personal engine. Rebuilt at each prior epoch, swapped in atomically. */
#ifndef SAKO_DEMAND_INTERNAL_H
#define SAKO_DEMAND_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "decay_internal.h"
#include "sako.h"
#include "store_internal.h"

/* Candidate lists: the catalog's best-selling products, and each category's. */
#define SAKO_DEMAND_TOP 100
#define SAKO_CATEGORY_TOP 20
/* Pseudo-products pulling a category's mean rate to its parent's. */
#define SAKO_DEMAND_NODE_PSEUDO 5.0
/* Pseudo expected successes of the calibration factor (which starts at 1). */
#define SAKO_CALIBRATION_PSEUDO 10.0

typedef struct sako_demand {
    int active;              /* demand priors replace category priors */
    double calibration;      /* lambda: recommendation successes per unit of demand */
    double baskets;          /* B at this epoch (at least 1) */
    double root_mean, root_strength;   /* per-product rates of the catalog root */
    double *cat_mean;        /* per category: mean per-basket rate of a product... */
    double *cat_strength;    /* ...and the Beta strength its products shrink with */
    double *cat_share;       /* share of all purchases in its subtree */
    size_t n_categories;
    double *item_prior;      /* per product: its population prior mean this epoch */
    size_t n_items;
    uint32_t *top;           /* active products by demand, best first */
    size_t n_top;
    uint32_t *cat_top;       /* per category, SAKO_CATEGORY_TOP slots... */
    uint8_t *cat_top_n;      /* ...of which this many are used */
    size_t listed_items, listed_categories; /* the catalog when the lists were built */
    sako_decay_ref ref;      /* the epoch's time: demand sums are decayed to it */
} sako_demand;

/* The demand of a new epoch from `counts` (NULL: the items' own) in the decay frame
 * `frame`, and the engine's personal state, decayed to the epoch's time `ref`;
 * `cat_prior_means` are the category priors of the same epoch. */
int sako__demand_build(const sako_engine *e, const sako_counts *counts, const sako_decay *frame,
                       sako_decay_ref ref, double root_prior, const double *cat_prior_means,
                       sako_demand **out);
void sako__demand_free(sako_demand *d);
/* Rebuild the candidate lists when the catalog has grown by a tenth since they were
 * built (caller holds the writer mutex; swapped in under the write lock). */
int sako__demand_relist(sako_engine *e);
/* The constants of a stored epoch (store rows), with lists rebuilt from the current state. */
int sako__demand_restore(const sako_engine *e, const sako_store_demand *stored, sako_demand **out);
/* The constants of a model version (per category of `e`, in its order), decayed to
 * `ref`; with `lists`, the candidate lists rebuilt from the current state as
 * sako__demand_restore() does (without: for scoring only). */
int sako__demand_from_fit(const sako_engine *e, const sako_store_demand *stored,
                          const double *cat_mean, const double *cat_strength,
                          const double *cat_share, sako_decay_ref ref, int lists,
                          sako_demand **out);
/* Write an epoch's constants (inside the caller's transaction). */
int sako__demand_write(const sako_engine *e, const sako_demand *d);
/* q_j now: the product's per-basket purchase rate, shrunk to its category's. */
double sako__demand_rate(const sako_engine *e, uint32_t item);
/* Both of the above at once (the personal draw's hot path). */
void sako__demand_rate_prior(const sako_engine *e, uint32_t item, double *rate, double *prior);
/* The factor turning the personal state's product-level sums into their value at the
 * current prior epoch's time (1 without decay). */
double sako__demand_personal_scale(const sako_engine *e);
/* The population prior mean of an item (demand priors when active, else its category's). */
double sako__demand_prior(const sako_engine *e, uint32_t item);
/* The same under epoch `d`, given the item's category prior of that epoch. */
double sako__demand_prior_with(const sako_engine *e, const sako_demand *d, uint32_t item,
                               double category_prior);

#endif
