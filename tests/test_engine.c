/* Tests for the integer MLP engine and its export file (src/int8/engine.c, export.c): the engine
 * equals a naive reference (int64 dot products, scalar oct_requantize) for random models at any
 * batch size, kernel and thread count; raw pixels equal normalized floats; save/load round trips
 * exactly; and every kind of corrupt or self-contradicting export is refused with a one-line
 * message naming the file and the tensor. The same for models with dynamic activations, whose
 * layers equal a scalar reference of per-row activation quantization. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "octet/data.h"
#include "octet/int8.h"
#include "octet/io.h"
#include "octet/quant.h"
#include "octet/tensor.h"

static const oct_i8_kernel all_kernels[] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
#define N_KERNELS (int)(sizeof all_kernels / sizeof all_kernels[0])
#define MAX_LAYERS 4

/* A random model and the float parameters it was built from (for the reference). */
typedef struct test_model {
    oct_i8_mlp m;
    int n_layers, sizes[MAX_LAYERS + 1];
    float *w[MAX_LAYERS], *b[MAX_LAYERS], *ws[MAX_LAYERS];
} test_model;

static float uniform(oct_rng *r, float lo, float hi) {
    return lo + (hi - lo) * oct_rng_uniform(r);
}

/* A random model with weight codes in [w_qmin, w_qmax]. */
static void model_build_codes(test_model *t, const int *sizes, int n_sizes, uint64_t seed,
                              int32_t w_qmin, int32_t w_qmax) {
    memset(t, 0, sizeof *t);
    oct_rng r;
    oct_rng_seed(&r, seed, 7);
    t->n_layers = n_sizes - 1;
    memcpy(t->sizes, sizes, sizeof(int) * (size_t)n_sizes);
    t->m.n_layers = t->n_layers;
    t->m.layers = calloc((size_t)t->n_layers, sizeof *t->m.layers);
    t->m.in_mean = OCT_FASHION_MNIST_MEAN;
    t->m.in_std = OCT_FASHION_MNIST_STD;
    t->m.in_qmin = 0;
    t->m.in_qmax = 255;
    float a_scale = 2.9f / 255;
    int32_t a_zp = 72;
    for (int i = 0; i < t->n_layers; i++) {
        int in = sizes[i], out = sizes[i + 1];
        bool last = i == t->n_layers - 1;
        t->w[i] = malloc(sizeof(float) * (size_t)in * out);
        t->b[i] = malloc(sizeof(float) * (size_t)out);
        t->ws[i] = malloc(sizeof(float) * (size_t)out);
        for (int c = 0; c < out; c++) {
            float amax = 0;
            for (int k = 0; k < in; k++) {
                float v = uniform(&r, -1, 1) / (float)in;
                t->w[i][(size_t)c * in + k] = v;
                amax = v > amax ? v : -v > amax ? -v : amax;
            }
            t->ws[i][c] = amax / 127;
            t->b[i][c] = uniform(&r, -0.2f, 0.2f);
        }
        float y_scale = uniform(&r, 0.002f, 0.01f);
        int32_t y_zp = (int32_t)(oct_rng_uniform(&r) * 40);
        assert_int_equal(oct_qlinear_build(&t->m.layers[i], out, in, t->w[i], t->b[i], t->ws[i],
                                           w_qmin, w_qmax, a_scale, a_zp, !last, !last, y_scale,
                                           y_zp, 0, 255),
                         OCT_OK);
        a_scale = y_scale;
        a_zp = y_zp;
    }
}

static void model_build(test_model *t, const int *sizes, int n_sizes, uint64_t seed) {
    model_build_codes(t, sizes, n_sizes, seed, -127, 127);
}

static void model_free(test_model *t) {
    oct_i8_mlp_free(&t->m);
    for (int i = 0; i < t->n_layers; i++) {
        free(t->w[i]);
        free(t->b[i]);
        free(t->ws[i]);
    }
}

