/* The scenario every sweep starts from: a small catalog, users with baskets, a
 * retrain and a policy, in a database file; and a fingerprint of everything a
 * caller can read, to compare states exactly. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faults.h"

#define N_DEPTS 2
#define N_AISLES 4
#define N_ITEMS 40
#define N_USERS 20
#define T0 1700000000000LL

int fault_verbose;

static void die(const char *what, int rc)
{
    fprintf(stderr, "faults: scenario: %s: %s (%s)\n", what, sako_errstr(rc), sako_errmsg());
    exit(2);
}

sako_options scenario_options(int durability)
{
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 42;
    o.durability = durability;
    o.unknown_items = SAKO_UNKNOWN_CREATE; /* so that an update may create items */
    o.prior_refresh_events = 0;            /* no background refresh between calls */
    o.decay_half_life_days = 30;           /* decay's frames in every path */
    return o;
}

void scenario_base(const char *path, int durability)
{
    file_remove_db(path);
    sako_options o = scenario_options(durability);
    sako_engine *e;
    int rc;
    if ((rc = sako_init(&e, path, &o)))
        die("open", rc);
    sako_category cats[N_DEPTS + N_AISLES];
    char names[N_DEPTS + N_AISLES][16];
    for (int i = 0; i < N_DEPTS + N_AISLES; i++) {
        snprintf(names[i], sizeof names[i], "cat %d", i + 1);
        cats[i].id = i + 1;
        cats[i].parent_id = i < N_DEPTS ? 0 : 1 + i % N_DEPTS;
        cats[i].name = names[i];
    }
    if ((rc = sako_categories_upsert(e, cats, N_DEPTS + N_AISLES)))
        die("categories", rc);
    sako_item items[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++)
        items[i] = (sako_item){ i + 1, i % 7 == 0 ? 0 : 1 + i % (N_DEPTS + N_AISLES), i % 11 != 5,
                                T0 - 86400000LL };
    if ((rc = sako_items_upsert(e, items, N_ITEMS)))
        die("items", rc);
    /* An older history of 12,000 events first, so that sako_compact() (which keeps at
     * least SAKO_COMPACT_MIN_EVENTS) has batches before the retrain to fold away. */
    static sako_event old[1000];
    uint64_t s = 12345;
    for (int b = 0; b < 12; b++) {
        for (int j = 0; j < 1000; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            old[j] = (sako_event){ 1 + (int64_t)(s % N_USERS), 1 + (int64_t)((s >> 8) % N_ITEMS),
                                   (int)((s >> 20) % 3), T0 - (12 - b) * 86400000LL + j, 0 };
        }
        if ((rc = sako_update(e, old, 1000)))
            die("history", rc);
    }
    sako_event ev[60];
    int64_t orders[60];
    for (int round = 0; round < 8; round++) {
        for (int j = 0; j < 60; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            int64_t user = 1 + (int64_t)(s % N_USERS);
            ev[j] = (sako_event){ user, 1 + (int64_t)((s >> 8) % N_ITEMS), (int)((s >> 20) % 4),
                                  T0 + round * 86400000LL * 3 + j * 1000, (s >> 30) % 3 ? 0 : 7 };
            orders[j] = ev[j].type == SAKO_EVENT_PURCHASE ? 100 * round + user : 0;
        }
        if ((rc = sako_update_orders(e, ev, orders, 60)))
            die("update", rc);
        /* two retrains: versions 1 and 2, so that a rollback has somewhere to go */
        if ((round == 5 || round == 7) && (rc = sako_retrain(e)))
            die("retrain", rc);
    }
    sako_policy p = SAKO_POLICY_INIT;
    p.every_events = 1000;
    /* Below SAKO_COMPACT_MIN_EVENTS, so that sako_compact() keeps only that many. */
    p.gate_holdout_events = 1000;
    if ((rc = sako_policy_set(e, &p)))
        die("policy", rc);
    sako_close(e);
}

