/*
 * kapd_secret.h -- what the core's log writer needs from kapd_secret.c.
 *
 * kapd_secret_nlive counts the loaded secrets that kap_secret_redact()
 * replaces (those of KAP_SECRET_REDACT_MIN bytes or more).  The log writer
 * reads it before each line: while it is 0, a line costs no redaction.
 *
 * kapd_secret_open() is kap_secret_load()'s file rule for other core
 * files that hold a secret (a TLS private key): the path walked without
 * symbolic links, the directory owned by the euid or root and mode 0700
 * or stricter, the file regular, owned likewise, mode 0600 or stricter,
 * non-empty and at most KAP_SECRET_MAX bytes; the last component may be
 * a link of the kubelet's Secret volume layout (KEY -> ..data/KEY,
 * ..data -> ..TIMESTAMP), and no other.  Returns the file opened
 * read-only (close-on-exec; the caller closes it) with its fstat in *st,
 * or -1 with err set to a message that starts with what ("TLS key file
 * ... is mode 0644: run chmod 600 ...").
 */
#ifndef KAPD_SECRET_H
#define KAPD_SECRET_H

#include <kapd/kap_secret.h>

#include <sys/stat.h>

extern unsigned kapd_secret_nlive;

/*
 * The file checks of kapd_secret_open() on st (the opened file's fstat):
 * a regular file owned by the euid or root, mode 0600 or stricter (with
 * group_read: group read allowed too when the file's group is one of
 * kapd's), non-empty, at most KAP_SECRET_MAX bytes.  KAP_OK, or
 * KAP_ERROR with err set; path (borrowed) names it in messages.
 */
int kapd_secret_file_check(const char *what, const struct stat *st,
                           const char *path, int group_read,
                           struct kap_err *err);

/*
 * kapd_secret_open() for a name that is a symbolic link (lst: its
 * lstat): the file behind it when the links are exactly the kubelet's
 * Secret volume layout (kapd_secret_kubelet.c), opened read-only with
 * its fstat in *st; else -1 with err set.  dfd is the directory of path
 * (dir names it in messages), name the last component; all borrowed.
 */
int kapd_secret_kubelet_open(const char *what, const char *path, int dfd,
                             const char *dir, const char *name,
                             const struct stat *lst, struct stat *st,
                             struct kap_err *err);

int kapd_secret_open(const char *what, const char *path, struct stat *st,
                     struct kap_err *err);

#endif /* KAPD_SECRET_H */
