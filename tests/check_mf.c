/* Matrix factorisation (issue 10, items 1, 2, 5): the CG row solve against a dense
 * solve written here; fold-in against the row the training's last half-iteration
 * produced; the loss of exact ALS never rising; bit-identical factors for a seed,
 * whatever the thread count; bad matrices and options refused naming the entry. */
#include <pthread.h>

#include "check_sako.h"
#include "mf_internal.h"

#define EPS_F 0x1.0p-24 /* float32 unit roundoff */

/* ---------------------------------------------------------------- helpers */

static uint64_t mf_rand_state;

static double mf_rand(void) /* uniform [0, 1) */
{
    mf_rand_state = mf_rand_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(mf_rand_state >> 11) * 0x1.0p-53;
}

/* A random n_rows x n_cols matrix with about `density` of the cells stored, values
 * in [0.5, 5); every row and column gets at least one entry when both sides exist. */
typedef struct mf_mat {
    sako_csr csr;
    int64_t *indptr;
    int32_t *indices;
    float *values;
} mf_mat;

static mf_mat mf_random(size_t n_rows, size_t n_cols, double density, uint64_t seed)
{
    mf_mat m;
    mf_rand_state = seed;
    m.indptr = malloc((n_rows + 1) * sizeof *m.indptr);
    m.indices = malloc((n_rows * n_cols + 1) * sizeof *m.indices);
    m.values = malloc((n_rows * n_cols + 1) * sizeof *m.values);
    size_t nnz = 0;
    m.indptr[0] = 0;
    for (size_t u = 0; u < n_rows; u++) {
        for (size_t i = 0; i < n_cols; i++) {
            if (mf_rand() < density || i == u % n_cols || u == i % n_rows) {
                m.indices[nnz] = (int32_t)i;
                m.values[nnz] = (float)(0.5 + 4.5 * mf_rand());
                nnz++;
            }
        }
        m.indptr[u + 1] = (int64_t)nnz;
    }
    m.csr.n_rows = n_rows;
    m.csr.n_cols = n_cols;
    m.csr.indptr = m.indptr;
    m.csr.indices = m.indices;
    m.csr.values = m.values;
    return m;
}

static void mf_free(mf_mat *m)
{
    free(m->indptr);
    free(m->indices);
    free(m->values);
}

/* Dense symmetric positive definite solve by Gaussian elimination with partial
 * pivoting, in double: an independent reference, not the library's Cholesky. */
static void dense_solve(double *a, double *b, int k)
{
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(a[r * k + c]) > fabs(a[piv * k + c]))
                piv = r;
        for (int j = 0; j < k; j++) {
            double t = a[c * k + j];
            a[c * k + j] = a[piv * k + j];
            a[piv * k + j] = t;
        }
        double t = b[c];
        b[c] = b[piv];
        b[piv] = t;
        for (int r = c + 1; r < k; r++) {
            double f = a[r * k + c] / a[c * k + c];
            for (int j = c; j < k; j++)
                a[r * k + j] -= f * a[c * k + j];
            b[r] -= f * b[c];
        }
    }
    for (int r = k - 1; r >= 0; r--) {
        double s = b[r];
        for (int j = r + 1; j < k; j++)
            s -= a[r * k + j] * b[j];
        b[r] = s / a[r * k + r];
    }
}

/* The row's system A x = b written out densely from its definition. */
static void row_system(const float *y, size_t n_y, int k, const int32_t *cols,
                       const float *vals, size_t n, double alpha, double lambda, double *a,
                       double *b)
{
    for (int p = 0; p < k; p++) {
        b[p] = 0.0;
        for (int q = 0; q < k; q++) {
            double s = p == q ? lambda : 0.0;
            for (size_t i = 0; i < n_y; i++)
                s += (double)y[i * k + p] * y[i * k + q];
            a[p * k + q] = s;
        }
    }
    for (size_t e = 0; e < n; e++) {
        const float *yi = y + (size_t)cols[e] * k;
        double c = 1.0 + alpha * vals[e];
        for (int p = 0; p < k; p++) {
            for (int q = 0; q < k; q++)
                a[p * k + q] += (c - 1.0) * yi[p] * yi[q];
            b[p] += c * yi[p];
        }
    }
}

