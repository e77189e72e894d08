/*
 * cli.h — the gtr command-line tool: one small file per subcommand over the public API.
 * Commands return a process exit status (0 ok, 1 failure, 2 usage error).
 * Only gtr.h: cli/ (and mpi/, which reuses it) compiles without the library's src/ on the
 * include path, and tests/scripts/api_boundary.sh fails when a file here includes a src/
 * header or links a symbol that libgtr.so does not export. What a command needs from the
 * library is public (documented in gtr.h) or done inside the library.
 */
#ifndef GTR_CLI_H
#define GTR_CLI_H

#include "gtr.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

/* Print "gtr <cmd>: <message>" for a failed library call; returns 1. */
int cli_fail(const char *cmd, const gtr_error *err);
/* Print "gtr <cmd>: <formatted message>"; returns status. */
int cli_errorf(const char *cmd, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* GTR_CPU, when set and not empty, must name a path (gtr_cpu_check_env): the kernels take any
 * other value for the lowest path, tens of times slower, so a typo is refused here with one line (prog: "gtr" or "gtr-mpi"; NULL: refused without a word, for the ranks other
 * than 0). False when refused. */
bool cli_check_cpu_env(const char *prog);
/* Parse integer / float option values strictly; on error print a usage message, return false. */
bool cli_parse_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
                   long long *out);
bool cli_parse_double(const char *cmd, const char *opt, const char *s, double *out);
/* Tokenizer compatibility: v (an option's value: "hf", "0.2.2", ...) or, when v is NULL, the
 * environment's GTR_SPM_COMPAT, else the default (0.1). False, with a message, when invalid. */
bool cli_spm_compat(const char *cmd, const char *v, gtr_spm_compat *out);
/* The model options every command starts from: the library's defaults plus GTR_SPM_COMPAT.
 * False, with a message, when the environment holds an invalid value. */
bool cli_model_options(const char *cmd, gtr_model_options *mo);
/* GTR_NO_VERIFY set (not "" or "0"): load `gtr quantize` copies without their checksums. */
int cli_no_verify(void);
/* $GTR_MAX_MEMORY (bytes, or with K/M/G): the memory a model load may use (gtr_model_options
 * max_memory; unset: what the machine has left). false after printing the error. */
bool cli_max_memory(const char *cmd, size_t *out);
/* --dtype f32|bf16|int8 and --fusion rrf|interp; on error print a usage message, return false. */
bool cli_parse_dtype(const char *cmd, const char *s, gtr_compute_dtype *out);
bool cli_parse_fusion(const char *cmd, const char *s, gtr_fusion *out);
/* The build options `gtr index` and `gtr-mpi index` share: getopt_long values, their
 * `struct option` entries (CLI_INDEX_LONGOPTS, needs <getopt.h>), and cli_index_option, which
 * applies one (also -t): 1 applied, 0 not one of them, -1 invalid (message printed). */
enum { CLI_IX_STORE = 1100, CLI_IX_BATCH, CLI_IX_CKPT, CLI_IX_SNIP, CLI_IX_RESTART, CLI_IX_DTYPE, CLI_IX_MAXLEN };
#define CLI_INDEX_LONGOPTS                                                                          \
    {"store", required_argument, NULL, CLI_IX_STORE}, {"batch", required_argument, NULL, CLI_IX_BATCH}, \
    {"checkpoint", required_argument, NULL, CLI_IX_CKPT},                                          \
    {"snippet-bytes", required_argument, NULL, CLI_IX_SNIP},                                       \
    {"restart", no_argument, NULL, CLI_IX_RESTART}, {"threads", required_argument, NULL, 't'},     \
    {"dtype", required_argument, NULL, CLI_IX_DTYPE}, {"max-len", required_argument, NULL, CLI_IX_MAXLEN}
int cli_index_option(int c, const char *arg, gtr_index_build_options *o, gtr_model_options *mo);
/* The IVF build options `gtr ann-build` and `gtr-mpi ann-build` share (--lists, --iters,
 * --seed, --checkpoint, --restart): getopt_long values, CLI_ANN_BUILD_LONGOPTS, and
 * cli_ann_build_option (1 applied, 0 not one of them, -1 invalid: message printed under cmd). */
enum { CLI_A_LISTS = 1300, CLI_A_ITERS, CLI_A_SEED, CLI_A_CKPT, CLI_A_RESTART };
#define CLI_ANN_BUILD_LONGOPTS                                                                            \
    {"lists", required_argument, NULL, CLI_A_LISTS}, {"iters", required_argument, NULL, CLI_A_ITERS},     \
    {"seed", required_argument, NULL, CLI_A_SEED}, {"checkpoint", required_argument, NULL, CLI_A_CKPT},   \
    {"restart", no_argument, NULL, CLI_A_RESTART}
