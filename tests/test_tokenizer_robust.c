/* test_tokenizer_robust.c — malformed input never crashes the tokenizer and gets a clear
 * error: missing / truncated / corrupted spiece.model, garbage bytes; texts with invalid
 * UTF-8, NUL bytes, only whitespace, and 10 MB lines (the Viterbi search must be linear). */
#include "support/testutil.h"

#include <stdlib.h>
#include <string.h>

typedef struct fx {
    char *model;     /* the real spiece.model bytes */
    size_t len;
    gtr_tokenizer *tok;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    gtr_error e;
    char *p = tu_shared("spm/t5-spiece.model");
    if (gtr_read_file(p, 0, &f->model, &f->len, &e)) fail_msg("%s", e.message);
    f->tok = gtr_tokenizer_load(p, NULL, &e);
    if (!f->tok) fail_msg("%s", e.message);
    free(p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    gtr_tokenizer_free(f->tok);
    free(f->model);
    free(f);
    return 0;
}

/* Deterministic pseudo-random numbers (tests must be reproducible). */
static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void test_missing_file(void **state)
{
    (void)state;
    gtr_error e;
    assert_null(gtr_tokenizer_load("/nonexistent/dir/spiece.model", NULL, &e));
    assert_int_equal(e.code, GTR_ERR_NOT_FOUND);
    assert_non_null(strstr(e.message, "/nonexistent/dir/spiece.model"));
    assert_null(gtr_tokenizer_load(tu_tmpdir(), NULL, &e)); /* a directory */
    assert_int_not_equal(e.code, GTR_OK);
    assert_null(gtr_tokenizer_load(NULL, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_INVALID_ARG);
    gtr_tokenizer_free(NULL);
}

static void test_load_memory_equals_file(void **state)
{
    fx *f = *state;
    gtr_error e;
    gtr_tokenizer *t = gtr_tokenizer_load_memory(f->model, f->len, NULL, &e);
    assert_non_null(t);
    gtr_ids a = {0}, b = {0};
    const char *s = "The same model from memory and from the file.";
    TU_OK(gtr_tokenizer_encode(t, s, strlen(s), 0, 1, &a, &e), &e);
    TU_OK(gtr_tokenizer_encode(f->tok, s, strlen(s), 0, 1, &b, &e), &e);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    gtr_ids_free(&a);
    gtr_ids_free(&b);
    gtr_tokenizer_free(t);
}

/* Every prefix of the file is rejected with a format error (the model's pieces come first,
 * its specs last, so even a cut at a piece boundary is not a model). */
static void test_truncated(void **state)
{
    fx *f = *state;
    gtr_error e;
    size_t cuts = 0;
    uint64_t seed = 42;
    for (size_t i = 0; i < 600; i++) {
        size_t cut;
        if (i < 40) cut = i;                                  /* the start */
        else if (i < 120) cut = f->len - 1 - (i - 40);        /* the end (the normalizer spec) */
        else cut = (size_t)(rng_next(&seed) % f->len);        /* anywhere */
        gtr_tokenizer *t = gtr_tokenizer_load_memory(f->model, cut, NULL, &e);
        if (t) fail_msg("a model cut to %zu of %zu bytes loaded", cut, f->len);
        if (e.code != GTR_ERR_FORMAT) fail_msg("cut %zu: %s (%s)", cut, gtr_status_str(e.code), e.message);
        assert_non_null(strstr(e.message, "<memory>"));
        cuts++;
    }
    assert_int_equal(cuts, 600);
    /* the file cut on disk: the error names the file */
    char *p = tu_tmp("cut.model");
    tu_write(p, f->model, f->len / 2);
    assert_null(gtr_tokenizer_load(p, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, p));
    free(p);
}

/* Corrupted bytes: loading either fails cleanly or gives a tokenizer that encodes without
 * crashing (a flipped score or piece byte is still a well-formed model). */
static void test_corrupted(void **state)
{
    fx *f = *state;
    gtr_error e;
    char *buf = malloc(f->len);
    uint64_t seed = 7;
    static const char *texts[] = {"Hello world", "Café naïve résumé ＡＢＣ ｶﾀｶﾅ 日本語 🍕",
                                  "  a  \t b \xff\xfe\x00 c", ""};
    size_t loaded = 0, failed = 0;
    /* the normalizer spec (precompiled charsmap) is the last ~240 KB of the file */
    size_t tail = f->len > 250000 ? 250000 : f->len;
    for (int it = 0; it < 40; it++) {
        memcpy(buf, f->model, f->len);
        int flips = 1 + (int)(rng_next(&seed) % 8);
        for (int k = 0; k < flips; k++) {
            size_t pos = it % 2 ? f->len - 1 - (size_t)(rng_next(&seed) % tail)
                                : (size_t)(rng_next(&seed) % f->len);
            buf[pos] = (char)rng_next(&seed);
        }
        gtr_tokenizer *t = gtr_tokenizer_load_memory(buf, f->len, NULL, &e);
        if (!t) {
            assert_true(e.code == GTR_ERR_FORMAT || e.code == GTR_ERR_UNSUPPORTED);
            assert_true(strlen(e.message) > 10);
            failed++;
            continue;
        }
        loaded++;
        gtr_ids ids = {0};
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
            gtr_status st = gtr_tokenizer_encode(t, texts[i], strlen(texts[i]) + (i == 2 ? 3 : 0), 0, 1, &ids, &e);
            assert_true(st == GTR_OK || st == GTR_ERR_FORMAT || st == GTR_ERR_UNSUPPORTED);
            if (st == GTR_OK)
                for (size_t k = 0; k < ids.n; k++)
                    assert_true(ids.ids[k] >= 0 && ids.ids[k] < gtr_tokenizer_vocab_size(t));
        }
        gtr_ids_free(&ids);
        gtr_tokenizer_free(t);
    }
    assert_int_equal(loaded + failed, 40);
    /* Pure garbage, all zeros, all 0xff, and nothing at all. */
    for (size_t n = 0; n < 4096; n = n * 3 + 1) {
        for (size_t i = 0; i < n; i++) buf[i] = (char)rng_next(&seed);
        assert_null(gtr_tokenizer_load_memory(buf, n, NULL, &e));
        memset(buf, 0, n);
        assert_null(gtr_tokenizer_load_memory(buf, n, NULL, &e));
        memset(buf, 0xff, n);
        assert_null(gtr_tokenizer_load_memory(buf, n, NULL, &e));
        assert_int_not_equal(e.code, GTR_OK);
    }
    assert_null(gtr_tokenizer_load_memory(NULL, 0, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_FORMAT);
    assert_null(gtr_tokenizer_load_memory(NULL, 5, NULL, &e));
    assert_int_equal(e.code, GTR_ERR_INVALID_ARG);
    free(buf);
}

/* The pieces of a text concatenate to its normalised form. */
static void check_cover(gtr_tokenizer *t, const char *s, size_t len)
{
    gtr_error e;
    gtr_pieces pc = {0};
    char *norm;
    size_t nlen;
    TU_OK(gtr_tokenizer_normalize(t, s, len, &norm, &nlen, &e), &e);
    TU_OK(gtr_tokenizer_encode_pieces(t, s, len, &pc, &e), &e);
    size_t o = 0;
    for (size_t i = 0; i < pc.n; i++) {
        size_t plen = pc.offs[i + 1] - pc.offs[i] - 1;
        assert_true(plen > 0 && o + plen <= nlen);
        assert_memory_equal(pc.text + pc.offs[i], norm + o, plen);
        o += plen;
    }
    assert_int_equal(o, nlen);
    free(norm);
    gtr_pieces_free(&pc);
}

static void expect_norm(gtr_tokenizer *t, const char *s, size_t len, const char *want)
{
    gtr_error e;
    char *norm;
    size_t n;
    TU_OK(gtr_tokenizer_normalize(t, s, len, &norm, &n, &e), &e);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(norm, want, n);
    free(norm);
    check_cover(t, s, len);
}

#define U_FFFD "\xEF\xBF\xBD"
#define SP "\xE2\x96\x81"

static void test_invalid_utf8(void **state)
{
    fx *f = *state;
    /* SentencePiece replaces each byte that does not start a valid UTF-8 character by U+FFFD,
     * consuming that byte only; the replacement is not normalised again. */
    expect_norm(f->tok, "a\xff" "b", 3, SP "a" U_FFFD "b");
    expect_norm(f->tok, "\xe2\x82", 2, SP U_FFFD U_FFFD);                 /* truncated */
    expect_norm(f->tok, "x\xc0\xafy", 4, SP "x" U_FFFD U_FFFD "y");       /* overlong */
    expect_norm(f->tok, "\xed\xa0\x80", 3, SP U_FFFD U_FFFD U_FFFD);      /* surrogate */
    expect_norm(f->tok, "\xf4\x90\x80\x80", 4, SP U_FFFD U_FFFD U_FFFD U_FFFD); /* > U+10FFFF */
    expect_norm(f->tok, "\x80", 1, SP U_FFFD);                            /* stray continuation */
    /* ... and the invalid bytes come out as one merged unknown token */
    gtr_error e;
    gtr_ids ids = {0};
    TU_OK(gtr_tokenizer_encode(f->tok, "\xed\xa0\x80", 3, 0, 0, &ids, &e), &e);
    assert_int_equal(ids.ids[ids.n - 1], gtr_tokenizer_unk_id(f->tok));
    gtr_ids_free(&ids);
}

static void test_nul_and_whitespace(void **state)
{
    fx *f = *state;
    gtr_error e;
    gtr_ids ids = {0};
    /* NUL is an ordinary (unknown) character, not an end of string */
    gtr_pieces pc = {0};
    TU_OK(gtr_tokenizer_encode_pieces(f->tok, "a\0b", 3, &pc, &e), &e);
    bool found = false;
    for (size_t i = 0; i < pc.n; i++)
        if (pc.offs[i + 1] - pc.offs[i] - 1 == 1 && pc.text[pc.offs[i]] == '\0') {
            found = true;
            assert_int_equal(pc.ids[i], gtr_tokenizer_unk_id(f->tok));
        }
    assert_true(found);
    gtr_pieces_free(&pc);
    check_cover(f->tok, "\0\0x\0", 4);
    /* empty or whitespace-only texts are just </s> */
    static const char *blank[] = {"", " ", "   ", "\t\n\r\n ", "\xe3\x80\x80"};
    for (size_t i = 0; i < sizeof blank / sizeof *blank; i++) {
        TU_OK(gtr_tokenizer_encode(f->tok, blank[i], strlen(blank[i]), 0, 1, &ids, &e), &e);
        assert_int_equal(ids.n, 1);
        assert_int_equal(ids.ids[0], gtr_tokenizer_eos_id(f->tok));
        expect_norm(f->tok, blank[i], strlen(blank[i]), "");
    }
    TU_OK(gtr_tokenizer_encode(f->tok, NULL, 0, 0, 1, &ids, &e), &e);
    assert_int_equal(ids.n, 1);
    assert_int_equal(gtr_tokenizer_encode(f->tok, NULL, 3, 0, 1, &ids, &e), GTR_ERR_INVALID_ARG);
    /* whitespace runs collapse, leading/trailing go: same ids as single spaces */
    gtr_ids b = {0};
    TU_OK(gtr_tokenizer_encode(f->tok, "  a   b\t\tc  ", 12, 0, 1, &ids, &e), &e);
    TU_OK(gtr_tokenizer_encode(f->tok, "a b c", 5, 0, 1, &b, &e), &e);
    assert_int_equal(ids.n, b.n);
    assert_memory_equal(ids.ids, b.ids, b.n * sizeof *b.ids);
    gtr_ids_free(&b);
    gtr_ids_free(&ids);
}

/* 10 MB lines finish quickly and give the repeated unit's ids repeated: the search is linear
 * and nothing depends on the text length. */
static void check_long(gtr_tokenizer *t, const char *unit, size_t reps)
{
    gtr_error e;
    size_t ul = strlen(unit), len = ul * reps;
    char *s = malloc(len);
    for (size_t i = 0; i < reps; i++) memcpy(s + i * ul, unit, ul);
    gtr_ids one = {0}, all = {0};
    TU_OK(gtr_tokenizer_encode(t, unit, ul, 0, 0, &one, &e), &e);
    double t0 = gtr_now_seconds();
    TU_OK(gtr_tokenizer_encode(t, s, len, 0, 1, &all, &e), &e);
    double dt = gtr_now_seconds() - t0;
    assert_int_equal(all.n, one.n * reps + 1);
    for (size_t i = 0; i + 1 < all.n; i++) assert_int_equal(all.ids[i], one.ids[i % one.n]);
    /* generous: ~0.3 s in a release build, a few seconds under the sanitizers */
    if (dt > 60) fail_msg("a %zu-byte text took %.1f s", len, dt);
    /* truncation to 512 of the long text is the first 511 ids + </s> */
    TU_OK(gtr_tokenizer_encode(t, s, len, 512, 1, &all, &e), &e);
    assert_int_equal(all.n, one.n * reps < 511 ? one.n * reps + 1 : 512);
    gtr_ids_free(&one);
    gtr_ids_free(&all);
    free(s);
}

static void test_long_lines(void **state)
{
    fx *f = *state;
    check_long(f->tok, "Hello world, this is a test sentence. ", 10u * 1024 * 1024 / 38);
    /* no spaces at all: one long run of characters */
    gtr_error e;
    size_t len = 10u * 1024 * 1024;
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++) s[i] = (char)('a' + i % 26);
    gtr_ids ids = {0};
    double t0 = gtr_now_seconds();
    TU_OK(gtr_tokenizer_encode(f->tok, s, len, 0, 1, &ids, &e), &e);
    assert_true(ids.n > len / 16 && gtr_now_seconds() - t0 < 60);
    /* a run of unknown characters (emoji) merges into one <unk> */
    for (size_t i = 0; i + 4 <= len; i += 4) memcpy(s + i, "\xf0\x9f\x8d\x95", 4);
    TU_OK(gtr_tokenizer_encode(f->tok, s, len, 0, 0, &ids, &e), &e);
    assert_true(ids.n <= 2);
    assert_int_equal(ids.ids[ids.n - 1], gtr_tokenizer_unk_id(f->tok));
    /* invalid bytes only */
    memset(s, 0xff, len);
    TU_OK(gtr_tokenizer_encode(f->tok, s, len, 0, 0, &ids, &e), &e);
    assert_true(ids.n <= 2);
    gtr_ids_free(&ids);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file),   cmocka_unit_test(test_load_memory_equals_file),
        cmocka_unit_test(test_truncated),      cmocka_unit_test(test_corrupted),
        cmocka_unit_test(test_invalid_utf8),   cmocka_unit_test(test_nul_and_whitespace),
        cmocka_unit_test(test_long_lines),
    };
    return cmocka_run_group_tests_name("tokenizer_robust", tests, setup, teardown);
}
