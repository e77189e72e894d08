/*
 * gtr.h — the one public header of libgtr: GTR dense retrieval in C.
 *
 * GTR (Ni et al., arXiv 2112.07899) embeds a text with a T5 encoder, mean pooling,
 * a bias-free Dense projection and L2 normalisation; relevance is the dot product.
 *
 * Conventions (hold for every section below):
 *  - Handles are opaque; each has a matching *_free() that accepts NULL.
 *  - Options structs start with `size_t size`: get one from its *_default_options() function,
 *    then set fields, so that a program built against this header keeps working with a later
 *    library whose struct has grown (a struct not made that way is GTR_ERR_INVALID_ARG).
 *  - Every call that can fail returns gtr_status (GTR_OK == 0) or a NULL handle, and
 *    fills the caller's gtr_error (which may be NULL) with a code and a one-line message
 *    that says what went wrong and where (file, line, tensor, ...).
 *  - The library never prints to stdout, never exits, and keeps no global mutable state:
 *    two models in one process never interfere.
 *  - Text is UTF-8 with an explicit byte length; NUL bytes are allowed inside texts.
 */
#ifndef GTR_H
#define GTR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every public function is marked GTR_API: the shared library exports nothing else. */
#if defined(__GNUC__) || defined(__clang__)
#define GTR_API __attribute__((visibility("default")))
#else
#define GTR_API
#endif

#define GTR_VERSION_MAJOR 0
#define GTR_VERSION_MINOR 1
#define GTR_VERSION_PATCH 0
#define GTR_VERSION_STRING "0.1.0"

/* ======================================================================== core */

typedef enum gtr_status {
    GTR_OK = 0,
    GTR_ERR_INVALID_ARG,   /* a caller passed something meaningless */
    GTR_ERR_IO,            /* open/read/write/rename failed */
    GTR_ERR_FORMAT,        /* a file or text is malformed / corrupt / truncated */
    GTR_ERR_NOMEM,         /* allocation failed */
    GTR_ERR_UNSUPPORTED,   /* valid input we do not implement (e.g. a pooling mode) */
    GTR_ERR_MISMATCH,      /* things that must agree do not (model vs index, shapes) */
    GTR_ERR_NOT_FOUND,     /* a named thing (file, tensor, id) does not exist */
    GTR_ERR_NETWORK,       /* a download failed */
    GTR_ERR_INTERRUPTED,   /* a callback asked to stop */
    GTR_ERR_INTERNAL       /* a bug: please report */
} gtr_status;

typedef struct gtr_error {
    gtr_status code;
    char message[1024];
} gtr_error;

/* Fill err (when non-NULL) with code and a printf-formatted one-line message, and return code:
 * for callers that implement a callback the library calls with a gtr_error (gtr_index_encoder,
 * gtr_train_comm) or that report their own failures the library's way. */
GTR_API gtr_status gtr_error_set(gtr_error *err, gtr_status code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Short stable name of a status ("format error", ...). */
GTR_API const char *gtr_status_str(gtr_status code);
/* Library version as "MAJOR.MINOR.PATCH". */
GTR_API const char *gtr_version(void);
/* Releases memory the library returned through a char ** out-parameter (gtr_tokenizer_decode,
 * gtr_tokenizer_normalize, gtr_run_format, gtr_eval_format, gtr_bm25_analyze): the library's
 * allocator, not the caller's, must free it. NULL is allowed. */
GTR_API void gtr_free(void *p);

/* Number of online CPU cores (>= 1). */
GTR_API int gtr_cpu_cores(void);
/* The instruction sets this CPU gives the kernels, e.g. "avx512 (+bf16, +vnni) + amx" (a
 * constant string). */
GTR_API const char *gtr_cpu_features(void);
/* GTR_CPU, when set and not empty, caps the kernels and must name a path: amx, avx512, avx2 or
 * generic. The kernels take any other value for the lowest path (tens of times slower), so
 * front ends call this first: GTR_ERR_INVALID_ARG with a one-line message for a value that is
 * not one of these, GTR_OK otherwise (unset and empty included). */
GTR_API gtr_status gtr_cpu_check_env(gtr_error *err);

/* Thread pool: a fixed set of worker threads that run parallel-for loops. Pass one to
 * the components that compute (model, index, ...), or let them create their own. */
typedef struct gtr_pool gtr_pool;
/* n_threads <= 0 means gtr_cpu_cores(). */
GTR_API gtr_pool *gtr_pool_create(int n_threads, gtr_error *err);
GTR_API void gtr_pool_free(gtr_pool *pool);
GTR_API int gtr_pool_size(const gtr_pool *pool);

/* Progress callback for long jobs: done/total in the job's unit (documents, steps, bytes;
 * total 0 when unknown). Return non-zero to ask the job to stop (it then fails with
 * GTR_ERR_INTERRUPTED, leaving no half-written output). */
typedef int (*gtr_progress_fn)(void *user, uint64_t done, uint64_t total);

/* ======================================================================== files */
/* (section owned by src/core/file.c and src/data/)
 * The files the library reads and writes itself, for programs that read and write their own
 * the same way (gtr tokenize, gtr embed). */

/* Text inputs: plain lines, or JSON lines holding a string or an object with "text" (and
 * "_id" or "id", "title": BEIR corpus and queries objects). */
typedef enum gtr_text_format {
    GTR_TEXT_AUTO,  /* a path ending in .jsonl / .json / .ndjson: JSONL, anything else plain */
    GTR_TEXT_PLAIN, /* one text per line; a trailing \n or \r\n is removed */
    GTR_TEXT_JSONL  /* one JSON string, or object with "text" (+ "_id", "title"), per line */
} gtr_text_format;

/* One input line. The strings are the reader's, valid until its next read or close. */
typedef struct gtr_text_record {
    const char *id;    size_t id_len;    /* an object's "_id" (or "id"); NULL when absent */
    const char *title; size_t title_len; /* an object's "title"; NULL when absent or null */
    const char *text;  size_t text_len;  /* the "text" field, the JSON string or the plain line;
                                            NULL when an object has no "text" */
    int is_object;                       /* the line is a JSON object */
    int has_title;                       /* that object has a "title" field (even null) */
    size_t line;                         /* 1-based line number */
} gtr_text_record;

typedef struct gtr_text_reader gtr_text_reader;
/* path "-" reads standard input. GTR_ERR_NOT_FOUND when path does not exist. */
GTR_API gtr_text_reader *gtr_text_reader_open(const char *path, gtr_text_format fmt, gtr_error *err);
/* The next record (*eof 0), or *eof 1 at the end. A UTF-8 byte order mark that starts the file
 * is skipped. In JSONL an empty line, invalid JSON, a value that is neither string nor object,
 * or a non-string "_id"/"title"/"text" is GTR_ERR_FORMAT naming "path:line"; a plain empty line
 * is an empty text. */
GTR_API gtr_status gtr_text_reader_read(gtr_text_reader *r, gtr_text_record *rec, int *eof,
                                        gtr_error *err);
GTR_API void gtr_text_reader_close(gtr_text_reader *r);
/* The passage of a record as BEIR's sentence-transformers wrapper builds it (the text an index
 * encodes): (title + " " + text).strip() for an object with a "title" field, text.strip() for
 * other objects (Python's str.strip: Unicode white space), the text as it is for plain lines
 * and JSON strings. An object without "text" is GTR_ERR_FORMAT. *out (NUL-terminated, *len
 * bytes) is released with gtr_free. */
GTR_API gtr_status gtr_text_record_passage(const gtr_text_record *rec, char **out, size_t *len,
                                           gtr_error *err);

/* Output files written whole or not at all, as the library writes its own: the bytes go to
 * "<path>.tmp.<pid>" beside path; commit flushes and fsyncs it, renames it over path and fsyncs
 * the folder; abort (or a crash) leaves path as it was. */
typedef struct gtr_output_file gtr_output_file;
GTR_API gtr_output_file *gtr_output_file_open(const char *path, gtr_error *err);
/* The file's stream, to write to (and seek in) until commit or abort. */
GTR_API FILE *gtr_output_file_stream(gtr_output_file *f);
/* Append len bytes; the first failure is also reported again by commit. */
GTR_API gtr_status gtr_output_file_write(gtr_output_file *f, const void *data, size_t len,
                                         gtr_error *err);
/* Put the file in place (a write error on the stream fails it). Frees f, on failure too (the
 * temporary file is then removed and path left as it was). */
GTR_API gtr_status gtr_output_file_commit(gtr_output_file *f, gtr_error *err);
/* Drop what was written and free f. NULL is allowed. */
GTR_API void gtr_output_file_abort(gtr_output_file *f);

/* Create the folder path and its missing parents (mkdir -p); a folder already there is fine,
 * anything else there is GTR_ERR_IO. */
GTR_API gtr_status gtr_dir_create(const char *path, gtr_error *err);

/* The .npy header (version 1, 128 bytes, space-padded so the row count can be rewritten in
 * place) of a little-endian float32 C-order array of shape (rows, cols), as numpy.load reads
 * it: the float32 data follows it. Returns 128, or 0 when cap < 128 or the shape does not fit. */
GTR_API size_t gtr_npy_header_f32(char *out, size_t cap, size_t rows, size_t cols);

/* ======================================================================== tokenizer */
/* (section owned by src/tokenizer/)
 * T5's SentencePiece unigram tokenizer (spiece.model), exact to the SentencePiece library,
 * plus the T5 conventions: </s> (id 1) appended, truncation keeps the first max_len-1 ids then
 * </s>. Immutable after load: encode from any number of threads at once. */

typedef struct gtr_tokenizer gtr_tokenizer;

/* Implementations of the unigram search differ in how they round path scores. That decides
 * only between segmentations of exactly equal score, i.e. runs of one repeated character
 * ("-------------------", "AAA", "_____"): 3 of the 578 reference texts and 1 of the 5,183
 * SciFact documents segment differently. */
typedef enum gtr_spm_compat {
    GTR_SPM_COMPAT_0_1 = 0, /* SentencePiece up to 0.2.1 (sums in double, stored as float):
                             * the default; the ../shared reference data and Debian 12's
                             * libsentencepiece / spm_encode */
    GTR_SPM_COMPAT_0_2_2,   /* SentencePiece 0.2.2 and later (float sums, re-based past 1e5) */
    GTR_SPM_COMPAT_HF       /* the Hugging Face tokenizers library (T5TokenizerFast), which
                             * transformers and sentence-transformers use: double sums, one
                             * lattice per word */
} gtr_spm_compat;
typedef struct gtr_tokenizer_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    gtr_spm_compat compat;
} gtr_tokenizer_options;
GTR_API gtr_tokenizer_options gtr_tokenizer_default_options(void);
/* Load spiece.model from a file or from len bytes in memory. opts may be NULL (defaults:
 * GTR_SPM_COMPAT_0_1). */
GTR_API gtr_tokenizer *gtr_tokenizer_load(const char *spm_path, const gtr_tokenizer_options *opts,
                                          gtr_error *err);
GTR_API gtr_tokenizer *gtr_tokenizer_load_memory(const void *data, size_t len,
                                                 const gtr_tokenizer_options *opts,
                                                 gtr_error *err);
/* Parses a compatibility name into *out: "hf", or a SentencePiece release, "0.1" (or any
 * release up to 0.2.1) / "0.2.2" (or any later one, e.g. "0.2.3"); GTR_ERR_INVALID_ARG for
 * anything else. */
GTR_API gtr_status gtr_spm_compat_parse(const char *s, gtr_spm_compat *out, gtr_error *err);

GTR_API void gtr_tokenizer_free(gtr_tokenizer *tok);
GTR_API int gtr_tokenizer_vocab_size(const gtr_tokenizer *tok);
GTR_API int gtr_tokenizer_eos_id(const gtr_tokenizer *tok);
GTR_API int gtr_tokenizer_pad_id(const gtr_tokenizer *tok);
GTR_API int gtr_tokenizer_unk_id(const gtr_tokenizer *tok);

/* A reusable, growable id buffer (free with gtr_ids_free). */
typedef struct gtr_ids {
    int32_t *ids;
    size_t n, cap;
} gtr_ids;
GTR_API void gtr_ids_free(gtr_ids *ids);

