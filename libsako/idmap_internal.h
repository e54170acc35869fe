/* Ids and the open-addressing map from an id to an array index (idmap.c). Bottom layer. */
#ifndef SAKO_IDMAP_INTERNAL_H
#define SAKO_IDMAP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"

#define SAKO_NONE UINT32_MAX /* "no index": the catalog root, an absent entry */

/* Every id the API takes is in [1, SAKO_ID_MAX]: 0 means "none" and the upper
 * bound keeps ids exact in JSON and Python floats. */
static inline int sako__idmap_valid_id(int64_t id)
{
    return id >= 1 && id <= SAKO_ID_MAX;
}

typedef struct sako_idmap {
    int64_t *keys;    /* 0 = empty slot (valid ids are >= 1) */
    uint32_t *values;
    size_t mask;      /* capacity - 1; capacity is a power of two */
    size_t count;
} sako_idmap;

void sako__idmap_free(sako_idmap *m);
/* Make room for `extra` more keys without rehashing later; SAKO_OK or SAKO_NOMEM. */
int sako__idmap_reserve(sako_idmap *m, size_t extra);
uint32_t sako__idmap_get(const sako_idmap *m, int64_t key); /* SAKO_NONE if absent */
/* Insert or overwrite; room must have been reserved. */
void sako__idmap_put(sako_idmap *m, int64_t key, uint32_t value);

#endif
