/* Range observers for quantization-aware training: min-max and moving-average min-max, per
 * tensor or per channel (rows), with a frozen flag. Non-finite values are skipped so that one
 * NaN or Inf cannot poison a range. The state is two float arrays owned by the caller, so
 * checkpoints store it as plain tensors; and the histogram of post-training calibration with its
 * least-squared-error range. The rules are documented in include/octet/quant.h. */
#include "octet/quant.h"

#include <float.h>
#include <math.h>
#include <string.h>

void oct_observer_init(oct_observer *o, float *lo, float *hi, int nch, float momentum) {
    OCT_ASSERT(nch > 0 && momentum >= 0.0f && momentum <= 1.0f);
    *o = (oct_observer){.lo = lo, .hi = hi, .nch = nch, .momentum = momentum, .frozen = false};
    for (int c = 0; c < nch; c++) {
        lo[c] = INFINITY;
        hi[c] = -INFINITY;
    }
}

/* v as a candidate minimum / maximum: NaN and -Inf cannot lower a minimum, NaN and +Inf cannot
 * raise a maximum (+Inf never lowers a minimum, -Inf never raises a maximum by themselves). */
static inline float for_min(float v) {
    return v >= -FLT_MAX ? v : INFINITY;
}
static inline float for_max(float v) {
    return v <= FLT_MAX ? v : -INFINITY;
}

void oct_finite_range(const float *x, int64_t n, float *lo, float *hi) {
    /* Eight independent lanes of plain selects so that the loop vectorizes; min and max are
     * exact, so the result is a sequential scan's. */
    float mn[8], mx[8];
    for (int j = 0; j < 8; j++) {
        mn[j] = INFINITY;
        mx[j] = -INFINITY;
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float a = for_min(x[i + j]), b = for_max(x[i + j]);
            mn[j] = a < mn[j] ? a : mn[j];
            mx[j] = b > mx[j] ? b : mx[j];
        }
    for (; i < n; i++) {
        float a = for_min(x[i]), b = for_max(x[i]);
        mn[0] = a < mn[0] ? a : mn[0];
        mx[0] = b > mx[0] ? b : mx[0];
    }
    for (int j = 1; j < 8; j++) {
        mn[0] = mn[j] < mn[0] ? mn[j] : mn[0];
        mx[0] = mx[j] > mx[0] ? mx[j] : mx[0];
    }
    *lo = mn[0];
    *hi = mx[0];
}

void oct_observer_update_range(oct_observer *o, int c, float mn, float mx) {
    OCT_ASSERT(c >= 0 && c < o->nch);
    if (o->frozen || mn > mx) return; /* no finite value */
    if (o->lo[c] > o->hi[c]) {        /* first data for this channel */
        o->lo[c] = mn;
        o->hi[c] = mx;
    } else if (o->momentum == 0.0f) {
        o->lo[c] = mn < o->lo[c] ? mn : o->lo[c];
        o->hi[c] = mx > o->hi[c] ? mx : o->hi[c];
    } else {
        o->lo[c] = (float)(o->lo[c] + (double)o->momentum * ((double)mn - o->lo[c]));
        o->hi[c] = (float)(o->hi[c] + (double)o->momentum * ((double)mx - o->hi[c]));
    }
}

void oct_observer_update(oct_observer *o, const float *x, int64_t n) {
    OCT_ASSERT(n % o->nch == 0);
    if (o->frozen) return;
    int64_t cols = n / o->nch;
    for (int c = 0; c < o->nch; c++) {
        float mn, mx;
        oct_finite_range(x + c * cols, cols, &mn, &mx);
        oct_observer_update_range(o, c, mn, mx);
    }
}

oct_status oct_observer_qparams(const oct_observer *o, const oct_qscheme *q, float *scale,
                                int32_t *zero_point) {
    oct_status st = OCT_OK;
    for (int c = 0; c < o->nch; c++) {
        bool empty = o->lo[c] > o->hi[c];
        oct_status sc = oct_quant_params(q, empty ? 0.0f : o->lo[c], empty ? 0.0f : o->hi[c],
                                         &scale[c], &zero_point[c]);
        if (sc != OCT_OK) st = sc;
    }
    return st;
}

/* ---- histogram calibration ------------------------------------------------------------------ */

enum { HB = OCT_HIST_BINS, HIST_COARSE = 64 };

void oct_histogram_init(oct_histogram *h, double *count) {
    *h = (oct_histogram){.count = count};
    memset(count, 0, HB * sizeof *count);
}

