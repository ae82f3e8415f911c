/* Tests for the import of PyTorch MLP state dicts (trainers/torch_import.c; the GPT import is
 * tested in test_gpt.c): a state dict written from an octet MLP under PyTorch's names (layers in
 * an order that sorts as numbers, not as text; written in reverse; with and without biases; F32
 * and BF16) imports to the same logits bit for bit, and every way such a file can be wrong is a
 * clear error naming the file. Files live in a fresh directory under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../trainers/torch_import.h"
#include "bf16.h"
#include "octet/io.h"

static char dir[64], path[128];

/* A 6-5-4-3 ReLU MLP with every weight and bias drawn N(0, 0.5^2), rounded to bfloat16 numbers
 * when bf16 (so a BF16 file holds them exactly). */
static void small_mlp(mlp_model *m, bool bf16) {
    int sizes[4] = {6, 5, 4, 3};
    assert_int_equal(mlp_model_init(m, sizes, 4, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, 3),
                     OCT_OK);
    oct_rng rng;
    oct_rng_seed(&rng, 11, 0);
    for (int i = 0; i < m->params.n; i++) {
        oct_tensor *t = m->params.items[i];
        for (int64_t j = 0; j < t->size; j++) {
            float v = 0.5f * oct_rng_normal(&rng);
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            bits &= bf16 ? 0xffff0000u : 0xffffffffu;
            memcpy(&t->data[j], &bits, sizeof bits);
        }
    }
}

/* What write_torch changes. */
typedef enum { AS_IS, NO_BIASES, TRANSPOSED, EXTRA, ORPHAN_BIAS, NAN_BIAS } torch_edit;

/* Writes m as a PyTorch state dict "_orig_mod.net.<k>.weight" / ".bias" with k = 2, 10, 100 (an
 * order that sorts as numbers, not as text), last layer first, in dtype dt (F32 or BF16). */
static void write_torch(const mlp_model *m, torch_edit edit, oct_dtype dt) {
    static const int index[3] = {2, 10, 100};
    static char names[8][64];
    static uint16_t half[256];
    static float bad[8], one[1] = {1.0f};
    size_t used = 0;
    oct_st_writer w;
    oct_st_writer_init(&w);
    for (int i = 2; i >= 0; i--) {
        const oct_linear_layer *l = &m->mlp.layers[i];
        for (int k = 0; k < 2; k++) {
            const oct_tensor *t = k ? l->b : l->w;
            if (k && edit == NO_BIASES) continue;
            char *name = names[2 * i + k];
            snprintf(name, sizeof names[0], "_orig_mod.net.%d.%s", index[i], k ? "bias" : "weight");
            int shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
            if (edit == TRANSPOSED && i == 1 && !k) shape[0] = t->shape[1], shape[1] = t->shape[0];
            const void *data = t->data;
            if (dt == OCT_DT_BF16) {
                to_bf16(t->data, t->size, half + used);
                data = half + used;
                used += (size_t)t->size;
            }
            if (edit == NAN_BIAS && i == 2 && k) {
                memcpy(bad, t->data, (size_t)t->size * sizeof *bad);
                bad[1] = -INFINITY;
                data = bad;
            }
            assert_int_equal(oct_st_writer_add(&w, name, dt, t->ndim, shape, data), OCT_OK);
        }
    }
    int n1 = 1;
    if (edit == EXTRA) /* a BatchNorm buffer */
        assert_int_equal(oct_st_writer_add(&w, "net.3.running_mean", OCT_DT_F32, 1, &n1, one),
                         OCT_OK);
    if (edit == ORPHAN_BIAS)
        assert_int_equal(oct_st_writer_add(&w, "net.7.bias", OCT_DT_F32, 1, &n1, one), OCT_OK);
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
}

/* Bit-identical logits of a and b on a fixed batch. */
static void assert_same_logits(mlp_model *a, mlp_model *b) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    oct_tensor *x = oct_tensor_new2(&g.arena, 4, 6);
    for (int i = 0; i < 24; i++) x->data[i] = (float)(i % 7) * 0.3f - 0.8f;
    oct_tensor *la = mlp_model_forward(a, &g, x), *lb = mlp_model_forward(b, &g, x);
    assert_memory_equal(la->data, lb->data, (size_t)la->size * sizeof(float));
    oct_graph_free(&g);
}

