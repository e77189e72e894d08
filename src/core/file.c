/* file.c — whole-file reads, read-only mmaps and atomic writes (temp -> fsync -> rename). */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

bool gtr_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

bool gtr_dir_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *gtr_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

gtr_status gtr_pread_all(int fd, const char *path, void *buf, size_t len, uint64_t off, size_t *got,
                         gtr_error *err)
{
    *got = 0;
    while (*got < len) {
        ssize_t r = pread(fd, (char *)buf + *got, len - *got, (off_t)(off + *got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return gtr_seterr(err, GTR_ERR_IO, "%s: read failed: %s", path, strerror(errno));
        if (r == 0) break;
        *got += (size_t)r;
    }
    return GTR_OK;
}

gtr_status gtr_pwrite_all(int fd, const char *path, const void *data, size_t len, uint64_t off,
                          gtr_error *err)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t w = pwrite(fd, p, len, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0)
            return gtr_seterr(err, GTR_ERR_IO, "%s: cannot write: %s", path, w < 0 ? strerror(errno) : "no progress");
        p += w;
        len -= (size_t)w;
        off += (uint64_t)w;
    }
    return GTR_OK;
}

char *gtr_path_suffixed(const char *path, const char *suffix, gtr_error *err)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *p = gtr_xmalloc(a + b + 1, "a file name", err);
    if (p) {
        memcpy(p, path, a);
        memcpy(p + a, suffix, b + 1);
    }
    return p;
}

gtr_status gtr_read_file(const char *path, size_t max_size, char **data, size_t *len,
                         gtr_error *err)
{
    *data = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gtr_seterr(err, errno == ENOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_IO,
                                  "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return gtr_seterr(err, GTR_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_size && size > max_size) {
        close(fd);
        return gtr_seterr(err, GTR_ERR_FORMAT, "%s: file is too large (%zu bytes, limit %zu)", path,
                          size, max_size);
    }
    char *buf = gtr_xmalloc(size + 1, path, err);
    if (!buf) {
        close(fd);
        return GTR_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            free(buf);
            close(fd);
            return gtr_seterr(err, GTR_ERR_IO, "%s: read failed: %s", path,
                              r < 0 ? strerror(e) : "file shrank while reading");
        }
        got += (size_t)r;
    }
    close(fd);
    buf[size] = '\0';
    *data = buf;
    *len = size;
    return GTR_OK;
}

