/*
 * model_internal.h — the pieces of the model layer and how they fit together:
 *
 *   config.c       the JSON files of a sentence-transformers directory -> gtr_model_config
 *   zip_stored.c   central directory of a zip archive held in memory (torch checkpoints)
 *   safetensors.c  model.safetensors header -> tensor views into the mapped file
 *   torch_zip.c    pytorch_model.bin: the zip container -> data.pkl and storage bytes
 *   torch_pickle.c the restricted unpickler: state dict -> tensor views into the storages
 *   weights.c      a set of named tensor views over mapped files: lookup with shape checks,
 *                  conversion to float32, "extra tensor" detection
 *   fingerprint.c  the model fingerprint: FNV-1a chains over every weight's float32 value
 *   checksum.c     CRC-32C checksums of tensor bodies (`gtr quantize` copies): written, verified
 *   encoder_load.c the T5 encoder's weights: looked up, converted, packed (or used in place)
 *   pack_load.c    a checkpoint's Linear packed from the mapping, fingerprinted on the way
 *   encoder.c      the T5 encoder's forward pass over packed token rows
 *   head.c         mean pooling, Dense, L2 normalisation
 *   model.c        the public gtr_model_* API gluing the above together (load; the model
 *                  is immutable afterwards)
 *   context.c      gtr_context: the per-caller scratch and schedule of an encode
 *
 * Nothing here is public; tests link the static library and may use these.
 */
#ifndef GTR_MODEL_INTERNAL_H
#define GTR_MODEL_INTERNAL_H

#include "core/core.h"

#include <stdatomic.h>
#include "data/data.h"
#include "kernels/kernels.h"

#include <jansson.h>

/* ---- configuration (config.c) ------------------------------------------ */

typedef enum gtr_ff_kind { GTR_FF_RELU = 0, GTR_FF_GATED_GELU } gtr_ff_kind;
typedef enum gtr_act_kind { GTR_ACT_IDENTITY = 0, GTR_ACT_TANH } gtr_act_kind;

/* The T5 encoder's shape (config.json). */
typedef struct gtr_t5_config {
    int d_model, d_ff, d_kv, num_heads, num_layers, vocab_size;
    int num_buckets, max_distance; /* relative attention */
    float eps;                     /* layer_norm_epsilon */
    gtr_ff_kind ff;
    char model_type[16];           /* "t5" or "mt5" */
} gtr_t5_config;

/* Everything the directory says about the model besides weights. Paths are malloc'd. */
typedef struct gtr_model_config {
    gtr_t5_config t5;
    int max_seq_length;      /* sentence_bert_config.json (512 when absent) */
    char *transformer_dir;   /* module directories (absolute-ish: dir joined with path) */
    char *pooling_dir;
    char *dense_dir;         /* NULL when modules.json lists no Dense */
    bool has_dense, normalize;
    int dense_in, dense_out;
    bool dense_bias;
    gtr_act_kind dense_act;
} gtr_model_config;

void gtr_model_config_free(gtr_model_config *c);
/* Read modules.json, config.json, sentence_bert_config.json, the Pooling and Dense configs of a
 * model directory. Every error names the file. */
gtr_status gtr_model_config_read(const char *dir, gtr_model_config *c, gtr_error *err);

/* The individual readers over already-parsed JSON (what names the file in messages); also the
 * entry points of the JSON fuzzer. */
gtr_status gtr_config_parse_t5(const json_t *j, const char *what, gtr_t5_config *c, gtr_error *err);
/* modules.json: the directories (relative, malloc'd; *dense NULL if absent) and whether a
 * Normalize module follows. */
gtr_status gtr_config_parse_modules(const json_t *j, const char *what, char **transformer,
                                    char **pooling, char **dense, bool *normalize, gtr_error *err);
gtr_status gtr_config_parse_pooling(const json_t *j, const char *what, int d_model, gtr_error *err);
gtr_status gtr_config_parse_dense(const json_t *j, const char *what, gtr_model_config *c,
                                  gtr_error *err);
gtr_status gtr_config_parse_sbert(const json_t *j, const char *what, int *max_seq_length,
                                  gtr_error *err);

/* ---- zip archives in memory (zip_stored.c) ----------------------------- */

typedef struct gtr_zip_entry {
    const char *name; /* points into the archive (not NUL-terminated) */
    size_t name_len;
    uint64_t data_off; /* offset of the entry's bytes in the archive */
    uint64_t size;     /* stored (= uncompressed) size */
    uint32_t crc;
    uint16_t method;   /* 0 = stored; anything else is refused when read */
} gtr_zip_entry;

/* Index the central directory of the archive buf[0, len) (zip64 included). *entries is
 * malloc'd. what names the archive in errors. Validates that every entry's bytes lie inside
 * the archive. */
