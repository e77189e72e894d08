/* alloc.c — aligned and checked allocation, and a growable byte buffer. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

bool gtr_mul_ok(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

void *gtr_malloc_aligned(size_t size, gtr_error *err)
{
    /* Round up to a whole number of cache lines so vector loops may read past the end of a
     * row within the allocation. */
    size_t rounded = (size + 63) & ~(size_t)63;
    if (rounded < size) rounded = 0;
    void *p = rounded ? aligned_alloc(64, rounded) : aligned_alloc(64, 64);
    if (!p) gtr_seterr(err, GTR_ERR_NOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *gtr_calloc_aligned(size_t size, gtr_error *err)
{
    void *p = gtr_malloc_aligned(size, err);
    if (p) memset(p, 0, size);
    return p;
}

void gtr_free_aligned(void *p) { free(p); }

void *gtr_xmalloc(size_t size, const char *what, gtr_error *err)
{
    void *p = malloc(size ? size : 1);
    if (!p) gtr_seterr(err, GTR_ERR_NOMEM, "out of memory allocating %zu bytes for %s", size, what);
    return p;
}

void *gtr_xcalloc(size_t n, size_t size, const char *what, gtr_error *err)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) gtr_seterr(err, GTR_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}

void *gtr_xrealloc(void *old, size_t size, const char *what, gtr_error *err)
{
    void *p = realloc(old, size ? size : 1);
    if (!p) gtr_seterr(err, GTR_ERR_NOMEM, "out of memory allocating %zu bytes for %s", size, what);
    return p;
}

gtr_status gtr_buf_reserve(gtr_buf *b, size_t extra, gtr_error *err)
{
    if (b->cap - b->len > extra) return GTR_OK; /* keep room for a terminator */
    size_t need = b->len + extra + 1;
    if (need < b->len) return gtr_seterr(err, GTR_ERR_NOMEM, "buffer size overflow");
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap = cap * 2 > cap ? cap * 2 : need;
    char *p = gtr_xrealloc(b->data, cap, "buffer", err);
    if (!p) return GTR_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return GTR_OK;
}

gtr_status gtr_buf_append(gtr_buf *b, const void *data, size_t len, gtr_error *err)
{
    gtr_status st = gtr_buf_reserve(b, len, err);
    if (st) return st;
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return GTR_OK;
}

gtr_status gtr_buf_printf(gtr_buf *b, gtr_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return gtr_seterr(err, GTR_ERR_INTERNAL, "bad format string");
    gtr_status st = gtr_buf_reserve(b, (size_t)n, err);
    if (st) return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return GTR_OK;
}

void gtr_buf_free(gtr_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
