/* The conjugate-gradient row solve of implicit ALS (mf_solve.c), written once and
 * included there once per set of vector kernels: CG_NAME is the function to define,
 * CG_DOT, CG_AXPY, CG_SYMV and CG_XPBY (p = r + beta p) the kernels it uses. Not a
 * header for other files; no include guard on purpose.
 *
 * CG on A x = b with A = G + Y_u^T diag(alpha r) Y_u and b = Y_u^T (1 + alpha r),
 * A applied as G v plus one dot and one axpy per entry of the row: O(k^2 + n k)
 * per step instead of O(n k^2) to form A. Always inlined, so that the calls with a
 * constant k get their loops unrolled for the usual sizes. */
SAKO_MF_INLINE void CG_NAME(const float *g, const float *y, uint32_t k, float alpha,
                            const sako_mf_row *row, uint32_t steps, sako_mf_scratch *s,
                            float *x)
{
    float *r = s->r, *p = s->p, *ap = s->ap;
    const int32_t *cols = row->cols;
    const float *vals = row->vals;
    size_t n = row->n;

    for (size_t e = 0; e < n && e < PREFETCH_AHEAD; e++)
        prefetch_row(y + (size_t)cols[e] * k, k);
    /* r = b - A x = -G x + sum_i (c_i - (c_i - 1) y_i.x) y_i */
    CG_SYMV(g, x, k, r);
    for (uint32_t j = 0; j < k; j++)
        r[j] = -r[j];
    for (size_t e = 0; e < n; e++) {
        const float *yi = y + (size_t)cols[e] * k;
        if (e + PREFETCH_AHEAD < n)
            prefetch_row(y + (size_t)cols[e + PREFETCH_AHEAD] * k, k);
        float cm1 = alpha * vals[e];
        CG_AXPY(r, 1.0f + cm1 * (1.0f - CG_DOT(yi, x, k)), yi, k);
    }
    memcpy(p, r, (size_t)k * sizeof *p);
    float rs = CG_DOT(r, r, k);
    for (uint32_t step = 0; step < steps && rs >= CG_EPS; step++) {
        for (size_t e = 0; e < n && e < PREFETCH_AHEAD; e++)
            prefetch_row(y + (size_t)cols[e] * k, k);
        CG_SYMV(g, p, k, ap);
        for (size_t e = 0; e < n; e++) {
            const float *yi = y + (size_t)cols[e] * k;
            if (e + PREFETCH_AHEAD < n)
                prefetch_row(y + (size_t)cols[e + PREFETCH_AHEAD] * k, k);
            CG_AXPY(ap, alpha * vals[e] * CG_DOT(yi, p, k), yi, k);
        }
        float pap = CG_DOT(p, ap, k);
        if (!(pap > 0.0f))
            break; /* A singular along p (regularization 0): stop where we are */
        float a = rs / pap;
        CG_AXPY(x, a, p, k);
        CG_AXPY(r, -a, ap, k);
        float rs_new = CG_DOT(r, r, k);
        float beta = rs_new / rs;
        CG_XPBY(p, r, beta, k);
        rs = rs_new;
    }
}

#undef CG_NAME
#undef CG_DOT
#undef CG_AXPY
#undef CG_SYMV
#undef CG_XPBY
