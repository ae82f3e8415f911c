/* Tests for src/optim: SGD (plain, momentum, Nesterov, L2) and AdamW against PyTorch reference
 * values, Muon against its formula written out in double, decoupled weight decay, state tensors,
 * learning-rate schedules and gradient clipping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "octet/optim.h"

#define N 6

/* A 1-D parameter of N elements and a 2-D (2, 3) one share this starting point in the tests. */
static const float p0[N] = {0.5f, -1.25f, 2.0f, 0.0f, -0.75f, 3.0f};
static const float grads[3][N] = {
    {0.1f, -0.2f, 0.3f, -0.4f, 0.5f, -0.6f},
    {-0.3f, 0.25f, 0.05f, 0.7f, -0.1f, 0.2f},
    {0.2f, 0.2f, -0.5f, 0.1f, 0.0f, -0.9f},
};

typedef struct fixture {
    oct_arena arena;
    oct_tensor *items[2];
    oct_params params;
} fixture;

/* One (2,3) parameter "w" starting at p0, optionally followed by a 1-D "b" also at p0. */
static void fixture_init(fixture *f, int n_params) {
    oct_arena_init(&f->arena, 0);
    int shape2[2] = {2, 3}, shape1[1] = {N};
    f->items[0] = oct_tensor_param(&f->arena, "w", 2, shape2);
    f->items[1] = oct_tensor_param(&f->arena, "b", 1, shape1);
    for (int i = 0; i < 2; i++) memcpy(f->items[i]->data, p0, sizeof p0);
    f->params.items = f->items;
    f->params.n = n_params;
    f->params.cap = 2;
}

/* Runs the three reference gradients through o and compares w with want. */
static void run_three_steps(fixture *f, oct_optim *o, float lr, const float *want, float tol) {
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < f->params.n; i++) memcpy(f->items[i]->grad, grads[s], sizeof grads[s]);
        oct_optim_step(o, lr);
    }
    assert_int_equal(o->step, 3);
    for (int j = 0; j < N; j++) assert_float_equal(f->items[0]->data[j], want[j], tol);
}

/* Reference values: /usr/bin/python3 with torch 2.x, torch.optim.SGD / AdamW on a float32
 * Parameter initialized to p0, p.grad set to grads[0..2] in turn, opt.step() after each. */
static void sgd_matches_pytorch(void **state) {
    static const float want_wd[N] = {4.984914660e-01f,  -1.271268725e+00f, 2.009071112e+00f,
                                     -4.000995681e-02f, -7.876623273e-01f, 3.120908976e+00f};
    static const float want_mom[N] = {5.099000335e-01f,  -1.263299942e+00f, 1.959200025e+00f,
                                      -3.459999710e-02f, -8.665000200e-01f, 3.214599848e+00f};
    static const float want_nest[N] = {5.048870444e-01f,  -1.277041793e+00f, 1.962536693e+00f,
                                       -7.129894942e-02f, -8.883452415e-01f, 3.298489332e+00f};
    struct {
        float momentum, wd;
        bool nesterov;
        const float *want;
    } cases[] = {{0.0f, 0.01f, false, want_wd},   /* SGD(lr=0.1, weight_decay=0.01) */
                 {0.9f, 0.0f, false, want_mom},   /* SGD(lr=0.1, momentum=0.9) */
                 {0.9f, 0.01f, true, want_nest}}; /* ... nesterov=True, weight_decay=0.01 */
    for (int c = 0; c < 3; c++) {
        fixture f;
        fixture_init(&f, 1);
        oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_SGD);
        h.momentum = cases[c].momentum;
        h.weight_decay = cases[c].wd;
        h.nesterov = cases[c].nesterov;
        oct_optim o;
        assert_int_equal(oct_optim_init(&o, OCT_OPTIM_SGD, &f.params, &f.arena, &h), OCT_OK);
        assert_int_equal(o.n_state, cases[c].momentum > 0 ? 1 : 0);
        run_three_steps(&f, &o, 0.1f, cases[c].want, 1e-6f);
        oct_optim_free(&o);
        oct_arena_free(&f.arena);
    }
}

