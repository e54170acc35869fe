/* The engine's matrix factorisation (factors.c, factor_index.c, interactions.c):
 * options, schema 5, training on retrain, persistence, fold-in, retrieval, serving. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_sako.h"
#include "engine_internal.h"
#include "factor_index_internal.h"
#include "factors_internal.h"
#include "topk_internal.h"

/* A world with structure the factors can find: N_GROUPS tastes; a user of group g
 * buys mostly the products of aisle g. Items 1000 + 100 g + j, users 1 .. N_USERS. */
#define N_GROUPS 6
#define PER_GROUP 30
#define N_USERS 120
#define DAY 86400000LL

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static sako_options mf_opts(uint64_t seed)
{
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = seed;
    o.durability = SAKO_DURABLE_OFF;
    o.mf_factors = 8;
    o.mf_iterations = 8;
    o.mf_regularization = 0.1;
    o.mf_alpha = 2.0;
    o.mf_threads = 2;
    o.mf_mode = SAKO_MF_ON;
    o.mf_candidates = 40;
    return o;
}

/* n top-level categories ("aisles") with ids first_id, first_id + 1, ... */
static void aisles(sako_engine *e, int64_t first_id, int n)
{
    sako_category cats[16];
    ck_assert_int_le(n, 16);
    for (int g = 0; g < n; g++) {
        cats[g].id = first_id + g;
        cats[g].parent_id = 0;
        cats[g].name = "aisle";
    }
    ck_assert_ok(sako_categories_upsert(e, cats, (size_t)n));
}

static void world_catalog(sako_engine *e)
{
    aisles(e, 10, N_GROUPS);
    sako_item items[N_GROUPS * PER_GROUP];
    for (int g = 0; g < N_GROUPS; g++)
        for (int j = 0; j < PER_GROUP; j++) {
            sako_item it = {1000 + 100 * g + j, 10 + g, 1, 1000};
            items[g * PER_GROUP + j] = it;
        }
    ck_assert_ok(sako_items_upsert(e, items, N_GROUPS * PER_GROUP));
}

/* `baskets` orders per user, each of 4 products, 85 % from the user's group. */
static void world_orders(sako_engine *e, uint64_t *s, int64_t first_user, int64_t n_users,
                         int baskets, int64_t t0)
{
    size_t cap = (size_t)n_users * baskets * 4, n = 0;
    sako_event *ev = malloc(cap * sizeof *ev);
    int64_t *orders = malloc(cap * sizeof *orders);
    for (int b = 0; b < baskets; b++)
        for (int64_t u = first_user; u < first_user + n_users; u++)
            for (int p = 0; p < 4; p++) {
                int g = (int)(u % N_GROUPS);
                if (rnd(s) % 100 >= 85)
                    g = (int)(rnd(s) % N_GROUPS);
                int64_t item = 1000 + 100 * g + (int64_t)(rnd(s) % PER_GROUP);
                sako_event x = {u, item, p == 0 ? SAKO_EVENT_CLICK : SAKO_EVENT_PURCHASE,
                                t0 + b * DAY + u * 1000, 0};
                ev[n] = x;
                orders[n++] = (int64_t)(b * 100000 + u);
            }
    ck_assert_ok(sako_update_orders(e, ev, orders, n));
    free(ev);
    free(orders);
}

static sako_engine *world(const char *path, const sako_options *o)
{
    sako_engine *e = sk_open_opts(path, o);
    world_catalog(e);
    uint64_t s = 7;
    world_orders(e, &s, 1, N_USERS, 6, 1700000000000LL);
    return e;
}

static size_t vector_of(sako_engine *e, int64_t user, int64_t item, float *v)
{
    size_t n = 0;
    ck_assert_ok(sako_factors_vector(e, user, item, v, 64, &n));
    return n;
}

static sako_options options_of(sako_engine *e)
{
    sako_options o;
    memset(&o, 0, sizeof o);
    o.version = SAKO_OPTIONS_VERSION;
    ck_assert_ok(sako_options_get(e, &o));
    return o;
}

static sako_factors_info info_of(sako_engine *e)
{
    sako_factors_info fi;
    fi.version = SAKO_FACTORS_INFO_VERSION;
    ck_assert_ok(sako_factors_info_get(e, &fi));
    return fi;
}

static size_t recommend(sako_engine *e, int64_t user, sako_rec *out)
{
    sako_query q = SAKO_QUERY_INIT;
    q.user_id = user;
    q.k = 20;
    q.time = 1700000000000LL + 30 * DAY;
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, out, 20, &n));
    return n;
}

/* ------------------------------------------------------------ options */

START_TEST(test_bad_options_refused)
{
    struct { const char *name; void (*set)(sako_options *); } cases[] = {
        {"mf_factors", NULL}, {"mf_iterations", NULL}, {"mf_regularization", NULL},
        {"mf_alpha", NULL}, {"mf_cg_steps", NULL}, {"mf_threads", NULL}, {"mf_mode", NULL},
        {"mf_min_users", NULL}, {"mf_min_user_items", NULL}, {"mf_weight", NULL},
        {"mf_candidates", NULL}, {"mf_probe", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sako_options o = mf_opts(1);
        switch (c) {
        case 0: o.mf_factors = 1025; break;
        case 1: o.mf_iterations = 0; break;
        case 2: o.mf_regularization = -1.0; break;
        case 3: o.mf_alpha = 0.0; break;
        case 4: o.mf_cg_steps = 9; break; /* > mf_factors (8) */
        case 5: o.mf_threads = 257; break;
        case 6: o.mf_mode = 3; break;
        case 7: o.mf_min_users = 0; break;
        case 8: o.mf_min_user_items = 0; break;
        case 9: o.mf_weight = NAN; break;
        case 10: o.mf_candidates = 10001; break;
        case 11: o.mf_probe = SAKO_FACTOR_INDEX_LISTS_MAX + 1; break;
        }
        sako_engine *e = NULL;
        ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), cases[c].name), "%s: %s", cases[c].name, sako_errmsg());
    }
}
END_TEST

/* A version-3 struct (0.3 and 0.4 callers) gets the defaults: no factors. */
START_TEST(test_old_options_get_defaults)
{
    sako_options o = sk_opts(1);
    o.version = 3;
    o.mf_factors = 77; /* beyond a version-3 struct: never read */
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_options got = options_of(e);
    ck_assert_uint_eq(got.mf_factors, 0);
    ck_assert_uint_eq(got.mf_iterations, 15);
    ck_assert_int_eq(got.mf_mode, SAKO_MF_AUTO);
    sako_close(e);
}
END_TEST

/* A version-4 struct (0.5 callers) ends at mf_candidates: mf_probe takes its default,
 * and sako_options_get() fills such a struct up to mf_candidates only. */
START_TEST(test_v4_options_get_probe_default)
{
    sako_options o = mf_opts(1);
    o.version = 4;
    o.mf_candidates = 33;
    o.mf_probe = 5000; /* beyond a version-4 struct: never read (it would be refused) */
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_options got = options_of(e);
    ck_assert_uint_eq(got.mf_candidates, 33);
    ck_assert_uint_eq(got.mf_probe, 0);
    sako_options v4;
    memset(&v4, 0xA5, sizeof v4);
    v4.version = 4;
    ck_assert_ok(sako_options_get(e, &v4));
    ck_assert_uint_eq(v4.version, 4);
    ck_assert_uint_eq(v4.mf_candidates, 33);
    ck_assert_uint_eq(v4.mf_probe, 0xA5A5A5A5u); /* not written */
    sako_close(e);
    /* A version-5 struct's probe is kept (run time: not stored). */
    o = mf_opts(1);
    o.mf_probe = 12;
    e = sk_open_opts(NULL, &o);
    ck_assert_uint_eq(options_of(e).mf_probe, 12);
    sako_close(e);
}
END_TEST

