/* Argument checks of the matrix-factorisation calls: options and CSR matrices,
 * refused whole with a message naming the field, row or entry. */
#include <inttypes.h>
#include <math.h>
#include <unistd.h>

#include "error_internal.h"
#include "mf_internal.h"

int sako__mf_check_options(const sako_mf_options *o, const char *fn)
{
    if (o->version != SAKO_MF_OPTIONS_VERSION)
        return sako__error(SAKO_INVALID, "%s: options version %u is not %d (use "
                           "SAKO_MF_OPTIONS_INIT)", fn, o->version, SAKO_MF_OPTIONS_VERSION);
    if (o->factors < 1 || o->factors > SAKO_MF_MAX_FACTORS)
        return sako__error(SAKO_INVALID, "%s: factors %u is not in 1..%u", fn, o->factors,
                           SAKO_MF_MAX_FACTORS);
    if (o->iterations < 1 || o->iterations > SAKO_MF_MAX_ITERATIONS)
        return sako__error(SAKO_INVALID, "%s: iterations %u is not in 1..%u", fn,
                           o->iterations, SAKO_MF_MAX_ITERATIONS);
    if (!(o->regularization >= 0.0 && o->regularization <= 1e12))
        return sako__error(SAKO_INVALID, "%s: regularization %g is not in [0, 1e12]", fn,
                           o->regularization);
    if (!(o->alpha > 0.0 && o->alpha <= 1e12))
        return sako__error(SAKO_INVALID, "%s: alpha %g is not in (0, 1e12]", fn, o->alpha);
    if (o->cg_steps < 1 || o->cg_steps > o->factors)
        return sako__error(SAKO_INVALID, "%s: cg_steps %u is not in 1..factors (%u)", fn,
                           o->cg_steps, o->factors);
    if (o->threads > SAKO_MF_MAX_THREADS)
        return sako__error(SAKO_INVALID, "%s: threads %u is above %u (0 = online cores)", fn,
                           o->threads, SAKO_MF_MAX_THREADS);
    return SAKO_OK;
}

unsigned sako__mf_threads(const sako_mf_options *o)
{
    if (o->threads > 0)
        return o->threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        return 1;
    return n > (long)SAKO_MF_MAX_THREADS ? SAKO_MF_MAX_THREADS : (unsigned)n;
}

int sako__mf_check_csr(const sako_csr *r, const char *fn)
{
    if (!r)
        return sako__error(SAKO_MISUSE, "%s: matrix is NULL", fn);
    if (r->n_rows > INT32_MAX || r->n_cols > INT32_MAX)
        return sako__error(SAKO_RANGE, "%s: a %zu x %zu matrix is above INT32_MAX rows or "
                           "columns", fn, r->n_rows, r->n_cols);
    if (!r->indptr)
        return sako__error(SAKO_MISUSE, "%s: matrix indptr is NULL", fn);
    if (r->indptr[0] != 0)
        return sako__error(SAKO_INVALID, "%s: indptr[0] is %" PRId64 ", not 0", fn,
                           r->indptr[0]);
    for (size_t row = 0; row < r->n_rows; row++)
        if (r->indptr[row + 1] < r->indptr[row])
            return sako__error(SAKO_INVALID, "%s: row %zu: indptr[%zu] = %" PRId64 " is below "
                               "indptr[%zu] = %" PRId64 " (indptr must not decrease)", fn, row,
                               row + 1, r->indptr[row + 1], row, r->indptr[row]);
    int64_t nnz = r->indptr[r->n_rows];
    if (nnz > 0 && (!r->indices || !r->values))
        return sako__error(SAKO_MISUSE, "%s: matrix indices or values is NULL with %" PRId64
                           " entries", fn, nnz);
    for (size_t row = 0; row < r->n_rows; row++) {
        int64_t prev = -1;
        for (int64_t e = r->indptr[row]; e < r->indptr[row + 1]; e++) {
            int32_t col = r->indices[e];
            float v = r->values[e];
            if (col < 0 || (size_t)col >= r->n_cols)
                return sako__error(SAKO_INVALID, "%s: row %zu, entry %" PRId64 ": column %" PRId32
                                   " is not in [0, %zu)", fn, row, e, col, r->n_cols);
            if (col <= prev)
                return sako__error(SAKO_INVALID, "%s: row %zu, entry %" PRId64 ": column %" PRId32
                                   " %s (columns of a row must ascend)", fn, row, e, col,
                                   col == prev ? "is repeated" : "is below the previous one");
            if (!(v > 0.0f) || !isfinite(v))
                return sako__error(SAKO_INVALID, "%s: row %zu, entry %" PRId64 " (column %" PRId32
                                   "): value %g is not > 0 and finite", fn, row, e, col,
                                   (double)v);
            prev = col;
        }
    }
    return SAKO_OK;
}
