/* test_server.c — `gtr serve` in-process: servers on 127.0.0.1 with ephemeral ports, driven by
 * libcurl. The vectors must be bit-identical to gtr_model_encode of each text alone (float and
 * base64, single and concurrent clients); every limit answers its status with OpenAI's error
 * shape; a flooded tiny queue answers 503 with Retry-After; /search agrees with the index and
 * BM25 APIs; /metrics is valid Prometheus text; shutdown finishes a request in flight. */
#include "support/testutil.h"

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- fixture: the tiny model, its texts and their vectors encoded one at a time ------------ */

typedef struct fixture {
    gtr_model *model;
    size_t n;      /* non-empty texts (the server refuses empty strings, as OpenAI does) */
    char **texts;
    size_t *lens;
    float *ref;    /* [n * dim], each text encoded alone */
    size_t *ntok;  /* ids per text with </s>, after truncation */
    int dim;
} fixture;

static fixture F;

static int setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    gtr_error err;
    char *dir = tu_shared("models/gtr-tiny");
    gtr_model_options mo = gtr_model_default_options();
    mo.n_threads = 2;
    F.model = gtr_model_load(dir, &mo, &err);
    free(dir);
    if (!F.model) {
        fprintf(stderr, "# %s\n", err.message);
        return -1;
    }
    F.dim = gtr_model_dim(F.model);
    char *path = tu_shared("models/gtr-tiny/reference/texts.jsonl");
    json_t **v;
    size_t n = tu_json_lines(path, &v);
    free(path);
    F.texts = calloc(n, sizeof *F.texts);
    F.lens = calloc(n, sizeof *F.lens);
    F.ntok = calloc(n, sizeof *F.ntok);
    F.ref = calloc(n * (size_t)F.dim, sizeof *F.ref);
    for (size_t i = 0; i < n; i++) {
        size_t len = json_string_length(v[i]);
        if (!len) continue;
        F.texts[F.n] = malloc(len + 1);
        memcpy(F.texts[F.n], json_string_value(v[i]), len + 1);
        F.lens[F.n] = len;
        F.n++;
    }
    tu_json_lines_free(v, n);
    gtr_ids ids = {0};
    for (size_t i = 0; i < F.n; i++) {
        const char *t = F.texts[i];
        if (gtr_model_encode(F.model, &t, &F.lens[i], 1, F.ref + i * (size_t)F.dim, &err) ||
            gtr_tokenizer_encode(gtr_model_tokenizer(F.model), t, F.lens[i], gtr_model_max_len(F.model), 1, &ids, &err)) {
            fprintf(stderr, "# %s\n", err.message);
            return -1;
        }
        F.ntok[i] = ids.n;
    }
    gtr_ids_free(&ids);
    return F.n > 20 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < F.n; i++) free(F.texts[i]);
    free(F.texts);
    free(F.lens);
    free(F.ntok);
    free(F.ref);
    gtr_model_free(F.model);
    curl_global_cleanup();
    return 0;
}

static gtr_server *start(gtr_server_options *o)
{
    gtr_error err;
    o->host = "127.0.0.1";
    o->port = 0;
    o->model = F.model;
    o->model_name = "gtr-tiny";
    gtr_server *s = gtr_server_start(o, &err);
    if (!s) fail_msg("gtr_server_start: %s", err.message);
    assert_true(gtr_server_port(s) > 0);
    return s;
}

/* ---- an HTTP client ------------------------------------------------------------------------ */

typedef struct resp {
    long status;
    gtr_buf body;
    char retry_after[32], allow[64], ctype[128];
    CURLcode rc;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *u)
{
    gtr_buf_append(&((resp *)u)->body, p, sz * n, NULL);
    return sz * n;
}

static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ')) v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) vl--;
    snprintf(out, cap, "%.*s", (int)vl, v);
}

static size_t on_header(char *p, size_t sz, size_t n, void *u)
{
    resp *r = u;
    header_value(p, sz * n, "Retry-After", r->retry_after, sizeof r->retry_after);
    header_value(p, sz * n, "Allow", r->allow, sizeof r->allow);
    header_value(p, sz * n, "Content-Type", r->ctype, sizeof r->ctype);
    return sz * n;
}

/* method path [content-type body] [extra header] -> resp (free r->body) */
static resp http_h(int port, const char *method, const char *path, const char *ctype, const char *extra,
                   const char *body, size_t len)
{
    resp r;
    memset(&r, 0, sizeof r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = NULL;
    char ct[160];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    }
    if (extra) h = curl_slist_append(h, extra);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

static resp http(int port, const char *method, const char *path, const char *ctype, const char *body, size_t len)
{
    return http_h(port, method, path, ctype, NULL, body, len);
}

static resp post_json(int port, const char *path, json_t *req)
{
    char *s = json_dumps(req, JSON_COMPACT);
    assert_non_null(s);
    resp r = http(port, "POST", path, "application/json", s, strlen(s));
    free(s);
    return r;
}

static json_t *parse(const resp *r)
{
    json_error_t je;
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    if (!j) fail_msg("response is not JSON (%s): %.300s", je.text, r->body.data ? r->body.data : "");
    return j;
}

/* the request {"input": [texts idx[0..n)], "model": "m", ...} */
static json_t *embed_request(const size_t *idx, size_t n, const char *fmt)
{
    json_t *in = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(in, json_stringn(F.texts[idx[i]], F.lens[idx[i]]));
    json_t *req = json_pack("{s:o, s:s}", "input", in, "model", "text-embedding-3-small");
    if (fmt) json_object_set_new(req, "encoding_format", json_string(fmt));
    return req;
}

static uint8_t b64val(char c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(tab, c);
    if (!p || !c) fail_msg("bad base64 character '%c'", c);
    return (uint8_t)(p - tab);
}

/* decode base64 of little-endian float32s into out[dim] */
static void b64_floats(const char *s, float *out, size_t dim)
{
    size_t len = strlen(s);
    assert_int_equal(len, (dim * 4 + 2) / 3 * 4);
    uint8_t *bytes = malloc(len / 4 * 3);
    size_t nb = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t w = (uint32_t)b64val(s[i]) << 18 | (uint32_t)b64val(s[i + 1]) << 12;
        bytes[nb++] = (uint8_t)(w >> 16);
        if (s[i + 2] != '=') {
            w |= (uint32_t)b64val(s[i + 2]) << 6;
            bytes[nb++] = (uint8_t)(w >> 8);
        }
        if (s[i + 3] != '=') {
            w |= b64val(s[i + 3]);
            bytes[nb++] = (uint8_t)w;
        }
    }
    assert_int_equal(nb, dim * 4);
    for (size_t j = 0; j < dim; j++) {
        uint32_t w = (uint32_t)bytes[4 * j] | (uint32_t)bytes[4 * j + 1] << 8 | (uint32_t)bytes[4 * j + 2] << 16 |
                     (uint32_t)bytes[4 * j + 3] << 24;
        memcpy(&out[j], &w, 4);
    }
    free(bytes);
}

