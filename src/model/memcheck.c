/* memcheck.c — refuse a load the machine cannot hold, before it starts, instead of being
 * OOM-killed halfway (an XXL model as float32 needs ~19 GB; an index build that dies at 90%
 * loses hours). The estimate is what the loader will allocate: every 2-D weight in the compute
 * dtype (int8 adds one float scale per row), every vector as float32, plus the working memory
 * of one chunk of tokens. The mapped checkpoint pages are not counted: they are file-backed
 * (reclaimable) and dropped tensor by tensor as the load converts them; weights of a packed
 * `gtr quantize` copy loaded in their stored dtype are used from the mapping and cost nothing. */
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
/* as in model.c: a chunk's activations are a quarter of the weights within [16, 256] MiB;
 * add the tokenizer, the thread pool and allocator slack */
#define WORK_MIN ((size_t)16 << 20)
#define WORK_MAX ((size_t)256 << 20)
#define OVERHEAD ((size_t)64 << 20)

size_t gtr_mem_estimate(const gtr_tensor_set *s, gtr_compute_dtype dt)
{
    size_t esz = dt == GTR_DTYPE_BF16 ? 2 : dt == GTR_DTYPE_INT8 ? 1 : 4, w = 0;
    size_t sl = strlen(GTR_QUANT_SCALE_SUFFIX);
    for (size_t i = 0; i < s->n; i++) {
        const gtr_tensor *t = &s->t[i];
        size_t nl = strlen(t->name);
        if (nl > sl && !strcmp(t->name + nl - sl, GTR_QUANT_SCALE_SUFFIX)) continue; /* counted below */
        if (s->packed && gtr_str_ends_with(t->name, GTR_PACKED_COLSUM_SUFFIX)) continue;
        if (t->ndim == 2 || t->ndim == 4) {
            /* a packed file's matrices (4-d) and embedding stored in the compute dtype are
             * used from the mapping: page cache, shared and reclaimable, not allocated */
            bool ok;
            gtr_wtype stored = gtr_packed_wtype(t->dtype, &ok);
            if (s->packed && ok && stored == (dt == GTR_DTYPE_BF16 ? GTR_W_BF16 : dt == GTR_DTYPE_INT8 ? GTR_W_INT8 : GTR_W_F32))
                continue;
            size_t rows = t->ndim == 4 ? t->shape[0] * t->shape[2] : t->shape[0];
            w += t->count * esz + (dt == GTR_DTYPE_INT8 ? rows * 4 : 0);
        } else {
            w += t->count * 4;
        }
    }
    size_t work = GTR_MIN(WORK_MAX, GTR_MAX(WORK_MIN, w / 4));
    return w + work + OVERHEAD;
}

/* A number from a one-line file ("max" and unreadable files give SIZE_MAX). */
static size_t read_num(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return SIZE_MAX;
    unsigned long long v;
    int ok = fscanf(f, "%llu", &v);
    fclose(f);
    return ok == 1 ? (size_t)v : SIZE_MAX;
}

size_t gtr_mem_available(const char **what)
{
    size_t avail = SIZE_MAX;
    *what = "unknown";
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                avail = (size_t)kb * 1024;
                *what = "MemAvailable in /proc/meminfo";
                break;
            }
        fclose(f);
    }
    /* the cgroup this process runs in (v2: "0::/path"; v1: the memory controller's line) */
    f = fopen("/proc/self/cgroup", "r");
    if (f) {
        char line[1024], path[1400];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            size_t lim = SIZE_MAX, used = 0;
            if (!strncmp(line, "0::", 3)) {
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
                lim = read_num(path);
                snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", line + 3);
                used = read_num(path);
            } else {
                char *c = strstr(line, ":memory:");
                if (!c) continue;
                snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", c + 8);
                lim = read_num(path);
                snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", c + 8);
                used = read_num(path);
            }
            if (lim == SIZE_MAX || used == SIZE_MAX) continue;
            size_t left = lim > used ? lim - used : 0;
            if (left < avail) {
                avail = left;
                *what = "the cgroup's memory.max less its usage";
            }
        }
        fclose(f);
    }
    return avail;
}

/* "19.6 GiB", or "86 MiB" below a GiB (small models: tenths of a GiB say nothing) */
static const char *human(char buf[32], size_t bytes)
{
    if ((double)bytes >= GIB) snprintf(buf, 32, "%.1f GiB", (double)bytes / GIB);
    else snprintf(buf, 32, "%.0f MiB", (double)bytes / (1024.0 * 1024.0));
    return buf;
}

gtr_status gtr_mem_check(const gtr_tensor_set *s, gtr_compute_dtype dt, size_t limit, const char *dir,
                         gtr_error *err)
{
    const char *what;
    size_t avail = gtr_mem_available(&what);
    if (limit && limit < avail) {
        avail = limit;
        what = "the limit given to the loader: max_memory, GTR_MAX_MEMORY for gtr";
    }
    size_t need = gtr_mem_estimate(s, dt);
    if (avail == SIZE_MAX || need <= avail) return GTR_OK;
    static const gtr_compute_dtype all[] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    static const char *const names[] = {"f32", "bf16", "int8"};
    char alt[200] = "", b1[32], b2[32];
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        size_t n = gtr_mem_estimate(s, all[i]);
        if (all[i] == dt || n > avail) continue;
        k += (size_t)snprintf(alt + k, sizeof alt - GTR_MIN(k, sizeof alt), "%s--dtype %s needs %s",
                              k ? ", " : "", names[i], human(b1, n));
        if (k >= sizeof alt) break;
    }
    const char *dn = dt == GTR_DTYPE_BF16 ? "bf16" : dt == GTR_DTYPE_INT8 ? "int8" : "f32";
    if (k)
        return gtr_seterr(err, GTR_ERR_NOMEM,
                          "%s: loading as %s needs about %s but %s is available (%s); %s and "
                          "fits (a `gtr quantize --dtype` copy loads that way without converting)",
                          dir, dn, human(b1, need), human(b2, avail), what, alt);
    char b3[32];
    return gtr_seterr(err, GTR_ERR_NOMEM,
                      "%s: loading as %s needs about %s but %s is available (%s); even --dtype "
                      "int8 needs %s: free memory or use a machine with more",
                      dir, dn, human(b1, need), human(b2, avail), what,
                      human(b3, gtr_mem_estimate(s, GTR_DTYPE_INT8)));
}
