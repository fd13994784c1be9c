/*
 * kapd_secret_kubelet.c -- the one symbolic-link layout a secret file may
 * sit behind: the kubelet's atomic writer of Secret (and ConfigMap)
 * volumes.
 *
 * The kubelet publishes each key of a Secret volume DIR as
 *     DIR/KEY    -> ..data/KEY
 *     DIR/..data -> ..2026_12_07_14_00_00.123456789
 *     DIR/..2026_12_07_14_00_00.123456789/KEY     (the real file)
 * and rotates by writing a new timestamped directory and renaming a new
 * ..data over the old one.  That layout, and nothing else, is followed:
 *   - KEY is a link owned by the euid or root whose text is exactly
 *     "..data/KEY" (KEY not starting with "..");
 *   - ..data is a link owned likewise whose text is one name of the
 *     timestamp form ("..", a digit, then digits, '_' and '.'): no '/',
 *     so no hop out of DIR;
 *   - that name is a real directory in DIR (opened O_NOFOLLOW), owned by
 *     the euid or root and writable by nobody else;
 *   - KEY in it is a regular file (opened O_NOFOLLOW: a further link is
 *     refused) passing kap_secret_load()'s owner, size and mode checks,
 *     except that the group may read it when the group is one of kapd's
 *     (the pod's fsGroup: the kubelet's files are root's, so a non-root
 *     kapd reads them through the group, defaultMode 0440);
 *   - DIR itself is owned by the euid or root and writable by nobody else
 *     unless it is sticky (the volume is a tmpfs of mode 1777: nobody but
 *     root or the owner can rename or remove the links in it).
 * Each step opens or reads relative to the descriptor of the step before,
 * so a rotation in the middle yields the old file or the new one, never a
 * mix.  Anything else is refused, and the message says which hop broke.
 */
#include "kapd.h"
#include "kapd_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYOUT "only the kubelet's Secret volume layout is followed " \
               "(KEY -> ..data/KEY, ..data -> ..TIMESTAMP)"

/* owned by the euid or root */
static int
owner_ok(const struct stat *st)
{
    return st->st_uid == geteuid() || st->st_uid == 0;
}

