/* texts.c — text inputs: plain lines or JSON lines (strings, or objects with "text" and the
 * BEIR fields "_id"/"title"), read line by line so 10 MB lines and huge corpora both work. */
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct gtr_text_reader {
    FILE *fp;
    bool is_stdin;
    char *path;
    gtr_text_format fmt;
    char *line;
    size_t line_cap;
    size_t line_no;
    uint64_t offset, size;
    json_t *obj; /* current parsed JSON line */
};

gtr_text_reader *gtr_text_reader_open(const char *path, gtr_text_format fmt, gtr_error *err)
{
    gtr_text_reader *r = gtr_xcalloc(1, sizeof *r, "text reader", err);
    if (!r) return NULL;
    r->is_stdin = strcmp(path, "-") == 0;
    r->path = strdup(r->is_stdin ? "<stdin>" : path);
    if (!r->path) {
        free(r);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    if (fmt == GTR_TEXT_AUTO)
        fmt = (gtr_str_ends_with(path, ".jsonl") || gtr_str_ends_with(path, ".json") || gtr_str_ends_with(path, ".ndjson"))
                  ? GTR_TEXT_JSONL : GTR_TEXT_PLAIN;
    r->fmt = fmt;
    if (r->is_stdin) {
        r->fp = stdin;
    } else {
        r->fp = fopen(path, "rb");
        if (!r->fp) {
            gtr_seterr(err, errno == ENOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_IO, "%s: cannot open: %s",
                       path, strerror(errno));
            gtr_text_reader_close(r);
            return NULL;
        }
        struct stat st;
        if (fstat(fileno(r->fp), &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                gtr_seterr(err, GTR_ERR_IO, "%s: is a directory", path);
                gtr_text_reader_close(r);
                return NULL;
            }
            r->size = (uint64_t)st.st_size;
        }
    }
    return r;
}

void gtr_text_reader_close(gtr_text_reader *r)
{
    if (!r) return;
    if (r->fp && !r->is_stdin) fclose(r->fp);
    json_decref(r->obj);
    free(r->line);
    free(r->path);
    free(r);
}

uint64_t gtr_text_reader_offset(const gtr_text_reader *r) { return r->offset; }

gtr_status gtr_text_reader_seek(gtr_text_reader *r, uint64_t offset, size_t line, gtr_error *err)
{
    if (r->is_stdin) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "cannot seek in standard input");
    if (fseeko(r->fp, (off_t)offset, SEEK_SET) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: seek failed: %s", r->path, strerror(errno));
    r->offset = offset;
    r->line_no = line;
    return GTR_OK;
}

static gtr_status json_string_field(gtr_text_reader *r, const char *key, const char **s,
                                    size_t *len, gtr_error *err)
{
    json_t *v = json_object_get(r->obj, key);
    *s = NULL;
    *len = 0;
    if (!v || json_is_null(v)) return GTR_OK;
    if (!json_is_string(v))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: field '%s' must be a string", r->path,
                          r->line_no, key);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return GTR_OK;
}

