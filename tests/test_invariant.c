/* The central invariant of octet on real data: a QAT-trained MLP, exported and reloaded, run by
 * the integer engine on the whole Fashion-MNIST test set gives exactly the logits the QAT
 * model's eval-mode forward computed, with every available int8 kernel, at batch sizes 1, 7
 * and 256, on 1 and 2 threads. Skipped (reported as skipped) when the dataset is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "octet/data.h"
#include "octet/int8.h"
#include "octet/nn.h"
#include "octet/optim.h"
#include "octet/qat.h"

enum { TRAIN_STEPS = 150, BATCH = 128 };

static void invariant_on_test_set(void **state) {
    oct_image_set train, test;
    if (oct_image_set_load_dir(&train, OCT_FASHION_MNIST_DIR, true) != OCT_OK) skip();
    assert_int_equal(oct_image_set_load_dir(&test, OCT_FASHION_MNIST_DIR, false), OCT_OK);
    int in = train.rows * train.cols, sizes[] = {in, 64, 32, 10};

    oct_arena arena;
    oct_arena_init(&arena, 0);
    oct_params params;
    oct_params_init(&params);
    oct_rng rng;
    oct_rng_seed(&rng, 7, 0);
    oct_mlp mlp;
    assert_int_equal(
        oct_mlp_init(&mlp, &arena, &params, sizes, 4, OCT_ACT_RELU, OCT_INIT_KAIMING_UNIFORM, &rng),
        OCT_OK);
    oct_qat_config cfg;
    oct_qat_config_default(&cfg);
    cfg.freeze_after = TRAIN_STEPS / 2;
    oct_qat_mlp q;
    assert_int_equal(oct_qat_mlp_init(&q, &mlp, &arena, &params, &cfg), OCT_OK);
    oct_optim_hyper h = oct_optim_defaults(OCT_OPTIM_ADAMW);
    h.weight_decay = 0;
    oct_optim opt;
    assert_int_equal(oct_optim_init(&opt, OCT_OPTIM_ADAMW, &params, &arena, &h), OCT_OK);
    oct_graph g;
    oct_graph_init(&g, 0, 1);
    oct_batcher b;
    assert_int_equal(oct_batcher_init(&b, train.n, BATCH, true, &rng), OCT_OK);
    for (int step = 0; step < TRAIN_STEPS; step++) {
        const int32_t *idx;
        int n;
        if (!oct_batcher_next(&b, &idx, &n)) oct_batcher_next(&b, &idx, &n);
        oct_graph_reset(&g);
        g.training = true;
        oct_tensor *x = oct_tensor_new2(&g.arena, n, in);
        int32_t *y = oct_arena_alloc(&g.arena, (size_t)n * sizeof *y);
        oct_image_set_batch(&train, idx, n, x->data, y);
        oct_tensor *loss = oct_cross_entropy(&g, oct_qat_mlp_forward(&q, &g, x), y);
        oct_params_zero_grad(&params);
        oct_graph_backward(&g, loss);
        oct_optim_step(&opt, 2e-3f);
    }

    /* The QAT model's eval-mode logits on the whole test set. */
    int64_t N = test.n;
    float *x = malloc((size_t)N * in * sizeof *x), *ref = malloc((size_t)N * 10 * sizeof *ref);
    float *got = malloc((size_t)N * 10 * sizeof *got);
    int32_t *acc = malloc((size_t)N * 10 * sizeof *acc);
    assert_true(x && ref && got && acc);
    oct_image_set_batch_range(&test, 0, (int)N, x, NULL);
    g.training = false;
    g.no_grad = true;
    for (int64_t s = 0; s < N; s += 1000) {
        oct_graph_reset(&g);
        oct_tensor *xb = oct_tensor_new2(&g.arena, 1000, in);
        memcpy(xb->data, x + s * in, (size_t)1000 * in * sizeof *x);
        oct_tensor *lg = oct_qat_mlp_forward(&q, &g, xb);
        memcpy(ref + s * 10, lg->data, (size_t)1000 * 10 * sizeof *ref);
    }

    /* Export, save, reload: the engine reads only the file. */
    oct_i8_mlp m, loaded;
    assert_int_equal(oct_qat_mlp_to_int8(&q, train.mean, train.std, &m), OCT_OK);
    char dir[] = "/tmp/octet-invariant-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/m.int8.safetensors", dir);
    assert_int_equal(oct_i8_mlp_save(&m, path), OCT_OK);
    assert_int_equal(oct_i8_mlp_load(&loaded, path), OCT_OK);
    unlink(path);
    rmdir(dir);

    const oct_i8_kernel kernels[] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
    const int batches[] = {1, 7, 256};
    int64_t agree_argmax = 0;
    for (size_t k = 0; k < sizeof kernels / sizeof kernels[0]; k++) {
        if (!oct_i8_kernel_available(kernels[k])) continue;
        assert_int_equal(oct_i8_set_kernel(kernels[k]), OCT_OK);
        for (int bi = 0; bi < 3; bi++)
            for (int threads = 1; threads <= 2; threads++) {
                oct_i8_engine e;
                assert_int_equal(oct_i8_engine_init(&e, &loaded, batches[bi]), OCT_OK);
                for (int64_t s = 0; s < N; s += batches[bi]) {
                    int n = (int)(N - s < batches[bi] ? N - s : batches[bi]);
                    oct_i8_engine_forward_u8(&e, test.images + s * in, n, acc + s * 10,
                                             got + s * 10, threads);
                }
                oct_i8_engine_free(&e);
                for (int64_t i = 0; i < N * 10; i++)
                    if (memcmp(&got[i], &ref[i], sizeof(float)) != 0)
                        fail_msg("kernel %s batch %d threads %d: image %lld logit %lld: engine "
                                 "%.9g, QAT %.9g",
                                 oct_i8_kernel_name(), batches[bi], threads, (long long)(i / 10),
                                 (long long)(i % 10), (double)got[i], (double)ref[i]);
            }
    }
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
    for (int64_t i = 0; i < N; i++) {
        int best = 0;
        for (int c = 1; c < 10; c++)
            if (got[i * 10 + c] > got[i * 10 + best]) best = c;
        agree_argmax += best == test.labels[i];
    }
    assert_true(agree_argmax > N * 7 / 10); /* the model really learned */

    free(x);
    free(ref);
    free(got);
    free(acc);
    oct_i8_mlp_free(&m);
    oct_i8_mlp_free(&loaded);
    oct_batcher_free(&b);
    oct_graph_free(&g);
    oct_optim_free(&opt);
    oct_qat_mlp_free(&q);
    oct_params_free(&params);
    oct_arena_free(&arena);
    oct_image_set_free(&train);
    oct_image_set_free(&test);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(invariant_on_test_set)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
