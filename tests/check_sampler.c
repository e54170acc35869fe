/* The random numbers of Thompson sampling: uniform, normal (Ziggurat), Gamma and Beta.
 *
 * Every test uses a fixed seed and a significance level of 0.001 per statistic; the
 * tolerances come from the sample size and the distribution (standard errors, the
 * asymptotic Kolmogorov distribution, chi-square quantiles), never from the data. */
#include "check_sako.h"
#include "sampler_internal.h"

#define ALPHA 0.001
/* Asymptotic Kolmogorov critical value for alpha = 0.001: sqrt(-ln(alpha/2)/2). */
#define KS_C 1.9494746840148158

/* ------------------------------------------------------------ reference CDFs */

/* Continued fraction of the incomplete beta (modified Lentz). */
static double betacf(double a, double b, double x)
{
    const double tiny = 1e-300, eps = 1e-15;
    double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0, d = 1.0 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1.0 / d;
    double h = d;
    for (int m = 1; m <= 100000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1.0 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < eps)
            return h;
    }
    ck_abort_msg("betacf(%g, %g, %g) did not converge", a, b, x);
    return h;
}

/* Regularised incomplete beta I_x(a, b), the Beta(a, b) CDF. */
static double beta_cdf(double a, double b, double x)
{
    if (x <= 0.0)
        return 0.0;
    if (x >= 1.0)
        return 1.0;
    double lfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1.0) / (a + b + 2.0))
        return exp(lfront) * betacf(a, b, x) / a;
    return 1.0 - exp(lfront) * betacf(b, a, 1.0 - x) / b;
}

/* Regularised lower incomplete gamma P(a, x), the Gamma(a, 1) CDF. */
static double gamma_cdf(double a, double x)
{
    if (x <= 0.0)
        return 0.0;
    double lfront = -x + a * log(x) - lgamma(a);
    if (x < a + 1.0) {
        double ap = a, sum = 1.0 / a, del = sum;
        for (int n = 0; n < 100000; n++) {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if (fabs(del) < fabs(sum) * 1e-16)
                return sum * exp(lfront);
        }
        ck_abort_msg("gamma series did not converge");
    }
    const double tiny = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (fabs(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1.0 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1.0) < 1e-16)
            return 1.0 - exp(lfront) * h;
    }
    ck_abort_msg("gamma continued fraction did not converge");
    return 0.0;
}

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* ------------------------------------------------------------ test statistics */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

typedef double (*cdf_fn)(const double *params, double x);

/* Kolmogorov-Smirnov distance between the sample (sorted in place) and a CDF. A
 * group of equal values (a draw rounded to the same double, e.g. 1.0 for a Beta with
 * b < 1) is compared on its left with the CDF just below the value. */
static double ks_distance(double *x, size_t n, cdf_fn cdf, const double *params)
{
    qsort(x, n, sizeof *x, cmp_double);
    double d = 0.0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && x[j] == x[i])
            j++;
        double f_at = cdf(params, x[i]);
        double f_below = cdf(params, nextafter(x[i], -INFINITY));
        double hi = fabs(f_at - (double)j / (double)n);
        double lo = fabs(f_below - (double)i / (double)n);
        if (hi > d)
            d = hi;
        if (lo > d)
            d = lo;
        i = j;
    }
    return d;
}

static double beta_cdf_p(const double *p, double x) { return beta_cdf(p[0], p[1], x); }
static double gamma_cdf_p(const double *p, double x) { return gamma_cdf(p[0], x); }
static double normal_cdf_p(const double *p, double x)
{
    (void)p;
    return normal_cdf(x);
}
static double uniform_cdf_p(const double *p, double x)
{
    (void)p;
    return x <= 0 ? 0 : x >= 1 ? 1 : x;
}

/* Checks the sample mean and variance against the exact ones, each within z
 * standard errors (the variance's standard error from the fourth central moment). */
