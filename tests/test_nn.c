/* Tests for src/nn: the parameter list, initializer statistics, name helpers, the linear layer
 * and MLP forward pass against a hand computation, an MLP that learns a non-linear toy problem
 * end to end (ops, autograd, optimizer), and a GPT without the learned position embedding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "octet/nn.h"
#include "octet/optim.h"

static void params_list(void **state) {
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_params ps;
    oct_params_init(&ps);
    oct_rng rng;
    oct_rng_seed(&rng, 1, 0);
    oct_linear_layer l[20];
    for (int i = 0; i < 20; i++) /* more than the initial capacity */
        oct_linear_layer_init(&l[i], &a, &ps, oct_arena_printf(&a, "layer%d", i), 3, 2, i % 2 == 0,
                              OCT_INIT_KAIMING_UNIFORM, &rng);
    assert_int_equal(ps.n, 30);
    assert_int_equal(oct_params_count(&ps), 20 * 6 + 10 * 2);
    assert_ptr_equal(oct_params_find(&ps, "layer4.weight"), l[4].w);
    assert_ptr_equal(oct_params_find(&ps, "layer4.bias"), l[4].b);
    assert_null(oct_params_find(&ps, "layer5.bias"));
    assert_null(l[5].b);
    assert_null(oct_params_find(&ps, "layer4"));
    assert_int_equal(l[4].w->shape[0], 2);
    assert_int_equal(l[4].w->shape[1], 3);
    for (int i = 0; i < ps.n; i++) ps.items[i]->grad[0] = 1.0f;
    oct_params_zero_grad(&ps);
    for (int i = 0; i < ps.n; i++)
        for (int64_t j = 0; j < ps.items[i]->size; j++)
            assert_float_equal(ps.items[i]->grad[j], 0.0f, 0.0f);
    char long_prefix[300]; /* longer than oct_arena_printf's stack buffer */
    memset(long_prefix, 'x', sizeof long_prefix - 1);
    long_prefix[sizeof long_prefix - 1] = '\0';
    const char *name = oct_arena_printf(&a, "%s.%s", long_prefix, "weight");
    assert_int_equal(strlen(name), 299 + 7);
    assert_string_equal(name + 299, ".weight");
    oct_params_free(&ps);
    assert_int_equal(ps.n, 0);
    oct_params_free(NULL);
    oct_arena_free(&a);
}

/* Mean and standard deviation of x (n), in double. */
static void moments(const float *x, int64_t n, double *mean, double *std) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(ss / (double)n);
}

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static void init_statistics(void **state) {
    const int in = 400, out = 500;
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_rng rng;
    oct_rng_seed(&rng, 7, 0);
    for (int k = 0; k < OCT_INIT_COUNT; k++) {
        oct_params ps;
        oct_params_init(&ps);
        oct_linear_layer l;
        oct_linear_layer_init(&l, &a, &ps, oct_init_name((oct_init)k), in, out, true, (oct_init)k,
                              &rng);
        double mean, std, bmean, bstd;
        moments(l.w->data, l.w->size, &mean, &std);
        moments(l.b->data, l.b->size, &bmean, &bstd);
        double want_std = 0, bound = 0;
        if (k == OCT_INIT_KAIMING_UNIFORM) bound = 1.0 / sqrt(in);
        if (k == OCT_INIT_XAVIER_UNIFORM) bound = sqrt(6.0 / (in + out));
        if (k == OCT_INIT_KAIMING_NORMAL) {
            want_std = sqrt(2.0 / in);
            /* 200k normal draws: the extreme is about 4.5 sigma, never near 10 */
            assert_true(max_abs(l.w->data, l.w->size) > 3.5 * want_std);
            assert_true(max_abs(l.w->data, l.w->size) < 10 * want_std);
            assert_float_equal(bstd, 0.0, 0.0); /* bias zero */
        } else {
            want_std = bound / sqrt(3.0); /* std of U(-b, b) */
            assert_true(max_abs(l.w->data, l.w->size) <= bound);
            assert_true(max_abs(l.w->data, l.w->size) > 0.99 * bound);
        }
        if (k == OCT_INIT_KAIMING_UNIFORM) {
            assert_true(max_abs(l.b->data, l.b->size) <= bound);
            assert_float_equal(bstd, bound / sqrt(3.0), 0.15 * bound);
        }
        if (k == OCT_INIT_XAVIER_UNIFORM) assert_float_equal(bstd, 0.0, 0.0);
        assert_float_equal(std, want_std, 0.01 * want_std);
        assert_float_equal(mean, 0.0, 0.01 * want_std); /* 5 sigma of the sample mean */
        oct_params_free(&ps);
    }
    oct_arena_free(&a);
}

