/*
 * kap_http_connect_upstream.c -- the way to the origin: resolve, ask every
 * address (KAP_REQ_ADDR), dial the allowed ones (happy eyeballs), and
 * the per-destination idle pool of kept-alive upstream connections.
 * Part of the http_connect module (kap_http_connect.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kap_http_connect.h"

void
kap_http_connect_dial_free(struct hc *hc)
{
    struct hc_dial *dl = hc->dial;

    if (dl == NULL)
        return;
    ev_timer_stop(kap_loop(), &dl->eyeball);
    for (size_t i = 0; i < dl->natt; i++)
        if (dl->att[i].fd >= 0) {
            kap_http_connect_io_stop(&dl->att[i].io);
            close(dl->att[i].fd);
            dl->att[i].fd = -1;
        }
    if (dl->cap == HC_DIAL_SMALL)
        kap_http_connect_cache_put(HC_CACHE_DIAL, dl);
    else
        free(dl);
    hc->dial = NULL;
}

/* ---- upstream idle pool --------------------------------------------------- */

struct pool_ent {
    int                     fd;
    char                    key[KAP_HTTP_HOST_MAX + 8];
    union hc_sa             sa;
    double                  expires;
    ev_io                   io;
    ev_timer                t;
    struct pool_ent        *next, *prev;
};

static struct pool_ent *pool_head;
static unsigned         pool_n;

static void
pool_del(struct pool_ent *e, int close_fd)
{
    kap_http_connect_io_stop(&e->io);
    ev_timer_stop(kap_loop(), &e->t);
    if (e->prev) e->prev->next = e->next; else pool_head = e->next;
    if (e->next) e->next->prev = e->prev;
    if (close_fd)
        close(e->fd);
    pool_n--;
    free(e);
}

/* idle upstream connections held now */
unsigned
kap_http_connect_pool_count(void)
{
    return pool_n;
}

/* at shutdown: close every idle upstream connection */
void
kap_http_connect_pool_drain(void)
{
    while (pool_head)
        pool_del(pool_head, 1);
}

static void
pool_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    /* an idle upstream connection became readable: closed or junk */
    pool_del(w->data, 1);
}

static void
pool_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    pool_del(w->data, 1);
}

static void
pool_key(char *key, size_t n, const char *host, unsigned port)
{
    snprintf(key, n, "%s:%u", host, port);
}

/*
 * Whether an idle upstream connection has anything to read (bytes past
 * the last response, or EOF/error): such a connection must not carry the
 * next request, or those bytes would answer it (response desync).
 */
