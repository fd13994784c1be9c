/*
 * kap_cli_version.c -- does the installed tool still match its profile?
 * Runs the tool's versioncmd once (posix_spawn, never a shell, an empty
 * environment, stdin from /dev/null) and looks for the profile's version
 * in what it prints (kap_cli_version_ok).  Called when a proxy-mode tool
 * is configured: a profile generated from another version of the tool
 * would read its argv differently, so the tool is refused.  Blocking,
 * bounded by a deadline; for config load.  kap_cli_version_verify()
 * remembers binaries that passed (by inode, size and times) so that a
 * reload does not run every tool again: only a replaced or upgraded
 * binary is asked again.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kap_cli_rules.h"

#define VERSION_OUT   16384     /* bytes of output looked at */
#define VERSION_WAIT  30000     /* ms the tool may take (gcloud, a Python
                                   start, takes seconds on a busy machine) */

static long
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read fd into buf (at most cap - 1 bytes, NUL-terminated) until EOF or the deadline. */
static size_t
read_all(int fd, char *buf, size_t cap, long deadline)
{
    size_t len = 0;

    for (;;) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        long          left = deadline - now_ms();
        char          junk[512];
        ssize_t       n;

        if (left <= 0 || poll(&pfd, 1, (int) left) <= 0)
            break;
        if (len + 1 < cap)
            n = read(fd, buf + len, cap - 1 - len);
        else
            n = read(fd, junk, sizeof(junk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (len + 1 < cap)
            len += (size_t) n;
    }
    buf[len] = '\0';
    return len;
}

int
kap_cli_version_check(const struct kap_cli_profile *p, const char *path,
                      char *err, size_t errlen)
{
    const char *argv[32];
    char       *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", NULL };
    char        out[VERSION_OUT];
    int         fds[2], st;
    size_t      n = 0, len;
    long        deadline;
    pid_t       pid;
    posix_spawn_file_actions_t fa;

    if (p->version == NULL || p->versioncmd == NULL) {
        snprintf(err, errlen, "profile %s records no version", p->tool);
        return -1;
    }
    argv[n++] = p->tool;
    for (size_t i = 0; p->versioncmd[i] != NULL && n < 31; i++)
        argv[n++] = p->versioncmd[i];
    argv[n] = NULL;
    if (pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    st = posix_spawn(&pid, path, &fa, NULL, (char *const *) argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (st != 0) {
        close(fds[0]);
        snprintf(err, errlen, "%s: cannot run: %s", path, strerror(st));
        return -1;
    }
    deadline = now_ms() + VERSION_WAIT;
    len = read_all(fds[0], out, sizeof(out), deadline);
    close(fds[0]);
    kill(pid, SIGKILL);                 /* done or too slow: either way */
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (kap_cli_version_ok(p, out, len))
        return 0;
    if (now_ms() >= deadline) {
        snprintf(err, errlen, "%s did not print its version within %d s "
                 "(a busy machine? try the reload again)", path,
                 VERSION_WAIT / 1000);
        return -1;
    }
    out[strcspn(out, "\n")] = '\0';
    snprintf(err, errlen, "%s is not version %s of its profile (it says "
             "\"%.80s\"): rebuild kapd's profiles for the installed %s",
             path, p->version, out, p->tool);
    return -1;
}

/* Binaries that passed, keyed by what changes when a package upgrade or
 * an edit replaces them.  A fixed table: a miss only costs a re-run. */
#define VERIFIED_MAX 32

struct verified {
    uint64_t        key;            /* FNV-1a of path and profile version */
    dev_t           dev;
    ino_t           ino;
    off_t           size;
    struct timespec mtime, ctime;
};

static struct verified verified[VERIFIED_MAX];
static unsigned        verified_next;

static uint64_t
fnv1a(uint64_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;      /* separates "ab","c" from "a","bc" */
}

static int
same_file(const struct verified *v, uint64_t key, const struct stat *st)
{
    return v->key == key && v->dev == st->st_dev && v->ino == st->st_ino
           && v->size == st->st_size
           && v->mtime.tv_sec == st->st_mtim.tv_sec
           && v->mtime.tv_nsec == st->st_mtim.tv_nsec
           && v->ctime.tv_sec == st->st_ctim.tv_sec
           && v->ctime.tv_nsec == st->st_ctim.tv_nsec;
}

int
kap_cli_version_verify(const struct kap_cli_profile *p, const char *path,
                       char *err, size_t errlen)
{
    struct stat st;
    uint64_t    key;

    if (p->version == NULL || p->versioncmd == NULL) {
        snprintf(err, errlen, "profile %s records no version and "
                 "versioncmd: add both lines, so that kapd can tell when "
                 "the installed tool is not the one the profile describes",
                 p->tool != NULL ? p->tool : "(unnamed)");
        return -1;
    }
    if (stat(path, &st) < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    key = fnv1a(fnv1a(14695981039346656037ULL, path), p->version);
    for (unsigned i = 0; i < VERIFIED_MAX; i++)
        if (same_file(&verified[i], key, &st))
            return 0;
    if (kap_cli_version_check(p, path, err, errlen) != 0)
        return -1;
    verified[verified_next] = (struct verified) {
        .key = key, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
        .mtime = st.st_mtim, .ctime = st.st_ctim,
    };
    verified_next = (verified_next + 1) % VERIFIED_MAX;
    return 0;
}
