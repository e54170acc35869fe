/* Crash test (issue 9 item 6): a child runs a mixed workload on a database with
 * durability FULL and is killed with SIGKILL; the parent reopens the file and checks
 * it against what the child said it submitted and what was acknowledged.
 *
 * The child runs several threads, each picking operations from a weighted table
 * (`ops` below): single events, batches, batches with order ids, recommendations,
 * retrains, retrain policy changes, online backups, catalog changes, close-and-
 * reopen (which writes a checkpoint) and, when the library has them, version
 * activations and pins and log compactions. Two ways to kill it:
 *   - at a random moment (the parent sends SIGKILL after 5-400 ms);
 *   - at a named point: the parent sets SAKO_KILL_AT to a point of the list
 *     (`-p FILE`, made by the Makefile from the SAKO_KILL_POINT calls in libsako/)
 *     and a random SAKO_KILL_SKIP, and favours the operation that passes it. The
 *     library (built with -DSAKO_KILL_POINTS) kills itself there. A child still
 *     alive after the budget (-t) is killed by the parent and counted "not reached".
 *
 * An event is a function of its number (event_of), so the parent knows every event
 * the child submitted from the messages "about to submit events [first, first+n)"
 * and "acknowledged". After each kill it checks that
 *   - SQLite's integrity_check and sako_verify (checksums of the log) pass, and the
 *     file reopens;
 *   - every item's counts by type and every user's event count are exactly those of
 *     the acknowledged batches plus a subset of the batches in flight at the kill
 *     (a batch is there whole or not at all): nothing acknowledged is lost and
 *     nothing never submitted appears; the log's event count agrees;
 *   - a retrain from the log changes no count (reopen == retrain);
 *   - the model version never goes back, the retrain policy read back is one the
 *     child set (or the default);
 *   - every backup file the child finished verifies (a crash mid-backup leaves at
 *     most a "<name>.partial-XXXXXX" file, never a damaged backup);
 *   - with versions, the active model version is whole (check_active_version).
 * A child that exits by itself (an operation failed) fails the run. The checks run
 * in a process of their own, so a library that crashes reopening the file fails
 * that kill only; after a failed check the file is kept as "<db>.failed-N" (with
 * its -wal) for a post-mortem and the test goes on with a new database.
 *
 * usage: kill9 [-r random_kills] [-p points_file] [-n kills_per_point]
 *              [-t budget_ms] [-d dir] [-s seed]
 * (defaults: 20 random kills, no named points, 3 kills per point, 5000 ms, build/tmp,
 * a seed from the clock, printed first: the schedule and the child's choices follow
 * from it, the threads' interleaving does not)
 * Prints one line per named point (kills, passed, failed, not reached), one for the
 * random kills, and a last line "N passed, N failed, N not reached". Exit status 1
 * if any check failed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sako.h"

/* More than SAKO_REFRESH_SYNC_ITEMS (10,000): prior refreshes run on their own
 * thread, as on a real catalog. */
#define N_ITEMS 12000
#define N_USERS 50
#define N_THREADS 3
#define MAX_BATCH 200
#define BASE_TIME 1700000000000LL
/* The file starts over (a new database) once its log holds this many events, so
 * that prior refreshes (spaced geometrically) keep happening and checks stay quick. */
#define RESTART_EVENTS 60000

