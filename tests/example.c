/* The README's library example: train a 2-16-2 MLP on XOR with AdamW. */
#include <octet.h>
#include <stdio.h>

int main(void) {
    oct_arena model;
    oct_arena_init(&model, 0);
    oct_params params;
    oct_params_init(&params);
    oct_rng rng;
    oct_rng_seed(&rng, 42, 0);
    oct_mlp mlp;
    int sizes[] = {2, 16, 2};
    oct_mlp_init(&mlp, &model, &params, sizes, 3, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    oct_optim opt;
    oct_optim_init(&opt, OCT_OPTIM_ADAMW, &params, &model, &h);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    const float xs[] = {0, 0, 0, 1, 1, 0, 1, 1};
    const int32_t ys[] = {0, 1, 1, 0};
    float loss = 0;
    for (int step = 0; step < 500; step++) {
        oct_graph_reset(&g);
        oct_tensor *x = oct_tensor_new2(&g.arena, 4, 2);
        for (int i = 0; i < 8; i++) x->data[i] = xs[i];
        oct_tensor *l = oct_cross_entropy(&g, oct_mlp_forward(&mlp, &g, x), ys);
        oct_params_zero_grad(&params);
        oct_graph_backward(&g, l);
        oct_optim_step(&opt, 1e-2f);
        loss = l->data[0];
    }
    printf("xor loss after 500 steps: %.4f\n", loss);
    oct_graph_free(&g);
    oct_optim_free(&opt);
    oct_params_free(&params);
    oct_arena_free(&model);
    return loss < 0.05f ? 0 : 1;
}
