/* shards.c — sharded indexes (issue 18): a corpus cut into n pieces at line starts, each
 * piece built into an ordinary index file "INDEX.shard-I-of-N" by its own process (reading
 * only its bytes), and a manifest at INDEX naming them, opened by gtr_index_open as one index.
 *
 * Manifest (text, every line ending in "\n"; the last line is the CRC-32 of all before it):
 *   gtr-sharded-index 1
 *   documents N
 *   dim D
 *   fingerprint %016llx
 *   compact K
 *   shards S
 *   shard I DOCS BYTES HEADERCRC NAME     (S lines, I = 0..S-1; NAME beside the manifest)
 *   crc %08x
 * HEADERCRC is the shard's own header checksum (bytes 124..127), which covers its size and
 * the checksum of every chunk of its sections: a shard replaced by another build's is
 * refused, not mixed in. A manifest opened as one index copies the shards' ids, snippets and
 * vectors into one allocation in shard order: the same documents, order and bits as the
 * single-file build, searched by the same code. One shard is used in place (mapped). */
#include "index/workfile.h"

#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAGIC "gtr-sharded-index "
#define MAX_SHARDS 65536
#define MAX_MANIFEST_BYTES (64u << 20)

/* ---- corpus pieces ------------------------------------------------------------------------ */

/* the first line start at or after size * i / n */
static gtr_status boundary(int fd, const char *path, uint64_t size, int i, int n, uint64_t *at, gtr_error *err)
{
    uint64_t off = size / (uint64_t)n * (uint64_t)i + size % (uint64_t)n * (uint64_t)i / (uint64_t)n;
    if (off == 0 || off >= size) {
        *at = off;
        return GTR_OK;
    }
    char buf[1 << 14];
    uint64_t pos = off - 1; /* a line starts at off when the byte before it ends one */
    for (;;) {
        size_t got;
        gtr_status st = gtr_pread_all(fd, path, buf, sizeof buf, pos, &got, err);
        if (st) return st;
        if (got == 0) {
            *at = size;
            return GTR_OK;
        }
        const char *nl = memchr(buf, '\n', got);
        if (nl) {
            *at = pos + (uint64_t)(nl - buf) + 1;
            return GTR_OK;
        }
        pos += got;
    }
}

/* lines and CRC-32 of [begin, end) */
static gtr_status scan(int fd, const char *path, uint64_t begin, uint64_t end, uint64_t *lines, uint32_t *crc,
                       gtr_error *err)
{
    enum { CHUNK = 1 << 16 };
    char *b = malloc(CHUNK);
    if (!b) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    *lines = 0;
    uint32_t c = 0;
    char last = '\n';
    gtr_status st = GTR_OK;
    for (uint64_t pos = begin; pos < end && !st;) {
        size_t got, want = (size_t)GTR_MIN((uint64_t)CHUNK, end - pos);
        if ((st = gtr_pread_all(fd, path, b, want, pos, &got, err))) break;
        if (got < want) {
            st = gtr_seterr(err, GTR_ERR_IO, "%s: the file shrank while being read", path);
            break;
        }
        for (const char *p = b; (p = memchr(p, '\n', (size_t)(b + got - p))); p++) ++*lines;
        c = gtr_crc32(c, b, got);
        last = b[got - 1];
        pos += got;
    }
    free(b);
    if (last != '\n') ++*lines;
    *crc = c;
    return st;
}

static gtr_status range_of(const char *corpus, int shard, int n_shards, bool with_crc, gtr_ix_range *r, gtr_error *err)
{
    memset(r, 0, sizeof *r);
    if (n_shards < 1 || n_shards > MAX_SHARDS || shard < 0 || shard >= n_shards)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "shard %d of %d: need 0 <= shard < shards <= %d", shard, n_shards,
                          MAX_SHARDS);
    if (!strcmp(corpus, "-"))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "the corpus must be a file (shards are byte ranges of it)");
    int fd = open(corpus, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gtr_seterr(err, errno == ENOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_IO, "%s: cannot open: %s", corpus,
                          strerror(errno));
    struct stat s;
    gtr_status st = GTR_OK;
    if (fstat(fd, &s) != 0) st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot stat: %s", corpus, strerror(errno));
    r->shard = shard;
    r->n_shards = n_shards;
    r->corpus_bytes = st ? 0 : (uint64_t)s.st_size;
    if (!st) st = boundary(fd, corpus, r->corpus_bytes, shard, n_shards, &r->begin, err);
    if (!st) st = boundary(fd, corpus, r->corpus_bytes, shard + 1, n_shards, &r->end, err);
    uint32_t crc = 0;
    if (!st && r->end <= r->begin)
        st = gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: shard %d of %d would have no documents (%llu bytes cut into "
                        "%d pieces at line starts): use fewer shards", corpus, shard, n_shards,
                        (unsigned long long)r->corpus_bytes, n_shards);
    if (!st) st = scan(fd, corpus, r->begin, r->end, &r->lines, with_crc ? &crc : &(uint32_t){0}, err);
    r->corpus_crc = crc;
    close(fd);
    return st;
}

