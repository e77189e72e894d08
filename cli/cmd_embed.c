/* cmd_embed.c — `gtr embed`: texts (plain lines or JSON lines, BEIR corpus/query objects) to
 * GTR vectors, written as .npy float32 [n, dim] (default), raw little-endian float32 or JSON
 * lines. Files are written atomically (nothing half-written on error or Ctrl-C). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *CMD = "embed";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr embed -m MODEL_DIR [-i FILE] [-o OUT] [options]\n"
        "\n"
        "Embed texts with a GTR model (a sentence-transformers directory, e.g. from `gtr pull\n"
        "sentence-transformers/gtr-t5-base`): the same vectors as SentenceTransformer.encode().\n"
        "\n"
        "Input:\n"
        "  -i, --input FILE      texts (default: standard input). A .jsonl/.json/.ndjson file holds\n"
        "                        one JSON string or object per line; other files one text per line.\n"
        "                        Objects with a \"title\" (BEIR corpus) are embedded as\n"
        "                        (title + \" \" + text).strip(), as BEIR does; other objects (BEIR\n"
        "                        queries) by their \"text\".\n"
        "      --input-format F  auto (default), plain or jsonl\n"
        "\n"
        "Output:\n"
        "  -o, --output OUT      where to write (default: standard output). Files appear atomically.\n"
        "      --format F        npy: NumPy float32 [n, dim] (default for files)\n"
        "                        f32: raw little-endian float32, n * dim values\n"
        "                        jsonl: one line per text, {\"_id\": ..., \"embedding\": [...]} when\n"
        "                        the input has ids, else [...] (default for standard output)\n"
        "                        Without --format, an OUT ending in .f32/.bin means f32 and one\n"
        "                        ending in .jsonl/.json means jsonl.\n"
        "\n"
        "Model and speed:\n"
        "  -m, --model DIR       the model directory (required)\n"
        "      --max-len N       tokens per text including </s> (default: the model's\n"
        "                        max_seq_length, 512 for GTR); longer texts are truncated\n"
        "      --batch N         texts per encode call (default 64; never changes the vectors)\n"
        "  -t, --threads N       worker threads (default: all cores)\n"
        "      --dtype D         compute precision: f32 (default, the reference), bf16 or int8\n"
        "      --device D        cpu (default), cuda or cuda:N (also GTR_DEVICE; needs lib/libgtr-cuda.so)\n"
        "      --spm-compat C    tokenizer to match where segmentations tie (runs of one\n"
        "                        repeated character, e.g. ----): 0.1 (SentencePiece up to 0.2.1,\n"
        "                        the reference), 0.2.2 (SentencePiece 0.2.2 and later) or hf (the\n"
        "                        Hugging Face tokenizer sentence-transformers uses: identical\n"
        "                        vectors). Default: $GTR_SPM_COMPAT, else 0.1\n"
        "  -q, --quiet           no progress on standard error\n"
        "  -v, --verbose         also print the model description, speed and peak memory\n"
        "  -h, --help            this help\n"
        "\n"
        "The model is loaded without its fingerprint (an F16 checkpoint's weights are not hashed:\n"
        "only a dense index compares it; `gtr info -m DIR` prints it).\n"
        "\n"
        "Examples:\n"
        "  gtr embed -m gtr-t5-base -i corpus.jsonl -o corpus.npy\n"
        "  echo 'what is dense retrieval?' | gtr embed -m gtr-t5-base\n");
}

typedef enum { OUT_NPY, OUT_F32, OUT_JSONL } out_format;

typedef struct opts {
    const char *model, *input, *output;
    gtr_text_format in_fmt;
    int out_fmt; /* -1: from the output name */
    long long max_len, batch, threads;
    gtr_compute_dtype dtype;
    const char *device;
    const char *spm_compat_name;
    bool quiet, verbose;
} opts;

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Number of lines in a regular file (for the progress total); 0 when unknown. */
static uint64_t count_lines(const char *path)
{
    if (!strcmp(path, "-")) return 0;
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 16);
    if (!f || !buf) {
        if (f) fclose(f);
        free(buf);
        return 0;
    }
    uint64_t n = 0;
    size_t got;
    char last = '\n';
    while ((got = fread(buf, 1, 1 << 16, f)) > 0) {
        for (const char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))); p++) n++;
        last = buf[got - 1];
    }
    fclose(f);
    free(buf);
    return n + (last != '\n');
}

