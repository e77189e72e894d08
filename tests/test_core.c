/* test_core.c — core utilities: errors, atomic files, thread pool, halves, UTF-8, npy/npz,
 * text readers. */
#include "support/testutil.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static void test_seterr_and_prefix(void **state)
{
    (void)state;
    gtr_error e;
    assert_int_equal(gtr_seterr(&e, GTR_ERR_FORMAT, "bad %d", 7), GTR_ERR_FORMAT);
    assert_string_equal(e.message, "bad 7");
    gtr_error_prefix(&e, "file.bin");
    assert_string_equal(e.message, "file.bin: bad 7");
    assert_int_equal(gtr_seterr(NULL, GTR_ERR_IO, "x"), GTR_ERR_IO);
}

static void test_atomic_write(void **state)
{
    (void)state;
    gtr_error e;
    char *p = tu_tmp("atomic.txt");
    TU_OK(gtr_write_file_atomic(p, "hello", 5, &e), &e);
    char *d;
    size_t n;
    TU_OK(gtr_read_file(p, 0, &d, &n, &e), &e);
    assert_int_equal(n, 5);
    assert_memory_equal(d, "hello", 5);
    free(d);
    /* an aborted write leaves the old content and no temp file */
    gtr_atomic_file f;
    TU_OK(gtr_atomic_open(&f, p, &e), &e);
    TU_OK(gtr_atomic_write(&f, "XXXXXXXX", 8, &e), &e);
    char *tmp = strdup(f.tmp_path);
    gtr_atomic_abort(&f);
    assert_false(gtr_file_exists(tmp));
    TU_OK(gtr_read_file(p, 0, &d, &n, &e), &e);
    assert_int_equal(n, 5);
    free(d);
    free(tmp);
    free(p);
    assert_int_equal(gtr_read_file("/nonexistent/x", 0, &d, &n, &e), GTR_ERR_NOT_FOUND);
    assert_non_null(strstr(e.message, "/nonexistent/x"));
}

typedef struct {
    atomic_int sum;
    int hits[1000];
} pool_ctx;

static void add_task(void *ctx, size_t i, int tid)
{
    pool_ctx *c = ctx;
    (void)tid;
    c->hits[i]++;
    atomic_fetch_add(&c->sum, (int)i);
}

static void test_pool(void **state)
{
    (void)state;
    gtr_error e;
    for (int threads = 1; threads <= 4; threads++) {
        gtr_pool *p = gtr_pool_create(threads, &e);
        assert_non_null(p);
        assert_int_equal(gtr_pool_size(p), threads);
        for (int rep = 0; rep < 20; rep++) {
            pool_ctx c;
            memset(&c, 0, sizeof c);
            gtr_pool_for(p, 1000, add_task, &c);
            assert_int_equal(atomic_load(&c.sum), 999 * 1000 / 2);
            for (int i = 0; i < 1000; i++) assert_int_equal(c.hits[i], 1);
        }
        gtr_pool_free(p);
    }
}