/* Encode len bytes of text into out (overwritten). T5 convention: the SentencePiece ids, then
 * </s>; max_len > 0 keeps the first max_len-1 ids then </s>; max_len == 0: no truncation.
 * With max_len > 0 only the start of a long text is read (cut before a space, grown until it
 * gives enough ids), so time and memory depend on max_len, not on len; the ids are exactly the
 * first ids of the whole text (for a text with no space in its first 16 * max_len + 16 KiB
 * bytes the cut falls inside a word, where this rests on the segmentation converging, as it
 * does in every text tested).
 * add_eos == 0 gives the bare SentencePiece ids (no </s>, max_len still caps the count). */
GTR_API gtr_status gtr_tokenizer_encode(const gtr_tokenizer *tok, const char *text, size_t len,
                                int max_len, int add_eos, gtr_ids *out, gtr_error *err);
/* The piece string of an id (e.g. "\xe2\x96\x81Hello"), NUL-terminated, owned by tok;
 * NULL for an out-of-range id. *len receives its byte length when len is non-NULL. */
GTR_API const char *gtr_tokenizer_piece(const gtr_tokenizer *tok, int id, size_t *len);
/* Ids back to text (pieces joined, U+2581 to space, leading space dropped, control ids
 * skipped) as SentencePiece's DecodeIds; *out (NUL-terminated) is released with gtr_free. */
GTR_API gtr_status gtr_tokenizer_decode(const gtr_tokenizer *tok, const int32_t *ids, size_t n,
                                  char **out, size_t *out_len, gtr_error *err);

/* The segmentation with its piece strings, as SentencePiece's EncodeAsPieces (no </s>, no
 * truncation): piece i has id ids[i] and text text + offs[i] (NUL-terminated, byte length
 * offs[i+1] - offs[i] - 1). A run of unknown characters is one <unk> id whose piece is the
 * normalised text it covers. Reusable: pass the same struct again; free with gtr_pieces_free. */
typedef struct gtr_pieces {
    int32_t *ids;
    size_t *offs; /* n + 1 entries */
    char *text;
    size_t n;
    size_t ids_cap, offs_cap, text_cap;
} gtr_pieces;
GTR_API gtr_status gtr_tokenizer_encode_pieces(const gtr_tokenizer *tok, const char *text, size_t len,
                                       gtr_pieces *out, gtr_error *err);
GTR_API void gtr_pieces_free(gtr_pieces *p);
/* The normalised text SentencePiece segments (NFKC rules of the model, whitespace rules,
 * spaces as U+2581); *out (NUL-terminated) is released with gtr_free. For debugging and tests. */
GTR_API gtr_status gtr_tokenizer_normalize(const gtr_tokenizer *tok, const char *text, size_t len,
                                           char **out, size_t *out_len, gtr_error *err);

/* ======================================================================== model */
/* (section owned by src/model/)
 * A GTR model directory in the sentence-transformers layout (config.json, model.safetensors
 * or pytorch_model.bin, spiece.model, modules.json, 1_Pooling/, 2_Dense/). */

typedef struct gtr_model gtr_model;

typedef enum gtr_compute_dtype {
    GTR_DTYPE_F32 = 0, /* float32 weights and math: the reference path */
    GTR_DTYPE_BF16,    /* bfloat16 weights, float32 accumulation */
    GTR_DTYPE_INT8,    /* int8 weights (per-output-channel scales), int8 activations */
    GTR_DTYPE_AUTO     /* the precision the directory stores: INT8 for a `gtr quantize --dtype
                        * int8` directory, BF16 when the Linear weights are BF16, else F32 */
} gtr_compute_dtype;

typedef struct gtr_model_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    int n_threads;                   /* <= 0: all cores (ignored when pool is given) */
    gtr_pool *pool;                  /* optional shared pool (not owned) */
    gtr_compute_dtype dtype;         /* compute precision (default F32) */
    int max_len;                     /* 0: the model's max_seq_length (512 for GTR) */
    gtr_spm_compat spm_compat;       /* tokenizer rounding on ties (default GTR_SPM_COMPAT_0_1) */
    size_t max_memory;               /* bytes the load may use; 0: what the machine has left
                                      * (MemAvailable, or the cgroup's limit when lower) */
    const char *device;              /* NULL, "" or "cpu": the CPU; "cuda" / "cuda:N": encode on
                                      * that GPU through the optional plugin libgtr-cuda.so
                                      * (loaded at run time; F32 = float32 with TF32 off, BF16 =
                                      * bf16 tensor cores). Without the plugin, a CUDA driver or
                                      * the device, the load fails with GTR_ERR_NOT_FOUND /
                                      * GTR_ERR_UNSUPPORTED: "CUDA plugin not found", "no CUDA
                                      * driver", "no CUDA device". */
    int no_verify;                   /* nonzero: skip the weight checksums of a `gtr quantize`
                                      * copy (below; the structure is still validated) */
    size_t batch_size;               /* the most texts the caller will pass to one encode call,
                                      * for the memory check (below); 0: any number (the check
                                      * counts the largest chunk an encode call computes at once) */
    int n_contexts;                  /* contexts that will encode at the same time, each on
                                      * n_threads / n_contexts threads (gtr serve --workers),
                                      * for the memory check: the weights once, each context's
                                      * working memory n_contexts times; <= 1: one */
    int no_fingerprint;              /* nonzero: do not hash the weights of an F16 checkpoint
                                      * (the format the hub ships) for the model's fingerprint
                                      * (gtr_model_fingerprint, below), for callers that only
                                      * encode: the load then reads and converts each weight
                                      * once and nothing more (xxl from F16 on AMD Zen 5: int8
                                      * 2.7 -> 2.0 s, bf16 6.5 -> 6.0 s, f32 within the noise;
                                      * bench/RESULTS.md). Non-finite weights are still
                                      * refused. A `gtr quantize` copy keeps the fingerprint it
                                      * records; any other model then has none, and building or
                                      * searching a dense index with it fails. */
} gtr_model_options;
/* Defaults: all cores, F32, model's max length. */
GTR_API gtr_model_options gtr_model_default_options(void);

/* dir: a model directory, or a Hugging Face repository id "org/name[@revision]" that is not
 * a local path, found in the cache transformers fills ($HF_HUB_CACHE, else $HF_HOME/hub, else
 * ~/.cache/huggingface/hub; refs/<revision> names the snapshot); never downloads.
 * Before converting anything the load estimates the memory the dtype needs (weights, plus the
 * larger of the load's conversion buffers and the activations of an encode call of
 * batch_size texts of max_len tokens on n_threads threads) and fails with GTR_ERR_NOMEM naming
 * needed, available, and the smaller batch and the dtypes that would fit, rather than run the
 * machine out of memory.
 * opts may be NULL (defaults). A weight that is NaN or infinite is GTR_ERR_FORMAT naming the
 * file, the tensor and the element (checked in the pass that fingerprints the weights: about
 * 0.1 s more on the 2.3 s load of a gtr-t5-base-size model). A `gtr quantize` copy records a
 * checksum of every tensor's bytes (CRC-32C, "gtr_checksums" in its __metadata__), verified
 * here on all threads unless no_verify: a damaged tensor is GTR_ERR_MISMATCH naming the file
 * and the tensor. The check reads the whole file once (the first encode reads it anyway):
 * about memory bandwidth when the file is in the page cache, the disk's speed when not;
 * bench/RESULTS.md ("Model sizes") gives the cost per size. */
GTR_API gtr_model *gtr_model_load(const char *dir, const gtr_model_options *opts, gtr_error *err);
GTR_API void gtr_model_free(gtr_model *m);
/* Output dimension (768 for released GTR models). */
GTR_API int gtr_model_dim(const gtr_model *m);
GTR_API int gtr_model_max_len(const gtr_model *m);
/* Rows of the embedding table: the token ids gtr_model_encode_ids accepts are [0, this) (T5's
 * 32,128, more than the tokenizer's 32,000 pieces). */
GTR_API int gtr_model_vocab_size(const gtr_model *m);
/* The model's tokenizer (owned by the model). */
GTR_API const gtr_tokenizer *gtr_model_tokenizer(const gtr_model *m);

/* Embed n texts (texts[i] with lens[i] bytes; lens NULL = NUL-terminated) into out[n * dim],
 * unit vectors, row-major. A text's vector does not depend on the other texts in the call.
 * A vector that is not finite (activations that overflow) is never returned: the call fails
 * with GTR_ERR_INTERNAL naming the text.
 * Thread-safe, one call at a time: it encodes in a context of the model's own behind a lock,
 * so concurrent callers take turns. To encode from several threads at once, give each thread
 * a gtr_context (below). */
GTR_API gtr_status gtr_model_encode(gtr_model *m, const char *const *texts, const size_t *lens,
                                    size_t n, float *out, gtr_error *err);
/* The same from token ids (already with </s>, at most max_len each). */
GTR_API gtr_status gtr_model_encode_ids(gtr_model *m, const int32_t *const *ids,
                                        const size_t *n_ids, size_t n, float *out,
                                        gtr_error *err);

/* An encode context: what one encode needs besides the weights (activation arena, schedule,
 * tokenizer output, threads). A loaded model is never modified, so any number of contexts
 * created from one model encode at the same time, each used by one thread at a time; the
 * weights exist once and each context adds its arena (it grows to the largest batch seen;
 * bench/RESULTS.md gives the figures). Vectors are the same bits as gtr_model_encode's,
 * whatever the contexts or threads. The model must outlive its contexts. */
typedef struct gtr_context gtr_context;
typedef struct gtr_context_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    int n_threads;  /* > 0: a pool of this many threads of the context's own; 0: see pool */
    gtr_pool *pool; /* threads to use (not owned). Neither: the model's pool, which serves one
                     * context at a time (the others then compute on their calling thread) */
} gtr_context_options;
GTR_API gtr_context_options gtr_context_default_options(void);
/* NULL with err set on failure; opts may be NULL (defaults). */
GTR_API gtr_context *gtr_context_create(const gtr_model *m, const gtr_context_options *opts,
                                        gtr_error *err);
GTR_API void gtr_context_free(gtr_context *c);
GTR_API const gtr_model *gtr_context_model(const gtr_context *c);
/* gtr_model_encode / gtr_model_encode_ids on a context: same arguments, same results. */
GTR_API gtr_status gtr_context_encode(gtr_context *c, const char *const *texts,
                                      const size_t *lens, size_t n, float *out, gtr_error *err);
GTR_API gtr_status gtr_context_encode_ids(gtr_context *c, const int32_t *const *ids,
                                          const size_t *n_ids, size_t n, float *out,
                                          gtr_error *err);
/* Human-readable description (architecture, parameter count, storage dtype, files). The
 * string is owned by the model. */
GTR_API const char *gtr_model_describe(const gtr_model *m);
/* A model folder's max_seq_length without loading the model: the "max_seq_length" of
 * <dir>/sentence_bert_config.json, 512 (T5's model_max_length) when that file is absent.
 * Unreadable JSON, a non-integer value or one outside [0, 10^9] is an error naming the file. */
GTR_API gtr_status gtr_model_dir_max_len(const char *dir, int *max_len, gtr_error *err);
/* Fingerprint of the weights and config (indexes store it to refuse a different model):
 * a 64-bit FNV-1a hash of the numbers in the config files that change the vectors (T5 shape,
 * feed-forward kind, eps, buckets, max_seq_length, Dense/Normalize setup) and of every weight
 * tensor's name, shape and float32 values in load order. It depends on the values, not on the
 * file format: the same weights as F32 safetensors or pytorch_model.bin hash alike (an F16
 * file differs from an F32 one only if its values do). Not on load options (threads, dtype,
 * max_len). Computed once at load (about one extra read of the weights). */
GTR_API uint64_t gtr_model_fingerprint(const gtr_model *m);
/* 1 when the model has a fingerprint: always, except after a load with no_fingerprint that
 * had none to take from the directory (then gtr_model_fingerprint is 0, and an index refuses
 * the model with GTR_ERR_INVALID_ARG). */
