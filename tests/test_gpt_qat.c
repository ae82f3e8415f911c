/* The QAT GPT and the integer GPT engine: the invariant (the engine's logits with a key/value
 * cache equal the QAT model's eval-mode logits bit for bit at every position of a validation
 * batch, with every int8 kernel, on 1 and 2 threads, however the sequence is split into calls),
 * the export round trip, and rejection of corrupt or mismatched exports. The row kernels both
 * share are tested in test_gpt_kernels.c. */
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

#include "octet/int8.h"
#include "octet/io.h"
#include "octet/nonlinear.h"
#include "octet/nn.h"
#include "octet/optim.h"
#include "octet/qat.h"

enum { V = 11, CTX = 16, B = 3, STEPS = 24 };

/* A tiny trained QAT GPT and its export. */
typedef struct fixture {
    oct_arena arena;
    oct_params params;
    oct_gpt gpt;
    oct_qat_gpt q;
    oct_i8_gpt i8;
    int embed_bits; /* the QAT config's: 0 or int8 embeddings */
    int32_t val[B * CTX];
    char path[64];
} fixture;

/* A small "text": a noisy repeating pattern of V symbols. */
static void batch(oct_rng *r, int32_t *x, int32_t *y, int n, int T) {
    for (int b = 0; b < n; b++) {
        int start = (int)(oct_rng_uniform(r) * 97.0f);
        for (int t = 0; t <= T; t++) {
            int v = (start + t * 3 + (t / 5)) % V;
            if (t < T) x[b * T + t] = v;
            if (t > 0) y[b * T + t - 1] = v;
        }
    }
}

