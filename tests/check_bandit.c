/* Bandit behaviour, simulated with fixed seeds: Thompson sampling finds the best
 * item, new items still get exposure, category priors give a new item in a strong
 * category a head start, and flat priors do not. Bounds come from binomial
 * standard errors or from a Monte-Carlo estimate of the exact probability. */
#include "check_sako.h"
#include "sampler_internal.h"

static int bernoulli(sako_rng *r, double p) { return sako__rng_uniform(r) <= p; }

/* One item far better than nine others: shown alone (k = 1), it comes to dominate,
 * and the clicks collected beat a uniform random policy. */
START_TEST(test_best_item_dominates)
{
    sako_engine *e = sk_open_mem(31);
    enum { N_ARMS = 10, ROUNDS = 3000, LAST = 1000 };
    double ctr[N_ARMS];
    sako_item items[N_ARMS];
    for (int i = 0; i < N_ARMS; i++) {
        ctr[i] = i == 6 ? 0.25 : 0.04 + 0.005 * i;
        items[i] = (sako_item){i + 1, 0, 1, 1};
    }
    ck_assert_ok(sako_items_upsert(e, items, N_ARMS));
    sako_rng world;
    sako__rng_seed(&world, 8);
    sako_query q = SAKO_QUERY_INIT;
    q.k = 1;
    int best_late = 0;
    long clicks = 0;
    double mean_ctr = 0;
    for (int i = 0; i < N_ARMS; i++)
        mean_ctr += ctr[i] / N_ARMS;
    for (int round = 0; round < ROUNDS; round++) {
        sako_rec r;
        size_t n;
        ck_assert_ok(sako_recommend(e, &q, &r, 1, &n));
        ck_assert_uint_eq(n, 1);
        int arm = (int)r.item_id - 1;
        sako_event ev[2] = {sk_ev(1 + round % 50, r.item_id, SAKO_EVENT_IMPRESSION, 1000 + round)};
        size_t ne = 1;
        if (bernoulli(&world, ctr[arm])) {
            ev[ne++] = sk_ev(1 + round % 50, r.item_id, SAKO_EVENT_CLICK, 1000 + round);
            clicks++;
        }
        ck_assert_ok(sako_update(e, ev, ne));
        if (round >= ROUNDS - LAST)
            best_late += arm == 6;
    }
    ck_assert_msg(best_late > LAST * 6 / 10, "best item shown %d of the last %d rounds", best_late,
                  LAST);
    /* A random policy collects Binomial(ROUNDS, mean_ctr) clicks. */
    double z = sk_z(0.001);
    double random_hi = ROUNDS * mean_ctr + z * sqrt(ROUNDS * mean_ctr * (1 - mean_ctr));
    ck_assert_msg(clicks > random_hi, "%ld clicks, a random policy gets up to %.0f", clicks,
                  random_hi);
    /* The learned posterior of the best item is the sharpest and highest. */
    sako_item_info best = sk_info(e, 7);
    ck_assert_double_gt(best.impressions, ROUNDS / 2);
    ck_assert_double_eq_tol(best.alpha / (best.alpha + best.beta), 0.25 * 0.7 / (1 - 0.25 + 0.25 * 0.7),
                            0.05);
    sako_close(e);
}
END_TEST

/* With a top-5 slate and position-free clicks, the best item is at rank 1 most of
 * the time in the end, and is nearly always on the slate. */
