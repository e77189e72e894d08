/* cmd_ann_build.c — `gtr ann-build --index INDEX -o OUT.ivf`: the approximate (IVF) index
 * of a dense index's vectors (gtr_ann_build), searched with `gtr search --ann OUT.ivf`. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "ann-build";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr ann-build --index INDEX -o OUT.ivf [--lists N] [--iters N] [--seed S]\n"
        "                     [--add BASE.ivf] [--checkpoint N] [--restart] [-t N] [-q]\n"
        "\n"
        "Build an inverted-file (IVF) approximate index of INDEX's vectors: spherical k-means\n"
        "lists, int8 codes per vector, and the float32 vectors for exact re-ranking, in one\n"
        "checksummed file written atomically. Search it with gtr search --ann OUT.ivf\n"
        "--nprobe N (more lists probed: higher recall, slower). It is tied to INDEX: after\n"
        "rebuilding, build it again; after gtr index --add, --add BASE.ivf extends the old\n"
        "file: its lists and deletions are kept, old documents stay in their lists and the\n"
        "new ones join the nearest (no k-means). The file is the same for any thread count.\n"
        "\n"
        "A build that is killed, fails to write (a full disk) or is stopped with Ctrl-C or\n"
        "SIGTERM (which checkpoint first) keeps OUT.ivf.partial and OUT.ivf.ckpt; the same\n"
        "command again resumes from the last checkpoint and writes the same bytes as an\n"
        "uninterrupted build.\n"
        "\n"
        "  --index PATH      the dense index (gtr index)\n"
        "  -o, --output PATH the IVF file\n"
        "  --lists N         number of lists (default: about sqrt(documents))\n"
        "  --iters N         k-means iterations (default 10)\n"
        "  --seed S          k-means seed (default 0)\n"
        "  --add BASE.ivf    keep BASE.ivf's lists (built from INDEX before gtr index --add)\n"
        "  --checkpoint N    documents between checkpoints (default 262144)\n"
        "  --restart         discard an interrupted build instead of resuming it\n"
        "  -t, --threads N   threads (default: all cores)\n"
        "  -q, --quiet       no progress on stderr (it counts assignments to lists: each\n"
        "                    k-means iteration assigns its sample, then each document once)\n");
}

int cmd_ann_build(int argc, char **argv)
{
    enum { O_INDEX = 1000, O_ADD };
    static const struct option longopts[] = {
        {"index", required_argument, NULL, O_INDEX}, {"output", required_argument, NULL, 'o'},
        CLI_ANN_BUILD_LONGOPTS,                      {"threads", required_argument, NULL, 't'},
        {"add", required_argument, NULL, O_ADD},     {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    const char *index_path = NULL, *out = NULL;
    gtr_ann_build_options o = gtr_ann_default_build_options();
    int threads = 0;
    bool quiet = false;
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case O_INDEX: index_path = optarg; break;
        case 'o': out = optarg; break;
        case O_ADD: o.base = optarg; break;
        case 'q': quiet = true; break;
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
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (gtr ann-build --help)", argv[optind]);
    if (!index_path || !out) return cli_errorf(CMD, 2, "give --index INDEX and -o OUT.ivf (gtr ann-build --help)");
    gtr_error err;
    int rc = 1;
    gtr_index *ix = NULL;
    if (!(o.pool = gtr_pool_create(threads, &err))) return cli_fail(CMD, &err);
    if (!(ix = gtr_index_open(index_path, 0, o.pool, &err))) { cli_fail(CMD, &err); goto done; }
    if (o.n_lists > gtr_index_count(ix)) {
        rc = cli_errorf(CMD, 2, "--lists %u is more than the index's %zu documents", o.n_lists, gtr_index_count(ix));
        goto done;
    }
    cli_progress bar;
    cli_progress_init(&bar, "ann-build", "assignments", quiet);
    gtr_ann_build_stats stats;
    o.progress = cli_progress_stop_cb;
    o.progress_user = &bar;
    o.stats = &stats;
    cli_stop_saved old;
    cli_stop_catch(&old);
    gtr_status s = gtr_ann_build(ix, out, &o, &err);
    cli_stop_restore(&old);
    if (s) {
        if (bar.drawn) fputc('\n', stderr);
        cli_fail(CMD, &err);
        char *ck = cli_path_suffixed(CMD, out, ".ckpt");
        if (ck && s != GTR_ERR_INTERRUPTED && cli_file_exists(ck))
            fprintf(stderr, "gtr %s: the work done is checkpointed in %s: the same command resumes it\n", CMD, ck);
        free(ck);
        goto done;
    }
    if (bar.drawn) fputc('\n', stderr);
    if (!quiet) {
        if (stats.note[0]) fprintf(stderr, "gtr %s: note: %s\n", CMD, stats.note);
        fprintf(stderr, "gtr %s: %zu documents in %s, %.1f s", CMD, gtr_index_count(ix), out, cli_now() - bar.start);
        if (stats.docs_resumed)
            fprintf(stderr, " (%llu from an interrupted build)", (unsigned long long)stats.docs_resumed);
        fputc('\n', stderr);
    }
    rc = 0;
done:
    gtr_index_free(ix);
    gtr_pool_free(o.pool);
    return rc;
}
