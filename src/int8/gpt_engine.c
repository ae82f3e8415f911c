/* The integer GPT engine (see the GPT section of include/octet/int8.h): the structural check of
 * an oct_i8_gpt, the key/value cache, and the forward pass over new tokens. Every linear layer
 * is an oct_qlinear call (the QAT forward's integer layer); LayerNorm, GELU and attention are the
 * shared float row kernels of octet/nonlinear.h, applied in the QAT GPT's order to the same
 * dequantized values, so the logits equal the QAT model's bit for bit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "int8_internal.h"
#include "octet/nonlinear.h"
#include "octet/quant.h"

enum { QKV, PROJ, FC, FC_PROJ };

void oct_i8_gpt_free(oct_i8_gpt *m) {
    if (!m) return;
    for (int j = 0; m->lin && j < OCT_I8_GPT_PER_BLOCK * m->n_layer + 1; j++)
        oct_qlinear_free(&m->lin[j]);
    free(m->lin);
    free(m->wte);
    free(m->wpe);
    free(m->ln);
    free(m->lnf);
    free(m->in_qmin);
    free(m->in_qmax);
    free(m->vocab_bytes);
    free(m->source);
    free(m->wte_q);
    free(m->wpe_q);
    free(m->wte_s);
    free(m->wpe_s);
    memset(m, 0, sizeof *m);
}

void oct_gpt_linear_name(int n_layer, int j, char *buf, size_t n) {
    static const char *const suffix[OCT_I8_GPT_PER_BLOCK] = {"attn.qkv", "attn.proj", "mlp.fc",
                                                             "mlp.proj"};
    if (j == OCT_I8_GPT_PER_BLOCK * n_layer)
        snprintf(buf, n, "lm_head");
    else
        snprintf(buf, n, "h.%d.%s", j / OCT_I8_GPT_PER_BLOCK, suffix[j % OCT_I8_GPT_PER_BLOCK]);
}

void oct_i8_gpt_linear_name(const oct_i8_gpt *m, int j, char *buf, size_t n) {
    oct_gpt_linear_name(m->n_layer, j, buf, n);
}

/* in -> out of linear j. */
static void linear_shape(const oct_i8_gpt *m, int j, int *in, int *out) {
    int C = m->width;
    static const int k_in[4] = {1, 1, 1, 0}, k_out[4] = {3, 1, 0, 1};
    if (j == OCT_I8_GPT_PER_BLOCK * m->n_layer) {
        *in = C;
        *out = m->vocab;
        return;
    }
    int r = j % OCT_I8_GPT_PER_BLOCK;
    *in = k_in[r] ? C : m->mlp;
    *out = k_out[r] ? k_out[r] * C : m->mlp;
}

static oct_status check_embeddings(const oct_i8_gpt *m);

