/* Fused causal multi-head self-attention for a GPT, as in llm.c attention_forward/backward,
 * with the per-head products done by cblas_sgemm on strided views of qkv (no copies).
 *
 * qkv (B,T,3C) holds [q | k | v] along the last dim; head h owns columns [h*hs, (h+1)*hs) of
 * each of q, k and v (hs = C / n_head). Per (b, h): S = q k^T / sqrt(hs) (T,T), causal mask,
 * P = softmax(S) row by row, out = P v, written to columns [h*hs, (h+1)*hs) of out (B,T,C).
 * The probabilities P (B,nh,T,T) are saved in aux for the backward; masked entries are zero.
 * The sgemm computes the full T x T score block (the upper half is then discarded): twice the
 * arithmetic of the triangle, but far faster than scalar loops at GPT sizes.
 *
 * oct_attention_rows computes the same function row by row with the shared kernel
 * oct_nl_attention_row (octet/nonlinear.h), whose bits do not depend on T or the batch: the
 * QAT GPT uses it so that the integer engine with a key/value cache reproduces it exactly. It
 * records the same node (OCT_OP_ATTENTION, probabilities in aux) and shares the backward.
 */
#include "octet/nonlinear.h"
#include "ops_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Causal softmax of each row of p (T,T) in place: row t keeps columns 0..t, zeroes the rest. */
static void causal_softmax(float *p, /* (T,T) */ int T) {
    for (int t = 0; t < T; t++) {
        float *row = p + (int64_t)t * T;
        float m = -INFINITY;
        for (int u = 0; u <= t; u++) m = row[u] > m ? row[u] : m;
        float s = 0.0f;
        for (int u = 0; u <= t; u++) {
            row[u] = expf(row[u] - m);
            s += row[u];
        }
        float inv = 1.0f / s;
        for (int u = 0; u <= t; u++) row[u] *= inv;
        for (int u = t + 1; u < T; u++) row[u] = 0.0f;
    }
}

/* att is (B,nh,T,T) when saving for the backward, else one (T,T) scratch reused per head. */
static void attention_forward(float *out,       /* (B,T,C) */
                              float *att,       /* (B,nh,T,T) or (T,T) */
                              const float *qkv, /* (B,T,3C) */
                              int B, int T, int C, int nh, bool save) {
    int hs = C / nh, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            const float *q = qkv + (int64_t)b * T * C3 + h * hs; /* (T,hs), row stride 3C */
            const float *k = q + C, *v = q + 2 * C;
            float *p = save ? att + ((int64_t)b * nh + h) * T * T : att; /* (T,T) */
            float *o = out + (int64_t)b * T * C + h * hs;                /* (T,hs), stride C */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, scale, q, C3, k, C3,
                        0.0f, p, T);
            causal_softmax(p, T);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, v, C3,
                        0.0f, o, C);
        }
}

/* dP = dout v^T; dv += P^T dout; dS = P * (dP - rowsum(P * dP)); dq += dS k * scale;
 * dk += dS^T q * scale. scratch is one (T,T) buffer reused per head. */
static void attention_backward(float *dqkv,       /* (B,T,3C) */
                               float *scratch,    /* (T,T) */
                               const float *dout, /* (B,T,C) */
                               const float *qkv,  /* (B,T,3C) */
                               const float *att,  /* (B,nh,T,T) */
                               int B, int T, int C, int nh) {
    int hs = C / nh, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < nh; h++) {
            int64_t off = (int64_t)b * T * C3 + h * hs;
            const float *q = qkv + off, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + off, *dk = dq + C, *dv = dq + 2 * C;
            const float *p = att + ((int64_t)b * nh + h) * T * T;
            const float *dO = dout + (int64_t)b * T * C + h * hs;
            float *ds = scratch;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hs, 1.0f, dO, C, v, C3, 0.0f,
                        ds, T);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, 1.0f, p, T, dO, C, 1.0f,
                        dv, C3);
            for (int t = 0; t < T; t++) {
                const float *pr = p + (int64_t)t * T;
                float *dsr = ds + (int64_t)t * T;
                float dot = 0.0f;
                for (int u = 0; u <= t; u++) dot += pr[u] * dsr[u];
                for (int u = 0; u <= t; u++) dsr[u] = pr[u] * (dsr[u] - dot);
                for (int u = t + 1; u < T; u++) dsr[u] = 0.0f;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hs, T, scale, ds, T, k, C3,
                        1.0f, dq, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, T, hs, T, scale, ds, T, q, C3,
                        1.0f, dk, C3);
        }
}

/* Records op on qkv with its head count and saved buffer. */
static void record_heads(oct_graph *g, int op, oct_tensor *out, oct_tensor *qkv, int n_head,
                         void *aux) {
    oct_node *n = oct__record(g, op, out, 1, &qkv);
    n->p.i[0] = n_head;
    n->aux = aux;
}

