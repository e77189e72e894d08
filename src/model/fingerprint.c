/* fingerprint.c — the model fingerprint: a 64-bit FNV-1a hash of every weight's float32 value,
 * chunk by chunk (GTR_FP_CHUNK values a chain, the chains folded in order), which a `gtr
 * quantize` copy stores to prove which source it came from and which a loaded model reports.
 * Computed from float32 buffers (gtr_fp_stream, gtr_fingerprint_tensor) or straight from a
 * mapped F32/F16/BF16 tensor a piece at a time in L1 (gtr_fp_rows, gtr_fp_lanes), which the
 * loader runs inside its packing tasks so the file is read from memory once (pack_load.c).
 * The same loops report the first non-finite weight. */
#include "model/model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 64-bit FNV-1a over 8-byte words: hashing every weight costs about as much as reading it
 * once, far less than converting it. The same loop checks finiteness: a float is NaN or
 * infinite when its exponent bits are all ones; adding 1 to such an exponent carries into the
 * lane's sign bit (never into the other lane), so *bad collects that bit for both lanes of a
 * word in three integer operations, hidden behind the multiply chain of the hash. */
static uint64_t fnv_words(uint64_t h, const float *x, size_t n, uint64_t *bad)
{
    const uint64_t EXP = 0x7f8000007f800000ull, ONE = 0x0080000000800000ull;
    uint64_t b = 0;
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w;
        memcpy(&w, x + i, 8);
        b |= (w & EXP) + ONE;
        h = (h ^ w) * 0x100000001b3ull;
    }
    if (i < n) {
        uint32_t w;
        memcpy(&w, x + i, 4);
        b |= (uint64_t)((w & 0x7f800000u) + 0x00800000u);
        h = (h ^ w) * 0x100000001b3ull;
    }
    *bad |= b & 0x8000000080000000ull;
    return h;
}

#define FP_CHUNK GTR_FP_CHUNK

/* Memory to request while hashing: bytes[l] from lane[l] for each lane, a cache line at a time,
 * one line every `every` steps of the chains (a step: one word of each lane), lines of the
 * lanes in turn. */
typedef struct fp_prefetch {
    const uint8_t *lane[4];
    size_t bytes[4], lines, every; /* lines: the most any lane has */
} fp_prefetch;

/* fnv_words on four chunks of n floats at once, one chain each: the value of each is its
 * own, but the four multiply chains overlap (one chain waits out the multiply's latency on
 * every word: 4 lanes hash about 3x the bytes per cycle, the hash being the slowest part of
 * loading a converted model). check = 0 for values known finite (F16 ones, whose conversion
 * reports an infinity or NaN): the same chains without the per-word check, which on AMD Zen 5
 * made the loop issue-bound (6 operations a word a lane) rather than bound by the multiply's
 * latency. pf (or NULL): memory to request on the way (gtr_fp_lanes). Inlined into the two
 * callers below, so each gets its own loop. */
static inline __attribute__((always_inline)) void fnv_words4_any(uint64_t h[4], const float *const x[4], size_t n,
                                                                 uint64_t bad[4], const int check,
                                                                 const fp_prefetch *pf)
{
    const uint64_t EXP = 0x7f8000007f800000ull, ONE = 0x0080000000800000ull;
    uint64_t h0 = h[0], h1 = h[1], h2 = h[2], h3 = h[3], b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    size_t i = 0, c = 0, total = pf ? 4 * pf->lines : 0, k = pf ? pf->every : 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t w0, w1, w2, w3;
        if (c < total && --k == 0) { /* one line at a time, spread over the chains' latency */
            if ((c >> 2) * 64 < pf->bytes[c & 3]) __builtin_prefetch(pf->lane[c & 3] + (c >> 2) * 64);
            c++;
            k = pf->every;
        }
        memcpy(&w0, x[0] + i, 8);
        memcpy(&w1, x[1] + i, 8);
        memcpy(&w2, x[2] + i, 8);
        memcpy(&w3, x[3] + i, 8);
        if (check) {
            b0 |= (w0 & EXP) + ONE;
            b1 |= (w1 & EXP) + ONE;
            b2 |= (w2 & EXP) + ONE;
            b3 |= (w3 & EXP) + ONE;
        }
        h0 = (h0 ^ w0) * 0x100000001b3ull;
        h1 = (h1 ^ w1) * 0x100000001b3ull;
        h2 = (h2 ^ w2) * 0x100000001b3ull;
        h3 = (h3 ^ w3) * 0x100000001b3ull;
    }
    h[0] = h0, h[1] = h1, h[2] = h2, h[3] = h3;
    bad[0] |= b0 & 0x8000000080000000ull;
    bad[1] |= b1 & 0x8000000080000000ull;
    bad[2] |= b2 & 0x8000000080000000ull;
    bad[3] |= b3 & 0x8000000080000000ull;
    if (i < n)
        for (int l = 0; l < 4; l++) h[l] = fnv_words(h[l], x[l] + i, n - i, &bad[l]);
}