int cli_ann_build_option(const char *cmd, int c, const char *arg, gtr_ann_build_options *o);
/* The search options `gtr search` and `gtr-mpi search` share: their getopt_long values, the
 * `struct option` entries (CLI_SEARCH_LONGOPTS, needs <getopt.h>) and cli_search_option, which
 * applies one to a cli_search_args (from cli_search_args_init): 1 applied, 0 not one of them,
 * -1 invalid (message printed). */
enum { CLI_S_INDEX = 1200, CLI_S_METHOD, CLI_S_BM25, CLI_S_FUSION, CLI_S_ALPHA, CLI_S_RRFK, CLI_S_DEPTH,
       CLI_S_SKIP, CLI_S_COMPACT, CLI_S_TAG };
#define CLI_SEARCH_LONGOPTS                                                                               \
    {"index", required_argument, NULL, CLI_S_INDEX}, {"model", required_argument, NULL, 'm'},             \
    {"queries", required_argument, NULL, 'q'}, {"top", required_argument, NULL, 'k'},                     \
    {"output", required_argument, NULL, 'o'}, {"method", required_argument, NULL, CLI_S_METHOD},          \
    {"bm25-index", required_argument, NULL, CLI_S_BM25}, {"fusion", required_argument, NULL, CLI_S_FUSION}, \
    {"alpha", required_argument, NULL, CLI_S_ALPHA}, {"rrf-k", required_argument, NULL, CLI_S_RRFK},      \
    {"depth", required_argument, NULL, CLI_S_DEPTH}, {"skip-self", no_argument, NULL, CLI_S_SKIP},        \
    {"compact", no_argument, NULL, CLI_S_COMPACT}, {"tag", required_argument, NULL, CLI_S_TAG},           \
    {"threads", required_argument, NULL, 't'}
typedef struct cli_search_args {
    const char *index, *model, *queries, *out, *bm25, *tag;
    gtr_retrieve_options o; /* k 1000 unless given */
    bool k_given, skip_self;
    int threads;
} cli_search_args;
void cli_search_args_init(cli_search_args *a);
int cli_search_option(int c, const char *arg, cli_search_args *a);
/* After parsing: the index / BM25 index the method needs are given (else message, false). */
bool cli_search_check(const char *cmd, const cli_search_args *a);
/* Retrieval glue of `gtr search`, `gtr beir` and gtr-mpi over the library's retriever.
 * cli_load_query_model: the model for queries, model_dir or (NULL) the one the index records,
 * checked against the index. cli_retrieve: the queries through gtr_retriever_search with a
 * progress line (unless quiet or under two chunks of queries); *hits [count * o->k] and *n_hits
 * are malloc'd. cli_hits_run: the hits as a run (every query, its first max_rank hits). Each
 * prints its own error (NULL / 1 on failure). */
gtr_model *cli_load_query_model(const char *cmd, const char *model_dir, const gtr_index *ix, int threads,
                                gtr_pool *pool);
/* The query model's directory: model_dir, or (NULL) the one the index records when it is
 * there; NULL after a usage message (status 2) otherwise. */
const char *cli_query_model_dir(const char *cmd, const char *model_dir, const gtr_index *ix);
/* What a search runs over, opened and freed in one place for `gtr search`, `gtr beir` and
 * gtr-mpi search/beir: the dense index, its IVF index, the BM25 index, the query model and the
 * retriever over them. cli_parts_open opens, in this order, each part that is still NULL and
 * wanted: the dense index (w->index, with w->index_flags), the IVF index (w->ann, over the dense
 * one), the BM25 index (w->bm25, unless the method is dense), the query model (unless the method
 * is BM25: cli_load_query_model with w->model_dir). A part the caller set before (gtr beir's
 * cached indexes, a rank's piece of a sharded index) is kept and freed with the rest.
 * cli_parts_retriever then opens the retriever over whatever is open. Both return false after
 * one printed line: fail(fail_user, cmd, err) for a failed library call (NULL: cli_fail), the
 * model loader's own line for the model. cli_parts_free frees everything and zeroes *p. */