static void names_round_trip(void **state) {
    for (int k = 0; k < OCT_INIT_COUNT; k++) {
        oct_init init;
        assert_int_equal(oct_init_parse(oct_init_name((oct_init)k), &init), OCT_OK);
        assert_int_equal(init, k);
    }
    for (int k = 0; k < OCT_ACT_COUNT; k++) {
        oct_activation act;
        assert_int_equal(oct_activation_parse(oct_activation_name((oct_activation)k), &act),
                         OCT_OK);
        assert_int_equal(act, k);
    }
    assert_string_equal(oct_activation_name(OCT_ACT_GELU), "gelu");
    assert_string_equal(oct_activation_name((oct_activation)99), "?");
    oct_activation act;
    assert_int_equal(oct_activation_parse("swish", &act), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'swish'"));
    oct_init init;
    assert_int_equal(oct_init_parse("he", &init), OCT_EINVAL);
}

/* x (B, in) in the step arena, filled with a fixed pattern. */
static oct_tensor *input(oct_graph *g, int B, int in) {
    oct_tensor *x = oct_tensor_new2(&g->arena, B, in);
    for (int64_t i = 0; i < x->size; i++) x->data[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    return x;
}

static void mlp_forward_matches_by_hand(void **state) {
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_params ps;
    oct_params_init(&ps);
    oct_rng rng;
    oct_rng_seed(&rng, 3, 0);
    oct_mlp m;
    int sizes[3] = {5, 7, 3};
    assert_int_equal(
        oct_mlp_init(&m, &a, &ps, sizes, 3, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng), OCT_OK);
    assert_int_equal(m.n_layers, 2);
    assert_int_equal(ps.n, 4);
    assert_int_equal(oct_params_count(&ps), 5 * 7 + 7 + 7 * 3 + 3);
    assert_ptr_equal(oct_params_find(&ps, "fc1.bias"), m.layers[1].b);
    assert_ptr_equal(oct_params_find(&ps, "fc0.weight"), m.layers[0].w);

    oct_graph g;
    oct_graph_init(&g, 1 << 20, 1);
    const int B = 4;
    oct_tensor *x = input(&g, B, 5);
    oct_tensor *y = oct_mlp_forward(&m, &g, x);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], B);
    assert_int_equal(y->shape[1], 3);
    const float *w0 = m.layers[0].w->data, *b0 = m.layers[0].b->data;
    const float *w1 = m.layers[1].w->data, *b1 = m.layers[1].b->data;
    int negatives = 0;
    for (int r = 0; r < B; r++) {
        double h[7];
        for (int j = 0; j < 7; j++) {
            h[j] = b0[j];
            for (int k = 0; k < 5; k++) h[j] += (double)x->data[r * 5 + k] * w0[j * 5 + k];
            negatives += h[j] < 0;
            h[j] = fmax(h[j], 0.0);
        }
        for (int j = 0; j < 3; j++) {
            double o = b1[j];
            for (int k = 0; k < 7; k++) o += h[k] * w1[j * 7 + k];
            assert_float_equal(y->data[r * 3 + j], o, 1e-5);
        }
    }
    assert_true(negatives > 0); /* the ReLU did something */

    /* Dropout is the identity outside training. */
    m.dropout = 0.5f;
    g.training = false;
    oct_tensor *y2 = oct_mlp_forward(&m, &g, x);
    assert_memory_equal(y2->data, y->data, (size_t)y->size * sizeof(float));

    int bad[2] = {5, 0};
    assert_int_equal(
        oct_mlp_init(&m, &a, &ps, bad, 2, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng),
        OCT_EINVAL);
    assert_int_equal(
        oct_mlp_init(&m, &a, &ps, sizes, 1, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng),
        OCT_EINVAL);
    oct_graph_free(&g);
    oct_params_free(&ps);
    oct_arena_free(&a);
}

/* Noisy XOR: points in [-1,1]^2 away from the axes, label 1 when x*y > 0. Not linearly
 * separable, so fitting it needs the hidden layer. */
#define N_POINTS 256
static void make_xor(float *x, int32_t *y) {
    oct_rng rng;
    oct_rng_seed(&rng, 11, 0);
    for (int i = 0; i < N_POINTS; i++) {
        float a, b;
        do {
            a = 2.0f * oct_rng_uniform(&rng) - 1.0f;
            b = 2.0f * oct_rng_uniform(&rng) - 1.0f;
        } while (fabsf(a) < 0.1f || fabsf(b) < 0.1f);
        x[2 * i] = a;
        x[2 * i + 1] = b;
        y[i] = a * b > 0;
    }
}

/* Trains a 2-16-16-2 MLP full-batch and returns the final accuracy; first and last get the
 * loss of the first and last step. */