/* The model fields are stored: a reopen without reconfigure keeps them. */
START_TEST(test_options_stored)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "mf-opts");
    sako_options o = mf_opts(1);
    o.mf_factors = 12;
    o.mf_weight = 2.5;
    sako_close(sk_open_opts(path, &o));
    sako_options plain = sk_opts(1);
    sako_engine *e = sk_open_opts(path, &plain);
    sako_options got = options_of(e);
    ck_assert_uint_eq(got.mf_factors, 12);
    ck_assert_double_eq(got.mf_weight, 2.5);
    ck_assert_int_eq(got.mf_mode, SAKO_MF_ON);
    sako_close(e);
}
END_TEST

/* ------------------------------------------------------------ training */

START_TEST(test_no_factors_by_default)
{
    sako_options o = sk_opts(3);
    o.personal = 1;
    sako_engine *e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    ck_assert_uint_eq(info_of(e).factors, 0);
    float v[64];
    ck_assert_uint_eq(vector_of(e, 1, 0, v), 0);
    sako_close(e);
}
END_TEST

START_TEST(test_retrain_trains)
{
    sako_options o = mf_opts(3);
    sako_engine *e = world(NULL, &o);
    ck_assert_uint_eq(info_of(e).factors, 0);
    ck_assert_ok(sako_retrain(e));
    sako_factors_info fi = info_of(e);
    ck_assert_uint_eq(fi.factors, 8);
    ck_assert_uint_eq(fi.iterations, 8);
    ck_assert_uint_eq(fi.n_users, N_USERS);
    ck_assert_uint_eq(fi.n_items, N_GROUPS * PER_GROUP);
    ck_assert_int_eq(fi.last_batch, 1);
    ck_assert_uint_eq(fi.n_events, (uint64_t)N_USERS * 6 * 4);
    ck_assert_int_eq(fi.serving, 1);
    /* The factors found the groups: a user scores its own aisle above the others. */
    int right = 0;
    for (int64_t u = 1; u <= N_USERS; u++) {
        float x[64], y[64];
        ck_assert_uint_eq(vector_of(e, u, 0, x), 8);
        double best = -1e9;
        int best_g = -1;
        for (int g = 0; g < N_GROUPS; g++) {
            double sum = 0;
            for (int j = 0; j < PER_GROUP; j++) {
                ck_assert_uint_eq(vector_of(e, 0, 1000 + 100 * g + j, y), 8);
                for (int t = 0; t < 8; t++)
                    sum += x[t] * y[t];
            }
            if (sum > best)
                best = sum, best_g = g;
        }
        right += best_g == (int)(u % N_GROUPS);
    }
    ck_assert_msg(right >= N_USERS * 9 / 10, "%d of %d users closest to their own aisle", right,
                  N_USERS);
    /* Served: some answers come from the factors. */
    sako_rec r[20];
    size_t n_mf = 0;
    for (int64_t u = 1; u <= 30; u++) {
        size_t n = recommend(e, u, r);
        for (size_t i = 0; i < n; i++)
            n_mf += r[i].source == SAKO_SOURCE_MF;
    }
    ck_assert_msg(n_mf > 0, "no recommendation attributed to the factors");
    sako_close(e);
}
END_TEST

/* Off (pinned): the factors are trained but never served. */
START_TEST(test_mode_off_serves_none)
{
    sako_options o = mf_opts(3);
    o.mf_mode = SAKO_MF_OFF;
    sako_engine *e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    ck_assert_uint_eq(info_of(e).factors, 8);
    ck_assert_int_eq(info_of(e).serving, 0);
    sako_rec r[20];
    for (int64_t u = 1; u <= 30; u++) {
        size_t n = recommend(e, u, r);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_ne(r[i].source, SAKO_SOURCE_MF);
    }
    sako_close(e);
}
END_TEST

/* Auto: not served before the platform's training saw mf_min_users users. */
START_TEST(test_auto_waits_for_users)
{
    sako_options o = mf_opts(3);
    o.mf_mode = SAKO_MF_AUTO;
    o.mf_min_users = N_USERS + 1;
    sako_engine *e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(info_of(e).serving, 0);
    sako_close(e);
    o.mf_min_users = N_USERS;
    o.reconfigure = 1;
    e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(info_of(e).serving, 1);
    sako_close(e);
}
END_TEST

/* Auto, per user: once the platform qualifies, a user's answers mix in the factors
 * only when that user interacted with mf_min_user_items products; the options are
 * what decides (the factors trained are the same). */
static int mf_sourced(sako_engine *e, int64_t first, int64_t last)
{
    int n_mf = 0;
    sako_rec r[20];
    for (int64_t u = first; u <= last; u++) {
        size_t n = recommend(e, u, r);
        for (size_t i = 0; i < n; i++)
            n_mf += r[i].source == SAKO_SOURCE_MF;
    }
    return n_mf;
}

START_TEST(test_auto_serves_by_user_history)
{
    /* every user of the world bought more than 5 products; none 1e6 */
    static const uint32_t min_items[2] = { 5, 1000000 };
    for (int i = 0; i < 2; i++) {
        sako_options o = mf_opts(3);
        o.mf_mode = SAKO_MF_AUTO;
        o.mf_min_users = N_USERS;
        o.mf_min_user_items = min_items[i];
        sako_engine *e = world(NULL, &o);
        ck_assert_ok(sako_retrain(e));
        ck_assert_int_eq(info_of(e).serving, 1);
        ck_assert_int_eq(mf_sourced(e, 1, 30) > 0, i == 0);
        sako_close(e);
    }
}
END_TEST

/* The factor calls' refusals: each its documented status and message, the output
 * untouched where the header says so, and nothing changed in the engine. */
START_TEST(test_factor_calls_refused)
{
    sako_options o = mf_opts(3);
    sako_engine *e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    sako_factors_info before = info_of(e);
    sako_factors_info fi;
    fi.version = SAKO_FACTORS_INFO_VERSION;
    ck_assert_rc(sako_factors_info_get(NULL, &fi), SAKO_MISUSE);
    ck_assert_rc(sako_factors_info_get(e, NULL), SAKO_MISUSE);
    fi.version = SAKO_FACTORS_INFO_VERSION + 1;
    fi.factors = 77;
    ck_assert_rc(sako_factors_info_get(e, &fi), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "version"));
    ck_assert_uint_eq(fi.factors, 77);

    float v[64];
    size_t n = 99;
    ck_assert_rc(sako_factors_vector(NULL, 1, 0, v, 64, &n), SAKO_MISUSE);
    ck_assert_rc(sako_factors_vector(e, 1, 0, v, 64, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_factors_vector(e, 1, 0, NULL, 64, &n), SAKO_MISUSE);
    ck_assert_uint_eq(n, 99);
    ck_assert_rc(sako_factors_vector(e, 1, 1000, v, 64, &n), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "exactly one"));
    ck_assert_uint_eq(n, 0);
    ck_assert_rc(sako_factors_vector(e, 0, 0, v, 64, &n), SAKO_INVALID);
    ck_assert_rc(sako_factors_vector(e, -4, 0, v, 64, &n), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "out of range"));
    ck_assert_rc(sako_factors_vector(e, 0, 9007199254740992LL, v, 64, &n), SAKO_INVALID);
    ck_assert_rc(sako_factors_vector(e, 777777, 0, v, 64, &n), SAKO_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "unknown user 777777"));
    ck_assert_rc(sako_factors_vector(e, 0, 5, v, 64, &n), SAKO_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "unknown item 5"));
    ck_assert_rc(sako_factors_vector(e, 0, 1000, v, 7, &n), SAKO_RANGE);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "8 needed"));
    ck_assert_uint_eq(n, 0);
    /* cap 0 with a NULL output asks nothing of the output: the size check answers */
    ck_assert_rc(sako_factors_vector(e, 1, 0, NULL, 0, &n), SAKO_RANGE);
    /* the exact size is enough */
    ck_assert_ok(sako_factors_vector(e, 0, 1000, v, 8, &n));
    ck_assert_uint_eq(n, 8);

    sako_factors_info after = info_of(e);
    ck_assert_uint_eq(after.n_folded, before.n_folded);
    ck_assert_uint_eq(after.n_users, before.n_users);
    ck_assert_uint_eq(after.n_items, before.n_items);
    ck_assert_int_eq(after.last_batch, before.last_batch);
    sako_close(e);
}
END_TEST

