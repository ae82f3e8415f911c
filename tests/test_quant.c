/* Tests for src/quant: the quantization rules of include/octet/quant.h, edge cases, array
 * versions against the scalar rules, requantization against exact 128-bit and long double
 * references, observers, and the LSQ / PACT helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <fenv.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "octet/quant.h"
#include "octet/tensor.h"

/* Random float with random bits: every class (NaN, Inf, denormals, huge, tiny) shows up. */
static float random_bits_float(oct_rng *r) {
    uint32_t u = oct_rng_u32(r);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A mix of "realistic" values near the code range, exact ties and random bit patterns. */
static float random_value(oct_rng *r, float s) {
    switch (oct_rng_below(r, 4)) {
    case 0:
        return random_bits_float(r);
    case 1:
        return s * ((float)oct_rng_below(r, 600) - 300.0f + 0.5f); /* ties (up to rounding of s) */
    default:
        return s * 200.0f * oct_rng_normal(r);
    }
}

static void schemes(void **state) {
    oct_qscheme q;
    for (int bits = 2; bits <= 8; bits++) {
        assert_int_equal(oct_qscheme_init(&q, bits, true, false, false, false), OCT_OK);
        assert_int_equal(q.qmin, -(1 << (bits - 1)));
        assert_int_equal(q.qmax, (1 << (bits - 1)) - 1);
        assert_int_equal(oct_qscheme_init(&q, bits, true, true, true, true), OCT_OK);
        assert_int_equal(q.qmin, -q.qmax);
        assert_int_equal(oct_qscheme_init(&q, bits, false, false, false, false), OCT_OK);
        assert_int_equal(q.qmin, 0);
        assert_int_equal(q.qmax, (1 << bits) - 1);
        assert_int_equal(oct_qscheme_init(&q, bits, false, false, true, false), OCT_OK);
        assert_int_equal(q.qmin, 1);
    }
    assert_int_equal(oct_qscheme_init(&q, 1, true, true, false, false), OCT_EINVAL);
    assert_int_equal(oct_qscheme_init(&q, 9, true, true, false, false), OCT_EINVAL);
    assert_int_equal(oct_qscheme_init(&q, 8, false, true, true, false), OCT_EINVAL);
    q = oct_qscheme_weights();
    assert_true(q.symmetric && q.is_signed && q.narrow && q.per_channel);
    assert_int_equal(q.qmin, -127);
    assert_int_equal(q.qmax, 127);
    q = oct_qscheme_activations();
    assert_true(!q.symmetric && !q.is_signed && !q.narrow && !q.per_channel);
    assert_int_equal(q.qmin, 0);
    assert_int_equal(q.qmax, 255);
    assert_int_equal(fegetround(), FE_TONEAREST);
}

static void quantize_ties_and_boundaries(void **state) {
    const float x[] = {0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, 0.49999997f, 0.50000006f};
    const int32_t want[] = {0, 2, 2, 4, 0, -2, -2, 0, 1};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        assert_int_equal(oct_quantize(x[i], 1.0f, 0, -128, 127), want[i]);
    /* z is added after rounding: rint(1.5) + 1 = 3, not rint(1.5 + 1) = 2. */
    assert_int_equal(oct_quantize(1.5f, 1.0f, 1, -128, 127), 3);
    assert_int_equal(oct_quantize(2.5f, 1.0f, 7, 0, 255), 9);
    /* Exact boundaries s * (q + 0.5) with a dyadic scale: half to even, then clamp. */
    float s = 0.25f;
    for (int q = -130; q <= 130; q++) {
        float b = s * ((float)q + 0.5f);
        int32_t even = (q % 2 == 0) ? q : q + 1;
        int32_t clamped = even < -128 ? -128 : even > 127 ? 127 : even;
        assert_int_equal(oct_quantize(b, s, 0, -128, 127), clamped);
        int32_t below = q < -128 ? -128 : q > 127 ? 127 : q;
        assert_int_equal(oct_quantize(nextafterf(b, -INFINITY), s, 0, -128, 127), below);
        int32_t above = q + 1 < -128 ? -128 : q + 1 > 127 ? 127 : q + 1;
        assert_int_equal(oct_quantize(nextafterf(b, INFINITY), s, 0, -128, 127), above);
    }
    /* True float32 division, not a reciprocal multiply: compare against the correctly rounded
     * quotient ((double) division rounded to float is correctly rounded), and check that the
     * reciprocal would have given another code at least once (so this test has teeth). */
    s = 0.1f;
    float inv = 1.0f / s;
    int reciprocal_differs = 0;
    for (int q = -127; q <= 127; q++) {
        float b = (float)(((double)q + 0.5) * (double)s);
        for (int d = -2; d <= 2; d++) {
            float xv = b;
            for (int j = 0; j < abs(d); j++) xv = nextafterf(xv, d < 0 ? -INFINITY : INFINITY);
            float quotient = (float)((double)xv / (double)s);
            int32_t expect = (int32_t)rint(quotient);
            expect = expect < -128 ? -128 : expect > 127 ? 127 : expect;
            assert_int_equal(oct_quantize(xv, s, 0, -128, 127), expect);
            reciprocal_differs += (int32_t)rintf(xv * inv) != (int32_t)rint(quotient);
        }
    }
    assert_true(reciprocal_differs > 0);
}

static void quantize_special_values(void **state) {
    for (int bits = 2; bits <= 8; bits++) {
        for (int variant = 0; variant < 3; variant++) {
            oct_qscheme q;
            bool is_signed = variant != 1, narrow = variant == 2;
            assert_int_equal(oct_qscheme_init(&q, bits, is_signed, false, narrow, false), OCT_OK);
            int32_t z = (q.qmin + q.qmax + 1) / 2;
            float s = 0.37f;
            const float hi_vals[] = {INFINITY, FLT_MAX, 1e30f, s * ((float)(q.qmax - z) + 0.5f),
                                     s * (float)(q.qmax - z + 3)};
            const float lo_vals[] = {-INFINITY, -FLT_MAX, -1e30f, s * ((float)(q.qmin - z) - 0.6f),
                                     s * (float)(q.qmin - z - 3)};
            for (int i = 0; i < 5; i++) {
                assert_int_equal(oct_quantize(hi_vals[i], s, z, q.qmin, q.qmax), q.qmax);
                assert_int_equal(oct_quantize(lo_vals[i], s, z, q.qmin, q.qmax), q.qmin);
            }
            /* x / s overflows to +-Inf with a tiny scale. */
            assert_int_equal(oct_quantize(1e30f, 1e-20f, z, q.qmin, q.qmax), q.qmax);
            assert_int_equal(oct_quantize(-1e30f, 1e-20f, z, q.qmin, q.qmax), q.qmin);
            assert_int_equal(oct_quantize(s * (float)(q.qmax - z), s, z, q.qmin, q.qmax), q.qmax);
            assert_int_equal(oct_quantize(s * (float)(q.qmin - z), s, z, q.qmin, q.qmax), q.qmin);
            assert_int_equal(oct_quantize(NAN, s, z, q.qmin, q.qmax), z);
            assert_int_equal(oct_quantize(-NAN, s, z, q.qmin, q.qmax), z);
            assert_int_equal(oct_quantize(-0.0f, s, z, q.qmin, q.qmax), z);
            assert_int_equal(oct_quantize(FLT_TRUE_MIN, s, z, q.qmin, q.qmax), z);
            float zero = oct_fake_quant(0.0f, s, z, q.qmin, q.qmax);
            assert_true(zero == 0.0f && !signbit(zero));
            assert_true(oct_fake_quant(NAN, s, z, q.qmin, q.qmax) == 0.0f);
            assert_true(oct_fake_quant(INFINITY, s, z, q.qmin, q.qmax) == s * (float)(q.qmax - z));
        }
    }
    assert_true(oct_dequantize(-127, 0.5f, 0) == -63.5f);
    assert_true(oct_dequantize(0, 0.5f, 3) == -1.5f);
}

static void arrays_match_scalar(void **state) {
    enum { ROWS = 16, COLS = 1 << 16 }; /* one million values per pass */
    float *x = malloc(sizeof(float) * ROWS * COLS);
    float *y = malloc(sizeof(float) * ROWS * COLS);
    float *d = malloc(sizeof(float) * ROWS * COLS);
    uint8_t *qu = malloc(ROWS * COLS);
    int8_t *qs = malloc(ROWS * COLS);
    float s[ROWS];
    int32_t zu[ROWS], zs[ROWS];
    oct_rng r;
    oct_rng_seed(&r, 7, 1);
    for (int pass = 0; pass < 2; pass++) {
        for (int c = 0; c < ROWS; c++) {
            s[c] =
                pass == 0 ? 0.01f + oct_rng_uniform(&r) : ldexpf(1.0f + oct_rng_uniform(&r), -20);
            zu[c] = (int32_t)oct_rng_below(&r, 256);
            zs[c] = (int32_t)oct_rng_below(&r, 255) - 127;
            for (int i = 0; i < COLS; i++) x[c * COLS + i] = random_value(&r, s[c]);
        }
        oct_quantize_u8(x, ROWS, COLS, s, zu, 0, 255, qu);
        oct_quantize_s8(x, ROWS, COLS, s, zs, -127, 127, qs);
        oct_fake_quant_rows(x, ROWS, COLS, s, zs, -127, 127, y);
        oct_dequantize_s8(qs, ROWS, COLS, s, zs, d);
        assert_memory_equal(y, d, sizeof(float) * ROWS * COLS);
        for (int c = 0; c < ROWS; c++) {
            for (int i = 0; i < COLS; i++) {
                size_t k = (size_t)c * COLS + i;
                if (qu[k] != oct_quantize(x[k], s[c], zu[c], 0, 255)) fail();
                if (qs[k] != oct_quantize(x[k], s[c], zs[c], -127, 127)) fail();
                float f = oct_fake_quant(x[k], s[c], zs[c], -127, 127);
                if (memcmp(&f, &y[k], sizeof f) != 0) fail();
            }
        }
        oct_dequantize_u8(qu, ROWS, COLS, s, zu, d);
        for (int c = 0; c < ROWS; c++)
            for (int i = 0; i < COLS; i++)
                if (d[c * COLS + i] != oct_dequantize(qu[c * COLS + i], s[c], zu[c])) fail();
        /* per tensor: one row; in place */
        memcpy(d, x, sizeof(float) * COLS);
        oct_fake_quant_rows(d, 1, COLS, s, zu, 0, 255, d);
        for (int i = 0; i < COLS; i++)
            if (d[i] != oct_fake_quant(x[i], s[0], zu[0], 0, 255)) fail();
    }
    free(x), free(y), free(d), free(qu), free(qs);
}

static void params_from_ranges(void **state) {
    oct_qscheme u8 = oct_qscheme_activations(), w8 = oct_qscheme_weights();
    float s;
    int32_t z;
    assert_int_equal(oct_quant_params(&u8, -1.0f, 3.0f, &s, &z), OCT_OK);
    assert_true(s == (float)(4.0 / 255.0));
    assert_int_equal(z, 64); /* 0 - rint(-1 / (4/255)) = rint(63.75) */
    assert_int_equal(oct_quant_params(&w8, -2.0f, 1.0f, &s, &z), OCT_OK);
    assert_true(s == (float)(2.0 / 127.0));
    assert_int_equal(z, 0);
    assert_int_equal(oct_quant_params(&u8, 2.0f, 5.0f, &s, &z), OCT_OK); /* extended to [0, 5] */
    assert_true(s == (float)(5.0 / 255.0));
    assert_int_equal(z, 0);
    assert_int_equal(oct_quant_params(&u8, -5.0f, -2.0f, &s, &z), OCT_OK); /* [-5, 0] */
    assert_int_equal(z, 255);
    /* zero range, tiny ranges */
    assert_int_equal(oct_quant_params(&u8, 0.0f, -0.0f, &s, &z), OCT_OK);
    assert_true(s == OCT_QUANT_ZERO_RANGE_SCALE && z == 0);
    assert_int_equal(oct_quant_params(&w8, 0.0f, 0.0f, &s, &z), OCT_OK);
    assert_true(s == 1.0f && z == 0);
    assert_int_equal(oct_quant_params(&u8, 0.0f, 1e-30f, &s, &z), OCT_OK);
    assert_true(s == OCT_QUANT_MIN_SCALE && z == 0);
    assert_int_equal(oct_quant_params(&u8, -FLT_TRUE_MIN, 0.0f, &s, &z), OCT_OK);
    assert_true(s == OCT_QUANT_MIN_SCALE && z == 0);
    assert_int_equal(oct_quant_params(&w8, -1e-6f, 1e-7f, &s, &z), OCT_OK);
    assert_true(s == OCT_QUANT_MIN_SCALE && z == 0);
    assert_true(OCT_QUANT_MIN_SCALE >= FLT_MIN && OCT_QUANT_MIN_SCALE == FLT_EPSILON);
    /* huge */
    assert_int_equal(oct_quant_params(&u8, -FLT_MAX, FLT_MAX, &s, &z), OCT_OK);
    assert_true(isfinite(s) && s > 0.0f && z == 128);
    /* ... and every code dequantizes to a finite value (s rounded up made FLT_MAX infinite) */
    assert_true(isfinite(oct_fake_quant(FLT_MAX, s, z, 0, 255)) &&
                isfinite(oct_fake_quant(-FLT_MAX, s, z, 0, 255)));
    assert_int_equal(oct_quant_params(&w8, -FLT_MAX, FLT_MAX, &s, &z), OCT_OK);
    assert_true(isfinite(oct_fake_quant(FLT_MAX, s, 0, -127, 127)) &&
                isfinite(oct_fake_quant(-FLT_MAX, s, 0, -127, 127)));
    /* invalid ranges: error and the zero-range fallback */
    const float bad[][2] = {{NAN, 1}, {0, NAN}, {-INFINITY, 1}, {0, INFINITY}, {2, 1}};
    for (int i = 0; i < 5; i++) {
        s = -1.0f, z = -1;
        assert_int_equal(oct_quant_params(&u8, bad[i][0], bad[i][1], &s, &z), OCT_EINVAL);
        assert_true(s == 1.0f && z == 0);
        assert_true(strlen(oct_last_error()) > 0);
    }
    /* Round trip over random ranges and every scheme: 0 is exact, lo and hi land at the ends. */
    oct_rng r;
    oct_rng_seed(&r, 3, 3);
    for (int it = 0; it < 20000; it++) {
        oct_qscheme q;
        int bits = 2 + (int)oct_rng_below(&r, 7);
        bool sg = oct_rng_below(&r, 2), sym = oct_rng_below(&r, 2);
        bool nar = oct_rng_below(&r, 2) && (sg || !sym);
        assert_int_equal(oct_qscheme_init(&q, bits, sg, sym, nar, false), OCT_OK);
        float lo = -ldexpf(oct_rng_uniform(&r), (int)oct_rng_below(&r, 60) - 30);
        float hi = ldexpf(oct_rng_uniform(&r), (int)oct_rng_below(&r, 60) - 30);
        if (oct_rng_below(&r, 4) == 0) lo = -lo; /* range not containing 0 */
        if (lo > hi) {
            float t = lo;
            lo = hi, hi = t;
        }
        assert_int_equal(oct_quant_params(&q, lo, hi, &s, &z), OCT_OK);
        assert_true(s >= OCT_QUANT_MIN_SCALE && isfinite(s));
        assert_true(z >= q.qmin && z <= q.qmax);
        assert_int_equal(oct_quantize(0.0f, s, z, q.qmin, q.qmax), z);
        assert_true(oct_fake_quant(0.0f, s, z, q.qmin, q.qmax) == 0.0f);
        if (!sym && s > OCT_QUANT_MIN_SCALE && lo < 0.0f && hi > 0.0f) {
            assert_true(oct_quantize(hi, s, z, q.qmin, q.qmax) >= q.qmax - 1);
            assert_true(oct_quantize(lo, s, z, q.qmin, q.qmax) <= q.qmin + 1);
        }
        if (sym && s > OCT_QUANT_MIN_SCALE) {
            float m = fmaxf(-lo, hi) * (lo < 0.0f && -lo > hi ? -1.0f : 1.0f);
            int32_t qm = oct_quantize(m, s, z, q.qmin, q.qmax);
            assert_true(m < 0.0f ? (qm <= -q.qmax + 1 || qm == q.qmin) : qm >= q.qmax - 1);
        }
    }
}

/* oct_quant_row_params (a vectorized min/max scan, cloned for wider CPUs) against a sequential
 * scan and oct_quant_params, for rows of every length from 1 to 70 with infinities, NaN (also
 * first) and negative zero mixed in: a NaN anywhere in a row gives the fallback, wherever it is. */
static void row_params_match_scan(void **state) {
    enum { MAXC = 70 };
    oct_qscheme u8 = oct_qscheme_activations();
    oct_rng r;
    oct_rng_seed(&r, 11, 2);
    float row[MAXC];
    for (int cols = 1; cols <= MAXC; cols++)
        for (int trial = 0; trial < 20; trial++) {
            for (int i = 0; i < cols; i++) {
                uint32_t k = oct_rng_below(&r, 40);
                row[i] = k == 0   ? INFINITY
                         : k == 1 ? -INFINITY
                         : k == 2 ? NAN
                         : k == 3 ? -0.0f
                                  : (oct_rng_uniform(&r) - 0.5f) * (float)(1 + trial);
            }
            float lo = row[0], hi = row[0];
            bool nan = isnan(row[0]);
            for (int i = 1; i < cols; i++) {
                lo = row[i] < lo ? row[i] : lo;
                hi = row[i] > hi ? row[i] : hi;
                nan = nan || isnan(row[i]);
            }
            if (nan) lo = hi = NAN;
            float s_ref, s;
            int32_t z_ref, z;
            oct_quant_params(&u8, lo, hi, &s_ref, &z_ref);
            oct_quant_row_params(&u8, row, 1, cols, &s, &z);
            assert_memory_equal(&s, &s_ref, sizeof s);
            assert_int_equal(z, z_ref);
        }
}

static void bias(void **state) {
    assert_int_equal(oct_quant_bias(1.0f, 0.5f, 0.25f), 8);
    assert_int_equal(oct_quant_bias(2.5f * 0.125f, 0.5f, 0.25f), 2); /* tie, half to even */
    assert_int_equal(oct_quant_bias(3.5f * 0.125f, 0.5f, 0.25f), 4);
    assert_int_equal(oct_quant_bias(-2.5f * 0.125f, 0.5f, 0.25f), -2);
    assert_int_equal(oct_quant_bias(-0.0f, 0.5f, 0.25f), 0);
    assert_int_equal(oct_quant_bias(NAN, 0.5f, 0.25f), 0);
    assert_int_equal(oct_quant_bias(INFINITY, 0.5f, 0.25f), INT32_MAX);
    assert_int_equal(oct_quant_bias(-INFINITY, 0.5f, 0.25f), INT32_MIN);
    assert_int_equal(oct_quant_bias(FLT_MAX, FLT_TRUE_MIN, FLT_TRUE_MIN), INT32_MAX);
    assert_int_equal(oct_quant_bias(-1e10f, 1.0f, 1.0f), INT32_MIN);
    assert_int_equal(oct_quant_bias(2147483520.0f, 1.0f, 1.0f), 2147483520); /* exact, in range */
    assert_int_equal(oct_quant_bias(2147483648.0f, 1.0f, 1.0f), INT32_MAX);
    assert_int_equal(oct_quant_bias(-2147483648.0f, 1.0f, 1.0f), INT32_MIN);
    assert_int_equal(oct_quant_bias(1e-30f, 1.0f, 1.0f), 0);
    const float b[3] = {1.0f, -1.0f, 0.1f};
    const float sw[3] = {0.5f, 0.25f, 0.01f};
    int32_t bq[3];
    oct_quant_bias_rows(b, 3, 0.1f, sw, bq);
    for (int c = 0; c < 3; c++) assert_int_equal(bq[c], oct_quant_bias(b[c], 0.1f, sw[c]));
    assert_int_equal(bq[0], 20);
    assert_int_equal(bq[2], 100);
}

static void multiplier(void **state) {
    int32_t m0, k;
    assert_int_equal(oct_requant_multiplier(0.5, &m0, &k), OCT_OK);
    assert_true(m0 == (1 << 30) && k == 31);
    assert_int_equal(oct_requant_multiplier(1.0, &m0, &k), OCT_OK);
    assert_true(m0 == (1 << 30) && k == 30);
    assert_int_equal(oct_requant_multiplier(1.0 - 0x1p-33, &m0, &k), OCT_OK); /* rounds to 2^31 */
    assert_true(m0 == (1 << 30) && k == 30);
    assert_int_equal(oct_requant_multiplier(0.0, &m0, &k), OCT_OK);
    assert_true(m0 == (1 << 30) && k == 62);
    assert_int_equal(oct_requant_multiplier(1e-30, &m0, &k), OCT_OK);
    assert_true(m0 == (1 << 30) && k == 62);
    assert_int_equal(oct_requant_multiplier(0x1p-32, &m0, &k), OCT_OK); /* the smallest exact */
    assert_true(m0 == (1 << 30) && k == 62);
    assert_int_equal(oct_requant_multiplier(0x1.8p29, &m0, &k), OCT_OK); /* the largest k = 1 */
    assert_true(m0 == (3 << 29) && k == 1);
    assert_int_equal(oct_requant_multiplier(0x1p30, &m0, &k), OCT_OK);
    assert_true(m0 == INT32_MAX && k == 1);
    assert_int_equal(oct_requant_multiplier(1e300, &m0, &k), OCT_OK);
    assert_true(m0 == INT32_MAX && k == 1);
    assert_int_equal(oct_requant_multiplier(NAN, &m0, &k), OCT_EINVAL);
    assert_int_equal(oct_requant_multiplier(-1.0, &m0, &k), OCT_EINVAL);
    assert_int_equal(oct_requant_multiplier(INFINITY, &m0, &k), OCT_EINVAL);
    oct_rng r;
    oct_rng_seed(&r, 11, 2);
    for (int it = 0; it < 200000; it++) {
        double m = ldexp(0.5 + 0.5 * oct_rng_uniform(&r) + 0x1p-40 * oct_rng_u32(&r),
                         (int)oct_rng_below(&r, 80) - 40);
        assert_int_equal(oct_requant_multiplier(m, &m0, &k), OCT_OK);
        assert_true(m0 >= (1 << 30) && k >= 1 && k <= 62);
        assert_int_equal(oct_requant_check(&m0, &k, 1), OCT_OK);
        if (m >= 0x1p-32 && m < 0x1p29) assert_true(fabs(ldexp(m0, -k) - m) <= m * 0x1p-31);
    }
    const float sw[2] = {0.002f, 1e-30f};
    int32_t m0s[2], ks[2];
    assert_int_equal(oct_requant_multipliers(0.05f, sw, 2, 0.1f, m0s, ks), OCT_OK);
    assert_int_equal(oct_requant_multiplier((double)0.05f * 0.002f / 0.1f, &m0, &k), OCT_OK);
    assert_true(m0s[0] == m0 && ks[0] == k && ks[1] == 62);
    const float bad_sw[1] = {0.0f};
    assert_int_equal(oct_requant_multipliers(0.05f, bad_sw, 1, 0.1f, m0s, ks), OCT_EINVAL);
    const int32_t bad_m0[1] = {1 << 29}, bad_k[1] = {63};
    assert_int_equal(oct_requant_check(bad_m0, ks, 1), OCT_EFORMAT);
    assert_int_equal(oct_requant_check(m0s, bad_k, 1), OCT_EFORMAT);
}

/* floor(acc * m0 / 2^k + 1/2) with 128-bit integers and an explicit floor division. */
static int64_t requant_reference(int32_t acc, int32_t m0, int32_t k) {
    __int128 num = 2 * (__int128)acc * m0 + ((__int128)1 << k);
    __int128 den = (__int128)1 << (k + 1);
    __int128 q = num / den;
    if (num % den != 0 && num < 0) q -= 1;
    return (int64_t)q;
}

static int32_t clamp64(int64_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

static int32_t random_acc(oct_rng *r) {
    switch (oct_rng_below(r, 4)) {
    case 0: {
        const int32_t extremes[] = {INT32_MIN, INT32_MAX, INT32_MIN + 1, 0, 1, -1};
        return extremes[oct_rng_below(r, 6)];
    }
    case 1:
        return (int32_t)oct_rng_u32(r);
    default:
        return (int32_t)oct_rng_u32(r) >> oct_rng_below(r, 31);
    }
}

static void requantize_exact(void **state) {
    /* exact ties round half up */
    assert_int_equal(oct_requantize(1, 1 << 30, 31, 0, -128, 127, false), 1);
    assert_int_equal(oct_requantize(-1, 1 << 30, 31, 0, -128, 127, false), 0);
    assert_int_equal(oct_requantize(3, 1 << 30, 31, 0, -128, 127, false), 2);
    assert_int_equal(oct_requantize(-3, 1 << 30, 31, 0, -128, 127, false), -1);
    assert_int_equal(oct_requantize(-5, 1 << 30, 31, 10, 0, 255, false), 8);
    assert_int_equal(oct_requantize(-100, 1 << 30, 30, 10, 0, 255, false), 0);
    assert_int_equal(oct_requantize(-100, 1 << 30, 30, 10, 0, 255, true), 10); /* fused ReLU */
    assert_int_equal(oct_requantize(3, 1 << 30, 30, 10, 0, 255, true), 13);
    oct_rng r;
    oct_rng_seed(&r, 5, 5);
    enum { N = 64, ROWS = 8 };
    int32_t acc[ROWS * N], m0[N], k[N];
    uint8_t yu[ROWS * N];
    int8_t ys[ROWS * N];
    for (int it = 0; it < 4000; it++) {
        for (int c = 0; c < N; c++) {
            m0[c] = (int32_t)((1u << 30) + (oct_rng_u32(&r) >> 2));
            if (oct_rng_below(&r, 8) == 0) m0[c] = oct_rng_below(&r, 2) ? INT32_MAX : 1 << 30;
            k[c] = 1 + (int32_t)oct_rng_below(&r, 62);
        }
        for (int i = 0; i < ROWS * N; i++) acc[i] = random_acc(&r);
        int32_t zy = (int32_t)oct_rng_below(&r, 256);
        bool relu = oct_rng_below(&r, 2);
        oct_requantize_u8(acc, ROWS, N, m0, k, zy, 0, 255, relu, yu);
        oct_requantize_s8(acc, ROWS, N, m0, k, zy - 128, -128, 127, relu, ys);
        for (int i = 0; i < ROWS * N; i++) {
            int c = i % N;
            int64_t ref = requant_reference(acc[i], m0[c], k[c]);
            int32_t lo = relu ? zy : 0;
            if (yu[i] != clamp64(zy + ref, lo, 255)) fail();
            if (ys[i] != clamp64(zy - 128 + ref, lo - 128, 127)) fail();
            if (oct_requantize(acc[i], m0[c], k[c], 0, INT32_MIN, INT32_MAX, false) !=
                clamp64(ref, INT32_MIN, INT32_MAX))
                fail();
        }
    }
}

static void requantize_vs_real(void **state) {
    /* Against round-half-up(acc * M) for the real M, in long double, away from ties (M0 has a
     * relative error <= 2^-31, far below the 1e-6 margin for |acc * M| < 2^20). */
    oct_rng r;
    oct_rng_seed(&r, 9, 9);
    int checked = 0;
    for (int it = 0; it < 500000; it++) {
        double m = ldexp(0.5 + 0.5 * oct_rng_uniform(&r), -(int)oct_rng_below(&r, 30));
        int32_t acc = random_acc(&r) >> oct_rng_below(&r, 20);
        int32_t m0, k;
        assert_int_equal(oct_requant_multiplier(m, &m0, &k), OCT_OK);
        long double v = (long double)acc * (long double)m;
        if (fabsl(v) >= 0x1p20L) continue;
        long double frac = v - floorl(v);
        if (fabsl(frac - 0.5L) < 1e-6L) continue;
        int32_t want = (int32_t)floorl(v + 0.5L);
        if (oct_requantize(acc, m0, k, 0, INT32_MIN, INT32_MAX, false) != want) fail();
        checked++;
    }
    assert_true(checked > 100000);
    /* Saturated multipliers give the exact results, also for extreme accumulators. */
    const int32_t accs[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX};
    int32_t m0, k;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(oct_requant_multiplier(1e-12, &m0, &k), OCT_OK);
        assert_int_equal(oct_requantize(accs[i], m0, k, 7, 0, 255, false), 7);
        assert_int_equal(oct_requant_multiplier(1e12, &m0, &k), OCT_OK);
        int32_t want = accs[i] > 0 ? 255 : accs[i] < 0 ? 0 : 7;
        assert_int_equal(oct_requantize(accs[i], m0, k, 7, 0, 255, false), want);
    }
    /* real rescale for observers */
    assert_true(oct_acc_to_real(-300, 0.5f, 0.25f) == -37.5f);
    assert_true(oct_acc_to_real(INT32_MIN, 1.0f, 1.0f) == -0x1p31f);
    const int32_t a[4] = {1, 2, 3, 4};
    const float sw[2] = {0.5f, 2.0f};
    float y[4];
    oct_acc_to_real_rows(a, 2, 2, 0.25f, sw, y);
    assert_true(y[0] == 0.125f && y[1] == 1.0f && y[2] == 0.375f && y[3] == 2.0f);
    /* The row version equals the scalar rule bit for bit, with awkward scales and more than
     * one block of columns. */
    enum { R = 3, C = 300 };
    static int32_t big[R * C];
    static float ws[C], got[R * C];
    uint32_t seed = 99;
    for (int c = 0; c < C; c++) {
        seed = seed * 1664525u + 1013904223u;
        ws[c] = (float)(seed >> 8) * 0x1p-30f + 1e-7f;
    }
    for (int i = 0; i < R * C; i++) {
        seed = seed * 1664525u + 1013904223u;
        big[i] = (int32_t)seed;
    }
    oct_acc_to_real_rows(big, R, C, 0.0123457f, ws, got);
    for (int i = 0; i < R * C; i++)
        assert_true(got[i] == oct_acc_to_real(big[i], 0.0123457f, ws[i % C]));
}

static void observers(void **state) {
    float lo[2], hi[2], s[2];
    int32_t z[2];
    oct_observer o;
    oct_qscheme u8 = oct_qscheme_activations();
    oct_observer_init(&o, lo, hi, 1, 0.0f);
    assert_int_equal(oct_observer_qparams(&o, &u8, s, z), OCT_OK); /* empty: zero range */
    assert_true(s[0] == 1.0f && z[0] == 0);
    const float a[4] = {1.0f, -2.0f, NAN, 3.0f};
    const float b[4] = {INFINITY, 4.0f, -INFINITY, 0.5f};
    oct_observer_update(&o, a, 4);
    assert_true(lo[0] == -2.0f && hi[0] == 3.0f);
    oct_observer_update(&o, b, 4);
    assert_true(lo[0] == -2.0f && hi[0] == 4.0f);
    const float nans[2] = {NAN, INFINITY};
    oct_observer_update(&o, nans, 2);
    assert_true(lo[0] == -2.0f && hi[0] == 4.0f);
    o.frozen = true;
    const float big[1] = {100.0f};
    oct_observer_update(&o, big, 1);
    assert_true(hi[0] == 4.0f);
    assert_int_equal(oct_observer_qparams(&o, &u8, s, z), OCT_OK);
    assert_true(s[0] == (float)(6.0 / 255.0));
    assert_int_equal(z[0], 85);
    /* moving average, per channel (rows) */
    oct_observer_init(&o, lo, hi, 2, OCT_OBSERVER_MOMENTUM);
    const float x1[6] = {1.0f, 2.0f, 3.0f, NAN, NAN, NAN}; /* channel 1 sees nothing */
    oct_observer_update(&o, x1, 6);
    assert_true(lo[0] == 1.0f && hi[0] == 3.0f);
    assert_true(lo[1] > hi[1]);
    const float x2[6] = {-9.0f, 0.0f, 13.0f, -1.0f, 0.0f, 2.0f};
    oct_observer_update(&o, x2, 6);
    assert_true(lo[0] == (float)(1.0 + 0.01f * (-10.0)));
    assert_true(hi[0] == (float)(3.0 + 0.01f * 10.0));
    assert_true(lo[1] == -1.0f && hi[1] == 2.0f); /* first update initializes */
    oct_qscheme w8 = oct_qscheme_weights();
    assert_int_equal(oct_observer_qparams(&o, &w8, s, z), OCT_OK);
    assert_true(s[0] == (float)((double)hi[0] / 127.0) && s[1] == (float)(2.0 / 127.0));
    assert_true(z[0] == 0 && z[1] == 0);
    /* a corrupted (checkpoint) state is reported, with the fallback written */
    lo[1] = NAN;
    assert_int_equal(oct_observer_qparams(&o, &w8, s, z), OCT_EINVAL);
    assert_true(s[1] == 1.0f);
}

static void lsq_and_pact(void **state) {
    const float x[5] = {1.0f, -3.0f, NAN, 0.0f, 2.0f};
    assert_true(oct_lsq_init_scale(x, 5, 4) == 1.5f); /* 2 * (6 / 4) / 2 */
    assert_true(oct_lsq_init_scale(x + 3, 1, 127) == OCT_QUANT_MIN_SCALE);
    assert_true(oct_lsq_init_scale(x, 0, 127) == OCT_QUANT_MIN_SCALE);
    assert_true(oct_lsq_grad_factor(100, 4) == 0.05f);
    /* clamped sides and special values, with a zero point */
    assert_true(oct_lsq_grad_scale(100.0f, 1.0f, 3, 0, 15, 1.0f) == 12.0f);
    assert_true(oct_lsq_grad_scale(-100.0f, 1.0f, 3, 0, 15, 1.0f) == -3.0f);
    assert_true(oct_lsq_grad_scale(INFINITY, 1.0f, 3, 0, 15, 0.5f) == 6.0f);
    assert_true(oct_lsq_grad_scale(-INFINITY, 1.0f, 3, 0, 15, 1.0f) == -3.0f);
    assert_true(oct_lsq_grad_scale(NAN, 1.0f, 3, 0, 15, 1.0f) == 0.0f);
    assert_true(oct_lsq_grad_scale(-3.25f, 1.0f, 3, 0, 15, 1.0f) == 0.25f); /* rint -> -3: inside */
    assert_true(oct_lsq_grad_scale(-3.75f, 1.0f, 3, 0, 15, 1.0f) == -3.0f); /* rint -> -4: below */
    assert_true(oct_quant_passes(-3.25f, 1.0f, 3, 0, 15));
    assert_false(oct_quant_passes(-3.75f, 1.0f, 3, 0, 15));
    assert_false(oct_quant_passes(NAN, 1.0f, 3, 0, 15));
    assert_true(oct_quant_passes(12.5f, 1.0f, 3, 0, 15)); /* rint(12.5) + 3 = 15: inside */
    assert_false(oct_quant_passes(12.6f, 1.0f, 3, 0, 15));
    { /* the batched backward: the per-element functions' values, summed in order in double */
        const float xs[8] = {-3.25f, -3.75f, NAN, 12.5f, 12.6f, INFINITY, 0.3f, -INFINITY};
        const float d[8] = {0.5f, -1.0f, 2.0f, 0.25f, 3.0f, -0.125f, 1e-3f, 7.0f};
        float dx[8] = {0}, want_dx[8] = {0};
        double want = 0.0;
        for (int i = 0; i < 8; i++) {
            if (oct_quant_passes(xs[i], 0.5f, 3, 0, 15)) want_dx[i] += d[i];
            want += (double)d[i] * oct_lsq_grad_scale(xs[i], 0.5f, 3, 0, 15, 0.3f);
        }
        assert_true(oct_lsq_backward(xs, d, 8, 0.5f, 3, 0, 15, 0.3f, dx) == want);
        assert_memory_equal(dx, want_dx, sizeof dx);
        assert_true(oct_lsq_backward(xs, d, 8, 0.5f, 3, 0, 15, 0.3f, NULL) == want);
    }
    /* Against a central finite difference of the fake-quant function in s: with dyadic s and h
     * the products are exact, so the difference quotient is exactly the true derivative, which
     * is rint(x/s) inside (LSQ adds -x/s from the STE) and qmin - z / qmax - z when clamped. */
    oct_rng r;
    oct_rng_seed(&r, 13, 1);
    int inside = 0, clamped = 0;
    for (int it = 0; it < 100000; it++) {
        float s = ldexpf(1.0f + (float)oct_rng_below(&r, 8) / 8.0f, -(int)oct_rng_below(&r, 8));
        float h = ldexpf(s, -12);
        int32_t z = (int32_t)oct_rng_below(&r, 256);
        float xv = s * 300.0f * (oct_rng_uniform(&r) - 0.5f);
        int32_t q0 = oct_quantize(xv, s, z, 0, 255);
        if (oct_quantize(xv, s - h, z, 0, 255) != q0 || oct_quantize(xv, s + h, z, 0, 255) != q0)
            continue; /* a rounding or clamping discontinuity between s - h and s + h */
        float fd = (oct_fake_quant(xv, s + h, z, 0, 255) - oct_fake_quant(xv, s - h, z, 0, 255)) /
                   (2.0f * h);
        bool pass = oct_quant_passes(xv, s, z, 0, 255);
        float want = pass ? fd - xv / s : fd;
        float got = oct_lsq_grad_scale(xv, s, z, 0, 255, 1.0f);
        if (fabsf(got - want) > 1e-5f) fail();
        if (oct_lsq_grad_scale(xv, s, z, 0, 255, 0.125f) != 0.125f * got) fail();
        inside += pass;
        clamped += !pass;
    }
    assert_true(inside > 10000 && clamped > 10000);
    /* PACT */
    assert_true(oct_pact(-1.0f, 6.0f) == 0.0f && oct_pact(2.5f, 6.0f) == 2.5f);
    assert_true(oct_pact(7.0f, 6.0f) == 6.0f && oct_pact(NAN, 6.0f) == 0.0f);
    assert_true(oct_pact(INFINITY, 6.0f) == 6.0f && oct_pact(-INFINITY, 6.0f) == 0.0f);
    assert_true(oct_pact_grad_alpha(6.0f, 6.0f) == 1.0f && oct_pact_grad_alpha(5.9f, 6.0f) == 0.0f);
    assert_true(oct_pact_grad_alpha(NAN, 6.0f) == 0.0f);
    assert_true(oct_pact_grad_x(3.0f, 6.0f) == 1.0f && oct_pact_grad_x(6.0f, 6.0f) == 0.0f);
    assert_true(oct_pact_grad_x(0.0f, 6.0f) == 0.0f && oct_pact_grad_x(-1.0f, 6.0f) == 0.0f);
}

/* The vectorizable STE mask equals oct_quant_passes element by element, at the code-range
 * boundaries, on ties, far outside the range and on NaN/Inf. */
static void pass_mask_matches_scalar(void **state) {
    enum { N = 1 << 16 };
    static float x[N], mask[N];
    const float s = 0.0371f;
    const int32_t z = 77, qmin = 0, qmax = 255;
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1664525u + 1013904223u;
        int k = (int)(seed >> 20) - 2048;       /* codes around and beyond the range */
        float frac = (float)(seed & 3) * 0.25f; /* 0, .25, .5 (ties), .75 */
        x[i] = ((float)k + frac) * s;
    }
    x[0] = NAN;
    x[1] = INFINITY;
    x[2] = -INFINITY;
    x[3] = 3e38f;
    x[4] = -0.0f;
    x[5] = ((float)(qmax - z) + 0.5f) * s;
    x[6] = ((float)(qmin - z) - 0.5f) * s;
    oct_quant_pass_mask(x, N, s, z, qmin, qmax, mask);
    int inside = 0;
    for (int i = 0; i < N; i++) {
        bool want = oct_quant_passes(x[i], s, z, qmin, qmax);
        if ((mask[i] == 1.0f) != want || (mask[i] != 0.0f && mask[i] != 1.0f))
            fail_msg("x[%d] = %.9g: mask %g, oct_quant_passes %d", i, (double)x[i], (double)mask[i],
                     want);
        inside += want;
    }
    assert_true(inside > N / 16 && inside < N - N / 16);
    /* at the widest code offsets, just beyond them (x / s = 2^22 + 1 rounded to 2^22 before) */
    const int32_t top = OCT_QUANT_MAX_OFFSET;
    float edge[] = {(float)top,  (float)top + 1.0f,  (float)top + 2.0f,  (float)top + 3.0f,
                    (float)-top, (float)-top - 1.0f, (float)-top - 2.0f, 1e30f};
    float edge_mask[8];
    oct_quant_pass_mask(edge, 8, 1.0f, 0, -top, top, edge_mask);
    for (int i = 0; i < 8; i++)
        if ((edge_mask[i] == 1.0f) != oct_quant_passes(edge[i], 1.0f, 0, -top, top) ||
            (edge_mask[i] == 1.0f) != (i == 0 || i == 4))
            fail_msg("x = %.9g: mask %g", (double)edge[i], (double)edge_mask[i]);
}

