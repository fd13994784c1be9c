/*
 * kap_shim_capsule.c -- `kap-shim capsule`: kap run's capsule, from the
 * private kapd's start to the command's exit.
 *
 *   kap-shim (the caller's namespaces)
 *     starts kapd (own session, dies with us) with --ready-fd: readiness
 *     through a pipe, no polling; writes the capsule's id maps; waits;
 *     stops kapd; removes the runtime directory.
 *   `- capsule (a user namespace unless root; new net, ipc, uts, cgroup
 *      and pid namespaces) forks:
 *      `- init, pid 1: loopback up; forks the bridge (which stays in the
 *         host's mount namespace, where kapd's sockets are); builds the
 *         capsule's root in a new mount namespace (kap_shim_mounts.c);
 *         waits for the bridge and kapd; runs the command on a private
 *         pty (kap_shim_pty.c), which, right before exec, enters a nested
 *         user namespace (a root caller: one mapping root to an
 *         unprivileged uid), sets limits, the environment allow-list,
 *         closes inherited descriptors and installs seccomp.
 *
 * Exit status: the command's (128+N for signal N); 125 when the capsule
 * could not be set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

#include "kap_shim_capsule.h"
#include "kap_shim_pty.h"

/* a root caller's command runs as this uid outside when the project is
 * root's (or there is none); as the project's owner otherwise */
#define CAP_ROOT_MAPPED_ID 2147418112u

static void
usage(FILE *f)
{
    fprintf(f,
"usage: kap-shim capsule --rt DIR --kapd PATH [--kapd-arg ARG]... [OPTIONS] -- CMD...\n"
"Run CMD in a kap run capsule (see kap(1)); kap(1) passes:\n"
"  --rt DIR            runtime directory: kapd's sockets, removed on exit\n"
"  --rt-base DIR       the directory holding it\n"
"  --kapd PATH         kapd to start (--kapd-arg: its arguments; --kapd-log FILE)\n"
"  --project DIR       the writable project directory\n"
"  --cwd DIR           working directory inside\n"
"  --home DIR          $HOME inside; --real-home DIR: the user's home\n"
"  --capsule-home DIR  the private home mounted at --home; or\n"
"  --capsule-homes DIR --capsule-key PATH  the one of project PATH in DIR,\n"
"                      made and seeded with the agent's configuration on first use\n"
"  --home-ro REL       an entry of the real home shown read-only (repeat)\n"
"  --env NAME          a variable passed in (repeat)\n"
"  --git-dir DIR       a git dir to pin, code-bearing parts read-only (repeat)\n"
"  --ro PATH           read-only inside (repeat)\n"
"  --hide DIR          shown empty inside (repeat)\n"
"  --cli-tool NAME     a shim for kapd's cli tool NAME on PATH (repeat)\n"
"  --mcp               kapd's mcp module (RT/mcp.sock) at 127.0.0.1:3129\n"
"  --user NAME --shell PATH  USER/LOGNAME and SHELL inside\n"
"  --keep              keep the runtime directory\n");
}

/* the user name of uid from /etc/passwd (no NSS in a static binary) */
static const char *
passwd_name(uid_t uid)
{
    static char name[64];
    char line[1024];
    FILE *f = fopen("/etc/passwd", "re");
    if (f == NULL)
        return "user";
    while (fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL || (size_t)(c1 - line) >= sizeof name)
            continue;
        char *end;
        unsigned long u = strtoul(c2 + 1, &end, 10);
        if (*end == ':' && u == (unsigned long)uid) {
            memcpy(name, line, (size_t)(c1 - line));
            name[c1 - line] = '\0';
            fclose(f);
            return name;
        }
    }
    fclose(f);
    return "user";
}

static int
add(const char **list, size_t *n, const char *v, const char *opt)
{
    if (*n >= CAP_MAX_LIST) {
        capsule_warn("too many %s", opt);
        return -1;
    }
    list[(*n)++] = v;
    return 0;
}

