/* cmd_tokenize.c — `gtr tokenize`: texts to T5 SentencePiece ids or pieces (or back). */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char *CMD = "tokenize";

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr tokenize (-m MODEL_DIR | --spm FILE) [options]\n"
        "\n"
        "Tokenize texts with T5's SentencePiece unigram model, exactly as the SentencePiece\n"
        "library does, plus the T5 conventions: </s> (id 1) is appended, and --max-len N keeps\n"
        "the first N-1 ids and then </s>. Prints one line per text: the ids separated by spaces.\n"
        "\n"
        "Model (one of):\n"
        "  -m, --model DIR     a GTR model directory: uses DIR/spiece.model, and the default\n"
        "                      --max-len is DIR/sentence_bert_config.json max_seq_length\n"
        "                      (512 when that file is absent)\n"
        "      --spm FILE      a spiece.model file (default --max-len: 0, no truncation)\n"
        "      --spm-compat C  implementation to match where segmentations tie (runs of one\n"
        "                      repeated character, e.g. ----): 0.1 (SentencePiece up to 0.2.1,\n"
        "                      the reference data), 0.2.2 (SentencePiece 0.2.2 and later) or hf\n"
        "                      (the Hugging Face tokenizer sentence-transformers uses).\n"
        "                      Default: $GTR_SPM_COMPAT, else 0.1\n"
        "\n"
        "Input and output:\n"
        "  -i, --input FILE    texts to read (default: standard input). A .jsonl/.json/.ndjson\n"
        "                      file holds one JSON string, or an object with a \"text\" field,\n"
        "                      per line; anything else is one text per line (a trailing \\r\\n\n"
        "                      or \\n is removed)\n"
        "      --format F      force the input format: auto (default), plain or jsonl\n"
        "  -o, --output FILE   write here instead of standard output\n"
        "\n"
        "What to print:\n"
        "      --max-len N     at most N ids per text including </s> (0 = no truncation)\n"
        "      --no-eos        do not append </s> (--max-len then caps the bare ids)\n"
        "      --pieces        print the piece strings (e.g. \xe2\x96\x81Hello) instead of ids, without\n"
        "                      </s> (truncated like the ids); an unknown run prints as the text\n"
        "                      it covers\n"
        "      --normalize     print the normalised text SentencePiece segments (debugging)\n"
        "      --decode        the reverse: each input line holds ids (separated by spaces,\n"
        "                      commas, or as a JSON array); print the decoded text\n"
        "  -h, --help          this help\n"
        "\n"
        "Examples:\n"
        "  echo 'Hello world' | gtr tokenize --spm spiece.model     # the ids, then 1 (</s>)\n"
        "  gtr tokenize -m models/gtr-t5-base -i queries.jsonl --pieces\n"
        "  echo 'Hello world' | gtr tokenize --spm spiece.model | gtr tokenize --spm spiece.model --decode\n");
}

enum { OPT_SPM = 256, OPT_MAXLEN, OPT_NOEOS, OPT_PIECES, OPT_FORMAT, OPT_NORMALIZE, OPT_DECODE, OPT_SPMV };

typedef struct opts {
    const char *model_dir, *spm, *input, *output, *spm_compat_name;
    gtr_text_format fmt;
    long long max_len;
    bool have_max_len, no_eos, pieces, normalize, decode;
} opts;

/* Append the decimal form of v. */
static char *put_int(char *p, int32_t v)
{
    char tmp[12];
    int n = 0;
    uint32_t u = v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *p++ = '-';
    while (n) *p++ = tmp[--n];
    return p;
}

/* Parse a line of ids: "1 2 3", "1,2,3" or "[1, 2, 3]" — integers separated by whitespace or
 * by one comma (with optional whitespace), optionally inside one pair of brackets. Anything
 * else ("[1, 2, 3", "1,2,,3", "1 x") is an error naming the byte. */
