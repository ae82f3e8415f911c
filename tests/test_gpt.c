/* Tests for the GPT (src/nn/gpt.c, gpt_generate.c) and its model file (trainers/gpt_model.c):
 * forward shapes and parameter names, the loss at init, a finite-difference gradient check of
 * the whole model (tied and untied), overfitting a tiny corpus, the key/value-cache logits
 * against the full forward at every position, generation past the context (sliding window)
 * against a full-forward reference, sampling, a save/load round trip, and clear errors for
 * corrupt or mismatched model files. Files live in a fresh directory under /tmp.
 */
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

#include "../trainers/gpt_model.h"
#include "gradcheck.h"
#include "octet/io.h"
#include "octet/nn.h"
#include "octet/optim.h"

static char dir[64];

/* A tiny model over the vocabulary of bytes in s, weights widened to N(0, std^2) when std > 0
 * (so attention and LayerNorm are far from their near-identity init). */
static void tiny_model(gpt_model *m, const char *s, int context, int layers, bool tied, float std) {
    uint8_t bytes[256];
    int n = 0;
    for (int b = 0; b < 256; b++)
        if (strchr(s, b) && b) bytes[n++] = (uint8_t)b;
    oct_vocab v;
    assert_int_equal(oct_vocab_from_bytes(&v, bytes, n), OCT_OK);
    oct_gpt_config cfg = {.vocab = n,
                          .context = context,
                          .n_layer = layers,
                          .n_head = 2,
                          .width = 8,
                          .mlp = 12,
                          .tied = tied};
    assert_int_equal(gpt_model_init(m, &cfg, &v, 7), OCT_OK);
    if (std <= 0) return;
    oct_rng rng;
    oct_rng_seed(&rng, 99, 0);
    for (int i = 0; i < m->params.n; i++) {
        oct_tensor *t = m->params.items[i];
        bool gain = t->ndim == 1 && strstr(t->name, "ln") && strstr(t->name, "weight");
        for (int64_t j = 0; j < t->size; j++)
            t->data[j] = (gain ? 1.0f : 0.0f) + std * oct_rng_normal(&rng);
    }
}

static void encode(const gpt_model *m, const char *s, int32_t *ids) {
    assert_int_equal(oct_vocab_encode(&m->vocab, s, (int64_t)strlen(s), ids), OCT_OK);
}

