/* `octet calibrate MODEL -o OUT`: post-training static quantization. A saved fp32 GPT or MLP
 * gets the quantizer state of QAT (int8 per-channel min-max weights, uint8 activations; N-bit
 * embeddings with --embed-bits N) and its activation observers watch --batches forward passes
 * over training data, without a gradient step; then they freeze (with GPTQ weights, one more
 * pass per linear layer follows: calibrate_passes). The result is a QAT model file: `octet
 * export` turns it into the int8 model, which the integer engine runs bit for bit as the
 * calibrated model's simulated forward (`eval --int8 --compare`). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "load_check.h"
#include "commands.h"
#include "gpt_int8.h"
#include "gpt_model.h"
#include "int8_model.h"
#include "mlp_model.h"

/* The calibration data are drawn with this seed. */
#define CAL_SEED 20241127u
/* The defaults, measured on the default fp32 GPT (1.1710 nats/char) with int8 embeddings:
 * ema observers 1.1719 after 5 batches and 1.1717 after 100; minmax 1.1721 after 5 and 1.1731
 * after 100 (the range of more batches takes in rarer outliers). */
#define CAL_BATCHES 100
#define CAL_OBSERVERS "ema"
/* Images per MLP calibration batch. */
#define MLP_CAL_BATCH 256
/* GPTQ's dampening: this fraction of the mean diagonal of the inputs' x^T x is added to it (the
 * paper's 0.01). */
#define GPTQ_DAMP 0.01

typedef struct cal_opts {
    const char *out, *text, *data, *act_quant, *weight_quant, *layer_bits;
    int batches, embed_bits, weight_bits, act_bits, threads;
    int sensitivity;         /* --sensitivity BITS (0: off) */
    bool per_tensor_weights; /* one weight scale per layer */
    bool no_fp32;            /* skip the fp32 evaluation (sensitivity runs after the first) */
} cal_opts;

/* Linear layers a --sensitivity run handles (a GPT of up to 64 blocks). */
#define CAL_MAX_LINEARS (4 * 64 + 1)

/* What calibrations of the model read, loaded once (a --sensitivity run calibrates once per
 * layer): the GPT's text in the model's vocabulary, or the MLP's training and test images; and
 * the names of the model's linear layers. */
typedef struct cal_data {
    bool gpt;
    oct_text text;
    oct_image_set train, test;
    int n_linear;
    char names[CAL_MAX_LINEARS][32];
} cal_data;

/* What a calibration measured: GPT validation loss (nats/char) or MLP test accuracy (0..1),
 * simulated quantized and fp32 (when evaluated). */
typedef struct cal_result {
    double quant, fp32;
} cal_result;

/* Whether the weights keep clipped scales as LSQ steps: --weight-quant mse or gptq. */
static bool clipped_steps(const cal_opts *o) {
    return !strcmp(o->weight_quant, "mse") || !strcmp(o->weight_quant, "gptq");
}

/* The quantizer configuration: QAT's defaults, observers frozen after the calibration. */
static int quant_config(const cal_opts *o, oct_qat_config *cfg) {
    oct_qat_config_default(cfg);
    cfg->freeze_after = o->batches;
    if (strcmp(o->act_quant, "minmax") && strcmp(o->act_quant, "ema") &&
        strcmp(o->act_quant, "hist")) {
        fprintf(stderr, "octet calibrate: --act-quant '%s': expected minmax, ema or hist\n",
                o->act_quant);
        return CLI_USAGE;
    }
    if (strcmp(o->weight_quant, "minmax") && strcmp(o->weight_quant, "mse") &&
        strcmp(o->weight_quant, "gptq") && strcmp(o->weight_quant, "pow2") &&
        strcmp(o->weight_quant, "kmeans")) {
        fprintf(stderr,
                "octet calibrate: --weight-quant '%s': expected minmax, mse, gptq, pow2 or "
                "kmeans\n",
                o->weight_quant);
        return CLI_USAGE;
    }
    if (!strcmp(o->weight_quant, "gptq") && o->per_tensor_weights) {
        fprintf(stderr, "octet calibrate: --weight-quant gptq: per channel only, not with "
                        "--per-tensor-weights\n");
        return CLI_USAGE;
    }
    /* mse and gptq keep their scales as LSQ steps, set once (steps_begin): one per channel, a
     * per-tensor scale being written into every channel */
    bool steps = clipped_steps(o);
    const cli_quant q = {o->weight_bits,
                         o->act_bits,
                         o->embed_bits,
                         o->per_tensor_weights && !steps,
                         steps ? "lsq" : o->weight_quant,
                         o->act_quant,
                         o->layer_bits};
    return cli_qat_config("calibrate", &q, cfg);
}

