/* Snapshots (snapshot.c): private copies of what a prior epoch is computed from. */
#ifndef SAKO_SNAPSHOT_INTERNAL_H
#define SAKO_SNAPSHOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "personal_internal.h"
#include "sako.h"
#include "store_internal.h"

/* A view of the first `n_items` items and of the category tree, with the engine's
 * parameters and seed and `n_events` as its event count: a private engine struct
 * the model, demand and domain builders read as they read the engine. Copied in
 * chunks under the read lock by a caller that does not hold it (nor needs the
 * writer mutex); the caller compares catalog_gen before and after. The view has no
 * store, users, personal state, posteriors or domains of its own. */
int sako__snapshot_catalog(sako_engine *e, size_t n_items, uint64_t n_events, sako_engine **out);
void sako__snapshot_free(sako_engine *view);

/* Every item's evidence as of one log position, copied on write (snapshot.c). */
typedef struct sako_evidence_snap {
    size_t n;                   /* items at the position */
    sako_counts *counts;        /* per item: raw counts... */
    sako_item_demand *demand;   /* ...organic events (other fields zero)... */
    double *item_baskets;       /* ...and baskets holding it */
    double baskets, organic_purchases;
    sako_decay decay;           /* the frames of the item counts and of the personal */
    sako_decay personal_decay;  /* sums at the position (a rebase since voids the copy) */
    uint8_t *copied;            /* per item: its values are here */
    uint8_t *touched;           /* per item: a writer changed it since the position */
} sako_evidence_snap;

/* Start (the caller holds the writer mutex, right after the position's batch):
 * from now on writers save what they change. */
int sako__snapshot_evidence_begin(sako_engine *e, sako_evidence_snap **out);
/* A writer about to change `item` (under the write lock). */
void sako__snapshot_save(sako_engine *e, uint32_t item);
/* The builder: copy every item not saved yet (chunks under the read lock). */
void sako__snapshot_evidence_copy(sako_engine *e, sako_evidence_snap *s);
/* Point a view's personal state and item counts at the copy (the view must not
 * outlive it, nor free its personal state). */
void sako__snapshot_evidence_view(sako_evidence_snap *s, sako_engine *view);
/* Stop saving and free (the caller holds the writer mutex). */
void sako__snapshot_evidence_end(sako_engine *e, sako_evidence_snap *s);
void sako__snapshot_evidence_free(sako_evidence_snap *s);

#endif
