/* The catalog (catalog.c): categories and items in memory, and their upserts. */
#ifndef SAKO_CATALOG_INTERNAL_H
#define SAKO_CATALOG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"
#include "store_internal.h"

typedef struct sako_item_state {
    int64_t id;
    int64_t added_at;
    int64_t last_event_at;
    uint32_t category;     /* index into categories, SAKO_NONE for the root */
    uint32_t member_pos;   /* position in its category's member list */
    uint8_t active;
    uint8_t dirty;         /* counts changed since the last checkpoint */
    uint32_t batch_mark;   /* last update batch that touched it (dedupe) */
    sako_counts counts;
} sako_item_state;

/* What the personal draw needs of an item, copied densely (8 bytes). */
typedef struct sako_item_class {
    uint32_t category;
    uint32_t active;
} sako_item_class;

typedef struct sako_category_state {
    int64_t id;
    uint32_t parent;       /* index, SAKO_NONE for a department */
    char *name;
    double prior_mean;     /* the pooled mean of this prior epoch */
    uint32_t *members;     /* items directly in this category */
    size_t n_members, cap_members;
    uint32_t *subtree;     /* this category and all its descendants (indices) */
    size_t n_subtree;
} sako_category_state;

/* Room for `extra` more items (array, posteriors, index). Callers hold the write
 * lock: the arrays may move under concurrent readers. */
int sako__catalog_reserve_items(sako_engine *e, size_t extra);
int sako__catalog_reserve_members(sako_engine *e, uint32_t category, size_t extra);
/* Append a new item (room reserved); returns its index. */
uint32_t sako__catalog_add_item(sako_engine *e, int64_t id, uint32_t category, int active,
                                int64_t added_at);
/* The stored categories and items (counts as of the last checkpoint). */
int sako__catalog_load(sako_engine *e);
void sako__catalog_free(sako_engine *e);

#endif