/* Before calibration, with clipped_steps: every linear layer's steps are its clipped scales of
 * least squared error (oct_quant_row_scales_mse; with --per-tensor-weights their largest in
 * every channel), computed once. */
static void steps_begin(const cal_opts *o, oct_qat_linear *lin, int n) {
    for (int j = 0; j < n; j++) {
        const oct_tensor *w = lin[j].fp->w;
        int out = w->shape[0];
        float *s = lin[j].wscale->data;
        oct_quant_row_scales_mse(&lin[j].wscheme, w->data, out, w->shape[1], s);
        if (o->per_tensor_weights) {
            float top = s[0];
            for (int c = 1; c < out; c++) top = s[c] > top ? s[c] : top;
            for (int c = 0; c < out; c++) s[c] = top;
        }
    }
}

/* One calibration pass: --batches forward passes over the same training batches every time
 * (drawn from CAL_SEED), observers watching until they freeze; label names it on the progress
 * bar. layer is -1 for the observers' pass; GPTQ's pass for linear layer j (the layers before it
 * done) gives j, and needs to run the model only as far as that layer. */
typedef int (*cal_pass)(void *ctx, const char *label, int layer);

/* The observers' pass, then with gptq, layer by layer in the order of the forward pass, a pass
 * that gathers the layer's inputs' x^T x (its Hessian), the inputs coming through the layers
 * before it with the codes GPTQ chose for them, and GPTQ on the layer (as in the paper: each
 * layer's rounding errors are seen by the layers after it). A head tied to the token embeddings
 * keeps its weights (GPTQ would change the embeddings). */
static int calibrate_passes(const cal_opts *o, const cal_data *d, oct_qat_linear *lin, int n,
                            bool tied_head, cal_pass pass, void *ctx) {
    int rc = pass(ctx, "calibrate", -1);
    if (strcmp(o->weight_quant, "gptq")) return rc;
    for (int j = 0; j < n - tied_head && rc == CLI_OK; j++) {
        oct_qat_linear *l = &lin[j];
        int in = l->fp->w->shape[1];
        l->xtx = calloc((size_t)in * (size_t)in, sizeof *l->xtx);
        if (!l->xtx) return cli_fail("calibrate: out of memory for GPTQ");
        char label[64];
        snprintf(label, sizeof label, "GPTQ %d/%d %s", j + 1, n - tied_head, d->names[j]);
        rc = pass(ctx, label, j);
        if (rc == CLI_OK && oct_qat_linear_gptq(l, GPTQ_DAMP)) rc = cli_fail(NULL);
        free(l->xtx);
        l->xtx = NULL;
    }
    return rc;
}

/* The weights for the summary line: "4-bit", "4-bit clipped", "3-bit power-of-two" or "4-bit
 * codebook", then " (lm_head=8)" with --layer-bits. */
static const char *weight_desc(const cal_opts *o, char *buf, size_t n) {
    const char *word = !strcmp(o->weight_quant, "pow2")     ? " power-of-two"
                       : !strcmp(o->weight_quant, "kmeans") ? " codebook"
                       : !strcmp(o->weight_quant, "mse")    ? " clipped"
                       : !strcmp(o->weight_quant, "gptq")   ? " GPTQ"
                                                            : "";
    snprintf(buf, n, "%d-bit%s%s%s%s%s", o->weight_bits, o->per_tensor_weights ? " per-tensor" : "",
             word, o->layer_bits ? " (" : "", o->layer_bits ? o->layer_bits : "",
             o->layer_bits ? ")" : "");
    return buf;
}

