/* The quantized linear op of quantization-aware training, and the activation/weight quantizer
 * state it reads. The forward pass runs the integer layer shared with the deployed engine
 * (oct_qlinear_build + oct_qlinear_forward/oct_qlinear_acc from src/int8), so training sees
 * exactly the integers the exported model computes; the backward pass is the straight-through
 * estimator on dequantized values (cblas_sgemm), masked where a quantizer clamped. See
 * include/octet/qat.h for the contract. */
#include "octet/qat.h"
#include "ops_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- quantizer state -> parameters ---------------------------------------------------------- */

void oct_act_quant_params(const oct_act_quant *q, float *s, int32_t *z) {
    switch (q->mode) {
    case OCT_QAT_A_EMA:
    case OCT_QAT_A_MINMAX:
    case OCT_QAT_A_HIST:
        oct_observer_qparams(&q->obs, &q->scheme, s, z);
        return;
    case OCT_QAT_A_LSQ: {
        float unused;
        oct_observer_qparams(&q->obs, &q->scheme, &unused, z);
        float v = q->scale->data[0];
        *s = v > OCT_QUANT_MIN_SCALE ? v : OCT_QUANT_MIN_SCALE;
        return;
    }
    case OCT_QAT_A_PACT: {
        float a = q->alpha->data[0];
        *s = (a > OCT_QUANT_MIN_SCALE ? a : OCT_QUANT_MIN_SCALE) / (float)q->scheme.qmax;
        *z = 0;
        return;
    }
    case OCT_QAT_A_COUNT:
        break;
    }
    OCT_ASSERT(!"activation quantizer mode out of range");
}

void oct_qat_linear_weight_scales(const oct_qat_linear *l, float *s) {
    const oct_tensor *w = l->fp->w;
    int out = w->shape[0], in = w->shape[1];
    if (l->wmode != OCT_QAT_W_LSQ) {
        oct_quant_row_scales(&l->wscheme, w->data, out, in, s);
        if (!l->per_tensor) return;
        float top = s[0];
        for (int c = 1; c < out; c++) top = s[c] > top ? s[c] : top;
        for (int c = 0; c < out; c++) s[c] = top;
        return;
    }
    for (int c = 0; c < out; c++) {
        float v = l->wscale->data[c];
        /* An uninitialized (0) step behaves as its initial value would. */
        if (v == 0.0f) v = oct_lsq_init_scale(w->data + (int64_t)c * in, in, l->wscheme.qmax);
        s[c] = v > OCT_QUANT_MIN_SCALE ? v : OCT_QUANT_MIN_SCALE;
    }
}

/* Whether the layer's weight codes come from a non-uniform rule (pow2, kmeans). */
static bool nonuniform(const oct_qat_linear *l) {
    return l->wmode == OCT_QAT_W_POW2 || l->wmode == OCT_QAT_W_KMEANS;
}

/* The codes of a pow2 or kmeans layer's weights under scales ws. */
static void nonuniform_codes(const oct_qat_linear *l, const float *ws, int8_t *codes) {
    const oct_tensor *w = l->fp->w;
    if (l->wmode == OCT_QAT_W_KMEANS) {
        oct_quantize_codebook_s8(w->data, w->shape[0], w->shape[1], ws, l->wlevels, codes);
        return;
    }
    int max_exp = 0;
    while ((1 << max_exp) < l->wscheme.qmax) max_exp++;
    oct_quantize_pow2_s8(w->data, w->shape[0], w->shape[1], ws, max_exp, codes);
}

/* The integer layer for weight scales ws and the quantizers' current state. A non-uniform rule
 * writes its weight codes into codes (out,in), which the caller provides (NULL otherwise). */
static oct_status build(const oct_qat_linear *l, oct_qlinear *ql, const float *ws, bool quant_out,
                        int8_t *codes) {
    const oct_tensor *w = l->fp->w;
    float s_a, s_y = 0.0f;
    int32_t z_a, z_y = 0, y_lo = 0, y_hi = 0;
    oct_act_quant_params(l->in_q, &s_a, &z_a);
    if (quant_out) {
        oct_act_quant_params(l->out_q, &s_y, &z_y);
        y_lo = l->out_q->scheme.qmin;
        y_hi = l->out_q->scheme.qmax;
    }
    const float *b = l->fp->b ? l->fp->b->data : NULL;
    int out = w->shape[0], in = w->shape[1];
    if (!nonuniform(l))
        return oct_qlinear_build(ql, out, in, w->data, b, ws, l->wscheme.qmin, l->wscheme.qmax, s_a,
                                 z_a, quant_out, l->relu, s_y, z_y, y_lo, y_hi);
    nonuniform_codes(l, ws, codes);
    return oct_qlinear_build_codes(ql, out, in, codes, b, ws, s_a, z_a, quant_out, l->relu, s_y,
                                   z_y, y_lo, y_hi);
}

