/* Matrix products through cblas_sgemm: matmul (any transposes) and linear (x @ w^T + b).
 * Backward accumulates with beta = 1, so gradients add up across uses of a tensor. */
#include "ops_internal.h"

#include <cblas.h>

/* y (M,N) = op(a) @ op(b). */
oct_tensor *oct_matmul(oct_graph *g, oct_tensor *a, oct_tensor *b, bool ta, bool tb) {
    OCT_ASSERT(a->ndim == 2 && b->ndim == 2);
    int M = ta ? a->shape[1] : a->shape[0];
    int K = ta ? a->shape[0] : a->shape[1];
    int Kb = tb ? b->shape[1] : b->shape[0];
    int N = tb ? b->shape[0] : b->shape[1];
    OCT_ASSERT(K == Kb);
    oct_tensor *y = oct_tensor_new2(&g->arena, M, N);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, 1.0f, a->data, a->shape[1], b->data, b->shape[1], 0.0f, y->data, N);
    oct_tensor *in[2] = {a, b};
    if (oct__wants_grad(g, 2, in)) {
        oct_node *n = oct__record(g, OCT_OP_MATMUL, y, 2, in);
        n->p.i[0] = ta;
        n->p.i[1] = tb;
    }
    return y;
}

void oct__matmul_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    bool ta = n->p.i[0], tb = n->p.i[1];
    int M = y->shape[0], N = y->shape[1], K = ta ? a->shape[0] : a->shape[1];
    int lda = a->shape[1], ldb = b->shape[1];
    const float *dy = y->grad; /* (M,N) */
    if (a->requires_grad) {
        float *da = oct__grad(g, a);
        if (!ta) /* da (M,K) += dy (M,N) @ op(b)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, tb ? CblasNoTrans : CblasTrans, M, K, N, 1.0f,
                        dy, N, b->data, ldb, 1.0f, da, lda);
        else /* da (K,M) += op(b) (K,N) @ dy^T */
            cblas_sgemm(CblasRowMajor, tb ? CblasTrans : CblasNoTrans, CblasTrans, K, M, N, 1.0f,
                        b->data, ldb, dy, N, 1.0f, da, lda);
    }
    if (b->requires_grad) {
        float *db = oct__grad(g, b);
        if (!tb) /* db (K,N) += op(a)^T (K,M) @ dy */
            cblas_sgemm(CblasRowMajor, ta ? CblasNoTrans : CblasTrans, CblasNoTrans, K, N, M, 1.0f,
                        a->data, lda, dy, N, 1.0f, db, ldb);
        else /* db (N,K) += dy^T (N,M) @ op(a) */
            cblas_sgemm(CblasRowMajor, CblasTrans, ta ? CblasTrans : CblasNoTrans, N, K, M, 1.0f,
                        dy, N, a->data, lda, 1.0f, db, ldb);
    }
}

/* y (R,N) = x (R,K) @ w (N,K)^T + b (N), R = product of x's leading dims. */
oct_tensor *oct_linear(oct_graph *g, oct_tensor *x, oct_tensor *w, oct_tensor *b) {
    int K = oct_tensor_cols(x), N = w->shape[0];
    int R = (int)oct_tensor_rows(x);
    OCT_ASSERT(w->ndim == 2 && w->shape[1] == K);
    OCT_ASSERT(!b || b->size == N);
    int shape[OCT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = N;
    oct_tensor *y = oct_tensor_new(&g->arena, x->ndim, shape);
    float beta = 0.0f;
    if (b) {
        for (int r = 0; r < R; r++)
            for (int j = 0; j < N; j++) y->data[(int64_t)r * N + j] = b->data[j];
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, N, K, 1.0f, x->data, K, w->data, K,
                beta, y->data, N);
    oct_tensor *in[3] = {x, w, b};
    if (oct__wants_grad(g, 3, in)) oct__record(g, OCT_OP_LINEAR, y, b ? 3 : 2, in);
    return y;
}

void oct__linear_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out;
    int K = oct_tensor_cols(x), N = w->shape[0], R = (int)oct_tensor_rows(x);
    const float *dy = y->grad; /* (R,N) */
    if (x->requires_grad)      /* dx (R,K) += dy (R,N) @ w (N,K) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, K, N, 1.0f, dy, N, w->data, K,
                    1.0f, oct__grad(g, x), K);
    if (w->requires_grad) /* dw (N,K) += dy^T (N,R) @ x (R,K) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, R, 1.0f, dy, N, x->data, K, 1.0f,
                    oct__grad(g, w), K);
    if (b && b->requires_grad) { /* db (N) += column sums of dy */
        float *db = oct__grad(g, b);
        for (int r = 0; r < R; r++)
            for (int j = 0; j < N; j++) db[j] += dy[(int64_t)r * N + j];
    }
}
