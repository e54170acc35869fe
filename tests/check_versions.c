/* Model versions (issue 9 item 3): the gate, rollback, pin, keep N, reopen,
 * migration from schema 3, bad arguments, activation under concurrent readers, and
 * the gate on a compacted log. */
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "check_sako.h"
#include "engine_internal.h"

/* Two departments of 40 products each, directly under them: A = 1 (ids 1001..1040)
 * and B = 2 (ids 2001..2040). */
#define N_PER 40
#define CAT_A 1
#define CAT_B 2
#define ITEM(cat, k) ((int64_t)(cat) * 1000 + (k))
/* The holdout of these tests: 30 baskets of 3 purchases, one batch each. */
#define HOLDOUT_BASKETS 30
#define HOLDOUT_EVENTS (HOLDOUT_BASKETS * 3)

static sako_options ver_opts(void)
{
    sako_options o = sk_opts(7);
    o.organic_demand = 0;          /* every purchase is a success of its product */
    o.prior_refresh_events = 0;    /* priors move only with versions */
    return o;
}

static void ver_catalog(sako_engine *e)
{
    sako_category cats[] = { {CAT_A, 0, "A"}, {CAT_B, 0, "B"} };
    ck_assert_ok(sako_categories_upsert(e, cats, 2));
    sako_item items[2 * N_PER];
    for (int k = 0; k < N_PER; k++) {
        items[k] = (sako_item){ ITEM(CAT_A, k + 1), CAT_A, 1, 1000 };
        items[N_PER + k] = (sako_item){ ITEM(CAT_B, k + 1), CAT_B, 1, 1000 };
    }
    ck_assert_ok(sako_items_upsert(e, items, 2 * N_PER));
}

static void set_gate(sako_engine *e, double margin, uint64_t holdout, uint64_t min_baskets,
                     uint64_t keep)
{
    sako_policy p = SAKO_POLICY_INIT;
    p.gate_margin = margin;
    p.gate_holdout_events = holdout;
    p.gate_holdout_fraction = 0.5;
    p.gate_min_baskets = min_baskets;
    p.keep_versions = keep;
    ck_assert_ok(sako_policy_set(e, &p));
}

/* Products first..last of a category: `imps` impressions and `buys` purchases each
 * (one batch), shown and bought in recommendation slots. */
static void evidence(sako_engine *e, int cat, int first, int last, int imps, int buys,
                     int64_t t)
{
    sako_event *ev = malloc((size_t)(last - first + 1) * (size_t)(imps + buys) * sizeof *ev);
    size_t n = 0;
    for (int k = first; k <= last; k++) {
        sk_push(ev, &n, 1, ITEM(cat, k), SAKO_EVENT_IMPRESSION, imps, t);
        sk_push(ev, &n, 1, ITEM(cat, k), SAKO_EVENT_PURCHASE, buys, t);
    }
    ck_assert_ok(sako_update(e, ev, n));
    free(ev);
}

/* Phase 1: A's products convert, B's do not (the champion's world). */
static void phase_a_converts(sako_engine *e)
{
    evidence(e, CAT_A, 1, 10, 10, 8, 10000);
    evidence(e, CAT_B, 1, 10, 10, 0, 10000);
}

/* Phase 2: the opposite, stronger (the challenger's world at the holdout's start). */
static void phase_b_converts(sako_engine *e)
{
    evidence(e, CAT_B, 11, 20, 20, 20, 20000);
    evidence(e, CAT_A, 11, 20, 40, 0, 20000);
}

/* The holdout: HOLDOUT_BASKETS baskets, each 3 new products of `cat` bought by one
 * user (never shown: their rank is their category's prior). */
static void holdout_buys(sako_engine *e, int cat, int user0)
{
    for (int b = 0; b < HOLDOUT_BASKETS; b++) {
        sako_event ev[3];
        for (int k = 0; k < 3; k++)
            ev[k] = sk_ev(user0 + b, ITEM(cat, 21 + (b + 7 * k) % 20), SAKO_EVENT_PURCHASE,
                          30000 + b);
        ck_assert_ok(sako_update(e, ev, 3));
    }
}

static sako_version_info version(sako_engine *e, int64_t v)
{
    sako_version_info info;
    memset(&info, 0, sizeof info);
    ck_assert_ok(sako_version_get(e, v, &info));
    return info;
}

static sako_version_info last_result(sako_engine *e)
{
    sako_version_info info;
    memset(&info, 0, sizeof info);
    ck_assert_ok(sako_retrain_result(e, &info));
    return info;
}

/* Every product's posterior and both categories' priors. */
typedef struct snapshot {
    sako_item_info items[2 * N_PER];
    double prior[3];
} snapshot;

static void take(sako_engine *e, snapshot *s)
{
    for (int k = 0; k < N_PER; k++) {
        s->items[k] = sk_info(e, ITEM(CAT_A, k + 1));
        s->items[N_PER + k] = sk_info(e, ITEM(CAT_B, k + 1));
    }
    ck_assert_ok(sako_category_prior(e, 0, &s->prior[0]));
    ck_assert_ok(sako_category_prior(e, CAT_A, &s->prior[1]));
    ck_assert_ok(sako_category_prior(e, CAT_B, &s->prior[2]));
}

static int same_snapshot(const snapshot *x, const snapshot *y)
{
    for (int i = 0; i < 2 * N_PER; i++)
        if (!sk_same_info(&x->items[i], &y->items[i]))
            return 0;
    for (int c = 0; c < 3; c++)
        if (!sk_same_double(x->prior[c], y->prior[c]))
            return 0;
    return 1;
}

