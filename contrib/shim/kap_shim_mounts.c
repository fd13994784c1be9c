/*
 * kap_shim_mounts.c -- the capsule's filesystem, deny by default.
 *
 * A new root on a tmpfs (mounted over kap's runtime directory in the
 * capsule's private mount namespace, then pivot_root into it, the old
 * root detached): the system read-only (/usr, /bin, /sbin, /lib*, /etc,
 * /opt, parts of /var without its sockets), a fresh /proc with /proc/sys
 * read-only, /sys read-only, a minimal /dev, private /tmp /run /var/tmp
 * /dev/shm; the project directory read-write with its .git pinned (bind
 * mounted on itself: a mount point cannot be renamed) and the code-bearing
 * parts of every git dir read-only; the capsule home at $HOME with the
 * policy's home_ro entries of the real home read-only on top.  Nothing
 * else of the host is there: not the real home, not kap's state or
 * runtime directories, not the host's /tmp or /run and their sockets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "kap_shim_capsule.h"

static const char *NR;                  /* the new root, while building */

/* NR + p into buf */
static const char *
in_root(char *buf, size_t len, const char *p)
{
    int n = snprintf(buf, len, "%s%s", NR, p);
    return (n < 0 || (size_t)n >= len) ? NULL : buf;
}

/*
 * An O_PATH descriptor of directory path, each missing component made with
 * mode; a symlink anywhere in it is refused (ELOOP): the capsule home and
 * the project hold what an agent left there, and this runs before the
 * pivot, where a symlink would lead into the host's filesystem.
 */
static int
open_dirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX], *save = NULL;
    size_t l = strlen(path);
    if (l >= sizeof tmp || path[0] != '/') {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, l + 1);
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    for (char *n = strtok_r(tmp, "/", &save); n && fd >= 0; n = strtok_r(NULL, "/", &save)) {
        int nfd = openat(fd, n, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0 && errno == ENOENT
            && (mkdirat(fd, n, mode) == 0 || errno == EEXIST))
            nfd = openat(fd, n, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(fd);
        fd = nfd;
    }
    return fd;
}

static int
mkpath(const char *path, mode_t mode)
{
    int fd = open_dirs(path, mode);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

/* an O_PATH descriptor of a mount point at dst for a directory or a
 * file: made when missing, a symlink or the wrong type there replaced */
static int
make_target(const char *dst, int dir)
{
    char parent[PATH_MAX];
    size_t l = strlen(dst);
    const char *sl = strrchr(dst, '/');
    if (l >= sizeof parent || sl == NULL || sl[1] == '\0') {
        errno = EINVAL;
        return -1;
    }
    memcpy(parent, dst, (size_t)(sl - dst));
    parent[sl == dst ? 1 : sl - dst] = '\0';
    if (sl == dst)
        parent[0] = '/';
    const char *name = sl + 1;
    int pfd = open_dirs(parent, 0755);
    if (pfd < 0)
        return -1;
    struct stat st;
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0
        && (S_ISLNK(st.st_mode) || (S_ISDIR(st.st_mode) ? 1 : 0) != dir))
        (void)unlinkat(pfd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
    if (dir) {
        if (mkdirat(pfd, name, 0755) < 0 && errno != EEXIST) {
            close(pfd);
            return -1;
        }
    } else {
        int f = openat(pfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (f >= 0)
            close(f);
    }
    int fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    close(pfd);
    return fd;
}

static int
set_attr(const char *dst, unsigned long long set, int recursive)
{
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = set;
    return mount_setattr(AT_FDCWD, dst, recursive ? AT_RECURSIVE : 0, &a,
                         sizeof a);
}

#define RO  1
#define RW  0

/* attach the detached tree fd at the O_PATH descriptor tfd, with attrs */
static int
attach(int fd, int tfd, unsigned long long attrs, int userns_fd)
{
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = attrs;
    if (userns_fd >= 0)
        a.userns_fd = (unsigned long long)userns_fd;
    int rc = -1;
    if ((mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) == 0
         || (userns_fd >= 0 && mount_setattr(fd, "", AT_EMPTY_PATH, &a, sizeof a) == 0))
        && move_mount(fd, "", tfd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) == 0)
        rc = 0;
    int e = errno;
    close(fd);
    close(tfd);
    errno = e;
    return rc;
}

/* bind src (a host path) at dst (a path under NR), with its submounts */
static int
bind(const char *src, const char *dst, int ro)
{
    struct stat st;
    if (stat(src, &st) < 0)
        return -1;
    int tfd = make_target(dst, S_ISDIR(st.st_mode));
    if (tfd < 0)
        return -1;
    int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0) {
        close(tfd);
        return -1;
    }
    return attach(fd, tfd, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0),
                  -1);
}

