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

/* ---- loading ---------------------------------------------------------------- */

/* The tensors of one layer, looked up (and shape-checked) before anything is converted.
 * Linear weights may be float or int8 codes with scales (a `gtr quantize` directory). */
typedef struct {
    gtr_tensor *ln_attn, *ln_ff;
    gtr_wtensor q, k, v, o, wi0, wi1, wo;
    gtr_wmat pk[GTR_PACKED_NMATS]; /* a packed file: views of qkv, o, wi, wo (packed.c) */
} layer_tensors;

static gtr_status get_layer(gtr_tensor_set *set, const gtr_t5_config *c, int inner, int i,
                            layer_tensors *lt, gtr_error *err)
{
    char nm[160];
    size_t d = (size_t)c->d_model, in = (size_t)inner, ff = (size_t)c->d_ff;
    size_t vec[1] = {d}, qkv[2] = {in, d}, o[2] = {d, in}, wi[2] = {ff, d}, wo[2] = {d, ff};
    gtr_status st;
#define NAME(suffix) snprintf(nm, sizeof nm, "encoder.block.%d.layer.%s", i, suffix)
#define GETV(field, suffix)                                                                     \
    NAME(suffix);                                                                               \
    if ((st = gtr_tensor_get(set, nm, 1, vec, &lt->field, err))) return st
#define GETW(field, suffix, shape)                                                              \
    NAME(suffix);                                                                               \
    if ((st = gtr_wtensor_get(set, nm, shape, &lt->field, err))) return st
    GETV(ln_attn, "0.layer_norm.weight");
    if (set->packed) {
        GETV(ln_ff, "1.layer_norm.weight");
        for (int j = 0; j < GTR_PACKED_NMATS; j++)
            if ((st = gtr_packed_get(set, c, i, j, &lt->pk[j], err))) return st;
        return GTR_OK;
    }
    GETW(q, "0.SelfAttention.q.weight", qkv);
    GETW(k, "0.SelfAttention.k.weight", qkv);
    GETW(v, "0.SelfAttention.v.weight", qkv);
    GETW(o, "0.SelfAttention.o.weight", o);
    GETV(ln_ff, "1.layer_norm.weight");
    if (c->ff == GTR_FF_GATED_GELU) {
        GETW(wi0, "1.DenseReluDense.wi_0.weight", wi);
        GETW(wi1, "1.DenseReluDense.wi_1.weight", wi);
    } else {
        GETW(wi0, "1.DenseReluDense.wi.weight", wi);
        lt->wi1 = (gtr_wtensor){0};
    }
    GETW(wo, "1.DenseReluDense.wo.weight", wo);
#undef GETW
#undef GETV
#undef NAME
    return GTR_OK;
}

/* The tied token embedding, stored as shared.weight, encoder.embed_tokens.weight or both
 * (the same parameter in transformers; shared.weight is the canonical one). */
static gtr_status find_embedding(gtr_tensor_set *set, const size_t shape[2], gtr_wtensor *emb,
                                 gtr_error *err)
{
    static const char *const names[] = {"shared.weight", "encoder.embed_tokens.weight"};
    gtr_wtensor found[2] = {{0}, {0}};
    for (int i = 0; i < 2; i++) {
        gtr_status st;
        if (gtr_tensor_find(set, names[i]) && (st = gtr_wtensor_get(set, names[i], shape, &found[i], err)))
            return st;
    }
    *emb = found[0].w ? found[0] : found[1];
    if (!emb->w)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                          "%s: missing tensor 'shared.weight' (or 'encoder.embed_tokens.weight')",
                          gtr_tensor_file(set, NULL));
    return GTR_OK;
}