typedef struct cli_parts {
    gtr_index *dense;
    gtr_ann *ann;
    gtr_bm25 *bm25;
    gtr_model *model;
    gtr_retriever *rt;
    void (*fail)(const void *fail_user, const char *cmd, const gtr_error *err);
    const void *fail_user;
} cli_parts;
typedef struct cli_parts_want {
    const char *index, *ann, *bm25, *model_dir; /* NULL: none (model_dir: the index's) */
    unsigned index_flags;                        /* gtr_index_open's flags */
    gtr_retrieval_method method;
    int threads;
} cli_parts_want;
bool cli_parts_open(const char *cmd, cli_parts *p, const cli_parts_want *w, gtr_pool *pool);
bool cli_parts_retriever(const char *cmd, cli_parts *p, gtr_pool *pool);
void cli_parts_free(cli_parts *p);
int cli_retrieve(const char *cmd, gtr_retriever *r, const gtr_queries *q, const gtr_retrieve_options *o,
                 bool quiet, gtr_hit **hits, size_t **n_hits);
gtr_run *cli_hits_run(const char *cmd, const gtr_queries *q, const gtr_hit *hits, const size_t *n_hits, size_t k,
                      size_t max_rank);
/* A file of document ids, one per line (a CR before the newline and empty lines ignored):
 * *ids (NUL-terminated copies) and *lens, n of them; cli_ids_free releases them. False, with
 * a message, when the file cannot be read. */
bool cli_read_ids(const char *cmd, const char *path, char ***ids, size_t **lens, size_t *n);
void cli_ids_free(char **ids, size_t *lens, size_t n);
/* dir + "/" + name (one slash between), malloc'd; NULL, with a message, when out of memory. */
char *cli_path_join(const char *cmd, const char *dir, const char *name);
/* path + suffix (a side file: "<index>.fields", "<out>.ckpt"), malloc'd; NULL, with a message,
 * when out of memory. */
char *cli_path_suffixed(const char *cmd, const char *path, const char *suffix);
/* path names an existing regular file. */
bool cli_file_exists(const char *path);
/* A growable byte buffer, kept NUL-terminated once anything is in it; false when out of memory. */
typedef struct cli_buf {
    char *data;
    size_t len, cap;
} cli_buf;
bool cli_buf_reserve(cli_buf *b, size_t extra);
bool cli_buf_append(cli_buf *b, const void *p, size_t n);
void cli_buf_free(cli_buf *b);
/* Open an output file ("-" = stdout). */
FILE *cli_open_out(const char *cmd, const char *path);

/* Progress on stderr: a bar with rate and ETA when stderr is a terminal, else a line every
 * few seconds. Use cli_progress_cb as a gtr_progress_fn with a cli_progress * as user. */
typedef struct cli_progress {
    const char *label; /* "embedding" */
    const char *unit;  /* "texts" */
    double start, last;
    bool tty, quiet, drawn;
} cli_progress;
void cli_progress_init(cli_progress *p, const char *label, const char *unit, bool quiet);
int cli_progress_cb(void *user, uint64_t done, uint64_t total);
void cli_progress_done(cli_progress *p, uint64_t done);
/* Ctrl-C or SIGTERM (a batch system's notice) during a resumable job (gtr index, gtr beir's
 * index builds, gtr ann-build): between cli_stop_catch and cli_stop_restore, they only set a
 * flag, which cli_progress_stop_cb (cli_progress_cb, then non-zero once one arrived) hands to
 * the library: it checkpoints and stops with GTR_ERR_INTERRUPTED. */
typedef struct cli_stop_saved { struct sigaction sigint, sigterm; } cli_stop_saved;
void cli_stop_catch(cli_stop_saved *old);
void cli_stop_restore(const cli_stop_saved *old);
int cli_progress_stop_cb(void *user, uint64_t done, uint64_t total);
/* Seconds on a monotonic clock (for timings the commands print). */
double cli_now(void);

/* Subcommands (cli/cmd_*.c). */
int cmd_version(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_pull(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_bm25_index(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_beir(int argc, char **argv);
int cmd_pull_dataset(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_ann_build(int argc, char **argv);
int cmd_ann_tune(int argc, char **argv);
int cmd_ann_delete(int argc, char **argv);
int cmd_train(int argc, char **argv);
/* gtr train's body, shared with gtr-mpi train (dist NULL: one process). Under dist every rank
 * runs it with the same arguments and dist->comm attached to its trainer (data-parallel
 * training, see gtr_train_comm); rank 0 alone prints progress and writes the metrics log,
 * checkpoints and the model; every rank stops at the same step. */
typedef struct cli_train_dist {
    const char *cmd;             /* what messages start with after "gtr ": "train (rank 2)" */
    const gtr_train_comm *comm;
    /* collective, before any step: true on every rank only when every rank is ready and all
     * identities are equal (the implementation says which rank differs or failed) */
    bool (*agree)(void *user, bool ready, uint64_t identity);
    void *user;
} cli_train_dist;
int cli_train_main(int argc, char **argv, const cli_train_dist *dist);
int cmd_mine_negatives(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
