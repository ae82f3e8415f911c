/* Embedding lookup: rows of a table picked by integer ids. The ids are copied into the step
 * arena; the backward scatter-adds each output row into the table's gradient (an id that
 * appears twice receives both rows).
 */
#include "ops_internal.h"

#include <string.h>

oct_tensor *oct_embedding(oct_graph *g, oct_tensor *table, const int32_t *ids, int ndim,
                          const int *shape) {
    OCT_ASSERT(table->ndim == 2 && ndim >= 1 && ndim < OCT_MAX_DIMS);
    int V = table->shape[0], C = table->shape[1];
    int oshape[OCT_MAX_DIMS];
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        oshape[i] = shape[i];
        n *= shape[i];
    }
    oshape[ndim] = C;
    int32_t *idc = oct_arena_alloc(&g->arena, (size_t)n * sizeof *idc);
    memcpy(idc, ids, (size_t)n * sizeof *idc);
    oct_tensor *y = oct_tensor_new(&g->arena, ndim + 1, oshape); /* (n,C) */
    for (int64_t i = 0; i < n; i++) {
        OCT_ASSERT(idc[i] >= 0 && idc[i] < V);
        memcpy(y->data + i * C, table->data + (int64_t)idc[i] * C, (size_t)C * sizeof(float));
    }
    if (oct__wants_grad(g, 1, &table)) oct__record(g, OCT_OP_EMBEDDING, y, 1, &table)->aux = idc;
    return y;
}

void oct__embedding_backward(oct_graph *g, const oct_node *n) {
    oct_tensor *table = n->in[0], *y = n->out;
    const int32_t *ids = n->aux;         /* (n) */
    const float *dy = y->grad;           /* (n,C) */
    float *dtable = oct__grad(g, table); /* (V,C) */
    int C = table->shape[1];
    int64_t rows = oct_tensor_rows(y);
    for (int64_t i = 0; i < rows; i++) {
        float *dt = dtable + (int64_t)ids[i] * C;
        const float *dyr = dy + i * C;
        for (int j = 0; j < C; j++) dt[j] += dyr[j];
    }
}
