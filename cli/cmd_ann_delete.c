/* cmd_ann_delete.c — `gtr ann-delete --index INDEX --ann FILE.ivf IDS`: delete documents by id
 * from an approximate index (gtr_ann_delete): they are never returned by gtr search --ann
 * again. The deletions are kept beside FILE.ivf (FILE.ivf.del, written atomically). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "ann-delete";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr ann-delete --index INDEX --ann FILE.ivf IDS_FILE\n"
        "\n"
        "Delete the documents whose ids are listed in IDS_FILE (one per line)\n"
        "from the approximate index FILE.ivf of INDEX: gtr search --ann never returns them\n"
        "again. The deletions go to FILE.ivf.del (written atomically, checksummed, tied to\n"
        "INDEX's ids) and are kept when gtr ann-build --add extends the index. Prints the\n"
        "number of documents deleted in total; ids not in INDEX are counted and reported.\n");
}

int cmd_ann_delete(int argc, char **argv)
{
    enum { O_INDEX = 1000, O_ANN };
    static const struct option longopts[] = {
        {"index", required_argument, NULL, O_INDEX}, {"ann", required_argument, NULL, O_ANN},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    const char *index_path = NULL, *ann_path = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_INDEX: index_path = optarg; break;
        case O_ANN: ann_path = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!index_path || !ann_path || optind != argc - 1)
        return cli_errorf(CMD, 2, "give --index INDEX --ann FILE.ivf and one IDS_FILE (gtr ann-delete --help)");
    const char *ids_path = argv[optind];
    gtr_error err;
    char **ids = NULL;
    size_t *lens = NULL, n = 0;
    int rc = 1;
    gtr_index *ix = NULL;
    gtr_ann *a = NULL;
    if (!cli_read_ids(CMD, ids_path, &ids, &lens, &n)) return 1;
    if (!(ix = gtr_index_open(index_path, 0, NULL, &err)) || !(a = gtr_ann_open(ann_path, ix, &err))) {
        cli_fail(CMD, &err);
        goto done;
    }
    size_t unknown = 0;
    if (gtr_ann_delete(a, (const char *const *)ids, lens, n, &unknown, &err)) { cli_fail(CMD, &err); goto done; }
    printf("deleted %zu documents in total", gtr_ann_deleted_count(a));
    if (unknown) printf(" (%zu ids not in the index)", unknown);
    printf("\n");
    rc = 0;
done:
    gtr_ann_free(a);
    gtr_index_free(ix);
    cli_ids_free(ids, lens, n);
    return rc;
}
