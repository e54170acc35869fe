/* The sweep: for one step and one kind of fault, fail the 1st, 2nd, ... counted call
 * until the step runs without meeting a failure, and after each failing run check
 * what the caller was promised: a documented status with a message, the state
 * either as before the call or as after a successful one (as the status says), an
 * engine that still answers and takes writes, a file that reopens equal and passes
 * sako_verify. Leaks are LeakSanitizer's (checked after every step's sweep). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "steps.h"
#include "sweep.h"

extern int fault_write_full;

/* The states every sweep compares with. */
typedef struct refs {
    char *base;             /* the base file opened (in memory = reopened) */
    char *base_follow;      /* the base with the follow-up batch, reopened */
    char *empty;            /* a new database */
    char *after_mem;        /* after the step succeeded, in memory */
    char *after_reopen;     /* ... closed and reopened */
    char *after_follow;     /* ... with the follow-up batch, reopened */
    sako_verify_report report;
} refs;

static char *fp_alloc(void)
{
    char *p = malloc(FP_CAP);
    if (!p) {
        fprintf(stderr, "faults: out of memory\n");
        exit(2);
    }
    p[0] = '\0';
    return p;
}

static int open_copy(const sweep_env *env, step_ctx *c)
{
    sako_options o = scenario_options(SAKO_DURABLE_FULL);
    if (file_copy_db(env->base, c->path) != 0)
        return SAKO_IO;
    return sako_init(&c->e, c->path, &o);
}

static void must(int rc, const char *what)
{
    if (rc) {
        fprintf(stderr, "faults: reference run: %s: %s (%s)\n", what, sako_errstr(rc), sako_errmsg());
        exit(2);
    }
}

static void refs_build(const sweep_env *env, const step *s, refs *r, int first)
{
    step_ctx c;
    memset(&c, 0, sizeof c);
    snprintf(c.path, sizeof c.path, "%s/ref.db", env->dir);
    snprintf(c.other, sizeof c.other, "%s/ref-backup.db", env->dir);
    if (first) {
        must(file_copy_db(env->base, c.path) ? SAKO_IO : SAKO_OK, "copy");
        must(fp_file(c.path, r->base, FP_CAP), "open base");
        must(sako_verify(c.path, &r->report), "verify base");
        must(open_copy(env, &c), "open");
        must(scenario_followup(c.e), "follow-up");
        sako_close(c.e);
        must(fp_file(c.path, r->base_follow, FP_CAP), "reopen");
        file_remove_db(c.path);
        sako_options o = scenario_options(SAKO_DURABLE_FULL);
        must(sako_init(&c.e, c.path, &o), "create");
        fp_engine(c.e, r->empty, FP_CAP);
        sako_close(c.e);
    }
    if (s->shape != STEP_ON_ENGINE || !s->mutates)
        return;
    must(open_copy(env, &c), "open");
    must(s->run(&c), s->name);
    fp_engine(c.e, r->after_mem, FP_CAP);
    sako_close(c.e);
    must(fp_file(c.path, r->after_reopen, FP_CAP), "reopen");
    must(open_copy(env, &c), "open");
    must(s->run(&c), s->name);
    must(scenario_followup(c.e), "follow-up");
    sako_close(c.e);
    must(fp_file(c.path, r->after_follow, FP_CAP), "reopen");
    file_remove_db(c.path);
}

/* The statuses a failed call may return for this kind of fault. */
static int status_allowed(unsigned kinds, int rc)
{
    if (rc == SAKO_OK)
        return 1;
    if (kinds & FAULT_ALLOC)
        return rc == SAKO_NOMEM;
    return rc == SAKO_IO;
}

static int partial_left(const char *dir)
{
    DIR *d = opendir(dir);
    int found = 0;
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        found |= strstr(de->d_name, ".partial-") != NULL;
    if (d)
        closedir(d);
    return found;
}

typedef struct run_out {
    int broken;       /* invariants broken in this run */
    int resurrected;  /* failed, but a crash right after would show the call applied */
    long ok_with_fault;
} run_out;

#define BROKEN(...)                                                       \
    do {                                                                  \
        fprintf(stderr, "  %s [%s N=%ld]: ", s->name, mode->name, n);     \
        fprintf(stderr, __VA_ARGS__);                                     \
        fputc('\n', stderr);                                              \
        out->broken++;                                                    \
    } while (0)

