/* The float32 row kernels shared by training and the integer GPT engine (see
 * include/octet/nonlinear.h): LayerNorm, GELU (tanh and erf forms), RoPE and one causal
 * attention row, each with a fixed order of operations so that both sides compute the same bits. */
#include "octet/nonlinear.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "octet/status.h"

#include "../core/clones.h"

/* The hot kernels get wider clones picked at run time (core/clones.h), with the baseline's bits. */

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_CUBE 0.044715f

void oct_nl_layernorm_row(const float *x, const float *gamma, const float *beta, int C, float eps,
                          float *y, float *mean, float *rstd) {
    float m = 0.0f;
    for (int j = 0; j < C; j++) m += x[j];
    m /= (float)C;
    float v = 0.0f;
    for (int j = 0; j < C; j++) {
        float d = x[j] - m;
        v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int j = 0; j < C; j++) y[j] = (x[j] - m) * s * gamma[j] + beta[j];
    if (mean) *mean = m;
    if (rstd) *rstd = s;
}

/* e^x for -87 <= x <= 0: x = n ln 2 + r (Cody-Waite, n rounded with the 1.5 * 2^23 trick), the
 * Cephes expf polynomial for e^r, times 2^n built in the exponent bits. Plain float arithmetic
 * without calls or branches, so loops over it vectorize, and the same on every path. */
static inline float exp_small(float x) {
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* (1 + tanh(u)) / 2 = sigmoid(2u), as 1 / (1 + e) for u >= 0 and e / (1 + e) for u < 0 with
 * e = e^(-2|u|) and |u| clamped to 40 (compared as bits, a >= 0): no cancellation in either
 * tail, and no branch for the vectorizer to trip on (both quotients share one division). */
static inline float half_one_plus_tanh(float v) {
    float u = GELU_SCALE * (v + GELU_CUBE * v * v * v);
    float a = fabsf(u);
    int32_t bits;
    memcpy(&bits, &a, sizeof bits);
    bool far = bits >= 0x42200000; /* |u| >= 40: e below 2e-35, taken as 0 */
    bits = far ? 0x42200000 : bits;
    memcpy(&a, &bits, sizeof a);
    float e = exp_small(-2.0f * a);
    e = far ? 0.0f : e; /* else x e for x near -FLT_MAX would be far from 0 */
    return (u >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* x f for GELU's factor f in [0, 1]: a signed 0 where f is 0, also for x = -Inf (not NaN). */
static inline float times_factor(float x, float f) {
    return f == 0.0f ? copysignf(0.0f, x) : x * f;
}

OCT_CLONES void oct_nl_gelu(const float *x, int64_t n, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = times_factor(x[i], half_one_plus_tanh(x[i]));
}

OCT_CLONES void oct_nl_gelu_backward(const float *x, const float *dy, int64_t n, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], sg = half_one_plus_tanh(v), c = sg * (1.0f - sg); /* sech^2(u) / 4 */
        float t = 2.0f * v * c * GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * v * v);
        float local = sg + (c > 0.0f ? t : 0.0f); /* c = 0 far out, where v * v may overflow */
        dx[i] += local * dy[i];
    }
}

/* min(a, cap) for a, cap >= 0, compared as bits (non-negative floats order as their bits), so
 * the loops around it stay branch-free and vectorize. */
static inline float min_nonneg(float a, float cap) {
    int32_t ab, cb;
    memcpy(&ab, &a, sizeof ab);
    memcpy(&cb, &cap, sizeof cb);
    ab = ab < cb ? ab : cb;
    memcpy(&a, &ab, sizeof a);
    return a;
}

/* e^x for x <= 0 (or NaN), x below -87 and NaN taken as -87: |x| capped at 87 as bits, so loops
 * over it vectorize (a compare of floats would not). */
static inline float exp_nonpositive(float x) {
    return exp_small(-min_nonneg(fabsf(x), 87.0f));
}

float oct_nl_exp(float x) {
    OCT_ASSERT(!(x > 0.0f));
    return exp_nonpositive(x);
}

/* erfc(z) / 2 for z >= 0: Numerical Recipes' erfcc (t = 1 / (1 + z / 2), erfc = t e^(P(t) - z^2)
 * with a degree-9 Chebyshev-fitted P, fractional error below 1.2e-7) through exp_small; 0 from
 * z = 9.2 on (where the exponent is -85.7 and erfc(z) / 2 is 1e-38, the end of float32's normal
 * range), so that x Phi(x) is 0 for x near -FLT_MAX. */
static inline float half_erfc(float z) {
    bool far = z >= 9.2f;
    z = min_nonneg(z, 9.2f);
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float e = 0.5f * t * exp_small(p - z * z);
    return far ? 0.0f : e;
}

