/* Fold-in: one user's vector solved from the user's whole history against fixed
 * item factors, the same solve a training half-iteration performs for that row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "mf_internal.h"

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static int check_entries(const int32_t *items, const float *values, size_t n, size_t n_items)
{
    for (size_t e = 0; e < n; e++) {
        if (items[e] < 0 || (size_t)items[e] >= n_items)
            return sako__error(SAKO_INVALID, "sako_mf_fold_in: entry %zu: item %d is not in "
                               "[0, %zu)", e, items[e], n_items);
        if (!(values[e] > 0.0f) || !isfinite(values[e]))
            return sako__error(SAKO_INVALID, "sako_mf_fold_in: entry %zu (item %d): value %g "
                               "is not > 0 and finite", e, items[e], (double)values[e]);
    }
    if (n < 2)
        return SAKO_OK;
    int32_t *sorted = malloc(n * sizeof *sorted);
    if (!sorted)
        return sako__error(SAKO_NOMEM, "sako_mf_fold_in: out of memory");
    memcpy(sorted, items, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_i32);
    int rc = SAKO_OK;
    for (size_t e = 1; e < n && rc == SAKO_OK; e++) {
        if (sorted[e] == sorted[e - 1]) {
            size_t first = 0;
            while (items[first] != sorted[e])
                first++;
            size_t again = first + 1;
            while (items[again] != sorted[e])
                again++;
            rc = sako__error(SAKO_INVALID, "sako_mf_fold_in: entry %zu: item %d repeats entry "
                             "%zu (sum a user's values per item first)", again, sorted[e], first);
        }
    }
    free(sorted);
    return rc;
}

int sako_mf_fold_in(const float *item_factors, size_t n_items, const double *gram,
                    const int32_t *items, const float *values, size_t n,
                    const sako_mf_options *opt, int exact, float *x)
{
    sako__error_clear();
    sako_mf_options defaults = SAKO_MF_OPTIONS_INIT;
    const sako_mf_options *o = opt ? opt : &defaults;
    int rc = sako__mf_check_options(o, "sako_mf_fold_in");
    if (rc != SAKO_OK)
        return rc;
    uint32_t k = o->factors;
    if (!x)
        return sako__error(SAKO_MISUSE, "sako_mf_fold_in: x is NULL");
    if (!item_factors)
        return sako__error(SAKO_MISUSE, "sako_mf_fold_in: item_factors is NULL");
    if (n > 0 && (!items || !values))
        return sako__error(SAKO_MISUSE, "sako_mf_fold_in: items or values is NULL with %zu "
                           "entries", n);
    if (n_items > INT32_MAX)
        return sako__error(SAKO_RANGE, "sako_mf_fold_in: n_items %zu is above INT32_MAX",
                           n_items);
    if (exact != 0 && exact != 1)
        return sako__error(SAKO_INVALID, "sako_mf_fold_in: exact is %d, not 0 or 1", exact);
    if (!exact)
        for (uint32_t a = 0; a < k; a++)
            if (!isfinite(x[a]))
                return sako__error(SAKO_INVALID, "sako_mf_fold_in: warm start x[%u] is %g, "
                                   "not finite", a, (double)x[a]);
    rc = check_entries(items, values, n, n_items);
    if (rc != SAKO_OK)
        return rc;

    size_t kk = (size_t)k * k;
    double *own = NULL;
    if (!gram) {
        own = malloc(kk * sizeof *own);
        if (!own)
            return sako__error(SAKO_NOMEM, "sako_mf_fold_in: out of memory");
        rc = sako__mf_gram(item_factors, n_items, k, 1, own);
        if (rc != SAKO_OK) {
            free(own);
            return rc;
        }
        gram = own;
    } else {
        for (size_t j = 0; j < kk; j++)
            if (!isfinite(gram[j])) {
                return sako__error(SAKO_INVALID, "sako_mf_fold_in: gram[%zu][%zu] is %g, not "
                                   "finite", j / k, j % k, gram[j]);
            }
    }
    sako_mf_scratch s;
    rc = sako__mf_scratch_init(&s, k, exact);
    if (rc != SAKO_OK) {
        free(own);
        return rc;
    }
    sako_mf_row row = {items, values, n};
    if (exact) {
        rc = sako__mf_solve_exact(gram, o->regularization, item_factors, k, o->alpha, &row, &s, x);
    } else {
        float *g = malloc(kk * sizeof *g);
        if (!g) {
            rc = sako__error(SAKO_NOMEM, "sako_mf_fold_in: out of memory");
        } else {
            for (uint32_t a = 0; a < k; a++)
                for (uint32_t b = 0; b < k; b++)
                    g[(size_t)a * k + b] =
                        (float)(gram[(size_t)a * k + b] + (a == b ? o->regularization : 0.0));
            sako__mf_solve_cg(g, item_factors, k, (float)o->alpha, &row, o->cg_steps, &s, x);
            free(g);
        }
    }
    sako__mf_scratch_free(&s);
    free(own);
    return rc;
}
