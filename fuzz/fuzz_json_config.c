/* fuzz_json_config.c — libFuzzer target for the model directory's JSON readers: the input is
 * parsed as JSON once and handed to every config reader (config.json, modules.json,
 * sentence_bert_config.json, Pooling and Dense configs). Each must accept it or return a clean
 * error; nothing may crash or leak. */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, &je);
    if (!j) return 0;
    gtr_error err;
    gtr_model_config c;
    memset(&c, 0, sizeof c);
    if (gtr_config_parse_t5(j, "config.json", &c.t5, &err) != GTR_OK) c.t5.d_model = 64;
    char *tr, *po, *de;
    bool norm;
    if (gtr_config_parse_modules(j, "modules.json", &tr, &po, &de, &norm, &err) == GTR_OK) {
        free(tr);
        free(po);
        free(de);
    }
    gtr_config_parse_pooling(j, "1_Pooling/config.json", c.t5.d_model, &err);
    gtr_config_parse_dense(j, "2_Dense/config.json", &c, &err);
    int msl;
    gtr_config_parse_sbert(j, "sentence_bert_config.json", &msl, &err);
    json_decref(j);
    return 0;
}
