/* The int8 MLP export file (format in include/octet/int8.h): oct_i8_mlp_save writes a checked
 * oct_i8_mlp as safetensors with a JSON graph description; oct_i8_mlp_load reads one back and
 * refuses any file that contradicts itself (missing or extra tensors, wrong dtypes or shapes,
 * broken layer chain, row sums or multipliers that do not match the codes and scales). */
#include "octet/int8.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "int8_internal.h"
#include "octet/io.h"
#include "octet/quant.h"

#define META_FORMAT OCT__I8_META_FORMAT
#define META_VERSION OCT__I8_META_VERSION
#define META_GRAPH OCT__I8_META_GRAPH

/* Per layer tensor suffixes: the 4-byte ones, then the weight codes (weight_q, or a codebook
 * and packed indices). */
static const char *const suffixes[] = {"weight_scale", "bias_q",     "wsum",
                                       "m0",           "shift",      "bias",
                                       "weight_q",     "weight_idx", "weight_codebook"};
enum { T_WSCALE, T_BIASQ, T_WSUM, T_M0, T_SHIFT, T_BIAS, T_WQ, T_WIDX, T_WBOOK, T_COUNT };

/* Whether a layer like l stores tensor t: a static layer all but the float bias (m0 and shift
 * only with an output), a dynamic one its scales, row sums and float bias; both their weights
 * as weight_q, or when packed as weight_idx and weight_codebook. */
static bool tensor_used(const oct_qlinear *l, bool packed, int t) {
    if (t >= T_WQ) return (t == T_WQ) != packed;
    if (l->dynamic) return t == T_WSCALE || t == T_WSUM || t == T_BIAS;
    return t != T_BIAS && (l->quant_out || (t != T_M0 && t != T_SHIFT));
}

/* The row-major codes w (N,K) back from the packed layout of oct_i8_pack (int8.h). */
static void unpack_weights(const oct_i8_packed *p, int8_t *w /* (N,K) */) {
    int G = p->k_pad / 4, n_blocks = p->n_pad / OCT__I8_BLOCK;
    for (int n = 0; n < p->N; n++) {
        int panel = n / OCT__I8_PANEL, block = n % OCT__I8_PANEL / OCT__I8_BLOCK;
        int nb =
            n_blocks - panel * OCT__I8_NB < OCT__I8_NB ? n_blocks - panel * OCT__I8_NB : OCT__I8_NB;
        const int8_t *src = p->data + (size_t)panel * OCT__I8_PANEL * 4 * G + (size_t)block * 64 +
                            4 * (n % OCT__I8_BLOCK);
        for (int k = 0; k < p->K; k++)
            w[(size_t)n * p->K + k] = src[(size_t)(k / 4) * nb * 64 + k % 4];
    }
}

/* ---- save ---------------------------------------------------------------------------------- */

json_t *oct__i8_linear_json(const oct_qlinear *l, const char *name) {
    if (l->dynamic)
        return json_pack("{s:s, s:i, s:i, s:b}", "name", name, "in", l->in, "out", l->out, "relu",
                         (int)l->relu);
    json_t *out = l->quant_out
                      ? json_pack("{s:f, s:i, s:i, s:i}", "scale", (double)l->y_scale, "zero_point",
                                  (int)l->y_zp, "qmin", (int)l->y_qmin, "qmax", (int)l->y_qmax)
                      : json_null();
    return json_pack("{s:s, s:i, s:i, s:b, s:f, s:i, s:o}", "name", name, "in", l->in, "out",
                     l->out, "relu", (int)l->relu, "input_scale", (double)l->a_scale,
                     "input_zero_point", (int)l->a_zp, "output", out);
}

static json_t *graph_json(const oct_i8_mlp *m) {
    json_t *layers = json_array();
    for (int i = 0; i < m->n_layers; i++) {
        char name[24];
        snprintf(name, sizeof name, "fc%d", i);
        json_array_append_new(layers, oct__i8_linear_json(&m->layers[i], name));
    }
    json_t *g = json_pack("{s:{s:f, s:f, s:i, s:i}, s:o}", "input", "mean", (double)m->in_mean,
                          "std", (double)m->in_std, "qmin", (int)m->in_qmin, "qmax",
                          (int)m->in_qmax, "layers", layers);
    if (m->dynamic) json_object_set_new(g, "activations", json_string("dynamic"));
    return g;
}