/* Check an embeddings response for texts idx[0..n): shape, identical vectors, usage. Returns
 * false (with a message) instead of failing, so client threads can use it. */
static bool check_embeddings(const resp *r, const size_t *idx, size_t n, bool base64, char *why, size_t cap)
{
    json_error_t je;
    json_t *j = r->status == 200 ? json_loadb(r->body.data, r->body.len, 0, &je) : NULL;
    bool ok = false;
    float *v = malloc((size_t)F.dim * sizeof *v);
    size_t tokens = 0;
    if (!j) {
        snprintf(why, cap, "status %ld: %.200s", r->status, r->body.data ? r->body.data : "");
        goto done;
    }
    json_t *data = json_object_get(j, "data");
    if (strcmp(json_string_value(json_object_get(j, "object")), "list") || json_array_size(data) != n ||
        strcmp(json_string_value(json_object_get(j, "model")), "gtr-tiny")) {
        snprintf(why, cap, "bad response shape");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(data, i), *e = json_object_get(d, "embedding");
        if ((size_t)json_integer_value(json_object_get(d, "index")) != i ||
            strcmp(json_string_value(json_object_get(d, "object")), "embedding")) {
            snprintf(why, cap, "data[%zu]: bad index/object", i);
            goto done;
        }
        if (base64) {
            if (!json_is_string(e)) {
                snprintf(why, cap, "data[%zu]: not a base64 string", i);
                goto done;
            }
            b64_floats(json_string_value(e), v, (size_t)F.dim);
        } else {
            if (json_array_size(e) != (size_t)F.dim) {
                snprintf(why, cap, "data[%zu]: %zu numbers", i, json_array_size(e));
                goto done;
            }
            for (size_t k = 0; k < (size_t)F.dim; k++) v[k] = (float)json_number_value(json_array_get(e, k));
        }
        if (memcmp(v, F.ref + idx[i] * (size_t)F.dim, (size_t)F.dim * sizeof *v) != 0) {
            snprintf(why, cap, "data[%zu] (text %zu) differs from gtr_model_encode", i, idx[i]);
            goto done;
        }
        tokens += F.ntok[idx[i]];
    }
    json_t *u = json_object_get(j, "usage");
    if ((size_t)json_integer_value(json_object_get(u, "prompt_tokens")) != tokens ||
        (size_t)json_integer_value(json_object_get(u, "total_tokens")) != tokens) {
        snprintf(why, cap, "usage: want %zu tokens", tokens);
        goto done;
    }
    ok = true;
done:
    free(v);
    json_decref(j);
    return ok;
}

static void expect_embeddings(const resp *r, const size_t *idx, size_t n, bool base64)
{
    char why[512];
    if (!check_embeddings(r, idx, n, base64, why, sizeof why)) fail_msg("%s", why);
}

static size_t *all_indices(void)
{
    size_t *idx = malloc(F.n * sizeof *idx);
    for (size_t i = 0; i < F.n; i++) idx[i] = i;
    return idx;
}

/* ---- embeddings ------------------------------------------------------------------------------ */

static void test_embeddings_float_and_base64(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    size_t *idx = all_indices();
    /* every text in one request (long ones are truncated at 512 tokens, as gtr embed does) */
    for (int b64 = 0; b64 < 2; b64++) {
        json_t *req = embed_request(idx, F.n, b64 ? "base64" : "float");
        resp r = post_json(port, "/v1/embeddings", req);
        assert_string_equal(r.ctype, "application/json");
        expect_embeddings(&r, idx, F.n, b64);
        gtr_buf_free(&r.body);
        json_decref(req);
    }
    /* a single string, no encoding_format (float), the /embeddings alias, dimensions = dim */
    json_t *req = json_pack("{s:s%, s:i}", "input", F.texts[3], F.lens[3], "dimensions", F.dim);
    resp r = post_json(port, "/embeddings", req);
    size_t three = 3;
    expect_embeddings(&r, &three, 1, false);
    gtr_buf_free(&r.body);
    json_decref(req);
    /* the same text as token ids, with and without </s>; a bare id list is one input */
    gtr_ids ids = {0};
    gtr_error err;
    TU_OK(gtr_tokenizer_encode(gtr_model_tokenizer(F.model), F.texts[3], F.lens[3], 512, 1, &ids, &err), &err);
    json_t *with = json_array(), *without = json_array();
    for (size_t k = 0; k < ids.n; k++) {
        json_array_append_new(with, json_integer(ids.ids[k]));
        if (k + 1 < ids.n) json_array_append_new(without, json_integer(ids.ids[k]));
    }
    req = json_pack("{s:[O,O]}", "input", with, without);
    r = post_json(port, "/v1/embeddings", req);
    size_t twice[2] = {3, 3};
    expect_embeddings(&r, twice, 2, false);
    gtr_buf_free(&r.body);
    json_decref(req);
    req = json_pack("{s:O, s:s}", "input", without, "encoding_format", "base64");
    r = post_json(port, "/v1/embeddings", req);
    expect_embeddings(&r, &three, 1, true);
    gtr_buf_free(&r.body);
    json_decref(req);
    json_decref(with);
    json_decref(without);
    gtr_ids_free(&ids);
    free(idx);
    gtr_server_free(s);
}

