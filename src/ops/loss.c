/* Cross-entropy loss: log-softmax and negative log-likelihood fused, mean over rows.
 * The forward saves each row's log-sum-exp (N floats) instead of the (N, C) probabilities;
 * the backward recomputes p = exp(logit - lse), which is cheap and keeps the step arena small.
 */
#include "ops_internal.h"

#include <math.h>
#include <string.h>

/* Saved for the backward, in the step arena. */
typedef struct ce_saved {
    float *lse;       /* (N) log-sum-exp of each row */
    int32_t *targets; /* (N) copy of the caller's targets */
} ce_saved;

/* Fills lse[r] = log sum_j exp(logits[r][j]) (max-subtracted, stable) and returns the mean
 * of lse[r] - logits[r][targets[r]] over rows, accumulated in float64 in row order. */
static double cross_entropy_forward(float *lse,             /* (N) */
                                    const float *logits,    /* (N,C) */
                                    const int32_t *targets, /* (N) */
                                    int N, int C) {
    double loss = 0.0;
    for (int r = 0; r < N; r++) {
        const float *x = logits + (int64_t)r * C;
        float m = -INFINITY;
        for (int j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
        float s = 0.0f;
        for (int j = 0; j < C; j++) s += expf(x[j] - m);
        lse[r] = m + logf(s);
        loss += (double)lse[r] - (double)x[targets[r]];
    }
    return loss / N;
}

/* dlogits[r][j] += dloss / N * (softmax[r][j] - [j == target[r]]) */
static void cross_entropy_backward(float *dlogits,         /* (N,C) */
                                   const float *logits,    /* (N,C) */
                                   const float *lse,       /* (N) */
                                   const int32_t *targets, /* (N) */
                                   float dloss, int N, int C) {
    float c = dloss / (float)N;
    for (int r = 0; r < N; r++) {
        const float *x = logits + (int64_t)r * C;
        float *dx = dlogits + (int64_t)r * C;
        for (int j = 0; j < C; j++) dx[j] += c * expf(x[j] - lse[r]);
        dx[targets[r]] -= c;
    }
}

oct_tensor *oct_cross_entropy(oct_graph *g, oct_tensor *logits, const int32_t *targets) {
    OCT_ASSERT(logits->ndim == 2);
    int N = logits->shape[0], C = logits->shape[1];
    OCT_ASSERT(N > 0);
    ce_saved *sv = oct_arena_alloc(&g->arena, sizeof *sv);
    sv->targets = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->targets);
    memcpy(sv->targets, targets, (size_t)N * sizeof *sv->targets);
    for (int r = 0; r < N; r++) OCT_ASSERT(sv->targets[r] >= 0 && sv->targets[r] < C);
    sv->lse = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->lse);
    int one = 1;
    oct_tensor *loss = oct_tensor_new(&g->arena, 1, &one);
    loss->data[0] = (float)cross_entropy_forward(sv->lse, logits->data, sv->targets, N, C);
    if (oct__wants_grad(g, 1, &logits))
        oct__record(g, OCT_OP_CROSS_ENTROPY, loss, 1, &logits)->aux = sv;
    return loss;
}

void oct__cross_entropy_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *logits = n->in[0];
    const ce_saved *sv = n->aux;
    cross_entropy_backward(oct__grad(g, logits), logits->data, sv->lse, sv->targets,
                           n->out->grad[0], logits->shape[0], logits->shape[1]);
}
