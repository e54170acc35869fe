/* The personal engine: baskets, decayed histories, modes, sources, demand priors,
 * and the same guarantees as the population engine (reopen, retrain, whole batches). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "check_sako.h"
#include "engine_internal.h"

#define DAY 86400000LL
#define T0 (1500000000000LL) /* a fixed instant: decay is measured between event times */

static sako_options personal_opts(uint64_t seed)
{
    sako_options o = sk_opts(seed);
    o.personal = 1;
    o.personal_temperature = 0.0; /* the posterior mean: deterministic ranks */
    return o;
}

static sako_event buy(int64_t user, int64_t item, int64_t time)
{
    sako_event ev = {user, item, SAKO_EVENT_PURCHASE, time, 0};
    return ev;
}

static void buy_orders(sako_engine *e, const sako_event *ev, const int64_t *orders, size_t n)
{
    ck_assert_ok(sako_update_orders(e, ev, orders, n));
}

static sako_user_info user_info(sako_engine *e, int64_t user)
{
    sako_user_info u;
    ck_assert_ok(sako_user_get(e, user, &u));
    return u;
}

static size_t recommend_mode(sako_engine *e, int64_t user, int mode, int k, int64_t time,
                             sako_rec *out)
{
    sako_query q = SAKO_QUERY_INIT;
    q.user_id = user;
    q.k = k;
    q.mode = mode;
    q.time = time;
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, out, (size_t)k, &n));
    return n;
}

/* Order ids group purchases into baskets; decay is 2^(-dt / half-life), exactly. */
START_TEST(test_baskets_by_order_and_decay)
{
    sako_options o = personal_opts(1);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    double hl = o.half_life_days * DAY;
    sako_event ev[] = { buy(7, 101, T0), buy(7, 102, T0), buy(7, 101, T0 + (int64_t)hl),
                        buy(7, 101, T0 + 2 * (int64_t)hl) };
    int64_t orders[] = { 1, 1, 2, 3 };
    buy_orders(e, ev, orders, 4);
    sako_user_info u = user_info(e, 7);
    ck_assert_uint_eq(u.n_baskets, 3);
    ck_assert_uint_eq(u.n_products, 2);
    ck_assert_int_eq(u.personal, 1);
    ck_assert_double_eq_tol(u.weight, 1.75, 1e-12); /* ((1/2 + 1)/2 + 1) */
    ck_assert_int_eq(u.last_basket_at, T0 + 2 * (int64_t)hl);
    sako_user_item x;
    ck_assert_ok(sako_user_item_get(e, 7, 101, &x));
    ck_assert_uint_eq(x.n_baskets, 3);
    ck_assert_double_eq_tol(x.weight, 1.75, 1e-6); /* stored as a float */
    ck_assert_double_eq_tol(x.mean_gap_days, o.half_life_days, 1e-3);
    ck_assert_rc(sako_user_item_get(e, 7, 103, &x), SAKO_NOTFOUND);
    ck_assert_rc(sako_user_item_get(e, 8, 101, &x), SAKO_NOTFOUND);
    ck_assert_rc(sako_user_get(e, 8, &u), SAKO_NOTFOUND);
    ck_assert_rc(sako_user_get(e, 0, &u), SAKO_INVALID);
    ck_assert_rc(sako_user_get(NULL, 7, &u), SAKO_MISUSE);
    sako_close(e);
}
END_TEST

/* Without order ids, purchases less than basket_gap_ms apart form one basket; a
 * product bought twice in one basket counts once. */
START_TEST(test_baskets_by_time_gap)
{
    sako_options o = personal_opts(2);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event a[] = { buy(9, 101, T0), buy(9, 101, T0 + 60000), buy(9, 102, T0 + 10 * 60000) };
    ck_assert_ok(sako_update(e, a, 3));
    ck_assert_uint_eq(user_info(e, 9).n_baskets, 1);
    sako_event b[] = { buy(9, 101, T0 + o.basket_gap_ms + 10 * 60000 + 1) };
    ck_assert_ok(sako_update(e, b, 1));
    ck_assert_uint_eq(user_info(e, 9).n_baskets, 2);
    sako_user_item x;
    ck_assert_ok(sako_user_item_get(e, 9, 101, &x));
    ck_assert_uint_eq(x.n_baskets, 2);
    sako_close(e);
}
END_TEST

