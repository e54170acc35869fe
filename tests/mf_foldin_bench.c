/* Fold-in of one user against 100,000 item factors with their Gram matrix cached
 * (docs/benchmarks.md, "Matrix factorisation"): median and p90 of `calls` CG fold-ins
 * (3 steps, warm start) and exact ones (Cholesky).
 *   mf_foldin_bench [items per user (200)] [factors (64)] [calls (3000)] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sako.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t n_items = 100000;
    int n = argc > 1 ? atoi(argv[1]) : 200, k = argc > 2 ? atoi(argv[2]) : 64;
    int calls = argc > 3 ? atoi(argv[3]) : 3000;
    if (n < 1 || n > 100000 || k < 1 || k > 1024 || calls < 1) {
        fprintf(stderr, "usage: mf_foldin_bench [items 1..100000] [factors 1..1024] [calls]\n");
        return 2;
    }
    uint64_t st = 12345;
    float *y = malloc(n_items * (size_t)k * sizeof *y);
    double *gram = malloc((size_t)k * k * sizeof *gram), *t_cg = malloc(calls * sizeof(double));
    double *t_exact = malloc(calls * sizeof(double));
    int32_t *items = malloc(n * sizeof *items);
    float *vals = malloc(n * sizeof *vals), *x = malloc(k * sizeof *x);
    for (size_t j = 0; j < n_items * (size_t)k; j++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        y[j] = (float)((double)(st >> 11) * 0x1.0p-53 - 0.5) * 0.2f;
    }
    if (sako_mf_gram(y, n_items, (uint32_t)k, gram) != SAKO_OK)
        return fprintf(stderr, "%s\n", sako_errmsg()), 1;
    sako_mf_options o = SAKO_MF_OPTIONS_INIT;
    o.factors = (uint32_t)k;
    o.cg_steps = k < 3 ? (uint32_t)k : 3;
    for (int c = 0; c < calls; c++) {
        /* n distinct items: a stride coprime with the catalog size */
        for (int e = 0; e < n; e++) {
            items[e] = (int32_t)(((size_t)c * 7919 + (size_t)e * 4729) % n_items);
            vals[e] = (float)(1 + e % 3);
        }
        for (int a = 0; a < k; a++)
            x[a] = 0.01f * (float)(a % 7);
        double t = now();
        int rc = sako_mf_fold_in(y, n_items, gram, items, vals, (size_t)n, &o, 0, x);
        t_cg[c] = now() - t;
        t = now();
        rc |= sako_mf_fold_in(y, n_items, gram, items, vals, (size_t)n, &o, 1, x);
        t_exact[c] = now() - t;
        if (rc != SAKO_OK)
            return fprintf(stderr, "%s\n", sako_errmsg()), 1;
    }
    qsort(t_cg, calls, sizeof(double), cmp_double);
    qsort(t_exact, calls, sizeof(double), cmp_double);
    printf("fold-in of %d items at k = %d over %zu items, gram cached, %d calls: CG (%u steps) "
           "median %.1f us, p90 %.1f us; exact median %.1f us, p90 %.1f us\n", n, k, n_items,
           calls, o.cg_steps, t_cg[calls / 2] * 1e6, t_cg[calls * 9 / 10] * 1e6,
           t_exact[calls / 2] * 1e6, t_exact[calls * 9 / 10] * 1e6);
    free(y);
    free(gram);
    free(t_cg);
    free(t_exact);
    free(items);
    free(vals);
    free(x);
    return 0;
}