gtr_status gtr_zip_index(const uint8_t *buf, size_t len, const char *what, gtr_zip_entry **entries,
                         size_t *n, gtr_error *err);

/* ---- tensor views (weights.c, safetensors.c, torch_pickle.c) ----------- */

/* The quantisation a safetensors file declares in its __metadata__ ("gtr_quantization").
 * GTR_QUANT_INT8_V1 ("int8-per-channel-v1", written by `gtr quantize --dtype int8`): every
 * I8 tensor <name> [rows, cols] comes with an F32 tensor <name>_scale [rows], and the weight
 * it stands for is W[r][c] = (float)q[r][c] * scale[r], q in [-127, 127] (symmetric, per output
 * channel for Linear weights, per token row for the embedding) — exactly the scheme of the
 * GTR_W_INT8 kernels, so the codes are packed as they are, never re-quantised. Anything
 * else in the metadata (e.g. "bf16-v1") only describes float tensors and changes nothing. */
typedef enum gtr_quant_scheme {
    GTR_QUANT_NONE = 0, /* no gtr_quantization entry (every checkpoint not made by gtr) */
    GTR_QUANT_INT8_V1,  /* "int8-per-channel-v1" */
    GTR_QUANT_FLOAT,    /* a scheme of float tensors only ("bf16-v1") */
    GTR_QUANT_UNKNOWN   /* a value this version does not know: its I8 tensors are refused */
} gtr_quant_scheme;
#define GTR_QUANT_INT8_NAME "int8-per-channel-v1"
#define GTR_QUANT_BF16_NAME "bf16-v1"
#define GTR_QUANT_SCALE_SUFFIX "_scale"

/* A tensor stored in a mapped file: dtype, shape and element strides, pointing at its first
 * element. No ownership: the set owns the mapping. */
typedef struct gtr_tensor {
    char *name;
    gtr_dtype_id dtype;
    int ndim;
    size_t shape[GTR_MAX_DIMS];
    size_t stride[GTR_MAX_DIMS]; /* in elements */
    size_t count;                /* product of shape */
    const uint8_t *data;         /* first element (may be unaligned) */
    size_t span;                 /* bytes from data that hold all elements */
    int source;                  /* index into the set's sources */
    bool used;
    gtr_quant_scheme quant;      /* what its file's __metadata__ declares (safetensors) */
    bool has_crc;                /* its file records a checksum of its bytes (checksum.c) */
    uint32_t crc;
} gtr_tensor;

typedef struct gtr_tensor_source {
    char *path;  /* full path (error messages) */
    gtr_mmap map;
} gtr_tensor_source;

typedef struct gtr_tensor_set {
    gtr_tensor *t;
    size_t n, cap;
    gtr_tensor_source *src;
    size_t n_src;
    /* "gtr_source_fingerprint" of a safetensors __metadata__ (16 hex digits): a `gtr quantize`
     * output records the fingerprint of the model it was made from, and loads under it */
    bool has_source_fp;
    uint64_t source_fp;
    /* __metadata__ "gtr_layout": GTR_WMAT_LAYOUT_NAME: the Linear weights are stored packed
     * for the kernels (packed.c), to be used from the mapping in place */
    bool packed;
    /* a file's "gtr_checksum(s)" entries cannot be used (malformed, not one per tensor, an
     * unknown scheme): the reason (static string) and the file's source index, reported by
     * gtr_tensor_set_verify; NULL when every file's are fine or absent */
    const char *crc_problem;
    int crc_problem_source;
} gtr_tensor_set;

/* Add a tensor (name copied). Checks nothing: the parsers validate before adding. */
gtr_status gtr_tensor_set_add(gtr_tensor_set *s, const char *name, size_t name_len,
                              const gtr_tensor *t, gtr_error *err);
void gtr_tensor_set_free(gtr_tensor_set *s);

/* Parse a safetensors file held in buf[0, len) and add its tensors (views into buf) with the
 * given source index. what names the file in errors. */
gtr_status gtr_safetensors_parse(const uint8_t *buf, size_t len, const char *what, int source,
                                 gtr_tensor_set *set, gtr_error *err);
/* Writing safetensors (quantize.c, train/export.c): add each tensor to a header object h (its
 * dtype name "F32"/"BF16"/"I8", shape [rows] when cols == 0 else [rows, cols], its bytes
 * [off, off + bytes) of the data section), then gtr_safetensors_header_bytes gives what the file
 * starts with: the header length as a little-endian u64 and the compact JSON padded with
 * spaces to a multiple of 8 bytes (as the reference writer pads it). malloc'd, *len bytes. */
void gtr_safetensors_header_add(json_t *h, const char *name, const char *dtype, size_t rows,
                                size_t cols, uint64_t off, uint64_t bytes);
