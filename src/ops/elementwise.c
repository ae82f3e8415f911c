/* Elementwise arithmetic and whole-tensor reductions: add and mul (with broadcasting of b),
 * scale, sum, mean, and inverted dropout. Each forward is next to its backward; backward
 * accumulates (`da[i] += ...`), so a tensor used twice receives the sum of both gradients.
 *
 * Broadcasting: b's shape, with leading ones dropped, must equal the trailing dimensions of a.
 * Then a is seen as (R, nb) with nb = b->size and every row meets the same b: that covers the
 * same shape (R = 1), a bias (nb = C) and a single element (nb = 1) with one loop.
 */
#include "ops_internal.h"

/* Number of elements of b that a row of a meets (b->size); asserts b broadcasts against a. */
static int64_t broadcast_cols(const oct_tensor *a, const oct_tensor *b) {
    int lead = 0;
    while (lead < b->ndim - 1 && b->shape[lead] == 1) lead++;
    if (b->size == 1) lead = b->ndim;
    int nd = b->ndim - lead;
    OCT_ASSERT(nd <= a->ndim);
    for (int i = 0; i < nd; i++) OCT_ASSERT(b->shape[lead + i] == a->shape[a->ndim - nd + i]);
    return b->size;
}

/* ---- add ------------------------------------------------------------------------------------ */

static void add_forward(float *y,       /* (R,nb) */
                        const float *a, /* (R,nb) */
                        const float *b, /* (nb) */
                        int64_t R, int64_t nb) {
    for (int64_t r = 0; r < R; r++) {
        float *yr = y + r * nb;
        const float *ar = a + r * nb;
        for (int64_t j = 0; j < nb; j++) yr[j] = ar[j] + b[j];
    }
}

static void add_backward(float *da,       /* (R,nb) or NULL */
                         float *db,       /* (nb) or NULL */
                         const float *dy, /* (R,nb) */
                         int64_t R, int64_t nb) {
    for (int64_t r = 0; r < R; r++) {
        const float *dyr = dy + r * nb;
        if (da)
            for (int64_t j = 0; j < nb; j++) da[r * nb + j] += dyr[j];
        if (db)
            for (int64_t j = 0; j < nb; j++) db[j] += dyr[j];
    }
}

oct_tensor *oct_add(oct_graph *g, oct_tensor *a, oct_tensor *b) {
    int64_t nb = broadcast_cols(a, b);
    oct_tensor *y = oct__like(g, a);
    add_forward(y->data, a->data, b->data, a->size / nb, nb);
    oct_tensor *in[2] = {a, b};
    if (oct__wants_grad(g, 2, in)) oct__record(g, OCT_OP_ADD, y, 2, in);
    return y;
}

void oct__add_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *a = n->in[0], *b = n->in[1];
    float *da = a->requires_grad ? oct__grad(g, a) : NULL;
    float *db = b->requires_grad ? oct__grad(g, b) : NULL;
    add_backward(da, db, n->out->grad, a->size / b->size, b->size);
}

/* ---- mul ------------------------------------------------------------------------------------ */

static void mul_forward(float *y,       /* (R,nb) */
                        const float *a, /* (R,nb) */
                        const float *b, /* (nb) */
                        int64_t R, int64_t nb) {
    for (int64_t r = 0; r < R; r++) {
        float *yr = y + r * nb;
        const float *ar = a + r * nb;
        for (int64_t j = 0; j < nb; j++) yr[j] = ar[j] * b[j];
    }
}

static void mul_backward(float *da,       /* (R,nb) or NULL */
                         float *db,       /* (nb) or NULL */
                         const float *dy, /* (R,nb) */
                         const float *a,  /* (R,nb) */
                         const float *b,  /* (nb) */
                         int64_t R, int64_t nb) {
    for (int64_t r = 0; r < R; r++) {
        const float *dyr = dy + r * nb, *ar = a + r * nb;
        if (da)
            for (int64_t j = 0; j < nb; j++) da[r * nb + j] += dyr[j] * b[j];
        if (db)
            for (int64_t j = 0; j < nb; j++) db[j] += dyr[j] * ar[j];
    }
}