#define DIFF(what, want, got)                                                \
    do {                                                                     \
        fprintf(stderr, "  %s [%s N=%ld]:\n", s->name, mode->name, n);        \
        fp_diff(what, want, got);                                            \
        out->broken++;                                                       \
    } while (0)

/* Checks after a run that met at least one failure (or none: then it must succeed). */
static void check_run(const sweep_env *env, const step *s, const sweep_mode *mode, long n,
                      const refs *r, step_ctx *c, int rc, long hits, const char *msg, char *fp,
                      run_out *out)
{
    if (!hits && rc != SAKO_OK)
        BROKEN("no fault met, yet %s (%s)", sako_errstr(rc), msg);
    if (!status_allowed(mode->kinds, rc))
        BROKEN("returned %s (%s)", sako_errstr(rc), msg);
    if (rc != SAKO_OK && !*msg)
        BROKEN("returned %s without a message", sako_errstr(rc));
    int applied = rc == SAKO_OK;
    int loose = applied && hits > 0; /* see fp_same */

    switch (s->shape) {
    case STEP_OPENS:
    case STEP_CREATES:
    case STEP_OPENS_MEMORY: {
        const char *want = s->shape == STEP_OPENS ? r->base : r->empty;
        if (!applied) {
            if (c->e)
                BROKEN("failed but set *out");
            if (s->shape == STEP_OPENS_MEMORY)
                break;
            /* The copy of the base has no lock file: one there is the failed open's. */
            char lock[1100];
            snprintf(lock, sizeof lock, "%s-lock", c->path);
            if (file_exists(lock))
                BROKEN("failed open left %s", lock);
            int rc2 = fp_file(c->path, fp, FP_CAP);
            if (rc2)
                BROKEN("after the failure the file does not open: %s", fp);
            else if (strcmp(fp, want))
                DIFF("reopen after failure", want, fp);
            break;
        }
        fp_engine(c->e, fp, FP_CAP);
        if (!fp_same(want, fp, loose))
            DIFF("opened", want, fp);
        sako_close(c->e);
        c->e = NULL;
        break;
    }
    case STEP_CLOSES:
    case STEP_ON_FILE:
        if (fp_file(c->path, fp, FP_CAP) || !fp_same(r->base, fp, loose))
            DIFF("reopened", r->base, fp);
        if (s->shape == STEP_ON_FILE && applied &&
            (c->report.n_batches != r->report.n_batches || c->report.n_events != r->report.n_events))
            BROKEN("sako_verify counted %llu batches, %llu events; want %llu, %llu",
                   (unsigned long long)c->report.n_batches, (unsigned long long)c->report.n_events,
                   (unsigned long long)r->report.n_batches, (unsigned long long)r->report.n_events);
        break;
    case STEP_ON_ENGINE:
    case STEP_BACKUP: {
        int mut = s->mutates;
        const char *want_mem = applied && mut ? r->after_mem : r->base;
        fp_engine(c->e, fp, FP_CAP);
        if (!fp_same(want_mem, fp, loose))
            DIFF(applied ? "in memory after success" : "in memory after failure", want_mem, fp);
        sako_rec recs[5];
        size_t got = 0;
        sako_query q = SAKO_QUERY_INIT;
        q.user_id = 4;
        q.k = 5;
        int rrc = sako_recommend(c->e, &q, recs, 5, &got);
        if (rrc || got == 0)
            BROKEN("recommend afterwards: %s (%zu results)", sako_errstr(rrc), got);
        if (s->shape == STEP_BACKUP) {
            if (!applied && file_exists(c->other))
                BROKEN("failed backup left %s", c->other);
            if (!applied && partial_left(env->dir))
                BROKEN("failed backup left a .partial- file");
            if (applied && (fp_file(c->other, fp, FP_CAP) || !fp_same(r->base, fp, loose)))
                DIFF("backup", r->base, fp);
        }
        if (mut && !applied && (mode->kinds & FAULT_WRITE)) {
            /* A crash right after the failed call: the files as they are now. */
            char crash[1100];
            snprintf(crash, sizeof crash, "%s/crash.db", env->dir);
            if (file_copy_db(c->path, crash) == 0 && fp_file(crash, fp, FP_CAP) == SAKO_OK) {
                if (!strcmp(fp, r->base))
                    ; /* as before the call */
                else if (fp_same(r->after_reopen, fp, 1))
                    out->resurrected++;
                else
                    DIFF("crash right after the failure", r->base, fp);
            } else {
                BROKEN("crash right after the failure: does not open: %s", fp);
            }
            file_remove_db(crash);
        }
        int frc = scenario_followup(c->e);
        if (frc)
            BROKEN("a batch after the failure: %s (%s)", sako_errstr(frc), sako_errmsg());
        sako_close(c->e);
        c->e = NULL;
        const char *want_file = applied && mut ? r->after_follow : r->base_follow;
        if (fp_file(c->path, fp, FP_CAP) || !fp_same(want_file, fp, loose))
            DIFF("reopened", want_file, fp);
        break;
    }
    case STEP_NO_ENGINE:
        break;
    }
    if (s->shape != STEP_NO_ENGINE && s->shape != STEP_OPENS_MEMORY) {
        sako_verify_report rep;
        int vrc = sako_verify(c->path, &rep);
        if (vrc)
            BROKEN("sako_verify afterwards: %s (%s)", sako_errstr(vrc), sako_errmsg());
    }
}