gtr_status gtr_text_reader_next(gtr_text_reader *r, gtr_record *rec, bool *eof, gtr_error *err)
{
    memset(rec, 0, sizeof *rec);
    json_decref(r->obj);
    r->obj = NULL;
    *eof = false;
    errno = 0;
    ssize_t n = getline(&r->line, &r->line_cap, r->fp);
    if (n < 0) {
        if (ferror(r->fp)) return gtr_seterr(err, GTR_ERR_IO, "%s: read failed: %s", r->path, strerror(errno));
        *eof = true;
        return GTR_OK;
    }
    /* a UTF-8 byte order mark at the start of the file (as some editors write it) is not text */
    size_t bom = r->offset == 0 && n >= 3 && memcmp(r->line, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    r->offset += (uint64_t)n;
    r->line_no++;
    if (bom) {
        memmove(r->line, r->line + bom, (size_t)n - bom + 1);
        n -= (ssize_t)bom;
    }
    size_t len = (size_t)n;
    if (len && r->line[len - 1] == '\n') len--;
    if (len && r->line[len - 1] == '\r') len--;
    rec->line = r->line_no;
    if (r->fmt == GTR_TEXT_PLAIN) {
        rec->text = r->line;
        rec->text_len = len;
        return GTR_OK;
    }
    if (len == 0) return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: empty line (expected JSON)", r->path, r->line_no);
    json_error_t je;
    r->obj = json_loadb(r->line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!r->obj)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu:%d: invalid JSON: %s", r->path, r->line_no,
                          je.column, je.text);
    if (json_is_string(r->obj)) {
        rec->text = json_string_value(r->obj);
        rec->text_len = json_string_length(r->obj);
        return GTR_OK;
    }
    if (!json_is_object(r->obj))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: expected a JSON string or object", r->path,
                          r->line_no);
    rec->is_object = 1;
    rec->has_title = json_object_get(r->obj, "title") != NULL;
    gtr_status st;
    if ((st = json_string_field(r, "_id", &rec->id, &rec->id_len, err))) return st;
    if (!rec->id && (st = json_string_field(r, "id", &rec->id, &rec->id_len, err))) return st;
    if ((st = json_string_field(r, "title", &rec->title, &rec->title_len, err))) return st;
    if ((st = json_string_field(r, "text", &rec->text, &rec->text_len, err))) return st;
    return GTR_OK;
}

gtr_status gtr_text_reader_read(gtr_text_reader *r, gtr_text_record *rec, int *eof, gtr_error *err)
{
    bool end = false;
    gtr_status st = gtr_text_reader_next(r, rec, &end, err);
    *eof = end;
    return st;
}

gtr_status gtr_text_record_passage(const gtr_text_record *rec, char **out, size_t *len, gtr_error *err)
{
    gtr_buf b = {0};
    gtr_status st = gtr_record_passage(rec, &b, err);
    if (st) gtr_buf_free(&b);
    *out = b.data;
    *len = b.len;
    return st;
}

/* Python's str.isspace() set: White_Space plus the ASCII separators \x1c-\x1f. */
static bool py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

void gtr_py_strip(const char *s, size_t len, size_t *start, size_t *out_len)
{
    size_t a = 0, b = len;
    while (a < b) {
        uint32_t cp;
        size_t k = gtr_utf8_decode(s + a, b - a, &cp);
        if (!k || !py_space(cp)) break;
        a += k;
    }
    while (b > a) {
        /* step back over one UTF-8 character */
        size_t k = 1;
        while (k < 4 && b - k > a && ((unsigned char)s[b - k] & 0xc0) == 0x80) k++;
        uint32_t cp;
        if (gtr_utf8_decode(s + b - k, k, &cp) != k || !py_space(cp)) break;
        b -= k;
    }
    *start = a;
    *out_len = b - a;
}

gtr_status gtr_record_passage(const gtr_record *rec, gtr_buf *buf, gtr_error *err)
{
    buf->len = 0;
    gtr_status st = gtr_buf_reserve(buf, 0, err);
    if (st) return st;
    buf->data[0] = '\0';
    if (!rec->is_object) return gtr_buf_append(buf, rec->text, rec->text_len, err);
    if (!rec->text)
        return gtr_seterr(err, GTR_ERR_FORMAT, "line %zu: object has no \"text\" field", rec->line);
    gtr_buf tmp = {0};
    const char *s = rec->text;
    size_t n = rec->text_len;
    if (rec->has_title) {
        if ((st = gtr_buf_append(&tmp, rec->title ? rec->title : "", rec->title_len, err)) ||
            (st = gtr_buf_append(&tmp, " ", 1, err)) ||
            (st = gtr_buf_append(&tmp, rec->text, rec->text_len, err))) {
            gtr_buf_free(&tmp);
            return st;
        }
        s = tmp.data;
        n = tmp.len;
    }
    size_t a, len;
    gtr_py_strip(s, n, &a, &len);
    st = gtr_buf_append(buf, s + a, len, err);
    gtr_buf_free(&tmp);
    return st;
}

json_t *gtr_text_reader_object(const gtr_text_reader *r) { return r && json_is_object(r->obj) ? r->obj : NULL; }
