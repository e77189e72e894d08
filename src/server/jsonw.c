/* jsonw.c — JSON output for the server. Responses are written straight into a byte buffer
 * rather than through jansson: an embeddings response is mostly numbers, and writing them with
 * one format call each (%.9g, exact for float32) keeps the text identical to `gtr embed`'s
 * JSON lines and avoids building a tree of thousands of json_real nodes per request. */
#include "server/server.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

gtr_status gs_json_str(gtr_buf *b, const char *s, size_t len, gtr_error *err)
{
    static const char hex[] = "0123456789abcdef";
    gtr_status st = gtr_buf_reserve(b, len + 2, err);
    if (st) return st;
    b->data[b->len++] = '"';
    size_t i = 0;
    while (i < len) {
        /* copy a run of plain printable ASCII at once */
        size_t j = i;
        while (j < len) {
            unsigned char c = (unsigned char)s[j];
            if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
            j++;
        }
        if (j > i && (st = gtr_buf_append(b, s + i, j - i, err))) return st;
        if (j == len) break;
        i = j;
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            st = gtr_buf_append(b, esc, 2, err);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            const char *shortform = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r" : NULL;
            st = shortform ? gtr_buf_append(b, shortform, 2, err) : gtr_buf_append(b, esc, 6, err);
            i++;
        } else {
            uint32_t cp;
            size_t n = gtr_utf8_decode(s + i, len - i, &cp);
            if (n) {
                st = gtr_buf_append(b, s + i, n, err);
                i += n;
            } else { /* not UTF-8: U+FFFD REPLACEMENT CHARACTER for the byte */
                st = gtr_buf_append(b, "\xef\xbf\xbd", 3, err);
                i++;
            }
        }
        if (st) return st;
    }
    return gtr_buf_append(b, "\"", 1, err);
}

gtr_status gs_json_f32(gtr_buf *b, float v, gtr_error *err)
{
    if (!isfinite(v)) /* never served: the library refuses such results, this guards the format */
        return gtr_seterr(err, GTR_ERR_INTERNAL, "a non-finite number cannot be written as JSON");
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%.9g", (double)v);
    return gtr_buf_append(b, tmp, (size_t)n, err);
}

gtr_status gs_base64(gtr_buf *b, const void *data, size_t n, gtr_error *err)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = data;
    gtr_status st = gtr_buf_reserve(b, (n + 2) / 3 * 4, err);
    if (st) return st;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[w >> 18];
        *o++ = tab[(w >> 12) & 63];
        *o++ = tab[(w >> 6) & 63];
        *o++ = tab[w & 63];
    }
    if (i < n) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = tab[w >> 18];
        *o++ = tab[(w >> 12) & 63];
        *o++ = i + 1 < n ? tab[(w >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0'; /* gtr_buf_reserve kept room for it */
    return GTR_OK;
}

void gs_reply_error(gs_reply *r, int status, const char *param, const char *code,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    r->status = status;
    r->body.len = 0;
    gtr_error e;
    const char *type = status >= 500 ? "server_error" : "invalid_request_error";
    gtr_status st = gtr_buf_printf(&r->body, &e, "{\"error\":{\"message\":");
    if (!st) st = gs_json_str(&r->body, msg, strlen(msg), &e);
    if (!st) st = gtr_buf_printf(&r->body, &e, ",\"type\":\"%s\",\"param\":", type);
    if (!st) st = param ? gs_json_str(&r->body, param, strlen(param), &e) : gtr_buf_append(&r->body, "null", 4, &e);
    if (!st) st = gtr_buf_append(&r->body, ",\"code\":", 8, &e);
    if (!st) st = code ? gs_json_str(&r->body, code, strlen(code), &e) : gtr_buf_append(&r->body, "null", 4, &e);
    if (!st) st = gtr_buf_append(&r->body, "}}\n", 3, &e);
    if (st) gs_reply_oom(r);
}

void gs_reply_failed(gs_reply *r, const gtr_error *e)
{
    if (e->code == GTR_ERR_NOMEM) gs_reply_oom(r);
    else gs_reply_error(r, 500, NULL, NULL, "the answer could not be written: %s", e->message);
}

void gs_reply_oom(gs_reply *r)
{
    /* static text copied into the (possibly NULL) buffer; if even that fails, server.c sends
     * the response from a static string */
    static const char msg[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                              "\"param\":null,\"code\":null}}\n";
    r->status = 500;
    r->body.len = 0;
    gtr_buf_append(&r->body, msg, sizeof msg - 1, NULL);
}
