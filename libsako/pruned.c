/* Exact, sublinear top-k of one joint Beta draw. See pruned_internal.h.
 *
 * Members live in 64 buckets by p = P(X > t): bucket j >= 1 holds p in
 * [2^-(j+1), 2^-j), bucket 0 holds p >= 1/2, the last one everything smaller
 * (p = 0 included). Bucket j is visited with geometric skips of rate q = 2^-j and a
 * landed entry is kept with probability r = p / q, so each member is in S with
 * probability exactly p, independently, for ~|S| touched entries per bucket. An
 * entry carries everything its draw needs (64 bytes, one cache line), and a small
 * hash table maps member -> (bucket, index) for O(1) updates by swap-with-last. */
#include "pruned_internal.h"
#include "topk_internal.h"

#include <stdlib.h>
#include <string.h>

#define NB 64
#define NO_MEMBER UINT32_MAX
#define NOT_FOUND ((size_t)-1)
#define THRESHOLD_DRAWS 5 /* t is the median of this many brute-force draws */

typedef struct pr_entry {
    uint32_t member;
    uint32_t method; /* enum sako_tbeta_method */
    double r;        /* P(kept | landed on) = p 2^j */
    double p;        /* P(X > t) */
    double c;        /* the method's constant */
    sako_beta beta;
} pr_entry;

/* One cache line: checked at compile time (a negative array size otherwise). */
typedef char pr_entry_is_one_cache_line[sizeof(pr_entry) == 64 ? 1 : -1];

typedef struct pr_bucket {
    pr_entry *e;
    size_t n, cap;
} pr_bucket;

/* Where a member is: one slot of an open-addressing table with linear probing. */
typedef struct pr_slot {
    uint32_t member; /* NO_MEMBER when empty */
    uint32_t bucket;
    size_t index;
} pr_slot;

struct sako_pruned {
    pr_bucket bucket[NB];
    uint64_t mask; /* bit j set when bucket j is not empty */
    size_t n;
    double sum_p;
    sako_tbeta_dom dom;
    int tuned_k;          /* k of the last retune, 0 before the first */
    double tuned_sum_p;   /* sum_p right after it */
    double skip_inv[NB];  /* 1 / log(1 - 2^-j), j >= 1 */
    pr_slot *slot;
    size_t slot_cap;      /* a power of two, or 0 */
    int slot_bits;
};

struct sako_pruned_scratch {
    size_t cap;      /* >= the k of every query so far */
    double *hv;      /* min-heap of the best values ... */
    uint32_t *hm;    /* ... and their members */
    uint8_t *sj;     /* bucket and index of the first `cap` members of S, in visiting order */
    size_t *si;
    uint64_t fallbacks;
};

/* ------------------------------------------------------------- positions */

static size_t slot_home(const sako_pruned *p, uint32_t member)
{
    return (size_t)(((uint64_t)member * 0x9E3779B97F4A7C15ULL) >> (64 - p->slot_bits));
}

static size_t slot_find(const sako_pruned *p, uint32_t member)
{
    if (p->slot_cap == 0)
        return NOT_FOUND;
    size_t mask = p->slot_cap - 1;
    for (size_t i = slot_home(p, member);; i = (i + 1) & mask) {
        if (p->slot[i].member == member)
            return i;
        if (p->slot[i].member == NO_MEMBER)
            return NOT_FOUND;
    }
}

static size_t slot_insert(sako_pruned *p, uint32_t member, uint32_t bucket, size_t index)
{
    size_t mask = p->slot_cap - 1, i = slot_home(p, member);
    while (p->slot[i].member != NO_MEMBER)
        i = (i + 1) & mask;
    p->slot[i].member = member;
    p->slot[i].bucket = bucket;
    p->slot[i].index = index;
    return i;
}

