/* The matrix factorisation in the engine: training from the interactions, persistence
 * (schema 5), fold-in of users who interacted since the training.
 *
 * The solver is mf-core's (sako_mf_fit, sako_mf_gram, sako_mf_fold_in in sako.h);
 * this file decides what it is fed and what happens to its output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error_internal.h"
#include "factors_internal.h"

/* About 1 MiB of records per stored chunk (as the log checkpoint's). */
#define CHUNK_BYTES (1u << 20)
#define HEAD_FIXED (4 + 4 + 4 + 4 + 8 * 12 + 3 * 8)

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

#define CAND_EMPTY SAKO_FACTORS_CAND_EMPTY

static sako_factors *factors_new(uint32_t k, size_t n_items, size_t n_users)
{
    sako_factors *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    pthread_mutex_init(&f->fold_mutex, NULL);
    pthread_mutex_init(&f->cand_mutex, NULL);
    f->k = k;
    f->n_items = n_items;
    f->n_users = n_users;
    f->item = calloc(n_items ? n_items * k : 1, sizeof *f->item);
    f->has = calloc(n_items ? n_items : 1, 1);
    f->user = calloc(n_users ? n_users * k : 1, sizeof *f->user);
    f->events = malloc((n_users ? n_users : 1) * sizeof *f->events);
    f->gram = calloc((size_t)k * k, sizeof *f->gram);
    f->mean = calloc(k, sizeof *f->mean);
    if (!f->item || !f->has || !f->user || !f->events || !f->gram || !f->mean) {
        sako__factors_free(f);
        return NULL;
    }
    for (size_t u = 0; u < n_users; u++)
        f->events[u] = SAKO_FACTORS_NO_VECTOR;
    return f;
}

void sako__factors_free(sako_factors *f)
{
    if (!f)
        return;
    pthread_mutex_destroy(&f->fold_mutex);
    pthread_mutex_destroy(&f->cand_mutex);
    free(f->cand_slot);
    free(f->cand_items);
    free(f->cand_scores);
    free(f->item);
    free(f->has);
    free(f->user);
    free(f->events);
    free(f->gram);
    free(f->mean);
    free(f->fold);
    free(f->fold_events);
    sako__factor_index_free(f->index);
    free(f);
}

size_t sako__factors_bytes(sako_factors *f)
{
    if (!f)
        return 0;
    pthread_mutex_lock(&f->cand_mutex);
    size_t cand_sets = f->cand_sets, cand_want = f->cand_want;
    pthread_mutex_unlock(&f->cand_mutex);
    return sizeof *f + f->n_items * (f->k * sizeof(float) + 1) +
           f->n_users * (f->k * sizeof(float) + sizeof(uint32_t)) +
           ((size_t)f->k * f->k + f->k) * sizeof(double) + sako__factor_index_bytes(f->index) +
           f->cap_fold * (f->k * sizeof(float) + sizeof(uint32_t)) +
           2 * cand_sets * (sizeof(struct sako_cand_slot) +
                            cand_want * (sizeof(uint32_t) + sizeof(float)));
}

/* Item rows in id order: the index must not depend on the order indices were given. */
typedef struct id_row {
    int64_t id;
    uint32_t row;
} id_row;

