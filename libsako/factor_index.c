/* An inverted-file index over item factors: k-means lists, probed by inner product.
 *
 * Why this method: a per-user candidate list for every user would have to be
 * refreshed for every folded-in user and costs memory per user (factors.c caches the
 * answers of recently served users only, bounded); the lists here cost one copy of the
 * vectors (contiguous per list) plus 2 sqrt(n) centroids and radii, are built once per
 * training, and a query costs O(sqrt(n) k + probe * n/sqrt(n) * k). Clusters are found
 * by Lloyd's k-means (L2) on a sample, then every vector goes to its nearest centroid;
 * a query ranks centroids by inner product (the score it wants), as IVF indexes for
 * inner products do, and skips a list whose bound (q.c + |q| radius) is below the
 * want-th score found so far. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "factor_index_internal.h"
#include "topk_internal.h"

#define KMEANS_ITERATIONS 10
#define KMEANS_SAMPLE_PER_LIST 32
#define KMEANS_SAMPLE_MAX 65536
#define LISTS_MAX SAKO_FACTOR_INDEX_LISTS_MAX
/* Lists per sqrt(n): twice as many lists as the classic sqrt(n), each half as long,
 * found 0.94 of the exact top 20 at 16 probes instead of 0.79 on the 50k benchmark
 * (docs/benchmarks.md); ranking the centroids costs a dot product per list. */
#define LISTS_PER_SQRT 2.0

struct sako_factor_index {
    uint32_t k;
    size_t n_lists, n_rows;
    float *centroids;        /* n_lists x k */
    float *radius;           /* n_lists: the farthest member's distance from the centroid */
    size_t *start;           /* n_lists + 1: list l holds rows start[l] .. start[l+1]-1 */
    uint32_t *rows;          /* the item row of each indexed vector, in list order */
    float *vecs;             /* n_rows x k, in list order (contiguous scans) */
};

