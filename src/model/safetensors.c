/* safetensors.c — the safetensors format (https://huggingface.co/docs/safetensors): a u64
 * little-endian header length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets":
 * [begin, end]}, "__metadata__": {...}}, then the tensor bytes, offsets relative to the first
 * byte after the header. The file is untrusted: every tensor's range must lie inside the file,
 * match its dtype and shape exactly, and not overlap another tensor. */
#include "model/model_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Headers of real checkpoints are a few hundred KiB at most; the reference implementation
 * caps them at 100 MB. */
#define MAX_HEADER (100u << 20)

static bool parse_dtype(const char *s, gtr_dtype_id *dt)
{
    static const struct {
        const char *name;
        gtr_dtype_id dt;
    } map[] = {{"F32", GTR_DT_F32}, {"F16", GTR_DT_F16}, {"BF16", GTR_DT_BF16}, {"F64", GTR_DT_F64},
               {"I64", GTR_DT_I64}, {"I32", GTR_DT_I32}, {"I16", GTR_DT_I16}, {"I8", GTR_DT_I8},
               {"U8", GTR_DT_U8},   {"BOOL", GTR_DT_BOOL}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(s, map[i].name)) {
            *dt = map[i].dt;
            return true;
        }
    return false;
}

typedef struct {
    uint64_t begin, end;
    size_t idx; /* into the set (for messages) */
} range;

static int cmp_range(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static bool json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* One header entry -> tensor (validated against the data area of data_len bytes). */
static gtr_status parse_entry(const char *name, const json_t *v, const uint8_t *data,
                              uint64_t data_len, const char *what, gtr_tensor *t, range *r,
                              gtr_error *err)
{
    memset(t, 0, sizeof *t);
    if (!json_is_object(v))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", what,
                          name);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
           *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs))
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s': header needs \"dtype\", \"shape\" and \"data_offsets\"",
                          what, name);
    if (!parse_dtype(json_string_value(dt), &t->dtype))
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s'", what,
                          name, json_string_value(dt));
    size_t nd = json_array_size(shape);
    if (nd > GTR_MAX_DIMS)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': %zu dimensions (at most %d)", what,
                          name, nd, GTR_MAX_DIMS);
    size_t count = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!json_u64(json_array_get(shape, i), &d) || d > SIZE_MAX)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': shape must be non-negative integers",
                              what, name);
        if (!gtr_mul_ok(count, (size_t)d, &count))
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%s': shape is too large", what, name);
        t->shape[i] = (size_t)d;
    }
    t->ndim = (int)nd;
    t->count = count;
    size_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i] ? t->shape[i] : 1; /* cannot overflow: bounded by count (or 0 dims) */
    }
    uint64_t b, e;
    if (json_array_size(offs) != 2 || !json_u64(json_array_get(offs, 0), &b) ||
        !json_u64(json_array_get(offs, 1), &e) || b > e)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets must be two integers [begin, end]", what, name);
    if (e > data_len)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] point beyond the end of the "
                          "file (%llu data bytes; truncated file?)",
                          what, name, (unsigned long long)b, (unsigned long long)e,
                          (unsigned long long)data_len);
    size_t bytes;
    if (!gtr_mul_ok(count, gtr_dtype_size(t->dtype), &bytes) || (uint64_t)bytes != e - b)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets span %llu bytes but %s x %zu elements need %zu",
                          what, name, (unsigned long long)(e - b), gtr_tensor_dtype_name(t->dtype),
                          count, bytes);
    t->data = data + b;
    t->span = bytes;
    r->begin = b;
    r->end = e;
    return GTR_OK;
}

