/* The float side of the quantization arithmetic: schemes, quantize / dequantize / fake-quant
 * (scalar and array versions sharing one inline kernel, so they agree bit for bit), ranges to
 * scale and zero point, bias quantization, and the STE / LSQ / PACT helpers the fake-quant ops
 * use. The rules are documented in include/octet/quant.h. */
#include "octet/quant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/clones.h"

/* The rules below rely on IEEE float32 semantics that these modes break. */
#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "src/quant must not be compiled with -ffast-math or -ffinite-math-only"
#endif
#if FLT_EVAL_METHOD != 0
#error "src/quant needs FLT_EVAL_METHOD == 0 (true float32 division, e.g. SSE2, not x87)"
#endif

oct_status oct_qscheme_init(oct_qscheme *q, int bits, bool is_signed, bool symmetric, bool narrow,
                            bool per_channel) {
    if (bits < 2 || bits > 8) return oct_fail(OCT_EINVAL, "quant: bits = %d, expected 2..8", bits);
    if (!is_signed && symmetric && narrow)
        return oct_fail(OCT_EINVAL, "quant: unsigned symmetric narrow range cannot represent 0");
    *q = (oct_qscheme){.bits = bits,
                       .is_signed = is_signed,
                       .symmetric = symmetric,
                       .narrow = narrow,
                       .per_channel = per_channel};
    q->qmin = is_signed ? -(1 << (bits - 1)) : 0;
    q->qmax = is_signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
    if (narrow) q->qmin += 1;
    return OCT_OK;
}

oct_qscheme oct_qscheme_weights(void) {
    oct_qscheme q;
    OCT_ASSERT(oct_qscheme_init(&q, 8, true, true, true, true) == OCT_OK);
    return q;
}

oct_qscheme oct_qscheme_activations(void) {
    oct_qscheme q;
    OCT_ASSERT(oct_qscheme_init(&q, 8, false, false, false, false) == OCT_OK);
    return q;
}

/* ---- quantize ------------------------------------------------------------------------------- */

/* rint(x / s) clamped to [lo, hi] = [qmin - z, qmax - z], NaN -> 0. Clamping before rounding
 * gives the same result as after (lo, hi are integers and rint is monotonic) and keeps the
 * float -> int conversion in range. Written with comparisons so that gcc can vectorize it. */
static inline int32_t quant_offset(float x, float s, float lo, float hi) {
    float v = x / s;
    v = v == v ? v : 0.0f;
    v = v < lo ? lo : v;
    v = v > hi ? hi : v;
    /* rintf(v) for |v| < 2^22 (check_params bounds the code offsets so): adding and
     * subtracting 1.5 * 2^23 rounds to an integer in the current rounding mode (nearest, ties to
     * even), exactly as rintf does, but in plain SSE2 arithmetic that gcc vectorizes (rintf needs
     * SSE4.1's roundps). */
    const float magic = 12582912.0f;
    return (int32_t)((v + magic) - magic);
}

static void check_params(float s, int32_t z, int32_t qmin, int32_t qmax) {
    OCT_ASSERT(s > 0.0f && s <= FLT_MAX);
    OCT_ASSERT(qmin <= z && z <= qmax);
    OCT_ASSERT((int64_t)qmax - z <= OCT_QUANT_MAX_OFFSET &&
               (int64_t)z - qmin <= OCT_QUANT_MAX_OFFSET);
}

int32_t oct_quantize(float x, float s, int32_t z, int32_t qmin, int32_t qmax) {
    check_params(s, z, qmin, qmax);
    return quant_offset(x, s, (float)(qmin - z), (float)(qmax - z)) + z;
}

float oct_dequantize(int32_t q, float s, int32_t z) {
    return s * (float)(q - z);
}

float oct_fake_quant(float x, float s, int32_t z, int32_t qmin, int32_t qmax) {
    return oct_dequantize(oct_quantize(x, s, z, qmin, qmax), s, z);
}

/* One row of oct_quantize_u8 (the run-time quantization of dynamic activations is hot). */
OCT_CLONES static void quantize_row_u8(const float *restrict x, int64_t n, float s, float lo,
                                       float hi, int32_t z, uint8_t *restrict q) {
    for (int64_t i = 0; i < n; i++) q[i] = (uint8_t)(quant_offset(x[i], s, lo, hi) + z);
}

