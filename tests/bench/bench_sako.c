/* libsako C benchmark: `make bench`. See docs/benchmarks.md.
 *
 *   bench_sako [--quick] [--seed N] [--markdown FILE] [--only recommend|update|memory|stall]
 *
 * (--only stall, not part of the default run: stalls of recommend and durable
 * updates during a retrain, tests/bench/bench_stall.c.)
 *
 * One thread, one run, medians of repeated measurements:
 *  1. sako_recommend() latency, k = 20, over generated catalogs shaped like
 *     Instacart's (21 departments, 134 aisles of long-tailed sizes, long-tailed
 *     exposure: most items seen a few times, a few thousands of times), over the
 *     whole catalog and within one aisle of about average size (1/134 of it);
 *  2. in the same run and on the same posteriors, the original system's method:
 *     a fresh generator, one exact Beta(a, b) draw per item with libsako's own
 *     sampler, qsort of every item, keep the top k; plus a stronger brute-force
 *     reference (same draws, heap top-k, which the original did not do);
 *  3. sako_update() throughput in memory and durably committed, in batches of
 *     1, 100 and 10,000 events;
 *  4. sako_init() time of a 1M-item database file, and the time until requests
 *     are fast again (the engine may open before its samplers are built);
 *  5. (0.2) personalised recommend, k = 20, for users with 300 distinct products
 *     over 60 baskets, on the 50k and 1M engines, interleaved call by call with an
 *     anonymous user's (the population path), and with personal_temperature 0;
 *  6. (0.2) durable ingest of a stream with 20 % purchases (order ids, mostly
 *     organic) in batches of 10,000, personal = 1 against personal = 0;
 *  7. (0.2) memory per user: RSS growth as users each buy 100 distinct products,
 *     extrapolated linearly to 1M users.
 *
 * The 1k, 10k and 50k catalogs are built in memory; the 1M catalog once, in a
 * file (SAKO_DURABLE_OFF), which then serves the reopen test. --quick skips 1M and
 * reopens the 50k catalog instead.
 *
 * Writes nothing except a temporary directory (removed at exit) and, when asked,
 * the markdown table. Progress goes to stderr, results to stdout.
 */
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "sako.h"
#include "sampler_internal.h"

#define K 20
#define N_DEPTS 21
#define N_AISLES 134
#define DEPT_ID(d) ((int64_t)(1 + (d)))       /* departments 1..21 */
#define AISLE_ID(a) ((int64_t)(1001 + (a)))   /* aisles 1001..1134 */
#define INGEST_BATCH 250000                   /* events per sako_update while building */
#define N_USERS 100000
#define T0_MS 1764000000000LL                 /* event times start here (Nov 2025) */
/* The generated impressions, clicks, carts and purchases are outcomes of
 * recommendations: they carry a rec_id (one per K events). Since 0.2 an event
 * without one is organic demand, which would change the population model the
 * recommend rows measure; organic purchases are generated separately below. */
#define REC_ID(j) ((int64_t)(1 + (uint64_t)(j) / K))
/* Population rows ask for users with no purchase history (ids no event names), who
 * get the population engine; users 1..N_USERS have bought things, so since 0.2
 * they would get the personal engine. */
#define POP_USER(r) ((int64_t)(3 * N_USERS + 1 + (r) % N_USERS))
#define READY_LATENCY 1e-3                    /* reopen: "fast" means a request under 1 ms */
#define READY_TIMEOUT 120.0

/* ------------------------------------------------------------------ utilities */

static double t_start;
static char tmp_dir[512];
static char tmp_files[8][600];
static int n_tmp_files;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[bench %6.1fs] ", now() - t_start);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void remove_db(const char *path)
{
    static const char *suffix[] = {"", "-wal", "-shm", "-journal", "-lock"};
    char p[700];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

static void cleanup(void)
{
    for (int i = 0; i < n_tmp_files; i++)
        remove_db(tmp_files[i]);
    if (tmp_dir[0])
        rmdir(tmp_dir);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_sako: %s failed: %s (%d): %s\n", what, sako_errstr(rc), rc,
            sako_errmsg());
    exit(1);
}

