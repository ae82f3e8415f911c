/* Tests for the GPT (src/nn/gpt.c, gpt_generate.c) and its model file (trainers/gpt_model.c):
 * forward shapes and parameter names, the loss at init, a finite-difference gradient check of
 * the whole model (tied and untied), overfitting a tiny corpus, the key/value-cache logits
 * against the full forward at every position, generation past the context (sliding window)
 * against a full-forward reference, sampling, a save/load round trip, clear errors for
 * corrupt or mismatched model files, and the import of PyTorch (nanoGPT) state dicts: the same
 * logits bit for bit, and errors for every way such a file can be wrong. Files live in a fresh
 * directory under /tmp.
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

#include "../trainers/torch_import.h"
#include "../trainers/gpt_checkpoint.h"
#include "../trainers/gpt_model.h"
#include "gradcheck.h"
#include "bf16.h"
#include "octet/io.h"
#include "octet/nn.h"
#include "octet/optim.h"

static char dir[64];
/* tiny_model builds a RoPE model without the learned position embedding (--positions rope). */
static bool tiny_no_wpe;

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
                          .tied = tied,
                          .rope = tiny_no_wpe,
                          .no_wpe = tiny_no_wpe};
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
    float loss = oct_gpt_loss(&g, oct_gpt_forward(&m.gpt, &g, x, B, T), y, 0.0f, NULL)->data[0];
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
    return oct_gpt_loss(g, oct_gpt_forward(&c->m->gpt, g, c->x, c->B, c->T), c->y, 0.0f, NULL);
}

