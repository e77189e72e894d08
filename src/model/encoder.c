/* encoder.c — the T5 encoder as GTR uses it (transformers' T5EncoderModel, v1.0 ReLU or v1.1
 * gated-GELU feed-forward), explicit and layer by layer:
 *
 *   x = embed[ids]
 *   per layer:  x += Wo · attention(rmsnorm(x) · [Wq Wk Wv], bias)      (no 1/sqrt(d_kv))
 *               x += Wo_ff · act(rmsnorm(x) · Wi)
 *   out = rmsnorm(x)
 *
 * Batching: the tokens of all texts are packed into one [T, d] matrix (no padding) for every
 * Linear layer and norm, which treat rows independently; attention runs per (text, head) on
 * that text's rows only. So a text's result never depends on its neighbours in the batch, and
 * no work is spent on padding. The relative-position bias depends only on key - query, so it
 * is kept as one row per head indexed by that difference, computed once from layer 0's table. */
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Query rows per attention block: bounds the score buffer to QBLOCK x keys per thread. */
#define GTR_ATT_QBLOCK 64
/* Rows per task for row-wise element operations. */
#define ROW_CHUNK 32

int gtr_t5_bucket(long rel, int num_buckets, int max_distance)
{
    /* transformers' _relative_position_bucket (bidirectional), in the same float32 steps:
     *   n = |rel|; half = nb/2; exact = half/2
     *   bucket = (rel > 0) * half + (n < exact ? n : min(half - 1, exact +
     *            long(log(float(n) / exact) / log(max_distance / exact) * (half - exact))))
     * The division by log(max_distance / exact) is by a Python float that torch rounds to
     * float32; so is every intermediate here. At n = 16, 32, 64 the exact value is an integer
     * (2, 4, 6 for 32/128) and float32 lands on it exactly, as PyTorch's does. */
    int half = num_buckets / 2, exact = half / 2;
    int base = rel > 0 ? half : 0;
    unsigned long n = rel < 0 ? (unsigned long)(-(rel + 1)) + 1u : (unsigned long)rel;
    if (n < (unsigned long)exact) return base + (int)n;
    float ratio = (float)n / (float)exact;
    float lg = logf(ratio);
    float denom = (float)log((double)max_distance / (double)exact);
    float v = lg / denom * (float)(half - exact);
    long large = exact + (long)v; /* .to(torch.long) truncates toward zero; v >= 0 here */
    if (large > half - 1) large = half - 1;
    return base + (int)large;
}

void gtr_t5_free(gtr_t5 *m)
{
    if (!m) return;
    if (!m->embed_borrowed) {
        gtr_free_aligned(m->embed);
        gtr_free_aligned(m->embed_scale);
    }
    gtr_free_aligned(m->rel_bias);
    gtr_free_aligned(m->final_ln);
    if (m->layers)
        for (int i = 0; i < m->cfg.num_layers; i++) {
            gtr_t5_layer *l = &m->layers[i];
            gtr_free_aligned(l->ln_attn);
            gtr_free_aligned(l->ln_ff);
            gtr_wmat_free(&l->qkv);
            gtr_wmat_free(&l->o);
            gtr_wmat_free(&l->wi);
            gtr_wmat_free(&l->wo);
        }
    free(m->layers);
    for (size_t i = 0; i < m->n_maps; i++) gtr_mmap_close(&m->maps[i]);
    free(m->maps);
    memset(m, 0, sizeof *m);
}

void gtr_t5_scratch_free(gtr_t5_scratch *s)
{
    if (!s) return;
    gtr_free_aligned(s->x);
    gtr_free_aligned(s->xn);
    gtr_free_aligned(s->qkv);
    gtr_free_aligned(s->ctx);
    gtr_free_aligned(s->ff);
    free(s->tok);
    free(s->offs);
    gtr_free_aligned(s->scores);
    gtr_free_aligned(s->pos_table);
    gtr_free_aligned(s->ws);
    memset(s, 0, sizeof *s);
}

/* ---- scratch ------------------------------------------------------------------ */