uint8_t *gtr_safetensors_header_bytes(const json_t *h, size_t *len, gtr_error *err);
/* The same with the data section starting at a multiple of align bytes (8, 64, ...). */
uint8_t *gtr_safetensors_header_bytes_align(const json_t *h, size_t align, size_t *len, gtr_error *err);
/* Sharded checkpoints as transformers' save_pretrained writes them: shard k (from 0) of K is
 * "model-0000<k+1>-of-0000<K>.safetensors" ("model.safetensors" when K is 1), and
 * model.safetensors.index.json in dir maps every tensor name to its shard's file, with
 * "metadata": {"total_size": total} (bytes of tensor data). */
void gtr_safetensors_shard_name(size_t k, size_t K, char *buf, size_t cap);
gtr_status gtr_safetensors_write_index(const char *dir, const char *const *names, const size_t *shard, size_t n,
                                       size_t K, uint64_t total, gtr_error *err);
/* Parse a torch zip checkpoint (pytorch_model.bin) held in buf[0, len). */
gtr_status gtr_torch_zip_parse(const uint8_t *buf, size_t len, const char *what, int source,
                               gtr_tensor_set *set, gtr_error *err);
/* The restricted unpickler alone: a pickled state dict whose storages are found by key through
 * the callback (returns the storage bytes or NULL if absent). Exposed for the fuzzer. */
typedef const uint8_t *(*gtr_storage_lookup_fn)(void *user, const char *key, size_t *size);
gtr_status gtr_torch_pickle_parse(const uint8_t *pkl, size_t len, const char *what,
                                  gtr_storage_lookup_fn lookup, void *user, int source,
                                  gtr_tensor_set *set, gtr_error *err);

/* Open the weights of one module directory: model.safetensors if present, else
 * pytorch_model.bin (also sharded *.index.json variants). Appends to set. */
gtr_status gtr_tensor_set_open_dir(gtr_tensor_set *set, const char *dir, gtr_error *err);

/* Look a tensor up by name and check its shape (ndim dims): NULL when absent. Marks it used. */
gtr_tensor *gtr_tensor_find(gtr_tensor_set *s, const char *name);
/* Find + check shape + float dtype; errors name the file and tensor. */
gtr_status gtr_tensor_get(gtr_tensor_set *s, const char *name, int ndim, const size_t *shape,
                          gtr_tensor **out, gtr_error *err);
/* First tensor not marked used (ignoring names starting with one of the NULL-terminated
 * prefixes): an "extra tensor" error naming it, or GTR_OK. */
gtr_status gtr_tensor_check_unused(const gtr_tensor_set *s, const char *const *ignore_prefixes,
                                   gtr_error *err);
/* Convert a tensor to dense row-major float32 in dst (count floats), in parallel over pool,
 * then let the kernel drop the source pages (the float32 copy is what stays resident). */
gtr_status gtr_tensor_to_f32(gtr_tensor_set *s, const gtr_tensor *t, float *dst, gtr_pool *pool,
                             gtr_error *err);
/* Drop a tensor's pages of its mapping (after its last use). */
void gtr_tensor_drop(const gtr_tensor_set *s, const gtr_tensor *t);
/* The same for bytes [p, p + len) of one of the set's mappings (nothing when p is in none). */
void gtr_tensor_set_drop_range(const gtr_tensor_set *s, const void *p, size_t len);

/* A weight matrix as stored: float (scale NULL) or I8 codes with per-row F32 scales. */
typedef struct gtr_wtensor {
    gtr_tensor *w, *scale;
    /* a packed file (packed.c): rows [row0, row0 + nrows) of the packed matrix pk (w is the
     * packed tensor, scale its _scale when I8); NULL otherwise */
    const gtr_wmat *pk;
    size_t row0, nrows;
} gtr_wtensor;
/* Find + check a 2-D weight [shape[0], shape[1]]: a float tensor, or (GTR_QUANT_INT8_V1 files
 * only) an I8 one with its <name>_scale; both are marked used. Errors name file and tensor. */
gtr_status gtr_wtensor_get(gtr_tensor_set *s, const char *name, const size_t *shape, gtr_wtensor *out,
                           gtr_error *err);
static inline size_t gtr_wtensor_rows(const gtr_wtensor *t) { return t->pk ? t->nrows : t->w->shape[0]; }
static inline size_t gtr_wtensor_cols(const gtr_wtensor *t) { return t->pk ? t->pk->k : t->w->shape[1]; }
/* Rows [row0, row0 + rows) as float32 (dst [rows * cols]): converted, or dequantised as
 * (float)q * scale. Float sources drop the pages read; I8 ones keep them (see _q8). */
