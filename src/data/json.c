/* json.c — typed access to JSON config files (jansson) with errors that name the field. */
#include "data.h"

#include <stdlib.h>
#include <string.h>

json_t *gtr_json_load_file(const char *path, gtr_error *err)
{
    char *buf;
    size_t len;
    if (gtr_read_file(path, 64u << 20, &buf, &len, err)) return NULL;
    json_error_t je;
    json_t *j = json_loadb(buf, len, JSON_DECODE_ANY, &je);
    free(buf);
    if (!j) gtr_seterr(err, GTR_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, je.line, je.column, je.text);
    return j;
}

gtr_status gtr_json_write_file(const char *path, const json_t *j, gtr_error *err)
{
    char *text = json_dumps(j, JSON_INDENT(2));
    size_t len = text ? strlen(text) : 0;
    char *line = text ? realloc(text, len + 2) : NULL;
    if (!line) {
        free(text);
        return gtr_seterr(err, GTR_ERR_NOMEM, "%s: out of memory", path);
    }
    line[len] = '\n';
    line[len + 1] = '\0';
    gtr_status st = gtr_write_file_atomic(path, line, len + 1, err);
    free(line);
    return st;
}

static json_t *field(const json_t *obj, const char *key, bool required, const char *what,
                     gtr_error *err, gtr_status *st)
{
    *st = GTR_OK;
    json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;
    if ((!v || json_is_null(v)) && required)
        *st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: missing field '%s'", what, key);
    return json_is_null(v) ? NULL : v;
}

gtr_status gtr_json_get_int(const json_t *obj, const char *key, bool required, long long def,
                            long long *out, const char *what, gtr_error *err)
{
    gtr_status st;
    json_t *v = field(obj, key, required, what, err, &st);
    if (st) return st;
    if (!v) {
        *out = def;
        return GTR_OK;
    }
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return GTR_OK;
    }
    /* a whole real within long long's range (the range check first: the cast of anything
     * outside it is undefined behaviour) */
    if (json_is_real(v) && json_real_value(v) >= -9.2e18 && json_real_value(v) <= 9.2e18 &&
        json_real_value(v) == (double)(long long)json_real_value(v)) {
        *out = (long long)json_real_value(v);
        return GTR_OK;
    }
    return gtr_seterr(err, GTR_ERR_FORMAT, "%s: field '%s' must be an integer", what, key);
}

gtr_status gtr_json_get_real(const json_t *obj, const char *key, bool required, double def,
                             double *out, const char *what, gtr_error *err)
{
    gtr_status st;
    json_t *v = field(obj, key, required, what, err, &st);
    if (st) return st;
    if (!v) {
        *out = def;
        return GTR_OK;
    }
    if (!json_is_number(v))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: field '%s' must be a number", what, key);
    *out = json_number_value(v);
    return GTR_OK;
}

gtr_status gtr_json_get_bool(const json_t *obj, const char *key, bool required, bool def,
                             bool *out, const char *what, gtr_error *err)
{
    gtr_status st;
    json_t *v = field(obj, key, required, what, err, &st);
    if (st) return st;
    if (!v) {
        *out = def;
        return GTR_OK;
    }
    if (!json_is_boolean(v))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: field '%s' must be true or false", what, key);
    *out = json_is_true(v);
    return GTR_OK;
}

gtr_status gtr_json_get_str(const json_t *obj, const char *key, bool required, const char *def,
                            const char **out, const char *what, gtr_error *err)
{
    gtr_status st;
    json_t *v = field(obj, key, required, what, err, &st);
    if (st) return st;
    if (!v) {
        *out = def;
        return GTR_OK;
    }
    if (!json_is_string(v))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: field '%s' must be a string", what, key);
    *out = json_string_value(v);
    return GTR_OK;
}