static void adamw_matches_pytorch(void **state) {
    /* AdamW(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1), then weight_decay=0. */
    static const float want_adamw[N] = {4.932706058e-01f, -1.242352247e+00f, 1.978515387e+00f,
                                        3.650162602e-03f, -7.667876482e-01f, 3.011993170e+00f};
    static const float want_adam[N] = {4.947540462e-01f, -1.246080160e+00f, 1.984481454e+00f,
                                       3.667013487e-03f, -7.690604925e-01f, 3.021008015e+00f};
    for (int c = 0; c < 2; c++) {
        fixture f;
        fixture_init(&f, 1);
        oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
        assert_float_equal(h.weight_decay, 0.01f, 0.0f);
        h.weight_decay = c == 0 ? 0.1f : 0.0f;
        oct_optim o;
        assert_int_equal(oct_optim_init(&o, OCT_OPTIM_ADAMW, &f.params, &f.arena, &h), OCT_OK);
        run_three_steps(&f, &o, 0.01f, c == 0 ? want_adamw : want_adam, 1e-6f);
        oct_optim_free(&o);
        oct_arena_free(&f.arena);
    }
}

/* Adam's first step moves every weight by lr * g / (|g| + eps) (bias-corrected m = g, v = g^2),
 * independent of the gradient's magnitude; m and v are the named state tensors. */
static void adamw_first_step_and_state(void **state) {
    fixture f;
    fixture_init(&f, 2);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    h.weight_decay = 0.0f;
    oct_optim o;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_ADAMW, &f.params, &f.arena, &h), OCT_OK);
    assert_int_equal(o.n_state, 4);
    assert_string_equal(o.state[0]->name, "w.adam_m");
    assert_string_equal(o.state[1]->name, "w.adam_v");
    assert_string_equal(o.state[3]->name, "b.adam_v");
    assert_true(oct_tensor_same_shape(o.state[0], f.items[0]));
    assert_false(o.state[0]->requires_grad);
    for (int j = 0; j < N; j++) f.items[0]->grad[j] = f.items[1]->grad[j] = grads[0][j] * 1000.0f;
    oct_optim_step(&o, 0.05f);
    for (int j = 0; j < N; j++) {
        float g = grads[0][j] * 1000.0f;
        assert_float_equal(f.items[0]->data[j], p0[j] - 0.05f * (g > 0 ? 1.0f : -1.0f), 1e-6f);
        assert_float_equal(o.state[0]->data[j], 0.1f * g, 1e-3f);
        assert_float_equal(o.state[1]->data[j], 0.001f * g * g, 1e-1f);
    }
    oct_optim_free(&o);
    oct_optim_free(NULL);
    oct_arena_free(&f.arena);
}

/* With a zero gradient AdamW only decays: p *= 1 - lr * wd (Adam's update is 0 / eps = 0);
 * no_decay_1d leaves the 1-D tensor alone. Plain SGD's coupled L2 behaves the same way. */
/* The AdamW update is the same bits whatever kernel clone (baseline or AVX2, picked at run time)
 * and however many threads run it: compare with the float32 formula written out here, on a
 * tensor long enough for every vector width and a 3-way thread split. */
static void adamw_bitwise_any_kernel_and_threads(void **state) {
    enum { LEN = 1031 };
    oct_arena arena;
    oct_arena_init(&arena, 0);
    int shape[1] = {LEN};
    oct_tensor *p = oct_tensor_param(&arena, "p", 1, shape);
    float ref[LEN], m[LEN] = {0}, v[LEN] = {0};
    for (int i = 0; i < LEN; i++) ref[i] = p->data[i] = sinf((float)i) * 3.0f;
    oct_params params;
    oct_params_init(&params);
    oct_params_add(&params, p);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    oct_optim o;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_ADAMW, &params, &arena, &h), OCT_OK);
    o.threads = 3;
    /* Half of every gradient arrives as a data-parallel shard's buffer that the step adds in
     * (and zeroes) itself. */
    static float shard[LEN];
    float *shard_grads[1] = {shard};
    float *const *extra[1] = {shard_grads};
    o.extra = extra;
    o.n_extra = 1;
    const float lr = 1e-2f;
    for (int t = 1; t <= 5; t++) {
        for (int i = 0; i < LEN; i++) {
            float g = cosf((float)(i * t)) * 0.5f;
            shard[i] = g * 0.25f;
            p->grad[i] = g - shard[i];
        }
        oct_optim_step(&o, lr);
        for (int i = 0; i < LEN; i++) assert_true(shard[i] == 0.0f);
        float decay = (float)(1.0 - (double)lr * h.weight_decay);
        float c1 = (float)(1.0 - (double)h.beta1), c2 = (float)(1.0 - (double)h.beta2);
        float step_size = (float)((double)lr / (1.0 - pow(h.beta1, t)));
        float bc2_sqrt = (float)sqrt(1.0 - pow(h.beta2, t));
        for (int i = 0; i < LEN; i++) {
            float g = p->grad[i];
            m[i] += c1 * (g - m[i]);
            v[i] = v[i] * h.beta2 + c2 * g * g;
            ref[i] = ref[i] * decay - step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + h.eps));
        }
    }
    assert_memory_equal(p->data, ref, sizeof ref);
    oct_optim_free(&o);
    oct_params_free(&params);
    oct_arena_free(&arena);
}