/* Condition number of a symmetric positive definite matrix: largest eigenvalue by
 * power iteration, smallest by inverse iteration (solves with dense_solve). */
static double condition(const double *a, int k)
{
    double *v = malloc(k * sizeof *v), *w = malloc(k * sizeof *w), *m = malloc(k * k * sizeof *m);
    double hi = 0.0, lo = 0.0;
    for (int j = 0; j < k; j++)
        v[j] = 1.0 + j * 0.01;
    for (int it = 0; it < 500; it++) {
        double norm = 0.0;
        for (int p = 0; p < k; p++) {
            w[p] = 0.0;
            for (int q = 0; q < k; q++)
                w[p] += a[p * k + q] * v[q];
            norm += w[p] * w[p];
        }
        hi = sqrt(norm);
        for (int p = 0; p < k; p++)
            v[p] = w[p] / hi;
    }
    for (int j = 0; j < k; j++)
        v[j] = 1.0 - j * 0.01;
    for (int it = 0; it < 200; it++) {
        memcpy(m, a, k * k * sizeof *m);
        memcpy(w, v, k * sizeof *w);
        dense_solve(m, w, k);
        double norm = 0.0;
        for (int p = 0; p < k; p++)
            norm += w[p] * w[p];
        lo = 1.0 / sqrt(norm);
        for (int p = 0; p < k; p++)
            v[p] = w[p] * lo;
    }
    free(v);
    free(w);
    free(m);
    return hi / lo;
}

static double rel_err(const float *x, const double *ref, int k)
{
    double d = 0.0, n = 0.0;
    for (int j = 0; j < k; j++) {
        d += (x[j] - ref[j]) * (x[j] - ref[j]);
        n += ref[j] * ref[j];
    }
    return sqrt(d / n);
}

static void fill_uniform(float *f, size_t count, double lo, double hi)
{
    for (size_t j = 0; j < count; j++)
        f[j] = (float)(lo + (hi - lo) * mf_rand());
}

/* ------------------------------------------------------------- row solve */

/* k CG steps from zero solve a k x k system up to rounding: the error of CG in
 * float32 is bounded by about k * cond(A) * 2^-24 relative (each step's residual is
 * exact to that); we allow 8 k cond(A) 2^-24. The exact solve is the library's
 * Cholesky in double rounded to float: 4 * 2^-24 relative plus cond(A) * 2^-52. */
START_TEST(test_cg_matches_dense_solve)
{
    static const int ks[] = {4, 8, 16, 33};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int k = ks[t];
        size_t n_y = 60, n = 12;
        double alpha = 3.0, lambda = 0.5;
        mf_rand_state = 1000 + t;
        float *y = malloc(n_y * k * sizeof *y);
        fill_uniform(y, n_y * k, -1.0, 1.0);
        int32_t cols[12];
        float vals[12];
        for (size_t e = 0; e < n; e++) {
            cols[e] = (int32_t)(e * 5 + t);
            vals[e] = (float)(0.5 + 4.0 * mf_rand());
        }
        double *a = malloc(k * k * sizeof *a), *b = malloc(k * sizeof *b);
        row_system(y, n_y, k, cols, vals, n, alpha, lambda, a, b);
        double cond = condition(a, k);
        dense_solve(a, b, k); /* b is the reference solution now */

        double gram[33 * 33];
        ck_assert_int_eq(sako__mf_gram(y, n_y, k, 1, gram), SAKO_OK);
        float g[33 * 33];
        for (int p = 0; p < k * k; p++)
            g[p] = (float)(gram[p] + (p % (k + 1) == 0 ? lambda : 0.0));
        sako_mf_row row = {cols, vals, n};
        sako_mf_scratch s;
        ck_assert_int_eq(sako__mf_scratch_init(&s, k, 1), SAKO_OK);
        float x[33] = {0};
        sako__mf_solve_cg(g, y, k, (float)alpha, &row, (uint32_t)k, &s, x);
        double err = rel_err(x, b, k), bound = 8.0 * k * cond * EPS_F;
        ck_assert_msg(err <= bound, "k=%d: CG error %g above %g (cond %g)", k, err, bound, cond);
        /* a few steps only do not solve it: the comparison has teeth */
        float x3[33] = {0};
        sako__mf_solve_cg(g, y, k, (float)alpha, &row, 1, &s, x3);
        ck_assert_msg(rel_err(x3, b, k) > 100 * bound || k < 8, "k=%d: one step already solved it",
                      k);

        float xe[33];
        ck_assert_int_eq(sako__mf_solve_exact(gram, lambda, y, k, alpha, &row, &s, xe), SAKO_OK);
        err = rel_err(xe, b, k);
        bound = 4.0 * EPS_F + cond * 0x1.0p-52 * k;
        ck_assert_msg(err <= bound, "k=%d: Cholesky error %g above %g", k, err, bound);
        sako__mf_scratch_free(&s);
        free(y);
        free(a);
        free(b);
    }
}
END_TEST

