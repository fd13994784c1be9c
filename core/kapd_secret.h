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
 * non-empty and at most KAP_SECRET_MAX bytes.  Returns the file opened
 * read-only (close-on-exec; the caller closes it) with its fstat in *st,
 * or -1 with err set to a message that starts with what ("TLS key file
 * ... is mode 0644: run chmod 600 ...").
 */
#ifndef KAPD_SECRET_H
#define KAPD_SECRET_H

#include <kapd/kap_secret.h>

#include <sys/stat.h>

extern unsigned kapd_secret_nlive;

int kapd_secret_open(const char *what, const char *path, struct stat *st,
                     struct kap_err *err);

#endif /* KAPD_SECRET_H */
