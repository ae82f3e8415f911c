/* The integer inference engine: int8 GEMM kernels and (later) the engine API.
 *
 * The GEMM section computes C = A @ W^T exactly in int32 from uint8 activations and int8
 * weights. Every kernel (portable C, AVX2, AVX-512 VNNI) returns bit-identical results at any
 * thread count; the best kernel for this CPU is chosen at run time (see oct_i8_set_kernel).
 */
#ifndef OCTET_INT8_H
#define OCTET_INT8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "octet/status.h"

/* ==== int8 GEMM kernels (src/int8/gemm*.c) ==================================================
 *
 * Contract: C[m][n] = sum_k A[m][k] * W[n][k] in int32, A uint8 (M,K) row-major activations,
 * W int8 (N,K) row-major weights (one row per output channel). The arithmetic is exact: no
 * saturation anywhere, and K <= OCT_I8_MAX_K keeps every sum inside int32
 * (255 * 128 * K < 2^31).
 */

/* Largest supported reduction length K. */
#define OCT_I8_MAX_K 65536

/* Weights packed once into the layout the kernels read: panels of 64 output channels (the last
 * panel may be narrower), inside a panel groups of 4 consecutive k, inside a group 16-channel
 * blocks of 16 x 4 bytes (channel-major). K is padded to a multiple of 4 and N to a multiple
 * of 16 with zeros. One layout serves every kernel, so the kernel may change after packing. */
typedef struct oct_i8_packed {
    int8_t *data;  /* packed weights, 64-byte aligned, `size` bytes */
    int32_t *wsum; /* (N) row sums wsum[n] = sum_k W[n][k], for the zero point of A */
    int N, K;      /* logical shape of W (N,K) */
    int n_pad;     /* N rounded up to a multiple of 16 */
    int k_pad;     /* K rounded up to a multiple of 4 */
    size_t size;   /* bytes in data */
} oct_i8_packed;

/* Packs w (N,K) into p (which the caller owns; free it with oct_i8_packed_free) and computes
 * wsum. Fails with OCT_EINVAL unless 1 <= N and 1 <= K <= OCT_I8_MAX_K, and with OCT_ENOMEM if
 * memory runs out; p is left empty (all zero) on failure. */
oct_status oct_i8_pack(oct_i8_packed *p, const int8_t *w /* (N,K) */, int N, int K);

/* oct_i8_pack that reuses p's buffers when p already holds packed weights of shape (N,K) (p
 * must be zeroed or packed): for layers re-quantized every training step. */
oct_status oct_i8_repack(oct_i8_packed *p, const int8_t *w /* (N,K) */, int N, int K);

/* Releases the buffers of p and zeroes it. oct_i8_packed_free(NULL) is a no-op. */
void oct_i8_packed_free(oct_i8_packed *p);

/* c (M,N) = a (M,K) @ W^T with W packed in w, on up to `threads` threads (0 = all CPUs, see
 * oct_cpu_count). Small products run on the calling thread only. M may be 0. */
void oct_i8_gemm(const oct_i8_packed *w, const uint8_t *a /* (M,K) */, int M,
                 int32_t *c /* (M,N) */, int threads);

/* A callback run on finished output rows m0 <= m < m1 while they are still in cache, e.g. to
 * requantize them. c_rows points at c + m0 * N, shape (m1 - m0, N). Every row is passed exactly
 * once; calls for disjoint row ranges may run concurrently on different threads. */
typedef void oct_i8_epilogue(void *ctx, int m0, int m1, int32_t *c_rows);

/* oct_i8_gemm followed by epilogue(ctx, ...) over all M rows (fused while rows are hot when M
 * is large enough to split by rows). epilogue may be NULL. */
void oct_i8_gemm_fn(const oct_i8_packed *w, const uint8_t *a /* (M,K) */, int M,
                    int32_t *c /* (M,N) */, int threads, oct_i8_epilogue *epilogue, void *ctx);