static int
parse(struct capsule *c, int argc, char **argv)
{
    int i;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--keep") == 0) {
            c->keep = 1;
            continue;
        }
        if (strcmp(a, "--mcp") == 0) {
            c->mcp = 1;
            continue;
        }
        if (i + 1 >= argc) {
            capsule_warn("%s needs an argument", a);
            return -1;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (strcmp(a, "--rt") == 0) c->rt = v;
        else if (strcmp(a, "--rt-base") == 0) c->rt_base = v;
        else if (strcmp(a, "--kapd") == 0) c->kapd = v;
        else if (strcmp(a, "--kapd-arg") == 0) rc = add(c->kapd_args, &c->nkapd_args, v, a);
        else if (strcmp(a, "--kapd-log") == 0) c->kapd_log = v;
        else if (strcmp(a, "--project") == 0) c->project = *v ? v : NULL;
        else if (strcmp(a, "--cwd") == 0) c->cwd = v;
        else if (strcmp(a, "--home") == 0) c->home = v;
        else if (strcmp(a, "--real-home") == 0) c->real_home = v;
        else if (strcmp(a, "--capsule-home") == 0) c->chome = v;
        else if (strcmp(a, "--capsule-homes") == 0) c->homes = v;
        else if (strcmp(a, "--capsule-key") == 0) c->home_key = v;
        else if (strcmp(a, "--home-ro") == 0) rc = add(c->home_ro, &c->nhome_ro, v, a);
        else if (strcmp(a, "--env") == 0) rc = add(c->env, &c->nenv, v, a);
        else if (strcmp(a, "--git-dir") == 0) rc = add(c->gitdirs, &c->ngitdirs, v, a);
        else if (strcmp(a, "--ro") == 0) rc = add(c->ro, &c->nro, v, a);
        else if (strcmp(a, "--hide") == 0) rc = add(c->hide, &c->nhide, v, a);
        else if (strcmp(a, "--cli-tool") == 0) {
            if (v[0] == '\0' || v[0] == '.' || strlen(v) > 64
                || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-_.") != strlen(v)) {
                capsule_warn("--cli-tool: not a tool name: %s", v);
                return -1;
            }
            rc = add(c->cli_tools, &c->ncli, v, a);
        }
        else if (strcmp(a, "--user") == 0) c->user = v;
        else if (strcmp(a, "--shell") == 0) c->shell = v;
        else {
            capsule_warn("unknown option %s", a);
            usage(stderr);
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (i >= argc || !c->rt || !c->kapd || !c->cwd || !c->home
        || (!c->chome && !(c->homes && c->home_key))) {
        usage(stderr);
        return -1;
    }
    if (!c->real_home)
        c->real_home = c->home;
    if (!c->user || !*c->user)
        c->user = passwd_name(getuid());
    if (!c->shell)
        c->shell = "/bin/sh";
    c->argv = &argv[i];
    for (size_t k = 0; k < c->nhome_ro; k++)
        if (c->home_ro[k][0] == '/' || strstr(c->home_ro[k], "..")) {
            capsule_warn("home_ro entry \"%s\" must be relative to the home, "
                         "without ..", c->home_ro[k]);
            return -1;
        }
    return 0;
}

static int
write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t l = (ssize_t)strlen(text);
    ssize_t w = write(fd, text, (size_t)l);
    int e = errno;
    close(fd);
    errno = e;
    return w == l ? 0 : -1;
}

/* write the id maps of process pid's user namespace: inside 0 is out */
static int
write_maps(pid_t pid, uid_t out_uid, gid_t out_gid)
{
    char p[64], m[64];
    snprintf(p, sizeof p, "/proc/%ld/setgroups", (long)pid);
    if (write_file(p, "deny") < 0 && errno != ENOENT)
        return -1;
    snprintf(p, sizeof p, "/proc/%ld/uid_map", (long)pid);
    snprintf(m, sizeof m, "0 %lu 1\n", (unsigned long)out_uid);
    if (write_file(p, m) < 0)
        return -1;
    snprintf(p, sizeof p, "/proc/%ld/gid_map", (long)pid);
    snprintf(m, sizeof m, "0 %lu 1\n", (unsigned long)out_gid);
    return write_file(p, m);
}

