/* Exact Beta sampling through two Gamma variates (Marsaglia & Tsang 2000). */
#include "sampler_internal.h"

void sako__beta_set(sako_beta *beta, double a, double b)
{
    double sa = a < 1.0 ? a + 1.0 : a;
    double sb = b < 1.0 ? b + 1.0 : b;
    beta->a = a;
    beta->b = b;
    beta->ca = 1.0 / sqrt(9.0 * (sa - 1.0 / 3.0));
    beta->cb = 1.0 / sqrt(9.0 * (sb - 1.0 / 3.0));
}

double sako__gamma_ge1(double shape, double c, sako_rng *rng)
{
    double d = shape - 1.0 / 3.0;
    for (;;) {
        double x, v;
        do {
            x = sako__rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = sako__rng_uniform(rng);
        double x2 = x * x;
        /* Quick squeeze first; the log test decides the same trial otherwise. */
        if (u < 1.0 - 0.0331 * x2 * x2)
            return d * v;
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v)))
            return d * v;
    }
}

/* log Gamma(shape) variate; for shape < 1 uses Gamma(shape) = Gamma(shape+1) U^(1/shape)
 * in log space so that tiny shapes cannot underflow to 0/0. */
static double log_gamma_variate(double shape, double c, sako_rng *rng)
{
    if (shape >= 1.0)
        return log(sako__gamma_ge1(shape, c, rng));
    double g = sako__gamma_ge1(shape + 1.0, c, rng);
    return log(g) + log(sako__rng_uniform(rng)) / shape;
}

double sako__beta_sample(const sako_beta *beta, sako_rng *rng)
{
    double a = beta->a, b = beta->b;
    if (a >= 1.0 && b >= 1.0) {
        if (a == 1.0 && b == 1.0)
            return sako__rng_uniform(rng); /* Beta(1, 1) is uniform */
        double x = sako__gamma_ge1(a, beta->ca, rng);
        double y = sako__gamma_ge1(b, beta->cb, rng);
        return x / (x + y);
    }
    /* One shape below 1 but not tiny: Gamma(a) = Gamma(a+1) U^(1/a) cannot underflow,
     * since U >= 2^-53 and exp(-36.8/0.06) is still a normal double. */
    if (a >= 0.06 && b >= 0.06) {
        double x = a >= 1.0 ? sako__gamma_ge1(a, beta->ca, rng)
                            : sako__gamma_ge1(a + 1.0, beta->ca, rng) *
                                  exp(log(sako__rng_uniform(rng)) / a);
        double y = b >= 1.0 ? sako__gamma_ge1(b, beta->cb, rng)
                            : sako__gamma_ge1(b + 1.0, beta->cb, rng) *
                                  exp(log(sako__rng_uniform(rng)) / b);
        return x / (x + y);
    }
    /* A tiny shape: ratio in log space, 1 / (1 + Y/X), so that 0/0 cannot happen. */
    double lx = log_gamma_variate(a, beta->ca, rng);
    double ly = log_gamma_variate(b, beta->cb, rng);
    return 1.0 / (1.0 + exp(ly - lx));
}
