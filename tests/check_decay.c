/* Decay: evidence fades with decay_half_life_days of event time, exactly (closed
 * forms), across rebases of the frame's offset, and a retrain or a reopen rebuilds
 * the decayed state bit for bit; decay 0 is the 0.2 arithmetic; bad values are
 * refused; older option structs and a schema-2 file still work. */
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_sako.h"
#include "decay_internal.h"
#include "engine_internal.h"
#include "personal_internal.h"

#define DAY 86400000LL
#define T0 (1500000000000LL) /* a fixed instant: decay is measured between event times */

static sako_options decay_opts(uint64_t seed, double half_life_days)
{
    sako_options o = sk_opts(seed);
    o.decay_half_life_days = half_life_days;
    return o;
}

/* The half-life in force (sk_options reads the version-1 fields only). */
static double half_life_of(sako_engine *e)
{
    sako_options g = SAKO_OPTIONS_INIT;
    ck_assert_ok(sako_options_get(e, &g));
    return g.decay_half_life_days;
}

static void send(sako_engine *e, const sako_event *ev, size_t n)
{
    ck_assert_ok(sako_update(e, ev, n));
}

/* |x - want| within rel of want. */
static void assert_close(double x, double want, double rel, const char *what)
{
    ck_assert_msg(fabs(x - want) <= rel * fabs(want), "%s: %.17g, expected %.17g (rel %.3g)", what, x,
                  want, fabs(x - want) / fabs(want));
}

/* One half-life of event time halves an item's evidence: with flat priors the
 * posterior is Beta(1 + A, 1 + B), A and B the decayed sums, in closed form. */
START_TEST(test_half_life_halves_evidence)
{
    const double h = 10.0;
    sako_options o = decay_opts(3, h);
    o.prior = SAKO_PRIOR_FLAT;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[32];
    size_t n = 0;
    sk_push(ev, &n, 1, 101, SAKO_EVENT_IMPRESSION, 10, T0);
    sk_push(ev, &n, 1, 101, SAKO_EVENT_CLICK, 4, T0);
    send(e, ev, n);
    /* Before time moves, nothing has decayed. */
    sako_item_info a = sk_info(e, 101);
    assert_close(a.alpha, 1.0 + 0.7 * 4, 1e-12, "alpha at t0");
    assert_close(a.beta, 1.0 + 6.0, 1e-12, "beta at t0");
    /* Exactly one half-life later: one click on 101 and an impression elsewhere. */
    n = 0;
    sk_push(ev, &n, 2, 101, SAKO_EVENT_CLICK, 1, T0 + (int64_t)(h * DAY));
    sk_push(ev, &n, 2, 102, SAKO_EVENT_IMPRESSION, 1, T0 + (int64_t)(h * DAY));
    send(e, ev, n);
    /* The time trigger took an epoch at the latest event time (an eighth of a
     * half-life had passed). */
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0);
    a = sk_info(e, 101);
    assert_close(a.alpha, 1.0 + 0.7 * (4 * 0.5 + 1.0), 1e-12, "alpha after one half-life");
    /* Impressions without click: the old 6 halve; the new click has no impression. */
    assert_close(a.beta, 1.0 + (10 * 0.5 - (4 * 0.5 + 1.0)), 1e-12, "beta after one half-life");
    assert_close(a.impressions, 5.0, 1e-12, "decayed impressions");
    assert_close(a.clicks, 3.0, 1e-12, "decayed clicks");
    sako_item_info b = sk_info(e, 102);
    assert_close(b.beta, 2.0, 1e-12, "a fresh impression counts 1");
    /* Two half-lives: a quarter (an event on another item moves time). */
    n = 0;
    sk_push(ev, &n, 2, 102, SAKO_EVENT_IMPRESSION, 1, T0 + (int64_t)(2 * h * DAY));
    send(e, ev, n);
    a = sk_info(e, 101);
    assert_close(a.alpha, 1.0 + 0.7 * (4 * 0.25 + 0.5), 1e-12, "alpha after two half-lives");
    sako_close(e);
}
END_TEST

/* The frame's arithmetic over 1500 half-lives: every decayed value equals the
 * direct sum of 2^(-(T - t)/h), and a rebase (many happen) changes no value it
 * represents, bit for bit. */
