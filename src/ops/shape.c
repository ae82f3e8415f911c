/* Shape ops: reshape (shares the data, owns its gradient), transpose of the last two dims,
 * concat and slice along the last dim (copies). Backward passes add into the source gradient.
 */
#include "ops_internal.h"

#include <string.h>

/* ---- reshape -------------------------------------------------------------------------------- */

oct_tensor *oct_reshape(oct_graph *g, oct_tensor *x, int ndim, const int *shape) {
    oct_tensor *y = oct_tensor_view(&g->arena, x, ndim, shape); /* asserts equal sizes */
    y->grad = NULL; /* its own buffer, allocated on first use */
    y->requires_grad = false;
    if (oct__wants_grad(g, 1, &x)) oct__record(g, OCT_OP_RESHAPE, y, 1, &x);
    return y;
}

void oct__reshape_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0];
    const float *dy = n->out->grad; /* (N) */
    float *dx = oct__grad(g, x);    /* (N) */
    for (int64_t i = 0; i < x->size; i++) dx[i] += dy[i];
}

/* ---- transpose ------------------------------------------------------------------------------ */

/* y[b][j][i] = x[b][i][j] for each of the nb leading matrices. */
static void transpose_forward(float *y,       /* (nb,N,M) */
                              const float *x, /* (nb,M,N) */
                              int64_t nb, int M, int N) {
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * M * N;
        float *yb = y + b * M * N;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) yb[(int64_t)j * M + i] = xb[(int64_t)i * N + j];
    }
}

static void transpose_backward(float *dx,       /* (nb,M,N) */
                               const float *dy, /* (nb,N,M) */
                               int64_t nb, int M, int N) {
    for (int64_t b = 0; b < nb; b++) {
        float *dxb = dx + b * M * N;
        const float *dyb = dy + b * M * N;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) dxb[(int64_t)i * N + j] += dyb[(int64_t)j * M + i];
    }
}

oct_tensor *oct_transpose(oct_graph *g, oct_tensor *x) {
    OCT_ASSERT(x->ndim >= 2);
    int shape[OCT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    int M = x->shape[x->ndim - 2], N = x->shape[x->ndim - 1];
    shape[x->ndim - 2] = N;
    shape[x->ndim - 1] = M;
    oct_tensor *y = oct_tensor_new(&g->arena, x->ndim, shape);
    int64_t mn = (int64_t)M * N;
    transpose_forward(y->data, x->data, mn ? x->size / mn : 0, M, N);
    if (oct__wants_grad(g, 1, &x)) oct__record(g, OCT_OP_TRANSPOSE, y, 1, &x);
    return y;
}

void oct__transpose_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0];
    int M = x->shape[x->ndim - 2], N = x->shape[x->ndim - 1];
    int64_t mn = (int64_t)M * N;
    transpose_backward(oct__grad(g, x), n->out->grad, mn ? x->size / mn : 0, M, N);
}

/* ---- concat, slice -------------------------------------------------------------------------- */

/* Copies columns: dst[r][doff + j] (=, or += when accumulate) src[r][soff + j], j < len. */
static void copy_cols(float *dst, int dcols, int doff,       /* (R,dcols) */
                      const float *src, int scols, int soff, /* (R,scols) */
                      int64_t R, int len, bool accumulate) {
    for (int64_t r = 0; r < R; r++) {
        float *d = dst + r * dcols + doff;
        const float *s = src + r * scols + soff;
        if (accumulate)
            for (int j = 0; j < len; j++) d[j] += s[j];
        else
            memcpy(d, s, (size_t)len * sizeof(float));
    }
}

oct_tensor *oct_concat(oct_graph *g, int n, oct_tensor *const *xs) {
    OCT_ASSERT(n >= 1 && n <= OCT_MAX_INPUTS);
    const oct_tensor *x0 = xs[0];
    int shape[OCT_MAX_DIMS];
    memcpy(shape, x0->shape, sizeof shape);
    int cols = 0;
    for (int k = 0; k < n; k++) {
        OCT_ASSERT(xs[k]->ndim == x0->ndim);
        for (int i = 0; i < x0->ndim - 1; i++) OCT_ASSERT(xs[k]->shape[i] == x0->shape[i]);
        cols += oct_tensor_cols(xs[k]);
    }
    shape[x0->ndim - 1] = cols;
    oct_tensor *y = oct_tensor_new(&g->arena, x0->ndim, shape);
    int64_t R = oct_tensor_rows(y);
    for (int k = 0, off = 0; k < n; off += oct_tensor_cols(xs[k]), k++)
        copy_cols(y->data, cols, off, xs[k]->data, oct_tensor_cols(xs[k]), 0, R,
                  oct_tensor_cols(xs[k]), false);
    if (oct__wants_grad(g, n, xs)) oct__record(g, OCT_OP_CONCAT, y, n, xs);
    return y;
}

void oct__concat_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *y = n->out;
    int cols = oct_tensor_cols(y);
    int64_t R = oct_tensor_rows(y);
    for (int k = 0, off = 0; k < OCT_MAX_INPUTS && n->in[k];
         off += oct_tensor_cols(n->in[k]), k++) {
        oct_tensor *x = n->in[k];
        int xc = oct_tensor_cols(x);
        if (x->requires_grad) copy_cols(oct__grad(g, x), xc, 0, y->grad, cols, off, R, xc, true);
    }
}

oct_tensor *oct_slice(oct_graph *g, oct_tensor *x, int start, int len) {
    int cols = oct_tensor_cols(x);
    OCT_ASSERT(start >= 0 && len >= 0 && start + len <= cols);
    int shape[OCT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    oct_tensor *y = oct_tensor_new(&g->arena, x->ndim, shape);
    copy_cols(y->data, len, 0, x->data, cols, start, oct_tensor_rows(x), len, false);
    if (oct__wants_grad(g, 1, &x)) oct__record(g, OCT_OP_SLICE, y, 1, &x)->p.i[0] = start;
    return y;
}

void oct__slice_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0], *y = n->out;
    int len = oct_tensor_cols(y);
    copy_cols(oct__grad(g, x), oct_tensor_cols(x), n->p.i[0], y->grad, len, 0, oct_tensor_rows(x),
              len, true);
}
