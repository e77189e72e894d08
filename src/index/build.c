/* build.c — building an index from a corpus: read records in batches, refuse duplicate ids,
 * encode, append to the partial work file, checkpoint every N documents, and at the end
 * assemble the final file and move it into place. An interrupted build (crash, kill -9,
 * a progress callback asking to stop) resumes from its last checkpoint. See workfile.h. */
#include "index/workfile.h"

#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

gtr_index_build_options gtr_index_default_build_options(void)
{
    gtr_index_build_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.batch_size = 32;
    o.checkpoint_every = 1024;
    o.snippet_bytes = 240;
    return o;
}

typedef struct builder {
    const gtr_index_encoder *enc;
    gtr_index_build_options o;
    const char *corpus, *out;
    gtr_index_build_stats *stats;
    char *part_path, *ckpt_path;
    gtr_index *base;
    uint64_t base_id;
    int part_fd;
    bool locked;             /* we hold the partial file's lock (so it is ours to delete) */
    FILE *part;
    uint64_t part_bytes;
    uint32_t part_crc;
    bool have_ckpt;          /* a checkpoint exists on disk for this work */
    uint64_t docs_at_ckpt;
    gtr_ix_idset ids;
    uint64_t *rec_off;       /* new records */
    size_t n_docs, cap_docs;
    gtr_text_reader *rd;
    int corpus_fd;
    uint64_t crc_off;        /* corpus CRC computed up to here */
    uint32_t corpus_crc;
    uint64_t lines_done;     /* corpus lines consumed (JSONL: every line is a record) */
    uint64_t corpus_lines;   /* for progress totals */
    const gtr_ix_range *range; /* a shard: only these corpus bytes (NULL: the whole corpus) */
} builder;

/* ---- helpers */

static gtr_status push_rec(builder *b, uint64_t off, gtr_error *err)
{
    if (b->n_docs == b->cap_docs) {
        size_t cap = b->cap_docs ? b->cap_docs * 2 : 1024;
        uint64_t *p = gtr_xrealloc(b->rec_off, cap * sizeof *p, "document records", err);
        if (!p) return GTR_ERR_NOMEM;
        b->rec_off = p;
        b->cap_docs = cap;
    }
    b->rec_off[b->n_docs++] = off;
    return GTR_OK;
}

static gtr_status count_lines(builder *b, gtr_error *err)
{
    uint8_t buf[1 << 16];
    uint64_t off = 0, lines = 0;
    uint8_t last = '\n';
    for (;;) {
        ssize_t r = pread(b->corpus_fd, buf, sizeof buf, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return gtr_seterr(err, GTR_ERR_IO, "%s: read failed: %s", b->corpus, strerror(errno));
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++) lines += buf[i] == '\n';
        last = buf[r - 1];
        off += (uint64_t)r;
    }
    b->corpus_lines = lines + (last != '\n');
    return GTR_OK;
}

/* ---- checkpoints */

