/* The pruned top-k draw: incomplete beta, truncated Beta samplers, the bucket
 * structure, and exactness of the pruned draw against brute force.
 *
 * Every statistical test uses a fixed seed and a significance level of 0.001 per
 * statistic; tolerances come from the sample size (Kolmogorov and chi-square
 * critical values) or from the accuracy the code claims, never from the data. */
#include <pthread.h>

#include "check_sako.h"
#include "pruned_internal.h"

Suite *suite_pruned(void);

#define ALPHA 0.001
/* Asymptotic Kolmogorov critical value for alpha = 0.001: sqrt(-ln(alpha/2)/2). */
#define KS_C 1.9494746840148158
/* Joint draws per distribution in the exactness tests. */
#define EXACT_DRAWS 100000

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double rel_err(double got, double want)
{
    if (got == want)
        return 0.0;
    return fabs(got - want) / fabs(want);
}

/* ------------------------------------------------------ incomplete beta */

/* Adaptive Simpson on [lo, hi] to an absolute tolerance eps. */
static double simpson_rec(double (*f)(double, const double *), const double *par, double lo,
                          double hi, double flo, double fmid, double fhi, double whole, double eps,
                          int depth)
{
    double mid = 0.5 * (lo + hi), lm = 0.5 * (lo + mid), rm = 0.5 * (mid + hi);
    double flm = f(lm, par), frm = f(rm, par);
    double left = (mid - lo) / 6.0 * (flo + 4.0 * flm + fmid);
    double right = (hi - mid) / 6.0 * (fmid + 4.0 * frm + fhi);
    if (depth <= 0 || fabs(left + right - whole) <= 15.0 * eps)
        return left + right + (left + right - whole) / 15.0;
    return simpson_rec(f, par, lo, mid, flo, flm, fmid, left, eps / 2, depth - 1) +
           simpson_rec(f, par, mid, hi, fmid, frm, fhi, right, eps / 2, depth - 1);
}

/* Relative tolerance rel of a first estimate from 64 panels. */
static double simpson(double (*f)(double, const double *), const double *par, double lo,
                      double hi, double rel)
{
    double rough = 0.0, h = (hi - lo) / 64.0;
    for (int i = 0; i < 64; i++)
        rough += h / 6.0 * (f(lo + i * h, par) + 4.0 * f(lo + (i + 0.5) * h, par) +
                            f(lo + (i + 1) * h, par));
    double total = 0.0;
    for (int i = 0; i < 64; i++) {
        double a = lo + i * h, b = i == 63 ? hi : lo + (i + 1) * h;
        double fa = f(a, par), fb = f(b, par), fm = f(0.5 * (a + b), par);
        total += simpson_rec(f, par, a, b, fa, fm, fb, (b - a) / 6.0 * (fa + 4.0 * fm + fb),
                             rel * fabs(rough) / 64.0, 45);
    }
    return total;
}

/* The Beta kernel t^(a-1) (1-t)^(b-1), par = {a, b}. */
static double kernel(double t, const double *ab)
{
    return pow(t, ab[0] - 1.0) * pow(1.0 - t, ab[1] - 1.0);
}

/* With u = (1-t)^b, int_x^1 kernel = (1/b) int_0^{(1-x)^b} (1 - u^(1/b))^(a-1) du: no
 * singularity at t = 1 when b < 1. Likewise v = t^a below x when a < 1. */
static double upper_sub(double u, const double *ab)
{
    return pow(1.0 - pow(u, 1.0 / ab[1]), ab[0] - 1.0);
}

static double lower_sub(double v, const double *ab)
{
    return pow(1.0 - pow(v, 1.0 / ab[0]), ab[1] - 1.0);
}

/* P(X > x) by numeric integration of both tails (no B(a, b) needed). */
static double upper_by_integration(double x, double a, double b)
{
    const double rel = 1e-13;
    double ab[2] = {a, b};
    double up = b < 1.0 ? simpson(upper_sub, ab, 0.0, pow(1.0 - x, b), rel) / b
                        : simpson(kernel, ab, x, 1.0, rel);
    double lo = a < 1.0 ? simpson(lower_sub, ab, 0.0, pow(x, a), rel) / a
                        : simpson(kernel, ab, 0.0, x, rel);
    return up / (up + lo);
}

/* P(lo <= Bin(n, x) <= hi), summed term by term in log space. */
static double binomial_range(int n, int lo, int hi, double x)
{
    double sum = 0.0;
    for (int i = lo; i <= hi; i++) {
        double lt = lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) + i * log(x) +
                    (n - i) * log1p(-x);
        sum += exp(lt);
    }
    return sum;
}

