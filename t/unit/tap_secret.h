/*
 * tap_secret.h -- for unit tests of kap_secret_load(): tap_secret_refused()
 * passes when loading path fails with a message holding want and not
 * leak (a piece of the secret's text).  Include after tap.h.
 */
#ifndef KAP_TAP_SECRET_H
#define KAP_TAP_SECRET_H

#include <string.h>

#include <kapd/kap_secret.h>

static void
tap_secret_refused(const char *path, const char *want, const char *name,
                   const char *leak)
{
    struct kap_pool   *p = kap_pool_create();
    struct kap_err     e = { 0 };
    struct kap_secret *s = kap_secret_load(p, path, &e);

    if (!ok(s == NULL && e.set && strstr(e.msg, want) != NULL
            && strstr(e.msg, leak) == NULL, "refused: %s", name))
        diag("message: %s", e.set ? e.msg : "(none)");
    else
        diag("%s", e.msg);
    kap_pool_destroy(p);
}

#endif /* KAP_TAP_SECRET_H */
