/* build.c — corpus to BM25 index: documents are read in batches, analyzed in parallel, their
 * terms interned and counted serially (so document numbers follow corpus order), and the
 * postings, sorted by term, written as one checksummed file (format.h). */
#include "bm25/bm25.h"
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

#define BATCH 1024

uint8_t bm25_len_to_norm(uint32_t len)
{
    /* SmallFloat.intToByte4: values below NUM_FREE_VALUES (24) stored as is, the rest as
     * 24 + longToInt4(len - 24), a float-like code with 3 stored mantissa bits. */
    if (len < 24) return (uint8_t)len;
    uint64_t v = len - 24;
    int bits = v ? 64 - __builtin_clzll(v) : 0;
    uint32_t code;
    if (bits < 4) {
        code = (uint32_t)v;
    } else {
        int shift = bits - 4;
        code = (uint32_t)(v >> shift) & 0x07u;
        code |= (uint32_t)(shift + 1) << 3;
    }
    return (uint8_t)(24 + code);
}

uint32_t bm25_norm_to_len(uint8_t norm)
{
    if (norm < 24) return norm;
    uint32_t i = norm - 24u, bits = i & 0x07u;
    int shift = (int)(i >> 3) - 1;
    uint64_t v = shift < 0 ? bits : (uint64_t)(bits | 0x08u) << shift;
    return (uint32_t)(24 + v);
}

typedef struct slot {
    gtr_buf text;  /* the passage */
    gtr_buf terms; /* its terms, each followed by a NUL */
    uint32_t n_terms;
    gtr_status st;
    gtr_error err;
} slot;

typedef struct builder {
    gtr_strmap ids;   /* document ids: id number == document number */
    gtr_strmap terms; /* terms, in first-seen order */
    uint32_t *doc_len, *doc_line;
    size_t n_docs, docs_cap;
    uint32_t *p_term, *p_doc, *p_freq; /* postings in document order */
    size_t n_post, post_cap;
    uint64_t tokens;
    uint32_t *tids; /* scratch: one document's term ids */
    size_t tids_cap;
    slot slots[BATCH];
    size_t n_slots;
    bm25_scratch *scratch; /* one per thread */
    int n_threads;
} builder;

static gtr_status add_term(void *user, const char *term, size_t len, gtr_error *err)
{
    slot *s = user;
    gtr_status st = gtr_buf_append(&s->terms, term, len, err);
    if (!st) st = gtr_buf_append(&s->terms, "", 1, err);
    if (!st && s->n_terms == UINT32_MAX) st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "document has too many terms");
    if (!st) s->n_terms++;
    return st;
}

