/* GPT model lifecycle and file format. The file is safetensors: one F32 tensor per parameter
 * under its oct_gpt name ("wte.weight", "h.0.attn.qkv.weight", ...; see octet/nn.h), then a U8
 * tensor "vocab" (V) holding the byte of every token id, and metadata
 *   octet.model = "gpt", octet.vocab, octet.context, octet.layers, octet.heads, octet.width,
 *   octet.mlp = decimal integers, octet.tied = "true" or "false", octet.gelu = "tanh" (the
 *   tanh approximation; also when absent) or "erf" (exact), and for a model with the rotary
 *   embedding octet.rope = "true" (absent: false), without a learned position embedding (no
 *   "wpe.weight") octet.wpe = "false" (absent: true).
 * A QAT model adds its quantizer tensors ("h.0.attn.qkv.in.lo", ...; learned ones are
 * parameters) and metadata octet.qat (the oct_qat_config JSON) and octet.qat_steps. */
#include "gpt_model.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "load_check.h"
#include "octet/io.h"

oct_status gpt_model_init(gpt_model *m, const oct_gpt_config *cfg, const oct_vocab *vocab,
                          uint64_t seed) {
    memset(m, 0, sizeof *m);
    if (cfg->vocab != vocab->size)
        return oct_fail(OCT_EINVAL, "gpt: vocab %d differs from the vocabulary's %d tokens",
                        cfg->vocab, vocab->size);
    oct_arena_init(&m->arena, 0);
    oct_params_init(&m->params);
    m->vocab = *vocab;
    oct_rng rng;
    oct_rng_seed(&rng, seed, 1);
    oct_status s = oct_gpt_init(&m->gpt, &m->arena, &m->params, cfg, &rng);
    if (s != OCT_OK) gpt_model_free(m);
    return s;
}

oct_status gpt_model_check_size(const oct_st_file *f, const oct_gpt_config *cfg, bool no_biases) {
    int64_t C = cfg->width, biases = cfg->n_layer * (3 * C + C + 2 * C + cfg->mlp + C) + C;
    int64_t need = oct_gpt_param_count(cfg) - (no_biases ? biases : 0);
    int64_t have = oct_st_total_numel(f);
    if (need <= have) return OCT_OK;
    return oct_fail(OCT_EFORMAT,
                    "%s: a GPT of %d layers, width %d, context %d has %lld parameters, "
                    "but the file holds %lld values",
                    f->path, cfg->n_layer, cfg->width, cfg->context, (long long)need,
                    (long long)have);
}

void gpt_model_free(gpt_model *m) {
    if (!m) return;
    oct_qat_gpt_free(m->qat);
    free(m->qat);
    free(m->source);
    oct_params_free(&m->params);
    oct_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

oct_status gpt_model_enable_qat(gpt_model *m, const oct_qat_config *cfg) {
    OCT_ASSERT(!m->qat);
    m->qat = malloc(sizeof *m->qat);
    if (!m->qat) return oct_fail(OCT_ENOMEM, "gpt: out of memory for the QAT state");
    oct_status s = oct_qat_gpt_init(m->qat, &m->gpt, &m->arena, &m->params, cfg);
    if (s != OCT_OK) {
        free(m->qat);
        m->qat = NULL;
    }
    return s;
}

const char *gpt_embed_desc(int embed_bits, char *buf, size_t n) {
    if (!embed_bits) return "float32";
    if (embed_bits == 8) return "int8";
    snprintf(buf, n, "%d-bit", embed_bits);
    return buf;
}

oct_tensor *gpt_model_forward(gpt_model *m, oct_graph *g, const int32_t *ids, int B, int T) {
    return m->qat_on ? oct_qat_gpt_forward(m->qat, g, ids, B, T)
                     : oct_gpt_forward(&m->gpt, g, ids, B, T);
}

/* Quantizer tensors that are not parameters (observer ranges): saved and loaded by name. */
static bool is_plain_state(const gpt_model *m, const oct_tensor *t) {
    return !oct_params_find(&m->params, t->name);
}

/* The integer metadata value for key, in [1, max]. */
static oct_status meta_int(const oct_st_file *f, const char *key, int max, int *out) {
    const char *v = oct_st_meta(f, key);
    if (!v) return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is missing", f->path, key);
    char *end;
    long x = strtol(v, &end, 10);
    if (end == v || *end || x < 1 || x > max)
        return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is '%s', expected an integer in [1, %d]",
                        f->path, key, v, max);
    *out = (int)x;
    return OCT_OK;
}