/* ---- output ------------------------------------------------------------- */

typedef struct writer {
    out_format fmt;
    bool to_stdout;
    const char *path;
    gtr_output_file *of;
    float *held; /* npy to standard output: all rows until the count is known */
    size_t held_rows, held_cap;
    size_t rows, dim;
    cli_buf line;
} writer;

static gtr_status w_write(writer *w, const void *p, size_t n, gtr_error *err)
{
    if (w->to_stdout) {
        if (n && fwrite(p, 1, n, stdout) != n)
            return gtr_error_set(err, GTR_ERR_IO, "standard output: write failed: %s", strerror(errno));
        return GTR_OK;
    }
    return gtr_output_file_write(w->of, p, n, err);
}

static gtr_status w_open(writer *w, const char *path, out_format fmt, size_t dim, gtr_error *err)
{
    memset(w, 0, sizeof *w);
    w->fmt = fmt;
    w->dim = dim;
    w->to_stdout = !path || !strcmp(path, "-");
    w->path = path;
    if (!w->to_stdout && !(w->of = gtr_output_file_open(path, err))) return err->code;
    if (fmt == OUT_NPY && !w->to_stdout) {
        char hdr[128];
        gtr_npy_header_f32(hdr, sizeof hdr, 0, dim); /* rows patched at the end */
        return w_write(w, hdr, sizeof hdr, err);
    }
    return GTR_OK;
}

static bool put(cli_buf *b, const char *s) { return cli_buf_append(b, s, strlen(s)); }

static bool json_str(cli_buf *b, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *enc = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    bool ok = put(b, enc ? enc : "null");
    free(enc);
    json_decref(j);
    return ok;
}

static gtr_status w_rows(writer *w, const float *v, size_t n, char **ids, size_t *id_lens,
                         gtr_error *err)
{
    /* never an output: a non-finite number is no vector (and not JSON); the library refuses
     * such results already, this guards the file format */
    for (size_t i = 0; i < n * w->dim; i++)
        if (!isfinite(v[i]))
            return gtr_error_set(err, GTR_ERR_INTERNAL, "text %zu: the vector has a non-finite value",
                                 w->rows + i / w->dim + 1);
    w->rows += n;
    if (w->fmt == OUT_JSONL) {
        for (size_t i = 0; i < n; i++) {
            w->line.len = 0;
            bool ok = ids[i] ? put(&w->line, "{\"_id\": ") && json_str(&w->line, ids[i], id_lens[i]) &&
                                   put(&w->line, ", \"embedding\": [")
                             : put(&w->line, "[");
            for (size_t j = 0; ok && j < w->dim; j++) {
                char num[40];
                snprintf(num, sizeof num, "%s%.9g", j ? ", " : "", (double)v[i * w->dim + j]);
                ok = put(&w->line, num);
            }
            if (!ok || !put(&w->line, ids[i] ? "]}\n" : "]\n")) return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory");
            gtr_status st = w_write(w, w->line.data, w->line.len, err);
            if (st) return st;
        }
        return GTR_OK;
    }
    if (w->fmt == OUT_NPY && w->to_stdout) {
        if (w->held_rows + n > w->held_cap) {
            size_t cap = 2 * w->held_cap > w->held_rows + n ? 2 * w->held_cap : w->held_rows + n;
            float *h = realloc(w->held, cap * w->dim * sizeof *h);
            if (!h) return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory holding the vectors");
            w->held = h;
            w->held_cap = cap;
        }
        memcpy(w->held + w->held_rows * w->dim, v, n * w->dim * sizeof *v);
        w->held_rows += n;
        return GTR_OK;
    }
    return w_write(w, v, n * w->dim * sizeof *v, err);
}