void oct_quantize_u8(const float *x, int64_t rows, int64_t cols, const float *s, const int32_t *z,
                     int32_t qmin, int32_t qmax, uint8_t *q) {
    OCT_ASSERT(0 <= qmin && qmax <= UINT8_MAX);
    for (int64_t r = 0; r < rows; r++) {
        check_params(s[r], z[r], qmin, qmax);
        quantize_row_u8(x + r * cols, cols, s[r], (float)(qmin - z[r]), (float)(qmax - z[r]), z[r],
                        q + r * cols);
    }
}

void oct_quantize_s8(const float *x, int64_t rows, int64_t cols, const float *s, const int32_t *z,
                     int32_t qmin, int32_t qmax, int8_t *q) {
    OCT_ASSERT(INT8_MIN <= qmin && qmax <= INT8_MAX);
    for (int64_t r = 0; r < rows; r++) {
        check_params(s[r], z[r], qmin, qmax);
        const float *xr = x + r * cols;
        int8_t *qr = q + r * cols;
        float sr = s[r], lo = (float)(qmin - z[r]), hi = (float)(qmax - z[r]);
        int32_t zr = z[r];
        for (int64_t i = 0; i < cols; i++) qr[i] = (int8_t)(quant_offset(xr[i], sr, lo, hi) + zr);
    }
}

void oct_quantize_pow2_s8(const float *x, int64_t rows, int64_t cols, const float *s, int max_exp,
                          int8_t *q) {
    OCT_ASSERT(max_exp >= 0 && max_exp <= 6);
    float top = (float)(1 << max_exp);
    for (int64_t r = 0; r < rows; r++) {
        check_params(s[r], 0, -(1 << max_exp), 1 << max_exp);
        const float *xr = x + r * cols, sr = s[r];
        int8_t *qr = q + r * cols;
        for (int64_t i = 0; i < cols; i++) { /* selects only, so that gcc vectorizes it */
            float v = xr[i] / sr;
            v = v == v ? v : 0.0f;
            float a = fabsf(v);
            a = a > top ? top : a;
            a = a < 0.5f ? 0.0f : a;
            a = a < 0.75f && a > 0.0f ? 0.75f : a; /* [0.5, 0.75) rounds to 1 too */
            uint32_t bits;
            memcpy(&bits, &a, sizeof bits);
            /* 2^k with k the exponent, plus one from 1.5 * 2^k up (the mantissa's top bit) */
            uint32_t pow2 = ((bits >> 23) + (bits >> 22 & 1u)) << 23;
            bits = bits ? pow2 : 0u;
            float c;
            memcpy(&c, &bits, sizeof c);
            c = v < 0.0f ? -c : c;
            qr[i] = (int8_t)(int32_t)c;
        }
    }
}

/* The bins' nearest levels: lut[b] for code b - 127, levels sorted increasing (ties to the
 * lower). */
static void nearest_levels(const int *level, int k, int8_t *lut) {
    for (int b = 0, j = 0; b < 255; b++) {
        int code = b - 127;
        while (j + 1 < k && abs(level[j + 1] - code) < abs(level[j] - code)) j++;
        lut[b] = (int8_t)level[j];
    }
}

