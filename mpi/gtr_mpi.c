/* gtr_mpi.c — bin/gtr-mpi: the gtr commands that run across MPI ranks (see dist.h). */
#include "dist.h"
#include "../cli/cli.h"

#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: mpirun -n N gtr-mpi COMMAND [options]   (gtr-mpi COMMAND --help)\n"
                 "\n"
                 "commands:\n"
                 "  index    encode a corpus into an index, byte-identical to `gtr index`\n"
                 "  search   search a file of queries (dense, bm25, hybrid), run identical to `gtr search`\n"
                 "  beir     BEIR evaluation of one method, metrics identical to `gtr beir`\n"
                 "  train    data-parallel `gtr train`, model bit-identical to `gtr train`'s\n"
                 "  ann-build  one IVF index per shard of a sharded index (search --split docs --ann)\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    /* errors come back to us, so a lost rank is reported with what was being done */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    dist_ctx d = {0, 1, "main"};
    MPI_Comm_rank(MPI_COMM_WORLD, &d.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d.size);
    int rc;
    if (!cli_check_cpu_env(d.rank == 0 ? "gtr-mpi" : NULL)) { /* every rank refuses; rank 0 says why */
        rc = 2;
    } else if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        if (d.rank == 0) usage(argc < 2 ? stderr : stdout);
        rc = argc < 2 ? 2 : 0;
    } else if (!strcmp(argv[1], "index")) {
        d.cmd = "index";
        rc = mpi_cmd_index(&d, argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "search")) {
        d.cmd = "search";
        rc = mpi_cmd_search(&d, argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "beir")) {
        d.cmd = "beir";
        rc = mpi_cmd_beir(&d, argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "train")) {
        d.cmd = "train";
        rc = mpi_cmd_train(&d, argc - 1, argv + 1);
    } else if (!strcmp(argv[1], "ann-build")) {
        d.cmd = "ann-build";
        rc = mpi_cmd_ann_build(&d, argc - 1, argv + 1);
    } else {
        if (d.rank == 0) fprintf(stderr, "gtr-mpi: unknown command '%s' (gtr-mpi --help)\n", argv[1]);
        rc = 2;
    }
    /* 130: train stopped by a signal, every rank at the same step (rank 0 checkpointed):
     * a clean exit with that status; any other failure ends every rank, mpirun exits non-zero */
    if (rc == 130) {
        MPI_Finalize();
        return rc;
    }
    if (rc) MPI_Abort(MPI_COMM_WORLD, rc);
    MPI_Finalize();
    return 0;
}
