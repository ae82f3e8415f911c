/* The integer linear layer shared by QAT and deployment (see include/octet/int8.h): the int8
 * GEMM, the zero-point and bias correction, and requantization fused as a GEMM epilogue while
 * the output rows are still in cache. */
#include "octet/int8.h"
#include "octet/parallel.h"
#include "octet/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/clones.h"

typedef struct qlinear_ctx {
    const oct_qlinear *l;
    uint8_t *y; /* (M,out) or NULL */
} qlinear_ctx;

/* Rows [m0, m1) of the accumulators: add -a_zp * wsum + b_q, then requantize if asked. */
static void qlinear_epilogue(void *arg, int m0, int m1, int32_t *c_rows) {
    const qlinear_ctx *ctx = arg;
    const oct_qlinear *l = ctx->l;
    int N = l->out;
    const int32_t *wsum = l->w.wsum, *bq = l->bias_q;
    int32_t za = l->a_zp;
    for (int m = 0; m < m1 - m0; m++) {
        int32_t *row = c_rows + (int64_t)m * N;
        for (int c = 0; c < N; c++) row[c] += bq[c] - za * wsum[c];
    }
    if (ctx->y)
        oct_requantize_u8(c_rows, m1 - m0, N, l->m0, l->shift, l->y_zp, l->y_qmin, l->y_qmax,
                          l->relu, ctx->y + (int64_t)m0 * N);
}

void oct_qlinear_acc(const oct_qlinear *l, const uint8_t *a, int M, int32_t *acc, int threads) {
    qlinear_ctx ctx = {l, NULL};
    oct_i8_gemm_fn(&l->w, a, M, acc, threads, qlinear_epilogue, &ctx);
}

void oct_qlinear_forward(const oct_qlinear *l, const uint8_t *a, int M, int32_t *acc, uint8_t *y,
                         int threads) {
    OCT_ASSERT(l->quant_out);
    qlinear_ctx ctx = {l, y};
    oct_i8_gemm_fn(&l->w, a, M, acc, threads, qlinear_epilogue, &ctx);
}

/* ---- dynamic activations -------------------------------------------------------------------- */

typedef struct dynamic_ctx {
    const oct_qlinear *l;
    const float *a_scale;
    const int32_t *a_zp;
    float *y; /* (M,out) or NULL */
} dynamic_ctx;

/* One output row: acc -= za * wsum, then y = oct_acc_to_real(acc, sa, ws[c]) + b[c], at least lo.
 * (double)sa * (double)ws is exact, so one product per element gives oct_acc_to_real's bits. */
OCT_CLONES static void dynamic_row(int32_t *restrict acc, int N, int32_t za,
                                   const int32_t *restrict wsum, double sa,
                                   const float *restrict ws, const float *restrict b, float lo,
                                   float *restrict y) {
    for (int c = 0; c < N; c++) acc[c] -= za * wsum[c];
    if (!y) return;
    for (int c = 0; c < N; c++) {
        float v = (float)(sa * (double)ws[c] * (double)acc[c]) + b[c];
        y[c] = v < lo ? lo : v;
    }
}

/* Rows [m0, m1): dynamic_row with the row's scale and zero point (ReLU'd when l->relu). */
static void dynamic_epilogue(void *arg, int m0, int m1, int32_t *c_rows) {
    const dynamic_ctx *ctx = arg;
    const oct_qlinear *l = ctx->l;
    int N = l->out;
    float lo = l->relu ? 0.0f : -INFINITY;
    for (int m = m0; m < m1; m++)
        dynamic_row(c_rows + (int64_t)(m - m0) * N, N, ctx->a_zp[m], l->w.wsum, ctx->a_scale[m],
                    l->w_scale, l->bias, lo, ctx->y ? ctx->y + (int64_t)m * N : NULL);
}

/* Input rows quantized in tasks of this many, on the GEMM's threads. */
#define QUANT_ROWS 32

typedef struct quant_ctx {
    const float *x;
    int M, in;
    uint8_t *a;
    float *s;
    int32_t *z;
} quant_ctx;