static gtr_status ensure(float **p, size_t floats, gtr_error *err)
{
    gtr_free_aligned(*p);
    *p = gtr_malloc_aligned(floats * sizeof(float), err);
    return *p ? GTR_OK : GTR_ERR_NOMEM;
}

/* Attention's products in bf16 on the matrix engine for models that compute in bf16 or int8
 * (their linear layers already round activations at least that far; the float32 model keeps
 * float32 attention), where the kernels have it. */
static const gtr_bf16mm *attn_bf16mm(const gtr_t5 *m, const gtr_kernels *kern)
{
    if (m->cfg.num_layers < 1 || m->layers[0].qkv.type == GTR_W_F32) return NULL;
    return gtr_kernels_bf16mm(kern);
}

/* bytes of a thread's bf16 attention scratch after its scores: packed Kᵀ, packed V, the
 * gemm's buffer and pack_bt's, each 64-byte aligned */
static size_t attn_bf16_bytes(const gtr_bf16mm *mm, size_t dk, size_t L)
{
    size_t a = mm->packed_bytes(dk, L), b = mm->packed_bytes(L, dk), w = mm->ws(GTR_MAX(dk, L));
    size_t t = L * ((dk + 31) / 32 * 32) * 2;
    return (a + 63) / 64 * 64 + (b + 63) / 64 * 64 + (w + 63) / 64 * 64 + (t + 63) / 64 * 64;
}

/* Floats of the per-row activations scratch_reserve allocates for one packed token: x, xn
 * [d_model] each, qkv [3 * inner], ctx [inner], ff [d_ff, twice when gated]. */
size_t gtr_t5_token_floats(const gtr_t5_config *c)
{
    size_t inner = (size_t)c->num_heads * (size_t)c->d_kv;
    return 2 * (size_t)c->d_model + 4 * inner + (c->ff == GTR_FF_GATED_GELU ? 2 : 1) * (size_t)c->d_ff;
}

/* Floats of one thread's attention scratch for texts of at most max_len tokens (mm: the bf16
 * products, else NULL): scores of a query block, then Kᵀ (float32) or the bf16 buffers. */
static size_t attn_floats_per_thread(const gtr_t5_config *c, const gtr_bf16mm *mm, size_t max_len)
{
    size_t per = (GTR_ATT_QBLOCK + (size_t)c->d_kv) * max_len;
    if (mm) per = GTR_ATT_QBLOCK * max_len + (attn_bf16_bytes(mm, (size_t)c->d_kv, max_len) + 63) / 64 * 16;
    return (per + 15) & ~(size_t)15; /* each thread's block starts on a cache line */
}

size_t gtr_t5_scratch_bytes(const gtr_t5_config *c, const gtr_kernels *kern, gtr_wtype wtype, int n_threads,
                            size_t tokens, size_t n, size_t max_len)
{
    size_t inner = (size_t)c->num_heads * (size_t)c->d_kv, d = (size_t)c->d_model;
    size_t threads = (size_t)GTR_MAX(n_threads, 1);
    const gtr_bf16mm *mm = c->num_layers > 0 && wtype != GTR_W_F32 ? gtr_kernels_bf16mm(kern) : NULL;
    size_t b = tokens * (gtr_t5_token_floats(c) * sizeof(float) + sizeof(int32_t)); /* + tok */
    b += n * sizeof(size_t);                                                          /* offs */
    b += attn_floats_per_thread(c, mm, max_len) * threads * sizeof(float);            /* scores */
    b += (size_t)c->num_heads * (2 * max_len - 1) * sizeof(float);                   /* pos_table */
    /* gtr_linear's scratch: the largest over the layer's matrices (k = d, inner, d, d_ff) */
    size_t ks[4] = {d, inner, d, (size_t)c->d_ff}, ws = 0;
    for (int i = 0; i < 4; i++) ws = GTR_MAX(ws, gtr_linear_ws_bound(kern, (int)threads, wtype, ks[i]));
    return b + ws;
}