gtr_status gtr_t5_tensor_list(gtr_tensor_set *set, const gtr_t5_config *cfg, gtr_t5_tensor_ref **out,
                              size_t *n, gtr_error *err)
{
    *out = NULL;
    *n = 0;
    size_t d = (size_t)cfg->d_model, inner = (size_t)cfg->num_heads * (size_t)cfg->d_kv;
    size_t emb_shape[2] = {(size_t)cfg->vocab_size, d},
           rel_shape[2] = {(size_t)cfg->num_buckets, (size_t)cfg->num_heads}, vec[1] = {d};
    size_t cap = 3 + 9 * (size_t)cfg->num_layers, k = 0, L = (size_t)cfg->num_layers;
    /* one block: the refs, then (a packed file) each layer's four matrix views and the
     * names of the Linears sliced out of them; the caller frees it all with free() */
    const size_t NAME = 96;
    size_t views_at = (cap * sizeof(gtr_t5_tensor_ref) + 63) / 64 * 64;
    size_t names_at = views_at + (set->packed ? GTR_PACKED_NMATS * L * sizeof(gtr_wmat) : 0);
    gtr_t5_tensor_ref *r = gtr_xcalloc(1, names_at + (set->packed ? cap * NAME : 0), "tensor list", err);
    if (!r) return GTR_ERR_NOMEM;
    gtr_wmat *views = (gtr_wmat *)(void *)((char *)r + views_at);
    char *names = (char *)r + names_at;
    gtr_status st;
    gtr_wtensor emb = {0};
    gtr_tensor *rel, *fin;
    layer_tensors lt;
    if ((st = find_embedding(set, emb_shape, &emb, err))) goto fail;
    r[k++] = (gtr_t5_tensor_ref){"shared.weight", GTR_T5T_EMBED, emb};
    if ((st = gtr_tensor_get(set, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                             2, rel_shape, &rel, err)) ||
        (st = gtr_tensor_get(set, "encoder.final_layer_norm.weight", 1, vec, &fin, err)))
        goto fail;
    r[k++] = (gtr_t5_tensor_ref){rel->name, GTR_T5T_VECTOR, {.w = rel}};
    r[k++] = (gtr_t5_tensor_ref){fin->name, GTR_T5T_VECTOR, {.w = fin}};
    for (int i = 0; i < cfg->num_layers; i++) {
        if ((st = get_layer(set, cfg, (int)inner, i, &lt, err))) goto fail;
        if (set->packed) { /* the Linears as row slices of the stacked matrices */
            /* transformers' names (ReLU models: one "wi") and each one's rows in its stack */
            bool gated = cfg->ff == GTR_FF_GATED_GELU;
            static const char *const lin_names[8] = {"0.SelfAttention.q", "0.SelfAttention.k",
                                                     "0.SelfAttention.v", "0.SelfAttention.o",
                                                     "1.DenseReluDense.wi_0", "1.DenseReluDense.wi_1",
                                                     "1.DenseReluDense.wo", "1.DenseReluDense.wi"};
            static const int mat_of[7] = {0, 0, 0, 1, 2, 2, 3}, slice_of[7] = {0, 1, 2, 0, 0, 1, 0};
            r[k++] = (gtr_t5_tensor_ref){lt.ln_attn->name, GTR_T5T_VECTOR, {.w = lt.ln_attn}};
            r[k++] = (gtr_t5_tensor_ref){lt.ln_ff->name, GTR_T5T_VECTOR, {.w = lt.ln_ff}};
            gtr_wmat *lv = &views[(size_t)i * GTR_PACKED_NMATS];
            for (int j = 0; j < GTR_PACKED_NMATS; j++) lv[j] = lt.pk[j];
            for (int j = 0; j < 7; j++) {
                if (j == 5 && !gated) continue;
                const gtr_wmat *pk = &lv[mat_of[j]];
                size_t parts = mat_of[j] == 0 ? 3 : mat_of[j] == 2 && gated ? 2 : 1, rows = pk->n / parts;
                char *nm = names + k * NAME, pn[160], sn[176];
                snprintf(nm, NAME, "encoder.block.%d.layer.%s.weight", i, lin_names[j == 4 && !gated ? 7 : j]);
                gtr_packed_name(pn, sizeof pn, i, mat_of[j], NULL);
                snprintf(sn, sizeof sn, "%s%s", pn, GTR_QUANT_SCALE_SUFFIX);
                r[k++] = (gtr_t5_tensor_ref){nm, GTR_T5T_LINEAR,
                                             {.w = gtr_tensor_find(set, pn),
                                              .scale = pk->type == GTR_W_INT8 ? gtr_tensor_find(set, sn) : NULL,
                                              .pk = pk, .row0 = (size_t)slice_of[j] * rows, .nrows = rows}};
            }
            continue;
        }
        const gtr_wtensor lin[7] = {lt.q, lt.k, lt.v, lt.o, lt.wi0, lt.wi1, lt.wo};
        r[k++] = (gtr_t5_tensor_ref){lt.ln_attn->name, GTR_T5T_VECTOR, {.w = lt.ln_attn}};
        r[k++] = (gtr_t5_tensor_ref){lt.ln_ff->name, GTR_T5T_VECTOR, {.w = lt.ln_ff}};
        for (int j = 0; j < 7; j++)
            if (lin[j].w) r[k++] = (gtr_t5_tensor_ref){lin[j].w->name, GTR_T5T_LINEAR, lin[j]};
    }
    static const char *const ignore[] = {"decoder.", "gtr_pad.", NULL};
    if ((st = gtr_tensor_check_unused(set, ignore, err))) goto fail;
    *out = r;
    *n = k;
    return GTR_OK;
fail:
    free(r);
    return st;
}