/* The reference: scalar quantization, int64 dot products, scalar requantization. */
static void reference(const test_model *t, const float *x, int B, int32_t *acc_out) {
    int widest = 0;
    for (int i = 0; i <= t->n_layers; i++) widest = t->sizes[i] > widest ? t->sizes[i] : widest;
    int32_t *a = malloc(sizeof(int32_t) * (size_t)widest), *y = malloc(sizeof(int32_t) * widest);
    for (int r = 0; r < B; r++) {
        const oct_qlinear *l0 = &t->m.layers[0];
        for (int k = 0; k < t->sizes[0]; k++)
            a[k] = oct_quantize(x[(size_t)r * t->sizes[0] + k], l0->a_scale, l0->a_zp, 0, 255);
        for (int i = 0; i < t->n_layers; i++) {
            const oct_qlinear *l = &t->m.layers[i];
            int in = t->sizes[i], out = t->sizes[i + 1];
            for (int c = 0; c < out; c++) {
                int64_t s = oct_quant_bias(t->b[i][c], l->a_scale, t->ws[i][c]);
                for (int k = 0; k < in; k++)
                    s += (int64_t)(a[k] - l->a_zp) *
                         oct_quantize(t->w[i][(size_t)c * in + k], t->ws[i][c], 0, -127, 127);
                assert_true(s >= INT32_MIN && s <= INT32_MAX);
                y[c] = i == t->n_layers - 1
                           ? (int32_t)s
                           : oct_requantize((int32_t)s, l->m0[c], l->shift[c], l->y_zp, l->y_qmin,
                                            l->y_qmax, l->relu);
            }
            memcpy(a, y, sizeof(int32_t) * (size_t)out);
        }
        memcpy(acc_out + (size_t)r * t->sizes[t->n_layers], a,
               sizeof(int32_t) * (size_t)t->sizes[t->n_layers]);
    }
    free(a);
    free(y);
}

static float *random_inputs(int B, int in, uint64_t seed) {
    oct_rng r;
    oct_rng_seed(&r, seed, 3);
    float *x = malloc(sizeof(float) * (size_t)B * in);
    for (size_t i = 0; i < (size_t)B * in; i++) x[i] = uniform(&r, -1.2f, 3.2f);
    return x;
}

/* ---- engine vs reference ------------------------------------------------------------------- */

static void check_model(const int *sizes, int n_sizes, int max_batch) {
    test_model t;
    model_build(&t, sizes, n_sizes, (uint64_t)sizes[1] * 31 + (uint64_t)max_batch);
    static const int batches[] = {1, 7, 256};
    int classes = sizes[n_sizes - 1];
    oct_i8_engine e;
    assert_int_equal(oct_i8_engine_init(&e, &t.m, max_batch), OCT_OK);
    for (int bi = 0; bi < 3; bi++) {
        int B = batches[bi];
        float *x = random_inputs(B, sizes[0], (uint64_t)B);
        int32_t *ref = malloc(sizeof(int32_t) * (size_t)B * classes);
        int32_t *acc = malloc(sizeof(int32_t) * ((size_t)B * classes + 1));
        float *logits = malloc(sizeof(float) * (size_t)B * classes);
        reference(&t, x, B, ref);
        for (int ki = 0; ki < N_KERNELS; ki++) {
            if (!oct_i8_kernel_available(all_kernels[ki])) continue;
            assert_int_equal(oct_i8_set_kernel(all_kernels[ki]), OCT_OK);
            for (int threads = 1; threads <= 2; threads++) {
                memset(acc, 0x5a, sizeof(int32_t) * ((size_t)B * classes + 1));
                oct_i8_engine_forward(&e, x, B, acc, logits, threads);
                if (memcmp(acc, ref, sizeof(int32_t) * (size_t)B * classes))
                    fail_msg("kernel %s, threads %d, batch %d, max_batch %d: logits differ",
                             oct_i8_kernel_name(), threads, B, max_batch);
                assert_int_equal(acc[(size_t)B * classes], 0x5a5a5a5a);
                const oct_qlinear *last = &t.m.layers[t.n_layers - 1];
                for (int i = 0; i < B * classes; i++)
                    assert_true(logits[i] ==
                                oct_acc_to_real(acc[i], last->a_scale, last->w_scale[i % classes]));
            }
        }
        free(x);
        free(ref);
        free(acc);
        free(logits);
    }
    oct_i8_engine_free(&e);
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
    model_free(&t);
}

static void engine_matches_reference(void **state) {
    (void)state;
    const int a[] = {784, 128, 10}, b[] = {37, 70, 19, 10}, c[] = {20, 3},
              d[] = {64, 65, 33, 17, 10};
    check_model(a, 3, 256);
    check_model(b, 4, 100); /* batch 256 runs in chunks of 100 */
    check_model(c, 2, 1);   /* a single layer, one row per chunk */
    check_model(d, 5, 256);
}

