/* Tests for the int8 GEMM (src/int8/gemm*.c) and the thread pool (src/core/parallel.c): every
 * kernel this CPU supports must equal a naive int64 reference exactly, on random and extreme
 * inputs, odd sizes, K blocking, 1 and 2 threads, with and without an epilogue. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "octet/int8.h"
#include "octet/parallel.h"
#include "octet/tensor.h"

static const oct_i8_kernel all_kernels[] = {OCT_I8_PORTABLE, OCT_I8_AVX2, OCT_I8_AVX512VNNI};
#define N_KERNELS (int)(sizeof all_kernels / sizeof all_kernels[0])

/* c (M,N) = a (M,K) @ w (N,K)^T in int64, checked to fit int32. */
static void reference(const uint8_t *a, const int8_t *w, int M, int N, int K, int32_t *c) {
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++) s += (int64_t)a[(size_t)m * K + k] * w[(size_t)n * K + k];
            assert_true(s >= INT32_MIN && s <= INT32_MAX);
            c[(size_t)m * N + n] = (int32_t)s;
        }
}

/* Packs w, checks wsum, and runs every available kernel at 1 and 2 threads against the
 * reference. Returns the number of kernels run. */
static int check_all_kernels(const uint8_t *a, const int8_t *w, int M, int N, int K) {
    oct_i8_packed p;
    assert_int_equal(oct_i8_pack(&p, w, N, K), OCT_OK);
    assert_int_equal(p.N, N);
    assert_int_equal(p.K, K);
    assert_int_equal((uintptr_t)p.data % 64, 0);
    for (int n = 0; n < N; n++) {
        int64_t s = 0;
        for (int k = 0; k < K; k++) s += w[(size_t)n * K + k];
        assert_int_equal(p.wsum[n], s);
    }
    int32_t *ref = malloc(sizeof(int32_t) * (size_t)M * N);
    int32_t *c = malloc(sizeof(int32_t) * ((size_t)M * N + 1));
    reference(a, w, M, N, K, ref);
    int ran = 0;
    for (int ki = 0; ki < N_KERNELS; ki++) {
        if (!oct_i8_kernel_available(all_kernels[ki])) continue;
        assert_int_equal(oct_i8_set_kernel(all_kernels[ki]), OCT_OK);
        for (int threads = 1; threads <= 2; threads++) {
            memset(c, 0x5a, sizeof(int32_t) * ((size_t)M * N + 1));
            oct_i8_gemm(&p, a, M, c, threads);
            if (memcmp(c, ref, sizeof(int32_t) * (size_t)M * N) != 0)
                fail_msg("kernel %s, threads %d, M=%d N=%d K=%d: wrong result",
                         oct_i8_kernel_name(), threads, M, N, K);
            assert_int_equal(c[(size_t)M * N], 0x5a5a5a5a); /* nothing written past the end */
        }
        ran++;
    }
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
    free(ref);
    free(c);
    oct_i8_packed_free(&p);
    return ran;
}

static void fill_random(oct_rng *r, uint8_t *a, size_t na, int8_t *w, size_t nw) {
    for (size_t i = 0; i < na; i++) a[i] = (uint8_t)oct_rng_u32(r);
    for (size_t i = 0; i < nw; i++) w[i] = (int8_t)(oct_rng_u32(r) & 0xff);
}

static void random_odd_sizes(void **state) {
    static const int Ms[] = {1, 3, 5, 16, 17, 63, 65};
    static const int Ns[] = {1, 3, 15, 16, 17, 63, 64, 65, 129};
    static const int Ks[] = {1, 3, 5, 15, 16, 17, 63, 64, 65, 784};
    oct_rng r;
    oct_rng_seed(&r, 7, 1);
    uint8_t *a = malloc(65 * 784);
    int8_t *w = malloc(129 * 784);
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++) {
                int M = Ms[mi], N = Ns[ni], K = Ks[ki];
                if (M * N * K > 400000 && !(M == 65 && N == 129 && K == 784)) continue;
                fill_random(&r, a, (size_t)M * K, w, (size_t)N * K);
                assert_true(check_all_kernels(a, w, M, N, K) >= 1);
            }
    free(a);
    free(w);
}

/* Layer-like sizes that use many panels, the K blocks of the driver, and (with 2 threads) both
 * ways of splitting: over rows, and over panels when M is small. */
static void random_layer_sizes(void **state) {
    static const int sizes[][3] = {{128, 256, 784}, {1, 256, 784},   {7, 33, 5000},
                                   {50, 70, 4099},  {1, 1030, 4100}, {3, 999, 1500}};
    oct_rng r;
    oct_rng_seed(&r, 8, 1);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int M = sizes[i][0], N = sizes[i][1], K = sizes[i][2];
        uint8_t *a = malloc((size_t)M * K);
        int8_t *w = malloc((size_t)N * K);
        fill_random(&r, a, (size_t)M * K, w, (size_t)N * K);
        check_all_kernels(a, w, M, N, K);
        free(a);
        free(w);
    }
}