static int
fail(const char *what, const char *path)
{
    capsule_warn("%s %s: %s", what, path, strerror(errno));
    return -1;
}

static int
tmpfs(const char *dst, const char *opts)
{
    if (mkpath(dst, 0755) < 0
        || mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
        return fail("cannot mount a tmpfs on", dst);
    return 0;
}

/* bind the host's path p read-only at the same place, or copy a symlink */
static int
system_path(const char *p)
{
    char dst[PATH_MAX];
    struct stat st;
    if (lstat(p, &st) < 0 || in_root(dst, sizeof dst, p) == NULL)
        return 0;
    if (S_ISLNK(st.st_mode)) {
        char t[PATH_MAX];
        ssize_t n = readlink(p, t, sizeof t - 1);
        if (n < 0)
            return 0;
        t[n] = '\0';
        return symlink(t, dst) < 0 && errno != EEXIST ? fail("symlink", dst) : 0;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    return bind(p, dst, RO) < 0 ? fail("cannot bind", p) : 0;
}

static int
make_dev(void)
{
    char d[PATH_MAX], s[PATH_MAX];
    static const char *nodes[] = { "null", "zero", "full", "random", "urandom",
                                   "tty", NULL };
    if (tmpfs(in_root(d, sizeof d, "/dev"), "mode=0755") < 0)
        return -1;
    for (const char **n = nodes; *n; n++) {
        snprintf(s, sizeof s, "/dev/%s", *n);
        snprintf(d, sizeof d, "%s/dev/%s", NR, *n);
        int t = make_target(d, 0);
        if (t < 0 || (close(t), mount(s, d, NULL, MS_BIND, NULL)) < 0)
            return fail("cannot bind", s);
    }
    snprintf(d, sizeof d, "%s/dev/pts", NR);
    if (mkdir(d, 0755) < 0
        || mount("devpts", d, "devpts", MS_NOSUID | MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=620") < 0)
        return fail("cannot mount devpts on", d);
    if (tmpfs(in_root(d, sizeof d, "/dev/shm"), "mode=1777") < 0)
        return -1;
    static const char *links[][2] = {
        { "pts/ptmx", "/dev/ptmx" }, { "/proc/self/fd", "/dev/fd" },
        { "/proc/self/fd/0", "/dev/stdin" }, { "/proc/self/fd/1", "/dev/stdout" },
        { "/proc/self/fd/2", "/dev/stderr" }, { NULL, NULL } };
    for (int i = 0; links[i][0]; i++)
        if (symlink(links[i][0], in_root(d, sizeof d, links[i][1])) < 0)
            return fail("symlink", d);
    return 0;
}

static int
make_proc_sys(void)
{
    char d[PATH_MAX];
    if (mkpath(in_root(d, sizeof d, "/proc"), 0755) < 0
        || mount("proc", d, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return fail("cannot mount proc on", d);
    in_root(d, sizeof d, "/proc/sys");
    if (mount(d, d, NULL, MS_BIND | MS_REC, NULL) < 0
        || set_attr(d, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 1) < 0)
        return fail("cannot make read-only:", d);
    if (mkpath(in_root(d, sizeof d, "/sys"), 0755) < 0)
        return fail("mkdir", d);
    /* a sysfs of the capsule's own network namespace; else the host's */
    if (mount("sysfs", d, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
              NULL) < 0 && bind("/sys", d, RO) < 0)
        return fail("cannot mount sysfs on", d);
    return 0;
}

/* /etc/resolv.conf names the bridge; a symlink gets a target in the new
 * root (it points into /run, which is private) */
static void
make_resolv(void)
{
    char d[PATH_MAX], t[PATH_MAX], file[PATH_MAX];
    static const char text[] = "nameserver 127.0.0.1\noptions edns0\n";
    snprintf(file, sizeof file, "%s/.resolv.conf", NR);
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    ssize_t w = write(fd, text, sizeof text - 1);
    (void)w;
    close(fd);
    in_root(d, sizeof d, "/etc/resolv.conf");
    struct stat st;
    if (lstat(d, &st) == 0 && S_ISLNK(st.st_mode)) {
        ssize_t n = readlink(d, t, sizeof t - 1);
        if (n <= 0 || t[0] != '/')
            return;
        t[n] = '\0';
        if (in_root(d, sizeof d, t) == NULL)
            return;
    }
    int tfd = make_target(d, 0);
    if (tfd < 0)
        return;
    close(tfd);
    if (mount(file, d, NULL, MS_BIND, NULL) == 0)
        (void)set_attr(d, MOUNT_ATTR_RDONLY, 0);
}

/* src (the project, or a git dir outside it) read-write at its place;
 * for a root caller whose src is root's, an idmapped mount makes its
 * files the capsule user's */
static int
bind_owned(const struct capsule *c, const char *src)
{
    char d[PATH_MAX];
    struct stat st;
    if (in_root(d, sizeof d, src) == NULL || stat(src, &st) < 0)
        return fail("cannot enter", src);
    if (!c->root || st.st_uid == c->out_uid)
        return bind(src, d, RW) < 0 ? fail("cannot bind", src) : 0;
    int fd = open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return fail("open_tree", src);
    int tfd = make_target(d, 1);
    if (tfd < 0) {
        close(fd);
        return fail("cannot mount", src);
    }
    if (attach(fd, tfd, MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
               c->userns_fd) < 0) {
        capsule_warn("run as root, the command is not root outside the capsule, "
                     "and an idmapped mount that would let it write %s failed: %s. "
                     "Run kap as the project's owner, or chown the project to an "
                     "unprivileged user", src, strerror(errno));
        return -1;
    }
    return 0;
}

/* path p (host) bound on itself in the new root, read-only or not; a
 * symlink there (left by an agent) is not followed: skipped */
static int
pin(const char *p, int ro)
{
    char d[PATH_MAX], parent[PATH_MAX];
    if (in_root(d, sizeof d, p) == NULL)
        return -1;
    const char *sl = strrchr(d, '/');
    memcpy(parent, d, (size_t)(sl - d));
    parent[sl - d] = '\0';
    int pfd = open_dirs(parent, 0755);
    int t1 = pfd < 0 ? -1 : openat(pfd, sl + 1, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (pfd >= 0)
        close(pfd);
    if (t1 >= 0 && fstat(t1, &st) == 0 && S_ISLNK(st.st_mode)) {
        capsule_warn("not pinning %s: a symlink", p);
        close(t1);
        return 0;
    }
    int fd = t1 < 0 ? -1 : open_tree(t1, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                     | AT_EMPTY_PATH | AT_RECURSIVE);
    if (fd < 0) {
        if (t1 >= 0)
            close(t1);
        return fail(ro ? "cannot make read-only:" : "cannot pin", p);
    }
    if (attach(fd, t1, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (ro ? MOUNT_ATTR_RDONLY : 0),
               -1) < 0)
        return fail(ro ? "cannot make read-only:" : "cannot pin", p);
    return 0;
}

/* kap-shim itself, read-only, at CAP_CLI_SHIM, and a link to it named
 * after each cli tool in CAP_CLI_DIR (kap_shim_cli.c) */
static int
cli_shims(const struct capsule *c)
{
    char    d[PATH_MAX], self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return fail("readlink", "/proc/self/exe");
    self[n] = '\0';
    if (in_root(d, sizeof d, CAP_CLI_DIR) == NULL || mkpath(d, 0755) < 0)
        return fail("cannot make", CAP_CLI_DIR);
    if (in_root(d, sizeof d, CAP_CLI_SHIM) == NULL || bind(self, d, RO) < 0)
        return fail("cannot bind kap-shim at", CAP_CLI_SHIM);
    for (size_t i = 0; i < c->ncli; i++) {
        char l[PATH_MAX];
        int  k = snprintf(l, sizeof l, "%s/%s", CAP_CLI_DIR, c->cli_tools[i]);
        if (k < 0 || (size_t)k >= sizeof l || in_root(d, sizeof d, l) == NULL
            || symlink(CAP_CLI_SHIM, d) < 0)
            return fail("cannot make the shim", l);
    }
    return 0;
}

static int
under(const char *p, const char *dir)
{
    size_t l = strlen(dir);
    return strncmp(p, dir, l) == 0 && (p[l] == '/' || p[l] == '\0'
                                      || (l == 1 && dir[0] == '/'));
}

/* a git dir: pinned, its code-bearing parts read-only; the missing
 * directories among them are created first (empty) so that they can be */
static int
git_dir(const struct capsule *c, const char *g)
{
    static const char *code[] = { "hooks", "info", "modules", "worktrees",
                                  "config", "commondir", "config.worktree",
                                  "gitdir", NULL };
    char d[PATH_MAX], p[PATH_MAX];
    struct stat st;
    if (in_root(d, sizeof d, g) == NULL)
        return -1;
    if (!(c->project && under(g, c->project)) && lstat(d, &st) < 0) {
        /* outside the project (a worktree's git dirs): bind it */
        if (bind_owned(c, g) < 0)
            return -1;
    } else if (pin(g, RW) < 0) {
        return -1;
    }
    for (const char **n = code; *n; n++) {
        snprintf(p, sizeof p, "%s/%s", g, *n);
        in_root(d, sizeof d, p);
        if (lstat(d, &st) < 0) {
            if (n - code >= 4)
                continue;               /* files: see kap(1) SECURITY */
            /* on the host's path: an idmapped project refuses root */
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return fail("mkdir", p);
        }
        if (pin(p, RO) < 0)
            return -1;
    }
    return 0;
}


static int
mount_home(const struct capsule *c)
{
    char d[PATH_MAX], s[PATH_MAX];
    if (in_root(d, sizeof d, c->home) == NULL || bind(c->chome, d, RW) < 0)
        return fail("cannot mount the capsule home at", c->home);
    for (size_t i = 0; i < c->nhome_ro; i++) {
        snprintf(s, sizeof s, "%s/%s", c->real_home, c->home_ro[i]);
        snprintf(d, sizeof d, "%s%s/%s", NR, c->home, c->home_ro[i]);
        if (access(s, F_OK) < 0)
            continue;
        if (bind(s, d, RO) < 0) {
            /* the capsule home is the agent's: a symlink it left on the
             * way is not followed, the entry is not shown */
            if (errno == ELOOP || errno == ENOTDIR) {
                capsule_warn("not showing ~/%s: a symlink in the capsule home "
                             "is on its way", c->home_ro[i]);
                continue;
            }
            return fail("cannot bind", s);
        }
    }
    return 0;
}

int
capsule_mount_root(const struct capsule *c)
{
    char d[PATH_MAX];
    NR = c->rt;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return fail("cannot make private:", "/");
    if (mount("tmpfs", NR, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0)
        return fail("cannot mount the capsule's root on", NR);

    static const char *sys[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32",
                                 "/lib64", "/libx32", "/etc", "/opt", NULL };
    for (const char **p = sys; *p; p++)
        if (system_path(*p) < 0)
            return -1;
    if (mkdir(in_root(d, sizeof d, "/var"), 0755) < 0)
        return fail("mkdir", d);
    static const char *var[] = { "/var/lib", "/var/cache", "/var/local",
                                 "/var/opt", "/var/log", NULL };
    for (const char **p = var; *p; p++)
        if (system_path(*p) < 0)
            return -1;
    if (symlink("../run", in_root(d, sizeof d, "/var/run")) < 0
        || symlink("../run/lock", in_root(d, sizeof d, "/var/lock")) < 0)
        return fail("symlink", d);
    if (tmpfs(in_root(d, sizeof d, "/tmp"), "mode=1777") < 0
        || tmpfs(in_root(d, sizeof d, "/var/tmp"), "mode=1777") < 0
        || tmpfs(in_root(d, sizeof d, "/run"), "mode=0755") < 0
        || mkpath(in_root(d, sizeof d, "/run/lock"), 01777) < 0
        || make_dev() < 0 || make_proc_sys() < 0)
        return -1;

    /* parents first: the project may hold $HOME, or $HOME the project */
    int home_first = !(c->project && under(c->home, c->project));
    if (home_first && mount_home(c) < 0)
        return -1;
    if (c->project && bind_owned(c, c->project) < 0)
        return -1;
    if (!home_first && mount_home(c) < 0)
        return -1;
    /* parents first: a worktree's git dir is inside the common one */
    const char *gd[CAP_MAX_LIST];
    memcpy(gd, c->gitdirs, c->ngitdirs * sizeof gd[0]);
    for (size_t i = 1; i < c->ngitdirs; i++)
        for (size_t k = i; k > 0 && strlen(gd[k]) < strlen(gd[k - 1]); k--) {
            const char *x = gd[k];
            gd[k] = gd[k - 1];
            gd[k - 1] = x;
        }
    for (size_t i = 0; i < c->ngitdirs; i++)
        if (git_dir(c, gd[i]) < 0)
            return -1;
    for (size_t i = 0; i < c->nro; i++) {
        struct stat st;
        if (in_root(d, sizeof d, c->ro[i]) && lstat(d, &st) == 0 && pin(c->ro[i], RO) < 0)
            return -1;
    }
    /* kap's state and runtime directories, when under a visible tree */
    for (size_t i = 0; i < c->nhide; i++) {
        struct stat st;
        if (in_root(d, sizeof d, c->hide[i]) && stat(d, &st) == 0 && S_ISDIR(st.st_mode)
            && (mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                      "mode=0555,size=4k") < 0))
            return fail("cannot hide", c->hide[i]);
    }
    make_resolv();
    if (c->ncli > 0 && cli_shims(c) < 0)
        return -1;
    /* the working directory: the project's, or an empty one */
    if (in_root(d, sizeof d, c->cwd) == NULL || mkpath(d, 0755) < 0)
        return fail("cannot make the working directory", c->cwd);

    if (chdir(NR) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
        return fail("pivot_root", NR);
    if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
        return fail("cannot detach the old root", "/");
    (void)unlink("/.resolv.conf");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
              NULL) < 0)
        return fail("cannot make read-only:", "/");
    NR = NULL;
    return 0;
}
