/*
 * bench_tokenizer.c — helper of bench/bench_tokenizer.sh.
 *
 *   bench_tokenizer plain IN.jsonl OUT.txt REPS
 *       the texts of IN (JSON lines) as plain lines, internal CR/LF turned into spaces,
 *       REPS copies (so every tool reads the same bytes)
 *   bench_tokenizer run SPIECE.model FILE.txt [MIN_SECONDS]
 *       in-process throughput of gtr_tokenizer_encode on one thread: all lines in memory, encoded
 *       (no truncation, </s> appended) again and again for at least MIN_SECONDS of CPU time
 *       (default 2); prints "bytes tokens seconds" for the best pass, tokens without </s>.
 */
#include "gtr.h"
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this process: what one core spends, however busy the machine is. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int plain(const char *in, const char *out, int reps)
{
    gtr_error e;
    gtr_text_reader *r = gtr_text_reader_open(in, GTR_TEXT_JSONL, &e);
    if (!r) {
        fprintf(stderr, "%s\n", e.message);
        return 1;
    }
    gtr_buf all = {0};
    for (;;) {
        gtr_record rec;
        bool eof;
        if (gtr_text_reader_next(r, &rec, &eof, &e)) {
            fprintf(stderr, "%s\n", e.message);
            return 1;
        }
        if (eof) break;
        size_t start = all.len;
        if (gtr_buf_append(&all, rec.text, rec.text_len, &e) || gtr_buf_append(&all, "\n", 1, &e)) return 1;
        for (size_t i = start; i + 1 < all.len; i++)
            if (all.data[i] == '\n' || all.data[i] == '\r') all.data[i] = ' ';
    }
    gtr_text_reader_close(r);
    FILE *f = fopen(out, "wb");
    if (!f) return 1;
    for (int k = 0; k < reps; k++)
        if (fwrite(all.data, 1, all.len, f) != all.len) return 1;
    gtr_buf_free(&all);
    return fclose(f) != 0;
}

static int run(const char *model, const char *file, double min_seconds)
{
    gtr_error e;
    gtr_tokenizer *tok = gtr_tokenizer_load(model, NULL, &e);
    char *data;
    size_t len;
    if (!tok || gtr_read_file(file, 0, &data, &len, &e)) {
        fprintf(stderr, "%s\n", e.message);
        return 1;
    }
    /* split into lines once */
    size_t n = 0, cap = 1024;
    const char **lines = malloc(cap * sizeof *lines);
    size_t *lens = malloc(cap * sizeof *lens);
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t l = nl ? (size_t)(nl - (data + i)) : len - i;
        if (n == cap) {
            cap *= 2;
            lines = realloc(lines, cap * sizeof *lines);
            lens = realloc(lens, cap * sizeof *lens);
        }
        lines[n] = data + i;
        lens[n++] = l;
        i += l + 1;
    }
    gtr_ids ids = {0};
    double best = 1e30, total = 0;
    size_t tokens = 0;
    int passes = 0;
    while (total < min_seconds || passes < 3) {
        tokens = 0;
        double t0 = cpu_seconds();
        for (size_t i = 0; i < n; i++) {
            if (gtr_tokenizer_encode(tok, lines[i], lens[i], 0, 1, &ids, &e)) {
                fprintf(stderr, "line %zu: %s\n", i + 1, e.message);
                return 1;
            }
            tokens += ids.n - 1;
        }
        double dt = cpu_seconds() - t0;
        if (dt < best) best = dt;
        total += dt;
        passes++;
    }
    printf("%zu %zu %.6f\n", len, tokens, best);
    gtr_ids_free(&ids);
    free(lines);
    free(lens);
    free(data);
    gtr_tokenizer_free(tok);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "plain")) return plain(argv[2], argv[3], atoi(argv[4]));
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "run"))
        return run(argv[2], argv[3], argc == 5 ? atof(argv[4]) : 2.0);
    fprintf(stderr, "usage: bench_tokenizer plain IN.jsonl OUT.txt REPS | run MODEL FILE [SECONDS]\n");
    return 2;
}
