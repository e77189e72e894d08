/* pack.c — packing weight matrices into the panel layout of the chosen kernels (one time, at
 * load), and the int8 weight quantisation. The layout (see gtr_wmat in kernels.h) makes the
 * micro-kernels' weight reads one contiguous stream: panel p, k-group kq holds nr columns of
 * g consecutive k values, exactly what one vector load feeds to vfmadd/vdpbf16ps/vpdpbusd. */
#include "kernels/kernels_internal.h"

#include <stdlib.h>
#include <string.h>

static const size_t kgroup[GTR_W_NTYPES] = {1, 2, 4};
static const size_t esize[GTR_W_NTYPES] = {4, 2, 1};

/* Index of element (column j of panel p, k) in the packed array. */
static inline size_t pidx(size_t p, size_t j, size_t k, size_t nr, size_t kp, size_t g)
{
    return ((p * (kp / g) + k / g) * nr + j) * g + k % g;
}

/* Allocate the packed storage (zeroed: padding must contribute nothing). */
static gtr_status alloc_layout(const gtr_kernels *kern, gtr_wmat *w, size_t n, size_t k,
                               gtr_wtype type, gtr_error *err)
{
    memset(w, 0, sizeof *w);
    if ((unsigned)type >= GTR_W_NTYPES)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "unknown weight type %d", (int)type);
    if (n == 0 || k == 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "empty weight matrix [%zu, %zu]", n, k);
    size_t nr = kern->nr[type], g = kgroup[type], ka = kern->kalign[type] ? kern->kalign[type] : g;
    size_t np = (n + nr - 1) / nr, kp = (k + ka - 1) / ka * ka;
    size_t elems, bytes;
    if (k > SIZE_MAX / 8 || !gtr_mul_ok(np * nr, kp, &elems) ||
        !gtr_mul_ok(elems, esize[type], &bytes))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "weight matrix [%zu, %zu] too large", n, k);
    w->data = gtr_calloc_aligned(bytes, err);
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
    if (type == GTR_W_F32) {
        gtr_cpu_caches caches = gtr_cpu_caches_detect();
        w->kc = gtr_blocking_for(&caches, k).linear_kc;
    }
    w->n = n;
    w->k = k;
    w->type = type;
    w->nr = nr;
    w->kp = kp;
    return GTR_OK;
}

void gtr_quantize_rows_int8(const float *W, size_t n, size_t k, int8_t *q, float *scales)
{
    for (size_t r = 0; r < n; r++) {
        const float *row = W + r * k;
        float amax = 0, inv;
        for (size_t c = 0; c < k; c++) {
            float t = fabsf(row[c]);
            if (t > amax) amax = t;
        }
        gtr_q8_scale(amax, &scales[r], &inv);
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

gtr_status gtr_wmat_pack(const gtr_kernels *kern, gtr_wmat *w, const float *W, size_t n, size_t k,
                         gtr_wtype type, gtr_error *err)
{
    gtr_status st = alloc_layout(kern, w, n, k, type, err);
    if (st != GTR_OK) return st;
    const size_t nr = w->nr, kp = w->kp;
    if (type == GTR_W_F32) {
        float *d = w->data;
        for (size_t r = 0; r < n; r++)
            for (size_t c = 0; c < k; c++) d[pidx(r / nr, r % nr, c, nr, kp, 1)] = W[r * k + c];
    } else if (type == GTR_W_BF16) {
        uint16_t *d = w->data;
        for (size_t r = 0; r < n; r++)
            for (size_t c = 0; c < k; c++)
                d[pidx(r / nr, r % nr, c, nr, kp, 2)] = gtr_bf16_daz(W[r * k + c]);
    } else {
        /* quantise row by row so the temporary stays one row */
        int8_t *q = gtr_xmalloc(k, "int8 quantisation row", err);
        if (!q) {
            gtr_wmat_free(w);
            return GTR_ERR_NOMEM;
        }
        for (size_t r = 0; r < n; r++) {
            float s;
            gtr_quantize_rows_int8(W + r * k, 1, k, q, &s);
            put_int8_row(w, r, q, s);
        }
        free(q);
    }
    return GTR_OK;
}

gtr_status gtr_wmat_pack_bf16(const gtr_kernels *kern, gtr_wmat *w, const uint16_t *W, size_t n,
                              size_t k, gtr_error *err)
{
    gtr_status st = alloc_layout(kern, w, n, k, GTR_W_BF16, err);
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
    gtr_status st = alloc_layout(kern, w, n, k, GTR_W_INT8, err);
    if (st != GTR_OK) return st;
    for (size_t r = 0; r < n; r++) put_int8_row(w, r, q + r * k, scales[r]);
    return GTR_OK;
}

void gtr_wmat_free(gtr_wmat *w)
{
    if (!w) return;
    gtr_free_aligned(w->data);
    free(w->scales);
    free(w->colsum);
    memset(w, 0, sizeof *w);
}
