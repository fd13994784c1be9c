/*
 * kapd.c -- main(): command line, daemonizing, signals, the run loop.
 *
 * kapd builds the first configuration generation (kapd_cycle.c), checks
 * it (-t/-T stop there), optionally daemonizes, activates it (binds the
 * listeners, module init), drops privileges and runs the libev loop.
 * SIGHUP reloads, SIGTERM/SIGINT stop gracefully (a second one stops at
 * once), SIGUSR1 reopens the logs.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "kapd.h"
#include "kapd_cycle.h"

#ifndef KAPD_SYSCONFDIR
#define KAPD_SYSCONFDIR "/usr/local/etc"
#endif

static ev_signal sig_hup, sig_term, sig_int, sig_usr1;
static ev_timer grace_timer, drain_timer;
static int pid_dirfd = -1;            /* the pid file's directory */
static char *pid_name;                /* heap: its name in pid_dirfd */
static struct stat pid_st;            /* the file we wrote */

static void
usage(FILE *out)
{
    fprintf(out,
"usage: kapd [-dtTVh] [-c file] [-g file] [-p prefix] [--observe]\n"
"            [--ready-fd N]\n"
"  -c file    configuration file (default " KAPD_SYSCONFDIR "/kap/kap.conf;\n"
"             relative to the prefix when -p is given)\n"
"  -g file    global configuration merged under -c's (e.g. ~/.kap/kap.conf):\n"
"             lists concatenate, the -c file wins on everything else\n"
"  -p prefix  prefix for relative paths in the configuration (default:\n"
"             the directory of the -c file, never the working directory)\n"
"  -d         daemonize (detach; writes kapd.pid_file)\n"
"  -t         test the configuration and exit\n"
"  -T         test the configuration, dump it and its chains, and exit\n"
"  -V         show version, module ABI and modules, and exit\n"
"  -h         this help\n"
"  --observe  observe mode whatever the configuration says (as\n"
"             kapd.policy.observe = true): denials are allowed and audited\n"
"             as \"observed\"; DNS and the address deny set still filter\n"
"  --ready-fd N  write \"ready\\n\" to the inherited descriptor N once every\n"
"             listener is bound, then close it (for a parent that waits)\n"
"signals: HUP reload, TERM/INT graceful stop (twice: at once), USR1 reopen logs\n"
"exit codes: %d ok, %d configuration error, %d network/bind error,\n"
"            %d module load/ABI error, %d out of memory, %d other error\n",
            KAPD_EXIT_OK, KAPD_EXIT_CONFIG, KAPD_EXIT_NETWORK,
            KAPD_EXIT_MODULE, KAPD_EXIT_NOMEM, KAPD_EXIT_OTHER);
}

static void
print_errors(const struct kapd_build *b, const struct kap_err *first)
{
    const struct kap_err *v = b->errors;
    size_t i, n = b->nerrors;

    if (n == 0 && first != NULL) {
        v = first;
        n = 1;
    }
    for (i = 0; i < n; i++) {
        if (v[i].file[0])
            fprintf(stderr, "kapd: [emerg] %s in %s:%d\n", v[i].msg,
                    v[i].file, v[i].line);
        else
            fprintf(stderr, "kapd: [emerg] %s\n", v[i].msg);
    }
}

/* ---- signals and shutdown ---------------------------------------------- */

static void
stop_now(struct ev_loop *loop)
{
    ev_timer_stop(loop, &grace_timer);
    ev_timer_stop(loop, &drain_timer);
    kapd_conn_close_all();
    ev_break(loop, EVBREAK_ALL);
}

static void
grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "shutdown grace expired, closing %u "
            "connections", kapd_conn_total());
    stop_now(loop);
}

static void
drain_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    if (kapd_conn_total() == 0)
        stop_now(loop);
}

