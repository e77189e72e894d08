/* cmd_mine_negatives.c — `gtr mine-negatives`: hard negatives retrieved by the current model
 * for a second training stage (the top-ranked documents that are not judged relevant), written
 * as the JSON lines `gtr train --data` reads. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "mine-negatives";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr mine-negatives -m MODEL_DIR -d DATASET -o OUT.jsonl [options]\n"
        "\n"
        "Embed a BEIR dataset's corpus and the judged queries of one split with a model, rank the\n"
        "corpus exhaustively for each query, and keep the best-ranked documents that are not\n"
        "judged relevant as hard negatives. Each output line is\n"
        "  {\"query_id\", \"query\", \"pos\": [...], \"pos_ids\": [...], \"neg\": [...], \"neg_ids\": [...]}\n"
        "(one per query, its relevant documents as positives): the input of `gtr train --data`.\n"
        "\n"
        "  -m, --model DIR          the model (e.g. the output of a first `gtr train` stage)\n"
        "  -d, --dataset DIR        BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)\n"
        "      --split NAME         qrels split (default train)\n"
        "  -o, --output FILE        where to write (atomically)\n"
        "  -k N                     negatives per query (default 8)\n"
        "      --skip N             skip the N best-ranked non-relevant documents first (default\n"
        "                           0): at the very top they are often unjudged positives\n"
        "      --max-len N          passage tokens incl. </s> (default: the model's)\n"
        "      --query-max-len N    query tokens (default 64)\n"
        "      --batch N            texts per encode call (default 64)\n"
        "  -t, --threads N          worker threads (default: all cores)\n"
        "  -q, --quiet              no progress\n"
        "  -h, --help               this help\n"
        "\n"
        "Example:\n"
        "  gtr mine-negatives -m stage1 -d datasets/scifact -o negs.jsonl -k 8\n"
        "  gtr train --init stage1 -d negs.jsonl -o stage2\n");
}

int cmd_mine_negatives(int argc, char **argv)
{
    enum { O_SPLIT = 256, O_SKIP, O_MAXLEN, O_QLEN, O_BATCH, O_THREADS };
    static const struct option longs[] = {
        {"model", required_argument, 0, 'm'},   {"dataset", required_argument, 0, 'd'},
        {"split", required_argument, 0, O_SPLIT}, {"output", required_argument, 0, 'o'},
        {"skip", required_argument, 0, O_SKIP}, {"max-len", required_argument, 0, O_MAXLEN},
        {"query-max-len", required_argument, 0, O_QLEN}, {"batch", required_argument, 0, O_BATCH},
        {"threads", required_argument, 0, 't'}, {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model = NULL, *dataset = NULL, *split = "train", *out = NULL;
    gtr_negatives_options mo = gtr_negatives_default_options();
    long long v, threads = 0;
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:d:o:k:t:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'd': dataset = optarg; break;
        case O_SPLIT: split = optarg; break;
        case 'o': out = optarg; break;
        case 'k':
            if (!cli_parse_int(CMD, "-k", optarg, 1, 1000, &v)) return 2;
            mo.k = (size_t)v;
            break;
        case O_SKIP:
            if (!cli_parse_int(CMD, "--skip", optarg, 0, 1000, &v)) return 2;
            mo.skip = (size_t)v;
            break;
        case O_MAXLEN:
            if (!cli_parse_int(CMD, "--max-len", optarg, 2, 65536, &v)) return 2;
            mo.max_len = (int)v;
            break;
        case O_QLEN:
            if (!cli_parse_int(CMD, "--query-max-len", optarg, 2, 65536, &v)) return 2;
            mo.query_max_len = (int)v;
            break;
        case O_BATCH:
            if (!cli_parse_int(CMD, "--batch", optarg, 1, 65536, &v)) return 2;
            mo.batch = (size_t)v;
            break;
        case 't': if (!cli_parse_int(CMD, "--threads", optarg, 1, 4096, &threads)) return 2; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!model || !dataset || !out) return cli_errorf(CMD, 2, "-m, -d and -o are required (see --help)");
    gtr_error err = {0};
    gtr_model_options opt;
    if (!cli_model_options(CMD, &opt)) return 2;
    opt.n_threads = (int)threads;
    opt.batch_size = mo.batch; /* the memory check counts the activations of one batch */
    gtr_model *m = gtr_model_load(model, &opt, &err);
    if (!m) return cli_fail(CMD, &err);
    cli_progress prog;
    cli_progress_init(&prog, "embedding corpus", "docs", quiet);
    mo.progress = cli_progress_cb;
    mo.progress_user = &prog;
    gtr_negatives_stats st = {0};
    int rc = 0;
    if (gtr_negatives_mine(m, dataset, split, &mo, out, &st, &err)) {
        if (prog.drawn) fputc('\n', stderr);
        rc = cli_fail(CMD, &err);
    } else {
        cli_progress_done(&prog, st.docs);
        if (!quiet)
            fprintf(stderr, "gtr mine-negatives: %zu queries, %zu negatives from %zu documents -> %s\n",
                    st.queries, st.negatives, st.docs, out);
    }
    gtr_model_free(m);
    return rc;
}