#define CHECK(call)                   \
    do {                              \
        int rc_ = (call);             \
        if (rc_ != SAKO_OK)           \
            die(#call, rc_);          \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "bench_sako: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static const char *tmp_path(const char *name)
{
    if (n_tmp_files == 8) {
        fprintf(stderr, "bench_sako: too many temp files\n");
        exit(1);
    }
    char *p = tmp_files[n_tmp_files++];
    snprintf(p, sizeof tmp_files[0], "%s/%s", tmp_dir, name);
    return p;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Quantile q in [0, 1] of v[0..n), by sorting a copy (linear interpolation). */
static double quantile(const double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    double *c = xmalloc(n * sizeof *c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double r = i + 1 < n ? c[i] + (pos - (double)i) * (c[i + 1] - c[i]) : c[i];
    free(c);
    return r;
}

static double median(const double *v, size_t n) { return quantile(v, n, 0.5); }

/* "1.23 ms", "45.6 µs", "0.321 s". */
static const char *fmt_time(char *buf, size_t cap, double s)
{
    if (isnan(s))
        snprintf(buf, cap, "n/a");
    else if (s < 1e-3)
        snprintf(buf, cap, "%.3g µs", s * 1e6);
    else if (s < 1.0)
        snprintf(buf, cap, "%.3g ms", s * 1e3);
    else
        snprintf(buf, cap, "%.3g s", s);
    return buf;
}

/* "1,234,567". */
static const char *fmt_count(char *buf, size_t cap, double v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t len = strlen(digits), o = 0;
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *fmt_size(char *buf, size_t cap, size_t n)
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(buf, cap, "%zuM", n / 1000000);
    else if (n >= 1000 && n % 1000 == 0)
        snprintf(buf, cap, "%zuk", n / 1000);
    else
        fmt_count(buf, cap, (double)n);
    return buf;
}

/* Print s in a column of width display characters (UTF-8 aware), left or right. */
static void col(FILE *f, const char *s, int width, int left)
{
    int chars = 0;
    for (const char *p = s; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    if (left)
        fputs(s, f);
    for (int i = chars; i < width; i++)
        fputc(' ', f);
    if (!left)
        fputs(s, f);
}

/* "3.4" below 10, "27" above. */
static const char *fmt_ratio(char *buf, size_t cap, double r)
{
    if (r >= 999.5)
        return fmt_count(buf, cap, r);
    snprintf(buf, cap, r < 9.95 ? "%.1f" : "%.0f", r);
    return buf;
}

#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "cc"
#endif

/* ---------------------------------------------------------- generated catalog */

typedef struct catalog {
    size_t n;                       /* items, ids 1..n */
    int aisle_dept[N_AISLES];       /* department index of each aisle */
    double aisle_ctr[N_AISLES];     /* mean click rate of the aisle */
    size_t aisle_n[N_AISLES];       /* items per aisle */
    uint8_t *aisle;                 /* aisle index of item id-1 */
    double *ctr;                    /* hidden click rate of item id-1 */
    uint32_t *impr;                 /* impressions item id-1 gets */
    uint64_t n_events;              /* events the build sends */
} catalog;

/* Aisle sizes: lognormal weights (sigma 0.9) give a ~100x spread between the
 * largest and smallest aisle, as in Instacart (12 .. 1258 products of 49,688).
 * Exposure: floor(exp(N(0.7, 1.7))) impressions: a third of the items are never
 * shown, the median is 2, the mean ~8.5, the largest few thousands. */
static void catalog_make(catalog *c, size_t n, uint64_t seed)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed);
    memset(c, 0, sizeof *c);
    c->n = n;
    /* 134 aisles over 21 departments: one each, the rest by lognormal weights. */
    double dw[N_DEPTS], dsum = 0;
    for (int d = 0; d < N_DEPTS; d++)
        dsum += dw[d] = exp(0.7 * sako__rng_normal(&rng));
    for (int a = 0; a < N_AISLES; a++) {
        if (a < N_DEPTS) {
            c->aisle_dept[a] = a;
            continue;
        }
        double u = sako__rng_uniform(&rng) * dsum, acc = 0;
        int d = 0;
        while (d < N_DEPTS - 1 && (acc += dw[d]) < u)
            d++;
        c->aisle_dept[a] = d;
    }
    double cum[N_AISLES], wsum = 0;
    for (int a = 0; a < N_AISLES; a++) {
        wsum += exp(0.9 * sako__rng_normal(&rng));
        cum[a] = wsum;
        double m = 0.05 * exp(0.5 * sako__rng_normal(&rng));
        c->aisle_ctr[a] = m < 0.005 ? 0.005 : m > 0.5 ? 0.5 : m;
    }
    c->aisle = xmalloc(n * sizeof *c->aisle);
    c->ctr = xmalloc(n * sizeof *c->ctr);
    c->impr = xmalloc(n * sizeof *c->impr);
    double ev = 0;
    for (size_t i = 0; i < n; i++) {
        double u = sako__rng_uniform(&rng) * wsum;
        int lo = 0, hi = N_AISLES - 1;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cum[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        c->aisle[i] = (uint8_t)lo;
        c->aisle_n[lo]++;
        double m = c->aisle_ctr[lo];
        sako_beta b;
        sako__beta_set(&b, 20.0 * m, 20.0 * (1.0 - m));
        c->ctr[i] = sako__beta_sample(&b, &rng);
        double x = floor(exp(0.7 + 1.7 * sako__rng_normal(&rng)));
        c->impr[i] = (uint32_t)(x > 100000 ? 100000 : x);
        ev += c->impr[i] * (1.0 + c->ctr[i] * 1.3);
    }
    c->n_events = (uint64_t)ev;
}

static void catalog_free(catalog *c)
{
    free(c->aisle);
    free(c->ctr);
    free(c->impr);
}

/* The aisle whose size is closest to the mean (n / 134). */
static int catalog_mid_aisle(const catalog *c)
{
    double target = (double)c->n / N_AISLES;
    int best = 0;
    for (int a = 1; a < N_AISLES; a++)
        if (fabs((double)c->aisle_n[a] - target) < fabs((double)c->aisle_n[best] - target))
            best = a;
    return best;
}

static void catalog_upsert(sako_engine *e, const catalog *c)
{
    static char names[N_DEPTS + N_AISLES][32];
    sako_category cats[N_DEPTS + N_AISLES];
    for (int d = 0; d < N_DEPTS; d++) {
        snprintf(names[d], sizeof names[d], "department %d", d + 1);
        cats[d] = (sako_category){DEPT_ID(d), 0, names[d]};
    }
    for (int a = 0; a < N_AISLES; a++) {
        snprintf(names[N_DEPTS + a], sizeof names[0], "aisle %d", a + 1);
        cats[N_DEPTS + a] =
            (sako_category){AISLE_ID(a), DEPT_ID(c->aisle_dept[a]), names[N_DEPTS + a]};
    }
    CHECK(sako_categories_upsert(e, cats, N_DEPTS + N_AISLES));
    size_t chunk = 100000;
    sako_item *items = xmalloc(chunk * sizeof *items);
    for (size_t start = 0; start < c->n; start += chunk) {
        size_t m = c->n - start < chunk ? c->n - start : chunk;
        for (size_t j = 0; j < m; j++) {
            size_t i = start + j;
            items[j] = (sako_item){(int64_t)(i + 1), AISLE_ID(c->aisle[i]), 1, T0_MS};
        }
        CHECK(sako_items_upsert(e, items, m));
    }
    free(items);
}

static void shuffle_events(sako_event *ev, size_t n, sako_rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(sako__rng_next(rng) % i);
        sako_event t = ev[i - 1];
        ev[i - 1] = ev[j];
        ev[j] = t;
    }
}

/* Send every item's impressions, clicks, carts and purchases through sako_update
 * in shuffled batches of INGEST_BATCH. Returns the number of events sent. */
static uint64_t catalog_ingest(sako_engine *e, const catalog *c, uint64_t seed, double *secs)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed ^ 0x5eed);
    sako_event *buf = xmalloc(INGEST_BATCH * sizeof *buf);
    size_t nb = 0;
    uint64_t sent = 0;
    double busy = 0;
#define EMIT(item, typ)                                                              \
    do {                                                                             \
        int64_t t_ms_ = T0_MS + (int64_t)(sent + nb);                                \
        buf[nb++] = (sako_event){(int64_t)(1 + sako__rng_next(&rng) % N_USERS),      \
                                 (int64_t)(item), (typ), t_ms_, REC_ID(sent + nb)};  \
        if (nb == INGEST_BATCH) {                                                    \
            shuffle_events(buf, nb, &rng);                                           \
            double t_ = now();                                                       \
            CHECK(sako_update(e, buf, nb));                                          \
            busy += now() - t_;                                                      \
            sent += nb;                                                              \
            nb = 0;                                                                  \
        }                                                                            \
    } while (0)
    for (size_t i = 0; i < c->n; i++) {
        for (uint32_t j = 0; j < c->impr[i]; j++) {
            EMIT(i + 1, SAKO_EVENT_IMPRESSION);
            if (sako__rng_uniform(&rng) < c->ctr[i]) {
                EMIT(i + 1, SAKO_EVENT_CLICK);
                if (sako__rng_uniform(&rng) < 0.4) {
                    EMIT(i + 1, SAKO_EVENT_CART);
                    if (sako__rng_uniform(&rng) < 0.7)
                        EMIT(i + 1, SAKO_EVENT_PURCHASE);
                }
            }
        }
    }
#undef EMIT
    if (nb) {
        shuffle_events(buf, nb, &rng);
        double t = now();
        CHECK(sako_update(e, buf, nb));
        busy += now() - t;
        sent += nb;
    }
    free(buf);
    *secs = busy;
    return sent;
}

/* ------------------------------------------------------------- result tables */

typedef struct lat {
    double med, p90;
    int n;
} lat;

typedef struct rec_row {
    size_t catalog_n;
    int aisle;          /* 1 = within one aisle */
    const char *scope;  /* "whole catalog", "one aisle", ... */
    size_t scope_n;     /* items in scope */
    lat lib, orig, heap;
    double z1, zk;      /* consistency: z of the mean rank-1 / rank-k score vs brute force */
    int n_draws_lib, n_draws_ref;
} rec_row;

typedef struct build_row {
    size_t n;
    int on_file;        /* built in a file (SAKO_DURABLE_OFF) rather than in memory */
    uint64_t events;
    uint64_t extra_events; /* sent after the retrain (the "+10%" measurement) */
    double ingest_s, retrain_s, posteriors_s, build_s;
} build_row;

typedef struct upd_row {
    const char *mode;
    size_t batch;
    double rate;        /* events/s, median over repeats */
    double amortized;   /* events/s over all repeats together (refreshes included) */
    int refreshes;      /* prior refreshes that happened during the repeats */
    double batch_lat;   /* seconds per batch at that rate */
    int reps;
    size_t events_per_rep;
} upd_row;

typedef struct reopen_row {
    int done;
    size_t items;
    uint64_t events;
    double file_mb;
    double init_s, first_s, close_s, build_s;
    double ready_s;     /* from sako_init until a recommend takes < READY_LATENCY */
    int ready_timeout;
    int reps;
} reopen_row;

static rec_row rec_rows[16];
static int n_rec_rows;
static build_row build_rows[8];
static int n_build_rows;
static upd_row upd_rows[8];
static int n_upd_rows;
static reopen_row reopen;
static long check_failures;
static char check_first[256];

static void check_fail(const char *fmt, ...)
{
    if (check_failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(check_first, sizeof check_first, fmt, ap);
        va_end(ap);
    }
}

/* ------------------------------------------------------------------ recommend */

static sako_event *make_event_pool(const catalog *c, size_t n, uint64_t seed);
static int64_t event_clock = T0_MS + 1000000000LL;

typedef struct scored {
    double s;
    int64_t id;
} scored;

static int cmp_scored_desc(const void *x, const void *y)
{
    double a = ((const scored *)x)->s, b = ((const scored *)y)->s;
    return (a < b) - (a > b);
}

/* The original per-request method: new generator, one exact draw per item,
 * full sort, keep the top k. idx lists the items in scope (ids idx[j] + 1). */
static void baseline_qsort(const sako_beta *betas, const uint32_t *idx, size_t n,
                           scored *buf, uint64_t seed, scored *top)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed);
    for (size_t j = 0; j < n; j++) {
        uint32_t i = idx[j];
        buf[j].s = sako__beta_sample(&betas[i], &rng);
        buf[j].id = (int64_t)i + 1;
    }
    qsort(buf, n, sizeof *buf, cmp_scored_desc);
    memcpy(top, buf, (n < K ? n : K) * sizeof *top);
}

/* Same draws, top-k by a min-heap of size k: the best plain brute force. */
static void baseline_heap(const sako_beta *betas, const uint32_t *idx, size_t n,
                          uint64_t seed, scored *top)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed);
    scored h[K];
    size_t m = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t i = idx[j];
        double s = sako__beta_sample(&betas[i], &rng);
        if (m < K) {
            size_t c = m++;
            while (c > 0 && h[(c - 1) / 2].s > s) {
                h[c] = h[(c - 1) / 2];
                c = (c - 1) / 2;
            }
            h[c] = (scored){s, (int64_t)i + 1};
        } else if (s > h[0].s) {
            size_t c = 0;
            for (;;) {
                size_t l = 2 * c + 1, r = l + 1, mn = c;
                double ms = s;
                if (l < K && h[l].s < ms)
                    mn = l, ms = h[l].s;
                if (r < K && h[r].s < ms)
                    mn = r;
                if (mn == c)
                    break;
                h[c] = h[mn];
                c = mn;
            }
            h[c] = (scored){s, (int64_t)i + 1};
        }
    }
    qsort(h, m, sizeof *h, cmp_scored_desc);
    memcpy(top, h, m * sizeof *top);
}

/* Repetitions that fit in budget seconds at per-call cost est, within [lo, hi]. */
static int reps_for(double budget, double est, int lo, int hi)
{
    double r = est > 0 ? budget / est : hi;
    return r < lo ? lo : r > hi ? hi : (int)r;
}

static void welch(const double *a, int na, const double *b, int nb, double *z)
{
    double ma = 0, mb = 0, va = 0, vb = 0;
    for (int i = 0; i < na; i++)
        ma += a[i];
    for (int i = 0; i < nb; i++)
        mb += b[i];
    ma /= na;
    mb /= nb;
    for (int i = 0; i < na; i++)
        va += (a[i] - ma) * (a[i] - ma);
    for (int i = 0; i < nb; i++)
        vb += (b[i] - mb) * (b[i] - mb);
    va /= na > 1 ? na - 1 : 1;
    vb /= nb > 1 ? nb - 1 : 1;
    double se = sqrt(va / na + vb / nb);
    *z = se > 0 ? (ma - mb) / se : 0;
}

/* Validate one answer: count, order, range, uniqueness, scope. */
static void check_answer(const catalog *c, int aisle, size_t scope_n, const sako_rec *r,
                         size_t n)
{
    size_t want = scope_n < K ? scope_n : K;
    if (n != want)
        check_fail("n_out %zu, expected %zu", n, want);
    for (size_t j = 0; j < n; j++) {
        if (!(r[j].score >= 0.0 && r[j].score <= 1.0))
            check_fail("score %g out of [0, 1]", r[j].score);
        if (j > 0 && r[j].score > r[j - 1].score)
            check_fail("scores not descending at rank %zu", j);
        if (r[j].item_id < 1 || (size_t)r[j].item_id > c->n)
            check_fail("unknown item id %lld", (long long)r[j].item_id);
        else if (aisle >= 0 && c->aisle[r[j].item_id - 1] != aisle)
            check_fail("item %lld is outside the queried aisle", (long long)r[j].item_id);
        if (r[j].source != SAKO_SOURCE_THOMPSON)
            check_fail("source %d", r[j].source);
        for (size_t i = 0; i < j; i++)
            if (r[i].item_id == r[j].item_id)
                check_fail("item %lld twice in one answer", (long long)r[j].item_id);
    }
}