/* A float32 copy of a tensor in an aligned buffer, folded into the fingerprint under name. */
static gtr_status load_vec(gtr_tensor_set *set, const gtr_tensor *t, const char *name,
                           gtr_pool *pool, float **out, uint64_t *fp, gtr_error *err)
{
    *out = gtr_malloc_aligned(t->count * sizeof(float), err);
    if (!*out) return GTR_ERR_NOMEM;
    gtr_status st = gtr_tensor_to_f32(set, t, *out, pool, err);
    if (!st && (st = gtr_fingerprint_tensor(fp, pool, name, *out, t->shape[0],
                                            t->ndim > 1 ? t->count / t->shape[0] : 1, err)))
        gtr_error_prefix(err, "%s", gtr_tensor_file(set, t));
    return st;
}

/* Load buffers shared by every Linear: float32 rows (tmp) and, for int8 packing, codes (q)
 * and row scales (qs), each big enough for the largest (stacked) Linear. */
typedef struct {
    float *tmp;
    int8_t *q;
    float *qs;
    size_t floats, rows;
} load_buf;

/* load_buf's sizes: rows and floats of the largest (stacked) Linear. */
static void load_buf_dims(const gtr_t5_config *c, size_t *rows, size_t *floats)
{
    size_t d = (size_t)c->d_model, inner = (size_t)c->num_heads * (size_t)c->d_kv;
    size_t ffw = (c->ff == GTR_FF_GATED_GELU ? 2 : 1) * (size_t)c->d_ff;
    *rows = GTR_MAX(GTR_MAX(3 * inner, ffw), d);
    *floats = GTR_MAX(GTR_MAX(3 * inner, ffw) * d, d * (size_t)c->d_ff);
}

size_t gtr_t5_load_buffer_bytes(const gtr_t5_config *c, gtr_wtype wtype)
{
    size_t rows, floats;
    load_buf_dims(c, &rows, &floats);
    return floats * sizeof(float) + (wtype == GTR_W_INT8 ? floats + rows * sizeof(float) : 0);
}

/* The fingerprints of a Linear's parts, hashed inside the packing tasks (gtr_pack_visit), so
 * the file is read from memory once. Rows [r0, r1) of the stacked matrix, each part's share in
 * its own rows. In general a task hashes the fingerprint chunks that start in its rows (reading
 * on into the next task's rows where one does), then packs them from cache. Aligned (every
 * chunk whole rows of one part, every task whole chunks: the shapes of the big GTR models),
 * a task's chunks are hashed four at a time a panel of each at a step, each row's largest
 * |value| taken on the way (int8 needs it before packing the row), and the four panels are
 * packed right after, while in L2: one read of the file, no second pass for the scales. */
typedef struct {
    gtr_fp_rows fr[3];
    const gtr_tensor *t[3];
    size_t row0[3], rows[3];
    int n;
    bool aligned, int8, band;
    size_t k, nr, rc; /* row length; panel height; rows per fingerprint chunk (aligned) */
    gtr_absmax_fn absmax;
} fp_visit;

/* Band packing (aligned, a piece of the hash whole rows, at most FP_BAND_WORDS packed words a
 * row): each piece the hash converts to float32 (in L1) is packed from there, row by row, into
 * a stage of the task (GTR_PACK_BAND rows of each lane in the packed type, 32 KiB a lane at
 * most), and each lane's band goes to its panel once staged (xxl bf16 and int8: q, k, v and
 * wi, 58% of the weights). The file's values are read and converted once; the panel path
 * below reads each row a second time, from cache, and converts it again for the tiles (AMD
 * Zen 5, xxl F16 warm, alternating: int8 user time 9-14% less, bf16 5-6%; bench/RESULTS.md).
 * f32 keeps the panel path at k = 1024: its 64 KiB stages and 256 KiB panels measured no
 * faster. Longer rows keep it too: a band of them would not stay in L2, and the hash's order
 * (a chunk row after row) leaves no shorter band that the tiles (16 rows at a time) take. */
#define FP_BAND_WORDS 512

typedef struct {
    gtr_pack_task *pk;
    size_t k, words, first[4]; /* row length; stage words a row; each lane's band's first row */
    uint32_t *stage;           /* lane l's band at stage + l * GTR_PACK_BAND * words */
} band_pack;