/* Room for one more member at load <= 1/2. */
static int slot_reserve(sako_pruned *p)
{
    if ((p->n + 1) * 2 <= p->slot_cap)
        return SAKO_OK;
    size_t cap = p->slot_cap ? p->slot_cap * 2 : 64;
    pr_slot *old = p->slot, *fresh = malloc(cap * sizeof *fresh);
    if (!fresh)
        return SAKO_NOMEM;
    for (size_t i = 0; i < cap; i++)
        fresh[i].member = NO_MEMBER;
    size_t old_cap = p->slot_cap;
    p->slot = fresh;
    p->slot_cap = cap;
    p->slot_bits = __builtin_ctzll((unsigned long long)cap);
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].member != NO_MEMBER)
            slot_insert(p, old[i].member, old[i].bucket, old[i].index);
    free(old);
    return SAKO_OK;
}

/* Deletion with backward shift: later members of the probe run move up, so no
 * tombstones are needed. */
static void slot_erase(sako_pruned *p, size_t i)
{
    size_t mask = p->slot_cap - 1;
    for (size_t j = (i + 1) & mask; p->slot[j].member != NO_MEMBER; j = (j + 1) & mask) {
        size_t h = slot_home(p, p->slot[j].member);
        /* j may fill the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (!stays) {
            p->slot[i] = p->slot[j];
            i = j;
        }
    }
    p->slot[i].member = NO_MEMBER;
}

/* --------------------------------------------------------------- buckets */

static int bucket_of(double prob, double *r)
{
    if (!(prob > 0.0)) {
        *r = 0.0;
        return NB - 1;
    }
    int e;
    frexp(prob, &e); /* prob in [2^(e-1), 2^e) */
    int j = -e;
    if (j < 0)
        j = 0; /* prob == 1 */
    if (j > NB - 1)
        j = NB - 1;
    *r = ldexp(prob, j);
    return j;
}

static void entry_fill(pr_entry *e, uint32_t member, const sako_beta *beta,
                       const sako_tbeta_dom *dom, int *j)
{
    int method;
    e->member = member;
    e->beta = *beta;
    sako__tbeta_prepare(beta, dom, &e->p, &method, &e->c);
    e->method = (uint32_t)method;
    *j = bucket_of(e->p, &e->r);
}

/* Entry arrays are aligned to 64 bytes so that an entry is one cache line. */
static int bucket_reserve(pr_bucket *b, size_t more)
{
    if (b->n + more <= b->cap)
        return SAKO_OK;
    size_t cap = b->cap ? b->cap * 2 : 16;
    while (cap < b->n + more)
        cap *= 2;
    void *mem;
    if (posix_memalign(&mem, 64, cap * sizeof(pr_entry)) != 0)
        return SAKO_NOMEM;
    if (b->n)
        memcpy(mem, b->e, b->n * sizeof(pr_entry));
    free(b->e);
    b->e = mem;
    b->cap = cap;
    return SAKO_OK;
}

/* Removes entry i of bucket j by moving the last entry into its place. */
static void bucket_take(sako_pruned *p, int j, size_t i)
{
    pr_bucket *b = &p->bucket[j];
    size_t last = b->n - 1;
    if (i != last) {
        b->e[i] = b->e[last];
        p->slot[slot_find(p, b->e[i].member)].index = i;
    }
    b->n = last;
    if (last == 0)
        p->mask &= ~(1ULL << j);
}

/* Appends (room reserved); returns its index. */
static size_t bucket_put(sako_pruned *p, int j, const pr_entry *e)
{
    pr_bucket *b = &p->bucket[j];
    b->e[b->n] = *e;
    p->mask |= 1ULL << j;
    return b->n++;
}

/* --------------------------------------------------------------- domain */

int sako__pruned_create(sako_pruned **out)
{
    sako_pruned *p = calloc(1, sizeof *p);
    *out = p;
    if (!p)
        return SAKO_NOMEM;
    sako__tbeta_dom_set(&p->dom, 0.0);
    for (int j = 1; j < NB; j++)
        p->skip_inv[j] = 1.0 / log1p(-ldexp(1.0, -j));
    return SAKO_OK;
}

void sako__pruned_free(sako_pruned *p)
{
    if (!p)
        return;
    for (int j = 0; j < NB; j++)
        free(p->bucket[j].e);
    free(p->slot);
    free(p);
}

size_t sako__pruned_size(const sako_pruned *p) { return p->n; }
double sako__pruned_threshold(const sako_pruned *p) { return p->dom.t; }
double sako__pruned_sum_p(const sako_pruned *p) { return p->sum_p; }

int sako__pruned_set(sako_pruned *p, uint32_t member, const sako_beta *beta)
{
    if (member == NO_MEMBER || !(beta->a > 0.0) || !(beta->b > 0.0) || !isfinite(beta->a) ||
        !isfinite(beta->b))
        return SAKO_INVALID;
    pr_entry e;
    int j;
    entry_fill(&e, member, beta, &p->dom, &j);
    size_t si = slot_find(p, member);
    if (si == NOT_FOUND) {
        if (slot_reserve(p) != SAKO_OK || bucket_reserve(&p->bucket[j], 1) != SAKO_OK)
            return SAKO_NOMEM;
        slot_insert(p, member, (uint32_t)j, bucket_put(p, j, &e));
        p->n++;
        p->sum_p += e.p;
        return SAKO_OK;
    }
    int oj = (int)p->slot[si].bucket;
    size_t oi = p->slot[si].index;
    double old_p = p->bucket[oj].e[oi].p;
    if (oj == j) {
        p->bucket[j].e[oi] = e;
    } else {
        if (bucket_reserve(&p->bucket[j], 1) != SAKO_OK)
            return SAKO_NOMEM;
        bucket_take(p, oj, oi);
        p->slot[si].bucket = (uint32_t)j;
        p->slot[si].index = bucket_put(p, j, &e);
    }
    p->sum_p += e.p - old_p;
    return SAKO_OK;
}

void sako__pruned_remove(sako_pruned *p, uint32_t member)
{
    size_t si = slot_find(p, member);
    if (si == NOT_FOUND)
        return;
    int j = (int)p->slot[si].bucket;
    size_t i = p->slot[si].index;
    p->sum_p -= p->bucket[j].e[i].p;
    slot_erase(p, si);
    bucket_take(p, j, i);
    if (--p->n == 0)
        p->sum_p = 0.0; /* drop the rounding drift of the running sum */
}

/* A rebuild meets the same posterior many times (every cold item of a category has
 * its prior), so tails are remembered by (a, b) in a small direct-mapped cache. */
#define TAIL_CACHE_BITS 12

static size_t tail_cache_slot(const sako_beta *beta)
{
    uint64_t x, y;
    memcpy(&x, &beta->a, sizeof x);
    memcpy(&y, &beta->b, sizeof y);
    return (size_t)(((x * 0x9E3779B97F4A7C15ULL) ^ (y * 0xC2B2AE3D27D4EB4FULL)) >>
                    (64 - TAIL_CACHE_BITS));
}

int sako__pruned_rebuild(sako_pruned *p, double t)
{
    pr_bucket fresh[NB];
    memset(fresh, 0, sizeof fresh);
    sako_tbeta_dom dom;
    sako__tbeta_dom_set(&dom, t);
    /* a = 0 marks an empty cache line; without memory the cache is simply skipped */
    pr_entry *cache = calloc((size_t)1 << TAIL_CACHE_BITS, sizeof *cache);
    /* Build the new buckets beside the old ones, so that a failure changes nothing. */
    for (int oj = 0; oj < NB; oj++) {
        const pr_bucket *ob = &p->bucket[oj];
        for (size_t i = 0; i < ob->n; i++) {
            const sako_beta *beta = &ob->e[i].beta;
            pr_entry e, *ce = cache ? &cache[tail_cache_slot(beta)] : NULL;
            int j;
            if (ce && ce->beta.a == beta->a && ce->beta.b == beta->b) {
                e = *ce;
                e.member = ob->e[i].member;
                e.beta = *beta;
                j = bucket_of(e.p, &e.r);
            } else {
                entry_fill(&e, ob->e[i].member, beta, &dom, &j);
                if (ce)
                    *ce = e;
            }
            if (bucket_reserve(&fresh[j], 1) != SAKO_OK) {
                for (int f = 0; f < NB; f++)
                    free(fresh[f].e);
                free(cache);
                return SAKO_NOMEM;
            }
            fresh[j].e[fresh[j].n++] = e;
        }
    }
    free(cache);
    p->mask = 0;
    p->sum_p = 0.0;
    p->dom = dom;
    for (int j = 0; j < NB; j++) {
        free(p->bucket[j].e);
        p->bucket[j] = fresh[j];
        if (fresh[j].n)
            p->mask |= 1ULL << j;
        for (size_t i = 0; i < fresh[j].n; i++) {
            pr_slot *sl = &p->slot[slot_find(p, fresh[j].e[i].member)];
            sl->bucket = (uint32_t)j;
            sl->index = i;
            p->sum_p += fresh[j].e[i].p;
        }
    }
    return SAKO_OK;
}

/* ------------------------------------------------------------------ heap */

/* The cap largest values pushed (topk_internal.h), emptied largest first. */
typedef sako_topk pr_heap;

static void heap_push(pr_heap *h, double v, uint32_t m)
{
    sako__topk_push(h, v, m);
}

static size_t heap_drain(pr_heap *h, uint32_t *members_out, double *values_out)
{
    size_t n = sako__topk_sort(h);
    memcpy(members_out, h->id, n * sizeof *members_out);
    memcpy(values_out, h->v, n * sizeof *values_out);
    h->n = 0;
    return n;
}

/* ------------------------------------------------------------- threshold */

int sako__pruned_choose_threshold(const sako_pruned *p, int k_target, sako_rng *rng,
                                  double *t_out)
{
    *t_out = 0.0;
    if (k_target < 1)
        return SAKO_INVALID;
    size_t m = (size_t)k_target * SAKO_PRUNED_TARGET;
    if (p->n < SAKO_PRUNED_SMALL || p->n <= m)
        return SAKO_OK; /* every member would be in S anyway */
    pr_heap h = {malloc(m * sizeof(double)), malloc(m * sizeof(uint32_t)), 0, m};
    if (!h.v || !h.id) {
        free(h.v);
        free(h.id);
        return SAKO_NOMEM;
    }
    double tv[THRESHOLD_DRAWS];
    for (int d = 0; d < THRESHOLD_DRAWS; d++) {
        h.n = 0;
        for (int j = 0; j < NB; j++)
            for (size_t i = 0; i < p->bucket[j].n; i++)
                heap_push(&h, sako__beta_sample(&p->bucket[j].e[i].beta, rng), 0);
        tv[d] = h.v[0]; /* the m-th largest value of this draw */
        for (int e = d; e > 0 && tv[e] < tv[e - 1]; e--) {
            double x = tv[e];
            tv[e] = tv[e - 1];
            tv[e - 1] = x;
        }
    }
    free(h.v);
    free(h.id);
    *t_out = tv[THRESHOLD_DRAWS / 2];
    return SAKO_OK;
}

int sako__pruned_retune(sako_pruned *p, int k_target, sako_rng *rng)
{
    double t;
    int rc = sako__pruned_choose_threshold(p, k_target, rng, &t);
    if (rc == SAKO_OK)
        rc = sako__pruned_rebuild(p, t);
    if (rc == SAKO_OK) {
        p->tuned_k = k_target;
        p->tuned_sum_p = p->sum_p;
    }
    return rc;
}

int sako__pruned_needs_retune(const sako_pruned *p, int k)
{
    if (p->n < SAKO_PRUNED_SMALL || k < 1)
        return 0;
    if (p->tuned_k == 0)
        return 1;
    double lo = (double)k * SAKO_PRUNED_LOW, hi = (double)k * SAKO_PRUNED_HIGH;
    if (lo > (double)p->n)
        lo = (double)p->n;
    if (p->sum_p >= lo && p->sum_p <= hi)
        return 0;
    /* A retune that could not reach the band (very skewed posteriors: its threshold is
     * a median of noisy draws) is not repeated after every batch, only once sum_p has
     * moved by half from where that retune left it. */
    double t = p->tuned_sum_p;
    if (p->tuned_k == k && (t < lo || t > hi))
        return p->sum_p < 0.5 * t || p->sum_p > 2.0 * t;
    return 1;
}

/* --------------------------------------------------------------- queries */

int sako__pruned_scratch_create(sako_pruned_scratch **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? SAKO_OK : SAKO_NOMEM;
}

void sako__pruned_scratch_free(sako_pruned_scratch *s)
{
    if (!s)
        return;
    free(s->hv);
    free(s->hm);
    free(s->sj);
    free(s->si);
    free(s);
}

uint64_t sako__pruned_scratch_fallbacks(const sako_pruned_scratch *s) { return s->fallbacks; }

static int scratch_reserve(sako_pruned_scratch *s, size_t k)
{
    if (k <= s->cap)
        return SAKO_OK;
    double *hv = realloc(s->hv, k * sizeof *hv);
    if (hv)
        s->hv = hv;
    uint32_t *hm = realloc(s->hm, k * sizeof *hm);
    if (hm)
        s->hm = hm;
    uint8_t *sj = realloc(s->sj, k * sizeof *sj);
    if (sj)
        s->sj = sj;
    size_t *si = realloc(s->si, k * sizeof *si);
    if (si)
        s->si = si;
    if (!hv || !hm || !sj || !si)
        return SAKO_NOMEM;
    s->cap = k;
    return SAKO_OK;
}

/* Landed entries are gathered in small batches and prefetched before any is read:
 * in a large domain each one is a cache miss, and overlapping them is most of the
 * speed. The order (bucket, then index) is kept, as draw_below() relies on it. */
#define LANDING_BATCH 32

typedef struct pr_landings {
    const pr_entry *e[LANDING_BATCH];
    uint8_t j[LANDING_BATCH];
    size_t i[LANDING_BATCH];
    int n;
} pr_landings;

/* Keeps each landed entry with probability r, draws it above t, records it. */
static void take_landings(const sako_pruned *p, sako_rng *rng, sako_pruned_scratch *s,
                          pr_heap *h, pr_landings *l, size_t *ns)
{
    for (int q = 0; q < l->n; q++) {
        const pr_entry *e = l->e[q];
        if (sako__rng_uniform(rng) <= e->r) {
            double x = sako__tbeta_upper(&e->beta, &p->dom, e->p, (int)e->method, e->c, rng);
            if (*ns < h->cap) {
                s->sj[*ns] = l->j[q];
                s->si[*ns] = l->i[q];
            }
            (*ns)++;
            heap_push(h, x, e->member);
        }
    }
    l->n = 0;
}

/* Draws S and keeps the best of it in h; returns |S|. The positions of the first
 * h->cap members of S are recorded (in visiting order) for the completion. */
static size_t draw_above(const sako_pruned *p, sako_rng *rng, sako_pruned_scratch *s,
                         pr_heap *h)
{
    size_t ns = 0;
    pr_landings l;
    l.n = 0;
    for (uint64_t mask = p->mask; mask; mask &= mask - 1) {
        int j = __builtin_ctzll(mask);
        const pr_bucket *b = &p->bucket[j];
        for (size_t i = 0;; i++) {
            if (j > 0) { /* skip to the next landing: Geometric(2^-j) failures */
                double g = floor(log(sako__rng_uniform(rng)) * p->skip_inv[j]);
                if (g >= (double)(b->n - i))
                    break;
                i += (size_t)g;
            } else if (i >= b->n) {
                break; /* bucket 0 (p >= 1/2): every entry lands */
            }
            __builtin_prefetch(&b->e[i]);
            l.e[l.n] = &b->e[i];
            l.j[l.n] = (uint8_t)j;
            l.i[l.n] = i;
            if (++l.n == LANDING_BATCH)
                take_landings(p, rng, s, h, &l, &ns);
        }
    }
    take_landings(p, rng, s, h, &l, &ns);
    return ns;
}

/* |S| < k: every other member, drawn conditioned on X <= t, competes for the rest. */
static void draw_below(const sako_pruned *p, sako_rng *rng, const sako_pruned_scratch *s,
                       size_t ns, pr_heap *h)
{
    size_t next = 0; /* the next member of S in visiting order */
    for (uint64_t mask = p->mask; mask; mask &= mask - 1) {
        int j = __builtin_ctzll(mask);
        const pr_bucket *b = &p->bucket[j];
        for (size_t i = 0; i < b->n; i++) {
            if (next < ns && s->sj[next] == j && s->si[next] == i) {
                next++;
                continue;
            }
            const pr_entry *e = &b->e[i];
            heap_push(h, sako__tbeta_lower(&e->beta, &p->dom, e->p, rng), e->member);
        }
    }
}

int sako__pruned_topk(const sako_pruned *p, int k, sako_rng *rng, sako_pruned_scratch *s,
                      uint32_t *members_out, double *values_out, size_t *n_out)
{
    *n_out = 0;
    if (k < 0)
        return SAKO_INVALID;
    size_t kk = (size_t)k < p->n ? (size_t)k : p->n;
    if (kk == 0)
        return SAKO_OK;
    if (scratch_reserve(s, kk) != SAKO_OK)
        return SAKO_NOMEM;
    pr_heap h = {s->hv, s->hm, 0, kk};
    if (p->n < SAKO_PRUNED_SMALL || kk == p->n || p->dom.t <= 0.0) {
        for (int j = 0; j < NB; j++) /* brute force */
            for (size_t i = 0; i < p->bucket[j].n; i++)
                heap_push(&h, sako__beta_sample(&p->bucket[j].e[i].beta, rng),
                          p->bucket[j].e[i].member);
    } else {
        size_t ns = draw_above(p, rng, s, &h);
        if (ns < kk) {
            s->fallbacks++;
            draw_below(p, rng, s, ns, &h);
        }
    }
    *n_out = heap_drain(&h, members_out, values_out);
    return SAKO_OK;
}

/* ---------------------------------------------------------------- checks */

int sako__pruned_check(const sako_pruned *p)
{
    size_t count = 0, slots = 0;
    double sum = 0.0;
    for (int j = 0; j < NB; j++) {
        const pr_bucket *b = &p->bucket[j];
        if (((p->mask >> j) & 1) != (b->n > 0))
            return __LINE__;
        for (size_t i = 0; i < b->n; i++) {
            const pr_entry *e = &b->e[i];
            size_t si = slot_find(p, e->member);
            if (si == NOT_FOUND || p->slot[si].bucket != (uint32_t)j || p->slot[si].index != i)
                return __LINE__;
            pr_entry want;
            int wj;
            entry_fill(&want, e->member, &e->beta, &p->dom, &wj);
            if (wj != j || want.p != e->p || want.r != e->r || want.method != e->method ||
                want.c != e->c)
                return __LINE__;
            if (j > 0 && j < NB - 1 && !(e->r >= 0.5 && e->r < 1.0))
                return __LINE__;
            if (!(e->r >= 0.0 && e->r <= 1.0))
                return __LINE__;
            sum += e->p;
            count++;
        }
    }
    for (size_t i = 0; i < p->slot_cap; i++)
        slots += p->slot[i].member != NO_MEMBER;
    if (count != p->n || slots != p->n)
        return __LINE__;
    if (fabs(sum - p->sum_p) > 1e-9 * (1.0 + sum))
        return __LINE__;
    return 0;
}
