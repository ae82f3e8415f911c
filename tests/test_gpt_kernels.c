/* The row kernels the QAT GPT and the integer GPT engine share (GELU, layernorm, dot, the
 * attention row: equal to the graph ops and to their documented order of operations, whatever
 * vector clone runs; octet's own exp and RoPE angles), the gradients of the pieces the QAT GPT
 * adds (row-wise attention, output quantizers without ReLU), and the sampler's top-k. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "gradcheck.h"
#include "octet/nonlinear.h"
#include "octet/nn.h"
#include "octet/qat.h"

static void attention_rows_matches_and_is_prefix_stable(void **state) {
    (void)state;
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_rng r;
    oct_rng_seed(&r, 9, 0);
    oct_tensor *qkv = gradcheck_param(&a, &r, 3, (int[]){2, 9, 24}, 1.0f);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    oct_tensor *ref = oct_attention(&g, qkv, 2), *rows = oct_attention_rows(&g, qkv, 2);
    for (int64_t i = 0; i < ref->size; i++) assert_float_equal(ref->data[i], rows->data[i], 1e-5);
    /* The first 5 positions of a 5-long sequence: the same bits as inside the 9-long one. */
    oct_tensor *short_qkv = oct_tensor_new(&g.arena, 3, (int[]){1, 5, 24});
    memcpy(short_qkv->data, qkv->data, 5 * 24 * sizeof(float));
    oct_tensor *s = oct_attention_rows(&g, short_qkv, 2);
    assert_memory_equal(s->data, rows->data, 5 * 8 * sizeof(float));
    oct_graph_free(&g);
    oct_arena_free(&a);
}

static oct_tensor *f_attention_rows(oct_graph *g, oct_tensor *const *in, void *ctx) {
    (void)ctx;
    return oct_attention_rows(g, in[0], 2);
}

static void grad_attention_rows(void **state) {
    (void)state;
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_rng r;
    oct_rng_seed(&r, 4, 0);
    oct_tensor *in[] = {gradcheck_param(&a, &r, 3, (int[]){2, 5, 12}, 1.0f)};
    assert_true(gradcheck("attention_rows", f_attention_rows, NULL, 1, in, NULL));
    oct_arena_free(&a);
}

/* A block linear's output quantizer without ReLU: the STE passes the gradient where the output
 * was representable (negative values included) and blocks it where it clamped either way. */
