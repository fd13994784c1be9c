/*
 * kapd_listen.c -- listener declarations, binding, hand-over across
 * reloads, and the datagram read loop (kap_conn.h, kapd.h).
 *
 * Modules declare listeners while parsing (kap_listen_add: pure, nothing
 * bound).  kapd_listen_activate() then matches the declarations of the new
 * generation against the open listeners by type and canonical address:
 * matches are handed over unchanged (no rebind, no lost connection in the
 * backlog), the rest are bound; only when every bind succeeded are the
 * new sockets started and the old generation's unmatched listeners
 * closed.  A failure closes what was newly bound and leaves the running
 * set untouched.  Stream accepts are in kapd_conn.c.
 *
 * Datagrams are read with recvmmsg(2), up to DGRAM_RBATCH per call, and
 * replies given to kap_dgram_send() inside the event loop are queued and
 * sent with one sendmmsg(2): at the end of the read batch that produced
 * them, before the loop waits (ev_prepare), when the queue is full, or
 * before the listener closes.  A busy UDP service (dns) thus pays one
 * system call per batch instead of one per datagram in each direction.
 *
 * A unix datagram listener answers only peers bound under its own
 * socket's directory (kapd_unix_peer_ok): a reply goes to whatever socket
 * the peer's address names when it is sent, and a client must not be able
 * to point kapd at a socket elsewhere (a log daemon, a session bus).
 * Other datagrams are dropped and counted, with a warning at most every
 * 10 s.
 */
#include "kapd_listen_int.h"
#include "kapd_conf_read.h"
#include "kapd_clients.h"

#include <kapd/kap_addr.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CANON_MAX 160           /* "unix:" + sun_path, or an inet form */
#define DGRAM_BATCH 64          /* datagrams read per wake-up */
#define DGRAM_RBATCH 16         /* datagrams per recvmmsg() */
#define DGRAM_OUT_MAX 64        /* replies queued for one sendmmsg() */
#define DGRAM_OUT_BYTES (256 * 1024)
#define DGRAM_OUT_ONE 8192      /* larger replies are sent at once */

/* Replies queued for one listener (see kap_dgram_send). */
static struct {
    struct kap_listen      *ls;
    unsigned                n;
    size_t                  used;
    struct mmsghdr          msg[DGRAM_OUT_MAX];
    struct iovec            iov[DGRAM_OUT_MAX];
    struct sockaddr_storage addr[DGRAM_OUT_MAX];
    unsigned char           buf[DGRAM_OUT_BYTES];
    ev_prepare              prep;
    int                     prep_on;
} dgram_out;

static struct kap_listen *listeners;    /* every open listener */

/* ---- address parsing -------------------------------------------------- */

/* "*:N" or ":N": every IPv4 and IPv6 address (dual-stack socket). */
static int
addr_is_wildcard(const char *addr)
{
    return addr[0] == ':' || (addr[0] == '*' && addr[1] == ':');
}

static int
parse_port(const char *s, int *port)
{
    long v = 0;
    size_t i;

    if (s[0] == '\0' || strlen(s) > 5)
        return -1;
    for (i = 0; s[i]; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int
kapd_listen_parse(const char *addr, enum kap_listen_type type,
                  struct sockaddr_storage *ss, socklen_t *sslen,
                  struct kap_err *err)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon, *p;
    size_t hl;
    int port;

    (void)type;
    if (addr == NULL || addr[0] == '\0') {
        kap_err_set(err, "empty listen address");
        return KAP_ERROR;
    }
    memset(ss, 0, sizeof(*ss));

    if (strncmp(addr, "unix:", 5) == 0) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        size_t n = strlen(addr + 5);

        if (n == 0) {
            kap_err_set(err, "invalid listen address \"%s\": empty unix "
                        "socket path", addr);
            return KAP_ERROR;
        }
        if (n >= sizeof(sun->sun_path)) {
            kap_err_set(err, "invalid listen address \"%s\": unix socket "
                        "path longer than %zu bytes", addr,
                        sizeof(sun->sun_path) - 1);
            return KAP_ERROR;
        }
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, addr + 5, n + 1);
        *sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        return KAP_OK;
    }

    if (addr[0] == '[') {
        p = strchr(addr, ']');
        if (p == NULL || p[1] != ':') {
            kap_err_set(err, "invalid listen address \"%s\": expected "
                        "\"[IPv6]:port\"", addr);
            return KAP_ERROR;
        }
        hl = (size_t)(p - addr - 1);
        colon = p + 1;
        if (hl == 0 || hl >= sizeof(host)) {
            kap_err_set(err, "invalid listen address \"%s\": bad IPv6 "
                        "address", addr);
            return KAP_ERROR;
        }
        memcpy(host, addr + 1, hl);
        host[hl] = '\0';
        if (parse_port(colon + 1, &port) != 0)
            goto bad_port;
        {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons((uint16_t)port);
            if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
                kap_err_set(err, "invalid listen address \"%s\": bad IPv6 "
                            "address \"%s\"", addr, host);
                return KAP_ERROR;
            }
            *sslen = sizeof(*s6);
        }
        return KAP_OK;
    }

    colon = strrchr(addr, ':');
    if (colon == NULL) {
        kap_err_set(err, "invalid listen address \"%s\": expected "
                    "\"host:port\", \"[IPv6]:port\", \"*:port\" or "
                    "\"unix:/path\"", addr);
        return KAP_ERROR;
    }
    hl = (size_t)(colon - addr);
    if (memchr(addr, ':', hl) != NULL) {
        kap_err_set(err, "invalid listen address \"%s\": IPv6 addresses "
                    "must be in brackets, as \"[::1]:53\"", addr);
        return KAP_ERROR;
    }
    if (parse_port(colon + 1, &port) != 0)
        goto bad_port;

    if (hl == 0 || (hl == 1 && addr[0] == '*')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        s6->sin6_addr = in6addr_any;
        *sslen = sizeof(*s6);
        return KAP_OK;
    }
    if (hl >= sizeof(host)) {
        kap_err_set(err, "invalid listen address \"%s\": host must be an "
                    "IP address, \"*\" or \"localhost\"", addr);
        return KAP_ERROR;
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        if (strcmp(host, "localhost") == 0) {
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
            kap_err_set(err, "invalid listen address \"%s\": host must be "
                        "an IP address, \"*\" or \"localhost\"", addr);
            return KAP_ERROR;
        }
        *sslen = sizeof(*s4);
    }
    return KAP_OK;

