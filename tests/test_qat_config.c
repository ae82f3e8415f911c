/* Tests for the QAT configuration (include/octet/qat.h): defaults and checks, the JSON form
 * saved in model files, and mixed precision (per-layer weight bits by layer-name pattern):
 * parsing, the last-match-wins rule, patterns that match no layer, and the bits each layer of an
 * MLP and a GPT gets. (test_qat checks that a mixed-precision export is bit-exact.) And the
 * quantizer state a model file may hold (oct_qat_mlp_check): empty or valid observed ranges,
 * finite learned steps; and their projection after an optimizer step (oct_qat_mlp_project). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "octet/nn.h"
#include "octet/qat.h"

static void config_json_round_trip(void **state) {
    oct_qat_config c, d;
    oct_qat_config_default(&c);
    c.weight_bits = 4;
    c.act_bits = 6;
    c.weight_mode = OCT_QAT_W_KMEANS;
    assert_int_equal(oct_qat_amodes_parse("ema,pact,lsq", &c), OCT_OK);
    assert_int_equal(c.n_act_modes, 3);
    c.momentum = 0.05f;
    c.freeze_after = 1234;
    c.embed_bits = 6;
    strcpy(c.layer_bits, "lm_head=7,h.*.mlp.fc=3");
    c.per_tensor_weights = true;
    char *s = oct_qat_config_to_json(&c);
    assert_non_null(s);
    oct_qat_config_default(&d);
    assert_int_equal(oct_qat_config_from_json(&d, s), OCT_OK);
    free(s);
    assert_memory_equal(&c, &d, sizeof c);
    oct_qat_config e; /* without layer bits the JSON has no such key (as older files) */
    oct_qat_config_default(&e);
    s = oct_qat_config_to_json(&e);
    assert_null(strstr(s, "layer_bits"));
    assert_null(strstr(s, "per_tensor"));
    free(s);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"layer_bits\": \"fc0=9\"}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"layer_bits\": 8}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"per_tensor_weights\": 1}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"weight_bits\": 4, \"act_scheme\": 1}"),
                     OCT_EFORMAT);
    assert_non_null(strstr(oct_last_error(), "unknown setting 'act_scheme'"));
    assert_int_equal(oct_qat_config_from_json(&d, "{\"per_tensor_weights\": true, "
                                                  "\"weight_mode\": \"lsq\"}"),
                     OCT_EFORMAT); /* learned steps are per channel */
    assert_int_equal(oct_qat_config_from_json(&d, "{\"weight_bits\": 9}"), OCT_EFORMAT);
    /* 2^32 + 8 would wrap to 8 as an int */
    assert_int_equal(oct_qat_config_from_json(&d, "{\"weight_bits\": 4294967304}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"act_bits\": -4294967288}"), OCT_EFORMAT);
    /* jansson's message about the broken text stays on one line */
    assert_int_equal(oct_qat_config_from_json(&d, "\"\\\n"), OCT_EFORMAT);
    assert_null(strchr(oct_last_error(), '\n'));
    assert_int_equal(oct_qat_config_from_json(&d, "{\"embed_bits\": 1}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"embed_bits\": \"8\"}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "{\"act_modes\": [\"relu\"]}"), OCT_EFORMAT);
    assert_int_equal(oct_qat_config_from_json(&d, "[1]"), OCT_EFORMAT);
    assert_int_equal(oct_qat_amodes_parse("ema,,pact", &d), OCT_EINVAL);
    assert_int_equal(oct_qat_config_act_mode(&c, 1), OCT_QAT_A_PACT);
    oct_qat_config_default(&d);
    assert_int_equal(oct_qat_amodes_parse("pact", &d), OCT_OK);
    assert_int_equal(oct_qat_config_act_mode(&d, 0), OCT_QAT_A_EMA); /* input: no ReLU */
    assert_int_equal(oct_qat_config_act_mode(&d, 2), OCT_QAT_A_PACT);
    d.weight_mode = OCT_QAT_W_POW2; /* powers of two up to 2^6 fit int8: 2..4 bits */
    assert_int_equal(oct_qat_config_check(&d), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "pow2 weights take 2..4 bits"));
    d.weight_bits = 4;
    assert_int_equal(oct_qat_config_check(&d), OCT_OK);
    d.weight_mode = OCT_QAT_W_KMEANS; /* 2..7 bits: 8 would be the uniform grid */
    d.weight_bits = 8;
    assert_int_equal(oct_qat_config_check(&d), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "kmeans codebooks take 2..7 bits"));
}

static oct_status with_layer_bits(const char *spec, int weight_bits, oct_qat_wmode mode) {
    oct_qat_config c;
    oct_qat_config_default(&c);
    c.weight_bits = weight_bits;
    c.weight_mode = mode;
    strcpy(c.layer_bits, spec);
    return oct_qat_config_check(&c);
}

