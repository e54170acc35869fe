/* The engine's matrix factorisation: `bench_sako --only factors` (make bench-factors).
 *
 * For each catalog (50k and 1M items; --quick: 50k only): items in aisles of 100,
 * 20,000 users, each with a taste of 3 aisles and 10 baskets of 8 products (85 % from
 * the taste, the rest anywhere), 1.6M purchases logged with order ids. Then, in one
 * process:
 *   1. personalised recommend (k = 20) for 2,000 of the users without factors (the
 *      baseline: no training yet);
 *   2. sako_retrain with mf_factors = 64 (its wall time, and the training's part of
 *      it as the engine reports it);
 *   3. the same recommends with the factors served (mf_mode on), twice: each user's
 *      first request since the training (the index is searched), then again (its
 *      answer comes from the per-user candidate cache): medians, p99, the ratio to
 *      the baseline, and which source the results are attributed to; then the same
 *      queries in discover mode (new products only), for the factors' share where the
 *      user's own products cannot take the slots;
 *   4. recall@20 of the retrieval index against the exact scan over the trained item
 *      factors, for 500 users' vectors, at the default probe.
 * Memory of the factors and the index per item and per user comes from
 * sako_factors_info_get(). See docs/benchmarks.md ("Matrix factorisation"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "factors_internal.h"
#include "sako.h"

#define F_USERS 20000
#define F_AISLE 100
#define F_TASTE 3
#define F_BASKETS 10
#define F_PER_BASKET 8
#define F_QUERIES 2000
#define F_RECALL_USERS 500
#define F_T0 1764000000000LL
#define F_DAY 86400000LL

static double f_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t f_rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int f_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double f_quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, f_cmp);
    return v[(size_t)(q * (double)(n - 1))];
}

static void f_die(const char *what, int rc)
{
    fprintf(stderr, "bench_factors: %s: %d (%s): %s\n", what, rc, sako_errstr(rc), sako_errmsg());
    exit(1);
}

typedef struct f_row {
    size_t n_items;
    double base_med, base_p99, mf_med, mf_p99, first_med, first_p99;
    double retrain_s, train_s, recall;
    size_t probe, lists;
    double bytes_per_item, bytes_per_user;
    double mf_share;     /* results attributed to the factors (mixed mode) */
    double repeat_share; /* results attributed to repeat purchases (mixed mode) */
    double mf_share_discover, aff_share_discover; /* discover mode: factors, affinity */
    size_t probes[6];    /* recall@20 and the search's median time at other probes */
    double recall_at[6], search_us[6];
    int n_probes;
} f_row;

static void f_fill(sako_engine *e, size_t n_items, uint64_t seed)
{
    size_t n_aisles = n_items / F_AISLE;
    sako_category *cats = malloc(n_aisles * sizeof *cats);
    for (size_t a = 0; a < n_aisles; a++) {
        cats[a].id = (int64_t)a + 1;
        cats[a].parent_id = 0;
        cats[a].name = "aisle";
    }
    int rc = sako_categories_upsert(e, cats, n_aisles);
    if (rc)
        f_die("categories", rc);
    free(cats);
    sako_item *items = malloc(n_items * sizeof *items);
    for (size_t i = 0; i < n_items; i++) {
        sako_item it = {(int64_t)i + 1, (int64_t)(i / F_AISLE) + 1, 1, 1000};
        items[i] = it;
    }
    if ((rc = sako_items_upsert(e, items, n_items)))
        f_die("items", rc);
    free(items);
    uint64_t s = seed | 1;
    size_t per_batch = (size_t)2000 * F_BASKETS * F_PER_BASKET;
    sako_event *ev = malloc(per_batch * sizeof *ev);
    int64_t *orders = malloc(per_batch * sizeof *orders);
    for (int64_t u0 = 1; u0 <= F_USERS; u0 += 2000) {
        size_t n = 0;
        for (int64_t u = u0; u < u0 + 2000 && u <= F_USERS; u++) {
            uint64_t ts = (uint64_t)u * 0x9E3779B97F4A7C15ull;
            size_t taste[F_TASTE];
            for (int t = 0; t < F_TASTE; t++)
                taste[t] = (size_t)(f_rnd(&ts) % n_aisles);
            for (int b = 0; b < F_BASKETS; b++)
                for (int p = 0; p < F_PER_BASKET; p++) {
                    size_t item = f_rnd(&s) % 100 < 85
                                      ? taste[f_rnd(&s) % F_TASTE] * F_AISLE + f_rnd(&s) % F_AISLE
                                      : f_rnd(&s) % n_items;
                    sako_event x = {u, (int64_t)item + 1, SAKO_EVENT_PURCHASE,
                                    F_T0 + b * 3 * F_DAY + u, 0};
                    ev[n] = x;
                    orders[n++] = (int64_t)(u * 100 + b + 1);
                }
        }
        if ((rc = sako_update_orders(e, ev, orders, n)))
            f_die("update", rc);
    }
    free(ev);
    free(orders);
}