/* The dtype and shape of tensor t of a linear. */
/* The dtype of 4-byte tensor t. */
static oct_dtype tensor_dtype(int t) {
    return t == T_WSCALE || t == T_BIAS ? OCT_DT_F32 : OCT_DT_I32;
}

oct_status oct__i8_linear_add(oct_st_writer *w, const char *name, const oct_qlinear *l,
                              bool codes_pass, int8_t **codes) {
    if (codes_pass) { /* the codes, then scratch for their packed form */
        size_t n = (size_t)l->out * (size_t)l->in;
        *codes = malloc(n + oct__i8_codes_scratch(l->out, l->in));
        if (!*codes) return oct_fail(OCT_ENOMEM, "%s: out of memory", name);
        unpack_weights(&l->w, *codes);
        return oct__i8_codes_add(w, name, *codes, l->out, l->in, (uint8_t *)*codes + n);
    }
    const void *data[T_WQ] = {l->w_scale, l->bias_q, l->w.wsum, l->m0, l->shift, l->bias};
    oct_status s = OCT_OK;
    for (int t = 0; t < T_WQ && s == OCT_OK; t++) {
        if (!tensor_used(l, false, t)) continue;
        char tname[96];
        snprintf(tname, sizeof tname, "%s.%s", name, suffixes[t]);
        s = oct_st_writer_add(w, tname, tensor_dtype(t), 1, &l->out, data[t]);
    }
    return s;
}

oct_status oct_i8_mlp_save(const oct_i8_mlp *m, const char *path) {
    oct_status s = oct_i8_mlp_check(m);
    if (s != OCT_OK) return s;
    int8_t **codes = calloc((size_t)m->n_layers, sizeof *codes);
    OCT_ALLOC_CHECK(codes, (size_t)m->n_layers * sizeof *codes);
    oct_st_writer w;
    oct_st_writer_init(&w);
    json_t *graph = graph_json(m);
    char *graph_text = json_dumps(graph, JSON_COMPACT);
    OCT_ASSERT(graph && graph_text);
    char version[16];
    snprintf(version, sizeof version, "%d", OCT_I8_FORMAT_VERSION);
    s = oct_st_writer_meta(&w, META_FORMAT, OCT_I8_FORMAT);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, META_VERSION, version);
    if (s == OCT_OK) s = oct_st_writer_meta(&w, META_GRAPH, graph_text);
    if (s == OCT_OK && m->source) s = oct_st_writer_meta(&w, OCT__I8_META_SOURCE, m->source);
    /* 4-byte tensors of every layer first, the int8 codes last, so all stay aligned. */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < m->n_layers && s == OCT_OK; i++) {
            char name[24];
            snprintf(name, sizeof name, "fc%d", i);
            s = oct__i8_linear_add(&w, name, &m->layers[i], pass == 1, &codes[i]);
        }
    if (s == OCT_OK) s = oct_st_writer_write(&w, path);
    oct_st_writer_free(&w);
    free(graph_text);
    json_decref(graph);
    for (int i = 0; i < m->n_layers; i++) free(codes[i]);
    free(codes);
    return s;
}

/* ---- load ---------------------------------------------------------------------------------- */

typedef oct__i8_loader loader;

static oct_status bad(const loader *ld, const char *where, const char *what) {
    return oct_fail(OCT_EFORMAT, "%s: %s %s", ld->path, where, what);
}

/* obj[key] as an integer in [lo, hi]. */
oct_status oct__i8_get_int(const loader *ld, const char *where, json_t *obj, const char *key,
                           long long lo, long long hi, int32_t *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return oct_fail(OCT_EFORMAT, "%s: %s \"%s\" must be an integer in [%lld, %lld]", ld->path,
                        where, key, lo, hi);
    *out = (int32_t)json_integer_value(v);
    return OCT_OK;
}

/* obj[key] as a number representable as a float32 (finiteness is checked later). */
oct_status oct__i8_get_float(const loader *ld, const char *where, json_t *obj, const char *key,
                             float *out) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return oct_fail(OCT_EFORMAT, "%s: %s \"%s\" must be a number", ld->path, where, key);
    *out = (float)json_number_value(v);
    return OCT_OK;
}

