/* Portable C int8 GEMM tile: the reference every SIMD kernel must match bit for bit, and the
 * fallback on CPUs without AVX2. Plain loops over the packed layout, one row at a time with a
 * panel-wide int32 accumulator (the compiler vectorizes the inner channel loop).
 */
#include "gemm_internal.h"

void oct__i8_tile_portable(const uint8_t *a, int lda, int mr, const int8_t *panel, int nb, int g0,
                           int g1, int K, int32_t *c, int ldc, int ncols, bool accumulate) {
    int nc = nb * OCT__I8_BLOCK;
    for (int i = 0; i < mr; i++) {
        const uint8_t *ar = a + (size_t)i * lda;
        int32_t acc[OCT__I8_PANEL] = {0};
        for (int g = g0; g < g1; g++) {
            int32_t a4[4];
            for (int r = 0; r < 4; r++) a4[r] = 4 * g + r < K ? ar[4 * g + r] : 0;
            const int8_t *w = panel + (size_t)g * nc * 4;
            for (int j = 0; j < nc; j++)
                acc[j] += a4[0] * w[4 * j] + a4[1] * w[4 * j + 1] + a4[2] * w[4 * j + 2] +
                          a4[3] * w[4 * j + 3];
        }
        int32_t *cr = c + (size_t)i * ldc;
        for (int j = 0; j < ncols; j++) cr[j] = accumulate ? cr[j] + acc[j] : acc[j];
    }
}