static void expect_error(const resp *r, long status, const char *param, const char *code)
{
    if (r->status != status) fail_msg("want status %ld, got %ld: %.300s", status, r->status, r->body.data ? r->body.data : "");
    json_t *j = parse(r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_object(e));
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_string_equal(json_string_value(json_object_get(e, "type")),
                        status >= 500 ? "server_error" : "invalid_request_error");
    json_t *p = json_object_get(e, "param"), *c = json_object_get(e, "code");
    assert_true(json_is_string(p) || json_is_null(p));
    assert_true(json_is_string(c) || json_is_null(c));
    if (param) assert_string_equal(json_string_value(p), param);
    if (code) assert_string_equal(json_string_value(c), code);
    json_decref(j);
}

static void post_expect(int port, const char *path, const char *body, long status, const char *param, const char *code)
{
    resp r = http(port, "POST", path, "application/json", body, strlen(body));
    expect_error(&r, status, param, code);
    gtr_buf_free(&r.body);
}

static void test_errors(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    o.max_inputs = 4;
    o.max_body = 4096;
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    const char *E = "/v1/embeddings";
    post_expect(port, E, "{\"input\": [\"a\"", 400, NULL, "invalid_json");
    post_expect(port, E, "", 400, NULL, "invalid_json");
    post_expect(port, E, "[\"a\"]", 400, NULL, "invalid_json");
    post_expect(port, E, "{\"model\": \"x\"}", 400, "input", "missing_required_parameter");
    post_expect(port, E, "{\"input\": 42}", 400, "input", "invalid_type");
    post_expect(port, E, "{\"input\": {\"a\": 1}}", 400, "input", "invalid_type");
    post_expect(port, E, "{\"input\": [\"a\", 3]}", 400, "input", "invalid_type");
    post_expect(port, E, "{\"input\": [[1, 2], \"a\"]}", 400, "input", "invalid_type");
    post_expect(port, E, "{\"input\": [1.5]}", 400, "input", "invalid_type");
    post_expect(port, E, "{\"input\": \"\"}", 400, "input", "empty_input");
    post_expect(port, E, "{\"input\": []}", 400, "input", "empty_input");
    post_expect(port, E, "{\"input\": [\"a\", \"\"]}", 400, "input", "empty_input");
    post_expect(port, E, "{\"input\": [[]]}", 400, "input", "empty_input");
    post_expect(port, E, "{\"input\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "input", "too_many_inputs");
    post_expect(port, E, "{\"input\": [1, 2, 99999999]}", 400, "input", "invalid_token");
    post_expect(port, E, "{\"input\": [[5, -1]]}", 400, "input", "invalid_token");
    post_expect(port, E, "{\"input\": \"a\", \"encoding_format\": \"int8\"}", 400, "encoding_format", "invalid_value");
    post_expect(port, E, "{\"input\": \"a\", \"dimensions\": 32}", 400, "dimensions", "invalid_value");
    post_expect(port, E, "{\"input\": \"a\", \"model\": 7}", 400, "model", "invalid_type");
    /* 413: declared length over the limit (answered before the body) */
    char *big = malloc(5001);
    memset(big, ' ', 5000);
    big[0] = '{';
    big[4999] = '}';
    big[5000] = '\0';
    post_expect(port, E, big, 413, NULL, "body_too_large");
    /* ... and without Expect: 100-continue, and chunked (no declared length: found while reading) */
    resp r = http_h(port, "POST", E, "application/json", "Expect:", big, 5000);
    expect_error(&r, 413, NULL, "body_too_large");
    gtr_buf_free(&r.body);
    r = http_h(port, "POST", E, "application/json", "Transfer-Encoding: chunked", big, 5000);
    expect_error(&r, 413, NULL, "body_too_large");
    gtr_buf_free(&r.body);
    free(big);
    /* 415, 404, 405 */
    r = http(port, "POST", E, "text/plain", "{\"input\": \"a\"}", 14);
    expect_error(&r, 415, NULL, "unsupported_media_type");
    gtr_buf_free(&r.body);
    r = http(port, "POST", E, "application/x-www-form-urlencoded", "{\"input\": \"a\"}", 14);
    expect_error(&r, 415, NULL, "unsupported_media_type");
    gtr_buf_free(&r.body);
    r = http(port, "POST", E, "Application/JSON; charset=utf-8", "{\"input\": \"a\"}", 14);
    assert_int_equal(r.status, 200);
    gtr_buf_free(&r.body);
    r = http(port, "GET", "/v2/embeddings", NULL, NULL, 0);
    expect_error(&r, 404, NULL, "unknown_url");
    gtr_buf_free(&r.body);
    r = http(port, "POST", "/nope", "application/json", "{}", 2);
    expect_error(&r, 404, NULL, "unknown_url");
    gtr_buf_free(&r.body);
    r = http(port, "POST", "/search", "application/json", "{\"query\": \"a\"}", 14);
    expect_error(&r, 404, NULL, "no_index");
    gtr_buf_free(&r.body);
    r = http(port, "GET", E, NULL, NULL, 0);
    expect_error(&r, 405, NULL, "method_not_allowed");
    assert_string_equal(r.allow, "POST");
    gtr_buf_free(&r.body);
    r = http(port, "DELETE", "/health", NULL, NULL, 0);
    expect_error(&r, 405, NULL, "method_not_allowed");
    assert_string_equal(r.allow, "GET, HEAD");
    gtr_buf_free(&r.body);
    /* the connection-level limits left the server healthy */
    r = http(port, "GET", "/health", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    json_t *j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(j, "dim")), F.dim);
    json_decref(j);
    gtr_buf_free(&r.body);
    r = http(port, "HEAD", "/health", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    gtr_buf_free(&r.body);
    r = http(port, "GET", "/v1/models", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), "gtr-tiny");
    json_decref(j);
    gtr_buf_free(&r.body);
    gtr_server_free(s);
}

