/* mpi_ann.c — `gtr-mpi ann-build`: one approximate (IVF) index per shard of a sharded index
 * (gtr-mpi index --shards), built by the rank that searches that shard under `gtr-mpi search
 * --split docs --ann PREFIX`: rank r of R builds the IVF files of shards S r / R .. S (r + 1) / R - 1
 * (the shards gtr_index_open_part gives it), each with gtr_ann_build from that shard alone, so
 * the file of shard s is the one `gtr ann-build --index INDEX.shard-s-of-S` writes, whatever the
 * number of ranks. */
#include "dist.h"

#include "../cli/cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "ann-build";

char *dist_shard_ivf_path(const char *prefix, int shard, int n_shards)
{
    size_t n = strlen(prefix) + 48;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.shard-%d-of-%d", prefix, shard, n_shards);
    return p;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -n N gtr-mpi ann-build --index INDEX -o PREFIX [--lists N] [--iters N] [--seed S]\n"
            "       [--checkpoint N] [--restart] [-t THREADS]\n"
            "\n"
            "One IVF index per shard of the sharded index INDEX (gtr-mpi index --shards): shard s of S\n"
            "gets PREFIX.shard-s-of-S, the file `gtr ann-build --index INDEX.shard-s-of-S` writes.\n"
            "Each rank builds the files of the shards it searches under `gtr-mpi search --split docs`\n"
            "(S/N of them; ranks beyond S build none). Search them with\n"
            "`mpirun -n N gtr-mpi search --split docs --index INDEX --ann PREFIX [--nprobe P]`.\n"
            "\n"
            "options (as gtr ann-build, per shard): --lists N (default about sqrt(shard documents)),\n"
            "--iters N (k-means iterations, default 10), --seed S, -t THREADS (per rank);\n"
            "--checkpoint N (documents between checkpoints, default 262144), --restart. Each shard's\n"
            "build is resumable: after a rank dies (killed, out of disk), the same command resumes\n"
            "every unfinished shard file from its last checkpoint, to the same bytes.\n");
}

int mpi_cmd_ann_build(const dist_ctx *d, int argc, char **argv)
{
    enum { O_INDEX = 1000 };
    static const struct option longopts[] = {
        {"index", required_argument, NULL, O_INDEX}, {"output", required_argument, NULL, 'o'},
        CLI_ANN_BUILD_LONGOPTS,                      {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    const char *index_path = NULL, *prefix = NULL;
    gtr_ann_build_options o = gtr_ann_default_build_options();
    int threads = 0;
    long long v;
    int c;
    optind = 1;
    opterr = d->rank == 0;
    while ((c = getopt_long(argc, argv, "o:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_INDEX: index_path = optarg; break;
        case 'o': prefix = optarg; break;
        case CLI_A_LISTS:
        case CLI_A_ITERS:
        case CLI_A_SEED:
        case CLI_A_CKPT:
        case CLI_A_RESTART:
            if (cli_ann_build_option(CMD, c, optarg, &o) < 0) return 2;
            break;
        case 't':
            if (!cli_parse_int(CMD, "--threads", optarg, 1, 1024, &v)) return 2;
            threads = (int)v;
            break;
        case 'h': if (d->rank == 0) usage(stdout); return 0;
        default: if (d->rank == 0) usage(stderr); return 2;
        }
    }
    if (optind != argc) return dist_errorf(d, 2, "unexpected argument '%s' (gtr-mpi ann-build --help)", argv[optind]);
    if (!index_path || !prefix) return dist_errorf(d, 2, "give --index INDEX and -o PREFIX (gtr-mpi ann-build --help)");
    gtr_error err;
    int S = 0, ok = 1;
    if (gtr_index_shard_count(index_path, &S, &err)) ok = dist_errorf(d, 0, "%s", err.message);
    else if (S == 0 && (ok = 0, d->rank == 0))
        dist_errorf(d, 0, "%s is not a sharded index (gtr-mpi index --shards): for one index file use gtr ann-build",
                    index_path);
    if (ok && !(o.pool = gtr_pool_create(threads, &err))) ok = dist_errorf(d, 0, "%s", err.message);
    /* every rank the same options and shards, before any work */
    uint64_t h = dist_hash_str(dist_hash_str(0xcbf29ce484222325ull, index_path), prefix);
    uint64_t nums[4] = {o.n_lists, o.iters, o.seed, (uint64_t)S};
    h = dist_hash(h, nums, sizeof nums);
    dist_agree me = {(uint64_t)ok, 0, 0, h};
    if (!dist_agree_all(d, &me)) {
        gtr_pool_free(o.pool);
        return 1;
    }
    int first = (int)((size_t)S * (size_t)d->rank / (size_t)d->size),
        end = (int)((size_t)S * (size_t)(d->rank + 1) / (size_t)d->size);
    size_t built = 0;
    gtr_ann_build_stats stats;
    o.stats = &stats;
    for (int s = first; ok && s < end; s++) {
        size_t b, e, total;
        gtr_index *ix = gtr_index_open_part(index_path, s, S, 0, o.pool, &b, &e, &total, &err);
        char *out = ix ? dist_shard_ivf_path(prefix, s, S) : NULL;
        if (!ix) ok = dist_errorf(d, 0, "%s", err.message);
        else if (!out) ok = dist_errorf(d, 0, "out of memory");
        else if (o.n_lists > gtr_index_count(ix))
            ok = dist_errorf(d, 0, "--lists %u is more than shard %d's %zu documents", o.n_lists, s,
                             gtr_index_count(ix));
        else if (gtr_ann_build(ix, out, &o, &err))
            ok = dist_errorf(d, 0, "shard %d of %d: %s", s, S, err.message);
        else {
            built++;
            if (stats.note[0]) fprintf(stderr, "gtr-mpi ann-build: shard %d: note: %s\n", s, stats.note);
            if (stats.docs_resumed)
                fprintf(stderr, "gtr-mpi ann-build: shard %d: %llu documents from an interrupted build\n", s,
                        (unsigned long long)stats.docs_resumed);
        }
        free(out);
        gtr_index_free(ix);
    }
    gtr_pool_free(o.pool);
    int all = 0;
    if (MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) all = 0;
    if (!all) return 1;
    if (d->rank == 0)
        fprintf(stderr, "gtr-mpi ann-build: %d IVF files %s.shard-*-of-%d (one per shard, %d ranks)\n", S, prefix, S,
                d->size);
    return 0;
}