START_TEST(test_best_item_top5)
{
    sako_engine *e = sk_open_mem(32);
    enum { N_ARMS = 30, ROUNDS = 1500, LAST = 500 };
    double ctr[N_ARMS];
    sako_item items[N_ARMS];
    for (int i = 0; i < N_ARMS; i++) {
        ctr[i] = i == 17 ? 0.3 : 0.02 + 0.002 * i;
        items[i] = (sako_item){i + 1, 0, 1, 1};
    }
    ck_assert_ok(sako_items_upsert(e, items, N_ARMS));
    sako_rng world;
    sako__rng_seed(&world, 9);
    sako_query q = SAKO_QUERY_INIT;
    q.k = 5;
    int first = 0, on_slate = 0;
    for (int round = 0; round < ROUNDS; round++) {
        sako_rec r[5];
        size_t n;
        ck_assert_ok(sako_recommend(e, &q, r, 5, &n));
        ck_assert_uint_eq(n, 5);
        sako_event ev[10];
        size_t ne = 0;
        for (size_t i = 0; i < n; i++) {
            ev[ne++] = sk_ev(1, r[i].item_id, SAKO_EVENT_IMPRESSION, 1);
            if (bernoulli(&world, ctr[r[i].item_id - 1]))
                ev[ne++] = sk_ev(1, r[i].item_id, SAKO_EVENT_CLICK, 1);
        }
        ck_assert_ok(sako_update(e, ev, ne));
        if (round >= ROUNDS - LAST) {
            first += r[0].item_id == 18;
            for (size_t i = 0; i < n; i++)
                on_slate += r[i].item_id == 18;
        }
    }
    ck_assert_msg(first > LAST * 7 / 10, "best item first in %d of %d", first, LAST);
    ck_assert_msg(on_slate > LAST * 95 / 100, "best item on the slate in %d of %d", on_slate, LAST);
    sako_close(e);
}
END_TEST

/* Monte-Carlo probability that `target` is among the k largest of one joint draw
 * of the given posteriors. */
static double mc_topk_rate(const sako_beta *post, int n, int target, int k, int draws, uint64_t seed)
{
    sako_rng r;
    sako__rng_seed(&r, seed);
    long hits = 0;
    for (int d = 0; d < draws; d++) {
        double xt = sako__beta_sample(&post[target], &r);
        int above = 0;
        for (int i = 0; i < n; i++)
            if (i != target && sako__beta_sample(&post[i], &r) > xt)
                above++;
        hits += above < k;
    }
    return (double)hits / draws;
}

/* A new item added to a mature catalog (50 items with 1000 impressions each) still
 * reaches the top 5 at a rate bounded away from 0, and at the rate a joint draw of
 * the posteriors predicts. */
START_TEST(test_new_item_exposure)
{
    sako_options o = sk_opts(33);
    o.prior_refresh_events = 0;
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_category c = {1, 0, "dept"};
    ck_assert_ok(sako_categories_upsert(e, &c, 1));
    enum { MATURE = 50, IMPS = 1000, CALLS = 4000, K = 5 };
    sako_item items[MATURE + 1];
    for (int i = 0; i < MATURE; i++)
        items[i] = (sako_item){i + 1, 1, 1, 1};
    ck_assert_ok(sako_items_upsert(e, items, MATURE));
    sako_rng world;
    sako__rng_seed(&world, 10);
    sako_event *ev = malloc((size_t)MATURE * IMPS * 2 * sizeof *ev);
    size_t ne = 0;
    for (int i = 0; i < MATURE; i++) {
        double ctr = 0.03 + 0.04 * sako__rng_uniform(&world);
        for (int j = 0; j < IMPS; j++) {
            ev[ne++] = sk_ev(1, i + 1, SAKO_EVENT_IMPRESSION, 1);
            if (bernoulli(&world, ctr))
                ev[ne++] = sk_ev(1, i + 1, SAKO_EVENT_CLICK, 1);
        }
    }
    ck_assert_ok(sako_update(e, ev, ne));
    free(ev);
    ck_assert_ok(sako_retrain(e)); /* category priors from the mature evidence */
    sako_item fresh = {MATURE + 1, 1, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &fresh, 1));

    sako_beta post[MATURE + 1];
    for (int i = 0; i <= MATURE; i++) {
        sako_item_info in = sk_info(e, i + 1);
        sako__beta_set(&post[i], in.alpha, in.beta);
    }
    double p = mc_topk_rate(post, MATURE + 1, MATURE, K, 20000, 77);
    sako_query q = SAKO_QUERY_INIT;
    q.k = K;
    long hits = 0;
    for (int call = 0; call < CALLS; call++) {
        sako_rec r[K];
        size_t n;
        ck_assert_ok(sako_recommend(e, &q, r, K, &n));
        for (size_t i = 0; i < n; i++)
            hits += r[i].item_id == MATURE + 1;
    }
    double rate = (double)hits / CALLS;
    double z = sk_z(0.001);
    double se = sqrt(p * (1 - p) * (1.0 / CALLS + 1.0 / 20000));
    ck_assert_msg(p > 0.02, "the new item's predicted exposure is only %.4f", p);
    ck_assert_msg(rate >= 0.02, "the new item reached the top %d in %.4f of calls", K, rate);
    ck_assert_msg(fabs(rate - p) <= z * se, "exposure %.4f, predicted %.4f (+- %.4f)", rate, p,
                  z * se);
    sako_close(e);
}
END_TEST

