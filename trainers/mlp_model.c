/* MLP model lifecycle and file format. The file is safetensors: one F32 tensor per parameter
 * ("fc0.weight" (out,in), "fc0.bias" (out), ...) and metadata
 *   octet.model = "mlp", octet.sizes = "784,256,128,10", octet.activation = "relu",
 *   octet.input_mean / octet.input_std = the pixel normalization.
 * A QAT model adds its quantizer state tensors ("act0.lo", "act0.hi", learned "act1.scale",
 * "fc0.wscale", ...) and metadata octet.qat = the oct_qat_config JSON, octet.qat_steps = the
 * number of QAT training steps so far (observers freeze by it). */
#include "mlp_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "load_check.h"
#include "octet/io.h"

oct_status mlp_model_init(mlp_model *m, const int *sizes, int n_sizes, oct_activation act,
                          oct_init init, uint64_t seed) {
    memset(m, 0, sizeof *m);
    oct_arena_init(&m->arena, 0);
    oct_params_init(&m->params);
    m->mean = OCT_FASHION_MNIST_MEAN;
    m->std = OCT_FASHION_MNIST_STD;
    oct_rng rng;
    oct_rng_seed(&rng, seed, 1);
    oct_status s = oct_mlp_init(&m->mlp, &m->arena, &m->params, sizes, n_sizes, act, init, &rng);
    if (s != OCT_OK) mlp_model_free(m);
    return s;
}

oct_status mlp_model_enable_qat(mlp_model *m, const oct_qat_config *cfg) {
    OCT_ASSERT(!m->qat);
    m->qat = malloc(sizeof *m->qat);
    if (!m->qat) return oct_fail(OCT_ENOMEM, "mlp: out of memory for the QAT state");
    oct_status s = oct_qat_mlp_init(m->qat, &m->mlp, &m->arena, &m->params, cfg);
    if (s != OCT_OK) {
        free(m->qat);
        m->qat = NULL;
    }
    return s;
}

oct_tensor *mlp_model_forward(mlp_model *m, oct_graph *g, oct_tensor *x) {
    return m->qat_on ? oct_qat_mlp_forward(m->qat, g, x) : oct_mlp_forward(&m->mlp, g, x);
}

/* The quantizer state tensors that are not parameters (observer ranges). */
static bool is_plain_state(const mlp_model *m, const oct_tensor *t) {
    return !oct_params_find(&m->params, t->name);
}

/* Reads a QAT model's config, creates its quantizer state and reads the steps counter. */
static oct_status load_qat(mlp_model *m, const oct_st_file *f, const char *json) {
    oct_qat_config cfg;
    oct_status s = oct_qat_config_from_json(&cfg, json);
    if (s == OCT_OK) s = mlp_model_enable_qat(m, &cfg);
    if (s != OCT_OK) return oct_fail(OCT_EFORMAT, "%s: octet.qat: %s", f->path, oct_last_error());
    if ((s = load_qat_steps(f, &m->qat->steps)) != OCT_OK) return s;
    m->qat_on = true;
    for (int i = 0; i < m->qat->n_state && s == OCT_OK; i++)
        if (is_plain_state(m, m->qat->state[i])) s = oct_st_read_f32(f, m->qat->state[i]);
    if (s == OCT_OK) oct_qat_mlp_sync_frozen(m->qat);
    return s;
}

void mlp_model_free(mlp_model *m) {
    if (!m) return;
    oct_qat_mlp_free(m->qat);
    free(m->qat);
    free(m->source);
    oct_params_free(&m->params);
    oct_arena_free(&m->arena);
    memset(m, 0, sizeof *m);
}

static oct_status parse_float_meta(const oct_st_file *f, const char *key, float *out) {
    const char *v = oct_st_meta(f, key);
    char *end;
    if (!v) return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is missing", f->path, key);
    *out = strtof(v, &end);
    if (end == v || *end || !isfinite(*out))
        return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is not a finite number: '%s'", f->path, key,
                        v);
    return OCT_OK;
}

