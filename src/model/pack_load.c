/* pack_load.c — a checkpoint's Linear matrix packed for the kernels straight from the file's
 * mapping, with its fingerprint hashed inside the packing tasks: F16 values converted a piece
 * at a time in cache, no float32 copy of the matrix written and read back, and (for the shapes
 * of the big GTR models) each value read from memory once. Or, for a load that wants no
 * fingerprint (no_fingerprint), packed alone with the same bytes (gtr_pack_unhashed). */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

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

gtr_status gtr_pack_unhashed(const gtr_kernels *kern, gtr_pool *pool, const gtr_tensor *const *parts, int n_parts,
                             size_t k, gtr_wtype wtype, gtr_wmat *w, int *bad_part, gtr_error *err)
{
    /* The packing alone reads each row where the tiles need it (int8: once for the row's
     * largest |value|, then from cache): without the hash's chunk-ordered pass the xxl int8
     * load from F16 measured 1.88 s against 2.35 s with it (AMD Zen 5, bench/RESULTS.md). */
    gtr_wsrc src[3];
    memset(src, 0, sizeof src);
    if (n_parts < 1 || n_parts > 3) return gtr_seterr(err, GTR_ERR_INTERNAL, "1 to 3 parts");
    for (int i = 0; i < n_parts; i++) {
        if (parts[i]->dtype != GTR_DT_F16) return gtr_seterr(err, GTR_ERR_INTERNAL, "%s: not F16", parts[i]->name);
        src[i].data = parts[i]->data;
        src[i].rows = parts[i]->shape[0];
        src[i].type = GTR_SRC_F16;
    }
    bool nonfinite = false;
    gtr_status st = gtr_wmat_pack_src_finite(kern, pool, w, src, (size_t)n_parts, k, wtype, &nonfinite, err);
    if (st || !nonfinite) return st;
    /* rare: the fingerprinting pass names the part and the element, as a normal load does */
    gtr_wmat_free(w);
    uint64_t unused = 0;
    if ((st = gtr_pack_fingerprinted(kern, pool, parts, n_parts, k, wtype, w, &unused, bad_part, err))) return st;
    gtr_wmat_free(w);
    return gtr_seterr(err, GTR_ERR_INTERNAL, "%s: a non-finite value the fingerprint's check did not find",
                      parts[0]->name);
}