/* Two departments, one converting at 30 %, one at 2 %; after a retrain, a new item
 * in the strong one ranks above a new item in the weak one more often than not
 * (category priors); with SAKO_PRIOR_FLAT they are even. */
static void strong_vs_weak(int prior, double *rate_out, double *mc_out, double *m_strong,
                           double *m_weak)
{
    sako_options o = sk_opts(34 + (uint64_t)prior);
    o.prior = prior;
    o.prior_refresh_events = 0;
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_category c[] = {{1, 0, "strong"}, {2, 0, "weak"}};
    ck_assert_ok(sako_categories_upsert(e, c, 2));
    enum { PER = 20, IMPS = 300, CALLS = 4000 };
    sako_item items[2 * PER];
    for (int i = 0; i < 2 * PER; i++)
        items[i] = (sako_item){i + 1, i < PER ? 1 : 2, 1, 1};
    ck_assert_ok(sako_items_upsert(e, items, 2 * PER));
    sako_rng world;
    sako__rng_seed(&world, 11);
    sako_event *ev = malloc(2 * PER * IMPS * 2 * sizeof *ev);
    size_t ne = 0;
    for (int i = 0; i < 2 * PER; i++)
        for (int j = 0; j < IMPS; j++) {
            ev[ne++] = sk_ev(1, i + 1, SAKO_EVENT_IMPRESSION, 1);
            if (bernoulli(&world, i < PER ? 0.3 : 0.02))
                ev[ne++] = sk_ev(1, i + 1, SAKO_EVENT_CLICK, 1);
        }
    ck_assert_ok(sako_update(e, ev, ne));
    free(ev);
    ck_assert_ok(sako_retrain(e));
    sako_item fresh[2] = {{101, 1, 1, 0}, {102, 2, 1, 0}};
    ck_assert_ok(sako_items_upsert(e, fresh, 2));
    ck_assert_ok(sako_category_prior(e, 1, m_strong));
    ck_assert_ok(sako_category_prior(e, 2, m_weak));

    /* Only the two new items are eligible. */
    int64_t ex[2 * PER];
    for (int i = 0; i < 2 * PER; i++)
        ex[i] = i + 1;
    sako_query q = SAKO_QUERY_INIT;
    q.k = 2;
    q.exclude = ex;
    q.n_exclude = 2 * PER;
    long strong_first = 0;
    for (int call = 0; call < CALLS; call++) {
        sako_rec r[2];
        size_t n;
        ck_assert_ok(sako_recommend(e, &q, r, 2, &n));
        ck_assert_uint_eq(n, 2);
        strong_first += r[0].item_id == 101;
    }
    *rate_out = (double)strong_first / CALLS;
    sako_beta post[2];
    sako_item_info a = sk_info(e, 101), b = sk_info(e, 102);
    sako__beta_set(&post[0], a.alpha, a.beta);
    sako__beta_set(&post[1], b.alpha, b.beta);
    *mc_out = mc_topk_rate(post, 2, 0, 1, 40000, 99);
    sako_close(e);
}