/* Grow the arena to hold `tokens` packed rows of n texts, the longest max_len tokens
 * (gtr_t5_scratch_bytes adds up what this allocates: keep the two together). */
static gtr_status scratch_reserve(const gtr_t5 *m, const gtr_kernels *kern, gtr_pool *pool,
                                  gtr_t5_scratch *s, size_t tokens, size_t n, size_t max_len,
                                  gtr_error *err)
{
    const gtr_t5_config *c = &m->cfg;
    int n_threads = gtr_pool_size(pool);
    gtr_status st;
    if (tokens > s->cap_tokens) {
        size_t ffw = (c->ff == GTR_FF_GATED_GELU ? 2 : 1) * (size_t)c->d_ff;
        free(s->tok);
        s->tok = NULL;
        if ((st = ensure(&s->x, tokens * c->d_model, err)) ||
            (st = ensure(&s->xn, tokens * c->d_model, err)) ||
            (st = ensure(&s->qkv, tokens * 3 * (size_t)m->inner, err)) ||
            (st = ensure(&s->ctx, tokens * (size_t)m->inner, err)) ||
            (st = ensure(&s->ff, tokens * ffw, err)) ||
            !(s->tok = gtr_xmalloc(tokens * sizeof *s->tok, "token rows", err))) {
            s->cap_tokens = 0;
            return st ? st : GTR_ERR_NOMEM;
        }
        s->cap_tokens = tokens;
    }
    if (n > s->cap_texts) {
        free(s->offs);
        if (!(s->offs = gtr_xmalloc(n * sizeof *s->offs, "text offsets", err))) {
            s->cap_texts = 0;
            return GTR_ERR_NOMEM;
        }
        s->cap_texts = n;
    }
    size_t per = attn_floats_per_thread(c, attn_bf16mm(m, kern), max_len);
    if (per > s->scores_per_thread || n_threads > s->n_threads) {
        size_t want = GTR_MAX(per, s->scores_per_thread);
        if ((st = ensure(&s->scores, want * (size_t)n_threads, err))) {
            s->scores_per_thread = 0;
            s->n_threads = 0;
            return st;
        }
        s->scores_per_thread = want;
        s->n_threads = n_threads;
    }
    if ((int)max_len > s->table_len) {
        /* pos_table[h][rel + len - 1] = rel_bias[bucket(rel)][h], rel = key - query */
        size_t len = max_len, w = 2 * len - 1;
        if ((st = ensure(&s->pos_table, (size_t)c->num_heads * w, err))) {
            s->table_len = 0;
            return st;
        }
        for (size_t r = 0; r < w; r++) {
            int b = gtr_t5_bucket((long)r - (long)(len - 1), c->num_buckets, c->max_distance);
            for (int h = 0; h < c->num_heads; h++)
                s->pos_table[(size_t)h * w + r] = m->rel_bias[(size_t)b * c->num_heads + h];
        }
        s->table_len = (int)len;
    }
    /* gtr_linear's scratch: enough for any of the layer's matrices (all layers alike) */
    size_t ws = 0;
    if (c->num_layers > 0) {
        const gtr_t5_layer *l = &m->layers[0];
        const gtr_wmat *ws_of[4] = {&l->qkv, &l->o, &l->wi, &l->wo};
        for (int i = 0; i < 4; i++) ws = GTR_MAX(ws, gtr_linear_ws_size(kern, pool, ws_of[i], tokens));
    }
    if (ws > s->ws_bytes) {
        gtr_free_aligned(s->ws);
        s->ws_bytes = 0;
        if (!(s->ws = gtr_malloc_aligned(ws, err))) return GTR_ERR_NOMEM;
        s->ws_bytes = ws;
    }
    return GTR_OK;
}

/* ---- forward ------------------------------------------------------------------- */

typedef struct {
    const gtr_t5 *m;
    const gtr_kernels *kern;
    gtr_t5_scratch *s;
    const size_t *lens, *offs; /* tokens and first row of each text */
    size_t n, T;
    const gtr_bf16mm *mm; /* attention's products in bf16, or NULL */
    const float *norm_w; /* rmsnorm task: weight, source, destination */
    const float *src;
    float *dst;
} fwd;

