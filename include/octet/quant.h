/* Quantization arithmetic shared by training (fake-quant ops, observers) and deployment (the
 * integer engine, export). Every rounding rule of octet lives here (README: "Quantization, in
 * one page").
 *
 * Notation: real x (float32), scale s > 0 (float32), zero point z (int32, qmin <= z <= qmax),
 * codes [qmin, qmax]. All functions are pure (no allocation, no global state) and thread-safe.
 * The float rules assume IEEE float32 arithmetic with FLT_EVAL_METHOD == 0, round-to-nearest
 * (the default mode: callers must not change it) and no -ffast-math; src/quant refuses to
 * compile otherwise.
 *
 * ---- The rules ----------------------------------------------------------------------------
 *
 * codes        qmin <= z <= qmax, with qmax - z and z - qmin at most OCT_QUANT_MAX_OFFSET =
 *              2^22 - 1 (the rounding below is exact within one code beyond; every scheme of up
 *              to 16 bits fits).
 * quantize     q = clamp(rint(x / s) + z, qmin, qmax): x / s is a true float32 division (never
 *              a reciprocal multiply), rint rounds half to even, z is added after rounding.
 *              Special values: NaN -> z (real 0); +Inf -> qmax; -Inf -> qmin; -0.0 -> z;
 *              huge finite x, or x / s overflowing to +-Inf, saturate like +-Inf. (The value is
 *              clamped as a float before it is converted to an integer, so nothing is UB.)
 * dequantize   x = s * (float)(q - z).
 * fake-quant   y = dequantize(quantize(x)).
 *
 * range -> s, z (oct_quant_params) from an observed [lo, hi]:
 *              the range is first extended to contain 0 (lo = min(lo, 0), hi = max(hi, 0)).
 *              asymmetric: s = (hi - lo) / (qmax - qmin), z = clamp(qmin - rint(lo / s), qmin,
 *                          qmax) (lo / s in float32);
 *              symmetric:  s = max(|lo|, |hi|) / qmax, z = 0 (unsigned symmetric has z = 0 =
 *                          qmin: negative values saturate to 0; meant for ReLU outputs).
 *              s is computed in double and rounded once to float32 (then lowered by an ulp or
 *              two in the one case where the code furthest from z would dequantize to an
 *              infinity: a range near FLT_MAX). A zero range (lo == hi ==
 *              0, e.g. a dead channel) gives s = 1.0. Any other s is raised to at least
 *              OCT_QUANT_MIN_SCALE (2^-23 = FLT_EPSILON, the floor PyTorch's observers use), so
 *              s is never 0 or denormal. NaN or infinite lo/hi, or lo > hi, return OCT_EINVAL
 *              and write the zero-range fallback (s = 1.0, z from the same formulas).
 *              Real 0 is always exactly representable: quantize(0) = z, dequantize(z) = 0.
 *
 * bias         b_q = (int32) rint((double)b / ((double)s_a * (double)s_w)), half to even in
 *              double, saturating to [INT32_MIN, INT32_MAX]; NaN -> 0, +-Inf saturate.
 *
 * multiplier   M = (double)s_a * s_w / s_y (the product is exact in double, one rounding in
 *              the division) written as M = M0 * 2^-k with M0 in [2^30, 2^31) and k in [1, 62],
 *              ALWAYS (this invariant has no exception). frexp gives M = f * 2^e, f in [0.5, 1);
 *              M0 = rint(f * 2^31) (half to even); M0 == 2^31 renormalizes to 2^30 with e + 1;
 *              k = 31 - e. Out of range:
 *              - k > 62 (M < 2^-32, including M == 0): M0 = 2^30, k = 62 (M' = 2^-32). Every
 *                int32 acc then gives round(acc * M') = 0 = round(acc * M): results are exact.
 *              - k < 1 (M >= 2^30): M0 = 2^31 - 1, k = 1 (M' ~ 2^30). Any acc != 0 then lands
 *                more than 2^29 away from z_y and saturates, as it would with the true M,
 *                provided qmax - qmin < 2^29 (always true for codes of <= 16 bits).
 *              NaN, negative or infinite M: OCT_EINVAL.
 *
 * requantize   y = clamp(z_y + ((int64)acc * M0 + 2^(k-1)) >> k, lo, hi), arithmetic shift,
 *              i.e. round(acc * M0 * 2^-k) with ties rounded half UP (toward +inf), computed
 *              exactly in int64 (|acc * M0| < 2^62, no overflow). lo = qmin, or z_y for a
 *              fused ReLU; hi = qmax. Preconditions: m0 in [0, 2^31), shift in [1, 62]
 *              (anything oct_requant_multiplier returns; check loaded files with
 *              oct_requant_check).
 *
 * observers    see oct_observer below. LSQ and PACT: see the end of this header.
 */
