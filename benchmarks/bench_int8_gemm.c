/* Benchmark: the int8 GEMM kernels (GOP/s, one multiply-add = 2 ops) against OpenBLAS
 * cblas_sgemm (GFLOP/s) on the same layer-like shapes, at 1 and 2 threads.
 *
 * Usage: bench_int8_gemm [seconds per measurement, default 0.2]. Prints one table row per shape
 * and thread count, and the ratio of the best int8 kernel to sgemm.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "octet/int8.h"
#include "octet/parallel.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    int M, N, K, threads;
    const oct_i8_packed *w;
    const uint8_t *a;
    int32_t *c;
    const float *af, *wf;
    float *cf;
} bench_case;

static void run_int8(const bench_case *b) {
    oct_i8_gemm(b->w, b->a, b->M, b->c, b->threads);
}

static void run_sgemm(const bench_case *b) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b->M, b->N, b->K, 1.0f, b->af, b->K, b->wf,
                b->K, 0.0f, b->cf, b->N);
}

/* Best-of-3 rate in G(FL)OP/s of fn, each measurement repeating it for about `seconds`. */
static double rate(void (*fn)(const bench_case *), const bench_case *b, double seconds) {
    double ops = 2.0 * b->M * b->N * b->K, best = 0;
    fn(b);
    for (int rep = 0; rep < 3; rep++) {
        long iters = 0;
        double t0 = now(), t;
        do {
            fn(b);
            iters++;
            t = now() - t0;
        } while (t < seconds / 3);
        double r = ops * (double)iters / t * 1e-9;
        if (r > best) best = r;
    }
    return best;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    static const int shapes[][3] = {{256, 256, 784}, {256, 128, 256}, {128, 512, 512},
                                    {64, 256, 256},  {128, 256, 784}, {1, 256, 784},
                                    {1, 10, 256},    {1, 1024, 1024}};
    static const oct_i8_kernel kernels[] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
    static const char *const names[] = {"portable", "avx2", "vnni"};
    printf("int8 GEMM (GOP/s) vs cblas_sgemm (GFLOP/s); C(M,N) = A(M,K) W(N,K)^T; %d CPUs\n",
           oct_cpu_count());
    printf("%5s %5s %5s %3s %10s %10s %10s %10s %8s\n", "M", "N", "K", "thr", names[0], names[1],
           names[2], "sgemm", "best/sg");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        uint8_t *a = malloc((size_t)M * K);
        int8_t *w = malloc((size_t)N * K);
        float *af = malloc(sizeof(float) * (size_t)M * K);
        float *wf = malloc(sizeof(float) * (size_t)N * K);
        int32_t *c = malloc(sizeof(int32_t) * (size_t)M * N);
        float *cf = malloc(sizeof(float) * (size_t)M * N);
        if (!a || !w || !af || !wf || !c || !cf) return 1;
        srand(1);
        for (int i = 0; i < M * K; i++) af[i] = a[i] = (uint8_t)rand();
        for (int i = 0; i < N * K; i++) wf[i] = w[i] = (int8_t)(rand() % 255 - 127);
        oct_i8_packed p;
        if (oct_i8_pack(&p, w, N, K) != OCT_OK) return 1;
        for (int threads = 1; threads <= 2; threads++) {
            bench_case b = {M, N, K, threads, &p, a, c, af, wf, cf};
            double r[3] = {0}, best = 0;
            for (int k = 0; k < 3; k++) {
                if (oct_i8_set_kernel(kernels[k]) != OCT_OK) continue;
                r[k] = rate(run_int8, &b, seconds);
                if (r[k] > best) best = r[k];
            }
            openblas_set_num_threads(threads);
            double sg = rate(run_sgemm, &b, seconds);
            printf("%5d %5d %5d %3d", M, N, K, threads);
            for (int k = 0; k < 3; k++) {
                if (r[k] > 0)
                    printf(" %10.1f", r[k]);
                else
                    printf(" %10s", "n/a");
            }
            printf(" %10.1f %8.2f\n", sg, best / sg);
        }
        oct_i8_set_kernel(OCT_I8_AUTO);
        oct_i8_packed_free(&p);
        free(a);
        free(w);
        free(af);
        free(wf);
        free(c);
        free(cf);
    }
    oct_pool_free();
    return 0;
}
