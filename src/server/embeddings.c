/* embeddings.c — POST /v1/embeddings, as OpenAI defines it:
 *   {"input": ..., "model": "...", "encoding_format": "float" | "base64", "dimensions": N,
 *    "user": "..."}
 *   -> {"object": "list", "data": [{"object": "embedding", "index": i, "embedding": ...}],
 *       "model": ..., "usage": {"prompt_tokens": n, "total_tokens": n}}
 * "float" writes each component with %.9g (reads back to the same float32); "base64" is the
 * little-endian float32 bytes, what OpenAI's clients decode (the Python client asks for it by
 * default). "dimensions" must equal the model's: GTR vectors are not trained to be cut short.
 * "model" is accepted whatever it names (clients send their own defaults) and the response
 * names the served model. prompt_tokens counts the ids the model saw, </s> included. */
#include "server/server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

/* base64 of one vector as little-endian float32 */
static gtr_status put_base64(gtr_buf *b, const float *v, size_t dim, gtr_error *err)
{
    if (little_endian()) return gs_base64(b, v, dim * sizeof *v, err);
    uint8_t *tmp = malloc(dim * 4 + 1);
    if (!tmp) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    for (size_t j = 0; j < dim; j++) {
        uint32_t w;
        memcpy(&w, &v[j], 4);
        for (int k = 0; k < 4; k++) tmp[4 * j + (size_t)k] = (uint8_t)(w >> (8 * k));
    }
    gtr_status st = gs_base64(b, tmp, dim * 4, err);
    free(tmp);
    return st;
}

/* An upper bound of the answer's bytes (held from the budget before it is written): each
 * float is at most 15 characters ("-1.17549435e-38") and a comma. */
static size_t response_bound(const gs_server *s, size_t n, bool base64)
{
    size_t dim = (size_t)s->dim;
    size_t per = base64 ? (dim * 4 + 2) / 3 * 4 + 96 : dim * 16 + 96;
    return n * per + 6 * strlen(s->o.model_name) + 256;
}

static gtr_status write_response(const gs_server *s, const gs_inputs *in, const float *vecs,
                                 bool base64, gtr_buf *b, gtr_error *err)
{
    size_t dim = (size_t)s->dim;
    for (size_t i = 0; i < in->n * dim; i++) /* base64 would carry it silently */
        if (!isfinite(vecs[i]))
            return gtr_seterr(err, GTR_ERR_INTERNAL, "input %zu: the vector is not finite", i / dim);
    gtr_status st = gtr_buf_reserve(b, response_bound(s, in->n, base64), err);
    if (!st) st = gtr_buf_printf(b, err, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < in->n && !st; i++) {
        st = gtr_buf_printf(b, err, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
        const float *v = vecs + i * dim;
        if (st) break;
        if (base64) {
            if (!(st = gtr_buf_append(b, "\"", 1, err))) st = put_base64(b, v, dim, err);
            if (!st) st = gtr_buf_append(b, "\"}", 2, err);
            continue;
        }
        st = gtr_buf_append(b, "[", 1, err);
        for (size_t j = 0; j < dim && !st; j++) {
            if (j) st = gtr_buf_append(b, ",", 1, err);
            if (!st) st = gs_json_f32(b, v[j], err);
        }
        if (!st) st = gtr_buf_append(b, "]}", 2, err);
    }
    if (!st) st = gtr_buf_printf(b, err, "],\"model\":");
    const char *name = s->o.model_name;
    if (!st) st = gs_json_str(b, name, strlen(name), err);
    if (!st)
        st = gtr_buf_printf(b, err, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}\n",
                            in->tokens, in->tokens);
    return st;
}

void gs_handle_embeddings(gs_server *s, const char *body, size_t len, gs_reply *r)
{
    json_t *req = gs_parse_body(s, body, len, r);
    if (!req) return;
    gs_inputs in = {0};
    float *vecs = NULL;
    const json_t *model = json_object_get(req, "model");
    const json_t *fmt = json_object_get(req, "encoding_format");
    const json_t *dims = json_object_get(req, "dimensions");
    const json_t *user = json_object_get(req, "user");
    bool base64 = false;
    if (model && !json_is_string(model) && !json_is_null(model)) {
        gs_reply_error(r, 400, "model", "invalid_type", "'model' must be a string");
        goto done;
    }
    if (user && !json_is_string(user) && !json_is_null(user)) {
        gs_reply_error(r, 400, "user", "invalid_type", "'user' must be a string");
        goto done;
    }
    if (fmt && !json_is_null(fmt)) {
        const char *f = json_is_string(fmt) ? json_string_value(fmt) : "";
        if (!strcmp(f, "base64")) base64 = true;
        else if (strcmp(f, "float") != 0) {
            gs_reply_error(r, 400, "encoding_format", "invalid_value",
                           "'encoding_format' must be \"float\" or \"base64\"");
            goto done;
        }
    }
    if (dims && !json_is_null(dims) &&
        (!json_is_integer(dims) || json_integer_value(dims) != (json_int_t)s->dim)) {
        gs_reply_error(r, 400, "dimensions", "invalid_value",
                       "'dimensions' must be %d, the model's dimension (GTR vectors cannot be shortened)",
                       s->dim);
        goto done;
    }
    if (!gs_inputs_parse(s, json_object_get(req, "input"), "input", true, &in, r)) goto done;
    r->inputs = in.n;
    /* the vectors and the answer, before either exists */
    if (!gs_hold(s, r, in.n * (size_t)s->dim * sizeof *vecs + response_bound(s, in.n, base64))) goto done;
    if (!(vecs = malloc(in.n * (size_t)s->dim * sizeof *vecs))) {
        gs_reply_oom(r);
        goto done;
    }
    if (!gs_encode(s, &in, vecs, r)) goto done;
    gtr_error e;
    r->body.len = 0;
    if (write_response(s, &in, vecs, base64, &r->body, &e)) {
        gs_reply_failed(r, &e);
        goto done;
    }
    r->status = 200;
    r->tokens = in.tokens;
done:
    free(vecs);
    gs_inputs_free(&in);
    json_decref(req);
}
