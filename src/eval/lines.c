/* lines.c — line and field splitting shared by the qrels and run readers. trec_eval splits
 * fields on C isspace(); we do the same, with the "C" locale's set spelled out so the result
 * never depends on the process locale. */
#include "eval/eval.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '\n';
}

void gtr_lines_init(gtr_lines *it, const char *text, size_t len)
{
    it->p = text;
    it->end = text + len;
    it->line = 0;
}

bool gtr_lines_next(gtr_lines *it, const char **s, size_t *n)
{
    if (it->p >= it->end) return false;
    const char *nl = memchr(it->p, '\n', (size_t)(it->end - it->p));
    const char *e = nl ? nl : it->end;
    *s = it->p;
    *n = (size_t)(e - it->p);
    if (*n && (*s)[*n - 1] == '\r') (*n)--;
    it->p = nl ? nl + 1 : it->end;
    it->line++;
    return true;
}

size_t gtr_split_fields(const char *s, size_t n, bool tabs, gtr_field *f, size_t max)
{
    size_t k = 0, i = 0;
    if (tabs) {
        for (;;) {
            size_t a = i;
            while (i < n && s[i] != '\t') i++;
            if (k < max) f[k] = (gtr_field){s + a, i - a};
            k++;
            if (i >= n) return k;
            i++; /* the tab */
        }
    }
    for (;;) {
        while (i < n && is_ws(s[i])) i++;
        if (i >= n) return k;
        size_t a = i;
        while (i < n && !is_ws(s[i])) i++;
        if (k < max) f[k] = (gtr_field){s + a, i - a};
        k++;
    }
}

bool gtr_line_skippable(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_ws(s[i])) i++;
    return i == n || s[i] == '#';
}

bool gtr_field_int(const gtr_field *f, long lo, long hi, long *out)
{
    char tmp[32];
    if (f->n == 0 || f->n >= sizeof tmp) return false;
    memcpy(tmp, f->s, f->n);
    tmp[f->n] = '\0';
    char *end;
    errno = 0;
    long v = strtol(tmp, &end, 10);
    if (errno || *end || end == tmp || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool gtr_field_double(const gtr_field *f, double *out)
{
    char tmp[64];
    if (f->n == 0 || f->n >= sizeof tmp) return false;
    memcpy(tmp, f->s, f->n);
    tmp[f->n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    /* ERANGE on underflow still yields the nearest value, which is what atof gives trec_eval;
     * only reject what is not a number at all. */
    if (*end || end == tmp || isnan(v)) return false;
    *out = v;
    return true;
}
