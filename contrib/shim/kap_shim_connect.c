/*
 * kap_shim_connect.c -- `kap-shim connect HOST PORT`: connect stdin and
 * stdout to HOST:PORT through the HTTP proxy in $HTTPS_PROXY (kapd's
 * http_connect), for ssh:
 *
 *   Host *
 *       ProxyCommand kap-shim connect %h %p
 *
 * Steps: find the proxy (HTTPS_PROXY, https_proxy, HTTP_PROXY,
 * http_proxy: http://ADDRESS:PORT[/]); connect (deadline); send
 * "CONNECT HOST:PORT HTTP/1.1" with a matching Host; read the response
 * head (bounded, deadline; parsed by kap_shim_connect_reply.c); on a
 * status other than 2xx print one line naming it and what to do, exit 1.
 * Then relay both ways in one poll(2) loop:
 *
 *  - bytes that came with the response head (an SSH server's banner can
 *    share the segment) are written to stdout first;
 *  - nothing waits for the client to speak: the server's banner is
 *    relayed as soon as it arrives;
 *  - stdin EOF half-closes the tunnel (shutdown(SHUT_WR)) once every byte
 *    read from stdin is sent; the server's remaining bytes keep coming
 *    until it closes;
 *  - the server's close ends the relay once every byte is on stdout:
 *    exit 0.  stdout closed by its reader also ends it (exit 0).
 *
 * stdin and stdout are left blocking (they may be shared with the parent);
 * poll(2) says when they are ready and writes to stdout are at most
 * PIPE_BUF bytes, which a ready pipe takes without blocking.
 *
 * Exit: 0 the server closed the tunnel, 1 proxy refusal or a network
 * error, 2 usage or environment errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "kap_shim_connect.h"
#include "kap_shim_connect_reply.h"
#include "kap_shim_say.h"

#define CONN_DIAL_MS     10000     /* TCP connect to the proxy */
#define CONN_HEAD_MS     30000     /* CONNECT answer (kapd gives 504 first) */
#define CONN_BODY_MS      2000     /* a look at an error body */
#define CONN_HEAD_MAX    16384     /* largest response head */
#define CONN_BODY_SHOW     300     /* bytes of an error body looked at */
#define CONN_BUF         65536     /* relay buffer per direction */
#define CONN_OUT_CHUNK   PIPE_BUF  /* largest single write to stdout */

static void cmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
cmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kap_shim_vsay("kap-shim connect", fmt, ap);
    va_end(ap);
}

static long long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
left_ms(long long deadline)
{
    long long l = deadline - now_ms();
    return l < 0 ? 0 : (int)l;
}

/* ---- arguments ------------------------------------------------------------ */

/* "HOST:PORT" for the request (IPv6 literals in brackets); 0 or -1 */
static int
make_authority(const char *host, const char *port, char *out, size_t cap)
{
    char h[300];
    size_t hl = strlen(host);

    if (hl == 0 || hl >= sizeof h) {
        cmsg("bad host \"%.64s\": empty or longer than %zu bytes", host, sizeof h - 1);
        return -1;
    }
    memcpy(h, host, hl + 1);
    if (h[0] == '[' && h[hl - 1] == ']') {       /* [v6] as given */
        h[hl - 1] = '\0';
        memmove(h, h + 1, hl - 1);
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (errno != 0 || end == port || *end != '\0' || p < 1 || p > 65535
        || port[0] < '0' || port[0] > '9') {
        cmsg("bad port \"%.16s\": want 1-65535", port);
        return -1;
    }
    int n;
    if (strchr(h, ':') != NULL) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, h, &a6) != 1) {
            cmsg("bad host \"%.64s\": not a name or an IPv6 address", host);
            return -1;
        }
        n = snprintf(out, cap, "[%s]:%ld", h, p);
    } else {
        for (const char *c = h; *c; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')
                  || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'
                  || *c == '_')) {
                cmsg("bad host \"%.64s\": only letters, digits, '.', '-' and '_' "
                     "(IDNs as xn-- A-labels)", host);
                return -1;
            }
        }
        n = snprintf(out, cap, "%s:%ld", h, p);
    }
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- the proxy from the environment --------------------------------------- */