#ifndef OCTET_QUANT_H
#define OCTET_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "octet/status.h"

/* Smallest scale oct_quant_params returns for a non-zero range (2^-23 = FLT_EPSILON). */
#define OCT_QUANT_MIN_SCALE 0x1p-23f
/* The widest code offset from z (the rules above). */
#define OCT_QUANT_MAX_OFFSET ((1 << 22) - 1)
/* Scale used for a zero range (lo == hi == 0). */
#define OCT_QUANT_ZERO_RANGE_SCALE 1.0f

/* ---- schemes -------------------------------------------------------------------------------- */

/* How a tensor is quantized. Build with oct_qscheme_init (or the two defaults) so that qmin and
 * qmax match the flags; treat the struct as read-only afterwards. */
typedef struct oct_qscheme {
    int bits;         /* 2..8 */
    bool is_signed;   /* codes [-2^(bits-1), 2^(bits-1) - 1], else [0, 2^bits - 1] */
    bool symmetric;   /* z = 0, s = max(|lo|, |hi|) / qmax; else asymmetric (z from the range) */
    bool narrow;      /* drop the lowest code: signed [-127, 127], unsigned [1, 255] for 8 bits */
    bool per_channel; /* one (s, z) per output channel (row of a weight), else one per tensor */
    int32_t qmin, qmax;
} oct_qscheme;

/* Fills q and its code range. OCT_EINVAL for bits outside 2..8, or unsigned + symmetric + narrow
 * (real 0 would not be representable). */
oct_status oct_qscheme_init(oct_qscheme *q, int bits, bool is_signed, bool symmetric, bool narrow,
                            bool per_channel);
/* Default for weights: int8, symmetric, narrow [-127, 127], per output channel. */
oct_qscheme oct_qscheme_weights(void);
/* Default for activations: uint8, asymmetric, [0, 255], per tensor. */
oct_qscheme oct_qscheme_activations(void);

/* ---- quantize, dequantize, fake-quant ------------------------------------------------------- */

/* The scalar rules (see the top of this file). s > 0 and finite, qmin <= z <= qmax. */
int32_t oct_quantize(float x, float s, int32_t z, int32_t qmin, int32_t qmax);
float oct_dequantize(int32_t q, float s, int32_t z);
float oct_fake_quant(float x, float s, int32_t z, int32_t qmin, int32_t qmax);

/* Array versions, bit-identical to the scalar rules. Row r of x uses s[r], z[r]: per channel,
 * pass a weight w (N, K) as rows = N; per tensor, pass rows = 1, cols = element count.
 * The u8 versions need 0 <= qmin <= qmax <= 255, the s8 ones -128 <= qmin <= qmax <= 127. */
void oct_quantize_u8(const float *x /* (rows, cols) */, int64_t rows, int64_t cols,
                     const float *s /* (rows) */, const int32_t *z /* (rows) */, int32_t qmin,
                     int32_t qmax, uint8_t *q /* (rows, cols) */);
void oct_quantize_s8(const float *x /* (rows, cols) */, int64_t rows, int64_t cols,
                     const float *s /* (rows) */, const int32_t *z /* (rows) */, int32_t qmin,
                     int32_t qmax, int8_t *q /* (rows, cols) */);
/* Power-of-two (logarithmic) codes, for weights: v = x / s[r] (true division) to the nearest
 * of 0, +-1, +-2, +-4, ..., +-2^max_exp (0 <= max_exp <= 6): 0 below 1/2 in magnitude (and for
 * NaN), between 2^k and 2^(k+1) the nearer one (a tie, 1.5 * 2^k, to the larger), 2^max_exp
 * beyond it. The codes are int8, so an integer layer runs them like uniform ones. */
void oct_quantize_pow2_s8(const float *x /* (rows, cols) */, int64_t rows, int64_t cols,
                          const float *s /* (rows) */, int max_exp, int8_t *q /* (rows, cols) */);
/* Non-uniform codes, for weights: at most `levels` (2..255) distinct int8 codes for the whole
 * array. Each x / s[r] is first rounded to the uniform grid [-127, 127] (oct_quantize_s8); the
 * codebook is then fitted to those codes by Lloyd's algorithm (k-means in one dimension) on
 * their histogram: levels start at the codes' quantiles, bins go to the nearest level (ties to
 * the lower), each level moves to its bins' mean real value, rounded, until nothing moves (at
 * most 32 rounds); finally every code becomes its bin's level. Deterministic, O(n + 255 levels).
 * The codes are int8, so an integer layer runs them like uniform ones. */