bad_port:
    kap_err_set(err, "invalid listen address \"%s\": the port must be an "
                "integer between 1 and 65535", addr);
    return KAP_ERROR;
}

/* "a.b.c.d:port" without printf (one per datagram); 0, or -1 if no room. */
static int
ipv4_port_text(const unsigned char *a, unsigned port, char *buf,
               size_t size)
{
    char tmp[24], d[6], *e = d + sizeof(d);
    int  n = kapd_ipv4_text(a, tmp, sizeof(tmp));

    *--e = '\0';
    do {
        *--e = (char)('0' + port % 10);
        port /= 10;
    } while (port != 0);
    tmp[n] = ':';
    memcpy(tmp + n + 1, e, (size_t)(d + sizeof(d) - e));
    n += 1 + (int)(d + sizeof(d) - e);
    if ((size_t)n > size)
        return -1;
    memcpy(buf, tmp, (size_t)n);
    return 0;
}

void
kapd_sockaddr_text(const struct sockaddr *sa, socklen_t len,
                   char *buf, size_t size)
{
    char ip[INET6_ADDRSTRLEN];

    if (size == 0)
        return;
    buf[0] = '\0';
    if (sa == NULL || len < sizeof(sa_family_t)) {
        snprintf(buf, size, "unknown");
        return;
    }
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        if (ipv4_port_text((const unsigned char *)&s4->sin_addr,
                           ntohs(s4->sin_port), buf, size) == 0)
            break;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
        snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (kap_addr_is_v4mapped(s6->sin6_addr.s6_addr)) {
            if (ipv4_port_text(&s6->sin6_addr.s6_addr[12],
                               ntohs(s6->sin6_port), buf, size) == 0)
                break;
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof(ip));
            snprintf(buf, size, "%s:%u", ip, (unsigned)ntohs(s6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
            snprintf(buf, size, "[%s]:%u", ip,
                     (unsigned)ntohs(s6->sin6_port));
        }
        break;
    }
    case AF_UNIX:
        snprintf(buf, size, "unix");
        break;
    default:
        snprintf(buf, size, "unknown");
        break;
    }
}

/*
 * Parse addr for generation gen: relative unix paths are joined to the
 * prefix; canon receives the canonical address used for matching
 * ("unix:/abs", "*:3128", "127.0.0.1:53", "[::1]:53").
 */
static int
listen_resolve(struct kap_gen *gen, const char *addr,
               enum kap_listen_type type,
               struct sockaddr_storage *ss, socklen_t *sslen,
               char *canon, size_t canonsz, struct kap_err *err)
{
    if (kapd_listen_parse(addr, type, ss, sslen, err) != KAP_OK)
        return KAP_ERROR;
    if (ss->ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        const char *prefix = gen ? gen->prefix : NULL;
        const char *path = addr + 5;
        int n;

        if (path[0] != '/' && prefix != NULL && prefix[0] != '\0') {
            size_t lp = strlen(prefix);
            while (lp > 1 && prefix[lp - 1] == '/')
                lp--;
            n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%.*s/%s",
                         (int)lp, prefix, path);
            if (n < 0 || (size_t)n >= sizeof(sun->sun_path)) {
                kap_err_set(err, "invalid listen address \"%s\": unix "
                            "socket path longer than %zu bytes under prefix "
                            "\"%s\"", addr, sizeof(sun->sun_path) - 1,
                            prefix);
                return KAP_ERROR;
            }
            *sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path)
                                 + (size_t)n + 1);
        }
        snprintf(canon, canonsz, "unix:%s", sun->sun_path);
    } else if (addr_is_wildcard(addr)) {
        snprintf(canon, canonsz, "*:%u",
                 (unsigned)ntohs(((struct sockaddr_in6 *)ss)->sin6_port));
    } else {
        kapd_sockaddr_text((struct sockaddr *)ss, *sslen, canon, canonsz);
    }
    return KAP_OK;
}

