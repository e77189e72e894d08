/*
 * workfile.h — the two work files of a resumable build (build.c):
 *
 *  "<index>.partial": document records appended as they are encoded, each
 *      u32 id bytes, u32 snippet bytes, u64 corpus line, id, snippet, zeros to a multiple
 *      of 4, float32[dim]
 *  "<index>.ckpt": a 128-byte checkpoint, replaced atomically, naming how much of both the
 *      partial file and the corpus is done, with CRC-32s of those prefixes and the identity
 *      of everything the records depend on (encoder, base index, snippet length).
 *
 * The partial file is fsynced before each checkpoint, so a checkpoint never describes bytes
 * that are not on disk; bytes after the checkpoint (a crash mid-batch) are cut off on resume.
 */
#ifndef GTR_INDEX_WORKFILE_H
#define GTR_INDEX_WORKFILE_H

#include "index/index_internal.h"

typedef struct gtr_ix_rec {
    const char *id;
    size_t id_len;
    const char *snip;
    size_t snip_len;
    uint64_t line;
    const float *vec;
    size_t size; /* bytes of the whole record */
} gtr_ix_rec;

#define GTR_IX_REC_HEADER 16u
size_t gtr_ix_rec_size(size_t id_len, size_t snip_len, size_t dim);
/* Serialise the record header (id/snippet lengths, line) into out[16]; the pad after the
 * strings is gtr_ix_rec_size - 16 - id - snip - 4 * dim zero bytes. */
void gtr_ix_rec_header(uint8_t out[GTR_IX_REC_HEADER], size_t id_len, size_t snip_len, uint64_t line);
/* Parse the record at p (avail bytes); false if it does not fit or is malformed. */
bool gtr_ix_rec_parse(const uint8_t *p, size_t avail, size_t dim, gtr_ix_rec *r);

typedef struct gtr_ix_ckpt {
    uint32_t dim;
    uint64_t fingerprint;
    uint64_t docs;          /* records in the partial file */
    uint64_t partial_bytes; /* their size */
    uint32_t partial_crc;   /* CRC-32 of partial[0, partial_bytes) */
    uint64_t corpus_offset; /* corpus bytes consumed */
    uint64_t corpus_line;   /* lines consumed */
    uint32_t corpus_crc;    /* CRC-32 of corpus[0, corpus_offset) */
    uint64_t base_id;       /* identity of the base index (0: none) */
    uint64_t snippet_bytes;
} gtr_ix_ckpt;

gtr_status gtr_ix_ckpt_write(const char *path, const gtr_ix_ckpt *c, gtr_error *err);
/* GTR_ERR_NOT_FOUND when there is none, GTR_ERR_FORMAT when it is damaged. */
gtr_status gtr_ix_ckpt_read(const char *path, gtr_ix_ckpt *c, gtr_error *err);
/* CRC-32 of bytes [from, to) of an open file, continuing crc. */
gtr_status gtr_ix_fd_crc(int fd, const char *path, uint64_t from, uint64_t to, uint32_t *crc,
                         gtr_error *err);

/* Everything the final file is made of (assemble.c): the base index's documents, then the
 * partial file's records. */
typedef struct gtr_ix_assembly {
    const gtr_index *base;  /* NULL for a new index */
    const uint8_t *part;    /* mapped partial file */
    const uint64_t *rec_off; /* offset of each new record */
    size_t n_new;
    uint32_t dim;
    uint64_t fingerprint;
    uint32_t compact;
    const char *meta_json;
    const uint8_t *dead;     /* replaced documents over base + new (NULL: none) */
} gtr_ix_assembly;

/* Writes every section into w (opened here); the caller commits or aborts. */
gtr_status gtr_ix_assemble(gtr_ix_writer *w, const char *out_path, const gtr_ix_assembly *a,
                           gtr_error *err);

#endif