START_TEST(test_ibeta_closed_forms)
{
    static const double xs[] = {1e-9, 0.01, 0.3, 0.5, 0.77, 0.999};
    static const double shapes[] = {0.05, 0.5, 2.5, 40.0, 3000.0};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double x = xs[i];
        for (size_t j = 0; j < sizeof shapes / sizeof shapes[0]; j++) {
            double s = shapes[j];
            ck_assert_double_le(rel_err(sako__ibeta_upper(x, 1.0, s), pow(1.0 - x, s)), 1e-13);
            ck_assert_double_le(rel_err(sako__ibeta_lower(x, s, 1.0), pow(x, s)), 1e-13);
            double up = sako__ibeta_upper(x, s, 1.0), lo = sako__ibeta_lower(x, s, 1.0);
            ck_assert_double_le(fabs(up + lo - 1.0), 1e-15);
        }
        /* I_x(2, 2) = 3x^2 - 2x^3 */
        ck_assert_double_le(rel_err(sako__ibeta_lower(x, 2.0, 2.0), x * x * (3.0 - 2.0 * x)), 1e-13);
    }
    /* Symmetric shapes: half the mass on each side of 1/2. */
    static const double sym[] = {0.01, 0.3, 1.7, 25.5, 800.0, 3000.0, 1e5};
    for (size_t j = 0; j < sizeof sym / sizeof sym[0]; j++) {
        ck_assert_double_le(fabs(sako__ibeta_upper(0.5, sym[j], sym[j]) - 0.5), 1e-13);
        /* and I_x(a, b) = 1 - I_{1-x}(b, a) */
        double u = sako__ibeta_upper(0.37, sym[j], 2.0 * sym[j]);
        double l = sako__ibeta_lower(0.63, 2.0 * sym[j], sym[j]);
        ck_assert_double_le(rel_err(u, l), 1e-12);
    }
    ck_assert_double_eq(sako__ibeta_upper(0.0, 2.0, 3.0), 1.0);
    ck_assert_double_eq(sako__ibeta_upper(1.0, 2.0, 3.0), 0.0);
    ck_assert_double_eq(sako__ibeta_lower(0.0, 2.0, 3.0), 0.0);
    ck_assert_double_eq(sako__ibeta_lower(1.0, 2.0, 3.0), 1.0);
}
END_TEST

START_TEST(test_ibeta_binomial)
{
    /* Integer shapes against binomial tails, far into both tails. */
    static const struct { int n, r; double x; } c[] = {
        {7, 3, 0.2}, {49, 20, 0.6}, {49, 20, 0.05}, {199, 100, 0.3}, {199, 100, 0.7},
        {999, 30, 0.01}, {999, 30, 0.08}, {999, 500, 0.45}, {999, 500, 0.56}, {60, 2, 0.5},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        double a = c[i].r, b = c[i].n - c[i].r + 1;
        /* I_x(r, n-r+1) = P(Bin(n, x) >= r); both tails summed separately. */
        double want_lo = binomial_range(c[i].n, c[i].r, c[i].n, c[i].x);
        double want_up = binomial_range(c[i].n, 0, c[i].r - 1, c[i].x);
        double got_lo = sako__ibeta_lower(c[i].x, a, b), got_up = sako__ibeta_upper(c[i].x, a, b);
        ck_assert_msg(rel_err(got_lo, want_lo) < 1e-11, "lower I_%g(%g,%g) = %.17g, binomial %.17g",
                      c[i].x, a, b, got_lo, want_lo);
        ck_assert_msg(rel_err(got_up, want_up) < 1e-11, "upper I_%g(%g,%g) = %.17g, binomial %.17g",
                      c[i].x, a, b, got_up, want_up);
    }
}
END_TEST

START_TEST(test_ibeta_integration)
{
    /* Non-integer shapes against adaptive Simpson (to ~1e-13 relative). */
    static const double c[][3] = {
        {0.1, 1.9, 0.2},  {0.1, 1.9, 0.9},  {0.5, 0.5, 0.1},  {0.5, 0.5, 0.95}, {2.5, 7.3, 0.05},
        {2.5, 7.3, 0.6},  {30.5, 70.2, 0.2}, {30.5, 70.2, 0.45}, {0.03, 0.7, 0.5}, {12.3, 0.4, 0.93},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        double want = upper_by_integration(c[i][2], c[i][0], c[i][1]);
        double got = sako__ibeta_upper(c[i][2], c[i][0], c[i][1]);
        ck_assert_msg(rel_err(got, want) < 1e-11, "upper(%g; %g, %g) = %.17g, integral %.17g",
                      c[i][2], c[i][0], c[i][1], got, want);
    }
}
END_TEST

/* ------------------------------------------------------ truncated draws */

/* Kolmogorov statistic of sorted draws against a CDF. Equal values (a draw rounded
 * to an end of the interval) count as one step of the empirical CDF. */
