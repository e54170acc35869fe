/* Error paths and edge cases that `make coverage` showed no other test reaching
 * (docs/reliability.md, "Branch coverage"): refusals of damaged stored state, bad
 * arguments of batches, degenerate catalogs. Each asserts the status, its message,
 * and that a refused call changed nothing. */
#include "check_sako.h"
#include "truncbeta_internal.h"

#define ED_T0 1700000000000LL

/* A stored log position below zero (a damaged or hand-edited file) is refused at open,
 * naming it, and the file is left as it was; put back, the file opens at it. */
START_TEST(test_negative_log_position_refused)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "edges-position");
    sako_options o = sk_opts(1);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event ev = { 7, 101, SAKO_EVENT_CLICK, ED_T0, 0 };
    int outcome = -1;
    ck_assert_ok(sako_update_at(e, 5, &ev, NULL, 1, &outcome));
    ck_assert_int_eq(outcome, SAKO_AT_APPLIED);
    sako_close(e);
    sk_sql_exec(path, "UPDATE sako_meta SET value = -3 WHERE key = 'log_position'");
    ck_assert_rc(sako_init(&e, path, &o), SAKO_CORRUPT);
    ck_assert_ptr_null(e);
    ck_assert_msg(strstr(sako_errmsg(), "log_position -3"), "%s", sako_errmsg());
    ck_assert_int_eq(sk_sql_int(path, "SELECT value FROM sako_meta WHERE key = 'log_position'"), -3);
    sk_sql_exec(path, "UPDATE sako_meta SET value = 5 WHERE key = 'log_position'");
    e = sk_open_opts(path, &o);
    int64_t pos = 0;
    ck_assert_ok(sako_log_position(e, &pos));
    ck_assert_int_eq(pos, 5);
    ck_assert_uint_eq(sk_stats(e).n_events, 1);
    sako_close(e);
    sk_remove_db(path);
}
END_TEST

/* Order ids outside [0, 2^53-1] refuse the whole batch, naming the entry. */
START_TEST(test_order_id_out_of_range)
{
    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev[3] = { { 1, 101, SAKO_EVENT_PURCHASE, ED_T0, 0 },
                         { 1, 102, SAKO_EVENT_PURCHASE, ED_T0, 0 },
                         { 2, 103, SAKO_EVENT_PURCHASE, ED_T0, 0 } };
    static const int64_t bad[] = { -1, 9007199254740992LL, INT64_MIN };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t orders[3] = { 10, 11, bad[i] };
        ck_assert_rc(sako_update_orders(e, ev, orders, 3), SAKO_INVALID);
        ck_assert_errmsg_index(2);
        ck_assert_ptr_nonnull(strstr(sako_errmsg(), "order_id"));
        ck_assert_uint_eq(sk_stats(e).n_events, 0);
    }
    int64_t orders[3] = { 10, 9007199254740991LL, 0 };
    ck_assert_ok(sako_update_orders(e, ev, orders, 3));
    ck_assert_uint_eq(sk_stats(e).n_events, 3);
    sako_close(e);
}
END_TEST

/* ------------------------------------------- stored matrix factors, damaged and resealed */

uint32_t sako__store_mf_chunk_checksum(int64_t serial, int part, int64_t chunk, const void *data,
                                      size_t bytes);

/* mf_seal(serial, part, chunk, data): the checksum libsako stores with a factor chunk,
 * so that a test can rewrite a chunk and have the loader, not the checksum, judge it. */
static void ed_mf_seal(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    uint32_t crc = sako__store_mf_chunk_checksum(
        sqlite3_value_int64(argv[0]), sqlite3_value_int(argv[1]), sqlite3_value_int64(argv[2]),
        sqlite3_value_blob(argv[3]), (size_t)sqlite3_value_bytes(argv[3]));
    sqlite3_result_int64(ctx, (int64_t)crc);
}

static void ed_sql_sealed(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_create_function(db, "mf_seal", 4, SQLITE_UTF8, NULL, ed_mf_seal, NULL,
                                             NULL), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
}

#define ED_MF_K 4

