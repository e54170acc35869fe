/* Takes typed values off the front of a fuzzer's input; past its end every value is 0,
 * so any input is a valid (if short) program. */
#ifndef SAKO_FUZZ_PROVIDER_H
#define SAKO_FUZZ_PROVIDER_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct provider {
    const uint8_t *p;
    size_t n;
} provider;

static inline uint64_t take_u64(provider *in, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) {
        v |= (uint64_t)(in->n ? *in->p : 0) << (8 * i);
        if (in->n)
            in->p++, in->n--;
    }
    return v;
}

static inline uint8_t take_u8(provider *in)
{
    return (uint8_t)take_u64(in, 1);
}

/* Mostly small values in [0, range) with now and then an extreme one (ids at and past
 * the limits, negative values), so that both valid calls and each refusal are reached. */
static inline int64_t take_id(provider *in, int64_t range)
{
    uint8_t k = take_u8(in);
    switch (k % 16) {
    case 0: return 0;
    case 1: return -1 - (int64_t)take_u8(in);
    case 2: return 9007199254740991LL + (int64_t)(take_u8(in) % 3) - 1; /* SAKO_ID_MAX +-1 */
    case 3: return (int64_t)take_u64(in, 8);
    default: return 1 + (int64_t)(take_u64(in, 2) % (uint64_t)(range > 0 ? range : 1));
    }
}

static inline double take_double(provider *in)
{
    uint8_t k = take_u8(in);
    switch (k % 8) {
    case 0: { uint64_t bits = take_u64(in, 8); double d; memcpy(&d, &bits, sizeof d); return d; }
    case 1: return -1.0;
    case 2: return 0.0;
    default: return (double)take_u64(in, 2) / 256.0;
    }
}

#endif
