/*
 * kap_shim_pty.c -- the capsule's command in its own session, on a private
 * pty relayed to the user's terminal (see kap_shim_pty.h).
 *
 * Why: a command that shares the user's terminal and session can push
 * input into it with ioctl(TIOCSTI) (the user's shell runs it after kap
 * returns), change its foreground process group or its modes.  Here the
 * command's controlling terminal is a pty of its own; the relay process
 * (this one) keeps the user's terminal, is not dumpable, and copies bytes.
 *
 * One poll(2) loop; signals set flags and write a byte to a self-pipe, so
 * that no signal is lost between the flag check and poll().  The handlers
 * have no SA_RESTART: a write to a flow-controlled terminal is
 * interrupted and the loop gets to run.
 */
#define _GNU_SOURCE
#include "kap_shim_pty.h"
#include "kap_shim_say.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define PTY_INBUF       4096    /* user -> command */
#define PTY_OUTBUF     65536    /* command -> user */
#define PTY_QUIET_MS     200    /* after the command exits: output ends
                                   when the pty is quiet this long */
/* the parent-death signal the relay asks for in place of a caller's
 * SIGKILL, so that it can give the terminal its modes back first */
#define PTY_SIG_ORPHANED (SIGRTMIN + 1)

/* the signals the relay handles while the command runs */
static const int pty_sigs[] = {
    SIGCHLD, SIGWINCH, SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP, SIGCONT,
    SIGUSR1, SIGUSR2, SIGPIPE,
};
#define PTY_NSIGS (sizeof pty_sigs / sizeof pty_sigs[0])

static volatile sig_atomic_t pty_pending[NSIG];
static int pty_wake_w = -1;             /* self-pipe, write end */

struct pty_ctx {
    int             tty;        /* the user's terminal whose modes we keep */
    struct termios  saved;      /* its modes before we started */
    int             raw;        /* 1: we put it in raw mode */
    int             in;         /* user's input (fd 0) or -1 */
    int             out;        /* where the command's output goes, or -1 */
    int             master;     /* the pty, or -1 */
    int             wake_r;
    pid_t           child;
    int             child_done;
    int             status;     /* wait status of the command */
    int             reap_all;
    char            inbuf[PTY_INBUF];
    size_t          inlen;
    char            outbuf[PTY_OUTBUF];
    size_t          outlen;
    int             master_eof;
    pid_t           probe;      /* > 0: the job-control probe (pid 1) */
    int             held;       /* the probe is stopped: so is the command */
    int             pdeath;     /* the caller's parent-death signal */
    int             orphaned;   /* our parent died: end at once */
    int             stop_fd;    /* > 2: told of the job's stops */
};

static void pty_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
pty_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kap_shim_vsay("kap-shim", fmt, ap);
    va_end(ap);
}

static void
pty_on_signal(int sig)
{
    int e = errno;
    if (sig > 0 && sig < NSIG)
        pty_pending[sig] = 1;
    if (pty_wake_w >= 0) {
        char c = 0;
        ssize_t w = write(pty_wake_w, &c, 1);
        (void)w;
    }
    errno = e;
}

static int
tty_set(int fd, const struct termios *t)
{
    while (tcsetattr(fd, TCSADRAIN, t) < 0) {
        if (errno != EINTR)
            return -1;
    }
    return 0;
}

/* the user's terminal back to how it was.  SIGTTOU blocked: the user's
 * shell may already have taken the terminal back (a stop, our parent's
 * death), and these are its own modes; a background process's tcsetattr
 * would otherwise stop the job again (or, for a pid 1, which cannot stop,
 * fail and still send SIGTTOU to its process group). */
