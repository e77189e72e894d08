/* staging.c — make a downloaded directory appear all at once. Everything of an unfinished
 * download lives in "<dest>.partial/" (partial files that the next run resumes, a lock, the
 * tree being built); the finished tree becomes <dest> with one rename(2), so a reader never
 * sees a half-written model or dataset, and a crash leaves only the .partial directory. */
#include "net.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int net_dest_state(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return -1;
    DIR *d = opendir(path);
    if (!d) return 1;
    int state = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            state = 1;
            break;
        }
    closedir(d);
    return state;
}

/* Directory part of path ("." when there is none); malloc'd. */
static char *parent_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

gtr_status net_stage_open(net_stage *st, const char *dest, gtr_error *err)
{
    memset(st, 0, sizeof *st);
    st->lock_fd = -1;
    size_t n = strlen(dest);
    while (n > 1 && dest[n - 1] == '/') n--; /* "models/x/" names the same directory */
    st->dest = strndup(dest, n);
    st->dir = st->dest ? gtr_path_suffixed(st->dest, ".partial", NULL) : NULL;
    char *parent = st->dest ? parent_of(st->dest) : NULL;
    if (!st->dir || !parent) {
        free(parent);
        net_stage_close(st, false);
        return gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    }
    gtr_status s = gtr_mkdirs(parent, err);
    free(parent);
    if (!s && mkdir(st->dir, 0777) != 0 && errno != EEXIST)
        s = gtr_seterr(err, GTR_ERR_IO, "%s: cannot create directory: %s", st->dir, strerror(errno));
    if (!s && !gtr_dir_exists(st->dir))
        s = gtr_seterr(err, GTR_ERR_IO, "%s: exists and is not a directory", st->dir);
    char *lock = s ? NULL : net_stage_path(st, ".lock");
    if (!s && !lock) s = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
    if (!s) {
        st->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (st->lock_fd < 0)
            s = gtr_seterr(err, GTR_ERR_IO, "%s: cannot create: %s", lock, strerror(errno));
        else if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0)
            s = gtr_seterr(err, GTR_ERR_IO,
                           "%s: another download into this destination is running (lock %s)",
                           st->dest, lock);
    }
    free(lock);
    if (s) net_stage_close(st, false);
    return s;
}

char *net_stage_path(const net_stage *st, const char *rel)
{
    return gtr_path_join(st->dir, rel);
}

gtr_status net_stage_commit(net_stage *st, const char *rel, bool force, gtr_error *err)
{
    char *src = net_stage_path(st, rel), *old = net_stage_path(st, ".replaced");
    char *parent = parent_of(st->dest);
    gtr_status s = GTR_OK;
    bool moved_old = false;
    if (!src || !old || !parent) {
        s = gtr_seterr(err, GTR_ERR_NOMEM, "out of memory");
        goto out;
    }
    int state = net_dest_state(st->dest);
    if (state < 0) {
        s = gtr_seterr(err, GTR_ERR_IO, "%s: exists and is not a directory", st->dest);
        goto out;
    }
    if (state > 0) {
        if (!force) {
            s = gtr_seterr(err, GTR_ERR_IO, "%s: already exists", st->dest);
            goto out;
        }
        /* Move the old tree aside inside the staging dir, so removing that removes it. */
        if ((s = gtr_remove_tree(old, err))) goto out;
        if (rename(st->dest, old) != 0) {
            s = gtr_seterr(err, GTR_ERR_IO, "%s: cannot move aside: %s", st->dest, strerror(errno));
            goto out;
        }
        moved_old = true;
    }
    /* rename(2) onto an empty directory replaces it: that is the "state == 0" case too. */
    if (rename(src, st->dest) != 0) {
        s = gtr_seterr(err, GTR_ERR_IO, "%s: cannot rename %s into place: %s", st->dest, src,
                       strerror(errno));
        if (moved_old && rename(old, st->dest) != 0)
            gtr_error_prefix(err, "(the previous copy is left in %s)", old);
        goto out;
    }
    if ((s = gtr_fsync_dir(parent, err))) goto out;
    close(st->lock_fd);
    st->lock_fd = -1;
    s = gtr_remove_tree(st->dir, err);
out:
    free(src);
    free(old);
    free(parent);
    return s;
}

void net_stage_close(net_stage *st, bool discard)
{
    if (discard && st->dir) gtr_remove_tree(st->dir, NULL);
    if (st->lock_fd >= 0) close(st->lock_fd);
    free(st->dest);
    free(st->dir);
    memset(st, 0, sizeof *st);
    st->lock_fd = -1;
}