/* a name the atomic writer gives its timestamped directories */
static int
ts_name_ok(const char *s)
{
    if (s[0] != '.' || s[1] != '.' || s[2] < '0' || s[2] > '9')
        return 0;
    for (s += 2; *s != '\0'; s++)
        if ((*s < '0' || *s > '9') && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/* the text of the link name in dfd, NUL-terminated, into buf[0..size);
   KAP_ERROR when unreadable or too long */
static int
link_text(int dfd, const char *name, char *buf, size_t size)
{
    ssize_t n = readlinkat(dfd, name, buf, size);

    if (n < 0 || (size_t)n >= size)
        return KAP_ERROR;
    buf[n] = '\0';
    return KAP_OK;
}

/* the secret directory: the euid's or root's, and writable by nobody else
   unless sticky */
static int
dir_ok(const char *what, int dfd, const char *dir, struct kap_err *err)
{
    struct stat st;

    if (fstat(dfd, &st) != 0) {
        kap_err_set(err, "%s directory %s: %s", what, dir, strerror(errno));
        return KAP_ERROR;
    }
    if (!owner_ok(&st)) {
        kap_err_set(err, "%s directory %s is owned by uid %lu, not by "
                    "kapd's uid %lu or root", what, dir,
                    (unsigned long)st.st_uid, (unsigned long)geteuid());
        return KAP_ERROR;
    }
    if ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0) {
        kap_err_set(err, "%s directory %s is mode %04o: others could swap "
                    "its links (a Secret volume is 1777 or stricter)", what,
                    dir, (unsigned)(st.st_mode & 07777));
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* the timestamped directory named by ..data: its descriptor, or -1 */
static int
ts_open(const char *what, const char *path, int dfd, const char *ts,
        struct kap_err *err)
{
    struct stat st;
    int fd = openat(dfd, ts, O_PATH | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        kap_err_set(err, "%s file %s: ..data names %s: %s", what, path, ts,
                    strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) != 0 || !S_ISDIR(st.st_mode)) {
        kap_err_set(err, "%s file %s is a symbolic link (refused): ..data "
                    "names %s, which is not a directory (an extra hop?); "
                    LAYOUT, what, path, ts);
    } else if (!owner_ok(&st) || (st.st_mode & 022) != 0) {
        kap_err_set(err, "%s directory %s of %s is owned by uid %lu, mode "
                    "%04o: it must be kapd's or root's and writable by "
                    "nobody else", what, ts, path, (unsigned long)st.st_uid,
                    (unsigned)(st.st_mode & 07777));
    } else {
        return fd;
    }
    close(fd);
    return -1;
}

/* KEY in the timestamped directory, opened and checked; or -1 */
static int
key_open(const char *what, const char *path, int tsfd, const char *name,
         struct stat *st, struct kap_err *err)
{
    int fd;

    /* a clear refusal before opening anything that is not a plain file */
    if (fstatat(tsfd, name, st, AT_SYMLINK_NOFOLLOW) == 0
        && (S_ISLNK(st->st_mode)
            || kapd_secret_file_check(what, st, path, 1, err) != KAP_OK)) {
        if (S_ISLNK(st->st_mode))
            kap_err_set(err, "%s file %s is a symbolic link (refused): "
                        "..data/%s is a further link; " LAYOUT, what, path,
                        name);
        return -1;
    }
    fd = openat(tsfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK
                            | O_NOCTTY);
    if (fd < 0) {
        if (errno == EACCES)
            kap_err_set(err, "%s file %s: permission denied: the kubelet's "
                        "files are root's; give the pod an fsGroup that is "
                        "kapd's group and the volume defaultMode 0440",
                        what, path);
        else
            kap_err_set(err, "%s file %s: ..data/%s: %s", what, path, name,
                        strerror(errno));
        return -1;
    }
    if (fstat(fd, st) != 0) {
        kap_err_set(err, "%s file %s: %s", what, path, strerror(errno));
    } else if (kapd_secret_file_check(what, st, path, 1, err) == KAP_OK) {
        return fd;
    }
    close(fd);
    return -1;
}

int
kapd_secret_kubelet_open(const char *what, const char *path, int dfd,
                         const char *dir, const char *name,
                         const struct stat *lst, struct stat *st,
                         struct kap_err *err)
{
    char want[NAME_MAX + 8], text[NAME_MAX + 8], ts[NAME_MAX + 1];
    struct stat dst;
    int tsfd, fd;

    if (name[0] == '.' && name[1] == '.') {
        kap_err_set(err, "%s file %s is a symbolic link (refused): name "
                    "the key, not the kubelet's own entries; " LAYOUT,
                    what, path);
        return -1;
    }
    snprintf(want, sizeof(want), "..data/%s", name);
    if (link_text(dfd, name, text, sizeof(text)) != KAP_OK
        || strcmp(text, want) != 0) {
        kap_err_set(err, "%s file %s is a symbolic link (refused): it does "
                    "not point to %s; " LAYOUT ", else name the file itself",
                    what, path, want);
        return -1;
    }
    if (fstatat(dfd, "..data", &dst, AT_SYMLINK_NOFOLLOW) != 0
        || !S_ISLNK(dst.st_mode)
        || link_text(dfd, "..data", ts, sizeof(ts)) != KAP_OK
        || !ts_name_ok(ts)) {
        kap_err_set(err, "%s file %s is a symbolic link (refused): %s/..data "
                    "is not a link to a ..TIMESTAMP directory beside it; "
                    LAYOUT, what, path, dir);
        return -1;
    }
    if (!owner_ok(lst) || !owner_ok(&dst)) {
        kap_err_set(err, "%s file %s is a symbolic link (refused): the link "
                    "%s is owned by uid %lu, not by kapd's uid %lu or root",
                    what, path, owner_ok(lst) ? "..data" : name,
                    (unsigned long)(owner_ok(lst) ? dst.st_uid : lst->st_uid),
                    (unsigned long)geteuid());
        return -1;
    }
    if (dir_ok(what, dfd, dir, err) != KAP_OK)
        return -1;
    tsfd = ts_open(what, path, dfd, ts, err);
    if (tsfd < 0)
        return -1;
    fd = key_open(what, path, tsfd, name, st, err);
    close(tsfd);
    return fd;
}
