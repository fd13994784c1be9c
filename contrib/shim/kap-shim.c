/*
 * kap-shim.c -- the small static helper that runs on the agent's side of a
 * kap capsule.  One binary, several roles chosen by argv[1]:
 *
 *   bridge  inside the capsule's private network namespace, listen on
 *           loopback TCP/UDP ports (the proxy at 127.0.0.1:3128, DNS at
 *           127.0.0.1:53) and relay every connection and datagram to kapd's
 *           unix sockets outside the namespace.  A unix socket is a
 *           filesystem object, so it is reachable across network
 *           namespaces; nothing else is.
 *   capsule kap run's capsule: namespaces, a private root, limits,
 *           seccomp, the private kapd and the bridge
 *           (kap_shim_capsule.c and the files it names).
 *   exec    reset every signal disposition and the signal mask, then exec
 *           a command (a shell's background job starts with SIGINT and
 *           SIGQUIT ignored; the agent must get the user's Ctrl-C).
 *           With --pty, in its own session on a private pty relayed to
 *           the user's terminal (kap_shim_pty.c).
 *
 *   connect the SSH-over-CONNECT bridge: stdin/stdout to HOST:PORT through
 *           the proxy in $HTTPS_PROXY (kap_shim_connect.c).
 *
 *   cli     a CLI tool's stand-in: `kap-shim cli TOOL ARGS`, or a link
 *           named TOOL to kap-shim (the shim directory on the capsule's
 *           PATH): the call goes to kapd's cli module (kap_shim_cli.c).
 *
 * libc only, no threads: one poll(2) loop, nonblocking sockets, bounded
 * buffers.  Built with -static when the toolchain allows it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "kap_shim_pty.h"
#include "kap_shim_say.h"
#include "kap_shim_capsule.h"
#include "kap_shim_connect.h"
#include "kap_shim_netcheck.h"
#include "kap_shim_cli.h"
#include "kap_shim_jsonc.h"

#ifndef KAP_SHIM_VERSION
#define KAP_SHIM_VERSION "0.1.0"
#endif

#define SHIM_MAX_LISTEN      16       /* --tcp/--udp entries */
#define SHIM_MAX_RELAYS     512       /* concurrent TCP relays */
#define SHIM_RELAY_BUF    16384       /* bytes per direction per relay */
#define SHIM_MAX_USESS      256       /* concurrent UDP client sessions */
#define SHIM_USESS_IDLE      30       /* s: idle UDP session lifetime */
#define SHIM_DGRAM_MAX    65536       /* largest datagram relayed */
#define SHIM_BACKOFF_MS     100       /* accept paused after EMFILE */

static const char *prog = "kap-shim";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void warnx_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void vmsg(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void
vmsg(const char *fmt, va_list ap)
{
    kap_shim_vsay(prog, fmt, ap);
}

static void
die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    exit(2);
}

static void
warnx_(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
}

/* ---- bridge: configuration ------------------------------------------- */

enum { L_TCP = 0, L_UDP };

struct listen_spec {
    int                     type;       /* L_TCP or L_UDP */
    struct sockaddr_storage addr;       /* where to listen in the capsule */
    socklen_t               addrlen;
    struct sockaddr_un      target;     /* kapd's unix socket */
    socklen_t               targetlen;
    char                    text[160];  /* "tcp 127.0.0.1:3128" for logs */
    int                     fd;
};

/*
 * Parse "HOST:PORT=PATH" (HOST an IPv4 literal, or [IPv6]) into sp.
 * Returns 0 or -1 with a message printed.
 */
