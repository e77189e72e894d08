/* error.c — status names and the error-struct helpers every layer uses. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

const char *gtr_status_str(gtr_status code)
{
    switch (code) {
    case GTR_OK: return "ok";
    case GTR_ERR_INVALID_ARG: return "invalid argument";
    case GTR_ERR_IO: return "I/O error";
    case GTR_ERR_FORMAT: return "format error";
    case GTR_ERR_NOMEM: return "out of memory";
    case GTR_ERR_UNSUPPORTED: return "unsupported";
    case GTR_ERR_MISMATCH: return "mismatch";
    case GTR_ERR_NOT_FOUND: return "not found";
    case GTR_ERR_NETWORK: return "network error";
    case GTR_ERR_INTERRUPTED: return "interrupted";
    case GTR_ERR_INTERNAL: return "internal error";
    }
    return "unknown error";
}

const char *gtr_version(void) { return GTR_VERSION_STRING; }

void gtr_free(void *p) { free(p); }

gtr_status gtr_options_take(void *dst, size_t full, const void *src, const char *what,
                            gtr_error *err)
{
    if (!src) return GTR_OK;
    size_t size;
    memcpy(&size, src, sizeof size);
    if (size < sizeof size || size > full)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "%s: options not made by its *_default_options() (size field %zu, "
                          "this library's struct has %zu bytes)", what, size, full);
    memcpy(dst, src, size);
    memcpy(dst, &full, sizeof full);
    return GTR_OK;
}

gtr_status gtr_vseterr(gtr_error *err, gtr_status code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
    }
    return code;
}

gtr_status gtr_error_set(gtr_error *err, gtr_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    gtr_vseterr(err, code, fmt, ap);
    va_end(ap);
    return code;
}

gtr_status gtr_error_prefix(gtr_error *err, const char *fmt, ...)
{
    if (!err) return GTR_ERR_INTERNAL;
    char prefix[512], old[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    snprintf(err->message, sizeof err->message, "%s: %s", prefix, old);
    return err->code;
}

void gtr_error_clear(gtr_error *err)
{
    if (err) {
        err->code = GTR_OK;
        err->message[0] = '\0';
    }
}