/* Refuses a model that already has quantizer state. */
/* Refuses the QAT model at path (qat_on false: a checkpoint taken before its QAT steps). */
static int refuse_qat(const char *path, bool qat_on) {
    if (qat_on)
        fprintf(stderr,
                "octet: %s already has quantization ranges (a QAT model): export it with "
                "'octet export'\n",
                path);
    else
        fprintf(stderr,
                "octet: %s is the checkpoint of a QAT run before its QAT steps: finish the run "
                "with 'octet train gpt --resume %s'\n",
                path, path);
    return CLI_FAIL;
}

static void cal_data_free(cal_data *d) {
    oct_text_free(&d->text);
    oct_image_set_free(&d->train);
    oct_image_set_free(&d->test);
}

/* Checks the fp32 model at path and loads what its calibrations read into d (zeroed first). */
static int cal_data_load(const char *path, const cal_opts *o, cal_data *d) {
    memset(d, 0, sizeof *d);
    if (gpt_int8_is_export(path) || int8_is_export(path)) {
        fprintf(stderr,
                "octet calibrate: %s is already an int8 export; calibrate takes a fp32 model\n",
                path);
        return CLI_FAIL; /* a file of the wrong kind, as elsewhere */
    }
    d->gpt = gpt_is_model(path);
    int rc = CLI_OK;
    if (d->gpt) {
        gpt_model m;
        if (gpt_model_load(&m, path)) return cli_fail(NULL);
        d->n_linear = 4 * m.gpt.cfg.n_layer + 1;
        for (int j = 0; j < d->n_linear && j < CAL_MAX_LINEARS; j++)
            oct_gpt_linear_name(m.gpt.cfg.n_layer, j, d->names[j], sizeof d->names[j]);
        rc = m.qat ? refuse_qat(path, m.qat_on)
             : gpt_text_load(&d->text, o->text, &m.vocab, m.gpt.cfg.context, path) ? cli_fail(NULL)
                                                                                   : CLI_OK;
        gpt_model_free(&m);
    } else {
        if (o->embed_bits) {
            fprintf(stderr, "octet calibrate: --embed-bits: a GPT flag (%s is not a GPT)\n", path);
            return CLI_USAGE;
        }
        mlp_model m;
        if (mlp_model_load(&m, path)) return cli_fail(NULL);
        d->n_linear = m.mlp.n_layers;
        for (int j = 0; j < d->n_linear && j < CAL_MAX_LINEARS; j++)
            snprintf(d->names[j], sizeof d->names[j], "fc%d", j);
        if (m.qat)
            rc = refuse_qat(path, m.qat_on);
        else if (oct_image_set_load_dir(&d->train, o->data, true) ||
                 oct_image_set_load_dir(&d->test, o->data, false) ||
                 mlp_data_check(path, m.mlp.sizes[0], m.mlp.sizes[m.mlp.n_layers], &d->train,
                                "training", o->data) ||
                 mlp_data_check(path, m.mlp.sizes[0], m.mlp.sizes[m.mlp.n_layers], &d->test, "test",
                                o->data))
            rc = cli_fail(NULL);
        mlp_model_free(&m);
    }
    if (rc == CLI_OK && d->n_linear > CAL_MAX_LINEARS)
        rc = cli_fail("calibrate: more linear layers than it handles");
    if (rc != CLI_OK) cal_data_free(d);
    return rc;
}

/* A GPT's calibration pass (cal_pass) over ctx, a gpt_pass. */
typedef struct gpt_pass {
    int batches;
    gpt_model *m;
    oct_graph *g;
    const oct_text *text;
    int32_t *xy; /* (2, B, T) */
    int B, T;
    float *cache; /* GPTQ: (batches, B, T, C), the residual stream at block `cached`'s input */
    int cached;
} gpt_pass;

/* GPTQ's pass for linear layer j of the GPT: every batch's residual stream comes from the cache
 * (the embeddings at the first pass), goes through the blocks between the cached one and j's,
 * whose layers have GPTQ's codes by now (and is cached again there), then through j's block as
 * far as j, or the head. Each block runs about three times in all, where whole forward passes
 * would run every block once per later layer; same arithmetic, same Hessians. */
