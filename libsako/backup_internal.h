/* Online backup (backup.c). Not API. */
#ifndef SAKO_BACKUP_INTERNAL_H
#define SAKO_BACKUP_INTERNAL_H

/* Pages copied per step, i.e. per hold of the writer mutex (default
 * SAKO_BACKUP_STEP_PAGES). Tests lower it to force many interleavings. */
extern int sako__backup_step_pages;
/* The last backup's longest hold of the writer mutex and its number of steps, for
 * the benchmark (tests/backup_stall.c); written by sako_backup, not synchronised. */
extern long long sako__backup_max_hold_ns;
extern long sako__backup_steps;

#endif