/* a text longer than max_len: truncated by default (same vector as gtr_model_encode), refused
 * with --no-truncate */
static void test_truncation(void **state)
{
    (void)state;
    size_t longest = 0;
    for (size_t i = 1; i < F.n; i++)
        if (F.lens[i] > F.lens[longest]) longest = i;
    gtr_ids ids = {0};
    gtr_error err;
    TU_OK(gtr_tokenizer_encode(gtr_model_tokenizer(F.model), F.texts[longest], F.lens[longest], 0, 1, &ids, &err), &err);
    assert_true(ids.n > 512);
    json_t *req = embed_request(&longest, 1, NULL);
    json_t *idreq = json_array();
    for (size_t k = 0; k < ids.n; k++) json_array_append_new(idreq, json_integer(ids.ids[k]));
    json_t *req_ids = json_pack("{s:[o]}", "input", idreq);
    for (int nt = 0; nt < 2; nt++) {
        gtr_server_options o = gtr_server_default_options();
        o.no_truncate = nt;
        gtr_server *s = start(&o);
        int port = gtr_server_port(s);
        resp r = post_json(port, "/v1/embeddings", req);
        resp ri = post_json(port, "/v1/embeddings", req_ids);
        if (nt) {
            expect_error(&r, 400, "input", "context_length_exceeded");
            expect_error(&ri, 400, "input", "context_length_exceeded");
        } else {
            expect_embeddings(&r, &longest, 1, false);
            expect_embeddings(&ri, &longest, 1, false);
        }
        gtr_buf_free(&r.body);
        gtr_buf_free(&ri.body);
        /* a short text is fine either way */
        size_t zero = 0;
        json_t *ok = embed_request(&zero, 1, NULL);
        r = post_json(port, "/v1/embeddings", ok);
        expect_embeddings(&r, &zero, 1, false);
        gtr_buf_free(&r.body);
        json_decref(ok);
        gtr_server_free(s);
    }
    json_decref(req);
    json_decref(req_ids);
    gtr_ids_free(&ids);
}

/* ---- concurrency ------------------------------------------------------------------------------ */

typedef struct client {
    int port, id, rounds;
    pthread_barrier_t *go;
    int ok, rejected, failed;
    atomic_int done; /* slow_client: its answer is in */
    char why[512];
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    pthread_barrier_wait(c->go);
    for (int round = 0; round < c->rounds; round++) {
        /* a different slice of the texts for every client and round */
        size_t n = 1 + (size_t)(c->id + round) % 5, idx[5];
        for (size_t i = 0; i < n; i++) idx[i] = ((size_t)c->id * 7 + (size_t)round * 3 + i * 11) % F.n;
        json_t *req = embed_request(idx, n, (c->id + round) % 2 ? "base64" : "float");
        char *s = json_dumps(req, JSON_COMPACT);
        resp r = http(c->port, "POST", "/v1/embeddings", "application/json", s, strlen(s));
        free(s);
        json_decref(req);
        if (r.status == 503) {
            c->rejected += !strcmp(r.retry_after, "1") ? 1 : 0;
            if (strcmp(r.retry_after, "1") != 0) {
                c->failed++;
                snprintf(c->why, sizeof c->why, "503 without Retry-After");
            }
        } else if (check_embeddings(&r, idx, n, (c->id + round) % 2, c->why, sizeof c->why)) {
            c->ok++;
        } else {
            c->failed++;
        }
        gtr_buf_free(&r.body);
    }
    return NULL;
}

static void run_clients(int port, int n, int rounds, client *cl)
{
    pthread_t th[16];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        cl[i] = (client){.port = port, .id = i, .rounds = rounds, .go = &go};
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
}

