/*
 * spm_internal.h — the pieces of the SentencePiece (unigram) tokenizer behind gtr_tokenizer_encode:
 *
 *   spm_proto.c      protobuf wire-format reader for ModelProto (spiece.model)
 *   spm_trie.c       byte trie over piece strings (Viterbi lattice, user-defined matcher)
 *   spm_da.c         the trie as a base/check double array, for the Viterbi walk
 *   spm_normalize.c  precompiled-charsmap normaliser (Darts double array) + whitespace rules
 *   spm_unigram.c    the Viterbi search (SentencePiece's "optimized" encoder)
 *   tokenizer.c      the public API: load (SentencePiece's model checks), vocabulary, pieces
 *   encode.c         text to ids (+ T5 </s> and truncation), text to pieces, normalised text
 *   decode.c         ids back to text (SentencePiece's DecodeIds)
 *
 * Everything is immutable after load; per-call state lives in an spm_work owned by the
 * caller, so any number of threads may encode with one tokenizer.
 * The behaviour follows SentencePiece 0.1.97 exactly (the library the reference data and
 * every released T5/GTR checkpoint were made with); comments say where that matters.
 */
#ifndef GTR_SPM_INTERNAL_H
#define GTR_SPM_INTERNAL_H

#include "core/core.h"

/* ---- ModelProto ---------------------------------------------------------------------- */

/* SentencePiece.Type in sentencepiece_model.proto. */
enum {
    SPM_NORMAL = 1,
    SPM_UNKNOWN = 2,
    SPM_CONTROL = 3,
    SPM_USER_DEFINED = 4,
    SPM_UNUSED = 5,
    SPM_BYTE = 6
};

/* TrainerSpec.ModelType. */
enum { SPM_MODEL_UNIGRAM = 1, SPM_MODEL_BPE = 2, SPM_MODEL_WORD = 3, SPM_MODEL_CHAR = 4 };

/* A byte string inside the parsed buffer (not NUL-terminated). */
typedef struct spm_str {
    const char *p;
    size_t len;
} spm_str;

typedef struct spm_proto_piece {
    spm_str piece;
    float score;
    int type;
} spm_proto_piece;

typedef struct spm_proto_normalizer {
    bool present;
    spm_str name;
    spm_str charsmap; /* precompiled_charsmap (may be empty) */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
} spm_proto_normalizer;

/* The fields of ModelProto the tokenizer uses, with proto2 defaults applied. Strings point
 * into the buffer that was parsed (which must outlive this struct). */
typedef struct spm_proto {
    spm_proto_piece *pieces;
    size_t n_pieces, cap_pieces;
    /* TrainerSpec */
    bool has_trainer_spec;
    int model_type;
    int32_t unk_id, bos_id, eos_id, pad_id;
    bool byte_fallback, treat_whitespace_as_suffix;
    spm_str unk_piece, bos_piece, eos_piece, pad_piece, unk_surface;
    /* NormalizerSpec / denormalizer_spec */
    spm_proto_normalizer normalizer, denormalizer;
    size_t n_self_test_samples;
} spm_proto;

/* Parse a serialized ModelProto. what names the source in error messages. Unknown fields
 * are skipped (as protobuf does); any length or offset that leaves the buffer, a truncated
 * varint, a malformed group or an invalid tag is GTR_ERR_FORMAT naming the byte offset. */
gtr_status spm_proto_parse(const void *data, size_t len, const char *what, spm_proto *out,
                           gtr_error *err);
void spm_proto_free(spm_proto *p);

/* ---- byte trie ------------------------------------------------------------------------ */

/* A trie over byte strings with one int32 value per key. Children of a node are contiguous;
 * nodes with many children get a 256-entry direct table so the Viterbi inner loop costs a
 * load or a short scan per byte. */
typedef struct spm_trie {
    uint32_t *first;   /* [n_nodes] index of the first child */
    uint16_t *nchild;  /* [n_nodes] */
    uint8_t *label;    /* [n_nodes] byte on the edge into the node */
    int32_t *value;    /* [n_nodes] -1 = no key ends here */
    int32_t *dense;    /* [n_nodes] index of the node's 256-entry table, or -1 */
    int32_t *tables;   /* [n_dense * 256] child index or -1 */
    size_t n_nodes, n_dense;
} spm_trie;

typedef struct spm_trie_key {
    const char *key;
    size_t len;
    int32_t value;
} spm_trie_key;

/* Build from keys (reordered in place). A repeated key is GTR_ERR_FORMAT naming it via
 * *dup (the index, after sorting, of the second copy) when dup is non-NULL. */
gtr_status spm_trie_build(spm_trie *t, spm_trie_key *keys, size_t n, size_t *dup,
                          gtr_error *err);
void spm_trie_free(spm_trie *t);

static inline int32_t spm_trie_child(const spm_trie *t, uint32_t node, uint8_t c)
{
    int32_t d = t->dense[node];
    if (d >= 0) return t->tables[(size_t)d * 256 + c];
    uint32_t f = t->first[node], e = f + t->nchild[node];
    for (uint32_t i = f; i < e; i++) {
        uint8_t l = t->label[i];
        if (l == c) return (int32_t)i;
        if (l > c) break; /* labels are sorted */
    }
    return -1;
}

/* A double array (base/check) over the same keys for the Viterbi inner loop: one 16-byte
 * slot per node holds everything a step needs, so each byte of the walk touches one slot.
 * slot.id is the piece id (or -1: no piece ends here / the piece is UNUSED), with
 * SPM_DA_USER set for user-defined pieces; slot.score is its score. */