void oct_quantize_codebook_s8(const float *x, int64_t rows, int64_t cols, const float *s,
                              int levels, int8_t *q) {
    OCT_ASSERT(levels >= 2 && levels <= 255 && rows > 0 && cols > 0);
    int64_t n = rows * cols, count[255] = {0};
    double sum[255] = {0}; /* of the real values x / s in each bin */
    int32_t *zeros = calloc((size_t)rows, sizeof *zeros);
    OCT_ALLOC_CHECK(zeros, (size_t)rows * sizeof *zeros);
    oct_quantize_s8(x, rows, cols, s, zeros, -127, 127, q);
    free(zeros);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < cols; i++) {
            int b = q[r * cols + i] + 127;
            float v = x[r * cols + i] / s[r];
            count[b]++;
            sum[b] += v == v ? v : 0.0f;
        }
    int level[255], k = 0;
    int64_t seen = 0;
    for (int b = 0, j = 0; b < 255 && j < levels; b++) { /* the (j + 1/2) / levels quantiles */
        seen += count[b];
        while (j < levels && (double)seen > ((double)j + 0.5) * (double)n / levels) {
            if (k == 0 || level[k - 1] != b - 127) level[k++] = b - 127;
            j++;
        }
    }
    int8_t lut[255];
    for (int round = 0; round < 32; round++) {
        nearest_levels(level, k, lut);
        int64_t cnt[255] = {0};
        double tot[255] = {0};
        for (int b = 0, j = 0; b < 255; b++) {
            while (level[j] != lut[b]) j++;
            cnt[j] += count[b];
            tot[j] += sum[b];
        }
        bool moved = false;
        int m = 0;
        for (int j = 0; j < k; j++) { /* empty levels drop out; moved ones stay sorted */
            if (!cnt[j]) continue;
            double c = rint(tot[j] / (double)cnt[j]);
            int v = c < -127 ? -127 : c > 127 ? 127 : (int)c;
            moved |= v != level[j] || m != j;
            if (m == 0 || level[m - 1] != v) level[m++] = v;
        }
        k = m;
        if (!moved) break;
    }
    nearest_levels(level, k, lut);
    for (int64_t i = 0; i < n; i++) q[i] = lut[q[i] + 127];
}

void oct_dequantize_u8(const uint8_t *q, int64_t rows, int64_t cols, const float *s,
                       const int32_t *z, float *x) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < cols; i++)
            x[r * cols + i] = oct_dequantize(q[r * cols + i], s[r], z[r]);
}

void oct_dequantize_s8(const int8_t *q, int64_t rows, int64_t cols, const float *s,
                       const int32_t *z, float *x) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < cols; i++)
            x[r * cols + i] = oct_dequantize(q[r * cols + i], s[r], z[r]);
}

void oct_fake_quant_rows(const float *x, int64_t rows, int64_t cols, const float *s,
                         const int32_t *z, int32_t qmin, int32_t qmax, float *y) {
    for (int64_t r = 0; r < rows; r++) {
        check_params(s[r], z[r], qmin, qmax);
        float sr = s[r], lo = (float)(qmin - z[r]), hi = (float)(qmax - z[r]);
        for (int64_t i = 0; i < cols; i++)
            y[r * cols + i] = sr * (float)quant_offset(x[r * cols + i], sr, lo, hi);
    }
}

/* ---- ranges, bias --------------------------------------------------------------------------- */

static float clamp_scale(double s) {
    return s < OCT_QUANT_MIN_SCALE ? OCT_QUANT_MIN_SCALE : (float)s;
}

oct_status oct_quant_params(const oct_qscheme *q, float lo, float hi, float *scale,
                            int32_t *zero_point) {
    oct_status st = OCT_OK;
    if (!isfinite(lo) || !isfinite(hi) || lo > hi) {
        st = oct_fail(OCT_EINVAL, "quant: range [%g, %g] is not a finite interval", lo, hi);
        lo = hi = 0.0f;
    }
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    float s;
    if (lo == hi)
        s = OCT_QUANT_ZERO_RANGE_SCALE;
    else if (q->symmetric)
        s = clamp_scale(((double)-lo > hi ? -(double)lo : (double)hi) / q->qmax);
    else
        s = clamp_scale(((double)hi - (double)lo) / ((double)q->qmax - q->qmin));
    int32_t z = 0;
    if (!q->symmetric) {
        /* lo <= 0, so -rint(lo / s) >= 0; clamp in float before converting. */
        float v = lo / s;
        float span = (float)(q->qmax - q->qmin);
        v = v < -span ? -span : v;
        z = q->qmin - (int32_t)rintf(v);
        if (z > q->qmax) z = q->qmax;
    }
    /* a range near FLT_MAX: s rounded up can dequantize the code furthest from z to an
     * infinity; an ulp or two less keeps it finite */
    float widest = (float)(q->qmax - z > z - q->qmin ? q->qmax - z : z - q->qmin);
    while (isinf(s * widest)) s = nextafterf(s, 0.0f);
    *scale = s;
    *zero_point = z;
    return st;
}

/* The smallest and largest of row (cols >= 1) in 16 independent lanes, so that the reduction
 * vectorizes; the result is a sequential scan's (min and max are exact). */
