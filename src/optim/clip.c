/* Global gradient-norm clipping (torch.nn.utils.clip_grad_norm_ with the L2 norm). The sum of
 * squares runs in double over eight interleaved lanes in a fixed order, so the norm is the same
 * on every machine and build, and the loop stays fast. */
#include "octet/optim.h"

#include <math.h>

#define LANES 8

/* Sum of squares of g (n) in double; lane k takes elements k, k + LANES, ... */
static double sum_squares(const float *g, /* (n) */
                          int64_t n) {
    double acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) acc[k] += (double)g[i + k] * (double)g[i + k];
    for (int k = 0; i < n; i++, k++) acc[k] += (double)g[i] * (double)g[i];
    double s = 0.0;
    for (int k = 0; k < LANES; k++) s += acc[k];
    return s;
}

double oct_clip_grad_norm(const oct_params *p, float max_norm) {
    double ss = 0.0;
    for (int i = 0; i < p->n; i++) ss += sum_squares(p->items[i]->grad, p->items[i]->size);
    double norm = sqrt(ss);
    if (!(max_norm > 0.0f) || !isfinite(norm) || norm <= max_norm) return norm;
    float coef = (float)((double)max_norm / (norm + 1e-6));
    for (int i = 0; i < p->n; i++) {
        float *g = p->items[i]->grad;
        for (int64_t j = 0; j < p->items[i]->size; j++) g[j] *= coef;
    }
    return norm;
}