/* A file engine with version 1 fitted on phase 1 (gate: no champion). */
static sako_engine *with_champion(char *path, size_t cap, const char *name)
{
    sk_tmp_path(path, cap, name);
    sako_options o = ver_opts();
    sako_engine *e = sk_open_opts(path, &o);
    ver_catalog(e);
    set_gate(e, 0.01, HOLDOUT_EVENTS, 10, 10);
    phase_a_converts(e);
    ck_assert_ok(sako_retrain(e));
    sako_version_info v1 = last_result(e);
    ck_assert_int_eq(v1.version, 1);
    ck_assert_int_eq(v1.status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(v1.champion, 0);
    ck_assert_int_eq(v1.scored, 0);
    ck_assert_msg(strncmp(v1.verdict, "passed on finiteness", 20) == 0, "%s", v1.verdict);
    ck_assert_int_eq(version(e, 0).version, 1);
    return e;
}

/* ------------------------------------------------------------------ the gate */

/* A challenger fitted where B converts, scored on baskets of A's products: the
 * champion (fitted where A converts) ranks them far higher, so the challenger is
 * rejected and the served model does not change. */
START_TEST(test_gate_rejects_worse)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-worse");
    phase_b_converts(e);
    holdout_buys(e, CAT_A, 100);
    snapshot before, after;
    take(e, &before);
    ck_assert_ok(sako_retrain_v2(e, SAKO_RETRAIN_EVENTS));
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.version, 2);
    ck_assert_int_eq(r.status, SAKO_MODEL_REJECTED);
    ck_assert_uint_eq(r.reasons, SAKO_RETRAIN_EVENTS);
    ck_assert_int_eq(r.champion, 1);
    ck_assert_int_eq(r.scored, 1);
    ck_assert_uint_eq(r.holdout_events, HOLDOUT_EVENTS);
    ck_assert_uint_eq(r.holdout_baskets, HOLDOUT_BASKETS);
    ck_assert_msg(r.score < r.champion_score - 0.01, "%g vs %g", r.score, r.champion_score);
    ck_assert_msg(strncmp(r.verdict, "rejected: NDCG@20", 17) == 0, "%s", r.verdict);
    ck_assert_int_eq(version(e, 0).version, 1);
    take(e, &after);
    ck_assert(same_snapshot(&before, &after));
    ck_assert_int_eq(sk_stats(e).model_version, 2);
    /* the policy counts from this retrain: a rejected candidate is not retried at once */
    sako_retrain_status due;
    ck_assert_ok(sako_retrain_due(e, &due));
    ck_assert_uint_eq(due.events_since, 0);
    /* a rejected version is never activated */
    ck_assert_rc(sako_version_activate(e, 2), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "rejected"));
    sako_close(e);
    /* and a reopen serves version 1 still */
    sako_options o = ver_opts();
    e = sk_open_opts(path, &o);
    take(e, &after);
    ck_assert(same_snapshot(&before, &after));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* After a rejection the priors stay the active version's: the prior refreshes, which
 * would refit them as the rejected version did, are held back until a version passes. */
START_TEST(test_rejection_holds_refreshes)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "ver-reject-hold");
    sako_options o = ver_opts();
    o.prior_refresh_events = 50;
    sako_engine *e = sk_open_opts(path, &o);
    ver_catalog(e);
    set_gate(e, 0.01, HOLDOUT_EVENTS, 10, 10);
    phase_a_converts(e);
    ck_assert_ok(sako_retrain(e));
    phase_b_converts(e);
    holdout_buys(e, CAT_A, 100);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(last_result(e).status, SAKO_MODEL_REJECTED);
    double held, now;
    ck_assert_ok(sako_category_prior(e, CAT_B, &held));
    evidence(e, CAT_B, 21, 40, 20, 20, 40000); /* refreshes would be due */
    ck_assert_ok(sako_category_prior(e, CAT_B, &now));
    ck_assert(sk_same_double(held, now));
    set_gate(e, 1.0, HOLDOUT_EVENTS, 10, 10);
    ck_assert_ok(sako_retrain(e)); /* passes on finiteness: the hold ends */
    ck_assert_int_eq(last_result(e).status, SAKO_MODEL_ACTIVE);
    ck_assert_ok(sako_category_prior(e, CAT_B, &held));
    evidence(e, CAT_A, 21, 40, 40, 0, 50000);
    ck_assert_ok(sako_category_prior(e, CAT_B, &now));
    ck_assert(!sk_same_double(held, now)); /* a refresh ran */
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* The same challenger scored on baskets of B's products: it wins, passes and the
 * version fitted on the whole log is activated. */
