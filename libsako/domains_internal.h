/* Sampling domains (domains.c): which pruned samplers hold which items. */
#ifndef SAKO_DOMAINS_INTERNAL_H
#define SAKO_DOMAINS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pruned_internal.h"
#include "sako.h"

/* Categories with fewer active items than this are brute-forced, not pruned. */
#define SAKO_DOMAIN_MIN 256
/* The k the pruned samplers are first tuned for; larger requests raise it. */
#define SAKO_DOMAIN_DEFAULT_K 20

typedef struct sako_domains {
    sako_pruned *root;          /* every active item */
    sako_pruned **by_category;  /* per category (subtree); NULL when small */
    size_t n_categories;        /* categories when built */
    int k_target;               /* k the thresholds are tuned for */
    int broken;                 /* a mirror step failed: brute-force until rebuilt */
} sako_domains;

int sako__domains_build(const sako_engine *e, const sako_beta *post, int k_target,
                        sako_domains **out);
void sako__domains_free(sako_domains *d);
void sako__domains_item_changed(sako_engine *e, uint32_t item, uint32_t old_category,
                                int was_active);
void sako__domains_maintain(sako_engine *e);
void sako__domains_rebuild(sako_engine *e);
/* The first build after open: synchronous for small catalogs, else on a thread of
 * its own holding the writer mutex (queries brute-force meanwhile). */
void sako__domains_start(sako_engine *e);
void sako__domains_join(sako_engine *e);

#endif
