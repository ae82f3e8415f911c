/* Neural-network modules built from ops: linear layers, the MLP, the GPT, data parallelism.
 *
 * A model is a plain struct of layers whose tensors live in a model arena. Every trainable
 * tensor is also appended to an oct_params list under a unique dotted name ("fc0.weight"),
 * which the optimizer steps over and which names the tensors in safetensors files (oct_params
 * lives in octet/tensor.h).
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

/* The number of parameters (weights and biases) of an MLP of sizes (n_sizes of them). */
int64_t oct_mlp_param_count(const int *sizes, int n_sizes);
/* Builds the layers (all with bias) in arena and appends their tensors to params. Fails with
 * OCT_EINVAL when n_sizes < 2, a size is not positive, or act/init is out of range. */
oct_status oct_mlp_init(oct_mlp *m, oct_arena *arena, oct_params *params, const int *sizes,
                        int n_sizes, oct_activation act, oct_init init, oct_rng *rng);
/* logits (B, sizes[n-1]) from x (B, sizes[0]); no activation after the last layer. */
oct_tensor *oct_mlp_forward(const oct_mlp *m, oct_graph *g, oct_tensor *x);

/* ---- GPT: decoder-only transformer (owned by the GPT engineer) ------------------------------ */

/* A pre-LayerNorm GPT as in GPT-2 / nanoGPT:
 *
 *     x = wte[ids] + wpe[0..T)   (wte[ids] alone when cfg.no_wpe)      (B,T,C)
 *     per block:  x += proj(attention(qkv(ln_1(x))))
 *                 x += mlp.proj(gelu(mlp.fc(ln_2(x))))
 *     logits = lm_head(ln_f(x))                                        (B,T,V)
 *
 * With cfg.rope the attention sees rope(qkv(...)): queries and keys rotated by their positions
 * (oct_rope), on top of the learned position embedding, or instead of it with cfg.no_wpe.
 *
 * Parameter names (the safetensors tensor names): "wte.weight" (V,C), "wpe.weight" (T_max,C),
 * "h.<i>.ln_1.weight"/".bias" (C), "h.<i>.attn.qkv.weight" (3C,C)/".bias", "h.<i>.attn.proj.weight"
 * (C,C)/".bias", "h.<i>.ln_2.weight"/".bias", "h.<i>.mlp.fc.weight" (M,C)/".bias",
 * "h.<i>.mlp.proj.weight" (C,M)/".bias", "ln_f.weight"/".bias", "lm_head.weight" (V,C, no bias;
 * absent when tied to wte); no "wpe.weight" with cfg.no_wpe. GPT-2 init: weights and embeddings
 * N(0, 0.02^2), the two residual projections N(0, (0.02 / sqrt(2 n_layer))^2), biases 0, LayerNorm
 * gain 1 and bias 0. */

#define OCT_GPT_LN_EPS 1e-5f

typedef struct oct_gpt_config {
    int vocab;       /* V, token ids lie in [0, V) */
    int context;     /* T_max, the longest sequence (rows of wpe) */
    int n_layer;     /* blocks */
    int n_head;      /* attention heads; must divide width */
    int width;       /* C, the residual stream width */
    int mlp;         /* M, hidden width of each block's MLP (GPT-2 uses 4 C) */
    bool tied;       /* the LM head reuses wte */
    bool exact_gelu; /* GELU with erf (PyTorch's nn.GELU() default), not the tanh form */
    bool rope;       /* also rotary position embedding of q and k (oct_rope); needs an even
                        head size */
    bool no_wpe;     /* no learned position embedding (wpe NULL); needs rope */
    float dropout;   /* in [0, 1), after the embeddings and each residual branch; 0 = none */
} oct_gpt_config;

typedef struct oct_gpt_block {
    oct_tensor *ln1_w, *ln1_b; /* (C) */
    oct_linear_layer qkv;      /* C -> 3C, [q | k | v] */
    oct_linear_layer proj;     /* C -> C */
    oct_tensor *ln2_w, *ln2_b; /* (C) */
    oct_linear_layer fc;       /* C -> M */
    oct_linear_layer fc_proj;  /* M -> C */
} oct_gpt_block;