static void bench_recommend_scope(sako_engine *e, const catalog *c, const sako_beta *betas,
                                  int aisle, const char *scope, int quick, uint64_t seed)
{
    rec_row *row = &rec_rows[n_rec_rows++];
    memset(row, 0, sizeof *row);
    row->catalog_n = c->n;
    row->aisle = aisle >= 0;
    row->scope = scope;
    uint32_t *idx = xmalloc(c->n * sizeof *idx);
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++)
        if (aisle < 0 || c->aisle[i] == aisle)
            idx[n++] = (uint32_t)i;
    row->scope_n = n;
    double budget = quick ? 0.15 : 0.6;
    int max_reps = quick ? 401 : 2001;

    /* libsako. */
    sako_query q = SAKO_QUERY_INIT;
    q.k = K;
    q.category_id = aisle >= 0 ? AISLE_ID(aisle) : 0;
    sako_rec out[K];
    size_t n_out;
    double t0 = now();
    int warm = 0;
    do {
        q.user_id = POP_USER(warm);
        CHECK(sako_recommend(e, &q, out, K, &n_out));
        warm++;
    } while (warm < 5 || (warm < 200 && now() - t0 < 0.05));
    int reps = reps_for(budget, (now() - t0) / warm, 21, max_reps);
    double *times = xmalloc((size_t)reps * sizeof *times);
    double *top1 = xmalloc((size_t)reps * sizeof *top1);
    double *topk = xmalloc((size_t)reps * sizeof *topk);
    int nk = 0;
    for (int r = 0; r < reps; r++) {
        q.user_id = POP_USER(r * 7919);
        double a = now();
        int rc = sako_recommend(e, &q, out, K, &n_out);
        double b = now();
        if (rc != SAKO_OK)
            die("sako_recommend", rc);
        times[r] = b - a;
        check_answer(c, aisle, n, out, n_out);
        if (n_out > 0 && n_out == (n < K ? n : K)) {
            top1[nk] = out[0].score;
            topk[nk++] = out[n_out - 1].score;
        }
    }
    row->lib = (lat){median(times, reps), quantile(times, reps, 0.9), reps};

    /* The original method: sample all + qsort. */
    scored *buf = xmalloc((n ? n : 1) * sizeof *buf);
    scored top[K];
    uint64_t s = seed * 1000003u;
    t0 = now();
    warm = 0;
    do {
        baseline_qsort(betas, idx, n, buf, s++, top);
        warm++;
    } while (warm < 2 || (warm < 50 && now() - t0 < 0.05));
    int oreps = reps_for(budget, (now() - t0) / warm, quick ? 5 : 9, max_reps);
    double *otimes = xmalloc((size_t)oreps * sizeof *otimes);
    for (int r = 0; r < oreps; r++) {
        double a = now();
        baseline_qsort(betas, idx, n, buf, s++, top);
        otimes[r] = now() - a;
    }
    row->orig = (lat){median(otimes, oreps), quantile(otimes, oreps, 0.9), oreps};

    /* Brute force with a heap; its draws are the reference for the check. */
    t0 = now();
    warm = 0;
    do {
        baseline_heap(betas, idx, n, s++, top);
        warm++;
    } while (warm < 2 || (warm < 50 && now() - t0 < 0.05));
    int hreps = reps_for(budget, (now() - t0) / warm, quick ? 5 : 9, max_reps);
    /* At least 200 reference draws when they are cheap (under ~3 s). */
    if (hreps < 200 && (now() - t0) / warm * 200 < 3.0)
        hreps = 200;
    double *htimes = xmalloc((size_t)hreps * sizeof *htimes);
    double *h1 = xmalloc((size_t)hreps * sizeof *h1);
    double *hk = xmalloc((size_t)hreps * sizeof *hk);
    for (int r = 0; r < hreps && n > 0; r++) {
        double a = now();
        baseline_heap(betas, idx, n, s++, top);
        htimes[r] = now() - a;
        h1[r] = top[0].s;
        hk[r] = top[(n < K ? n : K) - 1].s;
    }
    row->heap = (lat){median(htimes, hreps), quantile(htimes, hreps, 0.9), hreps};
    if (n > 0 && nk > 1) {
        welch(top1, nk, h1, hreps, &row->z1);
        welch(topk, nk, hk, hreps, &row->zk);
        row->n_draws_lib = nk;
        row->n_draws_ref = hreps;
    }
    char b1[32], b2[32], b3[32];
    progress("  %s: libsako %s, sample+qsort %s, sample+heap %s (z %.1f / %.1f)",
             scope, fmt_time(b1, 32, row->lib.med),
             fmt_time(b2, 32, row->orig.med), fmt_time(b3, 32, row->heap.med), row->z1,
             row->zk);
    free(times), free(top1), free(topk), free(buf), free(otimes), free(htimes), free(h1),
        free(hk), free(idx);
}

static sako_options bench_options(uint64_t seed, int durability)
{
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = seed;
    o.durability = durability;
    return o;
}

/* Build an engine over a generated catalog of n items on path (NULL = memory). */
static sako_engine *build_engine(const catalog *c, const char *path, uint64_t seed,
                                 build_row *br, double temperature)
{
    sako_options o = bench_options(seed, SAKO_DURABLE_OFF);
    if (temperature >= 0)
        o.personal_temperature = temperature;
    sako_engine *e = NULL;
    CHECK(sako_init(&e, path, &o));
    catalog_upsert(e, c);
    double ingest;
    br->n = c->n;
    br->events = catalog_ingest(e, c, seed, &ingest);
    br->ingest_s = ingest;
    double t = now();
    CHECK(sako_retrain(e));
    br->retrain_s = now() - t;
    return e;
}

/* The posteriors libsako samples, for the baselines; seconds taken. */
static double read_posteriors(sako_engine *e, size_t n, sako_beta *betas)
{
    double t = now();
    for (size_t i = 0; i < n; i++) {
        sako_item_info info;
        CHECK(sako_item_get(e, (int64_t)i + 1, &info));
        sako__beta_set(&betas[i], info.alpha, info.beta);
    }
    return now() - t;
}

static void bench_reopen(const char *path, const catalog *c, const build_row *br, int quick,
                         uint64_t seed);
static size_t bench_personal(sako_engine *e, const catalog *c, const char *variant, int quick,
                             uint64_t seed);

/* Recommend latency over a generated catalog of n items. With on_file, the catalog
 * is built in a database file (still SAKO_DURABLE_OFF) that then serves the reopen
 * test: one build of the 1M catalog instead of two keeps the run short. */
static void bench_recommend(size_t n, int on_file, int quick, uint64_t seed)
{
    char b[32], b2[32];
    catalog c;
    catalog_make(&c, n, seed + n);
    const char *path = on_file ? tmp_path("catalog.db") : NULL;
    progress("recommend: catalog of %s items, ~%s events to ingest%s", fmt_size(b, 32, n),
             fmt_count(b2, 32, (double)c.n_events), on_file ? ", in a file" : "");
    build_row *br = &build_rows[n_build_rows++];
    double t = now();
    sako_engine *e = build_engine(&c, path, seed + n, br, -1);
    br->on_file = on_file;
    br->build_s = now() - t;
    progress("  built: %s events in %.2f s of sako_update (%s events/s), retrain %.2f s",
             fmt_count(b, 32, (double)br->events), br->ingest_s,
             fmt_count(b2, 32, (double)br->events / br->ingest_s), br->retrain_s);
    sako_beta *betas = xmalloc(n * sizeof *betas);
    br->posteriors_s = read_posteriors(e, n, betas);
    bench_recommend_scope(e, &c, betas, -1, "whole catalog", quick, seed);
    bench_recommend_scope(e, &c, betas, catalog_mid_aisle(&c), "one aisle", quick, seed);
    if (n >= 50000) {
        /* A live service does not retrain before every request: add 10% more events
         * (drawn by exposure, default prior refreshes, no retrain) and measure again. */
        size_t extra = (size_t)(br->events / 10);
        sako_event *ev = make_event_pool(&c, extra, seed + n + 1);
        for (size_t j = 0; j < extra; j++)
            ev[j].time = event_clock++;
        for (size_t j = 0; j < extra; j += 100000)
            CHECK(sako_update(e, ev + j, extra - j < 100000 ? extra - j : 100000));
        free(ev);
        read_posteriors(e, n, betas);
        progress("  +%s events since the retrain", fmt_count(b, 32, (double)extra));
        bench_recommend_scope(e, &c, betas, -1, "whole, +10% ev", quick, seed);
        br->extra_events = extra;
        /* The personal engine on the same catalog (after the rows above: its organic
         * purchases and retrain change the population model). */
        br->extra_events += bench_personal(e, &c, "default (T = 0, mean)", quick, seed + n);
        if (n == 50000) {
            /* personal_temperature is a stored model option: a second engine over the
             * same catalog and events, with T = 0.05 (a Thompson draw per candidate). */
            build_row tmp;
            sako_engine *e0 = build_engine(&c, NULL, seed + n, &tmp, 0.05);
            bench_personal(e0, &c, "T = 0.05 (Beta draws)", quick, seed + n);
            sako_close(e0);
        }
    }
    sako_close(e);
    free(betas);
    if (path) {
        bench_reopen(path, &c, br, quick, seed);
        remove_db(path);
    }
    catalog_free(&c);
}

/* --------------------------------------------------------------------- update */

/* A pool of events over a catalog, items drawn by exposure (impressions + 1). */
static sako_event *make_event_pool(const catalog *c, size_t n, uint64_t seed)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed);
    double *cum = xmalloc(c->n * sizeof *cum), sum = 0;
    for (size_t i = 0; i < c->n; i++)
        cum[i] = sum += c->impr[i] + 1.0;
    sako_event *ev = xmalloc(n * sizeof *ev);
    for (size_t j = 0; j < n; j++) {
        double u = sako__rng_uniform(&rng) * sum;
        size_t lo = 0, hi = c->n - 1;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cum[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        double v = sako__rng_uniform(&rng);
        int type = v < 0.90 ? SAKO_EVENT_IMPRESSION
                 : v < 0.96 ? SAKO_EVENT_CLICK
                 : v < 0.985 ? SAKO_EVENT_CART : SAKO_EVENT_PURCHASE;
        ev[j] = (sako_event){(int64_t)(1 + sako__rng_next(&rng) % N_USERS), (int64_t)lo + 1,
                             type, 0, REC_ID(j)};
    }
    free(cum);
    return ev;
}

