/* porter.c — the Porter (1980) suffix-stripping stemmer as Lucene's PorterStemFilter applies
 * it: Martin Porter's own C release, which departs from the paper in two places ("-bli" →
 * "-ble" instead of "-abli" → "-able", and "-logi" → "-log"). It works on code points; any
 * character other than a, e, i, o, u (and y after a consonant) is a consonant, as in Lucene,
 * which sees UTF-16 units. */
#include "bm25/analyzer.h"

#include <string.h>

typedef struct stem {
    uint32_t *b;
    long k; /* index of the last character of the word */
    long j; /* end of the stem before a suffix found by ends() */
} stem;

static bool cons(const stem *z, long i)
{
    switch (z->b[i]) {
    case 'a': case 'e': case 'i': case 'o': case 'u': return false;
    case 'y': return i == 0 ? true : !cons(z, i - 1);
    default: return true;
    }
}

/* The number of vowel-consonant sequences in b[0..j]: [C](VC)^m[V]. */
static int measure(const stem *z)
{
    int n = 0;
    long i = 0;
    for (;; i++) {
        if (i > z->j) return n;
        if (!cons(z, i)) break;
    }
    i++;
    for (;;) {
        for (;; i++) {
            if (i > z->j) return n;
            if (cons(z, i)) break;
        }
        i++;
        n++;
        for (;; i++) {
            if (i > z->j) return n;
            if (!cons(z, i)) break;
        }
        i++;
    }
}

static bool vowel_in_stem(const stem *z)
{
    for (long i = 0; i <= z->j; i++)
        if (!cons(z, i)) return true;
    return false;
}

static bool double_cons(const stem *z, long i)
{
    return i >= 1 && z->b[i] == z->b[i - 1] && cons(z, i);
}

/* consonant-vowel-consonant ending at i, the last consonant not w, x or y (hop, not snow) */
static bool cvc(const stem *z, long i)
{
    if (i < 2 || !cons(z, i) || cons(z, i - 1) || !cons(z, i - 2)) return false;
    uint32_t c = z->b[i];
    return c != 'w' && c != 'x' && c != 'y';
}

/* Does b[0..k] end with s? If so j marks where the stem before it ends. */
static bool ends(stem *z, const char *s)
{
    long l = (long)strlen(s), o = z->k - l + 1;
    if (o < 0) return false;
    for (long i = 0; i < l; i++)
        if (z->b[o + i] != (uint32_t)(unsigned char)s[i]) return false;
    z->j = z->k - l;
    return true;
}

/* Replace b[j+1..k] with s. */
static void set_to(stem *z, const char *s)
{
    long l = (long)strlen(s);
    for (long i = 0; i < l; i++) z->b[z->j + 1 + i] = (uint32_t)(unsigned char)s[i];
    z->k = z->j + l;
}

static void replace_if_m(stem *z, const char *s)
{
    if (measure(z) > 0) set_to(z, s);
}

/* Plurals and -ed / -ing: caresses → caress, ponies → poni, agreed → agree, hopping → hop. */
static void step1ab(stem *z)
{
    uint32_t *b = z->b;
    if (b[z->k] == 's') {
        if (ends(z, "sses")) z->k -= 2;
        else if (ends(z, "ies")) set_to(z, "i");
        else if (b[z->k - 1] != 's') z->k--;
    }
    if (ends(z, "eed")) {
        if (measure(z) > 0) z->k--;
    } else if ((ends(z, "ed") || ends(z, "ing")) && vowel_in_stem(z)) {
        z->k = z->j;
        if (ends(z, "at")) set_to(z, "ate");
        else if (ends(z, "bl")) set_to(z, "ble");
        else if (ends(z, "iz")) set_to(z, "ize");
        else if (double_cons(z, z->k)) {
            uint32_t c = b[z->k];
            if (c != 'l' && c != 's' && c != 'z') z->k--;
        } else if (measure(z) == 1 && cvc(z, z->k)) {
            z->j = z->k;
            set_to(z, "e");
        }
    }
}

/* Terminal y to i when the stem has a vowel: happy → happi. */
static void step1c(stem *z)
{
    if (ends(z, "y") && vowel_in_stem(z)) z->b[z->k] = 'i';
}

typedef struct rule {
    const char *suffix, *repl;
} rule;

/* Try rules in order; the first suffix that matches ends the step, replaced or not. */
static void apply_first(stem *z, const rule *rules)
{
    for (; rules->suffix; rules++)
        if (ends(z, rules->suffix)) {
            replace_if_m(z, rules->repl);
            return;
        }
}