static int
status_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 125;
}

static int
wait_for(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return 125;
    return status_code(st);
}

/* kapd has bound its listeners: its sockets exist in the runtime dir */
static int
kapd_bound(const struct capsule *c)
{
    static const char *socks[] = { "proxy.sock", "dns.sock", "dns-tcp.sock", NULL };
    char p[PATH_MAX];
    for (const char **k = socks; *k; k++) {
        snprintf(p, sizeof p, "%s/%s", c->rt, *k);
        if (access(p, F_OK) < 0)
            return 0;
    }
    return 1;
}

/* Polls until kapd has bound its listeners or exited, for at most
 * limit_s seconds.  Returns 1 when kapd exited (and was reaped). */
static int
kapd_wait_bound(const struct capsule *c, pid_t kapd, int limit_s)
{
    struct timespec step = { 0, 10 * 1000 * 1000 };
    for (long i = 0; i < limit_s * 100L; i++) {
        int st;
        if (waitpid(kapd, &st, WNOHANG) == kapd)
            return 1;
        if (kapd_bound(c))
            return 0;
        (void)nanosleep(&step, NULL);
    }
    return 0;
}

/* ---- root callers: a user namespace for the command ------------------- */

/*
 * A user namespace mapping root to c->out_uid, made by a helper child
 * (the maps of a namespace must be written from its parent namespace);
 * the command enters it with setns() and idmapped mounts use it.
 */
static int
root_userns(struct capsule *c)
{
    int up[2], done[2];
    if (pipe2(up, O_CLOEXEC) < 0 || pipe2(done, O_CLOEXEC) < 0)
        return -1;
    pid_t h = fork();
    if (h < 0)
        return -1;
    if (h == 0) {
        char b = 'u';
        close(up[0]);
        close(done[1]);
        if (unshare(CLONE_NEWUSER) < 0 || write(up[1], &b, 1) != 1)
            _exit(1);
        ssize_t r = read(done[0], &b, 1);       /* until the parent is done */
        _exit(r < 0);
    }
    close(up[1]);
    close(done[0]);
    char b, p[64];
    int fd = -1;
    if (read(up[0], &b, 1) == 1 && write_maps(h, c->out_uid, c->out_gid) == 0) {
        snprintf(p, sizeof p, "/proc/%ld/ns/user", (long)h);
        fd = open(p, O_RDONLY | O_CLOEXEC);
    }
    int e = errno;
    close(up[0]);
    close(done[1]);
    (void)wait_for(h);
    errno = e;
    c->userns_fd = fd;
    return fd < 0 ? -1 : 0;
}

/* ---- kapd --------------------------------------------------------------- */

/* fork with a pipe for the child's readiness line: p[1] is the child's */
static pid_t
fork_piped(int p[2])
{
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
    }
    return pid;
}

