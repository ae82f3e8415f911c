/* The float32 row kernels shared by training and the integer GPT engine (see
 * include/octet/nonlinear.h): LayerNorm, GELU and one causal attention row, each with a fixed
 * order of operations so that both sides compute the same bits. */
#include "octet/nonlinear.h"

#include <math.h>

#include "octet/status.h"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_CUBE 0.044715f

void oct_nl_layernorm_row(const float *x, const float *gamma, const float *beta, int C, float eps,
                          float *y, float *mean, float *rstd) {
    float m = 0.0f;
    for (int j = 0; j < C; j++) m += x[j];
    m /= (float)C;
    float v = 0.0f;
    for (int j = 0; j < C; j++) {
        float d = x[j] - m;
        v += d * d;
    }
    v /= (float)C;
    float s = 1.0f / sqrtf(v + eps);
    for (int j = 0; j < C; j++) y[j] = (x[j] - m) * s * gamma[j] + beta[j];
    if (mean) *mean = m;
    if (rstd) *rstd = s;
}

void oct_nl_gelu(const float *x, int64_t n, float *y) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(GELU_SCALE * (v + GELU_CUBE * v * v * v)));
    }
}

float oct_nl_gelu_grad(float v) {
    float th = tanhf(GELU_SCALE * (v + GELU_CUBE * v * v * v));
    float sech2 = 1.0f - th * th;
    return 0.5f * (1.0f + th) + 0.5f * v * sech2 * GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * v * v);
}

float oct_nl_dot(const float *a, const float *b, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

void oct_nl_attention_row(const float *q, const float *k, const float *v, int64_t kv_stride, int n,
                          int C, int n_head, float *p, int64_t p_stride, float *out) {
    OCT_ASSERT(n >= 1 && n_head > 0 && C % n_head == 0);
    int hs = C / n_head;
    float scale = 1.0f / sqrtf((float)hs);
    for (int h = 0; h < n_head; h++) {
        const float *qh = q + h * hs;
        float *ph = p + h * p_stride, *oh = out + h * hs;
        float mx = -INFINITY;
        for (int u = 0; u < n; u++) {
            ph[u] = oct_nl_dot(qh, k + u * kv_stride + h * hs, hs) * scale;
            mx = ph[u] > mx ? ph[u] : mx;
        }
        float sum = 0.0f;
        for (int u = 0; u < n; u++) {
            ph[u] = expf(ph[u] - mx);
            sum += ph[u];
        }
        float inv = 1.0f / sum;
        for (int i = 0; i < hs; i++) oh[i] = 0.0f;
        for (int u = 0; u < n; u++) {
            const float *vu = v + u * kv_stride + h * hs;
            float pu = ph[u] * inv;
            ph[u] = pu;
            for (int i = 0; i < hs; i++) oh[i] += pu * vu[i];
        }
    }
}
