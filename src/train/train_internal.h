/*
 * train_internal.h — the pieces of the trainer and how they fit together:
 *
 *   params.c      every trainable parameter in ONE float32 buffer (gradients in a second one,
 *                 llm.c style): layout, HF names, loading from any checkpoint gtr can read
 *   export.c      the parameters back out as a sentence-transformers directory (F32 safetensors)
 *   tgemm.c       threaded, deterministic strided GEMMs for the backward products
 *   ops.c         row-wise forward/backward pieces: RMS norm, gated GELU, ReLU, reductions
 *   attention.c   self-attention with the shared relative-position bias, forward and backward
 *   encoder.c     the T5 encoder layer by layer: forward keeping what backward needs
 *                 (optionally only each layer's input, recomputing the rest), backward
 *   head.c        mean pooling, Dense, L2 normalisation: forward and backward
 *   loss.c        the bidirectional in-batch softmax loss (float64) and its gradient
 *   optim.c       AdamW, Adafactor, the learning-rate schedule
 *   data.c        training examples (JSON lines, BEIR train qrels), epoch order, RNG
 *   trainer.c     the public gtr_trainer_* API: one optimizer step over a batch, in chunks
 *                 (embeddings of the whole batch first, then backward chunk by chunk)
 *   checkpoint.c  resumable training state, written atomically
 *   mine.c        hard negatives from the current model (gtr mine-negatives)
 *
 * Determinism: nothing here depends on the number of threads. Every parallel loop either
 * writes disjoint outputs, or reduces per-chunk partial results in chunk order, with chunk
 * boundaries that are constants (never derived from the thread count).
 */
#ifndef GTR_TRAIN_INTERNAL_H
#define GTR_TRAIN_INTERNAL_H

#include "core/core.h"
#include "data/data.h"
#include "kernels/kernels.h"
#include "model/model_internal.h"

/* ---- parameters (params.c) ---------------------------------------------------------- */

/* One parameter tensor inside the flat buffer. Names are the Hugging Face ones of the
 * encoder ("shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", ...) and
 * "dense.linear.weight" / "dense.linear.bias" for the 2_Dense module's linear.weight/bias. */
typedef struct gtr_tr_tensor {
    char name[96];
    int ndim;
    size_t shape[2]; /* shape[1] = 1 for vectors */
    size_t off;      /* first float in the buffer (a multiple of 16: 64-byte aligned) */
    size_t count;
} gtr_tr_tensor;

/* Offsets of one layer's tensors. q, k, v follow each other (a [3*inner, d] matrix), so do
 * wi_0 and wi_1 (a [2*d_ff, d] matrix), so one GEMM computes each group. */
typedef struct gtr_tr_layer {
    size_t ln_attn, qkv, o, ln_ff, wi, wo;
} gtr_tr_layer;

/* Packed copies of the current weights for the inference kernels (forward products). */
typedef struct gtr_tr_packed {
    gtr_wmat qkv, o, wi, wo;
} gtr_tr_packed;

typedef struct gtr_tr_model {
    gtr_model_config cfg; /* owned */
    int d, inner, dff, ffw, H, L, V; /* ffw: width of the wi output (d_ff or 2*d_ff) */
    bool gated;
    int d_out;                       /* embedding size (Dense out, or d) */
    size_t n_params;                 /* floats in p / g (with alignment padding) */
    size_t n_real;                   /* parameters (no padding) */
    float *p, *g;                    /* parameters, gradients (aligned) */
    gtr_tr_tensor *t;                /* tensors in buffer order */
    size_t n_t;
    size_t embed, rel, final_ln, dense_w, dense_b; /* offsets; dense_b = SIZE_MAX if none */
    gtr_tr_layer *layer;
    const gtr_kernels *kern;
    gtr_tr_packed *pk;     /* per layer */
    gtr_wmat dense_pk;     /* Dense weight, packed */
    bool packed_valid;     /* false after the parameters change */
} gtr_tr_model;

/* Read the directory's configuration and every trainable tensor (any storage gtr reads:
 * F32/F16/BF16 safetensors, pytorch_model.bin) into one buffer. */
