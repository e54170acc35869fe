/* Y^T Y of a factor matrix: the dense part of every row's system in ALS, and the
 * cache of fold-in. Summed over a fixed partition of the rows into blocks, each in
 * double, the blocks added in order: the result depends on (Y, n, k) only, never on
 * the number of threads. Within a block, tiles of TILE rows are summed in float
 * (four rows per pass over the tile's k x k accumulator, vectorised) and each tile
 * added to the block's double sum: float error over at most TILE products, double
 * over the rest. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "mf_internal.h"

#define TILE 32
#define MAX_BLOCKS 64
#define MIN_BLOCK_ROWS 2048
#define PARTIALS_BYTES (64u << 20) /* at most this much for the blocks' double sums */

/* t (k x k float, upper triangle from each row's aligned-down diagonal) += the
 * outer products of rows y[0..m) */
SAKO_MF_CLONES
static void tile_add(float *t, const float *y, size_t m, uint32_t k)
{
    size_t r = 0;
    for (; r + 4 <= m; r += 4) {
        const float *y0 = y + r * k, *y1 = y0 + k, *y2 = y1 + k, *y3 = y2 + k;
        for (uint32_t a = 0; a < k; a++) {
            float *ta = t + (size_t)a * k;
            sako_v8 w0 = SAKO_V8_SET1(y0[a]), w1 = SAKO_V8_SET1(y1[a]);
            sako_v8 w2 = SAKO_V8_SET1(y2[a]), w3 = SAKO_V8_SET1(y3[a]);
            uint32_t b = a & ~7u;
            for (; b + 8 <= k; b += 8) {
                sako_v8 s = (w0 * SAKO_V8_LOAD(y0 + b) + w1 * SAKO_V8_LOAD(y1 + b)) +
                            (w2 * SAKO_V8_LOAD(y2 + b) + w3 * SAKO_V8_LOAD(y3 + b));
                SAKO_V8_STORE(ta + b, SAKO_V8_LOAD(ta + b) + s);
            }
            for (; b < k; b++)
                ta[b] += (y0[a] * y0[b] + y1[a] * y1[b]) + (y2[a] * y2[b] + y3[a] * y3[b]);
        }
    }
    for (; r < m; r++) {
        const float *y0 = y + r * k;
        for (uint32_t a = 0; a < k; a++) {
            float *ta = t + (size_t)a * k;
            for (uint32_t b = a & ~7u; b < k; b++)
                ta[b] += y0[a] * y0[b];
        }
    }
}

typedef struct gram_job {
    const float *y;
    size_t n, block_rows;
    uint32_t k;
    unsigned n_blocks;
    unsigned next;        /* next block to take (atomic) */
    double *partials;     /* n_blocks x k x k */
    int status;           /* first failure of a worker (atomic) */
} gram_job;

static void block_sum(gram_job *job, unsigned blk, float *tile)
{
    uint32_t k = job->k;
    size_t kk = (size_t)k * k;
    double *d = job->partials + kk * blk;
    memset(d, 0, kk * sizeof *d);
    size_t lo = (size_t)blk * job->block_rows;
    size_t hi = lo + job->block_rows < job->n ? lo + job->block_rows : job->n;
    for (size_t r = lo; r < hi; r += TILE) {
        size_t m = hi - r < TILE ? hi - r : TILE;
        memset(tile, 0, kk * sizeof *tile);
        tile_add(tile, job->y + r * k, m, k);
        for (uint32_t a = 0; a < k; a++)
            for (uint32_t b = a; b < k; b++)
                d[(size_t)a * k + b] += tile[(size_t)a * k + b];
    }
}

static void *gram_worker(void *arg)
{
    gram_job *job = arg;
    float *tile = malloc((size_t)job->k * job->k * sizeof *tile);
    if (!tile) {
        int ok = SAKO_OK;
        __atomic_compare_exchange_n(&job->status, &ok, SAKO_NOMEM, 0, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
        return NULL;
    }
    for (;;) {
        unsigned blk = __atomic_fetch_add(&job->next, 1u, __ATOMIC_RELAXED);
        if (blk >= job->n_blocks)
            break;
        block_sum(job, blk, tile);
    }
    free(tile);
    return NULL;
}

int sako__mf_gram(const float *y, size_t n, uint32_t k, unsigned threads, double *gram)
{
    size_t kk = (size_t)k * k;
    /* The partition depends on (n, k) only. */
    size_t n_blocks = (n + MIN_BLOCK_ROWS - 1) / MIN_BLOCK_ROWS;
    size_t cap = PARTIALS_BYTES / (kk * sizeof(double));
    if (n_blocks > MAX_BLOCKS)
        n_blocks = MAX_BLOCKS;
    if (n_blocks > cap)
        n_blocks = cap;
    if (n_blocks < 1)
        n_blocks = 1;
    gram_job job = {y, n, (n + n_blocks - 1) / n_blocks, k, (unsigned)n_blocks, 0, NULL, SAKO_OK};
    if (job.block_rows == 0)
        job.block_rows = 1;
    job.partials = malloc(n_blocks * kk * sizeof(double));
    if (!job.partials)
        return sako__error(SAKO_NOMEM, "matrix factorisation: out of memory (Gram matrix)");

    if (threads > n_blocks)
        threads = (unsigned)n_blocks;
    pthread_t tid[SAKO_MF_MAX_THREADS];
    unsigned started = 0;
    for (unsigned t = 1; t < threads; t++) {
        if (pthread_create(&tid[started], NULL, gram_worker, &job) != 0)
            break; /* fewer threads: the same result, later */
        started++;
    }
    gram_worker(&job);
    for (unsigned t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (job.status != SAKO_OK) {
        free(job.partials);
        return sako__error(job.status, "matrix factorisation: out of memory (Gram matrix)");
    }
    for (uint32_t a = 0; a < k; a++) {
        for (uint32_t b = a; b < k; b++) {
            double s = 0.0;
            for (size_t blk = 0; blk < n_blocks; blk++)
                s += job.partials[kk * blk + (size_t)a * k + b];
            gram[(size_t)a * k + b] = s;
            gram[(size_t)b * k + a] = s;
        }
    }
    free(job.partials);
    return SAKO_OK;
}

int sako_mf_gram(const float *item_factors, size_t n_items, uint32_t factors, double *gram)
{
    sako__error_clear();
    if (!gram)
        return sako__error(SAKO_MISUSE, "sako_mf_gram: gram is NULL");
    if (factors < 1 || factors > SAKO_MF_MAX_FACTORS)
        return sako__error(SAKO_INVALID, "sako_mf_gram: factors %u is not in 1..%u", factors,
                           SAKO_MF_MAX_FACTORS);
    if (n_items > INT32_MAX)
        return sako__error(SAKO_RANGE, "sako_mf_gram: n_items %zu is above INT32_MAX", n_items);
    if (!item_factors && n_items > 0)
        return sako__error(SAKO_MISUSE, "sako_mf_gram: item_factors is NULL with %zu items",
                           n_items);
    return sako__mf_gram(item_factors, n_items, factors, 1, gram);
}
