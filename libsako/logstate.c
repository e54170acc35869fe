/* The log checkpoint's encoding (see logstate_internal.h).
 *
 * Little-endian, fixed-width fields; doubles and floats as their bit patterns.
 *   head:  magic, format, batch, events, the personal parameters, both decay
 *          frames, the personal totals, and the number of chunks and records of
 *          each part (so that a missing chunk is noticed).
 *   item:  id, counts[4], organic[4], gap_days, gaps, baskets, n_partners,
 *          then per partner its item id and count.
 *   user:  id, n_baskets, basket_size, weight, basket_at, last_purchase_at,
 *          order_id, n, then per entry item id, basket, weight, gap_days, last_buys;
 *          (format 2, issue 10) then the user's interactions: events, n, and per pair
 *          item id, clicks, carts, purchases (u16 each). A format-1 checkpoint (0.4)
 *          has no interactions: they start empty at its batch.
 * Items and users whose state is all zero (what a fresh replay starts from) are
 * left out. */
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "logstate_internal.h"

#define MAGIC 0x534B4350u /* "SKCP" */
#define FORMAT 2

/* ------------------------------------------------------------ encoding */

static int grow(sako_logstate_writer *w, size_t extra)
{
    if (w->len + extra <= w->cap)
        return SAKO_OK;
    size_t cap = w->cap ? w->cap : 4096;
    while (cap < w->len + extra)
        cap *= 2;
    unsigned char *b = realloc(w->buf, cap);
    if (!b)
        return sako__error(SAKO_NOMEM, "out of memory encoding the log checkpoint");
    w->buf = b;
    w->cap = cap;
    return SAKO_OK;
}

static void put_u64(sako_logstate_writer *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w->buf[w->len++] = (unsigned char)(v >> (8 * i));
}

static void put_u32(sako_logstate_writer *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w->buf[w->len++] = (unsigned char)(v >> (8 * i));
}

static void put_i64(sako_logstate_writer *w, int64_t v) { put_u64(w, (uint64_t)v); }

static void put_u16(sako_logstate_writer *w, uint16_t v)
{
    w->buf[w->len++] = (unsigned char)v;
    w->buf[w->len++] = (unsigned char)(v >> 8);
}

static void put_f64(sako_logstate_writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    put_u64(w, u);
}

static void put_f32(sako_logstate_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    put_u32(w, u);
}

static int zero_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static int item_empty(const sako_logstate_src *s, size_t i)
{
    const sako_item_demand *d = i < s->personal->cap_items ? &s->personal->items[i] : NULL;
    if (!zero_bytes(&s->counts[i], sizeof s->counts[i]))
        return 0;
    if (!d)
        return 1;
    return d->n_partners == 0 && zero_bytes(d->organic, sizeof d->organic) &&
           zero_bytes(&d->gap_days, sizeof d->gap_days) && zero_bytes(&d->gaps, sizeof d->gaps) &&
           zero_bytes(&s->personal->item_baskets[i], sizeof(double));
}

static size_t item_record(const sako_logstate_src *s, size_t i, sako_logstate_writer *w)
{
    const sako_item_demand *d = i < s->personal->cap_items ? &s->personal->items[i] : NULL;
    uint32_t np = d ? d->n_partners : 0;
    size_t need = 8 + 8 * SAKO_EVENT_TYPES * 2 + 24 + 4 + (size_t)np * 12;
    if (!w)
        return need;
    put_i64(w, s->item_ids[i]);
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        put_f64(w, s->counts[i].n[t]);
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        put_f64(w, d ? d->organic[t] : 0.0);
    put_f64(w, d ? d->gap_days : 0.0);
    put_f64(w, d ? d->gaps : 0.0);
    put_f64(w, d ? s->personal->item_baskets[i] : 0.0);
    put_u32(w, np);
    for (uint32_t k = 0; k < np; k++) {
        put_i64(w, s->item_ids[d->partners[k].item]);
        put_f32(w, d->partners[k].count);
    }
    return need;
}

static int user_empty(const sako_personal *p, size_t u)
{
    const sako_history *h = &p->users[u];
    const sako_user_interactions *x = u < p->inter.cap_users ? &p->inter.users[u] : NULL;
    return h->n == 0 && h->n_baskets == 0 && h->basket_size == 0 &&
           zero_bytes(&h->weight, sizeof h->weight) && h->basket_at == 0 &&
           h->last_purchase_at == 0 && h->order_id == 0 && (!x || (x->n == 0 && x->events == 0));
}