static int gpt_gptq_pass(gpt_pass *c, const char *label, int j) {
    oct_qat_gpt *q = c->m->qat;
    int B = c->B, T = c->T, C = c->m->gpt.cfg.width, blk = j / OCT_QAT_GPT_PER_BLOCK;
    size_t n = (size_t)B * (size_t)T * (size_t)C;
    bool embed = !c->cache;
    if (embed && !(c->cache = malloc((size_t)c->batches * n * sizeof *c->cache))) {
        fprintf(stderr,
                "octet calibrate: out of memory for GPTQ's activations (%.0f MB; fewer --batches "
                "take less)\n",
                (double)c->batches * (double)n * sizeof *c->cache / 1e6);
        return CLI_FAIL;
    }
    oct_qat_gpt_sync_frozen(q); /* the observers' pass ended at their freeze */
    oct_rng rng;
    oct_rng_seed(&rng, CAL_SEED, 4);
    int shape[3] = {B, T, C};
    cli_progress bar;
    cli_progress_begin(&bar, label, c->batches, "tok/s");
    for (int i = 0; i < c->batches; i++) {
        oct_graph_reset(c->g);
        float *cached = c->cache + (size_t)i * n;
        oct_tensor *x;
        if (embed) {
            if (oct_text_batch(c->text, OCT_SPLIT_TRAIN, &rng, B, T, c->xy,
                               c->xy + (int64_t)B * T)) {
                cli_progress_end(&bar);
                return cli_fail(NULL);
            }
            x = oct_qat_gpt_embed(q, c->g, c->xy, B, T);
        } else {
            x = oct_tensor_new(&c->g->arena, 3, shape);
            memcpy(x->data, cached, n * sizeof *cached);
        }
        for (int k = c->cached; k < blk; k++)
            x = oct_qat_gpt_block(q, c->g, x, k, OCT_QAT_GPT_FC_PROJ);
        if (embed || blk > c->cached) memcpy(cached, x->data, n * sizeof *cached);
        if (blk < c->m->gpt.cfg.n_layer)
            oct_qat_gpt_block(q, c->g, x, blk, j % OCT_QAT_GPT_PER_BLOCK);
        else
            oct_qat_gpt_head(q, c->g, x);
        cli_progress_update(&bar, i + 1, NAN, (double)(i + 1) * B * T);
    }
    cli_progress_end(&bar);
    c->cached = blk;
    return CLI_OK;
}

static int gpt_calibration_pass(void *ctx, const char *label, int layer) {
    gpt_pass *c = ctx;
    if (layer >= 0) return gpt_gptq_pass(c, label, layer);
    int B = c->B, T = c->T;
    oct_rng rng;
    oct_rng_seed(&rng, CAL_SEED, 4);
    cli_progress bar;
    cli_progress_begin(&bar, label, c->batches, "tok/s");
    int rc = CLI_OK;
    for (int i = 0; i < c->batches && rc == CLI_OK; i++) {
        oct_graph_reset(c->g);
        if (oct_text_batch(c->text, OCT_SPLIT_TRAIN, &rng, B, T, c->xy, c->xy + (int64_t)B * T)) {
            rc = cli_fail(NULL);
            break;
        }
        oct_qat_gpt_needs_whole_batch(c->m->qat); /* syncs the frozen flags */
        oct_tensor *logits = gpt_model_forward(c->m, c->g, c->xy, B, T);
        oct_qat_gpt_commit(c->m->qat);
        cli_progress_update(&bar, i + 1,
                            oct_gpt_loss(c->g, logits, c->xy + (int64_t)B * T, 0.0f, NULL)->data[0],
                            (double)(i + 1) * B * T);
    }
    cli_progress_end(&bar);
    return rc;
}

/* Calibrates the GPT at path on d's text; saves it to o->out and prints a summary unless o->out
 * is NULL. */
