/* Tests for quantization-aware training (include/octet/qat.h): the fake-quant op against
 * oct_fake_quant_rows and independently written STE / LSQ / PACT gradients; the quantized linear
 * op against a naive integer reference (int64 dot products, the quant.h scalar rules); observer
 * update rules; a tiny QAT MLP that learns; and the central invariant: the exported integer MLP
 * run by a plain integer forward written here reproduces the QAT eval-mode logits bit for bit,
 * for every int8 kernel, 1 and 2 threads, batch sizes 1, 7 and 256. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "octet/nn.h"
#include "octet/optim.h"
#include "octet/qat.h"

static oct_arena arena;
static oct_rng rng;

static int setup(void **state) {
    oct_arena_reset(&arena);
    oct_rng_seed(&rng, 77, 3);
    return 0;
}

static oct_tensor *param(int rows, int cols, float std) {
    oct_tensor *t = oct_tensor_param(&arena, "p", 2, (int[]){rows, cols});
    oct_rng_fill_normal(&rng, t, std);
    return t;
}

/* A fresh ReLU MLP of three layer sizes in the test arena, its parameters in params. */
static void relu_mlp(oct_params *params, oct_mlp *mlp, const int sizes[3]) {
    oct_params_init(params);
    assert_int_equal(
        oct_mlp_init(mlp, &arena, params, sizes, 3, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng),
        OCT_OK);
}

/* Seeds dL/dy = w (random) and back-propagates; returns w. */
static const float *backward_weighted(oct_graph *g, oct_tensor *y) {
    oct_tensor *w = oct_tensor_new(&g->arena, y->ndim, y->shape);
    oct_rng_fill_normal(&rng, w, 1.0f);
    oct_graph_backward(g, oct_sum(g, oct_mul(g, y, w)));
    return w->data;
}

/* ---- fake-quant op -------------------------------------------------------------------------- */

/* Reference STE mask and LSQ derivative, written from the definitions (not via quant.h). */
static bool ref_passes(float x, float s, int32_t z, int32_t qmin, int32_t qmax) {
    float r = rintf(x / s) + (float)z;
    return r >= (float)qmin && r <= (float)qmax;
}

static double ref_lsq_ds(float x, float s, int32_t z, int32_t qmin, int32_t qmax) {
    float v = x / s, r = rintf(v) + (float)z;
    if (r < (float)qmin) return qmin - z;
    if (r > (float)qmax) return qmax - z;
    return (double)rintf(v) - (double)v;
}

static void fake_quant_forward_and_ste(void **state) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    oct_tensor *x = param(3, 11, 2.0f);
    const float s[3] = {0.02f, 0.05f, 0.011f};
    const int32_t z[3] = {0, 10, -3};
    float ref[33];
    oct_fake_quant_rows(x->data, 3, 11, s, z, -20, 20, ref);
    oct_tensor *y = oct_fake_quant_fixed(&g, x, 3, s, z, -20, 20);
    assert_memory_equal(y->data, ref, sizeof ref);
    const float *w = backward_weighted(&g, y);
    int clamped = 0;
    for (int i = 0; i < 33; i++) {
        bool p = ref_passes(x->data[i], s[i / 11], z[i / 11], -20, 20);
        clamped += !p;
        assert_float_equal(x->grad[i], p ? w[i] : 0.0f, 0.0f);
    }
    assert_true(clamped > 3 && clamped < 30); /* both regions are exercised */
    /* per tensor */
    oct_graph_reset(&g);
    oct_tensor *y1 = oct_fake_quant_fixed(&g, x, 1, s, z, -20, 20);
    oct_fake_quant_rows(x->data, 1, 33, s, z, -20, 20, ref);
    assert_memory_equal(y1->data, ref, sizeof ref);
    oct_graph_free(&g);
}

static void fake_quant_lsq_gradient(void **state) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    for (int per_channel = 0; per_channel < 2; per_channel++) {
        int nch = per_channel ? 4 : 1, R = 4, C = 9;
        oct_tensor *x = param(R, C, 1.0f);
        oct_tensor *s = oct_tensor_param(&arena, "s", 1, &nch);
        int32_t z[4] = {0, 2, -1, 0};
        for (int c = 0; c < nch; c++) s->data[c] = 0.1f + 0.05f * (float)c;
        oct_graph_reset(&g);
        oct_tensor *y = oct_fake_quant_lsq(&g, x, s, z, -7, 7);
        float ref[36];
        oct_fake_quant_rows(x->data, nch, R * C / nch, s->data, z, -7, 7, ref);
        assert_memory_equal(y->data, ref, sizeof ref);
        const float *w = backward_weighted(&g, y);
        int n = R * C / nch;
        for (int c = 0; c < nch; c++) {
            double ds = 0.0;
            for (int i = c * n; i < (c + 1) * n; i++) {
                ds += w[i] * ref_lsq_ds(x->data[i], s->data[c], z[c], -7, 7);
                bool p = ref_passes(x->data[i], s->data[c], z[c], -7, 7);
                assert_float_equal(x->grad[i], p ? w[i] : 0.0f, 0.0f);
            }
            ds /= sqrt((double)n * (double)(7 - z[c]));
            assert_float_equal(s->grad[c], ds, 1e-5 * (1.0 + fabs(ds)));
        }
    }
    oct_graph_free(&g);
}