/* A bad order id rejects the whole batch, names the entry, and changes nothing. */
START_TEST(test_bad_order_id_rejects_batch)
{
    sako_options o = personal_opts(3);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[] = { buy(5, 101, T0), buy(5, 102, T0), buy(6, 103, T0) };
    int64_t bad[] = { 1, 1, -4 };
    ck_assert_rc(sako_update_orders(e, ev, bad, 3), SAKO_INVALID);
    ck_assert_errmsg_index(2);
    int64_t too_big[] = { 1, SAKO_ID_MAX + 1, 1 };
    ck_assert_rc(sako_update_orders(e, ev, too_big, 3), SAKO_INVALID);
    ck_assert_errmsg_index(1);
    sako_user_info u;
    ck_assert_rc(sako_user_get(e, 5, &u), SAKO_NOTFOUND);
    ck_assert_uint_eq(sk_stats(e).n_events, 0);
    ck_assert_rc(sako_update_orders(NULL, ev, bad, 3), SAKO_MISUSE);
    sako_close(e);
}
END_TEST

/* repeat: only what the user bought; discover: none of it; sources say why. */
START_TEST(test_modes_and_sources)
{
    sako_options o = personal_opts(4);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    /* User 1 buys 101 and 111 in ten weekly baskets; others buy a spread of items. */
    sako_event ev[64];
    int64_t orders[64];
    size_t n = 0;
    for (int w = 0; w < 10; w++) {
        ev[n] = buy(1, 101, T0 + w * 7 * DAY);
        orders[n++] = 100 + w;
        ev[n] = buy(1, 111, T0 + w * 7 * DAY);
        orders[n++] = 100 + w;
        ev[n] = buy(2 + w, 201 + w % 4, T0 + w * 7 * DAY);
        orders[n++] = 200 + w;
    }
    buy_orders(e, ev, orders, n);
    sako_rec r[20];
    int64_t now = T0 + 70 * DAY;
    size_t got = recommend_mode(e, 1, SAKO_MODE_REPEAT, 20, now, r);
    ck_assert_uint_eq(got, 2);
    for (size_t j = 0; j < got; j++) {
        ck_assert(r[j].item_id == 101 || r[j].item_id == 111);
        ck_assert_int_eq(r[j].source, SAKO_SOURCE_REPEAT);
    }
    got = recommend_mode(e, 1, SAKO_MODE_DISCOVER, 5, now, r);
    ck_assert_uint_eq(got, 5);
    for (size_t j = 0; j < got; j++) {
        ck_assert(r[j].item_id != 101 && r[j].item_id != 111);
        ck_assert(r[j].source != SAKO_SOURCE_REPEAT);
    }
    /* mixed: a weekly staple bought in every basket comes first. */
    got = recommend_mode(e, 1, SAKO_MODE_MIXED, 5, now, r);
    ck_assert_uint_eq(got, 5);
    ck_assert(r[0].item_id == 101 || r[0].item_id == 111);
    ck_assert(r[1].item_id == 101 || r[1].item_id == 111);
    ck_assert(r[0].score >= r[1].score && r[1].score >= r[2].score);
    /* A user without history: the population engine; repeat is an empty shelf. */
    got = recommend_mode(e, 999, SAKO_MODE_MIXED, 5, now, r);
    ck_assert_uint_eq(got, 5);
    for (size_t j = 0; j < got; j++)
        ck_assert_int_eq(r[j].source, SAKO_SOURCE_THOMPSON);
    ck_assert_uint_eq(recommend_mode(e, 999, SAKO_MODE_REPEAT, 5, now, r), 0);
    /* Bad modes and times are refused. */
    sako_query q = SAKO_QUERY_INIT;
    q.user_id = 1;
    q.mode = 3;
    size_t nn;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &nn), SAKO_INVALID);
    q.mode = SAKO_MODE_MIXED;
    q.time = -1;
    ck_assert_rc(sako_recommend(e, &q, r, 20, &nn), SAKO_INVALID);
    sako_close(e);
}
END_TEST

/* Bought together: many baskets of other users hold 101 with 203; a user whose
 * latest basket holds 101 is offered 203 for that reason. */