/* ------------------------------------------------------------ persistence */

/* Slots 0..19: trained users 1..20 (1..10 active since); 20..29: users 116..125
 * (121..125 first seen after the training). */
static int64_t slot_user(int u) { return u < 20 ? u + 1 : N_USERS - 5 + (u - 20) + 1; }

START_TEST(test_reopen_restores_factors)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "mf-reopen");
    sako_options o = mf_opts(5);
    sako_engine *e = world(path, &o);
    ck_assert_ok(sako_retrain(e));
    /* Users active after the training are folded in (and so must be after reopen). */
    uint64_t s = 99;
    world_orders(e, &s, 1, 10, 1, 1700000000000LL + 10 * DAY);
    world_orders(e, &s, N_USERS + 1, 5, 2, 1700000000000LL + 11 * DAY);
    enum { N_CHECK = N_USERS + 5 };
    static float uv[N_CHECK][64], iv[N_GROUPS * PER_GROUP][64];
    size_t un[N_CHECK], in[N_GROUPS * PER_GROUP];
    for (int u = 0; u < N_CHECK; u++)
        un[u] = vector_of(e, u + 1, 0, uv[u]);
    for (int i = 0; i < N_GROUPS * PER_GROUP; i++)
        in[i] = vector_of(e, 0, 1000 + 100 * (i / PER_GROUP) + i % PER_GROUP, iv[i]);
    sako_rec before[30][20];
    size_t nb[30];
    for (int u = 0; u < 30; u++)
        nb[u] = recommend(e, slot_user(u), before[u]);
    sako_factors_info fi = info_of(e);
    ck_assert_uint_ge(fi.n_folded, 15);
    sako_close(e);

    o.reconfigure = 0;
    e = sk_open_opts(path, &o);
    sako_factors_info fj = info_of(e);
    ck_assert_uint_eq(fj.factors, fi.factors);
    ck_assert_int_eq(fj.trained_at, fi.trained_at);
    ck_assert_int_eq(fj.last_batch, fi.last_batch);
    ck_assert_uint_eq(fj.n_users, fi.n_users);
    ck_assert_uint_eq(fj.n_items, fi.n_items);
    float v[64];
    for (int u = 0; u < N_CHECK; u++) {
        ck_assert_uint_eq(vector_of(e, u + 1, 0, v), un[u]);
        ck_assert_msg(memcmp(v, uv[u], un[u] * sizeof *v) == 0, "user %d's vector changed", u + 1);
    }
    for (int i = 0; i < N_GROUPS * PER_GROUP; i++) {
        ck_assert_uint_eq(vector_of(e, 0, 1000 + 100 * (i / PER_GROUP) + i % PER_GROUP, v), in[i]);
        ck_assert(memcmp(v, iv[i], in[i] * sizeof *v) == 0);
    }
    /* A (user, product)'s score is a function of the state (personal_temperature 0:
     * no draw), so every product in both answers has the same score, bit for bit. The
     * answers themselves may differ in a product or two: the population engine's own
     * top k, which joins the candidates, is a Thompson draw of another request. */
    size_t same = 0, total = 0;
    for (int u = 0; u < 30; u++) {
        sako_rec r[20];
        size_t n = recommend(e, slot_user(u), r);
        total += nb[u];
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < nb[u]; j++)
                if (r[i].item_id == before[u][j].item_id) {
                    ck_assert_msg(sk_same_double(r[i].score, before[u][j].score), "user slot %d "
                                  "item %lld: %.17g vs %.17g (source %d)", u,
                                  (long long)r[i].item_id, r[i].score, before[u][j].score,
                                  r[i].source);
                    ck_assert_int_eq(r[i].source, before[u][j].source);
                    same++;
                }
    }
    ck_assert_msg(same >= total * 9 / 10, "%zu of %zu products in both answers", same, total);
    sako_close(e);
}
END_TEST

START_TEST(test_damaged_factors_refused)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "mf-damaged");
    sako_options o = mf_opts(5);
    sako_engine *e = world(path, &o);
    ck_assert_ok(sako_retrain(e));
    sako_close(e);
    sako_verify_report rep;
    ck_assert_ok(sako_verify(path, &rep));
    /* One byte of the item factors flipped. */
    sk_sql_exec(path, "UPDATE mf_factors SET data = substr(data, 1, 20) || x'5A' ||"
                      " substr(data, 22) WHERE part = 1 AND chunk = 0");
    ck_assert_rc(sako_init(&e, path, &o), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "items chunk 0"), "%s", sako_errmsg());
    ck_assert_rc(sako_verify(path, &rep), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "items chunk 0"), "%s", sako_errmsg());
    /* Rows of a training never switched to (a crash between its chunks and the switch)
     * are ignored, and the next retrain deletes them. */
    sk_tmp_path(path, sizeof path, "mf-orphans");
    e = world(path, &o);
    ck_assert_ok(sako_retrain(e));
    sako_close(e);
    sk_sql_exec(path, "INSERT INTO mf_factors(serial, part, chunk, data, checksum)"
                      " SELECT serial + 1, part, chunk + 7, x'00', 0 FROM mf_factors");
    e = sk_open_opts(path, &o);
    ck_assert_uint_eq(info_of(e).factors, 8);
    ck_assert_ok(sako_retrain(e));
    sako_close(e);
    ck_assert_int_eq(sk_sql_int(path, "SELECT count(*) FROM mf_factors WHERE serial <>"
                                      " (SELECT value FROM sako_meta WHERE key = 'mf_serial')"), 0);
    ck_assert_int_eq(sk_sql_int(path, "SELECT value FROM sako_meta WHERE key = 'mf_serial'"), 2);
    ck_assert_rc(sako_verify(path, &rep), SAKO_OK);
    /* A chunk missing. */
    sk_tmp_path(path, sizeof path, "mf-missing");
    e = world(path, &o);
    ck_assert_ok(sako_retrain(e));
    sako_close(e);
    sk_sql_exec(path, "DELETE FROM mf_factors WHERE part = 2");
    ck_assert_rc(sako_init(&e, path, &o), SAKO_CORRUPT);
    ck_assert_msg(strstr(sako_errmsg(), "matrix factors"), "%s", sako_errmsg());
}
END_TEST

/* The log checkpoint carries the interactions: after a compaction, a reopened engine
 * has every user's full counts (its trained vectors stay current, none is folded in
 * from the tail alone) and a retrain trains the same factors as without compaction. */
