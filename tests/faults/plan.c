/* Which call fails: a counter shared by the allocator wrappers and the VFS shim. */
#include "faults.h"

static unsigned armed_kinds;
static long fail_nth;
static int fail_persistent;
static long counted;
static long failed;

void fault_arm(unsigned kinds, long nth, int persistent)
{
    __atomic_store_n(&counted, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&failed, 0, __ATOMIC_SEQ_CST);
    fail_nth = nth;
    fail_persistent = persistent;
    __atomic_store_n(&armed_kinds, kinds, __ATOMIC_SEQ_CST);
}

long fault_disarm(void)
{
    __atomic_store_n(&armed_kinds, 0, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&failed, __ATOMIC_SEQ_CST);
}

long fault_counted(void)
{
    return __atomic_load_n(&counted, __ATOMIC_SEQ_CST);
}

int fault_hit(unsigned kind)
{
    if (!(__atomic_load_n(&armed_kinds, __ATOMIC_SEQ_CST) & kind))
        return 0;
    long n = __atomic_add_fetch(&counted, 1, __ATOMIC_SEQ_CST);
    if (n == fail_nth || (fail_persistent && n > fail_nth)) {
        __atomic_add_fetch(&failed, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    return 0;
}
