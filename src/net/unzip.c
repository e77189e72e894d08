/* unzip.c — extract a downloaded zip archive with libzip (the only file that uses it). The
 * archive comes from the network, so it is untrusted: every name is checked before anything is
 * written (no absolute paths, no "..", no links or device files — a "zip slip" cannot write
 * outside the destination), files are created with O_EXCL (a repeated name cannot overwrite),
 * and libzip verifies each entry's CRC as it is read. */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

bool net_safe_relpath(const char *name, bool allow_dir)
{
    if (!name || !*name || name[0] == '/') return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\\') return false; /* '\\' is a separator elsewhere */
    const char *c = name;
    for (;;) {
        size_t n = strcspn(c, "/");
        bool last = c[n] == '\0';
        if (n == 0) return allow_dir && c != name && last; /* only "dir/" may end with '/' */
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return false;
        if (last) return true;
        c += n + 1;
        if (!*c) return allow_dir;
    }
}

static gtr_status zip_err(gtr_error *err, const char *zip_path, const char *what, zip_error_t *ze)
{
    return gtr_seterr(err, GTR_ERR_FORMAT, "%s: %s: %s", zip_path, what, zip_error_strerror(ze));
}

/* Copy one entry to a new file (which must not exist). */
static gtr_status extract_file(zip_t *z, zip_uint64_t i, const char *name, const char *path,
                               uint64_t expect, const char *zip_path, char *buf, size_t cap,
                               uint64_t *done, uint64_t total, gtr_progress_fn progress, void *user,
                               gtr_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == EEXIST
                   ? gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s' appears more than once", zip_path, name)
                   : gtr_seterr(err, GTR_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    zip_file_t *zf = zip_fopen_index(z, i, 0);
    gtr_status st = GTR_OK;
    if (!zf) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s': %s", zip_path, name, zip_strerror(z));
        close(fd);
        return st;
    }
    uint64_t got = 0;
    for (;;) {
        zip_int64_t r = zip_fread(zf, buf, cap);
        if (r < 0) { /* includes a CRC mismatch, detected at the end of the entry */
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s' is corrupt: %s", zip_path, name,
                            zip_file_strerror(zf));
            break;
        }
        if (r == 0) break;
        got += (uint64_t)r;
        if (got > expect) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s' is longer than its declared %llu bytes",
                            zip_path, name, (unsigned long long)expect);
            break;
        }
        for (zip_int64_t off = 0; off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                st = gtr_seterr(err, GTR_ERR_IO, "%s: write failed: %s", path, strerror(errno));
                break;
            }
            off += w;
        }
        if (st) break;
        *done += (uint64_t)r;
        if (progress && progress(user, *done, total)) {
            st = gtr_seterr(err, GTR_ERR_INTERRUPTED, "%s: extraction interrupted", zip_path);
            break;
        }
    }
    zip_fclose(zf);
    if (!st && got != expect)
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s' has %llu bytes, declared %llu", zip_path,
                        name, (unsigned long long)got, (unsigned long long)expect);
    if (!st && fsync(fd) != 0)
        st = gtr_seterr(err, GTR_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
    if (close(fd) != 0 && !st) st = gtr_seterr(err, GTR_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return st;
}

/* Mac archivers add "__MACOSX/" resource forks: not data, skipped. */
static bool is_junk(const char *name) { return !strncmp(name, "__MACOSX/", 9); }

gtr_status net_unzip(const char *zip_path, const char *dest_dir, gtr_progress_fn progress,
                     void *user, uint64_t *total_bytes, gtr_error *err)
{
    int zerr = 0;
    zip_t *z = zip_open(zip_path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        gtr_status st = zip_err(err, zip_path, "not a readable zip archive", &ze);
        zip_error_fini(&ze);
        return st;
    }
    gtr_status st = GTR_OK;
    char *buf = NULL;
    zip_int64_t n = zip_get_num_entries(z, 0);
    uint64_t total = 0, done = 0;
    if (n <= 0) {
        st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: the archive is empty", zip_path);
        goto out;
    }
    /* Pass 1: refuse the whole archive before writing anything if one entry is unsafe. */
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!name) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry %lld: %s", zip_path, (long long)i, zip_strerror(z));
            goto out;
        }
        if (!net_safe_relpath(name, true)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT,
                            "%s: unsafe entry name '%s' (absolute, '..', or control characters): refusing to extract",
                            zip_path, name);
            goto out;
        }
        zip_uint8_t opsys;
        zip_uint32_t attr;
        if (zip_file_get_external_attributes(z, (zip_uint64_t)i, 0, &opsys, &attr) == 0 &&
            opsys == ZIP_OPSYS_UNIX) {
            mode_t fmt = (mode_t)(attr >> 16) & S_IFMT;
            if (fmt && fmt != S_IFREG && fmt != S_IFDIR) {
                st = gtr_seterr(err, GTR_ERR_FORMAT,
                                "%s: entry '%s' is a symbolic link or special file: refusing to extract",
                                zip_path, name);
                goto out;
            }
        }
        zip_stat_t zs;
        if (zip_stat_index(z, (zip_uint64_t)i, 0, &zs) != 0 || !(zs.valid & ZIP_STAT_SIZE)) {
            st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s': cannot read its size", zip_path, name);
            goto out;
        }
        if (!is_junk(name)) total += zs.size;
    }
    if (total_bytes) *total_bytes = total;
    static const size_t cap = 1 << 20;
    buf = gtr_xmalloc(cap, "unzip buffer", err);
    if (!buf) {
        st = GTR_ERR_NOMEM;
        goto out;
    }
    /* Pass 2: extract. */
    for (zip_int64_t i = 0; i < n && !st; i++) {
        const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
        if (is_junk(name)) continue;
        char *path = gtr_path_join(dest_dir, name);
        if (!path) {
            st = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
            break;
        }
        size_t len = strlen(path);
        if (path[len - 1] == '/') {
            path[len - 1] = '\0';
            st = gtr_mkdirs(path, err);
        } else {
            char *slash = strrchr(path, '/');
            *slash = '\0';
            st = gtr_mkdirs(path, err);
            *slash = '/';
            zip_stat_t zs;
            if (!st && zip_stat_index(z, (zip_uint64_t)i, 0, &zs) != 0)
                st = gtr_seterr(err, GTR_ERR_FORMAT, "%s: entry '%s': %s", zip_path, name, zip_strerror(z));
            if (!st)
                st = extract_file(z, (zip_uint64_t)i, name, path, zs.size, zip_path, buf, cap, &done,
                                  total, progress, user, err);
        }
        free(path);
    }
out:
    free(buf);
    zip_discard(z);
    return st;
}