static double ks_stat(const double *x, size_t n, double (*cdf)(double, const double *),
                      const double *par)
{
    double d = 0.0;
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && x[j] == x[i]; j++)
            ;
        double f = cdf(x[i], par);
        double lo = f - (double)i / n, hi = (double)j / n - f;
        if (lo > d)
            d = lo;
        if (hi > d)
            d = hi;
    }
    return d;
}

/* par = {a, b, t, tail}: CDFs of X | X > t and of X | X <= t. */
static double cdf_above(double x, const double *par)
{
    return 1.0 - sako__ibeta_upper(x, par[0], par[1]) / par[3];
}

static double cdf_below(double x, const double *par)
{
    return sako__ibeta_lower(x, par[0], par[1]) / par[3];
}

/* (a, b, t): a < 1, b < 1, large shapes, a == 1, b == 1, tiny and large tails. */
static const double trunc_cases[][3] = {
    {0.1, 1.9, 0.5},   {0.5, 0.5, 0.9},    {0.5, 0.5, 0.1},   {3.0, 30.0, 0.5},
    {300.0, 700.0, 0.35}, {2000.0, 3000.0, 0.41}, {50.0, 0.5, 0.99}, {1.5, 200.0, 0.05},
    {0.2, 3.0, 0.3},   {1.0, 5.0, 0.7},    {5.0, 1.0, 0.7},   {1.0, 1.0, 0.3},
    {1000.0, 1.01, 0.995}, {0.05, 1.5, 0.01}, {2.5, 2.5, 0.2}, {0.3, 0.2, 0.6},
};
#define N_TRUNC_CASES (sizeof trunc_cases / sizeof trunc_cases[0])

static const char *method_name(int m)
{
    static const char *names[] = {"none", "all", "a1", "b1", "reject", "exp", "pow_a", "pow_b", "slow"};
    return m >= 0 && m < SAKO_TB_METHODS ? names[m] : "?";
}

/* Every applicable method for case _i, tested on its own. */
START_TEST(test_trunc_upper_ks)
{
    const double *c = trunc_cases[_i];
    sako_beta beta;
    sako_tbeta_dom dom;
    sako__beta_set(&beta, c[0], c[1]);
    sako__tbeta_dom_set(&dom, c[2]);
    double p, cc;
    int chosen;
    sako__tbeta_prepare(&beta, &dom, &p, &chosen, &cc);
    ck_assert_msg(p > 0.0 && p < 1.0, "case %d: p = %g", _i, p);
    double par[4] = {c[0], c[1], c[2], p};
    sako_rng rng;
    size_t cap = 20000;
    double *x = malloc(cap * sizeof *x);
    for (int m = SAKO_TB_A1; m < SAKO_TB_METHODS; m++) {
        double acc = sako__tbeta_accept(&beta, &dom, p, m, &cc);
        if (acc < 0.01)
            continue; /* not applicable, or too slow to test (never chosen: below MIN_ACCEPT) */
        /* An envelope's rate above 1 would mean it does not bound the density. */
        ck_assert_msg(acc <= 1.0 + 1e-9, "case %d %s: acceptance %.12g > 1", _i, method_name(m), acc);
        size_t n = m == SAKO_TB_SLOW ? 3000 : cap;
        sako__rng_seed(&rng, 1000 + 31 * (uint64_t)_i + (uint64_t)m);
        for (size_t i = 0; i < n; i++) {
            x[i] = sako__tbeta_upper(&beta, &dom, p, m, cc, &rng);
            ck_assert_msg(x[i] > c[2] && x[i] <= 1.0, "case %d %s: draw %.17g not in (t, 1]", _i,
                          method_name(m), x[i]);
        }
        qsort(x, n, sizeof *x, cmp_double);
        double d = ks_stat(x, n, cdf_above, par), crit = KS_C / sqrt((double)n);
        ck_assert_msg(d < crit, "case %d (%g,%g,t=%g) %s: KS %g >= %g", _i, c[0], c[1], c[2],
                      method_name(m), d, crit);
    }
    free(x);
}
END_TEST