static gtr_status checkpoint(builder *b, gtr_error *err)
{
    if (fflush(b->part) != 0 || fsync(b->part_fd) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: write failed: %s", b->part_path, strerror(errno));
    uint64_t upto = gtr_text_reader_offset(b->rd);
    gtr_status st = gtr_ix_fd_crc(b->corpus_fd, b->corpus, b->crc_off, upto, &b->corpus_crc, err);
    if (st) return st;
    b->crc_off = upto;
    gtr_ix_ckpt c = {(uint32_t)b->enc->dim, b->enc->fingerprint, b->n_docs, b->part_bytes,
                     b->part_crc, upto, b->lines_done, b->corpus_crc, b->base_id,
                     b->o.snippet_bytes};
    if ((st = gtr_ix_ckpt_write(b->ckpt_path, &c, err))) return st;
    b->have_ckpt = true;
    b->docs_at_ckpt = b->n_docs;
    return GTR_OK;
}

/* Start over: no records, nothing of the corpus consumed. */
/* The base's ids go into the id set (a corpus document with one is a duplicate), except with
 * replace, where the set holds only the new documents and a base document whose id comes again
 * is marked replaced when the index is assembled. Replaced base documents are not registered. */
static gtr_status register_base_ids(builder *b, gtr_error *err)
{
    if (!b->base || b->o.replace) return GTR_OK;
    for (size_t i = 0; i < gtr_index_count(b->base); i++) {
        if (!gtr_index_doc_live(b->base, i)) continue;
        size_t len;
        const char *id = gtr_index_doc_id(b->base, i, &len);
        uint64_t found;
        gtr_status st = gtr_ix_idset_add(&b->ids, id, len, 0, &found, err);
        if (st) return st;
    }
    return GTR_OK;
}

static gtr_status start_fresh(builder *b, gtr_error *err)
{
    if (ftruncate(b->part_fd, 0) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: truncate failed: %s", b->part_path, strerror(errno));
    unlink(b->ckpt_path);
    b->have_ckpt = false;
    return GTR_OK;
}

#define NOTE(...) snprintf(b->stats->note, sizeof b->stats->note, __VA_ARGS__)

/* Try to continue from the checkpoint. Returns GTR_OK having either resumed or decided to
 * start over (with a note saying why); other statuses are real errors. */
static gtr_status try_resume(builder *b, gtr_error *err)
{
    gtr_ix_ckpt c;
    gtr_error e2;
    gtr_status st = gtr_ix_ckpt_read(b->ckpt_path, &c, &e2);
    if (st == GTR_ERR_NOT_FOUND) return start_fresh(b, err);
    if (st) {
        NOTE("the checkpoint was damaged; started over");
        return start_fresh(b, err);
    }
    if (b->o.no_resume) {
        NOTE("discarded an interrupted build (%llu documents) as asked", (unsigned long long)c.docs);
        return start_fresh(b, err);
    }
    if (c.dim != (uint32_t)b->enc->dim || c.fingerprint != b->enc->fingerprint) {
        NOTE("an interrupted build used another model; started over");
        return start_fresh(b, err);
    }
    if (c.base_id != b->base_id || c.snippet_bytes != b->o.snippet_bytes) {
        NOTE("an interrupted build used another base index or snippet length; started over");
        return start_fresh(b, err);
    }
    struct stat ps, cs;
    if (fstat(b->part_fd, &ps) != 0 || (uint64_t)ps.st_size < c.partial_bytes) {
        NOTE("the partial work file is shorter than its checkpoint; started over");
        return start_fresh(b, err);
    }
    uint32_t crc = 0;
    if (gtr_ix_fd_crc(b->part_fd, b->part_path, 0, c.partial_bytes, &crc, &e2) || crc != c.partial_crc) {
        NOTE("the partial work file does not match its checkpoint; started over");
        return start_fresh(b, err);
    }
    crc = 0;
    if (fstat(b->corpus_fd, &cs) != 0 || (uint64_t)cs.st_size < c.corpus_offset ||
        c.corpus_offset < b->crc_off ||
        gtr_ix_fd_crc(b->corpus_fd, b->corpus, b->crc_off, c.corpus_offset, &crc, &e2) || crc != c.corpus_crc) {
        NOTE("the corpus changed since the interrupted build; started over");
        return start_fresh(b, err);
    }
    /* the records up to the checkpoint: re-register their ids */
    gtr_mmap m;
    if ((st = gtr_mmap_open(b->part_path, &m, err))) return st;
    uint64_t off = 0;
    bool ok = true;
    while (ok && off < c.partial_bytes) {
        gtr_ix_rec r;
        uint64_t found;
        if (!gtr_ix_rec_parse(m.data + off, (size_t)(c.partial_bytes - off), (size_t)b->enc->dim, &r)) {
            ok = false;
            break;
        }
        if ((st = gtr_ix_idset_add(&b->ids, r.id, r.id_len, r.line, &found, err)) ||
            (st = push_rec(b, off, err))) {
            gtr_mmap_close(&m);
            return st;
        }
        ok = found == 0;
        off += r.size;
    }
    gtr_mmap_close(&m);
    if (!ok || b->n_docs != c.docs) {
        NOTE("the partial work file is inconsistent; started over");
        /* forget what was registered: rebuild the id set from the base alone */
        gtr_ix_idset_free(&b->ids);
        gtr_ix_idset_init(&b->ids);
        b->n_docs = 0;
        if ((st = register_base_ids(b, err))) return st;
        return start_fresh(b, err);
    }
    if (ftruncate(b->part_fd, (off_t)c.partial_bytes) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: truncate failed: %s", b->part_path, strerror(errno));
    if ((st = gtr_text_reader_seek(b->rd, c.corpus_offset, (size_t)c.corpus_line, err))) return st;
    b->part_bytes = c.partial_bytes;
    b->part_crc = c.partial_crc;
    b->crc_off = c.corpus_offset;
    b->corpus_crc = c.corpus_crc;
    b->lines_done = c.corpus_line;
    b->have_ckpt = true;
    b->docs_at_ckpt = b->n_docs;
    b->stats->docs_resumed = b->n_docs;
    return GTR_OK;
}

/* ---- one batch: read, check, encode, append */

typedef struct batch {
    gtr_buf text;     /* passages, concatenated */
    gtr_buf ids;      /* ids, concatenated */
    size_t *text_off, *id_off, *snip_len;
    uint64_t *line;
    const char **ptrs;
    size_t *lens;
    float *vecs;
    size_t n;
} batch;

static gtr_status batch_alloc(batch *bt, size_t cap, size_t dim, gtr_error *err)
{
    memset(bt, 0, sizeof *bt);
    bt->text_off = gtr_xcalloc(cap + 1, sizeof(size_t), "batch", err);
    bt->id_off = gtr_xcalloc(cap + 1, sizeof(size_t), "batch", err);
    bt->snip_len = gtr_xcalloc(cap, sizeof(size_t), "batch", err);
    bt->line = gtr_xcalloc(cap, sizeof(uint64_t), "batch", err);
    bt->ptrs = gtr_xcalloc(cap, sizeof(char *), "batch", err);
    bt->lens = gtr_xcalloc(cap, sizeof(size_t), "batch", err);
    bt->vecs = gtr_xcalloc(cap * dim, sizeof(float), "batch", err);
    if (!bt->text_off || !bt->id_off || !bt->snip_len || !bt->line || !bt->ptrs || !bt->lens || !bt->vecs)
        return GTR_ERR_NOMEM;
    return GTR_OK;
}

static void batch_free(batch *bt)
{
    gtr_buf_free(&bt->text);
    gtr_buf_free(&bt->ids);
    free(bt->text_off);
    free(bt->id_off);
    free(bt->snip_len);
    free(bt->line);
    free(bt->ptrs);
    free(bt->lens);
    free(bt->vecs);
}

_Static_assert(GTR_IX_MAX_ID_BYTES == GTR_MAX_ID_BYTES, "the index stores every id gtr_id_problem accepts");

/* the first n bytes of s, cut back to a UTF-8 character boundary */
static size_t utf8_prefix(const char *s, size_t len, size_t n)
{
    if (n >= len) return len;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
    return n;
}

static gtr_status read_batch(builder *b, batch *bt, gtr_buf *passage, bool *eof, gtr_error *err)
{
    bt->n = 0;
    bt->text.len = bt->ids.len = 0;
    gtr_status st;
    while (bt->n < b->o.batch_size) {
        gtr_record rec;
        if (b->range && gtr_text_reader_offset(b->rd) >= b->range->end) {
            *eof = true; /* the next shard's first line */
            break;
        }
        if ((st = gtr_text_reader_next(b->rd, &rec, eof, err))) return st;
        if (*eof) break;
        b->lines_done = rec.line;
        if (!rec.is_object || !rec.id)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: document has no \"_id\" (expected "
                              "{\"_id\", \"title\", \"text\"})", b->corpus, rec.line);
        const char *bad = gtr_id_problem(rec.id, rec.id_len);
        if (bad) /* checked here, so that every later command can write the id */
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: document id \"%.*s\" %s (ids are written to "
                              "whitespace-separated TREC runs)", b->corpus, rec.line,
                              (int)GTR_MIN(rec.id_len, 200), rec.id, bad);
        uint64_t found;
        if ((st = gtr_ix_idset_add(&b->ids, rec.id, rec.id_len, rec.line, &found, err))) return st;
        if (found == 1)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: duplicate document id \"%.*s\" (already in "
                              "the base index); --replace replaces it", b->corpus, rec.line,
                              (int)GTR_MIN(rec.id_len, 200), rec.id);
        if (found)
            return gtr_seterr(err, GTR_ERR_FORMAT, "%s:%zu: duplicate document id \"%.*s\" (first on line %llu)",
                              b->corpus, rec.line, (int)GTR_MIN(rec.id_len, 200), rec.id,
                              (unsigned long long)(found - 1));
        if ((st = gtr_record_passage(&rec, passage, err))) return gtr_error_prefix(err, "%s", b->corpus);
        size_t i = bt->n++;
        bt->line[i] = rec.line;
        bt->snip_len[i] = utf8_prefix(passage->data, passage->len, b->o.snippet_bytes);
        if ((st = gtr_buf_append(&bt->text, passage->data, passage->len, err)) ||
            (st = gtr_buf_append(&bt->ids, rec.id, rec.id_len, err)))
            return st;
        bt->text_off[i + 1] = bt->text.len;
        bt->id_off[i + 1] = bt->ids.len;
    }
    return GTR_OK;
}