/* Do two declarations collide?  Unix paths collide across types. */
static int
canon_conflict(enum kap_listen_type ta, const char *ca,
               enum kap_listen_type tb, const char *cb)
{
    if (strcmp(ca, cb) != 0)
        return 0;
    return ta == tb || strncmp(ca, "unix:", 5) == 0;
}

static const char *
type_name(enum kap_listen_type t)
{
    return t == KAP_LISTEN_UDP ? "udp" : "tcp";
}

int
kap_listen_add(struct kap_gen *gen, const char *module,
               enum kap_listen_type type, const char *addr,
               const config_setting_t *where, struct kap_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char canon[CANON_MAX], other[CANON_MAX];
    struct kap_err perr;
    struct kapd_listen_decl *d, **tail;

    if (gen == NULL || module == NULL || module[0] == '\0'
        || (type != KAP_LISTEN_TCP && type != KAP_LISTEN_UDP)) {
        kap_err_at(err, where, "kap_listen_add: bad arguments");
        return KAP_ERROR;
    }
    memset(&perr, 0, sizeof(perr));
    if (listen_resolve(gen, addr, type, &ss, &sslen, canon, sizeof(canon),
                       &perr) != KAP_OK) {
        kap_err_at(err, where, "%s", perr.msg);
        return KAP_ERROR;
    }
    for (tail = &gen->decls; (d = *tail) != NULL; tail = &d->next) {
        memset(&perr, 0, sizeof(perr));
        if (listen_resolve(gen, d->addr, d->type, &ss, &sslen, other,
                           sizeof(other), &perr) != KAP_OK)
            continue;
        if (canon_conflict(type, canon, d->type, other)) {
            if (d->file && d->line)
                kap_err_at(err, where, "duplicate listen address \"%s\" "
                           "(%s), already used by module \"%s\" at %s:%d",
                           addr, type_name(type), d->module, d->file,
                           d->line);
            else
                kap_err_at(err, where, "duplicate listen address \"%s\" "
                           "(%s), already used by module \"%s\"", addr,
                           type_name(type), d->module);
            return KAP_ERROR;
        }
    }
    d = kap_palloc(gen->pool, sizeof(*d));
    if (d == NULL
        || (d->module = kap_pstrdup(gen->pool, module)) == NULL
        || (d->addr = kap_pstrdup(gen->pool, addr)) == NULL)
        goto nomem;
    d->type = type;
    if (where != NULL) {
        const char *f = config_setting_source_file(where);
        if (f != NULL && (d->file = kap_pstrdup(gen->pool, f)) == NULL)
            goto nomem;
        d->line = (int)config_setting_source_line(where);
    }
    d->next = NULL;
    *tail = d;
    return KAP_OK;

nomem:
    kap_err_at(err, where, "out of memory");
    return KAP_ERROR;
}

/* ---- unix datagram peers ------------------------------------------------ */