gtr_status gtr_tr_model_load(gtr_tr_model *m, const char *dir, gtr_error *err);
void gtr_tr_model_free(gtr_tr_model *m);
/* The tensor of that HF name, or NULL. */
const gtr_tr_tensor *gtr_tr_find(const gtr_tr_model *m, const char *name);
/* (Re)pack the forward weights after a parameter change (no-op when valid). */
gtr_status gtr_tr_pack(gtr_tr_model *m, gtr_error *err);
/* FNV-1a of the configuration shape and every parameter value (buffer order). */
uint64_t gtr_tr_model_hash(const gtr_tr_model *m);

/* ---- export (export.c) ----------------------------------------------------------------- */

/* Write the model as a sentence-transformers directory at out_dir: the init directory's
 * configuration files (config.json with torch_dtype float32), spiece.model, model.safetensors
 * (F32, HF names) and the Dense module's model.safetensors (linear.weight). Staged in
 * "<out_dir>.partial" and renamed into place; an existing out_dir is replaced only if
 * overwrite, after the new one is complete. */
gtr_status gtr_tr_export(const gtr_tr_model *m, const char *init_dir, const char *out_dir,
                         bool overwrite, gtr_error *err);

/* ---- threaded GEMMs (tgemm.c) ------------------------------------------------------------ */

/* C[M,N] = beta*C + A[M,K] · B[K,N] over the pool, in fixed output tiles. */
void gtr_tr_gemm_nn(const gtr_kernels *k, gtr_pool *pool, size_t M, size_t N, size_t K,
                    const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                    size_t ldc);
/* C[M,N] = beta*C + A[K,M]ᵀ · B[K,N] over the pool (weight gradients: K = tokens, summed in
 * fixed blocks of tokens so each tile's inputs stay in cache). */
void gtr_tr_gemm_tn(const gtr_kernels *k, gtr_pool *pool, size_t M, size_t N, size_t K,
                    const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
                    size_t ldc);

/* ---- row operations (ops.c) ------------------------------------------------------------- */

/* Rows per task of the row-wise operations (a constant: reductions are per chunk). */
#define GTR_TR_ROWS 64

/* y = rmsnorm(x) * w for T rows of d (the inference kernel: bit-identical to gtr_model),
 * and rinv[t] = 1 / sqrt(mean(x²) + eps) for backward (rinv may be NULL). */
void gtr_tr_rmsnorm_fwd(const gtr_kernels *k, gtr_pool *pool, const float *x, const float *w,
                        float eps, size_t T, size_t d, float *y, float *rinv);
/* dx += ∂(rmsnorm(x)·w)/∂x applied to dy; dw += Σ_t dy ⊙ x·rinv. part: scratch of
 * ceil(T / GTR_TR_ROWS) * d floats (per-chunk partial sums of dw, reduced in order). */
void gtr_tr_rmsnorm_bwd(gtr_pool *pool, const float *x, const float *w, const float *rinv,
                        const float *dy, size_t T, size_t d, float *dx, float *dw, float *part);
/* Gated GELU: g = gelu_tanh(a0) * a1 with a = [a0 | a1] rows of 2*dff (the inference kernel). */
void gtr_tr_gelu_fwd(const gtr_kernels *k, gtr_pool *pool, const float *a, size_t T, size_t dff,
                     float *g);
/* da = [dg * a1 * gelu'(a0) | dg * gelu(a0)] */
void gtr_tr_gelu_bwd(gtr_pool *pool, const float *a, const float *dg, size_t T, size_t dff,
                     float *da);
/* dh *= (h > 0), T rows of n */
void gtr_tr_relu_bwd(gtr_pool *pool, const float *h, float *dh, size_t T, size_t n);

/* ---- packed batches of texts ------------------------------------------------------------ */

/* n texts packed back to back: text i is ids[offs[i] .. offs[i] + lens[i]). */
typedef struct gtr_tr_texts {
    size_t n, T, max_len;
    const int32_t *ids; /* [T] */
    const size_t *lens, *offs;
} gtr_tr_texts;