static pid_t
start_kapd(struct capsule *c)
{
    int p[2];
    pid_t pid = fork_piped(p);
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* its own session: the user's Ctrl-C is for the command */
        setsid();
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        int nul = open("/dev/null", O_RDONLY);
        int log = c->kapd_log ? open(c->kapd_log, O_WRONLY | O_APPEND | O_CREAT
                                     | O_NOFOLLOW, 0600) : -1;
        if (nul >= 0)
            dup2(nul, 0);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        if (dup2(p[1], 3) < 0)
            _exit(127);
        capsule_close_fds(4);
        const char *argv[CAP_MAX_LIST + 4];
        size_t n = 0;
        argv[n++] = c->kapd;
        for (size_t i = 0; i < c->nkapd_args; i++)
            argv[n++] = c->kapd_args[i];
        argv[n++] = "--ready-fd";
        argv[n++] = "3";
        argv[n] = NULL;
        kap_shim_sig_reset();
        execv(c->kapd, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    c->kapd_ready_fd = p[0];
    return pid;
}

/* ---- the command -------------------------------------------------------- */

static int
command_setup(void *arg)
{
    struct capsule *c = arg;
    if (capsule_rlimits() < 0)
        return -1;
    if (c->root) {
        /* root's supplementary groups would still count inside */
        if (setgroups(0, NULL) < 0 || setns(c->userns_fd, CLONE_NEWUSER) < 0
            || setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) {
            capsule_warn("cannot enter the capsule's user namespace: %s",
                         strerror(errno));
            return -1;
        }
    } else {
        /* a nested user namespace: the capsule's mounts are locked in it
         * (they came from a more privileged one), and the command runs
         * as the caller's own uid and gid */
        char m[64];
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
            capsule_warn("nested user namespace: %s", strerror(errno));
            return -1;
        }
        (void)write_file("/proc/self/setgroups", "deny");
        snprintf(m, sizeof m, "%lu 0 1\n", (unsigned long)c->uid);
        if (write_file("/proc/self/uid_map", m) < 0) {
            capsule_warn("uid_map: %s", strerror(errno));
            return -1;
        }
        snprintf(m, sizeof m, "%lu 0 1\n", (unsigned long)c->gid);
        if (write_file("/proc/self/gid_map", m) < 0) {
            capsule_warn("gid_map: %s", strerror(errno));
            return -1;
        }
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (chdir(c->cwd) < 0) {
        capsule_warn("cannot enter %s: %s", c->cwd, strerror(errno));
        return -1;
    }
    extern char **environ;
    environ = c->envp;
    capsule_close_fds(3);
    return capsule_seccomp();
}

/* ---- the capsule's init --------------------------------------------------- */

static pid_t
start_bridge(const struct capsule *c, int *ready)
{
    int p[2];
    pid_t pid = fork_piped(p);
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char tcp1[PATH_MAX + 32], tcp2[PATH_MAX + 32], udp[PATH_MAX + 32], fd[16],
             kfd[16], tcp3[PATH_MAX + 32], tcp4[PATH_MAX + 32];
        prctl(PR_SET_DUMPABLE, 0);
        close(p[0]);
        /* not the user's terminal: the bridge only needs stderr */
        int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nul >= 0) {
            dup2(nul, 0);
            dup2(nul, 1);
        }
        snprintf(tcp1, sizeof tcp1, "127.0.0.1:3128=%s/proxy.sock", c->rt);
        snprintf(tcp2, sizeof tcp2, "127.0.0.1:53=%s/dns-tcp.sock", c->rt);
        snprintf(udp, sizeof udp, "127.0.0.1:53=%s/dns.sock", c->rt);
        snprintf(fd, sizeof fd, "%d", p[1]);
        snprintf(kfd, sizeof kfd, "%d", c->kapd_ready_fd);
        snprintf(tcp3, sizeof tcp3, "127.0.0.1:3130=%s/cli.sock", c->rt);
        snprintf(tcp4, sizeof tcp4, "127.0.0.1:3129=%s/mcp.sock", c->rt);
        char *argv[20] = { "bridge", "--quiet", "--tcp", tcp1, "--tcp", tcp2,
                           "--udp", udp, "--session-dir", (char *)c->rt,
                           "--ready-fd", fd, "--wait-fd", kfd, NULL };
        int n = 14;
        /* kapd's cli module at :3130 when there are cli tools */
        if (c->ncli > 0) {
            argv[n++] = "--tcp";
            argv[n++] = tcp3;
        }
        /* kapd's mcp module at :3129 when the policy has mcp servers */
        if (c->mcp) {
            argv[n++] = "--tcp";
            argv[n++] = tcp4;
        }
        argv[n] = NULL;
        _exit(kap_shim_bridge(n, argv));
    }
    close(p[1]);
    *ready = p[0];
    return pid;
}