static bool id_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static gtr_status parse_ids(const char *s, size_t len, gtr_ids *ids, gtr_error *err)
{
    ids->n = 0;
    size_t i = 0, end = len;
    while (i < end && id_space(s[i])) i++;
    while (end > i && id_space(s[end - 1])) end--;
    if (i < end && s[i] == '[') {
        if (end - i < 2 || s[end - 1] != ']')
            return gtr_error_set(err, GTR_ERR_FORMAT, "'[' at byte %zu has no closing ']'", i + 1);
        i++;
        end--;
    }
    bool want_num = true, after_comma = false, spaced = true;
    while (i < end) {
        char c = s[i];
        if (id_space(c)) {
            spaced = true;
            i++;
            continue;
        }
        if (c == ',') {
            if (want_num)
                return gtr_error_set(err, GTR_ERR_FORMAT, "empty element before the comma at byte %zu", i + 1);
            want_num = after_comma = true;
            i++;
            continue;
        }
        bool neg = c == '-';
        size_t j = i + neg;
        long long v = 0;
        while (j < end && s[j] >= '0' && s[j] <= '9' && v <= INT32_MAX) v = v * 10 + (s[j++] - '0');
        if (j == i + neg || v > INT32_MAX || (!want_num && !spaced) ||
            (j < end && !id_space(s[j]) && s[j] != ','))
            return gtr_error_set(err, GTR_ERR_FORMAT, "not a list of ids at byte %zu", i + 1);
        if (ids->n == ids->cap) {
            size_t cap = ids->cap ? 2 * ids->cap : 64;
            int32_t *p = realloc(ids->ids, cap * sizeof *p);
            if (!p) return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory");
            ids->ids = p;
            ids->cap = cap;
        }
        ids->ids[ids->n++] = (int32_t)(neg ? -v : v);
        i = j;
        want_num = after_comma = spaced = false;
    }
    if (after_comma) return gtr_error_set(err, GTR_ERR_FORMAT, "a comma ends the list of ids");
    return GTR_OK;
}

static gtr_status append(cli_buf *b, const void *p, size_t n, gtr_error *err)
{
    return cli_buf_append(b, p, n) ? GTR_OK : gtr_error_set(err, GTR_ERR_NOMEM, "out of memory");
}

