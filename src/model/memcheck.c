/* memcheck.c — refuse a load the machine cannot hold, before it starts, instead of being
 * OOM-killed halfway (an XXL model as float32 needs ~19 GB; an index build that dies at 90%
 * loses hours). The estimate adds up what the loader and the encoder allocate, from the same
 * size formulas they allocate with (encoder_load.c, encoder.c, context.c, linear.c):
 *   - the weights in the compute dtype (int8: a float scale and an int32 column sum per row;
 *     every vector float32; the Dense head float32);
 *   - then the larger of
 *       load: the conversion buffers of the largest Linear (gtr_t5_load_buffer_bytes) and the
 *             file pages of the largest source tensor being read (they count in the process's
 *             resident memory until the loader drops them), and
 *       work: one encode call's chunk of packed tokens (gtr_chunk_tokens: batch texts of max_len
 *             tokens, at most the chunk budget; batch 0 = the budget, the most any call uses)
 *             times every per-token buffer, the attention scores and buffers of every thread,
 *             the position bias table, gtr_linear's per-thread scratch, the context's per-text
 *             buffers (gtr_t5_scratch_bytes and context.c);
 *     (the load's buffers are freed before the first encode); the work once per context that
 *     encodes at the same time (gtr serve --workers N: N contexts on a share of the threads
 *     each, the weights shared);
 *   - OVERHEAD: the process itself (program, libraries, the tokenizer, thread stacks:
 *     `gtr --version` peaks at 9 MB, gtr-t5-tiny's whole load at 28 MB for 8 MB of weights and
 *     8 MB of file pages) and allocator slack.
 * Weights of a packed `gtr quantize` copy used in place (stored in the compute dtype, in this
 * CPU's layout, aligned) come from the mapping: page cache, shared and reclaimable, not
 * counted. tests/scripts/memcheck_cli.sh compares the estimate with measured peaks. */
#include "model/model_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
#define OVERHEAD ((size_t)32 << 20)

/* Is a packed tensor (4-d [np, kp/g, nr, g]) of type used in place by kern? As
 * gtr_wmat_adopt decides: kern's layout and 64-byte aligned. */
static bool packed_in_place(const gtr_kernels *kern, const gtr_tensor *t, gtr_wtype type)
{
    gtr_wmat v;
    memset(&v, 0, sizeof v);
    v.type = type;
    v.nr = t->shape[2];
    v.kp = t->shape[1] * t->shape[3];
    return kern && gtr_wmat_native(kern, &v) && ((uintptr_t)t->data & 63) == 0;
}

