/* test_http.c — the server's HTTP/1.1 request framing (src/server/http_parse.c) on its own: every
 * malformed head gets its status and code, a head arriving a byte at a time is parsed once
 * complete, and chunked bodies decode the same whatever the pieces they arrive in. */
#include "support/testutil.h"

#include "server/server.h"

#include <stdlib.h>
#include <string.h>

static const gs_http_limits LIM = {256, 1024};

static int parse(const char *text, gs_http_head *h, char **buf)
{
    size_t n = strlen(text);
    *buf = malloc(n + 1);
    memcpy(*buf, text, n + 1);
    return gs_http_parse_head(*buf, n, &LIM, h);
}

static void test_good_heads(void **state)
{
    (void)state;
    gs_http_head h;
    char *b;
    assert_int_equal(parse("\r\nPOST /v1/embeddings?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type:  application/json  \r\n"
                           "content-length: 12\r\nExpect: 100-continue\r\n\r\n{\"input\": 1}", &h, &b), 1);
    assert_string_equal(h.method, "POST");
    assert_string_equal(h.path, "/v1/embeddings");
    assert_string_equal(h.content_type, "application/json");
    assert_true(h.has_length && h.length == 12 && h.keep_alive && h.expect_continue && !h.chunked);
    assert_int_equal(h.minor, 1);
    assert_memory_equal(b + h.head_len, "{\"input\": 1}", 12);
    free(b);
    assert_int_equal(parse("GET http://host:8080/health HTTP/1.0\nConnection: keep-alive\n\n", &h, &b), 1);
    assert_string_equal(h.path, "/health");
    assert_true(h.keep_alive && h.minor == 0 && !h.has_length);
    free(b);
    assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: Upgrade, close\r\n\r\n", &h, &b), 1);
    assert_false(h.keep_alive);
    free(b);
    assert_int_equal(parse("POST /search HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &h, &b), 1);
    assert_true(h.chunked);
    free(b);
    /* the same Content-Length twice is fine */
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", &h, &b), 1);
    free(b);
}

static void test_incomplete_heads(void **state)
{
    (void)state;
    const char *req = "POST /v1/embeddings HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}";
    size_t n = strlen(req), head = n - 2;
    for (size_t k = 0; k < head; k++) { /* every prefix of the head: more bytes needed */
        char *b = malloc(k + 1);
        memcpy(b, req, k);
        gs_http_head h;
        assert_int_equal(gs_http_parse_head(b, k, &LIM, &h), 0);
        assert_memory_equal(b, req, k); /* untouched until complete */
        free(b);
    }
    char *b = strdup(req);
    gs_http_head h;
    assert_int_equal(gs_http_parse_head(b, n, &LIM, &h), 1);
    assert_int_equal(h.head_len, head);
    free(b);
}

static void test_bad_heads(void **state)
{
    (void)state;
    char longline[400], longhead[1200];
    snprintf(longline, sizeof longline, "GET /%0300d HTTP/1.1\r\n\r\n", 0);
    snprintf(longhead, sizeof longhead, "GET / HTTP/1.1\r\nX: %01100d\r\n\r\n", 0);
    char nul[] = "GET / HTTP/1.1\r\nX: a?b\r\n\r\n";
    nul[19] = '\0';
    struct {
        const char *text;
        size_t len;
        int status;
        const char *code;
    } cases[] = {
        {"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0, 400, "invalid_content_length"},
        {"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n", 0, 400, "invalid_content_length"},
        {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 0, 400, "invalid_content_length"},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0, 400, "invalid_content_length"},
        {"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, "invalid_request"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, 501, "unsupported_transfer_encoding"},
        {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 501,
         "unsupported_transfer_encoding"},
        {"GET / HTTP/2.0\r\n\r\n", 0, 505, "http_version_not_supported"},
        {"GET / HTTP/1.1x\r\n\r\n", 0, 400, "invalid_request"},
        {"GET  / HTTP/1.1\r\n\r\n", 0, 400, "invalid_request"},
        {"G(T / HTTP/1.1\r\n\r\n", 0, 400, "invalid_request"},
        {"GET /a b HTTP/1.1\r\n\r\n", 0, 400, "invalid_request"},
        {"hello\r\n\r\n", 0, 400, "invalid_request"},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 0, 400, "invalid_request"},
        {"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 0, 400, "invalid_request"},
        {"GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\r\n", 0, 400, "invalid_request"},
        {"GET / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n", 0, 417, "expectation_failed"},
        {nul, sizeof nul - 1, 400, "invalid_request"},
        {longline, 0, 414, "uri_too_long"},
        {longhead, 0, 431, "headers_too_large"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
        char *b = malloc(n + 1);
        memcpy(b, cases[i].text, n);
        gs_http_head h;
        int r = gs_http_parse_head(b, n, &LIM, &h);
        if (r != -1 || h.status != cases[i].status || strcmp(h.code, cases[i].code) != 0 || !h.message)
            fail_msg("case %zu: r %d status %d code %s", i, r, h.status, h.code ? h.code : "-");
        free(b);
    }
    /* a huge Content-Length parses (as more than any limit: the caller answers 413) */
    gs_http_head h;
    char *b;
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 999999999999999999999999\r\n\r\n", &h, &b), 1);
    assert_true(h.length == UINT64_MAX);
    free(b);
}

/* decode body fed in pieces of step bytes, as the connection layer does */
static int decode(const char *body, size_t step, gtr_buf *out, const char **why, size_t *rest)
{
    size_t n = strlen(body), fed = 0, pending = 0;
    char *win = malloc(n + 1);
    gs_chunked c;
    gs_chunked_init(&c);
    int r = 0;
    out->len = 0;
    for (;;) {
        size_t k = GTR_MIN(step, n - fed);
        memcpy(win + pending, body + fed, k);
        fed += k;
        pending += k;
        size_t used, data;
        r = gs_chunked_feed(&c, win, pending, &used, &data, why);
        if (r < 0) break;
        gtr_buf_append(out, win, data, NULL);
        memmove(win, win + used, pending - used);
        pending -= used;
        if (r == 1 || fed == n) break;
    }
    *rest = pending + (n - fed);
    free(win);
    return r;
}

static void test_chunked(void **state)
{
    (void)state;
    const char *body = "5\r\nhello\r\n1a;name=value\r\n, this is the second chunk\r\nA\r\n and more.\r\n0\r\n"
                       "Trailer: x\r\n\r\nNEXT";
    const char *want = "hello, this is the second chunk and more.";
    for (size_t step = 1; step <= strlen(body); step++) {
        gtr_buf out = {0};
        const char *why;
        size_t rest;
        assert_int_equal(decode(body, step, &out, &why, &rest), 1);
        if (out.len != strlen(want) || memcmp(out.data, want, out.len) != 0) fail_msg("step %zu: wrong data", step);
        assert_int_equal(rest, 4); /* "NEXT" belongs to the next request */
        gtr_buf_free(&out);
    }
    static const char *bad[] = {"zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "\r\n", "5\rhello",
                                "ffffffffffffffffff\r\n", ";ext\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gtr_buf out = {0};
        const char *why = NULL;
        size_t rest;
        if (decode(bad[i], 3, &out, &why, &rest) != -1 || !why) fail_msg("bad chunked body %zu accepted", i);
        gtr_buf_free(&out);
    }
    /* LF-only line ends are accepted too */
    gtr_buf out = {0};
    const char *why;
    size_t rest;
    assert_int_equal(decode("3\nabc\n0\n\n", 2, &out, &why, &rest), 1);
    assert_int_equal(out.len, 3);
    gtr_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_heads),
        cmocka_unit_test(test_incomplete_heads),
        cmocka_unit_test(test_bad_heads),
        cmocka_unit_test(test_chunked),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