START_TEST(test_gate_passes_better)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-better");
    phase_b_converts(e);
    holdout_buys(e, CAT_B, 100);
    double a_before, b_before;
    ck_assert_ok(sako_category_prior(e, CAT_A, &a_before));
    ck_assert_ok(sako_category_prior(e, CAT_B, &b_before));
    ck_assert(a_before > b_before); /* version 1's world */
    ck_assert_ok(sako_retrain(e));
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.version, 2);
    ck_assert_int_eq(r.status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(r.scored, 1);
    ck_assert_msg(r.score > r.champion_score, "%g vs %g", r.score, r.champion_score);
    ck_assert_msg(strncmp(r.verdict, "passed: NDCG@20", 15) == 0, "%s", r.verdict);
    ck_assert_int_eq(version(e, 1).status, SAKO_MODEL_INACTIVE);
    ck_assert_int_eq(version(e, 0).version, 2);
    double a, b;
    ck_assert_ok(sako_category_prior(e, CAT_A, &a));
    ck_assert_ok(sako_category_prior(e, CAT_B, &b));
    ck_assert(b > a);
    ck_assert(sk_same_double(version(e, 2).root_mean, sk_stats(e).global_mean));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

static void poison(sako_engine *e, double *root, double *means, size_t n, void *arg)
{
    (void)e;
    (void)root;
    int *calls = arg;
    (*calls)++;
    if (n > 0)
        means[n - 1] = NAN;
}

/* A fit with a NaN (as a bug would leave) is rejected on finiteness, with or
 * without a scored holdout; the served model stays. */
START_TEST(test_gate_rejects_not_finite)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-nan");
    phase_b_converts(e);
    holdout_buys(e, CAT_B, 100);
    snapshot before, after;
    take(e, &before);
    int calls = 0;
    e->fit_hook = poison;
    e->fit_hook_arg = &calls;
    ck_assert_ok(sako_retrain(e));
    e->fit_hook = NULL;
    ck_assert_int_ge(calls, 1);
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.status, SAKO_MODEL_REJECTED);
    ck_assert_msg(strstr(r.verdict, "not finite") != NULL, "%s", r.verdict);
    ck_assert_int_eq(version(e, 0).version, 1);
    take(e, &after);
    ck_assert(same_snapshot(&before, &after));
    sako_close(e);
    sk_remove_db(path);

    /* an in-memory engine (finiteness only) too */
    sako_options o = ver_opts();
    e = sk_open_opts(NULL, &o);
    ver_catalog(e);
    phase_a_converts(e);
    calls = 0;
    e->fit_hook = poison;
    e->fit_hook_arg = &calls;
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(calls, 1);
    r = last_result(e);
    ck_assert_int_eq(r.status, SAKO_MODEL_REJECTED);
    ck_assert_rc(sako_version_get(e, 0, &r), SAKO_NOTFOUND);
    e->fit_hook = NULL;
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(last_result(e).status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(last_result(e).version, 2);
    sako_close(e);
}
END_TEST

/* A holdout much smaller than the catalog (each ranking then keeps only its best
 * k + holdout items sorted): the same decision, on the last 10 baskets. */
START_TEST(test_gate_small_holdout)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-small");
    set_gate(e, 0.01, 30, 5, 10);
    phase_b_converts(e);
    holdout_buys(e, CAT_A, 100);
    ck_assert_ok(sako_retrain(e));
    sako_version_info r = last_result(e);
    ck_assert_uint_eq(r.holdout_events, 30);
    ck_assert_uint_eq(r.holdout_baskets, 10);
    ck_assert_int_eq(r.scored, 1);
    ck_assert_int_eq(r.status, SAKO_MODEL_REJECTED);
    ck_assert_msg(r.score < r.champion_score - 0.01, "%g vs %g", r.score, r.champion_score);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Too few baskets in the holdout: finiteness decides, and the verdict says so. */
START_TEST(test_gate_too_few_baskets)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-few");
    set_gate(e, 0.01, HOLDOUT_EVENTS, HOLDOUT_BASKETS + 1, 10);
    phase_b_converts(e);
    holdout_buys(e, CAT_A, 100); /* would be rejected if scored */
    ck_assert_ok(sako_retrain(e));
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(r.scored, 0);
    ck_assert_uint_eq(r.holdout_baskets, HOLDOUT_BASKETS);
    ck_assert_msg(strstr(r.verdict, "too few baskets") != NULL, "%s", r.verdict);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* ---------------------------------------------------- rollback, reopen, pin */

/* Rolling back serves version 1's fit with today's counts exactly as version 1 did
 * before version 2 replaced it, and a reopen serves the same. */
START_TEST(test_rollback_exact_and_reopen)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-rollback");
    phase_b_converts(e);
    holdout_buys(e, CAT_B, 100);
    snapshot v1_now, v2_now, back, reopened;
    take(e, &v1_now); /* version 1 with every count so far (no refresh moved it) */
    sako_stats st1 = sk_stats(e);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(version(e, 0).version, 2);
    take(e, &v2_now);
    ck_assert(!same_snapshot(&v1_now, &v2_now));
    ck_assert_ok(sako_version_activate(e, 1));
    ck_assert_int_eq(version(e, 0).version, 1);
    ck_assert_int_eq(version(e, 2).status, SAKO_MODEL_INACTIVE);
    take(e, &back);
    ck_assert(same_snapshot(&v1_now, &back));
    ck_assert(sk_same_double(sk_stats(e).global_mean, st1.global_mean));
    /* the policy counts from the rollback */
    sako_retrain_status s;
    ck_assert_ok(sako_retrain_due(e, &s));
    ck_assert_uint_eq(s.events_since, 0);
    /* recommendations follow the rolled-back priors: the new B products rank as
     * version 1 ranks them */
    ck_assert_ok(sako_version_activate(e, 1)); /* already active: nothing changes */
    sako_close(e);
    sako_options o = ver_opts();
    e = sk_open_opts(path, &o);
    take(e, &reopened);
    ck_assert(same_snapshot(&back, &reopened));
    ck_assert_int_eq(version(e, 0).version, 1);
    /* and forward again */
    ck_assert_ok(sako_version_activate(e, 2));
    take(e, &back);
    ck_assert(same_snapshot(&v2_now, &back));
    sako_close(e);
    e = sk_open_opts(path, &o);
    take(e, &reopened);
    ck_assert(same_snapshot(&v2_now, &reopened));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* After a rollback the automatic prior refreshes are held back (they would refit
 * and undo it); a retrain that activates its version ends the hold. */