void gtr_mem_estimate_parts(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt,
                            size_t batch, gtr_mem_parts *out)
{
    gtr_wtype wt = dt == GTR_DTYPE_BF16 ? GTR_W_BF16 : dt == GTR_DTYPE_INT8 ? GTR_W_INT8 : GTR_W_F32;
    size_t esz = dt == GTR_DTYPE_BF16 ? 2 : dt == GTR_DTYPE_INT8 ? 1 : 4;
    size_t sl = strlen(GTR_QUANT_SCALE_SUFFIX);
    size_t priv = 0, all = 0, span_conv = 0, span_repack = 0;
    bool converts = false, has_shared = false;
    for (size_t i = 0; i < s->n; i++) has_shared |= !strcmp(s->t[i].name, "shared.weight");
    for (size_t i = 0; i < s->n; i++) {
        const gtr_tensor *t = &s->t[i];
        size_t nl = strlen(t->name);
        if (nl > sl && !strcmp(t->name + nl - sl, GTR_QUANT_SCALE_SUFFIX)) continue; /* counted below */
        if (s->packed && gtr_str_ends_with(t->name, GTR_PACKED_COLSUM_SUFFIX)) continue;
        /* what the loader ignores: a full T5's decoder, pads; the tied embedding's second name
         * when both are stored (find_embedding takes shared.weight) */
        if (!strncmp(t->name, "decoder.", 8) || !strncmp(t->name, "gtr_pad.", 8) ||
            (!strcmp(t->name, "encoder.embed_tokens.weight") && has_shared))
            continue;
        if (t->ndim == 2 || t->ndim == 4) {
            size_t rows = t->ndim == 4 ? t->shape[0] * t->shape[2] : t->shape[0];
            size_t b = t->count * esz + (dt == GTR_DTYPE_INT8 ? rows * 8 : 0);
            all += b;
            bool ok;
            gtr_wtype stored = gtr_packed_wtype(t->dtype, &ok);
            if (s->packed && ok && stored == wt) {
                /* a packed file's matrices (4-d) and embedding stored in the compute dtype are
                 * used from the mapping when they are in this CPU's layout: page cache, shared
                 * and reclaimable, not allocated; else repacked (a copy of the stored rows) */
                if (t->ndim == 2 ? ((uintptr_t)t->data & 63) == 0 : packed_in_place(p->kern, t, wt)) continue;
                span_repack = GTR_MAX(span_repack, t->span);
                priv += b;
                continue;
            }
            converts = true;
            span_conv = GTR_MAX(span_conv, t->span);
            priv += b;
        } else {
            all += t->count * 4;
            priv += t->count * 4;
        }
    }
    const gtr_model_config *c = p->cfg;
    if (c->has_dense) { /* 2_Dense, float32 */
        size_t h = (size_t)c->dense_in * (size_t)c->dense_out * 4 + (size_t)c->dense_out * 4;
        priv += h;
        all += h;
    }
    out->weights = priv;
    out->load = (converts ? gtr_t5_load_buffer_bytes(&c->t5, wt) : 0) + span_conv + 2 * span_repack;
    /* one encode call: batch texts of at most max_len tokens, cut into chunks of at most
     * gtr_chunk_tokens (whole texts; a chunk holds at least one) */
    size_t L = (size_t)GTR_MAX(p->max_len, 1), budget = gtr_chunk_tokens(&c->t5, all, p->max_len);
    size_t tokens = batch && batch <= budget / L ? batch * L : budget;
    size_t texts = batch ? GTR_MIN(batch, tokens) : tokens;
    size_t d_out = c->has_dense ? (size_t)c->dense_out : (size_t)c->t5.d_model;
    /* several contexts (a server's workers) each hold one call's work at once, on their share
     * of the threads (as the batcher shares them out) */
    size_t contexts = p->contexts > 1 ? (size_t)p->contexts : 1;
    int threads = contexts > 1 ? GTR_MAX(1, p->n_threads / (int)contexts) : p->n_threads;
    out->tokens = tokens;
    out->work = contexts * (gtr_t5_scratch_bytes(&c->t5, p->kern, wt, threads, tokens, texts, L) +
                /* context.c: pooled and head rows, the schedule, tokenizer ids; the caller's
                 * output rows */
                texts * ((size_t)c->t5.d_model + 2 * d_out) * sizeof(float) +
                (batch ? batch : texts) * (3 * sizeof(size_t) + L * sizeof(int32_t)) +
                (L + 2) * sizeof(size_t));
    out->total = priv + GTR_MAX(out->load, out->work) + OVERHEAD;
}

