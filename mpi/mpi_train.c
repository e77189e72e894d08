/* mpi_train.c — `gtr-mpi train`: `gtr train` (cli/cmd_train.c) with data parallelism over MPI.
 * Every rank runs the same command; the library's trainer does the rest through the four
 * collectives below (see gtr_train_comm in gtr.h): each rank encodes its micro-batches of the
 * global batch, the embeddings are all-gathered so every query is scored against every passage
 * of the global batch, gradients are summed in micro-batch order along the chain of ranks, and
 * every rank takes the same optimizer step. The trained model is bit-identical to `gtr train`'s
 * with the same --batch and --micro-batch. Rank 0 writes the checkpoints, the metrics log and
 * the model; `--resume` works with any number of ranks (every rank reads the checkpoint). */
#include "dist.h"

#include "../cli/cli.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { TAG_GRAD = 31 };

static int mpi_allgather(void *user, const void *mine, size_t n, void *all, const size_t *counts)
{
    const dist_ctx *d = user;
    int *cnt = malloc(2 * (size_t)d->size * sizeof *cnt), *disp = cnt ? cnt + d->size : NULL;
    if (!cnt) return 1;
    size_t at = 0;
    for (int r = 0; r < d->size; r++) {
        if (counts[r] > INT_MAX || at > INT_MAX) {
            free(cnt);
            return 1;
        }
        cnt[r] = (int)counts[r];
        disp[r] = (int)at;
        at += counts[r];
    }
    int rc = MPI_Allgatherv(mine, (int)n, MPI_BYTE, all, cnt, disp, MPI_BYTE, MPI_COMM_WORLD);
    free(cnt);
    return rc != MPI_SUCCESS;
}

/* the trainer sends at most 2^18 floats at a time */
static int mpi_send(void *user, int to, const float *x, size_t n)
{
    (void)user;
    return n > INT_MAX || MPI_Send(x, (int)n, MPI_FLOAT, to, TAG_GRAD, MPI_COMM_WORLD) != MPI_SUCCESS;
}

static int mpi_recv(void *user, int from, float *x, size_t n)
{
    (void)user;
    return n > INT_MAX ||
           MPI_Recv(x, (int)n, MPI_FLOAT, from, TAG_GRAD, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS;
}

static int mpi_bcast(void *user, int root, float *x, size_t n)
{
    (void)user;
    return n > INT_MAX || MPI_Bcast(x, (int)n, MPI_FLOAT, root, MPI_COMM_WORLD) != MPI_SUCCESS;
}

typedef struct {
    const dist_ctx *d;
    uint64_t argv_hash;
} agree_ctx;

static bool agree(void *user, bool ready, uint64_t identity)
{
    agree_ctx *a = user;
    /* identity covers the initial model's parameters, the data, the options and the step; a
     * difference there or in the command line is "other options or files" */
    dist_agree me = {ready, 0, 0, dist_hash(a->argv_hash, &identity, sizeof identity)};
    return dist_agree_all(a->d, &me);
}

int mpi_cmd_train(const dist_ctx *d, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (d->rank == 0) {
                printf("`mpirun -n N gtr-mpi train ...` takes `gtr train`'s options (below): data-parallel,\n"
                       "bit-identical to `gtr train` with the same --batch and --micro-batch. Each rank\n"
                       "back-propagates about (batch / micro-batch) / N micro-batches; --micro-batch\n"
                       "batch/N gives every rank one. Rank 0 writes the model, checkpoints and metrics.\n\n");
                return cli_train_main(argc, argv, NULL);
            }
            return 0;
        }
    dist_write_pid(d);
    /* every rank must run the same command line (options, files, cadence) */
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 1; i < argc; i++) h = dist_hash_str(h, argv[i]);
    agree_ctx ac = {d, h};
    char cmd[64];
    snprintf(cmd, sizeof cmd, "train: rank %d", d->rank);
    gtr_train_comm comm = {.size = sizeof comm, .rank = d->rank, .n_ranks = d->size, .user = (void *)d,
                           .allgather = mpi_allgather, .send = mpi_send, .recv = mpi_recv, .bcast = mpi_bcast};
    cli_train_dist dist = {cmd, &comm, agree, &ac};
    return cli_train_main(argc, argv, &dist);
}