static void fnv_words4(uint64_t h[4], const float *const x[4], size_t n, uint64_t bad[4], const fp_prefetch *pf)
{
    fnv_words4_any(h, x, n, bad, 1, pf);
}

static void fnv_words4_finite(uint64_t h[4], const float *const x[4], size_t n, const fp_prefetch *pf)
{
    uint64_t unused[4] = {0};
    fnv_words4_any(h, x, n, unused, 0, pf);
}

/* The hash is: name (with its NUL), shape {rows, cols} as two u64, then for each chunk of
 * FP_CHUNK floats (the last one shorter) the FNV-1a-64 of its 8-byte words folded in order. */

typedef struct {
    const float *x;
    size_t n;
    uint64_t *out, *bad;
} fp_job;

/* chunks 4g .. 4g + 3 of the full ones (a group short of 4 repeats its first chunk in the
 * missing lanes and drops their results) */
static void fp_task(void *ctx, size_t g, int tid)
{
    (void)tid;
    fp_job *j = ctx;
    size_t full = j->n / FP_CHUNK, c0 = 4 * g, lanes = GTR_MIN((size_t)4, full - c0);
    uint64_t h[4] = {GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED}, bad[4] = {0, 0, 0, 0};
    const float *x[4];
    for (size_t l = 0; l < 4; l++) x[l] = j->x + (c0 + (l < lanes ? l : 0)) * FP_CHUNK;
    fnv_words4(h, x, FP_CHUNK, bad, NULL);
    for (size_t l = 0; l < lanes; l++) {
        j->out[c0 + l] = h[l];
        j->bad[c0 + l] = bad[l];
    }
}

void gtr_fp_begin(gtr_fp_stream *f, uint64_t h, const char *name, size_t rows, size_t cols)
{
    h = gtr_fnv1a64(name, strlen(name) + 1, h);
    uint64_t shape[2] = {rows, cols};
    f->h = gtr_fnv1a64(shape, sizeof shape, h);
    f->cur = GTR_FNV_SEED;
    f->in_chunk = 0;
    f->name = name;
    f->cols = cols ? cols : 1;
    f->fed = 0;
    f->bad_at = SIZE_MAX;
    f->bad = 0;
}

/* a piece had a non-finite value: find the first (the rare path, serial) */
static void note_bad(gtr_fp_stream *f, const float *x, size_t n)
{
    if (f->bad_at != SIZE_MAX) return;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            f->bad_at = f->fed + i;
            f->bad = x[i];
            return;
        }
}

void gtr_fp_feed(gtr_fp_stream *f, gtr_pool *pool, const float *x, size_t n)
{
    const float *x0 = x;
    size_t n0 = n;
    uint64_t bad = 0;
    /* finish the chunk in progress */
    if (f->in_chunk) {
        size_t k = GTR_MIN(n, FP_CHUNK - f->in_chunk);
        f->cur = fnv_words(f->cur, x, k, &bad);
        f->in_chunk += k;
        x += k;
        n -= k;
        if (f->in_chunk == FP_CHUNK) {
            f->h = gtr_fnv1a64(&f->cur, sizeof f->cur, f->h);
            f->cur = GTR_FNV_SEED;
            f->in_chunk = 0;
        }
    }
    /* whole chunks, in parallel when there are several */
    size_t full = n / FP_CHUNK;
    uint64_t *parts = full > 1 ? malloc(2 * full * sizeof *parts) : NULL;
    if (parts) {
        fp_job j = {x, full * FP_CHUNK, parts, parts + full};
        gtr_pool_for(pool, (full + 3) / 4, fp_task, &j);
        for (size_t c = 0; c < full; c++) {
            f->h = gtr_fnv1a64(&parts[c], sizeof parts[c], f->h);
            bad |= j.bad[c];
        }
        free(parts);
    } else { /* one chunk, or no memory for the parallel path: the same value serially */
        for (size_t c = 0; c < full; c++) {
            uint64_t p = fnv_words(GTR_FNV_SEED, x + c * FP_CHUNK, FP_CHUNK, &bad);
            f->h = gtr_fnv1a64(&p, sizeof p, f->h);
        }
    }
    x += full * FP_CHUNK;
    n -= full * FP_CHUNK;
    /* the start of the next chunk */
    if (n) {
        f->cur = fnv_words(f->cur, x, n, &bad);
        f->in_chunk += n;
    }
    if (bad) note_bad(f, x0, n0);
    f->fed += n0;
}

