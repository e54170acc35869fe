/* One row's solve of implicit ALS: conjugate gradient applying the row's matrix
 * implicitly (never formed), and the exact Cholesky solve. See mf_internal.h. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "mf_internal.h"

/* Below this squared residual the row is solved (the threshold `implicit` uses). */
#define CG_EPS 1e-20f

SAKO_MF_INLINE float hsum(const sako_v8 *vp)
{
    const float *v = (const float *)vp;
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

SAKO_MF_INLINE float dot(const float *a, const float *b, uint32_t k)
{
    sako_v8 s0 = SAKO_V8_SET1(0.0f), s1 = s0;
    uint32_t j = 0;
    for (; j + 16 <= k; j += 16) {
        s0 += SAKO_V8_LOAD(a + j) * SAKO_V8_LOAD(b + j);
        s1 += SAKO_V8_LOAD(a + j + 8) * SAKO_V8_LOAD(b + j + 8);
    }
    for (; j + 8 <= k; j += 8)
        s0 += SAKO_V8_LOAD(a + j) * SAKO_V8_LOAD(b + j);
    s0 += s1;
    float s = hsum(&s0);
    for (; j < k; j++)
        s += a[j] * b[j];
    return s;
}

/* y += a x */
SAKO_MF_INLINE void axpy(float *y, float a, const float *x, uint32_t k)
{
    sako_v8 va = SAKO_V8_SET1(a);
    uint32_t j = 0;
    for (; j + 8 <= k; j += 8)
        SAKO_V8_STORE(y + j, SAKO_V8_LOAD(y + j) + va * SAKO_V8_LOAD(x + j));
    for (; j < k; j++)
        y[j] += a * x[j];
}

/* out = G v for a symmetric G: out is a sum of G's rows weighted by v, four rows at
 * a time (G's row b is its column b). */
SAKO_MF_INLINE void symv(const float *g, const float *v, uint32_t k, float *out)
{
    memset(out, 0, (size_t)k * sizeof *out);
    uint32_t b = 0;
    for (; b + 4 <= k; b += 4) {
        const float *g0 = g + (size_t)b * k, *g1 = g0 + k, *g2 = g1 + k, *g3 = g2 + k;
        sako_v8 w0 = SAKO_V8_SET1(v[b]), w1 = SAKO_V8_SET1(v[b + 1]);
        sako_v8 w2 = SAKO_V8_SET1(v[b + 2]), w3 = SAKO_V8_SET1(v[b + 3]);
        uint32_t j = 0;
        for (; j + 8 <= k; j += 8) {
            sako_v8 acc = (w0 * SAKO_V8_LOAD(g0 + j) + w1 * SAKO_V8_LOAD(g1 + j)) +
                          (w2 * SAKO_V8_LOAD(g2 + j) + w3 * SAKO_V8_LOAD(g3 + j));
            SAKO_V8_STORE(out + j, SAKO_V8_LOAD(out + j) + acc);
        }
        for (; j < k; j++)
            out[j] += (v[b] * g0[j] + v[b + 1] * g1[j]) + (v[b + 2] * g2[j] + v[b + 3] * g3[j]);
    }
    for (; b < k; b++)
        axpy(out, v[b], g + (size_t)b * k, k);
}

/* p = r + beta p */
SAKO_MF_INLINE void xpby(float *p, const float *r, float beta, uint32_t k)
{
    sako_v8 vb = SAKO_V8_SET1(beta);
    uint32_t j = 0;
    for (; j + 8 <= k; j += 8)
        SAKO_V8_STORE(p + j, SAKO_V8_LOAD(r + j) + vb * SAKO_V8_LOAD(p + j));
    for (; j < k; j++)
        p[j] = r[j] + beta * p[j];
}

/* The same four kernels for k a multiple of 16 (the unrolled sizes 32, 64 and 128):
 * whole blocks only, so no remainder loop that could never run; for such k the
 * arithmetic is the same as above, operation for operation. */
SAKO_MF_INLINE float dot16(const float *a, const float *b, uint32_t k)
{
    sako_v8 s0 = SAKO_V8_SET1(0.0f), s1 = s0;
    for (uint32_t j = 0; j < k; j += 16) {
        s0 += SAKO_V8_LOAD(a + j) * SAKO_V8_LOAD(b + j);
        s1 += SAKO_V8_LOAD(a + j + 8) * SAKO_V8_LOAD(b + j + 8);
    }
    s0 += s1;
    return hsum(&s0);
}

SAKO_MF_INLINE void axpy16(float *y, float a, const float *x, uint32_t k)
{
    sako_v8 va = SAKO_V8_SET1(a);
    for (uint32_t j = 0; j < k; j += 8)
        SAKO_V8_STORE(y + j, SAKO_V8_LOAD(y + j) + va * SAKO_V8_LOAD(x + j));
}

SAKO_MF_INLINE void symv16(const float *g, const float *v, uint32_t k, float *out)
{
    memset(out, 0, (size_t)k * sizeof *out);
    for (uint32_t b = 0; b < k; b += 4) {
        const float *g0 = g + (size_t)b * k, *g1 = g0 + k, *g2 = g1 + k, *g3 = g2 + k;
        sako_v8 w0 = SAKO_V8_SET1(v[b]), w1 = SAKO_V8_SET1(v[b + 1]);
        sako_v8 w2 = SAKO_V8_SET1(v[b + 2]), w3 = SAKO_V8_SET1(v[b + 3]);
        for (uint32_t j = 0; j < k; j += 8) {
            sako_v8 acc = (w0 * SAKO_V8_LOAD(g0 + j) + w1 * SAKO_V8_LOAD(g1 + j)) +
                          (w2 * SAKO_V8_LOAD(g2 + j) + w3 * SAKO_V8_LOAD(g3 + j));
            SAKO_V8_STORE(out + j, SAKO_V8_LOAD(out + j) + acc);
        }
    }
}

SAKO_MF_INLINE void xpby16(float *p, const float *r, float beta, uint32_t k)
{
    sako_v8 vb = SAKO_V8_SET1(beta);
    for (uint32_t j = 0; j < k; j += 8)
        SAKO_V8_STORE(p + j, SAKO_V8_LOAD(r + j) + vb * SAKO_V8_LOAD(p + j));
}

float sako__mf_dot(const float *a, const float *b, uint32_t k)
{
    return dot(a, b, k);
}

int sako__mf_scratch_init(sako_mf_scratch *s, uint32_t k, int exact)
{
    memset(s, 0, sizeof *s);
    s->r = malloc(3 * (size_t)k * sizeof(float));
    if (!s->r)
        return sako__error(SAKO_NOMEM, "matrix factorisation: out of memory (scratch)");
    s->p = s->r + k;
    s->ap = s->p + k;
    if (exact) {
        s->a = malloc(((size_t)k * k + 2 * (size_t)k) * sizeof(double));
        if (!s->a) {
            free(s->r);
            s->r = NULL;
            return sako__error(SAKO_NOMEM, "matrix factorisation: out of memory (scratch)");
        }
        s->b = s->a + (size_t)k * k;
        s->yd = s->b + k;
    }
    return SAKO_OK;
}

void sako__mf_scratch_free(sako_mf_scratch *s)
{
    free(s->r);
    free(s->a);
    memset(s, 0, sizeof *s);
}

/* Entries ahead whose factor rows are prefetched: the rows are scattered over a
 * matrix much larger than the caches, and a row's latency would otherwise stall
 * its dot product. */
#define PREFETCH_AHEAD 6

SAKO_MF_INLINE void prefetch_row(const float *yi, uint32_t k)
{
    for (uint32_t j = 0; j < k; j += 16)
        __builtin_prefetch(yi + j);
}

/* CG on A x = b (mf_cg_internal.h), twice: over any k with the kernels above, and
 * over k a multiple of 16 with the whole-block ones. */
#define CG_NAME cg_body
#define CG_DOT dot
#define CG_AXPY axpy
#define CG_SYMV symv
#define CG_XPBY xpby
#include "mf_cg_internal.h"
#define CG_NAME cg_body16
#define CG_DOT dot16
#define CG_AXPY axpy16
#define CG_SYMV symv16
#define CG_XPBY xpby16
#include "mf_cg_internal.h"

/* cg_body16 for a constant K, which the compiler checks is a multiple of 16 (the
 * kernels' contract): a K that is not fails to compile (negative array size). */
#define CG_WHOLE(K)                                                                   \
    do {                                                                              \
        (void)sizeof(char[(K) % 16 == 0 ? 1 : -1]);                                   \
        cg_body16(g, y, (K), alpha, row, steps, s, x);                                \
    } while (0)

SAKO_MF_CLONES
void sako__mf_solve_cg(const float *g, const float *y, uint32_t k, float alpha,
                       const sako_mf_row *row, uint32_t steps, sako_mf_scratch *s, float *x)
{
    /* the same arithmetic in every case: only the loop bounds become constants */
    switch (k) {
    case 32:
        CG_WHOLE(32);
        break;
    case 64:
        CG_WHOLE(64);
        break;
    case 128:
        CG_WHOLE(128);
        break;
    default:
        cg_body(g, y, k, alpha, row, steps, s, x);
        break;
    }
}

typedef double sako_v4d __attribute__((vector_size(32)));
typedef double sako_v4du __attribute__((vector_size(32), aligned(8), may_alias));

/* A = gram + lambda I + sum_i alpha r_i y_i y_i^T (the lower triangle is what counts;
 * the rank-one updates run over whole blocks of 4 and spill into the upper part,
 * which is initialised and never read), b = sum_i (1 + alpha r_i) y_i, then A = L L^T
 * and two triangular solves, all in double. */
SAKO_MF_CLONES
int sako__mf_solve_exact(const double *gram, double lambda, const float *y, uint32_t k,
                         double alpha, const sako_mf_row *row, sako_mf_scratch *s, float *x)
{
    double *a = s->a, *b = s->b, *yd = s->yd;
    memcpy(a, gram, (size_t)k * k * sizeof *a);
    for (uint32_t i = 0; i < k; i++) {
        a[(size_t)i * k + i] += lambda;
        b[i] = 0.0;
    }
    for (size_t e = 0; e < row->n; e++) {
        const float *yi = y + (size_t)row->cols[e] * k;
        double cm1 = alpha * (double)row->vals[e];
        for (uint32_t i = 0; i < k; i++)
            yd[i] = yi[i];
        for (uint32_t i = 0; i < k; i++) {
            double w = cm1 * yd[i];
            double *ai = a + (size_t)i * k;
            uint32_t lim = (i + 4) & ~3u, j = 0;
            if (lim > k)
                lim = k;
            sako_v4d vw = {w, w, w, w};
            for (; j + 4 <= lim; j += 4)
                *(sako_v4du *)(ai + j) += vw * *(const sako_v4du *)(yd + j);
            for (; j < lim; j++)
                ai[j] += w * yd[j];
            b[i] += (1.0 + cm1) * yd[i];
        }
    }
    for (uint32_t j = 0; j < k; j++) {
        double *aj = a + (size_t)j * k;
        double d = aj[j];
        for (uint32_t m = 0; m < j; m++)
            d -= aj[m] * aj[m];
        if (!(d > 0.0) || !isfinite(d))
            return sako__error(SAKO_INVALID, "matrix factorisation: the row's system is not "
                               "positive definite (pivot %u is %g; regularization must be > 0 "
                               "when the factors do not span)", j, d);
        d = sqrt(d);
        aj[j] = d;
        for (uint32_t i = j + 1; i < k; i++) {
            double *ai = a + (size_t)i * k;
            double t = ai[j];
            for (uint32_t m = 0; m < j; m++)
                t -= ai[m] * aj[m];
            ai[j] = t / d;
        }
    }
    /* L z = b, then L^T x = z (z kept in b) */
    for (uint32_t i = 0; i < k; i++) {
        double t = b[i];
        for (uint32_t m = 0; m < i; m++)
            t -= a[(size_t)i * k + m] * b[m];
        b[i] = t / a[(size_t)i * k + i];
    }
    for (uint32_t i = k; i-- > 0;) {
        double t = b[i];
        for (uint32_t m = i + 1; m < k; m++)
            t -= a[(size_t)m * k + i] * b[m];
        b[i] = t / a[(size_t)i * k + i];
    }
    for (uint32_t i = 0; i < k; i++)
        x[i] = (float)b[i];
    return SAKO_OK;
}