static int
capsule_init(struct capsule *c)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_DUMPABLE, 0);
    if (capsule_loopback_up() < 0)
        return 125;
    int bready;
    pid_t bridge = start_bridge(c, &bready);
    if (bridge < 0) {
        capsule_warn("cannot start the bridge: %s", strerror(errno));
        return 125;
    }
    if (unshare(CLONE_NEWNS) < 0) {
        capsule_warn("mount namespace: %s", strerror(errno));
        return 125;
    }
    if (capsule_mount_root(c) < 0)
        return 125;
    char b[8];
    ssize_t n;
    while ((n = read(bready, b, sizeof b)) < 0 && errno == EINTR)
        ;
    if (n < 6 || memcmp(b, "ready\n", 6) != 0) {
        capsule_warn("the bridge did not start");
        return 125;
    }
    close(bready);
    /* kapd may still be starting: the bridge holds the command's first
     * connections until it is ready (kap-shim bridge --wait-fd) */
    close(c->kapd_ready_fd);
    struct kap_shim_pty_opts o = { .reap_all = 1, .child_setup = command_setup,
                                   .child_arg = c, .envp = c->envp,
                                   .stop_fd = c->stop_w };
    int st = kap_shim_pty_run(c->argv, &o);
    kill(bridge, SIGTERM);
    return st;
}

/* ---- the capsule's namespaces ------------------------------------------ */

static pid_t capsule_init_pid;
static void
pass_on(int sig)
{
    if (capsule_init_pid > 0)
        kill(capsule_init_pid, sig);
}

static int
capsule_child(struct capsule *c, int sync_w, int ack_r)
{
    /* the wait for the relay's word is the caller's alone (on_tstp()):
     * this process and the capsule's stop as the kernel stops them */
    signal(SIGTSTP, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!c->root) {
        char b = 'u';
        if (unshare(CLONE_NEWUSER) < 0) {
            capsule_warn("cannot create a user namespace: %s (see kap(1) "
                         "REQUIREMENTS)", strerror(errno));
            return 125;
        }
        if (write(sync_w, &b, 1) != 1 || read(ack_r, &b, 1) != 1 || b != 'k')
            return 125;
    }
    close(sync_w);
    close(ack_r);
    if (c->stop_r >= 0)
        close(c->stop_r);
    /* it holds the user's terminal (after the maps: they are written
     * through its /proc files, which this makes root's) */
    prctl(PR_SET_DUMPABLE, 0);
    if (unshare(CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID) < 0) {
        capsule_warn("namespaces: %s", strerror(errno));
        return 125;
    }
    if (unshare(CLONE_NEWCGROUP) < 0 && errno != EINVAL) {
        capsule_warn("cgroup namespace: %s", strerror(errno));
        return 125;
    }
    pid_t init = fork();
    if (init < 0)
        return 125;
    if (init == 0)
        _exit(capsule_init(c));
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    /* TERM and HUP from kap-shim go on to the init, the pty relay, which
     * passes them to the command and restores the user's terminal */
    capsule_init_pid = init;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = pass_on;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return wait_for(init);
}

/* ---- the caller's side ------------------------------------------------- */

static int
rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)st;
    (void)f;
    if (type == FTW_DP)
        (void)rmdir(p);
    else
        (void)unlink(p);
    return 0;
}

static uid_t chown_uid;
static gid_t chown_gid;

static int
chown_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
    (void)type;
    (void)f;
    if (st->st_uid == 0)
        (void)lchown(p, chown_uid, chown_gid);
    return 0;
}

/* run cp with these arguments; 0 when it succeeded */
static int
run_cp(const char *opt, const char *src, const char *dst)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("cp", "cp", opt, "--", src, dst, (char *)NULL);
        _exit(127);
    }
    return wait_for(pid) == 0 ? 0 : -1;
}

/*
 * The capsule home of the project at c->home_key: c->homes/NAME-HASH (the
 * project's last component and a 64-bit FNV-1a of its path), made on first
 * use with a copy of the agent's own configuration from the real home
 * (~/.claude, ~/.codex, ~/.claude.json): a copy, so that what the agent
 * changes there never reaches the real one.
 */