void oct_quantize_codebook_s8(const float *x /* (rows, cols) */, int64_t rows, int64_t cols,
                              const float *s /* (rows) */, int levels,
                              int8_t *q /* (rows, cols) */);
void oct_dequantize_u8(const uint8_t *q /* (rows, cols) */, int64_t rows, int64_t cols,
                       const float *s /* (rows) */, const int32_t *z /* (rows) */,
                       float *x /* (rows, cols) */);
void oct_dequantize_s8(const int8_t *q /* (rows, cols) */, int64_t rows, int64_t cols,
                       const float *s /* (rows) */, const int32_t *z /* (rows) */,
                       float *x /* (rows, cols) */);
/* y may equal x (in place). */
void oct_fake_quant_rows(const float *x /* (rows, cols) */, int64_t rows, int64_t cols,
                         const float *s /* (rows) */, const int32_t *z /* (rows) */, int32_t qmin,
                         int32_t qmax, float *y /* (rows, cols) */);

/* ---- scale, zero point and bias ------------------------------------------------------------- */

/* (s, z) for the observed range [lo, hi] under scheme q (one channel). OCT_EINVAL (with the
 * zero-range fallback written) for NaN/Inf bounds or lo > hi. */
oct_status oct_quant_params(const oct_qscheme *q, float lo, float hi, float *scale,
                            int32_t *zero_point);

/* Per-row scales of w (rows, cols) under q: s[r] = the scale of oct_quant_params for the range
 * [min, max] of row r (a row with a NaN anywhere gets its fallback). For weights quantized per
 * output channel. */
void oct_quant_row_scales(const oct_qscheme *q, const float *w /* (rows, cols) */, int64_t rows,
                          int64_t cols, float *s /* (rows) */);
/* Per-row scales of least squared error for symmetric weights: per row, s = s_mm * a with s_mm
 * the min-max scale above and a the clipping factor in {1, 0.95, ..., 0.5}, then the best a
 * +-0.04 in steps of 0.01 around the coarse best, that minimizes sum_k (w_k - s q_k)^2 with
 * q_k = clamp(rint(w_k / s), qmin, qmax) (the ties of the smaller a lose). Rows without finite
 * weights keep s_mm. Sequential sums in double, so every build picks the same scales. */
void oct_quant_row_scales_mse(const oct_qscheme *q, const float *w /* (rows, cols) */, int64_t rows,
                              int64_t cols, float *s /* (rows) */);
/* GPTQ (arXiv:2210.17323) on the weights w (rows, cols) of a linear layer whose inputs x gave
 * xtx = sum x^T x (cols, cols; the upper triangle is read): with the symmetric per-row scales s
 * and codes [qmin, qmax], rounds the input columns one at a time in the order of decreasing
 * diagonal of H = xtx + damp mean(diag) I (act-order; ties by index), each column's error spread
 * over the columns after it through the upper Cholesky factor of H's inverse in that order. Columns
 * of inputs never seen (zero diagonal) get zero weights. Leaves w = s q, whose oct_quantize under s
 * gives back the codes q. Errors: OCT_ENOMEM, OCT_EINVAL (H not positive definite: raise damp).
 * Deterministic, double precision. */
oct_status oct_gptq(float *w /* (rows, cols) */, int rows, int cols,
                    const float *xtx /* (cols, cols) */, const float *s /* (rows) */, int32_t qmin,
                    int32_t qmax, double damp);
/* The same with the zero points too (zp may be NULL): for activations quantized per row at run
 * time (dynamic quantization), with q the u8 asymmetric activation scheme. */
void oct_quant_row_params(const oct_qscheme *q, const float *w /* (rows, cols) */, int64_t rows,
                          int64_t cols, float *s /* (rows) */, int32_t *zp /* (rows) or NULL */);
/* Bias in accumulator units; s_a * s_w > 0. */
int32_t oct_quant_bias(float b, float s_a, float s_w);
void oct_quant_bias_rows(const float *b /* (n) */, int n, float s_a, const float *s_w /* (n) */,
                         int32_t *b_q /* (n) */);

/* ---- requantization ------------------------------------------------------------------------- */