/* A file with a catalog of 12 items, 16 users' orders and a trained factorisation. */
static void ed_mf_file(const char *path, sako_options *o)
{
    *o = sk_opts(3);
    o->mf_factors = ED_MF_K;
    o->mf_iterations = 3;
    o->mf_mode = SAKO_MF_ON;
    o->mf_threads = 1;
    sako_engine *e = sk_open_opts(path, o);
    sako_category c = { 10, 0, "aisle" };
    ck_assert_ok(sako_categories_upsert(e, &c, 1));
    sako_item items[12];
    for (int i = 0; i < 12; i++)
        items[i] = (sako_item){ 500 + i, 10, 1, 1000 };
    ck_assert_ok(sako_items_upsert(e, items, 12));
    sako_event ev[16 * 6];
    int64_t orders[16 * 6];
    size_t n = 0;
    for (int u = 0; u < 16; u++)
        for (int j = 0; j < 6; j++, n++) {
            ev[n] = (sako_event){ 1 + u, 500 + (u * 5 + j * 7) % 12, SAKO_EVENT_PURCHASE,
                                  ED_T0 + u * 1000 + j, 0 };
            orders[n] = 100 + u * 10 + j / 3;
        }
    ck_assert_ok(sako_update_orders(e, ev, orders, n));
    ck_assert_ok(sako_retrain(e));
    sako_close(e);
    ck_assert_int_gt(sk_sql_int(path, "SELECT count(*) FROM mf_factors WHERE part = 1"), 0);
    ck_assert_int_gt(sk_sql_int(path, "SELECT count(*) FROM mf_factors WHERE part = 2"), 0);
}

/* Each damage, with the chunk's checksum made right again: the loader refuses the
 * file (SAKO_CORRUPT naming what is wrong) and leaves it as it was. */
START_TEST(test_damaged_factor_chunks_refused)
{
    /* Item records are 8 + 4k bytes (id, vector), user records 12 + 4k (id, events,
     * vector); the head's Gram matrix starts at byte 136 (1-based 137). */
    static const struct {
        const char *sql, *says;
    } cases[] = {
        { "UPDATE mf_factors SET data = substr(data, 1, 10) WHERE part = 0", "not a head" },
        { "UPDATE mf_factors SET data = x'00' || substr(data, 2) WHERE part = 0", "not a head" },
        { "UPDATE mf_factors SET data = substr(data, 1, 4) || x'00000000' || substr(data, 9)"
          " WHERE part = 0", "bad factor count" },
        { "UPDATE mf_factors SET data = substr(data, 1, 136) || x'000000000000F87F' ||"
          " substr(data, 145) WHERE part = 0", "not finite" },
        { "UPDATE mf_factors SET part = 7 WHERE part = 2 AND chunk = 0", "unknown part" },
        { "UPDATE mf_factors SET chunk = chunk + 5 WHERE part = 1 AND chunk = 0",
          "out of sequence" },
        { "UPDATE mf_factors SET data = substr(data, 1, 23) WHERE part = 1 AND chunk = 0",
          "cut short" },
        { "UPDATE mf_factors SET data = x'3F420F0000000000' || substr(data, 9)"
          " WHERE part = 1 AND chunk = 0", "not in the catalog" },
        { "UPDATE mf_factors SET data = substr(data, 1, 24) || substr(data, 1, 8) ||"
          " substr(data, 33) WHERE part = 1 AND chunk = 0", "twice" },
        { "UPDATE mf_factors SET data = x'3F420F0000000000' || substr(data, 9)"
          " WHERE part = 2 AND chunk = 0", "not in the log" },
        { "UPDATE mf_factors SET data = substr(data, 1, 28) || substr(data, 1, 8) ||"
          " substr(data, 37) WHERE part = 2 AND chunk = 0", "twice" },
        { "UPDATE mf_factors SET data = substr(data, 1, 24) WHERE part = 1 AND chunk = 0",
          "records" },
    };
    char path[512];
    sk_tmp_path(path, sizeof path, "edges-mf");
    sako_options o;
    ed_mf_file(path, &o);
    size_t len = 0;
    unsigned char *good = sk_read_file(path, &len);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sk_remove_db(path);
        sk_write_file(path, good, len);
        char sql[600];
        snprintf(sql, sizeof sql, "%s; UPDATE mf_factors SET checksum = mf_seal(serial, part, "
                 "chunk, data)", cases[i].sql);
        ed_sql_sealed(path, sql);
        int64_t sum = sk_sql_int(path, "SELECT sum(length(data)) + sum(checksum % 1000) FROM mf_factors");
        sako_engine *e = NULL;
        ck_assert_rc(sako_init(&e, path, &o), SAKO_CORRUPT);
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), cases[i].says) && strstr(sako_errmsg(), "matrix factors"),
                      "case %zu: %s", i, sako_errmsg());
        ck_assert_int_eq(sk_sql_int(path, "SELECT sum(length(data)) + sum(checksum % 1000) FROM mf_factors"),
                         sum);
    }
    /* The untouched file opens with its factors. */
    sk_remove_db(path);
    sk_write_file(path, good, len);
    sako_engine *e = sk_open_opts(path, &o);
    sako_factors_info fi;
    fi.version = SAKO_FACTORS_INFO_VERSION;
    ck_assert_ok(sako_factors_info_get(e, &fi));
    ck_assert_uint_eq(fi.factors, ED_MF_K);
    sako_close(e);
    free(good);
    sk_remove_db(path);
}
END_TEST

