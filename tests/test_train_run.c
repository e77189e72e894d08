/* test_train_run.c — the trainer as a whole, on gtr-tiny: training data readers (JSON lines,
 * BEIR qrels) and their errors; resuming from a checkpoint ends bit-identical to an
 * uninterrupted run (AdamW and Adafactor, micro-batches, hard negatives); the thread count and
 * the micro-batch size leave the loss unchanged (and the weights bit-identical for threads);
 * a checkpoint from other options or a damaged file is refused; the exported directory loads
 * in gtr with the very embeddings the trainer computes; duplicate texts in a batch are not
 * each other's negatives; mined negatives are the model's best-ranked non-relevant documents. */
#include "support/testutil.h"
#include "train/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *g_model; /* ../shared/models/gtr-tiny */
static char *g_texts; /* ../shared/tokenizer/texts.jsonl */

/* A JSON lines training file from texts.jsonl: example i = (text 3i, text 3i+1, [text 3i+2,
 * text 3i+3]). */
static char *make_jsonl(const char *name, size_t n)
{
    json_t **v;
    size_t nt = tu_json_lines(g_texts, &v);
    assert_true(nt >= 3 * n + 4);
    char *path = tu_tmp(name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        /* skip the edge-case lines at the top (empty texts etc. are fine, but keep it plain) */
        size_t b = 40 + 3 * i;
        json_t *o = json_pack("{s:O, s:O, s:[O, O]}", "query", v[b], "pos", v[b + 1], "neg", v[b + 2], v[b + 3]);
        char *s = json_dumps(o, JSON_COMPACT);
        fprintf(f, "%s\n", s);
        free(s);
        json_decref(o);
    }
    fclose(f);
    tu_json_lines_free(v, nt);
    return path;
}

static gtr_train_options small_options(gtr_optimizer kind)
{
    gtr_train_options o = gtr_train_default_options();
    o.optimizer = kind;
    o.batch_size = 6;
    o.micro_batch = 4; /* two chunks: the whole-batch loss path */
    o.n_negatives = 1;
    o.passage_max_len = 48;
    o.query_max_len = 24;
    o.total_steps = 6;
    o.warmup_steps = 2;
    o.seed = 7;
    o.n_threads = 2;
    return o;
}

static gtr_trainer *make_trainer(const gtr_train_data *d, const gtr_train_options *o)
{
    gtr_error e;
    gtr_trainer *t = gtr_trainer_create(g_model, d, o, &e);
    if (!t) fail_msg("%s", e.message);
    return t;
}

static void steps(gtr_trainer *t, int n, double *losses)
{
    gtr_error e;
    for (int i = 0; i < n; i++) {
        gtr_train_step_info info;
        TU_OK(gtr_trainer_step(t, &info, &e), &e);
        assert_true(isfinite(info.loss));
        if (losses) losses[i] = info.loss;
    }
}