static size_t user_record(const sako_logstate_src *s, size_t u, sako_logstate_writer *w)
{
    const sako_history *h = &s->personal->users[u];
    const sako_interactions *xs = &s->personal->inter;
    const sako_user_interactions *x = u < xs->cap_users ? &xs->users[u] : NULL;
    uint32_t n_pairs = x ? x->n : 0;
    size_t need = 8 + 8 + 8 + 24 + 4 + (size_t)h->n * 28 + 8 + (size_t)n_pairs * 14;
    if (!w)
        return need;
    put_i64(w, s->user_ids[u]);
    put_u32(w, h->n_baskets);
    put_u32(w, h->basket_size);
    put_f64(w, h->weight);
    put_i64(w, h->basket_at);
    put_i64(w, h->last_purchase_at);
    put_i64(w, h->order_id);
    put_u32(w, h->n);
    for (uint32_t k = 0; k < h->n; k++) {
        const sako_history_entry *x = &h->v[k];
        put_i64(w, s->item_ids[x->item]);
        put_u32(w, x->basket);
        put_f32(w, x->weight);
        put_f32(w, x->gap_days);
        put_u64(w, x->last_buys);
    }
    put_u32(w, x ? x->events : 0);
    put_u32(w, n_pairs);
    for (uint32_t k = 0; k < n_pairs; k++) {
        const sako_interaction *q = &x->v[k];
        put_i64(w, s->item_ids[q->item]);
        put_u16(w, q->clicks);
        put_u16(w, q->carts);
        put_u16(w, q->purchases);
    }
    return need;
}

static void put_frame(sako_logstate_writer *w, const sako_decay *d)
{
    put_f64(w, d->half_life_ms);
    put_i64(w, d->offset);
    put_i64(w, d->latest);
}

void sako__logstate_writer_init(sako_logstate_writer *w, const sako_logstate_src *src)
{
    memset(w, 0, sizeof *w);
    w->src = src;
    w->part = SAKO_LOG_PART_ITEMS;
}

int sako__logstate_next(sako_logstate_writer *w, int *part, int64_t *chunk, const void **data,
                        size_t *bytes)
{
    const sako_logstate_src *s = w->src;
    w->len = 0;
    int rc;
    while (w->part == SAKO_LOG_PART_ITEMS || w->part == SAKO_LOG_PART_USERS) {
        int items = w->part == SAKO_LOG_PART_ITEMS;
        size_t n = items ? s->n_items : s->n_users;
        while (w->next < n && w->len < SAKO_LOGSTATE_CHUNK) {
            size_t i = w->next++;
            if (items ? item_empty(s, i) : user_empty(s->personal, i))
                continue;
            size_t need = items ? item_record(s, i, NULL) : user_record(s, i, NULL);
            if ((rc = grow(w, need)))
                return rc;
            if (items)
                item_record(s, i, w);
            else
                user_record(s, i, w);
            w->n_records[w->part]++;
        }
        if (w->len > 0) {
            *part = w->part;
            *chunk = w->chunk++;
            w->n_chunks[w->part]++;
            *data = w->buf;
            *bytes = w->len;
            w->bytes += w->len;
            return 1;
        }
        /* this part is done */
        w->part = items ? SAKO_LOG_PART_USERS : SAKO_LOG_PART_HEAD;
        w->next = 0;
        w->chunk = 0;
    }
    if (w->part != SAKO_LOG_PART_HEAD)
        return 0;
    if ((rc = grow(w, 256)))
        return rc;
    const sako_personal *p = s->personal;
    put_u32(w, MAGIC);
    put_u32(w, FORMAT);
    put_i64(w, s->batch);
    put_i64(w, s->events);
    put_f64(w, s->pp->half_life_days);
    put_i64(w, s->pp->basket_gap_ms);
    put_f64(w, s->pp->decay_half_life_days);
    put_frame(w, s->counts_decay);
    put_frame(w, &p->decay);
    put_f64(w, p->baskets);
    put_f64(w, p->organic_purchases);
    put_f64(w, p->gap_days);
    put_f64(w, p->gaps);
    for (int k = SAKO_LOG_PART_ITEMS; k <= SAKO_LOG_PART_USERS; k++) {
        put_i64(w, w->n_chunks[k]);
        put_i64(w, w->n_records[k]);
    }
    *part = SAKO_LOG_PART_HEAD;
    *chunk = 0;
    *data = w->buf;
    *bytes = w->len;
    w->bytes += w->len;
    w->part = 3;
    return 1;
}