START_TEST(test_rollback_holds_refreshes)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "ver-hold");
    sako_options o = ver_opts();
    o.prior_refresh_events = 50;
    sako_engine *e = sk_open_opts(path, &o);
    ver_catalog(e);
    set_gate(e, 1.0, HOLDOUT_EVENTS, 10, 10);
    phase_a_converts(e);
    ck_assert_ok(sako_retrain(e));
    phase_b_converts(e);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(version(e, 0).version, 2);
    ck_assert_ok(sako_version_activate(e, 1));
    double held;
    ck_assert_ok(sako_category_prior(e, CAT_B, &held));
    evidence(e, CAT_B, 21, 40, 20, 20, 40000); /* 800 events: refreshes would be due */
    double now;
    ck_assert_ok(sako_category_prior(e, CAT_B, &now));
    ck_assert(sk_same_double(held, now));
    ck_assert_uint_ge(sk_stats(e).events_since_refresh, 800);
    sako_close(e);
    e = sk_open_opts(path, &o);
    evidence(e, CAT_B, 21, 40, 1, 1, 40001);
    ck_assert_ok(sako_category_prior(e, CAT_B, &now));
    ck_assert(sk_same_double(held, now));
    ck_assert_ok(sako_retrain(e)); /* version 3: active, the hold ends */
    ck_assert_int_eq(version(e, 0).version, 3);
    ck_assert_ok(sako_category_prior(e, CAT_B, &now));
    ck_assert(now > held);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* An in-memory engine with version 1 fitted on phase 1 (in memory nothing is
 * scored: versions pass on finiteness). */
static sako_engine *with_champion_in_memory(void)
{
    sako_options o = ver_opts();
    sako_engine *e = sk_open_opts(NULL, &o);
    ver_catalog(e);
    set_gate(e, 0.01, HOLDOUT_EVENTS, 10, 10);
    phase_a_converts(e);
    ck_assert_ok(sako_retrain(e));
    sako_version_info v1 = last_result(e);
    ck_assert_int_eq(v1.version, 1);
    ck_assert_int_eq(v1.status, SAKO_MODEL_ACTIVE);
    ck_assert_msg(strstr(v1.verdict, "in-memory database") != NULL, "%s", v1.verdict);
    return e;
}

/* A pinned active version: an automatic retrain records its version without
 * activating it; a manual one (or an activation) still does. The same on a file
 * (_i = 0) and in memory (_i = 1: its retrain runs on the caller's thread and takes
 * its own path to a version recorded but not activated). */
START_TEST(test_pin_blocks_automatic)
{
    char path[512] = "";
    sako_engine *e = _i ? with_champion_in_memory() : with_champion(path, sizeof path, "ver-pin");
    ck_assert_ok(sako_version_pin(e, 1, 1));
    ck_assert_int_eq(version(e, 1).pinned, 1);
    phase_b_converts(e);
    holdout_buys(e, CAT_B, 100);
    snapshot before, after;
    take(e, &before);
    ck_assert_ok(sako_retrain_v2(e, SAKO_RETRAIN_EVENTS | SAKO_RETRAIN_DRIFT));
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.version, 2);
    ck_assert_int_eq(r.status, SAKO_MODEL_INACTIVE);
    ck_assert_msg(strncmp(r.verdict, "not activated: active version 1 pinned", 38) == 0, "%s",
                  r.verdict);
    ck_assert_int_eq(version(e, 0).version, 1);
    take(e, &after);
    ck_assert(same_snapshot(&before, &after));
    sako_retrain_status due;
    ck_assert_ok(sako_retrain_due(e, &due));
    ck_assert_uint_eq(due.events_since, 0); /* no retrain storm while pinned */
    ck_assert_ok(sako_retrain(e)); /* by hand: activated despite the pin */
    ck_assert_int_eq(version(e, 0).version, 3);
    ck_assert_int_eq(version(e, 1).pinned, 1);
    ck_assert_ok(sako_version_activate(e, 2)); /* the one the pin kept back */
    ck_assert_int_eq(version(e, 0).version, 2);
    ck_assert_ok(sako_version_pin(e, 1, 0));
    ck_assert_int_eq(version(e, 1).pinned, 0);
    sako_close(e);
    if (path[0])
        sk_remove_db(path);
}
END_TEST

/* keep_versions: the newest N stay, plus the active and the pinned ones. */
START_TEST(test_keep_prunes_oldest)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-keep");
    set_gate(e, 1.0, HOLDOUT_EVENTS, 10, 3);
    ck_assert_ok(sako_version_pin(e, 1, 1));
    for (int r = 0; r < 6; r++) {
        evidence(e, CAT_A, 1, 2, 1, 1, 50000 + r);
        ck_assert_ok(sako_retrain(e)); /* versions 2..7 */
    }
    /* 7, 6, 5 and the pinned 1 are left; 5 becomes active, then two rejected
     * versions push it out of the newest three */
    ck_assert_ok(sako_version_activate(e, 5));
    int calls = 0;
    e->fit_hook = poison;
    e->fit_hook_arg = &calls;
    for (int r = 0; r < 2; r++) {
        evidence(e, CAT_A, 1, 2, 1, 1, 60000 + r);
        ck_assert_ok(sako_retrain_v2(e, SAKO_RETRAIN_TIME)); /* 8, 9: rejected */
        ck_assert_int_eq(last_result(e).status, SAKO_MODEL_REJECTED);
    }
    e->fit_hook = NULL;
    sako_version_info list[16];
    size_t n = 0, total = 0;
    ck_assert_ok(sako_versions_list(e, list, 16, &n, &total));
    /* newest three (9, 8, 7), the active 5 and the pinned 1 */
    int64_t want[] = {9, 8, 7, 5, 1};
    ck_assert_uint_eq(n, 5);
    ck_assert_uint_eq(total, 5);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(list[i].version, want[i]);
    ck_assert_int_eq(list[3].status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(list[4].pinned, 1);
    /* sizing call */
    ck_assert_ok(sako_versions_list(e, NULL, 0, &n, &total));
    ck_assert_uint_eq(n, 0);
    ck_assert_uint_eq(total, 5);
    ck_assert_rc(sako_version_get(e, 2, &list[0]), SAKO_NOTFOUND);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Events acknowledged while a retrain builds reach the version it activates, and
 * a reopen agrees. */
typedef struct during {
    int calls;
} during;

static void during_hook(sako_engine *e, void *arg)
{
    during *d = arg;
    d->calls++;
    evidence(e, CAT_A, 30, 35, 3, 2, 70000);
}

START_TEST(test_events_during_retrain)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-during");
    phase_b_converts(e);
    holdout_buys(e, CAT_B, 100);
    uint64_t before = sk_stats(e).n_events;
    during d = {0};
    e->retrain_hook = during_hook;
    e->retrain_hook_arg = &d;
    ck_assert_ok(sako_retrain(e));
    e->retrain_hook = NULL;
    ck_assert_int_eq(d.calls, 1);
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.status, SAKO_MODEL_ACTIVE);
    ck_assert_uint_eq(r.n_events, before); /* fitted up to the retrain's start... */
    ck_assert_uint_eq(sk_stats(e).n_events, before + 6 * 5);
    sako_item_info x = sk_info(e, ITEM(CAT_A, 30)); /* ...the later events reached it */
    ck_assert(x.impressions == 3.0 && x.purchases == 2.0);
    snapshot online, reopened;
    take(e, &online);
    sako_close(e);
    sako_options o = ver_opts();
    e = sk_open_opts(path, &o);
    take(e, &reopened);
    ck_assert(same_snapshot(&online, &reopened));
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* ------------------------------------------------------- files and arguments */

