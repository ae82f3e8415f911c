/* The int8 GPT export file (format in the GPT section of include/octet/int8.h): oct_i8_gpt_save
 * writes a checked oct_i8_gpt as safetensors with a JSON graph; oct_i8_gpt_load reads one back
 * and refuses any file that contradicts itself. The per-linear tensors and graph entries are
 * the MLP export's (int8_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int8_internal.h"

#define META_FORMAT OCT__I8_META_FORMAT
#define META_VERSION OCT__I8_META_VERSION
#define META_GRAPH OCT__I8_META_GRAPH

/* The float32 tensors besides the linears: name, data and rows (each row C floats). */
typedef struct f32_tensor {
    char name[48];
    float *data;
    int rows, cols;
} f32_tensor;

/* Fills t (at most 2 + 4 L + 2 entries) with the float tensors of m, the float embeddings when
 * m has no int8 ones; returns how many. */
static int f32_tensors(const oct_i8_gpt *m, f32_tensor *t) {
    int n = 0, C = m->width;
    if (!m->wte_q) {
        t[n++] = (f32_tensor){"wte.weight", m->wte, m->vocab, C};
        if (!m->no_wpe) t[n++] = (f32_tensor){"wpe.weight", m->wpe, m->context, C};
    }
    static const char *const ln[4] = {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"};
    for (int i = 0; i < m->n_layer; i++)
        for (int k = 0; k < 4; k++) {
            t[n] = (f32_tensor){"", m->ln + ((int64_t)i * 4 + k) * C, 1, C};
            snprintf(t[n++].name, sizeof t[0].name, "h.%d.%s", i, ln[k]);
        }
    t[n++] = (f32_tensor){"ln_f.weight", m->lnf, 1, C};
    t[n++] = (f32_tensor){"ln_f.bias", m->lnf + C, 1, C};
    return n;
}

static json_t *graph_json(const oct_i8_gpt *m) {
    json_t *lins = json_array();
    for (int j = 0; j < OCT_I8_GPT_PER_BLOCK * m->n_layer + 1; j++) {
        char name[48];
        oct_i8_gpt_linear_name(m, j, name, sizeof name);
        json_t *e = oct__i8_linear_json(&m->lin[j], name);
        json_object_set_new(e, "input_qmin", json_integer(m->in_qmin[j]));
        json_object_set_new(e, "input_qmax", json_integer(m->in_qmax[j]));
        json_array_append_new(lins, e);
    }
    json_t *g =
        json_pack("{s:{s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:s, s:s}, s:o}", "config", "vocab",
                  m->vocab, "context", m->context, "n_layer", m->n_layer, "n_head", m->n_head,
                  "width", m->width, "mlp", m->mlp, "ln_eps", (double)m->ln_eps, "embeddings",
                  m->wte_q ? "i8" : "f32", "gelu", m->exact_gelu ? "erf" : "tanh", "linears", lins);
    if (m->dynamic) json_object_set_new(g, "activations", json_string("dynamic"));
    if (m->rope) json_object_set_new(json_object_get(g, "config"), "rope", json_true());
    if (m->no_wpe) json_object_set_new(json_object_get(g, "config"), "wpe", json_false());
    return g;
}

oct_status oct_i8_gpt_save(const oct_i8_gpt *m, const char *path) {
    oct_status s = oct_i8_gpt_check(m);
    if (s != OCT_OK) return s;
    int J = OCT_I8_GPT_PER_BLOCK * m->n_layer + 1;
    int8_t **codes = calloc((size_t)J + 2, sizeof *codes); /* linears, then the embeddings' */
    f32_tensor *ft = malloc((size_t)(4 * m->n_layer + 4) * sizeof *ft);
    json_t *graph = graph_json(m);
    char *text = graph ? json_dumps(graph, JSON_COMPACT) : NULL;
    oct_st_writer w;
    oct_st_writer_init(&w);
    if (!codes || !ft || !text) s = oct_fail(OCT_ENOMEM, "%s: out of memory", path);
    char version[16];
    /* the lowest version that describes m, so older octets still read what they can run */
    snprintf(version, sizeof version, "%d", m->no_wpe ? 4 : m->rope ? 3 : 2);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, META_FORMAT, OCT_I8_GPT_FORMAT);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, META_VERSION, version);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, META_GRAPH, text);
    if (s == OCT_OK && m->source) s = oct_st_writer_meta(&w, OCT__I8_META_SOURCE, m->source);
    int nf = s == OCT_OK ? f32_tensors(m, ft) : 0;
    for (int i = 0; i < nf && s == OCT_OK; i++) {
        int shape[2] = {ft[i].rows, ft[i].cols};
        s = oct_st_writer_add(&w, ft[i].name, OCT_DT_F32, ft[i].rows == 1 ? 1 : 2,
                              ft[i].rows == 1 ? shape + 1 : shape, ft[i].data);
    }
    oct__i8_emb et[2];
    int nt = oct__i8_gpt_embeddings((oct_i8_gpt *)m, et); /* read only */
    for (int k = 0; k < nt && m->wte_q && s == OCT_OK; k++) {
        char sname[24];
        snprintf(sname, sizeof sname, "%s.scale", et[k].name);
        s = oct_st_writer_add(&w, sname, OCT_DT_F32, 1, &et[k].rows, *et[k].s);
    }
    /* 4-byte tensors first, the codes last, so all stay aligned. */
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < J && s == OCT_OK; j++) {
            char name[48];
            oct_i8_gpt_linear_name(m, j, name, sizeof name);
            s = oct__i8_linear_add(&w, name, &m->lin[j], pass == 1, &codes[j]);
        }
    for (int k = 0; k < nt && m->wte_q && s == OCT_OK; k++) {
        codes[J + k] = malloc(oct__i8_codes_scratch(et[k].rows, m->width));
        if (!codes[J + k]) s = oct_fail(OCT_ENOMEM, "%s: out of memory", path);
        if (s == OCT_OK)
            s = oct__i8_codes_add(&w, et[k].name, *et[k].q, et[k].rows, m->width,
                                  (uint8_t *)codes[J + k]);
    }
    if (s == OCT_OK) s = oct_st_writer_add(&w, "vocab", OCT_DT_U8, 1, &m->vocab, m->vocab_bytes);
    if (s == OCT_OK) s = oct_st_writer_write(&w, path);
    oct_st_writer_free(&w);
    for (int j = 0; codes && j < J + 2; j++) free(codes[j]);
    free(codes);
    free(ft);
    free(text);
    json_decref(graph);
    return s;
}