static void test_half(void **state)
{
    (void)state;
    /* every finite half round-trips exactly through float32 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue;
        float f = gtr_f16_to_f32((uint16_t)h);
        assert_int_equal(gtr_f32_to_f16(f), h);
        uint16_t b = (uint16_t)h;
        assert_int_equal(gtr_f32_to_bf16(gtr_bf16_to_f32(b)), b);
    }
    assert_true(gtr_f16_to_f32(0x3c00) == 1.0f);
    assert_int_equal(gtr_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    assert_int_equal(gtr_f32_to_bf16(1.00390625f), 0x3f80); /* tie to even */
    /* the bulk conversion: bit for bit the scalar one for all 65536 halves (zeros, subnormals,
     * inf, NaN payloads included), read from an odd address */
    uint8_t *raw = malloc(2 * 0x10000 + 1);
    float *out = malloc(sizeof(float) * 0x10000);
    assert_non_null(raw);
    assert_non_null(out);
    for (uint32_t h = 0; h < 0x10000; h++) {
        raw[1 + 2 * h] = (uint8_t)(h & 0xff);
        raw[2 + 2 * h] = (uint8_t)(h >> 8);
    }
    /* the dispatched one, the portable one, and the AVX-512 one where the CPU has it, also on
     * a length that ends in a partial step (its masked tail must not write past it) */
    gtr_cpu cpu = gtr_cpu_detect();
    bool avx512 = cpu.avx512f && cpu.avx512bw && cpu.avx512vl;
    for (int v = 0; v < (avx512 ? 4 : 2); v++) {
        size_t n = v == 3 ? 0x10000 - 7 : 0x10000;
        memset(out, 0xff, sizeof(float) * 0x10000); /* NaN */
        /* the return value: an infinity or NaN among the halves; 0 .. 0x7bff are all finite */
        bool nf = false, nf_finite = true;
        if (v == 0) nf = gtr_f16_to_f32_n(raw + 1, out, n), nf_finite = gtr_f16_to_f32_n(raw + 1, out, 0x7c00);
        else if (v == 1) nf = gtr_f16_to_f32_n_portable(raw + 1, out, n), nf_finite = gtr_f16_to_f32_n_portable(raw + 1, out, 0x7c00);
#if defined(__x86_64__)
        else nf = gtr_f16_to_f32_n_avx512(raw + 1, out, n), nf_finite = gtr_f16_to_f32_n_avx512(raw + 1, out, 0x7c00);
#endif
        if (!nf || nf_finite) fail_msg("variant %d: non-finite reported %d for all halves, %d for the finite ones", v, nf, nf_finite);
        for (uint32_t h = 0; h < n; h++) {
            float want = gtr_f16_to_f32((uint16_t)h);
            if (memcmp(&want, &out[h], 4)) fail_msg("half 0x%04x (variant %d): bulk %a, scalar %a", h, v, out[h], want);
        }
        if (n < 0x10000 && !isnan(out[n])) fail_msg("variant %d wrote past its %zu halves", v, n);
        if (v == 0) { /* one infinity alone, at each place of a 32-half step (AVX-512's unmasked
                         * loop), of a 16-half one (its masked tail) and in a shorter tail */
            for (size_t at = 0; at < 51; at++) {
                uint8_t h[2 * 51];
                memset(h, 0, sizeof h);
                h[2 * at + 1] = 0xfc; /* -infinity */
                if (!gtr_f16_to_f32_n(h, out, 51) || gtr_f16_to_f32_n(h, out, at)) fail_msg("infinity at %zu", at);
            }
        }
    }
    free(raw);
    free(out);
}

