/*
 * core.h — internal utilities shared by every layer: errors, allocation, files
 * (whole-file reads, mmap, atomic writes), CPU features, thread pool internals.
 * Knows nothing about models or text.
 */
#ifndef GTR_CORE_H
#define GTR_CORE_H

#include "gtr.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#if defined(__GNUC__) || defined(__clang__)
#define GTR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define GTR_UNUSED __attribute__((unused))
#else
#define GTR_PRINTF(a, b)
#define GTR_UNUSED
#endif

#define GTR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GTR_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- errors ------------------------------------------------------------ */

/* Fill err (if non-NULL) and return code, so callers can write
 *   return gtr_seterr(err, GTR_ERR_FORMAT, "%s: bad header", path);
 * The library's short name for the public gtr_error_set. */
#define gtr_seterr gtr_error_set

/* Caller options over the defaults already in *dst (full = sizeof *dst). Every public options
 * struct starts with `size_t size`, which its *_default_options() sets to the struct's size
 * in the header the caller was built against: a smaller size (an older program) keeps this
 * library's defaults for the fields it lacks; 0 (not from *_default_options()) or a larger
 * size (a newer header) is GTR_ERR_INVALID_ARG naming `what`. src NULL: the defaults. */
gtr_status gtr_options_take(void *dst, size_t full, const void *src, const char *what,
                            gtr_error *err);
gtr_status gtr_vseterr(gtr_error *err, gtr_status code, const char *fmt, va_list ap);
/* Prefix an existing message: "ctx: <old message>". Returns err->code (or code if err NULL). */
gtr_status gtr_error_prefix(gtr_error *err, const char *fmt, ...) GTR_PRINTF(2, 3);
void gtr_error_clear(gtr_error *err);

/* ---- allocation -------------------------------------------------------- */

/* 64-byte aligned allocation (cache lines, AVX-512 loads); free with gtr_free_aligned.
 * Size 0 returns a valid unique pointer. Returns NULL and sets err on failure. */
void *gtr_malloc_aligned(size_t size, gtr_error *err);
void *gtr_calloc_aligned(size_t size, gtr_error *err);
void gtr_free_aligned(void *p);

/* malloc/calloc/realloc that set err on failure (with what was being allocated). */
void *gtr_xmalloc(size_t size, const char *what, gtr_error *err);
void *gtr_xcalloc(size_t n, size_t size, const char *what, gtr_error *err);
void *gtr_xrealloc(void *p, size_t size, const char *what, gtr_error *err);
/* n*size with overflow check; returns false on overflow. */
bool gtr_mul_ok(size_t a, size_t b, size_t *out);

/* Growable byte buffer. */
typedef struct gtr_buf {
    char *data;
    size_t len, cap;
} gtr_buf;
gtr_status gtr_buf_reserve(gtr_buf *b, size_t extra, gtr_error *err);
gtr_status gtr_buf_append(gtr_buf *b, const void *data, size_t len, gtr_error *err);
gtr_status gtr_buf_printf(gtr_buf *b, gtr_error *err, const char *fmt, ...) GTR_PRINTF(3, 4);
void gtr_buf_free(gtr_buf *b);

/* ---- files ------------------------------------------------------------- */

/* Read a whole file into a malloc'd buffer (NUL-terminated for convenience; *len excludes
 * the terminator). max_size 0 = no limit. */
gtr_status gtr_read_file(const char *path, size_t max_size, char **data, size_t *len,
                         gtr_error *err);
bool gtr_file_exists(const char *path);
bool gtr_dir_exists(const char *path);
/* Join a directory and a relative name into a malloc'd string (NULL on OOM). */
char *gtr_path_join(const char *dir, const char *name);
/* Positioned reads and writes that finish what a short call leaves (and retry EINTR).
 * gtr_pread_all: up to len bytes at off into buf, *got of them (fewer only at the end of the
 * file); gtr_pwrite_all: all len bytes, or GTR_ERR_IO naming path and the error. */
gtr_status gtr_pread_all(int fd, const char *path, void *buf, size_t len, uint64_t off, size_t *got,
                         gtr_error *err);
gtr_status gtr_pwrite_all(int fd, const char *path, const void *data, size_t len, uint64_t off,
                          gtr_error *err);
/* path + suffix (a work file or side file beside path: "<out>.ckpt", "<ivf>.del"); malloc'd,
 * NULL with err set when out of memory. */
