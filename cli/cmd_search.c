/* cmd_search.c — `gtr search`: queries against a dense index, a BM25 index, or both fused;
 * a TREC run for files of queries, a readable list for one --query. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr search --index INDEX [-m MODEL_DIR] -q QUERIES [-k K] [-o RUN] [options]\n"
            "       gtr search --index INDEX [-m MODEL_DIR] --query TEXT [-k K]\n"
            "       gtr search --method bm25 --bm25-index BM25 -q QUERIES [-k K] [-o RUN]\n"
            "\n"
            "Exact maximum-inner-product search: every document is scored (deterministically, the\n"
            "same on any CPU or thread count) and the top K kept; equal scores are ordered by\n"
            "document id descending, as trec_eval orders them. QUERIES is BEIR's queries.jsonl\n"
            "({\"_id\", \"text\"} per line). The output is a TREC run: qid Q0 docid rank score tag.\n"
            "--query prints the best hits of one text with the start of their passages.\n"
            "\n"
            "Without -m, the model directory recorded in the index at build time is used; either\n"
            "way the model must be the one that built the index (its fingerprint is checked).\n"
            "\n"
            "options:\n"
            "      --index INDEX        dense index (gtr index)\n"
            "  -m, --model DIR          model for the queries (default: the one recorded in INDEX)\n"
            "  -q, --queries FILE       queries (JSON lines)\n"
            "      --query TEXT         one query, printed for people\n"
            "  -k, --top K              hits per query (default 1000, 10 with --query)\n"
            "  -o, --output RUN         run file (default: standard output)\n"
            "      --method M           dense (default), bm25 or hybrid\n"
            "      --bm25-index PATH    BM25 index (gtr bm25-index) for bm25 and hybrid\n"
            "      --fusion rrf|interp  hybrid: reciprocal-rank fusion (default) or interpolation\n"
            "                           of min-max normalised scores\n"
            "      --alpha A            interp: weight of the dense scores, BM25 gets 1-A (0.5)\n"
            "      --rrf-k N            rrf: the constant in 1/(N + rank) (default 60)\n"
            "      --depth N            hybrid: hits taken from each method (default 1000, >= K)\n"
            "      --skip-self          drop a hit whose id equals the query id (BEIR's\n"
            "                           ignore_identical_ids)\n"
            "      --compact            scan the index's compact copy first (same results)\n"
            "      --no-verify          skip checksumming the vectors when opening INDEX (a huge\n"
            "                           index opens faster; offsets and sizes are still checked)\n"
            "      --ann FILE.ivf       approximate search with this IVF index of INDEX\n"
            "                           (gtr ann-build); dense and hybrid\n"
            "      --nprobe N           --ann: lists scanned per query (default 8; more: higher\n"
            "                           recall, slower)\n"
            "      --filter-ids FILE    dense: return only documents whose ids are listed in FILE\n"
            "                           (one per line); exact search gives the hits of an index\n"
            "                           holding only those documents. An id not in INDEX is an\n"
            "                           error (a typo would silently narrow the search otherwise)\n"
            "      --where FIELD=VALUE  dense: only documents whose metadata FIELD equals VALUE\n"
            "                           (INDEX.fields, written by gtr index; numbers compare by\n"
            "                           value). Repeat for several (all must hold); with\n"
            "                           --filter-ids, both. A FIELD no document has is an error\n"
            "      --tag TAG            last column of the run (default gtr-METHOD)\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "      --quiet              no progress on stderr\n"
            "  -h, --help               this help\n"
            "\n"
            "example:\n"
            "  gtr search --index scifact.gtri -q scifact/queries.jsonl -k 100 -o run.trec\n"
            "  gtr search --index scifact.gtri --query \"vitamin D and bone density\"\n");
}

/* one line of a passage start: whitespace runs as single spaces, at most max bytes (whole
 * UTF-8 characters) */
static void print_snippet(const char *s, size_t len, size_t max)
{
    size_t used = 0;
    bool space = false;
    for (size_t i = 0; i < len && used < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            space = true;
            continue;
        }
        if (space && used) {
            putchar(' ');
            used++;
        }
        space = false;
        /* a multi-byte character goes out whole */
        size_t n = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
        if (i + n > len) break;
        if (ch < 0x20 || ch == 0x7f) putchar('?');
        else fwrite(s + i, 1, n, stdout);
        used += n;
        i += n - 1;
    }
    if (used >= max) fputs("...", stdout);
}

