// gtr_cuda.cu — the CUDA plugin lib/libgtr-cuda.so (issue 15): the GTR encoder forward on one
// GPU. libgtr dlopens it (src/cuda/loader.c) and talks to it only through plugin_abi.h.
//
// Layout of one forward over a chunk of texts packed without padding (T tokens in all):
//   x    [T, d_model]  float32 residual stream (f32 in both modes: bf16 rounding stays in the
//                      GEMM inputs, where tensor cores want it, not in the running sum)
//   xn   [T, d_model]  the layer-normed input of a sublayer, in the compute type W
//   qkv  [T, 3*inner]  W;  ctx [T, inner] W;  ff [T, d_ff or 2*d_ff] W
// GEMMs are cuBLAS (cublasGemmEx: bf16 in, f32 accumulate on tensor cores; or f32 with the
// pedantic compute type, so no TF32); the residual add is the GEMM's beta = 1 into x.
// Attention over packed variable-length texts is our kernel: one block per (token, head)
// computes that query's scores over its own text only, plus T5's relative-position bias from a
// table bucketed on the host. It is the simple correct version; a flash-style tiled kernel is
// the next step once it can be measured (see docs in the issue report).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

extern "C" {
#include "cuda/plugin_abi.h"
}

namespace {

struct Layer {
    float *ln_attn = nullptr, *ln_ff = nullptr;
    void *qkv = nullptr, *o = nullptr, *wi = nullptr, *wo = nullptr;
};

struct Ctx {
    gtr_cuda_cfg c;
    int inner = 0;
    bool bf16 = false;
    size_t wsize = 4; // bytes per compute element
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    void *embed = nullptr;
    float *pos = nullptr, *final_ln = nullptr, *dense = nullptr, *dense_b = nullptr;
    std::vector<Layer> layers;
    // activations (grow-only)
    size_t cap_tokens = 0, cap_texts = 0;
    float *x = nullptr, *hid = nullptr, *pooled = nullptr, *out = nullptr;
    void *xn = nullptr, *qkv = nullptr, *ctx = nullptr, *ff = nullptr;
    int *tok = nullptr, *start = nullptr, *len = nullptr, *offs = nullptr;
    // pinned host staging
    int *h_tok = nullptr, *h_start = nullptr, *h_len = nullptr, *h_offs = nullptr;
    float *h_out = nullptr;
    size_t uploaded = 0;
};

int fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return 1;
}

#define CK(call)                                                                                  \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) return fail(msg, msg_len, "%s: %s", #call, cudaGetErrorString(e_)); \
    } while (0)
#define CB(call)                                                                                  \
    do {                                                                                          \
        cublasStatus_t s_ = (call);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                          \
            return fail(msg, msg_len, "%s: %s", #call, cublasGetStatusString(s_));               \
    } while (0)

template <typename T> __device__ __forceinline__ float ld(const T *p, size_t i);
template <> __device__ __forceinline__ float ld<float>(const float *p, size_t i) { return p[i]; }
template <> __device__ __forceinline__ float ld<__nv_bfloat16>(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}
template <typename T> __device__ __forceinline__ T cvt(float v);
template <> __device__ __forceinline__ float cvt<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 cvt<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

// block-wide sum / max over blockDim.x threads (a multiple of 32, at most 1024)
__device__ float block_sum(float v, float *sh)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    float r = 0.f;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) r += sh[i];
    return r;
}
__device__ float block_max(float v, float *sh)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) sh[w] = v;
    __syncthreads();
    float r = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) r = fmaxf(r, sh[i]);
    return r;
}

__global__ void f32_to_bf16(const float *in, __nv_bfloat16 *out, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

template <typename T>
__global__ void embed_rows(const T *emb, const int *tok, float *x, int d)
{
    size_t t = blockIdx.x;
    const T *row = emb + (size_t)tok[t] * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) x[t * d + i] = ld(row, i);
}

// T5LayerNorm: y = w * x / sqrt(mean(x^2) + eps) (no mean subtraction, no bias)
template <typename TO>
__global__ void rms_norm(const float *x, const float *w, TO *y, int d, float eps)
{
    __shared__ float sh[32];
    size_t t = blockIdx.x;
    const float *r = x + t * d;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += r[i] * r[i];
    s = block_sum(s, sh);
    float inv = rsqrtf(s / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) y[t * d + i] = cvt<TO>(w[i] * (r[i] * inv));
}

