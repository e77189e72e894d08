/* torch_pickle.c — the pickled state dict inside pytorch_model.bin (torch_zip.c finds it and
 * the storages). Python's pickle is a small stack machine that can call any function; we run
 * only the opcodes a state dict uses and accept only four kinds of callables
 * (collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter and the
 * torch.*Storage types as persistent-id tags). Nothing is ever executed: REDUCE on an allowed
 * global just builds a plain value here. Every count, length and offset is checked; tensor
 * views are validated against their storage's size. */
#include "model/model_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- values -------------------------------------------------------------- */

typedef enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT, V_GLOBAL,
               V_STORAGE, V_TENSOR } vkind;
typedef enum { G_ORDERED_DICT, G_REBUILD_TENSOR_V2, G_REBUILD_PARAMETER, G_STORAGE } gkind;

typedef struct pval pval;
struct pval {
    vkind kind;
    union {
        int64_t i; /* V_BOOL, V_INT */
        double f;
        struct { const char *s; size_t len; } str; /* into the pickle bytes */
        struct { pval **v; size_t n, cap; } seq;   /* tuple, list; dict: key, value pairs */
        struct { gkind kind; gtr_dtype_id dtype; } glob;
        struct { gtr_dtype_id dtype; const char *key; size_t key_len; uint64_t numel; } storage;
        struct {
            pval *storage;
            uint64_t offset;
            int ndim;
            uint64_t shape[GTR_MAX_DIMS], stride[GTR_MAX_DIMS];
        } tensor;
    } u;
};

/* Far beyond any state dict (a few thousand values), small enough to bound memory on hostile
 * input. */
#define MAX_VALUES ((size_t)1 << 22)
#define MAX_MEMO ((size_t)1 << 22)

typedef struct {
    const uint8_t *p, *end, *start;
    const char *what;
    gtr_error *err;
    pval **all;
    size_t n_all, cap_all;
    pval **stack;
    size_t n_stack, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    pval **memo;
    size_t cap_memo, n_memo_set;
} vm;

static gtr_status fail(vm *m, gtr_status code, const char *msg, const char *detail)
{
    return gtr_seterr(m->err, code, "%s: data.pkl offset %zu: %s%s", m->what,
                      (size_t)(m->p - m->start), msg, detail ? detail : "");
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *na = realloc(*arr, nc * elem);
    if (!na) return false;
    *arr = na;
    *cap = nc;
    return true;
}