static void
term_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    double grace = kapd.current ? kapd.current->core.shutdown_grace
                                : KAPD_DEFAULT_GRACE;
    (void) revents;

    if (kapd.shutting_down) {
        KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "signal %d again, stopping now",
                w->signum);
        stop_now(loop);
        return;
    }
    kapd.shutting_down = 1;
    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "signal %d, shutting down (%u "
            "connections, grace %gs)", w->signum, kapd_conn_total(), grace);
    kapd_watch_stop();
    kapd_listen_stop_all();
    if (kapd_conn_total() == 0 || grace <= 0) {
        stop_now(loop);
        return;
    }
    ev_timer_init(&grace_timer, grace_cb, grace, 0.);
    ev_timer_start(loop, &grace_timer);
    ev_timer_init(&drain_timer, drain_cb, 0.05, 0.05);
    ev_timer_start(loop, &drain_timer);
}

static void
hup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
    if (kapd.shutting_down)
        return;
    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "signal %d (SIGHUP), reloading",
            w->signum);
    kapd_reload("SIGHUP");
}

static void
usr1_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct kap_err err = { 0 };
    const char *log;

    (void) loop;
    (void) w;
    (void) revents;
    if (kapd.shutting_down || kapd.current == NULL)
        return;
    log = kapd.current->core.error_log;
    if (log != NULL && (strcmp(log, "stderr") == 0 || log[0] == '\0'))
        log = NULL;
    if (kapd_log_open(log, &err) != KAP_OK)
        KAP_LOG(KAP_LOG_ERR, NULL, 0, "%s; still writing to the old file",
                err.msg);
    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "signal %d (SIGUSR1), logs reopened",
            w->signum);
    /* the audit sinks reopen their files when a generation starts */
    kapd_reload("SIGUSR1");
}

/* ---- pid file, daemon, privileges --------------------------------------- */

static int
pid_running(const char *path)
{
    char buf[32];
    ssize_t n;
    long pid;
    char *end;
    int fd = kapd_file_open(path, O_RDONLY, 0, NULL);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    errno = 0;
    pid = strtol(buf, &end, 10);
    if (errno || pid <= 0 || (*end != '\n' && *end != '\0'))
        return 0;
    if (pid == (long) getpid())
        return 0;
    if (kill((pid_t) pid, 0) == 0 || errno == EPERM)
        return (int) pid;
    return 0;
}

/*
 * Write our pid relative to the pid file's directory (opened here, kept
 * for the unlink at exit): never through a symbolic link, a hard link or
 * into anything but a regular file (kapd_file.c).
 */