static void fake_quant_pact_gradient(void **state) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    oct_tensor *x = param(5, 8, 1.5f);
    int one = 1;
    oct_tensor *alpha = oct_tensor_param(&arena, "alpha", 1, &one);
    alpha->data[0] = 1.25f;
    oct_tensor *y = oct_fake_quant_pact(&g, x, alpha, 15);
    float s = 1.25f / 15.0f;
    int32_t z = 0;
    double da = 0.0;
    const float *w = backward_weighted(&g, y);
    for (int i = 0; i < 40; i++) {
        float v = x->data[i], c = v > 0.0f ? (v < 1.25f ? v : 1.25f) : 0.0f, ref;
        oct_fake_quant_rows(&c, 1, 1, &s, &z, 0, 15, &ref);
        assert_float_equal(y->data[i], ref, 0.0f);
        assert_float_equal(x->grad[i], v > 0.0f && v < 1.25f ? w[i] : 0.0f, 0.0f);
        da += v >= 1.25f ? w[i] : 0.0;
    }
    assert_float_equal(alpha->grad[0], da, 1e-5);
    oct_graph_free(&g);
}

/* ---- quantized linear op -------------------------------------------------------------------- */

typedef struct qlayer {
    oct_linear_layer fp;
    oct_act_quant in_q, out_q;
    float lo[2], hi[2];
    oct_qat_linear l;
} qlayer;

/* A layer (N,K) with min-max weights and activation quantizers of range [lo, hi]. */
static void qlayer_init(qlayer *q, int K, int N, bool hidden) {
    memset(q, 0, sizeof *q);
    q->fp.w = param(N, K, 0.3f);
    q->fp.b = oct_tensor_param(&arena, "b", 1, &N);
    oct_rng_fill_normal(&rng, q->fp.b, 0.5f);
    oct_act_quant *a[2] = {&q->in_q, &q->out_q};
    for (int i = 0; i < 2; i++) {
        a[i]->mode = OCT_QAT_A_EMA;
        assert_int_equal(oct_qscheme_init(&a[i]->scheme, 8, false, false, false, false), OCT_OK);
        oct_observer_init(&a[i]->obs, &q->lo[i], &q->hi[i], 1, 0.01f);
        for (int s = 0; s < OCT_DP_MAX_SHARDS; s++) {
            a[i]->shard_lo[s] = INFINITY;
            a[i]->shard_hi[s] = -INFINITY;
        }
    }
    q->lo[0] = -2.5f;
    q->hi[0] = 3.0f;
    q->lo[1] = 0.0f;
    q->hi[1] = 4.0f;
    q->l = (oct_qat_linear){.fp = &q->fp,
                            .in_q = &q->in_q,
                            .owns_in = true,
                            .out_q = hidden ? &q->out_q : NULL,
                            .relu = hidden,
                            .threads = 1};
    assert_int_equal(oct_qscheme_init(&q->l.wscheme, 8, true, true, true, true), OCT_OK);
}

static void qlinear_matches_integer_reference(void **state) {
    const int shapes[4][3] = {{3, 37, 19}, {1, 5, 3}, {17, 300, 33}, {8, 600, 7}}; /* B, K, N */
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.training = false;
    for (int t = 0; t < 4; t++)
        for (int hidden = 0; hidden < 2; hidden++) {
            int B = shapes[t][0], K = shapes[t][1], N = shapes[t][2];
            qlayer q;
            qlayer_init(&q, K, N, hidden);
            oct_tensor *x = param(B, K, 1.5f);
            oct_graph_reset(&g);
            oct_tensor *y = oct_qat_linear_forward(&g, x, &q.l);
            /* The reference, from the scalar rules only. */
            float sa, sy;
            int32_t za, zy, zw;
            oct_quant_params(&q.in_q.scheme, q.lo[0], q.hi[0], &sa, &za);
            oct_quant_params(&q.out_q.scheme, q.lo[1], q.hi[1], &sy, &zy);
            for (int c = 0; c < N; c++) {
                float mx = 0.0f, sw;
                for (int k = 0; k < K; k++) mx = fmaxf(mx, fabsf(q.fp.w->data[c * K + k]));
                oct_quant_params(&q.l.wscheme, -mx, mx, &sw, &zw);
                int32_t m0, shift;
                assert_int_equal(oct_requant_multiplier((double)sa * sw / sy, &m0, &shift), 0);
                for (int r = 0; r < B; r++) {
                    int64_t acc = oct_quant_bias(q.fp.b->data[c], sa, sw);
                    for (int k = 0; k < K; k++)
                        acc += (int64_t)(oct_quantize(x->data[r * K + k], sa, za, 0, 255) - za) *
                               oct_quantize(q.fp.w->data[c * K + k], sw, 0, -127, 127);
                    assert_true(acc == (int32_t)acc);
                    float expect = hidden ? oct_dequantize(oct_requantize((int32_t)acc, m0, shift,
                                                                          zy, 0, 255, true),
                                                           sy, zy)
                                          : oct_acc_to_real((int32_t)acc, sa, sw);
                    assert_float_equal(y->data[r * N + c], expect, 0.0f);
                }
            }
            oct_qat_linear_free(&q.l);
        }
    oct_graph_free(&g);
}

