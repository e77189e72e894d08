/* http_parse.c — the HTTP/1.1 request framing (RFC 9112) as pure functions over bytes: the
 * request head (request line and header fields) and the chunked transfer coding. No I/O and no
 * allocation, so every malformed input has one well-defined answer (a status and a message the
 * server sends as a JSON error) and the fuzz target can drive it directly.
 *
 * Strict where ambiguity is a risk: Content-Length is digits only and must agree with any
 * repeat; Content-Length together with Transfer-Encoding, a transfer coding other than
 * "chunked", whitespace before a header's colon and obsolete line folding are refused (these are
 * the request-smuggling vectors). Lenient where it is harmless: bare LF line ends, any method
 * token (the router answers 405). */
#include "server/server.h"

#include <string.h>
#include <strings.h>

static bool tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void bad(gs_http_head *h, int status, const char *code, const char *msg)
{
    h->status = status;
    h->code = code;
    h->message = msg;
}

/* the end of the line starting at p (the LF), or NULL */
static char *line_end(char *p, char *end) { return memchr(p, '\n', (size_t)(end - p)); }

static bool has_token(const char *v, const char *tok)
{
    /* comma-separated list, tokens compared without case */
    size_t n = strlen(tok);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        const char *e = v;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - v) == n && strncasecmp(v, tok, n) == 0) return true;
        v = e;
    }
    return false;
}