static void
tty_restore(struct pty_ctx *c)
{
    if (!c->raw)
        return;
    sigset_t ttou, old;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    sigprocmask(SIG_BLOCK, &ttou, &old);
    (void)tty_set(c->tty, &c->saved);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* raw mode on the user's terminal: every key goes to the command's pty,
 * whose line discipline does echo, editing and Ctrl-C */
static void
tty_raw(struct pty_ctx *c)
{
    if (!c->raw)
        return;
    struct termios t = c->saved;
    cfmakeraw(&t);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    (void)tty_set(c->tty, &t);
}

static void
winsize_sync(struct pty_ctx *c)
{
    struct winsize ws;
    if (c->master >= 0 && c->tty >= 0 && ioctl(c->tty, TIOCGWINSZ, &ws) == 0)
        (void)ioctl(c->master, TIOCSWINSZ, &ws);
}

/* the command's foreground process group (its pty's), else its own */
static pid_t
fg_pgrp(const struct pty_ctx *c)
{
    pid_t fg = c->master >= 0 ? tcgetpgrp(c->master) : -1;
    return fg > 0 ? fg : c->child;
}

/* send sig to the command's foreground job; with all, to its session
 * leader's group too (TERM, HUP: everything should end) */
static void
forward(struct pty_ctx *c, int sig, int all)
{
    if (c->child_done)
        return;
    pid_t fg = fg_pgrp(c);
    if (kill(-fg, sig) < 0)
        (void)kill(fg, sig);
    if (all && fg != c->child && kill(-c->child, sig) < 0)
        (void)kill(c->child, sig);
}

/* the caller's parent waits for this before it stops (opts->stop_fd) */
static void
job_tell(struct pty_ctx *c, char what)
{
    if (c->stop_fd > 2) {
        ssize_t w = write(c->stop_fd, &what, 1);
        (void)w;                    /* full: the reader is not waiting */
    }
}

/* kap's job stopped (the probe did): stop the command and give the user's
 * shell its terminal modes */
static void
job_stopped(struct pty_ctx *c)
{
    if (c->held)
        return;
    c->held = 1;
    forward(c, SIGSTOP, 1);
    tty_restore(c);
    job_tell(c, 's');
}

/* kap's job continued (the probe sets raw mode itself) */
static void
job_continued(struct pty_ctx *c)
{
    if (!c->held)
        return;
    c->held = 0;
    winsize_sync(c);
    forward(c, SIGCONT, 1);
    job_tell(c, 'c');
}

/* the probe's state changes, in the order they happened; the kernel keeps
 * only the latest, so a stop and a continue that came before we looked
 * leave the command running, as they should */
static void
probe_check(struct pty_ctx *c, pid_t p, int st)
{
    if (WIFSTOPPED(st)) {
        job_stopped(c);
    } else if (WIFCONTINUED(st)) {
        job_continued(c);
    } else if (p == c->probe) {         /* gone: nothing holds the command */
        c->probe = 0;
        job_continued(c);
    }
}

static void
reap(struct pty_ctx *c)
{
    while (c->probe > 0) {
        int st;
        pid_t p = waitpid(c->probe, &st, WNOHANG | WUNTRACED | WCONTINUED);
        if (p < 0 && errno == EINTR)
            continue;
        if (p < 0) {
            c->probe = 0;
            job_continued(c);
        }
        if (p <= 0)
            break;
        probe_check(c, p, st);
    }
    for (;;) {
        int st;
        pid_t p = waitpid(c->reap_all ? -1 : c->child, &st, WNOHANG);
        if (p < 0 && errno == EINTR)
            continue;
        if (p <= 0)
            return;
        if (p == c->probe) {
            probe_check(c, p, st);
            continue;
        }
        if (p == c->child && (WIFEXITED(st) || WIFSIGNALED(st))) {
            c->child_done = 1;
            c->status = st;
            if (!c->reap_all)
                return;
        }
    }
}

static volatile sig_atomic_t probe_continued;
static void
probe_on_cont(int sig)
{
    (void)sig;
    probe_continued = 1;
}

/*
 * The job-control probe, for a relay that is pid 1 of its pid namespace
 * (the capsule's init).  The kernel does not stop such a process, not
 * even with SIGSTOP from itself, so a child that can stop stands in for
 * it in kap's process group: it gets the same SIGTSTP, SIGTTIN, SIGTTOU
 * and SIGCONT as the rest of kap's job, in the same kill(2), and stops and
 * continues with it.  The relay mirrors its state (reap()): stopped, the
 * command is stopped and the user's terminal has its modes back;
 * continued, the command is continued.  Nothing depends on the order in
 * which the job's processes take their signals, and a group the kernel
 * does not stop (an orphaned one) stops neither.  On SIGCONT the probe
 * puts the user's terminal in raw mode again: from the background (bg)
 * that stops the job with SIGTTOU until fg, as for any job that wants the
 * terminal.  Every other signal is ignored: SIGINT from the terminal is
 * the command's business, the relay's.
 */
static pid_t
probe_start(struct pty_ctx *c)
{
    pid_t p = fork();
    if (p != 0)
        return p;
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP && s != SIGTSTP && s != SIGTTIN
            && s != SIGTTOU && s != SIGCONT)
            (void)signal(s, SIG_IGN);
    (void)signal(SIGTSTP, SIG_DFL);
    (void)signal(SIGTTIN, SIG_DFL);
    (void)signal(SIGTTOU, SIG_DFL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = probe_on_cont;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGCONT, &sa, NULL);
    /* SIGCONT's handler runs only in sigsuspend(): none is missed between
     * the check and the wait (a blocked SIGCONT still continues us) */
    sigset_t cont, none;
    sigemptyset(&cont);
    sigaddset(&cont, SIGCONT);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &cont, NULL);
    if (c->master >= 0)
        (void)close(c->master);
    (void)close(c->wake_r);
    if (c->stop_fd > 2)
        (void)close(c->stop_fd);
    (void)close(pty_wake_w);
    for (;;) {
        if (probe_continued) {
            probe_continued = 0;
            sigprocmask(SIG_SETMASK, &none, NULL);
            tty_raw(c);             /* SIGTTOU may stop us (bg) */
            sigprocmask(SIG_SETMASK, &cont, NULL);
        } else {
            sigsuspend(&none);
        }
    }
}