/* value of one sample line "name value" in Prometheus text (-1 when absent) */
static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (!strncmp(p, name, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

/* A client that sends a request's headers and the start of its body, then stalls: the server
 * counts it as a request on its way, so the batcher waits (up to max_wait_ms) for its texts.
 * Returns the socket (close it to end the request) once the server has it in flight. */
static int stalled_upload(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *head = "POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       "Content-Length: 100\r\n\r\n{\"input\": ";
    assert_int_equal(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    /* until the batcher counts it as on its way (gtr_in_flight_requests would not do: a
     * previous /metrics poll stays in flight until its answer is sent and its end handled) */
    for (int i = 0; i < 200; i++) {
        resp r = http(port, "GET", "/metrics", NULL, NULL, 0);
        double n = metric(r.body.data, "gtr_requests_on_the_way");
        gtr_buf_free(&r.body);
        if (n >= 1) return fd;
        usleep(10 * 1000);
    }
    fail_msg("the stalled request never showed in /metrics");
    return -1;
}

static double post_seconds(int port, size_t text)
{
    json_t *req = embed_request(&text, 1, NULL);
    double t0 = gtr_now_seconds();
    resp r = post_json(port, "/v1/embeddings", req);
    double t = gtr_now_seconds() - t0;
    expect_embeddings(&r, &text, 1, false);
    gtr_buf_free(&r.body);
    json_decref(req);
    return t;
}

/* the batcher waits for company only when a request is on its way */
static void test_wait_policy(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    o.max_wait_ms = 1000;
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    double alone = post_seconds(port, 1);
    int fd = stalled_upload(port);
    double waited = post_seconds(port, 2);
    close(fd);
    double after = post_seconds(port, 3);
    gtr_server_free(s);
    if (alone > 0.7 || after > 0.7) fail_msg("a lone request waited %.3f s / %.3f s", alone, after);
    if (waited < 0.95) fail_msg("a request with another on its way waited only %.3f s", waited);
}

static void test_concurrent_clients(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    o.max_wait_ms = 200;
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    /* a stalled request keeps the batcher waiting max_wait_ms for company: simultaneous
     * requests then surely share batches */
    int fd = stalled_upload(port);
    client cl[8];
    run_clients(port, 8, 4, cl);
    close(fd);
    for (int i = 0; i < 8; i++) {
        if (cl[i].failed) fail_msg("client %d: %s", i, cl[i].why);
        assert_int_equal(cl[i].ok, 4);
    }
    resp r = http(port, "GET", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    double batches = metric(r.body.data, "gtr_batch_inputs_count");
    double reqs = metric(r.body.data, "gtr_batch_requests_total");
    /* 32 requests; batching put several requests in a batch at least once */
    assert_true(batches >= 1 && reqs >= 32);
    assert_true(batches < 32);
    assert_true(metric(r.body.data, "gtr_queue_depth") == 0);
    gtr_buf_free(&r.body);
    gtr_server_free(s);
}

static void test_queue_full_503(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    o.queue = 1;
    o.max_wait_ms = 1500;
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    /* with a request on its way, the first queued request waits 1.5 s for company: the others
     * find the queue full */
    int fd = stalled_upload(port);
    client cl[6];
    run_clients(port, 6, 1, cl);
    close(fd);
    int ok = 0, rejected = 0;
    for (int i = 0; i < 6; i++) {
        if (cl[i].failed) fail_msg("client %d: %s", i, cl[i].why);
        ok += cl[i].ok;
        rejected += cl[i].rejected;
    }
    assert_int_equal(ok + rejected, 6);
    assert_true(ok >= 1);
    assert_true(rejected >= 1);
    /* the 503 has OpenAI's error shape; the rejection shows in /metrics */
    resp r = http(port, "GET", "/metrics", NULL, NULL, 0);
    assert_true(metric(r.body.data, "gtr_rejected_total") == rejected);
    gtr_buf_free(&r.body);
    gtr_server_free(s);
}

/* ---- metrics ---------------------------------------------------------------------------------- */

static bool valid_sample(const char *line)
{
    /* name{label="value",...} number */
    const char *p = line;
    if (!(*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) return false;
    while (*p == '_' || *p == ':' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) p++;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            while ((*p >= 'a' && *p <= 'z') || *p == '_') p++;
            if (*p++ != '=' || *p++ != '"') return false;
            while (*p && *p != '"') p += *p == '\\' ? 2 : 1;
            if (*p++ != '"') return false;
            if (*p == ',') p++;
            else if (*p != '}') return false;
        }
        p++;
    }
    if (*p++ != ' ') return false;
    char *end;
    strtod(p, &end);
    return end != p && (*end == '\0' || *end == '\n');
}

static void test_metrics_text(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    size_t idx[3] = {0, 1, 2};
    json_t *req = embed_request(idx, 3, NULL);
    for (int i = 0; i < 3; i++) {
        resp r = post_json(port, "/v1/embeddings", req);
        assert_int_equal(r.status, 200);
        gtr_buf_free(&r.body);
    }
    json_decref(req);
    resp bad = http(port, "GET", "/nothing", NULL, NULL, 0);
    gtr_buf_free(&bad.body);
    /* a request stops counting as in flight once its connection's thread has finished with it,
     * a moment after the client has its answer */
    resp r;
    for (int i = 0;; i++) {
        r = http(port, "GET", "/metrics", NULL, NULL, 0);
        assert_int_equal(r.status, 200);
        if (metric(r.body.data, "gtr_in_flight_requests") == 1 || i == 200) break;
        gtr_buf_free(&r.body);
        usleep(10 * 1000);
    }
    assert_non_null(strstr(r.ctype, "text/plain"));
    /* every line is a comment (# HELP / # TYPE) or a valid sample */
    char *text = strdup(r.body.data), *save = NULL;
    size_t samples = 0;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            assert_true(!strncmp(line, "# HELP ", 7) || !strncmp(line, "# TYPE ", 7));
            continue;
        }
        if (!valid_sample(line)) fail_msg("bad sample line: %s", line);
        samples++;
    }
    free(text);
    assert_true(samples > 20);
    const char *b = r.body.data;
    assert_true(metric(b, "gtr_http_requests_total{route=\"/v1/embeddings\",status=\"200\"}") == 3);
    assert_true(metric(b, "gtr_http_requests_total{route=\"other\",status=\"404\"}") == 1);
    assert_true(metric(b, "gtr_http_errors_total{route=\"other\"}") == 1);
    assert_true(metric(b, "gtr_inputs_total") == 9);
    assert_true(metric(b, "gtr_tokens_total") == 3 * (double)(F.ntok[0] + F.ntok[1] + F.ntok[2]));
    assert_true(metric(b, "gtr_http_request_duration_seconds_count{route=\"/v1/embeddings\"}") == 3);
    assert_true(metric(b, "gtr_http_request_duration_seconds_bucket{route=\"/v1/embeddings\",le=\"+Inf\"}") == 3);
    assert_true(metric(b, "gtr_batch_inputs_sum") == 9);
    assert_true(metric(b, "gtr_queue_depth") == 0);
    assert_true(metric(b, "gtr_in_flight_requests") == 1); /* this request */
    /* histogram buckets are cumulative */
    double last = 0;
    for (const char *p = strstr(b, "gtr_http_request_duration_seconds_bucket{route=\"/v1/embeddings\""); p;
         p = strstr(p + 1, "gtr_http_request_duration_seconds_bucket{route=\"/v1/embeddings\"")) {
        double v = strtod(strchr(p, ' ') + 1, NULL);
        assert_true(v >= last);
        last = v;
    }
    gtr_buf_free(&r.body);
    gtr_server_free(s);
}

/* ---- search ----------------------------------------------------------------------------------- */

typedef struct search_fixture {
    gtr_index *ix;
    gtr_bm25 *bm;
} search_fixture;

static void build_indexes(search_fixture *sf)
{
    gtr_error err;
    char *src = tu_shared("beir/scifact/corpus.jsonl");
    char *corpus = tu_tmp("corpus40.jsonl"), *dense = tu_tmp("scifact40.gtri"), *bm = tu_tmp("scifact40.bm25");
    assert_int_equal(tu_system("head -n 40 '%s' > '%s'", src, corpus), 0);
    gtr_index_build_options bo = gtr_index_default_build_options();
    TU_OK(gtr_index_build(F.model, corpus, NULL, dense, &bo, NULL, &err), &err);
    TU_OK(gtr_bm25_build(corpus, bm, NULL, NULL, &err), &err);
    sf->ix = gtr_index_open(dense, 0, NULL, &err);
    assert_non_null(sf->ix);
    sf->bm = gtr_bm25_open(bm, &err);
    assert_non_null(sf->bm);
    free(src);
    free(corpus);
    free(dense);
    free(bm);
}

static void expect_hits(json_t *hits, const gtr_hit *want, size_t n, const gtr_index *ix)
{
    assert_int_equal(json_array_size(hits), n);
    for (size_t j = 0; j < n; j++) {
        json_t *h = json_array_get(hits, j);
        size_t len;
        const char *id = gtr_index_doc_id(ix, want[j].doc, &len);
        assert_int_equal(json_string_length(json_object_get(h, "id")), len);
        assert_memory_equal(json_string_value(json_object_get(h, "id")), id, len);
        float score = (float)json_number_value(json_object_get(h, "score"));
        float want_score = (float)want[j].score; /* a float score, held in the hit's double */
        assert_memory_equal(&score, &want_score, sizeof score);
        assert_int_equal(json_integer_value(json_object_get(h, "rank")), j + 1);
        assert_true(json_string_length(json_object_get(h, "snippet")) > 0);
    }
}

static void test_search(void **state)
{
    (void)state;
    gtr_error err;
    search_fixture sf;
    build_indexes(&sf);
    const char *queries[2] = {"vitamin D deficiency and bone density", "0-dimensional biomaterials"};
    size_t qlens[2] = {strlen(queries[0]), strlen(queries[1])};
    /* what the server must answer, computed with the APIs directly (before it owns the model) */
    float qv[2 * 64];
    TU_OK(gtr_model_encode(F.model, queries, qlens, 2, qv, &err), &err);
    gtr_hit dh[2 * 5];
    size_t dn[2];
    TU_OK(gtr_index_search(sf.ix, qv, 2, 5, NULL, dh, dn, &err), &err);
    gtr_hit bh[2 * 3];
    size_t bn[2];
    TU_OK(gtr_bm25_search(sf.bm, queries, qlens, 2, 3, NULL, bh, bn, &err), &err);

    gtr_server_options o = gtr_server_default_options();
    o.index = sf.ix;
    o.bm25 = sf.bm;
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    /* one query, dense (the default with a dense index) */
    json_t *req = json_pack("{s:s, s:i}", "query", queries[0], "k", 5);
    resp r = post_json(port, "/search", req);
    assert_int_equal(r.status, 200);
    json_t *j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "search_result");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "dense");
    expect_hits(json_object_get(j, "hits"), dh, dn[0], sf.ix);
    json_decref(j);
    json_decref(req);
    gtr_buf_free(&r.body);
    /* a batch, dense */
    req = json_pack("{s:[s,s], s:i}", "queries", queries[0], queries[1], "k", 5);
    r = post_json(port, "/search", req);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    for (size_t q = 0; q < 2; q++) {
        json_t *d = json_array_get(json_object_get(j, "data"), q);
        assert_int_equal(json_integer_value(json_object_get(d, "index")), q);
        expect_hits(json_object_get(d, "hits"), dh + q * 5, dn[q], sf.ix);
    }
    json_decref(j);
    json_decref(req);
    gtr_buf_free(&r.body);
    /* a batch, BM25 */
    req = json_pack("{s:[s,s], s:i, s:s}", "queries", queries[0], queries[1], "k", 3, "method", "bm25");
    r = post_json(port, "/search", req);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    for (size_t q = 0; q < 2; q++) {
        json_t *hits = json_object_get(json_array_get(json_object_get(j, "data"), q), "hits");
        assert_int_equal(json_array_size(hits), bn[q]);
        for (size_t k = 0; k < bn[q]; k++) {
            json_t *h = json_array_get(hits, k);
            assert_string_equal(json_string_value(json_object_get(h, "id")), gtr_bm25_doc_id(sf.bm, bh[q * 3 + k].doc, NULL));
            float score = (float)json_number_value(json_object_get(h, "score"));
            float want_score = (float)bh[q * 3 + k].score;
            assert_memory_equal(&score, &want_score, sizeof score);
        }
    }
    json_decref(j);
    json_decref(req);
    gtr_buf_free(&r.body);
    /* hybrid: k hits, fused scores descending, each id found by one of the methods */
    req = json_pack("{s:s, s:i, s:s}", "query", queries[0], "k", 4, "method", "hybrid");
    r = post_json(port, "/search", req);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    json_t *hits = json_object_get(j, "hits");
    assert_int_equal(json_array_size(hits), 4);
    double prev = 1e9;
    for (size_t k = 0; k < 4; k++) {
        double sc = json_number_value(json_object_get(json_array_get(hits, k), "score"));
        assert_true(sc <= prev && sc > 0);
        prev = sc;
    }
    /* RRF: the top document of both lists, if the same, has 2/(60+1) */
    json_decref(j);
    json_decref(req);
    gtr_buf_free(&r.body);
    /* errors */
    post_expect(port, "/search", "{\"k\": 3}", 400, "query", "missing_required_parameter");
    post_expect(port, "/search", "{\"query\": \"a\", \"k\": 0}", 400, "k", "invalid_value");
    post_expect(port, "/search", "{\"query\": \"a\", \"k\": 100000}", 400, "k", "invalid_value");
    post_expect(port, "/search", "{\"query\": \"a\", \"method\": \"splade\"}", 400, "method", "invalid_value");
    post_expect(port, "/search", "{\"query\": 5}", 400, "query", "invalid_type");
    post_expect(port, "/search", "{\"queries\": []}", 400, "queries", "empty_input");
    post_expect(port, "/search", "{\"queries\": [\"a\", \"\"]}", 400, "queries", "empty_input");
    post_expect(port, "/search", "{\"query\": \"a\", \"nprobe\": 2}", 400, "nprobe", "invalid_value"); /* no --ann */
    post_expect(port, "/search", "{\"query\": \"a\", \"method\": \"bm25\", \"filter_ids\": []}", 400, "filter_ids",
                "invalid_value");
    post_expect(port, "/search", "{\"query\": \"a\", \"filter_ids\": [\"zz-none\"]}", 400, "filter_ids", "unknown_id");
    post_expect(port, "/search", "{\"query\": \"a\", \"filter_ids\": [3]}", 400, "filter_ids", "invalid_type");
    gtr_server_free(s);

    /* a BM25-only server defaults to bm25 and refuses dense */
    o = gtr_server_default_options();
    o.bm25 = sf.bm;
    s = start(&o);
    port = gtr_server_port(s);
    req = json_pack("{s:s, s:i}", "query", queries[0], "k", 3);
    r = post_json(port, "/search", req);
    assert_int_equal(r.status, 200);
    j = parse(&r);
    assert_string_equal(json_string_value(json_object_get(j, "method")), "bm25");
    assert_int_equal(json_array_size(json_object_get(j, "hits")), bn[0]);
    json_decref(j);
    json_decref(req);
    gtr_buf_free(&r.body);
    post_expect(port, "/search", "{\"query\": \"a\", \"method\": \"dense\"}", 400, "method", "invalid_value");
    gtr_server_free(s);
    gtr_index_free(sf.ix);
    gtr_bm25_free(sf.bm);
}