static void ste_output_without_relu(void **state) {
    (void)state;
    enum { R = 4, K = 3, N = 3 };
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_params p;
    oct_params_init(&p);
    oct_rng r;
    oct_rng_seed(&r, 1, 0);
    oct_linear_layer fp;
    oct_linear_layer_init(&fp, &a, &p, "l", K, N, true, OCT_INIT_KAIMING_UNIFORM, &r);
    memset(fp.w->data, 0, sizeof(float) * N * K);
    const float bias[N] = {-0.3f, 5.0f, -5.0f}; /* inside, above, below [-1, 1] */
    memcpy(fp.b->data, bias, sizeof bias);
    oct_act_quant in_q, out_q;
    float lo[2] = {-1.0f, -1.0f}, hi[2] = {1.0f, 1.0f};
    for (int i = 0; i < 2; i++) {
        oct_act_quant *q = i ? &out_q : &in_q;
        memset(q, 0, sizeof *q);
        q->mode = OCT_QAT_A_MINMAX;
        assert_int_equal(oct_qscheme_init(&q->scheme, 8, false, false, false, false), OCT_OK);
        oct_observer_init(&q->obs, &lo[i], &hi[i], 1, 0.0f);
        q->obs.frozen = true;
    }
    lo[0] = lo[1] = -1.0f; /* after oct_observer_init, which empties the ranges */
    hi[0] = hi[1] = 1.0f;
    oct_qat_linear l = {.fp = &fp, .in_q = &in_q, .owns_in = true, .out_q = &out_q, .threads = 1};
    assert_int_equal(oct_qscheme_init(&l.wscheme, 8, true, true, true, true), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    oct_tensor *x = oct_tensor_new2(&g.arena, R, K);
    oct_rng_fill_normal(&r, x, 0.5f);
    oct_tensor *y = oct_qat_linear_forward(&g, x, &l);
    assert_float_equal(y->data[0], -0.3f, 0.01f);
    assert_float_equal(y->data[1], 1.0f, 0.01f);
    assert_float_equal(y->data[2], -1.0f, 0.01f);
    oct_params_zero_grad(&p);
    oct_graph_backward(&g, oct_sum(&g, y));
    assert_float_equal(fp.b->grad[0], (float)R, 0.0f);
    assert_float_equal(fp.b->grad[1], 0.0f, 0.0f);
    assert_float_equal(fp.b->grad[2], 0.0f, 0.0f);
    oct_qat_linear_free(&l);
    oct_graph_free(&g);
    oct_params_free(&p);
    oct_arena_free(&a);
}

static void shared_kernels_match_ops(void **state) {
    (void)state;
    float x[37], y[37], z[37];
    for (int i = 0; i < 37; i++) x[i] = (float)(i - 18) * 0.173f;
    oct_nl_gelu(x, 37, y);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    oct_tensor *t = oct_tensor_new2(&g.arena, 1, 37);
    memcpy(t->data, x, sizeof x);
    assert_memory_equal(oct_gelu(&g, t)->data, y, sizeof y);
    oct_tensor *gam = oct_tensor_new2(&g.arena, 1, 37), *bet = oct_tensor_new2(&g.arena, 1, 37);
    for (int i = 0; i < 37; i++) gam->data[i] = 1.0f + 0.01f * (float)i, bet->data[i] = 0.1f;
    oct_nl_layernorm_row(x, gam->data, bet->data, 37, 1e-5f, z, NULL, NULL);
    int shape[1] = {37};
    oct_tensor *gv = oct_tensor_new(&g.arena, 1, shape), *bv = oct_tensor_new(&g.arena, 1, shape);
    memcpy(gv->data, gam->data, sizeof x);
    memcpy(bv->data, bet->data, sizeof x);
    assert_memory_equal(oct_layernorm(&g, t, gv, bv, 1e-5f)->data, z, sizeof z);
    float a[13], b[13];
    double ref = 0;
    for (int i = 0; i < 13; i++) a[i] = x[i], b[i] = x[36 - i], ref += (double)a[i] * b[i];
    assert_float_equal(oct_nl_dot(a, b, 13), ref, 1e-4);
    oct_graph_free(&g);
}

/* The attention row of head size hs (n_head heads) over n keys stored transposed with stride
 * kt_stride equals its documented order of operations, computed here with oct_nl_dot (baseline
 * code) and oct_nl_exp from keys stored row by row. */
static void attention_row_case(const float *x, const float *dy, int N, int hs, int n_head, int n,
                               int kt_stride) {
    int C = hs * n_head;
    float *q = malloc(sizeof(float) * (size_t)C), *k = malloc(sizeof(float) * (size_t)n * C);
    float *kt = malloc(sizeof(float) * (size_t)C * kt_stride);
    float *v = malloc(sizeof(float) * (size_t)n * C), *p = malloc(sizeof(float) * n_head * n);
    float *out = malloc(sizeof(float) * C), *want = calloc((size_t)C, sizeof(float));
    float *s = malloc(sizeof(float) * n);
    for (int i = 0; i < C; i++) q[i] = x[i % N] * 0.3f;
    for (int i = 0; i < n * C; i++) k[i] = x[(i * 7) % N] * 0.2f, v[i] = dy[(i * 3) % N];
    for (int i = 0; i < C * kt_stride; i++) kt[i] = NAN; /* columns past n: read, never used */
    for (int u = 0; u < n; u++)
        for (int d = 0; d < C; d++) kt[d * kt_stride + u] = k[u * C + d];
    oct_nl_attention_row(q, kt, kt_stride, v, C, n, C, n_head, p, n, out);
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < n_head; h++) {
        float mx = -INFINITY, sum = 0.0f;
        for (int u = 0; u < n; u++) {
            s[u] = oct_nl_dot(q + h * hs, k + u * C + h * hs, hs) * scale;
            mx = s[u] > mx ? s[u] : mx;
        }
        for (int u = 0; u < n; u++) {
            s[u] = oct_nl_exp(s[u] - mx);
            sum += s[u];
        }
        float inv = 1.0f / sum;
        for (int u = 0; u < n; u++) {
            float pu = s[u] * inv;
            assert_memory_equal(&p[h * n + u], &pu, sizeof pu);
            for (int i = 0; i < hs; i++) want[h * hs + i] += pu * v[u * C + h * hs + i];
        }
    }
    if (memcmp(out, want, sizeof(float) * C))
        print_error("attention row: hs %d, %d heads, %d keys, stride %d\n", hs, n_head, n,
                    kt_stride);
    assert_memory_equal(out, want, sizeof(float) * C);
    free(q), free(k), free(kt), free(v), free(p), free(out), free(want), free(s);
}

/* GELU (both forms) and the attention row have clones picked at run time. Whatever clone runs
 * here, whole-array calls equal element-by-element ones, and the attention row equals its
 * documented order of operations, for head sizes with and without a tail past the vector
 * blocks (16, 30, 32, 40, 64, 3), keys in full blocks of 16, past them and reading past n. */