/* ------------------------------------------------------------ the events */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Event number `id`, the same in the child and in the parent. */
static void event_of(int64_t id, sako_event *ev)
{
    uint64_t h = mix((uint64_t)id);
    ev->user_id = 1 + (int64_t)(h % N_USERS);
    ev->item_id = 1 + (int64_t)((h >> 8) % N_ITEMS);
    ev->type = (int)((h >> 32) % SAKO_EVENT_TYPES);
    ev->time = BASE_TIME + id;
    ev->rec_id = id;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Messages from the child, each written whole (atomic below PIPE_BUF). */
enum { MSG_INTENT = 1, MSG_ACK = 2 };
typedef struct msg {
    int32_t kind;
    int32_t n;     /* events [first, first + n) */
    int64_t first;
} msg;

/* The retrain policies the child sets (the first is the default): the parent reads
 * back one of them. Fields the policy may gain later keep their defaults. */
static const struct {
    uint64_t every_events, every_seconds;
    double drift_fraction;
    uint64_t drift_window, drift_min_impressions;
} policies[] = {
    { 0, 0, 0.0, 25000, 12500 },
    { 5000, 0, 0.0, 2000, 1000 },
    { 20000, 3600, 0.5, 1000, 500 },
};
#define N_POLICIES (sizeof policies / sizeof policies[0])

#if defined(KILL9_VERSIONS) && defined(KILL9_COMPACT)
/* The gate's holdout, which compaction keeps too: the default (50,000) would leave
 * the compaction little to do before the file starts over (RESTART_EVENTS). */
#define GATE_HOLDOUT 5000
#endif

static sako_policy policy_of(size_t i)
{
    sako_policy p = SAKO_POLICY_INIT;
    p.every_events = policies[i].every_events;
    p.every_seconds = policies[i].every_seconds;
    p.drift_fraction = policies[i].drift_fraction;
    p.drift_window = policies[i].drift_window;
    p.drift_min_impressions = policies[i].drift_min_impressions;
#ifdef GATE_HOLDOUT
    p.gate_holdout_events = GATE_HOLDOUT;
#endif
    return p;
}

/* ------------------------------------------------------------- the child */

typedef struct child_ctx {
    pthread_rwlock_t handle; /* read: an operation runs; write: close and reopen */
    sako_engine *e;
    const char *path, *backup_prefix;
    int64_t next_id;         /* the next event number (atomic) */
    long backups;            /* backups started (atomic) */
    int fd;                  /* to the parent */
    int favour;              /* index into ops of the operation favoured, or -1 */
} child_ctx;

static void child_die(const char *what, int rc)
{
    fprintf(stderr, "kill9 child: %s: %s (%s)\n", what, sako_errstr(rc), sako_errmsg());
    _exit(2);
}

static void tell(child_ctx *c, int kind, int64_t first, int n)
{
    msg m = { kind, n, first };
    if (write(c->fd, &m, sizeof m) != sizeof m)
        _exit(3);
}

/* n new events (with order ids: one order per batch), reported before and after. */
static int submit(child_ctx *c, int n, int with_orders)
{
    sako_event ev[MAX_BATCH];
    int64_t orders[MAX_BATCH];
    int64_t first = __atomic_fetch_add(&c->next_id, n, __ATOMIC_RELAXED);
    for (int j = 0; j < n; j++) {
        event_of(first + j, &ev[j]);
        orders[j] = first;
    }
    tell(c, MSG_INTENT, first, n);
    int rc = with_orders ? sako_update_orders(c->e, ev, orders, (size_t)n)
                         : sako_update(c->e, ev, (size_t)n);
    if (rc == SAKO_OK)
        tell(c, MSG_ACK, first, n);
    return rc;
}

static int op_update_one(child_ctx *c, uint64_t *rng)
{
    (void)rng;
    return submit(c, 1, 0);
}

static int op_update_batch(child_ctx *c, uint64_t *rng)
{
    return submit(c, 1 + (int)(xorshift(rng) % MAX_BATCH), 0);
}

static int op_update_orders(child_ctx *c, uint64_t *rng)
{
    return submit(c, 1 + (int)(xorshift(rng) % 30), 1);
}

static int op_recommend(child_ctx *c, uint64_t *rng)
{
    sako_query q = SAKO_QUERY_INIT;
    q.user_id = (int64_t)(xorshift(rng) % (N_USERS + 1)); /* 0: anonymous */
    q.category_id = (int64_t)(xorshift(rng) % 4);         /* 0: the whole catalog */
    sako_rec out[20];
    size_t got;
    return sako_recommend(c->e, &q, out, 20, &got);
}

static int op_retrain(child_ctx *c, uint64_t *rng)
{
#ifdef KILL9_VERSIONS
    /* As the service's policy task would, half the time: such a retrain only
     * records its version while the active one is pinned. */
    int rc = xorshift(rng) % 2 ? sako_retrain(c->e) : sako_retrain_v2(c->e, SAKO_RETRAIN_EVENTS);
#else
    (void)rng;
    int rc = sako_retrain(c->e);
#endif
    return rc == SAKO_BUSY ? SAKO_OK : rc; /* another thread's retrain is running */
}

static int op_policy(child_ctx *c, uint64_t *rng)
{
    sako_policy p = policy_of(xorshift(rng) % N_POLICIES);
    return sako_policy_set(c->e, &p);
}

static int op_backup(child_ctx *c, uint64_t *rng)
{
    (void)rng;
    char path[600];
    long n = __atomic_fetch_add(&c->backups, 1, __ATOMIC_RELAXED);
    snprintf(path, sizeof path, "%s%d-%ld.db", c->backup_prefix, (int)getpid(), n);
    return sako_backup(c->e, path);
}

/* A few items move between the two aisles or are switched off and on: a catalog
 * change during a retrain makes it recompute its epoch under the mutex. */
static int op_catalog(child_ctx *c, uint64_t *rng)
{
    sako_item items[8];
    int n = 1 + (int)(xorshift(rng) % 8);
    int64_t first = 1 + (int64_t)(xorshift(rng) % (N_ITEMS - 8)); /* distinct ids */
    for (int i = 0; i < n; i++) {
        items[i].id = first + i;
        items[i].category_id = 2 + (int64_t)(xorshift(rng) % 2);
        items[i].active = xorshift(rng) % 8 != 0;
        items[i].added_at = BASE_TIME;
    }
    return sako_items_upsert(c->e, items, (size_t)n);
}

/* Exclusive (no other operation runs): sako_close writes a checkpoint. */
static int op_reopen(child_ctx *c, uint64_t *rng)
{
    (void)rng;
    sako_close(c->e);
    c->e = NULL;
    return sako_init(&c->e, c->path, NULL);
}

/* Model versions and log compaction (issue 9 items 3 and 5) come from other
 * branches: the Makefile defines KILL9_VERSIONS / KILL9_COMPACT when include/sako.h
 * declares sako_version_activate / sako_compact, and their operations join the mix. */
#ifdef KILL9_VERSIONS
/* Activate (roll back to) a stored version, or pin/unpin one. */
static int op_activate(child_ctx *c, uint64_t *rng)
{
    sako_version_info v[16];
    size_t n = 0;
    int rc = sako_versions_list(c->e, v, 16, &n, NULL);
    if (rc || n == 0)
        return rc;
    const sako_version_info *pick = &v[xorshift(rng) % n];
    if (pick->status == SAKO_MODEL_REJECTED)
        return SAKO_OK;
    rc = sako_version_activate(c->e, pick->version);
    /* a retrain is running, or keep_versions deleted it since the list */
    return rc == SAKO_BUSY || rc == SAKO_NOTFOUND ? SAKO_OK : rc;
}

static int op_pin(child_ctx *c, uint64_t *rng)
{
    sako_version_info v[16];
    size_t n = 0;
    int rc = sako_versions_list(c->e, v, 16, &n, NULL);
    if (rc || n == 0)
        return rc;
    rc = sako_version_pin(c->e, v[xorshift(rng) % n].version, (int)(xorshift(rng) % 2));
    return rc == SAKO_BUSY || rc == SAKO_NOTFOUND ? SAKO_OK : rc;
}
#endif

#ifdef KILL9_COMPACT
/* Compact all but the latest events (the minimum the library keeps). */
static int op_compact(child_ctx *c, uint64_t *rng)
{
    (void)rng;
    sako_compact_options opt = SAKO_COMPACT_OPTIONS_INIT;
    opt.keep_days = 0.0;
    opt.keep_events = 0;
    int rc = sako_compact(c->e, &opt, NULL);
    return rc == SAKO_BUSY ? SAKO_OK : rc; /* a retrain or another compaction runs */
}
#endif

typedef struct op {
    const char *name;
    int weight;    /* relative frequency */
    int exclusive; /* runs with no other operation */
    int (*run)(child_ctx *c, uint64_t *rng);
} op;

static const op ops[] = {
    { "update", 25, 0, op_update_one },
    { "update_batch", 30, 0, op_update_batch },
    { "update_orders", 10, 0, op_update_orders },
    { "recommend", 25, 0, op_recommend },
    { "retrain", 3, 0, op_retrain },
    { "policy", 2, 0, op_policy },
    { "backup", 1, 0, op_backup },
    { "catalog", 1, 0, op_catalog },
    { "reopen", 1, 1, op_reopen },
#ifdef KILL9_VERSIONS
    { "activate", 3, 0, op_activate },
    { "pin", 1, 0, op_pin },
#endif
#ifdef KILL9_COMPACT
    { "compact", 2, 0, op_compact },
#endif
};
#define N_OPS (sizeof ops / sizeof ops[0])

/* Named points: the operation that passes them (favoured while waiting for the
 * point) and how many passes SAKO_KILL_SKIP may let go by (0..max). The first
 * prefix that matches counts; points matching none are waited for with the plain
 * mix. */
static const struct {
    const char *prefix, *op;
    int skip_max;
} focus[] = {
    { "events.", "update_batch", 30 },
    { "retrain.", "retrain", 2 },
    { "refresh.", "update_batch", 2 },
    { "checkpoint.", "update_batch", 3 },
    { "backup.mid_copy", "backup", 20 },
    { "backup.", "backup", 2 },
    { "policy.set", "policy", 3 },
    { "policy.activation", "retrain", 2 },
    { "version.activate", "activate", 2 }, /* sako_version_activate */
    { "version.record", "pin", 2 },         /* a version kept inactive (pinned active) */
    { "version.", "retrain", 2 },           /* the others: a retrain's version and gate */
    { "compact.", "compact", 2 },
    { "mf.", "retrain", 2 },                /* a retrain's matrix factors (issue 10) */
};
#define N_FOCUS (sizeof focus / sizeof focus[0])

static int op_index(const char *name)
{
    for (size_t i = 0; i < N_OPS; i++)
        if (strcmp(ops[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int focus_index(const char *point)
{
    for (size_t f = 0; f < N_FOCUS; f++)
        if (strncmp(point, focus[f].prefix, strlen(focus[f].prefix)) == 0)
            return (int)f;
    return -1;
}

typedef struct worker {
    child_ctx *c;
    uint64_t seed;
} worker;

static void *child_worker(void *arg)
{
    worker *w = arg;
    child_ctx *c = w->c;
    int total = 0;
    for (size_t i = 0; i < N_OPS; i++)
        total += ops[i].weight * ((int)i == c->favour ? 20 : 1);
    for (;;) {
        int pick = (int)(xorshift(&w->seed) % (uint64_t)total), i = 0;
        while (pick >= ops[i].weight * (i == c->favour ? 20 : 1)) {
            pick -= ops[i].weight * (i == c->favour ? 20 : 1);
            i++;
        }
        if (ops[i].exclusive)
            pthread_rwlock_wrlock(&c->handle);
        else
            pthread_rwlock_rdlock(&c->handle);
        int rc = ops[i].run(c, &w->seed);
        pthread_rwlock_unlock(&c->handle);
        if (rc != SAKO_OK)
            child_die(ops[i].name, rc);
    }
    return NULL;
}

static void child(const char *path, const char *backup_prefix, int fd, int64_t next_id,
                  uint64_t seed, const char *point, long skip)
{
    child_ctx c;
    memset(&c, 0, sizeof c);
    pthread_rwlock_init(&c.handle, NULL);
    c.path = path;
    c.backup_prefix = backup_prefix;
    c.fd = fd;
    c.next_id = next_id;
    c.favour = -1;
    if (point) {
        char skip_text[32];
        snprintf(skip_text, sizeof skip_text, "%ld", skip);
        setenv("SAKO_KILL_AT", point, 1);
        setenv("SAKO_KILL_SKIP", skip_text, 1);
        int f = focus_index(point);
        c.favour = f >= 0 ? op_index(focus[f].op) : -1;
    }
    /* Retrains train (small) matrix factors, so that their writes are killed too (kill
     * points mf.*): stored by this open (the parent created the file with the defaults;
     * the other model options are the defaults too), kept by later opens. */
    sako_options mf = SAKO_OPTIONS_INIT;
    mf.reconfigure = 1;
    mf.mf_factors = 4;
    mf.mf_iterations = 2;
    mf.mf_threads = 1;
    mf.mf_cg_steps = 2;
    int rc = sako_init(&c.e, path, &mf);
    if (rc)
        child_die("open", rc);
#ifdef GATE_HOLDOUT
    /* A new file's policy is the default: the child's own holdout, triggers kept. */
    sako_policy pol = SAKO_POLICY_INIT;
    if ((rc = sako_policy_get(c.e, &pol)))
        child_die("policy_get", rc);
    if (pol.gate_holdout_events != GATE_HOLDOUT) {
        pol.gate_holdout_events = GATE_HOLDOUT;
        if ((rc = sako_policy_set(c.e, &pol)))
            child_die("policy_set", rc);
    }
#endif
    worker w[N_THREADS];
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i].c = &c;
        w[i].seed = mix(seed + (uint64_t)i) | 1;
        if (i > 0 && pthread_create(&t[i], NULL, child_worker, &w[i]) != 0)
            child_die("pthread_create", SAKO_ERROR);
    }
    child_worker(&w[0]); /* never returns */
}

/* ------------------------------------------------------------ the parent */

/* One named point's outcomes (or the random kills'). */
typedef struct tally {
    char name[128];
    int kills, passed, failed, not_reached;
    int in_flight, committed; /* batches in flight at the kills, of them in the file */
} tally;

typedef struct oracle {
    int64_t items[N_ITEMS][SAKO_EVENT_TYPES]; /* the acknowledged events' counts */
    int64_t users[N_USERS + 1];
    int64_t total;
    msg open[64];                            /* batches in flight: intent, no ack */
    int n_open;
    int64_t next_id;                         /* above every number ever sent */
    int64_t model_version;                   /* the highest seen after a kill */
} oracle;

static void oracle_add(oracle *o, const msg *b, int sign)
{
    for (int j = 0; j < b->n; j++) {
        sako_event ev;
        event_of(b->first + j, &ev);
        o->items[ev.item_id - 1][ev.type] += sign;
        o->users[ev.user_id] += sign;
    }
    o->total += sign * b->n;
}

static void oracle_message(oracle *o, const msg *m)
{
    if (m->first + m->n > o->next_id)
        o->next_id = m->first + m->n;
    if (m->kind == MSG_INTENT && o->n_open < 64) {
        o->open[o->n_open++] = *m;
    } else if (m->kind == MSG_ACK) {
        for (int i = 0; i < o->n_open; i++)
            if (o->open[i].first == m->first) {
                o->open[i] = o->open[--o->n_open];
                break;
            }
        oracle_add(o, m, 1);
    }
}

/* Everything the child has written so far. */
static void drain(int fd, oracle *o)
{
    msg m;
    ssize_t got;
    while ((got = read(fd, &m, sizeof m)) == sizeof m)
        oracle_message(o, &m);
}

static int integrity_ok(const char *path)
{
    sqlite3 *db;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW)
                ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    return ok;
}

/* The active model version is whole: exactly one version is active once any
 * exists, it is the one sako_version_get(0) names, and it reads back (the library
 * checks its stored model's checksum at open, which has just succeeded). */
static int check_active_version(sako_engine *e, const char *label)
{
#ifdef KILL9_VERSIONS
    sako_version_info v[64], active;
    size_t n = 0, total = 0;
    if (sako_versions_list(e, v, 64, &n, &total) != SAKO_OK)
        return printf("%s: listing versions failed: %s\n", label, sako_errmsg()), 0;
    int64_t found = 0;
    int n_active = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i].status == SAKO_MODEL_ACTIVE) {
            n_active++;
            found = v[i].version;
        }
    if (total > 0 && n == total && n_active != 1)
        return printf("%s: %d active versions of %zu\n", label, n_active, total), 0;
    if (total == 0)
        return 1;
    if (sako_version_get(e, 0, &active) != SAKO_OK)
        return printf("%s: the active version does not read back: %s\n", label,
                      sako_errmsg()), 0;
    if (active.status != SAKO_MODEL_ACTIVE || (n_active && active.version != found))
        return printf("%s: version %lld is served, the list says %lld is active\n", label,
                      (long long)active.version, (long long)found), 0;
#else
    (void)e;
    (void)label;
#endif
    return 1;
}

