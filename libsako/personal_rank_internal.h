/* The personal engine's answer to a query (personal_rank.c). */
#ifndef SAKO_PERSONAL_RANK_INTERNAL_H
#define SAKO_PERSONAL_RANK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "sako.h"
#include "sampler_internal.h"

/* A request's working memory, kept in recommend.c's pool. */
typedef struct sako_personal_scratch sako_personal_scratch;
void sako__personal_scratch_free(sako_personal_scratch *s);

typedef struct sako_personal_query {
    const sako_query *q;
    uint32_t user;               /* user index (with enough history) */
    uint32_t category;           /* SAKO_NONE: the whole catalog */
    int64_t now;                 /* the query's time */
    const uint32_t *excluded;    /* sorted item indices */
    size_t n_excluded;
    const uint32_t *population;  /* the population engine's top k: candidates too */
    size_t n_population;
} sako_personal_query;

/* The top q->k (fewer if fewer candidates qualify), unsorted. Caller holds the read lock. */
int sako__personal_rank(const sako_engine *e, const sako_personal_query *pq,
                        sako_personal_scratch **ps, sako_rng *rng, sako_rec *out, size_t *n_out);

#endif
