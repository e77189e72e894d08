/* ivf_build.c — building an IVF file (format: ivf_format.h; guarantees: ivf.h): spherical
 * k-means on a sample, one pass over the vectors assigning each to its list and coding it,
 * then the list-ordered sections.
 *
 * Crash safety and resume. The work goes to two files beside the output:
 *   "<path>.partial"  the file being built, every section at its final offset: the centroids
 *                     once k-means is done, the float32 vectors as the pass goes; the other
 *                     sections and the header are written last, then it is renamed to path.
 *   "<path>.ckpt"     a checkpoint (ivf_ckpt, then one u32 list per vector done), replaced
 *                     atomically: the build's identity, the vectors done, CRC-32s of the
 *                     partial file's centroids and vector prefix.
 * The partial file is fsynced before each checkpoint, so a checkpoint never names bytes that
 * are not on disk; vectors written after it (a crash mid-interval) are redone on resume. The
 * lists are what the checkpoint saves because they are the pass's work (one GEMM row per
 * vector against every centroid); the int8 codes and scales are cheap, so a resume recomputes
 * them while it verifies the vector prefix against both the checkpoint's CRC and the source.
 * A resumed build writes the same bytes as an uninterrupted one: nothing depends on where
 * blocks or checkpoints fall (tests/test_ivf.c, tests/scripts/ann_cli.sh).
 */
#include "index/ivf.h"

#include "index/index_internal.h"
#include "index/ivf_format.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static void normalize(float *v, size_t d)
{
    double s = 0.0;
    for (size_t i = 0; i < d; i++) s += (double)v[i] * v[i];
    if (s <= 0.0) return;
    float inv = (float)(1.0 / sqrt(s));
    for (size_t i = 0; i < d; i++) v[i] *= inv;
}

/* ---- assignment, k-means, coding --------------------------------------------- */

#define ASSIGN_ROWS 2048 /* rows per GEMM call: their scores [rows][lists] stay bounded */

typedef struct argmax_ctx { const float *S; size_t n_lists; uint32_t *out; } argmax_ctx;
static void argmax_task(void *p, size_t i, int tid)
{
    (void)tid;
    const argmax_ctx *c = p;
    const float *s = c->S + i * c->n_lists;
    uint32_t best = 0;
    for (size_t l = 1; l < c->n_lists; l++) /* ties: the smaller list */
        if (s[l] > s[best]) best = (uint32_t)l;
    c->out[i] = best;
}

/* out[i] = the centroid with the highest inner product with rows[i] (m rows of dim floats,
 * contiguous): the scores come from the library's GEMM against the packed centroids w,
 * ASSIGN_ROWS rows at a time into S ([ASSIGN_ROWS][n_lists]); each row's scores are the same
 * whatever the thread count and however the rows are split into calls, so the build is too. */
static void assign(const gtr_kernels *kern, gtr_pool *pool, const gtr_wmat *w, size_t n_lists,
                   const float *rows, size_t m, size_t dim, uint32_t *out, float *S)
{
    for (size_t i0 = 0; i0 < m; i0 += ASSIGN_ROWS) {
        size_t b = m - i0 < ASSIGN_ROWS ? m - i0 : ASSIGN_ROWS;
        gtr_linear(kern, pool, w, rows + i0 * dim, b, dim, S, n_lists, 0);
        argmax_ctx ac = {S, n_lists, out + i0};
        gtr_pool_for(pool, b, argmax_task, &ac);
    }
}

/* Progress in assignments (one GEMM row against every centroid: k-means iterations count
 * their sample, the pass its vectors), relative to this call so rates and ETAs stay right
 * after a resume. Non-zero: the caller asked to stop. */
typedef struct progress { gtr_progress_fn fn; void *user; uint64_t skip, total; } progress;
static int report(const progress *p, uint64_t done)
{
    return p->fn ? p->fn(p->user, done - p->skip, p->total - p->skip) : 0;
}

/* Spherical k-means on a seeded sample of m vectors (fetched one at a time through rd);
 * centroids [n_lists][dim] out. S: the assignment scores' scratch. */
