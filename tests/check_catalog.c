/* Categories and items: upserts, validation, atomicity, limits, introspection. */
#include "check_sako.h"

/* ------------------------------------------------------------ categories */

START_TEST(test_categories_basic)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_categories, SK_N_CATS);
    ck_assert_uint_eq(st.n_items, SK_N_ITEMS);
    ck_assert_uint_eq(st.n_active_items, SK_N_ACTIVE);
    /* Upserting the same categories again changes nothing. */
    sako_category again[] = {{1, 0, NULL}, {11, 1, "Yoghurt & Kefir"}};
    ck_assert_ok(sako_categories_upsert(e, again, 2));
    ck_assert_uint_eq(sk_stats(e).n_categories, SK_N_CATS);
    /* Every category has a prior mean in (0, 1), as does the root. */
    static const int64_t ids[] = {0, 1, 2, 11, 12, 21};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        double m = -1;
        ck_assert_ok(sako_category_prior(e, ids[i], &m));
        ck_assert_msg(m > 0.0 && m < 1.0, "prior of %" PRId64 " = %g", ids[i], m);
    }
    sako_close(e);
}
END_TEST

/* Ids at and beyond the bounds: 1 and SAKO_ID_MAX are valid, 0, negatives and
 * SAKO_ID_MAX + 1 are not. */
START_TEST(test_category_id_bounds)
{
    sako_engine *e = sk_open_mem(1);
    sako_category ok[] = {{1, 0, "a"}, {SAKO_ID_MAX, 1, "b"}};
    ck_assert_ok(sako_categories_upsert(e, ok, 2));
    static const int64_t bad[] = {0, -1, SAKO_ID_MAX + 1, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sako_category c = {bad[i], 0, "x"};
        ck_assert_rc(sako_categories_upsert(e, &c, 1), SAKO_INVALID);
        ck_assert_errmsg_index(0);
    }
    /* A parent id out of range is invalid, not merely unknown. */
    static const int64_t bad_parent[] = {-1, SAKO_ID_MAX + 1, INT64_MIN};
    for (size_t i = 0; i < sizeof bad_parent / sizeof bad_parent[0]; i++) {
        sako_category c = {5, bad_parent[i], "x"};
        ck_assert_rc(sako_categories_upsert(e, &c, 1), SAKO_INVALID);
    }
    ck_assert_uint_eq(sk_stats(e).n_categories, 2);
    double m;
    ck_assert_ok(sako_category_prior(e, SAKO_ID_MAX, &m));
    ck_assert_rc(sako_category_prior(e, SAKO_ID_MAX - 1, &m), SAKO_NOTFOUND);
    ck_assert_rc(sako_category_prior(e, SAKO_ID_MAX + 1, &m), SAKO_INVALID);
    ck_assert_rc(sako_category_prior(e, -1, &m), SAKO_INVALID);
    ck_assert_rc(sako_category_prior(e, 12345, &m), SAKO_NOTFOUND);
    sako_close(e);
}
END_TEST

START_TEST(test_category_parent_rules)
{
    sako_engine *e = sk_open_mem(1);
    /* Unknown parent. */
    sako_category orphan = {7, 99, "orphan"};
    ck_assert_rc(sako_categories_upsert(e, &orphan, 1), SAKO_NOTFOUND);
    ck_assert_errmsg_index(0);
    /* A parent earlier in the same batch is fine ... */
    sako_category chain[] = {{1, 0, "dept"}, {2, 1, "aisle"}};
    ck_assert_ok(sako_categories_upsert(e, chain, 2));
    /* ... a later one is not. */
    sako_category later[] = {{4, 3, "child first"}, {3, 0, "parent later"}};
    ck_assert_rc(sako_categories_upsert(e, later, 2), SAKO_NOTFOUND);
    ck_assert_errmsg_index(0);
    /* Self-parent is a cycle. */
    sako_category self = {5, 5, "self"};
    ck_assert_rc(sako_categories_upsert(e, &self, 1), SAKO_INVALID);
    sako_category self_existing = {2, 2, NULL};
    ck_assert_rc(sako_categories_upsert(e, &self_existing, 1), SAKO_INVALID);
    ck_assert_uint_eq(sk_stats(e).n_categories, 2);
    sako_close(e);
}
END_TEST

