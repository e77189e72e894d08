/* membw.c — this machine's memory bandwidth, the yardstick for loading a big model ("at
 * memory-bandwidth speed"): for 1..T threads, each on its own slice of a buffer of SIZE MiB,
 *   read       AVX-512 loads of a populated buffer (XOR-reduced so nothing is optimised away)
 *   write      stores into populated memory
 *   copy       memcpy populated -> populated (figure: bytes read + bytes written per second)
 *   fresh      stores into fresh anonymous memory (mmap; each 4 KiB page faulted in as written)
 *   populate   fresh memory made present with MADV_POPULATE_WRITE, then written
 *   file read  [FILE]: a file's pages mapped (page cache; read it first for a warm figure) and
 *              read through the mapping, as the loader reads a checkpoint (minor faults)
 * Best of REPS runs, GB/s = 1e9 bytes/s.
 *
 *   make build/release/bench/membw && build/release/bench/membw [SIZE_MIB [THREADS [FILE]]]
 * (x86-64 with AVX-512 reads and writes 64 bytes a step; elsewhere 8).
 *
 *   membw convert FILE THREADS int8|bf16|f32
 * The floor under loading an F16 checkpoint as that dtype, run once, as the loader meets its
 * memory: FILE's bytes read as F16 values through a private mapping (its pages dropped once
 * read, as the loader drops a converted tensor's), each converted (float32; bf16 its top half;
 * int8 rounded and saturated) and stored once into fresh anonymous 4 KiB pages made present a
 * MiB at a time with MADV_POPULATE_WRITE (the loader's panels are) — no fingerprint, no
 * packing layout, no scales. Prints the wall time and the process's user and system time, to
 * set beside `gtr info --dtype D` loads measured in the same run (bench/RESULTS.md). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define WIDE __attribute__((target("avx512f")))
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum { READ, WRITE, COPY, FRESH, POPULATE, FILEREAD, NOPS };
static const char *names[NOPS] = {"read", "write", "copy (r+w)", "fresh write", "populate+write", "file read (mmap)"};

/* What each thread's job starts with: the barrier all start from, and the thread's own start
 * and end (the main thread may not run meanwhile). */
typedef struct {
    pthread_barrier_t *bar;
    double t0, t1;
} span;

typedef struct {
    span s;
    int op;
    unsigned char *a, *b;
    size_t n;
    uint64_t sink;
} job;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__x86_64__)
static WIDE uint64_t read_avx512(const unsigned char *p, size_t n)
{
    __m512i x0 = _mm512_setzero_si512(), x1 = x0, x2 = x0, x3 = x0;
    for (size_t i = 0; i + 256 <= n; i += 256) {
        x0 = _mm512_xor_si512(x0, _mm512_load_si512(p + i));
        x1 = _mm512_xor_si512(x1, _mm512_load_si512(p + i + 64));
        x2 = _mm512_xor_si512(x2, _mm512_load_si512(p + i + 128));
        x3 = _mm512_xor_si512(x3, _mm512_load_si512(p + i + 192));
    }
    x0 = _mm512_xor_si512(_mm512_xor_si512(x0, x1), _mm512_xor_si512(x2, x3));
    return (uint64_t)_mm512_reduce_or_epi64(x0);
}

static WIDE void write_avx512(unsigned char *p, size_t n, int v)
{
    __m512i x = _mm512_set1_epi8((char)v);
    for (size_t i = 0; i + 64 <= n; i += 64) _mm512_store_si512(p + i, x);
}
#endif

static bool wide(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

static uint64_t read_avx(const unsigned char *p, size_t n)
{
#if defined(__x86_64__)
    if (wide()) return read_avx512(p, n);
#endif
    uint64_t x0 = 0, x1 = 0, x2 = 0, x3 = 0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        x0 ^= w[0], x1 ^= w[1], x2 ^= w[2], x3 ^= w[3];
    }
    return x0 ^ x1 ^ x2 ^ x3;
}

static void write_avx(unsigned char *p, size_t n, int v)
{
#if defined(__x86_64__)
    if (wide()) {
        write_avx512(p, n, v);
        return;
    }
#endif
    memset(p, v, n);
}