/* All 255 activations against all -128 or all 127 weights, up to K = OCT_I8_MAX_K, where the
 * sums come within 0.4% of the int32 range: nothing may saturate. */
static void extreme_values(void **state) {
    static const int sizes[][3] = {{3, 17, 65}, {13, 40, 1000}, {2, 17, OCT_I8_MAX_K}};
    static const int8_t wvals[] = {-128, 127};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        for (size_t v = 0; v < 2; v++) {
            int M = sizes[i][0], N = sizes[i][1], K = sizes[i][2];
            uint8_t *a = malloc((size_t)M * K);
            int8_t *w = malloc((size_t)N * K);
            memset(a, 255, (size_t)M * K);
            memset(w, (uint8_t)wvals[v], (size_t)N * K);
            check_all_kernels(a, w, M, N, K);
            free(a);
            free(w);
        }
}

static void kernel_selection(void **state) {
    assert_true(oct_i8_kernel_available(OCT_I8_PORTABLE));
    assert_true(oct_i8_kernel_available(OCT_I8_AUTO));
    bool has_avx2 = false, has_vnni = false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    has_avx2 = __builtin_cpu_supports("avx2");
    has_vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AVX2) == OCT_OK, has_avx2);
    if (has_avx2) assert_string_equal(oct_i8_kernel_name(), "avx2");
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AVX512VNNI) == OCT_OK, has_vnni);
    if (has_vnni) assert_string_equal(oct_i8_kernel_name(), "avx512vnni");
    if (!has_vnni) {
        assert_int_equal(oct_i8_set_kernel(OCT_I8_AVX512VNNI), OCT_EUNSUPPORTED);
        assert_non_null(strstr(oct_last_error(), "avx512vnni"));
    }
    assert_int_equal(oct_i8_set_kernel((oct_i8_kernel)99), OCT_EINVAL);
    assert_int_equal(oct_i8_set_kernel(OCT_I8_PORTABLE), OCT_OK);
    assert_string_equal(oct_i8_kernel_name(), "portable");
    assert_int_equal(oct_i8_set_kernel(OCT_I8_AUTO), OCT_OK);
    assert_string_equal(oct_i8_kernel_name(), has_vnni   ? "avx512vnni"
                                              : has_avx2 ? "avx2"
                                                         : "portable");
}

static void pack_errors(void **state) {
    int8_t w[4] = {1, 2, 3, 4};
    oct_i8_packed p;
    assert_int_equal(oct_i8_pack(&p, w, 0, 4), OCT_EINVAL);
    assert_null(p.data);
    assert_int_equal(oct_i8_pack(&p, w, 1, 0), OCT_EINVAL);
    assert_int_equal(oct_i8_pack(&p, w, 1, OCT_I8_MAX_K + 1), OCT_EINVAL);
    assert_non_null(strstr(oct_last_error(), "int8"));
    assert_int_equal(oct_i8_pack(&p, w, 1, 4), OCT_OK);
    int32_t c = -1;
    oct_i8_gemm(&p, NULL, 0, NULL, 2); /* M = 0 is a no-op */
    uint8_t a[4] = {1, 1, 1, 1};
    oct_i8_gemm(&p, a, 1, &c, 1);
    assert_int_equal(c, 10);
    oct_i8_packed_free(&p);
    assert_null(p.data);
    oct_i8_packed_free(NULL);
}

typedef struct {
    const int32_t *ref;
    int N;
    atomic_int seen[300]; /* epilogue calls per row */
} epilogue_check;

static void check_rows(void *ctx, int m0, int m1, int32_t *c_rows) {
    epilogue_check *e = ctx;
    for (int m = m0; m < m1; m++) {
        atomic_fetch_add(&e->seen[m], 1);
        for (int n = 0; n < e->N; n++) /* the rows are finished when the epilogue sees them */
            if (c_rows[(size_t)(m - m0) * e->N + n] != e->ref[(size_t)m * e->N + n]) {
                fail_msg("epilogue saw an unfinished row %d", m);
            }
        for (int n = 0; n < e->N; n++) c_rows[(size_t)(m - m0) * e->N + n] += 1;
    }
}

