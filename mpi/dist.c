/* dist.c — what every gtr-mpi command shares: messages naming the rank, the agreement check
 * before any work, and the distributed encoder (rank 0 hands out pieces of each batch). */
#include "dist.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { TAG_HDR = 11, TAG_LENS, TAG_TEXT, TAG_STATUS, TAG_VEC };
enum { CMD_STOP = 0, CMD_ENCODE = 1 };

int dist_errorf(const dist_ctx *d, int status, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "gtr-mpi %s: rank %d: %s\n", d->cmd, d->rank, msg);
    return status;
}

uint64_t dist_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

uint64_t dist_hash_str(uint64_t h, const char *s)
{
    return s ? dist_hash(h, s, strlen(s) + 1) : dist_hash(h, "\xff", 1);
}

bool dist_agree_all(const dist_ctx *d, const dist_agree *mine)
{
    uint64_t *all = malloc(sizeof(dist_agree) * (size_t)d->size);
    uint64_t verdict = 1;
    if (!all) { /* every rank must still join the collectives */
        dist_errorf(d, 1, "out of memory");
        verdict = 0;
    }
    uint64_t scratch[4];
    int rc = MPI_Gather(mine, 4, MPI_UINT64_T, all ? all : scratch, 4, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) verdict = 0;
    if (d->rank == 0 && all && rc == MPI_SUCCESS) {
        const dist_agree *a = (const dist_agree *)all;
        for (int r = 0; r < d->size && verdict; r++) {
            if (!a[r].ready) {
                dist_errorf(d, 1, "rank %d could not start (its message is above); nothing was done", r);
                verdict = 0;
            } else if (r && (a[r].fingerprint != a[0].fingerprint || a[r].dim != a[0].dim)) {
                dist_errorf(d, 1, "rank %d loaded another model (fingerprint %016llx, dim %llu) than rank 0 "
                            "(%016llx, dim %llu); refused before any work", r,
                            (unsigned long long)a[r].fingerprint, (unsigned long long)a[r].dim,
                            (unsigned long long)a[0].fingerprint, (unsigned long long)a[0].dim);
                verdict = 0;
            } else if (r && a[r].options != a[0].options) {
                dist_errorf(d, 1, "rank %d was given other options or files than rank 0; every rank must run "
                            "the same command; refused before any work", r);
                verdict = 0;
            }
        }
    }
    free(all);
    if (MPI_Bcast(&verdict, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return false;
    return verdict == 1;
}

static gtr_status mpi_fail(const dist_ctx *d, int rc, int peer, const char *what, gtr_error *err)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, s, &len);
    return gtr_error_set(err, GTR_ERR_IO, "rank %d failed while %s (MPI: %.*s); the work up to the last "
                         "checkpoint is kept: run the same command again to resume", peer, what, len, s);
    (void)d;
}

/* piece r of n items cut into size pieces: [lo, hi) */
static void piece(size_t n, int size, int r, size_t *lo, size_t *hi)
{
    *lo = n * (size_t)r / (size_t)size;
    *hi = n * (size_t)(r + 1) / (size_t)size;
}