static double stored[N_ITEMS][SAKO_EVENT_TYPES];
static uint64_t stored_users[N_USERS + 1];

static int read_counts(sako_engine *e, const char *label)
{
    for (int i = 0; i < N_ITEMS; i++) {
        sako_item_info info;
        if (sako_item_get(e, i + 1, &info) != SAKO_OK)
            return printf("%s: item %d missing: %s\n", label, i + 1, sako_errmsg()), 0;
        stored[i][0] = info.impressions;
        stored[i][1] = info.clicks;
        stored[i][2] = info.carts;
        stored[i][3] = info.purchases;
    }
    for (int u = 1; u <= N_USERS; u++) {
        sako_user_info info;
        int rc = sako_user_get(e, u, &info);
        if (rc != SAKO_OK && rc != SAKO_NOTFOUND)
            return printf("%s: user %d: %s\n", label, u, sako_errmsg()), 0;
        stored_users[u] = rc == SAKO_OK ? info.n_events : 0;
    }
    return 1;
}

/* Whether the stored counts are the acknowledged ones plus the batches in flight
 * of `mask`. */
static int counts_match(oracle *o, unsigned mask)
{
    for (int i = 0; i < o->n_open; i++)
        if (mask & (1u << i))
            oracle_add(o, &o->open[i], 1);
    int same = 1;
    for (int i = 0; i < N_ITEMS && same; i++)
        for (int t = 0; t < SAKO_EVENT_TYPES; t++)
            if (stored[i][t] != (double)o->items[i][t])
                same = 0;
    for (int u = 1; u <= N_USERS && same; u++)
        if (stored_users[u] != (uint64_t)o->users[u])
            same = 0;
    for (int i = 0; i < o->n_open; i++)
        if (mask & (1u << i))
            oracle_add(o, &o->open[i], -1);
    return same;
}

