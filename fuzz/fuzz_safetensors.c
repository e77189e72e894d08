/* fuzz_safetensors.c — libFuzzer target for the safetensors header reader: any input must
 * give a clean error or tensors whose every byte lies inside the input (each accepted tensor
 * of a float dtype is converted to float32, so ASan sees any view that escapes the buffer). */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so reads past the end are caught exactly */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    gtr_tensor_set set = {0};
    gtr_error err;
    if (gtr_safetensors_parse(buf, size, "fuzz.safetensors", 0, &set, &err) == GTR_OK) {
        for (size_t i = 0; i < set.n; i++) {
            gtr_tensor *t = &set.t[i];
            if (t->dtype != GTR_DT_F32 && t->dtype != GTR_DT_F16 && t->dtype != GTR_DT_BF16) continue;
            if (t->count > ((size_t)1 << 20)) continue;
            float *f = malloc((t->count ? t->count : 1) * sizeof *f);
            if (f) gtr_tensor_to_f32(&set, t, f, NULL, &err);
            free(f);
            size_t shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 0};
            gtr_tensor *out;
            gtr_tensor_get(&set, t->name, t->ndim < 2 ? t->ndim : 2, shape, &out, &err);
        }
        gtr_tensor_check_unused(&set, NULL, &err);
    }
    gtr_tensor_set_free(&set);
    free(buf);
    return 0;
}