/* The GEMM kernels. OCT_I8_AUTO picks the fastest one this CPU (and OS) supports. */
typedef enum {
    OCT_I8_AUTO = 0,
    OCT_I8_PORTABLE,   /* plain C, any CPU */
    OCT_I8_AVX2,       /* AVX2: int8 widened to int16, vpmaddwd (exact) */
    OCT_I8_AVX512VNNI, /* AVX-512 VNNI: vpdpbusd */
} oct_i8_kernel;

/* True if kernel k can run on this CPU (OCT_I8_AUTO and OCT_I8_PORTABLE always can). */
bool oct_i8_kernel_available(oct_i8_kernel k);

/* Selects the kernel used by all later GEMM calls in this process (a process-wide setting,
 * meant for tests and benchmarks; safe to call from any thread, but a GEMM already running
 * keeps its kernel). Fails with OCT_EUNSUPPORTED, keeping the current kernel, if the CPU lacks
 * it; OCT_EINVAL for an unknown value. */
oct_status oct_i8_set_kernel(oct_i8_kernel k);

/* The name of the kernel the next GEMM will use ("portable", "avx2", "avx512vnni"); AUTO is
 * resolved to the kernel it picks. Never NULL. */
const char *oct_i8_kernel_name(void);

/* ==== end of int8 GEMM kernels ============================================================= */

/* ==== integer linear layers (src/int8/qlinear.c) ============================================
 *
 * The one implementation of a quantized linear layer, called both by the QAT forward pass (the
 * qlinear op in src/ops) and by the deployed engine, so that training and deployment compute
 * the same integers by construction. With input codes a (u8, scale a_scale, zero point a_zp),
 * weights W (s8, per-channel w_scale[c], zero point 0) and b_q = oct_quant_bias_rows(b, ...):
 *
 *     acc[m][c] = sum_k a[m][k] * W[c][k] - a_zp * wsum[c] + b_q[c]          (int32, exact)
 *     y[m][c]   = oct_requantize(acc[m][c], m0[c], shift[c], y_zp, y_qmin, y_qmax, relu)
 *
 * A layer without output quantization (the classifier head) stops at acc: its real value is
 * oct_acc_to_real(acc, a_scale, w_scale[c]).
 */
typedef struct oct_qlinear {
    int in, out;     /* K and N */
    oct_i8_packed w; /* packed int8 weights and their row sums */
    int32_t *bias_q; /* (out) int32 bias in units of a_scale * w_scale[c] */
    float *w_scale;  /* (out) per-channel weight scales */
    float a_scale;   /* input scale */
    int32_t a_zp;    /* input zero point */
    bool quant_out;  /* requantize to u8 codes; false: int32 accumulators are the output */
    bool relu;       /* fused ReLU: lower clamp raised to y_zp */
    float y_scale;   /* output scale (quant_out) */
    int32_t y_zp, y_qmin, y_qmax;
    int32_t *m0, *shift; /* (out) requantization multipliers, see oct_requant_multiplier */
    int8_t *codes;       /* (out,in) scratch of oct_qlinear_build (NULL in loaded models) */
    /* Dynamic activations (post-training dynamic quantization, oct_qlinear_dynamic): the input
     * is quantized row by row at run time, so a_scale and a_zp are 0, bias_q, m0 and shift
     * hold zeros, there is no output quantization, and the bias stays float32. */
    bool dynamic;
    float *bias; /* (out) float bias of a dynamic layer, NULL otherwise */
} oct_qlinear;

/* acc (M,out) as above, on up to `threads` threads. */
void oct_qlinear_acc(const oct_qlinear *l, const uint8_t *a /* (M,in) */, int M,
                     int32_t *acc /* (M,out) */, int threads);
/* acc as above, then y = requantized codes; l->quant_out must be set. */
void oct_qlinear_forward(const oct_qlinear *l, const uint8_t *a /* (M,in) */, int M,
                         int32_t *acc /* (M,out) scratch, left holding the accumulators */,
                         uint8_t *y /* (M,out) */, int threads);

/* The largest |bias_q| of a static layer with `in` inputs: INT32_MAX - 255 * 128 * in. The
 * accumulator sum_k (a - a_zp) w never exceeds 255 * 128 * in in magnitude, so with such a bias
 * no step of the epilogue overflows int32. Builds clamp b_q to it; loaded models must keep to
 * it (oct_i8_mlp_check, oct_i8_gpt_check). */
