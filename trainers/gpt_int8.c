/* The int8 GPT commands (see gpt_int8.h): export from a QAT GPT model file, validation loss of
 * an export with the integer engine (the same windows and the same loss function as the QAT
 * model's evaluation, so equal logits give an equal loss), and sampling with the engine. */
#include "gpt_int8.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gpt_model.h"
#include "octet/int8.h"
#include "octet/io.h"

bool gpt_int8_is_export(const char *path) {
    return cli_file_meta_is(path, "octet.format", OCT_I8_GPT_FORMAT);
}

bool gpt_is_model(const char *path) {
    return cli_file_meta_is(path, "octet.model", "gpt");
}

int gpt_int8_export(const char *path, const char *out, bool keep_source) {
    gpt_model m;
    if (gpt_model_load(&m, path)) return cli_fail(NULL);
    if (!m.qat) {
        gpt_model_free(&m);
        fprintf(stderr,
                "octet: %s is a fp32 GPT without quantization ranges: train it with "
                "'octet train gpt --qat' or calibrate it with 'octet calibrate' to export it as "
                "int8\n",
                path);
        return CLI_FAIL;
    }
    if (!m.qat_on) {
        gpt_model_free(&m);
        fprintf(stderr,
                "octet: %s: a checkpoint from before the QAT steps of its run, without "
                "quantization ranges yet: resume the run (--resume) to export it\n",
                path);
        return CLI_FAIL;
    }
    oct_i8_gpt i8;
    int rc = CLI_OK;
    oct_status s = oct_qat_gpt_to_int8(m.qat, m.vocab.bytes, &i8);
    if (s == OCT_OK && keep_source) i8.source = cli_take(&m.source); /* the text it records */
    if (s != OCT_OK || oct_i8_gpt_save(&i8, out)) {
        rc = cli_fail(NULL);
    } else {
        char emb[16];
        printf("%s: int8 GPT, %d layer%s, %d linears, %s embeddings, %lld bytes (%s is %lld "
               "bytes)\n",
               out, i8.n_layer, i8.n_layer == 1 ? "" : "s", OCT_I8_GPT_PER_BLOCK * i8.n_layer + 1,
               gpt_embed_desc(i8.wte_q ? m.qat->cfg.embed_bits : 0, emb, sizeof emb),
               cli_file_size(out), path, cli_file_size(path));
    }
    oct_i8_gpt_free(&i8);
    gpt_model_free(&m);
    return rc;
}

/* The vocabulary of an export. */
static int export_vocab(const oct_i8_gpt *m, oct_vocab *v) {
    if (oct_vocab_from_bytes(v, m->vocab_bytes, m->vocab)) return cli_fail(NULL);
    return CLI_OK;
}

/* "20 x 32 windows of 128 from TEXT", or for a full pass "the whole split, 3357 windows of 128
 * from TEXT" (with a stride below T: "..., 6713 windows of 128 every 64 characters from TEXT"). */
static void eval_windows_str(int n_batches, int B, int64_t windows, int T, int stride,
                             const char *text, char *buf, size_t n) {
    if (n_batches)
        snprintf(buf, n, "%d x %d windows of %d from %s", n_batches, B, T, text);
    else if (stride == T)
        snprintf(buf, n, "the whole split, %lld windows of %d from %s", (long long)windows, T,
                 text);
    else
        snprintf(buf, n, "the whole split, %lld windows of %d every %d characters from %s",
                 (long long)windows, T, stride, text);
}

/* --stride (0: the context T) checked against T and resolved into *stride. */
static int resolve_stride(int *stride, int T) {
    if (*stride > T) {
        fprintf(stderr, "octet eval: --stride %d: above the model's context %d\n", *stride, T);
        return CLI_USAGE;
    }
    if (!*stride) *stride = T;
    return CLI_OK;
}

