/* sako_recommend's working memory pool (recommend.c). */
#ifndef SAKO_RECOMMEND_INTERNAL_H
#define SAKO_RECOMMEND_INTERNAL_H

#include "sako.h"

/* Free the pooled scratch of a closing engine. */
void sako__recommend_free_scratch(sako_engine *e);

#endif
