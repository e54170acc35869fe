/* libFuzzer target: a sequence of public calls with arguments (bad ones included) on
 * one new engine (in memory, or on a file copied from a template; see below). Every status must be a documented one with a message on
 * failure, and what the engine answers must hold together: recommendations are
 * catalog items, active, not under the root when a category is asked, not excluded,
 * distinct, sorted, with scores in [0, 1]; counts add up. A broken invariant aborts (a finding). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_file.h"
#include "memdb.h"
#include "provider.h"
#include "sako.h"

#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "fuzz_api: " __VA_ARGS__);            \
            fprintf(stderr, " (%s)\n", sako_errmsg());            \
            abort();                                              \
        }                                                         \
    } while (0)

#define IDS 64 /* item, user and category ids mostly fall in 1..IDS */

static void check_status(int rc, const char *call)
{
    CHECK(rc <= 0 && rc >= SAKO_VERSION, "%s returned %d, not a sako_status", call, rc);
    if (rc != SAKO_OK)
        CHECK(sako_errmsg()[0] != '\0', "%s returned %s without a message", call, sako_errstr(rc));
}

/* A query for a category never returns an item under the catalog root (the exact
 * subtree is checked by the unit tests; the API does not expose a category's parent). */
static int in_category(int64_t item_cat, int64_t cat)
{
    return cat == 0 || item_cat != 0;
}

static void op_recommend(sako_engine *e, provider *in)
{
    sako_query q = SAKO_QUERY_INIT;
    int64_t exclude[8], recent[8];
    uint8_t flags = take_u8(in);
    q.user_id = take_id(in, IDS);
    q.k = (flags & 1) ? (int)(int8_t)take_u8(in) * 20 : (int)(take_u8(in) % 24);
    q.category_id = (flags & 2) ? take_id(in, 12) : 0;
    q.n_exclude = take_u8(in) % 9;
    for (size_t i = 0; i < q.n_exclude; i++)
        exclude[i] = take_id(in, IDS);
    q.exclude = (flags & 4) && q.n_exclude ? NULL : exclude;
    q.n_recent = take_u8(in) % 9;
    for (size_t i = 0; i < q.n_recent; i++)
        recent[i] = take_id(in, IDS);
    q.recent = recent;
    q.mode = (flags & 8) ? (int)(take_u8(in) % 5) - 1 : SAKO_MODE_MIXED;
    if (flags & 16) /* a day, or an extreme value */
        q.time = take_u8(in) % 4 ? 1700000000000LL + (int64_t)take_u64(in, 2) * 86400000LL
                                 : take_id(in, 1);
    if (flags & 32)
        q.version = take_u8(in) % 4;
    sako_rec out[64];
    size_t cap = (flags & 64) ? take_u8(in) % 65 : 64;
    size_t n = 999;
    int rc = sako_recommend(e, &q, out, cap, &n);
    check_status(rc, "sako_recommend");
    if (rc != SAKO_OK)
        return;
    CHECK(n <= (size_t)q.k && n <= cap, "recommend gave %zu for k %d cap %zu", n, q.k, cap);
    for (size_t i = 0; i < n; i++) {
        sako_item_info it;
        CHECK(sako_item_get(e, out[i].item_id, &it) == SAKO_OK, "recommended unknown item %lld",
              (long long)out[i].item_id);
        CHECK(it.active, "recommended inactive item %lld", (long long)out[i].item_id);
        CHECK(in_category(it.category_id, q.category_id), "item %lld outside category %lld",
              (long long)out[i].item_id, (long long)q.category_id);
        CHECK(out[i].score >= 0.0 && out[i].score <= 1.0, "score %g", out[i].score);
        CHECK(out[i].source >= 1 && out[i].source < SAKO_SOURCES, "source %d", out[i].source);
        CHECK(i == 0 || out[i - 1].score >= out[i].score, "scores not sorted");
        for (size_t j = 0; j < q.n_exclude; j++)
            CHECK(out[i].item_id != exclude[j], "returned excluded item %lld",
                  (long long)exclude[j]);
        for (size_t j = 0; j < i; j++)
            CHECK(out[i].item_id != out[j].item_id, "item %lld twice", (long long)out[i].item_id);
    }
}