static void *run(void *arg)
{
    job *j = arg;
    pthread_barrier_wait(j->s.bar);
    j->s.t0 = now();
    switch (j->op) {
    case READ:
    case FILEREAD: j->sink = read_avx(j->a, j->n); break;
    case WRITE:
    case FRESH: write_avx(j->a, j->n, 1); break;
    case COPY: memcpy(j->b, j->a, j->n); break;
    case POPULATE:
        madvise(j->a, j->n, MADV_POPULATE_WRITE);
        write_avx(j->a, j->n, 1);
        break;
    }
    j->s.t1 = now();
    return NULL;
}

/* fn on T threads, thread t given jobs + t * size (a job starting with its span); seconds from
 * the first thread's start to the last one's end. */
static double run_timed(int T, void *jobs, size_t size, void *(*fn)(void *))
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)T);
    pthread_t th[64];
    for (int t = 0; t < T; t++) {
        span *s = (span *)((char *)jobs + (size_t)t * size);
        s->bar = &bar;
        pthread_create(&th[t], NULL, fn, s);
    }
    double t0 = 1e300, t1 = 0;
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        const span *s = (const span *)((char *)jobs + (size_t)t * size);
        if (s->t0 < t0) t0 = s->t0;
        if (s->t1 > t1) t1 = s->t1;
    }
    pthread_barrier_destroy(&bar);
    return t1 - t0;
}

static void *map_anon(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    madvise(p, n, MADV_NOHUGEPAGE); /* as the loader's memory: 4 KiB pages (THP is not relied on) */
    return p;
}

/* one timed run of op on T threads; bytes moved per second (copy counts both directions) */
static double once(int op, int T, size_t n, unsigned char *a, unsigned char *b, const char *file)
{
    int fd = -1;
    unsigned char *fa = NULL;
    size_t fn = n;
    if (op == FRESH || op == POPULATE) a = map_anon(n);
    if (op == FILEREAD) {
        fd = open(file, O_RDONLY);
        struct stat s;
        if (fd < 0 || fstat(fd, &s)) {
            perror(file);
            exit(1);
        }
        fn = (size_t)s.st_size / (4096 * (size_t)T) * 4096 * T;
        if (fn > n) fn = n;
        fa = mmap(NULL, fn, PROT_READ, MAP_SHARED, fd, 0);
        if (fa == MAP_FAILED) {
            perror("mmap file");
            exit(1);
        }
        a = fa;
    }
    job js[64];
    size_t per = (op == FILEREAD ? fn : n) / (size_t)T / 4096 * 4096;
    for (int t = 0; t < T; t++) js[t] = (job){{NULL, 0, 0}, op, a + t * per, b ? b + t * per : NULL, per, 0};
    double el = run_timed(T, js, sizeof js[0], run);
    if (op == FRESH || op == POPULATE) munmap(a, n);
    if (fa) {
        munmap(fa, fn);
        close(fd);
    }
    double bytes = (double)per * T * (op == COPY ? 2 : 1);
    return bytes / el;
}

/* ---- convert: F16 file -> fresh memory ---- */

typedef struct {
    span s;
    const uint16_t *in;
    unsigned char *out;
    size_t n, esz; /* values; output bytes per value */
} cjob;

#define CBLOCK ((size_t)1 << 19) /* values a step: 1 MiB of F16 read */

#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,f16c")))
static void convert_block(const uint16_t *in, unsigned char *out, size_t n, size_t esz)
{
    for (size_t i = 0; i + 16 <= n; i += 16) { /* n: whole blocks of CBLOCK values */
        __m512 x = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(in + i)));
        if (esz == 4) {
            _mm512_storeu_ps(out + 4 * i, x);
        } else if (esz == 2) {
            _mm256_storeu_si256((__m256i *)(out + 2 * i),
                                _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(x), 16)));
        } else {
            _mm_storeu_si128((__m128i *)(out + i), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(x)));
        }
    }
}
#else
static void convert_block(const uint16_t *in, unsigned char *out, size_t n, size_t esz)
{
    for (size_t i = 0; i < n; i++) memcpy(out + i * esz, &in[i], esz < 2 ? esz : 2);
}
#endif

