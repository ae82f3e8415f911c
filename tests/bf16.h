/* Test helper: float32 values as bfloat16 bits by truncation (the top 16 bits), how a test
 * writes a BF16 state dict that the readers must widen back. */
#ifndef OCTET_TESTS_BF16_H
#define OCTET_TESTS_BF16_H

#include <stdint.h>
#include <string.h>

static inline void to_bf16(const float *x, int64_t n, uint16_t *out) {
    for (int64_t j = 0; j < n; j++) {
        uint32_t bits;
        memcpy(&bits, &x[j], sizeof bits);
        out[j] = (uint16_t)(bits >> 16);
    }
}

#endif