oct_status oct__i8_linear_from_json(const loader *ld, json_t *g, const char *name, oct_qlinear *l) {
    char where[128];
    snprintf(where, sizeof where, "graph layer %s", name);
    json_t *nm = json_object_get(g, "name"), *relu = json_object_get(g, "relu");
    json_t *out = json_object_get(g, "output");
    int32_t in = 0, n_out = 0;
    if (!json_is_object(g)) return bad(ld, where, "is not an object");
    if (!json_is_string(nm) || strcmp(json_string_value(nm), name))
        return oct_fail(OCT_EFORMAT, "%s: %s \"name\" must be \"%s\"", ld->path, where, name);
    if (!json_is_boolean(relu)) return bad(ld, where, "\"relu\" must be true or false");
    if (!l->dynamic && !json_is_null(out) && !json_is_object(out))
        return bad(ld, where, "\"output\" must be an object or null");
    oct_status s = oct__i8_get_int(ld, where, g, "in", 1, OCT_I8_MAX_K, &in);
    if (s == OCT_OK) s = oct__i8_get_int(ld, where, g, "out", 1, 1 << 24, &n_out);
    l->in = in;
    l->out = n_out;
    l->relu = json_is_true(relu);
    if (l->dynamic) return s; /* no input or output quantization */
    if (s == OCT_OK) s = oct__i8_get_float(ld, where, g, "input_scale", &l->a_scale);
    if (s == OCT_OK) s = oct__i8_get_int(ld, where, g, "input_zero_point", 0, 255, &l->a_zp);
    l->quant_out = json_is_object(out);
    if (s == OCT_OK && l->quant_out) {
        snprintf(where, sizeof where, "graph layer %s output", name);
        s = oct__i8_get_float(ld, where, out, "scale", &l->y_scale);
        if (s == OCT_OK) s = oct__i8_get_int(ld, where, out, "zero_point", 0, 255, &l->y_zp);
        if (s == OCT_OK) s = oct__i8_get_int(ld, where, out, "qmin", 0, 255, &l->y_qmin);
        if (s == OCT_OK) s = oct__i8_get_int(ld, where, out, "qmax", 0, 255, &l->y_qmax);
    }
    return s;
}

/* The scalars of layer i from its graph entry g (the entry "fc<i>"); tensors come later. */
static oct_status read_layer_graph(const loader *ld, json_t *g, int i, bool dynamic,
                                   oct_qlinear *l) {
    char name[24];
    l->dynamic = dynamic;
    snprintf(name, sizeof name, "fc%d", i);
    if (!json_is_object(g)) {
        char where[64];
        snprintf(where, sizeof where, "graph layer %d", i);
        return bad(ld, where, "is not an object");
    }
    return oct__i8_linear_from_json(ld, g, name, l);
}

/* Looks up <name>.<suffix> (a 4-byte tensor of shape (out)) with the expected dtype. */
static oct_status get_tensor(const loader *ld, const char *name, int t, const oct_qlinear *l,
                             const void **data) {
    char tname[96];
    snprintf(tname, sizeof tname, "%s.%s", name, suffixes[t]);
    return oct_st_get(&ld->f, tname, tensor_dtype(t), 1, &l->out, data);
}

