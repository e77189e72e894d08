/* optim.c — the two optimisers and the learning-rate schedule.
 *
 * AdamW (torch.optim.AdamW, applied to every parameter), per element, step t:
 *     p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *     p ← p − lr/(1−β1^t) · m / (√v / √(1−β2^t) + eps)
 * Adafactor (transformers' Adafactor with scale_parameter=False, relative_step=False,
 * beta1=None, weight_decay=0: what GTR trains with), per tensor, step t:
 *     β2_t = 1 − t^decay_rate,  G = g² + eps1
 *     matrix [n, m]: R ← β2_t·R + (1−β2_t)·rowmean(G),  C ← β2_t·C + (1−β2_t)·colmean(G)
 *                    U = g · rsqrt(R_i / mean(R)) · rsqrt(C_j)
 *     vector:        V ← β2_t·V + (1−β2_t)·G,  U = g · rsqrt(V)
 *     U ← U / max(1, RMS(U) / clip);  p ← p − lr·U
 * The rsqrt-product form never forms R_i·C_j/mean(R), which underflows to 0/0 for the
 * embedding rows a batch does not touch (R_i = eps1): their U is exactly 0 and they stay
 * unchanged, as in the reference. Statistics are float64 (R, C, V kept in float64 too); sums
 * over rows run in fixed chunks combined in order, so the thread count never changes a bit. */
#include "train/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROW_CHUNK 256   /* rows per task in Adafactor's passes */
#define ELEM_CHUNK 16384 /* elements per task in AdamW */

void gtr_tr_optim_free(gtr_tr_optim *o)
{
    if (!o) return;
    gtr_free_aligned(o->m);
    gtr_free_aligned(o->v);
    free(o->fac);
    free(o->fac_off);
    free(o->part);
    memset(o, 0, sizeof *o);
}

gtr_status gtr_tr_optim_init(gtr_tr_optim *o, const gtr_tr_model *m, const gtr_train_options *opt,
                             gtr_error *err)
{
    memset(o, 0, sizeof *o);
    o->kind = opt->optimizer;
    o->beta1 = opt->beta1;
    o->beta2 = opt->beta2;
    o->eps = opt->eps;
    o->weight_decay = opt->weight_decay;
    o->decay_rate = opt->decay_rate;
    o->clip = opt->clip_threshold;
    o->eps1 = opt->eps1;
    if (o->kind == GTR_OPTIM_ADAMW) {
        o->m = gtr_calloc_aligned(m->n_params * sizeof(float), err);
        o->v = gtr_calloc_aligned(m->n_params * sizeof(float), err);
        if (!o->m || !o->v) goto oom;
        return GTR_OK;
    }
    if (o->kind != GTR_OPTIM_ADAFACTOR) {
        gtr_tr_optim_free(o);
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown optimizer %d", (int)o->kind);
    }
    if (!(o->fac_off = gtr_xcalloc(m->n_t + 1, sizeof *o->fac_off, "optimizer state", err)))
        goto oom;
    size_t n = 0, part = 0;
    for (size_t i = 0; i < m->n_t; i++) {
        const gtr_tr_tensor *t = &m->t[i];
        o->fac_off[i] = n;
        if (t->ndim == 2) {
            n += t->shape[0] + t->shape[1];
            size_t chunks = (t->shape[0] + ROW_CHUNK - 1) / ROW_CHUNK;
            part = GTR_MAX(part, chunks * (t->shape[1] + 2));
        } else {
            n += t->count;
            part = GTR_MAX(part, (size_t)2);
        }
    }
    o->fac_off[m->n_t] = n;
    o->n_fac = n;
    o->part_cap = part;
    o->fac = gtr_xcalloc(GTR_MAX(n, (size_t)1), sizeof *o->fac, "optimizer state", err);
    o->part = gtr_xcalloc(GTR_MAX(part, (size_t)1), sizeof *o->part, "optimizer scratch", err);
    if (!o->fac || !o->part) goto oom;
    return GTR_OK;
oom:
    gtr_tr_optim_free(o);
    return GTR_ERR_NOMEM;
}

double gtr_tr_lr(const gtr_train_options *o, uint64_t t)
{
    double W = (double)o->warmup_steps, T = (double)o->total_steps, s = (double)t;
    if (o->warmup_steps > 0 && t <= o->warmup_steps) return o->lr * s / W;
    if (o->schedule == GTR_LR_CONSTANT || o->total_steps <= o->warmup_steps) return o->lr;
    double f = (T - s + 1.0) / (T - W);
    return o->lr * (f > 0 ? f : 0);
}

/* ---- AdamW --------------------------------------------------------------------------- */

typedef struct {
    gtr_tr_optim *o;
    gtr_tr_model *m;
    double lr, step_size, bc2_sqrt;
    /* Adafactor, the current tensor */
    const gtr_tr_tensor *t;
    double *R, *C, beta2, mean_r, scale;
} step_job;

static void adamw_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    step_job *j = ctx;
    gtr_tr_optim *o = j->o;
    float *p = j->m->p, *g = j->m->g, *m = o->m, *v = o->v;
    double decay = 1.0 - j->lr * o->weight_decay;
    size_t end = GTR_MIN(j->m->n_params, (c + 1) * ELEM_CHUNK);
    for (size_t i = c * ELEM_CHUNK; i < end; i++) {
        double gi = g[i];
        double mi = o->beta1 * m[i] + (1.0 - o->beta1) * gi;
        double vi = o->beta2 * v[i] + (1.0 - o->beta2) * gi * gi;
        m[i] = (float)mi;
        v[i] = (float)vi;
        double denom = sqrt((double)v[i]) / j->bc2_sqrt + o->eps;
        p[i] = (float)((double)p[i] * decay - j->step_size * (double)m[i] / denom);
    }
}

