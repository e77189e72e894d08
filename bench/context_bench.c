/* context_bench.c — what encode contexts cost in memory: resident set size (VmRSS) of the
 * process after loading a model once, then after each of N contexts has encoded one batch (its
 * arena grown to that batch), then while all N encode side by side from N threads (VmHWM),
 * against the model's weight bytes. Also checks that every context gives the first one's
 * vectors. Usage: context_bench MODEL_DIR [N=4] [TEXTS=32] [WORDS=200] */
#include <gtr.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double status_mib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = -1;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl)) v = atof(line + kl + 1) / 1024.0;
    if (f) fclose(f);
    return v;
}

typedef struct {
    gtr_context *c;
    const char *const *texts;
    size_t n, dim;
    float *out;
    gtr_status st;
} job;

static void *run(void *arg)
{
    job *j = arg;
    gtr_error e;
    for (int r = 0; r < 3 && !j->st; r++) j->st = gtr_context_encode(j->c, j->texts, NULL, j->n, j->out, &e);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: context_bench MODEL_DIR [N] [TEXTS] [WORDS]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 4;
    size_t nt = argc > 3 ? (size_t)atol(argv[3]) : 32, words = argc > 4 ? (size_t)atol(argv[4]) : 200;
    if (n < 1 || n > 64 || nt < 1 || words < 1) return 2;
    double rss0 = status_mib("VmRSS:");
    gtr_error e;
    gtr_model_options mo = gtr_model_default_options();
    mo.n_threads = 1;
    gtr_model *m = gtr_model_load(argv[1], &mo, &e);
    if (!m) {
        fprintf(stderr, "context_bench: %s\n", e.message);
        return 1;
    }
    double rss_model = status_mib("VmRSS:");
    size_t dim = (size_t)gtr_model_dim(m);
    /* texts of `words` distinct-ish words (a few hundred tokens, cut at max_len) */
    char **texts = calloc(nt, sizeof *texts);
    for (size_t i = 0; i < nt; i++) {
        texts[i] = malloc(words * 16 + 1);
        size_t o = 0;
        for (size_t w = 0; w < words; w++) o += (size_t)sprintf(texts[i] + o, "word%zu ", (i * 31 + w * 7) % 997);
    }
    gtr_context **c = calloc((size_t)n, sizeof *c);
    job *jobs = calloc((size_t)n, sizeof *jobs);
    printf("model %s: weights %.1f MiB (gtr_model_weight_bytes); batch %zu texts x %zu words\n", argv[1],
           (double)gtr_model_weight_bytes(m) / 1048576.0, nt, words);
    printf("RSS before load %.1f MiB, after load %.1f MiB\n", rss0, rss_model);
    double prev = rss_model;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        gtr_context_options co = gtr_context_default_options();
        co.n_threads = 1;
        c[i] = gtr_context_create(m, &co, &e);
        jobs[i] = (job){c[i], (const char *const *)texts, nt, dim, malloc(nt * dim * sizeof(float)), GTR_OK};
        if (!c[i] || !jobs[i].out || gtr_context_encode(c[i], (const char *const *)texts, NULL, nt, jobs[i].out, &e)) {
            fprintf(stderr, "context_bench: %s\n", e.message);
            return 1;
        }
        if (i && memcmp(jobs[i].out, jobs[0].out, nt * dim * sizeof(float))) bad++;
        double r = status_mib("VmRSS:");
        printf("after context %d's first batch: RSS %.1f MiB (+%.1f MiB)\n", i + 1, r, r - prev);
        prev = r;
    }
    pthread_t th[64];
    for (int i = 0; i < n; i++) pthread_create(&th[i], NULL, run, &jobs[i]);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        if (jobs[i].st) bad++;
        if (i && memcmp(jobs[i].out, jobs[0].out, nt * dim * sizeof(float))) bad++;
    }
    double rss_end = status_mib("VmRSS:"), hwm = status_mib("VmHWM:");
    printf("after %d contexts encoding at once (3 batches each): RSS %.1f MiB, peak %.1f MiB\n", n, rss_end, hwm);
    printf("per context (arena for this batch): %.1f MiB; weights+load: %.1f MiB; contexts agree: %s\n",
           (rss_end - rss_model) / n, rss_model - rss0, bad ? "NO" : "yes");
    for (int i = 0; i < n; i++) {
        gtr_context_free(c[i]);
        free(jobs[i].out);
    }
    for (size_t i = 0; i < nt; i++) free(texts[i]);
    free(texts);
    free(c);
    free(jobs);
    gtr_model_free(m);
    return bad ? 1 : 0;
}