// One query row t, one head h: softmax over the keys of t's own text (no 1/sqrt(d) scaling in
// T5) with the relative-position bias, then the weighted sum of the values. Dynamic shared
// memory: q [dk] + scores [max_len].
template <typename T>
__global__ void attention(const T *qkv, T *ctx, const int *start, const int *len, const float *pos,
                          int inner, int dk, int max_len)
{
    extern __shared__ float smem[];
    __shared__ float sh[32];
    float *q = smem, *sc = smem + dk;
    int t = blockIdx.x, h = blockIdx.y;
    int s0 = start[t], L = len[t], i = t - s0;
    size_t w3 = 3 * (size_t)inner;
    for (int d = threadIdx.x; d < dk; d += blockDim.x) q[d] = ld(qkv, (size_t)t * w3 + h * dk + d);
    __syncthreads();
    const float *prow = pos + (size_t)h * (2 * max_len - 1) + (max_len - 1 - i);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        const T *k = qkv + (size_t)(s0 + j) * w3 + inner + h * dk;
        float a = 0.f;
        for (int d = 0; d < dk; d++) a += q[d] * ld(k, d);
        a += prow[j];
        sc[j] = a;
        mx = fmaxf(mx, a);
    }
    mx = block_max(mx, sh);
    float sum = 0.f;
    for (int j = threadIdx.x; j < L; j += blockDim.x) {
        float e = __expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    sum = block_sum(sum, sh); // its __syncthreads also orders the sc writes before the reads
    float inv = 1.f / sum;
    for (int d = threadIdx.x; d < dk; d += blockDim.x) {
        const T *v = qkv + (size_t)s0 * w3 + 2 * inner + h * dk + d;
        float a = 0.f;
        for (int j = 0; j < L; j++) a += sc[j] * ld(v, (size_t)j * w3);
        ctx[(size_t)t * inner + h * dk + d] = cvt<T>(a * inv);
    }
}

template <typename T> __global__ void relu_inplace(T *h, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        h[i] = cvt<T>(fmaxf(ld(h, i), 0.f));
}

// gated: out[t, f] = gelu_new(h[t, f]) * h[t, F + f], written in place over the first half
template <typename T> __global__ void gelu_mul(T *h, int F)
{
    size_t t = blockIdx.x;
    T *r = h + t * 2 * (size_t)F;
    for (int f = threadIdx.x; f < F; f += blockDim.x) {
        float a = ld(r, f), b = ld(r, (size_t)F + f);
        float g = 0.5f * a * (1.f + tanhf(0.7978845608028654f * (a + 0.044715f * a * a * a)));
        r[f] = cvt<T>(g * b);
    }
}

// gated rows are [T, 2F] with the product in the first F columns: compact to [T, F]
template <typename T> __global__ void compact_rows(const T *in, T *out, int F)
{
    size_t t = blockIdx.x;
    for (int f = threadIdx.x; f < F; f += blockDim.x) out[t * F + f] = in[t * 2 * (size_t)F + f];
}

__global__ void mean_pool(const float *hid, const int *offs, float *out, int d)
{
    int i = blockIdx.x, a = offs[i], b = offs[i + 1];
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float s = 0.f;
        for (int r = a; r < b; r++) s += hid[(size_t)r * d + c];
        out[(size_t)i * d + c] = s / (float)(b - a);
    }
}

// bias, tanh, L2 normalise (F.normalize: x / max(|x|, 1e-12)) of each output row
__global__ void head_finish(float *y, const float *bias, int d, int tanh_act, int normalize)
{
    __shared__ float sh[32];
    float *r = y + (size_t)blockIdx.x * d;
    float s = 0.f;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = r[c] + (bias ? bias[c] : 0.f);
        if (tanh_act) v = tanhf(v);
        r[c] = v;
        s += v * v;
    }
    s = block_sum(s, sh);
    if (!normalize) return;
    float inv = 1.f / fmaxf(sqrtf(s), 1e-12f);
    for (int c = threadIdx.x; c < d; c += blockDim.x) r[c] *= inv;
}

int blocks_for(size_t n) { return (int)std::min<size_t>((n + 255) / 256, 65535); }