/* The draw below t the |S| < k completion uses (rejection or the mirror image). */
START_TEST(test_trunc_lower_ks)
{
    const double *c = trunc_cases[_i];
    sako_beta beta;
    sako_tbeta_dom dom;
    sako__beta_set(&beta, c[0], c[1]);
    /* Below a threshold where the lower tail is small too, and at the case's own t. */
    for (int pass = 0; pass < 2; pass++) {
        double t = c[2];
        if (pass == 1) {
            /* t with P(X <= t) about 0.05 (bisection on the lower tail). */
            double lo = 0.0, hi = 1.0;
            for (int i = 0; i < 200; i++) {
                double mid = 0.5 * (lo + hi);
                if (sako__ibeta_lower(mid, c[0], c[1]) < 0.05)
                    lo = mid;
                else
                    hi = mid;
            }
            t = hi;
        }
        sako__tbeta_dom_set(&dom, t);
        double p = sako__ibeta_upper(t, c[0], c[1]), q = sako__ibeta_lower(t, c[0], c[1]);
        if (!(q > 1e-300))
            continue;
        double par[4] = {c[0], c[1], t, q};
        size_t n = 20000;
        double *x = malloc(n * sizeof *x);
        sako_rng rng;
        sako__rng_seed(&rng, 5000 + 17 * (uint64_t)_i + (uint64_t)pass);
        for (size_t i = 0; i < n; i++) {
            x[i] = sako__tbeta_lower(&beta, &dom, p, &rng);
            ck_assert_msg(x[i] >= 0.0 && x[i] <= t, "case %d: draw %.17g not in [0, t]", _i, x[i]);
        }
        qsort(x, n, sizeof *x, cmp_double);
        double d = ks_stat(x, n, cdf_below, par), crit = KS_C / sqrt((double)n);
        ck_assert_msg(d < crit, "case %d (%g,%g,t=%g, q=%g): KS %g >= %g", _i, c[0], c[1], t, q, d,
                      crit);
        free(x);
    }
}
END_TEST

/* ------------------------------------------------------------ structure */

static sako_beta mk_beta(double a, double b)
{
    sako_beta x;
    sako__beta_set(&x, a, b);
    return x;
}

/* A realistic posterior: a category-like prior plus a little evidence, a few with
 * thousands of impressions, some flat-prior cold items (a == 1), odd shapes. */
static sako_beta random_posterior(sako_rng *rng)
{
    double u = sako__rng_uniform(rng);
    double imps = floor(20.0 * sako__rng_uniform(rng) * sako__rng_uniform(rng));
    double clicks = floor(imps * 0.3 * sako__rng_uniform(rng));
    if (u < 0.70)
        return mk_beta(0.1 + 0.7 * clicks, 1.9 + imps - clicks);
    if (u < 0.80)
        return mk_beta(1.0, 1.0 + imps); /* flat prior, no clicks */
    if (u < 0.85)
        return mk_beta(1.0 + clicks, 1.0); /* b == 1 */
    if (u < 0.92) {
        double n = 500.0 + 3000.0 * sako__rng_uniform(rng);
        double rate = 0.05 + 0.4 * sako__rng_uniform(rng);
        return mk_beta(n * rate, n * (1.0 - rate)); /* strong */
    }
    return mk_beta(0.2 + 2.0 * sako__rng_uniform(rng), 0.3 + 3.0 * sako__rng_uniform(rng));
}

START_TEST(test_structure_invariants)
{
    enum { SPACE = 1500, OPS = 12000 };
    sako_pruned *p;
    ck_assert_int_eq(sako__pruned_create(&p), SAKO_OK);
    static uint32_t ids[SPACE];
    static int present[SPACE];
    sako_rng rng;
    sako__rng_seed(&rng, 77);
    for (int i = 0; i < SPACE; i++) {
        ids[i] = (uint32_t)(((uint64_t)i * 2654435761u) % 4294967295u); /* sparse, up to 2^32-2 */
        present[i] = 0;
    }
    ids[0] = UINT32_MAX - 1;
    ids[1] = 0;
    size_t count = 0;
    for (int op = 0; op < OPS; op++) {
        int i = (int)(sako__rng_next(&rng) % SPACE);
        double u = sako__rng_uniform(&rng);
        if (u < 0.6) {
            sako_beta b = random_posterior(&rng);
            ck_assert_int_eq(sako__pruned_set(p, ids[i], &b), SAKO_OK);
            count += !present[i];
            present[i] = 1;
        } else if (u < 0.995) {
            sako__pruned_remove(p, ids[i]);
            count -= present[i];
            present[i] = 0;
        } else {
            /* a new threshold: none, typical, very high */
            double t = sako__rng_uniform(&rng) < 0.3 ? 0.0 : sako__rng_uniform(&rng);
            ck_assert_int_eq(sako__pruned_rebuild(p, t), SAKO_OK);
        }
        ck_assert_uint_eq(sako__pruned_size(p), count);
        if (op % 500 == 0 || op == OPS - 1) {
            int line = sako__pruned_check(p);
            ck_assert_msg(line == 0, "invariant at pruned.c:%d broken after op %d", line, op);
        }
    }
    ck_assert_int_eq(sako__pruned_retune(p, 5, &rng), SAKO_OK);
    ck_assert_int_eq(sako__pruned_check(p), 0);
    /* k >= size returns every member exactly once, sorted. */
    sako_pruned_scratch *s;
    ck_assert_int_eq(sako__pruned_scratch_create(&s), SAKO_OK);
    uint32_t *m = malloc((count + 5) * sizeof *m);
    double *v = malloc((count + 5) * sizeof *v);
    size_t n;
    ck_assert_int_eq(sako__pruned_topk(p, (int)count + 5, &rng, s, m, v, &n), SAKO_OK);
    ck_assert_uint_eq(n, count);
    for (size_t j = 1; j < n; j++)
        ck_assert(v[j - 1] >= v[j]);
    for (int i = 0; i < SPACE; i++) {
        int seen = 0;
        for (size_t j = 0; j < n; j++)
            seen += m[j] == ids[i];
        ck_assert_int_eq(seen, present[i]);
    }
    /* Everything removed: an empty, consistent domain. */
    for (int i = 0; i < SPACE; i++)
        sako__pruned_remove(p, ids[i]);
    ck_assert_uint_eq(sako__pruned_size(p), 0);
    ck_assert_double_eq(sako__pruned_sum_p(p), 0.0);
    ck_assert_int_eq(sako__pruned_check(p), 0);
    free(m);
    free(v);
    sako__pruned_scratch_free(s);
    sako__pruned_free(p);
}
END_TEST

