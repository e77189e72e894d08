/* fuzz_qrels_run.c — libFuzzer target for the qrels and run readers and the evaluation over
 * what they accept. Input: qrels text, a line "%%", run text (without the separator the whole
 * input is tried as both). Every outcome must be a clean result or a clean error. */
#include "gtr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void evaluate(const char *q, size_t qn, const char *r, size_t rn)
{
    gtr_error e;
    gtr_qrels *qrels = gtr_qrels_parse(q, qn, "qrels", &e);
    gtr_run *run = gtr_run_parse(r, rn, "run", &e);
    if (run) {
        char *txt;
        if (gtr_run_format(run, "t", &txt, NULL, &e) == GTR_OK) gtr_free(txt);
    }
    if (qrels && run) {
        for (unsigned flags = 0; flags < 2; flags++) {
            gtr_eval_result *res = gtr_run_evaluate(qrels, run, NULL, flags, &e);
            char *out;
            if (res && gtr_eval_format(res, 1, &out, NULL, &e) == GTR_OK) gtr_free(out);
            gtr_eval_free(res);
        }
    }
    gtr_run_free(run);
    gtr_qrels_free(qrels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    const char *sep = memmem(s, size, "\n%%\n", 4);
    if (sep) evaluate(s, (size_t)(sep - s) + 1, sep + 4, size - (size_t)(sep + 4 - s));
    else evaluate(s, size, s, size);
    /* the measure parser too, on the input as a spec */
    char *spec = strndup(s, size < 256 ? size : 256);
    if (spec) {
        gtr_error e;
        gtr_measures_free(gtr_measures_parse(spec, &e));
        free(spec);
    }
    return 0;
}