static int calibrate_gpt(const char *path, const cal_opts *o, const cal_data *d, cal_result *r) {
    gpt_model m;
    if (gpt_model_load(&m, path)) return cli_fail(NULL);
    const oct_text *text = &d->text;
    oct_qat_config cfg;
    int rc = quant_config(o, &cfg);
    if (rc == CLI_OK && gpt_model_enable_qat(&m, &cfg)) {
        load_fail_in(OCT_EINVAL, path); /* the message, naming the model */
        rc = cli_fail(NULL);
    }
    int B = GPT_EVAL_WINDOWS, T = m.gpt.cfg.context;
    int32_t *xy = rc == CLI_OK ? malloc(2 * (size_t)B * (size_t)T * sizeof *xy) : NULL;
    if (rc == CLI_OK && !xy) rc = cli_fail("out of memory");
    oct_graph g;
    oct_graph_init(&g, 0, 0);
    double fp32 = 0, ptq = 0;
    if (rc == CLI_OK) {
        cli_set_threads(o->threads);
        oct_qat_gpt_set_threads(m.qat, o->threads);
        if (!o->no_fp32 && gpt_model_evaluate(&m, &g, text, OCT_SPLIT_VAL, GPT_EVAL_BATCHES, 0, B,
                                              T, GPT_EVAL_SEED, &fp32))
            rc = cli_fail(NULL);
    }
    if (rc == CLI_OK && clipped_steps(o)) steps_begin(o, m.qat->lin, m.qat->n_linear);
    m.qat_on = true;
    g.training = true; /* observers watch; no_grad: no backward, no step */
    g.no_grad = true;
    gpt_pass pass = {o->batches, &m, &g, &d->text, xy, B, T, NULL, 0};
    if (rc == CLI_OK)
        rc = calibrate_passes(o, d, m.qat->lin, m.qat->n_linear, m.gpt.cfg.tied,
                              gpt_calibration_pass, &pass);
    g.training = false;
    g.no_grad = false;
    if (rc == CLI_OK && gpt_model_evaluate(&m, &g, text, OCT_SPLIT_VAL, GPT_EVAL_BATCHES, 0, B, T,
                                           GPT_EVAL_SEED, &ptq))
        rc = cli_fail(NULL);
    if (rc == CLI_OK && o->out) { /* the text it was calibrated on */
        free(m.source);
        m.source = gpt_text_record(o->text);
        if (gpt_model_save(&m, o->out)) rc = cli_fail(NULL);
    }
    *r = (cal_result){ptq, fp32};
    char wd[OCT_QAT_LAYER_BITS_LEN + 32], embed[16];
    if (rc == CLI_OK && o->out)
        printf("%s: calibrated on %d x %d training windows (%s observers; %s weights, "
               "%d-bit activations, %s embeddings): simulated quantized val loss %.4f nats/char, "
               "fp32 %.4f\nsaved %s\n",
               path, o->batches, B, o->act_quant, weight_desc(o, wd, sizeof wd), o->act_bits,
               gpt_embed_desc(o->embed_bits, embed, sizeof embed), ptq, fp32, o->out);
    oct_graph_free(&g);
    free(pass.cache);
    free(xy);
    gpt_model_free(&m);
    return rc;
}

/* An MLP's calibration pass (cal_pass) over ctx, an mlp_pass. */
typedef struct mlp_pass {
    int batches;
    mlp_model *m;
    oct_graph *g;
    const oct_image_set *train; /* with the model's normalization */
    int batch;
} mlp_pass;