static double train_xor(oct_optim_kind kind, oct_activation act, float lr, int steps, float *first,
                        float *last) {
    static float xs[N_POINTS * 2];
    static int32_t ys[N_POINTS];
    make_xor(xs, ys);
    oct_arena a;
    oct_arena_init(&a, 0);
    oct_params ps;
    oct_params_init(&ps);
    oct_rng rng;
    oct_rng_seed(&rng, 5, 0);
    oct_mlp m;
    int sizes[4] = {2, 16, 16, 2};
    assert_int_equal(oct_mlp_init(&m, &a, &ps, sizes, 4, act, OCT_INIT_KAIMING_UNIFORM, &rng),
                     OCT_OK);
    oct_optim_hyper h = oct_optim_defaults(kind);
    h.momentum = 0.9f;
    h.no_decay_1d = true;
    oct_optim opt;
    assert_int_equal(oct_optim_init(&opt, kind, &ps, &a, &h), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 1 << 20, 1);
    g.training = true;
    int correct = 0;
    for (int s = 0; s < steps; s++) {
        oct_graph_reset(&g);
        oct_tensor *x = oct_tensor_new2(&g.arena, N_POINTS, 2);
        memcpy(x->data, xs, sizeof xs);
        oct_tensor *logits = oct_mlp_forward(&m, &g, x);
        oct_tensor *loss = oct_cross_entropy(&g, logits, ys);
        if (s == 0) *first = loss->data[0];
        *last = loss->data[0];
        correct = 0;
        for (int i = 0; i < N_POINTS; i++)
            correct += (logits->data[2 * i + 1] > logits->data[2 * i]) == (ys[i] == 1);
        oct_params_zero_grad(&ps);
        oct_graph_backward(&g, loss);
        oct_clip_grad_norm(&ps, 5.0f);
        oct_optim_step(&opt, lr);
    }
    oct_graph_free(&g);
    oct_optim_free(&opt);
    oct_params_free(&ps);
    oct_arena_free(&a);
    return (double)correct / N_POINTS;
}

static void mlp_learns_xor(void **state) {
    float first, last;
    assert_float_equal(train_xor(OCT_OPTIM_ADAMW, OCT_ACT_RELU, 0.01f, 300, &first, &last), 1.0,
                       0.0);
    assert_true(first > 0.5f && last < 0.1f);
    assert_float_equal(train_xor(OCT_OPTIM_SGD, OCT_ACT_TANH, 0.1f, 300, &first, &last), 1.0, 0.0);
    assert_true(last < 0.2f * first);
    assert_float_equal(train_xor(OCT_OPTIM_ADAMW, OCT_ACT_GELU, 0.01f, 300, &first, &last), 1.0,
                       0.0);
    /* Without a non-linearity the model is linear and cannot fit XOR. */
    assert_true(train_xor(OCT_OPTIM_ADAMW, OCT_ACT_NONE, 0.01f, 300, &first, &last) < 0.8);
}

/* A GPT without wpe (cfg.no_wpe) has every other tensor of the learned+rope GPT of the same seed,
 * and its logits are that model's with wpe set to 0. */
static void gpt_rope_without_wpe(void **state) {
    oct_gpt_config cfg = {
        .vocab = 6, .context = 8, .n_layer = 2, .n_head = 2, .width = 8, .mlp = 12, .rope = true};
    oct_gpt m[2];
    oct_arena a[2];
    oct_params ps[2];
    for (int k = 0; k < 2; k++) {
        cfg.no_wpe = k == 1;
        oct_arena_init(&a[k], 0);
        oct_params_init(&ps[k]);
        oct_rng rng;
        oct_rng_seed(&rng, 7, 0);
        assert_int_equal(oct_gpt_init(&m[k], &a[k], &ps[k], &cfg, &rng), OCT_OK);
        assert_int_equal(oct_params_count(&ps[k]), oct_gpt_param_count(&cfg));
    }
    assert_null(m[1].wpe);
    assert_int_equal(ps[0].n, ps[1].n + 1);
    assert_int_equal(oct_params_count(&ps[0]) - oct_params_count(&ps[1]), 8 * 8);
    for (int i = 0, j = 0; i < ps[0].n; i++) {
        const oct_tensor *t = ps[0].items[i], *u = ps[1].items[j];
        if (t == m[0].wpe) {
            memset(t->data, 0, (size_t)t->size * sizeof(float));
            continue;
        }
        assert_string_equal(t->name, u->name);
        assert_memory_equal(t->data, u->data, (size_t)t->size * sizeof(float));
        j++;
    }
    int32_t ids[8] = {0, 1, 2, 3, 4, 5, 0, 1};
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    oct_tensor *la = oct_gpt_forward(&m[0], &g, ids, 1, 8),
               *lb = oct_gpt_forward(&m[1], &g, ids, 1, 8);
    assert_memory_equal(la->data, lb->data, (size_t)la->size * sizeof(float));
    oct_graph_free(&g);
    cfg.rope = false; /* no positions at all */
    assert_int_equal(oct_gpt_config_check(&cfg), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "no_wpe needs rope"));
    for (int k = 0; k < 2; k++) {
        oct_params_free(&ps[k]);
        oct_arena_free(&a[k]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_list),      cmocka_unit_test(init_statistics),
        cmocka_unit_test(names_round_trip), cmocka_unit_test(mlp_forward_matches_by_hand),
        cmocka_unit_test(mlp_learns_xor),   cmocka_unit_test(gpt_rope_without_wpe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
