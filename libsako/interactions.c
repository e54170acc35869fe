/* Each user's clicks, carts and purchases per product (the confidence matrix's
 * counts). Impressions are not kept: in implicit ALS an unobserved pair already
 * has preference 0 at confidence 1, and a shown-but-ignored product is that. */
#include <stdlib.h>
#include <string.h>

#include "error_internal.h"
#include "interactions_internal.h"

static int reserve_users(sako_interactions *x, size_t n_users)
{
    if (n_users <= x->cap_users)
        return SAKO_OK;
    size_t cap = x->cap_users ? x->cap_users : 64;
    while (cap < n_users)
        cap *= 2;
    sako_user_interactions *v = realloc(x->users, cap * sizeof *v);
    if (!v)
        return sako__error(SAKO_NOMEM, "out of memory growing interactions to %zu users", cap);
    memset(v + x->cap_users, 0, (cap - x->cap_users) * sizeof *v);
    x->users = v;
    x->cap_users = cap;
    return SAKO_OK;
}

static int reserve_pairs(sako_user_interactions *u, size_t extra)
{
    size_t need = (size_t)u->n + extra;
    if (need <= u->cap)
        return SAKO_OK;
    size_t cap = u->cap ? u->cap : 4;
    while (cap < need)
        cap *= 2;
    if (cap > UINT32_MAX)
        return sako__error(SAKO_RANGE, "a user's interactions exceed 2^32 products");
    sako_interaction *v = realloc(u->v, cap * sizeof *v);
    if (!v)
        return sako__error(SAKO_NOMEM, "out of memory growing a user's interactions to %zu", cap);
    u->v = v;
    u->cap = (uint32_t)cap;
    return SAKO_OK;
}

static int counted(int type)
{
    return type == SAKO_EVENT_CLICK || type == SAKO_EVENT_CART || type == SAKO_EVENT_PURCHASE;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t p = *(const uint32_t *)a, q = *(const uint32_t *)b;
    return (p > q) - (p < q);
}

int sako__interactions_reserve(sako_interactions *x, size_t n_users, const sako_event *ev,
                               const uint32_t *user, size_t n)
{
    int rc = reserve_users(x, n_users);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += counted(ev[i].type);
    if (rc || m == 0)
        return rc;
    uint32_t *who = malloc(m * sizeof *who);
    if (!who)
        return sako__error(SAKO_NOMEM, "out of memory reserving %zu interactions", m);
    m = 0;
    for (size_t i = 0; i < n; i++)
        if (counted(ev[i].type))
            who[m++] = user[i];
    qsort(who, m, sizeof *who, cmp_u32);
    for (size_t i = 0; i < m && rc == SAKO_OK;) {
        size_t j = i;
        while (j < m && who[j] == who[i])
            j++;
        rc = reserve_pairs(&x->users[who[i]], j - i);
        i = j;
    }
    free(who);
    return rc;
}

static void bump(uint16_t *c)
{
    if (*c < UINT16_MAX)
        (*c)++;
}

void sako__interactions_apply(sako_interactions *x, const sako_event *ev, uint32_t user,
                              uint32_t item)
{
    if (!counted(ev->type))
        return;
    sako_user_interactions *u = &x->users[user];
    uint32_t lo = 0, hi = u->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (u->v[mid].item < item)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == u->n || u->v[lo].item != item) {
        memmove(&u->v[lo + 1], &u->v[lo], (u->n - lo) * sizeof *u->v);
        memset(&u->v[lo], 0, sizeof *u->v);
        u->v[lo].item = item;
        u->n++;
        x->pairs++;
    }
    sako_interaction *p = &u->v[lo];
    bump(ev->type == SAKO_EVENT_CLICK ? &p->clicks : ev->type == SAKO_EVENT_CART ? &p->carts
                                                                              : &p->purchases);
    if (u->events < UINT32_MAX)
        u->events++;
}

double sako__interactions_value(const sako_interaction *p, const double *reward)
{
    return reward[SAKO_EVENT_CLICK] * p->clicks + reward[SAKO_EVENT_CART] * p->carts +
           reward[SAKO_EVENT_PURCHASE] * p->purchases;
}

void sako__interactions_free(sako_interactions *x)
{
    for (size_t i = 0; i < x->cap_users; i++)
        free(x->users[i].v);
    free(x->users);
    memset(x, 0, sizeof *x);
}