/* Re-parenting that would close a loop is refused, whole batch. */
START_TEST(test_category_cycles)
{
    sako_engine *e = sk_open_mem(1);
    sako_category chain[] = {{1, 0, "a"}, {2, 1, "b"}, {3, 2, "c"}};
    ck_assert_ok(sako_categories_upsert(e, chain, 3));
    /* 1 under 3: 1 -> 3 -> 2 -> 1. The bad entry is [1] of this batch. */
    sako_category loop[] = {{10, 0, "unrelated"}, {1, 3, NULL}};
    ck_assert_rc(sako_categories_upsert(e, loop, 2), SAKO_INVALID);
    ck_assert_errmsg_index(1);
    /* Two entries of one batch pointing at each other. */
    sako_category pair[] = {{2, 3, NULL}, {3, 2, NULL}};
    ck_assert_rc(sako_categories_upsert(e, pair, 2), SAKO_INVALID);
    /* Nothing of either batch was applied: 10 does not exist, and the tree is as
     * it was: an item of 3 is still in the subtree of 1. */
    double m;
    ck_assert_rc(sako_category_prior(e, 10, &m), SAKO_NOTFOUND);
    ck_assert_uint_eq(sk_stats(e).n_categories, 3);
    sako_item it = {1000, 3, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &it, 1));
    sako_query q = SAKO_QUERY_INIT;
    q.category_id = 1;
    sako_rec r[20];
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(r[0].item_id, 1000);
    /* A legal move is accepted: 3 becomes a department, out of 1's subtree. */
    sako_category move = {3, 0, NULL};
    ck_assert_ok(sako_categories_upsert(e, &move, 1));
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 0);
    /* and now 1 under 3 is legal too (3 -> nothing). */
    sako_category move2 = {1, 3, NULL};
    ck_assert_ok(sako_categories_upsert(e, &move2, 1));
    sako_close(e);
}
END_TEST

/* A chain of SAKO_MAX_DEPTH categories is fine; one more level is refused, whether
 * added at the bottom, or made by moving a subtree under a deep node. */