/* ------------------------------------------- the truncated Beta sampler at its limits */

/* Thresholds outside [0, 1] are clamped; a member never above t (p = 0) accepts only
 * SAKO_TB_NONE; an ordinary draw (SAKO_TB_ALL) serves t = 0 only; every envelope
 * method refuses an empty domain (t = 1); below t = 0 there is nothing but 0, below
 * t = 1 everything; a lower tail that underflows answers t itself. */
START_TEST(test_truncbeta_limits)
{
    sako_tbeta_dom d;
    sako__tbeta_dom_set(&d, 1.5);
    ck_assert_double_eq(d.t, 1.0);
    ck_assert_double_eq(d.s, 0.0);
    sako__tbeta_dom_set(&d, -0.25);
    ck_assert_double_eq(d.t, 0.0);
    sako__tbeta_dom_set(&d, NAN);
    ck_assert_double_eq(d.t, 0.0);
    ck_assert_double_eq(d.s, 1.0);

    sako_beta beta;
    sako__beta_set(&beta, 2.0, 3.0);
    double c = -1.0;
    sako__tbeta_dom_set(&d, 0.4);
    for (int m = 0; m < SAKO_TB_METHODS; m++) {
        ck_assert_double_eq(sako__tbeta_accept(&beta, &d, 0.0, m, &c), m == SAKO_TB_NONE ? 1.0 : 0.0);
        ck_assert_double_eq(c, 0.0);
    }
    ck_assert_double_eq(sako__tbeta_accept(&beta, &d, 0.5, SAKO_TB_ALL, &c), 0.0);
    sako__tbeta_dom_set(&d, 0.0);
    ck_assert_double_eq(sako__tbeta_accept(&beta, &d, 1.0, SAKO_TB_ALL, &c), 1.0);
    sako__tbeta_dom_set(&d, 1.0);
    for (int m = SAKO_TB_A1; m < SAKO_TB_METHODS; m++)
        if (m != SAKO_TB_REJECT && m != SAKO_TB_SLOW)
            ck_assert_double_eq(sako__tbeta_accept(&beta, &d, 1e-9, m, &c), 0.0);

    sako_rng rng;
    sako__rng_seed(&rng, 5);
    sako__tbeta_dom_set(&d, 0.0);
    ck_assert_double_eq(sako__tbeta_lower(&beta, &d, 1.0, &rng), 0.0);
    sako__tbeta_dom_set(&d, 1.0);
    for (int i = 0; i < 100; i++) {
        double x = sako__tbeta_lower(&beta, &d, 0.0, &rng);
        ck_assert(x >= 0.0 && x <= 1.0);
    }
    /* P(X <= 1e-300) of Beta(2000, 1) is 1e-600000: 0 in double; the draw is t. */
    sako__beta_set(&beta, 2000.0, 1.0);
    sako__tbeta_dom_set(&d, 1e-300);
    ck_assert_double_eq(sako__tbeta_lower(&beta, &d, 1.0, &rng), 1e-300);
    /* SAKO_TB_NONE above t: the limit t. */
    sako__tbeta_dom_set(&d, 0.75);
    ck_assert_double_eq(sako__tbeta_upper(&beta, &d, 0.0, SAKO_TB_NONE, 0.0, &rng), 0.75);
}
END_TEST