/* ---- attention (attention.c) ------------------------------------------------------------ */

/* Per-thread scratch and the relative-position bias as rows per head (rebuilt every forward
 * from the current table). */
typedef struct gtr_tr_attn_ws {
    float *scores;  /* per thread: 3 buffers of [QBLOCK * max_len] */
    size_t per_thread;
    int n_threads;
    float *pos;     /* [H, 2*len - 1]: bias by key - query */
    int *bucket;    /* [2*len - 1]: bucket of key - query */
    int len;
    float *bias_part; /* [n texts * H * num_buckets] per-task bias gradients */
    size_t bias_cap;
} gtr_tr_attn_ws;

void gtr_tr_attn_ws_free(gtr_tr_attn_ws *w);
/* Size the scratch for texts (threads of pool) and fill the position rows from the table. */
gtr_status gtr_tr_attn_prepare(const gtr_tr_model *m, gtr_tr_attn_ws *w, const gtr_tr_texts *x,
                               gtr_pool *pool, gtr_error *err);
/* ctx = softmax(Q Kᵀ + bias) V per (text, head); qkv rows [3*inner], ctx rows [inner]. */
void gtr_tr_attn_fwd(const gtr_tr_model *m, gtr_tr_attn_ws *w, gtr_pool *pool,
                     const gtr_tr_texts *x, const float *qkv, float *ctx);
/* dqkv = ∂/∂qkv of the above applied to dctx (P recomputed from Q, K); the bias table's
 * gradient is added to dtable [num_buckets, H]. */
void gtr_tr_attn_bwd(const gtr_tr_model *m, gtr_tr_attn_ws *w, gtr_pool *pool,
                     const gtr_tr_texts *x, const float *qkv, const float *dctx, float *dqkv,
                     float *dtable);

/* ---- encoder (encoder.c) ----------------------------------------------------------------- */

/* What one layer's backward needs besides its input. */
typedef struct gtr_tr_layer_act {
    float *xn1, *rinv1, *qkv, *ctx, *mid, *xn2, *rinv2, *ff, *g;
    /* mid: residual after attention; ff: relu output h [T,dff] or pre-activations a [T,2dff];
     * g: gated product [T,dff] (NULL for relu) */
} gtr_tr_layer_act;

typedef enum gtr_tr_keep {
    GTR_TR_KEEP_NONE = 0, /* forward only (embeddings): buffers reused layer after layer */
    GTR_TR_KEEP_ALL,      /* every layer's activations kept for backward */
    GTR_TR_KEEP_INPUTS    /* only each layer's input kept; backward recomputes the rest */
} gtr_tr_keep;

typedef struct gtr_tr_acts {
    size_t cap_T, cap_n;
    int cap_sets;          /* activation sets allocated (L, or 1) */
    gtr_tr_layer_act *set;
    float *xin;            /* [L+1][T, d]: input of each layer, then the final-norm input */
    int xin_layers;        /* layers of xin allocated */
    float *y, *rinv_f;     /* final norm output [T,d], its rinv [T] */
    float *pooled, *dense, *emb; /* [n, d], [n, d_out] (before normalisation), [n, d_out] */
    /* backward scratch */
    float *dx, *dxn, *dqkv, *dctx, *dff, *dg, *part; /* part: rmsnorm dw partials */
    float *dpooled, *ddense;
    gtr_tr_attn_ws attn;
    gtr_tr_keep keep;
} gtr_tr_acts;

void gtr_tr_acts_free(gtr_tr_acts *a);
/* Forward of texts through encoder and head: a->emb receives the unit vectors. */
gtr_status gtr_tr_forward(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x,
                          gtr_tr_keep keep, gtr_error *err);
/* Backward of the last forward (keep ALL or INPUTS) given demb [n, d_out] = ∂loss/∂emb:
 * adds every parameter's gradient to m->g. */
gtr_status gtr_tr_backward(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x,
                           const float *demb, gtr_error *err);

/* ---- head (head.c) ------------------------------------------------------------------------ */

