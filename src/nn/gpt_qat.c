/* The QAT GPT: an oct_gpt's linear layers wrapped as quantized linears (the op of
 * src/ops/qlinear.c, which runs the integer layer shared with the engine), the float ops in
 * between through the shared row kernels (LayerNorm, GELU, row-wise causal attention), and the
 * conversion to the deployed integer GPT from exactly the eval-mode state. See the QAT GPT
 * section of include/octet/qat.h. */
#include <stdlib.h>
#include <string.h>

#include "gpt_internal.h"
#include "qat_internal.h"

/* The fp32 layer behind linear j. */
static const oct_linear_layer *fp_layer(const oct_gpt *m, int j) {
    if (j == 4 * m->cfg.n_layer) return &m->lm_head;
    const oct_gpt_block *b = &m->h[j / 4];
    const oct_linear_layer *ls[OCT_QAT_GPT_PER_BLOCK] = {&b->qkv, &b->proj, &b->fc, &b->fc_proj};
    return ls[j % 4];
}

oct_status oct_qat_gpt_init(oct_qat_gpt *q, oct_gpt *gpt, oct_arena *arena, oct_params *params,
                            const oct_qat_config *cfg) {
    memset(q, 0, sizeof *q);
    oct_status st = oct_qat_config_check(cfg);
    if (st != OCT_OK) return st;
    if (cfg->n_act_modes != 1)
        return oct_fail(OCT_EINVAL,
                        "qat: activation quantizers: %d given, a GPT takes one for all its points",
                        cfg->n_act_modes);
    if (cfg->act_mode[0] == OCT_QAT_A_PACT)
        return oct_fail(OCT_EINVAL, "qat: activation quantizers: pact needs ReLU outputs, which a "
                                    "GPT has none of; use ema, minmax or lsq");
    const oct_gpt_config *c = &gpt->cfg;
    if (c->width > OCT_I8_MAX_K || c->mlp > OCT_I8_MAX_K)
        return oct_fail(OCT_EINVAL, "qat: width %d / mlp %d above the int8 limit %d", c->width,
                        c->mlp, OCT_I8_MAX_K);
    if (cfg->embed_bits) {
        st = oct_qscheme_init(&q->escheme, cfg->embed_bits, true, true, true, true);
        if (st != OCT_OK) return st;
    }
    int n_linear = 4 * c->n_layer + 1;
    const char **names = oct_arena_alloc(arena, (size_t)n_linear * sizeof *names);
    for (int j = 0; j < n_linear; j++) {
        char name[64];
        oct_gpt_linear_name(c->n_layer, j, name, sizeof name);
        names[j] = oct_arena_printf(arena, "%s", name);
    }
    if ((st = oct_qat_config_check_layers(cfg, names, n_linear)) != OCT_OK) return st;
    q->gpt = gpt;
    q->cfg = *cfg;
    q->n_linear = n_linear;
    int n_acts = 2 * q->n_linear - 1;
    q->lin = oct_arena_alloc(arena, (size_t)q->n_linear * sizeof *q->lin);
    q->acts = oct_arena_alloc(arena, (size_t)n_acts * sizeof *q->acts);
    oct__qat_state state = {&q->state, &q->n_state};
    for (int j = 0; j < q->n_linear; j++) {
        const char *name = names[j];
        bool head = j == q->n_linear - 1;
        oct__qat_act_init(&q->acts[2 * j], oct_arena_printf(arena, "%s.in", name), cfg->act_mode[0],
                          cfg, arena, params, state);
        if (!head)
            oct__qat_act_init(&q->acts[2 * j + 1], oct_arena_printf(arena, "%s.out", name),
                              cfg->act_mode[0], cfg, arena, params, state);
        oct__qat_linear_init(&q->lin[j], fp_layer(gpt, j), &q->acts[2 * j], true,
                             head ? NULL : &q->acts[2 * j + 1], false, name, cfg, arena, params,
                             state);
    }
    return OCT_OK;
}

void oct_qat_gpt_free(oct_qat_gpt *q) {
    if (!q) return;
    for (int j = 0; q->lin && j < q->n_linear; j++) oct_qat_linear_free(&q->lin[j]);
    free(q->state);
    memset(q, 0, sizeof *q);
}

oct_status oct_qat_gpt_check(const oct_qat_gpt *q) {
    return oct__qat_check_state(q->acts, 2 * q->n_linear - 1, q->lin, q->n_linear);
}

void oct_qat_gpt_project(oct_qat_gpt *q) {
    oct__qat_project_state(q->acts, 2 * q->n_linear - 1, q->lin, q->n_linear);
}

void oct_qat_gpt_set_threads(oct_qat_gpt *q, int threads) {
    for (int j = 0; j < q->n_linear; j++) q->lin[j].threads = threads;
}