int gs_http_parse_head(char *buf, size_t len, const gs_http_limits *lim, gs_http_head *h)
{
    memset(h, 0, sizeof *h);
    char *end = buf + len;
    /* RFC 9112 2.2: ignore empty lines before the request line */
    char *p = buf;
    while (p < end && (*p == '\r' || *p == '\n')) p++;
    h->skipped = (size_t)(p - buf);
    char *le = line_end(p, end);
    if (!le) {
        if (len >= lim->max_line) bad(h, 414, "uri_too_long", "the request line is longer than the server accepts");
        else if (len >= lim->max_head) bad(h, 431, "headers_too_large", "the request head is larger than the server accepts");
        return h->status ? -1 : 0;
    }
    if ((size_t)(le - p) >= lim->max_line) {
        bad(h, 414, "uri_too_long", "the request line is longer than the server accepts");
        return -1;
    }
    /* find the end of the head: an empty line */
    char *q = le + 1, *head_end = NULL;
    while (q < end) {
        char *e = line_end(q, end);
        if (!e) break;
        if (e == q || (e == q + 1 && *q == '\r')) {
            head_end = e + 1;
            break;
        }
        q = e + 1;
    }
    if (!head_end) {
        if (len >= lim->max_head) {
            bad(h, 431, "headers_too_large", "the request head is larger than the server accepts");
            return -1;
        }
        return 0; /* more bytes needed */
    }
    if ((size_t)(head_end - buf) > lim->max_head) {
        bad(h, 431, "headers_too_large", "the request head is larger than the server accepts");
        return -1;
    }
    h->head_len = (size_t)(head_end - buf);

    /* request line: method SP target SP HTTP/1.x */
    char *rl_end = le > p && le[-1] == '\r' ? le - 1 : le;
    *rl_end = '\0';
    char *m = p, *sp1 = strchr(m, ' ');
    if (!sp1 || sp1 == m) {
        bad(h, 400, "invalid_request", "malformed request line");
        return -1;
    }
    for (char *c = m; c < sp1; c++)
        if (!tchar((unsigned char)*c)) {
            bad(h, 400, "invalid_request", "malformed request line: the method is not a token");
            return -1;
        }
    *sp1 = '\0';
    char *target = sp1 + 1, *sp2 = strchr(target, ' ');
    if (!sp2 || sp2 == target || strchr(sp2 + 1, ' ')) {
        bad(h, 400, "invalid_request", "malformed request line");
        return -1;
    }
    *sp2 = '\0';
    const char *ver = sp2 + 1;
    if (strncmp(ver, "HTTP/", 5) != 0 || !(ver[5] >= '0' && ver[5] <= '9') || ver[6] != '.' ||
        !(ver[7] >= '0' && ver[7] <= '9') || ver[8]) {
        bad(h, 400, "invalid_request", "malformed request line: bad HTTP version");
        return -1;
    }
    if (ver[5] != '1') {
        bad(h, 505, "http_version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
        return -1;
    }
    for (const char *c = target; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            bad(h, 400, "invalid_request", "malformed request target");
            return -1;
        }
    h->minor = ver[7] - '0';
    h->method = m;
    /* absolute-form (RFC 9112 3.2.2): keep the path */
    if (!strncasecmp(target, "http://", 7) || !strncasecmp(target, "https://", 8)) {
        char *s = strchr(target + (target[4] == ':' ? 7 : 8), '/');
        target = s ? s : (char *)"/";
    }
    char *qm = strchr(target, '?');
    if (qm) *qm = '\0';
    h->path = target;
    h->keep_alive = h->minor >= 1;

    /* header fields */
    char *f = le + 1;
    bool te_seen = false;
    while (f < head_end) {
        char *fe = line_end(f, head_end);
        char *ve = fe > f && fe[-1] == '\r' ? fe - 1 : fe;
        if (ve == f) break; /* the empty line */
        if (*f == ' ' || *f == '\t') {
            bad(h, 400, "invalid_request", "obsolete header line folding is not accepted");
            return -1;
        }
        char *colon = memchr(f, ':', (size_t)(ve - f));
        if (!colon || colon == f) {
            bad(h, 400, "invalid_request", "malformed header field");
            return -1;
        }
        for (char *c = f; c < colon; c++)
            if (!tchar((unsigned char)*c)) {
                bad(h, 400, "invalid_request", "malformed header field name");
                return -1;
            }
        *colon = '\0';
        char *v = colon + 1;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        char *vend = ve;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t')) vend--;
        for (char *c = v; c < vend; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t') {
                bad(h, 400, "invalid_request", "a control character in a header field");
                return -1;
            }
        *vend = '\0';
        const char *name = f;
        if (!strcasecmp(name, "Content-Length")) {
            if (!*v) {
                bad(h, 400, "invalid_content_length", "Content-Length is empty");
                return -1;
            }
            uint64_t n = 0;
            bool overflow = false;
            for (const char *c = v; *c; c++) {
                if (*c < '0' || *c > '9') {
                    bad(h, 400, "invalid_content_length", "Content-Length must be a non-negative decimal number");
                    return -1;
                }
                if (n > (UINT64_MAX - 9) / 10) overflow = true;
                else n = n * 10 + (uint64_t)(*c - '0');
            }
            if (overflow) n = UINT64_MAX; /* larger than any limit: 413 */
            if (h->has_length && h->length != n) {
                bad(h, 400, "invalid_content_length", "Content-Length is given twice with different values");
                return -1;
            }
            h->has_length = true;
            h->length = n;
        } else if (!strcasecmp(name, "Transfer-Encoding")) {
            if (te_seen || strcasecmp(v, "chunked") != 0) {
                bad(h, 501, "unsupported_transfer_encoding",
                    "Transfer-Encoding must be \"chunked\" (no other coding is supported)");
                return -1;
            }
            te_seen = h->chunked = true;
        } else if (!strcasecmp(name, "Content-Type")) {
            h->content_type = v;
        } else if (!strcasecmp(name, "Connection")) {
            if (has_token(v, "close")) h->keep_alive = false;
            else if (has_token(v, "keep-alive")) h->keep_alive = true;
        } else if (!strcasecmp(name, "Expect")) {
            if (strcasecmp(v, "100-continue") != 0) {
                bad(h, 417, "expectation_failed", "only \"Expect: 100-continue\" is supported");
                return -1;
            }
            h->expect_continue = h->minor >= 1;
        }
        f = fe + 1;
    }
    if (h->chunked && h->has_length) {
        bad(h, 400, "invalid_request", "Content-Length and Transfer-Encoding must not both be given");
        return -1;
    }
    return 1;
}

/* ---- chunked transfer coding ------------------------------------------------------------- */

void gs_chunked_init(gs_chunked *c) { memset(c, 0, sizeof *c); }

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* States: SIZE (hex digits), EXT (extension up to the line end), SIZE_LF, DATA, DATA_CR,
 * DATA_LF, TRAILER (a trailer line or the final empty line), TRAILER_LINE, DONE. */
enum { C_SIZE = 0, C_EXT, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILER, C_TRAILER_LINE, C_DONE };

int gs_chunked_feed(gs_chunked *c, char *buf, size_t len, size_t *consumed, size_t *data_len,
                    const char **why)
{
    /* data is compacted in place at the start of buf */
    size_t i = 0, out = 0;
    *why = NULL;
    *consumed = *data_len = 0;
    while (i < len && c->state != C_DONE) {
        unsigned char ch = (unsigned char)buf[i];
        switch (c->state) {
        case C_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (c->remaining >> 60) {
                    *why = "a chunk size is too large";
                    return -1;
                }
                c->remaining = c->remaining * 16 + (uint64_t)v;
                c->digits++;
                i++;
            } else if (c->digits && (ch == ';' || ch == ' ' || ch == '\t')) {
                c->state = C_EXT;
            } else if (c->digits && ch == '\r') {
                c->state = C_SIZE_LF;
                i++;
            } else if (c->digits && ch == '\n') {
                c->state = c->remaining ? C_DATA : C_TRAILER;
                c->line = 0;
                i++;
            } else {
                *why = "a chunk size is not a hexadecimal number";
                return -1;
            }
            break;
        }
        case C_EXT:
            if (ch == '\n') {
                c->state = c->remaining ? C_DATA : C_TRAILER;
                c->line = 0;
            } else if (++c->line > 4096) {
                *why = "a chunk extension is too long";
                return -1;
            }
            i++;
            break;
        case C_SIZE_LF:
            if (ch != '\n') {
                *why = "a chunk size line does not end with CRLF";
                return -1;
            }
            c->state = c->remaining ? C_DATA : C_TRAILER;
            c->line = 0;
            i++;
            break;
        case C_DATA: {
            size_t n = (size_t)GTR_MIN((uint64_t)(len - i), c->remaining);
            memmove(buf + out, buf + i, n);
            out += n;
            i += n;
            c->remaining -= n;
            if (!c->remaining) c->state = C_DATA_CR;
            break;
        }
        case C_DATA_CR:
            if (ch == '\r') c->state = C_DATA_LF;
            else if (ch == '\n') c->state = C_SIZE, c->digits = 0;
            else {
                *why = "chunk data is not followed by CRLF";
                return -1;
            }
            i++;
            break;
        case C_DATA_LF:
            if (ch != '\n') {
                *why = "chunk data is not followed by CRLF";
                return -1;
            }
            c->state = C_SIZE;
            c->digits = 0;
            i++;
            break;
        case C_TRAILER: /* start of a line after the last chunk */
            if (ch == '\n') {
                c->state = C_DONE;
            } else if (ch != '\r') {
                c->state = C_TRAILER_LINE;
                c->line = 1;
            }
            i++;
            break;
        case C_TRAILER_LINE:
            if (ch == '\n') c->state = C_TRAILER;
            else if (++c->line > 8192) {
                *why = "a trailer field is too long";
                return -1;
            }
            i++;
            break;
        }
    }
    *consumed = i;
    *data_len = out;
    return c->state == C_DONE ? 1 : 0;
}