int
kapd_unix_peer_ok(const char *dir, const struct sockaddr *sa,
                  socklen_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
    const char *p, *end, *c;
    size_t n, dl;

    if (dir == NULL || sa == NULL || sa->sa_family != AF_UNIX
        || len <= (socklen_t)offsetof(struct sockaddr_un, sun_path))
        return 0;                       /* unnamed: nowhere to answer */
    n = (size_t)len - offsetof(struct sockaddr_un, sun_path);
    if (n > sizeof(sun->sun_path))
        n = sizeof(sun->sun_path);
    p = sun->sun_path;
    if (p[0] == '\0') {                 /* abstract: the name after the NUL */
        p++;
        n--;
    }
    end = memchr(p, '\0', n);
    if (end == NULL)
        end = p + n;
    dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if ((size_t)(end - p) <= dl + 1 || memcmp(p, dir, dl) != 0
        || (dl > 1 && p[dl] != '/'))
        return 0;
    p += dl + (dl > 1 || p[dl] == '/');
    /* each component: not empty, not "." or "..", no control bytes */
    while (p < end) {
        c = memchr(p, '/', (size_t)(end - p));
        if (c == NULL)
            c = end;
        if (c == p || (c - p == 1 && p[0] == '.')
            || (c - p == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        p = c < end ? c + 1 : end;
        if (c < end && p == end)
            return 0;                   /* a trailing '/' */
    }
    return 1;
}

/* Count (and now and then log) a datagram dropped for its peer. */
static void
dgram_foreign(struct kap_listen *ls, const struct sockaddr *sa,
              socklen_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
    char name[sizeof(sun->sun_path) + 1];
    size_t n = 0;

    ls->foreign++;
    if (kap_now() - ls->foreign_logged < 10.0 && ls->foreign_logged > 0)
        return;
    ls->foreign_logged = kap_now();
    if (len > (socklen_t)offsetof(struct sockaddr_un, sun_path)) {
        n = (size_t)len - offsetof(struct sockaddr_un, sun_path);
        if (n > sizeof(sun->sun_path))
            n = sizeof(sun->sun_path);
        memcpy(name, sun->sun_path, n);
        if (n > 0 && name[0] == '\0')
            name[0] = '@';
    }
    name[n] = '\0';
    KAP_LOG(KAP_LOG_WARN, ls->module, 0, "datagram on %s from a peer "
            "outside %s (\"%s\") dropped, not answered; %lu so far",
            ls->addr, ls->unix_dir, n > 0 ? name : "unnamed", ls->foreign);
}

/* ---- accessors ---------------------------------------------------------- */

const char *
kap_listen_addr(const struct kap_listen *ls)
{
    return ls ? ls->addr : NULL;
}

int
kap_listen_port(const struct kap_listen *ls)
{
    return ls ? ls->port : 0;
}

/* Send the queued replies; the queue is empty afterwards. */
static void
dgram_flush(void)
{
    struct kap_listen *ls = dgram_out.ls;
    unsigned i = 0;

    while (ls != NULL && ls->fd >= 0 && i < dgram_out.n) {
        int r = sendmmsg(ls->fd, dgram_out.msg + i, dgram_out.n - i,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r > 0) {
            i += (unsigned)r;
            continue;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK
                      || errno == ENOBUFS))
            break;              /* dropped, as the network might */
        i++;                    /* this one failed: skip it */
    }
    dgram_out.n = 0;
    dgram_out.used = 0;
    dgram_out.ls = NULL;
}

static void
dgram_prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    dgram_flush();
    ev_ref(loop);               /* started unreferenced */
    ev_prepare_stop(loop, w);
    dgram_out.prep_on = 0;
}

/* Drop ls from the queue before it closes (sending what is queued). */
static void
dgram_forget(struct kap_listen *ls)
{
    if (dgram_out.ls == ls)
        dgram_flush();
}

int
kap_dgram_send(struct kap_listen *ls, const struct sockaddr *peer,
               socklen_t peerlen, const void *buf, size_t len)
{
    struct sockaddr_in6 mapped;
    struct ev_loop *loop;
    ssize_t n;
    unsigned k;

    if (ls == NULL || ls->magic != KAPD_LISTEN_MAGIC || ls->fd < 0
        || peer == NULL || (buf == NULL && len > 0))
        return KAP_ERROR;
    if (ls->family == AF_UNIX
        && !kapd_unix_peer_ok(ls->unix_dir, peer, peerlen)) {
        dgram_foreign(ls, peer, peerlen);
        return KAP_ERROR;
    }
    /* An IPv4 peer on a dual-stack socket: send to its mapped form. */
    if (ls->family == AF_INET6 && peer->sa_family == AF_INET
        && peerlen >= sizeof(struct sockaddr_in)) {
        kap_addr_map_v4((const struct sockaddr_in *)peer, &mapped);
        peer = (const struct sockaddr *)&mapped;
        peerlen = sizeof(mapped);
    }
    loop = kap_loop();
    if (loop != NULL && ev_depth(loop) > 0 && len <= DGRAM_OUT_ONE
        && peerlen <= sizeof(struct sockaddr_storage)) {
        if (dgram_out.ls != ls || dgram_out.n == DGRAM_OUT_MAX
            || dgram_out.used + len > DGRAM_OUT_BYTES)
            dgram_flush();
        k = dgram_out.n++;
        dgram_out.ls = ls;
        memcpy(dgram_out.buf + dgram_out.used, buf, len);
        memcpy(&dgram_out.addr[k], peer, peerlen);
        dgram_out.iov[k].iov_base = dgram_out.buf + dgram_out.used;
        dgram_out.iov[k].iov_len = len;
        memset(&dgram_out.msg[k], 0, sizeof(dgram_out.msg[k]));
        dgram_out.msg[k].msg_hdr.msg_name = &dgram_out.addr[k];
        dgram_out.msg[k].msg_hdr.msg_namelen = peerlen;
        dgram_out.msg[k].msg_hdr.msg_iov = &dgram_out.iov[k];
        dgram_out.msg[k].msg_hdr.msg_iovlen = 1;
        dgram_out.used += len;
        if (!dgram_out.prep_on) {
            ev_prepare_init(&dgram_out.prep, dgram_prep_cb);
            ev_prepare_start(loop, &dgram_out.prep);
            ev_unref(loop);
            dgram_out.prep_on = 1;
        }
        return KAP_OK;
    }
    dgram_flush();              /* keep the order */
    for (;;) {
        n = sendto(ls->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, peer,
                   peerlen);
        if (n >= 0)
            return KAP_OK;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            return KAP_OK;      /* dropped, as the network might */
        return KAP_ERROR;
    }
}