void sako__logstate_writer_free(sako_logstate_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* ------------------------------------------------------------ decoding */

typedef struct cursor {
    const unsigned char *p, *end;
    int bad;
} cursor;

static uint64_t get_u64(cursor *c)
{
    if (c->end - c->p < 8) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)c->p[i] << (8 * i);
    c->p += 8;
    return v;
}

static uint32_t get_u32(cursor *c)
{
    if (c->end - c->p < 4) {
        c->bad = 1;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)c->p[i] << (8 * i);
    c->p += 4;
    return v;
}

static int64_t get_i64(cursor *c) { return (int64_t)get_u64(c); }

static double get_f64(cursor *c)
{
    uint64_t u = get_u64(c);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static float get_f32(cursor *c)
{
    uint32_t u = get_u32(c);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void get_frame(cursor *c, sako_decay *d)
{
    d->half_life_ms = get_f64(c);
    d->offset = get_i64(c);
    d->latest = get_i64(c);
}

typedef struct load_state {
    sako_logstate_dst *d;
    int have_head;
    int64_t want_chunks[3], want_records[3];
    int64_t seen_chunks[3], seen_records[3];
    int part;              /* of the chunk being decoded, for messages */
    int64_t chunk;
    uint32_t format;       /* the head's (1: no interactions in user records) */
} load_state;

static int malformed(load_state *ls, const char *what)
{
    return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: %s chunk %lld is malformed "
                       "(%s)", (long long)ls->d->batch, sako__store_log_part_name(ls->part),
                       (long long)ls->chunk, what);
}

static int load_head(load_state *ls, cursor *c)
{
    sako_logstate_dst *d = ls->d;
    uint32_t magic = get_u32(c), format = get_u32(c);
    int64_t batch = get_i64(c);
    d->events = get_i64(c);
    double half_life_days = get_f64(c);
    int64_t gap_ms = get_i64(c);
    double decay_days = get_f64(c);
    sako_decay counts_frame, personal_frame;
    get_frame(c, &counts_frame);
    get_frame(c, &personal_frame);
    sako_personal *p = d->personal;
    p->baskets = get_f64(c);
    p->organic_purchases = get_f64(c);
    p->gap_days = get_f64(c);
    p->gaps = get_f64(c);
    for (int k = SAKO_LOG_PART_ITEMS; k <= SAKO_LOG_PART_USERS; k++) {
        ls->want_chunks[k] = get_i64(c);
        ls->want_records[k] = get_i64(c);
    }
    if (c->bad || c->p != c->end || magic != MAGIC)
        return malformed(ls, "not a checkpoint head");
    if (format != FORMAT && format != 1)
        return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: format %u is not 1 or %d",
                           (long long)d->batch, format, FORMAT);
    ls->format = format;
    if (batch != d->batch || d->events < 0)
        return malformed(ls, "its batch or event count");
    /* The state up to C was built with these: a replay after C must use the same. */
    if (half_life_days != d->pp->half_life_days || gap_ms != d->pp->basket_gap_ms ||
        decay_days != d->pp->decay_half_life_days ||
        counts_frame.half_life_ms != d->counts_decay->half_life_ms)
        return sako__error(SAKO_INVALID, "the event log up to batch %lld was compacted with "
                           "half_life_days %g, basket_gap_ms %lld and decay_half_life_days %g: "
                           "these cannot change any more (they are %g, %lld and %g now)",
                           (long long)d->batch, half_life_days, (long long)gap_ms, decay_days,
                           d->pp->half_life_days, (long long)d->pp->basket_gap_ms,
                           d->pp->decay_half_life_days);
    *d->counts_decay = counts_frame;
    p->decay = personal_frame;
    ls->have_head = 1;
    return SAKO_OK;
}

static uint32_t item_index(load_state *ls, int64_t id)
{
    if (!sako__idmap_valid_id(id))
        return SAKO_NONE;
    return sako__idmap_get(ls->d->items, id);
}

