/*
 * format.h — the on-disk layout of a gtr dense index (version 1). Everything little-endian.
 *
 *   offset 0    header, GTR_IX_HEADER_BYTES (128):
 *                 0  magic "GTRINDEX"          8  u32 version (1)     12  u32 header bytes (128)
 *                16  u64 file size            24  u64 documents      32  u32 dim
 *                36  u32 sections (<= 16)     40  u64 model fingerprint
 *                48  u32 checksum chunk bytes (power of two, 4 KiB .. 64 MiB)
 *                52  u32 compact kind (0 none, 1 f16, 2 int8)
 *                56..119 zero                120 u32 CRC-32 of the CRC section
 *               124  u32 CRC-32 of bytes [0, 124) followed by the section table
 *   offset 128  section table: one 32-byte entry per section:
 *                 u32 kind, u32 zero, u64 offset, u64 size, u64 first chunk
 *   sections    each at a 64-byte aligned offset, in table order, not overlapping:
 *     META      JSON object: model description and directory hint, compact kind, sources
 *     IDS       string table of the document ids
 *     SNIPPETS  string table of each passage's first bytes (for people to read)
 *     VECTORS   float32 [documents, dim], row-major
 *     COMPACT   (optional) float16 or int8 [documents, dim]
 *     CAUX      (optional) per document float32 {scale, error bound, norm} for COMPACT
 *     DEAD      (optional) bitmap of (documents + 7) / 8 bytes, bit d (byte d / 8, bit d % 8)
 *               set: document d was replaced by a later document with the same id (gtr index
 *               --add --replace) and is never returned; padding bits zero. Replaced documents
 *               keep their place, so documents are only ever appended (IVF files stay valid
 *               prefixes). Among the other documents every id is unique.
 *     CRCS      u32 CRC-32 of every chunk (chunk bytes) of every other section, in table
 *               order; a section's chunks start at its "first chunk" entry
 *   A string table is u64 offsets[documents + 1] (offsets[0] = 0, non-decreasing) followed by
 *   the bytes; string i is bytes[offsets[i], offsets[i+1]).
 *
 * Why chunked checksums: one CRC per 1 MiB chunk lets the reader verify a multi-gigabyte
 * vector section on every core and name the damaged place. No timestamps or absolute build
 * state are stored, so building the same corpus twice (or resuming) gives identical bytes.
 */
#ifndef GTR_INDEX_FORMAT_H
#define GTR_INDEX_FORMAT_H

#include <stdint.h>

/* Vectors and string-table offsets are used in place from the mapped file. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the gtr index format is little-endian; this host is not"
#endif

#define GTR_IX_MAGIC "GTRINDEX"
#define GTR_IX_VERSION 1u
#define GTR_IX_HEADER_BYTES 128u
#define GTR_IX_ENTRY_BYTES 32u
#define GTR_IX_MAX_SECTIONS 16u
#define GTR_IX_ALIGN 64u
#define GTR_IX_CHUNK_BYTES (1u << 20)
#define GTR_IX_MIN_CHUNK (1u << 12)
#define GTR_IX_MAX_CHUNK (1u << 26)
#define GTR_IX_MAX_DIM 65536u
/* Per-document strings are short in practice; a cap keeps a hostile file from making a
 * reader allocate or print gigabytes. */
#define GTR_IX_MAX_ID_BYTES 65536u /* = GTR_MAX_ID_BYTES (core.h), the one id rule */

enum gtr_ix_section_kind {
    GTR_IX_META = 1,
    GTR_IX_IDS = 2,
    GTR_IX_SNIPPETS = 3,
    GTR_IX_VECTORS = 4,
    GTR_IX_COMPACT = 5,
    GTR_IX_CAUX = 6,
    GTR_IX_CRCS = 7,
    GTR_IX_DEAD = 8,
    GTR_IX_KIND_MAX = 8
};

/* CAUX entry per document (three float32). */
#define GTR_IX_CAUX_FLOATS 3u

typedef struct gtr_ix_section {
    uint32_t kind;
    uint64_t offset, size, first_chunk;
} gtr_ix_section;

typedef struct gtr_ix_header {
    uint32_t version;
    uint64_t file_size;
    uint64_t n_docs;
    uint32_t dim;
    uint32_t n_sections;
    uint64_t fingerprint;
    uint32_t chunk_bytes;
    uint32_t compact;
    uint32_t crcs_crc;
    gtr_ix_section sections[GTR_IX_MAX_SECTIONS];
} gtr_ix_header;

/* Little-endian field access (the format is fixed; hosts may not be). */
static inline uint32_t gtr_ix_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t gtr_ix_rd64(const uint8_t *p)
{
    return (uint64_t)gtr_ix_rd32(p) | (uint64_t)gtr_ix_rd32(p + 4) << 32;
}
static inline void gtr_ix_wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void gtr_ix_wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

const char *gtr_ix_kind_name(uint32_t kind);

#endif