/* ------------------------------------------- reconfiguring one matrix option at a time */

/* With `reconfigure`, each matrix factorisation option alone differing from the stored
 * one replaces it (sako_options_get says so, and a plain reopen keeps it); without
 * `reconfigure` the stored value wins. */
START_TEST(test_reconfigure_each_mf_option)
{
    char path[512];
    sk_tmp_path(path, sizeof path, "edges-reconf");
    sako_options base = sk_opts(2);
    base.mf_factors = 4;
    base.mf_iterations = 3;
    base.mf_cg_steps = 2;
    base.mf_regularization = 0.1;
    base.mf_alpha = 1.5;
    base.mf_seed = 9;
    base.mf_mode = SAKO_MF_ON;
    base.mf_min_users = 10;
    base.mf_min_user_items = 3;
    base.mf_weight = 0.5;
    base.mf_candidates = 50;
    sako_engine *e = sk_open_opts(path, &base);
    sk_catalog(e);
    sako_close(e);
    for (int f = 0; f < 11; f++) {
        sako_options o = base;
        switch (f) {
        case 0: o.mf_factors = 6; break;
        case 1: o.mf_iterations = 4; break;
        case 2: o.mf_cg_steps = 3; break;
        case 3: o.mf_regularization = 0.2; break;
        case 4: o.mf_alpha = 2.5; break;
        case 5: o.mf_seed = 10; break;
        case 6: o.mf_mode = SAKO_MF_AUTO; break;
        case 7: o.mf_min_users = 11; break;
        case 8: o.mf_min_user_items = 4; break;
        case 9: o.mf_weight = 0.75; break;
        default: o.mf_candidates = 60; break;
        }
        /* Not asked to reconfigure: the stored options win. */
        e = sk_open_opts(path, &o);
        sako_options got = SAKO_OPTIONS_INIT;
        ck_assert_ok(sako_options_get(e, &got));
        ck_assert_uint_eq(got.mf_factors, base.mf_factors);
        ck_assert_uint_eq(got.mf_candidates, base.mf_candidates);
        ck_assert_double_eq(got.mf_weight, base.mf_weight);
        sako_close(e);
        o.reconfigure = 1;
        e = sk_open_opts(path, &o);
        sako_close(e);
        sako_options plain = base; /* a plain reopen keeps what was stored */
        e = sk_open_opts(path, &plain);
        ck_assert_ok(sako_options_get(e, &got));
        ck_assert_msg(got.mf_factors == o.mf_factors && got.mf_iterations == o.mf_iterations &&
                      got.mf_cg_steps == o.mf_cg_steps &&
                      got.mf_regularization == o.mf_regularization &&
                      got.mf_alpha == o.mf_alpha && got.mf_seed == o.mf_seed &&
                      got.mf_mode == o.mf_mode && got.mf_min_users == o.mf_min_users &&
                      got.mf_min_user_items == o.mf_min_user_items &&
                      got.mf_weight == o.mf_weight && got.mf_candidates == o.mf_candidates,
                      "option %d not stored by reconfigure", f);
        sako_close(e);
        /* back to the base for the next option */
        base.reconfigure = 1;
        e = sk_open_opts(path, &base);
        sako_close(e);
        base.reconfigure = 0;
    }
    sk_remove_db(path);
}
END_TEST

/* ------------------------------------------- sampling domains after an item moves */

static int ed_recommends(sako_engine *e, int64_t category, int64_t item, int queries)
{
    int seen = 0;
    for (int q = 0; q < queries; q++) {
        sako_query qu = SAKO_QUERY_INIT;
        qu.k = 20;
        qu.category_id = category;
        sako_rec out[20];
        size_t n = 0;
        ck_assert_ok(sako_recommend(e, &qu, out, 20, &n));
        ck_assert_uint_eq(n, 20);
        for (size_t i = 0; i < n; i++)
            seen += out[i].item_id == item;
    }
    return seen;
}