static void layer_bits_parse(void **state) {
    const char *good[] = {"", "fc0=8", "fc0=8,fc*=4", "h.[0-1].attn.*=6,lm_head=8", "*=2"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(with_layer_bits(good[i], 4, OCT_QAT_W_MINMAX), OCT_OK);
    const char *bad[] = {"fc0",   "=8",    "fc0=",   "fc0=x",  "fc0=8x",
                         "fc0=9", "fc0=1", "fc0=8,", ",fc0=8", "fc0=8,,fc1=4"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(with_layer_bits(bad[i], 4, OCT_QAT_W_MINMAX), OCT_EINVAL);
        assert_non_null(strstr(oct_last_error(), "layer bits"));
    }
    /* the weight quantizer's limits hold per layer too */
    assert_int_equal(with_layer_bits("fc0=4", 3, OCT_QAT_W_POW2), OCT_OK);
    assert_int_equal(with_layer_bits("fc0=5", 3, OCT_QAT_W_POW2), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "layer bits fc0=5: pow2 weights take 2..4 bits"));
    assert_int_equal(with_layer_bits("fc0=8", 3, OCT_QAT_W_KMEANS), OCT_EINVAL);
    oct_qat_config c;
    oct_qat_config_default(&c);
    memset(c.layer_bits, 'a', sizeof c.layer_bits); /* not terminated */
    assert_int_equal(oct_qat_config_check(&c), OCT_EINVAL);
}

static void layer_bits_resolve(void **state) {
    oct_qat_config c;
    oct_qat_config_default(&c);
    c.weight_bits = 4;
    strcpy(c.layer_bits, "h.*.attn.*=6,h.0.*=8,lm_head=8,h.1.attn.qkv=3");
    assert_int_equal(oct_qat_config_check(&c), OCT_OK);
    assert_int_equal(oct_qat_config_weight_bits(&c, "h.0.attn.qkv"), 8);
    assert_int_equal(oct_qat_config_weight_bits(&c, "h.0.mlp.fc"), 8);
    assert_int_equal(oct_qat_config_weight_bits(&c, "h.1.attn.proj"), 6);
    assert_int_equal(oct_qat_config_weight_bits(&c, "h.1.attn.qkv"), 3);
    assert_int_equal(oct_qat_config_weight_bits(&c, "h.1.mlp.fc"), 4);
    assert_int_equal(oct_qat_config_weight_bits(&c, "lm_head"), 8);
    assert_int_equal(oct_qat_config_weight_bits(&c, "lm_headx"), 4); /* whole-name matches */
    const char *names[] = {"h.0.attn.qkv", "h.1.attn.qkv", "lm_head"};
    assert_int_equal(oct_qat_config_check_layers(&c, names, 3), OCT_OK);
    strcpy(c.layer_bits, "lm_head=8,h.2.*=6");
    assert_int_equal(oct_qat_config_check_layers(&c, names, 3), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'h.2.*' matches no layer"));
}

/* The bits each layer of a QAT MLP and GPT gets, seen in their weight schemes; a pattern that
 * names no layer of the model fails its init. */
static void layer_bits_in_models(void **state) {
    oct_arena arena;
    oct_arena_init(&arena, 0);
    oct_rng rng;
    oct_rng_seed(&rng, 5, 1);
    oct_params params;
    oct_params_init(&params);
    oct_mlp mlp;
    assert_int_equal(oct_mlp_init(&mlp, &arena, &params, (int[]){12, 8, 6, 3}, 4, OCT_ACT_RELU,
                                  OCT_INIT_KAIMING_UNIFORM, &rng),
                     OCT_OK);
    oct_qat_config c;
    oct_qat_config_default(&c);
    c.weight_bits = 2;
    strcpy(c.layer_bits, "fc2=8,fc1=5");
    oct_qat_mlp q;
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &c), OCT_OK);
    assert_int_equal(q.layers[0].wscheme.qmax, 1);
    assert_int_equal(q.layers[1].wscheme.qmax, 15);
    assert_int_equal(q.layers[2].wscheme.qmax, 127);
    oct_qat_mlp_free(&q);
    strcpy(c.layer_bits, "fc3=8");
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &c), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "'fc3' matches no layer (fc0 ... fc2)"));

    oct_gpt gpt;
    oct_gpt_config gc = {
        .vocab = 11, .context = 8, .n_layer = 2, .n_head = 2, .width = 8, .mlp = 16};
    assert_int_equal(oct_gpt_init(&gpt, &arena, &params, &gc, &rng), OCT_OK);
    c.weight_bits = 4;
    c.weight_mode = OCT_QAT_W_KMEANS; /* bits give the codebook size */
    strcpy(c.layer_bits, "h.1.*=2,lm_head=7");
    oct_qat_gpt qg;
    assert_int_equal(oct_qat_gpt_init(&qg, &gpt, &arena, &params, &c), OCT_OK);
    for (int j = 0; j < qg.n_linear; j++)
        assert_int_equal(qg.lin[j].wlevels, j == 8 ? 128 : j >= 4 ? 4 : 16);
    oct_qat_gpt_free(&qg);
    strcpy(c.layer_bits, "fc0=6");
    assert_int_equal(oct_qat_gpt_init(&qg, &gpt, &arena, &params, &c), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "(h.0.attn.qkv ... lm_head)"));
    oct_params_free(&params);
    oct_arena_free(&arena);
}