gtr_status gtr_fp_end(gtr_fp_stream *f, uint64_t *h, gtr_error *err)
{
    if (f->in_chunk) f->h = gtr_fnv1a64(&f->cur, sizeof f->cur, f->h);
    f->in_chunk = 0;
    f->cur = GTR_FNV_SEED;
    *h = f->h;
    if (f->bad_at != SIZE_MAX)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "tensor '%s': element [%zu, %zu] is %s; the weights are damaged (a model "
                          "with non-finite weights gives no meaningful vectors)",
                          f->name, f->bad_at / f->cols, f->bad_at % f->cols,
                          isnan(f->bad) ? "NaN" : f->bad > 0 ? "+infinity" : "-infinity");
    return GTR_OK;
}

/* gtr_fingerprint_tensor of a stored float tensor's values as float32, read from the mapping
 * without a float32 copy of it: each chunk of FP_CHUNK values is converted FP_PIECE at a time
 * into a buffer of its thread (in L1) and hashed from there. */
#define FP_PIECE GTR_FP_PIECE /* even (a chunk's words are the same however it is cut); divides FP_CHUNK */
#define FP_PF 2       /* gtr_fp_lanes' prefetch distance, in pieces */

typedef struct {
    const gtr_tensor *t;
    uint64_t *out, *bad;
} fp_src_job;

/* Values [i0, i0 + m) of a contiguous F32/F16/BF16 tensor as float32 into buf; true when F16
 * and one of them is not finite (F32 and BF16: false, fnv_words checks those). */
static bool values_f32(const gtr_tensor *t, size_t i0, size_t m, float *buf)
{
    if (t->dtype == GTR_DT_F16) {
        return gtr_f16_to_f32_n(t->data + 2 * i0, buf, m);
    } else if (t->dtype == GTR_DT_BF16) {
        const uint8_t *p = t->data + 2 * i0;
        for (size_t i = 0; i < m; i++) buf[i] = gtr_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
    } else {
        memcpy(buf, t->data + 4 * i0, m * sizeof(float));
    }
    return false;
}

/* The FNV chain of the last, shorter chunk (values [full * FP_CHUNK, count)). */
static void hash_partial(const gtr_tensor *t, uint64_t *out, uint64_t *bad_out)
{
    _Alignas(64) float buf[FP_PIECE];
    size_t full = t->count / FP_CHUNK;
    uint64_t h = GTR_FNV_SEED, bad = 0;
    for (size_t i = full * FP_CHUNK; i < t->count; i += FP_PIECE) {
        size_t m = GTR_MIN((size_t)FP_PIECE, t->count - i);
        values_f32(t, i, m, buf);
        h = fnv_words(h, buf, m, &bad);
    }
    *out = h;
    *bad_out = bad;
}

/* The FNV chains of full chunks c0 .. c0 + lanes - 1 (lanes 1..4; four chains at once, a group
 * short of 4 repeating its first chunk in the missing lanes and dropping their results). */
static void hash_group(const gtr_tensor *t, size_t c0, size_t lanes, uint64_t *out, uint64_t *bad_out)
{
    const gtr_tensor *ts[4] = {t, t, t, t};
    size_t start[4] = {c0 * FP_CHUNK, (c0 + 1) * FP_CHUNK, (c0 + 2) * FP_CHUNK, (c0 + 3) * FP_CHUNK};
    uint64_t h[4] = {GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED, GTR_FNV_SEED}, bad[4] = {0, 0, 0, 0};
    gtr_fp_lanes(ts, start, lanes, FP_CHUNK, FP_CHUNK, h, bad, NULL, NULL, NULL, NULL);
    for (size_t l = 0; l < lanes; l++) {
        out[c0 + l] = h[l];
        bad_out[c0 + l] = bad[l];
    }
}