static void pixels_equal_floats(void **state) {
    (void)state;
    const int sizes[] = {100, 48, 10};
    test_model t;
    model_build(&t, sizes, 3, 5);
    enum { B = 300 };
    uint8_t *px = malloc((size_t)B * 100);
    float *x = malloc(sizeof(float) * B * 100);
    for (int i = 0; i < B * 100; i++) {
        px[i] = (uint8_t)(i * 37 + i / 100);
        x[i] = oct_pixel_normalize(px[i], t.m.in_mean, t.m.in_std);
    }
    px[0] = 0;
    px[1] = 255;
    x[0] = oct_pixel_normalize(0, t.m.in_mean, t.m.in_std);
    x[1] = oct_pixel_normalize(255, t.m.in_mean, t.m.in_std);
    int32_t acc_f[B * 10], acc_p[B * 10], acc_1[B * 10];
    float lg_f[B * 10], lg_p[B * 10];
    assert_int_equal(oct_i8_mlp_forward(&t.m, x, B, acc_f, lg_f, 1), OCT_OK);
    assert_int_equal(oct_i8_mlp_forward_u8(&t.m, px, B, acc_p, lg_p, 2), OCT_OK);
    assert_memory_equal(acc_f, acc_p, sizeof acc_f);
    assert_memory_equal(lg_f, lg_p, sizeof lg_f);
    oct_i8_engine e;
    assert_int_equal(oct_i8_engine_init(&e, &t.m, 1), OCT_OK);
    for (int r = 0; r < B; r++)
        oct_i8_engine_forward_u8(&e, px + r * 100, 1, acc_1 + r * 10, NULL, 1);
    assert_memory_equal(acc_f, acc_1, sizeof acc_f);
    oct_i8_engine_free(&e);
    free(px);
    free(x);
    model_free(&t);
}

static void check_rejects_bad_models(void **state) {
    (void)state;
    const int sizes[] = {30, 20, 10};
    test_model t;
    model_build(&t, sizes, 3, 9);
    oct_i8_engine e;
    t.m.layers[1].a_zp += 1;
    assert_int_equal(oct_i8_engine_init(&e, &t.m, 4), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "fc1"));
    t.m.layers[1].a_zp -= 1;
    t.m.layers[1].relu = true;
    assert_int_equal(oct_i8_mlp_check(&t.m), OCT_EINVAL);
    t.m.layers[1].relu = false;
    t.m.layers[0].y_qmax = 256;
    assert_int_equal(oct_i8_mlp_check(&t.m), OCT_EINVAL);
    t.m.layers[0].y_qmax = 255;
    t.m.layers[0].bias_q[3] = INT32_MAX;
    assert_int_equal(oct_i8_mlp_check(&t.m), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "fc0.bias_q"));
    t.m.layers[0].bias_q[3] = 0;
    assert_int_equal(oct_i8_mlp_check(&t.m), OCT_OK);
    model_free(&t);
}

/* ---- save / load --------------------------------------------------------------------------- */

static char tmpdir[] = "/tmp/octet-test-engine-XXXXXX";

static int setup_dir(void **state) {
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd);
}

static const char *tmp_path(const char *name) {
    static char buf[4][256];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return p;
}

static void round_trip(void **state) {
    (void)state;
    const int sizes[] = {37, 70, 19, 10};
    test_model t;
    model_build(&t, sizes, 4, 11);
    const char *path = tmp_path("model.int8.safetensors");
    assert_int_equal(oct_i8_mlp_save(&t.m, path), OCT_OK);
    oct_i8_mlp m2;
    if (oct_i8_mlp_load(&m2, path) != OCT_OK) fail_msg("%s", oct_last_error());
    assert_int_equal(m2.n_layers, 3);
    assert_true(m2.in_mean == t.m.in_mean && m2.in_std == t.m.in_std);
    for (int i = 0; i < 3; i++) {
        const oct_qlinear *a = &t.m.layers[i], *b = &m2.layers[i];
        assert_true(a->a_scale == b->a_scale && a->y_scale == b->y_scale);
        assert_int_equal(a->a_zp, b->a_zp);
        assert_int_equal(a->relu, b->relu);
        assert_int_equal(a->w.size, b->w.size);
        assert_memory_equal(a->w.data, b->w.data, a->w.size);
        assert_memory_equal(a->bias_q, b->bias_q, sizeof(int32_t) * (size_t)a->out);
        assert_memory_equal(a->m0, b->m0, sizeof(int32_t) * (size_t)a->out);
        assert_memory_equal(a->shift, b->shift, sizeof(int32_t) * (size_t)a->out);
        assert_memory_equal(a->w_scale, b->w_scale, sizeof(float) * (size_t)a->out);
    }
    enum { B = 50 };
    float *x = random_inputs(B, 37, 1);
    int32_t acc1[B * 10], acc2[B * 10];
    float lg1[B * 10], lg2[B * 10];
    assert_int_equal(oct_i8_mlp_forward(&t.m, x, B, acc1, lg1, 1), OCT_OK);
    assert_int_equal(oct_i8_mlp_forward(&m2, x, B, acc2, lg2, 1), OCT_OK);
    assert_memory_equal(acc1, acc2, sizeof acc1);
    assert_memory_equal(lg1, lg2, sizeof lg1);
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    assert_string_equal(oct_st_meta(&f, "octet.format"), "octet-int8-mlp");
    assert_string_equal(oct_st_meta(&f, "octet.format_version"), "2");
    assert_int_equal(f.count, 3 * 4 + 2 * 2);
    oct_st_close(&f);
    free(x);
    oct_i8_mlp_free(&m2);
    oct_i8_mlp_free(&m2); /* freeing twice is harmless */
    model_free(&t);
}