/* Power-of-two codes: the nearest of 0 and +-2^k, ties (1.5 * 2^k) to the larger, 1/2 to 1,
 * clamped at 2^max_exp, NaN to 0; the same as a reference loop over many values. */
static void pow2_codes(void **state) {
    const float x[] = {0.0f,  0.49f, 0.5f,  0.74f,    1.49f, 1.5f,  2.9f, 3.0f,  5.99f, 6.0f,
                       47.9f, 48.0f, 100.f, INFINITY, -3.0f, -0.2f, NAN,  -1e9f, 1e-40f};
    const int8_t want[] = {0, 0, 1, 1, 1, 2, 2, 4, 4, 8, 32, 64, 64, 64, -4, 0, 0, -64, 0};
    int n = (int)(sizeof x / sizeof x[0]);
    int8_t got[32];
    float one = 1.0f;
    oct_quantize_pow2_s8(x, 1, n, &one, 6, got);
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("x = %g: code %d, want %d", (double)x[i], got[i], want[i]);
    oct_quantize_pow2_s8(x, 1, n, &one, 0, got); /* ternary */
    for (int i = 0; i < n; i++) assert_int_equal(got[i], want[i] > 0 ? 1 : want[i] < 0 ? -1 : 0);
    enum { M = 4001 };
    static float v[M];
    static int8_t q[M];
    float s = 0.37f;
    for (int i = 0; i < M; i++) v[i] = (float)(i - M / 2) * 0.013f;
    oct_quantize_pow2_s8(v, 1, M, &s, 4, q);
    for (int i = 0; i < M; i++) {
        float a = fabsf(v[i] / s);
        int code = 0;
        if (a >= 0.5f)
            for (code = 1; code < 16 && a >= 1.5f * (float)code;) code *= 2;
        assert_int_equal(q[i], v[i] < 0 ? -code : code);
    }
}