/* The first mismatch against the acknowledged batches alone, for the report. */
static void report_mismatch(const oracle *o, const char *label)
{
    for (int i = 0; i < N_ITEMS; i++)
        for (int t = 0; t < SAKO_EVENT_TYPES; t++)
            if (stored[i][t] != (double)o->items[i][t]) {
                printf("%s: item %d type %d: %.0f stored, %lld acknowledged (%d batches in "
                       "flight)\n", label, i + 1, t, stored[i][t], (long long)o->items[i][t],
                       o->n_open);
                return;
            }
    for (int u = 1; u <= N_USERS; u++)
        if (stored_users[u] != (uint64_t)o->users[u]) {
            printf("%s: user %d: %llu events stored, %lld acknowledged\n", label, u,
                   (unsigned long long)stored_users[u], (long long)o->users[u]);
            return;
        }
}

static int policy_known(const sako_policy *p)
{
    for (size_t i = 0; i < N_POLICIES; i++) {
        sako_policy q = policy_of(i);
        if (p->every_events == q.every_events && p->every_seconds == q.every_seconds &&
            p->drift_fraction == q.drift_fraction && p->drift_window == q.drift_window &&
            p->drift_min_impressions == q.drift_min_impressions)
            return 1;
    }
    return 0;
}

/* Finished backups verify and are removed; partial ones (a crash mid-backup) are
 * removed. */