static void test_utf8(void **state)
{
    (void)state;
    uint32_t cp;
    assert_int_equal(gtr_utf8_decode("\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xe9);
    assert_int_equal(gtr_utf8_decode("\xc0\x80", 2, &cp), 0);         /* overlong */
    assert_int_equal(gtr_utf8_decode("\xed\xa0\x80", 3, &cp), 0);     /* surrogate */
    assert_int_equal(gtr_utf8_decode("\xf4\x90\x80\x80", 4, &cp), 0); /* > U+10FFFF */
    assert_int_equal(gtr_utf8_decode("\xe2\x82", 2, &cp), 0);         /* truncated */
    char buf[4];
    for (uint32_t c = 0; c < 0x110000; c += 97) {
        if (c >= 0xd800 && c <= 0xdfff) continue;
        size_t k = gtr_utf8_encode(c, buf);
        assert_int_equal(gtr_utf8_decode(buf, k, &cp), k);
        assert_int_equal(cp, c);
    }
    size_t bad;
    assert_false(gtr_utf8_valid("ab\xff", 3, &bad));
    assert_int_equal(bad, 2);
}

static void test_npy_roundtrip(void **state)
{
    (void)state;
    gtr_error e;
    float v[6] = {1, 2, 3, 4, 5, -6.5f};
    char *p = tu_tmp("a.npy");
    TU_OK(gtr_npy_save_f32(p, v, 2, 3, &e), &e);
    gtr_array a;
    TU_OK(gtr_npy_load(p, &a, &e), &e);
    assert_int_equal(a.dtype, GTR_DT_F32);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_memory_equal(a.data, v, sizeof v);
    gtr_array_free(&a);
    /* truncated file */
    char *d;
    size_t n;
    TU_OK(gtr_read_file(p, 0, &d, &n, &e), &e);
    assert_int_equal(gtr_npy_parse(d, n - 1, "cut.npy", &a, &e), GTR_ERR_FORMAT);
    assert_int_equal(gtr_npy_parse(d, 5, "cut.npy", &a, &e), GTR_ERR_FORMAT);
    free(d);
    free(p);
}

static void test_npz_reference(void **state)
{
    (void)state;
    gtr_error e;
    char *p = tu_shared("models/gtr-tiny/reference/hidden_0.npz");
    gtr_npz *z = gtr_npz_open(p, &e);
    assert_non_null(z);
    gtr_array ids;
    TU_OK(gtr_npz_get(z, "input_ids", &ids, &e), &e);
    assert_true(ids.ndim == 1 && ids.count > 0);
    gtr_array none;
    assert_int_equal(gtr_npz_get(z, "no_such_array", &none, &e), GTR_ERR_NOT_FOUND);
    gtr_array_free(&ids);
    gtr_npz_close(z);
    free(p);
}

static void test_text_reader(void **state)
{
    (void)state;
    gtr_error e;
    char *p = tu_tmp("in.jsonl");
    const char *content =
        "\"plain string\"\n"
        "{\"_id\": \"d1\", \"title\": \" T \", \"text\": \"body\\u3000\"}\n"
        "{\"_id\": \"q1\", \"text\": \"  query \"}\n"
        "{broken\n";
    tu_write(p, content, strlen(content));
    gtr_text_reader *r = gtr_text_reader_open(p, GTR_TEXT_AUTO, &e);
    assert_non_null(r);
    gtr_record rec;
    bool eof;
    gtr_buf b = {0};
    TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
    TU_OK(gtr_record_passage(&rec, &b, &e), &e);
    assert_string_equal(b.data, "plain string");
    TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
    assert_memory_equal(rec.id, "d1", 2);
    TU_OK(gtr_record_passage(&rec, &b, &e), &e);
    assert_string_equal(b.data, "T  body"); /* (title + " " + text).strip() */
    TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
    TU_OK(gtr_record_passage(&rec, &b, &e), &e);
    assert_string_equal(b.data, "query");
    assert_int_equal(gtr_text_reader_next(r, &rec, &eof, &e), GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, ":4:")); /* names the line */
    gtr_text_reader_close(r);
    /* a byte order mark at the start of a JSON lines (or plain) file is skipped; elsewhere it is text */
    const char *bom = "\xef\xbb\xbf{\"_id\": \"d1\", \"text\": \"x\"}\n\"\xef\xbb\xbfy\"\n";
    tu_write(p, bom, strlen(bom));
    r = gtr_text_reader_open(p, GTR_TEXT_AUTO, &e);
    assert_non_null(r);
    TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
    assert_memory_equal(rec.id, "d1", 2);
    TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
    assert_int_equal(rec.text_len, 4);
    gtr_text_reader_close(r);
    r = gtr_text_reader_open(p, GTR_TEXT_PLAIN, &e);
    TU_OK(gtr_text_reader_next(r, &rec, &eof, &e), &e);
    assert_int_equal(rec.text[0], '{');
    gtr_text_reader_close(r);
    gtr_buf_free(&b);
    free(p);
}

static void assert_file_is(const char *path, const char *want)
{
    gtr_error e;
    char *data;
    size_t len;
    TU_OK(gtr_read_file(path, 1 << 20, &data, &len, &e), &e);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    free(data);
}

/* The files section of gtr.h: what bin/gtr uses instead of the internals (issue 13). */
static void test_public_files(void **state)
{
    (void)state;
    gtr_error e;
    /* the public reader gives the records and passages of the internal one */
    char *p = tu_tmp("pub.jsonl");
    const char *content = "\"plain string\"\n"
                          "{\"_id\": \"d1\", \"title\": \" T \", \"text\": \"body\\u3000\"}\n"
                          "{\"_id\": \"q1\", \"text\": \"  query \"}\n"
                          "{\"id\": \"n\", \"title\": null, \"text\": \" x \"}\n";
    tu_write(p, content, strlen(content));
    gtr_text_reader *pub = gtr_text_reader_open(p, GTR_TEXT_AUTO, &e), *in = gtr_text_reader_open(p, GTR_TEXT_AUTO, &e);
    assert_non_null(pub);
    assert_non_null(in);
    static const int is_object[] = {0, 1, 1, 1}, has_title[] = {0, 1, 0, 1};
    gtr_buf want = {0};
    for (int i = 0;; i++) {
        gtr_text_record rec;
        gtr_record ref;
        int eof;
        bool ref_eof;
        TU_OK(gtr_text_reader_read(pub, &rec, &eof, &e), &e);
        TU_OK(gtr_text_reader_next(in, &ref, &ref_eof, &e), &e);
        assert_int_equal(eof, ref_eof);
        if (eof) {
            assert_int_equal(i, 4);
            break;
        }
        assert_int_equal(rec.is_object, is_object[i]);
        assert_int_equal(rec.has_title, has_title[i]);
        assert_int_equal(rec.line, (size_t)i + 1);
        assert_int_equal(rec.id_len, ref.id_len);
        assert_int_equal(rec.text_len, ref.text_len);
        char *got;
        size_t len;
        TU_OK(gtr_text_record_passage(&rec, &got, &len, &e), &e);
        TU_OK(gtr_record_passage(&ref, &want, &e), &e);
        assert_int_equal(len, want.len);
        assert_memory_equal(got, want.data, len + 1);
        gtr_free(got);
    }
    gtr_buf_free(&want);
    gtr_text_reader_close(pub);
    gtr_text_reader_close(in);

    /* output files: the bytes written both ways appear at commit; abort keeps what was there */
    gtr_output_file *f = gtr_output_file_open(p, &e);
    assert_non_null(f);
    TU_OK(gtr_output_file_write(f, "abc", 3, &e), &e);
    assert_true(fputs("def", gtr_output_file_stream(f)) >= 0);
    TU_OK(gtr_output_file_commit(f, &e), &e);
    assert_file_is(p, "abcdef");
    assert_non_null(f = gtr_output_file_open(p, &e));
    TU_OK(gtr_output_file_write(f, "x", 1, &e), &e);
    gtr_output_file_abort(f);
    gtr_output_file_abort(NULL);
    assert_file_is(p, "abcdef");

    /* the .npy header numpy reads (the reader here parses it back) */
    char hdr[128];
    float row[3] = {1, 2, 3};
    assert_int_equal(gtr_npy_header_f32(hdr, sizeof hdr, 1, 3), 128);
    assert_int_equal(gtr_npy_header_f32(hdr, 127, 1, 3), 0);
    char npy[128 + sizeof row];
    memcpy(npy, hdr, 128);
    memcpy(npy + 128, row, sizeof row);
    gtr_array a;
    TU_OK(gtr_npy_parse(npy, sizeof npy, "header", &a, &e), &e);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 1);
    assert_int_equal(a.shape[1], 3);
    assert_memory_equal(a.data, row, sizeof row);
    gtr_array_free(&a);

    /* folders; a BEIR dataset's cache folder is named by its corpus's CRC-32 (zlib here) */
    char *ds = tu_tmp("pub/data/mini"), *root = tu_tmp("pub/cache");
    TU_OK(gtr_dir_create(ds, &e), &e);
    TU_OK(gtr_dir_create(ds, &e), &e); /* already there */
    assert_int_equal(gtr_dir_create(p, &e), GTR_ERR_IO); /* a file */
    char *qdir = tu_tmp("pub/data/mini/qrels");
    TU_OK(gtr_dir_create(qdir, &e), &e);
    char path[4096];
    snprintf(path, sizeof path, "%s/corpus.jsonl", ds);
    tu_write(path, content, strlen(content));
    snprintf(path, sizeof path, "%s/queries.jsonl", ds);
    tu_write(path, "", 0);
    snprintf(path, sizeof path, "%s/test.tsv", qdir);
    tu_write(path, "", 0);
    gtr_beir *b = gtr_beir_open(ds, NULL, &e);
    assert_non_null(b);
    char *dir;
    TU_OK(gtr_beir_cache_dir(b, root, &dir, &e), &e);
    char want_dir[4096];
    snprintf(want_dir, sizeof want_dir, "%s/beir/mini-%08lx", root,
             crc32(0, (const unsigned char *)content, (unsigned)strlen(content)));
    assert_string_equal(dir, want_dir);
    assert_true(gtr_dir_exists(dir));
    gtr_free(dir);
    setenv("GTR_CACHE", root, 1);
    TU_OK(gtr_beir_cache_dir(b, NULL, &dir, &e), &e);
    unsetenv("GTR_CACHE");
    assert_string_equal(dir, want_dir);
    gtr_free(dir);
    gtr_beir_free(b);

    /* a model folder's max_seq_length: what the loader reads, 512 without the file */
    char *tiny = tu_shared("models/gtr-tiny");
    int n = -1;
    TU_OK(gtr_model_dir_max_len(tiny, &n, &e), &e);
    gtr_model *m = gtr_model_load(tiny, NULL, &e);
    assert_non_null(m);
    assert_int_equal(n, gtr_model_max_len(m));
    gtr_model_free(m);
    TU_OK(gtr_model_dir_max_len(ds, &n, &e), &e);
    assert_int_equal(n, 512);
    snprintf(path, sizeof path, "%s/sentence_bert_config.json", ds);
    tu_write(path, "{\"max_seq_length\": -1}", 23);
    assert_int_equal(gtr_model_dir_max_len(ds, &n, &e), GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, "sentence_bert_config.json"));
    free(tiny);
    free(qdir);
    free(ds);
    free(root);
    free(p);
}

