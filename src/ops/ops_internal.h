/* Internal to src/ops: the op table and helpers that every op file uses.
 *
 * OCT_OP_MAP lists every differentiable op once; it generates the op enum, the declarations
 * of the backward functions (oct__<name>_backward, written next to their forward in the op
 * family's file) and the table in ops.c. The gradient-check test walks this table and fails
 * for any op it has not checked.
 */
#ifndef OCTET_OPS_INTERNAL_H
#define OCTET_OPS_INTERNAL_H

#include "octet/ops.h"

#define OCT_OP_MAP(X)                                                                              \
    X(MATMUL, matmul)                                                                              \
    X(LINEAR, linear)                                                                              \
    X(ADD, add)                                                                                    \
    X(MUL, mul)                                                                                    \
    X(SCALE, scale)                                                                                \
    X(RELU, relu)                                                                                  \
    X(GELU, gelu)                                                                                  \
    X(GELU_ERF, gelu_erf)                                                                          \
    X(TANH, tanh)                                                                                  \
    X(SIGMOID, sigmoid)                                                                            \
    X(SOFTMAX, softmax)                                                                            \
    X(CROSS_ENTROPY, cross_entropy)                                                                \
    X(SUM, sum)                                                                                    \
    X(MEAN, mean)                                                                                  \
    X(RESHAPE, reshape)                                                                            \
    X(TRANSPOSE, transpose)                                                                        \
    X(DROPOUT, dropout)                                                                            \
    X(LAYERNORM, layernorm)                                                                        \
    X(EMBEDDING, embedding)                                                                        \
    X(CONCAT, concat)                                                                              \
    X(SLICE, slice)                                                                                \
    X(ATTENTION, attention)                                                                        \
    X(ROPE, rope)                                                                                  \
    X(FAKE_QUANT, fake_quant)                                                                      \
    X(QLINEAR, qlinear)

enum {
#define OCT__OP_ENUM(NAME, name) OCT_OP_##NAME,
    OCT_OP_MAP(OCT__OP_ENUM)
#undef OCT__OP_ENUM
        OCT_OP_COUNT
};

typedef void (*oct_backward_fn)(oct_graph *g, const oct_node *n);

#define OCT__OP_DECL(NAME, name) void oct__##name##_backward(oct_graph *g, const oct_node *n);
OCT_OP_MAP(OCT__OP_DECL)
#undef OCT__OP_DECL

/* True when the op should be recorded: gradients are on and some input requires one. */
bool oct__wants_grad(const oct_graph *g, int nin, oct_tensor *const *in);
/* Appends a node for op with inputs in[0..nin) producing out, marks out as requiring a
 * gradient and returns the node (for p/aux). Call only when oct__wants_grad() said yes. */
oct_node *oct__record(oct_graph *g, int op, oct_tensor *out, int nin, oct_tensor *const *in);
/* The gradient buffer of t, allocated zero-filled from the step arena on first use. */
float *oct__grad(oct_graph *g, oct_tensor *t);
/* A new output tensor shaped like x, in the step arena. */
oct_tensor *oct__like(oct_graph *g, const oct_tensor *x);

#endif