START_TEST(test_compaction_keeps_interactions)
{
    char path[512], ref_path[512];
    sk_tmp_path(path, sizeof path, "mf-compact");
    sk_tmp_path(ref_path, sizeof ref_path, "mf-compact-ref");
    sako_options o = mf_opts(13);
    sako_engine *e = world(path, &o), *ref = world(ref_path, &o);
    sako_policy p = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &p));
    p.gate_holdout_events = SAKO_COMPACT_MIN_EVENTS;
    ck_assert_ok(sako_policy_set(e, &p));
    uint64_t s = 5, s2 = 5;
    for (int round = 0; round < 6; round++) {
        world_orders(e, &s, 1, N_USERS, 5, 1700000000000LL + (10 + 5 * round) * DAY);
        world_orders(ref, &s2, 1, N_USERS, 5, 1700000000000LL + (10 + 5 * round) * DAY);
    }
    ck_assert_ok(sako_retrain(e)); /* (the compaction point is at or before the last activation) */
    sako_compact_options co = SAKO_COMPACT_OPTIONS_INIT;
    co.keep_days = 0;
    co.keep_events = SAKO_COMPACT_MIN_EVENTS;
    sako_compact_report rep;
    ck_assert_ok(sako_compact(e, &co, &rep));
    ck_assert_int_gt(rep.compact_batch, 0);
    sako_close(e);
    e = sk_open_opts(path, &o);
    ck_assert_ok(sako_retrain(e));
    ck_assert_ok(sako_retrain(ref));
    ck_assert_uint_eq(info_of(e).n_users, info_of(ref).n_users);
    ck_assert_uint_eq(info_of(e).n_items, info_of(ref).n_items);
    float a[64], b[64];
    for (int64_t u = 1; u <= N_USERS; u++) {
        ck_assert_uint_eq(vector_of(e, u, 0, a), 8);
        ck_assert_uint_eq(vector_of(ref, u, 0, b), 8);
        ck_assert_msg(memcmp(a, b, sizeof(float) * 8) == 0, "user %lld", (long long)u);
    }
    sako_close(e);
    e = sk_open_opts(path, &o);
    for (int64_t u = 1; u <= N_USERS; u++) {
        ck_assert_uint_eq(vector_of(e, u, 0, a), 8);
        ck_assert_uint_eq(vector_of(ref, u, 0, b), 8);
        ck_assert(memcmp(a, b, sizeof(float) * 8) == 0);
    }
    ck_assert_uint_eq(info_of(e).n_folded, 0);
    sako_close(e);
    sako_close(ref);
}
END_TEST

/* A 0.4 file (schema 4) migrates: the mf keys at their defaults, no factors. */
START_TEST(test_schema4_migrates)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "mf-schema4");
    sako_options o = sk_opts(5);
    o.personal = 1;
    sako_engine *e = world(path, &o);
    ck_assert_ok(sako_retrain(e));
    sako_rec before[20];
    size_t nb = recommend(e, 3, before);
    sako_close(e);
    sk_sql_exec(path, SK_SCHEMA5_TO_4);
    ck_assert_int_eq(sk_sql_int(path, "PRAGMA user_version"), 4);
    e = sk_open_opts(path, &o);
    ck_assert_int_eq(sk_sql_int(path, "PRAGMA user_version"), SK_SCHEMA_VERSION);
    sako_options got = options_of(e);
    ck_assert_uint_eq(got.mf_factors, 0);
    ck_assert_uint_eq(got.mf_min_users, 100);
    ck_assert_uint_eq(info_of(e).factors, 0);
    sako_rec r[20];
    ck_assert_uint_eq(recommend(e, 3, r), nb);
    for (size_t i = 0; i < nb; i++)
        ck_assert_int_eq(r[i].item_id, before[i].item_id);
    sako_close(e);
}
END_TEST

/* ------------------------------------------------------------ fold-in */

/* A user's folded-in vector is the exact solve of the user's full history against
 * the item factors (not of the new events alone), as sako_mf_fold_in computes it. */
START_TEST(test_fold_in_uses_full_history)
{
    sako_options o = mf_opts(9);
    sako_engine *e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    int64_t user = 7;
    float trained[64];
    ck_assert_uint_eq(vector_of(e, user, 0, trained), 8);
    /* New events: two purchases and a cart of products of another aisle. */
    int64_t t = 1700000000000LL + 20 * DAY;
    sako_event ev[] = {{user, 1000 + 100 * 2 + 3, SAKO_EVENT_PURCHASE, t, 0},
                       {user, 1000 + 100 * 2 + 4, SAKO_EVENT_PURCHASE, t, 0},
                       {user, 1000 + 100 * 3 + 1, SAKO_EVENT_CART, t, 0}};
    ck_assert_ok(sako_update(e, ev, 3));
    float folded[64];
    ck_assert_uint_eq(vector_of(e, user, 0, folded), 8);
    ck_assert(memcmp(folded, trained, sizeof(float) * 8) != 0);
    /* The reference: the user's r_ui from every event fed (rewards 0.7 click, 0.85
     * cart, 1.0 purchase), solved against every item's vector. */
    enum { N = N_GROUPS * PER_GROUP };
    static float Y[N * 8];
    float r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        ck_assert_uint_eq(vector_of(e, 0, 1000 + 100 * (i / PER_GROUP) + i % PER_GROUP, Y + i * 8), 8);
    /* Replay the world's generator for this user to know its history. */
    uint64_t s = 7;
    for (int b = 0; b < 6; b++)
        for (int64_t u = 1; u <= N_USERS; u++)
            for (int p = 0; p < 4; p++) {
                int g = (int)(u % N_GROUPS);
                if (rnd(&s) % 100 >= 85)
                    g = (int)(rnd(&s) % N_GROUPS);
                int j = (int)(rnd(&s) % PER_GROUP);
                if (u == user)
                    r[g * PER_GROUP + j] += p == 0 ? 0.7f : 1.0f;
            }
    r[2 * PER_GROUP + 3] += 1.0f;
    r[2 * PER_GROUP + 4] += 1.0f;
    r[3 * PER_GROUP + 1] += 0.85f;
    int32_t items[N];
    float values[N];
    size_t n = 0;
    for (int i = 0; i < N; i++)
        if (r[i] > 0) {
            items[n] = i;
            values[n++] = r[i];
        }
    sako_mf_options mo = SAKO_MF_OPTIONS_INIT;
    mo.factors = 8;
    mo.regularization = o.mf_regularization;
    mo.alpha = o.mf_alpha;
    float want[8] = {0};
    ck_assert_ok(sako_mf_fold_in(Y, N, NULL, items, values, n, &mo, 1, want));
    for (int t2 = 0; t2 < 8; t2++)
        ck_assert_msg(fabsf(folded[t2] - want[t2]) <= 1e-4f * (1.0f + fabsf(want[t2])),
                      "factor %d: folded %g, full solve %g", t2, folded[t2], want[t2]);
    /* The new events alone give another vector (what the full history avoids). */
    float alone[8] = {0};
    int32_t new_items[3] = {2 * PER_GROUP + 3, 2 * PER_GROUP + 4, 3 * PER_GROUP + 1};
    float new_values[3] = {1.0f, 1.0f, 0.85f};
    ck_assert_ok(sako_mf_fold_in(Y, N, NULL, new_items, new_values, 3, &mo, 1, alone));
    double diff = 0;
    for (int t2 = 0; t2 < 8; t2++)
        diff += fabs(alone[t2] - folded[t2]);
    ck_assert(diff > 1e-3);
    sako_close(e);
}
END_TEST

