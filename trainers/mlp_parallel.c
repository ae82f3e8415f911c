/* Data-parallel MLP training steps (see mlp_parallel.h). */
#include "mlp_parallel.h"

#include <cblas.h>
#include <string.h>

#include "octet/parallel.h"

void mlp_parallel_init(mlp_parallel *p, mlp_model *m, int shards, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->shards = shards < 1 ? 1 : shards > MLP_MAX_SHARDS ? MLP_MAX_SHARDS : shards;
    oct_params_init(&p->grads[0]);
    for (int l = 0; l < m->mlp.n_layers; l++) {
        oct_params_add(&p->grads[0], m->mlp.layers[l].w);
        if (m->mlp.layers[l].b) oct_params_add(&p->grads[0], m->mlp.layers[l].b);
    }
    for (int s = 1; s < p->shards; s++) {
        oct_mlp *r = &p->replica[s];
        *r = m->mlp;
        r->layers = oct_arena_alloc(&m->arena, (size_t)r->n_layers * sizeof *r->layers);
        oct_params_init(&p->grads[s]);
        for (int l = 0; l < r->n_layers; l++) {
            oct_tensor *src[2] = {m->mlp.layers[l].w, m->mlp.layers[l].b};
            oct_tensor *dst[2] = {NULL, NULL};
            for (int i = 0; i < 2; i++) {
                if (!src[i]) continue;
                dst[i] = oct_arena_alloc(&m->arena, sizeof *dst[i]);
                *dst[i] = *src[i]; /* same data */
                dst[i]->grad = oct_arena_calloc(&m->arena, (size_t)src[i]->size * sizeof(float));
                oct_params_add(&p->grads[s], dst[i]);
            }
            r->layers[l].w = dst[0];
            r->layers[l].b = dst[1];
        }
        oct_graph_init(&p->graphs[s], 0, seed + (uint64_t)s);
    }
}

void mlp_parallel_free(mlp_parallel *p) {
    if (!p) return;
    oct_params_free(&p->grads[0]);
    for (int s = 1; s < p->shards; s++) {
        oct_params_free(&p->grads[s]);
        oct_graph_free(&p->graphs[s]);
    }
    memset(p, 0, sizeof *p);
}

typedef struct shard_job {
    mlp_parallel *p;
    mlp_model *m;
    oct_graph *g0;
    const oct_image_set *set;
    const int32_t *idx;
    int n;
    float loss[MLP_MAX_SHARDS];
} shard_job;

/* Shard s: forward and backward of its rows, loss weighted by its share of the batch. */
static void run_shard(void *ctx, int s) {
    shard_job *j = ctx;
    int lo = (int)((int64_t)j->n * s / j->p->shards),
        hi = (int)((int64_t)j->n * (s + 1) / j->p->shards);
    oct_graph *g = s == 0 ? j->g0 : &j->p->graphs[s];
    const oct_mlp *mlp = s == 0 ? &j->m->mlp : &j->p->replica[s];
    int in = mlp->sizes[0];
    oct_graph_reset(g);
    g->training = true;
    oct_tensor *x = oct_tensor_new2(&g->arena, hi - lo, in);
    int32_t *y = oct_arena_alloc(&g->arena, (size_t)(hi - lo) * sizeof *y);
    oct_image_set_batch(j->set, j->idx + lo, hi - lo, x->data, y);
    oct_tensor *loss = oct_cross_entropy(g, oct_mlp_forward(mlp, g, x), y);
    loss = oct_scale(g, loss, (float)(hi - lo) / (float)j->n);
    oct_graph_backward(g, loss);
    j->loss[s] = loss->data[0];
}

float mlp_parallel_step(mlp_parallel *p, mlp_model *m, oct_graph *g, const oct_image_set *set,
                        const int32_t *idx, int n) {
    shard_job j = {.p = p, .m = m, .g0 = g, .set = set, .idx = idx, .n = n};
    oct_params_zero_grad(&m->params);
    if (p->shards == 1) {
        run_shard(&j, 0);
        return j.loss[0];
    }
    openblas_set_num_threads(1);
    oct_parallel_for(p->shards, p->shards, run_shard, &j);
    float loss = j.loss[0];
    for (int s = 1; s < p->shards; s++) {
        loss += j.loss[s];
        for (int i = 0; i < p->grads[0].n; i++) {
            float *dst = p->grads[0].items[i]->grad, *src = p->grads[s].items[i]->grad;
            int64_t size = p->grads[0].items[i]->size;
            for (int64_t k = 0; k < size; k++) dst[k] += src[k];
            memset(src, 0, (size_t)size * sizeof *src);
        }
    }
    return loss;
}