gtr_status dist_encode(void *user, const char *const *texts, const size_t *lens, size_t n, float *out,
                       gtr_error *err)
{
    dist_encoder *e = user;
    const dist_ctx *d = e->d;
    size_t dim = (size_t)e->dim;
    /* send every worker its piece first, so they encode while rank 0 encodes its own */
    for (int r = 1; r < d->size; r++) {
        size_t lo, hi, bytes = 0;
        piece(n, d->size, r, &lo, &hi);
        uint64_t *l64 = malloc((hi - lo + 1) * sizeof *l64);
        if (!l64) return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory");
        for (size_t i = lo; i < hi; i++) bytes += (l64[i - lo] = lens[i]);
        char *buf = malloc(bytes + 1);
        if (!buf) {
            free(l64);
            return gtr_error_set(err, GTR_ERR_NOMEM, "out of memory");
        }
        for (size_t i = lo, at = 0; i < hi; at += lens[i], i++) memcpy(buf + at, texts[i], lens[i]);
        uint64_t hdr[3] = {CMD_ENCODE, hi - lo, bytes};
        int rc = MPI_Send(hdr, 3, MPI_UINT64_T, r, TAG_HDR, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS && hi > lo) rc = MPI_Send(l64, (int)(hi - lo), MPI_UINT64_T, r, TAG_LENS, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS && hi > lo) rc = MPI_Send(buf, (int)bytes, MPI_CHAR, r, TAG_TEXT, MPI_COMM_WORLD);
        free(l64);
        free(buf);
        if (rc != MPI_SUCCESS) return mpi_fail(d, rc, r, "receiving passages", err);
    }
    size_t lo0, hi0;
    piece(n, d->size, 0, &lo0, &hi0);
    gtr_status st = hi0 > lo0 ? gtr_model_encode(e->model, texts, lens, hi0 - lo0, out, err) : GTR_OK;
    /* collect every answer even after a failure, so no worker is left mid-conversation */
    for (int r = 1; r < d->size; r++) {
        size_t lo, hi;
        piece(n, d->size, r, &lo, &hi);
        gtr_error werr;
        int rc = MPI_Recv(&werr, (int)sizeof werr, MPI_BYTE, r, TAG_STATUS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(d, rc, r, "encoding", err);
        if (werr.code == GTR_OK && hi > lo) {
            rc = MPI_Recv(out + lo * dim, (int)((hi - lo) * dim), MPI_FLOAT, r, TAG_VEC, MPI_COMM_WORLD,
                          MPI_STATUS_IGNORE);
            if (rc != MPI_SUCCESS) return mpi_fail(d, rc, r, "sending vectors", err);
        } else if (werr.code != GTR_OK && !st) {
            st = gtr_error_set(err, werr.code, "rank %d: %s", r, werr.message);
        }
    }
    return st;
}

int dist_serve_encode(const dist_ctx *d, gtr_model *m)
{
    size_t dim = (size_t)gtr_model_dim(m);
    for (;;) {
        uint64_t hdr[3];
        if (MPI_Recv(hdr, 3, MPI_UINT64_T, 0, TAG_HDR, MPI_COMM_WORLD, MPI_STATUS_IGNORE) != MPI_SUCCESS)
            return dist_errorf(d, 1, "lost contact with rank 0");
        if (hdr[0] == CMD_STOP) return 0;
        size_t n = hdr[1], bytes = hdr[2];
        uint64_t *l64 = malloc((n + 1) * sizeof *l64);
        size_t *lens = malloc((n + 1) * sizeof *lens);
        const char **texts = malloc((n + 1) * sizeof *texts);
        char *buf = malloc(bytes + 1);
        float *vec = malloc((n * dim + 1) * sizeof *vec);
        gtr_error err = {0};
        if (!l64 || !lens || !texts || !buf || !vec) {
            free(l64), free(lens), free(texts), free(buf), free(vec);
            return dist_errorf(d, 1, "out of memory for %zu passages", n); /* rank 0 sees this rank stop */
        }
        int rc = MPI_SUCCESS;
        if (n) rc = MPI_Recv(l64, (int)n, MPI_UINT64_T, 0, TAG_LENS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (n && rc == MPI_SUCCESS) rc = MPI_Recv(buf, (int)bytes, MPI_CHAR, 0, TAG_TEXT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            free(l64), free(lens), free(texts), free(buf), free(vec);
            return dist_errorf(d, 1, "lost contact with rank 0");
        }
        for (size_t i = 0, at = 0; i < n; at += lens[i], i++) {
            lens[i] = (size_t)l64[i];
            texts[i] = buf + at;
        }
        if (n) gtr_model_encode(m, texts, lens, n, vec, &err);
        rc = MPI_Send(&err, (int)sizeof err, MPI_BYTE, 0, TAG_STATUS, MPI_COMM_WORLD);
        if (rc == MPI_SUCCESS && err.code == GTR_OK && n)
            rc = MPI_Send(vec, (int)(n * dim), MPI_FLOAT, 0, TAG_VEC, MPI_COMM_WORLD);
        free(l64), free(lens), free(texts), free(buf), free(vec);
        if (rc != MPI_SUCCESS) return dist_errorf(d, 1, "lost contact with rank 0");
    }
}

void dist_stop_workers(const dist_ctx *d)
{
    uint64_t hdr[3] = {CMD_STOP, 0, 0};
    for (int r = 1; r < d->size; r++) MPI_Send(hdr, 3, MPI_UINT64_T, r, TAG_HDR, MPI_COMM_WORLD);
}

void dist_write_pid(const dist_ctx *d)
{
    /* for the fault tests: which process is which rank */
    const char *dir = getenv("GTR_MPI_PIDDIR");
    if (!dir) return;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/rank%d.pid", dir, d->rank);
    FILE *f = fopen(path, "w");
    if (f) fprintf(f, "%ld\n", (long)getpid()), fclose(f);
}