static int by_id(const void *a, const void *b)
{
    const id_row *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int build_index(sako_factors *f, const sako_item_state *items, unsigned threads)
{
    id_row *v = malloc((f->n_items ? f->n_items : 1) * sizeof *v);
    uint32_t *order = malloc((f->n_items ? f->n_items : 1) * sizeof *order);
    int rc = SAKO_OK;
    if (!v || !order) {
        rc = sako__error(SAKO_NOMEM, "out of memory ordering %zu items", f->n_items);
    } else {
        for (size_t i = 0; i < f->n_items; i++) {
            v[i].id = items[i].id;
            v[i].row = (uint32_t)i;
        }
        if (f->n_items > 1)
            qsort(v, f->n_items, sizeof *v, by_id);
        for (size_t i = 0; i < f->n_items; i++)
            order[i] = v[i].row;
        rc = sako__factor_index_build(f->item, f->has, order, f->n_items, f->k,
                                      f->seed ^ 0x1DF5EED, threads, &f->index);
    }
    free(v);
    free(order);
    return rc;
}

static void options_of(const sako_factors *f, uint32_t threads, sako_mf_options *o)
{
    sako_mf_options init = SAKO_MF_OPTIONS_INIT;
    *o = init;
    o->factors = f->k;
    o->iterations = f->iterations;
    o->regularization = f->regularization;
    o->alpha = f->alpha;
    o->cg_steps = f->cg_steps;
    o->threads = threads;
    o->seed = f->seed;
}

int sako__factors_train(const sako_interactions *inter, size_t n_users,
                        const sako_item_state *items, size_t n_items,
                        const sako_model_params *mp, uint32_t threads,
                        const sako_factors_range *range, sako_factors **out)
{
    *out = NULL;
    uint32_t k = mp->mf_factors;
    if (k == 0 || n_users == 0 || n_items == 0)
        return SAKO_OK;
    if (n_users > inter->cap_users)
        n_users = inter->cap_users;
    if (n_items > INT32_MAX)
        return sako__error(SAKO_RANGE, "matrix factorisation: %zu items exceed 2^31", n_items);
    /* r_ui > 0 only: the solver's CSR stores positive values. */
    size_t nnz = 0;
    for (size_t u = 0; u < n_users; u++)
        for (uint32_t j = 0; j < inter->users[u].n; j++) {
            const sako_interaction *p = &inter->users[u].v[j];
            nnz += p->item < n_items && sako__interactions_value(p, mp->reward) > 0.0;
        }
    if (nnz == 0)
        return SAKO_OK;
    double t0 = now_seconds();
    int64_t *indptr = malloc((n_users + 1) * sizeof *indptr);
    int32_t *indices = malloc(nnz * sizeof *indices);
    float *values = malloc(nnz * sizeof *values);
    sako_factors *f = factors_new(k, n_items, n_users);
    int rc = SAKO_OK;
    if (!indptr || !indices || !values || !f) {
        rc = sako__error(SAKO_NOMEM, "out of memory for a %zu x %zu matrix of %zu entries "
                         "(%u factors)", n_users, n_items, nnz, k);
        goto done;
    }
    f->iterations = mp->mf_iterations;
    f->cg_steps = mp->mf_cg_steps;
    f->regularization = mp->mf_regularization;
    f->alpha = mp->mf_alpha;
    f->seed = mp->mf_seed;
    memcpy(f->reward, mp->reward, sizeof f->reward);
    f->trained_at = wall_ms();
    f->first_batch = range->first_batch;
    f->last_batch = range->last_batch;
    f->n_events = range->n_events;
    size_t at = 0;
    indptr[0] = 0;
    for (size_t u = 0; u < n_users; u++) {
        const sako_user_interactions *row = &inter->users[u];
        size_t before = at;
        for (uint32_t j = 0; j < row->n; j++) {
            const sako_interaction *p = &row->v[j];
            double r = sako__interactions_value(p, mp->reward);
            if (p->item >= n_items || !(r > 0.0))
                continue;
            indices[at] = (int32_t)p->item;
            values[at++] = (float)r;
            f->has[p->item] = 1;
        }
        indptr[u + 1] = (int64_t)at;
        /* The count the training saw: a later interaction makes the vector stale. */
        f->events[u] = at > before ? row->events : SAKO_FACTORS_NO_VECTOR;
        f->n_user_vectors += at > before;
    }
    for (size_t i = 0; i < n_items; i++)
        f->n_item_vectors += f->has[i];
    sako_csr csr = { n_users, n_items, indptr, indices, values };
    sako_mf_options o;
    options_of(f, threads, &o);
    if ((rc = sako_mf_fit(&csr, &o, f->user, f->item)) ||
        (rc = sako_mf_gram(f->item, n_items, k, f->gram)) ||
        (rc = build_index(f, items, sako__mf_threads(&o))))
        goto done;
    /* The typical interaction's item vector: each item weighed by its users (the
     * matrix's column counts), summed in row order. */
    double total = 0.0;
    for (size_t j = 0; j < nnz; j++) {
        const float *y = f->item + (size_t)indices[j] * k;
        for (uint32_t t = 0; t < k; t++)
            f->mean[t] += y[t];
    }
    total = (double)nnz;
    for (uint32_t t = 0; t < k; t++)
        f->mean[t] /= total;
    f->train_seconds = now_seconds() - t0;
    *out = f;
    f = NULL;
done:
    free(indptr);
    free(indices);
    free(values);
    sako__factors_free(f);
    return rc;
}

/* ------------------------------------------------------------ fold-in */

void sako__factors_workspace_free(sako_factors_workspace *ws)
{
    if (!ws)
        return;
    free(ws->items); /* (the values share its block) */
    sako__mf_scratch_free(&ws->mf);
    memset(ws, 0, sizeof *ws);
}

/* Room for a fold-in of n entries at k factors; kept across calls (a request's
 * scratch owns one), so that a fold-in allocates only when a longer history or a
 * larger k than any before comes along. */
static int workspace_fit(sako_factors_workspace *ws, uint32_t k, size_t n)
{
    if (ws->k != k) {
        sako__mf_scratch_free(&ws->mf);
        ws->k = 0;
        if (sako__mf_scratch_init(&ws->mf, k, 1) != SAKO_OK)
            return SAKO_NOMEM;
        ws->k = k;
    }
    if (n > ws->cap) { /* one block: the items, then the values */
        size_t cap = n + n / 2 + 16;
        int32_t *block = malloc(cap * (sizeof *ws->items + sizeof *ws->values));
        if (!block)
            return SAKO_NOMEM;
        free(ws->items);
        ws->items = block;
        ws->values = (float *)(block + cap);
        ws->cap = cap;
    }
    return SAKO_OK;
}

/* Solve u's row from its full history against the fixed item factors: the exact
 * solve sako_mf_fold_in() performs, without its checks (the Gram matrix and the
 * options were checked by the training, a history holds each product once). */
static int fold_in(const sako_factors *f, const sako_user_interactions *row,
                   sako_factors_workspace *ws, float *x)
{
    if (workspace_fit(ws, f->k, row->n) != SAKO_OK)
        return sako__error(SAKO_NOMEM, "out of memory folding in a user of %u products", row->n);
    size_t n = 0;
    for (uint32_t j = 0; j < row->n; j++) {
        const sako_interaction *p = &row->v[j];
        double r = sako__interactions_value(p, f->reward);
        if (p->item >= f->n_items || !f->has[p->item] || !(r > 0.0))
            continue;
        ws->items[n] = (int32_t)p->item;
        ws->values[n++] = (float)r;
    }
    memset(x, 0, f->k * sizeof *x);
    if (n == 0)
        return 0;
    sako_mf_row r = { ws->items, ws->values, n };
    int rc = sako__mf_solve_exact(f->gram, f->regularization, f->item, f->k, f->alpha, &r,
                                  &ws->mf, x);
    return rc < 0 ? rc : 1;
}

int sako__factors_user_vector(sako_factors *f, const sako_interactions *inter, uint32_t u,
                              sako_factors_workspace *ws, float *out)
{
    uint32_t events = u < inter->cap_users ? inter->users[u].events : 0;
    if (u < f->n_users && f->events[u] != SAKO_FACTORS_NO_VECTOR && f->events[u] == events) {
        memcpy(out, f->user + (size_t)u * f->k, f->k * sizeof *out);
        return 1;
    }
    if (events == 0)
        return 0;
    pthread_mutex_lock(&f->fold_mutex);
    int hit = u < f->cap_fold && f->fold_events[u] == events;
    if (hit)
        memcpy(out, f->fold + (size_t)u * f->k, f->k * sizeof *out);
    pthread_mutex_unlock(&f->fold_mutex);
    if (hit)
        return 1;
    /* Solved outside the mutex (the history cannot change under the read lock); two
     * readers of one user may both solve it, to the same vector. */
    sako_factors_workspace own = { 0 };
    int rc = fold_in(f, &inter->users[u], ws ? ws : &own, out);
    sako__factors_workspace_free(&own);
    if (rc <= 0)
        return rc;
    pthread_mutex_lock(&f->fold_mutex);
    if (u >= f->cap_fold) {
        size_t cap = f->cap_fold ? f->cap_fold : 1024;
        while (cap <= u)
            cap *= 2;
        float *v = realloc(f->fold, cap * f->k * sizeof *v);
        if (v)
            f->fold = v;
        uint32_t *ev = v ? realloc(f->fold_events, cap * sizeof *ev) : NULL;
        if (ev) {
            for (size_t i = f->cap_fold; i < cap; i++)
                ev[i] = 0; /* 0 events: never a hit (users without events have no vector) */
            f->fold_events = ev;
            f->cap_fold = cap;
        }
    }
    if (u < f->cap_fold) { /* (out of memory: not cached, solved again next time) */
        memcpy(f->fold + (size_t)u * f->k, out, f->k * sizeof *out);
        if (f->fold_events[u] != events)
            f->n_folded++;
        f->fold_events[u] = events;
    }
    pthread_mutex_unlock(&f->fold_mutex);
    return 1;
}

/* ------------------------------------------------------- candidate cache */

/* The cache's slots, sized for answers of `want` entries within
 * SAKO_FACTORS_CAND_BYTES (a power of two of sets of two), at its first use. Out of
 * memory, or answers too long for two slots: no cache (every request searches).
 * Caller holds cand_mutex. */
static void cand_alloc(sako_factors *f, size_t want)
{
    size_t slot_bytes = sizeof(struct sako_cand_slot) + want * (sizeof(uint32_t) + sizeof(float));
    size_t sets = 1;
    while (4 * sets * slot_bytes <= SAKO_FACTORS_CAND_BYTES)
        sets *= 2;
    if (2 * sets * slot_bytes > SAKO_FACTORS_CAND_BYTES)
        return;
    struct sako_cand_slot *slot = malloc(2 * sets * sizeof *slot);
    uint32_t *items = malloc(2 * sets * want * sizeof *items);
    float *scores = malloc(2 * sets * want * sizeof *scores);
    if (!slot || !items || !scores) {
        free(slot), free(items), free(scores);
        return;
    }
    for (size_t s = 0; s < 2 * sets; s++)
        slot[s].user = CAND_EMPTY;
    f->cand_slot = slot;
    f->cand_items = items;
    f->cand_scores = scores;
    f->cand_sets = sets;
    f->cand_want = want;
}

static size_t cand_set(const sako_factors *f, uint32_t u)
{
    return (size_t)(((uint64_t)u * 0x9E3779B97F4A7C15ull) >> 32) & (f->cand_sets - 1);
}

static int cand_matches(const struct sako_cand_slot *s, uint32_t u, uint32_t events,
                        size_t probe, size_t want)
{
    return s->user == u && s->events == events && s->probe == probe && s->want == want;
}

size_t sako__factors_candidates(sako_factors *f, const sako_interactions *inter, uint32_t u,
                                const float *x, size_t probe, size_t want, void *scratch,
                                uint32_t *items, float *scores)
{
    if (!f->index || want == 0)
        return 0;
    uint32_t events = u < inter->cap_users ? inter->users[u].events : 0;
    size_t n;
    pthread_mutex_lock(&f->cand_mutex);
    if (!f->cand_slot)
        cand_alloc(f, want);
    int usable = f->cand_slot && want <= f->cand_want && u != CAND_EMPTY;
    if (usable) {
        size_t set = cand_set(f, u);
        for (size_t s = 2 * set; s < 2 * set + 2; s++) {
            struct sako_cand_slot *c = &f->cand_slot[s];
            if (!cand_matches(c, u, events, probe, want))
                continue;
            n = c->n;
            memcpy(items, f->cand_items + s * f->cand_want, n * sizeof *items);
            memcpy(scores, f->cand_scores + s * f->cand_want, n * sizeof *scores);
            c->used = ++f->cand_tick;
            f->n_cand_hits++;
            pthread_mutex_unlock(&f->cand_mutex);
            return n;
        }
    }
    f->n_cand_misses++;
    pthread_mutex_unlock(&f->cand_mutex);
    /* Searched outside the mutex; two requests of one user may both search, to the
     * same answer. */
    n = sako__factor_index_search(f->index, x, probe, want, scratch, items, scores);
    if (!usable)
        return n;
    pthread_mutex_lock(&f->cand_mutex);
    size_t set = cand_set(f, u), s = 2 * set;
    struct sako_cand_slot *a = &f->cand_slot[s], *b = a + 1;
    if (!cand_matches(a, u, events, probe, want) && !cand_matches(b, u, events, probe, want)) {
        /* the user's older answer if it is there, else an empty slot, else the one
         * served least recently */
        if (b->user == u || (a->user != u && (b->user == CAND_EMPTY ||
                                              (a->user != CAND_EMPTY && b->used < a->used))))
            s++, a = b;
        a->user = u;
        a->events = events;
        a->probe = (uint32_t)probe;
        a->want = (uint32_t)want;
        a->n = (uint32_t)n;
        a->used = ++f->cand_tick;
        memcpy(f->cand_items + s * f->cand_want, items, n * sizeof *items);
        memcpy(f->cand_scores + s * f->cand_want, scores, n * sizeof *scores);
    }
    pthread_mutex_unlock(&f->cand_mutex);
    return n;
}

/* ------------------------------------------------------------ persistence */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_f64(unsigned char *p, double d)
{
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put64(p, v);
}

static double get_f64(const unsigned char *p)
{
    uint64_t v = get64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static void put_floats(unsigned char *p, const float *x, uint32_t k)
{
    for (uint32_t j = 0; j < k; j++) {
        uint32_t v;
        memcpy(&v, &x[j], sizeof v);
        put32(p + 4 * j, v);
    }
}

static void get_floats(const unsigned char *p, float *x, uint32_t k)
{
    for (uint32_t j = 0; j < k; j++) {
        uint32_t v = get32(p + 4 * j);
        memcpy(&x[j], &v, sizeof v);
    }
}

/* Head: "SKM1", k, iterations, cg_steps, regularization, alpha, seed, trained_at,
 * first and last batch, events, item and user records, item and user chunks, the
 * three rewards, then the Gram matrix (k*k doubles: stored so that a reopened engine
 * folds in with the very same matrix, whatever order its items are in) and the mean
 * item vector (k doubles). */
static size_t head_bytes(uint32_t k) { return HEAD_FIXED + ((size_t)k * k + k) * 8; }

static size_t records_per_chunk(size_t record)
{
    size_t n = CHUNK_BYTES / record;
    return n ? n : 1;
}

static void encode_head(const sako_factors *f, uint64_t n_item_chunks, uint64_t n_user_chunks,
                        unsigned char *h)
{
    memcpy(h, "SKM1", 4);
    put32(h + 4, f->k);
    put32(h + 8, f->iterations);
    put32(h + 12, f->cg_steps);
    unsigned char *p = h + 16;
    put_f64(p, f->regularization), p += 8;
    put_f64(p, f->alpha), p += 8;
    put64(p, f->seed), p += 8;
    put64(p, (uint64_t)f->trained_at), p += 8;
    put64(p, (uint64_t)f->first_batch), p += 8;
    put64(p, (uint64_t)f->last_batch), p += 8;
    put64(p, f->n_events), p += 8;
    put64(p, f->n_item_vectors), p += 8;
    put64(p, f->n_user_vectors), p += 8;
    put64(p, n_item_chunks), p += 8;
    put64(p, n_user_chunks), p += 8;
    put64(p, 0), p += 8; /* reserved */
    put_f64(p, f->reward[SAKO_EVENT_CLICK]), p += 8;
    put_f64(p, f->reward[SAKO_EVENT_CART]), p += 8;
    put_f64(p, f->reward[SAKO_EVENT_PURCHASE]), p += 8;
    for (size_t i = 0; i < (size_t)f->k * f->k; i++, p += 8)
        put_f64(p, f->gram[i]);
    for (uint32_t t = 0; t < f->k; t++, p += 8)
        put_f64(p, f->mean[t]);
}

int sako__factors_writer_init(sako_factors_writer *w, const sako_factors *f,
                              const sako_item_state *items, const sako_user_state *users)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    size_t item_rec = 8 + 4 * (size_t)f->k, user_rec = 12 + 4 * (size_t)f->k;
    w->per_item = records_per_chunk(item_rec);
    w->per_user = records_per_chunk(user_rec);
    w->n_item_chunks = (f->n_item_vectors + w->per_item - 1) / w->per_item;
    w->n_user_chunks = (f->n_user_vectors + w->per_user - 1) / w->per_user;
    size_t cap = head_bytes(f->k);
    if (cap < w->per_item * item_rec)
        cap = w->per_item * item_rec;
    if (cap < w->per_user * user_rec)
        cap = w->per_user * user_rec;
    w->buf = malloc(cap);
    w->item_ids = malloc((f->n_items ? f->n_items : 1) * sizeof *w->item_ids);
    w->user_ids = malloc((f->n_users ? f->n_users : 1) * sizeof *w->user_ids);
    if (!w->buf || !w->item_ids || !w->user_ids) {
        sako__factors_writer_free(w);
        return sako__error(SAKO_NOMEM, "out of memory writing the matrix factors");
    }
    for (size_t i = 0; i < f->n_items; i++)
        w->item_ids[i] = items[i].id;
    for (size_t u = 0; u < f->n_users; u++)
        w->user_ids[u] = users[u].id;
    w->part = SAKO_MF_PART_ITEMS;
    return SAKO_OK;
}

int sako__factors_writer_next(sako_factors_writer *w, int *part, int64_t *chunk,
                              const void **data, size_t *bytes)
{
    const sako_factors *f = w->f;
    size_t n = 0;
    if (w->part == SAKO_MF_PART_ITEMS) {
        size_t rec = 8 + 4 * (size_t)f->k;
        for (; w->next < f->n_items && n < w->per_item; w->next++)
            if (f->has[w->next]) {
                unsigned char *r = w->buf + n++ * rec;
                put64(r, (uint64_t)w->item_ids[w->next]);
                put_floats(r + 8, f->item + w->next * f->k, f->k);
            }
        if (n > 0) {
            *part = SAKO_MF_PART_ITEMS;
            *chunk = w->chunk++;
            *data = w->buf;
            *bytes = n * rec;
            return 1;
        }
        w->part = SAKO_MF_PART_USERS;
        w->next = 0;
        w->chunk = 0;
    }
    if (w->part == SAKO_MF_PART_USERS) {
        size_t rec = 12 + 4 * (size_t)f->k;
        for (; w->next < f->n_users && n < w->per_user; w->next++)
            if (f->events[w->next] != SAKO_FACTORS_NO_VECTOR) {
                unsigned char *r = w->buf + n++ * rec;
                put64(r, (uint64_t)w->user_ids[w->next]);
                put32(r + 8, f->events[w->next]);
                put_floats(r + 12, f->user + w->next * f->k, f->k);
            }
        if (n > 0) {
            *part = SAKO_MF_PART_USERS;
            *chunk = w->chunk++;
            *data = w->buf;
            *bytes = n * rec;
            return 1;
        }
        w->part = SAKO_MF_PART_HEAD;
    }
    if (w->part != SAKO_MF_PART_HEAD)
        return 0;
    /* The head last: it counts the chunks written before it. */
    encode_head(f, w->n_item_chunks, w->n_user_chunks, w->buf);
    *part = SAKO_MF_PART_HEAD;
    *chunk = 0;
    *data = w->buf;
    *bytes = head_bytes(f->k);
    w->part = -1;
    return 1;
}

void sako__factors_writer_free(sako_factors_writer *w)
{
    free(w->buf);
    free(w->item_ids);
    free(w->user_ids);
    memset(w, 0, sizeof *w);
}

typedef struct load_state {
    const sako_idmap *item_index, *user_index;
    size_t n_items, n_users;
    const sako_item_state *items;
    sako_factors *f;
    uint64_t item_chunks, user_chunks, item_records, user_records;
    uint64_t seen_item_chunks, seen_user_chunks;
} load_state;

static int damaged(int part, int64_t n, const char *why)
{
    return sako__error(SAKO_CORRUPT, "matrix factors: %s chunk %lld is damaged (%s)",
                       sako__store_mf_part_name(part), (long long)n, why);
}

static int load_head(load_state *ls, int64_t n, const unsigned char *h, size_t bytes)
{
    if (n != 0 || ls->f || bytes < HEAD_FIXED || memcmp(h, "SKM1", 4) != 0)
        return damaged(SAKO_MF_PART_HEAD, n, "not a head");
    uint32_t k = get32(h + 4);
    if (k < 1 || k > 1024 || bytes != head_bytes(k))
        return damaged(SAKO_MF_PART_HEAD, n, "bad factor count or size");
    sako_factors *f = factors_new(k, ls->n_items, ls->n_users);
    if (!f)
        return sako__error(SAKO_NOMEM, "out of memory loading the matrix factors");
    ls->f = f;
    f->iterations = get32(h + 8);
    f->cg_steps = get32(h + 12);
    const unsigned char *p = h + 16;
    f->regularization = get_f64(p), p += 8;
    f->alpha = get_f64(p), p += 8;
    f->seed = get64(p), p += 8;
    f->trained_at = (int64_t)get64(p), p += 8;
    f->first_batch = (int64_t)get64(p), p += 8;
    f->last_batch = (int64_t)get64(p), p += 8;
    f->n_events = get64(p), p += 8;
    ls->item_records = get64(p), p += 8;
    ls->user_records = get64(p), p += 8;
    ls->item_chunks = get64(p), p += 8;
    ls->user_chunks = get64(p), p += 8;
    p += 8;
    f->reward[SAKO_EVENT_CLICK] = get_f64(p), p += 8;
    f->reward[SAKO_EVENT_CART] = get_f64(p), p += 8;
    f->reward[SAKO_EVENT_PURCHASE] = get_f64(p), p += 8;
    for (size_t i = 0; i < (size_t)k * k; i++, p += 8)
        f->gram[i] = get_f64(p);
    for (uint32_t t = 0; t < k; t++, p += 8)
        f->mean[t] = get_f64(p);
    for (size_t i = 0; i < (size_t)k * k; i++)
        if (!isfinite(f->gram[i]) || (i < k && !isfinite(f->mean[i])))
            return damaged(SAKO_MF_PART_HEAD, n, "Gram matrix or mean not finite");
    return SAKO_OK;
}

static int load_chunk(void *payload, int part, int64_t n, const void *data, size_t bytes)
{
    load_state *ls = payload;
    const unsigned char *d = data;
    if (part == SAKO_MF_PART_HEAD)
        return load_head(ls, n, d, bytes);
    sako_factors *f = ls->f;
    if (!f)
        return damaged(part, n, "no head before it");
    int items = part == SAKO_MF_PART_ITEMS;
    if (!items && part != SAKO_MF_PART_USERS)
        return damaged(part, n, "unknown part");
    uint64_t *seen = items ? &ls->seen_item_chunks : &ls->seen_user_chunks;
    if ((uint64_t)n != *seen)
        return damaged(part, n, "out of sequence");
    (*seen)++;
    size_t rec = items ? 8 + 4 * (size_t)f->k : 12 + 4 * (size_t)f->k;
    if (bytes == 0 || bytes % rec != 0)
        return damaged(part, n, "cut short");
    for (size_t at = 0; at < bytes; at += rec) {
        int64_t id = (int64_t)get64(d + at);
        if (items) {
            uint32_t i = sako__idmap_get(ls->item_index, id);
            if (i == SAKO_NONE || i >= ls->n_items || f->has[i])
                return sako__error(SAKO_CORRUPT, "matrix factors: items chunk %lld names item "
                                   "%lld, %s", (long long)n, (long long)id,
                                   i == SAKO_NONE || i >= ls->n_items ? "not in the catalog"
                                                                      : "twice");
            get_floats(d + at + 8, f->item + (size_t)i * f->k, f->k);
            f->has[i] = 1;
            f->n_item_vectors++;
        } else {
            uint32_t u = sako__idmap_get(ls->user_index, id);
            if (u == SAKO_NONE || u >= ls->n_users || f->events[u] != SAKO_FACTORS_NO_VECTOR)
                return sako__error(SAKO_CORRUPT, "matrix factors: users chunk %lld names user "
                                   "%lld, %s", (long long)n, (long long)id,
                                   u == SAKO_NONE || u >= ls->n_users ? "not in the log" : "twice");
            f->events[u] = get32(d + at + 8);
            get_floats(d + at + 12, f->user + (size_t)u * f->k, f->k);
            f->n_user_vectors++;
        }
    }
    return SAKO_OK;
}

int sako__factors_load(sako_store *st, const sako_idmap *item_index, size_t n_items,
                       const sako_item_state *items, const sako_idmap *user_index,
                       size_t n_users, sako_factors **out)
{
    *out = NULL;
    load_state ls;
    memset(&ls, 0, sizeof ls);
    ls.item_index = item_index;
    ls.user_index = user_index;
    ls.n_items = n_items;
    ls.n_users = n_users;
    ls.items = items;
    int rc = sako__store_mf_read_chunks(st, load_chunk, &ls);
    if (rc == SAKO_OK && ls.f &&
        (ls.seen_item_chunks != ls.item_chunks || ls.seen_user_chunks != ls.user_chunks ||
         ls.f->n_item_vectors != ls.item_records || ls.f->n_user_vectors != ls.user_records))
        rc = sako__error(SAKO_CORRUPT, "matrix factors: %llu of %llu item chunks and %llu of "
                         "%llu user chunks stored (records %zu of %llu, %zu of %llu)",
                         (unsigned long long)ls.seen_item_chunks, (unsigned long long)ls.item_chunks,
                         (unsigned long long)ls.seen_user_chunks, (unsigned long long)ls.user_chunks,
                         ls.f->n_item_vectors, (unsigned long long)ls.item_records,
                         ls.f->n_user_vectors, (unsigned long long)ls.user_records);
    if (rc == SAKO_OK && ls.f) {
        sako_mf_options o = SAKO_MF_OPTIONS_INIT;
        o.threads = 0; /* the online cores: the index does not depend on their number */
        rc = build_index(ls.f, items, sako__mf_threads(&o));
    }
    if (rc) {
        sako__factors_free(ls.f);
        return rc;
    }
    *out = ls.f;
    return SAKO_OK;
}
