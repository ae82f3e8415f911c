/* Benchmark: the int8 MLP engine (static, and with dynamic activations) against fp32 inference
 * (plain OpenBLAS: sgemm, bias, ReLU) on the 10k Fashion-MNIST test images, for a
 * 784-256-128-10 MLP with random weights (speed does not depend on their values). Both start from
 * the raw uint8 pixels: the engine normalizes and quantizes them through a table, the fp32 path
 * normalizes them to floats.
 *
 * Usage: bench_infer [repeats, default 3]. Prints the best time of each configuration (batch
 * 1 and 256, 1 and 2 threads, each int8 kernel), images/s, and the ratio to fp32. One JSON
 * line per configuration on stdout when OCTET_BENCH_JSON is set (for run_infer.sh).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "octet/data.h"
#include "octet/int8.h"

enum { L = 3 };
static const int sizes[L + 1] = {784, 256, 128, 10};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct fp32_mlp {
    float *w[L], *b[L];
    float *h[2]; /* (batch, 256) activations */
    float *x;    /* (batch, 784) normalized inputs */
} fp32_mlp;

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / (float)(1 << 24) * 2 - 1;
}

/* The same random weights as an fp32 model, an int8 model and an int8 model with dynamic
 * activations. */
static void build(fp32_mlp *f, oct_i8_mlp *m, oct_i8_mlp *d, int batch) {
    unsigned seed = 1;
    m->n_layers = L;
    m->layers = calloc(L, sizeof *m->layers);
    m->in_mean = OCT_FASHION_MNIST_MEAN;
    m->in_std = OCT_FASHION_MNIST_STD;
    m->in_qmin = 0;
    m->in_qmax = 255;
    for (int i = 0; i < L; i++) {
        int in = sizes[i], out = sizes[i + 1];
        f->w[i] = malloc(sizeof(float) * (size_t)in * out);
        f->b[i] = malloc(sizeof(float) * (size_t)out);
        float *ws = malloc(sizeof(float) * (size_t)out);
        for (int k = 0; k < in * out; k++) f->w[i][k] = frand(&seed) / (float)in;
        for (int c = 0; c < out; c++) {
            f->b[i][c] = frand(&seed) * 0.1f;
            ws[c] = 1.0f / (float)in / 127;
        }
        float a_scale = i ? 0.01f : 2.9f / 255;
        if (oct_qlinear_build(&m->layers[i], out, in, f->w[i], f->b[i], ws, -127, 127, a_scale,
                              i ? 0 : 72, i < L - 1, i < L - 1, 0.01f, 0, 0, 255)) {
            fprintf(stderr, "%s\n", oct_last_error());
            exit(1);
        }
        free(ws);
    }
    *d = (oct_i8_mlp){.dynamic = true,
                      .n_layers = L,
                      .layers = calloc(L, sizeof *d->layers),
                      .in_mean = m->in_mean,
                      .in_std = m->in_std,
                      .in_qmax = 255};
    for (int i = 0; i < L; i++)
        if (oct_qlinear_build_dynamic(&d->layers[i], sizes[i + 1], sizes[i], f->w[i], f->b[i],
                                      i < L - 1)) {
            fprintf(stderr, "%s\n", oct_last_error());
            exit(1);
        }
    f->h[0] = malloc(sizeof(float) * (size_t)batch * 256);
    f->h[1] = malloc(sizeof(float) * (size_t)batch * 256);
    f->x = malloc(sizeof(float) * (size_t)batch * 784);
}

static void fp32_forward(fp32_mlp *f, const oct_image_set *set, int64_t start, int n,
                         float *logits) {
    oct_image_set_batch_range(set, start, n, f->x, NULL);
    const float *a = f->x;
    for (int i = 0; i < L; i++) {
        int in = sizes[i], out = sizes[i + 1];
        float *y = i == L - 1 ? logits : f->h[i % 2];
        for (int r = 0; r < n; r++) memcpy(y + (size_t)r * out, f->b[i], sizeof(float) * out);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, a, in, f->w[i], in,
                    1.0f, y, out);
        if (i < L - 1)
            for (int k = 0; k < n * out; k++) y[k] = y[k] > 0 ? y[k] : 0;
        a = y;
    }
}