oct_status mlp_model_load(mlp_model *m, const char *path) {
    memset(m, 0, sizeof *m);
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != OCT_OK) return s;
    const char *kind = oct_st_meta(&f, "octet.model");
    const char *sizes_s = oct_st_meta(&f, "octet.sizes");
    const char *act_s = oct_st_meta(&f, "octet.activation");
    int sizes[16], n = 0;
    oct_activation act = OCT_ACT_RELU;
    float mean = 0, std = 0;
    if (!kind || strcmp(kind, "mlp")) {
        s = oct_fail(OCT_EFORMAT, "%s: %s, where an fp32 or QAT MLP model is expected", path,
                     cli_file_kind(&f));
        goto out;
    }
    if (!sizes_s || !act_s) {
        s = oct_fail(OCT_EFORMAT, "%s: an MLP without metadata octet.%s", path,
                     sizes_s ? "activation" : "sizes");
        goto out;
    }
    for (const char *p = sizes_s; *p && n < 16;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v <= 0 || v > 1 << 20 || (*end && *end != ',')) {
            s = oct_fail(OCT_EFORMAT, "%s: bad octet.sizes '%s'", path, sizes_s);
            goto out;
        }
        sizes[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if ((s = oct_activation_parse(act_s, &act)) != OCT_OK) {
        s = oct_fail(OCT_EFORMAT, "%s: %s", path, oct_last_error());
        goto out;
    }
    if ((s = parse_float_meta(&f, "octet.input_mean", &mean)) != OCT_OK) goto out;
    if ((s = parse_float_meta(&f, "octet.input_std", &std)) != OCT_OK) goto out;
    if (!(std > 0)) {
        s = oct_fail(OCT_EFORMAT, "%s: octet.input_std must be positive", path);
        goto out;
    }
    if (oct_mlp_param_count(sizes, n) > oct_st_total_numel(&f)) {
        s = oct_fail(OCT_EFORMAT,
                     "%s: layer sizes '%s' make %lld parameters, but the file holds "
                     "%lld values",
                     path, sizes_s, (long long)oct_mlp_param_count(sizes, n),
                     (long long)oct_st_total_numel(&f));
        goto out;
    }
    if ((s = mlp_model_init(m, sizes, n, act, OCT_INIT_KAIMING_UNIFORM, 0)) != OCT_OK) {
        s = oct_fail(OCT_EFORMAT, "%s: %s", path, oct_last_error());
        goto out;
    }
    m->mean = mean;
    m->std = std;
    const char *qat = oct_st_meta(&f, "octet.qat");
    if (qat) s = load_qat(m, &f, qat);
    for (int i = 0; i < m->params.n && s == OCT_OK; i++)
        s = load_read_param(&f, m->params.items[i]);
    int expected = m->params.n;
    for (int i = 0; m->qat && i < m->qat->n_state; i++)
        expected += is_plain_state(m, m->qat->state[i]);
    if (s == OCT_OK && f.count != expected)
        s = oct_fail(OCT_EFORMAT, "%s: %d tensors in the file, the model has %d", path, f.count,
                     expected);
    if (s == OCT_OK && m->qat && oct_qat_mlp_check(m->qat) != OCT_OK)
        s = load_fail_in(OCT_EFORMAT, path);
    if (s == OCT_OK) m->source = cli_meta_dup(&f, CLI_META_SOURCE);
    if (s != OCT_OK) mlp_model_free(m);
out:
    oct_st_close(&f);
    return s;
}

