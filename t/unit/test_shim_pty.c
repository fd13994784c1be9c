/*
 * test_shim_pty.c -- kap_shim_pty_run(), the call kap-shim makes for the
 * capsule's command (issue 10, "Private terminal"): exit statuses, a new
 * session without a controlling terminal when no fd is a terminal,
 * child_setup and envp, and on a terminal: a private pty on exactly the
 * fds that were terminals, the user's modes restored, output relayed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "tap.h"
#include "kap_shim_pty.h"

static int
run_sh(const char *script)
{
    char *argv[] = { (char *)"sh", (char *)"-c", (char *)script, NULL };
    return kap_shim_pty_run(argv, NULL);
}

/* child_setup: report the session and controlling terminal on a pipe */
static int
report_session(void *arg)
{
    int fd = *(int *)arg;
    char c = getsid(0) == getpid() ? 'S' : 's';
    int t = open("/dev/tty", O_RDWR | O_NOCTTY);
    char d = t < 0 ? 'N' : 'T';
    if (t >= 0)
        close(t);
    char buf[2] = { c, d };
    return write(fd, buf, 2) == 2 ? 0 : -1;
}

static int
refuse(void *arg)
{
    (void)arg;
    return -1;
}

/* the terminal half: in a child whose fds 0-2 are the slave of a pty this
 * test holds; prints (on the pty) what the command saw, exits with
 * kap_shim_pty_run's result, or 99 when the modes were not restored */
static void on_terminal(const char *slave_name, int stdout_pipe) __attribute__((noreturn));

static void
on_terminal(const char *slave_name, int stdout_pipe)
{
    if (setsid() < 0)
        _exit(90);
    int s = open(slave_name, O_RDWR);
    if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
        _exit(91);
    struct winsize ws = { .ws_row = 33, .ws_col = 101 };
    (void)ioctl(s, TIOCSWINSZ, &ws);
    dup2(s, 0);
    dup2(stdout_pipe >= 0 ? stdout_pipe : s, 1);
    dup2(s, 2);
    if (s > 2)
        close(s);
    if (stdout_pipe > 2)
        close(stdout_pipe);
    struct termios before, after;
    tcgetattr(0, &before);
    char script[512];
    snprintf(script, sizeof script,
             "t=$(tty); [ \"$t\" != %s ] && [ \"$t\" != 'not a tty' ] && echo PRIVATE >&2;"
             " test -t 0 && echo IN-TTY >&2; test -t 1 && echo OUT-TTY >&2 || echo OUT-PIPE >&2;"
             " echo \"SIZE:$(stty size)\" >&2; echo to-stdout; exit 4", slave_name);
    int r = run_sh(script);
    tcgetattr(0, &after);
    /* field by field: struct termios has padding */
    if (before.c_iflag != after.c_iflag || before.c_oflag != after.c_oflag
        || before.c_cflag != after.c_cflag || before.c_lflag != after.c_lflag
        || memcmp(before.c_cc, after.c_cc, sizeof before.c_cc) != 0)
        _exit(99);
    _exit(r);
}

/* read the master until every holder of the slave is gone */
static void
read_all(int m, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = { .fd = m, .events = POLLIN };
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t k = read(m, buf + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
        if (n + 1 >= cap)
            break;
    }
    buf[n] = '\0';
}