static gtr_status part_write(builder *b, const void *data, size_t len, gtr_error *err)
{
    if (len && fwrite(data, 1, len, b->part) != len)
        return gtr_seterr(err, GTR_ERR_IO, "%s: write failed: %s", b->part_path, strerror(errno));
    b->part_crc = gtr_crc32(b->part_crc, data, len);
    b->part_bytes += len;
    return GTR_OK;
}

static gtr_status encode_and_append(builder *b, batch *bt, gtr_error *err)
{
    size_t dim = (size_t)b->enc->dim;
    for (size_t i = 0; i < bt->n; i++) {
        bt->ptrs[i] = bt->text.data + bt->text_off[i];
        bt->lens[i] = bt->text_off[i + 1] - bt->text_off[i];
    }
    gtr_status st = b->enc->encode(b->enc->user, bt->ptrs, bt->lens, bt->n, bt->vecs, err);
    if (st) return gtr_error_prefix(err, "%s: encoding lines %llu-%llu", b->corpus,
                                    (unsigned long long)bt->line[0], (unsigned long long)bt->line[bt->n - 1]);
    static const uint8_t zero[4] = {0};
    for (size_t i = 0; i < bt->n; i++) {
        const float *v = bt->vecs + i * dim;
        for (size_t k = 0; k < dim; k++)
            if (!isfinite(v[k]))
                return gtr_seterr(err, GTR_ERR_INTERNAL, "%s:%llu: the encoder returned a non-finite value",
                                  b->corpus, (unsigned long long)bt->line[i]);
        size_t il = bt->id_off[i + 1] - bt->id_off[i], sl = bt->snip_len[i];
        uint8_t hdr[GTR_IX_REC_HEADER];
        gtr_ix_rec_header(hdr, il, sl, bt->line[i]);
        size_t pad = gtr_ix_rec_size(il, sl, dim) - GTR_IX_REC_HEADER - il - sl - dim * 4;
        if ((st = push_rec(b, b->part_bytes, err)) || (st = part_write(b, hdr, sizeof hdr, err)) ||
            (st = part_write(b, bt->ids.data + bt->id_off[i], il, err)) ||
            (st = part_write(b, bt->text.data + bt->text_off[i], sl, err)) ||
            (st = part_write(b, zero, pad, err)) || (st = part_write(b, v, dim * 4, err)))
            return st;
    }
    return GTR_OK;
}

