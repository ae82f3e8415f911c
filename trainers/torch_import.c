/* Import of PyTorch state dicts (see torch_import.h). GPT: every tensor name is rewritten to
 * octet's (octet/nn.h): wrapper prefixes dropped, "blocks.N." and
 * "h.N." to "h.N.", and within a block c_attn -> attn.qkv, attn.c_proj -> attn.proj,
 * c_fc -> mlp.fc, the MLP's c_proj -> mlp.proj. nn.Linear stores weights (out, in) as octet
 * does, and c_attn's rows are q, k, v with heads contiguous, as octet's qkv. The command is in
 * import.c. */
#include "torch_import.h"

#include "cli.h"
#include "gpt_int8.h"
#include "load_check.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Prefixes added by torch.compile, DistributedDataParallel and nanoGPT's ModuleDict. */
static const char *const prefixes[] = {"_orig_mod.", "module.", "transformer."};

/* Within a block: the PyTorch name's start and octet's. */
static const struct {
    const char *from, *to;
} block_names[] = {
    {"attn.c_attn.", "attn.qkv."}, {"attn.c_proj.", "attn.proj."}, {"mlp.c_fc.", "mlp.fc."},
    {"mlp.c_proj.", "mlp.proj."},  {"c_fc.", "mlp.fc."},           {"c_proj.", "mlp.proj."},
};

/* Within a block: buffers that are not parameters (nanoGPT's causal mask, HF's masked_bias). */
static const char *const block_buffers[] = {"attn.bias", "attn.masked_bias"};

/* name without the wrappers' prefixes (they stack: _orig_mod.transformer.). */
static const char *strip_prefixes(const char *name) {
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
            size_t len = strlen(prefixes[i]);
            if (!strncmp(name, prefixes[i], len)) {
                name += len;
                again = true;
            }
        }
    }
    return name;
}

/* octet's name for the tensor called name into out (n bytes); false for a buffer to skip. */
static bool octet_name(const char *name, char *out, size_t n) {
    name = strip_prefixes(name);
    const char *rest = NULL;
    if (!strncmp(name, "h.", 2))
        rest = name + 2;
    else if (!strncmp(name, "blocks.", 7))
        rest = name + 7;
    if (!rest || !isdigit((unsigned char)*rest)) {
        snprintf(out, n, "%s", name);
        return true;
    }
    char *end;
    long block = strtol(rest, &end, 10);
    if (*end != '.' || block > 100000) {
        snprintf(out, n, "%s", name);
        return true;
    }
    rest = end + 1;
    for (size_t i = 0; i < sizeof block_buffers / sizeof block_buffers[0]; i++)
        if (!strcmp(rest, block_buffers[i])) return false;
    for (size_t i = 0; i < sizeof block_names / sizeof block_names[0]; i++) {
        size_t len = strlen(block_names[i].from);
        if (!strncmp(rest, block_names[i].from, len)) {
            snprintf(out, n, "h.%ld.%s%s", block, block_names[i].to, rest + len);
            return true;
        }
    }
    snprintf(out, n, "h.%ld.%s", block, rest);
    return true;
}

/* The file's tensors under octet's names (NULL for a skipped buffer). */
typedef struct mapped {
    const oct_st_file *f;
    char **names; /* (f->count) */
} mapped;

static const oct_st_entry *lookup(const mapped *mp, const char *name) {
    for (int i = 0; i < mp->f->count; i++)
        if (mp->names[i] && !strcmp(mp->names[i], name)) return &mp->f->entries[i];
    return NULL;
}

/* The context of a model without wpe: metadata block_size (export --torch's, torch_gpt.py's). */
static oct_status recorded_context(const oct_st_file *f, int *context) {
    const char *v = oct_st_meta(f, "block_size");
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || x < 1 || x > 1 << 20)
        return oct_fail(OCT_EFORMAT,
                        "%s: %s metadata 'block_size': a model without 'wpe.weight' (--positions "
                        "rope) records its context there",
                        f->path, v ? "bad" : "no");
    *context = (int)x;
    return OCT_OK;
}