/* A version whose stored model was damaged is refused at activation and, when it
 * is the active one, at open; the list shows it with a NaN mean. */
START_TEST(test_damaged_version_refused)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-damaged");
    evidence(e, CAT_A, 1, 2, 1, 1, 50000);
    ck_assert_ok(sako_retrain(e)); /* version 2 active */
    sako_close(e);
    sako_verify_report rep;
    ck_assert_ok(sako_verify(path, &rep));
    /* one byte of version 1's model (a category's prior mean) flipped */
    sk_sql_exec(path, "UPDATE model_versions SET fit = substr(fit, 1, 200) ||"
                      " (CASE WHEN substr(fit, 201, 1) = x'00' THEN x'01' ELSE x'00' END) ||"
                      " substr(fit, 202) WHERE version = 1");
    ck_assert_rc(sako_verify(path, &rep), SAKO_CORRUPT);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "model version 1"));
    sako_options o = ver_opts();
    e = sk_open_opts(path, &o);
    snapshot before, after;
    take(e, &before);
    ck_assert_rc(sako_version_activate(e, 1), SAKO_CORRUPT);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "model version 1"));
    take(e, &after);
    ck_assert(same_snapshot(&before, &after));
    ck_assert_int_eq(version(e, 0).version, 2);
    ck_assert(isnan(version(e, 1).root_mean));
    sako_close(e);
    /* the active one damaged: the file is refused */
    sk_sql_exec(path, "UPDATE model_versions SET checksum = checksum + 1 WHERE version = 2");
    sako_engine *bad = NULL;
    ck_assert_rc(sako_init(&bad, path, &o), SAKO_CORRUPT);
    ck_assert_ptr_null(bad);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "model version 2"));
    sk_remove_db(path);
}
END_TEST

/* A schema-3 file (made by turning a new file back: SK_SCHEMA4_TO_3) migrates: its
 * model in force becomes the active version, numbered as its last retrain, with
 * the same priors; the next retrain is gated against it. A file never retrained
 * has no version. */
START_TEST(test_schema3_migrates)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "ver-schema3");
    sako_options o = ver_opts();
    sako_engine *e = sk_open_opts(path, &o);
    ver_catalog(e);
    phase_a_converts(e);
    ck_assert_ok(sako_retrain(e));
    ck_assert_ok(sako_retrain(e));
    snapshot before, after;
    take(e, &before);
    sako_close(e);
    sk_sql_exec(path, SK_SCHEMA4_TO_3);
    ck_assert_int_eq(sk_sql_int(path, "SELECT count(*) FROM models"), 2);
    e = sk_open_opts(path, &o);
    ck_assert_int_eq(sk_sql_int(path, "PRAGMA user_version"), SK_SCHEMA_VERSION);
    take(e, &after);
    ck_assert(same_snapshot(&before, &after));
    sako_version_info list[4];
    size_t n = 0;
    ck_assert_ok(sako_versions_list(e, list, 4, &n, NULL));
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(list[0].version, 2);
    ck_assert_int_eq(list[0].status, SAKO_MODEL_ACTIVE);
    ck_assert_msg(strncmp(list[0].verdict, "adopted", 7) == 0, "%s", list[0].verdict);
    ck_assert(sk_same_double(list[0].root_mean, sk_stats(e).global_mean));
    sako_policy p = SAKO_POLICY_INIT, want = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &p));
    ck_assert_uint_eq(p.keep_versions, want.keep_versions);
    ck_assert(sk_same_double(p.gate_margin, want.gate_margin));
    set_gate(e, 0.01, HOLDOUT_EVENTS, 10, 10);
    phase_b_converts(e);
    holdout_buys(e, CAT_A, 100);
    ck_assert_ok(sako_retrain(e));
    sako_version_info r = last_result(e);
    ck_assert_int_eq(r.version, 3);
    ck_assert_int_eq(r.champion, 2);
    ck_assert_int_eq(r.status, SAKO_MODEL_REJECTED);
    /* the adopted model can be rolled back to: its priors are the 0.3 file's */
    set_gate(e, 1.0, HOLDOUT_EVENTS, 10, 10);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(version(e, 0).version, 4);
    double prior;
    ck_assert_ok(sako_category_prior(e, CAT_A, &prior));
    ck_assert(!sk_same_double(prior, before.prior[1]));
    ck_assert_ok(sako_version_activate(e, 2));
    take(e, &after);
    for (int c = 0; c < 3; c++)
        ck_assert(sk_same_double(after.prior[c], before.prior[c]));
    sako_close(e);
    sk_remove_db(path);

    /* never retrained: no version */
    e = sk_open_opts(path, &o);
    ver_catalog(e);
    phase_a_converts(e);
    sako_close(e);
    sk_sql_exec(path, SK_SCHEMA4_TO_3);
    e = sk_open_opts(path, &o);
    ck_assert_ok(sako_versions_list(e, list, 4, &n, NULL));
    ck_assert_uint_eq(n, 0);
    ck_assert_rc(sako_version_get(e, 0, &r), SAKO_NOTFOUND);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

