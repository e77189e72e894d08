/* common.c — error printing, strict number parsing and output files for every subcommand. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int cli_fail(const char *cmd, const gtr_error *err)
{
    fprintf(stderr, "gtr %s: %s\n", cmd, err && err->message[0] ? err->message : "failed");
    return 1;
}

int cli_errorf(const char *cmd, int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gtr %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

bool cli_check_cpu_env(const char *prog)
{
    gtr_error err = {0};
    if (gtr_cpu_check_env(&err) == GTR_OK) return true;
    if (prog) fprintf(stderr, "%s: %s\n", prog, err.message);
    return false;
}

bool cli_parse_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
                   long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        cli_errorf(cmd, 2, "%s expects an integer in [%lld, %lld], got '%s'", opt, min, max, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        cli_errorf(cmd, 2, "%s expects a number, got '%s'", opt, s);
        return false;
    }
    *out = v;
    return true;
}

char *cli_path_join(const char *cmd, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) {
        cli_errorf(cmd, 1, "out of memory");
        return NULL;
    }
    snprintf(p, a + b + 2, "%s%s%s", dir, a && dir[a - 1] != '/' ? "/" : "", name);
    return p;
}

char *cli_path_suffixed(const char *cmd, const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (!p) {
        cli_errorf(cmd, 1, "out of memory");
        return NULL;
    }
    snprintf(p, n, "%s%s", path, suffix);
    return p;
}

bool cli_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool cli_buf_reserve(cli_buf *b, size_t extra)
{
    if (b->cap - b->len > extra) return true; /* room for the terminator too */
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra) {
        if (cap * 2 < cap) return false;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return false;
    b->data = p;
    b->cap = cap;
    return true;
}

