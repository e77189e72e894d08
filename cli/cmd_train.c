/* cmd_train.c — `gtr train`: contrastive fine-tuning of a GTR model (in-batch softmax with hard
 * negatives, Adafactor or AdamW) from a released checkpoint or a previous stage, writing the
 * same sentence-transformers layout. Checkpoints are written atomically every N steps and on
 * Ctrl-C/SIGTERM; --resume continues bit-identically. Progress on stderr, a JSON-lines metrics
 * log for plotting. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *out)
{
    fprintf(out,
        "usage: gtr train --init MODEL_DIR --data DATA --out DIR [options]\n"
        "\n"
        "Fine-tune a GTR model the way the paper does: queries and passages share the encoder;\n"
        "the loss is the bidirectional in-batch softmax (t5x_retrieval) with hard negatives,\n"
        "temperature 0.01; Adafactor (decay 0.8, update clipping 1.0, no momentum) or AdamW;\n"
        "learning rate with linear warm-up and linear decay. The result is a sentence-\n"
        "transformers directory (float32 safetensors) that gtr and Python load unchanged.\n"
        "\n"
        "Model and data:\n"
        "      --init DIR           model to start from (a released GTR, or a previous stage)\n"
        "  -d, --data PATH          training examples: a JSON lines file of\n"
        "                           {\"query\": ..., \"pos\": ... or [...], \"neg\": [...]}\n"
        "                           (`gtr mine-negatives` writes one), or a BEIR folder whose\n"
        "                           qrels/<split>.tsv pairs queries with relevant documents\n"
        "      --split NAME         BEIR qrels split (default train)\n"
        "  -o, --out DIR            where the trained model is written (atomically, at the end)\n"
        "      --overwrite          replace an existing DIR\n"
        "\n"
        "Training (defaults follow GTR fine-tuning where they can on a CPU):\n"
        "      --epochs X           passes over the examples (default 1); or\n"
        "      --steps N            optimizer steps (overrides --epochs)\n"
        "      --batch N            examples per step; every query sees every other example's\n"
        "                           passages as negatives (default 32; GTR used 512+)\n"
        "      --micro-batch N      examples per forward/backward that keeps activations\n"
        "                           (default: the whole batch). The loss stays the whole batch's:\n"
        "                           embeddings are computed first, then chunks backpropagate.\n"
        "                           Activation memory grows with micro-batch x tokens: about\n"
        "                           0.5 MB per token for gtr-t5-base (0.12 MB with --recompute);\n"
        "                           one more gradient buffer holds each chunk's gradient, summed\n"
        "                           in chunk order (so gtr-mpi train gives the same bits)\n"
        "      --negatives N        hard negatives drawn per example that has some (default 1)\n"
        "      --query-max-len N    tokens incl. </s> (default 64)\n"
        "      --passage-max-len N  (default 256)\n"
        "      --optimizer NAME     adafactor (default) or adamw\n"
        "      --lr X               peak learning rate (default 1e-3)\n"
        "      --warmup N           warm-up steps (default 0)\n"
        "      --schedule S         linear (decay to 0 at the last step, default) or constant\n"
        "      --tau X              softmax temperature (default 0.01)\n"
        "      --weight-decay X     AdamW decoupled decay (default 0.01)\n"
        "      --seed N             data order and negative sampling (default 0)\n"
        "      --recompute          keep only each layer's input and recompute the rest in\n"
        "                           backward: less memory for long passages, ~30%% slower\n"
        "\n"
        "Checkpoints and logs:\n"
        "      --checkpoint PATH    training state file (default DIR.ckpt)\n"
        "      --checkpoint-every N write it every N steps (default 100; 0: only when stopped)\n"
        "      --resume             continue from the checkpoint (same data and options);\n"
        "                           the result is bit-identical to an uninterrupted run\n"
        "      --metrics PATH       JSON lines per step: step, epoch, loss, lr, tokens, seconds,\n"
        "                           tokens_per_s, elapsed\n"
        "                           (default DIR.metrics.jsonl; \"-\" for none)\n"
        "      --log-every N        progress line every N steps when stderr is not a terminal\n"
        "                           (default 10)\n"
        "  -t, --threads N          worker threads (default: all cores; never changes results)\n"
        "  -q, --quiet              no progress\n"
        "  -h, --help               this help\n"
        "\n"
        "Ctrl-C (or SIGTERM, SIGUSR1) finishes the current step, writes the checkpoint and exits\n"
        "130. Under gtr-mpi, signal mpirun with SIGUSR1, which it forwards to every rank: after\n"
        "its SIGTERM the ranks get SIGTERM and then SIGKILL, each --mca odls_base_sigkill_timeout\n"
        "seconds (1 by default) later, which kills a longer step before its checkpoint.\n"
        "\n"
        "Examples:\n"
        "  gtr train --init gtr-t5-base -d datasets/scifact -o scifact-gtr --epochs 3 --batch 64\n"
        "  gtr mine-negatives -m scifact-gtr -d datasets/scifact -o negs.jsonl\n"
        "  gtr train --init scifact-gtr -d negs.jsonl -o scifact-gtr2 --epochs 1\n");
}

typedef struct opts {
    const char *init, *data, *split, *out, *ckpt, *metrics;
    double epochs;
    long long steps, ckpt_every, log_every, threads;
    bool overwrite, resume, quiet;
    gtr_train_options t;
} opts;

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { stop_signal = sig; }

enum {
    O_INIT = 256, O_SPLIT, O_OVERWRITE, O_EPOCHS, O_STEPS, O_BATCH, O_MICRO, O_NEG, O_QLEN,
    O_PLEN, O_OPT, O_LR, O_WARMUP, O_SCHED, O_TAU, O_WD, O_SEED, O_RECOMPUTE, O_CKPT,
    O_CKPT_EVERY, O_RESUME, O_METRICS, O_LOG_EVERY, O_THREADS
};

static int parse(const char *cmd, int argc, char **argv, opts *o)
{
    static const struct option longs[] = {
        {"init", required_argument, 0, O_INIT},       {"data", required_argument, 0, 'd'},
        {"split", required_argument, 0, O_SPLIT},     {"out", required_argument, 0, 'o'},
        {"overwrite", no_argument, 0, O_OVERWRITE},   {"epochs", required_argument, 0, O_EPOCHS},
        {"steps", required_argument, 0, O_STEPS},     {"batch", required_argument, 0, O_BATCH},
        {"micro-batch", required_argument, 0, O_MICRO}, {"negatives", required_argument, 0, O_NEG},
        {"query-max-len", required_argument, 0, O_QLEN}, {"passage-max-len", required_argument, 0, O_PLEN},
        {"optimizer", required_argument, 0, O_OPT},   {"lr", required_argument, 0, O_LR},
        {"warmup", required_argument, 0, O_WARMUP},   {"schedule", required_argument, 0, O_SCHED},
        {"tau", required_argument, 0, O_TAU},         {"weight-decay", required_argument, 0, O_WD},
        {"seed", required_argument, 0, O_SEED},       {"recompute", no_argument, 0, O_RECOMPUTE},
        {"checkpoint", required_argument, 0, O_CKPT}, {"checkpoint-every", required_argument, 0, O_CKPT_EVERY},
        {"resume", no_argument, 0, O_RESUME},         {"metrics", required_argument, 0, O_METRICS},
        {"log-every", required_argument, 0, O_LOG_EVERY}, {"threads", required_argument, 0, 't'},
        {"quiet", no_argument, 0, 'q'},               {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->t = gtr_train_default_options();
    o->split = "train";
    o->epochs = 1;
    o->ckpt_every = 100;
    o->log_every = 10;
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:o:t:qh", longs, NULL)) != -1) {
        switch (c) {
        case O_INIT: o->init = optarg; break;
        case 'd': o->data = optarg; break;
        case O_SPLIT: o->split = optarg; break;
        case 'o': o->out = optarg; break;
        case O_OVERWRITE: o->overwrite = true; break;
        case O_EPOCHS:
            if (!cli_parse_double(cmd, "--epochs", optarg, &o->epochs)) return 2;
            if (!(o->epochs > 0 && o->epochs < 1e6)) return cli_errorf(cmd, 2, "--epochs must be > 0");
            break;
        case O_STEPS: if (!cli_parse_int(cmd, "--steps", optarg, 1, 1000000000LL, &o->steps)) return 2; break;
        case O_BATCH:
            if (!cli_parse_int(cmd, "--batch", optarg, 1, 1 << 20, &v)) return 2;
            o->t.batch_size = (size_t)v;
            break;
        case O_MICRO:
            if (!cli_parse_int(cmd, "--micro-batch", optarg, 0, 1 << 20, &v)) return 2;
            o->t.micro_batch = (size_t)v;
            break;
        case O_NEG:
            if (!cli_parse_int(cmd, "--negatives", optarg, 0, 1024, &v)) return 2;
            o->t.n_negatives = (int)v;
            break;
        case O_QLEN:
            if (!cli_parse_int(cmd, "--query-max-len", optarg, 2, 65536, &v)) return 2;
            o->t.query_max_len = (int)v;
            break;
        case O_PLEN:
            if (!cli_parse_int(cmd, "--passage-max-len", optarg, 2, 65536, &v)) return 2;
            o->t.passage_max_len = (int)v;
            break;
        case O_OPT:
            if (!strcmp(optarg, "adafactor")) o->t.optimizer = GTR_OPTIM_ADAFACTOR;
            else if (!strcmp(optarg, "adamw")) o->t.optimizer = GTR_OPTIM_ADAMW;
            else return cli_errorf(cmd, 2, "--optimizer must be adafactor or adamw, got '%s'", optarg);
            break;
        case O_LR:
            if (!cli_parse_double(cmd, "--lr", optarg, &o->t.lr)) return 2;
            if (!(o->t.lr >= 0 && o->t.lr < 1e3)) return cli_errorf(cmd, 2, "--lr must be >= 0");
            break;
        case O_WARMUP:
            if (!cli_parse_int(cmd, "--warmup", optarg, 0, 1000000000LL, &v)) return 2;
            o->t.warmup_steps = (uint64_t)v;
            break;
        case O_SCHED:
            if (!strcmp(optarg, "linear")) o->t.schedule = GTR_LR_LINEAR;
            else if (!strcmp(optarg, "constant")) o->t.schedule = GTR_LR_CONSTANT;
            else return cli_errorf(cmd, 2, "--schedule must be linear or constant, got '%s'", optarg);
            break;
        case O_TAU:
            if (!cli_parse_double(cmd, "--tau", optarg, &o->t.tau)) return 2;
            if (!(o->t.tau > 0 && o->t.tau < 1e6)) return cli_errorf(cmd, 2, "--tau must be > 0");
            break;
        case O_WD:
            if (!cli_parse_double(cmd, "--weight-decay", optarg, &o->t.weight_decay)) return 2;
            if (!(o->t.weight_decay >= 0 && o->t.weight_decay < 1e3)) return cli_errorf(cmd, 2, "--weight-decay must be >= 0");
            break;
        case O_SEED:
            if (!cli_parse_int(cmd, "--seed", optarg, 0, INT64_MAX, &v)) return 2;
            o->t.seed = (uint64_t)v;
            break;
        case O_RECOMPUTE: o->t.recompute = 1; break;
        case O_CKPT: o->ckpt = optarg; break;
        case O_CKPT_EVERY: if (!cli_parse_int(cmd, "--checkpoint-every", optarg, 0, 1000000000LL, &o->ckpt_every)) return 2; break;
        case O_RESUME: o->resume = true; break;
        case O_METRICS: o->metrics = optarg; break;
        case O_LOG_EVERY: if (!cli_parse_int(cmd, "--log-every", optarg, 1, 1000000000LL, &o->log_every)) return 2; break;
        case 't': if (!cli_parse_int(cmd, "--threads", optarg, 1, 4096, &o->threads)) return 2; break;
        case 'q': o->quiet = true; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return 2;
        }
    }
    if (!cli_spm_compat(cmd, NULL, &o->t.spm_compat)) return 2;
    if (optind < argc) return cli_errorf(cmd, 2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!o->init || !o->data || !o->out)
        return cli_errorf(cmd, 2, "--init, --data and --out are required (see --help)");
    return 0;
}

/* ---- metrics log ------------------------------------------------------------------------ */