START_TEST(test_bad_arguments)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-args");
    sako_version_info info, list[2];
    size_t n = 0;
    ck_assert_rc(sako_versions_list(NULL, list, 2, &n, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_versions_list(e, list, 2, NULL, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_versions_list(e, NULL, 2, &n, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_version_get(NULL, 1, &info), SAKO_MISUSE);
    ck_assert_rc(sako_version_get(e, 1, NULL), SAKO_MISUSE);
    ck_assert_rc(sako_version_get(e, -1, &info), SAKO_INVALID);
    ck_assert_rc(sako_version_get(e, 99, &info), SAKO_NOTFOUND);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "99"));
    ck_assert_rc(sako_version_activate(NULL, 1), SAKO_MISUSE);
    ck_assert_rc(sako_version_activate(e, 0), SAKO_INVALID);
    ck_assert_rc(sako_version_activate(e, 99), SAKO_NOTFOUND);
    ck_assert_rc(sako_version_pin(NULL, 1, 1), SAKO_MISUSE);
    ck_assert_rc(sako_version_pin(e, 0, 1), SAKO_INVALID);
    ck_assert_rc(sako_version_pin(e, 1, 2), SAKO_INVALID);
    ck_assert_rc(sako_version_pin(e, 99, 1), SAKO_NOTFOUND);
    ck_assert_rc(sako_retrain_v2(NULL, SAKO_RETRAIN_MANUAL), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_v2(e, 0), SAKO_INVALID);
    ck_assert_rc(sako_retrain_v2(e, 16), SAKO_INVALID);
    ck_assert_rc(sako_retrain_result(NULL, &info), SAKO_MISUSE);
    ck_assert_rc(sako_retrain_result(e, NULL), SAKO_MISUSE);
    sako_close(e);
    sako_options o = ver_opts();
    e = sk_open_opts(path, &o);
    ck_assert_rc(sako_retrain_result(e, &info), SAKO_NOTFOUND); /* none on this handle */
    /* bad gate settings are refused whole */
    struct { const char *field; double margin, fraction; uint64_t keep; } bad[] = {
        {"gate_margin", -0.1, 0.05, 10}, {"gate_margin", 1.5, 0.05, 10},
        {"gate_margin", NAN, 0.05, 10}, {"gate_holdout_fraction", 0.01, 0.6, 10},
        {"gate_holdout_fraction", 0.01, -1.0, 10}, {"keep_versions", 0.01, 0.05, 0},
        {"keep_versions", 0.01, 0.05, 10001},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sako_policy p = SAKO_POLICY_INIT;
        p.gate_margin = bad[i].margin;
        p.gate_holdout_fraction = bad[i].fraction;
        p.keep_versions = bad[i].keep;
        ck_assert_rc(sako_policy_set(e, &p), SAKO_INVALID);
        ck_assert_msg(strstr(sako_errmsg(), bad[i].field), "[%zu] %s", i, sako_errmsg());
    }
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* A version-1 policy struct (0.3's) keeps working: set reads its fields only and
 * leaves the gate's as they are; get writes nothing past it. */
typedef struct policy_v1_caller {
    unsigned version;
    uint64_t every_events, every_seconds;
    double drift_fraction;
    uint64_t drift_window, drift_min_impressions;
    unsigned char after[64];
} policy_v1_caller;

START_TEST(test_policy_v1_struct)
{
    sako_engine *e = sk_open_mem(3);
    set_gate(e, 0.2, 123, 45, 6);
    policy_v1_caller old;
    memset(&old, 0xAB, sizeof old);
    old.version = 1;
    old.every_events = 500;
    old.every_seconds = 0;
    old.drift_fraction = 0.0;
    old.drift_window = 100;
    old.drift_min_impressions = 50;
    ck_assert_ok(sako_policy_set(e, (const sako_policy *)(const void *)&old));
    sako_policy p = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &p));
    ck_assert_uint_eq(p.every_events, 500);
    ck_assert_uint_eq(p.keep_versions, 6);
    ck_assert_uint_eq(p.gate_holdout_events, 123);
    policy_v1_caller got;
    memset(&got, 0xCD, sizeof got);
    got.version = 1;
    ck_assert_ok(sako_policy_get(e, (sako_policy *)(void *)&got));
    ck_assert_uint_eq(got.every_events, 500);
    ck_assert_uint_eq(got.drift_window, 100);
    for (size_t i = 0; i < sizeof got.after; i++)
        ck_assert_uint_eq(got.after[i], 0xCD);
    sako_close(e);
}
END_TEST

/* ------------------------------------------------------------------ threads */

typedef struct reader_arg {
    sako_engine *e;
    int stop, bad;
    long answers;
} reader_arg;

