/*
 * kap_remote_rulefile.c -- "allow always" written into a policy file:
 * read it (a regular file of ours, not through a symlink), add the rule
 * (kr_rule_insert), and replace it atomically with a file of the same
 * mode and group, so that a crash or a full disk leaves the old policy,
 * and a reader (kapd's reload check, kap run) never sees half a file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kap_remote.h"

#define KR_RULE_FILE_MAX (1024 * 1024)

/* the whole file into b; KAP_ERROR with why set */
static int
kr_read_policy(const char *path, struct kap_buf *b, struct stat *st,
               char *why, size_t whysize)
{
    ssize_t n;
    int fd;

    if (path[0] != '/') {
        snprintf(why, whysize, "%s: not an absolute path", path);
        return KAP_ERROR;
    }
    if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0) {
        snprintf(why, whysize, "%s: %s", path, strerror(errno));
        return KAP_ERROR;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)
        || st->st_uid != geteuid() || st->st_size > KR_RULE_FILE_MAX) {
        snprintf(why, whysize, "%s: not a regular file of this user of at"
                 " most 1 MiB", path);
        close(fd);
        return KAP_ERROR;
    }
    for (;;) {
        if (kap_buf_reserve(b, 65536) != KAP_OK) {
            snprintf(why, whysize, "out of memory");
            break;
        }
        n = read(fd, b->data + b->len, kap_buf_room(b));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(why, whysize, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) {
            close(fd);
            return KAP_OK;
        }
        kap_buf_added(b, (size_t) n);
        if (b->len > KR_RULE_FILE_MAX) {
            snprintf(why, whysize, "%s: larger than 1 MiB", path);
            break;
        }
    }
    close(fd);
    return KAP_ERROR;
}

static int
kr_write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KAP_ERROR;
        p += w;
        n -= (size_t) w;
    }
    return KAP_OK;
}

int
kr_rule_write(const char *path, const struct kr_rule_at *at,
              const char *entry, char *where, size_t size, char *why,
              size_t whysize)
{
    struct kap_buf old = { 0 }, out = { 0 };
    struct stat st, now;
    const char *w = NULL;
    unsigned line = 0;
    char tmp[4200];
    int rc, fd = -1;

    if (strlen(path) > 4000) {
        snprintf(why, whysize, "the policy file's path is too long");
        return KAP_ERROR;
    }
    if (kr_read_policy(path, &old, &st, why, whysize) != KAP_OK) {
        kap_buf_free(&old);
        return KAP_ERROR;
    }
    rc = kr_rule_insert_at((const char *) old.data, old.len, at, entry, &out,
                           &line, &w);
    if (rc != KAP_OK) {
        if (rc == KAP_DECLINED)
            snprintf(where, size, "%s:%u", path, line);
        else
            snprintf(why, whysize, "%s: %s", path, w);
        goto done;
    }
    snprintf(tmp, sizeof(tmp), "%s.kap-XXXXXX", path);
    rc = KAP_ERROR;
    if ((fd = mkstemp(tmp)) < 0) {
        snprintf(why, whysize, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    if (fchmod(fd, st.st_mode & 07777) != 0
        || (fchown(fd, st.st_uid, st.st_gid) != 0 && errno != EPERM)
        || kr_write_all(fd, (const char *) out.data, out.len) != KAP_OK
        || fsync(fd) != 0) {
        snprintf(why, whysize, "%s: %s", tmp, strerror(errno));
        goto drop;
    }
    /* someone else wrote it meanwhile: theirs wins, nothing is lost */
    if (lstat(path, &now) != 0 || now.st_ino != st.st_ino
        || now.st_dev != st.st_dev || now.st_size != st.st_size
        || now.st_mtim.tv_sec != st.st_mtim.tv_sec
        || now.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
        snprintf(why, whysize, "%s changed while the rule was added", path);
        goto drop;
    }
    if (rename(tmp, path) != 0) {
        snprintf(why, whysize, "%s: %s", path, strerror(errno));
        goto drop;
    }
    snprintf(where, size, "%s:%u", path, line);
    rc = KAP_OK;
    goto done;
drop:
    (void) unlink(tmp);
done:
    if (fd >= 0)
        close(fd);
    kap_buf_free(&old);
    kap_buf_free(&out);
    return rc;
}