static int
pid_write(const char *path)
{
    char buf[32];
    int fd, n, e;

    if (pid_dirfd < 0 && (pid_dirfd = kapd_dir_open(path, &pid_name, 0)) < 0)
        return -1;
    fd = kapd_file_openat(pid_dirfd, pid_name, O_WRONLY | O_CREAT | O_TRUNC,
                          0644, &pid_st);
    if (fd < 0)
        return -1;
    n = snprintf(buf, sizeof(buf), "%ld\n", (long) getpid());
    if (write(fd, buf, (size_t) n) != n) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

/* Remove the pid file if the name still holds the file we wrote. */
static void
pid_remove(void)
{
    struct stat st;

    if (pid_dirfd < 0 || pid_name == NULL)
        return;
    if (fstatat(pid_dirfd, pid_name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && st.st_dev == pid_st.st_dev && st.st_ino == pid_st.st_ino)
        (void) unlinkat(pid_dirfd, pid_name, 0);
    close(pid_dirfd);
    pid_dirfd = -1;
    free(pid_name);
    pid_name = NULL;
}

/* detach; returns the write end of a pipe to report the start result */
static int
daemonize(void)
{
    int p[2], fd;
    pid_t pid;

    if (pipe(p) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        unsigned char code = KAPD_EXIT_OTHER;
        close(p[1]);
        while (read(p[0], &code, 1) < 0 && errno == EINTR)
            ;
        _exit(code);
    }
    close(p[0]);
    if (setsid() < 0)
        _exit(KAPD_EXIT_OTHER);
    pid = fork();
    if (pid < 0)
        _exit(KAPD_EXIT_OTHER);
    if (pid > 0)
        _exit(0);
    umask(022);
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return p[1];
}

static void
report(int fd, int code)
{
    unsigned char c = (unsigned char) code;

    if (fd < 0)
        return;
    while (write(fd, &c, 1) < 0 && errno == EINTR)
        ;
    close(fd);
}

/*
 * Every tunnel holds two descriptors, and a default soft limit of 1024
 * would stop kapd at ~500: raise the soft limit to the hard one (what
 * the service manager allows) before anything is opened.
 */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        KAP_LOG(KAP_LOG_WARN, NULL, 0, "cannot raise the open files limit "
                "to %llu: %s", (unsigned long long) rl.rlim_max,
                strerror(errno));
}

static int
drop_privileges(const char *user)
{
    struct passwd *pw;

    if (user == NULL || user[0] == '\0' || geteuid() != 0)
        return 0;
    pw = getpwnam(user);
    if (pw == NULL) {
        KAP_LOG(KAP_LOG_EMERG, NULL, 0, "unknown user \"%s\" (kapd.user)",
                user);
        return -1;
    }
    if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0
        || setuid(pw->pw_uid) < 0) {
        KAP_LOG(KAP_LOG_EMERG, NULL, 0, "cannot switch to user \"%s\": %s",
                user, strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) {
        KAP_LOG(KAP_LOG_EMERG, NULL, 0, "could regain root after dropping "
                "privileges to \"%s\"", user);
        return -1;
    }
    return 0;
}

/* ---- -V ------------------------------------------------------------------ */

static int
show_version(int conf_given)
{
    const struct kap_module *const *b;

    printf("kapd version %s\n", KAP_VERSION);
    printf("module ABI %d.%d, build signature %s\n", KAP_ABI_MAJOR,
           KAP_ABI_MINOR, KAP_BUILD_SIG);
    printf("libev %d.%d, libconfig %d.%d.%d\n", ev_version_major(),
           ev_version_minor(), LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION);
    printf("module path: %s%s\n",
           getenv("KAPD_MODULE_PATH") ? getenv("KAPD_MODULE_PATH")
                                      : KAPD_MODULEDIR,
           getenv("KAPD_MODULE_PATH") ? " (from KAPD_MODULE_PATH)" : "");
    printf("built-in modules:");
    for (b = kapd_builtin_list(); b != NULL && *b != NULL; b++)
        printf(" %s/%s", (*b)->name, (*b)->version ? (*b)->version : "-");
    printf("\n");
    if (conf_given) {
        struct kapd_build build = { 0 };
        struct kap_err err = { 0 };
        struct kap_gen *gen = kapd_gen_build(kapd.conf_path, kapd.prefix,
                                             &build, &err);
        size_t i;
        if (gen == NULL) {
            fflush(stdout);
            print_errors(&build, &err);
            kapd_build_free(&build);
            return build.exit_code;
        }
        printf("modules loaded by %s:\n", gen->conf_path);
        for (i = 0; i < gen->nmods; i++)
            printf("  %s %s (%s)\n", gen->mods[i].mod->name,
                   gen->mods[i].mod->version ? gen->mods[i].mod->version
                                             : "-",
                   gen->mods[i].ref->builtin ? "built in"
                                             : gen->mods[i].ref->path);
        kap_gen_unref(gen);
    }
    return KAPD_EXIT_OK;
}

/* ---- main ---------------------------------------------------------------- */

/*
 * A relative name given on the command line, made absolute against the
 * working directory once, at start: reloads read the same files wherever
 * the process is.  The result lives as long as the process.
 */
static const char *
abs_arg(const char *p)
{
    char cwd[PATH_MAX], *out;
    size_t lc, lp;

    if (p == NULL || p[0] == '/' || p[0] == '\0')
        return p;
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return p;
    lc = strlen(cwd);
    lp = strlen(p);
    out = malloc(lc + lp + 2);
    if (out == NULL)
        return p;
    memcpy(out, cwd, lc);
    out[lc] = '/';
    memcpy(out + lc + 1, p, lp + 1);
    return out;
}

int
main(int argc, char **argv)
{
    struct kapd_build build = { 0 };
    struct kap_err err = { 0 };
    struct kap_gen *gen;
    struct ev_loop *loop;
    int opt, test = 0, dump = 0, version = 0, conf_given = 0, notify = -1;
    const char *conf = KAPD_SYSCONFDIR "/kap/kap.conf";
    const char *prefix = NULL;

    static const struct option longopts[] = {
        { "ready-fd", required_argument, NULL, 'R' },
        { "observe", no_argument, NULL, 'O' },
        { NULL, 0, NULL, 0 }
    };
    long ready_fd = -1;

    while ((opt = getopt_long(argc, argv, "c:g:p:dtTVh", longopts,
                              NULL)) != -1) {
        switch (opt) {
        case 'R': {
            char *end;
            errno = 0;
            ready_fd = strtol(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg || ready_fd < 3
                || ready_fd > INT_MAX) {
                fprintf(stderr, "kapd: bad --ready-fd \"%s\"\n", optarg);
                return KAPD_EXIT_OTHER;
            }
            /* not passed on to anything kapd starts (CLI tools) */
            (void) fcntl((int) ready_fd, F_SETFD, FD_CLOEXEC);
            break;
        }
        case 'O': kapd.observe = 1; break;
        case 'c': conf = optarg; conf_given = 1; break;
        case 'g': kapd.global_path = optarg; break;
        case 'p': prefix = optarg; break;
        case 'd': kapd.daemonize = 1; break;
        case 't': test = 1; break;
        case 'T': test = 1; dump = 1; break;
        case 'V': version = 1; break;
        case 'h': usage(stdout); return KAPD_EXIT_OK;
        default:  usage(stderr); return KAPD_EXIT_OTHER;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kapd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return KAPD_EXIT_OTHER;
    }

    if (ev_version_major() != EV_VERSION_MAJOR
        || ev_version_minor() < EV_VERSION_MINOR) {
        fprintf(stderr, "kapd: [emerg] libev %d.%d is not compatible with "
                "the libev %d.%d kapd was built with\n", ev_version_major(),
                ev_version_minor(), EV_VERSION_MAJOR, EV_VERSION_MINOR);
        return KAPD_EXIT_OTHER;
    }
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();             /* before modules check their limits */
    loop = ev_default_loop(EVFLAG_AUTO);
    if (loop == NULL) {
        fprintf(stderr, "kapd: [emerg] cannot initialise libev\n");
        return KAPD_EXIT_OTHER;
    }
    kapd.loop = loop;
    /* -c is relative to -p when given, else to the working directory */
    prefix = abs_arg(prefix);
    if (prefix == NULL || prefix[0] == '\0')
        conf = abs_arg(conf);
    kapd.global_path = abs_arg(kapd.global_path);
    kapd.prefix = prefix;
    kapd.conf_path = conf;

    if (version)
        return show_version(conf_given);

    gen = kapd_gen_build(conf, prefix, &build, &err);
    if (gen == NULL) {
        print_errors(&build, &err);
        kapd_build_free(&build);
        if (test) {
            fprintf(stderr, "kapd: configuration file %s test failed\n",
                    conf);
            return KAPD_EXIT_CONFIG;
        }
        return build.exit_code;
    }
    if (test) {
        fprintf(stderr, "kapd: the configuration file %s syntax is ok\n",
                gen->conf_path);
        fprintf(stderr, "kapd: configuration file %s test is successful\n",
                gen->conf_path);
        if (dump)
            kapd_gen_dump(gen);
        kap_gen_unref(gen);
        return KAPD_EXIT_OK;
    }

    if (gen->core.pid_file != NULL && gen->core.pid_file[0] != '\0') {
        int running = pid_running(gen->core.pid_file);
        if (running) {
            fprintf(stderr, "kapd: [emerg] already running (pid %d, pid "
                    "file %s)\n", running, gen->core.pid_file);
            kap_gen_unref(gen);
            return KAPD_EXIT_OTHER;
        }
    }
    if (kapd.daemonize) {
        notify = daemonize();
        if (notify < 0) {
            fprintf(stderr, "kapd: [emerg] cannot daemonize: %s\n",
                    strerror(errno));
            kap_gen_unref(gen);
            return KAPD_EXIT_OTHER;
        }
        ev_loop_fork(loop);
    }
    if (gen->core.pid_file != NULL && gen->core.pid_file[0] != '\0') {
        if (pid_write(gen->core.pid_file) < 0) {
            fprintf(stderr, "kapd: [emerg] cannot write pid file %s: %s\n",
                    gen->core.pid_file, kapd_file_strerror(errno));
            kap_gen_unref(gen);
            report(notify, KAPD_EXIT_OTHER);
            return KAPD_EXIT_OTHER;
        }
    }

    /*
     * Catch signals before the listeners are bound: a client that sees
     * the port open may signal at once (the signals wait in libev until
     * ev_run).
     */
    ev_signal_init(&sig_hup, hup_cb, SIGHUP);
    ev_signal_init(&sig_term, term_cb, SIGTERM);
    ev_signal_init(&sig_int, term_cb, SIGINT);
    ev_signal_init(&sig_usr1, usr1_cb, SIGUSR1);
    ev_signal_start(loop, &sig_hup);
    ev_signal_start(loop, &sig_term);
    ev_signal_start(loop, &sig_int);
    ev_signal_start(loop, &sig_usr1);

    if (kapd_gen_activate(gen, &build, &err) != KAP_OK) {
        int code = build.exit_code;
        if (err.file[0])
            KAP_LOG(KAP_LOG_EMERG, NULL, 0, "%s in %s:%d", err.msg, err.file,
                    err.line);
        else
            KAP_LOG(KAP_LOG_EMERG, NULL, 0, "%s", err.msg);
        if (err.file[0])
            fprintf(stderr, "kapd: [emerg] %s in %s:%d\n", err.msg,
                    err.file, err.line);
        else
            fprintf(stderr, "kapd: [emerg] %s\n", err.msg);
        kap_gen_unref(gen);
        kapd_listen_close_all();
        kapd_cycle_exit();
        pid_remove();
        if (code == KAPD_EXIT_CONFIG)
            code = KAPD_EXIT_OTHER;
        report(notify, code);
        return code;
    }
    if (drop_privileges(gen->core.user) < 0) {
        kapd_listen_close_all();
        kapd_cycle_exit();
        report(notify, KAPD_EXIT_OTHER);
        return KAPD_EXIT_OTHER;
    }

    kapd_watch_start();

    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "kapd %s started, generation %llu, "
            "pid %ld", KAP_VERSION, (unsigned long long) gen->id,
            (long) getpid());
    if (notify >= 0) {
        const char *log = gen->core.error_log;
        if (log != NULL && strcmp(log, "stderr") != 0 && log[0] != '\0') {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, STDERR_FILENO);
                close(fd);
            }
        }
        report(notify, KAPD_EXIT_OK);
    }
    if (ready_fd >= 0) {
        /* every listener is bound: whoever waits on the pipe may connect */
        static const char msg[] = "ready\n";
        ssize_t w = write((int) ready_fd, msg, sizeof msg - 1);
        (void) w;
        close((int) ready_fd);
    }

    ev_run(loop, 0);

    kapd.shutting_down = 1;
    kapd_conn_close_all();
    kapd_mem_stop();
    kapd_listen_close_all();
    ev_signal_stop(loop, &sig_hup);
    ev_signal_stop(loop, &sig_term);
    ev_signal_stop(loop, &sig_int);
    ev_signal_stop(loop, &sig_usr1);
    kapd_cycle_exit();
    KAP_LOG(KAP_LOG_NOTICE, NULL, 0, "exiting");
    pid_remove();
    return KAPD_EXIT_OK;
}