static int check_backups(const char *dir, const char *prefix_name, const char *label)
{
    DIR *d = opendir(dir);
    if (!d)
        return 1;
    int ok = 1;
    struct dirent *de;
    size_t plen = strlen(prefix_name);
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix_name, plen) != 0)
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len = strlen(de->d_name);
        if (!strstr(de->d_name, ".partial-") && len > 3 && strcmp(de->d_name + len - 3, ".db") == 0) {
            sako_verify_report rep;
            if (sako_verify(path, &rep) != SAKO_OK) {
                printf("%s: backup %s does not verify: %s\n", label, de->d_name, sako_errmsg());
                ok = 0;
            }
        }
        unlink(path);
    }
    closedir(d);
    return ok;
}

/* Reopen and check against the oracle; the batches in flight that made it are
 * folded into the oracle. Returns 1 when everything holds. */
static int verify(const char *path, oracle *o, const char *label, tally *t)
{
    if (!integrity_ok(path))
        return printf("%s: integrity_check failed\n", label), 0;
    sako_verify_report rep;
    if (sako_verify(path, &rep) != SAKO_OK)
        return printf("%s: sako_verify failed: %s\n", label, sako_errmsg()), 0;
    sako_engine *e;
    if (sako_init(&e, path, NULL) != SAKO_OK)
        return printf("%s: reopen failed: %s\n", label, sako_errmsg()), 0;
    int ok = read_counts(e, label);
    sako_stats st;
    sako_stats_get(e, &st);
    /* Which batches in flight made it: the subset whose events (with the
     * acknowledged ones) give exactly the stored counts. */
    unsigned found = 0, n_found = 0;
    for (unsigned mask = 0; ok && mask < (1u << o->n_open); mask++) {
        int64_t n = o->total;
        for (int i = 0; i < o->n_open; i++)
            if (mask & (1u << i))
                n += o->open[i].n;
        if ((uint64_t)n == st.n_events && counts_match(o, mask)) {
            found = mask;
            n_found++;
            break;
        }
    }
    if (ok && n_found == 0) {
        printf("%s: LOST or PHANTOM events: %llu in the log, %lld acknowledged, %d batches "
               "in flight\n", label, (unsigned long long)st.n_events, (long long)o->total,
               o->n_open);
        report_mismatch(o, label);
        ok = 0;
    }
#ifdef KILL9_COMPACT
    if (ok && rep.n_events > st.n_events) { /* compacted batches are no longer read */
#else
    if (ok && rep.n_events != st.n_events) {
#endif
        printf("%s: sako_verify read %llu events, the engine counts %llu\n", label,
               (unsigned long long)rep.n_events, (unsigned long long)st.n_events);
        ok = 0;
    }
    if (ok) {
        for (int i = 0; i < o->n_open; i++)
            if (found & (1u << i)) {
                oracle_add(o, &o->open[i], 1);
                t->committed++;
            }
        t->in_flight += o->n_open;
    }
    o->n_open = 0;
#ifndef KILL9_VERSIONS /* a rollback may serve an older version number */
    if (st.model_version < o->model_version) {
        printf("%s: model version went back from %lld to %lld\n", label,
               (long long)o->model_version, (long long)st.model_version);
        ok = 0;
    }
    o->model_version = st.model_version;
#endif
    sako_policy pol = SAKO_POLICY_INIT;
    sako_policy_get(e, &pol);
    if (!policy_known(&pol)) {
        printf("%s: the stored retrain policy is none the child set\n", label);
        ok = 0;
    }
    if (!check_active_version(e, label))
        ok = 0;
    /* The counts as reopened (checkpoint + replayed tail) equal a rebuild. */
    if (sako_retrain(e) != SAKO_OK) {
        printf("%s: retrain failed: %s\n", label, sako_errmsg());
        ok = 0;
    } else if (ok) {
        static double before[N_ITEMS][SAKO_EVENT_TYPES];
        memcpy(before, stored, sizeof before);
        if (read_counts(e, label) && memcmp(before, stored, sizeof before) != 0) {
            printf("%s: counts differ from a rebuild from the log\n", label);
            ok = 0;
        }
    }
    sako_stats_get(e, &st);
    o->model_version = st.model_version;
    sako_close(e);
    return ok;
}

/* The database and the files beside it (-wal, -shm, the engine's -lock). */
static void remove_database(const char *path)
{
    static const char *const suffixes[] = { "", "-wal", "-shm", "-lock" };
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char name[600];
        snprintf(name, sizeof name, "%s%s", path, suffixes[i]);
        unlink(name);
    }
}