/* x[t] = embed[tok[t]], dequantised from the table's precision. */
static void embed_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    fwd *f = ctx;
    const gtr_t5 *m = f->m;
    size_t d = (size_t)m->cfg.d_model;
    for (size_t t = c * ROW_CHUNK; t < GTR_MIN(f->T, (c + 1) * ROW_CHUNK); t++) {
        size_t id = (size_t)f->s->tok[t];
        float *x = f->s->x + t * d;
        if (m->embed_type == GTR_W_F32) {
            memcpy(x, (const float *)m->embed + id * d, d * sizeof(float));
        } else if (m->embed_type == GTR_W_BF16) {
            const uint16_t *e = (const uint16_t *)m->embed + id * d;
            for (size_t j = 0; j < d; j++) x[j] = gtr_bf16_to_f32(e[j]);
        } else {
            const int8_t *e = (const int8_t *)m->embed + id * d;
            float sc = m->embed_scale[id];
            for (size_t j = 0; j < d; j++) x[j] = (float)e[j] * sc;
        }
    }
}

static void rmsnorm_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    fwd *f = ctx;
    size_t d = (size_t)f->m->cfg.d_model;
    for (size_t t = c * ROW_CHUNK; t < GTR_MIN(f->T, (c + 1) * ROW_CHUNK); t++)
        gtr_rmsnorm(f->kern, f->src + t * d, f->norm_w, f->m->cfg.eps, d, f->dst + t * d);
}

static void rmsnorm_rows(fwd *f, gtr_pool *pool, const float *w, const float *src, float *dst)
{
    f->norm_w = w;
    f->src = src;
    f->dst = dst;
    gtr_pool_for(pool, (f->T + ROW_CHUNK - 1) / ROW_CHUNK, rmsnorm_task, f);
}

static void gelu_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    fwd *f = ctx;
    size_t ff = (size_t)f->m->cfg.d_ff;
    for (size_t t = c * ROW_CHUNK; t < GTR_MIN(f->T, (c + 1) * ROW_CHUNK); t++) {
        float *row = f->s->ff + t * 2 * ff;
        gtr_gelu_mul(f->kern, row, row + ff, ff); /* gelu(x·wi_0) * (x·wi_1) */
    }
}

/* attn_task on the matrix engine: Kᵀ and V of the head packed once, then per query block
 * S = Q·Kᵀ, the biased softmax in float32, O = P·V, both products in bf16. */
static void attn_task_bf16(const fwd *f, const gtr_bf16mm *mm, size_t text, size_t h, int tid)
{
    const gtr_t5 *m = f->m;
    size_t dk = (size_t)m->cfg.d_kv, inner = (size_t)m->inner, ld = 3 * inner;
    size_t L = f->lens[text], row0 = f->offs[text];
    const float *Q = f->s->qkv + row0 * ld + h * dk, *K = Q + inner, *Vm = Q + 2 * inner;
    float *S = f->s->scores + (size_t)tid * f->s->scores_per_thread;
    unsigned char *kp = (unsigned char *)(S + (GTR_ATT_QBLOCK * L + 15) / 16 * 16);
    unsigned char *vp = kp + (mm->packed_bytes(dk, L) + 63) / 64 * 64;
    unsigned char *ws = vp + (mm->packed_bytes(L, dk) + 63) / 64 * 64;
    unsigned char *tmp = ws + (mm->ws(GTR_MAX(dk, L)) + 63) / 64 * 64;
    mm->pack_bt(K, ld, dk, L, kp, tmp);
    mm->pack_b(Vm, ld, L, dk, vp);
    size_t w = 2 * (size_t)f->s->table_len - 1;
    const float *bias = f->s->pos_table + h * w + (size_t)f->s->table_len - 1; /* rel 0 */
    for (size_t q0 = 0; q0 < L; q0 += GTR_ATT_QBLOCK) {
        size_t rows = GTR_MIN((size_t)GTR_ATT_QBLOCK, L - q0);
        mm->gemm(rows, L, dk, Q + q0 * ld, ld, kp, S, L, ws);
        for (size_t r = 0; r < rows; r++) gtr_add_softmax(f->kern, S + r * L, bias - (q0 + r), L);
        mm->gemm(rows, dk, L, S, L, vp, f->s->ctx + (row0 + q0) * inner + h * dk, inner, ws);
    }
}