static int setup_bits(void **state, int embed_bits, bool exact_gelu, bool rope) {
    fixture *f = calloc(1, sizeof *f);
    f->embed_bits = embed_bits;
    oct_arena_init(&f->arena, 0);
    oct_params_init(&f->params);
    oct_rng rng;
    oct_rng_seed(&rng, 3, 0);
    oct_gpt_config cfg = {.vocab = V,
                          .context = CTX,
                          .n_layer = 2,
                          .n_head = 2,
                          .width = 16,
                          .mlp = 32,
                          .exact_gelu = exact_gelu,
                          .rope = rope};
    assert_int_equal(oct_gpt_init(&f->gpt, &f->arena, &f->params, &cfg, &rng), OCT_OK);
    /* The exact-GELU fixture widens the matrices tenfold, so that the GELU sees inputs where the
     * erf and tanh forms differ by more than the quantization step. */
    for (int i = 0; exact_gelu && i < f->params.n; i++) {
        oct_tensor *t = f->params.items[i];
        for (int64_t j = 0; t->ndim == 2 && j < t->size; j++) t->data[j] *= 10.0f;
    }
    oct_qat_config qc;
    oct_qat_config_default(&qc);
    qc.freeze_after = STEPS / 2;
    qc.embed_bits = embed_bits;
    assert_int_equal(oct_qat_gpt_init(&f->q, &f->gpt, &f->arena, &f->params, &qc), OCT_OK);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    oct_optim opt;
    assert_int_equal(oct_optim_init(&opt, OCT_OPTIM_ADAMW, &f->params, &f->arena, &h), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    int32_t x[4 * CTX], y[4 * CTX];
    for (int step = 0; step < STEPS; step++) {
        oct_graph_reset(&g);
        g.training = true;
        batch(&rng, x, y, 4, CTX);
        oct_tensor *loss =
            oct_gpt_loss(&g, oct_qat_gpt_forward(&f->q, &g, x, 4, CTX), y, 0.0f, NULL);
        oct_params_zero_grad(&f->params);
        oct_graph_backward(&g, loss);
        oct_optim_step(&opt, 3e-3f);
    }
    assert_true(f->q.acts[0].obs.frozen);
    oct_graph_free(&g);
    oct_optim_free(&opt);
    batch(&rng, f->val, y, B, CTX);
    uint8_t vocab[V];
    for (int i = 0; i < V; i++) vocab[i] = (uint8_t)('a' + i);
    assert_int_equal(oct_qat_gpt_to_int8(&f->q, vocab, &f->i8), OCT_OK);
    snprintf(f->path, sizeof f->path, "/tmp/octet_gpt_qat_%d.safetensors", (int)getpid());
    *state = f;
    return 0;
}

static int setup(void **state) {
    return setup_bits(state, 0, false, false);
}

static int setup_i8_embeddings(void **state) {
    return setup_bits(state, 8, false, false);
}

/* The variants: exact GELU and rotary position embedding. */
static int setup_erf_rope(void **state) {
    return setup_bits(state, 8, true, true);
}

static int teardown(void **state) {
    fixture *f = *state;
    unlink(f->path);
    oct_i8_gpt_free(&f->i8);
    oct_qat_gpt_free(&f->q);
    oct_params_free(&f->params);
    oct_arena_free(&f->arena);
    free(f);
    return 0;
}

/* The QAT model's eval-mode logits (B,CTX,V) of the validation batch. */
static void qat_logits(fixture *f, float *out) {
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    oct_tensor *lg = oct_qat_gpt_forward(&f->q, &g, f->val, B, CTX);
    memcpy(out, lg->data, sizeof(float) * B * CTX * V);
    oct_graph_free(&g);
}

/* The engine's logits for the batch: each sequence fed in calls of `split` tokens (the first
 * call `first` tokens), through a cache of max_rows rows. */
static void engine_logits(const oct_i8_gpt *m, const int32_t *ids, int max_rows, int first,
                          int split, int threads, float *out) {
    oct_i8_gpt_cache c;
    assert_int_equal(oct_i8_gpt_cache_init(&c, m, max_rows), OCT_OK);
    c.threads = threads;
    int32_t acc[CTX * V];
    for (int b = 0; b < B; b++) {
        c.len = 0;
        for (int t = 0; t < CTX;) {
            int n = t == 0 ? first : split;
            n = n < CTX - t ? n : CTX - t;
            oct_i8_gpt_run(&c, ids + b * CTX + t, n, acc + t * V, out + (b * CTX + t) * V);
            t += n;
        }
    }
    oct_i8_gpt_cache_free(&c);
}

static void expect_equal(const float *want, const float *got, const char *what) {
    for (int i = 0; i < B * CTX * V; i++)
        if (memcmp(&want[i], &got[i], sizeof(float)))
            fail_msg("%s: position %d logit %d: QAT %.9g, engine %.9g", what, i / V, i % V,
                     (double)want[i], (double)got[i]);
}

/* m's logits for the validation batch equal want whatever the kernel, the thread count and the
 * way each sequence is split into calls. */
static void expect_any_split(fixture *f, const oct_i8_gpt *m, const float *want) {
    static float got[B * CTX * V];
    const oct_i8_kernel kernels[] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
    const int splits[][3] = {
        {CTX, CTX, 1}, {1, 1, 1}, {5, 1, 4}, {7, 3, 2}}; /* first, split, rows */
    for (size_t k = 0; k < 3; k++) {
        if (!oct_i8_kernel_available(kernels[k])) continue;
        assert_int_equal(oct_i8_set_kernel(kernels[k]), OCT_OK);
        for (int threads = 1; threads <= 2; threads++)
            for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) {
                int rows = splits[s][2] == 1 ? splits[s][0] : splits[s][2];
                engine_logits(m, f->val, rows, splits[s][0], splits[s][1], threads, got);
                char what[96];
                snprintf(what, sizeof what, "kernel %s, %d threads, split %d/%d",
                         oct_i8_kernel_name(), threads, splits[s][0], splits[s][1]);
                expect_equal(want, got, what);
            }
    }
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
}

static void invariant_every_position(void **state) {
    fixture *f = *state;
    static float want[B * CTX * V];
    qat_logits(f, want);
    expect_any_split(f, &f->i8, want);
}

/* The forward pass in pieces, as calibrate's GPTQ runs it (the residual stream copied out
 * between blocks, a block run only as far as the layer in question), gathers the same x^T x at
 * every linear as the whole forward pass, and a piece returns that linear's output. */