/* Expects oct_qat_mlp_check to fail naming tensor (NULL: to pass). */
static void expect_state(const oct_qat_mlp *q, const char *tensor) {
    oct_status s = oct_qat_mlp_check(q);
    if (!tensor) {
        assert_int_equal(s, OCT_OK);
        return;
    }
    if (s != OCT_EFORMAT || !strstr(oct_last_error(), tensor))
        fail_msg("expected an error naming '%s', got %d: %s", tensor, s, oct_last_error());
}

/* Quantizer state as a file may hold it: empty or valid ranges, finite learned steps. */
static void loaded_state_checked(void **state) {
    oct_arena arena;
    oct_arena_init(&arena, 0);
    oct_rng rng;
    oct_rng_seed(&rng, 5, 0);
    oct_params params;
    oct_params_init(&params);
    oct_mlp mlp;
    int sizes[4] = {9, 8, 8, 3};
    assert_int_equal(
        oct_mlp_init(&mlp, &arena, &params, sizes, 4, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng),
        OCT_OK);
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    assert_int_equal(oct_qat_amodes_parse("lsq,pact,ema", &cfg), OCT_OK);
    cfg.weight_mode = OCT_QAT_W_LSQ;
    oct_qat_mlp q;
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_OK);
    expect_state(&q, NULL); /* nothing observed or learned yet */
    float *lo = q.acts[2].lo->data, *hi = q.acts[2].hi->data;
    const struct {
        float lo, hi;
        const char *tensor;
    } bad[] = {{NAN, 1.0f, "'act2.lo' is nan"},        {0.0f, INFINITY, "'act2.hi' is inf"},
               {-INFINITY, 1.0f, "'act2.lo' is -inf"}, {0.0f, -INFINITY, "'act2.hi' is -inf"},
               {0.0f, 3e38f, "'act2.hi' is 3e+38"},    {-2e19f, 1.0f, "'act2.lo' is -2e+19"},
               {INFINITY, 1.0f, "'act2.lo' is inf"},   {INFINITY, INFINITY, "'act2.hi' is inf"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lo[0] = bad[i].lo;
        hi[0] = bad[i].hi;
        expect_state(&q, bad[i].tensor);
    }
    lo[0] = 2.0f, hi[0] = 1.0f;
    expect_state(&q, "'act2.lo' and 'act2.hi' hold the range [2, 1]");
    lo[0] = -1.8e19f, hi[0] = 1.8e19f; /* within 2^64 */
    expect_state(&q, NULL);
    q.acts[0].scale->data[0] = -0.5f; /* training may leave a step below the floor */
    expect_state(&q, NULL);
    q.acts[0].scale->data[0] = INFINITY;
    expect_state(&q, "'act0.scale'");
    q.acts[0].scale->data[0] = 0.1f;
    q.acts[1].alpha->data[0] = NAN;
    expect_state(&q, "'act1.alpha'");
    q.acts[1].alpha->data[0] = 2.0f;
    q.layers[1].wscale->data[5] = -INFINITY;
    expect_state(&q, "'fc1.wscale' holds -inf at index 5");
    q.layers[1].wscale->data[5] = 0.0f;
    expect_state(&q, NULL);
    /* after an optimizer step, oct_qat_mlp_project raises a learned step below the floor to it;
     * 0 (not initialized) and valid ones stay */
    float *w = q.layers[1].wscale->data;
    w[0] = -0.05f, w[1] = 1e-30f, w[2] = 0.3f;
    q.acts[0].scale->data[0] = -0.5f;
    q.acts[1].alpha->data[0] = -2.0f;
    oct_qat_mlp_project(&q);
    assert_true(w[0] == OCT_QUANT_MIN_SCALE && w[1] == OCT_QUANT_MIN_SCALE && w[2] == 0.3f);
    assert_true(w[5] == 0.0f);
    assert_true(q.acts[0].scale->data[0] == OCT_QUANT_MIN_SCALE);
    assert_true(q.acts[1].alpha->data[0] == OCT_QUANT_MIN_SCALE);
    oct_qat_mlp_free(&q);
    oct_params_free(&params);
    oct_arena_free(&arena);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_json_round_trip), cmocka_unit_test(layer_bits_parse),
        cmocka_unit_test(layer_bits_resolve),     cmocka_unit_test(layer_bits_in_models),
        cmocka_unit_test(loaded_state_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
