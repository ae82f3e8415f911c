/* The fake-quant op: y = dequantize(quantize(x)) per tensor or per channel, with fixed
 * (observer-given) parameters, a learned LSQ step or a learned PACT clipping level. The forward
 * pass is oct_fake_quant_rows (src/quant), the backward pass the clipped straight-through
 * estimator; all per-element gradient rules come from include/octet/quant.h. */
#include "octet/qat.h"
#include "ops_internal.h"

#include <string.h>

enum { FQ_FIXED, FQ_LSQ, FQ_PACT };

/* Saved for the backward pass (step arena). */
typedef struct fq_aux {
    int mode, nch;
    float *s;   /* (nch) the scales the forward used */
    int32_t *z; /* (nch) */
    int32_t qmin, qmax;
} fq_aux;

static fq_aux *fq_aux_new(oct_graph *g, int mode, int nch, int32_t qmin, int32_t qmax) {
    fq_aux *a = oct_arena_alloc(&g->arena, sizeof *a);
    a->mode = mode;
    a->nch = nch;
    a->s = oct_arena_alloc(&g->arena, (size_t)nch * sizeof *a->s);
    a->z = oct_arena_alloc(&g->arena, (size_t)nch * sizeof *a->z);
    a->qmin = qmin;
    a->qmax = qmax;
    return a;
}

/* Runs the forward pass for a's parameters and records the node with inputs x and p. */
static oct_tensor *fq_run(oct_graph *g, oct_tensor *x, oct_tensor *p, fq_aux *a,
                          const float *src /* (x->size) */) {
    OCT_ASSERT(a->nch >= 1 && x->size % a->nch == 0 && a->qmin <= a->qmax);
    oct_tensor *y = oct__like(g, x);
    oct_fake_quant_rows(src, a->nch, x->size / a->nch, a->s, a->z, a->qmin, a->qmax, y->data);
    oct_tensor *in[2] = {x, p};
    if (oct__wants_grad(g, 2, in)) oct__record(g, OCT_OP_FAKE_QUANT, y, p ? 2 : 1, in)->aux = a;
    return y;
}

oct_tensor *oct_fake_quant_fixed(oct_graph *g, oct_tensor *x, int nch, const float *s,
                                 const int32_t *z, int32_t qmin, int32_t qmax) {
    fq_aux *a = fq_aux_new(g, FQ_FIXED, nch, qmin, qmax);
    memcpy(a->s, s, (size_t)nch * sizeof *s);
    memcpy(a->z, z, (size_t)nch * sizeof *z);
    return fq_run(g, x, NULL, a, x->data);
}

oct_tensor *oct_fake_quant_lsq(oct_graph *g, oct_tensor *x, oct_tensor *s, const int32_t *z,
                               int32_t qmin, int32_t qmax) {
    int nch = (int)s->size;
    fq_aux *a = fq_aux_new(g, FQ_LSQ, nch, qmin, qmax);
    for (int c = 0; c < nch; c++) OCT_ASSERT(s->data[c] > 0.0f);
    memcpy(a->s, s->data, (size_t)nch * sizeof *a->s);
    memcpy(a->z, z, (size_t)nch * sizeof *z);
    return fq_run(g, x, s, a, x->data);
}

oct_tensor *oct_fake_quant_pact(oct_graph *g, oct_tensor *x, oct_tensor *alpha, int32_t qmax) {
    OCT_ASSERT(alpha->size == 1 && alpha->data[0] > 0.0f && qmax > 0);
    fq_aux *a = fq_aux_new(g, FQ_PACT, 1, 0, qmax);
    a->s[0] = alpha->data[0] / (float)qmax;
    a->z[0] = 0;
    float *clipped = oct_arena_alloc(&g->arena, (size_t)x->size * sizeof *clipped);
    for (int64_t i = 0; i < x->size; i++) clipped[i] = oct_pact(x->data[i], alpha->data[0]);
    return fq_run(g, x, alpha, a, clipped);
}

void oct__fake_quant_backward(oct_graph *g, const oct_node *n) {
    const fq_aux *a = n->aux;
    oct_tensor *x = n->in[0], *p = n->in[1];
    const float *xs = x->data, *dy = n->out->grad; /* (nch, cols) */
    int64_t cols = x->size / a->nch;
    float *dx = x->requires_grad ? oct__grad(g, x) : NULL;
    float *dp = p && p->requires_grad ? oct__grad(g, p) : NULL;
    if (a->mode == FQ_PACT) {
        float alpha = p->data[0];
        double da = 0.0;
        for (int64_t i = 0; i < x->size; i++) {
            if (dx) dx[i] += dy[i] * oct_pact_grad_x(xs[i], alpha);
            da += (double)dy[i] * oct_pact_grad_alpha(xs[i], alpha);
        }
        if (dp) dp[0] += (float)da;
        return;
    }
    for (int c = 0; c < a->nch; c++) {
        float s = a->s[c];
        int32_t z = a->z[c];
        float gf = a->mode == FQ_LSQ
                       ? oct_lsq_grad_factor(cols, oct_lsq_levels(z, a->qmin, a->qmax))
                       : 0.0f;
        int64_t o = c * cols;
        double ds =
            oct_lsq_backward(xs + o, dy + o, cols, s, z, a->qmin, a->qmax, gf, dx ? dx + o : NULL);
        if (dp) dp[c] += (float)ds;
    }
}
