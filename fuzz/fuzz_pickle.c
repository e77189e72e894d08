/* fuzz_pickle.c — libFuzzer target for pytorch_model.bin reading. The first byte picks the
 * layer: even, the rest is a pickled state dict for the restricted unpickler (storages "0" to
 * "9" exist, 4 KiB each); odd, the rest is a whole torch zip archive (central directory,
 * zip64, entry names, then the pickle inside). Every tensor accepted is converted to float32,
 * so ASan sees any view the validation let escape its storage. */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STORAGE_BYTES 4096

static const uint8_t *lookup(void *user, const char *key, size_t *size)
{
    if (key[0] < '0' || key[0] > '9' || key[1]) return NULL;
    *size = STORAGE_BYTES;
    return (const uint8_t *)user;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t *buf = malloc(size - 1 ? size - 1 : 1);
    uint8_t *storage = malloc(STORAGE_BYTES);
    if (!buf || !storage) {
        free(buf);
        free(storage);
        return 0;
    }
    memcpy(buf, data + 1, size - 1);
    memset(storage, 0x3c, STORAGE_BYTES);
    gtr_tensor_set set = {0};
    gtr_error err;
    gtr_status st = (data[0] & 1)
                        ? gtr_torch_zip_parse(buf, size - 1, "fuzz.bin", 0, &set, &err)
                        : gtr_torch_pickle_parse(buf, size - 1, "fuzz.bin", lookup, storage, 0, &set, &err);
    if (st == GTR_OK)
        for (size_t i = 0; i < set.n; i++) {
            gtr_tensor *t = &set.t[i];
            if (t->dtype != GTR_DT_F32 && t->dtype != GTR_DT_F16 && t->dtype != GTR_DT_BF16) continue;
            if (t->count > ((size_t)1 << 16)) continue;
            float *f = malloc((t->count ? t->count : 1) * sizeof *f);
            if (f) gtr_tensor_to_f32(&set, t, f, NULL, &err);
            free(f);
        }
    gtr_tensor_set_free(&set);
    free(buf);
    free(storage);
    return 0;
}