/* ---- datagrams ------------------------------------------------------------ */

static void
dgram_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    static unsigned char buf[DGRAM_RBATCH][KAPD_DGRAM_MAX];
    static struct mmsghdr msg[DGRAM_RBATCH];
    static struct iovec iov[DGRAM_RBATCH];
    static struct sockaddr_storage peer[DGRAM_RBATCH];
    struct kap_listen *ls = w->data;
    struct kap_dgram d;
    char text[64];
    int total = 0, n, i;

    (void)loop;
    (void)revents;
    while (total < DGRAM_BATCH && ls->fd >= 0 && ls->active) {
        for (i = 0; i < DGRAM_RBATCH; i++) {
            iov[i].iov_base = buf[i];
            iov[i].iov_len = sizeof(buf[i]);
            memset(&msg[i], 0, sizeof(msg[i]));
            msg[i].msg_hdr.msg_name = &peer[i];
            msg[i].msg_hdr.msg_namelen = sizeof(peer[i]);
            msg[i].msg_hdr.msg_iov = &iov[i];
            msg[i].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(ls->fd, msg, DGRAM_RBATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED) {
                total++;
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                KAP_LOG(KAP_LOG_ERR, ls->module, 0,
                        "recvmmsg() on %s failed: %s", ls->addr,
                        strerror(errno));
            break;
        }
        for (i = 0; i < n && ls->fd >= 0 && ls->active; i++) {
            memset(&d, 0, sizeof(d));
            memcpy(&d.peer, &peer[i], sizeof(d.peer));
            d.peerlen = msg[i].msg_hdr.msg_namelen;
            if (!kapd_clients_ok(ls->clients, (struct sockaddr *)&d.peer)) {
                kapd_clients_refused(ls, (struct sockaddr *)&d.peer,
                                     d.peerlen);
                continue;
            }
            if (ls->family == AF_UNIX
                && !kapd_unix_peer_ok(ls->unix_dir,
                                      (struct sockaddr *)&d.peer, d.peerlen)) {
                dgram_foreign(ls, (struct sockaddr *)&d.peer, d.peerlen);
                continue;
            }
            kapd_sockaddr_text((struct sockaddr *)&d.peer, d.peerlen, text,
                               sizeof(text));
            d.data = buf[i];
            d.len = msg[i].msg_len;
            d.peer_text = text;
            if (ls->mod && ls->mod->listener && ls->mod->listener->datagram)
                ls->mod->listener->datagram(ls, ls->conf, &d);
        }
        total += n;
        if (n < DGRAM_RBATCH)
            break;              /* drained */
    }
    dgram_flush();              /* the replies of this batch */
}

/* ---- binding --------------------------------------------------------------- */

static void
listen_free(void *data)
{
    struct kap_listen *ls = data;

    if (ls == NULL)
        return;
    if (dgram_out.ls == ls) {   /* closed already: nothing to send to */
        dgram_out.n = 0;
        dgram_out.used = 0;
        dgram_out.ls = NULL;
    }
    ls->magic = 0;
    free(ls->addr);
    free(ls->canon);
    free(ls->module);
    free(ls->unix_path);
    free(ls->unix_dir);
    free(ls);
}

/* Stop watching, close the socket, remove our unix socket file. */
static void
listen_shut(struct kap_listen *ls)
{
    struct stat st;
    struct ev_loop *loop = kap_loop();

    ls->active = 0;
    dgram_forget(ls);
    if (loop) {
        ev_io_stop(loop, &ls->io);
        ev_timer_stop(loop, &ls->retry);
    }
    if (ls->fd >= 0) {
        close(ls->fd);
        ls->fd = -1;
    }
    if (ls->unix_path && lstat(ls->unix_path, &st) == 0
        && S_ISSOCK(st.st_mode) && st.st_dev == ls->unix_dev
        && st.st_ino == ls->unix_ino)
        unlink(ls->unix_path);
}

static void err_decl(struct kap_err *err, const struct kapd_listen_decl *d,
                     const char *fmt, ...) KAP_PRINTF(3, 4);
static void
err_decl(struct kap_err *err, const struct kapd_listen_decl *d,
         const char *fmt, ...)
{
    char msg[sizeof(err->msg)];
    va_list ap;
    int was = err ? err->set : 1;
    size_t n;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    kap_err_set(err, "%s", msg);
    if (!was && err != NULL) {
        if (d->file) {
            n = strlen(d->file);
            if (n >= sizeof(err->file))
                n = sizeof(err->file) - 1;
            memcpy(err->file, d->file, n);
            err->file[n] = '\0';
        }
        err->line = d->line;
    }
}

