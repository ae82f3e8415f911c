/* Tests for the post-training calibration rules of include/octet/quant.h. The histogram keeps
 * every finite value in a bin that covers it while its range grows, and its least-squared-error
 * range beats min-max (clipping the tails at few bits) and keeps a uniform distribution whole.
 * The least-squared-error weight scales beat min-max's on heavy-tailed rows and keep them on
 * rows where clipping cannot help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "octet/quant.h"
#include "octet/tensor.h"

static double counts[OCT_HIST_BINS];

/* The mean squared error of quantizing x (n) with the range [lo, hi] under q. */
static double quant_mse(const float *x, int n, const oct_qscheme *q, float lo, float hi) {
    float s;
    int32_t z;
    assert_int_equal(oct_quant_params(q, lo, hi, &s, &z), OCT_OK);
    double e = 0;
    for (int i = 0; i < n; i++) {
        double d = x[i] - oct_fake_quant(x[i], s, z, q->qmin, q->qmax);
        e += d * d;
    }
    return e / n;
}

/* Batches that widen the range downwards and upwards: every value stays in a counted bin inside
 * the range, nothing is lost, non-finite values are skipped. */
static void growth_keeps_every_value(void **state) {
    (void)state;
    enum { N = 3000 };
    static float x[N];
    oct_rng r;
    oct_rng_seed(&r, 7, 0);
    oct_histogram h;
    oct_histogram_init(&h, counts);
    const float scale[3] = {1.0f, 40.0f, 3000.0f}, shift[3] = {0.5f, -30.0f, 900.0f};
    for (int b = 0; b < 3; b++) {
        for (int i = 0; i < N / 3; i++)
            x[b * N / 3 + i] = shift[b] + scale[b] * (oct_rng_uniform(&r) - 0.5f);
        oct_histogram_add(&h, x + b * N / 3, N / 3);
    }
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    oct_histogram_add(&h, bad, 3);
    assert_true(h.total == N);
    double sum = 0;
    for (int k = 0; k < OCT_HIST_BINS; k++) sum += counts[k];
    assert_true(sum == N);
    for (int i = 0; i < N; i++) {
        double k = floor((x[i] - h.lo) / h.width);
        assert_true(k >= 0 && k <= OCT_HIST_BINS);
        assert_true(counts[k < OCT_HIST_BINS ? (int)k : OCT_HIST_BINS - 1] > 0);
    }
}

/* Gaussian values: at every width from 2 to 8 bits the histogram's range quantizes them with
 * no larger an error than their min-max range, and at 2 to 4 bits it clips the tails, with a
 * clearly smaller error. */
static void range_beats_minmax(void **state) {
    (void)state;
    enum { N = 100000 };
    static float x[N];
    oct_rng r;
    oct_rng_seed(&r, 3, 0);
    for (int i = 0; i < N; i++) x[i] = oct_rng_normal(&r);
    oct_histogram h;
    oct_histogram_init(&h, counts);
    oct_histogram_add(&h, x, N);
    float mn, mx;
    oct_finite_range(x, N, &mn, &mx);
    for (int bits = 2; bits <= 8; bits++) {
        oct_qscheme q;
        assert_int_equal(oct_qscheme_init(&q, bits, false, false, false, false), OCT_OK);
        float lo = 0, hi = 0;
        oct_histogram_range(&h, &q, &lo, &hi);
        double e = quant_mse(x, N, &q, lo, hi), e_minmax = quant_mse(x, N, &q, mn, mx);
        assert_true(e <= e_minmax * 1.001);
        if (bits <= 4) {
            assert_true(hi - lo < 0.75f * (mx - mn));
            assert_true(e < 0.8 * e_minmax);
        }
    }
}

/* Uniform values on [0, 1] at 8 bits: clipping gains nothing, the range stays whole. An empty
 * histogram leaves the range alone; a constant keeps its value inside. */
static void range_keeps_uniform_and_edge_cases(void **state) {
    (void)state;
    enum { N = 50000 };
    static float x[N];
    oct_rng r;
    oct_rng_seed(&r, 5, 0);
    for (int i = 0; i < N; i++) x[i] = oct_rng_uniform(&r);
    oct_histogram h;
    oct_histogram_init(&h, counts);
    oct_qscheme u8 = oct_qscheme_activations();
    float lo = -7.0f, hi = 7.0f;
    oct_histogram_range(&h, &u8, &lo, &hi);
    assert_true(lo == -7.0f && hi == 7.0f);
    oct_histogram_add(&h, x, N);
    oct_histogram_range(&h, &u8, &lo, &hi);
    assert_true(lo >= 0.0f && lo < 0.01f && hi > 0.98f && hi <= 1.0f);
    const float c[4] = {3.0f, 3.0f, 3.0f, 3.0f};
    oct_histogram_init(&h, counts);
    oct_histogram_add(&h, c, 4);
    oct_histogram_range(&h, &u8, &lo, &hi);
    assert_true(quant_mse(c, 4, &u8, lo, hi) < 1e-4);
}

