/* Exact draws of X ~ Beta(a, b) conditioned on X > t (or X <= t).
 *
 * Every sampler here is exact: inverse CDFs in closed form (a == 1, b == 1),
 * rejection from the ordinary sampler, or rejection from an envelope that bounds
 * the density on (t, 1]. An envelope's acceptance rate is p B(a,b) / (its mass),
 * known in closed form, so the cheapest applicable method is picked once per
 * posterior change and a draw never wastes time on a poor envelope. Whatever has no
 * good envelope goes to a slow but exact bisection on the upper tail. */
#include "truncbeta_internal.h"

#include <stddef.h>

/* Below this acceptance rate an envelope is slower than the bisection. */
#define MIN_ACCEPT 0.02
/* A rejection try (one ordinary draw) costs about 2/3 of an envelope try. */
#define REJECT_ADVANTAGE 1.5
/* Below the threshold draws reject from the ordinary sampler while P(X <= t) is at
 * least this; less likely tails use the mirror image, Y = 1 - X above 1 - t. */
#define LOWER_REJECT_MIN 0.3

void sako__tbeta_dom_set(sako_tbeta_dom *dom, double t)
{
    if (!(t > 0.0))
        t = 0.0;
    if (t > 1.0)
        t = 1.0;
    dom->t = t;
    dom->s = 1.0 - t;
    dom->log_t = log(t);
    dom->log_s = log1p(-t);
}

/* log of the integral of exp(-lam y) over y in (0, s]. */
static double log_exp_mass(double lam, double s)
{
    double ls = lam * s;
    if (fabs(ls) < 1e-12)
        return log(s);
    if (lam > 0.0)
        return log(-expm1(-ls)) - log(lam);
    return -ls + log(-expm1(ls)) - log(-lam); /* (e^(mu s) - 1)/mu, mu = -lam */
}

double sako__tbeta_accept(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                          int method, double *c)
{
    double a = beta->a, b = beta->b, t = dom->t;
    *c = 0.0;
    if (!(p > 0.0))
        return method == SAKO_TB_NONE ? 1.0 : 0.0;
    if (method == SAKO_TB_ALL)
        return t <= 0.0 ? 1.0 : 0.0;
    if (method == SAKO_TB_REJECT)
        return p;
    if (method == SAKO_TB_SLOW)
        return MIN_ACCEPT; /* a nominal rate: used only when nothing beats it */
    if (!(t > 0.0 && dom->s > 0.0))
        return 0.0;
    if (method == SAKO_TB_A1)
        return a == 1.0 ? 1.0 : 0.0;
    if (method == SAKO_TB_B1) {
        if (b != 1.0)
            return 0.0;
        *c = -expm1(a * dom->log_t); /* 1 - t^a */
        return 1.0;
    }
    double log_pb = log(p) + sako__ibeta_lbeta(a, b); /* log of the mass of x^(a-1)(1-x)^(b-1) above t */
    switch (method) {
    case SAKO_TB_EXP: {
        if (!(b > 1.0))
            return 0.0; /* (b-1) log(1-x) must be concave */
        /* Tangent of the log-density at t; for a < 1 the x^(a-1) factor is bounded by
         * its value at t instead (slope 0). */
        double lam = (b - 1.0) / dom->s - (a >= 1.0 ? (a - 1.0) / t : 0.0);
        *c = lam;
        double log_ft = (a - 1.0) * dom->log_t + (b - 1.0) * dom->log_s;
        return exp(log_pb - log_ft - log_exp_mass(lam, dom->s));
    }
    case SAKO_TB_POW_A: {
        if (!(b > 1.0))
            return 0.0; /* (1-x)^(b-1) is bounded by its value at t only for b >= 1 */
        double one_m_ta = -expm1(a * dom->log_t);
        *c = one_m_ta;
        return exp(log_pb - (b - 1.0) * dom->log_s - (log(one_m_ta) - log(a)));
    }
    case SAKO_TB_POW_B: {
        /* x^(a-1) is at most 1 (a >= 1) or t^(a-1) (a < 1) on (t, 1]. */
        double log_m = a >= 1.0 ? 0.0 : (a - 1.0) * dom->log_t;
        return exp(log_pb - log_m - b * dom->log_s + log(b));
    }
    default:
        return 0.0;
    }
}