/* The fold-in cache: a second request of an unchanged user is served the cached
 * vector; an update of that user invalidates it, and what is served then is what a
 * fresh fold-in (no cache, a workspace of its own) and the public sako_mf_fold_in()
 * on the same history give, to the bit. One workspace serves users of different
 * history lengths in turn (it grows, it is never stale). */
static void fresh_fold_in(sako_engine *e, uint32_t u, float *out)
{
    sako_factors *f = e->factors;
    pthread_mutex_lock(&f->fold_mutex);
    uint32_t kept = f->fold_events[u];
    f->fold_events[u] = 0; /* never a hit */
    pthread_mutex_unlock(&f->fold_mutex);
    ck_assert_int_eq(sako__factors_user_vector(f, &e->personal.inter, u, NULL, out), 1);
    pthread_mutex_lock(&f->fold_mutex);
    f->fold_events[u] = kept;
    pthread_mutex_unlock(&f->fold_mutex);
}

START_TEST(test_fold_in_cache_invalidation)
{
    sako_options o = mf_opts(3);
    sako_engine *e = world(NULL, &o);
    ck_assert_ok(sako_retrain(e));
    sako_factors *f = e->factors;
    sako_factors_workspace ws = { 0 };
    int64_t t = 1700000000000LL + 20 * DAY;
    for (int64_t user = 5; user <= 9; user++) {
        uint32_t u = sako__idmap_get(&e->users.index, user);
        ck_assert_uint_ne(u, SAKO_NONE);
        for (int round = 0; round < 2; round++) {
            /* `user` buys 1 + user % 3 products (+ round: a longer history each time) */
            sako_event ev[4];
            int n_ev = 1 + (int)(user % 3) + round;
            for (int j = 0; j < n_ev; j++) {
                sako_event x = {user, 1000 + 100 * ((user + j) % N_GROUPS) + 20 + j + round,
                                SAKO_EVENT_PURCHASE, t + round * DAY, 0};
                ev[j] = x;
            }
            ck_assert_ok(sako_update(e, ev, (size_t)n_ev));
            uint64_t folded_before = f->n_folded;
            float a[8], b[8], fresh[8], pub[8] = {0};
            ck_assert_int_eq(sako__factors_user_vector(f, &e->personal.inter, u, &ws, a), 1);
            ck_assert_uint_eq(f->n_folded, folded_before + 1); /* solved: the update invalidated */
            ck_assert_int_eq(sako__factors_user_vector(f, &e->personal.inter, u, &ws, b), 1);
            ck_assert_uint_eq(f->n_folded, folded_before + 1); /* cached */
            ck_assert_mem_eq(a, b, sizeof a);
            fresh_fold_in(e, u, fresh);
            ck_assert_mem_eq(a, fresh, sizeof a);
            /* the public fold-in on the same entries, the training's Gram matrix */
            const sako_user_interactions *row = &e->personal.inter.users[u];
            int32_t items[256];
            float values[256];
            size_t n = 0;
            for (uint32_t j = 0; j < row->n && n < 256; j++) {
                double r = sako__interactions_value(&row->v[j], f->reward);
                if (f->has[row->v[j].item] && r > 0.0) {
                    items[n] = (int32_t)row->v[j].item;
                    values[n++] = (float)r;
                }
            }
            sako_mf_options mo = SAKO_MF_OPTIONS_INIT;
            mo.factors = 8;
            mo.regularization = o.mf_regularization;
            mo.alpha = o.mf_alpha;
            ck_assert_ok(sako_mf_fold_in(f->item, f->n_items, f->gram, items, values, n, &mo, 1,
                                         pub));
            ck_assert_mem_eq(a, pub, sizeof a);
        }
    }
    sako__factors_workspace_free(&ws);
    sako_close(e);
}
END_TEST

/* The per-user cache of the index's answer (sako__factors_candidates): a user's
 * first request searches and keeps the answer, which is what the search gives for
 * the user's vector, to the bit; a second request of the unchanged user is served
 * from the cache, with the same recommendations as a search would give; an update
 * of the user (a fold-in, a new vector) and a retrain (new factors) are never
 * served an older answer. */
static void search_of(sako_engine *e, uint32_t u, float *x, uint32_t *items, float *scores,
                      size_t *n)
{
    sako_factors *f = e->factors;
    ck_assert_int_eq(sako__factors_user_vector(f, &e->personal.inter, u, NULL, x), 1);
    size_t want = e->params.mf_candidates;
    void *scratch = malloc(sako__factor_index_scratch_size(f->index, want));
    *n = sako__factor_index_search(f->index, x, e->opts.mf_probe, want, scratch, items, scores);
    free(scratch);
}

/* The slot holding user u's answer, and how many slots hold one of u (at most 1). */
static const struct sako_cand_slot *cached_of(const sako_factors *f, uint32_t u, size_t *at,
                                              int *copies)
{
    const struct sako_cand_slot *found = NULL;
    *copies = 0;
    for (size_t s = 0; f->cand_slot && s < 2 * f->cand_sets; s++)
        if (f->cand_slot[s].user == u) {
            found = &f->cand_slot[s];
            *at = s;
            ++*copies;
        }
    return found;
}

static void assert_cached_is_search(sako_engine *e, uint32_t u)
{
    sako_factors *f = e->factors;
    float x[8];
    uint32_t items[64];
    float scores[64];
    size_t n = 0, at = 0;
    int copies = 0;
    search_of(e, u, x, items, scores, &n);
    const struct sako_cand_slot *c = cached_of(f, u, &at, &copies);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(copies, 1);
    ck_assert_uint_eq(c->events, e->personal.inter.users[u].events);
    ck_assert_uint_eq(c->n, n);
    ck_assert_uint_gt(n, 0);
    ck_assert_mem_eq(f->cand_items + at * f->cand_want, items, n * sizeof *items);
    ck_assert_mem_eq(f->cand_scores + at * f->cand_want, scores, n * sizeof *scores);
}