static void forward_shapes_and_names(void **state) {
    gpt_model m;
    tiny_model(&m, "abcdefg", 6, 2, false, 0);
    assert_int_equal(m.params.n, 2 + 2 * 12 + 2 + 1);
    const char *names[] = {"wte.weight",          "wpe.weight",         "h.0.ln_1.weight",
                           "h.1.attn.qkv.weight", "h.1.attn.proj.bias", "h.0.mlp.fc.weight",
                           "h.1.mlp.proj.weight", "ln_f.bias",          "lm_head.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(oct_params_find(&m.params, names[i]));
    oct_tensor *fc = oct_params_find(&m.params, "h.0.mlp.fc.weight");
    assert_int_equal(fc->shape[0], 12);
    assert_int_equal(fc->shape[1], 8);
    assert_float_equal(oct_params_find(&m.params, "h.1.ln_2.weight")->data[3], 1.0f, 0);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    int32_t ids[2 * 5] = {0, 1, 2, 3, 4, 6, 5, 4, 3, 2};
    oct_tensor *logits = oct_gpt_forward(&m.gpt, &g, ids, 2, 5);
    assert_int_equal(logits->ndim, 3);
    assert_int_equal(logits->shape[0], 2);
    assert_int_equal(logits->shape[1], 5);
    assert_int_equal(logits->shape[2], 7);
    oct_graph_free(&g);
    gpt_model_free(&m);

    tiny_model(&m, "abcdefg", 6, 2, true, 0);
    assert_null(oct_params_find(&m.params, "lm_head.weight"));
    assert_ptr_equal(m.gpt.lm_head.w, m.gpt.wte);
    gpt_model_free(&m);
}

static void init_loss_is_log_vocab(void **state) {
    const char *text = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .,;:!?\n";
    gpt_model m;
    tiny_model(&m, text, 16, 2, false, 0);
    int V = m.gpt.cfg.vocab, B = 4, T = 16;
    int32_t x[4 * 16], y[4 * 16];
    oct_rng rng;
    oct_rng_seed(&rng, 3, 0);
    for (int i = 0; i < B * T; i++) {
        x[i] = (int32_t)oct_rng_below(&rng, (uint32_t)V);
        y[i] = (int32_t)oct_rng_below(&rng, (uint32_t)V);
    }
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    float loss = oct_gpt_loss(&g, oct_gpt_forward(&m.gpt, &g, x, B, T), y)->data[0];
    assert_float_equal(loss, logf((float)V), 0.05);
    oct_graph_free(&g);
    gpt_model_free(&m);
}

typedef struct grad_ctx {
    const gpt_model *m;
    const int32_t *x, *y;
    int B, T;
} grad_ctx;

static oct_tensor *f_gpt_loss(oct_graph *g, oct_tensor *const *in, void *ctx) {
    const grad_ctx *c = ctx;
    return oct_gpt_loss(g, oct_gpt_forward(&c->m->gpt, g, c->x, c->B, c->T), c->y);
}

static void gradcheck_whole_model(void **state) {
    for (int tied = 0; tied < 2; tied++) {
        gpt_model m;
        tiny_model(&m, "abcde", 4, 2, tied, 0.3f);
        int32_t x[2 * 4] = {0, 1, 2, 3, 4, 4, 2, 0}, y[2 * 4] = {1, 2, 3, 4, 3, 1, 0, 0};
        grad_ctx c = {&m, x, y, 2, 4};
        gradcheck_opts o = {.eps = 1e-2, .rtol = 2e-2, .atol = 2e-4, .max_probes = 64};
        assert_true(
            gradcheck(tied ? "gpt tied" : "gpt", f_gpt_loss, &c, m.params.n, m.params.items, &o));
        gpt_model_free(&m);
    }
}

static void overfits_tiny_corpus(void **state) {
    const char *text = "to be or not to be, that is the question. ";
    gpt_model m;
    tiny_model(&m, text, 16, 1, false, 0);
    int V = m.gpt.cfg.vocab, n = (int)strlen(text), B = 8, T = 16;
    int32_t ids[64], x[8 * 16], y[8 * 16];
    encode(&m, text, ids);
    oct_optim opt;
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    h.weight_decay = 0.0f;
    assert_int_equal(oct_optim_init(&opt, OCT_OPTIM_ADAMW, &m.params, &m.arena, &h), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    oct_rng rng;
    oct_rng_seed(&rng, 5, 0);
    float first = 0, last = 0;
    for (int step = 0; step < 300; step++) {
        for (int b = 0; b < B; b++) {
            int s = (int)oct_rng_below(&rng, (uint32_t)n);
            for (int t = 0; t < T; t++) {
                x[b * T + t] = ids[(s + t) % n];
                y[b * T + t] = ids[(s + t + 1) % n];
            }
        }
        oct_graph_reset(&g);
        oct_tensor *loss = oct_gpt_loss(&g, oct_gpt_forward(&m.gpt, &g, x, B, T), y);
        oct_params_zero_grad(&m.params);
        oct_graph_backward(&g, loss);
        oct_clip_grad_norm(&m.params, 1.0f);
        oct_optim_step(&opt, 1e-2f);
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
    }
    assert_float_equal(first, logf((float)V), 0.1);
    assert_true(last < 0.25f * logf((float)V));
    oct_graph_free(&g);
    oct_optim_free(&opt);
    gpt_model_free(&m);
}

static void kv_cache_matches_forward(void **state) {
    const char *text = "in the beginning god created";
    gpt_model m;
    tiny_model(&m, "abcdefghijklmnopqrstuvwxyz ", 28, 2, false, 0.5f);
    int T = (int)strlen(text), V = m.gpt.cfg.vocab;
    int32_t ids[64];
    encode(&m, text, ids);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    oct_tensor *full = oct_gpt_forward(&m.gpt, &g, ids, 1, T);
    oct_gpt_cache c;
    assert_int_equal(oct_gpt_cache_init(&c, &m.gpt), OCT_OK);
    double worst = 0, spread = 0;
    for (int rep = 0; rep < 2; rep++) {
        oct_gpt_cache_reset(&c);
        for (int t = 0; t < T; t++) {
            const float *lg = oct_gpt_cache_step(&c, ids[t]);
            for (int v = 0; v < V; v++) {
                float ref = full->data[(int64_t)t * V + v];
                worst = fmax(worst, fabs((double)lg[v] - ref));
                spread = fmax(spread, fabs((double)ref - full->data[v]));
            }
        }
    }
    assert_int_equal(c.len, T);
    assert_true(worst <= 1e-4);
    assert_true(spread > 0.1); /* the logits do depend on the position and the context */
    oct_gpt_cache_free(&c);
    oct_graph_free(&g);
    gpt_model_free(&m);
}

/* Greedy generation past the context equals a full-forward reference that restarts its window
 * from the last context / 2 tokens whenever the window is full. */
static void generate_slides_like_reference(void **state) {
    gpt_model m;
    tiny_model(&m, "abcdefgh", 6, 2, true, 0.7f);
    int ctx = m.gpt.cfg.context, n_prompt = 2, n_new = 20;
    int32_t prompt[2] = {1, 4}, out[20], hist[22];
    oct_rng rng;
    oct_rng_seed(&rng, 1, 0);
    assert_int_equal(oct_gpt_generate(&m.gpt, prompt, n_prompt, n_new, 0.0f, 0, &rng, out), OCT_OK);
    memcpy(hist, prompt, sizeof prompt);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    int start = 0, n = n_prompt;
    for (int i = 0; i < n_new; i++, n++) {
        if (n - 1 - start == ctx) start = n - ctx / 2; /* the newest token would not fit */
        oct_graph_reset(&g);
        oct_tensor *lg = oct_gpt_forward(&m.gpt, &g, hist + start, 1, n - start);
        hist[n] = oct_gpt_sample(lg->data + (int64_t)(n - start - 1) * lg->shape[2], lg->shape[2],
                                 0.0f, 0, &rng);
        assert_int_equal(out[i], hist[n]);
    }
    oct_graph_free(&g);
    int32_t bad = 8;
    assert_int_equal(oct_gpt_generate(&m.gpt, &bad, 1, 1, 1.0f, 0, &rng, out), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "outside [0, 8)"));
    assert_int_equal(oct_gpt_generate(&m.gpt, prompt, 0, 1, 1.0f, 0, &rng, out), OCT_EINVAL);
    gpt_model_free(&m);
}

static void sampling(void **state) {
    const float logits[5] = {1.0f, 3.0f, 2.5f, -1.0f, 3.0f};
    oct_rng rng;
    oct_rng_seed(&rng, 11, 0);
    assert_int_equal(oct_gpt_sample(logits, 5, 0.0f, 0, &rng), 1);
    int counts[5] = {0};
    enum { N = 20000 };
    for (int i = 0; i < N; i++) counts[oct_gpt_sample(logits, 5, 1.0f, 0, &rng)]++;
    double z = 0;
    for (int v = 0; v < 5; v++) z += exp(logits[v]);
    for (int v = 0; v < 5; v++) assert_float_equal(counts[v] / (double)N, exp(logits[v]) / z, 0.02);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 2000; i++) counts[oct_gpt_sample(logits, 5, 0.7f, 3, &rng)]++;
    assert_int_equal(counts[0] + counts[3], 0);
    assert_true(counts[1] > 0 && counts[2] > 0 && counts[4] > 0);
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 200; i++) counts[oct_gpt_sample(logits, 5, 1.0f, 1, &rng)]++;
    assert_int_equal(counts[1] + counts[4], 200); /* the tie at the top is kept */
}