int scenario_followup(sako_engine *e)
{
    sako_event ev[3] = {
        { 999, 2, SAKO_EVENT_IMPRESSION, T0 + 90 * 86400000LL, 0 },
        { 999, 2, SAKO_EVENT_CLICK, T0 + 90 * 86400000LL + 1, 0 },
        { 999, 3, SAKO_EVENT_PURCHASE, T0 + 90 * 86400000LL + 2, 0 },
    };
    return sako_update(e, ev, 3);
}

/* ---------------------------------------------------------- fingerprint */

typedef struct sb {
    char *p;
    size_t len, cap;
} sb;

static void put(sb *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n < b->cap - b->len ? (size_t)n : b->cap - b->len - 1;
}

/* Ids the scenario and the steps use: the base's, the ones steps add, the follow-up's. */
static const int64_t extra_items[] = { 41, 42, 43, 1000, 1001 };
static const int64_t extra_users[] = { 501, 502, 503, 504, 999 };
static const int64_t extra_cats[] = { 7, 8 };

void fp_engine(sako_engine *e, char *out, size_t cap)
{
    sb b = { out, 0, cap };
    out[0] = '\0';
    sako_stats st;
    int rc = sako_stats_get(e, &st);
    put(&b, "stats %d items %llu active %llu cats %llu users %llu events %llu model %lld\n", rc,
        (unsigned long long)st.n_items, (unsigned long long)st.n_active_items,
        (unsigned long long)st.n_categories, (unsigned long long)st.n_users,
        (unsigned long long)st.n_events, (long long)st.model_version);
    put(&b, "~epoch since %llu mean %.17g\n", (unsigned long long)st.events_since_refresh,
        st.global_mean);
    int64_t position = -1;
    rc = sako_log_position(e, &position);
    put(&b, "log position %d %lld\n", rc, (long long)position);
    int64_t ids[N_ITEMS + 8];
    size_t n_ids = 0;
    for (int i = 1; i <= N_ITEMS; i++)
        ids[n_ids++] = i;
    for (size_t i = 0; i < sizeof extra_items / sizeof *extra_items; i++)
        ids[n_ids++] = extra_items[i];
    for (size_t i = 0; i < n_ids; i++) {
        sako_item_info it;
        memset(&it, 0, sizeof it);
        rc = sako_item_get(e, ids[i], &it);
        if (rc) {
            put(&b, "item %lld rc %d\n", (long long)ids[i], rc);
            continue;
        }
        /* An item an update created was added "now": only that it was is compared. */
        put(&b, "item %lld cat %lld act %d add %lld last %lld\n", (long long)it.id,
            (long long)it.category_id, it.active,
            it.added_at > T0 + 365 * 86400000LL ? -1LL : (long long)it.added_at,
            (long long)it.last_event_at);
        put(&b, "~item %lld n %.17g %.17g %.17g %.17g prior %.17g post %.17g %.17g\n",
            (long long)it.id, it.impressions, it.clicks, it.carts, it.purchases, it.prior_mean,
            it.alpha, it.beta);
    }
    for (int64_t c = 0; c <= N_DEPTS + N_AISLES + 2; c++) {
        double mean = 0;
        rc = sako_category_prior(e, c, &mean);
        put(&b, "~prior %lld rc %d %.17g\n", (long long)c, rc, rc ? 0.0 : mean);
    }
    (void)extra_cats;
    int64_t users[N_USERS + 8];
    size_t n_users = 0;
    for (int u = 1; u <= N_USERS; u++)
        users[n_users++] = u;
    for (size_t i = 0; i < sizeof extra_users / sizeof *extra_users; i++)
        users[n_users++] = extra_users[i];
    for (size_t i = 0; i < n_users; i++) {
        sako_user_info u;
        memset(&u, 0, sizeof u);
        rc = sako_user_get(e, users[i], &u);
        if (rc) {
            put(&b, "user %lld rc %d\n", (long long)users[i], rc);
            continue;
        }
        put(&b, "user %lld n %llu last %lld baskets %llu products %llu w %.17g at %lld p %d\n",
            (long long)u.id, (unsigned long long)u.n_events, (long long)u.last_event_at,
            (unsigned long long)u.n_baskets, (unsigned long long)u.n_products, u.weight,
            (long long)u.last_basket_at, u.personal);
        for (size_t j = 0; j < n_ids; j++) {
            sako_user_item ui;
            if (sako_user_item_get(e, users[i], ids[j], &ui) == SAKO_OK)
                put(&b, " bought %lld %llu %.17g %lld %.17g\n", (long long)ui.item_id,
                    (unsigned long long)ui.n_baskets, ui.weight, (long long)ui.last_bought_at,
                    ui.mean_gap_days);
        }
    }
    sako_policy p = SAKO_POLICY_INIT; /* get fills the version asked */
    rc = sako_policy_get(e, &p);
    put(&b, "policy %d %llu %llu %.17g %llu %llu\n", rc, (unsigned long long)p.every_events,
        (unsigned long long)p.every_seconds, p.drift_fraction, (unsigned long long)p.drift_window,
        (unsigned long long)p.drift_min_impressions);
    sako_version_info v;
    memset(&v, 0, sizeof v);
    size_t n_versions = 0, total = 0;
    rc = sako_version_get(e, 0, &v);
    int rc_list = sako_versions_list(e, NULL, 0, &n_versions, &total);
    put(&b, "version %d active %lld status %d pinned %d root %.17g stored %d %zu\n", rc,
        (long long)v.version, v.status, v.pinned, v.root_mean, rc_list, total);
    sako_retrain_status rs;
    rc = sako_retrain_due(e, &rs);
    /* The retrain policy's activation is stored after the retrain, in its own
     * transaction, and a failure there is not reported (policy_internal.h). */
    put(&b, "~due %d %d %u %llu\n", rc, rs.due, rs.reasons, (unsigned long long)rs.events_since);
}

