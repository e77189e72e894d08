/* pack.c — packing weight matrices into the panel layout of the chosen kernels (one time, at
 * load), and the int8 weight quantisation. The layout (see gtr_wmat in kernels.h) makes the
 * micro-kernels' weight reads one contiguous stream: panel p, k-group kq holds nr columns of
 * g consecutive k values, exactly what one vector load feeds to vfmadd/vdpbf16ps/vpdpbusd. */
#include "kernels/kernels_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static const size_t kgroup[GTR_W_NTYPES] = {1, 2, 4};
static const size_t esize[GTR_W_NTYPES] = {4, 2, 1};

/* Index of element (column j of panel p, k) in the packed array. */
static inline size_t pidx(size_t p, size_t j, size_t k, size_t nr, size_t kp, size_t g)
{
    return ((p * (kp / g) + k / g) * nr + j) * g + k % g;
}

/* The f32 k block, the weight prefetch and the rows per linear task for this CPU (CPUID once
 * per matrix, at load). bytes: the packed weights. */
static void cpu_choices(gtr_wmat *w, gtr_wtype type, size_t k, size_t bytes)
{
    gtr_cpu_caches caches = gtr_cpu_caches_detect();
    gtr_blocking b = gtr_blocking_for(&caches, k);
    if (type == GTR_W_F32) w->kc = b.linear_kc;
    w->no_prefetch = !b.linear_prefetch;
    w->mc = gtr_linear_task_rows(&caches, bytes);
}

/* Allocate the packed storage; zero: zeroed (padding must contribute nothing), else the
 * caller writes every byte of data (the scales and sums are zeroed either way). */
static gtr_status alloc_layout(const gtr_kernels *kern, gtr_wmat *w, size_t n, size_t k,
                               gtr_wtype type, bool zero, gtr_error *err)
{
    memset(w, 0, sizeof *w);
    if ((unsigned)type >= GTR_W_NTYPES)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown weight type %d", (int)type);
    if (n == 0 || k == 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "empty weight matrix [%zu, %zu]", n, k);
    size_t nr, kp;
    gtr_wmat_layout(kern, type, k, &nr, &kp);
    size_t np = (n + nr - 1) / nr;
    size_t elems, bytes;
    if (k > SIZE_MAX / 8 || !gtr_mul_ok(np * nr, kp, &elems) ||
        !gtr_mul_ok(elems, esize[type], &bytes))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "weight matrix [%zu, %zu] too large", n, k);
    w->data = zero ? gtr_calloc_aligned(bytes, err) : gtr_malloc_aligned(bytes, err);
    if (!w->data) return GTR_ERR_NOMEM;
    w->bytes = bytes;
    if (type == GTR_W_INT8) {
        w->scales = gtr_xcalloc(np * nr, sizeof(float), "int8 weight scales", err);
        w->colsum = gtr_xcalloc(np * nr, sizeof(int32_t), "int8 weight sums", err);
        if (!w->scales || !w->colsum) {
            gtr_wmat_free(w);
            return GTR_ERR_NOMEM;
        }
        w->bytes += np * nr * (sizeof(float) + sizeof(int32_t));
    }
    cpu_choices(w, type, k, w->bytes);
    w->n = n;
    w->k = k;
    w->type = type;
    w->nr = nr;
    w->kp = kp;
    return GTR_OK;
}

float gtr_generic_absmax(const float *x, size_t n)
{
    float amax = 0;
    for (size_t c = 0; c < n; c++) {
        float t = fabsf(x[c]);
        if (t > amax) amax = t;
    }
    return amax;
}

void gtr_generic_pack_piece(gtr_wtype type, const float *x, size_t in, size_t nv, float inv,
                            void *dst, int32_t *sum)
{
    if (type == GTR_W_F32) {
        memcpy(dst, x, in * sizeof(float));
        memset((float *)dst + in, 0, (nv - in) * sizeof(float));
    } else if (type == GTR_W_BF16) {
        uint16_t *d = dst;
        for (size_t i = 0; i < in; i++) d[i] = gtr_bf16_daz(x[i]);
        for (size_t i = in; i < nv; i++) d[i] = 0;
    } else {
        int8_t *d = dst;
        int32_t s = 0;
        for (size_t i = 0; i < in; i++) {
            d[i] = (int8_t)gtr_q8(x[i] * inv);
            s += d[i];
        }
        for (size_t i = in; i < nv; i++) d[i] = 0;
        *sum += s;
    }
}

