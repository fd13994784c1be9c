/*
 * kap_shim_limits.c -- what the capsule's command starts with: resource
 * limits, only allow-listed environment variables, no inherited
 * descriptors, loopback up.
 *
 * Limits are rlimits (a delegated cgroup v2 is not assumed): processes
 * (counted per user namespace, so only the capsule's), writable memory per
 * process (RLIMIT_DATA, not RLIMIT_AS: runtimes such as V8 reserve large
 * address ranges they never touch) and file size.  A fork bomb or a
 * runaway build hits them inside the capsule, not the host's limits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>

#include "kap_shim_capsule.h"

#define CAP_NPROC        1024                       /* processes */
#define CAP_FSIZE        (16ULL << 30)              /* one file: 16 GiB */
#define CAP_DATA_MIN     (1ULL << 30)               /* memory floor: 1 GiB */

void
capsule_warn(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    int n = snprintf(line, sizeof line, "kap run: capsule: ");
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line)
        line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

static int
lower(int res, rlim_t v)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) < 0)
        return -1;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < v)
        v = rl.rlim_max;
    rl.rlim_cur = v;
    rl.rlim_max = v;
    return setrlimit(res, &rl);
}

int
capsule_rlimits(void)
{
    /* writable memory per process: three quarters of RAM */
    struct sysinfo si;
    rlim_t data = CAP_DATA_MIN;
    if (sysinfo(&si) == 0) {
        unsigned long long ram = (unsigned long long)si.totalram * si.mem_unit;
        if (ram / 4 * 3 > data)
            data = (rlim_t)(ram / 4 * 3);
    }
    if (lower(RLIMIT_NPROC, CAP_NPROC) < 0 || lower(RLIMIT_DATA, data) < 0
        || lower(RLIMIT_FSIZE, (rlim_t)CAP_FSIZE) < 0) {
        capsule_warn("setrlimit: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void
capsule_close_fds(int from)
{
    if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
        return;
    long max = sysconf(_SC_OPEN_MAX);
    for (long fd = from; fd < (max > 0 ? max : 1024); fd++)
        close((int)fd);
}

/* envp[*n] = NAME=VALUE (copied), when there is room */
static int
put(char **envp, size_t *n, size_t cap, const char *name,
    const char *value)
{
    if (value == NULL || *n + 1 >= cap)
        return 0;
    size_t l = strlen(name) + strlen(value) + 2;
    char *s = malloc(l);
    if (s == NULL)
        return -1;
    snprintf(s, l, "%s=%s", name, value);
    for (size_t i = 0; i < *n; i++) {           /* later wins */
        size_t nl = strlen(name);
        if (strncmp(envp[i], name, nl) == 0 && envp[i][nl] == '=') {
            free(envp[i]);
            envp[i] = s;
            return 0;
        }
    }
    envp[(*n)++] = s;
    envp[*n] = NULL;
    return 0;
}

int
capsule_build_env(struct capsule *c)
{
    extern char **environ;
    size_t cap = 64 + CAP_MAX_LIST, n = 0;
    char **e = calloc(cap, sizeof *e);
    if (e == NULL)
        return -1;
    static const char *keep[] = { "TERM", "LANG", "TZ", NULL };
    for (const char **k = keep; *k; k++)
        put(e, &n, cap, *k, getenv(*k));
    for (char **v = environ; *v; v++)
        if (strncmp(*v, "LC_", 3) == 0 && strchr(*v, '=') && n + 1 < cap) {
            char name[128];
            size_t nl = (size_t)(strchr(*v, '=') - *v);
            if (nl < sizeof name) {
                memcpy(name, *v, nl);
                name[nl] = '\0';
                put(e, &n, cap, name, *v + nl + 1);
            }
        }
    put(e, &n, cap, "PATH", c->ncli > 0
        ? CAP_CLI_DIR ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    if (c->ncli > 0)
        put(e, &n, cap, "KAP_CLI_SHIM_DIR", CAP_CLI_DIR);
    put(e, &n, cap, "HOME", c->home);
    put(e, &n, cap, "USER", c->user);
    put(e, &n, cap, "LOGNAME", c->user);
    put(e, &n, cap, "SHELL", c->shell);
    put(e, &n, cap, "PWD", c->cwd);
    static const char *proxy = "http://127.0.0.1:3128";
    put(e, &n, cap, "HTTP_PROXY", proxy);
    put(e, &n, cap, "HTTPS_PROXY", proxy);
    put(e, &n, cap, "http_proxy", proxy);
    put(e, &n, cap, "https_proxy", proxy);
    put(e, &n, cap, "NO_PROXY", "localhost,127.0.0.1");
    put(e, &n, cap, "no_proxy", "localhost,127.0.0.1");
    put(e, &n, cap, "KAP_CAPSULE", "1");
    /* the policy's capsule.env names */
    for (size_t i = 0; i < c->nenv; i++)
        put(e, &n, cap, c->env[i], getenv(c->env[i]));
    c->envp = e;
    return 0;
}

int
capsule_loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        capsule_warn("socket: %s", strerror(errno));
        return -1;
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    if (rc < 0)
        capsule_warn("cannot bring up loopback: %s", strerror(errno));
    close(s);
    return rc;
}
