/* Each user's interactions with each product (interactions.c): the raw material of
 * the matrix factorisation's confidence matrix, r_ui.
 *
 * Kept for every user, from the whole log, as part of the personal state (so that
 * open, sako_update and a retrain's replay maintain it exactly as they maintain the
 * histories). Counts are kept, not r_ui itself, so that the rewards weigh them when
 * the matrix is built (a reconfigured reward needs no replay). */
#ifndef SAKO_INTERACTIONS_INTERNAL_H
#define SAKO_INTERACTIONS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"

/* One (user, product) pair: 12 bytes. Counts saturate at 65535. */
typedef struct sako_interaction {
    uint32_t item;        /* item index */
    uint16_t clicks, carts, purchases;
    uint16_t unused;
} sako_interaction;

/* One user's pairs, sorted by item index. `events` counts the clicks, carts and
 * purchases applied (never saturating below 2^32): a trained vector is current while
 * it equals the count the training saw. */
typedef struct sako_user_interactions {
    sako_interaction *v;
    uint32_t n, cap;
    uint32_t events;
} sako_user_interactions;

typedef struct sako_interactions {
    sako_user_interactions *users; /* parallel to the engine's users */
    size_t cap_users;
    uint64_t pairs;                /* sum of n over users */
} sako_interactions;

/* Room for a batch: one pair per click, cart or purchase is an upper bound. */
int sako__interactions_reserve(sako_interactions *x, size_t n_users, const sako_event *ev,
                               const uint32_t *user, size_t n);
/* One event (room reserved: cannot fail; impressions change nothing). */
void sako__interactions_apply(sako_interactions *x, const sako_event *ev, uint32_t user,
                              uint32_t item);
/* r_ui of a pair: the rewards of its clicks, carts and purchases (reward indexed by
 * sako_event_type). */
double sako__interactions_value(const sako_interaction *p, const double *reward);
void sako__interactions_free(sako_interactions *x);

#endif