static void band_piece(void *ctx, size_t l, const float *x, size_t pos, size_t m)
{
    band_pack *b = ctx;
    for (size_t i = 0; i < m; i += b->k) {
        size_t r = (pos + i) / b->k; /* the row within the band */
        gtr_pack_band_row(b->pk, b->first[l] + r, x + i, b->stage + (l * GTR_PACK_BAND + r) * b->words);
    }
}

static void fp_visit_fn(void *ctx, size_t r0, size_t r1, gtr_pack_task *pk)
{
    const fp_visit *v = ctx;
    if (!v->aligned) {
        for (int i = 0; i < v->n; i++) {
            size_t lo = GTR_MAX(r0, v->row0[i]), hi = GTR_MIN(r1, v->row0[i] + v->rows[i]);
            if (lo < hi) gtr_fp_rows_hash(&v->fr[i], lo - v->row0[i], hi - v->row0[i]);
        }
        gtr_pack_rows(pk, r0, r1, NULL);
        return;
    }
    const size_t k = v->k, nr = v->nr, rc = v->rc;
    _Alignas(64) float am_task[256];
    /* the band stage (no memory: the panel path, the same bytes) */
    band_pack bp = {pk, k, v->band ? gtr_pack_band_words(pk) : 0, {0, 0, 0, 0}, NULL};
    if (v->band) bp.stage = gtr_malloc_aligned(4 * GTR_PACK_BAND * bp.words * sizeof(uint32_t), NULL);
    /* the task's chunks (each whole rows of one part), in groups of up to 4 */
    for (size_t c0 = r0; c0 < r1; c0 += 4 * rc) {
        size_t lanes = GTR_MIN((size_t)4, (r1 - c0) / rc), first[4] = {0, 0, 0, 0}, start[4] = {0, 0, 0, 0};
        const gtr_tensor *t[4] = {NULL, NULL, NULL, NULL};
        int part[4] = {0, 0, 0, 0};
        uint64_t h[4], bad[4] = {0, 0, 0, 0};
        for (size_t l = 0; l < lanes; l++) {
            size_t r = c0 + l * rc;
            int i = 0;
            while (i + 1 < v->n && r >= v->row0[i] + v->rows[i]) i++;
            part[l] = i;
            t[l] = v->t[i];
            first[l] = r;
            start[l] = (r - v->row0[i]) * k;
            h[l] = GTR_FNV_SEED;
        }
        if (bp.stage) { /* a band of each chunk a step, converted once */
            for (size_t a = 0; a < rc; a += GTR_PACK_BAND) {
                for (size_t l = 0; l < lanes; l++) bp.first[l] = first[l] + a;
                gtr_fp_lanes(t, start, lanes, GTR_PACK_BAND * k, k, h, bad, NULL, NULL, band_piece, &bp);
                for (size_t l = 0; l < lanes; l++) {
                    gtr_pack_band_put(pk, first[l] + a, bp.stage + l * GTR_PACK_BAND * bp.words);
                    start[l] += GTR_PACK_BAND * k;
                }
            }
        } else if (rc >= nr) { /* a panel of each chunk a step, packed while in cache */
            _Alignas(64) float am[4][64];
            float *amax[4] = {am[0], am[1], am[2], am[3]};
            bool small = nr <= 64;
            for (size_t a = 0; a < rc; a += nr) {
                gtr_fp_lanes(t, start, lanes, nr * k, k, h, bad, v->int8 && small ? v->absmax : NULL, amax, NULL, NULL);
                for (size_t l = 0; l < lanes; l++) {
                    gtr_pack_rows(pk, first[l] + a, first[l] + a + nr, v->int8 && small ? am[l] : NULL);
                    start[l] += nr * k;
                }
            }
        } else { /* chunks shorter than a panel: the task (<= 256 rows) packed after them */
            float *amax[4];
            for (size_t l = 0; l < lanes; l++) amax[l] = am_task + (first[l] - r0);
            gtr_fp_lanes(t, start, lanes, rc * k, k, h, bad, v->int8 ? v->absmax : NULL, amax, NULL, NULL);
        }
        for (size_t l = 0; l < lanes; l++) {
            size_t c = (first[l] - v->row0[part[l]]) / rc;
            v->fr[part[l]].out[c] = h[l];
            v->fr[part[l]].bad[c] = bad[l];
        }
    }
    if (rc < nr) gtr_pack_rows(pk, r0, r1, v->int8 ? am_task : NULL);
    gtr_free_aligned(bp.stage);
}