/* Two departments large enough for sampling domains of their own (>= 256 active
 * items each): an item moved from one to the other leaves the first's domain and
 * joins the second's; a deactivated one leaves every domain. Item 1000 has 60
 * purchases (posterior mean near 1), so wherever it may be recommended it is. */
START_TEST(test_domains_follow_moved_items)
{
    sako_engine *e = sk_open_mem(4);
    sako_category c[2] = { { 1, 0, "one" }, { 2, 0, "two" } };
    ck_assert_ok(sako_categories_upsert(e, c, 2));
    static sako_item items[600];
    for (int i = 0; i < 600; i++)
        items[i] = (sako_item){ 1000 + i, i < 300 ? 1 : 2, 1, 1000 };
    ck_assert_ok(sako_items_upsert(e, items, 600));
    sako_event ev[120];
    for (int j = 0; j < 120; j++)
        ev[j] = (sako_event){ 1 + j, j < 60 ? 1000 : 1001, SAKO_EVENT_PURCHASE, ED_T0 + j, 0 };
    ck_assert_ok(sako_update(e, ev, 120));
    ck_assert_ok(sako_retrain(e));
    ck_assert_int_eq(ed_recommends(e, 1, 1000, 5), 5);
    ck_assert_int_eq(ed_recommends(e, 2, 1000, 5), 0);
    /* 1000 moves to department 2. */
    sako_item moved = { 1000, 2, 1, 1000 };
    ck_assert_ok(sako_items_upsert(e, &moved, 1));
    ck_assert_int_eq(ed_recommends(e, 1, 1000, 5), 0);
    ck_assert_int_eq(ed_recommends(e, 2, 1000, 5), 5);
    /* 1001 (also strong) deactivated: gone from its department and from the root. */
    ck_assert_int_eq(ed_recommends(e, 1, 1001, 5), 5);
    sako_item off = { 1001, 1, 0, 1000 };
    ck_assert_ok(sako_items_upsert(e, &off, 1));
    ck_assert_int_eq(ed_recommends(e, 1, 1001, 5), 0);
    ck_assert_int_eq(ed_recommends(e, 0, 1001, 5), 0);
    ck_assert_int_eq(ed_recommends(e, 0, 1000, 5), 5);
    sako_close(e);
}
END_TEST

/* Stored metadata out of its range (a damaged or hand-edited file): open refuses it
 * with SAKO_CORRUPT and its message, leaves the file as it was (the value still
 * there, no new lock file), and with the value put back the file opens to the
 * same state. */
