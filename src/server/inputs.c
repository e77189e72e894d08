/* inputs.c — a request's inputs to token ids, in the connection's own thread (tokenizing is
 * parallel work; only the encoder is serialised). The forms OpenAI's API accepts for "input":
 *   "text" | ["text", ...] | [id, id, ...] | [[id, ...], ...]
 * Texts are tokenized as gtr_model_encode does (SentencePiece ids, then </s>; longer than the
 * model's max_len: the first max_len-1 ids then </s>), so the vectors are those of
 * gtr_model_encode / `gtr embed`. Token ids are T5 SentencePiece ids as `gtr tokenize` prints
 * them; </s> is appended when they do not end with it, and they are truncated the same way.
 * With no_truncate, an input longer than max_len is refused (400) instead. */
#include "server/server.h"

#include <stdlib.h>
#include <string.h>

void gs_inputs_free(gs_inputs *in)
{
    for (size_t i = 0; in->seq && i < in->n; i++) gtr_ids_free(&in->seq[i]);
    free(in->seq);
    free(in->ids);
    free(in->n_ids);
    memset(in, 0, sizeof *in);
}

static bool too_long(const gs_server *s, const char *param, size_t i, size_t n, gs_reply *r)
{
    gs_reply_error(r, 400, param, "context_length_exceeded",
                   "%s[%zu] has %zu tokens (with </s>), more than the model's maximum of %d; "
                   "the server runs with --no-truncate", param, i, n, s->max_len);
    return false;
}

static bool one_text(gs_server *s, const json_t *v, const char *param, size_t i, gtr_ids *out,
                     gs_reply *r)
{
    size_t len = json_string_length(v);
    if (len == 0) {
        gs_reply_error(r, 400, param, "empty_input", "%s[%zu] is an empty string", param, i);
        return false;
    }
    gtr_error e;
    /* only what max_len can use is read (--no-truncate: one id more, to see it is too long) */
    int max_len = s->o.no_truncate ? s->max_len + 1 : s->max_len;
    if (gtr_tokenizer_encode(s->tok, json_string_value(v), len, max_len, 1, out, &e)) {
        gs_reply_error(r, e.code == GTR_ERR_NOMEM ? 500 : 400, param, NULL, "%s[%zu]: %s", param, i,
                       e.message);
        return false;
    }
    if (out->n > (size_t)s->max_len) {
        gs_reply_error(r, 400, param, "context_length_exceeded",
                       "%s[%zu] has more than the model's maximum of %d tokens (with </s>); the server "
                       "runs with --no-truncate", param, i, s->max_len);
        return false;
    }
    return gs_hold_tokens(s, r, out->n);
}

static bool one_ids(gs_server *s, const json_t *v, const char *param, size_t i, gtr_ids *out,
                    gs_reply *r)
{
    size_t n = json_array_size(v);
    if (n == 0) {
        gs_reply_error(r, 400, param, "empty_input", "%s[%zu] is an empty array of token ids", param, i);
        return false;
    }
    int eos = gtr_tokenizer_eos_id(s->tok);
    bool has_eos = json_integer_value(json_array_get(v, n - 1)) == eos;
    size_t total = n + !has_eos;
    if (total > (size_t)s->max_len && s->o.no_truncate) return too_long(s, param, i, total, r);
    size_t keep = GTR_MIN(total, (size_t)s->max_len); /* with </s> */
    if (!gs_hold_tokens(s, r, keep)) return false;
    if (!(out->ids = malloc(keep * sizeof *out->ids))) {
        gs_reply_oom(r);
        return false;
    }
    out->cap = keep;
    for (size_t k = 0; k < n; k++) {
        const json_t *x = json_array_get(v, k);
        json_int_t id = json_is_integer(x) ? json_integer_value(x) : -1;
        if (!json_is_integer(x) || id < 0 || id >= s->vocab) {
            gs_reply_error(r, 400, param, "invalid_token",
                           "%s[%zu][%zu] is not a token id (an integer in [0, %d), the model's "
                           "embedding rows)", param, i, k, s->vocab);
            return false;
        }
        if (k < keep - 1) out->ids[k] = (int32_t)id;
    }
    out->ids[keep - 1] = eos; /* the last id, or truncation's </s> */
    out->n = keep;
    return true;
}