START_TEST(test_copurchase)
{
    sako_options o = personal_opts(5);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[200];
    int64_t orders[200];
    size_t n = 0;
    for (int u = 0; u < 40; u++) {
        ev[n] = buy(100 + u, 101, T0 + u * DAY);
        orders[n++] = 1000 + u;
        ev[n] = buy(100 + u, 203, T0 + u * DAY);
        orders[n++] = 1000 + u;
        /* Single-product baskets keep 203's and 102's rates comparable. */
        ev[n] = buy(100 + u, u % 2 ? 102 : 112, T0 + u * DAY + 5 * DAY);
        orders[n++] = 5000 + u;
    }
    ev[n] = buy(1, 101, T0 + 50 * DAY);
    orders[n++] = 1;
    buy_orders(e, ev, orders, n);
    sako_rec r[3];
    size_t got = recommend_mode(e, 1, SAKO_MODE_DISCOVER, 3, T0 + 51 * DAY, r);
    ck_assert_uint_ge(got, 1);
    ck_assert_int_eq(r[0].item_id, 203);
    ck_assert_int_eq(r[0].source, SAKO_SOURCE_COPURCHASE);
    sako_close(e);
}
END_TEST

/* Organic purchases are demand, not successes: they leave the posterior's evidence
 * alone, and with enough of them demand priors rank a best-seller above an item
 * nobody buys. With organic_demand off (the 0.1 rule) they count as successes. */
START_TEST(test_organic_demand)
{
    sako_options o = personal_opts(6);
    o.demand_min_purchases = 50;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_item_info before = sk_info(e, 101);
    sako_event ev[120];
    for (int i = 0; i < 120; i++)
        ev[i] = buy(10 + i, i < 100 ? 101 : 102, T0 + i * 3600000LL);
    ck_assert_ok(sako_update(e, ev, 120));
    sako_item_info after = sk_info(e, 101);
    ck_assert_double_eq(after.purchases, 100.0);
    ck_assert_double_eq(after.alpha - after.prior_mean * o.prior_strength, 0.0);
    ck_assert_ok(sako_retrain(e)); /* a prior epoch: demand priors take over */
    sako_item_info sold = sk_info(e, 101), never = sk_info(e, 103);
    ck_assert(sold.prior_mean > 10.0 * never.prior_mean);
    ck_assert(sold.prior_mean != before.prior_mean);
    sako_close(e);

    o.organic_demand = 0;
    e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    ck_assert_ok(sako_update(e, ev, 120));
    after = sk_info(e, 101);
    ck_assert_double_eq_tol(after.alpha, after.prior_mean * o.prior_strength + 100.0 * o.reward_purchase, 1e-9);
    sako_close(e);
}
END_TEST

/* A query built against 0.1 (version 1, no mode or time) is still served. */
START_TEST(test_query_version_1)
{
    sako_options o = personal_opts(7);
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    sako_event ev[] = { buy(1, 101, T0) };
    ck_assert_ok(sako_update(e, ev, 1));
    struct { unsigned version; int64_t user_id; int k; int64_t category_id; const int64_t *exclude;
             size_t n_exclude; const int64_t *recent; size_t n_recent; } v1 =
        { 1, 1, 3, 0, NULL, 0, NULL, 0 };
    sako_rec r[3];
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, (const sako_query *)(const void *)&v1, r, 3, &n));
    ck_assert_uint_eq(n, 3);
    sako_query q = SAKO_QUERY_INIT;
    q.version = 3;
    ck_assert_rc(sako_recommend(e, &q, r, 3, &n), SAKO_INVALID);
    /* k = 0 still checks the category (the header promises SAKO_NOTFOUND). */
    q = (sako_query)SAKO_QUERY_INIT;
    q.k = 0;
    q.category_id = 4242;
    ck_assert_rc(sako_recommend(e, &q, r, 3, &n), SAKO_NOTFOUND);
    sako_close(e);
}
END_TEST

/* Deterministic mixed traffic: orders, organic purchases, answered recommendations,
 * two users sharing orders' products, a user with a long history. */
