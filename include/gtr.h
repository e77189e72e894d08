/*
 * gtr.h — the one public header of libgtr: GTR dense retrieval in C.
 *
 * GTR (Ni et al., arXiv 2112.07899) embeds a text with a T5 encoder, mean pooling,
 * a bias-free Dense projection and L2 normalisation; relevance is the dot product.
 *
 * Conventions (hold for every section below):
 *  - Handles are opaque; each has a matching *_free() that accepts NULL.
 *  - Every call that can fail returns gtr_status (GTR_OK == 0) or a NULL handle, and
 *    fills the caller's gtr_error (which may be NULL) with a code and a one-line message
 *    that says what went wrong and where (file, line, tensor, ...).
 *  - The library never prints to stdout, never exits, and keeps no global mutable state:
 *    two models in one process never interfere.
 *  - Text is UTF-8 with an explicit byte length; NUL bytes are allowed inside texts.
 */
#ifndef GTR_H
#define GTR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function is marked GTR_API: the shared library exports nothing else. */
#if defined(__GNUC__) || defined(__clang__)
#define GTR_API __attribute__((visibility("default")))
#else
#define GTR_API
#endif

#define GTR_VERSION_MAJOR 0
#define GTR_VERSION_MINOR 1
#define GTR_VERSION_PATCH 0
#define GTR_VERSION_STRING "0.1.0"

/* ======================================================================== core */

typedef enum gtr_status {
    GTR_OK = 0,
    GTR_ERR_INVALID_ARG,   /* a caller passed something meaningless */
    GTR_ERR_IO,            /* open/read/write/rename failed */
    GTR_ERR_FORMAT,        /* a file or text is malformed / corrupt / truncated */
    GTR_ERR_NOMEM,         /* allocation failed */
    GTR_ERR_UNSUPPORTED,   /* valid input we do not implement (e.g. a pooling mode) */
    GTR_ERR_MISMATCH,      /* things that must agree do not (model vs index, shapes) */
    GTR_ERR_NOT_FOUND,     /* a named thing (file, tensor, id) does not exist */
    GTR_ERR_NETWORK,       /* a download failed */
    GTR_ERR_INTERRUPTED,   /* a callback asked to stop */
    GTR_ERR_INTERNAL       /* a bug: please report */
} gtr_status;

typedef struct gtr_error {
    gtr_status code;
    char message[1024];
} gtr_error;

/* Short stable name of a status ("format error", ...). */
GTR_API const char *gtr_status_str(gtr_status code);
/* Library version as "MAJOR.MINOR.PATCH". */
GTR_API const char *gtr_version(void);

/* Number of online CPU cores (>= 1). */
GTR_API int gtr_num_cores(void);

/* Thread pool: a fixed set of worker threads that run parallel-for loops. Pass one to
 * the components that compute (model, index, ...), or let them create their own. */
typedef struct gtr_pool gtr_pool;
/* n_threads <= 0 means gtr_num_cores(). */
GTR_API gtr_pool *gtr_pool_create(int n_threads, gtr_error *err);
GTR_API void gtr_pool_free(gtr_pool *pool);
GTR_API int gtr_pool_size(const gtr_pool *pool);

/* Progress callback for long jobs: done/total in the job's unit (documents, steps, bytes;
 * total 0 when unknown). Return non-zero to ask the job to stop (it then fails with
 * GTR_ERR_INTERRUPTED, leaving no half-written output). */
typedef int (*gtr_progress_fn)(void *user, uint64_t done, uint64_t total);

/* ======================================================================== tokenizer */
/* (section owned by src/tokenizer/) */

/* ======================================================================== model */
/* (section owned by src/model/) */

/* ======================================================================== index */
/* (section owned by src/index/) */

/* ======================================================================== bm25 */
/* (section owned by src/bm25/) */

/* ======================================================================== eval */
/* (section owned by src/eval/) */

/* ======================================================================== train */
/* (section owned by src/train/) */

/* ======================================================================== server */
/* (section owned by src/server/) */

#ifdef __cplusplus
}
#endif
#endif /* GTR_H */
