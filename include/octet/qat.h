/* Quantization-aware training: fake-quant ops, the quantized linear op and the QAT MLP.
 *
 * The quantized linear op does not imitate the integer arithmetic in float: its forward pass
 * builds the integer layer with oct_qlinear_build and runs oct_qlinear_forward/oct_qlinear_acc
 * (include/octet/int8.h), the very functions the deployed engine calls, so the model that
 * oct_qat_mlp_to_int8 exports computes bit-identical integers. Its backward pass is the
 * straight-through estimator (STE): the float linear-layer gradient on dequantized inputs and
 * weights, masked where a quantizer clamped.
 *
 *     oct_qat_config cfg;
 *     oct_qat_config_default(&cfg);
 *     oct_qat_mlp q;
 *     oct_qat_mlp_init(&q, &mlp, &model_arena, &params, &cfg);    before oct_optim_init
 *     oct_tensor *logits = oct_qat_mlp_forward(&q, &g, x);          x (B,in) float
 *     oct_i8_mlp deployed;
 *     oct_qat_mlp_to_int8(&q, mean, std, &deployed);
 *
 * Quantization points of an MLP with L layers: point 0 is the input of layer 0, point i
 * (1 <= i < L) the ReLU output of layer i-1 (= the input of layer i). The logits of the last
 * layer are NOT requantized: its int32 accumulators are the integer logits, and the float logits
 * are oct_acc_to_real_rows of them (an 8-bit logit would create argmax ties).
 */
#ifndef OCTET_QAT_H
#define OCTET_QAT_H

#include "octet/int8.h"
#include "octet/nn.h"
#include "octet/quant.h"

/* ---- fake-quant ops (src/ops/fakequant.c) --------------------------------------------------
 *
 * y = dequantize(quantize(x)) by oct_fake_quant_rows, per tensor (nch = 1) or per channel
 * (nch = rows of x, e.g. the output channels of a weight (N,K)). Codes [qmin, qmax] may be any
 * int32 range with qmin <= z <= qmax and offsets from z up to OCT_QUANT_MAX_OFFSET. Backward: the
 * clipped STE, dL/dx = dL/dy where oct_quant_passes, 0 where the code was clamped. */

/* Fixed (observer-given) s, z: (nch) each, copied; no scale gradient. */
oct_tensor *oct_fake_quant_fixed(oct_graph *g, oct_tensor *x, int nch, const float *s,
                                 const int32_t *z, int32_t qmin, int32_t qmax);
/* LSQ: s is a (nch) parameter (each > 0) receiving dL/ds[c] = sum over the elements of channel c
 * of dL/dy * oct_lsq_grad_scale(x, s[c], z[c], qmin, qmax, g) with g = oct_lsq_grad_factor(
 * size / nch, oct_lsq_levels(z[c], qmin, qmax)). z (nch) is copied. */
oct_tensor *oct_fake_quant_lsq(oct_graph *g, oct_tensor *x, oct_tensor *s, const int32_t *z,
                               int32_t qmin, int32_t qmax);
/* PACT: y = fake_quant(clamp(x, 0, alpha)) with s = alpha / qmax, z = 0, codes [0, qmax];
 * alpha is a (1) parameter > 0. dL/dx = dL/dy * oct_pact_grad_x, dL/dalpha = sum dL/dy *
 * oct_pact_grad_alpha (Choi et al.: the STE ignores the dependence of the rounding on alpha). */
oct_tensor *oct_fake_quant_pact(oct_graph *g, oct_tensor *x, oct_tensor *alpha, int32_t qmax);

/* ---- quantizers ---------------------------------------------------------------------------- */