// Y[M, N] (ctype, row-major) = beta * Y + X[M, K] · W[N, K]ᵀ
int gemm(Ctx *m, const void *W, const void *X, cudaDataType in, void *Y, cudaDataType out, int M,
         int N, int K, float beta, char *msg, size_t msg_len)
{
    const float alpha = 1.f;
    cublasComputeType_t ct = in == CUDA_R_32F ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    CB(cublasGemmEx(m->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, W, in, K, X, in, K, &beta, Y,
                    out, N, ct, CUBLAS_GEMM_DEFAULT));
    return 0;
}

int reserve(Ctx *m, size_t T, size_t n, char *msg, size_t msg_len)
{
    const gtr_cuda_cfg &c = m->c;
    if (T > m->cap_tokens) {
        cudaFree(m->x); cudaFree(m->hid); cudaFree(m->xn); cudaFree(m->qkv); cudaFree(m->ctx);
        cudaFree(m->ff); cudaFree(m->tok); cudaFree(m->start); cudaFree(m->len);
        cudaFreeHost(m->h_tok); cudaFreeHost(m->h_start); cudaFreeHost(m->h_len);
        m->cap_tokens = 0;
        size_t d = c.d_model, ffw = (size_t)c.d_ff * (c.gated ? 2 : 1);
        CK(cudaMalloc(&m->x, T * d * 4));
        CK(cudaMalloc(&m->hid, T * d * 4));
        CK(cudaMalloc(&m->xn, T * d * m->wsize));
        CK(cudaMalloc(&m->qkv, T * 3 * m->inner * m->wsize));
        CK(cudaMalloc(&m->ctx, T * (m->inner + (c.gated ? c.d_ff : 0)) * m->wsize));
        CK(cudaMalloc(&m->ff, T * ffw * m->wsize));
        CK(cudaMalloc(&m->tok, T * 4));
        CK(cudaMalloc(&m->start, T * 4));
        CK(cudaMalloc(&m->len, T * 4));
        CK(cudaMallocHost(&m->h_tok, T * 4));
        CK(cudaMallocHost(&m->h_start, T * 4));
        CK(cudaMallocHost(&m->h_len, T * 4));
        m->cap_tokens = T;
    }
    if (n > m->cap_texts) {
        cudaFree(m->pooled); cudaFree(m->out); cudaFree(m->offs);
        cudaFreeHost(m->h_offs); cudaFreeHost(m->h_out);
        m->cap_texts = 0;
        size_t dout = c.has_dense ? c.dense_out : c.d_model;
        CK(cudaMalloc(&m->pooled, n * c.d_model * 4));
        CK(cudaMalloc(&m->out, n * std::max<size_t>(dout, c.d_model) * 4));
        CK(cudaMalloc(&m->offs, (n + 1) * 4));
        CK(cudaMallocHost(&m->h_offs, (n + 1) * 4));
        CK(cudaMallocHost(&m->h_out, n * dout * 4));
        m->cap_texts = n;
    }
    return 0;
}