void gtr_quantize_rows_int8(const float *W, size_t n, size_t k, int8_t *q, float *scales)
{
    for (size_t r = 0; r < n; r++) {
        const float *row = W + r * k;
        float inv;
        gtr_q8_scale(gtr_generic_absmax(row, k), &scales[r], &inv);
        for (size_t c = 0; c < k; c++) q[r * k + c] = (int8_t)gtr_q8(row[c] * inv);
    }
}

/* Lay out one quantised row r and remember its scale and sum. */
static void put_int8_row(gtr_wmat *w, size_t r, const int8_t *q, float scale)
{
    int8_t *d = w->data;
    size_t p = r / w->nr, j = r % w->nr;
    int32_t sum = 0;
    for (size_t c = 0; c < w->k; c++) {
        int8_t v = q[c] < -127 ? -127 : q[c]; /* -128 would break the AVX2 sign trick */
        d[pidx(p, j, c, w->nr, w->kp, 4)] = v;
        sum += v;
    }
    w->scales[r] = scale;
    w->colsum[r] = sum;
}

/* Pack panels [p0, p1) of the rows (all of a panel's rows: panels never share bytes, so
 * threads packing different panels write disjoint memory). Whatever the type, a k group of
 * one row is 4 bytes (1 float32, 2 bf16, 4 int8 values), so a panel is a [kp/g][nr] array of
 * 4-byte words: it is written a tile of PIECE_WORDS k groups x nr rows at a time (64 KiB at
 * nr 64, in L2), each row's piece of PIECE_WORDS * g values read from its source (converted
 * to float32 in a small buffer when stored as F16/BF16), converted to the packed type and
 * spread over the tile's rows of words. The same number of words for every type, so int8
 * reads 2 KiB of an F16 row a step rather than 512 bytes (AMD Zen 5, xxl's o and wo from F16:
 * 10-20% less user time to int8, 0-10% to bf16). A row-at-a-time walk instead touches every cache
 * line of the panel per row (for k = 65536, 16 MiB per panel: the loads of the big models
 * spent most of their time there). Every byte of the panel is written, padding included, so
 * the storage need not be zeroed. */
typedef struct {
    gtr_wmat *w;
    const gtr_wsrc *parts;
    size_t n_parts;
    bool nomem;
    float (*absmax)(const float *x, size_t n);
    void (*piece)(gtr_wtype type, const float *x, size_t in, size_t nv, float inv, void *dst,
                  int32_t *sum);
    size_t task_panels; /* panels per task */
    const gtr_pack_visit *visit;
    /* AVX-512: a tile's rows staged 16 at a time and written transposed, a whole cache line
     * a store (gtr_avx512_tile_put16: xl F16 -> f32 on an Intel Xeon 2.3 -> 1.6 s; xxl F16 ->
     * int8 on AMD Zen 5 warm 5.3-7.7 -> 4.2-5.4 s); NULL: each row's words stored one by one */
    void (*put16)(unsigned char *tile, size_t nr, size_t i0, const uint32_t *stage, size_t stride, size_t nw);
    /* set when an F16 source value converted was an infinity or NaN (the conversion reports it
     * for free; gtr_wmat_pack_src_finite), by any task: relaxed, only read after the pool */
    atomic_int nonfinite;
} pack_job;

#define PACK_PANELS 4 /* panels per task */
#define PIECE_WORDS GTR_PACK_STAGE_WORDS /* packed words of a row per tile (256) */
#define PIECE (PIECE_WORDS * 4)           /* the most values a row's piece has (int8) */

/* Row r of the parts: its bytes and their type. */
static const unsigned char *src_row(const pack_job *j, size_t r, gtr_src_type *type)
{
    static const size_t es[] = {4, 2, 2};
    size_t i = 0;
    while (i + 1 < j->n_parts && r >= j->parts[i].rows) r -= j->parts[i++].rows;
    *type = j->parts[i].type;
    return (const unsigned char *)j->parts[i].data + r * j->w->k * es[*type];
}