/* How to damage a valid export when copying it. */
typedef struct mutation {
    const char *drop;      /* leave this tensor out */
    const char *poke;      /* add 1 to element 1 of this tensor */
    const char *as_f32;    /* write this (4-byte) tensor as F32 */
    const char *shorten;   /* write this tensor as 1-D with one element less */
    const char *extra;     /* add a tensor of this name */
    const char *meta_key;  /* replace this metadata value ... */
    const char *meta_val;  /* ... by this */
    const char *graph_key; /* in layer 1 of the graph, set this integer field ... */
    int graph_val;         /* ... to this */
    const char *nan;       /* set element 1 of this F32 tensor to NaN */
    const char *acts;      /* set the graph's "activations" to this string */
} mutation;

static void rewrite(const char *src, const char *dst, const mutation *mu) {
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, src), OCT_OK);
    oct_st_writer w;
    oct_st_writer_init(&w);
    char *graph_text = NULL;
    for (int i = 0; i < f.nmeta; i++) {
        const char *k = f.meta[i].key, *v = f.meta[i].value;
        if (!strcmp(k, "octet.crc32")) continue;
        if (mu->meta_key && !strcmp(k, mu->meta_key)) v = mu->meta_val;
        if ((mu->graph_key || mu->acts) && !strcmp(k, "octet.graph")) {
            json_t *g = json_loads(v, 0, NULL);
            if (mu->graph_key)
                json_object_set_new(json_array_get(json_object_get(g, "layers"), 1), mu->graph_key,
                                    json_integer(mu->graph_val));
            if (mu->acts) json_object_set_new(g, "activations", json_string(mu->acts));
            v = graph_text = json_dumps(g, JSON_COMPACT);
            json_decref(g);
        }
        if (v) assert_int_equal(oct_st_writer_meta(&w, k, v), OCT_OK);
    }
    void *poked = NULL;
    for (int i = 0; i < f.count; i++) {
        const oct_st_entry *e = &f.entries[i];
        const void *data = e->data;
        oct_dtype dt = e->dtype;
        int ndim = e->ndim, shape[OCT_ST_MAX_DIMS];
        memcpy(shape, e->shape, sizeof shape);
        if (mu->drop && !strcmp(e->name, mu->drop)) continue;
        bool nan = mu->nan && !strcmp(e->name, mu->nan);
        if (nan || (mu->poke && !strcmp(e->name, mu->poke))) {
            poked = malloc(e->nbytes);
            memcpy(poked, e->data, e->nbytes);
            if (nan)
                ((float *)poked)[1] = NAN;
            else if (dt == OCT_DT_I8)
                ((int8_t *)poked)[1] += 1;
            else
                ((int32_t *)poked)[1] += 1;
            data = poked;
        }
        if (mu->as_f32 && !strcmp(e->name, mu->as_f32)) dt = OCT_DT_F32;
        if (mu->shorten && !strcmp(e->name, mu->shorten)) {
            ndim = 1;
            shape[0] = (int)e->numel - 1;
        }
        assert_int_equal(oct_st_writer_add(&w, e->name, dt, ndim, shape, data), OCT_OK);
    }
    int32_t one = 1, one_shape[1] = {1};
    if (mu->extra)
        assert_int_equal(oct_st_writer_add(&w, mu->extra, OCT_DT_I32, 1, one_shape, &one), OCT_OK);
    assert_int_equal(oct_st_writer_write(&w, dst), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_close(&f);
    free(poked);
    free(graph_text);
}

/* Loading path must fail with code and a one-line message naming the file and each of the
 * given words. */
static void expect_refused(const char *path, oct_status code, const char *word1,
                           const char *word2) {
    oct_i8_mlp m;
    memset(&m, 0x33, sizeof m);
    oct_status s = oct_i8_mlp_load(&m, path);
    const char *msg = oct_last_error();
    if (s != code || !strstr(msg, path) || (word1 && !strstr(msg, word1)) ||
        (word2 && !strstr(msg, word2)) || strchr(msg, '\n'))
        fail_msg("status %d (expected %d), message: %s", s, code, msg);
    assert_int_equal(m.n_layers, 0);
    assert_null(m.layers);
}