int64_t oct_qlinear_bias_max(int in);
/* Builds l from float parameters exactly as the QAT forward pass does; the exporter and the QAT
 * qlinear op both call it, so an exported layer holds the very integers training used.
 * Weights are quantized per output channel with w_scale[c] (zero point 0) to [w_qmin, w_qmax]
 * (within [-128, 127]); the bias (NULL = none) with oct_quant_bias_rows, then clamped to
 * [-oct_qlinear_bias_max(in), oct_qlinear_bias_max(in)] (a bias that large, or infinite, would
 * overflow the accumulators); the multipliers with oct_requant_multipliers when quant_out.
 * Buffers of a previous build with the same shape are reused. Fails with OCT_EINVAL (message
 * names the problem) for non-positive scales. */
oct_status oct_qlinear_build(oct_qlinear *l, int out, int in, const float *w /* (out,in) */,
                             const float *b /* (out) */, const float *w_scale /* (out) */,
                             int32_t w_qmin, int32_t w_qmax, float a_scale, int32_t a_zp,
                             bool quant_out, bool relu, float y_scale, int32_t y_zp, int32_t y_qmin,
                             int32_t y_qmax);
/* oct_qlinear_build with the weight codes given (out,in) instead of computed from float weights
 * (non-uniform weight quantizers, such as powers of two). */
oct_status oct_qlinear_build_codes(oct_qlinear *l, int out, int in, const int8_t *codes,
                                   const float *b /* (out) */, const float *w_scale /* (out) */,
                                   float a_scale, int32_t a_zp, bool quant_out, bool relu,
                                   float y_scale, int32_t y_zp, int32_t y_qmin, int32_t y_qmax);
/* A dynamic layer (see oct_qlinear) from float weights w and bias b (NULL = none): weights
 * per output channel under oct_qscheme_weights (min-max scales, codes in [-127, 127]); relu
 * fuses a ReLU into the float output. Reuses the buffers of a build of the same shape. */
oct_status oct_qlinear_build_dynamic(oct_qlinear *l, int out, int in, const float *w /* (out,in) */,
                                     const float *b /* (out) */, bool relu);
/* The forward pass of a dynamic layer on float rows x: row m is quantized to u8 codes a with
 * its own range (oct_quant_row_params under oct_qscheme_activations: scale a_scale[m], zero
 * point a_zp[m]), the int8 GEMM gives acc[m][c] = sum_k (a[m][k] - a_zp[m]) W[c][k] exactly,
 * and y[m][c] = oct_acc_to_real(acc[m][c], a_scale[m], w_scale[c]) + bias[c], ReLU'd when
 * l->relu. y may be NULL (accumulators only). Each row depends on that row alone, so results
 * do not depend on the batch, the kernel or the thread count. */
void oct_qlinear_dynamic(const oct_qlinear *l, const float *x /* (M,in) */, int M,
                         uint8_t *a /* (M,in) scratch */, float *a_scale /* (M) */,
                         int32_t *a_zp /* (M) */, int32_t *acc /* (M,out) */,
                         float *y /* (M,out) or NULL */, int threads);
/* The same from input codes a already quantized row by row with a_scale/a_zp (the rule
 * above), e.g. through a table when the inputs take few values. */
void oct_qlinear_dynamic_codes(const oct_qlinear *l, const uint8_t *a /* (M,in) */, int M,
                               const float *a_scale /* (M) */, const int32_t *a_zp /* (M) */,
                               int32_t *acc /* (M,out) */, float *y /* (M,out) or NULL */,
                               int threads);
/* Changes only the output side of a built layer (quant_out, relu, output scale, zero point and
 * code range) and recomputes m0/shift, exactly as oct_qlinear_build with these values would:
 * the QAT forward uses it after an output observer has seen this step's accumulators. */
oct_status oct_qlinear_set_output(oct_qlinear *l, bool quant_out, bool relu, float y_scale,
                                  int32_t y_zp, int32_t y_qmin, int32_t y_qmax);