/* Values [c0, c0 + m) of a source row as float32: in place when it is aligned float32, else
 * converted into buf (m <= PIECE). */
static const float *src_values(pack_job *j, const unsigned char *row, gtr_src_type type, size_t c0, size_t m,
                               float *buf)
{
    if (type == GTR_SRC_F16) {
        if (gtr_f16_to_f32_n(row + 2 * c0, buf, m)) atomic_store_explicit(&j->nonfinite, 1, memory_order_relaxed);
    } else if (type == GTR_SRC_BF16) {
        const unsigned char *p = row + 2 * c0;
        for (size_t i = 0; i < m; i++) buf[i] = gtr_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else {
        const unsigned char *p = row + 4 * c0;
        if (((uintptr_t)p & 3) == 0) return (const float *)(const void *)p;
        memcpy(buf, p, m * sizeof(float));
    }
    return buf;
}

/* The whole pages of [p, p + len) made present and writable in one call, before they are
 * written: fresh memory otherwise takes a page fault per 4 KiB (on a VM measured at 2 GB/s of
 * fresh writes, against 3 GB/s populated, and 25+ GB/s once present), the largest cost left in
 * converting a big model. Each thread populates its own panels. Best effort: a kernel without
 * MADV_POPULATE_WRITE (before Linux 5.14) faults the pages in as they are written. */
static void populate(void *p, size_t len)
{
#if defined(MADV_POPULATE_WRITE)
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095, e = ((uintptr_t)p + len) & ~(uintptr_t)4095;
    if (e > a + 4096) (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)len;
#endif
}

struct gtr_pack_task {
    pack_job *j;
    float *inv; /* INT8: the task's rows' 1 / scale, nr of them */
};

/* Row i of panel p, packed words [c0 / g, c0 / g + nw) of it into dst (zeros for a row past the
 * matrix); in: how many of the words' values lie inside the row (k); inv: the panel's rows'
 * 1 / scale (INT8, whose column sums it adds to), or NULL. */
static void pack_row_piece(pack_job *j, size_t p, size_t i, size_t rows, size_t c0, size_t nw, size_t in,
                           const float *inv, float *vals, void *dst)
{
    gtr_wmat *w = j->w;
    const size_t nr = w->nr, k = w->k, g = kgroup[w->type];
    if (i >= rows) {
        memset(dst, 0, nw * 4);
        return;
    }
    int32_t sum = 0;
    gtr_src_type st;
    const unsigned char *row = src_row(j, p * nr + i, &st);
    /* the row's piece of the next tile, a tile ahead: the hardware prefetcher does not follow
     * nr streams at once */
    size_t es = st == GTR_SRC_F32 ? 4 : 2, next = c0 + nw * g;
    if (next < k)
        for (size_t b = 0; b < GTR_MIN(PIECE_WORDS * g, k - next) * es; b += 64) __builtin_prefetch(row + next * es + b);
    j->piece(w->type, in ? src_values(j, row, st, c0, in, vals) : vals, in, nw * g, inv ? inv[i] : 0.0f, dst, &sum);
    if (inv) w->colsum[p * nr + i] += sum;
}

/* Pack panels [p0, p1); amax: the rows' largest |value| from row p0 * nr on, or NULL. */
static void pack_panels(gtr_pack_task *pk, size_t p0, size_t p1, const float *amax)
{
    pack_job *j = pk->j;
    gtr_wmat *w = j->w;
    const size_t nr = w->nr, k = w->k, n = w->n, g = kgroup[w->type], kw = w->kp / g, words = PIECE_WORDS;
    float *inv = pk->inv;
    _Alignas(64) float vals[PIECE];
    _Alignas(64) unsigned char buf[PIECE_WORDS * 4]; /* a row piece in the packed type */
    for (size_t p = p0; p < p1; p++) {
        size_t rows = GTR_MIN(nr, n - p * nr);
        gtr_src_type st;
        if (inv)
            for (size_t i = 0; i < rows; i++) {
                float a = 0;
                if (amax) {
                    a = amax[(p - p0) * nr + i];
                } else {
                    const unsigned char *row = src_row(j, p * nr + i, &st);
                    for (size_t c0 = 0; c0 < k; c0 += PIECE) {
                        size_t m = GTR_MIN((size_t)PIECE, k - c0);
                        float x = j->absmax(src_values(j, row, st, c0, m, vals), m);
                        if (x > a) a = x;
                    }
                }
                gtr_q8_scale(a, &w->scales[p * nr + i], &inv[i]);
            }
        unsigned char *panel = (unsigned char *)w->data + p * kw * nr * 4;
        populate(panel, kw * nr * 4);
        for (size_t q0 = 0; q0 < kw; q0 += words) {
            size_t nw = GTR_MIN(words, kw - q0), c0 = q0 * g, in = c0 < k ? GTR_MIN(nw * g, k - c0) : 0;
            unsigned char *tile = panel + q0 * nr * 4;
            if (j->put16 && nr % 16 == 0) {
                _Alignas(64) uint32_t stage[16 * GTR_PACK_STAGE_WORDS];
                for (size_t i0 = 0; i0 < nr; i0 += 16) {
                    for (size_t i = i0; i < i0 + 16; i++)
                        pack_row_piece(j, p, i, rows, c0, nw, in, inv, vals,
                                       stage + (i - i0) * GTR_PACK_STAGE_WORDS);
                    j->put16(tile, nr, i0, stage, GTR_PACK_STAGE_WORDS, nw);
                }
                continue;
            }
            for (size_t i = 0; i < nr; i++) {
                pack_row_piece(j, p, i, rows, c0, nw, in, inv, vals, buf);
                for (size_t q = 0; q < nw; q++) memcpy(tile + (q * nr + i) * 4, buf + q * 4, 4);
            }
        }
    }
}

void gtr_pack_rows(gtr_pack_task *pk, size_t r0, size_t r1, const float *amax)
{
    size_t nr = pk->j->w->nr;
    pack_panels(pk, r0 / nr, (r1 + nr - 1) / nr, pk->inv ? amax : NULL);
}

size_t gtr_pack_band_words(const gtr_pack_task *pk) { return pk->j->w->kp / kgroup[pk->j->w->type]; }

void gtr_pack_band_row(gtr_pack_task *pk, size_t r, const float *x, uint32_t *stage)
{
    pack_job *j = pk->j;
    gtr_wmat *w = j->w;
    float inv = 0.0f;
    if (w->type == GTR_W_INT8) gtr_q8_scale(j->absmax(x, w->k), &w->scales[r], &inv);
    /* the whole row in one piece: the same values as pack_panels' tiles of PIECE (the words
     * past k zero, an int8 row's sum the same integers added in another order) */
    int32_t sum = 0;
    j->piece(w->type, x, w->k, w->kp, inv, stage, &sum);
    if (w->type == GTR_W_INT8) w->colsum[r] += sum;
}

void gtr_pack_band_put(gtr_pack_task *pk, size_t r0, const uint32_t *stage)
{
    pack_job *j = pk->j;
    gtr_wmat *w = j->w;
    const size_t nr = w->nr, kw = w->kp / kgroup[w->type], i0 = r0 % nr;
    unsigned char *panel = (unsigned char *)w->data + r0 / nr * kw * nr * 4;
    if (i0 == 0) populate(panel, kw * nr * 4); /* the panel's first band: as pack_panels does */
    if (j->put16 && nr % 16 == 0 && i0 % 16 == 0) {
        j->put16(panel, nr, i0, stage, kw, kw);
        return;
    }
    for (size_t i = 0; i < GTR_PACK_BAND; i++)
        for (size_t q = 0; q < kw; q++) memcpy(panel + (q * nr + i0 + i) * 4, stage + i * kw + q, 4);
}

static void pack_task(void *ctx, size_t t, int tid)
{
    (void)tid;
    pack_job *j = ctx;
    gtr_wmat *w = j->w;
    const size_t nr = w->nr, n = w->n;
    const size_t p0 = t * j->task_panels, p1 = GTR_MIN(p0 + j->task_panels, (n + nr - 1) / nr);
    gtr_pack_task pk = {j, NULL};
    if (w->type == GTR_W_INT8 && !(pk.inv = malloc(nr * sizeof *pk.inv))) {
        j->nomem = true;
        return;
    }
    if (j->visit) j->visit->fn(j->visit->ctx, p0 * nr, GTR_MIN(n, p1 * nr), &pk);
    else pack_panels(&pk, p0, p1, NULL);
    free(pk.inv);
}

size_t gtr_wmat_panel_rows(const gtr_kernels *kern, gtr_wtype type)
{
    return (unsigned)type < GTR_W_NTYPES ? kern->nr[type] : 1;
}

gtr_absmax_fn gtr_absmax_for_cpu(void)
{
#if defined(__x86_64__)
    gtr_cpu cpu = gtr_cpu_detect();
    if (cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl) return gtr_avx512_absmax;
#endif
    return gtr_generic_absmax;
}

static gtr_status pack_src(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                           size_t n_parts, size_t k, gtr_wtype type, const gtr_pack_visit *visit,
                           bool *nonfinite, gtr_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < n_parts; i++) n += parts[i].rows;
    gtr_status st = alloc_layout(kern, w, n, k, type, false, err);
    if (st != GTR_OK) return st;
    pack_job j = {w, parts, n_parts, false, gtr_generic_absmax, gtr_generic_pack_piece, PACK_PANELS, NULL, NULL, 0};
    if (visit && visit->fn) {
        j.visit = visit;
        j.task_panels = GTR_MAX((size_t)1, (visit->task_rows + w->nr - 1) / w->nr);
    }
#if defined(__x86_64__)
    gtr_cpu cpu = gtr_cpu_detect(); /* the CPU's, not kern's: the file layout packs anywhere */
    if (cpu.avx512f && cpu.avx512bw && cpu.avx512dq && cpu.avx512vl) {
        j.absmax = gtr_avx512_absmax;
        j.piece = cpu.avx512_bf16 ? gtr_avx512bf16_pack_piece : gtr_avx512_pack_piece;
        j.put16 = gtr_avx512_tile_put16;
    }
#endif
    size_t per = j.task_panels * w->nr;
    gtr_pool_for(pool, (n + per - 1) / per, pack_task, &j);
    if (j.nomem) {
        gtr_wmat_free(w);
        return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory (int8 quantisation row)");
    }
    if (nonfinite) *nonfinite = atomic_load_explicit(&j.nonfinite, memory_order_relaxed) != 0;
    return GTR_OK;
}

