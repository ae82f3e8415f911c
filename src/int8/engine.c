/* The integer MLP engine (see include/octet/int8.h): the structural check of an oct_i8_mlp, the
 * engine context with its scratch buffers, and the forward pass. Between the input quantization
 * and the logits' int32 accumulators every step is an oct_qlinear call, the same integer layer
 * the QAT forward pass runs, so a deployed model reproduces training's integers exactly. */
#include "octet/int8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "octet/data.h"
#include "int8_internal.h"
#include "octet/parallel.h"
#include "octet/quant.h"

/* Rows per chunk of the one-shot forward functions. */
#define ONE_SHOT_BATCH 256

void oct_i8_mlp_free(oct_i8_mlp *m) {
    if (!m) return;
    for (int i = 0; m->layers && i < m->n_layers; i++) oct_qlinear_free(&m->layers[i]);
    free(m->layers);
    free(m->source);
    memset(m, 0, sizeof *m);
}

/* ---- structural check ---------------------------------------------------------------------- */

static bool positive_finite(float s) {
    return s > 0 && isfinite(s);
}

oct_status oct__i8_check_codes(const char *what, int32_t zp, int32_t qmin, int32_t qmax) {
    if (qmin < 0 || qmax > 255 || qmin >= qmax)
        return oct_fail(OCT_EINVAL, "%s: code range [%d, %d] is not inside [0, 255]", what,
                        (int)qmin, (int)qmax);
    if (zp < qmin || zp > qmax)
        return oct_fail(OCT_EINVAL, "%s: zero point %d outside [%d, %d]", what, (int)zp, (int)qmin,
                        (int)qmax);
    return OCT_OK;
}

/* The checks of a dynamic layer after the common ones: float bias finite, no output
 * quantization (a dynamic layer outputs floats). */
static oct_status dynamic_check(const oct_qlinear *l, const char *name, bool last) {
    if (!l->bias) return oct_fail(OCT_EINVAL, "%s: dynamic layer without its float bias", name);
    for (int c = 0; c < l->out; c++)
        if (!isfinite(l->bias[c]))
            return oct_fail(OCT_EINVAL, "%s.bias: channel %d is %g, not finite", name, c,
                            (double)l->bias[c]);
    if (l->quant_out || (last && l->relu))
        return oct_fail(OCT_EINVAL, "%s: a dynamic layer outputs floats (no output quantization%s)",
                        name, last ? ", no relu on the logits" : "");
    return OCT_OK;
}

oct_status oct__qlinear_check(const oct_qlinear *l, const char *name, bool last) {
    char what[80];
    if (l->in < 1 || l->out < 1 || !l->w.data || l->w.N != l->out || l->w.K != l->in ||
        !l->bias_q || !l->w_scale || !l->m0 || !l->shift)
        return oct_fail(OCT_EINVAL, "%s: layer (%d -> %d) is not built", name, l->in, l->out);
    for (int c = 0; c < l->out; c++)
        if (!positive_finite(l->w_scale[c]))
            return oct_fail(OCT_EINVAL,
                            "%s.weight_scale: channel %d is %g, not positive and "
                            "finite",
                            name, c, (double)l->w_scale[c]);
    if (l->dynamic) return dynamic_check(l, name, last);
    if (!positive_finite(l->a_scale))
        return oct_fail(OCT_EINVAL, "%s: input scale %g is not positive and finite", name,
                        (double)l->a_scale);
    int64_t bias_max = oct_qlinear_bias_max(l->in);
    for (int c = 0; c < l->out; c++)
        if (llabs((long long)l->bias_q[c]) > bias_max)
            return oct_fail(OCT_EINVAL,
                            "%s.bias_q: channel %d is %d, too large for int32 "
                            "accumulators (limit %lld)",
                            name, c, (int)l->bias_q[c], (long long)bias_max);
    if (last && (l->quant_out || l->relu))
        return oct_fail(OCT_EINVAL,
                        "%s: the last layer must output int32 logits (no output "
                        "quantization, no relu)",
                        name);
    if (last) return OCT_OK;
    if (!l->quant_out)
        return oct_fail(OCT_EINVAL, "%s: a hidden layer must requantize its output", name);
    if (!positive_finite(l->y_scale))
        return oct_fail(OCT_EINVAL, "%s: output scale %g is not positive and finite", name,
                        (double)l->y_scale);
    snprintf(what, sizeof what, "%s output", name);
    oct_status s = oct__i8_check_codes(what, l->y_zp, l->y_qmin, l->y_qmax);
    if (s != OCT_OK) return s;
    if (oct_requant_check(l->m0, l->shift, l->out) != OCT_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", oct_last_error());
        return oct_fail(OCT_EINVAL, "%s.m0/%s.shift: %s", name, name, msg);
    }
    return OCT_OK;
}