START_TEST(test_damaged_meta_values_refused)
{
    static const struct { const char *key, *bad, *msg; } cases[] = {
        { "root_mean", "0", "invalid model parameters" },
        { "root_mean", "1", "invalid model parameters" },
        { "checkpoint_batch", "-1", "invalid model parameters" },
        { "model_version", "-1", "invalid model parameters" },
        { "compact_batch", "-1", "invalid model parameters" },
        { "compact_events", "-1", "invalid model parameters" },
        { "compact_batch", "1000000", "invalid model parameters" }, /* past the checkpoint */
        { "demand_calibration", "0", "invalid demand epoch" },
        { "demand_baskets", "0.5", "invalid demand epoch" },
        { "demand_root_mean", "1.5", "invalid demand epoch" },
        { "demand_root_strength", "-1", "invalid demand epoch" },
        { "policy_activated_batch", "-1", "invalid retrain policy" },
        { "policy_activated_at", "-1", "invalid retrain policy" },
    };
    char path[512], sql[256], lock[600];
    sk_tmp_path(path, sizeof path, "edges-meta");
    snprintf(lock, sizeof lock, "%s-lock", path);
    sako_options o = sk_opts(3);
    sako_engine *e = sk_open_opts(path, &o);
    sk_catalog(e);
    sako_event ev[4] = { { 7, 101, SAKO_EVENT_PURCHASE, ED_T0, 0 },
                         { 7, 102, SAKO_EVENT_CLICK, ED_T0 + 1, 0 },
                         { 8, 101, SAKO_EVENT_IMPRESSION, ED_T0 + 2, 0 },
                         { 8, 103, SAKO_EVENT_PURCHASE, ED_T0 + 3, 0 } };
    ck_assert_ok(sako_update(e, ev, 4));
    ck_assert_ok(sako_retrain(e));
    sako_stats want = sk_stats(e);
    sako_close(e);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sako_meta WHERE key = '%s'", cases[i].key);
        ck_assert_msg(sk_sql_int(path, sql) == 1, "no meta key %s", cases[i].key);
        /* the value as stored, text, to put back exactly */
        sqlite3 *db;
        ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
        sqlite3_stmt *st;
        snprintf(sql, sizeof sql, "SELECT quote(value) FROM sako_meta WHERE key = '%s'", cases[i].key);
        ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        char old[64];
        snprintf(old, sizeof old, "%s", (const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);

        snprintf(sql, sizeof sql, "UPDATE sako_meta SET value = %s WHERE key = '%s'", cases[i].bad,
                 cases[i].key);
        sk_sql_exec(path, sql);
        int had_lock = access(lock, F_OK) == 0; /* a clean close leaves the lock file */
        ck_assert_msg(sako_init(&e, path, &o) == SAKO_CORRUPT, "%s = %s: %s", cases[i].key,
                      cases[i].bad, sako_errmsg());
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), cases[i].msg), "%s = %s: %s", cases[i].key,
                      cases[i].bad, sako_errmsg());
        ck_assert_int_eq(access(lock, F_OK) == 0, had_lock);
        snprintf(sql, sizeof sql, "SELECT value = %s FROM sako_meta WHERE key = '%s'", cases[i].bad,
                 cases[i].key);
        ck_assert_int_eq(sk_sql_int(path, sql), 1);
        snprintf(sql, sizeof sql, "UPDATE sako_meta SET value = %s WHERE key = '%s'", old,
                 cases[i].key);
        sk_sql_exec(path, sql);
        e = sk_open_opts(path, &o);
        sako_stats got = sk_stats(e);
        ck_assert(sk_same_stats(&want, &got));
        sako_close(e);
    }
    sk_remove_db(path);
}
END_TEST

/* The sides of range checks no other test reached (mostly the upper bounds): each
 * value refused with SAKO_INVALID naming the field (SAKO_MISUSE for a NULL list),
 * nothing opened, stored or changed; the bound itself accepted where it is cheap to
 * show. */
static void ed_set_iter(sako_options *o) { o->mf_iterations = 10001; }
static void ed_set_reg_nan(sako_options *o) { o->mf_regularization = NAN; }
static void ed_set_reg_big(sako_options *o) { o->mf_regularization = 2e6; }
static void ed_set_alpha_nan(sako_options *o) { o->mf_alpha = NAN; }
static void ed_set_alpha_big(sako_options *o) { o->mf_alpha = 2e6; }
static void ed_set_cg0(sako_options *o) { o->mf_cg_steps = 0; }
static void ed_set_min_users(sako_options *o) { o->mf_min_users = 1000000001; }
static void ed_set_min_items(sako_options *o) { o->mf_min_user_items = 1000001; }
static void ed_set_weight_neg(sako_options *o) { o->mf_weight = -0.5; }
static void ed_set_weight_big(sako_options *o) { o->mf_weight = 10.5; }

