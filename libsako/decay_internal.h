/* Forward decay of evidence with a landmark (decay.c).
 *
 * An event at time t counts 2^(-(T - t) / h) at a later reference time T. Instead
 * of shrinking every sum as time passes, an event adds w(t) = 2^(t/h - K) to its
 * sums (the landmark is the unix epoch), and the decayed value of a sum at T is
 * sum * 2^(K - T/h). K, an integer offset, keeps the weights inside the range of
 * a double (and of a float, for the partner tables): when an event's exponent gets
 * more than SAKO_DECAY_REBASE above K, the owner multiplies every sum by 2^-delta
 * and K grows by delta. Powers of two are exact in binary floating point, so a
 * rebase changes no value the sums represent (until very old evidence underflows
 * into subnormals, where it is ~0 anyway).
 *
 * Everything is a function of event times in log order, never of the wall clock,
 * so a replay of the log reproduces the state bit for bit. With the half-life 0
 * every weight and scale is exactly 1: no decay, the arithmetic of 0.2 unchanged. */
#ifndef SAKO_DECAY_INTERNAL_H
#define SAKO_DECAY_INTERNAL_H

#include <stdint.h>

/* Largest exponent of a weight above the offset: weights stay below 2^65, so sums
 * of up to 2^40 events fit a float's 2^128 (partner counts) with room to spare. */
#define SAKO_DECAY_REBASE 64

/* One state's decay frame. */
typedef struct sako_decay {
    double half_life_ms;  /* 0: no decay */
    int64_t offset;       /* K: the sums hold weight * 2^-K */
    int64_t latest;       /* largest event time seen (unix ms), 0 before any */
} sako_decay;

/* A reference time T, split as T/h = k + f with frac = 2^-f (the factor's part that
 * does not depend on the offset). */
typedef struct sako_decay_ref {
    int64_t k;
    double frac;
} sako_decay_ref;

/* A frame with no events (half_life_days 0: no decay). */
void sako__decay_init(sako_decay *d, double half_life_days);
/* Record an event at t before adding it: returns delta >= 0, by which the owner must
 * first shrink every sum (sako__decay_shrink); the offset has already moved. */
int64_t sako__decay_observe(sako_decay *d, int64_t t);
/* x * 2^-delta. */
double sako__decay_shrink(double x, int64_t delta);
/* What an event at t adds to its sums (1 without decay). */
double sako__decay_weight(const sako_decay *d, int64_t t);
/* The reference time t of a frame with this half-life. */
sako_decay_ref sako__decay_ref(double half_life_ms, int64_t t);
/* The factor turning the frame's sums into their decayed value at the reference
 * (1 without decay). */
double sako__decay_scale(const sako_decay *d, sako_decay_ref r);

#endif