gtr_status gtr_wmat_pack_src_visit(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                                   size_t n_parts, size_t k, gtr_wtype type, const gtr_pack_visit *visit,
                                   gtr_error *err)
{
    return pack_src(kern, pool, w, parts, n_parts, k, type, visit, NULL, err);
}

gtr_status gtr_wmat_pack_src(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                             size_t n_parts, size_t k, gtr_wtype type, gtr_error *err)
{
    return pack_src(kern, pool, w, parts, n_parts, k, type, NULL, NULL, err);
}

gtr_status gtr_wmat_pack_src_finite(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const gtr_wsrc *parts,
                                    size_t n_parts, size_t k, gtr_wtype type, bool *nonfinite, gtr_error *err)
{
    return pack_src(kern, pool, w, parts, n_parts, k, type, NULL, nonfinite, err);
}

gtr_status gtr_wmat_pack_pool(const gtr_kernels *kern, gtr_pool *pool, gtr_wmat *w, const float *W,
                              size_t n, size_t k, gtr_wtype type, gtr_error *err)
{
    gtr_wsrc all = {W, n, GTR_SRC_F32};
    return gtr_wmat_pack_src(kern, pool, w, &all, 1, k, type, err);
}

gtr_status gtr_wmat_pack(const gtr_kernels *kern, gtr_wmat *w, const float *W, size_t n, size_t k,
                         gtr_wtype type, gtr_error *err)
{
    return gtr_wmat_pack_pool(kern, NULL, w, W, n, k, type, err);
}

