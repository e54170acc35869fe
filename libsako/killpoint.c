/* Named kill points: see killpoint_internal.h. Compiled to a real function only in
 * the crash test's build (-DSAKO_KILL_POINTS). */
#include "killpoint_internal.h"

#ifdef SAKO_KILL_POINTS
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t kill_mutex = PTHREAD_MUTEX_INITIALIZER;
static long kill_passes; /* passes through the named point so far */

void sako__kill_point(const char *name)
{
    const char *at = getenv("SAKO_KILL_AT");
    if (!at || strcmp(at, name) != 0)
        return;
    const char *skip = getenv("SAKO_KILL_SKIP");
    long allowed = skip ? strtol(skip, NULL, 10) : 0;
    pthread_mutex_lock(&kill_mutex);
    long pass = kill_passes++;
    pthread_mutex_unlock(&kill_mutex);
    if (pass >= allowed)
        raise(SIGKILL);
}
#else
typedef int sako_kill_points_are_off; /* ISO C wants something in a translation unit */
#endif