START_TEST(test_category_prior_head_start)
{
    double rate, mc, ms, mw;
    strong_vs_weak(SAKO_PRIOR_CATEGORY, &rate, &mc, &ms, &mw);
    ck_assert_msg(ms > 0.15 && mw < 0.05, "category priors %.4f (strong) %.4f (weak)", ms, mw);
    double z = sk_z(0.001);
    /* Reject "no advantage" (rate = 1/2) one-sidedly, and match the exact rate. */
    ck_assert_msg(rate > 0.5 + z * sqrt(0.25 / 4000), "strong new item first in %.4f", rate);
    double se = sqrt(mc * (1 - mc) * (1.0 / 4000 + 1.0 / 40000));
    ck_assert_msg(fabs(rate - mc) <= z * se, "strong first %.4f, predicted %.4f", rate, mc);
}
END_TEST

START_TEST(test_flat_prior_no_head_start)
{
    double rate, mc, ms, mw;
    strong_vs_weak(SAKO_PRIOR_FLAT, &rate, &mc, &ms, &mw);
    ck_assert_double_eq(ms, 0.5);
    ck_assert_double_eq(mw, 0.5);
    double z = sk_z(0.001);
    ck_assert_msg(fabs(rate - 0.5) <= z * sqrt(0.25 / 4000), "flat: strong new item first in %.4f",
                  rate);
}
END_TEST

/* An item that stops converting loses its place: after a run of misses its share
 * of rank 1 falls below the alternative's. */
START_TEST(test_learns_from_misses)
{
    sako_engine *e = sk_open_mem(35);
    sako_item items[2] = {{1, 0, 1, 1}, {2, 0, 1, 1}};
    ck_assert_ok(sako_items_upsert(e, items, 2));
    sako_event ev[400];
    size_t n = 0;
    sk_push(ev, &n, 1, 1, SAKO_EVENT_IMPRESSION, 100, 1);
    sk_push(ev, &n, 1, 1, SAKO_EVENT_CLICK, 20, 1);
    sk_push(ev, &n, 1, 2, SAKO_EVENT_IMPRESSION, 100, 1);
    sk_push(ev, &n, 1, 2, SAKO_EVENT_CLICK, 10, 1);
    ck_assert_ok(sako_update(e, ev, n));
    sako_query q = SAKO_QUERY_INIT;
    q.k = 1;
    int first1 = 0;
    for (int i = 0; i < 1000; i++) {
        sako_rec r;
        size_t m;
        ck_assert_ok(sako_recommend(e, &q, &r, 1, &m));
        first1 += r.item_id == 1;
    }
    ck_assert_int_gt(first1, 700);
    n = 0;
    sk_push(ev, &n, 1, 1, SAKO_EVENT_IMPRESSION, 300, 2);
    ck_assert_ok(sako_update(e, ev, n));
    first1 = 0;
    for (int i = 0; i < 1000; i++) {
        sako_rec r;
        size_t m;
        ck_assert_ok(sako_recommend(e, &q, &r, 1, &m));
        first1 += r.item_id == 1;
    }
    ck_assert_int_lt(first1, 300);
    sako_close(e);
}
END_TEST

Suite *suite_bandit(void)
{
    Suite *s = suite_create("bandit");
    TCase *tc = tcase_create("bandit");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_best_item_dominates);
    tcase_add_test(tc, test_best_item_top5);
    tcase_add_test(tc, test_new_item_exposure);
    tcase_add_test(tc, test_category_prior_head_start);
    tcase_add_test(tc, test_flat_prior_no_head_start);
    tcase_add_test(tc, test_learns_from_misses);
    suite_add_tcase(s, tc);
    return s;
}