oct_status oct__i8_linear_read(const loader *ld, const char *name, oct_qlinear *l, int *n_tensors) {
    const void *d[T_WQ] = {NULL};
    oct_status s = OCT_OK;
    *n_tensors = 0;
    for (int t = 0; t < T_WQ && s == OCT_OK; t++)
        if (tensor_used(l, false, t)) {
            s = get_tensor(ld, name, t, l, &d[t]);
            ++*n_tensors;
        }
    int8_t *codes = s == OCT_OK ? malloc((size_t)l->out * (size_t)l->in) : NULL;
    if (s == OCT_OK && !codes) s = oct_fail(OCT_ENOMEM, "%s: out of memory", ld->path);
    if (s == OCT_OK) s = oct__i8_codes_read(ld, name, l->out, l->in, codes, n_tensors);
    if (s == OCT_OK) s = oct_i8_pack(&l->w, codes, l->out, l->in);
    free(codes);
    if (s != OCT_OK) return s;
    size_t n = (size_t)l->out;
    l->bias_q = calloc(n, sizeof *l->bias_q);
    l->w_scale = malloc(n * sizeof *l->w_scale);
    l->m0 = calloc(n, sizeof *l->m0);
    l->shift = calloc(n, sizeof *l->shift);
    l->bias = l->dynamic ? malloc(n * sizeof *l->bias) : NULL;
    if (!l->bias_q || !l->w_scale || !l->m0 || !l->shift || (l->dynamic && !l->bias))
        return oct_fail(OCT_ENOMEM, "%s: out of memory", ld->path);
    memcpy(l->w_scale, d[T_WSCALE], n * sizeof *l->w_scale);
    if (l->dynamic)
        memcpy(l->bias, d[T_BIAS], n * sizeof *l->bias);
    else
        memcpy(l->bias_q, d[T_BIASQ], n * sizeof *l->bias_q);
    const int32_t *wsum = d[T_WSUM];
    for (int c = 0; c < l->out; c++)
        if (wsum[c] != l->w.wsum[c])
            return oct_fail(OCT_EFORMAT,
                            "%s: %s.wsum: channel %d is %d, but the row sum of "
                            "%s.%s is %d",
                            ld->path, name, c, (int)wsum[c], name,
                            oct__i8_codes_packed(ld, name) ? "weight_idx" : "weight_q",
                            (int)l->w.wsum[c]);
    if (!l->quant_out) return OCT_OK;
    const int32_t *m0 = d[T_M0], *shift = d[T_SHIFT];
    if (oct_requant_check(m0, shift, l->out) != OCT_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", oct_last_error());
        return oct_fail(OCT_EFORMAT, "%s: %s.m0/%s.shift: %s", ld->path, name, name, msg);
    }
    for (int c = 0; c < l->out; c++)
        if (!(l->w_scale[c] > 0)) return OCT_OK; /* reported by the model check */
    if (!(l->a_scale > 0) || !(l->y_scale > 0)) return OCT_OK;
    if (oct_requant_multipliers(l->a_scale, l->w_scale, l->out, l->y_scale, l->m0, l->shift))
        return OCT_OK; /* non-finite scales, reported by the model check */
    for (int c = 0; c < l->out; c++)
        if (m0[c] != l->m0[c] || shift[c] != l->shift[c])
            return oct_fail(OCT_EFORMAT,
                            "%s: %s.m0/%s.shift: channel %d holds %d/%d, the "
                            "scales give %d/%d",
                            ld->path, name, name, c, (int)m0[c], (int)shift[c], (int)l->m0[c],
                            (int)l->shift[c]);
    return OCT_OK;
}

/* Every tensor of the file must be one the graph asks for. */
static oct_status check_no_extra(const loader *ld, const oct_i8_mlp *m) {
    for (int e = 0; e < ld->f.count; e++) {
        const char *name = ld->f.entries[e].name;
        int i = -1, len = 0;
        bool known = sscanf(name, "fc%d.%n", &i, &len) == 1 && len > 0 && i >= 0 && i < m->n_layers;
        bool ok = false;
        char canon[48];
        snprintf(canon, sizeof canon, "fc%d", i);
        bool packed = known && oct__i8_codes_packed(ld, canon);
        for (int t = 0; known && t < T_COUNT && !ok; t++)
            ok = !strcmp(name + len, suffixes[t]) && tensor_used(&m->layers[i], packed, t);
        snprintf(canon, sizeof canon, "fc%d.%s", i, known ? name + len : "");
        if (!ok || strcmp(canon, name))
            return oct_fail(OCT_EFORMAT, "%s: unexpected tensor \"%s\" (not in the graph)",
                            ld->path, name);
    }
    return OCT_OK;
}

oct_status oct__i8_read_graph(const oct__i8_loader *ld, const char *format, int version,
                              const char *what, json_t **graph) {
    const char *fmt = oct_st_meta(&ld->f, META_FORMAT), *ver = oct_st_meta(&ld->f, META_VERSION);
    const char *text = oct_st_meta(&ld->f, META_GRAPH);
    char got[16] = "";
    int v = 0;
    if (ver && sscanf(ver, "%d", &v) == 1) snprintf(got, sizeof got, "%d", v);
    if (!fmt || strcmp(fmt, format))
        return oct_fail(OCT_EFORMAT,
                        "%s: not an int8 %s export (metadata %s is %s%s%s, expected "
                        "\"%s\"; export a QAT model with 'octet export')",
                        ld->path, what, META_FORMAT, fmt ? "\"" : "", fmt ? fmt : "missing",
                        fmt ? "\"" : "", format);
    if (!ver || strcmp(ver, got) || v < 1 || v > version)
        return oct_fail(OCT_EFORMAT, "%s: metadata %s is \"%s\", this build reads versions 1 to %d",
                        ld->path, META_VERSION, ver ? ver : "", version);
    json_error_t err;
    if (!text || !(*graph = json_loads(text, 0, &err)))
        return oct_fail(OCT_EFORMAT, "%s: metadata %s is missing or not JSON", ld->path,
                        META_GRAPH);
    return OCT_OK;
}

