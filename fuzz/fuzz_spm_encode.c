/* fuzz_spm_encode.c — libFuzzer target: arbitrary bytes as a text for the real T5
 * spiece.model ($GTR_SHARED/spm/t5-spiece.model, default ../shared, loaded once).
 * Checks the invariants SentencePiece guarantees: the pieces concatenate to the normalised
 * text and are never empty, ids are the pieces' ids plus </s>, truncation keeps a prefix
 * then </s>, ids are in range, and decoding works. Seeds: fuzz/seeds/spm_encode/. */
#include "gtr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static gtr_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *shared = getenv("GTR_SHARED");
    char path[4096];
    snprintf(path, sizeof path, "%s/spm/t5-spiece.model", shared && *shared ? shared : "../shared");
    gtr_error e;
    tok = gtr_tokenizer_load(path, NULL, &e);
    if (!tok) {
        fprintf(stderr, "fuzz_spm_encode: %s\n", e.message);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    gtr_error e;
    gtr_ids ids = {0}, cut = {0};
    gtr_pieces pc = {0};
    char *norm = NULL, *dec = NULL;
    size_t nlen, dlen;
    if (gtr_tokenizer_encode(tok, text, size, 0, 1, &ids, &e) != GTR_OK) abort();
    if (gtr_tokenizer_encode_pieces(tok, text, size, &pc, &e) != GTR_OK) abort();
    if (gtr_tokenizer_normalize(tok, text, size, &norm, &nlen, &e) != GTR_OK) abort();
    if (ids.n != pc.n + 1 || ids.ids[pc.n] != gtr_tokenizer_eos_id(tok)) abort();
    size_t o = 0;
    for (size_t i = 0; i < pc.n; i++) {
        size_t plen = pc.offs[i + 1] - pc.offs[i] - 1;
        if (plen == 0 || o + plen > nlen || memcmp(pc.text + pc.offs[i], norm + o, plen)) abort();
        if (pc.ids[i] != ids.ids[i] || ids.ids[i] < 0 || ids.ids[i] >= gtr_tokenizer_vocab_size(tok))
            abort();
        o += plen;
    }
    if (o != nlen) abort();
    int max_len = size ? 1 + data[0] % 40 : 1;
    if (gtr_tokenizer_encode(tok, text, size, max_len, 1, &cut, &e) != GTR_OK) abort();
    size_t keep = pc.n < (size_t)max_len - 1 ? pc.n : (size_t)max_len - 1;
    if (cut.n != keep + 1 || memcmp(cut.ids, ids.ids, keep * sizeof *ids.ids) ||
        cut.ids[keep] != gtr_tokenizer_eos_id(tok))
        abort();
    if (gtr_tokenizer_decode(tok, ids.ids, ids.n, &dec, &dlen, &e) != GTR_OK || strlen(dec) > dlen) abort();
    gtr_free(dec);
    free(norm);
    gtr_ids_free(&ids);
    gtr_ids_free(&cut);
    gtr_pieces_free(&pc);
    return 0;
}