/* pooled, dense (pre-normalisation) and emb in a from the final hidden states a->y. */
void gtr_tr_head_fwd(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x);
/* From demb: Dense gradients into m->g and a->dx = ∂loss/∂y (final norm output). */
void gtr_tr_head_bwd(gtr_tr_model *m, gtr_pool *pool, gtr_tr_acts *a, const gtr_tr_texts *x,
                     const float *demb);

/* ---- loss (loss.c) -------------------------------------------------------------------------- */

/* Bidirectional in-batch softmax over B queries q, B positives p and nn negatives n (rows of
 * dim floats); tau the temperature. Duplicates (same[i] keys, see below) are excluded from
 * each other's denominators: qkey/pkey identify the query/positive text of example i, nkey the
 * text of negative j; a column whose passage is example i's own positive (another copy of it)
 * or whose example has the same query is not a negative for query i. Keys may be NULL.
 * Returns the loss; dq, dp, dn (may be NULL when not wanted) receive ∂loss/∂(q, p, n).
 * logits_q [B, B+nn] and logits_p [B, B] (may be NULL) receive the logits. */
typedef struct gtr_tr_loss_parts {
    double loss, loss_q, loss_p;
} gtr_tr_loss_parts;
gtr_status gtr_tr_loss(gtr_pool *pool, const float *q, const float *p, const float *n, size_t B,
                       size_t nn, size_t dim, double tau, const uint64_t *qkey,
                       const uint64_t *pkey, const uint64_t *nkey, float *dq, float *dp,
                       float *dn, double *logits_q, double *logits_p, gtr_tr_loss_parts *out,
                       gtr_error *err);

/* ---- optimisers (optim.c) ------------------------------------------------------------------- */

typedef struct gtr_tr_optim {
    gtr_optimizer kind;
    double beta1, beta2, eps, weight_decay;   /* AdamW */
    double decay_rate, clip, eps1;            /* Adafactor */
    uint64_t t;                               /* steps taken */
    float *m, *v;        /* AdamW moments [n_params] */
    double *fac;         /* Adafactor: per tensor R [rows] + C [cols] (matrices) or V (vectors) */
    size_t *fac_off;     /* per tensor: offset into fac */
    size_t n_fac;
    double *part;        /* per-chunk partial sums (deterministic reductions) */
    size_t part_cap;
} gtr_tr_optim;

gtr_status gtr_tr_optim_init(gtr_tr_optim *o, const gtr_tr_model *m, const gtr_train_options *opt,
                             gtr_error *err);
void gtr_tr_optim_free(gtr_tr_optim *o);
/* One update of m->p from m->g with learning rate lr (marks the packed weights stale). */
gtr_status gtr_tr_optim_step(gtr_tr_optim *o, gtr_tr_model *m, gtr_pool *pool, double lr,
                             gtr_error *err);
/* Learning rate of step t (1-based) of total under the options' schedule. */
double gtr_tr_lr(const gtr_train_options *o, uint64_t t);

/* ---- data (data.c) --------------------------------------------------------------------------- */

/* xoshiro256** (seeded through splitmix64). */
typedef struct gtr_tr_rng {
    uint64_t s[4];
} gtr_tr_rng;
void gtr_tr_rng_seed(gtr_tr_rng *r, uint64_t seed);
uint64_t gtr_tr_rng_next(gtr_tr_rng *r);
/* uniform in [0, n) (n >= 1), without modulo bias */
uint64_t gtr_tr_rng_below(gtr_tr_rng *r, uint64_t n);

typedef struct gtr_tr_example {
    uint32_t query, pos;   /* text ids (gtr_train_data.texts) */
    uint32_t neg0, n_neg;  /* negatives: text ids negs[neg0 .. neg0 + n_neg) */
} gtr_tr_example;

/* Texts are interned (a text that occurs twice is stored once and has one id), so "same
 * text" is "same id" when the loss looks for duplicates within a batch. */