void oct_qat_gpt_sync_frozen(oct_qat_gpt *q) {
    oct__qat_acts_sync_frozen(q->acts, 2 * q->n_linear - 1,
                              q->cfg.freeze_after > 0 && q->steps >= q->cfg.freeze_after);
}

bool oct_qat_gpt_needs_whole_batch(oct_qat_gpt *q) {
    oct_qat_gpt_sync_frozen(q);
    for (int j = 0; j < q->n_linear; j++)
        if (oct_qat_linear_needs_whole_batch(&q->lin[j])) return true;
    return false;
}

void oct_qat_gpt_commit(oct_qat_gpt *q) {
    for (int i = 0; i < 2 * q->n_linear - 1; i++) oct_act_quant_commit(&q->acts[i]);
}

/* Embedding table w (rows, C) as the forward pass uses it: w itself, or with embed_bits its
 * per-row fake quantization (the values oct_qat_gpt_to_int8 exports as codes times scales); NULL
 * (no wpe) stays NULL. */
static oct_tensor *embedding_table(const oct_qat_gpt *q, oct_graph *g, oct_tensor *w) {
    if (!q->cfg.embed_bits || !w) return w;
    int rows = w->shape[0];
    float *s = oct_arena_alloc(&g->arena, (size_t)rows * sizeof *s);
    int32_t *z = oct_arena_calloc(&g->arena, (size_t)rows * sizeof *z);
    oct_quant_row_scales(&q->escheme, w->data, rows, w->shape[1], s);
    return oct_fake_quant_fixed(g, w, rows, s, z, q->escheme.qmin, q->escheme.qmax);
}

/* The order of operations here is the integer engine's (src/int8/gpt_engine.c). */
oct_tensor *oct_qat_gpt_embed(oct_qat_gpt *q, oct_graph *g, const int32_t *ids, int B, int T) {
    const oct_gpt *m = q->gpt;
    return oct__gpt_embed(m, g, embedding_table(q, g, m->wte), embedding_table(q, g, m->wpe), ids,
                          B, T, 0); /* (B,T,C) */
}

oct_tensor *oct_qat_gpt_block(oct_qat_gpt *q, oct_graph *g, oct_tensor *x, int i, int last) {
    const oct_gpt *m = q->gpt;
    OCT_ASSERT(i >= 0 && i < m->cfg.n_layer && last >= 0 && last < OCT_QAT_GPT_PER_BLOCK);
    const oct_gpt_block *b = &m->h[i];
    oct_qat_linear *l = &q->lin[4 * i];
    oct_tensor *h = oct_layernorm(g, x, b->ln1_w, b->ln1_b, OCT_GPT_LN_EPS);
    h = oct_qat_linear_forward(g, h, &l[OCT_QAT_GPT_QKV]); /* (B,T,3C) */
    if (last == OCT_QAT_GPT_QKV) return h;
    if (m->cfg.rope) h = oct_rope(g, h, m->cfg.n_head);
    h = oct_attention_rows(g, h, m->cfg.n_head);
    h = oct_qat_linear_forward(g, h, &l[OCT_QAT_GPT_PROJ]);
    if (last == OCT_QAT_GPT_PROJ) return h;
    x = oct_add(g, x, oct_dropout(g, h, m->cfg.dropout));
    h = oct_layernorm(g, x, b->ln2_w, b->ln2_b, OCT_GPT_LN_EPS);
    h = oct_qat_linear_forward(g, h, &l[OCT_QAT_GPT_FC]);
    if (last == OCT_QAT_GPT_FC) return h;
    h = oct_qat_linear_forward(g, oct__gpt_gelu(m, g, h), &l[OCT_QAT_GPT_FC_PROJ]);
    return oct_add(g, x, oct_dropout(g, h, m->cfg.dropout));
}

oct_tensor *oct_qat_gpt_head(oct_qat_gpt *q, oct_graph *g, oct_tensor *x) {
    const oct_gpt *m = q->gpt;
    oct_tensor *h = oct_layernorm(g, x, m->lnf_w, m->lnf_b, OCT_GPT_LN_EPS);
    return oct_qat_linear_forward(g, h, &q->lin[q->n_linear - 1]); /* (B,T,V) */
}

oct_tensor *oct_qat_gpt_forward(oct_qat_gpt *q, oct_graph *g, const int32_t *ids, int B, int T) {
    if (g->shard == 0) oct_qat_gpt_sync_frozen(q);
    oct_tensor *x = oct_qat_gpt_embed(q, g, ids, B, T);
    for (int i = 0; i < q->gpt->cfg.n_layer; i++)
        x = oct_qat_gpt_block(q, g, x, i, OCT_QAT_GPT_FC_PROJ);
    oct_tensor *h = oct_qat_gpt_head(q, g, x);
    if (g->training && g->shard == 0) q->steps++;
    return h;
}

/* A malloc'd copy of n floats. */
static float *dup_floats(const float *src, size_t n) {
    float *d = malloc(n * sizeof *d);
    if (d) memcpy(d, src, n * sizeof *d);
    return d;
}