/* The codebook quantizer: at most `levels` distinct codes, deterministic, all zeros stay zeros,
 * and on Gaussian weights a lower squared error than the uniform quantizer with about as many
 * levels (8 against 3-bit uniform's 7). */
static void codebook_codes(void **state) {
    enum { R = 16, C = 257 };
    static float w[R * C], s[R];
    static int8_t q[R * C], q2[R * C], u[R * C];
    uint64_t st = 12345;
    for (int i = 0; i < R * C; i++) { /* Box-Muller from a small LCG */
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        double u1 = ((double)(st >> 11) + 0.5) / 9007199254740992.0;
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        double u2 = (double)(st >> 11) / 9007199254740992.0;
        w[i] = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int r = 0; r < R; r++) {
        float mx = 0.0f;
        for (int i = 0; i < C; i++) mx = fmaxf(mx, fabsf(w[r * C + i]));
        s[r] = mx / 127.0f;
    }
    oct_quantize_codebook_s8(w, R, C, s, 8, q);
    oct_quantize_codebook_s8(w, R, C, s, 8, q2);
    assert_memory_equal(q, q2, sizeof q);
    bool used[256] = {false};
    int distinct = 0;
    for (int i = 0; i < R * C; i++) {
        distinct += !used[q[i] + 128];
        used[q[i] + 128] = true;
    }
    assert_true(distinct >= 2 && distinct <= 8);
    float s3[R];
    int32_t z[R] = {0};
    for (int r = 0; r < R; r++) s3[r] = s[r] * 127.0f / 3.0f;
    oct_quantize_s8(w, R, C, s3, z, -3, 3, u);
    double e_book = 0.0, e_uni = 0.0;
    for (int i = 0; i < R * C; i++) {
        double d1 = w[i] - s[i / C] * q[i], d2 = w[i] - s3[i / C] * u[i];
        e_book += d1 * d1;
        e_uni += d2 * d2;
    }
    assert_true(e_book < e_uni);
    static float zero[64];
    float one = 1.0f;
    oct_quantize_codebook_s8(zero, 1, 64, &one, 4, q);
    for (int i = 0; i < 64; i++) assert_int_equal(q[i], 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pass_mask_matches_scalar),
        cmocka_unit_test(schemes),
        cmocka_unit_test(quantize_ties_and_boundaries),
        cmocka_unit_test(quantize_special_values),
        cmocka_unit_test(arrays_match_scalar),
        cmocka_unit_test(params_from_ranges),
        cmocka_unit_test(row_params_match_scan),
        cmocka_unit_test(bias),
        cmocka_unit_test(multiplier),
        cmocka_unit_test(requantize_exact),
        cmocka_unit_test(requantize_vs_real),
        cmocka_unit_test(observers),
        cmocka_unit_test(lsq_and_pact),
        cmocka_unit_test(pow2_codes),
        cmocka_unit_test(codebook_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
