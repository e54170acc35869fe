/* Allocation failures: the C allocator as libsako calls it (the driver is linked with
 * -Wl,--wrap=malloc,... so only the objects of this link see these), and SQLite's
 * allocator through sqlite3_config(SQLITE_CONFIG_MALLOC) (SQLite is a shared
 * library, whose own calls to malloc are not wrapped). */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "faults.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
int __real_posix_memalign(void **p, size_t align, size_t n);

void *__wrap_malloc(size_t n)
{
    return fault_hit(FAULT_ALLOC) ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return fault_hit(FAULT_ALLOC) ? NULL : __real_calloc(n, size);
}

/* realloc(p, 0) frees on glibc: a failure there would be no failure, so it is not counted. */
void *__wrap_realloc(void *p, size_t n)
{
    if (n > 0 && fault_hit(FAULT_ALLOC))
        return NULL;
    return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
    return fault_hit(FAULT_ALLOC) ? NULL : __real_strdup(s);
}

int __wrap_posix_memalign(void **p, size_t align, size_t n)
{
    return fault_hit(FAULT_ALLOC) ? ENOMEM : __real_posix_memalign(p, align, n);
}

static sqlite3_mem_methods sqlite_default;

static void *sqlite_malloc(int n)
{
    return fault_hit(FAULT_ALLOC) ? NULL : sqlite_default.xMalloc(n);
}

static void *sqlite_realloc(void *p, int n)
{
    return fault_hit(FAULT_ALLOC) ? NULL : sqlite_default.xRealloc(p, n);
}

void fault_alloc_install(void)
{
    static sqlite3_mem_methods failing;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_default) != SQLITE_OK) {
        fprintf(stderr, "faults: SQLITE_CONFIG_GETMALLOC refused (SQLite already initialised?)\n");
        exit(2);
    }
    failing = sqlite_default;
    failing.xMalloc = sqlite_malloc;
    failing.xRealloc = sqlite_realloc;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &failing) != SQLITE_OK) {
        fprintf(stderr, "faults: SQLITE_CONFIG_MALLOC refused\n");
        exit(2);
    }
}
