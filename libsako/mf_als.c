/* Implicit ALS training (Hu, Koren, Volinsky 2008) with conjugate-gradient row
 * solves: the public sako_mf_fit() and the engine's sako__mf_train(). Each half-
 * iteration computes the fixed side's Gram matrix once, then solves the rows of the
 * other side in parallel; a row's solve reads only the fixed side, so the result
 * does not depend on which thread solved it, nor on how many there were. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "mf_internal.h"
#include "sampler_internal.h"

/* Rows a worker takes at a time: small enough to balance power-law row lengths,
 * large enough that the shared counter is touched rarely. */
#define CHUNK_ROWS 64

/* One side's rows in compressed form (the matrix or its transpose). */
typedef struct side {
    size_t n;
    const int64_t *ptr;
    const int32_t *idx;
    const float *val;
} side;

typedef struct half_job {
    side rows;          /* the rows being solved */
    const float *y;     /* the fixed side's factors */
    float *x;           /* this side's factors, updated in place */
    uint32_t k, steps;
    int exact;
    float alpha;
    double alpha_d, lambda;
    const float *g;     /* Y^T Y + lambda I in float (CG) */
    const double *gd;   /* Y^T Y in double (exact) */
    size_t next;        /* next row to take (atomic) */
    int status;         /* first failure (atomic) */
} half_job;

static void set_status(int *status, int rc)
{
    int ok = SAKO_OK;
    __atomic_compare_exchange_n(status, &ok, rc, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static void *half_worker(void *arg)
{
    half_job *job = arg;
    sako_mf_scratch s;
    if (sako__mf_scratch_init(&s, job->k, job->exact) != SAKO_OK) {
        set_status(&job->status, SAKO_NOMEM);
        return NULL;
    }
    for (;;) {
        if (__atomic_load_n(&job->status, __ATOMIC_RELAXED) != SAKO_OK)
            break;
        size_t lo = __atomic_fetch_add(&job->next, (size_t)CHUNK_ROWS, __ATOMIC_RELAXED);
        if (lo >= job->rows.n)
            break;
        size_t hi = lo + CHUNK_ROWS < job->rows.n ? lo + CHUNK_ROWS : job->rows.n;
        for (size_t u = lo; u < hi; u++) {
            int64_t b = job->rows.ptr[u];
            sako_mf_row row = {job->rows.idx + b, job->rows.val + b,
                               (size_t)(job->rows.ptr[u + 1] - b)};
            float *xu = job->x + u * job->k;
            if (job->exact) {
                int rc = sako__mf_solve_exact(job->gd, job->lambda, job->y, job->k,
                                              job->alpha_d, &row, &s, xu);
                if (rc != SAKO_OK) {
                    set_status(&job->status, rc);
                    break;
                }
            } else {
                sako__mf_solve_cg(job->g, job->y, job->k, job->alpha, &row, job->steps, &s, xu);
            }
        }
    }
    sako__mf_scratch_free(&s);
    return NULL;
}

/* Solve every row of `rows` into x against the fixed y (n_y rows). gd and g are
 * scratch of k x k. */
static int half_iteration(const side *rows, const float *y, size_t n_y, float *x,
                          const sako_mf_options *o, int exact, unsigned threads, double *gd,
                          float *g)
{
    uint32_t k = o->factors;
    int rc = sako__mf_gram(y, n_y, k, threads, gd);
    if (rc != SAKO_OK)
        return rc;
    for (uint32_t a = 0; a < k; a++)
        for (uint32_t b = 0; b < k; b++)
            g[(size_t)a * k + b] = (float)(gd[(size_t)a * k + b] + (a == b ? o->regularization : 0.0));
    half_job job = {*rows, y, x, k, o->cg_steps, exact, (float)o->alpha, o->alpha,
                    o->regularization, g, gd, 0, SAKO_OK};
    size_t chunks = (rows->n + CHUNK_ROWS - 1) / CHUNK_ROWS;
    if (threads > chunks)
        threads = chunks > 0 ? (unsigned)chunks : 1;
    pthread_t tid[SAKO_MF_MAX_THREADS];
    unsigned started = 0;
    for (unsigned t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, half_worker, &job) != 0)
            break; /* fewer threads: the same result, later */
        started++;
    }
    half_worker(&job);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (job.status == SAKO_NOMEM)
        return sako__error(SAKO_NOMEM, "matrix factorisation: out of memory (scratch)");
    if (job.status != SAKO_OK)
        return sako__error(job.status, "matrix factorisation: a row's system is not positive "
                           "definite (exact solves need regularization > 0 here)");
    return SAKO_OK;
}