gtr_status gtr_pack_fingerprinted(const gtr_kernels *kern, gtr_pool *pool, const gtr_tensor *const *parts,
                                  int n_parts, size_t k, gtr_wtype wtype, gtr_wmat *w, uint64_t *fp,
                                  int *bad_part, gtr_error *err)
{
    /* fingerprinted and packed straight from the file's pages (F16 converted on the way, a
     * piece at a time in cache): no float32 copy of the matrix is written and read back, and
     * the hashing runs inside the packing tasks (fp_visit_fn) */
    gtr_wsrc src[3];
    fp_visit v;
    memset(src, 0, sizeof src);
    memset(&v, 0, sizeof v);
    gtr_status st = n_parts >= 1 && n_parts <= 3 ? GTR_OK : gtr_seterr(err, GTR_ERR_INTERNAL, "1 to 3 parts");
    size_t rows = 0;
    for (int i = 0; i < n_parts && !st; i++) {
        const gtr_tensor *t = parts[i];
        src[i].data = t->data;
        src[i].rows = t->shape[0];
        src[i].type = gtr_tensor_src_type(t);
        v.row0[i] = rows;
        v.rows[i] = t->shape[0];
        rows += t->shape[0];
        v.t[i] = t;
        if (!(st = gtr_fp_rows_init(&v.fr[i], t, k, err))) v.n = i + 1;
    }
    if (!st) {
        size_t threads = (size_t)gtr_pool_size(pool), nr = gtr_wmat_panel_rows(kern, wtype);
        size_t per_chunks = (4 * GTR_FP_CHUNK + k - 1) / k, per_thread = (rows + threads - 1) / threads;
        gtr_pack_visit visit = {GTR_MAX((size_t)256, GTR_MIN(per_chunks, per_thread)), fp_visit_fn, &v};
        v.k = k;
        v.nr = nr;
        v.int8 = wtype == GTR_W_INT8;
        v.absmax = gtr_absmax_for_cpu();
        /* aligned: chunks of whole rows (rc of them), every part whole chunks, tasks of
         * whole chunks (up to 4 each, fewer when the threads would have too few tasks) */
        if (GTR_FP_CHUNK % k == 0 && nr <= 64) {
            size_t rc = GTR_FP_CHUNK / k, chunks = rows / rc, lanes = GTR_MIN((size_t)4, (chunks + threads - 1) / threads);
            size_t task = GTR_MAX((size_t)1, lanes) * rc;
            task = (task + nr - 1) / nr * nr;
            bool ok = (rc % nr == 0 || (nr % rc == 0 && task <= 256)) && task % rc == 0;
            for (int i = 0; i < n_parts && ok; i++) ok = v.rows[i] % rc == 0;
            if (ok) {
                v.aligned = true;
                v.rc = rc;
                visit.task_rows = task;
                size_t lnr, kp;
                gtr_wmat_layout(kern, wtype, k, &lnr, &kp);
                v.band = GTR_FP_PIECE % k == 0 && kp / gtr_wmat_kgroup(wtype) <= FP_BAND_WORDS && rc % nr == 0 &&
                         nr % GTR_PACK_BAND == 0;
            }
        }
        st = gtr_wmat_pack_src_visit(kern, pool, w, src, (size_t)n_parts, k, wtype, &visit, err);
    }
    for (int i = 0; i < v.n; i++) {
        const gtr_tensor *t = parts[i];
        if (st) gtr_fp_rows_free(&v.fr[i]);
        else if ((st = gtr_fp_rows_end(&v.fr[i], fp, t->name, t->shape[0], k, err)) && bad_part) *bad_part = i;
    }
    if (st) gtr_wmat_free(w);
    return st;
}

/* Pack the row-wise concatenation of parts (each [rows_i, k]) as one weight matrix. Every
 * part is fingerprinted as float32 (dequantised when stored as int8: the fingerprint depends
 * on the values, not the file format). INT8 packing takes stored codes and scales as they
 * are and quantises float parts with gtr_quantize_rows_int8 — exactly what packing the
 * float32 original does — so a `gtr quantize` directory computes bit for bit like its source. */
