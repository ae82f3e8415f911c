/* Float32 row kernels of the transformer non-linearities, shared by training (the ops in
 * src/ops and the QAT GPT) and deployment (the integer GPT engine in src/int8): LayerNorm of
 * one row, GELU (tanh form and exact erf form), the rotary position embedding of one row of
 * queries or keys, and causal attention of one query row over its keys.
 *
 * Each kernel is a pure function of its inputs with a fixed order of operations (no threading
 * and no reassociation inside a row), so the QAT forward pass and the engine, calling the same
 * function on the same floats, get the same bits. Of libm they use only functions whose results
 * IEEE 754 fixes exactly (sqrtf, fabsf, rint, ldexp): exp, tanh, erfc, cos and sin are octet's
 * own, from IEEE arithmetic alone, so those bits are the same under any C library too. Part of
 * the quant module (src/quant/nonlinear.c): src/int8 may use it without depending on the
 * autograd ops. */
#ifndef OCTET_NONLINEAR_H
#define OCTET_NONLINEAR_H

#include <stdbool.h>
#include <stdint.h>

/* y = (x - mean) * rstd * gamma + beta with mean = sum(x) / C and rstd = 1 / sqrtf(var + eps),
 * var = sum((x - mean)^2) / C, both sums in float32 from j = 0 up. mean and rstd (may be NULL)
 * receive the row statistics. y may not alias x. */
void oct_nl_layernorm_row(const float *x /* (C) */, const float *gamma /* (C) */,
                          const float *beta /* (C) */, int C, float eps, float *y /* (C) */,
                          float *mean, float *rstd);

/* e^x for x <= 0 in float32 with octet's own branch-free polynomial (Cody-Waite reduction, the
 * Cephes expf polynomial; relative error below 1e-7 against the exact value), x below -87
 * (and -Inf, NaN) taken as -87 (e^-87 = 1.6e-38): what the attention softmax and GELU use. */
float oct_nl_exp(float x);

/* y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) elementwise, computed as x / (1 +
 * e^(-2u)) with octet's own branch-free float32 exp (relative error ~1e-6, not libm's tanhf),
 * so the loop vectorizes and every caller gets the same bits for the same x. y may equal x. */
void oct_nl_gelu(const float *x /* (n) */, int64_t n, float *y /* (n) */);
/* dx += dy * d gelu(x) / dx of the formula above (with the same exp). */
void oct_nl_gelu_backward(const float *x /* (n) */, const float *dy /* (n) */, int64_t n,
                          float *dx /* (n) */);

/* y = x Phi(x) = 0.5 x erfc(-x / sqrt 2) elementwise: the exact GELU (PyTorch's nn.GELU()
 * default), with erfc from a rational-exponential fit (relative error ~1.2e-7) and the same exp
 * as oct_nl_gelu, so it vectorizes and every caller gets the same bits. y may equal x. */
void oct_nl_gelu_erf(const float *x /* (n) */, int64_t n, float *y /* (n) */);
/* dx += dy * (Phi(x) + x phi(x)), the derivative of the formula above. */
void oct_nl_gelu_erf_backward(const float *x /* (n) */, const float *dy /* (n) */, int64_t n,
                              float *dx /* (n) */);

/* Causal attention of one query row over n keys (n >= 1), all heads: head h owns columns
 * [h hs, (h+1) hs) of q, k and v (hs = C / n_head). Per head: s_u = dot(q_h, k_u,h) * (1 /
 * sqrtf(hs)) for u = 0..n-1 (each dot product summed in oct_nl_dot's order), p = softmax(s)
 * (maximum subtracted, oct_nl_exp, sum from u = 0 up, each multiplied by the reciprocal of the
 * sum), out_h = sum_u p_u v_u,h (from u = 0 up). The keys are stored transposed: key u's component
 * d is kt[d * kt_stride + u], n <= kt_stride, and all kt_stride columns of kt's rows are readable
 * (a block of keys may read columns past n, and ignores them). The dot products then run over
 * 16 keys at a time in full vector lanes, without a horizontal sum per key. Row u of v starts
 * at v + u * v_stride. p receives the probabilities: p + h * p_stride holds head h's n values. */
void oct_nl_attention_row(const float *q /* (C) */, const float *kt /* (C, kt_stride) */,
                          int64_t kt_stride, const float *v /* (n, v_stride) */, int64_t v_stride,
                          int n, int C, int n_head, float *p /* (n_head, p_stride) */,
                          int64_t p_stride, float *out /* (C) */);

/* Rotary position embedding (RoPE, Su et al. 2021, in the GPT-NeoX layout: each head's first
 * half is paired with its second half). The angles of position t for head size hs (even):
 * cs[2 i] = cos(theta), cs[2 i + 1] = sin(theta), theta = t * 10000^(-2 i / hs), i < hs / 2,
 * computed in double (exp, cos and sin by series from IEEE arithmetic, not libm's; within float
 * rounding of libm's values, tested for t < 4096) and rounded to float. */
#define OCT_ROPE_LN_BASE 9.210340371976184 /* ln 10000 */
void oct_nl_rope_angles(int t, int hs, float *cs /* (hs) */);
/* Rotates the queries and keys of one qkv row (q, k, v; C = n_head hs each) in place by the
 * angles cs of its position, v untouched: per head of q and of k and i < hs / 2, (a, b) =
 * (x[i], x[i + hs / 2]) becomes (a c - b s, a s + b c). inverse rotates by -theta (the
 * transpose, for the backward). */
void oct_nl_rope_row(float *qkv /* (3C) */, int C, int n_head, const float *cs /* (C / n_head) */,
                     bool inverse);

/* Dot product of a and b (n) in a fixed order: eight running sums over i = j mod 8, added in a
 * fixed tree, then the tail. */
float oct_nl_dot(const float *a /* (n) */, const float *b /* (n) */, int n);

#endif