gtr_status gtr_wtensor_rows_f32(gtr_tensor_set *s, const gtr_wtensor *t, size_t row0, size_t rows,
                                float *dst, gtr_pool *pool, gtr_error *err);
/* I8 sources only: the codes and scales of rows [row0, row0 + rows) as stored, validated (codes
 * in [-127, 127], scales finite and >= 0). */
gtr_status gtr_wtensor_rows_q8(gtr_tensor_set *s, const gtr_wtensor *t, size_t row0, size_t rows,
                               int8_t *q, float *scales, gtr_error *err);
/* Drop the pages of both tensors. */
void gtr_wtensor_drop(const gtr_tensor_set *s, const gtr_wtensor *t);

/* ---- fingerprint (fingerprint.c; gtr_pack_fingerprinted: pack_load.c) ---- */

/* Fold a converted tensor into a fingerprint (*h in, out): its (canonical) name, shape and every
 * float32 value, hashed in parallel chunks combined in order (deterministic for any thread
 * count). The same pass checks that every value is finite: a NaN or an infinity is
 * GTR_ERR_FORMAT naming the tensor and the element (weights that would give NaN or
 * plausible-looking but wrong vectors are refused at load, at no extra read). */
gtr_status gtr_fingerprint_tensor(uint64_t *h, gtr_pool *pool, const char *name, const float *x,
                                  size_t rows, size_t cols, gtr_error *err);
/* A float tensor (F32, F16, BF16) stored row-major without gaps? */
bool gtr_tensor_contiguous(const gtr_tensor *t);
/* How the packing reads a contiguous float tensor's values (gtr_wsrc.type). */
static inline gtr_src_type gtr_tensor_src_type(const gtr_tensor *t)
{
    return t->dtype == GTR_DT_F16 ? GTR_SRC_F16 : t->dtype == GTR_DT_BF16 ? GTR_SRC_BF16 : GTR_SRC_F32;
}
/* gtr_fingerprint_tensor of a contiguous float tensor's values converted to float32, read
 * from its mapping (no float32 copy is made): the same hash, the same error. */
gtr_status gtr_fingerprint_stored(uint64_t *h, gtr_pool *pool, const char *name, const gtr_tensor *t,
                                  size_t rows, size_t cols, gtr_error *err);
/* gtr_fingerprint_stored computed a range of rows at a time, from inside whatever reads those
 * rows anyway (the packing tasks: gtr_wmat_pack_src_visit): init; gtr_fp_rows_hash for row
 * ranges that together cover the tensor once (concurrently: each hashes the chunks whose first
 * value lies in its rows, reading on into the next rows where a chunk does); end folds the
 * chunks in order: the same hash and the same error as gtr_fingerprint_stored (free instead of
 * end when giving up). cols: the row length (the tensor is rows x cols, contiguous). */
#define GTR_FP_CHUNK ((size_t)1 << 20) /* values per FNV chain of the fingerprint */
typedef struct gtr_fp_rows {
    const gtr_tensor *t;
    size_t cols, chunks;
    uint64_t *out, *bad; /* per chunk: its FNV chain, its non-finite bits */
} gtr_fp_rows;
gtr_status gtr_fp_rows_init(gtr_fp_rows *f, const gtr_tensor *t, size_t cols, gtr_error *err);
void gtr_fp_rows_hash(const gtr_fp_rows *f, size_t r0, size_t r1);
gtr_status gtr_fp_rows_end(gtr_fp_rows *f, uint64_t *h, const char *name, size_t rows, size_t cols,
                           gtr_error *err);
void gtr_fp_rows_free(gtr_fp_rows *f);
/* The fingerprint's FNV chains of up to 4 chunks at once, continued over len values of each
 * (lane l: values [start[l], start[l] + len) of the contiguous float tensor t[l], the chain
 * h[l] / bad[l] in and out; len even unless it ends the chunk; start[l] a multiple of cols),
 * and with absmax (else NULL) the largest |value| of each row of cols values into amax[l][0 ..]
 * (NaN ignored). A chunk's chain is GTR_FNV_SEED, 0 before its first value. each (else NULL)
 * is handed every piece of the values as float32 while it is in L1, for the packing to take
 * them from there instead of converting the stored ones again: each(each_ctx, l, x, pos, m)
 * with lane l's values [start[l] + pos, start[l] + pos + m) at x, pieces in order, pos a
 * multiple of GTR_FP_PIECE. */
#define GTR_FP_PIECE 2048 /* values a piece (even; divides GTR_FP_CHUNK) */
typedef void (*gtr_fp_piece_fn)(void *ctx, size_t lane, const float *x, size_t pos, size_t m);
void gtr_fp_lanes(const gtr_tensor *const *t, const size_t *start, size_t lanes, size_t len, size_t cols,
                  uint64_t *h, uint64_t *bad, gtr_absmax_fn absmax, float *const *amax, gtr_fp_piece_fn each,
                  void *each_ctx);