gtr_status gtr_index_shard_range(const char *corpus, int shard, int n_shards, uint64_t *begin, uint64_t *end,
                                 uint64_t *lines, gtr_error *err)
{
    gtr_ix_range r;
    if (!corpus) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_shard_range: no corpus");
    gtr_status st = range_of(corpus, shard, n_shards, false, &r, err);
    if (begin) *begin = r.begin;
    if (end) *end = r.end;
    if (lines) *lines = r.lines;
    return st;
}

json_t *gtr_ix_range_json(const gtr_ix_range *r)
{
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", r->corpus_crc);
    return json_pack("{s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:s}", "index", r->shard, "of", r->n_shards, "begin",
                     (json_int_t)r->begin, "end", (json_int_t)r->end, "first_line", (json_int_t)r->first_line,
                     "lines", (json_int_t)r->lines, "corpus_bytes", (json_int_t)r->corpus_bytes, "corpus_crc", crc);
}

static char *shard_path(const char *index_path, int shard, int n_shards)
{
    size_t n = strlen(index_path) + 48;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s.shard-%d-of-%d", index_path, shard, n_shards);
    return p;
}

/* META's JSON of an open index file (new reference), NULL if none */
static json_t *meta_of(const gtr_index *ix)
{
    for (uint32_t i = 0; i < ix->h.n_sections; i++)
        if (ix->h.sections[i].kind == GTR_IX_META && ix->map.data)
            return json_loadb((const char *)ix->map.data + ix->h.sections[i].offset, (size_t)ix->h.sections[i].size, 0,
                              NULL);
    return NULL;
}

gtr_status gtr_index_build_shard(const gtr_index_encoder *enc, const char *corpus, int shard, int n_shards,
                                 uint64_t first_line, const char *index_path, const gtr_index_build_options *opts,
                                 gtr_index_build_stats *stats, gtr_error *err)
{
    if (!enc || !corpus || !index_path) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_build_shard: missing argument");
    gtr_index_build_options o = gtr_index_default_build_options();
    if (gtr_options_take(&o, sizeof o, opts, "gtr_index_build_shard", err)) return GTR_ERR_INVALID_ARG;
    gtr_ix_range r;
    gtr_status st = range_of(corpus, shard, n_shards, true, &r, err);
    if (st) return st;
    r.first_line = first_line;
    char *path = shard_path(index_path, shard, n_shards);
    if (!path) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    /* a shard finished by an earlier run from the same bytes, encoder and options is kept */
    struct stat s;
    if (!o.no_resume && stat(path, &s) == 0) {
        gtr_error e2;
        gtr_index *old = gtr_index_open(path, 0, NULL, &e2);
        json_t *meta = old ? meta_of(old) : NULL, *want = gtr_ix_range_json(&r);
        bool same = meta && want && json_equal(json_object_get(meta, "shard"), want) &&
                    old->h.fingerprint == enc->fingerprint && old->dim == (size_t)enc->dim &&
                    old->h.compact == (uint32_t)o.compact &&
                    json_integer_value(json_object_get(meta, "snippet_bytes")) == (json_int_t)o.snippet_bytes;
        json_decref(meta);
        json_decref(want);
        if (same) {
            if (stats) {
                memset(stats, 0, sizeof *stats);
                stats->docs_total = stats->docs_resumed = old->n;
                snprintf(stats->note, sizeof stats->note, "kept the finished shard %s", path);
            }
            gtr_index_free(old);
            free(path);
            return GTR_OK;
        }
        gtr_index_free(old);
    }
    st = gtr_ix_build_range(enc, corpus, NULL, &r, path, &o, stats, err);
    free(path);
    return st;
}

/* ---- the manifest ------------------------------------------------------------------------- */

typedef struct shard_entry {
    uint64_t docs, bytes;
    uint32_t hcrc;
    char *name;
} shard_entry;

