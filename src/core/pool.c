/* pool.c — a fixed pthread pool that runs parallel-for loops. The calling thread takes part
 * as thread 0; indices are handed out with an atomic counter, so uneven tasks balance. */
#include "core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct gtr_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    /* the current job */
    gtr_task_fn fn;
    void *ctx;
    size_t n;
    atomic_size_t next;
    int running;         /* workers still inside the current job */
    unsigned generation; /* bumped per job so workers know a new one started */
    bool stop;
    atomic_bool busy;    /* a job is in progress: nested calls run serially */
    pthread_mutex_t job_mu; /* one job at a time from several caller threads */
};

typedef struct {
    gtr_pool *pool;
    int id;
} worker_arg;

int gtr_cpu_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void run_tasks(gtr_pool *p, int id)
{
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n) break;
        p->fn(p->ctx, i, id);
    }
}

static void *worker(void *arg)
{
    worker_arg *wa = arg;
    gtr_pool *p = wa->pool;
    int id = wa->id;
    free(wa);
    unsigned seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->start_cv, &p->mu);
        if (p->stop) break;
        seen = p->generation;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->running == 0) pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

gtr_pool *gtr_pool_create(int n_threads, gtr_error *err)
{
    if (n_threads <= 0) n_threads = gtr_cpu_cores();
    if (n_threads > 1024) n_threads = 1024;
    gtr_pool *p = gtr_xcalloc(1, sizeof *p, "thread pool", err);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->job_mu, NULL);
    pthread_cond_init(&p->start_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->next, 0);
    atomic_init(&p->busy, false);
    if (n_threads > 1) {
        p->threads = gtr_xcalloc((size_t)n_threads, sizeof *p->threads, "thread pool", err);
        if (!p->threads) goto fail;
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa) {
                gtr_seterr(err, GTR_ERR_NOMEM, "out of memory starting threads");
                p->n_threads = i;
                goto fail;
            }
            wa->pool = p;
            wa->id = i;
            if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
                free(wa);
                gtr_seterr(err, GTR_ERR_INTERNAL, "cannot start thread %d", i);
                p->n_threads = i;
                goto fail;
            }
        }
    }
    return p;
fail:
    gtr_pool_free(p);
    return NULL;
}

void gtr_pool_free(gtr_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads && p->threads; i++) pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->job_mu);
    pthread_cond_destroy(&p->start_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p);
}

int gtr_pool_size(const gtr_pool *p) { return p ? p->n_threads : 1; }

void gtr_pool_for(gtr_pool *p, size_t n, gtr_task_fn fn, void *ctx)
{
    if (n == 0) return;
    bool expected = false;
    if (!p || p->n_threads == 1 || n == 1 ||
        !atomic_compare_exchange_strong(&p->busy, &expected, true)) {
        /* serial: no pool, a single task, or a nested call from inside a task */
        for (size_t i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    pthread_mutex_lock(&p->job_mu);
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store(&p->next, 0);
    p->running = p->n_threads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->start_cv);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->running > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->job_mu);
    atomic_store(&p->busy, false);
}

double gtr_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
