/* torch_zip.c — pytorch_model.bin as torch.save writes it (torch >= 1.6): a zip archive holding
 * "<name>/data.pkl" (the pickled state dict, read by torch_pickle.c) and one STORED entry
 * "<name>/data/<key>" per storage, whose bytes the tensors view in place in the mapped file.
 * Also recognises (and refuses, with advice) the legacy pre-1.6 format. */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *buf;
    const gtr_zip_entry *e;
    size_t n;
    const char *prefix; /* "archive/" */
    size_t prefix_len;
} zip_ctx;

static const gtr_zip_entry *find_entry(const zip_ctx *z, const char *rel)
{
    size_t rl = strlen(rel);
    for (size_t i = 0; i < z->n; i++)
        if (z->e[i].name_len == z->prefix_len + rl && !memcmp(z->e[i].name, z->prefix, z->prefix_len) &&
            !memcmp(z->e[i].name + z->prefix_len, rel, rl))
            return &z->e[i];
    return NULL;
}

static const uint8_t *storage_lookup(void *user, const char *key, size_t *size)
{
    const zip_ctx *z = user;
    char rel[300];
    snprintf(rel, sizeof rel, "data/%s", key);
    const gtr_zip_entry *e = find_entry(z, rel);
    if (!e || e->method != 0 || e->size > SIZE_MAX) return NULL;
    *size = (size_t)e->size;
    return z->buf + e->data_off;
}

gtr_status gtr_torch_zip_parse(const uint8_t *buf, size_t len, const char *what, int source,
                               gtr_tensor_set *set, gtr_error *err)
{
    if (len >= 2 && buf[0] == 0x80 && buf[1] <= 5)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "%s: legacy (pre-1.6, non-zip) torch checkpoint; re-save it with a recent "
                          "torch or convert it to model.safetensors", what);
    gtr_zip_entry *e;
    size_t n;
    gtr_status st = gtr_zip_index(buf, len, what, &e, &n, err);
    if (st) return st;
    zip_ctx z = {buf, e, n, NULL, 0};
    /* "<archive name>/data.pkl": exactly one path component before it. */
    const gtr_zip_entry *pkl = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *nm = e[i].name;
        size_t nl = e[i].name_len;
        if (nl >= 9 && !memcmp(nm + nl - 9, "/data.pkl", 9) && !memchr(nm, '/', nl - 9)) {
            if (pkl) {
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: more than one data.pkl", what);
                goto done;
            }
            pkl = &e[i];
            z.prefix = nm;
            z.prefix_len = nl - 8;
        }
    }
    if (!pkl) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no data.pkl in the archive (not a torch checkpoint)",
                        what);
        goto done;
    }
    const gtr_zip_entry *bo = find_entry(&z, "byteorder");
    if (bo && !(bo->method == 0 && bo->size == 6 && !memcmp(buf + bo->data_off, "little", 6))) {
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: big-endian checkpoints are not supported", what);
        goto done;
    }
    if (pkl->method != 0 || pkl->size > SIZE_MAX) {
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: data.pkl is compressed (torch writes it stored)",
                        what);
        goto done;
    }
    st = gtr_torch_pickle_parse(buf + pkl->data_off, (size_t)pkl->size, what, storage_lookup, &z,
                                source, set, err);
done:
    free(e);
    return st;
}