/* Phi(v), the standard normal distribution function: erfc(-v / sqrt 2) / 2. */
static inline float normal_cdf(float v) {
    float e = half_erfc(fabsf(v) * 0.70710678118654752f);
    /* 1 - e for v >= 0, else e (0 + e): selects of constants only, which vectorize */
    return (v >= 0.0f ? 1.0f : 0.0f) + (v >= 0.0f ? -1.0f : 1.0f) * e;
}

OCT_CLONES void oct_nl_gelu_erf(const float *x, int64_t n, float *y) {
    for (int64_t i = 0; i < n; i++) y[i] = times_factor(x[i], normal_cdf(x[i]));
}

OCT_CLONES void oct_nl_gelu_erf_backward(const float *x, const float *dy, int64_t n, float *dx) {
    for (int64_t i = 0; i < n; i++) {
        /* phi(v) = e^(-v^2 / 2) / sqrt(2 pi), 0 from |v| = 13 on (phi(13) = 1e-37) */
        float v = x[i], a = min_nonneg(fabsf(v), 13.0f);
        float pdf = 0.39894228040143268f * exp_small(-0.5f * a * a);
        pdf = a >= 13.0f ? 0.0f : pdf;
        dx[i] += (normal_cdf(v) + times_factor(v, pdf)) * dy[i];
    }
}

/* The order the attention row's dot products follow (there over 16 keys at a time). */
float oct_nl_dot(const float *a, const float *b, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

/* 16 floats as one GCC/Clang generic vector: elementwise IEEE operations, so the same bits as
 * the scalar code at any width (one AVX-512 register, two AVX2 ones, four SSE ones, or scalars
 * on other machines). */
typedef float v16f __attribute__((vector_size(64)));
/* The same, read from any float address. */
typedef float v16f_u __attribute__((vector_size(64), aligned(4), may_alias));
#define LOAD16(x) (*(const v16f_u *)(x))

/* oh[0, 16 nv) = sum_u p_u v_u from u = 0 up, in nv (1, 2 or 4: a constant once inlined)
 * independent vector accumulators. */
static inline __attribute__((always_inline)) void
weighted_sum(const float *p, int n, const float *v, int64_t v_stride, int nv, float *oh) {
    v16f acc[4] = {{0}, {0}, {0}, {0}};
    for (int u = 0; u < n; u++)
        for (int k = 0; k < nv; k++) acc[k] += p[u] * LOAD16(v + u * v_stride + 16 * k);
    memcpy(oh, acc, (size_t)nv * sizeof acc[0]);
}

/* The largest of x[0..n), NaN ignored (-Inf if none): 16 lanes at a time, then the lanes and the
 * tail. The same value as a serial scan, whatever the order; of a +0 and a -0 either may come
 * out, and x - max then differs only in the sign of a zero, which the softmax's exp (of -|x|)
 * does not see. */
static inline __attribute__((always_inline)) float max_ignoring_nan(const float *x, int n) {
    typedef int32_t v16i __attribute__((vector_size(64)));
    v16f m = (v16f){0} - INFINITY;
    int u = 0;
    for (; u + 16 <= n; u += 16) {
        v16f v = LOAD16(x + u);
        v16i gt = v > m;
        m = (v16f)(((v16i)v & gt) | ((v16i)m & ~gt));
    }
    float lanes[16], mx = -INFINITY;
    memcpy(lanes, &m, sizeof lanes);
    for (int i = 0; i < 16; i++) mx = lanes[i] > mx ? lanes[i] : mx;
    for (; u < n; u++) mx = x[u] > mx ? x[u] : mx;
    return mx;
}

/* Softmax of head h's n scores in ph, then out_h = sum_u p_u v_u, each output summed from u = 0
 * up, 16, 32 or 64 outputs at a time (weighted_sum). */
static inline __attribute__((always_inline)) void
softmax_values(float *ph, int n, const float *v, int64_t v_stride, int hs, float *oh) {
    float mx = max_ignoring_nan(ph, n), sum = 0.0f;
    for (int u = 0; u < n; u++) ph[u] = exp_nonpositive(ph[u] - mx); /* oct_nl_exp, vectorized */
    for (int u = 0; u < n; u++) sum += ph[u];
    float inv = 1.0f / sum;
    for (int u = 0; u < n; u++) ph[u] = ph[u] * inv;
    int i0 = 0;
    for (; i0 + 64 <= hs; i0 += 64) weighted_sum(ph, n, v + i0, v_stride, 4, oh + i0);
    if (hs - i0 >= 32) {
        weighted_sum(ph, n, v + i0, v_stride, 2, oh + i0);
        i0 += 32;
    }
    if (hs - i0 >= 16) {
        weighted_sum(ph, n, v + i0, v_stride, 1, oh + i0);
        i0 += 16;
    }
    for (; i0 < hs; i0++) {
        float acc = 0.0f;
        for (int u = 0; u < n; u++) acc += ph[u] * v[u * v_stride + i0];
        oh[i0] = acc;
    }
}

/* Keys in blocks of 16, one vector lane each: oct_nl_dot's eight lane sums are eight vectors,
 * added in its tree without a horizontal sum per key. */
OCT_CLONES void oct_nl_attention_row(const float *q, const float *kt, int64_t kt_stride,
                                     const float *v, int64_t v_stride, int n, int C, int n_head,
                                     float *p, int64_t p_stride, float *out) {
    OCT_ASSERT(n >= 1 && n <= kt_stride && n_head > 0 && C % n_head == 0);
    int hs = C / n_head, full = hs / 8 * 8;
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + h * hs, *kh = kt + h * hs * kt_stride;
        float *ph = p + h * p_stride;
        /* Blocks of 16 keys while they fit in a row of kt (a last block past n reads columns
         * of kt it then ignores), one key at a time after that. */
        int u0 = 0;
        for (; u0 < n && u0 + 16 <= kt_stride; u0 += 16) {
            v16f s[8] = {{0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}};
            for (int i = 0; i < full; i += 8)
                for (int j = 0; j < 8; j++)
                    s[j] += qh[i + j] * LOAD16(kh + (i + j) * kt_stride + u0);
            v16f r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
            for (int i = full; i < hs; i++) r += qh[i] * LOAD16(kh + i * kt_stride + u0);
            r *= scale;
            memcpy(ph + u0, &r, (size_t)(n - u0 < 16 ? n - u0 : 16) * sizeof(float));
        }
        for (; u0 < n; u0++) {
            float s[8] = {0};
            for (int j = 0; j < 8; j++)
                for (int i = j; i < full; i += 8) s[j] += qh[i] * kh[i * kt_stride + u0];
            float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
            for (int i = full; i < hs; i++) r += qh[i] * kh[i * kt_stride + u0];
            ph[u0] = r * scale;
        }
        softmax_values(ph, n, v + h * hs, v_stride, hs, out + h * hs);
    }
}