/* A Linear's weight from 1 to 3 contiguous float tensors (rows of k values each, stacked in
 * order) packed as wtype and folded into the fingerprint (*fp: each part as
 * gtr_fingerprint_stored folds it, in order), the file's pages read from memory once: the
 * bytes of gtr_wmat_pack_src and the hash and error of gtr_fingerprint_stored (*bad_part, when
 * given, set to the part whose values are not finite). On failure w is freed. */
gtr_status gtr_pack_fingerprinted(const gtr_kernels *kern, gtr_pool *pool, const gtr_tensor *const *parts,
                                  int n_parts, size_t k, gtr_wtype wtype, gtr_wmat *w, uint64_t *fp,
                                  int *bad_part, gtr_error *err);
/* The same bytes for F16 parts without the fingerprint (a load with no_fingerprint): packed by
 * gtr_wmat_pack_src_finite, each value read and converted as the packing needs it and not
 * hashed. A non-finite value is the error gtr_pack_fingerprinted gives (it is rerun to name
 * the part and the element; *bad_part as there). On failure w is freed. */
gtr_status gtr_pack_unhashed(const gtr_kernels *kern, gtr_pool *pool, const gtr_tensor *const *parts,
                             int n_parts, size_t k, gtr_wtype wtype, gtr_wmat *w, int *bad_part, gtr_error *err);
/* The same hash and check fed piece by piece (a tensor converted a few rows at a time): begin,
 * feed the values in order (every piece but the last an even count), end. Equal to
 * gtr_fingerprint_tensor over the concatenation. */
typedef struct gtr_fp_stream {
    uint64_t h, cur;  /* the running hash; the FNV state of the current chunk */
    size_t in_chunk;  /* floats of the current chunk already hashed */
    const char *name; /* for the error */
    size_t cols, fed; /* row length; floats fed so far */
    size_t bad_at;    /* index of the first non-finite value, SIZE_MAX when none */
    float bad;
} gtr_fp_stream;
void gtr_fp_begin(gtr_fp_stream *f, uint64_t h, const char *name, size_t rows, size_t cols);
void gtr_fp_feed(gtr_fp_stream *f, gtr_pool *pool, const float *x, size_t n);
/* The hash into *h, or GTR_ERR_FORMAT when a fed value was not finite. */
gtr_status gtr_fp_end(gtr_fp_stream *f, uint64_t *h, gtr_error *err);
/* Checksums of tensor bodies (checksum.c; the scheme is described there): what `gtr
 * quantize` records in __metadata__ and the load verifies. */
#define GTR_CHECKSUM_SCHEME "crc32c-tree64k-v1"
#define GTR_CHECKSUM_BLOCK 65536u
/* One tensor's checksum fed piece by piece (begin, feed the bytes in order, end). */
typedef struct gtr_body_crc {
    uint32_t blk, tree;
    size_t fill;
} gtr_body_crc;
void gtr_body_crc_begin(gtr_body_crc *c);
void gtr_body_crc_feed(gtr_body_crc *c, const void *data, size_t len);
uint32_t gtr_body_crc_end(gtr_body_crc *c);
/* The "gtr_checksums" value of n checksums into out (8 * n + 1 chars). */
void gtr_checksums_text(const uint32_t *crc, size_t n, char *out);
/* Check every tensor whose file records a checksum, in parallel over pool: GTR_ERR_MISMATCH
 * naming the file and the first damaged tensor; GTR_ERR_FORMAT when a file's checksum entry
 * is unusable. *n_checked: the tensors verified. */
gtr_status gtr_tensor_set_verify(const gtr_tensor_set *s, gtr_pool *pool, size_t *n_checked, gtr_error *err);
/* Path of the file a tensor comes from. */
const char *gtr_tensor_file(const gtr_tensor_set *s, const gtr_tensor *t);
/* "F32", "F16", "BF16" ... */
const char *gtr_tensor_dtype_name(gtr_dtype_id dt);

/* ---- encoder (encoder_load.c, encoder.c) ------------------------------- */

/* Called with intermediate states when set (tests): text = index in the batch, name as in
 * the reference hidden_*.npz ("embeddings", "position_bias", "layer00.attn_out", ...). */
typedef void (*gtr_probe_fn)(void *user, size_t text, const char *name, const float *x,
                             size_t rows, size_t cols);