static void qlinear_logits_from_qlinear_acc(void **state) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    qlayer q;
    qlayer_init(&q, 45, 10, false);
    oct_tensor *x = param(9, 45, 1.0f);
    oct_tensor *y = oct_qat_linear_forward(&g, x, &q.l);
    oct_qlinear ql = {0};
    assert_int_equal(oct_qat_linear_build(&q.l, &ql), OCT_OK);
    uint8_t a[9 * 45];
    int32_t acc[90];
    float real[90];
    oct_quantize_u8(x->data, 1, 9 * 45, &ql.a_scale, &ql.a_zp, 0, 255, a);
    oct_qlinear_acc(&ql, a, 9, acc, 1);
    oct_acc_to_real_rows(acc, 9, 10, ql.a_scale, ql.w_scale, real);
    assert_memory_equal(real, y->data, sizeof real);
    oct_qlinear_free(&ql);
    oct_qat_linear_free(&q.l);
    oct_graph_free(&g);
}

/* The STE backward of a layer with uniform (min-max) or power-of-two (4-bit) weight codes
 * against a float reference on the codes. */
static void backward_case(bool pow2) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    enum { B = 6, K = 13, N = 5 };
    qlayer q;
    qlayer_init(&q, K, N, true);
    if (pow2) { /* 4 bits: 0, +-1, ..., +-64 */
        q.l.wmode = OCT_QAT_W_POW2;
        q.l.wscheme.qmin = -64;
        q.l.wscheme.qmax = 64;
    }
    q.l.owns_in = false; /* x plays a previous layer's dequantized output */
    q.hi[1] = 0.6f;      /* some outputs clamp at the top */
    oct_tensor *x = param(B, K, 1.0f);
    float sa;
    int32_t za;
    oct_quant_params(&q.in_q.scheme, q.lo[0], q.hi[0], &sa, &za);
    oct_fake_quant_rows(x->data, 1, B * K, &sa, &za, 0, 255, x->data);
    oct_tensor *y = oct_qat_linear_forward(&g, x, &q.l);
    const float *w = backward_weighted(&g, y);
    /* Reference: float linear on dequantized values, masked by ReLU and the output clamp. */
    float ws[N], wq[N * K], sy;
    int32_t zeros[N] = {0}, zy;
    int8_t codes[N * K];
    oct_qat_linear_weight_scales(&q.l, ws);
    if (pow2)
        oct_quantize_pow2_s8(q.fp.w->data, N, K, ws, 6, codes);
    else
        oct_quantize_s8(q.fp.w->data, N, K, ws, zeros, -127, 127, codes);
    oct_dequantize_s8(codes, N, K, ws, zeros, wq);
    for (int i = 0; pow2 && i < N * K; i++) /* powers of two, the largest 64 */
        assert_true(codes[i] == 0 || (abs(codes[i]) & (abs(codes[i]) - 1)) == 0);
    oct_quant_params(&q.out_q.scheme, q.lo[1], q.hi[1], &sy, &zy);
    double dx[B * K] = {0}, dw[N * K] = {0}, db[N] = {0};
    int masked = 0;
    for (int r = 0; r < B; r++)
        for (int c = 0; c < N; c++) {
            int64_t acc = oct_quant_bias(q.fp.b->data[c], sa, ws[c]);
            for (int k = 0; k < K; k++)
                acc += (int64_t)(oct_quantize(x->data[r * K + k], sa, za, 0, 255) - za) *
                       codes[c * K + k];
            float real = oct_acc_to_real((int32_t)acc, sa, ws[c]);
            bool pass = real > 0.0f && ref_passes(real, sy, zy, 0, 255);
            masked += !pass;
            double dz = pass ? w[r * N + c] : 0.0;
            db[c] += dz;
            for (int k = 0; k < K; k++) {
                dx[r * K + k] += dz * wq[c * K + k];
                dw[c * K + k] += dz * x->data[r * K + k];
            }
        }
    assert_true(masked > 0 && masked < B * N);
    for (int i = 0; i < B * K; i++) assert_float_equal(x->grad[i], dx[i], 1e-4);
    for (int i = 0; i < N * K; i++) assert_float_equal(q.fp.w->grad[i], dw[i], 1e-4);
    for (int i = 0; i < N; i++) assert_float_equal(q.fp.b->grad[i], db[i], 1e-4);
    oct_qat_linear_free(&q.l);
    oct_graph_free(&g);
}