static void pieces_gather_the_same_hessians(void **state) {
    fixture *f = *state;
    int L = f->gpt.cfg.n_layer;
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.training = true; /* the Hessians are gathered in training mode, without gradients */
    g.no_grad = true;
    for (int j = 0; j < f->q.n_linear; j++) {
        oct_qat_linear *l = &f->q.lin[j];
        int K = l->fp->w->shape[1], blk = j / OCT_QAT_GPT_PER_BLOCK;
        float *whole = calloc((size_t)K * K, sizeof *whole);
        float *pieces = calloc((size_t)K * K, sizeof *pieces);
        l->xtx = whole;
        oct_graph_reset(&g);
        oct_qat_gpt_forward(&f->q, &g, f->val, B, CTX);
        l->xtx = pieces;
        oct_graph_reset(&g);
        oct_tensor *x = oct_qat_gpt_embed(&f->q, &g, f->val, B, CTX);
        for (int i = 0; i < blk; i++) {
            oct_tensor *y = oct_qat_gpt_block(&f->q, &g, x, i, OCT_QAT_GPT_FC_PROJ);
            x = oct_tensor_new(&g.arena, y->ndim, y->shape);
            memcpy(x->data, y->data, (size_t)y->size * sizeof *y->data);
        }
        oct_tensor *out = blk < L ? oct_qat_gpt_block(&f->q, &g, x, blk, j % OCT_QAT_GPT_PER_BLOCK)
                                  : oct_qat_gpt_head(&f->q, &g, x);
        assert_int_equal(out->shape[2], l->fp->w->shape[0]);
        assert_true(whole[0] > 0.0f);
        assert_memory_equal(whole, pieces, (size_t)K * K * sizeof *whole);
        l->xtx = NULL;
        free(whole);
        free(pieces);
    }
    oct_graph_free(&g);
}

static int32_t sample(const float *logits, int n, float temperature, int top_k, void *rng) {
    return oct_gpt_sample(logits, n, temperature, top_k, rng);
}

/* A sampler that keeps what it draws, as a streaming caller would print it. */
typedef struct recorder {
    oct_rng rng;
    int n;
    int32_t ids[64];
} recorder;

static int32_t sample_and_record(const float *logits, int n, float temperature, int top_k,
                                 void *ctx) {
    recorder *r = ctx;
    return r->ids[r->n++] = oct_gpt_sample(logits, n, temperature, top_k, &r->rng);
}

static void export_round_trip(void **state) {
    fixture *f = *state;
    static float want[B * CTX * V], got[B * CTX * V];
    qat_logits(f, want);
    assert_int_equal(oct_i8_gpt_save(&f->i8, f->path), OCT_OK);
    oct_i8_gpt m;
    assert_int_equal(oct_i8_gpt_load(&m, f->path), OCT_OK);
    assert_int_equal(m.n_layer, 2);
    assert_int_equal(m.vocab_bytes[3], 'd');
    assert_int_equal(m.wte_q != NULL, f->embed_bits != 0);
    assert_int_equal(m.exact_gelu, f->gpt.cfg.exact_gelu);
    assert_int_equal(m.rope, f->gpt.cfg.rope);
    engine_logits(&m, f->val, CTX, CTX, 1, 1, got);
    expect_equal(want, got, "reloaded export");
    /* Generation is deterministic and stays in the vocabulary. */
    oct_i8_gpt_cache c;
    assert_int_equal(oct_i8_gpt_cache_init(&c, &m, CTX), OCT_OK);
    oct_rng r1, r2;
    oct_rng_seed(&r1, 5, 0);
    oct_rng_seed(&r2, 5, 0);
    int32_t a[40], b2[40];
    assert_int_equal(oct_i8_gpt_generate(&c, f->val, 3, 40, 0.8f, 5, sample, &r1, a), OCT_OK);
    assert_int_equal(oct_i8_gpt_generate(&c, f->val, 3, 40, 0.8f, 5, sample, &r2, b2), OCT_OK);
    assert_memory_equal(a, b2, sizeof a);
    for (int i = 0; i < 40; i++) assert_true(a[i] >= 0 && a[i] < V);
    /* The sampler is called once per token, in order; out may be NULL. */
    recorder rec = {.n = 0};
    oct_rng_seed(&rec.rng, 5, 0);
    assert_int_equal(oct_i8_gpt_generate(&c, f->val, 3, 40, 0.8f, 5, sample_and_record, &rec, NULL),
                     OCT_OK);
    assert_int_equal(rec.n, 40);
    assert_memory_equal(rec.ids, a, sizeof a);
    oct_i8_gpt_cache_free(&c);
    oct_i8_gpt_free(&m);
}