static void path_in_dir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
}

static void save_load_round_trip(void **state) {
    char path[128];
    path_in_dir(path, sizeof path, "model.safetensors");
    for (int tied = 0; tied < 2; tied++) {
        gpt_model a, b;
        tiny_model(&a, "xyz\n ", 8, 2, tied, 0.4f);
        assert_int_equal(gpt_model_save(&a, path), OCT_OK);
        assert_int_equal(gpt_model_load(&b, path), OCT_OK);
        assert_memory_equal(&a.gpt.cfg, &b.gpt.cfg, sizeof a.gpt.cfg);
        assert_int_equal(a.vocab.size, b.vocab.size);
        assert_memory_equal(a.vocab.bytes, b.vocab.bytes, (size_t)a.vocab.size);
        int32_t ids[8] = {0, 1, 2, 3, 4, 0, 1, 2};
        oct_graph g;
        oct_graph_init(&g, 0, 1);
        g.no_grad = true;
        oct_tensor *la = oct_gpt_forward(&a.gpt, &g, ids, 1, 8);
        oct_tensor *lb = oct_gpt_forward(&b.gpt, &g, ids, 1, 8);
        assert_memory_equal(la->data, lb->data, (size_t)la->size * sizeof(float));
        oct_graph_free(&g);
        gpt_model_free(&a);
        gpt_model_free(&b);
    }
}

/* Rewrites the model file src as dst with metadata key set to value (when key) and tensor skip
 * left out (when skip). */
