/*
 * kapd_resolver_fwd.c -- the resolver's forward fast path for raw
 * questions (the dns module's kap_resolve_raw()).
 */
#include "kapd.h"
#include "kapd_resolver_int.h"

#include <kapd/kap_dnswire.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* -- fast path ------------------------------------------------------------ */

/*
 * In forward mode (upstream set, or resolv.conf, and no DNSSEC), a raw
 * question of the dns module is sent straight to the first upstream over
 * one of FWD_SOCKS connected UDP sockets, with a random ID, and the reply
 * is matched on socket, ID and question (case-insensitively).  That costs
 * one send and one receive, where libunbound opens, binds, connects and
 * closes a socket per query and copies the answer through its caches;
 * the dns module has its own answer cache in front.  Whatever the fast
 * path does not handle goes to libunbound, which has the retries, the
 * other upstreams and TCP: a truncated reply, an rcode other than
 * NOERROR/NXDOMAIN, no reply within FWD_TRY seconds, a name with escapes,
 * PTR questions and the special-use names libunbound answers itself
 * (localhost, onion, invalid, arpa).  Replies from anything but the
 * upstream never reach the connected sockets (the kernel drops them).
 */

static void resolver_fwd_io_cb(struct ev_loop *loop, ev_io *w, int revents);

/* "addr" or "addr@port" into ss; 0, or -1 if it is no numeric address. */
static int
resolver_fwd_addr(const char *s, struct sockaddr_storage *ss,
                  socklen_t *sslen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *at = strchr(s, '@');
    size_t hlen = at != NULL ? (size_t)(at - s) : strlen(s);
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    long port = 53;

    memset(ss, 0, sizeof(*ss));
    if (hlen == 0 || hlen >= sizeof(host))
        return -1;
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (at != NULL) {
        char *end;
        errno = 0;
        port = strtol(at + 1, &end, 10);
        if (errno != 0 || end == at + 1 || *end != '\0' || port < 1
            || port > 65535)
            return -1;
    }
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *sslen = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *sslen = sizeof(*sin6);
        return 0;
    }
    return -1;
}

/* The first "nameserver" of a resolv.conf into out; 0 or -1. */
static int
resolver_fwd_resolvconf(const char *path, char *out, size_t len)
{
    char line[512];
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p = line + strspn(line, " \t");
        size_t n;
        if (strncmp(p, "nameserver", 10) != 0
            || (p[10] != ' ' && p[10] != '\t'))
            continue;
        p += 10;
        p += strspn(p, " \t");
        n = strcspn(p, " \t\r\n#;");
        if (n == 0 || n >= len)
            break;
        memcpy(out, p, n);
        out[n] = '\0';
        fclose(f);
        return 0;
    }
    fclose(f);
    return -1;
}

void
kapd_resolver_fwd_open(struct resolver_conf *c)
{
    char ns[INET6_ADDRSTRLEN + 8];
    const char *up = NULL;
    size_t i;

    for (i = 0; i < FWD_SOCKS; i++)
        c->fwd[i].fd = -1;
    c->fwd_init = 1;
    if (c->recursion || c->ta_explicit)
        return;
    if (c->nupstream > 0)
        up = c->upstream[0];
    else if (c->resolv_conf != NULL
             && resolver_fwd_resolvconf(c->resolv_conf, ns, sizeof(ns)) == 0)
        up = ns;
    if (up == NULL || resolver_fwd_addr(up, &c->fwd_addr, &c->fwd_addrlen)
                      != 0)
        return;
    for (i = 0; i < FWD_SOCKS; i++) {
        int fd = socket(c->fwd_addr.ss_family,
                        SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&c->fwd_addr,
                              c->fwd_addrlen) != 0) {
            KAP_LOG(KAP_LOG_WARN, RESOLVER_NAME, 0, "fast path to %s off: "
                    "%s", up, strerror(errno));
            if (fd >= 0)
                close(fd);
            kapd_resolver_fwd_close(c);
            return;
        }
        c->fwd[i].fd = fd;
        c->fwd[i].rc = c;
        ev_io_init(&c->fwd[i].io, resolver_fwd_io_cb, fd, EV_READ);
        c->fwd[i].io.data = &c->fwd[i];
        ev_io_start(kap_loop(), &c->fwd[i].io);
    }
    c->fwd_on = 1;
}

void
kapd_resolver_fwd_close(struct resolver_conf *c)
{
    size_t i;

    c->fwd_on = 0;
    for (i = 0; c->fwd_init && i < FWD_SOCKS; i++) {
        if (c->fwd[i].fd < 0)
            continue;
        ev_io_stop(kap_loop(), &c->fwd[i].io);
        close(c->fwd[i].fd);
        c->fwd[i].fd = -1;
    }
}

static unsigned
resolver_fwd_bucket(unsigned sock, uint16_t id)
{
    return ((unsigned)id ^ (sock * 2654435761u >> 16)) & (FWD_BUCKETS - 1);
}