/* The architecture stored in f's metadata. */
static oct_status read_config(const oct_st_file *f, oct_gpt_config *cfg) {
    const char *kind = oct_st_meta(f, "octet.model");
    if (!kind || strcmp(kind, "gpt"))
        return oct_fail(OCT_EFORMAT, "%s: %s, where an fp32 or QAT GPT model is expected", f->path,
                        cli_file_kind(f));
    const struct {
        const char *key;
        int max;
        int *dst;
    } ints[] = {
        {"octet.vocab", 65536, &cfg->vocab},
        {"octet.context", 1 << 20, &cfg->context},
        {"octet.layers", GPT_MAX_LAYERS, &cfg->n_layer},
        {"octet.heads", 1024, &cfg->n_head},
        {"octet.width", 1 << 16, &cfg->width},
        {"octet.mlp", 1 << 18, &cfg->mlp},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        oct_status s = meta_int(f, ints[i].key, ints[i].max, ints[i].dst);
        if (s != OCT_OK) return s;
    }
    const char *tied = oct_st_meta(f, "octet.tied");
    if (!tied || (strcmp(tied, "true") && strcmp(tied, "false")))
        return oct_fail(OCT_EFORMAT, "%s: metadata 'octet.tied' must be 'true' or 'false'",
                        f->path);
    cfg->tied = !strcmp(tied, "true");
    const char *gelu = oct_st_meta(f, "octet.gelu"); /* absent in files before it existed */
    if (gelu && strcmp(gelu, "tanh") && strcmp(gelu, "erf"))
        return oct_fail(OCT_EFORMAT, "%s: metadata 'octet.gelu' must be 'tanh' or 'erf'", f->path);
    cfg->exact_gelu = gelu && !strcmp(gelu, "erf");
    const char *rope = oct_st_meta(f, "octet.rope"); /* absent in files before it existed */
    if (rope && strcmp(rope, "true") && strcmp(rope, "false"))
        return oct_fail(OCT_EFORMAT, "%s: metadata 'octet.rope' must be 'true' or 'false'",
                        f->path);
    cfg->rope = rope && !strcmp(rope, "true");
    const char *wpe = oct_st_meta(f, "octet.wpe"); /* absent: true */
    if (wpe && strcmp(wpe, "true") && strcmp(wpe, "false"))
        return oct_fail(OCT_EFORMAT, "%s: metadata 'octet.wpe' must be 'true' or 'false'", f->path);
    cfg->no_wpe = wpe && !strcmp(wpe, "false");
    cfg->dropout = 0.0f;
    if (oct_gpt_config_check(cfg) != OCT_OK) return load_fail_in(OCT_EFORMAT, f->path);
    return OCT_OK;
}