/* Send n_batches batches of size batch from the pool (cyclically); seconds. Counts
 * the prior refreshes seen (events_since_refresh falling) into *refreshes. */
static double send_batches(sako_engine *e, sako_event *pool, size_t pool_n, size_t *pos,
                           size_t batch, int n_batches, int *refreshes)
{
    double busy = 0;
    sako_stats st;
    CHECK(sako_stats_get(e, &st));
    uint64_t since = st.events_since_refresh;
    for (int i = 0; i < n_batches; i++) {
        if (*pos + batch > pool_n)
            *pos = 0;
        sako_event *b = pool + *pos;
        for (size_t j = 0; j < batch; j++)
            b[j].time = event_clock++;
        double t = now();
        int rc = sako_update(e, b, batch);
        busy += now() - t;
        if (rc != SAKO_OK)
            die("sako_update", rc);
        *pos += batch;
        CHECK(sako_stats_get(e, &st));
        if (st.events_since_refresh < since + batch)
            ++*refreshes;
        since = st.events_since_refresh;
    }
    return busy;
}

static void bench_update_mode(sako_engine *e, const char *mode, sako_event *pool,
                              size_t pool_n, const size_t *batches, const int *max_batches,
                              int reps, double budget)
{
    size_t pos = 0;
    char b[32];
    for (int i = 0; i < 3; i++) {
        size_t batch = batches[i];
        /* Warm up and estimate the cost of one batch. */
        int w = max_batches[i] < 5 ? 1 : 5, refreshes = 0;
        double est = send_batches(e, pool, pool_n, &pos, batch, w, &refreshes) / w;
        refreshes = 0;
        int nb = reps_for(budget, est, max_batches[i] < 3 ? max_batches[i] : 3, max_batches[i]);
        /* Prior refreshes (an O(catalog) rebuild, by default after 10,000 events or
         * more) are lumps of work: when the bound allows, measure multiples of 10,000
         * events. The median of the repeats may still miss them; the amortized rate
         * (all repeats together) includes them. */
        int period = (int)(10000 / batch);
        if (period >= 1 && period <= max_batches[i])
            nb = nb < period ? period : nb / period * period;
        double *rates = xmalloc((size_t)reps * sizeof *rates);
        double total = 0;
        for (int r = 0; r < reps; r++) {
            double t = send_batches(e, pool, pool_n, &pos, batch, nb, &refreshes);
            rates[r] = (double)batch * nb / t;
            total += t;
        }
        upd_row *u = &upd_rows[n_upd_rows++];
        u->mode = mode;
        u->batch = batch;
        u->rate = median(rates, reps);
        u->amortized = (double)batch * nb * reps / total;
        u->refreshes = refreshes;
        u->batch_lat = (double)batch / u->rate;
        u->reps = reps;
        u->events_per_rep = batch * (size_t)nb;
        progress("  %s, batches of %zu: %s events/s (%d x %d batches, %d refreshes)", mode,
                 batch, fmt_count(b, 32, u->rate), reps, nb, refreshes);
        free(rates);
    }
}

static void bench_update(int quick, uint64_t seed)
{
    catalog c;
    catalog_make(&c, 50000, seed + 777);
    size_t pool_n = 2000000;
    sako_event *pool = make_event_pool(&c, pool_n, seed + 778);
    static const size_t batches[3] = {1, 100, 10000};
    int reps = quick ? 3 : 5;

    progress("update: in memory (SAKO_DURABLE_OFF), 50k-item catalog");
    sako_options o = bench_options(seed, SAKO_DURABLE_OFF);
    sako_engine *e = NULL;
    CHECK(sako_init(&e, NULL, &o));
    catalog_upsert(e, &c);
    static const int mem_max[3] = {20000, 2000, 100};
    bench_update_mode(e, "memory, SAKO_DURABLE_OFF", pool, pool_n, batches, mem_max, reps,
                      quick ? 0.1 : 0.3);
    sako_close(e);

    progress("update: file, SAKO_DURABLE_FULL (fsync per batch), 50k-item catalog");
    const char *path = tmp_path("update.db");
    o = bench_options(seed, SAKO_DURABLE_FULL);
    CHECK(sako_init(&e, path, &o));
    catalog_upsert(e, &c);
    /* Bounded: 5 x 40 batches of 1 and of 100, 5 x 10 batches of 10,000. */
    static const int dur_max[3] = {40, 40, 10};
    bench_update_mode(e, "file, SAKO_DURABLE_FULL", pool, pool_n, batches, dur_max, reps,
                      quick ? 0.2 : 1.0);
    sako_close(e);
    remove_db(path);
    free(pool);
    catalog_free(&c);
}

/* ------------------------------------------------------------------- personal */

/* Users with a long purchase history, queried in turn: each bought P_PRODUCTS
 * distinct products over P_BASKETS baskets (orders) of P_LINES lines, 2.5 days
 * apart; half the lines are first purchases, half repeats skewed towards a few
 * staples (the most repeated product is in most baskets). */
#define P_USERS 16
#define P_PRODUCTS 300
#define P_BASKETS 60
#define P_LINES 10
#define P_USER0 ((int64_t)2 * N_USERS)        /* their ids: P_USER0 + 1 .. + P_USERS */
#define BG_BASKETS 20000                      /* other users' organic baskets */
#define DAY_MS 86400000LL
#define P_T0 (T0_MS + 20 * DAY_MS)            /* after every event sent before */
#define P_GAP_MS (DAY_MS * 5 / 2)
#define P_QUERY_TIME (P_T0 + P_BASKETS * P_GAP_MS + DAY_MS)

typedef struct pers_row {
    size_t catalog_n;
    const char *variant;
    lat pers, pop;           /* interleaved: personal user / anonymous user */
    lat pers_alone, pop_alone; /* the same calls in runs of their own */
    double src[SAKO_SOURCES];/* share of the personal results by source */
    size_t organic;          /* organic purchases sent before */
    double retrain_s;
} pers_row;

static pers_row pers_rows[4];
static int n_pers_rows;

/* Items drawn by exposure (impressions + 1), the same weighting as the event pools. */
typedef struct exposure {
    double *cum, sum;
    size_t n;
} exposure;

static void exposure_make(exposure *x, const catalog *c)
{
    x->n = c->n;
    x->cum = xmalloc(c->n * sizeof *x->cum);
    x->sum = 0;
    for (size_t i = 0; i < c->n; i++)
        x->cum[i] = x->sum += c->impr[i] + 1.0;
}

static int64_t exposure_pick(const exposure *x, sako_rng *rng)
{
    double u = sako__rng_uniform(rng) * x->sum;
    size_t lo = 0, hi = x->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->cum[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo + 1;
}

/* n distinct items by exposure. */
static void distinct_items(const exposure *x, sako_rng *rng, int64_t *v, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        int64_t id;
        int dup;
        do {
            id = exposure_pick(x, rng);
            dup = 0;
            for (size_t i = 0; i < j && !dup; i++)
                dup = v[i] == id;
        } while (dup);
        v[j] = id;
    }
}

/* Organic purchases (rec_id 0, with order ids) of the P_USERS long-history users
 * and BG_BASKETS baskets of other users, in time order; sent in batches of 100,000.
 * Returns the number of purchases. */
static size_t personal_history(sako_engine *e, const catalog *c, uint64_t seed)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed ^ 0xba5e7);
    exposure x;
    exposure_make(&x, c);
    int64_t (*prod)[P_PRODUCTS] = xmalloc(P_USERS * sizeof *prod);
    int64_t (*lines)[P_BASKETS * P_LINES] = xmalloc(P_USERS * sizeof *lines);
    for (int u = 0; u < P_USERS; u++) {
        distinct_items(&x, &rng, prod[u], P_PRODUCTS);
        int64_t *l = lines[u];
        for (int j = 0; j < P_PRODUCTS; j++)
            l[j] = prod[u][j];
        for (int j = P_PRODUCTS; j < P_BASKETS * P_LINES; j++) {
            double v = sako__rng_uniform(&rng);
            l[j] = prod[u][(int)(P_PRODUCTS * v * v * v)];
        }
        for (int j = P_BASKETS * P_LINES; j > 1; j--) {
            int i = (int)(sako__rng_next(&rng) % (uint64_t)j);
            int64_t t = l[j - 1];
            l[j - 1] = l[i];
            l[i] = t;
        }
    }
    size_t cap = 100000, nb = 0, sent = 0;
    /* Flushed when cap is reached; room for one slot's long histories and one basket more. */
    sako_event *ev = xmalloc((cap + P_USERS * P_LINES + 20) * sizeof *ev);
    int64_t *orders = xmalloc((cap + P_USERS * P_LINES + 20) * sizeof *orders);
    int64_t order = 1;
    int bg_per = BG_BASKETS / P_BASKETS;
    for (int b = 0; b < P_BASKETS; b++) {
        int64_t t = P_T0 + b * P_GAP_MS;
        for (int u = 0; u < P_USERS; u++, order++)
            for (int j = 0; j < P_LINES; j++) {
                ev[nb] = (sako_event){P_USER0 + 1 + u, lines[u][b * P_LINES + j],
                                      SAKO_EVENT_PURCHASE, t++, 0};
                orders[nb++] = order;
            }
        for (int g = 0; g < bg_per; g++, order++) {
            int64_t user = (int64_t)(1 + sako__rng_next(&rng) % N_USERS);
            int m = 1 + (int)(sako__rng_next(&rng) % 19);
            for (int j = 0; j < m; j++) {
                ev[nb] = (sako_event){user, exposure_pick(&x, &rng), SAKO_EVENT_PURCHASE,
                                      t++, 0};
                orders[nb++] = order;
            }
            if (nb >= cap) {
                CHECK(sako_update_orders(e, ev, orders, nb));
                sent += nb;
                nb = 0;
            }
        }
    }
    if (nb)
        CHECK(sako_update_orders(e, ev, orders, nb));
    sent += nb;
    for (int u = 0; u < P_USERS; u++) {
        sako_user_info ui;
        CHECK(sako_user_get(e, P_USER0 + 1 + u, &ui));
        if (ui.n_products != P_PRODUCTS || ui.n_baskets != P_BASKETS || !ui.personal)
            check_fail("personal user %d: %llu products, %llu baskets, personal %d", u,
                       (unsigned long long)ui.n_products, (unsigned long long)ui.n_baskets,
                       ui.personal);
    }
    free(ev), free(orders), free(prod), free(lines), free(x.cum);
    return sent;
}

