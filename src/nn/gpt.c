/* The GPT model: a decoder-only, pre-LayerNorm transformer (GPT-2 / nanoGPT layout) built from
 * ops on the tape. This file creates and initializes the parameters and runs the training
 * forward pass; gpt_generate.c runs inference with a key/value cache through the shared pieces
 * declared in gpt_internal.h (embedding, linear, MLP branch, head). See octet/nn.h for the
 * architecture and the parameter names. */
#include "gpt_internal.h"

#include <math.h>

#define GPT_INIT_STD 0.02f

oct_status oct_gpt_config_check(const oct_gpt_config *cfg) {
    const struct {
        const char *name;
        int value;
    } sizes[] = {
        {"vocab", cfg->vocab},   {"context", cfg->context}, {"n_layer", cfg->n_layer},
        {"n_head", cfg->n_head}, {"width", cfg->width},     {"mlp", cfg->mlp},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i].value <= 0)
            return oct_fail(OCT_EINVAL, "gpt: %s is %d, expected > 0", sizes[i].name,
                            sizes[i].value);
    if (cfg->width % cfg->n_head)
        return oct_fail(OCT_EINVAL, "gpt: width %d is not a multiple of n_head %d", cfg->width,
                        cfg->n_head);
    if (cfg->rope && cfg->width / cfg->n_head % 2)
        return oct_fail(OCT_EINVAL, "gpt: rope needs an even head size, not %d (width / n_head)",
                        cfg->width / cfg->n_head);
    if (cfg->no_wpe && !cfg->rope)
        return oct_fail(OCT_EINVAL, "gpt: no_wpe needs rope (the model would not see positions)");
    if (cfg->vocab > 65536)
        return oct_fail(OCT_EINVAL, "gpt: vocab %d is larger than 65536", cfg->vocab);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return oct_fail(OCT_EINVAL, "gpt: dropout %g outside [0, 1)", (double)cfg->dropout);
    return OCT_OK;
}

int64_t oct_gpt_param_count(const oct_gpt_config *cfg) {
    int64_t V = cfg->vocab, C = cfg->width, M = cfg->mlp, T = cfg->context;
    int64_t block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (M * C + M) + (C * M + C);
    return V * C + (cfg->no_wpe ? 0 : T * C) + cfg->n_layer * block + 2 * C +
           (cfg->tied ? 0 : V * C);
}

/* A parameter "<prefix>.<suffix>" of the given shape, appended to params. */
static oct_tensor *gpt_param(oct_arena *arena, oct_params *params, const char *prefix,
                             const char *suffix, int ndim, const int *shape) {
    oct_tensor *t =
        oct_tensor_param(arena, oct_arena_printf(arena, "%s.%s", prefix, suffix), ndim, shape);
    oct_params_add(params, t);
    return t;
}

/* A LayerNorm "<prefix>.weight" = 1, "<prefix>.bias" = 0, both (C). */
static void gpt_layernorm_init(oct_tensor **w, oct_tensor **b, oct_arena *arena, oct_params *params,
                               const char *prefix, int C) {
    *w = gpt_param(arena, params, prefix, "weight", 1, &C);
    *b = gpt_param(arena, params, prefix, "bias", 1, &C);
    for (int i = 0; i < C; i++) (*w)->data[i] = 1.0f;
}

/* A linear layer in -> out: weight N(0, std^2), bias (when wanted) zero. */
static void gpt_linear_init(oct_linear_layer *l, oct_arena *arena, oct_params *params,
                            const char *prefix, int in, int out, bool bias, float std,
                            oct_rng *rng) {
    int wshape[2] = {out, in};
    l->w = gpt_param(arena, params, prefix, "weight", 2, wshape);
    oct_rng_fill_normal(rng, l->w, std);
    l->b = bias ? gpt_param(arena, params, prefix, "bias", 1, &out) : NULL;
}

oct_status oct_gpt_init(oct_gpt *m, oct_arena *arena, oct_params *params, const oct_gpt_config *cfg,
                        oct_rng *rng) {
    oct_status s = oct_gpt_config_check(cfg);
    if (s != OCT_OK) return s;
    int V = cfg->vocab, C = cfg->width, M = cfg->mlp, L = cfg->n_layer;
    float resid_std = GPT_INIT_STD / sqrtf(2.0f * (float)L);
    m->cfg = *cfg;
    int wte_shape[2] = {V, C}, wpe_shape[2] = {cfg->context, C};
    m->wte = gpt_param(arena, params, "wte", "weight", 2, wte_shape);
    oct_rng_fill_normal(rng, m->wte, GPT_INIT_STD);
    if (cfg->no_wpe) { /* draws as if it were there: the other tensors start the same */
        m->wpe = NULL;
        for (int64_t i = 0; i < (int64_t)cfg->context * C; i++) (void)oct_rng_normal(rng);
    } else {
        m->wpe = gpt_param(arena, params, "wpe", "weight", 2, wpe_shape);
        oct_rng_fill_normal(rng, m->wpe, GPT_INIT_STD);
    }
    m->h = oct_arena_calloc(arena, (size_t)L * sizeof *m->h);
    for (int i = 0; i < L; i++) {
        oct_gpt_block *b = &m->h[i];
        gpt_layernorm_init(&b->ln1_w, &b->ln1_b, arena, params,
                           oct_arena_printf(arena, "h.%d.ln_1", i), C);
        gpt_linear_init(&b->qkv, arena, params, oct_arena_printf(arena, "h.%d.attn.qkv", i), C,
                        3 * C, true, GPT_INIT_STD, rng);
        gpt_linear_init(&b->proj, arena, params, oct_arena_printf(arena, "h.%d.attn.proj", i), C, C,
                        true, resid_std, rng);
        gpt_layernorm_init(&b->ln2_w, &b->ln2_b, arena, params,
                           oct_arena_printf(arena, "h.%d.ln_2", i), C);
        gpt_linear_init(&b->fc, arena, params, oct_arena_printf(arena, "h.%d.mlp.fc", i), C, M,
                        true, GPT_INIT_STD, rng);
        gpt_linear_init(&b->fc_proj, arena, params, oct_arena_printf(arena, "h.%d.mlp.proj", i), M,
                        C, true, resid_std, rng);
    }
    gpt_layernorm_init(&m->lnf_w, &m->lnf_b, arena, params, "ln_f", C);
    if (cfg->tied)
        m->lm_head = (oct_linear_layer){.w = m->wte, .b = NULL};
    else
        gpt_linear_init(&m->lm_head, arena, params, "lm_head", C, V, false, GPT_INIT_STD, rng);
    return OCT_OK;
}

