/* Tests for src/ops: a finite-difference gradient check of every op in the op table on several
 * shapes (gradcheck.h), forward values against naive float64 references, gradient
 * accumulation, dropout statistics, and a last test that fails for any op in the table that no
 * gradient check exercised. New ops add a check here; the last test keeps that honest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "octet/nonlinear.h"
#include "octet/qat.h"
#include "ops/ops_internal.h"

static oct_arena arena; /* inputs of the current test, reset by setup */
static oct_rng rng;

static int setup(void **state) {
    oct_arena_reset(&arena);
    oct_rng_seed(&rng, 1234, 5);
    return 0;
}

/* A parameter with N(0,1) data: PARAM(2, 3) is a (2,3) tensor. */
#define PARAM(...)                                                                                 \
    gradcheck_param(&arena, &rng, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)),               \
                    (int[]){__VA_ARGS__}, 1.0f)

/* Runs gradcheck with default tolerances and fails the test on a mismatch. */
#define CHECK(label, f, ctx, ...)                                                                  \
    do {                                                                                           \
        oct_tensor *in_[] = {__VA_ARGS__};                                                         \
        assert_true(gradcheck(label, f, ctx, (int)(sizeof in_ / sizeof in_[0]), in_, NULL));       \
    } while (0)

/* ---- gradient checks ------------------------------------------------------------------------ */

static oct_tensor *f_matmul(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const bool *t = ctx;
    return oct_matmul(g, in[0], in[1], t[0], t[1]);
}

static oct_tensor *f_matmul_self(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_matmul(g, in[0], in[0], false, true); /* x x^T: x used twice */
}

static void grad_matmul(void **state) {
    const int dims[2][3] = {{3, 4, 5}, {1, 7, 2}}; /* M, K, N */
    for (int s = 0; s < 2; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                int M = dims[s][0], K = dims[s][1], N = dims[s][2];
                bool t[2] = {ta, tb};
                oct_tensor *a = ta ? PARAM(K, M) : PARAM(M, K);
                oct_tensor *b = tb ? PARAM(N, K) : PARAM(K, N);
                CHECK("matmul", f_matmul, t, a, b);
            }
    CHECK("matmul x x^T", f_matmul_self, NULL, PARAM(4, 6));
}

static oct_tensor *f_linear(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_linear(g, in[0], in[1], ctx ? in[2] : NULL);
}

static void grad_linear(void **state) {
    int on = 1;
    CHECK("linear 2-D", f_linear, &on, PARAM(5, 4), PARAM(3, 4), PARAM(3));
    CHECK("linear 3-D", f_linear, &on, PARAM(2, 3, 6), PARAM(5, 6), PARAM(5));
    CHECK("linear no bias", f_linear, NULL, PARAM(2, 3, 6), PARAM(5, 6));
    CHECK("linear no bias 2-D", f_linear, NULL, PARAM(1, 8), PARAM(2, 8));
}

static oct_tensor *f_add(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_add(g, in[0], in[1]);
}

static oct_tensor *f_mul(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_mul(g, in[0], in[1]);
}

static oct_tensor *f_square(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_mul(g, in[0], in[0]);
}

static oct_tensor *f_double(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_add(g, in[0], in[0]);
}

/* Same shape, a bias, trailing dims, a (1,C) row, a single element; 1-D to 4-D. */
static void grad_add_mul(void **state) {
    gradcheck_fn fs[2] = {f_add, f_mul};
    for (int k = 0; k < 2; k++) {
        CHECK("same 1-D", fs[k], NULL, PARAM(7), PARAM(7));
        CHECK("same 3-D", fs[k], NULL, PARAM(2, 3, 4), PARAM(2, 3, 4));
        CHECK("bias", fs[k], NULL, PARAM(2, 3, 4), PARAM(4));
        CHECK("trailing", fs[k], NULL, PARAM(2, 3, 4), PARAM(3, 4));
        CHECK("row", fs[k], NULL, PARAM(5, 3), PARAM(1, 3));
        CHECK("scalar", fs[k], NULL, PARAM(2, 2, 3, 2), PARAM(1));
        CHECK("4-D bias", fs[k], NULL, PARAM(2, 2, 3, 2), PARAM(2));
    }
    CHECK("x*x", f_square, NULL, PARAM(3, 5));
    CHECK("x+x", f_double, NULL, PARAM(3, 5));
}

static oct_tensor *f_scale(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_scale(g, in[0], -2.5f);
}

static oct_tensor *f_sum(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_sum(g, in[0]);
}

