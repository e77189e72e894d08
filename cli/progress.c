/* progress.c — progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain
 * line every 10 s otherwise (logs stay readable). */
#include "cli.h"

#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, const char *label, const char *unit, bool quiet)
{
    p->label = label;
    p->unit = unit;
    p->start = p->last = cli_now();
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
    p->drawn = false;
}

static void fmt_eta(char *buf, size_t n, double s)
{
    if (s < 0 || s > 359999) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

/* Unit "B" (downloads) prints sizes as kB/MB/GB, decimal like curl and the hub. */
static void fmt_bytes(char *buf, size_t n, double v)
{
    static const char *const u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (v >= 1000 && i < 4) v /= 1000, i++;
    snprintf(buf, n, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

static int progress_bytes(cli_progress *p, uint64_t done, uint64_t total, double rate,
                          const char *eta)
{
    char d[32], t[32], r[32];
    fmt_bytes(d, sizeof d, (double)done);
    fmt_bytes(t, sizeof t, (double)total);
    fmt_bytes(r, sizeof r, rate);
    if (p->tty) {
        int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : (total ? '.' : ' ');
        bar[width] = '\0';
        if (total)
            fprintf(stderr, "\r%s [%s] %s/%s  %s/s  ETA %s   ", p->label, bar, d, t, r, eta);
        else
            fprintf(stderr, "\r%s %s  %s/s   ", p->label, d, r);
        p->drawn = true;
    } else if (total) {
        fprintf(stderr, "%s: %s/%s, %s/s, ETA %s\n", p->label, d, t, r, eta);
    } else {
        fprintf(stderr, "%s: %s, %s/s\n", p->label, d, r);
    }
    return 0;
}

int cli_progress_cb(void *user, uint64_t done, uint64_t total)
{
    cli_progress *p = user;
    if (p->quiet) return 0;
    double t = cli_now();
    double interval = p->tty ? 0.1 : 10.0;
    if (t - p->last < interval && !(total && done >= total)) return 0;
    p->last = t;
    double el = t - p->start, rate = el > 0 ? (double)done / el : 0;
    char eta[32];
    fmt_eta(eta, sizeof eta, total && rate > 0 ? (double)(total - done) / rate : -1);
    if (p->unit && !strcmp(p->unit, "B")) return progress_bytes(p, done, total, rate, eta);
    if (p->tty) {
        int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : 0;
        if (fill > width) fill = width;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : (total ? '.' : ' ');
        bar[width] = '\0';
        if (total)
            fprintf(stderr, "\r%s [%s] %llu/%llu %s  %.1f %s/s  ETA %s ", p->label, bar,
                    (unsigned long long)done, (unsigned long long)total, p->unit, rate, p->unit, eta);
        else
            fprintf(stderr, "\r%s %llu %s  %.1f %s/s ", p->label, (unsigned long long)done, p->unit,
                    rate, p->unit);
        p->drawn = true;
    } else {
        if (total)
            fprintf(stderr, "%s: %llu/%llu %s, %.1f %s/s, ETA %s\n", p->label, (unsigned long long)done,
                    (unsigned long long)total, p->unit, rate, p->unit, eta);
        else
            fprintf(stderr, "%s: %llu %s, %.1f %s/s\n", p->label, (unsigned long long)done, p->unit,
                    rate, p->unit);
    }
    return 0;
}

/* The one piece of process state the CLI keeps: a signal handler can only reach a global. */
static volatile sig_atomic_t stop_seen;
static void on_stop_signal(int sig)
{
    (void)sig;
    stop_seen = 1;
}

void cli_stop_catch(cli_stop_saved *old)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, &old->sigint);
    sigaction(SIGTERM, &sa, &old->sigterm);
}

void cli_stop_restore(const cli_stop_saved *old)
{
    sigaction(SIGINT, &old->sigint, NULL);
    sigaction(SIGTERM, &old->sigterm, NULL);
}

int cli_progress_stop_cb(void *user, uint64_t done, uint64_t total)
{
    cli_progress_cb(user, done, total);
    return stop_seen;
}

void cli_progress_done(cli_progress *p, uint64_t done)
{
    if (p->quiet) return;
    double el = cli_now() - p->start;
    if (p->drawn) fputc('\n', stderr);
    if (p->drawn || el >= 2.0)
        fprintf(stderr, "%s: %llu %s in %.1f s (%.1f %s/s)\n", p->label, (unsigned long long)done,
                p->unit, el, el > 0 ? (double)done / el : 0.0, p->unit);
}
