/* sako_compact: the event log folded into a checkpoint up to a compaction point,
 * so that the file stops growing (issue 9 item 5).
 *
 * The steps, and why each intermediate state reopens exactly:
 *  1. Left-overs of an interrupted compaction are deleted (they are redundant:
 *     open reads only the checkpoint meta names and the batches after it); under
 *     the writer mutex a regular checkpoint of item counts is written if the log
 *     has a tail, and C is chosen (sako.h says how).
 *  2. Off the mutex, on a second connection: the retrain replay's state at C,
 *     from the current checkpoint (retrain.c), as a retrain builds it.
 *  3. The new checkpoint's chunks, each in its own transaction under the mutex.
 *     Until the switch they are rows of a batch no meta key names: ignored.
 *  4. The switch: compact_batch = C, in one transaction. From here open loads the
 *     new checkpoint and replays the batches after C.
 *  5. The old checkpoint and the batches up to C, deleted about 1 MiB of rows per
 *     transaction. Until they are gone they are ignored.
 * Every step of 1, 3 and 5 holds the writer mutex for one short transaction (and
 * copies its pages out of the WAL), then lets it go for a moment, as sako_backup
 * does, so that a waiting update gets it.
 * A retrain and a compaction exclude each other (SAKO_BUSY), so that the checkpoint
 * a retrain starts from stays in place while it reads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compact_internal.h"
#include "engine_internal.h"
#include "killpoint_internal.h"
#include "logstate_internal.h"
#include "retrain_internal.h"

/* Rows deleted per transaction: at most this many, and batches of about this many
 * events (about 1 MiB of log; at least one batch, which may hold up to 1M events). */
#define SAKO_COMPACT_TRIM_ROWS 256
#define SAKO_COMPACT_TRIM_EVENTS 32768
#define DAY_MS 86400000.0

/* The last compaction's longest hold of the writer mutex and its number of holds
 * (bench-compact reads them; compact_internal.h). */
long long sako__compact_max_hold_ns;
long sako__compact_holds;
long long sako__compact_first_hold_ns;
static __thread long long hold_start_ns;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void lock(sako_engine *e)
{
    pthread_mutex_lock(&e->write_mutex);
    hold_start_ns = (long long)(mono_ms() * 1e6);
}

static void unlock(sako_engine *e)
{
    long long held = (long long)(mono_ms() * 1e6) - hold_start_ns;
    if (held > sako__compact_max_hold_ns)
        sako__compact_max_hold_ns = held;
    sako__compact_holds++;
    pthread_mutex_unlock(&e->write_mutex);
}

/* Between two steps the mutex is left free this long (a mutex is not fair:
 * unlock-then-lock would often win it back from a waiting update). */
static void pause_between_steps(void)
{
    struct timespec pause = {0, 200000L};
    nanosleep(&pause, NULL);
}

static int check_options(const sako_compact_options *o)
{
    if (o->version != SAKO_COMPACT_OPTIONS_VERSION)
        return sako__error(SAKO_INVALID, "compact options: version %u is not %d (use "
                           "SAKO_COMPACT_OPTIONS_INIT)", o->version, SAKO_COMPACT_OPTIONS_VERSION);
    if (!(o->keep_days >= 0.0 && o->keep_days <= 1e6))
        return sako__error(SAKO_INVALID, "compact options: keep_days %g is not in [0, 1e6] "
                           "(0: no time window)", o->keep_days);
    if (o->keep_events > SAKO_ID_MAX)
        return sako__error(SAKO_INVALID, "compact options: keep_events %llu is above 2^53-1",
                           (unsigned long long)o->keep_events);
    return SAKO_OK;
}

/* One step in its own transaction (the caller holds the writer mutex). */
static int trim_step(sako_engine *e, int64_t batch, int64_t *batches, int64_t *events, int *done)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = sako__store_log_trim(&e->store, batch, SAKO_COMPACT_TRIM_ROWS,
                                   SAKO_COMPACT_TRIM_EVENTS, batches, events, done))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    if ((rc = sako__store_commit(&e->store)) == SAKO_OK)
        sako__store_wal_checkpoint(&e->store);
    return rc;
}

/* Everything the checkpoint at `batch` made redundant; the mutex is let go between
 * steps unless `hold`. */
static int trim(sako_engine *e, int64_t batch, int hold, uint64_t *batches_out,
                uint64_t *events_out)
{
    int rc = SAKO_OK, done = 0;
    while (rc == SAKO_OK && !done) {
        int64_t b = 0, n = 0;
        if (!hold)
            lock(e);
        rc = trim_step(e, batch, &b, &n, &done);
        if (!hold) {
            unlock(e);
            pause_between_steps();
        }
        *batches_out += (uint64_t)b;
        *events_out += (uint64_t)n;
        if (rc == SAKO_OK && b > 0)
            SAKO_KILL_POINT("compact.trimmed");
    }
    return rc;
}