/* The transpose of r (items x users), by a counting sort: users ascend within each
 * item, as CSR requires. */
static int transpose(const sako_csr *r, int64_t **ptr_out, int32_t **idx_out, float **val_out)
{
    size_t nnz = (size_t)r->indptr[r->n_rows];
    int64_t *ptr = calloc(r->n_cols + 1, sizeof *ptr);
    int32_t *idx = malloc((nnz ? nnz : 1) * sizeof *idx);
    float *val = malloc((nnz ? nnz : 1) * sizeof *val);
    if (!ptr || !idx || !val) {
        free(ptr);
        free(idx);
        free(val);
        return sako__error(SAKO_NOMEM, "matrix factorisation: out of memory (transposing "
                           "%zu entries)", nnz);
    }
    for (size_t e = 0; e < nnz; e++)
        ptr[r->indices[e] + 1]++;
    for (size_t c = 0; c < r->n_cols; c++)
        ptr[c + 1] += ptr[c];
    int64_t *fill = malloc((r->n_cols ? r->n_cols : 1) * sizeof *fill);
    if (!fill) {
        free(ptr);
        free(idx);
        free(val);
        return sako__error(SAKO_NOMEM, "matrix factorisation: out of memory (transposing)");
    }
    memcpy(fill, ptr, r->n_cols * sizeof *fill);
    for (size_t u = 0; u < r->n_rows; u++) {
        for (int64_t e = r->indptr[u]; e < r->indptr[u + 1]; e++) {
            int64_t at = fill[r->indices[e]]++;
            idx[at] = (int32_t)u;
            val[at] = r->values[e];
        }
    }
    free(fill);
    *ptr_out = ptr;
    *idx_out = idx;
    *val_out = val;
    return SAKO_OK;
}

/* Uniform in [0, SAKO_MF_INIT_SCALE): 24 random bits per float, exact in float. */
static void init_factors(sako_rng *rng, float *f, size_t count)
{
    for (size_t j = 0; j < count; j++)
        f[j] = (float)(sako__rng_next(rng) >> 40) * 0x1.0p-24f * SAKO_MF_INIT_SCALE;
}

static int check_sizes(const sako_csr *r, uint32_t k, const float *uf, const float *vf,
                       const char *fn)
{
    if (r->n_rows > 0 && !uf)
        return sako__error(SAKO_MISUSE, "%s: user_factors is NULL with %zu rows", fn, r->n_rows);
    if (r->n_cols > 0 && !vf)
        return sako__error(SAKO_MISUSE, "%s: item_factors is NULL with %zu columns", fn,
                           r->n_cols);
    size_t most = r->n_rows > r->n_cols ? r->n_rows : r->n_cols;
    if (most > SIZE_MAX / sizeof(float) / k)
        return sako__error(SAKO_RANGE, "%s: %zu x %u factors do not fit in memory", fn, most, k);
    return SAKO_OK;
}