static struct kap_resolve *
resolver_fwd_find(struct resolver_conf *c,
                  unsigned sock, uint16_t id)
{
    struct kap_resolve *q = c->fwd_tab[resolver_fwd_bucket(sock, id)];

    while (q != NULL && (q->fwd_sock != sock || q->fwd_id != id))
        q = q->fwd_next;
    return q;
}

void
kapd_resolver_fwd_remove(struct kap_resolve *q)
{
    struct kap_resolve **pp;

    if (!q->fwd || q->rc == NULL)
        return;
    ev_timer_stop(kap_loop(), &q->fwd_timer);
    pp = &q->rc->fwd_tab[resolver_fwd_bucket(q->fwd_sock, q->fwd_id)];
    while (*pp != NULL && *pp != q)
        pp = &(*pp)->fwd_next;
    if (*pp == q)
        *pp = q->fwd_next;
    q->fwd_next = NULL;
    q->fwd = 0;
}

/* 1 when name ends in the label sequence suffix (case-insensitively). */
static int
resolver_fwd_under(const char *name, size_t len,
                   const char *suffix)
{
    size_t sl = strlen(suffix);

    if (len < sl || strncasecmp(name + len - sl, suffix, sl) != 0)
        return 0;
    return len == sl || name[len - sl - 1] == '.';
}

static void resolver_fwd_timer_cb(struct ev_loop *loop, ev_timer *w,
                                  int revents);

/* A random query ID; arc4random_buf() refills 256 at a time (it is a
 * getrandom(2) call each time on this libc). */
static uint16_t
resolver_fwd_random_id(void)
{
    static uint16_t ids[256];
    static size_t left;

    if (left == 0) {
        arc4random_buf(ids, sizeof(ids));
        left = sizeof(ids) / sizeof(ids[0]);
    }
    return ids[--left];
}

/* Ask q's question over the fast path: KAP_OK, or KAP_DECLINED. */
int
kapd_resolver_fwd_start(struct kap_resolve *q, const char *name,
                        int rrtype, int rrclass)
{
    struct resolver_conf *c = q->rc;
    unsigned char pkt[KAP_DNSWIRE_HDR_LEN + KAP_DNSWIRE_NAME_MAX + 4
                      + KAP_DNSWIRE_OPT_LEN];
    struct kap_dnswire_hdr h = { 0, KAP_DNSWIRE_F_RD, 1, 0, 0, 1 };
    size_t len = strlen(name), n, b;
    unsigned sock, tries;
    uint16_t id = 0;

    if (!c->fwd_on || rrclass != KAP_DNSWIRE_C_IN
        || rrtype == KAP_DNSWIRE_T_PTR
        || (c->fwd_paused > 0.0 && kap_now() < c->fwd_paused))
        return KAP_DECLINED;
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len >= sizeof(q->name) || memchr(name, '\\', len)
        || resolver_fwd_under(name, len, "localhost")
        || resolver_fwd_under(name, len, "onion")
        || resolver_fwd_under(name, len, "invalid")
        || resolver_fwd_under(name, len, "arpa"))
        return KAP_DECLINED;
    n = kap_dnswire_name_from_text(name, len, q->qwire, sizeof(q->qwire));
    if (n == 0)
        return KAP_DECLINED;
    q->qwire_len = n;
    sock = c->fwd_rr++ % FWD_SOCKS;
    for (tries = 0; tries < 8; tries++) {
        id = resolver_fwd_random_id();
        if (resolver_fwd_find(c, sock, id) == NULL)
            break;
    }
    if (tries == 8)
        return KAP_DECLINED;

    h.id = id;                           /* RD, one question, one OPT */
    kap_dnswire_hdr_write(pkt, &h);
    b = kap_dnswire_question_write(pkt, sizeof(pkt), KAP_DNSWIRE_HDR_LEN,
                                   q->qwire, n, (unsigned)rrtype,
                                   (unsigned)rrclass);
    b = kap_dnswire_opt_write(pkt, sizeof(pkt), b, FWD_EDNS, 0, 0);
    if (b == 0 || send(c->fwd[sock].fd, pkt, b, MSG_DONTWAIT | MSG_NOSIGNAL)
                  != (ssize_t)b)
        return KAP_DECLINED;

    memcpy(q->name, name, len);
    q->name[len] = '\0';
    q->rrtype = rrtype;
    q->rrclass = rrclass;
    q->fwd_sock = sock;
    q->fwd_id = id;
    q->fwd = 1;
    b = resolver_fwd_bucket(sock, id);
    q->fwd_next = c->fwd_tab[b];
    c->fwd_tab[b] = q;
    ev_timer_init(&q->fwd_timer, resolver_fwd_timer_cb, FWD_TRY, 0.0);
    q->fwd_timer.data = q;
    ev_timer_start(kap_loop(), &q->fwd_timer);
    return KAP_OK;
}

/* Deliver a raw failure for q and free it. */
static void
resolver_raw_fail(struct kap_resolve *q, const char *why)
{
    kap_resolve_raw_fn cb = q->raw_cb;
    void *data = q->data;
    struct kap_gen *gen = kapd_resolver_query_release(q);

    cb(data, KAP_ERROR, NULL, 0, 2, 0, 0, why);
    kapd_resolver_gen_unref(gen);
}

