/* PCG32 random numbers (M. O'Neill, pcg-random.org): reproducible across machines. */
#include "octet/tensor.h"

#include <math.h>

void oct_rng_seed(oct_rng *r, uint64_t seed, uint64_t stream) {
    r->state = 0;
    r->inc = (stream << 1u) | 1u;
    oct_rng_u32(r);
    r->state += seed;
    oct_rng_u32(r);
}

uint32_t oct_rng_u32(oct_rng *r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t oct_rng_below(oct_rng *r, uint32_t n) {
    OCT_ASSERT(n > 0);
    uint32_t threshold = -n % n;
    for (;;) {
        uint32_t x = oct_rng_u32(r);
        if (x >= threshold) return x % n;
    }
}

float oct_rng_uniform(oct_rng *r) {
    return (float)(oct_rng_u32(r) >> 8) * (1.0f / 16777216.0f);
}

float oct_rng_normal(oct_rng *r) {
    double u1 = ((double)oct_rng_u32(r) + 1.0) / 4294967297.0; /* (0, 1] keeps log finite */
    double u2 = (double)oct_rng_u32(r) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void oct_rng_fill_normal(oct_rng *r, oct_tensor *t, float std) {
    for (int64_t i = 0; i < t->size; i++) t->data[i] = std * oct_rng_normal(r);
}

void oct_rng_fill_uniform(oct_rng *r, oct_tensor *t, float bound) {
    for (int64_t i = 0; i < t->size; i++) t->data[i] = bound * (2.0f * oct_rng_uniform(r) - 1.0f);
}

void oct_rng_shuffle(oct_rng *r, int32_t *idx, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = oct_rng_below(r, (uint32_t)(i + 1));
        int32_t tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
}