static oct_tensor *f_mean(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_mean(g, in[0]);
}

static void grad_scale_sum_mean(void **state) {
    CHECK("scale 1-D", f_scale, NULL, PARAM(9));
    CHECK("scale 3-D", f_scale, NULL, PARAM(2, 3, 4));
    CHECK("sum 1-D", f_sum, NULL, PARAM(9));
    CHECK("sum 4-D", f_sum, NULL, PARAM(2, 3, 2, 2));
    CHECK("mean 1-D", f_mean, NULL, PARAM(9));
    CHECK("mean 3-D", f_mean, NULL, PARAM(4, 3, 5));
}

typedef oct_tensor *(*unary_op)(oct_graph *g, oct_tensor *x);

static oct_tensor *f_unary(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return (*(unary_op *)ctx)(g, in[0]);
}

/* Moves x at least 0.05 away from 0 (ReLU's kink) so central differences stay on one side. */
static oct_tensor *off_kink(oct_tensor *x) {
    for (int64_t i = 0; i < x->size; i++) x->data[i] += x->data[i] >= 0 ? 0.05f : -0.05f;
    return x;
}

static void grad_activations(void **state) {
    unary_op ops[] = {oct_relu, oct_gelu, oct_gelu_erf, oct_tanh, oct_sigmoid, oct_softmax};
    const char *names[] = {"relu", "gelu", "gelu_erf", "tanh", "sigmoid", "softmax"};
    for (int k = 0; k < 6; k++) {
        CHECK(names[k], f_unary, &ops[k], off_kink(PARAM(11)));
        CHECK(names[k], f_unary, &ops[k], off_kink(PARAM(3, 7)));
        CHECK(names[k], f_unary, &ops[k], off_kink(PARAM(2, 3, 5)));
        CHECK(names[k], f_unary, &ops[k], off_kink(PARAM(2, 2, 2, 3)));
    }
}

static oct_tensor *f_cross_entropy(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_cross_entropy(g, in[0], ctx);
}

/* Targets and a confidence penalty for f_cross_entropy_penalized. */
typedef struct penalty_ctx {
    int32_t targets[16];
    float beta;
} penalty_ctx;

static oct_tensor *f_cross_entropy_penalized(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const penalty_ctx *c = ctx;
    return oct_cross_entropy_penalized(g, in[0], c->targets, c->beta, NULL);
}

static void grad_cross_entropy(void **state) {
    const int dims[3][2] = {{1, 2}, {6, 5}, {16, 13}};
    for (int s = 0; s < 3; s++) {
        penalty_ctx c = {.beta = 0.0f};
        for (int r = 0; r < dims[s][0]; r++)
            c.targets[r] = (int32_t)oct_rng_below(&rng, (uint32_t)dims[s][1]);
        CHECK("cross_entropy", f_cross_entropy, c.targets, PARAM(dims[s][0], dims[s][1]));
        for (int k = 0; k < 2; k++) {
            c.beta = k ? 0.7f : 0.1f;
            CHECK("cross_entropy_penalized", f_cross_entropy_penalized, &c,
                  PARAM(dims[s][0], dims[s][1]));
        }
    }
}

typedef struct shape_ctx {
    int ndim;
    int shape[OCT_MAX_DIMS];
} shape_ctx;

/* Two reshapes of x (one through tanh) added: x's gradient gathers both. */
static oct_tensor *f_reshape(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const shape_ctx *s = ctx;
    oct_tensor *y = oct_reshape(g, in[0], s->ndim, s->shape);
    return oct_add(g, y, oct_reshape(g, oct_tanh(g, in[0]), s->ndim, s->shape));
}

static oct_tensor *f_transpose(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_transpose(g, in[0]);
}

static void grad_reshape_transpose(void **state) {
    shape_ctx to2 = {2, {6, 4}}, to1 = {1, {24}}, to4 = {4, {2, 1, 3, 4}};
    CHECK("reshape 3-D to 2-D", f_reshape, &to2, PARAM(2, 3, 4));
    CHECK("reshape 2-D to 1-D", f_reshape, &to1, PARAM(4, 6));
    CHECK("reshape 1-D to 4-D", f_reshape, &to4, PARAM(24));
    CHECK("transpose 2-D", f_transpose, NULL, PARAM(3, 5));
    CHECK("transpose 3-D", f_transpose, NULL, PARAM(2, 4, 3));
    CHECK("transpose 4-D", f_transpose, NULL, PARAM(2, 2, 1, 5));
}

