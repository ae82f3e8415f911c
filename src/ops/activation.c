/* Pointwise activations (relu, gelu, tanh, sigmoid) and softmax over the last dimension.
 * Backward passes use the saved output where it suffices (tanh, sigmoid, softmax) and the
 * input otherwise (gelu); all of them accumulate into the input's gradient.
 */
#include "octet/nonlinear.h"
#include "ops_internal.h"

#include <math.h>

/* Records a pointwise op y = f(x) when x needs a gradient; returns y. */
static oct_tensor *pointwise_record(oct_graph *g, int op, oct_tensor *x, oct_tensor *y) {
    if (oct__wants_grad(g, 1, &x)) oct__record(g, op, y, 1, &x);
    return y;
}

/* ---- relu ----------------------------------------------------------------------------------- */

oct_tensor *oct_relu(oct_graph *g, oct_tensor *x) {
    oct_tensor *y = oct__like(g, x);
    const float *xs = x->data;
    float *ys = y->data;
    for (int64_t i = 0; i < x->size; i++) ys[i] = xs[i] > 0.0f ? xs[i] : 0.0f;
    return pointwise_record(g, OCT_OP_RELU, x, y);
}

void oct__relu_backward(oct_graph *g, const oct_node *n) {
    const float *y = n->out->data, *dy = n->out->grad; /* (N) */
    float *dx = oct__grad(g, n->in[0]);                /* (N) */
    /* Both loads unconditional, then a select: gcc vectorizes this form. */
    for (int64_t i = 0; i < n->out->size; i++) {
        float d = dy[i];
        dx[i] += y[i] > 0.0f ? d : 0.0f;
    }
}

/* ---- gelu (tanh approximation) -------------------------------------------------------------- */

/* The shared kernels of octet/nonlinear.h (also used by the integer GPT engine). */
oct_tensor *oct_gelu(oct_graph *g, oct_tensor *x) {
    oct_tensor *y = oct__like(g, x);
    oct_nl_gelu(x->data, x->size, y->data);
    return pointwise_record(g, OCT_OP_GELU, x, y);
}

void oct__gelu_backward(oct_graph *g, const oct_node *n) {
    const float *x = n->in[0]->data, *dy = n->out->grad; /* (N) */
    float *dx = oct__grad(g, n->in[0]);                  /* (N) */
    oct_nl_gelu_backward(x, dy, n->out->size, dx);
}

/* ---- gelu (exact, with erf) ----------------------------------------------------------------- */

oct_tensor *oct_gelu_erf(oct_graph *g, oct_tensor *x) {
    oct_tensor *y = oct__like(g, x);
    oct_nl_gelu_erf(x->data, x->size, y->data);
    return pointwise_record(g, OCT_OP_GELU_ERF, x, y);
}

void oct__gelu_erf_backward(oct_graph *g, const oct_node *n) {
    const float *x = n->in[0]->data, *dy = n->out->grad; /* (N) */
    float *dx = oct__grad(g, n->in[0]);                  /* (N) */
    oct_nl_gelu_erf_backward(x, dy, n->out->size, dx);
}

/* ---- tanh, sigmoid -------------------------------------------------------------------------- */

oct_tensor *oct_tanh(oct_graph *g, oct_tensor *x) {
    oct_tensor *y = oct__like(g, x);
    const float *xs = x->data;
    float *ys = y->data;
    for (int64_t i = 0; i < x->size; i++) ys[i] = tanhf(xs[i]);
    return pointwise_record(g, OCT_OP_TANH, x, y);
}

void oct__tanh_backward(oct_graph *g, const oct_node *n) {
    const float *y = n->out->data, *dy = n->out->grad; /* (N) */
    float *dx = oct__grad(g, n->in[0]);                /* (N) */
    for (int64_t i = 0; i < n->out->size; i++) dx[i] += (1.0f - y[i] * y[i]) * dy[i];
}

oct_tensor *oct_sigmoid(oct_graph *g, oct_tensor *x) {
    oct_tensor *y = oct__like(g, x);
    const float *xs = x->data;
    float *ys = y->data;
    for (int64_t i = 0; i < x->size; i++) ys[i] = 1.0f / (1.0f + expf(-xs[i]));
    return pointwise_record(g, OCT_OP_SIGMOID, x, y);
}

void oct__sigmoid_backward(oct_graph *g, const oct_node *n) {
    const float *y = n->out->data, *dy = n->out->grad; /* (N) */
    float *dx = oct__grad(g, n->in[0]);                /* (N) */
    for (int64_t i = 0; i < n->out->size; i++) dx[i] += y[i] * (1.0f - y[i]) * dy[i];
}

/* ---- softmax -------------------------------------------------------------------------------- */

/* Stable softmax of each row: subtract the row maximum, exponentiate, normalize. */
static void softmax_forward(float *y,       /* (R,C) */
                            const float *x, /* (R,C) */
                            int64_t R, int C) {
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        float m = -INFINITY;
        for (int j = 0; j < C; j++) m = xr[j] > m ? xr[j] : m;
        float s = 0.0f;
        for (int j = 0; j < C; j++) {
            yr[j] = expf(xr[j] - m);
            s += yr[j];
        }
        float inv = 1.0f / s;
        for (int j = 0; j < C; j++) yr[j] *= inv;
    }
}

/* dx_j += y_j (dy_j - sum_k dy_k y_k) */
static void softmax_backward(float *dx,       /* (R,C) */
                             const float *y,  /* (R,C) */
                             const float *dy, /* (R,C) */
                             int64_t R, int C) {
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y + r * C, *dyr = dy + r * C;
        float *dxr = dx + r * C;
        float dot = 0.0f;
        for (int j = 0; j < C; j++) dot += dyr[j] * yr[j];
        for (int j = 0; j < C; j++) dxr[j] += yr[j] * (dyr[j] - dot);
    }
}

oct_tensor *oct_softmax(oct_graph *g, oct_tensor *x) {
    oct_tensor *y = oct__like(g, x);
    softmax_forward(y->data, x->data, oct_tensor_rows(x), oct_tensor_cols(x));
    if (oct__wants_grad(g, 1, &x)) oct__record(g, OCT_OP_SOFTMAX, y, 1, &x);
    return y;
}

void oct__softmax_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0], *y = n->out;
    softmax_backward(oct__grad(g, x), y->data, y->grad, oct_tensor_rows(x), oct_tensor_cols(x));
}