static int
capsule_home(struct capsule *c)
{
    static char path[PATH_MAX];
    char name[64], tmp[PATH_MAX + 8], src[PATH_MAX], dst[PATH_MAX + 16];
    unsigned long long h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)c->home_key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    const char *base = strrchr(c->home_key, '/');
    base = base && base[1] ? base + 1 : "root";
    size_t n = 0;
    for (; *base && n < 40; base++)
        name[n++] = (isalnum((unsigned char)*base) || *base == '-' || *base == '_')
                    ? *base : '_';
    name[n] = '\0';
    struct stat st;
    if (lstat(c->homes, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid()
        || (st.st_mode & 022)) {
        capsule_warn("%s: not a directory of yours closed to others", c->homes);
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s-%016llx", c->homes, name, h);
    c->chome = path;
    if (lstat(path, &st) == 0)
        return S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode) ? 0 : -1;
    snprintf(tmp, sizeof tmp, "%s.new", path);
    (void)nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (mkdir(tmp, 0700) < 0)
        return -1;
    static const char *seed[] = { ".claude", ".codex", ".claude.json", NULL };
    for (const char **s = seed; *s; s++) {
        snprintf(src, sizeof src, "%s/%s", c->real_home, *s);
        if (stat(src, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            char dot[PATH_MAX + 4];
            snprintf(dst, sizeof dst, "%s/%s", tmp, *s);
            snprintf(dot, sizeof dot, "%s/.", src);
            if (mkdir(dst, 0700) < 0 || run_cp("-RPp", dot, dst) < 0)
                capsule_warn("could not copy ~/%s into the capsule home", *s);
        } else if (run_cp("-pL", src, tmp) < 0) {
            capsule_warn("could not copy ~/%s into the capsule home", *s);
        }
    }
    return rename(tmp, path);
}

/* a root caller: who the command is outside (never root) */
static int
root_identity(struct capsule *c)
{
    struct stat st;
    c->out_uid = CAP_ROOT_MAPPED_ID;
    c->out_gid = CAP_ROOT_MAPPED_ID;
    if (c->project && stat(c->project, &st) == 0 && st.st_uid != 0) {
        c->out_uid = st.st_uid;
        c->out_gid = st.st_gid;
    }
    /* the capsule home is kap's: its files become the capsule user's */
    if (lstat(c->chome, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid != c->out_uid) {
        chown_uid = c->out_uid;
        chown_gid = c->out_gid;
        (void)nftw(c->chome, chown_one, 16, FTW_PHYS);
        if (lchown(c->chome, c->out_uid, c->out_gid) < 0)
            return -1;
    }
    /* the bridge runs as that user: kapd's sockets must let it in */
    static const char *socks[] = { "", "/proxy.sock", "/dns.sock", "/dns-tcp.sock",
                                   "/cli.sock", "/mcp.sock", NULL };
    for (const char **s = socks; *s; s++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s%s", c->rt, *s);
        (void)lchown(p, c->out_uid, c->out_gid);
    }
    return root_userns(c);
}

/* a git dir's files that may not exist and must not appear: removed
 * after the run if the command created them (they would redirect git) */
static void
git_after(const struct capsule *c, const char *const *had)
{
    static const char *files[] = { "commondir", "config.worktree", "gitdir", NULL };
    for (size_t i = 0; i < c->ngitdirs; i++)
        for (size_t k = 0; files[k]; k++) {
            char p[PATH_MAX];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", c->gitdirs[i], files[k]);
            if (!had[i * 3 + k] && lstat(p, &st) == 0) {
                fprintf(stderr, "kap run: removed %s, created in the capsule "
                        "(it would redirect git outside)\n", p);
                if (S_ISDIR(st.st_mode))
                    (void)nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
                else
                    (void)unlink(p);
            }
        }
}

/* the last lines of kapd's log on stderr (the runtime directory that
 * holds it is removed on exit) */
static void
log_tail(const char *path)
{
    char buf[2048];
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)sizeof buf ? end - (off_t)sizeof buf : 0;
    ssize_t n = pread(fd, buf, sizeof buf, from);
    close(fd);
    if (n <= 0)
        return;
    char *p = buf;
    if (from > 0) {                     /* from a line's start */
        char *nl = memchr(buf, '\n', (size_t)n);
        if (nl != NULL) {
            n -= nl + 1 - buf;
            p = nl + 1;
        }
    }
    ssize_t w = write(2, p, (size_t)n);
    (void)w;
}

#define STOP_GRACE_S 3            /* TERM/HUP: then the capsule is killed */

static volatile sig_atomic_t got_sig, got_alarm;
static void
on_sig(int s)
{
    if (s == SIGALRM)
        got_alarm = 1;
    else
        got_sig = s;
}

#define STOP_WAIT_MS 2000         /* for the relay's word on a stop */
static int job_stop_r = -1;

/*
 * SIGTSTP for kap's job (Ctrl-Z, kill -TSTP %1).  This process is the one
 * the user's shell waits for: once it stops, the shell takes the terminal
 * back and reads its modes.  The relay (the capsule's pid 1) restores them
 * and stops the command only when it sees its probe stop, which races with
 * our own stop: so stop only after the relay's 's' (kap_shim_pty.h,
 * stop_fd), or after STOP_WAIT_MS when it does not come.  Then stop the
 * way the kernel would have (SIGTSTP at its default action: nothing, for
 * an orphaned process group).  Runs in the handler (SA_NODEFER), so no
 * stop is lost between a flag check and waitpid(); every call here is
 * async-signal-safe.
 */
static void
on_tstp(int s)
{
    int e = errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;            /* one stop at a time */
    (void)sigaction(SIGTSTP, &sa, NULL);
    struct timespec t0, now;
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    char last = 0, b[16];
    while (job_stop_r >= 0 && last != 's') {
        ssize_t n;
        while ((n = read(job_stop_r, b, sizeof b)) > 0)
            last = b[n - 1];
        if (last == 's' || n == 0)
            break;                      /* told, or the relay is gone */
        (void)clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (long)(now.tv_sec - t0.tv_sec) * 1000
                  + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= STOP_WAIT_MS)
            break;
        struct pollfd p = { .fd = job_stop_r, .events = POLLIN };
        (void)poll(&p, 1, (int)(STOP_WAIT_MS - ms));
    }
    sa.sa_handler = SIG_DFL;
    (void)sigaction(SIGTSTP, &sa, NULL);
    (void)kill(getpid(), s);            /* we stop here, until SIGCONT */
    sa.sa_handler = on_tstp;
    sa.sa_flags = SA_NODEFER;
    (void)sigaction(SIGTSTP, &sa, NULL);
    errno = e;
}

