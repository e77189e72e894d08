/* testutil.c — see testutil.h. */
#include "testutil.h"
#include "kernels/kernels.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

char *tu_shared(const char *rel)
{
    const char *root = getenv("GTR_SHARED");
    char *p = gtr_path_join(root && *root ? root : "../shared", rel);
    assert_non_null(p);
    return p;
}

static char tmpdir[256];

static void rm_tmpdir(void)
{
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "# could not remove %s\n", tmpdir);
    }
}

const char *tu_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/gtr-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            tmpdir[0] = '\0';
            fail_msg("mkdtemp failed");
        }
        atexit(rm_tmpdir);
    }
    return tmpdir;
}

char *tu_tmp(const char *name)
{
    char *p = gtr_path_join(tu_tmpdir(), name);
    assert_non_null(p);
    return p;
}

size_t tu_json_lines(const char *path, json_t ***out)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, n = 0, alloc = 0;
    json_t **v = NULL;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j) fail_msg("%s:%zu: %s", path, n + 1, je.text);
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 64;
            v = realloc(v, alloc * sizeof *v);
            assert_non_null(v);
        }
        v[n++] = j;
    }
    free(line);
    fclose(f);
    *out = v;
    return n;
}

void tu_json_lines_free(json_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++) json_decref(v[i]);
    free(v);
}

double tu_max_abs_diff_f32_f64(const float *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        if (d < 0) d = -d;
        if (!(d <= m)) m = d; /* NaN propagates as "large" */
    }
    return m;
}

void tu_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (len && fwrite(data, 1, len, f) != len) fail_msg("cannot write %s", path);
    fclose(f);
}

int tu_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r == -1) return -1;
    return WIFEXITED(r) ? WEXITSTATUS(r) : 128 + WTERMSIG(r);
}

void tu_assert_wmat_equal(const struct gtr_wmat *a, const struct gtr_wmat *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->bytes, b->bytes);
    assert_int_equal(a->nr, b->nr);
    assert_int_equal(a->kp, b->kp);
    size_t np = (a->n + a->nr - 1) / a->nr;
    assert_memory_equal(a->data, b->data, np * a->nr * a->kp * gtr_wmat_esize(a->type));
    if (a->type == GTR_W_INT8) {
        assert_memory_equal(a->scales, b->scales, np * a->nr * sizeof(float));
        assert_memory_equal(a->colsum, b->colsum, np * a->nr * sizeof(int32_t));
    }
}