/* Releases the buffers of l and zeroes it. oct_qlinear_free(NULL) is a no-op. */
void oct_qlinear_free(oct_qlinear *l);

/* ==== the integer MLP (src/int8/engine.c) ====================================================
 *
 * A deployed MLP: input normalization, input quantization (layers[0].a_scale/a_zp, codes
 * [in_qmin, in_qmax]), hidden layers with u8 outputs (quant_out, usually relu), and a last layer
 * whose int32 accumulators are the logits (quant_out false); layers[i+1].a_scale/a_zp equal
 * layers[i].y_scale/y_zp. Between input quantization and the logits everything is integer.
 */
typedef struct oct_i8_mlp {
    bool dynamic; /* dynamic activations: every layer dynamic (see oct_qlinear), float between
                     layers; the input codes and chain of scales below are then unused */
    int n_layers;
    oct_qlinear *layers;      /* (n_layers), malloc'd, owned */
    float in_mean, in_std;    /* pixel normalization: oct_pixel_normalize(p, in_mean, in_std) */
    int32_t in_qmin, in_qmax; /* input code range */
    char *source; /* the data it was trained on (metadata octet.source), NULL: not recorded */
} oct_i8_mlp;

/* Frees every layer and the layer array and zeroes m. oct_i8_mlp_free(NULL) is a no-op. */
void oct_i8_mlp_free(oct_i8_mlp *m);

/* ---- running it (src/int8/engine.c) ----------------------------------------------------------
 *
 * Per row: codes = quantize(x) with layers[0].a_scale/a_zp and [in_qmin, in_qmax]; every hidden
 * layer oct_qlinear_forward; the last layer oct_qlinear_acc, whose int32 accumulators are
 * logits_acc; the real logits are oct_acc_to_real_rows(logits_acc, last.a_scale,
 * last.w_scale). The raw-pixel entry point maps each pixel p through the table
 * quantize(oct_pixel_normalize(p, in_mean, in_std)), which is exactly quantizing the
 * normalized float. Results do not depend on the batch size, the thread count or the kernel.
 *
 * An engine owns the scratch buffers for batches of up to max_batch rows (larger batches run
 * in chunks), so a forward call allocates nothing:
 *
 *     oct_i8_engine e;
 *     if (oct_i8_engine_init(&e, &mlp, 256) == OCT_OK)
 *         oct_i8_engine_forward_u8(&e, pixels, B, acc, logits, threads);
 *     oct_i8_engine_free(&e);
 */
typedef struct oct_i8_engine {
    const oct_i8_mlp *m;     /* borrowed; must outlive the engine and stay unchanged */
    int max_batch;           /* rows per chunk */
    int width;               /* widest layer input or output */
    uint8_t *codes[2];       /* (max_batch, width) ping-pong activation codes */
    int32_t *acc;            /* (max_batch, width) hidden accumulators */
    float *f[2];             /* dynamic models: (max_batch, width) ping-pong float activations */
    float *row_scale;        /* dynamic models: (max_batch) input scales of the current layer */
    int32_t *row_zp;         /* dynamic models: (max_batch) and zero points */
    float pixel_value[256];  /* raw pixel -> normalized input */
    uint8_t pixel_code[256]; /* raw pixel -> input code (static models) */
} oct_i8_engine;

/* Checks that m is a well-formed chain (oct_i8_mlp_check) and allocates the scratch for
 * max_batch >= 1 rows. OCT_EINVAL with a message naming the layer, or OCT_ENOMEM; e is zeroed
 * on failure. */
oct_status oct_i8_engine_init(oct_i8_engine *e, const oct_i8_mlp *m, int max_batch);
/* Releases the scratch and zeroes e. oct_i8_engine_free(NULL) is a no-op. */
void oct_i8_engine_free(oct_i8_engine *e);

/* Forward pass of B >= 0 rows of normalized inputs x on up to `threads` threads (0 = all CPUs).
 * logits (may be NULL) gets the real logits. */
