/* mpi_index.c — `gtr-mpi index`: one index built by every rank's cores.
 *
 * Rank 0 runs the ordinary resumable build (gtr_index_build_with: corpus reading, checkpoints,
 * the atomic final rename) with a distributed encoder: each batch of --batch x ranks passages
 * is cut into one piece per rank. Because a passage's vector does not depend on its batch, the
 * index is byte-identical to `gtr index`'s; because only rank 0 writes, the crash safety is
 * that of `gtr index`: a rank that dies ends the job (mpirun names it), INDEX never appears
 * half-written, and the same command (with any number of ranks, or plain `gtr index`)
 * resumes from INDEX.ckpt. */
#include "dist.h"

#include "../cli/cli.h"

#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -n N gtr-mpi index -m MODEL_DIR -c CORPUS -o INDEX [options]\n"
            "\n"
            "`gtr index` across N MPI ranks: the same index file, byte for byte, with every rank\n"
            "encoding a share of each batch. Rank 0 reads the corpus and writes INDEX (so INDEX,\n"
            "the corpus and the model need only be on rank 0's file system, and the model on\n"
            "every rank's). Resumable like `gtr index`: after a failure run the same command again.\n"
            "\n"
            "options (as `gtr index`):\n"
            "  -m, --model DIR      -c, --corpus FILE      -o, --output INDEX\n"
            "      --batch N        passages per encode call on each rank (default 32)\n"
            "      --checkpoint N   --snippet-bytes N   --restart   --store f16|int8\n"
            "  -t, --threads N      threads per rank (default: all cores of its machine)\n"
            "\n"
            "      --shards         a sharded index instead of one file: rank R reads, encodes and\n"
            "                       writes only its piece of the corpus (cut at line starts) into\n"
            "                       INDEX.shard-R-of-N, each resumable on its own; rank 0 then writes\n"
            "                       the manifest INDEX. Every command opens INDEX as one index, with\n"
            "                       the documents, order and vectors of `gtr index`'s file. The\n"
            "                       corpus and INDEX's directory must be on every rank's file system.\n"
            "      --dtype f32|bf16|int8   --max-len N   -q, --quiet\n");
}

/* the model's description minus its "compute:" and "memory to load:" lines, as
 * gtr_index_build records it */
static char *describe(const gtr_model *m)
{
    const char *d = gtr_model_describe(m);
    size_t n = strlen(d), k = 0;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    while (*d) {
        const char *nl = strchr(d, '\n');
        size_t len = nl ? (size_t)(nl - d) + 1 : strlen(d);
        if (strncmp(d, "compute:", 8) != 0 && strncmp(d, "memory to load:", 15) != 0) memcpy(out + k, d, len), k += len;
        d += len;
    }
    while (k && out[k - 1] == '\n') k--;
    out[k] = '\0';
    return out;
}

int mpi_cmd_index(const dist_ctx *d, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"corpus", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},        {"shards", no_argument, NULL, 'S'},
        CLI_INDEX_LONGOPTS,
        {NULL, 0, NULL, 0}};
    const char *model_dir = NULL, *corpus = NULL, *out = NULL;
    gtr_index_build_options o = gtr_index_default_build_options();
    gtr_model_options mo;
    if (!cli_model_options("index", &mo)) return 2;
    bool quiet = false, shards = false;
    int c;
    optind = 1;
    opterr = d->rank == 0; /* one usage message, not one per rank */
    while ((c = getopt_long(argc, argv, "m:c:o:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'c': corpus = optarg; break;
        case 'o': out = optarg; break;
        case 'q': quiet = true; break;
        case 'S': shards = true; break;
        case 'h': if (d->rank == 0) usage(stdout); return 0;
        default: {
            int r = cli_index_option(c, optarg, &o, &mo);
            if (r == 1) break;
            if (r == 0 && d->rank == 0) usage(stderr);
            return 2;
        }
        }
    }
    if (optind != argc) return dist_errorf(d, 2, "unexpected argument '%s' (gtr-mpi index --help)", argv[optind]);
    if (!model_dir || !corpus || !out)
        return dist_errorf(d, 2, "need -m MODEL_DIR, -c CORPUS and -o INDEX (gtr-mpi index --help)");
    dist_write_pid(d);

    /* every rank loads the model, then all must agree before any work */
    gtr_error err;
    mo.batch_size = o.batch_size; /* the memory check counts the activations of one batch */
    gtr_model *m = gtr_model_load(model_dir, &mo, &err);
    if (!m) dist_errorf(d, 1, "%s", err.message);
    char *hint = d->rank == 0 ? realpath(model_dir, NULL) : NULL;
    uint64_t h = dist_hash_str(0xcbf29ce484222325ull, corpus);
    h = dist_hash_str(h, out);
    size_t nums[7] = {o.batch_size, o.checkpoint_every, o.snippet_bytes, (size_t)o.no_resume, (size_t)o.compact,
                      (size_t)mo.max_len, (size_t)shards};
    h = dist_hash(h, nums, sizeof nums);
    h = dist_hash(h, &mo.dtype, sizeof mo.dtype);
    dist_agree me = {m != NULL, m ? gtr_model_fingerprint(m) : 0, m ? (uint64_t)gtr_model_dim(m) : 0, h};
    if (!dist_agree_all(d, &me)) {
        gtr_model_free(m);
        free(hint);
        return 1;
    }
    int rc = 0;
    if (shards) {
        char *desc = describe(m);
        o.model_hint = hint = hint ? hint : realpath(model_dir, NULL);
        rc = desc ? dist_index_shards(d, m, desc, corpus, out, &o, quiet) : dist_errorf(d, 1, "out of memory");
        free(desc);
    } else if (d->rank != 0) {
        rc = dist_serve_encode(d, m);
    } else {
        char *desc = describe(m);
        dist_encoder de = {d, m, gtr_model_dim(m)};
        gtr_index_encoder enc = {dist_encode, &de, gtr_model_dim(m), gtr_model_fingerprint(m), desc ? desc : ""};
        o.model_hint = hint;
        o.batch_size *= (size_t)d->size; /* one --batch for each rank */
        gtr_index_build_stats st;
        gtr_status s = desc ? gtr_index_build_with(&enc, corpus, NULL, out, &o, &st, &err)
                            : gtr_error_set(&err, GTR_ERR_NOMEM, "out of memory");
        dist_stop_workers(d);
        if (s) {
            rc = dist_errorf(d, 1, "%s", err.message);
        } else if (!quiet) {
            fprintf(stderr, "gtr-mpi index: %llu documents in %s on %d ranks (%llu encoded now",
                    (unsigned long long)st.docs_total, out, d->size, (unsigned long long)st.docs_encoded);
            if (st.docs_resumed)
                fprintf(stderr, ", %llu from an interrupted build", (unsigned long long)st.docs_resumed);
            fprintf(stderr, ")\n");
        }
        free(desc);
    }
    gtr_model_free(m);
    free(hint);
    return rc;
}
