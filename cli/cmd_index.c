/* cmd_index.c — `gtr index`: encode a BEIR corpus into a dense index (resumable), append to
 * one (--add), or describe one (--info). */
#include "cli.h"

#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: gtr index -m MODEL_DIR -c CORPUS -o INDEX [options]\n"
            "       gtr index -m MODEL_DIR --add CORPUS -o INDEX [--from BASE]\n"
            "       gtr index --info INDEX\n"
            "       gtr index --fields-from CORPUS -o INDEX\n"
            "       gtr index --delete IDS_FILE -o INDEX [--from BASE]\n"
            "\n"
            "Encode every passage of a BEIR corpus (JSON lines {\"_id\", \"title\", \"text\"}; the\n"
            "passage is (title + \" \" + text).strip(), as `gtr embed` and BEIR build it) with a GTR\n"
            "model into an index file: document ids, the start of each passage, float32 vectors\n"
            "and the model's fingerprint, so `gtr search` refuses a different model.\n"
            "\n"
            "The build is crash-safe and resumable: work goes to INDEX.partial with a checkpoint\n"
            "in INDEX.ckpt every --checkpoint documents; after a crash, kill -9 or Ctrl-C, running\n"
            "the same command again continues from the last checkpoint (no document is lost or\n"
            "encoded twice). INDEX itself appears, atomically, only when complete.\n"
            "A duplicate document id or a malformed line is an error naming the corpus line.\n"
            "Documents' metadata (the scalar members of \"metadata\" and other top-level fields\n"
            "but _id/title/text) go to INDEX.fields, for gtr search --where FIELD=VALUE.\n"
            "\n"
            "options:\n"
            "  -m, --model DIR          GTR model directory (sentence-transformers layout)\n"
            "  -c, --corpus FILE        corpus to encode\n"
            "  -o, --output INDEX       index file to write\n"
            "      --add CORPUS         append CORPUS's documents to an existing index: INDEX itself\n"
            "                           (replaced atomically) or --from BASE\n"
            "      --from BASE          with --add: the index to extend (default INDEX)\n"
            "      --fields-from CORPUS write INDEX.fields again from CORPUS (no encoding)\n"
            "      --delete IDS_FILE    delete the documents listed (one id per line) from INDEX\n"
            "                           (or --from BASE into INDEX): no search returns them,\n"
            "                           exact or --ann (IVF files of INDEX stay valid)\n"
            "      --replace            with --add: a document whose id the index already holds\n"
            "                           replaces the old one (never returned again, by exact or\n"
            "                           approximate search) instead of being an error\n"
            "      --store f16|int8     also keep a compact copy of the vectors; `gtr search\n"
            "                           --compact` scans it first and re-scores exactly\n"
            "      --batch N            passages per encode call (default 32)\n"
            "      --checkpoint N       documents between checkpoints (default 1024)\n"
            "      --snippet-bytes N    bytes of each passage kept for display (default 240)\n"
            "      --restart            discard an interrupted build instead of resuming it\n"
            "  -t, --threads N          threads (default: all cores)\n"
            "      --dtype f32|bf16|int8  model compute precision (default f32)\n"
            "      --max-len N          tokens per passage (default: the model's, 512)\n"
            "  -q, --quiet              no progress on stderr\n"
            "      --info INDEX         verify INDEX and print what it holds\n"
            "  -h, --help               this help\n"
            "\n"
            "The model directory is recorded in the index (as an absolute path), so `gtr search`\n"
            "finds the model without -m while it stays there.\n"
            "\n"
            "example:\n"
            "  gtr index -m models/gtr-t5-base -c scifact/corpus.jsonl -o scifact.gtri\n");
}