START_TEST(test_rebase_exact)
{
    sako_decay d;
    sako__decay_init(&d, 1.0);
    double sum = 0.0;
    int rebases = 0;
    const int64_t step = (int64_t)(0.7 * DAY) + 12345;
    int64_t t = T0;
    long double direct = 0.0L; /* sum of 2^(-(t_last - t_i)/h), kept by decaying */
    int64_t prev = 0;
    for (int i = 0; i < 2200; i++, t += step) {
        if (i > 0) {
            sako_decay before = d;
            sako_decay_ref ref = sako__decay_ref(d.half_life_ms, prev);
            double v_before = sum * sako__decay_scale(&before, ref);
            int64_t delta = sako__decay_observe(&d, t);
            if (delta) {
                rebases++;
                sum = sako__decay_shrink(sum, delta);
                double v_after = sum * sako__decay_scale(&d, ref);
                ck_assert_msg(sk_same_double(v_before, v_after),
                              "rebase by %lld changed %.17g into %.17g", (long long)delta, v_before,
                              v_after);
            }
            direct *= powl(2.0L, -(long double)(t - prev) / (long double)DAY);
        } else {
            sako__decay_observe(&d, t);
        }
        sum += sako__decay_weight(&d, t);
        direct += 1.0L;
        prev = t;
        double v = sum * sako__decay_scale(&d, sako__decay_ref(d.half_life_ms, t));
        assert_close(v, (double)direct, 1e-9, "decayed sum");
    }
    /* 2200 * 0.7 days = 1540 half-lives: a rebase every 64 or so. */
    ck_assert_int_ge(rebases, 20);
    /* No decay: weights and scales are exactly 1. */
    sako_decay off;
    sako__decay_init(&off, 0.0);
    ck_assert_int_eq(sako__decay_observe(&off, T0), 0);
    ck_assert(sako__decay_weight(&off, T0) == 1.0);
    ck_assert(sako__decay_scale(&off, sako__decay_ref(0.0, T0)) == 1.0);
}
END_TEST

/* The personal state's product-level sums (c_j, B, organic counts, partner counts,
 * interval sums) decay in their frame, through a rebase, to the closed form; the
 * histories keep their own decay (half_life_days). */
START_TEST(test_personal_sums_decay)
{
    sako_personal p;
    memset(&p, 0, sizeof p);
    sako_personal_params pp = { 45.0, 1800000, 2.0 };
    /* Baskets (one order each): t0 u0 {1, 2}; t0 + 130 d u1 {1, 3}; t0 + 132 d
     * u2 {1, 2}; t0 + 132 d u0 {1} again (an interval of 132 days). */
    const int64_t t1 = T0 + 130 * DAY, t2 = T0 + 132 * DAY;
    sako_event ev[] = {{1, 1, SAKO_EVENT_PURCHASE, T0, 0}, {1, 2, SAKO_EVENT_PURCHASE, T0, 0},
                       {2, 1, SAKO_EVENT_PURCHASE, t1, 0}, {2, 3, SAKO_EVENT_PURCHASE, t1, 0},
                       {3, 1, SAKO_EVENT_PURCHASE, t2, 0}, {3, 2, SAKO_EVENT_PURCHASE, t2, 0},
                       {1, 1, SAKO_EVENT_PURCHASE, t2, 0}};
    const uint32_t user[] = {0, 0, 1, 1, 2, 2, 0}, item[] = {1, 2, 1, 3, 1, 2, 1};
    const int64_t order[] = {10, 10, 20, 20, 30, 30, 40};
    const size_t n = sizeof ev / sizeof ev[0];
    ck_assert_ok(sako__personal_reserve(&p, 3, ev, user, item, n));
    int64_t offsets[n];
    for (size_t i = 0; i < n; i++) {
        sako__personal_apply(&p, &pp, &ev[i], order[i], user[i], item[i]);
        offsets[i] = p.decay.offset;
    }
    ck_assert_int_ne(offsets[2], offsets[1]); /* 65 half-lives later: a rebase */
    double s = sako__decay_scale(&p.decay, sako__decay_ref(p.decay.half_life_ms, t2));
    const double old = ldexp(1.0, -66); /* t0's weight at t2 */
    assert_close(p.item_baskets[1] * s, old + 0.5 + 2.0, 1e-12, "c_1");
    assert_close(p.item_baskets[2] * s, old + 1.0, 1e-12, "c_2");
    assert_close(p.item_baskets[3] * s, 0.5, 1e-12, "c_3");
    assert_close(p.baskets * s, old + 0.5 + 2.0, 1e-12, "B");
    assert_close(p.items[1].organic[SAKO_EVENT_PURCHASE] * s, old + 0.5 + 2.0, 1e-12, "organic");
    ck_assert(p.organic_purchases == 7.0); /* a plain count */
    /* Partners of 1: 2 (t0 and t2), 3 (t1); floats. */
    double with2 = 0.0, with3 = 0.0;
    for (uint32_t j = 0; j < p.items[1].n_partners; j++) {
        if (p.items[1].partners[j].item == 2)
            with2 = p.items[1].partners[j].count * s;
        if (p.items[1].partners[j].item == 3)
            with3 = p.items[1].partners[j].count * s;
    }
    assert_close(with2, old + 1.0, 1e-6, "C_12");
    assert_close(with3, 0.5, 1e-6, "C_13");
    /* The one repurchase interval (132 days) weighs 1 at t2. */
    assert_close(p.items[1].gap_days * s, 132.0, 1e-12, "interval sum");
    assert_close(p.items[1].gaps * s, 1.0, 1e-12, "interval count");
    /* Histories: n_uj of u0 for item 1 decays with half_life_days (45), as in 0.2. */
    const sako_history_entry *x = sako__personal_find(&p.users[0], 1);
    ck_assert_ptr_nonnull(x);
    assert_close(x->weight, 1.0 + exp2(-132.0 / 45.0), 1e-6, "n_uj");
    sako__personal_free(&p);
}
END_TEST