static oct_tensor *f_dropout(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_dropout(g, in[0], *(float *)ctx);
}

static void grad_dropout(void **state) {
    float p = 0.3f, p2 = 0.7f;
    CHECK("dropout 1-D", f_dropout, &p, PARAM(40));
    CHECK("dropout 3-D", f_dropout, &p2, PARAM(3, 4, 5));
}

static oct_tensor *f_layernorm(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_layernorm(g, in[0], in[1], in[2], 1e-5f);
}

static void grad_layernorm(void **state) {
    CHECK("layernorm 2-D", f_layernorm, NULL, PARAM(4, 8), PARAM(8), PARAM(8));
    CHECK("layernorm 3-D", f_layernorm, NULL, PARAM(2, 3, 5), PARAM(5), PARAM(5));
    CHECK("layernorm 1-D", f_layernorm, NULL, PARAM(16), PARAM(16), PARAM(16));
    CHECK("layernorm C=2", f_layernorm, NULL, PARAM(3, 2), PARAM(2), PARAM(2));
}

static oct_tensor *f_embedding(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const shape_ctx *s = ctx;
    static const int32_t ids[12] = {3, 0, 3, 1, 4, 4, 2, 0, 1, 3, 3, 2}; /* repeats */
    return oct_embedding(g, in[0], ids, s->ndim, s->shape);
}

static void grad_embedding(void **state) {
    shape_ctx one = {1, {12}}, two = {2, {3, 4}}, three = {3, {2, 3, 2}};
    CHECK("embedding 1-D ids", f_embedding, &one, PARAM(5, 3));
    CHECK("embedding 2-D ids", f_embedding, &two, PARAM(6, 4));
    CHECK("embedding 3-D ids", f_embedding, &three, PARAM(5, 2));
}

static oct_tensor *f_concat(oct_graph *g, oct_tensor *const *in, void *ctx) {
    int n = *(int *)ctx;
    oct_tensor *xs[OCT_MAX_INPUTS] = {in[0], in[1], in[0], in[2]}; /* in[0] used twice */
    return oct_concat(g, n, xs);
}

typedef struct slice_ctx {
    int start, len;
} slice_ctx;

static oct_tensor *f_slice(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const slice_ctx *s = ctx;
    return oct_slice(g, in[0], s->start, s->len);
}

static void grad_concat_slice(void **state) {
    int two = 2, three = 3, four = 4;
    CHECK("concat 2", f_concat, &two, PARAM(3, 2), PARAM(3, 4), PARAM(3, 1));
    CHECK("concat 3", f_concat, &three, PARAM(2, 2, 3), PARAM(2, 2, 1), PARAM(2, 2, 5));
    CHECK("concat 4", f_concat, &four, PARAM(5), PARAM(2), PARAM(3));
    slice_ctx mid = {1, 3}, all = {0, 6}, last = {5, 1};
    CHECK("slice mid", f_slice, &mid, PARAM(4, 6));
    CHECK("slice all", f_slice, &all, PARAM(2, 3, 6));
    CHECK("slice last", f_slice, &last, PARAM(6));
}

static oct_tensor *f_attention(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_attention(g, in[0], *(int *)ctx);
}

static void grad_attention(void **state) {
    const int cfg[5][4] = {{1, 1, 4, 1}, {2, 5, 8, 2}, {1, 7, 12, 3}, {2, 4, 16, 4}, {1, 9, 6, 1}};
    for (int s = 0; s < 5; s++) {
        int nh = cfg[s][3];
        CHECK("attention", f_attention, &nh, PARAM(cfg[s][0], cfg[s][1], 3 * cfg[s][2]));
    }
}

static oct_tensor *f_rope(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_rope(g, in[0], *(int *)ctx);
}

static oct_tensor *f_rope_attention(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_attention(g, oct_rope(g, in[0], *(int *)ctx), *(int *)ctx);
}

static void grad_rope(void **state) {
    const int cfg[3][4] = {{1, 3, 4, 1}, {2, 5, 8, 2}, {1, 6, 12, 2}};
    for (int s = 0; s < 3; s++) {
        int nh = cfg[s][3];
        CHECK("rope", f_rope, &nh, PARAM(cfg[s][0], cfg[s][1], 3 * cfg[s][2]));
        CHECK("rope + attention", f_rope_attention, &nh,
              PARAM(cfg[s][0], cfg[s][1], 3 * cfg[s][2]));
    }
}

