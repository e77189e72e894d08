/* compute.c — the measures of one query, computed with trec_eval 10.0's loops and in its
 * floating-point operation order, so the printed values agree to the last digit. */
#include "eval/eval.h"

#include <math.h>

size_t gtr_eval_columns(const gtr_measures *ms)
{
    size_t n = 0;
    for (int k = 0; k < GTR_M_COUNT; k++)
        if (ms->m[k].on) n += gtr_measure_has_cutoffs((gtr_measure_kind)k) ? ms->m[k].n_cut : 1;
    return n;
}

static bool relevant(int rel) { return rel >= 1; } /* trec_eval's default relevance_level 1 */

/* P.K: relevant in the top K over K; missing ranks count as non-relevant. */
static void precision(const gtr_measure *m, const gtr_query_rels *q, double *v)
{
    size_t ci = 0;
    long rel_so_far = 0;
    for (size_t i = 0; i < q->num_ret; i++) {
        if ((long)i == m->cuts[ci]) {
            v[ci] = (double)rel_so_far / (double)i;
            if (++ci == m->n_cut) return;
        }
        if (relevant(q->rel[i])) rel_so_far++;
    }
    for (; ci < m->n_cut; ci++) v[ci] = (double)rel_so_far / (double)m->cuts[ci];
}

static void recall(const gtr_measure *m, const gtr_query_rels *q, double *v)
{
    if (q->num_rel == 0) return; /* stays 0 */
    size_t ci = 0;
    long rel_so_far = 0;
    for (size_t i = 0; i < q->num_ret; i++) {
        if ((long)i == m->cuts[ci]) {
            v[ci] = (double)rel_so_far / (double)q->num_rel;
            if (++ci == m->n_cut) return;
        }
        if (relevant(q->rel[i])) rel_so_far++;
    }
    for (; ci < m->n_cut; ci++) v[ci] = (double)rel_so_far / (double)q->num_rel;
}

static void map_cut(const gtr_measure *m, const gtr_query_rels *q, double *v)
{
    if (q->num_rel == 0) return;
    size_t ci = 0;
    long rel_so_far = 0;
    double sum = 0.0;
    for (size_t i = 0; i < q->num_ret; i++) {
        if ((long)i == m->cuts[ci]) {
            v[ci] = sum / (double)q->num_rel;
            if (++ci == m->n_cut) return;
        }
        if (relevant(q->rel[i])) {
            rel_so_far++;
            sum += (double)rel_so_far / (double)(i + 1);
        }
    }
    for (; ci < m->n_cut; ci++) v[ci] = sum / (double)q->num_rel;
}

static double average_precision(const gtr_query_rels *q)
{
    long rel_so_far = 0;
    double sum = 0.0;
    for (size_t i = 0; i < q->num_ret; i++)
        if (relevant(q->rel[i])) {
            rel_so_far++;
            sum += (double)rel_so_far / (double)(i + 1);
        }
    return rel_so_far ? sum / (double)q->num_rel : 0.0;
}

static double recip_rank(const gtr_query_rels *q)
{
    for (size_t i = 0; i < q->num_ret; i++)
        if (relevant(q->rel[i])) return 1.0 / (double)(i + 1);
    return 0.0;
}

/* Gain of a ranked document: its judgment level; unjudged and non-pool documents give 0. */
static double gain(int rel) { return rel > 0 ? (double)rel : 0.0; }

/* ndcg over the whole ranking: DCG / ideal DCG, both with log2(rank + 1) discounts. */
static double ndcg(const gtr_query_rels *q)
{
    double dcg = 0.0, ideal = 0.0;
    for (size_t i = 0; i < q->num_ret; i++) {
        double g = gain(q->rel[i]);
        if (g != 0) dcg += g / log2((double)(i + 2));
    }
    for (size_t i = 0; i < q->num_rel; i++) ideal += (double)q->ideal[i] / log2((double)(i + 2));
    return ideal > 0.0 ? dcg / ideal : 0.0;
}

/* ndcg_cut.K: DCG of the top K over the ideal DCG of the top K. */
static void ndcg_cut(const gtr_measure *m, const gtr_query_rels *q, double *v)
{
    size_t ci = 0;
    double sum = 0.0;
    for (size_t i = 0; i < q->num_ret; i++) {
        if ((long)i == m->cuts[ci]) {
            v[ci] = sum;
            if (++ci == m->n_cut) break;
        }
        double g = q->rel[i];
        if (g > 0) sum += g / log2((double)(i + 2));
    }
    for (; ci < m->n_cut; ci++) v[ci] = sum;
    /* normalise each cutoff by the ideal DCG at that cutoff */
    ci = 0;
    double ideal = 0.0;
    for (size_t i = 0; i < q->num_rel; i++) {
        if ((long)i == m->cuts[ci]) {
            if (ideal > 0.0) v[ci] /= ideal;
            if (++ci == m->n_cut) return;
        }
        ideal += (double)q->ideal[i] / log2((double)(i + 2));
    }
    for (; ci < m->n_cut; ci++)
        if (ideal > 0.0) v[ci] /= ideal;
}

void gtr_eval_compute(const gtr_measures *ms, const gtr_query_rels *q, double *out)
{
    size_t col = 0;
    for (int k = 0; k < GTR_M_COUNT; k++) {
        const gtr_measure *m = &ms->m[k];
        if (!m->on) continue;
        size_t width = gtr_measure_has_cutoffs((gtr_measure_kind)k) ? m->n_cut : 1;
        double *v = out + col;
        for (size_t j = 0; j < width; j++) v[j] = 0.0;
        switch ((gtr_measure_kind)k) {
        case GTR_M_NUM_Q: v[0] = 1; break;
        case GTR_M_NUM_RET: v[0] = (double)q->num_ret; break;
        case GTR_M_NUM_REL: v[0] = (double)q->num_rel; break;
        case GTR_M_NUM_REL_RET: {
            long n = 0;
            for (size_t i = 0; i < q->num_ret; i++) n += relevant(q->rel[i]);
            v[0] = (double)n;
            break;
        }
        case GTR_M_MAP: v[0] = average_precision(q); break;
        case GTR_M_RECIP_RANK: v[0] = recip_rank(q); break;
        case GTR_M_P: precision(m, q, v); break;
        case GTR_M_RECALL: recall(m, q, v); break;
        case GTR_M_NDCG: v[0] = ndcg(q); break;
        case GTR_M_NDCG_CUT: ndcg_cut(m, q, v); break;
        case GTR_M_MAP_CUT: map_cut(m, q, v); break;
        case GTR_M_COUNT: break;
        }
        col += width;
    }
}