typedef struct gtr_t5_layer {
    float *ln_attn;  /* [d_model] */
    gtr_wmat qkv;    /* [3 * inner, d_model]: q, k, v stacked (one pass over the activations) */
    gtr_wmat o;      /* [d_model, inner] */
    float *ln_ff;    /* [d_model] */
    gtr_wmat wi;     /* [d_ff, d_model] (relu) or [2 * d_ff, d_model]: wi_0 then wi_1 (gated) */
    gtr_wmat wo;     /* [d_model, d_ff] */
} gtr_t5_layer;

typedef struct gtr_t5 {
    gtr_t5_config cfg;
    int inner;          /* num_heads * d_kv */
    /* The token-embedding table [vocab, d_model], in the compute precision so that int8 /
     * bf16 models do not carry a float32 copy (the table is a quarter of gtr-t5-base's
     * parameters): GTR_W_F32 floats, GTR_W_BF16 bf16 bits (gtr_bf16_daz of the float), or
     * GTR_W_INT8 codes with one scale per row (gtr_quantize_rows_int8). Rows are
     * dequantised on lookup. */
    gtr_wtype embed_type;
    void *embed;
    float *embed_scale; /* INT8: [vocab] */
    float *rel_bias;    /* [num_buckets, num_heads] (layer 0's table, shared by all layers) */
    gtr_t5_layer *layers;
    float *final_ln;    /* [d_model] */
    size_t n_params;    /* counted once, the tied embedding once */
    size_t bytes;       /* memory held by the weights (mapped ones included) */
    size_t mapped_bytes; /* of which used in place from the file's mapping (packed.c) */
    bool embed_borrowed; /* embed, embed_scale point into the mapping */
    gtr_mmap *maps;     /* the mappings in-place weights point into (closed with the model) */
    size_t n_maps;
} gtr_t5;

/* Reusable activation buffers: an arena that only grows, so the per-batch path allocates
 * nothing once it has seen its largest batch. */
typedef struct gtr_t5_scratch {
    float *x, *xn, *qkv, *ctx, *ff;
    int32_t *tok;       /* token id of each packed row */
    size_t cap_tokens;
    size_t *offs;       /* first row of each text */
    size_t cap_texts;
    float *scores;      /* per thread: scores [GTR_ATT_QBLOCK * max keys] + Kᵀ [d_kv * max keys] */
    size_t scores_per_thread;
    int n_threads;
    float *pos_table;   /* [num_heads, 2 * table_len - 1]: bias by key - query */
    int table_len;
    void *ws;           /* gtr_linear_ws scratch (converted / quantised activation rows) */
    size_t ws_bytes;
    const atomic_int *stop; /* non-NULL and non-zero: the forward pass stops early (below) */
} gtr_t5_scratch;

/* Load and pack the encoder weights from set (names as transformers' T5EncoderModel); the
 * Linear weights are packed as wtype. *fp accumulates the fingerprint of every tensor
 * (gtr_fingerprint_tensor) in a fixed order; with hash_f16 false the Linear weights stored
 * as F16 are left out of it (gtr_pack_unhashed: no_fingerprint), so *fp is then no
 * fingerprint. */
gtr_status gtr_t5_load(gtr_t5 *m, const gtr_t5_config *cfg, gtr_tensor_set *set,
                       const gtr_kernels *kern, gtr_wtype wtype, gtr_pool *pool, uint64_t *fp,
                       bool hash_f16, gtr_error *err);
void gtr_t5_free(gtr_t5 *m);
void gtr_t5_scratch_free(gtr_t5_scratch *s);

/* Bidirectional relative-position bucket of rel = key - query, computed in float32 exactly as
 * transformers does (so the boundaries at 16/32/64 land where PyTorch puts them). */
int gtr_t5_bucket(long rel, int num_buckets, int max_distance);

/* The encoder's tensors as `gtr quantize` rewrites them, looked up and shape-checked like
 * gtr_t5_load does (every tensor of the set accounted for): name is the canonical name
 * (the tied embedding as "shared.weight"); kind says how it is stored in a quantised file. */
typedef enum { GTR_T5T_EMBED = 0, GTR_T5T_LINEAR, GTR_T5T_VECTOR } gtr_t5_tensor_kind;
typedef struct gtr_t5_tensor_ref {
    const char *name;
    gtr_t5_tensor_kind kind;
    gtr_wtensor t; /* vectors: t.w only */
} gtr_t5_tensor_ref;
/* *out is malloc'd (free it); names point into the set. */
gtr_status gtr_t5_tensor_list(gtr_tensor_set *set, const gtr_t5_config *cfg, gtr_t5_tensor_ref **out,
                              size_t *n, gtr_error *err);

/* Floats per packed token of the forward pass's activation rows (x, xn, qkv, ctx, ff). */
size_t gtr_t5_token_floats(const gtr_t5_config *c);
/* Bytes gtr_t5_forward's scratch grows to for a chunk of `tokens` rows of n texts, the longest
 * max_len, on n_threads threads, for Linear weights of wtype (what scratch_reserve allocates,
 * with gtr_linear's scratch bounded by gtr_linear_ws_bound). */