gtr_status gtr_mmap_open(const char *path, gtr_mmap *m, gtr_error *err)
{
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return gtr_seterr(err, errno == ENOENT ? GTR_ERR_NOT_FOUND : GTR_ERR_IO,
                                  "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return gtr_seterr(err, GTR_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return GTR_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED) return gtr_seterr(err, GTR_ERR_IO, "%s: mmap failed: %s", path, strerror(e));
    m->data = p;
    m->size = (size_t)st.st_size;
    return GTR_OK;
}

void gtr_mmap_close(gtr_mmap *m)
{
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

void gtr_mmap_drop(const gtr_mmap *m, size_t off, size_t len)
{
    if (!m->data || off >= m->size) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = (off + page - 1) / page * page, b = GTR_MIN(off + len, m->size) / page * page;
    if (b > a) madvise((void *)(m->data + a), b - a, MADV_DONTNEED);
}

/* A hint over every page [off, off+len) touches (unlike gtr_mmap_drop, which must not discard
 * a neighbour's partial page, a hint may cover whole pages at both ends). */
static void mmap_advise(const gtr_mmap *m, size_t off, size_t len, int advice)
{
    if (!m->data || off >= m->size) return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t a = off / page * page, b = GTR_MIN(off + len, m->size);
    if (b > a) madvise((void *)(m->data + a), b - a, advice);
}

void gtr_mmap_random(const gtr_mmap *m, size_t off, size_t len) { mmap_advise(m, off, len, MADV_RANDOM); }

void gtr_mmap_willneed(const gtr_mmap *m, size_t off, size_t len) { mmap_advise(m, off, len, MADV_WILLNEED); }

gtr_status gtr_fsync_dir(const char *dir, gtr_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return gtr_seterr(err, GTR_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int r = fsync(fd);
    int e = errno;
    close(fd);
    /* Some file systems refuse fsync on directories (EINVAL); the rename is still atomic. */
    if (r != 0 && e != EINVAL)
        return gtr_seterr(err, GTR_ERR_IO, "%s: fsync failed: %s", dir, strerror(e));
    return GTR_OK;
}

gtr_status gtr_dir_create(const char *path, gtr_error *err)
{
    char *p = strdup(path);
    if (!p) return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                gtr_status st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot create directory: %s", p,
                                           strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    if (!gtr_dir_exists(path)) return gtr_seterr(err, GTR_ERR_IO, "%s: not a directory", path);
    return GTR_OK;
}

bool gtr_str_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

const char *gtr_id_problem(const char *id, size_t len)
{
    if (len == 0) return "is empty";
    if (len > GTR_MAX_ID_BYTES) return "is longer than 65536 bytes";
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (c == '\0') return "contains a NUL character";
        if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r')
            return "contains whitespace";
    }
    return NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    int r = flag == FTW_DP ? rmdir(path) : unlink(path);
    return r != 0 && errno != ENOENT ? -1 : 0;
}

gtr_status gtr_remove_tree(const char *path, gtr_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) return GTR_OK;
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0 && errno != ENOENT)
            return gtr_seterr(err, GTR_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
        return GTR_OK;
    }
    /* FTW_PHYS: a symlink inside is removed, never followed; FTW_DEPTH: children first. */
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return gtr_seterr(err, GTR_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return GTR_OK;
}

gtr_status gtr_copy_file(const char *src, const char *dst, gtr_error *err)
{
    char *data;
    size_t len;
    gtr_status st = gtr_read_file(src, 0, &data, &len, err);
    if (st) return st;
    st = gtr_write_file_atomic(dst, data, len, err);
    free(data);
    return st;
}

gtr_status gtr_atomic_open(gtr_atomic_file *f, const char *path, gtr_error *err)
{
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->path = strdup(path);
    f->tmp_path = malloc(n);
    if (!f->path || !f->tmp_path) {
        gtr_atomic_abort(f);
        return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(f->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        gtr_status st = gtr_seterr(err, GTR_ERR_IO, "%s: cannot create: %s", f->tmp_path, strerror(errno));
        gtr_atomic_abort(f);
        return st;
    }
    f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        close(fd);
        unlink(f->tmp_path);
        gtr_atomic_abort(f);
        return gtr_seterr(err, GTR_ERR_IO, "%s: fdopen failed", path);
    }
    return GTR_OK;
}

gtr_status gtr_atomic_write(gtr_atomic_file *f, const void *data, size_t len, gtr_error *err)
{
    if (f->status) return f->status;
    if (len && fwrite(data, 1, len, f->fp) != len) {
        f->status = GTR_ERR_IO;
        f->errnum = errno;
        return gtr_seterr(err, GTR_ERR_IO, "%s: write failed: %s", f->tmp_path, strerror(errno));
    }
    return GTR_OK;
}

gtr_status gtr_atomic_rewrite(gtr_atomic_file *f, uint64_t off, const void *data, size_t len, gtr_error *err)
{
    if (f->status) return f->status;
    const uint8_t *p = data;
    if (fflush(f->fp) != 0) {
        f->status = GTR_ERR_IO;
        f->errnum = errno;
        return gtr_seterr(err, GTR_ERR_IO, "%s: write failed: %s", f->tmp_path, strerror(errno));
    }
    while (len) {
        ssize_t k = pwrite(fileno(f->fp), p, len, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            f->status = GTR_ERR_IO;
            f->errnum = k < 0 ? errno : EIO;
            return gtr_seterr(err, GTR_ERR_IO, "%s: write failed: %s", f->tmp_path, strerror(f->errnum));
        }
        p += k;
        off += (uint64_t)k;
        len -= (size_t)k;
    }
    return GTR_OK;
}

gtr_status gtr_atomic_commit(gtr_atomic_file *f, gtr_error *err)
{
    gtr_status st = f->status;
    if (st) {
        gtr_seterr(err, st, "%s: write failed: %s", f->tmp_path, strerror(f->errnum));
    } else if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0) {
        st = gtr_seterr(err, GTR_ERR_IO, "%s: flush failed: %s", f->tmp_path, strerror(errno));
    }
    if (fclose(f->fp) != 0 && !st)
        st = gtr_seterr(err, GTR_ERR_IO, "%s: close failed: %s", f->tmp_path, strerror(errno));
    f->fp = NULL;
    if (!st && rename(f->tmp_path, f->path) != 0)
        st = gtr_seterr(err, GTR_ERR_IO, "%s: rename failed: %s", f->path, strerror(errno));
    if (!st) {
        char *d = strdup(f->path);
        if (d) {
            st = gtr_fsync_dir(dirname(d), err);
            free(d);
        }
        free(f->path);
        free(f->tmp_path);
        memset(f, 0, sizeof *f);
        return st;
    }
    gtr_atomic_abort(f);
    return st;
}