/* Rewrites src into dst: tensor drop (or NULL) left out, tensor flip (or NULL) with its first
 * byte changed (or its first n bytes replaced by patch), metadata key set to value (or NULL),
 * one extra tensor when extra. */
static void rewrite_patch(const char *src, const char *dst, const char *drop, const char *flip,
                          const void *patch, size_t n, const char *key, const char *value,
                          bool extra) {
    oct_st_file in;
    assert_int_equal(oct_st_open(&in, src), OCT_OK);
    oct_st_writer w;
    oct_st_writer_init(&w);
    static uint8_t copies[2][4096];
    for (int i = 0; i < in.nmeta; i++)
        if (strcmp(in.meta[i].key, "octet.crc32"))
            assert_int_equal(oct_st_writer_meta(&w, in.meta[i].key, in.meta[i].value), OCT_OK);
    if (key) assert_int_equal(oct_st_writer_meta(&w, key, value), OCT_OK);
    for (int i = 0; i < in.count; i++) {
        const oct_st_entry *e = &in.entries[i];
        if (drop && !strcmp(e->name, drop)) continue;
        const void *data = e->data;
        if (flip && !strcmp(e->name, flip)) {
            assert_true(e->nbytes <= sizeof copies[0]);
            memcpy(copies[0], e->data, e->nbytes);
            copies[0][0] ^= 0x5a;
            if (patch) memcpy(copies[0], patch, n);
            data = copies[0];
        }
        assert_int_equal(oct_st_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, data), OCT_OK);
    }
    int one = 1;
    if (extra)
        assert_int_equal(oct_st_writer_add(&w, "zzz", OCT_DT_U8, 1, &one, copies[1]), OCT_OK);
    assert_int_equal(oct_st_writer_write(&w, dst), OCT_OK);
    oct_st_writer_free(&w);
    oct_st_close(&in);
}

static void rewrite(const char *src, const char *dst, const char *drop, const char *flip,
                    const char *key, const char *value, bool extra) {
    rewrite_patch(src, dst, drop, flip, NULL, 0, key, value, extra);
}

/* rewrite with the first `from` of the graph metadata replaced by `to`. */
static void rewrite_graph(const char *src, const char *dst, const char *from, const char *to) {
    oct_st_file in;
    assert_int_equal(oct_st_open(&in, src), OCT_OK);
    const char *g = oct_st_meta(&in, "octet.graph"), *w = strstr(g, from);
    assert_non_null(w);
    size_t n = strlen(g) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(w - g), g, to, w + strlen(from));
    oct_st_close(&in);
    rewrite(src, dst, NULL, NULL, "octet.graph", out, false);
    free(out);
}

static void expect_rejected(const char *path, oct_status code, const char *needle) {
    oct_i8_gpt m;
    oct_status s = oct_i8_gpt_load(&m, path);
    if (s != code || !strstr(oct_last_error(), needle))
        fail_msg("expected status %d mentioning '%s', got %d: %s", code, needle, s,
                 oct_last_error());
    assert_null(m.lin);
}

