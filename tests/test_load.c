/* Tests for what the model loaders refuse (trainers/load_check.c and its callers mlp_model_load,
 * gpt_model_load, gpt_checkpoint_restore): non-finite parameters and optimizer state, non-finite
 * normalization metadata, octet.qat_steps that is not a count in [0, 2^53], and corrupt
 * quantizer state, each with one message naming the file and the tensor or key; and the data
 * check eval and calibrate share (mlp_data_check). Files live in a fresh directory under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../trainers/gpt_checkpoint.h"
#include "../trainers/gpt_model.h"
#include "../trainers/mlp_model.h"
#include "octet/io.h"
#include "octet/optim.h"

static char dir[64], good[96], bad[96];

/* Rewrites src as dst with metadata key set to value (when key) and value `index` of the F32
 * tensor `name` set to v (when name). */
static void rewrite(const char *src, const char *dst, const char *key, const char *value,
                    const char *name, int64_t index, float v) {
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, src), OCT_OK);
    oct_st_writer w;
    oct_st_writer_init(&w);
    for (int i = 0; i < f.nmeta; i++)
        if (strcmp(f.meta[i].key, "octet.crc32") && (!key || strcmp(f.meta[i].key, key)))
            assert_int_equal(oct_st_writer_meta(&w, f.meta[i].key, f.meta[i].value), OCT_OK);
    if (key) assert_int_equal(oct_st_writer_meta(&w, key, value), OCT_OK);
    float *patched = NULL;
    for (int i = 0; i < f.count; i++) {
        const oct_st_entry *e = &f.entries[i];
        const void *data = e->data;
        if (name && !strcmp(e->name, name)) {
            assert_true(e->dtype == OCT_DT_F32 && index < e->numel);
            patched = malloc(e->nbytes);
            memcpy(patched, e->data, e->nbytes);
            patched[index] = v;
            data = patched;
        }
        assert_int_equal(oct_st_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, data), OCT_OK);
    }
    assert_true(!name || patched);
    assert_int_equal(oct_st_writer_write(&w, dst), OCT_OK);
    oct_st_writer_free(&w);
    free(patched);
    oct_st_close(&f);
}

/* A call returned got on the file bad: it must be OCT_EFORMAT with one message naming bad and
 * containing want. */
static void expect_refused(oct_status got, const char *want) {
    const char *msg = oct_last_error();
    if (got != OCT_EFORMAT || !strstr(msg, want) || !strstr(msg, bad) || strchr(msg, '\n'))
        fail_msg("expected an error naming %s and '%s', got %d: %s", bad, want, got, msg);
}

static void expect_mlp_refused(const char *want) {
    mlp_model m;
    expect_refused(mlp_model_load(&m, bad), want);
    assert_int_equal(m.params.n, 0);
}

static void expect_gpt_refused(const char *want) {
    gpt_model m;
    expect_refused(gpt_model_load(&m, bad), want);
    assert_int_equal(m.params.n, 0);
}

/* octet.qat_steps values a QAT file may not hold, and ones it may. */
static const char *const bad_steps[] = {"99999999999999999999", "",    "-1", "+5", " 1", "1x",
                                        "9007199254740993",     "0x10"};

static void mlp_values_checked(void **state) {
    mlp_model m;
    assert_int_equal(
        mlp_model_init(&m, (int[]){9, 8, 3}, 3, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, 1), OCT_OK);
    assert_int_equal(mlp_model_save(&m, good), OCT_OK);
    rewrite(good, bad, NULL, NULL, "fc1.bias", 2, INFINITY);
    expect_mlp_refused("tensor 'fc1.bias' holds inf at index 2, not a finite value");
    rewrite(good, bad, NULL, NULL, "fc0.weight", 5, NAN);
    expect_mlp_refused("tensor 'fc0.weight' holds nan at index 5");
    rewrite(good, bad, "octet.input_std", "1e999", NULL, 0, 0);
    expect_mlp_refused("metadata 'octet.input_std' is not a finite number: '1e999'");
    rewrite(good, bad, "octet.input_mean", "-inf", NULL, 0, 0);
    expect_mlp_refused("metadata 'octet.input_mean' is not a finite number");

    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    assert_int_equal(mlp_model_enable_qat(&m, &cfg), OCT_OK);
    m.qat_on = true;
    assert_int_equal(mlp_model_save(&m, good), OCT_OK);
    mlp_model_free(&m);
    for (size_t i = 0; i < sizeof bad_steps / sizeof bad_steps[0]; i++) {
        rewrite(good, bad, "octet.qat_steps", bad_steps[i], NULL, 0, 0);
        expect_mlp_refused("metadata 'octet.qat_steps' is '");
    }
    const char *ok_steps[] = {"9007199254740992", "000000000000000000000007"};
    const int64_t want[] = {INT64_C(9007199254740992), 7};
    for (int i = 0; i < 2; i++) {
        rewrite(good, bad, "octet.qat_steps", ok_steps[i], NULL, 0, 0);
        assert_int_equal(mlp_model_load(&m, bad), OCT_OK);
        assert_true(m.qat->steps == want[i]);
        mlp_model_free(&m);
    }
    rewrite(good, bad, NULL, NULL, "act0.hi", 0, NAN);
    expect_mlp_refused("tensor 'act0.hi' is nan");
    rewrite(good, bad, NULL, NULL, "act1.lo", 0, 3e38f);
    expect_mlp_refused("tensor 'act1.lo' is 3e+38");
}