struct proxy {
    struct sockaddr_storage addr;
    socklen_t               addrlen;
    char                    text[160];    /* "127.0.0.1:3128" for messages */
    const char             *var;          /* the variable it came from */
};

static int
proxy_from_env(struct proxy *px)
{
    static const char *vars[] = { "HTTPS_PROXY", "https_proxy",
                                  "HTTP_PROXY", "http_proxy", NULL };
    const char *v = NULL;
    for (int i = 0; vars[i] != NULL; i++) {
        const char *e = getenv(vars[i]);
        if (e != NULL && e[0] != '\0') {
            v = e;
            px->var = vars[i];
            break;
        }
    }
    if (v == NULL) {
        cmsg("no proxy: HTTPS_PROXY (or https_proxy, HTTP_PROXY, http_proxy) is not "
             "set; inside a kap capsule or devcontainer it is, so this shell is "
             "probably not in one");
        return -1;
    }
    const char *s = v;
    if (strncasecmp(s, "http://", 7) == 0) {
        s += 7;
    } else if (strstr(s, "://") != NULL) {
        cmsg("%s=%.80s: only http://ADDRESS:PORT proxies are supported", px->var, v);
        return -1;
    }
    char hp[128];
    size_t l = strcspn(s, "/");
    if (l >= sizeof hp || (s[l] == '/' && s[l + 1] != '\0')) {
        cmsg("%s=%.80s: want http://ADDRESS:PORT (no path)", px->var, v);
        return -1;
    }
    memcpy(hp, s, l);
    hp[l] = '\0';
    if (strchr(hp, '@') != NULL) {
        cmsg("%s: credentials in the proxy URL are not supported", px->var);
        return -1;
    }
    char *colon = strrchr(hp, ':');
    char *rb = strrchr(hp, ']');
    if (colon == NULL || (rb != NULL && colon < rb)) {
        cmsg("%s=%.80s: no port (want http://ADDRESS:PORT)", px->var, v);
        return -1;
    }
    *colon = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 1 || port > 65535) {
        cmsg("%s=%.80s: bad port", px->var, v);
        return -1;
    }
    char *h = hp;
    size_t hl = strlen(h);
    memset(&px->addr, 0, sizeof px->addr);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&px->addr;
        if (inet_pton(AF_INET6, h, &a6->sin6_addr) != 1) {
            cmsg("%s=%.80s: bad IPv6 address", px->var, v);
            return -1;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        px->addrlen = sizeof *a6;
        snprintf(px->text, sizeof px->text, "[%s]:%ld", h, port);
        return 0;
    }
    /* names are not resolved here: this program is static and has no
       resolver of its own; kap sets an address */
    if (strcasecmp(h, "localhost") == 0)
        h = "127.0.0.1";
    struct sockaddr_in *a4 = (struct sockaddr_in *)&px->addr;
    if (inet_pton(AF_INET, h, &a4->sin_addr) != 1) {
        cmsg("%s=%.80s: the proxy must be given as an IP address (or localhost)",
             px->var, v);
        return -1;
    }
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    px->addrlen = sizeof *a4;
    snprintf(px->text, sizeof px->text, "%s:%ld", h, port);
    return 0;
}

/* ---- talking to the proxy ------------------------------------------------- */

