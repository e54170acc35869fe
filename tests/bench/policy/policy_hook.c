/* The retrain policy's per-event hook in isolation: sako__policy_observe over 1M
 * events (50 % recommended impressions, 5 % recommended clicks, the rest organic
 * clicks), best of 20 passes. Not part of `make bench` (its own main); run it with
 *
 *   make && cc -std=c99 -D_GNU_SOURCE -O2 -Iinclude -Ilibsako -o build/policy_hook \
 *       tests/bench/policy/policy_hook.c build/libsako.a -lsqlite3 -lm -lpthread && build/policy_hook
 *
 * and compare with the per-event cost of sako_update in `make bench` (docs/benchmarks.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "engine_internal.h"
#include "policy_internal.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(void){
    enum { N = 1 << 20 };
    sako_event *ev = malloc(N * sizeof *ev);
    unsigned s = 1;
    for (int i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        int r = (s >> 16) % 100;
        ev[i] = (sako_event){1, 1, r < 55 ? SAKO_EVENT_IMPRESSION : SAKO_EVENT_CLICK, 1, r < 50 || (r >= 50 && r < 55) ? 7 : 0};
    }
    sako_policy_state ps; memset(&ps, 0, sizeof ps);
    sako_policy p = SAKO_POLICY_INIT; ps.policy = p;
    double reward[4] = {0, 0.7, 0.85, 1.0};
    double best = 1e9;
    for (int rep = 0; rep < 20; rep++) {
        double t0 = now();
        for (int i = 0; i < N; i++) sako__policy_observe(&ps, reward, &ev[i]);
        double t = (now() - t0) / N;
        if (t < best) best = t;
    }
    printf("sako__policy_observe: %.2f ns/event (best of 20 x %d events; base_imp %.0f)\n", best * 1e9, N, ps.base_imp);
    return 0;
}
