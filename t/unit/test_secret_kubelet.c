/*
 * test_secret_kubelet.c -- a secret file behind the kubelet's Secret
 * volume layout (core/kapd_secret_kubelet.c), built with real symbolic
 * links: KEY -> ..data/KEY, ..data -> ..TIMESTAMP, the file in it.  That
 * layout loads (0400, 0440 for kapd's group, in a sticky 1777 volume
 * directory) and follows a swap of ..data; every other link is refused
 * with a message that names the broken hop: ..data pointing outside the
 * directory or to a name not of the timestamp form, an extra hop at any
 * step, a link to /etc/passwd, a key link to another key, group-writable
 * directories, a file readable by a group that is not kapd's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_secret.h"
#include "tap.h"
#include "tap_tmpdir.h"
#include "tap_secret.h"

#define TS1 "..2026_12_07_14_00_00.123456789"
#define TS2 "..2026_12_07_14_05_00.987654321"

static char dir[256];

static char *
at(const char *fmt, const char *a, const char *b)
{
    static char buf[8][PATH_MAX];
    static int  i;
    char       *p = buf[i++ % 8];
    char        rel[PATH_MAX / 2];

    snprintf(rel, sizeof(rel), fmt, a, b);
    snprintf(p, PATH_MAX, "%s/%s", dir, rel);
    return p;
}

static void
put(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);

    if (fd >= 0) {
        if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
            diag("short write to %s", path);
        close(fd);
    }
    chmod(path, mode);
}

/*
 * What the kubelet's atomic writer leaves: vol (mode vmode) holding the
 * directory ts (0755) with key (text, fmode), ..data -> ts, key ->
 * ..data/key.  KAP_OK when every step worked.
 */
static int
layout(const char *vol, mode_t vmode, const char *ts, const char *key,
       const char *text, mode_t fmode)
{
    char link[PATH_MAX];

    if (mkdir(at("%s", vol, ""), 0700) != 0 || chmod(at("%s", vol, ""),
                                                     vmode) != 0)
        return KAP_ERROR;
    if (mkdir(at("%s/%s", vol, ts), 0755) != 0
        || chmod(at("%s/%s", vol, ts), 0755) != 0)
        return KAP_ERROR;
    snprintf(link, sizeof(link), "%s/%s", ts, key);
    put(at("%s/%s", vol, link), text, fmode);
    snprintf(link, sizeof(link), "..data/%s", key);
    if (symlink(ts, at("%s/..data", vol, "")) != 0
        || symlink(link, at("%s/%s", vol, key)) != 0)
        return KAP_ERROR;
    return KAP_OK;
}

/* the secret at path loads and injects as want */
static void
loads(const char *path, const char *want, const char *name)
{
    struct kap_pool   *p = kap_pool_create();
    struct kap_err     e = { 0 };
    struct kap_secret *s = kap_secret_load(p, path, &e);
    char out[128];

    if (!ok(s != NULL && kap_secret_header(s, "{}", out, sizeof(out), &e)
            == KAP_OK && strcmp(out, want) == 0, "loads: %s", name))
        diag("message: %s", e.set ? e.msg : "(none)");
    kap_pool_destroy(p);
}

/* a refusal whose message holds want */
static void
refused(const char *path, const char *want, const char *name)
{
    tap_secret_refused(path, want, name, "s3cret");
}

/* ..data replaced as the atomic writer does: a new link renamed over */
static int
swap_data(const char *vol, const char *ts)
{
    if (symlink(ts, at("%s/..data_tmp", vol, "")) != 0)
        return KAP_ERROR;
    return rename(at("%s/..data_tmp", vol, ""), at("%s/..data", vol, ""))
           == 0 ? KAP_OK : KAP_ERROR;
}

static void
test_good(void)
{
    ok(layout("v", 01777, TS1, "token", "s3cret-one\n", 0400) == KAP_OK,
           "a Secret volume: 1777 tmpfs, key 0400");
    loads(at("v/token", "", ""), "s3cret-one", "key -> ..data/key");

    ok(mkdir(at("v/%s", TS2, ""), 0755) == 0
       && chmod(at("v/%s", TS2, ""), 0755) == 0, "a second timestamp dir");
    put(at("v/%s/token", TS2, ""), "s3cret-two\n", 0400);
    ok(swap_data("v", TS2) == KAP_OK, "..data swapped to the new dir");
    loads(at("v/token", "", ""), "s3cret-two", "after the swap, the new key");

    ok(layout("g", 0700, TS1, "key", "s3cret-grp", 0440) == KAP_OK
       && chown(at("g/%s/key", TS1, ""), (uid_t)-1, getegid()) == 0,
       "mode 0440, group kapd's (fsGroup)");
    loads(at("g/key", "", ""), "s3cret-grp", "0440 for kapd's group");
}