int gpt_model_eval(const char *path, const char *text_path, int n_batches, int stride, int B,
                   int threads) {
    gpt_model m;
    if (gpt_model_load(&m, path)) return cli_fail(NULL);
    oct_text text = {0};
    int T = m.gpt.cfg.context;
    int rc = resolve_stride(&stride, T);
    if (rc == CLI_OK && gpt_text_load(&text, text_path, &m.vocab, T, path)) rc = cli_fail(NULL);
    if (rc == CLI_OK) {
        cli_set_threads(threads);
        oct_graph g;
        oct_graph_init(&g, 0, 0);
        double loss, t0 = cli_now();
        if (gpt_model_evaluate(&m, &g, &text, OCT_SPLIT_VAL, n_batches, stride, B, T, GPT_EVAL_SEED,
                               &loss)) {
            rc = cli_fail(NULL);
        } else {
            double sec = cli_now() - t0;
            int64_t windows = n_batches ? (int64_t)n_batches * B
                                        : oct_text_window_count(&text, OCT_SPLIT_VAL, T, stride);
            char where[PATH_MAX + 128];
            eval_windows_str(n_batches, B, windows, T, stride, text_path, where, sizeof where);
            char label[96] = "";
            if (m.qat_on) cli_qat_label(&m.qat->cfg, label, sizeof label);
            printf("%s: %s%sval loss %.4f nats/char (%.4f bits/char) on %s; %.0f tok/s\n", path,
                   label, label[0] ? " " : "", loss, loss / 0.69314718055994531, where,
                   (double)windows * T / sec);
        }
        oct_graph_free(&g);
    }
    oct_text_free(&text);
    gpt_model_free(&m);
    return rc;
}

/* Loads the --compare model: a QAT GPT of the export's vocabulary and context. */
static int load_reference(const char *path, const oct_i8_gpt *m, const oct_vocab *vocab,
                          gpt_model *ref) {
    if (gpt_model_load(ref, path)) return cli_fail(NULL);
    if (ref->qat_on && ref->gpt.cfg.context == m->context && ref->vocab.size == m->vocab &&
        !memcmp(ref->vocab.bytes, vocab->bytes, (size_t)m->vocab))
        return CLI_OK;
    fprintf(stderr, "octet: --compare %s: not a QAT GPT with the export's vocabulary and context\n",
            path);
    gpt_model_free(ref);
    return CLI_FAIL;
}

int gpt_int8_eval(const char *path, const char *text_path, int n_batches, int stride, int B,
                  int threads, const char *compare) {
    oct_i8_gpt m;
    if (oct_i8_gpt_load(&m, path)) return cli_fail(NULL);
    oct_vocab vocab;
    oct_text text = {0};
    gpt_model ref = {0};
    int T = m.context, V = m.vocab;
    int rc = export_vocab(&m, &vocab);
    if (rc == CLI_OK) rc = resolve_stride(&stride, T);
    if (n_batches) stride = 0; /* random windows */
    if (rc == CLI_OK && compare && m.dynamic) rc = cli_fail_dynamic_compare(path);
    if (rc == CLI_OK && compare) rc = load_reference(compare, &m, &vocab, &ref);
    if (rc == CLI_OK)
        rc = gpt_text_load(&text, text_path, &vocab, T, path) ? cli_fail(NULL) : CLI_OK;
    oct_i8_gpt_cache c;
    if (rc == CLI_OK && oct_i8_gpt_cache_init(&c, &m, T)) rc = cli_fail(NULL);
    if (rc != CLI_OK) {
        oct_text_free(&text);
        gpt_model_free(&ref);
        oct_i8_gpt_free(&m);
        return rc;
    }
    c.threads = threads;
    oct_graph g;
    oct_graph_init(&g, 0, 0);
    g.no_grad = true;
    oct_rng rng;
    oct_rng_seed(&rng, GPT_EVAL_SEED, 3); /* the windows gpt_model_evaluate draws */
    double sum = 0.0, sec = 0.0;
    int64_t same = 0, windows = 0, next = 0, scored = 0; /* scored: a full pass's positions */
    cli_progress bar;
    gpt_eval_progress_begin(&bar, &text, OCT_SPLIT_VAL, n_batches, stride, B, T);
    for (int i = 0; rc == CLI_OK && (n_batches == 0 || i < n_batches); i++) {
        oct_graph_reset(&g);
        int32_t *x = oct_arena_alloc(&g.arena, 2 * (size_t)B * T * sizeof *x), *y = x + B * T;
        int32_t *acc = oct_arena_alloc(&g.arena, (size_t)B * T * V * sizeof *acc);
        int rows;
        int64_t first = next;
        if (gpt_eval_windows(&text, OCT_SPLIT_VAL, &rng, stride, &next, B, T, x, y, &rows)) {
            rc = cli_fail(NULL);
            break;
        }
        if (rows == 0) break;
        oct_tensor *logits = oct_tensor_new2(&g.arena, rows * T, V);
        double t0 = cli_now();
        for (int b = 0; b < rows; b++) {
            c.len = 0;
            oct_i8_gpt_run(&c, x + (int64_t)b * T, T, acc + (int64_t)b * T * V,
                           logits->data + (int64_t)b * T * V);
        }
        sec += cli_now() - t0;
        if (stride)
            sum += gpt_scored_loss(logits->data, y, rows, T, V, first, stride, &scored);
        else
            sum += (double)oct_cross_entropy(&g, logits, y)->data[0] * rows;
        windows += rows;
        if (compare) {
            const float *want = gpt_model_forward(&ref, &g, x, rows, T)->data;
            for (int64_t r = 0; r < (int64_t)rows * T; r++)
                same += !memcmp(want + r * V, logits->data + r * V, sizeof(float) * (size_t)V);
        }
        if (!n_batches) cli_progress_update(&bar, i + 1, NAN, (double)windows * T);
    }
    if (!n_batches) cli_progress_end(&bar);
    double loss =
        stride ? (scored ? sum / (double)scored : 0.0) : (windows ? sum / (double)windows : 0.0);
    long long positions = (long long)windows * T;
    char where[PATH_MAX + 128];
    eval_windows_str(n_batches, B, windows, T, stride, text_path, where, sizeof where);
    if (rc == CLI_OK)
        printf("%s: %sint8 val loss %.4f nats/char (%.4f bits/char) on %s; %.0f tok/s (%d "
               "thread%s, kernel %s)\n",
               path, m.dynamic ? "dynamic " : "", loss, loss / 0.69314718055994531, where,
               (double)positions / sec, threads, threads == 1 ? "" : "s", oct_i8_kernel_name());
    if (rc == CLI_OK && compare) {
        printf("compared with %s: logits bit-identical at %lld/%lld positions\n", compare,
               (long long)same, positions);
        if (same != positions) {
            fprintf(stderr, "octet: --compare %s: logits differ at %lld of %lld positions\n",
                    compare, positions - (long long)same, positions);
            rc = CLI_FAIL;
        }
    }
    gpt_model_free(&ref);
    oct_graph_free(&g);
    oct_i8_gpt_cache_free(&c);
    oct_text_free(&text);
    oct_i8_gpt_free(&m);
    return rc;
}

