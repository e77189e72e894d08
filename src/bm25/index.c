/* index.c — opening a BM25 index: map the file, then trust nothing (header checksum, section
 * bounds and checksums, and every offset and document number) before handing out views. */
#include "bm25/bm25.h"

#include <stdlib.h>
#include <string.h>

#define FAIL(...) (gtr_seterr(err, GTR_ERR_FORMAT, __VA_ARGS__), false)

static bool check_header(const gtr_bm25 *ix, const char *path, gtr_error *err)
{
    const bm25_header *h = ix->h;
    if (ix->map.size < sizeof *h || memcmp(h->magic, BM25_MAGIC, sizeof BM25_MAGIC))
        return FAIL("%s: not a gtr BM25 index (bad magic or shorter than its header)", path);
    if (h->version != BM25_VERSION)
        return FAIL("%s: BM25 index version %u, this build reads version %u", path, h->version, BM25_VERSION);
    if (h->header_crc != gtr_crc32(0, h, offsetof(bm25_header, header_crc)))
        return FAIL("%s: header checksum mismatch (file damaged)", path);
    if (h->header_size != sizeof *h || h->n_sections != BM25_NSECT || h->analyzer != BM25_ANALYZER_ENGLISH)
        return FAIL("%s: unsupported header (size %u, %u sections, analyzer %u)", path, h->header_size,
                    h->n_sections, h->analyzer);
    if (h->file_size != ix->map.size)
        return FAIL("%s: file is %zu bytes but its header says %llu (truncated or extended)", path,
                    ix->map.size, (unsigned long long)h->file_size);
    if (h->n_docs == 0 || h->n_docs >= UINT32_MAX || h->n_postings >= ((uint64_t)1 << 40) ||
        h->n_terms >= UINT32_MAX || h->n_docs_nonempty > h->n_docs)
        return FAIL("%s: implausible counts in header", path);
    return true;
}

/* Expected byte size of each section given the header's counts (0: variable). */
static uint64_t expected_size(const bm25_header *h, int s)
{
    switch (s) {
    case BM25_S_DOC_ID_OFF: return (h->n_docs + 1) * 8;
    case BM25_S_DOC_LEN: case BM25_S_DOC_RANK: case BM25_S_DOC_BY_ID: return h->n_docs * 4;
    case BM25_S_DOC_NORM: return h->n_docs;
    case BM25_S_TERM_OFF: case BM25_S_POST_OFF: return (h->n_terms + 1) * 8;
    case BM25_S_POST_DOC: case BM25_S_POST_FREQ: return h->n_postings * 4;
    default: return 0;
    }
}

static bool check_sections(const gtr_bm25 *ix, const char *path, gtr_error *err)
{
    static const char *const names[BM25_NSECT] = {
        "document id offsets", "document ids", "document lengths", "document norms",
        "document ranks", "id order", "term offsets", "terms", "posting offsets",
        "posting documents", "posting frequencies"};
    const bm25_header *h = ix->h;
    for (int s = 0; s < BM25_NSECT; s++) {
        const bm25_section *x = &h->sect[s];
        if (x->off < sizeof *h || x->off % BM25_ALIGN || x->off > ix->map.size || x->size > ix->map.size - x->off)
            return FAIL("%s: section '%s' lies outside the file", path, names[s]);
        uint64_t want = expected_size(h, s);
        if (want && x->size != want)
            return FAIL("%s: section '%s' is %llu bytes, expected %llu", path, names[s],
                        (unsigned long long)x->size, (unsigned long long)want);
        if (gtr_crc32(0, ix->map.data + x->off, x->size) != x->crc)
            return FAIL("%s: checksum mismatch in section '%s' (file damaged)", path, names[s]);
    }
    return true;
}

/* Offsets must start at 0, never decrease, end at the blob size, and every string must end
 * with its NUL exactly there (so lookups can use C strings). */