oct_status mlp_model_save(const mlp_model *m, const char *path) {
    char sizes[256] = "", buf[32];
    for (int i = 0; i <= m->mlp.n_layers; i++) {
        snprintf(buf, sizeof buf, i ? ",%d" : "%d", m->mlp.sizes[i]);
        strncat(sizes, buf, sizeof sizes - strlen(sizes) - 1);
    }
    oct_st_writer w;
    oct_st_writer_init(&w);
    oct_status s = oct_st_writer_meta(&w, "octet.model", "mlp");
    if (s == OCT_OK) s = oct_st_writer_meta(&w, "octet.sizes", sizes);
    if (s == OCT_OK)
        s = oct_st_writer_meta(&w, "octet.activation", oct_activation_name(m->mlp.act));
    snprintf(buf, sizeof buf, "%.9g", (double)m->mean);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, "octet.input_mean", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)m->std);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, "octet.input_std", buf);
    if (s == OCT_OK && m->source) s = oct_st_writer_meta(&w, CLI_META_SOURCE, m->source);
    for (int i = 0; i < m->params.n && s == OCT_OK; i++)
        s = oct_st_writer_add_tensor(&w, m->params.items[i]);
    if (m->qat && s == OCT_OK) {
        char *json = oct_qat_config_to_json(&m->qat->cfg);
        s = json ? oct_st_writer_meta(&w, "octet.qat", json)
                 : oct_fail(OCT_ENOMEM, "%s: out of memory writing the QAT config", path);
        free(json);
        snprintf(buf, sizeof buf, "%lld", (long long)m->qat->steps);
        if (s == OCT_OK) s = oct_st_writer_meta(&w, "octet.qat_steps", buf);
        for (int i = 0; i < m->qat->n_state && s == OCT_OK; i++)
            if (is_plain_state(m, m->qat->state[i]))
                s = oct_st_writer_add_tensor(&w, m->qat->state[i]);
    }
    if (s == OCT_OK) s = oct_st_writer_write(&w, path);
    oct_st_writer_free(&w);
    return s;
}

oct_status mlp_data_check(const char *model, int inputs, int classes, const oct_image_set *set,
                          const char *split, const char *dir) {
    if (set->rows * set->cols == inputs && set->n_classes <= classes) return OCT_OK;
    return oct_fail(OCT_ESHAPE,
                    "%s takes %d inputs for %d classes, but the %s images in %s have %d pixels "
                    "(%dx%d) and labels up to %d",
                    model, inputs, classes, split, dir, set->rows * set->cols, set->rows, set->cols,
                    set->n_classes - 1);
}

mlp_eval mlp_model_evaluate(mlp_model *m, oct_graph *g, const oct_image_set *set) {
    enum { BATCH = 1000 };
    mlp_eval r = {0, 0, 0};
    int64_t correct = 0;
    double loss_sum = 0;
    int in = m->mlp.sizes[0], classes = m->mlp.sizes[m->mlp.n_layers];
    bool saved = g->no_grad, training = g->training;
    g->no_grad = true;
    g->training = false;
    double t0 = cli_now();
    oct_image_set s = *set;
    s.mean = m->mean;
    s.std = m->std;
    for (int64_t start = 0; start < set->n; start += BATCH) {
        int n = (int)(set->n - start < BATCH ? set->n - start : BATCH);
        oct_graph_reset(g);
        oct_tensor *x = oct_tensor_new2(&g->arena, n, in);
        int32_t *y = oct_arena_alloc(&g->arena, (size_t)n * sizeof *y);
        oct_image_set_batch_range(&s, start, n, x->data, y);
        oct_tensor *logits = mlp_model_forward(m, g, x);
        loss_sum += (double)oct_cross_entropy(g, logits, y)->data[0] * n;
        for (int i = 0; i < n; i++) {
            const float *row = logits->data + (int64_t)i * classes;
            int best = 0;
            for (int c = 1; c < classes; c++)
                if (row[c] > row[best]) best = c;
            correct += best == y[i];
        }
    }
    oct_graph_reset(g);
    r.seconds = cli_now() - t0;
    r.accuracy = set->n ? (double)correct / (double)set->n : 0;
    r.loss = set->n ? loss_sum / (double)set->n : 0;
    g->no_grad = saved;
    g->training = training;
    return r;
}