/* ---- Adafactor ------------------------------------------------------------------------ */

/* Pass 1 over a chunk of rows: R_i from the row means of G; column sums of G into part. */
static void af_rows_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    step_job *j = ctx;
    const gtr_tr_tensor *t = j->t;
    size_t rows = t->shape[0], cols = t->shape[1];
    const float *g = j->m->g + t->off;
    double *colsum = j->o->part + c * cols, eps1 = j->o->eps1;
    for (size_t k = 0; k < cols; k++) colsum[k] = 0;
    for (size_t i = c * ROW_CHUNK; i < GTR_MIN(rows, (c + 1) * ROW_CHUNK); i++) {
        const float *gr = g + i * cols;
        double s = 0;
        for (size_t k = 0; k < cols; k++) {
            double G = (double)gr[k] * gr[k] + eps1;
            s += G;
            colsum[k] += G;
        }
        j->R[i] = j->beta2 * j->R[i] + (1.0 - j->beta2) * (s / (double)cols);
    }
}

static inline double af_update(const step_job *j, size_t i, size_t k, float g)
{
    return (double)g * (1.0 / sqrt(j->R[i] / j->mean_r)) * (1.0 / sqrt(j->C[k]));
}

/* Pass 2: Σ U² over a chunk of rows (into part[c]). */
static void af_rms_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    step_job *j = ctx;
    const gtr_tr_tensor *t = j->t;
    size_t rows = t->shape[0], cols = t->shape[1];
    const float *g = j->m->g + t->off;
    double s = 0;
    for (size_t i = c * ROW_CHUNK; i < GTR_MIN(rows, (c + 1) * ROW_CHUNK); i++)
        for (size_t k = 0; k < cols; k++) {
            float gi = g[i * cols + k];
            if (gi == 0) continue; /* U = 0 exactly (untouched embedding rows) */
            double u = af_update(j, i, k, gi);
            s += u * u;
        }
    j->o->part[c] = s;
}

/* Pass 3: p ← p − lr·U/scale. */
static void af_apply_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    step_job *j = ctx;
    const gtr_tr_tensor *t = j->t;
    size_t rows = t->shape[0], cols = t->shape[1];
    const float *g = j->m->g + t->off;
    float *p = j->m->p + t->off;
    double f = j->lr / j->scale;
    for (size_t i = c * ROW_CHUNK; i < GTR_MIN(rows, (c + 1) * ROW_CHUNK); i++)
        for (size_t k = 0; k < cols; k++) {
            float gi = g[i * cols + k];
            if (gi == 0) continue;
            p[i * cols + k] = (float)((double)p[i * cols + k] - f * af_update(j, i, k, gi));
        }
}

static void adafactor_matrix(step_job *j, gtr_pool *pool)
{
    const gtr_tr_tensor *t = j->t;
    size_t rows = t->shape[0], cols = t->shape[1], chunks = (rows + ROW_CHUNK - 1) / ROW_CHUNK;
    gtr_pool_for(pool, chunks, af_rows_task, j);
    for (size_t k = 0; k < cols; k++) {
        double s = 0;
        for (size_t c = 0; c < chunks; c++) s += j->o->part[c * cols + k];
        j->C[k] = j->beta2 * j->C[k] + (1.0 - j->beta2) * (s / (double)rows);
    }
    double sr = 0;
    for (size_t i = 0; i < rows; i++) sr += j->R[i];
    j->mean_r = sr / (double)rows;
    gtr_pool_for(pool, chunks, af_rms_task, j);
    double ss = 0;
    for (size_t c = 0; c < chunks; c++) ss += j->o->part[c];
    double rms = sqrt(ss / (double)t->count);
    j->scale = GTR_MAX(1.0, rms / j->o->clip);
    gtr_pool_for(pool, chunks, af_apply_task, j);
}

static void adafactor_vector(step_job *j)
{
    const gtr_tr_tensor *t = j->t;
    const float *g = j->m->g + t->off;
    float *p = j->m->p + t->off;
    double *V = j->R, ss = 0;
    for (size_t i = 0; i < t->count; i++) {
        V[i] = j->beta2 * V[i] + (1.0 - j->beta2) * ((double)g[i] * g[i] + j->o->eps1);
        double u = (double)g[i] / sqrt(V[i]);
        ss += u * u;
    }
    double scale = GTR_MAX(1.0, sqrt(ss / (double)t->count) / j->o->clip);
    for (size_t i = 0; i < t->count; i++)
        p[i] = (float)((double)p[i] - j->lr * ((double)g[i] / sqrt(V[i])) / scale);
}

gtr_status gtr_tr_optim_step(gtr_tr_optim *o, gtr_tr_model *m, gtr_pool *pool, double lr,
                             gtr_error *err)
{
    (void)err;
    o->t++;
    step_job j = {.o = o, .m = m, .lr = lr};
    if (o->kind == GTR_OPTIM_ADAMW) {
        double t = (double)o->t;
        j.step_size = lr / (1.0 - pow(o->beta1, t));
        j.bc2_sqrt = sqrt(1.0 - pow(o->beta2, t));
        gtr_pool_for(pool, (m->n_params + ELEM_CHUNK - 1) / ELEM_CHUNK, adamw_task, &j);
    } else {
        j.beta2 = 1.0 - pow((double)o->t, o->decay_rate);
        for (size_t i = 0; i < m->n_t; i++) {
            j.t = &m->t[i];
            j.R = o->fac + o->fac_off[i];
            j.C = j.R + j.t->shape[0];
            if (j.t->ndim == 2)
                adafactor_matrix(&j, pool);
            else
                adafactor_vector(&j);
        }
    }
    m->packed_valid = false;
    return GTR_OK;
}
