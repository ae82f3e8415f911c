/* AVX-512 VNNI int8 GEMM tile: vpdpbusd multiplies 4 uint8 activations by 4 int8 weights and
 * adds the exact sum to an int32 lane (the non-saturating form), 64 products per instruction.
 *
 * A tile is up to 6 rows x 4 blocks of 16 channels: 24 zmm accumulators, 4 weight registers
 * and one broadcast of 4 activation bytes per row and k group. Every function carries the
 * target attribute, so the rest of the build stays baseline x86-64; the driver calls it only
 * when the CPU and OS support AVX-512 VNNI.
 */
#include "gemm_internal.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))

/* 4 activation bytes as one little-endian word. */
INLINE uint32_t load_a4(const uint8_t *a) {
    uint32_t v;
    memcpy(&v, a, sizeof v);
    return v;
}

/* The accumulators are named variables c<row><block> rather than an array, which gcc would keep
 * in memory; rows >= MR and blocks >= NB are compile-time dead. STEP(p, ld) adds, for every row
 * i and block b, the dot products of row i's 4 bytes at p + i * ld with block b's 16 x 4 weights
 * at w + 64 b. */
// clang-format off
#define DP(i, b) if (MR > i && NB > b) c##i##b = _mm512_dpbusd_epi32(c##i##b, a##i, w##b);
#define ROW(i, p, ld)                                                                              \
    if (MR > i) {                                                                                  \
        __m512i a##i = _mm512_set1_epi32((int)load_a4((p) + (size_t)(i) * (ld)));                  \
        DP(i, 0) DP(i, 1) DP(i, 2) DP(i, 3)                                                        \
    }
#define WLOAD(b) __m512i w##b = NB > b ? _mm512_load_si512((const void *)(w + 64 * b)) : zero;
#define STEP(p, ld)                                                                                \
    do {                                                                                           \
        WLOAD(0) WLOAD(1) WLOAD(2) WLOAD(3)                                                        \
        ROW(0, p, ld) ROW(1, p, ld) ROW(2, p, ld) ROW(3, p, ld) ROW(4, p, ld) ROW(5, p, ld)        \
    } while (0)
#define DECL(i) __m512i c##i##0 = zero, c##i##1 = zero, c##i##2 = zero, c##i##3 = zero
#define STORE(i, b)                                                                                \
    if (MR > i && NB > b) store16(c + (size_t)(i) * ldc + 16 * b, ncols - 16 * b, c##i##b, accumulate);
#define STORE_ROW(i) do { STORE(i, 0) STORE(i, 1) STORE(i, 2) STORE(i, 3) } while (0)
// clang-format on

/* Stores (or adds) the first `left` (> 0) lanes of v to cp. */
INLINE VNNI void store16(int32_t *cp, int left, __m512i v, bool accumulate) {
    __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
    if (accumulate) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(m, cp));
    _mm512_mask_storeu_epi32(cp, m, v);
}

INLINE VNNI void tile(const uint8_t *a, int lda, const int8_t *panel, int g0, int g1, int K,
                      int32_t *c, int ldc, int ncols, bool accumulate, const int MR, const int NB) {
    const __m512i zero = _mm512_setzero_si512();
    DECL(0);
    DECL(1);
    DECL(2);
    DECL(3);
    DECL(4);
    DECL(5);
    /* Groups [g0, ge) read the rows from a; then the last, partial group of K (when in this
     * block) reads them zero-padded from tail, in a second pass through the same loop. */
    uint8_t tail[6 * 4] = {0};
    int ge = g1 < K / 4 ? g1 : K / 4, gb = 0;
    const uint8_t *ab = a;
    size_t ld = (size_t)lda;
    const int8_t *w = panel + (size_t)g0 * NB * 64;
    for (int gs = g0;;) {
        for (int g = gs; g < ge; g++, w += NB * 64) STEP(ab + 4 * (size_t)(g - gb), ld);
        if (ge == g1) break;
        for (int i = 0; i < MR; i++)
            memcpy(tail + 4 * i, a + (size_t)i * lda + 4 * ge, (size_t)(K - 4 * ge));
        ab = tail;
        ld = 4;
        gb = gs = ge;
        ge = g1;
    }
    STORE_ROW(0);
    STORE_ROW(1);
    STORE_ROW(2);
    STORE_ROW(3);
    STORE_ROW(4);
    STORE_ROW(5);
}

/* The tile for a run-time nb and a compile-time MR. */
INLINE VNNI void tile_nb(const uint8_t *a, int lda, const int8_t *panel, int nb, int g0, int g1,
                         int K, int32_t *c, int ldc, int ncols, bool accumulate, const int MR) {
    switch (nb) {
    case 1:
        tile(a, lda, panel, g0, g1, K, c, ldc, ncols, accumulate, MR, 1);
        break;
    case 2:
        tile(a, lda, panel, g0, g1, K, c, ldc, ncols, accumulate, MR, 2);
        break;
    case 3:
        tile(a, lda, panel, g0, g1, K, c, ldc, ncols, accumulate, MR, 3);
        break;
    default:
        tile(a, lda, panel, g0, g1, K, c, ldc, ncols, accumulate, MR, 4);
        break;
    }
}

VNNI void oct__i8_tile_avx512vnni(const uint8_t *a, int lda, int mr, const int8_t *panel, int nb,
                                  int g0, int g1, int K, int32_t *c, int ldc, int ncols,
                                  bool accumulate) {
    OCT_ASSERT(mr >= 1 && mr <= 6 && nb >= 1 && nb <= OCT__I8_NB);
    switch (mr) {
    case 1:
        tile_nb(a, lda, panel, nb, g0, g1, K, c, ldc, ncols, accumulate, 1);
        break;
    case 2:
        tile_nb(a, lda, panel, nb, g0, g1, K, c, ldc, ncols, accumulate, 2);
        break;
    case 3:
        tile_nb(a, lda, panel, nb, g0, g1, K, c, ldc, ncols, accumulate, 3);
        break;
    case 4:
        tile_nb(a, lda, panel, nb, g0, g1, K, c, ldc, ncols, accumulate, 4);
        break;
    case 5:
        tile_nb(a, lda, panel, nb, g0, g1, K, c, ldc, ncols, accumulate, 5);
        break;
    default:
        tile_nb(a, lda, panel, nb, g0, g1, K, c, ldc, ncols, accumulate, 6);
        break;
    }
}

#endif