static void check_personal(const catalog *c, const sako_rec *r, size_t n, double *src)
{
    if (n != K)
        check_fail("personal: n_out %zu, expected %d", n, K);
    for (size_t j = 0; j < n; j++) {
        if (!(r[j].score >= 0.0 && r[j].score <= 1.0))
            check_fail("personal: score %g out of [0, 1]", r[j].score);
        if (j > 0 && r[j].score > r[j - 1].score)
            check_fail("personal: scores not descending at rank %zu", j);
        if (r[j].item_id < 1 || (size_t)r[j].item_id > c->n)
            check_fail("personal: unknown item id %lld", (long long)r[j].item_id);
        if (r[j].source < SAKO_SOURCE_REPEAT || r[j].source >= SAKO_SOURCES)
            check_fail("personal: source %d", r[j].source);
        else
            src[r[j].source] += 1.0;
        for (size_t i = 0; i < j; i++)
            if (r[i].item_id == r[j].item_id)
                check_fail("personal: item %lld twice in one answer", (long long)r[j].item_id);
    }
}

/* Personalised recommend, k = K, for the long-history users, interleaved call by
 * call with the population path (an anonymous user) on the same engine. */
static size_t bench_personal(sako_engine *e, const catalog *c, const char *variant, int quick,
                             uint64_t seed)
{
    char b1[32], b2[32];
    pers_row *row = &pers_rows[n_pers_rows++];
    memset(row, 0, sizeof *row);
    row->catalog_n = c->n;
    row->variant = variant;
    progress("personal: %d users x %d products in %d baskets, %d other baskets (%s)", P_USERS,
             P_PRODUCTS, P_BASKETS, BG_BASKETS, variant);
    row->organic = personal_history(e, c, seed);
    /* A new epoch, so that demand (organic purchases) enters the priors and lists. */
    double t = now();
    CHECK(sako_retrain(e));
    row->retrain_s = now() - t;
    progress("  %s organic purchases sent; sako_retrain %.2f s",
             fmt_count(b1, 32, (double)row->organic), row->retrain_s);

    sako_query qp = SAKO_QUERY_INIT, q0 = SAKO_QUERY_INIT;
    qp.k = q0.k = K;
    qp.time = q0.time = P_QUERY_TIME;
    sako_rec out[K];
    size_t n_out;
    for (int w = 0; w < 200; w++) {
        qp.user_id = P_USER0 + 1 + w % P_USERS;
        CHECK(sako_recommend(e, &qp, out, K, &n_out));
        CHECK(sako_recommend(e, &q0, out, K, &n_out));
    }
    int reps = quick ? 401 : 2001;
    double *tp = xmalloc((size_t)reps * sizeof *tp), *t0 = xmalloc((size_t)reps * sizeof *t0);
    double src[SAKO_SOURCES] = {0}, n_src = 0;
    for (int r = 0; r < reps; r++) {
        qp.user_id = P_USER0 + 1 + r % P_USERS;
        for (int half = 0; half < 2; half++) {
            int personal = (half == 0) == (r % 2 == 0); /* alternate which goes first */
            double a = now();
            int rc = sako_recommend(e, personal ? &qp : &q0, out, K, &n_out);
            double z = now();
            if (rc != SAKO_OK)
                die("sako_recommend", rc);
            if (personal) {
                tp[r] = z - a;
                check_personal(c, out, n_out, src);
                n_src += (double)n_out;
            } else {
                t0[r] = z - a;
                if (n_out != K || out[0].source != SAKO_SOURCE_THOMPSON)
                    check_fail("anonymous user: %zu results, source %d", n_out,
                               n_out ? out[0].source : 0);
            }
        }
    }
    row->pers = (lat){median(tp, reps), quantile(tp, reps, 0.9), reps};
    row->pop = (lat){median(t0, reps), quantile(t0, reps, 0.9), reps};
    /* Each path in a run of its own (caches hold only its own working set). */
    for (int personal = 1; personal >= 0; personal--) {
        double *tv = personal ? tp : t0;
        for (int r = 0; r < reps; r++) {
            qp.user_id = P_USER0 + 1 + r % P_USERS;
            double a = now();
            int rc = sako_recommend(e, personal ? &qp : &q0, out, K, &n_out);
            tv[r] = now() - a;
            if (rc != SAKO_OK)
                die("sako_recommend", rc);
        }
        lat l = {median(tv, reps), quantile(tv, reps, 0.9), reps};
        if (personal)
            row->pers_alone = l;
        else
            row->pop_alone = l;
    }
    for (int s = 0; s < SAKO_SOURCES; s++)
        row->src[s] = n_src > 0 ? src[s] / n_src : 0;
    char b3[32], b4[32];
    progress("  interleaved: personal %s, population %s (ratio %.1f); alone: %s, %s; sources: "
             "repeat %.0f%%, affinity %.0f%%, co-purchase %.0f%%, demand %.0f%%",
             fmt_time(b1, 32, row->pers.med), fmt_time(b2, 32, row->pop.med),
             row->pers.med / row->pop.med, fmt_time(b3, 32, row->pers_alone.med),
             fmt_time(b4, 32, row->pop_alone.med), 100 * row->src[SAKO_SOURCE_REPEAT],
             100 * row->src[SAKO_SOURCE_AFFINITY], 100 * row->src[SAKO_SOURCE_COPURCHASE],
             100 * row->src[SAKO_SOURCE_DEMAND]);
    free(tp), free(t0);
    return row->organic;
}

/* ------------------------------------------------------- ingest with purchases */

typedef struct pingest_row {
    const char *mode;
    double rate, amortized;  /* events/s: median of repeats, all repeats together */
    int reps, batches;
    int refreshes;
} pingest_row;

static pingest_row pingest_rows[4];
static int n_pingest_rows;
static size_t pingest_events, pingest_purchases, pingest_warm;
static int pingest_users;

/* A shop's stream: visits of users 1..N_USERS, each 1-15 purchases (mean 8) under
 * one order id and 4 browsing events per purchase (impressions, clicks, carts of
 * recommendations, with a rec_id); 90 % of the purchases are organic (rec_id 0).
 * Half of a user's purchases come from 30 staples of their own, so histories repeat. */
static sako_event *purchase_pool(const catalog *c, size_t n, uint64_t seed, int64_t **orders_out,
                                 size_t *n_purchases)
{
    sako_rng rng;
    sako__rng_seed(&rng, seed);
    exposure x;
    exposure_make(&x, c);
    sako_event *ev = xmalloc((n + 80) * sizeof *ev);
    int64_t *orders = xmalloc((n + 80) * sizeof *orders);
    size_t m = 0, buys = 0;
    int64_t order = 1, rec = 1, t = T0_MS + 30 * DAY_MS;
    while (m < n) {
        int64_t user = (int64_t)(1 + sako__rng_next(&rng) % N_USERS);
        int nb = 1 + (int)(sako__rng_next(&rng) % 15);
        for (int j = 0; j < 4 * nb; j++, t += 200) {
            double v = sako__rng_uniform(&rng);
            int type = v < 0.85 ? SAKO_EVENT_IMPRESSION
                     : v < 0.95 ? SAKO_EVENT_CLICK : SAKO_EVENT_CART;
            ev[m] = (sako_event){user, exposure_pick(&x, &rng), type, t, rec + j / K};
            orders[m++] = 0;
        }
        for (int j = 0; j < nb; j++, t += 200) {
            int64_t item;
            if (sako__rng_uniform(&rng) < 0.5) {
                /* One of the user's 30 staples: a fixed hash of (user, slot). */
                uint64_t h = (uint64_t)user * 0x9e3779b97f4a7c15ULL +
                             (sako__rng_next(&rng) % 30) * 0xbf58476d1ce4e5b9ULL;
                h ^= h >> 31;
                h *= 0x94d049bb133111ebULL;
                h ^= h >> 29;
                item = (int64_t)(1 + h % c->n);
            } else {
                item = exposure_pick(&x, &rng);
            }
            int64_t rid = sako__rng_uniform(&rng) < 0.1 ? rec : 0;
            ev[m] = (sako_event){user, item, SAKO_EVENT_PURCHASE, t, rid};
            orders[m++] = order;
            buys++;
        }
        order++;
        rec += 1 + 4 * nb / K;
        t += 60000;
    }
    free(x.cum);
    *orders_out = orders;
    *n_purchases = buys;
    return ev;
}

/* Durable ingest (SAKO_DURABLE_FULL, batches of 10,000 through sako_update_orders) of
 * the purchase stream, personal = 1 and personal = 0, repeats interleaved. */