static void analyze_task(void *ctx, size_t i, int thread_id)
{
    builder *b = ctx;
    slot *s = &b->slots[i];
    s->terms.len = 0;
    s->n_terms = 0;
    s->st = bm25_analyze(&b->scratch[thread_id], s->text.data, s->text.len, add_term, s, &s->err);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Room for documents 0..need-1 (ids are interned a batch ahead of n_docs). */
static gtr_status grow_docs(builder *b, size_t need, gtr_error *err)
{
    if (need <= b->docs_cap) return GTR_OK;
    size_t cap = b->docs_cap ? b->docs_cap * 2 : 4096;
    uint32_t *l = gtr_xrealloc(b->doc_len, cap * sizeof *l, "bm25 documents", err);
    if (!l) return GTR_ERR_NOMEM;
    b->doc_len = l;
    uint32_t *n = gtr_xrealloc(b->doc_line, cap * sizeof *n, "bm25 documents", err);
    if (!n) return GTR_ERR_NOMEM;
    b->doc_line = n;
    b->docs_cap = cap;
    return GTR_OK;
}

static gtr_status add_posting(builder *b, uint32_t t, uint32_t d, uint32_t f, gtr_error *err)
{
    if (b->n_post == b->post_cap) {
        size_t cap = b->post_cap ? b->post_cap * 2 : 65536;
        uint32_t *x = gtr_xrealloc(b->p_term, cap * sizeof *x, "bm25 postings", err);
        if (!x) return GTR_ERR_NOMEM;
        b->p_term = x;
        if (!(x = gtr_xrealloc(b->p_doc, cap * sizeof *x, "bm25 postings", err))) return GTR_ERR_NOMEM;
        b->p_doc = x;
        if (!(x = gtr_xrealloc(b->p_freq, cap * sizeof *x, "bm25 postings", err))) return GTR_ERR_NOMEM;
        b->p_freq = x;
        b->post_cap = cap;
    }
    b->p_term[b->n_post] = t;
    b->p_doc[b->n_post] = d;
    b->p_freq[b->n_post] = f;
    b->n_post++;
    return GTR_OK;
}

/* Intern one analyzed document's terms and append its postings (term, doc, freq). */
static gtr_status add_document(builder *b, const slot *s, gtr_error *err)
{
    uint32_t d = (uint32_t)b->n_docs;
    if (b->tids_cap < s->n_terms) {
        uint32_t *t = gtr_xrealloc(b->tids, s->n_terms * sizeof *t, "bm25 terms", err);
        if (!t) return GTR_ERR_NOMEM;
        b->tids = t;
        b->tids_cap = s->n_terms;
    }
    const char *p = s->terms.data;
    for (uint32_t i = 0; i < s->n_terms; i++) {
        size_t len = strlen(p);
        gtr_status st = gtr_strmap_intern(&b->terms, p, len, &b->tids[i], NULL, err);
        if (st) return st;
        p += len + 1;
    }
    qsort(b->tids, s->n_terms, sizeof *b->tids, cmp_u32);
    for (uint32_t i = 0; i < s->n_terms;) {
        uint32_t j = i;
        while (j < s->n_terms && b->tids[j] == b->tids[i]) j++;
        gtr_status st = add_posting(b, b->tids[i], d, j - i, err);
        if (st) return st;
        i = j;
    }
    b->doc_len[d] = s->n_terms;
    b->tokens += s->n_terms;
    b->n_docs++;
    return GTR_OK;
}

/* Analyze the batch in parallel, then add its documents in corpus order. */
static gtr_status flush_batch(builder *b, gtr_pool *pool, gtr_error *err)
{
    gtr_pool_for(pool, b->n_slots, analyze_task, b);
    for (size_t i = 0; i < b->n_slots; i++) {
        if (b->slots[i].st) {
            if (err) *err = b->slots[i].err;
            return b->slots[i].st;
        }
        gtr_status st = add_document(b, &b->slots[i], err);
        if (st) return st;
    }
    b->n_slots = 0;
    return GTR_OK;
}

static gtr_status read_corpus(builder *b, const char *corpus, const gtr_bm25_build_options *o,
                              gtr_error *err)
{
    gtr_text_reader *r = gtr_text_reader_open(corpus, GTR_TEXT_JSONL, err);
    if (!r) return err ? err->code : GTR_ERR_IO;
    gtr_status st = GTR_OK;
    for (;;) {
        gtr_record rec;
        bool eof;
        if ((st = gtr_text_reader_next(r, &rec, &eof, err)) || eof) break;
        if (!rec.is_object || !rec.id) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: document has no \"_id\"", corpus, rec.line);
            break;
        }
        const char *bad = gtr_id_problem(rec.id, rec.id_len);
        if (bad) { /* the same rule as the dense index: every later command can write the id */
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: document id \"%.*s\" %s (ids are written to "
                            "whitespace-separated TREC runs)", corpus, rec.line,
                            (int)GTR_MIN(rec.id_len, 200), rec.id, bad);
            break;
        }
        if (rec.line > UINT32_MAX || b->ids.n >= UINT32_MAX - 1) {
            st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: too many documents", corpus);
            break;
        }
        uint32_t id;
        bool added;
        if ((st = gtr_strmap_intern(&b->ids, rec.id, rec.id_len, &id, &added, err))) break;
        if (!added) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: duplicate document id '%.*s' (first on line %u)",
                            corpus, rec.line, (int)GTR_MIN(rec.id_len, 200), rec.id, b->doc_line[id]);
            break;
        }
        if ((st = grow_docs(b, (size_t)id + 1, err))) break;
        b->doc_line[id] = (uint32_t)rec.line;
        slot *s = &b->slots[b->n_slots];
        if ((st = gtr_record_passage(&rec, &s->text, err))) {
            gtr_error_prefix(err, "%s", corpus);
            break;
        }
        if (++b->n_slots == BATCH) {
            if ((st = flush_batch(b, o->pool, err))) break;
            if (o->progress && o->progress(o->progress_user, b->n_docs, 0)) {
                st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "indexing interrupted");
                break;
            }
        }
    }
    if (!st && b->n_slots) st = flush_batch(b, o->pool, err);
    if (!st && o->progress) o->progress(o->progress_user, b->n_docs, b->n_docs);
    gtr_text_reader_close(r);
    return st;
}

/* ---- writing ---- */

typedef struct order_item {
    const char *s;
    uint32_t i;
} order_item;

static int cmp_item(const void *a, const void *b)
{
    return strcmp(((const order_item *)a)->s, ((const order_item *)b)->s);
}