/* oct_gpt_sample, printing each token as it is drawn (stream: a gpt_stream). */
static int32_t sample(const float *logits, int V, float temperature, int top_k, void *stream) {
    int32_t id = oct_gpt_sample(logits, V, temperature, top_k, ((gpt_stream *)stream)->rng);
    gpt_stream_token(stream, id);
    return id;
}

int gpt_int8_generate(const char *path, const char *prompt, int n, float temperature, int top_k,
                      int seed, int threads) {
    oct_i8_gpt m;
    if (oct_i8_gpt_load(&m, path)) return cli_fail(NULL);
    oct_vocab vocab;
    int rc = export_vocab(&m, &vocab);
    char first[2];
    int64_t len = 0;
    int32_t *ids = NULL;
    oct_i8_gpt_cache c = {0};
    if (rc == CLI_OK) rc = gpt_prompt_ids(prompt, &vocab, first, &prompt, &len, &ids);
    if (rc == CLI_OK && oct_i8_gpt_cache_init(&c, &m, m.context)) rc = cli_fail(NULL);
    if (rc == CLI_OK) {
        c.threads = threads;
        oct_rng rng;
        oct_rng_seed(&rng, (uint64_t)seed, 4);
        gpt_stream out;
        gpt_stream_init(&out, &vocab, &rng, prompt, len);
        double t0 = cli_now();
        if (oct_i8_gpt_generate(&c, ids, (int)len, n, temperature, top_k, sample, &out, NULL)) {
            rc = cli_fail(NULL);
        } else {
            gpt_stream_end(&out);
            double sec = cli_now() - t0;
            fprintf(stderr, "octet: int8 engine%s: %d tokens in %.3f s, %.0f tok/s\n",
                    m.dynamic ? " (dynamic activations)" : "", n, sec, n / sec);
        }
    }
    oct_i8_gpt_cache_free(&c);
    free(ids);
    oct_i8_gpt_free(&m);
    return rc;
}
