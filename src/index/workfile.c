/* workfile.c — records of the partial file and the checkpoint of a resumable build. */
#include "index/workfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CKPT_MAGIC "GTRCKPT1"
#define CKPT_BYTES 128u

size_t gtr_ix_rec_size(size_t id_len, size_t snip_len, size_t dim)
{
    return (GTR_IX_REC_HEADER + id_len + snip_len + 3) / 4 * 4 + dim * 4;
}

void gtr_ix_rec_header(uint8_t out[GTR_IX_REC_HEADER], size_t id_len, size_t snip_len, uint64_t line)
{
    gtr_ix_wr32(out, (uint32_t)id_len);
    gtr_ix_wr32(out + 4, (uint32_t)snip_len);
    gtr_ix_wr64(out + 8, line);
}

bool gtr_ix_rec_parse(const uint8_t *p, size_t avail, size_t dim, gtr_ix_rec *r)
{
    if (avail < GTR_IX_REC_HEADER) return false;
    uint32_t il = gtr_ix_rd32(p), sl = gtr_ix_rd32(p + 4);
    if (il == 0 || il > GTR_IX_MAX_ID_BYTES || sl > avail) return false;
    size_t size = gtr_ix_rec_size(il, sl, dim);
    if (size > avail) return false;
    r->id = (const char *)p + GTR_IX_REC_HEADER;
    r->id_len = il;
    r->snip = r->id + il;
    r->snip_len = sl;
    r->line = gtr_ix_rd64(p + 8);
    r->vec = (const float *)(const void *)(p + size - dim * 4);
    r->size = size;
    return true;
}

gtr_status gtr_ix_ckpt_write(const char *path, const gtr_ix_ckpt *c, gtr_error *err)
{
    uint8_t b[CKPT_BYTES] = {0};
    memcpy(b, CKPT_MAGIC, 8);
    gtr_ix_wr32(b + 8, 1);
    gtr_ix_wr32(b + 12, c->dim);
    gtr_ix_wr64(b + 16, c->fingerprint);
    gtr_ix_wr64(b + 24, c->docs);
    gtr_ix_wr64(b + 32, c->partial_bytes);
    gtr_ix_wr32(b + 40, c->partial_crc);
    gtr_ix_wr32(b + 44, c->corpus_crc);
    gtr_ix_wr64(b + 48, c->corpus_offset);
    gtr_ix_wr64(b + 56, c->corpus_line);
    gtr_ix_wr64(b + 64, c->base_id);
    gtr_ix_wr64(b + 72, c->snippet_bytes);
    gtr_ix_wr32(b + 124, gtr_crc32(0, b, 124));
    return gtr_write_file_atomic(path, b, sizeof b, err);
}

gtr_status gtr_ix_ckpt_read(const char *path, gtr_ix_ckpt *c, gtr_error *err)
{
    char *d;
    size_t n;
    gtr_status st = gtr_read_file(path, 4096, &d, &n, err);
    if (st) return st == GTR_ERR_NOT_FOUND ? st : gtr_seterr(err, GTR_ERR_FORMAT, "%s: unreadable", path);
    const uint8_t *b = (const uint8_t *)d;
    if (n != CKPT_BYTES || memcmp(b, CKPT_MAGIC, 8) != 0 || gtr_ix_rd32(b + 8) != 1 ||
        gtr_crc32(0, b, 124) != gtr_ix_rd32(b + 124)) {
        free(d);
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: damaged checkpoint", path);
    }
    c->dim = gtr_ix_rd32(b + 12);
    c->fingerprint = gtr_ix_rd64(b + 16);
    c->docs = gtr_ix_rd64(b + 24);
    c->partial_bytes = gtr_ix_rd64(b + 32);
    c->partial_crc = gtr_ix_rd32(b + 40);
    c->corpus_crc = gtr_ix_rd32(b + 44);
    c->corpus_offset = gtr_ix_rd64(b + 48);
    c->corpus_line = gtr_ix_rd64(b + 56);
    c->base_id = gtr_ix_rd64(b + 64);
    c->snippet_bytes = gtr_ix_rd64(b + 72);
    free(d);
    return GTR_OK;
}

gtr_status gtr_ix_fd_crc(int fd, const char *path, uint64_t from, uint64_t to, uint32_t *crc,
                         gtr_error *err)
{
    static const size_t CH = 1 << 16;
    uint8_t buf[1 << 16];
    while (from < to) {
        size_t want = (size_t)GTR_MIN((uint64_t)CH, to - from);
        ssize_t r = pread(fd, buf, want, (off_t)from);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0)
            return gtr_seterr(err, GTR_ERR_IO, "%s: read failed: %s", path, r < 0 ? strerror(errno) : "file is shorter than expected");
        *crc = gtr_crc32(*crc, buf, (size_t)r);
        from += (uint64_t)r;
    }
    return GTR_OK;
}