static char *read_all(const char *path, size_t *len)
{
    char *d;
    gtr_error e;
    TU_OK(gtr_read_file(path, 0, &d, len, &e), &e);
    return d;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *da = read_all(a, &la), *db = read_all(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(da);
    free(db);
}

/* ---- data ------------------------------------------------------------------------------------ */

static void test_data_jsonl(void **s)
{
    (void)s;
    gtr_error e;
    char *p = make_jsonl("d.jsonl", 12);
    gtr_train_data *d = gtr_train_data_load_jsonl(p, &e);
    if (!d) fail_msg("%s", e.message);
    assert_int_equal(gtr_train_data_count(d), 12);
    assert_int_equal(gtr_train_data_count_negatives(d), 12);
    gtr_train_data_free(d);
    free(p);

    /* several positives: one example each; aliases; no negatives; blank lines skipped */
    p = tu_tmp("multi.jsonl");
    const char *txt = "{\"query\": \"q\", \"positive\": [\"a\", \"b\"], \"negatives\": [\"n\"]}\n\n"
                      "{\"query\": \"q2\", \"pos\": \"c\"}\n";
    tu_write(p, txt, strlen(txt));
    d = gtr_train_data_load_jsonl(p, &e);
    if (!d) fail_msg("%s", e.message);
    assert_int_equal(gtr_train_data_count(d), 3);
    assert_int_equal(gtr_train_data_count_negatives(d), 2);
    assert_int_equal(d->ex[0].query, d->ex[1].query); /* interned: the same text, one id */
    gtr_train_data_free(d);
    /* a byte order mark at the start of the file is skipped */
    txt = "\xef\xbb\xbf{\"query\": \"q\", \"pos\": \"a\"}\n";
    tu_write(p, txt, strlen(txt));
    d = gtr_train_data_load_jsonl(p, &e);
    if (!d) fail_msg("%s", e.message);
    assert_int_equal(gtr_train_data_count(d), 1);
    gtr_train_data_free(d);

    /* errors name file:line */
    static const char *const bad[] = {
        "{\"query\": \"q\", \"pos\": \"a\"}\n{\"query\": 3, \"pos\": \"a\"}\n",
        "{\"query\": \"q\", \"pos\": \"a\"}\n{\"query\": \"q\", \"pos\": []}\n",
        "{\"query\": \"q\", \"pos\": \"a\"}\n{\"query\": \"q\", \"pos\": \"a\", \"neg\": [1]}\n",
        "{\"query\": \"q\", \"pos\": \"a\"}\nnot json\n",
        "{\"query\": \"q\", \"pos\": \"a\"}\n[1, 2]\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tu_write(p, bad[i], strlen(bad[i]));
        d = gtr_train_data_load_jsonl(p, &e);
        assert_null(d);
        assert_int_equal(e.code, GTR_ERR_FORMAT);
        assert_non_null(strstr(e.message, "multi.jsonl:2"));
    }
    tu_write(p, "\n", 1);
    assert_null(gtr_train_data_load_jsonl(p, &e));
    assert_non_null(strstr(e.message, "no training examples"));
    free(p);
    char *missing = tu_tmp("absent.jsonl");
    assert_null(gtr_train_data_load_jsonl(missing, &e));
    assert_int_equal(e.code, GTR_ERR_IO);
    free(missing);
}

static void test_data_beir(void **s)
{
    (void)s;
    gtr_error e;
    char *dir = tu_shared("beir/scifact");
    gtr_train_data *d = gtr_train_data_load_beir(dir, "train", &e);
    if (!d) fail_msg("%s", e.message);
    assert_int_equal(gtr_train_data_count(d), 919); /* the judged pairs of qrels/train.tsv */
    assert_int_equal(gtr_train_data_count_negatives(d), 0);
    /* passages are (title + " " + text).strip() */
    size_t len;
    const char *pos = gtr_tr_text(d, d->ex[0].pos, &len);
    assert_true(len > 0 && pos[0] != ' ' && pos[len - 1] != ' ');
    gtr_train_data_free(d);
    assert_null(gtr_train_data_load_beir(dir, "nosuchsplit", &e));
    assert_non_null(strstr(e.message, "nosuchsplit"));
    free(dir);

    /* a judged document missing from the corpus is an error naming it */
    char *root = tu_tmp("beir"), *qd = tu_tmp("beir/qrels");
    assert_int_equal(tu_system("mkdir -p %s", qd), 0);
    char *c = tu_tmp("beir/corpus.jsonl"), *q = tu_tmp("beir/queries.jsonl"), *r = tu_tmp("beir/qrels/train.tsv");
    const char *corpus = "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"one\"}\n";
    const char *queries = "{\"_id\": \"q1\", \"text\": \"first\"}\n";
    const char *qrels = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\n";
    tu_write(c, corpus, strlen(corpus));
    tu_write(q, queries, strlen(queries));
    tu_write(r, qrels, strlen(qrels));
    assert_null(gtr_train_data_load_beir(root, "train", &e));
    assert_non_null(strstr(e.message, "'d2'"));
    free(root);
    free(qd);
    free(c);
    free(q);
    free(r);
}

/* ---- resume: bit-identical ------------------------------------------------------------------- */

static void check_resume(gtr_optimizer kind)
{
    gtr_error e;
    char *p = make_jsonl("r.jsonl", 10);
    gtr_train_data *d = gtr_train_data_load_jsonl(p, &e);
    assert_non_null(d);
    gtr_train_options o = small_options(kind);
    char *full = tu_tmp("full.ckpt"), *part = tu_tmp("part.ckpt"), *resumed = tu_tmp("resumed.ckpt");

    gtr_trainer *a = make_trainer(d, &o);
    double la[6], lb[6];
    steps(a, 6, la); /* 36 examples: crosses epoch boundaries (10 examples) */
    TU_OK(gtr_trainer_save_checkpoint(a, full, &e), &e);
    gtr_trainer_free(a);

    gtr_trainer *b = make_trainer(d, &o);
    steps(b, 4, lb);
    TU_OK(gtr_trainer_save_checkpoint(b, part, &e), &e);
    steps(b, 1, NULL); /* work after the checkpoint that an interruption loses */
    gtr_trainer_free(b);

    gtr_trainer *c = make_trainer(d, &o);
    TU_OK(gtr_trainer_load_checkpoint(c, part, &e), &e);
    assert_int_equal(gtr_trainer_step_count(c), 4);
    steps(c, 2, lb + 4);
    TU_OK(gtr_trainer_save_checkpoint(c, resumed, &e), &e);
    for (int i = 0; i < 6; i++) assert_true(la[i] == lb[i]);
    assert_same_file(full, resumed); /* parameters, optimizer state, position, RNG */
    /* and the training did something */
    assert_true(la[5] < la[0]);
    gtr_trainer_free(c);

    gtr_train_data_free(d);
    free(p);
    free(full);
    free(part);
    free(resumed);
}

static void test_resume_adafactor(void **s) { (void)s; check_resume(GTR_OPTIM_ADAFACTOR); }
static void test_resume_adamw(void **s) { (void)s; check_resume(GTR_OPTIM_ADAMW); }

/* ---- invariances ------------------------------------------------------------------------------- */

static void test_threads_and_micro_batch(void **s)
{
    (void)s;
    gtr_error e;
    char *p = make_jsonl("i.jsonl", 10);
    gtr_train_data *d = gtr_train_data_load_jsonl(p, &e);
    assert_non_null(d);
    char *c1 = tu_tmp("t1.ckpt"), *c3 = tu_tmp("t3.ckpt");
    gtr_train_options o = small_options(GTR_OPTIM_ADAFACTOR);
    double l1[3], l3[3], lm[3], lr[3];
    o.n_threads = 1;
    gtr_trainer *t = make_trainer(d, &o);
    steps(t, 3, l1);
    TU_OK(gtr_trainer_save_checkpoint(t, c1, &e), &e);
    gtr_trainer_free(t);
    o.n_threads = 3;
    t = make_trainer(d, &o);
    steps(t, 3, l3);
    TU_OK(gtr_trainer_save_checkpoint(t, c3, &e), &e);
    gtr_trainer_free(t);
    assert_same_file(c1, c3);
    /* recomputation changes no bit either */
    o.recompute = 1;
    t = make_trainer(d, &o);
    steps(t, 3, lr);
    TU_OK(gtr_trainer_save_checkpoint(t, c3, &e), &e);
    gtr_trainer_free(t);
    assert_same_file(c1, c3);
    /* one chunk instead of two: the same first loss (embeddings do not depend on their
     * neighbours), then only summation-order differences */
    o.recompute = 0;
    o.micro_batch = 0;
    t = make_trainer(d, &o);
    steps(t, 3, lm);
    gtr_trainer_free(t);
    for (int i = 0; i < 3; i++) assert_true(l1[i] == l3[i] && l1[i] == lr[i]);
    assert_true(lm[0] == l1[0]);
    for (int i = 1; i < 3; i++) assert_true(fabs(lm[i] - l1[i]) <= 1e-4 * fabs(l1[i]) + 1e-6);
    gtr_train_data_free(d);
    free(p);
    free(c1);
    free(c3);
}

/* ---- checkpoints refused ----------------------------------------------------------------------- */

static void test_checkpoint_errors(void **s)
{
    (void)s;
    gtr_error e;
    char *p = make_jsonl("c.jsonl", 8);
    gtr_train_data *d = gtr_train_data_load_jsonl(p, &e);
    assert_non_null(d);
    gtr_train_options o = small_options(GTR_OPTIM_ADAMW);
    char *ck = tu_tmp("e.ckpt");
    gtr_trainer *t = make_trainer(d, &o);
    steps(t, 1, NULL);
    TU_OK(gtr_trainer_save_checkpoint(t, ck, &e), &e);
    gtr_trainer_free(t);

    gtr_train_options o2 = o;
    o2.lr = 2e-3;
    t = make_trainer(d, &o2);
    assert_int_equal(gtr_trainer_load_checkpoint(t, ck, &e), GTR_ERR_MISMATCH);
    assert_non_null(strstr(e.message, "'lr'"));
    gtr_trainer_free(t);
    o2 = o;
    o2.n_threads = 1; /* threads are not part of the run's identity */
    o2.recompute = 1;
    t = make_trainer(d, &o2);
    TU_OK(gtr_trainer_load_checkpoint(t, ck, &e), &e);
    gtr_trainer_free(t);

    gtr_train_data *d2 = gtr_train_data_load_jsonl(p, &e); /* same data: fine */
    char *p2 = make_jsonl("c2.jsonl", 9);
    gtr_train_data *d3 = gtr_train_data_load_jsonl(p2, &e);
    t = make_trainer(d3, &o);
    assert_int_equal(gtr_trainer_load_checkpoint(t, ck, &e), GTR_ERR_MISMATCH);
    assert_non_null(strstr(e.message, "other data"));
    gtr_trainer_free(t);

    /* damaged: one flipped byte, or cut short */
    size_t len;
    char *bytes = read_all(ck, &len);
    char *bad = tu_tmp("bad.ckpt");
    bytes[len / 2] ^= 1;
    tu_write(bad, bytes, len);
    t = make_trainer(d2, &o);
    assert_int_equal(gtr_trainer_load_checkpoint(t, bad, &e), GTR_ERR_FORMAT);
    assert_non_null(strstr(e.message, "checksum"));
    bytes[len / 2] ^= 1;
    tu_write(bad, bytes, len / 3);
    assert_int_equal(gtr_trainer_load_checkpoint(t, bad, &e), GTR_ERR_FORMAT);
    tu_write(bad, "GTRTRAIN", 8);
    assert_int_equal(gtr_trainer_load_checkpoint(t, bad, &e), GTR_ERR_FORMAT);
    assert_int_equal(gtr_trainer_step_count(t), 0); /* nothing restored from a bad file */
    gtr_trainer_free(t);
    free(bytes);
    free(bad);
    gtr_train_data_free(d);
    gtr_train_data_free(d2);
    gtr_train_data_free(d3);
    free(p);
    free(p2);
    free(ck);
}

/* ---- export ------------------------------------------------------------------------------------ */

static void test_export_loads_in_gtr(void **s)
{
    (void)s;
    gtr_error e;
    char *p = make_jsonl("x.jsonl", 8);
    gtr_train_data *d = gtr_train_data_load_jsonl(p, &e);
    assert_non_null(d);
    gtr_train_options o = small_options(GTR_OPTIM_ADAFACTOR);
    o.passage_max_len = 512; /* the saved model's max_seq_length: same truncation both ways */
    o.query_max_len = 512;
    gtr_trainer *t = make_trainer(d, &o);
    steps(t, 2, NULL);
    char *out = tu_tmp("exported");
    TU_OK(gtr_trainer_save_model(t, out, 0, &e), &e);
    assert_int_equal(gtr_trainer_save_model(t, out, 0, &e), GTR_ERR_IO); /* exists */
    steps(t, 1, NULL);
    TU_OK(gtr_trainer_save_model(t, out, 1, &e), &e); /* replaced */

    gtr_model_options mo = gtr_model_default_options();
    mo.n_threads = 2;
    gtr_model *m = gtr_model_load(out, &mo, &e);
    if (!m) fail_msg("%s", e.message);
    assert_int_equal(gtr_model_dim(m), gtr_trainer_dim(t));
    json_t **v;
    size_t nt = tu_json_lines(g_texts, &v), n = GTR_MIN(nt, (size_t)70);
    const char **texts = calloc(n, sizeof *texts);
    size_t *lens = calloc(n, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        texts[i] = json_string_value(v[i]);
        lens[i] = json_string_length(v[i]);
    }
    size_t D = (size_t)gtr_model_dim(m);
    float *a = calloc(n * D, sizeof *a), *b = calloc(n * D, sizeof *b);
    TU_OK(gtr_model_encode(m, texts, lens, n, a, &e), &e);
    TU_OK(gtr_trainer_encode(t, texts, lens, n, 0, b, &e), &e);
    /* the same kernels and the same arithmetic: bit-identical */
    assert_memory_equal(a, b, n * D * sizeof *a);

    /* above the shard limit the encoder is written as transformers does it (shards + index)
     * and loads back to the same model */
    setenv("GTR_MAX_SHARD_BYTES", "1048576", 1);
    char *sh = tu_tmp("exported-sharded");
    gtr_status sst = gtr_trainer_save_model(t, sh, 0, &e);
    unsetenv("GTR_MAX_SHARD_BYTES");
    TU_OK(sst, &e);
    char *one = tu_tmp("exported-sharded/model.safetensors"), *idx = tu_tmp("exported-sharded/model.safetensors.index.json");
    struct stat sb0;
    assert_int_not_equal(stat(one, &sb0), 0);
    json_t *ij = gtr_json_load_file(idx, &e), *files = json_object(), *fv;
    assert_non_null(ij);
    const char *tn;
    json_object_foreach(json_object_get(ij, "weight_map"), tn, fv) json_object_set_new(files, json_string_value(fv), json_true());
    print_message("# exported in %zu shards of at most 1 MiB (a bigger tensor alone)\n", json_object_size(files));
    assert_true(json_object_size(files) >= 2);
    json_decref(files);
    json_decref(ij);
    gtr_model *ms = gtr_model_load(sh, &mo, &e);
    if (!ms) fail_msg("%s", e.message);
    float *c = calloc(n * D, sizeof *c);
    TU_OK(gtr_model_encode(ms, texts, lens, n, c, &e), &e);
    assert_memory_equal(a, c, n * D * sizeof *a);
    assert_true(gtr_model_fingerprint(ms) == gtr_model_fingerprint(m));
    free(c);
    gtr_model_free(ms);
    free(one);
    free(idx);
    free(sh);

    /* config.json says float32 now; spiece.model and the module configs came along */
    char *cfg = tu_tmp("exported/config.json");
    json_t *j = gtr_json_load_file(cfg, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "torch_dtype")), "float32");
    json_decref(j);
    struct stat sb;
    char *f1 = tu_tmp("exported/spiece.model"), *f2 = tu_tmp("exported/1_Pooling/config.json"),
         *f3 = tu_tmp("exported/2_Dense/model.safetensors"), *f4 = tu_tmp("exported.partial");
    assert_int_equal(stat(f1, &sb), 0);
    assert_int_equal(stat(f2, &sb), 0);
    assert_int_equal(stat(f3, &sb), 0);
    assert_int_not_equal(stat(f4, &sb), 0); /* no staging left behind */
    free(f1);
    free(f2);
    free(f3);
    free(f4);
    free(cfg);
    free(a);
    free(b);
    free(texts);
    free(lens);
    tu_json_lines_free(v, nt);
    gtr_model_free(m);
    gtr_trainer_free(t);
    gtr_train_data_free(d);
    free(out);
    free(p);
}