static void rewrite(const char *src, const char *dst, const char *key, const char *value,
                    const char *skip) {
    oct_st_file f;
    assert_int_equal(oct_st_open(&f, src), OCT_OK);
    oct_st_writer w;
    oct_st_writer_init(&w);
    for (int i = 0; i < f.nmeta; i++)
        if (strcmp(f.meta[i].key, "octet.crc32"))
            assert_int_equal(oct_st_writer_meta(&w, f.meta[i].key, f.meta[i].value), OCT_OK);
    if (key) assert_int_equal(oct_st_writer_meta(&w, key, value), OCT_OK);
    for (int i = 0; i < f.count; i++) {
        const oct_st_entry *e = &f.entries[i];
        if (skip && !strcmp(e->name, skip)) continue;
        assert_int_equal(oct_st_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, e->data),
                         OCT_OK);
    }
    assert_int_equal(oct_st_writer_write(&w, dst), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_close(&f);
}

/* Loading path fails with status and a message containing want. */
static void expect_load_error(const char *path, oct_status status, const char *want) {
    gpt_model m;
    assert_int_equal(gpt_model_load(&m, path), status);
    if (!strstr(oct_last_error(), want) || !strstr(oct_last_error(), path))
        fail_msg("error '%s' lacks '%s' or the path", oct_last_error(), want);
    assert_int_equal(m.params.n, 0);
}

static void corrupt_and_mismatched_files(void **state) {
    char good[128], bad[128];
    path_in_dir(good, sizeof good, "good.safetensors");
    path_in_dir(bad, sizeof bad, "bad.safetensors");
    gpt_model m;
    tiny_model(&m, "abc", 4, 1, false, 0);
    assert_int_equal(gpt_model_save(&m, good), OCT_OK);
    gpt_model_free(&m);

    rewrite(good, bad, "octet.model", "mlp", NULL);
    expect_load_error(bad, OCT_EFORMAT, "not an octet GPT model");
    rewrite(good, bad, "octet.layers", "2", NULL);
    expect_load_error(bad, OCT_EFORMAT, "'h.1.ln_1.weight' is missing");
    rewrite(good, bad, "octet.width", "16", NULL);
    expect_load_error(bad, OCT_ESHAPE, "wte.weight");
    rewrite(good, bad, "octet.heads", "3", NULL);
    expect_load_error(bad, OCT_EFORMAT, "not a multiple of n_head");
    rewrite(good, bad, "octet.mlp", "many", NULL);
    expect_load_error(bad, OCT_EFORMAT, "'octet.mlp' is 'many'");
    rewrite(good, bad, "octet.vocab", "4", NULL);
    expect_load_error(bad, OCT_ESHAPE, "vocab");
    rewrite(good, bad, NULL, NULL, "vocab");
    expect_load_error(bad, OCT_EFORMAT, "tensor 'vocab' is missing");
    rewrite(good, bad, "octet.tied", "true", NULL);
    expect_load_error(bad, OCT_EFORMAT, "tensors in the file");

    FILE *f = fopen(good, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(bad, "wb");
    assert_non_null(f);
    buf[n - 5] ^= 0x40; /* a flipped bit in the data: the crc32 catches it */
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
    expect_load_error(bad, OCT_EFORMAT, bad);
    assert_int_equal(truncate(bad, (off_t)n / 2), 0);
    expect_load_error(bad, OCT_EFORMAT, bad);
    path_in_dir(bad, sizeof bad, "missing.safetensors");
    expect_load_error(bad, OCT_EIO, bad);
}

static void config_errors(void **state) {
    oct_gpt_config cfg = {
        .vocab = 10, .context = 8, .n_layer = 1, .n_head = 3, .width = 8, .mlp = 32};
    assert_int_equal(oct_gpt_config_check(&cfg), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "n_head"));
    cfg.n_head = 2;
    cfg.mlp = 0;
    assert_int_equal(oct_gpt_config_check(&cfg), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "mlp"));
    cfg.mlp = 32;
    cfg.dropout = 1.0f;
    assert_int_equal(oct_gpt_config_check(&cfg), OCT_EINVAL);
    cfg.dropout = 0.1f;
    assert_int_equal(oct_gpt_config_check(&cfg), OCT_OK);
}

static int make_dir(void **state) {
    snprintf(dir, sizeof dir, "/tmp/octet-test-gpt.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    const char *names[] = {"model.safetensors", "good.safetensors", "bad.safetensors"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in_dir(path, sizeof path, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forward_shapes_and_names),
        cmocka_unit_test(init_loss_is_log_vocab),
        cmocka_unit_test(gradcheck_whole_model),
        cmocka_unit_test(overfits_tiny_corpus),
        cmocka_unit_test(kv_cache_matches_forward),
        cmocka_unit_test(generate_slides_like_reference),
        cmocka_unit_test(sampling),
        cmocka_unit_test(save_load_round_trip),
        cmocka_unit_test(corrupt_and_mismatched_files),
        cmocka_unit_test(config_errors),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
