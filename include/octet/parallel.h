/* A tiny persistent thread pool for data-parallel loops (the int8 GEMM, and any kernel that
 * splits work into independent tasks).
 *
 * One process-wide pool of worker threads, created on first use (or by oct_pool_init). A call
 * to oct_parallel_for runs its tasks on the calling thread plus up to threads - 1 workers; tasks
 * are handed out in order from a shared counter, so every task runs exactly once, on some
 * thread. Workers sleep on a condition variable between jobs (no spinning: they share the cores
 * with OpenBLAS threads).
 *
 * It never deadlocks and never oversubscribes: the pool runs one job at a time, and a call made
 * while the pool is busy (from another application thread, or nested inside a task) simply
 * runs all its tasks on the calling thread. With threads <= 1 the tasks run inline, with no
 * locking at all.
 */
#ifndef OCTET_PARALLEL_H
#define OCTET_PARALLEL_H

#include "octet/status.h"

/* The number of CPUs this process may run on (its affinity mask), at least 1. */
int oct_cpu_count(void);

/* (Re)creates the pool with threads - 1 workers, so that later calls can use up to `threads`
 * threads. threads <= 0 means oct_cpu_count(). Waits for a running job to finish. Must not be
 * called from inside a task. Fails with OCT_ENOMEM if a thread cannot be created (the pool is
 * then empty and oct_parallel_for runs inline). */
oct_status oct_pool_init(int threads);

/* Stops and joins the workers. The next oct_parallel_for creates the pool again. Must not be
 * called from inside a task. A no-op without a pool. */
void oct_pool_free(void);

/* Calls fn(ctx, task) once for every task in [0, n_tasks), on up to `threads` threads (the
 * caller included; threads <= 0 means oct_cpu_count()), and returns when all have finished.
 * Tasks may run in any order and concurrently, so they must write disjoint data. Without a pool,
 * one is created with max(threads, oct_cpu_count()) threads; later calls use at most that
 * many. */
void oct_parallel_for(int n_tasks, int threads, void (*fn)(void *ctx, int task), void *ctx);

#endif