size_t gtr_mem_estimate(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt)
{
    gtr_mem_parts e;
    gtr_mem_estimate_parts(s, p, dt, p->batch, &e);
    return e.total;
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

/* The largest batch in [1, batch] with which dtype dt fits in avail (the estimate grows with
 * the batch), 0 when none does; batch 0 (any): 0 or 1 for fits or not, as one. */
static size_t largest_batch(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt, size_t avail,
                            size_t *need)
{
    gtr_mem_parts e;
    gtr_mem_estimate_parts(s, p, dt, p->batch, &e);
    *need = e.total;
    if (e.total <= avail) return p->batch ? p->batch : 1;
    if (p->batch <= 1) return 0;
    size_t lo = 0, hi = p->batch - 1; /* lo fits (0: none does) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        gtr_mem_estimate_parts(s, p, dt, mid, &e);
        if (e.total <= avail) lo = mid;
        else hi = mid - 1;
    }
    if (lo) {
        gtr_mem_estimate_parts(s, p, dt, lo, &e);
        *need = e.total;
    }
    return lo;
}

gtr_status gtr_mem_check(const gtr_tensor_set *s, const gtr_mem_plan *p, gtr_compute_dtype dt, size_t limit,
                         const char *dir, gtr_error *err)
{
    const char *what;
    size_t avail = gtr_mem_available(&what);
    if (limit && limit < avail) {
        avail = limit;
        what = "the limit given to the loader: max_memory, GTR_MAX_MEMORY for gtr";
    }
    size_t need = gtr_mem_estimate(s, p, dt);
    if (avail == SIZE_MAX || need <= avail) return GTR_OK;
    /* what would fit: this dtype with a smaller batch, then the other dtypes (with the batch
     * asked for, else the largest smaller batch that fits) */
    static const gtr_compute_dtype all[] = {GTR_DTYPE_F32, GTR_DTYPE_BF16, GTR_DTYPE_INT8};
    static const char *const names[] = {"f32", "bf16", "int8"};
    const char *dn = dt == GTR_DTYPE_BF16 ? "bf16" : dt == GTR_DTYPE_INT8 ? "int8" : "f32";
    char alt[400] = "", b1[32], b2[32];
    size_t k = 0, n_dt = 0, n;
    size_t b = largest_batch(s, p, dt, avail, &n);
    if (b) k += (size_t)snprintf(alt, sizeof alt, "--batch %zu needs %s", b, human(b1, n));
    if (!b && p->contexts > 1) { /* fewer encoder workers, each with more threads */
        gtr_mem_plan fewer = *p;
        for (fewer.contexts = p->contexts - 1; fewer.contexts >= 1; fewer.contexts--)
            if ((n = gtr_mem_estimate(s, &fewer, dt)) <= avail) {
                k += (size_t)snprintf(alt, sizeof alt, "--workers %d needs %s", fewer.contexts, human(b1, n));
                break;
            }
    }
    for (int i = 0; i < 3 && k < sizeof alt; i++) {
        if (all[i] == dt || !(b = largest_batch(s, p, all[i], avail, &n))) continue;
        char bt[40] = "";
        if (p->batch && b < p->batch) snprintf(bt, sizeof bt, " --batch %zu", b);
        k += (size_t)snprintf(alt + k, sizeof alt - k, "%s--dtype %s%s needs %s", k ? ", " : "", names[i], bt,
                              human(b1, n));
        n_dt++;
    }
    /* no dtype fits with this many encoder workers: the dtypes with fewer that do */
    for (int i = 0; i < 3 && !k && p->contexts > 1; i++) {
        gtr_mem_plan fewer = *p;
        for (fewer.contexts = p->contexts - 1; fewer.contexts >= 1; fewer.contexts--)
            if ((n = gtr_mem_estimate(s, &fewer, all[i])) <= avail) {
                k += (size_t)snprintf(alt, sizeof alt, "--dtype %s --workers %d needs %s", names[i], fewer.contexts,
                                      human(b1, n));
                n_dt += all[i] != dt;
                break;
            }
    }
    char batch_txt[96] = "";
    size_t bk = 0;
    if (p->batch) bk += (size_t)snprintf(batch_txt, sizeof batch_txt, " with batches of %zu texts", p->batch);
    if (p->contexts > 1)
        snprintf(batch_txt + bk, sizeof batch_txt - bk, "%s %d encoder workers", bk ? " on" : " with", p->contexts);
    if (k)
        return gtr_seterr(err, GTR_ERR_NOMEM, "%s: loading as %s%s needs about %s but %s is available (%s); %s%s%s",
                          dir, dn, batch_txt, human(b1, need), human(b2, avail), what, alt,
                          strchr(alt, ',') ? ": each fits" : " and fits",
                          n_dt ? " (a `gtr quantize --dtype` copy loads that way without converting)" : "");
    char b3[32];
    gtr_mem_plan one = *p;
    if (p->batch > 1) one.batch = 1;
    return gtr_seterr(err, GTR_ERR_NOMEM,
                      "%s: loading as %s%s needs about %s but %s is available (%s); even --dtype "
                      "int8%s needs %s: free memory or use a machine with more",
                      dir, dn, batch_txt, human(b1, need), human(b2, avail), what,
                      p->batch > 1 ? " --batch 1" : "", human(b3, gtr_mem_estimate(s, &one, GTR_DTYPE_INT8)));
}