/* Task g < groups: full chunks 4g .. 4g + 3 (as fp_task); task `groups`: the last, shorter chunk. */
static void fp_src_task(void *ctx, size_t g, int tid)
{
    (void)tid;
    fp_src_job *j = ctx;
    size_t full = j->t->count / FP_CHUNK, c0 = 4 * g;
    if (c0 >= full) hash_partial(j->t, &j->out[full], &j->bad[full]);
    else hash_group(j->t, c0, GTR_MIN((size_t)4, full - c0), j->out, j->bad);
}

gtr_status gtr_fp_rows_init(gtr_fp_rows *f, const gtr_tensor *t, size_t cols, gtr_error *err)
{
    memset(f, 0, sizeof *f);
    f->t = t;
    f->cols = cols ? cols : 1;
    f->chunks = (t->count + FP_CHUNK - 1) / FP_CHUNK;
    f->out = gtr_xcalloc(2 * (f->chunks ? f->chunks : 1), sizeof *f->out, "fingerprint", err);
    if (!f->out) return GTR_ERR_NOMEM;
    f->bad = f->out + f->chunks;
    return GTR_OK;
}

void gtr_fp_rows_hash(const gtr_fp_rows *f, size_t r0, size_t r1)
{
    const gtr_tensor *t = f->t;
    size_t k = f->cols, full = t->count / FP_CHUNK;
    if (r1 > t->count / k) r1 = t->count / k;
    if (r0 >= r1) return;
    /* the chunks whose first value lies in these rows: c * FP_CHUNK in [r0 * k, r1 * k) */
    size_t c0 = (r0 * k + FP_CHUNK - 1) / FP_CHUNK, c1 = GTR_MIN(f->chunks, (r1 * k + FP_CHUNK - 1) / FP_CHUNK);
    for (size_t c = c0; c < GTR_MIN(c1, full); c += 4)
        hash_group(t, c, GTR_MIN((size_t)4, GTR_MIN(c1, full) - c), f->out, f->bad);
    if (c1 > full && full >= c0) hash_partial(t, &f->out[full], &f->bad[full]);
}

gtr_status gtr_fp_rows_end(gtr_fp_rows *f, uint64_t *h, const char *name, size_t rows, size_t cols,
                           gtr_error *err)
{
    const gtr_tensor *t = f->t;
    uint64_t bad = 0;
    gtr_fp_stream s;
    gtr_fp_begin(&s, *h, name, rows, cols);
    for (size_t c = 0; c < f->chunks; c++) {
        s.h = gtr_fnv1a64(&f->out[c], sizeof f->out[c], s.h);
        bad |= f->bad[c];
    }
    free(f->out);
    f->out = f->bad = NULL;
    if (bad) { /* a value is not finite: the stream's message names the first (rare; serial) */
        _Alignas(64) float buf[FP_PIECE];
        gtr_fp_begin(&s, *h, name, rows, cols);
        for (size_t i = 0; i < t->count; i += FP_PIECE) {
            size_t m = GTR_MIN((size_t)FP_PIECE, t->count - i);
            values_f32(t, i, m, buf);
            gtr_fp_feed(&s, NULL, buf, m);
        }
        return gtr_fp_end(&s, h, err);
    }
    *h = s.h;
    return GTR_OK;
}