/* The engine with the shortest half-life (a day) across 1100 half-lives: the
 * posterior is the closed form at the epoch's time, through many rebases. */
START_TEST(test_engine_many_half_lives)
{
    sako_options o = decay_opts(4, 1.0);
    o.prior = SAKO_PRIOR_FLAT;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    long double imp = 0.0L, clk = 0.0L;
    int64_t prev = T0;
    for (int day = 0; day < 1100; day++) {
        int64_t t = T0 + day * DAY + (day % 7) * 3600000LL;
        long double f = powl(2.0L, -(long double)(t - prev) / (long double)DAY);
        imp *= f;
        clk *= f;
        sako_event ev[3];
        size_t n = 0;
        sk_push(ev, &n, 1, 101, SAKO_EVENT_IMPRESSION, 2, t);
        imp += 2.0L;
        if (day % 3 == 0) {
            sk_push(ev, &n, 1, 101, SAKO_EVENT_CLICK, 1, t);
            clk += 1.0L;
        }
        send(e, ev, n);
        prev = t;
        if (day > 0) /* an epoch per day (the first batch only sets the reference) */
            ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0);
        if (day % 97 == 0 || day == 1099) {
            sako_item_info a = sk_info(e, 101);
            assert_close(a.alpha, (double)(1.0L + 0.7L * clk), 1e-9, "alpha");
            assert_close(a.beta, (double)(1.0L + (imp - clk)), 1e-9, "beta");
        }
    }
    sako_close(e);
}
END_TEST

/* Deterministic traffic over `days` days: orders (partners, intervals), organic
 * purchases (demand), answered recommendations (outcomes), impressions. */
static void traffic_part(sako_engine *e, int days, int seed, int from, int to);

static void traffic(sako_engine *e, int days, int seed)
{
    traffic_part(e, days, seed, 0, days);
}

/* The batches of traffic(e, days, seed) for the days in [from, to) only. */
static void traffic_part(sako_engine *e, int days, int seed, int from, int to)
{
    static const int64_t items[] = {101, 102, 103, 104, 105, 111, 112, 113, 150, 201, 202, 203, 204, 301};
    sako_event ev[64];
    int64_t orders[64];
    uint64_t x = (uint64_t)seed * 2654435761u + 7;
    for (int day = 0; day < days; day += 2) {
        size_t n = 0;
        for (int j = 0; j < 24; j++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t user = 1 + (int64_t)((x >> 33) % 9);
            /* Tastes drift: early days favour the first items, late days the last. */
            size_t k = ((x >> 17) % 7 + (size_t)(day * 7 / (days ? days : 1))) % 14;
            int type = (int)((x >> 7) % 4);
            int64_t t = T0 + day * DAY + j * 60000;
            sako_event evj = {user, items[k], type,
                              t, type != SAKO_EVENT_IMPRESSION && (x >> 40) % 3 == 0 ? 9 : 0};
            ev[n] = evj;
            orders[n++] = (x >> 50) % 2 ? (int64_t)(day * 10 + user) : 0;
        }
        if (day >= from && day < to)
            ck_assert_ok(sako_update_orders(e, ev, orders, n));
    }
}