/* The fast path gives up on q: libunbound asks again. */
static void
resolver_fwd_handover(struct kap_resolve *q)
{
    kapd_resolver_fwd_remove(q);
    q->rc->fwd_handover++;
    if (kapd_resolver_sub_start(q, 0, q->name, q->rrtype, q->rrclass) != KAP_OK) {
        resolver_raw_fail(q, "resolver unavailable");
        return;
    }
    if (q->has_deferred) {               /* libunbound had it at once */
        ev_timer_stop(kap_loop(), &q->timer);
        ev_timer_set(&q->timer, 0.0, 0.0);
        ev_timer_start(kap_loop(), &q->timer);
    }
}

/* No reply in FWD_TRY: libunbound takes over; a silent upstream pauses
 * the fast path, so that not every query waits FWD_TRY first. */
static void
resolver_fwd_timer_cb(struct ev_loop *loop, ev_timer *w,
                      int revents)
{
    struct kap_resolve *q = w->data;
    struct resolver_conf *c = q->rc;

    (void)loop;
    (void)revents;
    if (++c->fwd_misses >= FWD_MISSES) {
        c->fwd_misses = 0;
        c->fwd_paused = kap_now() + FWD_PAUSE;
        KAP_LOG(KAP_LOG_INFO, RESOLVER_NAME, 0, "upstream does not answer "
                "the fast path: libunbound only for %.0f s", FWD_PAUSE);
    }
    resolver_fwd_handover(q);
}

/* One datagram from the upstream on socket sock. */
static void
resolver_fwd_reply(struct resolver_conf *c, unsigned sock,
                   unsigned char *p, size_t n)
{
    struct kap_resolve *q;
    struct kap_dnswire_hdr h;
    kap_resolve_raw_fn cb;
    void *data;
    struct kap_gen *gen;
    size_t off = KAP_DNSWIRE_HDR_LEN;
    int rcode;

    if (kap_dnswire_hdr_read(p, n, &h) != 0
        || !(h.flags & KAP_DNSWIRE_F_QR) || KAP_DNSWIRE_OPCODE(h.flags) != 0
        || h.qdcount != 1)
        return;                          /* not a reply to a query of ours */
    q = resolver_fwd_find(c, sock, h.id);
    if (q == NULL)
        return;
    /* the question must be ours, uncompressed, in any case */
    if (n < off + q->qwire_len + 4
        || !kap_dnswire_name_eq(p + off, q->qwire, q->qwire_len))
        return;
    off += q->qwire_len;
    if (KAP_DNSWIRE_GET16(p + off) != q->rrtype
        || KAP_DNSWIRE_GET16(p + off + 2) != q->rrclass)
        return;
    rcode = (int)KAP_DNSWIRE_RCODE(h.flags);
    if ((h.flags & KAP_DNSWIRE_F_TC) || (rcode != 0 && rcode != 3)) {
        resolver_fwd_handover(q);        /* TC, SERVFAIL, REFUSED, ... */
        return;
    }
    kapd_resolver_fwd_remove(q);
    c->fwd_fast++;
    c->fwd_misses = 0;
    p[0] = p[1] = 0;
    cb = q->raw_cb;
    data = q->data;
    gen = kapd_resolver_query_release(q);
    cb(data, KAP_OK, p, n, rcode, 0, 0, NULL);
    kapd_resolver_gen_unref(gen);
}

static void
resolver_fwd_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    static unsigned char buf[FWD_RBATCH][65536];
    static struct mmsghdr msg[FWD_RBATCH];
    static struct iovec iov[FWD_RBATCH];
    struct fwd_sock *fs = w->data;
    struct resolver_conf *c = fs->rc;
    struct kap_gen *gen = c->gen;
    int i;

    (void)loop;
    (void)revents;
    kap_gen_ref(gen);                    /* callbacks may drop the last */
    for (i = 0; i < FWD_BATCH && c->fwd_on; ) {
        int n, k;
        for (k = 0; k < FWD_RBATCH; k++) {
            iov[k].iov_base = buf[k];
            iov[k].iov_len = sizeof(buf[k]);
            memset(&msg[k], 0, sizeof(msg[k]));
            msg[k].msg_hdr.msg_iov = &iov[k];
            msg[k].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(fs->fd, msg, FWD_RBATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == ECONNREFUSED)   /* ICMP: the upstream is down */
                c->fwd_paused = kap_now() + FWD_PAUSE;
            if (errno == EINTR || errno == ECONNREFUSED) {
                i++;
                continue;
            }
            break;
        }
        for (k = 0; k < n && c->fwd_on; k++)
            resolver_fwd_reply(c, (unsigned)(fs - c->fwd), buf[k],
                               msg[k].msg_len);
        i += n;
        if (n < FWD_RBATCH)
            break;                       /* drained */
    }
    kap_gen_unref(gen);
}