static void gpt_values_checked(void **state) {
    oct_vocab v;
    assert_int_equal(oct_vocab_from_bytes(&v, (const uint8_t *)"abcd", 4), OCT_OK);
    oct_gpt_config cfg = {
        .vocab = 4, .context = 8, .n_layer = 1, .n_head = 2, .width = 8, .mlp = 12};
    gpt_model m;
    assert_int_equal(gpt_model_init(&m, &cfg, &v, 3), OCT_OK);
    assert_int_equal(gpt_model_save(&m, good), OCT_OK);
    rewrite(good, bad, NULL, NULL, "h.0.attn.qkv.bias", 1, -INFINITY);
    expect_gpt_refused("tensor 'h.0.attn.qkv.bias' holds -inf at index 1");
    rewrite(good, bad, NULL, NULL, "wte.weight", 7, NAN);
    expect_gpt_refused("tensor 'wte.weight' holds nan at index 7");

    oct_qat_config qc;
    oct_qat_config_default(&qc);
    assert_int_equal(gpt_model_enable_qat(&m, &qc), OCT_OK);
    m.qat_on = true;
    assert_int_equal(gpt_model_save(&m, good), OCT_OK);
    gpt_model_free(&m);
    for (size_t i = 0; i < sizeof bad_steps / sizeof bad_steps[0]; i++) {
        rewrite(good, bad, "octet.qat_steps", bad_steps[i], NULL, 0, 0);
        expect_gpt_refused("metadata 'octet.qat_steps' is '");
    }
    rewrite(good, bad, NULL, NULL, "h.0.attn.qkv.in.hi", 0, INFINITY);
    expect_gpt_refused("tensor 'h.0.attn.qkv.in.hi' is inf");
    assert_int_equal(gpt_model_load(&m, good), OCT_OK);
    gpt_model_free(&m);
}

/* A checkpoint's optimizer state must be finite too. */
static void checkpoint_state_checked(void **state) {
    oct_vocab v;
    assert_int_equal(oct_vocab_from_bytes(&v, (const uint8_t *)"xyz", 3), OCT_OK);
    oct_gpt_config cfg = {
        .vocab = 3, .context = 4, .n_layer = 1, .n_head = 1, .width = 4, .mlp = 8};
    gpt_model m;
    assert_int_equal(gpt_model_init(&m, &cfg, &v, 5), OCT_OK);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    oct_optim opt;
    assert_int_equal(oct_optim_init(&opt, OCT_OPTIM_ADAMW, &m.params, &m.arena, &h), OCT_OK);
    static gpt_run run;
    char *argv[] = {"train", "gpt"};
    assert_int_equal(gpt_checkpoint_save(good, &m, &opt, &run, 2, argv), OCT_OK);
    assert_int_equal(gpt_checkpoint_restore(good, &opt, &run), OCT_OK);
    char name[128];
    snprintf(name, sizeof name, "%s%s", GPT_OPTIM_PREFIX, opt.state[3]->name);
    rewrite(good, bad, NULL, NULL, name, 2, NAN);
    char want[192];
    snprintf(want, sizeof want, "tensor '%s' holds nan at index 2", name);
    expect_refused(gpt_checkpoint_restore(bad, &opt, &run), want);
    oct_optim_free(&opt);
    gpt_model_free(&m);
}

/* The data check eval and calibrate share: pixels and labels must fit the model. */
static void data_checked(void **state) {
    oct_image_set set = {.n = 5, .rows = 28, .cols = 28, .n_classes = 10};
    assert_int_equal(mlp_data_check("m.st", 784, 10, &set, "test", "D"), OCT_OK);
    set.cols = 27;
    assert_int_equal(mlp_data_check("m.st", 784, 10, &set, "test", "D"), OCT_ESHAPE);
    assert_string_equal(oct_last_error(), "m.st takes 784 inputs for 10 classes, but the test "
                                          "images in D have 756 pixels (28x27) and labels up to 9");
    set.cols = 28;
    set.n_classes = 256;
    assert_int_equal(mlp_data_check("m.st", 784, 10, &set, "training", "D"), OCT_ESHAPE);
    assert_non_null(strstr(oct_last_error(), "the training images in D have 784 pixels (28x28) "
                                             "and labels up to 255"));
}

static int make_dir(void **state) {
    snprintf(dir, sizeof dir, "/tmp/octet-test-load.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(good, sizeof good, "%s/good.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    return 0;
}

static int remove_dir(void **state) {
    unlink(good);
    unlink(bad);
    return rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mlp_values_checked),
        cmocka_unit_test(gpt_values_checked),
        cmocka_unit_test(checkpoint_state_checked),
        cmocka_unit_test(data_checked),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