static gtr_status w_close(writer *w, gtr_error *err)
{
    gtr_status st = GTR_OK;
    char hdr[128];
    if (w->fmt == OUT_NPY && !gtr_npy_header_f32(hdr, sizeof hdr, w->rows, w->dim))
        st = gtr_error_set(err, GTR_ERR_INVALID_ARG, "too many rows for a .npy header");
    if (!st && w->to_stdout) {
        if (w->fmt == OUT_NPY && (st = w_write(w, hdr, sizeof hdr, err)) == GTR_OK)
            st = w_write(w, w->held, w->held_rows * w->dim * sizeof(float), err);
        if (!st && fflush(stdout) != 0)
            st = gtr_error_set(err, GTR_ERR_IO, "standard output: write failed: %s", strerror(errno));
    } else if (!st) {
        FILE *fp = gtr_output_file_stream(w->of);
        if (w->fmt == OUT_NPY) {
            /* the row count is known now: rewrite the fixed-size header in place */
            if (fflush(fp) != 0 || fseek(fp, 0, SEEK_SET) != 0 || fwrite(hdr, 1, sizeof hdr, fp) != sizeof hdr)
                st = gtr_error_set(err, GTR_ERR_IO, "%s: cannot write the header: %s", w->path, strerror(errno));
        }
        if (st) gtr_output_file_abort(w->of);
        else st = gtr_output_file_commit(w->of, err);
    } else if (!w->to_stdout) {
        gtr_output_file_abort(w->of);
    }
    free(w->held);
    cli_buf_free(&w->line);
    return st;
}

static void w_abort(writer *w)
{
    if (!w->to_stdout) gtr_output_file_abort(w->of);
    free(w->held);
    cli_buf_free(&w->line);
}

/* ---- the batch loop ------------------------------------------------------- */

typedef struct batch {
    size_t n, cap;
    cli_buf arena;   /* texts and ids, back to back */
    size_t *text_off, *text_len, *id_off, *id_len, *line;
    bool *has_id;
    const char **texts;
    char **ids;
    float *vecs;
} batch;

static bool batch_init(batch *b, size_t cap, size_t dim)
{
    memset(b, 0, sizeof *b);
    b->cap = cap;
    b->text_off = calloc(cap, sizeof(size_t));
    b->text_len = calloc(cap, sizeof(size_t));
    b->id_off = calloc(cap, sizeof(size_t));
    b->id_len = calloc(cap, sizeof(size_t));
    b->line = calloc(cap, sizeof(size_t));
    b->has_id = calloc(cap, sizeof(bool));
    b->texts = calloc(cap, sizeof(char *));
    b->ids = calloc(cap, sizeof(char *));
    b->vecs = calloc(cap * dim, sizeof(float));
    return b->text_off && b->text_len && b->id_off && b->id_len && b->line && b->has_id &&
           b->texts && b->ids && b->vecs;
}

static void batch_free(batch *b)
{
    cli_buf_free(&b->arena);
    free(b->text_off);
    free(b->text_len);
    free(b->id_off);
    free(b->id_len);
    free(b->line);
    free(b->has_id);
    free(b->texts);
    free(b->ids);
    free(b->vecs);
}

/* Copy one record into the batch: its text as gtr embed defines it, and its id. */
static gtr_status batch_add(batch *b, const gtr_text_record *rec, gtr_error *err)
{
    const char *s = rec->text;
    size_t n = rec->text_len;
    char *passage = NULL;
    if (rec->has_title) { /* BEIR corpus: (title + " " + text).strip() */
        gtr_status st = gtr_text_record_passage(rec, &passage, &n, err);
        if (st) return st;
        s = passage;
    }
    size_t i = b->n;
    b->text_off[i] = b->arena.len;
    b->text_len[i] = n;
    bool ok = cli_buf_append(&b->arena, s ? s : "", n) && cli_buf_append(&b->arena, "", 1);
    gtr_free(passage);
    b->has_id[i] = rec->id != NULL;
    b->id_off[i] = b->arena.len;
    b->id_len[i] = rec->id ? rec->id_len : 0;
    if (!ok || (rec->id && !cli_buf_append(&b->arena, rec->id, rec->id_len)))
        return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory");
    b->line[i] = rec->line;
    b->n++;
    return GTR_OK;
}

