/*
 * analyzer.h — the BM25 text analyzer: Anserini's default English analyzer (Lucene's
 * StandardTokenizer → EnglishPossessiveFilter → LowerCaseFilter → StopFilter with Lucene's
 * English stop set → PorterStemFilter), re-implemented over Unicode code points.
 */
#ifndef GTR_BM25_ANALYZER_H
#define GTR_BM25_ANALYZER_H

#include "core/core.h"

/* Character classes of Lucene's StandardTokenizer grammar (UAX #29 word-break values plus the
 * scripts it treats specially). Order must match gen_unicode_data.pl. */
typedef enum bm25_wb {
    BM25_WB_OTHER = 0,
    BM25_WB_ALETTER,
    BM25_WB_HEBREW,
    BM25_WB_NUMERIC,
    BM25_WB_KATAKANA,
    BM25_WB_EXTENDNUMLET,
    BM25_WB_MIDLETTER,
    BM25_WB_MIDNUM,
    BM25_WB_MIDNUMLET,
    BM25_WB_SQUOTE,
    BM25_WB_DQUOTE,
    BM25_WB_EXTEND, /* Extend, Format, ZWJ: attach to the character before them */
    BM25_WB_RI,
    BM25_WB_HAN,
    BM25_WB_HIRAGANA,
    BM25_WB_SA, /* South-East Asian scripts (Line_Break=Complex_Context): runs kept whole */
    BM25_WB_EMOJI
} bm25_wb;

typedef struct bm25_wb_range {
    uint32_t lo, hi;
    bm25_wb cls;
} bm25_wb_range;
typedef struct bm25_case_pair {
    uint32_t cp, lower;
} bm25_case_pair;

/* Generated tables (unicode_data.c). */
extern const bm25_wb_range bm25_wb_ranges[];
extern const size_t bm25_wb_nranges;
extern const bm25_case_pair bm25_lower_pairs[];
extern const size_t bm25_lower_npairs;

bm25_wb bm25_wb_class(uint32_t cp);
uint32_t bm25_lower(uint32_t cp); /* Unicode simple lowercase mapping */

/* Porter stemmer (Lucene's PorterStemmer, i.e. Porter's own C release) over code points, in
 * place; returns the new length. Words of at most two characters are left alone. */
size_t bm25_porter_stem(uint32_t *w, size_t n);
/* Lucene's English stop word set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET). */
bool bm25_is_stopword(const uint32_t *w, size_t n);

/* Scratch buffers for analyzing many texts (one per thread). */
typedef struct bm25_scratch {
    uint32_t *cps;
    size_t cps_cap;
    char *term;
    size_t term_cap;
} bm25_scratch;
void bm25_scratch_free(bm25_scratch *s);

/* Called for each indexed term (UTF-8, not NUL-terminated) in text order. */
typedef gtr_status (*bm25_term_fn)(void *user, const char *term, size_t len, gtr_error *err);
/* Analyze len bytes of UTF-8 (invalid bytes read as U+FFFD, as a Java decoder does). */
gtr_status bm25_analyze(bm25_scratch *s, const char *text, size_t len, bm25_term_fn fn,
                        void *user, gtr_error *err);

#endif
