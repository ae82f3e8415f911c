/* The process-wide thread pool behind oct_parallel_for (see include/octet/parallel.h).
 *
 * Locking: submit_lock admits one job (or one init/free) at a time; oct_parallel_for only
 * try-locks it and runs inline when it is taken, so a busy pool never blocks a caller and a
 * nested call cannot deadlock. pool.lock guards the job fields; workers sleep on `wake`, the
 * caller sleeps on `done` until every worker that joined the job has left it. A worker joins
 * only while the job still has helper slots and unclaimed tasks, and the caller closes the job
 * before it returns, so no worker ever touches a finished job's ctx. Before sleeping, workers
 * and the waiting caller poll briefly (SPIN_NS) on two atomics, which makes back-to-back jobs
 * cheap; the state itself only ever changes under pool.lock.
 */
#include "octet/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 256
/* A worker that just finished a job, and a caller waiting for its helpers, first poll for this
 * long before sleeping on a condition variable: training steps and layer-by-layer inference
 * post jobs back to back, and a futex wake-up costs tens of microseconds. */
#define SPIN_NS 50000

typedef void task_fn(void *ctx, int task);

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a job was posted, or stop was set */
    pthread_cond_t done; /* the last helper left the job */
    pthread_t *workers;
    int n_workers;
    bool stop;
    /* The current job: fn == NULL when there is none. */
    task_fn *fn;
    void *ctx;
    int n_tasks;
    int next;            /* first unclaimed task */
    int helpers_wanted;  /* workers that may still join */
    int helpers_running; /* workers inside the job */
    atomic_uint posted;  /* jobs posted so far (polled without the lock while spinning) */
    atomic_int running;  /* helpers_running, polled without the lock while spinning */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool in_task;

int oct_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Claims and runs tasks until none is left. Called and returns with pool.lock held. */
static void run_tasks_locked(void) {
    while (pool.next < pool.n_tasks) {
        int task = pool.next++;
        task_fn *fn = pool.fn;
        void *ctx = pool.ctx;
        pthread_mutex_unlock(&pool.lock);
        in_task = true;
        fn(ctx, task);
        in_task = false;
        pthread_mutex_lock(&pool.lock);
    }
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

/* Polls (yielding the CPU to any other runnable thread) until a job after `seen` is posted, for
 * at most SPIN_NS. Called without pool.lock. */
static void spin_until_posted(unsigned seen) {
    double t0 = now_ns();
    while (atomic_load_explicit(&pool.posted, memory_order_acquire) == seen &&
           now_ns() - t0 < SPIN_NS)
        sched_yield();
}

static bool job_open(void) {
    return pool.fn && pool.helpers_wanted > 0 && pool.next < pool.n_tasks;
}

static void *worker_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        if (!pool.stop && !job_open()) {
            unsigned seen = atomic_load(&pool.posted);
            pthread_mutex_unlock(&pool.lock);
            spin_until_posted(seen);
            pthread_mutex_lock(&pool.lock);
        }
        while (!pool.stop && !job_open()) pthread_cond_wait(&pool.wake, &pool.lock);
        if (pool.stop) break;
        pool.helpers_wanted--;
        pool.helpers_running++;
        atomic_store(&pool.running, pool.helpers_running);
        run_tasks_locked();
        atomic_store(&pool.running, --pool.helpers_running);
        if (pool.helpers_running == 0) pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Stops and joins all workers. Caller holds submit_lock. */
static void stop_workers(void) {
    pthread_mutex_lock(&pool.lock);
    pool.stop = true;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.n_workers; i++) pthread_join(pool.workers[i], NULL);
    free(pool.workers);
    pool.workers = NULL;
    pool.n_workers = 0;
    pool.stop = false;
}

/* Starts threads - 1 workers. Caller holds submit_lock and there are no workers. */
static oct_status start_workers(int threads) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads <= 1) return OCT_OK;
    pool.workers = malloc(sizeof(pthread_t) * (size_t)(threads - 1));
    if (!pool.workers) return oct_fail(OCT_ENOMEM, "parallel: out of memory for the pool");
    while (pool.n_workers < threads - 1) {
        if (pthread_create(&pool.workers[pool.n_workers], NULL, worker_main, NULL) != 0) {
            stop_workers();
            return oct_fail(OCT_ENOMEM, "parallel: cannot create worker thread %d of %d",
                            pool.n_workers + 1, threads - 1);
        }
        pool.n_workers++;
    }
    return OCT_OK;
}

oct_status oct_pool_init(int threads) {
    OCT_ASSERT(!in_task && "oct_pool_init called from inside a task");
    pthread_mutex_lock(&submit_lock);
    stop_workers();
    oct_status s = start_workers(threads > 0 ? threads : oct_cpu_count());
    pthread_mutex_unlock(&submit_lock);
    return s;
}

void oct_pool_free(void) {
    OCT_ASSERT(!in_task && "oct_pool_free called from inside a task");
    pthread_mutex_lock(&submit_lock);
    stop_workers();
    pthread_mutex_unlock(&submit_lock);
}

static void run_inline(int n_tasks, task_fn *fn, void *ctx) {
    for (int t = 0; t < n_tasks; t++) fn(ctx, t);
}

void oct_parallel_for(int n_tasks, int threads, task_fn *fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (threads <= 0) threads = oct_cpu_count();
    if (threads > n_tasks) threads = n_tasks;
    if (threads <= 1 || in_task || pthread_mutex_trylock(&submit_lock) != 0) {
        run_inline(n_tasks, fn, ctx);
        return;
    }
    if (pool.n_workers == 0) {
        int want = oct_cpu_count();
        /* A failure leaves no workers; the tasks then all run below, on this thread. */
        (void)start_workers(want > threads ? want : threads);
    }
    pthread_mutex_lock(&pool.lock);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n_tasks = n_tasks;
    pool.next = 0;
    pool.helpers_wanted = threads - 1 < pool.n_workers ? threads - 1 : pool.n_workers;
    atomic_fetch_add_explicit(&pool.posted, 1, memory_order_release);
    if (pool.helpers_wanted > 0) pthread_cond_broadcast(&pool.wake);
    run_tasks_locked();
    pool.helpers_wanted = 0;        /* workers waking up late must not join */
    if (pool.helpers_running > 0) { /* poll briefly for helpers still finishing */
        pthread_mutex_unlock(&pool.lock);
        double t0 = now_ns();
        while (atomic_load(&pool.running) > 0 && now_ns() - t0 < SPIN_NS) sched_yield();
        pthread_mutex_lock(&pool.lock);
    }
    while (pool.helpers_running > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pool.fn = NULL;
    pool.ctx = NULL;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&submit_lock);
}
