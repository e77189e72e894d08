/* cmd_eval.c — `gtr eval`: score a TREC run against qrels with trec_eval's measures and
 * output format. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr eval --qrels FILE --run FILE [-m MEASURE]... [-q] [-c]\n"
            "\n"
            "Evaluates a ranked run against relevance judgments exactly as NIST trec_eval 10.0\n"
            "does, and prints trec_eval's lines: measure<TAB>all<TAB>value.\n"
            "\n"
            "  --qrels FILE      judgments: TREC qrels (qid iter docid rel) or BEIR qrels TSV\n"
            "                    (query-id<TAB>corpus-id<TAB>score, with a header line)\n"
            "  --run FILE        TREC run (qid Q0 docid rank score tag); '-' reads stdin\n"
            "  -m, --measure M   a trec_eval measure, repeatable: num_q num_ret num_rel num_rel_ret\n"
            "                    map recip_rank ndcg P.K recall.K ndcg_cut.K map_cut.K, with\n"
            "                    comma-separated cutoffs (-m ndcg_cut.1,3,5); a cutoff measure\n"
            "                    without cutoffs gets trec_eval's 5,10,15,20,30,100,200,500,1000.\n"
            "                    Default: %s\n"
            "  -q, --per-query   also print every query's values (before the summary)\n"
            "  -c, --complete    trec_eval -c: average over every judged query (a query missing\n"
            "                    from the run scores 0). Default: BEIR/pytrec_eval averaging,\n"
            "                    over the judged queries that appear in the run.\n"
            "  -h, --help        this help\n"
            "\n"
            "Ranking is trec_eval's: score descending, equal scores by document id descending.\n"
            "Run queries without judgments are ignored (with a warning on stderr).\n",
            GTR_EVAL_DEFAULT_MEASURES);
}

/* The run from a file, or from stdin for "-" (read whole: runs are at most a few hundred MB). */
static gtr_run *load_run(const char *path, gtr_error *err)
{
    if (strcmp(path, "-")) return gtr_run_load(path, err);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (cap - len < 65536) {
            char *p = realloc(buf, cap = cap * 2 + 65536);
            if (!p) {
                free(buf);
                snprintf(err->message, sizeof err->message, "out of memory reading stdin");
                return NULL;
            }
            buf = p;
        }
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0) break;
    }
    gtr_run *run = NULL;
    if (ferror(stdin)) snprintf(err->message, sizeof err->message, "cannot read stdin");
    else run = gtr_run_parse(buf, len, "<stdin>", err);
    free(buf);
    return run;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"qrels", required_argument, 0, 'Q'}, {"run", required_argument, 0, 'r'},
        {"measure", required_argument, 0, 'm'}, {"per-query", no_argument, 0, 'q'},
        {"complete", no_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
    };
    const char *qrels_path = NULL, *run_path = NULL;
    bool per_query = false, complete = false;
    char *spec = NULL;
    size_t spec_len = 0;
    int c, status = 1;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:qch", opts, NULL)) != -1) {
        switch (c) {
        case 'Q': qrels_path = optarg; break;
        case 'r': run_path = optarg; break;
        case 'q': per_query = true; break;
        case 'c': complete = true; break;
        case 'm': {
            size_t n = strlen(optarg);
            char *p = realloc(spec, spec_len + n + 2);
            if (!p) {
                free(spec);
                return cli_errorf("eval", 1, "out of memory");
            }
            spec = p;
            if (spec_len) spec[spec_len++] = ' ';
            memcpy(spec + spec_len, optarg, n + 1);
            spec_len += n;
            break;
        }
        case 'h':
            usage(stdout);
            free(spec);
            return 0;
        default:
            usage(stderr);
            free(spec);
            return 2;
        }
    }
    if (optind < argc || !qrels_path || !run_path) {
        free(spec);
        if (optind < argc) return cli_errorf("eval", 2, "unexpected argument '%s' (see --help)", argv[optind]);
        return cli_errorf("eval", 2, "--qrels and --run are required (see --help)");
    }
    gtr_error err = {0};
    gtr_measures *ms = NULL;
    gtr_qrels *qrels = NULL;
    gtr_run *run = NULL;
    gtr_eval_result *res = NULL;
    char *text = NULL;
    size_t len = 0;
    if (!(ms = gtr_measures_parse(spec, &err))) {
        status = cli_errorf("eval", 2, "%s", err.message);
        goto out;
    }
    if (!(qrels = gtr_qrels_load(qrels_path, &err)) || !(run = load_run(run_path, &err)) ||
        !(res = gtr_run_evaluate(qrels, run, ms, complete ? GTR_EVAL_COMPLETE : 0, &err)) ||
        gtr_eval_format(res, per_query, &text, &len, &err)) {
        status = cli_fail("eval", &err);
        goto out;
    }
    size_t nu = gtr_eval_num_unjudged(res);
    if (nu) {
        fprintf(stderr, "gtr eval: warning: %zu run quer%s without judgments ignored (", nu,
                nu == 1 ? "y" : "ies");
        for (size_t i = 0; i < nu && i < 5; i++)
            fprintf(stderr, "%s'%s'", i ? ", " : "", gtr_eval_unjudged_id(res, i));
        fprintf(stderr, "%s)\n", nu > 5 ? ", ..." : "");
    }
    status = fwrite(text, 1, len, stdout) == len && fflush(stdout) == 0 ? 0 : cli_errorf("eval", 1, "standard output: write failed: %s", strerror(errno));
out:
    gtr_free(text);
    gtr_eval_free(res);
    gtr_run_free(run);
    gtr_qrels_free(qrels);
    gtr_measures_free(ms);
    free(spec);
    return status;
}