static int run(const opts *o, gtr_tokenizer *tok, int max_len, FILE *out)
{
    gtr_error err;
    const char *name = strcmp(o->input, "-") ? o->input : "<stdin>";
    gtr_text_reader *r = gtr_text_reader_open(o->input, o->decode ? GTR_TEXT_PLAIN : o->fmt, &err);
    if (!r) return cli_fail(CMD, &err);
    gtr_ids ids = {0};
    gtr_pieces pc = {0};
    cli_buf line = {0};
    int rc = 0;
    for (;;) {
        gtr_text_record rec;
        int eof;
        gtr_status st = gtr_text_reader_read(r, &rec, &eof, &err);
        if (st) {
            rc = cli_fail(CMD, &err);
            break;
        }
        if (eof) break;
        if (!rec.text) {
            rc = cli_errorf(CMD, 1, "%s:%zu: the object has no \"text\" field", name, rec.line);
            break;
        }
        line.len = 0;
        if (o->decode) {
            char *text = NULL;
            size_t n = 0;
            if (!(st = parse_ids(rec.text, rec.text_len, &ids, &err)))
                st = gtr_tokenizer_decode(tok, ids.ids, ids.n, &text, &n, &err);
            if (!st) st = append(&line, text, n, &err);
            gtr_free(text);
        } else if (o->normalize) {
            char *text = NULL;
            size_t n = 0;
            if (!(st = gtr_tokenizer_normalize(tok, rec.text, rec.text_len, &text, &n, &err)))
                st = append(&line, text, n, &err);
            gtr_free(text);
        } else if (o->pieces) {
            if (!(st = gtr_tokenizer_encode_pieces(tok, rec.text, rec.text_len, &pc, &err))) {
                size_t n = pc.n;
                if (max_len > 0) { /* the pieces that go with the truncated ids */
                    size_t room = o->no_eos ? (size_t)max_len : (size_t)max_len - 1;
                    if (n > room) n = room;
                }
                for (size_t i = 0; i < n && !st; i++) {
                    if (i) st = append(&line, " ", 1, &err);
                    if (!st) st = append(&line, pc.text + pc.offs[i], pc.offs[i + 1] - pc.offs[i] - 1, &err);
                }
            }
        } else if (!(st = gtr_tokenizer_encode(tok, rec.text, rec.text_len, max_len, !o->no_eos, &ids, &err))) {
            if (!cli_buf_reserve(&line, ids.n * 12 + 2)) {
                st = gtr_error_set(&err, GTR_ERR_NOMEM, "out of memory");
            } else {
                char *p = line.data;
                for (size_t i = 0; i < ids.n; i++) {
                    if (i) *p++ = ' ';
                    p = put_int(p, ids.ids[i]);
                }
                line.len = (size_t)(p - line.data);
            }
        }
        if (st) {
            rc = cli_errorf(CMD, 1, "%s:%zu: %s", name, rec.line, err.message);
            break;
        }
        if ((line.len && fwrite(line.data, 1, line.len, out) != line.len) || putc('\n', out) == EOF) {
            rc = cli_errorf(CMD, 1, "%s: write failed: %s", strcmp(o->output, "-") ? o->output : "standard output",
                            strerror(errno));
            break;
        }
    }
    cli_buf_free(&line);
    gtr_ids_free(&ids);
    gtr_pieces_free(&pc);
    gtr_text_reader_close(r);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"model", required_argument, 0, 'm'},   {"spm", required_argument, 0, OPT_SPM},
        {"input", required_argument, 0, 'i'},   {"output", required_argument, 0, 'o'},
        {"format", required_argument, 0, OPT_FORMAT}, {"max-len", required_argument, 0, OPT_MAXLEN},
        {"no-eos", no_argument, 0, OPT_NOEOS},  {"pieces", no_argument, 0, OPT_PIECES},
        {"normalize", no_argument, 0, OPT_NORMALIZE}, {"decode", no_argument, 0, OPT_DECODE},
        {"spm-compat", required_argument, 0, OPT_SPMV},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    opts o = {.input = "-", .output = "-", .fmt = GTR_TEXT_AUTO};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_dir = optarg; break;
        case OPT_SPM: o.spm = optarg; break;
        case 'i': o.input = optarg; break;
        case 'o': o.output = optarg; break;
        case OPT_FORMAT:
            if (!strcmp(optarg, "auto")) o.fmt = GTR_TEXT_AUTO;
            else if (!strcmp(optarg, "plain")) o.fmt = GTR_TEXT_PLAIN;
            else if (!strcmp(optarg, "jsonl")) o.fmt = GTR_TEXT_JSONL;
            else return cli_errorf(CMD, 2, "--format expects auto, plain or jsonl, got '%s'", optarg);
            break;
        case OPT_MAXLEN:
            if (!cli_parse_int(CMD, "--max-len", optarg, 0, INT32_MAX, &o.max_len)) return 2;
            o.have_max_len = true;
            break;
        case OPT_NOEOS: o.no_eos = true; break;
        case OPT_PIECES: o.pieces = true; break;
        case OPT_NORMALIZE: o.normalize = true; break;
        case OPT_DECODE: o.decode = true; break;
        case OPT_SPMV: o.spm_compat_name = optarg; break;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "gtr tokenize --help lists the options\n"); return 2;
        }
    }
    if (optind < argc) return cli_errorf(CMD, 2, "unexpected argument '%s' (texts go on stdin or -i FILE)", argv[optind]);
    if (!o.model_dir == !o.spm) return cli_errorf(CMD, 2, "give exactly one of -m MODEL_DIR or --spm FILE");
    if (o.pieces + o.normalize + o.decode > 1)
        return cli_errorf(CMD, 2, "--pieces, --normalize and --decode are alternatives");
    gtr_tokenizer_options to = gtr_tokenizer_default_options();
    if (!cli_spm_compat(CMD, o.spm_compat_name, &to.compat)) return 2;

    long long max_len = 0;
    char *spm_path = o.spm ? strdup(o.spm) : cli_path_join(CMD, o.model_dir, "spiece.model");
    if (!spm_path) return o.spm ? cli_errorf(CMD, 1, "out of memory") : 1;
    gtr_error err;
    if (o.have_max_len) {
        max_len = o.max_len;
    } else if (o.model_dir) { /* max_seq_length of MODEL_DIR/sentence_bert_config.json, else 512 */
        int n;
        if (gtr_model_dir_max_len(o.model_dir, &n, &err)) {
            free(spm_path);
            return cli_fail(CMD, &err);
        }
        max_len = n;
    }
    gtr_tokenizer *tok = gtr_tokenizer_load(spm_path, &to, &err);
    free(spm_path);
    if (!tok) return cli_fail(CMD, &err);
    /* A named output file is written atomically: a failure leaves no half-written file. */
    bool to_file = strcmp(o.output, "-") != 0;
    gtr_output_file *of = NULL;
    FILE *out = stdout;
    if (to_file) {
        if (!(of = gtr_output_file_open(o.output, &err))) {
            gtr_tokenizer_free(tok);
            return cli_fail(CMD, &err);
        }
        out = gtr_output_file_stream(of);
    }
    int rc = run(&o, tok, (int)max_len, out);
    if (to_file) {
        if (rc) gtr_output_file_abort(of);
        else if (gtr_output_file_commit(of, &err)) rc = cli_fail(CMD, &err);
    } else if (fflush(stdout) != 0 && rc == 0) {
        rc = cli_errorf(CMD, 1, "standard output: write failed: %s", strerror(errno));
    }
    gtr_tokenizer_free(tok);
    return rc;
}