/* M -> (M0, k) by the multiplier rule above. */
oct_status oct_requant_multiplier(double m, int32_t *m0, int32_t *shift);
/* Per output channel c: M = (double)s_a * s_w[c] / s_y. All scales positive and finite, else
 * OCT_EINVAL naming the channel. */
oct_status oct_requant_multipliers(float s_a, const float *s_w /* (n) */, int n, float s_y,
                                   int32_t *m0 /* (n) */, int32_t *shift /* (n) */);
/* OCT_EFORMAT unless every m0 is in [2^30, 2^31) and every shift in [1, 62] (for loaders). */
oct_status oct_requant_check(const int32_t *m0 /* (n) */, const int32_t *shift /* (n) */, int n);

/* The requantization rule for one accumulator; relu raises the lower clamp to max(qmin, zy). */
int32_t oct_requantize(int32_t acc, int32_t m0, int32_t shift, int32_t zy, int32_t qmin,
                       int32_t qmax, bool relu);
/* The same over rows of output channels: column c uses m0[c], shift[c]. Bit-identical to
 * oct_requantize. Range limits on qmin/qmax as for oct_quantize_u8/_s8. */
void oct_requantize_u8(const int32_t *acc /* (rows, n) */, int64_t rows, int n,
                       const int32_t *m0 /* (n) */, const int32_t *shift /* (n) */, int32_t zy,
                       int32_t qmin, int32_t qmax, bool relu, uint8_t *y /* (rows, n) */);
void oct_requantize_s8(const int32_t *acc /* (rows, n) */, int64_t rows, int n,
                       const int32_t *m0 /* (n) */, const int32_t *shift /* (n) */, int32_t zy,
                       int32_t qmin, int32_t qmax, bool relu, int8_t *y /* (rows, n) */);

/* The real value an accumulator stands for, as QAT output observers see it:
 * (float)((double)s_a * (double)s_w * (double)acc), one rounding in double, one to float. */
float oct_acc_to_real(int32_t acc, float s_a, float s_w);
void oct_acc_to_real_rows(const int32_t *acc /* (rows, n) */, int64_t rows, int n, float s_a,
                          const float *s_w /* (n) */, float *y /* (rows, n) */);

/* ---- observers ------------------------------------------------------------------------------ */

/* Default momentum of the moving-average observer (PyTorch's averaging_constant). */
#define OCT_OBSERVER_MOMENTUM 0.01f

/* Tracks the range [lo[c], hi[c]] of each channel c. The state is plain floats in caller-owned
 * arrays (e.g. tensors in the model arena) so checkpoints save it as is; a channel with
 * lo > hi (initially +Inf, -Inf) has seen no data yet.
 * update: per channel, the batch range is the min/max over the FINITE values only (NaN and
 * +-Inf are skipped; a channel whose batch has no finite value is left unchanged). The first
 * batch initializes the range. After that, momentum == 0 keeps the running min/max;
 * momentum in (0, 1] keeps a moving average lo += momentum * (batch_lo - lo) (same for hi,
 * computed in double). Updates are ignored while frozen. */
typedef struct oct_observer {
    float *lo;      /* (nch) */
    float *hi;      /* (nch) */
    int nch;        /* 1 per tensor; rows for per channel (channel = row of the data) */
    float momentum; /* 0: min-max; (0, 1]: moving-average min-max */
    bool frozen;
} oct_observer;

/* Points o at lo and hi (nch floats each), marks every channel empty, unfrozen. */
void oct_observer_init(oct_observer *o, float *lo, float *hi, int nch, float momentum);
/* Observes x, n elements: nch rows of n / nch (n must be a multiple of nch). */
void oct_observer_update(oct_observer *o, const float *x /* (nch, n / nch) */, int64_t n);
/* The same update of channel c for a batch whose finite values span [lo, hi] (lo > hi: none,
 * no change), e.g. the range of a batch observed in parts. */
void oct_observer_update_range(oct_observer *o, int c, float lo, float hi);
/* The min and max of the finite values of x (n); lo > hi (+Inf, -Inf) when there is none. */
void oct_finite_range(const float *x /* (n) */, int64_t n, float *lo, float *hi);
/* Per channel, oct_quant_params of the observed range; an empty channel counts as the zero
 * range. */
oct_status oct_observer_qparams(const oct_observer *o, const oct_qscheme *q,
                                float *scale /* (nch) */, int32_t *zero_point /* (nch) */);