static gtr_status kmeans(gtr_ivf_read_fn rd, void *user, size_t n, size_t dim, size_t n_lists,
                         size_t m, size_t iters, const gtr_ivf_build_opts *o, const progress *pg,
                         float *cent, float *S, gtr_error *err)
{
    uint64_t rs = o->seed ^ 0x6976662d6b6d656eull;
    uint32_t *perm = gtr_xmalloc(n * sizeof *perm, "k-means sample", err);
    uint32_t *asg = gtr_xmalloc(m * sizeof *asg, "k-means assignment", err);
    float *samp = gtr_xmalloc(m * dim * sizeof *samp, "k-means sample", err);
    double *sum = gtr_xcalloc(n_lists * dim, sizeof *sum, "k-means sums", err);
    size_t *cnt = gtr_xcalloc(n_lists, sizeof *cnt, "k-means counts", err);
    if (!perm || !asg || !samp || !sum || !cnt) {
        free(perm); free(asg); free(samp); free(sum); free(cnt);
        return err ? err->code : GTR_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = 0; i < m; i++) { /* partial Fisher-Yates: the first m are the sample */
        size_t j = i + (size_t)(gtr_splitmix64(&rs) % (n - i));
        uint32_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    gtr_status st = GTR_OK;
    for (size_t i = 0; i < m && st == GTR_OK; i++) /* contiguous, for the GEMM */
        st = rd(user, perm[i], 1, samp + i * dim, err);
    free(perm);
    for (size_t l = 0; st == GTR_OK && l < n_lists; l++)
        memcpy(cent + l * dim, samp + l * dim, dim * sizeof(float));
    const gtr_kernels *kern = gtr_kernels_select();
    for (size_t it = 0; it < iters && st == GTR_OK; it++) {
        gtr_wmat w = {0};
        if ((st = gtr_wmat_pack(kern, &w, cent, n_lists, dim, GTR_W_F32, err))) break;
        assign(kern, o->pool, &w, n_lists, samp, m, dim, asg, S);
        gtr_wmat_free(&w);
        memset(sum, 0, n_lists * dim * sizeof *sum);
        memset(cnt, 0, n_lists * sizeof *cnt);
        for (size_t i = 0; i < m; i++) { /* serial, in sample order: thread-count independent */
            const float *v = samp + i * dim;
            double *s = sum + (size_t)asg[i] * dim;
            for (size_t d = 0; d < dim; d++) s[d] += v[d];
            cnt[asg[i]]++;
        }
        for (size_t l = 0; l < n_lists; l++) {
            float *c = cent + l * dim;
            if (cnt[l] == 0) { /* empty list: restart it at a random sample vector */
                memcpy(c, samp + (size_t)(gtr_splitmix64(&rs) % m) * dim, dim * sizeof(float));
                continue;
            }
            for (size_t d = 0; d < dim; d++) c[d] = (float)sum[l * dim + d];
            normalize(c, dim);
        }
        if (report(pg, (uint64_t)(it + 1) * m))
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "ivf build: stopped during k-means (nothing to resume yet)");
    }
    free(asg); free(samp); free(sum); free(cnt);
    return st;
}

/* One block's int8 codes and scales, in vector order (rows split over the threads). */
typedef struct code_ctx { const float *v; size_t dim; float *scales; int8_t *codes; } code_ctx;
static void code_task(void *p, size_t i, int tid)
{
    (void)tid;
    const code_ctx *c = p;
    const float *v = c->v + i * c->dim;
    int8_t *code = c->codes + i * c->dim;
    float mx = 0.0f;
    for (size_t d = 0; d < c->dim; d++) mx = fmaxf(mx, fabsf(v[d]));
    float scale = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / scale;
    c->scales[i] = scale;
    for (size_t d = 0; d < c->dim; d++) {
        long q = lrintf(v[d] * inv);
        code[d] = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
    }
}

/* ---- the work files -------------------------------------------------------- */

#define CKPT_MAGIC "GTRIVFK1"
#define CKPT_VERSION 1u
#define CKPT_EVERY ((size_t)1 << 18) /* vectors between checkpoints by default */

/* The checkpoint's fixed part; the lists of vectors 0 .. done-1 follow (u32 each). Every
 * field up to `done` is the build's identity: a checkpoint whose identity differs from this
 * call's is another build's and is discarded. */