static void qlinear_backward_is_ste(void **state) {
    backward_case(false);
    backward_case(true);
}

static void observers_update_only_when_training(void **state) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    qlayer q;
    qlayer_init(&q, 20, 8, true);
    oct_tensor *x = param(4, 20, 3.0f);
    float lo0 = q.lo[0], hi1 = q.hi[1];
    g.training = false;
    oct_qat_linear_forward(&g, x, &q.l);
    assert_true(q.lo[0] == lo0 && q.hi[1] == hi1);
    g.training = true;
    oct_graph_reset(&g);
    oct_tensor *yt = oct_qat_linear_forward(&g, x, &q.l);
    assert_true(q.lo[0] != lo0 && q.hi[1] != hi1);
    /* The training output equals the eval output on the updated state. */
    float saved[32];
    memcpy(saved, yt->data, sizeof saved);
    g.training = false;
    oct_graph_reset(&g);
    assert_memory_equal(oct_qat_linear_forward(&g, x, &q.l)->data, saved, sizeof saved);
    /* Frozen: no change. Not owned: the input observer is left alone. */
    q.in_q.obs.frozen = q.out_q.obs.frozen = true;
    g.training = true;
    lo0 = q.lo[0];
    hi1 = q.hi[1];
    oct_graph_reset(&g);
    oct_qat_linear_forward(&g, x, &q.l);
    assert_true(q.lo[0] == lo0 && q.hi[1] == hi1);
    q.in_q.obs.frozen = false;
    q.l.owns_in = false;
    oct_graph_reset(&g);
    oct_qat_linear_forward(&g, x, &q.l);
    assert_true(q.lo[0] == lo0);
    oct_qat_linear_free(&q.l);
    oct_graph_free(&g);
}

/* A data-parallel shard leaves the observers alone, quantizes with their state, and records in
 * its slots the range of its input and of its outputs' real values (after the ReLU), computed
 * here from the integer layer; the commit applies them as one update. */
static void shards_collect_ranges(void **state) {
    enum { B = 7, K = 40, N = 24 };
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    qlayer q;
    qlayer_init(&q, K, N, true);
    oct_tensor *x = param(B, K, 2.0f);
    x->data[5] = NAN; /* skipped by the ranges */
    x->data[9] = -INFINITY;
    float in_lo, in_hi, out_lo = INFINITY, out_hi = -INFINITY;
    oct_finite_range(x->data, B * K, &in_lo, &in_hi);
    oct_qlinear ql = {0};
    assert_int_equal(oct_qat_linear_build(&q.l, &ql), OCT_OK);
    uint8_t a[B * K];
    int32_t acc[B * N];
    float real[B * N], eval[B * N];
    oct_quantize_u8(x->data, 1, B * K, &ql.a_scale, &ql.a_zp, 0, 255, a);
    oct_qlinear_acc(&ql, a, B, acc, 1);
    oct_acc_to_real_rows(acc, B, N, ql.a_scale, ql.w_scale, real);
    for (int i = 0; i < B * N; i++) {
        float v = fmaxf(real[i], 0.0f);
        out_lo = fminf(out_lo, v);
        out_hi = fmaxf(out_hi, v);
    }
    oct_qlinear_free(&ql);
    memcpy(eval, oct_qat_linear_forward(&g, x, &q.l)->data, sizeof eval); /* eval mode */
    float lo[2] = {q.lo[0], q.lo[1]}, hi[2] = {q.hi[0], q.hi[1]};
    oct_graph_reset(&g);
    g.training = true;
    g.shards = 2;
    g.shard = 1;
    oct_tensor *y = oct_qat_linear_forward(&g, x, &q.l);
    assert_memory_equal(y->data, eval, sizeof eval);
    assert_memory_equal(q.lo, lo, sizeof lo);
    assert_memory_equal(q.hi, hi, sizeof hi);
    assert_true(q.in_q.shard_lo[1] == in_lo && q.in_q.shard_hi[1] == in_hi);
    assert_true(q.out_q.shard_lo[1] == out_lo && q.out_q.shard_hi[1] == out_hi);
    assert_true(q.out_q.shard_lo[0] == INFINITY);
    oct_act_quant_commit(&q.in_q);
    oct_act_quant_commit(&q.out_q);
    assert_true(q.lo[0] == (float)(lo[0] + (double)0.01f * ((double)in_lo - lo[0])));
    assert_true(q.hi[1] == (float)(hi[1] + (double)0.01f * ((double)out_hi - hi[1])));
    assert_true(q.in_q.shard_lo[1] == INFINITY && q.out_q.shard_hi[1] == -INFINITY);
    oct_qat_linear_free(&q.l);
    oct_graph_free(&g);
}