static int
dial(const struct proxy *px)
{
    int fd = socket(px->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cmsg("socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&px->addr, px->addrlen) < 0
        && errno != EINPROGRESS) {
        cmsg("cannot connect to the proxy %s (from %s): %s", px->text, px->var,
             strerror(errno));
        close(fd);
        return -1;
    }
    long long deadline = now_ms() + CONN_DIAL_MS;
    for (;;) {
        struct pollfd p = { fd, POLLOUT, 0 };
        int rc = poll(&p, 1, left_ms(deadline));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0) {
            cmsg("cannot connect to the proxy %s (from %s): %s", px->text, px->var,
                 rc == 0 ? "timed out" : strerror(errno));
            close(fd);
            return -1;
        }
        break;
    }
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
        err = errno;
    if (err != 0) {
        cmsg("cannot connect to the proxy %s (from %s): %s", px->text, px->var,
             strerror(err));
        close(fd);
        return -1;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int
send_all(int fd, const char *p, size_t n, long long deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        struct pollfd pf = { fd, POLLOUT, 0 };
        if (poll(&pf, 1, left_ms(deadline)) == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* read into buf (have bytes already) until more arrive, EOF or the
   deadline: returns bytes read, 0 at EOF, -1 with errno */
static ssize_t
recv_some(int fd, char *buf, size_t cap, long long deadline)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        struct pollfd pf = { fd, POLLIN, 0 };
        int rc = poll(&pf, 1, left_ms(deadline));
        if (rc == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

/* the first line of an error body, printable ASCII only, in out */
static void
body_line(int fd, const char *have, size_t nhave,
          const struct kap_connect_reply *r, char *out, size_t cap)
{
    char body[CONN_BODY_SHOW + 1];
    size_t want = CONN_BODY_SHOW;
    if (r->content_length >= 0 && (unsigned long long)r->content_length < want)
        want = (size_t)r->content_length;
    size_t n = nhave < want ? nhave : want;
    memcpy(body, have, n);
    long long deadline = now_ms() + CONN_BODY_MS;
    while (n < want && memchr(body, '\n', n) == NULL) {
        ssize_t got = recv_some(fd, body + n, want - n, deadline);
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c == '\n' || c == '\r')
            break;
        out[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

/* a one-line explanation of a refusal */
static void
refused(int fd, const struct proxy *px, const char *auth,
        const struct kap_connect_reply *r, const char *rest, size_t nrest)
{
    char why[CONN_BODY_SHOW + 1] = "";
    body_line(fd, rest, nrest, r, why, sizeof why);
    const char *sep = why[0] ? ": " : "";
    switch (r->status) {
    case 403:
        cmsg("the proxy %s refused CONNECT %s: %d %s%s%s -- to allow it, add \"%s\" "
             "to network.allow in kap.conf", px->text, auth, r->status, r->reason,
             sep, why, auth);
        break;
    case 502:
    case 504:
        cmsg("the proxy %s could not reach %s: %d %s%s%s", px->text, auth,
             r->status, r->reason, sep, why);
        break;
    case 407:
        cmsg("the proxy %s wants authentication (%d %s), which kap-shim connect "
             "does not send", px->text, r->status, r->reason);
        break;
    default:
        cmsg("the proxy %s refused CONNECT %s: %d %s%s%s", px->text, auth,
             r->status, r->reason, sep, why);
        break;
    }
}

/* ---- the relay ------------------------------------------------------------ */

struct pipe_buf {
    char   b[CONN_BUF];
    size_t off, len;
};

static int
relay(int s, struct pipe_buf *down)
{
    static struct pipe_buf up;     /* stdin -> socket */
    int in_eof = 0, sock_eof = 0, shut = 0;

    for (;;) {
        if (sock_eof && down->len == 0)
            return 0;
        if (in_eof && up.len == 0 && !shut) {
            /* every stdin byte is sent: half-close, keep reading */
            if (shutdown(s, SHUT_WR) < 0 && errno != ENOTCONN) {
                cmsg("shutdown: %s", strerror(errno));
                return 1;
            }
            shut = 1;
        }
        struct pollfd p[3] = {
            { 0, (short)(!in_eof && up.len == 0 ? POLLIN : 0), 0 },
            { s, (short)((up.len ? POLLOUT : 0)
                         | (!sock_eof && down->len == 0 ? POLLIN : 0)), 0 },
            { 1, (short)(down->len ? POLLOUT : 0), 0 },
        };
        /* a descriptor with nothing wanted is left out: its POLLHUP
           would wake the loop again and again */
        for (int i = 0; i < 3; i++) {
            if (p[i].events == 0)
                p[i].fd = -1;
        }
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            cmsg("poll: %s", strerror(errno));
            return 1;
        }

        if (p[0].revents) {
            ssize_t n = read(0, up.b, sizeof up.b);
            if (n > 0) {
                up.off = 0;
                up.len = (size_t)n;
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                in_eof = 1;             /* an unreadable stdin ends input too */
            }
        }
        if (p[1].revents & (POLLOUT | POLLERR | POLLHUP) && up.len) {
            ssize_t n = send(s, up.b + up.off, up.len, MSG_NOSIGNAL);
            if (n > 0) {
                up.off += (size_t)n;
                up.len -= (size_t)n;
            } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                if (errno == EPIPE || errno == ECONNRESET) {
                    /* the server is gone: what it sent still goes out */
                    up.len = 0;
                    in_eof = 1;
                    shut = 1;
                } else {
                    cmsg("send: %s", strerror(errno));
                    return 1;
                }
            }
        }
        if (p[1].revents & (POLLIN | POLLERR | POLLHUP) && !sock_eof && down->len == 0) {
            ssize_t n = recv(s, down->b, sizeof down->b, 0);
            if (n > 0) {
                down->off = 0;
                down->len = (size_t)n;
            } else if (n == 0) {
                sock_eof = 1;
            } else if (errno != EINTR && errno != EAGAIN) {
                cmsg("connection lost: %s", strerror(errno));
                return 1;
            }
        }
        if (p[2].revents && down->len) {
            size_t chunk = down->len < CONN_OUT_CHUNK ? down->len : CONN_OUT_CHUNK;
            ssize_t n = write(1, down->b + down->off, chunk);
            if (n > 0) {
                down->off += (size_t)n;
                down->len -= (size_t)n;
            } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
                return 0;               /* our reader went away: done */
            }
        }
    }
}

/* ---- the role ------------------------------------------------------------- */

static void
usage(FILE *f)
{
    fprintf(f,
"usage: kap-shim connect HOST PORT\n"
"Connect stdin and stdout to HOST:PORT through the HTTP proxy in\n"
"$HTTPS_PROXY (or https_proxy, HTTP_PROXY, http_proxy; http://ADDRESS:PORT)\n"
"with CONNECT.  For ssh (~/.ssh/config):\n"
"    Host *\n"
"        ProxyCommand kap-shim connect %%h %%p\n"
"HOST:PORT must be allowed by the proxy (kap.conf: network.allow \"HOST:PORT\").\n"
"Exit: 0 the server closed, 1 refused by the proxy or a network error, 2 usage.\n");
}

int
kap_shim_connect(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    int a = 1;
    if (a < argc && strcmp(argv[a], "--") == 0)
        a++;
    if (argc - a != 2) {
        usage(stderr);
        return 2;
    }
    char auth[320];
    if (make_authority(argv[a], argv[a + 1], auth, sizeof auth) < 0)
        return 2;
    struct proxy px;
    if (proxy_from_env(&px) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);

    int s = dial(&px);
    if (s < 0)
        return 1;
    char req[800];
    int rl = snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                      auth, auth);
    long long deadline = now_ms() + CONN_HEAD_MS;
    if (rl < 0 || (size_t)rl >= sizeof req
        || send_all(s, req, (size_t)rl, deadline) < 0) {
        cmsg("cannot send CONNECT to the proxy %s: %s", px.text, strerror(errno));
        close(s);
        return 1;
    }

    /* the response head; interim 1xx answers are skipped */
    static struct pipe_buf down;
    char *head = down.b;
    size_t have = 0;
    struct kap_connect_reply r;
    for (;;) {
        int rc = kap_connect_reply_parse(head, have, &r);
        if (rc < 0) {
            cmsg("the proxy %s sent a malformed answer to CONNECT %s: %s", px.text,
                 auth, r.error);
            close(s);
            return 1;
        }
        if (rc == 1 && r.status >= 100 && r.status < 200 && r.status != 101) {
            memmove(head, head + r.head_len, have - r.head_len);
            have -= r.head_len;
            continue;
        }
        if (rc == 1)
            break;
        if (have >= CONN_HEAD_MAX) {
            cmsg("the proxy %s sent an answer head longer than %d bytes", px.text,
                 CONN_HEAD_MAX);
            close(s);
            return 1;
        }
        ssize_t n = recv_some(s, head + have, CONN_HEAD_MAX - have, deadline);
        if (n <= 0) {
            cmsg("no answer from the proxy %s to CONNECT %s: %s", px.text, auth,
                 n == 0 ? "it closed the connection"
                        : errno == ETIMEDOUT ? "timed out" : strerror(errno));
            close(s);
            return 1;
        }
        have += (size_t)n;
    }
    if (r.status < 200 || r.status > 299) {
        refused(s, &px, auth, &r, head + r.head_len, have - r.head_len);
        close(s);
        return 1;
    }
    /* the tunnel: bytes after the head (a banner) go out first */
    down.off = r.head_len;
    down.len = have - r.head_len;
    int st = relay(s, &down);
    close(s);
    return st;
}