GTR_API int gtr_model_has_fingerprint(const gtr_model *m);
/* Parameter count (encoder + Dense; the tied embedding once) and the bytes the weights take
 * in the compute precision. */
GTR_API size_t gtr_model_n_params(const gtr_model *m);
GTR_API size_t gtr_model_weight_bytes(const gtr_model *m);
/* The compute precision in use (never GTR_DTYPE_AUTO: what AUTO resolved to). */
GTR_API gtr_compute_dtype gtr_model_dtype(const gtr_model *m);

/* `gtr quantize`: write a copy of the model directory in_dir to out_dir (which must not
 * exist) whose encoder weights (model.safetensors) are stored in dtype (BF16 or INT8), each
 * layer's Linear weights already packed in the layout the CPU kernels compute with
 * (__metadata__ "gtr_layout": "gtr-panels-v1"), so that a load in that dtype maps the file
 * and uses it in place: nothing is converted or copied, the pages are the page cache's, and
 * every process loading the copy shares them (kernels of another layout repack exactly):
 *  - BF16: the embedding and every Linear weight as BF16 (round to nearest even, denormals
 *    flushed: the bits --dtype bf16 computes with); layer norms and the position bias stay
 *    F32.
 *  - INT8: every Linear weight as I8 codes with F32 scales (symmetric, per output channel)
 *    and Σ codes per row, the embedding shared.weight as I8 with a scale per row;
 *    __metadata__ {"gtr_quantization": "int8-per-channel-v1"}: W = q * scale[row].
 * Only gtr reads these (gtr_model_quantize_portable writes a BF16 copy Python reads).
 * Either way the file records the source's fingerprint ("gtr_source_fingerprint"), which the
 * copy keeps (indexes built with either load with the other). Configuration files, the
 * tokenizer and the other modules (1_Pooling, 2_Dense: its weights as they are) are
 * copied; weights in other formats (pytorch_model.bin, ...) are not. Loaded with the same
 * dtype (or GTR_DTYPE_AUTO), the copy gives bit for bit the vectors of in_dir loaded with
 * that dtype. Written to "<out_dir>.tmp" (replaced if left over), fsynced, then renamed, so
 * out_dir appears complete or not at all. n_threads <= 0: all cores. Above 5 GB of tensor
 * data (transformers' default max_shard_size; $GTR_MAX_SHARD_BYTES bytes when set) the
 * weights are split as transformers saves them: model-0000k-of-0000K.safetensors +
 * model.safetensors.index.json (a tensor is never split), loaded like the single file. */
GTR_API gtr_status gtr_model_quantize(const char *in_dir, const char *out_dir, gtr_compute_dtype dtype,
                                      int n_threads, gtr_error *err);
/* A BF16 copy in transformers' own layout (every tensor under its name, row-major): Python's
 * transformers / sentence-transformers load it; gtr converts it at load (not in place). */
GTR_API gtr_status gtr_model_quantize_portable(const char *in_dir, const char *out_dir, int n_threads,
                                               gtr_error *err);

/* ======================================================================== index */
/* (section owned by src/index/)
 * A dense index on disk: document ids, the start of each passage (for display), float32
 * vectors, the identity of the model that made them (fingerprint, dimension, description) and
 * optionally a compact float16/int8 copy of the vectors. Versioned, CRC-32 checksummed,
 * memory-mapped for search; the layout is documented in src/index/format.h.
 *
 * Search is exact maximum inner product: the score of a (query, document) pair is computed
 * the same way whatever the CPU, thread count or batch (16 fused-multiply-add lanes over the
 * dimensions, then a fixed pairwise sum — see src/index/score.h), so results are reproducible
 * bit for bit. Ranking: score descending, equal scores by document id descending (bytewise),
 * the order trec_eval itself uses. */

typedef struct gtr_index gtr_index;

/* Optional compact copy of the vectors. Searching with it scans the small copy first, keeps
 * every document whose error bound could still reach the top k, and re-scores those with the
 * float32 vectors: the hits are exactly those of a float32 search, with less memory traffic. */
typedef enum gtr_index_compact {
    GTR_COMPACT_NONE = 0,
    GTR_COMPACT_F16,  /* float16 copy (half the bytes) */
    GTR_COMPACT_INT8  /* int8 copy with one scale per document (a quarter of the bytes) */
} gtr_index_compact;

/* What turns passages into vectors while building: a gtr_model (gtr_index_build) or any
 * function with a stable fingerprint (tests, other encoders). encode writes n unit vectors of
 * dim floats into out; it may fail (the build then fails with its error). */
typedef gtr_status (*gtr_encode_fn)(void *user, const char *const *texts, const size_t *lens,
                                    size_t n, float *out, gtr_error *err);
typedef struct gtr_index_encoder {
    gtr_encode_fn encode;
    void *user;
    int dim;
    uint64_t fingerprint;    /* identity of the encoder; an index refuses any other */
    const char *description; /* recorded for people (e.g. gtr_model_describe) */
} gtr_index_encoder;

typedef struct gtr_index_build_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    size_t batch_size;         /* passages per encode call (default 32) */
    size_t checkpoint_every;   /* documents between checkpoints (default 1024) */
    gtr_index_compact compact; /* also store a compact copy (default none) */
    size_t snippet_bytes;      /* bytes of each passage kept for display (default 240, 0 none) */
    const char *model_hint;    /* model directory recorded for `gtr search` without -m (NULL) */
    int no_resume;             /* 1: discard an interrupted build's work instead of resuming */
    int replace;               /* with a base: a corpus document whose id the base holds replaces
                                  it (the old one stays in the file, marked replaced, and is never
                                  returned by any search) instead of being an error */
    gtr_progress_fn progress;  /* documents done / documents in the corpus (may be NULL) */
    void *progress_user;
} gtr_index_build_options;
GTR_API gtr_index_build_options gtr_index_default_build_options(void);

typedef struct gtr_index_build_stats {
    uint64_t docs_total;   /* documents in the finished index */
    uint64_t docs_base;    /* of which came from the base index (--add) */
    uint64_t docs_resumed; /* of which came from an interrupted build's last checkpoint */
    uint64_t docs_encoded; /* of which this call encoded */
    uint64_t docs_replaced; /* base documents this call marked replaced (options.replace) */
    char note[256];        /* why an interrupted build's work was discarded ("" if not) */
} gtr_index_build_stats;

/* Encode a BEIR corpus (JSON lines {"_id","title","text"}; the passage is
 * (title + " " + text).strip() as in `gtr embed`) into the index at out_path. base: an existing
 * index the new documents are appended to (NULL for a new index; out_path may equal base).
 *
 * Crash safety: work goes to "<out_path>.partial" (document records, fsynced) and
 * "<out_path>.ckpt" (an atomically replaced checkpoint: documents done, corpus byte offset,
 * checksums of both). A later call with the same inputs resumes from the last checkpoint, with
 * no document lost or repeated; the index itself appears (temp file, fsync, rename) only when
 * complete, and the work files are then removed. A progress callback asking to stop
 * checkpoints first, then fails with GTR_ERR_INTERRUPTED.
 * Errors: a duplicate document id (in the corpus or already in base) or a malformed line names
 * the corpus line; a base index made by another encoder is GTR_ERR_MISMATCH.
 * stats may be NULL. */
GTR_API gtr_status gtr_index_build(gtr_model *model, const char *corpus, const char *base,
                                   const char *out_path, const gtr_index_build_options *opts,
                                   gtr_index_build_stats *stats, gtr_error *err);
GTR_API gtr_status gtr_index_build_with(const gtr_index_encoder *enc, const char *corpus,
                                        const char *base, const char *out_path,
                                        const gtr_index_build_options *opts,
                                        gtr_index_build_stats *stats, gtr_error *err);

/* An index over vectors already in memory, to search embeddings made in this process with the
 * same code, scores and order as an index file (gtr_negatives_mine ranks its corpus so): n
 * documents, ids[i] of id_lens[i] bytes (copied; each an id gtr index accepts), unit vectors
 * [n, dim] (finite; not copied: they must outlive the index), fingerprint as
 * gtr_index_fingerprint reports it. No snippets, no compact copy, nothing on disk. */
GTR_API gtr_index *gtr_index_wrap(const float *vectors, size_t n, int dim, const char *const *ids,
                                  const size_t *id_lens, uint64_t fingerprint, gtr_error *err);
/* Open (memory-map) an index. Every offset and size is validated and every section's
 * checksums are verified (in parallel over pool, which may be NULL); a damaged, truncated or
 * foreign file is GTR_ERR_FORMAT with a message saying what is wrong. */
#define GTR_INDEX_OPEN_NO_VERIFY 1u /* validate the structure but skip the vector checksums */
GTR_API gtr_index *gtr_index_open(const char *path, unsigned flags, gtr_pool *pool,
                                  gtr_error *err);
/* Sharded indexes (mpirun -n N gtr-mpi index --shards; docs/SCALING.md). A sharded index is
 * a manifest (a small text file at index_path) naming n shard files "<index_path>.shard-I-of-N"
 * beside it, each an ordinary index of one contiguous piece of the corpus (cut at the first
 * line start at or after I/N of its bytes), so that n processes each read, encode and write
 * one piece. gtr_index_open opens a manifest as one index: the shards' documents in order,
 * with ids, order and vectors bit-identical to gtr_index_build's single file for the same
 * corpus (so every search, evaluation and ANN build gives the same results); it copies them
 * into memory (one shard is mapped in place). A shard missing, damaged, truncated or not the
 * one the manifest was written with is GTR_ERR_FORMAT naming it.
 * gtr_index_shard_range: shard's corpus bytes [*begin, *end) and its *lines (any may be NULL);
 * GTR_ERR_INVALID_ARG when a shard would be empty. */
GTR_API gtr_status gtr_index_shard_range(const char *corpus, int shard, int n_shards, uint64_t *begin,
                                         uint64_t *end, uint64_t *lines, gtr_error *err);
/* Build shard `shard` of n_shards of the sharded index at index_path, reading only its piece
 * of corpus. first_line: the corpus lines before the piece (the earlier shards' *lines), for
 * line numbers in messages. Crash-safe and resumable like gtr_index_build (the shard file has
 * its own .partial and .ckpt); a shard finished earlier from the same corpus bytes, encoder
 * and options is kept as it is (stats->docs_resumed = its documents; no_resume rebuilds it).
 * opts->model_hint and the other options as gtr_index_build; no base index. */
GTR_API gtr_status gtr_index_build_shard(const gtr_index_encoder *enc, const char *corpus, int shard,
                                         int n_shards, uint64_t first_line, const char *index_path,
                                         const gtr_index_build_options *opts,
                                         gtr_index_build_stats *stats, gtr_error *err);
/* Once every shard is built: check that they are the consecutive pieces of corpus as it is now
 * (its size), made by one encoder with one compact kind, with no document id in two shards
 * (the corpus line of a duplicate named), and write the manifest atomically at index_path. */
GTR_API gtr_status gtr_index_write_manifest(const char *corpus, const char *index_path, int n_shards,
                                            gtr_error *err);
/* What part `part` of n_parts of a document-split search opens: for a manifest of S shards,
 * only the shards of that part (S * part / n_parts up to S * (part + 1) / n_parts; with more
 * parts than shards, one shard whose documents its parts share); for an index file, all of it.
 * [*begin, *end): the documents of the returned index this part searches; *total: documents
 * in the whole index. The parts' ranges cover the whole index once, in order. */
GTR_API gtr_index *gtr_index_open_part(const char *path, int part, int n_parts, unsigned flags,
                                       gtr_pool *pool, size_t *begin, size_t *end, size_t *total,
                                       gtr_error *err);
/* *n_shards: the shards of the sharded index whose manifest is at path (the manifest read and
 * checked, not the shards), 0 when path is not a manifest (an index file). Part s of
 * *n_shards of gtr_index_open_part is then shard s alone. */