/* The Gram matrix against a plain double sum, and its argument checks. */
START_TEST(test_gram)
{
    int k = 12;
    size_t n = 5000; /* several blocks of rows */
    mf_rand_state = 7;
    float *y = malloc(n * k * sizeof *y);
    fill_uniform(y, n * k, -1.0, 1.0);
    double g[144], g3[144];
    ck_assert_int_eq(sako_mf_gram(y, n, k, g), SAKO_OK);
    ck_assert_int_eq(sako__mf_gram(y, n, k, 3, g3), SAKO_OK);
    ck_assert_int_eq(memcmp(g, g3, sizeof g), 0);
    for (int p = 0; p < k; p++)
        for (int q = 0; q < k; q++) {
            double s = 0.0, abs_sum = 0.0;
            for (size_t i = 0; i < n; i++) {
                s += (double)y[i * k + p] * y[i * k + q];
                abs_sum += fabs((double)y[i * k + p] * y[i * k + q]);
            }
            /* float sums over tiles of 32 rows: 32 * 2^-24 of the absolute sum */
            ck_assert_msg(fabs(g[p * k + q] - s) <= 32 * EPS_F * abs_sum, "gram[%d][%d] %g vs %g",
                          p, q, g[p * k + q], s);
            ck_assert(g[p * k + q] == g[q * k + p]);
        }
    ck_assert_int_eq(sako_mf_gram(y, n, 0, g), SAKO_INVALID);
    ck_assert_int_eq(sako_mf_gram(y, n, 1025, g), SAKO_INVALID);
    ck_assert_int_eq(sako_mf_gram(NULL, n, k, g), SAKO_MISUSE);
    ck_assert_int_eq(sako_mf_gram(y, n, k, NULL), SAKO_MISUSE);
    ck_assert_int_eq(sako_mf_gram(NULL, 0, k, g), SAKO_OK); /* no items: zeros */
    for (int p = 0; p < k * k; p++)
        ck_assert(g[p] == 0.0);
    free(y);
}
END_TEST

/* ---------------------------------------------------------------- training */

typedef struct loss_log {
    const sako_csr *r;
    const sako_mf_options *o;
    double loss[32];
    uint32_t n;
} loss_log;

static int log_loss(void *arg, uint32_t it, const float *u, const float *v)
{
    loss_log *l = arg;
    ck_assert_uint_eq(it, l->n + 1);
    ck_assert_int_eq(sako__mf_loss(l->r, l->o, u, v, &l->loss[l->n]), SAKO_OK);
    l->n++;
    return SAKO_OK;
}

/* Exact ALS minimises the loss over one side with the other fixed: the loss never
 * rises. The factors are stored in float, which moves the loss by about k 2^-24
 * relative per iteration near the minimum: we allow 1e-5 relative. */
