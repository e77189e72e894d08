/* checksum.c — checksums over the tensor bodies of a `gtr quantize` copy, so that a flipped
 * bit inside its weights (a bad disk, a bad copy, a truncated-then-padded download) is refused
 * at load instead of giving plausible but wrong vectors. The copy's weights are used from the
 * file in place, never converted, so no other pass would notice.
 *
 * Scheme GTR_CHECKSUM_SCHEME ("crc32c-tree64k-v1"), in the safetensors __metadata__ (strings,
 * as the format requires; other readers ignore them):
 *   "gtr_checksum":  "crc32c-tree64k-v1"
 *   "gtr_checksums": 8 lower-case hex digits per tensor of the file, in the order of their
 *                    data_offsets (every byte of the data section is in exactly one tensor:
 *                    64-byte alignment pads are "gtr_pad.<n>" tensors, so they are covered too)
 * A tensor's checksum: its bytes cut into blocks of 65,536 (the last one shorter; none for an
 * empty tensor), the CRC-32C of each block, and the CRC-32C of those block CRCs written as
 * little-endian u32s one after the other. The blocks make the check parallel (any number of
 * threads, same result) and let one core run four blocks at once near memory bandwidth.
 * The header itself is not covered: it is JSON whose every number the parser checks against
 * the others (offsets, shapes, dtypes), and the names are looked up. */
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK GTR_CHECKSUM_BLOCK

/* ---- streaming (the writer) ------------------------------------------------------------- */

void gtr_body_crc_begin(gtr_body_crc *c) { memset(c, 0, sizeof *c); }

static void fold_block(gtr_body_crc *c)
{
    uint8_t le[4] = {(uint8_t)c->blk, (uint8_t)(c->blk >> 8), (uint8_t)(c->blk >> 16), (uint8_t)(c->blk >> 24)};
    c->tree = gtr_crc32c(c->tree, le, 4);
    c->blk = 0;
    c->fill = 0;
}

void gtr_body_crc_feed(gtr_body_crc *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        size_t n = GTR_MIN(len, BLOCK - c->fill);
        c->blk = gtr_crc32c(c->blk, p, n);
        c->fill += n;
        p += n;
        len -= n;
        if (c->fill == BLOCK) fold_block(c);
    }
}

uint32_t gtr_body_crc_end(gtr_body_crc *c)
{
    if (c->fill) fold_block(c);
    return c->tree;
}

/* ---- the header entries ----------------------------------------------------------------- */

void gtr_checksums_text(const uint32_t *crc, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) snprintf(out + 8 * i, 9, "%08x", (unsigned)crc[i]);
    out[8 * n] = '\0';
}

/* ---- verification ----------------------------------------------------------------------- */

/* Up to TASK_BLOCKS consecutive blocks of one tensor. */
#define TASK_BLOCKS 64
typedef struct {
    const uint8_t *data;
    size_t bytes;    /* of the blocks of this task */
    uint32_t *out;   /* their CRCs */
} crc_task;

static void run_task(void *ctx, size_t i, int thread_id)
{
    (void)thread_id;
    const crc_task *t = &((const crc_task *)ctx)[i];
    size_t nb = (t->bytes + BLOCK - 1) / BLOCK, full = t->bytes / BLOCK, b = 0;
    for (; b + 4 <= full; b += 4) {
        const void *p[4] = {t->data + b * BLOCK, t->data + (b + 1) * BLOCK, t->data + (b + 2) * BLOCK,
                            t->data + (b + 3) * BLOCK};
        gtr_crc32c_x4(p, BLOCK, t->out + b);
    }
    for (; b < nb; b++) t->out[b] = gtr_crc32c(0, t->data + b * BLOCK, GTR_MIN((size_t)BLOCK, t->bytes - b * BLOCK));
}

gtr_status gtr_tensor_set_verify(const gtr_tensor_set *s, gtr_pool *pool, size_t *n_checked, gtr_error *err)
{
    *n_checked = 0;
    if (s->crc_problem) {
        int k = s->crc_problem_source;
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: %s",
                          k >= 0 && (size_t)k < s->n_src ? s->src[k].path : "safetensors file", s->crc_problem);
    }
    size_t n_tasks = 0, n_blocks = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->t[i].has_crc) continue;
        size_t nb = (s->t[i].span + BLOCK - 1) / BLOCK;
        n_blocks += nb;
        n_tasks += (nb + TASK_BLOCKS - 1) / TASK_BLOCKS;
    }
    crc_task *tasks = gtr_xcalloc(n_tasks ? n_tasks : 1, sizeof *tasks, "checksum tasks", err);
    uint32_t *blk = gtr_xcalloc(n_blocks ? n_blocks : 1, sizeof *blk, "checksums", err);
    if (!tasks || !blk) {
        free(tasks);
        free(blk);
        return GTR_ERR_NOMEM;
    }
    size_t k = 0, at = 0;
    for (size_t i = 0; i < s->n; i++) {
        const gtr_tensor *t = &s->t[i];
        if (!t->has_crc) continue;
        for (size_t off = 0; off < t->span; off += (size_t)TASK_BLOCKS * BLOCK) {
            size_t bytes = GTR_MIN((size_t)TASK_BLOCKS * BLOCK, t->span - off);
            tasks[k++] = (crc_task){t->data + off, bytes, blk + at};
            at += (bytes + BLOCK - 1) / BLOCK;
        }
    }
    gtr_pool_for(pool, n_tasks, run_task, tasks);
    gtr_status st = GTR_OK;
    at = 0;
    for (size_t i = 0; i < s->n && !st; i++) {
        const gtr_tensor *t = &s->t[i];
        if (!t->has_crc) continue;
        size_t nb = (t->span + BLOCK - 1) / BLOCK;
        uint32_t tree = 0;
        for (size_t b = 0; b < nb; b++) {
            uint32_t v = blk[at + b];
            uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
            tree = gtr_crc32c(tree, le, 4);
        }
        at += nb;
        if (tree != t->crc)
            st = gtr_seterr(err, GTR_ERR_MISMATCH,
                            "%s: tensor '%s' is damaged: its bytes do not match the checksum the file "
                            "records (crc32c %08x, stored %08x); copy the file again or quantise the "
                            "original again",
                            gtr_tensor_file(s, t), t->name, (unsigned)tree, (unsigned)t->crc);
        else
            (*n_checked)++;
    }
    free(tasks);
    free(blk);
    return st;
}
