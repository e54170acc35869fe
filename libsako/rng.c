/* Uniform and normal random numbers. See sampler_internal.h. */
#include <pthread.h>

#include "sampler_internal.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void zig_build(void);
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;

void sako__rng_seed(sako_rng *rng, uint64_t seed)
{
    /* Every stream is seeded before its first normal: build the tables here, off
     * the per-sample path. */
    pthread_once(&zig_once, zig_build);
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

/* Ziggurat tables (Marsaglia & Tsang 2000) for 256 layers of equal area V under
 * f(x) = exp(-x^2/2): layer i covers heights [f(x[i]), f(x[i+1])] and widths
 * [0, x[i]]; layer 0 is the base strip plus the tail beyond R. Built once. */
#define ZIG_LAYERS 256
#define ZIG_R 3.6541528853610088
#define ZIG_V 0.00492867323399

static double zig_x[ZIG_LAYERS + 1];
static double zig_f[ZIG_LAYERS + 1];

static void zig_build(void)
{
    double f_r = exp(-0.5 * ZIG_R * ZIG_R);
    zig_x[0] = ZIG_V / f_r;
    zig_x[1] = ZIG_R;
    for (int i = 1; i < ZIG_LAYERS; i++) {
        double y = exp(-0.5 * zig_x[i] * zig_x[i]) + ZIG_V / zig_x[i];
        zig_x[i + 1] = y >= 1.0 ? 0.0 : sqrt(-2.0 * log(y));
    }
    zig_x[ZIG_LAYERS] = 0.0;
    for (int i = 0; i <= ZIG_LAYERS; i++)
        zig_f[i] = exp(-0.5 * zig_x[i] * zig_x[i]);
}

double sako__rng_normal(sako_rng *r)
{
    for (;;) {
        uint64_t bits = sako__rng_next(r);
        int layer = (int)(bits & 0xff);
        double sign = (bits & 0x100) ? -1.0 : 1.0;
        double u = (double)(bits >> 11) * 0x1.0p-53;
        double x = u * zig_x[layer];
        if (x < zig_x[layer + 1])
            return sign * x; /* inside the layer's core rectangle: always accepted */
        if (layer == 0) {
            /* Tail beyond R: Marsaglia's exponential rejection. */
            double t, y;
            do {
                t = -log(sako__rng_uniform(r)) / ZIG_R;
                y = -log(sako__rng_uniform(r));
            } while (2.0 * y < t * t);
            return sign * (ZIG_R + t);
        }
        double y = zig_f[layer] + sako__rng_uniform(r) * (zig_f[layer + 1] - zig_f[layer]);
        if (y < exp(-0.5 * x * x))
            return sign * x;
    }
}