/* The cheapest exact method for a tail p > 0 above dom->t. need_z: the draw must
 * also give 1 - x to full precision, which ordinary draws do not. */
static void choose_method(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                          int need_z, int *method, double *c)
{
    static const int envelopes[] = {SAKO_TB_EXP, SAKO_TB_POW_A, SAKO_TB_POW_B};
    *c = 0.0;
    if (dom->t <= 0.0) {
        *method = SAKO_TB_ALL;
        return;
    }
    if (!(p > 0.0)) {
        *method = SAKO_TB_NONE;
        return;
    }
    if (beta->a == 1.0 || beta->b == 1.0) {
        *method = beta->a == 1.0 ? SAKO_TB_A1 : SAKO_TB_B1;
        sako__tbeta_accept(beta, dom, p, *method, c);
        return;
    }
    int best = need_z ? SAKO_TB_SLOW : SAKO_TB_REJECT;
    double best_score = need_z ? 0.0 : p * REJECT_ADVANTAGE;
    for (size_t i = 0; i < sizeof envelopes / sizeof envelopes[0]; i++) {
        double ci;
        double acc = sako__tbeta_accept(beta, dom, p, envelopes[i], &ci);
        if (acc > best_score) {
            best = envelopes[i];
            best_score = acc;
            *c = ci;
        }
    }
    if (best_score < MIN_ACCEPT) {
        best = SAKO_TB_SLOW;
        *c = 0.0;
    }
    *method = best;
}

void sako__tbeta_prepare(const sako_beta *beta, const sako_tbeta_dom *dom, double *p,
                         int *method, double *c)
{
    *p = dom->t <= 0.0 ? 1.0 : sako__ibeta_upper(dom->t, beta->a, beta->b);
    choose_method(beta, dom, *p, 0, method, c);
}

/* Every draw above t returns x and sets *z = 1 - x; z keeps full precision except
 * for ordinary draws (SAKO_TB_ALL, SAKO_TB_REJECT), so that the mirror image used
 * below t gives small values to full precision too. */

/* Envelope exp(-lam (x - t)) on (t, 1]. y = x - t and z = 1 - x are both kept so
 * that neither end loses precision. */
static double draw_exp(const sako_beta *beta, const sako_tbeta_dom *dom, double lam,
                       sako_rng *rng, double *z_out)
{
    double a = beta->a, b = beta->b, t = dom->t, s = dom->s, ls = lam * s;
    for (;;) {
        double u = sako__rng_uniform(rng), y, z, log_zs;
        if (fabs(ls) < 1e-12) { /* flat envelope */
            y = s * u;
            z = s - y;
            log_zs = log1p(-u);
        } else if (lam > 0.0) { /* decreasing: inverse CDF from t upwards */
            y = -log1p(u * expm1(-ls)) / lam;
            z = s - y;
            log_zs = log1p(-y / s);
        } else { /* increasing: inverse CDF from 1 downwards */
            z = log1p(u * expm1(ls)) / lam;
            y = s - z;
            log_zs = log(z / s);
        }
        double yt = y / t;
        double lim = (a >= 1.0 ? (a - 1.0) * (log1p(yt) - yt) : (a - 1.0) * log1p(yt)) +
                     (b - 1.0) * (log_zs + y / s);
        if (log(sako__rng_uniform(rng)) <= lim) {
            *z_out = z;
            return lam > 0.0 ? t + y : 1.0 - z;
        }
    }
}

/* z = 1 - x with P(1 - X < z) = P(X > x) = u p, by bisection on z in (0, 1 - t):
 * the lower tail of 1 - X ~ Beta(b, a) keeps small z exact. */