/* Indices of a string map's keys in bytewise order. */
static uint32_t *sorted_keys(const gtr_strmap *m, gtr_error *err)
{
    order_item *v = gtr_xmalloc((m->n ? m->n : 1) * sizeof *v, "bm25 index", err);
    uint32_t *out = gtr_xmalloc((m->n ? m->n : 1) * sizeof *out, "bm25 index", err);
    if (!v || !out) {
        free(v);
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < m->n; i++) v[i] = (order_item){gtr_strmap_key(m, (uint32_t)i, NULL), (uint32_t)i};
    qsort(v, m->n, sizeof *v, cmp_item);
    for (size_t i = 0; i < m->n; i++) out[i] = v[i].i;
    free(v);
    return out;
}

typedef struct section_data {
    const void *data;
    size_t size;
} section_data;

static gtr_status write_index(builder *b, const char *out_path, gtr_error *err)
{
    size_t nd = b->n_docs, nt = b->terms.n, np = b->n_post;
    gtr_status st = GTR_ERR_NOMEM;
    uint64_t *doc_id_off = gtr_xmalloc((nd + 1) * sizeof *doc_id_off, "bm25 index", err);
    uint8_t *norm = gtr_xmalloc(nd ? nd : 1, "bm25 index", err);
    uint32_t *rank = gtr_xmalloc((nd ? nd : 1) * sizeof *rank, "bm25 index", err);
    uint32_t *by_id = sorted_keys(&b->ids, err);
    uint32_t *term_order = sorted_keys(&b->terms, err);
    uint32_t *term_pos = gtr_xmalloc((nt ? nt : 1) * sizeof *term_pos, "bm25 index", err);
    uint64_t *term_off = gtr_xmalloc((nt + 1) * sizeof *term_off, "bm25 index", err);
    uint64_t *post_off = gtr_xcalloc(nt + 1, sizeof *post_off, "bm25 index", err);
    uint32_t *post_doc = gtr_xmalloc((np ? np : 1) * sizeof *post_doc, "bm25 index", err);
    uint32_t *post_freq = gtr_xmalloc((np ? np : 1) * sizeof *post_freq, "bm25 index", err);
    gtr_buf terms = {0};
    gtr_atomic_file f = {0};
    bool opened = false;
    if (!doc_id_off || !norm || !rank || !by_id || !term_order || !term_pos || !term_off ||
        !post_off || !post_doc || !post_freq)
        goto out;
    uint64_t nonempty = 0;
    for (size_t d = 0; d < nd; d++) {
        doc_id_off[d] = b->ids.ents[d].off;
        norm[d] = bm25_len_to_norm(b->doc_len[d]);
        nonempty += b->doc_len[d] > 0;
    }
    doc_id_off[nd] = b->ids.keys.len;
    for (size_t i = 0; i < nd; i++) rank[by_id[i]] = (uint32_t)i;
    /* terms in bytewise order; postings regrouped by term (stable: documents stay increasing) */
    for (size_t i = 0; i < nt; i++) {
        size_t len;
        const char *t = gtr_strmap_key(&b->terms, term_order[i], &len);
        term_pos[term_order[i]] = (uint32_t)i;
        term_off[i] = terms.len;
        if ((st = gtr_buf_append(&terms, t, len + 1, err))) goto out;
    }
    term_off[nt] = terms.len;
    for (size_t i = 0; i < np; i++) post_off[term_pos[b->p_term[i]] + 1]++;
    for (size_t t = 0; t < nt; t++) post_off[t + 1] += post_off[t];
    {
        uint64_t *fill = gtr_xmalloc((nt ? nt : 1) * sizeof *fill, "bm25 index", err);
        if (!fill) {
            st = GTR_ERR_NOMEM;
            goto out;
        }
        memcpy(fill, post_off, nt * sizeof *fill);
        for (size_t i = 0; i < np; i++) {
            uint64_t k = fill[term_pos[b->p_term[i]]]++;
            post_doc[k] = b->p_doc[i];
            post_freq[k] = b->p_freq[i];
        }
        free(fill);
    }
    section_data sd[BM25_NSECT] = {
        [BM25_S_DOC_ID_OFF] = {doc_id_off, (nd + 1) * sizeof *doc_id_off},
        [BM25_S_DOC_IDS] = {b->ids.keys.data, b->ids.keys.len},
        [BM25_S_DOC_LEN] = {b->doc_len, nd * sizeof *b->doc_len},
        [BM25_S_DOC_NORM] = {norm, nd},
        [BM25_S_DOC_RANK] = {rank, nd * sizeof *rank},
        [BM25_S_DOC_BY_ID] = {by_id, nd * sizeof *by_id},
        [BM25_S_TERM_OFF] = {term_off, (nt + 1) * sizeof *term_off},
        [BM25_S_TERMS] = {terms.data, terms.len},
        [BM25_S_POST_OFF] = {post_off, (nt + 1) * sizeof *post_off},
        [BM25_S_POST_DOC] = {post_doc, np * sizeof *post_doc},
        [BM25_S_POST_FREQ] = {post_freq, np * sizeof *post_freq},
    };
    bm25_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, BM25_MAGIC, sizeof BM25_MAGIC);
    h.version = BM25_VERSION;
    h.header_size = sizeof h;
    h.n_docs = nd;
    h.n_docs_nonempty = nonempty;
    h.n_terms = nt;
    h.n_postings = np;
    h.total_len = b->tokens;
    h.analyzer = BM25_ANALYZER_ENGLISH;
    h.n_sections = BM25_NSECT;
    uint64_t off = sizeof h;
    for (int i = 0; i < BM25_NSECT; i++) {
        off = (off + BM25_ALIGN - 1) / BM25_ALIGN * BM25_ALIGN;
        h.sect[i].off = off;
        h.sect[i].size = sd[i].size;
        h.sect[i].crc = gtr_crc32(0, sd[i].data, sd[i].size);
        off += sd[i].size;
    }
    h.file_size = off;
    h.header_crc = gtr_crc32(0, &h, offsetof(bm25_header, header_crc));
    if ((st = gtr_atomic_open(&f, out_path, err))) goto out;
    opened = true;
    static const char zeros[BM25_ALIGN] = {0};
    uint64_t pos = sizeof h;
    if ((st = gtr_atomic_write(&f, &h, sizeof h, err))) goto out;
    for (int i = 0; i < BM25_NSECT && !st; i++) {
        if (h.sect[i].off > pos) st = gtr_atomic_write(&f, zeros, h.sect[i].off - pos, err);
        if (!st) st = gtr_atomic_write(&f, sd[i].data, sd[i].size, err);
        pos = h.sect[i].off + sd[i].size;
    }
    if (!st) {
        st = gtr_atomic_commit(&f, err);
        opened = false;
    }