static pval *new_val(vm *m, vkind k)
{
    if (m->n_all >= MAX_VALUES) {
        fail(m, GTR_ERR_FORMAT, "too many objects for a state dict", NULL);
        return NULL;
    }
    if (!grow((void **)&m->all, &m->cap_all, m->n_all + 1, sizeof *m->all)) {
        gtr_seterr(m->err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pval *v = calloc(1, sizeof *v);
    if (!v) {
        gtr_seterr(m->err, GTR_ERR_NOMEM, "out of memory");
        return NULL;
    }
    v->kind = k;
    m->all[m->n_all++] = v;
    return v;
}

static gtr_status seq_push(vm *m, pval *seq, pval *v)
{
    if (!grow((void **)&seq->u.seq.v, &seq->u.seq.cap, seq->u.seq.n + 1, sizeof(pval *)))
        return gtr_seterr(m->err, GTR_ERR_NOMEM, "out of memory");
    seq->u.seq.v[seq->u.seq.n++] = v;
    return GTR_OK;
}

static void free_vals(vm *m)
{
    for (size_t i = 0; i < m->n_all; i++) {
        pval *v = m->all[i];
        if (v->kind == V_TUPLE || v->kind == V_LIST || v->kind == V_DICT) free(v->u.seq.v);
        free(v);
    }
    free(m->all);
    free(m->stack);
    free(m->marks);
    free(m->memo);
}

/* ---- stack ----------------------------------------------------------------- */

static size_t mark_base(const vm *m) { return m->n_marks ? m->marks[m->n_marks - 1] : 0; }

static gtr_status push(vm *m, pval *v)
{
    if (!v) return m->err->code ? m->err->code : GTR_ERR_FORMAT; /* the maker set the message */
    if (!grow((void **)&m->stack, &m->cap_stack, m->n_stack + 1, sizeof *m->stack))
        return gtr_seterr(m->err, GTR_ERR_NOMEM, "out of memory");
    m->stack[m->n_stack++] = v;
    return GTR_OK;
}

static pval *pop(vm *m)
{
    if (m->n_stack <= mark_base(m)) {
        fail(m, GTR_ERR_FORMAT, "stack underflow", NULL);
        return NULL;
    }
    return m->stack[--m->n_stack];
}

static pval *top(vm *m)
{
    if (m->n_stack <= mark_base(m)) {
        fail(m, GTR_ERR_FORMAT, "stack underflow", NULL);
        return NULL;
    }
    return m->stack[m->n_stack - 1];
}

/* Pop everything above the last MARK into a new tuple/list (and drop the mark). */
static pval *pop_mark_into(vm *m, vkind k)
{
    if (!m->n_marks) {
        fail(m, GTR_ERR_FORMAT, "no MARK on the stack", NULL);
        return NULL;
    }
    size_t base = m->marks[--m->n_marks];
    pval *v = new_val(m, k);
    if (!v) return NULL;
    for (size_t i = base; i < m->n_stack; i++)
        if (seq_push(m, v, m->stack[i])) return NULL;
    m->n_stack = base;
    return v;
}

/* ---- reading the opcode stream -------------------------------------------- */

static bool need(vm *m, size_t n)
{
    if ((size_t)(m->end - m->p) < n) {
        fail(m, GTR_ERR_FORMAT, "truncated pickle", NULL);
        return false;
    }
    return true;
}

static uint64_t rd_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static pval *make_int(vm *m, int64_t x)
{
    pval *v = new_val(m, V_INT);
    if (v) v->u.i = x;
    return v;
}

static pval *make_str(vm *m, size_t len_bytes)
{
    if (!need(m, (size_t)len_bytes)) return NULL;
    uint64_t n = rd_le(m->p, (int)len_bytes);
    m->p += len_bytes;
    if (n > (uint64_t)(m->end - m->p)) {
        fail(m, GTR_ERR_FORMAT, "string runs past the end of the pickle", NULL);
        return NULL;
    }
    pval *v = new_val(m, V_STR);
    if (!v) return NULL;
    v->u.str.s = (const char *)m->p;
    v->u.str.len = (size_t)n;
    m->p += n;
    return v;
}

static bool str_is(const pval *v, const char *s)
{
    return v && v->kind == V_STR && v->u.str.len == strlen(s) && !memcmp(v->u.str.s, s, v->u.str.len);
}

/* The only globals a state dict needs. Anything else is refused: loading it would mean
 * running code chosen by the file. */
static pval *make_global(vm *m, const char *mod, size_t mlen, const char *name, size_t nlen)
{
    static const struct {
        const char *mod, *name;
        gkind kind;
        gtr_dtype_id dtype;
    } allowed[] = {
        {"collections", "OrderedDict", G_ORDERED_DICT, GTR_DT_F32},
        {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2, GTR_DT_F32},
        {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER, GTR_DT_F32},
        {"torch", "FloatStorage", G_STORAGE, GTR_DT_F32},
        {"torch", "HalfStorage", G_STORAGE, GTR_DT_F16},
        {"torch", "BFloat16Storage", G_STORAGE, GTR_DT_BF16},
        {"torch", "DoubleStorage", G_STORAGE, GTR_DT_F64},
        {"torch", "LongStorage", G_STORAGE, GTR_DT_I64},
        {"torch", "IntStorage", G_STORAGE, GTR_DT_I32},
        {"torch", "ShortStorage", G_STORAGE, GTR_DT_I16},
        {"torch", "CharStorage", G_STORAGE, GTR_DT_I8},
        {"torch", "ByteStorage", G_STORAGE, GTR_DT_U8},
        {"torch", "BoolStorage", G_STORAGE, GTR_DT_BOOL},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (strlen(allowed[i].mod) == mlen && !memcmp(allowed[i].mod, mod, mlen) &&
            strlen(allowed[i].name) == nlen && !memcmp(allowed[i].name, name, nlen)) {
            pval *v = new_val(m, V_GLOBAL);
            if (v) {
                v->u.glob.kind = allowed[i].kind;
                v->u.glob.dtype = allowed[i].dtype;
            }
            return v;
        }
    char detail[300];
    snprintf(detail, sizeof detail, "'%.*s.%.*s' (only tensors and ordered dicts are read; no code "
             "from the file is run)", (int)GTR_MIN(mlen, 100), mod, (int)GTR_MIN(nlen, 100), name);
    fail(m, GTR_ERR_FORMAT, "refusing to load global ", detail);
    return NULL;
}

static bool as_u64(const pval *v, uint64_t *out)
{
    if (!v || (v->kind != V_INT && v->kind != V_BOOL) || v->u.i < 0) return false;
    *out = (uint64_t)v->u.i;
    return true;
}

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks
 * [, metadata]) */
static pval *rebuild_tensor(vm *m, const pval *args)
{
    if (args->u.seq.n < 6 || args->u.seq.n > 7) {
        fail(m, GTR_ERR_FORMAT, "_rebuild_tensor_v2 expects 6 or 7 arguments", NULL);
        return NULL;
    }
    pval *const *a = args->u.seq.v;
    if (a[0]->kind != V_STORAGE || a[2]->kind != V_TUPLE || a[3]->kind != V_TUPLE ||
        a[2]->u.seq.n != a[3]->u.seq.n) {
        fail(m, GTR_ERR_FORMAT, "_rebuild_tensor_v2: bad storage, size or stride", NULL);
        return NULL;
    }
    if (a[2]->u.seq.n > GTR_MAX_DIMS) {
        fail(m, GTR_ERR_FORMAT, "tensor has too many dimensions", NULL);
        return NULL;
    }
    pval *t = new_val(m, V_TENSOR);
    if (!t) return NULL;
    t->u.tensor.storage = a[0];
    t->u.tensor.ndim = (int)a[2]->u.seq.n;
    bool ok = as_u64(a[1], &t->u.tensor.offset);
    for (int i = 0; ok && i < t->u.tensor.ndim; i++)
        ok = as_u64(a[2]->u.seq.v[i], &t->u.tensor.shape[i]) &&
             as_u64(a[3]->u.seq.v[i], &t->u.tensor.stride[i]);
    if (!ok) {
        fail(m, GTR_ERR_FORMAT, "_rebuild_tensor_v2: offset, sizes and strides must be "
             "non-negative integers", NULL);
        return NULL;
    }
    return t;
}

static pval *reduce(vm *m, pval *fn, pval *args)
{
    if (fn->kind != V_GLOBAL || args->kind != V_TUPLE) {
        fail(m, GTR_ERR_FORMAT, "REDUCE on something that is not an allowed global", NULL);
        return NULL;
    }
    switch (fn->u.glob.kind) {
    case G_ORDERED_DICT:
        if (args->u.seq.n != 0) {
            fail(m, GTR_ERR_FORMAT, "OrderedDict with arguments", NULL);
            return NULL;
        }
        return new_val(m, V_DICT);
    case G_REBUILD_TENSOR_V2: return rebuild_tensor(m, args);
    case G_REBUILD_PARAMETER: /* _rebuild_parameter(data, requires_grad, backward_hooks) */
        if (args->u.seq.n != 3 || args->u.seq.v[0]->kind != V_TENSOR) {
            fail(m, GTR_ERR_FORMAT, "_rebuild_parameter expects (tensor, requires_grad, hooks)", NULL);
            return NULL;
        }
        return args->u.seq.v[0];
    case G_STORAGE: break;
    }
    fail(m, GTR_ERR_FORMAT, "a storage type cannot be called", NULL);
    return NULL;
}

/* BINPERSID: ('storage', <torch.*Storage>, key, location, numel) */
static pval *persistent_load(vm *m, pval *pid)
{
    if (pid->kind != V_TUPLE || pid->u.seq.n < 5 || !str_is(pid->u.seq.v[0], "storage") ||
        pid->u.seq.v[1]->kind != V_GLOBAL || pid->u.seq.v[1]->u.glob.kind != G_STORAGE ||
        pid->u.seq.v[2]->kind != V_STR) {
        fail(m, GTR_ERR_FORMAT, "persistent id is not a torch storage reference", NULL);
        return NULL;
    }
    pval *s = new_val(m, V_STORAGE);
    if (!s) return NULL;
    s->u.storage.dtype = pid->u.seq.v[1]->u.glob.dtype;
    s->u.storage.key = pid->u.seq.v[2]->u.str.s;
    s->u.storage.key_len = pid->u.seq.v[2]->u.str.len;
    if (!as_u64(pid->u.seq.v[4], &s->u.storage.numel)) {
        fail(m, GTR_ERR_FORMAT, "storage size is not a non-negative integer", NULL);
        return NULL;
    }
    return s;
}

static gtr_status memo_put(vm *m, uint64_t idx)
{
    pval *v = top(m);
    if (!v) return m->err->code;
    if (idx >= MAX_MEMO) return fail(m, GTR_ERR_FORMAT, "memo index too large", NULL);
    size_t old = m->cap_memo;
    if (!grow((void **)&m->memo, &m->cap_memo, (size_t)idx + 1, sizeof *m->memo))
        return gtr_seterr(m->err, GTR_ERR_NOMEM, "out of memory");
    if (m->cap_memo > old) memset(m->memo + old, 0, (m->cap_memo - old) * sizeof *m->memo);
    if (!m->memo[idx]) m->n_memo_set++;
    m->memo[idx] = v;
    return GTR_OK;
}

static gtr_status memo_get(vm *m, uint64_t idx)
{
    if (idx >= m->cap_memo || !m->memo[idx]) return fail(m, GTR_ERR_FORMAT, "memo entry missing", NULL);
    return push(m, m->memo[idx]);
}

#define ST(x)                                                                                  \
    do {                                                                                       \
        gtr_status st_ = (x);                                                                  \
        if (st_) return st_;                                                                   \
    } while (0)
#define ERRCODE (m->err->code ? m->err->code : GTR_ERR_FORMAT)
#define POP(var)                                                                               \
    pval *var = pop(m);                                                                        \
    if (!var) return ERRCODE

/* Run the opcode stream; the result of STOP in *result. */
static gtr_status run(vm *m, pval **result)
{
    while (m->p < m->end) {
        uint8_t op = *m->p++;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(m, 1)) return ERRCODE;
            if (*m->p > 5) return fail(m, GTR_ERR_FORMAT, "unknown pickle protocol", NULL);
            m->p++;
            break;
        case 0x95: /* FRAME: a length hint only */
            if (!need(m, 8)) return ERRCODE;
            m->p += 8;
            break;
        case '.': { /* STOP */
            POP(v);
            *result = v;
            return GTR_OK;
        }
        case '(': /* MARK */
            if (!grow((void **)&m->marks, &m->cap_marks, m->n_marks + 1, sizeof *m->marks))
                return gtr_seterr(m->err, GTR_ERR_NOMEM, "out of memory");
            m->marks[m->n_marks++] = m->n_stack;
            break;
        case '0': { /* POP */
            POP(v);
            (void)v;
            break;
        }
        case '1': /* POP_MARK */
            if (!m->n_marks) return fail(m, GTR_ERR_FORMAT, "no MARK on the stack", NULL);
            m->n_stack = m->marks[--m->n_marks];
            break;
        case '2': { /* DUP */
            pval *v = top(m);
            if (!v) return ERRCODE;
            ST(push(m, v));
            break;
        }
        case 'N': ST(push(m, new_val(m, V_NONE))); break;
        case 0x88: /* NEWTRUE */
        case 0x89: { /* NEWFALSE */
            pval *v = new_val(m, V_BOOL);
            if (v) v->u.i = op == 0x88;
            ST(push(m, v));
            break;
        }
        case 'J': /* BININT */
            if (!need(m, 4)) return ERRCODE;
            ST(push(m, make_int(m, (int32_t)(uint32_t)rd_le(m->p, 4))));
            m->p += 4;
            break;
        case 'K': /* BININT1 */
            if (!need(m, 1)) return ERRCODE;
            ST(push(m, make_int(m, *m->p++)));
            break;
        case 'M': /* BININT2 */
            if (!need(m, 2)) return ERRCODE;
            ST(push(m, make_int(m, (int64_t)rd_le(m->p, 2))));
            m->p += 2;
            break;
        case 0x8a: /* LONG1: n-byte two's complement */
        case 0x8b: { /* LONG4 */
            int lb = op == 0x8a ? 1 : 4;
            if (!need(m, (size_t)lb)) return ERRCODE;
            uint64_t n = rd_le(m->p, lb);
            m->p += lb;
            if (n > 8) return fail(m, GTR_ERR_FORMAT, "integer wider than 64 bits", NULL);
            if (!need(m, (size_t)n)) return ERRCODE;
            uint64_t u = rd_le(m->p, (int)n);
            if (n > 0 && n < 8 && (m->p[n - 1] & 0x80)) u |= ~(uint64_t)0 << (8 * n); /* sign */
            m->p += n;
            ST(push(m, make_int(m, (int64_t)u)));
            break;
        }
        case 'G': { /* BINFLOAT: big-endian double */
            if (!need(m, 8)) return ERRCODE;
            uint64_t u = 0;
            for (int i = 0; i < 8; i++) u = (u << 8) | m->p[i];
            m->p += 8;
            pval *v = new_val(m, V_FLOAT);
            if (v) memcpy(&v->u.f, &u, 8);
            ST(push(m, v));
            break;
        }
        case 'X': ST(push(m, make_str(m, 4))); break;     /* BINUNICODE */
        case 0x8c: ST(push(m, make_str(m, 1))); break;    /* SHORT_BINUNICODE */
        case 0x8d: ST(push(m, make_str(m, 8))); break;    /* BINUNICODE8 */
        case 'B': ST(push(m, make_str(m, 4))); break;     /* BINBYTES */
        case 'C': ST(push(m, make_str(m, 1))); break;     /* SHORT_BINBYTES */
        case 0x8e: ST(push(m, make_str(m, 8))); break;    /* BINBYTES8 */
        case ')': ST(push(m, new_val(m, V_TUPLE))); break; /* EMPTY_TUPLE */
        case ']': ST(push(m, new_val(m, V_LIST))); break;  /* EMPTY_LIST */
        case '}': ST(push(m, new_val(m, V_DICT))); break;  /* EMPTY_DICT */
        case 't': ST(push(m, pop_mark_into(m, V_TUPLE))); break; /* TUPLE */
        case 'l': ST(push(m, pop_mark_into(m, V_LIST))); break;  /* LIST */
        case 'd': { /* DICT */
            pval *v = pop_mark_into(m, V_DICT);
            if (v && v->u.seq.n % 2) return fail(m, GTR_ERR_FORMAT, "DICT with an odd item count", NULL);
            ST(push(m, v));
            break;
        }
        case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
            size_t k = (size_t)(op - 0x84);
            if (m->n_stack < mark_base(m) + k) return fail(m, GTR_ERR_FORMAT, "stack underflow", NULL);
            pval *t = new_val(m, V_TUPLE);
            if (!t) return ERRCODE;
            for (size_t i = m->n_stack - k; i < m->n_stack; i++) ST(seq_push(m, t, m->stack[i]));
            m->n_stack -= k;
            ST(push(m, t));
            break;
        }
        case 'a': { /* APPEND */
            POP(v);
            pval *l = top(m);
            if (!l) return ERRCODE;
            if (l->kind != V_LIST) return fail(m, GTR_ERR_FORMAT, "APPEND to a non-list", NULL);
            ST(seq_push(m, l, v));
            break;
        }
        case 'e': /* APPENDS */
        case 'u': { /* SETITEMS */
            pval *items = pop_mark_into(m, V_TUPLE);
            if (!items) return ERRCODE;
            pval *c = top(m);
            if (!c) return ERRCODE;
            if (c->kind != (op == 'e' ? V_LIST : V_DICT))
                return fail(m, GTR_ERR_FORMAT, op == 'e' ? "APPENDS to a non-list" : "SETITEMS on a non-dict",
                            NULL);
            if (op == 'u' && items->u.seq.n % 2)
                return fail(m, GTR_ERR_FORMAT, "SETITEMS with an odd item count", NULL);
            for (size_t i = 0; i < items->u.seq.n; i++) ST(seq_push(m, c, items->u.seq.v[i]));
            break;
        }
        case 's': { /* SETITEM */
            POP(v);
            POP(k);
            pval *d = top(m);
            if (!d) return ERRCODE;
            if (d->kind != V_DICT) return fail(m, GTR_ERR_FORMAT, "SETITEM on a non-dict", NULL);
            ST(seq_push(m, d, k));
            ST(seq_push(m, d, v));
            break;
        }
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *a = m->p;
            const uint8_t *nl1 = memchr(a, '\n', (size_t)GTR_MIN(m->end - a, 256));
            if (!nl1) return fail(m, GTR_ERR_FORMAT, "bad GLOBAL", NULL);
            const uint8_t *b = nl1 + 1;
            const uint8_t *nl2 = memchr(b, '\n', (size_t)GTR_MIN(m->end - b, 256));
            if (!nl2) return fail(m, GTR_ERR_FORMAT, "bad GLOBAL", NULL);
            m->p = nl2 + 1;
            ST(push(m, make_global(m, (const char *)a, (size_t)(nl1 - a), (const char *)b,
                                   (size_t)(nl2 - b))));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            POP(name);
            POP(mod);
            if (name->kind != V_STR || mod->kind != V_STR)
                return fail(m, GTR_ERR_FORMAT, "STACK_GLOBAL needs two strings", NULL);
            ST(push(m, make_global(m, mod->u.str.s, mod->u.str.len, name->u.str.s, name->u.str.len)));
            break;
        }
        case 'R': { /* REDUCE */
            POP(args);
            POP(fn);
            ST(push(m, reduce(m, fn, args)));
            break;
        }
        case 'b': { /* BUILD: set state; dicts (OrderedDict _metadata) and tensors ignore it */
            POP(state);
            (void)state;
            pval *o = top(m);
            if (!o) return ERRCODE;
            if (o->kind != V_DICT && o->kind != V_TENSOR)
                return fail(m, GTR_ERR_FORMAT, "BUILD on an unsupported object", NULL);
            break;
        }
        case 'Q': { /* BINPERSID */
            POP(pid);
            ST(push(m, persistent_load(m, pid)));
            break;
        }
        case 'h': /* BINGET */
            if (!need(m, 1)) return ERRCODE;
            ST(memo_get(m, *m->p++));
            break;
        case 'j': /* LONG_BINGET */
            if (!need(m, 4)) return ERRCODE;
            m->p += 4;
            ST(memo_get(m, rd_le(m->p - 4, 4)));
            break;
        case 'q': /* BINPUT */
            if (!need(m, 1)) return ERRCODE;
            ST(memo_put(m, *m->p++));
            break;
        case 'r': /* LONG_BINPUT */
            if (!need(m, 4)) return ERRCODE;
            m->p += 4;
            ST(memo_put(m, rd_le(m->p - 4, 4)));
            break;
        case 0x94: /* MEMOIZE */
            ST(memo_put(m, m->n_memo_set));
            break;
        default: {
            m->p--;
            char detail[64];
            snprintf(detail, sizeof detail, "0x%02x", op);
            return fail(m, GTR_ERR_FORMAT, "unsupported pickle opcode ", detail);
        }
        }
    }
    return fail(m, GTR_ERR_FORMAT, "truncated pickle (no STOP)", NULL);
}

