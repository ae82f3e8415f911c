/* GPT inference with a key/value cache: one token per step, sampling, and the generation loop
 * with a sliding window.
 *
 * A step computes only the new position: the token and position embedding, and per block
 * ln_1, the qkv linear for this row (its query and key rotated when the model uses RoPE),
 * attention of its query over the cached keys 0..t, proj, residual and the MLP branch; then ln_f
 * and the head. The cached attention is the row kernel the int8 engine uses
 * (oct_nl_attention_row, over keys stored transposed), so it vectorizes over positions.
 * Everything else goes through the helpers the training forward uses (gpt_internal.h) on a
 * private graph in no-grad mode: nothing is recorded, the graph is only scratch memory that is
 * rewound every step.
 */
#include "gpt_internal.h"
#include "octet/nonlinear.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

oct_status oct_gpt_cache_init(oct_gpt_cache *c, const oct_gpt *m) {
    memset(c, 0, sizeof *c);
    size_t n = (size_t)m->cfg.n_layer * (size_t)m->cfg.context * (size_t)m->cfg.width;
    c->m = m;
    c->k = calloc(n, sizeof *c->k); /* blocks of keys read past the last one */
    c->v = malloc(n * sizeof *c->v);
    c->logits = malloc((size_t)m->cfg.vocab * sizeof *c->logits);
    int T = m->cfg.context, hs = m->cfg.width / m->cfg.n_head;
    if (m->cfg.rope) c->rope = malloc((size_t)T * hs * sizeof *c->rope);
    if (!c->k || !c->v || !c->logits || (m->cfg.rope && !c->rope)) {
        oct_gpt_cache_free(c);
        return oct_fail(OCT_ENOMEM, "gpt cache: cannot allocate %zu floats", 2 * n);
    }
    for (int t = 0; m->cfg.rope && t < T; t++) oct_nl_rope_angles(t, hs, c->rope + (size_t)t * hs);
    oct_graph_init(&c->g, (size_t)1 << 20, 0);
    c->g.no_grad = true;
    c->g.training = false;
    return OCT_OK;
}

void oct_gpt_cache_free(oct_gpt_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->logits);
    free(c->rope);
    oct_graph_free(&c->g);
    memset(c, 0, sizeof *c);
}

void oct_gpt_cache_reset(oct_gpt_cache *c) {
    c->len = 0;
}

const float *oct_gpt_cache_step(oct_gpt_cache *c, int32_t id) {
    const oct_gpt *m = c->m;
    int C = m->cfg.width, T = m->cfg.context, t = c->len;
    OCT_ASSERT(t < T && id >= 0 && id < m->cfg.vocab);
    oct_graph *g = &c->g;
    oct_graph_reset(g);
    int row[3] = {1, 1, C};
    oct_tensor *x = oct__gpt_embed(m, g, m->wte, m->wpe, &id, 1, 1, t); /* (1,1,C) */
    oct_tensor *att = oct_tensor_new(&g->arena, 3, row);
    int nh = m->cfg.n_head, hs = C / nh;
    float *p = oct_arena_alloc(&g->arena, (size_t)nh * (t + 1) * sizeof *p);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const oct_gpt_block *b = &m->h[l];
        float *kl = c->k + (int64_t)l * T * C, *vl = c->v + (int64_t)l * T * C;
        oct_tensor *h = oct_layernorm(g, x, b->ln1_w, b->ln1_b, OCT_GPT_LN_EPS);
        float *qkv = oct__gpt_linear(m, g, &b->qkv, h)->data; /* (3C) */
        /* oct_rope of this one row */
        if (m->cfg.rope) oct_nl_rope_row(qkv, C, nh, c->rope + (int64_t)t * hs, false);
        for (int d = 0; d < C; d++) kl[(int64_t)d * T + t] = qkv[C + d];
        memcpy(vl + (int64_t)t * C, qkv + 2 * C, (size_t)C * sizeof(float));
        oct_nl_attention_row(qkv, kl, T, vl, C, t + 1, C, nh, p, t + 1, att->data);
        x = oct_add(g, x, oct__gpt_linear(m, g, &b->proj, att));
        x = oct_add(g, x, oct__gpt_mlp(m, g, b, x));
    }
    oct_tensor *logits = oct__gpt_logits(m, g, x);
    memcpy(c->logits, logits->data, (size_t)m->cfg.vocab * sizeof(float));
    c->len++;
    return c->logits;
}