gtr_status gtr_safetensors_parse(const uint8_t *buf, size_t len, const char *what, int source,
                                 gtr_tensor_set *set, gtr_error *err)
{
    if (len < 8)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: file is too short for safetensors (%zu bytes)",
                          what, len);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | buf[i];
    if (n > len - 8)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: header length %llu exceeds the file size %zu (truncated file?)", what,
                          (unsigned long long)n, len);
    if (n > MAX_HEADER)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: header length %llu is implausibly large", what,
                          (unsigned long long)n);
    json_error_t je;
    json_t *h = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!h)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: header is not valid JSON: %s (column %d)", what,
                          je.text, je.column);
    gtr_status st = GTR_OK;
    range *ranges = NULL;
    if (!json_is_object(h)) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: header is not a JSON object", what);
        goto done;
    }
    const uint8_t *data = buf + 8 + n;
    uint64_t data_len = len - 8 - n;
    ranges = gtr_xcalloc(json_object_size(h) + 1, sizeof *ranges, "safetensors header", err);
    if (!ranges) {
        st = GTR_ERR_NOMEM;
        goto done;
    }
    /* __metadata__ (string to string): only gtr's own "gtr_quantization" means anything here */
    gtr_quant_scheme quant = GTR_QUANT_NONE;
    json_t *meta = json_object_get(h, "__metadata__");
    json_t *qv = json_is_object(meta) ? json_object_get(meta, "gtr_quantization") : NULL;
    if (qv) {
        const char *qs = json_string_value(qv);
        quant = !qs ? GTR_QUANT_UNKNOWN
                : !strcmp(qs, GTR_QUANT_INT8_NAME) ? GTR_QUANT_INT8_V1
                : !strcmp(qs, GTR_QUANT_BF16_NAME) ? GTR_QUANT_FLOAT
                                                    : GTR_QUANT_UNKNOWN;
    }
    json_t *fpv = json_is_object(meta) ? json_object_get(meta, "gtr_source_fingerprint") : NULL;
    if (fpv) {
        const char *fs = json_string_value(fpv);
        bool hex = fs && strlen(fs) == 16;
        for (int i = 0; hex && i < 16; i++) hex = isxdigit((unsigned char)fs[i]) != 0;
        if (!hex) {
            st = gtr_seterr(err, GTR_ERR_FORMAT,
                            "%s: __metadata__ \"gtr_source_fingerprint\" must be 16 hex digits", what);
            goto done;
        }
        set->has_source_fp = true;
        set->source_fp = (uint64_t)strtoull(fs, NULL, 16);
    }
    json_t *lv = json_is_object(meta) ? json_object_get(meta, "gtr_layout") : NULL;
    if (lv) {
        const char *ls = json_string_value(lv);
        if (!ls || strcmp(ls, GTR_WMAT_LAYOUT_NAME)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT,
                            "%s: __metadata__ \"gtr_layout\" is \"%s\" but this version reads \"%s\" "
                            "(quantise the original model again with this gtr)",
                            what, ls ? ls : "(not a string)", GTR_WMAT_LAYOUT_NAME);
            goto done;
        }
        set->packed = true;
    }
    /* "gtr_checksum" / "gtr_checksums" (checksum.c): attached to the tensors below once they
     * are in file order; a problem is kept for gtr_tensor_set_verify, not fatal here (a load
     * that skips verification still works) */
    json_t *csv = json_is_object(meta) ? json_object_get(meta, "gtr_checksum") : NULL;
    json_t *cv = json_is_object(meta) ? json_object_get(meta, "gtr_checksums") : NULL;
    const char *crcs = NULL, *crc_problem = NULL;
    if (csv || cv) {
        const char *scheme = json_string_value(csv);
        crcs = json_string_value(cv);
        if (!scheme || strcmp(scheme, GTR_CHECKSUM_SCHEME))
            crc_problem = "__metadata__ \"gtr_checksum\" is missing or not \"" GTR_CHECKSUM_SCHEME
                          "\", the only scheme this version reads";
        else if (!crcs)
            crc_problem = "__metadata__ \"gtr_checksums\" is missing or not a string";
        for (const char *c = crcs; !crc_problem && *c; c++)
            if (!isxdigit((unsigned char)*c)) crc_problem = "__metadata__ \"gtr_checksums\" is not hex digits";
    }
    size_t nr = 0;
    const char *name;
    json_t *v;
    json_object_foreach(h, name, v)
    {
        if (!strcmp(name, "__metadata__")) continue;
        gtr_tensor t;
        if ((st = parse_entry(name, v, data, data_len, what, &t, &ranges[nr], err))) goto done;
        t.source = source;
        t.quant = quant;
        ranges[nr].idx = set->n;
        if ((st = gtr_tensor_set_add(set, name, strlen(name), &t, err))) goto done;
        nr++;
    }
    /* Overlaps: sorted by begin, each non-empty range must start at or after the previous end. */
    qsort(ranges, nr, sizeof *ranges, cmp_range);
    uint64_t prev_end = 0;
    size_t prev = SIZE_MAX;
    for (size_t i = 0; i < nr; i++) {
        if (ranges[i].begin == ranges[i].end) continue;
        if (prev != SIZE_MAX && ranges[i].begin < prev_end) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap in the file",
                            what, set->t[ranges[prev].idx].name, set->t[ranges[i].idx].name);
            goto done;
        }
        prev_end = ranges[i].end;
        prev = i;
    }
    if ((csv || cv) && !crc_problem && strlen(crcs) != 8 * nr)
        crc_problem = "__metadata__ \"gtr_checksums\" does not hold one checksum (8 hex digits) per tensor";
    if (crc_problem) {
        if (!set->crc_problem) {
            set->crc_problem = crc_problem;
            set->crc_problem_source = source;
        }
    } else if (crcs) {
        for (size_t i = 0; i < nr; i++) { /* ranges are in file order now */
            char hex[9];
            memcpy(hex, crcs + 8 * i, 8);
            hex[8] = '\0';
            gtr_tensor *t = &set->t[ranges[i].idx];
            t->has_crc = true;
            t->crc = (uint32_t)strtoul(hex, NULL, 16);
        }
    }
