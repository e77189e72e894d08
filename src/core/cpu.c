/* cpu.c — run-time CPU feature detection (CPUID + XGETBV, and Linux's AMX permission), so
 * one binary uses what the processor and the OS offer. GTR_CPU=generic|avx2|avx512|amx caps
 * the choice. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* GTR_CPU caps the kernels (README); set but empty counts as unset, not as a name */
static const char *cpu_cap(void)
{
    const char *cap = getenv("GTR_CPU");
    return cap && *cap ? cap : NULL;
}

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* Linux keeps the 8 KB AMX tile state off until a process asks for it (the first tile
 * instruction would otherwise fault). The grant is per process and idempotent; kernels
 * without the request (before 5.16) refuse it, and then AMX is not used. */
static bool amx_permitted(void)
{
#if defined(__linux__) && defined(__x86_64__)
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

gtr_cpu gtr_cpu_detect(void)
{
    gtr_cpu c;
    memset(&c, 0, sizeof c);
    unsigned a, b, cx, d;
    unsigned vendor[4] = {0};
    if (!__get_cpuid(0, &vendor[0], &vendor[1], &vendor[3], &vendor[2])) return c;
    bool amd = memcmp(&vendor[1], "AuthenticAMD", 12) == 0; /* ebx, edx, ecx spell it */
    if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
    bool osxsave = (cx >> 27) & 1;
    if (!osxsave) return c;
    uint64_t xcr0 = xgetbv0();
    bool ymm_os = (xcr0 & 0x6) == 0x6;           /* SSE + AVX state */
    bool zmm_os = (xcr0 & 0xe6) == 0xe6;         /* + opmask, ZMM_Hi256, Hi16_ZMM */
    bool avx = ((cx >> 28) & 1) && ymm_os;
    c.fma = avx && ((cx >> 12) & 1);
    c.f16c = avx && ((cx >> 29) & 1);
    if (__get_cpuid_max(0, NULL) >= 7) {
        unsigned a7, b7, c7, d7;
        __cpuid_count(7, 0, a7, b7, c7, d7);
        c.avx2 = avx && ((b7 >> 5) & 1);
        c.avx512f = zmm_os && ((b7 >> 16) & 1);
        c.avx512dq = c.avx512f && ((b7 >> 17) & 1);
        c.avx512bw = c.avx512f && ((b7 >> 30) & 1);
        c.avx512vl = c.avx512f && ((b7 >> 31) & 1);
        c.avx512_vnni = c.avx512f && ((c7 >> 11) & 1);
        unsigned a71, b71, c71, d71;
        __cpuid_count(7, 1, a71, b71, c71, d71);
        c.avx512_bf16 = c.avx512f && ((a71 >> 5) & 1);
        c.dpbf16_fast = c.avx512_bf16 && amd;
        /* AMX-BF16 (bit 22), AMX-TILE (24), AMX-INT8 (25); XTILECFG + XTILEDATA in XCR0 */
        bool amx_cpu = ((d7 >> 22) & 1) && ((d7 >> 24) & 1) && ((d7 >> 25) & 1);
        bool amx_os = (xcr0 & 0x60000) == 0x60000;
        const char *cap = cpu_cap();
        bool capped = cap && strcmp(cap, "amx") != 0; /* any other cap turns AMX off */
        c.amx = c.avx512_bf16 && c.avx512_vnni && amx_cpu && amx_os && !capped && amx_permitted();
        (void)b71; (void)c71; (void)d71; (void)a7;
    }
    (void)a; (void)b; (void)d;
    const char *cap = cpu_cap();
    if (cap && strcmp(cap, "avx512") != 0 && strcmp(cap, "amx") != 0) {
        bool keep_avx2 = strcmp(cap, "avx2") == 0;
        c.avx512f = c.avx512bw = c.avx512dq = c.avx512vl = c.avx512_bf16 = c.avx512_vnni = false;
        c.dpbf16_fast = false;
        if (!keep_avx2) c.avx2 = c.fma = c.f16c = false;
    }
    return c;
}
#else
gtr_cpu gtr_cpu_detect(void)
{
    gtr_cpu c;
    memset(&c, 0, sizeof c);
    return c;
}
#endif

/* the names cpu_cap() is compared with (in gtr_cpu_detect) */
gtr_status gtr_cpu_check_env(gtr_error *err)
{
    static const char *const names[] = {"amx", "avx512", "avx2", "generic"};
    const char *v = cpu_cap();
    if (!v) return GTR_OK;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(v, names[i])) return GTR_OK;
    return gtr_error_set(err, GTR_ERR_INVALID_ARG,
                         "GTR_CPU=%s: not a kernel path (amx, avx512, avx2 or generic; unset: the best this CPU has)", v);
}

const char *gtr_cpu_features(void)
{
    gtr_cpu c = gtr_cpu_detect();
    return gtr_cpu_describe(&c);
}

const char *gtr_cpu_describe(const gtr_cpu *c)
{
    if (c->avx512f && c->amx) return "avx512 (+bf16, +vnni) + amx";
    if (c->avx512f && c->avx512_bf16 && c->avx512_vnni) return "avx512 (+bf16, +vnni)";
    if (c->avx512f && c->avx512_vnni) return "avx512 (+vnni)";
    if (c->avx512f) return "avx512";
    if (c->avx2 && c->fma) return "avx2+fma";
    return "generic";
}
