/* Measurements of the last sako_compact() (compact.c), for bench-compact. Not API. */
#ifndef SAKO_COMPACT_INTERNAL_H
#define SAKO_COMPACT_INTERNAL_H

/* The longest hold of the writer mutex (ns) and the number of holds. Written by the
 * compacting thread; read them after sako_compact() returned. */
extern long long sako__compact_max_hold_ns;
extern long sako__compact_holds;
/* The first hold (the regular checkpoint when the log has a tail, the choice of C),
 * which max_hold_ns leaves out. */
extern long long sako__compact_first_hold_ns;

#endif
