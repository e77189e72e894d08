/* fuzz_spm_model.c — libFuzzer target: arbitrary bytes as a spiece.model.
 * Loading must either fail with an error or give a tokenizer that encodes, lists pieces,
 * normalises and decodes without crashing; ids stay in range. Seeds: fuzz/seeds/spm_model/
 * (small hand-built models: charsmap, user-defined, unused and byte pieces). */
#include "gtr.h"

#include <stdlib.h>
#include <string.h>

static const char *const texts[] = {
    "Hello world", "  a  b\tc\r\n", "Caf\xc3\xa9 \xef\xbc\xa1\xef\xbd\xb6 \xe6\x97\xa5\xf0\x9f\x8d\x95",
    "\xff\xfe\x80 \xed\xa0\x80", "AB<sep>C\x00Q", "",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gtr_error e;
    gtr_tokenizer *t = gtr_tokenizer_load_memory(data, size, NULL, &e);
    if (!t) {
        if (e.code == GTR_OK || !e.message[0]) abort(); /* a failure must say why */
        return 0;
    }
    int vocab = gtr_tokenizer_vocab_size(t);
    gtr_ids ids = {0};
    gtr_pieces pc = {0};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        size_t len = strlen(texts[i]) + (i == 4 ? 2 : 0);
        if (gtr_tokenizer_encode(t, texts[i], len, 0, gtr_tokenizer_eos_id(t) >= 0, &ids, &e) == GTR_OK) {
            for (size_t k = 0; k < ids.n; k++)
                if (ids.ids[k] < 0 || ids.ids[k] >= vocab) abort();
            char *s = NULL;
            size_t n;
            if (gtr_tokenizer_decode(t, ids.ids, ids.n, &s, &n, &e) == GTR_OK && strlen(s) > n) abort();
            gtr_free(s);
        }
        if (gtr_tokenizer_encode_pieces(t, texts[i], len, &pc, &e) == GTR_OK) {
            for (size_t k = 0; k < pc.n; k++)
                if (pc.offs[k + 1] <= pc.offs[k]) abort(); /* pieces are never empty */
        }
        char *norm = NULL;
        if (gtr_tokenizer_normalize(t, texts[i], len, &norm, NULL, &e) == GTR_OK) free(norm);
    }
    for (int id = -1; id <= vocab; id++) {
        size_t len;
        const char *p = gtr_tokenizer_piece(t, id, &len);
        if ((id < 0 || id >= vocab) != (p == NULL)) abort();
    }
    gtr_ids_free(&ids);
    gtr_pieces_free(&pc);
    gtr_tokenizer_free(t);
    return 0;
}