/* A leaf-4 / 0x8000001D descriptor for a cache of this geometry. */
static void put_desc(uint32_t r[4], unsigned type, unsigned level, uint32_t ways, uint32_t parts,
                     uint32_t line, uint32_t sets)
{
    r[0] = type | (level << 5) | (1u << 8); /* + "self-initialising", as real parts set */
    r[1] = ((ways - 1) << 22) | ((parts - 1) << 12) | (line - 1);
    r[2] = sets - 1;
    r[3] = 0;
}

static void test_cache_decode(void **state)
{
    (void)state;
    /* a Xeon (48 KB 12-way L1d, 32 KB L1i, 2 MB 16-way L2, 105 MB 15-way L3) and a Zen 4
     * (32 KB 8-way, 1 MB 8-way, 32 MB 16-way), each list ended by the null descriptor */
    static const uint32_t geo[2][5][5] = {
        {{1, 1, 12, 64, 64}, {2, 1, 8, 64, 64}, {3, 2, 16, 64, 2048}, {3, 3, 15, 64, 114688}, {0}},
        {{1, 1, 8, 64, 64}, {2, 1, 8, 64, 64}, {3, 2, 8, 64, 2048}, {3, 3, 16, 64, 32768}, {0}},
    };
    for (int c = 0; c < 2; c++) {
        uint32_t regs[6][4];
        size_t want[4] = {0};
        for (int i = 0; i < 5; i++) {
            const uint32_t *g = geo[c][i];
            if (!g[0]) {
                memset(regs[i], 0, sizeof regs[i]);
                /* after the null descriptor: must be ignored */
                put_desc(regs[i + 1], 1, 1, 1, 1, 64, 1);
                break;
            }
            put_desc(regs[i], g[0], g[1], g[2], 1, g[3], g[4]);
            if (g[0] != 2) want[g[1]] = (size_t)g[2] * g[3] * g[4];
        }
        gtr_cpu_caches k = gtr_cpu_caches_decode((const uint32_t(*)[4])regs, 6);
        assert_int_equal(k.l1d, want[1]);
        assert_int_equal(k.l2, want[2]);
        assert_int_equal(k.l3, want[3]);
    }
    /* this machine: what CPUID says agrees with the C library's view where it has one */
    gtr_cpu_caches here = gtr_cpu_caches_detect();
#if defined(_SC_LEVEL1_DCACHE_SIZE)
    long l1 = sysconf(_SC_LEVEL1_DCACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l1 > 0) assert_int_equal(here.l1d, (size_t)l1);
    if (l2 > 0) assert_int_equal(here.l2, (size_t)l2);
#endif
    /* the vendor flag agrees with the kernel's vendor_id line */
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[256];
    while (ci && fgets(line, sizeof line, ci))
        if (strncmp(line, "vendor_id", 9) == 0) {
            bool amd = strstr(line, "AuthenticAMD") || strstr(line, "HygonGenuine");
            assert_int_equal(here.amd, amd);
            break;
        }
    if (ci) fclose(ci);
    (void)here;
}