static int load_item(load_state *ls, cursor *c)
{
    sako_logstate_dst *d = ls->d;
    sako_personal *p = d->personal;
    uint32_t i = item_index(ls, get_i64(c));
    if (c->bad)
        return malformed(ls, "a record is cut short");
    if (i == SAKO_NONE || i >= p->cap_items || (d->counts && i >= d->cap_counts))
        return malformed(ls, "an item not in the catalog");
    sako_item_demand *x = &p->items[i];
    for (int t = 0; t < SAKO_EVENT_TYPES; t++) {
        double v = get_f64(c);
        if (d->counts)
            d->counts[i].n[t] = v;
    }
    for (int t = 0; t < SAKO_EVENT_TYPES; t++)
        x->organic[t] = get_f64(c);
    x->gap_days = get_f64(c);
    x->gaps = get_f64(c);
    p->item_baskets[i] = get_f64(c);
    uint32_t np = get_u32(c);
    if (c->bad || np > SAKO_PARTNERS || x->n_partners)
        return malformed(ls, "a product's partners");
    if (np && !x->partners && !(x->partners = malloc(SAKO_PARTNERS * sizeof *x->partners)))
        return sako__error(SAKO_NOMEM, "out of memory loading the log checkpoint");
    for (uint32_t k = 0; k < np; k++) {
        uint32_t j = item_index(ls, get_i64(c));
        float count = get_f32(c);
        if (c->bad || j == SAKO_NONE || j >= p->cap_items)
            return malformed(ls, "a partner not in the catalog");
        x->partners[k].item = j;
        x->partners[k].count = count;
    }
    x->n_partners = np;
    return SAKO_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    uint32_t x = ((const sako_history_entry *)a)->item, y = ((const sako_history_entry *)b)->item;
    return (x > y) - (x < y);
}

static int cmp_pair(const void *a, const void *b)
{
    uint32_t x = ((const sako_interaction *)a)->item, y = ((const sako_interaction *)b)->item;
    return (x > y) - (x < y);
}

static uint16_t get_u16(cursor *c)
{
    if (c->end - c->p < 2) {
        c->bad = 1;
        return 0;
    }
    uint16_t v = (uint16_t)(c->p[0] | (c->p[1] << 8));
    c->p += 2;
    return v;
}

/* A user's interactions (format 2), sorted by this engine's item indices. */
static int load_interactions(load_state *ls, cursor *c, uint32_t u)
{
    sako_interactions *xs = &ls->d->personal->inter;
    uint32_t events = get_u32(c), n = get_u32(c);
    if (c->bad || (size_t)(c->end - c->p) / 14 < n)
        return malformed(ls, "interactions cut short");
    if (u >= xs->cap_users)
        return malformed(ls, "a user with no stored row");
    sako_user_interactions *x = &xs->users[u];
    if (x->v || x->events)
        return malformed(ls, "a user's interactions twice");
    x->events = events;
    if (n) {
        x->v = malloc((size_t)n * sizeof *x->v);
        if (!x->v)
            return sako__error(SAKO_NOMEM, "out of memory loading the log checkpoint");
        x->cap = n;
    }
    for (uint32_t k = 0; k < n; k++) {
        sako_interaction *q = &x->v[k];
        uint32_t i = item_index(ls, get_i64(c));
        if (i == SAKO_NONE)
            return malformed(ls, "an interaction with an item not in the catalog");
        q->item = i;
        q->clicks = get_u16(c);
        q->carts = get_u16(c);
        q->purchases = get_u16(c);
        q->unused = 0;
        x->n = k + 1;
        xs->pairs++;
    }
    if (x->n > 1)
        qsort(x->v, x->n, sizeof *x->v, cmp_pair);
    for (uint32_t k = 1; k < x->n; k++)
        if (x->v[k].item == x->v[k - 1].item)
            return malformed(ls, "a product twice in a user's interactions");
    return SAKO_OK;
}