/* ---- start errors and shutdown --------------------------------------------------------------- */

static void test_start_errors(void **state)
{
    (void)state;
    gtr_error err;
    gtr_server_options o = gtr_server_default_options();
    gtr_server *s = start(&o);
    /* the same port again */
    gtr_server_options o2 = gtr_server_default_options();
    o2.model = F.model;
    o2.port = gtr_server_port(s);
    assert_null(gtr_server_start(&o2, &err));
    assert_int_equal(err.code, GTR_ERR_IO);
    assert_non_null(strstr(err.message, "127.0.0.1"));
    gtr_server_free(s);
    o2.port = 0;
    o2.host = "no-such-host.invalid";
    assert_null(gtr_server_start(&o2, &err));
    o2.host = NULL;
    o2.queue = 0;
    assert_null(gtr_server_start(&o2, &err));
    assert_int_equal(err.code, GTR_ERR_INVALID_ARG);
    o2.queue = 4;
    o2.model = NULL;
    assert_null(gtr_server_start(&o2, &err));
    assert_int_equal(err.code, GTR_ERR_INVALID_ARG);
    gtr_server_free(NULL);
}

static void *slow_client(void *arg)
{
    client *c = arg;
    size_t idx[2] = {4, 5};
    json_t *req = embed_request(idx, 2, NULL);
    char *s = json_dumps(req, JSON_COMPACT);
    resp r = http(c->port, "POST", "/v1/embeddings", "application/json", s, strlen(s));
    c->ok = check_embeddings(&r, idx, 2, false, c->why, sizeof c->why);
    atomic_store(&c->done, 1);
    free(s);
    json_decref(req);
    gtr_buf_free(&r.body);
    return NULL;
}

