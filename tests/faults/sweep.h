/* Running the fault sweeps (sweep.c). */
#ifndef SAKO_FAULTS_SWEEP_H
#define SAKO_FAULTS_SWEEP_H

#include "steps.h"

typedef struct sweep_env {
    const char *dir;    /* scratch directory (absolute) */
    const char *base;   /* the base database */
    long max_points;    /* 0: every N; else at most about this many N per step (a stride) */
} sweep_env;

typedef struct sweep_mode {
    const char *name;
    unsigned kinds;
    int persistent;
} sweep_mode;

typedef struct sweep_result {
    long calls;          /* counted calls of the step without faults */
    long runs;           /* runs, the last without a fault met */
    long failed_runs;    /* runs that met at least one fault */
    long ok_with_fault;  /* of them returned SAKO_OK (the failure was absorbed) */
    long resurrected;    /* failed with SAKO_IO, but a crash right after shows the call applied */
    long broken;         /* invariants broken */
} sweep_result;

int sweep_step(const sweep_env *env, const step *s, const sweep_mode *mode, sweep_result *res);

/* The library's own (internal) reset of this thread's message, so that a stale
 * message cannot pass for the failed call's. */
void sako__error_clear(void);

#endif