GTR_API gtr_status gtr_index_shard_count(const char *path, int *n_shards, gtr_error *err);
GTR_API void gtr_index_free(gtr_index *ix);
GTR_API size_t gtr_index_count(const gtr_index *ix); /* documents, replaced ones included */
/* Documents replaced by a later one with the same id (gtr_index_build_options.replace): they
 * keep their number but no search returns them. gtr_index_doc_live: 1 unless doc is out of
 * range or replaced. */
GTR_API size_t gtr_index_replaced_count(const gtr_index *ix);
GTR_API int gtr_index_doc_live(const gtr_index *ix, size_t doc);
GTR_API int gtr_index_dim(const gtr_index *ix);
GTR_API uint64_t gtr_index_fingerprint(const gtr_index *ix);
GTR_API const char *gtr_index_model_description(const gtr_index *ix); /* "" when none */
GTR_API const char *gtr_index_model_hint(const gtr_index *ix);        /* NULL when none */
GTR_API gtr_index_compact gtr_index_compact_kind(const gtr_index *ix);
/* Document doc's id / passage start (not NUL-terminated; *len bytes); NULL if out of range. */
GTR_API const char *gtr_index_doc_id(const gtr_index *ix, size_t doc, size_t *len);
GTR_API const char *gtr_index_doc_snippet(const gtr_index *ix, size_t doc, size_t *len);
GTR_API const float *gtr_index_vector(const gtr_index *ix, size_t doc);
/* GTR_ERR_MISMATCH (naming both) unless m is the model the index was built with. */
GTR_API gtr_status gtr_index_check_model(const gtr_index *ix, const gtr_model *m, gtr_error *err);
/* Delete documents by id: out_path (may be path) gets the index at path with the documents of
 * ids[0..n) marked deleted, as replaced documents are (gtr_index_replaced_count counts both):
 * no search returns them, exact or through an IVF file of the index (which stays valid, as do
 * its fields file and deletions); written atomically (temp, fsync, rename). *deleted: the
 * documents newly deleted; *unknown: ids not among the index's live documents (both may be
 * NULL). */
GTR_API gtr_status gtr_index_delete(const char *path, const char *const *ids, const size_t *lens,
                                    size_t n, const char *out_path, size_t *deleted,
                                    size_t *unknown, gtr_error *err);
/* A filter by id: set bit d (byte d / 8, bit d % 8) of bitmap ((count + 7) / 8 bytes, zeroed
 * by the caller) for the document d of each id in ids[0..n) (lens[i] bytes each). Ids the
 * index does not hold (or holds only as replaced documents) set nothing: *unknown (may be
 * NULL) counts them, *first_unknown (may be NULL) is the position in ids of the first one
 * (SIZE_MAX when none). One pass over the index's ids; nothing cached, so safe from several
 * threads at once. */
GTR_API gtr_status gtr_index_allow_ids(const gtr_index *ix, const char *const *ids,
                                       const size_t *lens, size_t n, uint8_t *bitmap,
                                       size_t *unknown, size_t *first_unknown, gtr_error *err);

/* A ranked document: the one hit type of every search (gtr_index_search, gtr_ann_search,
 * gtr_bm25_search, gtr_retriever_search). */
typedef struct gtr_hit {
    size_t doc;     /* document number in the index searched (gtr_index_doc_id, gtr_bm25_doc_id);
                     * from gtr_retriever_search: in the dense index, SIZE_MAX when the dense
                     * search did not return the document (BM25 hits) */
    double score;   /* inner product or BM25 score (float values), or a fused score */
    const char *id; /* the document id: id_len bytes (not NUL-terminated) inside the open index */
    size_t id_len;
} gtr_hit;

typedef struct gtr_search_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    gtr_pool *pool;  /* threads to use (NULL: the calling thread only) */
    int use_compact; /* 1: first pass over the compact copy when the index has one */
    /* Only documents [doc_begin, doc_end) (doc_end 0: to the last): a document-split search
     * across processes, whose per-range top-k merged by (score, id) is the whole index's
     * top-k. A range is searched exactly (the compact copy is not used: the same hits). */
    size_t doc_begin, doc_end;
    /* A filter (gtr_index_allow_ids): only documents whose bit is set (byte d / 8, bit d % 8
     * of a bitmap of (count + 7) / 8 bytes) are returned, NULL: all. The hits are those of
     * an index holding only the allowed documents (same scores, same order). */
    const uint8_t *allow;
} gtr_search_options;
GTR_API gtr_search_options gtr_index_default_search_options(void);

/* Exact top-k by inner product for nq queries (row-major [nq, dim], finite). hits[i*k ...]
 * receives query i's best n_hits[i] = min(k, count) hits, best first (fewer with a filter or
 * replaced documents: those are never returned). opts may be NULL. */
GTR_API gtr_status gtr_index_search(const gtr_index *ix, const float *queries, size_t nq,
                                    size_t k, const gtr_search_options *opts, gtr_hit *hits,
                                    size_t *n_hits, gtr_error *err);

/* Fusion of ranked lists (hybrid retrieval). A ranked document: id bytes + score. */
typedef struct gtr_ranked_doc {
    const char *id;
    size_t id_len;
    double score;
} gtr_ranked_doc;

typedef enum gtr_fusion {
    GTR_FUSION_RRF = 0, /* reciprocal-rank fusion: sum over lists of 1 / (rrf_k + rank) */
    GTR_FUSION_INTERP   /* sum over lists of weight * min-max normalised score */
} gtr_fusion;

typedef struct gtr_fusion_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    gtr_fusion method;
    double rrf_k;          /* RRF constant (default 60, Cormack et al. 2009) */
    const double *weights; /* INTERP: one weight per list (NULL: equal weights) */
} gtr_fusion_options;
GTR_API gtr_fusion_options gtr_fusion_default_options(void);

/* Fuse n_lists ranked lists (lists[m]: lens[m] documents, best first, ids unique within a
 * list) into the best k: out (capacity k) receives fused scores, best first, equal scores by
 * id descending; *n_out the count. A document missing from a list gets nothing from it (RRF)
 * or a normalised score of 0, the list's minimum (INTERP); a list whose scores are all equal
 * normalises to 1. out ids point into the input lists. */
GTR_API gtr_status gtr_hits_fuse(const gtr_ranked_doc *const *lists, const size_t *lens,
                            size_t n_lists, const gtr_fusion_options *opts, size_t k,
                            gtr_ranked_doc *out, size_t *n_out, gtr_error *err);

/* ======================================================================== ann */
/* (section owned by src/index/ann.c, ivf.c; issue 14)
 * Approximate search over a dense index: an inverted-file (IVF) index, a separate file built
 * from an index's vectors. Spherical k-means lists, int8 codes scanned in the probed lists,
 * the best `rerank` candidates re-ranked exactly with the float32 vectors (kept in the same
 * file, memory-mapped). Written atomically, checksummed; tied to the index it was built from
 * (model fingerprint, document count and ids), so a stale one is refused. */
typedef struct gtr_ann gtr_ann;

typedef struct gtr_ann_build_stats {
    uint64_t docs_resumed; /* documents whose work came from an interrupted build's checkpoint */
    char note[256];        /* why an interrupted build's work was discarded ("" if not) */
} gtr_ann_build_stats;

typedef struct gtr_ann_build_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    uint32_t n_lists; /* 0: about sqrt(documents) */
    uint32_t iters;   /* k-means iterations (0: 10) */
    uint64_t seed;    /* the build is deterministic given it, for any thread count */
    gtr_pool *pool;   /* threads (NULL: the calling thread only) */
    const char *base; /* after `gtr index --add`: an IVF file built from this index before the
                         documents were appended; its lists (centroids) and deletions are kept,
                         old documents stay in their lists and new ones join the nearest (no
                         retraining) — the file a build given those lists would write */
    size_t checkpoint_every;  /* documents between checkpoints (0: 262144) */
    int no_resume;            /* 1: discard an interrupted build's work instead of resuming */
    gtr_progress_fn progress; /* assignments done / to do (k-means iterations count their
                                 sample, then one per document); non-zero stops */
    void *progress_user;
    gtr_ann_build_stats *stats; /* filled in when not NULL */
} gtr_ann_build_options;
GTR_API gtr_ann_build_options gtr_ann_default_build_options(void);
/* Build the IVF file at out_path from ix's vectors. Crash safety: work goes to
 * "<out_path>.partial" (the file being built) and "<out_path>.ckpt" (a checkpoint replaced
 * atomically every checkpoint_every documents, after an fsync of the partial file: the lists
 * of the documents done and checksums of everything it relies on). A later call with the same
 * index and options after a crash, a failed write (a full disk) or a progress callback asking
 * to stop (which checkpoints, then fails with GTR_ERR_INTERRUPTED) resumes from the last
 * checkpoint, to the bytes an uninterrupted build writes; the file appears (fsync, rename)
 * only when complete, and the work files are then removed. */
GTR_API gtr_status gtr_ann_build(const gtr_index *ix, const char *out_path,
                                 const gtr_ann_build_options *opts, gtr_error *err);
/* Open an IVF file and check it was built from ix (GTR_ERR_MISMATCH otherwise), with its
 * deletions ("<path>.del", if present; checked likewise). ix must outlive the handle. */
GTR_API gtr_ann *gtr_ann_open(const char *path, const gtr_index *ix, gtr_error *err);
GTR_API void gtr_ann_free(gtr_ann *a);
GTR_API uint32_t gtr_ann_n_lists(const gtr_ann *a);
/* Delete documents by id: never returned by gtr_ann_search again. Durable before it returns
 * ("<path>.del", written atomically, checksummed, tied to the index's ids); kept by a rebuild
 * from the same index with --add (base). Ids not in the index are counted in *unknown (may be
 * NULL). Not concurrently with searches on the same handle. */
GTR_API gtr_status gtr_ann_delete(gtr_ann *a, const char *const *ids, const size_t *lens,
                                  size_t n, size_t *unknown, gtr_error *err);
GTR_API size_t gtr_ann_deleted_count(const gtr_ann *a);
/* A filter: set bit d (byte d / 8, bit d % 8) of bitmap ((count + 7) / 8 bytes, zeroed by the
 * caller) for each document d whose id is in ids; ids not in the index counted in *unknown. */
GTR_API gtr_status gtr_ann_allow_ids(gtr_ann *a, const char *const *ids, const size_t *lens,
                                     size_t n, uint8_t *bitmap, size_t *unknown, gtr_error *err);

typedef struct gtr_ann_search_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    uint32_t nprobe; /* lists scanned per query (0: 8) */
    uint32_t rerank; /* candidates re-ranked exactly (0: 4 * k) */
    gtr_pool *pool;  /* threads; results do not depend on it */
    const uint8_t *allow; /* a filter (gtr_ann_allow_ids): only documents whose bit is set are
                             returned (NULL: all); deleted documents never are */
} gtr_ann_search_options;
GTR_API gtr_ann_search_options gtr_ann_default_search_options(void);
/* Pick the smallest nprobe (doubling 1, 2, 4, ... up to every list, then bisecting) whose
 * recall@k against exact search (gtr_index_search) reaches target_recall, on sample_n documents of the index used as
 * queries (chosen with seed; each one's own hit is left out of both rankings). *nprobe and
 * *recall receive the choice and its measured recall (every list when none reaches it). */
GTR_API gtr_status gtr_ann_tune(const gtr_ann *a, double target_recall, size_t k,
                                size_t sample_n, uint64_t seed, gtr_pool *pool,
                                uint32_t *nprobe, double *recall, gtr_error *err);
/* Like gtr_index_search (same hits layout, same scores, equal scores by id descending),
 * approximately: the probed lists' candidates only. */
GTR_API gtr_status gtr_ann_search(const gtr_ann *a, const float *queries, size_t nq, size_t k,
                                  const gtr_ann_search_options *opts, gtr_hit *hits,
                                  size_t *n_hits, gtr_error *err);

/* ======================================================================== fields */
/* (section owned by src/index/fields.c; issue 14)
 * Metadata filters, as Chroma's where={"field": value}: the fields of each document, kept in a
 * side file "<index>.fields" (written atomically, checksummed, tied to the index's ids; a stale
 * or damaged one is refused). Kept from each corpus line: the scalar members of its "metadata"
 * object and its other top-level scalar members but "_id", "title", "text" (a metadata member
 * wins over a top-level one of the same name); strings as they are, integers in decimal, reals
 * as %.17g, booleans true/false; arrays, objects and nulls are not kept. */