/* until the server has the client's request admitted in its queue (a fixed sleep lost the race
 * under load: the client had not connected when shutdown stopped listening), or the client is
 * already answered */
static void wait_queued(int port, client *c)
{
    for (int i = 0; i < 1000 && !atomic_load(&c->done); i++) {
        resp r = http(port, "GET", "/metrics", NULL, NULL, 0);
        double n = metric(r.body.data, "gtr_queue_depth");
        gtr_buf_free(&r.body);
        if (n >= 1) return;
        usleep(5 * 1000);
    }
    if (!atomic_load(&c->done)) fail_msg("the client's request never reached the queue");
}

static void test_shutdown_finishes_in_flight(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    o.max_wait_ms = 400; /* the request is still queued when shutdown starts */
    o.drain_timeout_s = 1; /* the stalled upload never completes: shutdown gives up on it */
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    int fd = stalled_upload(port);
    client c = {.port = port};
    pthread_t th;
    pthread_create(&th, NULL, slow_client, &c);
    wait_queued(port, &c);
    double t0 = gtr_now_seconds();
    gtr_server_shutdown(s); /* returns once the request has been answered */
    double t = gtr_now_seconds() - t0;
    pthread_join(th, NULL);
    close(fd);
    if (!c.ok) fail_msg("in-flight request: %s", c.why);
    if (t < 0.9 || t > 5) fail_msg("shutdown took %.2f s, not the 1 s drain timeout", t);
    resp r = http(port, "GET", "/health", NULL, NULL, 0);
    assert_int_equal(r.rc, CURLE_COULDNT_CONNECT); /* no longer listening */
    gtr_buf_free(&r.body);
    gtr_server_shutdown(s); /* idempotent */
    gtr_server_free(s);
}

