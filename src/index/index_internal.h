/*
 * index_internal.h — what the files of src/index/ share: the open index, the section writer,
 * the id set used for duplicate detection, the top-k heap and the compact-copy encoder.
 */
#ifndef GTR_INDEX_INTERNAL_H
#define GTR_INDEX_INTERNAL_H

#include "core/core.h"
#include "index/format.h"
#include "index/score.h"

/* A validated, memory-mapped index (reader.c). Pointers point into map. */
struct gtr_index {
    char *path;
    gtr_mmap map;
    gtr_ix_header h;
    size_t n;
    size_t dim;
    const uint64_t *id_off;   /* [n + 1] */
    const char *id_bytes;
    const uint64_t *snip_off; /* [n + 1] */
    const char *snip_bytes;
    const float *vectors;     /* [n, dim] */
    const void *compact;      /* [n, dim] f16 or int8, or NULL */
    const float *caux;        /* [n, 3]: scale, error bound, norm */
    const uint8_t *dead;      /* DEAD section: bit d set = document d replaced (NULL: none) */
    size_t n_dead;
    char *model_desc;         /* from META (malloc'd, "" when absent) */
    char *model_hint;         /* from META (malloc'd) or NULL */
    bool mapped;              /* map is ours to unmap (not a caller's buffer) */
    void *owned;              /* gtr_index_wrap: the id tables it allocated (else NULL) */
};

/* Validate and use an index held in memory (the fuzzer; data must outlive the index). */
gtr_index *gtr_ix_open_buffer(const void *data, size_t size, const char *name, unsigned flags,
                              gtr_pool *pool, gtr_error *err);

/* Compare the ids of documents a and b bytewise (memcmp, then shorter first): <0, 0, >0. */
int gtr_ix_id_cmp(const gtr_index *ix, size_t a, size_t b);

/* Whether a search may return document d: not replaced (ix->dead) and, with a filter
 * (allow, NULL: none), allowed. */
static inline bool gtr_ix_allowed(const gtr_index *ix, const uint8_t *allow, size_t d)
{
    if (ix->dead && (ix->dead[d >> 3] >> (d & 7) & 1)) return false;
    return !allow || (allow[d >> 3] >> (d & 7) & 1);
}

/* What a side file (IVF file, its deletions, the fields file) was made from: the model, the
 * count and every id of the first n documents (ann.c). */
uint64_t gtr_ix_ids_tag(const gtr_index *ix, uint64_t n);

/* ---- section writer (writer.c): streams sections into an atomic file, checksumming each
 * chunk as it goes, then writes the CRC section and the header last. */
typedef struct gtr_ix_writer {
    gtr_atomic_file f;
    bool open;
    gtr_ix_header h;
    uint64_t pos;           /* bytes written so far */
    int cur;                /* section being written, -1 none */
    uint32_t n_declared;    /* sections the table has room for */
    uint32_t *crcs;
    size_t n_crcs, cap_crcs;
    uint32_t chunk_crc;     /* running CRC of the current chunk */
    uint64_t chunk_fill;    /* bytes in the current chunk */
} gtr_ix_writer;

gtr_status gtr_ix_writer_open(gtr_ix_writer *w, const char *path, uint64_t n_docs, uint32_t dim,
                              uint64_t fingerprint, uint32_t compact, uint32_t n_sections,
                              gtr_error *err);
gtr_status gtr_ix_writer_begin(gtr_ix_writer *w, uint32_t kind, gtr_error *err);
gtr_status gtr_ix_writer_put(gtr_ix_writer *w, const void *data, size_t len, gtr_error *err);
gtr_status gtr_ix_writer_end(gtr_ix_writer *w, gtr_error *err);
/* Writes CRCS (must be the last declared section), the header, and renames into place. */
gtr_status gtr_ix_writer_commit(gtr_ix_writer *w, gtr_error *err);
void gtr_ix_writer_abort(gtr_ix_writer *w);
/* Serialise a header + section table into out (GTR_IX_HEADER_BYTES + 32 * n_sections bytes),
 * computing the header CRC. */
void gtr_ix_header_encode(const gtr_ix_header *h, uint8_t *out);

/* ---- id set (idset.c): open addressing over ids copied into an arena, each with the corpus
 * line it came from (0 = from the base index). */
typedef struct gtr_ix_idset {
    uint64_t *slots;   /* 0 empty, else entry index + 1 */
    size_t cap;        /* power of two */
    gtr_buf bytes;     /* the ids, concatenated */
    uint64_t *off;     /* entry i = bytes[off[i], off[i+1]) */
    uint64_t *line;
    size_t n, cap_entries;
} gtr_ix_idset;

