/* Kernel selection and test-set evaluation for exported int8 models (see int8_model.h). The
 * evaluation feeds raw pixels to the engine, which normalizes and quantizes them exactly as the
 * model's recorded input normalization says. */
#include "int8_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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
    oct_st_file f;
    if (oct_st_open(&f, path) != OCT_OK) {
        oct_st_close(&f);
        return false;
    }
    const char *fmt = oct_st_meta(&f, "octet.format");
    bool yes = fmt && !strcmp(fmt, OCT_I8_FORMAT);
    oct_st_close(&f);
    return yes;
}

/* The accumulators of different classes have different scales (s_a * s_w[c]): compare the
 * real logits, never the raw int32 values. */
static int argmax(const float *row, int n) {
    int best = 0;
    for (int c = 1; c < n; c++)
        if (row[c] > row[best]) best = c;
    return best;
}

int int8_eval(const char *path, const char *data_dir, int batch, int threads) {
    oct_i8_mlp m;
    if (oct_i8_mlp_load(&m, path)) return cli_fail(NULL);
    oct_image_set test;
    if (oct_image_set_load_dir(&test, data_dir, false)) {
        oct_i8_mlp_free(&m);
        return cli_fail(NULL);
    }
    int in = m.layers[0].in, classes = m.layers[m.n_layers - 1].out;
    int rc = CLI_OK;
    oct_i8_engine e;
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)batch * (size_t)classes);
    float *logits = malloc(sizeof(float) * (size_t)batch * (size_t)classes);
    if (test.rows * test.cols != in || classes < test.n_classes) {
        fprintf(stderr,
                "octet: %s expects %d inputs and %d classes, the data in %s has %d and "
                "%d\n",
                path, in, classes, data_dir, test.rows * test.cols, test.n_classes);
        rc = CLI_FAIL;
    } else if (!acc || !logits || oct_i8_engine_init(&e, &m, batch)) {
        rc = cli_fail(acc && logits ? NULL : "out of memory");
    } else {
        int64_t correct = 0;
        double t0 = cli_now();
        for (int64_t start = 0; start < test.n; start += batch) {
            int n = (int)(test.n - start < batch ? test.n - start : batch);
            oct_i8_engine_forward_u8(&e, test.images + start * in, n, acc, logits, threads);
            for (int i = 0; i < n; i++)
                correct += argmax(logits + (int64_t)i * classes, classes) == test.labels[start + i];
        }
        double sec = cli_now() - t0;
        printf("%s: int8 test accuracy %.2f%%  (%lld images, %.3f s, %.0f images/s, batch %d, "
               "%d thread%s, kernel %s)\n",
               path, 100.0 * (double)correct / (double)test.n, (long long)test.n, sec,
               (double)test.n / sec, batch, threads, threads == 1 ? "" : "s", oct_i8_kernel_name());
        oct_i8_engine_free(&e);
    }
    free(acc);
    free(logits);
    oct_image_set_free(&test);
    oct_i8_mlp_free(&m);
    return rc;
}