/* Best of `repeats` passes over the whole set, after one warm-up pass over 10 batches. */
static double time_fp32(fp32_mlp *f, const oct_image_set *set, int batch, int repeats) {
    float *logits = malloc(sizeof(float) * (size_t)batch * 10);
    double best = 1e30;
    for (int rep = -1; rep < repeats; rep++) {
        int64_t end = rep < 0 ? 10 * batch : set->n;
        double t0 = now();
        for (int64_t s = 0; s < end; s += batch)
            fp32_forward(f, set, s, (int)(set->n - s < batch ? set->n - s : batch), logits);
        double t = now() - t0;
        if (rep >= 0 && t < best) best = t;
    }
    free(logits);
    return best;
}

static double time_int8(oct_i8_engine *e, const oct_image_set *set, int batch, int threads,
                        int repeats) {
    int32_t *acc = malloc(sizeof(int32_t) * (size_t)batch * 10);
    double best = 1e30;
    for (int rep = -1; rep < repeats; rep++) {
        int64_t end = rep < 0 ? 10 * batch : set->n;
        double t0 = now();
        for (int64_t s = 0; s < end; s += batch)
            oct_i8_engine_forward_u8(e, set->images + s * 784,
                                     (int)(set->n - s < batch ? set->n - s : batch), acc, NULL,
                                     threads);
        double t = now() - t0;
        if (rep >= 0 && t < best) best = t;
    }
    free(acc);
    return best;
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 3;
    bool json = getenv("OCTET_BENCH_JSON") != NULL;
    oct_image_set test;
    if (oct_image_set_load_dir(&test, OCT_FASHION_MNIST_DIR, false)) {
        fprintf(stderr, "%s\n", oct_last_error());
        return 1;
    }
    static const int batches[] = {1, 256};
    static const oct_i8_kernel kernels[] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
    printf("784-256-128-10 MLP, %lld test images, best of %d passes\n", (long long)test.n, repeats);
    printf("%-6s %-7s %-18s %9s %12s %8s\n", "batch", "threads", "engine", "seconds", "images/s",
           "vs fp32");
    for (int bi = 0; bi < 2; bi++) {
        int batch = batches[bi];
        fp32_mlp f;
        oct_i8_mlp m = {0}, d = {0};
        build(&f, &m, &d, batch);
        oct_i8_engine engines[2];
        if (oct_i8_engine_init(&engines[0], &m, batch) ||
            oct_i8_engine_init(&engines[1], &d, batch))
            return 1;
        for (int threads = 1; threads <= 2; threads++) {
            openblas_set_num_threads(threads);
            double tf = time_fp32(&f, &test, batch, repeats);
            printf("%-6d %-7d %-18s %9.4f %12.0f %8s\n", batch, threads, "fp32-openblas", tf,
                   (double)test.n / tf, "1.00");
            if (json)
                fprintf(stderr,
                        "{\"batch\": %d, \"threads\": %d, \"engine\": \"fp32\", "
                        "\"seconds\": %.6f}\n",
                        batch, threads, tf);
            for (int ki = 0; ki < 6; ki++) {
                if (!oct_i8_kernel_available(kernels[ki % 3])) continue;
                oct_i8_set_kernel(kernels[ki % 3]);
                char name[32];
                snprintf(name, sizeof name, "%s-%s", ki < 3 ? "int8" : "dynamic",
                         oct_i8_kernel_name());
                double t = time_int8(&engines[ki / 3], &test, batch, threads, repeats);
                printf("%-6d %-7d %-18s %9.4f %12.0f %8.2f\n", batch, threads, name, t,
                       (double)test.n / t, tf / t);
                if (json)
                    fprintf(stderr,
                            "{\"batch\": %d, \"threads\": %d, \"engine\": \"%s\", "
                            "\"seconds\": %.6f}\n",
                            batch, threads, name, t);
            }
        }
        oct_i8_engine_free(&engines[0]);
        oct_i8_engine_free(&engines[1]);
        oct_i8_mlp_free(&m);
        oct_i8_mlp_free(&d);
        for (int i = 0; i < L; i++) {
            free(f.w[i]);
            free(f.b[i]);
        }
        free(f.h[0]);
        free(f.h[1]);
        free(f.x);
    }
    oct_image_set_free(&test);
    return 0;
}
