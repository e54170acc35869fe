/* Named kill points for the crash test (issue 9 item 6).
 *
 * SAKO_KILL_POINT("retrain.before_publish") marks a moment inside a multi-step
 * operation where a crash must leave the file consistent. In a normal build the
 * macro is nothing. A build with -DSAKO_KILL_POINTS (the crash test's own copy of
 * the library, see `make crashtest`) kills the process with SIGKILL when the
 * environment variable SAKO_KILL_AT names the point; SAKO_KILL_SKIP=n lets the
 * first n passes through it go by. The library itself never reads these variables
 * in a normal build. */
#ifndef SAKO_KILLPOINT_INTERNAL_H
#define SAKO_KILLPOINT_INTERNAL_H

#ifdef SAKO_KILL_POINTS
void sako__kill_point(const char *name);
#define SAKO_KILL_POINT(name) sako__kill_point(name)
#else
#define SAKO_KILL_POINT(name) ((void)0)
#endif

#endif
