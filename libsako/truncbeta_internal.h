/* Beta tails and truncated Beta sampling, the two tools of the pruned top-k draw.
 *
 * ibeta.c:     the regularised incomplete beta, upper and lower tails each computed
 *              directly where it is the small one (never 1 - a tiny complement).
 * truncbeta.c: exact draws of X ~ Beta(a, b) conditioned on X > t or on X <= t. */
#ifndef SAKO_TRUNCBETA_INTERNAL_H
#define SAKO_TRUNCBETA_INTERNAL_H

#include "sampler_internal.h"

/* ------------------------------------------------------------------- ibeta.c */

/* log B(a, b), accurate for large shapes (Stirling with corrections). */
double sako__ibeta_lbeta(double a, double b);

/* P(X > x) and P(X <= x) for X ~ Beta(a, b), a, b > 0, relative accuracy ~1e-13. */
double sako__ibeta_upper(double x, double a, double b);
double sako__ibeta_lower(double x, double a, double b);

/* ---------------------------------------------------------------- truncbeta.c */

/* A threshold and the constants every draw above or below it needs. */
typedef struct sako_tbeta_dom {
    double t;      /* the threshold, in [0, 1] */
    double s;      /* 1 - t */
    double log_t;  /* log t (-inf when t == 0) */
    double log_s;  /* log(1 - t) */
} sako_tbeta_dom;

void sako__tbeta_dom_set(sako_tbeta_dom *dom, double t);

/* How a draw above t is made. Closed forms first; the envelopes are exact rejection
 * samplers whose acceptance rate is known in closed form, so the best one is chosen
 * once per posterior change. */
enum sako_tbeta_method {
    SAKO_TB_NONE = 0,  /* p == 0: the member is never above t */
    SAKO_TB_ALL,       /* t == 0: an ordinary draw */
    SAKO_TB_A1,        /* a == 1: inverse CDF */
    SAKO_TB_B1,        /* b == 1: inverse CDF */
    SAKO_TB_REJECT,    /* ordinary draws until one is above t (acceptance p) */
    SAKO_TB_EXP,       /* exponential envelope from the log-density tangent at t (b > 1) */
    SAKO_TB_POW_A,     /* envelope x^(a-1) on (t, 1] (b > 1) */
    SAKO_TB_POW_B,     /* envelope (1-x)^(b-1) on (t, 1] */
    SAKO_TB_SLOW,      /* inverse CDF by bisection on the upper tail: slow, always exact */
    SAKO_TB_METHODS
};

/* Acceptance rate of `method` for Beta above dom->t, whose upper tail is p > 0; sets
 * *c to the constant its draw needs. 0 when the method does not apply. */
double sako__tbeta_accept(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                          int method, double *c);

/* p = P(X > t) and the best method with its constant. */
void sako__tbeta_prepare(const sako_beta *beta, const sako_tbeta_dom *dom, double *p,
                         int *method, double *c);

/* One draw of X | X > t, with p, method and c from sako__tbeta_prepare(). */
double sako__tbeta_upper(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                         int method, double c, sako_rng *rng);

/* One draw of X | X <= t, given p = P(X > t) (used to choose the way; the lower
 * tail itself is recomputed directly when it is the small one). */
double sako__tbeta_lower(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                         sako_rng *rng);

#endif