static void *recommender(void *p)
{
    reader_arg *a = p;
    sako_query q = SAKO_QUERY_INIT;
    q.k = 10;
    sako_rec out[10];
    while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
        size_t n = 0;
        q.user_id = 1 + (a->answers % 50);
        if (sako_recommend(a->e, &q, out, 10, &n) != SAKO_OK || n != 10) {
            __atomic_store_n(&a->bad, 1, __ATOMIC_RELAXED);
            break;
        }
        double prior;
        if (sako_category_prior(a->e, CAT_B, &prior) != SAKO_OK || !(prior > 0.0 && prior < 1.0)) {
            __atomic_store_n(&a->bad, 1, __ATOMIC_RELAXED);
            break;
        }
        a->answers++;
    }
    return NULL;
}

/* Activations back and forth (and a retrain) while threads recommend and read
 * priors: every answer is whole; the last activation is what is served. */
START_TEST(test_threads)
{
    char path[512];
    sako_engine *e = with_champion(path, sizeof path, "ver-threads");
    phase_b_converts(e);
    holdout_buys(e, CAT_B, 100);
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(version(e, 0).version, 2);
    reader_arg args[3];
    pthread_t th[3];
    for (int t = 0; t < 3; t++) {
        args[t] = (reader_arg){ e, 0, 0, 0 };
        ck_assert_int_eq(pthread_create(&th[t], NULL, recommender, &args[t]), 0);
    }
    for (int i = 0; i < 40; i++) {
        ck_assert_ok(sako_version_activate(e, 1 + (i % 2)));
        if (i % 10 == 5) {
            evidence(e, CAT_A, 1, 3, 1, 1, 80000 + i);
            int rc = sako_retrain(e);
            ck_assert_rc(rc, SAKO_OK);
        }
    }
    for (int t = 0; t < 3; t++) {
        __atomic_store_n(&args[t].stop, 1, __ATOMIC_RELEASE);
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].bad, 0);
    }
    ck_assert_int_eq(version(e, 0).version, 2);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* --------------------------------------------------------- with compaction */

/* Steady traffic for the compaction tests: `n_batches` batches of 50 users, each
 * buying 3 products of `good` and being shown 3 of the other category (300 events,
 * 50 baskets a batch). Deterministic in (first user, batch). */
#define TRAFFIC_USERS 50
#define TRAFFIC_BATCH (TRAFFIC_USERS * 6)
static void traffic(sako_engine *e, int good, int n_batches, int user0, int64_t t0)
{
    int bad = good == CAT_A ? CAT_B : CAT_A;
    sako_event ev[TRAFFIC_BATCH];
    for (int b = 0; b < n_batches; b++) {
        size_t n = 0;
        for (int u = 0; u < TRAFFIC_USERS; u++) {
            int user = user0 + (b * 7 + u) % 400;
            for (int k = 0; k < 3; k++) {
                ev[n++] = sk_ev(user, ITEM(good, 1 + (b + 3 * u + 11 * k) % N_PER),
                                SAKO_EVENT_PURCHASE, t0 + b);
                ev[n++] = sk_ev(user, ITEM(bad, 1 + (2 * b + u + 13 * k) % N_PER),
                                SAKO_EVENT_IMPRESSION, t0 + b);
            }
        }
        ck_assert_ok(sako_update(e, ev, n));
    }
}

static sako_log_stats log_stats(sako_engine *e)
{
    sako_log_stats s;
    ck_assert_ok(sako_log_stats_get(e, &s));
    return s;
}

static sako_compact_report compact_all(sako_engine *e)
{
    sako_compact_options o = SAKO_COMPACT_OPTIONS_INIT;
    o.keep_days = 0.0;  /* no time window */
    o.keep_events = 0;  /* as little as the library allows */
    sako_compact_report r;
    ck_assert_ok(sako_compact(e, &o, &r));
    return r;
}

/* Two versions' gate figures are the same, bit for bit. */
static void assert_same_gate(const sako_version_info *x, const sako_version_info *y)
{
    ck_assert_int_eq(x->status, y->status);
    ck_assert_int_eq(x->champion, y->champion);
    ck_assert_int_eq(x->scored, y->scored);
    ck_assert_msg(sk_same_double(x->score, y->score), "%.17g vs %.17g", x->score, y->score);
    ck_assert(sk_same_double(x->champion_score, y->champion_score));
    ck_assert_uint_eq(x->holdout_events, y->holdout_events);
    ck_assert_uint_eq(x->holdout_baskets, y->holdout_baskets);
    ck_assert(sk_same_double(x->root_mean, y->root_mean));
    ck_assert_uint_eq(x->n_events, y->n_events);
    ck_assert_int_eq(x->last_batch, y->last_batch);
}

/* Versions and compaction together, on a file compacted after each retrain against
 * a twin that never is: compaction leaves at least the policy's gate_holdout_events
 * (above SAKO_COMPACT_MIN_EVENTS here), so the next retrain's gate scores its whole
 * holdout from the retained tail — the same scores, bit for bit, as on the full log —
 * and activates; a rollback to a version fitted before the compaction, and the
 * reopen, serve what the twin serves. */
