/* beir.c — the one reader of a BEIR dataset folder (gtr.h, "beir" section): where the files
 * are (corpus.jsonl, queries.jsonl, qrels/<split>.tsv: the only place these paths are built),
 * the queries file (ids checked so a run can be written before any search), and the corpus as
 * (id, passage) records. `gtr beir`, `gtr search -q`, training data, mined negatives and
 * gtr-mpi all read through it. */
#include "data/data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct gtr_beir {
    char *dir, *name, *split;
    char *corpus, *queries, *qrels;
};

void gtr_beir_free(gtr_beir *b)
{
    if (!b) return;
    free(b->dir);
    free(b->name);
    free(b->split);
    free(b->corpus);
    free(b->queries);
    free(b->qrels);
    free(b);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

gtr_status gtr_beir_cache_dir(const gtr_beir *b, const char *cache_root, char **dir, gtr_error *err)
{
    *dir = NULL;
    FILE *f = fopen(b->corpus, "rb");
    if (!f) return gtr_seterr(err, GTR_ERR_IO, "%s: cannot open: %s", b->corpus, strerror(errno));
    unsigned char *buf = malloc(1 << 16);
    uint32_t crc = 0;
    size_t n;
    while (buf && (n = fread(buf, 1, 1 << 16, f)) > 0) crc = gtr_crc32(crc, buf, n);
    bool bad = ferror(f);
    fclose(f);
    free(buf);
    if (!buf) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    if (bad) return gtr_seterr(err, GTR_ERR_IO, "%s: read failed", b->corpus);
    char root[4096];
    const char *env;
    if (cache_root) snprintf(root, sizeof root, "%s", cache_root);
    else if ((env = getenv("GTR_CACHE")) && *env) snprintf(root, sizeof root, "%s", env);
    else if ((env = getenv("XDG_CACHE_HOME")) && *env) snprintf(root, sizeof root, "%s/gtr", env);
    else if ((env = getenv("HOME")) && *env) snprintf(root, sizeof root, "%s/.cache/gtr", env);
    else snprintf(root, sizeof root, ".gtr-cache");
    size_t len = strlen(root) + strlen(b->name) + 32;
    char *d = malloc(len);
    if (!d) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    snprintf(d, len, "%s/beir/%s-%08x", root, b->name, crc);
    gtr_status st = gtr_mkdirs(d, err);
    if (st) free(d);
    else *dir = d;
    return st;
}

gtr_beir *gtr_beir_open(const char *dir, const char *split, gtr_error *err)
{
    if (!dir || !*dir) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_beir_open: no dataset folder given");
        return NULL;
    }
    if (!split) split = "test";
    if (!*split || strchr(split, '/')) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "split '%s' is not a name like test", split);
        return NULL;
    }
    gtr_beir *b = calloc(1, sizeof *b);
    size_t rl = strlen(split) + 16;
    char *rel = malloc(rl);
    if (b && rel) {
        snprintf(rel, rl, "qrels/%s.tsv", split);
        b->dir = dup_str(dir);
        b->split = dup_str(split);
        b->corpus = gtr_path_join(dir, "corpus.jsonl");
        b->queries = gtr_path_join(dir, "queries.jsonl");
        b->qrels = gtr_path_join(dir, rel);
        /* the name: the folder's last component, trailing slashes aside */
        if ((b->name = dup_str(dir))) {
            size_t n = strlen(b->name);
            while (n > 1 && b->name[n - 1] == '/') b->name[--n] = '\0';
            const char *slash = strrchr(b->name, '/');
            if (slash) memmove(b->name, slash + 1, strlen(slash + 1) + 1);
        }
    }
    if (!b || !rel || !b->dir || !b->split || !b->corpus || !b->queries || !b->qrels || !b->name) {
        free(rel);
        gtr_beir_free(b);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (!gtr_file_exists(b->corpus) || !gtr_file_exists(b->queries) || !gtr_file_exists(b->qrels)) {
        gtr_seterr(err, GTR_ERR_NOT_FOUND,
                   "%s is not a BEIR dataset folder: it needs corpus.jsonl, queries.jsonl and %s", dir, rel);
        free(rel);
        gtr_beir_free(b);
        return NULL;
    }
    free(rel);
    return b;
}