/* ---- finishing */

static gtr_status meta_json(builder *b, char **out, gtr_error *err)
{
    static const char *compact_names[] = {"none", "f16", "int8"};
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)b->enc->fingerprint);
    json_t *model = json_object(), *root = json_object();
    if (!model || !root) goto oom;
    json_object_set_new(model, "description", json_string(b->enc->description ? b->enc->description : ""));
    json_object_set_new(model, "hint", b->o.model_hint ? json_string(b->o.model_hint) : json_null());
    json_object_set_new(model, "fingerprint", json_string(fp));
    json_object_set_new(model, "dim", json_integer(b->enc->dim));
    json_object_set_new(root, "format", json_string("gtr-index"));
    json_object_set_new(root, "model", model);
    model = NULL;
    json_object_set_new(root, "compact", json_string(compact_names[b->o.compact]));
    json_object_set_new(root, "snippet_bytes", json_integer((json_int_t)b->o.snippet_bytes));
    if (b->range && json_object_set_new(root, "shard", gtr_ix_range_json(b->range)) != 0) goto oom;
    *out = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!*out) goto oom;
    return GTR_OK;
oom:
    json_decref(model);
    json_decref(root);
    return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory (index metadata; is the model hint valid UTF-8?)");
}

static gtr_status finish(builder *b, gtr_error *err)
{
    size_t n_base = b->base ? gtr_index_count(b->base) : 0;
    if (n_base + b->n_docs == 0)
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: the corpus has no documents", b->corpus);
    gtr_status st = checkpoint(b, err); /* a crash while assembling resumes right here */
    if (st) return st;
    char *meta = NULL;
    if ((st = meta_json(b, &meta, err))) return st;
    /* replaced documents: the base's, and with replace each live base document whose id a new
     * one has (the id set then holds exactly the new documents' ids) */
    size_t n_all = n_base + b->n_docs, n_dead = 0, replaced = 0;
    uint8_t *dead = NULL;
    if (b->base && (b->o.replace || gtr_index_replaced_count(b->base))) {
        if (!(dead = gtr_xcalloc((n_all + 7) / 8, 1, "replaced documents", err))) {
            free(meta);
            return GTR_ERR_NOMEM;
        }
        for (size_t i = 0; i < n_base; i++) {
            size_t len;
            const char *id = gtr_index_doc_id(b->base, i, &len);
            bool gone = !gtr_index_doc_live(b->base, i);
            if (!gone && b->o.replace && gtr_ix_idset_has(&b->ids, id, len)) {
                gone = true;
                replaced++;
            }
            if (gone) {
                dead[i >> 3] |= (uint8_t)(1u << (i & 7));
                n_dead++;
            }
        }
        if (!n_dead) {
            free(dead);
            dead = NULL;
        }
    }
    gtr_mmap m = {0};
    if (b->n_docs && (st = gtr_mmap_open(b->part_path, &m, err))) {
        free(meta);
        free(dead);
        return st;
    }
    gtr_ix_assembly a = {b->base, m.data, b->rec_off, b->n_docs, (uint32_t)b->enc->dim,
                         b->enc->fingerprint, (uint32_t)b->o.compact, meta, dead};
    gtr_ix_writer w;
    st = gtr_ix_assemble(&w, b->out, &a, err);
    gtr_mmap_close(&m);
    free(meta);
    free(dead);
    if (st) return st;
    /* the checkpoint goes first: once the index is in place, no checkpoint may point at work
     * that is already part of it (a later run would add it twice); a crash in between only
     * costs a rebuild */
    unlink(b->ckpt_path);
    b->have_ckpt = false;
    if ((st = gtr_ix_writer_commit(&w, err))) return st;
    unlink(b->part_path);
    b->stats->docs_total = n_base + b->n_docs;
    b->stats->docs_base = n_base;
    b->stats->docs_encoded = b->n_docs - b->stats->docs_resumed;
    b->stats->docs_replaced = replaced;
    return GTR_OK;
}