template <typename T>
int forward(Ctx *m, int T_, int n, char *msg, size_t msg_len)
{
    const gtr_cuda_cfg &c = m->c;
    cudaStream_t st = m->stream;
    cudaDataType wt = m->bf16 ? CUDA_R_16BF : CUDA_R_32F;
    int d = c.d_model, I = m->inner, F = c.d_ff;
    embed_rows<T><<<T_, 256, 0, st>>>((const T *)m->embed, m->tok, m->x, d);
    size_t att_smem = (size_t)(c.d_kv + c.max_len) * sizeof(float);
    for (int l = 0; l < c.num_layers; l++) {
        const Layer &L = m->layers[l];
        rms_norm<T><<<T_, 256, 0, st>>>(m->x, L.ln_attn, (T *)m->xn, d, c.eps);
        if (gemm(m, L.qkv, m->xn, wt, m->qkv, wt, T_, 3 * I, d, 0.f, msg, msg_len)) return 1;
        attention<T><<<dim3(T_, c.num_heads), 128, att_smem, st>>>((const T *)m->qkv, (T *)m->ctx,
                                                                   m->start, m->len, m->pos, I,
                                                                   c.d_kv, c.max_len);
        if (gemm(m, L.o, m->ctx, wt, m->x, CUDA_R_32F, T_, d, I, 1.f, msg, msg_len)) return 1;
        rms_norm<T><<<T_, 256, 0, st>>>(m->x, L.ln_ff, (T *)m->xn, d, c.eps);
        int rows = c.gated ? 2 * F : F;
        if (gemm(m, L.wi, m->xn, wt, m->ff, wt, T_, rows, d, 0.f, msg, msg_len)) return 1;
        const void *act = m->ff;
        if (c.gated) {
            gelu_mul<T><<<T_, 256, 0, st>>>((T *)m->ff, F);
            compact_rows<T><<<T_, 256, 0, st>>>((const T *)m->ff, (T *)m->ctx, F);
            act = m->ctx;
        } else {
            relu_inplace<T><<<blocks_for((size_t)T_ * F), 256, 0, st>>>((T *)m->ff, (size_t)T_ * F);
        }
        if (gemm(m, L.wo, act, wt, m->x, CUDA_R_32F, T_, d, F, 1.f, msg, msg_len)) return 1;
    }
    CK(cudaGetLastError());
    rms_norm<float><<<T_, 256, 0, st>>>(m->x, m->final_ln, m->hid, d, c.eps);
    mean_pool<<<n, 256, 0, st>>>(m->hid, m->offs, m->pooled, d);
    int dout = d;
    if (c.has_dense) {
        dout = c.dense_out;
        if (gemm(m, m->dense, m->pooled, CUDA_R_32F, m->out, CUDA_R_32F, n, dout, c.dense_in, 0.f,
                 msg, msg_len))
            return 1;
    } else {
        CK(cudaMemcpyAsync(m->out, m->pooled, (size_t)n * d * 4, cudaMemcpyDeviceToDevice, st));
    }
    head_finish<<<n, 256, 0, st>>>(m->out, m->dense_b, dout, c.has_dense && c.dense_tanh, c.normalize);
    CK(cudaGetLastError());
    return 0;
}

void *p_create(const gtr_cuda_cfg *cfg, char *msg, size_t msg_len)
{
    Ctx *m = new (std::nothrow) Ctx();
    if (!m) return fail(msg, msg_len, "out of host memory"), nullptr;
    m->c = *cfg;
    m->inner = cfg->num_heads * cfg->d_kv;
    m->bf16 = cfg->bf16 != 0;
    m->wsize = m->bf16 ? 2 : 4;
    m->layers.resize(cfg->num_layers);
    cudaError_t e;
    const char *what = "cudaSetDevice";
    if ((e = cudaSetDevice(cfg->device)) == cudaSuccess) {
        what = "cudaStreamCreate";
        e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking);
    }
    if (e == cudaSuccess && cfg->max_len > 0) {
        what = "attention shared memory";
        size_t smem = (size_t)(cfg->d_kv + cfg->max_len) * sizeof(float);
        e = cudaFuncSetAttribute(attention<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess)
            e = cudaFuncSetAttribute(attention<__nv_bfloat16>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     (int)smem);
    }
    if (e != cudaSuccess) {
        fail(msg, msg_len, "%s: %s", what, cudaGetErrorString(e));
        delete m;
        return nullptr;
    }
    cublasStatus_t s = cublasCreate(&m->blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(m->blas, m->stream);
    // f32 mode is the parity mode: never let cuBLAS pick TF32 behind our back
    if (s == CUBLAS_STATUS_SUCCESS)
        s = cublasSetMathMode(m->blas, m->bf16 ? CUBLAS_DEFAULT_MATH : CUBLAS_PEDANTIC_MATH);
    if (s != CUBLAS_STATUS_SUCCESS) {
        fail(msg, msg_len, "cuBLAS: %s", cublasGetStatusString(s));
        if (m->blas) cublasDestroy(m->blas);
        cudaStreamDestroy(m->stream);
        delete m;
        return nullptr;
    }
    return m;
}

// expected shape of each named weight, and whether it is a matrix in the compute type
struct Want {
    size_t rows, cols;
    bool matrix;
};