/* Histogram calibration (post-training quantization): a histogram of the finite values seen,
 * OCT_HIST_BINS bins of equal width over a range that grows to fit the data (doubling its
 * width, downwards or upwards, which merges pairs of bins exactly), and the range [lo, hi] whose
 * quantization minimizes the expected squared error over that histogram: each bin's values,
 * spread evenly over the bin, go to the code that rounding or clipping to oct_quant_params(lo,
 * hi) gives their bin's centre. The search tries every pair of bin edges 64 bins apart, then
 * pairs 8 and 1 bins apart around the best: the range PyTorch's HistogramObserver looks for,
 * found by a grid search instead of greedily. */
#define OCT_HIST_BINS 2048

typedef struct oct_histogram {
    double *count; /* (OCT_HIST_BINS), caller-owned */
    double lo;     /* bin k holds [lo + k width, lo + (k + 1) width) */
    double width;
    double total; /* values counted; 0: empty (lo and width unset) */
} oct_histogram;

/* Points h at count (OCT_HIST_BINS doubles) and empties it. */
void oct_histogram_init(oct_histogram *h, double *count);
/* Counts the finite values of x (n). */
void oct_histogram_add(oct_histogram *h, const float *x /* (n) */, int64_t n);
/* The range [*lo, *hi] of least expected squared error under q (above). Leaves them unchanged
 * when h is empty. */
void oct_histogram_range(const oct_histogram *h, const oct_qscheme *q, float *lo, float *hi);

/* ---- training helpers: STE, LSQ, PACT ------------------------------------------------------- */

/* Straight-through estimator mask for d fake_quant(x) / dx: true when rint(x / s) + z lies in
 * [qmin, qmax] (the output follows x), false when it was clamped or x is NaN (the output is
 * then constant in x). The same test as PyTorch's fake_quantize backward. */
bool oct_quant_passes(float x, float s, int32_t z, int32_t qmin, int32_t qmax);
/* mask[i] = 1.0f where oct_quant_passes(x[i], s, z, qmin, qmax), else 0.0f; the same test,
 * written so that it vectorizes (the straight-through estimator of whole tensors). */
void oct_quant_pass_mask(const float *x /* (n) */, int64_t n, float s, int32_t z, int32_t qmin,
                         int32_t qmax, float *mask /* (n) */);

/* LSQ (Esser et al. 2019, "Learned Step Size Quantization", arXiv:1902.08153).
 * Initial step: s = 2 * mean|x| / sqrt(qp) over the finite elements (sum in double), raised to
 * OCT_QUANT_MIN_SCALE (so all-zero or empty x gives the minimum scale). qp = the largest
 * positive code, qmax for symmetric schemes. */
float oct_lsq_init_scale(const float *x /* (n) */, int64_t n, int32_t qp);
/* LSQ's qp for zero point z and codes [qmin, qmax]: the positive levels qmax - z, or, when z is
 * qmax (a range with no positive values), the levels below it, z - qmin. */
int32_t oct_lsq_levels(int32_t z, int32_t qmin, int32_t qmax);
/* Gradient scale g = 1 / sqrt(n * qp), n = number of elements sharing the scale. */
float oct_lsq_grad_factor(int64_t n, int32_t qp);
/* g * d fake_quant(x) / ds for one element, with v = x / s (float32) and rint treated as the
 * identity (STE): rint(v) - v when rint(v) + z is in [qmin, qmax]; qmin - z when clamped below
 * (including -Inf); qmax - z when clamped above (including +Inf); 0 for NaN x (the output is
 * the constant 0). Sum dL/dy * this over the elements sharing s. */
float oct_lsq_grad_scale(float x, float s, int32_t z, int32_t qmin, int32_t qmax, float g);
/* The backward pass of n elements x sharing (s, z) with upstream gradients d: dx[i] += d[i]
 * where oct_quant_passes (dx may be NULL), and returns the sum over i, in index order in double,
 * of d[i] * oct_lsq_grad_scale(x[i], ...): the same values as those per-element calls, with
 * one division per element. */
double oct_lsq_backward(const float *x /* (n) */, const float *d /* (n) */, int64_t n, float s,
                        int32_t z, int32_t qmin, int32_t qmax, float g, float *dx /* (n) */);

/* PACT (Choi et al. 2018, "PACT: Parameterized Clipping Activation", arXiv:1805.06085):
 * y = clamp(x, 0, alpha), alpha > 0; NaN -> 0. dy/dalpha = 1 where x >= alpha, else 0;
 * dy/dx = 1 where 0 < x < alpha, else 0 (0 at NaN). */
float oct_pact(float x, float alpha);
float oct_pact_grad_alpha(float x, float alpha);
float oct_pact_grad_x(float x, float alpha);

#endif