void oct_i8_engine_forward(oct_i8_engine *e, const float *x /* (B,in) */, int B,
                           int32_t *logits_acc /* (B,classes) */,
                           float *logits /* (B,classes) or NULL */, int threads);
/* The same from raw uint8 pixels (normalized with in_mean/in_std, then quantized). */
void oct_i8_engine_forward_u8(oct_i8_engine *e, const uint8_t *pixels /* (B,in) */, int B,
                              int32_t *logits_acc /* (B,classes) */,
                              float *logits /* (B,classes) or NULL */, int threads);

/* One-shot forms: an engine for this call only (allocates scratch on every call; use an
 * oct_i8_engine for repeated calls). Fail like oct_i8_engine_init. */
oct_status oct_i8_mlp_forward(const oct_i8_mlp *m, const float *x /* (B,in) normalized */, int B,
                              int32_t *logits_acc /* (B,classes) */,
                              float *logits /* (B,classes) or NULL */, int threads);
oct_status oct_i8_mlp_forward_u8(const oct_i8_mlp *m, const uint8_t *pixels /* (B,in) */, int B,
                                 int32_t *logits_acc /* (B,classes) */,
                                 float *logits /* (B,classes) or NULL */, int threads);

/* ---- the export file (src/int8/export.c) -----------------------------------------------------
 *
 * An int8 MLP is one safetensors file (see include/octet/io.h), format version 2 (version 1
 * is the same without dynamic activations and packed codes, and loads unchanged):
 *
 *   metadata  "octet.format"         = "octet-int8-mlp"
 *             "octet.format_version" = "2"
 *             "octet.source"         = the data it was trained on (optional, informational)
 *             "octet.graph"          = JSON text:
 *      {"input": {"mean": 0.286, "std": 0.353, "qmin": 0, "qmax": 255},
 *       "layers": [{"name": "fc0", "in": 784, "out": 256, "relu": true,
 *                   "input_scale": 0.0123, "input_zero_point": 0,
 *                   "output": {"scale": 0.05, "zero_point": 0, "qmin": 0, "qmax": 255}},
 *                  ...,
 *                  {"name": "fc2", "in": 128, "out": 10, "relu": false,
 *                   "input_scale": 0.05, "input_zero_point": 0, "output": null}]}
 *             (floats are float32 values printed with 17 significant digits, so they read
 *             back exactly; layer i is named "fc<i>")
 *   tensors   per layer i:
 *             "fc<i>.weight_q"     I8  (out,in)  weight codes, row-major, zero point 0
 *             "fc<i>.weight_scale" F32 (out)     per-channel weight scales
 *             "fc<i>.bias_q"       I32 (out)     bias in units of input_scale * weight_scale[c]
 *             "fc<i>.wsum"         I32 (out)     row sums of weight_q
 *             "fc<i>.m0"           I32 (out)     requantization multipliers and shifts
 *             "fc<i>.shift"        I32 (out)     (only layers with an output)
 *             Codes taking at most 16 values are stored packed instead of weight_q:
 *             "fc<i>.weight_codebook" I8 (2^b) and "fc<i>.weight_idx" U8 (out, ceil(in b / 8)),
 *             b-bit indices (b = 1, 2, 3, 4; src/int8/codes_io.c). A model with dynamic
 *             activations has "activations": "dynamic" in its graph, layers {"name", "in",
 *             "out", "relu"} only, and per layer weight_q (or packed), weight_scale, wsum and
 *             "fc<i>.bias" F32 (out), the float bias.
 *
 * The arithmetic is the one of oct_qlinear (above). The loader accepts only a file that
 * is consistent with itself: the format and version above; every tensor present with its dtype
 * and shape and no other tensor; the checks of oct_i8_mlp_check; wsum equal to the row sums of
 * weight_q; m0/shift passing oct_requant_check AND equal to oct_requant_multipliers of the
 * scales. */

#define OCT_I8_FORMAT "octet-int8-mlp"
#define OCT_I8_FORMAT_VERSION 2