oct_status gpt_model_load(gpt_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    oct_st_file f;
    oct_gpt_config cfg = {0};
    oct_vocab vocab;
    const void *bytes;
    oct_status s = oct_st_open(&f, path);
    if (s == OCT_OK) s = read_config(&f, &cfg);
    if (s == OCT_OK) s = oct_st_get(&f, "vocab", OCT_DT_U8, 1, &cfg.vocab, &bytes);
    if (s == OCT_ENOTFOUND) s = oct_fail(OCT_EFORMAT, "%s: tensor 'vocab' is missing", path);
    if (s == OCT_OK && oct_vocab_from_bytes(&vocab, bytes, cfg.vocab) != OCT_OK)
        s = load_fail_in(OCT_EFORMAT, path);
    if (s == OCT_OK) s = gpt_model_check_size(&f, &cfg, false);
    if (s == OCT_OK) s = gpt_model_init(m, &cfg, &vocab, 0);
    const char *qat = s == OCT_OK ? oct_st_meta(&f, "octet.qat") : NULL;
    int n_state = 0;
    if (qat) {
        oct_qat_config qc;
        s = oct_qat_config_from_json(&qc, qat);
        if (s == OCT_OK) s = gpt_model_enable_qat(m, &qc);
        if (s != OCT_OK)
            s = load_fail_in(OCT_EFORMAT, path);
        else
            s = load_qat_steps(&f, &m->qat->steps);
        const char *on = oct_st_meta(&f, "octet.qat_on"); /* a checkpoint before the QAT steps */
        if (s == OCT_OK && on && strcmp(on, "false") && strcmp(on, "true"))
            s = oct_fail(OCT_EFORMAT, "%s: metadata 'octet.qat_on' is '%s', expected true or false",
                         path, on);
        m->qat_on = !on || !strcmp(on, "true");
        for (int i = 0; s == OCT_OK && i < m->qat->n_state; i++) {
            if (!is_plain_state(m, m->qat->state[i])) continue;
            n_state++;
            s = oct_st_read_f32(&f, m->qat->state[i]);
            if (s == OCT_ENOTFOUND)
                s = oct_fail(OCT_EFORMAT, "%s: quantizer tensor '%s' is missing", path,
                             m->qat->state[i]->name);
        }
        if (s == OCT_OK) oct_qat_gpt_sync_frozen(m->qat);
    }
    for (int i = 0; i < m->params.n && s == OCT_OK; i++)
        s = load_read_param(&f, m->params.items[i]);
    int n_file = f.count; /* less a checkpoint's optimizer state */
    for (int i = 0; s == OCT_OK && i < f.count; i++)
        n_file -= !strncmp(f.entries[i].name, GPT_OPTIM_PREFIX, strlen(GPT_OPTIM_PREFIX));
    if (s == OCT_OK && n_file != m->params.n + 1 + n_state)
        s = oct_fail(OCT_EFORMAT, "%s: %d tensors in the file, the model has %d (with 'vocab')",
                     path, n_file, m->params.n + 1 + n_state);
    if (s == OCT_OK && m->qat && oct_qat_gpt_check(m->qat) != OCT_OK)
        s = load_fail_in(OCT_EFORMAT, path);
    if (s == OCT_OK) m->source = cli_meta_dup(&f, CLI_META_SOURCE);
    if (s != OCT_OK) gpt_model_free(m);
    oct_st_close(&f);
    return s;
}

oct_status gpt_model_save(const gpt_model *m, const char *path) {
    oct_st_writer w;
    oct_st_writer_init(&w);
    oct_status s = gpt_model_add(m, &w, path);
    if (s == OCT_OK) s = oct_st_writer_write(&w, path);
    oct_st_writer_free(&w);
    return s;
}

oct_status gpt_model_add(const gpt_model *m, oct_st_writer *w, const char *path) {
    const oct_gpt_config *c = &m->gpt.cfg;
    const struct {
        const char *key;
        int value;
    } ints[] = {
        {"octet.vocab", c->vocab},  {"octet.context", c->context}, {"octet.layers", c->n_layer},
        {"octet.heads", c->n_head}, {"octet.width", c->width},     {"octet.mlp", c->mlp},
    };
    oct_status s = oct_st_writer_meta(w, "octet.model", "gpt");
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && s == OCT_OK; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", ints[i].value);
        s = oct_st_writer_meta(w, ints[i].key, buf);
    }
    if (s == OCT_OK) s = oct_st_writer_meta(w, "octet.tied", c->tied ? "true" : "false");
    if (s == OCT_OK) s = oct_st_writer_meta(w, "octet.gelu", c->exact_gelu ? "erf" : "tanh");
    if (s == OCT_OK && c->rope) s = oct_st_writer_meta(w, "octet.rope", "true");
    if (s == OCT_OK && c->no_wpe) s = oct_st_writer_meta(w, "octet.wpe", "false");
    if (s == OCT_OK && m->source) s = oct_st_writer_meta(w, CLI_META_SOURCE, m->source);
    for (int i = 0; i < m->params.n && s == OCT_OK; i++)
        s = oct_st_writer_add_tensor(w, m->params.items[i]);
    /* Quantizer state before the U8 vocabulary keeps every float tensor aligned. */
    if (s == OCT_OK && m->qat) {
        char *json = oct_qat_config_to_json(&m->qat->cfg), steps[24];
        s = json ? oct_st_writer_meta(w, "octet.qat", json)
                 : oct_fail(OCT_ENOMEM, "%s: out of memory", path);
        free(json);
        snprintf(steps, sizeof steps, "%lld", (long long)m->qat->steps);
        if (s == OCT_OK) s = oct_st_writer_meta(w, "octet.qat_steps", steps);
        if (s == OCT_OK && !m->qat_on) s = oct_st_writer_meta(w, "octet.qat_on", "false");
        for (int i = 0; i < m->qat->n_state && s == OCT_OK; i++)
            if (is_plain_state(m, m->qat->state[i]))
                s = oct_st_writer_add_tensor(w, m->qat->state[i]);
    }
    if (s == OCT_OK) s = oct_st_writer_add(w, "vocab", OCT_DT_U8, 1, &c->vocab, m->vocab.bytes);
    return s;
}