oct_tensor *oct_mul(oct_graph *g, oct_tensor *a, oct_tensor *b) {
    int64_t nb = broadcast_cols(a, b);
    oct_tensor *y = oct__like(g, a);
    mul_forward(y->data, a->data, b->data, a->size / nb, nb);
    oct_tensor *in[2] = {a, b};
    if (oct__wants_grad(g, 2, in)) oct__record(g, OCT_OP_MUL, y, 2, in);
    return y;
}

void oct__mul_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *a = n->in[0], *b = n->in[1];
    float *da = a->requires_grad ? oct__grad(g, a) : NULL;
    float *db = b->requires_grad ? oct__grad(g, b) : NULL;
    mul_backward(da, db, n->out->grad, a->data, b->data, a->size / b->size, b->size);
}

/* ---- scale ---------------------------------------------------------------------------------- */

oct_tensor *oct_scale(oct_graph *g, oct_tensor *a, float s) {
    oct_tensor *y = oct__like(g, a);
    for (int64_t i = 0; i < a->size; i++) y->data[i] = s * a->data[i];
    if (oct__wants_grad(g, 1, &a)) oct__record(g, OCT_OP_SCALE, y, 1, &a)->p.f[0] = s;
    return y;
}

void oct__scale_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *a = n->in[0];
    float s = n->p.f[0], *da = oct__grad(g, a);
    const float *dy = n->out->grad;
    for (int64_t i = 0; i < a->size; i++) da[i] += s * dy[i];
}

/* ---- sum, mean ------------------------------------------------------------------------------ */

/* Sum of x in float64, in index order (deterministic). */
static double sum_forward(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

/* dx[i] += c for all i (c = dy, or dy / n for the mean). */
static void fill_add_backward(float *dx, int64_t n, float c) {
    for (int64_t i = 0; i < n; i++) dx[i] += c;
}

static oct_tensor *reduce(oct_graph *g, oct_tensor *x, int op, double div) {
    int one = 1;
    oct_tensor *y = oct_tensor_new(&g->arena, 1, &one);
    y->data[0] = (float)(sum_forward(x->data, x->size) / div);
    if (oct__wants_grad(g, 1, &x)) oct__record(g, op, y, 1, &x);
    return y;
}

oct_tensor *oct_sum(oct_graph *g, oct_tensor *x) {
    return reduce(g, x, OCT_OP_SUM, 1.0);
}

oct_tensor *oct_mean(oct_graph *g, oct_tensor *x) {
    OCT_ASSERT(x->size > 0);
    return reduce(g, x, OCT_OP_MEAN, (double)x->size);
}

void oct__sum_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0];
    fill_add_backward(oct__grad(g, x), x->size, n->out->grad[0]);
}

void oct__mean_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0];
    fill_add_backward(oct__grad(g, x), x->size, (float)(n->out->grad[0] / (double)x->size));
}

/* ---- dropout -------------------------------------------------------------------------------- */

/* The mask keep[i] (1 = kept) is saved in aux; survivors are scaled by 1 / (1 - p). */
oct_tensor *oct_dropout(oct_graph *g, oct_tensor *x, float p) {
    OCT_ASSERT(p >= 0.0f && p < 1.0f);
    if (!g->training || p == 0.0f) return x;
    oct_tensor *y = oct__like(g, x);
    uint8_t *keep = oct_arena_alloc(&g->arena, (size_t)x->size);
    float s = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < x->size; i++) keep[i] = oct_rng_uniform(&g->rng) >= p;
    for (int64_t i = 0; i < x->size; i++) y->data[i] = keep[i] ? s * x->data[i] : 0.0f;
    if (oct__wants_grad(g, 1, &x)) {
        oct_node *n = oct__record(g, OCT_OP_DROPOUT, y, 1, &x);
        n->p.f[0] = s;
        n->aux = keep;
    }
    return y;
}

void oct__dropout_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *x = n->in[0];
    const uint8_t *keep = n->aux;
    const float *dy = n->out->grad;
    float s = n->p.f[0], *dx = oct__grad(g, x);
    for (int64_t i = 0; i < x->size; i++) dx[i] += keep[i] ? s * dy[i] : 0.0f;
}
