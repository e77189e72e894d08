/*
 * plugin_abi.h — the C interface between libgtr and the optional CUDA plugin lib/libgtr-cuda.so
 * (issue 15). libgtr never links CUDA: it dlopens the plugin when a model is loaded with
 * device "cuda[:N]", and the plugin exports one symbol, gtr_cuda_plugin_api, returning this
 * table. Plain C types only (the plugin is C++/CUDA, built by nvcc); bump GTR_CUDA_ABI on any
 * change so a stale plugin is refused with a clear message rather than misread.
 */
#ifndef GTR_CUDA_PLUGIN_ABI_H
#define GTR_CUDA_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#define GTR_CUDA_ABI 1
#define GTR_CUDA_PLUGIN_SYMBOL "gtr_cuda_plugin_api"

/* The model's shape and how to run it. */
typedef struct gtr_cuda_cfg {
    int d_model, d_ff, d_kv, num_heads, num_layers, vocab_size;
    float eps;
    int gated;      /* 1: gated-GELU (wi_0, wi_1; tanh GELU as transformers' gelu_new) else ReLU */
    int max_len;    /* longest text in tokens; the position table covers [-(max_len-1), max_len-1] */
    int has_dense, dense_in, dense_out, dense_bias, dense_tanh, normalize;
    int bf16;       /* 1: bf16 weights/activations into tensor cores, f32 accumulate; 0: f32, TF32 off */
    int device;     /* CUDA ordinal */
} gtr_cuda_cfg;

/* Weights are uploaded one at a time as row-major float32 host arrays under these names:
 *   "embed" [vocab, d_model]; "final_ln" [d_model];
 *   "pos_table" [num_heads, 2 * max_len - 1]: bias of (head, key - query + max_len - 1), already
 *       bucketed on the host by gtr_t5_bucket (so the GPU uses exactly the CPU's buckets);
 *   "L.ln_attn", "L.ln_ff" [d_model]; "L.qkv" [3 * inner, d_model] (q, k, v stacked);
 *   "L.o" [d_model, inner]; "L.wi" [d_ff or 2 * d_ff (wi_0 then wi_1), d_model];
 *   "L.wo" [d_model, d_ff]   (L = layer number);
 *   "dense" [dense_out, dense_in]; "dense_bias" [dense_out].
 * Every function returns 0 on success, else writes one line into msg[msg_len]. */
typedef struct gtr_cuda_api {
    int abi; /* GTR_CUDA_ABI */
    /* Pick the device, create streams and handles. NULL on failure (msg says why). */
    void *(*create)(const gtr_cuda_cfg *c, char *msg, size_t msg_len);
    int (*upload)(void *h, const char *name, const float *x, size_t rows, size_t cols, char *msg,
                  size_t msg_len);
    /* n texts of token ids (each 1..max_len tokens, ids < vocab) -> out[n * dim] float32. A
     * text's vector does not depend on the other texts. */
    int (*encode)(void *h, const int32_t *const *ids, const size_t *lens, size_t n, float *out,
                  char *msg, size_t msg_len);
    /* Device name and memory in use (for describe / benchmarks). */
    void (*info)(void *h, char *buf, size_t len, size_t *bytes_in_use);
    void (*destroy)(void *h);
} gtr_cuda_api;

typedef const gtr_cuda_api *(*gtr_cuda_plugin_api_fn)(void);

#endif