static gtr_status load_linear(gtr_tensor_set *set, const gtr_wtensor *parts, int n_parts,
                              const gtr_kernels *kern, gtr_wtype wtype, gtr_pool *pool,
                              load_buf *b, gtr_wmat *w, uint64_t *fp, gtr_error *err)
{
    size_t rows = 0, k = gtr_wtensor_cols(&parts[0]);
    bool stored_codes = false; /* any part already int8 (an older `gtr quantize` file) */
    bool direct = n_parts <= 3; /* every part a contiguous float tensor: packed from the mapping */
    for (int i = 0; i < n_parts; i++) {
        stored_codes |= parts[i].scale != NULL;
        direct = direct && !parts[i].scale && !parts[i].pk && gtr_tensor_contiguous(parts[i].w);
    }
    if (direct) {
        const gtr_tensor *t[3] = {NULL, NULL, NULL};
        for (int i = 0; i < n_parts; i++) t[i] = parts[i].w;
        int bad = -1;
        gtr_status st = gtr_pack_fingerprinted(kern, pool, t, n_parts, k, wtype, w, fp, &bad, err);
        if (st && bad >= 0) gtr_error_prefix(err, "%s", gtr_tensor_file(set, t[bad]));
        for (int i = 0; i < n_parts; i++) gtr_wtensor_drop(set, &parts[i]);
        return st;
    }
    for (int i = 0; i < n_parts; i++) {
        const gtr_wtensor *p = &parts[i];
        size_t pr = gtr_wtensor_rows(p);
        float *dst = b->tmp + rows * k;
        gtr_status st = gtr_wtensor_rows_f32(set, p, 0, pr, dst, pool, err);
        if (st) return st;
        if ((st = gtr_fingerprint_tensor(fp, pool, p->w->name, dst, pr, k, err)))
            return gtr_error_prefix(err, "%s", gtr_tensor_file(set, p->w));
        if (wtype == GTR_W_INT8 && stored_codes) {
            if (p->scale) st = gtr_wtensor_rows_q8(set, p, 0, pr, b->q + rows * k, b->qs + rows, err);
            else gtr_quantize_rows_int8(dst, pr, k, b->q + rows * k, b->qs + rows);
            if (st) return st;
        }
        gtr_wtensor_drop(set, p);
        rows += pr;
    }
    if (wtype == GTR_W_INT8 && stored_codes) return gtr_wmat_pack_int8(kern, w, b->q, b->qs, rows, k, err);
    /* float parts: rounded / quantised and packed on every thread (the same per-row
     * gtr_quantize_rows_int8 as above, so the result does not depend on the threads) */
    return gtr_wmat_pack_pool(kern, pool, w, b->tmp, rows, k, wtype, err);
}

/* Rows of the embedding in bf16 or int8 from float32 (tasks of EMBED_ROWS rows; the same
 * per-row rounding as one thread, so the table does not depend on the thread count). */
#define EMBED_ROWS 64
typedef struct {
    const float *src;
    size_t d, n;
    gtr_wtype type;
    void *dst;
    float *scale;
} embed_conv_job;

static void embed_conv_task(void *ctx, size_t c, int tid)
{
    (void)tid;
    const embed_conv_job *j = ctx;
    size_t r0 = c * EMBED_ROWS, rows = GTR_MIN((size_t)EMBED_ROWS, j->n - r0), d = j->d;
    if (j->type == GTR_W_BF16) {
        uint16_t *e = (uint16_t *)j->dst + r0 * d;
        for (size_t i = 0; i < rows * d; i++) e[i] = gtr_bf16_daz(j->src[r0 * d + i]);
    } else {
        gtr_quantize_rows_int8(j->src + r0 * d, rows, d, (int8_t *)j->dst + r0 * d, j->scale + r0);
    }
}

/* The embedding table in the compute precision, converted a block of rows at a time through
 * b->tmp so no float32 copy of the whole table ever exists (the fingerprint is streamed over
 * the same float32 rows, so it equals hashing the whole float32 table). */