static void corrupt_exports_rejected(void **state) {
    fixture *f = *state;
    assert_int_equal(oct_i8_gpt_save(&f->i8, f->path), OCT_OK);
    char bad[80];
    snprintf(bad, sizeof bad, "%s.bad", f->path);
    rewrite(f->path, bad, "h.1.mlp.fc.m0", NULL, NULL, NULL, false);
    expect_rejected(bad, OCT_ENOTFOUND, "h.1.mlp.fc.m0");
    rewrite(f->path, bad, NULL, "h.0.attn.qkv.m0", NULL, NULL, false);
    expect_rejected(bad, OCT_EFORMAT, "h.0.attn.qkv.m0");
    rewrite(f->path, bad, NULL, "lm_head.wsum", NULL, NULL, false);
    expect_rejected(bad, OCT_EFORMAT, "lm_head.wsum");
    rewrite(f->path, bad, NULL, NULL, NULL, NULL, true);
    expect_rejected(bad, OCT_EFORMAT, "tensors in the file");
    rewrite(f->path, bad, NULL, NULL, "octet.format", "octet-int8-mlp", false);
    expect_rejected(bad, OCT_EFORMAT, "not an int8 GPT export");
    rewrite(f->path, bad, NULL, NULL, "octet.format_version", "5", false);
    expect_rejected(bad, OCT_EFORMAT, "version");
    /* A config that disagrees with the tensors. */
    rewrite_graph(f->path, bad, "\"mlp\":32", "\"mlp\":33");
    expect_rejected(bad, OCT_EFORMAT, "h.0.mlp.fc: 16 -> 32, the config needs 16 -> 33");
    rewrite_graph(f->path, bad, "\"embeddings\":\"f32\"", "\"embeddings\":\"i8\"");
    expect_rejected(bad, OCT_ENOTFOUND, "wte.weight_q");
    /* sizes asking for gigabytes of tables are refused before anything is allocated */
    rewrite_graph(f->path, bad, "\"width\":16", "\"width\":65536");
    expect_rejected(bad, OCT_EFORMAT, "more values than the file holds");
    rewrite_graph(f->path, bad, "\"gelu\":\"tanh\"", "\"gelu\":0"); /* not a string */
    expect_rejected(bad, OCT_EFORMAT, "\"gelu\" must be \"tanh\" or \"erf\"");
    rewrite_graph(f->path, bad, "\"gelu\":\"tanh\"", "\"gelu\":\"tanh\",\"rope\":1");
    expect_rejected(bad, OCT_EFORMAT, "\"rope\" must be true or false");
    rewrite_graph(f->path, bad, "\"gelu\":\"tanh\"", "\"gelu\":\"tanh\",\"wpe\":0");
    expect_rejected(bad, OCT_EFORMAT, "\"wpe\" must be true or false");
    rewrite_graph(f->path, bad, "\"gelu\":\"tanh\"", "\"gelu\":\"tanh\",\"wpe\":false");
    expect_rejected(bad, OCT_EFORMAT, "\"wpe\" false needs \"rope\" true");
    /* Corrupt quantizer state (as a file could hold) fails the check, naming the tensor. */
    assert_int_equal(oct_qat_gpt_check(&f->q), OCT_OK);
    float hi = f->q.acts[0].hi->data[0];
    f->q.acts[0].hi->data[0] = NAN;
    assert_int_equal(oct_qat_gpt_check(&f->q), OCT_EFORMAT);
    assert_non_null(strstr(oct_last_error(), "'h.0.attn.qkv.in.hi' is nan"));
    f->q.acts[0].hi->data[0] = hi;
    /* An MLP loader refuses the GPT file too. */
    oct_i8_mlp mlp;
    assert_int_equal(oct_i8_mlp_load(&mlp, f->path), OCT_EFORMAT);
    unlink(bad);
}

/* Post-training dynamic quantization of the fixture's float weights: the engine gives the same
 * logits however it is called, close to the float model's, and so does the reloaded file;
 * damaged files are refused. */
