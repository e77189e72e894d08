/* cache.c — the data cache sizes of this CPU (CPUID, as the vendor reports them) and the
 * block sizes chosen from them, so the kernels keep their working sets in L1 / L2 on any x86
 * family instead of sizes tuned on one (48 KB L1d + 2 MB L2 on a Xeon, 32 KB + 1 MB on Zen 4).
 *
 * Intel describes each cache with CPUID leaf 4, AMD (with topology extensions, Zen and later)
 * with leaf 0x8000001D in the same register layout; older AMD parts only have the legacy
 * 0x80000005 / 0x80000006 sizes. Where nothing answers, Linux's sysconf, then defaults. */
#include "core.h"

#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* defaults for a CPU that reports nothing: small enough to stay in cache on any current core */
#define DEF_L1D ((size_t)32 << 10)
#define DEF_L2 ((size_t)512 << 10)

gtr_cpu_caches gtr_cpu_caches_decode(const uint32_t (*regs)[4], size_t n)
{
    gtr_cpu_caches c = {0, 0, 0, false};
    for (size_t i = 0; i < n; i++) {
        uint32_t eax = regs[i][0], ebx = regs[i][1], ecx = regs[i][2];
        unsigned type = eax & 31, level = (eax >> 5) & 7;
        if (type == 0) break;   /* no more caches */
        if (type == 2) continue; /* instruction cache */
        size_t ways = (ebx >> 22) + 1, parts = ((ebx >> 12) & 0x3ff) + 1, line = (ebx & 0xfff) + 1;
        size_t bytes = ways * parts * line * ((size_t)ecx + 1);
        if (level == 1) c.l1d = bytes;
        else if (level == 2) c.l2 = bytes;
        else if (level == 3) c.l3 = bytes;
    }
    return c;
}

#if defined(__x86_64__) || defined(__i386__)
static size_t read_leaf(unsigned leaf, uint32_t (*regs)[4], size_t max)
{
    size_t n = 0;
    for (; n < max; n++) {
        unsigned a, b, c, d;
        __cpuid_count(leaf, (unsigned)n, a, b, c, d);
        regs[n][0] = a, regs[n][1] = b, regs[n][2] = c, regs[n][3] = d;
        if ((a & 31) == 0) return n + 1;
    }
    return n;
}

static gtr_cpu_caches from_cpuid(void)
{
    gtr_cpu_caches c = {0, 0, 0, false};
    unsigned max, b, cx, d, a;
    if (!__get_cpuid(0, &max, &b, &cx, &d)) return c;
    char vendor[13];
    memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &cx, 4);
    vendor[12] = 0;
    bool amd = strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0;
    uint32_t regs[16][4];
    if (!amd && max >= 4) return gtr_cpu_caches_decode((const uint32_t(*)[4])regs, read_leaf(4, regs, 16));
    if (!amd) return c;
    unsigned ext = __get_cpuid_max(0x80000000u, NULL);
    if (ext >= 0x80000001u) {
        __cpuid(0x80000001u, a, b, cx, d);
        if (((cx >> 22) & 1) && ext >= 0x8000001Du) /* topology extensions */
            c = gtr_cpu_caches_decode((const uint32_t(*)[4])regs, read_leaf(0x8000001Du, regs, 16));
    }
    if (!c.l1d && ext >= 0x80000005u) {
        __cpuid(0x80000005u, a, b, cx, d);
        c.l1d = (size_t)(cx >> 24) << 10;
    }
    if (!c.l2 && ext >= 0x80000006u) {
        __cpuid(0x80000006u, a, b, cx, d);
        c.l2 = (size_t)(cx >> 16) << 10;
        c.l3 = (size_t)(d >> 18) * (512u << 10);
    }
    c.amd = true;
    return c;
}
#else
static gtr_cpu_caches from_cpuid(void) { return (gtr_cpu_caches){0, 0, 0, false}; }
#endif

static size_t sysconf_size(int name)
{
    long v = sysconf(name);
    return v > 0 ? (size_t)v : 0;
}

gtr_cpu_caches gtr_cpu_caches_detect(void)
{
    gtr_cpu_caches c = from_cpuid();
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    if (!c.l1d) c.l1d = sysconf_size(_SC_LEVEL1_DCACHE_SIZE);
    if (!c.l2) c.l2 = sysconf_size(_SC_LEVEL2_CACHE_SIZE);
    if (!c.l3) c.l3 = sysconf_size(_SC_LEVEL3_CACHE_SIZE);
#else
    (void)sysconf_size;
#endif
    return c;
}