void gtr_ix_idset_init(gtr_ix_idset *s);
void gtr_ix_idset_free(gtr_ix_idset *s);
/* Adds id unless present. *found receives the existing entry's line + 1 when present
 * (so 0 means "added"). */
gtr_status gtr_ix_idset_add(gtr_ix_idset *s, const char *id, size_t len, uint64_t line,
                            uint64_t *found, gtr_error *err);
bool gtr_ix_idset_has(const gtr_ix_idset *s, const char *id, size_t len);

/* ---- top-k heap (topk.c): the worst kept hit on top, so a candidate is compared with one
 * element; equal scores are ordered by id (descending) for a total, deterministic order. */
typedef struct gtr_ix_topk {
    gtr_hit *h;
    size_t n, k;
} gtr_ix_topk;

/* true when hit a ranks before hit b (higher score, or equal score and larger id). */
static inline bool gtr_ix_better(const gtr_index *ix, float sa, size_t da, float sb, size_t db)
{
    if (sa != sb) return sa > sb;
    return gtr_ix_id_cmp(ix, da, db) > 0;
}
void gtr_ix_topk_push(const gtr_index *ix, gtr_ix_topk *t, float score, size_t doc);
/* Sort t's hits best first (destroys the heap order). */
void gtr_ix_topk_sort(const gtr_index *ix, gtr_ix_topk *t);

/* ---- compact copy (compact.c) */
/* Bytes per document of the compact codes. */
size_t gtr_ix_compact_row_bytes(uint32_t kind, size_t dim);
/* Encode one float32 vector: codes (row bytes) and its CAUX entry {scale, error, norm}, the
 * error bound ||v - decoded|| and the norm ||v|| both rounded up. */
void gtr_ix_compact_encode(uint32_t kind, const float *v, size_t dim, void *codes, float aux[3]);

/* ---- search internals (search.c, compact.c) */
gtr_status gtr_ix_search_exact(const gtr_index *ix, const gtr_ix_kernels *kern, const float *q,
                               size_t qstride, size_t nq, size_t k, gtr_pool *pool,
                               gtr_hit *hits, size_t *n_hits, gtr_error *err);
/* only documents [lo, hi) that allow (NULL: all) lets through (gtr_ix_allowed) */
gtr_status gtr_ix_search_range(const gtr_index *ix, const gtr_ix_kernels *kern, const float *q,
                               size_t qstride, size_t nq, size_t k, size_t lo, size_t hi,
                               const uint8_t *allow, gtr_pool *pool, gtr_hit *hits, size_t *n_hits,
                               gtr_error *err);
/* the same with the cache blocking given (gtr_ix_search_exact takes this CPU's); the hits do
 * not depend on it */
gtr_status gtr_ix_search_exact_blocked(const gtr_index *ix, const gtr_ix_kernels *kern,
                                       const gtr_blocking *blk, const float *q, size_t qstride,
                                       size_t nq, size_t k, gtr_pool *pool, gtr_hit *hits,
                                       size_t *n_hits, gtr_error *err);
gtr_status gtr_ix_search_compact(const gtr_index *ix, const gtr_ix_kernels *kern,
                                 const float *q, size_t qstride, size_t nq, size_t k,
                                 const uint8_t *allow, gtr_pool *pool, gtr_hit *hits,
                                 size_t *n_hits, gtr_error *err);

/* ---- sharded indexes (shards.c): a manifest naming shard files, each an ordinary index of
 * one contiguous byte range of the corpus, opened together as one index. */
typedef struct gtr_ix_range {
    int shard, n_shards;
    uint64_t begin, end;     /* corpus bytes [begin, end), both at line starts */
    uint64_t first_line;     /* corpus lines before begin (line numbers in messages) */
    uint64_t lines;          /* lines in the range */
    uint64_t corpus_bytes;   /* the corpus's size */
    uint32_t corpus_crc;     /* CRC-32 of the range's bytes */
} gtr_ix_range;
/* the "shard" object of a shard's META (new reference) */
struct json_t *gtr_ix_range_json(const gtr_ix_range *r);
/* gtr_index_build_with, reading only range's bytes when range is not NULL */
gtr_status gtr_ix_build_range(const gtr_index_encoder *enc, const char *corpus, const char *base,
                              const gtr_ix_range *range, const char *out_path,
                              const gtr_index_build_options *opts, gtr_index_build_stats *stats,
                              gtr_error *err);
/* true when path starts like a manifest (a cheap look at its first bytes) */
bool gtr_ix_is_manifest(const char *path);
/* Open shards [first, end) of the manifest at path as one index (all of them: 0, -1). */
gtr_index *gtr_ix_open_manifest(const char *path, int first, int end, unsigned flags, gtr_pool *pool,
                                gtr_error *err);

#endif
