/* Tensor construction and shape helpers. Tensors are views of arena memory: no free. */
#include "octet/tensor.h"

#include <stdio.h>
#include <string.h>

static oct_tensor *tensor_header(oct_arena *a, int ndim, const int *shape) {
    OCT_ASSERT(ndim >= 1 && ndim <= OCT_MAX_DIMS);
    oct_tensor *t = oct_arena_calloc(a, sizeof *t);
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < ndim; i++) {
        OCT_ASSERT(shape[i] >= 0);
        t->shape[i] = shape[i];
        t->size *= shape[i];
    }
    return t;
}

oct_tensor *oct_tensor_new(oct_arena *a, int ndim, const int *shape) {
    oct_tensor *t = tensor_header(a, ndim, shape);
    t->data = oct_arena_alloc(a, (size_t)t->size * sizeof(float));
    return t;
}

oct_tensor *oct_tensor_zeros(oct_arena *a, int ndim, const int *shape) {
    oct_tensor *t = tensor_header(a, ndim, shape);
    t->data = oct_arena_calloc(a, (size_t)t->size * sizeof(float));
    return t;
}

oct_tensor *oct_tensor_param(oct_arena *a, const char *name, int ndim, const int *shape) {
    oct_tensor *t = oct_tensor_zeros(a, ndim, shape);
    t->grad = oct_arena_calloc(a, (size_t)t->size * sizeof(float));
    t->requires_grad = true;
    t->name = name;
    return t;
}

oct_tensor *oct_tensor_new2(oct_arena *a, int rows, int cols) {
    int shape[2] = {rows, cols};
    return oct_tensor_new(a, 2, shape);
}

oct_tensor *oct_tensor_view(oct_arena *a, const oct_tensor *t, int ndim, const int *shape) {
    oct_tensor *v = tensor_header(a, ndim, shape);
    OCT_ASSERT(v->size == t->size);
    v->data = t->data;
    v->grad = t->grad;
    v->requires_grad = t->requires_grad;
    v->name = t->name;
    v->param_id = t->param_id;
    return v;
}

int oct_tensor_cols(const oct_tensor *t) {
    return t->shape[t->ndim - 1];
}

int64_t oct_tensor_rows(const oct_tensor *t) {
    int cols = oct_tensor_cols(t);
    return cols ? t->size / cols : 0;
}

bool oct_tensor_same_shape(const oct_tensor *a, const oct_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *oct_tensor_shape_str(const oct_tensor *t, char *buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %d" : "%d", t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}