/* ---- quantization ops: gradient checks of the smooth parts ---------------------------------
 * Rounding makes fake-quant piecewise constant, so finite differences only see its STE
 * gradient where the function really is smooth: with steps far below the difference step
 * (fixed and PACT with huge code ranges), in the clamped region (LSQ, where y = s (qmax - z)
 * is linear in s; with one element per channel and qmax = 1 the LSQ factor g is 1), and for
 * the logits of a quantized linear layer as a function of its bias (int32 bias steps of
 * s_a s_w). The STE inside the rounding range is checked against independent references in
 * tests/test_qat.c. */

typedef struct fq_ctx {
    int nch;
    float s[4];
    int32_t z[4], qmin, qmax;
} fq_ctx;

static oct_tensor *f_fake_quant_fixed(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const fq_ctx *c = ctx;
    return oct_fake_quant_fixed(g, in[0], c->nch, c->s, c->z, c->qmin, c->qmax);
}

static oct_tensor *f_fake_quant_lsq(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const fq_ctx *c = ctx;
    return oct_fake_quant_lsq(g, in[0], in[1], c->z, c->qmin, c->qmax);
}

static oct_tensor *f_fake_quant_pact(oct_graph *g, oct_tensor *const *in, void *ctx) {
    return oct_fake_quant_pact(g, in[0], in[1], 1 << 20);
}

static void grad_fake_quant(void **state) {
    /* Fixed: steps of 1e-5 (and 2e-5, 5e-6 per channel); |x| > ~10 is clamped (gradient 0). */
    fq_ctx t = {1, {1e-5f}, {3}, -(1 << 20), 1 << 20};
    oct_tensor *x = gradcheck_param(&arena, &rng, 2, (int[]){4, 6}, 8.0f);
    CHECK("fake_quant fixed per tensor", f_fake_quant_fixed, &t, x);
    fq_ctx pc = {3, {1e-5f, 2e-5f, 5e-6f}, {0, -7, 100}, -(1 << 20), 1 << 20};
    CHECK("fake_quant fixed per channel", f_fake_quant_fixed, &pc, PARAM(3, 5));
    /* LSQ, clamped region: one element per channel, codes [-1, 1], so g = 1 / sqrt(1 * 1). */
    fq_ctx lc = {4, {0}, {0, 0, 0, 0}, -1, 1};
    oct_tensor *lx = gradcheck_param(&arena, &rng, 2, (int[]){4, 1}, 0.0f);
    oct_tensor *ls = gradcheck_param(&arena, &rng, 1, (int[]){4}, 0.0f);
    const float xs[4] = {1.0f, -2.0f, 3.0f, -0.9f}, ss[4] = {0.1f, 0.2f, 0.15f, 0.3f};
    memcpy(lx->data, xs, sizeof xs);
    memcpy(ls->data, ss, sizeof ss);
    CHECK("fake_quant lsq clamped", f_fake_quant_lsq, &lc, lx, ls);
    /* PACT with 2^20 codes: smooth away from the kinks at 0 and alpha. */
    oct_tensor *px = gradcheck_param(&arena, &rng, 2, (int[]){2, 5}, 0.0f);
    oct_tensor *alpha = gradcheck_param(&arena, &rng, 1, (int[]){1}, 0.0f);
    const float pxs[10] = {-1.3f, -0.5f, 0.2f, 0.35f, 0.6f, 0.8f, 1.4f, 2.0f, 0.45f, -0.05f};
    memcpy(px->data, pxs, sizeof pxs);
    alpha->data[0] = 1.0f;
    CHECK("fake_quant pact", f_fake_quant_pact, NULL, px, alpha);
}

typedef struct qlinear_ctx {
    oct_tensor *x; /* (B,K) input, not checked */
    oct_linear_layer fp;
    oct_act_quant in_q;
    oct_qat_linear l;
    float lo, hi;
} qlinear_ctx;

static oct_tensor *f_qlinear(oct_graph *g, oct_tensor *const *in, void *ctx) {
    qlinear_ctx *c = ctx;
    c->fp.b = in[0];
    return oct_qat_linear_forward(g, c->x, &c->l);
}

