/* Cross-entropy loss: log-softmax and negative log-likelihood fused, mean over rows, optionally
 * with a confidence penalty (minus beta times the entropy of each row's softmax).
 * The forward saves each row's log-sum-exp (N floats, and the entropies with a penalty) instead
 * of the (N, C) probabilities; the backward recomputes p = exp(logit - lse), which is cheap and
 * keeps the step arena small.
 */
#include "ops_internal.h"

#include <math.h>
#include <string.h>

/* Saved for the backward, in the step arena. With a penalty (beta > 0) each row also keeps its
 * largest logit m and log sum_j exp(logit_j - m), so that log p_j = (logit_j - m) - logsum is
 * computed from small numbers whatever the logits' size (logit_j - lse would lose the digits of
 * a large lse, and the entropy and its gradient with them). */
typedef struct ce_saved {
    float *lse;       /* (N) log-sum-exp of each row */
    float *max;       /* (N) each row's largest logit, when beta > 0, else NULL */
    float *logsum;    /* (N) lse - max, unrounded, when beta > 0 */
    float *entropy;   /* (N) entropy of each row's softmax, when beta > 0 */
    int32_t *targets; /* (N) copy of the caller's targets */
    float beta;
} ce_saved;

/* Fills sv->lse[r] = log sum_j exp(logits[r][j]) (max-subtracted, stable) and, with a penalty,
 * sv->max, sv->logsum and sv->entropy[r] = -sum_j p_j log p_j; returns the mean of lse[r] -
 * logits[r][targets[r]] over rows into *ce and the mean of that minus beta entropy[r], both
 * accumulated in float64 in row order. A probability that underflows to 0 adds nothing to the
 * entropy (also for a logit of -inf). */
static double cross_entropy_forward(const ce_saved *sv, const float *logits, /* (N,C) */
                                    int N, int C, double *ce) {
    double loss = 0.0, penalty = 0.0;
    for (int r = 0; r < N; r++) {
        const float *x = logits + (int64_t)r * C;
        float m = -INFINITY;
        for (int j = 0; j < C; j++) m = x[j] > m ? x[j] : m;
        float s = 0.0f;
        for (int j = 0; j < C; j++) s += expf(x[j] - m);
        float logsum = logf(s), lse = sv->lse[r] = m + logsum;
        loss += (double)lse - (double)x[sv->targets[r]];
        if (!sv->entropy) continue;
        float h = 0.0f;
        for (int j = 0; j < C; j++) {
            float lp = (x[j] - m) - logsum, p = expf(lp);
            if (p > 0.0f) h -= p * lp;
        }
        sv->max[r] = m;
        sv->logsum[r] = logsum;
        sv->entropy[r] = h;
        penalty += h;
    }
    *ce = loss / N;
    return (loss - (double)sv->beta * penalty) / N;
}

/* dlogits[r][j] += dloss / N * (p_j - [j == target[r]] + beta p_j (log p_j + H_r)), with
 * p = softmax(logits[r]) and H_r its entropy (dH/dx_j = -p_j (log p_j + H)). */
static void cross_entropy_backward(float *dlogits,      /* (N,C) */
                                   const float *logits, /* (N,C) */
                                   const ce_saved *sv, float dloss, int N, int C) {
    float c = dloss / (float)N;
    for (int r = 0; r < N; r++) {
        const float *x = logits + (int64_t)r * C;
        float *dx = dlogits + (int64_t)r * C, lse = sv->lse[r];
        if (sv->entropy) {
            float h = sv->entropy[r], m = sv->max[r], logsum = sv->logsum[r];
            for (int j = 0; j < C; j++) {
                float lp = (x[j] - m) - logsum, p = expf(lp);
                dx[j] += p > 0.0f ? c * (p + sv->beta * p * (lp + h)) : 0.0f;
            }
        } else {
            for (int j = 0; j < C; j++) dx[j] += c * expf(x[j] - lse);
        }
        dx[sv->targets[r]] -= c;
    }
}

oct_tensor *oct_cross_entropy_penalized(oct_graph *g, oct_tensor *logits, const int32_t *targets,
                                        float beta, float *ce) {
    OCT_ASSERT(logits->ndim == 2);
    OCT_ASSERT(isfinite(beta) && beta >= 0.0f);
    int N = logits->shape[0], C = logits->shape[1];
    OCT_ASSERT(N > 0);
    ce_saved *sv = oct_arena_alloc(&g->arena, sizeof *sv);
    sv->targets = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->targets);
    memcpy(sv->targets, targets, (size_t)N * sizeof *sv->targets);
    for (int r = 0; r < N; r++) OCT_ASSERT(sv->targets[r] >= 0 && sv->targets[r] < C);
    sv->lse = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->lse);
    sv->entropy = sv->max = sv->logsum = NULL;
    if (beta > 0.0f) {
        sv->entropy = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->entropy);
        sv->max = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->max);
        sv->logsum = oct_arena_alloc(&g->arena, (size_t)N * sizeof *sv->logsum);
    }
    sv->beta = beta;
    int one = 1;
    double mean_ce;
    oct_tensor *loss = oct_tensor_new(&g->arena, 1, &one);
    loss->data[0] = (float)cross_entropy_forward(sv, logits->data, N, C, &mean_ce);
    if (ce) *ce = (float)mean_ce;
    if (oct__wants_grad(g, 1, &logits))
        oct__record(g, OCT_OP_CROSS_ENTROPY, loss, 1, &logits)->aux = sv;
    return loss;
}

oct_tensor *oct_cross_entropy(oct_graph *g, oct_tensor *logits, const int32_t *targets) {
    return oct_cross_entropy_penalized(g, logits, targets, 0.0f, NULL);
}

void oct__cross_entropy_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *logits = n->in[0];
    cross_entropy_backward(oct__grad(g, logits), logits->data, n->aux, n->out->grad[0],
                           logits->shape[0], logits->shape[1]);
}
