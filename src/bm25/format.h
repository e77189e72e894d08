/*
 * format.h — the BM25 index file (version 1). Little-endian, one file, memory-mapped:
 *
 *   header (struct bm25_header, 512 bytes): magic "GTRBM25\0", version, sizes, counts, the
 *   section table (offset, size, CRC-32 of each section) and a CRC-32 of the header itself;
 *   then the sections, each starting on a 64-byte boundary:
 *
 *   DOC_ID_OFF  u64[n_docs + 1]   byte offsets into DOC_IDS
 *   DOC_IDS     bytes             document ids, each followed by a NUL
 *   DOC_LEN     u32[n_docs]       analyzed length (number of terms) of each document
 *   DOC_NORM    u8[n_docs]        Lucene's one-byte length norm (SmallFloat.intToByte4)
 *   DOC_RANK    u32[n_docs]       position of each document id in bytewise order (ties)
 *   DOC_BY_ID   u32[n_docs]       documents in bytewise id order (id lookup)
 *   TERM_OFF    u64[n_terms + 1]  byte offsets into TERMS
 *   TERMS       bytes             terms in bytewise order, each followed by a NUL
 *   POST_OFF    u64[n_terms + 1]  term t's postings are POST_*[POST_OFF[t] .. POST_OFF[t+1])
 *   POST_DOC    u32[n_postings]   document numbers, increasing within a term
 *   POST_FREQ   u32[n_postings]   term frequency in that document (>= 1)
 *
 * Documents are numbered in corpus order. Readers validate every field before use.
 */
#ifndef GTR_BM25_FORMAT_H
#define GTR_BM25_FORMAT_H

#include <stdint.h>

#define BM25_MAGIC "GTRBM25"
#define BM25_VERSION 1u
#define BM25_ANALYZER_ENGLISH 1u /* the analyzer of analyzer.h */
#define BM25_ALIGN 64

enum {
    BM25_S_DOC_ID_OFF,
    BM25_S_DOC_IDS,
    BM25_S_DOC_LEN,
    BM25_S_DOC_NORM,
    BM25_S_DOC_RANK,
    BM25_S_DOC_BY_ID,
    BM25_S_TERM_OFF,
    BM25_S_TERMS,
    BM25_S_POST_OFF,
    BM25_S_POST_DOC,
    BM25_S_POST_FREQ,
    BM25_NSECT
};

typedef struct bm25_section {
    uint64_t off, size;
    uint32_t crc, reserved;
} bm25_section;

typedef struct bm25_header {
    char magic[8];
    uint32_t version;
    uint32_t header_size;  /* sizeof(bm25_header) */
    uint64_t file_size;
    uint64_t n_docs;
    uint64_t n_docs_nonempty; /* Lucene's docCount: documents with at least one term */
    uint64_t n_terms;
    uint64_t n_postings;
    uint64_t total_len;    /* Lucene's sumTotalTermFreq */
    uint32_t analyzer;
    uint32_t n_sections;   /* BM25_NSECT */
    bm25_section sect[BM25_NSECT];
    uint8_t pad[512 - 72 - BM25_NSECT * 24 - 8];
    uint32_t reserved;
    uint32_t header_crc;   /* CRC-32 of the bytes before this field */
} bm25_header;

_Static_assert(sizeof(bm25_header) == 512, "bm25 header is 512 bytes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the BM25 index is little-endian");

#endif