bool gs_inputs_parse(gs_server *s, const json_t *v, const char *param, bool allow_ids,
                     gs_inputs *in, gs_reply *r)
{
    memset(in, 0, sizeof *in);
    const char *forms = allow_ids ? "a string, an array of strings, an array of token ids or an "
                                    "array of arrays of token ids"
                                  : "a string or an array of strings";
    if (!v) {
        gs_reply_error(r, 400, param, "missing_required_parameter", "'%s' is required", param);
        return false;
    }
    /* the form: 's' one string, 'S' strings, 'i' one id list, 'I' id lists */
    char form;
    size_t n;
    if (json_is_string(v)) {
        form = 's';
        n = 1;
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        const json_t *first = json_array_get(v, 0);
        form = json_is_string(first) ? 'S' : json_is_integer(first) ? 'i' : json_is_array(first) ? 'I' : '?';
        n = form == 'i' ? 1 : json_array_size(v);
        if (!allow_ids && form != 'S') form = '?';
    } else if (json_is_array(v)) {
        gs_reply_error(r, 400, param, "empty_input", "'%s' is an empty array", param);
        return false;
    } else {
        form = '?';
        n = 0;
    }
    if (form == '?') {
        gs_reply_error(r, 400, param, "invalid_type", "'%s' must be %s", param, forms);
        return false;
    }
    if (n > s->o.max_inputs) {
        gs_reply_error(r, 400, param, "too_many_inputs",
                       "'%s' has %zu inputs, more than the limit of %zu per request", param, n,
                       s->o.max_inputs);
        return false;
    }
    in->seq = calloc(n, sizeof *in->seq);
    in->ids = calloc(n, sizeof *in->ids);
    in->n_ids = calloc(n, sizeof *in->n_ids);
    in->n = n;
    if (!in->seq || !in->ids || !in->n_ids) {
        gs_inputs_free(in);
        gs_reply_oom(r);
        return false;
    }
    /* a few requests tokenize at once: the tokenizer's scratch memory stays bounded */
    while (sem_wait(&s->tokenize_slots) != 0) {
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        const json_t *x = form == 's' || form == 'i' ? v : json_array_get(v, i);
        if (form == 's' || form == 'S') {
            ok = json_is_string(x);
            if (!ok) gs_reply_error(r, 400, param, "invalid_type", "%s[%zu] is not a string (%s must be %s)", param, i, param, forms);
            else ok = one_text(s, x, param, i, &in->seq[i], r);
        } else {
            ok = json_is_array(x);
            if (!ok) gs_reply_error(r, 400, param, "invalid_type", "%s[%zu] is not an array of token ids (%s must be %s)", param, i, param, forms);
            else ok = one_ids(s, x, param, i, &in->seq[i], r);
        }
        if (!ok) break;
        in->ids[i] = in->seq[i].ids;
        in->n_ids[i] = in->seq[i].n;
        in->tokens += in->seq[i].n;
    }
    sem_post(&s->tokenize_slots);
    if (!ok) gs_inputs_free(in);
    return ok;
}

