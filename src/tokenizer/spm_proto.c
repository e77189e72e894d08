/*
 * spm_proto.c — a tiny protobuf wire-format reader for SentencePiece's ModelProto.
 *
 * Only the fields the tokenizer needs are decoded; everything else is skipped the way a
 * protobuf parser skips unknown fields. proto2 semantics that matter here:
 *  - a known field seen with an unexpected wire type is treated as an unknown field;
 *  - the last occurrence of a scalar wins, repeated embedded messages merge into one;
 *  - an enum value outside the declared range leaves the field at its previous value
 *    (C++ proto2 moves it to the unknown-field set).
 * Every read is bounds-checked: a truncated or corrupt file is GTR_ERR_FORMAT naming the
 * byte offset and the message being read, never a crash.
 */
#include "spm_internal.h"

#include <stdlib.h>
#include <string.h>

enum { WT_VARINT = 0, WT_FIXED64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_FIXED32 = 5 };

typedef struct reader {
    const uint8_t *base; /* start of the whole buffer (for offsets in messages) */
    const uint8_t *p, *end;
    const char *what;    /* file name */
    const char *msg;     /* message being read, for errors */
    gtr_error *err;
} reader;

static gtr_status rd_fail(reader *r, const char *why)
{
    return gtr_seterr(r->err, GTR_ERR_FORMAT, "%s: truncated or corrupt SentencePiece model: %s at byte %zu (in %s)",
                      r->what, why, (size_t)(r->p - r->base), r->msg);
}

static gtr_status rd_varint(reader *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return rd_fail(r, "truncated varint");
        uint8_t b = *r->p++;
        if (shift == 63 && (b & 0x7e)) return rd_fail(r, "varint overflows 64 bits");
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return GTR_OK;
        }
    }
    return rd_fail(r, "varint longer than 10 bytes");
}

static gtr_status rd_tag(reader *r, uint32_t *field, int *wt)
{
    uint64_t t;
    gtr_status st = rd_varint(r, &t);
    if (st) return st;
    if (t > UINT32_MAX) return rd_fail(r, "tag out of range");
    *field = (uint32_t)(t >> 3);
    *wt = (int)(t & 7);
    if (*field == 0) return rd_fail(r, "field number 0");
    return GTR_OK;
}

static gtr_status rd_bytes(reader *r, spm_str *s)
{
    uint64_t n;
    gtr_status st = rd_varint(r, &n);
    if (st) return st;
    if (n > (uint64_t)(r->end - r->p)) return rd_fail(r, "length runs past the end of the data");
    s->p = (const char *)r->p;
    s->len = (size_t)n;
    r->p += n;
    return GTR_OK;
}

static gtr_status rd_fixed32(reader *r, uint32_t *v)
{
    if (r->end - r->p < 4) return rd_fail(r, "truncated fixed32");
    *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
         (uint32_t)r->p[3] << 24;
    r->p += 4;
    return GTR_OK;
}

/* Skip one field's value. Groups (deprecated, but legal in unknown fields) are skipped to
 * their matching end tag without recursion, so hostile nesting cannot exhaust the stack. */
static gtr_status rd_skip(reader *r, uint32_t field, int wt)
{
    size_t depth = 0;
    for (;;) {
        gtr_status st = GTR_OK;
        uint64_t v;
        spm_str s;
        switch (wt) {
        case WT_VARINT: st = rd_varint(r, &v); break;
        case WT_FIXED64:
            if (r->end - r->p < 8) return rd_fail(r, "truncated fixed64");
            r->p += 8;
            break;
        case WT_LEN: st = rd_bytes(r, &s); break;
        case WT_FIXED32:
            if (r->end - r->p < 4) return rd_fail(r, "truncated fixed32");
            r->p += 4;
            break;
        case WT_SGROUP: depth++; break;
        case WT_EGROUP: /* (protobuf also checks the field number; the nesting suffices here) */
            if (depth == 0) return rd_fail(r, "unexpected end-group tag");
            depth--;
            break;
        default: return rd_fail(r, "invalid wire type");
        }
        if (st) return st;
        if (depth == 0) return GTR_OK;
        if (r->p >= r->end) return rd_fail(r, "unterminated group");
        if ((st = rd_tag(r, &field, &wt))) return st;
    }
}