typedef struct gtr_fields gtr_fields;
/* Write out_path with the fields of ix's documents from corpus (JSON lines with "_id"; each
 * id must be a live document of ix, once). base_path (may be NULL or absent): the fields file
 * of the index ix was extended from (gtr index --add): its documents keep their fields and
 * corpus then gives the appended ones. When no document has a field, out_path is removed
 * instead (*written 0; written may be NULL). */
GTR_API gtr_status gtr_fields_build(const gtr_index *ix, const char *corpus, const char *base_path,
                                    const char *out_path, int *written, gtr_error *err);
/* Open a fields file of ix (GTR_ERR_MISMATCH when made for another index). */
GTR_API gtr_fields *gtr_fields_open(const char *path, const gtr_index *ix, gtr_error *err);
GTR_API void gtr_fields_free(gtr_fields *f);
GTR_API size_t gtr_fields_count(const gtr_fields *f);             /* distinct field names */
GTR_API const char *gtr_fields_name(const gtr_fields *f, size_t i);
/* A filter for gtr_search_options.allow / gtr_retrieve_options.allow: set bit d of bitmap
 * (zeroed by the caller, (count + 7) / 8 bytes) for each live document d whose fields match
 * every condition names[c] = values[c]: the stored text equals the value, or both are numbers
 * (the field an integer or real) of equal value ("2019" matches 2019 and 2019.0). A name no
 * document has is GTR_ERR_NOT_FOUND (a typo would otherwise match nothing). *matched (may be
 * NULL): the documents set. */
GTR_API gtr_status gtr_fields_where(const gtr_fields *f, const gtr_index *ix, const char *const *names,
                                    const char *const *values, size_t n, uint8_t *bitmap,
                                    size_t *matched, gtr_error *err);

/* ======================================================================== bm25 */
/* (section owned by src/bm25/)
 * BM25 as Anserini runs it on BEIR ("flat" indexes): the document text is title + " " + text,
 * analyzed like Lucene's EnglishAnalyzer as Anserini configures it (StandardTokenizer word
 * splitting per UAX #29, English possessive removal, lower-casing, Lucene's 33 English stop
 * words, Porter stemming); scoring is Lucene's BM25Similarity (k1 = 0.9, b = 0.4 by default;
 * idf = ln(1 + (N - df + 0.5) / (df + 0.5)); no (k1 + 1) factor; document lengths through
 * Lucene's lossy one-byte norm; float arithmetic as Lucene); a query term repeated n times
 * counts n times, as in Anserini's bag-of-words queries. The index is one versioned,
 * checksummed file, written atomically and memory-mapped for search. */

typedef struct gtr_bm25 gtr_bm25;

typedef struct gtr_bm25_build_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    gtr_pool *pool;           /* threads for analysis (NULL: the calling thread only) */
    gtr_progress_fn progress; /* documents done (total 0: unknown); non-zero return stops */
    void *progress_user;
} gtr_bm25_build_options;
GTR_API gtr_bm25_build_options gtr_bm25_default_build_options(void);

typedef struct gtr_bm25_build_stats {
    uint64_t docs, terms, postings, tokens;
} gtr_bm25_build_stats;

/* Index a BEIR corpus (JSON lines {"_id", "title", "text"}) into out_path (written to a
 * temporary file, fsynced, renamed). A line without "_id", a duplicate id or malformed JSON
 * is GTR_ERR_FORMAT naming "corpus:line". opts and stats may be NULL. */
GTR_API gtr_status gtr_bm25_build(const char *corpus, const char *out_path,
                                  const gtr_bm25_build_options *opts,
                                  gtr_bm25_build_stats *stats, gtr_error *err);

/* Open (memory-map) an index; every section's checksum and every offset is verified, so a
 * damaged or truncated file is GTR_ERR_FORMAT saying what is wrong. */
GTR_API gtr_bm25 *gtr_bm25_open(const char *path, gtr_error *err);
GTR_API void gtr_bm25_free(gtr_bm25 *ix);
GTR_API size_t gtr_bm25_num_docs(const gtr_bm25 *ix);
GTR_API size_t gtr_bm25_num_terms(const gtr_bm25 *ix);
/* Document doc's id (NUL-terminated; *len its length if non-NULL); NULL if out of range. */
GTR_API const char *gtr_bm25_doc_id(const gtr_bm25 *ix, size_t doc, size_t *len);
/* The document number of an id, or SIZE_MAX when the index has no such document. */
GTR_API size_t gtr_bm25_find_doc(const gtr_bm25 *ix, const char *id, size_t len);

typedef struct gtr_bm25_search_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    float k1, b;       /* defaults 0.9 and 0.4 (Anserini) */
    int exact_lengths; /* 1: exact document lengths instead of Lucene's one-byte norms */
    gtr_pool *pool;    /* threads over queries (NULL: the calling thread only) */
    /* Optional, one per query (entries may be NULL): a document id never returned for that
     * query. Pass the query ids to get BEIR's ignore_identical_ids (Anserini's -removeQuery). */
    const char *const *skip_ids;
    gtr_progress_fn progress; /* queries done / nq */
    void *progress_user;
    /* Only documents [doc_begin, doc_end) (doc_end 0: to the last) are returned, scored with
     * the whole index's statistics (document frequencies, average length): a document-split
     * search across processes, whose per-range top-k merged by (score, id) is the whole
     * index's top-k. */
    size_t doc_begin, doc_end;
} gtr_bm25_search_options;
GTR_API gtr_bm25_search_options gtr_bm25_default_search_options(void);

/* Top-k documents for each of nq queries (texts[i] with lens[i] bytes; lens NULL: NUL-
 * terminated). hits[i * k ...] receives query i's n_hits[i] <= k hits, best first: score
 * descending, equal scores by document id descending (bytewise, trec_eval's order). Only
 * documents sharing a term with the query are returned. opts NULL: defaults. */
GTR_API gtr_status gtr_bm25_search(const gtr_bm25 *ix, const char *const *texts,
                                   const size_t *lens, size_t nq, size_t k,
                                   const gtr_bm25_search_options *opts, gtr_hit *hits,
                                   size_t *n_hits, gtr_error *err);

/* The analyzer alone: the index terms of a text, space-separated (*out released with gtr_free,
 * NUL-terminated). For inspecting what BM25 matches on. */
GTR_API gtr_status gtr_bm25_analyze(const char *text, size_t len, char **out, size_t *out_len,
                                    gtr_error *err);

/* ======================================================================== retrieval */
/* (section owned by src/retrieval/)
 * Query texts in, ranked hits out: the one retrieval pipeline. `gtr search`, `gtr beir`,
 * gtr-mpi, the server's /search, the Python binding and gtr_negatives_mine all run it. A
 * retriever is opened over a dense index (optionally searched approximately through an IVF
 * index) and/or a BM25 index; each search names its method:
 *  - dense: the queries are encoded (by the retriever's model, in batches) or given as vectors,
 *    then exact top-k (gtr_index_search) or approximate (gtr_ann_search);
 *  - bm25: gtr_bm25_search;
 *  - hybrid: both, `depth` hits from each, fused (gtr_hits_fuse) into the best k.
 * Queries go through in chunks of 256, so the memory besides the caller's hits is bounded by
 * the chunk, not the number of queries. Hits are those the underlying searches give, in their
 * order: the same bits whatever the thread count or chunking. Safe to search from several
 * threads at once on one retriever when the model is (gtr_model_encode serialises) or when
 * vectors are given. */

typedef enum gtr_retrieval_method {
    GTR_RETRIEVE_DENSE = 0, /* encode the query, top-k in the dense index */
    GTR_RETRIEVE_BM25,      /* BM25 index only (no model work) */
    GTR_RETRIEVE_HYBRID     /* both, fused */
} gtr_retrieval_method;
/* "dense" (or "gtr"), "bm25", "hybrid"; GTR_ERR_INVALID_ARG otherwise. */
GTR_API gtr_status gtr_retrieval_method_parse(const char *s, gtr_retrieval_method *out,
                                              gtr_error *err);
/* "dense", "bm25" or "hybrid". */
GTR_API const char *gtr_retrieval_method_name(gtr_retrieval_method m);

typedef struct gtr_retriever gtr_retriever;
typedef struct gtr_retriever_options {
    size_t size;         /* sizeof the struct: set by the *_default_options() function */
    gtr_model *model;    /* encodes query texts for dense and hybrid (not owned; may be NULL
                          * when every search gives vectors); checked against index */
    const gtr_index *index; /* dense index (not owned) */
    const gtr_ann *ann;  /* optional IVF index of `index` (gtr_ann_open): approximate dense search */
    const gtr_bm25 *bm25; /* BM25 index (not owned) */
    gtr_pool *pool;      /* threads for searching (not owned; NULL: the calling thread only) */
} gtr_retriever_options;
GTR_API gtr_retriever_options gtr_retriever_default_options(void);
/* NULL with err set: no index at all, an ann without its index (GTR_ERR_INVALID_ARG), a model
 * that did not build the index (GTR_ERR_MISMATCH). Everything in opts must outlive the
 * retriever. */
GTR_API gtr_retriever *gtr_retriever_open(const gtr_retriever_options *opts, gtr_error *err);
GTR_API void gtr_retriever_free(gtr_retriever *r);

typedef struct gtr_retrieve_options {
    size_t size;                 /* sizeof the struct: set by the *_default_options() function */
    gtr_retrieval_method method; /* default dense */
    size_t k;                    /* hits per query (default 10) */
    size_t depth;                /* hybrid: hits taken from each method before fusion (default
                                  * 1000; k when smaller than k) */
    gtr_fusion_options fusion;   /* hybrid: how (default RRF, k 60) */
    double alpha;                /* hybrid INTERP: weight of the dense scores, BM25 gets 1 - alpha
                                  * (default 0.5) */
    /* Optional, one per query (NUL-terminated; entries may be NULL): a document id never
     * returned for that query. Pass the query ids for BEIR's ignore_identical_ids. */
    const char *const *skip_ids;
    int use_compact;             /* dense: first pass over the index's compact copy (same hits) */
    uint32_t nprobe;             /* dense with an ann: lists scanned per query (0: its default) */
    const float *vectors;        /* optional [nq, dim] query vectors: used instead of encoding
                                  * the texts (a server that batches its own encodes, vectors
                                  * made elsewhere); texts are then needed only for BM25 */
    size_t batch;                /* texts per encode call (default 64) */
    gtr_progress_fn progress;    /* queries done / nq, after each chunk; non-zero stops */
    void *progress_user;
    size_t doc_begin, doc_end;   /* dense, exact: only these documents (gtr_search_options) */
    const uint8_t *allow;        /* dense: a filter over the dense index's documents
                                  * (gtr_index_allow_ids; exact and approximate search); NULL:
                                  * none. BM25 and hybrid refuse a filter. */
} gtr_retrieve_options;
GTR_API gtr_retrieve_options gtr_retrieve_default_options(void);

/* Search nq queries (texts[i] with lens[i] bytes; lens NULL: NUL-terminated). hits[i * k ...]
 * receives query i's n_hits[i] <= k hits, best first (score descending, equal scores by id
 * descending, as trec_eval ranks); their ids point into the retriever's indexes. opts NULL:
 * defaults. A method whose index (or model and vectors) the retriever lacks is
 * GTR_ERR_INVALID_ARG. */
GTR_API gtr_status gtr_retriever_search(gtr_retriever *r, const char *const *texts,
                                        const size_t *lens, size_t nq,
                                        const gtr_retrieve_options *opts, gtr_hit *hits,
                                        size_t *n_hits, gtr_error *err);

