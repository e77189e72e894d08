/* test_tokenizer.c — the T5 SentencePiece tokenizer against the reference files in
 * ../shared/tokenizer (made with SentencePiece 0.1.97): ids without truncation, truncated to
 * 512 and 32, pieces; the special ids; decode; concurrent encoding from several threads. */
#include "support/testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref {
    gtr_tokenizer *tok;
    json_t **texts, **full, **l512, **l32, **pieces;
    size_t n;
} ref;

static int setup(void **state)
{
    ref *r = calloc(1, sizeof *r);
    gtr_error e;
    char *p = tu_shared("spm/t5-spiece.model");
    r->tok = gtr_tokenizer_load(p, NULL, &e);
    if (!r->tok) fail_msg("%s", e.message);
    free(p);
    static const char *files[] = {"tokenizer/texts.jsonl", "tokenizer/ids_full.jsonl",
                                  "tokenizer/ids_512.jsonl", "tokenizer/ids_32.jsonl",
                                  "tokenizer/pieces_full.jsonl"};
    json_t ***dst[] = {&r->texts, &r->full, &r->l512, &r->l32, &r->pieces};
    for (int i = 0; i < 5; i++) {
        p = tu_shared(files[i]);
        size_t n = tu_json_lines(p, dst[i]);
        free(p);
        if (i == 0) r->n = n;
        else if (n != r->n) fail_msg("%s has %zu lines, texts.jsonl %zu", files[i], n, r->n);
    }
    assert_true(r->n > 500);
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    ref *r = *state;
    gtr_tokenizer_free(r->tok);
    tu_json_lines_free(r->texts, r->n);
    tu_json_lines_free(r->full, r->n);
    tu_json_lines_free(r->l512, r->n);
    tu_json_lines_free(r->l32, r->n);
    tu_json_lines_free(r->pieces, r->n);
    free(r);
    return 0;
}

static const char *text_of(const ref *r, size_t i, size_t *len)
{
    assert_true(json_is_string(r->texts[i]));
    *len = json_string_length(r->texts[i]);
    return json_string_value(r->texts[i]);
}

/* Does ids equal the JSON array want (optionally without its last element)? */
static bool ids_equal(const gtr_ids *ids, const json_t *want, size_t drop_last)
{
    size_t n = json_array_size(want);
    if (n < drop_last || ids->n != n - drop_last) return false;
    for (size_t i = 0; i < ids->n; i++)
        if (json_integer_value(json_array_get(want, i)) != ids->ids[i]) return false;
    return true;
}

static void check_ids(const ref *r, int max_len, json_t **want, const char *name)
{
    gtr_error e;
    gtr_ids ids = {0};
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t len;
        const char *t = text_of(r, i, &len);
        TU_OK(gtr_tokenizer_encode(r->tok, t, len, max_len, 1, &ids, &e), &e);
        if (!ids_equal(&ids, want[i], 0) && bad++ == 0) first_bad = i;
    }
    gtr_ids_free(&ids);
    if (bad) fail_msg("%s: %zu of %zu texts differ, first at line %zu", name, bad, r->n, first_bad + 1);
}

static void test_ids_full(void **state) { check_ids(*state, 0, ((ref *)*state)->full, "ids_full"); }
static void test_ids_512(void **state) { check_ids(*state, 512, ((ref *)*state)->l512, "ids_512"); }
static void test_ids_32(void **state) { check_ids(*state, 32, ((ref *)*state)->l32, "ids_32"); }

static void test_pieces_full(void **state)
{
    ref *r = *state;
    gtr_error e;
    gtr_pieces pc = {0};
    gtr_ids ids = {0};
    for (size_t i = 0; i < r->n; i++) {
        size_t len;
        const char *t = text_of(r, i, &len);
        TU_OK(gtr_tokenizer_encode_pieces(r->tok, t, len, &pc, &e), &e);
        json_t *want = r->pieces[i];
        if (json_array_size(want) != pc.n) fail_msg("line %zu: %zu pieces, want %zu", i + 1, pc.n, json_array_size(want));
        for (size_t k = 0; k < pc.n; k++) {
            json_t *w = json_array_get(want, k);
            size_t plen = pc.offs[k + 1] - pc.offs[k] - 1;
            if (plen != json_string_length(w) || memcmp(pc.text + pc.offs[k], json_string_value(w), plen) != 0)
                fail_msg("line %zu piece %zu: '%s', want '%s'", i + 1, k, pc.text + pc.offs[k], json_string_value(w));
        }
        /* the pieces' ids are the ids (without </s>) */
        TU_OK(gtr_tokenizer_encode(r->tok, t, len, 0, 0, &ids, &e), &e);
        assert_int_equal(ids.n, pc.n);
        assert_memory_equal(ids.ids, pc.ids, pc.n * sizeof *pc.ids);
    }
    gtr_pieces_free(&pc);
    gtr_ids_free(&ids);
}