/* Weight quantizers: per output channel, symmetric, zero point 0. */
typedef enum {
    OCT_QAT_W_MINMAX, /* s[c] = max_k |w[c][k]| / qmax, recomputed every forward */
    OCT_QAT_W_LSQ,    /* s[c] learned (initialized by oct_lsq_init_scale of row c) */
    /* Logarithmic: codes 0 and +-2^k up to 2^e with e = 2^(bits-1) - 2 (bits 2..4: ternary,
     * {0, +-1, +-2, +-4}, {0, +-1, ..., +-64}), s[c] = max_k |w[c][k]| / 2^e recomputed every
     * forward (oct_quantize_pow2_s8): int8 codes, so export and engine run them unchanged. */
    OCT_QAT_W_POW2,
    /* Non-uniform: a codebook of at most 2^bits int8 codes (bits 2..7) per layer, fitted to the
     * weights every forward by oct_quantize_codebook_s8, s[c] = max_k |w[c][k]| / 127: int8
     * codes again, so export and engine run them unchanged. */
    OCT_QAT_W_KMEANS,
    OCT_QAT_W_COUNT
} oct_qat_wmode;

/* Activation quantizers: per tensor, unsigned codes [0, 2^bits - 1]. */
typedef enum {
    OCT_QAT_A_EMA,    /* moving-average min-max observer (asymmetric) */
    OCT_QAT_A_MINMAX, /* running min-max observer (asymmetric) */
    OCT_QAT_A_LSQ,    /* learned step s; z from the range of the first batch (0 after ReLU) */
    OCT_QAT_A_PACT,   /* learned clipping level alpha, s = alpha / qmax, z = 0 (ReLU outputs) */
    /* Post-training calibration only (octet calibrate): a running min-max range while observing,
     * and a histogram of the values (oct_histogram); when the observers freeze, the range
     * becomes the histogram's least-squared-error one (oct_histogram_range). */
    OCT_QAT_A_HIST,
    OCT_QAT_A_COUNT
} oct_qat_amode;

/* One activation quantizer. Its state tensors live in the model arena under the name given at
 * init ("act0.lo", "act0.hi", "act0.scale", "act0.alpha"); scale and alpha are parameters.
 * An LSQ scale or PACT alpha of 0 means "not initialized yet": the first training forward
 * pass sets it from the data (LSQ: 2 mean|x| / sqrt(oct_lsq_levels(z, ..)); PACT: the batch
 * maximum). */
typedef struct oct_act_quant {
    oct_qat_amode mode;
    oct_qscheme scheme;  /* unsigned asymmetric codes */
    oct_observer obs;    /* lo/hi point into the tensors below; EMA/min-max, and LSQ's z */
    oct_tensor *lo, *hi; /* (1) observed range */
    oct_tensor *scale;   /* (1) LSQ step, else NULL */
    oct_tensor *alpha;   /* (1) PACT clipping level, else NULL */
    oct_histogram hist;  /* HIST: the values seen while observing (not saved), else empty */
    /* The ranges data-parallel shards saw this step, pending oct_act_quant_commit (empty:
     * +Inf, -Inf). */
    float shard_lo[OCT_DP_MAX_SHARDS], shard_hi[OCT_DP_MAX_SHARDS];
} oct_act_quant;

/* The (s, z) the quantizer uses now (the single mapping from state to parameters):
 * EMA/min-max: oct_observer_qparams; LSQ: s = max(scale, OCT_QUANT_MIN_SCALE), z from the
 * observed range; PACT: s = max(alpha, OCT_QUANT_MIN_SCALE) / qmax (float32), z = 0. */
void oct_act_quant_params(const oct_act_quant *q, float *s, int32_t *z);

/* The state of one quantized linear layer y = x @ w^T + b: with an output quantizer (a hidden
 * layer, with or without fused ReLU; PACT outputs need the ReLU) or without (logits, int32
 * accumulators). x may have any leading shape (..., in); y is (..., out). */
typedef struct oct_qat_linear {
    const oct_linear_layer *fp; /* borrowed fp32 layer: w (out,in), b (out) */
    oct_act_quant *in_q;        /* input quantizer (borrowed when the previous layer owns it) */
    bool owns_in;               /* this layer updates in_q (observer, LSQ init) */
    oct_act_quant *out_q;       /* output quantizer, NULL for the logits layer */
    bool relu;                  /* fused ReLU (needs out_q) */
    oct_qat_wmode wmode;
    oct_qscheme wscheme; /* signed symmetric narrow, per channel */
    bool per_tensor;     /* one weight scale for every channel (oct_qat_config) */
    oct_tensor *wscale;  /* LSQ: (out) learned steps "<layer>.wscale", else NULL */
    int wlevels;         /* kmeans: the codebook's size, 2^weight_bits */
    /* GPTQ calibration (oct_qat_linear_gptq): when not NULL, every training forward pass adds
     * x^T x of its input rows to this (in, in) upper triangle (caller-owned, zeroed). */
    float *xtx;
    /* The integer layer, rebuilt every forward (buffers reused), one per data-parallel shard
     * (oct_graph.shard) so that shards never write shared state. */
    oct_qlinear ql[OCT_DP_MAX_SHARDS];
    int threads; /* for the int8 GEMM (0 = all CPUs) */
} oct_qat_linear;