size_t gtr_t5_scratch_bytes(const gtr_t5_config *c, const gtr_kernels *kern, gtr_wtype wtype, int n_threads,
                            size_t tokens, size_t n, size_t max_len);
/* Bytes of gtr_t5_load's conversion buffers (for the largest Linear) when it packs as wtype. */
size_t gtr_t5_load_buffer_bytes(const gtr_t5_config *c, gtr_wtype wtype);
/* Packed tokens per chunk of an encode call (context.c): a quarter of the weights' bytes in
 * activations, within [16, 256] MiB and at most 8192 tokens, but at least one text of max_len. */
size_t gtr_chunk_tokens(const gtr_t5_config *c, size_t weight_bytes, int max_len);

/* Forward n texts (ids[i] with lens[i] tokens, each >= 1) packed into one matrix: writes the
 * final-norm hidden states of all tokens into *out_hidden (rows in text order; the pointer is
 * into scratch, valid until the next call). */
gtr_status gtr_t5_forward(const gtr_t5 *m, const gtr_kernels *kern, gtr_pool *pool,
                          gtr_t5_scratch *s, const int32_t *const *ids, const size_t *lens,
                          size_t n, float **out_hidden, gtr_probe_fn probe, void *probe_user,
                          gtr_error *err);

/* ---- packed files (packed.c): Linear weights stored in the kernels' layout ---- */
#define GTR_PACKED_NMATS 4 /* per layer: qkv, o, wi, wo */
#define GTR_PACKED_COLSUM_SUFFIX "_colsum"
/* "encoder.block.<layer>.packed.<qkv|o|wi|wo><suffix>" */
void gtr_packed_name(char *buf, size_t cap, int layer, int mat, const char *suffix);
/* Rows n and columns k of matrix mat as the encoder computes with it (stacked qkv / wi). */
void gtr_packed_shape(const gtr_t5_config *c, int mat, size_t *n, size_t *k);
/* The wtype of a packed tensor's dtype (*ok false: none). */
gtr_wtype gtr_packed_wtype(gtr_dtype_id dt, bool *ok);
/* Scales of an I8 tensor used in place: finite and >= 0 (F32 [rows], 4-byte aligned). */
gtr_status gtr_packed_check_scales(gtr_tensor_set *set, const gtr_tensor *sc, size_t rows, gtr_error *err);
/* Find and check matrix mat of layer in a packed set (shape against the config, companions,
 * int8 scales finite and >= 0) and make *view point at it in the mapping. */
gtr_status gtr_packed_get(gtr_tensor_set *set, const gtr_t5_config *c, int layer, int mat,
                          gtr_wmat *view, gtr_error *err);
/* The view as kern computes with it in wtype: in place (*in_place) when stored as wtype in a
 * layout kern reads, else an exact repack or a conversion (tmp: n * k floats). */
gtr_status gtr_packed_load(const gtr_wmat *view, const gtr_kernels *kern, gtr_wtype wtype,
                           gtr_pool *pool, float *tmp, gtr_wmat *w, bool *in_place, gtr_error *err);
/* Move the set's mappings into m (in-place weights point into them). */
gtr_status gtr_packed_keep_maps(gtr_t5 *m, gtr_tensor_set *set, gtr_error *err);

/* ---- head (head.c) ----------------------------------------------------- */

typedef struct gtr_head {
    int d_in, d_out;
    bool has_dense, bias, normalize;
    gtr_act_kind act;
    gtr_wmat dense;  /* [d_out, d_in] */
    float *b;        /* [d_out] or NULL */
    size_t n_params, bytes;
} gtr_head;

gtr_status gtr_head_load(gtr_head *h, const gtr_model_config *c, gtr_tensor_set *set,
                         const gtr_kernels *kern, gtr_pool *pool, uint64_t *fp, gtr_error *err);
void gtr_head_free(gtr_head *h);
/* hidden: the packed final-norm states of n texts (lens tokens each, text i from row
 * first[i]); out[n * d_out]. pooled: scratch [n * d_in]. */
void gtr_head_forward(const gtr_head *h, const gtr_kernels *kern, gtr_pool *pool,
                      const float *hidden, const size_t *lens, const size_t *first, size_t n,
                      float *pooled, float *out, gtr_probe_fn probe, void *probe_user);

/* ---- model (model.c) --------------------------------------------------- */

/* Everything a load makes; nothing in it changes afterwards except what own holds (under its
 * lock), so any number of contexts read it at once. */