static void test_no_eos(void **state)
{
    ref *r = *state;
    gtr_error e;
    gtr_ids ids = {0};
    for (size_t i = 0; i < r->n; i++) {
        size_t len;
        const char *t = text_of(r, i, &len);
        TU_OK(gtr_tokenizer_encode(r->tok, t, len, 0, 0, &ids, &e), &e);
        if (!ids_equal(&ids, r->full[i], 1)) fail_msg("line %zu: bare ids differ", i + 1);
        /* max_len without </s> caps the bare ids */
        TU_OK(gtr_tokenizer_encode(r->tok, t, len, 7, 0, &ids, &e), &e);
        size_t want = json_array_size(r->full[i]) - 1;
        assert_int_equal(ids.n, want < 7 ? want : 7);
        for (size_t k = 0; k < ids.n; k++)
            assert_int_equal(ids.ids[k], json_integer_value(json_array_get(r->full[i], k)));
    }
    /* max_len 1 with </s>: just </s> */
    TU_OK(gtr_tokenizer_encode(r->tok, "Hello world", 11, 1, 1, &ids, &e), &e);
    assert_int_equal(ids.n, 1);
    assert_int_equal(ids.ids[0], gtr_tokenizer_eos_id(r->tok));
    assert_int_equal(gtr_tokenizer_encode(r->tok, "x", 1, -1, 1, &ids, &e), GTR_ERR_INVALID_ARG);
    gtr_ids_free(&ids);
}

static void test_special_ids(void **state)
{
    ref *r = *state;
    assert_int_equal(gtr_tokenizer_vocab_size(r->tok), 32000);
    assert_int_equal(gtr_tokenizer_eos_id(r->tok), 1); /* T5: <pad>=0, </s>=1, <unk>=2 */
    assert_int_equal(gtr_tokenizer_pad_id(r->tok), 0);
    assert_int_equal(gtr_tokenizer_unk_id(r->tok), 2);
    size_t len;
    assert_string_equal(gtr_tokenizer_piece(r->tok, 1, &len), "</s>");
    assert_int_equal(len, 4);
    assert_string_equal(gtr_tokenizer_piece(r->tok, 0, NULL), "<pad>");
    assert_string_equal(gtr_tokenizer_piece(r->tok, 2, NULL), "<unk>");
    assert_null(gtr_tokenizer_piece(r->tok, -1, NULL));
    assert_null(gtr_tokenizer_piece(r->tok, 32000, NULL));
    /* every id's piece is non-empty and NUL-terminated at its length */
    for (int id = 0; id < 32000; id++) {
        const char *p = gtr_tokenizer_piece(r->tok, id, &len);
        assert_non_null(p);
        assert_true(len > 0 && strlen(p) == len);
    }
}

/* Literal control-piece text is ordinary text for plain SentencePiece (see the shared
 * README): "</s>" inside a text is not the eos id, "<pad>" not the pad id. (T5 has no "<"
 * piece, so those characters come out as <unk>.) */
static void test_control_literals(void **state)
{
    ref *r = *state;
    gtr_error e;
    gtr_ids ids = {0};
    gtr_pieces pc = {0};
    const char *t = "a </s> b <pad> <unk>";
    TU_OK(gtr_tokenizer_encode(r->tok, t, strlen(t), 0, 0, &ids, &e), &e);
    TU_OK(gtr_tokenizer_encode_pieces(r->tok, t, strlen(t), &pc, &e), &e);
    assert_true(ids.n > 5);
    for (size_t i = 0; i < ids.n; i++) {
        assert_int_not_equal(ids.ids[i], gtr_tokenizer_pad_id(r->tok));
        assert_int_not_equal(ids.ids[i], gtr_tokenizer_eos_id(r->tok));
        assert_string_not_equal(pc.text + pc.offs[i], "</s>");
        assert_string_not_equal(pc.text + pc.offs[i], "<unk>");
    }
    gtr_ids_free(&ids);
    gtr_pieces_free(&pc);
}