/* ---- loss: duplicates are not negatives --------------------------------------------------------- */

static void test_loss_duplicates(void **s)
{
    (void)s;
    gtr_error e;
    /* B = 3, 2 negatives, dim 4: example 1 repeats example 0's query; negative 1 is example 2's
     * positive text */
    const float q[12] = {1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0};
    const float p[12] = {0.6f, 0.8f, 0, 0, 0.8f, 0, 0.6f, 0, 0, 0.6f, 0.8f, 0};
    const float n[8] = {0, 0, 0, 1, 0, 0.6f, 0.8f, 0};
    uint64_t qk[3] = {10, 10, 11}, pk[3] = {20, 21, 22}, nk[2] = {30, 22};
    gtr_tr_loss_parts lp;
    double lq[3 * 5], lpp[3 * 3];
    TU_OK(gtr_tr_loss(NULL, q, p, n, 3, 2, 4, 0.5, qk, pk, nk, NULL, NULL, NULL, lq, lpp, &lp, &e), &e);
    /* masked: query 0 vs positive 1 and query 1 vs positive 0 (same query); query 2 vs
     * negative 1 (its own positive); positives 0/1 vs queries 1/0 */
    assert_true(isinf(lq[0 * 5 + 1]) && isinf(lq[1 * 5 + 0]) && isinf(lq[2 * 5 + 4]));
    assert_true(isinf(lpp[0 * 3 + 1]) && isinf(lpp[1 * 3 + 0]));
    assert_false(isinf(lq[0 * 5 + 2]) || isinf(lq[2 * 5 + 3]) || isinf(lpp[2 * 3 + 0]));
    /* the loss by hand over the unmasked entries */
    double want_q = 0, want_p = 0;
    for (int i = 0; i < 3; i++) {
        double mx = -INFINITY, sum = 0;
        for (int c = 0; c < 5; c++) mx = fmax(mx, lq[i * 5 + c]);
        for (int c = 0; c < 5; c++) sum += isinf(lq[i * 5 + c]) ? 0 : exp(lq[i * 5 + c] - mx);
        want_q += mx + log(sum) - lq[i * 5 + i];
        mx = -INFINITY;
        sum = 0;
        for (int c = 0; c < 3; c++) mx = fmax(mx, lpp[i * 3 + c]);
        for (int c = 0; c < 3; c++) sum += isinf(lpp[i * 3 + c]) ? 0 : exp(lpp[i * 3 + c] - mx);
        want_p += mx + log(sum) - lpp[i * 3 + i];
    }
    assert_true(fabs(lp.loss_q - want_q / 3) < 1e-12 && fabs(lp.loss_p - want_p / 3) < 1e-12);
    assert_true(fabs(lq[0 * 5 + 0] - 1.2) < 1e-6); /* q0·p0 / 0.5 */
}

