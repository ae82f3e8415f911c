/* Linear layers, their weight initializers, and the activation functions that sit between
 * layers (with the names that command-line flags and saved metadata use for both). */
#include "octet/nn.h"

#include <math.h>
#include <string.h>

static const char *const init_names[] = {
    [OCT_INIT_KAIMING_UNIFORM] = "kaiming_uniform",
    [OCT_INIT_KAIMING_NORMAL] = "kaiming_normal",
    [OCT_INIT_XAVIER_UNIFORM] = "xavier_uniform",
};
_Static_assert(sizeof init_names / sizeof init_names[0] == OCT_INIT_COUNT, "init names");

static const char *const act_names[] = {
    [OCT_ACT_NONE] = "none",
    [OCT_ACT_RELU] = "relu",
    [OCT_ACT_GELU] = "gelu",
    [OCT_ACT_TANH] = "tanh",
};
_Static_assert(sizeof act_names / sizeof act_names[0] == OCT_ACT_COUNT, "activation names");

/* Index of name in names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return i;
    return -1;
}

const char *oct_init_name(oct_init init) {
    return (unsigned)init < OCT_INIT_COUNT ? init_names[init] : "?";
}

const char *oct_activation_name(oct_activation act) {
    return (unsigned)act < OCT_ACT_COUNT ? act_names[act] : "?";
}

oct_status oct_init_parse(const char *name, oct_init *out) {
    int i = name_index(init_names, OCT_INIT_COUNT, name);
    if (i < 0)
        return oct_fail(OCT_EINVAL,
                        "init '%s': expected kaiming_uniform, kaiming_normal or xavier_uniform",
                        name);
    *out = (oct_init)i;
    return OCT_OK;
}

oct_status oct_activation_parse(const char *name, oct_activation *out) {
    int i = name_index(act_names, OCT_ACT_COUNT, name);
    if (i < 0)
        return oct_fail(OCT_EINVAL, "activation '%s': expected none, relu, gelu or tanh", name);
    *out = (oct_activation)i;
    return OCT_OK;
}

oct_tensor *oct_activation_forward(oct_graph *g, oct_activation act, oct_tensor *x) {
    switch (act) {
    case OCT_ACT_NONE:
        return x;
    case OCT_ACT_RELU:
        return oct_relu(g, x);
    case OCT_ACT_GELU:
        return oct_gelu(g, x);
    case OCT_ACT_TANH:
        return oct_tanh(g, x);
    case OCT_ACT_COUNT:
        break;
    }
    OCT_ASSERT(!"activation out of range");
    return NULL;
}

void oct_linear_layer_init(oct_linear_layer *l, oct_arena *arena, oct_params *params,
                           const char *name, int in, int out, bool bias, oct_init init,
                           oct_rng *rng) {
    OCT_ASSERT(in > 0 && out > 0);
    int wshape[2] = {out, in};
    l->w = oct_tensor_param(arena, oct_arena_printf(arena, "%s.weight", name), 2, wshape);
    l->b = bias ? oct_tensor_param(arena, oct_arena_printf(arena, "%s.bias", name), 1, &out) : NULL;
    float fan_in_bound = 1.0f / sqrtf((float)in);
    switch (init) {
    case OCT_INIT_KAIMING_UNIFORM:
        oct_rng_fill_uniform(rng, l->w, fan_in_bound);
        if (l->b) oct_rng_fill_uniform(rng, l->b, fan_in_bound);
        break;
    case OCT_INIT_KAIMING_NORMAL:
        oct_rng_fill_normal(rng, l->w, sqrtf(2.0f / (float)in));
        break;
    case OCT_INIT_XAVIER_UNIFORM:
        oct_rng_fill_uniform(rng, l->w, sqrtf(6.0f / (float)(in + out)));
        break;
    case OCT_INIT_COUNT:
        OCT_ASSERT(!"init out of range");
    }
    oct_params_add(params, l->w);
    if (l->b) oct_params_add(params, l->b);
}

oct_tensor *oct_linear_layer_forward(const oct_linear_layer *l, oct_graph *g, oct_tensor *x) {
    return oct_linear(g, x, l->w, l->b);
}