typedef struct ivf_ckpt {
    char magic[8];
    uint32_t version, dim;
    uint64_t n;
    uint32_t n_lists, iters;   /* k-means as run (defaults resolved) */
    uint32_t sample, given;    /* given: 1 when the centroids were passed in (no k-means) */
    uint64_t seed, tag;
    uint32_t given_crc, pad0;  /* CRC-32 of the given centroids (0 when trained) */
    uint64_t done;             /* vectors whose float32 copy and list are saved */
    uint32_t crc_cent, crc_vec; /* CRC-32 of the partial file's centroids, of vectors [0, done) */
    uint32_t crc_lists, pad1;  /* CRC-32 of the lists that follow */
    uint8_t pad[36];
    uint32_t hdr_crc;          /* over the bytes before it */
} ivf_ckpt;
_Static_assert(sizeof(ivf_ckpt) == 128, "checkpoint header is 128 bytes");
#define CKPT_ID_BYTES offsetof(ivf_ckpt, done)

typedef struct builder {
    const char *path;
    char *part_path, *ckpt_path;
    int fd;
    bool have_ckpt;         /* a checkpoint of this build is on disk */
    bool renamed;           /* the partial file is the output now */
    size_t n, dim, n_lists, blk;
    ivf_layout L;
    ivf_ckpt id;            /* identity fields filled, the rest zero */
    const gtr_ivf_build_opts *o;
    gtr_ivf_read_fn rd;
    void *user;
    float *cent;            /* [n_lists][dim] */
    uint32_t *asg;          /* [n] list of each vector */
    float *scales;          /* [n] in vector order */
    int8_t *codes;          /* [n][dim] in vector order */
    uint32_t crc_vec;       /* of the vectors written so far */
} builder;

/* Reads exactly len bytes of the partial file at off; false when it is shorter or unreadable. */
static bool pread_part(const builder *b, void *data, size_t len, size_t off)
{
    size_t got;
    return gtr_pread_all(b->fd, b->part_path, data, len, off, &got, NULL) == GTR_OK && got == len;
}