START_TEST(test_category_depth)
{
    sako_engine *e = sk_open_mem(1);
    sako_category chain[SAKO_MAX_DEPTH];
    for (int i = 0; i < SAKO_MAX_DEPTH; i++) {
        chain[i].id = 100 + i;
        chain[i].parent_id = i == 0 ? 0 : 100 + i - 1;
        chain[i].name = "level";
    }
    ck_assert_ok(sako_categories_upsert(e, chain, SAKO_MAX_DEPTH));
    sako_category too_deep = {200, 100 + SAKO_MAX_DEPTH - 1, "too deep"};
    ck_assert_rc(sako_categories_upsert(e, &too_deep, 1), SAKO_INVALID);
    ck_assert_errmsg_index(0);

    /* Moving a two-level subtree (300 -> 301) under level MAX_DEPTH - 1 makes depth
     * MAX_DEPTH + 1 for 301 though 300 itself lands at MAX_DEPTH. */
    sako_category sub[] = {{300, 0, "top"}, {301, 300, "below"}};
    ck_assert_ok(sako_categories_upsert(e, sub, 2));
    sako_category move = {300, 100 + SAKO_MAX_DEPTH - 2, NULL};
    ck_assert_rc(sako_categories_upsert(e, &move, 1), SAKO_INVALID);
    /* One level higher it fits exactly. */
    move.parent_id = 100 + SAKO_MAX_DEPTH - 3;
    ck_assert_ok(sako_categories_upsert(e, &move, 1));
    /* An item in the deepest category is recommendable through every ancestor. */
    sako_item it = {1, 301, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &it, 1));
    sako_query q = SAKO_QUERY_INIT;
    q.category_id = 100;
    sako_rec r[20];
    size_t n = 0;
    ck_assert_ok(sako_recommend(e, &q, r, 20, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(r[0].item_id, 1);
    sako_close(e);
}
END_TEST

START_TEST(test_category_names)
{
    sako_engine *e = sk_open_mem(1);
    char name[SAKO_MAX_NAME + 2];
    memset(name, 'n', sizeof name);
    name[SAKO_MAX_NAME] = '\0';
    sako_category c = {1, 0, name};
    ck_assert_ok(sako_categories_upsert(e, &c, 1));
    name[SAKO_MAX_NAME] = 'n';
    name[SAKO_MAX_NAME + 1] = '\0';
    sako_category batch[] = {{2, 0, "fine"}, {3, 0, name}};
    ck_assert_rc(sako_categories_upsert(e, batch, 2), SAKO_INVALID);
    ck_assert_errmsg_index(1);
    /* Multi-byte UTF-8 counts in bytes: 128 two-byte characters = 256 bytes is fine. */
    char utf8[SAKO_MAX_NAME + 3];
    for (int i = 0; i < SAKO_MAX_NAME; i += 2)
        utf8[i] = (char)0xC3, utf8[i + 1] = (char)0xA9; /* é */
    utf8[SAKO_MAX_NAME] = '\0';
    sako_category u = {4, 0, utf8};
    ck_assert_ok(sako_categories_upsert(e, &u, 1));
    ck_assert_uint_eq(sk_stats(e).n_categories, 2);
    sako_close(e);
}
END_TEST

/* Names are UTF-8: malformed byte sequences are a bad name. */
START_TEST(test_category_name_utf8)
{
    sako_engine *e = sk_open_mem(1);
    static const char *bad[] = {
        "\xff",                 /* never valid */
        "abc\xc3",              /* truncated sequence */
        "\xc0\xaf",             /* overlong '/' */
        "\xed\xa0\x80",         /* UTF-16 surrogate */
        "\xf4\x90\x80\x80",     /* beyond U+10FFFF */
        "caf\xe9",              /* Latin-1, not UTF-8 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sako_category c = {10 + (int64_t)i, 0, bad[i]};
        int rc = sako_categories_upsert(e, &c, 1);
        ck_assert_msg(rc == SAKO_INVALID, "name %zu accepted (%d)", i, rc);
    }
    sako_category good = {1, 0, "Caf\xc3\xa9 & \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8d\x8e"};
    ck_assert_ok(sako_categories_upsert(e, &good, 1));
    ck_assert_uint_eq(sk_stats(e).n_categories, 1);
    sako_close(e);
}
END_TEST

START_TEST(test_category_duplicates_and_atomicity)
{
    sako_engine *e = sk_open_mem(1);
    sako_category dup[] = {{1, 0, "a"}, {2, 0, "b"}, {3, 0, "c"}, {2, 1, "again"}};
    ck_assert_rc(sako_categories_upsert(e, dup, 4), SAKO_INVALID);
    ck_assert_errmsg_index(3);
    ck_assert_uint_eq(sk_stats(e).n_categories, 0);
    double m;
    ck_assert_rc(sako_category_prior(e, 1, &m), SAKO_NOTFOUND);
    ck_assert_ok(sako_categories_upsert(e, dup, 3));
    ck_assert_uint_eq(sk_stats(e).n_categories, 3);
    sako_close(e);
}
END_TEST

/* n beyond SAKO_MAX_BATCH is refused before any entry is read. */
START_TEST(test_catalog_batch_limit)
{
    sako_engine *e = sk_open_mem(1);
    sako_category c = {1, 0, "x"};
    ck_assert_rc(sako_categories_upsert(e, &c, (size_t)SAKO_MAX_BATCH + 1), SAKO_RANGE);
    ck_assert_rc(sako_categories_upsert(e, &c, SIZE_MAX), SAKO_RANGE);
    sako_item it = {1, 0, 1, 0};
    ck_assert_rc(sako_items_upsert(e, &it, (size_t)SAKO_MAX_BATCH + 1), SAKO_RANGE);
    ck_assert_rc(sako_items_upsert(e, &it, SIZE_MAX), SAKO_RANGE);
    ck_assert_uint_eq(sk_stats(e).n_categories, 0);
    ck_assert_uint_eq(sk_stats(e).n_items, 0);
    sako_close(e);
}
END_TEST

/* SAKO_MAX_BATCH itself is accepted (items at the root). */
START_TEST(test_items_max_batch)
{
    sako_engine *e = sk_open_mem(1);
    sako_item *items = malloc(SAKO_MAX_BATCH * sizeof *items);
    ck_assert_ptr_nonnull(items);
    for (int i = 0; i < SAKO_MAX_BATCH; i++) {
        items[i].id = i + 1;
        items[i].category_id = 0;
        items[i].active = i % 2;
        items[i].added_at = 1;
    }
    ck_assert_ok(sako_items_upsert(e, items, SAKO_MAX_BATCH));
    free(items);
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_items, SAKO_MAX_BATCH);
    ck_assert_uint_eq(st.n_active_items, SAKO_MAX_BATCH / 2);
    ck_assert_int_eq(sk_info(e, SAKO_MAX_BATCH).active, 1); /* i = MAX_BATCH - 1 is odd */
    ck_assert_int_eq(sk_info(e, SAKO_MAX_BATCH - 1).active, 0);
    sako_close(e);
}
END_TEST

/* ----------------------------------------------------------------- items */

START_TEST(test_items_basic)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_item_info info = sk_info(e, 101);
    ck_assert_int_eq(info.id, 101);
    ck_assert_int_eq(info.category_id, 11);
    ck_assert_int_eq(info.active, 1);
    ck_assert_int_eq(info.added_at, 1000);
    ck_assert_int_eq(info.last_event_at, 0);
    ck_assert_double_eq(info.impressions, 0);
    ck_assert_double_eq(info.clicks, 0);
    ck_assert_double_eq(info.carts, 0);
    ck_assert_double_eq(info.purchases, 0);
    info = sk_info(e, SK_INACTIVE_ID);
    ck_assert_int_eq(info.active, 0);
    info = sk_info(e, 301);
    ck_assert_int_eq(info.category_id, 0);
    /* added_at 0 means now. */
    int64_t t0 = sk_now_ms();
    sako_item it = {500, 21, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &it, 1));
    int64_t t1 = sk_now_ms();
    info = sk_info(e, 500);
    ck_assert_int_ge(info.added_at, t0);
    ck_assert_int_le(info.added_at, t1);
    sako_close(e);
}
END_TEST