START_TEST(test_loss_decreases_exact)
{
    mf_mat m = mf_random(50, 40, 0.15, 3);
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = 8;
    o.iterations = 12;
    o.regularization = 0.1;
    o.alpha = 2.0;
    float *u = malloc(50 * 8 * sizeof *u), *v = malloc(40 * 8 * sizeof *v);
    loss_log l = {&m.csr, &o, {0}, 0};
    ck_assert_int_eq(sako__mf_train(&m.csr, &o, 1, log_loss, &l, "test", u, v), SAKO_OK);
    ck_assert_uint_eq(l.n, 12);
    for (uint32_t t = 1; t < l.n; t++)
        ck_assert_msg(l.loss[t] <= l.loss[t - 1] * (1 + 1e-5), "iteration %u: loss %.9g after %.9g",
                      t + 1, l.loss[t], l.loss[t - 1]);
    /* and it moves: the second iteration already well below the first */
    ck_assert_msg(l.loss[l.n - 1] < 0.95 * l.loss[0], "loss %g -> %g", l.loss[0], l.loss[l.n - 1]);

    /* CG with 3 steps is no exact minimiser, but still goes down over the run */
    loss_log lc = {&m.csr, &o, {0}, 0};
    o.cg_steps = 3;
    ck_assert_int_eq(sako__mf_train(&m.csr, &o, 0, log_loss, &lc, "test", u, v), SAKO_OK);
    ck_assert_msg(lc.loss[lc.n - 1] < 0.95 * lc.loss[0], "CG loss %g -> %g", lc.loss[0],
                  lc.loss[lc.n - 1]);
    /* and ends near exact ALS's (same start): within 2 % */
    ck_assert_msg(fabs(lc.loss[lc.n - 1] - l.loss[l.n - 1]) < 0.02 * l.loss[l.n - 1],
                  "CG %g vs exact %g", lc.loss[lc.n - 1], l.loss[l.n - 1]);
    free(u);
    free(v);
    mf_free(&m);
}
END_TEST

static int stop_at_3(void *arg, uint32_t it, const float *u, const float *v)
{
    (void)u;
    (void)v;
    *(uint32_t *)arg = it;
    return it == 3 ? SAKO_BUSY : SAKO_OK;
}

START_TEST(test_progress_stops)
{
    mf_mat m = mf_random(20, 10, 0.2, 5);
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = 4;
    float u[80], v[40];
    uint32_t last = 0;
    ck_assert_int_eq(sako__mf_train(&m.csr, &o, 0, stop_at_3, &last, "test", u, v), SAKO_BUSY);
    ck_assert_uint_eq(last, 3);
    mf_free(&m);
}
END_TEST

/* Fold-in of a column (an item) against the final user factors solves what the
 * last half-iteration solved for it: the same system, built in the same order, so
 * equal up to float rounding of the output (we allow 4 ulps of the row's norm). */
START_TEST(test_fold_in_matches_training_row)
{
    size_t nu = 60, ni = 35;
    uint32_t k = 8;
    mf_mat m = mf_random(nu, ni, 0.12, 11);
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = k;
    o.iterations = 6;
    o.regularization = 0.2;
    o.alpha = 4.0;
    o.threads = 2;
    float *u = malloc(nu * k * sizeof *u), *v = malloc(ni * k * sizeof *v);
    ck_assert_int_eq(sako__mf_train(&m.csr, &o, 1, NULL, NULL, "test", u, v), SAKO_OK);
    double *gram = malloc(k * k * sizeof *gram);
    ck_assert_int_eq(sako_mf_gram(u, nu, k, gram), SAKO_OK);
    int32_t users[64];
    float vals[64];
    for (size_t i = 0; i < ni; i++) {
        size_t n = 0;
        for (size_t r = 0; r < nu; r++)
            for (int64_t e = m.indptr[r]; e < m.indptr[r + 1]; e++)
                if ((size_t)m.indices[e] == i) {
                    users[n] = (int32_t)r;
                    vals[n++] = m.values[e];
                }
        float x[8];
        ck_assert_int_eq(sako_mf_fold_in(u, nu, gram, users, vals, n, &o, 1, x), SAKO_OK);
        double d = 0.0, norm = 0.0;
        for (uint32_t a = 0; a < k; a++) {
            d += fabs(x[a] - v[i * k + a]);
            norm += fabs(v[i * k + a]);
        }
        ck_assert_msg(d <= 4 * EPS_F * norm, "item %zu: fold-in differs by %g", i, d);
        /* CG warm-started at the solution stays there (relative 1e-4: float CG steps
         * on a residual of rounding size) */
        float xc[8];
        memcpy(xc, x, sizeof xc);
        ck_assert_int_eq(sako_mf_fold_in(u, nu, gram, users, vals, n, &o, 0, xc), SAKO_OK);
        d = 0.0;
        for (uint32_t a = 0; a < k; a++)
            d += fabs(xc[a] - x[a]);
        ck_assert_msg(d <= 1e-4 * norm, "item %zu: CG moved the exact row by %g", i, d);
        /* without a cached gram: the same bits */
        float xn[8];
        ck_assert_int_eq(sako_mf_fold_in(u, nu, NULL, users, vals, n, &o, 1, xn), SAKO_OK);
        ck_assert_int_eq(memcmp(xn, x, sizeof x), 0);
    }
    /* a user folded in from a zero start with CG approaches the exact fold-in */
    float xe[8], xc[8] = {0};
    size_t n0 = (size_t)m.indptr[1];
    sako_mf_gram(v, ni, k, gram);
    o.cg_steps = k;
    ck_assert_int_eq(sako_mf_fold_in(v, ni, gram, m.indices, m.values, n0, &o, 1, xe), SAKO_OK);
    ck_assert_int_eq(sako_mf_fold_in(v, ni, gram, m.indices, m.values, n0, &o, 0, xc), SAKO_OK);
    double d = 0.0, norm = 0.0;
    for (uint32_t a = 0; a < k; a++) {
        d += fabs(xc[a] - xe[a]);
        norm += fabs(xe[a]);
    }
    ck_assert_msg(d <= 1e-3 * norm, "user 0: CG from zero %g off the exact fold-in", d);
    free(gram);
    free(u);
    free(v);
    mf_free(&m);
}
END_TEST

