/* The multi-layer perceptron: a stack of linear layers with an activation (and optional
 * dropout) between them. The layers stay accessible in oct_mlp.layers so that quantized
 * forward variants can reuse the same parameters. */
#include "octet/nn.h"

int64_t oct_mlp_param_count(const int *sizes, int n_sizes) {
    int64_t n = 0;
    for (int i = 0; i + 1 < n_sizes; i++) n += ((int64_t)sizes[i] + 1) * sizes[i + 1];
    return n;
}

oct_status oct_mlp_init(oct_mlp *m, oct_arena *arena, oct_params *params, const int *sizes,
                        int n_sizes, oct_activation act, oct_init init, oct_rng *rng) {
    if (n_sizes < 2)
        return oct_fail(OCT_EINVAL, "mlp: need at least 2 layer sizes (input, output), got %d",
                        n_sizes);
    for (int i = 0; i < n_sizes; i++)
        if (sizes[i] <= 0)
            return oct_fail(OCT_EINVAL, "mlp: layer size %d is %d, expected > 0", i, sizes[i]);
    if ((unsigned)act >= OCT_ACT_COUNT)
        return oct_fail(OCT_EINVAL, "mlp: activation %d out of range", (int)act);
    if ((unsigned)init >= OCT_INIT_COUNT)
        return oct_fail(OCT_EINVAL, "mlp: init %d out of range", (int)init);
    m->n_layers = n_sizes - 1;
    m->act = act;
    m->dropout = 0.0f;
    m->sizes = oct_arena_alloc(arena, (size_t)n_sizes * sizeof *m->sizes);
    for (int i = 0; i < n_sizes; i++) m->sizes[i] = sizes[i];
    m->layers = oct_arena_alloc(arena, (size_t)m->n_layers * sizeof *m->layers);
    for (int i = 0; i < m->n_layers; i++)
        oct_linear_layer_init(&m->layers[i], arena, params, oct_arena_printf(arena, "fc%d", i),
                              sizes[i], sizes[i + 1], true, init, rng);
    return OCT_OK;
}

oct_tensor *oct_mlp_forward(const oct_mlp *m, oct_graph *g, oct_tensor *x) {
    OCT_ASSERT(oct_tensor_cols(x) == m->sizes[0]);
    oct_tensor *h = x;
    for (int i = 0; i < m->n_layers; i++) {
        h = oct_linear_layer_forward(&m->layers[i], g, h);
        if (i == m->n_layers - 1) break;
        h = oct_activation_forward(g, m->act, h);
        if (m->dropout > 0.0f) h = oct_dropout(g, h, m->dropout);
    }
    return h;
}
