/* Instruction counts of the personalised recommend with and without factors, for
 * `valgrind --tool=callgrind` (load-independent, unlike the latencies of
 * bench_factors.c). The world is bench_factors.c's (included), at 50k items by default
 * with 2 ALS iterations (the counts do not need a converged model); prof_base() runs
 * the recommends before any training, prof_mf() the same ones with the factors served
 * (each user's first request since the training: the index is searched), then
 * prof_mf_again() once more (the index's answers come from the per-user cache).
 *
 *   cc -O2 -g -std=gnu99 -Iinclude -Ilibsako -Itests/bench -o build/prof_factors \
 *      tests/prof_factors.c build/libsako.a -lsqlite3 -lm -lpthread
 *   valgrind --tool=callgrind --toggle-collect=prof_base --toggle-collect=prof_mf \
 *      --toggle-collect=prof_mf_again \
 *      build/prof_factors [items [iterations [mf_candidates]]]
 *   callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep prof_
 *
 * Each function runs bench_factors.c's 2,000 recommends (users in its order): divide
 * its inclusive count by 2,000. docs/benchmarks.md ("Serving speed"). */
#include <unistd.h>

#include "bench_factors.c"

/* bench_factors.c's 2,000 recommends (its latencies are not used here). */
static void run(sako_engine *e)
{
    static double lat[F_QUERIES];
    size_t n_mf = 0, n_all = 0;
    f_queries(e, lat, &n_mf, &n_all);
}

__attribute__((noinline)) void prof_base(sako_engine *e) { run(e); }
__attribute__((noinline)) void prof_mf(sako_engine *e) { run(e); }
__attribute__((noinline)) void prof_mf_again(sako_engine *e) { run(e); }

int main(int argc, char **argv)
{
    size_t n_items = argc > 1 ? (size_t)atol(argv[1]) : 50000;
    int iterations = argc > 2 ? atoi(argv[2]) : 2;
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 1;
    o.durability = SAKO_DURABLE_OFF;
    o.mf_factors = 64;
    o.mf_iterations = (uint32_t)iterations;
    o.mf_alpha = 10.0;
    o.mf_regularization = 0.1;
    o.mf_threads = 2;
    o.mf_mode = SAKO_MF_ON;
    if (argc > 3)
        o.mf_candidates = (uint32_t)atoi(argv[3]);
    char path[64];
    snprintf(path, sizeof path, "/tmp/sako-prof-%d.db", (int)getpid());
    sako_engine *e = NULL;
    int rc = sako_init(&e, path, &o);
    if (rc)
        f_die("init", rc);
    f_fill(e, n_items, 1);
    prof_base(e);
    if ((rc = sako_retrain(e)))
        f_die("retrain", rc);
    prof_mf(e);
    prof_mf_again(e);
    sako_close(e);
    remove(path);
    return 0;
}