/* ---- mining ----------------------------------------------------------------------------------- */

static void test_mine(void **s)
{
    (void)s;
    gtr_error e;
    json_t **v;
    size_t nt = tu_json_lines(g_texts, &v);
    char *root = tu_tmp("mine"), *qd = tu_tmp("mine/qrels");
    assert_int_equal(tu_system("mkdir -p %s", qd), 0);
    char *c = tu_tmp("mine/corpus.jsonl"), *q = tu_tmp("mine/queries.jsonl"), *r = tu_tmp("mine/qrels/train.tsv");
    FILE *fc = fopen(c, "w"), *fq = fopen(q, "w"), *fr = fopen(r, "w");
    assert_true(fc && fq && fr);
    const size_t ND = 30, NQ = 5;
    for (size_t i = 0; i < ND; i++) {
        json_t *o = json_pack("{s:s, s:O}", "title", "", "text", v[60 + i]);
        json_object_set_new(o, "_id", json_sprintf("d%zu", i));
        char *sj = json_dumps(o, JSON_COMPACT);
        fprintf(fc, "%s\n", sj);
        free(sj);
        json_decref(o);
    }
    fprintf(fr, "query-id\tcorpus-id\tscore\n");
    for (size_t i = 0; i < NQ; i++) {
        json_t *o = json_pack("{s:O}", "text", v[100 + i]);
        json_object_set_new(o, "_id", json_sprintf("q%zu", i));
        char *sj = json_dumps(o, JSON_COMPACT);
        fprintf(fq, "%s\n", sj);
        free(sj);
        json_decref(o);
        fprintf(fr, "q%zu\td%zu\t1\nq%zu\td%zu\t0\n", i, 3 * i, i, 3 * i + 1);
    }
    fclose(fc);
    fclose(fq);
    fclose(fr);

    gtr_model_options mo = gtr_model_default_options();
    mo.n_threads = 2;
    gtr_model *m = gtr_model_load(g_model, &mo, &e);
    assert_non_null(m);
    char *out = tu_tmp("mine/negs.jsonl");
    gtr_negatives_options opt = gtr_negatives_default_options();
    opt.k = 4;
    opt.skip = 1;
    gtr_negatives_stats st;
    TU_OK(gtr_negatives_mine(m, root, "train", &opt, out, &st, &e), &e);
    assert_int_equal(st.queries, NQ);
    assert_int_equal(st.docs, ND);
    assert_int_equal(st.negatives, NQ * 4);

    /* the expected negatives, by brute force over gtr_model_encode */
    size_t D = (size_t)gtr_model_dim(m);
    float *dv = calloc(ND * D, sizeof *dv), *qv = calloc(D, sizeof *qv);
    for (size_t i = 0; i < ND; i++) {
        const char *t = json_string_value(v[60 + i]);
        TU_OK(gtr_model_encode(m, &t, NULL, 1, dv + i * D, &e), &e); /* title "" + text: stripped */
    }
    json_t **lines;
    size_t nl = tu_json_lines(out, &lines);
    assert_int_equal(nl, NQ);
    for (size_t i = 0; i < NQ; i++) {
        const char *t = json_string_value(v[100 + i]);
        gtr_ids ids = {0};
        TU_OK(gtr_tokenizer_encode(gtr_model_tokenizer(m), t, strlen(t), 64, 1, &ids, &e), &e);
        const int32_t *pp = ids.ids;
        TU_OK(gtr_model_encode_ids(m, &pp, &ids.n, 1, qv, &e), &e);
        gtr_ids_free(&ids);
        float sc[64];
        int order[64];
        for (size_t k = 0; k < ND; k++) {
            float s2 = 0;
            for (size_t j = 0; j < D; j++) s2 += qv[j] * dv[k * D + j];
            sc[k] = s2;
            order[k] = (int)k;
        }
        for (size_t a = 1; a < ND; a++) /* stable insertion sort, score descending */
            for (size_t b = a; b > 0 && sc[order[b]] > sc[order[b - 1]]; b--) {
                int tmp = order[b];
                order[b] = order[b - 1];
                order[b - 1] = tmp;
            }
        json_t *negs = json_object_get(lines[i], "neg_ids"), *pos = json_object_get(lines[i], "pos_ids");
        assert_int_equal(json_array_size(pos), 1);
        char want_pos[16];
        snprintf(want_pos, sizeof want_pos, "d%zu", 3 * i);
        assert_string_equal(json_string_value(json_array_get(pos, 0)), want_pos);
        assert_int_equal(json_array_size(negs), 4);
        size_t got = 0, skipped = 0;
        for (size_t k = 0; k < ND && got < 4; k++) {
            if ((size_t)order[k] == 3 * i) continue; /* relevant: never a negative */
            if (skipped < 1) { /* --skip 1 */
                skipped++;
                continue;
            }
            char want[16];
            snprintf(want, sizeof want, "d%d", order[k]);
            assert_string_equal(json_string_value(json_array_get(negs, got)), want);
            got++;
        }
    }
    /* and the file is training data */
    gtr_train_data *d = gtr_train_data_load_jsonl(out, &e);
    assert_non_null(d);
    assert_int_equal(gtr_train_data_count(d), NQ);
    assert_int_equal(gtr_train_data_count_negatives(d), NQ);
    gtr_train_data_free(d);
    tu_json_lines_free(lines, nl);
    free(dv);
    free(qv);
    gtr_model_free(m);
    tu_json_lines_free(v, nt);
    free(out);
    free(root);
    free(qd);
    free(c);
    free(q);
    free(r);
}

int main(void)
{
    g_model = tu_shared("models/gtr-tiny");
    g_texts = tu_shared("tokenizer/texts.jsonl");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_jsonl),
        cmocka_unit_test(test_data_beir),
        cmocka_unit_test(test_resume_adafactor),
        cmocka_unit_test(test_resume_adamw),
        cmocka_unit_test(test_threads_and_micro_batch),
        cmocka_unit_test(test_checkpoint_errors),
        cmocka_unit_test(test_export_loads_in_gtr),
        cmocka_unit_test(test_loss_duplicates),
        cmocka_unit_test(test_mine),
    };
    int rc = cmocka_run_group_tests_name("train_run", tests, NULL, NULL);
    free(g_model);
    free(g_texts);
    return rc;
}