/* OCT_EINVAL (message naming the layer) unless m is a chain the engine can run: 1 <= n_layers
 * <= OCT_I8_MAX_LAYERS; in_std > 0 and in_mean finite; every scale positive and finite;
 * 0 <= qmin < qmax <= 255 with zero points inside, for the input and every output; layer i+1's
 * in, input scale and zero point equal to layer i's out, output scale and zero point, and layer
 * 0's input zero point inside [in_qmin, in_qmax]; every layer but the last requantizes, the last
 * neither requantizes nor has relu; |bias_q| small enough that no accumulator overflows int32. */
oct_status oct_i8_mlp_check(const oct_i8_mlp *m);

/* Most layers an int8 MLP may have. */
#define OCT_I8_MAX_LAYERS 64

/* Writes m (which must pass oct_i8_mlp_check, else OCT_EINVAL) to path atomically
 * (oct_st_writer_write; OCT_EIO on failure, an existing file left untouched). */
oct_status oct_i8_mlp_save(const oct_i8_mlp *m, const char *path);
/* Reads and validates path into m (zeroed first, and zeroed again on failure). Errors name the
 * file and the tensor or graph field: OCT_EIO, OCT_EFORMAT (wrong format or version, wrong
 * dtype, inconsistent values), OCT_ENOTFOUND (missing tensor), OCT_ESHAPE, OCT_ENOMEM. */
oct_status oct_i8_mlp_load(oct_i8_mlp *m, const char *path);
/* The index width b of packed codes whose "weight_codebook" holds n codes: 1, 2, 3 or 4 for
 * n = 2, 4, 8, 16; 0 for any other n. */
int oct_i8_index_bits(int64_t n);

/* ==== the integer GPT (src/int8/gpt_engine.c, gpt_export.c) ===================================
 *
 * A deployed character-level GPT (pre-LayerNorm, GPT-2 layout; see the GPT section of
 * octet/nn.h): float32 or int8 embeddings, float32 LayerNorms, GELU and attention (the shared row
 * kernels of octet/nonlinear.h), and every linear layer an oct_qlinear: per block qkv, attn.proj,
 * mlp.fc, mlp.proj requantize to u8 (no ReLU) and their dequantized outputs feed the float ops;
 * lm_head stops at int32 accumulators, whose real values are the logits. The engine computes, bit
 * for bit, the eval-mode logits of the QAT GPT (oct_qat_gpt_forward) it was exported from. */

/* Linears per block: qkv, attn.proj, mlp.fc, mlp.proj. */
#define OCT_I8_GPT_PER_BLOCK 4

typedef struct oct_i8_gpt {
    bool dynamic; /* dynamic activations: every linear dynamic (see oct_qlinear), outputs float,
                     GELU computed in float32; in_qmin/in_qmax are then [0, 255] and unused */
    int vocab, context, n_layer, n_head, width, mlp; /* V, T_max, L, heads, C, M */
    float ln_eps;                                    /* LayerNorm epsilon */
    bool exact_gelu;  /* GELU with erf (oct_nl_gelu_erf), else the tanh form (oct_nl_gelu) */
    bool rope;        /* queries and keys rotated by position (oct_nl_rope_row) after qkv */
    bool no_wpe;      /* no position embedding (wpe, wpe_q, wpe_s NULL); needs rope */
    float *wte;       /* (V,C) token embedding */
    float *wpe;       /* (T_max,C) position embedding */
    float *ln;        /* (L,4,C) per block ln_1 gain, ln_1 bias, ln_2 gain, ln_2 bias */
    float *lnf;       /* (2,C) ln_f gain and bias */
    oct_qlinear *lin; /* (4 L + 1): block i's at 4 i + {0: qkv, 1: proj, 2: fc, 3: mlp.proj},
                         lm_head last */
    int32_t *in_qmin, *in_qmax; /* (4 L + 1) input code range of each linear */
    uint8_t *vocab_bytes;       /* (V) the byte of each token id */
    /* Optional int8 embeddings (all four or none; wte's two with no_wpe): per-row codes and scales,
     * with wte and wpe holding the dequantized values s[r] * q[r][c] the engine adds up. */
    int8_t *wte_q, *wpe_q; /* (V,C), (T_max,C) codes in [-127, 127] */
    float *wte_s, *wpe_s;  /* (V), (T_max) finite scales > 0 */
    char *source; /* the data it was trained on (metadata octet.source), NULL: not recorded */
} oct_i8_gpt;

