/*
 * ivf.h — approximate search (issue 14): an inverted-file index over unit vectors.
 *
 * A spherical k-means coarse quantizer splits the corpus into lists; each vector is stored
 * as int8 codes with one per-vector scale (1/4 of float32), and the float32 vectors are kept
 * in the same file so the candidates from the int8 scan are re-ranked exactly. The file is
 * memory-mapped, so search touches only the probed lists' codes and the re-ranked rows: a
 * corpus larger than RAM is searched with bounded resident memory.
 *
 * File (little-endian, every section 64-byte aligned), written atomically (temp, fsync,
 * rename); a CRC-32 over the header and one over the body are checked on open:
 *   header   magic "GTRIVF01", version, dim, n, n_lists, seed, tag, body crc, header crc
 *   centroids  float[n_lists][dim]     (unit length)
 *   offsets    uint64[n_lists + 1]     list l holds rows offsets[l] .. offsets[l+1]
 *   rows       uint32[n]               the vector number of each list row
 *   scales     float[n]                per list row: code * scale ~ vector
 *   codes      int8[n][dim]            per list row
 *   vectors    float[n][dim]           in vector-number order, for exact re-ranking
 *
 * Build is deterministic given its seed and independent of the thread count (every
 * parallel step writes disjoint outputs; every sum runs in vector order on one thread).
 * It is crash-safe and resumable: work goes to "<path>.partial" and "<path>.ckpt" (a
 * checkpoint every checkpoint_every vectors, fsynced), and the same call after a crash, a
 * failed write (a full disk) or a stop asked by the progress callback continues from the last
 * checkpoint to the bytes an uninterrupted build writes (ivf_build.c).
 */
#ifndef GTR_IVF_H
#define GTR_IVF_H

#include "core/core.h"

typedef struct gtr_ivf gtr_ivf;

/* gtr.h's gtr_ann_build_stats: docs_resumed counts the vectors taken from a checkpoint */
typedef gtr_ann_build_stats gtr_ivf_build_stats;

typedef struct gtr_ivf_build_opts {
    uint32_t n_lists;    /* 0: about sqrt(n) */
    uint32_t iters;      /* k-means iterations (0: 10) */
    uint32_t sample;     /* training vectors per list (0: 64); all when n is smaller */
    uint64_t seed;       /* sampling and initial centroids */
    uint64_t tag;        /* stored in the header: what the vectors came from (gtr_ann) */
    gtr_pool *pool;      /* threads for assignment (NULL: the calling thread) */
    const float *centroids; /* [n_lists][dim]: use these lists (no k-means), e.g. an earlier
                               build's, so documents appended later join the same lists */
    size_t checkpoint_every; /* vectors between checkpoints (0: 2^18); blocks never cross one */
    bool no_resume;       /* discard an interrupted build's work instead of resuming it */
    /* assignments done / to do in this call (k-means iterations count their sample, then the
       pass one per vector); non-zero: checkpoint and stop with GTR_ERR_INTERRUPTED */
    int (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
    gtr_ivf_build_stats *stats; /* filled in when not NULL */
} gtr_ivf_build_opts;

/* Build an index of n vectors (dim floats each, expected unit length) into path. */
gtr_status gtr_ivf_build(const char *path, const float *vecs, size_t n, int dim,
                         const gtr_ivf_build_opts *opts, gtr_error *err);

/* The same build (the same bytes) from vectors handed over in pieces, for a corpus larger
 * than memory: rd(user, first, count, out) writes vectors first .. first+count-1 (dim floats
 * each) to out. The build asks for the k-means sample one vector at a time (in a seeded random
 * order), then for every vector once, in order, in blocks of up to GTR_IVF_BLOCK (a resumed
 * build first reads the checkpointed prefix again, in order, to check it). It holds the
 * int8 codes (n * dim bytes), 12 bytes per vector, the k-means sample (n_lists * sample
 * vectors) and one block in memory, never all the float32 vectors, which go straight to the
 * file. */
#define GTR_IVF_BLOCK 8192
typedef gtr_status (*gtr_ivf_read_fn)(void *user, size_t first, size_t count, float *out,
                                      gtr_error *err);
typedef struct gtr_ivf_mem_src { const float *vecs; size_t dim; } gtr_ivf_mem_src;
gtr_status gtr_ivf_build_stream(const char *path, size_t n, int dim, gtr_ivf_read_fn rd,
                                void *user, const gtr_ivf_build_opts *opts, gtr_error *err);

/* Open (mmap) and verify an index file. NULL with err set when missing, truncated or corrupt. */
gtr_ivf *gtr_ivf_open(const char *path, gtr_error *err);
void gtr_ivf_close(gtr_ivf *ix);
size_t gtr_ivf_size(const gtr_ivf *ix);
uint64_t gtr_ivf_tag(const gtr_ivf *ix);
int gtr_ivf_dim(const gtr_ivf *ix);
uint32_t gtr_ivf_n_lists(const gtr_ivf *ix);
const float *gtr_ivf_centroids(const gtr_ivf *ix); /* [n_lists][dim] */
/* Whether a search asks the kernel for its re-ranked float32 rows together before reading
 * them (MADV_WILLNEED: overlapped disk reads). Open turns it on when the vectors exceed half
 * of RAM; results never depend on it. */
void gtr_ivf_set_prefetch(gtr_ivf *ix, bool on);
/* The list vector number v was put in. */
uint32_t gtr_ivf_list_of(const gtr_ivf *ix, uint32_t v);

typedef struct gtr_ivf_search_opts {
    uint32_t nprobe;       /* lists scanned per query (0: 8; capped at n_lists) */
    uint32_t rerank;       /* int8 candidates re-ranked exactly (0: 4*k); >= k */
    const uint8_t *allow;  /* optional bitmap over vector numbers: bit v clear = never returned
                              (deleted documents, filters) */
    gtr_pool *pool;        /* threads (NULL: calling thread); results do not depend on it */
    size_t parallel_min;   /* multiply-adds below which a phase stays on the calling thread
                              (0: 2^21; tests set 1 to exercise the threads on small data) */
    /* final order of equal exact scores: tie(user, a, b) > 0 when a ranks before b
       (NULL: smaller number first) */
    int (*tie)(const void *user, uint32_t a, uint32_t b);
    const void *tie_user;
} gtr_ivf_search_opts;

/* For each of nq queries (dim floats): the top k vector numbers by exact inner product
 * among the re-ranked candidates, best first (ties: opts->tie, else smaller number first).
 * How: the probed lists are the nprobe whose centroids score highest by the index's exact
 * score (score.h; ties: smaller list), found in two passes (int8 query . int8 centroids, then
 * the exact score of the lists the first pass's error bound cannot rule out: ivf.c); the
 * round's (up to 256) queries are grouped by probed list, so each list's int8 codes are read once
 * per round by the scan kernel (ivf_scan.h), the threads splitting the lists; each thread
 * keeps the best `rerank` per query by int8 score (ties: smaller number), whose union holds
 * the overall best whatever the split; these are re-scored with the index's exact score
 * (score.h), the same float exact search gives. Slots past the
 * candidates found get id UINT32_MAX and score -INFINITY. ids/scores: [nq][k]. */
gtr_status gtr_ivf_search(const gtr_ivf *ix, const float *queries, size_t nq, size_t k,
                          const gtr_ivf_search_opts *opts, uint32_t *ids, float *scores,
                          gtr_error *err);

#endif