/* the probe gone before the terminal's modes are restored for good: a
 * SIGCONT must not make it set raw mode again */
static void
probe_end(struct pty_ctx *c)
{
    if (c->probe <= 0)
        return;
    (void)kill(c->probe, SIGKILL);
    while (waitpid(c->probe, NULL, 0) < 0 && errno == EINTR)
        ;
    c->probe = 0;
}

/*
 * SIGTSTP for us: the user's shell stops kap's job (Ctrl-Z on the user's
 * terminal when it is not in raw mode, or kill -TSTP).  The command is in
 * a session of its own, out of reach of that: stop it (SIGSTOP: a SIGTSTP
 * to a session leader's orphaned process group is discarded), give the
 * terminal its modes back and stop our whole process group; once the
 * user's shell continues it, raw mode again and continue the command.  A
 * stop the kernel refuses (an orphaned process group: no shell would
 * continue it) continues the command at once.  A pid 1 cannot stop: its
 * probe does, and that is what stops the command (probe_start()).
 * (Ctrl-Z in raw mode is a byte for the private pty: a job-control shell
 * there stops its job; a command that is the session leader is not
 * stopped, as its process group is orphaned.)
 */
static void
suspend(struct pty_ctx *c)
{
    if (getpid() == 1)
        return;                     /* the probe's business */
    forward(c, SIGSTOP, 1);
    tty_restore(c);
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(SIGTSTP, &dfl, &old);
    (void)kill(0, SIGTSTP);         /* we stop here, until SIGCONT */
    (void)sigaction(SIGTSTP, &old, NULL);
    pty_pending[SIGTSTP] = 0;
    tty_raw(c);
    winsize_sync(c);
    forward(c, SIGCONT, 1);
}

/* our parent died and the caller wanted to die with it (its parent-death
 * signal was SIGKILL, see kap_shim_pty_run()): the terminal's modes back,
 * the command killed, and the relay ends now */