static const int64_t all_items[] = {101, 102, 103, 104, 105, 111, 112, 113, 150, 201, 202, 203, 204, 301};
#define N_ALL (sizeof all_items / sizeof all_items[0])

/* Posteriors, priors (demand: c_j, B, calibration), decayed counts, category
 * priors, and the personal answers (lift from partners, intervals, demand) equal. */
static void assert_same_state(sako_engine *a, sako_engine *b)
{
    for (size_t i = 0; i < N_ALL; i++) {
        sako_item_info x = sk_info(a, all_items[i]), y = sk_info(b, all_items[i]);
        ck_assert_msg(sk_same_info(&x, &y),
                      "item %lld: %.17g/%.17g prior %.17g imp %.17g vs %.17g/%.17g prior %.17g imp %.17g",
                      (long long)all_items[i], x.alpha, x.beta, x.prior_mean, x.impressions, y.alpha,
                      y.beta, y.prior_mean, y.impressions);
    }
    static const int64_t cats[] = {0, 1, 2, 11, 12, 21};
    for (size_t c = 0; c < sizeof cats / sizeof cats[0]; c++) {
        double ma, mb;
        ck_assert_ok(sako_category_prior(a, cats[c], &ma));
        ck_assert_ok(sako_category_prior(b, cats[c], &mb));
        ck_assert(sk_same_double(ma, mb));
    }
    for (int64_t u = 1; u <= 9; u++) {
        sako_query q = SAKO_QUERY_INIT;
        int64_t recent[] = {101, 203};
        q.user_id = u;
        q.k = 14;
        q.recent = recent;
        q.n_recent = 2;
        q.time = T0 + 1000 * DAY;
        sako_rec ra[14], rb[14];
        size_t na = 0, nb = 0;
        ck_assert_ok(sako_recommend(a, &q, ra, 14, &na));
        ck_assert_ok(sako_recommend(b, &q, rb, 14, &nb));
        /* Scores are posterior means (temperature 0): equal bit for bit for every item
         * both answers hold (the population engine's own draw may add others). */
        size_t common = 0;
        for (size_t i = 0; i < na; i++)
            for (size_t j = 0; j < nb; j++)
                if (ra[i].item_id == rb[j].item_id && ra[i].source != SAKO_SOURCE_THOMPSON) {
                    common++;
                    ck_assert_msg(sk_same_double(ra[i].score, rb[j].score),
                                  "user %lld item %lld: %.17g vs %.17g", (long long)u,
                                  (long long)ra[i].item_id, ra[i].score, rb[j].score);
                }
        ck_assert_uint_ge(common, 1);
    }
}

static void assert_same_priors(sako_engine *a, sako_engine *b)
{
    static const int64_t cats[] = {0, 1, 2, 11, 12, 21};
    for (size_t c = 0; c < sizeof cats / sizeof cats[0]; c++) {
        double ma, mb;
        ck_assert_ok(sako_category_prior(a, cats[c], &ma));
        ck_assert_ok(sako_category_prior(b, cats[c], &mb));
        ck_assert_msg(sk_same_double(ma, mb), "category %lld: %.17g vs %.17g", (long long)cats[c],
                      ma, mb);
    }
}

static sako_options exact_opts(double half_life)
{
    sako_options o = decay_opts(8, half_life);
    o.personal = 1;
    o.personal_temperature = 0.0;
    o.demand_min_purchases = 10;
    return o;
}

/* Reopen == never closed; retrain == online after an epoch at the same time;
 * retrain of a reopened file == retrain of the never-closed engine. 400 days at a
 * 3-day half-life: 130 half-lives, so both frames rebase on the way. */