static void dynamic_export(void **state) {
    fixture *f = *state;
    static float want[B * CTX * V], got[B * CTX * V];
    uint8_t vocab[V];
    for (int i = 0; i < V; i++) vocab[i] = (uint8_t)('a' + i);
    oct_i8_gpt d;
    assert_int_equal(oct_gpt_to_dynamic_int8(&f->gpt, vocab, f->embed_bits, &d), OCT_OK);
    assert_true(d.dynamic && d.lin[0].dynamic && (d.wte_q != NULL) == (f->embed_bits != 0));
    engine_logits(&d, f->val, CTX, CTX, 1, 1, want);
    expect_any_split(f, &d, want);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    const float *ref = oct_gpt_forward(&f->gpt, &g, f->val, B, CTX)->data;
    double err = 0, mag = 0;
    for (int i = 0; i < B * CTX * V; i++) {
        err = fmax(err, fabs((double)want[i] - ref[i]));
        mag = fmax(mag, fabs((double)ref[i]));
    }
    oct_graph_free(&g);
    printf("dynamic int8 vs fp32: max |logit difference| %.4f, max |logit| %.3f\n", err, mag);
    assert_true(err < 0.03 * mag);
    assert_int_equal(oct_i8_gpt_save(&d, f->path), OCT_OK);
    oct_i8_gpt m;
    assert_int_equal(oct_i8_gpt_load(&m, f->path), OCT_OK);
    assert_true(m.dynamic);
    engine_logits(&m, f->val, 5, 5, 3, 1, got);
    expect_equal(want, got, "reloaded dynamic export");
    oct_i8_gpt_free(&m);
    char bad[80];
    snprintf(bad, sizeof bad, "%s.bad", f->path);
    rewrite(f->path, bad, "h.0.mlp.fc.bias", NULL, NULL, NULL, false);
    expect_rejected(bad, OCT_ENOTFOUND, "h.0.mlp.fc.bias");
    float nan = NAN;
    rewrite_patch(f->path, bad, NULL, "h.1.attn.proj.bias", &nan, sizeof nan, NULL, NULL, false);
    expect_rejected(bad, OCT_EFORMAT, "h.1.attn.proj.bias: channel 0 is nan, not finite");
    rewrite(f->path, bad, NULL, NULL, NULL, NULL, true);
    expect_rejected(bad, OCT_EFORMAT, "tensors in the file");
    rewrite_graph(f->path, bad, "\"activations\":\"dynamic\"", "\"activations\":\"int4\"");
    expect_rejected(bad, OCT_EFORMAT, "\"activations\" must be");
    rewrite_graph(f->path, bad, "\"input_qmax\":255", "\"input_qmax\":254");
    expect_rejected(bad, OCT_EFORMAT, "dynamic input's codes are [0, 255]");
    unlink(bad);
    oct_i8_gpt_free(&d);
}

/* 4-bit embeddings are saved as a codebook and 4-bit indices, and load back bit for bit. */
static void packed_embeddings(void **state) {
    fixture *f = *state;
    static float want[B * CTX * V], got[B * CTX * V];
    assert_int_equal(oct_i8_gpt_quantize_embeddings(&f->i8, f->gpt.wte->data, f->gpt.wpe->data, 4),
                     OCT_OK);
    engine_logits(&f->i8, f->val, CTX, CTX, 1, 1, want);
    assert_int_equal(oct_i8_gpt_save(&f->i8, f->path), OCT_OK);
    oct_st_file file;
    assert_int_equal(oct_st_open(&file, f->path), OCT_OK);
    assert_null(oct_st_find(&file, "wte.weight_q"));
    assert_int_equal(oct_st_find(&file, "wpe.weight_idx")->shape[1], 16 * 4 / 8);
    assert_int_equal(oct_st_find(&file, "wte.weight_codebook")->numel, 16);
    oct_st_close(&file);
    oct_i8_gpt m;
    assert_int_equal(oct_i8_gpt_load(&m, f->path), OCT_OK);
    assert_memory_equal(m.wte_q, f->i8.wte_q, (size_t)V * 16);
    engine_logits(&m, f->val, CTX, CTX, 1, 1, got);
    expect_equal(want, got, "reloaded 4-bit embeddings");
    oct_i8_gpt_free(&m);
    char bad[80];
    snprintf(bad, sizeof bad, "%s.bad", f->path);
    rewrite(f->path, bad, "wte.weight_codebook", NULL, NULL, NULL, false);
    expect_rejected(bad, OCT_ENOTFOUND, "wte.weight_codebook");
    unlink(bad);
}

