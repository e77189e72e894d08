/*
 * cuda.h — libgtr's side of the optional CUDA backend (issue 15): find and load the plugin
 * lib/libgtr-cuda.so at run time, check for a driver and a device first, hand the plugin the
 * model's weights once, and route encode calls to it. Without a plugin, driver or device every
 * entry point fails with one line naming which; nothing here links CUDA.
 */
#ifndef GTR_CUDA_H
#define GTR_CUDA_H

#include "core/core.h"
#include "cuda/plugin_abi.h"

typedef struct gtr_cuda gtr_cuda;

/* Parse a device string: NULL, "" or "cpu" -> *ordinal = -1; "cuda" -> 0; "cuda:N" -> N.
 * Anything else is GTR_ERR_INVALID_ARG naming the string. */
gtr_status gtr_cuda_parse_device(const char *s, int *ordinal, gtr_error *err);

/* Check the driver and device, load the plugin. Environment (tests, unusual installs):
 * GTR_CUDA_DRIVER names the driver library (default libcuda.so.1), GTR_CUDA_PLUGIN the plugin
 * (default: libgtr-cuda.so beside libgtr.so / the executable's ../lib, then the loader's
 * search path). Errors: "no CUDA driver", "no CUDA device", "CUDA plugin ... not found". */
gtr_status gtr_cuda_open(int ordinal, gtr_cuda **out, gtr_error *err);
/* Create the device context for a model shape (cfg.device is set from the ordinal). */
gtr_status gtr_cuda_create(gtr_cuda *c, const gtr_cuda_cfg *cfg, gtr_error *err);
gtr_status gtr_cuda_upload(gtr_cuda *c, const char *name, const float *x, size_t rows, size_t cols,
                           gtr_error *err);
gtr_status gtr_cuda_encode(gtr_cuda *c, const int32_t *const *ids, const size_t *lens, size_t n,
                           float *out, gtr_error *err);
/* "cuda:0 (NVIDIA H200, 12.3 GiB in use)" into buf. */
void gtr_cuda_describe(gtr_cuda *c, char *buf, size_t len);
void gtr_cuda_free(gtr_cuda *c);

/* The relative-position table the plugin takes as "pos_table": out[h * (2L-1) + (rel + L-1)] =
 * rel_bias[bucket(rel) * heads + h] for rel = key - query in [-(L-1), L-1]. */
void gtr_cuda_pos_table(const float *rel_bias, int heads, int num_buckets, int max_distance,
                        int max_len, float *out);

/* Create the plugin's context for model config mc and upload its weights (read again from the
 * directory; attach.c). bf16: tensor-core bf16 compute, else float32 with TF32 off. */
struct gtr_model_config;
gtr_status gtr_cuda_attach(gtr_cuda *c, const struct gtr_model_config *mc, bool bf16, int max_len,
                           gtr_pool *pool, gtr_error *err);

#endif
