/* trainer.c — the public gtr_trainer_* API: one optimizer step over a batch of examples.
 *
 * A step takes the next batch_size examples (epoch order from data.c), draws each example's
 * hard negatives, tokenizes every text (queries at query_max_len, passages at
 * passage_max_len), then:
 *   - if the batch fits one micro-batch: forward keeping activations, loss, backward;
 *   - otherwise, in chunks of micro_batch examples: a forward that keeps nothing gives every
 *     embedding; the loss over the whole batch gives ∂loss/∂embedding; then each chunk runs
 *     forward again keeping activations and backward from its rows of ∂loss/∂embedding.
 *     The gradient is the whole batch's (in-batch negatives span all of it), the activation
 *     memory one chunk's; the price is one extra forward.
 * Each chunk's gradient is computed into a zeroed buffer and added to the step's sum in chunk
 * order, the one order that data-parallel training (replicas.c) reproduces on any number of
 * ranks. Under a communicator, rank r does only its chunks (gtr_tr_rank_chunks), the pass-1
 * embeddings are all-gathered and the gradients reduced along the chain of ranks.
 * Finally the optimizer update with the schedule's learning rate. */
#include "train/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

gtr_train_options gtr_train_default_options(void)
{
    gtr_train_options o;
    memset(&o, 0, sizeof o);
    o.size = sizeof o;
    o.optimizer = GTR_OPTIM_ADAFACTOR;
    o.lr = 1e-3;
    o.schedule = GTR_LR_LINEAR;
    o.total_steps = 1;
    o.batch_size = 32;
    o.n_negatives = 1;
    o.query_max_len = 64;
    o.passage_max_len = 256;
    o.tau = 0.01;
    o.weight_decay = 0.01;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.decay_rate = -0.8;
    o.clip_threshold = 1.0;
    o.eps1 = 1e-30;
    return o;
}

uint64_t gtr_tr_options_hash(const gtr_train_options *o)
{
    char buf[768];
    int n = snprintf(buf, sizeof buf,
                     "gtr-train-v1 opt%d lr%.17g sch%d steps%llu warm%llu B%zu mb%zu neg%d ql%d "
                     "pl%d tau%.17g wd%.17g b1%.17g b2%.17g eps%.17g dr%.17g clip%.17g eps1%.17g "
                     "seed%llu",
                     (int)o->optimizer, o->lr, (int)o->schedule, (unsigned long long)o->total_steps,
                     (unsigned long long)o->warmup_steps, o->batch_size, o->micro_batch,
                     o->n_negatives, o->query_max_len, o->passage_max_len, o->tau, o->weight_decay,
                     o->beta1, o->beta2, o->eps, o->decay_rate, o->clip_threshold, o->eps1,
                     (unsigned long long)o->seed);
    return gtr_fnv1a64(buf, (size_t)n, GTR_FNV_SEED);
}

static gtr_status check_options(gtr_train_options *o, gtr_error *err)
{
#define BAD(...) return gtr_seterr(err, GTR_ERR_INVALID_ARG, __VA_ARGS__)
    if (o->optimizer != GTR_OPTIM_ADAFACTOR && o->optimizer != GTR_OPTIM_ADAMW)
        BAD("unknown optimizer %d", (int)o->optimizer);
    if (o->schedule != GTR_LR_LINEAR && o->schedule != GTR_LR_CONSTANT)
        BAD("unknown learning-rate schedule %d", (int)o->schedule);
    if (!(o->lr >= 0) || !isfinite(o->lr)) BAD("learning rate %g must be >= 0", o->lr);
    if (o->total_steps < 1) BAD("total_steps must be >= 1");
    if (o->batch_size < 1 || o->batch_size > (1u << 20)) BAD("batch size %zu is out of range", o->batch_size);
    if (o->micro_batch == 0 || o->micro_batch > o->batch_size) o->micro_batch = o->batch_size;
    if (o->n_negatives < 0 || o->n_negatives > 1024) BAD("negatives per example %d is out of range", o->n_negatives);
    if (o->query_max_len < 1 || o->query_max_len > 65536 || o->passage_max_len < 1 ||
        o->passage_max_len > 65536)
        BAD("maximum lengths must be in [1, 65536] (query %d, passage %d)", o->query_max_len,
            o->passage_max_len);
    if (!(o->tau > 0) || !isfinite(o->tau)) BAD("temperature %g must be > 0", o->tau);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        BAD("AdamW needs 0 <= beta1, beta2 < 1 and eps > 0");
    if (!(o->weight_decay >= 0)) BAD("weight decay %g must be >= 0", o->weight_decay);
    if (!(o->decay_rate < 0) || !(o->clip_threshold > 0) || !(o->eps1 > 0))
        BAD("Adafactor needs decay_rate < 0, clip_threshold > 0 and eps1 > 0");
#undef BAD
    return GTR_OK;
}