int fp_same(const char *want, const char *got, int evidence_only)
{
    if (!evidence_only)
        return strcmp(want, got) == 0;
    for (;;) {
        while (*want == '~')
            want += strcspn(want, "\n") + (want[strcspn(want, "\n")] ? 1 : 0);
        while (*got == '~')
            got += strcspn(got, "\n") + (got[strcspn(got, "\n")] ? 1 : 0);
        if (!*want || !*got)
            return !*want && !*got;
        size_t lw = strcspn(want, "\n"), lg = strcspn(got, "\n");
        if (lw != lg || memcmp(want, got, lw))
            return 0;
        want += lw + (want[lw] ? 1 : 0);
        got += lg + (got[lg] ? 1 : 0);
    }
}

int fp_file(const char *path, char *out, size_t cap)
{
    sako_options o = scenario_options(SAKO_DURABLE_FULL);
    sako_engine *e;
    int rc = sako_init(&e, path, &o);
    if (rc) {
        snprintf(out, cap, "open: %s (%s)\n", sako_errstr(rc), sako_errmsg());
        return rc;
    }
    fp_engine(e, out, cap);
    sako_close(e);
    return SAKO_OK;
}

void fp_diff(const char *what, const char *want, const char *got)
{
    size_t line = 1;
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        if (*w == '\n') {
            line++;
            want = w + 1;
            got = g + 1;
        }
        w++, g++;
    }
    int wl = (int)strcspn(want, "\n"), gl = (int)strcspn(got, "\n");
    fprintf(stderr, "  %s: states differ at line %zu\n    want: %.*s\n    got:  %.*s\n", what,
            line, wl, want, gl, got);
}

/* ------------------------------------------------------------- files */

static int copy_file(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return -1;
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return -1;
    }
    char buf[65536];
    size_t got;
    int rc = 0;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, got, out) != got)
            rc = -1;
    fclose(in);
    if (fclose(out) != 0)
        rc = -1;
    return rc;
}

int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int file_copy_db(const char *src, const char *dst)
{
    char a[1100], b[1100];
    file_remove_db(dst);
    if (copy_file(src, dst) != 0)
        return -1;
    snprintf(a, sizeof a, "%s-wal", src);
    snprintf(b, sizeof b, "%s-wal", dst);
    if (file_exists(a) && copy_file(a, b) != 0)
        return -1;
    return 0;
}

void file_remove_db(const char *path)
{
    static const char *suffix[] = { "", "-wal", "-shm", "-journal", "-lock" };
    char buf[1100];
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        snprintf(buf, sizeof buf, "%s%s", path, suffix[i]);
        unlink(buf);
    }
}
