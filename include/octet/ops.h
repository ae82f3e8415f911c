/* Differentiable ops. Each takes the graph, allocates its output from the step arena, runs
 * the forward pass and records itself on the tape when an input requires a gradient.
 * Shapes are given as (rows..., cols); mismatched shapes are API misuse and trip OCT_ASSERT.
 *
 * Broadcasting (add, mul): b has the same shape as a, or b's shape equals the trailing
 * dimensions of a (a bias of shape (C) added to every row of a (..., C)), or b has one element.
 * Leading ones in b's shape are ignored, so a (1, C) row broadcasts like a (C) bias.
 */
#ifndef OCTET_OPS_H
#define OCTET_OPS_H

#include "octet/graph.h"

/* y = op(a) @ op(b) with op = transpose when ta/tb. a, b 2-D: a (M,K) or (K,M); b (K,N) or
 * (N,K); y (M,N). Through cblas_sgemm. */
oct_tensor *oct_matmul(oct_graph *g, oct_tensor *a, oct_tensor *b, bool ta, bool tb);
/* y (..., N) = x (..., K) @ w (N, K)^T + b (N); b may be NULL. */
oct_tensor *oct_linear(oct_graph *g, oct_tensor *x, oct_tensor *w, oct_tensor *b);

oct_tensor *oct_add(oct_graph *g, oct_tensor *a, oct_tensor *b);
oct_tensor *oct_mul(oct_graph *g, oct_tensor *a, oct_tensor *b);
oct_tensor *oct_scale(oct_graph *g, oct_tensor *a, float s);

oct_tensor *oct_relu(oct_graph *g, oct_tensor *x);
/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
oct_tensor *oct_gelu(oct_graph *g, oct_tensor *x);
/* GELU, exact: x Phi(x) = 0.5 x erfc(-x / sqrt 2) (PyTorch's nn.GELU() default). */
oct_tensor *oct_gelu_erf(oct_graph *g, oct_tensor *x);
oct_tensor *oct_tanh(oct_graph *g, oct_tensor *x);
oct_tensor *oct_sigmoid(oct_graph *g, oct_tensor *x);
/* Softmax over the last dimension. */
oct_tensor *oct_softmax(oct_graph *g, oct_tensor *x);

/* Mean over rows of -log softmax(logits)[target]: logits (N, C), targets[N] in [0, C).
 * Fused log-softmax + negative log-likelihood; returns a (1) tensor. targets is copied. */
oct_tensor *oct_cross_entropy(oct_graph *g, oct_tensor *logits, const int32_t *targets);
/* The same with a confidence penalty (Pereyra et al. 2017): the mean over rows of the
 * cross-entropy minus beta (>= 0) times the entropy of the row's softmax, which discourages
 * over-confident predictions. Returns that objective (what the backward differentiates); ce,
 * unless NULL, receives the plain mean cross-entropy. beta = 0 is oct_cross_entropy. */
oct_tensor *oct_cross_entropy_penalized(oct_graph *g, oct_tensor *logits, const int32_t *targets,
                                        float beta, float *ce);

/* Sum and mean of all elements: (1) tensors. */
oct_tensor *oct_sum(oct_graph *g, oct_tensor *x);
oct_tensor *oct_mean(oct_graph *g, oct_tensor *x);

/* Same data, new shape (same number of elements). */
oct_tensor *oct_reshape(oct_graph *g, oct_tensor *x, int ndim, const int *shape);
/* Swaps the last two dimensions (a copy). */
oct_tensor *oct_transpose(oct_graph *g, oct_tensor *x);
/* Inverted dropout: zeroes each element with probability p and scales survivors by 1/(1-p)
 * when g->training; the identity otherwise. Masks come from g->rng. When not training (or
 * p == 0) it returns x itself and records nothing. */
oct_tensor *oct_dropout(oct_graph *g, oct_tensor *x, float p);

/* LayerNorm over the last dimension: x (..., C), gamma (C), beta (C). */
oct_tensor *oct_layernorm(oct_graph *g, oct_tensor *x, oct_tensor *gamma, oct_tensor *beta,
                          float eps);
/* Rows of table (V, C) picked by ids (n of them, each in [0, V)); output (ndim..., C) where the
 * leading shape is given by ndim/shape (their product must be n). ids is copied. */
oct_tensor *oct_embedding(oct_graph *g, oct_tensor *table, const int32_t *ids, int ndim,
                          const int *shape);
/* Concatenates n tensors (n <= OCT_MAX_INPUTS) along the last dimension; leading dims equal. */
oct_tensor *oct_concat(oct_graph *g, int n, oct_tensor *const *xs);
/* Columns [start, start+len) of the last dimension (a copy). Splitting is n slices. */
oct_tensor *oct_slice(oct_graph *g, oct_tensor *x, int start, int len);

/* Fused causal multi-head self-attention (GPT): qkv (B,T,3C) holds [q | k | v] along the last
 * dim, each split into n_head heads of C / n_head columns. Per batch and head:
 * softmax(q k^T / sqrt(C / n_head)) with a causal mask (position t sees 0..t), times v.
 * Returns (B,T,C), the heads concatenated. Saves the (B,n_head,T,T) probabilities for the
 * backward when recording. */
oct_tensor *oct_attention(oct_graph *g, oct_tensor *qkv, int n_head);
/* The same attention computed row by row with oct_nl_attention_row (octet/nonlinear.h), so each
 * output row's bits depend only on its own query and keys/values 0..t (not on T, the batch or
 * BLAS): what the integer GPT engine with a key/value cache reproduces exactly. Slower than
 * oct_attention; the same backward. */
oct_tensor *oct_attention_rows(oct_graph *g, oct_tensor *qkv, int n_head);
/* Rotary position embedding of qkv (B,T,3C): a copy with each head's queries and keys at
 * position t rotated by oct_nl_rope_row with the angles of t (octet/nonlinear.h); the values
 * pass unchanged. C / n_head must be even. */
oct_tensor *oct_rope(oct_graph *g, oct_tensor *qkv, int n_head);

#endif
