/* The libcheck runner: every suite in one SRunner.
 *
 * Fork mode is libcheck's default (each test in its own process, so a crash fails
 * one test); CK_FORK=no turns it off for valgrind or a debugger. CK_RUN_SUITE and
 * CK_RUN_CASE select suites and cases, CK_VERBOSITY the output. */
#include "check_sako.h"

/* Written separately (libsako/pruned.c); optional at link time. */
Suite *suite_pruned(void) __attribute__((weak));
/* The engine's matrix factorisation (tests/check_factors.c). */
Suite *suite_factors(void) __attribute__((weak));

int main(void)
{
    SRunner *sr = srunner_create(suite_errors());
    srunner_add_suite(sr, suite_engine());
    srunner_add_suite(sr, suite_catalog());
    srunner_add_suite(sr, suite_events());
    srunner_add_suite(sr, suite_recommend());
    srunner_add_suite(sr, suite_persist());
    srunner_add_suite(sr, suite_retrain());
    srunner_add_suite(sr, suite_sampler());
    srunner_add_suite(sr, suite_bandit());
    srunner_add_suite(sr, suite_threads());
    srunner_add_suite(sr, suite_personal());
    srunner_add_suite(sr, suite_policy());
    srunner_add_suite(sr, suite_backup());
    srunner_add_suite(sr, suite_decay());
    srunner_add_suite(sr, suite_files());
    srunner_add_suite(sr, suite_checksum());
    srunner_add_suite(sr, suite_compact());
    srunner_add_suite(sr, suite_versions());
    srunner_add_suite(sr, suite_mf());
    srunner_add_suite(sr, suite_replica());
    srunner_add_suite(sr, suite_edges());
    if (suite_pruned)
        srunner_add_suite(sr, suite_pruned());
    if (suite_factors)
        srunner_add_suite(sr, suite_factors());
    /* CK_FORK_GETENV: fork unless CK_FORK=no. */
    srunner_set_fork_status(sr, CK_FORK_GETENV);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