/* The per-channel weight scales the layer uses now into s (out): min-max from the weights,
 * or max(wscale, OCT_QUANT_MIN_SCALE) for LSQ; with per_tensor, the largest of them in all. */
void oct_qat_linear_weight_scales(const oct_qat_linear *l, float *s /* (out) */);
/* Frees the integer layers of every shard (the tensors live in arenas). NULL is a no-op. */
void oct_qat_linear_free(oct_qat_linear *l);

/* True when a training forward pass of q should show it data: an observer that is not frozen,
 * or an LSQ step / PACT level that is not initialized yet. */
bool oct_act_quant_observing(const oct_act_quant *q);
/* True when q has no parameters yet: an observer that has seen no data, an LSQ step or PACT
 * level not initialized. The first batch sets them, on one graph. Also true while a histogram
 * (HIST) observes: it counts every value, on one graph. */
bool oct_act_quant_needs_init(const oct_act_quant *q);
/* True when a training forward pass of l must see the whole batch on one graph: a quantizer it
 * updates needs initialization (oct_act_quant_needs_init), or its LSQ weight steps do. */
bool oct_qat_linear_needs_whole_batch(const oct_qat_linear *l);
/* GPTQ (oct_gptq) on l's weights with its learned steps (LSQ weights; per-channel steps set by
 * the caller, e.g. to min-max or oct_quant_row_scales_mse scales) and the inputs gathered in
 * l->xtx: afterwards the weights are the steps times the codes GPTQ chose, so the layer, its
 * export and the engine use those codes. */
oct_status oct_qat_linear_gptq(oct_qat_linear *l, double damp);
/* After a data-parallel training step: applies the range the shards saw (the min of their
 * minima, the max of their maxima: the whole batch's range) to q's observer as one update, and
 * empties the shard ranges. A no-op when no shard observed anything. */
void oct_act_quant_commit(oct_act_quant *q);

/* Builds the integer layer for the current state (weights, bias, scales, zero points,
 * requantization), exactly what the evaluation forward pass runs. */
oct_status oct_qat_linear_build(const oct_qat_linear *l, oct_qlinear *out);

/* The quantized linear op: x (B,in) float -> y (B,out) float.
 * Forward: when g->training and the layer owns in_q, its observer is updated (or LSQ scale
 * initialized) first; x is quantized with oct_act_quant_params(in_q); the integer layer is
 * built with oct_qlinear_build; a hidden layer runs oct_qlinear_forward and returns the
 * dequantized u8 codes s_y (y - z_y). Its output observer (training, not frozen) is updated
 * from oct_acc_to_real of the accumulators (after the ReLU, if any) BEFORE the requantization
 * parameters are computed, so the output equals what the evaluation forward on the new state gives.
 * The logits layer runs oct_qlinear_acc and returns oct_acc_to_real_rows.
 * Data parallelism (g->shards > 1, see oct_dp in nn.h): a shard cannot see the whole batch
 * before it quantizes, so in such a step every shard quantizes with the observers' state from
 * before the step and records the range of its values (input, and output before
 * requantization); oct_act_quant_commit (oct_qat_mlp_commit / oct_qat_gpt_commit) then applies
 * the whole batch's range as one update. Observers thus act one step late in data-parallel
 * steps; quantizers that still need initialization require a one-graph step (asserted).
 * Backward (STE): dz = dL/dy masked where the output was clamped or the ReLU inactive
 * (EMA/min-max/LSQ: real > 0 and oct_quant_passes; PACT: oct_pact_grad_x); db += sum dz;
 * dw += (dz^T x_dq) through the weight STE (min-max never clamps; LSQ masks and gets dL/ds);
 * dx += (dz w_dq) masked where the input quantizer clamped; LSQ/PACT output scales get their
 * gradient from the same masks (LSQ g = 1 / sqrt(out * qp), per-channel weights
 * g = 1 / sqrt(in * qp)); an owned LSQ input scale from dL/dx_dq (g = 1 / sqrt(in * qp)). */
