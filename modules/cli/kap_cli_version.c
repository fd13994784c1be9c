/*
 * kap_cli_version.c -- does the installed tool still match its profile?
 * Runs the tool's versioncmd once (posix_spawn, never a shell, an empty
 * environment, stdin from /dev/null) and looks for the profile's version
 * in what it prints (kap_cli_version_ok).  Called when a proxy-mode tool
 * is configured: a profile generated from another version of the tool
 * would read its argv differently, so the tool is refused.  Blocking,
 * bounded by a deadline; for config load, not for the event loop.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kap_cli_rules.h"

#define VERSION_OUT   16384     /* bytes of output looked at */
#define VERSION_WAIT  20000     /* ms the tool may take */

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
    len = read_all(fds[0], out, sizeof(out), now_ms() + VERSION_WAIT);
    close(fds[0]);
    kill(pid, SIGKILL);                 /* done or too slow: either way */
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (kap_cli_version_ok(p, out, len))
        return 0;
    out[strcspn(out, "\n")] = '\0';
    snprintf(err, errlen, "%s is not version %s of its profile (it says "
             "\"%.80s\"): rebuild kapd's profiles for the installed %s",
             path, p->version, out, p->tool);
    return -1;
}
