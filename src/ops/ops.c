/* The op table (names and backward functions, generated from OCT_OP_MAP) and the recording
 * helpers shared by every op family. */
#include "ops_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    oct_backward_fn backward;
} op_table[] = {
#define OCT__OP_ROW(NAME, name) [OCT_OP_##NAME] = {#name, oct__##name##_backward},
    OCT_OP_MAP(OCT__OP_ROW)
#undef OCT__OP_ROW
};
_Static_assert(sizeof op_table / sizeof op_table[0] == OCT_OP_COUNT, "op table incomplete");

const char *oct_op_name(int i) {
    return i >= 0 && i < OCT_OP_COUNT ? op_table[i].name : "?";
}

int oct_op_count(void) {
    return OCT_OP_COUNT;
}

bool oct__wants_grad(const oct_graph *g, int nin, oct_tensor *const *in) {
    if (g->no_grad) return false;
    for (int i = 0; i < nin; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

oct_node *oct__record(oct_graph *g, int op, oct_tensor *out, int nin, oct_tensor *const *in) {
    OCT_ASSERT(nin <= OCT_MAX_INPUTS);
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 256;
        oct_node *nodes = realloc(g->nodes, (size_t)cap * sizeof *nodes);
        OCT_ALLOC_CHECK(nodes, (size_t)cap * sizeof *nodes);
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    oct_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = op_table[op].backward;
    n->out = out;
    for (int i = 0; i < nin; i++) n->in[i] = in[i];
    out->requires_grad = true;
    return n;
}

float *oct__grad(oct_graph *g, oct_tensor *t) {
    if (t->param_id > 0 && t->param_id <= g->n_redirect) return g->grad_redirect[t->param_id - 1];
    if (!t->grad) t->grad = oct_arena_calloc(&g->arena, (size_t)t->size * sizeof(float));
    return t->grad;
}

oct_tensor *oct__like(oct_graph *g, const oct_tensor *x) {
    return oct_tensor_new(&g->arena, x->ndim, x->shape);
}