/* A new item's posterior is its category's prior with prior_strength
 * pseudo-observations: Beta(s*m, s*(1-m)). */
START_TEST(test_new_item_prior)
{
    sako_options o = sk_opts(1);
    o.prior_strength = 3.5;
    sako_engine *e = sk_open_opts(NULL, &o);
    sk_catalog(e);
    static const int64_t ids[] = {101, 111, 150, 201, 301, SK_INACTIVE_ID};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        sako_item_info info = sk_info(e, ids[i]);
        double m;
        ck_assert_ok(sako_category_prior(e, info.category_id, &m));
        ck_assert_double_eq(info.prior_mean, m);
        ck_assert_double_eq_tol(info.alpha, 3.5 * m, 1e-12);
        ck_assert_double_eq_tol(info.beta, 3.5 * (1.0 - m), 1e-12);
    }
    sako_close(e);
}
END_TEST

START_TEST(test_item_validation)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    struct {
        sako_item it;
        int want;
    } cases[] = {
        {{0, 0, 1, 0}, SAKO_INVALID},
        {{-1, 0, 1, 0}, SAKO_INVALID},
        {{SAKO_ID_MAX + 1, 0, 1, 0}, SAKO_INVALID},
        {{INT64_MIN, 0, 1, 0}, SAKO_INVALID},
        {{600, 99, 1, 0}, SAKO_NOTFOUND},          /* unknown category */
        {{600, -3, 1, 0}, SAKO_INVALID},           /* category id out of range */
        {{600, SAKO_ID_MAX + 1, 1, 0}, SAKO_INVALID},
        {{600, 0, 2, 0}, SAKO_INVALID},            /* active is 0 or 1 */
        {{600, 0, -1, 0}, SAKO_INVALID},
        {{600, 0, 1, -1}, SAKO_INVALID},           /* negative time */
        {{600, 0, 1, INT64_MIN}, SAKO_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* The bad entry sits at index 2 behind two good new items. */
        sako_item batch[3] = {{700, 11, 1, 0}, {701, 0, 0, 5}, cases[i].it};
        int rc = sako_items_upsert(e, batch, 3);
        ck_assert_msg(rc == cases[i].want, "case %zu: %d (%s), want %d", i, rc, sako_errstr(rc),
                      cases[i].want);
        ck_assert_errmsg_index(2);
    }
    sako_item dup[] = {{700, 11, 1, 0}, {701, 0, 0, 5}, {702, 0, 1, 0}, {701, 12, 1, 0}};
    ck_assert_rc(sako_items_upsert(e, dup, 4), SAKO_INVALID);
    ck_assert_errmsg_index(3);
    /* Nothing of the refused batches exists. */
    sako_item_info info;
    ck_assert_rc(sako_item_get(e, 700, &info), SAKO_NOTFOUND);
    ck_assert_rc(sako_item_get(e, 701, &info), SAKO_NOTFOUND);
    ck_assert_uint_eq(sk_stats(e).n_items, SK_N_ITEMS);
    /* Valid boundary ids. */
    sako_item edge[] = {{1, 0, 1, 0}, {SAKO_ID_MAX, 21, 1, 0}};
    ck_assert_ok(sako_items_upsert(e, edge, 2));
    ck_assert_int_eq(sk_info(e, SAKO_ID_MAX).category_id, 21);
    ck_assert_int_eq(sk_info(e, 1).category_id, 0);
    sako_close(e);
}
END_TEST