static void epilogue_rows(void **state) {
    /* Single-threaded; split over panels (unfused); split over rows (fused). */
    static const int sizes[][3] = {{1, 100, 300}, {5, 100, 8000}, {60, 100, 700}, {300, 100, 300}};
    oct_rng r;
    oct_rng_seed(&r, 9, 1);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        int M = sizes[i][0], N = sizes[i][1], K = sizes[i][2];
        uint8_t *a = malloc((size_t)M * K);
        int8_t *w = malloc((size_t)N * K);
        int32_t *ref = malloc(sizeof(int32_t) * (size_t)M * N);
        int32_t *c = malloc(sizeof(int32_t) * (size_t)M * N);
        fill_random(&r, a, (size_t)M * K, w, (size_t)N * K);
        reference(a, w, M, N, K, ref);
        oct_i8_packed p;
        assert_int_equal(oct_i8_pack(&p, w, N, K), OCT_OK);
        for (int threads = 1; threads <= 2; threads++) {
            epilogue_check *e = calloc(1, sizeof *e);
            e->ref = ref;
            e->N = N;
            oct_i8_gemm_fn(&p, a, M, c, threads, check_rows, e);
            for (int m = 0; m < M; m++) assert_int_equal(atomic_load(&e->seen[m]), 1);
            for (int k = 0; k < M * N; k++) assert_int_equal(c[k], ref[k] + 1);
            free(e);
        }
        oct_i8_packed_free(&p);
        free(a);
        free(w);
        free(ref);
        free(c);
    }
}

typedef struct {
    atomic_int count[1000];
    atomic_int nested;
} pool_check;

static void count_task(void *ctx, int task) {
    pool_check *pc = ctx;
    atomic_fetch_add(&pc->count[task], 1);
}

static void nested_task(void *ctx, int task) {
    pool_check *pc = ctx;
    atomic_fetch_add(&pc->count[task], 1);
    pool_check *inner = calloc(1, sizeof *inner);
    oct_parallel_for(10, 2, count_task, inner); /* runs inline: no deadlock */
    for (int t = 0; t < 10; t++) assert_int_equal(atomic_load(&inner->count[t]), 1);
    free(inner);
    atomic_fetch_add(&pc->nested, 1);
}

static void parallel_for_covers_tasks(void **state) {
    assert_true(oct_cpu_count() >= 1);
    static const int n_tasks[] = {0, 1, 2, 3, 7, 64, 1000};
    static const int threads[] = {0, 1, 2, 3, 8};
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof n_tasks / sizeof *n_tasks; i++)
            for (size_t t = 0; t < sizeof threads / sizeof *threads; t++)
                for (int rep = 0; rep < 20; rep++) {
                    pool_check *pc = calloc(1, sizeof *pc);
                    oct_parallel_for(n_tasks[i], threads[t], count_task, pc);
                    for (int k = 0; k < 1000; k++)
                        assert_int_equal(atomic_load(&pc->count[k]), k < n_tasks[i]);
                    free(pc);
                }
        pool_check *pc = calloc(1, sizeof *pc);
        oct_parallel_for(16, 2, nested_task, pc);
        assert_int_equal(atomic_load(&pc->nested), 16);
        free(pc);
        /* Round 2 runs on an explicitly created pool. */
        oct_pool_free();
        assert_int_equal(oct_pool_init(3), OCT_OK);
    }
    oct_pool_free();
    oct_pool_free();
}

/* Runs 200 parallel loops of 64 tasks; returns (as a pointer) how many missed or repeated a
 * task. cmocka asserts must stay on the test's thread, hence the count. */
static void *many_loops(void *arg) {
    (void)arg;
    intptr_t bad = 0;
    for (int rep = 0; rep < 200; rep++) {
        pool_check *pc = calloc(1, sizeof *pc);
        oct_parallel_for(64, 2, count_task, pc);
        for (int k = 0; k < 1000; k++) bad += atomic_load(&pc->count[k]) != (k < 64);
        free(pc);
    }
    return (void *)bad;
}

/* Two application threads share the pool: the one that finds it busy runs inline. */
static void parallel_for_concurrent_callers(void **state) {
    for (int size = 1; size <= 2; size++) { /* without workers, then with one */
        assert_int_equal(oct_pool_init(size), OCT_OK);
        pthread_t other;
        void *other_bad;
        assert_int_equal(pthread_create(&other, NULL, many_loops, NULL), 0);
        assert_null(many_loops(NULL));
        assert_int_equal(pthread_join(other, &other_bad), 0);
        assert_null(other_bad);
    }
    oct_pool_free();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernel_selection),
        cmocka_unit_test(pack_errors),
        cmocka_unit_test(random_odd_sizes),
        cmocka_unit_test(random_layer_sizes),
        cmocka_unit_test(extreme_values),
        cmocka_unit_test(epilogue_rows),
        cmocka_unit_test(parallel_for_covers_tasks),
        cmocka_unit_test(parallel_for_concurrent_callers),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    oct_pool_free();
    return failed;
}