oct_tensor *oct_qat_linear_forward(oct_graph *g, oct_tensor *x, oct_qat_linear *l);

/* ---- configuration ------------------------------------------------------------------------- */

#define OCT_QAT_MAX_POINTS 16
#define OCT_QAT_LAYER_BITS_LEN 256

typedef struct oct_qat_config {
    int weight_bits;           /* 2..8, default 8: codes [-(2^(b-1) - 1), 2^(b-1) - 1] */
    int act_bits;              /* 2..8, default 8: codes [0, 2^b - 1] */
    oct_qat_wmode weight_mode; /* default min-max */
    /* One mode for every quantization point (n_act_modes = 1; PACT then applies to the hidden
     * ReLU outputs and the input uses EMA), or one per point (input first). Default EMA. */
    int n_act_modes;
    oct_qat_amode act_mode[OCT_QAT_MAX_POINTS];
    float momentum;       /* EMA observers, default OCT_OBSERVER_MOMENTUM */
    int64_t freeze_after; /* observers freeze after this many training steps; 0 = never */
    /* GPT only: 0 keeps float32 embeddings (default); 2..8 quantizes the token and position
     * embeddings per row (symmetric, narrow, min-max scales like the weights) to embed_bits-bit
     * codes, exported as int8. */
    int embed_bits;
    /* Mixed precision: per-layer weight bits overriding weight_bits, "PATTERN=BITS[,...]" (empty:
     * none). A pattern is matched against layer names with shell wildcards (fnmatch: an MLP's
     * "fc0", "fc1", ...; a GPT's "h.0.attn.qkv", "h.0.attn.proj", "h.0.mlp.fc", "h.0.mlp.proj",
     * ..., "lm_head"), and the last pattern that matches a layer gives its bits. */
    char layer_bits[OCT_QAT_LAYER_BITS_LEN];
    /* One weight scale per layer instead of one per output channel, for targets without
     * per-channel scales: the largest of the layer's channel scales (min-max, pow2, kmeans; not
     * LSQ). The export still stores one scale per channel, all equal. Default false. */
    bool per_tensor_weights;
} oct_qat_config;

void oct_qat_config_default(oct_qat_config *c);
/* OCT_EINVAL naming the field unless bits are in 2..8 (embed_bits: 0 or 2..8; pow2 weights
 * 2..4, kmeans 2..7, layer_bits' too), layer_bits is a list of PATTERN=BITS, modes are in range
 * (per_tensor_weights not with LSQ weights), momentum in (0, 1], freeze_after >= 0 and
 * 1 <= n_act_modes <= OCT_QAT_MAX_POINTS. */
oct_status oct_qat_config_check(const oct_qat_config *c);
/* The weight bits of the layer named layer: the last layer_bits pattern matching it, else
 * weight_bits. c must pass oct_qat_config_check. */
int oct_qat_config_weight_bits(const oct_qat_config *c, const char *layer);
/* The narrowest weight bits any layer can get: the least of weight_bits and the layer_bits
 * entries. c must pass oct_qat_config_check. */
int oct_qat_config_min_weight_bits(const oct_qat_config *c);
/* OCT_EINVAL naming the pattern when a layer_bits pattern matches none of the n layer names
 * (a typo would otherwise leave every layer at weight_bits). */