/* A tensor value -> validated view into its storage's bytes. */
static gtr_status add_tensor(vm *m, const pval *key, const pval *tv, gtr_storage_lookup_fn lookup,
                             void *user, int source, gtr_tensor_set *set)
{
    const char *what = m->what;
    gtr_error *err = m->err;
    int klen = (int)GTR_MIN(key->u.str.len, 200);
    const pval *s = tv->u.tensor.storage;
    char skey[256];
    if (s->u.storage.key_len >= sizeof skey || memchr(s->u.storage.key, 0, s->u.storage.key_len))
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: tensor '%.*s': bad storage key", what, klen,
                          key->u.str.s);
    memcpy(skey, s->u.storage.key, s->u.storage.key_len);
    skey[s->u.storage.key_len] = '\0';
    size_t bytes;
    const uint8_t *data = lookup(user, skey, &bytes);
    if (!data)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%.*s': storage '%s' is missing from the archive (or compressed)",
                          what, klen, key->u.str.s, skey);
    gtr_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = s->u.storage.dtype;
    t.ndim = tv->u.tensor.ndim;
    t.source = source;
    size_t es = gtr_dtype_size(t.dtype), need_bytes;
    if (s->u.storage.numel > SIZE_MAX || !gtr_mul_ok((size_t)s->u.storage.numel, es, &need_bytes) ||
        need_bytes > bytes)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%.*s': storage '%s' holds %zu bytes, fewer than its %llu "
                          "elements need (truncated?)",
                          what, klen, key->u.str.s, skey, bytes,
                          (unsigned long long)s->u.storage.numel);
    /* Highest element index the view touches must lie inside the storage. */
    size_t count = 1, last = 0;
    bool ok = tv->u.tensor.offset <= s->u.storage.numel;
    for (int i = 0; ok && i < t.ndim; i++) {
        uint64_t n = tv->u.tensor.shape[i], st = tv->u.tensor.stride[i];
        ok = n <= SIZE_MAX && st <= SIZE_MAX && gtr_mul_ok(count, (size_t)n, &count);
        t.shape[i] = (size_t)n;
        t.stride[i] = (size_t)st;
        size_t ext;
        if (ok && n > 0) {
            ok = gtr_mul_ok((size_t)(n - 1), (size_t)st, &ext) && ext <= SIZE_MAX - last;
            if (ok) last += ext;
        }
    }
    if (ok && count > 0)
        ok = (uint64_t)last < s->u.storage.numel - tv->u.tensor.offset;
    if (!ok)
        return gtr_seterr(err, GTR_ERR_FORMAT,
                          "%s: tensor '%.*s': view (offset %llu, shape/stride) lies outside its storage "
                          "'%s' of %llu elements",
                          what, klen, key->u.str.s, (unsigned long long)tv->u.tensor.offset, skey,
                          (unsigned long long)s->u.storage.numel);
    t.count = count;
    t.data = data + (size_t)tv->u.tensor.offset * es;
    t.span = count ? (last + 1) * es : 0;
    return gtr_tensor_set_add(set, key->u.str.s, key->u.str.len, &t, err);
}

gtr_status gtr_torch_pickle_parse(const uint8_t *pkl, size_t len, const char *what,
                                  gtr_storage_lookup_fn lookup, void *user, int source,
                                  gtr_tensor_set *set, gtr_error *err)
{
    gtr_error local;
    if (!err) err = &local; /* the VM reads the code back from err */
    gtr_error_clear(err);
    vm m = {.p = pkl, .end = pkl + len, .start = pkl, .what = what, .err = err};
    pval *res = NULL;
    gtr_status st = run(&m, &res);
    if (!st && res->kind != V_DICT)
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: data.pkl does not hold a state dict", what);
    for (size_t i = 0; !st && i + 1 < (res ? res->u.seq.n : 0); i += 2) {
        const pval *k = res->u.seq.v[i], *v = res->u.seq.v[i + 1];
        if (k->kind != V_STR) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: state dict key %zu is not a string", what, i / 2);
            break;
        }
        if (v->kind != V_TENSOR) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: state dict entry '%.*s' is not a tensor", what,
                            (int)GTR_MIN(k->u.str.len, 200), k->u.str.s);
            break;
        }
        st = add_tensor(&m, k, v, lookup, user, source, set);
    }
    free_vals(&m);
    return st;
}