static void
test_refused(void)
{
    char out[PATH_MAX];

    /* ..data pointing outside the directory, by path or by a parent */
    ok(layout("o", 0700, TS1, "token", "s3cret", 0400) == KAP_OK
       && mkdir(at("elsewhere", "", ""), 0700) == 0, "layout o");
    put(at("elsewhere/token", "", ""), "s3cret", 0400);
    ok(unlink(at("o/..data", "", "")) == 0
       && symlink(at("elsewhere", "", ""), at("o/..data", "", "")) == 0,
       "..data -> an absolute directory elsewhere");
    refused(at("o/token", "", ""), "..data is not a link to a ..TIMESTAMP",
            "..data pointing outside (absolute)");
    ok(unlink(at("o/..data", "", "")) == 0
       && symlink("../elsewhere", at("o/..data", "", "")) == 0,
       "..data -> ../elsewhere");
    refused(at("o/token", "", ""), "..data is not a link to a ..TIMESTAMP",
            "..data pointing outside (..)");
    ok(unlink(at("o/..data", "", "")) == 0
       && symlink("..", at("o/..data", "", "")) == 0, "..data -> ..");
    refused(at("o/token", "", ""), "..data is not a link", "..data -> ..");

    /* an extra hop: the timestamp name is itself a link */
    ok(layout("h", 0700, TS1, "token", "s3cret", 0400) == KAP_OK
       && symlink(TS1, at("h/..2026_01_01_00_00_00.1", "", "")) == 0
       && swap_data("h", "..2026_01_01_00_00_00.1") == KAP_OK,
       "..data -> ..TS2 -> ..TS1 (extra hop)");
    refused(at("h/token", "", ""), "which is not a directory (an extra hop",
            "..data naming a link");
    /* an extra hop: the key link points to a link to the key link */
    ok(layout("k", 0700, TS1, "token", "s3cret", 0400) == KAP_OK
       && symlink("..data/token", at("k/alias", "", "")) == 0,
       "alias -> ..data/token (a name mismatch)");
    refused(at("k/alias", "", ""), "does not point to ..data/alias",
            "a key link naming another key");

    /* the file in the timestamp dir is a link to /etc/passwd */
    ok(layout("p", 0700, TS1, "passwd", "s3cret", 0400) == KAP_OK
       && unlink(at("p/%s/passwd", TS1, "")) == 0
       && symlink("/etc/passwd", at("p/%s/passwd", TS1, "")) == 0,
       "..data/passwd -> /etc/passwd");
    refused(at("p/passwd", "", ""), "..data/passwd is a further link",
            "the real file a link to /etc/passwd");
    ok(symlink("/etc/passwd", at("p/direct", "", "")) == 0,
       "direct -> /etc/passwd");
    refused(at("p/direct", "", ""), "is a symbolic link (refused): it does "
            "not point to ..data/direct", "a link to /etc/passwd");
    ok(symlink("..data/direct", at("p/..key", "", "")) == 0, "..key");
    refused(at("p/..key", "", ""), "name the key, not the kubelet's",
            "a key starting with ..");

    /* ..data a name not of the timestamp form (a directory beside it) */
    ok(layout("n", 0700, TS1, "token", "s3cret", 0400) == KAP_OK
       && mkdir(at("n/..other", "", ""), 0755) == 0
       && swap_data("n", "..other") == KAP_OK, "..data -> ..other");
    refused(at("n/token", "", ""), "..data is not a link to a ..TIMESTAMP",
            "..data naming a non-timestamp directory");

    /* directories others may write; a file others may read */
    ok(layout("w", 0777, TS1, "token", "s3cret", 0400) == KAP_OK,
       "a 0777 volume directory, not sticky");
    refused(at("w/token", "", ""), "is mode 0777: others could swap",
            "volume directory writable, not sticky");
    ok(layout("t", 0700, TS1, "token", "s3cret", 0400) == KAP_OK
       && chmod(at("t/%s", TS1, ""), 0775) == 0,
       "a group-writable timestamp directory");
    refused(at("t/token", "", ""), "writable by nobody else",
            "timestamp directory 0775");
    ok(layout("m", 0700, TS1, "token", "s3cret", 0644) == KAP_OK,
       "a key of mode 0644 (the kubelet's default)");
    snprintf(out, sizeof(out), "is mode 0644 (group %lu): set the Secret "
             "volume's defaultMode to 0440", (unsigned long)getegid());
    refused(at("m/token", "", ""), out, "key mode 0644");
    if (geteuid() == 0) {
        ok(layout("x", 0700, TS1, "token", "s3cret", 0440) == KAP_OK
           && chown(at("x/%s/token", TS1, ""), 0, 65534) == 0,
           "a key of mode 0440, group 65534 (not kapd's)");
        refused(at("x/token", "", ""), "is mode 0440 (group 65534)",
                "group read for a group not kapd's");
        ok(layout("u", 0700, TS1, "token", "s3cret", 0400) == KAP_OK
           && lchown(at("u/..data", "", ""), 65534, 65534) == 0,
           "..data owned by uid 65534");
        refused(at("u/token", "", ""), "the link ..data is owned by uid "
                "65534", "..data of another uid");
    } else {
        diag("not root: group and owner refusals not tested");
    }
}

int
main(void)
{
    char tmpl[] = "/tmp/kapd-test-kubelet-XXXXXX";

    if (mkdtemp(tmpl) == NULL) {
        printf("1..0 # SKIP mkdtemp: %s\n", strerror(errno));
        return 0;
    }
    snprintf(dir, sizeof(dir), "%s", tmpl);
    test_good();
    test_refused();
    is_int(kapd_secret_nlive, 0, "nothing left loaded");
    tap_rmtree(dir);
    return done_testing();
}
