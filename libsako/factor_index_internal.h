/* Sub-linear retrieval over item factors (factor_index.c): an inverted-file index.
 *
 * The items with a vector are clustered by k-means into about sqrt(n) lists; a query
 * ranks the centroids by inner product with the user's vector and scans the items of
 * the best `probe` lists only. Recall against the exact scan is measured in
 * tests/check_factors.c and docs/benchmarks.md. */
#ifndef SAKO_FACTOR_INDEX_INTERNAL_H
#define SAKO_FACTOR_INDEX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct sako_factor_index sako_factor_index;

/* At most this many lists (and so a probe above it probes them all). */
#define SAKO_FACTOR_INDEX_LISTS_MAX 4096

/* An index over the rows of `items` (n x k, row-major) whose `has` is 1, clustered in
 * the order of `order` (a permutation of 0..n-1: item ids ascending, so that the index
 * does not depend on index order), seeded with `seed`, the assignments to centroids
 * spread over `threads` threads (the index does not depend on their number). *out
 * NULL when no row has a vector. */
int sako__factor_index_build(const float *items, const uint8_t *has, const uint32_t *order,
                             size_t n, uint32_t k, uint64_t seed, unsigned threads,
                             sako_factor_index **out);
/* Lists in the index, and how many a query probes by default. */
size_t sako__factor_index_lists(const sako_factor_index *x);
size_t sako__factor_index_default_probe(const sako_factor_index *x);
/* The `want` rows with the highest x . y among the probed lists (fewer if they hold
 * fewer), best first: row numbers in out_items, scores in out_scores. The lists are
 * ranked by an upper bound on the inner product they can hold (q.c + |q| radius); a
 * list whose bound is below the want-th score found so far is not scanned, so the
 * answer is exact whenever the scan stops before `probe` lists. `scratch` holds
 * sako__factor_index_scratch_size(x, want) bytes (the two bounded heaps). */
size_t sako__factor_index_scratch_size(const sako_factor_index *x, size_t want);
size_t sako__factor_index_search(const sako_factor_index *x, const float *query, size_t probe,
                                 size_t want, void *scratch, uint32_t *out_items,
                                 float *out_scores);
/* The same by scanning every row with a vector (the exact answer, for recall). */
size_t sako__factor_index_exact(const sako_factor_index *x, const float *query, size_t want,
                                void *scratch, uint32_t *out_items, float *out_scores);
/* x . y over k floats, as the index computes it (8-lane partial sums). */
float sako__factor_index_dot(const float *a, const float *b, uint32_t k);
/* Bytes the index holds (centroids, lists and its copy of the vectors). */
size_t sako__factor_index_bytes(const sako_factor_index *x);
void sako__factor_index_free(sako_factor_index *x);

#endif
