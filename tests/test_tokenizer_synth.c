/* test_tokenizer_synth.c — the SentencePiece rules on small hand-built models (written here
 * with a minimal protobuf writer): Viterbi choice and ties, unknown merging, UNUSED and
 * USER_DEFINED pieces, byte fallback, the whitespace options, a hand-made charsmap (double
 * array), decode rules, protobuf wire-format corner cases, and every load-time check. */
#include "support/testutil.h"

#include <stdlib.h>
#include <string.h>

enum { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER = 4, UNUSED = 5, BYTE = 6 };
#define SP "\xE2\x96\x81"

/* ---- protobuf writer -------------------------------------------------------------------- */

static void pb_varint(gtr_buf *b, uint64_t v)
{
    do {
        char c = (char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        assert_int_equal(gtr_buf_append(b, &c, 1, NULL), GTR_OK);
        v >>= 7;
    } while (v);
}
static void pb_tag(gtr_buf *b, int field, int wt) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wt); }
static void pb_uint(gtr_buf *b, int field, uint64_t v)
{
    pb_tag(b, field, 0);
    pb_varint(b, v);
}
static void pb_bytes(gtr_buf *b, int field, const void *p, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    assert_int_equal(gtr_buf_append(b, p, n, NULL), GTR_OK);
}
static void pb_str(gtr_buf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_float(gtr_buf *b, int field, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    pb_tag(b, field, 5);
    for (int i = 0; i < 4; i++) {
        char c = (char)(u >> (8 * i));
        gtr_buf_append(b, &c, 1, NULL);
    }
}
static void pb_msg(gtr_buf *b, int field, gtr_buf *m)
{
    pb_bytes(b, field, m->data ? m->data : "", m->len);
    gtr_buf_free(m);
}

/* A model under construction. */
typedef struct model {
    gtr_buf pieces, trainer, normalizer, extra;
    bool no_trainer, no_normalizer;
} model;

static void piece(model *m, const char *s, float score, int type)
{
    gtr_buf p = {0};
    pb_str(&p, 1, s);
    pb_float(&p, 2, score);
    if (type != NORMAL) pb_uint(&p, 3, (uint64_t)type);
    pb_msg(&m->pieces, 1, &p);
}

/* <unk> <s> </s> then the given normal pieces */
static void base_pieces(model *m)
{
    piece(m, "<unk>", 0, UNKNOWN);
    piece(m, "<s>", 0, CONTROL);
    piece(m, "</s>", 0, CONTROL);
}

/* The normalizer spec: identity (no charsmap) unless charsmap given. */
static void normalizer(model *m, const void *charsmap, size_t len, int dummy, int remove_ws, int escape)
{
    gtr_buf_free(&m->normalizer);
    pb_str(&m->normalizer, 1, charsmap ? "test" : "identity");
    if (charsmap) pb_bytes(&m->normalizer, 2, charsmap, len);
    if (dummy >= 0) pb_uint(&m->normalizer, 3, (uint64_t)dummy);
    if (remove_ws >= 0) pb_uint(&m->normalizer, 4, (uint64_t)remove_ws);
    if (escape >= 0) pb_uint(&m->normalizer, 5, (uint64_t)escape);
}

static gtr_tokenizer *build_model(model *m, gtr_error *e)
{
    gtr_buf out = {0};
    gtr_buf_append(&out, m->pieces.data ? m->pieces.data : "", m->pieces.len, NULL);
    pb_uint(&m->trainer, 3, 1); /* unigram */
    if (!m->no_trainer) pb_msg(&out, 2, &m->trainer);
    if (!m->normalizer.len) normalizer(m, NULL, 0, -1, -1, -1);
    if (!m->no_normalizer) pb_msg(&out, 3, &m->normalizer);
    gtr_buf_append(&out, m->extra.data ? m->extra.data : "", m->extra.len, NULL);
    gtr_tokenizer *t = gtr_tokenizer_load_memory(out.data ? out.data : "", out.len, NULL, e);
    gtr_buf_free(&out);
    gtr_buf_free(&m->pieces);
    gtr_buf_free(&m->trainer);
    gtr_buf_free(&m->normalizer);
    gtr_buf_free(&m->extra);
    m->no_trainer = m->no_normalizer = false;
    return t;
}

static gtr_tokenizer *must_build(model *m)
{
    gtr_error e;
    gtr_tokenizer *t = build_model(m, &e);
    if (!t) fail_msg("%s", e.message);
    return t;
}

static void expect_error(model *m, gtr_status code, const char *needle)
{
    gtr_error e;
    gtr_tokenizer *t = build_model(m, &e);
    if (t) fail_msg("loaded; expected an error containing '%s'", needle);
    assert_int_equal(e.code, code);
    if (!strstr(e.message, needle)) fail_msg("'%s' does not contain '%s'", e.message, needle);
}

/* ids of text (no </s>) as a string "3 4 0" */
static void expect_ids(gtr_tokenizer *t, const char *text, const char *want)
{
    gtr_error e;
    gtr_ids ids = {0};
    TU_OK(gtr_tokenizer_encode(t, text, strlen(text), 0, 0, &ids, &e), &e);
    char got[512] = "";
    for (size_t i = 0; i < ids.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? " " : "", (int)ids.ids[i]);
    gtr_ids_free(&ids);
    if (strcmp(got, want)) fail_msg("'%s': ids '%s', want '%s'", text, got, want);
}

static void expect_pieces(gtr_tokenizer *t, const char *text, const char *want)
{
    gtr_error e;
    gtr_pieces pc = {0};
    TU_OK(gtr_tokenizer_encode_pieces(t, text, strlen(text), &pc, &e), &e);
    char got[512] = "";
    for (size_t i = 0; i < pc.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", i ? "|" : "", pc.text + pc.offs[i]);
    gtr_pieces_free(&pc);
    if (strcmp(got, want)) fail_msg("'%s': pieces '%s', want '%s'", text, got, want);
}

static void expect_norm(gtr_tokenizer *t, const char *text, const char *want)
{
    gtr_error e;
    char *s;
    size_t n;
    TU_OK(gtr_tokenizer_normalize(t, text, strlen(text), &s, &n, &e), &e);
    if (strcmp(s, want)) fail_msg("'%s' normalises to '%s', want '%s'", text, s, want);
    gtr_free(s);
}

static void expect_decode(gtr_tokenizer *t, const int32_t *ids, size_t n, const char *want)
{
    gtr_error e;
    char *s;
    size_t len;
    TU_OK(gtr_tokenizer_decode(t, ids, n, &s, &len, &e), &e);
    if (strcmp(s, want)) fail_msg("decoded '%s', want '%s'", s, want);
    gtr_free(s);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_unknown_merge(void **state)
{
    (void)state;
    model m = {0};
    base_pieces(&m);
    piece(&m, SP, -1, NORMAL); /* 3 */
    piece(&m, "a", -1, NORMAL); /* 4 */
    piece(&m, "b", -2, NORMAL); /* 5 */
    gtr_tokenizer *t = must_build(&m);
    assert_int_equal(gtr_tokenizer_unk_id(t), 0);
    assert_int_equal(gtr_tokenizer_eos_id(t), 2);  /* "</s>" is a control piece */
    assert_int_equal(gtr_tokenizer_pad_id(t), -1); /* there is no "<pad>" */
    /* a run of unknown characters is one <unk> whose piece is the text */
    expect_ids(t, "a xyz b", "3 4 3 0 3 5");
    expect_pieces(t, "a xyz b", SP "|a|" SP "|xyz|" SP "|b");
    expect_ids(t, "axéz", "3 4 0");
    expect_pieces(t, "axéz", SP "|a|xéz");
    /* the unknown text decodes to " ⁇ " */
    int32_t ids[] = {3, 4, 3, 0, 2};
    expect_decode(t, ids, 5, "a  \xE2\x81\x87 ");
    gtr_ids out = {0};
    gtr_error e;
    TU_OK(gtr_tokenizer_encode(t, "a", 1, 0, 1, &out, &e), &e);
    assert_int_equal(out.n, 3);
    assert_int_equal(out.ids[2], 2); /* this model's </s> */
    gtr_ids_free(&out);
    gtr_tokenizer_free(t);
}

static void test_viterbi_choice(void **state)
{
    (void)state;
    model m = {0};
    base_pieces(&m);
    piece(&m, SP, -1, NORMAL);       /* 3 */
    piece(&m, "a", -1, NORMAL);      /* 4 */
    piece(&m, "b", -1, NORMAL);      /* 5 */
    piece(&m, "ab", -0.5f, NORMAL);  /* 6 */
    piece(&m, SP "ab", -2, NORMAL);  /* 7 */
    piece(&m, "abc", -4, NORMAL);    /* 8 */
    piece(&m, "c", -3, NORMAL);      /* 9 */
    gtr_tokenizer *t = must_build(&m);
    expect_ids(t, "ab", "3 6");      /* -1.5 beats ▁ab (-2) and ▁ a b (-3) */
    expect_ids(t, "abc", "3 6 9");   /* ▁ ab c (-4.5) beats ▁ abc and ▁ab c (-5) */
    gtr_tokenizer_free(t);
}

static void test_viterbi_tie(void **state)
{
    (void)state;
    /* equal scores: the first candidate found for an end position stays (strict >), i.e.
     * the last piece that starts earliest */
    model m = {0};
    base_pieces(&m);
    piece(&m, SP, -1, NORMAL);      /* 3 */
    piece(&m, "ab", -1, NORMAL);    /* 4 */
    piece(&m, SP "ab", -2, NORMAL); /* 5 */
    gtr_tokenizer *t = must_build(&m);
    expect_ids(t, "ab", "5");
    gtr_tokenizer_free(t);
}

static void test_unused_and_user_defined(void **state)
{
    (void)state;
    model m = {0};
    base_pieces(&m);
    piece(&m, SP, -1, NORMAL);      /* 3 */
    piece(&m, "a", -1, NORMAL);     /* 4 */
    piece(&m, "b", -1, NORMAL);     /* 5 */
    piece(&m, "ab", 0, UNUSED);     /* 6: never produced */
    piece(&m, "<sep>", 0, USER);    /* 7 */
    piece(&m, "<", -5, NORMAL);     /* 8 */
    piece(&m, "sep>", -5, NORMAL);  /* 9 */
    gtr_tokenizer *t = must_build(&m);
    expect_ids(t, "ab", "3 4 5");
    expect_ids(t, "a<sep>b", "3 4 7 5");
    expect_ids(t, "a<se", "3 4 8 0"); /* "se" has no piece */
    /* decode writes unused and user-defined pieces as their text */
    int32_t ids[] = {3, 6, 7};
    expect_decode(t, ids, 3, "ab<sep>");
    gtr_tokenizer_free(t);
}

static void test_byte_fallback(void **state)
{
    (void)state;
    model m = {0};
    base_pieces(&m);
    for (int b = 0; b < 256; b++) { /* ids 3 .. 258 */
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        piece(&m, s, 0, BYTE);
    }
    piece(&m, SP, -1, NORMAL); /* 259 */
    piece(&m, "a", -1, NORMAL); /* 260 */
    pb_uint(&m.trainer, 35, 1);
    gtr_tokenizer *t = must_build(&m);
    /* unknown characters become their UTF-8 bytes, one id each, not merged */
    expect_ids(t, "a\xc3\xa9z", "259 260 198 172 125");
    int32_t ids[] = {259, 260, 3 + 0xc3, 3 + 0xa9};
    expect_decode(t, ids, 4, "a\xc3\xa9");
    int32_t bad[] = {260, 3 + 0xff, 3 + 0xc3, 260};
    expect_decode(t, bad, 4, "a\xEF\xBF\xBD\xEF\xBF\xBD" "a"); /* each invalid byte: U+FFFD */
    gtr_tokenizer_free(t);
}

static void test_whitespace_options(void **state)
{
    (void)state;
    struct {
        int dummy, remove, escape, suffix;
        const char *in, *want;
    } cases[] = {
        {1, 1, 1, 0, "  a  b  ", SP "a" SP "b"},
        {0, 1, 1, 0, "  a  b  ", "a" SP "b"},
        {1, 0, 1, 0, " a  b ", SP SP "a" SP SP "b" SP},
        {0, 0, 1, 0, " a  b ", SP "a" SP SP "b" SP},
        {1, 1, 0, 0, " a  b ", " a b"},
        {1, 1, 1, 1, "a b", "a" SP "b" SP}, /* treat_whitespace_as_suffix */
        {1, 1, 1, 0, "   ", ""},
        {1, 0, 1, 0, "", ""},
        {1, 1, 1, 0, "a " SP SP, SP "a"},  /* literal U+2581 at the end goes too */
        {1, 1, 1, 0, "\t a", SP "\t" SP "a"}, /* no charsmap: a tab is a character */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        model m = {0};
        base_pieces(&m);
        piece(&m, "a", -1, NORMAL);
        normalizer(&m, NULL, 0, cases[i].dummy, cases[i].remove, cases[i].escape);
        if (cases[i].suffix) pb_uint(&m.trainer, 24, 1);
        gtr_tokenizer *t = must_build(&m);
        expect_norm(t, cases[i].in, cases[i].want);
        gtr_tokenizer_free(t);
    }
}

/* A hand-made Darts-clone double array: "A" -> "a", "B" -> "" (deleted), "C" -> " x ". */
static size_t make_charsmap(char *blob)
{
    uint32_t u[512];
    for (int i = 0; i < 512; i++) u[i] = 0x80000000u; /* unused: never matches a label */
    u[0] = 256u << 10;                                   /* root: children at 256 ^ byte */
    /* node 256^'A' = 321: label 'A', has_leaf, offset 1 -> leaf at 320 */
    u[321] = (1u << 10) | (1u << 8) | 'A';
    u[320] = 0x80000000u | 0; /* value: offset of "a" */
    u[322] = (4u << 10) | (1u << 8) | 'B';
    u[326] = 0x80000000u | 2; /* "" */
    u[323] = (8u << 10) | (1u << 8) | 'C';
    u[331] = 0x80000000u | 3; /* " x " */
    static const char repl[] = "a\0\0 x ";
    uint32_t size = sizeof u;
    size_t o = 0;
    for (int i = 0; i < 4; i++) blob[o++] = (char)(size >> (8 * i));
    for (int k = 0; k < 512; k++)
        for (int i = 0; i < 4; i++) blob[o++] = (char)(u[k] >> (8 * i));
    memcpy(blob + o, repl, sizeof repl); /* with its final NUL */
    return o + sizeof repl;
}

static void test_charsmap(void **state)
{
    (void)state;
    char blob[4 + 2048 + 16];
    size_t len = make_charsmap(blob);
    model m = {0};
    base_pieces(&m);
    piece(&m, "a", -1, NORMAL);
    piece(&m, "AB", 0, USER); /* user-defined symbols are not normalised */
    normalizer(&m, blob, len, -1, -1, -1);
    gtr_tokenizer *t = must_build(&m);
    expect_norm(t, "A", SP "a");
    expect_norm(t, "ABC", SP "AB" SP "x"); /* "AB" is user-defined: kept verbatim */
    expect_ids(t, "ABA", "0 4 3");         /* ▁ is unknown here; "AB" is a piece */
    gtr_tokenizer_free(t);
}

static void test_charsmap_rules(void **state)
{
    (void)state;
    char blob[4 + 2048 + 16];
    size_t len = make_charsmap(blob);
    model m = {0};
    base_pieces(&m);
    piece(&m, "a", -1, NORMAL);
    normalizer(&m, blob, len, -1, -1, -1);
    gtr_tokenizer *t = must_build(&m);
    expect_norm(t, "A", SP "a");
    expect_norm(t, "xAy", SP "xay");
    expect_norm(t, "ABA", SP "aa");             /* B is deleted */
    expect_norm(t, "B", "");                    /* only the dummy prefix, then trimmed */
    expect_norm(t, "ACA", SP "a" SP "x" SP "a"); /* " x " keeps its spaces */
    expect_norm(t, "C C", SP "x" SP "x");       /* spaces collapse across replacements */
    expect_norm(t, "CC", SP "x" SP "x");
    expect_norm(t, " C", SP "x");
    /* a NUL byte is an ordinary character: it matches no key */
    gtr_error e;
    char *out;
    size_t n;
    TU_OK(gtr_tokenizer_normalize(t, "Q\0A", 3, &out, &n, &e), &e);
    assert_int_equal(n, 6);
    assert_memory_equal(out, SP "Q\0a", 6);
    gtr_free(out);
    gtr_tokenizer_free(t);
}

static void test_decode_rules(void **state)
{
    (void)state;
    for (int remove = 0; remove <= 1; remove++) {
        model m = {0};
        base_pieces(&m);
        piece(&m, SP, -1, NORMAL);      /* 3 */
        piece(&m, "a", -1, NORMAL);     /* 4 */
        piece(&m, SP "b" SP, -1, NORMAL); /* 5 */
        normalizer(&m, NULL, 0, 1, remove, 1);
        gtr_tokenizer *t = must_build(&m);
        int32_t ids[] = {1, 3, 3, 4, 5, 2};
        /* With remove_extra_whitespaces every leading "▁" piece loses its "▁" while nothing
         * has been written; without it only the first does. Control pieces vanish. */
        expect_decode(t, ids, 6, remove ? "a b " : " a b ");
        gtr_tokenizer_free(t);
    }
}

static void test_wire_format(void **state)
{
    (void)state;
    /* unknown fields of every wire type (groups too), in every message, are skipped; a
     * known field with the wrong wire type is an unknown field; negative int32 values */
    model m = {0};
    gtr_buf p = {0};
    pb_uint(&p, 3, UNKNOWN);
    pb_uint(&p, 77, 5);
    pb_str(&p, 1, "<unk>");
    pb_tag(&p, 78, 3); /* group { 1: varint, nested group {} } */
    pb_uint(&p, 1, 9);
    pb_tag(&p, 2, 3);
    pb_tag(&p, 2, 4);
    pb_tag(&p, 78, 4);
    pb_tag(&p, 79, 1);
    gtr_buf_append(&p, "12345678", 8, NULL);
    pb_msg(&m.pieces, 1, &p);
    piece(&m, "</s>", 0, CONTROL);
    piece(&m, "a", -1, NORMAL);
    piece(&m, SP, -1, NORMAL);
    pb_uint(&m.trainer, 43, (uint64_t)-1); /* pad_id -1 as a 10-byte varint */
    pb_str(&m.trainer, 3, "not a varint");  /* wrong wire type: ignored */
    pb_uint(&m.trainer, 1000, 1);
    pb_uint(&m.extra, 99, 1);
    pb_str(&m.extra, 4, "");               /* empty self_test_data */
    gtr_tokenizer *t = must_build(&m);
    expect_ids(t, "a", "3 2");
    gtr_tokenizer_free(t);

    /* broken framing */
    static const struct { const char *bytes; size_t len; } bad[] = {
        {"\x0a\x05\x0a", 3},          /* length past the end */
        {"\x08", 1},                  /* varint missing */
        {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12}, /* 11-byte varint */
        {"\x1b\x08\x01", 3},          /* unterminated group */
        {"\x0c", 1},                  /* end-group without start */
        {"\x0e", 1},                  /* wire type 6 */
        {"\x00", 1},                  /* field 0 */
        {"\x0d\x01\x02", 3},          /* truncated fixed32 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        gtr_error e;
        assert_null(gtr_tokenizer_load_memory(bad[i].bytes, bad[i].len, NULL, &e));
        assert_int_equal(e.code, GTR_ERR_FORMAT);
        assert_non_null(strstr(e.message, "byte"));
    }
}

static void test_load_errors(void **state)
{
    (void)state;
    model m = {0};
    piece(&m, "a", -1, NORMAL);
    expect_error(&m, GTR_ERR_FORMAT, "no unknown");

    base_pieces(&m);
    piece(&m, "<unk2>", 0, UNKNOWN);
    expect_error(&m, GTR_ERR_FORMAT, "second unknown");

    base_pieces(&m);
    piece(&m, "a", -1, NORMAL);
    piece(&m, "a", -2, NORMAL);
    expect_error(&m, GTR_ERR_FORMAT, "'a' is defined twice");

    base_pieces(&m);
    piece(&m, "<s>", 0, CONTROL);
    expect_error(&m, GTR_ERR_FORMAT, "'<s>' is defined twice");

    base_pieces(&m);
    piece(&m, "", -1, NORMAL);
    expect_error(&m, GTR_ERR_FORMAT, "piece 3 is empty");

    base_pieces(&m);
    piece(&m, "a", -1, NORMAL);
    gtr_buf t2 = {0};
    pb_uint(&t2, 3, 2); /* BPE */
    m.no_trainer = true;
    pb_msg(&m.extra, 2, &t2);
    expect_error(&m, GTR_ERR_UNSUPPORTED, "bpe");

    base_pieces(&m);
    piece(&m, "<0x41>", 0, BYTE);
    expect_error(&m, GTR_ERR_FORMAT, "byte_fallback is off");

    base_pieces(&m);
    piece(&m, "<0x41>", 0, BYTE);
    pb_uint(&m.trainer, 35, 1);
    expect_error(&m, GTR_ERR_FORMAT, "no byte piece <0x00>");

    base_pieces(&m);
    piece(&m, "<0xzz>", 0, BYTE);
    pb_uint(&m.trainer, 35, 1);
    expect_error(&m, GTR_ERR_FORMAT, "invalid byte piece");

    base_pieces(&m);
    gtr_buf p = {0};
    pb_bytes(&p, 1, "a\0b", 3);
    pb_msg(&m.pieces, 1, &p);
    expect_error(&m, GTR_ERR_FORMAT, "NUL");

    base_pieces(&m);
    expect_error(&m, GTR_ERR_FORMAT, "no normal pieces");

    base_pieces(&m);
    piece(&m, "a", -1, NORMAL);
    m.no_normalizer = true;
    expect_error(&m, GTR_ERR_FORMAT, "truncated");

    base_pieces(&m);
    piece(&m, "a", -1, NORMAL);
    m.no_trainer = true;
    expect_error(&m, GTR_ERR_FORMAT, "truncated");

    /* charsmaps whose framing is broken */
    static const struct { const char *blob; size_t len; } cm[] = {
        {"\x01\x00\x00", 3}, {"\x10\x00\x00\x00\x00", 5}, {"\x02\x00\x00\x00\x00\x00\x00", 7},
    };
    for (size_t i = 0; i < sizeof cm / sizeof *cm; i++) {
        base_pieces(&m);
        piece(&m, "a", -1, NORMAL);
        normalizer(&m, cm[i].blob, cm[i].len, -1, -1, -1);
        expect_error(&m, GTR_ERR_FORMAT, "precompiled_charsmap");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_merge),    cmocka_unit_test(test_viterbi_choice),
        cmocka_unit_test(test_viterbi_tie),      cmocka_unit_test(test_unused_and_user_defined),
        cmocka_unit_test(test_byte_fallback),    cmocka_unit_test(test_whitespace_options),
        cmocka_unit_test(test_charsmap),         cmocka_unit_test(test_charsmap_rules),
        cmocka_unit_test(test_decode_rules),     cmocka_unit_test(test_wire_format),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests_name("tokenizer_synth", tests, NULL, NULL);
}