START_TEST(test_candidate_cache)
{
    sako_options o = mf_opts(3);
    sako_engine *a = world(NULL, &o), *b = world(NULL, &o);
    ck_assert_ok(sako_retrain(a));
    ck_assert_ok(sako_retrain(b));
    int64_t user = 5;
    uint32_t u = sako__idmap_get(&a->users.index, user);
    sako_factors *f = a->factors;
    sako_rec ra[20], rb[20];
    /* the first request searches and keeps the answer */
    ck_assert_uint_eq(f->n_cand_misses, 0);
    size_t na = recommend(a, user, ra), nb = recommend(b, user, rb);
    ck_assert_uint_eq(f->n_cand_misses, 1);
    ck_assert_uint_eq(f->n_cand_hits, 0);
    assert_cached_is_search(a, u);
    /* the memory bound: two slots per set, within SAKO_FACTORS_CAND_BYTES */
    ck_assert_uint_eq(f->cand_want, o.mf_candidates);
    ck_assert_uint_le(2 * f->cand_sets * (sizeof(struct sako_cand_slot) + f->cand_want * 8),
                      SAKO_FACTORS_CAND_BYTES);
    /* again: a is served from its cache, b (its cache emptied) searches; the same
     * recommendations (the same seed, the same request number) */
    for (size_t s = 0; s < 2 * b->factors->cand_sets; s++)
        b->factors->cand_slot[s].user = SAKO_FACTORS_CAND_EMPTY;
    na = recommend(a, user, ra);
    nb = recommend(b, user, rb);
    ck_assert_uint_eq(f->n_cand_hits, 1);
    ck_assert_uint_eq(f->n_cand_misses, 1);
    ck_assert_uint_eq(b->factors->n_cand_misses, 2);
    ck_assert_uint_eq(na, nb);
    for (size_t i = 0; i < na; i++) { /* field by field: sako_rec has padding after source */
        ck_assert_int_eq(ra[i].item_id, rb[i].item_id);
        ck_assert_mem_eq(&ra[i].score, &rb[i].score, sizeof ra[i].score);
        ck_assert_int_eq(ra[i].source, rb[i].source);
    }
    /* an update of the user: a new vector, a new answer (the old one is replaced) */
    float before[8], after[8];
    uint32_t items[64];
    float scores[64];
    size_t n = 0;
    search_of(a, u, before, items, scores, &n);
    sako_event ev[3] = {
        {user, 1000 + 100 * ((user + 1) % N_GROUPS) + 3, SAKO_EVENT_PURCHASE, 1700000000000LL + 20 * DAY, 0},
        {user, 1000 + 100 * ((user + 1) % N_GROUPS) + 4, SAKO_EVENT_PURCHASE, 1700000000000LL + 20 * DAY, 0},
        {user, 1000 + 100 * ((user + 1) % N_GROUPS) + 5, SAKO_EVENT_PURCHASE, 1700000000000LL + 20 * DAY, 0},
    };
    ck_assert_ok(sako_update(a, ev, 3));
    search_of(a, u, after, items, scores, &n);
    ck_assert_mem_ne(before, after, sizeof before);
    recommend(a, user, ra);
    ck_assert_uint_eq(f->n_cand_misses, 2);
    assert_cached_is_search(a, u);
    recommend(a, user, ra);
    ck_assert_uint_eq(f->n_cand_hits, 2);
    /* a retrain: new factors, a new (empty) cache */
    ck_assert_ok(sako_retrain(a));
    ck_assert_ptr_ne(a->factors, f);
    f = a->factors;
    ck_assert_uint_eq(f->n_cand_misses + f->n_cand_hits, 0);
    recommend(a, user, ra);
    ck_assert_uint_eq(f->n_cand_misses, 1);
    assert_cached_is_search(a, u);
    /* Two slots per set: a third user of a set replaces the one served least
     * recently. Users are offered until three have landed in one set. */
    float x[8];
    search_of(a, u, x, items, scores, &n);
    size_t want = a->params.mf_candidates, sets = f->cand_sets;
    void *scratch = malloc(sako__factor_index_scratch_size(f->index, want));
    uint32_t first_of[8192];
    uint32_t second_of[8192];
    ck_assert_uint_le(sets, 8192);
    for (size_t s = 0; s < sets; s++)
        first_of[s] = second_of[s] = SAKO_FACTORS_CAND_EMPTY;
    int evicted = 0;
    for (uint32_t v = 1000000; v < 1000000 + 4 * sets && !evicted; v++) {
        sako__factors_candidates(f, &a->personal.inter, v, x, a->opts.mf_probe, want, scratch,
                                 items, scores);
        size_t at = 0;
        int copies = 0;
        ck_assert_ptr_nonnull(cached_of(f, v, &at, &copies));
        size_t set = at / 2;
        if (first_of[set] == SAKO_FACTORS_CAND_EMPTY) {
            first_of[set] = v;
        } else if (second_of[set] == SAKO_FACTORS_CAND_EMPTY) {
            second_of[set] = v;
            /* the first is served again: the second is now the least recent */
            uint64_t hits = f->n_cand_hits;
            sako__factors_candidates(f, &a->personal.inter, first_of[set], x, a->opts.mf_probe,
                                     want, scratch, items, scores);
            ck_assert_uint_eq(f->n_cand_hits, hits + 1);
        } else {
            ck_assert_ptr_nonnull(cached_of(f, first_of[set], &at, &copies));
            ck_assert_ptr_null(cached_of(f, second_of[set], &at, &copies));
            evicted = 1;
        }
    }
    ck_assert(evicted);
    free(scratch);
    sako_close(a);
    sako_close(b);
}
END_TEST

/* The index's dot product is eight lanes summed in a fixed order, whatever the
 * instruction set: the same float, to the bit, as this scalar statement of it (the
 * personal engine keeps the index's scores as the candidates' factor scores). */
START_TEST(test_dot_lanes)
{
    uint64_t s = 5;
    float a[77], b[77];
    for (int i = 0; i < 77; i++) {
        a[i] = (float)((double)(rnd(&s) % 2000001) / 1e6 - 1.0);
        b[i] = (float)((double)(rnd(&s) % 2000001) / 1e6 - 1.0);
    }
    uint32_t ks[] = {1, 7, 8, 9, 16, 63, 64, 77};
    for (size_t c = 0; c < sizeof ks / sizeof ks[0]; c++) {
        uint32_t k = ks[c], j = 0;
        float want = 0.0f;
        if (k >= 8) {
            float acc[8];
            for (int l = 0; l < 8; l++)
                acc[l] = a[l] * b[l];
            for (j = 8; j + 8 <= k; j += 8)
                for (int l = 0; l < 8; l++)
                    acc[l] += a[j + l] * b[j + l];
            want = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        }
        for (; j < k; j++)
            want += a[j] * b[j];
        float got = sako__factor_index_dot(a, b, k);
        ck_assert_mem_eq(&got, &want, sizeof got);
    }
}
END_TEST

/* The one bounded top-k (topk_internal.h) against a full sort: values with many ties,
 * offered in a scrambled order; the kept set is the sort's first k (ties to the lower
 * id), sorted best first; a NaN offered to a full heap is not kept. */
START_TEST(test_topk_matches_sort)
{
    enum { N = 2000 };
    static double v[N];
    static uint32_t id[N];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        v[i] = (double)(rnd(&s) % 50); /* 40 ties per value */
        id[i] = (uint32_t)i;
    }
    /* the reference: by value descending, id ascending (insertion sort is enough) */
    static uint32_t ref[N];
    for (int i = 0; i < N; i++) {
        int j = i;
        while (j > 0 && (v[ref[j - 1]] < v[i] || (v[ref[j - 1]] == v[i] && ref[j - 1] > (uint32_t)i))) {
            ref[j] = ref[j - 1];
            j--;
        }
        ref[j] = (uint32_t)i;
    }
    size_t caps[] = {0, 1, 7, 20, 64, N, N + 5};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        double hv[N + 5];
        uint32_t hi[N + 5];
        sako_topk h = { hv, hi, 0, caps[c] };
        for (int i = 0; i < N; i++) {
            int at = (int)((size_t)i * 7919 % N); /* every index once, scrambled */
            sako__topk_push(&h, v[at], id[at]);
            if (i == N / 2 && caps[c] <= 64) /* full by now */
                ck_assert_int_eq(sako__topk_push(&h, NAN, 4000000000u), 0);
        }
        size_t want = caps[c] < N ? caps[c] : N;
        ck_assert_uint_eq(sako__topk_sort(&h), want);
        for (size_t j = 0; j < want; j++) {
            ck_assert_uint_eq(hi[j], ref[j]);
            ck_assert(hv[j] == v[ref[j]]);
        }
    }
}
END_TEST

/* ------------------------------------------------------------ retrieval */

/* Recall@20 of the index against the exact scan on a clustered problem: 20,000 items
 * around 100 centres in 16 dimensions (the shape of trained item factors: products
 * of one taste close together), 200 queries. The bound, 0.9, is below what the
 * default probe gives here (see docs/benchmarks.md) with room for the seed. */
