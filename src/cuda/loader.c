/* loader.c — find the CUDA driver, a device and the plugin at run time (see cuda.h). The
 * driver is asked directly (cuInit / cuDeviceGetCount through dlsym) before the plugin is
 * loaded, so that a machine without a GPU gets "no CUDA driver" or "no CUDA device" rather
 * than a loader error from deep inside cudart. */
#include "cuda/cuda.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gtr_cuda {
    void *driver, *plugin;
    const gtr_cuda_api *api;
    void *h; /* the plugin's context, after create */
    pthread_mutex_t mu; /* one encode at a time: the plugin's buffers and stream are shared by
                         * every gtr_context of the model */
    int ordinal;
    size_t dim; /* output dimension */
    char plugin_path[512];
};

gtr_status gtr_cuda_parse_device(const char *s, int *ordinal, gtr_error *err)
{
    *ordinal = -1;
    if (!s || !*s || !strcmp(s, "cpu")) return GTR_OK;
    if (!strcmp(s, "cuda")) {
        *ordinal = 0;
        return GTR_OK;
    }
    if (!strncmp(s, "cuda:", 5) && s[5] >= '0' && s[5] <= '9') {
        char *end;
        long v = strtol(s + 5, &end, 10);
        if (!*end && v >= 0 && v < 1024) {
            *ordinal = (int)v;
            return GTR_OK;
        }
    }
    return gtr_seterr(err, GTR_ERR_INVALID_ARG, "device '%s': expected cpu, cuda or cuda:N", s);
}

/* CUresult values (cuda.h), spelled out so this file needs no CUDA header. */
#define CU_SUCCESS 0
#define CU_ERROR_NO_DEVICE 100
typedef int (*cu_init_fn)(unsigned);
typedef int (*cu_count_fn)(int *);

static gtr_status check_driver(gtr_cuda *c, gtr_error *err)
{
    const char *env = getenv("GTR_CUDA_DRIVER");
    const char *lib = env && *env ? env : "libcuda.so.1";
    if (!(c->driver = dlopen(lib, RTLD_NOW | RTLD_LOCAL))) {
        const char *why = dlerror();
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "no CUDA driver: %s could not be loaded (%s)",
                          lib, why ? why : "unknown reason");
    }
    cu_init_fn init = (cu_init_fn)(uintptr_t)dlsym(c->driver, "cuInit");
    cu_count_fn count = (cu_count_fn)(uintptr_t)dlsym(c->driver, "cuDeviceGetCount");
    if (!init || !count)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "no CUDA driver: %s lacks cuInit / cuDeviceGetCount", lib);
    int r = init(0), n = 0;
    if (r == CU_ERROR_NO_DEVICE)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "no CUDA device (the driver %s found none)", lib);
    if (r != CU_SUCCESS)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "no CUDA device: the driver %s failed to initialise (CUresult %d)", lib, r);
    if ((r = count(&n)) != CU_SUCCESS)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED,
                          "no CUDA device: cuDeviceGetCount failed (CUresult %d)", r);
    if (n == 0) return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "no CUDA device (the driver found none)");
    if (c->ordinal >= n)
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "no CUDA device %d (the driver found %d)",
                          c->ordinal, n);
    return GTR_OK;
}

/* dir of the object holding this code (libgtr.so, or the executable libgtr.a is linked into) */
static void self_dir(char *buf, size_t len)
{
    Dl_info di;
    buf[0] = 0;
    if (!dladdr((void *)(uintptr_t)gtr_cuda_parse_device, &di) || !di.dli_fname) return;
    snprintf(buf, len, "%s", di.dli_fname);
    char *slash = strrchr(buf, '/');
    if (slash) *slash = 0;
    else snprintf(buf, len, ".");
}