static void print_hits(const gtr_index *dense, const gtr_hit *hits, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        const gtr_hit *h = &hits[j];
        printf("%3zu  %.6f  %.*s", j + 1, h->score, (int)h->id_len, h->id);
        size_t len;
        const char *sn = dense && h->doc != SIZE_MAX ? gtr_index_doc_snippet(dense, h->doc, &len) : NULL;
        if (sn && len) {
            fputs("  ", stdout);
            print_snippet(sn, len, 100);
        }
        putchar('\n');
    }
    if (n == 0) printf("(no hits)\n");
}

/* --filter-ids FILE: the bitmap of the listed documents (NULL, message printed, on failure) */
static uint8_t *filter_ids(const char *path, const gtr_index *ix)
{
    char **ids;
    size_t *lens, n, unknown, first;
    if (!cli_read_ids("search", path, &ids, &lens, &n)) return NULL;
    gtr_error err;
    uint8_t *bits = calloc((gtr_index_count(ix) + 7) / 8 + 1, 1);
    if (!bits) cli_errorf("search", 1, "out of memory (--filter-ids)");
    else if (gtr_index_allow_ids(ix, (const char *const *)ids, lens, n, bits, &unknown, &first, &err)) {
        cli_fail("search", &err);
        free(bits);
        bits = NULL;
    } else if (unknown) {
        cli_errorf("search", 1, "%s: id \"%.*s\" is not in the index (%zu of %zu ids unknown)", path,
                   (int)(lens[first] < 200 ? lens[first] : 200), ids[first], unknown, n);
        free(bits);
        bits = NULL;
    }
    cli_ids_free(ids, lens, n);
    return bits;
}

/* --where: the documents whose fields match, ANDed with allow (when given; freed here); NULL,
 * message printed, on failure */
static uint8_t *filter_where(const char *index_path, const gtr_index *ix, const char *const *names,
                             const char *const *values, size_t n, uint8_t *allow)
{
    size_t nb = (gtr_index_count(ix) + 7) / 8 + 1;
    char *fp = cli_path_suffixed("search", index_path, ".fields"); /* says so when out of memory */
    uint8_t *bits = fp ? calloc(nb, 1) : NULL;
    gtr_error err;
    gtr_fields *f = NULL;
    if (!fp) goto fail;
    if (!bits) {
        cli_errorf("search", 1, "out of memory (--where)");
        goto fail;
    }
    if (!(f = gtr_fields_open(fp, ix, &err)) || gtr_fields_where(f, ix, names, values, n, bits, NULL, &err)) {
        cli_fail("search", &err);
        goto fail;
    }
    for (size_t i = 0; allow && i < nb; i++) bits[i] &= allow[i];
    gtr_fields_free(f);
    free(fp);
    free(allow);
    return bits;
fail:
    gtr_fields_free(f);
    free(fp);
    free(bits);
    free(allow);
    return NULL;
}