/* Recommends for F_QUERIES users in `mode`: latencies, and the results' sources
 * (by_src[source], their total in by_src[0]). */
static void f_queries(sako_engine *e, int mode, double *lat, size_t by_src[8])
{
    memset(by_src, 0, 8 * sizeof *by_src);
    sako_rec r[20];
    for (int q = 0; q < F_QUERIES; q++) {
        sako_query qu = SAKO_QUERY_INIT;
        qu.user_id = 1 + (int64_t)((q * 7919) % F_USERS);
        qu.k = 20;
        qu.time = F_T0 + 40 * F_DAY;
        qu.mode = mode;
        size_t n = 0;
        double t0 = f_now();
        int rc = sako_recommend(e, &qu, r, 20, &n);
        lat[q] = f_now() - t0;
        if (rc)
            f_die("recommend", rc);
        for (size_t j = 0; j < n; j++)
            by_src[r[j].source < 8 ? r[j].source : 0]++;
        by_src[0] += n;
    }
}

static void f_run(size_t n_items, uint64_t seed, const char *dir, f_row *row)
{
    char path[700];
    snprintf(path, sizeof path, "%s/factors-%zu.db", dir, n_items);
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = seed;
    o.durability = SAKO_DURABLE_OFF;
    o.mf_factors = 64;
    o.mf_iterations = n_items >= 1000000 ? 3 : 10;
    o.mf_alpha = 10.0;
    o.mf_regularization = 0.1;
    o.mf_threads = 2;
    o.mf_mode = SAKO_MF_ON;
    sako_engine *e = NULL;
    int rc = sako_init(&e, path, &o);
    if (rc)
        f_die("init", rc);
    double t0 = f_now();
    f_fill(e, n_items, seed);
    fprintf(stderr, "[factors %zu] filled in %.1f s\n", n_items, f_now() - t0);
    memset(row, 0, sizeof *row);
    row->n_items = n_items;
    double *base = malloc(F_QUERIES * sizeof *base), *with = malloc(F_QUERIES * sizeof *with);
    double *first = malloc(F_QUERIES * sizeof *first);
    size_t src[8];
    f_queries(e, SAKO_MODE_MIXED, base, src); /* warm-up */
    f_queries(e, SAKO_MODE_MIXED, base, src);
    t0 = f_now();
    if ((rc = sako_retrain(e)))
        f_die("retrain", rc);
    row->retrain_s = f_now() - t0;
    sako_factors_info fi;
    fi.version = SAKO_FACTORS_INFO_VERSION;
    sako_factors_info_get(e, &fi);
    row->train_s = fi.train_seconds;
    row->lists = fi.index_lists;
    row->bytes_per_item = (double)fi.bytes / (double)n_items;
    fprintf(stderr, "[factors %zu] retrain %.1f s (training %.1f s)\n", n_items, row->retrain_s,
            row->train_s);
    f_queries(e, SAKO_MODE_MIXED, first, src); /* each user's first request since the training */
    f_queries(e, SAKO_MODE_MIXED, with, src);   /* again: from the per-user candidate cache */
    double all = src[0] ? (double)src[0] : 1.0;
    row->mf_share = (double)src[SAKO_SOURCE_MF] / all;
    row->repeat_share = (double)src[SAKO_SOURCE_REPEAT] / all;
    /* Why the share above is what it is: the same users asking for new products only
     * (latencies of this pass are not reported). */
    double *disc = malloc(F_QUERIES * sizeof *disc);
    f_queries(e, SAKO_MODE_DISCOVER, disc, src);
    all = src[0] ? (double)src[0] : 1.0;
    row->mf_share_discover = (double)src[SAKO_SOURCE_MF] / all;
    row->aff_share_discover = (double)src[SAKO_SOURCE_AFFINITY] / all;
    free(disc);
    row->base_med = f_quantile(base, F_QUERIES, 0.5);
    row->base_p99 = f_quantile(base, F_QUERIES, 0.99);
    row->mf_med = f_quantile(with, F_QUERIES, 0.5);
    row->mf_p99 = f_quantile(with, F_QUERIES, 0.99);
    row->first_med = f_quantile(first, F_QUERIES, 0.5);
    row->first_p99 = f_quantile(first, F_QUERIES, 0.99);
    /* Memory per user: a user's vector (k floats) and its event count; the item side
     * (vectors, the index's copy and lists) is what fi.bytes holds beyond that. */
    row->bytes_per_user = 64 * 4 + 4;
    row->bytes_per_item = ((double)fi.bytes - row->bytes_per_user * (double)F_USERS) / (double)n_items;
    /* Recall of the index against the exact scan. */
    sako_factors *f = e->factors;
    void *scratch = malloc(sako__factor_index_scratch_size(f->index, 20));
    uint32_t got[20], want[20];
    float gs[20], ws[20], x[64];
    size_t hits = 0, total = 0;
    row->probe = sako__factor_index_default_probe(f->index);
    for (int u = 0; u < F_RECALL_USERS; u++) {
        memcpy(x, f->user + (size_t)(u * 37 % F_USERS) * f->k, sizeof x);
        size_t n = sako__factor_index_search(f->index, x, 0, 20, scratch, got, gs);
        size_t m = sako__factor_index_exact(f->index, x, 20, scratch, want, ws);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < m; j++)
                hits += got[i] == want[j];
        total += m;
    }
    row->recall = total ? (double)hits / (double)total : 0.0;
    static const size_t probes[] = {4, 8, 16, 32, 64, 128};
    for (int p = 0; p < 6 && probes[p] <= row->lists; p++) {
        double t_us[F_RECALL_USERS];
        hits = total = 0;
        for (int u = 0; u < F_RECALL_USERS; u++) {
            memcpy(x, f->user + (size_t)(u * 37 % F_USERS) * f->k, sizeof x);
            double t1 = f_now();
            size_t n = sako__factor_index_search(f->index, x, probes[p], 20, scratch, got, gs);
            t_us[u] = 1e6 * (f_now() - t1);
            size_t m = sako__factor_index_exact(f->index, x, 20, scratch, want, ws);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < m; j++)
                    hits += got[i] == want[j];
            total += m;
        }
        row->probes[p] = probes[p];
        row->recall_at[p] = total ? (double)hits / (double)total : 0.0;
        row->search_us[p] = f_quantile(t_us, F_RECALL_USERS, 0.5);
        row->n_probes = p + 1;
    }
    free(scratch);
    free(base);
    free(with);
    free(first);
    sako_close(e);
    remove(path);
}

