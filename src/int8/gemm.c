/* The int8 GEMM driver: weight packing, run-time kernel selection, cache blocking and the split
 * of the work over threads. The arithmetic lives in the tile kernels (gemm_portable.c,
 * gemm_avx2.c, gemm_avx512.c), which all compute the same exact int32 sums.
 *
 * Blocking: a task owns a range of rows and a range of 64-channel panels; it walks its rows in
 * chunks of CHUNK_ROWS, and for each chunk, panel and K block of OCT__I8_KCG groups runs the
 * tile kernel over the chunk's rows (the panel's K block stays in L1/L2 while the rows stream
 * past). Every output element is computed by exactly one task in a fixed k order, so results do
 * not depend on the thread count (integer sums are exact anyway).
 */
#include "octet/int8.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_internal.h"
#include "octet/parallel.h"

#define CHUNK_ROWS 48                      /* rows per chunk: a multiple of every kernel's mr */
#define MIN_THREAD_WORK (INT64_C(1) << 22) /* multiply-adds below which one thread is faster */
#define MIN_TASK_WORK (INT64_C(1) << 18)   /* multiply-adds per task at least */
#define TASKS_PER_THREAD 4 /* small tasks let the caller take over from a descheduled worker */

typedef struct {
    const char *name;
    int mr; /* rows per tile call */
    oct__i8_tile_fn *tile;
} kernel_desc;

static const kernel_desc kernels[] = {
    [OCT_I8_PORTABLE] = {"portable", 4, oct__i8_tile_portable},
#if defined(__x86_64__) || defined(__i386__)
    [OCT_I8_AVX2] = {"avx2", 4, oct__i8_tile_avx2},
    [OCT_I8_AVX512VNNI] = {"avx512vnni", 6, oct__i8_tile_avx512vnni},
#endif
};

static atomic_int selected = OCT_I8_AUTO;

/* ---- packing ------------------------------------------------------------------------------- */

/* Writes w (N,K) into p's buffers (already sized for that shape) and its row sums. */
static void pack_into(oct_i8_packed *p, const int8_t *w) {
    int N = p->N, K = p->K;
    int8_t *data = p->data;
    memset(data, 0, p->size);
    int G = p->k_pad / 4, n_blocks = p->n_pad / OCT__I8_BLOCK;
    for (int n = 0; n < N; n++) {
        int panel = n / OCT__I8_PANEL, block = n % OCT__I8_PANEL / OCT__I8_BLOCK;
        int lane = n % OCT__I8_BLOCK;
        int nb =
            n_blocks - panel * OCT__I8_NB < OCT__I8_NB ? n_blocks - panel * OCT__I8_NB : OCT__I8_NB;
        int8_t *dst = data + (size_t)panel * OCT__I8_PANEL * 4 * G + (size_t)block * 64 + 4 * lane;
        const int8_t *src = w + (size_t)n * K;
        int32_t sum = 0;
        for (int k = 0; k < K; k++) sum += src[k];
        p->wsum[n] = sum;
        /* Groups of 4 consecutive k go to one 4-byte slot of the channel's block. */
        size_t stride = (size_t)nb * 64;
        int k4 = K / 4 * 4;
        for (int k = 0; k < k4; k += 4) memcpy(dst + (size_t)(k / 4) * stride, src + k, 4);
        for (int k = k4; k < K; k++) dst[(size_t)(k / 4) * stride + k % 4] = src[k];
    }
}

