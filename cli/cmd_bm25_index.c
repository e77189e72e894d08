/* cmd_bm25_index.c — `gtr bm25-index`: build the BM25 index of a BEIR corpus (and show what
 * the analyzer makes of a text). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr bm25-index -c CORPUS.jsonl -o INDEX [-t THREADS] [--quiet]\n"
            "       gtr bm25-index --analyze TEXT\n"
            "\n"
            "Builds a BM25 index the way Anserini indexes a BEIR corpus (\"flat\": title + \" \" +\n"
            "text per document; Lucene's English analyzer: UAX #29 word splitting, possessives\n"
            "removed, lower case, stop words, Porter stems). Search it with `gtr search --method\n"
            "bm25`; scoring is Lucene's BM25 with Anserini's k1=0.9, b=0.4.\n"
            "\n"
            "  -c, --corpus FILE    BEIR corpus: JSON lines {\"_id\", \"title\", \"text\"}\n"
            "  -o, --output FILE    the index file (written atomically)\n"
            "  -t, --threads N      analysis threads (default: all cores)\n"
            "      --analyze TEXT   print the index terms of TEXT and exit\n"
            "      --quiet          no progress on stderr\n"
            "  -h, --help           this help\n");
}

int cmd_bm25_index(int argc, char **argv)
{
    static const struct option opts[] = {
        {"corpus", required_argument, 0, 'c'}, {"output", required_argument, 0, 'o'},
        {"threads", required_argument, 0, 't'}, {"analyze", required_argument, 0, 'A'},
        {"quiet", no_argument, 0, 'Q'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *corpus = NULL, *out = NULL, *analyze = NULL;
    long long threads = 0;
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': corpus = optarg; break;
        case 'o': out = optarg; break;
        case 't':
            if (!cli_parse_int("bm25-index", "--threads", optarg, 1, 1024, &threads)) return 2;
            break;
        case 'A': analyze = optarg; break;
        case 'Q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return cli_errorf("bm25-index", 2, "unexpected argument '%s' (see --help)", argv[optind]);
    gtr_error err = {0};
    if (analyze) {
        char *terms;
        if (gtr_bm25_analyze(analyze, strlen(analyze), &terms, NULL, &err)) return cli_fail("bm25-index", &err);
        printf("%s\n", terms);
        gtr_free(terms);
        return 0;
    }
    if (!corpus || !out) return cli_errorf("bm25-index", 2, "-c CORPUS and -o INDEX are required (see --help)");
    gtr_pool *pool = gtr_pool_create((int)threads, &err);
    if (!pool) return cli_fail("bm25-index", &err);
    cli_progress prog;
    cli_progress_init(&prog, "indexing", "docs", quiet);
    gtr_bm25_build_options o = gtr_bm25_default_build_options();
    o.pool = pool;
    o.progress = cli_progress_cb;
    o.progress_user = &prog;
    gtr_bm25_build_stats stats;
    gtr_status st = gtr_bm25_build(corpus, out, &o, &stats, &err);
    gtr_pool_free(pool);
    if (st) {
        if (prog.drawn) fputc('\n', stderr);
        return cli_fail("bm25-index", &err);
    }
    cli_progress_done(&prog, stats.docs);
    if (!quiet)
        fprintf(stderr, "%s: %llu documents, %llu terms, %llu postings, %llu tokens\n", out,
                (unsigned long long)stats.docs, (unsigned long long)stats.terms,
                (unsigned long long)stats.postings, (unsigned long long)stats.tokens);
    return 0;
}