/* One (text, head): softmax(Q Kᵀ + bias) V over that text's rows, query block by block. Kᵀ
 * is formed once per (text, head) in the thread's scratch, so every query block runs a
 * plain nn product (a block-wise transpose inside sgemm_nt would redo it per block). */
static void attn_task(void *ctx, size_t task, int tid)
{
    fwd *f = ctx;
    const gtr_t5 *m = f->m;
    int H = m->cfg.num_heads;
    size_t dk = (size_t)m->cfg.d_kv, inner = (size_t)m->inner, ld = 3 * inner;
    size_t text = task / (size_t)H, h = task % (size_t)H;
    if (f->mm) {
        attn_task_bf16(f, f->mm, text, h, tid);
        return;
    }
    size_t L = f->lens[text], row0 = f->offs[text];
    const float *Q = f->s->qkv + row0 * ld + h * dk, *K = Q + inner, *Vm = Q + 2 * inner;
    float *S = f->s->scores + (size_t)tid * f->s->scores_per_thread;
    float *Kt = S + GTR_ATT_QBLOCK * L; /* [dk][L] */
    gtr_transpose(f->kern, K, ld, L, dk, Kt, L);
    size_t w = 2 * (size_t)f->s->table_len - 1;
    const float *bias = f->s->pos_table + h * w + (size_t)f->s->table_len - 1; /* rel 0 */
    for (size_t q0 = 0; q0 < L; q0 += GTR_ATT_QBLOCK) {
        size_t rows = GTR_MIN((size_t)GTR_ATT_QBLOCK, L - q0);
        gtr_sgemm_nn(f->kern, rows, L, dk, Q + q0 * ld, ld, Kt, L, 0.0f, S, L);
        for (size_t r = 0; r < rows; r++) {
            float *srow = S + r * L;
            /* bias row of this query: element j is the bias at rel = j - query */
            gtr_add_softmax(f->kern, srow, bias - (q0 + r), L);
        }
        gtr_sgemm_nn(f->kern, rows, dk, L, S, L, Vm, ld, 0.0f, f->s->ctx + (row0 + q0) * inner + h * dk,
                     inner);
    }
}

static void probe_rows(const fwd *f, gtr_probe_fn probe, void *user, const char *name,
                       const float *x, size_t cols)
{
    for (size_t i = 0; i < f->n; i++) probe(user, i, name, x + f->offs[i] * cols, f->lens[i], cols);
}

static void probe_position_bias(const fwd *f, gtr_probe_fn probe, void *user)
{
    int H = f->m->cfg.num_heads;
    size_t w = 2 * (size_t)f->s->table_len - 1;
    for (size_t i = 0; i < f->n; i++) {
        size_t L = f->lens[i];
        float *pb = malloc((size_t)H * L * L * sizeof *pb);
        if (!pb) continue; /* a debugging aid only */
        for (int h = 0; h < H; h++)
            for (size_t q = 0; q < L; q++)
                for (size_t k = 0; k < L; k++)
                    pb[((size_t)h * L + q) * L + k] =
                        f->s->pos_table[(size_t)h * w + (size_t)f->s->table_len - 1 + k - q];
        probe(user, i, "position_bias", pb, (size_t)H * L, L);
        free(pb);
    }
}