struct gtr_train_data {
    gtr_strmap texts;
    gtr_tr_example *ex;
    size_t n_ex, cap_ex;
    uint32_t *negs;
    size_t n_negs, cap_negs;
    size_t with_negs;      /* examples with at least one negative */
    uint64_t fingerprint;  /* FNV-1a of every example's texts, in order */
};

/* The text of id (length in *len). */
const char *gtr_tr_text(const gtr_train_data *d, uint32_t id, size_t *len);

/* The order of epoch e: a permutation of the n examples from (seed, e). perm has n entries. */
void gtr_tr_epoch_order(uint64_t seed, uint64_t epoch, size_t n, uint32_t *perm);

/* ---- the trainer (trainer.c, checkpoint.c) ------------------------------------------------- */

struct gtr_trainer {
    gtr_tr_model m;
    gtr_tr_optim opt;
    gtr_train_options o;      /* micro_batch resolved (1..batch_size), pool cleared */
    const gtr_train_data *data;
    gtr_tokenizer *tok;
    gtr_pool *pool;
    bool own_pool;
    char *init_dir;
    uint64_t init_hash;       /* gtr_tr_model_hash of the initial model */
    /* progress: everything a checkpoint must restore */
    uint64_t step;            /* optimizer steps done */
    uint64_t cursor;          /* examples consumed (epoch = cursor / examples) */
    gtr_tr_rng rng;           /* negative sampling */
    /* cached epoch order */
    uint32_t *perm;
    uint64_t perm_epoch;
    bool perm_valid;
    gtr_tr_acts acts;
    /* per-batch scratch: text slots are [queries B | positives B | negatives] */
    size_t cap_slots;         /* slot_ids entries */
    size_t cap_arrays;        /* entries of the other per-slot arrays */
    uint32_t *slot_text;      /* text id of each slot */
    uint64_t *slot_key;
    gtr_ids *slot_ids;        /* token ids of each slot */
    int *slot_max;            /* truncation length of each slot */
    gtr_status *slot_st;
    size_t *neg_start;        /* [B + 1]: example b's negatives are slots 2B + neg_start[b] .. */
    uint32_t *neg_pick;       /* scratch for sampling */
    size_t cap_pick;
    float *emb, *demb, *cdemb;
    float *emb_pack;          /* pass-1 embeddings of every rank, in micro-batch order */
    /* data parallelism (replicas.c): comm.n_ranks is 1 when alone */
    gtr_train_comm comm;
    float **cgrad;            /* per-micro-batch gradient buffers */
    size_t n_cgrad;
    int32_t *ids;             /* one chunk's packed ids */
    size_t cap_ids;
    size_t *lens, *offs, *slot_of; /* per chunk text: tokens, first row, slot */
};

/* A hash of every option that changes the numbers (not threads, not recompute). */
uint64_t gtr_tr_options_hash(const gtr_train_options *o);

/* ---- data parallelism (replicas.c) ------------------------------------------------------ */

/* Micro-batches [lo, hi) of C that rank r of N back-propagates: ceil(C·r/N) .. ceil(C·(r+1)/N),
 * so rank 0 always has the first one and any ranks without work are the last ones. */
void gtr_tr_rank_chunks(size_t C, int r, int N, size_t *lo, size_t *hi);
/* S += g over n floats (element by element: any split over threads gives the same bits). */
void gtr_tr_fold(gtr_pool *pool, float *S, const float *g, size_t n);
/* At least k gradient buffers of m->n_params floats in t->cgrad. */
gtr_status gtr_tr_reserve_grads(gtr_trainer *t, size_t k, gtr_error *err);
/* The chain reduction: on entry rank 0's m->g is the sum of its micro-batches' gradients and
 * every other rank's are in t->cgrad[0 .. k); on return every rank's m->g is the sum of all
 * in micro-batch order. */
gtr_status gtr_tr_reduce_grads(gtr_trainer *t, size_t k, gtr_error *err);
/* All-gather counts[r] bytes from each rank (collective; a failure names the rank). */
gtr_status gtr_tr_allgather(gtr_trainer *t, const void *mine, void *all, const size_t *counts,
                            gtr_error *err);

#endif
