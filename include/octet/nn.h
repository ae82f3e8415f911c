/* Neural-network modules built from ops: the parameter list, linear layers and the MLP.
 *
 * A model is a plain struct of layers whose tensors live in a model arena. Every trainable
 * tensor is also appended to an oct_params list under a unique dotted name ("fc0.weight"),
 * which the optimizer steps over and which names the tensors in safetensors files.
 *
 *     oct_arena model; oct_arena_init(&model, 0);
 *     oct_params params; oct_params_init(&params);
 *     oct_rng rng; oct_rng_seed(&rng, 42, 0);
 *     oct_mlp mlp;
 *     int sizes[] = {784, 256, 128, 10};
 *     oct_mlp_init(&mlp, &model, &params, sizes, 4, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng);
 *     oct_tensor *logits = oct_mlp_forward(&mlp, &g, x);    x (B,784) -> logits (B,10)
 */
#ifndef OCTET_NN_H
#define OCTET_NN_H

#include "octet/ops.h"

/* ---- parameter list ------------------------------------------------------------------------- */

/* The trainable tensors of a model, in creation order. The items array is malloc'd and owned by
 * the list; the tensors are borrowed (they live in the model arena). */
typedef struct oct_params {
    oct_tensor **items;
    int n, cap;
} oct_params;

/* Initializes an empty list. Allocates nothing. */
void oct_params_init(oct_params *p);
/* Frees the items array (not the tensors). oct_params_free(NULL) is a no-op. */
void oct_params_free(oct_params *p);
/* Appends t. t must be a parameter (requires_grad, grad allocated) with a name that no tensor
 * in the list has yet; anything else trips OCT_ASSERT. */
void oct_params_add(oct_params *p, oct_tensor *t);
/* The tensor named name, or NULL. */
oct_tensor *oct_params_find(const oct_params *p, const char *name);
/* Sets every gradient to zero. */
void oct_params_zero_grad(const oct_params *p);
/* Number of scalars in all tensors of the list. */
int64_t oct_params_count(const oct_params *p);
/* A printf-formatted string stored in arena a: oct_nn_name(a, "%s.weight", "fc0"). Used to name
 * parameters and state tensors, whose names must outlive the caller's buffers. */
const char *oct_nn_name(oct_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- initializers and activations ----------------------------------------------------------- */

typedef enum {
    /* PyTorch nn.Linear default: kaiming_uniform(a = sqrt(5)), i.e. w ~ U(-1/sqrt(in), 1/sqrt(in)),
     * and bias ~ U(-1/sqrt(in), 1/sqrt(in)). */
    OCT_INIT_KAIMING_UNIFORM,
    /* He et al. for ReLU networks: w ~ N(0, 2/in); bias 0. */
    OCT_INIT_KAIMING_NORMAL,
    /* Glorot: w ~ U(-sqrt(6/(in+out)), sqrt(6/(in+out))); bias 0. */
    OCT_INIT_XAVIER_UNIFORM,
    OCT_INIT_COUNT
} oct_init;

typedef enum {
    OCT_ACT_NONE,
    OCT_ACT_RELU,
    OCT_ACT_GELU, /* tanh approximation, see oct_gelu */
    OCT_ACT_TANH,
    OCT_ACT_COUNT
} oct_activation;

/* Names used by command-line flags and saved metadata: "kaiming_uniform", "kaiming_normal",
 * "xavier_uniform"; "none", "relu", "gelu", "tanh". Out-of-range values give "?". */
const char *oct_init_name(oct_init init);
const char *oct_activation_name(oct_activation act);
/* Parse a name back; OCT_EINVAL with a message listing the valid names otherwise. */
oct_status oct_init_parse(const char *name, oct_init *out);
oct_status oct_activation_parse(const char *name, oct_activation *out);
/* Applies act to x (the identity for OCT_ACT_NONE, which returns x itself). */
oct_tensor *oct_activation_forward(oct_graph *g, oct_activation act, oct_tensor *x);

/* ---- linear layer --------------------------------------------------------------------------- */

typedef struct oct_linear_layer {
    oct_tensor *w; /* (out, in) */
    oct_tensor *b; /* (out), or NULL without bias */
} oct_linear_layer;

/* Creates w ("<name>.weight") and, when bias, b ("<name>.bias") in arena, initializes them with
 * init drawing from rng, and appends them to params. in, out > 0. */
void oct_linear_layer_init(oct_linear_layer *l, oct_arena *arena, oct_params *params,
                           const char *name, int in, int out, bool bias, oct_init init,
                           oct_rng *rng);
/* y (..., out) = x (..., in) @ w^T + b. */
oct_tensor *oct_linear_layer_forward(const oct_linear_layer *l, oct_graph *g, oct_tensor *x);

/* ---- multi-layer perceptron ----------------------------------------------------------------- */

/* sizes[0] -> sizes[1] -> ... -> sizes[n_sizes-1]: n_sizes-1 linear layers named "fc0", "fc1",
 * ..., the activation (then dropout, when dropout > 0) after every layer but the last. */
typedef struct oct_mlp {
    int n_layers;
    int *sizes; /* n_layers + 1 entries, in the model arena */
    oct_activation act;
    float dropout;            /* probability in [0, 1); 0 = no dropout. Set after init. */
    oct_linear_layer *layers; /* n_layers, in the model arena */
} oct_mlp;

/* Builds the layers (all with bias) in arena and appends their tensors to params. Fails with
 * OCT_EINVAL when n_sizes < 2, a size is not positive, or act/init is out of range. */
oct_status oct_mlp_init(oct_mlp *m, oct_arena *arena, oct_params *params, const int *sizes,
                        int n_sizes, oct_activation act, oct_init init, oct_rng *rng);
/* logits (B, sizes[n-1]) from x (B, sizes[0]); no activation after the last layer. */
oct_tensor *oct_mlp_forward(const oct_mlp *m, oct_graph *g, oct_tensor *x);

#endif