oct_status oct_i8_pack(oct_i8_packed *p, const int8_t *w /* (N,K) */, int N, int K) {
    memset(p, 0, sizeof *p);
    if (N < 1 || K < 1 || K > OCT_I8_MAX_K)
        return oct_fail(OCT_EINVAL,
                        "int8 gemm: cannot pack weights of shape (%d, %d): need N >= 1"
                        " and 1 <= K <= %d",
                        N, K, OCT_I8_MAX_K);
    int n_pad = (N + OCT__I8_BLOCK - 1) / OCT__I8_BLOCK * OCT__I8_BLOCK;
    int k_pad = (K + 3) / 4 * 4;
    size_t size = ((size_t)n_pad * k_pad + 63) / 64 * 64;
    int8_t *data = aligned_alloc(64, size);
    int32_t *wsum = malloc(sizeof(int32_t) * (size_t)N);
    if (!data || !wsum) {
        free(data);
        free(wsum);
        return oct_fail(OCT_ENOMEM, "int8 gemm: out of memory packing (%d, %d) weights", N, K);
    }
    *p = (oct_i8_packed){
        .data = data, .wsum = wsum, .N = N, .K = K, .n_pad = n_pad, .k_pad = k_pad, .size = size};
    pack_into(p, w);
    return OCT_OK;
}

oct_status oct_i8_repack(oct_i8_packed *p, const int8_t *w, int N, int K) {
    if (p->data && p->N == N && p->K == K) {
        pack_into(p, w);
        return OCT_OK;
    }
    oct_i8_packed_free(p);
    return oct_i8_pack(p, w, N, K);
}

void oct_i8_packed_free(oct_i8_packed *p) {
    if (!p) return;
    free(p->data);
    free(p->wsum);
    memset(p, 0, sizeof *p);
}

/* ---- kernel selection ---------------------------------------------------------------------- */

bool oct_i8_kernel_available(oct_i8_kernel k) {
    switch (k) {
    case OCT_I8_AUTO:
    case OCT_I8_PORTABLE:
        return true;
#if defined(__x86_64__) || defined(__i386__)
    /* libgcc's cpu model also checks (xgetbv) that the OS saves the AVX / AVX-512 state. */
    case OCT_I8_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    case OCT_I8_AVX512VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#endif
    default:
        return false;
    }
}

oct_status oct_i8_set_kernel(oct_i8_kernel k) {
    static const char *const names[] = {"auto", "portable", "avx2", "avx512vnni"};
    if ((int)k < 0 || (int)k > OCT_I8_AVX512VNNI)
        return oct_fail(OCT_EINVAL, "int8 gemm: unknown kernel %d", (int)k);
    if (!oct_i8_kernel_available(k))
        return oct_fail(OCT_EUNSUPPORTED, "int8 gemm: kernel %s is not supported by this CPU",
                        names[k]);
    atomic_store(&selected, (int)k);
    return OCT_OK;
}

static const kernel_desc *current_kernel(void) {
    oct_i8_kernel k = (oct_i8_kernel)atomic_load(&selected);
    if (k == OCT_I8_AUTO) {
        k = oct_i8_kernel_available(OCT_I8_AVX512VNNI) ? OCT_I8_AVX512VNNI
            : oct_i8_kernel_available(OCT_I8_AVX2)     ? OCT_I8_AVX2
                                                       : OCT_I8_PORTABLE;
    }
    return &kernels[k];
}

const char *oct_i8_kernel_name(void) {
    return current_kernel()->name;
}

/* ---- driver -------------------------------------------------------------------------------- */

typedef struct {
    const kernel_desc *kern;
    const oct_i8_packed *w;
    const uint8_t *a; /* (M,K) */
    int32_t *c;       /* (M,N) */
    int M;
    int rows_per_task, panels_per_task, panel_tasks; /* task t: rows t / panel_tasks, panels t % */
    oct_i8_epilogue *epilogue; /* run per chunk; only set when every task owns whole rows */
    void *epilogue_ctx;
} gemm_job;

static int min_int(int x, int y) {
    return x < y ? x : y;
}

static int n_panels(const oct_i8_packed *w) {
    return (w->n_pad / OCT__I8_BLOCK + OCT__I8_NB - 1) / OCT__I8_NB;
}