/* The engine's GELU table of block i (mlp.fc output code -> mlp.proj input code) recomputed
 * with gelu. */
static void gelu_table(const oct_i8_gpt *m, int i, void (*gelu)(const float *, int64_t, float *),
                       uint8_t *lut) {
    const oct_qlinear *fc = &m->lin[OCT_I8_GPT_PER_BLOCK * i + 2];
    int jp = OCT_I8_GPT_PER_BLOCK * i + 3;
    float g[256];
    for (int code = 0; code < 256; code++) g[code] = oct_dequantize(code, fc->y_scale, fc->y_zp);
    gelu(g, 256, g);
    oct_quantize_u8(g, 1, 256, &m->lin[jp].a_scale, &m->lin[jp].a_zp, m->in_qmin[jp],
                    m->in_qmax[jp], lut);
}

/* A model with the exact GELU and RoPE computes them (the invariant tests run on this fixture
 * too): the fp32 forward differs from the tanh form's and from the one without RoPE, so does the
 * engine's without RoPE, and the engine's GELU tables are the erf form's, which differ from the
 * tanh form's in some entries. */
static void erf_and_rope_are_used(void **state) {
    fixture *f = *state;
    assert_true(f->gpt.cfg.exact_gelu && f->i8.exact_gelu && f->gpt.cfg.rope && f->i8.rope);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    g.no_grad = true;
    size_t n = sizeof(float) * B * CTX * V;
    oct_tensor *exact = oct_gpt_forward(&f->gpt, &g, f->val, B, CTX);
    for (int k = 0; k < 2; k++) {
        bool *flag = k ? &f->gpt.cfg.rope : &f->gpt.cfg.exact_gelu;
        *flag = false;
        oct_tensor *other = oct_gpt_forward(&f->gpt, &g, f->val, B, CTX);
        *flag = true;
        assert_true(memcmp(exact->data, other->data, n) != 0);
    }
    oct_graph_free(&g);
    static float with[B * CTX * V], without[B * CTX * V];
    engine_logits(&f->i8, f->val, CTX, CTX, 1, 1, with);
    f->i8.rope = false;
    engine_logits(&f->i8, f->val, CTX, CTX, 1, 1, without);
    f->i8.rope = true;
    assert_true(memcmp(with, without, n) != 0);
    oct_i8_gpt_cache c;
    assert_int_equal(oct_i8_gpt_cache_init(&c, &f->i8, CTX), OCT_OK);
    int differ = 0;
    for (int i = 0; i < f->i8.n_layer; i++) {
        uint8_t erf_lut[256], tanh_lut[256];
        gelu_table(&f->i8, i, oct_nl_gelu_erf, erf_lut);
        gelu_table(&f->i8, i, oct_nl_gelu, tanh_lut);
        assert_memory_equal(c.gelu_lut + 256 * i, erf_lut, 256);
        differ += memcmp(erf_lut, tanh_lut, 256) != 0;
    }
    assert_true(differ > 0);
    oct_i8_gpt_cache_free(&c);
}

/* ---- int8 embeddings ------------------------------------------------------------------------- */

/* The export holds codes and per-row scales whose products are the tables the QAT forward pass
 * used (the invariant tests run on this fixture too), and the QAT forward does quantize them. */