START_TEST(test_edges)
{
    sako_pruned *p;
    sako_pruned_scratch *s;
    sako_rng rng;
    sako__rng_seed(&rng, 3);
    ck_assert_int_eq(sako__pruned_create(&p), SAKO_OK);
    ck_assert_int_eq(sako__pruned_scratch_create(&s), SAKO_OK);
    uint32_t m[600];
    double v[600];
    size_t n = 99;
    /* empty domain */
    ck_assert_int_eq(sako__pruned_topk(p, 10, &rng, s, m, v, &n), SAKO_OK);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(sako__pruned_topk(p, -1, &rng, s, m, v, &n), SAKO_INVALID);
    /* bad input */
    sako_beta bad = {0.0, 1.0, 1.0, 1.0};
    ck_assert_int_eq(sako__pruned_set(p, 1, &bad), SAKO_INVALID);
    bad.a = NAN;
    ck_assert_int_eq(sako__pruned_set(p, 1, &bad), SAKO_INVALID);
    bad.a = INFINITY;
    ck_assert_int_eq(sako__pruned_set(p, 1, &bad), SAKO_INVALID);
    sako_beta ok = mk_beta(2.0, 5.0);
    ck_assert_int_eq(sako__pruned_set(p, UINT32_MAX, &ok), SAKO_INVALID);
    ck_assert_uint_eq(sako__pruned_size(p), 0);
    sako__pruned_remove(p, 12345); /* absent: no-op */
    for (uint32_t i = 0; i < 400; i++) {
        sako_beta b = random_posterior(&rng);
        ck_assert_int_eq(sako__pruned_set(p, 10 * i, &b), SAKO_OK);
    }
    ck_assert(sako__pruned_needs_retune(p, 20));
    ck_assert_int_eq(sako__pruned_retune(p, 20, &rng), SAKO_OK);
    ck_assert_msg(!sako__pruned_needs_retune(p, 20), "sum p = %g after a retune for k = 20",
                  sako__pruned_sum_p(p));
    ck_assert(sako__pruned_threshold(p) > 0.0);
    ck_assert_int_eq(sako__pruned_retune(p, 0, &rng), SAKO_INVALID);
    /* k = 0 */
    n = 99;
    ck_assert_int_eq(sako__pruned_topk(p, 0, &rng, s, m, v, &n), SAKO_OK);
    ck_assert_uint_eq(n, 0);
    /* growing k on one scratch: small, then larger than the domain */
    int ks[] = {1, 5, 20, 150, 399, 400, 600};
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
        ck_assert_int_eq(sako__pruned_topk(p, ks[j], &rng, s, m, v, &n), SAKO_OK);
        ck_assert_uint_eq(n, ks[j] < 400 ? (size_t)ks[j] : 400);
        for (size_t i = 0; i < n; i++) {
            ck_assert(v[i] >= 0.0 && v[i] <= 1.0);
            ck_assert_uint_eq(m[i] % 10, 0);
            if (i)
                ck_assert(v[i - 1] >= v[i]);
            for (size_t e = 0; e < i; e++)
                ck_assert_uint_ne(m[e], m[i]);
        }
    }
    /* A domain that shrinks below the brute-force size still answers. */
    for (uint32_t i = 0; i < 390; i++)
        sako__pruned_remove(p, 10 * i);
    ck_assert_int_eq(sako__pruned_topk(p, 20, &rng, s, m, v, &n), SAKO_OK);
    ck_assert_uint_eq(n, 10);
    ck_assert(!sako__pruned_needs_retune(p, 20));
    sako__pruned_scratch_free(s);
    sako__pruned_free(p);
}
END_TEST

/* ------------------------------------------------- exactness vs brute force */

typedef struct dist_sample {
    size_t n_members;
    double *top1;       /* rank-1 value of each draw */
    double *topk;       /* rank-k value */
    uint64_t *first;    /* times each member index was rank 1 */
    uint64_t *inside;   /* times each member index was in the top k */
} dist_sample;