/* ---- the QAT MLP ---------------------------------------------------------------------------- */

/* Toy data: class c of 4 is a Gaussian blob around a random centre in 12-D. */
static void toy_batch(oct_rng *r, const float *centres, int n, float *x, int32_t *y) {
    for (int i = 0; i < n; i++) {
        y[i] = (int32_t)oct_rng_below(r, 4);
        for (int k = 0; k < 12; k++)
            x[i * 12 + k] = centres[y[i] * 12 + k] + 0.7f * oct_rng_normal(r);
    }
}

static void qat_mlp_learns_toy_problem(void **state) {
    oct_params params;
    oct_mlp mlp;
    relu_mlp(&params, &mlp, (int[]){12, 24, 4});
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    cfg.freeze_after = 100;
    oct_qat_mlp q;
    cfg.embed_bits = 8; /* an MLP has no embeddings */
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_EINVAL);
    cfg.embed_bits = 0;
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_OK);
    oct_optim opt;
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    h.weight_decay = 0.0f;
    assert_int_equal(oct_optim_init(&opt, OCT_OPTIM_ADAMW, &params, &arena, &h), OCT_OK);
    float centres[48];
    for (int i = 0; i < 48; i++) centres[i] = 1.5f * oct_rng_normal(&rng);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 300; step++) {
        oct_graph_reset(&g);
        g.training = true;
        oct_tensor *x = oct_tensor_new2(&g.arena, 32, 12);
        int32_t y[32];
        toy_batch(&rng, centres, 32, x->data, y);
        oct_tensor *loss = oct_cross_entropy(&g, oct_qat_mlp_forward(&q, &g, x), y);
        oct_params_zero_grad(&params);
        oct_graph_backward(&g, loss);
        oct_optim_step(&opt, 0.01f);
        if (step < 10) first += loss->data[0] / 10;
        if (step >= 290) last += loss->data[0] / 10;
    }
    assert_true(q.acts[0].obs.frozen && q.steps == 300);
    assert_true(last < 0.5 * first);
    oct_graph_reset(&g);
    g.training = false;
    oct_tensor *x = oct_tensor_new2(&g.arena, 500, 12);
    int32_t y[500];
    toy_batch(&rng, centres, 500, x->data, y);
    oct_tensor *logits = oct_qat_mlp_forward(&q, &g, x);
    int correct = 0;
    for (int i = 0; i < 500; i++) {
        int best = 0;
        for (int c = 1; c < 4; c++)
            if (logits->data[i * 4 + c] > logits->data[i * 4 + best]) best = c;
        correct += best == y[i];
    }
    assert_true(correct > 450);
    oct_graph_free(&g);
    oct_optim_free(&opt);
    oct_qat_mlp_free(&q);
    oct_params_free(&params);
}

/* One shard of a data-parallel step of a QAT MLP on rows [lo, hi) of a toy batch. */
typedef struct dp_ctx {
    oct_qat_mlp *q;
    const float *x;
    const int32_t *y;
    int B;
} dp_ctx;

static float dp_shard(void *arg, oct_graph *g, int shard, int shards) {
    const dp_ctx *c = arg;
    int lo, hi;
    oct_dp_range(c->B, shard, shards, &lo, &hi);
    oct_tensor *x = oct_tensor_new2(&g->arena, hi - lo, 12);
    memcpy(x->data, c->x + lo * 12, (size_t)(hi - lo) * 12 * sizeof(float));
    oct_tensor *loss = oct_cross_entropy(g, oct_qat_mlp_forward(c->q, g, x), c->y + lo);
    loss = oct_scale(g, loss, (float)(hi - lo) / (float)c->B);
    oct_graph_backward(g, loss);
    return loss->data[0];
}

/* Data-parallel QAT steps: the first batch runs on one graph (observers without a range); after
 * that, shards quantize with the state from before the step, observers change only at the
 * commit, and the commit applies the whole batch's range, so the input observer matches a
 * one-graph step's bit for bit. */
