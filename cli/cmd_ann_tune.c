/* cmd_ann_tune.c — `gtr ann-tune --index INDEX --ann FILE.ivf --recall R`: the smallest
 * --nprobe whose recall@k against exact search reaches R on sample documents (gtr_ann_tune). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>

static const char *CMD = "ann-tune";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr ann-tune --index INDEX --ann FILE.ivf [--recall R] [-k K] [--sample N]\n"
        "                    [--seed S] [-t N]\n"
        "\n"
        "Choose --nprobe for gtr search --ann: the smallest (found by doubling, then bisecting)\n"
        "whose recall@K against exact search reaches R, measured with N documents of INDEX as\n"
        "queries (each one's own hit left out). Prints 'nprobe N recall X'.\n"
        "\n"
        "  --recall R   target recall@K (default 0.95)\n"
        "  -k K         K (default 10)\n"
        "  --sample N   sample queries (default 200)\n"
        "  --seed S     which documents (default 0)\n"
        "  -t N         threads (default: all cores)\n");
}

int cmd_ann_tune(int argc, char **argv)
{
    enum { O_INDEX = 1000, O_ANN, O_RECALL, O_SAMPLE, O_SEED };
    static const struct option longopts[] = {
        {"index", required_argument, NULL, O_INDEX}, {"ann", required_argument, NULL, O_ANN},
        {"recall", required_argument, NULL, O_RECALL}, {"sample", required_argument, NULL, O_SAMPLE},
        {"seed", required_argument, NULL, O_SEED},   {"top", required_argument, NULL, 'k'},
        {"threads", required_argument, NULL, 't'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *index_path = NULL, *ann_path = NULL;
    double target = 0.95;
    long long v, k = 10, sample = 200, seed = 0;
    int threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_INDEX: index_path = optarg; break;
        case O_ANN: ann_path = optarg; break;
        case O_RECALL:
            if (!cli_parse_double(CMD, "--recall", optarg, &target)) return 2;
            if (!(target > 0 && target <= 1)) return cli_errorf(CMD, 2, "--recall must be in (0, 1]");
            break;
        case 'k': if (!cli_parse_int(CMD, "-k", optarg, 1, 10000, &k)) return 2; break;
        case O_SAMPLE: if (!cli_parse_int(CMD, "--sample", optarg, 1, 1 << 24, &sample)) return 2; break;
        case O_SEED: if (!cli_parse_int(CMD, "--seed", optarg, 0, 1LL << 62, &seed)) return 2; break;
        case 't':
            if (!cli_parse_int(CMD, "--threads", optarg, 1, 1024, &v)) return 2;
            threads = (int)v;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (gtr ann-tune --help)", argv[optind]);
    if (!index_path || !ann_path) return cli_errorf(CMD, 2, "give --index INDEX and --ann FILE.ivf (gtr ann-tune --help)");
    gtr_error err;
    gtr_pool *pool = gtr_pool_create(threads, &err);
    if (!pool) return cli_fail(CMD, &err);
    gtr_index *ix = gtr_index_open(index_path, 0, pool, &err);
    gtr_ann *a = ix ? gtr_ann_open(ann_path, ix, &err) : NULL;
    uint32_t np = 0;
    double rec = 0;
    int rc = 1;
    if (!a || gtr_ann_tune(a, target, (size_t)k, (size_t)sample, (uint64_t)seed, pool, &np, &rec, &err))
        cli_fail(CMD, &err);
    else {
        printf("nprobe %u recall %.4f%s\n", np, rec, rec >= target ? "" : " (every list: target not reached)");
        rc = 0;
    }
    gtr_ann_free(a);
    gtr_index_free(ix);
    gtr_pool_free(pool);
    return rc;
}