/* Encode the batch; on failure find the text that fails, to name its input line. */
static gtr_status batch_encode(gtr_model *m, batch *b, const char *input, gtr_error *err)
{
    for (size_t i = 0; i < b->n; i++) {
        b->texts[i] = b->arena.data + b->text_off[i];
        b->ids[i] = b->has_id[i] ? b->arena.data + b->id_off[i] : NULL;
    }
    gtr_status st = gtr_model_encode(m, b->texts, b->text_len, b->n, b->vecs, err);
    if (!st) return GTR_OK;
    size_t dim = (size_t)gtr_model_dim(m);
    for (size_t i = 0; i < b->n; i++) {
        gtr_error e1;
        if (gtr_model_encode(m, &b->texts[i], &b->text_len[i], 1, b->vecs + i * dim, &e1)) {
            gtr_error_set(err, e1.code, "%s:%zu: %s", strcmp(input, "-") ? input : "<stdin>", b->line[i],
                          e1.message);
            return e1.code;
        }
    }
    return st;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !memcmp(s + a - b, suffix, b);
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

static int run(const opts *o)
{
    gtr_error err;
    double t0 = cli_now();
    gtr_model_options mo;
    if (!cli_model_options(CMD, &mo) || (o->spm_compat_name && !cli_spm_compat(CMD, o->spm_compat_name, &mo.spm_compat))) return 2;
    mo.n_threads = (int)o->threads;
    mo.max_len = (int)o->max_len;
    mo.dtype = o->dtype;
    mo.batch_size = (size_t)o->batch; /* the memory check counts the activations of one batch */
    mo.no_fingerprint = 1;            /* vectors only: nothing here compares the fingerprint */
    if (o->device) mo.device = o->device;
    gtr_model *m = gtr_model_load(o->model, &mo, &err);
    if (!m) return cli_fail(CMD, &err);
    double t_load = cli_now() - t0;
    if (o->verbose)
        fprintf(stderr, "%s\nloaded in %.2f s, peak memory so far %.1f MiB\n", gtr_model_describe(m),
                t_load, peak_rss_mib());
    size_t dim = (size_t)gtr_model_dim(m);
    out_format fmt = (out_format)o->out_fmt;
    if (o->out_fmt < 0) {
        if (!o->output || !strcmp(o->output, "-")) fmt = OUT_JSONL;
        else if (ends_with(o->output, ".f32") || ends_with(o->output, ".bin")) fmt = OUT_F32;
        else if (ends_with(o->output, ".jsonl") || ends_with(o->output, ".json")) fmt = OUT_JSONL;
        else fmt = OUT_NPY;
    }
    gtr_text_reader *r = gtr_text_reader_open(o->input, o->in_fmt, &err);
    if (!r) {
        gtr_model_free(m);
        return cli_fail(CMD, &err);
    }
    batch b;
    writer w;
    int rc = 0;
    bool w_open_ok = false;
    if (!batch_init(&b, (size_t)o->batch, dim)) {
        rc = cli_errorf(CMD, 1, "out of memory");
        goto done;
    }
    if (w_open(&w, o->output, fmt, dim, &err)) {
        rc = cli_fail(CMD, &err);
        goto done;
    }
    w_open_ok = true;
    cli_progress prog;
    cli_progress_init(&prog, "embedding", "texts", o->quiet);
    uint64_t total = count_lines(o->input), done_n = 0;
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    double t_enc = cli_now();
    for (bool eof = false; !eof;) {
        b.n = 0;
        b.arena.len = 0;
        while (b.n < b.cap) {
            gtr_text_record rec;
            int end;
            if (gtr_text_reader_read(r, &rec, &end, &err)) {
                rc = cli_fail(CMD, &err);
                goto stop;
            }
            if ((eof = end)) break;
            if (batch_add(&b, &rec, &err)) {
                rc = cli_fail(CMD, &err);
                goto stop;
            }
        }
        if (b.n == 0) break;
        if (batch_encode(m, &b, o->input, &err) ||
            w_rows(&w, b.vecs, b.n, b.ids, b.id_len, &err)) {
            rc = cli_fail(CMD, &err);
            goto stop;
        }
        done_n += b.n;
        cli_progress_cb(&prog, done_n, total > done_n ? total : done_n);
        if (interrupted) {
            rc = cli_errorf(CMD, 130, "interrupted; %s left untouched",
                            w.to_stdout ? "nothing more written" : o->output);
            goto stop;
        }
    }
stop:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (rc == 0) {
        w_open_ok = false;
        if (w_close(&w, &err)) rc = cli_fail(CMD, &err);
        cli_progress_done(&prog, done_n);
        if (o->verbose && rc == 0) {
            double el = cli_now() - t_enc;
            fprintf(stderr,
                    "embedded %llu texts in %.2f s (%.1f texts/s); weights %.1f MiB, peak memory "
                    "%.1f MiB\n",
                    (unsigned long long)done_n, el, el > 0 ? (double)done_n / el : 0.0,
                    (double)gtr_model_weight_bytes(m) / (1 << 20), peak_rss_mib());
        }
    }
done:
    if (w_open_ok) w_abort(&w);
    batch_free(&b);
    gtr_text_reader_close(r);
    gtr_model_free(m);
    return rc;
}

int cmd_embed(int argc, char **argv)
{
    enum { OPT_MAXLEN = 256, OPT_BATCH, OPT_THREADS, OPT_FORMAT, OPT_INFMT, OPT_DTYPE, OPT_SPMV, OPT_DEVICE };
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},     {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},    {"max-len", required_argument, 0, OPT_MAXLEN},
        {"batch", required_argument, 0, OPT_BATCH}, {"threads", required_argument, 0, 't'},
        {"format", required_argument, 0, OPT_FORMAT}, {"input-format", required_argument, 0, OPT_INFMT},
        {"dtype", required_argument, 0, OPT_DTYPE}, {"device", required_argument, 0, OPT_DEVICE}, {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},         {"help", no_argument, 0, 'h'},
        {"spm-compat", required_argument, 0, OPT_SPMV},
        {0, 0, 0, 0}};
    opts o = {.input = "-", .in_fmt = GTR_TEXT_AUTO, .out_fmt = -1, .batch = 64};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:i:o:t:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'i': o.input = optarg; break;
        case 'o': o.output = optarg; break;
        case 'q': o.quiet = true; break;
        case 'v': o.verbose = true; break;
        case 'h': usage(stdout); return 0;
        case OPT_MAXLEN:
            if (!cli_parse_int(CMD, "--max-len", optarg, 1, 65536, &o.max_len)) return 2;
            break;
        case OPT_BATCH:
            if (!cli_parse_int(CMD, "--batch", optarg, 1, 1 << 20, &o.batch)) return 2;
            break;
        case 't':
            if (!cli_parse_int(CMD, "--threads", optarg, 1, 1024, &o.threads)) return 2;
            break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "npy")) o.out_fmt = OUT_NPY;
            else if (!strcmp(optarg, "f32")) o.out_fmt = OUT_F32;
            else if (!strcmp(optarg, "jsonl")) o.out_fmt = OUT_JSONL;
            else return cli_errorf(CMD, 2, "--format must be npy, f32 or jsonl, got '%s'", optarg);
            break;
        case OPT_INFMT:
            if (!strcmp(optarg, "auto")) o.in_fmt = GTR_TEXT_AUTO;
            else if (!strcmp(optarg, "plain")) o.in_fmt = GTR_TEXT_PLAIN;
            else if (!strcmp(optarg, "jsonl")) o.in_fmt = GTR_TEXT_JSONL;
            else return cli_errorf(CMD, 2, "--input-format must be auto, plain or jsonl, got '%s'", optarg);
            break;
        case OPT_DEVICE:
            o.device = optarg;
            break;
        case OPT_DTYPE:
            if (!cli_parse_dtype(CMD, optarg, &o.dtype)) return 2;
            break;
        case OPT_SPMV: o.spm_compat_name = optarg; break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!o.model) return cli_errorf(CMD, 2, "-m MODEL_DIR is required (see --help)");
    return run(&o);
}