static int mlp_calibration_pass(void *ctx, const char *label, int layer) {
    (void)layer; /* an MLP's passes are short: each runs the whole model */
    mlp_pass *c = ctx;
    oct_rng rng;
    oct_rng_seed(&rng, CAL_SEED, 4);
    oct_batcher batcher = {0};
    if (oct_batcher_init(&batcher, c->train->n, c->batch, false, &rng)) return cli_fail(NULL);
    int in = c->m->mlp.sizes[0];
    cli_progress bar;
    cli_progress_begin(&bar, label, c->batches, "images/s");
    for (int i = 0; i < c->batches; i++) {
        const int32_t *idx;
        int n;
        oct_batcher_next(&batcher, &idx, &n);
        oct_graph_reset(c->g);
        oct_tensor *x = oct_tensor_new2(&c->g->arena, n, in);
        int32_t *y = oct_arena_alloc(&c->g->arena, (size_t)n * sizeof *y);
        oct_image_set_batch(c->train, idx, n, x->data, y);
        oct_qat_mlp_needs_whole_batch(c->m->qat); /* syncs the frozen flags */
        oct_tensor *logits = mlp_model_forward(c->m, c->g, x);
        oct_qat_mlp_commit(c->m->qat);
        cli_progress_update(&bar, i + 1, oct_cross_entropy(c->g, logits, y)->data[0],
                            (double)(i + 1) * c->batch);
    }
    cli_progress_end(&bar);
    oct_batcher_free(&batcher);
    return CLI_OK;
}

/* Calibrates the MLP at path on d's images; saves it to o->out and prints a summary unless
 * o->out is NULL. */
static int calibrate_mlp(const char *path, const cal_opts *o, const cal_data *d, cal_result *r) {
    mlp_model m;
    if (mlp_model_load(&m, path)) return cli_fail(NULL);
    oct_image_set train = d->train; /* a view with the model's normalization */
    const oct_image_set *test = &d->test;
    oct_qat_config cfg;
    int rc = quant_config(o, &cfg);
    if (rc == CLI_OK && mlp_model_enable_qat(&m, &cfg)) {
        load_fail_in(OCT_EINVAL, path); /* the message, naming the model */
        rc = cli_fail(NULL);
    }
    oct_graph g;
    oct_graph_init(&g, 0, 0);
    int batch = train.n < MLP_CAL_BATCH ? (int)train.n : MLP_CAL_BATCH;
    mlp_eval fp32 = {0}, ptq = {0};
    if (rc == CLI_OK) {
        cli_set_threads(o->threads);
        oct_qat_mlp_set_threads(m.qat, o->threads);
        if (!o->no_fp32) fp32 = mlp_model_evaluate(&m, &g, test);
    }
    if (rc == CLI_OK && clipped_steps(o)) steps_begin(o, m.qat->layers, m.mlp.n_layers);
    train.mean = m.mean;
    train.std = m.std;
    m.qat_on = true;
    g.training = true; /* observers watch; no_grad: no backward, no step */
    g.no_grad = true;
    mlp_pass pass = {o->batches, &m, &g, &train, batch};
    if (rc == CLI_OK)
        rc = calibrate_passes(o, d, m.qat->layers, m.mlp.n_layers, false, mlp_calibration_pass,
                              &pass);
    g.training = false;
    g.no_grad = false;
    if (rc == CLI_OK) ptq = mlp_model_evaluate(&m, &g, test);
    if (rc == CLI_OK && o->out) { /* the data it was calibrated on */
        free(m.source);
        m.source = cli_source_record(o->data);
        if (mlp_model_save(&m, o->out)) rc = cli_fail(NULL);
    }
    *r = (cal_result){ptq.accuracy, fp32.accuracy};
    char wd[OCT_QAT_LAYER_BITS_LEN + 32];
    if (rc == CLI_OK && o->out)
        printf("%s: calibrated on %d x %d training images (%s observers; %s weights, %d-bit "
               "activations): simulated quantized test accuracy %.2f%%, fp32 %.2f%%\nsaved %s\n",
               path, o->batches, batch, o->act_quant, weight_desc(o, wd, sizeof wd), o->act_bits,
               100 * ptq.accuracy, 100 * fp32.accuracy, o->out);
    oct_graph_free(&g);
    mlp_model_free(&m);
    return rc;
}

/* --sensitivity BITS: calibrates once as the flags say, then once per linear layer with that
 * layer alone at BITS-bit weights, and prints the layers by the damage they take, the worst
 * first: which layers a mixed-precision model (--layer-bits) should keep wide. */