static void grad_qlinear(void **state) {
    enum { B = 5, K = 7, N = 3 };
    qlinear_ctx c;
    memset(&c, 0, sizeof c);
    c.x = oct_tensor_new2(&arena, B, K);
    c.fp.w = oct_tensor_new2(&arena, N, K);
    oct_rng_fill_normal(&rng, c.x, 1.0f);
    oct_rng_fill_normal(&rng, c.fp.w, 1.0f);
    c.in_q.mode = OCT_QAT_A_MINMAX;
    assert_int_equal(oct_qscheme_init(&c.in_q.scheme, 8, false, false, false, false), OCT_OK);
    oct_observer_init(&c.in_q.obs, &c.lo, &c.hi, 1, 0.0f);
    c.lo = -6.0f;
    c.hi = 6.0f;
    c.in_q.obs.frozen = true; /* the function must not change between evaluations */
    c.l = (oct_qat_linear){.fp = &c.fp, .in_q = &c.in_q, .owns_in = true, .threads = 1};
    assert_int_equal(oct_qscheme_init(&c.l.wscheme, 8, true, true, true, true), OCT_OK);
    /* Bias steps are s_a s_w ~ 5e-4: a difference step of 0.1 keeps the staircase error small. */
    gradcheck_opts o = {.eps = 0.1};
    oct_tensor *in[] = {PARAM(N)};
    assert_true(gradcheck("qlinear logits bias", f_qlinear, &c, 1, in, &o));
    oct_qat_linear_free(&c.l);
}

/* ---- forward values against naive references ------------------------------------------------ */

/* A graph for forward tests, recording nothing unless the inputs are parameters. */
static oct_graph graph(void) {
    oct_graph g;
    oct_graph_init(&g, 0, 99);
    return g;
}

static oct_tensor *input(int ndim, const int *shape) {
    oct_tensor *t = oct_tensor_new(&arena, ndim, shape);
    oct_rng_fill_normal(&rng, t, 2.0f);
    return t;
}

static void value_softmax_cross_entropy(void **state) {
    oct_graph g = graph();
    int shape[2] = {5, 9};
    oct_tensor *x = input(2, shape);
    x->data[3] = 1000.0f; /* a huge logit must not overflow */
    int32_t targets[5] = {3, 0, 8, 4, 4};
    oct_tensor *y = oct_softmax(&g, x);
    oct_tensor *loss = oct_cross_entropy(&g, x, targets);
    double ce = 0.0, entropy = 0.0;
    for (int r = 0; r < 5; r++) {
        const float *xr = x->data + r * 9;
        double m = xr[0], s = 0.0;
        for (int j = 1; j < 9; j++) m = fmax(m, xr[j]);
        for (int j = 0; j < 9; j++) s += exp(xr[j] - m);
        for (int j = 0; j < 9; j++) {
            assert_float_equal(y->data[r * 9 + j], exp(xr[j] - m) / s, 1e-6);
            entropy -= exp(xr[j] - m) / s * (xr[j] - m - log(s));
        }
        ce += m + log(s) - xr[targets[r]];
    }
    assert_true(isfinite(loss->data[0]));
    assert_float_equal(loss->data[0], ce / 5, 1e-5);
    /* the penalized objective: the same cross-entropy less beta times the mean entropy; beta 0
     * gives oct_cross_entropy's bits */
    float plain;
    oct_tensor *pen = oct_cross_entropy_penalized(&g, x, targets, 0.25f, &plain);
    assert_float_equal(plain, ce / 5, 1e-5);
    assert_float_equal(pen->data[0], (ce - 0.25 * entropy) / 5, 1e-5);
    assert_true(oct_cross_entropy_penalized(&g, x, targets, 0.0f, NULL)->data[0] == loss->data[0]);
    assert_int_equal(g.n_nodes, 0); /* no input requires a gradient */
    oct_graph_free(&g);
}

/* The penalized loss and its gradient do not change when every logit of a row is shifted by the
 * same amount, even a large one (softmax does not change): logits {0, 1, 2} and {10000, 10001,
 * 10002}, target 0, beta 1 (entropy 0.832396; the gradient of a row sums to 0). */
static void value_penalty_shift(void **state) {
    float obj[2], ce[2], grad[2][3];
    for (int k = 0; k < 2; k++) {
        oct_graph g = graph();
        oct_tensor *x = PARAM(1, 3);
        for (int j = 0; j < 3; j++) x->data[j] = (k ? 10000.0f : 0.0f) + (float)j;
        memset(x->grad, 0, 3 * sizeof(float));
        int32_t target = 0;
        oct_tensor *loss = oct_cross_entropy_penalized(&g, x, &target, 1.0f, &ce[k]);
        oct_graph_backward(&g, loss);
        obj[k] = loss->data[0];
        memcpy(grad[k], x->grad, sizeof grad[k]);
        assert_float_equal(ce[k] - obj[k], 0.832396, 1e-3);
        assert_float_equal(grad[k][0] + grad[k][1] + grad[k][2], 0.0, 1e-3);
        oct_graph_free(&g);
    }
    for (int j = 0; j < 3; j++) assert_float_equal(grad[1][j], grad[0][j], 1e-3);
}