static void check_moments(const char *what, const double *x, size_t n, double mean,
                          double var, double mu4)
{
    double z = sk_z(ALPHA);
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    double m = s / (double)n;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (x[i] - m) * (x[i] - m);
    double v = ss / (double)(n - 1);
    double se_mean = sqrt(var / (double)n);
    double se_var = sqrt((mu4 - var * var * ((double)n - 3.0) / ((double)n - 1.0)) / (double)n);
    ck_assert_msg(fabs(m - mean) <= z * se_mean, "%s: mean %.10g, expected %.10g +- %.3g", what,
                  m, mean, z * se_mean);
    ck_assert_msg(fabs(v - var) <= z * se_var, "%s: variance %.10g, expected %.10g +- %.3g",
                  what, v, var, z * se_var);
}

/* Chi-square of the probability integral transform F(x) on equiprobable bins. */
static void check_pit_chi2(const char *what, const double *x, size_t n, cdf_fn cdf,
                           const double *params, int bins)
{
    long *count = calloc((size_t)bins, sizeof *count);
    ck_assert_ptr_nonnull(count);
    for (size_t i = 0; i < n; i++) {
        double u = cdf(params, x[i]);
        int b = (int)(u * bins);
        if (b >= bins)
            b = bins - 1;
        if (b < 0)
            b = 0;
        count[b]++;
    }
    double expect = (double)n / bins, chi2 = 0.0;
    for (int b = 0; b < bins; b++)
        chi2 += (count[b] - expect) * (count[b] - expect) / expect;
    free(count);
    double crit = sk_chi2_crit(bins - 1, ALPHA);
    ck_assert_msg(chi2 <= crit, "%s: chi-square %.2f > %.2f (%d bins, n = %zu)", what, chi2, crit,
                  bins, n);
}

/* ------------------------------------------------------------------ uniform */

START_TEST(test_rng_deterministic)
{
    sako_rng a, b, c;
    sako__rng_seed(&a, 42);
    sako__rng_seed(&b, 42);
    sako__rng_seed(&c, 43);
    int differ = 0;
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sako__rng_next(&a), y = sako__rng_next(&b), z = sako__rng_next(&c);
        same += x == y;
        differ += x != z;
    }
    ck_assert_int_eq(same, 1000);
    ck_assert_int_gt(differ, 990);
    /* Seed 0 must not give the all-zero state (a fixed point of xoshiro). */
    sako_rng zero;
    sako__rng_seed(&zero, 0);
    ck_assert(zero.s[0] | zero.s[1] | zero.s[2] | zero.s[3]);
    int nonzero = 0;
    for (int i = 0; i < 100; i++)
        nonzero += sako__rng_next(&zero) != 0;
    ck_assert_int_ge(nonzero, 99);
}
END_TEST

START_TEST(test_rng_uniform_range_moments)
{
    const size_t n = 1000000;
    double *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    sako_rng r;
    sako__rng_seed(&r, 20261128);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = sako__rng_uniform(&r);
        bad += !(x[i] > 0.0 && x[i] <= 1.0);
    }
    ck_assert_msg(bad == 0, "%zu uniforms outside (0, 1]", bad);
    check_moments("uniform", x, n, 0.5, 1.0 / 12.0, 1.0 / 80.0);
    check_pit_chi2("uniform", x, n, uniform_cdf_p, NULL, 1000);
    double d = ks_distance(x, n, uniform_cdf_p, NULL);
    ck_assert_msg(d * sqrt((double)n) <= KS_C, "uniform KS D = %g", d);
    free(x);
}
END_TEST

/* Successive outputs are independent: chi-square on a 32 x 32 grid of pairs, and the
 * lag-1 correlation within z / sqrt(n) of 0. */
START_TEST(test_rng_uniform_pairs)
{
    enum { G = 32 };
    const long pairs = 500000;
    static long cell[G][G];
    memset(cell, 0, sizeof cell);
    sako_rng r;
    sako__rng_seed(&r, 7);
    double prev = sako__rng_uniform(&r), sxy = 0.0;
    for (long i = 0; i < pairs; i++) {
        double u = sako__rng_uniform(&r), v = sako__rng_uniform(&r);
        int a = (int)(u * G), b = (int)(v * G);
        cell[a >= G ? G - 1 : a][b >= G ? G - 1 : b]++;
        sxy += (prev - 0.5) * (u - 0.5) + (u - 0.5) * (v - 0.5);
        prev = v;
    }
    double expect = (double)pairs / (G * G), chi2 = 0.0;
    for (int a = 0; a < G; a++)
        for (int b = 0; b < G; b++)
            chi2 += (cell[a][b] - expect) * (cell[a][b] - expect) / expect;
    ck_assert_msg(chi2 <= sk_chi2_crit(G * G - 1, ALPHA), "pairs chi-square %.1f", chi2);
    double corr = sxy / (2.0 * pairs) * 12.0;
    ck_assert_msg(fabs(corr) <= sk_z(ALPHA) / sqrt(2.0 * pairs), "lag-1 correlation %g", corr);
}
END_TEST