char *gtr_path_suffixed(const char *path, const char *suffix, gtr_error *err);
/* Does s end with suffix (e.g. a file name with ".jsonl")? */
bool gtr_str_ends_with(const char *s, const char *suffix);

/* Document and query ids: one rule for every place an id enters (index builds) and leaves (TREC
 * runs, whose lines are split on whitespace; C strings, which end at NUL), so that an id a build
 * accepts can be written by every later command. An id is 1..GTR_MAX_ID_BYTES bytes with no NUL
 * and no ASCII whitespace (C isspace: space, \t, \n, \v, \f, \r). Returns NULL when id is
 * valid, else a static phrase saying why not ("contains whitespace", ...). */
#define GTR_MAX_ID_BYTES 65536u
const char *gtr_id_problem(const char *id, size_t len);

/* Read-only memory map of a whole file. An empty file maps to data=NULL, size=0. */
typedef struct gtr_mmap {
    const uint8_t *data;
    size_t size;
} gtr_mmap;
gtr_status gtr_mmap_open(const char *path, gtr_mmap *m, gtr_error *err);
void gtr_mmap_close(gtr_mmap *m);
/* Tell the kernel it may drop the pages of [off, off+len) (after converting them). */
void gtr_mmap_drop(const gtr_mmap *m, size_t off, size_t len);
/* Tell the kernel [off, off+len) is read at random (MADV_RANDOM): a fault reads and maps only
 * its own page, no read-ahead or fault-around (which would make a sparse reader's resident set
 * grow by 16+ pages per row it touches). */
void gtr_mmap_random(const gtr_mmap *m, size_t off, size_t len);
/* Start reading [off, off+len) in the background (MADV_WILLNEED): several rows asked for
 * before any is touched are read from disk concurrently instead of one fault at a time. */
void gtr_mmap_willneed(const gtr_mmap *m, size_t off, size_t len);

/* Atomic file writer: writes go to "<path>.tmp.<pid>" in the same directory; commit fsyncs,
 * renames over path and fsyncs the directory; abort (or a crash) leaves path untouched. */
typedef struct gtr_atomic_file {
    FILE *fp;
    char *path;
    char *tmp_path;
    gtr_status status; /* first write error, reported by commit */
    int errnum;        /* its errno */
} gtr_atomic_file;
gtr_status gtr_atomic_open(gtr_atomic_file *f, const char *path, gtr_error *err);
gtr_status gtr_atomic_write(gtr_atomic_file *f, const void *data, size_t len, gtr_error *err);
/* Overwrite bytes already written at offset off (a header completed after the data). */
gtr_status gtr_atomic_rewrite(gtr_atomic_file *f, uint64_t off, const void *data, size_t len, gtr_error *err);
gtr_status gtr_atomic_commit(gtr_atomic_file *f, gtr_error *err);
void gtr_atomic_abort(gtr_atomic_file *f);
/* Remove the temporary files "<path>.tmp.<pid>" that gtr_atomic_open made in processes that
 * no longer exist (killed before commit or abort); files of live processes are left alone.
 * Call it where a lock makes the caller the only writer of path. Best effort: failures are
 * ignored (a stray file is harmless, only untidy). */
void gtr_remove_stale_tmp(const char *path);
/* Write a whole buffer atomically. */
gtr_status gtr_write_file_atomic(const char *path, const void *data, size_t len,
                                 gtr_error *err);
/* fsync a directory (after a rename inside it). */
gtr_status gtr_fsync_dir(const char *dir, gtr_error *err);
/* mkdir -p: the library's short name for the public gtr_dir_create */
#define gtr_mkdirs gtr_dir_create
/* rm -rf: a directory with everything below it (symlinks removed, never followed), or a
 * single file; a path that does not exist is fine. */
gtr_status gtr_remove_tree(const char *path, gtr_error *err);
/* Copy a file's bytes to dst, written atomically (temp file, fsync, rename). */
gtr_status gtr_copy_file(const char *src, const char *dst, gtr_error *err);

/* ---- hashing ----------------------------------------------------------- */

/* FNV-1a 64-bit (stable file/model fingerprints; not cryptographic). */
uint64_t gtr_fnv1a64(const void *data, size_t len, uint64_t seed);
#define GTR_FNV_SEED 0xcbf29ce484222325ull
/* splitmix64: the next value of a seedable generator whose whole state is *s (no global state;
 * k-means sampling, the trainer's seeding). */