/* The same seed gives the same bits, with any number of threads; another seed other
 * factors. */
START_TEST(test_deterministic)
{
    size_t nu = 700, ni = 300;
    uint32_t k = 16;
    mf_mat m = mf_random(nu, ni, 0.03, 17);
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = k;
    o.iterations = 3;
    o.seed = 42;
    size_t su = nu * k * sizeof(float), sv = ni * k * sizeof(float);
    float *u1 = malloc(su), *v1 = malloc(sv), *u2 = malloc(su), *v2 = malloc(sv);
    o.threads = 2;
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u1, v1), SAKO_OK);
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u2, v2), SAKO_OK);
    ck_assert(memcmp(u1, u2, su) == 0 && memcmp(v1, v2, sv) == 0);
    static const uint32_t threads[] = {1, 3, 8};
    for (size_t t = 0; t < 3; t++) {
        o.threads = threads[t];
        ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u2, v2), SAKO_OK);
        ck_assert_msg(memcmp(u1, u2, su) == 0 && memcmp(v1, v2, sv) == 0,
                      "%u threads differ from 2", threads[t]);
    }
    o.seed = 43;
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u2, v2), SAKO_OK);
    ck_assert(memcmp(v1, v2, sv) != 0);
    /* seed 0 is a fixed default, not the clock */
    o.seed = 0;
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u1, v1), SAKO_OK);
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u2, v2), SAKO_OK);
    ck_assert(memcmp(v1, v2, sv) == 0);
    o.seed = SAKO_MF_DEFAULT_SEED;
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u2, v2), SAKO_OK);
    ck_assert(memcmp(v1, v2, sv) == 0);
    free(u1);
    free(v1);
    free(u2);
    free(v2);
    mf_free(&m);
}
END_TEST

/* The factor sizes whose loops are unrolled (32, 64, 128) solve the system: k CG
 * steps against the dense reference. */
