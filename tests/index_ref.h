/* index_ref.h — for the index tests: the score definition of src/index/score.h written again,
 * independently, and a brute-force top-k to compare the index's answers with. */
#ifndef GTR_TESTS_INDEX_REF_H
#define GTR_TESTS_INDEX_REF_H

#include "support/testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline float ref_score(const float *q, const float *d, size_t dim)
{
    float lane[16];
    for (int l = 0; l < 16; l++) lane[l] = 0.0f;
    size_t padded = (dim + 15) / 16 * 16;
    for (size_t k = 0; k < padded; k++) {
        float a = k < dim ? q[k] : 0.0f, b = k < dim ? d[k] : 0.0f;
        lane[k % 16] = fmaf(a, b, lane[k % 16]);
    }
    float s8[8], s4[4], s2[2];
    for (int l = 0; l < 8; l++) s8[l] = lane[l] + lane[l + 8];
    for (int l = 0; l < 4; l++) s4[l] = s8[l] + s8[l + 4];
    for (int l = 0; l < 2; l++) s2[l] = s4[l] + s4[l + 2];
    return s2[0] + s2[1];
}

typedef struct {
    float s;
    size_t doc;
    const char *id;
    size_t len;
} ref_hit;

static inline int ref_cmp(const void *pa, const void *pb)
{
    const ref_hit *a = pa, *b = pb;
    if (a->s != b->s) return a->s > b->s ? -1 : 1;
    int c = memcmp(a->id, b->id, a->len < b->len ? a->len : b->len);
    if (!c) c = a->len < b->len ? -1 : a->len > b->len;
    return -c; /* id descending */
}

/* brute force: score everything, sort fully, compare the top k with the index's answer */
static inline void check_against_brute_force(const gtr_index *ix, const float *Q, size_t nq, size_t k,
                                      const gtr_hit *hits, const size_t *n_hits)
{
    size_t n = gtr_index_count(ix), dim = (size_t)gtr_index_dim(ix);
    ref_hit *all = malloc(n * sizeof *all);
    assert_non_null(all);
    for (size_t q = 0; q < nq; q++) {
        for (size_t j = 0; j < n; j++) {
            all[j].s = ref_score(Q + q * dim, gtr_index_vector(ix, j), dim);
            all[j].doc = j;
            all[j].id = gtr_index_doc_id(ix, j, &all[j].len);
            /* and the float score is the true inner product up to float rounding */
            double exact = 0;
            for (size_t t = 0; t < dim; t++) exact += (double)Q[q * dim + t] * gtr_index_vector(ix, j)[t];
            assert_true(fabs(exact - all[j].s) < 1e-5);
        }
        qsort(all, n, sizeof *all, ref_cmp);
        size_t want = k < n ? k : n;
        assert_int_equal(n_hits[q], want);
        for (size_t r = 0; r < want; r++) {
            float got = (float)hits[q * k + r].score; /* a float score, held in the hit's double */
            if (hits[q * k + r].doc != all[r].doc || memcmp(&got, &all[r].s, 4) != 0)
                fail_msg("query %zu rank %zu: got doc %zu score %.9g, brute force doc %zu score %.9g", q, r,
                         hits[q * k + r].doc, hits[q * k + r].score, all[r].doc, all[r].s);
        }
    }
    free(all);
}

#endif
