/* The one bounded top-k of the library: a min-heap of the `cap` best (value, id) pairs
 * offered so far, in caller-owned arrays (no allocation on the serving path).
 *
 * "Best" is the higher value; among equal values the lower id, so that the set kept
 * does not depend on the order of the offers (the population draw, the pruned
 * sampler, the personal engine and the factor index all use it; for draws from
 * continuous posteriors a tie has probability zero). A NaN is never better than a
 * kept value. Inline: the draw over a whole catalog offers every item. */
#ifndef SAKO_TOPK_INTERNAL_H
#define SAKO_TOPK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct sako_topk {
    double *v;
    uint32_t *id;
    size_t n, cap;
} sako_topk;

/* a ranks below b */
static inline int sako__topk_worse(double a, uint32_t ia, double b, uint32_t ib)
{
    return a < b || (a == b && ia > ib);
}

static inline void sako__topk_sift_down(sako_topk *h, size_t i, size_t n)
{
    double v = h->v[i];
    uint32_t id = h->id[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && sako__topk_worse(h->v[c + 1], h->id[c + 1], h->v[c], h->id[c]))
            c++;
        if (!sako__topk_worse(h->v[c], h->id[c], v, id))
            break;
        h->v[i] = h->v[c];
        h->id[i] = h->id[c];
        i = c;
    }
    h->v[i] = v;
    h->id[i] = id;
}

/* Whether an offer of value v can still be kept (a cheap test before the work that
 * produces its id, or before the offer itself). */
static inline int sako__topk_admits(const sako_topk *h, double v)
{
    return h->n < h->cap || v >= h->v[0];
}

/* The lowest kept value once the heap is full (what an offer must beat), else -inf. */
static inline double sako__topk_floor(const sako_topk *h)
{
    return h->n < h->cap ? -__builtin_inf() : h->v[0];
}

/* Offer (v, id): kept when fewer than cap are held or when it beats the worst kept.
 * Returns 1 when kept. */
static inline int sako__topk_push(sako_topk *h, double v, uint32_t id)
{
    if (h->n < h->cap) {
        size_t i = h->n++;
        while (i > 0 && sako__topk_worse(v, id, h->v[(i - 1) / 2], h->id[(i - 1) / 2])) {
            h->v[i] = h->v[(i - 1) / 2];
            h->id[i] = h->id[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h->v[i] = v;
        h->id[i] = id;
        return 1;
    }
    if (h->cap == 0 || !sako__topk_worse(h->v[0], h->id[0], v, id))
        return 0;
    h->v[0] = v;
    h->id[0] = id;
    sako__topk_sift_down(h, 0, h->n);
    return 1;
}

/* Sorts the kept pairs in place, best first (a heap sort: the heap is spent, n kept).
 * Returns n. */
static inline size_t sako__topk_sort(sako_topk *h)
{
    for (size_t n = h->n; n > 1; n--) {
        double v = h->v[0];
        uint32_t id = h->id[0];
        h->v[0] = h->v[n - 1];
        h->id[0] = h->id[n - 1];
        sako__topk_sift_down(h, 0, n - 1);
        h->v[n - 1] = v;
        h->id[n - 1] = id;
    }
    return h->n;
}

#endif