int cmd_search(int argc, char **argv)
{
    enum { O_QUERY = 1000, O_QUIET, O_NOVERIFY, O_ANN, O_NPROBE, O_FILTER_IDS, O_WHERE };
    static const struct option longopts[] = {
        CLI_SEARCH_LONGOPTS,
        {"query", required_argument, NULL, O_QUERY}, {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, 'h'},            {"no-verify", no_argument, NULL, O_NOVERIFY},
        {"ann", required_argument, NULL, O_ANN},     {"nprobe", required_argument, NULL, O_NPROBE},
        {"filter-ids", required_argument, NULL, O_FILTER_IDS}, {"where", required_argument, NULL, O_WHERE},
        {NULL, 0, NULL, 0}};
    cli_search_args a;
    cli_search_args_init(&a);
    const char *query = NULL, *ann_path = NULL, *filter_path = NULL;
    enum { MAX_WHERE = 32 };
    const char *where_names[MAX_WHERE], *where_values[MAX_WHERE];
    size_t n_where = 0;
    bool quiet = false;
    unsigned open_flags = 0;
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:q:k:o:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case O_QUERY: query = optarg; break;
        case O_QUIET: quiet = true; break;
        case O_NOVERIFY: open_flags |= GTR_INDEX_OPEN_NO_VERIFY; break;
        case O_ANN: ann_path = optarg; break;
        case O_FILTER_IDS: filter_path = optarg; break;
        case O_WHERE: {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) return cli_errorf("search", 2, "--where needs FIELD=VALUE, got '%s'", optarg);
            if (n_where == MAX_WHERE) return cli_errorf("search", 2, "at most %d --where conditions", MAX_WHERE);
            *eq = 0;
            where_names[n_where] = optarg;
            where_values[n_where++] = eq + 1;
            break;
        }
        case O_NPROBE:
            if (!cli_parse_int("search", "--nprobe", optarg, 1, 1 << 24, &v)) return 2;
            a.o.nprobe = (uint32_t)v;
            break;
        case 'h': usage(stdout); return 0;
        default: {
            int r = cli_search_option(c, optarg, &a);
            if (r == 1) break;
            if (r == 0) usage(stderr);
            return 2;
        }
        }
    }
    if (optind != argc) return cli_errorf("search", 2, "unexpected argument '%s' (gtr search --help)", argv[optind]);
    if (!a.queries == !query) return cli_errorf("search", 2, "give -q QUERIES or --query TEXT (gtr search --help)");
    if (!cli_search_check("search", &a)) return 2;
    const char *index_path = a.index, *model_dir = a.model, *queries_path = a.queries, *out = a.out;
    const char *bm25_path = a.bm25, *tag = a.tag, *mname = gtr_retrieval_method_name(a.o.method);
    gtr_retrieve_options o = a.o;
    int threads = a.threads;
    if (query && !a.k_given) o.k = 10;

    gtr_error err;
    cli_parts p = {0};
    /* the dense index and its IVF index first (the filters read the index, and a bad filter
     * file is reported before the model loads), then the BM25 index and the model */
    cli_parts_want w = {.index = index_path, .ann = ann_path, .index_flags = open_flags, .method = GTR_RETRIEVE_BM25};
    gtr_queries *q = NULL;
    gtr_hit *hits = NULL;
    size_t *n_hits = NULL;
    gtr_run *run = NULL;
    uint8_t *allow = NULL;
    int rc = 1;
    if ((filter_path || n_where) && (!index_path || o.method != GTR_RETRIEVE_DENSE))
        return cli_errorf("search", 2, "--filter-ids and --where need --index and the dense method");
    if (ann_path && !index_path) return cli_errorf("search", 2, "--ann needs --index (the index it was built from)");
    gtr_pool *pool = gtr_pool_create(threads, &err);
    if (!pool) return cli_fail("search", &err);
    if (!cli_parts_open("search", &p, &w, pool)) goto done;
    if (filter_path && !(allow = filter_ids(filter_path, p.dense))) goto done;
    if (n_where && !(allow = filter_where(index_path, p.dense, where_names, where_values, n_where, allow))) goto done;
    w.bm25 = bm25_path;
    w.model_dir = model_dir;
    w.method = o.method;
    w.threads = threads;
    if (!cli_parts_open("search", &p, &w, pool)) goto done;
    if (query) {
        if (!(q = gtr_queries_new(&err)) || gtr_queries_add(q, "q", 1, query, strlen(query), &err)) {
            cli_fail("search", &err);
            goto done;
        }
    } else if (!(q = gtr_queries_load(queries_path, NULL, &err))) {
        cli_fail("search", &err);
        goto done;
    }
    if (!cli_parts_retriever("search", &p, pool)) goto done;
    if (a.skip_self) o.skip_ids = gtr_queries_ids(q);
    o.allow = allow;
    if (cli_retrieve("search", p.rt, q, &o, quiet, &hits, &n_hits)) goto done;
    if (query) {
        print_hits(p.dense, hits, n_hits[0]);
        rc = 0;
        goto done;
    }
    if (!(run = cli_hits_run("search", q, hits, n_hits, o.k, o.k))) goto done;
    char deftag[32];
    snprintf(deftag, sizeof deftag, "gtr-%s", mname);
    if (out && strcmp(out, "-") != 0) {
        if (gtr_run_write(run, out, tag ? tag : deftag, &err)) {
            cli_fail("search", &err);
            goto done;
        }
    } else {
        char *text;
        size_t len;
        if (gtr_run_format(run, tag ? tag : deftag, &text, &len, &err)) {
            cli_fail("search", &err);
            goto done;
        }
        fwrite(text, 1, len, stdout);
        gtr_free(text);
    }
    if (!quiet && out)
        fprintf(stderr, "gtr search: %zu queries, %zu hits -> %s\n", gtr_queries_count(q), gtr_run_num_docs(run),
                strcmp(out, "-") ? out : "standard output");
    rc = 0;
done:
    gtr_run_free(run);
    free(hits);
    free(n_hits);
    gtr_queries_free(q);
    free(allow);
    cli_parts_free(&p);
    gtr_pool_free(pool);
    return rc;
}