struct gtr_model {
    gtr_model_config cfg;
    gtr_t5 t5;
    gtr_head head;
    gtr_tokenizer *tok;
    const gtr_kernels *kern;
    gtr_pool *pool;
    bool own_pool;
    gtr_compute_dtype dtype;
    int max_len;
    uint64_t fingerprint;
    bool has_fingerprint; /* false after a load with no_fingerprint (fingerprint then 0) */
    char *describe;
    struct gtr_model_own *own; /* gtr_model_encode's context and its lock (model.c) */
    struct gtr_cuda *cuda;     /* device "cuda[:N]": contexts encode through the GPU plugin
                                * (src/cuda; it serialises calls from several contexts) */
};

/* Tests: observe intermediate states of the context's next encode calls (NULL to stop). */
void gtr_context_set_probe(gtr_context *c, gtr_probe_fn fn, void *user);
/* While *flag is non-zero, encode calls on c stop at the next half layer and fail with
 * GTR_ERR_INTERRUPTED (the server abandons work that nobody will receive). NULL: none. */
void gtr_context_set_interrupt(gtr_context *c, const atomic_int *flag);

/* The same on the context gtr_model_encode uses. */
void gtr_model_set_probe(gtr_model *m, gtr_probe_fn fn, void *user);
/* While *flag is non-zero, encode calls on m stop at the next half layer and fail with
 * GTR_ERR_INTERRUPTED (the server abandons work that nobody will receive). NULL: none. */
void gtr_model_set_interrupt(gtr_model *m, const atomic_int *flag);


/* ---- loading big models (hf_cache.c, memcheck.c) ---- */
/* The Hugging Face hub cache directory transformers uses ($HF_HUB_CACHE, $HF_HOME/hub, ...);
 * NULL when no variable names one. Caller frees. */
char *gtr_hf_cache_root(void);
/* spec "org/name[@revision]" that is not an existing path: *out = its snapshot directory in
 * that cache (caller frees), or an error naming where it looked. An existing path or a spec
 * that is not a repository id: GTR_OK with *out = NULL (use spec as it is). */
gtr_status gtr_hf_cache_resolve(const char *spec, char **out, gtr_error *err);
/* What a load and its encode calls will allocate (memcheck.c): the model's shapes, the
 * kernels and threads it will compute with, max_len, and the texts per encode call (0: as many
 * as one chunk holds, the most any call uses). */
typedef struct gtr_mem_plan {
    const gtr_model_config *cfg;
    const gtr_kernels *kern;
    int n_threads;
    int max_len;
    size_t batch;
    int contexts; /* encode contexts working at once, n_threads / contexts threads each (<= 1: one) */
} gtr_mem_plan;
typedef struct gtr_mem_parts {
    size_t weights; /* private weights (not those used in place from a mapping) */
    size_t load;    /* the load's conversion buffers and source pages at their peak */
    size_t work;    /* one encode call's working memory */
    size_t tokens;  /* packed tokens of its largest chunk */
    size_t total;   /* weights + max(load, work) + the process's own */
} gtr_mem_parts;
/* Bytes a load of s as dtype dt needs with batches of `batch` texts (p->batch ignored). */
void gtr_mem_estimate_parts(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt,
                            size_t batch, gtr_mem_parts *out);
/* Its total with p->batch. */
size_t gtr_mem_estimate(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt);
/* Memory this process may still use: MemAvailable, or less when its cgroup is limited
 * (SIZE_MAX when neither can be read); *what names the source. */
size_t gtr_mem_available(const char **what);
/* gtr_model_quantize with the weights split into shards of at most max_shard bytes (a tensor
 * bigger than that alone in one) + model.safetensors.index.json; one file when they fit.
 * gtr_model_quantize uses transformers' default limit, 5 GB. */
#define GTR_MAX_SHARD_BYTES ((uint64_t)5000000000u)
/* The shard limit `gtr quantize` and `gtr train` write with: GTR_MAX_SHARD_BYTES, or
 * $GTR_MAX_SHARD_BYTES when set to a positive number of bytes (tests, file systems with
 * smaller files). */
uint64_t gtr_max_shard_bytes(void);
gtr_status gtr_model_quantize_sharded(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype,
                                      int n_threads, uint64_t max_shard, gtr_error *err);
/* Both: packed (the kernels' layout, used in place; packed.c) or not (the Linears row-major
 * under transformers' names, as `gtr_model_quantize_portable` writes). */
gtr_status gtr_quantize_run(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype, int n_threads,
                            uint64_t max_shard, bool packed, gtr_error *err);
/* GTR_ERR_NOMEM with one line (needed, available, the dtypes that fit) when the estimate
 * exceeds what is available (or limit, when non-zero and smaller). */
gtr_status gtr_mem_check(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt, size_t limit,
                         const char *dir, gtr_error *err);

#endif