/* ------------------------------------------------------------------- normal */

START_TEST(test_rng_normal)
{
    const size_t n = 1000000;
    double *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    sako_rng r;
    sako__rng_seed(&r, 12345);
    long tail = 0, far_tail = 0, positive = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = sako__rng_normal(&r);
        bad += !isfinite(x[i]);
        tail += fabs(x[i]) > 3.6541528853610088; /* beyond the Ziggurat base: the tail path */
        far_tail += fabs(x[i]) > 4.0;
        positive += x[i] > 0.0;
    }
    ck_assert_int_eq(bad, 0);
    check_moments("normal", x, n, 0.0, 1.0, 3.0);
    double z = sk_z(ALPHA);
    /* Both signs equally often. */
    ck_assert_msg(fabs(positive - 0.5 * n) <= z * sqrt(0.25 * n), "positive %ld of %zu",
                  positive, n);
    /* Tail frequencies are binomial around 2 (1 - Phi(t)). */
    double p_tail = erfc(3.6541528853610088 / sqrt(2.0));
    ck_assert_msg(fabs(tail - p_tail * n) <= z * sqrt(p_tail * (1 - p_tail) * n),
                  "beyond R: %ld, expected %.1f", tail, p_tail * n);
    double p_far = erfc(4.0 / sqrt(2.0));
    ck_assert_msg(fabs(far_tail - p_far * n) <= z * sqrt(p_far * (1 - p_far) * n),
                  "beyond 4: %ld, expected %.1f", far_tail, p_far * n);
    /* 400 equiprobable bins are fine enough to see a wrong Ziggurat layer. */
    check_pit_chi2("normal", x, n, normal_cdf_p, NULL, 400);
    double d = ks_distance(x, n, normal_cdf_p, NULL);
    ck_assert_msg(d * sqrt((double)n) <= KS_C, "normal KS D = %g (crit %g)", d,
                  KS_C / sqrt((double)n));
    free(x);
}
END_TEST

/* -------------------------------------------------------------------- gamma */

static const double gamma_shapes[] = {1.0, 1.5, 3.7, 1000.0};

START_TEST(test_gamma_ge1)
{
    double a = gamma_shapes[_i];
    const size_t n = 100000;
    double *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    sako_rng r;
    sako__rng_seed(&r, 1000 + (uint64_t)_i);
    double c = 1.0 / sqrt(9.0 * (a - 1.0 / 3.0));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = sako__gamma_ge1(a, c, &r);
        bad += !(x[i] > 0.0 && isfinite(x[i]));
    }
    ck_assert_uint_eq(bad, 0);
    char what[64];
    snprintf(what, sizeof what, "Gamma(%g)", a);
    /* Gamma(a, 1): mean a, variance a, fourth central moment 3a^2 + 6a. */
    check_moments(what, x, n, a, a, 3 * a * a + 6 * a);
    double d = ks_distance(x, n, gamma_cdf_p, &a);
    ck_assert_msg(d * sqrt((double)n) <= KS_C, "%s: KS D = %g", what, d);
    free(x);
}
END_TEST

/* --------------------------------------------------------------------- beta */

/* Shapes met in practice: a < 1 and b < 1 (thin item priors: s*m with s = 2), a = b =
 * 1 (flat), a = 1 or b = 1 (the closed-form edge of the Gamma sampler), moderate,
 * and very large (a mature item after tens of thousands of impressions). */