/* Keep the lines of an existing log whose "step" is <= step (an interrupted run may have logged
 * steps after its last checkpoint), then open it for appending. */
static FILE *open_metrics(const char *cmd, const char *path, bool resume, uint64_t step)
{
    if (!resume) {
        FILE *f = fopen(path, "w");
        if (!f) cli_errorf(cmd, 1, "%s: cannot create: %s", path, strerror(errno));
        return f;
    }
    FILE *in = fopen(path, "r");
    char *kept = NULL;
    size_t kept_len = 0;
    if (in) {
        FILE *mem = open_memstream(&kept, &kept_len);
        char *line = NULL;
        size_t cap = 0;
        while (mem && getline(&line, &cap, in) > 0) {
            const char *s = strstr(line, "\"step\": ");
            if (s && strtoull(s + 8, NULL, 10) <= step) fputs(line, mem);
        }
        free(line);
        fclose(in);
        if (mem) fclose(mem);
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        free(kept);
        cli_errorf(cmd, 1, "%s: cannot create: %s", path, strerror(errno));
        return NULL;
    }
    if (kept) fwrite(kept, 1, kept_len, f);
    free(kept);
    fflush(f);
    return f;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(char *buf, size_t n, double s)
{
    if (!(s >= 0) || s > 3.6e6) {
        snprintf(buf, n, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, n, "%lds", t);
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Under dist: whether `mine` holds on any rank (collective: every rank calls it at the same
 * point). Without dist, `mine`. */
static bool any_rank(const cli_train_dist *dist, bool mine)
{
    if (!dist) return mine;
    const gtr_train_comm *c = dist->comm;
    unsigned char me = mine, all[4096];
    size_t counts[4096];
    if (c->n_ranks > 4096) return mine;
    for (int r = 0; r < c->n_ranks; r++) counts[r] = 1;
    if (c->allgather(c->user, &me, 1, all, counts)) return true; /* the next step reports it */
    for (int r = 0; r < c->n_ranks; r++)
        if (all[r]) return true;
    return false;
}

/* Whether any rank was asked to stop (every rank must stop at the same step). */
static bool stop_requested(const cli_train_dist *dist) { return any_rank(dist, stop_signal != 0); }

int cmd_train(int argc, char **argv) { return cli_train_main(argc, argv, NULL); }

int cli_train_main(int argc, char **argv, const cli_train_dist *dist)
{
    const char *cmd = dist ? dist->cmd : "train";
    bool lead = !dist || dist->comm->rank == 0; /* writes files, prints progress */
    opts o;
    int rc = parse(cmd, argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char ckpt_def[4096], metrics_def[4096];
    snprintf(ckpt_def, sizeof ckpt_def, "%s.ckpt", o.out);
    snprintf(metrics_def, sizeof metrics_def, "%s.metrics.jsonl", o.out);
    const char *ckpt = o.ckpt ? o.ckpt : ckpt_def;
    const char *metrics = o.metrics ? (strcmp(o.metrics, "-") ? o.metrics : NULL) : metrics_def;
    struct stat sb;
    gtr_error err = {0};
    gtr_train_data *data = NULL;
    gtr_trainer *t = NULL;
    FILE *mf = NULL;
    bool joined = false; /* this rank has taken part in dist->agree */
    if (!o.overwrite && stat(o.out, &sb) == 0) {
        rc = cli_errorf(cmd, 1, "%s already exists (use --overwrite to replace it)", o.out);
        goto done;
    }
    if (o.resume && stat(ckpt, &sb) != 0) {
        rc = cli_errorf(cmd, 1, "%s: no checkpoint to resume from", ckpt);
        goto done;
    }
    bool beir = stat(o.data, &sb) == 0 && S_ISDIR(sb.st_mode);
    data = beir ? gtr_train_data_load_beir(o.data, o.split, &err) : gtr_train_data_load_jsonl(o.data, &err);
    if (!data) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    size_t n_ex = gtr_train_data_count(data);
    o.t.n_threads = (int)o.threads;
    o.t.total_steps = o.steps > 0 ? (uint64_t)o.steps
                                  : (uint64_t)ceil(o.epochs * (double)n_ex / (double)o.t.batch_size);
    if (o.t.total_steps < 1) o.t.total_steps = 1;

    t = gtr_trainer_create(o.init, data, &o.t, &err);
    if (!t) {
        rc = cli_fail(cmd, &err);
        goto done;
    }
    if (o.resume) {
        if (gtr_trainer_load_checkpoint(t, ckpt, &err)) {
            rc = cli_fail(cmd, &err);
            goto done;
        }
    }
    if (dist) {
        /* every rank must train the same model on the same data with the same options, from
         * the same step (the caller compares the command lines too) */
        bool agreed = dist->agree(dist->user, true, gtr_trainer_fingerprint(t));
        joined = true;
        if (!agreed || gtr_trainer_set_comm(t, dist->comm, &err)) {
            rc = agreed ? cli_fail(cmd, &err) : 1;
            gtr_trainer_free(t);
            gtr_train_data_free(data);
            return rc;
        }
    }
    uint64_t start = gtr_trainer_step_count(t), total = o.t.total_steps;
    if (!lead) metrics = NULL, o.quiet = true;
    if (metrics && !(mf = open_metrics(cmd, metrics, o.resume, start))) {
        rc = 1;
        goto done;
    }
    if (!o.quiet)
        fprintf(stderr,
                "gtr train: %s, %zu examples (%zu with hard negatives) from %s\n"
                "  %llu steps of %zu examples (%.2f epochs)%s, %s lr %g (%s, warm-up %llu), tau %g, "
                "max length %d/%d, %zu parameters, %d threads\n",
                o.init, n_ex, gtr_train_data_count_negatives(data), o.data,
                (unsigned long long)total, o.t.batch_size,
                (double)total * (double)o.t.batch_size / (double)n_ex,
                o.resume ? " (resuming)" : "",
                o.t.optimizer == GTR_OPTIM_ADAMW ? "AdamW" : "Adafactor", o.t.lr,
                o.t.schedule == GTR_LR_CONSTANT ? "constant" : "linear decay",
                (unsigned long long)o.t.warmup_steps, o.t.tau, o.t.query_max_len,
                o.t.passage_max_len, gtr_trainer_n_params(t),
                o.threads > 0 ? (int)o.threads : gtr_cpu_cores());
    if (o.resume && !o.quiet)
        fprintf(stderr, "  resumed from %s at step %llu\n", ckpt, (unsigned long long)start);
    if (dist && !o.quiet)
        fprintf(stderr, "  data-parallel over %d ranks: micro-batches of %zu, %zu per step\n",
                dist->comm->n_ranks, o.t.micro_batch ? o.t.micro_batch : o.t.batch_size,
                o.t.micro_batch ? (o.t.batch_size + o.t.micro_batch - 1) / o.t.micro_batch : 1);

    /* SIGUSR1 too: mpirun forwards it to every rank and does nothing else, whereas after its
     * SIGTERM Open MPI's daemons send the ranks SIGCONT, SIGTERM and SIGKILL,
     * odls_base_sigkill_timeout seconds apart (1 s by default): too soon for a longer step to
     * finish and be checkpointed */
    struct sigaction sa, old_int, old_term, old_usr1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);
    bool tty = isatty(STDERR_FILENO), drawn = false;
    double t0 = now_s(), loss_avg = 0;
    uint64_t tokens_all = 0;
    gtr_train_step_info info = {0};
    bool stopping = false;
    for (uint64_t s = start; s < total && !(stopping = stop_requested(dist)); s++) {
        if (gtr_trainer_step(t, &info, &err)) {
            if (drawn) fputc('\n', stderr);
            rc = cli_fail(cmd, &err);
            goto restore;
        }
        tokens_all += info.tokens;
        double el = now_s() - t0, tps = info.seconds > 0 ? (double)info.tokens / info.seconds : 0;
        loss_avg = s == start ? info.loss : 0.9 * loss_avg + 0.1 * info.loss;
        if (mf) {
            fprintf(mf,
                    "{\"step\": %llu, \"epoch\": %.4f, \"loss\": %.6g, \"lr\": %.6g, \"tokens\": %llu, "
                    "\"seconds\": %.4f, \"tokens_per_s\": %.1f, \"elapsed\": %.2f}\n",
                    (unsigned long long)info.step, info.epoch, info.loss, info.lr,
                    (unsigned long long)info.tokens, info.seconds, tps, el);
            fflush(mf);
        }
        if (!o.quiet && (tty || info.step % (uint64_t)o.log_every == 0 || info.step == total || s == start)) {
            char eta[32];
            double per = el / (double)(info.step - start);
            fmt_time(eta, sizeof eta, per * (double)(total - info.step));
            fprintf(stderr, "%sstep %llu/%llu  epoch %.2f  loss %.4f (avg %.4f)  lr %.3g  %.0f tok/s  ETA %s%s",
                    tty ? "\r" : "", (unsigned long long)info.step, (unsigned long long)total,
                    info.epoch, info.loss, loss_avg, info.lr, el > 0 ? (double)tokens_all / el : 0.0,
                    eta, tty ? "   " : "\n");
            drawn = tty;
        }
        bool last = info.step == total;
        if (lead && !last && o.ckpt_every > 0 && info.step % (uint64_t)o.ckpt_every == 0 &&
            gtr_trainer_save_checkpoint(t, ckpt, &err)) {
            if (drawn) fputc('\n', stderr);
            rc = cli_fail(cmd, &err);
            goto restore;
        }
    }
    if (drawn) fputc('\n', stderr);
    if (stopping) {
        bool failed = lead && gtr_trainer_save_checkpoint(t, ckpt, &err) != GTR_OK;
        /* the other ranks wait for rank 0's checkpoint: mpirun ends the job when a rank exits
         * with a non-zero status, which must not be before the checkpoint is on disk */
        (void)any_rank(dist, failed);
        if (failed) {
            rc = cli_fail(cmd, &err);
            goto restore;
        }
        if (!lead) {
            rc = 130;
            goto restore;
        }
        fprintf(stderr, "gtr train: stopped at step %llu/%llu; checkpoint %s (continue with --resume)\n",
                (unsigned long long)gtr_trainer_step_count(t), (unsigned long long)total, ckpt);
        rc = 130;
        goto restore;
    }
    if (!lead) goto restore;
    if (gtr_trainer_save_model(t, o.out, o.overwrite, &err)) {
        rc = cli_fail(cmd, &err);
        goto restore;
    }
    (void)remove(ckpt); /* a finished run has nothing to resume */
    if (!o.quiet) {
        double el = now_s() - t0;
        fprintf(stderr, "gtr train: wrote %s (%llu steps, last loss %.4f; %.1f s, %.0f tokens/s)\n",
                o.out, (unsigned long long)gtr_trainer_step_count(t), info.loss, el,
                el > 0 ? (double)tokens_all / el : 0.0);
    }
restore:
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
done:
    if (dist && !joined) dist->agree(dist->user, false, 0); /* the others must not wait for this rank */
    if (mf) fclose(mf);
    gtr_trainer_free(t);
    gtr_train_data_free(data);
    return rc;
}