const char *gtr_beir_name(const gtr_beir *b) { return b->name; }
const char *gtr_beir_split(const gtr_beir *b) { return b->split; }
const char *gtr_beir_corpus_path(const gtr_beir *b) { return b->corpus; }
const char *gtr_beir_queries_path(const gtr_beir *b) { return b->queries; }
const char *gtr_beir_qrels_path(const gtr_beir *b) { return b->qrels; }

gtr_qrels *gtr_beir_load_qrels(const gtr_beir *b, gtr_error *err)
{
    return gtr_qrels_load(b->qrels, err);
}

/* ---- queries */

struct gtr_queries {
    size_t n, cap;
    char **ids;   /* NUL-terminated copies */
    size_t *id_lens;
    char **texts; /* NUL-terminated copies (a text may hold NULs: use lens) */
    size_t *lens;
};

gtr_queries *gtr_queries_new(gtr_error *err)
{
    return gtr_xcalloc(1, sizeof(gtr_queries), "queries", err);
}

void gtr_queries_free(gtr_queries *q)
{
    if (!q) return;
    for (size_t i = 0; i < q->n; i++) {
        free(q->ids[i]);
        free(q->texts[i]);
    }
    free(q->ids);
    free(q->id_lens);
    free(q->texts);
    free(q->lens);
    free(q);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        if (n) memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

gtr_status gtr_queries_add(gtr_queries *q, const char *id, size_t id_len, const char *text, size_t len,
                           gtr_error *err)
{
    if (!q || (!id && id_len) || (!text && len)) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_queries_add: NULL argument");
    if (q->n == q->cap) {
        size_t c = q->cap ? q->cap * 2 : 64;
        char **ids = realloc(q->ids, c * sizeof *ids);
        if (ids) q->ids = ids;
        size_t *il = realloc(q->id_lens, c * sizeof *il);
        if (il) q->id_lens = il;
        char **texts = realloc(q->texts, c * sizeof *texts);
        if (texts) q->texts = texts;
        size_t *lens = realloc(q->lens, c * sizeof *lens);
        if (lens) q->lens = lens;
        if (!ids || !il || !texts || !lens) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory reading queries");
        q->cap = c;
    }
    char *i = dup_n(id ? id : "", id_len), *t = dup_n(text ? text : "", len);
    if (!i || !t) {
        free(i);
        free(t);
        return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory reading queries");
    }
    q->ids[q->n] = i;
    q->id_lens[q->n] = id_len;
    q->texts[q->n] = t;
    q->lens[q->n] = len;
    q->n++;
    return GTR_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

gtr_queries *gtr_queries_load(const char *path, const gtr_qrels *judged, gtr_error *err)
{
    if (!path) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_queries_load: no path given");
        return NULL;
    }
    gtr_queries *q = gtr_queries_new(err);
    if (!q) return NULL;
    gtr_text_reader *rd = gtr_text_reader_open(path, GTR_TEXT_JSONL, err);
    if (!rd) {
        gtr_queries_free(q);
        return NULL;
    }
    gtr_status st = GTR_OK;
    for (;;) {
        gtr_record rec;
        bool eof;
        if ((st = gtr_text_reader_next(rd, &rec, &eof, err)) || eof) break;
        if (!rec.id || !rec.text) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: a query needs \"_id\" and \"text\"", path, rec.line);
            break;
        }
        const char *bad = gtr_id_problem(rec.id, rec.id_len);
        if (bad) { /* before any search: the run could not be written */
            st = gtr_seterr(err, GTR_ERR_FORMAT,
                            "%s:%zu: query id \"%.*s\" %s (ids are written to whitespace-separated TREC runs)",
                            path, rec.line, (int)GTR_MIN(rec.id_len, 200), rec.id, bad);
            break;
        }
        bool keep = !judged || gtr_qrels_has_query(judged, rec.id, rec.id_len);
        if (keep && (st = gtr_queries_add(q, rec.id, rec.id_len, rec.text, rec.text_len, err))) break;
    }
    gtr_text_reader_close(rd);
    /* duplicate ids, and judged queries without text (BEIR's loader would fail on them) */
    char **sorted = st ? NULL : gtr_xmalloc((q->n ? q->n : 1) * sizeof *sorted, "queries", err);
    if (!st && !sorted) st = GTR_ERR_NOMEM;
    if (!st) {
        if (q->n) memcpy(sorted, q->ids, q->n * sizeof *sorted);
        qsort(sorted, q->n, sizeof *sorted, cmp_str);
        for (size_t i = 1; i < q->n && !st; i++)
            if (strcmp(sorted[i - 1], sorted[i]) == 0)
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: query id \"%s\" appears twice", path, sorted[i]);
        for (size_t i = 0; judged && i < gtr_qrels_num_queries(judged) && !st; i++) {
            const char *qid = gtr_qrels_query_id(judged, i);
            if (!bsearch(&qid, sorted, q->n, sizeof *sorted, cmp_str))
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: judged query \"%s\" is not in the queries file", path, qid);
        }
    }
    free(sorted);
    if (st) {
        gtr_queries_free(q);
        return NULL;
    }
    return q;
}