static int create_database(const char *path)
{
    remove_database(path);
    sako_engine *e;
    int rc = sako_init(&e, path, NULL);
    if (rc)
        return rc;
    sako_category cats[] = { { 1, 0, "Dairy" }, { 2, 1, "Milk" }, { 3, 1, "Yoghurt" } };
    static sako_item items[N_ITEMS];
    for (int i = 0; i < N_ITEMS; i++) {
        items[i].id = i + 1;
        items[i].category_id = 2 + i % 2;
        items[i].active = 1;
        items[i].added_at = BASE_TIME;
    }
    if ((rc = sako_categories_upsert(e, cats, 3)) == SAKO_OK)
        rc = sako_items_upsert(e, items, N_ITEMS);
    sako_close(e);
    return rc;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What a check (run in a process of its own) hands back: a library that crashes
 * while reopening a damaged file fails that kill instead of ending the test. */
typedef struct check_result {
    int done, ok;
    oracle o;
    tally t;
} check_result;

static check_result *shared;

static int verify_apart(const char *path, oracle *o, const char *label, tally *t)
{
    shared->done = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        shared->ok = verify(path, o, label, t);
        shared->o = *o;
        shared->t = *t;
        shared->done = 1;
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!shared->done) {
        printf("%s: the check died (%s %d) reopening or checking the file\n", label,
               WIFSIGNALED(status) ? "signal" : "status",
               WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
        return 0;
    }
    *o = shared->o;
    *t = shared->t;
    return shared->ok;
}

/* After a failed check the file is kept for a post-mortem as "<path>.failed-N"
 * (with its -wal) and the test goes on with a new database. */
static void keep_failed(const char *path, int iteration)
{
    char from[600], to[640];
    snprintf(to, sizeof to, "%s.failed-%d", path, iteration);
    rename(path, to);
    snprintf(from, sizeof from, "%s-wal", path);
    snprintf(to, sizeof to, "%s.failed-%d-wal", path, iteration);
    rename(from, to);
    printf("kill %d: the file is kept as %s.failed-%d\n", iteration, path, iteration);
}

/* One child, killed by the parent after `delay_ms` or (with a point) by itself;
 * its outcome goes into `t`. Returns 0 when a check failed. */
static int run_one(const char *path, const char *dir, const char *bk_name, oracle *o,
                   uint64_t *seed, const char *point, long skip, int delay_ms, tally *t,
                   int iteration)
{
    char label[160], bk_prefix[1100];
    snprintf(label, sizeof label, "kill %d (%s%s%s skip %ld)", iteration,
             point ? "at " : "random", point ? point : "", point ? "," : "", skip);
    snprintf(bk_prefix, sizeof bk_prefix, "%s/%s", dir, bk_name);
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(2);
    }
    uint64_t child_seed = xorshift(seed);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(path, bk_prefix, fds[1], o->next_id, child_seed, point, skip);
        _exit(0);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    long long end = now_ms() + delay_ms;
    int status = 0, sent_kill = 0;
    for (;;) {
        drain(fds[0], o);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (!sent_kill && now_ms() >= end) {
            kill(pid, SIGKILL);
            sent_kill = 1;
        }
        usleep(1000);
    }
    fcntl(fds[0], F_SETFL, 0);
    drain(fds[0], o);
    close(fds[0]);
    t->kills++;
    int killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
    int ok = verify_apart(path, o, label, t);
    if (!check_backups(dir, bk_name, label))
        ok = 0;
    if (!killed) {
        if (WIFSIGNALED(status))
            printf("%s: the child died of signal %d\n", label, WTERMSIG(status));
        else
            printf("%s: the child exited by itself (status %d)\n", label, WEXITSTATUS(status));
        ok = 0;
    }
    if (!ok) {
        t->failed++;
        keep_failed(path, iteration);
    } else if (point && sent_kill) {
        t->not_reached++;
    } else {
        t->passed++;
    }
    return ok;
}