static void decoupled_weight_decay(void **state) {
    for (int k = 0; k < OCT_OPTIM_COUNT; k++) {
        fixture f;
        fixture_init(&f, 2);
        oct_optim_hyper h = oct_optim_defaults((oct_optim_kind)k);
        h.weight_decay = 0.5f;
        h.no_decay_1d = true;
        oct_optim o;
        assert_int_equal(oct_optim_init(&o, (oct_optim_kind)k, &f.params, &f.arena, &h), OCT_OK);
        for (int i = 0; i < 2; i++) memset(f.items[i]->grad, 0, N * sizeof(float));
        for (int s = 0; s < 2; s++) oct_optim_step(&o, 0.1f);
        for (int j = 0; j < N; j++) {
            assert_float_equal(f.items[0]->data[j], p0[j] * 0.95f * 0.95f, 1e-6f);
            assert_float_equal(f.items[1]->data[j], p0[j], 0.0f);
        }
        oct_optim_free(&o);
        oct_arena_free(&f.arena);
    }
}

static void bad_hyperparameters_fail(void **state) {
    fixture f;
    fixture_init(&f, 1);
    oct_optim o;
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_SGD);
    h.nesterov = true;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_SGD, &f.params, &f.arena, &h), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "nesterov"));
    h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    h.beta2 = 1.0f;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_ADAMW, &f.params, &f.arena, &h), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "beta2"));
    h.beta2 = 0.999f;
    h.weight_decay = -1.0f;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_ADAMW, &f.params, &f.arena, &h), OCT_EINVAL);
    h = oct_optim_defaults(OCT_OPTIM_MUON);
    h.momentum = 1.0f;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_MUON, &f.params, &f.arena, &h), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "muon momentum"));
    oct_optim_kind kind;
    assert_int_equal(oct_optim_kind_parse("muon", &kind), OCT_OK);
    assert_int_equal(kind, OCT_OPTIM_MUON);
    assert_int_equal(oct_optim_kind_parse("adamw", &kind), OCT_OK);
    assert_int_equal(kind, OCT_OPTIM_ADAMW);
    assert_string_equal(oct_optim_kind_name(OCT_OPTIM_SGD), "sgd");
    assert_int_equal(oct_optim_kind_parse("adam", &kind), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'adam'"));
    oct_arena_free(&f.arena);
}

/* ---- Muon ----------------------------------------------------------------------------------- */

/* oct_muon_orthogonalize's documented iteration in double with plain loops: X /= ||X||_F, then
 * five times X = a X + (b A + c A A) X, A = X X^T, on the wide orientation (rows <= cols). */
static void ns_reference(double *x, int rows, int cols) {
    bool tall = rows > cols;
    int r = tall ? cols : rows, c = tall ? rows : cols;
    double w[64], a[64], b[64], y[64];
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) w[i * c + j] = tall ? x[j * cols + i] : x[i * cols + j];
    double ss = 0;
    for (int i = 0; i < r * c; i++) ss += w[i] * w[i];
    for (int i = 0; i < r * c; i++) w[i] /= fmax(sqrt(ss), 1e-7);
    for (int it = 0; it < 5; it++) {
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                a[i * r + j] = 0;
                for (int k = 0; k < c; k++) a[i * r + j] += w[i * c + k] * w[j * c + k];
            }
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                double aa = 0;
                for (int k = 0; k < r; k++) aa += a[i * r + k] * a[k * r + j];
                b[i * r + j] = -4.7750 * a[i * r + j] + 2.0315 * aa;
            }
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++) {
                double bx = 0;
                for (int k = 0; k < r; k++) bx += b[i * r + k] * w[k * c + j];
                y[i * c + j] = 3.4445 * w[i * c + j] + bx;
            }
        memcpy(w, y, sizeof(double) * (size_t)(r * c));
    }
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) x[tall ? j * cols + i : i * cols + j] = w[i * c + j];
}

