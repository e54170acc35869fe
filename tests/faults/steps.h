/* The calls the sweeps fail, one per public function (steps.c). */
#ifndef SAKO_FAULTS_STEPS_H
#define SAKO_FAULTS_STEPS_H

#include "faults.h"

typedef struct step_ctx {
    sako_engine *e;
    char path[1024];   /* the database the step works on */
    char other[1024];  /* a second path: the backup's target */
    sako_verify_report report;
} step_ctx;

typedef enum step_shape {
    STEP_ON_ENGINE,    /* a call on an engine opened on a copy of the base */
    STEP_OPENS,        /* sako_init on a copy of the base */
    STEP_CREATES,      /* sako_init on a path where nothing exists */
    STEP_OPENS_MEMORY, /* sako_init on an in-memory database */
    STEP_CLOSES,       /* sako_close of an engine on a copy of the base */
    STEP_ON_FILE,      /* a call on the closed copy (sako_verify) */
    STEP_BACKUP,       /* sako_backup of an engine on a copy to `other` */
    STEP_NO_ENGINE     /* diagnostics: no engine, no file */
} step_shape;

typedef struct step {
    const char *name;
    step_shape shape;
    int mutates;       /* may change the engine's state */
    int (*run)(step_ctx *c);
} step;

extern const step steps[];
extern const size_t n_steps;

#endif