oct_status oct_qat_config_check_layers(const oct_qat_config *c, const char *const *names, int n);
/* The mode of quantization point i (see n_act_modes). */
oct_qat_amode oct_qat_config_act_mode(const oct_qat_config *c, int point);
/* Names for flags and metadata: "minmax", "lsq"; "ema", "minmax", "lsq", "pact". */
const char *oct_qat_wmode_name(oct_qat_wmode m);
const char *oct_qat_amode_name(oct_qat_amode m);
oct_status oct_qat_wmode_parse(const char *s, oct_qat_wmode *out);
/* "ema" (every point) or "ema,pact,pact" (one per point) into c->act_mode / n_act_modes. */
oct_status oct_qat_amodes_parse(const char *s, oct_qat_config *c);
/* A compact JSON object (malloc'd, free() it): {"weight_bits":8,"act_bits":8,"weight_mode":
 * "minmax","act_modes":["ema"],"momentum":0.01,"freeze_after":469,"embed_bits":0}, with
 * "layer_bits":"lm_head=8" and "per_tensor_weights":true at the end when set. NULL when out of
 * memory. */
char *oct_qat_config_to_json(const oct_qat_config *c);
/* Parses that JSON (missing keys keep their defaults); OCT_EFORMAT naming the key otherwise, and
 * for a key this build does not know (a newer octet's setting it would silently ignore). */
oct_status oct_qat_config_from_json(oct_qat_config *c, const char *json);

/* ---- the QAT MLP (src/nn/qat.c) ------------------------------------------------------------ */

typedef struct oct_qat_mlp {
    oct_mlp *mlp; /* borrowed fp32 model: same weights, same parameters */
    oct_qat_config cfg;
    oct_act_quant *acts;    /* (n_layers) quantization points, in the model arena */
    oct_qat_linear *layers; /* (n_layers), in the model arena */
    oct_tensor **state;     /* every quantizer tensor (observers and learned), malloc'd */
    int n_state;
    int64_t steps; /* training forward passes so far (for freeze_after) */
} oct_qat_mlp;

/* Wraps mlp (which must use ReLU; dropout is not applied under QAT) with quantizer state created
 * in arena; learned scales (LSQ "actI.scale", "fcI.wscale") and PACT "actI.alpha" are appended
 * to params, so call it before oct_optim_init. OCT_EINVAL for a bad config, embed_bits set, a
 * non-ReLU MLP, PACT at the input, per-point modes not matching the n_layers points, or layer
 * widths above OCT_I8_MAX_K. */
oct_status oct_qat_mlp_init(oct_qat_mlp *q, oct_mlp *mlp, oct_arena *arena, oct_params *params,
                            const oct_qat_config *cfg);
/* Frees the integer layers and the state array. oct_qat_mlp_free(NULL) is a no-op. */
void oct_qat_mlp_free(oct_qat_mlp *q);
/* Sets the int8 GEMM thread count of every layer (0 = all CPUs; default 1). */
void oct_qat_mlp_set_threads(oct_qat_mlp *q, int threads);
/* Re-derives the frozen flags from steps (after loading state). */
void oct_qat_mlp_sync_frozen(oct_qat_mlp *q);
/* The largest magnitude of an observed range bound ("act0.lo", "act0.hi", ...): 2^64, far
 * beyond any activation of a trained network, and small enough that scales, dequantized values
 * and the logits' real values stay finite. */
#define OCT_QAT_MAX_RANGE 0x1p64f
/* Checks quantizer state read from a file: OCT_EFORMAT, naming the tensor, unless every
 * observed range is empty (lo = +Inf, hi = -Inf: no data yet) or finite with lo <= hi and
 * |lo|, |hi| <= OCT_QAT_MAX_RANGE, and every learned step or level (LSQ "actI.scale",
 * "fcI.wscale", PACT "actI.alpha") is finite (a file of an earlier build may hold one below
 * OCT_QUANT_MIN_SCALE, even negative, which oct_act_quant_params and
 * oct_qat_linear_weight_scales use as that floor; 0 means not initialized yet). */
oct_status oct_qat_mlp_check(const oct_qat_mlp *q);
/* Raises every learned step or level (LSQ "actI.scale", "fcI.wscale", PACT "actI.alpha") that
 * the last optimizer step left below OCT_QUANT_MIN_SCALE, even negative, to that floor (0, not
 * initialized yet, stays): call after each optimizer step of a QAT run. The forward pass uses
 * the floor anyway; projected, a step driven through zero comes back as soon as its gradient
 * turns, instead of leaving its channel's weights at about 0 until the optimizer has climbed
 * back from below zero. */