static int write_chunk(sako_engine *e, int64_t batch, int part, int64_t chunk, const void *data,
                       size_t bytes)
{
    int rc = sako__store_begin(&e->store);
    if (rc)
        return rc;
    if ((rc = sako__store_write_log_chunk(&e->store, batch, part, chunk, data, bytes))) {
        sako__store_rollback(&e->store);
        return rc;
    }
    /* Each step copies its own pages out of the WAL, in its own hold: left there, a
     * few MiB would fall to the automatic checkpoint of some update's commit. */
    if ((rc = sako__store_commit(&e->store)) == SAKO_OK)
        sako__store_wal_checkpoint(&e->store);
    return rc;
}

/* Steps 3 and 4: the chunks of the state at st->batch, then the switch. */
static int write_checkpoint(sako_engine *e, int hold, sako_retrain_state *st, uint64_t events,
                            size_t n_items, size_t n_users, uint64_t *bytes_out)
{
    int64_t *item_ids = malloc((n_items ? n_items : 1) * sizeof *item_ids);
    int64_t *user_ids = malloc((n_users ? n_users : 1) * sizeof *user_ids);
    if (!item_ids || !user_ids) {
        free(item_ids);
        free(user_ids);
        return sako__error(SAKO_NOMEM, "out of memory writing the log checkpoint");
    }
    /* Indices never change for an engine's life; the arrays may move as they grow. */
    if (!hold)
        pthread_rwlock_rdlock(&e->lock);
    for (size_t i = 0; i < n_items; i++)
        item_ids[i] = e->items[i].id;
    for (size_t u = 0; u < n_users; u++)
        user_ids[u] = e->users.v[u].id;
    if (!hold)
        pthread_rwlock_unlock(&e->lock);
    sako_personal_params pp = e->personal_params;
    sako_logstate_src src = { st->batch, (int64_t)events, st->counts, &st->decay, &st->personal,
                              &pp, item_ids, n_items, user_ids, n_users };
    sako_logstate_writer w;
    sako__logstate_writer_init(&w, &src);
    int rc = SAKO_OK;
    for (;;) {
        int part = 0;
        int64_t chunk = 0;
        const void *data = NULL;
        size_t bytes = 0;
        int got = sako__logstate_next(&w, &part, &chunk, &data, &bytes);
        if (got <= 0) {
            rc = got;
            break;
        }
        if (!hold)
            lock(e);
        rc = write_chunk(e, st->batch, part, chunk, data, bytes);
        if (!hold) {
            unlock(e);
            pause_between_steps();
        }
        if (rc)
            break;
        SAKO_KILL_POINT("compact.chunk_written");
    }
    *bytes_out = w.bytes;
    sako__logstate_writer_free(&w);
    free(item_ids);
    free(user_ids);
    if (rc)
        return rc;
    SAKO_KILL_POINT("compact.before_switch");
    if (!hold)
        lock(e);
    if ((rc = sako__store_begin(&e->store)) == SAKO_OK) {
        if ((rc = sako__store_log_switch(&e->store, st->batch, (int64_t)events))) {
            sako__store_rollback(&e->store);
        } else {
            SAKO_KILL_POINT("compact.switch_before_commit");
            rc = sako__store_commit(&e->store);
        }
    }
    if (rc == SAKO_OK) {
        e->compact_batch = st->batch;
        e->compact_events = (int64_t)events;
    }
    if (!hold)
        unlock(e);
    if (rc == SAKO_OK)
        SAKO_KILL_POINT("compact.switched");
    return rc;
}