START_TEST(test_unrolled_sizes_agree)
{
    static const uint32_t ks[] = {32, 64, 128};
    for (size_t t = 0; t < 3; t++) {
        uint32_t k = ks[t];
        size_t n_y = 40;
        mf_rand_state = 99 + t;
        float *y = malloc(n_y * k * sizeof *y);
        fill_uniform(y, n_y * k, -0.3, 0.3);
        double *gram = malloc(k * k * sizeof *gram);
        float *g = malloc(k * k * sizeof *g);
        ck_assert_int_eq(sako__mf_gram(y, n_y, k, 1, gram), SAKO_OK);
        for (uint32_t p = 0; p < k * k; p++)
            g[p] = (float)(gram[p] + (p % (k + 1) == 0 ? 0.1 : 0.0));
        int32_t cols[10];
        float vals[10];
        for (int e = 0; e < 10; e++) {
            cols[e] = 3 * e + 1;
            vals[e] = 1.0f + e;
        }
        sako_mf_row row = {cols, vals, 10};
        sako_mf_scratch s;
        ck_assert_int_eq(sako__mf_scratch_init(&s, k, 1), SAKO_OK);
        float *x = calloc(k, sizeof *x);
        sako__mf_solve_cg(g, y, k, 2.0f, &row, k, &s, x);
        double *a = malloc(k * k * sizeof *a), *b = malloc(k * sizeof *b);
        row_system(y, n_y, (int)k, cols, vals, 10, 2.0, 0.1, a, b);
        double cond = condition(a, (int)k);
        dense_solve(a, b, (int)k);
        /* k steps: solved up to float rounding, the bound of test_cg_matches_dense_solve */
        double err = rel_err(x, b, (int)k), bound = 8.0 * k * cond * EPS_F;
        ck_assert_msg(err <= bound, "k=%u: CG error %g above %g (cond %g)", k, err, bound, cond);
        free(x);
        free(a);
        free(b);
        free(g);
        free(gram);
        free(y);
        sako__mf_scratch_free(&s);
    }
}
END_TEST

/* Empty sides: nothing to read, the other side's rows solve to 0 (no preference). */
START_TEST(test_empty_sides)
{
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = 4;
    o.regularization = 0.5;
    int64_t indptr0[1] = {0};
    sako_csr r = {0, 5, indptr0, NULL, NULL};
    float v[20];
    ck_assert_int_eq(sako_mf_fit(&r, &o, NULL, v), SAKO_OK);
    for (int j = 0; j < 20; j++)
        ck_assert_msg(fabs(v[j]) < 1e-7, "v[%d] = %g", j, v[j]);
    int64_t indptr3[4] = {0, 0, 0, 0};
    sako_csr r3 = {3, 0, indptr3, NULL, NULL};
    float u[12];
    ck_assert_int_eq(sako_mf_fit(&r3, &o, u, NULL), SAKO_OK);
    for (int j = 0; j < 12; j++)
        ck_assert(fabs(u[j]) < 1e-7);
    sako_csr r0 = {0, 0, indptr0, NULL, NULL};
    ck_assert_int_eq(sako_mf_fit(&r0, &o, NULL, NULL), SAKO_OK);
    /* a user with no history folds in to 0 */
    float y[8] = {1, 0, 0, 0, 0, 1, 0, 0};
    float x[4] = {0.3f, 0.2f, 0.1f, 0.0f};
    ck_assert_int_eq(sako_mf_fold_in(y, 2, NULL, NULL, NULL, 0, &o, 1, x), SAKO_OK);
    for (int j = 0; j < 4; j++)
        ck_assert(x[j] == 0.0f);
}
END_TEST

/* ---------------------------------------------------------- bad arguments */

static void expect_refused(int rc, int want, const char *needle)
{
    ck_assert_msg(rc == want, "status %d, wanted %d (%s)", rc, want, sako_errmsg());
    ck_assert_msg(strstr(sako_errmsg(), needle), "message \"%s\" does not name \"%s\"",
                  sako_errmsg(), needle);
}

