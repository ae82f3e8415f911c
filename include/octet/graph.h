/* The autograd tape.
 *
 * An oct_graph owns the step arena and an eager tape. Each op call (see octet/ops.h) allocates
 * its output from the step arena, computes the forward pass at once and, when an input requires
 * a gradient, appends a node to the tape. oct_graph_backward() walks the tape in reverse and
 * accumulates gradients (`grad += ...`) into every tensor that requires one. oct_graph_reset()
 * rewinds the step arena and clears the tape for the next step; parameters live elsewhere (in a
 * model arena) and keep their gradients until the optimizer zeroes them.
 */
#ifndef OCTET_GRAPH_H
#define OCTET_GRAPH_H

#include "octet/tensor.h"

#define OCT_MAX_INPUTS 4

struct oct_graph;

typedef struct oct_node {
    int op; /* index into the op table (oct_op_name) */
    void (*backward)(struct oct_graph *g, const struct oct_node *n); /* from the op table */
    oct_tensor *out;                /* the tensor this node computed */
    oct_tensor *in[OCT_MAX_INPUTS]; /* its inputs, NULL-padded */
    union {
        float f[4];
        int i[4];
    } p;       /* small per-op parameters */
    void *aux; /* per-op saved state, in the step arena */
    void *ctx; /* per-op borrowed object (e.g. a quantizer) */
} oct_node;

typedef struct oct_graph {
    oct_arena arena; /* the step arena: activations, their gradients, saved state */
    oct_node *nodes; /* the tape */
    int n_nodes, cap_nodes;
    bool training; /* dropout active, observers update */
    bool no_grad;  /* record nothing (inference) */
    /* Data parallelism: when set, the gradient of a parameter t (t->param_id > 0) accumulates
     * into grad_redirect[t->param_id - 1] instead of t->grad, so that several graphs can run
     * backward passes of one model at once (see oct_dp in nn.h). */
    float **grad_redirect;
    int n_redirect;
    int shard;   /* this graph's shard in a data-parallel step (0 otherwise): selects per-shard
                    scratch state of ops, such as the integer layers of QAT */
    int shards;  /* the number of shards of that step (1 otherwise): with more than one, QAT
                    observers collect ranges per shard for a commit after the step */
    oct_rng rng; /* dropout masks */
} oct_graph;

/* Initializes an empty graph; arena blocks of block_size bytes (0 = 64 MiB). */
void oct_graph_init(oct_graph *g, size_t block_size, uint64_t seed);
/* Frees the arena and the tape. oct_graph_free(NULL) is a no-op. */
void oct_graph_free(oct_graph *g);
/* Rewinds the step arena and clears the tape. Tensors from the last step become invalid. */
void oct_graph_reset(oct_graph *g);
/* Back-propagates from a scalar (size 1) loss: seeds d(loss) = 1 and runs every node's
 * backward in reverse order. Gradients accumulate into parameters' grad buffers. */
void oct_graph_backward(oct_graph *g, oct_tensor *loss);
/* Short name of op index i ("matmul"), and the number of ops in the table. */
const char *oct_op_name(int i);
int oct_op_count(void);

#endif