/* Wide, tall and square inputs agree with the reference; the result is close to orthogonal
 * (the Gram matrix of its short side near the identity), and a zero matrix stays zero. */
static void muon_orthogonalize_matches_reference(void **state) {
    const int shapes[3][2] = {{3, 7}, {7, 3}, {4, 4}};
    for (int s = 0; s < 3; s++) {
        int r = shapes[s][0], c = shapes[s][1], n = r * c, m = r < c ? r : c;
        float x[64], work[2 * 64 + 2 * 16];
        double ref[64];
        for (int i = 0; i < n; i++) ref[i] = x[i] = sinf(0.37f * (float)(i * i) + (float)s) * 2.0f;
        oct_muon_orthogonalize(x, r, c, work);
        ns_reference(ref, r, c);
        for (int i = 0; i < n; i++) assert_float_equal(x[i], ref[i], 1e-4);
        for (int i = 0; i < m; i++) /* Gram matrix of the short side */
            for (int j = 0; j < m; j++) {
                double d = 0;
                for (int k = 0; k < n / m; k++)
                    d += r <= c ? (double)x[i * c + k] * x[j * c + k]
                                : (double)x[k * c + i] * x[k * c + j];
                /* singular values land in about [0.7, 1.2] */
                if (i == j)
                    assert_true(d > 0.4 && d < 1.5);
                else
                    assert_true(fabs(d) < 0.5);
            }
    }
    float z[6] = {0}, work[2 * 6 + 2 * 4];
    oct_muon_orthogonalize(z, 2, 3, work);
    for (int i = 0; i < 6; i++) assert_true(z[i] == 0.0f);
}

/* A muon_select that answers *ctx (an int: row blocks, 0 for none) for every tensor. */
static int pick_if(const oct_tensor *p, const void *ctx) {
    (void)p;
    return *(const int *)ctx;
}

/* Three steps on a (2,3) matrix (Muon, whole or as two (1,3) row blocks, with or without a
 * momentum warmup) and a 1-D tensor (AdamW, as the AdamW optimizer would update it, bit for
 * bit), against the documented update computed in double. */
static void muon_formula_case(int blocks, int64_t warmup) {
    fixture f, fa;
    fixture_init(&f, 2);
    fixture_init(&fa, 2);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_MUON);
    h.muon_select = pick_if;
    h.muon_ctx = &blocks;
    h.momentum_warmup = warmup;
    oct_optim o, oa;
    oct_optim_hyper ha = oct_optim_defaults(OCT_OPTIM_MUON);
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_MUON, &f.params, &f.arena, &h), OCT_OK);
    assert_int_equal(oct_optim_init(&oa, OCT_OPTIM_ADAMW, &fa.params, &fa.arena, &ha), OCT_OK);
    assert_int_equal(o.n_state, 4);
    assert_string_equal(o.state[0]->name, "w.muon_m");
    assert_null(o.state[1]);
    assert_string_equal(o.state[2]->name, "b.adam_m");
    const float lr = 0.02f;
    double p[N], buf[N] = {0}, d[N];
    for (int j = 0; j < N; j++) p[j] = p0[j];
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 2; i++) {
            memcpy(f.items[i]->grad, grads[s], sizeof grads[s]);
            memcpy(fa.items[i]->grad, grads[s], sizeof grads[s]);
        }
        oct_optim_step(&o, lr);
        oct_optim_step(&oa, lr);
        /* the momentum rises linearly from 0.85 to 0.95 over `warmup` steps */
        double mu = s < warmup ? 0.85 + 0.10 * (double)s / (double)warmup : 0.95;
        for (int j = 0; j < N; j++) {
            buf[j] += (1.0 - mu) * (grads[s][j] - buf[j]);
            d[j] = grads[s][j] + mu * (buf[j] - grads[s][j]);
        }
        for (int b = 0; b < blocks; b++) ns_reference(d + b * N / blocks, 2 / blocks, 3);
        for (int j = 0; j < N; j++) p[j] = p[j] * (1.0 - lr * 0.1) - lr * 0.2 * sqrt(3.0) * d[j];
    }
    for (int j = 0; j < N; j++) assert_float_equal(f.items[0]->data[j], p[j], 1e-6);
    assert_memory_equal(f.items[1]->data, fa.items[1]->data, N * sizeof(float));
    oct_optim_free(&o);
    oct_optim_free(&oa);
    oct_arena_free(&f.arena);
    oct_arena_free(&fa.arena);
}