static void test_decode(void **state)
{
    ref *r = *state;
    gtr_error e;
    gtr_ids ids = {0}, again = {0};
    char *s;
    size_t n;
    const char *hw = "Hello world";
    TU_OK(gtr_tokenizer_encode(r->tok, hw, strlen(hw), 0, 1, &ids, &e), &e);
    TU_OK(gtr_tokenizer_decode(r->tok, ids.ids, ids.n, &s, &n, &e), &e);
    assert_string_equal(s, hw); /* </s> vanishes, the dummy-prefix space is dropped */
    assert_int_equal(n, strlen(hw));
    gtr_free(s);
    /* control ids vanish, the unknown id decodes to " ⁇ " */
    int32_t special[] = {0, 1, 2, 1};
    TU_OK(gtr_tokenizer_decode(r->tok, special, 4, &s, &n, &e), &e);
    assert_string_equal(s, " \xE2\x81\x87 ");
    gtr_free(s);
    TU_OK(gtr_tokenizer_decode(r->tok, NULL, 0, &s, &n, &e), &e);
    assert_string_equal(s, "");
    gtr_free(s);
    int32_t bad[] = {5, 32000};
    assert_int_equal(gtr_tokenizer_decode(r->tok, bad, 2, &s, &n, &e), GTR_ERR_INVALID_ARG);
    assert_non_null(strstr(e.message, "32000"));
    /* Round trip: decoding gives text that encodes to the same ids (texts without <unk>,
     * whose decoded form is " ⁇ "). */
    size_t checked = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t len;
        const char *t = text_of(r, i, &len);
        TU_OK(gtr_tokenizer_encode(r->tok, t, len, 0, 1, &ids, &e), &e);
        bool has_unk = false;
        for (size_t k = 0; k < ids.n; k++) has_unk |= ids.ids[k] == 2;
        if (has_unk) continue;
        TU_OK(gtr_tokenizer_decode(r->tok, ids.ids, ids.n, &s, &n, &e), &e);
        assert_int_equal(strlen(s), n);
        TU_OK(gtr_tokenizer_encode(r->tok, s, n, 0, 1, &again, &e), &e);
        if (again.n != ids.n || memcmp(again.ids, ids.ids, ids.n * sizeof *ids.ids) != 0)
            fail_msg("line %zu: decode/encode round trip changed the ids (decoded '%.60s')", i + 1, s);
        gtr_free(s);
        checked++;
    }
    assert_true(checked > r->n / 2);
    gtr_ids_free(&ids);
    gtr_ids_free(&again);
}

/* ---- concurrency: one tokenizer, many threads, every text, compared with ids_full */

typedef struct worker {
    const ref *r;
    size_t start;
    size_t mismatches;
    gtr_status st;
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    gtr_ids ids = {0};
    gtr_pieces pc = {0};
    gtr_error e;
    for (size_t k = 0; k < w->r->n; k++) {
        size_t i = (w->start + k) % w->r->n, len;
        const char *t = json_string_value(w->r->texts[i]);
        len = json_string_length(w->r->texts[i]);
        if ((w->st = gtr_tokenizer_encode(w->r->tok, t, len, 0, 1, &ids, &e))) break;
        if (!ids_equal(&ids, w->r->full[i], 0)) w->mismatches++;
        if ((w->st = gtr_tokenizer_encode_pieces(w->r->tok, t, len, &pc, &e))) break;
        if (pc.n + 1 != ids.n) w->mismatches++;
    }
    gtr_ids_free(&ids);
    gtr_pieces_free(&pc);
    return NULL;
}