/* ======================================================================== eval */
/* (section owned by src/eval/)
 * Evaluation with the semantics and output of NIST trec_eval 10.0: relevance judgments
 * (qrels), ranked runs, and the measures num_q, num_ret, num_rel, num_rel_ret, map,
 * recip_rank, P.K, recall.K, ndcg, ndcg_cut.K, map_cut.K.
 *  - A run is ranked as trec_eval ranks it: score descending, equal scores by document id
 *    descending (bytewise); the rank column of a run file is ignored.
 *  - A document is relevant when its judgment is >= 1; ndcg gains are the judgment levels;
 *    a judgment < 0 means "in the pool but unjudged" (never relevant, no gain).
 *  - Averaging: by default over the judged queries that appear in the run (what BEIR reports
 *    through pytrec_eval); with GTR_EVAL_COMPLETE (trec_eval -c) over every judged query, a
 *    query absent from the run scoring 0. Run queries without judgments are ignored and
 *    counted (gtr_eval_num_unjudged). */

/* Relevance judgments. */
typedef struct gtr_qrels gtr_qrels;
/* Reads TREC qrels ("qid iter docid rel", whitespace separated) or BEIR qrels TSV
 * ("query-id<TAB>corpus-id<TAB>score", header line optional), told apart by the number of
 * fields. '#' comment lines and blank lines are skipped. rel must be an integer. A malformed
 * line or a repeated (query, document) pair in a TREC file is GTR_ERR_FORMAT naming
 * "path:line" (in a BEIR TSV the last judgment wins, as BEIR's loader does). */
GTR_API gtr_qrels *gtr_qrels_load(const char *path, gtr_error *err);
/* The same from text in memory; name stands for the file in error messages. */
GTR_API gtr_qrels *gtr_qrels_parse(const char *text, size_t len, const char *name,
                                   gtr_error *err);
GTR_API void gtr_qrels_free(gtr_qrels *q);
/* Judged queries, ordered by id (bytewise, trec_eval's order). */
GTR_API size_t gtr_qrels_num_queries(const gtr_qrels *q);
GTR_API const char *gtr_qrels_query_id(const gtr_qrels *q, size_t i);
/* 1 when the query (len bytes) has judgments. */
GTR_API int gtr_qrels_has_query(const gtr_qrels *q, const char *qid, size_t len);

/* A ranked run: for each query, documents with scores. */
typedef struct gtr_run gtr_run;
GTR_API gtr_run *gtr_run_new(gtr_error *err);
/* Reads a TREC run ("qid Q0 docid rank score tag", whitespace separated; further fields,
 * blank lines and '#' comment lines ignored). A malformed line, a score that is not a number,
 * or a document listed twice for one query is GTR_ERR_FORMAT naming "path:line". */
GTR_API gtr_run *gtr_run_load(const char *path, gtr_error *err);
GTR_API gtr_run *gtr_run_parse(const char *text, size_t len, const char *name, gtr_error *err);
GTR_API void gtr_run_free(gtr_run *run);
/* Add one scored document (ids of qid_len / docid_len bytes, non-empty, without NUL bytes,
 * copied; score must not be NaN). A document added twice to one query is GTR_ERR_INVALID_ARG. */
GTR_API gtr_status gtr_run_add(gtr_run *run, const char *qid, size_t qid_len, const char *docid,
                               size_t docid_len, double score, gtr_error *err);
/* Make a query part of the run even if it retrieved nothing (it then counts in the default
 * averaging with every measure 0, as an empty result list does in BEIR). */
GTR_API gtr_status gtr_run_add_query(gtr_run *run, const char *qid, size_t qid_len,
                                     gtr_error *err);
/* A query's ranked hits (gtr_retriever_search), the first max_rank of them, as documents of the
 * run; the query is part of the run even with no hits (gtr_run_add_query). */
GTR_API gtr_status gtr_run_add_hits(gtr_run *run, const char *qid, size_t qid_len,
                                    const gtr_hit *hits, size_t n, size_t max_rank,
                                    gtr_error *err);
GTR_API size_t gtr_run_num_queries(const gtr_run *run);
GTR_API size_t gtr_run_num_docs(const gtr_run *run); /* (query, document) pairs */
/* The run as TREC text: queries in the order they were first added, each ranked as
 * trec_eval ranks it (ranks 1..n), scores printed so that re-reading gives the same ranking
 * (float-valued scores with 9 significant digits, others with 17). tag: the last column
 * (NULL: "gtr"; must not contain whitespace). *out (NUL-terminated) is released with gtr_free. */
GTR_API gtr_status gtr_run_format(const gtr_run *run, const char *tag, char **out,
                                  size_t *len, gtr_error *err);
/* The same written atomically to path. */
GTR_API gtr_status gtr_run_write(const gtr_run *run, const char *path, const char *tag,
                                 gtr_error *err);

/* A set of measures, as given to trec_eval with -m. */
typedef struct gtr_measures gtr_measures;
/* spec: whitespace-separated trec_eval measure names, each optionally with comma-separated
 * cutoffs: "ndcg_cut.10,100 recall.100 map recip_rank". A cutoff measure named without
 * cutoffs ("P") gets trec_eval's defaults 5,10,15,20,30,100,200,500,1000; cutoffs given for
 * one measure in several words are merged. NULL or "" selects the default set, the one BEIR
 * reports (GTR_EVAL_DEFAULT_MEASURES). Unknown names and bad cutoffs are GTR_ERR_INVALID_ARG. */
#define GTR_EVAL_DEFAULT_MEASURES                                                            \
    "ndcg_cut.1,3,5,10,100,1000 map_cut.10,100,1000 recall.1,5,10,100,1000 P.1,5,10,100 "     \
    "recip_rank map ndcg num_q num_ret num_rel num_rel_ret"
GTR_API gtr_measures *gtr_measures_parse(const char *spec, gtr_error *err);
GTR_API void gtr_measures_free(gtr_measures *m);

#define GTR_EVAL_COMPLETE 1u /* trec_eval -c: average over every judged query */

typedef struct gtr_eval_result gtr_eval_result;
/* Evaluate run against qrels. measures NULL = the default set. Fails (GTR_ERR_MISMATCH) when
 * no query is evaluated (no judged query in the run, without GTR_EVAL_COMPLETE). */
GTR_API gtr_eval_result *gtr_run_evaluate(const gtr_qrels *qrels, const gtr_run *run,
                                  const gtr_measures *measures, unsigned flags, gtr_error *err);
GTR_API void gtr_eval_free(gtr_eval_result *r);
/* Result columns in trec_eval's print order, named as trec_eval prints them ("ndcg_cut_10",
 * "P_5", "num_q", ...); the same names key `gtr beir --json`. */
GTR_API size_t gtr_eval_num_values(const gtr_eval_result *r);
GTR_API const char *gtr_eval_value_name(const gtr_eval_result *r, size_t j);
/* Summary ("all") value of column j: a mean, or a total for the num_* counts. */
GTR_API double gtr_eval_value(const gtr_eval_result *r, size_t j);
/* Summary value by column name; NaN when that column was not computed. */
GTR_API double gtr_eval_get(const gtr_eval_result *r, const char *name);
/* Evaluated queries (ordered by id) and their per-query values. */
GTR_API size_t gtr_eval_num_queries(const gtr_eval_result *r);
GTR_API const char *gtr_eval_query_id(const gtr_eval_result *r, size_t i);
GTR_API double gtr_eval_query_value(const gtr_eval_result *r, size_t i, size_t j);
/* Run queries that have no judgments (ignored), ordered by id. */
GTR_API size_t gtr_eval_num_unjudged(const gtr_eval_result *r);
GTR_API const char *gtr_eval_unjudged_id(const gtr_eval_result *r, size_t i);
/* trec_eval's output, byte for byte: with per_query (-q) each query's lines first (queries
 * in id order, num_q omitted), then the summary lines "measure<TAB>all<TAB>value".
 * *out (NUL-terminated) is released with gtr_free. */
GTR_API gtr_status gtr_eval_format(const gtr_eval_result *r, int per_query, char **out,
                                   size_t *len, gtr_error *err);

/* ======================================================================== beir */
/* (section owned by src/data/beir.c)
 * A BEIR dataset folder as BEIR's GenericDataLoader reads it: corpus.jsonl ({"_id", "title",
 * "text"} per line), queries.jsonl ({"_id", "text"}) and qrels/<split>.tsv. The one place these
 * paths are built; every command and library job that reads a BEIR folder reads it here. */

typedef struct gtr_beir gtr_beir;
/* Open dir for split (NULL: "test"; a name without '/'). Only builds the paths and checks that
 * the three files exist: GTR_ERR_NOT_FOUND "<dir> is not a BEIR dataset folder: it needs
 * corpus.jsonl, queries.jsonl and qrels/<split>.tsv" otherwise. */
GTR_API gtr_beir *gtr_beir_open(const char *dir, const char *split, gtr_error *err);
GTR_API void gtr_beir_free(gtr_beir *b);
/* The dataset's name (the folder's last component, e.g. "scifact") and split. */
GTR_API const char *gtr_beir_name(const gtr_beir *b);
GTR_API const char *gtr_beir_split(const gtr_beir *b);
/* The files: <dir>/corpus.jsonl, <dir>/queries.jsonl, <dir>/qrels/<split>.tsv. */
GTR_API const char *gtr_beir_corpus_path(const gtr_beir *b);
GTR_API const char *gtr_beir_queries_path(const gtr_beir *b);
GTR_API const char *gtr_beir_qrels_path(const gtr_beir *b);
/* The folder where `gtr beir` keeps the dataset's indexes between runs, created when missing:
 * <root>/beir/<name>-<CRC-32 of corpus.jsonl, 8 hex digits>, so an edited corpus gets a fresh
 * folder. root: cache_root when non-NULL, else $GTR_CACHE, else $XDG_CACHE_HOME/gtr, else
 * $HOME/.cache/gtr, else .gtr-cache (empty variables count as unset). *dir is released with
 * gtr_free. */
GTR_API gtr_status gtr_beir_cache_dir(const gtr_beir *b, const char *cache_root, char **dir,
                                      gtr_error *err);
/* The split's judgments (gtr_qrels_load of gtr_beir_qrels_path). */
GTR_API gtr_qrels *gtr_beir_load_qrels(const gtr_beir *b, gtr_error *err);

/* Queries: ids with texts, in file order. */
typedef struct gtr_queries gtr_queries;
/* Read BEIR queries (JSON lines {"_id", "text"}). Every id must be one a TREC run can hold
 * (non-empty, no whitespace or NUL, at most 65536 bytes) and appear once; a line without "_id"
 * or "text" is GTR_ERR_FORMAT naming "path:line". With judged non-NULL, only the queries judged
 * there are kept, and a judged query missing from the file is GTR_ERR_FORMAT (BEIR's loader
 * fails on it too). */
GTR_API gtr_queries *gtr_queries_load(const char *path, const gtr_qrels *judged, gtr_error *err);
/* gtr_queries_load of the folder's queries.jsonl. */
GTR_API gtr_queries *gtr_beir_load_queries(const gtr_beir *b, const gtr_qrels *judged,
                                           gtr_error *err);
/* An empty set, filled with gtr_queries_add (id and text copied; id_len / len bytes). */
GTR_API gtr_queries *gtr_queries_new(gtr_error *err);
GTR_API gtr_status gtr_queries_add(gtr_queries *q, const char *id, size_t id_len,
                                   const char *text, size_t len, gtr_error *err);
GTR_API void gtr_queries_free(gtr_queries *q);
GTR_API size_t gtr_queries_count(const gtr_queries *q);
/* Query i's id / text (NUL-terminated copies; *len their byte length); NULL out of range. */
GTR_API const char *gtr_queries_id(const gtr_queries *q, size_t i, size_t *len);
GTR_API const char *gtr_queries_text(const gtr_queries *q, size_t i, size_t *len);
/* The same as arrays of count entries, for the batch calls (gtr_retriever_search); valid
 * until the next gtr_queries_add or gtr_queries_free. */
GTR_API const char *const *gtr_queries_ids(const gtr_queries *q);
GTR_API const size_t *gtr_queries_id_lens(const gtr_queries *q);
GTR_API const char *const *gtr_queries_texts(const gtr_queries *q);
GTR_API const size_t *gtr_queries_text_lens(const gtr_queries *q);