/* ---- the build */

static gtr_status run(builder *b, gtr_error *err)
{
    gtr_status st;
    size_t dim = (size_t)b->enc->dim;
    if (b->base) {
        if ((size_t)gtr_index_dim(b->base) != dim || gtr_index_fingerprint(b->base) != b->enc->fingerprint)
            return gtr_seterr(err, GTR_ERR_MISMATCH,
                              "%s: the base index was built with another model (fingerprint %016llx, "
                              "dim %d; this model: %016llx, dim %zu)", b->out,
                              (unsigned long long)gtr_index_fingerprint(b->base), gtr_index_dim(b->base),
                              (unsigned long long)b->enc->fingerprint, dim);
        const uint8_t *hdr = b->base->map.data;
        b->base_id = gtr_fnv1a64(hdr, GTR_IX_HEADER_BYTES + (size_t)GTR_IX_ENTRY_BYTES * b->base->h.n_sections,
                                 GTR_FNV_SEED) | 1;
        if ((st = register_base_ids(b, err))) return st;
    }
    b->corpus_fd = open(b->corpus, O_RDONLY | O_CLOEXEC);
    if (b->corpus_fd < 0)
        return gtr_seterr(err, errno == ENOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_IO, "%s: cannot open: %s",
                          b->corpus, strerror(errno));
    if (!(b->rd = gtr_text_reader_open(b->corpus, GTR_TEXT_JSONL, err))) return err ? err->code : GTR_ERR_IO;
    b->part_fd = open(b->part_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (b->part_fd < 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: cannot create: %s", b->part_path, strerror(errno));
    if (flock(b->part_fd, LOCK_EX | LOCK_NB) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: another build is writing this index (it holds %s)",
                          b->out, b->part_path);
    b->locked = true;
    /* the only writer of this index now: temporary files of a killed build are stale */
    gtr_remove_stale_tmp(b->ckpt_path);
    gtr_remove_stale_tmp(b->out);
    if ((st = try_resume(b, err))) return st;
    if (lseek(b->part_fd, (off_t)b->part_bytes, SEEK_SET) < 0 || !(b->part = fdopen(b->part_fd, "r+b")))
        return gtr_seterr(err, GTR_ERR_IO, "%s: cannot write: %s", b->part_path, strerror(errno));
    if (fseeko(b->part, (off_t)b->part_bytes, SEEK_SET) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: seek failed: %s", b->part_path, strerror(errno));
    if (b->range) {
        b->corpus_lines = b->range->lines;
        if (!b->have_ckpt && (st = gtr_text_reader_seek(b->rd, b->range->begin, (size_t)b->range->first_line, err)))
            return st;
    } else if (b->o.progress && (st = count_lines(b, err))) {
        return st;
    }

    batch bt;
    gtr_buf passage = {0};
    if ((st = batch_alloc(&bt, b->o.batch_size, dim, err))) goto out;
    bool eof = false;
    while (!eof) {
        if ((st = read_batch(b, &bt, &passage, &eof, err))) goto out;
        if (bt.n == 0) break;
        if ((st = encode_and_append(b, &bt, err))) goto out;
        if (b->o.progress && b->o.progress(b->o.progress_user, b->n_docs, GTR_MAX(b->corpus_lines, b->n_docs))) {
            if ((st = checkpoint(b, err))) goto out;
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "%s: interrupted after %zu documents (checkpoint "
                            "saved: run the same command again to resume)", b->out, b->n_docs);
            goto out;
        }
        if (b->n_docs - b->docs_at_ckpt >= b->o.checkpoint_every && (st = checkpoint(b, err))) goto out;
    }
    st = finish(b, err);
out:
    batch_free(&bt);
    gtr_buf_free(&passage);
    return st;
}

gtr_status gtr_index_build_with(const gtr_index_encoder *enc, const char *corpus, const char *base,
                                const char *out_path, const gtr_index_build_options *opts,
                                gtr_index_build_stats *stats, gtr_error *err)
{
    return gtr_ix_build_range(enc, corpus, base, NULL, out_path, opts, stats, err);
}

gtr_status gtr_ix_build_range(const gtr_index_encoder *enc, const char *corpus, const char *base,
                              const gtr_ix_range *range, const char *out_path,
                              const gtr_index_build_options *opts, gtr_index_build_stats *stats,
                              gtr_error *err)
{
    if (!enc || !enc->encode || !corpus || !out_path)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_build: missing argument");
    if (enc->dim <= 0 || (unsigned)enc->dim > GTR_IX_MAX_DIM)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_build: bad dimension %d", enc->dim);
    if (strcmp(corpus, "-") == 0)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "the corpus must be a file (a resumable build seeks in it)");
    gtr_index_build_stats dummy;
    builder b;
    memset(&b, 0, sizeof b);
    b.stats = stats ? stats : &dummy;
    memset(b.stats, 0, sizeof *b.stats);
    b.enc = enc;
    b.o = gtr_index_default_build_options();
    if (gtr_options_take(&b.o, sizeof b.o, opts, "gtr_index_build", err)) return GTR_ERR_INVALID_ARG;
    if (b.o.batch_size == 0) b.o.batch_size = 32;
    if (b.o.checkpoint_every == 0) b.o.checkpoint_every = 1024;
    if ((unsigned)b.o.compact > GTR_COMPACT_INT8)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_build: unknown compact kind %d", (int)b.o.compact);
    if (b.o.snippet_bytes > (1u << 20))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_build: snippet length over 1 MiB");
    b.corpus = corpus;
    b.out = out_path;
    b.range = range;
    if (range) {
        b.crc_off = range->begin;
        /* the checkpoint's "base" identity: this shard's place in the corpus */
        uint64_t pos[3] = {range->begin, range->end, range->first_line};
        b.base_id = gtr_fnv1a64(pos, sizeof pos, GTR_FNV_SEED) | 1;
    }
    b.part_fd = b.corpus_fd = -1;
    gtr_ix_idset_init(&b.ids);
    b.part_path = gtr_path_suffixed(out_path, ".partial", NULL);
    b.ckpt_path = gtr_path_suffixed(out_path, ".ckpt", NULL);
    gtr_status st;
    if (!b.part_path || !b.ckpt_path) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (base && !(b.base = gtr_index_open(base, 0, NULL, err))) {
        st = err ? err->code : GTR_ERR_FORMAT;
        goto out;
    }
    st = run(&b, err);
    /* failed before any checkpoint existed: leave nothing behind */
    if (st && !b.have_ckpt && b.locked) unlink(b.part_path);
out:
    if (b.part) fclose(b.part);
    else if (b.part_fd >= 0) close(b.part_fd);
    if (b.corpus_fd >= 0) close(b.corpus_fd);
    gtr_text_reader_close(b.rd);
    gtr_index_free(b.base);
    gtr_ix_idset_free(&b.ids);
    free(b.rec_off);
    free(b.part_path);
    free(b.ckpt_path);
    return st;
}

static gtr_status model_encode(void *user, const char *const *texts, const size_t *lens, size_t n,
                               float *out, gtr_error *err)
{
    return gtr_model_encode(user, texts, lens, n, out, err);
}

gtr_status gtr_index_build(gtr_model *model, const char *corpus, const char *base, const char *out_path,
                           const gtr_index_build_options *opts, gtr_index_build_stats *stats, gtr_error *err)
{
    if (!model) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_build: no model");
    if (!gtr_model_has_fingerprint(model))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG,
                          "gtr_index_build: the model was loaded with no_fingerprint, and an index records "
                          "its model's fingerprint: load it without that option");
    /* the description minus its "compute:" and "memory to load:" lines (threads, kernels,
     * batch: how this process runs the model, not which model it is), so the index does not
     * depend on the machine or --batch */
    const char *d = gtr_model_describe(model);
    gtr_buf desc = {0};
    gtr_status st = GTR_OK;
    while (d && *d && !st) {
        const char *nl = strchr(d, '\n');
        size_t len = nl ? (size_t)(nl - d) + 1 : strlen(d);
        if (strncmp(d, "compute:", 8) != 0 && strncmp(d, "memory to load:", 15) != 0)
            st = gtr_buf_append(&desc, d, len, err);
        d += len;
    }
    while (!st && desc.len && desc.data[desc.len - 1] == '\n') desc.data[--desc.len] = '\0';
    gtr_index_encoder enc = {model_encode, model, gtr_model_dim(model), gtr_model_fingerprint(model),
                             desc.data ? desc.data : ""};
    if (!st) st = gtr_index_build_with(&enc, corpus, base, out_path, opts, stats, err);
    gtr_buf_free(&desc);
    return st;
}