oct_status gpt_eval_windows(const oct_text *text, oct_split split, oct_rng *rng, int stride,
                            int64_t *next, int B, int T, int32_t *x, int32_t *y, int *rows) {
    if (!stride) {
        *rows = B;
        return oct_text_batch(text, split, rng, B, T, x, y);
    }
    oct_status s = oct_text_windows(text, split, *next, stride, B, T, x, y, rows);
    *next += *rows;
    return s;
}

void gpt_eval_progress_begin(cli_progress *bar, const oct_text *text, oct_split split,
                             int n_batches, int stride, int B, int T) {
    if (n_batches) return; /* a few random batches: quick */
    int64_t windows = oct_text_window_count(text, split, T, stride > 0 ? stride : T);
    cli_progress_begin(bar, "eval", (windows + B - 1) / B, "tok/s");
}

double gpt_scored_loss(const float *logits, const int32_t *y, int rows, int T, int V, int64_t first,
                       int stride, int64_t *count) {
    double sum = 0.0;
    for (int r = 0; r < rows; r++) {
        int t0 = first + r == 0 ? 0 : T - stride;
        for (int t = t0; t < T; t++) {
            const float *z = logits + ((int64_t)r * T + t) * V;
            float top = z[0];
            for (int v = 1; v < V; v++) top = z[v] > top ? z[v] : top;
            double e = 0.0;
            for (int v = 0; v < V; v++) e += exp((double)z[v] - top);
            sum += (double)top + log(e) - z[y[(int64_t)r * T + t]];
        }
        *count += T - t0;
    }
    return sum;
}

oct_status gpt_model_evaluate(gpt_model *m, oct_graph *g, const oct_text *text, oct_split split,
                              int n_batches, int stride, int B, int T, uint64_t seed,
                              double *loss) {
    bool no_grad = g->no_grad, training = g->training;
    g->no_grad = true;
    g->training = false;
    oct_rng rng;
    oct_rng_seed(&rng, seed, 3);
    double sum = 0.0;
    int64_t count = 0, next = 0; /* batches' windows, or a full pass's positions */
    if (n_batches)
        stride = 0;
    else if (stride <= 0)
        stride = T;
    oct_status s = OCT_OK;
    cli_progress bar;
    gpt_eval_progress_begin(&bar, text, split, n_batches, stride, B, T);
    for (int i = 0; s == OCT_OK && (n_batches == 0 || i < n_batches); i++) {
        oct_graph_reset(g);
        int32_t *x = oct_arena_alloc(&g->arena, 2 * (size_t)B * (size_t)T * sizeof *x);
        int32_t *y = x + (int64_t)B * T;
        int rows;
        int64_t first = next;
        s = gpt_eval_windows(text, split, &rng, stride, &next, B, T, x, y, &rows);
        if (s != OCT_OK || rows == 0) break;
        oct_tensor *logits = gpt_model_forward(m, g, x, rows, T);
        if (stride) {
            sum +=
                gpt_scored_loss(logits->data, y, rows, T, logits->shape[2], first, stride, &count);
        } else {
            sum += (double)oct_gpt_loss(g, logits, y, 0.0f, NULL)->data[0] * rows;
            count += rows;
        }
        if (!n_batches) cli_progress_update(&bar, i + 1, NAN, (double)next * T);
    }
    if (!n_batches) cli_progress_end(&bar);
    oct_graph_reset(g);
    g->no_grad = no_grad;
    g->training = training;
    *loss = count > 0 ? sum / (double)count : 0.0;
    return s;
}

/* The repository's default corpus, found above the executable's directory (build-x/octet,
 * build-x/trainers/octet), into buf; NULL when there is none. */
static const char *repo_text(char *buf, size_t n) {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash) break;
        *slash = '\0';
        snprintf(buf, n, "%s/%s", exe, OCT_DEFAULT_TEXT);
        if (access(buf, R_OK) == 0) return buf;
    }
    /* an installed octet (meson install): the source tree it was built from */
    snprintf(buf, n, "%s/%s", OCTET_SOURCE_ROOT, OCT_DEFAULT_TEXT);
    return access(buf, R_OK) == 0 ? buf : NULL;
}

