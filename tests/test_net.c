/* test_net.c — the download layer without a network: SHA-256 vectors, URL escaping, safe
 * archive names, zip extraction of hand-built archives (good ones byte-identical; zip slip,
 * absolute names, links, duplicates, bad CRCs and truncation refused with nothing written),
 * staging directories (lock, atomic commit, --force replace, rmtree never following links),
 * and the public calls' argument checks, "already present" and unreachable-server paths.
 * The HTTP behaviour (resume, redirects, sizes, 404s) is tested end to end by
 * tests/scripts/pull_cli.sh against a local server. */
#include "support/testutil.h"

#include "net/net.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- SHA-256 ------------------------------------------------------------------ */

static void hex32(const uint8_t d[32], char out[65])
{
    for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void sha_of(const void *data, size_t len, size_t chunk, char out[65])
{
    net_sha256 c;
    net_sha256_init(&c);
    const uint8_t *p = data;
    for (size_t off = 0; off < len; off += chunk) net_sha256_update(&c, p + off, GTR_MIN(chunk, len - off));
    uint8_t d[32];
    net_sha256_final(&c, d);
    hex32(d, out);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char h[65];
    /* FIPS 180-4 examples */
    sha_of("", 0, 1, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_of("abc", 3, 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t chunk = 1; chunk <= 64; chunk *= 2) { /* buffering across block boundaries */
        sha_of(m, strlen(m), chunk, h);
        assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    sha_of(a, n, 4093, h);
    assert_string_equal(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* the file variant agrees */
    char *p = tu_tmp("million_a");
    tu_write(p, a, n);
    gtr_error e;
    char fh[65];
    TU_OK(net_sha256_file(p, fh, &e), &e);
    assert_string_equal(fh, h);
    assert_int_equal(net_sha256_file("/nonexistent/x", fh, &e), GTR_ERR_IO);
    assert_non_null(strstr(e.message, "/nonexistent/x"));
    free(p);
    free(a);
}

/* ---- names ---------------------------------------------------------------------- */

static void test_url_escape(void **state)
{
    (void)state;
    char *s = net_url_escape("refs/pr/1 a+b~c.d_e-f", false);
    assert_string_equal(s, "refs%2Fpr%2F1%20a%2Bb~c.d_e-f");
    free(s);
    s = net_url_escape("2_Dense/model.safetensors", true);
    assert_string_equal(s, "2_Dense/model.safetensors");
    free(s);
    s = net_url_escape("\xc3\xa9", true);
    assert_string_equal(s, "%C3%A9");
    free(s);
}

static void test_safe_relpath(void **state)
{
    (void)state;
    static const char *const good[] = {"a", "scifact/corpus.jsonl", "a/b/c.txt", "..a", "a..",
                                       "a/.hidden", "x y/z"};
    static const char *const bad[] = {"", "/etc/passwd", "../x", "a/../../x", "a/..", "..",
                                      "./a", "a/./b", "a//b", "a\\..\\b", "a/\x01", "a\nb"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(net_safe_relpath(good[i], false));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (net_safe_relpath(bad[i], true)) fail_msg("accepted unsafe name '%s'", bad[i]);
    }
    assert_true(net_safe_relpath("scifact/", true));
    assert_false(net_safe_relpath("scifact/", false));
    assert_false(net_safe_relpath("/", true));
}

/* ---- zip ----------------------------------------------------------------------------
 * A minimal writer of stored (uncompressed) entries, so the tests can build archives that
 * no well-behaved tool would: "../" names, links, duplicates, wrong CRCs. */

typedef struct zentry {
    const char *name;
    const char *data;
    uint32_t mode; /* unix mode for the external attributes (0: none) */
    bool bad_crc;
} zentry;

static void put16(gtr_buf *b, uint32_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    assert_int_equal(gtr_buf_append(b, x, 2, NULL), GTR_OK);
}
static void put32(gtr_buf *b, uint32_t v)
{
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}

static void make_zip(const char *path, const zentry *e, size_t n)
{
    gtr_buf b = {0}, cd = {0};
    for (size_t i = 0; i < n; i++) {
        uint32_t off = (uint32_t)b.len, len = (uint32_t)strlen(e[i].data);
        uint32_t crc = gtr_crc32(0, e[i].data, len) ^ (e[i].bad_crc ? 1u : 0u);
        uint16_t nl = (uint16_t)strlen(e[i].name);
        put32(&b, 0x04034b50);
        put16(&b, 20);
        put16(&b, 0);
        put16(&b, 0); /* stored */
        put16(&b, 0);
        put16(&b, 0x21);
        put32(&b, crc);
        put32(&b, len);
        put32(&b, len);
        put16(&b, nl);
        put16(&b, 0);
        gtr_buf_append(&b, e[i].name, nl, NULL);
        gtr_buf_append(&b, e[i].data, len, NULL);
        put32(&cd, 0x02014b50);
        put16(&cd, 3u << 8 | 20); /* made by: unix */
        put16(&cd, 20);
        put16(&cd, 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put16(&cd, 0x21);
        put32(&cd, crc);
        put32(&cd, len);
        put32(&cd, len);
        put16(&cd, nl);
        put16(&cd, 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put16(&cd, 0);
        put32(&cd, e[i].mode << 16);
        put32(&cd, off);
        gtr_buf_append(&cd, e[i].name, nl, NULL);
    }
    uint32_t cd_off = (uint32_t)b.len;
    gtr_buf_append(&b, cd.data, cd.len, NULL);
    put32(&b, 0x06054b50);
    put16(&b, 0);
    put16(&b, 0);
    put16(&b, (uint32_t)n);
    put16(&b, (uint32_t)n);
    put32(&b, (uint32_t)cd.len);
    put32(&b, cd_off);
    put16(&b, 0);
    tu_write(path, b.data, b.len);
    gtr_buf_free(&b);
    gtr_buf_free(&cd);
}

static char *fresh_dir(const char *name)
{
    char *d = tu_tmp(name);
    gtr_error e;
    TU_OK(gtr_remove_tree(d, &e), &e);
    TU_OK(gtr_mkdirs(d, &e), &e);
    return d;
}

static void assert_file(const char *dir, const char *rel, const char *want)
{
    char *p = gtr_path_join(dir, rel), *d;
    size_t n;
    gtr_error e;
    TU_OK(gtr_read_file(p, 0, &d, &n, &e), &e);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(d, want, n);
    free(d);
    free(p);
}

static bool dir_is_empty(const char *d) { return net_dest_state(d) == 0; }

typedef struct prog {
    uint64_t last, total;
    int calls;
} prog;

static int count_progress(void *user, uint64_t done, uint64_t total)
{
    prog *p = user;
    assert_true(done >= p->last);
    p->last = done;
    p->total = total;
    p->calls++;
    return 0;
}

static void test_unzip_good(void **state)
{
    (void)state;
    const zentry e[] = {
        {"ds/", "", 040755, false},
        {"ds/corpus.jsonl", "{\"_id\":\"1\"}\n", 0100644, false},
        {"ds/qrels/test.tsv", "query-id\tcorpus-id\tscore\n", 0100644, false}, /* no dir entry */
        {"ds/empty.txt", "", 0, false},
        {"__MACOSX/ds/._corpus.jsonl", "junk", 0100644, false},
    };
    char *z = tu_tmp("good.zip"), *d = fresh_dir("good");
    make_zip(z, e, sizeof e / sizeof *e);
    gtr_error err;
    prog p = {0};
    uint64_t total = 0;
    TU_OK(net_unzip(z, d, count_progress, &p, &total, &err), &err);
    assert_file(d, "ds/corpus.jsonl", "{\"_id\":\"1\"}\n");
    assert_file(d, "ds/qrels/test.tsv", "query-id\tcorpus-id\tscore\n");
    assert_file(d, "ds/empty.txt", "");
    char *junk = gtr_path_join(d, "__MACOSX");
    assert_false(gtr_dir_exists(junk)); /* resource forks are skipped */
    free(junk);
    assert_int_equal(total, strlen(e[1].data) + strlen(e[2].data));
    assert_int_equal(p.last, total);
    free(z);
    free(d);
}

static void expect_refused(const char *tag, const zentry *e, size_t n, gtr_status want,
                           const char *msg)
{
    char zn[64], dn[64];
    snprintf(zn, sizeof zn, "%s.zip", tag);
    snprintf(dn, sizeof dn, "%s.out", tag);
    char *z = tu_tmp(zn), *d = fresh_dir(dn);
    make_zip(z, e, n);
    gtr_error err;
    gtr_status st = net_unzip(z, d, NULL, NULL, NULL, &err);
    if (st != want) fail_msg("%s: status %d (%s), want %d", tag, st, err.message, want);
    if (!strstr(err.message, msg)) fail_msg("%s: message '%s' lacks '%s'", tag, err.message, msg);
    free(z);
    free(d);
}

static void test_unzip_refuses_unsafe(void **state)
{
    (void)state;
    /* Unsafe names are refused before anything is written, even after good entries. */
    const zentry slip[] = {{"ds/a.txt", "a", 0100644, false}, {"ds/../../escape.txt", "x", 0100644, false}};
    expect_refused("slip", slip, 2, GTR_ERR_FORMAT, "unsafe entry name 'ds/../../escape.txt'");
    char *d = tu_tmp("slip.out"), *esc = tu_tmp("escape.txt");
    assert_true(dir_is_empty(d));
    assert_false(gtr_file_exists(esc));
    free(d);
    free(esc);
    const zentry abs[] = {{"/tmp/gtr-abs-test.txt", "x", 0100644, false}};
    expect_refused("abs", abs, 1, GTR_ERR_FORMAT, "unsafe entry name '/tmp/gtr-abs-test.txt'");
    const zentry dots[] = {{"..", "x", 0100644, false}};
    expect_refused("dots", dots, 1, GTR_ERR_FORMAT, "unsafe entry name");
    const zentry link[] = {{"ds/link", "/etc", 0120777, false}, {"ds/link/passwd", "x", 0100644, false}};
    expect_refused("link", link, 2, GTR_ERR_FORMAT, "'ds/link' is a symbolic link");
    d = tu_tmp("link.out");
    assert_true(dir_is_empty(d));
    free(d);
    /* libzip itself refuses an archive naming one entry twice */
    const zentry dup[] = {{"ds/a.txt", "first", 0100644, false}, {"ds/a.txt", "second", 0100644, false}};
    expect_refused("dup", dup, 2, GTR_ERR_FORMAT, "not a readable zip archive");
    d = tu_tmp("dup.out");
    assert_true(dir_is_empty(d));
    free(d);
    /* a directory and a file of the same name: the file is never written over it */
    const zentry clash[] = {{"ds/a/", "", 040755, false}, {"ds/a", "second", 0100644, false}};
    expect_refused("clash", clash, 2, GTR_ERR_FORMAT, "'ds/a' appears more than once");
    const zentry crc[] = {{"ds/a.txt", "hello world", 0100644, true}};
    expect_refused("crc", crc, 1, GTR_ERR_FORMAT, "entry 'ds/a.txt' is corrupt");
}

static void test_unzip_bad_archives(void **state)
{
    (void)state;
    gtr_error err;
    char *d = fresh_dir("bad.out");
    char *p = tu_tmp("notzip.zip");
    tu_write(p, "this is not a zip archive at all", 32);
    assert_int_equal(net_unzip(p, d, NULL, NULL, NULL, &err), GTR_ERR_FORMAT);
    assert_non_null(strstr(err.message, "not a readable zip archive"));
    assert_non_null(strstr(err.message, p));
    /* a real archive cut short */
    const zentry e[] = {{"ds/a.txt", "some content here", 0100644, false}};
    char *z = tu_tmp("trunc.zip");
    make_zip(z, e, 1);
    char *data;
    size_t n;
    TU_OK(gtr_read_file(z, 0, &data, &n, &err), &err);
    tu_write(z, data, n - 30);
    free(data);
    assert_int_equal(net_unzip(z, d, NULL, NULL, NULL, &err), GTR_ERR_FORMAT);
    assert_true(dir_is_empty(d));
    /* empty archive (just the end record) */
    make_zip(z, e, 0);
    assert_int_equal(net_unzip(z, d, NULL, NULL, NULL, &err), GTR_ERR_FORMAT);
    free(z);
    free(p);
    free(d);
}

/* ---- staging ---------------------------------------------------------------------------- */

static void write_rel(const char *dir, const char *rel, const char *text)
{
    char *p = gtr_path_join(dir, rel);
    tu_write(p, text, strlen(text));
    free(p);
}

static void test_stage_commit_and_force(void **state)
{
    (void)state;
    gtr_error e;
    char *dest = tu_tmp("stage/model");
    net_stage a, b;
    TU_OK(net_stage_open(&a, dest, &e), &e);
    /* one download per destination at a time */
    assert_int_equal(net_stage_open(&b, dest, &e), GTR_ERR_IO);
    assert_non_null(strstr(e.message, "another download"));
    char *tree = net_stage_path(&a, "tree");
    TU_OK(gtr_mkdirs(tree, &e), &e);
    write_rel(tree, "f.txt", "new");
    TU_OK(net_stage_commit(&a, "tree", false, &e), &e);
    assert_file(dest, "f.txt", "new");
    char *partial = tu_tmp("stage/model.partial");
    assert_false(gtr_dir_exists(partial));
    net_stage_close(&a, false);
    free(tree);

    /* an existing destination is only replaced with force */
    TU_OK(net_stage_open(&a, dest, &e), &e);
    tree = net_stage_path(&a, "tree");
    TU_OK(gtr_mkdirs(tree, &e), &e);
    write_rel(tree, "g.txt", "newer");
    assert_int_equal(net_stage_commit(&a, "tree", false, &e), GTR_ERR_IO);
    assert_non_null(strstr(e.message, "already exists"));
    assert_file(dest, "f.txt", "new");
    TU_OK(net_stage_commit(&a, "tree", true, &e), &e);
    assert_file(dest, "g.txt", "newer");
    char *old = gtr_path_join(dest, "f.txt");
    assert_false(gtr_file_exists(old));
    assert_false(gtr_dir_exists(partial));
    net_stage_close(&a, false);

    /* an empty directory at the destination is simply replaced (rename(2) allows it) */
    char *dest3 = tu_tmp("stage/empty");
    TU_OK(gtr_mkdirs(dest3, &e), &e);
    TU_OK(net_stage_open(&a, dest3, &e), &e);
    char *tree3 = net_stage_path(&a, "tree");
    TU_OK(gtr_mkdirs(tree3, &e), &e);
    write_rel(tree3, "h.txt", "filled");
    TU_OK(net_stage_commit(&a, "tree", false, &e), &e);
    assert_file(dest3, "h.txt", "filled");
    net_stage_close(&a, false);
    free(tree3);
    free(dest3);

    /* discard removes the staging directory, keep leaves it for a resume */
    char *dest2 = tu_tmp("stage/other/");
    TU_OK(net_stage_open(&a, dest2, &e), &e);
    char *part2 = tu_tmp("stage/other.partial");
    assert_true(gtr_dir_exists(part2));
    net_stage_close(&a, false);
    assert_true(gtr_dir_exists(part2));
    TU_OK(net_stage_open(&a, dest2, &e), &e); /* the lock was released */
    net_stage_close(&a, true);
    assert_false(gtr_dir_exists(part2));
    free(old);
    free(tree);
    free(partial);
    free(dest);
    free(dest2);
    free(part2);
}

static void test_rmtree_keeps_link_targets(void **state)
{
    (void)state;
    gtr_error e;
    char *outside = fresh_dir("outside"), *tree = fresh_dir("tree");
    write_rel(outside, "keep.txt", "precious");
    char *sub = gtr_path_join(tree, "sub"), *ln = gtr_path_join(tree, "sub/link");
    TU_OK(gtr_mkdirs(sub, &e), &e);
    assert_int_equal(symlink(outside, ln), 0);
    TU_OK(gtr_remove_tree(tree, &e), &e);
    assert_false(gtr_dir_exists(tree));
    assert_file(outside, "keep.txt", "precious");
    TU_OK(gtr_remove_tree(tree, &e), &e); /* absent: fine */
    assert_int_equal(net_dest_state(outside), 1);
    char *f = gtr_path_join(outside, "keep.txt");
    assert_int_equal(net_dest_state(f), -1);
    free(f);
    free(sub);
    free(ln);
    free(outside);
    free(tree);
}

/* ---- public calls without a server ------------------------------------------------------- */

typedef struct events {
    int present, start;
    char detail[512];
} events;

static void record(void *user, gtr_download_event ev, const char *name, uint64_t size,
                   const char *detail)
{
    (void)name;
    (void)size;
    events *r = user;
    if (ev == GTR_DOWNLOAD_PRESENT) r->present++;
    if (ev == GTR_DOWNLOAD_START) r->start++;
    snprintf(r->detail, sizeof r->detail, "%s", detail ? detail : "");
}

static void test_public_calls_offline(void **state)
{
    (void)state;
    gtr_error e;
    gtr_download_options o = gtr_download_default_options();
    assert_int_equal(o.max_retries, 5);
    events r = {0};
    o.on_event = record;
    o.user = &r;
    o.endpoint = "http://127.0.0.1:1"; /* nothing listens there */
    o.max_retries = 0;
    char *dir = tu_tmp("pub/model");

    static const char *const bad_repos[] = {"", "../x", "a/b/c", "/a", "a b", "a//b", ".x"};
    for (size_t i = 0; i < sizeof bad_repos / sizeof *bad_repos; i++)
        assert_int_equal(gtr_model_download(bad_repos[i], dir, &o, &e), GTR_ERR_INVALID_ARG);
    assert_int_equal(gtr_model_download(NULL, dir, &o, &e), GTR_ERR_INVALID_ARG);
    assert_int_equal(gtr_model_download("org/name", "", &o, &e), GTR_ERR_INVALID_ARG);
    static const char *const bad_names[] = {"", "../scifact", "a/b", ".hidden", "sci fact"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        assert_int_equal(gtr_dataset_download(bad_names[i], dir, &o, &e), GTR_ERR_INVALID_ARG);

    /* An unreachable hub: a network error that says what to do, and nothing on disk. */
    assert_int_equal(gtr_model_download("org/name", dir, &o, &e), GTR_ERR_NETWORK);
    assert_non_null(strstr(e.message, "http://127.0.0.1:1/org/name/resolve/main/modules.json"));
    assert_non_null(strstr(e.message, "HF_ENDPOINT"));
    assert_int_equal(net_dest_state(dir), 0);
    char *partial = tu_tmp("pub/model.partial");
    assert_false(gtr_dir_exists(partial));
    assert_int_equal(gtr_dataset_download("scifact", dir, &o, &e), GTR_ERR_NETWORK);
    assert_non_null(strstr(e.message, "http://127.0.0.1:1/scifact.zip"));
    assert_non_null(strstr(e.message, "GTR_BEIR_URL"));
    char *dpart = tu_tmp("pub/model/scifact.partial");
    assert_false(gtr_dir_exists(dpart)); /* no byte arrived: no staging directory either */
    free(dpart);

    /* An existing destination: nothing to do, no request made (the endpoint is unreachable). */
    TU_OK(gtr_mkdirs(dir, &e), &e);
    write_rel(dir, "modules.json", "[]");
    r.start = 0;
    TU_OK(gtr_model_download("org/name", dir, &o, &e), &e);
    assert_int_equal(r.present, 1);
    assert_int_equal(r.start, 0);
    assert_string_equal(r.detail, dir);
    char *parent = tu_tmp("pub");
    TU_OK(gtr_dataset_download("model", parent, &o, &e), &e);
    assert_int_equal(r.present, 2);
    /* ... and a file where the directory should be is an error */
    char *file = gtr_path_join(dir, "modules.json");
    assert_int_equal(gtr_model_download("org/name", file, &o, &e), GTR_ERR_IO);
    assert_non_null(strstr(e.message, "not a directory"));
    free(file);
    free(parent);
    free(partial);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_url_escape),
        cmocka_unit_test(test_safe_relpath),
        cmocka_unit_test(test_unzip_good),
        cmocka_unit_test(test_unzip_refuses_unsafe),
        cmocka_unit_test(test_unzip_bad_archives),
        cmocka_unit_test(test_stage_commit_and_force),
        cmocka_unit_test(test_rmtree_keeps_link_targets),
        cmocka_unit_test(test_public_calls_offline),
    };
    return cmocka_run_group_tests_name("net", tests, NULL, NULL);
}