/* Frees every buffer and zeroes m. oct_i8_gpt_free(NULL) is a no-op. */
void oct_i8_gpt_free(oct_i8_gpt *m);
/* The name of linear j of a GPT with n_layer blocks, 0 <= j <= 4 n_layer: "h.<i>.attn.qkv",
 * "h.<i>.attn.proj", "h.<i>.mlp.fc", "h.<i>.mlp.proj" or "lm_head", into buf (n bytes). The QAT
 * GPT's quantizer tensors and the export's tensors are named after it. */
void oct_gpt_linear_name(int n_layer, int j, char *buf, size_t n);
/* oct_gpt_linear_name for m's blocks. */
void oct_i8_gpt_linear_name(const oct_i8_gpt *m, int j, char *buf, size_t n);
/* OCT_EINVAL (message naming the layer) unless m can run: positive sizes, n_head divides width,
 * context and vocab limits, finite eps > 0, every linear built with the right shape and checked
 * like an MLP layer (scales, code ranges, multipliers), block linears requantizing without relu,
 * lm_head neither; no_wpe only with rope; int8 embeddings complete, in range, and equal to wte
 * and wpe bit for bit. */
oct_status oct_i8_gpt_check(const oct_i8_gpt *m);
/* Makes m's embeddings int8 from the float tables wte (V,C) and wpe (T_max,C; NULL and unread
 * with m->no_wpe) (m's sizes and no_wpe set):
 * per-row scales oct_quant_row_scales and codes oct_quantize_s8 under the signed symmetric narrow
 * bits-bit scheme (2..8), and m->wte / m->wpe (allocated when NULL) set to the dequantized
 * values, which are the QAT GPT's fake-quantized tables bit for bit. OCT_EINVAL / OCT_ENOMEM. */
oct_status oct_i8_gpt_quantize_embeddings(oct_i8_gpt *m, const float *wte, const float *wpe,
                                          int bits);

/* A key/value cache and scratch for running m on up to max_rows new tokens per call. */
typedef struct oct_i8_gpt_cache {
    const oct_i8_gpt *m; /* borrowed */
    int max_rows, len;   /* positions [0, len) are cached */
    int threads;         /* int8 GEMM threads (0 = all CPUs), default 1 */
    float *k, *v;        /* dequantized keys (L, C, T_max: transposed) and values (L, T_max, C) */
    float *x, *h, *f;    /* (max_rows, C) residual, (max_rows, max(3C, M)) x2 scratch */
    float *p;            /* (n_head, T_max) attention probabilities */
    float *rope;         /* (T_max, C / n_head) rotary angles of each position, with m->rope */
    uint8_t *a, *y;      /* (max_rows, max(3C, M, C)) codes */
    int32_t *acc;        /* (max_rows, max(3C, M, V)) accumulators */
    uint8_t *gelu_lut;   /* (L, 256): mlp.fc output code -> mlp.proj input code */
    float *deq;          /* (4 L, 256): block linear j's output code -> real value */
    float *row_scale;    /* (max_rows) dynamic models: input scales of the current linear */
    int32_t *row_zp;     /* (max_rows) and zero points */
} oct_i8_gpt_cache;

/* Checks m (oct_i8_gpt_check) and allocates for max_rows >= 1; OCT_EINVAL / OCT_ENOMEM with c
 * zeroed on failure. */
oct_status oct_i8_gpt_cache_init(oct_i8_gpt_cache *c, const oct_i8_gpt *m, int max_rows);
/* Releases c. oct_i8_gpt_cache_free(NULL) is a no-op. */
void oct_i8_gpt_cache_free(oct_i8_gpt_cache *c);
/* Appends tokens ids[0..n) at positions len..len+n-1 (len + n <= context, ids in [0, V), else
 * OCT_ASSERT) and writes, for each of them, the accumulators and real logits predicting the
 * next token. Runs in chunks of max_rows; the results do not depend on how the sequence is
 * split into calls, the kernel or the thread count. logits may be NULL. */
