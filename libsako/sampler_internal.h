/* Random numbers for Thompson sampling: xoshiro256** + Ziggurat normal + exact Beta. */
#ifndef SAKO_SAMPLER_INTERNAL_H
#define SAKO_SAMPLER_INTERNAL_H

#include <math.h>
#include <stdint.h>

typedef struct sako_rng {
    uint64_t s[4];
} sako_rng;

/* Seed from one 64-bit value (expanded with splitmix64, so any seed is fine).
 * Also builds the normal sampler's tables on first use: seed before sampling. */
void sako__rng_seed(sako_rng *rng, uint64_t seed);

static inline uint64_t sako__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256** (Blackman & Vigna): fast, 256-bit state, passes BigCrush. */
static inline uint64_t sako__rng_next(sako_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = sako__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sako__rotl(s[3], 45);
    return out;
}

/* Uniform on (0, 1]: never 0, so log() and pow(u, 1/a) are always defined. */
static inline double sako__rng_uniform(sako_rng *r)
{
    return (double)((sako__rng_next(r) >> 11) + 1) * 0x1.0p-53;
}

/* Standard normal by a 256-layer Ziggurat. */
double sako__rng_normal(sako_rng *r);

/* A Beta(a, b) distribution with the constants its sampler needs, computed once
 * when the posterior changes so that a draw costs no sqrt. */
typedef struct sako_beta {
    double a, b;   /* shapes, > 0 */
    double ca, cb; /* Marsaglia-Tsang 1/sqrt(9d) for each shape (shape+1 when < 1) */
} sako_beta;

void sako__beta_set(sako_beta *beta, double a, double b);

/* One exact draw from Beta(a, b) as X/(X+Y) with X ~ Gamma(a), Y ~ Gamma(b). */
double sako__beta_sample(const sako_beta *beta, sako_rng *rng);

/* One draw of Gamma(shape, 1) for shape >= 1, given c = 1/sqrt(9(shape - 1/3)).
 * Exposed for the tests. */
double sako__gamma_ge1(double shape, double c, sako_rng *rng);

#endif