int bench_factors(int quick, uint64_t seed, const char *dir, const char *md_path)
{
    f_row rows[2];
    int n_rows = 0;
    f_run(50000, seed, dir, &rows[n_rows++]);
    if (!quick)
        f_run(1000000, seed, dir, &rows[n_rows++]);
    FILE *outs[2] = {stdout, md_path ? fopen(md_path, "w") : NULL};
    for (int o = 0; o < 2; o++) {
        FILE *f = outs[o];
        if (!f)
            continue;
        fprintf(f, "\n| items | recommend, no factors (median / p99) | with factors, a user's first "
                   "request (median / p99) | ratio | with factors, again (median / p99) "
                   "| ratio | results from the factors / from repeat purchases "
                   "| discover mode: from the factors / from affinity | retrain | of it training "
                   "| index lists | probed | recall@20 | bytes/item | bytes/user |\n"
                   "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int r = 0; r < n_rows; r++) {
            f_row *x = &rows[r];
            fprintf(f, "| %zu | %.1f / %.1f µs | %.1f / %.1f µs | %.2f | %.1f / %.1f µs | %.2f "
                       "| %.1f %% / %.1f %% | %.1f %% / %.1f %% | %.1f s | %.1f s | %zu | %zu "
                       "| %.3f | %.0f | %.0f |\n",
                    x->n_items, 1e6 * x->base_med, 1e6 * x->base_p99, 1e6 * x->first_med,
                    1e6 * x->first_p99, x->first_med / x->base_med, 1e6 * x->mf_med,
                    1e6 * x->mf_p99, x->mf_med / x->base_med, 100 * x->mf_share,
                    100 * x->repeat_share, 100 * x->mf_share_discover,
                    100 * x->aff_share_discover, x->retrain_s,
                    x->train_s, x->lists, x->probe, x->recall, x->bytes_per_item,
                    x->bytes_per_user);
        }
        fprintf(f, "\n| items | lists probed | recall@20 vs exact | index search, median (k = 20) |\n"
                   "|---:|---:|---:|---:|\n");
        for (int r = 0; r < n_rows; r++)
            for (int p = 0; p < rows[r].n_probes; p++)
                fprintf(f, "| %zu | %zu | %.3f | %.1f µs |\n", rows[r].n_items, rows[r].probes[p],
                        rows[r].recall_at[p], rows[r].search_us[p]);
        if (o == 1)
            fclose(f);
    }
    return 0;
}
