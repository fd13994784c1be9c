/*
 * kap_cli_home.c -- the per-call home of a tool: made fresh (0700, with
 * the config directories its environment names) before the call and
 * removed with everything in it after.  See kap_cli_env.h.
 */
#define _GNU_SOURCE
#include "kap_cli_env.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_module.h>

static const char *const kap_cli_home_dirs[] = {
    "/.config", "/.config/gh", "/.config/glab-cli", "/.local",
    "/.local/share", "/.local/state", "/.cache", "/.docker", "/tmp",
};

char *
kap_cli_home_make(struct kap_pool *pool, const char *parent,
                  struct kap_err *e)
{
    char   *home, *sub;
    size_t  i;

    home = kap_psprintf(pool, "%s/call-XXXXXX", parent);
    if (home == NULL) {
        kap_err_set(e, "cli: out of memory");
        return NULL;
    }
    if (mkdtemp(home) == NULL) {
        kap_err_set(e, "cli: cannot make a home in %s: %s", parent,
                    strerror(errno));
        return NULL;
    }
    for (i = 0; i < sizeof(kap_cli_home_dirs) / sizeof(kap_cli_home_dirs[0]);
         i++) {
        sub = kap_psprintf(pool, "%s%s", home, kap_cli_home_dirs[i]);
        if (sub == NULL || mkdir(sub, 0700) != 0) {
            kap_err_set(e, "cli: cannot make %s: %s",
                        sub != NULL ? sub : home, strerror(errno));
            (void)kap_cli_home_remove(home);
            return NULL;
        }
    }
    return home;
}

static int
kap_cli_home_rm(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        return rmdir(path) != 0 ? -1 : 0;
    return unlink(path) != 0 ? -1 : 0;
}

int
kap_cli_home_remove(const char *home)
{
    /* FTW_PHYS: a symbolic link is removed, never followed; FTW_MOUNT:
     * never into another filesystem; FTW_DEPTH: contents first. */
    if (nftw(home, kap_cli_home_rm, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT)
        != 0)
        return KAP_ERROR;
    return KAP_OK;
}
