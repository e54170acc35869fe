/* Per-user totals (users.c): reserved before a batch is written, applied after. */
#ifndef SAKO_USERS_INTERNAL_H
#define SAKO_USERS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "idmap_internal.h"
#include "store_internal.h"

typedef struct sako_user_state {
    int64_t id;
    int64_t last_event_at;
    uint64_t n_events;
    uint8_t dirty;             /* changed since the last checkpoint */
} sako_user_state;

typedef struct sako_users {
    sako_user_state *v;
    size_t n, cap;
    size_t n_dirty;            /* users whose `dirty` is set */
    sako_idmap index;
} sako_users;

/* Room for `extra` more users, so that applying events cannot fail. */
int sako__users_reserve(sako_users *u, size_t extra);
/* The index each event's user has, or will have once sako__users_apply() creates it
 * (new users get the next indices in order of first appearance); *n_users is the
 * number of users after the batch. */
int sako__users_indices(const sako_users *u, const sako_event *ev, size_t n, uint32_t *out,
                        size_t *n_users);
/* Count one event for its user, creating the user (room reserved). */
void sako__users_apply(sako_users *u, const sako_event *ev);
/* The stored users (checkpointed totals); SAKO_CORRUPT on a bad row. */
int sako__users_load(sako_users *u, sako_store *st);
/* Write every dirty user (inside the caller's transaction)... */
int sako__users_checkpoint(const sako_users *u, sako_store *st);
/* ...and, once it committed, forget that they were dirty. */
void sako__users_clean(sako_users *u);
void sako__users_free(sako_users *u);

#endif