static double draw_slow(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                        sako_rng *rng, double *z_out)
{
    double target = sako__rng_uniform(rng) * p;
    double lo = 0.0, hi = dom->s;
    for (;;) {
        double mid = lo + 0.5 * (hi - lo);
        if (mid <= lo || mid >= hi)
            break;
        if (sako__ibeta_lower(mid, beta->b, beta->a) < target)
            lo = mid;
        else
            hi = mid;
    }
    *z_out = hi;
    return 1.0 - hi;
}

static double draw_above(const sako_beta *beta, const sako_tbeta_dom *dom, double p, int method,
                         double c, sako_rng *rng, double *z)
{
    double a = beta->a, b = beta->b, t = dom->t, s = dom->s, x;
    switch (method) {
    case SAKO_TB_ALL:
        x = sako__beta_sample(beta, rng);
        break;
    case SAKO_TB_A1: /* 1 - X = (1-t) U^(1/b) */
        *z = s * exp(log(sako__rng_uniform(rng)) / b);
        return 1.0 - *z;
    case SAKO_TB_B1: { /* X^a uniform on (t^a, 1] */
        double lx = log1p(-sako__rng_uniform(rng) * c) / a;
        *z = -expm1(lx);
        return exp(lx);
    }
    case SAKO_TB_REJECT:
        do
            x = sako__beta_sample(beta, rng);
        while (!(x > t));
        break;
    case SAKO_TB_EXP:
        return draw_exp(beta, dom, c, rng, z);
    case SAKO_TB_POW_A: /* proposal as B1; accept ((1-x)/(1-t))^(b-1) */
        for (;;) {
            double lx = log1p(-sako__rng_uniform(rng) * c) / a;
            x = exp(lx);
            if (log(sako__rng_uniform(rng)) <= (b - 1.0) * log1p(-(x - t) / s)) {
                *z = -expm1(lx);
                return x;
            }
        }
    case SAKO_TB_POW_B: /* proposal as A1; accept x^(a-1) over its bound */
        for (;;) {
            double w = log(sako__rng_uniform(rng)) / b;
            double zz = s * exp(w), y = -s * expm1(w);
            double lim = a >= 1.0 ? (a - 1.0) * log1p(-zz) : (a - 1.0) * log1p(y / t);
            if (log(sako__rng_uniform(rng)) <= lim) {
                *z = zz;
                return 1.0 - zz;
            }
        }
    case SAKO_TB_SLOW:
        return draw_slow(beta, dom, p, rng, z);
    default: /* SAKO_TB_NONE: never above t; the limit is the only sane answer */
        x = t;
        break;
    }
    *z = 1.0 - x;
    return x;
}

double sako__tbeta_upper(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                         int method, double c, sako_rng *rng)
{
    double z;
    return draw_above(beta, dom, p, method, c, rng, &z);
}

double sako__tbeta_lower(const sako_beta *beta, const sako_tbeta_dom *dom, double p,
                         sako_rng *rng)
{
    double t = dom->t, x;
    if (t <= 0.0)
        return 0.0;
    if (t >= 1.0)
        return sako__beta_sample(beta, rng);
    if (1.0 - p >= LOWER_REJECT_MIN) {
        do
            x = sako__beta_sample(beta, rng);
        while (!(x <= t));
        return x;
    }
    /* Mirror: 1 - X ~ Beta(b, a) above 1 - t, with the two ends of the domain swapped
     * exactly (no 1 - (1 - t) rounding); its tail, our lower tail, is computed
     * directly rather than as 1 - p, and X is the mirror draw's precise z. */
    double q = sako__ibeta_lower(t, beta->a, beta->b);
    if (!(q > 0.0))
        return t;
    sako_beta mb;
    sako__beta_set(&mb, beta->b, beta->a);
    sako_tbeta_dom md = {dom->s, dom->t, dom->log_s, dom->log_t};
    int method;
    double c;
    choose_method(&mb, &md, q, 1, &method, &c);
    draw_above(&mb, &md, q, method, c, rng, &x);
    return x > t ? t : x;
}