static void corrupt_exports_refused(void **state) {
    (void)state;
    const int sizes[] = {37, 70, 19, 10};
    test_model t;
    model_build(&t, sizes, 4, 13);
    const char *good = tmp_path("good.int8.safetensors"), *bad = tmp_path("bad.safetensors");
    assert_int_equal(oct_i8_mlp_save(&t.m, good), OCT_OK);
    const struct {
        mutation mu;
        oct_status code;
        const char *w1, *w2;
    } cases[] = {
        {{.drop = "fc1.bias_q"}, OCT_ENOTFOUND, "fc1.bias_q", NULL},
        {{.drop = "fc0.m0"}, OCT_ENOTFOUND, "fc0.m0", NULL},
        {{.poke = "fc0.wsum"}, OCT_EFORMAT, "fc0.wsum", "channel 1"},
        {{.poke = "fc1.weight_q"}, OCT_EFORMAT, "fc1.wsum", "fc1.weight_q"},
        {{.poke = "fc1.m0"}, OCT_EFORMAT, "fc1.m0", "channel 1"},
        {{.poke = "fc0.shift"}, OCT_EFORMAT, "fc0.m0/fc0.shift", NULL},
        {{.as_f32 = "fc2.bias_q"}, OCT_EFORMAT, "fc2.bias_q", "F32"},
        {{.shorten = "fc0.weight_q"}, OCT_ESHAPE, "fc0.weight_q", NULL},
        {{.shorten = "fc2.weight_scale"}, OCT_ESHAPE, "fc2.weight_scale", NULL},
        {{.extra = "fc2.m0"}, OCT_EFORMAT, "fc2.m0", "unexpected"},
        {{.extra = "fc7.wsum"}, OCT_EFORMAT, "fc7.wsum", "unexpected"},
        {{.meta_key = "octet.format_version", .meta_val = "3"},
         OCT_EFORMAT,
         "octet.format_version",
         "\"3\""},
        {{.meta_key = "octet.format_version", .meta_val = "02"},
         OCT_EFORMAT,
         "versions 1 to 2",
         NULL},
        {{.meta_key = "octet.format", .meta_val = NULL}, OCT_EFORMAT, "octet.format", "missing"},
        {{.meta_key = "octet.graph", .meta_val = "{\"layers\": 3"},
         OCT_EFORMAT,
         "octet.graph",
         NULL},
        {{.graph_key = "input_zero_point", .graph_val = 200}, OCT_EFORMAT, "fc1", "fc0"},
        {{.graph_key = "in", .graph_val = 69}, OCT_ESHAPE, "fc1.weight_q", NULL},
        {{.graph_key = "input_scale", .graph_val = 0}, OCT_EFORMAT, "fc1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(good, bad, &cases[i].mu);
        expect_refused(bad, cases[i].code, cases[i].w1, cases[i].w2);
    }
    /* The unmodified copy loads: the mutations above are what break the file. So does a
     * version 1 file (the same as version 2 without dynamic activations and packed codes). */
    mutation none = {0}, v1 = {.meta_key = "octet.format_version", .meta_val = "1"};
    oct_i8_mlp m;
    rewrite(good, bad, &none);
    assert_int_equal(oct_i8_mlp_load(&m, bad), OCT_OK);
    oct_i8_mlp_free(&m);
    rewrite(good, bad, &v1);
    assert_int_equal(oct_i8_mlp_load(&m, bad), OCT_OK);
    oct_i8_mlp_free(&m);

    /* Truncated, empty, missing. */
    FILE *in = fopen(good, "rb");
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    FILE *out = fopen(bad, "wb");
    fwrite(buf, 1, n - 100, out);
    fclose(out);
    expect_refused(bad, OCT_EFORMAT, NULL, NULL);
    out = fopen(bad, "wb");
    fclose(out);
    expect_refused(bad, OCT_EFORMAT, NULL, NULL);
    expect_refused(tmp_path("missing.safetensors"), OCT_EIO, NULL, NULL);
    model_free(&t);
}

static void save_refuses_bad_model(void **state) {
    (void)state;
    const int sizes[] = {30, 20, 10};
    test_model t;
    model_build(&t, sizes, 3, 17);
    const char *path = tmp_path("never.int8.safetensors");
    t.m.layers[1].in = 21;
    assert_int_equal(oct_i8_mlp_save(&t.m, path), OCT_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    t.m.layers[1].in = 20;
    model_free(&t);
}

/* ---- packed weights -------------------------------------------------------------------------- */

/* Codes of at most 16 values are saved as a codebook and 1-, 2-, 3- or 4-bit indices (3-bit ones
 * straddle bytes: rows of 37, 70 and 19), and load back to the same model; damaged packed
 * tensors are refused. */
static void packed_weights(void **state) {
    (void)state;
    const int sizes[] = {37, 70, 19, 10};
    const struct {
        int32_t qmin, qmax;
        int bits;
    } cases[] = {{-7, 7, 4}, {-8, 7, 4}, {-3, 3, 3},    {-4, 3, 3},
                 {-1, 1, 2}, {-1, 0, 1}, {-127, 127, 0}};
    enum { B = 20 };
    float *x = random_inputs(B, 37, 2);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        test_model t;
        model_build_codes(&t, sizes, 4, 31, cases[c].qmin, cases[c].qmax);
        const char *path = tmp_path("packed.int8.safetensors");
        assert_int_equal(oct_i8_mlp_save(&t.m, path), OCT_OK);
        oct_st_file f;
        assert_int_equal(oct_st_open(&f, path), OCT_OK);
        const oct_st_entry *idx = oct_st_find(&f, "fc0.weight_idx");
        const oct_st_entry *book = oct_st_find(&f, "fc0.weight_codebook");
        if (cases[c].bits) {
            assert_non_null(idx);
            assert_int_equal(idx->shape[1], (37 * cases[c].bits + 7) / 8);
            assert_int_equal(book->numel, 1 << cases[c].bits);
            assert_null(oct_st_find(&f, "fc0.weight_q"));
        } else {
            assert_null(idx);
            assert_non_null(oct_st_find(&f, "fc0.weight_q"));
        }
        oct_st_close(&f);
        oct_i8_mlp m2;
        if (oct_i8_mlp_load(&m2, path) != OCT_OK) fail_msg("%s", oct_last_error());
        int32_t acc1[B * 10], acc2[B * 10];
        for (int i = 0; i < 3; i++)
            assert_memory_equal(t.m.layers[i].w.data, m2.layers[i].w.data, t.m.layers[i].w.size);
        assert_int_equal(oct_i8_mlp_forward(&t.m, x, B, acc1, NULL, 1), OCT_OK);
        assert_int_equal(oct_i8_mlp_forward(&m2, x, B, acc2, NULL, 1), OCT_OK);
        assert_memory_equal(acc1, acc2, sizeof acc1);
        oct_i8_mlp_free(&m2);
        if (cases[c].qmin == -8) { /* 16 codes: every index change changes a code */
            const char *bad = tmp_path("bad-packed.safetensors");
            const struct {
                mutation mu;
                oct_status code;
                const char *w1, *w2;
            } bads[] = {
                {{.drop = "fc0.weight_codebook"}, OCT_ENOTFOUND, "fc0.weight_codebook", NULL},
                {{.shorten = "fc1.weight_codebook"},
                 OCT_ESHAPE,
                 "fc1.weight_codebook",
                 "2, 4, 8 or 16"},
                {{.shorten = "fc2.weight_idx"}, OCT_ESHAPE, "fc2.weight_idx", NULL},
                {{.poke = "fc1.weight_idx"}, OCT_EFORMAT, "fc1.wsum", "fc1.weight_idx"},
                {{.extra = "fc0.weight_q"}, OCT_EFORMAT, "fc0.weight_q", "unexpected"},
            };
            for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
                rewrite(path, bad, &bads[i].mu);
                expect_refused(bad, bads[i].code, bads[i].w1, bads[i].w2);
            }
        }
        model_free(&t);
    }
    free(x);
}