void oct_i8_gpt_run(oct_i8_gpt_cache *c, const int32_t *ids /* (n) */, int n,
                    int32_t *logits_acc /* (n,V) */, float *logits /* (n,V) or NULL */);
/* Feeds the prompt, then samples n_new tokens into out (NULL: not kept) with oct_gpt_sample's
 * rule (temperature, top-k, rng), sliding the window like oct_gpt_generate when the context is
 * full. The sampling rule is passed in so the engine does not depend on src/nn; it is called
 * once per new token, in order, before the next token is computed, so a sampler that also
 * prints the token it picks streams the text. */
typedef int32_t (*oct_i8_sample_fn)(const float *logits, int V, float temperature, int top_k,
                                    void *rng);
oct_status oct_i8_gpt_generate(oct_i8_gpt_cache *c, const int32_t *prompt, int n_prompt, int n_new,
                               float temperature, int top_k, oct_i8_sample_fn sample, void *rng,
                               int32_t *out /* (n_new) */);

/* ---- the GPT export file (src/int8/gpt_export.c) ------------------------------------------------
 *
 * One safetensors file, format version 2, or 3 when it uses rotary position embedding, or 4 when
 * it has no learned position embedding (version 1, without dynamic activations and packed codes,
 * loads unchanged):
 *   metadata  "octet.format" = "octet-int8-gpt", "octet.format_version" = "2", "3" (rope) or "4"
 *             (no wpe), optionally
 *             "octet.source" (the text it was trained on; informational),
 *             "octet.graph" = JSON: {"config": {"vocab", "context", "n_layer", "n_head",
 *             "width", "mlp", "ln_eps", "embeddings": "f32" or "i8", "gelu": "tanh" or "erf",
 *             "rope": true or false (version 3; absent: false), "wpe": true or false
 *             (version 4; absent: true; false: no "wpe" tensors)}, "linears": [{"name":
 *             "h.0.attn.qkv", "in", "out", "relu": false, "input_scale", "input_zero_point",
 *             "input_qmin", "input_qmax", "output": {"scale", "zero_point", "qmin", "qmax"} or
 *             null}, ...]} (same per-linear fields as the MLP graph, plus the input code range)
 *   tensors   F32 "wte.weight" (V,C), "wpe.weight" (T_max,C) for "f32" embeddings; for "i8",
 *             I8 "wte.weight_q" (V,C), "wpe.weight_q" (T_max,C) and F32 "wte.scale" (V),
 *             "wpe.scale" (T_max), dequantized at load; F32 "h.<i>.ln_1.weight"/".bias",
 *             "h.<i>.ln_2.weight"/".bias", "ln_f.weight"/".bias" (C);
 *             per linear "<name>.weight_scale" F32, "<name>.bias_q", "<name>.wsum",
 *             "<name>.m0", "<name>.shift" I32 (out), "<name>.weight_q" I8 (out,in), exactly
 *             as in the MLP export; U8 "vocab" (V). Code tables of at most 16 values (linears,
 *             int8 embeddings) are packed as in the MLP export; "activations": "dynamic" as
 *             there too (per linear a float "<name>.bias", input code range [0, 255]).
 * The loader accepts only a self-consistent file: format and version, every tensor with its
 * dtype and shape and no other, oct_i8_gpt_check, wsum and multipliers matching the codes and
 * scales. */
#define OCT_I8_GPT_FORMAT "octet-int8-gpt"
#define OCT_I8_GPT_FORMAT_VERSION 4

/* Writes m (checked first, OCT_EINVAL) atomically; OCT_EIO on failure. */
oct_status oct_i8_gpt_save(const oct_i8_gpt *m, const char *path);
/* Reads and validates path into m (zeroed, and zeroed again on failure); errors name the file
 * and the field or tensor (OCT_EIO, OCT_EFORMAT, OCT_ENOTFOUND, OCT_ESHAPE, OCT_ENOMEM). */
oct_status oct_i8_gpt_load(oct_i8_gpt *m, const char *path);

#endif