int sako__mf_train(const sako_csr *r, const sako_mf_options *opt, int exact,
                   sako_mf_progress progress, void *arg, const char *fn,
                   float *user_factors, float *item_factors)
{
    sako_mf_options defaults = SAKO_MF_OPTIONS_INIT;
    const sako_mf_options *o = opt ? opt : &defaults;
    int rc = sako__mf_check_options(o, fn);
    if (rc == SAKO_OK)
        rc = sako__mf_check_csr(r, fn);
    if (rc == SAKO_OK)
        rc = check_sizes(r, o->factors, user_factors, item_factors, fn);
    if (rc != SAKO_OK)
        return rc;
    uint32_t k = o->factors;
    unsigned threads = sako__mf_threads(o);

    side users = {r->n_rows, r->indptr, r->indices, r->values};
    side items = {r->n_cols, NULL, NULL, NULL};
    int64_t *tptr = NULL;
    int32_t *tidx = NULL;
    float *tval = NULL;
    rc = transpose(r, &tptr, &tidx, &tval);
    if (rc != SAKO_OK)
        return rc;
    items.ptr = tptr;
    items.idx = tidx;
    items.val = tval;

    double *gd = malloc((size_t)k * k * sizeof *gd);
    float *g = malloc((size_t)k * k * sizeof *g);
    if (!gd || !g) {
        rc = sako__error(SAKO_NOMEM, "%s: out of memory (Gram matrix)", fn);
        goto done;
    }
    sako_rng rng;
    sako__rng_seed(&rng, o->seed ? o->seed : SAKO_MF_DEFAULT_SEED);
    init_factors(&rng, user_factors, r->n_rows * k);
    init_factors(&rng, item_factors, r->n_cols * k);

    for (uint32_t it = 1; it <= o->iterations; it++) {
        rc = half_iteration(&users, item_factors, r->n_cols, user_factors, o, exact, threads,
                            gd, g);
        if (rc == SAKO_OK)
            rc = half_iteration(&items, user_factors, r->n_rows, item_factors, o, exact,
                                threads, gd, g);
        if (rc == SAKO_OK && progress)
            rc = progress(arg, it, user_factors, item_factors);
        if (rc != SAKO_OK)
            break;
    }
done:
    free(gd);
    free(g);
    free(tptr);
    free(tidx);
    free(tval);
    return rc;
}

int sako_mf_fit(const sako_csr *r, const sako_mf_options *opt, float *user_factors,
                float *item_factors)
{
    sako__error_clear();
    return sako__mf_train(r, opt, 0, NULL, NULL, "sako_mf_fit", user_factors, item_factors);
}

/* sum over all cells of c (p - d)^2 = sum_u [x_u^T (Y^T Y) x_u + sum_{i in u}
 * (c_ui (1 - d_ui)^2 - d_ui^2)], d = x_u.y_i: the unobserved cells (c = 1, p = 0)
 * come from the Gram matrix without visiting them. */
int sako__mf_loss(const sako_csr *r, const sako_mf_options *opt, const float *user_factors,
                  const float *item_factors, double *loss_out)
{
    sako_mf_options defaults = SAKO_MF_OPTIONS_INIT;
    const sako_mf_options *o = opt ? opt : &defaults;
    int rc = sako__mf_check_options(o, "sako__mf_loss");
    if (rc == SAKO_OK)
        rc = sako__mf_check_csr(r, "sako__mf_loss");
    if (rc == SAKO_OK)
        rc = check_sizes(r, o->factors, user_factors, item_factors, "sako__mf_loss");
    if (rc != SAKO_OK)
        return rc;
    uint32_t k = o->factors;
    double *gram = malloc((size_t)k * k * sizeof *gram);
    if (!gram)
        return sako__error(SAKO_NOMEM, "sako__mf_loss: out of memory");
    rc = sako__mf_gram(item_factors, r->n_cols, k, 1, gram);
    if (rc != SAKO_OK) {
        free(gram);
        return rc;
    }
    double loss = 0.0, norms = 0.0;
    for (size_t u = 0; u < r->n_rows; u++) {
        const float *x = user_factors + u * k;
        for (uint32_t a = 0; a < k; a++) {
            double ga = 0.0;
            for (uint32_t b = 0; b < k; b++)
                ga += gram[(size_t)a * k + b] * x[b];
            loss += x[a] * ga;
            norms += (double)x[a] * x[a];
        }
        for (int64_t e = r->indptr[u]; e < r->indptr[u + 1]; e++) {
            const float *y = item_factors + (size_t)r->indices[e] * k;
            double d = 0.0;
            for (uint32_t a = 0; a < k; a++)
                d += (double)x[a] * y[a];
            double c = 1.0 + o->alpha * r->values[e];
            loss += c * (1.0 - d) * (1.0 - d) - d * d;
        }
    }
    for (size_t j = 0; j < r->n_cols * (size_t)k; j++)
        norms += (double)item_factors[j] * item_factors[j];
    free(gram);
    *loss_out = loss + o->regularization * norms;
    return SAKO_OK;
}