void gtr_fp_lanes(const gtr_tensor *const *t, const size_t *start, size_t lanes, size_t len, size_t cols,
                  uint64_t *h, uint64_t *bad, gtr_absmax_fn absmax, float *const *amax, gtr_fp_piece_fn each, void *each_ctx)
{
    _Alignas(64) float buf[4][FP_PIECE];
    const float *x[4];
    uint64_t hh[4] = {h[0], h[0], h[0], h[0]}, bb[4] = {0, 0, 0, 0};
    for (size_t l = 0; l < lanes; l++) hh[l] = h[l], bb[l] = bad[l];
    if (!absmax) amax = NULL;
    if (amax)
        for (size_t l = 0; l < lanes; l++)
            for (size_t r = 0; r < (len + cols - 1) / cols; r++) amax[l][r] = 0;
    bool f16 = true; /* every lane F16: finiteness from the conversion, not per word */
    for (size_t l = 0; l < lanes; l++) f16 = f16 && t[l]->dtype == GTR_DT_F16;
    for (size_t i = 0; i < len; i += FP_PIECE) {
        size_t m = GTR_MIN((size_t)FP_PIECE, len - i);
        /* each lane's piece after next, requested a line at a time while this piece is hashed
         * (fnv_words4_any), so the reads overlap the multiply chains instead of waiting behind
         * them: the lanes are four streams a page (4 KiB of F16) a piece each, where the
         * hardware prefetcher stops. AMD Zen 5, xxl: requesting every line at the start of the
         * piece made int8 warm loads 10-20% faster than no requests; spread over the hash, the
         * fingerprint alone takes another 30-37% less CPU time and int8 loads 10% less
         * (bench/RESULTS.md). Missing lanes request lane 0's lines again (in cache). */
        fp_prefetch pf, *pfp = NULL;
        if (i + FP_PF * FP_PIECE < len) {
            size_t ahead = i + FP_PF * FP_PIECE, vals = GTR_MIN((size_t)FP_PIECE, len - ahead);
            pf.lines = 0;
            for (size_t l = 0; l < 4; l++) {
                size_t s = l < lanes ? l : 0, es = t[s]->dtype == GTR_DT_F32 ? 4 : 2;
                pf.lane[l] = t[s]->data + es * (start[s] + ahead);
                pf.bytes[l] = vals * es;
                pf.lines = GTR_MAX(pf.lines, (pf.bytes[l] + 63) / 64);
            }
            pf.every = GTR_MAX((size_t)1, m / 2 / (4 * pf.lines));
            pfp = &pf;
        }
        for (size_t l = 0; l < lanes; l++) {
            x[l] = buf[l];
            if (values_f32(t[l], start[l] + i, m, buf[l])) bb[l] |= 0x80000000ull; /* F16: the conversion met an infinity or NaN */
        }
        for (size_t l = lanes; l < 4; l++) x[l] = x[0]; /* hashed and dropped */
        if (amax) /* each row's share of the piece (start[l] is a row's first value) */
            for (size_t l = 0; l < lanes; l++)
                for (size_t pos = i; pos < i + m;) {
                    size_t r = pos / cols, e = GTR_MIN(i + m, (r + 1) * cols);
                    float a = absmax(x[l] + (pos - i), e - pos);
                    if (a > amax[l][r]) amax[l][r] = a;
                    pos = e;
                }
        if (f16) fnv_words4_finite(hh, x, m, pfp);
        else fnv_words4(hh, x, m, bb, pfp);
        if (each)
            for (size_t l = 0; l < lanes; l++) each(each_ctx, l, buf[l], i, m);
    }
    for (size_t l = 0; l < lanes; l++) h[l] = hh[l], bad[l] = bb[l];
}

void gtr_fp_rows_free(gtr_fp_rows *f)
{
    free(f->out);
    f->out = f->bad = NULL;
}

gtr_status gtr_fingerprint_stored(uint64_t *h, gtr_pool *pool, const char *name, const gtr_tensor *t,
                                  size_t rows, size_t cols, gtr_error *err)
{
    gtr_fp_rows f;
    gtr_status st = gtr_fp_rows_init(&f, t, cols, err);
    if (st) return st;
    fp_src_job j = {t, f.out, f.bad};
    size_t full = t->count / FP_CHUNK;
    gtr_pool_for(pool, (full + 3) / 4 + (f.chunks > full), fp_src_task, &j);
    return gtr_fp_rows_end(&f, h, name, rows, cols, err);
}

gtr_status gtr_fingerprint_tensor(uint64_t *h, gtr_pool *pool, const char *name, const float *x,
                                  size_t rows, size_t cols, gtr_error *err)
{
    gtr_fp_stream f;
    gtr_fp_begin(&f, *h, name, rows, cols);
    gtr_fp_feed(&f, pool, x, rows * cols);
    return gtr_fp_end(&f, h, err);
}