START_TEST(test_retrain_reopen_exact)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "decay-reopen.db");
    sk_remove_db(path);
    sako_options o = exact_opts(3.0);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    traffic(e, 400, 1);
    sako_engine *mem = sk_open_opts(NULL, &o);
    sk_catalog(mem);
    traffic(mem, 400, 1);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, mem); /* reopen == never closed */
    /* The online engine took an epoch after its last batch (two days > h/8 passed):
     * a retrain rebuilds exactly that state. */
    ck_assert_uint_eq(sk_stats(mem).events_since_refresh, 0);
    sako_engine *re = sk_open_opts(NULL, &o);
    sk_catalog(re);
    traffic(re, 400, 1);
    ck_assert_ok(sako_retrain(re));
    assert_same_state(re, mem); /* retrain == online */
    ck_assert_ok(sako_retrain(e));
    assert_same_state(e, re);   /* retrain of the reopened file == retrain in memory */
    /* And a reopen after the retrain (its checkpoint holds the rebuilt frame). */
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, re);
    /* The comparison has teeth: without decay the same traffic ends elsewhere. */
    sako_options off = exact_opts(0.0);
    sako_engine *plain = sk_open_opts(NULL, &off);
    sk_catalog(plain);
    traffic(plain, 400, 1);
    int differs = 0;
    for (size_t i = 0; i < N_ALL; i++) {
        sako_item_info x = sk_info(plain, all_items[i]), y = sk_info(mem, all_items[i]);
        differs += !sk_same_double(x.alpha, y.alpha);
    }
    ck_assert_int_gt(differs, (int)N_ALL / 2);
    sako_close(plain);
    sako_close(re);
    sako_close(mem);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* What the tests below send while a retrain or a background refresh builds. */
typedef struct decay_during {
    int from, to;           /* traffic days sent from the hook */
    int calls;
    int64_t offset_before;  /* the items' decay offset before they were sent... */
    int64_t offset_after;   /* ...and after: a rebase happened meanwhile */
} decay_during;

static void decay_hook(sako_engine *e, void *arg)
{
    decay_during *d = arg;
    if (d->calls++)
        return;
    d->offset_before = e->decay.offset;
    traffic_part(e, 400, 1, d->from, d->to);
    d->offset_after = e->decay.offset;
}

static void decay_refresh_wait(sako_engine *e)
{
    while (__atomic_load_n(&e->refresh_running, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&e->refresh_done, __ATOMIC_ACQUIRE))
        usleep(1000);
}

/* Non-blocking retrain and background refresh with decay (a 3-day half-life: a
 * time-rule epoch after every batch, a rebase of both frames every 192 days).
 * Batches acknowledged while the retrain builds cross a rebase and would each have
 * taken an epoch: the result equals a retrain after the batches it started from
 * followed by the others, and a reopen. A background refresh whose evidence a
 * rebase rescales while it is copied is dropped and started again by the next
 * update: the result equals inline refreshes, and a reopen. */