static void quantize_rows(void *arg, int task) {
    const quant_ctx *q = arg;
    int r0 = task * QUANT_ROWS, n = q->M - r0 < QUANT_ROWS ? q->M - r0 : QUANT_ROWS;
    oct_qscheme aq = oct_qscheme_activations();
    int64_t off = (int64_t)r0 * q->in;
    oct_quant_row_params(&aq, q->x + off, n, q->in, q->s + r0, q->z + r0);
    oct_quantize_u8(q->x + off, n, q->in, q->s + r0, q->z + r0, aq.qmin, aq.qmax, q->a + off);
}

void oct_qlinear_dynamic(const oct_qlinear *l, const float *x, int M, uint8_t *a, float *a_scale,
                         int32_t *a_zp, int32_t *acc, float *y, int threads) {
    OCT_ASSERT(l->dynamic && M >= 0);
    quant_ctx q = {x, M, l->in, a, a_scale, a_zp};
    oct_parallel_for((M + QUANT_ROWS - 1) / QUANT_ROWS, threads, quantize_rows, &q);
    oct_qlinear_dynamic_codes(l, a, M, a_scale, a_zp, acc, y, threads);
}

void oct_qlinear_dynamic_codes(const oct_qlinear *l, const uint8_t *a, int M, const float *a_scale,
                               const int32_t *a_zp, int32_t *acc, float *y, int threads) {
    OCT_ASSERT(l->dynamic && M >= 0);
    dynamic_ctx ctx = {l, a_scale, a_zp, y};
    oct_i8_gemm_fn(&l->w, a, M, acc, threads, dynamic_epilogue, &ctx);
}

oct_status oct_qlinear_build_dynamic(oct_qlinear *l, int out, int in, const float *w,
                                     const float *b, bool relu) {
    OCT_ASSERT(out > 0 && in > 0);
    oct_qscheme q = oct_qscheme_weights();
    float *scale = malloc((size_t)out * sizeof *scale);
    OCT_ALLOC_CHECK(scale, (size_t)out * sizeof *scale);
    oct_quant_row_scales(&q, w, out, in, scale);
    oct_status s = oct_qlinear_build(l, out, in, w, NULL, scale, q.qmin, q.qmax, 1.0f, 0, false,
                                     relu, 0.0f, 0, 0, 0);
    free(scale);
    if (s != OCT_OK) return s;
    if (!l->bias) l->bias = malloc((size_t)out * sizeof *l->bias);
    OCT_ALLOC_CHECK(l->bias, (size_t)out * sizeof *l->bias);
    for (int c = 0; c < out; c++) l->bias[c] = b ? b[c] : 0.0f;
    l->dynamic = true;
    l->a_scale = 0.0f;
    return OCT_OK;
}

void oct_qlinear_free(oct_qlinear *l) {
    if (!l) return;
    free(l->bias);
    oct_i8_packed_free(&l->w);
    free(l->bias_q);
    free(l->w_scale);
    free(l->m0);
    free(l->shift);
    free(l->codes);
    memset(l, 0, sizeof *l);
}

/* The checks and buffers every build shares: scales positive, l's buffers sized out x in
 * (reused from a build of that shape), w_scale and the input quantization set. */
static oct_status prepare(oct_qlinear *l, int out, int in, const float *w_scale, float a_scale,
                          int32_t a_zp, bool quant_out, float y_scale) {
    if (!(a_scale > 0) || (quant_out && !(y_scale > 0)))
        return oct_fail(OCT_EINVAL,
                        "qlinear: activation scales must be positive (input %g, "
                        "output %g)",
                        (double)a_scale, (double)y_scale);
    for (int c = 0; c < out; c++)
        if (!(w_scale[c] > 0))
            return oct_fail(OCT_EINVAL, "qlinear: weight scale of channel %d is %g", c,
                            (double)w_scale[c]);
    if (l->out != out || l->in != in || !l->codes) {
        oct_qlinear_free(l);
        l->bias_q = malloc((size_t)out * sizeof *l->bias_q);
        l->w_scale = malloc((size_t)out * sizeof *l->w_scale);
        l->m0 = malloc((size_t)out * sizeof *l->m0);
        l->shift = malloc((size_t)out * sizeof *l->shift);
        l->codes = malloc((size_t)out * (size_t)in);
        OCT_ALLOC_CHECK(l->bias_q && l->w_scale && l->m0 && l->shift && l->codes,
                        (size_t)out * (size_t)in);
    }
    l->out = out;
    l->in = in;
    memcpy(l->w_scale, w_scale, (size_t)out * sizeof *w_scale);
    l->a_scale = a_scale;
    l->a_zp = a_zp;
    l->dynamic = false;
    return OCT_OK;
}