/* ---- load ---------------------------------------------------------------------------------- */

/* The config fields of the graph and the buffers they size. */
static oct_status read_config(const oct__i8_loader *ld, json_t *cfg, oct_i8_gpt *m) {
    const char *where = "graph config";
    if (!json_is_object(cfg))
        return oct_fail(OCT_EFORMAT, "%s: graph \"config\" must be an object", ld->path);
    const struct {
        const char *key;
        long long max;
        int *dst;
    } ints[] = {
        {"vocab", 65536, &m->vocab},        {"context", 1 << 20, &m->context},
        {"n_layer", 1024, &m->n_layer},     {"n_head", 1024, &m->n_head},
        {"width", OCT_I8_MAX_K, &m->width}, {"mlp", OCT_I8_MAX_K, &m->mlp},
    };
    oct_status s = OCT_OK;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && s == OCT_OK; i++) {
        int32_t v = 0;
        s = oct__i8_get_int(ld, where, cfg, ints[i].key, 1, ints[i].max, &v);
        *ints[i].dst = v;
    }
    if (s == OCT_OK) s = oct__i8_get_float(ld, where, cfg, "ln_eps", &m->ln_eps);
    const char *emb = json_string_value(json_object_get(cfg, "embeddings"));
    bool i8 = emb && !strcmp(emb, "i8");
    if (s == OCT_OK && !i8 && (!emb || strcmp(emb, "f32")))
        s = oct_fail(OCT_EFORMAT, "%s: graph config \"embeddings\" must be \"f32\" or \"i8\"",
                     ld->path);
    json_t *gelu_j = json_object_get(cfg, "gelu"); /* absent: tanh */
    const char *gelu = json_string_value(gelu_j);
    m->exact_gelu = gelu && !strcmp(gelu, "erf");
    if (s == OCT_OK && gelu_j && (!gelu || (!m->exact_gelu && strcmp(gelu, "tanh"))))
        s = oct_fail(OCT_EFORMAT, "%s: graph config \"gelu\" must be \"tanh\" or \"erf\"",
                     ld->path);
    json_t *rope = json_object_get(cfg, "rope"); /* absent: false */
    m->rope = json_is_true(rope);
    if (s == OCT_OK && rope && !json_is_boolean(rope))
        s = oct_fail(OCT_EFORMAT, "%s: graph config \"rope\" must be true or false", ld->path);
    json_t *wpe = json_object_get(cfg, "wpe"); /* absent: true */
    m->no_wpe = json_is_false(wpe);
    if (s == OCT_OK && wpe && !json_is_boolean(wpe))
        s = oct_fail(OCT_EFORMAT, "%s: graph config \"wpe\" must be true or false", ld->path);
    if (s == OCT_OK && m->no_wpe && !m->rope)
        s = oct_fail(OCT_EFORMAT,
                     "%s: graph config \"wpe\" false needs \"rope\" true (no positions otherwise)",
                     ld->path);
    if (s == OCT_OK && m->width % m->n_head)
        s = oct_fail(OCT_EFORMAT, "%s: graph config width %d is not a multiple of n_head %d",
                     ld->path, m->width, m->n_head);
    if (s != OCT_OK) return s;
    /* the tables below are stored values: a few bytes of graph must not ask for gigabytes */
    int64_t tables =
        ((int64_t)m->vocab + (m->no_wpe ? 0 : m->context) + 4 * (int64_t)m->n_layer + 2) * m->width;
    if (tables > oct_st_total_numel(&ld->f))
        return oct_fail(OCT_EFORMAT,
                        "%s: graph config vocab %d, context %d, width %d, %d layers: more values "
                        "than the file holds",
                        ld->path, m->vocab, m->context, m->width, m->n_layer);
    size_t C = (size_t)m->width, J = (size_t)OCT_I8_GPT_PER_BLOCK * m->n_layer + 1;
    m->wte = malloc((size_t)m->vocab * C * sizeof(float));
    if (!m->no_wpe) m->wpe = malloc((size_t)m->context * C * sizeof(float));
    m->ln = malloc((size_t)m->n_layer * 4 * C * sizeof(float));
    m->lnf = malloc(2 * C * sizeof(float));
    m->lin = calloc(J, sizeof *m->lin);
    m->in_qmin = malloc(J * sizeof *m->in_qmin);
    m->in_qmax = malloc(J * sizeof *m->in_qmax);
    m->vocab_bytes = malloc((size_t)m->vocab);
    if (i8) {
        m->wte_q = malloc((size_t)m->vocab * C);
        m->wte_s = malloc((size_t)m->vocab * sizeof(float));
        if (!m->no_wpe) {
            m->wpe_q = malloc((size_t)m->context * C);
            m->wpe_s = malloc((size_t)m->context * sizeof(float));
        }
    }
    bool wpe_ok = m->no_wpe || (m->wpe && (!i8 || (m->wpe_q && m->wpe_s)));
    if (!m->wte || !wpe_ok || !m->ln || !m->lnf || !m->lin || !m->in_qmin || !m->in_qmax ||
        !m->vocab_bytes || (i8 && (!m->wte_q || !m->wte_s)))
        return oct_fail(OCT_ENOMEM, "%s: out of memory", ld->path);
    return OCT_OK;
}