START_TEST(test_bad_matrix_refused)
{
    /* 3 x 4: row 0 {0, 2}, row 1 {1, 3}, row 2 {0} */
    int64_t ptr[4] = {0, 2, 4, 5};
    int32_t idx[5] = {0, 2, 1, 3, 0};
    float val[5] = {1, 2, 3, 4, 5};
    sako_csr r = {3, 4, ptr, idx, val};
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = 2;
    o.cg_steps = 2;
    float u[6], v[8];
    ck_assert_int_eq(sako_mf_fit(&r, &o, u, v), SAKO_OK);

    idx[3] = 4;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 1, entry 3: column 4 is not in [0, 4)");
    idx[3] = -1;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 1, entry 3: column -1");
    idx[3] = 1;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 1, entry 3: column 1 is repeated");
    idx[3] = 0;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 1, entry 3: column 0 is below");
    idx[3] = 3;
    val[4] = 0.0f;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 2, entry 4 (column 0): value 0");
    val[4] = -1.0f;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 2, entry 4 (column 0): value -1");
    val[4] = NAN;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 2, entry 4");
    val[4] = INFINITY;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 2, entry 4");
    val[4] = 5.0f;
    ptr[2] = 1;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 1: indptr[2] = 1 is below indptr[1] = 2");
    ptr[2] = 6;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "row 2: indptr[3] = 5 is below indptr[2] = 6");
    ptr[2] = 4;
    ptr[0] = 1;
    expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, "indptr[0] is 1");
    ptr[0] = 0;
    ck_assert_int_eq(sako_mf_fit(&r, &o, u, v), SAKO_OK);

    expect_refused(sako_mf_fit(NULL, &o, u, v), SAKO_MISUSE, "matrix is NULL");
    expect_refused(sako_mf_fit(&r, &o, NULL, v), SAKO_MISUSE, "user_factors is NULL");
    expect_refused(sako_mf_fit(&r, &o, u, NULL), SAKO_MISUSE, "item_factors is NULL");
    sako_csr big = r;
    big.n_rows = (size_t)INT32_MAX + 1;
    expect_refused(sako_mf_fit(&big, &o, u, v), SAKO_RANGE, "INT32_MAX");
    sako_csr noidx = r;
    noidx.indices = NULL;
    expect_refused(sako_mf_fit(&noidx, &o, u, v), SAKO_MISUSE, "indices or values is NULL");
}
END_TEST

START_TEST(test_bad_options_refused)
{
    int64_t ptr[2] = {0, 1};
    int32_t idx[1] = {0};
    float val[1] = {1};
    sako_csr r = {1, 1, ptr, idx, val};
    float u[2048], v[2048];
    sako_mf_options o;
#define BAD(field, value, needle)                                                          \
    do {                                                                                   \
        o = (sako_mf_options)SAKO_MF_OPTIONS_INIT;                                         \
        o.field = value;                                                                   \
        expect_refused(sako_mf_fit(&r, &o, u, v), SAKO_INVALID, needle);                   \
        float x[1024] = {0};                                                               \
        expect_refused(sako_mf_fold_in(v, 1, NULL, idx, val, 1, &o, 0, x), SAKO_INVALID,   \
                       needle);                                                            \
    } while (0)
    BAD(version, 2, "options version 2 is not 1");
    BAD(factors, 0, "factors 0 is not in 1..1024");
    BAD(factors, 1025, "factors 1025");
    BAD(iterations, 0, "iterations 0 is not in 1..10000");
    BAD(iterations, 10001, "iterations 10001");
    BAD(regularization, -0.1, "regularization -0.1");
    BAD(regularization, NAN, "regularization nan");
    BAD(regularization, INFINITY, "regularization inf");
    BAD(alpha, 0.0, "alpha 0 is not in (0, 1e12]");
    BAD(alpha, NAN, "alpha nan");
    BAD(cg_steps, 0, "cg_steps 0 is not in 1..factors (64)");
    BAD(cg_steps, 65, "cg_steps 65");
    BAD(threads, 257, "threads 257");
#undef BAD
    o = (sako_mf_options)SAKO_MF_OPTIONS_INIT;
    o.factors = 1;
    o.cg_steps = 1;
    o.regularization = 0.0; /* allowed */
    ck_assert_int_eq(sako_mf_fit(&r, &o, u, v), SAKO_OK);
    ck_assert_int_eq(sako_mf_fit(&r, NULL, u, v), SAKO_OK); /* NULL: the defaults */
}
END_TEST