static gtr_status load_plugin(gtr_cuda *c, gtr_error *err)
{
    const char *env = getenv("GTR_CUDA_PLUGIN");
    char dir[384], cand[2][512];
    int nc = 0;
    if (env && *env) {
        snprintf(cand[nc++], sizeof cand[0], "%s", env);
    } else {
        self_dir(dir, sizeof dir);
        snprintf(cand[nc++], sizeof cand[0], "%s/libgtr-cuda.so", dir);
        snprintf(cand[nc++], sizeof cand[0], "%s/../lib/libgtr-cuda.so", dir);
    }
    for (int i = 0; i < nc; i++) {
        if (access(cand[i], F_OK)) continue;
        if (!(c->plugin = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL))) {
            const char *why = dlerror();
            return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "CUDA plugin %s could not be loaded (%s)",
                              cand[i], why ? why : "unknown reason");
        }
        snprintf(c->plugin_path, sizeof c->plugin_path, "%s", cand[i]);
        break;
    }
    if (!c->plugin && !env && (c->plugin = dlopen("libgtr-cuda.so", RTLD_NOW | RTLD_LOCAL)))
        snprintf(c->plugin_path, sizeof c->plugin_path, "libgtr-cuda.so");
    if (!c->plugin)
        return gtr_seterr(err, GTR_ERR_NOT_FOUND,
                          "CUDA plugin not found: %s%s%s (build it with `make` on a machine with "
                          "nvcc, or set GTR_CUDA_PLUGIN)", cand[0], nc > 1 ? ", " : "",
                          nc > 1 ? cand[1] : "");
    gtr_cuda_plugin_api_fn get =
        (gtr_cuda_plugin_api_fn)(uintptr_t)dlsym(c->plugin, GTR_CUDA_PLUGIN_SYMBOL);
    if (!get || !(c->api = get()))
        return gtr_seterr(err, GTR_ERR_FORMAT, "CUDA plugin %s has no %s", c->plugin_path,
                          GTR_CUDA_PLUGIN_SYMBOL);
    if (c->api->abi != GTR_CUDA_ABI)
        return gtr_seterr(err, GTR_ERR_MISMATCH,
                          "CUDA plugin %s speaks interface %d, this libgtr %d (rebuild it)",
                          c->plugin_path, c->api->abi, GTR_CUDA_ABI);
    return GTR_OK;
}

gtr_status gtr_cuda_open(int ordinal, gtr_cuda **out, gtr_error *err)
{
    *out = NULL;
    gtr_cuda *c = gtr_xcalloc(1, sizeof *c, "CUDA backend", err);
    if (!c) return GTR_ERR_NOMEM;
    c->ordinal = ordinal;
    pthread_mutex_init(&c->mu, NULL);
    gtr_status st = check_driver(c, err);
    if (!st) st = load_plugin(c, err);
    if (st) {
        gtr_cuda_free(c);
        return st;
    }
    *out = c;
    return GTR_OK;
}

gtr_status gtr_cuda_create(gtr_cuda *c, const gtr_cuda_cfg *cfg, gtr_error *err)
{
    char msg[512] = "";
    gtr_cuda_cfg k = *cfg;
    k.device = c->ordinal;
    c->dim = (size_t)(k.has_dense ? k.dense_out : k.d_model);
    if (!(c->h = c->api->create(&k, msg, sizeof msg)))
        return gtr_seterr(err, GTR_ERR_UNSUPPORTED, "cuda:%d: %s", c->ordinal, msg);
    return GTR_OK;
}

gtr_status gtr_cuda_upload(gtr_cuda *c, const char *name, const float *x, size_t rows, size_t cols,
                           gtr_error *err)
{
    char msg[512] = "";
    if (c->api->upload(c->h, name, x, rows, cols, msg, sizeof msg))
        return gtr_seterr(err, GTR_ERR_NOMEM, "cuda:%d: uploading %s: %s", c->ordinal, name, msg);
    return GTR_OK;
}

gtr_status gtr_cuda_encode(gtr_cuda *c, const int32_t *const *ids, const size_t *lens, size_t n,
                           float *out, gtr_error *err)
{
    char msg[512] = "";
    pthread_mutex_lock(&c->mu);
    int r = c->api->encode(c->h, ids, lens, n, out, msg, sizeof msg);
    pthread_mutex_unlock(&c->mu);
    if (r)
        return gtr_seterr(err, GTR_ERR_INTERNAL, "cuda:%d: %s", c->ordinal, msg);
    /* the CPU path's rule: a vector that is not finite is an error, never an output */
    size_t dim = c->dim;
    for (size_t j = 0; j < n * dim; j++)
        if (!isfinite(out[j]))
            return gtr_seterr(err, GTR_ERR_INTERNAL,
                              "text %zu: the vector is not finite (the model's activations "
                              "overflowed on cuda:%d)", j / dim, c->ordinal);
    return GTR_OK;
}

void gtr_cuda_describe(gtr_cuda *c, char *buf, size_t len)
{
    char name[256] = "";
    size_t bytes = 0;
    if (c->h) c->api->info(c->h, name, sizeof name, &bytes);
    snprintf(buf, len, "cuda:%d (%s, %.1f GiB in use)", c->ordinal, name,
             (double)bytes / (1024.0 * 1024 * 1024));
}

void gtr_cuda_free(gtr_cuda *c)
{
    if (!c) return;
    if (c->h) c->api->destroy(c->h);
    /* The plugin and driver stay mapped: cudart registers exit handlers that must not
     * outlive the code (unloading CUDA runtimes mid-process is not supported). */
    pthread_mutex_destroy(&c->mu);
    free(c);
}