void gtr_trainer_free(gtr_trainer *t)
{
    if (!t) return;
    gtr_tr_model_free(&t->m);
    gtr_tr_optim_free(&t->opt);
    gtr_tokenizer_free(t->tok);
    if (t->own_pool) gtr_pool_free(t->pool);
    free(t->init_dir);
    free(t->perm);
    gtr_tr_acts_free(&t->acts);
    for (size_t i = 0; i < t->cap_slots; i++) gtr_ids_free(&t->slot_ids[i]);
    free(t->slot_ids);
    free(t->slot_text);
    free(t->slot_key);
    free(t->slot_max);
    free(t->slot_st);
    free(t->neg_start);
    free(t->neg_pick);
    gtr_free_aligned(t->emb);
    gtr_free_aligned(t->demb);
    gtr_free_aligned(t->cdemb);
    free(t->ids);
    free(t->lens);
    free(t->offs);
    free(t->slot_of);
    gtr_free_aligned(t->emb_pack);
    for (size_t i = 0; i < t->n_cgrad; i++) gtr_free_aligned(t->cgrad[i]);
    free(t->cgrad);
    free(t);
}

gtr_trainer *gtr_trainer_create(const char *init_dir, const gtr_train_data *data,
                                const gtr_train_options *opts, gtr_error *err)
{
    if (!init_dir || !data) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_create: no model directory or data");
        return NULL;
    }
    if (data->n_ex == 0) {
        gtr_seterr(err, GTR_ERR_INVALID_ARG, "no training examples");
        return NULL;
    }
    gtr_trainer *t = gtr_xcalloc(1, sizeof *t, "trainer", err);
    if (!t) return NULL;
    t->o = gtr_train_default_options();
    if (gtr_options_take(&t->o, sizeof t->o, opts, "gtr_trainer_create", err)) {
        free(t);
        return NULL;
    }
    t->data = data;
    t->comm = (gtr_train_comm){.size = sizeof t->comm, .rank = 0, .n_ranks = 1};
    gtr_status st;
    char *spm = NULL;
    if ((st = check_options(&t->o, err))) goto fail;
    if (t->o.pool) {
        t->pool = t->o.pool;
    } else {
        if (!(t->pool = gtr_pool_create(t->o.n_threads, err))) goto fail;
        t->own_pool = true;
    }
    t->o.pool = NULL;
    t->o.n_threads = 0;
    if (!(t->init_dir = strdup(init_dir))) {
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if ((st = gtr_tr_model_load(&t->m, init_dir, err))) goto fail;
    if (!(spm = gtr_path_join(t->m.cfg.transformer_dir, "spiece.model"))) {
        gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    gtr_tokenizer_options to = gtr_tokenizer_default_options();
    to.compat = t->o.spm_compat;
    if (!(t->tok = gtr_tokenizer_load(spm, &to, err))) goto fail;
    if (gtr_tokenizer_vocab_size(t->tok) > t->m.V) {
        gtr_seterr(err, GTR_ERR_MISMATCH, "%s has %d pieces but config.json's vocab_size is %d", spm,
                   gtr_tokenizer_vocab_size(t->tok), t->m.V);
        goto fail;
    }
    if ((st = gtr_tr_optim_init(&t->opt, &t->m, &t->o, err))) goto fail;
    t->init_hash = gtr_tr_model_hash(&t->m);
    gtr_tr_rng_seed(&t->rng, t->o.seed ^ 0x6e656761746976ull /* "negativ" */);
    if (!(t->perm = gtr_xmalloc(data->n_ex * sizeof *t->perm, "epoch order", err))) goto fail;
    free(spm);
    return t;
fail:
    free(spm);
    gtr_trainer_free(t);
    return NULL;
}

size_t gtr_trainer_n_params(const gtr_trainer *t) { return t ? t->m.n_real : 0; }
int gtr_trainer_dim(const gtr_trainer *t) { return t ? t->m.d_out : 0; }
uint64_t gtr_trainer_step_count(const gtr_trainer *t) { return t ? t->step : 0; }

/* ---- batch assembly ------------------------------------------------------------------------ */

static gtr_status reserve_slots(gtr_trainer *t, size_t slots, size_t B, gtr_error *err)
{
    if (slots > t->cap_slots) {
        size_t cap = GTR_MAX(slots, 2 * t->cap_slots);
        gtr_ids *ni = gtr_xrealloc(t->slot_ids, cap * sizeof *ni, "token ids", err);
        if (!ni) return GTR_ERR_NOMEM;
        memset(ni + t->cap_slots, 0, (cap - t->cap_slots) * sizeof *ni);
        t->slot_ids = ni;
        t->cap_slots = cap;
    }
    if (t->cap_arrays < t->cap_slots) {
        size_t cap = t->cap_slots, dd = (size_t)t->m.d_out;
        free(t->slot_text);
        free(t->slot_key);
        free(t->slot_max);
        free(t->slot_st);
        free(t->lens);
        free(t->offs);
        free(t->slot_of);
        gtr_free_aligned(t->emb);
        gtr_free_aligned(t->demb);
        gtr_free_aligned(t->cdemb);
        gtr_free_aligned(t->emb_pack);
        t->slot_text = gtr_xmalloc(cap * sizeof *t->slot_text, "batch", err);
        t->slot_key = gtr_xmalloc(cap * sizeof *t->slot_key, "batch", err);
        t->slot_max = gtr_xmalloc(cap * sizeof *t->slot_max, "batch", err);
        t->slot_st = gtr_xmalloc(cap * sizeof *t->slot_st, "batch", err);
        t->lens = gtr_xmalloc(cap * sizeof *t->lens, "batch", err);
        t->offs = gtr_xmalloc(cap * sizeof *t->offs, "batch", err);
        t->slot_of = gtr_xmalloc(cap * sizeof *t->slot_of, "batch", err);
        t->emb = gtr_malloc_aligned(cap * dd * sizeof(float), err);
        t->demb = gtr_malloc_aligned(cap * dd * sizeof(float), err);
        t->cdemb = gtr_malloc_aligned(cap * dd * sizeof(float), err);
        t->emb_pack = gtr_malloc_aligned(cap * dd * sizeof(float), err);
        t->cap_arrays = 0;
        if (!t->slot_text || !t->slot_key || !t->slot_max || !t->slot_st || !t->lens || !t->offs ||
            !t->slot_of || !t->emb || !t->demb || !t->cdemb || !t->emb_pack)
            return GTR_ERR_NOMEM; /* all reallocated next time */
        t->cap_arrays = cap;
    }
    size_t *ns = gtr_xrealloc(t->neg_start, (B + 1) * sizeof *ns, "batch", err);
    if (!ns) return GTR_ERR_NOMEM;
    t->neg_start = ns;
    return GTR_OK;
}

/* The example at position cursor of the data stream. */
static const gtr_tr_example *example_at(gtr_trainer *t, uint64_t cursor)
{
    size_t n = t->data->n_ex;
    uint64_t epoch = cursor / n;
    if (!t->perm_valid || t->perm_epoch != epoch) {
        gtr_tr_epoch_order(t->o.seed, epoch, n, t->perm);
        t->perm_epoch = epoch;
        t->perm_valid = true;
    }
    return &t->data->ex[t->perm[cursor % n]];
}

/* Choose the batch: slot texts and keys, negatives drawn without replacement. */
static gtr_status assemble(gtr_trainer *t, size_t *n_slots, gtr_error *err)
{
    size_t B = t->o.batch_size;
    /* count negatives first */
    size_t nn = 0, max_neg = 0;
    for (size_t b = 0; b < B; b++) {
        const gtr_tr_example *e = example_at(t, t->cursor + b);
        nn += GTR_MIN((size_t)e->n_neg, (size_t)t->o.n_negatives);
        max_neg = GTR_MAX(max_neg, (size_t)e->n_neg);
    }
    gtr_status st = reserve_slots(t, 2 * B + nn, B, err);
    if (st) return st;
    if (max_neg > t->cap_pick) {
        uint32_t *p = gtr_xrealloc(t->neg_pick, max_neg * sizeof *p, "negatives", err);
        if (!p) return GTR_ERR_NOMEM;
        t->neg_pick = p;
        t->cap_pick = max_neg;
    }
    size_t k = 0;
    for (size_t b = 0; b < B; b++) {
        const gtr_tr_example *e = example_at(t, t->cursor + b);
        t->slot_text[b] = e->query;
        t->slot_text[B + b] = e->pos;
        t->slot_max[b] = t->o.query_max_len;
        t->slot_max[B + b] = t->o.passage_max_len;
        t->neg_start[b] = k;
        size_t want = GTR_MIN((size_t)e->n_neg, (size_t)t->o.n_negatives);
        for (size_t i = 0; i < e->n_neg; i++) t->neg_pick[i] = t->data->negs[e->neg0 + i];
        for (size_t i = 0; i < want; i++) { /* partial Fisher-Yates */
            size_t r = i + (size_t)gtr_tr_rng_below(&t->rng, e->n_neg - i);
            uint32_t tmp = t->neg_pick[i];
            t->neg_pick[i] = t->neg_pick[r];
            t->neg_pick[r] = tmp;
            t->slot_text[2 * B + k] = t->neg_pick[i];
            t->slot_max[2 * B + k] = t->o.passage_max_len;
            k++;
        }
    }
    t->neg_start[B] = k;
    *n_slots = 2 * B + k;
    for (size_t s = 0; s < *n_slots; s++) t->slot_key[s] = t->slot_text[s];
    return GTR_OK;
}

/* Slot ranges [r[i][0], r[i][1]) for i < 3: a chunk's (or a rank's chunks') queries,
 * positives and negatives. */
typedef size_t slot_ranges[3][2];

typedef struct {
    gtr_trainer *t;
    const char *const *texts; /* gtr_trainer_encode: caller's texts, else slot texts */
    const size_t *lens;
    const size_t (*r)[2];
} tok_job;

/* The i-th slot of the ranges. */
static size_t range_slot(const size_t r[3][2], size_t i)
{
    for (int k = 0; k < 3; k++) {
        size_t n = r[k][1] - r[k][0];
        if (i < n) return r[k][0] + i;
        i -= n;
    }
    return SIZE_MAX;
}

static size_t range_count(const size_t r[3][2])
{
    return r[0][1] - r[0][0] + r[1][1] - r[1][0] + r[2][1] - r[2][0];
}

/* The slots of examples [b0, b1) of B: queries, positives, their negatives. */
static void example_ranges(const gtr_trainer *t, size_t b0, size_t b1, size_t B, slot_ranges r)
{
    r[0][0] = b0, r[0][1] = b1;
    r[1][0] = B + b0, r[1][1] = B + b1;
    r[2][0] = 2 * B + t->neg_start[b0], r[2][1] = 2 * B + t->neg_start[b1];
}

/* The text of slot s: the caller's (gtr_trainer_encode) or the batch's. */
static const char *slot_text(const gtr_trainer *t, const char *const *texts, const size_t *lens,
                             size_t s, size_t *len)
{
    if (!texts) return gtr_tr_text(t->data, t->slot_text[s], len);
    *len = lens ? lens[s] : strlen(texts[s]);
    return texts[s];
}

static void tok_task(void *ctx, size_t i, int tid)
{
    (void)tid;
    tok_job *j = ctx;
    size_t s = range_slot(j->r, i);
    gtr_trainer *t = j->t;
    size_t len;
    const char *txt = slot_text(t, j->texts, j->lens, s, &len);
    t->slot_st[s] = gtr_tokenizer_encode(t->tok, txt, len, t->slot_max[s], 1, &t->slot_ids[s], NULL);
}

static gtr_status tokenize_slots(gtr_trainer *t, const slot_ranges r, const char *const *texts,
                                 const size_t *lens, gtr_error *err)
{
    tok_job j = {t, texts, lens, r};
    size_t n = range_count(r);
    gtr_pool_for(t->pool, n, tok_task, &j);
    for (size_t i = 0; i < n; i++) {
        size_t s = range_slot(r, i);
        if (t->slot_st[s]) { /* again, serially, for the message */
            size_t len;
            const char *txt = slot_text(t, texts, lens, s, &len);
            gtr_status st = gtr_tokenizer_encode(t->tok, txt, len, t->slot_max[s], 1, &t->slot_ids[s], err);
            if (!st) st = gtr_seterr(err, t->slot_st[s], "tokenizer failed");
            return gtr_error_prefix(err, "text %zu", s);
        }
    }
    return GTR_OK;
}

/* Pack the slots of chunk [b0, b1) of B examples (its queries, positives, negatives) into
 * t->ids / lens / offs / slot_of; x describes them. all: every slot 0..n (encode). */
static gtr_status pack_chunk(gtr_trainer *t, size_t b0, size_t b1, size_t B, bool all, size_t n_all,
                             gtr_tr_texts *x, gtr_error *err)
{
    size_t n = 0, T = 0, max_len = 0;
    slot_ranges ranges = {{0, n_all}, {0, 0}, {0, 0}};
    if (!all) example_ranges(t, b0, b1, B, ranges);
    for (int r = 0; r < 3; r++)
        for (size_t s = ranges[r][0]; s < ranges[r][1]; s++) T += t->slot_ids[s].n;
    if (T > t->cap_ids) {
        int32_t *ids = gtr_xrealloc(t->ids, T * sizeof *ids, "token ids", err);
        if (!ids) return GTR_ERR_NOMEM;
        t->ids = ids;
        t->cap_ids = T;
    }
    T = 0;
    for (int r = 0; r < 3; r++)
        for (size_t s = ranges[r][0]; s < ranges[r][1]; s++) {
            const gtr_ids *v = &t->slot_ids[s];
            memcpy(t->ids + T, v->ids, v->n * sizeof *t->ids);
            t->lens[n] = v->n;
            t->offs[n] = T;
            t->slot_of[n] = s;
            max_len = GTR_MAX(max_len, v->n);
            T += v->n;
            n++;
        }
    x->n = n;
    x->T = T;
    x->max_len = max_len;
    x->ids = t->ids;
    x->lens = t->lens;
    x->offs = t->offs;
    return GTR_OK;
}

/* Copy the chunk's embeddings to their slots. */
static void scatter_emb(gtr_trainer *t, const gtr_tr_texts *x)
{
    size_t D = (size_t)t->m.d_out;
    for (size_t i = 0; i < x->n; i++)
        memcpy(t->emb + t->slot_of[i] * D, t->acts.emb + i * D, D * sizeof(float));
}

static void gather_demb(gtr_trainer *t, const gtr_tr_texts *x)
{
    size_t D = (size_t)t->m.d_out;
    for (size_t i = 0; i < x->n; i++)
        memcpy(t->cdemb + i * D, t->demb + t->slot_of[i] * D, D * sizeof(float));
}

/* Pass-1 embeddings of every rank's chunks: this rank's (packed in t->cdemb) all-gathered in
 * chunk order, then put in their slots. */
static gtr_status exchange_emb(gtr_trainer *t, size_t C, size_t mb, gtr_error *err)
{
    size_t B = t->o.batch_size, D = (size_t)t->m.d_out;
    int N = t->comm.n_ranks;
    size_t *counts = gtr_xmalloc((size_t)N * sizeof *counts, "counts", err);
    if (!counts) return GTR_ERR_NOMEM;
    for (int r = 0; r < N; r++) {
        size_t lo, hi;
        gtr_tr_rank_chunks(C, r, N, &lo, &hi);
        slot_ranges rr;
        example_ranges(t, GTR_MIN(B, lo * mb), GTR_MIN(B, hi * mb), B, rr);
        counts[r] = range_count(rr) * D * sizeof(float);
    }
    gtr_status st = gtr_tr_allgather(t, t->cdemb, t->emb_pack, counts, err);
    free(counts);
    if (st) return st;
    size_t i = 0;
    for (size_t c = 0; c < C; c++) {
        slot_ranges rr;
        example_ranges(t, c * mb, GTR_MIN(B, (c + 1) * mb), B, rr);
        for (size_t k = 0, n = range_count(rr); k < n; k++, i++)
            memcpy(t->emb + range_slot(rr, k) * D, t->emb_pack + i * D, D * sizeof(float));
    }
    return GTR_OK;
}

gtr_status gtr_trainer_step(gtr_trainer *t, gtr_train_step_info *info, gtr_error *err)
{
    if (!t) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_step: NULL trainer");
    double t0 = gtr_now_seconds();
    size_t B = t->o.batch_size, mb = t->o.micro_batch, n_slots, D = (size_t)t->m.d_out;
    int rank = t->comm.rank, N = t->comm.n_ranks;
    size_t chunks = (B + mb - 1) / mb, lo, hi;
    gtr_tr_rank_chunks(chunks, rank, N, &lo, &hi);
    slot_ranges mine;
    gtr_status st;
    if ((st = assemble(t, &n_slots, err))) return st;
    example_ranges(t, GTR_MIN(B, lo * mb), GTR_MIN(B, hi * mb), B, mine);
    if ((st = tokenize_slots(t, mine, NULL, NULL, err))) return st;
    /* buffers for the chunk gradients that are not summed at once (see replicas.c) */
    size_t n_buf = rank == 0 ? (hi - lo > 1) : hi - lo;
    if ((st = gtr_tr_reserve_grads(t, n_buf, err))) return st;
    size_t nn = n_slots - 2 * B;
    gtr_tr_keep keep = t->o.recompute ? GTR_TR_KEEP_INPUTS : GTR_TR_KEEP_ALL;
    gtr_tr_texts x;
    memset(t->m.g, 0, t->m.n_params * sizeof(float));
    if (chunks > 1) { /* pass 1: every embedding of the batch, keeping nothing */
        size_t packed = 0;
        for (size_t c = lo; c < hi; c++) {
            if ((st = pack_chunk(t, c * mb, GTR_MIN(B, (c + 1) * mb), B, false, 0, &x, err)) ||
                (st = gtr_tr_forward(&t->m, t->pool, &t->acts, &x, GTR_TR_KEEP_NONE, err)))
                return st;
            if (N == 1) {
                scatter_emb(t, &x);
            } else {
                memcpy(t->cdemb + packed * D, t->acts.emb, x.n * D * sizeof(float));
                packed += x.n;
            }
        }
        if (N > 1 && (st = exchange_emb(t, chunks, mb, err))) return st;
    }
    gtr_tr_loss_parts lp = {0, 0, 0};
    const uint64_t *k = t->slot_key;
    if (chunks > 1 && (st = gtr_tr_loss(t->pool, t->emb, t->emb + B * D, t->emb + 2 * B * D, B, nn, D,
                                        t->o.tau, k, k + B, k + 2 * B, t->demb, t->demb + B * D,
                                        t->demb + 2 * B * D, NULL, NULL, &lp, err)))
        return st;
    float *sum = t->m.g;
    for (size_t c = lo; c < hi; c++) {
        if ((st = pack_chunk(t, c * mb, GTR_MIN(B, (c + 1) * mb), B, false, 0, &x, err)) ||
            (st = gtr_tr_forward(&t->m, t->pool, &t->acts, &x, keep, err)))
            return st;
        if (chunks == 1) { /* the only chunk: its forward gives the loss's embeddings */
            scatter_emb(t, &x);
            if ((st = gtr_tr_loss(t->pool, t->emb, t->emb + B * D, t->emb + 2 * B * D, B, nn, D,
                                  t->o.tau, k, k + B, k + 2 * B, t->demb, t->demb + B * D,
                                  t->demb + 2 * B * D, NULL, NULL, &lp, err)))
                return st;
        }
        gather_demb(t, &x);
        /* rank 0's first chunk goes straight into the (zero) sum: 0 + g is g */
        float *into = rank == 0 ? (c == lo ? sum : t->cgrad[0]) : t->cgrad[c - lo];
        if (into != sum) memset(into, 0, t->m.n_params * sizeof(float));
        t->m.g = into;
        st = gtr_tr_backward(&t->m, t->pool, &t->acts, &x, t->cdemb, err);
        t->m.g = sum;
        if (st) return st;
        if (rank == 0 && c > lo) gtr_tr_fold(t->pool, sum, into, t->m.n_params);
    }
    uint64_t tokens = 0;
    for (size_t i = 0, n = range_count(mine); i < n; i++) tokens += t->slot_ids[range_slot(mine, i)].n;
    if (N > 1) {
        if ((st = gtr_tr_reduce_grads(t, rank == 0 ? 0 : hi - lo, err))) return st;
        /* the step's tokens and the loss (known where the first chunk was) for info */
        double mine_info[2] = {(double)tokens, lp.loss}, *all = gtr_xmalloc((size_t)N * sizeof mine_info, "info", err);
        size_t *counts = gtr_xmalloc((size_t)N * sizeof *counts, "counts", err);
        if (!all || !counts) st = GTR_ERR_NOMEM;
        for (int r = 0; !st && r < N; r++) counts[r] = sizeof mine_info;
        if (!st) st = gtr_tr_allgather(t, mine_info, all, counts, err);
        if (!st) {
            tokens = 0;
            for (int r = 0; r < N; r++) tokens += (uint64_t)all[2 * r];
            lp.loss = all[1]; /* rank 0 always has the first chunk */
        }
        free(all);
        free(counts);
        if (st) return st;
    }
    double lr = gtr_tr_lr(&t->o, t->step + 1);
    if ((st = gtr_tr_optim_step(&t->opt, &t->m, t->pool, lr, err))) return st;
    t->step++;
    t->cursor += B;
    if (info) {
        info->step = t->step;
        info->epoch = (double)t->cursor / (double)t->data->n_ex;
        info->loss = lp.loss;
        info->lr = lr;
        info->tokens = tokens;
        info->seconds = gtr_now_seconds() - t0;
    }
    return GTR_OK;
}

gtr_status gtr_trainer_encode(gtr_trainer *t, const char *const *texts, const size_t *lens,
                              size_t n, int is_query, float *out, gtr_error *err)
{
    if (!t || (n && (!texts || !out)))
        return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_encode: NULL argument");
    size_t D = (size_t)t->m.d_out;
    const size_t chunk = 64;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t k = GTR_MIN(chunk, n - i0);
        gtr_status st = reserve_slots(t, k, 1, err);
        if (st) return st;
        for (size_t s = 0; s < k; s++) t->slot_max[s] = is_query ? t->o.query_max_len : t->o.passage_max_len;
        gtr_tr_texts x;
        slot_ranges all = {{0, k}, {0, 0}, {0, 0}};
        if ((st = tokenize_slots(t, all, texts + i0, lens ? lens + i0 : NULL, err)) ||
            (st = pack_chunk(t, 0, 0, 0, true, k, &x, err)) ||
            (st = gtr_tr_forward(&t->m, t->pool, &t->acts, &x, GTR_TR_KEEP_NONE, err))) {
            if (n > chunk) gtr_error_prefix(err, "texts %zu-%zu", i0, i0 + k - 1);
            return st;
        }
        memcpy(out + i0 * D, t->acts.emb, k * D * sizeof(float));
    }
    return GTR_OK;
}

gtr_status gtr_trainer_save_model(const gtr_trainer *t, const char *out_dir, int overwrite,
                                  gtr_error *err)
{
    if (!t || !out_dir) return gtr_seterr(err, GTR_ERR_INVALID_ARG, "gtr_trainer_save_model: NULL argument");
    return gtr_tr_export(&t->m, t->init_dir, out_dir, overwrite != 0, err);
}