/* A corpus read one document at a time: its id and its passage as BEIR builds it,
 * (title + " " + text).strip(). */
typedef struct gtr_corpus gtr_corpus;
typedef struct gtr_corpus_doc {
    const char *id;      /* id_len bytes, valid until the next gtr_corpus_next */
    size_t id_len;
    const char *passage; /* passage_len bytes, likewise */
    size_t passage_len;
    size_t line;         /* 1-based line of the corpus file */
} gtr_corpus_doc;
GTR_API gtr_corpus *gtr_corpus_open(const char *path, gtr_error *err);
/* gtr_corpus_open of the folder's corpus.jsonl. */
GTR_API gtr_corpus *gtr_beir_open_corpus(const gtr_beir *b, gtr_error *err);
/* The next document (*eof 0), or *eof 1 at the end. Malformed JSON or a line without "_id" is
 * GTR_ERR_FORMAT naming "path:line". */
GTR_API gtr_status gtr_corpus_next(gtr_corpus *c, gtr_corpus_doc *doc, int *eof, gtr_error *err);
GTR_API void gtr_corpus_close(gtr_corpus *c);

/* ======================================================================== train */
/* (section owned by src/train/)
 * Contrastive fine-tuning of a GTR model the way the paper trains it: queries and passages go
 * through the same encoder + head; the loss is t5x_retrieval's bidirectional in-batch softmax
 * with hard negatives:
 *     logits_q = q·[p; n]ᵀ/τ  (cross-entropy toward each query's own positive)
 *     logits_p = p·qᵀ/τ       (cross-entropy toward each positive's own query)
 *     loss = (CE_q + CE_p) / 2,   τ = 0.01
 * A batch's negatives are shared by all its queries. Examples that repeat a query or a
 * positive within a batch are not used as each other's negatives.
 * Float32 forward and backward written out layer by layer (no autograd), Adafactor (as GTR
 * trains: factored second moments, decay exponent 0.8, update clipping at RMS 1, no
 * momentum) or AdamW, linear warm-up + linear decay. The batch is processed in micro-batches
 * so a large batch fits in little memory without changing the loss: the embeddings of the
 * whole batch are computed first (no activations kept), the loss and its gradient with
 * respect to every embedding over the whole batch, then each micro-batch runs forward again
 * keeping activations and backward from those embedding gradients.
 * Deterministic: the same data, options and seed give bit-identical weights whatever the
 * number of threads; a run resumed from a checkpoint ends bit-identical to one that was
 * never interrupted. */

typedef enum gtr_optimizer { GTR_OPTIM_ADAFACTOR = 0, GTR_OPTIM_ADAMW } gtr_optimizer;
typedef enum gtr_lr_schedule {
    GTR_LR_LINEAR = 0, /* linear warm-up over warmup_steps, then linear decay toward 0 */
    GTR_LR_CONSTANT    /* linear warm-up, then constant */
} gtr_lr_schedule;

typedef struct gtr_train_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    int n_threads;            /* <= 0: all cores (ignored when pool is given) */
    gtr_pool *pool;           /* optional shared pool (not owned) */
    gtr_optimizer optimizer;  /* default Adafactor */
    double lr;                /* peak learning rate (1e-3) */
    gtr_lr_schedule schedule; /* default linear */
    uint64_t total_steps;     /* optimizer steps of the run (the decay reaches 0 after it) */
    uint64_t warmup_steps;    /* default 0 */
    size_t batch_size;        /* examples per optimizer step; in-batch negatives span it (32) */
    size_t micro_batch;       /* examples per forward/backward keeping activations (0: all) */
    int n_negatives;          /* hard negatives drawn per example when it has some (1) */
    int query_max_len;        /* tokens incl. </s> (64, as GTR fine-tuning) */
    int passage_max_len;      /* (256) */
    double tau;               /* softmax temperature (0.01) */
    double weight_decay;      /* AdamW decoupled decay, on every parameter (0.01) */
    double beta1, beta2, eps; /* AdamW (0.9, 0.999, 1e-8) */
    double decay_rate;        /* Adafactor: beta2_t = 1 - t^decay_rate (-0.8) */
    double clip_threshold;    /* Adafactor: update RMS clip (1.0) */
    double eps1;              /* Adafactor: added to g² (1e-30) */
    uint64_t seed;            /* data order and negative sampling (0) */
    int recompute;            /* 1: keep only each layer's input, recompute the rest in
                                 backward (less memory for long passages, ~30% more time) */
    gtr_spm_compat spm_compat; /* how the training texts are tokenized on ties (0.1) */
} gtr_train_options;
GTR_API gtr_train_options gtr_train_default_options(void);

/* Training examples: a query, one positive passage, optional hard negatives. */
typedef struct gtr_train_data gtr_train_data;
/* JSON lines {"query": "...", "pos": "..." or ["...", ...], "neg": ["...", ...]} ("neg"
 * optional; "positive"/"negative"/"negatives" accepted too). A line with several positives
 * gives one example per positive. Errors name "path:line". */
GTR_API gtr_train_data *gtr_train_data_load_jsonl(const char *path, gtr_error *err);
/* A BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv): one example per judged
 * (query, document) pair with relevance >= 1; the passage is (title + " " + text).strip(). No
 * hard negatives (mine them with gtr_negatives_mine for a second stage). */
GTR_API gtr_train_data *gtr_train_data_load_beir(const char *dir, const char *split,
                                                 gtr_error *err);
GTR_API void gtr_train_data_free(gtr_train_data *d);
GTR_API size_t gtr_train_data_count(const gtr_train_data *d);
/* Examples that have at least one hard negative. */
GTR_API size_t gtr_train_data_count_negatives(const gtr_train_data *d);

typedef struct gtr_trainer gtr_trainer;
/* Start from any model directory gtr_model_load reads (a released GTR, a previous stage).
 * The data must outlive the trainer. opts NULL: defaults (total_steps then 1). */
GTR_API gtr_trainer *gtr_trainer_create(const char *init_dir, const gtr_train_data *data,
                                        const gtr_train_options *opts, gtr_error *err);
GTR_API void gtr_trainer_free(gtr_trainer *t);
GTR_API size_t gtr_trainer_n_params(const gtr_trainer *t);
GTR_API int gtr_trainer_dim(const gtr_trainer *t);

typedef struct gtr_train_step_info {
    uint64_t step;     /* steps done after this one */
    double epoch;      /* examples consumed / examples in the data */
    double loss;       /* of this step's batch, before the update */
    double lr;         /* learning rate used */
    uint64_t tokens;   /* tokens through forward + backward (all texts of the batch) */
    double seconds;    /* wall time of the step */
} gtr_train_step_info;
/* One optimizer step on the next batch. info may be NULL. */
GTR_API gtr_status gtr_trainer_step(gtr_trainer *t, gtr_train_step_info *info, gtr_error *err);
GTR_API uint64_t gtr_trainer_step_count(const gtr_trainer *t);

/* Training state (parameters, optimizer state, step, data position, RNG, and the identity of
 * the options, data and initial model) written atomically to path. */
GTR_API gtr_status gtr_trainer_save_checkpoint(const gtr_trainer *t, const char *path,
                                               gtr_error *err);
/* Continue from a checkpoint: t must have been created from the same initial model, data and
 * options (threads aside); anything else is GTR_ERR_MISMATCH saying what differs. A damaged
 * file is GTR_ERR_FORMAT. */
GTR_API gtr_status gtr_trainer_load_checkpoint(gtr_trainer *t, const char *path, gtr_error *err);

/* Data-parallel training across processes (bin/gtr-mpi runs it over MPI; libgtr itself never
 * depends on MPI). Every process creates the same trainer (same initial model, data, options
 * and, after a resume, the same checkpoint) and attaches the collectives below; then each
 * gtr_trainer_step is collective. Micro-batch c of the C = ceil(batch / micro_batch) of a step
 * goes to rank r when ceil(C·r/N) <= c < ceil(C·(r+1)/N). Each rank encodes its micro-batches,
 * the embeddings are all-gathered, so every query is scored against every passage of the global
 * batch (cross-replica negatives), and each rank back-propagates its micro-batches. Gradients
 * are summed in micro-batch order, G = ((g_0 + g_1) + g_2) + ..., exactly as the single
 * process sums them: rank r receives the sum of the micro-batches before its own from rank r-1,
 * adds its own and passes it on (in segments of 2^18 floats, so the chain pipelines);
 * the last rank broadcasts the total and every rank takes the same optimizer step. The trained
 * model is therefore bit-identical to the single-process run with the same batch and
 * micro-batch size, for any number of ranks. Rank 0 holds one gradient buffer besides the
 * total; every other rank one per micro-batch it back-propagates (micro_batch = batch / ranks:
 * one). Callbacks return 0 on success. */
typedef struct gtr_train_comm {
    size_t size; /* sizeof the struct */
    int rank, n_ranks;
    void *user;
    /* every rank passes counts[rank] bytes; all receives every rank's bytes in rank order */
    int (*allgather)(void *user, const void *mine, size_t n, void *all, const size_t *counts);
    int (*send)(void *user, int to, const float *x, size_t n);
    int (*recv)(void *user, int from, float *x, size_t n);
    int (*bcast)(void *user, int root, float *x, size_t n);
} gtr_train_comm;
/* Attach (comm NULL: detach). Not collective; every rank must attach before its first step. */
GTR_API gtr_status gtr_trainer_set_comm(gtr_trainer *t, const gtr_train_comm *comm, gtr_error *err);
/* What must be equal on every rank before a collective step: the initial model, the data, every
 * option that changes the numbers, the step and the data position. */
GTR_API uint64_t gtr_trainer_fingerprint(const gtr_trainer *t);

/* Write the current model as a sentence-transformers directory that gtr and Python's
 * sentence-transformers load unchanged: the initial directory's configuration files and
 * spiece.model, model.safetensors (F32, Hugging Face names) and 2_Dense/model.safetensors
 * (linear.weight). Staged beside out_dir and renamed into place when complete; an existing
 * out_dir is replaced only when overwrite is non-zero. */
GTR_API gtr_status gtr_trainer_save_model(const gtr_trainer *t, const char *out_dir,
                                          int overwrite, gtr_error *err);

/* Embed texts with the current parameters (is_query: truncate at query_max_len, else at
 * passage_max_len): the vectors gtr_model_encode gives for the saved model. */
GTR_API gtr_status gtr_trainer_encode(gtr_trainer *t, const char *const *texts,
                                      const size_t *lens, size_t n, int is_query, float *out,
                                      gtr_error *err);

/* Hard negatives for a second training stage: every judged query of <dir>/qrels/<split>.tsv
 * is embedded with m, the corpus searched exhaustively, and the best-ranked documents that
 * are not judged relevant become its negatives. Writes JSON lines {"query", "pos", "neg"}
 * (one line per query, its relevant documents as "pos") atomically to out_path, the format
 * gtr_train_data_load_jsonl reads. */
typedef struct gtr_negatives_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    size_t k;                 /* negatives per query (default 8) */
    size_t skip;              /* best-ranked non-relevant documents skipped first (0): they
                                 are often unjudged positives */
    size_t batch;             /* texts per encode call (default 64) */
    int max_len;              /* passage tokens (0: the model's) */
    int query_max_len;        /* query tokens (default 64) */
    gtr_progress_fn progress; /* corpus documents embedded / corpus size */
    void *progress_user;
} gtr_negatives_options;
GTR_API gtr_negatives_options gtr_negatives_default_options(void);
typedef struct gtr_negatives_stats {
    size_t queries, docs, negatives;
} gtr_negatives_stats;
GTR_API gtr_status gtr_negatives_mine(gtr_model *m, const char *dir, const char *split,
                                      const gtr_negatives_options *opts, const char *out_path,
                                      gtr_negatives_stats *stats, gtr_error *err);

