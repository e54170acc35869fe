/* The regularised incomplete beta function I_x(a, b) = P(X <= x), X ~ Beta(a, b).
 *
 * The continued fraction for I_x(a, b) converges quickly when x < (a+1)/(a+b+2),
 * roughly below the mean; above it the same fraction for I_{1-x}(b, a) does. Each
 * tail is computed from its own fraction on the side where it is the small one, so
 * a tail of 1e-12 keeps its relative accuracy instead of being lost in 1 - (1 - p).
 * lgamma_r is used rather than lgamma: it writes no global (signgam) and so is safe
 * on concurrent query threads. */
#include "truncbeta_internal.h"

#include <float.h>

#define LN_SQRT_2PI 0.91893853320467274178

/* lgamma(z) - Stirling's approximation, for z >= 10 (error below 1e-14). */
static double stirling_corr(double z)
{
    double r = 1.0 / z, r2 = r * r;
    return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 / 1188))));
}

static double lgam(double z)
{
    int sign;
    return lgamma_r(z, &sign);
}

double sako__ibeta_lbeta(double a, double b)
{
    double lo = a < b ? a : b, hi = a < b ? b : a;
    if (lo >= 10.0) {
        /* Stirling for all three terms: the large (z - 1/2) log z parts cancel in
         * closed form instead of in floating point. */
        return LN_SQRT_2PI - 0.5 * log(lo * hi / (lo + hi)) - lo * log1p(hi / lo) -
               hi * log1p(lo / hi) + stirling_corr(lo) + stirling_corr(hi) -
               stirling_corr(lo + hi);
    }
    if (hi >= 10.0) {
        /* lgamma(hi) - lgamma(hi + lo) by Stirling; lgamma(lo) as it is. */
        return lgam(lo) - (hi - 0.5) * log1p(lo / hi) - lo * log(hi + lo) + lo +
               stirling_corr(hi) - stirling_corr(hi + lo);
    }
    return lgam(a) + lgam(b) - lgam(a + b);
}

/* log(x^a y^b / B(a, b)) with y = 1 - x passed separately to keep its precision. */
static double log_kernel(double x, double y, double a, double b)
{
    if (a >= 10.0 && b >= 10.0) {
        /* a log(x/x0) + b log(y/y0) around the mean x0 = a/(a+b): both terms are
         * small near the mean, where the naive sum would cancel thousands. */
        double d = x * b - y * a;
        return a * log1p(d / a) + b * log1p(-d / b) + 0.5 * log(a * b / (a + b)) - LN_SQRT_2PI -
               stirling_corr(a) - stirling_corr(b) + stirling_corr(a + b);
    }
    return a * log(x) + b * log(y) - sako__ibeta_lbeta(a, b);
}

/* I_x(a, b) by its continued fraction (modified Lentz), for x < (a+1)/(a+b+2):
 * I_x = x^a y^b / (a B(a,b)) * 1/(1 + d1/(1 + d2/(1 + ...))) with
 * d(2m+1) = -(a+m)(a+b+m) x / ((a+2m)(a+2m+1)), d(2m) = m(b-m) x / ((a+2m-1)(a+2m)). */
static double ibeta_cf(double x, double y, double a, double b)
{
    const double tiny = 1e-300, eps = 4.0 * DBL_EPSILON;
    double lk = log_kernel(x, y, a, b) - log(a);
    if (lk < -750.0)
        return 0.0; /* below the smallest double whatever the fraction is (it is < 1/x) */
    /* State after the first level 1/(1 + ...): value 1, C infinite, D = 1. */
    double f = 1.0, C = 1.0 / tiny, D = 1.0;
    for (int m = 0; m < 100000; m++) {
        double num[2];
        num[0] = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)); /* d(2m+1) */
        num[1] = (m + 1) * (b - m - 1) * x / ((a + 2 * m + 1) * (a + 2 * m + 2)); /* d(2m+2) */
        double delta = 1.0;
        for (int h = 0; h < 2; h++) {
            D = 1.0 + num[h] * D;
            if (fabs(D) < tiny)
                D = tiny;
            C = 1.0 + num[h] / C;
            if (fabs(C) < tiny)
                C = tiny;
            D = 1.0 / D;
            delta = C * D;
            f *= delta;
        }
        if (fabs(delta - 1.0) < eps)
            break;
    }
    return exp(lk) * f;
}

double sako__ibeta_upper(double x, double a, double b)
{
    if (!(x > 0.0))
        return 1.0;
    if (!(x < 1.0))
        return 0.0;
    if (a == 1.0)
        return exp(b * log1p(-x)); /* (1-x)^b */
    if (b == 1.0)
        return -expm1(a * log(x)); /* 1 - x^a */
    double y = 1.0 - x;
    if (x * (a + b + 2.0) > a + 1.0)
        return ibeta_cf(y, x, b, a); /* the upper tail is small here: directly */
    return 1.0 - ibeta_cf(x, y, a, b);
}

double sako__ibeta_lower(double x, double a, double b)
{
    if (!(x > 0.0))
        return 0.0;
    if (!(x < 1.0))
        return 1.0;
    if (a == 1.0)
        return -expm1(b * log1p(-x));
    if (b == 1.0)
        return exp(a * log(x));
    double y = 1.0 - x;
    if (x * (a + b + 2.0) < a + 1.0)
        return ibeta_cf(x, y, a, b);
    return 1.0 - ibeta_cf(y, x, b, a);
}