oct_status oct_qat_linear_build(const oct_qat_linear *l, oct_qlinear *out) {
    const oct_tensor *w = l->fp->w;
    float *ws = malloc((size_t)w->shape[0] * sizeof *ws);
    int8_t *codes = nonuniform(l) ? malloc((size_t)w->size) : NULL;
    oct_status s = OCT_OK;
    if (!ws || (nonuniform(l) && !codes)) {
        s = oct_fail(OCT_ENOMEM, "qat: out of memory building a layer");
    } else {
        oct_qat_linear_weight_scales(l, ws);
        s = build(l, out, ws, l->out_q != NULL, codes);
    }
    free(codes);
    free(ws);
    return s;
}

/* ---- observing data (training only, by the quantizer's owner) ------------------------------- */

void oct_qat_linear_free(oct_qat_linear *l) {
    if (!l) return;
    for (int s = 0; s < OCT_DP_MAX_SHARDS; s++) oct_qlinear_free(&l->ql[s]);
}

bool oct_act_quant_needs_init(const oct_act_quant *q) {
    /* LSQ and PACT observe only until initialized; an observer needs init until its first data;
     * a histogram needs every value, which data-parallel shards do not share. */
    return oct_act_quant_observing(q) && (q->mode == OCT_QAT_A_LSQ || q->mode == OCT_QAT_A_PACT ||
                                          q->mode == OCT_QAT_A_HIST || q->obs.lo[0] > q->obs.hi[0]);
}

bool oct_qat_linear_needs_whole_batch(const oct_qat_linear *l) {
    if ((l->owns_in && oct_act_quant_needs_init(l->in_q)) ||
        (l->out_q && oct_act_quant_needs_init(l->out_q)))
        return true;
    if (l->wmode == OCT_QAT_W_LSQ)
        for (int c = 0; c < l->fp->w->shape[0]; c++)
            if (l->wscale->data[c] == 0.0f) return true;
    return false;
}

bool oct_act_quant_observing(const oct_act_quant *q) {
    switch (q->mode) {
    case OCT_QAT_A_LSQ:
        return q->scale->data[0] == 0.0f;
    case OCT_QAT_A_PACT:
        return q->alpha->data[0] == 0.0f;
    default:
        return !q->obs.frozen;
    }
}

/* Shows q the real values x (n of them, features per sample for LSQ's init rule). */
static void act_observe(oct_act_quant *q, const float *x /* (n) */, int64_t n) {
    if (q->mode == OCT_QAT_A_PACT) {
        float mx = 0.0f;
        for (int64_t i = 0; i < n; i++) mx = x[i] > mx && isfinite(x[i]) ? x[i] : mx;
        q->alpha->data[0] = mx > 0.0f ? mx : 1.0f;
        return;
    }
    oct_observer_update(&q->obs, x, n);
    if (q->mode == OCT_QAT_A_HIST) oct_histogram_add(&q->hist, x, n);
    if (q->mode != OCT_QAT_A_LSQ) return;
    q->obs.frozen = true; /* LSQ: the first batch's range fixes z */
    float unused;
    int32_t z;
    oct_observer_qparams(&q->obs, &q->scheme, &unused, &z);
    q->scale->data[0] = oct_lsq_init_scale(x, n, oct_lsq_levels(z, q->scheme.qmin, q->scheme.qmax));
}

/* A data-parallel shard's share of observing: widens q's slot for shard to [lo, hi]. */
static void act_collect_range(oct_act_quant *q, int shard, float lo, float hi) {
    q->shard_lo[shard] = lo < q->shard_lo[shard] ? lo : q->shard_lo[shard];
    q->shard_hi[shard] = hi > q->shard_hi[shard] ? hi : q->shard_hi[shard];
}

/* The same for the values x (n). */
static void act_collect(oct_act_quant *q, int shard, const float *x, int64_t n) {
    float lo, hi;
    oct_finite_range(x, n, &lo, &hi);
    act_collect_range(q, shard, lo, hi);
}