static inline uint64_t gtr_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* CRC-32C-free simple checksum for formats: CRC-32 (IEEE, as zip/zlib). */
uint32_t gtr_crc32(uint32_t crc, const void *data, size_t len);
/* gtr_crc32 of the concatenation a||b, given gtr_crc32(0, a), gtr_crc32(0, b) and b's length. */
uint32_t gtr_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/* CRC-32C (Castagnoli, as iSCSI/ext4; crc 0 to start, the result feeds the next call like
 * gtr_crc32): SSE4.2's crc32 instruction where the CPU has it (GTR_CPU=generic uses tables),
 * slicing-by-8 tables otherwise. gtr_crc32c_x4: the CRC-32C (from 0) of four separate
 * buffers of len bytes each, interleaved so one core runs near memory bandwidth (one stream
 * is bound by the instruction's latency). gtr_crc32c_generic: the table version (tests). */
uint32_t gtr_crc32c(uint32_t crc, const void *data, size_t len);
void gtr_crc32c_x4(const void *const data[4], size_t len, uint32_t out[4]);
uint32_t gtr_crc32c_generic(uint32_t crc, const void *data, size_t len);

/* ---- CPU features ------------------------------------------------------ */

typedef struct gtr_cpu {
    bool avx2, fma, f16c;
    bool avx512f, avx512bw, avx512dq, avx512vl, avx512_bf16, avx512_vnni;
    bool amx; /* AMX-TILE + AMX-BF16 + AMX-INT8, enabled by the OS for this process */
    /* vdpbf16ps issues at least at the fp32 FMA rate (AMD Zen 4/5: twice it); Intel cores
     * issue it at half their FMA rate, so there bf16 is computed with FMAs instead */
    bool dpbf16_fast;
} gtr_cpu;
/* Detected once per call (CPUID + XGETBV: the OS must enable the register state). For AMX
 * on Linux it also asks the kernel for the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM,
 * granted per process, once; refused: no AMX). The env variable
 * GTR_CPU=generic|avx2|avx512|amx caps what is used (for tests and benchmarks). */
gtr_cpu gtr_cpu_detect(void);
const char *gtr_cpu_describe(const gtr_cpu *cpu); /* static string */

/* Data cache sizes in bytes (l1d and l2 per core, l3 as reported; 0 = not reported), from
 * CPUID leaf 4 (Intel) or 0x8000001D (AMD), else the legacy AMD leaves, else sysconf. */
typedef struct gtr_cpu_caches {
    size_t l1d, l2, l3;
    bool amd; /* AuthenticAMD / HygonGenuine (Zen): the choices that follow the vendor's prefetchers */
} gtr_cpu_caches;
gtr_cpu_caches gtr_cpu_caches_detect(void);
/* The sizes described by cache descriptors in the layout of leaf 4 / 0x8000001D: regs[i] is
 * {eax, ebx, ecx, edx} of subleaf i; stops at the null descriptor (type 0). */
gtr_cpu_caches gtr_cpu_caches_decode(const uint32_t (*regs)[4], size_t n);

/* Block sizes chosen from the cache sizes (cache.c explains each); unknown sizes (0 or NULL)
 * take small defaults. dim: the vector length of the index being searched. */
typedef struct gtr_blocking {
    size_t linear_kc;      /* f32 linear: k values per block */
    size_t search_group;   /* exact search: document rows kept in L1 (multiple of 4) */
    size_t search_queries; /* query rows kept in L2 per pass (multiple of 4) */
    size_t search_docs;    /* documents per scoring call (multiple of search_group) */
    size_t search_lone;    /* a query without a full query tile (batch 1): documents per tile,
                            * 1 = one row after the other, a single sequential stream (AMD Zen);
                            * 0 = the ISA's 1 x dt1 tile (several rows read side by side) */
    bool linear_prefetch;  /* f32 / int8 AVX-512 linear: prefetch the packed weights ahead (and
                            * the rows a thread takes next) */
    bool search_pf_spread; /* exact search of many queries (score_packed), Intel Xeon: the next
                            * document tile's lines spread over the tile's work, into L2, and 4
                            * steps per loop iteration; false: a line per step into L1 until
                            * done, one step per iteration (as tuned on AMD Zen 4) */
} gtr_blocking;
gtr_blocking gtr_blocking_for(const gtr_cpu_caches *c, size_t dim);
/* Rows per gtr_linear task (f32 / int8 AVX-512 linear: how many rows each weight panel serves
 * while it is in L2; a multiple of 96) for a weight matrix of weight_bytes packed bytes. */