char *gpt_text_record(const char *text) {
    char buf[PATH_MAX + 32];
    const char *path = gpt_text_path(text, buf, sizeof buf);
    char *abs = path ? cli_source_record(path) : NULL;
    const char *repo = repo_text(buf, sizeof buf);
    char *repo_abs = repo ? realpath(repo, NULL) : NULL;
    if (abs && repo_abs && !strcmp(abs, repo_abs)) { /* every clone resolves this */
        free(abs);
        abs = strdup(OCT_DEFAULT_TEXT);
    }
    free(repo_abs);
    return abs;
}

int gpt_prompt_ids(const char *prompt, const oct_vocab *v, char buf[2], const char **text,
                   int64_t *len, int32_t **ids) {
    *ids = NULL;
    if (!prompt) {
        int first = 0; /* a C string cannot hold a NUL byte */
        while (first < v->size - 1 && v->bytes[first] == 0) first++;
        buf[0] = v->id['\n'] >= 0 ? '\n' : (char)v->bytes[first];
        buf[1] = '\0';
        prompt = buf;
    }
    *text = prompt;
    *len = (int64_t)strlen(prompt);
    if (*len > 1 << 20) return cli_fail("--prompt is longer than 1 MiB");
    if (!(*ids = malloc((size_t)(*len + 1) * sizeof **ids))) return cli_fail("out of memory");
    if (oct_vocab_encode(v, prompt, *len, *ids) == OCT_OK) return CLI_OK;
    fprintf(stderr,
            "octet generate: --prompt: %s; the model knows only the characters of its training "
            "text\n",
            oct_last_error());
    free(*ids);
    *ids = NULL;
    return CLI_USAGE;
}

void gpt_stream_init(gpt_stream *s, const oct_vocab *v, oct_rng *rng, const char *prompt,
                     int64_t len) {
    *s = (gpt_stream){v, rng, prompt, len, isatty(fileno(stdout)) == 1};
}

/* Prints the prompt if it is still pending. */
static void stream_prompt(gpt_stream *s) {
    if (!s->prompt) return;
    fwrite(s->prompt, 1, (size_t)s->prompt_len, stdout);
    s->prompt = NULL;
}

void gpt_stream_token(void *stream, int32_t id) {
    gpt_stream *s = stream;
    stream_prompt(s);
    putchar(s->vocab->bytes[id]);
    if (s->tty) fflush(stdout);
}

void gpt_stream_end(gpt_stream *s) {
    stream_prompt(s);
    putchar('\n');
    fflush(stdout);
}

const char *gpt_text_path(const char *path, char *buf, size_t n) {
    if (strcmp(path, OCT_DEFAULT_TEXT) || access(path, R_OK) == 0) return path;
    const char *repo = repo_text(buf, n);
    if (repo) return repo;
    oct_fail(OCT_ENOTFOUND,
             "%s not found (here, above octet's directory or in %s): run `bash "
             "datasets/prepare_text.sh` in the repository first (or pass --text FILE)",
             OCT_DEFAULT_TEXT, OCTET_SOURCE_ROOT);
    return NULL;
}

oct_status gpt_text_load(oct_text *t, const char *text_path, const oct_vocab *v, int context,
                         const char *model_path) {
    char buf[PATH_MAX + 32];
    const char *path = gpt_text_path(text_path, buf, sizeof buf);
    if (!path) return OCT_ENOTFOUND;
    oct_status s = oct_text_load(t, path, v->size == 256);
    if (s == OCT_OK && (s = oct_text_recode(t, v)) == OCT_OK) {
        int64_t val = oct_text_split_size(t, OCT_SPLIT_VAL);
        if (val >= (int64_t)context + 1) return OCT_OK;
        oct_text_free(t);
        return oct_fail(OCT_EINVAL,
                        "%s: the validation split (its last 10%%) holds %lld characters, fewer "
                        "than a window of the model's context %d + 1",
                        text_path, (long long)val, context);
    }
    if (!t->tokens) return s; /* not read */
    char why[256];
    snprintf(why, sizeof why, "%s", oct_last_error());
    oct_text_free(t);
    return oct_fail(s, "%s: %s of the model %s", text_path, why, model_path);
}
