/* Instruction counts of the personalised recommend with and without factors, for
 * `valgrind --tool=callgrind` (load-independent, unlike the latencies of
 * bench_factors.c). The world is bench_factors.c's (included), at 50k items by default
 * with 2 ALS iterations (the counts do not need a converged model); prof_base() runs
 * the recommends before any training, prof_mf() the same ones with the factors served.
 *
 *   cc -O2 -g -std=gnu99 -Iinclude -Ilibsako -Itests/bench -o build/prof_factors \
 *      tests/prof_factors.c build/libsako.a -lsqlite3 -lm -lpthread
 *   valgrind --tool=callgrind --toggle-collect=prof_base --toggle-collect=prof_mf \
 *      build/prof_factors [items [iterations [queries [mf_candidates]]]]
 *   callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep prof_
 *
 * Each phase calls its function twice, 50 then `queries` (300) recommends: divide a
 * function's inclusive count by 50 + queries. docs/benchmarks.md ("Serving speed"). */
#include <unistd.h>

#include "bench_factors.c"

static void run(sako_engine *e, int nq)
{
    sako_rec r[20];
    for (int q = 0; q < nq; q++) {
        sako_query qu = SAKO_QUERY_INIT;
        qu.user_id = 1 + (int64_t)((q * 7919) % F_USERS);
        qu.k = 20;
        qu.time = F_T0 + 40 * F_DAY;
        size_t n = 0;
        int rc = sako_recommend(e, &qu, r, 20, &n);
        if (rc)
            f_die("recommend", rc);
    }
}

__attribute__((noinline)) void prof_base(sako_engine *e, int nq) { run(e, nq); }
__attribute__((noinline)) void prof_mf(sako_engine *e, int nq) { run(e, nq); }

int main(int argc, char **argv)
{
    size_t n_items = argc > 1 ? (size_t)atol(argv[1]) : 50000;
    int iterations = argc > 2 ? atoi(argv[2]) : 2, nq = argc > 3 ? atoi(argv[3]) : 300;
    sako_options o = SAKO_OPTIONS_INIT;
    o.seed = 1;
    o.durability = SAKO_DURABLE_OFF;
    o.mf_factors = 64;
    o.mf_iterations = (uint32_t)iterations;
    o.mf_alpha = 10.0;
    o.mf_regularization = 0.1;
    o.mf_threads = 2;
    o.mf_mode = SAKO_MF_ON;
    if (argc > 4)
        o.mf_candidates = (uint32_t)atoi(argv[4]);
    char path[64];
    snprintf(path, sizeof path, "/tmp/sako-prof-%d.db", (int)getpid());
    sako_engine *e = NULL;
    int rc = sako_init(&e, path, &o);
    if (rc)
        f_die("init", rc);
    f_fill(e, n_items, 1);
    prof_base(e, 50);
    prof_base(e, nq);
    if ((rc = sako_retrain(e)))
        f_die("retrain", rc);
    prof_mf(e, 50);
    prof_mf(e, nq);
    sako_close(e);
    remove(path);
    return 0;
}