START_TEST(test_during_retrain_and_refresh)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "decay-during.db");
    sk_remove_db(path);
    sako_options o = exact_opts(3.0);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    traffic_part(e, 400, 1, 0, 100);
    decay_during d = {100, 300, 0, 0, 0};
    e->retrain_hook = decay_hook;
    e->retrain_hook_arg = &d;
    ck_assert_ok(sako_retrain(e));
    e->retrain_hook = NULL;
    ck_assert_int_eq(d.calls, 1);
    ck_assert_int_gt(d.offset_after, d.offset_before); /* a rebase during the retrain */
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0); /* the deferred epoch ran */

    sako_engine *ref = sk_open_opts(NULL, &o);
    sk_catalog(ref);
    traffic_part(ref, 400, 1, 0, 100);
    ck_assert_ok(sako_retrain(ref));
    traffic_part(ref, 400, 1, 100, 300);
    assert_same_state(e, ref);
    ck_assert_int_eq(sk_stats(e).model_version, sk_stats(ref).model_version);
    ck_assert(memcmp(&e->decay, &ref->decay, sizeof e->decay) == 0);
    ck_assert_int_eq(e->decay_epoch_at, ref->decay_epoch_at);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, ref); /* reopen agrees */

    /* Background refreshes (forced on this small catalog), one of them crossing a
     * rebase while it builds. */
    e->refresh_sync_items = 0;
    decay_during r = {388, 394, 0, 0, 0}; /* the rebase: day 390 */
    for (int day = 300; day < 400; day += 2) {
        if (day == 386) {
            e->refresh_hook = decay_hook;
            e->refresh_hook_arg = &r;
        }
        if (day < 388 || day >= 394) {
            traffic_part(e, 400, 1, day, day + 2);
            decay_refresh_wait(e);
        }
        if (day == 386) {
            ck_assert_int_eq(r.calls, 1);
            e->refresh_hook = NULL;
            /* Dropped: the priors are still the epoch of day 384's batch. */
            sako_engine *at = sk_open_opts(NULL, &o);
            sk_catalog(at);
            traffic_part(at, 400, 1, 0, 386);
            assert_same_priors(e, at);
            ck_assert_int_eq(e->decay_epoch_at, at->decay_epoch_at);
            sako_close(at);
        }
    }
    ck_assert_int_gt(r.offset_after, r.offset_before); /* the refresh was dropped */
    traffic_part(ref, 400, 1, 300, 400);
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0);
    ck_assert_uint_eq(sk_stats(ref).events_since_refresh, 0);
    assert_same_state(e, ref);
    ck_assert_int_eq(e->decay_epoch_at, ref->decay_epoch_at);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, ref);
    sako_close(ref);
    sako_close(e);
    sk_remove_db(path);

    /* A retrain of an empty log while the first batch arrives: as online, that
     * batch's first event becomes the decay reference until the next epoch. */
    e = sk_open_opts(path, &o);
    sk_catalog(e);
    decay_during f = {0, 2, 0, 0, 0};
    e->retrain_hook = decay_hook;
    e->retrain_hook_arg = &f;
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(f.calls, 1);
    e->retrain_hook = NULL;
    ref = sk_open_opts(NULL, &o);
    sk_catalog(ref);
    ck_assert_ok(sako_retrain(ref));
    traffic_part(ref, 400, 1, 0, 2);
    ck_assert_uint_gt(sk_stats(ref).events_since_refresh, 0); /* no epoch since */
    ck_assert_int_eq(e->decay_epoch_at, ref->decay_epoch_at);
    /* (one batch: too little history for the personal answers compared above) */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < N_ALL; i++) {
            sako_item_info x = sk_info(e, all_items[i]), y = sk_info(ref, all_items[i]);
            ck_assert_msg(sk_same_info(&x, &y), "item %lld: %.17g/%.17g vs %.17g/%.17g",
                          (long long)all_items[i], x.alpha, x.beta, y.alpha, y.beta);
        }
        assert_same_priors(e, ref);
        sako_close(e);
        e = sk_open_opts(path, &o); /* and a reopen */
    }
    sako_close(ref);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Decay 0 is 0.2's arithmetic: counts are the raw integers, whatever the time
 * span, and the flat posterior is exactly 1 + A, 1 + B. */
START_TEST(test_no_decay_is_exact_counts)
{
    sako_options o = decay_opts(5, 0.0);
    o.prior = SAKO_PRIOR_FLAT;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[8];
    for (int y = 0; y < 40; y++) {
        size_t n = 0;
        sk_push(ev, &n, 1, 101, SAKO_EVENT_IMPRESSION, 3, T0 + y * 365 * DAY);
        sk_push(ev, &n, 1, 101, SAKO_EVENT_CLICK, 1, T0 + y * 365 * DAY);
        send(e, ev, n);
    }
    sako_item_info a = sk_info(e, 101);
    ck_assert(a.impressions == 120.0 && a.clicks == 40.0);
    ck_assert(sk_same_double(a.alpha, 1.0 + 0.7 * 40.0));
    ck_assert(sk_same_double(a.beta, 1.0 + 1.0 * 80.0));
    sako_close(e);
}
END_TEST