static int
upstream_unclean(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

void
kap_http_connect_pool_put(struct hc *hc, int fd)
{
    struct pool_ent *e;
    unsigned same = 0;
    char key[KAP_HTTP_HOST_MAX + 8];

    pool_key(key, sizeof(key), hc->subject, hc->port);
    for (e = pool_head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            same++;
    if (same >= HC_POOL_PER_DEST || pool_n >= HC_POOL_MAX ||
        upstream_unclean(fd) || (e = calloc(1, sizeof(*e))) == NULL) {
        close(fd);
        return;
    }
    e->fd = fd;
    memcpy(e->key, key, sizeof(key));
    e->sa = hc->usa;
    ev_io_init(&e->io, pool_io_cb, fd, EV_READ);
    e->io.data = e;
    ev_timer_init(&e->t, pool_timer_cb, hc->conf->upstream_keepalive, 0);
    e->t.data = e;
    ev_io_start(kap_loop(), &e->io);
    ev_timer_start(kap_loop(), &e->t);
    e->next = pool_head;
    if (pool_head)
        pool_head->prev = e;
    pool_head = e;
    pool_n++;
}

/*
 * A keep-alive client usually asks the same origin again: its upstream
 * connection stays with it between requests (no pool walk, no watcher
 * switch, no allocation), and is checked exactly as a pooled one when the
 * next request wants it.  Any other next request closes it.
 */
int
kap_http_connect_held_put(struct hc *hc)
{
    int n;

    if (!hc->client_ka || kap_shutting_down() || hc->kfd >= 0)
        return 0;
    n = snprintf(hc->kkey, sizeof(hc->kkey), "%s:%u", hc->subject,
                 (unsigned)hc->port);
    if (n < 0 || (size_t)n >= sizeof(hc->kkey)) {
        hc->kkey[0] = '\0';
        return 0;
    }
    hc->kfd = hc->ufd;
    return 1;
}

/* May an idle upstream connection to sa serve this request?  Asked as a
   KAP_REQ_ADDR question that must be answered at once (the policy may
   have changed since it was dialled); a refusal is audited. */
static int
addr_allowed_now(struct hc *hc, const struct sockaddr *sa)
{
    char at[KAP_ADDR_TEXT_MAX];
    struct kap_attr a[1];
    struct kap_pool *p = hc->rpool, *tmp = NULL;
    struct kap_req *r;
    int ok = 0;

    if (kap_addr_to_text(sa, at, sizeof(at)) == NULL)
        return 0;
    /* the answered question's pool when there is one (a keep-alive
       request reuses a held connection: no pool of its own per check) */
    if (p == NULL && (p = tmp = kap_pool_create()) == NULL)
        return 0;
    r = kap_http_connect_req_new(hc, p, KAP_REQ_ADDR, at);
    if (r != NULL) {
        a[0].name = "host";
        a[0].value = hc->subject;
        r->attrs = a;
        r->nattrs = 1;
        (void)kap_policy_check(r, NULL, NULL);
        ok = r->verdict == KAP_ALLOW;
        r->attrs = NULL;                /* a is gone when this returns */
        r->nattrs = 0;
    }
    kap_pool_destroy(tmp);
    return ok;
}

int
kap_http_connect_held_get(struct hc *hc)
{
    char key[KAP_HTTP_HOST_MAX + 8];
    int fd = hc->kfd;

    if (fd < 0)
        return -1;
    hc->kfd = -1;
    pool_key(key, sizeof(key), hc->subject, hc->port);
    if (strcmp(key, hc->kkey) != 0 ||
        !addr_allowed_now(hc, &hc->usa.sa) ||
        upstream_unclean(fd)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* take an idle connection to host:port whose address still passes */
int
kap_http_connect_pool_get(struct hc *hc)
{
    char key[KAP_HTTP_HOST_MAX + 8];
    struct pool_ent *e, *next;

    pool_key(key, sizeof(key), hc->subject, hc->port);
    for (e = pool_head; e; e = next) {
        next = e->next;
        if (strcmp(e->key, key) != 0)
            continue;
        if (!addr_allowed_now(hc, (struct sockaddr *)&e->sa)) {
            pool_del(e, 1);
            continue;
        }
        if (upstream_unclean(e->fd)) {  /* bytes or EOF while idle */
            pool_del(e, 1);
            continue;
        }
        int fd = e->fd;
        hc->usa = e->sa;
        pool_del(e, 0);
        return fd;
    }
    return -1;
}

/* ---- connected upstream ------------------------------------------------------- */

static void
hc_connected(struct hc *hc)
{
    int one = 1;

    setsockopt(hc->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    kap_http_connect_dial_free(hc);
    hc->reused = 0;
    if (hc->is_connect) {
        static const char ok200[] =
            "HTTP/1.1 200 Connection Established\r\n\r\n";
        if (kap_http_connect_take_pipelined(hc) != KAP_OK) {
            kap_http_connect_close(hc);
            return;
        }
        if (kap_http_connect_buf_add(&hc->cout, ok200, sizeof(ok200) - 1)
            != KAP_OK) {
            kap_http_connect_close(hc);
            return;
        }
        hc->state = S_FIRST;
        hc->tstart = kap_now();
        kap_http_connect_timer_set(hc, hc->conf->handshake_timeout);
        if (hc->first_len) {
            int r = kap_http_connect_first_check(hc);
            if (r < 0) {
                kap_http_connect_close(hc);
                return;
            }
            if (r > 0) {                /* the 200 goes first in the relay */
                kap_http_connect_tunnel_start(hc);
                return;
            }
        }
        kap_http_connect_run(hc);
        return;
    }
    kap_http_connect_forward_begin(hc);
}

static void dial_next(struct hc *hc);

/* bytes the client pipelined after the CONNECT head are first bytes */
int
kap_http_connect_take_pipelined(struct hc *hc)
{
    size_t extra = kap_http_connect_buf_used(&hc->cin);

    if (extra) {
        if (hc->first != NULL || extra > HC_HELLO_BUF_MAX)
            return KAP_ERROR;
        hc->first_cap = extra > 2048 ? extra : 2048;
        hc->first = hc->first_cap == 2048
                        ? kap_http_connect_cache_get(HC_CACHE_2K)
                        : malloc(hc->first_cap);
        if (hc->first == NULL)
            return KAP_ERROR;
        memcpy(hc->first, hc->cin.p + hc->cin.off, extra);
        hc->first_len = extra;
    }
    kap_http_connect_buf_free(&hc->cin);
    return KAP_OK;
}

/* remember the address the upstream connection was dialled to */
static void
usa_set(struct hc *hc, const struct sockaddr *sa)
{
    memset(&hc->usa, 0, sizeof(hc->usa));
    memcpy(&hc->usa, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
}

static void
att_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc_attempt *a = w->data;
    struct hc *hc = a->hc;
    int err = 0;
    socklen_t len = sizeof(err);
    (void)loop; (void)revents;
    ENTER(hc);

    kap_http_connect_io_stop(&a->io);
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        close(a->fd);
        a->fd = -1;
        hc->dial->live--;
        hc->dial->last_errno = err;
        dial_next(hc);
        goto out;
    }
    hc->ufd = a->fd;
    usa_set(hc, &a->to.sa);
    a->fd = -1;
    hc_connected(hc);
out:
    LEAVE(hc);
}

static void
eyeball_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;

    ENTER(hc);
    dial_next(hc);
    LEAVE(hc);
}

/* start the next attempt; respond 502 when all have failed */
static void
dial_next(struct hc *hc)
{
    struct hc_dial *dl = hc->dial;

    while (dl->next < dl->naddrs) {
        struct hc_attempt *a = &dl->att[dl->next++];
        const struct sockaddr *ss = &a->to.sa;
        socklen_t sl = ss->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                 : sizeof(struct sockaddr_in);
        int fd = socket(ss->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, 0);
        if (fd < 0) {
            dl->last_errno = errno;
            continue;
        }
        dl->natt = dl->next;
        a->fd = fd;
        a->hc = hc;
        if (connect(fd, ss, sl) == 0) {
            hc->ufd = fd;
            usa_set(hc, ss);
            a->fd = -1;
            hc_connected(hc);
            return;
        }
        /*
         * A connect to a local listener has usually completed by the time
         * the first call returns (the SYN-ACK is processed as the socket
         * is released): asking again says so at once (0), which saves the
         * write watcher, a loop turn and getsockopt(SO_ERROR).  EALREADY:
         * still in progress; any other error: this attempt failed.
         */
        if (errno == EINPROGRESS) {
            if (connect(fd, ss, sl) == 0) {
                hc->ufd = fd;
                usa_set(hc, ss);
                a->fd = -1;
                hc_connected(hc);
                return;
            }
            if (errno == EALREADY || errno == EINPROGRESS)
                errno = EINPROGRESS;
        }
        if (errno != EINPROGRESS) {
            dl->last_errno = errno;
            close(fd);
            a->fd = -1;
            continue;
        }
        ev_io_init(&a->io, att_cb, fd, EV_WRITE);
        a->io.data = a;
        ev_io_start(kap_loop(), &a->io);
        dl->live++;
        ev_timer_stop(kap_loop(), &dl->eyeball);
        if (dl->next < dl->naddrs) {
            ev_timer_set(&dl->eyeball, HC_EYEBALL_DELAY, 0);
            ev_timer_start(kap_loop(), &dl->eyeball);
        }
        return;
    }
    if (dl->live)
        return;                     /* others still trying */
    char why[300];
    snprintf(why, sizeof(why), "cannot connect to %s:%u: %s", hc->subject,
             (unsigned)hc->port, strerror(dl->last_errno ? dl->last_errno
                                                         : ECONNREFUSED));
    kap_http_connect_dial_free(hc);
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s", why);
    kap_http_connect_respond_error(hc, 502, why);
}

static void addr_ask_next(struct hc *hc);

static void
resolve_answer(struct hc *hc, int rc, const struct sockaddr_storage *addrs,
               size_t naddrs, const char *errmsg)
{
    char why[400];

    hc->rq = NULL;
    if (rc != KAP_OK || naddrs == 0) {
        int tmo = errmsg && strcmp(errmsg, "timeout") == 0;
        snprintf(why, sizeof(why), "cannot resolve %s: %s", hc->subject,
                 errmsg ? errmsg : "no address");
        kap_http_connect_refuse_audit(hc, why);
        kap_http_connect_respond_error(hc, tmo ? 504 : 502, why);
        return;
    }
    if (naddrs > KAP_RESOLVE_MAX_ADDRS)
        naddrs = KAP_RESOLVE_MAX_ADDRS;
    size_t cap = naddrs <= HC_DIAL_SMALL ? HC_DIAL_SMALL : naddrs;
    struct hc_dial *dl = cap == HC_DIAL_SMALL
        ? kap_http_connect_cache_get(HC_CACHE_DIAL)
        : malloc(sizeof(*dl) + cap * sizeof(dl->att[0]));
    if (dl == NULL) {
        kap_http_connect_close(hc);
        return;
    }
    memset(dl, 0, sizeof(*dl) + cap * sizeof(dl->att[0]));
    dl->cap = cap;
    for (size_t i = 0; i < cap; i++)
        dl->att[i].fd = -1;
    hc->dial = dl;
    ev_timer_init(&dl->eyeball, eyeball_cb, HC_EYEBALL_DELAY, 0);
    dl->eyeball.data = hc;
    for (size_t i = 0; i < naddrs; i++) {
        struct sockaddr_storage ss = addrs[i];
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons(hc->port);
        else if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(hc->port);
        else
            continue;
        struct hc_attempt *a = &dl->att[dl->naddrs++];
        memcpy(&a->to, &ss, ss.ss_family == AF_INET6
                            ? sizeof(struct sockaddr_in6)
                            : sizeof(struct sockaddr_in));
    }
    /* ask about EVERY address before any connect attempt */
    hc->aq_next = 0;
    addr_ask_next(hc);
}

/* an address the chain refused: 403 with the reason, nothing dialled */
static void
addr_denied(struct hc *hc, const struct kap_req *r)
{
    char body[800];

    snprintf(body, sizeof(body),
             "kap: %s:%u is not dialled: %s.\n"
             "kap never connects to loopback, private, link-local or this "
             "host's own addresses unless network.allow lists the address.\n",
             hc->subject, (unsigned)hc->port,
             r->reason ? r->reason : "denied address");
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s %s:%u refused: %s",
            hc->method, hc->subject, (unsigned)hc->port,
            r->reason ? r->reason : "denied address");
    kap_http_connect_dial_free(hc);
    kap_http_connect_rpool_release(hc);
    kap_http_connect_respond(hc, 403, body, 0);
}

static void addr_done(struct kap_req *r, void *data);

/* one KAP_REQ_ADDR question per resolved address, in order; all allowed:
   dial; one denied: 403; a waiting hook: addr_done() goes on */
static void
addr_ask_next(struct hc *hc)
{
    struct hc_dial *dl = hc->dial;

    while (hc->aq_next < dl->naddrs) {
        struct hc_attempt *a = &dl->att[hc->aq_next];
        char at[KAP_ADDR_TEXT_MAX];
        struct kap_pool *qp;
        struct kap_req *r;

        if (kap_addr_to_text((struct sockaddr *)&a->to, at, sizeof(at))
            == NULL) {
            kap_http_connect_close(hc);
            return;
        }
        kap_http_connect_rpool_release(hc);
        qp = hc->rpool = kap_pool_create();
        r = qp ? kap_http_connect_req_new(hc, qp, KAP_REQ_ADDR, at) : NULL;
        if (r == NULL) {
            kap_http_connect_close(hc);
            return;
        }
        struct kap_attr *aa = kap_palloc(qp, sizeof(*aa));
        if (aa == NULL || (aa->value = kap_pstrdup(qp, hc->subject)) == NULL) {
            kap_http_connect_close(hc);
            return;
        }
        aa->name = "host";
        r->attrs = aa;
        r->nattrs = 1;
        hc->aq = r;
        if (kap_policy_check(r, addr_done, hc) == KAP_AGAIN)
            return;
        hc->aq = NULL;
        if (r->verdict != KAP_ALLOW) {
            addr_denied(hc, r);
            return;
        }
        hc->aq_next++;
    }
    kap_http_connect_rpool_release(hc);
    hc->state = S_CONNECT;
    dial_next(hc);
}

static void
addr_done(struct kap_req *r, void *data)
{
    struct hc *hc = data;

    ENTER(hc);
    if (hc->aq == r && !hc->closing && hc->state == S_RESOLVE) {
        hc->aq = NULL;
        if (r->verdict != KAP_ALLOW) {
            addr_denied(hc, r);
        } else {
            hc->aq_next++;
            addr_ask_next(hc);
        }
    }
    LEAVE(hc);
}

static void
resolve_cb(void *data, int rc, const struct sockaddr_storage *addrs,
           size_t naddrs, const char *errmsg)
{
    struct hc *hc = data;

    ENTER(hc);
    resolve_answer(hc, rc, addrs, naddrs, errmsg);
    LEAVE(hc);
}

void
kap_http_connect_resolve(struct hc *hc)
{
    kap_http_connect_rpool_release(hc);          /* the question is answered */
    hc->state = S_RESOLVE;
    kap_http_connect_timer_set(hc, hc->conf->connect_timeout);
    kap_http_connect_io_stop(&hc->crd);
    hc->rq = kap_resolve_addrs(kap_http_connect_policy_gen(hc), hc->subject, 1,
                               resolve_cb, hc);
    if (hc->rq == NULL) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve %s: resolver unavailable",
                 hc->subject);
        kap_http_connect_refuse_audit(hc, why);
        kap_http_connect_respond_error(hc, 502, why);
    }
}