static int
parse_spec(struct listen_spec *sp, int type, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || eq[1] == '\0') {
        warnx_("bad listener \"%s\": want HOST:PORT=/path/to/unix.sock", arg);
        return -1;
    }
    char host[64];
    size_t hl = (size_t)(eq - arg);
    if (hl >= sizeof host) {
        warnx_("bad listener \"%s\": address too long", arg);
        return -1;
    }
    memcpy(host, arg, hl);
    host[hl] = '\0';

    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        warnx_("bad listener \"%s\": missing :PORT", arg);
        return -1;
    }
    *colon = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port < 1 || port > 65535) {
        warnx_("bad listener \"%s\": bad port", arg);
        return -1;
    }
    char *h = host;
    size_t l = strlen(h);
    memset(&sp->addr, 0, sizeof sp->addr);
    if (l >= 2 && h[0] == '[' && h[l - 1] == ']') {
        h[l - 1] = '\0';
        h++;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sp->addr;
        if (inet_pton(AF_INET6, h, &s6->sin6_addr) != 1) {
            warnx_("bad listener \"%s\": bad IPv6 address", arg);
            return -1;
        }
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sp->addrlen = sizeof *s6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sp->addr;
        if (inet_pton(AF_INET, h, &s4->sin_addr) != 1) {
            warnx_("bad listener \"%s\": bad IPv4 address", arg);
            return -1;
        }
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sp->addrlen = sizeof *s4;
    }

    const char *path = eq + 1;
    size_t pl = strlen(path);
    memset(&sp->target, 0, sizeof sp->target);
    if (pl >= sizeof sp->target.sun_path) {
        warnx_("bad listener \"%s\": unix path longer than %zu bytes", arg,
               sizeof sp->target.sun_path - 1);
        return -1;
    }
    sp->target.sun_family = AF_UNIX;
    memcpy(sp->target.sun_path, path, pl + 1);
    sp->targetlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl + 1);
    sp->type = type;
    sp->fd = -1;
    snprintf(sp->text, sizeof sp->text, "%s %.63s", type == L_TCP ? "tcp" : "udp",
             arg);
    return 0;
}