static int sensitivity(const char *path, cal_opts o, const cal_data *d) {
    bool gpt = d->gpt;
    int n = d->n_linear;
    const char *user = o.layer_bits;
    cal_result base, r[CAL_MAX_LINEARS];
    int (*run)(const char *, const cal_opts *, const cal_data *, cal_result *) =
        gpt ? calibrate_gpt : calibrate_mlp;
    int rc = run(path, &o, d, &base);
    char spec[OCT_QAT_LAYER_BITS_LEN + 64];
    o.no_fp32 = true;
    o.layer_bits = spec;
    for (int j = 0; j < n && rc == CLI_OK; j++) {
        snprintf(spec, sizeof spec, "%s%s%s=%d", user ? user : "", user ? "," : "", d->names[j],
                 o.sensitivity);
        fprintf(stderr, "octet: sensitivity %d/%d: %s at %d bits\n", j + 1, n, d->names[j],
                o.sensitivity);
        rc = run(path, &o, d, &r[j]);
    }
    if (rc != CLI_OK) return rc;
    int order[CAL_MAX_LINEARS];
    for (int j = 0; j < n; j++) order[j] = j;
    for (int a = 1; a < n; a++) /* by damage: GPT loss up, MLP accuracy down */
        for (int b = a; b > 0; b--) {
            double x = r[order[b]].quant, y = r[order[b - 1]].quant;
            if (gpt ? x <= y : x >= y) break;
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    printf("%s: %s with one layer at a time at %d-bit weights (the others at %d bits%s%s), "
           "calibrated on %d batches; the most sensitive first:\n",
           path, gpt ? "validation loss (nats/char)" : "test accuracy", o.sensitivity,
           o.weight_bits, user ? ", " : "", user ? user : "", o.batches);
    printf("  %-16s %12s %10s\n", "layer", gpt ? "loss" : "accuracy", "change");
    for (int k = 0; k < n; k++) {
        const cal_result *x = &r[order[k]];
        if (gpt)
            printf("  %-16s %12.4f %+10.4f\n", d->names[order[k]], x->quant, x->quant - base.quant);
        else
            printf("  %-16s %11.2f%% %+10.2f\n", d->names[order[k]], 100 * x->quant,
                   100 * (x->quant - base.quant));
    }
    if (gpt)
        printf("  %-16s %12.4f\n  %-16s %12.4f\n", "(none)", base.quant, "fp32", base.fp32);
    else
        printf("  %-16s %11.2f%%\n  %-16s %11.2f%%\n", "(none)", 100 * base.quant, "fp32",
               100 * base.fp32);
    return CLI_OK;
}

int cmd_calibrate(int argc, char **argv) {
    cal_opts o = {.text = OCT_DEFAULT_TEXT,
                  .data = OCT_FASHION_MNIST_DIR,
                  .act_quant = CAL_OBSERVERS,
                  .weight_quant = "minmax",
                  .batches = CAL_BATCHES,
                  .weight_bits = 8,
                  .act_bits = 8,
                  .threads = 1};
    const cli_flag flags[] = {
        {"-o", CLI_STR, &o.out,
         "output file (required unless --sensitivity): the calibrated QAT model", 0, 0},
        {"--sensitivity", CLI_INT, &o.sensitivity,
         "instead of saving, calibrate once per linear layer with that layer alone at N-bit "
         "weights and list the layers by the damage (the choice for --layer-bits; one "
         "calibration per layer, --batches 20 is quicker)",
         0, 8},
        {"--batches", CLI_INT, &o.batches,
         "calibration batches (GPT: 32 training windows each; MLP: 256 training images); gptq "
         "makes one more pass over them per linear layer",
         1, 1e6},
        {"--act-quant", CLI_STR, &o.act_quant,
         "activation observers: ema (a moving average of the batches' ranges), minmax (the "
         "range of all batches) or hist (the range of least squared error over a histogram of "
         "all values)",
         0, 0},
        {"--weight-quant", CLI_STR, &o.weight_quant,
         "weights: minmax (uniform), mse (uniform, scales clipped for the least squared error), "
         "gptq (mse's scales, codes chosen by GPTQ layer by layer on the calibration inputs), "
         "pow2 (powers of "
         "two, 2..4 bits) or kmeans (a codebook of 2^bits int8 codes, 2..7 bits)",
         0, 0},
        {"--weight-bits", CLI_INT, &o.weight_bits, "weight bits", 2, 8},
        {"--act-bits", CLI_INT, &o.act_bits, "activation bits", 2, 8},
        {"--layer-bits", CLI_STR, &o.layer_bits,
         "mixed precision, weight bits per layer overriding --weight-bits: lm_head=8 or fc0=8 "
         "(* wildcards; the last match wins)",
         0, 0},
        {"--per-tensor-weights", CLI_BOOL, &o.per_tensor_weights,
         "one weight scale per layer instead of one per output channel", 0, 0},
        {"--embed-bits", CLI_INT, &o.embed_bits,
         "GPT: token and position embeddings as N-bit codes per row (0: float32; 2..8; up to 4 "
         "exported as packed indices)",
         0, 8},
        {"--text", CLI_STR, &o.text,
         "GPT: text whose first 90% is the training split (unset: the model's own, else this)", 0,
         0},
        {"--data", CLI_STR, &o.data,
         "MLP: directory with the IDX files (unset: the model's own, else this)", 0, 0},
        {"--threads", CLI_INT, &o.threads, "threads", 1, 256},
    };
    cli_cmd cmd = {
        "calibrate",
        "MODEL (-o OUT.safetensors | --sensitivity BITS) [flags]",
        "Post-training static quantization of a saved fp32 GPT or MLP: int8 weights,\n"
        "uint8 activations whose ranges are observed on training data, no training.\n"
        "Prints the simulated quantized and fp32 validation loss (GPT) or test accuracy\n"
        "(MLP) and saves a QAT model for `octet export`. With --sensitivity, ranks\n"
        "the linear layers by how much BITS-bit weights in that layer alone cost.",
        flags,
        (int)(sizeof flags / sizeof flags[0]),
        1,
        1};
    const char *pos[1];
    bool seen[sizeof flags / sizeof flags[0]];
    int n_pos, rc = cli_parse_seen(&cmd, argc, argv, pos, &n_pos, seen);
    if (rc != CLI_OK) return rc == CLI_HELP ? CLI_OK : rc;
    if (!o.out == !o.sensitivity || o.sensitivity == 1) {
        fprintf(stderr, "octet calibrate: %s (see octet calibrate --help)\n",
                o.sensitivity == 1 ? "--sensitivity 1: expected 2..8 bits"
                : o.out            ? "-o and --sensitivity exclude each other"
                                   : "-o OUT is required");
        return CLI_USAGE;
    }
    if (o.embed_bits == 1) {
        fprintf(stderr, "octet calibrate: --embed-bits 1: expected 0 (float32) or 2..8\n");
        return CLI_USAGE;
    }
    if (o.out && cli_check_output("-o", o.out)) return CLI_FAIL;
    /* without --text (--data), the data the model records that it was trained on */
    bool gpt = gpt_is_model(pos[0]);
    const char *flag = gpt ? "--text" : "--data";
    char *recorded = NULL;
    if (!cli_given(&cmd, seen, flag) && cli_file_source(pos[0], flag, &recorded)) return CLI_FAIL;
    if (recorded && gpt) o.text = recorded;
    if (recorded && !gpt) o.data = recorded;
    rc = cli_check_not_input("-o", o.out, "the model", pos[0], "--text", gpt ? o.text : NULL, NULL);
    if (!rc && !gpt) rc = cli_check_not_data("-o", o.out, o.data);
    cal_data *d = rc ? NULL : malloc(sizeof *d);
    if (!rc && !d) rc = cli_fail("out of memory");
    if (d && (rc = cal_data_load(pos[0], &o, d)) == CLI_OK) {
        cal_result r;
        rc = o.sensitivity ? sensitivity(pos[0], o, d)
             : d->gpt      ? calibrate_gpt(pos[0], &o, d, &r)
                           : calibrate_mlp(pos[0], &o, d, &r);
        cal_data_free(d);
    }
    free(d);
    free(recorded);
    return rc;
}