/* Create, configure and bind one socket.  Returns fd or -1 (errno set). */
static int
bind_one(struct sockaddr_storage *ss, socklen_t sslen, int stype,
         int dual, mode_t mode, const char **what)
{
    int fd, on = 1, off = 0, e, r;
    mode_t old = 0;

    *what = "socket()";
    fd = socket(ss->ss_family, stype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (ss->ss_family != AF_UNIX) {
        *what = "setsockopt(SO_REUSEADDR)";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0)
            goto fail;
    }
    if (ss->ss_family == AF_INET6) {
        *what = "setsockopt(IPV6_V6ONLY)";
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &off : &on,
                       sizeof(int)) < 0)
            goto fail;
    }
    if (stype == SOCK_STREAM && ss->ss_family != AF_UNIX) {
        /* accepted sockets inherit it: no setsockopt per connection */
        *what = "setsockopt(TCP_NODELAY)";
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0)
            goto fail;
    }
    *what = "bind()";
    /*
     * A unix socket file gets its mode from the umask at bind(): no
     * chmod(2) by name afterwards, which would follow whatever someone
     * put in the socket's place in the meantime.
     */
    if (ss->ss_family == AF_UNIX)
        old = umask(~mode & 0777);
    r = bind(fd, (struct sockaddr *)ss, sslen);
    e = errno;
    if (ss->ss_family == AF_UNIX)
        umask(old);
    errno = e;
    if (r < 0)
        goto fail;
    return fd;
fail:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

static struct kap_listen *
listen_open(struct kap_gen *gen,
            const struct kapd_listen_decl *d,
            struct sockaddr_storage *ss,
            socklen_t sslen, const char *canon,
            struct kap_err *err)
{
    struct kap_listen *ls;
    struct stat st;
    const char *what = "socket()";
    int stype = d->type == KAP_LISTEN_UDP ? SOCK_DGRAM : SOCK_STREAM;
    int dual = addr_is_wildcard(d->addr);
    int fd, e;
    mode_t mode;

    ls = calloc(1, sizeof(*ls));
    if (ls == NULL || (ls->addr = strdup(d->addr)) == NULL
        || (ls->canon = strdup(canon)) == NULL
        || (ls->module = strdup(d->module)) == NULL) {
        listen_free(ls);
        err_decl(err, d, "out of memory");
        return NULL;
    }
    ls->magic = KAPD_LISTEN_MAGIC;
    ls->type = d->type;
    ls->fd = -1;

    if (ss->ss_family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        const char *slash = strrchr(sun->sun_path, '/');
        ls->unix_path = strdup(sun->sun_path);
        ls->unix_dir = slash == NULL ? strdup(".")
                     : strndup(sun->sun_path, slash == sun->sun_path ? 1
                               : (size_t)(slash - sun->sun_path));
        if (ls->unix_path == NULL || ls->unix_dir == NULL) {
            listen_free(ls);
            err_decl(err, d, "out of memory");
            return NULL;
        }
        if (lstat(sun->sun_path, &st) == 0) {
            if (!S_ISSOCK(st.st_mode)) {
                err_decl(err, d, "cannot listen on \"%s\": \"%s\" exists and "
                         "is not a socket", d->addr, sun->sun_path);
                listen_free(ls);
                return NULL;
            }
            unlink(sun->sun_path);          /* a stale socket */
        }
    }

    mode = gen->core.unix_mode > 0 ? (mode_t)(gen->core.unix_mode & 07777)
                                   : 0666;
    fd = bind_one(ss, sslen, stype, dual, mode, &what);
    if (fd < 0 && dual && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
        /* No IPv6 here: fall back to every IPv4 address. */
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        int port = ntohs(((struct sockaddr_in6 *)ss)->sin6_port);
        memset(ss, 0, sizeof(*ss));
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
        sslen = sizeof(*s4);
        fd = bind_one(ss, sslen, stype, 0, mode, &what);
    }
    if (fd < 0) {
        e = errno;
        err_decl(err, d, "%s to %s (%s, module \"%s\") failed: %s", what,
                 d->addr, type_name(d->type), d->module, strerror(e));
        listen_free(ls);
        return NULL;
    }
    ls->fd = fd;
    ls->family = ss->ss_family;

    if (ss->ss_family == AF_UNIX) {
        const char *why = NULL;
        if (lstat(ls->unix_path, &st) < 0)
            why = strerror(errno);
        else if (!S_ISSOCK(st.st_mode))
            why = "not a socket";
        if (why != NULL) {
            err_decl(err, d, "unix socket \"%s\" is gone after bind(): %s",
                     ls->unix_path, why);
            listen_shut(ls);
            listen_free(ls);
            return NULL;
        }
        ls->unix_dev = st.st_dev;
        ls->unix_ino = st.st_ino;
    } else {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
            ls->port = ntohs(bound.ss_family == AF_INET
                             ? ((struct sockaddr_in *)&bound)->sin_port
                             : ((struct sockaddr_in6 *)&bound)->sin6_port);
    }