static bool check_strings(const uint64_t *off, size_t n, const char *blob, uint64_t size,
                          bool sorted, const char *what, const char *path, gtr_error *err)
{
    if (off[0] != 0 || off[n] != size) return FAIL("%s: %s offsets do not cover their data", path, what);
    for (size_t i = 0; i < n; i++) {
        if (off[i + 1] <= off[i] || blob[off[i + 1] - 1] != '\0' || memchr(blob + off[i], '\0', off[i + 1] - off[i] - 1))
            return FAIL("%s: %s %zu is malformed", path, what, i);
        if (sorted && i > 0 && strcmp(blob + off[i - 1], blob + off[i]) >= 0)
            return FAIL("%s: %s are not in order at %zu", path, what, i);
    }
    return true;
}

static bool check_content(const gtr_bm25 *ix, const char *path, gtr_error *err)
{
    const bm25_header *h = ix->h;
    size_t nd = ix->n_docs;
    if (!check_strings(ix->doc_id_off, nd, ix->doc_ids, h->sect[BM25_S_DOC_IDS].size, false, "document ids", path, err) ||
        !check_strings(ix->term_off, ix->n_terms, ix->terms, h->sect[BM25_S_TERMS].size, true, "terms", path, err))
        return false;
    uint64_t total = 0, nonempty = 0;
    for (size_t d = 0; d < nd; d++)
        if (ix->doc_by_id[d] >= nd || ix->doc_rank[d] >= nd)
            return FAIL("%s: document order tables hold an out-of-range entry at %zu", path, d);
    for (size_t d = 0; d < nd; d++) {
        if (ix->doc_by_id[ix->doc_rank[d]] != d)
            return FAIL("%s: document order tables disagree at document %zu", path, d);
        if (ix->doc_norm[d] != bm25_len_to_norm(ix->doc_len[d]))
            return FAIL("%s: norm of document %zu does not match its length", path, d);
        if (d > 0 && strcmp(ix->doc_ids + ix->doc_id_off[ix->doc_by_id[d - 1]],
                            ix->doc_ids + ix->doc_id_off[ix->doc_by_id[d]]) >= 0)
            return FAIL("%s: document ids are not unique and in order at %zu", path, d);
        total += ix->doc_len[d];
        nonempty += ix->doc_len[d] > 0;
    }
    if (total != h->total_len || nonempty != h->n_docs_nonempty)
        return FAIL("%s: document lengths do not add up to the header's totals", path);
    if (ix->post_off[0] != 0 || ix->post_off[ix->n_terms] != ix->n_postings)
        return FAIL("%s: posting offsets do not cover the postings", path);
    uint64_t freq_total = 0;
    for (size_t t = 0; t < ix->n_terms; t++) {
        uint64_t a = ix->post_off[t], b = ix->post_off[t + 1];
        if (b <= a || b > ix->n_postings) return FAIL("%s: postings of term %zu are malformed", path, t);
        for (uint64_t i = a; i < b; i++) {
            if (ix->post_doc[i] >= nd || (i > a && ix->post_doc[i] <= ix->post_doc[i - 1]) || ix->post_freq[i] == 0)
                return FAIL("%s: posting %llu of term %zu is malformed", path, (unsigned long long)(i - a), t);
            freq_total += ix->post_freq[i];
        }
    }
    if (freq_total != h->total_len) return FAIL("%s: term frequencies do not add up to the document lengths", path);
    return true;
}

