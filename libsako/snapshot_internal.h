/* Snapshots (snapshot.c): private copies of what a prior epoch is computed from. */
#ifndef SAKO_SNAPSHOT_INTERNAL_H
#define SAKO_SNAPSHOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"

/* A view of the first `n_items` items and of the category tree, with the engine's
 * parameters and seed and `n_events` as its event count: a private engine struct
 * the model, demand and domain builders read as they read the engine. Copied in
 * chunks under the read lock by a caller that does not hold it (nor needs the
 * writer mutex); the caller compares catalog_gen before and after. The view has no
 * store, users, personal state, posteriors or domains of its own. */
int sako__snapshot_catalog(sako_engine *e, size_t n_items, uint64_t n_events, sako_engine **out);
void sako__snapshot_free(sako_engine *view);

#endif