gtr_status gtr_t5_forward(const gtr_t5 *m, const gtr_kernels *kern, gtr_pool *pool,
                          gtr_t5_scratch *s, const int32_t *const *ids, const size_t *lens,
                          size_t n, float **out_hidden, gtr_probe_fn probe, void *probe_user,
                          gtr_error *err)
{
    const gtr_t5_config *c = &m->cfg;
    size_t d = (size_t)c->d_model, inner = (size_t)m->inner, dff = (size_t)c->d_ff;
    size_t T = 0, max_len = 1;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] == 0) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "text %zu has no tokens", i);
        for (size_t t = 0; t < lens[i]; t++)
            if (ids[i][t] < 0 || ids[i][t] >= c->vocab_size)
                return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                                  "text %zu: token id %d at position %zu is outside the vocabulary "
                                  "(%d ids)", i, (int)ids[i][t], t, c->vocab_size);
        T += lens[i];
        max_len = GTR_MAX(max_len, lens[i]);
    }
    gtr_status st = scratch_reserve(m, kern, pool, s, T ? T : 1, n ? n : 1, max_len, err);
    if (st) return st;
    for (size_t i = 0, o = 0; i < n; o += lens[i], i++) {
        s->offs[i] = o;
        memcpy(s->tok + o, ids[i], lens[i] * sizeof(int32_t));
    }
    fwd f = {m, kern, s, lens, s->offs, n, T, attn_bf16mm(m, kern), NULL, NULL, NULL};
    void *ws = s->ws;
    size_t wsb = s->ws_bytes;

    /* token embeddings */
    gtr_pool_for(pool, (T + ROW_CHUNK - 1) / ROW_CHUNK, embed_task, &f);
    if (probe) {
        probe_rows(&f, probe, probe_user, "embeddings", s->x, d);
        probe_position_bias(&f, probe, probe_user);
    }

    bool gated = c->ff == GTR_FF_GATED_GELU;
    size_t ffw = gated ? 2 * dff : dff;
    for (int li = 0; li < c->num_layers; li++) {
        const gtr_t5_layer *l = &m->layers[li];
        if (s->stop && atomic_load(s->stop))
            return gtr_seterr(err, GTR_ERR_INTERRUPTED, "encoding interrupted at layer %d", li);
        /* self-attention block */
        rmsnorm_rows(&f, pool, l->ln_attn, s->x, s->xn);
        gtr_linear_ws(kern, pool, &l->qkv, s->xn, T, d, s->qkv, 3 * inner, 0, ws, wsb);
        gtr_pool_for(pool, n * (size_t)c->num_heads, attn_task, &f);
        gtr_linear_ws(kern, pool, &l->o, s->ctx, T, inner, s->x, d, GTR_LINEAR_ACCUM, ws, wsb);
        char name[32];
        if (probe) {
            snprintf(name, sizeof name, "layer%02d.attn_out", li);
            probe_rows(&f, probe, probe_user, name, s->x, d);
        }
        /* feed-forward block */
        if (s->stop && atomic_load(s->stop))
            return gtr_seterr(err, GTR_ERR_INTERRUPTED, "encoding interrupted at layer %d", li);
        rmsnorm_rows(&f, pool, l->ln_ff, s->x, s->xn);
        if (gated) {
            gtr_linear_ws(kern, pool, &l->wi, s->xn, T, d, s->ff, ffw, 0, ws, wsb);
            gtr_pool_for(pool, (T + ROW_CHUNK - 1) / ROW_CHUNK, gelu_task, &f);
        } else {
            gtr_linear_ws(kern, pool, &l->wi, s->xn, T, d, s->ff, ffw, GTR_LINEAR_RELU, ws, wsb);
        }
        gtr_linear_ws(kern, pool, &l->wo, s->ff, T, ffw, s->x, d, GTR_LINEAR_ACCUM, ws, wsb);
        if (probe) {
            snprintf(name, sizeof name, "layer%02d.out", li);
            probe_rows(&f, probe, probe_user, name, s->x, d);
        }
    }
    rmsnorm_rows(&f, pool, m->final_ln, s->x, s->xn);
    if (probe) probe_rows(&f, probe, probe_user, "final_norm", s->xn, d);
    *out_hidden = s->xn;
    return GTR_OK;
}