/* The architecture from the tensors' shapes (with no_wpe, the context from the metadata). */
static oct_status infer_config(const mapped *mp, int n_head, bool no_wpe, oct_gpt_config *cfg) {
    const oct_st_file *f = mp->f;
    static const char *const needed[] = {"wte.weight", "h.0.mlp.fc.weight", "wpe.weight"};
    const oct_st_entry *e[3] = {NULL, NULL, NULL};
    if (no_wpe && lookup(mp, "wpe.weight"))
        return oct_fail(OCT_EFORMAT,
                        "%s: has a learned position embedding 'wpe.weight', but --positions is "
                        "rope: give learned or learned+rope",
                        f->path);
    for (int i = 0; i < (no_wpe ? 2 : 3); i++)
        if (!(e[i] = lookup(mp, needed[i])) || e[i]->ndim != 2)
            return oct_fail(
                OCT_EFORMAT,
                "%s: no 2-D tensor for '%s': not a GPT state dict in nanoGPT's layout%s", f->path,
                needed[i], i == 2 ? " (without one, --positions rope)" : "");
    int layers = 0, last = -1; /* last: the entry of the highest block */
    bool seen[GPT_MAX_LAYERS] = {false};
    for (int i = 0; i < f->count; i++) {
        int b;
        if (!mp->names[i] || sscanf(mp->names[i], "h.%d.", &b) != 1) continue;
        if (b < 0 || b >= GPT_MAX_LAYERS)
            return oct_fail(OCT_EFORMAT, "%s: tensor '%s': block %d, expected 0..%d", f->path,
                            mp->f->entries[i].name, b, GPT_MAX_LAYERS - 1);
        seen[b] = true;
        if (b >= layers) layers = b + 1, last = i;
    }
    for (int b = 0; b < layers; b++)
        if (!seen[b])
            return oct_fail(OCT_EFORMAT, "%s: no tensor of block %d, but '%s' is of block %d",
                            f->path, b, f->entries[last].name, layers - 1);
    for (int i = 1; i < 3 && e[i]; i++) /* fc and wpe read the residual width */
        if (e[i]->shape[1] != e[0]->shape[1])
            return oct_fail(OCT_ESHAPE, "%s: '%s' has %d columns, but the embeddings' width is %d",
                            f->path, e[i]->name, e[i]->shape[1], e[0]->shape[1]);
    *cfg = (oct_gpt_config){.vocab = e[0]->shape[0],
                            .width = e[0]->shape[1],
                            .mlp = e[1]->shape[0],
                            .n_layer = layers,
                            .n_head = n_head,
                            .tied = lookup(mp, "lm_head.weight") == NULL,
                            .no_wpe = no_wpe};
    if (no_wpe) {
        oct_status s = recorded_context(f, &cfg->context);
        if (s != OCT_OK) return s;
    } else {
        cfg->context = e[2]->shape[0];
    }
    if (cfg->width % n_head)
        return oct_fail(OCT_EINVAL, "%s: %d heads do not divide the width %d", f->path, n_head,
                        cfg->width);
    return OCT_OK;
}

/* The architecture the metadata of f records (export --torch writes n_layer, n_embd, block_size
 * and vocab_size), where it does, must be cfg, the one of the tensors: OCT_EFORMAT naming the
 * key otherwise. */
static oct_status check_recorded_config(const oct_st_file *f, const oct_gpt_config *cfg) {
    const struct {
        const char *key;
        int value;
    } rec[] = {{"n_layer", cfg->n_layer},
               {"n_embd", cfg->width},
               {"block_size", cfg->context},
               {"vocab_size", cfg->vocab}};
    for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++) {
        const char *v = oct_st_meta(f, rec[i].key);
        char *end;
        errno = 0;
        long x = v ? strtol(v, &end, 10) : rec[i].value;
        if (v && (end == v || *end || errno || x != rec[i].value))
            return oct_fail(OCT_EFORMAT, "%s: metadata '%s' is '%s', but the tensors give %d",
                            f->path, rec[i].key, v, rec[i].value);
    }
    return OCT_OK;
}

oct_status torch_import_refuse_octet(const oct_st_file *f) {
    if (!oct_st_meta(f, "octet.model") && !oct_st_meta(f, "octet.format")) return OCT_OK;
    return oct_fail(OCT_EINVAL, "%s: already an octet model file (%s), which every command reads",
                    f->path, cli_file_kind(f));
}

