/*
 * tap_tmpdir.h -- for unit tests that work in a directory of their own
 * under /tmp: tap_rmtree(dir) removes it and everything below it (no
 * symbolic link followed).  Include after config.h.
 */
#ifndef KAP_TAP_TMPDIR_H
#define KAP_TAP_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int
tap_rm_one(const char *path, const struct stat *st, int flag,
           struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

static inline void
tap_rmtree(const char *dir)
{
    nftw(dir, tap_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif /* KAP_TAP_TMPDIR_H */
