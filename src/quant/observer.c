/* Range observers for quantization-aware training: min-max and moving-average min-max, per
 * tensor or per channel (rows), with a frozen flag. Non-finite values are skipped so that one
 * NaN or Inf cannot poison a range. The state is two float arrays owned by the caller, so
 * checkpoints store it as plain tensors. The rules are documented in include/octet/quant.h. */
#include "octet/quant.h"

#include <float.h>
#include <math.h>

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