/* Copies the file's tensor e for parameter t (shape checked, finite) into t. */
static oct_status copy_param(const oct_st_file *f, const oct_st_entry *e, oct_tensor *t) {
    const char *path = f->path;
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    if (!same) {
        char want[96], got[96];
        cli_shape_str(t->ndim, t->shape, want, sizeof want);
        cli_shape_str(e->ndim, e->shape, got, sizeof got);
        return oct_fail(OCT_ESHAPE, "%s: tensor '%s' is %s, expected %s (as nn.Linear stores it)",
                        path, e->name, got, want);
    }
    oct_status s = oct_st_to_f32(f, e, t->data);
    for (int64_t j = 0; s == OCT_OK && j < t->size; j++)
        if (!isfinite(t->data[j]))
            s = oct_fail(OCT_EFORMAT, "%s: tensor '%s' holds a non-finite value", path, e->name);
    return s;
}

/* Fills m's parameters from the file; every tensor but the skipped buffers must be used once. */
static oct_status fill(gpt_model *m, const mapped *mp, torch_import_info *info) {
    const oct_st_file *f = mp->f;
    bool *used = calloc((size_t)f->count + 1, sizeof *used);
    if (!used) return oct_fail(OCT_ENOMEM, "%s: out of memory", f->path);
    oct_status s = OCT_OK;
    const char *missing = NULL, *present = NULL; /* biases: nanoGPT's bias=False drops them all */
    for (int i = 0; i < m->params.n && s == OCT_OK; i++) {
        oct_tensor *t = m->params.items[i];
        const oct_st_entry *e = lookup(mp, t->name);
        size_t len = strlen(t->name);
        bool bias = len > 5 && !strcmp(t->name + len - 5, ".bias");
        if (bias && !e && !missing) missing = t->name;
        if (bias && e && !present) present = e->name;
        if (e) {
            used[e - f->entries] = true;
            s = copy_param(f, e, t);
        } else if (bias) {
            memset(t->data, 0, (size_t)t->size * sizeof *t->data); /* bias=False */
            info->zero_biases++;
        } else {
            s = oct_fail(OCT_EFORMAT, "%s: no tensor for octet's '%s'", f->path, t->name);
        }
    }
    if (s == OCT_OK && missing && present)
        s = oct_fail(OCT_EFORMAT,
                     "%s: no tensor for octet's '%s', but '%s' is there: a GPT has all its biases "
                     "or none (bias=False)",
                     f->path, missing, present);
    for (int i = 0; i < f->count && s == OCT_OK; i++)
        if (mp->names[i] && !used[i])
            s = oct_fail(OCT_EFORMAT, "%s: tensor '%s' has no place in a GPT of %d layers", f->path,
                         f->entries[i].name, m->gpt.cfg.n_layer);
    free(used);
    return s;
}