static void data_parallel_qat_steps(void **state) {
    (void)state;
    /* the split: as even as can be, shard 0 never empty (it counts the QAT steps) */
    const int split[][4] = {{1, 2, 1, 0}, {5, 4, 2, 1}, {97, 2, 49, 48}, {0, 3, 0, 0}};
    for (size_t i = 0; i < sizeof split / sizeof split[0]; i++) {
        int lo0, hi0, lo, hi;
        oct_dp_range(split[i][0], 0, split[i][1], &lo0, &hi0);
        oct_dp_range(split[i][0], split[i][1] - 1, split[i][1], &lo, &hi);
        assert_int_equal(lo0, 0);
        assert_int_equal(hi0, split[i][2]);
        assert_int_equal(hi - lo, split[i][3]);
        assert_int_equal(hi, split[i][0]);
    }
    oct_params params[2];
    oct_mlp mlp[2];
    oct_qat_mlp q[2];
    oct_dp one[2], two;
    int sizes[3] = {12, 24, 4};
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    for (int m = 0; m < 2; m++) {
        oct_params_init(&params[m]);
        oct_rng r;
        oct_rng_seed(&r, 5, 0);
        assert_int_equal(oct_mlp_init(&mlp[m], &arena, &params[m], sizes, 3, OCT_ACT_RELU,
                                      OCT_INIT_KAIMING_UNIFORM, &r),
                         OCT_OK);
        assert_int_equal(oct_qat_mlp_init(&q[m], &mlp[m], &arena, &params[m], &cfg), OCT_OK);
        assert_int_equal(oct_dp_init(&one[m], &params[m], 1, 9), OCT_OK);
    }
    assert_int_equal(oct_dp_init(&two, &params[1], 2, 9), OCT_OK);
    float centres[48], x[64 * 12];
    int32_t y[64];
    for (int i = 0; i < 48; i++) centres[i] = 1.5f * oct_rng_normal(&rng);
    for (int step = 0; step < 3; step++) {
        toy_batch(&rng, centres, 64, x, y);
        dp_ctx c[2] = {{&q[0], x, y, 64}, {&q[1], x, y, 64}};
        assert_int_equal(oct_qat_mlp_needs_whole_batch(&q[1]), step == 0);
        oct_dp_step(&one[0], dp_shard, &c[0]);
        float lo[2], hi[2];
        for (int p = 0; p < 2; p++) {
            lo[p] = q[1].acts[p].lo->data[0];
            hi[p] = q[1].acts[p].hi->data[0];
        }
        oct_dp_step(step == 0 ? &one[1] : &two, dp_shard, &c[1]);
        if (step > 0)
            for (int p = 0; p < 2; p++) /* nothing changes before the commit */
                assert_true(q[1].acts[p].lo->data[0] == lo[p] && q[1].acts[p].hi->data[0] == hi[p]);
        oct_qat_mlp_commit(&q[1]);
        assert_memory_equal(q[0].acts[0].lo->data, q[1].acts[0].lo->data, sizeof(float));
        assert_memory_equal(q[0].acts[0].hi->data, q[1].acts[0].hi->data, sizeof(float));
        /* The hidden range follows the data too (close, not equal: layer 0 quantized its input
         * with the range before the step). */
        float d = q[0].acts[1].hi->data[0] - q[1].acts[1].hi->data[0];
        assert_true(fabsf(d) < 0.02f * q[0].acts[1].hi->data[0]);
        if (step == 2) { /* a second commit finds nothing pending */
            float keep = q[1].acts[1].hi->data[0];
            oct_qat_mlp_commit(&q[1]);
            assert_true(q[1].acts[1].hi->data[0] == keep);
        }
    }
    oct_dp_free(&two); /* before its parameter list */
    for (int m = 0; m < 2; m++) {
        oct_dp_free(&one[m]);
        oct_qat_mlp_free(&q[m]);
        oct_params_free(&params[m]);
    }
}

static void i8_mlp_free(oct_i8_mlp *m) {
    for (int i = 0; i < m->n_layers; i++) oct_qlinear_free(&m->layers[i]);
    free(m->layers);
}

/* The integer forward a deployment would run: quantize, integer layers, int32 logits. */
static void int_forward(const oct_i8_mlp *m, const float *x, int B, int threads, float *logits) {
    int widest = 0;
    for (int i = 0; i < m->n_layers; i++)
        widest = m->layers[i].in > widest ? m->layers[i].in : widest;
    uint8_t *a = malloc((size_t)B * widest), *next = malloc((size_t)B * widest);
    int32_t *acc = malloc((size_t)B * widest * sizeof *acc);
    const oct_qlinear *l0 = &m->layers[0];
    oct_quantize_u8(x, 1, (int64_t)B * l0->in, &l0->a_scale, &l0->a_zp, m->in_qmin, m->in_qmax, a);
    for (int i = 0; i < m->n_layers; i++) {
        const oct_qlinear *l = &m->layers[i];
        if (i + 1 < m->n_layers) {
            oct_qlinear_forward(l, a, B, acc, next, threads);
            uint8_t *tmp = a;
            a = next;
            next = tmp;
        } else {
            oct_qlinear_acc(l, a, B, acc, threads);
            oct_acc_to_real_rows(acc, B, l->out, l->a_scale, l->w_scale, logits);
        }
    }
    free(a);
    free(next);
    free(acc);
}