/* The squared error of row (n) quantized with the symmetric scale s under q. */
static double row_error(const float *row, int n, const oct_qscheme *q, float s) {
    double e = 0;
    for (int i = 0; i < n; i++) {
        double d = row[i] - oct_fake_quant(row[i], s, 0, q->qmin, q->qmax);
        e += d * d;
    }
    return e;
}

/* Rows of Laplace-like weights (heavy tails): at 4 and 3 bits the chosen scales clip, down to no
 * less than half the min-max scale, and quantize each row with a smaller error than min-max; a
 * row of two values (+-1) keeps its min-max scale, an all-zero row and a NaN row their
 * fallbacks. */
static void mse_weight_scales(void **state) {
    (void)state;
    enum { R = 4, K = 512 };
    static float w[R * K];
    oct_rng r;
    oct_rng_seed(&r, 11, 0);
    for (int i = 0; i < 2 * K; i++) {
        float u = oct_rng_uniform(&r) * 0.999f + 0.0005f;
        w[i] = (i % 2 ? 1.0f : -1.0f) * -logf(u) * 0.02f;
    }
    for (int i = 0; i < K; i++) w[2 * K + i] = i % 2 ? 1.0f : -1.0f, w[3 * K + i] = 0.0f;
    w[3 * K + 5] = NAN;
    for (int bits = 3; bits <= 4; bits++) {
        oct_qscheme q;
        assert_int_equal(oct_qscheme_init(&q, bits, true, true, true, true), OCT_OK);
        float s_mm[R], s[R];
        oct_quant_row_scales(&q, w, R, K, s_mm);
        oct_quant_row_scales_mse(&q, w, R, K, s);
        for (int row = 0; row < 2; row++) {
            assert_true(s[row] < s_mm[row] && s[row] >= 0.5f * s_mm[row]);
            assert_true(row_error(w + row * K, K, &q, s[row]) <
                        0.95 * row_error(w + row * K, K, &q, s_mm[row]));
        }
        assert_true(s[2] == s_mm[2] && s[3] == s_mm[3]);
    }
}

/* GPTQ on a layer whose inputs are correlated: its outputs on those inputs stay closer to the
 * float layer's than with plain rounding under the same scales; the weights it leaves are s q
 * with codes in range; the input with the most energy (17) is rounded first (act-order), so its
 * weights are plain rounding's, while the others take up errors; an input never seen gets zero
 * weights; no inputs at all is an error. */
static void gptq_beats_rounding(void **state) {
    (void)state;
    enum { N = 400, K = 24, R = 6 };
    static float x[N * K], w[R * K], wq[R * K], xtx[K * K];
    oct_rng r;
    oct_rng_seed(&r, 13, 0);
    for (int i = 0; i < N; i++) {
        float common = oct_rng_normal(&r);
        for (int k = 0; k < K; k++)
            x[i * K + k] = k == 5 ? 0.0f : 0.8f * common + 0.6f * oct_rng_normal(&r);
        x[i * K + 17] *= 3.0f;
    }
    for (int i = 0; i < R * K; i++) w[i] = wq[i] = 0.1f * oct_rng_normal(&r);
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) {
            double v = 0;
            for (int i = 0; i < N; i++) v += (double)x[i * K + a] * x[i * K + b];
            xtx[a * K + b] = (float)v;
        }
    oct_qscheme q;
    assert_int_equal(oct_qscheme_init(&q, 3, true, true, true, true), OCT_OK);
    float s[R];
    oct_quant_row_scales(&q, w, R, K, s);
    assert_int_equal(oct_gptq(wq, R, K, xtx, s, q.qmin, q.qmax, 0.01), OCT_OK);
    double e_gptq = 0, e_rtn = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < R; c++) {
            double y = 0, yg = 0, yr = 0;
            for (int k = 0; k < K; k++) {
                float xk = x[i * K + k], wk = w[c * K + k];
                y += xk * wk;
                yg += xk * wq[c * K + k];
                yr += xk * oct_fake_quant(wk, s[c], 0, q.qmin, q.qmax);
            }
            e_gptq += (y - yg) * (y - yg);
            e_rtn += (y - yr) * (y - yr);
        }
    assert_true(e_gptq < 0.7 * e_rtn);
    int moved = 0;
    for (int c = 0; c < R; c++) {
        assert_true(wq[c * K + 17] == oct_fake_quant(w[c * K + 17], s[c], 0, q.qmin, q.qmax));
        moved += wq[c * K] != oct_fake_quant(w[c * K], s[c], 0, q.qmin, q.qmax);
    }
    assert_true(moved > 0);
    for (int c = 0; c < R; c++) {
        assert_true(wq[c * K + 5] == 0.0f);
        for (int k = 0; k < K; k++) {
            int32_t code = oct_quantize(wq[c * K + k], s[c], 0, q.qmin, q.qmax);
            assert_true(wq[c * K + k] == s[c] * (float)code);
        }
    }
    static float none[K * K];
    assert_int_equal(oct_gptq(wq, R, K, none, s, q.qmin, q.qmax, 0.01), OCT_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(growth_keeps_every_value),
        cmocka_unit_test(range_beats_minmax),
        cmocka_unit_test(range_keeps_uniform_and_edge_cases),
        cmocka_unit_test(mse_weight_scales),
        cmocka_unit_test(gptq_beats_rounding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
