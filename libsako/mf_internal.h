/* Implicit ALS with conjugate-gradient row solves: the solver behind sako_mf_fit()
 * and sako_mf_fold_in() (mf_als.c: training; mf_solve.c: one row's solve and the
 * dense kernels; mf_gram.c: Y^T Y; mf_foldin.c: the public fold-in; mf_check.c:
 * argument checks). No engine, no SQLite: the engine side trains and folds in
 * through these functions. */
#ifndef SAKO_MF_INTERNAL_H
#define SAKO_MF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"

#define SAKO_MF_MAX_FACTORS 1024u
#define SAKO_MF_MAX_ITERATIONS 10000u
#define SAKO_MF_MAX_THREADS 256u
/* Seed 0 stands for this one (a fixed default, never the clock). */
#define SAKO_MF_DEFAULT_SEED 0x5a4b4f4d46ULL
/* Initial factors are uniform in [0, SAKO_MF_INIT_SCALE), as `implicit` 0.7 does. */
#define SAKO_MF_INIT_SCALE 0.01f

/* ---- checks (mf_check.c); each sets the message, `fn` names the caller */
int sako__mf_check_options(const sako_mf_options *o, const char *fn);
int sako__mf_check_csr(const sako_csr *r, const char *fn);
/* Resolve opt->threads (0 = online cores) to 1..SAKO_MF_MAX_THREADS. */
unsigned sako__mf_threads(const sako_mf_options *o);

/* ---- one row's solve (mf_solve.c)
 * The system of row u against the fixed other side Y (n x k, row-major):
 *   (G + Y_u^T diag(alpha r) Y_u) x = Y_u^T (1 + alpha r)
 * where G = Y^T Y + lambda I is given dense (k x k, row-major, symmetric) and the
 * row holds n entries (cols[j], vals[j]). */
typedef struct sako_mf_row {
    const int32_t *cols;
    const float *vals;
    size_t n;
} sako_mf_row;

/* Scratch of one solving thread: 3 k-vectors for CG, and for exact solves a k x k
 * double matrix and two k-vectors. */
typedef struct sako_mf_scratch {
    float *r, *p, *ap;
    double *a, *b, *yd;  /* NULL unless allocated with exact = 1 */
} sako_mf_scratch;

int sako__mf_scratch_init(sako_mf_scratch *s, uint32_t k, int exact);
void sako__mf_scratch_free(sako_mf_scratch *s);

/* `steps` CG steps from x (warm start), G in float (lambda included). */
void sako__mf_solve_cg(const float *g, const float *y, uint32_t k, float alpha,
                       const sako_mf_row *row, uint32_t steps, sako_mf_scratch *s, float *x);
/* The exact solution by Cholesky in double: A = gram + lambda I + ..., gram = Y^T Y
 * in double (lambda not included). Returns SAKO_INVALID (message set) when the
 * system is not positive definite; x unchanged then. */
int sako__mf_solve_exact(const double *gram, double lambda, const float *y, uint32_t k,
                         double alpha, const sako_mf_row *row, sako_mf_scratch *s, float *x);

/* Dense kernels, shared with the tests. */
float sako__mf_dot(const float *a, const float *b, uint32_t k);

/* ---- vector kernels (mf_solve.c, mf_gram.c)
 * Eight floats per operation in GCC vector extensions: the compiler emits two SSE
 * operations on baseline x86-64 and one AVX operation in the avx2 clone of the hot
 * functions (SAKO_MF_CLONES), lane for lane the same arithmetic, so results do not
 * depend on the clone picked at run time (-std=c99 keeps fused multiply-add off). */
typedef float sako_v8 __attribute__((vector_size(32)));
typedef float sako_v8u __attribute__((vector_size(32), aligned(4), may_alias));

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__) && \
    !defined(SAKO_MF_NO_CLONES)
#define SAKO_MF_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define SAKO_MF_CLONES
#endif
#define SAKO_MF_INLINE static inline __attribute__((always_inline))

/* Macros, not functions: a 32-byte vector passed or returned by value has another
 * ABI with AVX than without, which GCC rightly warns about. */
#define SAKO_V8_LOAD(p) (*(const sako_v8u *)(p))
#define SAKO_V8_STORE(p, v) (*(sako_v8u *)(p) = (v))
#define SAKO_V8_SET1(a) ((sako_v8){(a), (a), (a), (a), (a), (a), (a), (a)})

/* ---- Y^T Y (mf_gram.c), in double, over fixed blocks of rows so that the sum's
 * order depends only on (n, k), not on `threads`. Full symmetric k x k output. */
int sako__mf_gram(const float *y, size_t n, uint32_t k, unsigned threads, double *gram);

/* ---- training (mf_als.c)
 * Called after each iteration with the iteration (1-based) and the current factors;
 * a non-zero return stops the training and is returned by sako__mf_train (the
 * engine's cancellation). */
typedef int (*sako_mf_progress)(void *arg, uint32_t iteration, const float *user_factors,
                                const float *item_factors);

/* sako_mf_fit() with what the tests and the engine need besides: exact = 1 solves
 * every row exactly (Cholesky) instead of by CG; `progress` may be NULL. Arguments
 * are checked as by sako_mf_fit(); messages name `fn`. */
int sako__mf_train(const sako_csr *r, const sako_mf_options *opt, int exact,
                   sako_mf_progress progress, void *arg, const char *fn,
                   float *user_factors, float *item_factors);

/* The training loss of sako_mf_options (all n_rows x n_cols cells, in double):
 * sum c (p - x.y)^2 + lambda (|X|^2 + |Y|^2). O(nnz k + (n_rows + n_cols) k^2). */
int sako__mf_loss(const sako_csr *r, const sako_mf_options *opt, const float *user_factors,
                  const float *item_factors, double *loss_out);

#endif