gtr_status gtr_wmat_pack_bf16(const gtr_kernels *kern, gtr_wmat *w, const uint16_t *W, size_t n,
                              size_t k, gtr_error *err)
{
    gtr_status st = alloc_layout(kern, w, n, k, GTR_W_BF16, true, err);
    if (st != GTR_OK) return st;
    uint16_t *d = w->data;
    for (size_t r = 0; r < n; r++)
        for (size_t c = 0; c < k; c++) {
            uint16_t v = W[r * k + c];
            if ((v & 0x7f80u) == 0) v &= 0x8000u; /* denormal -> zero, as the hardware reads it */
            d[pidx(r / w->nr, r % w->nr, c, w->nr, w->kp, 2)] = v;
        }
    return GTR_OK;
}

gtr_status gtr_wmat_pack_int8(const gtr_kernels *kern, gtr_wmat *w, const int8_t *q,
                              const float *scales, size_t n, size_t k, gtr_error *err)
{
    gtr_status st = alloc_layout(kern, w, n, k, GTR_W_INT8, true, err);
    if (st != GTR_OK) return st;
    for (size_t r = 0; r < n; r++) put_int8_row(w, r, q + r * k, scales[r]);
    return GTR_OK;
}

void gtr_wmat_free(gtr_wmat *w)
{
    if (!w) return;
    if (w->borrowed) {
        memset(w, 0, sizeof *w);
        return;
    }
    gtr_free_aligned(w->data);
    free(w->scales);
    free(w->colsum);
    memset(w, 0, sizeof *w);
}