static uint64_t next_rand(uint64_t *s)
{
    /* splitmix64: deterministic from the seed, good enough to pick samples */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Eight lanes at a time in GCC vector extensions (without -ffast-math the compiler
 * may not reorder a scalar sum into vector lanes; these lanes are ours, summed in a
 * fixed order, so the result does not depend on the instruction set). The eight lanes
 * are two 16-byte halves: a 32-byte vector type on a target without 32-byte registers
 * (x86-64's baseline, -O2) is lowered through the stack, three times the instructions;
 * the halves keep the same lanes and the same sums on every target. */
typedef float fv4 __attribute__((vector_size(16)));
typedef float fv4u __attribute__((vector_size(16), aligned(4), may_alias));

static inline float dot(const float *a, const float *b, uint32_t k)
{
    uint32_t j = 0;
    float s = 0.0f;
    if (k >= 8) {
        fv4 lo = *(const fv4u *)a * *(const fv4u *)b;
        fv4 hi = *(const fv4u *)(a + 4) * *(const fv4u *)(b + 4);
        for (j = 8; j + 8 <= k; j += 8) {
            lo += *(const fv4u *)(a + j) * *(const fv4u *)(b + j);
            hi += *(const fv4u *)(a + j + 4) * *(const fv4u *)(b + j + 4);
        }
        s = ((lo[0] + hi[0]) + (lo[1] + hi[1])) + ((lo[2] + hi[2]) + (lo[3] + hi[3]));
    }
    for (; j < k; j++)
        s += a[j] * b[j];
    return s;
}

float sako__factor_index_dot(const float *a, const float *b, uint32_t k) { return dot(a, b, k); }

/* The centroid nearest to v (L2): argmin |c|^2 - 2 v.c. */
static size_t nearest(const float *cent, const float *norm2, size_t n_lists, const float *v,
                      uint32_t k)
{
    size_t best = 0;
    float best_d = INFINITY;
    for (size_t l = 0; l < n_lists; l++) {
        float d = norm2[l] - 2.0f * dot(cent + l * k, v, k);
        if (d < best_d) {
            best_d = d;
            best = l;
        }
    }
    return best;
}

/* Every listed row to its nearest centroid, the rows split in contiguous ranges over
 * `threads` threads (each writes its own range of `out`: the same answer for any
 * thread count). */
typedef struct assign_job {
    const float *cent, *norm2, *items;
    const uint32_t *rows;
    size_t n_lists, from, to;
    uint32_t k;
    uint32_t *out;
} assign_job;

static void *assign_run(void *arg)
{
    assign_job *j = arg;
    for (size_t i = j->from; i < j->to; i++)
        j->out[i] = (uint32_t)nearest(j->cent, j->norm2, j->n_lists,
                                      j->items + (size_t)j->rows[i] * j->k, j->k);
    return NULL;
}

#define ASSIGN_THREADS_MAX 64

static void assign_rows(const float *cent, const float *norm2, size_t n_lists, const float *items,
                        const uint32_t *rows, size_t n, uint32_t k, unsigned threads,
                        uint32_t *out)
{
    if (threads < 1 || n < 4096)
        threads = 1;
    if (threads > ASSIGN_THREADS_MAX)
        threads = ASSIGN_THREADS_MAX;
    assign_job job[ASSIGN_THREADS_MAX];
    pthread_t tid[ASSIGN_THREADS_MAX];
    int started[ASSIGN_THREADS_MAX] = { 0 };
    for (unsigned t = 0; t < threads; t++) {
        assign_job j = { cent, norm2, items, rows, n_lists, n * t / threads,
                         n * (t + 1) / threads, k, out };
        job[t] = j;
    }
    for (unsigned t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, assign_run, &job[t]) == 0;
    assign_run(&job[0]);
    for (unsigned t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            assign_run(&job[t]); /* no thread: this one does the range */
    }
}

static void centroid_norms(const float *cent, size_t n_lists, uint32_t k, float *norm2)
{
    for (size_t l = 0; l < n_lists; l++)
        norm2[l] = dot(cent + l * k, cent + l * k, k);
}

int sako__factor_index_build(const float *items, const uint8_t *has, const uint32_t *order,
                             size_t n, uint32_t k, uint64_t seed, unsigned threads,
                             sako_factor_index **out)
{
    *out = NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += has[i] != 0;
    if (m == 0 || k == 0)
        return SAKO_OK;
    size_t n_lists = (size_t)ceil(LISTS_PER_SQRT * sqrt((double)m));
    if (n_lists > LISTS_MAX)
        n_lists = LISTS_MAX;
    if (n_lists > m) /* (a handful of vectors: one list each) */
        n_lists = m;
    sako_factor_index *x = calloc(1, sizeof *x);
    uint32_t *member = malloc(m * sizeof *member);    /* rows with a vector, in `order` */
    uint32_t *assign = malloc(m * sizeof *assign);
    size_t n_sample = n_lists * KMEANS_SAMPLE_PER_LIST;
    if (n_sample > KMEANS_SAMPLE_MAX)
        n_sample = KMEANS_SAMPLE_MAX;
    if (n_sample > m)
        n_sample = m;
    uint32_t *sample = malloc(n_sample * sizeof *sample);
    double *sum = malloc(n_lists * k * sizeof *sum);
    size_t *count = malloc(n_lists * sizeof *count);
    float *norm2 = malloc(n_lists * sizeof *norm2);
    if (x) {
        x->k = k;
        x->n_lists = n_lists;
        x->n_rows = m;
        x->centroids = malloc(n_lists * k * sizeof *x->centroids);
        x->radius = calloc(n_lists, sizeof *x->radius);
        x->start = calloc(n_lists + 1, sizeof *x->start);
        x->rows = malloc(m * sizeof *x->rows);
        x->vecs = malloc(m * k * sizeof *x->vecs);
    }
    if (!x || !member || !assign || !sample || !sum || !count || !norm2 || !x->centroids ||
        !x->radius || !x->start || !x->rows || !x->vecs) {
        free(member), free(assign), free(sample), free(sum), free(count), free(norm2);
        sako__factor_index_free(x);
        return sako__error(SAKO_NOMEM, "out of memory building the factor index of %zu items", m);
    }
    m = 0;
    for (size_t i = 0; i < n; i++)
        if (has[order[i]])
            member[m++] = order[i];
    /* An evenly spaced sample (in id order), then the first centroids drawn from it. */
    for (size_t s = 0; s < n_sample; s++)
        sample[s] = member[(size_t)((double)s * (double)m / (double)n_sample)];
    uint64_t rs = seed ? seed : 0x5A4B4F;
    /* n_lists = ceil(sqrt(m)) <= n_sample: a partial Fisher-Yates picks distinct points. */
    for (size_t l = 0; l < n_lists; l++) {
        size_t r = l + (size_t)(next_rand(&rs) % (n_sample - l));
        uint32_t t = sample[l];
        sample[l] = sample[r];
        sample[r] = t;
        memcpy(x->centroids + l * k, items + (size_t)sample[l] * k, k * sizeof *x->centroids);
    }
    for (int it = 0; it < KMEANS_ITERATIONS; it++) {
        centroid_norms(x->centroids, n_lists, k, norm2);
        memset(sum, 0, n_lists * k * sizeof *sum);
        memset(count, 0, n_lists * sizeof *count);
        assign_rows(x->centroids, norm2, n_lists, items, sample, n_sample, k, threads, assign);
        for (size_t s = 0; s < n_sample; s++) {
            const float *v = items + (size_t)sample[s] * k;
            size_t l = assign[s];
            count[l]++;
            for (uint32_t j = 0; j < k; j++)
                sum[l * k + j] += v[j];
        }
        for (size_t l = 0; l < n_lists; l++) {
            if (count[l] == 0) { /* an empty list starts again from a random sample point */
                size_t r = (size_t)(next_rand(&rs) % n_sample);
                memcpy(x->centroids + l * k, items + (size_t)sample[r] * k, k * sizeof(float));
                continue;
            }
            for (uint32_t j = 0; j < k; j++)
                x->centroids[l * k + j] = (float)(sum[l * k + j] / (double)count[l]);
        }
    }
    /* Every vector to its nearest centroid; lists laid out contiguously. */
    centroid_norms(x->centroids, n_lists, k, norm2);
    assign_rows(x->centroids, norm2, n_lists, items, member, m, k, threads, assign);
    for (size_t i = 0; i < m; i++)
        x->start[assign[i] + 1]++;
    for (size_t l = 0; l < n_lists; l++)
        x->start[l + 1] += x->start[l];
    memcpy(count, x->start, n_lists * sizeof *count);
    for (size_t i = 0; i < m; i++) {
        size_t at = count[assign[i]]++;
        x->rows[at] = member[i];
        memcpy(x->vecs + at * k, items + (size_t)member[i] * k, k * sizeof *x->vecs);
    }
    for (size_t l = 0; l < n_lists; l++) {
        const float *c = x->centroids + l * k;
        for (size_t at = x->start[l]; at < x->start[l + 1]; at++) {
            double d2 = 0.0;
            for (uint32_t j = 0; j < k; j++) {
                double d = (double)x->vecs[at * k + j] - (double)c[j];
                d2 += d * d;
            }
            /* rounded up: the bound must hold for the float dot products too */
            float r = (float)sqrt(d2) * (1.0f + 1e-5f) + 1e-6f;
            if (r > x->radius[l])
                x->radius[l] = r;
        }
    }
    free(member), free(assign), free(sample), free(sum), free(count), free(norm2);
    *out = x;
    return SAKO_OK;
}

size_t sako__factor_index_lists(const sako_factor_index *x) { return x ? x->n_lists : 0; }

/* 1/32 of the lists, at least 8 and at most 64: 14 of 448 lists at 50k items (recall@20
 * 0.93 against the exact scan on the benchmark), 54 of 1,752 at 1M (0.67; the
 * benchmark's 10,000 tastes do not cluster in 64 factors); every list probed is
 * scanned only if its bound can still place a row. */
size_t sako__factor_index_default_probe(const sako_factor_index *x)
{
    if (!x)
        return 0;
    size_t p = x->n_lists / 32;
    if (p < 8)
        p = 8;
    if (p > 64)
        p = 64;
    return p > x->n_lists ? x->n_lists : p;
}

size_t sako__factor_index_scratch_size(const sako_factor_index *x, size_t want)
{
    return x ? (x->n_lists + want) * (sizeof(double) + sizeof(uint32_t)) : 0;
}

/* The best `want` of the scanned rows, best first, into the outputs. */
static size_t drain(sako_topk *h, uint32_t *out_items, float *out_scores)
{
    size_t n = sako__topk_sort(h);
    for (size_t j = 0; j < n; j++) {
        out_items[j] = h->id[j];
        out_scores[j] = (float)h->v[j];
    }
    return n;
}

static void scan(const sako_factor_index *x, size_t l, const float *query, sako_topk *h)
{
    uint32_t k = x->k;
    const float *v = x->vecs + x->start[l] * k;
    for (size_t at = x->start[l]; at < x->start[l + 1]; at++, v += k) {
        float d = dot(v, query, k);
        if (sako__topk_admits(h, d))
            sako__topk_push(h, d, x->rows[at]);
    }
}

size_t sako__factor_index_search(const sako_factor_index *x, const float *query, size_t probe,
                                 size_t want, void *scratch, uint32_t *out_items,
                                 float *out_scores)
{
    if (!x || want == 0)
        return 0;
    if (probe == 0)
        probe = sako__factor_index_default_probe(x);
    if (probe > x->n_lists)
        probe = x->n_lists;
    double *lv = scratch, *rv = lv + x->n_lists;
    uint32_t *li = (uint32_t *)(rv + want), *ri = li + x->n_lists;
    /* Lists by q.c, as IVF indexes for inner products rank them; a list is skipped
     * when the bound on what it can hold, q.c + |q| r >= q.y for every y within r of c
     * (Cauchy-Schwarz), is below the want-th score found so far. */
    float qn = sqrtf(dot(query, query, x->k));
    sako_topk lists = { lv, li, 0, probe };
    for (size_t l = 0; l < x->n_lists; l++)
        sako__topk_push(&lists, dot(x->centroids + l * x->k, query, x->k), (uint32_t)l);
    size_t n_probe = sako__topk_sort(&lists);
    sako_topk best = { rv, ri, 0, want };
    for (size_t p = 0; p < n_probe; p++) {
        uint32_t l = lists.id[p];
        if (lists.v[p] + qn * x->radius[l] < sako__topk_floor(&best)) {
            continue;
        }
        scan(x, l, query, &best);
    }
    return drain(&best, out_items, out_scores);
}

size_t sako__factor_index_exact(const sako_factor_index *x, const float *query, size_t want,
                                void *scratch, uint32_t *out_items, float *out_scores)
{
    if (!x || want == 0)
        return 0;
    double *rv = (double *)scratch + x->n_lists;
    uint32_t *ri = (uint32_t *)(rv + want) + x->n_lists;
    sako_topk best = { rv, ri, 0, want };
    for (size_t l = 0; l < x->n_lists; l++)
        scan(x, l, query, &best);
    return drain(&best, out_items, out_scores);
}

size_t sako__factor_index_bytes(const sako_factor_index *x)
{
    if (!x)
        return 0;
    return sizeof *x + x->n_lists * (x->k + 1) * sizeof(float) + (x->n_lists + 1) * sizeof(size_t) +
           x->n_rows * (sizeof(uint32_t) + x->k * sizeof(float));
}

void sako__factor_index_free(sako_factor_index *x)
{
    if (!x)
        return;
    free(x->centroids);
    free(x->radius);
    free(x->start);
    free(x->rows);
    free(x->vecs);
    free(x);
}