void oct_qat_mlp_project(oct_qat_mlp *q);
/* True when the next training step must see the whole batch on one graph (a quantizer needs
 * initialization, see oct_qat_linear_needs_whole_batch); otherwise it may be data parallel. It
 * first re-derives the frozen flags (oct_qat_mlp_sync_frozen): call it before every
 * data-parallel step, so that no shard changes them during the step, and oct_qat_mlp_commit
 * after it. */
bool oct_qat_mlp_needs_whole_batch(oct_qat_mlp *q);
/* Commits every quantizer's shard ranges (oct_act_quant_commit): call after each
 * data-parallel training step. */
void oct_qat_mlp_commit(oct_qat_mlp *q);
/* logits (B, classes) float from x (B, in) float. In training (g->training) it counts a step
 * and freezes the observers once steps reaches cfg.freeze_after. */
oct_tensor *oct_qat_mlp_forward(oct_qat_mlp *q, oct_graph *g, oct_tensor *x);
/* Fills the deployed model with oct_qat_linear_build of every layer (the eval-mode state);
 * out->layers is malloc'd. Fails (out left empty) when a layer cannot be built. */
oct_status oct_qat_mlp_to_int8(const oct_qat_mlp *q, float in_mean, float in_std, oct_i8_mlp *out);

/* ---- the QAT GPT (src/nn/gpt_qat.c) ------------------------------------------------------------
 *
 * Every linear layer of an oct_gpt (per block qkv, attn.proj, mlp.fc, mlp.proj; then lm_head)
 * becomes an oct_qat_linear: int8 per-channel weights, a u8 per-tensor input quantizer, and for
 * the block layers a u8 output quantizer without ReLU whose dequantized values flow into the
 * float ops; lm_head returns its int32 accumulators as real logits. LayerNorm, GELU, the
 * rotary embedding of q and k (cfg.rope) and the causal attention run in float32 through the
 * shared row kernels of octet/nonlinear.h (oct_layernorm, oct_gelu, oct_rope,
 * oct_attention_rows), in the order the integer GPT engine
 * (oct_i8_gpt_run) uses, so the engine reproduces the eval-mode logits bit for bit. Embeddings
 * stay float32 unless cfg.embed_bits is set: then every forward pass fake-quantizes wte and wpe
 * per row (oct_fake_quant_fixed with oct_quant_row_scales of the current values: a min-max
 * scale never clamps, so the STE passes every gradient) and the export stores the codes.
 *
 * Quantizer tensors are named "<linear>.in.lo", "<linear>.out.hi", "<linear>.in.scale" (LSQ),
 * "<linear>.wscale" (LSQ weights), with <linear> = "h.<i>.attn.qkv", "h.<i>.attn.proj",
 * "h.<i>.mlp.fc", "h.<i>.mlp.proj" or "lm_head". Activation modes: ema, minmax or lsq, one for
 * every point (pact needs ReLU outputs, which a GPT does not have). */

/* Linears per block, in order, and their names' suffixes. */
enum {
    OCT_QAT_GPT_QKV,
    OCT_QAT_GPT_PROJ,
    OCT_QAT_GPT_FC,
    OCT_QAT_GPT_FC_PROJ,
    OCT_QAT_GPT_PER_BLOCK
};

typedef struct oct_qat_gpt {
    oct_gpt *gpt; /* borrowed fp32 model: same weights, same parameters */
    oct_qat_config cfg;
    oct_qscheme escheme; /* embeddings (cfg.embed_bits > 0): signed, symmetric, narrow */
    int n_linear;        /* 4 n_layer + 1 */
    oct_qat_linear *lin; /* (n_linear): block i's at 4 i + OCT_QAT_GPT_*, lm_head last */
    oct_act_quant *acts; /* (2 n_linear - 1): linear j's input 2 j, output 2 j + 1 */
    oct_tensor **state;  /* every quantizer tensor, malloc'd */
    int n_state;
    int64_t steps; /* training forward passes so far (for freeze_after) */
} oct_qat_gpt;

/* Wraps gpt with quantizer state in arena (learned scales appended to params: call before
 * oct_optim_init). OCT_EINVAL for a bad config, per-point modes, pact, or widths above
 * OCT_I8_MAX_K. */