static void import_matches(void **state) {
    for (int k = 0; k < 3; k++) { /* F32; BF16; F32 without biases */
        mlp_model a, b;
        small_mlp(&a, k == 1);
        if (k == 2)
            for (int i = 0; i < 3; i++)
                memset(a.mlp.layers[i].b->data, 0, (size_t)a.mlp.layers[i].b->size * sizeof(float));
        write_torch(&a, k == 2 ? NO_BIASES : AS_IS, k == 1 ? OCT_DT_BF16 : OCT_DT_F32);
        torch_import_info info;
        assert_int_equal(mlp_import(&b, path, OCT_ACT_RELU, 0.5f, 0.25f, &info), OCT_OK);
        assert_int_equal(b.mlp.n_layers, 3);
        for (int i = 0; i <= 3; i++) assert_int_equal(b.mlp.sizes[i], a.mlp.sizes[i]);
        assert_true(b.mean == 0.5f && b.std == 0.25f);
        assert_int_equal(info.zero_biases, k == 2 ? 3 : 0);
        assert_same_logits(&a, &b);
        mlp_model_free(&a);
        mlp_model_free(&b);
    }
}

/* Importing fails with status and a message naming the file and containing want. */
static void expect_error(oct_status status, const char *want) {
    mlp_model m;
    torch_import_info info;
    assert_int_equal(mlp_import(&m, path, OCT_ACT_RELU, 0.5f, 0.25f, &info), status);
    if (!strstr(oct_last_error(), want) || !strstr(oct_last_error(), path))
        fail_msg("error '%s' lacks '%s' or the path", oct_last_error(), want);
    assert_int_equal(m.params.n, 0);
}

static void import_errors(void **state) {
    mlp_model a;
    small_mlp(&a, false);
    write_torch(&a, TRANSPOSED, OCT_DT_F32);
    expect_error(OCT_ESHAPE,
                 "'_orig_mod.net.10.weight' takes 4 inputs, but '_orig_mod.net.2.weight' gives 5");
    write_torch(&a, EXTRA, OCT_DT_F32);
    expect_error(OCT_EFORMAT, "'net.3.running_mean' has no place in an MLP");
    write_torch(&a, ORPHAN_BIAS, OCT_DT_F32);
    expect_error(OCT_EFORMAT, "a '.bias' tensor without its '.weight'");
    write_torch(&a, NAN_BIAS, OCT_DT_F32);
    expect_error(OCT_EFORMAT, "'_orig_mod.net.100.bias' holds a non-finite value");
    assert_int_equal(mlp_model_save(&a, path), OCT_OK);
    expect_error(OCT_EINVAL, "already an octet model");
    assert_int_equal(truncate(path, 100), 0);
    expect_error(OCT_EFORMAT, "");
    unlink(path);
    expect_error(OCT_EIO, "");
    mlp_model_free(&a);
}

/* An octet MLP file whose metadata ask for 4 TB of layers is refused before anything is
 * allocated (mlp_model_load). */
static void model_sizes_checked(void **state) {
    mlp_model a;
    small_mlp(&a, false);
    assert_int_equal(mlp_model_save(&a, path), OCT_OK);
    mlp_model_free(&a);
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, path), OCT_OK);
    oct_st_writer w;
    oct_st_writer_init(&w);
    for (int i = 0; i < f.nmeta; i++)
        if (strcmp(f.meta[i].key, "octet.crc32") && strcmp(f.meta[i].key, "octet.sizes"))
            assert_int_equal(oct_st_writer_meta(&w, f.meta[i].key, f.meta[i].value), OCT_OK);
    assert_int_equal(oct_st_writer_meta(&w, "octet.sizes", "1048576,1048576,1048576"), OCT_OK);
    for (int i = 0; i < f.count; i++) {
        const oct_st_entry *e = &f.entries[i];
        assert_int_equal(oct_st_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, e->data),
                         OCT_OK);
    }
    char big[160];
    snprintf(big, sizeof big, "%s.big", path);
    assert_int_equal(oct_st_writer_write(&w, big), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_close(&f);
    mlp_model m;
    assert_int_equal(mlp_model_load(&m, big), OCT_EFORMAT);
    if (!strstr(oct_last_error(), "make 2199025352704 parameters, but the file holds"))
        fail_msg("error '%s'", oct_last_error());
    assert_int_equal(m.params.n, 0);
    unlink(big);
    unlink(path);
}

static int make_dir(void **state) {
    snprintf(dir, sizeof dir, "/tmp/octet-test-import.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/torch.safetensors", dir);
    return 0;
}

static int remove_dir(void **state) {
    unlink(path);
    return rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(import_matches),
        cmocka_unit_test(import_errors),
        cmocka_unit_test(model_sizes_checked),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
