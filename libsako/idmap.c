/* Open-addressing hash map id -> index, linear probing, load factor <= 1/2. */
#include <stdlib.h>

#include "error_internal.h"
#include "idmap_internal.h"

static size_t slot_of(int64_t key, size_t mask)
{
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL; /* Fibonacci hashing */
    return (size_t)(h ^ (h >> 29)) & mask;
}

void sako__idmap_free(sako_idmap *m)
{
    free(m->keys);
    free(m->values);
    m->keys = NULL;
    m->values = NULL;
    m->mask = 0;
    m->count = 0;
}

uint32_t sako__idmap_get(const sako_idmap *m, int64_t key)
{
    if (!m->keys || key <= 0)
        return SAKO_NONE;
    for (size_t s = slot_of(key, m->mask);; s = (s + 1) & m->mask) {
        if (m->keys[s] == key)
            return m->values[s];
        if (m->keys[s] == 0)
            return SAKO_NONE;
    }
}

void sako__idmap_put(sako_idmap *m, int64_t key, uint32_t value)
{
    size_t s = slot_of(key, m->mask);
    while (m->keys[s] != 0 && m->keys[s] != key)
        s = (s + 1) & m->mask;
    if (m->keys[s] == 0)
        m->count++;
    m->keys[s] = key;
    m->values[s] = value;
}

int sako__idmap_reserve(sako_idmap *m, size_t extra)
{
    size_t need = (m->count + extra) * 2;
    size_t cap = m->keys ? m->mask + 1 : 0;
    if (need <= cap)
        return SAKO_OK;
    size_t ncap = cap ? cap : 64;
    while (ncap < need)
        ncap *= 2;
    sako_idmap n = { calloc(ncap, sizeof(int64_t)), malloc(ncap * sizeof(uint32_t)),
                     ncap - 1, 0 };
    if (!n.keys || !n.values) {
        free(n.keys);
        free(n.values);
        return sako__error(SAKO_NOMEM, "out of memory growing an id map to %zu slots", ncap);
    }
    for (size_t s = 0; s < cap; s++)
        if (m->keys[s] != 0)
            sako__idmap_put(&n, m->keys[s], m->values[s]);
    sako__idmap_free(m);
    *m = n;
    return SAKO_OK;
}
