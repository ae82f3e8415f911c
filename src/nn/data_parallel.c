/* Data-parallel training steps (see the data-parallelism section of include/octet/nn.h). */
#include "octet/nn.h"
#include "octet/parallel.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

oct_status oct_dp_init(oct_dp *dp, const oct_params *params, int shards, uint64_t seed) {
    memset(dp, 0, sizeof *dp);
    if (shards < 1 || shards > OCT_DP_MAX_SHARDS)
        return oct_fail(OCT_EINVAL, "data parallel: %d shards, expected 1..%d", shards,
                        OCT_DP_MAX_SHARDS);
    dp->shards = shards;
    dp->params = params;
    for (int i = 0; i < params->n; i++) OCT_ASSERT(params->items[i]->param_id == i + 1);
    for (int s = 0; s < shards; s++) {
        oct_graph_init(&dp->graphs[s], 0, seed + (uint64_t)s);
        dp->graphs[s].shard = s;
        dp->graphs[s].shards = shards;
        if (s == 0) continue;
        dp->grads[s] = calloc((size_t)params->n, sizeof *dp->grads[s]);
        OCT_ALLOC_CHECK(dp->grads[s], (size_t)params->n * sizeof *dp->grads[s]);
        for (int i = 0; i < params->n; i++) {
            dp->grads[s][i] = calloc((size_t)params->items[i]->size, sizeof(float));
            OCT_ALLOC_CHECK(dp->grads[s][i], (size_t)params->items[i]->size * sizeof(float));
        }
        dp->graphs[s].grad_redirect = dp->grads[s];
        dp->graphs[s].n_redirect = params->n;
    }
    return OCT_OK;
}

void oct_dp_free(oct_dp *dp) {
    if (!dp) return;
    for (int s = 0; s < dp->shards; s++) {
        oct_graph_free(&dp->graphs[s]);
        if (!dp->grads[s]) continue;
        for (int i = 0; i < dp->params->n; i++) free(dp->grads[s][i]);
        free(dp->grads[s]);
    }
    memset(dp, 0, sizeof *dp);
}

void oct_dp_range(int n, int shard, int shards, int *lo, int *hi) {
    /* rounded up: the first shards take the remainder, so shard 0 is empty only when n is 0 */
    *lo = (int)(((int64_t)n * shard + shards - 1) / shards);
    *hi = (int)(((int64_t)n * (shard + 1) + shards - 1) / shards);
}

typedef struct dp_job {
    oct_dp *dp;
    oct_dp_shard_fn fn;
    void *ctx;
    float loss[OCT_DP_MAX_SHARDS];
} dp_job;

static void run_shard(void *arg, int s) {
    dp_job *j = arg;
    oct_graph *g = &j->dp->graphs[s];
    if (s == 0) oct_params_zero_grad(j->dp->params); /* shard 0 alone writes them */
    oct_graph_reset(g);
    g->training = true;
    g->no_grad = false;
    j->loss[s] = j->fn(j->ctx, g, s, j->dp->shards);
}

/* Task t adds the shards' gradients into the parameters for the t-th slice of every tensor and
 * zeroes the shard buffers there. */
static void reduce_slice(void *arg, int t) {
    const oct_dp *dp = arg;
    for (int i = 0; i < dp->params->n; i++) {
        oct_tensor *p = dp->params->items[i];
        int64_t lo = p->size * t / dp->shards, hi = p->size * (t + 1) / dp->shards;
        for (int s = 1; s < dp->shards; s++) {
            float *src = dp->grads[s][i];
            for (int64_t k = lo; k < hi; k++) p->grad[k] += src[k];
            memset(src + lo, 0, (size_t)(hi - lo) * sizeof *src);
        }
    }
}

float oct_dp_step(oct_dp *dp, oct_dp_shard_fn fn, void *ctx) {
    dp_job j = {.dp = dp, .fn = fn, .ctx = ctx};
    if (dp->shards > 1) openblas_set_num_threads(1);
    oct_parallel_for(dp->shards, dp->shards, run_shard, &j);
    if (dp->shards > 1 && !dp->defer_reduce)
        oct_parallel_for(dp->shards, dp->shards, reduce_slice, dp);
    float loss = 0.0f;
    for (int s = 0; s < dp->shards; s++) loss += j.loss[s];
    return loss;
}