OCT_CLONES static void row_range(const float *restrict row, int64_t cols, float *lo_out,
                                 float *hi_out) {
    float lo16[16], hi16[16];
    int nan16[16] = {0}; /* a NaN anywhere makes the range NaN (comparisons alone skip it) */
    for (int j = 0; j < 16; j++) lo16[j] = hi16[j] = row[0];
    int64_t k = 0;
    for (; k + 16 <= cols; k += 16)
        for (int j = 0; j < 16; j++) {
            float v = row[k + j];
            lo16[j] = v < lo16[j] ? v : lo16[j];
            hi16[j] = v > hi16[j] ? v : hi16[j];
            nan16[j] |= v != v;
        }
    for (; k < cols; k++) {
        lo16[0] = row[k] < lo16[0] ? row[k] : lo16[0];
        hi16[0] = row[k] > hi16[0] ? row[k] : hi16[0];
        nan16[0] |= row[k] != row[k];
    }
    float lo = lo16[0], hi = hi16[0];
    int nan = nan16[0];
    for (int j = 1; j < 16; j++) {
        lo = lo16[j] < lo ? lo16[j] : lo;
        hi = hi16[j] > hi ? hi16[j] : hi;
        nan |= nan16[j];
    }
    *lo_out = nan ? NAN : lo;
    *hi_out = nan ? NAN : hi;
}

void oct_quant_row_params(const oct_qscheme *q, const float *w, int64_t rows, int64_t cols,
                          float *s, int32_t *zp) {
    for (int64_t r = 0; r < rows; r++) {
        float lo, hi;
        row_range(w + r * cols, cols, &lo, &hi);
        int32_t z;
        oct_quant_params(q, lo, hi, &s[r], &z); /* NaN: the fallback scale */
        if (zp) zp[r] = z;
    }
}

void oct_quant_row_scales(const oct_qscheme *q, const float *w, int64_t rows, int64_t cols,
                          float *s) {
    oct_quant_row_params(q, w, rows, cols, s, NULL);
}

/* sum_k (w_k - s q_k)^2 over the finite weights of row (n) for the scale s (symmetric, codes
 * [qmin, qmax]), with q_k from w_k times 1 / s (a search objective: the codes themselves come
 * from oct_quantize's division later). Four running sums in a fixed order, the same in every
 * build. */
static double row_sq_error(const float *row, int64_t n, float s, int32_t qmin, int32_t qmax) {
    float inv = 1.0f / s, lo = (float)qmin, hi = (float)qmax;
    double e[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t k = 0; k < n; k++) {
        float x = isfinite(row[k]) ? row[k] : 0.0f;
        float v = rintf(x * inv);
        v = v < lo ? lo : v > hi ? hi : v;
        float d = x - s * v;
        e[k & 3] += (double)(d * d);
    }
    return (e[0] + e[2]) + (e[1] + e[3]);
}

void oct_quant_row_scales_mse(const oct_qscheme *q, const float *w, int64_t rows, int64_t cols,
                              float *s) {
    OCT_ASSERT(q->symmetric);
    oct_quant_row_scales(q, w, rows, cols, s);
    for (int64_t r = 0; r < rows; r++) {
        const float *row = w + r * cols;
        float s_mm = s[r];
        double best = row_sq_error(row, cols, s_mm, q->qmin, q->qmax);
        int best_pc = 100; /* the clipping factor in percent */
        for (int pass = 0; pass < 2; pass++) {
            int from = pass ? best_pc + 4 : 95, step = pass ? 1 : 5;
            int to = pass && best_pc - 4 > 50 ? best_pc - 4 : 50;
            for (int pc = from; pc >= to; pc -= step) {
                if (pc >= 100 || pc == best_pc) continue;
                float c = clamp_scale((double)s_mm * pc / 100.0);
                double e = row_sq_error(row, cols, c, q->qmin, q->qmax);
                if (e < best) {
                    best = e;
                    best_pc = pc;
                }
            }
        }
        s[r] = best_pc == 100 ? s_mm : clamp_scale((double)s_mm * best_pc / 100.0);
    }
}

int32_t oct_quant_bias(float b, float s_a, float s_w) {
    double sab = (double)s_a * (double)s_w;
    OCT_ASSERT(sab > 0.0);
    double v = rint((double)b / sab);
    if (v != v) return 0;
    if (v <= (double)INT32_MIN) return INT32_MIN;
    if (v >= (double)INT32_MAX) return INT32_MAX;
    return (int32_t)v;
}

