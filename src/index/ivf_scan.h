/*
 * ivf_scan.h — the int8 list scan of the IVF index (ivf.c): exact int32 inner products of
 * int8 list codes with int8-quantised queries, one portable kernel (ivf_scan.c) and one
 * AVX-512 VNNI kernel (ivf_scan_avx512.c, vpdpbusd), chosen at run time.
 *
 * The sums are integers, so every kernel returns the same int32 for the same inputs (tested
 * in test_ivf.c); the float score the search ranks by is computed from it afterwards by the
 * caller, once, in one place. |Σ| ≤ 255·127·dim < 2³¹ for dim ≤ 65536.
 */
#ifndef GTR_IVF_SCAN_H
#define GTR_IVF_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* Quantised query rows are zero-padded to this stride (whole 64-byte vectors). */
static inline size_t gtr_ivf_qstride(size_t dim) { return (dim + 63) / 64 * 64; }

/* out[j * ldo + r] = Σ_d codes[r * dim + d] · q[j][d]  for r < nrows, j < nq.
 * codes: nrows packed rows of dim int8 values (any alignment); q[j]: gtr_ivf_qstride(dim)
 * int8 values, zero past dim, values in [-127, 127]; qsum[j] = Σ_d q[j][d]. */
typedef void (*gtr_ivf_dots_fn)(const int8_t *codes, size_t nrows, size_t dim,
                                const int8_t *const *q, const int32_t *qsum, size_t nq,
                                int32_t *out, size_t ldo);

void gtr_ivf_dots_generic(const int8_t *codes, size_t nrows, size_t dim, const int8_t *const *q,
                          const int32_t *qsum, size_t nq, int32_t *out, size_t ldo);
void gtr_ivf_dots_avx512(const int8_t *codes, size_t nrows, size_t dim, const int8_t *const *q,
                         const int32_t *qsum, size_t nq, int32_t *out, size_t ldo);

/* The int8 stage's scores of n rows and those not below a threshold: s[r] = (float)dots[r] *
 * (qscale * scales[r]) (this expression, in this order: every kernel gives the same floats);
 * the rows r (ascending) with s[r] >= thr go to idx[0..m) and their scores to s_out[0..m);
 * returns m. idx and s_out have room for n + 16. */
typedef size_t (*gtr_ivf_above_fn)(const int32_t *dots, size_t n, float qscale,
                                   const float *scales, float thr, uint32_t *idx, float *s_out);

size_t gtr_ivf_above_generic(const int32_t *dots, size_t n, float qscale, const float *scales,
                             float thr, uint32_t *idx, float *s_out);
size_t gtr_ivf_above_avx512(const int32_t *dots, size_t n, float qscale, const float *scales,
                            float thr, uint32_t *idx, float *s_out);

/* The fastest kernels this CPU runs (GTR_CPU=generic|avx2 selects the portable ones). */
gtr_ivf_dots_fn gtr_ivf_dots_select(void);
gtr_ivf_above_fn gtr_ivf_above_select(void);

/* q (dim floats) → out (gtr_ivf_qstride(dim) int8, zero-padded), q ≈ out · *scale;
 * *sum = Σ out. A zero query gets scale 1 and all-zero codes. */
void gtr_ivf_quantize_query(const float *q, size_t dim, int8_t *out, float *scale, int32_t *sum);

#endif