gtr_bm25 *gtr_bm25_open(const char *path, gtr_error *err)
{
    if (!path) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "bm25: no index path");
        return NULL;
    }
    gtr_bm25 *ix = gtr_xcalloc(1, sizeof *ix, "bm25 index", err);
    if (!ix) return NULL;
    if (gtr_mmap_open(path, &ix->map, err)) {
        free(ix);
        return NULL;
    }
    ix->h = (const bm25_header *)ix->map.data;
    bool ok = ix->map.data && check_header(ix, path, err) && check_sections(ix, path, err);
    if (!ok && !ix->map.data) gtr_seterr(err, GTR_ERR_FORMAT, "%s: empty file, not a BM25 index", path);
    if (ok) {
        const bm25_header *h = ix->h;
        const uint8_t *d = ix->map.data;
        ix->n_docs = (size_t)h->n_docs;
        ix->n_terms = (size_t)h->n_terms;
        ix->n_postings = (size_t)h->n_postings;
        ix->doc_id_off = (const uint64_t *)(d + h->sect[BM25_S_DOC_ID_OFF].off);
        ix->doc_ids = (const char *)(d + h->sect[BM25_S_DOC_IDS].off);
        ix->doc_len = (const uint32_t *)(d + h->sect[BM25_S_DOC_LEN].off);
        ix->doc_norm = d + h->sect[BM25_S_DOC_NORM].off;
        ix->doc_rank = (const uint32_t *)(d + h->sect[BM25_S_DOC_RANK].off);
        ix->doc_by_id = (const uint32_t *)(d + h->sect[BM25_S_DOC_BY_ID].off);
        ix->term_off = (const uint64_t *)(d + h->sect[BM25_S_TERM_OFF].off);
        ix->terms = (const char *)(d + h->sect[BM25_S_TERMS].off);
        ix->post_off = (const uint64_t *)(d + h->sect[BM25_S_POST_OFF].off);
        ix->post_doc = (const uint32_t *)(d + h->sect[BM25_S_POST_DOC].off);
        ix->post_freq = (const uint32_t *)(d + h->sect[BM25_S_POST_FREQ].off);
        ok = check_content(ix, path, err);
    }
    if (!ok) {
        gtr_bm25_free(ix);
        return NULL;
    }
    return ix;
}

void gtr_bm25_free(gtr_bm25 *ix)
{
    if (!ix) return;
    gtr_mmap_close(&ix->map);
    free(ix);
}

size_t gtr_bm25_num_docs(const gtr_bm25 *ix) { return ix ? ix->n_docs : 0; }
size_t gtr_bm25_num_terms(const gtr_bm25 *ix) { return ix ? ix->n_terms : 0; }

const char *gtr_bm25_doc_id(const gtr_bm25 *ix, size_t doc, size_t *len)
{
    if (!ix || doc >= ix->n_docs) return NULL;
    if (len) *len = (size_t)(ix->doc_id_off[doc + 1] - ix->doc_id_off[doc] - 1);
    return ix->doc_ids + ix->doc_id_off[doc];
}

/* Compare a stored NUL-terminated string with a (s, len) key, bytewise. */
static int cmp_key(const char *stored, const char *s, size_t len)
{
    int c = strncmp(stored, s, len);
    if (c) return c;
    return stored[len] ? 1 : 0; /* stored is longer (keys hold no NUL) */
}

size_t gtr_bm25_find_doc(const gtr_bm25 *ix, const char *id, size_t len)
{
    if (!ix || !id || memchr(id, '\0', len)) return SIZE_MAX;
    size_t lo = 0, hi = ix->n_docs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t d = ix->doc_by_id[mid];
        int c = cmp_key(ix->doc_ids + ix->doc_id_off[d], id, len);
        if (c == 0) return d;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

size_t bm25_find_term(const gtr_bm25 *ix, const char *term, size_t len)
{
    size_t lo = 0, hi = ix->n_terms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_key(ix->terms + ix->term_off[mid], term, len);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

/* ---- the analyzer on its own ---- */

static gtr_status append_term(void *user, const char *term, size_t len, gtr_error *err)
{
    gtr_buf *b = user;
    gtr_status st = GTR_OK;
    if (b->len) st = gtr_buf_append(b, " ", 1, err);
    return st ? st : gtr_buf_append(b, term, len, err);
}

gtr_status gtr_bm25_analyze(const char *text, size_t len, char **out, size_t *out_len, gtr_error *err)
{
    if (!text || !out) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "bm25_analyze: no text");
    bm25_scratch sc = {0};
    gtr_buf b = {0};
    gtr_status st = gtr_buf_reserve(&b, 0, err);
    if (!st) {
        b.data[0] = '\0';
        st = bm25_analyze(&sc, text, len, append_term, &b, err);
    }
    bm25_scratch_free(&sc);
    if (st) {
        gtr_buf_free(&b);
        return st;
    }
    *out = b.data;
    if (out_len) *out_len = b.len;
    return GTR_OK;
}
