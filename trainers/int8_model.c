/* Kernel selection and test-set evaluation for exported int8 models (see int8_model.h). The
 * evaluation feeds raw pixels to the engine, which normalizes and quantizes them exactly as the
 * model's recorded input normalization says. */
#include "int8_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mlp_model.h"
#include "octet/io.h"

int int8_select_kernel(const char *cmd, const char *name) {
    static const char *const names[] = {"auto", "portable", "avx2", "avx512vnni"};
    static const oct_i8_kernel kinds[] = {OCT_I8_AUTO, OCT_I8_PORTABLE, OCT_I8_AVX2,
                                          OCT_I8_AVX512VNNI};
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i])) continue;
        if (oct_i8_set_kernel(kinds[i]) != OCT_OK) return cli_fail(NULL);
        return CLI_OK;
    }
    fprintf(stderr,
            "octet %s: --kernel: expected auto, portable, avx2 or avx512vnni, got '%s' "
            "(see octet %s --help)\n",
            cmd, name, cmd);
    return CLI_USAGE;
}

bool int8_is_export(const char *path) {
    return cli_file_meta_is(path, "octet.format", OCT_I8_FORMAT);
}

/* The accumulators of different classes have different scales (s_a * s_w[c]): compare the
 * real logits, never the raw int32 values. */
static int argmax(const float *row, int n) {
    int best = 0;
    for (int c = 1; c < n; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

/* Compares the engine's logits (N, classes) with the QAT model in path on the same images;
 * prints the counts and returns a CLI exit status. */
static int compare_with_qat(const char *path, const oct_i8_mlp *e, const oct_image_set *test,
                            const float *logits, int classes) {
    mlp_model m;
    if (mlp_model_load(&m, path)) return cli_fail(NULL);
    int rc = CLI_OK;
    bool same_sizes = m.mlp.n_layers == e->n_layers;
    for (int i = 0; same_sizes && i < e->n_layers; i++)
        same_sizes = m.mlp.sizes[i] == e->layers[i].in && m.mlp.sizes[i + 1] == e->layers[i].out;
    if (!m.qat_on || !same_sizes) {
        fprintf(stderr,
                "octet: --compare %s: %s, where the QAT model the export came from is expected\n",
                path, !m.qat_on ? "an fp32 model" : "a QAT model of other layer sizes");
        rc = CLI_FAIL;
    } else {
        enum { CHUNK = 1000 };
        int in = m.mlp.sizes[0];
        int64_t same_logits = 0, same_pred = 0;
        oct_graph g;
        oct_graph_init(&g, 0, 0);
        g.no_grad = true;
        oct_image_set norm = *test;
        norm.mean = m.mean;
        norm.std = m.std;
        for (int64_t start = 0; start < test->n; start += CHUNK) {
            int n = (int)(test->n - start < CHUNK ? test->n - start : CHUNK);
            oct_graph_reset(&g);
            oct_tensor *x = oct_tensor_new2(&g.arena, n, in);
            oct_image_set_batch_range(&norm, start, n, x->data, NULL);
            const float *ref = mlp_model_forward(&m, &g, x)->data;
            for (int i = 0; i < n; i++) {
                const float *a = ref + (int64_t)i * classes;
                const float *b = logits + (start + i) * classes;
                same_logits += !memcmp(a, b, sizeof(float) * (size_t)classes);
                same_pred += argmax(a, classes) == argmax(b, classes);
            }
        }
        oct_graph_free(&g);
        printf("compared with %s: logits bit-identical on %lld/%lld images, predictions "
               "identical on %lld/%lld\n",
               path, (long long)same_logits, (long long)test->n, (long long)same_pred,
               (long long)test->n);
        if (same_logits != test->n) {
            fprintf(stderr, "octet: --compare %s: logits differ on %lld of %lld images\n", path,
                    (long long)(test->n - same_logits), (long long)test->n);
            rc = CLI_FAIL;
        }
    }
    mlp_model_free(&m);
    return rc;
}

int int8_eval(const char *path, const char *data_dir, int batch, int threads, const char *compare) {
    oct_i8_mlp m;
    if (oct_i8_mlp_load(&m, path)) return cli_fail(NULL);
    oct_image_set test;
    if (oct_image_set_load_dir(&test, data_dir, false)) {
        oct_i8_mlp_free(&m);
        return cli_fail(NULL);
    }
    int in = m.layers[0].in, classes = m.layers[m.n_layers - 1].out;
    int rc = compare && m.dynamic ? cli_fail_dynamic_compare(path) : CLI_OK;
    oct_i8_engine e;
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)batch * (size_t)classes);
    /* All logits are kept when comparing with the QAT model, one batch otherwise. */
    int64_t keep = compare ? test.n : batch;
    float *logits = malloc(sizeof(float) * (size_t)keep * (size_t)classes);
    if (rc != CLI_OK) {
    } else if (mlp_data_check(path, in, classes, &test, "test", data_dir)) {
        rc = cli_fail(NULL);
    } else if (!acc || !logits || oct_i8_engine_init(&e, &m, batch)) {
        rc = cli_fail(acc && logits ? NULL : "out of memory");
    } else {
        int64_t correct = 0;
        double t0 = cli_now();
        for (int64_t start = 0; start < test.n; start += batch) {
            int n = (int)(test.n - start < batch ? test.n - start : batch);
            float *out = compare ? logits + start * classes : logits;
            oct_i8_engine_forward_u8(&e, test.images + start * in, n, acc, out, threads);
            for (int i = 0; i < n; i++)
                correct += argmax(out + (int64_t)i * classes, classes) == test.labels[start + i];
        }
        double sec = cli_now() - t0;
        printf("%s: %sint8 test accuracy %.2f%%  (%lld images, %.3f s, %.0f images/s, batch %d, "
               "%d thread%s, kernel %s)\n",
               path, m.dynamic ? "dynamic " : "", 100.0 * (double)correct / (double)test.n,
               (long long)test.n, sec, (double)test.n / sec, batch, threads,
               threads == 1 ? "" : "s", oct_i8_kernel_name());
        oct_i8_engine_free(&e);
        if (compare) rc = compare_with_qat(compare, &m, &test, logits, classes);
    }
    free(acc);
    free(logits);
    oct_image_set_free(&test);
    oct_i8_mlp_free(&m);
    return rc;
}