/* Everything of an int8 GPT but its linears (m->lin allocated, zeroed): config, embeddings
 * (int8 when embed_bits), LayerNorms, vocabulary; the input code ranges [0, 255]. */
static oct_status i8_gpt_frame(const oct_gpt *m, const uint8_t *vocab, int embed_bits,
                               oct_i8_gpt *out) {
    const oct_gpt_config *c = &m->cfg;
    int C = c->width, L = c->n_layer, J = OCT_I8_GPT_PER_BLOCK * L + 1;
    memset(out, 0, sizeof *out);
    out->vocab = c->vocab;
    out->context = c->context;
    out->n_layer = L;
    out->n_head = c->n_head;
    out->width = C;
    out->mlp = c->mlp;
    out->ln_eps = OCT_GPT_LN_EPS;
    out->exact_gelu = c->exact_gelu;
    out->rope = c->rope;
    out->no_wpe = c->no_wpe;
    if (embed_bits) {
        oct_status s = oct_i8_gpt_quantize_embeddings(out, m->wte->data,
                                                      m->wpe ? m->wpe->data : NULL, embed_bits);
        if (s != OCT_OK) {
            oct_i8_gpt_free(out);
            return s;
        }
    } else {
        out->wte = dup_floats(m->wte->data, (size_t)m->wte->size);
        if (m->wpe) out->wpe = dup_floats(m->wpe->data, (size_t)m->wpe->size);
    }
    out->ln = malloc((size_t)L * 4 * (size_t)C * sizeof *out->ln);
    out->lnf = malloc(2 * (size_t)C * sizeof *out->lnf);
    out->lin = calloc((size_t)J, sizeof *out->lin);
    out->in_qmin = calloc((size_t)J, sizeof *out->in_qmin);
    out->in_qmax = malloc((size_t)J * sizeof *out->in_qmax);
    out->vocab_bytes = malloc((size_t)c->vocab);
    if (!out->wte || (m->wpe && !out->wpe) || !out->ln || !out->lnf || !out->lin || !out->in_qmin ||
        !out->in_qmax || !out->vocab_bytes) {
        oct_i8_gpt_free(out);
        return oct_fail(OCT_ENOMEM, "gpt: out of memory exporting");
    }
    for (int j = 0; j < J; j++) out->in_qmax[j] = 255;
    memcpy(out->vocab_bytes, vocab, (size_t)c->vocab);
    for (int i = 0; i < L; i++) {
        const oct_gpt_block *b = &m->h[i];
        const oct_tensor *ln[4] = {b->ln1_w, b->ln1_b, b->ln2_w, b->ln2_b};
        for (int k = 0; k < 4; k++)
            memcpy(out->ln + ((size_t)i * 4 + k) * C, ln[k]->data, (size_t)C * sizeof(float));
    }
    memcpy(out->lnf, m->lnf_w->data, (size_t)C * sizeof(float));
    memcpy(out->lnf + C, m->lnf_b->data, (size_t)C * sizeof(float));
    return OCT_OK;
}

oct_status oct_qat_gpt_to_int8(const oct_qat_gpt *q, const uint8_t *vocab, oct_i8_gpt *out) {
    oct_status s = i8_gpt_frame(q->gpt, vocab, q->cfg.embed_bits, out);
    for (int j = 0; j < q->n_linear && s == OCT_OK; j++) {
        out->in_qmin[j] = q->lin[j].in_q->scheme.qmin;
        out->in_qmax[j] = q->lin[j].in_q->scheme.qmax;
        s = oct_qat_linear_build(&q->lin[j], &out->lin[j]);
    }
    if (s != OCT_OK) oct_i8_gpt_free(out);
    return s;
}

oct_status oct_gpt_to_dynamic_int8(const oct_gpt *m, const uint8_t *vocab, int embed_bits,
                                   oct_i8_gpt *out) {
    memset(out, 0, sizeof *out); /* oct_i8_gpt_free(out) is safe on every return */
    if (embed_bits && (embed_bits < 2 || embed_bits > 8))
        return oct_fail(OCT_EINVAL, "gpt: embedding bits %d, expected 0 or 2..8", embed_bits);
    oct_status s = i8_gpt_frame(m, vocab, embed_bits, out);
    if (s != OCT_OK) return s;
    out->dynamic = true;
    int J = OCT_I8_GPT_PER_BLOCK * m->cfg.n_layer + 1;
    for (int j = 0; j < J && s == OCT_OK; j++) {
        const oct_linear_layer *l = fp_layer(m, j);
        s = oct_qlinear_build_dynamic(&out->lin[j], (int)l->w->shape[0], (int)l->w->shape[1],
                                      l->w->data, l->b ? l->b->data : NULL, false);
    }
    if (s != OCT_OK) oct_i8_gpt_free(out);
    return s;
}
