/* Fault-injection driver: allocation, I/O and power-loss faults over every public
 * function (tests/faults/README in docs/reliability.md).
 *
 * usage: faults [--full] [--points N] [--only SUBSTRING] [--mode NAME] [--no-powerloss] [dir]
 *   default: a short sweep (at most ~40 fault points per step and mode; one-shot
 *   faults, and persistent allocation faults; a power-loss run over ~60 crash points
 *   per durability and loss model), for `make test`.
 *   --full: every fault point, one-shot and persistent faults, every crash point.
 *   --points N: the short sweep's modes with at most ~N fault points per step and
 *   mode instead of 40 (make coverage; 0 = every point).
 * Ends with "N passed, N failed" (one test per step and mode, and per power-loss run). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "powerloss.h"
#include "sweep.h"

/* LeakSanitizer's check, when the driver is built with it. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* Before anything touches SQLite: its allocator is fixed at initialisation. */
    fault_alloc_install();
    fault_vfs_install();

    int full = 0, powerloss = 1;
    long points = 40;
    const char *only = NULL, *only_mode = NULL, *dir_arg = "build/tmp/faults";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full"))
            full = 1;
        else if (!strcmp(argv[i], "--points") && i + 1 < argc)
            points = atol(argv[++i]);
        else if (!strcmp(argv[i], "--no-powerloss"))
            powerloss = 0;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            only_mode = argv[++i]; /* one fault mode by its exact name, e.g. sys */
        else if (!strcmp(argv[i], "-v"))
            fault_verbose = 1;
        else
            dir_arg = argv[i];
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir_arg);
    if (system(cmd) != 0)
        return 2;
    char dir[PATH_MAX], base[PATH_MAX + 16];
    if (!realpath(dir_arg, dir))
        return 2;
    snprintf(base, sizeof base, "%s/base.db", dir);
    scenario_base(base, SAKO_DURABLE_FULL);

    static const sweep_mode short_modes[] = {
        { "alloc", FAULT_ALLOC, 0 },
        { "alloc-persistent", FAULT_ALLOC, 1 },
        { "write", FAULT_WRITE, 0 },
        { "read", FAULT_READ, 0 },
        { "sys", FAULT_SYS, 0 },
        { "sys-persistent", FAULT_SYS, 1 },
    };
    static const sweep_mode full_modes[] = {
        { "alloc", FAULT_ALLOC, 0 },
        { "alloc-persistent", FAULT_ALLOC, 1 },
        { "write", FAULT_WRITE, 0 },
        { "write-persistent", FAULT_WRITE, 1 },
        { "read", FAULT_READ, 0 },
        { "read-persistent", FAULT_READ, 1 },
        { "sys", FAULT_SYS, 0 },
        { "sys-persistent", FAULT_SYS, 1 },
    };
    const sweep_mode *modes = full ? full_modes : short_modes;
    size_t n_modes = full ? sizeof full_modes / sizeof *full_modes
                          : sizeof short_modes / sizeof *short_modes;
    sweep_env env = { dir, base, full ? 0 : points };

    int passed = 0, failed = 0;
    long total_runs = 0, total_faults = 0;
    printf("%-50s %-17s %7s %7s %7s %6s %6s %6s %7s\n", "function", "fault", "calls", "runs",
           "faulted", "ok", "resur", "broken", "seconds");
    for (size_t i = 0; i < n_steps; i++) {
        if (only && !strstr(steps[i].name, only))
            continue;
        for (size_t m = 0; m < n_modes; m++) {
            if (only_mode && strcmp(modes[m].name, only_mode))
                continue;
            double t0 = mono();
            sweep_result r;
            int broken = sweep_step(&env, &steps[i], &modes[m], &r);
            printf("%-50s %-17s %7ld %7ld %7ld %6ld %6ld %6ld %7.1f\n", steps[i].name, modes[m].name,
                   r.calls, r.runs, r.failed_runs, r.ok_with_fault, r.resurrected, r.broken,
                   mono() - t0);
            fflush(stdout);
            total_runs += r.runs;
            total_faults += r.failed_runs;
            if (broken)
                failed++;
            else
                passed++;
        }
        if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check()) {
            printf("%s: LeakSanitizer found leaks (above)\n", steps[i].name);
            failed++;
        }
    }
    printf("sweeps: %ld runs, %ld with a fault met\n", total_runs, total_faults);

    if (powerloss && (!only || strstr("power", only))) {
        static const struct { int durability; int keep; const char *name; } pl[] = {
            { SAKO_DURABLE_FULL, 0, "FULL, unsynced writes lost" },
            { SAKO_DURABLE_FULL, 50, "FULL, half the unsynced sectors lost" },
            { SAKO_DURABLE_NORMAL, 0, "NORMAL, unsynced writes lost" },
            { SAKO_DURABLE_NORMAL, 50, "NORMAL, half the unsynced sectors lost" },
        };
        for (size_t i = 0; i < sizeof pl / sizeof *pl; i++) {
            double t0 = mono();
            powerloss_env pe = { dir, base, pl[i].durability, pl[i].keep, full ? 0 : 60 };
            powerloss_result r;
            int broken = powerloss_run(&pe, &r);
            printf("power loss (%s): %ld crash points, %ld checked, %ld with acknowledged batches "
                   "lost (%ld batches), %ld broken, %.1f s\n", pl[i].name, r.points, r.runs,
                   r.runs_losing, r.acked_lost, r.broken, mono() - t0);
            fflush(stdout);
            if (broken || (pl[i].durability == SAKO_DURABLE_FULL && r.acked_lost))
                failed++;
            else
                passed++;
        }
        if (__lsan_do_recoverable_leak_check && __lsan_do_recoverable_leak_check()) {
            printf("power loss: LeakSanitizer found leaks (above)\n");
            failed++;
        }
    }
    file_remove_db(base);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
