/* npy.c — NumPy .npy arrays (format versions 1-3) and .npz archives (zip, via libzip). */
#include "data.h"

#include <stdlib.h>
#include <string.h>
#include <zip.h>

size_t gtr_dtype_size(gtr_dtype_id dt)
{
    switch (dt) {
    case GTR_DT_F64: case GTR_DT_I64: return 8;
    case GTR_DT_F32: case GTR_DT_I32: return 4;
    case GTR_DT_F16: case GTR_DT_BF16: case GTR_DT_I16: return 2;
    case GTR_DT_I8: case GTR_DT_U8: case GTR_DT_BOOL: return 1;
    }
    return 0;
}

void gtr_array_free(gtr_array *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

static double elem_f64(const gtr_array *a, size_t i)
{
    switch (a->dtype) {
    case GTR_DT_F32: return ((const float *)a->data)[i];
    case GTR_DT_F64: return ((const double *)a->data)[i];
    case GTR_DT_F16: return gtr_f16_to_f32(((const uint16_t *)a->data)[i]);
    case GTR_DT_BF16: return gtr_bf16_to_f32(((const uint16_t *)a->data)[i]);
    case GTR_DT_I8: return ((const int8_t *)a->data)[i];
    case GTR_DT_U8: case GTR_DT_BOOL: return ((const uint8_t *)a->data)[i];
    case GTR_DT_I16: return ((const int16_t *)a->data)[i];
    case GTR_DT_I32: return ((const int32_t *)a->data)[i];
    case GTR_DT_I64: return (double)((const int64_t *)a->data)[i];
    }
    return 0;
}

double *gtr_array_to_f64(const gtr_array *a, gtr_error *err)
{
    double *out = gtr_xmalloc(a->count * sizeof *out, "array", err);
    if (out)
        for (size_t i = 0; i < a->count; i++) out[i] = elem_f64(a, i);
    return out;
}

float *gtr_array_to_f32(const gtr_array *a, gtr_error *err)
{
    float *out = gtr_xmalloc(a->count * sizeof *out, "array", err);
    if (out)
        for (size_t i = 0; i < a->count; i++) out[i] = (float)elem_f64(a, i);
    return out;
}

static bool parse_descr(const char *d, size_t n, gtr_dtype_id *dt)
{
    static const struct { const char *s; gtr_dtype_id dt; } map[] = {
        {"<f4", GTR_DT_F32}, {"<f8", GTR_DT_F64}, {"<f2", GTR_DT_F16}, {"|i1", GTR_DT_I8},
        {"|u1", GTR_DT_U8},  {"<i2", GTR_DT_I16}, {"<i4", GTR_DT_I32}, {"<i8", GTR_DT_I64},
        {"|b1", GTR_DT_BOOL}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].s) == n && memcmp(map[i].s, d, n) == 0) {
            *dt = map[i].dt;
            return true;
        }
    return false;
}

/* Find the value after 'key': in the header dict text; returns pointer or NULL. */
static const char *dict_value(const char *h, size_t n, const char *key)
{
    size_t k = strlen(key);
    for (size_t i = 0; i + k + 2 < n; i++) {
        if ((h[i] == '\'' || h[i] == '"') && memcmp(h + i + 1, key, k) == 0 && h[i + 1 + k] == h[i]) {
            const char *p = h + i + k + 2;
            while (p < h + n && (*p == ' ' || *p == ':')) p++;
            return p < h + n ? p : NULL;
        }
    }
    return NULL;
}

gtr_status gtr_npy_parse(const void *buf, size_t len, const char *what, gtr_array *out,
                         gtr_error *err)
{
    memset(out, 0, sizeof *out);
    const uint8_t *b = buf;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: not a .npy array (bad magic)", what);
    size_t hlen, hoff;
    if (b[6] == 1) {
        hlen = (size_t)b[8] | ((size_t)b[9] << 8);
        hoff = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (len < 12) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: truncated .npy header", what);
        hlen = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24);
        hoff = 12;
    } else {
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: unsupported .npy version %d", what, b[6]);
    }
    if (hlen > len - hoff) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: truncated .npy header", what);
    const char *h = (const char *)b + hoff;
    const char *d = dict_value(h, hlen, "descr");
    const char *fo = dict_value(h, hlen, "fortran_order");
    const char *sh = dict_value(h, hlen, "shape");
    if (!d || !fo || !sh || (*d != '\'' && *d != '"'))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: malformed .npy header", what);
    const char *de = memchr(d + 1, *d, hlen - (size_t)(d + 1 - h));
    if (!de || !parse_descr(d + 1, (size_t)(de - d - 1), &out->dtype))
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: unsupported .npy dtype", what);
    if (strncmp(fo, "False", 5) != 0)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: Fortran-order arrays are not supported", what);
    if (*sh != '(') return gtr_seterr(err, GTR_ERR_FORMAT, "%s: malformed shape", what);
    const char *p = sh + 1, *end = h + hlen;
    size_t count = 1;
    while (p < end && *p != ')') {
        while (p < end && (*p == ' ' || *p == ',')) p++;
        if (p < end && *p == ')') break;
        char *q;
        unsigned long long v = strtoull(p, &q, 10);
        if (q == p || out->ndim >= GTR_MAX_DIMS)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: malformed shape", what);
        out->shape[out->ndim++] = (size_t)v;
        if (!gtr_mul_ok(count, (size_t)v, &count))
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: shape overflows", what);
        p = q;
    }
    size_t nbytes;
    if (!gtr_mul_ok(count, gtr_dtype_size(out->dtype), &nbytes) || nbytes > len - hoff - hlen)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: truncated .npy data (%zu bytes needed)", what,
                          nbytes);
    out->count = count;
    out->data = gtr_xmalloc(nbytes, what, err);
    if (!out->data) return GTR_ERR_NOMEM;
    memcpy(out->data, b + hoff + hlen, nbytes);
    return GTR_OK;
}

