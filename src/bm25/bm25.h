/*
 * bm25.h — internals shared by the BM25 builder, reader and searcher.
 */
#ifndef GTR_BM25_INTERNAL_H
#define GTR_BM25_INTERNAL_H

#include "bm25/analyzer.h"
#include "bm25/format.h"

/* An open index: the mapped file and typed views of its sections. */
struct gtr_bm25 {
    gtr_mmap map;
    const bm25_header *h;
    size_t n_docs, n_terms, n_postings;
    const uint64_t *doc_id_off;
    const char *doc_ids;
    const uint32_t *doc_len;
    const uint8_t *doc_norm;
    const uint32_t *doc_rank;
    const uint32_t *doc_by_id;
    const uint64_t *term_off;
    const char *terms;
    const uint64_t *post_off;
    const uint32_t *post_doc;
    const uint32_t *post_freq;
};

/* Lucene's SmallFloat.intToByte4 / byte4ToInt: lengths below 24 exactly, larger ones with 4
 * significant bits. */
uint8_t bm25_len_to_norm(uint32_t len);
uint32_t bm25_norm_to_len(uint8_t norm);

/* Term number of a term, or SIZE_MAX. */
size_t bm25_find_term(const gtr_bm25 *ix, const char *term, size_t len);

#endif