oct_status oct_i8_gpt_check(const oct_i8_gpt *m) {
    if (m->vocab < 1 || m->vocab > 65536 || m->context < 1 || m->n_layer < 1 || m->n_head < 1 ||
        m->width < 1 || m->mlp < 1 || m->width % m->n_head || m->width > OCT_I8_MAX_K ||
        m->mlp > OCT_I8_MAX_K || (m->rope && m->width / m->n_head % 2) || (m->no_wpe && !m->rope))
        return oct_fail(OCT_EINVAL,
                        "int8 gpt: config vocab %d, context %d, layers %d, heads %d, width %d, "
                        "mlp %d%s%s is not runnable",
                        m->vocab, m->context, m->n_layer, m->n_head, m->width, m->mlp,
                        m->rope ? ", rope" : "", m->no_wpe ? ", no wpe" : "");
    if (!(m->ln_eps > 0) || !isfinite(m->ln_eps))
        return oct_fail(OCT_EINVAL, "int8 gpt: LayerNorm epsilon %g", (double)m->ln_eps);
    if (!m->wte || !m->wpe != m->no_wpe || !m->ln || !m->lnf || !m->lin || !m->in_qmin ||
        !m->in_qmax || !m->vocab_bytes)
        return oct_fail(OCT_EINVAL, "int8 gpt: model is not built");
    int J = OCT_I8_GPT_PER_BLOCK * m->n_layer + 1;
    for (int j = 0; j < J; j++) {
        const oct_qlinear *l = &m->lin[j];
        char name[48], what[64];
        oct_i8_gpt_linear_name(m, j, name, sizeof name);
        int in, out;
        linear_shape(m, j, &in, &out);
        if (l->in != in || l->out != out)
            return oct_fail(OCT_EINVAL, "%s: %d -> %d, the config needs %d -> %d", name, l->in,
                            l->out, in, out);
        oct_status s = OCT_OK;
        if (l->dynamic != m->dynamic)
            s = oct_fail(OCT_EINVAL, "%s: a %s linear in a model with %s activations", name,
                         l->dynamic ? "dynamic" : "static", m->dynamic ? "dynamic" : "static");
        if (s == OCT_OK) s = oct__qlinear_check(l, name, j == J - 1);
        if (s == OCT_OK && l->relu) s = oct_fail(OCT_EINVAL, "%s: a GPT linear has no relu", name);
        snprintf(what, sizeof what, "%s input", name);
        if (s == OCT_OK && !m->dynamic)
            s = oct__i8_check_codes(what, l->a_zp, m->in_qmin[j], m->in_qmax[j]);
        else if (s == OCT_OK && (m->in_qmin[j] != 0 || m->in_qmax[j] != 255))
            s = oct_fail(OCT_EINVAL, "%s: a dynamic input's codes are [0, 255], not [%d, %d]", what,
                         (int)m->in_qmin[j], (int)m->in_qmax[j]);
        if (s != OCT_OK) return s;
    }
    return check_embeddings(m);
}

/* ---- int8 embeddings ------------------------------------------------------------------------- */

int oct__i8_gpt_embeddings(oct_i8_gpt *m, oct__i8_emb t[2]) {
    t[0] = (oct__i8_emb){"wte", m->vocab, &m->wte_q, &m->wte_s, &m->wte};
    t[1] = (oct__i8_emb){"wpe", m->context, &m->wpe_q, &m->wpe_s, &m->wpe};
    return m->no_wpe ? 1 : 2;
}

void oct__i8_gpt_dequantize_embeddings(oct_i8_gpt *m) {
    oct__i8_emb t[2];
    int nt = oct__i8_gpt_embeddings(m, t);
    int64_t C = m->width;
    for (int k = 0; k < nt; k++)
        for (int64_t i = 0; i < t[k].rows * C; i++)
            (*t[k].x)[i] = oct_dequantize((*t[k].q)[i], (*t[k].s)[i / C], 0);
}

static oct_status check_embeddings(const oct_i8_gpt *m) {
    int n = !!m->wte_q + !!m->wpe_q + !!m->wte_s + !!m->wpe_s;
    if (n == 0) return OCT_OK;
    if (n != (m->no_wpe ? 2 : 4) || !m->wte_q || !m->wte_s)
        return oct_fail(OCT_EINVAL, "int8 gpt: int8 embeddings need codes and scales of %s",
                        m->no_wpe ? "wte (and no wpe)" : "both wte and wpe");
    oct__i8_emb t[2];
    int nt = oct__i8_gpt_embeddings((oct_i8_gpt *)m, t); /* read only */
    int64_t C = m->width;
    for (int k = 0; k < nt; k++)
        for (int64_t i = 0; i < t[k].rows * C; i++) {
            float s = (*t[k].s)[i / C];
            int8_t q = (*t[k].q)[i];
            if (!(s > 0.0f) || !isfinite(s))
                return oct_fail(OCT_EINVAL, "int8 gpt: %s row %lld has scale %g", t[k].name,
                                (long long)(i / C), (double)s);
            if (q < -127)
                return oct_fail(OCT_EINVAL,
                                "int8 gpt: %s code -128 at row %lld, outside "
                                "[-127, 127]",
                                t[k].name, (long long)(i / C));
            float v = oct_dequantize(q, s, 0);
            if (memcmp(&v, &(*t[k].x)[i], sizeof v))
                return oct_fail(OCT_EINVAL,
                                "int8 gpt: %s row %lld is not its codes times its "
                                "scale",
                                t[k].name, (long long)(i / C));
        }
    return OCT_OK;
}

