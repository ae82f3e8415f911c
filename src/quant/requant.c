/* The integer side of the quantization arithmetic: the requantization multiplier M -> (M0, k),
 * requantization of int32 accumulators (scalar and row versions sharing one inline kernel, the
 * code both the QAT forward and the integer engine run on every output), and the real value of
 * an accumulator for QAT observers. The rules are documented in include/octet/quant.h. */
#include "octet/quant.h"

#include <math.h>

#include "../core/clones.h"

/* Requantization needs >> on a negative int64 to be an arithmetic (flooring) shift. C leaves
 * it implementation-defined; gcc and clang document arithmetic shifts. */
_Static_assert((-1LL >> 1) == -1LL && (-5LL >> 1) == -3LL, "need arithmetic right shift");

#define M0_MIN (INT32_C(1) << 30)
#define SHIFT_MIN 1
#define SHIFT_MAX 62

oct_status oct_requant_multiplier(double m, int32_t *m0, int32_t *shift) {
    if (!(m >= 0.0) || isinf(m)) {
        *m0 = M0_MIN;
        *shift = SHIFT_MAX;
        return oct_fail(OCT_EINVAL, "quant: requantization multiplier %g is not finite and >= 0",
                        m);
    }
    int e = 0;
    double f = frexp(m, &e); /* m = f * 2^e, f in [0.5, 1); f = 0, e = 0 for m = 0 */
    double r = rint(ldexp(f, 31));
    if (r >= 0x1p31) { /* f rounded up to 1.0 */
        r = 0x1p30;
        e += 1;
    }
    int k = 31 - e;
    if (m == 0.0 || k > SHIFT_MAX) { /* m < 2^-32: every int32 acc rounds to 0, as with 2^-32 */
        *m0 = M0_MIN;
        *shift = SHIFT_MAX;
    } else if (k < SHIFT_MIN) { /* m >= 2^30: every acc != 0 saturates, as with ~2^30 */
        *m0 = INT32_MAX;
        *shift = SHIFT_MIN;
    } else {
        *m0 = (int32_t)r;
        *shift = k;
    }
    return OCT_OK;
}

oct_status oct_requant_multipliers(float s_a, const float *s_w, int n, float s_y, int32_t *m0,
                                   int32_t *shift) {
    for (int c = 0; c < n; c++) {
        if (!(s_a > 0.0f && s_w[c] > 0.0f && s_y > 0.0f) || isinf(s_a) || isinf(s_w[c]) ||
            isinf(s_y))
            return oct_fail(OCT_EINVAL,
                            "quant: channel %d: scales s_a=%g s_w=%g s_y=%g must be "
                            "positive and finite",
                            c, s_a, s_w[c], s_y);
        oct_status st =
            oct_requant_multiplier((double)s_a * (double)s_w[c] / (double)s_y, &m0[c], &shift[c]);
        if (st != OCT_OK) return st;
    }
    return OCT_OK;
}

oct_status oct_requant_check(const int32_t *m0, const int32_t *shift, int n) {
    for (int c = 0; c < n; c++)
        if (m0[c] < M0_MIN || shift[c] < SHIFT_MIN || shift[c] > SHIFT_MAX)
            return oct_fail(OCT_EFORMAT,
                            "quant: channel %d: M0 = %ld, shift = %d, expected M0 in [2^30, 2^31) "
                            "and shift in [1, 62]",
                            c, (long)m0[c], (int)shift[c]);
    return OCT_OK;
}

/* The requantization rule (acc * m0 + 2^(k-1)) >> k, |acc * m0| < 2^62: no overflow. It is
 * computed as ((acc * m0 >> (k-1)) + 1) >> 1, which is equal (floor((floor(y) + 1) / 2) =
 * floor((y + 1) / 2)) and needs one variable shift instead of two. */
static inline int32_t requant_one(int32_t acc, int32_t m0, int32_t shift, int32_t zy, int32_t lo,
                                  int32_t hi) {
    int64_t v = ((((int64_t)acc * m0) >> (shift - 1)) + 1) >> 1;
    v += zy;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    return (int32_t)v;
}

static int32_t relu_floor(int32_t zy, int32_t qmin, int32_t qmax, bool relu) {
    OCT_ASSERT(qmin <= zy && zy <= qmax);
    return relu ? zy : qmin;
}

int32_t oct_requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zy, int32_t qmin,
                       int32_t qmax, bool relu) {
    OCT_ASSERT(m0 >= 0 && shift >= SHIFT_MIN && shift <= SHIFT_MAX);
    return requant_one(acc, m0, shift, zy, relu_floor(zy, qmin, qmax, relu), qmax);
}

/* Integer arithmetic only, so the AVX-512 clone (chosen at run time from cpuid; it has the 64-bit
 * variable arithmetic shift the loop needs to vectorize) gives the baseline's results exactly. */
OCT_CLONES static void requant_rows_u8(const int32_t *restrict acc, int64_t rows, int n,
                                       const int32_t *restrict m0, const int32_t *restrict shift,
                                       int32_t zy, int32_t lo, int32_t hi, uint8_t *restrict y) {
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < n; c++)
            y[r * n + c] = (uint8_t)requant_one(acc[r * n + c], m0[c], shift[c], zy, lo, hi);
}

void oct_requantize_u8(const int32_t *acc, int64_t rows, int n, const int32_t *restrict m0,
                       const int32_t *restrict shift, int32_t zy, int32_t qmin, int32_t qmax,
                       bool relu, uint8_t *restrict y) {
    OCT_ASSERT(0 <= qmin && qmax <= UINT8_MAX);
    requant_rows_u8(acc, rows, n, m0, shift, zy, relu_floor(zy, qmin, qmax, relu), qmax, y);
}

void oct_requantize_s8(const int32_t *acc, int64_t rows, int n, const int32_t *restrict m0,
                       const int32_t *restrict shift, int32_t zy, int32_t qmin, int32_t qmax,
                       bool relu, int8_t *restrict y) {
    OCT_ASSERT(INT8_MIN <= qmin && qmax <= INT8_MAX);
    int32_t lo = relu_floor(zy, qmin, qmax, relu);
    for (int64_t r = 0; r < rows; r++)
        for (int c = 0; c < n; c++)
            y[r * n + c] = (int8_t)requant_one(acc[r * n + c], m0[c], shift[c], zy, lo, qmax);
}

float oct_acc_to_real(int32_t acc, float s_a, float s_w) {
    return (float)((double)s_a * (double)s_w * (double)acc);
}

void oct_acc_to_real_rows(const int32_t *acc, int64_t rows, int n, float s_a, const float *s_w,
                          float *y) {
    /* (double)s_a * (double)s_w[c] is exact (24-bit by 24-bit mantissas), so multiplying the
     * precomputed product by acc gives oct_acc_to_real's bits. */
    double p[256];
    for (int c0 = 0; c0 < n; c0 += 256) {
        int m = n - c0 < 256 ? n - c0 : 256;
        for (int c = 0; c < m; c++) p[c] = (double)s_a * (double)s_w[c0 + c];
        for (int64_t r = 0; r < rows; r++) {
            const int32_t *ar = acc + r * n + c0;
            float *yr = y + r * n + c0;
            for (int c = 0; c < m; c++) yr[c] = (float)(p[c] * (double)ar[c]);
        }
    }
}
