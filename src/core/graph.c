/* The eager tape: node storage, backward traversal, and the step arena's lifetime.
 * The op table itself lives in src/ops/ops.c; each node carries its backward function, so the
 * core knows nothing about individual ops. */
#include "octet/graph.h"

#include <stdlib.h>
#include <string.h>

void oct_graph_init(oct_graph *g, size_t block_size, uint64_t seed) {
    memset(g, 0, sizeof *g);
    g->shards = 1;
    oct_arena_init(&g->arena, block_size ? block_size : (size_t)64 << 20);
    oct_rng_seed(&g->rng, seed, 0x6f63746574ULL);
}

void oct_graph_free(oct_graph *g) {
    if (!g) return;
    oct_arena_free(&g->arena);
    free(g->nodes);
    memset(g, 0, sizeof *g);
}

void oct_graph_reset(oct_graph *g) {
    oct_arena_reset(&g->arena);
    g->n_nodes = 0;
}

void oct_graph_backward(oct_graph *g, oct_tensor *loss) {
    OCT_ASSERT(loss->size == 1);
    if (!loss->requires_grad) return;
    if (!loss->grad) loss->grad = oct_arena_calloc(&g->arena, sizeof(float));
    loss->grad[0] = 1.0f;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const oct_node *n = &g->nodes[i];
        if (!n->out->grad) continue; /* no gradient reached this node */
        n->backward(g, n);
    }
}
