/* cmd_pull.c — `gtr pull REPO_ID`: download a model from the Hugging Face hub. */
#include "download.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr pull REPO_ID [--revision REV] [--dir DIR | --hf-cache] [--force] [--retries N] [-q]\n"
            "\n"
            "Download a sentence-transformers model (e.g. sentence-transformers/gtr-t5-base, -large,\n"
            "-xl, -xxl) from the Hugging Face hub into DIR, ready for `gtr embed -m DIR`.\n"
            "\n"
            "Fetches modules.json and the files its modules need: config.json,\n"
            "sentence_bert_config.json, spiece.model, 1_Pooling/config.json, 2_Dense/config.json,\n"
            "the weights (model.safetensors, or pytorch_model.bin where the repository has no\n"
            "safetensors) and the small tokenizer/config files when present. Every file comes\n"
            "from the commit the revision points to when the download starts.\n"
            "\n"
            "Downloads resume: an interrupted pull leaves DIR.partial/, and running the same\n"
            "command again continues where it stopped. Sizes are checked, and large files against\n"
            "the SHA-256 the hub publishes. DIR appears only when every file is in place. If DIR\n"
            "already exists nothing is downloaded (use --force to download again and replace it).\n"
            "The model directory is printed on stdout.\n"
            "\n"
            "options:\n"
            "  -r, --revision REV   branch, tag or commit (default main)\n"
            "  -d, --dir DIR        destination (default models/NAME, or $GTR_HOME/models/NAME\n"
            "                       when GTR_HOME is set; NAME is the part of REPO_ID after '/')\n"
            "      --hf-cache       into the Hugging Face cache instead of DIR (models--ORG--NAME/\n"
            "                       snapshots/COMMIT, refs/REV), where transformers and\n"
            "                       sentence-transformers find it and `-m REPO_ID` loads it\n"
            "  -f, --force          download even if DIR exists, then replace it\n"
            "      --retries N      retries per file after a dropped connection (default 5)\n"
            "  -q, --quiet          no progress or messages on stderr (errors still)\n"
            "  -h, --help           this help\n"
            "\n"
            "environment:\n"
            "  HF_ENDPOINT   hub address (default https://huggingface.co); files are fetched from\n"
            "                $HF_ENDPOINT/REPO_ID/resolve/REV/FILE\n"
            "  HF_TOKEN      access token for private or gated repositories (sent as\n"
            "                \"Authorization: Bearer\"); else the token file of `huggingface-cli\n"
            "                login` ($HF_HOME/token, default ~/.cache/huggingface/token)\n"
            "  GTR_HOME      base folder of the default DIR\n"
            "  HF_HUB_CACHE  the cache of --hf-cache (else $HF_HOME/hub, else\n"
            "                ~/.cache/huggingface/hub)\n"
            "  HF_HUB_OFFLINE=1  download nothing (fail unless the model is already there)\n"
            "\n"
            "example:\n"
            "  gtr pull sentence-transformers/gtr-t5-base       # -> models/gtr-t5-base\n");
}

int cmd_pull(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"revision", required_argument, NULL, 'r'}, {"dir", required_argument, NULL, 'd'},
        {"force", no_argument, NULL, 'f'},          {"retries", required_argument, NULL, 'R'},
        {"quiet", no_argument, NULL, 'q'},          {"help", no_argument, NULL, 'h'},
        {"hf-cache", no_argument, NULL, 'C'},       {NULL, 0, NULL, 0}};
    gtr_download_options o = gtr_download_default_options();
    const char *dir = NULL;
    bool quiet = false, cache = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "r:d:fqh", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': o.revision = optarg; break;
        case 'd': dir = optarg; break;
        case 'f': o.force = 1; break;
        case 'R':
            if (!dl_parse_retries("pull", optarg, &o.max_retries)) return 2;
            break;
        case 'q': quiet = true; break;
        case 'C': cache = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        if (optind >= argc) cli_errorf("pull", 2, "missing REPO_ID (e.g. sentence-transformers/gtr-t5-base)");
        else cli_errorf("pull", 2, "expected one REPO_ID, got %d arguments", argc - optind);
        fprintf(stderr, "(gtr pull --help for usage)\n");
        return 2;
    }
    const char *repo = argv[optind];
    if (cache && dir) return cli_errorf("pull", 2, "give --dir DIR or --hf-cache, not both");
    if (cache) {
        dl_ui ui;
        dl_ui_attach(&ui, "pull", quiet, &o);
        if (!quiet) fprintf(stderr, "gtr pull: %s -> the Hugging Face cache\n", repo);
        gtr_error err;
        char snap[4096];
        gtr_status st = gtr_model_download_cache(repo, &o, snap, sizeof snap, &err);
        if (ui.prog.drawn) fputc('\n', stderr);
        if (st) return cli_fail("pull", &err);
        printf("%s\n", snap);
        return 0;
    }
    char *def = NULL;
    if (!dir) {
        const char *slash = strrchr(repo, '/');
        def = dl_default_dir("models", slash ? slash + 1 : repo);
        if (!def) return cli_errorf("pull", 1, "out of memory");
        dir = def;
    }
    dl_ui ui;
    dl_ui_attach(&ui, "pull", quiet, &o);
    if (!quiet) fprintf(stderr, "gtr pull: %s -> %s\n", repo, dir);
    gtr_error err;
    gtr_status st = gtr_model_download(repo, dir, &o, &err);
    if (ui.prog.drawn) fputc('\n', stderr);
    if (st) {
        free(def);
        return cli_fail("pull", &err);
    }
    printf("%s\n", dir);
    free(def);
    return 0;
}