/* A float's bits with the magnitude bits of negative ones flipped: as integers these keys order
 * like the floats (-Inf < ... < -0 < +0 < ... < +Inf). The flip is its own inverse. */
static int32_t flip_negative(int32_t bits) {
    return bits < 0 ? bits ^ INT32_MAX : bits;
}

static int32_t order_key(float x) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    return flip_negative(i);
}

/* How many of x (V) have an order key of at least key. */
static int count_from(const float *x, int V, int32_t key) {
    int n = 0;
    for (int i = 0; i < V; i++) n += order_key(x[i]) >= key;
    return n;
}

/* The k-th largest value of x (V, no NaN, 1 <= k <= V), counting repeats: the largest order
 * key that at least k values reach is a value's own key, found by bisection over the 2^32 keys
 * in 32 passes over x. */
static float kth_largest(const float *x, int V, int k) {
    int64_t lo = INT32_MIN, hi = INT32_MAX;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (count_from(x, V, (int32_t)mid) >= k)
            lo = mid;
        else
            hi = mid - 1;
    }
    int32_t bits = flip_negative((int32_t)lo);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

int32_t oct_gpt_sample(const float *logits, int V, float temperature, int top_k, oct_rng *rng) {
    OCT_ASSERT(V > 0);
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return best;
    float floor_value = top_k > 0 && top_k < V ? kth_largest(logits, V, top_k) : -INFINITY;
    double inv_t = 1.0 / (double)temperature, sum = 0.0;
    for (int i = 0; i < V; i++)
        if (logits[i] >= floor_value)
            sum += exp(((double)logits[i] - (double)logits[best]) * inv_t);
    double r = (double)oct_rng_uniform(rng) * sum;
    int last = best;
    for (int i = 0; i < V; i++) {
        if (logits[i] < floor_value) continue;
        r -= exp(((double)logits[i] - (double)logits[best]) * inv_t);
        if (r < 0.0) return i;
        last = i;
    }
    return last; /* r only survives through rounding: the last candidate */
}

/* Appends hist[n - 1] to the cache and returns the logits after it. When the cache is full it
 * first restarts from hist[n - keep .. n - 1), keep = max(1, context / 2) tokens in all. */
static const float *cache_push(oct_gpt_cache *c, const int32_t *hist, int64_t n) {
    int T = c->m->cfg.context;
    if (c->len == T) {
        int keep = T / 2 > 0 ? T / 2 : 1;
        oct_gpt_cache_reset(c);
        for (int64_t i = n - keep; i < n - 1; i++) oct_gpt_cache_step(c, hist[i]);
    }
    return oct_gpt_cache_step(c, hist[n - 1]);
}

oct_status oct_gpt_generate(const oct_gpt *m, const int32_t *prompt, int n_prompt, int n_new,
                            float temperature, int top_k, oct_rng *rng, int32_t *out,
                            oct_token_fn on_token, void *ctx) {
    if (n_prompt < 1) return oct_fail(OCT_EINVAL, "gpt generate: the prompt is empty");
    if (n_new < 0) return oct_fail(OCT_EINVAL, "gpt generate: %d new tokens requested", n_new);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= m->cfg.vocab)
            return oct_fail(OCT_EINVAL,
                            "gpt generate: prompt token %d at offset %d outside [0, %d)", prompt[i],
                            i, m->cfg.vocab);
    int64_t total = (int64_t)n_prompt + n_new;
    int32_t *hist = malloc((size_t)total * sizeof *hist);
    if (!hist)
        return oct_fail(OCT_ENOMEM, "gpt generate: cannot allocate %lld tokens", (long long)total);
    oct_gpt_cache c;
    oct_status s = oct_gpt_cache_init(&c, m);
    if (s != OCT_OK) {
        free(hist);
        return s;
    }
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    const float *logits = NULL;
    for (int64_t n = 1; n <= n_prompt; n++) logits = cache_push(&c, hist, n);
    for (int64_t n = n_prompt; n < total; n++) {
        hist[n] = oct_gpt_sample(logits, m->cfg.vocab, temperature, top_k, rng);
        if (out) out[n - n_prompt] = hist[n];
        if (on_token) on_token(ctx, hist[n]);
        if (n + 1 < total) logits = cache_push(&c, hist, n + 1);
    }
    oct_gpt_cache_free(&c);
    free(hist);
    return OCT_OK;
}
