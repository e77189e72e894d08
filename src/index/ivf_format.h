/*
 * ivf_format.h — the IVF file's header and section layout (ivf.h describes the file), shared
 * by the builder (ivf_build.c) and the reader (ivf.c).
 */
#ifndef GTR_IVF_FORMAT_H
#define GTR_IVF_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IVF_MAGIC "GTRIVF01"
#define IVF_VERSION 1u
#define IVF_HDR 64u
#define IVF_ALIGN(x) (((x) + 63u) & ~(size_t)63u)

typedef struct ivf_hdr {
    char magic[8];
    uint32_t version, dim;
    uint64_t n;
    uint32_t n_lists, pad0;
    uint64_t seed, tag;
    uint32_t body_crc, hdr_crc; /* hdr_crc covers the bytes before it */
    uint8_t pad[8];
} ivf_hdr;
_Static_assert(sizeof(ivf_hdr) == IVF_HDR, "header is 64 bytes");

/* Section offsets from the header fields (also the file size). */
typedef struct ivf_layout {
    size_t centroids, offsets, rows, scales, codes, vectors, end;
} ivf_layout;

static inline bool ivf_layout_of(size_t n, size_t dim, size_t n_lists, ivf_layout *l)
{
    /* Every product below is bounded by the file size the caller then checks; guard the
     * multiplications so a lying header cannot wrap them. */
    if (dim == 0 || dim > 65536 || n_lists == 0 || n > ((size_t)1 << 40) / dim) return false;
    size_t off = IVF_HDR;
    l->centroids = off; off = IVF_ALIGN(off + n_lists * dim * sizeof(float));
    l->offsets = off;   off = IVF_ALIGN(off + (n_lists + 1) * sizeof(uint64_t));
    l->rows = off;      off = IVF_ALIGN(off + n * sizeof(uint32_t));
    l->scales = off;    off = IVF_ALIGN(off + n * sizeof(float));
    l->codes = off;     off = IVF_ALIGN(off + n * dim);
    l->vectors = off;   off = IVF_ALIGN(off + n * dim * sizeof(float));
    l->end = off;
    return true;
}

#endif