gtr_queries *gtr_beir_load_queries(const gtr_beir *b, const gtr_qrels *judged, gtr_error *err)
{
    return gtr_queries_load(b->queries, judged, err);
}

size_t gtr_queries_count(const gtr_queries *q) { return q ? q->n : 0; }

const char *gtr_queries_id(const gtr_queries *q, size_t i, size_t *len)
{
    if (!q || i >= q->n) return NULL;
    if (len) *len = q->id_lens[i];
    return q->ids[i];
}

const char *gtr_queries_text(const gtr_queries *q, size_t i, size_t *len)
{
    if (!q || i >= q->n) return NULL;
    if (len) *len = q->lens[i];
    return q->texts[i];
}

const char *const *gtr_queries_ids(const gtr_queries *q) { return (const char *const *)q->ids; }
const size_t *gtr_queries_id_lens(const gtr_queries *q) { return q->id_lens; }
const char *const *gtr_queries_texts(const gtr_queries *q) { return (const char *const *)q->texts; }
const size_t *gtr_queries_text_lens(const gtr_queries *q) { return q->lens; }

/* ---- corpus */

struct gtr_corpus {
    char *path;
    gtr_text_reader *rd;
    gtr_buf passage;
};

gtr_corpus *gtr_corpus_open(const char *path, gtr_error *err)
{
    if (!path) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_corpus_open: no path given");
        return NULL;
    }
    gtr_corpus *c = gtr_xcalloc(1, sizeof *c, "corpus", err);
    if (!c) return NULL;
    if (!(c->path = dup_str(path))) {
        free(c);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (!(c->rd = gtr_text_reader_open(path, GTR_TEXT_JSONL, err))) {
        gtr_corpus_close(c);
        return NULL;
    }
    return c;
}

gtr_corpus *gtr_beir_open_corpus(const gtr_beir *b, gtr_error *err)
{
    return gtr_corpus_open(b->corpus, err);
}

gtr_status gtr_corpus_next(gtr_corpus *c, gtr_corpus_doc *doc, int *eof, gtr_error *err)
{
    if (!c || !doc || !eof) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_corpus_next: NULL argument");
    gtr_record rec;
    bool end;
    gtr_status st = gtr_text_reader_next(c->rd, &rec, &end, err);
    *eof = end;
    if (st || end) return st;
    if (!rec.id) return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: record without \"_id\"", c->path, rec.line);
    if ((st = gtr_record_passage(&rec, &c->passage, err))) return st;
    doc->id = rec.id;
    doc->id_len = rec.id_len;
    doc->passage = c->passage.data ? c->passage.data : "";
    doc->passage_len = c->passage.len;
    doc->line = rec.line;
    return GTR_OK;
}

void gtr_corpus_close(gtr_corpus *c)
{
    if (!c) return;
    gtr_text_reader_close(c->rd);
    gtr_buf_free(&c->passage);
    free(c->path);
    free(c);
}