static void to_int8_is_bit_exact(void **state) {
    const char *modes[6] = {"ema", "lsq,pact,lsq", "minmax", "ema", "ema", "ema"};
    for (int cfg_i = 0; cfg_i < 6; cfg_i++) { /* then power-of-two and kmeans 3-bit weights, and
                                                 mixed precision (2, 5 and 8 bits) per tensor */
        oct_arena_reset(&arena);
        oct_params params;
        oct_params_init(&params);
        oct_mlp mlp;
        int sizes[4] = {61, 40, 23, 10};
        assert_int_equal(oct_mlp_init(&mlp, &arena, &params, sizes, 4, OCT_ACT_RELU,
                                      OCT_INIT_KAIMING_UNIFORM, &rng),
                         OCT_OK);
        oct_qat_config cfg;
        oct_qat_config_default(&cfg);
        assert_int_equal(oct_qat_amodes_parse(modes[cfg_i], &cfg), OCT_OK);
        cfg.weight_mode = cfg_i == 1   ? OCT_QAT_W_LSQ
                          : cfg_i == 3 ? OCT_QAT_W_POW2
                          : cfg_i == 4 ? OCT_QAT_W_KMEANS
                                       : OCT_QAT_W_MINMAX;
        cfg.weight_bits = cfg_i == 2 ? 4 : cfg_i == 5 ? 2 : cfg_i >= 3 ? 3 : 8;
        if (cfg_i == 5) strcpy(cfg.layer_bits, "fc1=8,fc?=5,fc0=2,fc2=8"); /* last match wins */
        cfg.per_tensor_weights = cfg_i == 5;
        oct_qat_mlp q;
        assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_OK);
        oct_graph g;
        oct_graph_init(&g, 0, 1);
        g.training = true; /* a few steps of state */
        for (int s = 0; s < 3; s++) {
            oct_graph_reset(&g);
            oct_tensor *x = oct_tensor_new2(&g.arena, 16, 61);
            oct_rng_fill_normal(&rng, x, 1.0f);
            oct_qat_mlp_forward(&q, &g, x);
        }
        oct_i8_mlp m;
        assert_int_equal(oct_qat_mlp_to_int8(&q, 0.5f, 0.25f, &m), OCT_OK);
        assert_int_equal(m.n_layers, 3);
        assert_true(m.in_mean == 0.5f && m.in_std == 0.25f && m.in_qmax == 255);
        for (int i = 0; cfg_i == 3 && i < m.n_layers; i++) { /* 0, +-1, +-2, +-4, and all used */
            const oct_qlinear *l = &m.layers[i];
            bool seen[5] = {false};
            for (int64_t j = 0; j < (int64_t)l->out * l->in; j++) {
                int a = abs(l->codes[j]);
                assert_true(a == 0 || a == 1 || a == 2 || a == 4);
                seen[a] = true;
            }
            assert_true(seen[0] && seen[1] && seen[2] && seen[4]);
        }
        for (int i = 0; cfg_i == 4 && i < m.n_layers; i++) { /* at most 8 distinct codes */
            const oct_qlinear *l = &m.layers[i];
            bool seen[256] = {false};
            int distinct = 0;
            for (int64_t j = 0; j < (int64_t)l->out * l->in; j++) {
                distinct += !seen[l->codes[j] + 128];
                seen[l->codes[j] + 128] = true;
            }
            assert_true(distinct > 3 && distinct <= 8);
        }
        for (int i = 0; cfg_i == 5 && i < m.n_layers; i++) { /* the largest code: 2^(bits-1) - 1 */
            const oct_qlinear *l = &m.layers[i];
            const int want[3] = {1, 15, 127};
            int top = 0;
            for (int64_t j = 0; j < (int64_t)l->out * l->in; j++)
                top = abs(l->codes[j]) > top ? abs(l->codes[j]) : top;
            assert_int_equal(top, want[i]);
            for (int c = 1; c < l->out; c++) /* one scale per layer */
                assert_memory_equal(&l->w_scale[c], &l->w_scale[0], sizeof(float));
        }
        const int batches[3] = {1, 7, 256};
        const oct_i8_kernel kernels[3] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
        g.training = false;
        for (int b = 0; b < 3; b++) {
            int B = batches[b];
            oct_graph_reset(&g);
            oct_tensor *x = oct_tensor_new2(&g.arena, B, 61);
            oct_rng_fill_normal(&rng, x, 1.2f);
            oct_tensor *logits = oct_qat_mlp_forward(&q, &g, x);
            float *got = malloc((size_t)B * 10 * sizeof *got);
            for (int k = 0; k < 3; k++) {
                if (!oct_i8_kernel_available(kernels[k])) continue;
                assert_int_equal(oct_i8_set_kernel(kernels[k]), OCT_OK);
                for (int threads = 1; threads <= 2; threads++) {
                    int_forward(&m, x->data, B, threads, got);
                    assert_memory_equal(got, logits->data, (size_t)B * 10 * sizeof *got);
                }
            }
            free(got);
        }
        assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
        i8_mlp_free(&m);
        oct_graph_free(&g);
        oct_qat_mlp_free(&q);
        oct_params_free(&params);
    }
}

/* Biases too large for int32 accumulators (huge, infinite) are clamped to the limit the int8
 * loaders enforce, in the QAT forward and the export alike: the engine accepts the export and
 * reproduces the QAT logits bit for bit, and no accumulator overflows (the sanitizer build). */