oct_status oct_i8_mlp_check(const oct_i8_mlp *m) {
    if (m->n_layers < 1 || m->n_layers > OCT_I8_MAX_LAYERS || !m->layers)
        return oct_fail(OCT_EINVAL, "int8 mlp: %d layers, expected 1 to %d", m->n_layers,
                        OCT_I8_MAX_LAYERS);
    if (!positive_finite(m->in_std) || !isfinite(m->in_mean))
        return oct_fail(OCT_EINVAL,
                        "input: normalization mean %g / std %g is not finite with a "
                        "positive std",
                        (double)m->in_mean, (double)m->in_std);
    oct_status s = oct__i8_check_codes("input", m->layers[0].a_zp, m->in_qmin, m->in_qmax);
    if (s == OCT_OK && m->dynamic && (m->in_qmin != 0 || m->in_qmax != 255))
        s = oct_fail(OCT_EINVAL, "input: a dynamic input's codes are [0, 255], not [%d, %d]",
                     (int)m->in_qmin, (int)m->in_qmax);
    for (int i = 0; i < m->n_layers && s == OCT_OK; i++) {
        char name[24];
        snprintf(name, sizeof name, "fc%d", i);
        if (m->layers[i].dynamic != m->dynamic)
            s = oct_fail(OCT_EINVAL, "%s: a %s layer in a model with %s activations", name,
                         m->layers[i].dynamic ? "dynamic" : "static",
                         m->dynamic ? "dynamic" : "static");
        if (s == OCT_OK) s = oct__qlinear_check(&m->layers[i], name, i == m->n_layers - 1);
        if (s != OCT_OK || i == 0) continue;
        const oct_qlinear *p = &m->layers[i - 1], *l = &m->layers[i];
        if (l->in != p->out)
            s = oct_fail(OCT_EINVAL, "fc%d: %d inputs, but fc%d has %d outputs", i, l->in, i - 1,
                         p->out);
        else if (!m->dynamic && (l->a_scale != p->y_scale || l->a_zp != p->y_zp))
            s = oct_fail(OCT_EINVAL,
                         "fc%d: input scale/zero point %.9g/%d differ from fc%d's "
                         "output %.9g/%d",
                         i, (double)l->a_scale, (int)l->a_zp, i - 1, (double)p->y_scale,
                         (int)p->y_zp);
    }
    return s;
}

/* ---- engine -------------------------------------------------------------------------------- */

void oct_i8_engine_free(oct_i8_engine *e) {
    if (!e) return;
    free(e->codes[0]);
    free(e->codes[1]);
    free(e->acc);
    free(e->f[0]);
    free(e->f[1]);
    free(e->row_scale);
    free(e->row_zp);
    memset(e, 0, sizeof *e);
}