oct_status gpt_import(gpt_model *m, const char *path, const oct_vocab *vocab, int n_head,
                      const oct_gpt_config *given, torch_import_info *info) {
    memset(m, 0, sizeof *m);
    *info = (torch_import_info){0};
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != OCT_OK) return s;
    if ((s = torch_import_refuse_octet(&f)) != OCT_OK) {
        oct_st_close(&f);
        return s;
    }
    mapped mp = {&f, calloc((size_t)f.count + 1, sizeof(char *))};
    if (!mp.names) s = oct_fail(OCT_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < f.count && s == OCT_OK; i++) {
        char name[512];
        if (!octet_name(f.entries[i].name, name, sizeof name)) {
            info->buffers++;
            continue;
        }
        for (int j = 0; j < i; j++)
            if (mp.names[j] && !strcmp(mp.names[j], name))
                s = oct_fail(OCT_EFORMAT, "%s: tensors '%s' and '%s' are both octet's '%s'", path,
                             f.entries[j].name, f.entries[i].name, name);
        if (s == OCT_OK && !(mp.names[i] = strdup(name)))
            s = oct_fail(OCT_ENOMEM, "%s: out of memory", path);
    }
    /* Tied weights saved by safetensors' save_model keep one name, the first in sorted order:
     * nanoGPT's shared wte/lm_head tensor then appears as lm_head.weight alone. */
    const oct_st_entry *head = s == OCT_OK ? lookup(&mp, "lm_head.weight") : NULL;
    if (head && !lookup(&mp, "wte.weight")) {
        int i = (int)(head - f.entries);
        free(mp.names[i]);
        if (!(mp.names[i] = strdup("wte.weight")))
            s = oct_fail(OCT_ENOMEM, "%s: out of memory", path);
    }
    oct_gpt_config cfg;
    if (s == OCT_OK) s = infer_config(&mp, n_head, given->no_wpe, &cfg);
    if (s == OCT_OK) s = check_recorded_config(&f, &cfg);
    cfg.exact_gelu = given->exact_gelu;
    cfg.rope = given->rope;
    if (s == OCT_OK && cfg.vocab != vocab->size)
        s = oct_fail(OCT_EINVAL, "%s: %d token embeddings, but the vocabulary has %d characters",
                     path, cfg.vocab, vocab->size);
    if (s == OCT_OK) s = gpt_model_check_size(&f, &cfg, true);
    if (s == OCT_OK && (s = gpt_model_init(m, &cfg, vocab, 0)) != OCT_OK)
        s = load_fail_in(s, path); /* "gpt: context is 0" */
    else if (s == OCT_OK && (s = fill(m, &mp, info)) != OCT_OK)
        gpt_model_free(m);
    for (int i = 0; mp.names && i < f.count; i++) free(mp.names[i]);
    free(mp.names);
    oct_st_close(&f);
    return s;
}

bool torch_import_is_gpt(const oct_st_file *f) {
    for (int i = 0; i < f->count; i++) {
        const char *name = strip_prefixes(f->entries[i].name);
        if (!strcmp(name, "wte.weight") || !strcmp(name, "wpe.weight")) return true;
    }
    return false;
}

/* ---- MLP ------------------------------------------------------------------------------------ */

/* The most linear layers an imported MLP may have. */
#define MLP_MAX_LAYERS 64

/* strcmp with runs of digits compared as numbers: "net.2.weight" < "net.10.weight". */
static int natural_cmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            char *ea, *eb;
            unsigned long long x = strtoull(a, &ea, 10), y = strtoull(b, &eb, 10);
            if (x != y) return x < y ? -1 : 1;
            a = ea;
            b = eb;
        } else if (*a != *b) {
            return (unsigned char)*a - (unsigned char)*b;
        } else {
            a++, b++;
        }
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* Whether name (prefixes stripped) ends with suffix; *stem gets the length before it. */
static bool ends_with(const char *name, const char *suffix, size_t *stem) {
    size_t n = strlen(name), k = strlen(suffix);
    *stem = n - k;
    return n >= k && !strcmp(name + n - k, suffix);
}

/* The linear layers of the file in order: its ".weight" tensors sorted by name (digit runs as
 * numbers) and the ".bias" of the same stem (or NULL). Every tensor must be one of them. */
static oct_status mlp_layers(const oct_st_file *f, const oct_st_entry **w, const oct_st_entry **b,
                             int *n_layers) {
    int n = 0;
    for (int i = 0; i < f->count; i++) {
        const oct_st_entry *e = &f->entries[i];
        size_t stem;
        const char *name = strip_prefixes(e->name);
        if (ends_with(name, ".weight", &stem) && e->ndim == 2) {
            if (n == MLP_MAX_LAYERS)
                return oct_fail(OCT_EINVAL, "%s: more than %d linear layers", f->path,
                                MLP_MAX_LAYERS);
            int j = n++;
            while (j > 0 && natural_cmp(strip_prefixes(w[j - 1]->name), name) > 0) {
                w[j] = w[j - 1];
                j--;
            }
            w[j] = e;
        } else if (!ends_with(name, ".bias", &stem) || e->ndim != 1) {
            return oct_fail(OCT_EFORMAT,
                            "%s: tensor '%s' has no place in an MLP (2-D <layer>.weight and 1-D "
                            "<layer>.bias only)",
                            f->path, e->name);
        }
    }
    if (n == 0) return oct_fail(OCT_EFORMAT, "%s: no 2-D '.weight' tensor: not an MLP", f->path);
    int biases = 0;
    for (int i = 0; i < n; i++) {
        const char *name = strip_prefixes(w[i]->name);
        size_t stem = strlen(name) - strlen("weight");
        b[i] = NULL;
        for (int k = 0; k < f->count && !b[i]; k++) {
            const char *other = strip_prefixes(f->entries[k].name);
            if (!strncmp(other, name, stem) && !strcmp(other + stem, "bias")) b[i] = &f->entries[k];
        }
        biases += b[i] != NULL;
        if (i > 0 && w[i]->shape[1] != w[i - 1]->shape[0])
            return oct_fail(OCT_ESHAPE, "%s: '%s' takes %d inputs, but '%s' gives %d", f->path,
                            w[i]->name, w[i]->shape[1], w[i - 1]->name, w[i - 1]->shape[0]);
    }
    if (biases != f->count - n)
        return oct_fail(OCT_EFORMAT, "%s: a '.bias' tensor without its '.weight'", f->path);
    *n_layers = n;
    return OCT_OK;
}