done:
    free(ranges);
    json_decref(h);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

void gtr_safetensors_header_add(json_t *h, const char *name, const char *dtype, size_t rows,
                                size_t cols, uint64_t off, uint64_t bytes)
{
    json_t *shape = cols ? json_pack("[I, I]", (json_int_t)rows, (json_int_t)cols)
                         : json_pack("[I]", (json_int_t)rows);
    json_object_set_new(h, name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype, "shape", shape,
                                           "data_offsets", (json_int_t)off, (json_int_t)(off + bytes)));
}

uint8_t *gtr_safetensors_header_bytes(const json_t *h, size_t *len, gtr_error *err)
{
    return gtr_safetensors_header_bytes_align(h, 8, len, err);
}

uint8_t *gtr_safetensors_header_bytes_align(const json_t *h, size_t align, size_t *len, gtr_error *err)
{
    char *text = json_dumps(h, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0, padded = (8 + n + align - 1) / align * align - 8;
    uint8_t *out = text ? malloc(8 + padded) : NULL;
    if (!out) {
        free(text);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, text, n);
    memset(out + 8 + n, ' ', padded - n);
    free(text);
    *len = 8 + padded;
    return out;
}

void gtr_safetensors_shard_name(size_t k, size_t K, char *buf, size_t cap)
{
    if (K <= 1) snprintf(buf, cap, "model.safetensors");
    else snprintf(buf, cap, "model-%05zu-of-%05zu.safetensors", k + 1, K);
}

gtr_status gtr_safetensors_write_index(const char *dir, const char *const *names, const size_t *shard, size_t n,
                                       size_t K, uint64_t total, gtr_error *err)
{
    json_t *wm = json_object();
    for (size_t i = 0; i < n; i++) {
        char file[64];
        gtr_safetensors_shard_name(shard[i], K, file, sizeof file);
        json_object_set_new(wm, names[i], json_string(file));
    }
    json_t *j = json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
    char *path = gtr_path_join(dir, "model.safetensors.index.json");
    gtr_status st = path && j ? gtr_json_write_file(path, j, err) : gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    free(path);
    json_decref(j);
    return st;
}