int p_upload(void *h, const char *name, const float *x, size_t rows, size_t cols, char *msg,
             size_t msg_len)
{
    Ctx *m = (Ctx *)h;
    const gtr_cuda_cfg &c = m->c;
    size_t d = c.d_model, I = m->inner;
    void **dst = nullptr;
    Want w{0, 0, false};
    int layer = -1;
    char part[16] = "";
    if (!strcmp(name, "embed")) dst = &m->embed, w = {(size_t)c.vocab_size, d, true};
    else if (!strcmp(name, "pos_table")) dst = (void **)&m->pos, w = {(size_t)c.num_heads, 2 * (size_t)c.max_len - 1, false};
    else if (!strcmp(name, "final_ln")) dst = (void **)&m->final_ln, w = {1, d, false};
    else if (!strcmp(name, "dense")) dst = (void **)&m->dense, w = {(size_t)c.dense_out, (size_t)c.dense_in, false};
    else if (!strcmp(name, "dense_bias")) dst = (void **)&m->dense_b, w = {1, (size_t)c.dense_out, false};
    else if (sscanf(name, "%d.%15s", &layer, part) == 2 && layer >= 0 && layer < c.num_layers) {
        Layer &L = m->layers[layer];
        if (!strcmp(part, "ln_attn")) dst = (void **)&L.ln_attn, w = {1, d, false};
        else if (!strcmp(part, "ln_ff")) dst = (void **)&L.ln_ff, w = {1, d, false};
        else if (!strcmp(part, "qkv")) dst = &L.qkv, w = {3 * I, d, true};
        else if (!strcmp(part, "o")) dst = &L.o, w = {d, I, true};
        else if (!strcmp(part, "wi")) dst = &L.wi, w = {(size_t)c.d_ff * (c.gated ? 2 : 1), d, true};
        else if (!strcmp(part, "wo")) dst = &L.wo, w = {d, (size_t)c.d_ff, true};
    }
    if (!dst) return fail(msg, msg_len, "unknown weight name");
    if (rows != w.rows || cols != w.cols)
        return fail(msg, msg_len, "shape [%zu, %zu], expected [%zu, %zu]", rows, cols, w.rows, w.cols);
    if (*dst) return fail(msg, msg_len, "uploaded twice");
    size_t n = rows * cols;
    CK(cudaSetDevice(c.device));
    float *tmp = nullptr;
    CK(cudaMalloc(&tmp, n * 4));
    cudaError_t e = cudaMemcpy(tmp, x, n * 4, cudaMemcpyHostToDevice);
    if (e == cudaSuccess && w.matrix && m->bf16) {
        void *b = nullptr;
        if ((e = cudaMalloc(&b, n * 2)) == cudaSuccess) {
            f32_to_bf16<<<blocks_for(n), 256, 0, m->stream>>>(tmp, (__nv_bfloat16 *)b, n);
            if ((e = cudaStreamSynchronize(m->stream)) == cudaSuccess) e = cudaGetLastError();
            *dst = b;
        }
        cudaFree(tmp);
    } else {
        *dst = tmp;
    }
    if (e != cudaSuccess) return fail(msg, msg_len, "%s", cudaGetErrorString(e));
    m->uploaded++;
    return 0;
}

// everything the forward reads must be there before the first encode
const char *missing(const Ctx *m)
{
    if (!m->embed) return "embed";
    if (!m->pos) return "pos_table";
    if (!m->final_ln) return "final_ln";
    if (m->c.has_dense && !m->dense) return "dense";
    if (m->c.has_dense && m->c.dense_bias && !m->dense_b) return "dense_bias";
    for (const Layer &L : m->layers)
        if (!L.ln_attn || !L.ln_ff || !L.qkv || !L.o || !L.wi || !L.wo) return "a layer's weights";
    return nullptr;
}

// Tokens per chunk: enough rows to fill the tensor cores, bounded so activations stay a few GiB
// even at XXL width (x, hid f32 + xn, qkv, ctx, ff in the compute type, per token).
size_t chunk_tokens(const Ctx *m)
{
    const gtr_cuda_cfg &c = m->c;
    size_t per = (size_t)c.d_model * 8 +
                 m->wsize * ((size_t)c.d_model + 4 * (size_t)m->inner + 3 * (size_t)c.d_ff);
    size_t budget = ((size_t)4 << 30) / per;
    return std::max<size_t>(c.max_len, std::min<size_t>(budget, 65536));
}