static void int8_embeddings(void **state) {
    fixture *f = *state;
    oct_i8_gpt *m = &f->i8;
    assert_non_null(m->wte_q);
    assert_non_null(m->wpe_s);
    assert_int_equal(oct_i8_gpt_check(m), OCT_OK);
    for (int r = 0; r < V; r++) { /* min-max scales: each row reaches code 127 */
        int top = 0;
        for (int c = 0; c < 16; c++) {
            int v = abs(m->wte_q[r * 16 + c]);
            top = v > top ? v : top;
        }
        assert_int_equal(top, 127);
    }
    static float quant[B * CTX * V], plain[B * CTX * V];
    qat_logits(f, quant);
    f->q.cfg.embed_bits = 0;
    qat_logits(f, plain);
    f->q.cfg.embed_bits = 8;
    assert_true(memcmp(quant, plain, sizeof quant) != 0);
    float keep = m->wpe[3];
    m->wpe[3] = keep * 1.0001f + 1e-6f; /* a table that is not its codes times scales */
    assert_int_equal(oct_i8_gpt_check(m), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "wpe row 0 is not its codes times its scale"));
    m->wpe[3] = keep;
    /* 4-bit embeddings: codes in [-7, 7]. */
    oct_i8_gpt e = {.vocab = V, .context = CTX, .width = 16};
    assert_int_equal(oct_i8_gpt_quantize_embeddings(&e, f->gpt.wte->data, f->gpt.wpe->data, 4),
                     OCT_OK);
    for (int i = 0; i < V * 16; i++) assert_true(e.wte_q[i] >= -7 && e.wte_q[i] <= 7);
    assert_int_equal(oct_i8_gpt_quantize_embeddings(&e, e.wte, e.wpe, 1), OCT_EINVAL);
    oct_i8_gpt_free(&e);
}

static void corrupt_int8_embeddings_rejected(void **state) {
    fixture *f = *state;
    assert_int_equal(oct_i8_gpt_save(&f->i8, f->path), OCT_OK);
    char bad[80];
    snprintf(bad, sizeof bad, "%s.bad", f->path);
    float neg = -1.0f;
    rewrite_patch(f->path, bad, NULL, "wte.scale", &neg, sizeof neg, NULL, NULL, false);
    expect_rejected(bad, OCT_EFORMAT, "wte row 0 has scale -1");
    int8_t low = -128;
    rewrite_patch(f->path, bad, NULL, "wpe.weight_q", &low, 1, NULL, NULL, false);
    expect_rejected(bad, OCT_EFORMAT, "wpe code -128 at row 0");
    rewrite(f->path, bad, "wpe.scale", NULL, NULL, NULL, false);
    expect_rejected(bad, OCT_ENOTFOUND, "wpe.scale");
    rewrite_graph(f->path, bad, "\"embeddings\":\"i8\"", "\"embeddings\":\"f32\"");
    expect_rejected(bad, OCT_ENOTFOUND, "\"wte.weight\"");
    rewrite_graph(f->path, bad, "\"embeddings\":\"i8\"", "\"embeddings\":\"i4\"");
    expect_rejected(bad, OCT_EFORMAT, "\"embeddings\" must be");
    unlink(bad);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(invariant_every_position, setup, teardown),
        cmocka_unit_test_setup_teardown(export_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(pieces_gather_the_same_hessians, setup_i8_embeddings,
                                        teardown),
        cmocka_unit_test_setup_teardown(corrupt_exports_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(invariant_every_position, setup_i8_embeddings, teardown),
        cmocka_unit_test_setup_teardown(export_round_trip, setup_i8_embeddings, teardown),
        cmocka_unit_test_setup_teardown(int8_embeddings, setup_i8_embeddings, teardown),
        cmocka_unit_test_setup_teardown(corrupt_int8_embeddings_rejected, setup_i8_embeddings,
                                        teardown),
        cmocka_unit_test_setup_teardown(invariant_every_position, setup_erf_rope, teardown),
        cmocka_unit_test_setup_teardown(export_round_trip, setup_erf_rope, teardown),
        cmocka_unit_test_setup_teardown(erf_and_rope_are_used, setup_erf_rope, teardown),
        cmocka_unit_test_setup_teardown(dynamic_export, setup, teardown),
        cmocka_unit_test_setup_teardown(packed_embeddings, setup_i8_embeddings, teardown),
        cmocka_unit_test_setup_teardown(dynamic_export, setup_erf_rope, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