/* ======================================================================== server */
/* (section owned by src/server/)
 * An HTTP/1.1 server with an OpenAI-compatible embeddings API:
 *   POST /v1/embeddings  {"input": "text" | ["text", ...] | [ids] | [[ids], ...], "model": ...,
 *                        "encoding_format": "float" | "base64", "dimensions": dim}
 *   POST /search         {"query": "text", "k": 10, "method": ...} -> one result
 *                        {"queries": ["text", ...], ...} -> {"object": "list", "data": [result,
 *                        ...]} (when a dense and/or BM25 index is given)
 *   GET  /health, GET /metrics (Prometheus text), GET /v1/models
 * Every answer is JSON (but /metrics); errors, those about malformed HTTP included, use OpenAI's
 * shape {"error": {"message", "type", "param", "code"}}. No non-finite number is ever sent.
 *
 * Hostile clients: a request must arrive whole within request_timeout_s (408); one address may
 * hold max_client_connections connections (429); when all max_connections are taken, a new
 * connection replaces an idle one or the slowest arriving request (so slow clients cannot lock
 * others out). Memory is bounded by options: request data held at once (bodies, parsed JSON,
 * answers) by max_pending_bytes, token ids by max_pending_tokens (503 beyond either), answers
 * by max_hits; tokenizing reads only what max_len can use (README, "Memory").
 *
 * Concurrent requests are batched: each connection's thread parses and tokenizes its request,
 * then queues its texts; one batcher thread, the only user of the model while the server runs,
 * forms batches of up to max_batch_tokens tokens, waiting at most max_wait_ms for more
 * texts once the oldest queued text arrived — and not at all when no other request is on its
 * way (every request being read is already queued). A text's vector never depends on its batch, so
 * the vectors are those of gtr_model_encode. When `queue` requests are already waiting, a new
 * one is answered 503 with Retry-After. */

/* One line per answered request ("POST /v1/embeddings 200 3.1 ms 12 inputs"), for access logs. */
typedef void (*gtr_server_log_fn)(void *user, const char *line);

typedef struct gtr_server_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    const char *host;          /* numeric address or name to listen on (default "127.0.0.1") */
    int port;                  /* 0: any free port (gtr_server_port tells which); default 8080 */
    gtr_model *model;          /* required; not owned; encoded by the batcher's workers only */
    const char *model_name;    /* the "model" of responses (default "gtr") */
    gtr_index *index;          /* optional dense index for /search (not owned; must match model) */
    gtr_bm25 *bm25;            /* optional BM25 index for /search (not owned) */
    gtr_retrieval_method method; /* default /search method (default: dense if index, else bm25) */
    gtr_fusion_options fusion; /* hybrid: how the two lists are fused (default RRF, k 60) */
    double alpha;              /* hybrid interp: weight of the dense scores (default 0.5) */
    size_t depth;              /* hybrid: hits taken from each method (default 1000, >= k) */
    size_t max_k;              /* largest k a /search request may ask (default 1000) */
    size_t max_hits;           /* largest queries * k of one /search request (default 100000) */
    size_t max_batch_tokens;   /* token budget of one encoder batch (default 16384) */
    int max_wait_ms;           /* longest a queued text waits for a fuller batch (default 5) */
    size_t queue;              /* requests waiting for the encoder before 503 (default 256) */
    int workers;               /* encoder threads, each a gtr_context over the one model: batches
                                * encode side by side, the cores shared out (default 1) */
    size_t max_body;           /* request body limit in bytes, 413 beyond (default 16 MiB) */
    size_t max_inputs;         /* inputs per request, 400 beyond (default 2048, as OpenAI) */
    size_t max_pending_bytes;  /* request bodies, parsed JSON and answers held at once, 503
                                * beyond (default 256 MiB; at least max_body) */
    size_t max_pending_tokens; /* token ids held by requests at once, 503 beyond (default 2^20) */
    int no_truncate;           /* 1: an input longer than the model's max_len is 400, not cut */
    unsigned max_connections;  /* concurrent connections, one thread each (default 512) */
    unsigned max_client_connections; /* from one client address (default 64), 429 beyond */
    unsigned idle_timeout_s;   /* close a connection idle this long between requests (default 60) */
    unsigned request_timeout_s; /* a request must arrive whole (and its answer be taken) within
                                 * this long, 408 beyond (default 30) */
    unsigned drain_timeout_s;  /* shutdown: longest wait for in-flight requests (default 30) */
    gtr_server_log_fn log;     /* access log (NULL: none) */
    void *log_user;
    const gtr_ann *ann;        /* optional IVF index of `index` (gtr_ann_open, not owned): dense
                                * /search is approximate, its deletions applied */
    uint32_t nprobe;           /* with ann: lists scanned per query (0: its default) */
    const gtr_fields *fields;  /* optional metadata fields of `index` (gtr_fields_open, not
                                * owned): /search takes "where" */
} gtr_server_options;
GTR_API gtr_server_options gtr_server_default_options(void);

typedef struct gtr_server gtr_server;

/* Bind host:port, start the batcher and the HTTP threads, and return: the server runs in the
 * background until gtr_server_shutdown/free. Fails (GTR_ERR_IO naming the address) when the
 * address cannot be bound, GTR_ERR_MISMATCH when the index was made by another model,
 * GTR_ERR_INVALID_ARG for meaningless options. The model, indexes and strings in opts must
 * outlive the server. */
GTR_API gtr_server *gtr_server_start(const gtr_server_options *opts, gtr_error *err);
/* The port actually bound (the ephemeral one when opts->port was 0). */
GTR_API int gtr_server_port(const gtr_server *s);
/* Graceful stop: stop accepting connections, answer requests that arrive on open connections
 * with 503, let every admitted request finish until drain_timeout_s; then every request still
 * unfinished is answered 503 shutting_down (never a silently closed connection) and its work is
 * abandoned (queued texts dropped, the batch being encoded interrupted). Returns within about
 * drain_timeout_s + 2 s. Idempotent. Call it from a normal thread, not from a signal handler (the
 * gtr tool blocks SIGTERM/SIGINT and waits for them with sigwait). */
GTR_API void gtr_server_shutdown(gtr_server *s);
/* Shut down if running, and free. NULL is fine. */
GTR_API void gtr_server_free(gtr_server *s);

/* ======================================================================== download */
/* (section owned by src/net/)
 * Fetch models from the Hugging Face hub and BEIR datasets from their public address, over
 * HTTP(S) with libcurl. Downloads are resumable (an interrupted run leaves a partial file that
 * the next run continues with an HTTP Range request), size-checked (Content-Length, the hub's
 * X-Linked-Size) and, for the hub's large (LFS) files, checked against their SHA-256. The
 * destination appears atomically: files are staged in "<dest>.partial/" and the finished
 * directory is renamed into place, so a directory that exists is complete.
 * The library does not change signal dispositions: a program that downloads should ignore
 * SIGPIPE (signal(SIGPIPE, SIG_IGN), as the gtr tool does), or a peer closing a TLS
 * connection can end the process instead of failing the transfer. */

typedef enum gtr_download_event {
    GTR_DOWNLOAD_RESOLVED, /* hub: name = revision asked for, detail = the commit it resolved to */
    GTR_DOWNLOAD_START,    /* a file starts: name, size = bytes already present (resume), detail = URL */
    GTR_DOWNLOAD_DONE,     /* a file is complete and verified: name, size */
    GTR_DOWNLOAD_SKIPPED,  /* an optional or fallback file is absent: name, detail = why */
    GTR_DOWNLOAD_RETRY,    /* a transfer failed and is retried: name, size = bytes so far, detail = why */
    GTR_DOWNLOAD_EXTRACT,  /* unpacking an archive starts: name, detail = destination (progress
                            * then counts uncompressed bytes) */
    GTR_DOWNLOAD_PRESENT   /* the destination already exists: nothing downloaded; detail = path */
} gtr_download_event;

typedef void (*gtr_download_event_fn)(void *user, gtr_download_event ev, const char *name,
                                      uint64_t size, const char *detail);

/* Start from gtr_download_default_options(); a negative max_retries or retry_delay_ms and a
 * timeout <= 0 mean the default. */
typedef struct gtr_download_options {
    size_t size; /* sizeof the struct: set by the *_default_options() function */
    /* Where to download from. gtr_model_download: the hub (NULL: $HF_ENDPOINT, else
     * https://huggingface.co). gtr_dataset_download: the folder holding NAME.zip (NULL:
     * $GTR_BEIR_URL, else https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets). */
    const char *endpoint;
    /* Hub access token sent as "Authorization: Bearer" (never to a redirect's other host).
     * NULL: $HF_TOKEN, else the file $HF_HOME/token (default ~/.cache/huggingface/token)
     * that `huggingface-cli login` writes, else none. "" forces none. */
    const char *token;
    const char *revision;      /* hub branch, tag or commit (NULL: "main") */
    int force;                 /* replace an existing destination instead of keeping it */
    int max_retries;           /* per file, after a dropped connection or 5xx (default 5) */
    int retry_delay_ms;        /* first back-off (default 1000; doubles each retry, max 30 s) */
    int connect_timeout_s;     /* default 30 */
    int stall_timeout_s;       /* give up when no byte arrives for this long (default 60) */
    gtr_progress_fn progress;  /* bytes of the current file (total 0 when unknown) */
    gtr_download_event_fn on_event;
    void *user;                /* passed to progress and on_event */
} gtr_download_options;
GTR_API gtr_download_options gtr_download_default_options(void);

/* Download a sentence-transformers model (GTR and other T5 encoders) from the hub into dir:
 * modules.json, then for every module the files it needs (config.json,
 * sentence_bert_config.json, spiece.model, 1_Pooling/config.json, 2_Dense/config.json, ...),
 * weights as transformers looks for them (model.safetensors, else the shards named by
 * model.safetensors.index.json, else pytorch_model.bin, else pytorch_model.bin.index.json's
 * shards; each shard resumable and checked like any file), plus the small optional tokenizer/config files when present. URL of a file:
 * <endpoint>/<repo_id>/resolve/<revision>/<file>; every file after the first comes from the
 * commit the revision resolved to, so the set is consistent. If dir already exists (and is
 * not empty) nothing is downloaded unless opts->force. opts may be NULL (defaults).
 * Errors: GTR_ERR_NOT_FOUND (no such repository, revision or required file: nothing is left
 * on disk), GTR_ERR_INVALID_ARG (bad id, or access refused: a token is needed),
 * GTR_ERR_NETWORK (unreachable, or retries exhausted: "<dir>.partial/" is kept and the same
 * call resumes), GTR_ERR_MISMATCH (size or checksum), GTR_ERR_FORMAT (bad modules.json),
 * GTR_ERR_IO (local files), GTR_ERR_INTERRUPTED (the progress callback asked to stop).
 * $HF_HUB_OFFLINE=1 (as in huggingface_hub): GTR_ERR_NETWORK instead of any request when dir
 * is not already there. */
GTR_API gtr_status gtr_model_download(const char *repo_id, const char *dir,
                               const gtr_download_options *opts, gtr_error *err);
/* The same into the Hugging Face cache that transformers and sentence-transformers read
 * ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), so Python and gtr share
 * one copy: models--ORG--NAME/snapshots/<commit>/ (files stored in the snapshot, not linked
 * into blobs/) and refs/<revision> naming the commit. A revision already there is not
 * downloaded again unless opts->force (GTR_DOWNLOAD_PRESENT). The snapshot directory is
 * written to snapshot[cap] (GTR_ERR_INVALID_ARG when it does not fit). */
GTR_API gtr_status gtr_model_download_cache(const char *repo_id, const gtr_download_options *opts,
                                     char *snapshot, size_t cap, gtr_error *err);

/* Download <endpoint>/<name>.zip (a BEIR dataset such as "scifact") and unpack it into
 * <parent_dir>/<name> (corpus.jsonl, queries.jsonl, qrels/). Entries with absolute paths,
 * ".." components or links are refused. If <parent_dir>/<name> exists nothing is downloaded
 * unless opts->force. opts may be NULL (defaults). Errors as gtr_model_download's; GTR_ERR_FORMAT
 * for an unusable archive (removed, so the next call downloads it afresh). No hub token is
 * sent. */
GTR_API gtr_status gtr_dataset_download(const char *name, const char *parent_dir,
                                        const gtr_download_options *opts, gtr_error *err);

#ifdef __cplusplus
}
#endif
#endif /* GTR_H */
