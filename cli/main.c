/* main.c — `gtr <command> [options]`: dispatch to one small file per subcommand. */
#include "cli.h"

#include <errno.h>
#include <string.h>

/* Each subcommand file adds its line here. */
static const cli_command commands[] = {
    {"version", "print the version and the CPU features in use", cmd_version},
    {"embed", "texts to GTR vectors (.npy, raw float32 or JSON lines)", cmd_embed},
    {"info", "load a model directory and describe it", cmd_info},
    {"tokenize", "texts to T5 SentencePiece ids or pieces (and back)", cmd_tokenize},
    {"pull", "download a model from the Hugging Face hub (resumable)", cmd_pull},
    {"pull-dataset", "download and unpack a BEIR dataset (resumable)", cmd_pull_dataset},
    {"eval", "evaluate a TREC run against qrels (trec_eval's measures and output)", cmd_eval},
    {"bm25-index", "build a BM25 index of a BEIR corpus (Anserini's analyzer and BM25)", cmd_bm25_index},
    {"index", "encode a BEIR corpus into a dense index (resumable, --add appends)", cmd_index},
    {"ann-build", "approximate (IVF) index of a dense index, for search --ann", cmd_ann_build},
    {"ann-tune", "choose search --nprobe for a target recall (against exact search)", cmd_ann_tune},
    {"ann-delete", "delete documents by id from an approximate index", cmd_ann_delete},
    {"search", "exact top-k search of a dense index (or BM25, or both fused) to a TREC run", cmd_search},
    {"train", "fine-tune a GTR model (in-batch softmax + hard negatives; resumable)", cmd_train},
    {"mine-negatives", "hard negatives for a second training stage from a model's ranking", cmd_mine_negatives},
    {"serve", "HTTP server: OpenAI-compatible /v1/embeddings, /search, /health, /metrics", cmd_serve},
    {"beir", "BEIR end to end: index, search, evaluate, compare with published numbers", cmd_beir},
    {"quantize", "a copy of a model directory with bf16 or int8 weights (loads directly)", cmd_quantize},
};

static void usage(FILE *out)
{
    fprintf(out,
            "gtr %s — GTR dense retrieval in C (T5 encoder + mean pooling + Dense + L2 norm)\n\n"
            "usage: gtr <command> [options]     gtr <command> --help for its options\n\ncommands:\n",
            gtr_version());
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-16s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!cli_check_cpu_env("gtr")) return 2;
    int rc = -1;
    if (!strcmp(argv[1], "--version")) rc = cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0] && rc < 0; i++)
        if (!strcmp(argv[1], commands[i].name)) rc = commands[i].run(argc - 1, argv + 1);
    if (rc < 0) {
        fprintf(stderr, "gtr: unknown command '%s' (gtr --help lists them)\n", argv[1]);
        return 2;
    }
    /* output that could not be written (a full disk, a closed pipe) is a failure, with the reason */
    errno = 0;
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "gtr %s: standard output: write failed: %s\n", argv[1],
                errno ? strerror(errno) : "an earlier write failed");
        return 1;
    }
    return rc;
}