oct_status oct__i8_read_source(const oct__i8_loader *ld, char **source) {
    const char *v = oct_st_meta(&ld->f, OCT__I8_META_SOURCE);
    *source = v ? strdup(v) : NULL;
    return v && !*source ? oct_fail(OCT_ENOMEM, "%s: out of memory", ld->path) : OCT_OK;
}

oct_status oct__i8_read_activations(const loader *ld, json_t *obj, bool *dynamic) {
    json_t *v = json_object_get(obj, "activations");
    const char *a = json_string_value(v);
    *dynamic = a && !strcmp(a, "dynamic");
    if (v && (!a || (!*dynamic && strcmp(a, "static"))))
        return oct_fail(OCT_EFORMAT, "%s: graph \"activations\" must be \"static\" or \"dynamic\"",
                        ld->path);
    return OCT_OK;
}

static oct_status read_header(const loader *ld, oct_i8_mlp *m, json_t **graph) {
    oct_status st = oct__i8_read_graph(ld, OCT_I8_FORMAT, OCT_I8_FORMAT_VERSION, "MLP", graph);
    if (st != OCT_OK) return st;
    json_t *input = json_object_get(*graph, "input"), *layers = json_object_get(*graph, "layers");
    if (!json_is_object(input)) return bad(ld, "graph", "\"input\" must be an object");
    if (!json_is_array(layers) || json_array_size(layers) < 1 ||
        json_array_size(layers) > OCT_I8_MAX_LAYERS)
        return oct_fail(OCT_EFORMAT, "%s: graph \"layers\" must be an array of 1 to %d layers",
                        ld->path, OCT_I8_MAX_LAYERS);
    oct_status s = oct__i8_read_activations(ld, *graph, &m->dynamic);
    if (s == OCT_OK) s = oct__i8_get_float(ld, "graph input", input, "mean", &m->in_mean);
    if (s == OCT_OK) s = oct__i8_get_float(ld, "graph input", input, "std", &m->in_std);
    if (s == OCT_OK) s = oct__i8_get_int(ld, "graph input", input, "qmin", 0, 255, &m->in_qmin);
    if (s == OCT_OK) s = oct__i8_get_int(ld, "graph input", input, "qmax", 0, 255, &m->in_qmax);
    if (s != OCT_OK) return s;
    m->n_layers = (int)json_array_size(layers);
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    if (!m->layers) return oct_fail(OCT_ENOMEM, "%s: out of memory", ld->path);
    for (int i = 0; i < m->n_layers && s == OCT_OK; i++)
        s = read_layer_graph(ld, json_array_get(layers, (size_t)i), i, m->dynamic, &m->layers[i]);
    return s;
}

oct_status oct_i8_mlp_load(oct_i8_mlp *m, const char *path) {
    memset(m, 0, sizeof *m);
    loader ld = {.path = path};
    oct_status s = oct_st_open(&ld.f, path);
    if (s != OCT_OK) return s;
    json_t *graph = NULL;
    s = read_header(&ld, m, &graph);
    for (int i = 0; i < m->n_layers && s == OCT_OK; i++) {
        char name[24];
        snprintf(name, sizeof name, "fc%d", i);
        int n_tensors;
        s = oct__i8_linear_read(&ld, name, &m->layers[i], &n_tensors);
    }
    if (s == OCT_OK) s = check_no_extra(&ld, m);
    if (s == OCT_OK) s = oct__i8_read_source(&ld, &m->source);
    if (s == OCT_OK && oct_i8_mlp_check(m) != OCT_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", oct_last_error());
        s = oct_fail(OCT_EFORMAT, "%s: %s", path, msg);
    }
    json_decref(graph);
    oct_st_close(&ld.f);
    if (s != OCT_OK) oct_i8_mlp_free(m);
    return s;
}