static void op_update(sako_engine *e, provider *in, int with_orders)
{
    sako_event ev[32];
    int64_t orders[32];
    size_t n = take_u8(in) % 33;
    for (size_t i = 0; i < n; i++) {
        uint8_t t = take_u8(in);
        ev[i].user_id = (t & 0x80) ? take_id(in, IDS) : 1 + t % 8;
        ev[i].item_id = take_id(in, IDS);
        ev[i].type = (t & 0x40) ? (int)(int8_t)take_u8(in) : (int)(t % 4);
        ev[i].time = (t & 0x20) ? take_id(in, 1LL << 40)
                                : 1700000000000LL + (int64_t)take_u64(in, 3) * 60000;
        ev[i].rec_id = (t & 0x10) ? take_id(in, IDS) : 0;
        orders[i] = (t & 0x08) ? take_id(in, 16) : 0;
    }
    uint64_t before = 0;
    sako_stats st;
    sako_stats_get(e, &st);
    before = st.n_events;
    int rc = with_orders ? sako_update_orders(e, n ? ev : NULL, orders, n)
                         : sako_update(e, n ? ev : NULL, n);
    check_status(rc, "sako_update");
    sako_stats_get(e, &st);
    if (rc == SAKO_OK)
        CHECK(st.n_events == before + n, "n_events %llu after %llu + %zu",
              (unsigned long long)st.n_events, (unsigned long long)before, n);
    else
        CHECK(st.n_events == before, "a refused batch changed n_events");
}

static void op_catalog(sako_engine *e, provider *in)
{
    uint8_t kind = take_u8(in);
    size_t n = take_u8(in) % 9;
    if (kind & 1) {
        sako_category cats[8];
        char names[8][8];
        for (size_t i = 0; i < n; i++) {
            cats[i].id = take_id(in, 12);
            cats[i].parent_id = take_u8(in) % 3 ? take_id(in, 12) : 0;
            uint8_t nm = take_u8(in);
            snprintf(names[i], sizeof names[i], "c%u", nm);
            if (nm == 255)
                names[i][0] = (char)0xff; /* not UTF-8 */
            cats[i].name = nm % 7 == 0 ? NULL : names[i];
        }
        check_status(sako_categories_upsert(e, n ? cats : NULL, n), "sako_categories_upsert");
    } else {
        sako_item items[8];
        for (size_t i = 0; i < n; i++) {
            items[i].id = take_id(in, IDS);
            items[i].category_id = take_u8(in) % 3 ? take_id(in, 12) : 0;
            items[i].active = take_u8(in) % 5 != 0;
            items[i].added_at = take_u8(in) % 4 ? 1700000000000LL : take_id(in, 1LL << 44);
        }
        check_status(sako_items_upsert(e, n ? items : NULL, n), "sako_items_upsert");
    }
}