static void bench_personal_ingest(int quick, uint64_t seed)
{
    catalog c;
    catalog_make(&c, 50000, seed + 777);
    const size_t batch = 10000;
    int warm = quick ? 3 : 5, per = quick ? 3 : 8, reps = quick ? 3 : 5;
    size_t n = batch * (size_t)(warm + per * reps);
    int64_t *orders;
    size_t buys;
    sako_event *pool = purchase_pool(&c, n, seed + 779, &orders, &buys);
    pingest_events = n;
    pingest_purchases = buys;
    pingest_warm = batch * (size_t)warm;
    pingest_users = N_USERS;
    progress("ingest with purchases: file, SAKO_DURABLE_FULL, 50k items, %.0f%% purchases, "
             "personal 1 vs 0", 100.0 * (double)buys / (double)n);
    static const char *modes[2] = {"personal = 1 (default)", "personal = 0"};
    sako_engine *e[2];
    const char *paths[2] = {tmp_path("ingest1.db"), tmp_path("ingest0.db")};
    for (int m = 0; m < 2; m++) {
        sako_options o = bench_options(seed, SAKO_DURABLE_FULL);
        o.personal = m == 0;
        CHECK(sako_init(&e[m], paths[m], &o));
        catalog_upsert(e[m], &c);
        for (int b = 0; b < warm; b++)
            CHECK(sako_update_orders(e[m], pool + b * batch, orders + b * batch, batch));
    }
    double rates[2][8], total[2] = {0, 0};
    int refreshes[2] = {0, 0};
    for (int r = 0; r < reps; r++)
        for (int mm = 0; mm < 2; mm++) {
            int m = (mm + r) % 2;
            double busy = 0;
            sako_stats st;
            CHECK(sako_stats_get(e[m], &st));
            uint64_t since = st.events_since_refresh;
            for (int b = 0; b < per; b++) {
                size_t off = batch * (size_t)(warm + r * per + b);
                double t = now();
                int rc = sako_update_orders(e[m], pool + off, orders + off, batch);
                busy += now() - t;
                if (rc != SAKO_OK)
                    die("sako_update_orders", rc);
                CHECK(sako_stats_get(e[m], &st));
                if (st.events_since_refresh < since + batch)
                    refreshes[m]++;
                since = st.events_since_refresh;
            }
            rates[m][r] = (double)batch * per / busy;
            total[m] += busy;
        }
    char b[32];
    for (int m = 0; m < 2; m++) {
        pingest_row *row = &pingest_rows[n_pingest_rows++];
        row->mode = modes[m];
        row->rate = median(rates[m], reps);
        row->amortized = (double)batch * per * reps / total[m];
        row->reps = reps;
        row->batches = per;
        row->refreshes = refreshes[m];
        progress("  %s: %s events/s (%d x %d batches, %d refreshes)", modes[m],
                 fmt_count(b, 32, row->rate), reps, per, refreshes[m]);
        sako_close(e[m]);
        remove_db(paths[m]);
    }
    free(pool), free(orders);
    catalog_free(&c);
}

/* ------------------------------------------------------------------- memory */

typedef struct mem_point {
    size_t users;
    double rss_mb;
    double heap_mb;     /* bytes allocated by malloc and not freed (glibc), else NAN */
} mem_point;

static mem_point mem_points[16];
static int n_mem_points;
static double mem_base_mb, mem_per_user, mem_intercept_mb, mem_ingest_s, mem_heap_per_user;
static size_t mem_products = 100, mem_catalog = 50000;

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static double heap_mb(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (double)(mi.uordblks + mi.hblkhd) / 1048576.0;
#else
    return NAN;
#endif
}

static mem_point mem_now(size_t users)
{
    return (mem_point){users, rss_mb(), heap_mb()};
}

/* Least-squares slope and intercept of y over x. */
static void fit_line(const double *x, const double *y, int n, double *slope, double *icept)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++)
        sx += x[i], sy += y[i], sxx += x[i] * x[i], sxy += x[i] * y[i];
    *slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    *icept = (sy - *slope * sx) / n;
}

/* RSS growth of one engine (a file, SAKO_DURABLE_OFF: the log is on disk and
 * SQLite's page cache bounded) as users each buy mem_products distinct products in
 * 10 baskets of 10; a straight line through the points, extrapolated to 1M users. */
static void bench_memory(int quick, uint64_t seed)
{
    catalog c;
    catalog_make(&c, mem_catalog, seed + 555);
    exposure x;
    exposure_make(&x, &c);
    size_t users = quick ? 20000 : 40000, step = users / 5, per_batch = 1000;
    progress("memory: %zu users x %zu distinct products (10 baskets of 10), %s-item catalog",
             users, mem_products, "50k");
    const char *path = tmp_path("memory.db");
    sako_options o = bench_options(seed, SAKO_DURABLE_OFF);
    sako_engine *e = NULL;
    CHECK(sako_init(&e, path, &o));
    catalog_upsert(e, &c);
    sako_rng rng;
    sako__rng_seed(&rng, seed ^ 0x3e3);
    size_t n = per_batch * mem_products;
    sako_event *ev = xmalloc(n * sizeof *ev);
    int64_t *orders = xmalloc(n * sizeof *orders);
    int64_t *items = xmalloc(mem_products * sizeof *items);
    int64_t order = 1, t = T0_MS;
#ifdef __GLIBC__
    malloc_trim(0); /* give back what earlier parts freed, so that RSS grows from here */
#endif
    mem_points[n_mem_points++] = mem_now(0);
    mem_base_mb = mem_points[0].rss_mb;
    double busy = 0;
    for (size_t u0 = 0; u0 < users; u0 += per_batch) {
        size_t m = 0;
        for (size_t u = u0; u < u0 + per_batch; u++) {
            distinct_items(&x, &rng, items, mem_products);
            for (size_t j = 0; j < mem_products; j++) {
                if (j % 10 == 0)
                    order++;
                ev[m] = (sako_event){(int64_t)u + 1, items[j], SAKO_EVENT_PURCHASE, t++, 0};
                orders[m++] = order;
            }
        }
        double a = now();
        CHECK(sako_update_orders(e, ev, orders, m));
        busy += now() - a;
        if ((u0 + per_batch) % step == 0) {
            mem_point pt = mem_now(u0 + per_batch);
            mem_points[n_mem_points++] = pt;
            progress("  %zu users: RSS %.1f MiB, heap in use %.1f MiB", pt.users, pt.rss_mb,
                     pt.heap_mb);
        }
    }
    mem_ingest_s = busy;
    sako_stats st;
    CHECK(sako_stats_get(e, &st));
    if (st.n_users != users)
        check_fail("memory: %llu users, expected %zu", (unsigned long long)st.n_users, users);
    /* Least squares over the points after the first step (the first one carries the
     * fixed costs: partner tables, staging buffers). */
    double px[16], py[16], ph[16], slope, icept, hslope, hicept;
    int k = 0;
    for (int i = 1; i < n_mem_points; i++, k++) {
        px[k] = (double)mem_points[i].users;
        py[k] = mem_points[i].rss_mb;
        ph[k] = mem_points[i].heap_mb;
    }
    fit_line(px, py, k, &slope, &icept);
    fit_line(px, ph, k, &hslope, &hicept);
    mem_per_user = slope * 1048576.0;
    mem_intercept_mb = icept;
    mem_heap_per_user = hslope * 1048576.0;
    progress("  %.0f bytes per user (RSS slope), %.0f (heap slope); 1M users: %.2f GiB",
             mem_per_user, mem_heap_per_user,
             (mem_intercept_mb * 1048576.0 + 1e6 * mem_per_user) / 1073741824.0);
    sako_close(e);
    remove_db(path);
    free(ev), free(orders), free(items), free(x.cum);
    catalog_free(&c);
}

/* --------------------------------------------------------------------- reopen */

static void bench_reopen(const char *path, const catalog *c, const build_row *br, int quick,
                         uint64_t seed)
{
    char b[32];
    progress("reopen: the %s-item database file", fmt_size(b, 32, c->n));
    reopen.build_s = br->build_s;
    reopen.items = c->n;
    reopen.events = br->events + br->extra_events;
    struct stat st;
    double bytes = 0;
    if (stat(path, &st) == 0)
        bytes += (double)st.st_size;
    char wal[700];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (stat(wal, &st) == 0)
        bytes += (double)st.st_size;
    reopen.file_mb = bytes / 1e6;
    /* The file was just written, so the page cache is warm. One more warm-up open
     * when opening is quick; when it is slow (seconds), 3 measured opens only. */
    int reps = quick ? 3 : 5;
    double ti[8], tf[8], tc[8];
    sako_options o = bench_options(seed, SAKO_DURABLE_FULL);
    sako_query q = SAKO_QUERY_INIT;
    sako_rec out[K];
    size_t n_out;
    double tr[8];
    int done = 0;
    for (int r = 0; done < reps; r++) {
        sako_engine *e = NULL;
        double a = now();
        CHECK(sako_init(&e, path, &o));
        double m = now();
        CHECK(sako_recommend(e, &q, out, K, &n_out));
        double z = now();
        /* An engine may open before its samplers are built (and brute-force until
         * then): also time until a request is fast, polling every 0.2 s (a slow
         * request itself takes a core while the samplers are being built). */
        double ready = z, last = z - m;
        while (last >= READY_LATENCY && now() - a < READY_TIMEOUT) {
            struct timespec pause = {0, 200000000};
            nanosleep(&pause, NULL);
            double b = now();
            CHECK(sako_recommend(e, &q, out, K, &n_out));
            ready = now();
            last = ready - b;
        }
        if (last >= READY_LATENCY)
            reopen.ready_timeout = 1;
        double y = now();
        sako_close(e);
        double w = now();
        progress("  open %.3f s, first recommend %.3g ms, fast after %.3f s, close %.3f s",
                 m - a, (z - m) * 1e3, ready - a, w - y);
        if (r == 0 && ready - a > 2.0)
            reps = 3;
        else if (r == 0)
            continue;
        ti[done] = m - a;
        tf[done] = z - m;
        tr[done] = ready - a;
        tc[done++] = w - y;
    }
    reopen.init_s = median(ti, reps);
    reopen.first_s = median(tf, reps);
    reopen.ready_s = median(tr, reps);
    reopen.close_s = median(tc, reps);
    reopen.reps = reps;
    reopen.done = 1;
}

/* --------------------------------------------------------------------- report */

static char machine[512], run_date[64], load_before[64], load_after[64];

static void describe_machine(void)
{
    struct utsname u;
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    int avx512 = 0;
    if (f) {
        char line[4096];
        int got = 0;
        while (fgets(line, sizeof line, f)) {
            if (!got && strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                if (p) {
                    p++;
                    while (*p == ' ')
                        p++;
                    p[strcspn(p, "\n")] = '\0';
                    snprintf(model, sizeof model, "%s", p);
                    got = 1;
                }
            }
            if (strncmp(line, "flags", 5) == 0 && strstr(line, " avx512f"))
                avx512 = 1;
        }
        fclose(f);
    }
    if (uname(&u) != 0)
        memset(&u, 0, sizeof u);
    snprintf(machine, sizeof machine, "%s, %s%s, %ld cores online, %s %s", u.machine, model,
             avx512 ? " (AVX-512)" : "", sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release);
    time_t tt = time(NULL);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(run_date, sizeof run_date, "%Y-%m-%d %H:%M UTC", &tm);
}