    if (d->type == KAP_LISTEN_TCP && listen(fd, KAPD_LISTEN_BACKLOG) < 0) {
        e = errno;
        err_decl(err, d, "listen() on \"%s\" failed: %s", d->addr,
                 strerror(e));
        listen_shut(ls);
        listen_free(ls);
        return NULL;
    }

    if (d->type == KAP_LISTEN_TCP) {
        ev_io_init(&ls->io, kapd_conn_accept_cb, fd, EV_READ);
    } else {
        ev_io_init(&ls->io, dgram_read_cb, fd, EV_READ);
    }
    ls->io.data = ls;
    ev_timer_init(&ls->retry, kapd_conn_retry_cb, 1.0, 0.0);
    ls->retry.data = ls;
    return ls;
}

/* ---- activation ------------------------------------------------------------ */

/*
 * The client allowlist of declaration d (canonical address canon): the
 * kapd.listener_clients entry naming the same address, else kapd.clients;
 * NULL for unix listeners.  Marks the entry used.
 */
static int
listen_acl(struct kap_gen *gen, const struct kapd_listen_decl *d,
           const char *canon, const struct kapd_clients **out,
           struct kap_err *err)
{
    struct kapd_core_conf *cc = &gen->core;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char rc[CANON_MAX];
    struct kap_err perr;
    size_t i;

    *out = NULL;
    for (i = 0; i < cc->nclient_rules; i++) {
        struct kapd_clients_rule *r = &cc->client_rules[i];
        memset(&perr, 0, sizeof(perr));
        if (listen_resolve(gen, r->listen, d->type, &ss, &sslen, rc,
                           sizeof(rc), &perr) != KAP_OK) {
            kap_err_set(err, "listener_clients: %s", perr.msg);
            kapd_conf_err_pos(err, r->acl.file, r->acl.line);
            return KAP_ERROR;
        }
        if (strcmp(rc, canon) != 0)
            continue;
        if (ss.ss_family == AF_UNIX) {
            kap_err_set(err, "listener_clients: \"%s\" is a unix listener "
                        "(its file mode guards it, not a client list)",
                        r->listen);
            kapd_conf_err_pos(err, r->acl.file, r->acl.line);
            return KAP_ERROR;
        }
        r->used = 1;
        *out = &r->acl;
        return KAP_OK;
    }
    if (strncmp(canon, "unix:", 5) != 0)
        *out = cc->clients;
    return KAP_OK;
}

/* A listener_clients entry that names no listener is a typo: refuse it. */
static int
listen_acl_unused(struct kap_gen *gen, struct kap_err *err)
{
    size_t i;

    for (i = 0; i < gen->core.nclient_rules; i++) {
        const struct kapd_clients_rule *r = &gen->core.client_rules[i];
        if (r->used)
            continue;
        kap_err_set(err, "listener_clients: \"%s\" is not the address of "
                    "any listener", r->listen);
        kapd_conf_err_pos(err, r->acl.file, r->acl.line);
        return KAP_ERROR;
    }
    return KAP_OK;
}

void
kapd_listen_dump(struct kap_gen *gen)
{
    const struct kapd_listen_decl *d;
    const struct kapd_clients *acl;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char canon[CANON_MAX];
    struct kap_err perr;

    printf("# listeners and the clients they accept:\n");
    for (d = gen->decls; d; d = d->next) {
        memset(&perr, 0, sizeof(perr));
        printf("#   %s %s %s:", d->module, type_name(d->type), d->addr);
        if (listen_resolve(gen, d->addr, d->type, &ss, &sslen, canon,
                           sizeof(canon), &perr) != KAP_OK
            || listen_acl(gen, d, canon, &acl, &perr) != KAP_OK)
            printf(" (%s)\n", perr.msg);
        else if (ss.ss_family == AF_UNIX)
            printf(" its file mode\n");
        else {
            kapd_clients_print(acl);
            printf("\n");
        }
    }
    if (gen->decls == NULL)
        printf("#   (none)\n");
}

int
kapd_listen_activate(struct kap_gen *next, struct kap_gen *prev,
                     struct kap_err *err)
{
    struct kapd_listen_decl *d;
    struct kapd_gen_module **gms = NULL;
    struct kap_listen **chosen = NULL, **fresh = NULL, **lsv = NULL;
    const struct kapd_clients **acls = NULL;
    struct kap_listen *ls, **pp;
    struct sockaddr_storage ss;
    socklen_t sslen;
    char canon[CANON_MAX];
    struct ev_loop *loop = kap_loop();
    size_t n = 0, i;
    struct kap_err perr;

    (void)prev;     /* every open listener belongs to prev (or older) */
    if (next == NULL) {
        kap_err_set(err, "kapd_listen_activate: no generation");
        return KAP_ERROR;
    }
    for (d = next->decls; d; d = d->next)
        n++;
    if (n > 0) {
        gms = calloc(n, sizeof(*gms));
        chosen = calloc(n, sizeof(*chosen));
        fresh = calloc(n, sizeof(*fresh));
        acls = calloc(n, sizeof(*acls));
        lsv = kap_palloc(next->pool, n * sizeof(*lsv));
        if (gms == NULL || chosen == NULL || fresh == NULL || lsv == NULL
            || acls == NULL) {
            kap_err_set(err, "out of memory");
            goto fail;
        }
    }
    for (ls = listeners; ls; ls = ls->next)
        ls->keep = 0;