static void traffic_part(sako_engine *e, int seed, int from, int to)
{
    sako_event ev[400];
    int64_t orders[400];
    uint64_t x = (uint64_t)seed * 2654435761u + 1;
    static const int64_t items[] = {101, 102, 103, 104, 105, 111, 112, 113, 150, 201, 202, 203, 204, 301};
    for (int batch = 0; batch < 20; batch++) {
        size_t n = 0;
        for (int j = 0; j < 20; j++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            int64_t user = 1 + (int64_t)((x >> 33) % 7);
            int64_t item = items[(x >> 17) % 14];
            int type = (int)((x >> 7) % 4);
            int64_t t = T0 + batch * 2 * DAY + j * 60000;
            sako_event evj = {user, item, type, t, type != SAKO_EVENT_IMPRESSION && (x >> 40) % 3 == 0 ? 9 : 0};
            ev[n] = evj;
            orders[n++] = (x >> 50) % 2 ? (int64_t)(batch * 10 + user) : 0;
        }
        if (batch >= from && batch < to)
            ck_assert_ok(sako_update_orders(e, ev, orders, n));
    }
}

static void traffic(sako_engine *e, int seed)
{
    traffic_part(e, seed, 0, 20);
}

static void assert_same_state(sako_engine *a, sako_engine *b)
{
    static const int64_t items[] = {101, 102, 103, 104, 105, 111, 112, 113, 150, 201, 202, 203, 204, 301};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        sako_item_info x = sk_info(a, items[i]), y = sk_info(b, items[i]);
        ck_assert_msg(x.alpha == y.alpha && x.beta == y.beta && x.prior_mean == y.prior_mean,
                      "item %lld: %.17g/%.17g prior %.17g vs %.17g/%.17g prior %.17g",
                      (long long)items[i], x.alpha, x.beta, x.prior_mean, y.alpha, y.beta, y.prior_mean);
    }
    for (int64_t u = 1; u <= 7; u++) {
        sako_user_info x, y;
        int rx = sako_user_get(a, u, &x), ry = sako_user_get(b, u, &y);
        ck_assert_int_eq(rx, ry);
        if (rx != SAKO_OK)
            continue;
        ck_assert_uint_eq(x.n_baskets, y.n_baskets);
        ck_assert_uint_eq(x.n_products, y.n_products);
        ck_assert(x.weight == y.weight);
        for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
            sako_user_item p, q;
            int r1 = sako_user_item_get(a, u, items[i], &p), r2 = sako_user_item_get(b, u, items[i], &q);
            ck_assert_int_eq(r1, r2);
            if (r1 == SAKO_OK)
                ck_assert(p.weight == q.weight && p.n_baskets == q.n_baskets &&
                          p.last_bought_at == q.last_bought_at && p.mean_gap_days == q.mean_gap_days);
        }
    }
}

/* Reopen restores the same personal state and posteriors; retrain reproduces the
 * online state after a prior refresh bit for bit. */
START_TEST(test_reopen_and_retrain_exact)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "personal-reopen.db");
    sk_remove_db(path);
    sako_options o = personal_opts(8);
    o.demand_min_purchases = 10;
    o.prior_refresh_events = 50;
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    traffic(e, 1);
    sako_engine *mem = sk_open_opts(NULL, &o);
    sk_catalog(mem);
    traffic(mem, 1);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, mem);   /* reopen == never closed */
    /* Retrain of the reopened file == retrain of the never-closed engine. */
    sako_close(mem);
    ck_assert_ok(sako_retrain(e));
    sako_engine *online = sk_open_opts(NULL, &o);
    sk_catalog(online);
    traffic(online, 1);
    ck_assert_ok(sako_retrain(online));
    assert_same_state(e, online);
    sako_close(online);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* What a test runs while a retrain builds off the writer mutex (retrain_hook). */
typedef struct during {
    int move;      /* also move an item to another category (the catalog changes) */
    int busy_rc;   /* what a second sako_retrain() returned meanwhile */
} during;

static const sako_item new_item = {160, 12, 1, 1000};

static void late_traffic(sako_engine *e, int move)
{
    traffic_part(e, 1, 12, 20);
    ck_assert_ok(sako_items_upsert(e, &new_item, 1)); /* appended after the snapshot */
    sako_event ev[3] = {{3, 160, SAKO_EVENT_IMPRESSION, T0 + 41 * DAY, 0},
                        {3, 160, SAKO_EVENT_PURCHASE, T0 + 41 * DAY, 0},
                        {4, 101, SAKO_EVENT_CLICK, T0 + 41 * DAY, 9}};
    ck_assert_ok(sako_update(e, ev, 3));
    if (move) {
        sako_item moved = {104, 21, 1, 1000};
        ck_assert_ok(sako_items_upsert(e, &moved, 1));
    }
}

