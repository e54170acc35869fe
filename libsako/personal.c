/* The personal engine's state, maintained online: baskets, purchase histories with
 * time decay and repurchase intervals, product demand, bought-together partners.
 *
 * Decay is lazy: a quantity is stored with the time it was last brought up to date
 * and is decayed on read, so an event touches only what it changes. A basket is
 * the purchases of one order (order_id), or with none, a user's purchases less than
 * basket_gap_ms apart. Partners are a per-product space-saving table of
 * SAKO_PARTNERS slots: a pair seen often stays, a rare one is evicted by the next
 * newcomer, which inherits the evicted count (so counts over-estimate by at most
 * that). All of it is deterministic given the order of events. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "personal_internal.h"

double sako__personal_decay(int64_t dt_ms, double half_life_days)
{
    if (dt_ms <= 0)
        return 1.0;
    return exp2(-(double)dt_ms / (half_life_days * SAKO_DAY_MS));
}

/* ------------------------------------------------------------ memory */

int sako__personal_reserve_items(sako_personal *p, size_t n_items)
{
    if (n_items <= p->cap_items)
        return SAKO_OK;
    size_t cap = p->cap_items ? p->cap_items : 64;
    while (cap < n_items)
        cap *= 2;
    sako_item_demand *v = realloc(p->items, cap * sizeof *v);
    if (v)
        p->items = v;
    double *b = realloc(p->item_baskets, cap * sizeof *b);
    if (b)
        p->item_baskets = b;
    if (!v || !b)
        return sako__error(SAKO_NOMEM, "out of memory growing product demand to %zu", cap);
    memset(p->items + p->cap_items, 0, (cap - p->cap_items) * sizeof *v);
    memset(p->item_baskets + p->cap_items, 0, (cap - p->cap_items) * sizeof *b);
    p->cap_items = cap;
    return SAKO_OK;
}

static int reserve_users(sako_personal *p, size_t n_users)
{
    if (n_users <= p->cap_users)
        return SAKO_OK;
    size_t cap = p->cap_users ? p->cap_users : 64;
    while (cap < n_users)
        cap *= 2;
    sako_history *v = realloc(p->users, cap * sizeof *v);
    if (!v)
        return sako__error(SAKO_NOMEM, "out of memory growing histories to %zu", cap);
    memset(v + p->cap_users, 0, (cap - p->cap_users) * sizeof *v);
    p->users = v;
    p->cap_users = cap;
    return SAKO_OK;
}

static int reserve_entries(sako_history *h, size_t extra)
{
    size_t need = (size_t)h->n + extra;
    if (need <= h->cap)
        return SAKO_OK;
    if (need > UINT32_MAX)
        return sako__error(SAKO_RANGE, "a user's history exceeds %u products", UINT32_MAX);
    size_t cap = h->cap ? h->cap : 8;
    while (cap < need)
        cap += cap / 2 + 8;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    sako_history_entry *v = realloc(h->v, cap * sizeof *v);
    if (!v)
        return sako__error(SAKO_NOMEM, "out of memory growing a purchase history to %zu", cap);
    h->v = v;
    h->cap = (uint32_t)cap;
    return SAKO_OK;
}

static int reserve_partners(sako_item_demand *d)
{
    if (d->partners)
        return SAKO_OK;
    d->partners = malloc(SAKO_PARTNERS * sizeof *d->partners);
    if (!d->partners)
        return sako__error(SAKO_NOMEM, "out of memory for a product's partners");
    return SAKO_OK;
}

