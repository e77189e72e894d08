/* cmd_pull_dataset.c — `gtr pull-dataset NAME`: download and unpack a BEIR dataset. */
#include "download.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr pull-dataset NAME [--dir DIR] [--force] [--retries N] [-q]\n"
            "\n"
            "Download the BEIR dataset NAME (scifact, nfcorpus, fiqa, arguana, scidocs, trec-covid,\n"
            "quora, nq, hotpotqa, ...) as NAME.zip and unpack it into DIR/NAME: corpus.jsonl,\n"
            "queries.jsonl and qrels/*.tsv, ready for `gtr beir -d DIR/NAME`.\n"
            "\n"
            "The download resumes: an interrupted run leaves DIR/NAME.partial/, and running the\n"
            "same command again continues where it stopped. The archive's size is checked, every\n"
            "entry's CRC is verified, and entries with absolute paths, '..' or links are refused.\n"
            "DIR/NAME appears only when fully unpacked. If it already exists nothing is downloaded\n"
            "(use --force to download again and replace it). DIR/NAME is printed on stdout.\n"
            "\n"
            "options:\n"
            "  -d, --dir DIR        parent folder (default datasets, or $GTR_HOME/datasets when\n"
            "                       GTR_HOME is set)\n"
            "  -f, --force          download even if DIR/NAME exists, then replace it\n"
            "      --retries N      retries after a dropped connection (default 5)\n"
            "  -q, --quiet          no progress or messages on stderr (errors still)\n"
            "  -h, --help           this help\n"
            "\n"
            "environment:\n"
            "  GTR_BEIR_URL  folder the zips are fetched from, as GTR_BEIR_URL/NAME.zip (default\n"
            "                https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets)\n"
            "  GTR_HOME      base folder of the default DIR\n"
            "\n"
            "example:\n"
            "  gtr pull-dataset scifact                          # -> datasets/scifact\n");
}

int cmd_pull_dataset(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"dir", required_argument, NULL, 'd'}, {"force", no_argument, NULL, 'f'},
        {"retries", required_argument, NULL, 'R'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
    gtr_download_options o = gtr_download_default_options();
    const char *dir = NULL;
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:fqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'f': o.force = 1; break;
        case 'R':
            if (!dl_parse_retries("pull-dataset", optarg, &o.max_retries)) return 2;
            break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) cli_errorf("pull-dataset", 2, "missing NAME (e.g. scifact)");
        else cli_errorf("pull-dataset", 2, "expected one NAME, got %d arguments", argc - optind);
        fprintf(stderr, "(gtr pull-dataset --help for usage)\n");
        return 2;
    }
    const char *name = argv[optind];
    char *def = NULL;
    if (!dir) {
        if (!(def = dl_default_dir("datasets", NULL))) return cli_errorf("pull-dataset", 1, "out of memory");
        dir = def;
    }
    dl_ui ui;
    dl_ui_attach(&ui, "pull-dataset", quiet, &o);
    if (!quiet) fprintf(stderr, "gtr pull-dataset: %s -> %s/%s\n", name, dir, name);
    gtr_error err;
    gtr_status st = gtr_dataset_download(name, dir, &o, &err);
    if (ui.prog.drawn) fputc('\n', stderr);
    if (st) {
        free(def);
        return cli_fail("pull-dataset", &err);
    }
    size_t n = strlen(dir);
    printf("%s%s%s\n", dir, n && dir[n - 1] == '/' ? "" : "/", name);
    free(def);
    return 0;
}