oct_status oct_i8_engine_init(oct_i8_engine *e, const oct_i8_mlp *m, int max_batch) {
    OCT_ASSERT(max_batch >= 1);
    memset(e, 0, sizeof *e);
    oct_status s = oct_i8_mlp_check(m);
    if (s != OCT_OK) return s;
    int width = m->layers[0].in;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].out > width) width = m->layers[i].out;
    size_t n = (size_t)max_batch * (size_t)width;
    e->m = m;
    e->max_batch = max_batch;
    e->width = width;
    e->codes[0] = malloc(n);
    e->codes[1] = malloc(n);
    e->acc = malloc(n * sizeof *e->acc);
    bool ok = e->codes[0] && e->codes[1] && e->acc;
    if (m->dynamic) {
        e->f[0] = malloc(n * sizeof(float));
        e->f[1] = malloc(n * sizeof(float));
        e->row_scale = malloc((size_t)max_batch * sizeof *e->row_scale);
        e->row_zp = malloc((size_t)max_batch * sizeof *e->row_zp);
        ok = ok && e->f[0] && e->f[1] && e->row_scale && e->row_zp;
    }
    if (!ok) {
        oct_i8_engine_free(e);
        return oct_fail(OCT_ENOMEM, "int8 engine: out of memory for %d rows of width %d", max_batch,
                        width);
    }
    for (int p = 0; p < 256; p++)
        e->pixel_value[p] = oct_pixel_normalize((uint8_t)p, m->in_mean, m->in_std);
    if (!m->dynamic)
        oct_quantize_u8(e->pixel_value, 1, 256, &m->layers[0].a_scale, &m->layers[0].a_zp,
                        m->in_qmin, m->in_qmax, e->pixel_code);
    return OCT_OK;
}

/* Runs n <= max_batch rows whose input codes are in e->codes[0]. */
static void run_codes(oct_i8_engine *e, int n, int32_t *logits_acc /* (n,classes) */,
                      float *logits /* (n,classes) or NULL */, int threads) {
    const oct_i8_mlp *m = e->m;
    int cur = 0;
    for (int i = 0; i < m->n_layers - 1; i++) {
        oct_qlinear_forward(&m->layers[i], e->codes[cur], n, e->acc, e->codes[1 - cur], threads);
        cur = 1 - cur;
    }
    const oct_qlinear *last = &m->layers[m->n_layers - 1];
    oct_qlinear_acc(last, e->codes[cur], n, logits_acc, threads);
    if (logits)
        oct_acc_to_real_rows(logits_acc, n, last->out, last->a_scale, last->w_scale, logits);
}

/* Raw pixels to the first layer's input codes, in tasks of PIXEL_ROWS rows on the GEMM's
 * threads. A static model maps every pixel through e->pixel_code. A dynamic one quantizes each
 * row as oct_qlinear_dynamic would quantize its normalized values: normalization is
 * non-decreasing in the pixel, so a row's range is the values of its darkest and brightest
 * pixels, and its codes come from a table of the 256 values quantized with the row's scale. */
#define PIXEL_ROWS 16

typedef struct pixel_job {
    oct_i8_engine *e;
    const uint8_t *pixels; /* (n,in) */
    int n, in;
} pixel_job;

static void pixel_task(void *arg, int task) {
    const pixel_job *j = arg;
    oct_i8_engine *e = j->e;
    int r0 = task * PIXEL_ROWS, r1 = r0 + PIXEL_ROWS < j->n ? r0 + PIXEL_ROWS : j->n, in = j->in;
    oct_qscheme aq = oct_qscheme_activations();
    for (int r = r0; r < r1; r++) {
        const uint8_t *p = j->pixels + (int64_t)r * in;
        uint8_t *a = e->codes[0] + (int64_t)r * in;
        if (!e->m->dynamic) {
            for (int k = 0; k < in; k++) a[k] = e->pixel_code[p[k]];
            continue;
        }
        uint8_t lo = p[0], hi = p[0], table[256];
        for (int k = 1; k < in; k++) {
            lo = p[k] < lo ? p[k] : lo;
            hi = p[k] > hi ? p[k] : hi;
        }
        oct_quant_params(&aq, e->pixel_value[lo], e->pixel_value[hi], &e->row_scale[r],
                         &e->row_zp[r]);
        oct_quantize_u8(e->pixel_value + lo, 1, hi - lo + 1, &e->row_scale[r], &e->row_zp[r],
                        aq.qmin, aq.qmax, table + lo);
        for (int k = 0; k < in; k++) a[k] = table[p[k]];
    }
}

static void pixel_codes(oct_i8_engine *e, const uint8_t *pixels, int n, int in, int threads) {
    pixel_job j = {e, pixels, n, in};
    oct_parallel_for((n + PIXEL_ROWS - 1) / PIXEL_ROWS, threads, pixel_task, &j);
}

