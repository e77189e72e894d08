/* mpi_index_shards.c — `gtr-mpi index --shards`: a sharded index (gtr.h, gtr_index_build_shard).
 * Rank r of N reads, encodes and writes only shard r (its byte range of the corpus, cut at line
 * starts), each shard crash-safe and resumable on its own; once every rank has finished, rank 0
 * checks the shards (consecutive pieces, one model, no id twice) and writes the manifest at
 * INDEX, which every command opens as one index, bit-identical to `gtr index`'s file. */
#include "dist.h"

#include <stdlib.h>
#include <string.h>

static gtr_status model_encode(void *user, const char *const *texts, const size_t *lens, size_t n, float *out,
                               gtr_error *err)
{
    return gtr_model_encode(user, texts, lens, n, out, err);
}

/* 1 on every rank when every rank passed ok = 1 */
static int all_ok(int ok)
{
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) return 0;
    return all;
}

int dist_index_shards(const dist_ctx *d, gtr_model *m, const char *description, const char *corpus, const char *out,
                      gtr_index_build_options *o, bool quiet)
{
    gtr_error err;
    uint64_t lines = 0, first_line = 0;
    int ok = gtr_index_shard_range(corpus, d->rank, d->size, NULL, NULL, &lines, &err) == GTR_OK;
    if (!ok) dist_errorf(d, 1, "%s", err.message);
    /* line numbers in messages: the lines of the shards before this one */
    if (MPI_Exscan(&lines, &first_line, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS) ok = 0;
    if (d->rank == 0) first_line = 0; /* MPI_Exscan leaves rank 0's undefined */
    if (!all_ok(ok)) return 1;
    gtr_index_encoder enc = {model_encode, m, gtr_model_dim(m), gtr_model_fingerprint(m), description};
    gtr_index_build_stats st;
    memset(&st, 0, sizeof st);
    ok = gtr_index_build_shard(&enc, corpus, d->rank, d->size, first_line, out, o, &st, &err) == GTR_OK;
    if (!ok) dist_errorf(d, 1, "shard %d of %d: %s", d->rank, d->size, err.message);
    else if (!quiet && st.note[0]) dist_errorf(d, 0, "%s", st.note);
    if (!all_ok(ok)) {
        if (d->rank == 0)
            dist_errorf(d, 1, "a shard failed (its message is above); the finished shards are kept: run the "
                              "same command again to resume");
        return 1;
    }
    uint64_t mine[3] = {st.docs_total, st.docs_encoded, st.docs_resumed}, sum[3] = {0, 0, 0};
    MPI_Reduce(mine, sum, 3, MPI_UINT64_T, MPI_SUM, 0, MPI_COMM_WORLD);
    int rc = 0;
    if (d->rank == 0) {
        if (gtr_index_write_manifest(corpus, out, d->size, &err))
            rc = dist_errorf(d, 1, "%s", err.message);
        else if (!quiet)
            fprintf(stderr, "gtr-mpi index: %llu documents in %s (manifest) + %d shards %s.shard-*-of-%d "
                            "(%llu encoded now, %llu kept from earlier runs)\n",
                    (unsigned long long)sum[0], out, d->size, out, d->size, (unsigned long long)sum[1],
                    (unsigned long long)sum[2]);
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return rc;
}