static void dist_init(dist_sample *d, size_t n_members)
{
    d->n_members = n_members;
    d->top1 = malloc(EXACT_DRAWS * sizeof(double));
    d->topk = malloc(EXACT_DRAWS * sizeof(double));
    d->first = calloc(n_members, sizeof(uint64_t));
    d->inside = calloc(n_members, sizeof(uint64_t));
}

static void dist_free(dist_sample *d)
{
    free(d->top1);
    free(d->topk);
    free(d->first);
    free(d->inside);
}

/* Members are 7 i + 3 for index i, to keep ids and indices apart. */
#define MEMBER(i) ((uint32_t)(7 * (i) + 3))
#define INDEX(m) (((m) - 3) / 7)

static void dist_add(dist_sample *d, size_t r, const uint32_t *m, const double *v, size_t k)
{
    for (size_t j = 0; j < k; j++) {
        ck_assert(j == 0 || v[j - 1] >= v[j]);
        d->inside[INDEX(m[j])]++;
    }
    d->first[INDEX(m[0])]++;
    d->top1[r] = v[0];
    d->topk[r] = v[k - 1];
}

/* Two-sample chi-square of equal-size count vectors (cells with fewer than 10 in
 * both pooled together). For top-k membership the counts of one draw are tied
 * (k per draw), which only makes the statistic smaller: the test is conservative. */
static void check_counts(const char *what, const uint64_t *x, const uint64_t *y, size_t n)
{
    double stat = 0.0, px = 0.0, py = 0.0;
    int cells = 0;
    for (size_t i = 0; i < n; i++) {
        double s = (double)x[i] + (double)y[i];
        if (s < 10.0) {
            px += (double)x[i];
            py += (double)y[i];
            continue;
        }
        double d = (double)x[i] - (double)y[i];
        stat += d * d / s;
        cells++;
    }
    if (px + py > 0.0) {
        stat += (px - py) * (px - py) / (px + py);
        cells++;
    }
    ck_assert_msg(cells >= 2, "%s: only %d cells", what, cells);
    double crit = sk_chi2_crit(cells - 1, ALPHA);
    ck_assert_msg(stat < crit, "%s: chi-square %g >= %g (%d cells)", what, stat, crit, cells);
}

/* Two-sample Kolmogorov-Smirnov on samples of equal size n (sorted in place). */
static void check_ks2(const char *what, double *x, double *y, size_t n)
{
    qsort(x, n, sizeof *x, cmp_double);
    qsort(y, n, sizeof *y, cmp_double);
    size_t i = 0, j = 0;
    double d = 0.0;
    while (i < n && j < n) {
        double v = x[i] < y[j] ? x[i] : y[j];
        while (i < n && x[i] <= v)
            i++;
        while (j < n && y[j] <= v)
            j++;
        double gap = fabs((double)i - (double)j) / n;
        if (gap > d)
            d = gap;
    }
    double crit = KS_C * sqrt(2.0 / n);
    ck_assert_msg(d < crit, "%s: two-sample KS %g >= %g", what, d, crit);
}

/* Brute-force reference: every member drawn, top k by a full sort. */
typedef struct vm {
    double v;
    uint32_t m;
} vm;

static int cmp_vm_desc(const void *x, const void *y)
{
    double a = ((const vm *)x)->v, b = ((const vm *)y)->v;
    return (a < b) - (a > b);
}