static int info(const char *path)
{
    gtr_error err;
    gtr_pool *pool = gtr_pool_create(0, &err);
    gtr_index *ix = gtr_index_open(path, 0, pool, &err);
    gtr_pool_free(pool);
    if (!ix) return cli_fail("index", &err);
    static const char *compact[] = {"none", "float16", "int8"};
    const char *hint = gtr_index_model_hint(ix);
    char replaced[64] = "";
    if (gtr_index_replaced_count(ix))
        snprintf(replaced, sizeof replaced, " (%zu replaced by later ones, never returned)", gtr_index_replaced_count(ix));
    printf("index:       %s (checksums verified)\n"
           "documents:   %zu%s\n"
           "dimension:   %d\n"
           "fingerprint: %016llx\n"
           "model dir:   %s\n"
           "compact:     %s\n"
           "model:\n",
           path, gtr_index_count(ix), replaced, gtr_index_dim(ix), (unsigned long long)gtr_index_fingerprint(ix),
           hint ? hint : "(not recorded)", compact[gtr_index_compact_kind(ix)]);
    /* the recorded description, indented */
    for (const char *d = gtr_index_model_description(ix); *d;) {
        const char *nl = strchr(d, '\n');
        int len = nl ? (int)(nl - d) : (int)strlen(d);
        printf("  %.*s\n", len, d);
        d += len + (nl ? 1 : 0);
    }
    gtr_index_free(ix);
    return 0;
}

/* INDEX.fields: the documents' metadata fields (gtr search --where), from corpus; base: the
 * index extended with --add (its fields file keeps its documents' fields) */
static int write_fields(const char *index, const char *corpus, const char *base, bool quiet)
{
    char *fp = cli_path_suffixed("index", index, ".fields"), *bp = NULL;
    if (!fp || (base && !(bp = cli_path_suffixed("index", base, ".fields")))) {
        free(fp);
        return 1;
    }
    gtr_error err;
    int rc = 0, written = 0;
    gtr_index *ix = gtr_index_open(index, GTR_INDEX_OPEN_NO_VERIFY, NULL, &err);
    if (!ix || gtr_fields_build(ix, corpus, bp, fp, &written, &err)) rc = cli_fail("index", &err);
    else if (written && !quiet) fprintf(stderr, "gtr index: metadata fields -> %s (gtr search --where)\n", fp);
    gtr_index_free(ix);
    free(fp);
    free(bp);
    return rc;
}

/* --delete IDS_FILE: the documents listed marked deleted in out (from base) */
static int delete_docs(const char *base, const char *ids_path, const char *out, bool quiet)
{
    char **ids;
    size_t *lens, n, deleted, unknown;
    if (!cli_read_ids("index", ids_path, &ids, &lens, &n)) return 1;
    gtr_error err;
    int rc = 0;
    if (gtr_index_delete(base, (const char *const *)ids, lens, n, out, &deleted, &unknown, &err)) rc = cli_fail("index", &err);
    else if (!quiet) {
        fprintf(stderr, "gtr index: deleted %zu documents -> %s", deleted, out);
        if (unknown) fprintf(stderr, " (%zu ids not in the index)", unknown);
        fputc('\n', stderr);
    }
    cli_ids_free(ids, lens, n);
    return rc;
}