typedef struct oct_gpt {
    oct_gpt_config cfg;
    oct_tensor *wte;           /* (V,C) */
    oct_tensor *wpe;           /* (T_max,C); NULL with cfg.no_wpe */
    oct_gpt_block *h;          /* n_layer blocks, in the model arena */
    oct_tensor *lnf_w, *lnf_b; /* (C) */
    oct_linear_layer lm_head;  /* C -> V without bias; w is wte when tied */
} oct_gpt;

/* OCT_EINVAL with a message naming the field unless every size is positive, n_head divides
 * width (into an even head size with rope), no_wpe comes with rope, vocab <= 65536 and dropout lies
 * in [0, 1). */
oct_status oct_gpt_config_check(const oct_gpt_config *cfg);
/* The number of parameters oct_gpt_init creates for cfg (sizes as checked above). */
int64_t oct_gpt_param_count(const oct_gpt_config *cfg);
/* Checks cfg, then creates the parameters in arena (GPT-2 init drawing from rng) and appends
 * them to params in the order listed above. */
oct_status oct_gpt_init(oct_gpt *m, oct_arena *arena, oct_params *params, const oct_gpt_config *cfg,
                        oct_rng *rng);
/* logits (B,T,V) for token ids (B,T), each in [0, V); 1 <= T <= context. Dropout is active
 * when g->training and cfg.dropout > 0. */
oct_tensor *oct_gpt_forward(const oct_gpt *m, oct_graph *g, const int32_t *ids, int B, int T);
/* Muon's picks among the parameters of the oct_gpt gpt points to (oct_optim_hyper.muon_select):
 * 3 row blocks (q, k, v) for a block's qkv weight, 1 for its proj, fc and fc_proj weights, 0 for
 * every other tensor (embeddings, LM head, biases, LayerNorms). */
int oct_gpt_muon_blocks(const oct_tensor *p, const void *gpt);
/* Mean cross-entropy (nats per token) of logits (B,T,V) against targets (B,T), less penalty
 * times the mean entropy of the predictions (oct_cross_entropy_penalized; 0: none): a (1)
 * tensor. ce, unless NULL, receives the plain mean cross-entropy. */
oct_tensor *oct_gpt_loss(oct_graph *g, oct_tensor *logits, const int32_t *targets, float penalty,
                         float *ce);

/* Inference with a key/value cache, one token at a time, without recording anything: the
 * int8 engine's attention row kernel over the cached keys (oct_nl_attention_row), and the same ops
 * (LayerNorm, GELU, linear through the model's one linear helper) as the training forward, on a
 * private graph in no-grad mode used only as scratch memory. The logits at position t equal those
 * of oct_gpt_forward on the same t + 1 tokens up to float rounding. */
typedef struct oct_gpt_cache {
    const oct_gpt *m; /* borrowed */
    float *k;         /* (n_layer, C, context) keys of positions [0, len), transposed */
    float *v;         /* (n_layer, context, C) values of positions [0, len) */
    float *logits;    /* (V) logits after the last step */
    float *rope;      /* (context, C / n_head) RoPE angles of every position; NULL without rope */
    int len;          /* positions filled */
    oct_graph g;      /* scratch for one step */
} oct_gpt_cache;

/* Allocates the cache for m (OCT_ENOMEM on failure), empty. */
oct_status oct_gpt_cache_init(oct_gpt_cache *c, const oct_gpt *m);
/* Releases the buffers. oct_gpt_cache_free(NULL) is a no-op. */
void oct_gpt_cache_free(oct_gpt_cache *c);
/* Forgets every position. */
void oct_gpt_cache_reset(oct_gpt_cache *c);
/* Appends token id at position len (len < context, id in [0, V), else OCT_ASSERT) and returns
 * the logits (V) predicting the next token (c->logits, valid until the next step). */
const float *oct_gpt_cache_step(oct_gpt_cache *c, int32_t id);

