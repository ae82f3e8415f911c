/* AVX2 int8 GEMM tile, exact: AVX2 has no vpdpbusd, and vpmaddubsw saturates (255 * 127 * 2 >
 * 32767), so both operands are widened to int16 and multiplied with vpmaddwd, whose pair sums
 * (at most 2 * 255 * 128) are exact in int32.
 *
 * The tile's activation rows are first widened into a small int16 buffer, so that each row's
 * 4 values of a k group are one 64-bit broadcast. A 16-byte slice of a packed block (4 channels
 * x 4 k) sign-extends to 16 int16; vpmaddwd against the broadcast gives two partial sums per
 * channel (k0 k1 and k2 k3), which are summed across k and paired up with vphaddd at the end.
 * Per 8-channel strip: up to 4 rows x 2 accumulators. Functions carry the target attribute; the
 * driver calls them only when the CPU supports AVX2.
 */
#include "gemm_internal.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2")))
#define INLINE static inline __attribute__((always_inline))
#define MAX_MR 4

/* Accumulators are named variables c<row><half> (an array would live in memory); rows >= MR
 * are compile-time dead. */
#define ROW(i)                                                                                     \
    if (MR > i) {                                                                                  \
        int64_t a4;                                                                                \
        memcpy(&a4, ab + (size_t)(i)*abstride + 4 * g, sizeof a4);                                 \
        __m256i av = _mm256_set1_epi64x(a4);                                                       \
        c##i##0 = _mm256_add_epi32(c##i##0, _mm256_madd_epi16(av, w0));                            \
        c##i##1 = _mm256_add_epi32(c##i##1, _mm256_madd_epi16(av, w1));                            \
    }
#define STORE(i)                                                                                   \
    if (MR > i) store8(c + (size_t)(i)*ldc + 8 * s, left, c##i##0, c##i##1, accumulate);

/* Pairs up the partial sums of 8 channels and stores (or adds) the first `left` of them. */
INLINE AVX2 void store8(int32_t *cp, int left, __m256i lo, __m256i hi, bool accumulate) {
    /* hadd gives channels 0 1 4 5 | 2 3 6 7; the permute restores 0..7. */
    __m256i v = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo, hi), 0xD8);
    if (left >= 8) {
        if (accumulate) v = _mm256_add_epi32(v, _mm256_loadu_si256((const __m256i *)cp));
        _mm256_storeu_si256((__m256i *)cp, v);
    } else {
        int32_t tmp[8];
        _mm256_storeu_si256((__m256i *)tmp, v);
        for (int j = 0; j < left; j++) cp[j] = accumulate ? cp[j] + tmp[j] : tmp[j];
    }
}

/* One 8-channel strip s of the tile from the widened rows ab (MR, 4 ng), ng groups. */
INLINE AVX2 void strip(const int16_t *ab, int abstride, const int8_t *panel, int nb, int s, int ng,
                       int32_t *c, int ldc, int ncols, bool accumulate, const int MR) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
    __m256i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const int8_t *w = panel + 32 * s;
    for (int g = 0; g < ng; g++, w += nb * 64) {
        __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
        __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16)));
        ROW(0) ROW(1) ROW(2) ROW(3)
    }
    int left = ncols - 8 * s;
    STORE(0) STORE(1) STORE(2) STORE(3)
}

AVX2 void oct__i8_tile_avx2(const uint8_t *a, int lda, int mr, const int8_t *panel, int nb, int g0,
                            int g1, int K, int32_t *c, int ldc, int ncols, bool accumulate) {
    OCT_ASSERT(mr >= 1 && mr <= MAX_MR && g1 - g0 <= OCT__I8_KCG);
    _Alignas(32) int16_t ab[MAX_MR][4 * OCT__I8_KCG];
    int ng = g1 - g0, k0 = 4 * g0, kn = 4 * ng;
    for (int i = 0; i < mr; i++) {
        const uint8_t *ar = a + (size_t)i * lda + k0;
        int valid = K - k0 < kn ? K - k0 : kn;
        for (int k = 0; k < valid; k++) ab[i][k] = ar[k];
        for (int k = valid; k < kn; k++) ab[i][k] = 0;
    }
    const int8_t *w = panel + (size_t)g0 * nb * 64;
    for (int s = 0; s < 2 * nb && 8 * s < ncols; s++) {
        switch (mr) {
        case 1:
            strip(&ab[0][0], 4 * OCT__I8_KCG, w, nb, s, ng, c, ldc, ncols, accumulate, 1);
            break;
        case 2:
            strip(&ab[0][0], 4 * OCT__I8_KCG, w, nb, s, ng, c, ldc, ncols, accumulate, 2);
            break;
        case 3:
            strip(&ab[0][0], 4 * OCT__I8_KCG, w, nb, s, ng, c, ldc, ncols, accumulate, 3);
            break;
        default:
            strip(&ab[0][0], 4 * OCT__I8_KCG, w, nb, s, ng, c, ldc, ncols, accumulate, 4);
            break;
        }
    }
}

#endif