/* e^x in double for -2^10 < x <= 0: x = k ln 2 + r, |r| <= ln 2 / 2 (Cody-Waite with fdlibm's
 * split of ln 2, k ln2_hi exact), e^r by its Taylor series to r^13 (next term < 4e-18), times
 * 2^k. Only IEEE +, -, *, / and the exact rint and ldexp: the same bits under any libm. */
static double exp_ieee(double x) {
    double k = rint(x * 1.4426950408889634);
    double r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
    double p = 1.0;
    for (int j = 13; j >= 1; j--) p = 1.0 + p * r / j;
    return ldexp(p, (int)k);
}

/* cos a and sin a in double for 0 <= a < 2^20 pi / 2, the same way: a = k pi/2 + r, |r| <=
 * pi/4 (fdlibm's three-part pi/2, each k pio2_i exact), the Taylor series of cos r to r^18 and
 * sin r to r^19 (next terms < 1e-19), and k's quadrant. */
static void cos_sin_ieee(double a, double *c, double *s) {
    double k = rint(a * 6.36619772367581382433e-01);
    double r = ((a - k * 1.57079632673412561417e+00) - k * 6.07710050650619224932e-11) -
               k * 2.02226624871116645580e-21;
    double r2 = r * r, pc = 1.0, ps = 1.0;
    for (int j = 18; j >= 2; j -= 2) {
        pc = 1.0 - pc * r2 / (j * (j - 1));
        ps = 1.0 - ps * r2 / ((j + 1) * j);
    }
    ps *= r;
    int q = (int)((int64_t)k & 3);
    *c = q == 0 ? pc : q == 1 ? -ps : q == 2 ? -pc : ps;
    *s = q == 0 ? ps : q == 1 ? pc : q == 2 ? -ps : -pc;
}

void oct_nl_rope_angles(int t, int hs, float *cs) {
    OCT_ASSERT(t >= 0 && hs >= 2 && hs % 2 == 0);
    for (int i = 0; i < hs / 2; i++) {
        double c, s;
        cos_sin_ieee((double)t * exp_ieee(-2.0 * i / hs * OCT_ROPE_LN_BASE), &c, &s);
        cs[2 * i] = (float)c;
        cs[2 * i + 1] = (float)s;
    }
}

void oct_nl_rope_row(float *qkv, int C, int n_head, const float *cs, bool inverse) {
    int hs = C / n_head, half = hs / 2;
    float sign = inverse ? -1.0f : 1.0f;
    for (int h = 0; h < 2 * n_head; h++) { /* q's heads, then k's: the first 2C values */
        float *a = qkv + h * hs, *b = a + half;
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i], s = sign * cs[2 * i + 1], ai = a[i], bi = b[i];
            a[i] = ai * c - bi * s;
            b[i] = ai * s + bi * c;
        }
    }
}