static size_t clamp(size_t v, size_t lo, size_t hi) { return v < lo ? lo : v > hi ? hi : v; }
static size_t round_down(size_t v, size_t m) { return v / m * m; }

gtr_blocking gtr_blocking_for(const gtr_cpu_caches *c, size_t dim)
{
    size_t l1 = c && c->l1d >= ((size_t)8 << 10) ? c->l1d : DEF_L1D;
    size_t l2 = c && c->l2 >= ((size_t)64 << 10) ? c->l2 : DEF_L2;
    size_t row = (dim ? dim : 1) * sizeof(float);
    gtr_blocking b;
    /* f32 linear: a k block of the 96-row activation block plus one 64-column weight sliver,
     * (96 + 64) · 4 bytes per k, in two thirds of L2 (1 MB → 1024, as tuned on Zen 4) */
    b.linear_kc = clamp(round_down(l2 * 2 / 3 / ((96 + 64) * sizeof(float)), 256), 256, 4096);
    /* exact search: a group of document rows in half of L1 while query tiles of 4 pass over
     * it; the query rows of a pass in half of L2, the documents of one call in a quarter */
    b.search_group = clamp(round_down(l1 / 2 / row, 4), 4, 64);
    b.search_queries = clamp(round_down(l2 / 2 / row, 4), 4, 4096);
    b.search_docs = GTR_MAX(b.search_group, round_down(GTR_MIN(l2 / 4 / row, 4096), b.search_group));
    /* a lone query is memory-bound: on Zen 4 the 1 x 8 tile, reading eight rows 3 KB apart
     * side by side, streams 100k x 768 floats at ~20 GB/s on one core, one row after the
     * other at ~25 GB/s (the hardware prefetchers follow one sequential stream better than
     * eight interleaved ones that each jump at the end of a row); Intel keeps the 1 x 8 tile
     * it was measured with (ahead of FAISS there) */
    b.search_lone = c && c->amd ? 1 : 0;
    /* the f32 / int8 weight panel streams from L2 / L3 through the linear kernels: on the Xeon
     * of issue 19 the hardware prefetch alone left the FMAs waiting 15-25% of the time on the
     * 3072-wide shapes, so the kernels prefetch it 2 KB ahead; Zen's L2 prefetchers already
     * follow the panel and the extra loads only take issue slots (bench/RESULTS.md, Kernels) */
    b.linear_prefetch = !(c && c->amd);
    /* exact search of many queries: on the Xeon of issue 19 the next document tile fetched a
     * line per step into L1 made the first lane passes of each tile wait on memory (1.8x
     * their cost, `perf record`), and the step loop's own adds and branch took FMA ports;
     * spread into L2 and 4 steps per iteration (score_avx512.c; bench/RESULTS.md, Search on
     * Intel Xeon). Zen 4 keeps the kernel it was measured with. */
    b.search_pf_spread = !(c && c->amd);
    return b;
}

size_t gtr_linear_task_rows(const gtr_cpu_caches *c, size_t weight_bytes)
{
    size_t l2 = c && c->l2 >= ((size_t)64 << 10) ? c->l2 : DEF_L2;
    /* The weights of a layer (2.4 MB for 768 x 768 f32) outgrow L2, so every task streams them
     * from L3 once. On the Xeon of issue 19 (2 MB L2, L3 far away) 96 rows left the FMAs
     * waiting on that stream (f32 81-84% of peak), 384 rows reach 87-89%: one 96-row block per
     * 512 KB of L2, up to 4. Weights that fit in half of L2 stay there from one task to the
     * next: 96 rows, and the rows prefetched for the next task stay in L2 beside them (int8
     * 768 x 768, 0.6 MB: 96 rows ~800 G op/s, 384 rows 735-757; int8 768 x 3072, 2.4 MB: 96
     * rows 740, 384 rows 767-781). Zen keeps the 96 rows it was tuned with (unmeasured there
     * otherwise). */
    if ((c && c->amd) || weight_bytes <= l2 / 2) return 96;
    return 96 * clamp(l2 / ((size_t)512 << 10), 1, 4);
}