size_t gtr_linear_task_rows(const gtr_cpu_caches *c, size_t weight_bytes);

/* ---- thread pool ------------------------------------------------------- */

/* Run fn(ctx, i, thread_id) for i in [0, n) over the pool's threads (the caller's thread
 * takes part as thread 0). Returns when all are done. Tasks are handed out dynamically.
 * Nested calls from inside a task run serially on the calling thread. pool may be NULL
 * (serial). */
typedef void (*gtr_task_fn)(void *ctx, size_t i, int thread_id);
void gtr_pool_for(gtr_pool *pool, size_t n, gtr_task_fn fn, void *ctx);

/* ---- string interner (strmap.c) ----------------------------------------- */

/* Byte strings to dense ids 0..n-1 in insertion order (document ids, query ids, terms).
 * Keys are copied; a key pointer stays valid until the next intern call. */
#define GTR_STRMAP_NONE UINT32_MAX
typedef struct gtr_strmap_ent {
    uint64_t hash;
    uint32_t off, len;
} gtr_strmap_ent;
typedef struct gtr_strmap {
    uint32_t *slots; /* 0 = empty, else id + 1 */
    size_t cap;      /* slots, power of two */
    gtr_strmap_ent *ents;
    size_t n, ents_cap;
    gtr_buf keys;    /* NUL-terminated keys back to back */
} gtr_strmap;
void gtr_strmap_init(gtr_strmap *m);
void gtr_strmap_free(gtr_strmap *m);
/* Id of key, adding it when absent (*added tells which; added may be NULL). */
gtr_status gtr_strmap_intern(gtr_strmap *m, const char *key, size_t len, uint32_t *id,
                             bool *added, gtr_error *err);
/* Id of key or GTR_STRMAP_NONE. */
uint32_t gtr_strmap_find(const gtr_strmap *m, const char *key, size_t len);
/* The NUL-terminated key of an id (NULL when out of range); *len its length if non-NULL. */
const char *gtr_strmap_key(const gtr_strmap *m, uint32_t id, size_t *len);
/* Every id in the bytewise (strcmp) order of its key, trec_eval's order: order[0..m->n). */
gtr_status gtr_strmap_sorted_ids(const gtr_strmap *m, uint32_t *order, gtr_error *err);

/* ---- time -------------------------------------------------------------- */
double gtr_now_seconds(void); /* monotonic */

/* ---- float conversions ------------------------------------------------- */
float gtr_f16_to_f32(uint16_t h);
/* n IEEE halves (little-endian bytes at src, any alignment) to float32, as gtr_f16_to_f32;
 * true when one of them is an infinity or NaN (the fingerprint's finiteness check of an F16
 * tensor comes free with its conversion) */
bool gtr_f16_to_f32_n(const uint8_t *src, float *dst, size_t n);
/* the same in portable C (what gtr_f16_to_f32_n runs without AVX-512), and on AVX-512 */
bool gtr_f16_to_f32_n_portable(const uint8_t *src, float *dst, size_t n);
bool gtr_f16_to_f32_n_avx512(const uint8_t *src, float *dst, size_t n);
uint16_t gtr_f32_to_f16(float f);
float gtr_bf16_to_f32(uint16_t h);
uint16_t gtr_f32_to_bf16(float f); /* round to nearest even */

/* ---- UTF-8 ------------------------------------------------------------- */

/* Length of a valid UTF-8 sequence starting at s (n bytes available), or 0 if the bytes
 * there are not a valid, shortest-form, non-surrogate UTF-8 character. *cp receives it. */
size_t gtr_utf8_decode(const char *s, size_t n, uint32_t *cp);
/* Encode a code point; returns bytes written (1..4) to out[4]. */
size_t gtr_utf8_encode(uint32_t cp, char out[4]);
/* True if [s, s+n) is entirely valid UTF-8; *bad_off receives the first bad byte offset. */
bool gtr_utf8_valid(const char *s, size_t n, size_t *bad_off);

#endif /* GTR_CORE_H */