oct_status oct_i8_gpt_quantize_embeddings(oct_i8_gpt *m, const float *wte, const float *wpe,
                                          int bits) {
    oct_qscheme q;
    oct_status s = oct_qscheme_init(&q, bits, true, true, true, true);
    if (s != OCT_OK) return s;
    oct__i8_emb t[2];
    int nt = oct__i8_gpt_embeddings(m, t);
    const float *src[2] = {wte, wpe};
    int64_t C = m->width;
    int32_t *z = calloc((size_t)(m->vocab > m->context ? m->vocab : m->context), sizeof *z);
    for (int k = 0; k < nt; k++) {
        size_t n = (size_t)(t[k].rows * C);
        if (!*t[k].q) *t[k].q = malloc(n);
        if (!*t[k].s) *t[k].s = malloc((size_t)t[k].rows * sizeof(float));
        if (!*t[k].x) *t[k].x = malloc(n * sizeof(float));
        if (!z || !*t[k].q || !*t[k].s || !*t[k].x) {
            free(z);
            return oct_fail(OCT_ENOMEM, "int8 gpt: out of memory quantizing embeddings");
        }
        oct_quant_row_scales(&q, src[k], t[k].rows, C, *t[k].s);
        oct_quantize_s8(src[k], t[k].rows, C, *t[k].s, z, q.qmin, q.qmax, *t[k].q);
    }
    free(z);
    oct__i8_gpt_dequantize_embeddings(m);
    return OCT_OK;
}

/* ---- the cache ------------------------------------------------------------------------------- */

void oct_i8_gpt_cache_free(oct_i8_gpt_cache *c) {
    if (!c) return;
    free(c->k);
    free(c->v);
    free(c->x);
    free(c->h);
    free(c->f);
    free(c->p);
    free(c->rope);
    free(c->a);
    free(c->y);
    free(c->acc);
    free(c->gelu_lut);
    free(c->deq);
    free(c->row_scale);
    free(c->row_zp);
    memset(c, 0, sizeof *c);
}

