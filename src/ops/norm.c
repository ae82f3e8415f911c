/* LayerNorm over the last dimension, as in llm.c: float32, one fixed-order reduction per row
 * (no threading inside a row): the row kernel oct_nl_layernorm_row shared with the integer
 * GPT engine (octet/nonlinear.h), so training and the engine run the same arithmetic.
 * The forward saves each row's mean and 1/std in aux for the backward.
 */
#include "octet/nonlinear.h"
#include "ops_internal.h"

#include <math.h>

static void layernorm_forward(float *y,           /* (R,C) */
                              float *mean,        /* (R) */
                              float *rstd,        /* (R) */
                              const float *x,     /* (R,C) */
                              const float *gamma, /* (C) */
                              const float *beta,  /* (C) */
                              int64_t R, int C, float eps) {
    for (int64_t r = 0; r < R; r++)
        oct_nl_layernorm_row(x + r * C, gamma, beta, C, eps, y + r * C, &mean[r], &rstd[r]);
}

/* With xhat = (x - mean) * rstd:
 * dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma. */
static void layernorm_backward(float *dx,          /* (R,C) or NULL */
                               float *dgamma,      /* (C) or NULL */
                               float *dbeta,       /* (C) or NULL */
                               const float *dy,    /* (R,C) */
                               const float *x,     /* (R,C) */
                               const float *gamma, /* (C) */
                               const float *mean,  /* (R) */
                               const float *rstd,  /* (R) */
                               int64_t R, int C) {
    for (int64_t r = 0; r < R; r++) {
        const float *dyr = dy + r * C, *xr = x + r * C;
        float m = mean[r], s = rstd[r];
        float dmean = 0.0f, dmean_xhat = 0.0f;
        for (int j = 0; j < C; j++) {
            float xhat = (xr[j] - m) * s;
            float dxhat = dyr[j] * gamma[j];
            dmean += dxhat;
            dmean_xhat += dxhat * xhat;
        }
        dmean /= (float)C;
        dmean_xhat /= (float)C;
        for (int j = 0; j < C; j++) {
            float xhat = (xr[j] - m) * s;
            if (dbeta) dbeta[j] += dyr[j];
            if (dgamma) dgamma[j] += xhat * dyr[j];
            if (dx) dx[r * C + j] += s * (dyr[j] * gamma[j] - dmean - xhat * dmean_xhat);
        }
    }
}

oct_tensor *oct_layernorm(oct_graph *g, oct_tensor *x, oct_tensor *gamma, oct_tensor *beta,
                          float eps) {
    int C = oct_tensor_cols(x);
    int64_t R = oct_tensor_rows(x);
    OCT_ASSERT(gamma->size == C && beta->size == C);
    oct_tensor *y = oct__like(g, x);
    float *stats = oct_arena_alloc(&g->arena, (size_t)(2 * R) * sizeof(float)); /* mean, rstd */
    layernorm_forward(y->data, stats, stats + R, x->data, gamma->data, beta->data, R, C, eps);
    oct_tensor *in[3] = {x, gamma, beta};
    if (oct__wants_grad(g, 3, in)) oct__record(g, OCT_OP_LAYERNORM, y, 3, in)->aux = stats;
    return y;
}

void oct__layernorm_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0], *gamma = n->in[1], *beta = n->in[2];
    int64_t R = oct_tensor_rows(x);
    const float *stats = n->aux;
    layernorm_backward(x->requires_grad ? oct__grad(g, x) : NULL,
                       gamma->requires_grad ? oct__grad(g, gamma) : NULL,
                       beta->requires_grad ? oct__grad(g, beta) : NULL, n->out->grad, x->data,
                       gamma->data, stats, stats + R, R, oct_tensor_cols(x));
}