static void *convert_run(void *arg)
{
    cjob *j = arg;
    pthread_barrier_wait(j->s.bar);
    j->s.t0 = now();
    for (size_t i = 0; i < j->n; i += CBLOCK) {
        size_t m = j->n - i < CBLOCK ? j->n - i : CBLOCK;
        unsigned char *o = j->out + i * j->esz;
        madvise(o, m * j->esz, MADV_POPULATE_WRITE);
        convert_block(j->in + i, o, m, j->esz);
        madvise((void *)(j->in + i), m * 2, MADV_DONTNEED); /* page-aligned: CBLOCK and slices are */
    }
    j->s.t1 = now();
    return NULL;
}

static double cpu_s(int who, int user)
{
    struct rusage r;
    getrusage(who, &r);
    struct timeval t = user ? r.ru_utime : r.ru_stime;
    return t.tv_sec + t.tv_usec * 1e-6;
}

static int convert_main(const char *file, int T, const char *dt)
{
    size_t esz = !strcmp(dt, "f32") ? 4 : !strcmp(dt, "bf16") ? 2 : !strcmp(dt, "int8") ? 1 : 0;
    if (!esz || T < 1 || T > 64) {
        fprintf(stderr, "membw convert FILE THREADS int8|bf16|f32\n");
        return 2;
    }
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        perror(file);
        return 1;
    }
    size_t per = (size_t)st.st_size / 2 / (size_t)T / CBLOCK * CBLOCK, n = per * (size_t)T;
    if (!n) {
        fprintf(stderr, "%s: smaller than %d MiB\n", file, T);
        return 1;
    }
    const uint16_t *in = mmap(NULL, n * 2, PROT_READ, MAP_PRIVATE, fd, 0);
    if (in == MAP_FAILED) {
        perror("mmap file");
        return 1;
    }
    unsigned char *out = map_anon(n * esz);
    double u0 = cpu_s(RUSAGE_SELF, 1), s0 = cpu_s(RUSAGE_SELF, 0);
    cjob js[64];
    for (int t = 0; t < T; t++) js[t] = (cjob){{NULL, 0, 0}, in + (size_t)t * per, out + (size_t)t * per * esz, per, esz};
    double el = run_timed(T, js, sizeof js[0], convert_run);
    uint64_t sink = 0;
    for (size_t i = 0; i < n * esz; i += 1 << 20) sink += out[i]; /* the stores are used */
    printf("convert f16->%s %d thr: read %.2f GB, wrote %.2f GB fresh: %.2f s (user %.2f sys %.2f s) [%llu]\n", dt, T,
           n * 2 / 1e9, n * esz / 1e9, el, cpu_s(RUSAGE_SELF, 1) - u0, cpu_s(RUSAGE_SELF, 0) - s0,
           (unsigned long long)(sink & 1));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "convert")) return convert_main(argc > 2 ? argv[2] : "", argc > 3 ? atoi(argv[3]) : 0, argc > 4 ? argv[4] : "");
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 2048;
    int T = argc > 2 ? atoi(argv[2]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    const char *file = argc > 3 ? argv[3] : NULL;
    if (T < 1 || T > 64) T = 1;
    size_t n = mib << 20;
    unsigned char *a = map_anon(n), *b = map_anon(n);
    memset(a, 3, n);
    memset(b, 5, n);
    printf("buffer %zu MiB, 4 KiB pages, best of 5, GB/s (1e9 bytes/s)\n%-18s", mib, "op");
    for (int t = 1; t <= T; t++) printf(" %5d thr", t);
    printf("\n");
    for (int op = 0; op < NOPS; op++) {
        if (op == FILEREAD && !file) continue;
        printf("%-18s", names[op]);
        for (int t = 1; t <= T; t++) {
            double best = 0;
            for (int r = 0; r < 5; r++) {
                double g = once(op, t, n, a, b, file);
                if (g > best) best = g;
            }
            printf(" %9.2f", best / 1e9);
            fflush(stdout);
        }
        printf("\n");
    }
    return 0;
}
