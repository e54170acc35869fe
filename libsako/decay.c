/* Forward decay with a landmark and a power-of-two offset (see decay_internal.h).
 *
 * Why forward decay: decaying every sum on every event costs O(catalog) per event;
 * storing each sum with its own "as of" time (as personal.c does for histories)
 * works for a single sum but not for pooled sums over many items updated at
 * different times. With a shared time-dependent weight, all sums of a state share
 * one factor at any reference time, so an event still touches one item and the
 * factor is applied where sums are read. */
#include <math.h>

#include "decay_internal.h"
/* A day in ms (as SAKO_DAY_MS in personal_internal.h, which sits above this module). */
#define DAY_MS 86400000.0

void sako__decay_init(sako_decay *d, double half_life_days)
{
    d->half_life_ms = half_life_days > 0.0 ? half_life_days * DAY_MS : 0.0;
    d->offset = 0;
    d->latest = 0;
}

/* t / h = k + f with k an integer and f in [0, 1). */
static int64_t split(double half_life_ms, int64_t t, double *f)
{
    double x = (double)t / half_life_ms;
    double k = floor(x);
    *f = x - k;
    return (int64_t)k;
}

int64_t sako__decay_observe(sako_decay *d, int64_t t)
{
    if (t > d->latest)
        d->latest = t;
    if (d->half_life_ms == 0.0)
        return 0;
    double f;
    int64_t k = split(d->half_life_ms, t, &f);
    if (k - d->offset <= SAKO_DECAY_REBASE)
        return 0;
    int64_t delta = k - d->offset;
    d->offset = k;
    return delta;
}

double sako__decay_shrink(double x, int64_t delta)
{
    /* Past 2^-1100 everything is 0; clamping keeps the int conversion defined. */
    return ldexp(x, delta > 1100 ? -1100 : -(int)delta);
}

/* 2^e * frac; e is clamped so that a scale times a sum (< 2^110) stays finite. */
static double pow2(double frac, int64_t e)
{
    if (e > 800)
        e = 800;
    if (e < -1100)
        e = -1100;
    return ldexp(frac, (int)e);
}

double sako__decay_weight(const sako_decay *d, int64_t t)
{
    if (d->half_life_ms == 0.0)
        return 1.0;
    double f;
    int64_t k = split(d->half_life_ms, t, &f);
    return pow2(exp2(f), k - d->offset);
}

sako_decay_ref sako__decay_ref(double half_life_ms, int64_t t)
{
    sako_decay_ref r = { 0, 1.0 };
    if (half_life_ms == 0.0)
        return r;
    double f;
    r.k = split(half_life_ms, t, &f);
    r.frac = exp2(-f);
    return r;
}

double sako__decay_scale(const sako_decay *d, sako_decay_ref r)
{
    if (d->half_life_ms == 0.0)
        return 1.0;
    return pow2(r.frac, d->offset - r.k);
}