int
kap_shim_capsule(int argc, char **argv)
{
    static struct capsule c;
    c.userns_fd = -1;
    c.kapd_ready_fd = -1;
    c.stop_r = c.stop_w = -1;
    if (parse(&c, argc, argv) < 0)
        return 125;
    /* nothing the caller had open passes on (kapd, the capsule) */
    capsule_close_fds(3);
    c.uid = getuid();
    c.gid = getgid();
    c.root = c.uid == 0;
    c.out_uid = c.uid;
    c.out_gid = c.gid;
    if (capsule_build_env(&c) < 0)
        return 125;
    if (!c.chome && capsule_home(&c) < 0) {
        capsule_warn("cannot make the capsule home in %s: %s", c.homes, strerror(errno));
        return 125;
    }

    static const char *had[CAP_MAX_LIST * 3];
    for (size_t i = 0; i < c.ngitdirs; i++) {
        static const char *files[] = { "commondir", "config.worktree", "gitdir" };
        for (size_t k = 0; k < 3; k++) {
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", c.gitdirs[i], files[k]);
            had[i * 3 + k] = access(p, F_OK) == 0 ? "y" : NULL;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sig;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGINT, SIG_IGN);            /* the command's, through the relay */
    signal(SIGQUIT, SIG_IGN);
    int sp[2];
    if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) == 0) {
        c.stop_r = job_stop_r = sp[0];
        c.stop_w = sp[1];
        sa.sa_handler = on_tstp;
        sa.sa_flags = SA_NODEFER;
        sigaction(SIGTSTP, &sa, NULL);
        sa.sa_flags = 0;
    }

    int rc = 125;
    pid_t kapd = start_kapd(&c);
    pid_t cap = -1;
    if (kapd < 0) {
        capsule_warn("cannot start kapd: %s", strerror(errno));
        goto out;
    }
    if (c.root && root_identity(&c) < 0) {
        capsule_warn("cannot set up the capsule's user: %s", strerror(errno));
        goto out;
    }
    int s1[2], s2[2];
    if (pipe2(s1, O_CLOEXEC) < 0 || pipe2(s2, O_CLOEXEC) < 0)
        goto out;
    cap = fork();
    if (cap < 0)
        goto out;
    if (cap == 0) {
        close(s1[0]);
        close(s2[1]);
        _exit(capsule_child(&c, s1[1], s2[0]));
    }
    close(s1[1]);
    close(s2[0]);
    close(c.kapd_ready_fd);
    if (c.stop_w >= 0)
        close(c.stop_w);
    if (!c.root) {
        char b;
        if (read(s1[0], &b, 1) == 1) {
            if (write_maps(cap, c.uid, c.gid) < 0)
                capsule_warn("cannot write the capsule's id maps: %s", strerror(errno));
            else if (write(s2[1], "k", 1) != 1)
                capsule_warn("capsule gone");
        }
    }
    close(s1[0]);
    close(s2[1]);
    int sig_passed = 0;
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, 0);
        if (w == cap) {
            rc = status_code(st);
            break;
        }
        if (w == kapd) {
            /* the capsule has no way out without it: end it too */
            capsule_warn("kapd exited (%s %d); the end of its log:",
                         WIFSIGNALED(st) ? "signal" : "status",
                         WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            log_tail(c.kapd_log);
            kapd = -1;
            kill(cap, SIGKILL);
            continue;
        }
        if (w < 0 && errno == EINTR && got_alarm) {
            kill(cap, SIGKILL);         /* the command did not stop */
            continue;
        }
        if (w < 0 && errno == EINTR && got_sig && !sig_passed) {
            /* to the relay, through the capsule process: the command
             * gets it and the terminal is restored; killed if it stays */
            kill(cap, got_sig);
            sig_passed = 1;
            alarm(STOP_GRACE_S);
            continue;
        }
        if (w < 0 && errno != EINTR)
            break;
    }
    alarm(0);
    if (kapd < 0 && rc != 0)
        rc = 125;
    if (got_sig == SIGTERM)
        rc = 143;
    else if (got_sig == SIGHUP)
        rc = 129;
out:
    if (kapd > 0) {
        /* a kapd that has not bound its listeners yet has nothing to
         * finish (a short command can end first): no graceful stop */
        int bound = kapd_bound(&c);
        /* KAP_KAPD_GRACEFUL=1 (contrib/valgrind-check): always the
         * graceful stop, so that a slow kapd still reports on exit; and
         * only once kapd has bound its listeners (or exited): a SIGTERM
         * in valgrind's own start-up ends it before it can summarize */
        const char *g = getenv("KAP_KAPD_GRACEFUL");
        if (g != NULL && strcmp(g, "1") == 0) {
            if (!bound && kapd_wait_bound(&c, kapd, 60))
                kapd = -1;
            bound = 1;
        }
        if (kapd > 0) {
            kill(kapd, bound ? SIGTERM : SIGKILL);
            (void)wait_for(kapd);
        }
    }
    git_after(&c, had);
    if (c.keep)
        fprintf(stderr, "kap: runtime directory kept: %s\n", c.rt);
    else
        (void)nftw(c.rt, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