int sako_compact(sako_engine *e, const sako_compact_options *opt, sako_compact_report *out)
{
    if (!e)
        return sako__error(SAKO_MISUSE, "sako_compact: engine is NULL");
    sako_compact_options defaults = SAKO_COMPACT_OPTIONS_INIT;
    if (!opt)
        opt = &defaults;
    int rc = check_options(opt);
    if (rc)
        return rc;
    sako__error_clear();
    double t0 = mono_ms();
    sako__compact_max_hold_ns = 0;
    sako__compact_holds = 0;
    sako__compact_first_hold_ns = 0;
    sako_compact_report report;
    memset(&report, 0, sizeof report);

    /* Step 1. */
    lock(e);
    if (e->retraining || e->compacting) {
        unlock(e);
        return sako__error(SAKO_BUSY, "sako_compact: a %s of this engine is running",
                           e->retraining ? "retrain" : "compaction");
    }
    e->compacting = 1;
    int hold = e->store.in_memory; /* no second connection: all under the mutex */
    int64_t from = e->compact_batch, checkpointed = 0, upto = 0;
    if (!hold)
        unlock(e);
    /* What an interrupted compaction left, in short steps like the rest. */
    rc = trim(e, from, hold, &report.batches_removed, &report.events_removed);
    if (!hold)
        lock(e);
    /* The next retrain's gate replays the latest events as its holdout: never fewer
     * than the documented minimum stay, nor than the policy's gate_holdout_events
     * (the most a gate holds out), so that the holdout never reaches into the
     * checkpoint. */
    uint64_t keep = opt->keep_events > SAKO_COMPACT_MIN_EVENTS ? opt->keep_events
                                                                : SAKO_COMPACT_MIN_EVENTS;
    if (keep < e->policy.policy.gate_holdout_events)
        keep = e->policy.policy.gate_holdout_events;
    if (rc == SAKO_OK && e->events_since_checkpoint > 0)
        rc = sako__retrain_checkpoint(e);
    if (rc == SAKO_OK)
        rc = sako__store_read_meta_int(&e->store, "checkpoint_batch", &checkpointed);
    /* Counted, not scanned: the log after `from` holds every event acknowledged
     * since; the replay stops where fewer than `keep` would be left after it. */
    uint64_t in_log = e->n_events - (uint64_t)e->compact_events;
    uint64_t budget = in_log > keep ? in_log - keep : 0;
    upto = checkpointed < e->policy.act.batch ? checkpointed : e->policy.act.batch;
    if (budget == 0)
        upto = from;
    int64_t cutoff = INT64_MAX;
    if (opt->keep_days > 0.0)
        cutoff = e->decay.latest - (int64_t)llround(opt->keep_days * DAY_MS);
    size_t cap_items = e->cap_items, n_items = e->n_items, n_users = e->users.n;
    if (rc)
        e->compacting = 0;
    if (!hold || rc)
        unlock(e);
    if (rc)
        return rc;
    /* That hold wrote the regular checkpoint, if the log had a tail: the cost every
     * 500,000 events pay anyway, measured apart from the compaction's own steps. */
    sako__compact_first_hold_ns = sako__compact_max_hold_ns;
    sako__compact_max_hold_ns = 0;

    /* Step 2. */
    sako_retrain_state st;
    memset(&st, 0, sizeof st);
    sako_store reader;
    memset(&reader, 0, sizeof reader);
    reader.lock_fd = -1;
    if (upto > from) {
        if (!hold)
            rc = sako__store_open_reader(&e->store, e->opts.busy_timeout_ms, &reader);
        if (rc == SAKO_OK)
            rc = sako__retrain_state_at(e, hold ? &e->store : &reader, hold, from, upto, cutoff,
                                        budget, cap_items, n_users, &st);
        sako__store_close(&reader);
        SAKO_KILL_POINT("compact.replayed");
    }
    /* Steps 3 to 5. */
    if (rc == SAKO_OK && upto > from && st.batch > from) {
        rc = write_checkpoint(e, hold, &st, (uint64_t)e->compact_events + st.events, n_items,
                              n_users, &report.checkpoint_bytes);
        if (rc == SAKO_OK)
            rc = trim(e, st.batch, hold, &report.batches_removed, &report.events_removed);
    }
    sako__retrain_state_free(&st);

    if (!hold)
        lock(e);
    e->compacting = 0;
    sako_store_log_info info;
    int64_t now_batch = e->compact_batch;
    if (rc == SAKO_OK && (rc = sako__store_log_info(&e->store, now_batch, &info)) == SAKO_OK)
        report.first_batch = info.first_batch;
    unlock(e);
    report.compact_batch = now_batch;
    report.elapsed_ms = mono_ms() - t0;
    if (out)
        *out = report;
    if (rc == SAKO_OK)
        sako__error_clear();
    return rc;
}

int sako_log_stats_get(sako_engine *e, sako_log_stats *out)
{
    if (!e || !out)
        return sako__error(SAKO_MISUSE, "sako_log_stats_get: NULL engine or output");
    sako__error_clear();
    memset(out, 0, sizeof *out);
    sako_store_log_info info;
    pthread_mutex_lock(&e->write_mutex);
    /* Counted, not scanned: batches are numbered without gaps and every event
     * acknowledged is in n_events (metrics read this at every scrape). */
    int64_t batch = e->compact_batch, events = e->compact_events, last = e->last_batch;
    uint64_t n_events = e->n_events;
    int rc = sako__store_log_info(&e->store, batch, &info);
    pthread_mutex_unlock(&e->write_mutex);
    if (rc)
        return rc;
    out->n_batches = last > batch ? (uint64_t)(last - batch) : 0;
    out->n_events = n_events - (uint64_t)events;
    out->first_batch = info.first_batch;
    out->last_batch = last > batch ? last : batch;
    out->compact_batch = batch;
    out->compacted_events = (uint64_t)events;
    out->checkpoint_bytes = (uint64_t)info.checkpoint_bytes;
    out->file_bytes = (uint64_t)info.file_bytes;
    out->free_bytes = (uint64_t)info.free_bytes;
    return SAKO_OK;
}