static void muon_matches_formula(void **state) {
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_MUON);
    assert_float_equal(h.momentum, 0.95f, 0.0f);
    assert_true(h.nesterov);
    assert_float_equal(h.weight_decay, 0.1f, 0.0f);
    assert_int_equal(h.momentum_warmup, 0);
    muon_formula_case(1, 0);
    muon_formula_case(2, 0); /* each row on its own: not the whole matrix's update */
    muon_formula_case(1, 2); /* momentum 0.85, 0.90, then 0.95 */
    fixture f, fa;
    oct_optim o, oa;
    const float lr = 0.02f;

    /* muon_select decides: picking nothing makes Muon AdamW on every tensor. */
    fixture_init(&f, 2);
    fixture_init(&fa, 2);
    static const int no = 0, yes = 1, three = 3;
    h.muon_select = pick_if;
    h.muon_ctx = &no;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_MUON, &f.params, &f.arena, &h), OCT_OK);
    assert_int_equal(oct_optim_init(&oa, OCT_OPTIM_ADAMW, &fa.params, &fa.arena, &h), OCT_OK);
    assert_string_equal(o.state[1]->name, "w.adam_v");
    run_three_steps(&f, &o, lr, p0, 1.0f);
    run_three_steps(&fa, &oa, lr, p0, 1.0f);
    assert_memory_equal(f.items[0]->data, fa.items[0]->data, N * sizeof(float));
    oct_optim_free(&o);
    oct_optim_free(&oa);
    oct_arena_free(&f.arena);
    oct_arena_free(&fa.arena);

    /* A selector that picks everything still leaves 1-D tensors to AdamW. */
    fixture_init(&f, 2);
    h.muon_ctx = &yes;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_MUON, &f.params, &f.arena, &h), OCT_OK);
    assert_null(o.state[1]);
    assert_string_equal(o.state[3]->name, "b.adam_v");
    oct_optim_free(&o);
    /* Row blocks must divide the rows; a momentum warmup is Muon's alone. */
    h.muon_ctx = &three;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_MUON, &f.params, &f.arena, &h), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "cannot split w (2 rows) into 3 row blocks"));
    oct_optim_hyper ha = oct_optim_defaults(OCT_OPTIM_ADAMW);
    ha.momentum_warmup = 10;
    assert_int_equal(oct_optim_init(&o, OCT_OPTIM_ADAMW, &f.params, &f.arena, &ha), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "momentum warmup"));
    oct_arena_free(&f.arena);
}

/* Matrices are orthogonalized one task each and shard gradients are added in the sliced pass:
 * 1 and 3 threads, with and without a shard buffer, give the same bits. */
static void muon_same_bits_any_threads(void **state) {
    float result[2][3][40 * 24] = {0};
    for (int run = 0; run < 2; run++) {
        oct_arena arena;
        oct_arena_init(&arena, 0);
        oct_params params;
        oct_params_init(&params);
        const int shapes[3][2] = {{40, 24}, {24, 40}, {16, 16}};
        static float shard[3][40 * 24];
        float *shard_grads[3] = {shard[0], shard[1], shard[2]};
        float *const *extra[1] = {shard_grads};
        for (int k = 0; k < 3; k++) {
            const char *names[3] = {"m0", "m1", "m2"};
            oct_tensor *t = oct_tensor_param(&arena, names[k], 2, shapes[k]);
            for (int64_t i = 0; i < t->size; i++) t->data[i] = cosf((float)(i + k));
            oct_params_add(&params, t);
        }
        oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_MUON);
        oct_optim o;
        assert_int_equal(oct_optim_init(&o, OCT_OPTIM_MUON, &params, &arena, &h), OCT_OK);
        o.threads = run ? 3 : 1;
        if (run) {
            o.extra = extra;
            o.n_extra = 1;
        }
        for (int t = 1; t <= 3; t++)
            for (int k = 0; k < 3; k++) {
                oct_tensor *p = params.items[k];
                for (int64_t i = 0; i < p->size; i++) {
                    float g = sinf((float)(i * t + k)) * 0.1f;
                    shard[k][i] = run ? g * 0.5f : 0.0f;
                    p->grad[i] = g - shard[k][i];
                }
                if (k == 2) oct_optim_step(&o, 0.01f);
            }
        for (int k = 0; k < 3; k++)
            memcpy(result[run][k], params.items[k]->data,
                   (size_t)params.items[k]->size * sizeof(float));
        oct_optim_free(&o);
        oct_params_free(&params);
        oct_arena_free(&arena);
    }
    assert_memory_equal(result[0], result[1], sizeof result[0]);
}