bool cli_buf_append(cli_buf *b, const void *p, size_t n)
{
    if (!cli_buf_reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

void cli_buf_free(cli_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

FILE *cli_open_out(const char *cmd, const char *path)
{
    if (!path || strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) cli_errorf(cmd, 1, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

bool cli_spm_compat(const char *cmd, const char *v, gtr_spm_compat *out)
{
    const char *what = v ? "--spm-compat" : "GTR_SPM_COMPAT";
    if (!v) v = getenv("GTR_SPM_COMPAT");
    *out = GTR_SPM_COMPAT_0_1;
    if (!v || !*v) return true;
    gtr_error err;
    if (gtr_spm_compat_parse(v, out, &err)) {
        cli_errorf(cmd, 2, "%s: %s", what, err.message);
        return false;
    }
    return true;
}

bool cli_model_options(const char *cmd, gtr_model_options *mo)
{
    *mo = gtr_model_default_options();
    /* GTR_DEVICE=cuda[:N] puts every command's encoder on a GPU (--device overrides it) */
    const char *dev = getenv("GTR_DEVICE");
    if (dev && *dev) mo->device = dev;
    mo->no_verify = cli_no_verify();
    return cli_max_memory(cmd, &mo->max_memory) && cli_spm_compat(cmd, NULL, &mo->spm_compat);
}

bool cli_max_memory(const char *cmd, size_t *out)
{
    const char *v = getenv("GTR_MAX_MEMORY");
    *out = 0;
    if (!v || !*v) return true;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    double mul = !*end ? 1 : !strcmp(end, "K") ? 1024.0 : !strcmp(end, "M") ? 1048576.0 : !strcmp(end, "G") ? 1073741824.0 : 0;
    if (*v == '-' || end == v || errno || mul == 0 || x == 0 || (double)x * mul > (double)SIZE_MAX / 2)
        return cli_errorf(cmd, 2, "GTR_MAX_MEMORY must be a positive number of bytes (suffix K, M or G allowed), got '%s'", v),
               false;
    *out = (size_t)((double)x * mul);
    return true;
}

int cli_no_verify(void)
{
    const char *v = getenv("GTR_NO_VERIFY");
    return v && *v && strcmp(v, "0") != 0;
}

bool cli_parse_dtype(const char *cmd, const char *s, gtr_compute_dtype *out)
{
    if (!strcmp(s, "f32")) *out = GTR_DTYPE_F32;
    else if (!strcmp(s, "bf16")) *out = GTR_DTYPE_BF16;
    else if (!strcmp(s, "int8")) *out = GTR_DTYPE_INT8;
    else return cli_errorf(cmd, 2, "--dtype must be f32, bf16 or int8, got '%s'", s), false;
    return true;
}

bool cli_parse_fusion(const char *cmd, const char *s, gtr_fusion *out)
{
    if (!strcmp(s, "rrf")) *out = GTR_FUSION_RRF;
    else if (!strcmp(s, "interp")) *out = GTR_FUSION_INTERP;
    else return cli_errorf(cmd, 2, "--fusion expects rrf or interp, got '%s'", s), false;
    return true;
}

int cli_index_option(int c, const char *arg, gtr_index_build_options *o, gtr_model_options *mo)
{
    long long v;
    switch (c) {
    case CLI_IX_STORE:
        if (!strcmp(arg, "f16") || !strcmp(arg, "float16")) o->compact = GTR_COMPACT_F16;
        else if (!strcmp(arg, "int8")) o->compact = GTR_COMPACT_INT8;
        else if (!strcmp(arg, "f32") || !strcmp(arg, "none")) o->compact = GTR_COMPACT_NONE;
        else {
            cli_errorf("index", 2, "--store expects f16 or int8, got '%s'", arg);
            return -1;
        }
        return 1;
    case CLI_IX_BATCH:
        if (!cli_parse_int("index", "--batch", arg, 1, 1 << 16, &v)) return -1;
        o->batch_size = (size_t)v;
        return 1;
    case CLI_IX_CKPT:
        if (!cli_parse_int("index", "--checkpoint", arg, 1, LLONG_MAX, &v)) return -1;
        o->checkpoint_every = (size_t)v;
        return 1;
    case CLI_IX_SNIP:
        if (!cli_parse_int("index", "--snippet-bytes", arg, 0, 1 << 20, &v)) return -1;
        o->snippet_bytes = (size_t)v;
        return 1;
    case CLI_IX_RESTART: o->no_resume = 1; return 1;
    case 't':
        if (!cli_parse_int("index", "--threads", arg, 1, 1024, &v)) return -1;
        mo->n_threads = (int)v;
        return 1;
    case CLI_IX_DTYPE: return cli_parse_dtype("index", arg, &mo->dtype) ? 1 : -1;
    case CLI_IX_MAXLEN:
        if (!cli_parse_int("index", "--max-len", arg, 2, 1 << 20, &v)) return -1;
        mo->max_len = (int)v;
        return 1;
    default: return 0;
    }
}

void cli_search_args_init(cli_search_args *a)
{
    memset(a, 0, sizeof *a);
    a->o = gtr_retrieve_default_options();
    a->o.k = 1000;
}

int cli_ann_build_option(const char *cmd, int c, const char *arg, gtr_ann_build_options *o)
{
    long long v;
    switch (c) {
    case CLI_A_LISTS:
        if (!cli_parse_int(cmd, "--lists", arg, 1, 1 << 24, &v)) return -1;
        o->n_lists = (uint32_t)v;
        return 1;
    case CLI_A_ITERS:
        if (!cli_parse_int(cmd, "--iters", arg, 1, 1000, &v)) return -1;
        o->iters = (uint32_t)v;
        return 1;
    case CLI_A_SEED:
        if (!cli_parse_int(cmd, "--seed", arg, 0, (1LL << 62), &v)) return -1;
        o->seed = (uint64_t)v;
        return 1;
    case CLI_A_CKPT:
        if (!cli_parse_int(cmd, "--checkpoint", arg, 1, 1LL << 32, &v)) return -1;
        o->checkpoint_every = (size_t)v;
        return 1;
    case CLI_A_RESTART: o->no_resume = 1; return 1;
    default: return 0;
    }
}

int cli_search_option(int c, const char *arg, cli_search_args *a)
{
    long long v;
    gtr_retrieve_options *o = &a->o;
    switch (c) {
    case CLI_S_INDEX: a->index = arg; return 1;
    case 'm': a->model = arg; return 1;
    case 'q': a->queries = arg; return 1;
    case 'o': a->out = arg; return 1;
    case CLI_S_BM25: a->bm25 = arg; return 1;
    case 'k':
        if (!cli_parse_int("search", "-k", arg, 1, 1 << 20, &v)) return -1;
        o->k = (size_t)v;
        a->k_given = true;
        return 1;
    case CLI_S_METHOD:
        if (!gtr_retrieval_method_parse(arg, &o->method, NULL)) return 1;
        cli_errorf("search", 2, "--method expects dense, bm25 or hybrid, got '%s'", arg);
        return -1;
    case CLI_S_FUSION: return cli_parse_fusion("search", arg, &o->fusion.method) ? 1 : -1;
    case CLI_S_ALPHA:
        if (!cli_parse_double("search", "--alpha", arg, &o->alpha)) return -1;
        if (o->alpha >= 0 && o->alpha <= 1) return 1;
        cli_errorf("search", 2, "--alpha must be in [0, 1]");
        return -1;
    case CLI_S_RRFK:
        if (!cli_parse_double("search", "--rrf-k", arg, &o->fusion.rrf_k)) return -1;
        if (o->fusion.rrf_k >= 0) return 1;
        cli_errorf("search", 2, "--rrf-k must be >= 0");
        return -1;
    case CLI_S_DEPTH:
        if (!cli_parse_int("search", "--depth", arg, 1, 1 << 20, &v)) return -1;
        o->depth = (size_t)v;
        return 1;
    case CLI_S_SKIP: a->skip_self = true; return 1;
    case CLI_S_COMPACT: o->use_compact = 1; return 1;
    case CLI_S_TAG:
        if (*arg && !strpbrk(arg, " \t\r\n")) {
            a->tag = arg;
            return 1;
        }
        cli_errorf("search", 2, "--tag must be one word");
        return -1;
    case 't':
        if (!cli_parse_int("search", "--threads", arg, 1, 1024, &v)) return -1;
        a->threads = (int)v;
        return 1;
    default: return 0;
    }
}

bool cli_search_check(const char *cmd, const cli_search_args *a)
{
    const char *name = gtr_retrieval_method_name(a->o.method);
    if (a->o.method != GTR_RETRIEVE_BM25 && !a->index) return cli_errorf(cmd, 2, "%s search needs --index INDEX", name) == 0;
    if (a->o.method != GTR_RETRIEVE_DENSE && !a->bm25) return cli_errorf(cmd, 2, "%s search needs --bm25-index PATH", name) == 0;
    return true;
}

/* ---- retrieval glue shared by search, beir and gtr-mpi */

const char *cli_query_model_dir(const char *cmd, const char *model_dir, const gtr_index *ix)
{
    if (model_dir) return model_dir;
    const char *dir = ix ? gtr_index_model_hint(ix) : NULL;
    struct stat st;
    if (!dir) {
        cli_errorf(cmd, 2, "the index does not record its model directory: pass -m MODEL_DIR");
        return NULL;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        cli_errorf(cmd, 2, "the index was built with the model in %s, which is not there: pass -m MODEL_DIR", dir);
        return NULL;
    }
    return dir;
}

gtr_model *cli_load_query_model(const char *cmd, const char *model_dir, const gtr_index *ix, int threads,
                                gtr_pool *pool)
{
    const char *dir = cli_query_model_dir(cmd, model_dir, ix);
    if (!dir) return NULL;
    gtr_model_options mo;
    if (!cli_model_options(cmd, &mo)) return NULL;
    mo.n_threads = threads;
    mo.pool = pool;
    gtr_error err;
    gtr_model *m = gtr_model_load(dir, &mo, &err);
    if (!m) {
        cli_fail(cmd, &err);
        return NULL;
    }
    if (ix && gtr_index_check_model(ix, m, &err)) {
        cli_fail(cmd, &err);
        gtr_model_free(m);
        return NULL;
    }
    return m;
}

static bool parts_fail(const char *cmd, const cli_parts *p, const gtr_error *err)
{
    if (p->fail) p->fail(p->fail_user, cmd, err);
    else cli_fail(cmd, err);
    return false;
}

bool cli_parts_open(const char *cmd, cli_parts *p, const cli_parts_want *w, gtr_pool *pool)
{
    gtr_error err;
    if (!p->dense && w->index && !(p->dense = gtr_index_open(w->index, w->index_flags, pool, &err)))
        return parts_fail(cmd, p, &err);
    if (!p->ann && w->ann && !(p->ann = gtr_ann_open(w->ann, p->dense, &err))) return parts_fail(cmd, p, &err);
    if (!p->bm25 && w->bm25 && w->method != GTR_RETRIEVE_DENSE && !(p->bm25 = gtr_bm25_open(w->bm25, &err)))
        return parts_fail(cmd, p, &err);
    if (!p->model && w->method != GTR_RETRIEVE_BM25 &&
        !(p->model = cli_load_query_model(cmd, w->model_dir, p->dense, w->threads, pool)))
        return false;
    return true;
}

bool cli_parts_retriever(const char *cmd, cli_parts *p, gtr_pool *pool)
{
    gtr_error err;
    gtr_retriever_options o = gtr_retriever_default_options();
    o.model = p->model;
    o.index = p->dense;
    o.ann = p->ann;
    o.bm25 = p->bm25;
    o.pool = pool;
    if (!(p->rt = gtr_retriever_open(&o, &err))) return parts_fail(cmd, p, &err);
    return true;
}

void cli_parts_free(cli_parts *p)
{
    gtr_retriever_free(p->rt);
    gtr_model_free(p->model);
    gtr_ann_free(p->ann);
    gtr_index_free(p->dense);
    gtr_bm25_free(p->bm25);
    memset(p, 0, sizeof *p);
}

int cli_retrieve(const char *cmd, gtr_retriever *r, const gtr_queries *q, const gtr_retrieve_options *o,
                 bool quiet, gtr_hit **hits, size_t **n_hits)
{
    size_t nq = gtr_queries_count(q);
    *hits = calloc(nq * o->k + 1, sizeof **hits);
    *n_hits = calloc(nq + 1, sizeof **n_hits);
    if (!*hits || !*n_hits) {
        free(*hits);
        free(*n_hits);
        *hits = NULL;
        *n_hits = NULL;
        return cli_errorf(cmd, 1, "out of memory for %zu queries x %zu hits", nq, o->k);
    }
    cli_progress prog;
    cli_progress_init(&prog, "searching", "queries", quiet || nq < 512); /* two chunks of 256 */
    gtr_retrieve_options so = *o;
    so.progress = cli_progress_cb;
    so.progress_user = &prog;
    gtr_error err;
    gtr_status st = gtr_retriever_search(r, gtr_queries_texts(q), gtr_queries_text_lens(q), nq, &so, *hits, *n_hits, &err);
    if (st) {
        if (prog.drawn) fputc('\n', stderr);
        free(*hits);
        free(*n_hits);
        *hits = NULL;
        *n_hits = NULL;
        return cli_fail(cmd, &err);
    }
    cli_progress_done(&prog, nq);
    return 0;
}

gtr_run *cli_hits_run(const char *cmd, const gtr_queries *q, const gtr_hit *hits, const size_t *n_hits, size_t k,
                      size_t max_rank)
{
    gtr_error err;
    gtr_run *run = gtr_run_new(&err);
    for (size_t i = 0; run && i < gtr_queries_count(q); i++) {
        size_t len;
        const char *id = gtr_queries_id(q, i, &len);
        if (gtr_run_add_hits(run, id, len, hits + i * k, n_hits[i], max_rank, &err)) {
            gtr_run_free(run);
            run = NULL;
        }
    }
    if (!run) cli_fail(cmd, &err);
    return run;
}

bool cli_read_ids(const char *cmd, const char *path, char ***ids_out, size_t **lens_out, size_t *n_out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_errorf(cmd, 1, "%s: cannot open the ids file", path);
        return false;
    }
    char **ids = NULL, *line = NULL;
    size_t *lens = NULL, n = 0, cap = 0, lcap = 0;
    ssize_t got;
    bool ok = true;
    while (ok && (got = getline(&line, &lcap, f)) >= 0) {
        size_t l = (size_t)got;
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) l--;
        if (!l) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **ni = realloc(ids, cap * sizeof *ids);
            size_t *nl = ni ? realloc(lens, cap * sizeof *lens) : NULL;
            if (ni) ids = ni;
            if (nl) lens = nl;
            if (!ni || !nl) break;
        }
        if (!(ids[n] = malloc(l + 1))) break;
        memcpy(ids[n], line, l);
        ids[n][l] = 0;
        lens[n++] = l;
    }
    if (!feof(f) || ferror(f)) {
        ok = false;
        cli_errorf(cmd, 1, "%s: %s", path, ferror(f) ? "read error" : "out of memory reading the ids");
    }
    free(line);
    fclose(f);
    if (!ok) {
        cli_ids_free(ids, lens, n);
        return false;
    }
    *ids_out = ids;
    *lens_out = lens;
    *n_out = n;
    return true;
}

void cli_ids_free(char **ids, size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
}