oct_status oct_i8_gpt_cache_init(oct_i8_gpt_cache *c, const oct_i8_gpt *m, int max_rows) {
    OCT_ASSERT(max_rows >= 1);
    memset(c, 0, sizeof *c);
    oct_status s = oct_i8_gpt_check(m);
    if (s != OCT_OK) return s;
    size_t L = (size_t)m->n_layer, T = (size_t)m->context, C = (size_t)m->width;
    size_t R = (size_t)max_rows, wide = 3 * C > (size_t)m->mlp ? 3 * C : (size_t)m->mlp;
    size_t acc_w = wide > (size_t)m->vocab ? wide : (size_t)m->vocab;
    c->m = m;
    c->max_rows = max_rows;
    c->threads = 1;
    c->k = calloc(L * T * C, sizeof *c->k); /* blocks of keys read past the last one */
    c->v = malloc(L * T * C * sizeof *c->v);
    c->x = malloc(R * C * sizeof *c->x);
    c->h = malloc(R * wide * sizeof *c->h);
    c->f = malloc(R * wide * sizeof *c->f);
    c->p = malloc((size_t)m->n_head * T * sizeof *c->p);
    int hs = m->width / m->n_head;
    c->rope = m->rope ? malloc(T * (size_t)hs * sizeof *c->rope) : NULL;
    c->a = malloc(R * wide);
    c->y = malloc(R * wide);
    c->acc = malloc(R * acc_w * sizeof *c->acc);
    c->gelu_lut = malloc(L * 256);
    int J = OCT_I8_GPT_PER_BLOCK * m->n_layer;
    c->deq = malloc((size_t)J * 256 * sizeof *c->deq);
    c->row_scale = malloc(R * sizeof *c->row_scale);
    c->row_zp = malloc(R * sizeof *c->row_zp);
    if (!c->k || !c->v || !c->x || !c->h || !c->f || !c->p || !c->a || !c->y || !c->acc ||
        !c->gelu_lut || !c->deq || !c->row_scale || !c->row_zp || (m->rope && !c->rope)) {
        oct_i8_gpt_cache_free(c);
        return oct_fail(OCT_ENOMEM, "int8 gpt: out of memory for the cache");
    }
    for (int t = 0; m->rope && t < m->context; t++)
        oct_nl_rope_angles(t, hs, c->rope + (size_t)t * hs);
    if (m->dynamic) return OCT_OK; /* no output codes, so no tables */
    /* Output code -> real value of each block linear: oct_dequantize, as the QAT op's table. */
    for (int j = 0; j < J; j++)
        for (int code = 0; code < 256; code++)
            c->deq[j * 256 + code] = oct_dequantize(code, m->lin[j].y_scale, m->lin[j].y_zp);
    /* mlp.fc output code -> dequantize -> GELU -> quantize for mlp.proj: the very functions
     * the QAT forward applies element by element. */
    for (int i = 0; i < m->n_layer; i++) {
        const oct_qlinear *fc = &m->lin[OCT_I8_GPT_PER_BLOCK * i + FC];
        int jp = OCT_I8_GPT_PER_BLOCK * i + FC_PROJ;
        const oct_qlinear *pr = &m->lin[jp];
        float g[256];
        for (int code = 0; code < 256; code++)
            g[code] = oct_dequantize(code, fc->y_scale, fc->y_zp);
        (m->exact_gelu ? oct_nl_gelu_erf : oct_nl_gelu)(g, 256, g);
        oct_quantize_u8(g, 1, 256, &pr->a_scale, &pr->a_zp, m->in_qmin[jp], m->in_qmax[jp],
                        c->gelu_lut + (size_t)i * 256);
    }
    return OCT_OK;
}

/* Codes c->a (n,in) of float rows x (n,in) for static linear j. */
static void quantize_in(oct_i8_gpt_cache *c, int j, const float *x, int n) {
    const oct_i8_gpt *m = c->m;
    const oct_qlinear *l = &m->lin[j];
    oct_quantize_u8(x, 1, (int64_t)n * l->in, &l->a_scale, &l->a_zp, m->in_qmin[j], m->in_qmax[j],
                    c->a);
}

/* y (n,out) = dequantized output codes of static linear j on the codes in c->a. */
static void linear_codes(oct_i8_gpt_cache *c, int j, int n, float *y) {
    const oct_qlinear *l = &c->m->lin[j];
    oct_qlinear_forward(l, c->a, n, c->acc, c->y, c->threads);
    const float *deq = c->deq + (size_t)j * 256;
    for (int64_t i = 0; i < (int64_t)n * l->out; i++) y[i] = deq[c->y[i]];
}

/* y (n,out) = the real output of linear j on float rows x (n,in): a static linear quantizes x
 * with its input scale and dequantizes its output codes, a dynamic one quantizes x per row and
 * dequantizes its accumulators. */
static void linear(oct_i8_gpt_cache *c, int j, const float *x, int n, float *y) {
    if (c->m->dynamic) {
        oct_qlinear_dynamic(&c->m->lin[j], x, n, c->a, c->row_scale, c->row_zp, c->acc, y,
                            c->threads);
        return;
    }
    quantize_in(c, j, x, n);
    linear_codes(c, j, n, y);
}