static void schedules(void **state) {
    oct_schedule s = {
        .kind = OCT_SCHED_COSINE, .lr = 1e-3f, .warmup = 10, .total = 110, .min_ratio = 0.1f};
    assert_int_equal(oct_schedule_check(&s), OCT_OK);
    assert_float_equal(oct_lr_at(&s, 0), 1e-4f, 1e-9f); /* (0 + 1) / 10 of peak */
    assert_float_equal(oct_lr_at(&s, 4), 5e-4f, 1e-9f);
    assert_float_equal(oct_lr_at(&s, 9), 1e-3f, 1e-9f);    /* warmup reaches the peak */
    assert_float_equal(oct_lr_at(&s, 10), 1e-3f, 1e-9f);   /* cosine starts at the peak */
    assert_float_equal(oct_lr_at(&s, 60), 5.5e-4f, 1e-9f); /* midway: (peak + min) / 2 */
    assert_float_equal(oct_lr_at(&s, 35), 1e-4f + 9e-4f * 0.5f * (1.0f + sqrtf(0.5f)), 1e-9f);
    assert_float_equal(oct_lr_at(&s, 110), 1e-4f, 1e-9f); /* end: min */
    assert_float_equal(oct_lr_at(&s, 5000), 1e-4f, 1e-9f);
    for (int64_t t = 11; t < 120; t++) assert_true(oct_lr_at(&s, t) <= oct_lr_at(&s, t - 1));

    oct_schedule st = {.kind = OCT_SCHED_STEP, .lr = 0.1f, .step_size = 30, .gamma = 0.1f};
    assert_int_equal(oct_schedule_check(&st), OCT_OK);
    assert_float_equal(oct_lr_at(&st, 29), 0.1f, 1e-9f);
    assert_float_equal(oct_lr_at(&st, 30), 0.01f, 1e-9f);
    assert_float_equal(oct_lr_at(&st, 95), 1e-4f, 1e-10f);

    oct_schedule c = {.kind = OCT_SCHED_CONSTANT, .lr = 0.5f, .warmup = 2};
    assert_float_equal(oct_lr_at(&c, 0), 0.25f, 0.0f);
    assert_float_equal(oct_lr_at(&c, 1), 0.5f, 0.0f);
    assert_float_equal(oct_lr_at(&c, 1000000), 0.5f, 0.0f);

    /* Linear: warmup 10, stable until step 70, then down to 0.1 of the peak at 110. */
    oct_schedule l = {.kind = OCT_SCHED_LINEAR,
                      .lr = 1e-3f,
                      .warmup = 10,
                      .total = 110,
                      .min_ratio = 0.1f,
                      .decay = 40};
    assert_int_equal(oct_schedule_check(&l), OCT_OK);
    assert_float_equal(oct_lr_at(&l, 4), 5e-4f, 1e-9f);
    assert_float_equal(oct_lr_at(&l, 10), 1e-3f, 0.0f);
    assert_float_equal(oct_lr_at(&l, 70), 1e-3f, 0.0f);      /* the decay starts here */
    assert_float_equal(oct_lr_at(&l, 90), 5.5e-4f, 1e-9f);   /* halfway down */
    assert_float_equal(oct_lr_at(&l, 100), 3.25e-4f, 1e-9f); /* three quarters down */
    assert_float_equal(oct_lr_at(&l, 110), 1e-4f, 1e-9f);
    assert_float_equal(oct_lr_at(&l, 5000), 1e-4f, 1e-9f);
    l.decay = 0; /* the whole span after warmup: straight from the peak at 10 to 0 at 110 */
    l.min_ratio = 0.0f;
    assert_float_equal(oct_lr_at(&l, 10), 1e-3f, 0.0f);
    assert_float_equal(oct_lr_at(&l, 60), 5e-4f, 1e-9f);
    assert_float_equal(oct_lr_at(&l, 109), 1e-5f, 1e-9f);
    assert_float_equal(oct_lr_at(&l, 110), 0.0f, 0.0f);
    l.decay = 101;
    assert_int_equal(oct_schedule_check(&l), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "decay"));
    l.decay = 40;
    l.min_ratio = 1.5f;
    assert_int_equal(oct_schedule_check(&l), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "linear"));

    oct_schedule_kind kind;
    assert_int_equal(oct_schedule_kind_parse("cosine", &kind), OCT_OK);
    assert_int_equal(kind, OCT_SCHED_COSINE);
    assert_string_equal(oct_schedule_kind_name(OCT_SCHED_STEP), "step");
    assert_int_equal(oct_schedule_kind_parse("linear", &kind), OCT_OK);
    assert_int_equal(kind, OCT_SCHED_LINEAR);
    assert_int_equal(oct_schedule_kind_parse("wsd", &kind), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'wsd'"));
    s.total = 10;
    assert_int_equal(oct_schedule_check(&s), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "total"));
    st.step_size = 0;
    assert_int_equal(oct_schedule_check(&st), OCT_EINVAL);
}

