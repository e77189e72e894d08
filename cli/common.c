/* common.c — error printing, strict number parsing and output files for every subcommand. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *cmd, const gtr_error *err)
{
    fprintf(stderr, "gtr %s: %s\n", cmd, err && err->message[0] ? err->message : "failed");
    return 1;
}

int cli_errorf(const char *cmd, int status, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "gtr %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

bool cli_parse_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
                   long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        cli_errorf(cmd, 2, "%s expects an integer in [%lld, %lld], got '%s'", opt, min, max, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_double(const char *cmd, const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end) {
        cli_errorf(cmd, 2, "%s expects a number, got '%s'", opt, s);
        return false;
    }
    *out = v;
    return true;
}

FILE *cli_open_out(const char *cmd, const char *path)
{
    if (!path || strcmp(path, "-") == 0) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) cli_errorf(cmd, 1, "%s: cannot create: %s", path, strerror(errno));
    return f;
}

bool cli_spm_compat(const char *cmd, const char *v, gtr_spm_compat *out)
{
    const char *what = v ? "--spm-compat" : "GTR_SPM_COMPAT";
    if (!v) v = getenv("GTR_SPM_COMPAT");
    *out = GTR_SPM_COMPAT_0_1;
    if (!v || !*v) return true;
    gtr_error err;
    if (gtr_spm_compat_parse(v, out, &err)) {
        cli_errorf(cmd, 2, "%s: %s", what, err.message);
        return false;
    }
    return true;
}

bool cli_model_options(const char *cmd, gtr_model_options *mo)
{
    *mo = gtr_model_default_options();
    /* GTR_DEVICE=cuda[:N] puts every command's encoder on a GPU (--device overrides it) */
    const char *dev = getenv("GTR_DEVICE");
    if (dev && *dev) mo->device = dev;
    return cli_spm_compat(cmd, NULL, &mo->spm_compat);
}

bool cli_parse_dtype(const char *cmd, const char *s, gtr_compute_dtype *out)
{
    if (!strcmp(s, "f32")) *out = GTR_DTYPE_F32;
    else if (!strcmp(s, "bf16")) *out = GTR_DTYPE_BF16;
    else if (!strcmp(s, "int8")) *out = GTR_DTYPE_INT8;
    else return cli_errorf(cmd, 2, "--dtype must be f32, bf16 or int8, got '%s'", s), false;
    return true;
}

bool cli_parse_fusion(const char *cmd, const char *s, gtr_fusion *out)
{
    if (!strcmp(s, "rrf")) *out = GTR_FUSION_RRF;
    else if (!strcmp(s, "interp")) *out = GTR_FUSION_INTERP;
    else return cli_errorf(cmd, 2, "--fusion expects rrf or interp, got '%s'", s), false;
    return true;
}

int cli_index_option(int c, const char *arg, gtr_index_build_options *o, gtr_model_options *mo)
{
    long long v;
    switch (c) {
    case CLI_IX_STORE:
        if (!strcmp(arg, "f16") || !strcmp(arg, "float16")) o->compact = GTR_COMPACT_F16;
        else if (!strcmp(arg, "int8")) o->compact = GTR_COMPACT_INT8;
        else if (!strcmp(arg, "f32") || !strcmp(arg, "none")) o->compact = GTR_COMPACT_NONE;
        else {
            cli_errorf("index", 2, "--store expects f16 or int8, got '%s'", arg);
            return -1;
        }
        return 1;
    case CLI_IX_BATCH:
        if (!cli_parse_int("index", "--batch", arg, 1, 1 << 16, &v)) return -1;
        o->batch_size = (size_t)v;
        return 1;
    case CLI_IX_CKPT:
        if (!cli_parse_int("index", "--checkpoint", arg, 1, LLONG_MAX, &v)) return -1;
        o->checkpoint_every = (size_t)v;
        return 1;
    case CLI_IX_SNIP:
        if (!cli_parse_int("index", "--snippet-bytes", arg, 0, 1 << 20, &v)) return -1;
        o->snippet_bytes = (size_t)v;
        return 1;
    case CLI_IX_RESTART: o->no_resume = 1; return 1;
    case 't':
        if (!cli_parse_int("index", "--threads", arg, 1, 1024, &v)) return -1;
        mo->n_threads = (int)v;
        return 1;
    case CLI_IX_DTYPE: return cli_parse_dtype("index", arg, &mo->dtype) ? 1 : -1;
    case CLI_IX_MAXLEN:
        if (!cli_parse_int("index", "--max-len", arg, 2, 1 << 20, &v)) return -1;
        mo->max_len = (int)v;
        return 1;
    default: return 0;
    }
}