void gtr_atomic_abort(gtr_atomic_file *f)
{
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
}

/* The public face of the atomic writer (gtr.h: gtr_output_file_*). */
struct gtr_output_file {
    gtr_atomic_file af;
};

gtr_output_file *gtr_output_file_open(const char *path, gtr_error *err)
{
    gtr_output_file *f = gtr_xcalloc(1, sizeof *f, "output file", err);
    if (f && gtr_atomic_open(&f->af, path, err)) {
        free(f);
        return NULL;
    }
    return f;
}

FILE *gtr_output_file_stream(gtr_output_file *f) { return f->af.fp; }

gtr_status gtr_output_file_write(gtr_output_file *f, const void *data, size_t len, gtr_error *err)
{
    return gtr_atomic_write(&f->af, data, len, err);
}

gtr_status gtr_output_file_commit(gtr_output_file *f, gtr_error *err)
{
    gtr_status st;
    if (!f->af.status && ferror(f->af.fp)) { /* a write the caller made on the stream failed */
        st = gtr_seterr(err, GTR_ERR_IO, "%s: write failed", f->af.tmp_path);
        gtr_atomic_abort(&f->af);
    } else {
        st = gtr_atomic_commit(&f->af, err);
    }
    free(f);
    return st;
}

void gtr_output_file_abort(gtr_output_file *f)
{
    if (!f) return;
    gtr_atomic_abort(&f->af);
    free(f);
}

void gtr_remove_stale_tmp(const char *path)
{
    char *d = strdup(path), *b = strdup(path);
    DIR *dir = d && b ? opendir(dirname(d)) : NULL;
    if (dir) {
        const char *base = basename(b);
        size_t bl = strlen(base);
        struct dirent *de;
        while ((de = readdir(dir))) {
            const char *n = de->d_name;
            if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp.", 5) != 0) continue;
            const char *p = n + bl + 5;
            char *end;
            errno = 0;
            long pid = strtol(p, &end, 10);
            if (end == p || *end || errno || pid <= 0 || (pid_t)pid == getpid()) continue;
            if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* alive (or not ours to judge) */
            unlinkat(dirfd(dir), n, 0);
        }
        closedir(dir);
    }
    free(d);
    free(b);
}

gtr_status gtr_write_file_atomic(const char *path, const void *data, size_t len, gtr_error *err)
{
    gtr_atomic_file f;
    gtr_status st = gtr_atomic_open(&f, path, err);
    if (st) return st;
    st = gtr_atomic_write(&f, data, len, err);
    if (st) {
        gtr_atomic_abort(&f);
        return st;
    }
    return gtr_atomic_commit(&f, err);
}