static void load_string(char *buf, size_t cap)
{
    double l[3];
    if (getloadavg(l, 3) == 3)
        snprintf(buf, cap, "%.2f %.2f %.2f", l[0], l[1], l[2]);
    else
        snprintf(buf, cap, "unknown");
}

static void report(FILE *f, int md, int quick, uint64_t seed, double total_s)
{
    char a[32], b[32], c[32], d[32], e[32], g[32];
    const char *h = md ? "" : "  ";
    if (md) {
        fprintf(f, "- libsako %s, `bench_sako%s --seed %llu`, built by `make bench` "
                   "(%s, -O3)\n", sako_version_string(), quick ? " --quick" : "",
                (unsigned long long)seed, COMPILER);
        fprintf(f, "- machine: %s\n- date: %s; load average before/after: %s / %s; "
                   "whole run %.0f s\n\n", machine, run_date, load_before, load_after, total_s);
    } else {
        fprintf(f, "\nlibsako %s C benchmark%s, seed %llu\n", sako_version_string(),
               quick ? " (--quick)" : "", (unsigned long long)seed);
        fprintf(f, "machine: %s\ncompiler: %s, -O3\ndate: %s; load average before %s, after %s; "
                   "run %.0f s\n", machine, COMPILER, run_date, load_before, load_after,
                total_s);
    }

    if (md)
        fprintf(f, "**Recommend, k = %d, one thread** — median (p90) latency of single calls; "
                   "baselines on the same posteriors, same run.\n\n"
                   "| catalog | scope | items in scope | libsako | original: sample all + qsort | "
                   "ratio original / libsako | sample all + heap top-%d | ratio heap / libsako |\n"
                   "|---:|:---|---:|---:|---:|---:|---:|---:|\n", K, K);
    else
        fprintf(f, "\nRecommend, k = %d, one thread: median (p90) latency; baselines on the same "
                   "posteriors\n%-8s %-15s %9s  %-22s %-23s %8s  %-22s %8s\n", K, "catalog",
                "scope", "in scope", "libsako", "orig: sample+qsort", "ratio",
                "sample+heap top-20", "ratio");
    for (int i = 0; i < n_rec_rows; i++) {
        rec_row *r = &rec_rows[i];
        char l1[80], l2[80], l3[80];
        snprintf(l1, 80, "%s (%s)", fmt_time(a, 32, r->lib.med), fmt_time(b, 32, r->lib.p90));
        snprintf(l2, 80, "%s (%s)", fmt_time(a, 32, r->orig.med), fmt_time(b, 32, r->orig.p90));
        snprintf(l3, 80, "%s (%s)", fmt_time(a, 32, r->heap.med), fmt_time(b, 32, r->heap.p90));
        fmt_size(c, 32, r->catalog_n);
        fmt_count(d, 32, (double)r->scope_n);
        char r1[32], r2[32];
        fmt_ratio(r1, 32, r->orig.med / r->lib.med);
        fmt_ratio(r2, 32, r->heap.med / r->lib.med);
        if (md)
            fprintf(f, "| %s | %s | %s | %s | %s | **%s×** | %s | %s× |\n", c,
                    r->scope, d, l1, l2, r1, l3, r2);
        else {
            fprintf(f, "%-8s %-15s %9s  ", c, r->scope, d);
            col(f, l1, 22, 1);
            col(f, l2, 23, 1);
            fprintf(f, "%7sx  ", r1);
            col(f, l3, 22, 1);
            fprintf(f, "%7sx\n", r2);
        }
    }
    fprintf(f, md ? "\n" : "");
    fprintf(f, "%sRepetitions (libsako / qsort / heap): ", h);
    for (int i = 0; i < n_rec_rows; i++)
        fprintf(f, "%s%d/%d/%d", i ? ", " : "", rec_rows[i].lib.n, rec_rows[i].orig.n,
                rec_rows[i].heap.n);
    fprintf(f, ".\n");
    fprintf(f, "%s%sDistribution check (not a proof): z of libsako's mean rank-1 and rank-%d "
               "score (rank-n if fewer) vs brute-force draws: ", md ? "\n" : "", h, K);
    for (int i = 0; i < n_rec_rows; i++) {
        fprintf(f, "%s%s %s ", i ? ", " : "", fmt_size(a, 32, rec_rows[i].catalog_n),
                rec_rows[i].scope);
        if (rec_rows[i].n_draws_lib)
            fprintf(f, "%.1f/%.1f", rec_rows[i].z1, rec_rows[i].zk);
        else
            fprintf(f, "n/a");
    }
    fprintf(f, " (|z| > 4 would be suspicious).\n");
    fprintf(f, "%s%sAnswer checks (count, order, range, uniqueness, aisle): %s", md ? "\n" : "",
            h, check_failures ? "" : "all passed.\n");
    if (check_failures)
        fprintf(f, "%ld FAILED, first: %s\n", check_failures, check_first);

    if (md)
        fprintf(f, "\n**Building the catalogs** (SAKO_DURABLE_OFF, shuffled batches of %d "
                   "events, then one sako_retrain):\n\n| catalog | storage | events | "
                   "sako_update time | events/s | sako_retrain | reading posteriors "
                   "(sako_item_get × n) |\n|---:|:---|---:|---:|---:|---:|---:|\n",
                INGEST_BATCH);
    else
        fprintf(f, "\nBuilding the catalogs (SAKO_DURABLE_OFF, batches of %d, then sako_retrain)\n"
                   "%-8s %-7s %12s %12s %12s %12s %14s\n", INGEST_BATCH, "catalog", "storage",
                "events", "update time", "events/s", "retrain", "item_get x n");
    for (int i = 0; i < n_build_rows; i++) {
        build_row *r = &build_rows[i];
        fmt_size(a, 32, r->n);
        fmt_count(b, 32, (double)r->events);
        fmt_time(c, 32, r->ingest_s);
        fmt_count(d, 32, (double)r->events / r->ingest_s);
        fmt_time(e, 32, r->retrain_s);
        fmt_time(g, 32, r->posteriors_s);
        if (md)
            fprintf(f, "| %s | %s | %s | %s | %s | %s | %s |\n", a,
                    r->on_file ? "file" : "memory", b, c, d, e, g);
        else {
            fprintf(f, "%-8s %-7s %12s ", a, r->on_file ? "file" : "memory", b);
            col(f, c, 12, 0);
            fprintf(f, " %12s ", d);
            col(f, e, 12, 0);
            fputc(' ', f);
            col(f, g, 14, 0);
            fputc('\n', f);
        }
    }

    if (md)
        fprintf(f, "\n**Update throughput**, 50k-item catalog, events drawn by exposure "
                   "(90%% impressions): median of repeats, and all repeats together "
                   "(prior refreshes included):\n\n"
                   "| storage | batch | events/s (median) | time per batch | events/s "
                   "(all repeats) | prior refreshes | repeats × events |\n"
                   "|:---|---:|---:|---:|---:|---:|---:|\n");
    else
        fprintf(f, "\nUpdate throughput, 50k-item catalog: median of repeats, and all repeats "
                   "together\n%-26s %7s %14s %14s %14s %9s %18s\n", "storage", "batch",
                "events/s", "per batch", "all repeats", "refreshes", "repeats x events");
    for (int i = 0; i < n_upd_rows; i++) {
        upd_row *u = &upd_rows[i];
        fmt_count(a, 32, (double)u->batch);
        fmt_count(b, 32, u->rate);
        fmt_time(c, 32, u->batch_lat);
        fmt_count(d, 32, (double)u->events_per_rep);
        fmt_count(e, 32, u->amortized);
        if (md)
            fprintf(f, "| %s | %s | %s | %s | %s | %d | %d × %s |\n", u->mode, a, b, c, e,
                    u->refreshes, u->reps, d);
        else {
            fprintf(f, "%-26s %7s %14s ", u->mode, a, b);
            col(f, c, 14, 0);
            fprintf(f, " %14s %9d %10d x %s\n", e, u->refreshes, u->reps, d);
        }
    }

    if (n_pers_rows) {
        if (md)
            fprintf(f, "\n**Personalised recommend, k = %d** — %d users, each with %d distinct "
                       "products over %d baskets (order ids), queried in turn, interleaved call by "
                       "call with an anonymous user (the population path) on the same engine, "
                       "after %s other baskets and a sako_retrain: median (p90)\n\n"
                       "| catalog | personal_temperature | personal user | anonymous user "
                       "(population) | ratio personal / population | each alone: personal, "
                       "population | results by source: repeat / affinity / co-purchase / "
                       "demand |\n"
                       "|---:|:---|---:|---:|---:|---:|:---|\n",
                    K, P_USERS, P_PRODUCTS, P_BASKETS, fmt_count(a, 32, BG_BASKETS));
        else
            fprintf(f, "\nPersonalised recommend, k = %d: %d users x %d products in %d baskets, "
                       "interleaved with an anonymous user; median (p90)\n"
                       "%-8s %-24s %-22s %-22s %6s  %s\n", K, P_USERS, P_PRODUCTS, P_BASKETS,
                    "catalog", "temperature", "personal", "population", "ratio",
                    "sources rep/aff/cop/dem");
        for (int i = 0; i < n_pers_rows; i++) {
            pers_row *r = &pers_rows[i];
            char l1[80], l2[80], l3[80], r1[32], srcs[80];
            snprintf(l3, 80, "%s, %s", fmt_time(a, 32, r->pers_alone.med),
                     fmt_time(b, 32, r->pop_alone.med));
            snprintf(l1, 80, "%s (%s)", fmt_time(a, 32, r->pers.med), fmt_time(b, 32, r->pers.p90));
            snprintf(l2, 80, "%s (%s)", fmt_time(a, 32, r->pop.med), fmt_time(b, 32, r->pop.p90));
            fmt_ratio(r1, 32, r->pers.med / r->pop.med);
            snprintf(srcs, 80, "%.0f / %.0f / %.0f / %.0f %%", 100 * r->src[SAKO_SOURCE_REPEAT],
                     100 * r->src[SAKO_SOURCE_AFFINITY], 100 * r->src[SAKO_SOURCE_COPURCHASE],
                     100 * r->src[SAKO_SOURCE_DEMAND]);
            fmt_size(c, 32, r->catalog_n);
            if (md)
                fprintf(f, "| %s | %s | %s | %s | **%s×** | %s | %s |\n", c, r->variant, l1, l2,
                        r1, l3, srcs);
            else {
                fprintf(f, "%-8s %-24s ", c, r->variant);
                col(f, l1, 22, 1);
                fputc(' ', f);
                col(f, l2, 22, 1);
                fprintf(f, " %5sx  alone %s; %s\n", r1, l3, srcs);
            }
        }
        fprintf(f, "%s%sRepetitions: ", md ? "\n" : "", h);
        for (int i = 0; i < n_pers_rows; i++)
            fprintf(f, "%s%d", i ? ", " : "", pers_rows[i].pers.n);
        fprintf(f, " of each. Organic purchases sent before (per engine): %s; sako_retrain after "
                   "them: ", fmt_count(a, 32, (double)pers_rows[0].organic));
        for (int i = 0; i < n_pers_rows; i++)
            fprintf(f, "%s%s", i ? ", " : "", fmt_time(a, 32, pers_rows[i].retrain_s));
        fprintf(f, ".\n");
    }

    if (n_pingest_rows) {
        char w[32];
        fmt_count(a, 32, (double)pingest_events);
        fmt_count(w, 32, (double)pingest_warm);
        if (md)
            fprintf(f, "\n**Durable ingest with purchases**, 50k-item catalog, file, "
                       "SAKO_DURABLE_FULL, batches of 10,000 through sako_update_orders: "
                       "%s events, %.0f %% purchases (90 %% organic, with order ids), %s users; "
                       "the first %s events unmeasured; repeats of the two engines interleaved:\n\n"
                       "| personal engine | events/s (median) | ratio to personal = 0 | time per "
                       "batch | events/s (all repeats) | prior refreshes | repeats × events |\n"
                       "|:---|---:|---:|---:|---:|---:|---:|\n", a,
                    100.0 * (double)pingest_purchases / (double)pingest_events,
                    fmt_count(b, 32, pingest_users), w);
        else
            fprintf(f, "\nDurable ingest with purchases (SAKO_DURABLE_FULL, batches of 10,000, "
                       "%.0f%% purchases with order ids, %d users)\n%-26s %14s %14s %14s %9s %18s\n",
                    100.0 * (double)pingest_purchases / (double)pingest_events, pingest_users,
                    "personal", "events/s", "per batch", "all repeats", "refreshes",
                    "repeats x events");
        for (int i = 0; i < n_pingest_rows; i++) {
            pingest_row *u = &pingest_rows[i];
            fmt_count(b, 32, u->rate);
            fmt_time(c, 32, 10000.0 / u->rate);
            fmt_count(d, 32, u->amortized);
            fmt_count(e, 32, 10000.0 * u->batches);
            char r1[32];
            snprintf(r1, 32, "%.2f", u->rate / pingest_rows[n_pingest_rows - 1].rate);
            if (md)
                fprintf(f, "| %s | %s | %s× | %s | %s | %d | %d × %s |\n", u->mode, b, r1, c, d,
                        u->refreshes, u->reps, e);
            else {
                fprintf(f, "%-26s %14s ", u->mode, b);
                col(f, c, 14, 0);
                fprintf(f, " %14s %9d %10d x %s\n", d, u->refreshes, u->reps, e);
            }
        }
    }

    if (n_mem_points > 1) {
        double gib = (mem_intercept_mb * 1048576.0 + 1e6 * mem_per_user) / 1073741824.0;
        size_t last = mem_points[n_mem_points - 1].users;
        if (md) {
            fprintf(f, "\n**Memory per user**: one engine (file, SAKO_DURABLE_OFF, 50k-item "
                       "catalog) as users each buy %zu distinct products in 10 baskets of 10 "
                       "(sako_update_orders, 1,000 users per batch, %s s of ingest); resident "
                       "set from /proc/self/statm (after malloc_trim) and malloc's bytes in use "
                       "(mallinfo2):\n\n| users | RSS | heap in use |\n|---:|---:|---:|\n",
                    mem_products, fmt_ratio(a, 32, mem_ingest_s));
            for (int i = 0; i < n_mem_points; i++)
                fprintf(f, "| %s | %.1f MiB | %.1f MiB |\n",
                        fmt_count(a, 32, (double)mem_points[i].users), mem_points[i].rss_mb,
                        mem_points[i].heap_mb);
            fprintf(f, "\nSlope (least squares over the points after 0): **%.0f bytes per user** "
                       "of RSS (%.1f per product), %.0f of heap. Extrapolated linearly from %s to "
                       "1M users × %zu products: **%.2f GiB** RSS (intercept %.0f MiB + 1M × "
                       "slope).\n",
                    mem_per_user, mem_per_user / (double)mem_products, mem_heap_per_user,
                    fmt_count(a, 32, (double)last), mem_products, gib, mem_intercept_mb);
        } else {
            fprintf(f, "\nMemory: %zu distinct products per user; users: RSS / heap in use (MiB):",
                    mem_products);
            for (int i = 0; i < n_mem_points; i++)
                fprintf(f, " %zu: %.1f / %.1f;", mem_points[i].users, mem_points[i].rss_mb,
                        mem_points[i].heap_mb);
            fprintf(f, "\n  %.0f bytes per user of RSS (%.1f per product), %.0f of heap; "
                       "extrapolated to 1M users: %.2f GiB\n", mem_per_user,
                    mem_per_user / (double)mem_products, mem_heap_per_user, gib);
        }
    }

    if (reopen.done) {
        fmt_size(a, 32, reopen.items);
        fmt_count(b, 32, (double)reopen.events);
        fmt_time(c, 32, reopen.init_s);
        fmt_time(d, 32, reopen.first_s);
        fmt_time(e, 32, reopen.close_s);
        fmt_time(g, 32, reopen.ready_s);
        const char *late = reopen.ready_timeout ? " (timed out)" : "";
        if (md)
            fprintf(f, "\n**Reopen** of a %s-item database file (%s events, %.0f MB, built in "
                       "%.0f s): median of %d, page cache warm\n\n"
                       "| sako_init | first sako_recommend | from sako_init to a request under 1 ms "
                       "| sako_close |\n|---:|---:|---:|---:|\n"
                       "| %s | %s | %s%s | %s |\n", a, b, reopen.file_mb, reopen.build_s,
                    reopen.reps, c, d, g, late, e);
        else
            fprintf(f, "\nReopen of a %s-item database file (%s events, %.0f MB, built in "
                       "%.0f s), median of %d, page cache warm\n"
                       "  sako_init %s, first recommend %s, requests under 1 ms after %s%s, "
                       "sako_close %s\n", a, b, reopen.file_mb, reopen.build_s, reopen.reps,
                    c, d, g, late, e);
    }
}