/* ---- dynamic activations ----------------------------------------------------------------- */

/* The dynamic layer's rule for rows x (M,in) from the float weights, in scalar code: each row's
 * range gives its u8 scale and zero point, int64 dot products of the codes, then the float
 * product of the two scales and the accumulator, plus the bias. */
static void dynamic_reference(const float *w, const float *b, int out, int in, bool relu,
                              const float *x, int M, float *y) {
    oct_qscheme wq = oct_qscheme_weights(), aq = oct_qscheme_activations();
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * in;
        float lo = xr[0], hi = xr[0], s;
        int32_t z;
        for (int k = 1; k < in; k++) {
            lo = xr[k] < lo ? xr[k] : lo;
            hi = xr[k] > hi ? xr[k] : hi;
        }
        assert_int_equal(oct_quant_params(&aq, lo, hi, &s, &z), OCT_OK);
        for (int c = 0; c < out; c++) {
            const float *wr = w + (size_t)c * in;
            float wlo = wr[0], whi = wr[0], ws;
            int32_t wz;
            for (int k = 1; k < in; k++) {
                wlo = wr[k] < wlo ? wr[k] : wlo;
                whi = wr[k] > whi ? wr[k] : whi;
            }
            assert_int_equal(oct_quant_params(&wq, wlo, whi, &ws, &wz), OCT_OK);
            int64_t acc = 0;
            for (int k = 0; k < in; k++)
                acc += (int64_t)(oct_quantize(xr[k], s, z, 0, 255) - z) *
                       oct_quantize(wr[k], ws, 0, -127, 127);
            float v = (float)((double)s * (double)ws * (double)acc) + (b ? b[c] : 0.0f);
            y[(size_t)m * out + c] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

/* Rows of every kind: random, all zero, all positive (zero point 0), all negative. */
static float *dynamic_inputs(int M, int in, uint64_t seed) {
    float *x = random_inputs(M, in, seed);
    for (int k = 0; k < in && M >= 4; k++) {
        x[k] = 0.0f;
        x[in + k] = fabsf(x[in + k]) + 0.5f;
        x[2 * in + k] = -fabsf(x[2 * in + k]) * 3.0f;
    }
    return x;
}

static void dynamic_layer_matches_reference(void **state) {
    (void)state;
    enum { M = 41, IN = 67, OUT = 35 };
    test_model t;
    const int sizes[] = {IN, OUT};
    model_build(&t, sizes, 2, 5);
    float *x = dynamic_inputs(M, IN, 9), want[M * OUT], got[M * OUT], s[M];
    uint8_t a[M * IN];
    int32_t z[M], acc[M * OUT];
    for (int relu = 0; relu <= 1; relu++) {
        oct_qlinear l = {0};
        assert_int_equal(oct_qlinear_build_dynamic(&l, OUT, IN, t.w[0], relu ? t.b[0] : NULL, relu),
                         OCT_OK);
        dynamic_reference(t.w[0], relu ? t.b[0] : NULL, OUT, IN, relu, x, M, want);
        for (int k = 0; k < N_KERNELS; k++) {
            if (!oct_i8_kernel_available(all_kernels[k])) continue;
            assert_int_equal(oct_i8_set_kernel(all_kernels[k]), OCT_OK);
            for (int threads = 1; threads <= 2; threads++) {
                memset(got, 0xff, sizeof got);
                oct_qlinear_dynamic(&l, x, M, a, s, z, acc, got, threads);
                assert_memory_equal(want, got, sizeof got);
                assert_int_equal(z[1], 0); /* the all-positive row */
            }
        }
        /* Close to the float product: within a few steps of the activation grid. */
        for (int m = 3; m < M; m++)
            for (int c = 0; c < OUT; c++) {
                double exact = relu ? t.b[0][c] : 0.0;
                for (int k = 0; k < IN; k++)
                    exact += (double)x[m * IN + k] * t.w[0][(size_t)c * IN + k];
                exact = relu && exact < 0 ? 0 : exact;
                assert_true(fabs(exact - got[m * OUT + c]) < 0.02);
            }
        oct_qlinear_free(&l);
    }
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
    free(x);
    model_free(&t);
}

/* t's float weights as a dynamic model (relu between the layers). */
static void dynamic_model(const test_model *t, oct_i8_mlp *m) {
    memset(m, 0, sizeof *m);
    m->dynamic = true;
    m->n_layers = t->n_layers;
    m->layers = calloc((size_t)t->n_layers, sizeof *m->layers);
    m->in_mean = t->m.in_mean;
    m->in_std = t->m.in_std;
    m->in_qmax = 255;
    for (int i = 0; i < t->n_layers; i++)
        assert_int_equal(oct_qlinear_build_dynamic(&m->layers[i], t->sizes[i + 1], t->sizes[i],
                                                   t->w[i], t->b[i], i < t->n_layers - 1),
                         OCT_OK);
}

static void dynamic_mlp(void **state) {
    (void)state;
    enum { B = 50, IN = 37, K = 10 };
    const int sizes[] = {IN, 70, 19, K};
    test_model t;
    model_build(&t, sizes, 4, 23);
    oct_i8_mlp m;
    dynamic_model(&t, &m);
    float *x = dynamic_inputs(B, IN, 4), want[B * K], got[B * K], h[2][B * 70];
    int32_t acc[B * K];
    /* The chain of reference layers. */
    dynamic_reference(t.w[0], t.b[0], 70, IN, true, x, B, h[0]);
    dynamic_reference(t.w[1], t.b[1], 19, 70, true, h[0], B, h[1]);
    dynamic_reference(t.w[2], t.b[2], K, 19, false, h[1], B, want);
    const int max_batch[] = {1, 7, 256};
    for (int i = 0; i < 3; i++) {
        oct_i8_engine e;
        assert_int_equal(oct_i8_engine_init(&e, &m, max_batch[i]), OCT_OK);
        oct_i8_engine_forward(&e, x, B, acc, got, 2);
        assert_memory_equal(want, got, sizeof got);
        oct_i8_engine_free(&e);
    }
    /* Raw pixels equal their normalized floats. */
    uint8_t px[B * IN];
    for (int i = 0; i < B * IN; i++) px[i] = (uint8_t)(i * 37 % 256);
    memset(px, 73, IN);         /* a constant row */
    memset(px + IN, 0, IN / 2); /* a row starting dark */
    for (int i = 0; i < B * IN; i++) x[i] = oct_pixel_normalize(px[i], m.in_mean, m.in_std);
    float lg2[B * K];
    assert_int_equal(oct_i8_mlp_forward(&m, x, B, acc, got, 1), OCT_OK);
    assert_int_equal(oct_i8_mlp_forward_u8(&m, px, B, acc, lg2, 1), OCT_OK);
    assert_memory_equal(got, lg2, sizeof got);
    /* Save and load: the same logits, the float biases and no static tensors. */
    const char *path = tmp_path("dynamic.int8.safetensors");
    assert_int_equal(oct_i8_mlp_save(&m, path), OCT_OK);
    oct_i8_mlp m2;
    if (oct_i8_mlp_load(&m2, path) != OCT_OK) fail_msg("%s", oct_last_error());
    assert_true(m2.dynamic);
    assert_int_equal(oct_i8_mlp_forward_u8(&m2, px, B, acc, lg2, 1), OCT_OK);
    assert_memory_equal(got, lg2, sizeof got);
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    assert_int_equal(f.count, 3 * 4);
    assert_non_null(oct_st_find(&f, "fc1.bias"));
    assert_null(oct_st_find(&f, "fc1.bias_q"));
    assert_non_null(strstr(oct_st_meta(&f, "octet.graph"), "\"activations\":\"dynamic\""));
    oct_st_close(&f);
    /* A static layer in a dynamic model, and a dynamic one in a static model, are refused. */
    m2.layers[1].dynamic = false;
    assert_int_equal(oct_i8_mlp_check(&m2), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "fc1: a static layer"));
    assert_int_equal(oct_i8_mlp_check(&t.m), OCT_OK);
    t.m.layers[2].dynamic = true;
    assert_int_equal(oct_i8_mlp_check(&t.m), OCT_EINVAL);
    t.m.layers[2].dynamic = false;
    m2.layers[1].dynamic = true;
    oct_i8_mlp_free(&m2);
    free(x);
    oct_i8_mlp_free(&m);
    model_free(&t);
}

static void corrupt_dynamic_exports_refused(void **state) {
    (void)state;
    const int sizes[] = {37, 70, 19, 10};
    test_model t;
    model_build(&t, sizes, 4, 29);
    oct_i8_mlp m;
    dynamic_model(&t, &m);
    const char *good = tmp_path("good.dyn.safetensors"), *bad = tmp_path("bad.dyn.safetensors");
    assert_int_equal(oct_i8_mlp_save(&m, good), OCT_OK);
    const struct {
        mutation mu;
        oct_status code;
        const char *w1, *w2;
    } cases[] = {
        {{.drop = "fc1.bias"}, OCT_ENOTFOUND, "fc1.bias", NULL},
        {{.extra = "fc0.bias_q"}, OCT_EFORMAT, "fc0.bias_q", "unexpected"},
        {{.extra = "fc2.m0"}, OCT_EFORMAT, "fc2.m0", "unexpected"},
        {{.nan = "fc2.bias"}, OCT_EFORMAT, "fc2.bias", "not finite"},
        {{.poke = "fc1.wsum"}, OCT_EFORMAT, "fc1.wsum", "channel 1"},
        {{.shorten = "fc0.bias"}, OCT_ESHAPE, "fc0.bias", NULL},
        {{.acts = "float"}, OCT_EFORMAT, "activations", NULL},
        {{.acts = "static"}, OCT_EFORMAT, "graph layer fc0", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(good, bad, &cases[i].mu);
        expect_refused(bad, cases[i].code, cases[i].w1, cases[i].w2);
    }
    mutation none = {0};
    rewrite(good, bad, &none);
    oct_i8_mlp m2;
    assert_int_equal(oct_i8_mlp_load(&m2, bad), OCT_OK);
    oct_i8_mlp_free(&m2);
    oct_i8_mlp_free(&m);
    model_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(engine_matches_reference),        cmocka_unit_test(pixels_equal_floats),
        cmocka_unit_test(check_rejects_bad_models),        cmocka_unit_test(round_trip),
        cmocka_unit_test(corrupt_exports_refused),         cmocka_unit_test(save_refuses_bad_model),
        cmocka_unit_test(dynamic_layer_matches_reference), cmocka_unit_test(dynamic_mlp),
        cmocka_unit_test(corrupt_dynamic_exports_refused), cmocka_unit_test(packed_weights),
    };
    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