/* Double suffixes to single ones: -ization → -ize, -ational → -ate, ... (m > 0). The rule
 * list is chosen by the penultimate letter, as in Porter's code. */
static void step2(stem *z)
{
    static const rule a[] = {{"ational", "ate"}, {"tional", "tion"}, {0, 0}};
    static const rule c[] = {{"enci", "ence"}, {"anci", "ance"}, {0, 0}};
    static const rule e[] = {{"izer", "ize"}, {0, 0}};
    static const rule l[] = {{"bli", "ble"}, {"alli", "al"}, {"entli", "ent"}, {"eli", "e"}, {"ousli", "ous"}, {0, 0}};
    static const rule o[] = {{"ization", "ize"}, {"ation", "ate"}, {"ator", "ate"}, {0, 0}};
    static const rule s[] = {{"alism", "al"}, {"iveness", "ive"}, {"fulness", "ful"}, {"ousness", "ous"}, {0, 0}};
    static const rule t[] = {{"aliti", "al"}, {"iviti", "ive"}, {"biliti", "ble"}, {0, 0}};
    static const rule g[] = {{"logi", "log"}, {0, 0}};
    if (z->k == 0) return;
    switch (z->b[z->k - 1]) {
    case 'a': apply_first(z, a); break;
    case 'c': apply_first(z, c); break;
    case 'e': apply_first(z, e); break;
    case 'l': apply_first(z, l); break;
    case 'o': apply_first(z, o); break;
    case 's': apply_first(z, s); break;
    case 't': apply_first(z, t); break;
    case 'g': apply_first(z, g); break;
    default: break;
    }
}

/* -ic-, -full, -ness etc. (m > 0), chosen by the last letter. */
static void step3(stem *z)
{
    static const rule e[] = {{"icate", "ic"}, {"ative", ""}, {"alize", "al"}, {0, 0}};
    static const rule i[] = {{"iciti", "ic"}, {0, 0}};
    static const rule l[] = {{"ical", "ic"}, {"ful", ""}, {0, 0}};
    static const rule s[] = {{"ness", ""}, {0, 0}};
    switch (z->b[z->k]) {
    case 'e': apply_first(z, e); break;
    case 'i': apply_first(z, i); break;
    case 'l': apply_first(z, l); break;
    case 's': apply_first(z, s); break;
    default: break;
    }
}

/* -ant, -ence, ... removed when the stem has m > 1. */
static void step4(stem *z)
{
    if (z->k == 0) return;
    bool found;
    switch (z->b[z->k - 1]) {
    case 'a': found = ends(z, "al"); break;
    case 'c': found = ends(z, "ance") || ends(z, "ence"); break;
    case 'e': found = ends(z, "er"); break;
    case 'i': found = ends(z, "ic"); break;
    case 'l': found = ends(z, "able") || ends(z, "ible"); break;
    case 'n': found = ends(z, "ant") || ends(z, "ement") || ends(z, "ment") || ends(z, "ent"); break;
    case 'o':
        /* -ion only after s or t */
        found = (ends(z, "ion") && z->j >= 0 && (z->b[z->j] == 's' || z->b[z->j] == 't')) || ends(z, "ou");
        break;
    case 's': found = ends(z, "ism"); break;
    case 't': found = ends(z, "ate") || ends(z, "iti"); break;
    case 'u': found = ends(z, "ous"); break;
    case 'v': found = ends(z, "ive"); break;
    case 'z': found = ends(z, "ize"); break;
    default: found = false; break;
    }
    if (found && measure(z) > 1) z->k = z->j;
}

/* A final -e when m > 1 (or m == 1 and not *o), and -ll to -l when m > 1. */
static void step5(stem *z)
{
    z->j = z->k;
    if (z->b[z->k] == 'e') {
        int a = measure(z);
        if (a > 1 || (a == 1 && !cvc(z, z->k - 1))) z->k--;
    }
    if (z->b[z->k] == 'l' && double_cons(z, z->k) && measure(z) > 1) z->k--;
}

size_t bm25_porter_stem(uint32_t *w, size_t n)
{
    if (n <= 2) return n;
    stem z = {w, (long)n - 1, 0};
    step1ab(&z);
    step1c(&z);
    step2(&z);
    step3(&z);
    step4(&z);
    step5(&z);
    return (size_t)(z.k + 1);
}