static gtr_status sync_part(builder *b, gtr_error *err)
{
    if (fsync(b->fd) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: fsync failed: %s", b->part_path, strerror(errno));
    return GTR_OK;
}

/* Save the first `done` vectors' work: the partial file to disk first, then the checkpoint
 * naming it (temp, fsync, rename). */
static gtr_status checkpoint(builder *b, size_t done, gtr_error *err)
{
    gtr_status st = sync_part(b, err);
    if (st) return st;
    ivf_ckpt c = b->id;
    c.done = done;
    c.crc_cent = gtr_crc32(0, b->cent, b->n_lists * b->dim * sizeof(float));
    c.crc_vec = b->crc_vec;
    c.crc_lists = gtr_crc32(0, b->asg, done * sizeof(uint32_t));
    c.hdr_crc = gtr_crc32(0, &c, offsetof(ivf_ckpt, hdr_crc));
    gtr_atomic_file f;
    if ((st = gtr_atomic_open(&f, b->ckpt_path, err))) return st;
    if ((st = gtr_atomic_write(&f, &c, sizeof c, err)) == GTR_OK &&
        (st = gtr_atomic_write(&f, b->asg, done * sizeof(uint32_t), err)) == GTR_OK)
        st = gtr_atomic_commit(&f, err);
    else
        gtr_atomic_abort(&f);
    if (st == GTR_OK) b->have_ckpt = true;
    return st;
}

#define NOTE(...) do { if (b->o->stats) snprintf(b->o->stats->note, sizeof b->o->stats->note, __VA_ARGS__); } while (0)

/* Continue from the checkpoint when there is one of this build whose partial file checks out.
 * *done gets the vectors already done (0: start afresh, with a note saying why when a
 * checkpoint was there). Only real errors (reading the source, memory) return non-zero. */
static gtr_status try_resume(builder *b, size_t *done, gtr_error *err)
{
    *done = 0;
    if (!gtr_file_exists(b->ckpt_path)) return GTR_OK;
    if (b->o->no_resume) {
        NOTE("discarded an interrupted build as asked");
        return GTR_OK;
    }
    char *data = NULL;
    size_t len = 0;
    gtr_error e2;
    ivf_ckpt c;
    if (gtr_read_file(b->ckpt_path, sizeof c + b->n * sizeof(uint32_t) + 1, &data, &len, &e2)) {
        NOTE("the checkpoint could not be read (%s); started over", e2.message);
        return GTR_OK;
    }
    bool ok = len >= sizeof c;
    if (ok) memcpy(&c, data, sizeof c);
    ok = ok && memcmp(c.magic, CKPT_MAGIC, 8) == 0 && c.hdr_crc == gtr_crc32(0, &c, offsetof(ivf_ckpt, hdr_crc)) &&
         c.done <= b->n && len == sizeof c + c.done * sizeof(uint32_t) &&
         gtr_crc32(0, data + sizeof c, len - sizeof c) == c.crc_lists;
    if (!ok) {
        free(data);
        NOTE("the checkpoint was damaged; started over");
        return GTR_OK;
    }
    if (memcmp(&c, &b->id, CKPT_ID_BYTES) != 0) {
        free(data);
        NOTE("an interrupted build had other vectors or options; started over");
        return GTR_OK;
    }
    memcpy(b->asg, data + sizeof c, c.done * sizeof(uint32_t));
    free(data);
    for (size_t i = 0; i < c.done; i++)
        if (b->asg[i] >= b->n_lists) {
            NOTE("the checkpoint names a list that does not exist; started over");
            return GTR_OK;
        }
    size_t cb = b->n_lists * b->dim * sizeof(float), vb = b->dim * sizeof(float);
    struct stat sb;
    if (fstat(b->fd, &sb) != 0 || (size_t)sb.st_size < b->L.vectors + c.done * vb ||
        !pread_part(b, b->cent, cb, b->L.centroids) || gtr_crc32(0, b->cent, cb) != c.crc_cent ||
        (b->o->centroids && memcmp(b->cent, b->o->centroids, cb) != 0)) {
        NOTE("the partial file does not match its checkpoint; started over");
        return GTR_OK;
    }
    /* the saved vectors must be on disk as checksummed and still be the source's: read both,
     * recomputing the codes on the way */
    float *mine = gtr_xmalloc(b->blk * vb, "ivf resume", err), *src = gtr_xmalloc(b->blk * vb, "ivf resume", err);
    gtr_status st = mine && src ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    uint32_t crc = 0;
    const char *why = NULL;
    bool changed = false; /* judged after the CRC: a damaged partial file differs too */
    for (size_t i0 = 0; st == GTR_OK && !why && i0 < c.done; i0 += b->blk) {
        size_t m = GTR_MIN(b->blk, (size_t)c.done - i0);
        if (!pread_part(b, mine, m * vb, b->L.vectors + i0 * vb)) { why = "the partial file cannot be read"; break; }
        crc = gtr_crc32(crc, mine, m * vb);
        if (changed) continue;
        if ((st = b->rd(b->user, i0, m, src, err))) break;
        if (memcmp(mine, src, m * vb) != 0) { changed = true; continue; }
        code_ctx cc = {mine, b->dim, b->scales + i0, b->codes + i0 * b->dim};
        gtr_pool_for(b->o->pool, m, code_task, &cc);
    }
    free(mine);
    free(src);
    if (st) return st;
    if (!why && crc != c.crc_vec) why = "the partial file does not match its checkpoint";
    if (!why && changed) why = "the vectors changed since the interrupted build";
    if (why) {
        NOTE("%s; started over", why);
        return GTR_OK;
    }
    b->crc_vec = crc;
    b->have_ckpt = true;
    *done = (size_t)c.done;
    if (b->o->stats) b->o->stats->docs_resumed = c.done;
    return GTR_OK;
}

/* ---- the final sections -------------------------------------------------------- */

/* Buffered sequential writes to the partial file at increasing offsets, with the running CRC
 * of everything written. */
typedef struct seq_writer {
    builder *b;
    size_t off;
    uint32_t crc;
    uint8_t *buf;
    size_t used, cap;
    gtr_status st;
} seq_writer;

static void seq_flush(seq_writer *w, gtr_error *err)
{
    if (w->st == GTR_OK && w->used)
        w->st = gtr_pwrite_all(w->b->fd, w->b->part_path, w->buf, w->used, w->off - w->used, err);
    w->used = 0;
}

static void seq_put(seq_writer *w, const void *data, size_t len, gtr_error *err)
{
    w->crc = gtr_crc32(w->crc, data, len);
    const uint8_t *p = data;
    while (len && w->st == GTR_OK) {
        size_t k = GTR_MIN(len, w->cap - w->used);
        memcpy(w->buf + w->used, p, k);
        w->used += k; w->off += k; p += k; len -= k;
        if (w->used == w->cap) seq_flush(w, err);
    }
}

static void seq_pad(seq_writer *w, size_t to, gtr_error *err)
{
    static const uint8_t zero[64];
    while (w->off < to && w->st == GTR_OK) seq_put(w, zero, GTR_MIN(sizeof zero, to - w->off), err);
}

/* Everything but the vectors, from the lists and codes in vector order; then the header, and
 * the partial file becomes the output (fsync, rename, fsync of the directory). */
static gtr_status finish(builder *b, gtr_error *err)
{
    size_t n = b->n, dim = b->dim, nl = b->n_lists;
    const ivf_layout *L = &b->L;
    uint64_t *offs = gtr_xcalloc(nl + 1, sizeof *offs, "ivf offsets", err);
    uint64_t *fill = gtr_xmalloc(nl * sizeof *fill, "ivf fill", err);
    uint32_t *rows = gtr_xmalloc(n * sizeof *rows, "ivf rows", err);
    float *sc = gtr_xmalloc(n * sizeof *sc, "ivf scales", err);
    seq_writer w = {.b = b, .off = IVF_HDR, .cap = (size_t)4 << 20};
    w.buf = gtr_xmalloc(w.cap, "ivf write buffer", err);
    gtr_status st = offs && fill && rows && sc && w.buf ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    if (st == GTR_OK) {
        for (size_t i = 0; i < n; i++) offs[b->asg[i] + 1]++;
        for (size_t l = 0; l < nl; l++) offs[l + 1] += offs[l];
        memcpy(fill, offs, nl * sizeof *fill);
        for (size_t i = 0; i < n; i++) rows[fill[b->asg[i]]++] = (uint32_t)i; /* stable */
        for (size_t r = 0; r < n; r++) sc[r] = b->scales[rows[r]];
        seq_put(&w, b->cent, nl * dim * sizeof(float), err); seq_pad(&w, L->offsets, err);
        seq_put(&w, offs, (nl + 1) * sizeof *offs, err);     seq_pad(&w, L->rows, err);
        seq_put(&w, rows, n * sizeof *rows, err);            seq_pad(&w, L->scales, err);
        seq_put(&w, sc, n * sizeof *sc, err);                seq_pad(&w, L->codes, err);
        for (size_t r = 0; r < n; r++) seq_put(&w, b->codes + (size_t)rows[r] * dim, dim, err);
        seq_pad(&w, L->vectors, err);
        seq_flush(&w, err);
        st = w.st;
    }
    /* the zeros after the vectors, which the body CRC covers */
    uint32_t crc_tail = b->crc_vec;
    size_t vend = L->vectors + n * dim * sizeof(float);
    if (st == GTR_OK && L->end > vend) {
        static const uint8_t z[64];
        st = gtr_pwrite_all(b->fd, b->part_path, z, L->end - vend, vend, err);
        crc_tail = gtr_crc32(crc_tail, z, L->end - vend);
    }
    if (st == GTR_OK && ftruncate(b->fd, (off_t)L->end) != 0)
        st = gtr_seterr(err, GTR_ERR_IO, "%s: truncate failed: %s", b->part_path, strerror(errno));
    if (st == GTR_OK) {
        ivf_hdr h = {0};
        memcpy(h.magic, IVF_MAGIC, 8);
        h.version = IVF_VERSION;
        h.dim = (uint32_t)dim;
        h.n = n;
        h.n_lists = (uint32_t)nl;
        h.seed = b->o->seed;
        h.tag = b->o->tag;
        h.body_crc = gtr_crc32_combine(w.crc, crc_tail, L->end - L->vectors);
        h.hdr_crc = gtr_crc32(0, &h, offsetof(ivf_hdr, hdr_crc));
        st = gtr_pwrite_all(b->fd, b->part_path, &h, sizeof h, 0, err);
    }
    if (st == GTR_OK) st = sync_part(b, err);
    if (st == GTR_OK && rename(b->part_path, b->path) != 0)
        st = gtr_seterr(err, GTR_ERR_IO, "%s: rename failed: %s", b->path, strerror(errno));
    if (st == GTR_OK) {
        b->renamed = true;
        char *d = strdup(b->path);
        if (d) st = gtr_fsync_dir(dirname(d), err);
        free(d);
        /* the output is complete: a stale checkpoint would only be discarded later */
        unlink(b->ckpt_path);
        b->have_ckpt = false;
    }
    free(offs); free(fill); free(rows); free(sc); free(w.buf);
    return st;
}

/* ---- the build ------------------------------------------------------------------ */

static gtr_status read_mem(void *user, size_t first, size_t count, float *out, gtr_error *err)
{
    (void)err;
    const gtr_ivf_mem_src *m = user;
    memcpy(out, m->vecs + first * m->dim, count * m->dim * sizeof(float));
    return GTR_OK;
}

gtr_status gtr_ivf_build(const char *path, const float *vecs, size_t n, int dim_i,
                         const gtr_ivf_build_opts *opts, gtr_error *err)
{
    if (!vecs || dim_i <= 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: need a path, 1..2^32-1 vectors and dim > 0");
    gtr_ivf_mem_src src = {vecs, (size_t)dim_i};
    return gtr_ivf_build_stream(path, n, dim_i, read_mem, &src, opts, err);
}

/* The pass from vector `done` on: each block's float32 copy to the partial file, its lists
 * and codes; a checkpoint every opts->checkpoint_every vectors and when asked to stop. */
static gtr_status pass(builder *b, size_t done, const progress *pg, uint64_t kmeans_units,
                       float *S, gtr_error *err)
{
    size_t dim = b->dim, vb = dim * sizeof(float);
    size_t every = b->o->checkpoint_every ? b->o->checkpoint_every : CKPT_EVERY;
    const gtr_kernels *kern = gtr_kernels_select();
    gtr_wmat w = {0};
    float *buf = gtr_xmalloc(b->blk * vb, "ivf block", err);
    gtr_status st = buf ? gtr_wmat_pack(kern, &w, b->cent, b->n_lists, dim, GTR_W_F32, err)
                        : (err ? err->code : GTR_ERR_NOMEM);
    size_t saved = done;
    for (size_t i0 = done; st == GTR_OK && i0 < b->n; i0 += b->blk) {
        size_t m = GTR_MIN(b->blk, b->n - i0);
        if ((st = b->rd(b->user, i0, m, buf, err))) break;
        if ((st = gtr_pwrite_all(b->fd, b->part_path, buf, m * vb, b->L.vectors + i0 * vb, err))) break;
        b->crc_vec = gtr_crc32(b->crc_vec, buf, m * vb);
        assign(kern, b->o->pool, &w, b->n_lists, buf, m, dim, b->asg + i0, S);
        code_ctx cc = {buf, dim, b->scales + i0, b->codes + i0 * dim};
        gtr_pool_for(b->o->pool, m, code_task, &cc);
        size_t now = i0 + m;
        bool stop = report(pg, kmeans_units + now) != 0;
        if ((stop && now < b->n) || (now < b->n && now - saved >= every)) {
            if ((st = checkpoint(b, now, err))) break;
            saved = now;
        }
        if (stop && now < b->n)
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "ivf build: stopped after %zu of %zu vectors (checkpointed: "
                            "the same build resumes)", now, b->n);
    }
    gtr_wmat_free(&w);
    free(buf);
    return st;
}

gtr_status gtr_ivf_build_stream(const char *path, size_t n, int dim_i, gtr_ivf_read_fn rd,
                                void *user, const gtr_ivf_build_opts *opts, gtr_error *err)
{
    gtr_ivf_build_opts o = opts ? *opts : (gtr_ivf_build_opts){0};
    if (!path || !rd || n == 0 || dim_i <= 0 || n > UINT32_MAX)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: need a path, 1..2^32-1 vectors and dim > 0");
    if (o.stats) memset(o.stats, 0, sizeof *o.stats);
    builder bb = {.path = path, .fd = -1, .n = n, .dim = (size_t)dim_i, .o = &o, .rd = rd, .user = user};
    builder *b = &bb;
    size_t dim = b->dim;
    b->n_lists = o.n_lists ? o.n_lists : (size_t)ceil(sqrt((double)n));
    if (b->n_lists > n)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: %zu lists for %zu vectors (at most one list per vector)", b->n_lists, n);
    if (!ivf_layout_of(n, dim, b->n_lists, &b->L))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "ivf build: %zu x %zu vectors is too large", n, dim);
    size_t every = o.checkpoint_every ? o.checkpoint_every : CKPT_EVERY;
    b->blk = GTR_MIN(GTR_MIN((size_t)GTR_IVF_BLOCK, every), n);
    size_t per = o.sample ? o.sample : 64, iters = o.iters ? o.iters : 10;
    size_t m = b->n_lists * per < n ? b->n_lists * per : n;
    if (o.centroids) iters = m = 0; /* no k-means */

    memcpy(b->id.magic, CKPT_MAGIC, 8);
    b->id.version = CKPT_VERSION;
    b->id.dim = (uint32_t)dim;
    b->id.n = n;
    b->id.n_lists = (uint32_t)b->n_lists;
    b->id.iters = (uint32_t)iters;
    b->id.sample = (uint32_t)per;
    b->id.seed = o.seed;
    b->id.tag = o.tag;
    if (o.centroids) {
        b->id.given = 1;
        b->id.given_crc = gtr_crc32(0, o.centroids, b->n_lists * dim * sizeof(float));
    }

    /* Memory: the int8 codes and scales in vector order (n * (dim + 4) bytes; they are written
     * in list order once every vector's list is known), the lists (4 bytes per vector, 8 more
     * while the sections are written), the k-means sample, and a block or two of float32
     * vectors: never all the floats. */
    b->cent = gtr_xmalloc(b->n_lists * dim * sizeof(float), "ivf centroids", err);
    b->asg = gtr_xmalloc(n * sizeof(uint32_t), "ivf assignment", err);
    b->scales = gtr_xmalloc(n * sizeof(float), "ivf scales", err);
    b->codes = gtr_xmalloc(n * dim, "ivf codes", err);
    float *S = gtr_xmalloc((size_t)ASSIGN_ROWS * b->n_lists * sizeof(float), "ivf scores", err);
    b->part_path = gtr_path_suffixed(path, ".partial", err);
    b->ckpt_path = gtr_path_suffixed(path, ".ckpt", err);
    gtr_status st = b->cent && b->asg && b->scales && b->codes && S && b->part_path && b->ckpt_path
                        ? GTR_OK : (err ? err->code : GTR_ERR_NOMEM);
    if (st == GTR_OK) {
        b->fd = open(b->part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (b->fd < 0)
            st = gtr_seterr(err, errno == ENOENT || errno == ENOTDIR ? GTR_ERR_INVALID_ARG : GTR_ERR_IO,
                            "%s: cannot create: %s", b->part_path, strerror(errno));
        else if (flock(b->fd, LOCK_EX | LOCK_NB) != 0) {
            st = gtr_seterr(err, GTR_ERR_IO, "%s: another build is writing it (it holds %s)", path, b->part_path);
            close(b->fd);
            b->fd = -1;
        }
    }
    /* the only writer of path now: temp files of killed processes are stale (older builds
     * wrote "<path>.tmp.<pid>"; checkpoints still do) */
    if (st == GTR_OK) {
        gtr_remove_stale_tmp(path);
        gtr_remove_stale_tmp(b->ckpt_path);
    }
    size_t done = 0;
    if (st == GTR_OK) st = try_resume(b, &done, err);
    progress pg = {o.progress, o.progress_user, 0, (uint64_t)iters * m + n};
    if (st == GTR_OK && !b->have_ckpt) {
        /* afresh: whatever the files held is discarded */
        unlink(b->ckpt_path);
        b->crc_vec = 0;
        if (ftruncate(b->fd, 0) != 0)
            st = gtr_seterr(err, GTR_ERR_IO, "%s: truncate failed: %s", b->part_path, strerror(errno));
        else if (o.centroids) memcpy(b->cent, o.centroids, b->n_lists * dim * sizeof(float));
        else st = kmeans(rd, user, n, dim, b->n_lists, m, iters, &o, &pg, b->cent, S, err);
        if (st == GTR_OK)
            st = gtr_pwrite_all(b->fd, b->part_path, b->cent, b->n_lists * dim * sizeof(float), b->L.centroids, err);
        /* k-means is saved before the pass (a build of n > every vectors) */
        if (st == GTR_OK && n > every) st = checkpoint(b, 0, err);
    } else if (st == GTR_OK) {
        pg.skip = (uint64_t)iters * m + done;
    }
    if (st == GTR_OK) st = pass(b, done, &pg, (uint64_t)iters * m, S, err);
    if (st == GTR_OK) st = finish(b, err);
    if (b->fd >= 0) {
        /* a failed build keeps its work files when they hold a checkpoint (rerun to resume);
         * without one there is nothing to resume from */
        if (st != GTR_OK && !b->have_ckpt && !b->renamed) unlink(b->part_path);
        close(b->fd);
    }
    free(b->cent); free(b->asg); free(b->scales); free(b->codes); free(S);
    free(b->part_path); free(b->ckpt_path);
    return st;
}
