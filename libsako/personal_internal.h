/* The personal engine's state (personal.c): baskets, each user's purchase history,
 * each product's demand and its bought-together partners.
 *
 * Everything here is a deterministic function of the event log, applied batch by
 * batch in log order: open replays the whole log into it and sako_retrain builds a
 * fresh one the same way, so both reproduce the online state bit for bit. */
#ifndef SAKO_PERSONAL_INTERNAL_H
#define SAKO_PERSONAL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "decay_internal.h"
#include "interactions_internal.h"
#include "sako.h"

/* Bought-together partners kept per product (a bounded, deterministic heavy-hitters
 * table: the space-saving algorithm), and the basket items paired with a new one. */
#define SAKO_PARTNERS 32
#define SAKO_BASKET_PAIRS 64

#define SAKO_DAY_MS 86400000.0

/* One product of a user's history: 24 bytes. */
typedef struct sako_history_entry {
    uint32_t item;        /* item index */
    uint32_t basket;      /* the user's basket number of its latest purchase */
    float weight;         /* n_uj: decayed number of baskets holding it, as of `last` */
    float gap_days;       /* sum of the repurchase intervals */
    uint64_t last_buys;   /* time of its latest purchase (unix ms, < 2^48) << 16 | baskets
                             holding it (saturating at 65535) */
} sako_history_entry;

#define SAKO_ENTRY_LAST(x) ((int64_t)((x)->last_buys >> 16))
#define SAKO_ENTRY_BUYS(x) ((uint32_t)((x)->last_buys & 0xFFFFu))

/* One user's purchase history; entries sorted by item index. */
typedef struct sako_history {
    sako_history_entry *v;
    uint32_t n, cap;
    uint32_t n_baskets;     /* also the number of the current basket */
    uint32_t basket_size;   /* distinct products in the current basket */
    double weight;          /* W_u: decayed number of baskets, as of basket_at */
    int64_t basket_at;      /* start of the current basket */
    int64_t last_purchase_at;
    int64_t order_id;       /* of the current basket, 0 if none */
} sako_history;

typedef struct sako_partner {
    uint32_t item;
    float count;            /* co-occurrences (an over-estimate by at most the evicted count) */
} sako_partner;

/* One product's population-level personal state. */
typedef struct sako_item_demand {
    double organic[SAKO_EVENT_TYPES]; /* events without a recommendation id */
    double gap_days;        /* every user's repurchase intervals: sum... */
    double gaps;            /* ...and count (both forward-decayed, see sako_personal) */
    uint32_t n_partners;
    sako_partner *partners; /* SAKO_PARTNERS slots once allocated, else NULL */
} sako_item_demand;

/* With decay, the product-level sums (c_j, B, organic counts, interval sums, partner
 * counts) are forward-decayed in the frame `decay` (decay_internal.h): their value at
 * the prior epoch's time is sum * sako__decay_scale(). organic_purchases stays a plain
 * count (it only says whether demand has enough data). Histories keep their own
 * lazy decay with half_life_days. */
typedef struct sako_personal {
    sako_history *users;    /* parallel to the engine's users (capacity cap_users) */
    size_t cap_users;
    sako_item_demand *items;/* parallel to the engine's items */
    double *item_baskets;   /* c_j, baskets holding each item: dense, read per candidate */
    size_t cap_items;
    double baskets;         /* B: baskets so far */
    double organic_purchases;
    double gap_days, gaps;  /* every repurchase interval: sum and count */
    sako_decay decay;       /* the frame of the product-level sums */
    sako_interactions inter;/* each user's clicks, carts and purchases per product (the
                               matrix factorisation's r_ui; not decayed) */
} sako_personal;

/* The options the state depends on. */
typedef struct sako_personal_params {
    double half_life_days;
    int64_t basket_gap_ms;
    double decay_half_life_days;   /* product-level sums; 0: no decay */
} sako_personal_params;

/* 2^(-dt / half-life), dt in ms; 1 for dt <= 0. */
double sako__personal_decay(int64_t dt_ms, double half_life_days);

int sako__personal_reserve_items(sako_personal *p, size_t n_items);
/* The partner table of one product (a purchase pairs it with the rest of its basket:
 * a checkpoint's open baskets need theirs before the log's tail is replayed). */
int sako__personal_reserve_partners(sako_personal *p, uint32_t item);
/* Room for the batch: `user` and `item` are the (possibly provisional) indices of
 * each event; purchases need history entries and partner tables. */
int sako__personal_reserve(sako_personal *p, size_t n_users, const sako_event *ev,
                           const uint32_t *user, const uint32_t *item, size_t n);
/* One event (room reserved: cannot fail). */
void sako__personal_apply(sako_personal *p, const sako_personal_params *pp, const sako_event *ev,
                          int64_t order_id, uint32_t user, uint32_t item);
/* The entry of `item` in a history, or NULL. */
const sako_history_entry *sako__personal_find(const sako_history *h, uint32_t item);
/* The shrunk lift of a pair: (C_ij + k) / (c_i c_j / B + k), the sums decayed with
 * `scale` (sako__decay_scale of the frame; 1 without decay). */
double sako__personal_lift(const sako_personal *p, uint32_t i, const sako_partner *pair, double k,
                           double scale);
/* The product's population repurchase interval in days: its own intervals shrunk to
 * the catalog's (which starts at two weeks); sums decayed with `scale`. */
double sako__personal_interval(const sako_personal *p, uint32_t item, double scale);
void sako__personal_free(sako_personal *p);

#endif
