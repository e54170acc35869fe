/* An inverted-file index over item factors: k-means lists, probed by inner product.
 *
 * Why this method: a per-user candidate list would have to be refreshed for every
 * folded-in user and costs memory per user; the lists here cost one copy of the
 * vectors plus sqrt(n) centroids, are built once per training, and a query costs
 * O(sqrt(n) k + probe * n/sqrt(n) * k). Clusters are found by Lloyd's k-means (L2) on
 * a sample, then every vector goes to its nearest centroid; a query ranks centroids
 * by inner product (the score it wants), as IVF indexes for inner products do. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "factor_index_internal.h"

#define KMEANS_ITERATIONS 10
#define KMEANS_SAMPLE_PER_LIST 32
#define KMEANS_SAMPLE_MAX 65536
#define LISTS_MAX 4096

struct sako_factor_index {
    uint32_t k;
    size_t n_lists, n_rows;
    float *centroids;        /* n_lists x k */
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
 * fixed order, so the result does not depend on the instruction set). */
typedef float fv8 __attribute__((vector_size(32)));
typedef float fv8u __attribute__((vector_size(32), aligned(4), may_alias));

static inline float dot(const float *a, const float *b, uint32_t k)
{
    uint32_t j = 0;
    float s = 0.0f;
    if (k >= 8) {
        fv8 acc = *(const fv8u *)a * *(const fv8u *)b;
        for (j = 8; j + 8 <= k; j += 8)
            acc += *(const fv8u *)(a + j) * *(const fv8u *)(b + j);
        s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
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

static void centroid_norms(const float *cent, size_t n_lists, uint32_t k, float *norm2)
{
    for (size_t l = 0; l < n_lists; l++)
        norm2[l] = dot(cent + l * k, cent + l * k, k);
}

int sako__factor_index_build(const float *items, const uint8_t *has, const uint32_t *order,
                             size_t n, uint32_t k, uint64_t seed, sako_factor_index **out)
{
    *out = NULL;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += has[i] != 0;
    if (m == 0 || k == 0)
        return SAKO_OK;
    size_t n_lists = (size_t)ceil(sqrt((double)m));
    if (n_lists > LISTS_MAX)
        n_lists = LISTS_MAX;
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
        x->start = calloc(n_lists + 1, sizeof *x->start);
        x->rows = malloc(m * sizeof *x->rows);
        x->vecs = malloc(m * k * sizeof *x->vecs);
    }
    if (!x || !member || !assign || !sample || !sum || !count || !norm2 || !x->centroids ||
        !x->start || !x->rows || !x->vecs) {
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
        for (size_t s = 0; s < n_sample; s++) {
            const float *v = items + (size_t)sample[s] * k;
            size_t l = nearest(x->centroids, norm2, n_lists, v, k);
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
    for (size_t i = 0; i < m; i++) {
        assign[i] = (uint32_t)nearest(x->centroids, norm2, n_lists, items + (size_t)member[i] * k, k);
        x->start[assign[i] + 1]++;
    }
    for (size_t l = 0; l < n_lists; l++)
        x->start[l + 1] += x->start[l];
    memcpy(count, x->start, n_lists * sizeof *count);
    for (size_t i = 0; i < m; i++) {
        size_t at = count[assign[i]]++;
        x->rows[at] = member[i];
        memcpy(x->vecs + at * k, items + (size_t)member[i] * k, k * sizeof *x->vecs);
    }
    free(member), free(assign), free(sample), free(sum), free(count), free(norm2);
    *out = x;
    return SAKO_OK;
}

size_t sako__factor_index_lists(const sako_factor_index *x) { return x ? x->n_lists : 0; }

/* About 1/16 of the lists, at least 8: recall@20 >= 0.95 on the tests' clustered
 * problem (tests/check_factors.c), and a scan of ~n/16 vectors... capped below. */
size_t sako__factor_index_default_probe(const sako_factor_index *x)
{
    if (!x)
        return 0;
    size_t p = x->n_lists / 16;
    if (p < 8)
        p = 8;
    if (p > 32)
        p = 32;
    return p > x->n_lists ? x->n_lists : p;
}

size_t sako__factor_index_scratch_size(const sako_factor_index *x)
{
    return x ? x->n_lists * (sizeof(float) + sizeof(uint32_t)) : 0;
}

/* A bounded min-heap of (score, row): the `want` best so far. Ties go to the lower row. */
static int worse(float a, uint32_t ra, float b, uint32_t rb)
{
    return a < b || (a == b && ra > rb);
}

static void heap_push(float *hv, uint32_t *hi, size_t *n, size_t cap, float v, uint32_t row)
{
    size_t i;
    if (*n < cap) {
        i = (*n)++;
        while (i > 0 && worse(v, row, hv[(i - 1) / 2], hi[(i - 1) / 2])) {
            hv[i] = hv[(i - 1) / 2];
            hi[i] = hi[(i - 1) / 2];
            i = (i - 1) / 2;
        }
    } else {
        if (!worse(hv[0], hi[0], v, row))
            return;
        i = 0;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= *n)
                break;
            if (c + 1 < *n && worse(hv[c + 1], hi[c + 1], hv[c], hi[c]))
                c++;
            if (!worse(hv[c], hi[c], v, row))
                break;
            hv[i] = hv[c];
            hi[i] = hi[c];
            i = c;
        }
    }
    hv[i] = v;
    hi[i] = row;
}

/* The heap emptied best first into the outputs. */
static size_t heap_drain(float *hv, uint32_t *hi, size_t n)
{
    size_t total = n;
    while (n > 1) {
        float v = hv[n - 1];
        uint32_t r = hi[n - 1];
        float top_v = hv[0];
        uint32_t top_r = hi[0];
        n--;
        size_t i = 0;
        for (;;) {
            size_t c = 2 * i + 1;
            if (c >= n)
                break;
            if (c + 1 < n && worse(hv[c + 1], hi[c + 1], hv[c], hi[c]))
                c++;
            if (!worse(hv[c], hi[c], v, r))
                break;
            hv[i] = hv[c];
            hi[i] = hi[c];
            i = c;
        }
        hv[i] = v;
        hi[i] = r;
        hv[n] = top_v;
        hi[n] = top_r;
    }
    return total;
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
    float *lv = scratch;
    uint32_t *li = (uint32_t *)(lv + x->n_lists);
    size_t n_probe = 0;
    for (size_t l = 0; l < x->n_lists; l++)
        heap_push(lv, li, &n_probe, probe, dot(x->centroids + l * x->k, query, x->k), (uint32_t)l);
    size_t n = 0;
    for (size_t p = 0; p < n_probe; p++) {
        size_t l = li[p];
        for (size_t at = x->start[l]; at < x->start[l + 1]; at++)
            heap_push(out_scores, out_items, &n, want, dot(x->vecs + at * x->k, query, x->k),
                      x->rows[at]);
    }
    return heap_drain(out_scores, out_items, n);
}

size_t sako__factor_index_exact(const sako_factor_index *x, const float *query, size_t want,
                                uint32_t *out_items, float *out_scores)
{
    if (!x || want == 0)
        return 0;
    size_t n = 0;
    for (size_t at = 0; at < x->n_rows; at++)
        heap_push(out_scores, out_items, &n, want, dot(x->vecs + at * x->k, query, x->k), x->rows[at]);
    return heap_drain(out_scores, out_items, n);
}

size_t sako__factor_index_bytes(const sako_factor_index *x)
{
    if (!x)
        return 0;
    return sizeof *x + x->n_lists * x->k * sizeof(float) + (x->n_lists + 1) * sizeof(size_t) +
           x->n_rows * (sizeof(uint32_t) + x->k * sizeof(float));
}

void sako__factor_index_free(sako_factor_index *x)
{
    if (!x)
        return;
    free(x->centroids);
    free(x->start);
    free(x->rows);
    free(x->vecs);
    free(x);
}