oct_tensor *oct__gpt_linear(const oct_gpt *m, oct_graph *g, const oct_linear_layer *l,
                            oct_tensor *x) {
    (void)m;
    return oct_linear_layer_forward(l, g, x);
}

oct_tensor *oct__gpt_embed(const oct_gpt *m, oct_graph *g, oct_tensor *wte, oct_tensor *wpe,
                           const int32_t *ids, int B, int T, int t0) {
    OCT_ASSERT(B > 0 && T > 0 && t0 >= 0 && t0 + T <= m->cfg.context);
    int bt[2] = {B, T};
    oct_tensor *x = oct_embedding(g, wte, ids, 2, bt); /* (B,T,C) */
    if (wpe) {
        int32_t *pos = oct_arena_alloc(&g->arena, (size_t)T * sizeof *pos);
        for (int t = 0; t < T; t++) pos[t] = t0 + t;
        x = oct_add(g, x, oct_embedding(g, wpe, pos, 1, &T));
    }
    return oct_dropout(g, x, m->cfg.dropout);
}

oct_tensor *oct__gpt_gelu(const oct_gpt *m, oct_graph *g, oct_tensor *x) {
    return m->cfg.exact_gelu ? oct_gelu_erf(g, x) : oct_gelu(g, x);
}

oct_tensor *oct__gpt_mlp(const oct_gpt *m, oct_graph *g, const oct_gpt_block *b, oct_tensor *x) {
    oct_tensor *h = oct_layernorm(g, x, b->ln2_w, b->ln2_b, OCT_GPT_LN_EPS);
    h = oct__gpt_gelu(m, g, oct__gpt_linear(m, g, &b->fc, h));
    return oct_dropout(g, oct__gpt_linear(m, g, &b->fc_proj, h), m->cfg.dropout);
}

oct_tensor *oct__gpt_logits(const oct_gpt *m, oct_graph *g, oct_tensor *x) {
    oct_tensor *h = oct_layernorm(g, x, m->lnf_w, m->lnf_b, OCT_GPT_LN_EPS);
    return oct__gpt_linear(m, g, &m->lm_head, h);
}

oct_tensor *oct_gpt_forward(const oct_gpt *m, oct_graph *g, const int32_t *ids, int B, int T) {
    oct_tensor *x = oct__gpt_embed(m, g, m->wte, m->wpe, ids, B, T, 0); /* (B,T,C) */
    for (int i = 0; i < m->cfg.n_layer; i++) {
        const oct_gpt_block *b = &m->h[i];
        oct_tensor *h = oct_layernorm(g, x, b->ln1_w, b->ln1_b, OCT_GPT_LN_EPS);
        h = oct__gpt_linear(m, g, &b->qkv, h);
        if (m->cfg.rope) h = oct_rope(g, h, m->cfg.n_head);
        h = oct_attention(g, h, m->cfg.n_head);
        x = oct_add(g, x, oct_dropout(g, oct__gpt_linear(m, g, &b->proj, h), m->cfg.dropout));
        x = oct_add(g, x, oct__gpt_mlp(m, g, b, x));
    }
    return oct__gpt_logits(m, g, x); /* (B,T,V) */
}

int oct_gpt_muon_blocks(const oct_tensor *p, const void *gpt) {
    const oct_gpt *m = gpt;
    for (int i = 0; i < m->cfg.n_layer; i++) {
        const oct_gpt_block *b = &m->h[i];
        if (p == b->qkv.w) return 3;
        if (p == b->proj.w || p == b->fc.w || p == b->fc_proj.w) return 1;
    }
    return 0;
}

oct_tensor *oct_gpt_loss(oct_graph *g, oct_tensor *logits, const int32_t *targets, float penalty,
                         float *ce) {
    OCT_ASSERT(logits->ndim == 3);
    int shape[2] = {logits->shape[0] * logits->shape[1], logits->shape[2]};
    return oct_cross_entropy_penalized(g, oct_reshape(g, logits, 2, shape), targets, penalty, ce);
}