void oct_quant_bias_rows(const float *b, int n, float s_a, const float *s_w, int32_t *b_q) {
    for (int c = 0; c < n; c++) b_q[c] = oct_quant_bias(b[c], s_a, s_w[c]);
}

/* ---- STE, LSQ, PACT ------------------------------------------------------------------------- */

enum { SIDE_INSIDE, SIDE_BELOW, SIDE_ABOVE, SIDE_NAN };

/* Where rint(x / s) + z falls relative to [qmin, qmax]; *v = x / s (float32). */
static int quant_side(float x, float s, int32_t z, int32_t qmin, int32_t qmax, float *v) {
    check_params(s, z, qmin, qmax);
    *v = x / s;
    if (*v != *v) return SIDE_NAN;
    float r = rintf(*v);
    if (r < (float)(qmin - z)) return SIDE_BELOW;
    if (r > (float)(qmax - z)) return SIDE_ABOVE;
    return SIDE_INSIDE;
}

bool oct_quant_passes(float x, float s, int32_t z, int32_t qmin, int32_t qmax) {
    float v;
    return quant_side(x, s, z, qmin, qmax, &v) == SIDE_INSIDE;
}

void oct_quant_pass_mask(const float *x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax,
                         float *mask) {
    check_params(s, z, qmin, qmax);
    const float lo = (float)(qmin - z), hi = (float)(qmax - z), magic = 12582912.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = x[i] / s;
        /* rintf(v) where it matters (|v| < 2^22, as |lo|, |hi| < 2^22); beyond that r is at
         * least 2^22 in magnitude, outside [lo, hi], and NaN fails both comparisons, as in
         * quant_side. */
        float r = (v + magic) - magic;
        mask[i] = r >= lo && r <= hi ? 1.0f : 0.0f;
    }
}

float oct_lsq_init_scale(const float *x, int64_t n, int32_t qp) {
    OCT_ASSERT(qp > 0);
    double sum = 0.0;
    int64_t count = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        sum += fabs((double)x[i]);
        count++;
    }
    double mean = count > 0 ? sum / (double)count : 0.0;
    return clamp_scale(2.0 * mean / sqrt((double)qp));
}

int32_t oct_lsq_levels(int32_t z, int32_t qmin, int32_t qmax) {
    OCT_ASSERT(qmin < qmax && z >= qmin && z <= qmax);
    return z < qmax ? qmax - z : z - qmin;
}

float oct_lsq_grad_factor(int64_t n, int32_t qp) {
    OCT_ASSERT(n > 0 && qp > 0);
    return (float)(1.0 / sqrt((double)n * (double)qp));
}

float oct_lsq_grad_scale(float x, float s, int32_t z, int32_t qmin, int32_t qmax, float g) {
    float v;
    switch (quant_side(x, s, z, qmin, qmax, &v)) {
    case SIDE_INSIDE:
        return g * (rintf(v) - v);
    case SIDE_BELOW:
        return g * (float)(qmin - z);
    case SIDE_ABOVE:
        return g * (float)(qmax - z);
    default:
        return 0.0f;
    }
}

double oct_lsq_backward(const float *x, const float *d, int64_t n, float s, int32_t z, int32_t qmin,
                        int32_t qmax, float g, float *dx) {
    check_params(s, z, qmin, qmax);
    const float lo = (float)(qmin - z), hi = (float)(qmax - z);
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++) {                /* quant_side and oct_lsq_grad_scale, inline */
        float v = x[i] / s, r = rintf(v), gs = 0.0f; /* NaN: neither passes nor moves s */
        if (r < lo) {
            gs = g * lo;
        } else if (r > hi) {
            gs = g * hi;
        } else if (v == v) {
            gs = g * (r - v);
            if (dx) dx[i] += d[i];
        }
        acc += (double)d[i] * gs;
    }
    return acc;
}

float oct_pact(float x, float alpha) {
    OCT_ASSERT(alpha > 0.0f);
    if (!(x > 0.0f)) return 0.0f; /* also NaN */
    return x < alpha ? x : alpha;
}

float oct_pact_grad_alpha(float x, float alpha) {
    return x >= alpha ? 1.0f : 0.0f;
}

float oct_pact_grad_x(float x, float alpha) {
    return x > 0.0f && x < alpha ? 1.0f : 0.0f;
}