static void gradcheck_whole_model(void **state) {
    for (int k = 0; k < 3; k++) {
        bool tied = k & 1;
        gpt_model m;
        tiny_no_wpe = k == 2;
        tiny_model(&m, "abcde", 4, 2, tied, 0.3f);
        tiny_no_wpe = false;
        m.gpt.cfg.rope |= tied; /* the tied model with RoPE, k = 2 without wpe */
        int32_t x[2 * 4] = {0, 1, 2, 3, 4, 4, 2, 0}, y[2 * 4] = {1, 2, 3, 4, 3, 1, 0, 0};
        grad_ctx c = {&m, x, y, 2, 4};
        gradcheck_opts o = {.eps = 1e-2, .rtol = 2e-2, .atol = 2e-4, .max_probes = 64};
        assert_true(gradcheck(k == 2 ? "gpt rope only"
                              : tied ? "gpt tied rope"
                                     : "gpt",
                              f_gpt_loss, &c, m.params.n, m.params.items, &o));
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
        oct_tensor *loss = oct_gpt_loss(&g, oct_gpt_forward(&m.gpt, &g, x, B, T), y, 0.0f, NULL);
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

/* The cache's logits at each position are the forward pass's, without RoPE, with it, and with it
 * alone (rope 2). */
static void kv_cache_matches_forward_with(int rope) {
    const char *text = "in the beginning god created";
    gpt_model m;
    tiny_no_wpe = rope == 2;
    tiny_model(&m, "abcdefghijklmnopqrstuvwxyz ", 28, 2, false, 0.5f);
    tiny_no_wpe = false;
    m.gpt.cfg.rope = rope;
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

static void kv_cache_matches_forward(void **state) {
    for (int rope = 0; rope < 3; rope++) kv_cache_matches_forward_with(rope);
}

/* An oct_token_fn that appends each token to a list (ctx: int32_t[0] the count, then the ids). */
static void collect_token(void *ctx, int32_t id) {
    int32_t *list = ctx;
    list[1 + list[0]++] = id;
}

/* Greedy generation past the context equals a full-forward reference that restarts its window
 * from the last context / 2 tokens whenever the window is full; the callback sees the same
 * tokens in order, also without an out array. */
static void generate_slides_like_reference(void **state) {
    gpt_model m;
    tiny_model(&m, "abcdefgh", 6, 2, true, 0.7f);
    int ctx = m.gpt.cfg.context, n_prompt = 2, n_new = 20;
    int32_t prompt[2] = {1, 4}, out[20], hist[22];
    oct_rng rng;
    oct_rng_seed(&rng, 1, 0);
    int32_t seen[1 + 20] = {0}, streamed[1 + 20] = {0};
    assert_int_equal(
        oct_gpt_generate(&m.gpt, prompt, n_prompt, n_new, 0.0f, 0, &rng, out, collect_token, seen),
        OCT_OK);
    assert_int_equal(seen[0], n_new);
    assert_memory_equal(seen + 1, out, sizeof out);
    assert_int_equal(oct_gpt_generate(&m.gpt, prompt, n_prompt, n_new, 0.0f, 0, &rng, NULL,
                                      collect_token, streamed),
                     OCT_OK);
    assert_memory_equal(streamed, seen, sizeof seen);
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
    assert_int_equal(oct_gpt_generate(&m.gpt, &bad, 1, 1, 1.0f, 0, &rng, out, NULL, NULL),
                     OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "outside [0, 8)"));
    assert_int_equal(oct_gpt_generate(&m.gpt, prompt, 0, 1, 1.0f, 0, &rng, out, NULL, NULL),
                     OCT_EINVAL);
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
    for (int k = 0; k < 3; k++) { /* untied; tied, erf and RoPE; RoPE without wpe */
        bool tied = k == 1;
        gpt_model a, b;
        tiny_no_wpe = k == 2;
        tiny_model(&a, "xyz\n ", 8, 2, tied, 0.4f);
        tiny_no_wpe = false;
        a.gpt.cfg.exact_gelu = tied;
        a.gpt.cfg.rope |= tied;
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

/* A call on path returned got: it must be status with a message naming path and containing
 * want, and leave the model m empty. */
static void check_failure(oct_status got, oct_status status, const char *path, const char *want,
                          const gpt_model *m) {
    assert_int_equal(got, status);
    if (!strstr(oct_last_error(), want) || !strstr(oct_last_error(), path))
        fail_msg("error '%s' lacks '%s' or the path", oct_last_error(), want);
    assert_int_equal(m->params.n, 0);
}

/* Loading path fails with status and a message containing want. */
static void expect_load_error(const char *path, oct_status status, const char *want) {
    gpt_model m;
    check_failure(gpt_model_load(&m, path), status, path, want, &m);
}

static void corrupt_and_mismatched_files(void **state) {
    char good[128], bad[128];
    path_in_dir(good, sizeof good, "good.safetensors");
    path_in_dir(bad, sizeof bad, "bad.safetensors");
    gpt_model m;
    for (int tied = 1; tied >= 0; tied--) { /* the parameter count the loaders check */
        tiny_model(&m, "abc", 4, 2, tied, 0);
        int64_t total = 0;
        for (int i = 0; i < m.params.n; i++) total += m.params.items[i]->size;
        assert_int_equal(total, oct_gpt_param_count(&m.gpt.cfg));
        gpt_model_free(&m);
    }
    tiny_model(&m, "abc", 4, 1, false, 0);
    assert_int_equal(gpt_model_save(&m, good), OCT_OK);
    gpt_model_free(&m);

    rewrite(good, bad, "octet.model", "mlp", NULL);
    expect_load_error(bad, OCT_EFORMAT,
                      "an fp32 MLP model, where an fp32 or QAT GPT model is expected");
    rewrite(good, bad, "octet.layers", "2", NULL);
    expect_load_error(bad, OCT_EFORMAT, "has 1160 parameters, but the file holds 631 values");
    rewrite(good, bad, "octet.mlp", "6", NULL);
    expect_load_error(bad, OCT_ESHAPE, "h.0.mlp.fc.weight");
    /* metadata asking for more values than the file holds (50 GB) are refused before anything is
     * allocated */
    rewrite(good, bad, "octet.width", "65536", NULL);
    expect_load_error(bad, OCT_EFORMAT, "parameters, but the file holds");
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
    rewrite(good, bad, "octet.rope", "yes", NULL);
    expect_load_error(bad, OCT_EFORMAT, "'octet.rope' must be 'true' or 'false'");
    rewrite(good, bad, "octet.heads", "8", NULL); /* head size 1: RoPE needs pairs */
    rewrite(bad, bad, "octet.rope", "true", NULL);
    expect_load_error(bad, OCT_EFORMAT, "rope needs an even head size");
    rewrite(good, bad, "octet.wpe", "no", NULL);
    expect_load_error(bad, OCT_EFORMAT, "'octet.wpe' must be 'true' or 'false'");
    rewrite(good, bad, "octet.wpe", "false", NULL); /* positions by nothing */
    expect_load_error(bad, OCT_EFORMAT, "no_wpe needs rope");
    rewrite(bad, bad, "octet.rope", "true", NULL); /* then wpe.weight is one tensor too many */
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

/* ---- import of PyTorch state dicts (trainers/gpt_import.c) ---------------------------------- */

/* Write state dicts in the layout of benchmarks/torch_gpt.py instead of nanoGPT's. */
static bool torch_gpt_py;

/* nanoGPT's name for an octet parameter, with torch.compile's prefix, or torch_gpt.py's. */
static void torch_name(const char *name, char *out, size_t n) {
    static const struct {
        const char *from, *to, *to_py;
    } r[] = {{"attn.qkv.", "attn.c_attn.", "attn.c_attn."},
             {"attn.proj.", "attn.c_proj.", "attn.c_proj."},
             {"mlp.fc.", "mlp.c_fc.", "c_fc."},
             {"mlp.proj.", "mlp.c_proj.", "c_proj."}};
    const char *top = torch_gpt_py ? "" : "_orig_mod.transformer.";
    int block;
    if (sscanf(name, "h.%d.", &block) == 1) {
        const char *rest = strchr(name + 2, '.') + 1;
        for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
            size_t len = strlen(r[i].from);
            if (!strncmp(rest, r[i].from, len)) {
                snprintf(out, n, "%s%s%d.%s%s", top, torch_gpt_py ? "blocks." : "h.", block,
                         torch_gpt_py ? r[i].to_py : r[i].to, rest + len);
                return;
            }
        }
        snprintf(out, n, "%s%s%d.%s", top, torch_gpt_py ? "blocks." : "h.", block, rest);
        return;
    }
    snprintf(out, n, "%s%s", !strcmp(name, "lm_head.weight") && !torch_gpt_py ? "_orig_mod." : top,
             name);
}

/* What write_torch changes in the state dict. */
typedef enum {
    AS_IS,
    NO_BIASES,
    HEAD_NAME, /* a tied model's shared wte/lm_head tensor under lm_head's name (save_model) */
    DROP_FC1,
    DROP_QKV_BIAS,
    EXTRA,
    NAN_WTE,
    QKV_TRANSPOSED,
    I8_WPE,
    EMPTY_WPE,  /* wpe (2^31 - 1, 0): no data, but a context that would need 8 GB */
    NO_CONTEXT, /* wpe (0, width) */
    FAR_BLOCK,  /* an empty tensor of block 2^31 - 2 */
    STRAY_BLOCK /* a tensor of block 5 in a model of 2 */
} torch_edit;

/* Writes m's parameters as a nanoGPT state dict (F32, or BF16 of m's values, which must be
 * bfloat16 numbers) with its causal-mask buffers, changed as edit says. */
static void write_torch(const gpt_model *m, const char *path, oct_dtype dt, torch_edit edit) {
    enum { MAX = 64 };
    static char names[MAX + 8][128];
    static uint16_t half[1 << 14];
    static float mask[64 * 64], bad[1 << 12];
    static int8_t codes[1 << 12];
    size_t used = 0;
    oct_st_writer w;
    oct_st_writer_init(&w);
    assert_true(m->params.n <= MAX);
    for (int i = 0; i < m->params.n; i++) {
        const oct_tensor *t = m->params.items[i];
        const char *name = t->name;
        size_t len = strlen(name);
        if ((edit == NO_BIASES && !strcmp(name + len - 5, ".bias")) ||
            (edit == DROP_FC1 && !strcmp(name, "h.1.mlp.fc.weight")) ||
            (edit == DROP_QKV_BIAS && !strcmp(name, "h.0.attn.qkv.bias")))
            continue;
        torch_name(edit == HEAD_NAME && !strcmp(name, "wte.weight") ? "lm_head.weight" : name,
                   names[i], sizeof names[i]);
        const void *data = t->data;
        oct_dtype tdt = dt;
        int shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
        if (dt == OCT_DT_BF16) {
            to_bf16(t->data, t->size, half + used);
            data = half + used;
            used += (size_t)t->size;
            assert_true(used <= sizeof half / sizeof half[0]);
        }
        if ((edit == NAN_WTE && !strcmp(name, "wte.weight")) ||
            (edit == I8_WPE && !strcmp(name, "wpe.weight"))) {
            assert_true(dt == OCT_DT_F32 && t->size <= (int64_t)(sizeof bad / sizeof bad[0]));
            memcpy(bad, t->data, (size_t)t->size * sizeof *bad);
            bad[3] = NAN;
            data = edit == NAN_WTE ? (const void *)bad : (const void *)codes;
            tdt = edit == NAN_WTE ? OCT_DT_F32 : OCT_DT_I8;
        }
        if (edit == QKV_TRANSPOSED && !strcmp(name, "h.0.attn.qkv.weight")) {
            shape[0] = t->shape[1];
            shape[1] = t->shape[0];
        }
        if ((edit == EMPTY_WPE || edit == NO_CONTEXT) && !strcmp(name, "wpe.weight")) {
            shape[0] = edit == EMPTY_WPE ? 2147483647 : 0;
            shape[1] = edit == EMPTY_WPE ? 0 : shape[1];
        }
        assert_int_equal(oct_st_writer_add(&w, names[i], tdt, t->ndim, shape, data), OCT_OK);
    }
    int T = m->gpt.cfg.context, mshape[4] = {1, 1, T, T};
    assert_true(T <= 64);
    for (int l = 0; l < m->gpt.cfg.n_layer; l++) { /* nanoGPT's persistent causal mask */
        snprintf(names[MAX + l], sizeof names[0], "_orig_mod.transformer.h.%d.attn.bias", l);
        assert_int_equal(oct_st_writer_add(&w, names[MAX + l], OCT_DT_F32, 4, mshape, mask),
                         OCT_OK);
    }
    if (edit == FAR_BLOCK || edit == STRAY_BLOCK) {
        int zero = 0;
        assert_int_equal(oct_st_writer_add(&w,
                                           edit == FAR_BLOCK
                                               ? "transformer.h.2147483646.ln_1.weight"
                                               : "transformer.h.5.ln_1.weight",
                                           OCT_DT_F32, 1, &zero, mask),
                         OCT_OK);
    }
    if (edit == EXTRA) {
        int one = 1;
        assert_int_equal(
            oct_st_writer_add(&w, "transformer.h.0.attn.rotary.freqs", OCT_DT_F32, 1, &one, mask),
            OCT_OK);
    }
    assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
    oct_st_writer_free(&w);
}

/* Bit-identical logits of a and b on a few windows. */
static void assert_same_logits(gpt_model *a, gpt_model *b) {
    int32_t ids[16] = {0, 1, 2, 3, 4, 0, 1, 2, 4, 4, 3, 2, 1, 0, 0, 1};
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    oct_tensor *la = oct_gpt_forward(&a->gpt, &g, ids, 2, 8);
    oct_tensor *lb = oct_gpt_forward(&b->gpt, &g, ids, 2, 8);
    assert_memory_equal(la->data, lb->data, (size_t)la->size * sizeof(float));
    oct_graph_free(&g);
}

static void import_torch_state_dicts(void **state) {
    char path[128];
    path_in_dir(path, sizeof path, "torch.safetensors");
    for (int k = 0; k < 9; k++) { /* untied, tied; F32, BF16, without biases, torch_gpt.py's;
                                     tied under lm_head's name */
        bool tied = k == 8 || (k & 1), bf16 = (k >> 1) == 1, nobias = (k >> 1) == 2;
        torch_gpt_py = (k >> 1) == 3;
        gpt_model a, b;
        tiny_model(&a, "xyz\n ", 8, 2, tied, 0.4f);
        a.gpt.cfg.exact_gelu = tied; /* nanoGPT's GELU, as the import's default */
        a.gpt.cfg.rope = k == 8;
        int biases = 0;
        for (int i = 0; i < a.params.n; i++) {
            oct_tensor *t = a.params.items[i];
            bool bias = !strcmp(t->name + strlen(t->name) - 5, ".bias");
            biases += bias;
            for (int64_t j = 0; j < t->size; j++) {
                uint32_t bits;
                memcpy(&bits, &t->data[j], sizeof bits);
                bits &= bf16 ? 0xffff0000u : 0xffffffffu; /* bfloat16 numbers */
                memcpy(&t->data[j], &bits, sizeof bits);
                if (nobias && bias) t->data[j] = 0.0f;
            }
        }
        write_torch(&a, path, bf16 ? OCT_DT_BF16 : OCT_DT_F32,
                    nobias   ? NO_BIASES
                    : k == 8 ? HEAD_NAME
                             : AS_IS);
        torch_import_info info;
        assert_int_equal(gpt_import(&b, path, &a.vocab, 2, &a.gpt.cfg, &info), OCT_OK);
        assert_memory_equal(&a.gpt.cfg, &b.gpt.cfg, sizeof a.gpt.cfg);
        assert_int_equal(info.buffers, 2);
        assert_int_equal(info.zero_biases, nobias ? biases : 0);
        assert_same_logits(&a, &b);
        gpt_model_free(&a);
        gpt_model_free(&b);
    }
    torch_gpt_py = false;
}

/* Importing path fails with status and a message containing want and the path. */
static void expect_import_error(const char *path, const oct_vocab *v, int heads, oct_status status,
                                const char *want) {
    gpt_model m;
    torch_import_info info;
    const oct_gpt_config given = {.exact_gelu = true};
    check_failure(gpt_import(&m, path, v, heads, &given, &info), status, path, want, &m);
}

static void import_errors(void **state) {
    char path[128], octet_file[128];
    path_in_dir(path, sizeof path, "torch.safetensors");
    path_in_dir(octet_file, sizeof octet_file, "model.safetensors");
    gpt_model a;
    tiny_model(&a, "xyz\n ", 8, 2, false, 0.4f);
    write_torch(&a, path, OCT_DT_F32, AS_IS);
    oct_vocab small;
    assert_int_equal(oct_vocab_from_bytes(&small, (const uint8_t *)"xyz", 3), OCT_OK);
    expect_import_error(path, &small, 2, OCT_EINVAL, "5 token embeddings");
    expect_import_error(path, &a.vocab, 3, OCT_EINVAL, "3 heads do not divide the width 8");
    write_torch(&a, path, OCT_DT_F32, DROP_FC1);
    expect_import_error(path, &a.vocab, 2, OCT_EFORMAT,
                        "no tensor for octet's 'h.1.mlp.fc.weight'");
    /* one bias missing is no bias=False model (a filter of nanoGPT's attn.bias buffers also
     * dropping attn.c_attn.bias) */
    write_torch(&a, path, OCT_DT_F32, DROP_QKV_BIAS);
    expect_import_error(path, &a.vocab, 2, OCT_EFORMAT,
                        "no tensor for octet's 'h.0.attn.qkv.bias', but "
                        "'_orig_mod.transformer.h.0.ln_1.bias' is there");
    write_torch(&a, path, OCT_DT_F32, EXTRA);
    expect_import_error(path, &a.vocab, 2, OCT_EFORMAT,
                        "'transformer.h.0.attn.rotary.freqs' has no place");
    write_torch(&a, path, OCT_DT_F32, NAN_WTE);
    expect_import_error(path, &a.vocab, 2, OCT_EFORMAT,
                        "'_orig_mod.transformer.wte.weight' holds a non-finite");
    write_torch(&a, path, OCT_DT_F32, QKV_TRANSPOSED);
    expect_import_error(path, &a.vocab, 2, OCT_ESHAPE, "is (8, 24), expected (24, 8)");
    write_torch(&a, path, OCT_DT_F32, EMPTY_WPE);
    expect_import_error(path, &a.vocab, 2, OCT_ESHAPE,
                        "'_orig_mod.transformer.wpe.weight' has 0 columns, but the embeddings' "
                        "width is 8");
    write_torch(&a, path, OCT_DT_F32, FAR_BLOCK);
    expect_import_error(path, &a.vocab, 2, OCT_EFORMAT,
                        "'transformer.h.2147483646.ln_1.weight': block 2147483646, expected "
                        "0..1023");
    write_torch(&a, path, OCT_DT_F32, NO_CONTEXT);
    expect_import_error(path, &a.vocab, 2, OCT_EINVAL, ": gpt: context is 0, expected > 0");
    write_torch(&a, path, OCT_DT_F32, STRAY_BLOCK);
    expect_import_error(path, &a.vocab, 2, OCT_EFORMAT,
                        "no tensor of block 2, but 'transformer.h.5.ln_1.weight' is of block 5");
    write_torch(&a, path, OCT_DT_F32, I8_WPE);
    expect_import_error(path, &a.vocab, 2, OCT_EUNSUPPORTED, "I8, not a floating-point dtype");
    assert_int_equal(gpt_model_save(&a, octet_file), OCT_OK);
    expect_import_error(octet_file, &a.vocab, 2, OCT_EINVAL, "already an octet model");
    assert_int_equal(truncate(octet_file, 200), 0);
    expect_import_error(octet_file, &a.vocab, 2, OCT_EFORMAT, "");
    unlink(octet_file);
    expect_import_error(octet_file, &a.vocab, 2, OCT_EIO, "");
    gpt_model_free(&a);
    /* without wpe the context is the metadata's block_size, which a bare state dict lacks */
    tiny_no_wpe = true;
    tiny_model(&a, "xyz\n ", 8, 2, false, 0.4f);
    tiny_no_wpe = false;
    write_torch(&a, path, OCT_DT_F32, AS_IS);
    gpt_model m;
    torch_import_info info;
    check_failure(gpt_import(&m, path, &a.vocab, 2, &a.gpt.cfg, &info), OCT_EFORMAT, path,
                  "no metadata 'block_size': a model without 'wpe.weight'", &m);
    gpt_model_free(&a);
}

/* A checkpoint's command line must be a JSON list of strings; anything else is refused (and
 * leaves nothing allocated: the ASan build checks for leaks). */
static void checkpoint_args_errors(void **state) {
    char path[128];
    path_in_dir(path, sizeof path, "bad.safetensors");
    const char *bad[] = {"{}", "[\"--steps\", 3]", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        oct_st_writer w;
        oct_st_writer_init(&w);
        assert_int_equal(oct_st_writer_meta(&w, "octet.train.args", bad[i]), OCT_OK);
        assert_int_equal(oct_st_writer_write(&w, path), OCT_OK);
        oct_st_writer_free(&w);
        int argc = -1;
        char **argv = (char **)path;
        assert_int_equal(gpt_checkpoint_args(path, &argc, &argv), OCT_EFORMAT);
        assert_int_equal(argc, 0);
        assert_null(argv);
        assert_non_null(strstr(oct_last_error(), "octet.train.args"));
    }
}

/* A command line that a checkpoint could not record (JSON strings are UTF-8) is refused, naming
 * the argument, before any run. */
static void checkpoint_args_utf8(void **state) {
    char *good[] = {"--text", "caf\xc3\xa9.txt"}, *bad[] = {"--text", "t\xff.txt"};
    assert_int_equal(gpt_checkpoint_check_args("ck.safetensors", 2, good), OCT_OK);
    assert_int_equal(gpt_checkpoint_check_args("ck.safetensors", 2, bad), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "--checkpoint ck.safetensors: argument 't\\xff.txt' "
                                             "is not valid UTF-8"));
}

static int make_dir(void **state) {
    snprintf(dir, sizeof dir, "/tmp/octet-test-gpt.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int remove_dir(void **state) {
    const char *names[] = {"model.safetensors", "good.safetensors", "bad.safetensors",
                           "torch.safetensors"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in_dir(path, sizeof path, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

/* A checkpoint's recorded options against this octet's: flags added since (absent from the
 * record) pass when off ("-" or false), and any other difference is named. */
static void resume_options(void **state) {
    char diff[128];
    const char *rec = "--a=1 --b=x --c=false";
    assert_true(gpt_run_options_match(rec, "--a=1 --b=x --c=false", diff, sizeof diff));
    assert_true(
        gpt_run_options_match(rec, "--a=1 --n=- --b=x --c=false --m=false", diff, sizeof diff));
    assert_false(gpt_run_options_match(rec, "--a=1 --n=4 --b=x --c=false", diff, sizeof diff));
    assert_string_equal(diff, "--b=x (this octet: --n=4)");
    assert_false(gpt_run_options_match(rec, "--a=2 --b=x --c=false", diff, sizeof diff));
    assert_string_equal(diff, "--a=1 (this octet: --a=2)");
    assert_false(gpt_run_options_match(rec, "--a=1 --b=- --c=false", diff, sizeof diff));
    assert_false(gpt_run_options_match(rec, "--a=1 --b=x", diff, sizeof diff)); /* --c gone */
    assert_false(gpt_run_options_match(rec, "--a=1 --b=x --c=false --d=-x", diff, sizeof diff));
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
        cmocka_unit_test(import_torch_state_dicts),
        cmocka_unit_test(import_errors),
        cmocka_unit_test(resume_options),
        cmocka_unit_test(checkpoint_args_errors),
        cmocka_unit_test(checkpoint_args_utf8),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