static int read_points(const char *file, tally **out)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        perror(file);
        exit(2);
    }
    tally *t = NULL;
    int n = 0;
    char line[128];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, " \t\r\n")] = 0;
        if (!line[0] || line[0] == '#')
            continue;
        t = realloc(t, (size_t)(n + 1) * sizeof *t);
        memset(&t[n], 0, sizeof *t);
        snprintf(t[n].name, sizeof t[n].name, "%s", line);
        n++;
    }
    fclose(f);
    *out = t;
    return n;
}

int main(int argc, char **argv)
{
    int random_kills = 20, per_point = 3, budget_ms = 5000, opt;
    const char *dir = "build/tmp", *points_file = NULL;
    uint64_t seed = 0x5eed ^ (uint64_t)time(NULL);
    while ((opt = getopt(argc, argv, "r:p:n:t:d:s:")) != -1) {
        switch (opt) {
        case 'r': random_kills = atoi(optarg); break;
        case 'p': points_file = optarg; break;
        case 'n': per_point = atoi(optarg); break;
        case 't': budget_ms = atoi(optarg); break;
        case 'd': dir = optarg; break;
        case 's': seed = strtoull(optarg, NULL, 0); break;
        default:
            fprintf(stderr, "usage: kill9 [-r random_kills] [-p points_file] [-n kills_per_point] "
                            "[-t budget_ms] [-d dir] [-s seed]\n");
            return 2;
        }
    }
    seed |= 1;
    unsetenv("SAKO_KILL_AT"); /* the parent itself is never killed at a point */
    printf("kill9: seed %llu\n", (unsigned long long)seed);
    mkdir(dir, 0755);
    char path[512], bk_name[64];
    snprintf(path, sizeof path, "%s/kill9-%d.db", dir, (int)getpid());
    snprintf(bk_name, sizeof bk_name, "kill9-%d-backup-", (int)getpid());

    tally *points = NULL;
    int n_points = points_file ? read_points(points_file, &points) : 0;
    /* The schedule: every point per_point times and the random kills, shuffled. */
    int n_runs = n_points * per_point + random_kills;
    int *runs = malloc((size_t)(n_runs ? n_runs : 1) * sizeof *runs);
    for (int i = 0; i < n_runs; i++)
        runs[i] = i < n_points * per_point ? i % n_points : -1;
    for (int i = n_runs - 1; i > 0; i--) {
        int j = (int)(xorshift(&seed) % (uint64_t)(i + 1)), x = runs[i];
        runs[i] = runs[j];
        runs[j] = x;
    }

    static oracle o;
    tally random_tally = { "random", 0, 0, 0, 0, 0, 0 };
    long long t0 = now_ms();
    uint64_t events = 0;
    int restart = 0;
    shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    for (int i = 0; i < n_runs; i++) {
        if (i == 0 || restart || o.total + o.n_open * MAX_BATCH >= RESTART_EVENTS) {
            events += (uint64_t)o.total;
            int rc = create_database(path);
            if (rc) {
                fprintf(stderr, "kill9: creating %s: %s (%s)\n", path, sako_errstr(rc), sako_errmsg());
                return 2;
            }
            int64_t next = o.next_id ? o.next_id : 1;
            memset(&o, 0, sizeof o);
            o.next_id = next; /* numbers stay unique over restarts */
        }
        if (runs[i] < 0) {
            int delay = 5 + (int)(xorshift(&seed) % 400);
            restart = !run_one(path, dir, bk_name, &o, &seed, NULL, 0, delay, &random_tally, i);
        } else {
            tally *t = &points[runs[i]];
            int f = focus_index(t->name);
            long skip = (long)(xorshift(&seed) % (uint64_t)((f >= 0 ? focus[f].skip_max : 3) + 1));
            restart = !run_one(path, dir, bk_name, &o, &seed, t->name, skip, budget_ms, t, i);
        }
    }
    events += (uint64_t)o.total;

    int passed = random_tally.passed, failed = random_tally.failed, not_reached = 0;
    for (int p = 0; p < n_points; p++) {
        printf("point %-34s kills %4d  passed %4d  failed %3d  not reached %3d  (batches in "
               "flight %d, committed %d)\n", points[p].name, points[p].kills, points[p].passed,
               points[p].failed, points[p].not_reached, points[p].in_flight, points[p].committed);
        passed += points[p].passed;
        failed += points[p].failed;
        not_reached += points[p].not_reached;
    }
    printf("random %-33s kills %4d  passed %4d  failed %3d                  (batches in "
           "flight %d, committed %d)\n", "", random_tally.kills, random_tally.passed,
           random_tally.failed, random_tally.in_flight, random_tally.committed);
    for (int p = 0; p < n_points; p++)
        if (points[p].kills && points[p].not_reached == points[p].kills)
            printf("WARNING: point %s was never reached (no operation of the workload passes "
                   "it within %d ms: see `focus` and `ops` in tests/crash/kill9.c)\n",
                   points[p].name, budget_ms);
    printf("kill9: %d kills, %llu acknowledged events, %.1f s\n", n_runs,
           (unsigned long long)events, (double)(now_ms() - t0) / 1000.0);
    printf("%d passed, %d failed, %d not reached\n", passed, failed, not_reached);
    remove_database(path);
    free(runs);
    free(points);
    return failed ? 1 : 0;
}