START_TEST(test_bad_fold_in_refused)
{
    uint32_t k = 4;
    float y[5 * 4];
    mf_rand_state = 3;
    fill_uniform(y, 20, -1, 1);
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = k;
    int32_t items[3] = {0, 3, 1};
    float vals[3] = {1, 2, 3};
    float x[4] = {0.5f, 0.5f, 0.5f, 0.5f}, keep[4];
    memcpy(keep, x, sizeof x);
    items[1] = 5;
    expect_refused(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 0, x), SAKO_INVALID,
                   "entry 1: item 5 is not in [0, 5)");
    items[1] = 1;
    expect_refused(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 0, x), SAKO_INVALID,
                   "entry 2: item 1 repeats entry 1");
    items[1] = 3;
    vals[2] = -2;
    expect_refused(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 0, x), SAKO_INVALID,
                   "entry 2 (item 1): value -2");
    vals[2] = 3;
    expect_refused(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 2, x), SAKO_INVALID,
                   "exact is 2");
    expect_refused(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 0, NULL), SAKO_MISUSE,
                   "x is NULL");
    expect_refused(sako_mf_fold_in(NULL, 5, NULL, items, vals, 3, &o, 0, x), SAKO_MISUSE,
                   "item_factors is NULL");
    expect_refused(sako_mf_fold_in(y, 5, NULL, NULL, vals, 3, &o, 0, x), SAKO_MISUSE,
                   "items or values is NULL");
    x[2] = NAN;
    expect_refused(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 0, x), SAKO_INVALID,
                   "warm start x[2]");
    x[2] = 0.5f;
    double gram[16] = {0};
    gram[5] = INFINITY;
    expect_refused(sako_mf_fold_in(y, 5, gram, items, vals, 3, &o, 0, x), SAKO_INVALID,
                   "gram[1][1]");
    ck_assert_int_eq(memcmp(x, keep, sizeof x), 0); /* unchanged on failure */
    /* not positive definite: regularization 0 and 2 items for 4 factors */
    o.regularization = 0.0;
    expect_refused(sako_mf_fold_in(y, 2, NULL, items, vals, 1, &o, 1, x), SAKO_INVALID,
                   "not positive definite");
    ck_assert_int_eq(memcmp(x, keep, sizeof x), 0);
    o.regularization = 0.01;
    ck_assert_int_eq(sako_mf_fold_in(y, 5, NULL, items, vals, 3, &o, 0, x), SAKO_OK);
    ck_assert(memcmp(x, keep, sizeof x) != 0);
}
END_TEST

/* ---------------------------------------------------------------- threads */

/* Several threads on one training, and two trainings at once (under TSan in
 * `make tsan`): the same bits as one thread alone. */
typedef struct fit_arg {
    const sako_csr *r;
    sako_mf_options o;
    float *u, *v;
    int rc;
} fit_arg;

static void *fit_thread(void *p)
{
    fit_arg *a = p;
    a->rc = sako_mf_fit(a->r, &a->o, a->u, a->v);
    return NULL;
}

START_TEST(test_threads)
{
    size_t nu = 1500, ni = 400;
    uint32_t k = 16;
    mf_mat m = mf_random(nu, ni, 0.02, 23);
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = k;
    o.iterations = 2;
    o.threads = 1;
    size_t su = nu * k * sizeof(float), sv = ni * k * sizeof(float);
    float *u1 = malloc(su), *v1 = malloc(sv);
    ck_assert_int_eq(sako_mf_fit(&m.csr, &o, u1, v1), SAKO_OK);
    fit_arg a[2];
    pthread_t tid[2];
    for (int t = 0; t < 2; t++) {
        a[t].r = &m.csr;
        a[t].o = o;
        a[t].o.threads = 4;
        a[t].u = malloc(su);
        a[t].v = malloc(sv);
        ck_assert_int_eq(pthread_create(&tid[t], NULL, fit_thread, &a[t]), 0);
    }
    for (int t = 0; t < 2; t++) {
        pthread_join(tid[t], NULL);
        ck_assert_int_eq(a[t].rc, SAKO_OK);
        ck_assert(memcmp(a[t].u, u1, su) == 0 && memcmp(a[t].v, v1, sv) == 0);
        free(a[t].u);
        free(a[t].v);
    }
    free(u1);
    free(v1);
    mf_free(&m);
}
END_TEST

Suite *suite_mf(void)
{
    Suite *s = suite_create("mf");
    TCase *tc = tcase_create("solve");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cg_matches_dense_solve);
    tcase_add_test(tc, test_gram);
    tcase_add_test(tc, test_unrolled_sizes_agree);
    suite_add_tcase(s, tc);
    tc = tcase_create("train");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_loss_decreases_exact);
    tcase_add_test(tc, test_progress_stops);
    tcase_add_test(tc, test_fold_in_matches_training_row);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_empty_sides);
    suite_add_tcase(s, tc);
    tc = tcase_create("arguments");
    tcase_add_test(tc, test_bad_matrix_refused);
    tcase_add_test(tc, test_bad_options_refused);
    tcase_add_test(tc, test_bad_fold_in_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}