static const double beta_shapes[][2] = {
    {0.5, 0.5},   {0.2, 0.2},       {0.02, 1.98},   {3.0, 0.2}, {0.3, 7.0},
    {1.0, 1.0},   {1.0, 5.0},       {5.0, 1.0},     {1.0, 0.5}, {0.5, 1.0},
    {2.0, 3.0},   {0.7, 1.3},       {3000.0, 50000.0}, {50000.0, 50000.0},
    {7.4, 1.0e6},
};

START_TEST(test_beta_distribution)
{
    double a = beta_shapes[_i][0], b = beta_shapes[_i][1];
    const size_t n = 50000;
    double *x = malloc(n * sizeof *x);
    ck_assert_ptr_nonnull(x);
    sako_beta beta;
    sako__beta_set(&beta, a, b);
    sako_rng r;
    sako__rng_seed(&r, 777 + (uint64_t)_i);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = sako__beta_sample(&beta, &r);
        bad += !(x[i] >= 0.0 && x[i] <= 1.0);
    }
    ck_assert_msg(bad == 0, "Beta(%g,%g): %zu draws outside [0,1]", a, b, bad);
    char what[64];
    snprintf(what, sizeof what, "Beta(%g, %g)", a, b);
    double s = a + b;
    double mean = a / s;
    double var = a * b / (s * s * (s + 1.0));
    double exkurt = 6.0 * ((a - b) * (a - b) * (s + 1.0) - a * b * (s + 2.0)) /
                    (a * b * (s + 2.0) * (s + 3.0));
    check_moments(what, x, n, mean, var, (exkurt + 3.0) * var * var);
    double params[2] = {a, b};
    check_pit_chi2(what, x, n, beta_cdf_p, params, 100);
    double d = ks_distance(x, n, beta_cdf_p, params);
    ck_assert_msg(d * sqrt((double)n) <= KS_C, "%s: KS D = %g (crit %g)", what, d,
                  KS_C / sqrt((double)n));
    free(x);
}
END_TEST

/* The same seed gives the same draws; the sampler does not depend on hidden state. */
START_TEST(test_beta_deterministic)
{
    sako_beta beta;
    sako__beta_set(&beta, 0.3, 4.0);
    sako_rng r1, r2;
    sako__rng_seed(&r1, 99);
    sako__rng_seed(&r2, 99);
    int same = 0;
    for (int i = 0; i < 10000; i++) {
        double x = sako__beta_sample(&beta, &r1), y = sako__beta_sample(&beta, &r2);
        same += sk_same_double(x, y);
    }
    ck_assert_int_eq(same, 10000);
}
END_TEST

/* Extreme shapes never give NaN or values outside [0, 1]. */
START_TEST(test_beta_extremes)
{
    static const double shapes[][2] = {
        {1e-3, 1e-3}, {1e-3, 1e6}, {1e6, 1e-3}, {1e-6, 1.0}, {1e8, 1e8}, {1e9, 1.0}, {1.0, 1e9},
    };
    sako_rng r;
    sako__rng_seed(&r, 5);
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        sako_beta beta;
        sako__beta_set(&beta, shapes[k][0], shapes[k][1]);
        int bad = 0;
        for (int i = 0; i < 2000; i++) {
            double x = sako__beta_sample(&beta, &r);
            bad += !(x >= 0.0 && x <= 1.0);
        }
        ck_assert_msg(bad == 0, "Beta(%g,%g): %d draws outside [0,1]", shapes[k][0],
                      shapes[k][1], bad);
    }
}
END_TEST

Suite *suite_sampler(void)
{
    Suite *s = suite_create("sampler");
    TCase *tc = tcase_create("rng");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_rng_deterministic);
    tcase_add_test(tc, test_rng_uniform_range_moments);
    tcase_add_test(tc, test_rng_uniform_pairs);
    tcase_add_test(tc, test_rng_normal);
    suite_add_tcase(s, tc);

    tc = tcase_create("gamma_beta");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gamma_ge1, 0, (int)(sizeof gamma_shapes / sizeof gamma_shapes[0]));
    tcase_add_loop_test(tc, test_beta_distribution, 0,
                        (int)(sizeof beta_shapes / sizeof beta_shapes[0]));
    tcase_add_test(tc, test_beta_deterministic);
    tcase_add_test(tc, test_beta_extremes);
    suite_add_tcase(s, tc);
    return s;
}
