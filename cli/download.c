/* download.c — progress bars and one line per file for `gtr pull` / `gtr pull-dataset`. */
#include "download.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void human(char *buf, size_t n, double v)
{
    static const char *const u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

/* End a redrawn bar's line before printing anything else. */
static void end_bar(dl_ui *ui)
{
    if (ui->prog.drawn) fputc('\n', stderr);
    ui->prog.drawn = false;
}

static void on_event(void *user, gtr_download_event ev, const char *name, uint64_t size,
                     const char *detail)
{
    dl_ui *ui = user;
    if (ui->quiet) return;
    char sz[32];
    human(sz, sizeof sz, (double)size);
    switch (ev) {
    case GTR_DOWNLOAD_RESOLVED:
        fprintf(stderr, "gtr %s: revision %s is commit %s\n", ui->cmd, name, detail);
        break;
    case GTR_DOWNLOAD_START:
        snprintf(ui->label, sizeof ui->label, "  %s", name);
        cli_progress_init(&ui->prog, ui->label, "B", false);
        ui->start = now();
        ui->resumed_at = size;
        if (size) fprintf(stderr, "  %s: %s already here from an earlier run\n", name, sz);
        break;
    case GTR_DOWNLOAD_DONE: {
        end_bar(ui);
        double el = now() - ui->start;
        if (el >= 1.0) {
            char rate[32];
            human(rate, sizeof rate, (double)(size - ui->resumed_at) / el);
            fprintf(stderr, "  %s  %s in %.1f s (%s/s)\n", name, sz, el, rate);
        } else {
            fprintf(stderr, "  %s  %s\n", name, sz);
        }
        break;
    }
    case GTR_DOWNLOAD_SKIPPED:
        end_bar(ui);
        fprintf(stderr, "  %s: %s\n", name, detail);
        break;
    case GTR_DOWNLOAD_RETRY:
        end_bar(ui);
        fprintf(stderr, "  %s: %s; retrying from byte %llu\n", name, detail, (unsigned long long)size);
        break;
    case GTR_DOWNLOAD_EXTRACT:
        end_bar(ui);
        snprintf(ui->label, sizeof ui->label, "  unpacking %s", name);
        cli_progress_init(&ui->prog, ui->label, "B", false);
        ui->start = now();
        ui->resumed_at = 0;
        fprintf(stderr, "  unpacking %s into %s\n", name, detail);
        break;
    case GTR_DOWNLOAD_PRESENT:
        fprintf(stderr, "gtr %s: %s already exists; nothing downloaded (--force downloads it again)\n",
                ui->cmd, detail);
        break;
    }
}

static int on_progress(void *user, uint64_t done, uint64_t total)
{
    dl_ui *ui = user;
    if (ui->quiet) return 0;
    /* Off a terminal the per-file line of the DONE event says it: no "100%" progress line. */
    if (!ui->prog.tty && total && done >= total) return 0;
    return cli_progress_cb(&ui->prog, done, total);
}

void dl_ui_attach(dl_ui *ui, const char *cmd, bool quiet, gtr_download_options *o)
{
    /* A peer closing a TLS connection must be an error to retry, not a SIGPIPE that kills us
     * (the library does not touch signal dispositions: that is the process owner's call). */
    signal(SIGPIPE, SIG_IGN);
    memset(ui, 0, sizeof *ui);
    ui->cmd = cmd;
    ui->quiet = quiet;
    cli_progress_init(&ui->prog, "", "B", quiet);
    o->progress = on_progress;
    o->on_event = on_event;
    o->user = ui;
}

char *dl_default_dir(const char *sub, const char *leaf)
{
    const char *home = getenv("GTR_HOME");
    size_t n = (home ? strlen(home) : 0) + strlen(sub) + (leaf ? strlen(leaf) : 0) + 4;
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s%s%s%s%s", home && *home ? home : "", home && *home ? "/" : "", sub,
             leaf ? "/" : "", leaf ? leaf : "");
    return p;
}

bool dl_parse_retries(const char *cmd, const char *s, int *out)
{
    long long v;
    if (!cli_parse_int(cmd, "--retries", s, 0, 1000, &v)) return false;
    *out = (int)v;
    return true;
}