static void op_introspect(sako_engine *e, provider *in)
{
    sako_item_info it;
    sako_user_info u;
    sako_user_item ui;
    double mean;
    int rc = sako_item_get(e, take_id(in, IDS), &it);
    check_status(rc, "sako_item_get");
    if (rc == SAKO_OK)
        CHECK(it.alpha > 0 && it.beta > 0 && isfinite(it.alpha) && isfinite(it.beta) &&
              it.prior_mean > 0 && it.prior_mean < 1, "item %lld posterior Beta(%g, %g) prior %g",
              (long long)it.id, it.alpha, it.beta, it.prior_mean);
    rc = sako_user_get(e, take_id(in, IDS), &u);
    check_status(rc, "sako_user_get");
    if (rc == SAKO_OK)
        CHECK(u.n_events > 0 && u.weight >= 0 && isfinite(u.weight), "user %lld", (long long)u.id);
    check_status(sako_user_item_get(e, take_id(in, IDS), take_id(in, IDS), &ui), "sako_user_item_get");
    rc = sako_category_prior(e, take_id(in, 12), &mean);
    check_status(rc, "sako_category_prior");
    if (rc == SAKO_OK)
        CHECK(mean > 0 && mean < 1, "category prior mean %g", mean);
    sako_stats st;
    CHECK(sako_stats_get(e, &st) == SAKO_OK, "stats");
    CHECK(st.n_active_items <= st.n_items, "active %llu of %llu items",
          (unsigned long long)st.n_active_items, (unsigned long long)st.n_items);
    CHECK(st.global_mean > 0 && st.global_mean < 1, "global mean %g", st.global_mean);
    sako_retrain_status rs;
    CHECK(sako_retrain_due(e, &rs) == SAKO_OK && rs.reason != NULL, "retrain_due");
    sako_options o = SAKO_OPTIONS_INIT;
    CHECK(sako_options_get(e, &o) == SAKO_OK, "options_get");
    int ready;
    CHECK(sako_ready(e, &ready) == SAKO_OK && ready == 1, "ready");
}

/* Field by field: a struct copy may carry any padding (after `version`), so memcmp
 * could see a change where there is none. */
static int same_policy(const sako_policy *a, const sako_policy *b)
{
    return a->version == b->version && a->every_events == b->every_events &&
           a->every_seconds == b->every_seconds &&
           memcmp(&a->drift_fraction, &b->drift_fraction, sizeof a->drift_fraction) == 0 &&
           a->drift_window == b->drift_window &&
           a->drift_min_impressions == b->drift_min_impressions &&
           memcmp(&a->gate_margin, &b->gate_margin, sizeof a->gate_margin) == 0 &&
           a->gate_holdout_events == b->gate_holdout_events &&
           memcmp(&a->gate_holdout_fraction, &b->gate_holdout_fraction,
                  sizeof a->gate_holdout_fraction) == 0 &&
           a->gate_min_baskets == b->gate_min_baskets && a->keep_versions == b->keep_versions;
}

static void op_policy(sako_engine *e, provider *in)
{
    sako_policy p = SAKO_POLICY_INIT;
    uint8_t f = take_u8(in);
    if (f & 1)
        p.every_events = take_u64(in, f & 2 ? 8 : 2);
    if (f & 4)
        p.drift_fraction = take_double(in);
    if (f & 8)
        p.drift_window = take_u64(in, f & 16 ? 8 : 2);
    if (f & 32)
        p.drift_min_impressions = take_u64(in, 2);
    if (f & 64)
        p.version = take_u8(in);
    sako_policy before = SAKO_POLICY_INIT, after = SAKO_POLICY_INIT; /* get fills the version asked */
    sako_policy_get(e, &before);
    int rc = sako_policy_set(e, &p);
    check_status(rc, "sako_policy_set");
    sako_policy_get(e, &after);
    if (rc != SAKO_OK)
        CHECK(same_policy(&before, &after), "a refused policy changed the policy");
}

/* The engine: new and in memory, as the target always had; or, when bit 7 of the
 * first byte is set, on a file, so that the file-only paths (the retrain reading the
 * log on a second connection, the WAL, the checkpoint at close) are fuzzed too. Either
 * starts from a template made once per set of stored options (what a database keeps:
 * the model fields; the seed and unknown_items are given at each open): a file engine
 * opens a copy of the file a new engine made, an in-memory engine a copy of the image
 * a new in-memory engine had (memdb.h). Running the schema per input cost ~85 % of a
 * short input and held the target under 100 executions a second (docs/reliability.md,
 * "Fuzzing"). */
typedef struct template_key {
    double reward_click, decay_half_life_days;
    uint64_t prior_refresh_events, demand_min_purchases;
    int prior, personal, organic_demand, in_memory;
} template_key;

#define TEMPLATES 64

static struct template {
    template_key key;
    memdb_image img;
} templates[TEMPLATES];
static size_t n_templates, next_template;