static void
terminal_case(int pipe_stdout)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    char name[128];
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) {
        ok(0, "a pty for the test: %s", strerror(errno));
        return;
    }
    int pp[2] = { -1, -1 };
    if (pipe_stdout && pipe(pp) < 0) {
        ok(0, "pipe");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(m);
        if (pp[0] >= 0)
            close(pp[0]);
        on_terminal(name, pp[1]);
    }
    if (pp[1] >= 0)
        close(pp[1]);
    static char screen[65536];
    read_all(m, screen, sizeof screen);
    char piped[256] = "";
    if (pp[0] >= 0) {
        ssize_t k = read(pp[0], piped, sizeof piped - 1);
        piped[k > 0 ? k : 0] = '\0';
        close(pp[0]);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    close(m);
    const char *how = pipe_stdout ? "stdout a pipe" : "fds 0-2 a terminal";
    ok(strstr(screen, "PRIVATE") != NULL, "%s: the command's terminal is a private pty", how);
    ok(strstr(screen, "IN-TTY") != NULL, "%s: stdin is that terminal", how);
    if (pipe_stdout) {
        ok(strstr(screen, "OUT-PIPE") != NULL, "%s: stdout stays the pipe", how);
        is_str(piped, "to-stdout\n", "stdout a pipe: output into the pipe unchanged");
    } else {
        ok(strstr(screen, "OUT-TTY") != NULL, "%s: stdout is that terminal", how);
        ok(strstr(screen, "to-stdout\r\n") != NULL, "%s: output relayed", how);
    }
    ok(strstr(screen, "SIZE:33 101") != NULL, "%s: the window size copied", how);
    ok(WIFEXITED(st) && WEXITSTATUS(st) == 4,
       "%s: exit status 4, terminal modes restored (status %d)", how, st);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 4)
        diag("screen: %s", screen);
}

int
main(void)
{
    plan(23);
    /* make check: no terminal on fds 0-2 here (the terminal cases make
     * their own); when run by hand from a terminal, skip the no-pty ones */
    int has_tty = isatty(0) || isatty(1) || isatty(2);

    if (has_tty) {
        for (int i = 0; i < 9; i++)
            ok(1, "# SKIP fds 0-2 include a terminal");
    } else {
        is_int(run_sh("exit 7"), 7, "exit 7 -> 7");
        is_int(run_sh("exit 0"), 0, "exit 0 -> 0");
        is_int(run_sh("kill -TERM $$"), 143, "SIGTERM -> 143");
        is_int(run_sh("kill -KILL $$"), 137, "SIGKILL -> 137");
        char *missing[] = { (char *)"/nonexistent/kap-test", NULL };
        is_int(kap_shim_pty_run(missing, NULL), 127, "not found -> 127");

        int pfd[2];
        if (pipe(pfd) < 0)
            return 1;
        struct kap_shim_pty_opts o = { .reap_all = 0, .child_setup = report_session,
                                       .child_arg = &pfd[1] };
        char *argv[] = { (char *)"true", NULL };
        is_int(kap_shim_pty_run(argv, &o), 0, "child_setup 0: the command runs");
        char got[3] = "";
        ssize_t k = read(pfd[0], got, 2);
        got[k > 0 ? k : 0] = '\0';
        is_str(got, "SN", "a new session, no controlling terminal (/dev/tty fails)");
        close(pfd[0]);
        close(pfd[1]);

        o.child_setup = refuse;
        is_int(kap_shim_pty_run(argv, &o), 125, "child_setup -1 -> 125, no exec");

        char *env[] = { (char *)"PATH=/nonexistent", (char *)"FOO=bar", NULL };
        struct kap_shim_pty_opts e = { .reap_all = 0, .envp = env };
        char *sh[] = { (char *)"sh", (char *)"-c", (char *)"exit 3", NULL };
        is_int(kap_shim_pty_run(sh, &e), 127, "envp: its PATH is searched (sh not found)");
    }
    char *env2[] = { (char *)"PATH=/usr/bin:/bin", (char *)"FOO=bar", NULL };
    struct kap_shim_pty_opts e2 = { .reap_all = 0, .envp = env2 };
    char *sh2[] = { (char *)"sh", (char *)"-c",
                    (char *)"[ \"$FOO\" = bar ] && [ -z \"$HOME\" ] && exit 5", NULL };
    is_int(kap_shim_pty_run(sh2, &e2), 5, "envp: the command's environment");

    /* the caller's signal dispositions come back */
    struct sigaction before, after;
    signal(SIGINT, SIG_IGN);
    sigaction(SIGINT, NULL, &before);
    run_sh("exit 0");
    sigaction(SIGINT, NULL, &after);
    ok(after.sa_handler == SIG_IGN, "the caller's SIGINT disposition is restored");

    terminal_case(0);
    terminal_case(1);
    return done_testing();
}
