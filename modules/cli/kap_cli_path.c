/*
 * kap_cli_path.c -- where a tool's binary is, and that nobody but root
 * or kapd can replace it.  See kap_cli.h (kap_cli_path_resolve).
 */
#define _GNU_SOURCE
#include "kap_cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every directory from / to the file's, and the file: owned by root or
 * the euid, writable by neither group nor others -- except a directory
 * that root owns with the sticky bit (/tmp): others may add names to it
 * but not rename or remove ours, and the next component's owner is
 * checked in turn. */
int
kap_cli_path_safe(struct kap_pool *pool, const char *path, unsigned flags,
                  struct kap_err *err)
{
    char        *p = kap_pstrdup(pool, path), *s;
    struct stat  st;
    uid_t        me = geteuid();

    if (p == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    s = p;
    for (;;) {
        s = strchr(s + 1, '/');
        if (s != NULL)
            *s = '\0';
        if (stat(p[0] != '\0' ? p : "/", &st) != 0) {
            kap_err_set(err, "%s: %s", p, strerror(errno));
            return KAP_ERROR;
        }
        if ((st.st_uid != 0 && ((flags & KAP_CLI_ROOT_ONLY) != 0
                                || st.st_uid != me))
            || ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0
                && !(s != NULL && S_ISDIR(st.st_mode) && st.st_uid == 0
                     && (st.st_mode & S_ISVTX) != 0))) {
            kap_err_set(err, "%s is writable by others than root and "
                        "%s (owner %ld, mode %04o): a capsule or "
                        "another user could replace the tool",
                        p[0] != '\0' ? p : "/",
                        (flags & KAP_CLI_ROOT_ONLY) != 0
                        ? "(cli.locked: root only)" : "kapd's user",
                        (long)st.st_uid,
                        (unsigned)(st.st_mode & 07777));
            return KAP_ERROR;
        }
        if (s == NULL)
            break;
        *s = '/';
    }
    if (!S_ISREG(st.st_mode)
        || ((flags & KAP_CLI_EXEC) != 0 && access(path, X_OK) != 0)) {
        kap_err_set(err, "%s is not %s file", path,
                    (flags & KAP_CLI_EXEC) != 0 ? "an executable" : "a");
        return KAP_ERROR;
    }
    return KAP_OK;
}

const char *
kap_cli_path_resolve(struct kap_pool *pool, const char *name,
                     const char *path, unsigned flags, struct kap_err *err)
{
    const char *env = getenv("PATH"), *d, *e;
    char       *cand;

    if (path != NULL) {
        if (path[0] != '/') {
            kap_err_set(err, "path \"%s\" is not absolute", path);
            return NULL;
        }
        return kap_cli_path_safe(pool, path, flags | KAP_CLI_EXEC, err)
               == KAP_OK ? path : NULL;
    }
    for (d = env != NULL ? env : "/usr/bin:/bin"; *d != '\0'; d = e) {
        e = strchr(d, ':');
        if (e == NULL)
            e = d + strlen(d);
        if (e > d && d[0] == '/') {
            cand = kap_psprintf(pool, "%.*s/%s", (int)(e - d), d, name);
            if (cand == NULL) {
                kap_err_set(err, "out of memory");
                return NULL;
            }
            if (access(cand, X_OK) == 0)
                return kap_cli_path_safe(pool, cand, flags | KAP_CLI_EXEC,
                                         err) == KAP_OK ? cand : NULL;
        }
        if (*e == ':')
            e++;
    }
    kap_err_set(err, "no \"%s\" on kapd's PATH: set path", name);
    return NULL;
}