static void test_threads(void **state)
{
    ref *r = *state;
    enum { T = 6 };
    pthread_t th[T];
    worker w[T];
    for (int i = 0; i < T; i++) {
        w[i] = (worker){r, (size_t)i * r->n / T, 0, GTR_OK};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].st, GTR_OK);
        assert_int_equal(w[i].mismatches, 0);
    }
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The other compatibility modes (SentencePiece >= 0.2.2's float rounding, the Hugging Face
 * tokenizer's per-word double lattices) only re-order pieces of exactly tied segmentations: on
 * every reference text their ids equal the 0.1.97 ids or are a permutation of them (the same
 * pieces, hence the same total score, in another order), and they are not no-ops (some
 * reference texts do tie). tests/scripts/spm_compat.sh compares them with SentencePiece and
 * transformers from PyPI. */
static void test_compat_modes(void **state)
{
    ref *r = *state;
    gtr_error e;
    char *p = tu_shared("spm/t5-spiece.model");
    for (int mode = GTR_SPM_COMPAT_0_2_2; mode <= GTR_SPM_COMPAT_HF; mode++) {
        gtr_tokenizer_options o = gtr_tokenizer_default_options();
        o.compat = (gtr_spm_compat)mode;
        gtr_tokenizer *t = gtr_tokenizer_load(p, &o, &e);
        if (!t) fail_msg("%s", e.message);
        gtr_ids ids = {0};
        size_t differ = 0, not_perm = 0;
        for (size_t i = 0; i < r->n; i++) {
            size_t len;
            const char *txt = text_of(r, i, &len);
            TU_OK(gtr_tokenizer_encode(t, txt, len, 0, 1, &ids, &e), &e);
            if (ids_equal(&ids, r->full[i], 0)) continue;
            differ++;
            size_t n = json_array_size(r->full[i]);
            if (n != ids.n) {
                not_perm++;
                continue;
            }
            int32_t *want = malloc(n * sizeof *want);
            assert_non_null(want);
            for (size_t k = 0; k < n; k++)
                want[k] = (int32_t)json_integer_value(json_array_get(r->full[i], k));
            qsort(want, n, sizeof *want, cmp_i32);
            qsort(ids.ids, n, sizeof *ids.ids, cmp_i32);
            if (memcmp(want, ids.ids, n * sizeof *want)) not_perm++;
            free(want);
        }
        print_message("# %s: %zu of %zu reference texts segment differently, %zu not as permutations\n",
                      mode == GTR_SPM_COMPAT_HF ? "hf" : "0.2.2", differ, r->n, not_perm);
        assert_int_equal(not_perm, 0);
        assert_true(differ > 0 && differ < r->n / 20);
        gtr_ids_free(&ids);
        gtr_tokenizer_free(t);
    }
    free(p);

    /* the version strings */
    static const struct { const char *s; int st, compat; } v[] = {
        {"0.1", 0, GTR_SPM_COMPAT_0_1},     {"0.1.97", 0, GTR_SPM_COMPAT_0_1},
        {"0.2.1", 0, GTR_SPM_COMPAT_0_1},   {"0.2", 0, GTR_SPM_COMPAT_0_1},
        {"0.2.2", 0, GTR_SPM_COMPAT_0_2_2}, {"0.2.10", 0, GTR_SPM_COMPAT_0_2_2},
        {"0.3", 0, GTR_SPM_COMPAT_0_2_2},   {"1.0.0", 0, GTR_SPM_COMPAT_0_2_2},
        {"", 1, 0}, {"0", 1, 0}, {"0.2.", 1, 0}, {"x", 1, 0}, {"0.2.2.1", 1, 0}, {"0.2.2a", 1, 0},
        {"-1.2", 1, 0}, {"hf", 0, GTR_SPM_COMPAT_HF}, {"HF", 1, 0}, {"hf ", 1, 0}, {NULL, 1, 0},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        gtr_spm_compat c = (gtr_spm_compat)-1;
        gtr_status st = gtr_spm_compat_parse(v[i].s, &c, &e);
        if ((st != GTR_OK) != v[i].st) fail_msg("'%s': status %d", v[i].s ? v[i].s : "(null)", (int)st);
        if (!st) assert_int_equal(c, v[i].compat);
        else assert_int_equal(st, GTR_ERR_INVALID_ARG);
    }
    gtr_tokenizer_options bad = gtr_tokenizer_default_options();
    bad.compat = (gtr_spm_compat)7;
    p = tu_shared("spm/t5-spiece.model");
    assert_null(gtr_tokenizer_load(p, &bad, &e));
    assert_int_equal(e.code, GTR_ERR_INVALID_ARG);
    free(p);
}

/* Truncated tokenization reads only as much of a text as max_len can use (encode.c); the ids
 * must be exactly the first ids of the whole text's tokenization. Checked for every reference
 * text at many lengths (around each text's own length too), in every compatibility mode, on long
 * texts made of all of them (with and without spaces, beyond the hard cap) and on SciFact. */
static void expect_prefix_ids(const gtr_tokenizer *t, const char *text, size_t len, const gtr_ids *bare,
                              int max_len, const char *what, size_t idx)
{
    gtr_error e;
    gtr_ids got = {0};
    for (int eos = 0; eos <= 1; eos++) {
        TU_OK(gtr_tokenizer_encode(t, text, len, max_len, eos, &got, &e), &e);
        size_t keep = GTR_MIN(bare->n, (size_t)max_len - (size_t)eos);
        bool ok = got.n == keep + (size_t)eos && (!eos || got.ids[keep] == 1) &&
                  memcmp(got.ids, bare->ids, keep * sizeof *got.ids) == 0;
        if (!ok) fail_msg("%s %zu, max_len %d, eos %d: %zu ids, not the first %zu of the whole text's",
                          what, idx, max_len, eos, got.n, keep);
    }
    gtr_ids_free(&got);
}

static void check_prefixes(const gtr_tokenizer *t, const char *text, size_t len, const char *what,
                           size_t idx, bool around)
{
    static const int lens[] = {1, 2, 3, 4, 5, 8, 13, 32, 64, 100, 128, 256, 512, 1000, 5000, 30000, 100000};
    gtr_error e;
    gtr_ids bare = {0};
    TU_OK(gtr_tokenizer_encode(t, text, len, 0, 0, &bare, &e), &e);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        if ((size_t)lens[k] <= bare.n + 2) expect_prefix_ids(t, text, len, &bare, lens[k], what, idx);
    for (int d = -2; around && d <= 2; d++)
        if ((long)bare.n + d >= 1) expect_prefix_ids(t, text, len, &bare, (int)bare.n + d, what, idx);
    gtr_ids_free(&bare);
}

static void test_truncated_prefix(void **state)
{
    ref *r = *state;
    static const gtr_spm_compat modes[] = {GTR_SPM_COMPAT_0_1, GTR_SPM_COMPAT_0_2_2, GTR_SPM_COMPAT_HF};
    char *p = tu_shared("spm/t5-spiece.model");
    /* every reference text joined by spaces, and the same with its spaces taken out */
    gtr_buf joined = {0}, unspaced = {0};
    gtr_error e;
    for (size_t i = 0; i < r->n; i++) {
        size_t len;
        const char *t = text_of(r, i, &len);
        gtr_buf_append(&joined, t, len, &e);
        gtr_buf_append(&joined, " ", 1, &e);
        for (size_t k = 0; k < len; k++)
            if (t[k] != ' ') gtr_buf_append(&unspaced, t + k, 1, &e);
    }
    assert_true(unspaced.len > 200000); /* beyond the hard cap of every max_len tried below 10000 */
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        gtr_tokenizer_options o = gtr_tokenizer_default_options();
        o.compat = modes[m];
        gtr_tokenizer *t = gtr_tokenizer_load(p, &o, &e);
        if (!t) fail_msg("%s", e.message);
        for (size_t i = 0; i < r->n; i++) {
            size_t len;
            const char *txt = text_of(r, i, &len);
            check_prefixes(t, txt, len, "reference text", i + 1, true);
        }
        check_prefixes(t, joined.data, joined.len, "all texts joined", m, false);
        check_prefixes(t, unspaced.data, unspaced.len, "all texts without spaces", m, false);
        gtr_tokenizer_free(t);
    }
    /* SciFact passages, as `gtr index` builds them */
    char *corpus = tu_shared("beir/scifact/corpus.jsonl");
    gtr_text_reader *rd = gtr_text_reader_open(corpus, GTR_TEXT_JSONL, &e);
    if (!rd) fail_msg("%s", e.message);
    gtr_buf passage = {0};
    gtr_ids bare = {0};
    size_t docs = 0;
    for (;;) {
        gtr_record rec;
        bool eof;
        TU_OK(gtr_text_reader_next(rd, &rec, &eof, &e), &e);
        if (eof) break;
        TU_OK(gtr_record_passage(&rec, &passage, &e), &e);
        TU_OK(gtr_tokenizer_encode(r->tok, passage.data, passage.len, 0, 0, &bare, &e), &e);
        static const int sl[] = {16, 64, 128, 256, 512};
        for (size_t k = 0; k < 5; k++) expect_prefix_ids(r->tok, passage.data, passage.len, &bare, sl[k], "SciFact document", docs + 1);
        docs++;
    }
    assert_int_equal(docs, 5183);
    gtr_ids_free(&bare);
    gtr_buf_free(&passage);
    gtr_text_reader_close(rd);
    free(corpus);
    gtr_buf_free(&joined);
    gtr_buf_free(&unspaced);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_full),     cmocka_unit_test(test_ids_512),
        cmocka_unit_test(test_ids_32),       cmocka_unit_test(test_pieces_full),
        cmocka_unit_test(test_no_eos),       cmocka_unit_test(test_special_ids),
        cmocka_unit_test(test_control_literals), cmocka_unit_test(test_decode),
        cmocka_unit_test(test_threads),      cmocka_unit_test(test_compat_modes),
        cmocka_unit_test(test_truncated_prefix),
    };
    return cmocka_run_group_tests_name("tokenizer", tests, setup, teardown);
}
