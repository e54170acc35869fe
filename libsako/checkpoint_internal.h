/* When sako_update() writes the state checkpoint (events.c): the budgets, here so
 * that tests can derive from them where a checkpoint must land. Not API. */
#ifndef SAKO_CHECKPOINT_INTERNAL_H
#define SAKO_CHECKPOINT_INTERNAL_H

/* Write every dirty item back (a checkpoint) at least this often, so that a reopen
 * replays a bounded tail of the event log. */
#ifndef SAKO_CHECKPOINT_EVENTS /* the crash test's build sets it lower */
#define SAKO_CHECKPOINT_EVENTS 500000
#endif
/* ...and as soon as this many item and user rows are dirty: a checkpoint writes them
 * all in one transaction under the writer mutex, so this bounds the stall of the
 * update batch that runs it (docs/architecture.md, "Checkpoints"). */
#ifndef SAKO_CHECKPOINT_ROWS
#define SAKO_CHECKPOINT_ROWS 32768
#endif

#endif