typedef struct manifest {
    uint64_t docs;
    uint32_t dim, compact;
    uint64_t fingerprint;
    int n;
    shard_entry *s;
} manifest;

static void manifest_free(manifest *m)
{
    for (int i = 0; m->s && i < m->n; i++) free(m->s[i].name);
    free(m->s);
    memset(m, 0, sizeof *m);
}

bool gtr_ix_is_manifest(const char *path)
{
    char buf[sizeof MANIFEST_MAGIC - 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t got = 0;
    bool ok = !gtr_pread_all(fd, path, buf, sizeof buf, 0, &got, NULL) && got == sizeof buf &&
              !memcmp(buf, MANIFEST_MAGIC, sizeof buf);
    close(fd);
    return ok;
}

static bool name_ok(const char *s)
{
    if (!*s || strlen(s) > 4096 || !strcmp(s, ".") || !strcmp(s, "..")) return false;
    for (; *s; s++)
        if (*s == '/' || (unsigned char)*s <= ' ') return false;
    return true;
}

#define MBAD(...) gtr_seterr(err, GTR_ERR_FORMAT, __VA_ARGS__)

static gtr_status manifest_read(const char *path, manifest *m, gtr_error *err)
{
    memset(m, 0, sizeof *m);
    gtr_mmap map;
    gtr_status st = gtr_mmap_open(path, &map, err);
    if (st) return st;
    char *text = NULL;
    if (map.size > MAX_MANIFEST_BYTES) {
        st = MBAD("%s: not a sharded-index manifest (%zu bytes)", path, map.size);
        goto out;
    }
    if (!(text = malloc(map.size + 1))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (map.size) memcpy(text, map.data, map.size);
    text[map.size] = '\0';
    /* the checksum line: "crc XXXXXXXX\n" at the very end, covering everything before it */
    size_t body = map.size >= 13 ? map.size - 13 : 0;
    unsigned crc;
    char tail;
    if (map.size < 13 || strlen(text) != map.size || sscanf(text + body, "crc %8x%c", &crc, &tail) != 2 ||
        tail != '\n' || (body && text[body - 1] != '\n')) {
        st = MBAD("%s: truncated or damaged sharded-index manifest (no checksum line at its end)", path);
        goto out;
    }
    if (gtr_crc32(0, text, body) != crc) {
        st = MBAD("%s: damaged sharded-index manifest (checksum mismatch)", path);
        goto out;
    }
    text[body] = '\0';
    unsigned version;
    unsigned long long docs, fp;
    int used = 0;
    if (sscanf(text, MANIFEST_MAGIC "%u\ndocuments %llu\ndim %u\nfingerprint %16llx\ncompact %u\nshards %d\n%n",
               &version, &docs, &m->dim, &fp, &m->compact, &m->n, &used) != 6 || !used) {
        st = MBAD("%s: damaged sharded-index manifest (header lines)", path);
        goto out;
    }
    if (version != 1) {
        st = gtr_seterr(err, GTR_ERR_UNSUPPORTED, "%s: sharded-index manifest version %u is not supported (this gtr "
                        "reads version 1)", path, version);
        goto out;
    }
    m->docs = docs;
    m->fingerprint = fp;
    if (m->n < 1 || m->n > MAX_SHARDS || m->dim == 0 || m->dim > GTR_IX_MAX_DIM || m->compact > GTR_COMPACT_INT8) {
        st = MBAD("%s: damaged sharded-index manifest (%d shards, dim %u, compact %u)", path, m->n, m->dim, m->compact);
        m->n = 0;
        goto out;
    }
    if (!(m->s = calloc((size_t)m->n, sizeof *m->s))) {
        st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *p = text + used;
    uint64_t total = 0;
    for (int i = 0; i < m->n; i++) {
        int idx, n = 0;
        unsigned long long d, b;
        unsigned h;
        char name[4097];
        if (sscanf(p, "shard %d %llu %llu %8x %4096s%n", &idx, &d, &b, &h, name, &n) != 5 || idx != i || p[n] != '\n' ||
            !name_ok(name) || d == 0 || d > UINT64_MAX - total) {
            st = MBAD("%s: damaged sharded-index manifest (the line of shard %d)", path, i);
            goto out;
        }
        m->s[i] = (shard_entry){d, b, h, strdup(name)};
        if (!m->s[i].name) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            goto out;
        }
        total += d;
        p += n + 1;
    }
    if (*p || total != m->docs) st = MBAD("%s: damaged sharded-index manifest (shard lines do not add up)", path);
out:
    if (st) manifest_free(m);
    free(text);
    gtr_mmap_close(&map);
    return st;
}

/* the shard file named name, beside the manifest at path */
static char *beside(const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0, n = strlen(name);
    char *s = malloc(dir + n + 1);
    if (s) {
        memcpy(s, path, dir);
        memcpy(s + dir, name, n + 1);
    }
    return s;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

gtr_status gtr_index_write_manifest(const char *corpus, const char *index_path, int n_shards, gtr_error *err)
{
    if (!corpus || !index_path || n_shards < 1 || n_shards > MAX_SHARDS)
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_write_manifest: missing argument or bad shard count");
    struct stat cs;
    if (stat(corpus, &cs) != 0)
        return gtr_seterr(err, errno == ENOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_IO, "%s: cannot stat: %s", corpus,
                          strerror(errno));
    gtr_buf out = {0};
    gtr_ix_idset ids;
    gtr_ix_idset_init(&ids);
    gtr_status st = GTR_OK;
    uint64_t docs = 0, next_begin = 0, fp = 0;
    uint32_t dim = 0, compact = 0;
    char line[4200];
    for (int i = 0; i < n_shards && !st; i++) {
        char *path = shard_path(index_path, i, n_shards);
        if (!path) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            break;
        }
        gtr_index *ix = gtr_index_open(path, GTR_INDEX_OPEN_NO_VERIFY, NULL, err);
        json_t *meta = ix ? meta_of(ix) : NULL, *sh = json_object_get(meta, "shard");
        if (!ix) {
            st = err ? err->code : GTR_ERR_FORMAT;
        } else if (!sh || json_integer_value(json_object_get(sh, "index")) != i ||
                   json_integer_value(json_object_get(sh, "of")) != n_shards ||
                   (uint64_t)json_integer_value(json_object_get(sh, "begin")) != next_begin ||
                   (uint64_t)json_integer_value(json_object_get(sh, "corpus_bytes")) != (uint64_t)cs.st_size ||
                   (i == n_shards - 1 && (uint64_t)json_integer_value(json_object_get(sh, "end")) != (uint64_t)cs.st_size) ||
                   (uint64_t)json_integer_value(json_object_get(sh, "lines")) != ix->n) {
            st = MBAD("%s: not shard %d of %d of %s as it is now (rebuild the shards)", path, i, n_shards, corpus);
        } else if (i && (ix->h.fingerprint != fp || ix->h.dim != dim || ix->h.compact != compact)) {
            st = gtr_seterr(err, GTR_ERR_MISMATCH, "%s: built with another model or compact kind than shard 0", path);
        } else {
            fp = ix->h.fingerprint, dim = ix->h.dim, compact = ix->h.compact;
            next_begin = (uint64_t)json_integer_value(json_object_get(sh, "end"));
            uint64_t line0 = (uint64_t)json_integer_value(json_object_get(sh, "first_line"));
            for (size_t d = 0; d < ix->n && !st; d++) {
                size_t len;
                const char *id = gtr_index_doc_id(ix, d, &len);
                uint64_t found;
                if ((st = gtr_ix_idset_add(&ids, id, len, line0 + d + 1, &found, err))) break;
                if (found)
                    st = MBAD("%s:%llu: duplicate document id \"%.*s\" (first on line %llu)", corpus,
                              (unsigned long long)(line0 + d + 1), (int)GTR_MIN(len, 200), id,
                              (unsigned long long)(found - 1));
            }
            docs += ix->n;
            snprintf(line, sizeof line, "shard %d %llu %llu %08x %s\n", i, (unsigned long long)ix->n,
                     (unsigned long long)ix->map.size, gtr_ix_rd32(ix->map.data + 124), base_name(path));
            if (!st) st = gtr_buf_append(&out, line, strlen(line), err);
        }
        json_decref(meta);
        gtr_index_free(ix);
        free(path);
    }
    gtr_ix_idset_free(&ids);
    gtr_buf head = {0};
    if (!st) {
        snprintf(line, sizeof line, MANIFEST_MAGIC "1\ndocuments %llu\ndim %u\nfingerprint %016llx\ncompact %u\nshards %d\n",
                 (unsigned long long)docs, dim, (unsigned long long)fp, compact, n_shards);
        st = gtr_buf_append(&head, line, strlen(line), err);
        if (!st) st = gtr_buf_append(&head, out.data, out.len, err);
        if (!st) {
            snprintf(line, sizeof line, "crc %08x\n", gtr_crc32(0, head.data, head.len));
            st = gtr_buf_append(&head, line, strlen(line), err);
        }
        if (!st) st = gtr_write_file_atomic(index_path, head.data, head.len, err);
    }
    gtr_buf_free(&head);
    gtr_buf_free(&out);
    return st;
}

/* ---- opening ------------------------------------------------------------------------------ */

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

/* one index over the open shards parts[0..n) (n >= 2), everything copied into one block */
static gtr_index *concat(const char *path, gtr_index **parts, int n, const manifest *m, gtr_error *err)
{
    size_t docs = 0, idb = 0, snb = 0, dim = m->dim;
    for (int i = 0; i < n; i++) {
        docs += parts[i]->n;
        idb += (size_t)parts[i]->id_off[parts[i]->n];
        snb += (size_t)parts[i]->snip_off[parts[i]->n];
    }
    size_t row = m->compact ? gtr_ix_compact_row_bytes(m->compact, dim) : 0, vb, cb;
    gtr_index *ix = gtr_xcalloc(1, sizeof *ix, "index", err);
    if (!ix) return NULL;
    if (!gtr_mul_ok(docs, dim * 4, &vb) || !gtr_mul_ok(docs, row, &cb)) {
        gtr_seterr(err, GTR_ERR_NOMEM, "%s: index too large for this machine", path);
        free(ix);
        return NULL;
    }
    size_t o_vec = 0, o_cmp = up64(vb), o_aux = o_cmp + up64(cb), o_ido = o_aux + up64(m->compact ? docs * 12 : 0),
           o_sno = o_ido + (docs + 1) * 8, o_idb = o_sno + (docs + 1) * 8, o_snb = o_idb + idb, total = o_snb + snb + 1;
    uint8_t *blk = NULL;
    if (posix_memalign((void **)&blk, 64, total) != 0) blk = NULL;
    ix->path = strdup(path);
    ix->model_desc = strdup(parts[0]->model_desc ? parts[0]->model_desc : "");
    ix->model_hint = parts[0]->model_hint ? strdup(parts[0]->model_hint) : NULL;
    ix->owned = blk;
    if (!blk || !ix->path || !ix->model_desc || (parts[0]->model_hint && !ix->model_hint)) {
        gtr_index_free(ix);
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory for the %zu documents of %s", docs, path);
        return NULL;
    }
    uint64_t *ido = (uint64_t *)(void *)(blk + o_ido), *sno = (uint64_t *)(void *)(blk + o_sno);
    size_t at = 0, ib = 0, sb = 0;
    ido[0] = sno[0] = 0;
    for (int i = 0; i < n; i++) {
        const gtr_index *p = parts[i];
        memcpy(blk + o_vec + at * dim * 4, p->vectors, p->n * dim * 4);
        if (row) {
            memcpy(blk + o_cmp + at * row, p->compact, p->n * row);
            memcpy(blk + o_aux + at * 12, p->caux, p->n * 12);
        }
        size_t pi = (size_t)p->id_off[p->n], ps = (size_t)p->snip_off[p->n];
        memcpy(blk + o_idb + ib, p->id_bytes, pi);
        memcpy(blk + o_snb + sb, p->snip_bytes, ps);
        for (size_t d = 1; d <= p->n; d++) {
            ido[at + d] = ib + p->id_off[d];
            sno[at + d] = sb + p->snip_off[d];
        }
        at += p->n, ib += pi, sb += ps;
    }
    ix->n = docs;
    ix->dim = dim;
    ix->h.version = GTR_IX_VERSION;
    ix->h.n_docs = docs;
    ix->h.dim = m->dim;
    ix->h.fingerprint = m->fingerprint;
    ix->h.compact = m->compact;
    ix->vectors = (const float *)(const void *)(blk + o_vec);
    ix->compact = row ? blk + o_cmp : NULL;
    ix->caux = row ? (const float *)(const void *)(blk + o_aux) : NULL;
    ix->id_off = ido;
    ix->id_bytes = (const char *)blk + o_idb;
    ix->snip_off = sno;
    ix->snip_bytes = (const char *)blk + o_snb;
    return ix;
}

static gtr_index *open_shards(const char *path, const manifest *m, int first, int end, unsigned flags, gtr_pool *pool,
                              gtr_error *err)
{
    int n = end - first;
    gtr_index **parts = calloc((size_t)n, sizeof *parts);
    gtr_index *ix = NULL;
    if (!parts) {
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    bool ok = true;
    for (int i = 0; ok && i < n; i++) {
        const shard_entry *e = &m->s[first + i];
        char *sp = beside(path, e->name);
        if (!sp) {
            gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            ok = false;
            break;
        }
        if (!(parts[i] = gtr_index_open(sp, flags, pool, err))) {
            gtr_error_prefix(err, "%s: shard %d of %d", path, first + i, m->n);
            ok = false;
        } else if (parts[i]->map.size != e->bytes || gtr_ix_rd32(parts[i]->map.data + 124) != e->hcrc ||
                   parts[i]->n != e->docs || parts[i]->h.fingerprint != m->fingerprint || parts[i]->h.dim != m->dim ||
                   parts[i]->h.compact != m->compact) {
            gtr_seterr(err, GTR_ERR_FORMAT, "%s: shard %d of %d (%s) is not the one this manifest was written with "
                       "(another build's?): rebuild the sharded index", path, first + i, m->n, sp);
            ok = false;
        }
        free(sp);
    }
    if (ok && n == 1) { /* in place */
        char *p = strdup(path);
        if (p) {
            ix = parts[0], parts[0] = NULL;
            free(ix->path);
            ix->path = p;
        } else {
            gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        }
    } else if (ok) {
        ix = concat(path, parts, n, m, err);
    }
    for (int i = 0; i < n; i++) gtr_index_free(parts[i]);
    free(parts);
    return ix;
}

gtr_index *gtr_ix_open_manifest(const char *path, int first, int end, unsigned flags, gtr_pool *pool,
                                gtr_error *err)
{
    manifest m;
    if (manifest_read(path, &m, err)) return NULL;
    if (end < 0) end = m.n;
    gtr_index *ix = NULL;
    if (first < 0 || first >= end || end > m.n)
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "%s: shards %d..%d of %d", path, first, end, m.n);
    else
        ix = open_shards(path, &m, first, end, flags, pool, err);
    manifest_free(&m);
    return ix;
}

gtr_status gtr_index_shard_count(const char *path, int *n_shards, gtr_error *err)
{
    if (!path || !n_shards) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_shard_count: missing argument");
    *n_shards = 0;
    if (!gtr_ix_is_manifest(path)) return GTR_OK;
    manifest m;
    gtr_status st = manifest_read(path, &m, err);
    if (!st) *n_shards = m.n;
    manifest_free(&m);
    return st;
}

gtr_index *gtr_index_open_part(const char *path, int part, int n_parts, unsigned flags, gtr_pool *pool, size_t *begin,
                               size_t *end, size_t *total, gtr_error *err)
{
    if (!path || n_parts < 1 || part < 0 || part >= n_parts) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_index_open_part: part %d of %d", part, n_parts);
        return NULL;
    }
    gtr_index *ix = NULL;
    size_t lo = 0, hi = 0, all = 0;
    if (!gtr_ix_is_manifest(path)) {
        if ((ix = gtr_index_open(path, flags, pool, err))) {
            all = ix->n;
            lo = all * (size_t)part / (size_t)n_parts;
            hi = all * (size_t)(part + 1) / (size_t)n_parts;
        }
    } else {
        manifest m;
        if (manifest_read(path, &m, err)) return NULL;
        size_t S = (size_t)m.n, P = (size_t)n_parts, p = (size_t)part;
        all = (size_t)m.docs;
        if (P <= S) { /* whole shards: part p gets [S p / P, S (p + 1) / P) */
            int a = (int)(S * p / P), b = (int)(S * (p + 1) / P);
            if ((ix = open_shards(path, &m, a, b, flags, pool, err))) hi = ix->n;
        } else { /* more parts than shards: the parts of one shard share its documents */
            size_t s = S * p / P, j = 0, cnt = 0;
            for (size_t q = 0; q < P; q++)
                if (S * q / P == s) {
                    if (q < p) j++;
                    cnt++;
                }
            if ((ix = open_shards(path, &m, (int)s, (int)s + 1, flags, pool, err))) {
                lo = ix->n * j / cnt;
                hi = ix->n * (j + 1) / cnt;
            }
        }
        manifest_free(&m);
    }
    if (begin) *begin = lo;
    if (end) *end = hi;
    if (total) *total = all;
    return ix;
}