/* Runs n <= max_batch rows through a dynamic model: raw pixels, or normalized inputs x. */
static void run_dynamic(oct_i8_engine *e, const float *x, const uint8_t *pixels, int n,
                        int32_t *logits_acc, float *logits, int threads) {
    const oct_i8_mlp *m = e->m;
    int cur = 1;
    for (int i = 0; i < m->n_layers; i++) {
        const oct_qlinear *l = &m->layers[i];
        bool last = i == m->n_layers - 1;
        int32_t *acc = last ? logits_acc : e->acc;
        float *y = last ? logits : e->f[1 - cur];
        if (i == 0 && pixels) {
            pixel_codes(e, pixels, n, l->in, threads);
            oct_qlinear_dynamic_codes(l, e->codes[0], n, e->row_scale, e->row_zp, acc, y, threads);
        } else {
            oct_qlinear_dynamic(l, i == 0 ? x : e->f[cur], n, e->codes[0], e->row_scale, e->row_zp,
                                acc, y, threads);
        }
        cur = 1 - cur;
    }
}

/* The loop over chunks shared by both entry points; x is float (normalized) or u8 pixels. */
static void forward(oct_i8_engine *e, const float *x, const uint8_t *pixels, int B,
                    int32_t *logits_acc, float *logits, int threads) {
    OCT_ASSERT(e->m && B >= 0 && (B == 0 || ((x || pixels) && logits_acc)));
    const oct_i8_mlp *m = e->m;
    const oct_qlinear *first = &m->layers[0];
    int in = first->in, classes = m->layers[m->n_layers - 1].out;
    for (int r = 0; r < B; r += e->max_batch) {
        int n = B - r < e->max_batch ? B - r : e->max_batch;
        int64_t count = (int64_t)n * in;
        const uint8_t *p = pixels ? pixels + (int64_t)r * in : NULL;
        int32_t *acc = logits_acc + (int64_t)r * classes;
        float *out = logits ? logits + (int64_t)r * classes : NULL;
        if (m->dynamic) {
            run_dynamic(e, x ? x + (int64_t)r * in : NULL, p, n, acc, out, threads);
            continue;
        }
        if (x)
            oct_quantize_u8(x + (int64_t)r * in, 1, count, &first->a_scale, &first->a_zp,
                            m->in_qmin, m->in_qmax, e->codes[0]);
        else
            pixel_codes(e, p, n, in, threads);
        run_codes(e, n, acc, out, threads);
    }
}

void oct_i8_engine_forward(oct_i8_engine *e, const float *x, int B, int32_t *logits_acc,
                           float *logits, int threads) {
    forward(e, x, NULL, B, logits_acc, logits, threads);
}

void oct_i8_engine_forward_u8(oct_i8_engine *e, const uint8_t *pixels, int B, int32_t *logits_acc,
                              float *logits, int threads) {
    forward(e, NULL, pixels, B, logits_acc, logits, threads);
}

static oct_status one_shot(const oct_i8_mlp *m, const float *x, const uint8_t *pixels, int B,
                           int32_t *logits_acc, float *logits, int threads) {
    oct_i8_engine e;
    oct_status s = oct_i8_engine_init(&e, m, B < 1 ? 1 : B < ONE_SHOT_BATCH ? B : ONE_SHOT_BATCH);
    if (s != OCT_OK) return s;
    forward(&e, x, pixels, B, logits_acc, logits, threads);
    oct_i8_engine_free(&e);
    return OCT_OK;
}

oct_status oct_i8_mlp_forward(const oct_i8_mlp *m, const float *x, int B, int32_t *logits_acc,
                              float *logits, int threads) {
    return one_shot(m, x, NULL, B, logits_acc, logits, threads);
}

oct_status oct_i8_mlp_forward_u8(const oct_i8_mlp *m, const uint8_t *pixels, int B,
                                 int32_t *logits_acc, float *logits, int threads) {
    return one_shot(m, NULL, pixels, B, logits_acc, logits, threads);
}