void oct_act_quant_commit(oct_act_quant *q) {
    float mn = INFINITY, mx = -INFINITY;
    for (int s = 0; s < OCT_DP_MAX_SHARDS; s++) {
        mn = q->shard_lo[s] < mn ? q->shard_lo[s] : mn;
        mx = q->shard_hi[s] > mx ? q->shard_hi[s] : mx;
        q->shard_lo[s] = INFINITY;
        q->shard_hi[s] = -INFINITY;
    }
    if (q->mode == OCT_QAT_A_EMA || q->mode == OCT_QAT_A_MINMAX)
        oct_observer_update_range(&q->obs, 0, mn, mx); /* no-op when empty or frozen */
}

oct_status oct_qat_linear_gptq(oct_qat_linear *l, double damp) {
    OCT_ASSERT(l->wmode == OCT_QAT_W_LSQ && l->xtx);
    oct_tensor *w = l->fp->w;
    return oct_gptq(w->data, w->shape[0], w->shape[1], l->xtx, l->wscale->data, l->wscheme.qmin,
                    l->wscheme.qmax, damp);
}

/* ---- the op --------------------------------------------------------------------------------- */

/* x (n) = dequantize(q, s, z) through a 256-entry table of oct_dequantize values (the same
 * floats as oct_dequantize_u8, without a call per element). */
static void dequant_u8(const uint8_t *q /* (n) */, int64_t n, float s, int32_t z, float *x) {
    float table[256];
    for (int c = 0; c < 256; c++) table[c] = oct_dequantize(c, s, z);
    for (int64_t i = 0; i < n; i++) x[i] = table[q[i]];
}

/* Saved for the backward pass (step arena). */
typedef struct ql_aux {
    oct_qat_linear *l;
    uint8_t *a;     /* (B,in) input codes */
    int32_t *acc;   /* (B,out) accumulators */
    float *ws;      /* (out) weight scales */
    int8_t *wcodes; /* (out,in) weight codes of a non-uniform rule, else NULL */
    float s_a, s_y; /* input and output scales (s_y: hidden layers) */
    int32_t z_a, z_y;
    float alpha; /* PACT output level */
} ql_aux;

/* y (B,N) = the real values of the accumulators (after the ReLU, if any): what the output
 * observer sees. */
