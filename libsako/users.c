/* Users: one entry per user id seen in an event, with its totals. The only user
 * state libsako keeps today; personalisation will grow here. */
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "users_internal.h"

int sako__users_reserve(sako_users *u, size_t extra)
{
    size_t need = u->n + extra;
    if (need > (size_t)UINT32_MAX - 1)
        return sako__error(SAKO_RANGE, "more than %u users", UINT32_MAX - 1);
    if (need > u->cap) {
        size_t cap = u->cap ? u->cap : 64;
        while (cap < need)
            cap *= 2;
        sako_user_state *v = realloc(u->v, cap * sizeof *v);
        if (!v)
            return sako__error(SAKO_NOMEM, "out of memory growing users to %zu", cap);
        u->v = v;
        u->cap = cap;
    }
    return sako__idmap_reserve(&u->index, extra);
}

void sako__users_apply(sako_users *u, const sako_event *ev)
{
    uint32_t x = sako__idmap_get(&u->index, ev->user_id);
    if (x == SAKO_NONE) {
        x = (uint32_t)u->n++;
        memset(&u->v[x], 0, sizeof u->v[x]);
        u->v[x].id = ev->user_id;
        sako__idmap_put(&u->index, ev->user_id, x);
    }
    sako_user_state *us = &u->v[x];
    us->n_events++;
    if (ev->time > us->last_event_at)
        us->last_event_at = ev->time;
    if (!us->dirty) {
        us->dirty = 1;
        u->n_dirty++;
    }
}

int sako__users_indices(const sako_users *u, const sako_event *ev, size_t n, uint32_t *out,
                        size_t *n_users)
{
    sako_idmap fresh;
    memset(&fresh, 0, sizeof fresh);
    uint32_t next = (uint32_t)u->n;
    int rc = SAKO_OK;
    for (size_t i = 0; i < n && rc == SAKO_OK; i++) {
        uint32_t x = sako__idmap_get(&u->index, ev[i].user_id);
        if (x == SAKO_NONE && (x = sako__idmap_get(&fresh, ev[i].user_id)) == SAKO_NONE &&
            !(rc = sako__idmap_reserve(&fresh, 1))) {
            x = next++;
            sako__idmap_put(&fresh, ev[i].user_id, x);
        }
        out[i] = x;
    }
    sako__idmap_free(&fresh);
    *n_users = next;
    return rc;
}

/* ------------------------------------------------------------- load */

typedef struct load_state {
    sako_users *u;
    size_t count;
} load_state;

static int load_begin(void *payload, size_t n)
{
    load_state *ls = payload;
    ls->count = n;
    return sako__users_reserve(ls->u, n);
}

static int load_row(void *payload, const sako_user_row *r)
{
    load_state *ls = payload;
    sako_users *u = ls->u;
    if (!sako__idmap_valid_id(r->id) || u->n >= ls->count ||
        sako__idmap_get(&u->index, r->id) != SAKO_NONE)
        return sako__error(SAKO_CORRUPT, "database damaged: %s (id %lld)", "user row out of range",
                           (long long)r->id);
    sako_user_state *us = &u->v[u->n];
    us->id = r->id;
    us->n_events = r->n_events;
    us->last_event_at = r->last_event_at;
    us->dirty = 0;
    sako__idmap_put(&u->index, r->id, (uint32_t)u->n++);
    return SAKO_OK;
}

int sako__users_load(sako_users *u, sako_store *st)
{
    load_state ls = { u, 0 };
    return sako__store_read_users(st, load_begin, load_row, &ls);
}

/* ------------------------------------------------------- checkpoint */

int sako__users_checkpoint(const sako_users *u, sako_store *st)
{
    int rc = SAKO_OK;
    for (size_t i = 0; i < u->n && rc == SAKO_OK; i++) {
        const sako_user_state *us = &u->v[i];
        if (!us->dirty)
            continue;
        sako_user_row r = { us->id, us->n_events, us->last_event_at };
        rc = sako__store_write_user(st, &r);
    }
    return rc;
}

void sako__users_clean(sako_users *u)
{
    for (size_t i = 0; i < u->n; i++)
        u->v[i].dirty = 0;
    u->n_dirty = 0;
}

void sako__users_free(sako_users *u)
{
    free(u->v);
    sako__idmap_free(&u->index);
    memset(u, 0, sizeof *u);
}