#define GATE_HOLDOUT 12000
START_TEST(test_compaction_keeps_the_gate)
{
    ck_assert(GATE_HOLDOUT > SAKO_COMPACT_MIN_EVENTS);
    char pa[512], pb[512];
    sk_tmp_path(pa, sizeof pa, "ver-compact-a");
    sk_tmp_path(pb, sizeof pb, "ver-compact-b");
    sako_options o = ver_opts();
    sako_engine *e[2] = { sk_open_opts(pa, &o), sk_open_opts(pb, &o) };
    for (int i = 0; i < 2; i++) {
        ver_catalog(e[i]);
        /* margin 1: a scored challenger always passes (this test is about what is
         * scored, not who wins) */
        set_gate(e[i], 1.0, GATE_HOLDOUT, 10, 10);
        traffic(e[i], CAT_A, 100, 1, 10000); /* 30,000 events */
        ck_assert_ok(sako_retrain(e[i]));
        ck_assert_int_eq(last_result(e[i]).version, 1);
    }
    /* Compaction keeps gate_holdout_events, not just its own minimum: whole
     * batches, so fewer than one batch more. */
    sako_compact_report r = compact_all(e[0]);
    sako_log_stats ls = log_stats(e[0]);
    ck_assert_int_gt(r.compact_batch, 0);
    ck_assert_uint_gt(r.events_removed, 0);
    ck_assert_uint_ge(ls.n_events, GATE_HOLDOUT);
    ck_assert_uint_lt(ls.n_events, GATE_HOLDOUT + TRAFFIC_BATCH);
    ck_assert_uint_eq(ls.n_events + ls.compacted_events, 100 * TRAFFIC_BATCH);

    /* More traffic, the other way; the retrain's holdout (the newest 12,000 events)
     * lies after the compaction point: scored, activated, as on the twin. */
    for (int i = 0; i < 2; i++) {
        traffic(e[i], CAT_B, 60, 1000, 20000); /* 18,000 events */
        ck_assert_ok(sako_retrain(e[i]));
    }
    sako_version_info v2[2] = { last_result(e[0]), last_result(e[1]) };
    ck_assert_int_eq(v2[0].version, 2);
    ck_assert_int_eq(v2[0].status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(v2[0].champion, 1);
    ck_assert_int_eq(v2[0].scored, 1);
    ck_assert_uint_eq(v2[0].holdout_events, GATE_HOLDOUT);
    ck_assert_uint_ge(v2[0].holdout_baskets, 10);
    ck_assert_msg(strncmp(v2[0].verdict, "passed: NDCG@20", 15) == 0, "%s", v2[0].verdict);
    ck_assert_msg(!strstr(v2[0].verdict, "compact"), "%s", v2[0].verdict);
    ck_assert_int_eq(v2[0].first_batch, 1); /* the checkpoint stands for the batches before */
    assert_same_gate(&v2[0], &v2[1]);
    snapshot s[2];
    take(e[0], &s[0]);
    take(e[1], &s[1]);
    ck_assert(same_snapshot(&s[0], &s[1]));

    /* Compacted again, then a policy asking for more holdout than the log keeps:
     * the holdout is cut at the compaction point, scored, and the verdict says so. */
    r = compact_all(e[0]);
    ck_assert_uint_gt(r.events_removed, 0);
    uint64_t kept = log_stats(e[0]).n_events;
    ck_assert_uint_ge(kept, GATE_HOLDOUT);
    set_gate(e[0], 1.0, 40000, 10, 10);
    traffic(e[0], CAT_B, 2, 2000, 30000);
    ck_assert_ok(sako_retrain(e[0]));
    sako_version_info v3 = last_result(e[0]);
    ck_assert_int_eq(v3.version, 3);
    ck_assert_int_eq(v3.status, SAKO_MODEL_ACTIVE);
    ck_assert_int_eq(v3.scored, 1);
    ck_assert_uint_eq(v3.holdout_events, kept + 2 * TRAFFIC_BATCH);
    ck_assert_msg(strstr(v3.verdict, "holdout cut to the log after the compaction point"),
                  "%s", v3.verdict);

    /* Rollback to version 1 (fitted before any compaction): its priors with
     * today's counts; the reopen serves the same. */
    ck_assert_ok(sako_version_activate(e[0], 1));
    ck_assert_int_eq(version(e[0], 0).version, 1);
    snapshot online, reopened;
    take(e[0], &online);
    sako_close(e[0]);
    sako_verify_report vr;
    ck_assert_ok(sako_verify(pa, &vr));
    ck_assert_int_gt(vr.compact_batch, 0);
    e[0] = sk_open_opts(pa, &o);
    take(e[0], &reopened);
    ck_assert(same_snapshot(&online, &reopened));
    ck_assert_int_eq(version(e[0], 0).version, 1);
    ck_assert(sk_same_double(sk_stats(e[0]).global_mean, version(e[0], 1).root_mean));
    sako_close(e[0]);
    sako_close(e[1]);
    sk_remove_db(pa);
    sk_remove_db(pb);
}
END_TEST

Suite *suite_versions(void)
{
    Suite *s = suite_create("versions");
    TCase *tc = tcase_create("versions");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gate_rejects_worse);
    tcase_add_test(tc, test_gate_passes_better);
    tcase_add_test(tc, test_rejection_holds_refreshes);
    tcase_add_test(tc, test_gate_rejects_not_finite);
    tcase_add_test(tc, test_gate_too_few_baskets);
    tcase_add_test(tc, test_gate_small_holdout);
    tcase_add_test(tc, test_rollback_exact_and_reopen);
    tcase_add_test(tc, test_rollback_holds_refreshes);
    tcase_add_loop_test(tc, test_pin_blocks_automatic, 0, 2);
    tcase_add_test(tc, test_keep_prunes_oldest);
    tcase_add_test(tc, test_events_during_retrain);
    tcase_add_test(tc, test_damaged_version_refused);
    tcase_add_test(tc, test_schema3_migrates);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_policy_v1_struct);
    tcase_add_test(tc, test_compaction_keeps_the_gate);
    suite_add_tcase(s, tc);
    /* Its own case, so that make tsan can run it alone. */
    TCase *th = tcase_create("threads");
    tcase_set_timeout(th, 300);
    tcase_add_test(th, test_threads);
    suite_add_tcase(s, th);
    return s;
}