static void
parent_died(struct pty_ctx *c)
{
    probe_end(c);
    tty_restore(c);
    c->raw = 0;
    forward(c, SIGKILL, 1);
    c->orphaned = 1;
}

static void
handle_signals(struct pty_ctx *c)
{
    char drain[64];
    while (read(c->wake_r, drain, sizeof drain) > 0)
        ;
    for (int s = 1; s < NSIG; s++) {
        if (!pty_pending[s])
            continue;
        pty_pending[s] = 0;
        switch (s) {
        case SIGCHLD:
            reap(c);
            break;
        case SIGWINCH:
            winsize_sync(c);
            break;
        case SIGINT:
        case SIGQUIT:
        case SIGUSR1:
        case SIGUSR2:
            forward(c, s, 0);
            break;
        case SIGTERM:
        case SIGHUP:
            forward(c, s, 1);
            if (s == SIGHUP)
                forward(c, SIGCONT, 1);
            break;
        case SIGTSTP:
            suspend(c);
            break;
        case SIGCONT:
            /* continued after a stop we did not make (SIGSTOP, SIGTTOU):
             * the user's shell may have changed the terminal's modes.
             * A pid 1 does not stop: its probe sets them. */
            if (getpid() == 1)
                break;
            tty_raw(c);
            winsize_sync(c);
            break;
        default:
            if (s == PTY_SIG_ORPHANED)
                parent_died(c);
            break;                  /* SIGPIPE: write() reports EPIPE */
        }
    }
}

/* Close every descriptor above 2 that is a terminal: the command must hold
 * none to the user's terminal.  Others (pipes the caller passes on) stay. */
static void
close_other_ttys(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        int dfd = dirfd(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end;
            long fd = strtol(e->d_name, &end, 10);
            if (*end != '\0' || end == e->d_name || fd <= 2 || fd == dfd)
                continue;
            if (isatty((int)fd))
                (void)close((int)fd);
        }
        closedir(d);
        return;
    }
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
               ? (long)rl.rlim_cur : 65536;
    if (max > 65536)
        max = 65536;
    for (long fd = 3; fd < max; fd++)
        if (isatty((int)fd))
            (void)close((int)fd);
}