/* h (n,C) = mlp.proj(GELU(mlp.fc(h))) of block i, using f (n,M) as scratch. A static model
 * maps mlp.fc's output codes through the GELU table straight to mlp.proj's input codes; a
 * dynamic one applies GELU to mlp.fc's float output. */
static void mlp(oct_i8_gpt_cache *c, int i, float *h, int n, float *f) {
    const oct_i8_gpt *m = c->m;
    int j = OCT_I8_GPT_PER_BLOCK * i;
    if (m->dynamic) {
        linear(c, j + FC, h, n, f);
        (m->exact_gelu ? oct_nl_gelu_erf : oct_nl_gelu)(f, (int64_t)n * m->mlp, f);
        linear(c, j + FC_PROJ, f, n, h);
        return;
    }
    quantize_in(c, j + FC, h, n);
    oct_qlinear_forward(&m->lin[j + FC], c->a, n, c->acc, c->y, c->threads);
    /* Locals: stores through a uint8_t pointer may alias anything, so c->a, c->y and m->mlp
     * would be loaded again for every element. */
    const uint8_t *lut = c->gelu_lut + (size_t)i * 256, *codes = c->y;
    uint8_t *a = c->a;
    for (int64_t e = 0, count = (int64_t)n * m->mlp; e < count; e++) a[e] = lut[codes[e]];
    linear_codes(c, j + FC_PROJ, n, h);
}

/* x (n,C) += y (n,C). */
static void residual(float *x, const float *y, int64_t count) {
    for (int64_t i = 0; i < count; i++) x[i] = x[i] + y[i];
}

/* LayerNorm of each row of x (n,C) with gain/bias ln (2,C) into y. */
static void layernorm(const oct_i8_gpt *m, const float *ln, const float *x, int n, float *y) {
    int C = m->width;
    for (int r = 0; r < n; r++)
        oct_nl_layernorm_row(x + (int64_t)r * C, ln, ln + C, C, m->ln_eps, y + (int64_t)r * C, NULL,
                             NULL);
}

/* One chunk of n <= max_rows tokens at positions len..len+n-1. */
static void run_chunk(oct_i8_gpt_cache *c, const int32_t *ids, int n, int32_t *logits_acc,
                      float *logits) {
    const oct_i8_gpt *m = c->m;
    int C = m->width, T = m->context, t0 = c->len;
    float *x = c->x, *h = c->h, *f = c->f;
    for (int r = 0; r < n; r++) {
        OCT_ASSERT(ids[r] >= 0 && ids[r] < m->vocab);
        const float *te = m->wte + (int64_t)ids[r] * C;
        if (m->no_wpe) {
            memcpy(x + (int64_t)r * C, te, (size_t)C * sizeof *x);
            continue;
        }
        const float *pe = m->wpe + (int64_t)(t0 + r) * C;
        for (int i = 0; i < C; i++) x[(int64_t)r * C + i] = te[i] + pe[i];
    }
    for (int i = 0; i < m->n_layer; i++) {
        int j = OCT_I8_GPT_PER_BLOCK * i;
        const float *ln = m->ln + (int64_t)i * 4 * C;
        float *kl = c->k + (int64_t)i * C * T, *vl = c->v + (int64_t)i * T * C;
        layernorm(m, ln, x, n, h);
        linear(c, j + QKV, h, n, f); /* (n,3C) */
        for (int r = 0; r < n; r++) {
            float *row = f + (int64_t)r * 3 * C;
            if (m->rope) /* the QAT GPT's oct_rope on the same dequantized q and k */
                oct_nl_rope_row(row, C, m->n_head, c->rope + (int64_t)(t0 + r) * (C / m->n_head),
                                false);
            for (int d = 0; d < C; d++) kl[(int64_t)d * T + t0 + r] = row[C + d];
            memcpy(vl + (int64_t)(t0 + r) * C, row + 2 * C, (size_t)C * sizeof(float));
        }
        for (int r = 0; r < n; r++)
            oct_nl_attention_row(f + (int64_t)r * 3 * C, kl, T, vl, C, t0 + r + 1, C, m->n_head,
                                 c->p, T, h + (int64_t)r * C);
        linear(c, j + PROJ, h, n, f);
        residual(x, f, (int64_t)n * C);
        layernorm(m, ln + 2 * C, x, n, h);
        mlp(c, i, h, n, f);
        residual(x, h, (int64_t)n * C);
    }
    int jh = OCT_I8_GPT_PER_BLOCK * m->n_layer;
    const oct_qlinear *head = &m->lin[jh];
    layernorm(m, m->lnf, x, n, h);
    if (m->dynamic) {
        oct_qlinear_dynamic(head, h, n, c->a, c->row_scale, c->row_zp, logits_acc, logits,
                            c->threads);
    } else {
        quantize_in(c, jh, h, n);
        oct_qlinear_acc(head, c->a, n, logits_acc, c->threads);
        if (logits)
            oct_acc_to_real_rows(logits_acc, n, head->out, head->a_scale, head->w_scale, logits);
    }
    c->len += n;
}