static void huge_bias_clamped(void **state) {
    oct_params params;
    oct_mlp mlp;
    relu_mlp(&params, &mlp, (int[]){61, 40, 10});
    mlp.layers[0].b->data[0] = 1e30f;
    mlp.layers[0].b->data[1] = -INFINITY;
    mlp.layers[1].b->data[2] = INFINITY;
    mlp.layers[1].b->data[3] = -3e38f;
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    oct_qat_mlp q;
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    for (int train = 1; train >= 0; train--) { /* observe, then the eval forward */
        g.training = train;
        oct_graph_reset(&g);
        oct_tensor *x = oct_tensor_new2(&g.arena, 16, 61);
        oct_rng_fill_normal(&rng, x, 1.0f);
        oct_tensor *logits = oct_qat_mlp_forward(&q, &g, x);
        if (train) continue;
        oct_i8_mlp m;
        assert_int_equal(oct_qat_mlp_to_int8(&q, 0.5f, 0.25f, &m), OCT_OK);
        assert_int_equal(oct_i8_mlp_check(&m), OCT_OK);
        const int32_t top0 = (int32_t)oct_qlinear_bias_max(61),
                      top1 = (int32_t)oct_qlinear_bias_max(40);
        assert_int_equal(top0, INT32_MAX - 255 * 128 * 61);
        assert_int_equal(m.layers[0].bias_q[0], top0);
        assert_int_equal(m.layers[0].bias_q[1], -top0);
        assert_int_equal(m.layers[1].bias_q[2], top1);
        assert_int_equal(m.layers[1].bias_q[3], -top1);
        float got[16 * 10];
        int_forward(&m, x->data, 16, 1, got);
        assert_memory_equal(got, logits->data, sizeof got);
        i8_mlp_free(&m);
    }
    oct_graph_free(&g);
    oct_qat_mlp_free(&q);
    oct_params_free(&params);
}

/* An LSQ activation quantizer whose first batch has no positive value (zero point qmax: no
 * positive levels) takes its step from the levels below the zero point; it used to abort. Then the
 * export still reproduces the QAT logits. */
static void lsq_activations_without_positive_values(void **state) {
    assert_int_equal(oct_lsq_levels(3, 0, 15), 12);
    assert_int_equal(oct_lsq_levels(15, 0, 15), 15);
    assert_int_equal(oct_lsq_levels(0, -127, 127), 127);
    oct_params params;
    oct_mlp mlp;
    relu_mlp(&params, &mlp, (int[]){4, 8, 3});
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    cfg.n_act_modes = 1;
    cfg.act_mode[0] = OCT_QAT_A_LSQ;
    oct_qat_mlp q;
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    for (int train = 1; train >= 0; train--) {
        g.training = train;
        oct_graph_reset(&g);
        oct_tensor *x = oct_tensor_new2(&g.arena, 2, 4);
        for (int i = 0; i < 8; i++) x->data[i] = -0.5f - 0.1f * (float)i;
        oct_tensor *logits = oct_qat_mlp_forward(&q, &g, x);
        if (train) {
            backward_weighted(&g, logits);
            assert_true(q.acts[0].scale->data[0] > 0.0f && isfinite(q.acts[0].scale->data[0]));
            continue;
        }
        oct_i8_mlp m;
        assert_int_equal(oct_qat_mlp_to_int8(&q, 0.5f, 0.25f, &m), OCT_OK);
        float got[2 * 3];
        int_forward(&m, x->data, 2, 1, got);
        assert_memory_equal(got, logits->data, sizeof got);
        i8_mlp_free(&m);
    }
    oct_graph_free(&g);
    oct_qat_mlp_free(&q);
    oct_params_free(&params);
}

int main(void) {
    oct_arena_init(&arena, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(fake_quant_forward_and_ste, setup),
        cmocka_unit_test_setup(fake_quant_lsq_gradient, setup),
        cmocka_unit_test_setup(fake_quant_pact_gradient, setup),
        cmocka_unit_test_setup(qlinear_matches_integer_reference, setup),
        cmocka_unit_test_setup(qlinear_logits_from_qlinear_acc, setup),
        cmocka_unit_test_setup(qlinear_backward_is_ste, setup),
        cmocka_unit_test_setup(observers_update_only_when_training, setup),
        cmocka_unit_test_setup(shards_collect_ranges, setup),
        cmocka_unit_test_setup(qat_mlp_learns_toy_problem, setup),
        cmocka_unit_test_setup(data_parallel_qat_steps, setup),
        cmocka_unit_test_setup(to_int8_is_bit_exact, setup),
        cmocka_unit_test_setup(huge_bias_clamped, setup),
        cmocka_unit_test_setup(lsq_activations_without_positive_values, setup),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    oct_arena_free(&arena);
    return failed;
}