static void test_blocking_rules(void **state)
{
    (void)state;
    /* every block fits the cache it is meant for, on any sizes from tiny to huge (and unknown) */
    static const size_t l1s[] = {0, 16 << 10, 32 << 10, 48 << 10, 64 << 10, 1 << 20};
    static const size_t l2s[] = {0, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20, 64 << 20};
    static const size_t dims[] = {1, 13, 64, 384, 768, 1024, 4096};
    for (size_t a = 0; a < 6; a++)
        for (size_t b = 0; b < 7; b++)
            for (size_t d = 0; d < 7; d++) {
                gtr_cpu_caches c = {l1s[a], l2s[b], 0, false};
                size_t l1 = c.l1d ? c.l1d : (size_t)32 << 10, l2 = c.l2 ? c.l2 : (size_t)512 << 10;
                size_t row = dims[d] * sizeof(float);
                gtr_blocking k = gtr_blocking_for(&c, dims[d]);
                assert_true(k.linear_kc >= 256 && k.linear_kc % 256 == 0 && k.linear_kc <= 4096);
                assert_true(k.linear_kc == 256 || k.linear_kc * (96 + 64) * 4 <= l2 * 2 / 3);
                assert_true(k.search_group >= 4 && k.search_group % 4 == 0);
                assert_true(k.search_group == 4 || k.search_group * row <= l1 / 2);
                assert_true(k.search_queries >= 4 && k.search_queries % 4 == 0);
                assert_true(k.search_queries == 4 || k.search_queries * row <= l2 / 2);
                assert_true(k.search_docs >= k.search_group && k.search_docs % k.search_group == 0);
                /* and a larger cache never gets smaller blocks */
                gtr_cpu_caches big = {c.l1d ? 2 * c.l1d : 0, c.l2 ? 2 * c.l2 : 0, 0, c.amd};
                gtr_blocking kb = gtr_blocking_for(&big, dims[d]);
                assert_true(kb.linear_kc >= k.linear_kc && kb.search_group >= k.search_group &&
                            kb.search_queries >= k.search_queries);
            }
    /* a 1 MB L2 (Zen 4 and 5) keeps the k block the AVX-512 kernels were tuned with there */
    gtr_cpu_caches zen4 = {32 << 10, 1 << 20, 32 << 20, true};
    assert_int_equal(gtr_blocking_for(&zen4, 768).linear_kc, 1024);
    /* a lone query: one document after the other on AMD, the ISA's wide tile elsewhere
     * (the Xeon of issue 19, and a CPU that reports nothing) */
    gtr_cpu_caches xeon = {48 << 10, 2 << 20, 105 << 20, false};
    assert_int_equal(gtr_blocking_for(&zen4, 768).search_lone, 1);
    assert_int_equal(gtr_blocking_for(&xeon, 768).search_lone, 0);
    assert_int_equal(gtr_blocking_for(NULL, 768).search_lone, 0);
    /* the linear kernels prefetch the weights except on AMD */
    assert_false(gtr_blocking_for(&zen4, 768).linear_prefetch);
    assert_true(gtr_blocking_for(&xeon, 768).linear_prefetch);
    assert_true(gtr_blocking_for(NULL, 768).linear_prefetch);
    /* exact search of many queries: the next tile's rows fetched in one burst on AMD, spread
     * elsewhere */
    assert_false(gtr_blocking_for(&zen4, 768).search_pf_spread);
    assert_true(gtr_blocking_for(&xeon, 768).search_pf_spread);
    assert_true(gtr_blocking_for(NULL, 768).search_pf_spread);
    assert_int_equal(gtr_blocking_for(NULL, 768).linear_kc, gtr_blocking_for(&(gtr_cpu_caches){0, 0, 0, false}, 768).linear_kc);
    /* rows per linear task: AMD keeps the 96 its kernels were tuned with; elsewhere 96 per
     * 512 KB of L2, up to 384 (the Xeon's 2 MB), for weights that do not fit in half of L2 */
    const size_t big = (size_t)64 << 20;
    assert_int_equal(gtr_linear_task_rows(&zen4, big), 96);
    assert_int_equal(gtr_linear_task_rows(&xeon, big), 384);
    assert_int_equal(gtr_linear_task_rows(NULL, big), 96);
    assert_int_equal(gtr_linear_task_rows(&(gtr_cpu_caches){48 << 10, 1 << 20, 0, false}, big), 192);
    assert_int_equal(gtr_linear_task_rows(&(gtr_cpu_caches){48 << 10, 64 << 20, 0, false}, (size_t)1 << 30), 384);
    assert_int_equal(gtr_linear_task_rows(&xeon, (size_t)768 * 768 * 4), 384); /* f32 2.4 MB */
    assert_int_equal(gtr_linear_task_rows(&xeon, (size_t)768 * 768), 96);     /* int8 0.6 MB */
    assert_int_equal(gtr_linear_task_rows(&xeon, (size_t)3072 * 768), 384);   /* int8 2.4 MB */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seterr_and_prefix), cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_pool),              cmocka_unit_test(test_half),
        cmocka_unit_test(test_utf8),              cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_npz_reference),     cmocka_unit_test(test_text_reader),
        cmocka_unit_test(test_public_files),
        cmocka_unit_test(test_cache_decode),      cmocka_unit_test(test_blocking_rules),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