int p_encode(void *h, const int32_t *const *ids, const size_t *lens, size_t n, float *out, char *msg,
             size_t msg_len)
{
    Ctx *m = (Ctx *)h;
    const gtr_cuda_cfg &c = m->c;
    if (const char *w = missing(m)) return fail(msg, msg_len, "weights not uploaded (%s)", w);
    for (size_t i = 0; i < n; i++)
        if (lens[i] < 1 || lens[i] > (size_t)c.max_len)
            return fail(msg, msg_len, "text %zu: %zu tokens, outside [1, %d]", i, lens[i], c.max_len);
    CK(cudaSetDevice(c.device));
    // length buckets: longest first, so each chunk holds texts of similar length
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return lens[a] > lens[b]; });
    size_t budget = chunk_tokens(m), dout = c.has_dense ? c.dense_out : c.d_model;
    if (reserve(m, budget, std::min(n, budget), msg, msg_len)) return 1;
    for (size_t i0 = 0; i0 < n;) {
        size_t i1 = i0, T = 0;
        while (i1 < n && T + lens[order[i1]] <= budget) T += lens[order[i1++]];
        size_t k = i1 - i0;
        m->h_offs[0] = 0;
        for (size_t j = 0; j < k; j++) {
            size_t t = order[i0 + j], s = m->h_offs[j], L = lens[t];
            for (size_t r = 0; r < L; r++) {
                m->h_tok[s + r] = ids[t][r];
                m->h_start[s + r] = (int)s;
                m->h_len[s + r] = (int)L;
            }
            m->h_offs[j + 1] = (int)(s + L);
        }
        cudaStream_t st = m->stream;
        CK(cudaMemcpyAsync(m->tok, m->h_tok, T * 4, cudaMemcpyHostToDevice, st));
        CK(cudaMemcpyAsync(m->start, m->h_start, T * 4, cudaMemcpyHostToDevice, st));
        CK(cudaMemcpyAsync(m->len, m->h_len, T * 4, cudaMemcpyHostToDevice, st));
        CK(cudaMemcpyAsync(m->offs, m->h_offs, (k + 1) * 4, cudaMemcpyHostToDevice, st));
        int r = m->bf16 ? forward<__nv_bfloat16>(m, (int)T, (int)k, msg, msg_len)
                        : forward<float>(m, (int)T, (int)k, msg, msg_len);
        if (r) return r;
        CK(cudaMemcpyAsync(m->h_out, m->out, k * dout * 4, cudaMemcpyDeviceToHost, st));
        CK(cudaStreamSynchronize(st));
        for (size_t j = 0; j < k; j++)
            memcpy(out + order[i0 + j] * dout, m->h_out + j * dout, dout * 4);
        i0 = i1;
    }
    return 0;
}

void p_info(void *h, char *buf, size_t len, size_t *bytes)
{
    Ctx *m = (Ctx *)h;
    cudaDeviceProp p;
    size_t fr = 0, tot = 0;
    if (cudaGetDeviceProperties(&p, m->c.device) == cudaSuccess)
        snprintf(buf, len, "%s, sm_%d%d, %s", p.name, p.major, p.minor, m->bf16 ? "bf16 tensor cores" : "f32, TF32 off");
    else
        snprintf(buf, len, "unknown device");
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess) *bytes = tot - fr;
}

void p_destroy(void *h)
{
    Ctx *m = (Ctx *)h;
    if (!m) return;
    cudaSetDevice(m->c.device);
    cudaStreamSynchronize(m->stream);
    for (Layer &L : m->layers) {
        cudaFree(L.ln_attn); cudaFree(L.ln_ff); cudaFree(L.qkv); cudaFree(L.o); cudaFree(L.wi);
        cudaFree(L.wo);
    }
    cudaFree(m->embed); cudaFree(m->pos); cudaFree(m->final_ln); cudaFree(m->dense);
    cudaFree(m->dense_b);
    cudaFree(m->x); cudaFree(m->hid); cudaFree(m->xn); cudaFree(m->qkv); cudaFree(m->ctx);
    cudaFree(m->ff); cudaFree(m->tok); cudaFree(m->start); cudaFree(m->len);
    cudaFree(m->pooled); cudaFree(m->out); cudaFree(m->offs);
    cudaFreeHost(m->h_tok); cudaFreeHost(m->h_start); cudaFreeHost(m->h_len);
    cudaFreeHost(m->h_offs); cudaFreeHost(m->h_out);
    if (m->blas) cublasDestroy(m->blas);
    if (m->stream) cudaStreamDestroy(m->stream);
    delete m;
}

const gtr_cuda_api api = {GTR_CUDA_ABI, p_create, p_upload, p_encode, p_info, p_destroy};

} // namespace

extern "C" __attribute__((visibility("default"))) const gtr_cuda_api *gtr_cuda_plugin_api(void)
{
    return &api;
}