static void compare_with_brute(const char *what, const sako_pruned *p, const sako_beta *betas,
                               const int *present, size_t n_index, int k, uint64_t seed,
                               double min_fallback_share)
{
    dist_sample pr, bf;
    dist_init(&pr, n_index);
    dist_init(&bf, n_index);
    sako_pruned_scratch *s;
    ck_assert_int_eq(sako__pruned_scratch_create(&s), SAKO_OK);
    uint32_t *m = malloc((size_t)k * sizeof *m);
    double *v = malloc((size_t)k * sizeof *v);
    vm *all = malloc(n_index * sizeof *all);
    /* One stream per side, so neither sample depends on how much the other used. */
    sako_rng rng, rng_bf;
    sako__rng_seed(&rng, seed);
    sako__rng_seed(&rng_bf, seed ^ 0xbf5eed0000000000ULL);
    size_t live = 0;
    for (size_t i = 0; i < n_index; i++)
        live += present[i] != 0;
    ck_assert_uint_eq(sako__pruned_size(p), live);
    ck_assert_uint_ge(live, (size_t)k);
    for (size_t r = 0; r < EXACT_DRAWS; r++) {
        size_t n;
        ck_assert_int_eq(sako__pruned_topk(p, k, &rng, s, m, v, &n), SAKO_OK);
        ck_assert_uint_eq(n, (size_t)k);
        dist_add(&pr, r, m, v, (size_t)k);
        size_t na = 0;
        for (size_t i = 0; i < n_index; i++)
            if (present[i]) {
                all[na].v = sako__beta_sample(&betas[i], &rng_bf);
                all[na++].m = MEMBER(i);
            }
        qsort(all, na, sizeof *all, cmp_vm_desc);
        for (int j = 0; j < k; j++) {
            m[j] = all[j].m;
            v[j] = all[j].v;
        }
        dist_add(&bf, r, m, v, (size_t)k);
    }
    double share = (double)sako__pruned_scratch_fallbacks(s) / EXACT_DRAWS;
    ck_assert_msg(share >= min_fallback_share, "%s: only %g of the queries took the |S| < k path",
                  what, share);
    char buf[160];
    snprintf(buf, sizeof buf, "%s: rank-1 identity", what);
    check_counts(buf, pr.first, bf.first, n_index);
    snprintf(buf, sizeof buf, "%s: top-%d membership", what, k);
    check_counts(buf, pr.inside, bf.inside, n_index);
    snprintf(buf, sizeof buf, "%s: rank-1 value", what);
    check_ks2(buf, pr.top1, bf.top1, EXACT_DRAWS);
    snprintf(buf, sizeof buf, "%s: rank-%d value", what, k);
    check_ks2(buf, pr.topk, bf.topk, EXACT_DRAWS);
    free(m);
    free(v);
    free(all);
    sako__pruned_scratch_free(s);
    dist_free(&pr);
    dist_free(&bf);
}

/* A domain of n members with mixed posteriors; betas/present indexed by member index. */
static sako_pruned *mixed_domain(size_t n, sako_beta *betas, int *present, sako_rng *rng)
{
    sako_pruned *p;
    ck_assert_int_eq(sako__pruned_create(&p), SAKO_OK);
    for (size_t i = 0; i < n; i++) {
        betas[i] = random_posterior(rng);
        present[i] = 1;
        ck_assert_int_eq(sako__pruned_set(p, MEMBER(i), &betas[i]), SAKO_OK);
    }
    /* A few clear favourites, so rank 1 is not spread thin. */
    for (size_t i = 0; i < 4; i++) {
        betas[i] = mk_beta(300.0 + 40.0 * i, 700.0);
        ck_assert_int_eq(sako__pruned_set(p, MEMBER(i), &betas[i]), SAKO_OK);
    }
    return p;
}

START_TEST(test_exact_tuned)
{
    enum { N = 200 };
    static sako_beta betas[N];
    static int present[N];
    sako_rng rng;
    sako__rng_seed(&rng, 101);
    sako_pruned *p = mixed_domain(N, betas, present, &rng);
    ck_assert_int_eq(sako__pruned_retune(p, 5, &rng), SAKO_OK);
    ck_assert(sako__pruned_threshold(p) > 0.0);
    compare_with_brute("tuned k=5", p, betas, present, N, 5, 202, 0.0);
    sako__pruned_free(p);
}
END_TEST

START_TEST(test_exact_fallback)
{
    enum { N = 300 };
    static sako_beta betas[N];
    static int present[N];
    sako_rng rng;
    sako__rng_seed(&rng, 303);
    sako_pruned *p = mixed_domain(N, betas, present, &rng);
    /* A threshold made for k = 1 (about 3 members above it) queried with k = 20:
     * nearly every query completes from the members below t. */
    double t;
    ck_assert_int_eq(sako__pruned_choose_threshold(p, 1, &rng, &t), SAKO_OK);
    ck_assert_int_eq(sako__pruned_rebuild(p, t), SAKO_OK);
    compare_with_brute("forced fallback k=20", p, betas, present, N, 20, 404, 0.9);
    sako__pruned_free(p);
}
END_TEST

START_TEST(test_exact_fallback_mirror)
{
    enum { N = 200 };
    static sako_beta betas[N];
    static int present[N];
    sako_rng rng;
    sako__rng_seed(&rng, 313);
    sako_pruned *p = mixed_domain(N, betas, present, &rng);
    /* Members likely above t = 0.8 (p ~ 0.8 and ~ 1) that are sometimes not in S:
     * their draws below t take the mirror-image path (P(X <= t) < 0.3). */
    for (size_t i = 4; i < 10; i++) {
        betas[i] = i < 7 ? mk_beta(12.0, 1.5) : mk_beta(90.0, 10.0);
        ck_assert_int_eq(sako__pruned_set(p, MEMBER(i), &betas[i]), SAKO_OK);
    }
    ck_assert_int_eq(sako__pruned_rebuild(p, 0.8), SAKO_OK);
    ck_assert(sako__ibeta_upper(0.8, 12.0, 1.5) > 0.7);
    compare_with_brute("fallback with likely members k=20", p, betas, present, N, 20, 414, 0.9);
    sako__pruned_free(p);
}
END_TEST