START_TEST(test_range_sides_refused)
{
    static const struct { const char *field; void (*set)(sako_options *); } opts[] = {
        { "mf_iterations", ed_set_iter },       { "mf_regularization", ed_set_reg_nan },
        { "mf_regularization", ed_set_reg_big }, { "mf_alpha", ed_set_alpha_nan },
        { "mf_alpha", ed_set_alpha_big },       { "mf_cg_steps", ed_set_cg0 },
        { "mf_min_users", ed_set_min_users },   { "mf_min_user_items", ed_set_min_items },
        { "mf_weight", ed_set_weight_neg },     { "mf_weight", ed_set_weight_big },
    };
    char path[512];
    sk_tmp_path(path, sizeof path, "edges-range");
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        sako_options o = sk_opts(1);
        opts[i].set(&o);
        sako_engine *e = (sako_engine *)1;
        ck_assert_rc(sako_init(&e, path, &o), SAKO_INVALID);
        ck_assert_ptr_null(e);
        ck_assert_msg(strstr(sako_errmsg(), opts[i].field), "%s: %s", opts[i].field, sako_errmsg());
        ck_assert_msg(access(path, F_OK) != 0, "%s: a refused open created the file", opts[i].field);
    }

    sako_engine *e = sk_open_mem(1);
    sk_catalog(e);
    sako_event ev = { 7, 101, SAKO_EVENT_PURCHASE, ED_T0, 0 };
    ck_assert_ok(sako_update(e, &ev, 1));
    sako_stats before = sk_stats(e);

    /* events: a time past 9999-12-31 */
    sako_event late[2] = { { 7, 102, SAKO_EVENT_CLICK, ED_T0, 0 },
                           { 7, 102, SAKO_EVENT_CLICK, SAKO_TIME_MAX + 1, 0 } };
    ck_assert_rc(sako_update(e, late, 2), SAKO_INVALID);
    ck_assert_errmsg_index(1);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "time"));
    late[1].time = SAKO_TIME_MAX;
    ck_assert_ok(sako_update(e, late, 2));
    before = sk_stats(e);

    /* queries: a negative mode, a time past the limit, a NULL recent list */
    sako_rec out[5];
    size_t n = 77;
    sako_query q = SAKO_QUERY_INIT;
    q.k = 5;
    q.mode = -1;
    ck_assert_rc(sako_recommend(e, &q, out, 5, &n), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "mode -1"));
    q.mode = 0;
    q.time = SAKO_TIME_MAX + 1;
    ck_assert_rc(sako_recommend(e, &q, out, 5, &n), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "time"));
    q.time = 0;
    q.n_recent = 2; /* recent left NULL */
    ck_assert_rc(sako_recommend(e, &q, out, 5, &n), SAKO_MISUSE);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "NULL list"));

    /* compaction: keep_days past 1e6 */
    sako_compact_options co = SAKO_COMPACT_OPTIONS_INIT;
    co.keep_days = 1.5e6;
    sako_compact_report cr;
    ck_assert_rc(sako_compact(e, &co, &cr), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "keep_days"));

    /* the retrain policy: the gate's counts above 2^53-1 */
    sako_policy was = SAKO_POLICY_INIT;
    ck_assert_ok(sako_policy_get(e, &was));
    for (int which = 0; which < 2; which++) {
        sako_policy p = SAKO_POLICY_INIT;
        if (which == 0)
            p.gate_holdout_events = SAKO_POLICY_MAX + 1;
        else
            p.gate_min_baskets = SAKO_POLICY_MAX + 1;
        ck_assert_rc(sako_policy_set(e, &p), SAKO_INVALID);
        ck_assert_ptr_nonnull(strstr(sako_errmsg(), "gate_holdout_events or gate_min_baskets"));
        sako_policy now = SAKO_POLICY_INIT;
        ck_assert_ok(sako_policy_get(e, &now));
        ck_assert_uint_eq(now.gate_holdout_events, was.gate_holdout_events);
        ck_assert_uint_eq(now.gate_min_baskets, was.gate_min_baskets);
    }

    sako_stats after = sk_stats(e);
    ck_assert(sk_same_stats(&before, &after));
    sako_close(e);

    /* the standalone solver: alpha past 1e12 */
    sako_mf_options mo = SAKO_MF_OPTIONS_INIT;
    mo.factors = 2;
    mo.cg_steps = 1;
    mo.alpha = 2e12;
    int64_t indptr[2] = { 0, 1 };
    int32_t indices[1] = { 0 };
    float values[1] = { 1.0f };
    sako_csr r = { 1, 1, indptr, indices, values };
    float uf[2] = { 5, 5 }, itf[2] = { 5, 5 };
    ck_assert_rc(sako_mf_fit(&r, &mo, uf, itf), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "alpha"));
    mo.alpha = 1e12;
    ck_assert_ok(sako_mf_fit(&r, &mo, uf, itf));
}
END_TEST

/* A database whose path holds the characters a "file:" URI would read as an escape,
 * a query or a fragment ('%', '?', '#'): sako_verify (which opens the file through an
 * immutable URI) checks that file, not another, and counts its batches. */
