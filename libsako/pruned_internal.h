/* Exact top-k of one joint Thompson draw without sampling every member.
 *
 * A domain (the catalog, or one category) keeps a threshold t and, per member,
 * p = P(X > t) for its posterior X ~ Beta(a, b). A query includes each member in
 * S = {X > t} independently with probability p (geometric skips through buckets of
 * similar p, so only ~|S| members are touched), draws X for S from Beta truncated
 * to (t, 1] and keeps the k largest. Everything outside S is <= t, so when
 * |S| >= k this is exactly the top k of a full draw; when |S| < k the rest are
 * drawn from the other members conditioned on X <= t (O(n), rare when t is tuned).
 * The threshold is chosen by sako__pruned_retune() from draws of its own, never
 * from a query's, so the result has exactly the brute-force distribution.
 *
 * Concurrency: sako__pruned_topk() only reads the domain (all its mutable state is
 * in the caller's scratch), so any number of threads may run it at once. Every
 * other call modifies the domain and must run alone (the engine's write lock). */
#ifndef SAKO_PRUNED_INTERNAL_H
#define SAKO_PRUNED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"
#include "sampler_internal.h"
#include "truncbeta_internal.h"

/* Domains smaller than this are brute-forced by sako__pruned_topk(). */
#define SAKO_PRUNED_SMALL 160
/* Retuning aims at E|S| = sum p = SAKO_PRUNED_TARGET * k ... */
#define SAKO_PRUNED_TARGET 3
/* ... and sako__pruned_needs_retune() asks for it outside [LOW * k, HIGH * k]. */
#define SAKO_PRUNED_LOW 2
#define SAKO_PRUNED_HIGH 6

typedef struct sako_pruned sako_pruned;                 /* one domain */
typedef struct sako_pruned_scratch sako_pruned_scratch; /* one query thread's buffers */

/* A new empty domain with threshold 0 (every member included: brute force until the
 * first retune). SAKO_OK or SAKO_NOMEM (*out = NULL). */
int sako__pruned_create(sako_pruned **out);
void sako__pruned_free(sako_pruned *p);

/* Insert or update a member (< UINT32_MAX) with a copy of its posterior; its tail
 * is recomputed at once (~0.1-1 us). SAKO_OK, SAKO_INVALID (bad member or shapes
 * not finite and > 0), SAKO_NOMEM (nothing changed). */
int sako__pruned_set(sako_pruned *p, uint32_t member, const sako_beta *beta);
/* Remove a member; a no-op if absent. */
void sako__pruned_remove(sako_pruned *p, uint32_t member);
size_t sako__pruned_size(const sako_pruned *p);

/* Choose t so that sum p ~ SAKO_PRUNED_TARGET * k_target (the median, over a few
 * brute-force draws with `rng`, of the (3k)-th largest value) and rebuild. O(n):
 * several full draws plus one tail per member. SAKO_OK, SAKO_INVALID (k_target < 1),
 * SAKO_NOMEM (the domain is unchanged). */
int sako__pruned_retune(sako_pruned *p, int k_target, sako_rng *rng);
/* The two halves of retune: choosing t only reads the domain (it may run beside
 * queries); rebuild recomputes every tail for a given t (t = 0: include all). */
int sako__pruned_choose_threshold(const sako_pruned *p, int k_target, sako_rng *rng,
                                  double *t_out);
int sako__pruned_rebuild(sako_pruned *p, double t);

/* 1 when queries for k would be slow: never tuned, or sum p outside
 * [min(LOW k, size), HIGH k]. Always 0 below SAKO_PRUNED_SMALL members. */
int sako__pruned_needs_retune(const sako_pruned *p, int k);
double sako__pruned_threshold(const sako_pruned *p);
double sako__pruned_sum_p(const sako_pruned *p); /* expected |S| of a query */

int sako__pruned_scratch_create(sako_pruned_scratch **out);
void sako__pruned_scratch_free(sako_pruned_scratch *s);
/* Queries of this scratch that needed the O(n) |S| < k completion (for tests). */
uint64_t sako__pruned_scratch_fallbacks(const sako_pruned_scratch *s);

/* The top k of one joint draw over all members: n_out = min(k, size) members and
 * their values, sorted by value descending. Allocates only to grow the scratch to
 * a larger k. SAKO_OK, SAKO_INVALID (k < 0), SAKO_NOMEM. */
int sako__pruned_topk(const sako_pruned *p, int k, sako_rng *rng, sako_pruned_scratch *s,
                      uint32_t *members_out, double *values_out, size_t *n_out);

/* Checks every invariant (buckets, positions, tails, sum p); 0 if all hold, else
 * a line number of the failed check (for tests). O(n), recomputes every tail. */
int sako__pruned_check(const sako_pruned *p);

#endif
