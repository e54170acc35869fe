/* The power-loss test (powerloss.c). */
#ifndef SAKO_FAULTS_POWERLOSS_H
#define SAKO_FAULTS_POWERLOSS_H

#include "faults.h"

typedef struct powerloss_env {
    const char *dir;
    const char *base;
    int durability;     /* SAKO_DURABLE_FULL or SAKO_DURABLE_NORMAL */
    int keep_percent;   /* 0: every unsynced write is lost; else each sector kept at this rate */
    long max_points;    /* 0: every crash point; else about this many */
} powerloss_env;

typedef struct powerloss_result {
    long points;      /* writes and syncs of the workload (crash points) */
    long runs;        /* snapshots checked */
    long acked_lost;  /* acknowledged batches missing, summed (must be 0 at FULL) */
    long runs_losing; /* snapshots missing at least one */
    long broken;
} powerloss_result;

int powerloss_run(const powerloss_env *env, powerloss_result *res);

#endif