static void during_retrain(sako_engine *e, void *arg)
{
    during *d = arg;
    d->busy_rc = sako_retrain(e);
    late_traffic(e, d->move);
}

/* Updates and upserts acknowledged while a retrain runs reach its result: it equals
 * a retrain run after the batches it started from, followed by the others (and, when
 * an item moved meanwhile, a retrain after everything); reopen agrees bit for bit. */
static void check_retrain_during_updates(int move)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "personal-during.db");
    sako_options o = personal_opts(8);
    o.demand_min_purchases = 10;
    o.prior_refresh_events = 0; /* no refresh: the epochs compared are the retrains' */
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    traffic_part(e, 1, 0, 12);
    during d = {move, 0};
    e->retrain_hook = during_retrain;
    e->retrain_hook_arg = &d;
    ck_assert_ok(sako_retrain(e));
    e->retrain_hook = NULL;
    ck_assert_int_eq(d.busy_rc, SAKO_BUSY);

    sako_engine *ref = sk_open_opts(NULL, &o);
    sk_catalog(ref);
    traffic_part(ref, 1, 0, 12);
    if (!move)
        ck_assert_ok(sako_retrain(ref));
    late_traffic(ref, move);
    if (move)
        ck_assert_ok(sako_retrain(ref));
    assert_same_state(e, ref);
    sako_item_info x = sk_info(e, 160), y = sk_info(ref, 160);
    ck_assert(x.alpha == y.alpha && x.beta == y.beta && x.purchases == 1.0);
    sako_stats se, sr;
    ck_assert_ok(sako_stats_get(e, &se));
    ck_assert_ok(sako_stats_get(ref, &sr));
    ck_assert_uint_eq(se.n_events, sr.n_events);
    ck_assert_int_eq(se.model_version, sr.model_version);
    ck_assert_uint_eq(se.events_since_refresh, sr.events_since_refresh);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, ref);   /* the retrain's epoch and checkpoint are on disk */
    x = sk_info(e, 160);
    ck_assert(x.alpha == y.alpha && x.beta == y.beta);
    sako_close(ref);
    sako_close(e);
    sk_remove_db(path);
}

START_TEST(test_retrain_during_updates)
{
    check_retrain_during_updates(0);
}
END_TEST

START_TEST(test_retrain_during_catalog_change)
{
    check_retrain_during_updates(1);
}
END_TEST

static void refresh_wait(sako_engine *e)
{
    while (__atomic_load_n(&e->refresh_running, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&e->refresh_done, __ATOMIC_ACQUIRE))
        usleep(1000);
}

static void during_refresh_first(sako_engine *e, void *arg)
{
    int *sent = arg;
    if (*sent)
        return;
    *sent = 1;
    traffic_part(e, 1, 3, 4); /* before the evidence copy: batch 3 only */
}

static void during_refresh(sako_engine *e, void *arg)
{
    int *sent = arg;
    if (*sent)
        return;
    *sent = 1;
    traffic_part(e, 1, 3, 5); /* changes items the refresh must see as they were */
}

/* A file engine on the catalog whose prior refreshes run on the background thread
 * even for this small catalog (every 50 events, with demand from 10 purchases). */
static sako_engine *background_refresh_engine(const char *path, sako_options *o)
{
    *o = personal_opts(8);
    o->demand_min_purchases = 10;
    o->prior_refresh_events = 50;
    sako_engine *e = sk_open_opts(path, o);
    sk_catalog(e);
    e->refresh_sync_items = 0;
    return e;
}

/* A prior refresh on a background thread (forced here on a small catalog) uses the
 * evidence of the batch that made it due, even when updates change it before the
 * thread has copied it, and gives the items those updates touched their posterior
 * under the new priors: the result equals inline refreshes, and reopen agrees. */