/* Linear j: graph entry, input code range, tensors. Counts its tensors into *count. */
static oct_status read_linear(const oct__i8_loader *ld, json_t *lins, int j, oct_i8_gpt *m,
                              int *count) {
    char name[48], where[80];
    oct_i8_gpt_linear_name(m, j, name, sizeof name);
    snprintf(where, sizeof where, "graph layer %s", name);
    json_t *e = json_array_get(lins, (size_t)j);
    oct_qlinear *l = &m->lin[j];
    l->dynamic = m->dynamic;
    oct_status s = oct__i8_linear_from_json(ld, e, name, l);
    if (s == OCT_OK) s = oct__i8_get_int(ld, where, e, "input_qmin", 0, 255, &m->in_qmin[j]);
    if (s == OCT_OK) s = oct__i8_get_int(ld, where, e, "input_qmax", 0, 255, &m->in_qmax[j]);
    int n_tensors = 0;
    if (s == OCT_OK) s = oct__i8_linear_read(ld, name, l, &n_tensors);
    *count += n_tensors;
    return s;
}

static oct_status read_file(oct__i8_loader *ld, oct_i8_gpt *m, json_t **graph) {
    oct_status s =
        oct__i8_read_graph(ld, OCT_I8_GPT_FORMAT, OCT_I8_GPT_FORMAT_VERSION, "GPT", graph);
    if (s != OCT_OK) return s;
    s = oct__i8_read_activations(ld, *graph, &m->dynamic);
    if (s == OCT_OK) s = read_config(ld, json_object_get(*graph, "config"), m);
    if (s != OCT_OK) return s;
    int J = OCT_I8_GPT_PER_BLOCK * m->n_layer + 1;
    json_t *lins = json_object_get(*graph, "linears");
    if (!json_is_array(lins) || (int)json_array_size(lins) != J)
        return oct_fail(OCT_EFORMAT, "%s: graph \"linears\" must be an array of %d entries",
                        ld->path, J);
    f32_tensor *ft = malloc((size_t)(4 * m->n_layer + 4) * sizeof *ft);
    if (!ft) return oct_fail(OCT_ENOMEM, "%s: out of memory", ld->path);
    int nf = f32_tensors(m, ft), count = nf + 1;
    for (int i = 0; i < nf && s == OCT_OK; i++) {
        int shape[2] = {ft[i].rows, ft[i].cols};
        const void *d;
        s = oct_st_get(&ld->f, ft[i].name, OCT_DT_F32, ft[i].rows == 1 ? 1 : 2,
                       ft[i].rows == 1 ? shape + 1 : shape, &d);
        if (s == OCT_OK) memcpy(ft[i].data, d, (size_t)ft[i].rows * ft[i].cols * sizeof(float));
    }
    free(ft);
    oct__i8_emb et[2];
    int nt = oct__i8_gpt_embeddings(m, et);
    for (int k = 0; k < nt && m->wte_q && s == OCT_OK; k++) {
        char sname[24];
        snprintf(sname, sizeof sname, "%s.scale", et[k].name);
        const void *d;
        s = oct__i8_codes_read(ld, et[k].name, et[k].rows, m->width, *et[k].q, &count);
        if (s == OCT_OK) s = oct_st_get(&ld->f, sname, OCT_DT_F32, 1, &et[k].rows, &d);
        if (s == OCT_OK) memcpy(*et[k].s, d, (size_t)et[k].rows * sizeof(float));
        count++;
    }
    if (m->wte_q && s == OCT_OK) oct__i8_gpt_dequantize_embeddings(m);
    const void *vb;
    if (s == OCT_OK) s = oct_st_get(&ld->f, "vocab", OCT_DT_U8, 1, &m->vocab, &vb);
    if (s == OCT_OK) memcpy(m->vocab_bytes, vb, (size_t)m->vocab);
    for (int j = 0; j < J && s == OCT_OK; j++) s = read_linear(ld, lins, j, m, &count);
    if (s == OCT_OK && ld->f.count != count)
        s = oct_fail(OCT_EFORMAT, "%s: %d tensors in the file, the graph names %d", ld->path,
                     ld->f.count, count);
    return s;
}

oct_status oct_i8_gpt_load(oct_i8_gpt *m, const char *path) {
    memset(m, 0, sizeof *m);
    oct__i8_loader ld = {.path = path};
    oct_status s = oct_st_open(&ld.f, path);
    if (s != OCT_OK) return s;
    json_t *graph = NULL;
    s = read_file(&ld, m, &graph);
    if (s == OCT_OK) s = oct__i8_read_source(&ld, &m->source);
    if (s == OCT_OK && oct_i8_gpt_check(m) != OCT_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", oct_last_error());
        s = oct_fail(OCT_EFORMAT, "%s: %s", path, msg);
    }
    json_decref(graph);
    oct_st_close(&ld.f);
    if (s != OCT_OK) oct_i8_gpt_free(m);
    return s;
}