out:
    if (opened) gtr_atomic_abort(&f);
    free(doc_id_off);
    free(norm);
    free(rank);
    free(by_id);
    free(term_order);
    free(term_pos);
    free(term_off);
    free(post_off);
    free(post_doc);
    free(post_freq);
    gtr_buf_free(&terms);
    return st;
}

gtr_bm25_build_options gtr_bm25_default_build_options(void)
{
    gtr_bm25_build_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    return o;
}

gtr_status gtr_bm25_build(const char *corpus, const char *out_path,
                          const gtr_bm25_build_options *opts, gtr_bm25_build_stats *stats,
                          gtr_error *err)
{
    if (!corpus || !out_path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "bm25: corpus and output paths are required");
    gtr_bm25_build_options o = gtr_bm25_default_build_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_bm25_build", err)) return GTR_ERR_INVALID_ARG;
    builder *b = gtr_xcalloc(1, sizeof *b, "bm25 builder", err);
    if (!b) return GTR_ERR_NOMEM;
    gtr_strmap_init(&b->ids);
    gtr_strmap_init(&b->terms);
    b->n_threads = o.pool ? gtr_pool_size(o.pool) : 1;
    gtr_status st = GTR_OK;
    b->scratch = gtr_xcalloc((size_t)b->n_threads, sizeof *b->scratch, "bm25 builder", err);
    if (!b->scratch) st = GTR_ERR_NOMEM;
    if (!st) st = read_corpus(b, corpus, &o, err);
    if (!st && b->n_docs == 0) st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: no documents", corpus);
    if (!st) st = write_index(b, out_path, err);
    if (!st && stats) *stats = (gtr_bm25_build_stats){b->n_docs, b->terms.n, b->n_post, b->tokens};
    for (int i = 0; b->scratch && i < b->n_threads; i++) bm25_scratch_free(&b->scratch[i]);
    free(b->scratch);
    for (size_t i = 0; i < BATCH; i++) {
        gtr_buf_free(&b->slots[i].text);
        gtr_buf_free(&b->slots[i].terms);
    }
    gtr_strmap_free(&b->ids);
    gtr_strmap_free(&b->terms);
    free(b->doc_len);
    free(b->doc_line);
    free(b->p_term);
    free(b->p_doc);
    free(b->p_freq);
    free(b->tids);
    free(b);
    return st;
}