/* Bad half-lives are refused with SAKO_INVALID and a message naming the field. */
START_TEST(test_bad_options)
{
    static const double bad[] = {NAN, INFINITY, -1.0, 0.5, 0.999, 2e6, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sako_options o = decay_opts(1, bad[i]);
        sako_engine *e = NULL;
        ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), "decay_half_life_days") != NULL, "message: %s",
                      sako_errmsg());
    }
    static const double good[] = {0.0, 1.0, 30.0, 1e6};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        sako_options o = decay_opts(1, good[i]);
        sako_engine *e = sk_open_opts(NULL, &o);
        ck_assert_double_eq(half_life_of(e), good[i]);
        sako_close(e);
    }
    /* A version this library does not know. */
    sako_options o = decay_opts(1, 0.0);
    o.version = SAKO_OPTIONS_VERSION + 1;
    sako_engine *e = NULL;
    ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
}
END_TEST

/* Version-1 and version-2 structs: only their fields are read (decay off); a
 * version-2 caller of sako_options_get gets nothing written past its end. */
START_TEST(test_old_option_structs)
{
    for (unsigned v = 1; v <= 2; v++) {
        sako_options o = decay_opts(1, NAN); /* past the old end: must be ignored */
        o.version = v;
        sako_engine *e = NULL;
        ck_assert_ok(sako_init(&e, NULL, &o));
        sako_options g;
        g.version = SAKO_OPTIONS_VERSION;
        ck_assert_ok(sako_options_get(e, &g));
        ck_assert_double_eq(g.decay_half_life_days, 0.0);
        ck_assert_double_eq(g.half_life_days, 45.0);
        memset(&g, 0xA5, sizeof g);
        g.version = 2;
        ck_assert_ok(sako_options_get(e, &g));
        ck_assert_uint_eq(g.version, 2);
        ck_assert_int_eq(g.basket_gap_ms, 1800000);
        const unsigned char *tail = (const unsigned char *)&g + offsetof(sako_options, decay_half_life_days);
        for (size_t i = 0; i < sizeof g - offsetof(sako_options, decay_half_life_days); i++)
            ck_assert_uint_eq(tail[i], 0xA5);
        sako_close(e);
    }
}
END_TEST

/* A schema-2 (0.2) file migrates to 3 with decay off and its state unchanged;
 * reconfiguring a half-life then rebuilds from the log, equal to an engine that had
 * decay from the start and retrained. The 0.2 file is made from a new one by
 * undoing the 2 -> 3 step (its four sako_meta rows and the stamp). */
START_TEST(test_schema2_migrates)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "decay-schema2.db");
    sk_remove_db(path);
    sako_options o = exact_opts(0.0);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    traffic(e, 60, 2);
    sako_item_info before[N_ALL];
    for (size_t i = 0; i < N_ALL; i++)
        before[i] = sk_info(e, all_items[i]);
    sako_close(e);
    ck_assert_int_eq(sk_sql_int(path, "PRAGMA user_version"), 4);
    sk_sql_exec(path, SK_SCHEMA3_TO_2);
    e = sk_open_opts(path, &o);
    ck_assert_int_eq(sk_sql_int(path, "PRAGMA user_version"), 4);
    ck_assert_double_eq(half_life_of(e), 0.0);
    for (size_t i = 0; i < N_ALL; i++) {
        sako_item_info x = sk_info(e, all_items[i]);
        ck_assert(sk_same_info(&x, &before[i]));
    }
    sako_close(e);
    /* Reconfigure: decay on rebuilds from the log. */
    sako_options on = exact_opts(7.0);
    on.reconfigure = 1;
    e = sk_open_opts(path, &on);
    ck_assert_double_eq(half_life_of(e), 7.0);
    on.reconfigure = 0;
    sako_engine *fresh = sk_open_opts(NULL, &on);
    sk_catalog(fresh);
    traffic(fresh, 60, 2);
    ck_assert_ok(sako_retrain(fresh));
    assert_same_state(e, fresh);
    sako_close(e);
    /* The half-life is stored: a plain reopen keeps it. */
    sako_options plain = exact_opts(0.0);
    e = sk_open_opts(path, &plain);
    ck_assert_double_eq(half_life_of(e), 7.0);
    assert_same_state(e, fresh);
    sako_close(e);
    sako_close(fresh);
    sk_remove_db(path);
}
END_TEST

/* Readers (personal and population queries, item reads) run while a writer's
 * batches jump 20 days each at a 1-day half-life: an epoch after every batch and a
 * rebase of both frames every few. For TSan (make tsan runs this case); the end
 * state still equals a retrain. */
typedef struct race_state {
    sako_engine *e;
    int done;      /* atomic */
    int failures;  /* atomic */
} race_state;