static int
open_listener(struct listen_spec *sp)
{
    int fd = socket(sp->addr.ss_family,
                    (sp->type == L_TCP ? SOCK_STREAM : SOCK_DGRAM)
                    | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        warnx_("%s: socket: %s", sp->text, strerror(errno));
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sp->addr.ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sp->addr, sp->addrlen) < 0) {
        warnx_("%s: bind: %s", sp->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (sp->type == L_TCP && listen(fd, 512) < 0) {
        warnx_("%s: listen: %s", sp->text, strerror(errno));
        close(fd);
        return -1;
    }
    sp->fd = fd;
    return 0;
}

/* ---- bridge: TCP relays ------------------------------------------------ */

struct half {
    char   buf[SHIM_RELAY_BUF];
    size_t off, len;      /* pending bytes buf[off .. off+len) */
    int    eof;           /* reader saw EOF (or error) */
    int    shut;          /* shutdown(SHUT_WR) done on the writer */
};

struct relay {
    int         a;        /* client in the capsule */
    int         b;        /* kapd's unix socket */
    int         b_connecting;
    struct half ab;       /* a -> b */
    struct half ba;       /* b -> a */
    int         pa, pb;   /* indexes into the pollfd array, -1 if absent */
};

static struct relay *relays[SHIM_MAX_RELAYS];
static size_t nrelays;

static void
relay_free(size_t i)
{
    struct relay *r = relays[i];
    close(r->a);
    close(r->b);
    free(r);
    relays[i] = relays[--nrelays];
    relays[nrelays] = NULL;
}

static void
tcp_accept(struct listen_spec *sp, int *backoff)
{
    for (int k = 0; k < 64; k++) {
        int c = accept4(sp->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS
                || errno == ENOMEM)
                *backoff = 1;
            return;
        }
        if (nrelays >= SHIM_MAX_RELAYS) {
            close(c);
            *backoff = 1;
            return;
        }
        int u = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (u < 0) {
            close(c);
            *backoff = 1;
            return;
        }
        int connecting = 0;
        if (connect(u, (struct sockaddr *)&sp->target, sp->targetlen) < 0) {
            if (errno == EINPROGRESS) {
                connecting = 1;
            } else {
                /* kapd not there (or its backlog is full): refuse the
                 * client the way a closed port would. */
                struct linger lg = { 1, 0 };
                (void)setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                close(c);
                close(u);
                continue;
            }
        }
        struct relay *r = calloc(1, sizeof *r);
        if (r == NULL) {
            close(c);
            close(u);
            *backoff = 1;
            return;
        }
        int one = 1;
        (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        r->a = c;
        r->b = u;
        r->b_connecting = connecting;
        relays[nrelays++] = r;
    }
}

/* Read into h from fd.  Returns 0, or -1 when the relay must end. */
static int
half_read(struct half *h, int fd)
{
    if (h->eof || h->len > 0)
        return 0;
    h->off = 0;
    ssize_t n = read(fd, h->buf, sizeof h->buf);
    if (n > 0) {
        h->len = (size_t)n;
    } else if (n == 0) {
        h->eof = 1;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return -1;
    }
    return 0;
}

/* Write h's pending bytes to fd.  Returns 0, or -1 when the relay must end. */
static int
half_write(struct half *h, int fd)
{
    while (h->len > 0) {
        ssize_t n = send(fd, h->buf + h->off, h->len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        h->off += (size_t)n;
        h->len -= (size_t)n;
    }
    if (h->eof && !h->shut) {
        (void)shutdown(fd, SHUT_WR);
        h->shut = 1;
    }
    return 0;
}

static short
want_events(const struct relay *r, int side_a)
{
    const struct half *in = side_a ? &r->ab : &r->ba;   /* read from this side */
    const struct half *out = side_a ? &r->ba : &r->ab;  /* write to this side */
    short ev = 0;
    if (r->b_connecting)
        return side_a ? 0 : POLLOUT;
    if (!in->eof && in->len == 0)
        ev |= POLLIN;
    if (out->len > 0)
        ev |= POLLOUT;
    return ev;
}

/* Service one relay after poll.  Returns -1 when it is finished. */
static int
relay_run(struct relay *r, short ra, short rb)
{
    if (r->b_connecting) {
        if (!(rb & (POLLOUT | POLLERR | POLLHUP)))
            return 0;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(r->b, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0)
            return -1;
        r->b_connecting = 0;
    }
    if ((ra & POLLNVAL) || (rb & POLLNVAL))
        return -1;
    if (ra & (POLLIN | POLLHUP | POLLERR))
        if (half_read(&r->ab, r->a) < 0)
            return -1;
    if (rb & (POLLIN | POLLHUP | POLLERR))
        if (half_read(&r->ba, r->b) < 0)
            return -1;
    if (half_write(&r->ab, r->b) < 0 || half_write(&r->ba, r->a) < 0)
        return -1;
    /* finished when both directions saw EOF and everything was written */
    if (r->ab.eof && r->ab.len == 0 && r->ba.eof && r->ba.len == 0)
        return -1;
    /* a hard error on either side with nothing left to deliver */
    if ((ra & POLLERR) && r->ba.len == 0 && r->ab.len == 0)
        return -1;
    if ((rb & POLLERR) && r->ab.len == 0 && r->ba.len == 0)
        return -1;
    return 0;
}

/* ---- bridge: UDP sessions ---------------------------------------------- */

/*
 * Each client address (source ip:port in the capsule) gets its own unix
 * datagram socket, bound to a file in the session directory so that kapd's
 * reply can find its way back (abstract unix names are per network
 * namespace, so they would not do).
 */
struct usess {
    int                     fd;
    int                     lidx;       /* listener it belongs to */
    struct sockaddr_storage peer;
    socklen_t               peerlen;
    time_t                  last;
    char                    path[sizeof ((struct sockaddr_un *)0)->sun_path];
    int                     pidx;
};

static struct usess usess[SHIM_MAX_USESS];
static size_t nusess;
static char sessdir[sizeof ((struct sockaddr_un *)0)->sun_path];
static unsigned long sesscount;

static void
usess_free(size_t i)
{
    close(usess[i].fd);
    unlink(usess[i].path);
    usess[i] = usess[--nusess];
}

static int
usess_new(int lidx, const struct listen_spec *sp,
          const struct sockaddr_storage *peer, socklen_t peerlen)
{
    if (nusess >= SHIM_MAX_USESS) {
        /* evict the least recently used session */
        size_t old = 0;
        for (size_t i = 1; i < nusess; i++)
            if (usess[i].last < usess[old].last)
                old = i;
        usess_free(old);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un me;
    memset(&me, 0, sizeof me);
    me.sun_family = AF_UNIX;
    int n = snprintf(me.sun_path, sizeof me.sun_path, "%s/.b%ld.%lu", sessdir,
                     (long)getpid(), ++sesscount);
    if (n < 0 || (size_t)n >= sizeof me.sun_path) {
        close(fd);
        return -1;
    }
    (void)unlink(me.sun_path);
    if (bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
        warnx_("bind %s: %s", me.sun_path, strerror(errno));
        close(fd);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&sp->target, sp->targetlen) < 0) {
        unlink(me.sun_path);
        close(fd);
        return -1;
    }
    struct usess *s = &usess[nusess++];
    s->fd = fd;
    s->lidx = lidx;
    memcpy(&s->peer, peer, peerlen);
    s->peerlen = peerlen;
    s->last = time(NULL);
    memcpy(s->path, me.sun_path, sizeof s->path);
    return (int)(nusess - 1);
}

static int
same_peer(const struct sockaddr_storage *a, socklen_t al,
          const struct sockaddr_storage *b, socklen_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

static unsigned char dgbuf[SHIM_DGRAM_MAX];

static void
udp_from_client(int lidx, struct listen_spec *sp)
{
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        memset(&peer, 0, sizeof peer);
        ssize_t n = recvfrom(sp->fd, dgbuf, sizeof dgbuf, 0,
                             (struct sockaddr *)&peer, &pl);
        if (n < 0)
            return;
        int si = -1;
        for (size_t i = 0; i < nusess; i++)
            if (usess[i].lidx == lidx && same_peer(&usess[i].peer, usess[i].peerlen,
                                                   &peer, pl)) {
                si = (int)i;
                break;
            }
        if (si < 0)
            si = usess_new(lidx, sp, &peer, pl);
        if (si < 0)
            continue;   /* dropped, as the network might */
        usess[si].last = time(NULL);
        (void)send(usess[si].fd, dgbuf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

static void
udp_from_kapd(struct usess *s, struct listen_spec *ls)
{
    for (int k = 0; k < 64; k++) {
        ssize_t n = recv(s->fd, dgbuf, sizeof dgbuf, MSG_DONTWAIT);
        if (n < 0)
            return;
        s->last = time(NULL);
        (void)sendto(ls->fd, dgbuf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL,
                     (struct sockaddr *)&s->peer, s->peerlen);
    }
}

/* ---- bridge: main loop --------------------------------------------------- */

static volatile sig_atomic_t stop_flag;

static void
on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void
bridge_usage(FILE *f)
{
    fprintf(f,
"usage: kap-shim bridge [--tcp HOST:PORT=SOCK]... [--udp HOST:PORT=SOCK]...\n"
"                       [--session-dir DIR] [--ready-fd N] [--quiet]\n"
"\n"
"Relay loopback listeners inside a capsule to kapd's unix sockets.\n"
"  --tcp 127.0.0.1:3128=/run/kap/x/proxy.sock   stream listener\n"
"  --udp 127.0.0.1:53=/run/kap/x/dns.sock       datagram listener\n"
"  --session-dir DIR  where per-client UDP sockets are bound (default: the\n"
"                     directory of the first --udp socket)\n"
"  --ready-fd N       write \"ready\\n\" to fd N once every listener is bound,\n"
"                     then close it\n"
"  --wait-fd N        accept nothing until a line arrives on fd N (kapd's\n"
"                     --ready-fd pipe): clients wait in the listen queue\n"
"Listeners may also come from KAP_SHIM_TCP / KAP_SHIM_UDP (space-separated).\n");
}

static int
add_specs_from_env(struct listen_spec *specs, size_t *n, int type,
                   const char *var)
{
    const char *v = getenv(var);
    if (v == NULL)
        return 0;
    char tmp[2048];
    size_t l = strlen(v);
    if (l >= sizeof tmp) {
        warnx_("%s too long", var);
        return -1;
    }
    memcpy(tmp, v, l + 1);
    char *save = NULL;
    for (char *tok = strtok_r(tmp, " \t", &save); tok != NULL;
         tok = strtok_r(NULL, " \t", &save)) {
        if (*n >= SHIM_MAX_LISTEN) {
            warnx_("too many listeners");
            return -1;
        }
        if (parse_spec(&specs[*n], type, tok) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

/*
 * Block until a line arrives on fd (kapd is ready: its sockets exist), or
 * end of file (kapd exited) or 20 s.  The listeners are bound already, so
 * the capsule's clients connect and wait in the listen queue meanwhile.
 */
static int
bridge_wait(int fd)
{
    struct pollfd pf = { fd, POLLIN, 0 };
    char b[16];
    int r;
    while ((r = poll(&pf, 1, 20000)) < 0 && errno == EINTR)
        ;
    ssize_t n = r > 0 ? read(fd, b, sizeof b) : -1;
    close(fd);
    if (n <= 0) {
        warnx_("bridge: kapd did not start");
        return -1;
    }
    return 0;
}

static int
role_bridge(int argc, char **argv)
{
    struct listen_spec specs[SHIM_MAX_LISTEN];
    size_t nspecs = 0;
    long ready_fd = -1, wait_fd = -1;
    int quiet = 0;
    const char *sdir = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            bridge_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (i + 1 >= argc) {
            warnx_("bridge: %s needs an argument", a);
            bridge_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--tcp") == 0 || strcmp(a, "--udp") == 0) {
            if (nspecs >= SHIM_MAX_LISTEN)
                die("bridge: too many listeners (max %d)", SHIM_MAX_LISTEN);
            if (parse_spec(&specs[nspecs], a[2] == 't' ? L_TCP : L_UDP, v) < 0)
                return 2;
            nspecs++;
        } else if (strcmp(a, "--session-dir") == 0) {
            sdir = v;
        } else if (strcmp(a, "--ready-fd") == 0 || strcmp(a, "--wait-fd") == 0) {
            char *end;
            errno = 0;
            long fd = strtol(v, &end, 10);
            if (errno || *end || end == v || fd < 0 || fd > 1024)
                die("bridge: bad %s \"%s\"", a, v);
            *(a[2] == 'r' ? &ready_fd : &wait_fd) = fd;
        } else {
            warnx_("bridge: unknown option \"%s\"", a);
            bridge_usage(stderr);
            return 2;
        }
    }
    if (add_specs_from_env(specs, &nspecs, L_TCP, "KAP_SHIM_TCP") < 0
        || add_specs_from_env(specs, &nspecs, L_UDP, "KAP_SHIM_UDP") < 0)
        return 2;
    if (nspecs == 0) {
        warnx_("bridge: no listeners given");
        bridge_usage(stderr);
        return 2;
    }

    /* UDP client sockets live next to kapd's datagram socket by default */
    sessdir[0] = '\0';
    if (sdir != NULL) {
        if (strlen(sdir) >= sizeof sessdir - 24)
            die("bridge: --session-dir too long");
        memcpy(sessdir, sdir, strlen(sdir) + 1);
    } else {
        for (size_t i = 0; i < nspecs; i++) {
            if (specs[i].type != L_UDP)
                continue;
            const char *p = specs[i].target.sun_path;
            const char *sl = strrchr(p, '/');
            size_t dl = sl == NULL ? 0 : (size_t)(sl - p);
            if (sl == NULL) {
                memcpy(sessdir, ".", 2);
            } else if (dl == 0) {
                memcpy(sessdir, "/", 2);
            } else {
                if (dl >= sizeof sessdir - 24)
                    die("bridge: unix socket directory too long for UDP sessions");
                memcpy(sessdir, p, dl);
                sessdir[dl] = '\0';
            }
            break;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* TERM/HUP are only delivered inside ppoll(): no lost wake-up */
    sigset_t block, pollmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &pollmask);
    sigdelset(&pollmask, SIGTERM);
    sigdelset(&pollmask, SIGHUP);
    /* the user's Ctrl-C is for the agent, not for its plumbing */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    /* die with whoever started us (the capsule's init) */
    (void)prctl(PR_SET_PDEATHSIG, SIGTERM);

    for (size_t i = 0; i < nspecs; i++)
        if (open_listener(&specs[i]) < 0)
            return 1;

    if (ready_fd >= 0) {
        static const char msg[] = "ready\n";
        ssize_t w = write((int)ready_fd, msg, sizeof msg - 1);
        (void)w;
        close((int)ready_fd);
    }
    if (!quiet)
        for (size_t i = 0; i < nspecs; i++)
            warnx_("listening on %s", specs[i].text);
    if (wait_fd >= 0 && bridge_wait((int)wait_fd) < 0)
        return 1;

    size_t cap = SHIM_MAX_LISTEN + 2 * SHIM_MAX_RELAYS + SHIM_MAX_USESS;
    struct pollfd *pfd = calloc(cap, sizeof *pfd);
    if (pfd == NULL)
        die("out of memory");
    int backoff = 0;

    while (!stop_flag) {
        size_t np = 0;
        for (size_t i = 0; i < nspecs; i++) {
            pfd[np].fd = backoff && specs[i].type == L_TCP ? -1 : specs[i].fd;
            pfd[np].events = POLLIN;
            pfd[np].revents = 0;
            np++;
        }
        for (size_t i = 0; i < nrelays; i++) {
            struct relay *r = relays[i];
            r->pa = (int)np;
            pfd[np].fd = r->a;
            pfd[np].events = want_events(r, 1);
            pfd[np].revents = 0;
            np++;
            r->pb = (int)np;
            pfd[np].fd = r->b;
            pfd[np].events = want_events(r, 0);
            pfd[np].revents = 0;
            np++;
        }
        for (size_t i = 0; i < nusess; i++) {
            usess[i].pidx = (int)np;
            pfd[np].fd = usess[i].fd;
            pfd[np].events = POLLIN;
            pfd[np].revents = 0;
            np++;
        }
        int timeout = backoff ? SHIM_BACKOFF_MS : (nusess ? 1000 : -1);
        struct timespec ts = { timeout / 1000, (long)(timeout % 1000) * 1000000L };
        backoff = 0;
        int rc = ppoll(pfd, (nfds_t)np, timeout < 0 ? NULL : &ts, &pollmask);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            die("poll: %s", strerror(errno));
        }

        /* relays first (their indexes are only valid before new ones) */
        for (size_t i = 0; i < nrelays; ) {
            struct relay *r = relays[i];
            if (relay_run(r, pfd[r->pa].revents, pfd[r->pb].revents) < 0) {
                relay_free(i);
                continue;
            }
            i++;
        }
        /* sessions: replies from kapd, then idle expiry */
        time_t now = time(NULL);
        for (size_t i = 0; i < nusess; ) {
            struct usess *s = &usess[i];
            if (s->pidx >= 0 && pfd[s->pidx].revents & POLLIN)
                udp_from_kapd(s, &specs[s->lidx]);
            if (now - s->last > SHIM_USESS_IDLE) {
                usess_free(i);
                continue;
            }
            s->pidx = -1;
            i++;
        }
        for (size_t i = 0; i < nspecs; i++) {
            if (!(pfd[i].revents & POLLIN))
                continue;
            if (specs[i].type == L_TCP)
                tcp_accept(&specs[i], &backoff);
            else
                udp_from_client((int)i, &specs[i]);
        }
    }

    while (nusess > 0)
        usess_free(nusess - 1);
    while (nrelays > 0)
        relay_free(nrelays - 1);
    free(pfd);
    return 0;
}

/* the bridge, for the capsule's init (kap_shim_capsule.c) */
int
kap_shim_bridge(int argc, char **argv)
{
    return role_bridge(argc, argv);
}

/* ---- exec: clean signal state, then exec ---------------------------------- */

static int
role_exec(int argc, char **argv)
{
    int i = 1, pty = 0;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--pty") == 0)
            pty = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: kap-shim exec [--pty] [--] CMD [ARGS...]\n"
                   "  --pty  run CMD in its own session; when fd 0, 1 or 2 is a terminal,\n"
                   "         on a private pty relayed to it (no TIOCSTI into the terminal)\n");
            return 0;
        } else
            break;
    }
    if (i < argc && strcmp(argv[i], "--") == 0)
        i++;
    if (i >= argc) {
        warnx_("usage: kap-shim exec [--pty] [--] CMD [ARGS...]");
        return 2;
    }
    if (pty)
        return kap_shim_pty_run(&argv[i], NULL);
    kap_shim_sig_reset();
    execvp(argv[i], &argv[i]);
    warnx_("%s: %s", argv[i], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

/* ---- dispatcher ------------------------------------------------------------ */

static void
usage(FILE *f)
{
    fprintf(f,
"usage: kap-shim ROLE [ARGS...]\n"
"roles:\n"
"  bridge   relay loopback listeners in a capsule to kapd's unix sockets\n"
"  exec     reset signal dispositions and exec a command (--pty: in its own\n"
"           session, on a private pty when on a terminal)\n"
"  capsule  build a kap run capsule and run a command in it (kap(1))\n"
"  connect  HOST PORT: stdin/stdout to HOST:PORT through $HTTPS_PROXY's\n"
"           CONNECT (ssh: ProxyCommand kap-shim connect %%h %%p)\n"
"  netcheck expected-open and expected-blocked probes (tcp, dns, connect),\n"
"           PASS/FAIL per line (kap netcheck)\n"
"  jsonc    read and edit devcontainer.json (JSON with comments), keeping\n"
"           its comments and layout (kap init)\n"
"  version  print the version\n"
"Run `kap-shim ROLE --help` for a role's options.\n");
}

struct role {
    const char *name;
    int       (*fn)(int argc, char **argv);
};

static const struct role roles[] = {
    { "bridge", role_bridge },
    { "exec",   role_exec },
    { "capsule", kap_shim_capsule },
    { "connect", kap_shim_connect },
    { "netcheck", kap_shim_netcheck },
    { "jsonc",   kap_shim_jsonc },
    { "cli",     kap_shim_cli },
    { NULL,     NULL }
};

int
main(int argc, char **argv)
{
    /* a link named after a tool (gh -> kap-shim): the shim role */
    const char *base = argc > 0 && argv[0] != NULL ? strrchr(argv[0], '/') : NULL;
    base = base != NULL ? base + 1 : argc > 0 && argv[0] != NULL ? argv[0] : "";
    if (base[0] != '\0' && strncmp(base, "kap-shim", 8) != 0
        && strncmp(base, "lt-", 3) != 0)
        return kap_shim_cli_tool(base, argc, argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *r = argv[1];
    if (strcmp(r, "-h") == 0 || strcmp(r, "--help") == 0 || strcmp(r, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(r, "-V") == 0 || strcmp(r, "--version") == 0
        || strcmp(r, "version") == 0) {
        printf("kap-shim %s\n", KAP_SHIM_VERSION);
        return 0;
    }
    for (const struct role *ro = roles; ro->name != NULL; ro++) {
        if (strcmp(ro->name, r) == 0) {
            static char pname[64];
            snprintf(pname, sizeof pname, "kap-shim %s", ro->name);
            prog = pname;
            return ro->fn(argc - 1, argv + 1);
        }
    }
    warnx_("unknown role \"%s\"", r);
    usage(stderr);
    return 2;
}