static void acc_reals(const oct_qat_linear *l, const ql_aux *a, int B, int N, float *y) {
    oct_acc_to_real_rows(a->acc, B, N, a->s_a, a->ws, y);
    if (l->relu)
        for (int64_t i = 0; i < (int64_t)B * N; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

/* [*lo, *hi] = the range of acc_reals without computing them: oct_acc_to_real is non-decreasing
 * in acc (s_a s_w[c] > 0), as is the ReLU, so each channel's extremes are those of its extreme
 * accumulators. */
static void acc_real_range(oct_graph *g, const oct_qat_linear *l, const ql_aux *a, int B, int N,
                           float *lo, float *hi) {
    int32_t *mn = oct_arena_alloc(&g->arena, 2 * (size_t)N * sizeof *mn), *mx = mn + N;
    memcpy(mn, a->acc, (size_t)N * sizeof *mn);
    memcpy(mx, a->acc, (size_t)N * sizeof *mx);
    for (int r = 1; r < B; r++) {
        const int32_t *row = a->acc + (int64_t)r * N;
        for (int c = 0; c < N; c++) {
            mn[c] = row[c] < mn[c] ? row[c] : mn[c];
            mx[c] = row[c] > mx[c] ? row[c] : mx[c];
        }
    }
    float rlo = INFINITY, rhi = -INFINITY;
    for (int c = 0; c < N; c++) {
        float vlo = oct_acc_to_real(mn[c], a->s_a, a->ws[c]);
        float vhi = oct_acc_to_real(mx[c], a->s_a, a->ws[c]);
        if (l->relu) {
            vlo = vlo > 0.0f ? vlo : 0.0f;
            vhi = vhi > 0.0f ? vhi : 0.0f;
        }
        rlo = vlo < rlo ? vlo : rlo;
        rhi = vhi > rhi ? vhi : rhi;
    }
    *lo = rlo;
    *hi = rhi;
}

/* The tensors of l that receive gradients besides x, w and b. */
static bool learned_wants_grad(const oct_qat_linear *l) {
    const oct_act_quant *o = l->out_q;
    return (l->wscale && l->wscale->requires_grad) ||
           (o &&
            ((o->scale && o->scale->requires_grad) || (o->alpha && o->alpha->requires_grad))) ||
           (l->owns_in && l->in_q->scale && l->in_q->scale->requires_grad);
}

oct_tensor *oct_qat_linear_forward(oct_graph *g, oct_tensor *x, oct_qat_linear *l) {
    const oct_tensor *w = l->fp->w;
    int K = w->shape[1], N = w->shape[0];
    int B = (int)oct_tensor_rows(x);
    OCT_ASSERT(oct_tensor_cols(x) == K && (!l->relu || l->out_q));
    OCT_ASSERT(!l->out_q || l->relu || l->out_q->mode != OCT_QAT_A_PACT); /* PACT clips at 0 */
    OCT_ASSERT(g->shard >= 0 && g->shard < OCT_DP_MAX_SHARDS);
    /* Data-parallel shards collect ranges instead of changing quantizer state. */
    bool collect = g->training && g->shards > 1;
    OCT_ASSERT(!collect || !oct_qat_linear_needs_whole_batch(l));
    oct_qlinear *ql = &l->ql[g->shard];
    if (g->training && l->xtx) { /* GPTQ's Hessian: one graph sees the whole batch */
        OCT_ASSERT(!collect);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, K, B, 1.0f, x->data, K, 1.0f, l->xtx, K);
    }
    if (g->training && l->owns_in && oct_act_quant_observing(l->in_q)) {
        if (collect)
            act_collect(l->in_q, g->shard, x->data, x->size);
        else
            act_observe(l->in_q, x->data, x->size);
    }
    if (g->training && l->wmode == OCT_QAT_W_LSQ)
        for (int c = 0; c < N; c++)
            if (l->wscale->data[c] == 0.0f)
                l->wscale->data[c] =
                    oct_lsq_init_scale(w->data + (int64_t)c * K, K, l->wscheme.qmax);

    ql_aux *a = oct_arena_alloc(&g->arena, sizeof *a);
    *a = (ql_aux){.l = l};
    a->a = oct_arena_alloc(&g->arena, (size_t)B * K);
    a->acc = oct_arena_alloc(&g->arena, (size_t)B * N * sizeof *a->acc);
    a->ws = oct_arena_alloc(&g->arena, (size_t)N * sizeof *a->ws);
    oct_qat_linear_weight_scales(l, a->ws);
    oct_act_quant_params(l->in_q, &a->s_a, &a->z_a);
    oct_quantize_u8(x->data, 1, x->size, &a->s_a, &a->z_a, l->in_q->scheme.qmin,
                    l->in_q->scheme.qmax, a->a);

    int yshape[OCT_MAX_DIMS];
    memcpy(yshape, x->shape, (size_t)x->ndim * sizeof *yshape);
    yshape[x->ndim - 1] = N;
    oct_tensor *y = oct_tensor_new(&g->arena, x->ndim, yshape); /* (..., N) */
    oct_act_quant *oq = l->out_q;
    bool observe_out = oq && g->training && oct_act_quant_observing(oq);
    bool collect_out = observe_out && collect;
    observe_out = observe_out && !collect;
    a->wcodes = nonuniform(l) ? oct_arena_alloc(&g->arena, (size_t)N * K) : NULL;
    oct_status st = build(l, ql, a->ws, oq && !observe_out, a->wcodes);
    OCT_ASSERT(st == OCT_OK); /* scales are positive by construction */
    if (!oq) {
        oct_qlinear_acc(ql, a->a, B, a->acc, l->threads);
        oct_acc_to_real_rows(a->acc, B, N, a->s_a, a->ws, y->data);
    } else {
        uint8_t *codes = oct_arena_alloc(&g->arena, (size_t)B * N);
        if (observe_out) {
            /* Accumulators first, then the observer, then the requantization parameters of the
             * updated state: the same integers the eval forward and the export produce. */
            oct_qlinear_acc(ql, a->a, B, a->acc, l->threads);
            acc_reals(l, a, B, N, y->data);
            act_observe(oq, y->data, y->size);
            float s_y;
            int32_t z_y;
            oct_act_quant_params(oq, &s_y, &z_y);
            st = oct_qlinear_set_output(ql, true, l->relu, s_y, z_y, oq->scheme.qmin,
                                        oq->scheme.qmax);
            OCT_ASSERT(st == OCT_OK);
            oct_requantize_u8(a->acc, B, N, ql->m0, ql->shift, ql->y_zp, ql->y_qmin, ql->y_qmax,
                              ql->relu, codes);
        } else {
            oct_qlinear_forward(ql, a->a, B, a->acc, codes, l->threads);
            if (collect_out) { /* the range the observer would have seen, for the commit */
                float lo, hi;
                acc_real_range(g, l, a, B, N, &lo, &hi);
                act_collect_range(oq, g->shard, lo, hi);
            }
        }
        a->s_y = ql->y_scale;
        a->z_y = ql->y_zp;
        a->alpha = oq->alpha ? oq->alpha->data[0] : 0.0f;
        dequant_u8(codes, y->size, a->s_y, a->z_y, y->data);
    }
    oct_tensor *in[3] = {x, l->fp->w, l->fp->b};
    if (oct__wants_grad(g, 3, in) || (!g->no_grad && learned_wants_grad(l)))
        oct__record(g, OCT_OP_QLINEAR, y, l->fp->b ? 3 : 2, in)->aux = a;
    return y;
}

/* dz (B,N) = dy masked by the output clamp / ReLU / PACT rules; LSQ and PACT output parameters
 * get their gradient from the same masks. */
static void output_grad(oct_graph *g, const ql_aux *a, int B, int N, const float *dy, float *dz) {
    const oct_qat_linear *l = a->l;
    const oct_act_quant *oq = l->out_q;
    if (!oq) {
        memcpy(dz, dy, (size_t)B * N * sizeof *dz);
        return;
    }
    int32_t qmin = oq->scheme.qmin, qmax = oq->scheme.qmax;
    if (oq->mode != OCT_QAT_A_PACT && oq->mode != OCT_QAT_A_LSQ) {
        /* Observer-driven scales: only the clamp mask, computed on whole arrays. */
        int64_t n = (int64_t)B * N;
        float *v = oct_arena_alloc(&g->arena, (size_t)n * sizeof *v);
        float *mask = oct_arena_alloc(&g->arena, (size_t)n * sizeof *mask);
        oct_acc_to_real_rows(a->acc, B, N, a->s_a, a->ws, v);
        oct_quant_pass_mask(v, n, a->s_y, a->z_y, qmin, qmax, mask);
        bool relu = l->relu;
        for (int64_t i = 0; i < n; i++) {
            float d = dy[i];
            bool pass = mask[i] != 0.0f && (!relu || v[i] > 0.0f);
            dz[i] = pass ? d : 0.0f;
        }
        return;
    }
    float gf = oq->mode == OCT_QAT_A_LSQ
                   ? oct_lsq_grad_factor(N, oct_lsq_levels(a->z_y, qmin, qmax))
                   : 0.0f;
    double dp = 0.0;
    for (int r = 0; r < B; r++)
        for (int c = 0; c < N; c++) {
            int64_t i = (int64_t)r * N + c;
            float v = oct_acc_to_real(a->acc[i], a->s_a, a->ws[c]);
            if (oq->mode == OCT_QAT_A_PACT) {
                dz[i] = dy[i] * oct_pact_grad_x(v, a->alpha);
                dp += (double)dy[i] * oct_pact_grad_alpha(v, a->alpha);
                continue;
            }
            bool pass = (!l->relu || v > 0.0f) && oct_quant_passes(v, a->s_y, a->z_y, qmin, qmax);
            dz[i] = pass ? dy[i] : 0.0f;
            if (oq->mode == OCT_QAT_A_LSQ)
                dp += (double)dy[i] * oct_lsq_grad_scale(l->relu ? fmaxf(v, 0.0f) : v, a->s_y,
                                                         a->z_y, qmin, qmax, gf);
        }
    oct_tensor *p = oq->mode == OCT_QAT_A_PACT ? oq->alpha : oq->scale;
    if (p && p->requires_grad) oct__grad(g, p)[0] += (float)dp;
}

/* dL/dx from dL/dx_dq (B,K): masked by the input clamp; an owned LSQ input step gets its
 * gradient. */
static void input_grad(oct_graph *g, const ql_aux *a, oct_tensor *x, const float *dxq) {
    const oct_act_quant *iq = a->l->in_q;
    int32_t qmin = iq->scheme.qmin, qmax = iq->scheme.qmax;
    float *dx = x->requires_grad ? oct__grad(g, x) : NULL;
    bool lsq = a->l->owns_in && iq->scale && iq->scale->requires_grad;
    if (!lsq) { /* only the clamp mask, computed on the whole array */
        if (!dx) return;
        float *mask = oct_arena_alloc(&g->arena, (size_t)x->size * sizeof *mask);
        oct_quant_pass_mask(x->data, x->size, a->s_a, a->z_a, qmin, qmax, mask);
        for (int64_t i = 0; i < x->size; i++) {
            float d = dxq[i];
            dx[i] += mask[i] != 0.0f ? d : 0.0f;
        }
        return;
    }
    float gf = oct_lsq_grad_factor(oct_tensor_cols(x), oct_lsq_levels(a->z_a, qmin, qmax));
    double ds = oct_lsq_backward(x->data, dxq, x->size, a->s_a, a->z_a, qmin, qmax, gf, dx);
    oct__grad(g, iq->scale)[0] += (float)ds;
}

/* dL/dw from dL/dw_dq (N,K) through the weight STE; LSQ steps get their gradient. */
static void weight_grad(oct_graph *g, const ql_aux *a, oct_tensor *w, const float *dwq) {
    const oct_qat_linear *l = a->l;
    int N = w->shape[0], K = w->shape[1];
    int32_t qmin = l->wscheme.qmin, qmax = l->wscheme.qmax;
    float *dw = w->requires_grad ? oct__grad(g, w) : NULL;
    float *ds = l->wscale->requires_grad ? oct__grad(g, l->wscale) : NULL;
    float gf = oct_lsq_grad_factor(K, qmax);
    for (int c = 0; c < N; c++) {
        int64_t o = (int64_t)c * K;
        double acc = oct_lsq_backward(w->data + o, dwq + o, K, a->ws[c], 0, qmin, qmax, gf,
                                      dw ? dw + o : NULL);
        if (ds) ds[c] += (float)acc;
    }
}

void oct__qlinear_backward(oct_graph *g, const oct_node *n) {
    const ql_aux *a = n->aux;
    const oct_qat_linear *l = a->l;
    oct_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int B = (int)oct_tensor_rows(x), K = w->shape[1], N = w->shape[0];
    float *dz = oct_arena_alloc(&g->arena, (size_t)B * N * sizeof *dz); /* (B,N) */
    output_grad(g, a, B, N, n->out->grad, dz);
    if (b && b->requires_grad) {
        float *db = oct__grad(g, b);
        for (int r = 0; r < B; r++)
            for (int c = 0; c < N; c++) db[c] += dz[(int64_t)r * N + c];
    }
    bool lsq_w = l->wmode == OCT_QAT_W_LSQ;
    if (w->requires_grad || (lsq_w && l->wscale->requires_grad)) {
        /* The dequantized input codes; a layer fed by another quantized layer receives exactly
         * those values already (its quantizer is the producer's output quantizer). */
        const float *xq = x->data; /* (B,K) */
        if (l->owns_in) {
            float *deq = oct_arena_alloc(&g->arena, (size_t)B * K * sizeof *deq);
            dequant_u8(a->a, (int64_t)B * K, a->s_a, a->z_a, deq);
            xq = deq;
        }
        /* min-max steps never clamp (|w| <= max |w|): the STE is the identity. */
        float *dwq = lsq_w ? oct_arena_calloc(&g->arena, (size_t)N * K * sizeof *dwq)
                           : oct__grad(g, w); /* (N,K) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, B, 1.0f, dz, N, xq, K, 1.0f, dwq,
                    K);
        if (lsq_w) weight_grad(g, a, w, dwq);
    }
    bool lsq_in = l->owns_in && l->in_q->scale && l->in_q->scale->requires_grad;
    if (!x->requires_grad && !lsq_in) return;
    float *wq = oct_arena_alloc(&g->arena, (size_t)N * K * sizeof *wq); /* (N,K) */
    int32_t *zeros = oct_arena_calloc(&g->arena, (size_t)N * sizeof *zeros);
    if (a->wcodes) { /* the forward's codes times their scales */
        oct_dequantize_s8(a->wcodes, N, K, a->ws, zeros, wq);
    } else {
        oct_fake_quant_rows(w->data, N, K, a->ws, zeros, l->wscheme.qmin, l->wscheme.qmax, wq);
    }
    if (!l->owns_in) { /* x is the previous layer's dequantized output: never clamped */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, K, N, 1.0f, dz, N, wq, K, 1.0f,
                    oct__grad(g, x), K);
        return;
    }
    float *dxq = oct_arena_calloc(&g->arena, (size_t)B * K * sizeof *dxq); /* (B,K) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, K, N, 1.0f, dz, N, wq, K, 0.0f, dxq,
                K);
    input_grad(g, a, x, dxq);
}