void
kap_shim_sig_reset(void)
{
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            (void)signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

/* in the child: new session, the pty as controlling terminal on the fds
 * that were terminals, then exec */
static void child_run(char *const argv[], const struct pty_ctx *c, int slave,
                      const int was_tty[3], const struct kap_shim_pty_opts *o)
    __attribute__((noreturn));

static void
child_run(char *const argv[], const struct pty_ctx *c, int slave,
          const int was_tty[3], const struct kap_shim_pty_opts *o)
{
    /* the relay's handlers are not the command's business; and a shell's
     * background job starts with SIGINT and SIGQUIT ignored: the command
     * must get the user's Ctrl-C */
    kap_shim_sig_reset();
    /* the relay made itself non-dumpable; a child_setup that writes its
     * own /proc/self/uid_map needs to be dumpable */
    (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    /* the relay's own descriptors (close-on-exec anyway): not even
     * child_setup sees them */
    if (c->master >= 0)
        (void)close(c->master);
    (void)close(c->wake_r);
    (void)close(pty_wake_w);
    if (c->stop_fd > 2)
        (void)close(c->stop_fd);
    if (setsid() < 0) {
        pty_say("setsid: %s", strerror(errno));
        _exit(125);
    }
    if (slave >= 0) {
        if (ioctl(slave, TIOCSCTTY, 0) < 0) {
            pty_say("TIOCSCTTY: %s", strerror(errno));
            _exit(125);
        }
        for (int fd = 0; fd < 3; fd++)
            if (was_tty[fd] && dup2(slave, fd) < 0) {
                pty_say("dup2: %s", strerror(errno));
                _exit(125);
            }
        if (slave > 2)
            (void)close(slave);
    }
    close_other_ttys();
    if (o != NULL && o->child_setup != NULL && o->child_setup(o->child_arg) < 0)
        _exit(125);
    if (o != NULL && o->envp != NULL)
        environ = o->envp;          /* its PATH is the one searched, too */
    execvp(argv[0], argv);
    int e = errno;
    pty_say("%s: %s", argv[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

/* open the pty with the user's modes and window size; returns the slave */
static int
pty_open(struct pty_ctx *c)
{
    c->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (c->master < 0) {
        pty_say("posix_openpt: %s", strerror(errno));
        return -1;
    }
    char name[128];
    if (grantpt(c->master) < 0 || unlockpt(c->master) < 0
        || ptsname_r(c->master, name, sizeof name) != 0) {
        pty_say("pty set-up: %s", strerror(errno));
        return -1;
    }
    int slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave < 0) {
        pty_say("%s: %s", name, strerror(errno));
        return -1;
    }
    (void)tty_set(slave, &c->saved);
    winsize_sync(c);
    int fl = fcntl(c->master, F_GETFL);
    if (fl < 0 || fcntl(c->master, F_SETFL, fl | O_NONBLOCK) < 0) {
        pty_say("fcntl: %s", strerror(errno));
        (void)close(slave);
        return -1;
    }
    return slave;
}

static long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* user's input ended (fd 0 is a terminal: only on hang-up) */
static void
input_ended(struct pty_ctx *c, int hangup)
{
    c->in = -1;
    if (hangup) {
        forward(c, SIGHUP, 1);
        forward(c, SIGCONT, 1);
        return;
    }
    /* an end of file for a command reading in canonical mode */
    struct termios t;
    if (tcgetattr(c->master, &t) == 0 && (t.c_lflag & ICANON)
        && c->inlen < sizeof c->inbuf)
        c->inbuf[c->inlen++] = (char)t.c_cc[VEOF];
}

static void
write_out(struct pty_ctx *c)
{
    ssize_t w = write(c->out, c->outbuf, c->outlen);
    if (w > 0) {
        memmove(c->outbuf, c->outbuf + w, c->outlen - (size_t)w);
        c->outlen -= (size_t)w;
    } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
        c->out = -1;                /* terminal gone: keep draining */
        c->outlen = 0;
    }
}

/* the relay: until the command exits and its output is copied.  While
 * the stop probe stands in for us (stopped), it relays nothing, as a
 * stopped relay would not: a read or a write on the user's terminal from
 * the background would send SIGTTIN or SIGTTOU to kap's job. */
static void
relay(struct pty_ctx *c)
{
    long quiet_since = -1;
    for (;;) {
        handle_signals(c);
        if (c->orphaned)
            return;
        if (c->out < 0)
            c->outlen = 0;
        int held = c->held;
        if (c->child_done && !held) {
            if (c->master < 0 || c->master_eof)
                break;
            if (quiet_since < 0)
                quiet_since = now_ms();
            else if (now_ms() - quiet_since >= PTY_QUIET_MS)
                break;
        }
        struct pollfd p[4];
        nfds_t n = 0;
        int pi = -1, pm = -1, po = -1;
        p[n].fd = c->wake_r;
        p[n].events = POLLIN;
        n++;
        if (c->in >= 0 && c->inlen < sizeof c->inbuf && !c->child_done && !held) {
            pi = (int)n;
            p[n].fd = c->in;
            p[n].events = POLLIN;
            n++;
        }
        if (c->master >= 0 && !c->master_eof && !held) {
            short ev = 0;
            if (c->outlen < sizeof c->outbuf)
                ev |= POLLIN;
            if (c->inlen > 0 && !c->child_done)
                ev |= POLLOUT;
            if (ev) {
                pm = (int)n;
                p[n].fd = c->master;
                p[n].events = ev;
                n++;
            }
        }
        if (c->out >= 0 && c->outlen > 0 && !held) {
            po = (int)n;
            p[n].fd = c->out;
            p[n].events = POLLOUT;
            n++;
        }
        int tmo = -1;
        if (c->child_done && !held)
            tmo = PTY_QUIET_MS;
        int r = poll(p, n, tmo);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            pty_say("poll: %s", strerror(errno));
            break;
        }
        /* signals first: a window-size change made before the user typed
         * a key reaches the command before that key does */
        handle_signals(c);
        if (pi >= 0 && p[pi].revents) {
            ssize_t k = read(c->in, c->inbuf + c->inlen, sizeof c->inbuf - c->inlen);
            if (k > 0)
                c->inlen += (size_t)k;
            else if (k == 0)
                input_ended(c, 0);
            else if (errno != EINTR && errno != EAGAIN)
                input_ended(c, 1);
        }
        if (pm >= 0 && (p[pm].revents & (POLLIN | POLLHUP | POLLERR))
            && c->outlen < sizeof c->outbuf) {
            ssize_t k = read(c->master, c->outbuf + c->outlen, sizeof c->outbuf - c->outlen);
            if (k > 0) {
                c->outlen += (size_t)k;
                quiet_since = -1;   /* output still coming */
            } else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
                c->master_eof = 1;  /* EIO: every holder of the slave closed it */
            }
        }
        if (pm >= 0 && (p[pm].revents & POLLOUT) && c->inlen > 0) {
            ssize_t k = write(c->master, c->inbuf, c->inlen);
            if (k > 0) {
                memmove(c->inbuf, c->inbuf + k, c->inlen - (size_t)k);
                c->inlen -= (size_t)k;
            } else if (k < 0 && errno != EINTR && errno != EAGAIN) {
                c->inlen = 0;
            }
        }
        if (po >= 0 && (p[po].revents & (POLLOUT | POLLERR | POLLHUP))) {
            write_out(c);
            quiet_since = -1;       /* the terminal is still taking it */
        }
        if (c->out < 0)
            c->outlen = 0;
    }
    /* what is still buffered for the user's terminal (a second without
     * progress: the terminal is stuck, give up) */
    while (c->out >= 0 && c->outlen > 0 && !c->orphaned) {
        struct pollfd p = { .fd = c->out, .events = POLLOUT };
        int r = poll(&p, 1, 1000);
        if (r == 0)
            break;
        if (r > 0)
            write_out(c);
    }
}

/* wait for the command when there is no pty to relay */
static void
wait_only(struct pty_ctx *c)
{
    while (!c->child_done || c->held) {
        handle_signals(c);
        if (c->orphaned || (c->child_done && !c->held))
            break;
        struct pollfd p = { .fd = c->wake_r, .events = POLLIN };
        if (poll(&p, 1, -1) < 0 && errno != EINTR) {
            pty_say("poll: %s", strerror(errno));
            break;
        }
    }
}

int
kap_shim_pty_run(char *const argv[], const struct kap_shim_pty_opts *o)
{
    if (argv == NULL || argv[0] == NULL) {
        pty_say("no command");
        return 125;
    }
    static struct pty_ctx ctx;              /* 70 KB of buffers */
    struct pty_ctx *c = &ctx;
    memset(c, 0, sizeof *c);
    c->tty = c->in = c->out = c->master = c->wake_r = -1;
    int rall = o != NULL ? o->reap_all : -1;
    c->reap_all = rall < 0 ? getpid() == 1 : rall > 0;
    c->stop_fd = o != NULL ? o->stop_fd : 0;

    int was_tty[3];
    for (int fd = 0; fd < 3; fd++) {
        was_tty[fd] = isatty(fd);
        if (was_tty[fd] && c->tty < 0 && tcgetattr(fd, &c->saved) == 0)
            c->tty = fd;
    }
    int slave = -1;
    if (c->tty >= 0) {
        c->in = was_tty[0] ? 0 : -1;
        c->out = was_tty[1] ? 1 : was_tty[2] ? 2 : 0;
        slave = pty_open(c);
        if (slave < 0) {
            if (c->master >= 0)
                (void)close(c->master);
            return 125;
        }
    }

    int pw[2];
    if (pipe2(pw, O_CLOEXEC | O_NONBLOCK) < 0) {
        pty_say("pipe: %s", strerror(errno));
        if (slave >= 0) {
            (void)close(slave);
            (void)close(c->master);
        }
        return 125;
    }
    c->wake_r = pw[0];
    pty_wake_w = pw[1];
    for (int s = 1; s < NSIG; s++)
        pty_pending[s] = 0;
    struct sigaction sa, old[PTY_NSIGS];
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pty_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;                        /* no SA_RESTART: see above */
    for (size_t i = 0; i < PTY_NSIGS; i++)
        (void)sigaction(pty_sigs[i], &sa, &old[i]);
    struct sigaction old_orphaned;
    (void)sigaction(PTY_SIG_ORPHANED, &sa, &old_orphaned);
    sigset_t unblock, oldmask;
    sigemptyset(&unblock);
    for (size_t i = 0; i < PTY_NSIGS; i++)
        sigaddset(&unblock, pty_sigs[i]);
    sigaddset(&unblock, PTY_SIG_ORPHANED);
    sigprocmask(SIG_UNBLOCK, &unblock, &oldmask);
    /* a caller that dies with its parent (parent-death signal SIGKILL, as
     * the capsule's init does) would leave the user's terminal in raw
     * mode: while it is raw, that death is ours to handle */
    (void)prctl(PR_GET_PDEATHSIG, &c->pdeath, 0, 0, 0);
    int take_pdeath = c->pdeath == SIGKILL && c->tty >= 0 && c->in >= 0;
    if (take_pdeath)
        (void)prctl(PR_SET_PDEATHSIG, PTY_SIG_ORPHANED, 0, 0, 0);

    /* the command must not reach our descriptors (the user's terminal)
     * through /proc/PID/fd or ptrace */
    int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
    (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    c->child = fork();
    if (c->child == 0)
        child_run(argv, c, slave, was_tty, o);
    /* after the command: it must not inherit the probe as a child; and
     * after PR_SET_DUMPABLE 0, as it holds the user's terminal too */
    if (c->child > 0 && getpid() == 1) {
        c->raw = c->tty >= 0 && c->in >= 0;
        c->probe = probe_start(c);
        if (c->probe < 0) {
            pty_say("fork: %s (no job control)", strerror(errno));
            c->probe = 0;
        }
    }
    int ret;
    if (c->child < 0) {
        pty_say("fork: %s", strerror(errno));
        ret = 125;
    } else {
        if (slave >= 0)
            (void)close(slave);
        slave = -1;
        if (c->tty >= 0) {
            c->raw = c->in >= 0;
            tty_raw(c);
            relay(c);
            probe_end(c);
            tty_restore(c);
        } else {
            wait_only(c);
            probe_end(c);
        }
        while (!c->child_done) {            /* the relay ended early */
            handle_signals(c);
            if (c->child_done)
                break;
            int st;
            pid_t p = waitpid(c->child, &st, 0);
            if (p == c->child) {
                c->child_done = 1;
                c->status = st;
            } else if (p < 0 && errno != EINTR) {
                c->status = 125 << 8;
                break;
            }
        }
        ret = WIFSIGNALED(c->status) ? 128 + WTERMSIG(c->status) : WEXITSTATUS(c->status);
    }

    if (slave >= 0)
        (void)close(slave);
    if (c->master >= 0)
        (void)close(c->master);
    if (dumpable >= 0)
        (void)prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0);
    if (take_pdeath)
        (void)prctl(PR_SET_PDEATHSIG, c->pdeath, 0, 0, 0);
    for (size_t i = 0; i < PTY_NSIGS; i++)
        (void)sigaction(pty_sigs[i], &old[i], NULL);
    (void)sigaction(PTY_SIG_ORPHANED, &old_orphaned, NULL);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    pty_wake_w = -1;
    (void)close(pw[0]);
    (void)close(pw[1]);
    return ret;
}