static long one_run(const sweep_env *env, const step *s, const sweep_mode *mode, long n,
                    const refs *r, char *fp, run_out *out, long *counted)
{
    step_ctx c;
    memset(&c, 0, sizeof c);
    snprintf(c.path, sizeof c.path, "%s/work.db", env->dir);
    snprintf(c.other, sizeof c.other, "%s/backup.db", env->dir);
    file_remove_db(c.path);
    file_remove_db(c.other);
    int rc;
    switch (s->shape) {
    case STEP_ON_ENGINE:
    case STEP_CLOSES:
    case STEP_BACKUP:
        if ((rc = open_copy(env, &c)))
            must(rc, "open a copy");
        break;
    case STEP_OPENS:
    case STEP_ON_FILE:
        must(file_copy_db(env->base, c.path) ? SAKO_IO : SAKO_OK, "copy");
        break;
    default:
        break;
    }
    fault_write_full = n % 2 == 0;
    sako__error_clear();
    fault_arm(mode->kinds, n, mode->persistent);
    rc = s->run(&c);
    long hits = fault_disarm();
    *counted = fault_counted();
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sako_errmsg());
    check_run(env, s, mode, n, r, &c, rc, hits, msg, fp, out);
    if (c.e)
        sako_close(c.e);
    file_remove_db(c.path);
    file_remove_db(c.other);
    if (rc == SAKO_OK)
        out->ok_with_fault += hits > 0;
    return hits;
}

int sweep_step(const sweep_env *env, const step *s, const sweep_mode *mode, sweep_result *res)
{
    static refs r;
    static const step *built_for;
    if (!r.base) {
        r.base = fp_alloc(), r.base_follow = fp_alloc(), r.empty = fp_alloc();
        r.after_mem = fp_alloc(), r.after_reopen = fp_alloc(), r.after_follow = fp_alloc();
        refs_build(env, s, &r, 1);
        built_for = s;
    } else if (built_for != s) {
        refs_build(env, s, &r, 0);
        built_for = s;
    }
    char *fp = fp_alloc();
    memset(res, 0, sizeof *res);
    /* How many calls the step makes without faults sizes the stride of a short sweep. */
    run_out out = { 0 };
    long total = 0;
    sweep_mode count_mode = *mode;
    count_mode.persistent = 0;
    one_run(env, s, &count_mode, 1L << 40, &r, fp, &out, &total);
    res->calls = total;
    long stride = 1;
    if (env->max_points > 0 && total > env->max_points)
        stride = (total + env->max_points - 1) / env->max_points;
    long n = 1;
    for (;;) {
        long counted = 0;
        long hits = one_run(env, s, mode, n, &r, fp, &out, &counted);
        res->runs++;
        if (hits) {
            res->failed_runs++;
        } else {
            break;
        }
        if (n > total && stride > 1)
            stride = 1; /* past the counted calls: go one by one to the end */
        n += stride;
        if (n > 1000000) {
            fprintf(stderr, "  %s [%s]: no end after a million faults\n", s->name, mode->name);
            out.broken++;
            break;
        }
    }
    res->broken = out.broken;
    res->resurrected = out.resurrected;
    res->ok_with_fault = out.ok_with_fault;
    free(fp);
    return out.broken;
}