static void value_layernorm_gelu(void **state) {
    oct_graph g = graph();
    int shape[3] = {2, 3, 10}, c = 10;
    oct_tensor *x = input(3, shape), *gamma = input(1, &c), *beta = input(1, &c);
    oct_tensor *y = oct_layernorm(&g, x, gamma, beta, 1e-5f);
    for (int r = 0; r < 6; r++) {
        const float *xr = x->data + r * 10;
        double m = 0.0, v = 0.0;
        for (int j = 0; j < 10; j++) m += xr[j] / 10.0;
        for (int j = 0; j < 10; j++) v += (xr[j] - m) * (xr[j] - m) / 10.0;
        for (int j = 0; j < 10; j++) {
            double ref = (xr[j] - m) / sqrt(v + 1e-5) * gamma->data[j] + beta->data[j];
            assert_float_equal(y->data[r * 10 + j], ref, 1e-4 * (1.0 + fabs(ref)));
        }
    }
    oct_tensor *h = oct_gelu(&g, x);
    for (int64_t i = 0; i < x->size; i++) {
        double v = x->data[i];
        double ref = 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        assert_float_equal(h->data[i], ref, 1e-6 * (1.0 + fabs(ref)));
    }
    /* the exact form against libm's double erfc, over the inputs and across both tails */
    oct_tensor *e = oct_gelu_erf(&g, x);
    for (int64_t i = 0; i < x->size; i++) {
        double v = x->data[i], ref = 0.5 * v * erfc(-v / sqrt(2.0));
        assert_float_equal(e->data[i], ref, 1e-6 * (1.0 + fabs(ref)));
    }
    float wide[7] = {-30.0f, -9.0f, -3.5f, -1e-3f, 0.0f, 4.0f, 30.0f}, out[7];
    oct_nl_gelu_erf(wide, 7, out);
    for (int i = 0; i < 7; i++) {
        double v = wide[i], ref = 0.5 * v * erfc(-v / sqrt(2.0));
        assert_float_equal(out[i], ref, 1e-6 * (1.0 + fabs(ref)));
    }
    /* far in the negative tail both forms and their derivatives are 0, as in libm (the factor
     * each clamps at, about 1e-35, used to make x near -FLT_MAX come out near -2) */
    float far[3] = {-1e35f, -FLT_MAX, -INFINITY}, ones[3] = {1, 1, 1}, yf[3], d[3];
    void (*const fwd[2])(const float *, int64_t, float *) = {oct_nl_gelu, oct_nl_gelu_erf};
    void (*const bwd[2])(const float *, const float *, int64_t,
                         float *) = {oct_nl_gelu_backward, oct_nl_gelu_erf_backward};
    for (int f = 0; f < 2; f++) {
        memset(d, 0, sizeof d);
        fwd[f](far, 3, yf);
        bwd[f](far, ones, 3, d);
        for (int i = 0; i < 3; i++)
            if (yf[i] != 0.0f || d[i] != 0.0f)
                fail_msg("form %d: gelu(%g) = %g, derivative %g", f, (double)far[i], (double)yf[i],
                         (double)d[i]);
        float up[3] = {1e35f, FLT_MAX, INFINITY}; /* and x with derivative 1 at the other end */
        memset(d, 0, sizeof d);
        fwd[f](up, 3, yf);
        bwd[f](up, ones, 3, d);
        for (int i = 0; i < 3; i++)
            if (yf[i] != up[i] || d[i] != 1.0f)
                fail_msg("form %d: gelu(%g) = %g, derivative %g", f, (double)up[i], (double)yf[i],
                         (double)d[i]);
    }
    oct_graph_free(&g);
}

/* Naive float64 causal attention: out (B,T,C) from qkv (B,T,3C). */
static void attention_ref(double *out, const float *qkv, int B, int T, int C, int nh) {
    int hs = C / nh;
    double att[64];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((int64_t)b * T + t) * 3 * C + h * hs;
                double m = -INFINITY, s = 0.0;
                for (int u = 0; u <= t; u++) {
                    const float *k = qkv + ((int64_t)b * T + u) * 3 * C + C + h * hs;
                    double d = 0.0;
                    for (int i = 0; i < hs; i++) d += (double)q[i] * k[i];
                    att[u] = d / sqrt(hs);
                    m = fmax(m, att[u]);
                }
                for (int u = 0; u <= t; u++) s += att[u] = exp(att[u] - m);
                for (int i = 0; i < hs; i++) {
                    double o = 0.0;
                    for (int u = 0; u <= t; u++)
                        o += att[u] / s * qkv[((int64_t)b * T + u) * 3 * C + 2 * C + h * hs + i];
                    out[((int64_t)b * T + t) * C + h * hs + i] = o;
                }
            }
}