bool gs_encode(gs_server *s, const gs_inputs *in, float *out, gs_reply *r)
{
    gs_job job;
    memset(&job, 0, sizeof job);
    job.n = in->n;
    job.ids = in->ids;
    job.n_ids = in->n_ids;
    job.out = out;
    gs_submit_result res = gs_batcher_submit(s->batcher, &job, r->announced);
    r->announced = false;
    switch (res) {
    case GS_SUBMIT_OK: break;
    case GS_SUBMIT_FULL:
        gs_reply_error(r, 503, NULL, "queue_full",
                       "the server is busy (%zu requests already waiting for the encoder); retry later",
                       s->o.queue);
        r->retry_after = 1;
        return false;
    case GS_SUBMIT_CLOSED:
        gs_reply_error(r, 503, NULL, "shutting_down", "the server is shutting down");
        r->retry_after = 1;
        return false;
    }
    gtr_error e;
    gtr_status st = gs_batcher_wait(s->batcher, &job, &e);
    if (st == GTR_ERR_INTERRUPTED) { /* shutdown gave up on the work */
        gs_reply_error(r, 503, NULL, "shutting_down", "the server is shutting down");
        r->retry_after = 1;
        return false;
    }
    if (st) {
        gs_reply_error(r, 500, NULL, NULL, "encoding failed: %s", e.message);
        return false;
    }
    return true;
}

/* The shape of a JSON text without parsing it: containers, scalars, strings, string bytes and
 * nesting depth (a lexical pass; malformed text is left for the parser to report). */
typedef struct shape {
    size_t containers, scalars, strings, depth, max_depth;
} shape;

static void scan(const char *p, size_t n, shape *sh)
{
    memset(sh, 0, sizeof *sh);
    bool in_value = false; /* inside a number or literal */
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '"') {
            sh->strings++;
            in_value = false;
            for (i++; i < n && p[i] != '"'; i++)
                if (p[i] == '\\') i++;
            continue;
        }
        if (c == '{' || c == '[') {
            sh->containers++;
            if (++sh->depth > sh->max_depth) sh->max_depth = sh->depth;
            in_value = false;
        } else if (c == '}' || c == ']') {
            if (sh->depth) sh->depth--;
            in_value = false;
        } else if (c == ',' || c == ':' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            in_value = false;
        } else if (!in_value) {
            sh->scalars++;
            in_value = true;
        }
    }
}

/* What jansson 2.14 takes per parsed element, measured with mallinfo2 (glibc, 64-bit) and
 * rounded up: an array or object (empty: 139 / 235 bytes), a number or literal in an array (43),
 * a string (91 + its bytes; an object member's key counts as one). While it parses a string,
 * its lexer's buffer (grown by doubling: up to twice the string) and the copy exist together:
 * up to 3 bytes per byte of the body. */
#define JSON_CONTAINER_BYTES 256u
#define JSON_SCALAR_BYTES 64u
#define JSON_STRING_BYTES 96u

json_t *gs_parse_body(gs_server *s, const char *body, size_t len, gs_reply *r)
{
    shape sh;
    scan(body, len, &sh);
    size_t max_values = s->o.max_inputs * ((size_t)s->max_len + 8) + 64;
    if (sh.max_depth > 8 || sh.containers > s->o.max_inputs + 16 || sh.scalars + sh.strings > max_values) {
        gs_reply_error(r, 400, NULL, "invalid_json",
                       "the body's JSON has a shape no request has (%zu arrays and objects, %zu values, "
                       "nesting %zu; the limits are %zu, %zu and 8)",
                       sh.containers, sh.scalars + sh.strings, sh.max_depth, s->o.max_inputs + 16, max_values);
        return NULL;
    }
    /* the parsed form, before it exists */
    size_t tree = sh.containers * JSON_CONTAINER_BYTES + sh.scalars * JSON_SCALAR_BYTES +
                  sh.strings * JSON_STRING_BYTES + 3 * len;
    if (!gs_hold(s, r, tree)) return NULL;
    json_error_t je;
    /* NUL characters are allowed in texts (the library takes lengths) */
    json_t *j = json_loadb(body, len, JSON_ALLOW_NUL, &je);
    if (!j) {
        gs_reply_error(r, 400, NULL, "invalid_json",
                       "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        gs_reply_error(r, 400, NULL, "invalid_json", "the body must be a JSON object");
        return NULL;
    }
    return j;
}