static gtr_status load_embedding(gtr_t5 *m, gtr_tensor_set *set, const gtr_wtensor *emb,
                                 gtr_wtype wtype, gtr_pool *pool, load_buf *b, uint64_t *fp,
                                 gtr_error *err)
{
    size_t V = gtr_wtensor_rows(emb), d = gtr_wtensor_cols(emb);
    size_t esz = wtype == GTR_W_F32 ? 4 : wtype == GTR_W_BF16 ? 2 : 1;
    m->embed_type = wtype;
    bool stored_ok;
    if (set->packed && gtr_packed_wtype(emb->w->dtype, &stored_ok) == wtype && stored_ok &&
        ((uintptr_t)emb->w->data & 63) == 0 && (!emb->scale || ((uintptr_t)emb->scale->data & 3) == 0)) {
        /* a packed file stores the table exactly as computed with (gtr_bf16_daz bits, or
         * gtr_quantize_rows_int8 codes and scales): used in place, like the Linear weights */
        gtr_status st;
        if (emb->scale && (st = gtr_packed_check_scales(set, emb->scale, V, err))) return st;
        m->embed = (void *)(uintptr_t)emb->w->data;
        m->embed_scale = emb->scale ? (float *)(uintptr_t)emb->scale->data : NULL;
        m->embed_borrowed = true;
        m->mapped_bytes += V * d * esz + (emb->scale ? V * sizeof(float) : 0);
        return GTR_OK;
    }
    if (wtype == GTR_W_F32 && !emb->scale) { /* float32 to float32: straight into the table */
        float *e = NULL;
        gtr_status st = load_vec(set, emb->w, "shared.weight", pool, &e, fp, err);
        m->embed = e;
        return st;
    }
    if (!(m->embed = gtr_malloc_aligned(V * d * esz, err))) return GTR_ERR_NOMEM;
    if (wtype == GTR_W_INT8 && !(m->embed_scale = gtr_malloc_aligned(V * sizeof(float), err)))
        return GTR_ERR_NOMEM;
    /* rows per block: an even count (the streamed fingerprint needs even pieces) */
    size_t R = b->floats / d;
    R = R > 2 ? R & ~(size_t)1 : 2;
    gtr_fp_stream f;
    gtr_fp_begin(&f, *fp, "shared.weight", V, d);
    for (size_t r0 = 0; r0 < V; r0 += R) {
        size_t n = GTR_MIN(R, V - r0);
        gtr_status st = gtr_wtensor_rows_f32(set, emb, r0, n, b->tmp, pool, err);
        if (st) return st;
        gtr_fp_feed(&f, pool, b->tmp, n * d);
        if (wtype == GTR_W_F32) {
            memcpy((float *)m->embed + r0 * d, b->tmp, n * d * sizeof(float));
        } else if (emb->scale && wtype == GTR_W_INT8) { /* stored codes: as they are */
            if ((st = gtr_wtensor_rows_q8(set, emb, r0, n, (int8_t *)m->embed + r0 * d, m->embed_scale + r0, err)))
                return st;
        } else { /* rounded / quantised row by row on every thread */
            embed_conv_job j = {b->tmp, d, n, wtype, (char *)m->embed + r0 * d * esz,
                           m->embed_scale ? m->embed_scale + r0 : NULL};
            gtr_pool_for(pool, (n + EMBED_ROWS - 1) / EMBED_ROWS, embed_conv_task, &j);
        }
    }
    gtr_wtensor_drop(set, emb);
    gtr_status st = gtr_fp_end(&f, fp, err);
    if (st) gtr_error_prefix(err, "%s", gtr_tensor_file(set, emb->w));
    return st;
}