/* ----------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_sako [--quick] [--seed N] [--markdown FILE] [--only PART]\n"
            "  --quick          smaller run (no 1M catalog), for a smoke test\n"
            "  --seed N         data and sampling seed (default 1)\n"
            "  --markdown FILE  also write the tables as markdown to FILE\n"
            "  --only PART      one part: recommend (with the personal rows), update (with\n"
            "                   the purchase stream), memory, stall (stalls during a retrain:\n"
            "                   only when asked, tests/bench/bench_stall.c), factors (matrix\n"
            "                   factorisation: recommend with and without, retrain, recall;\n"
            "                   only when asked, tests/bench/bench_factors.c)\n"
            "  --items N        stall: one catalog of N items (default 50k, then 1M)\n"
            "  --fill-cache DIR stall: keep filled files in DIR and reuse them\n");
}

int bench_stall(int quick, uint64_t seed, const char *dir, const char *md_path, size_t items,
                const char *cache);
int bench_factors(int quick, uint64_t seed, const char *dir, const char *md_path);

int main(int argc, char **argv)
{
    int quick = 0;
    uint64_t seed = 1;
    const char *md_path = NULL, *only = NULL, *fill_cache = NULL;
    size_t stall_items = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--markdown") == 0 && i + 1 < argc)
            md_path = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
            stall_items = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--fill-cache") == 0 && i + 1 < argc)
            fill_cache = argv[++i];
        else {
            usage();
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    t_start = now();
    describe_machine();
    load_string(load_before, sizeof load_before);
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/sako-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "bench_sako: mkdtemp %s: %s\n", tmp_dir, strerror(errno));
        return 1;
    }
    atexit(cleanup);
    progress("libsako %s on %s; temp dir %s", sako_version_string(), machine, tmp_dir);

    if (only && strcmp(only, "stall") == 0)
        return bench_stall(quick, seed, tmp_dir, md_path, stall_items, fill_cache);
    if (only && strcmp(only, "factors") == 0)
        return bench_factors(quick, seed, tmp_dir, md_path);
#define RUN(part) (!only || strcmp(only, part) == 0)
    if (RUN("recommend")) {
        bench_recommend(1000, 0, quick, seed);
        bench_recommend(10000, 0, quick, seed);
        bench_recommend(50000, quick, quick, seed); /* --quick: reopen the 50k file */
    }
    if (RUN("update")) {
        bench_update(quick, seed);
        bench_personal_ingest(quick, seed);
    }
    if (RUN("memory"))
        bench_memory(quick, seed);
    if (!quick && RUN("recommend"))
        bench_recommend(1000000, 1, quick, seed);
#undef RUN

    load_string(load_after, sizeof load_after);
    double total = now() - t_start;
    report(stdout, 0, quick, seed, total);
    if (md_path) {
        FILE *f = fopen(md_path, "w");
        if (!f) {
            fprintf(stderr, "bench_sako: cannot write %s: %s\n", md_path, strerror(errno));
            return 1;
        }
        report(f, 1, quick, seed, total);
        if (fclose(f) != 0) {
            fprintf(stderr, "bench_sako: writing %s: %s\n", md_path, strerror(errno));
            return 1;
        }
        progress("markdown written to %s", md_path);
    }
    return check_failures ? 1 : 0;
}