START_TEST(test_exact_mixed_paths)
{
    enum { N = 250 };
    static sako_beta betas[N];
    static int present[N];
    sako_rng rng;
    sako__rng_seed(&rng, 505);
    sako_pruned *p = mixed_domain(N, betas, present, &rng);
    /* E|S| about 6 for k = 5: both the direct and the completed path are common. */
    double t;
    ck_assert_int_eq(sako__pruned_choose_threshold(p, 2, &rng, &t), SAKO_OK);
    ck_assert_int_eq(sako__pruned_rebuild(p, t), SAKO_OK);
    compare_with_brute("mixed paths k=5", p, betas, present, N, 5, 606, 0.05);
    sako__pruned_free(p);
}
END_TEST

START_TEST(test_exact_after_churn)
{
    enum { SPACE = 400 };
    static sako_beta betas[SPACE];
    static int present[SPACE];
    sako_rng rng;
    sako__rng_seed(&rng, 707);
    sako_pruned *p = mixed_domain(250, betas, present, &rng);
    ck_assert_int_eq(sako__pruned_retune(p, 10, &rng), SAKO_OK);
    /* Updates, removals and insertions under the old threshold, no retune after. */
    for (int op = 0; op < 3000; op++) {
        size_t i = sako__rng_next(&rng) % SPACE;
        if (sako__rng_uniform(&rng) < 0.7) {
            betas[i] = random_posterior(&rng);
            present[i] = 1;
            ck_assert_int_eq(sako__pruned_set(p, MEMBER(i), &betas[i]), SAKO_OK);
        } else {
            present[i] = 0;
            sako__pruned_remove(p, MEMBER(i));
        }
    }
    ck_assert_int_eq(sako__pruned_check(p), 0);
    compare_with_brute("after churn k=10", p, betas, present, SPACE, 10, 808, 0.0);
    sako__pruned_free(p);
}
END_TEST

/* Queries only read the domain: threads with their own scratch and RNG may share it. */
typedef struct reader_arg {
    const sako_pruned *p;
    uint64_t seed;
    int bad; /* outputs that were not k distinct members sorted by value */
} reader_arg;

static void *reader(void *arg)
{
    reader_arg *ra = arg;
    sako_pruned_scratch *s;
    if (sako__pruned_scratch_create(&s) != SAKO_OK) {
        ra->bad = -1;
        return NULL;
    }
    sako_rng rng;
    sako__rng_seed(&rng, ra->seed);
    uint32_t m[30];
    double v[30];
    for (int q = 0; q < 3000; q++) {
        int k = 1 + q % 30;
        size_t n;
        if (sako__pruned_topk(ra->p, k, &rng, s, m, v, &n) != SAKO_OK || n != (size_t)k) {
            ra->bad++;
            continue;
        }
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                ra->bad += m[i] == m[j] || v[j] < v[i];
    }
    sako__pruned_scratch_free(s);
    return NULL;
}

START_TEST(test_concurrent_readers)
{
    enum { N = 3000, THREADS = 4 };
    static sako_beta betas[N];
    static int present[N];
    sako_rng rng;
    sako__rng_seed(&rng, 909);
    sako_pruned *p = mixed_domain(N, betas, present, &rng);
    ck_assert_int_eq(sako__pruned_retune(p, 5, &rng), SAKO_OK);
    pthread_t th[THREADS];
    reader_arg ra[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ra[i].p = p;
        ra[i].seed = 1000 + (uint64_t)i;
        ra[i].bad = 0;
        ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &ra[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(ra[i].bad, 0);
    }
    ck_assert_int_eq(sako__pruned_check(p), 0);
    sako__pruned_free(p);
}
END_TEST

Suite *suite_pruned(void)
{
    Suite *s = suite_create("pruned");
    TCase *tc = tcase_create("ibeta");
    tcase_add_test(tc, test_ibeta_closed_forms);
    tcase_add_test(tc, test_ibeta_binomial);
    tcase_add_test(tc, test_ibeta_integration);
    suite_add_tcase(s, tc);
    tc = tcase_create("truncated");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_trunc_upper_ks, 0, (int)N_TRUNC_CASES);
    tcase_add_loop_test(tc, test_trunc_lower_ks, 0, (int)N_TRUNC_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("structure");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_structure_invariants);
    tcase_add_test(tc, test_edges);
    tcase_add_test(tc, test_concurrent_readers);
    suite_add_tcase(s, tc);
    tc = tcase_create("exactness");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_exact_tuned);
    tcase_add_test(tc, test_exact_fallback);
    tcase_add_test(tc, test_exact_fallback_mirror);
    tcase_add_test(tc, test_exact_mixed_paths);
    tcase_add_test(tc, test_exact_after_churn);
    suite_add_tcase(s, tc);
    return s;
}