/* raw bytes to the server, the answer's status and body (one request, connection closed) */
static int raw_exchange(int port, const char *data, size_t n, gtr_buf *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(send(fd, data, n, MSG_NOSIGNAL), (ssize_t)n);
    shutdown(fd, SHUT_WR);
    gtr_buf all = {0};
    char tmp[4096];
    ssize_t k;
    while ((k = recv(fd, tmp, sizeof tmp, 0)) > 0) gtr_buf_append(&all, tmp, (size_t)k, NULL);
    close(fd);
    int status = 0;
    if (all.len > 12 && sscanf(all.data, "HTTP/1.1 %d", &status) == 1) {
        char *b = strstr(all.data, "\r\n\r\n");
        if (b) gtr_buf_append(body, b + 4, all.len - (size_t)(b + 4 - all.data), NULL);
    }
    gtr_buf_free(&all);
    return status;
}

/* malformed HTTP is answered by the server's own layer with OpenAI-shaped JSON (in the
 * sanitizer build too: the error paths of the request framing run here) */
static void test_malformed_http(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    char big[12000];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    memcpy(big + sizeof big - 15, " HTTP/1.1\r\n\r\n", 14);
    struct { const char *data; size_t n; int status; const char *code; } cases[] = {
        {"POST /v1/embeddings HTTP/1.1\r\nContent-Length: -3\r\n\r\n", 0, 400, "\"invalid_content_length\""},
        {"POST /v1/embeddings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{X", 0, 400,
         "\"invalid_chunked_encoding\""},
        {"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 0, 413, "\"body_too_large\""},
        {big, sizeof big - 1, 414, "\"uri_too_long\""},
        {"GET /health HTTP/3.0\r\n\r\n", 0, 505, "\"http_version_not_supported\""},
        {"POST /v1/embeddings HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
         "8\r\n{\"input\"\r\n9\r\n: \"hi!\"}\r\n0\r\n\r\n", 0, 200, "\"embedding\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gtr_buf body = {0};
        int st = raw_exchange(port, cases[i].data, cases[i].n ? cases[i].n : strlen(cases[i].data), &body);
        json_error_t je;
        json_t *j = body.len ? json_loadb(body.data, body.len, 0, &je) : NULL;
        if (st != cases[i].status || !j || !strstr(body.data, cases[i].code))
            fail_msg("case %zu: status %d, body %.200s", i, st, body.data ? body.data : "(none)");
        if (st != 200) assert_non_null(json_object_get(json_object_get(j, "error"), "message"));
        json_decref(j);
        gtr_buf_free(&body);
    }
    gtr_server_free(s);
}

/* Past the drain timeout a queued request is answered 503 shutting_down (not dropped) and the
 * shutdown returns promptly */
static void test_shutdown_abandons_work(void **state)
{
    (void)state;
    gtr_server_options o = gtr_server_default_options();
    o.max_wait_ms = 20000;  /* the queued request waits for company that never comes */
    o.drain_timeout_s = 1;
    gtr_server *s = start(&o);
    int port = gtr_server_port(s);
    int fd = stalled_upload(port); /* keeps the batcher waiting */
    client c = {.port = port};
    pthread_t th;
    pthread_create(&th, NULL, slow_client, &c);
    wait_queued(port, &c);
    double t0 = gtr_now_seconds();
    gtr_server_shutdown(s);
    double t = gtr_now_seconds() - t0;
    pthread_join(th, NULL);
    close(fd);
    if (c.ok) fail_msg("the queued request was answered 200 although shutdown gave up on it");
    if (!strstr(c.why, "503") || !strstr(c.why, "shutting_down")) fail_msg("queued request: %s", c.why);
    if (t > 4) fail_msg("shutdown took %.2f s with a 1 s drain timeout", t);
    gtr_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embeddings_float_and_base64),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_wait_policy),
        cmocka_unit_test(test_concurrent_clients),
        cmocka_unit_test(test_queue_full_503),
        cmocka_unit_test(test_metrics_text),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_shutdown_finishes_in_flight),
        cmocka_unit_test(test_malformed_http),
        cmocka_unit_test(test_shutdown_abandons_work),
    };
    return cmocka_run_group_tests_name("server", tests, setup, teardown);
}
