/* The Beta-Bernoulli model (model.c): options, priors, posteriors. */
#ifndef SAKO_MODEL_INTERNAL_H
#define SAKO_MODEL_INTERNAL_H

#include <stdint.h>

#include "decay_internal.h"
#include "sako.h"
#include "sampler_internal.h"
#include "store_internal.h"

void sako__model_params_from_options(sako_model_params *p, const sako_options *o);
void sako__model_options_from_params(sako_options *o, const sako_model_params *p);
/* A version-1 options struct read as version 2 (new fields at their defaults). */
void sako__model_options_upgrade(sako_options *dst, const sako_options *src);
int sako__model_validate_options(const sako_options *o);
/* The root and every category mean computed from `counts` (one per item; NULL for
 * the items' own) in decay frame `frame`, decayed to `ref`: the priors of a new epoch. */
int sako__model_refresh_priors(const sako_engine *e, const sako_counts *counts,
                               const sako_decay *frame, sako_decay_ref ref,
                               double *root_out, double *cat_means_out);
double sako__model_prior_mean(const sako_engine *e, uint32_t category);
/* Whether the events since the last refresh call for a new prior epoch. */
int sako__model_refresh_due(const sako_engine *e);
void sako__model_update_posterior(sako_engine *e, uint32_t item);
/* The whole posterior array into `dst` (n_items entries), from the current state
 * or, when `counts` and `cat_means` are given, from those instead. */
void sako__model_fill_posteriors(const sako_engine *e, sako_beta *dst);
void sako__model_fill_posteriors_with(const sako_engine *e, const sako_counts *counts,
                                      const sako_decay *frame, sako_decay_ref ref,
                                      double root, const double *cat_means,
                                      const struct sako_demand *demand, sako_beta *dst);
/* Item i's posterior alone, as sako__model_fill_posteriors_with() computes it. */
void sako__model_posterior_with(const sako_engine *e, const sako_counts *counts,
                                 const sako_decay *frame, sako_decay_ref ref, double root,
                                 const double *cat_means, const struct sako_demand *demand,
                                 uint32_t i, sako_beta *dst);
/* An item's counts (in decay frame `frame`) as recommendation outcomes decayed to
 * `ref`: without organic clicks, carts and purchases when organic_demand is on. */
sako_counts sako__model_outcomes(const sako_engine *e, uint32_t item, const sako_counts *c,
                                 const sako_decay *frame, sako_decay_ref ref);
void sako__model_evidence(const sako_model_params *p, const sako_counts *c, double *a, double *b);
/* Category indices, parents before children; returns how many. */
size_t sako__model_order_by_depth(const sako_engine *e, uint32_t *order);
/* Add one event to its item's counts and posterior (users: sako__users_apply). */
void sako__model_apply_event(sako_engine *e, const sako_event *ev, uint32_t item);

/* Model versions: an epoch's fitted population model as a stored fit (rows sorted
 * by category id); whether every number in one is finite and in range (else `why`
 * says which); and a fit on the catalog of `e`: each category's prior mean into
 * `means` (a category the fit does not know takes its parent's, or the catalog's)
 * and its demand at the fit's time (with `lists`, the candidate lists too). */
int sako__model_fit_capture(const sako_engine *e, double root, const double *means,
                            const struct sako_demand *demand, int64_t epoch_at,
                            sako_store_fit *out);
int sako__model_fit_finite(const sako_store_fit *fit, char *why, size_t n);
int sako__model_fit_restore(const sako_engine *e, const sako_store_fit *fit, int lists,
                            double *means, struct sako_demand **demand_out);

#endif
