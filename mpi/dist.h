/*
 * dist.h — gtr-mpi: the gtr commands that run across MPI ranks (issue 18).
 *
 * Why a separate binary: MPI stays out of libgtr and bin/gtr entirely (they build and run
 * without Open MPI); bin/gtr-mpi is built only where `mpicc` exists and links the same static
 * library. Every rank runs the same command; rank 0 does the file I/O and the others lend
 * their cores. Messages are "gtr-mpi <cmd>: rank R: ..." so a failing rank is named.
 */
#ifndef GTR_MPI_DIST_H
#define GTR_MPI_DIST_H

#include "gtr.h"

#include <mpi.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct dist_ctx {
    int rank, size;
    const char *cmd; /* "index", ... for messages */
} dist_ctx;

/* "gtr-mpi CMD: rank R: message" on stderr; returns status. */
int dist_errorf(const dist_ctx *d, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What every rank must agree on before any work: whether it is ready (its model loaded), the
 * model's identity and a digest of the options that change the output. Collective: each rank
 * passes its own; returns true on every rank only when all are ready and equal, otherwise
 * rank 0 prints which rank differs (or failed) and every rank returns false. */
typedef struct dist_agree {
    uint64_t ready; /* 1 ready, 0 failed (that rank printed why) */
    uint64_t fingerprint;
    uint64_t dim;
    uint64_t options; /* dist_hash of the options */
} dist_agree;
bool dist_agree_all(const dist_ctx *d, const dist_agree *mine);
uint64_t dist_hash(uint64_t h, const void *p, size_t n);
uint64_t dist_hash_str(uint64_t h, const char *s);

/* A distributed encoder (the gtr_encode_fn of rank 0's index build): each batch of n texts is
 * cut into size contiguous pieces; piece r goes to rank r, rank 0 encodes piece 0 itself, and
 * the vectors come back into place. The encoder is batch- and thread-invariant (each text's
 * vector does not depend on its neighbours), so the index is the single-process one, bit for
 * bit. The other ranks sit in dist_serve_encode until rank 0 sends stop. */
typedef struct dist_encoder {
    const dist_ctx *d;
    gtr_model *model;
    int dim;
} dist_encoder;
gtr_status dist_encode(void *user, const char *const *texts, const size_t *lens, size_t n, float *out,
                       gtr_error *err);
/* Workers: encode what rank 0 sends until it says stop; returns 0, or 1 after an MPI error. */
int dist_serve_encode(const dist_ctx *d, gtr_model *m);
/* Rank 0: tell every worker to stop serving. */
void dist_stop_workers(const dist_ctx *d);

/* With GTR_MPI_PIDDIR set, write this process's id to DIR/rankR.pid (the fault tests kill a
 * chosen rank). */
void dist_write_pid(const dist_ctx *d);

/* `gtr-mpi index --shards` after the agreement check (mpi_index_shards.c): every rank builds its
 * shard, rank 0 writes the manifest; 0 on every rank, or 1 on every rank after a failure. */
int dist_index_shards(const dist_ctx *d, gtr_model *m, const char *description, const char *corpus, const char *out,
                      gtr_index_build_options *o, bool quiet);
int mpi_cmd_index(const dist_ctx *d, int argc, char **argv);
int mpi_cmd_search(const dist_ctx *d, int argc, char **argv);
int mpi_cmd_beir(const dist_ctx *d, int argc, char **argv);
int mpi_cmd_train(const dist_ctx *d, int argc, char **argv);
int mpi_cmd_ann_build(const dist_ctx *d, int argc, char **argv);
/* "PREFIX.shard-s-of-S": the IVF file of shard s (gtr-mpi ann-build), malloc'd; NULL when out of memory */
char *dist_shard_ivf_path(const char *prefix, int shard, int n_shards);

#endif
