/* encode_bench.c — gtr's encoder in process, for bench_encoder.sh until `gtr embed` exists:
 *
 *   encode_bench MODEL_DIR TEXTS.jsonl OUT.npy [--dtype f32|bf16|int8] [--threads N] [--runs R]
 *
 * Loads the model (not timed), embeds all texts with gtr_model_encode R times (tokenisation
 * included), writes the embeddings as .npy and prints one JSON line like the Python baselines:
 * tokens (real tokens incl. </s>, at most max_len per text), seconds (median), best and median
 * tokens/s. Peak RSS is measured by the caller (encoder_baselines.py cmd --child-json). */
#include "data/data.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    gtr_model_options o = gtr_model_default_options();
    int runs = 1;
    const char *dtype = "f32";
    static const struct option opts[] = {{"dtype", required_argument, 0, 'd'},
                                         {"threads", required_argument, 0, 't'},
                                         {"runs", required_argument, 0, 'r'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "d:t:r:", opts, NULL)) != -1) {
        if (c == 'd') dtype = optarg;
        else if (c == 't') o.n_threads = atoi(optarg);
        else if (c == 'r') runs = atoi(optarg);
        else return 2;
    }
    if (argc - optind != 3 || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: encode_bench MODEL_DIR TEXTS.jsonl OUT.npy [--dtype f32|bf16|int8] [--threads N] [--runs R]\n");
        return 2;
    }
    o.dtype = strcmp(dtype, "bf16") == 0 ? GTR_DTYPE_BF16 : strcmp(dtype, "int8") == 0 ? GTR_DTYPE_INT8 : GTR_DTYPE_F32;
    gtr_error e;
    gtr_model *m = gtr_model_load(argv[optind], &o, &e);
    if (!m) {
        fprintf(stderr, "encode_bench: %s\n", e.message);
        return 1;
    }
    gtr_text_reader *r = gtr_text_reader_open(argv[optind + 1], GTR_TEXT_JSONL, &e);
    if (!r) {
        fprintf(stderr, "encode_bench: %s\n", e.message);
        return 1;
    }
    size_t n = 0, cap = 0;
    char **texts = NULL;
    size_t *lens = NULL;
    for (;;) {
        gtr_record rec;
        bool eof;
        if (gtr_text_reader_next(r, &rec, &eof, &e) != GTR_OK) {
            fprintf(stderr, "encode_bench: %s\n", e.message);
            return 1;
        }
        if (eof) break;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            texts = realloc(texts, cap * sizeof *texts);
            lens = realloc(lens, cap * sizeof *lens);
            if (!texts || !lens) return 1;
        }
        texts[n] = malloc(rec.text_len + 1);
        if (!texts[n]) return 1;
        memcpy(texts[n], rec.text, rec.text_len);
        texts[n][rec.text_len] = 0;
        lens[n++] = rec.text_len;
    }
    gtr_text_reader_close(r);
    size_t ntok = 0;
    gtr_ids ids = {0};
    for (size_t i = 0; i < n; i++) {
        if (gtr_tokenizer_encode(gtr_model_tokenizer(m), texts[i], lens[i], gtr_model_max_len(m), 1, &ids, &e) != GTR_OK) {
            fprintf(stderr, "encode_bench: %s\n", e.message);
            return 1;
        }
        ntok += ids.n;
    }
    gtr_ids_free(&ids);
    size_t dim = (size_t)gtr_model_dim(m);
    float *out = malloc(n * dim * sizeof(float));
    double *t = calloc((size_t)runs, sizeof(double));
    if (!out || !t) return 1;
    /* warm-up: one text (first-touch of the arenas) */
    if (gtr_model_encode(m, (const char *const *)texts, lens, 1, out, &e) != GTR_OK) {
        fprintf(stderr, "encode_bench: %s\n", e.message);
        return 1;
    }
    for (int k = 0; k < runs; k++) {
        double t0 = gtr_now_seconds();
        if (gtr_model_encode(m, (const char *const *)texts, lens, n, out, &e) != GTR_OK) {
            fprintf(stderr, "encode_bench: %s\n", e.message);
            return 1;
        }
        t[k] = gtr_now_seconds() - t0;
    }
    if (gtr_npy_save_f32(argv[optind + 2], out, n, dim, &e) != GTR_OK) {
        fprintf(stderr, "encode_bench: %s\n", e.message);
        return 1;
    }
    printf("{\"tokens\": %zu, \"runs_seconds\": [", ntok);
    for (int k = 0; k < runs; k++) printf("%s%.3f", k ? ", " : "", t[k]);
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    double med = t[runs / 2];
    printf("], \"seconds\": %.3f, \"tokens_per_s\": %.1f, \"dtype\": \"%s\"}\n", med, (double)ntok / med, dtype);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts), free(lens), free(out), free(t);
    gtr_model_free(m);
    return 0;
}