int cmd_index(int argc, char **argv)
{
    enum { O_ADD = 1000, O_FROM, O_INFO, O_REPLACE, O_FIELDS_FROM, O_DELETE };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},   {"corpus", required_argument, NULL, 'c'},
        {"output", required_argument, NULL, 'o'},  {"add", required_argument, NULL, O_ADD},
        {"from", required_argument, NULL, O_FROM}, {"quiet", no_argument, NULL, 'q'},
        {"info", required_argument, NULL, O_INFO}, {"help", no_argument, NULL, 'h'},
        {"replace", no_argument, NULL, O_REPLACE}, {"fields-from", required_argument, NULL, O_FIELDS_FROM},
        {"delete", required_argument, NULL, O_DELETE},
        CLI_INDEX_LONGOPTS,                        {NULL, 0, NULL, 0}};
    const char *model_dir = NULL, *corpus = NULL, *out = NULL, *add = NULL, *from = NULL, *info_path = NULL;
    const char *fields_from = NULL, *delete_ids = NULL;
    gtr_index_build_options o = gtr_index_default_build_options();
    gtr_model_options mo = gtr_model_default_options();
    bool quiet = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:o:t:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'c': corpus = optarg; break;
        case 'o': out = optarg; break;
        case O_ADD: add = optarg; break;
        case O_FROM: from = optarg; break;
        case O_INFO: info_path = optarg; break;
        case O_REPLACE: o.replace = 1; break;
        case O_FIELDS_FROM: fields_from = optarg; break;
        case O_DELETE: delete_ids = optarg; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: {
            int r = cli_index_option(c, optarg, &o, &mo);
            if (r == 1) break;
            if (r == 0) usage(stderr);
            return 2;
        }
        }
    }
    if (optind != argc) return cli_errorf("index", 2, "unexpected argument '%s' (gtr index --help)", argv[optind]);
    if (info_path) return info(info_path);
    if (delete_ids) {
        if (!out || corpus || add || model_dir || fields_from)
            return cli_errorf("index", 2, "--delete IDS_FILE goes with -o INDEX [--from BASE] alone");
        return delete_docs(from ? from : out, delete_ids, out, quiet);
    }
    if (fields_from) {
        if (!out || corpus || add || model_dir) return cli_errorf("index", 2, "--fields-from CORPUS goes with -o INDEX alone");
        return write_fields(out, fields_from, NULL, quiet);
    }
    if (!model_dir || !out || (!corpus == !add))
        return cli_errorf("index", 2, "need -m MODEL_DIR, -o INDEX and one of -c CORPUS or --add CORPUS "
                                      "(gtr index --help)");
    if (from && !add) return cli_errorf("index", 2, "--from goes with --add");
    if (o.replace && !add) return cli_errorf("index", 2, "--replace goes with --add");
    if (!cli_spm_compat("index", NULL, &mo.spm_compat)) return 2;
    mo.device = getenv("GTR_DEVICE"); /* cuda[:N]: encode on a GPU (issue 15) */
    mo.no_verify = cli_no_verify();
    if (!cli_max_memory("index", &mo.max_memory)) return 2;

    mo.batch_size = o.batch_size; /* the memory check counts the activations of one batch */
    char *hint = realpath(model_dir, NULL);
    o.model_hint = hint;
    gtr_error err;
    gtr_model *m = gtr_model_load(model_dir, &mo, &err);
    if (!m) {
        free(hint);
        return cli_fail("index", &err);
    }
    cli_progress bar;
    cli_progress_init(&bar, "indexing", "docs", quiet);
    o.progress = cli_progress_stop_cb;
    o.progress_user = &bar;
    cli_stop_saved old;
    cli_stop_catch(&old);
    gtr_index_build_stats st;
    gtr_status s = gtr_index_build(m, add ? add : corpus, add ? (from ? from : out) : NULL, out, &o, &st, &err);
    cli_stop_restore(&old);
    int rc = 0;
    if (s) {
        if (bar.drawn) fputc('\n', stderr);
        rc = cli_fail("index", &err);
    } else {
        cli_progress_done(&bar, st.docs_encoded + st.docs_resumed);
        if (!quiet) {
            if (st.note[0]) fprintf(stderr, "gtr index: note: %s\n", st.note);
            fprintf(stderr, "gtr index: %llu documents in %s (%llu encoded now", (unsigned long long)st.docs_total,
                    out, (unsigned long long)st.docs_encoded);
            if (st.docs_resumed) fprintf(stderr, ", %llu from an interrupted build", (unsigned long long)st.docs_resumed);
            if (st.docs_base) fprintf(stderr, ", %llu from the base index", (unsigned long long)st.docs_base);
            if (st.docs_replaced) fprintf(stderr, ", %llu of them replaced", (unsigned long long)st.docs_replaced);
            fprintf(stderr, ")\n");
        }
        rc = write_fields(out, add ? add : corpus, add ? (from ? from : out) : NULL, quiet);
    }
    gtr_model_free(m);
    free(hint);
    return rc;
}