int64_t oct_qlinear_bias_max(int in) {
    return INT32_MAX - (int64_t)255 * 128 * in;
}

/* The rest of a build once l->codes holds the weight codes. */
static oct_status finish(oct_qlinear *l, const float *b, bool quant_out, bool relu, float y_scale,
                         int32_t y_zp, int32_t y_qmin, int32_t y_qmax) {
    oct_status s = oct_i8_repack(&l->w, l->codes, l->out, l->in);
    if (s != OCT_OK) return s;
    if (b) {
        oct_quant_bias_rows(b, l->out, l->a_scale, l->w_scale, l->bias_q);
        int32_t top = (int32_t)oct_qlinear_bias_max(l->in);
        for (int c = 0; c < l->out; c++)
            l->bias_q[c] = l->bias_q[c] > top ? top : l->bias_q[c] < -top ? -top : l->bias_q[c];
    } else {
        memset(l->bias_q, 0, (size_t)l->out * sizeof *l->bias_q);
    }
    return oct_qlinear_set_output(l, quant_out, relu, y_scale, y_zp, y_qmin, y_qmax);
}

oct_status oct_qlinear_build(oct_qlinear *l, int out, int in, const float *w, const float *b,
                             const float *w_scale, int32_t w_qmin, int32_t w_qmax, float a_scale,
                             int32_t a_zp, bool quant_out, bool relu, float y_scale, int32_t y_zp,
                             int32_t y_qmin, int32_t y_qmax) {
    OCT_ASSERT(out > 0 && in > 0 && w_qmin >= -128 && w_qmax <= 127 && w_qmin < w_qmax);
    oct_status s = prepare(l, out, in, w_scale, a_scale, a_zp, quant_out, y_scale);
    if (s != OCT_OK) return s;
    int32_t *zeros = calloc((size_t)out, sizeof *zeros);
    OCT_ALLOC_CHECK(zeros, (size_t)out * sizeof *zeros);
    oct_quantize_s8(w, out, in, w_scale, zeros, w_qmin, w_qmax, l->codes);
    free(zeros);
    return finish(l, b, quant_out, relu, y_scale, y_zp, y_qmin, y_qmax);
}

oct_status oct_qlinear_build_codes(oct_qlinear *l, int out, int in, const int8_t *codes,
                                   const float *b, const float *w_scale, float a_scale,
                                   int32_t a_zp, bool quant_out, bool relu, float y_scale,
                                   int32_t y_zp, int32_t y_qmin, int32_t y_qmax) {
    OCT_ASSERT(out > 0 && in > 0);
    oct_status s = prepare(l, out, in, w_scale, a_scale, a_zp, quant_out, y_scale);
    if (s != OCT_OK) return s;
    memcpy(l->codes, codes, (size_t)out * (size_t)in);
    return finish(l, b, quant_out, relu, y_scale, y_zp, y_qmin, y_qmax);
}

oct_status oct_qlinear_set_output(oct_qlinear *l, bool quant_out, bool relu, float y_scale,
                                  int32_t y_zp, int32_t y_qmin, int32_t y_qmax) {
    if (quant_out && !(y_scale > 0))
        return oct_fail(OCT_EINVAL, "qlinear: output scale must be positive, got %g",
                        (double)y_scale);
    l->quant_out = quant_out;
    l->relu = relu;
    l->y_scale = quant_out ? y_scale : 0.0f;
    l->y_zp = quant_out ? y_zp : 0;
    l->y_qmin = quant_out ? y_qmin : 0;
    l->y_qmax = quant_out ? y_qmax : 0;
    if (quant_out)
        return oct_requant_multipliers(l->a_scale, l->w_scale, l->out, y_scale, l->m0, l->shift);
    memset(l->m0, 0, (size_t)l->out * sizeof *l->m0);
    memset(l->shift, 0, (size_t)l->out * sizeof *l->shift);
    return OCT_OK;
}