static void *race_reader(void *arg)
{
    race_state *s = arg;
    uint64_t x = (uint64_t)(uintptr_t)arg;
    int bad = 0;
    while (!__atomic_load_n(&s->done, __ATOMIC_ACQUIRE)) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        sako_query q = SAKO_QUERY_INIT;
        int64_t recent[] = {101};
        q.user_id = (int64_t)((x >> 33) % 10); /* 0: anonymous */
        q.k = 5;
        q.recent = recent;
        q.n_recent = 1;
        q.time = T0;
        sako_rec r[5];
        size_t n = 0;
        sako_item_info info;
        if (sako_recommend(s->e, &q, r, 5, &n) != SAKO_OK ||
            sako_item_get(s->e, all_items[(x >> 20) % N_ALL], &info) != SAKO_OK) {
            bad++;
            continue;
        }
        for (size_t i = 0; i < n; i++)
            if (!(r[i].score >= 0.0 && r[i].score <= 1.0))
                bad++;
        if (!(info.alpha > 0.0 && info.beta > 0.0 && isfinite(info.alpha) && isfinite(info.beta)))
            bad++;
    }
    __atomic_fetch_add(&s->failures, bad, __ATOMIC_RELAXED);
    return NULL;
}

START_TEST(test_threads)
{
    sako_options o = exact_opts(1.0);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    race_state s = { e, 0, 0 };
    pthread_t rd[2];
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&rd[i], NULL, race_reader, &s), 0);
    sako_event ev[16];
    int64_t orders[16];
    for (int b = 0; b < 60; b++) {
        for (int j = 0; j < 16; j++) {
            int64_t t = T0 + (int64_t)b * 20 * DAY + j;
            sako_event evj = {1 + (b + j) % 9, all_items[(b * 5 + j) % N_ALL],
                              j % 4, t, j % 3 == 0 ? 0 : 9};
            ev[j] = evj;
            orders[j] = b * 100 + (j % 9);
        }
        ck_assert_ok(sako_update_orders(e, ev, orders, 16));
    }
    __atomic_store_n(&s.done, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++)
        pthread_join(rd[i], NULL);
    ck_assert_int_eq(s.failures, 0);
    ck_assert_uint_eq(sk_stats(e).events_since_refresh, 0);
    /* The same log rebuilt equals what the readers were racing against. */
    sako_engine *re = sk_open_opts(NULL, &o);
    sk_catalog(re);
    for (int b = 0; b < 60; b++) {
        for (int j = 0; j < 16; j++) {
            int64_t t = T0 + (int64_t)b * 20 * DAY + j;
            sako_event evj = {1 + (b + j) % 9, all_items[(b * 5 + j) % N_ALL],
                              j % 4, t, j % 3 == 0 ? 0 : 9};
            ev[j] = evj;
            orders[j] = b * 100 + (j % 9);
        }
        ck_assert_ok(sako_update_orders(re, ev, orders, 16));
    }
    ck_assert_ok(sako_retrain(re));
    for (size_t i = 0; i < N_ALL; i++) {
        sako_item_info x = sk_info(e, all_items[i]), y = sk_info(re, all_items[i]);
        ck_assert(sk_same_info(&x, &y));
    }
    sako_close(re);
    sako_close(e);
}
END_TEST

Suite *suite_decay(void)
{
    Suite *s = suite_create("decay");
    TCase *tc = tcase_create("decay");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_half_life_halves_evidence);
    tcase_add_test(tc, test_rebase_exact);
    tcase_add_test(tc, test_engine_many_half_lives);
    tcase_add_test(tc, test_personal_sums_decay);
    tcase_add_test(tc, test_retrain_reopen_exact);
    tcase_add_test(tc, test_no_decay_is_exact_counts);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_old_option_structs);
    tcase_add_test(tc, test_schema2_migrates);
    suite_add_tcase(s, tc);
    /* Its own case, so that make tsan can run it alone (with the retrain and the
     * background refresh racing updates). */
    TCase *th = tcase_create("threads");
    tcase_set_timeout(th, 300);
    tcase_add_test(th, test_threads);
    tcase_add_test(th, test_during_retrain_and_refresh);
    suite_add_tcase(s, th);
    return s;
}