/* A sub-reader over an embedded message. */
static reader sub_reader(const reader *r, spm_str s, const char *msg)
{
    reader c = *r;
    c.p = (const uint8_t *)s.p;
    c.end = c.p + s.len;
    c.msg = msg;
    return c;
}

static gtr_status parse_piece(reader *r, spm_proto_piece *pc)
{
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        gtr_status st = rd_tag(r, &f, &wt);
        if (st) return st;
        uint64_t v = 0;
        uint32_t u = 0;
        if (f == 1 && wt == WT_LEN) {
            st = rd_bytes(r, &pc->piece);
        } else if (f == 2 && wt == WT_FIXED32) {
            if (!(st = rd_fixed32(r, &u))) memcpy(&pc->score, &u, sizeof u);
        } else if (f == 3 && wt == WT_VARINT) {
            if (!(st = rd_varint(r, &v)) && v >= 1 && v <= 6) pc->type = (int)v;
        } else {
            st = rd_skip(r, f, wt);
        }
        if (st) return st;
    }
    return GTR_OK;
}

static int32_t as_int32(uint64_t v) { return (int32_t)(uint32_t)v; }

static gtr_status parse_trainer(reader *r, spm_proto *m)
{
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        gtr_status st = rd_tag(r, &f, &wt);
        if (st) return st;
        uint64_t v = 0;
        if (wt == WT_VARINT && (f == 3 || f == 24 || f == 35 || (f >= 40 && f <= 43))) {
            if ((st = rd_varint(r, &v))) return st;
            switch (f) {
            case 3:
                if (v >= 1 && v <= 4) m->model_type = (int)v;
                break;
            case 24: m->treat_whitespace_as_suffix = v != 0; break;
            case 35: m->byte_fallback = v != 0; break;
            case 40: m->unk_id = as_int32(v); break;
            case 41: m->bos_id = as_int32(v); break;
            case 42: m->eos_id = as_int32(v); break;
            case 43: m->pad_id = as_int32(v); break;
            }
        } else if (wt == WT_LEN && f >= 44 && f <= 48) {
            spm_str s;
            if ((st = rd_bytes(r, &s))) return st;
            switch (f) {
            case 44: m->unk_surface = s; break;
            case 45: m->unk_piece = s; break;
            case 46: m->bos_piece = s; break;
            case 47: m->eos_piece = s; break;
            case 48: m->pad_piece = s; break;
            }
        } else if ((st = rd_skip(r, f, wt))) {
            return st;
        }
    }
    return GTR_OK;
}

static gtr_status parse_normalizer(reader *r, spm_proto_normalizer *n)
{
    n->present = true;
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        gtr_status st = rd_tag(r, &f, &wt);
        if (st) return st;
        uint64_t v = 0;
        if (f == 1 && wt == WT_LEN) {
            st = rd_bytes(r, &n->name);
        } else if (f == 2 && wt == WT_LEN) {
            st = rd_bytes(r, &n->charsmap);
        } else if (f >= 3 && f <= 5 && wt == WT_VARINT) {
            if (!(st = rd_varint(r, &v))) {
                if (f == 3) n->add_dummy_prefix = v != 0;
                else if (f == 4) n->remove_extra_whitespaces = v != 0;
                else n->escape_whitespaces = v != 0;
            }
        } else {
            st = rd_skip(r, f, wt);
        }
        if (st) return st;
    }
    return GTR_OK;
}