oct_status mlp_import(mlp_model *m, const char *path, oct_activation act, float mean, float std,
                      torch_import_info *info) {
    memset(m, 0, sizeof *m);
    *info = (torch_import_info){0};
    oct_st_file f;
    oct_status s = oct_st_open(&f, path);
    if (s != OCT_OK) return s;
    const oct_st_entry *w[MLP_MAX_LAYERS], *b[MLP_MAX_LAYERS];
    int n = 0, sizes[MLP_MAX_LAYERS + 1];
    s = torch_import_refuse_octet(&f);
    if (s == OCT_OK) s = mlp_layers(&f, w, b, &n);
    for (int i = 0; s == OCT_OK && i < n; i++) sizes[i + 1] = w[i]->shape[0];
    if (s == OCT_OK) {
        sizes[0] = w[0]->shape[1];
        s = mlp_model_init(m, sizes, n + 1, act, OCT_INIT_KAIMING_UNIFORM, 0);
        if (s != OCT_OK) s = load_fail_in(s, path); /* "mlp: layer size 1 is 0" */
    }
    for (int i = 0; s == OCT_OK && i < n; i++) {
        const oct_linear_layer *l = &m->mlp.layers[i];
        s = copy_param(&f, w[i], l->w);
        if (s == OCT_OK && b[i])
            s = copy_param(&f, b[i], l->b);
        else if (s == OCT_OK) {
            memset(l->b->data, 0, (size_t)l->b->size * sizeof *l->b->data); /* bias=False */
            info->zero_biases++;
        }
    }
    if (s == OCT_OK) {
        m->mean = mean;
        m->std = std;
    } else if (m->params.n) {
        mlp_model_free(m);
    }
    oct_st_close(&f);
    return s;
}

/* ---- export ------------------------------------------------------------------------------- */

/* The state dict name of octet's GPT parameter name into out (n bytes); false for a tensor that
 * is not a weight or bias (quantizer scales). */
static bool torch_gpt_name(const char *name, char *out, size_t n) {
    size_t len = strlen(name);
    bool weight = len > 7 && !strcmp(name + len - 7, ".weight");
    if (!weight && !(len > 5 && !strcmp(name + len - 5, ".bias"))) return false;
    if (!strncmp(name, "lm_head.", 8)) {
        snprintf(out, n, "%s", name);
        return true;
    }
    int block, at = 0;
    if (sscanf(name, "h.%d.%n", &block, &at) == 1 && at > 0)
        for (size_t i = 0; i < 4; i++) { /* the first four are nanoGPT's own names */
            size_t to = strlen(block_names[i].to);
            if (!strncmp(name + at, block_names[i].to, to)) {
                snprintf(out, n, "transformer.h.%d.%s%s", block, block_names[i].from,
                         name + at + to);
                return true;
            }
        }
    snprintf(out, n, "transformer.%s", name);
    return true;
}

/* Adds metadata key = the decimal value v. */
static oct_status meta_int(oct_st_writer *w, const char *key, long long v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return oct_st_writer_meta(w, key, buf);
}