START_TEST(test_verify_path_with_uri_characters)
{
    char plain[512], odd[600];
    sk_tmp_path(plain, sizeof plain, "edges-uri");
    snprintf(odd, sizeof odd, "%.*s%%41?immutable=0#x.db", (int)(strlen(plain) - 3), plain);
    sk_remove_db(odd);
    sako_options o = sk_opts(1);
    sako_engine *e = sk_open_opts(odd, &o);
    sk_catalog(e);
    sako_event ev[3] = { { 7, 101, SAKO_EVENT_PURCHASE, ED_T0, 0 },
                         { 8, 102, SAKO_EVENT_CLICK, ED_T0 + 1, 0 },
                         { 9, 103, SAKO_EVENT_IMPRESSION, ED_T0 + 2, 0 } };
    ck_assert_ok(sako_update(e, ev, 2));
    ck_assert_ok(sako_update(e, ev + 2, 1));
    sako_close(e);
    size_t len_before = 0;
    unsigned char *before = sk_read_file(odd, &len_before);
    sako_verify_report rep;
    memset(&rep, 0, sizeof rep);
    ck_assert_ok(sako_verify(odd, &rep));
    ck_assert_uint_eq(rep.n_batches, 2);
    ck_assert_uint_eq(rep.n_events, 3);
    size_t len_after = 0;
    unsigned char *after = sk_read_file(odd, &len_after);
    ck_assert_uint_eq(len_after, len_before);
    ck_assert_int_eq(memcmp(before, after, len_before), 0);
    free(before);
    free(after);
    /* the plain prefix is another (absent) file: the URI did not cut the path short */
    ck_assert_int_ne(access(plain, F_OK), 0);
    sk_remove_db(odd);
}
END_TEST

/* sako_options_get for a caller built against 0.3 or 0.4 (struct version 3): the
 * fields it has are filled, the bytes past them (beyond its struct) left alone; and
 * sako_user_item_get refuses ids out of range on either side. */
START_TEST(test_options_v3_and_user_item_ids)
{
    sako_options o = sk_opts(5);
    o.half_life_days = 12.5;
    o.mf_factors = 16; /* a 0.5 field: a version-3 caller has no room for it */
    sako_engine *e = sk_open_opts(NULL, &o);
    sako_options got;
    memset(&got, 0xA5, sizeof got);
    got.version = 3;
    ck_assert_ok(sako_options_get(e, &got));
    ck_assert_uint_eq(got.version, 3);
    ck_assert_uint_eq(got.seed, 5);
    ck_assert(got.half_life_days == 12.5);
    const unsigned char *tail = (const unsigned char *)&got + offsetof(sako_options, mf_factors);
    for (size_t i = 0; i < sizeof got - offsetof(sako_options, mf_factors); i++)
        ck_assert_msg(tail[i] == 0xA5, "byte %zu past a version-3 struct was written", i);

    sk_catalog(e);
    sako_event ev = { 7, 101, SAKO_EVENT_PURCHASE, ED_T0, 0 };
    ck_assert_ok(sako_update(e, &ev, 1));
    sako_user_item ui;
    ck_assert_rc(sako_user_item_get(e, 0, 101, &ui), SAKO_INVALID);
    ck_assert_ptr_nonnull(strstr(sako_errmsg(), "out of range"));
    ck_assert_rc(sako_user_item_get(e, 7, -101, &ui), SAKO_INVALID);
    ck_assert_rc(sako_user_item_get(e, 9007199254740992LL, 101, &ui), SAKO_INVALID);
    ck_assert_ok(sako_user_item_get(e, 7, 101, &ui));
    ck_assert_int_eq(ui.item_id, 101);
    sako_close(e);
}
END_TEST

Suite *suite_edges(void)
{
    Suite *s = suite_create("edges");
    TCase *tc = tcase_create("edges");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_negative_log_position_refused);
    tcase_add_test(tc, test_order_id_out_of_range);
    tcase_add_test(tc, test_damaged_factor_chunks_refused);
    tcase_add_test(tc, test_truncbeta_limits);
    tcase_add_test(tc, test_reconfigure_each_mf_option);
    tcase_add_test(tc, test_domains_follow_moved_items);
    tcase_add_test(tc, test_damaged_meta_values_refused);
    tcase_add_test(tc, test_range_sides_refused);
    tcase_add_test(tc, test_verify_path_with_uri_characters);
    tcase_add_test(tc, test_options_v3_and_user_item_ids);
    suite_add_tcase(s, tc);
    return s;
}