static int load_user(load_state *ls, cursor *c)
{
    sako_logstate_dst *d = ls->d;
    sako_personal *p = d->personal;
    int64_t id = get_i64(c);
    uint32_t u = sako__idmap_valid_id(id) ? sako__idmap_get(d->users, id) : SAKO_NONE;
    if (c->bad)
        return malformed(ls, "a record is cut short");
    if (u == SAKO_NONE || u >= p->cap_users)
        return malformed(ls, "a user with no stored row");
    sako_history *h = &p->users[u];
    if (h->v || h->n_baskets)
        return malformed(ls, "a user twice");
    h->n_baskets = get_u32(c);
    h->basket_size = get_u32(c);
    h->weight = get_f64(c);
    h->basket_at = get_i64(c);
    h->last_purchase_at = get_i64(c);
    h->order_id = get_i64(c);
    uint32_t n = get_u32(c);
    if (c->bad || (size_t)(c->end - c->p) / 28 < n)
        return malformed(ls, "a history is cut short");
    if (n) {
        h->v = malloc((size_t)n * sizeof *h->v);
        if (!h->v)
            return sako__error(SAKO_NOMEM, "out of memory loading the log checkpoint");
        h->cap = n;
    }
    for (uint32_t k = 0; k < n; k++) {
        sako_history_entry *x = &h->v[k];
        uint32_t i = item_index(ls, get_i64(c));
        if (i == SAKO_NONE)
            return malformed(ls, "a purchase of an item not in the catalog");
        x->item = i;
        x->basket = get_u32(c);
        x->weight = get_f32(c);
        x->gap_days = get_f32(c);
        x->last_buys = get_u64(c);
        h->n = k + 1;
        /* A basket still open at the checkpoint goes on in the log's tail, and each of
         * its later purchases adds a partner to this one: its table must exist then, as
         * it did online (reserved when it was bought), empty or not. */
        if (x->basket == h->n_baskets && sako__personal_reserve_partners(p, i))
            return sako__error(SAKO_NOMEM, "out of memory loading the log checkpoint");
    }
    /* Histories are sorted by item index, and this engine's indices may be in
     * another order than those of the engine that wrote the checkpoint. */
    if (h->n > 1) /* an empty history has no array, and qsort wants one */
        qsort(h->v, h->n, sizeof *h->v, cmp_entry);
    for (uint32_t k = 1; k < h->n; k++)
        if (h->v[k].item == h->v[k - 1].item)
            return malformed(ls, "a product twice in a history");
    return ls->format >= 2 ? load_interactions(ls, c, u) : SAKO_OK;
}

static int load_chunk(void *payload, int part, int64_t n, const void *data, size_t bytes)
{
    load_state *ls = payload;
    ls->part = part;
    ls->chunk = n;
    cursor c = { data, (const unsigned char *)data + bytes, 0 };
    if (part == SAKO_LOG_PART_HEAD)
        return n == 0 && !ls->have_head ? load_head(ls, &c) : malformed(ls, "a second head");
    if (!ls->have_head)
        return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: its head is missing",
                           (long long)ls->d->batch);
    if (part != SAKO_LOG_PART_ITEMS && part != SAKO_LOG_PART_USERS)
        return malformed(ls, "an unknown part");
    if (n != ls->seen_chunks[part])
        return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: %s chunk %lld is missing",
                           (long long)ls->d->batch, sako__store_log_part_name(part),
                           (long long)ls->seen_chunks[part]);
    ls->seen_chunks[part]++;
    int rc = SAKO_OK;
    if (ls->d->lock)
        pthread_rwlock_rdlock(ls->d->lock);
    while (rc == SAKO_OK && c.p < c.end) {
        rc = part == SAKO_LOG_PART_ITEMS ? load_item(ls, &c) : load_user(ls, &c);
        ls->seen_records[part]++;
    }
    if (ls->d->lock)
        pthread_rwlock_unlock(ls->d->lock);
    return rc;
}

int sako__logstate_load(sako_store *st, sako_logstate_dst *d)
{
    load_state ls;
    memset(&ls, 0, sizeof ls);
    ls.d = d;
    d->events = 0;
    int rc = sako__store_read_log_chunks(st, d->batch, load_chunk, &ls);
    if (rc)
        return rc;
    if (!ls.have_head)
        return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: its head is missing "
                           "(the batches up to it were deleted)", (long long)d->batch);
    for (int k = SAKO_LOG_PART_ITEMS; k <= SAKO_LOG_PART_USERS; k++)
        if (ls.seen_chunks[k] != ls.want_chunks[k] || ls.seen_records[k] != ls.want_records[k])
            return sako__error(SAKO_CORRUPT, "log checkpoint at batch %lld: %s has %lld chunks "
                               "and %lld records, its head says %lld and %lld",
                               (long long)d->batch, sako__store_log_part_name(k),
                               (long long)ls.seen_chunks[k], (long long)ls.seen_records[k],
                               (long long)ls.want_chunks[k], (long long)ls.want_records[k]);
    return SAKO_OK;
}