/* c[r0:r1, panels p0:p1] for job j. */
static void run_block(const gemm_job *j, int r0, int r1, int p0, int p1) {
    const oct_i8_packed *w = j->w;
    int N = w->N, K = w->K, G = w->k_pad / 4, n_blocks = w->n_pad / OCT__I8_BLOCK;
    int mr = j->kern->mr;
    for (int m0 = r0; m0 < r1; m0 += CHUNK_ROWS) {
        int m1 = min_int(m0 + CHUNK_ROWS, r1);
        for (int p = p0; p < p1; p++) {
            int nb = min_int(OCT__I8_NB, n_blocks - p * OCT__I8_NB);
            int ncols = min_int(OCT__I8_PANEL, N - p * OCT__I8_PANEL);
            const int8_t *panel = w->data + (size_t)p * OCT__I8_PANEL * 4 * G;
            for (int g0 = 0; g0 < G; g0 += OCT__I8_KCG) {
                int g1 = min_int(g0 + OCT__I8_KCG, G);
                for (int m = m0; m < m1; m += mr)
                    j->kern->tile(j->a + (size_t)m * K, K, min_int(mr, m1 - m), panel, nb, g0, g1,
                                  K, j->c + (size_t)m * N + (size_t)p * OCT__I8_PANEL, N, ncols,
                                  g0 > 0);
            }
        }
        if (j->epilogue) j->epilogue(j->epilogue_ctx, m0, m1, j->c + (size_t)m0 * N);
    }
}

static void run_task(void *ctx, int task) {
    const gemm_job *j = ctx;
    int rt = task / j->panel_tasks, pt = task % j->panel_tasks;
    int r0 = rt * j->rows_per_task, p0 = pt * j->panels_per_task;
    run_block(j, r0, min_int(r0 + j->rows_per_task, j->M), p0,
              min_int(p0 + j->panels_per_task, n_panels(j->w)));
}

void oct_i8_gemm_fn(const oct_i8_packed *w, const uint8_t *a /* (M,K) */, int M,
                    int32_t *c /* (M,N) */, int threads, oct_i8_epilogue *epilogue, void *ctx) {
    OCT_ASSERT(w && w->data && M >= 0 && (M == 0 || (a && c)));
    if (M == 0) return;
    const kernel_desc *kern = current_kernel();
    int P = n_panels(w), mr = kern->mr;
    int t = threads > 0 ? threads : oct_cpu_count();
    int64_t work = (int64_t)M * w->n_pad * w->k_pad;
    int n_tasks = 1;
    if (t > 1 && work >= MIN_THREAD_WORK) {
        int64_t most = work / MIN_TASK_WORK;
        n_tasks = most < TASKS_PER_THREAD * t ? (int)(most > t ? most : t) : TASKS_PER_THREAD * t;
    } else {
        t = 1;
    }
    /* Panels first (a task then reads only its slice of W), then rows; an epilogue fuses only
     * when every task owns whole rows. */
    bool whole_rows = epilogue && M >= mr * t;
    int panel_tasks = whole_rows ? 1 : min_int(P, n_tasks);
    int panels_per_task = (P + panel_tasks - 1) / panel_tasks;
    panel_tasks = (P + panels_per_task - 1) / panels_per_task;
    int row_tasks = (n_tasks + panel_tasks - 1) / panel_tasks;
    int rows_per_task = ((M + row_tasks - 1) / row_tasks + mr - 1) / mr * mr;
    row_tasks = (M + rows_per_task - 1) / rows_per_task;
    gemm_job j = {.kern = kern,
                  .w = w,
                  .a = a,
                  .c = c,
                  .M = M,
                  .rows_per_task = rows_per_task,
                  .panels_per_task = panels_per_task,
                  .panel_tasks = panel_tasks};
    bool fused = j.panel_tasks == 1;
    if (fused) {
        j.epilogue = epilogue;
        j.epilogue_ctx = ctx;
    }
    oct_parallel_for(row_tasks * panel_tasks, t, run_task, &j);
    if (epilogue && !fused) epilogue(ctx, 0, M, c);
}

void oct_i8_gemm(const oct_i8_packed *w, const uint8_t *a /* (M,K) */, int M,
                 int32_t *c /* (M,N) */, int threads) {
    oct_i8_gemm_fn(w, a, M, c, threads, NULL, NULL);
}