/* Doubles the bin width. Downwards the range becomes [lo - HB width, lo + HB width): old bins k
 * and k + 1 (k even) merge into bin HB / 2 + k / 2, filled from the top so that no source is
 * overwritten before it is read. Upwards it becomes [lo, lo + 2 HB width): they merge into k / 2.
 */
static void hist_double(oct_histogram *h, bool down) {
    double *c = h->count;
    if (down) {
        for (int k = HB / 2 - 1; k >= 0; k--) c[HB / 2 + k] = c[2 * k] + c[2 * k + 1];
        memset(c, 0, HB / 2 * sizeof *c);
        h->lo -= HB * h->width;
    } else {
        for (int k = 0; k < HB / 2; k++) c[k] = c[2 * k] + c[2 * k + 1];
        memset(c + HB / 2, 0, HB / 2 * sizeof *c);
    }
    h->width *= 2;
}

void oct_histogram_add(oct_histogram *h, const float *x, int64_t n) {
    float mn, mx;
    oct_finite_range(x, n, &mn, &mx);
    if (mn > mx) return; /* no finite value */
    if (h->total == 0) {
        double span = (double)mx - mn, mag = fabs((double)mn);
        h->lo = mn;
        /* mx inside the last bin, not on its upper edge */
        h->width = span > 0 ? span / (HB - 1) : (mag > 0 ? mag : 1.0) / HB;
    }
    while (mn < h->lo) hist_double(h, true);
    while (mx >= h->lo + HB * h->width) hist_double(h, false);
    double inv = 1.0 / h->width;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        double k = floor((x[i] - h->lo) * inv);
        h->count[k < 0 ? 0 : k >= HB ? HB - 1 : (int)k] += 1.0; /* (rounding at the edges) */
        h->total += 1.0;
    }
}

/* The expected squared error, in squared bin widths times values, of quantizing h's values
 * with the range [a, b] under q: each bin's values sit at its centre u (plus the variance of a
 * uniform spread over the bin, 1/12) and go to the grid point that rounding or clipping picks. */
static double hist_error(const oct_histogram *h, const oct_qscheme *q, float a, float b) {
    float s;
    int32_t z;
    if (oct_quant_params(q, a, b, &s, &z) != OCT_OK) return INFINITY;
    double cl = ((double)s * (q->qmin - z) - h->lo) / h->width;
    double ch = ((double)s * (q->qmax - z) - h->lo) / h->width;
    double sb = (double)s / h->width, e = 0.0;
    for (int k = 0; k < HB; k++) {
        if (h->count[k] == 0.0) continue;
        double u = k + 0.5;
        double v = u <= cl ? cl : u >= ch ? ch : cl + rint((u - cl) / sb) * sb;
        e += h->count[k] * ((u - v) * (u - v) + 1.0 / 12.0);
    }
    return e;
}

/* The edge of bin k as a float. */
static float edge(const oct_histogram *h, int k) {
    return (float)(h->lo + k * h->width);
}

/* Tries the ranges [edge(i), edge(j)] for i in [i0, i1] and j in [j0, j1], every step bins, and
 * keeps the best in *bi, *bj, *best. */
static void hist_search(const oct_histogram *h, const oct_qscheme *q, int i0, int i1, int j0,
                        int j1, int step, int *bi, int *bj, double *best) {
    i0 = i0 < 0 ? 0 : i0;
    j1 = j1 > HB ? HB : j1;
    for (int i = i0; i <= i1 && i < HB; i += step)
        for (int j = j1; j >= j0 && j > i; j -= step) {
            double e = hist_error(h, q, edge(h, i), edge(h, j));
            if (e < *best) {
                *best = e;
                *bi = i;
                *bj = j;
            }
        }
}

void oct_histogram_range(const oct_histogram *h, const oct_qscheme *q, float *lo, float *hi) {
    if (!(h->total > 0)) return;
    /* Coarse: every pair of edges 64 bins apart; then finer around the best pair. */
    int bi = 0, bj = HB;
    double best = hist_error(h, q, edge(h, 0), edge(h, HB));
    hist_search(h, q, 0, HB, 0, HB, HIST_COARSE, &bi, &bj, &best);
    for (int step = HIST_COARSE / 8; step >= 1; step /= 8) {
        int ci = bi, cj = bj, r = 8 * step;
        hist_search(h, q, ci - r, ci + r, cj - r, cj + r, step, &bi, &bj, &best);
    }
    *lo = edge(h, bi);
    *hi = edge(h, bj);
}