static template_key key_of(const sako_options *o, int in_memory)
{
    template_key k;
    memset(&k, 0, sizeof k); /* padding too: keys are compared with memcmp */
    k.reward_click = o->reward_click;
    k.decay_half_life_days = o->decay_half_life_days;
    k.prior_refresh_events = o->prior_refresh_events;
    k.demand_min_purchases = o->demand_min_purchases;
    k.prior = o->prior;
    k.personal = o->personal;
    k.organic_demand = o->organic_demand;
    k.in_memory = in_memory;
    return k;
}

/* The database a new engine with these options makes (in memory or on `path`), or
 * NULL when sako_init refuses the options (its status checked here). */
static struct template *template_for(const sako_options *o, int in_memory, const char *path)
{
    template_key k = key_of(o, in_memory);
    for (size_t i = 0; i < n_templates; i++)
        if (memcmp(&templates[i].key, &k, sizeof k) == 0)
            return &templates[i];
    memdb_install();
    if (!in_memory)
        fuzz_remove(path);
    sako_engine *e = NULL;
    int rc = sako_init(&e, in_memory ? NULL : path, o);
    check_status(rc, "sako_init");
    if (rc != SAKO_OK) {
        CHECK(e == NULL, "a failed sako_init set *out");
        if (!in_memory)
            fuzz_remove(path);
        return NULL;
    }
    memdb_image img = { NULL, 0 };
    if (in_memory)
        img = memdb_capture(memdb_last); /* the engine's connection, opened last */
    sako_close(e);
    if (!in_memory) {
        img = fuzz_read(path);
        fuzz_remove(path);
    }
    struct template *t = &templates[n_templates < TEMPLATES ? n_templates++ : next_template++ % TEMPLATES];
    free(t->img.bytes);
    t->key = k;
    t->img = img;
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    provider in = { data, size };
    sako_options o = SAKO_OPTIONS_INIT;
    uint8_t f = take_u8(&in);
    o.seed = 1 + take_u8(&in);
    o.unknown_items = f & 1 ? SAKO_UNKNOWN_CREATE : SAKO_UNKNOWN_REJECT;
    o.personal = (f >> 1) & 1;
    o.prior = (f >> 2) & 1 ? SAKO_PRIOR_FLAT : SAKO_PRIOR_CATEGORY;
    o.decay_half_life_days = (f >> 3) & 1 ? 1 + take_u8(&in) : 0;
    o.prior_refresh_events = (f >> 4) & 1 ? 1 + take_u8(&in) % 16 : 1000;
    o.organic_demand = (f >> 5) & 1;
    o.demand_min_purchases = take_u8(&in) % 8;
    if ((f >> 6) & 1)
        o.reward_click = take_double(&in); /* may be refused: then the input ends here */
    int in_memory = !((f >> 7) & 1);
    const char *path = fuzz_path();
    sako_engine *e = NULL;
    int rc;
    if (!in_memory)
        o.durability = SAKO_DURABLE_OFF; /* a scratch copy: durability is not tested here */
    struct template *t = template_for(&o, in_memory, path);
    if (!t)
        return 0;
    if (in_memory) {
        rc = memdb_open(&e, &t->img, &o);
    } else {
        fuzz_remove(path);
        fuzz_write(path, t->img.bytes, t->img.len);
        rc = sako_init(&e, path, &o);
    }
    CHECK(rc == SAKO_OK, "sako_init on a copy of a new database: %s", sako_errstr(rc));
    for (int ops = 0; in.n > 0 && ops < 64; ops++) {
        switch (take_u8(&in) % 8) {
        case 0: op_catalog(e, &in); break;
        case 1: op_update(e, &in, 0); break;
        case 2: op_update(e, &in, 1); break;
        case 3: op_recommend(e, &in); break;
        case 4: op_introspect(e, &in); break;
        case 5: check_status(sako_retrain(e), "sako_retrain"); break;
        case 6: op_policy(e, &in); break;
        default: op_recommend(e, &in); break;
        }
    }
    sako_close(e);
    if (!in_memory)
        fuzz_remove(path);
    return 0;
}