START_TEST(test_item_get_errors)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_item_info info;
    ck_assert_rc(sako_item_get(e, 0, &info), SAKO_INVALID);
    ck_assert_rc(sako_item_get(e, -7, &info), SAKO_INVALID);
    ck_assert_rc(sako_item_get(e, SAKO_ID_MAX + 1, &info), SAKO_INVALID);
    ck_assert_rc(sako_item_get(e, 999, &info), SAKO_NOTFOUND);
    ck_assert_rc(sako_item_get(e, SAKO_ID_MAX, &info), SAKO_NOTFOUND);
    ck_assert_rc(sako_category_prior(e, 0, NULL), SAKO_MISUSE);
    double m;
    ck_assert_rc(sako_category_prior(e, 999, &m), SAKO_NOTFOUND);
    ck_assert_rc(sako_category_prior(e, INT64_MIN, &m), SAKO_INVALID);
    sako_close(e);
}
END_TEST

/* An existing item keeps its evidence when its category or active flag changes;
 * its posterior then starts from the new category's prior. */
START_TEST(test_item_move_keeps_evidence)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev[64];
    size_t n = 0;
    sk_push(ev, &n, 1, 101, SAKO_EVENT_IMPRESSION, 20, 100);
    sk_push(ev, &n, 1, 101, SAKO_EVENT_CLICK, 5, 101);
    sk_push(ev, &n, 2, 101, SAKO_EVENT_PURCHASE, 2, 102);
    ck_assert_ok(sako_update(e, ev, n));
    sako_item_info before = sk_info(e, 101);

    sako_item moved = {101, 21, 0, 0};
    ck_assert_ok(sako_items_upsert(e, &moved, 1));
    sako_item_info after = sk_info(e, 101);
    ck_assert_int_eq(after.category_id, 21);
    ck_assert_int_eq(after.active, 0);
    ck_assert_int_eq(after.added_at, before.added_at); /* added_at 0 keeps the stored time */
    ck_assert_int_eq(after.last_event_at, before.last_event_at);
    ck_assert_double_eq(after.impressions, 20);
    ck_assert_double_eq(after.clicks, 5);
    ck_assert_double_eq(after.purchases, 2);
    double m;
    ck_assert_ok(sako_category_prior(e, 21, &m));
    ck_assert_double_eq(after.prior_mean, m);
    double strength = sk_options(e).prior_strength;
    ck_assert_double_eq_tol(after.alpha, strength * m + 0.7 * 5 + 1.0 * 2, 1e-12);
    ck_assert_double_eq_tol(after.beta, strength * (1 - m) + 15, 1e-12);
    sako_stats st = sk_stats(e);
    ck_assert_uint_eq(st.n_active_items, SK_N_ACTIVE - 1);
    ck_assert_uint_eq(st.n_items, SK_N_ITEMS);

    /* Reactivate, back home. */
    sako_item back = {101, 11, 1, 0};
    ck_assert_ok(sako_items_upsert(e, &back, 1));
    after = sk_info(e, 101);
    ck_assert(sk_same_info(&before, &after));
    ck_assert_uint_eq(sk_stats(e).n_active_items, SK_N_ACTIVE);
    sako_close(e);
}
END_TEST

/* Upserting the same inactive flag twice does not drift the active count. */
START_TEST(test_active_count_idempotent)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_item off = {102, 11, 0, 0};
    for (int i = 0; i < 3; i++)
        ck_assert_ok(sako_items_upsert(e, &off, 1));
    ck_assert_uint_eq(sk_stats(e).n_active_items, SK_N_ACTIVE - 1);
    sako_item on = {102, 11, 1, 0};
    for (int i = 0; i < 3; i++)
        ck_assert_ok(sako_items_upsert(e, &on, 1));
    ck_assert_uint_eq(sk_stats(e).n_active_items, SK_N_ACTIVE);
    sako_close(e);
}
END_TEST

Suite *suite_catalog(void)
{
    Suite *s = suite_create("catalog");
    TCase *tc = tcase_create("categories");
    tcase_add_test(tc, test_categories_basic);
    tcase_add_test(tc, test_category_id_bounds);
    tcase_add_test(tc, test_category_parent_rules);
    tcase_add_test(tc, test_category_cycles);
    tcase_add_test(tc, test_category_depth);
    tcase_add_test(tc, test_category_names);
    tcase_add_test(tc, test_category_name_utf8);
    tcase_add_test(tc, test_category_duplicates_and_atomicity);
    tcase_add_test(tc, test_catalog_batch_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("items");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_items_basic);
    tcase_add_test(tc, test_new_item_prior);
    tcase_add_test(tc, test_item_validation);
    tcase_add_test(tc, test_item_get_errors);
    tcase_add_test(tc, test_item_move_keeps_evidence);
    tcase_add_test(tc, test_active_count_idempotent);
    tcase_add_test(tc, test_items_max_batch);
    suite_add_tcase(s, tc);
    return s;
}