oct_status oct_qat_gpt_init(oct_qat_gpt *q, oct_gpt *gpt, oct_arena *arena, oct_params *params,
                            const oct_qat_config *cfg);
/* Frees the integer layers and the state array. oct_qat_gpt_free(NULL) is a no-op. */
void oct_qat_gpt_free(oct_qat_gpt *q);
/* Int8 GEMM threads of every linear (0 = all CPUs; default 1). */
void oct_qat_gpt_set_threads(oct_qat_gpt *q, int threads);
/* Re-derives the frozen flags from steps (after loading state). */
void oct_qat_gpt_sync_frozen(oct_qat_gpt *q);
/* oct_qat_mlp_check for the GPT's quantizers. */
oct_status oct_qat_gpt_check(const oct_qat_gpt *q);
/* As oct_qat_mlp_project, oct_qat_mlp_needs_whole_batch and oct_qat_mlp_commit, for the GPT. */
void oct_qat_gpt_project(oct_qat_gpt *q);
bool oct_qat_gpt_needs_whole_batch(oct_qat_gpt *q);
void oct_qat_gpt_commit(oct_qat_gpt *q);
/* logits (B,T,V) for ids (B,T) as oct_gpt_forward, quantized. In training it counts a step and
 * freezes the observers once steps reaches cfg.freeze_after. */
oct_tensor *oct_qat_gpt_forward(oct_qat_gpt *q, oct_graph *g, const int32_t *ids, int B, int T);
/* The same forward pass in pieces, for callers that keep the residual stream between blocks
 * (calibrate's GPTQ, which works block by block): oct_qat_gpt_forward is embed, every block in
 * order, then head, without the step count. oct_qat_gpt_embed: the residual stream (B,T,C)
 * after the embeddings of ids (B,T). oct_qat_gpt_block: block i on x (B,T,C), run through its
 * linear `last` (OCT_QAT_GPT_QKV..OCT_QAT_GPT_FC_PROJ): the block's output for
 * OCT_QAT_GPT_FC_PROJ, else that linear's output (the rest of the block does not run).
 * oct_qat_gpt_head: the logits (B,T,V) of the residual stream x. */
oct_tensor *oct_qat_gpt_embed(oct_qat_gpt *q, oct_graph *g, const int32_t *ids, int B, int T);
oct_tensor *oct_qat_gpt_block(oct_qat_gpt *q, oct_graph *g, oct_tensor *x, int i, int last);
oct_tensor *oct_qat_gpt_head(oct_qat_gpt *q, oct_graph *g, oct_tensor *x);
/* The deployed integer GPT (include/octet/int8.h) from the eval-mode state, with the vocabulary
 * bytes (V) of the model; out is zeroed first and left empty on failure. */
oct_status oct_qat_gpt_to_int8(const oct_qat_gpt *q, const uint8_t *vocab /* (V) */,
                               oct_i8_gpt *out);

/* ---- post-training dynamic quantization (src/nn/qat.c, gpt_qat.c) -------------------------------
 *
 * A float model as an int8 model with dynamic activations (see oct_qlinear): the weights of
 * every linear become per-channel int8 codes (min-max scales), the biases stay float32, and the
 * engine quantizes each layer's input rows at run time. No training and no calibration data;
 * everything between the linears (ReLU; LayerNorm, GELU, attention) runs in float32 as in the
 * float model. */

/* An MLP with ReLU between its layers (OCT_EINVAL otherwise); out is zeroed first and left empty
 * on failure. */
oct_status oct_mlp_to_dynamic_int8(const oct_mlp *m, float in_mean, float in_std, oct_i8_mlp *out);
/* A GPT with the vocabulary bytes (V) of the model; embed_bits 0 keeps float32 embeddings, 2..8
 * quantizes them per row as oct_i8_gpt_quantize_embeddings. out is zeroed first and left empty
 * on failure. */
oct_status oct_gpt_to_dynamic_int8(const oct_gpt *m, const uint8_t *vocab /* (V) */, int embed_bits,
                                   oct_i8_gpt *out);

#endif