static oct_status gpt_export(const gpt_model *m, oct_st_writer *w) {
    const oct_gpt_config *c = &m->gpt.cfg;
    oct_status s = oct_st_writer_meta(w, "format", "pt");
    if (s == OCT_OK) s = meta_int(w, "n_layer", c->n_layer);
    if (s == OCT_OK) s = meta_int(w, "n_head", c->n_head);
    if (s == OCT_OK) s = meta_int(w, "n_embd", c->width);
    if (s == OCT_OK) s = meta_int(w, "block_size", c->context);
    if (s == OCT_OK) s = meta_int(w, "vocab_size", c->vocab);
    if (s == OCT_OK) s = oct_st_writer_meta(w, "gelu", c->exact_gelu ? "erf" : "tanh");
    if (s == OCT_OK) s = oct_st_writer_meta(w, "positions", cli_positions_name(c->rope, c->no_wpe));
    json_t *a = json_array(); /* "[10,32,...]", as import reads it */
    for (int i = 0; a && i < c->vocab; i++)
        json_array_append_new(a, json_integer(m->vocab.bytes[i]));
    char *bytes = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    if (!bytes && s == OCT_OK) s = oct_fail(OCT_ENOMEM, "out of memory");
    if (s == OCT_OK) s = oct_st_writer_meta(w, "vocab_bytes", bytes);
    free(bytes);
    for (int i = 0; i < m->params.n && s == OCT_OK; i++) {
        const oct_tensor *t = m->params.items[i];
        char name[128];
        if (torch_gpt_name(t->name, name, sizeof name))
            s = oct_st_writer_add(w, name, OCT_DT_F32, t->ndim, t->shape, t->data);
    }
    return s;
}

static oct_status mlp_export(const mlp_model *m, oct_st_writer *w) {
    char buf[32];
    oct_status s = oct_st_writer_meta(w, "format", "pt");
    if (s == OCT_OK) s = oct_st_writer_meta(w, "activation", oct_activation_name(m->mlp.act));
    if (s == OCT_OK && m->mlp.act == OCT_ACT_GELU) /* nn.GELU(approximate="tanh") */
        s = oct_st_writer_meta(w, "gelu", "tanh");
    snprintf(buf, sizeof buf, "%.9g", (double)m->mean);
    if (s == OCT_OK) s = oct_st_writer_meta(w, "mean", buf);
    snprintf(buf, sizeof buf, "%.9g", (double)m->std);
    if (s == OCT_OK) s = oct_st_writer_meta(w, "std", buf);
    for (int i = 0; i < m->mlp.n_layers && s == OCT_OK; i++) {
        const oct_linear_layer *l = &m->mlp.layers[i];
        char name[32];
        snprintf(name, sizeof name, "fc%d.weight", i + 1);
        s = oct_st_writer_add(w, name, OCT_DT_F32, 2, l->w->shape, l->w->data);
        snprintf(name, sizeof name, "fc%d.bias", i + 1);
        if (s == OCT_OK && l->b)
            s = oct_st_writer_add(w, name, OCT_DT_F32, 1, l->b->shape, l->b->data);
    }
    return s;
}

oct_status torch_export(const char *path, const char *out, bool keep_source, const char **kind) {
    oct_st_writer w;
    oct_st_writer_init(&w);
    w.no_crc = true; /* PyTorch may save it again in another order, keeping the metadata */
    oct_status s;
    bool gpt = gpt_is_model(path);
    *kind = gpt ? "GPT" : "MLP";
    gpt_model g;
    mlp_model m;
    if (gpt && (s = gpt_model_load(&g, path)) == OCT_OK) {
        s = gpt_export(&g, &w);
        if (s == OCT_OK && keep_source && g.source)
            s = oct_st_writer_meta(&w, CLI_META_SOURCE, g.source);
        if (s == OCT_OK) s = oct_st_writer_write(&w, out);
        gpt_model_free(&g);
    } else if (!gpt && (s = mlp_model_load(&m, path)) == OCT_OK) {
        s = mlp_export(&m, &w);
        if (s == OCT_OK && keep_source && m.source)
            s = oct_st_writer_meta(&w, CLI_META_SOURCE, m.source);
        if (s == OCT_OK) s = oct_st_writer_write(&w, out);
        mlp_model_free(&m);
    }
    oct_st_writer_free(&w);
    return s;
}