static void value_attention_causal(void **state) {
    oct_graph g = graph();
    enum { B = 2, T = 9, C = 12, NH = 3 };
    int shape[3] = {B, T, 3 * C};
    oct_tensor *qkv = input(3, shape);
    oct_tensor *y = oct_attention(&g, qkv, NH);
    double ref[B * T * C];
    attention_ref(ref, qkv->data, B, T, C, NH);
    for (int i = 0; i < B * T * C; i++) assert_float_equal(y->data[i], ref[i], 1e-4);
    /* Changing q, k, v at positions after t must leave the output at 0..t bit for bit. */
    for (int t = 0; t < T - 1; t++) {
        for (int b = 0; b < B; b++)
            for (int j = 0; j < 3 * C; j++) qkv->data[((b * T) + t + 1) * 3 * C + j] += 1.0f;
        oct_tensor *y2 = oct_attention(&g, qkv, NH);
        for (int b = 0; b < B; b++) {
            int64_t n = (int64_t)(t + 1) * C, off = (int64_t)b * T * C;
            assert_memory_equal(y2->data + off, y->data + off, (size_t)n * sizeof(float));
            assert_memory_not_equal(y2->data + off + n, y->data + off + n, C * sizeof(float));
        }
        y = y2;
    }
    oct_graph_free(&g);
}

/* RoPE leaves position 0 and the values alone, keeps norms, and makes q_t . k_u depend only on
 * t - u: the same pair of vectors placed at (t, u) and (t + d, u + d) scores the same. */
static void value_rope_relative(void **state) {
    oct_graph g = graph();
    enum { T = 9, C = 8, NH = 2, HS = C / NH };
    int shape[3] = {1, T, 3 * C};
    oct_tensor *qkv = input(3, shape);
    for (int t = 1; t < T; t++) /* every row the same q, k, v */
        memcpy(qkv->data + t * 3 * C, qkv->data, 3 * C * sizeof(float));
    oct_tensor *y = oct_rope(&g, qkv, NH);
    assert_memory_equal(y->data, qkv->data, 3 * C * sizeof(float));
    for (int t = 0; t < T; t++) {
        assert_memory_equal(y->data + t * 3 * C + 2 * C, qkv->data + 2 * C, C * sizeof(float));
        double n0 = 0, n1 = 0;
        for (int i = 0; i < C; i++) {
            n0 += (double)qkv->data[i] * qkv->data[i];
            n1 += (double)y->data[t * 3 * C + i] * y->data[t * 3 * C + i];
        }
        assert_float_equal(n1, n0, 1e-5 * n0);
    }
    for (int h = 0; h < NH; h++)
        for (int d = 0; d < 4; d++) {
            double s[2];
            for (int k = 0; k < 2; k++) { /* q at 3 + k d, k at 1 + k d */
                const float *q = y->data + (3 + k * d) * 3 * C + h * HS;
                const float *kk = y->data + (1 + k * d) * 3 * C + C + h * HS;
                s[k] = 0;
                for (int i = 0; i < HS; i++) s[k] += (double)q[i] * kk[i];
            }
            assert_float_equal(s[1], s[0], 1e-5);
        }
    /* A different angle at each position: rows 1 and 2 differ. */
    assert_memory_not_equal(y->data + 3 * C, y->data + 6 * C, C * sizeof(float));
    oct_graph_free(&g);
}

/* ---- gradient accumulation, recording rules, dropout ---------------------------------------- */

static void grad_accumulates(void **state) {
    oct_graph g = graph();
    oct_tensor *x = PARAM(3, 4);
    for (int step = 1; step <= 2; step++) { /* dL/dx = 1 + 3 per step; steps add up */
        oct_tensor *loss = oct_add(&g, oct_sum(&g, x), oct_sum(&g, oct_scale(&g, x, 3.0f)));
        oct_graph_backward(&g, loss);
        for (int i = 0; i < 12; i++) assert_float_equal(x->grad[i], 4.0f * step, 0.0f);
        oct_graph_reset(&g);
    }
    oct_tensor *h = oct_tanh(&g, x); /* a non-parameter used twice */
    memset(x->grad, 0, 12 * sizeof(float));
    oct_graph_backward(&g, oct_sum(&g, oct_add(&g, h, h)));
    for (int i = 0; i < 12; i++)
        assert_float_equal(x->grad[i], 2.0f * (1.0f - h->data[i] * h->data[i]), 1e-6);
    oct_graph_free(&g);
}