void oct_i8_gpt_run(oct_i8_gpt_cache *c, const int32_t *ids, int n, int32_t *logits_acc,
                    float *logits) {
    OCT_ASSERT(n >= 0 && c->len + n <= c->m->context);
    int V = c->m->vocab;
    for (int r = 0; r < n; r += c->max_rows) {
        int k = n - r < c->max_rows ? n - r : c->max_rows;
        run_chunk(c, ids + r, k, logits_acc + (int64_t)r * V,
                  logits ? logits + (int64_t)r * V : NULL);
    }
}

oct_status oct_i8_gpt_generate(oct_i8_gpt_cache *c, const int32_t *prompt, int n_prompt, int n_new,
                               float temperature, int top_k, oct_i8_sample_fn sample, void *rng,
                               int32_t *out) {
    const oct_i8_gpt *m = c->m;
    int V = m->vocab, T = m->context;
    if (n_prompt < 1) return oct_fail(OCT_EINVAL, "int8 gpt generate: the prompt is empty");
    if (n_new < 0) return oct_fail(OCT_EINVAL, "int8 gpt generate: %d new tokens", n_new);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= V)
            return oct_fail(OCT_EINVAL, "int8 gpt generate: prompt token %d at %d outside [0, %d)",
                            prompt[i], i, V);
    int64_t total = (int64_t)n_prompt + n_new;
    int32_t *hist = malloc((size_t)total * sizeof *hist);
    int32_t *acc = malloc((size_t)T * V * sizeof *acc);
    float *logits = malloc((size_t)T * V * sizeof *logits);
    if (!hist || !acc || !logits) {
        free(hist);
        free(acc);
        free(logits);
        return oct_fail(OCT_ENOMEM, "int8 gpt generate: out of memory");
    }
    memcpy(hist, prompt, (size_t)n_prompt * sizeof *hist);
    /* When the context is full the window slides: the cache restarts from the last keep
     * tokens (a prompt longer than the context starts that way). */
    int keep = T / 2 > 0 ? T / 2 : 1;
    int first = n_prompt > T ? n_prompt - keep : 0;
    c->len = 0;
    oct_i8_gpt_run(c, hist + first, n_prompt - first, acc, logits);
    const float *last = logits + (int64_t)(n_prompt - first - 1) * V;
    for (int64_t n = n_prompt; n < total; n++) {
        hist[n] = sample(last, V, temperature, top_k, rng);
        if (out) out[n - n_prompt] = hist[n];
        if (n + 1 == total) break;
        if (c->len < T) {
            oct_i8_gpt_run(c, &hist[n], 1, acc, logits);
            last = logits;
        } else {
            c->len = 0;
            oct_i8_gpt_run(c, hist + n + 1 - keep, keep, acc, logits);
            last = logits + (int64_t)(keep - 1) * V;
        }
    }
    free(hist);
    free(acc);
    free(logits);
    return OCT_OK;
}
