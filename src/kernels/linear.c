/* linear.c — gtr_linear: splits Y = X·Wᵀ into tasks for the pool and hands each to the
 * table's micro-kernel through the one driver (gemm.c).
 *
 * A task is a block of up to GTR_LINEAR_MC rows (the micro-kernel's mc where it sets one, or
 * the CPU's gtr_wmat.mc for kernels that allow more) times a range of weight panels. With many
 * rows (a batch of packed tokens) every task spans all of N, so each row block is converted /
 * quantised once and the whole weight matrix streams past it from L2/L3; with few rows
 * (queries) N is split so every thread still gets work. */
#include "kernels/kernels_internal.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A range of tasks [front, back) in one word (front << 32 | back): the thread that owns it
 * takes tasks from the front, others steal from the back once their own are done. */
typedef struct {
    _Alignas(64) _Atomic uint64_t r;
} task_lane;
#define LANES_MAX 64

typedef struct {
    const gtr_linear_ukr *u;
    const gtr_wmat *w;
    const float *x;
    float *y;
    size_t m, ldx, ldy, mc, n_cb, chunk, np, ws_stride, threads, n_tasks;
    bool x_prefetch;
    unsigned flags;
    unsigned char *ws;
    task_lane *lanes; /* NULL: the pool hands out the tasks themselves */
} linear_job;

#define NO_TASK SIZE_MAX

/* task t; tn: the task this thread takes next if known (NO_TASK: not known) */
static void run_task(const linear_job *j, size_t t, size_t tn, int tid)
{
    size_t rb = t / j->n_cb, cb = t % j->n_cb;
    size_t r0 = rb * j->mc, rows = GTR_MIN(j->mc, j->m - r0);
    size_t p0 = cb * j->chunk, p1 = GTR_MIN(j->np, p0 + j->chunk);
    void *ws = j->ws ? j->ws + (size_t)tid * j->ws_stride : NULL;
    /* the row block this thread takes next, prefetched (and prepared, where the kernel
     * does so ahead) during this task where the CPU wants it (gtr_wmat.no_prefetch) */
    const float *xn = NULL;
    size_t mn = 0;
    if (j->x_prefetch && tn < j->n_tasks && tn / j->n_cb != rb) {
        size_t rn = tn / j->n_cb * j->mc;
        xn = j->x + rn * j->ldx;
        mn = GTR_MIN(j->mc, j->m - rn);
    }
    if (j->u->drive)
        j->u->drive(j->u, j->w, j->x + r0 * j->ldx, rows, j->ldx, j->y + r0 * j->ldy, j->ldy, p0, p1,
                    j->flags, ws);
    else
        gtr_linear_drive(j->u, j->w, j->x + r0 * j->ldx, rows, j->ldx, j->y + r0 * j->ldy, j->ldy,
                         p0, p1, j->flags, ws, xn, mn);
}

static bool lane_take(task_lane *l, bool front, size_t *t)
{
    uint64_t v = atomic_load(&l->r);
    for (;;) {
        uint64_t f = v >> 32, b = v & 0xffffffffu;
        if (f >= b) return false;
        uint64_t nv = front ? ((f + 1) << 32) | b : (f << 32) | (b - 1);
        if (atomic_compare_exchange_weak(&l->r, &v, nv)) {
            *t = (size_t)(front ? f : b - 1);
            return true;
        }
    }
}

static size_t lane_peek(task_lane *l)
{
    uint64_t v = atomic_load(&l->r), f = v >> 32, b = v & 0xffffffffu;
    return f < b ? (size_t)f : NO_TASK;
}

static void linear_task(void *ctx, size_t t, int tid)
{
    const linear_job *j = ctx;
    if (!j->lanes) {
        /* the next task if the threads keep in step (the pool hands tasks out in order) */
        run_task(j, t, t + j->threads, tid);
        return;
    }
    /* lane t: its tasks in order, each knowing the next (which is only a guess where another
     * thread steals it: then what was prepared ahead is not used), then the other lanes'
     * last tasks */
    size_t task;
    while (lane_take(&j->lanes[t], true, &task)) run_task(j, task, lane_peek(&j->lanes[t]), tid);
    for (size_t i = 1; i < j->threads; i++)
        while (lane_take(&j->lanes[(t + i) % j->threads], false, &task)) run_task(j, task, NO_TASK, tid);
}

/* Rows per task: the kernel's own mc; else GTR_LINEAR_MC, or for a kernel that allows more
 * (mc_max) up to the CPU's choice w->mc (cache.c): then blocks of equal size, a multiple of
 * the kernel's rows, and with threads a whole number of blocks per thread and no fewer than
 * 96-row blocks would give (up to 4 per thread). The rows of a task never change a result. */
static size_t task_rows(const gtr_linear_ukr *u, const gtr_wmat *w, size_t m, size_t threads)
{
    if (u->mc) return u->mc;
    size_t mc = GTR_MIN(w->mc, u->mc_max), mr = (size_t)u->mr;
    if (mc <= GTR_LINEAR_MC) return GTR_LINEAR_MC;
    size_t n_rb = (m + mc - 1) / mc;
    if (threads > 1) {
        n_rb = GTR_MAX(n_rb, GTR_MIN((m + GTR_LINEAR_MC - 1) / GTR_LINEAR_MC, 4 * threads));
        n_rb = (n_rb + threads - 1) / threads * threads;
    }
    size_t r = (m + n_rb - 1) / n_rb;
    return GTR_MIN((r + mr - 1) / mr * mr, mc);
}