int sako__personal_reserve_partners(sako_personal *p, uint32_t item)
{
    return reserve_partners(&p->items[item]);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int sako__personal_reserve(sako_personal *p, size_t n_users, const sako_event *ev,
                           const uint32_t *user, const uint32_t *item, size_t n)
{
    int rc = reserve_users(p, n_users);
    size_t n_items = 0, n_buys = 0;
    for (size_t i = 0; i < n; i++) {
        if (item[i] + (size_t)1 > n_items)
            n_items = item[i] + (size_t)1;
        n_buys += ev[i].type == SAKO_EVENT_PURCHASE;
    }
    if (rc == SAKO_OK)
        rc = sako__personal_reserve_items(p, n_items);
    if (rc == SAKO_OK)
        rc = sako__interactions_reserve(&p->inter, n_users, ev, user, n);
    if (rc || n_buys == 0)
        return rc;
    /* One entry per purchase is an upper bound; it is what a new product needs. */
    uint32_t *buyers = malloc(n_buys * sizeof *buyers);
    if (!buyers)
        return sako__error(SAKO_NOMEM, "out of memory reserving %zu purchases", n_buys);
    size_t m = 0;
    for (size_t i = 0; i < n && rc == SAKO_OK; i++)
        if (ev[i].type == SAKO_EVENT_PURCHASE) {
            buyers[m++] = user[i];
            rc = reserve_partners(&p->items[item[i]]);
        }
    qsort(buyers, m, sizeof *buyers, cmp_u32);
    for (size_t i = 0; i < m && rc == SAKO_OK;) {
        size_t j = i;
        while (j < m && buyers[j] == buyers[i])
            j++;
        rc = reserve_entries(&p->users[buyers[i]], j - i);
        i = j;
    }
    free(buyers);
    return rc;
}

/* ------------------------------------------------------------ lookups */

static uint32_t lower_bound(const sako_history *h, uint32_t item)
{
    uint32_t lo = 0, hi = h->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (h->v[mid].item < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const sako_history_entry *sako__personal_find(const sako_history *h, uint32_t item)
{
    uint32_t at = lower_bound(h, item);
    return at < h->n && h->v[at].item == item ? &h->v[at] : NULL;
}

double sako__personal_lift(const sako_personal *p, uint32_t i, const sako_partner *pair, double k,
                           double scale)
{
    double bs = p->baskets * scale;
    double b = bs > 1.0 ? bs : 1.0;
    double expected = p->item_baskets[i] * scale * (p->item_baskets[pair->item] * scale) / b;
    return ((double)pair->count * scale + k) / (expected + k);
}

/* ------------------------------------------------------------ updates */

/* One more co-occurrence (of weight w) of `other` in `item`'s table (space-saving). */
static void partner_add(sako_item_demand *d, uint32_t other, float w)
{
    sako_partner *v = d->partners;
    uint32_t min_at = 0;
    for (uint32_t j = 0; j < d->n_partners; j++) {
        if (v[j].item == other) {
            v[j].count += w;
            return;
        }
        if (v[j].count < v[min_at].count)
            min_at = j;
    }
    if (d->n_partners < SAKO_PARTNERS) {
        v[d->n_partners].item = other;
        v[d->n_partners].count = w;
        d->n_partners++;
        return;
    }
    v[min_at].item = other;
    v[min_at].count += w;
}

/* The decay offset moved by delta: every product-level sum times 2^-delta (exact). */
static void rebase(sako_personal *p, int64_t delta)
{
    for (size_t i = 0; i < p->cap_items; i++) {
        sako_item_demand *d = &p->items[i];
        p->item_baskets[i] = sako__decay_shrink(p->item_baskets[i], delta);
        for (int t = 0; t < SAKO_EVENT_TYPES; t++)
            d->organic[t] = sako__decay_shrink(d->organic[t], delta);
        d->gap_days = sako__decay_shrink(d->gap_days, delta);
        d->gaps = sako__decay_shrink(d->gaps, delta);
        for (uint32_t j = 0; j < d->n_partners; j++)
            d->partners[j].count = (float)sako__decay_shrink((double)d->partners[j].count, delta);
    }
    p->baskets = sako__decay_shrink(p->baskets, delta);
    p->gap_days = sako__decay_shrink(p->gap_days, delta);
    p->gaps = sako__decay_shrink(p->gaps, delta);
}

/* Start a new basket for the user at time t (the previous one is complete). */
static void new_basket(sako_personal *p, const sako_personal_params *pp, sako_history *h,
                       int64_t t, int64_t order_id, double w)
{
    int64_t at = t > h->basket_at ? t : h->basket_at;
    h->weight = h->weight * sako__personal_decay(at - h->basket_at, pp->half_life_days) + 1.0;
    h->basket_at = at;
    h->n_baskets++;
    h->basket_size = 0;
    h->order_id = order_id;
    p->baskets += w;
}

static int is_new_basket(const sako_personal_params *pp, const sako_history *h, int64_t t,
                         int64_t order_id)
{
    if (h->n_baskets == 0)
        return 1;
    if (order_id != 0 || h->order_id != 0)
        return order_id != h->order_id;
    int64_t gap = t - h->last_purchase_at;
    return gap > pp->basket_gap_ms || -gap > pp->basket_gap_ms;
}

static void purchase(sako_personal *p, const sako_personal_params *pp, sako_history *h,
                     uint32_t item, int64_t t, int64_t order_id, double w)
{
    if (is_new_basket(pp, h, t, order_id))
        new_basket(p, pp, h, t, order_id, w);
    if (t > h->last_purchase_at)
        h->last_purchase_at = t;
    uint32_t at = lower_bound(h, item);
    sako_history_entry *x = at < h->n && h->v[at].item == item ? &h->v[at] : NULL;
    if (x && x->basket == h->n_baskets)
        return; /* already in this basket */
    sako_item_demand *d = &p->items[item];
    if (x) {
        int64_t last = SAKO_ENTRY_LAST(x);
        uint32_t buys = SAKO_ENTRY_BUYS(x);
        if (t > last) {
            double gap = (double)(t - last) / SAKO_DAY_MS;
            x->gap_days = (float)((double)x->gap_days + gap);
            d->gap_days += gap * w;
            d->gaps += w;
            p->gap_days += gap * w;
            p->gaps += w;
        }
        int64_t now = t > last ? t : last;
        x->weight = (float)((double)x->weight * sako__personal_decay(now - last, pp->half_life_days) + 1.0);
        if (buys < 0xFFFFu)
            buys++;
        x->last_buys = (uint64_t)now << 16 | buys;
        x->basket = h->n_baskets;
    } else {
        memmove(&h->v[at + 1], &h->v[at], (h->n - at) * sizeof *h->v);
        h->n++;
        x = &h->v[at];
        x->item = item;
        x->basket = h->n_baskets;
        x->weight = 1.0f;
        x->gap_days = 0.0f;
        x->last_buys = (uint64_t)t << 16 | 1u;
    }
    p->item_baskets[item] += w;
    /* Pair it with the basket's earlier products (the first SAKO_BASKET_PAIRS). */
    if (h->basket_size < SAKO_BASKET_PAIRS) {
        for (uint32_t j = 0; j < h->n; j++) {
            const sako_history_entry *y = &h->v[j];
            if (y->basket != h->n_baskets || y->item == item)
                continue;
            partner_add(d, y->item, (float)w);
            partner_add(&p->items[y->item], item, (float)w);
        }
    }
    h->basket_size++;
}

void sako__personal_apply(sako_personal *p, const sako_personal_params *pp, const sako_event *ev,
                          int64_t order_id, uint32_t user, uint32_t item)
{
    /* Every event moves the frame (impressions too), so that it sees the same times
     * as the population counts' frame and both share one offset. */
    p->decay.half_life_ms = pp->decay_half_life_days > 0.0 ? pp->decay_half_life_days * SAKO_DAY_MS : 0.0;
    int64_t delta = sako__decay_observe(&p->decay, ev->time);
    if (delta)
        rebase(p, delta);
    double w = sako__decay_weight(&p->decay, ev->time);
    if (ev->rec_id == 0 && ev->type != SAKO_EVENT_IMPRESSION) {
        p->items[item].organic[ev->type] += w;
        if (ev->type == SAKO_EVENT_PURCHASE)
            p->organic_purchases += 1.0;
    }
    if (ev->type == SAKO_EVENT_PURCHASE)
        purchase(p, pp, &p->users[user], item, ev->time, order_id, w);
    sako__interactions_apply(&p->inter, ev, user, item);
}

double sako__personal_interval(const sako_personal *p, uint32_t item, double scale)
{
    double all = (p->gap_days * scale + 14.0 * 10.0) / (p->gaps * scale + 10.0);
    const sako_item_demand *d = &p->items[item];
    return (d->gap_days * scale + 2.0 * all) / (d->gaps * scale + 2.0);
}

void sako__personal_free(sako_personal *p)
{
    for (size_t i = 0; i < p->cap_users; i++)
        free(p->users[i].v);
    for (size_t i = 0; i < p->cap_items; i++)
        free(p->items[i].partners);
    free(p->users);
    free(p->items);
    free(p->item_baskets);
    sako__interactions_free(&p->inter);
    memset(p, 0, sizeof *p);
}