#define SPM_DA_USER 0x40000000
typedef struct spm_da_slot {
    int32_t base, check, id;
    float score;
} spm_da_slot;
typedef struct spm_da {
    spm_da_slot *slot; /* n_slots + 256 (padding: no bounds check in the walk) */
    size_t n_slots;
} spm_da;
/* Convert a trie; value_of(ctx, value) maps a trie value to (id | flags, score). */
typedef void (*spm_da_value_fn)(void *ctx, int32_t value, int32_t *id, float *score);
gtr_status spm_da_build(spm_da *da, const spm_trie *t, spm_da_value_fn fn, void *ctx,
                        gtr_error *err);
void spm_da_free(spm_da *da);
/* Child of slot s along byte c, or -1. */
static inline int32_t spm_da_child(const spm_da *da, int32_t s, uint8_t c)
{
    int32_t t = da->slot[s].base + c;
    return da->slot[t].check == s ? t : -1;
}

/* Value of the exact key, or -1. */
int32_t spm_trie_exact(const spm_trie *t, const char *s, size_t len);
/* Length of the longest key that is a prefix of s (0 if none). */
size_t spm_trie_longest_prefix(const spm_trie *t, const char *s, size_t len);

/* ---- normaliser ------------------------------------------------------------------------- */

typedef struct spm_normalizer {
    uint32_t *units;   /* Darts-clone double array (NULL: no charsmap, identity) */
    size_t n_units;
    char *repl;        /* NUL-separated replacement strings, plus one extra NUL at the end */
    size_t repl_len;   /* without the extra NUL */
    bool add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    bool treat_whitespace_as_suffix;
    const spm_trie *user; /* user-defined symbols, kept verbatim (NULL or empty: none) */
} spm_normalizer;

/* Set up from a spec (copies the charsmap). Errors name `what`. */
gtr_status spm_normalizer_init(spm_normalizer *nz, const spm_proto_normalizer *spec,
                               bool ws_suffix, const char *what, gtr_error *err);
void spm_normalizer_free(spm_normalizer *nz);
/* Normalise len bytes of in into out (reset first). */
gtr_status spm_normalize(const spm_normalizer *nz, const char *in, size_t len, gtr_buf *out,
                         gtr_error *err);

/* SentencePiece's one-character length from the lead byte alone (util.h OneCharLen). */
static inline size_t spm_one_char_len(uint8_t c)
{
    static const uint8_t tab[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return tab[c >> 4];
}

/* ---- the tokenizer --------------------------------------------------------------------- */

struct gtr_tokenizer {
    size_t n_pieces;
    char *pool;          /* every piece, NUL-terminated */
    uint32_t *piece_off; /* [n_pieces + 1] offsets into pool (piece i ends at off[i+1]-1) */
    float *score;        /* [n_pieces] */
    uint8_t *type;       /* [n_pieces] SPM_* */

    spm_trie pieces;     /* NORMAL, USER_DEFINED and UNUSED pieces -> id (piece -> id) */
    spm_da lattice;      /* the same as a double array, for the Viterbi search */
    spm_trie user;       /* USER_DEFINED pieces (the normaliser keeps them verbatim) */
    spm_trie_key *reserved; /* CONTROL/UNKNOWN/BYTE pieces sorted, for piece -> id */
    size_t n_reserved;

    spm_normalizer norm, denorm;
    bool has_denorm;

    gtr_spm_compat compat; /* which SentencePiece release's score rounding to follow */
    int unk_id;          /* the UNKNOWN piece (what Viterbi emits) */
    int eos_id, pad_id, bos_id, unk_public; /* as SentencePieceProcessor reports them */
    float min_score, max_score;
    bool byte_fallback;
    /* No piece holds an escaped space (U+2581) after its first byte, nor a plain space, and
     * spaces are escaped as word prefixes: every U+2581 of a normalised text starts a piece, so
     * truncated tokenization may stop at a space (encode.c). */
    bool space_bounded;
    int32_t byte_id[256];
    char *unk_surface;
    size_t unk_surface_len;
};

/* One output token: an id and the bytes [begin, end) of the normalised text it covers
 * (consecutive unknowns already merged, as SentencePiece does). */
typedef struct spm_token {
    int32_t id;
    uint32_t begin, end;
} spm_token;

/* Per-call scratch memory: reuse one across calls to avoid allocations. */
typedef struct spm_lattice_node spm_lattice_node;
typedef struct spm_work {
    gtr_buf norm;            /* normalised text */
    spm_lattice_node *lat;   /* best path ending at each byte */
    size_t lat_cap;
    spm_token *tok;
    size_t n_tok, tok_cap;
} spm_work;

void spm_work_free(spm_work *w);
/* Normalise + Viterbi: fills w->norm and w->tok. */
gtr_status spm_encode(const gtr_tokenizer *t, const char *text, size_t len, spm_work *w,
                      gtr_error *err);
/* Viterbi over already-normalised text s[0..n) into w->tok. */
gtr_status spm_viterbi(const gtr_tokenizer *t, const char *s, size_t n, spm_work *w,
                       gtr_error *err);

/* piece string -> id as SentencePiece's PieceToId (reserved pieces first, then the trie,
 * else the unknown id). */
int spm_piece_to_id(const gtr_tokenizer *t, const char *s, size_t len);

#endif /* GTR_SPM_INTERNAL_H */