/* The micro-kernel for w: the table's own when the layout matches, else the portable one
 * (which reads any layout), so a matrix packed by another table still computes correctly. */
static const gtr_linear_ukr *pick(const gtr_kernels *kern, const gtr_wmat *w, size_t *ws_per_thread)
{
    *ws_per_thread = 0;
    if (!gtr_wmat_native(kern, w)) kern = gtr_kernels_generic();
    const gtr_linear_ukr *u = kern->linear[w->type];
    if (u->ws) {
        size_t b = u->ws(w->kp);
        *ws_per_thread = (b + 63) / 64 * 64;
    }
    return u;
}

size_t gtr_linear_ws_size(const gtr_kernels *kern, const gtr_pool *pool, const gtr_wmat *w, size_t m)
{
    (void)m;
    size_t per;
    pick(kern, w, &per);
    return per ? per * (size_t)gtr_pool_size(pool) + 64 : 0;
}

size_t gtr_linear_ws_bound(const gtr_kernels *kern, int n_threads, gtr_wtype type, size_t k)
{
    /* k padded as kern packs it or as a `gtr quantize` file stores it, whichever is more */
    size_t nr, kp, kp_file, per = 0;
    gtr_wmat_layout(kern, type, k, &nr, &kp);
    gtr_wmat_layout(gtr_kernels_file_layout(), type, k, &nr, &kp_file);
    kp = GTR_MAX(kp, kp_file);
    const gtr_kernels *ks[2] = {kern, gtr_kernels_generic()};
    for (int i = 0; i < 2; i++) {
        const gtr_linear_ukr *u = ks[i]->linear[type];
        if (u->ws) per = GTR_MAX(per, (u->ws(kp) + 63) / 64 * 64);
    }
    return per ? per * (size_t)GTR_MAX(n_threads, 1) + 64 : 0;
}

void gtr_linear_ws(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                   size_t m, size_t ldx, float *y, size_t ldy, unsigned flags, void *ws,
                   size_t ws_bytes)
{
    if (m == 0) return;
    size_t per;
    linear_job j = {0};
    j.u = pick(kern, w, &per);
    if (per) {
        size_t need = gtr_linear_ws_size(kern, pool, w, m);
        if (!ws || ws_bytes < need) {
            /* not enough scratch: the portable kernels need none */
            j.u = gtr_kernels_generic()->linear[w->type];
            per = 0;
        } else {
            j.ws = (unsigned char *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
            j.ws_stride = per;
        }
    }
    j.w = w;
    j.x = x;
    j.y = y;
    j.m = m;
    j.ldx = ldx;
    j.ldy = ldy;
    j.flags = flags;
    j.np = (w->n + w->nr - 1) / w->nr;
    size_t threads = (size_t)gtr_pool_size(pool);
    j.mc = task_rows(j.u, w, m, threads);
    j.threads = threads;
    j.x_prefetch = !w->no_prefetch && !j.u->drive;
    size_t n_rb = (m + j.mc - 1) / j.mc;
    /* enough tasks to balance (4 per thread), splitting N only when rows are few */
    size_t want = threads > 1 ? 4 * threads : 1;
    if (j.u->drive && threads > 1) {
        /* micro-kernels with their own task walk prepare a task's rows once for all of N, at
         * a cost worth paying once: one task per thread, with fewer rows each if need be
         * (multiples of 32), before N is split */
        want = threads;
        if (n_rb < threads) {
            j.mc = GTR_MAX((size_t)32, ((m + threads - 1) / threads + 31) / 32 * 32);
            n_rb = (m + j.mc - 1) / j.mc;
        }
    }
    j.n_cb = n_rb >= want ? 1 : GTR_MIN(j.np, (want + n_rb - 1) / n_rb);
    j.chunk = (j.np + j.n_cb - 1) / j.n_cb;
    j.n_cb = (j.np + j.chunk - 1) / j.chunk;
    j.n_tasks = n_rb * j.n_cb;
    if (j.ws && j.u->ws_clear)
        for (size_t i = 0; i < GTR_MAX(threads, (size_t)1); i++) memset(j.ws + i * j.ws_stride, 0, j.u->ws_clear);
    /* a kernel that prepares the next rows ahead, on several threads: each thread takes its
     * own lane of consecutive tasks, so that it knows which rows come next (taken in turns
     * from one counter, a thread that fell a task behind would prepare rows another thread
     * then takes); lanes run dry are helped from the others' ends */
    task_lane lanes[LANES_MAX];
    if (j.x_prefetch && j.u->ahead && threads > 1 && threads <= LANES_MAX && j.n_tasks > threads &&
        j.n_tasks < ((uint64_t)1 << 32)) {
        for (size_t l = 0; l < threads; l++)
            atomic_init(&lanes[l].r, ((uint64_t)(l * j.n_tasks / threads) << 32) | (uint64_t)((l + 1) * j.n_tasks / threads));
        j.lanes = lanes;
        gtr_pool_for(pool, threads, linear_task, &j);
        return;
    }
    gtr_pool_for(pool, j.n_tasks, linear_task, &j);
}

void gtr_linear(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, const float *x,
                size_t m, size_t ldx, float *y, size_t ldy, unsigned flags)
{
    if (m == 0) return;
    size_t need = gtr_linear_ws_size(kern, pool, w, m);
    void *ws = need ? gtr_malloc_aligned(need, NULL) : NULL;
    gtr_linear_ws(kern, pool, w, x, m, ldx, y, ldy, flags, ws, ws ? need : 0);
    gtr_free_aligned(ws);
}