START_TEST(test_background_refresh_exact)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "personal-refresh.db");
    sako_options o;
    sako_engine *e = background_refresh_engine(path, &o);
    int sent = 0;
    e->refresh_hook = during_refresh;
    e->refresh_hook_arg = &sent;
    traffic_part(e, 1, 0, 3); /* 60 events: the refresh starts after batch 2 */
    refresh_wait(e);
    ck_assert_int_eq(sent, 1);
    sako_engine *ref = sk_open_opts(NULL, &o);
    sk_catalog(ref);
    traffic_part(ref, 1, 0, 5); /* inline: the refresh after batch 2, then 3 and 4 */
    assert_same_state(e, ref);
    sako_close(ref);
    for (int b = 5; b < 20; b++) {
        traffic_part(e, 1, b, b + 1);
        refresh_wait(e);
    }
    ref = sk_open_opts(NULL, &o);
    sk_catalog(ref);
    traffic(ref, 1);
    assert_same_state(e, ref);
    sako_stats se, sr;
    ck_assert_ok(sako_stats_get(e, &se));
    ck_assert_ok(sako_stats_get(ref, &sr));
    ck_assert_uint_eq(se.events_since_refresh, sr.events_since_refresh);
    ck_assert(se.global_mean == sr.global_mean);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, ref);
    sako_close(ref);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

static void after_round(sako_engine *e, void *arg)
{
    int *sent = arg;
    if (*sent != 1)
        return;
    *sent = 2;
    traffic_part(e, 1, 4, 5); /* touches again items the first round has redone */
}

/* The refresh's catch-up rounds (off the writer mutex) redo the items touched since P;
 * a batch after a round touches some of them again, and the last step redoes those:
 * the result still equals inline refreshes, and reopen agrees. */
START_TEST(test_background_refresh_catch_up)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "personal-refresh-rounds.db");
    sako_options o;
    sako_engine *e = background_refresh_engine(path, &o);
    int sent = 0;
    e->refresh_hook = during_refresh_first;
    e->refresh_round_hook = after_round;
    e->refresh_hook_arg = &sent;
    traffic_part(e, 1, 0, 3); /* the refresh starts after batch 2 */
    refresh_wait(e);
    ck_assert_int_eq(sent, 2);
    e->refresh_hook = NULL;
    e->refresh_round_hook = NULL;
    sako_engine *ref = sk_open_opts(NULL, &o);
    sk_catalog(ref);
    traffic_part(ref, 1, 0, 5);
    assert_same_state(e, ref);
    sako_close(e);
    e = sk_open_opts(path, &o);
    assert_same_state(e, ref);
    sako_close(ref);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Options: bad personal values are refused with a message; version 1 gets defaults. */
START_TEST(test_personal_options)
{
    sako_engine *e = NULL;
    sako_options o = SAKO_OPTIONS_INIT;
    o.half_life_days = 0.0;
    ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
    o = (sako_options)SAKO_OPTIONS_INIT;
    o.personal_temperature = NAN;
    ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
    o = (sako_options)SAKO_OPTIONS_INIT;
    o.basket_gap_ms = -1;
    ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
    o = (sako_options)SAKO_OPTIONS_INIT;
    o.personal = 2;
    ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
    o = (sako_options)SAKO_OPTIONS_INIT;
    o.personal_min_baskets = 0;
    ck_assert_rc(sako_init(&e, NULL, &o), SAKO_INVALID);
    /* A version-1 struct: only its fields are read. */
    sako_options v1 = SAKO_OPTIONS_INIT;
    v1.version = 1;
    v1.half_life_days = -5.0; /* past the version-1 end: must be ignored */
    ck_assert_ok(sako_init(&e, NULL, &v1));
    sako_options g;
    g.version = SAKO_OPTIONS_VERSION;
    ck_assert_ok(sako_options_get(e, &g));
    ck_assert_double_eq(g.half_life_days, 45.0);
    sako_close(e);
}
END_TEST

Suite *suite_personal(void)
{
    Suite *s = suite_create("personal");
    TCase *tc = tcase_create("personal");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_baskets_by_order_and_decay);
    tcase_add_test(tc, test_baskets_by_time_gap);
    tcase_add_test(tc, test_bad_order_id_rejects_batch);
    tcase_add_test(tc, test_modes_and_sources);
    tcase_add_test(tc, test_copurchase);
    tcase_add_test(tc, test_organic_demand);
    tcase_add_test(tc, test_query_version_1);
    tcase_add_test(tc, test_reopen_and_retrain_exact);
    tcase_add_test(tc, test_retrain_during_updates);
    tcase_add_test(tc, test_retrain_during_catalog_change);
    tcase_add_test(tc, test_background_refresh_exact);
    tcase_add_test(tc, test_background_refresh_catch_up);
    tcase_add_test(tc, test_personal_options);
    suite_add_tcase(s, tc);
    return s;
}