static void row_kernels_any_vector_width(void **state) {
    (void)state;
    enum { N = 1031 };
    static float x[N], dy[N], y[N], dx[N];
    for (int i = 0; i < N; i++) {
        x[i] = sinf((float)i * 0.7f) * 6.0f;
        dy[i] = cosf((float)i * 1.3f);
    }
    void (*fwd[2])(const float *, int64_t, float *) = {oct_nl_gelu, oct_nl_gelu_erf};
    void (*bwd[2])(const float *, const float *, int64_t, float *) = {oct_nl_gelu_backward,
                                                                      oct_nl_gelu_erf_backward};
    for (int f = 0; f < 2; f++) { /* tanh form, erf form */
        memset(dx, 0, sizeof dx);
        fwd[f](x, N, y);
        bwd[f](x, dy, N, dx);
        for (int i = 0; i < N; i++) {
            float a, b = 0.0f; /* the backward accumulates */
            fwd[f](&x[i], 1, &a);
            bwd[f](&x[i], &dy[i], 1, &b);
            assert_memory_equal(&a, &y[i], sizeof a);
            assert_memory_equal(&b, &dx[i], sizeof b);
        }
    }
    static const int cases[][4] = {/* hs, heads, keys, kt_stride */
                                   {32, 2, 37, 37}, {32, 4, 37, 48},  {16, 1, 1, 1},
                                   {30, 3, 16, 16}, {40, 2, 50, 64},  {64, 1, 33, 40},
                                   {3, 2, 20, 128}, {32, 4, 128, 128}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        attention_row_case(x, dy, N, cases[c][0], cases[c][1], cases[c][2], cases[c][3]);
}

/* octet's own exp and RoPE angles (no libm, so the same bits under any C library) against
 * libm's double functions: exp within 1e-7 relative on [-87, 0] (every 997th float), exactly 1
 * at 0, and -87's value below -87, for -Inf and for NaN; the angles within 6e-8 (float
 * rounding) for t < 4096 and head sizes 2 to 128, cos 1 and sin 0 at t = 0. */
static void own_exp_and_rope_angles(void **state) {
    (void)state;
    for (uint32_t bits = 0x80000000u; bits <= 0xc2ae0000u; bits += 997) { /* -0 to -87 */
        float x;
        memcpy(&x, &bits, sizeof x);
        double e = exp((double)x);
        if (fabs(oct_nl_exp(x) - e) > 1e-7 * e) fail_msg("oct_nl_exp(%.9g)", (double)x);
    }
    assert_true(oct_nl_exp(0.0f) == 1.0f);
    float floor87 = oct_nl_exp(-87.0f);
    assert_true(floor87 > 0.0f && floor87 < 2e-38f);
    assert_true(oct_nl_exp(-1000.0f) == floor87 && oct_nl_exp(-INFINITY) == floor87);
    assert_true(oct_nl_exp(NAN) == floor87);
    static const int sizes[] = {2, 8, 30, 32, 128};
    float cs[128];
    for (size_t h = 0; h < sizeof sizes / sizeof sizes[0]; h++)
        for (int t = 0; t < 4096; t += t < 130 ? 1 : 37) {
            int hs = sizes[h];
            oct_nl_rope_angles(t, hs, cs);
            for (int i = 0; i < hs / 2; i++) {
                double a = (double)t * pow(10000.0, -2.0 * i / hs);
                if (fabs(cs[2 * i] - cos(a)) > 6e-8 || fabs(cs[2 * i + 1] - sin(a)) > 6e-8)
                    fail_msg("rope angle t %d, i %d of hs %d", t, i, hs);
            }
            if (t == 0)
                for (int i = 0; i < hs / 2; i++) assert_true(cs[2 * i] == 1 && cs[2 * i + 1] == 0);
        }
}

/* oct_gpt_sample's top-k keeps exactly the logits at or above the k-th largest (counting
 * repeats), as sorting finds it: with ties, both zeros and -Inf among the logits, and a
 * temperature so high that every kept logit is drawn in 3,000 draws (-Inf ones have weight 0). */
static int desc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

static void top_k_keeps_the_k_largest(void **state) {
    (void)state;
    enum { V = 30 };
    static const float values[] = {2.0f, 2.0f, 1.5f, 0.0f, -0.0f, -1.0f, -INFINITY, 3.0f};
    oct_rng r;
    oct_rng_seed(&r, 5, 0);
    for (int trial = 0; trial < 8; trial++) {
        float x[V], sorted[V];
        for (int i = 0; i < V; i++)
            sorted[i] = x[i] = values[oct_rng_below(&r, sizeof values / sizeof values[0])];
        qsort(sorted, V, sizeof sorted[0], desc);
        for (int k = 1; k < V; k += 4) {
            float floor_value = sorted[k - 1];
            bool seen[V] = {false};
            for (int d = 0; d < 3000; d++) seen[oct_gpt_sample(x, V, 1e4f, k, &r)] = true;
            for (int i = 0; i < V; i++) {
                bool kept = x[i] >= floor_value && x[i] > -INFINITY;
                if (seen[i] != kept) fail_msg("trial %d, k %d: logit %d (%g)", trial, k, i, x[i]);
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(attention_rows_matches_and_is_prefix_stable),
        cmocka_unit_test(grad_attention_rows),
        cmocka_unit_test(ste_output_without_relu),
        cmocka_unit_test(shared_kernels_match_ops),
        cmocka_unit_test(row_kernels_any_vector_width),
        cmocka_unit_test(own_exp_and_rope_angles),
        cmocka_unit_test(top_k_keeps_the_k_largest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