oct_tensor *oct_attention(oct_graph *g, oct_tensor *qkv, int n_head) {
    OCT_ASSERT(qkv->ndim == 3 && qkv->shape[2] % 3 == 0);
    int B = qkv->shape[0], T = qkv->shape[1], C = qkv->shape[2] / 3;
    OCT_ASSERT(n_head > 0 && C % n_head == 0);
    int shape[3] = {B, T, C};
    oct_tensor *out = oct_tensor_new(&g->arena, 3, shape);
    bool save = oct__wants_grad(g, 1, &qkv);
    int64_t natt = (int64_t)T * T * (save ? (int64_t)B * n_head : 1);
    float *att = oct_arena_alloc(&g->arena, (size_t)natt * sizeof(float));
    attention_forward(out->data, att, qkv->data, B, T, C, n_head, save);
    if (save) record_heads(g, OCT_OP_ATTENTION, out, qkv, n_head, att);
    return out;
}

oct_tensor *oct_attention_rows(oct_graph *g, oct_tensor *qkv, int n_head) {
    OCT_ASSERT(qkv->ndim == 3 && qkv->shape[2] % 3 == 0);
    int B = qkv->shape[0], T = qkv->shape[1], C = qkv->shape[2] / 3, C3 = 3 * C;
    OCT_ASSERT(n_head > 0 && C % n_head == 0);
    int shape[3] = {B, T, C};
    oct_tensor *out = oct_tensor_new(&g->arena, 3, shape);
    bool save = oct__wants_grad(g, 1, &qkv);
    /* Saved: (B,nh,T,T) with zeros above the diagonal; else one (nh,T) row of scratch. */
    int64_t natt = save ? (int64_t)B * n_head * T * T : (int64_t)n_head * T;
    float *att = save ? oct_arena_calloc(&g->arena, (size_t)natt * sizeof(float))
                      : oct_arena_alloc(&g->arena, (size_t)natt * sizeof(float));
    float *kt = oct_arena_alloc(&g->arena, (size_t)C * T * sizeof(float)); /* (C,T) */
    for (int b = 0; b < B; b++) {
        const float *base = qkv->data + (int64_t)b * T * C3; /* (T,3C) */
        for (int t = 0; t < T; t++)
            for (int d = 0; d < C; d++) kt[(int64_t)d * T + t] = base[(int64_t)t * C3 + C + d];
        for (int t = 0; t < T; t++) {
            float *p = save ? att + ((int64_t)b * n_head * T + t) * T : att;
            oct_nl_attention_row(base + (int64_t)t * C3, kt, T, base + 2 * C, C3, t + 1, C, n_head,
                                 p, save ? (int64_t)T * T : T,
                                 out->data + ((int64_t)b * T + t) * C);
        }
    }
    if (save) record_heads(g, OCT_OP_ATTENTION, out, qkv, n_head, att);
    return out;
}

void oct__attention_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *qkv = n->in[0];
    int B = qkv->shape[0], T = qkv->shape[1], C = qkv->shape[2] / 3;
    float *scratch = oct_arena_alloc(&g->arena, (size_t)T * T * sizeof(float));
    attention_backward(oct__grad(g, qkv), scratch, n->out->grad, qkv->data, n->aux, B, T, C,
                       n->p.i[0]);
}

/* ---- rotary position embedding -------------------------------------------------------------- */

oct_tensor *oct_rope(oct_graph *g, oct_tensor *qkv, int n_head) {
    OCT_ASSERT(qkv->ndim == 3 && qkv->shape[2] % 3 == 0);
    int B = qkv->shape[0], T = qkv->shape[1], C = qkv->shape[2] / 3, C3 = 3 * C;
    OCT_ASSERT(n_head > 0 && C % n_head == 0 && C / n_head % 2 == 0);
    int hs = C / n_head;
    float *cs = oct_arena_alloc(&g->arena, (size_t)T * hs * sizeof *cs); /* (T,hs) */
    for (int t = 0; t < T; t++) oct_nl_rope_angles(t, hs, cs + (int64_t)t * hs);
    oct_tensor *out = oct__like(g, qkv);
    memcpy(out->data, qkv->data, (size_t)qkv->size * sizeof(float));
    for (int64_t r = 0; r < (int64_t)B * T; r++)
        oct_nl_rope_row(out->data + r * C3, C, n_head, cs + r % T * hs, false);
    if (oct__wants_grad(g, 1, &qkv)) record_heads(g, OCT_OP_ROPE, out, qkv, n_head, cs);
    return out;
}

/* The rotation is orthogonal: the gradient of q and k is dy rotated back, v's passes through. */
void oct__rope_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *qkv = n->in[0];
    int T = qkv->shape[1], C = qkv->shape[2] / 3, C3 = 3 * C, nh = n->p.i[0], hs = C / nh;
    const float *cs = n->aux, *dy = n->out->grad;
    float *dx = oct__grad(g, qkv);
    float *row = oct_arena_alloc(&g->arena, (size_t)C3 * sizeof *row);
    for (int64_t r = 0; r < qkv->size / C3; r++) {
        memcpy(row, dy + r * C3, (size_t)C3 * sizeof *row);
        oct_nl_rope_row(row, C, nh, cs + r % T * hs, true);
        for (int i = 0; i < C3; i++) dx[r * C3 + i] += row[i];
    }
}