/* ---- packed weights stored in files ----------------------------------------------------- */

void gtr_wmat_layout(const gtr_kernels *kern, gtr_wtype type, size_t k, size_t *nr, size_t *kp)
{
    size_t g = kgroup[type], ka = kern->kalign[type] ? kern->kalign[type] : g;
    *nr = kern->nr[type];
    *kp = (k + ka - 1) / ka * ka;
}

size_t gtr_wmat_kgroup(gtr_wtype type) { return (unsigned)type < GTR_W_NTYPES ? kgroup[type] : 0; }
size_t gtr_wmat_esize(gtr_wtype type) { return (unsigned)type < GTR_W_NTYPES ? esize[type] : 0; }

const gtr_kernels *gtr_kernels_file_layout(void)
{
#if defined(__x86_64__)
    return &gtr_kernels_amx_table;
#else
    return &gtr_kernels_generic_table;
#endif
}

bool gtr_wmat_native(const gtr_kernels *kern, const gtr_wmat *w)
{
    size_t ka = kern->kalign[w->type];
    return kern->nr[w->type] == w->nr && w->kp % kgroup[w->type] == 0 && (!ka || w->kp % ka == 0);
}

gtr_status gtr_wmat_view(gtr_wmat *w, gtr_wtype type, size_t n, size_t k, size_t nr, size_t kp,
                         const void *data, const float *scales, const int32_t *colsum,
                         gtr_error *err)
{
    memset(w, 0, sizeof *w);
    if ((unsigned)type >= GTR_W_NTYPES || !n || !k || !nr || kp < k || kp % kgroup[type] ||
        !data || (type == GTR_W_INT8 && (!scales || !colsum)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "packed weight [%zu, %zu]: bad layout (nr %zu, kp %zu)",
                          n, k, nr, kp);
    size_t np = (n + nr - 1) / nr;
    w->n = n;
    w->k = k;
    w->type = type;
    w->nr = nr;
    w->kp = kp;
    w->data = (void *)(uintptr_t)data;
    w->scales = (float *)(uintptr_t)scales;
    w->colsum = (int32_t *)(uintptr_t)colsum;
    w->bytes = np * nr * (kp * esize[type] + (type == GTR_W_INT8 ? sizeof(float) + sizeof(int32_t) : 0));
    w->borrowed = true;
    cpu_choices(w, type, k, w->bytes);
    return GTR_OK;
}

/* Rows [r0, r0 + rows) of a packed matrix, stored values, row i's k values at dst + i * ld + off,
 * read a tile (64 k groups x the panel's rows, contiguous in the layout) at a time as packing
 * writes them: a row at a time would read 4 bytes of every 256 across the whole panel. */
static void unpack_rows_to(const gtr_wmat *w, size_t r0, size_t rows, unsigned char *dst, size_t ld, size_t off)
{
    const size_t nr = w->nr, kw = w->kp / kgroup[w->type], row_bytes = w->k * esize[w->type];
    const unsigned char *src = w->data;
    for (size_t r = r0; r < r0 + rows;) {
        size_t p = r / nr, i0 = r % nr, i1 = GTR_MIN(nr, i0 + (r0 + rows - r));
        const unsigned char *panel = src + p * kw * nr * 4;
        for (size_t q0 = 0; q0 < kw && 4 * q0 < row_bytes; q0 += 64) {
            size_t nw = GTR_MIN((size_t)64, kw - q0);
            for (size_t i = i0; i < i1; i++) {
                unsigned char *d = dst + (p * nr + i - r0) * ld + off;
                for (size_t q = 0; q < nw; q++) {
                    size_t b = 4 * (q0 + q);
                    if (b >= row_bytes) break;
                    memcpy(d + b, panel + ((q0 + q) * nr + i) * 4, GTR_MIN((size_t)4, row_bytes - b));
                }
            }
        }
        r += i1 - i0;
    }
}

void gtr_wmat_unpack_rows(const gtr_wmat *w, size_t r0, size_t rows, void *dst)
{
    unpack_rows_to(w, r0, rows, dst, w->k * esize[w->type], 0);
}

void gtr_wmat_rows_f32(const gtr_wmat *w, size_t r0, size_t rows, float *dst)
{
    const size_t k = w->k, es = esize[w->type];
    if (w->type == GTR_W_F32) {
        gtr_wmat_unpack_rows(w, r0, rows, dst);
        return;
    }
    /* the stored values into the tail of each row of dst (es <= 2 bytes each: they fit behind
     * the floats of the same row as we widen from the front) */
    unpack_rows_to(w, r0, rows, (unsigned char *)dst, k * sizeof(float), k * (4 - es));
    for (size_t r = 0; r < rows; r++) {
        float *row = dst + r * k;
        const unsigned char *tmp = (const unsigned char *)row + k * (4 - es);
        if (w->type == GTR_W_BF16) {
            for (size_t c = 0; c < k; c++) {
                uint16_t b;
                memcpy(&b, tmp + 2 * c, 2);
                row[c] = gtr_bf16_to_f32(b);
            }
        } else {
            float s = w->scales[r0 + r];
            const int8_t *q = (const int8_t *)tmp;
            for (size_t c = 0; c < k; c++) row[c] = (float)q[c] * s;
        }
    }
}

typedef struct {
    const gtr_wmat *w;
    float *dst;
} rows_f32_job;

static void rows_f32_task(void *ctx, size_t p, int tid)
{
    (void)tid;
    const rows_f32_job *j = ctx;
    size_t nr = j->w->nr, r0 = p * nr;
    gtr_wmat_rows_f32(j->w, r0, GTR_MIN(nr, j->w->n - r0), j->dst + r0 * j->w->k);
}

void gtr_wmat_rows_f32_pool(const gtr_wmat *w, gtr_pool *pool, float *dst)
{
    rows_f32_job j = {w, dst};
    gtr_pool_for(pool, (w->n + w->nr - 1) / w->nr, rows_f32_task, &j);
}

gtr_status gtr_wmat_adopt(const gtr_kernels *kern, const gtr_wmat *view, gtr_wmat *w,
                          bool *in_place, gtr_error *err)
{
    /* in place: the kernels' own layout, and 64-byte aligned as their loads assume */
    if (gtr_wmat_native(kern, view) && ((uintptr_t)view->data & 63) == 0) {
        *w = *view;
        *in_place = true;
        return GTR_OK;
    }
    *in_place = false;
    size_t n = view->n, k = view->k, es = esize[view->type];
    void *tmp = gtr_xmalloc(n * k * es, "repacked weights", err);
    if (!tmp) return GTR_ERR_NOMEM;
    gtr_wmat_unpack_rows(view, 0, n, tmp);
    gtr_status st;
    if (view->type == GTR_W_F32) st = gtr_wmat_pack(kern, w, tmp, n, k, GTR_W_F32, err);
    else if (view->type == GTR_W_BF16) st = gtr_wmat_pack_bf16(kern, w, tmp, n, k, err);
    else st = gtr_wmat_pack_int8(kern, w, tmp, view->scales, n, k, err);
    free(tmp);
    return st;
}