gtr_status gtr_t5_load(gtr_t5 *m, const gtr_t5_config *cfg, gtr_tensor_set *set,
                       const gtr_kernels *kern, gtr_wtype wtype, gtr_pool *pool, uint64_t *fp,
                       gtr_error *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->inner = cfg->num_heads * cfg->d_kv;
    size_t d = (size_t)cfg->d_model, V = (size_t)cfg->vocab_size;
    size_t emb_shape[2] = {V, d}, rel_shape[2] = {(size_t)cfg->num_buckets, (size_t)cfg->num_heads},
           vec[1] = {d};
    gtr_status st;
    layer_tensors *lts = NULL;
    load_buf b = {0};

    /* 1. Look everything up and check shapes before converting anything (fail fast). */
    if (set->packed && !set->has_source_fp) {
        st = gtr_seterr(err, GTR_ERR_FORMAT,
                        "%s: packed weights without __metadata__ \"gtr_source_fingerprint\" (not written "
                        "by gtr quantize?)", gtr_tensor_file(set, NULL));
        goto fail;
    }
    gtr_wtensor emb = {0};
    gtr_tensor *rel, *fin;
    if ((st = find_embedding(set, emb_shape, &emb, err))) goto fail;
    if ((st = gtr_tensor_get(set, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                             2, rel_shape, &rel, err)) ||
        (st = gtr_tensor_get(set, "encoder.final_layer_norm.weight", 1, vec, &fin, err)))
        goto fail;
    lts = gtr_xcalloc((size_t)cfg->num_layers, sizeof *lts, "layers", err);
    m->layers = gtr_xcalloc((size_t)cfg->num_layers, sizeof *m->layers, "layers", err);
    if (!lts || !m->layers) {
        st = GTR_ERR_NOMEM;
        goto fail;
    }
    for (int i = 0; i < cfg->num_layers; i++)
        if ((st = get_layer(set, cfg, m->inner, i, &lts[i], err))) goto fail;
    /* transformers' T5EncoderModel ignores decoder weights of a full T5 checkpoint; a packed
     * file's pads only align the next tensor */
    static const char *const ignore[] = {"decoder.", "gtr_pad.", NULL};
    if ((st = gtr_tensor_check_unused(set, ignore, err))) goto fail;

    /* 2. Convert: vectors directly, the embedding and the Linear weights through one set of
     * buffers (the largest Linear) into the compute precision. Each source tensor's file
     * pages are dropped once converted. */
    load_buf_dims(cfg, &b.rows, &b.floats);
    b.tmp = gtr_malloc_aligned(b.floats * sizeof(float), err);
    if (wtype == GTR_W_INT8) {
        b.q = gtr_malloc_aligned(b.floats, err);
        b.qs = gtr_malloc_aligned(b.rows * sizeof(float), err);
    }
    if (!b.tmp || (wtype == GTR_W_INT8 && (!b.q || !b.qs))) {
        st = GTR_ERR_NOMEM;
        goto fail;
    }
    if ((st = load_embedding(m, set, &emb, wtype, pool, &b, fp, err)) ||
        (st = load_vec(set, rel, rel->name, pool, &m->rel_bias, fp, err)) ||
        (st = load_vec(set, fin, fin->name, pool, &m->final_ln, fp, err)))
        goto fail;
    m->n_params = V * d + rel->count + d;
    m->bytes = V * d * (wtype == GTR_W_F32 ? 4 : wtype == GTR_W_BF16 ? 2 : 1) +
               (wtype == GTR_W_INT8 ? V * sizeof(float) : 0) + (rel->count + d) * sizeof(float);
    for (int i = 0; i < cfg->num_layers; i++) {
        layer_tensors *lt = &lts[i];
        gtr_t5_layer *l = &m->layers[i];
        gtr_wtensor qkv[3] = {lt->q, lt->k, lt->v}, wi[2] = {lt->wi0, lt->wi1};
        if ((st = load_vec(set, lt->ln_attn, lt->ln_attn->name, pool, &l->ln_attn, fp, err)) ||
            (st = load_vec(set, lt->ln_ff, lt->ln_ff->name, pool, &l->ln_ff, fp, err)))
            goto fail;
        if (set->packed) {
            gtr_wmat *dst[GTR_PACKED_NMATS] = {&l->qkv, &l->o, &l->wi, &l->wo};
            for (int j = 0; j < GTR_PACKED_NMATS; j++) {
                bool in_place;
                if ((st = gtr_packed_load(&lt->pk[j], kern, wtype, pool, b.tmp, dst[j], &in_place, err))) {
                    gtr_error_prefix(err, "%s", gtr_tensor_file(set, NULL));
                    goto fail;
                }
                if (in_place) {
                    m->mapped_bytes += dst[j]->bytes;
                } else { /* converted or repacked: its file pages are done with, like the F16 path's */
                    const gtr_wmat *v = &lt->pk[j];
                    size_t rows = (v->n + v->nr - 1) / v->nr * v->nr;
                    gtr_tensor_set_drop_range(set, v->data, rows * v->kp * gtr_wmat_esize(v->type));
                    if (v->scales) gtr_tensor_set_drop_range(set, v->scales, rows * sizeof(float));
                    if (v->colsum) gtr_tensor_set_drop_range(set, v->colsum, rows * sizeof(int32_t));
                }
            }
        } else if ((st = load_linear(set, qkv, 3, kern, wtype, pool, &b, &l->qkv, fp, err)) ||
            (st = load_linear(set, &lt->o, 1, kern, wtype, pool, &b, &l->o, fp, err)) ||
            (st = load_linear(set, wi, lt->wi1.w ? 2 : 1, kern, wtype, pool, &b, &l->wi, fp, err)) ||
            (st = load_linear(set, &lt->wo, 1, kern, wtype, pool, &b, &l->wo, fp, err)))
            goto fail;
        m->n_params += 2 * d + l->qkv.n * l->qkv.k + l->o.n * l->o.k + l->wi.n * l->wi.k +
                       l->wo.n * l->wo.k;
        m->bytes += 2 * d * sizeof(float) + l->qkv.bytes + l->o.bytes + l->wi.bytes + l->wo.bytes;
    }
    /* in-place weights point into the set's mappings: the model keeps them */
    if (m->mapped_bytes && (st = gtr_packed_keep_maps(m, set, err))) goto fail;
    gtr_free_aligned(b.tmp);
    gtr_free_aligned(b.q);
    gtr_free_aligned(b.qs);
    free(lts);
    return GTR_OK;
fail:
    gtr_free_aligned(b.tmp);
    gtr_free_aligned(b.q);
    gtr_free_aligned(b.qs);
    free(lts);
    gtr_t5_free(m);
    return st;
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