    /* 1. match or bind every declaration; nothing running is changed */
    for (i = 0, d = next->decls; d; d = d->next, i++) {
        gms[i] = kapd_gen_find_module(next, d->module);
        if (gms[i] == NULL || gms[i]->mod == NULL) {
            err_decl(err, d, "listen address \"%s\" declared by module "
                     "\"%s\", which is not loaded", d->addr, d->module);
            goto fail;
        }
        if (gms[i]->mod->listener == NULL
            || (d->type == KAP_LISTEN_TCP && !gms[i]->mod->listener->accept)
            || (d->type == KAP_LISTEN_UDP
                && !gms[i]->mod->listener->datagram)) {
            err_decl(err, d, "module \"%s\" declares a %s listener \"%s\" "
                     "but has no %s callback", d->module, type_name(d->type),
                     d->addr, d->type == KAP_LISTEN_TCP ? "accept"
                                                        : "datagram");
            goto fail;
        }
        memset(&perr, 0, sizeof(perr));
        if (listen_resolve(next, d->addr, d->type, &ss, &sslen, canon,
                           sizeof(canon), &perr) != KAP_OK) {
            err_decl(err, d, "%s", perr.msg);
            goto fail;
        }
        if (listen_acl(next, d, canon, &acls[i], err) != KAP_OK)
            goto fail;
        for (ls = listeners; ls; ls = ls->next)
            if (!ls->keep && ls->fd >= 0 && ls->type == d->type
                && strcmp(ls->canon, canon) == 0)
                break;
        if (ls) {
            ls->keep = 1;
            chosen[i] = ls;
            continue;
        }
        fresh[i] = listen_open(next, d, &ss, sslen, canon, err);
        if (fresh[i] == NULL)
            goto fail;
        chosen[i] = fresh[i];
    }

    if (listen_acl_unused(next, err) != KAP_OK)
        goto fail;

    /* 2. commit: nothing below can fail */
    for (i = 0, d = next->decls; d; d = d->next, i++) {
        ls = chosen[i];
        if (strcmp(ls->module, d->module) != 0) {
            char *m = strdup(d->module);
            if (m) {
                free(ls->module);
                ls->module = m;
            }
        }
        ls->gen = next;
        ls->mod = gms[i]->mod;
        ls->conf = gms[i]->conf;
        ls->clients = acls[i];
        lsv[i] = ls;
        if (fresh[i]) {
            ls->keep = 1;
            ls->next = listeners;
            listeners = ls;
            if (!kap_shutting_down()) {
                ls->active = 1;
                if (loop)
                    ev_io_start(loop, &ls->io);
            }
            KAP_LOG(KAP_LOG_INFO, ls->module, 0, "listening on %s (%s)",
                    ls->addr, type_name(ls->type));
        }
    }
    /* listeners nobody declared any more: stop and close */
    for (pp = &listeners; (ls = *pp) != NULL;) {
        if (ls->keep) {
            pp = &ls->next;
            continue;
        }
        *pp = ls->next;
        KAP_LOG(KAP_LOG_INFO, ls->module, 0, "no longer listening on %s (%s)",
                ls->addr, type_name(ls->type));
        listen_shut(ls);
        /* kap_dgram_send() stays safe while its generation lives */
        if (ls->gen == NULL
            || kap_pool_cleanup_add(ls->gen->pool, listen_free, ls) != KAP_OK)
            listen_free(ls);
    }
    next->listens = lsv;
    next->nlistens = n;
    free(gms);
    free(chosen);
    free(fresh);
    free(acls);
    return KAP_OK;

fail:
    for (i = 0; i < n && fresh; i++) {
        if (fresh[i]) {
            listen_shut(fresh[i]);
            listen_free(fresh[i]);
        }
    }
    free(gms);
    free(chosen);
    free(fresh);
    free(acls);
    return KAP_ERROR;
}

void
kapd_listen_stop_all(void)
{
    struct kap_listen *ls;
    struct ev_loop *loop = kap_loop();

    for (ls = listeners; ls; ls = ls->next) {
        if (ls->mod != NULL && (ls->mod->flags & KAP_MOD_DRAIN_LISTEN))
            continue;           /* health: answers "draining" meanwhile */
        ls->active = 0;
        if (loop) {
            ev_io_stop(loop, &ls->io);
            ev_timer_stop(loop, &ls->retry);
        }
    }
}

void
kapd_listen_close_all(void)
{
    struct kap_listen *ls;

    while ((ls = listeners) != NULL) {
        listeners = ls->next;
        listen_shut(ls);
        listen_free(ls);
    }
}
