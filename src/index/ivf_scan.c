/* ivf_scan.c — the portable int8 list scan and the run-time choice (ivf_scan.h). */
#include "index/ivf_scan.h"

#include "core/core.h"

#include <math.h>
#include <string.h>

void gtr_ivf_dots_generic(const int8_t *codes, size_t nrows, size_t dim, const int8_t *const *q,
                          const int32_t *qsum, size_t nq, int32_t *out, size_t ldo)
{
    (void)qsum;
    for (size_t j = 0; j < nq; j++)
        for (size_t r = 0; r < nrows; r++) {
            const int8_t *c = codes + r * dim;
            int32_t s = 0;
            for (size_t d = 0; d < dim; d++) s += (int32_t)c[d] * q[j][d];
            out[j * ldo + r] = s;
        }
}

size_t gtr_ivf_above_generic(const int32_t *dots, size_t n, float qscale, const float *scales,
                             float thr, uint32_t *idx, float *s_out)
{
    size_t m = 0;
    for (size_t r = 0; r < n; r++) {
        float s = (float)dots[r] * (qscale * scales[r]);
        if (s >= thr) { idx[m] = (uint32_t)r; s_out[m++] = s; }
    }
    return m;
}

gtr_ivf_dots_fn gtr_ivf_dots_select(void)
{
    gtr_cpu c = gtr_cpu_detect();
    if (c.avx512f && c.avx512bw && c.avx512vl && c.avx512_vnni) return gtr_ivf_dots_avx512;
    return gtr_ivf_dots_generic;
}

gtr_ivf_above_fn gtr_ivf_above_select(void)
{
    return gtr_ivf_dots_select() == gtr_ivf_dots_avx512 ? gtr_ivf_above_avx512 : gtr_ivf_above_generic;
}

void gtr_ivf_quantize_query(const float *q, size_t dim, int8_t *out, float *scale, int32_t *sum)
{
    /* no libm calls (fmaxf, lrintf are calls without -ffast-math: ~8 us of a ~90 us batch-1
     * query at dim 768): the same max (NaN skipped), and rounding to nearest even by adding
     * and subtracting 1.5 * 2^23, exact for |x| < 2^22 (here |x| <= 127 up to rounding);
     * NaN becomes -127 as lrintf's LONG_MIN did */
    float mx = 0.0f;
    for (size_t d = 0; d < dim; d++) {
        float a = fabsf(q[d]);
        mx = a > mx ? a : mx;
    }
    float s = mx > 0.0f ? mx / 127.0f : 1.0f, inv = 1.0f / s;
    int32_t t = 0;
    const float round_c = 12582912.0f;
    for (size_t d = 0; d < dim; d++) {
        float y = q[d] * inv + round_c; /* a float: C11 drops any excess precision here */
        float r = y - round_c;
        r = r >= -127.0f ? r : -127.0f;
        r = r <= 127.0f ? r : 127.0f;
        out[d] = (int8_t)r;
        t += out[d];
    }
    memset(out + dim, 0, gtr_ivf_qstride(dim) - dim);
    *scale = s;
    *sum = t;
}
