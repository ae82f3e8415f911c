/* Internal to src/nn: the pieces of the GPT forward pass that the training forward (gpt.c) and
 * the key/value-cache inference (gpt_generate.c) share, so both compute the same float math. */
#ifndef OCTET_NN_GPT_INTERNAL_H
#define OCTET_NN_GPT_INTERNAL_H

#include "octet/nn.h"

/* y (..., out) = x (..., in) @ l->w^T + l->b: every linear layer of the GPT goes through here
 * (the one place to swap in quantized linears). */
oct_tensor *oct__gpt_linear(const oct_gpt *m, oct_graph *g, const oct_linear_layer *l,
                            oct_tensor *x);
/* x (B,T,C) = wte[ids] + wpe[t0 + t] for ids (B,T): token plus position embedding of the
 * positions t0 .. t0 + T - 1 (t0 + T <= context), then dropout. wte and wpe are m's tables or
 * stand-ins of the same shapes (the QAT GPT's fake-quantized ones); wpe NULL (cfg.no_wpe): the
 * token embedding alone. */
oct_tensor *oct__gpt_embed(const oct_gpt *m, oct_graph *g, oct_tensor *wte, oct_tensor *wpe,
                           const int32_t *ids, int B, int T, int t0);
/* The GELU of m's configuration: oct_gelu_erf when cfg.exact_gelu, else oct_gelu. */
oct_tensor *oct__gpt_gelu(const oct_gpt *m, oct_graph *g, oct_tensor *x);
/* The MLP residual branch of block b: fc_proj(gelu(fc(ln_2(x)))) (then dropout), x (..., C). */
oct_tensor *oct__gpt_mlp(const oct_gpt *m, oct_graph *g, const oct_gpt_block *b, oct_tensor *x);
/* logits (..., V) = lm_head(ln_f(x)), x (..., C). */
oct_tensor *oct__gpt_logits(const oct_gpt *m, oct_graph *g, oct_tensor *x);

#endif
