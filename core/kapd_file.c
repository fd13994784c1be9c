/*
 * kapd_file.c -- opening the files kapd writes (audit log, error log, pid
 * file) so that whoever can write their directory cannot redirect them.
 *
 * The directory is opened once, when the file is first configured
 * (kapd_dir_open), and every later open, rotation and removal works
 * relative to that descriptor: renaming or replacing the directory
 * afterwards does not move kapd's files.  The file itself is opened with
 * O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK and kept only when fstat(2) shows a
 * regular file with a single link: a symbolic link planted in place of a
 * log (or of a rotated name), a FIFO, a directory, a device, or a hard
 * link to a file elsewhere (~/.bashrc) is refused, never written.
 * O_TRUNC is applied only after these checks (ftruncate), so a refused
 * file is never truncated either.
 */
#include "kapd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* mkdir -p of the directories above path's last component, mode 0750 */
static int
mkdirs(const char *path)
{
    char   buf[PATH_MAX];
    size_t n = strlen(path), i;

    if (n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (i = 1; i < n; i++) {
        if (buf[i] != '/')
            continue;
        buf[i] = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return -1;
        buf[i] = '/';
    }
    return 0;
}

int
kapd_dir_open(const char *path, char **name, int create)
{
    char        dir[PATH_MAX];
    const char *slash, *base;
    size_t      dlen;
    int         fd;

    *name = NULL;
    if (path == NULL || path[0] == '\0') {
        errno = EINVAL;
        return -1;
    }
    slash = strrchr(path, '/');
    base = slash ? slash + 1 : path;
    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        errno = EISDIR;
        return -1;
    }
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        dlen = slash == path ? 1 : (size_t)(slash - path);
        if (dlen >= sizeof(dir)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, dlen);
        dir[dlen] = '\0';
    }
    fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create && mkdirs(path) == 0)
        fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if ((*name = strdup(base)) == NULL) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    return fd;
}

int
kapd_file_openat(int dirfd, const char *name, int flags, mode_t mode,
                 struct stat *out)
{
    struct stat st;
    int         fd, trunc = flags & O_TRUNC, e;

    /* a clear error before touching anything (the fstat below decides) */
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        if (S_ISLNK(st.st_mode)) {
            errno = ELOOP;
            return -1;
        }
        if (!S_ISREG(st.st_mode)) {
            errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
            return -1;
        }
    }
    fd = openat(dirfd, name, (flags & ~O_TRUNC) | O_NOFOLLOW | O_CLOEXEC
                             | O_NOCTTY | O_NONBLOCK, mode);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0)
        goto fail;
    if (!S_ISREG(st.st_mode)) {
        errno = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        goto fail;
    }
    if (st.st_nlink > 1) {
        /* another name for this file lives elsewhere: not ours to write */
        errno = EMLINK;
        goto fail;
    }
    if (trunc && st.st_size > 0) {
        if (ftruncate(fd, 0) != 0)
            goto fail;
        st.st_size = 0;
    }
    if (out != NULL)
        *out = st;
    return fd;
fail:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

int
kapd_file_open(const char *path, int flags, mode_t mode, struct stat *out)
{
    char *name;
    int   dfd, fd, e;

    dfd = kapd_dir_open(path, &name, 0);
    if (dfd < 0)
        return -1;
    fd = kapd_file_openat(dfd, name, flags, mode, out);
    e = errno;
    free(name);
    close(dfd);
    errno = e;
    return fd;
}

const char *
kapd_file_strerror(int e)
{
    switch (e) {
    case ELOOP:  return "a symbolic link (refused)";
    case EINVAL: return "not a regular file (refused)";
    case EISDIR: return "a directory (refused)";
    case EMLINK: return "has other hard links (refused)";
    default:     return strerror(e);
    }
}