START_TEST(test_index_recall)
{
    enum { N = 20000, K = 16, C = 100, Q = 200, W = 20 };
    float *items = malloc(sizeof(float) * N * K), *centres = malloc(sizeof(float) * C * K);
    uint8_t *has = malloc(N);
    uint32_t *order = malloc(sizeof(uint32_t) * N);
    uint64_t s = 12345;
#define GAUSS() ((float)(((double)(rnd(&s) % 1000000) / 1e6 + (double)(rnd(&s) % 1000000) / 1e6 + \
                          (double)(rnd(&s) % 1000000) / 1e6 - 1.5) * 2.0))
    for (int c = 0; c < C * K; c++)
        centres[c] = GAUSS();
    for (int i = 0; i < N; i++) {
        int c = (int)(rnd(&s) % C);
        for (int t = 0; t < K; t++)
            items[i * K + t] = centres[c * K + t] + 0.3f * GAUSS();
        has[i] = i % 50 != 0; /* some items without a vector: never returned */
        order[i] = (uint32_t)i;
    }
    sako_factor_index *x = NULL;
    ck_assert_ok(sako__factor_index_build(items, has, order, N, K, 1, 1, &x));
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(sako__factor_index_lists(x), 280); /* ceil(2 sqrt(19,600)) */
    void *scratch = malloc(sako__factor_index_scratch_size(x, W));
    uint32_t got[W], want[W];
    float gs[W], ws[W];
    size_t hits = 0;
    for (int q = 0; q < Q; q++) {
        float query[K];
        int c = (int)(rnd(&s) % C);
        for (int t = 0; t < K; t++)
            query[t] = centres[c * K + t] + 0.5f * GAUSS();
        size_t n = sako__factor_index_search(x, query, 0, W, scratch, got, gs);
        size_t m = sako__factor_index_exact(x, query, W, scratch, want, ws);
        ck_assert_uint_eq(m, W);
        ck_assert_uint_eq(n, W);
        for (size_t i = 1; i < n; i++)
            ck_assert(gs[i - 1] >= gs[i]);
        for (size_t i = 0; i < n; i++) {
            ck_assert(has[got[i]]);
            for (size_t j = 0; j < m; j++)
                hits += got[i] == want[j];
        }
        /* Probing every list is the exact scan. */
        n = sako__factor_index_search(x, query, sako__factor_index_lists(x), W, scratch, got, gs);
        for (size_t i = 0; i < n; i++)
            ck_assert_uint_eq(got[i], want[i]);
    }
    double recall = (double)hits / (Q * W);
    ck_assert_msg(recall >= 0.9, "recall@20 %.3f", recall);
    /* Built over 3 threads: the same index (the same answers, to the bit). */
    sako_factor_index *x3 = NULL;
    ck_assert_ok(sako__factor_index_build(items, has, order, N, K, 1, 3, &x3));
    for (int q = 0; q < 20; q++) {
        uint32_t got3[W];
        float gs3[W];
        const float *query = items + (size_t)(q * 997 % N) * K;
        size_t n = sako__factor_index_search(x, query, 0, W, scratch, got, gs);
        ck_assert_uint_eq(sako__factor_index_search(x3, query, 0, W, scratch, got3, gs3), n);
        ck_assert_mem_eq(got, got3, n * sizeof *got);
        ck_assert_mem_eq(gs, gs3, n * sizeof *gs);
    }
    sako__factor_index_free(x3);
    free(scratch);
    sako__factor_index_free(x);
    /* Two or three vectors: no more lists than vectors, and the search finds them all. */
    for (size_t m = 1; m <= 3; m++) {
        ck_assert_ok(sako__factor_index_build(items, has + 1, order, m, K, 1, 1, &x));
        ck_assert_uint_eq(sako__factor_index_lists(x), m);
        scratch = malloc(sako__factor_index_scratch_size(x, W));
        ck_assert_uint_eq(sako__factor_index_search(x, items, 0, W, scratch, got, gs), m);
        free(scratch);
        sako__factor_index_free(x);
    }
    free(items), free(centres), free(has), free(order);
}
END_TEST

/* ------------------------------------------------------------ threads */

typedef struct stress {
    sako_engine *e;
    int stop;
    int failures;
} stress;

static void *reader(void *arg)
{
    stress *st = arg;
    sako_rec r[20];
    int64_t u = 1;
    while (!__atomic_load_n(&st->stop, __ATOMIC_ACQUIRE)) {
        sako_query q = SAKO_QUERY_INIT;
        q.user_id = u;
        q.k = 20;
        size_t n = 0;
        int rc = sako_recommend(st->e, &q, r, 20, &n);
        float v[64];
        if (rc == SAKO_OK)
            rc = sako_factors_vector(st->e, u, 0, v, 64, &n);
        if (rc != SAKO_OK && rc != SAKO_NOTFOUND && /* (users the writer has not created yet) */
            __atomic_fetch_add(&st->failures, 1, __ATOMIC_RELAXED) == 0)
            fprintf(stderr, "reader: %s\n", sako_errmsg());
        u = u % (N_USERS + 20) + 1;
    }
    return NULL;
}

static void *writer(void *arg)
{
    stress *st = arg;
    uint64_t s = 31;
    for (int round = 0; round < 6; round++)
        world_orders(st->e, &s, 1 + (round * 17) % N_USERS, 20, 1,
                     1700000000000LL + (40 + round) * DAY);
    return NULL;
}

/* Retrains with 2 training threads while recommends, fold-ins and updates go on
 * (run under TSan by make tsan). */
START_TEST(test_retrain_concurrent)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "mf-threads");
    sako_options o = mf_opts(11);
    sako_engine *e = world(path, &o);
    ck_assert_ok(sako_retrain(e));
    stress st = {e, 0, 0};
    pthread_t r[2], w;
    for (int i = 0; i < 2; i++)
        pthread_create(&r[i], NULL, reader, &st);
    pthread_create(&w, NULL, writer, &st);
    for (int i = 0; i < 3; i++)
        ck_assert_ok(sako_retrain(e));
    pthread_join(w, NULL);
    __atomic_store_n(&st.stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    ck_assert_int_eq(st.failures, 0);
    ck_assert_uint_eq(info_of(e).factors, 8);
    sako_close(e);
}
END_TEST

/* ------------------------------------------------------------ what the factors add */

/* A world where only the factors can know a user's taste. B_BLOCKS taste blocks of
 * B_PER products; every category holds the same number of each block's products
 * (category j % B_CATS), so the category affinity cannot tell the blocks apart; every
 * order holds one product, so there is no co-purchase lift; users are spread evenly
 * over the blocks, so demand does not either. B_USERS users buy B_BOUGHT products of
 * their block; a probe user (2001 + b) bought B_PROBE products of block b. In discover
 * mode (products new to the user) the factors are the one signal that knows the rest
 * of its block. */
#define B_BLOCKS 4
#define B_PER 40
#define B_CATS 8
#define B_USERS 120
#define B_BOUGHT 12
#define B_PROBE 3
#define B_K 10
#define B_QUERIES 5

static int64_t block_item(int b, int j)
{
    return 5000 + 100 * b + j;
}