static void no_grad_records_nothing(void **state) {
    oct_graph g = graph();
    oct_tensor *x = PARAM(2, 3);
    g.no_grad = true;
    oct_tensor *y = oct_gelu(&g, oct_reshape(&g, x, 1, (int[]){6}));
    assert_int_equal(g.n_nodes, 0);
    assert_false(y->requires_grad);
    g.no_grad = false;
    oct_tensor *r = oct_reshape(&g, x, 1, (int[]){6});
    assert_ptr_equal(r->data, x->data); /* a view of the data with its own gradient */
    assert_ptr_not_equal(r->grad, x->grad);
    assert_int_equal(g.n_nodes, 1);
    oct_graph_free(&g);
}

static void dropout_statistics(void **state) {
    oct_graph g = graph();
    int n = 200000;
    oct_tensor *x = oct_tensor_new(&arena, 1, &n);
    for (int i = 0; i < n; i++) x->data[i] = 1.0f;
    g.training = true;
    oct_tensor *y = oct_dropout(&g, x, 0.25f), *y2 = oct_dropout(&g, x, 0.25f);
    int zeros = 0, same = 0;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        zeros += y->data[i] == 0.0f;
        if (y->data[i] != 0.0f) assert_float_equal(y->data[i], 1.0f / 0.75f, 0.0f);
        sum += y->data[i];
        same += y->data[i] == y2->data[i];
    }
    assert_in_range(zeros, n / 4 - 1000, n / 4 + 1000);
    assert_float_equal(sum / n, 1.0, 0.01);
    assert_true(same < n * 0.7); /* fresh masks: agreement 0.75^2 + 0.25^2 = 0.625 */
    g.training = false;
    assert_ptr_equal(oct_dropout(&g, x, 0.25f), x);
    g.training = true;
    assert_ptr_equal(oct_dropout(&g, x, 0.0f), x);
    oct_graph_free(&g);
}

/* ---- last: every op in the table has a gradient check --------------------------------------- */

static void every_op_gradchecked(void **state) {
    char missing[1024] = "";
    for (int i = 0; i < oct_op_count(); i++)
        if (!gradcheck_op_seen(i)) {
            strncat(missing, " ", sizeof missing - strlen(missing) - 1);
            strncat(missing, oct_op_name(i), sizeof missing - strlen(missing) - 1);
        }
    if (missing[0]) fail_msg("ops without a gradient check:%s", missing);
}

int main(void) {
    oct_arena_init(&arena, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(grad_matmul, setup),
        cmocka_unit_test_setup(grad_linear, setup),
        cmocka_unit_test_setup(grad_add_mul, setup),
        cmocka_unit_test_setup(grad_scale_sum_mean, setup),
        cmocka_unit_test_setup(grad_activations, setup),
        cmocka_unit_test_setup(grad_cross_entropy, setup),
        cmocka_unit_test_setup(grad_reshape_transpose, setup),
        cmocka_unit_test_setup(grad_dropout, setup),
        cmocka_unit_test_setup(grad_layernorm, setup),
        cmocka_unit_test_setup(grad_embedding, setup),
        cmocka_unit_test_setup(grad_concat_slice, setup),
        cmocka_unit_test_setup(grad_attention, setup),
        cmocka_unit_test_setup(grad_rope, setup),
        cmocka_unit_test_setup(grad_fake_quant, setup),
        cmocka_unit_test_setup(grad_qlinear, setup),
        cmocka_unit_test_setup(value_softmax_cross_entropy, setup),
        cmocka_unit_test_setup(value_penalty_shift, setup),
        cmocka_unit_test_setup(value_layernorm_gelu, setup),
        cmocka_unit_test_setup(value_attention_causal, setup),
        cmocka_unit_test_setup(value_rope_relative, setup),
        cmocka_unit_test_setup(grad_accumulates, setup),
        cmocka_unit_test_setup(no_grad_records_nothing, setup),
        cmocka_unit_test_setup(dropout_statistics, setup),
        cmocka_unit_test(every_op_gradchecked), /* keep last */
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    oct_arena_free(&arena);
    return failed;
}