/* Draws a token from logits (V, no NaN): softmax(logits / temperature) restricted to the top_k
 * largest logits (all of them when top_k <= 0 or top_k >= V; ties with the k-th value are kept
 * too), in float64 from one oct_rng_uniform draw. temperature <= 0 picks the argmax (first on ties)
 * without drawing. */
int32_t oct_gpt_sample(const float *logits, int V, float temperature, int top_k, oct_rng *rng);

/* Called with each token as it is sampled, before the next one is computed (to print text as it
 * comes); ctx is the caller's. */
typedef void (*oct_token_fn)(void *ctx, int32_t id);

/* Feeds prompt[0..n_prompt) through a fresh cache, then samples n_new tokens into out (NULL: not
 * kept), calling on_token (NULL: none) with each. When the context is full, the window slides:
 * the cache is rebuilt from the last context / 2 tokens (at least one), which then sit at
 * positions 0.. again, so generation never stops but forgets older text (a prompt longer than
 * the context slides the same way). OCT_EINVAL when n_prompt < 1, n_new < 0 or a prompt id is
 * outside [0, V); OCT_ENOMEM. */
oct_status oct_gpt_generate(const oct_gpt *m, const int32_t *prompt, int n_prompt, int n_new,
                            float temperature, int top_k, oct_rng *rng, int32_t *out /* (n_new) */,
                            oct_token_fn on_token, void *ctx);

/* ---- data parallelism ----------------------------------------------------------------------- */

/* Data-parallel training steps on the CPU's cores: a minibatch is split into `shards` parts;
 * each runs forward and backward on its own graph (single-threaded OpenBLAS), shard 0 straight
 * into the parameters' gradients, the others into private buffers (oct_graph.grad_redirect)
 * that are then added in a fixed order, so a step is reproducible for a given shard count. For
 * small models this keeps both cores busy far better than splitting each GEMM.
 *
 *     oct_dp dp;
 *     oct_dp_init(&dp, &params, 2, seed);
 *     float loss = oct_dp_step(&dp, my_shard_fn, &ctx);   zeroes, runs, reduces the gradients
 *     oct_optim_step(&opt, lr);
 */
#define OCT_DP_MAX_SHARDS 8

/* Runs forward and backward of shard `shard` (of `shards`) on graph g (already reset, training
 * mode) and returns the shard's loss, weighted so that the shards' losses sum to the batch
 * loss (e.g. mean loss * shard rows / batch rows; backpropagate the weighted value). */
typedef float (*oct_dp_shard_fn)(void *ctx, oct_graph *g, int shard, int shards);

typedef struct oct_dp {
    int shards;
    /* Leave the shards' gradients in grads[1..] for the optimizer to add as it updates
     * (oct_optim.extra = (float *const *const *)&dp.grads[1], n_extra = shards - 1), saving a
     * pass over every gradient; only without gradient clipping, which needs the sum first. */
    bool defer_reduce;
    const oct_params *params;            /* borrowed */
    oct_graph graphs[OCT_DP_MAX_SHARDS]; /* one per shard */
    float **grads[OCT_DP_MAX_SHARDS];    /* shards 1..: one buffer per parameter */
} oct_dp;

/* shards in [1, OCT_DP_MAX_SHARDS]; every tensor of params must have been added to params
 * (param_id set). Graph seeds are seed + shard. */
oct_status oct_dp_init(oct_dp *dp, const oct_params *params, int shards, uint64_t seed);
/* Frees the shard graphs and gradient buffers; params must still be alive (its length sizes
 * them). oct_dp_free(NULL) is a no-op. */
void oct_dp_free(oct_dp *dp);
/* Zeroes the parameters' gradients, runs fn for every shard in parallel and sums the shards'
 * gradients into the parameters'. Returns the sum of the shards' losses. */
float oct_dp_step(oct_dp *dp, oct_dp_shard_fn fn, void *ctx);
/* Rows [*lo, *hi) of n that shard `shard` of `shards` takes: as even a split as can be, the
 * first shards taking one more row where n does not divide, so shard 0 has a row if n >= 1. */
void oct_dp_range(int n, int shard, int shards, int *lo, int *hi);

#endif