static void clip_grad_norm(void **state) {
    fixture f;
    fixture_init(&f, 2);
    /* grads 3-4-0... and 0-...-12: norm sqrt(9 + 16 + 144) = 13 */
    float g0[N] = {3, 4, 0, 0, 0, 0}, g1[N] = {0, 0, 0, 0, 0, 12};
    memcpy(f.items[0]->grad, g0, sizeof g0);
    memcpy(f.items[1]->grad, g1, sizeof g1);
    assert_float_equal(oct_clip_grad_norm(&f.params, 0.0f), 13.0, 1e-12);  /* just measures */
    assert_float_equal(oct_clip_grad_norm(&f.params, 20.0f), 13.0, 1e-12); /* below: no-op */
    assert_float_equal(f.items[1]->grad[5], 12.0f, 0.0f);
    assert_float_equal(oct_clip_grad_norm(&f.params, 6.5f), 13.0, 1e-12);
    assert_float_equal(f.items[0]->grad[0], 1.5f, 1e-6f);
    assert_float_equal(f.items[0]->grad[1], 2.0f, 1e-6f);
    assert_float_equal(f.items[1]->grad[5], 6.0f, 1e-6f);
    assert_float_equal(oct_clip_grad_norm(&f.params, 0.0f), 6.5, 1e-5);
    f.items[0]->grad[2] = INFINITY;
    assert_false(isfinite(oct_clip_grad_norm(&f.params, 1.0f)));
    assert_float_equal(f.items[1]->grad[5], 6.0f, 0.0f); /* untouched */
    oct_arena_free(&f.arena);

    /* A long tensor exercises the lane loop and its tail: 1001 ones have norm sqrt(1001). */
    oct_arena a;
    oct_arena_init(&a, 0);
    int n = 1001;
    oct_tensor *t = oct_tensor_param(&a, "long", 1, &n);
    for (int i = 0; i < n; i++) t->grad[i] = 1.0f;
    oct_params ps = {.items = &t, .n = 1, .cap = 1};
    assert_float_equal(oct_clip_grad_norm(&ps, 0.0f), sqrt(1001.0), 1e-9);
    oct_arena_free(&a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adamw_bitwise_any_kernel_and_threads),
        cmocka_unit_test(sgd_matches_pytorch),
        cmocka_unit_test(adamw_matches_pytorch),
        cmocka_unit_test(adamw_first_step_and_state),
        cmocka_unit_test(decoupled_weight_decay),
        cmocka_unit_test(bad_hyperparameters_fail),
        cmocka_unit_test(muon_orthogonalize_matches_reference),
        cmocka_unit_test(muon_matches_formula),
        cmocka_unit_test(muon_same_bits_any_threads),
        cmocka_unit_test(schedules),
        cmocka_unit_test(clip_grad_norm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