static gtr_status parse_self_test(reader *r, spm_proto *m)
{
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        gtr_status st = rd_tag(r, &f, &wt);
        if (st) return st;
        if (f == 1 && wt == WT_LEN) {
            spm_str s;
            if ((st = rd_bytes(r, &s))) return st;
            /* validate the sample's framing too: a corrupt file should not load */
            reader c = sub_reader(r, s, "ModelProto.self_test_data.samples");
            while (c.p < c.end) {
                uint32_t f2;
                int wt2;
                if ((st = rd_tag(&c, &f2, &wt2)) || (st = rd_skip(&c, f2, wt2))) return st;
            }
            m->n_self_test_samples++;
        } else if ((st = rd_skip(r, f, wt))) {
            return st;
        }
    }
    return GTR_OK;
}

static void normalizer_defaults(spm_proto_normalizer *n)
{
    memset(n, 0, sizeof *n);
    n->add_dummy_prefix = n->remove_extra_whitespaces = n->escape_whitespaces = true;
}

static spm_str cstr(const char *s) { return (spm_str){s, strlen(s)}; }

gtr_status spm_proto_parse(const void *data, size_t len, const char *what, spm_proto *m,
                           gtr_error *err)
{
    memset(m, 0, sizeof *m);
    m->model_type = SPM_MODEL_UNIGRAM;
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    m->unk_piece = cstr("<unk>");
    m->bos_piece = cstr("<s>");
    m->eos_piece = cstr("</s>");
    m->pad_piece = cstr("<pad>");
    m->unk_surface = cstr(" \xE2\x81\x87 ");
    normalizer_defaults(&m->normalizer);
    normalizer_defaults(&m->denormalizer);

    reader r = {data, data, (const uint8_t *)data + len, what, "ModelProto", err};
    if (len == 0 && data == NULL) r.base = r.p = r.end = (const uint8_t *)"";
    gtr_status st = GTR_OK;
    while (r.p < r.end) {
        uint32_t f;
        int wt;
        if ((st = rd_tag(&r, &f, &wt))) goto fail;
        if (wt != WT_LEN || f < 1 || f > 5) {
            if ((st = rd_skip(&r, f, wt))) goto fail;
            continue;
        }
        spm_str s;
        if ((st = rd_bytes(&r, &s))) goto fail;
        reader c;
        switch (f) {
        case 1:
            if (m->n_pieces == m->cap_pieces) {
                size_t cap = m->cap_pieces ? 2 * m->cap_pieces : 1024;
                spm_proto_piece *np = gtr_xrealloc(m->pieces, cap * sizeof *np, "model pieces", err);
                if (!np) {
                    st = GTR_ERR_NOMEM;
                    goto fail;
                }
                m->pieces = np;
                m->cap_pieces = cap;
            }
            m->pieces[m->n_pieces] = (spm_proto_piece){{"", 0}, 0.0f, SPM_NORMAL};
            c = sub_reader(&r, s, "ModelProto.pieces");
            if ((st = parse_piece(&c, &m->pieces[m->n_pieces]))) goto fail;
            m->n_pieces++;
            break;
        case 2:
            m->has_trainer_spec = true;
            c = sub_reader(&r, s, "ModelProto.trainer_spec");
            if ((st = parse_trainer(&c, m))) goto fail;
            break;
        case 3:
            c = sub_reader(&r, s, "ModelProto.normalizer_spec");
            if ((st = parse_normalizer(&c, &m->normalizer))) goto fail;
            break;
        case 4:
            c = sub_reader(&r, s, "ModelProto.self_test_data");
            if ((st = parse_self_test(&c, m))) goto fail;
            break;
        case 5:
            c = sub_reader(&r, s, "ModelProto.denormalizer_spec");
            if ((st = parse_normalizer(&c, &m->denormalizer))) goto fail;
            break;
        }
    }
    return GTR_OK;
fail:
    spm_proto_free(m);
    return st;
}

void spm_proto_free(spm_proto *p)
{
    free(p->pieces);
    p->pieces = NULL;
    p->n_pieces = p->cap_pieces = 0;
}