static sako_engine *block_world(sako_options *o)
{
    o->personal = 1;
    sako_engine *e = sk_open_opts(NULL, o);
    aisles(e, 50, B_CATS);
    sako_item items[B_BLOCKS * B_PER];
    for (int b = 0; b < B_BLOCKS; b++)
        for (int j = 0; j < B_PER; j++) {
            sako_item it = {block_item(b, j), 50 + j % B_CATS, 1, 1000};
            items[b * B_PER + j] = it;
        }
    ck_assert_ok(sako_items_upsert(e, items, B_BLOCKS * B_PER));
    size_t cap = (size_t)B_USERS * B_BOUGHT + B_BLOCKS * B_PROBE, n = 0;
    sako_event *ev = malloc(cap * sizeof *ev);
    int64_t *orders = malloc(cap * sizeof *orders);
    uint64_t s = 11;
    for (int64_t u = 1; u <= B_USERS + B_BLOCKS; u++) {
        int64_t user = u <= B_USERS ? u : 2000 + (u - B_USERS);
        int b = (int)(user % B_BLOCKS), want = u <= B_USERS ? B_BOUGHT : B_PROBE;
        int picked[B_PER] = {0};
        for (int m = 0; m < want;) {
            int j = (int)(rnd(&s) % B_PER);
            if (picked[j])
                continue;
            picked[j] = 1;
            sako_event x = {user, block_item(b, j), SAKO_EVENT_PURCHASE,
                            1700000000000LL + m * DAY + user * 1000, 0};
            ev[n] = x;
            orders[n++] = user * 100 + m++;
        }
    }
    ck_assert_ok(sako_update_orders(e, ev, orders, n));
    free(ev);
    free(orders);
    ck_assert_ok(sako_retrain(e));
    return e;
}

/* Of the probes' discover-mode answers: how many are of the probe's block, how many
 * attributed to the factors, and how many of those are of the probe's block. */
static void block_answers(sako_engine *e, int *in_block, int *n_all, int *n_mf, int *mf_in_block)
{
    *in_block = *n_all = *n_mf = *mf_in_block = 0;
    for (int b = 0; b < B_BLOCKS; b++)
        for (int r = 0; r < B_QUERIES; r++) {
            sako_query q = SAKO_QUERY_INIT;
            q.user_id = 2000 + b + (b == 0 ? B_BLOCKS : 0); /* user % B_BLOCKS == b */
            q.k = B_K;
            q.mode = SAKO_MODE_DISCOVER;
            q.time = 1700000000000LL + (30 + r) * DAY;
            sako_rec out[B_K];
            size_t n = 0;
            ck_assert_ok(sako_recommend(e, &q, out, B_K, &n));
            for (size_t i = 0; i < n; i++) {
                int own_block = (int)((out[i].item_id - 5000) / 100) == b;
                *in_block += own_block;
                *n_mf += out[i].source == SAKO_SOURCE_MF;
                *mf_in_block += own_block && out[i].source == SAKO_SOURCE_MF;
            }
            *n_all += (int)n;
        }
}

START_TEST(test_factors_find_the_block)
{
    sako_options o = mf_opts(5);
    sako_engine *e = block_world(&o);
    int in_block, n_all, n_mf, mf_in_block;
    block_answers(e, &in_block, &n_all, &n_mf, &mf_in_block);
    ck_assert_int_eq(n_all, B_BLOCKS * B_QUERIES * B_K);
    /* Without the factors every block is alike to the engine: an answer is of the
     * probe's block with probability 1/B_BLOCKS (mean n/4 = 50, sd sqrt(n 1/4 3/4) =
     * 6.1 for n = 200). With them, the block's 37 unbought products rank first up to
     * the draw's noise: at least 3/4 of the answers (16 sd above that mean). */
    ck_assert_msg(4 * in_block >= 3 * n_all, "%d of %d answers in the probe's block", in_block, n_all);
    /* ... and they are attributed to the factors (their multiplier is their largest
     * signal: no lift, an affinity that is the same for every block). */
    ck_assert_msg(4 * mf_in_block >= 3 * in_block, "%d of the %d in the block attributed to mf",
                  mf_in_block, in_block);
    ck_assert_msg(mf_in_block * 10 >= n_mf * 9, "%d of %d mf answers in the block", mf_in_block, n_mf);
    sako_close(e);

    /* The same world with the factors trained but pinned off: back to chance. */
    o.mf_mode = SAKO_MF_OFF;
    e = block_world(&o);
    block_answers(e, &in_block, &n_all, &n_mf, &mf_in_block);
    ck_assert_int_eq(n_mf, 0);
    /* mean 50, sd 6.1: within 4 sd of chance, far from the 150 above */
    ck_assert_msg(in_block >= 26 && in_block <= 74, "%d of %d in the block without factors", in_block,
                  n_all);
    sako_close(e);
}
END_TEST

/* The factor signal leaves the user's own products alone: a "buy it again" answer
 * ranked by the posterior (temperature 0) is the same with the factors served and
 * with them pinned off, score for score (docs/journey/mf_quality.md: re-ranking the
 * staples by what similar users buy cost NDCG at every weight). */
START_TEST(test_factors_leave_own_products)
{
    sako_engine *e[2];
    for (int m = 0; m < 2; m++) {
        sako_options o = mf_opts(3);
        o.personal = 1;
        o.personal_temperature = 0.0;
        o.mf_mode = m ? SAKO_MF_ON : SAKO_MF_OFF;
        e[m] = world(NULL, &o);
        ck_assert_ok(sako_retrain(e[m]));
    }
    ck_assert_int_eq(info_of(e[1]).serving, 1);
    size_t compared = 0;
    for (int64_t u = 1; u <= 30; u++) {
        sako_rec r[2][20];
        size_t n[2];
        for (int m = 0; m < 2; m++) {
            sako_query q = SAKO_QUERY_INIT;
            q.user_id = u;
            q.k = 20;
            q.mode = SAKO_MODE_REPEAT;
            q.time = 1700000000000LL + 30 * DAY;
            ck_assert_ok(sako_recommend(e[m], &q, r[m], 20, &n[m]));
        }
        ck_assert_uint_eq(n[0], n[1]);
        for (size_t i = 0; i < n[0]; i++) {
            ck_assert_int_eq(r[0][i].item_id, r[1][i].item_id);
            ck_assert_float_eq(r[0][i].score, r[1][i].score);
            ck_assert_int_ne(r[1][i].source, SAKO_SOURCE_MF);
        }
        compared += n[0];
    }
    ck_assert_uint_ge(compared, 30 * 10);
    sako_close(e[0]);
    sako_close(e[1]);
}
END_TEST

Suite *suite_factors(void)
{
    Suite *s = suite_create("factors");
    TCase *tc = tcase_create("factors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_bad_options_refused);
    tcase_add_test(tc, test_old_options_get_defaults);
    tcase_add_test(tc, test_v4_options_get_probe_default);
    tcase_add_test(tc, test_options_stored);
    tcase_add_test(tc, test_no_factors_by_default);
    tcase_add_test(tc, test_retrain_trains);
    tcase_add_test(tc, test_mode_off_serves_none);
    tcase_add_test(tc, test_auto_waits_for_users);
    tcase_add_test(tc, test_auto_serves_by_user_history);
    tcase_add_test(tc, test_factor_calls_refused);
    tcase_add_test(tc, test_reopen_restores_factors);
    tcase_add_test(tc, test_damaged_factors_refused);
    tcase_add_test(tc, test_schema4_migrates);
    tcase_add_test(tc, test_compaction_keeps_interactions);
    tcase_add_test(tc, test_fold_in_uses_full_history);
    tcase_add_test(tc, test_fold_in_cache_invalidation);
    tcase_add_test(tc, test_candidate_cache);
    tcase_add_test(tc, test_topk_matches_sort);
    tcase_add_test(tc, test_dot_lanes);
    tcase_add_test(tc, test_index_recall);
    tcase_add_test(tc, test_factors_find_the_block);
    tcase_add_test(tc, test_factors_leave_own_products);
    suite_add_tcase(s, tc);
    TCase *threads = tcase_create("threads");
    tcase_set_timeout(threads, 300);
    tcase_add_test(threads, test_retrain_concurrent);
    suite_add_tcase(s, threads);
    return s;
}