gtr_status gtr_npy_load(const char *path, gtr_array *out, gtr_error *err)
{
    char *buf;
    size_t len;
    gtr_status st = gtr_read_file(path, 0, &buf, &len, err);
    if (st) return st;
    st = gtr_npy_parse(buf, len, path, out, err);
    free(buf);
    return st;
}

size_t gtr_npy_header_f32(char *out, size_t cap, size_t rows, size_t cols)
{
    /* Fixed 128-byte header (version 1) so the row count can be rewritten in place. */
    char dict[118];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }",
                     rows, cols);
    if (n < 0 || (size_t)n > 117 || cap < 128) return 0;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = 118;
    out[9] = 0;
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', 117 - (size_t)n);
    out[127] = '\n';
    return 128;
}

gtr_status gtr_npy_save_f32(const char *path, const float *data, size_t rows, size_t cols,
                            gtr_error *err)
{
    char hdr[128];
    if (!gtr_npy_header_f32(hdr, sizeof hdr, rows, cols))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: array too large for a .npy header", path);
    gtr_atomic_file f;
    gtr_status st = gtr_atomic_open(&f, path, err);
    if (st) return st;
    if ((st = gtr_atomic_write(&f, hdr, sizeof hdr, err)) ||
        (st = gtr_atomic_write(&f, data, rows * cols * sizeof(float), err))) {
        gtr_atomic_abort(&f);
        return st;
    }
    return gtr_atomic_commit(&f, err);
}

struct gtr_npz {
    zip_t *zip;
    char *path;
};

gtr_npz *gtr_npz_open(const char *path, gtr_error *err)
{
    int zerr = 0;
    zip_t *z = zip_open(path, ZIP_RDONLY, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        gtr_seterr(err, zerr == ZIP_ER_NOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_FORMAT, "%s: %s", path,
                   zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return NULL;
    }
    gtr_npz *n = gtr_xcalloc(1, sizeof *n, "npz", err);
    if (!n || !(n->path = strdup(path))) {
        zip_discard(z);
        free(n);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    n->zip = z;
    return n;
}

void gtr_npz_close(gtr_npz *z)
{
    if (!z) return;
    zip_discard(z->zip);
    free(z->path);
    free(z);
}

bool gtr_npz_has(gtr_npz *z, const char *name)
{
    char entry[512];
    snprintf(entry, sizeof entry, "%s.npy", name);
    return zip_name_locate(z->zip, entry, 0) >= 0;
}

gtr_status gtr_npz_get(gtr_npz *z, const char *name, gtr_array *out, gtr_error *err)
{
    memset(out, 0, sizeof *out);
    char entry[512];
    snprintf(entry, sizeof entry, "%s.npy", name);
    zip_stat_t zs;
    if (zip_stat(z->zip, entry, 0, &zs) != 0)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND, "%s: no array '%s'", z->path, name);
    zip_file_t *f = zip_fopen(z->zip, entry, 0);
    if (!f) return gtr_seterr(err, GTR_ERR_FORMAT, "%s: cannot open '%s'", z->path, entry);
    char *buf = gtr_xmalloc((size_t)zs.size, entry, err);
    if (!buf) {
        zip_fclose(f);
        return GTR_ERR_NOMEM;
    }
    zip_int64_t got = zip_fread(f, buf, zs.size);
    zip_fclose(f);
    gtr_status st;
    if (got < 0 || (zip_uint64_t)got != zs.size) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: cannot read '%s'", z->path, entry);
    } else {
        char what[1024];
        snprintf(what, sizeof what, "%s:%s", z->path, entry);
        st = gtr_npy_parse(buf, (size_t)zs.size, what, out, err);
    }
    free(buf);
    return st;
}
