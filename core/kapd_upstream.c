/*
 * kapd_upstream.c -- kap_upstream: resolve, ask every address, dial
 * happy-eyeballs style, keep idle connections (kap_upstream.h).
 *
 * A dial holds only what it needs while it runs: the addresses, one
 * question's pool at a time (destroyed once that question is answered,
 * so a thousand dialling tunnels do not keep a thousand answered
 * questions), and the attempts' sockets.  It is freed before the
 * callback hands over the connected socket.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "kapd.h"
#include <kapd/kap_addr.h>
#include <kapd/kap_req.h>
#include <kapd/kap_resolver.h>
#include <kapd/kap_upstream.h>

#define UP_EYEBALL_DELAY 0.25      /* s before trying the next address */
#define UP_IDLE_PER_DEST 64        /* idle connections per destination */
#define UP_IDLE_MAX      1024      /* idle connections in total */
#define UP_HOST_MAX      256       /* a host name or literal, with its NUL */

struct up_attempt {
    struct sockaddr_storage *to;     /* its address, in u->addrs */
    int                     fd;
    ev_io                   io;
    struct kap_upstream    *u;
};

struct kap_upstream {
    kap_upstream_fn      cb;
    void                *data;
    struct kap_gen      *gen;        /* referenced while the dial runs */
    struct kap_conn     *conn;
    const char          *asked_by;
    char                *client, *detail;
    char                 host[UP_HOST_MAX];
    unsigned             port;
    struct kap_resolve  *rq;         /* pending resolution */
    struct kap_pool     *qpool;      /* the question being asked */
    struct kap_req      *aq;         /* ... and the question itself */
    size_t               naddrs, asked, next, live;
    int                  resolve_only;   /* kap_upstream_resolve() */
    int                  last_errno;
    ev_timer             eyeball;
    struct sockaddr_storage *addrs;  /* naddrs, once resolved ... */
    struct up_attempt   *att;        /* ... and their attempts */
};

/* ---- the dial --------------------------------------------------------------- */

static void
up_free(struct kap_upstream *u)
{
    size_t i;

    if (u->rq != NULL)
        kap_resolve_cancel(u->rq);
    kap_pool_destroy(u->qpool);         /* cancels a waiting question */
    ev_timer_stop(kap_loop(), &u->eyeball);
    for (i = 0; i < u->naddrs; i++)
        if (u->att[i].fd >= 0) {
            ev_io_stop(kap_loop(), &u->att[i].io);
            close(u->att[i].fd);
        }
    kap_gen_unref(u->gen);
    free(u->att);
    free(u->addrs);
    free(u->client);
    free(u->detail);
    free(u);
}

/* end the dial: hand the result over, then free everything */
static void
up_finish(struct kap_upstream *u, struct kap_upstream_result *res)
{
    struct kap_pool *qp = u->qpool;
    struct sockaddr_storage *addrs = u->addrs;
    kap_upstream_fn cb = u->cb;
    void *data = u->data;

    u->qpool = NULL;                    /* res->req and res->addrs live */
    u->aq = NULL;                       /* through cb */
    u->addrs = NULL;
    up_free(u);
    cb(data, res);
    kap_pool_destroy(qp);
    free(addrs);
}

static void
up_fail(struct kap_upstream *u, int status, const char *why)
{
    struct kap_upstream_result res;

    memset(&res, 0, sizeof(res));
    res.rc = KAP_ERROR;
    res.fd = -1;
    res.status = status;
    res.reason = why;
    up_finish(u, &res);
}

static socklen_t
sa_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                     : sizeof(struct sockaddr_in);
}

static void
up_connected(struct kap_upstream *u, struct up_attempt *a)
{
    struct kap_upstream_result res;
    struct sockaddr_storage to = *a->to;
    int one = 1;

    ev_io_stop(kap_loop(), &a->io);
    (void) setsockopt(a->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&res, 0, sizeof(res));
    res.rc = KAP_OK;
    res.fd = a->fd;
    res.sa = (const struct sockaddr *) &to;
    a->fd = -1;                         /* the callee's now */
    up_finish(u, &res);
}

static void up_dial_next(struct kap_upstream *u);

static void
up_attempt_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct up_attempt *a = w->data;
    struct kap_upstream *u = a->u;
    int err = 0;
    socklen_t len = sizeof(err);

    (void) loop;
    (void) revents;
    ev_io_stop(kap_loop(), &a->io);
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        up_connected(u, a);
        return;
    }
    close(a->fd);
    a->fd = -1;
    u->live--;
    u->last_errno = err;
    up_dial_next(u);
}

static void
up_eyeball_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    up_dial_next(w->data);
}

/* start the next attempt; fail when every one has */
static void
up_dial_next(struct kap_upstream *u)
{
    while (u->next < u->naddrs) {
        struct up_attempt *a = &u->att[u->next++];
        const struct sockaddr *to = (const struct sockaddr *) a->to;
        int fd = socket(to->sa_family, SOCK_STREAM | SOCK_NONBLOCK
                        | SOCK_CLOEXEC, 0);

        if (fd < 0) {
            u->last_errno = errno;
            continue;
        }
        a->fd = fd;
        if (connect(fd, to, sa_len(to)) == 0) {
            up_connected(u, a);
            return;
        }
        /*
         * A connect to a local listener has usually completed by the time
         * the first call returns: asking again says so at once, which
         * saves the write watcher, a loop turn and getsockopt(SO_ERROR).
         */
        if (errno == EINPROGRESS) {
            if (connect(fd, to, sa_len(to)) == 0) {
                up_connected(u, a);
                return;
            }
            if (errno == EALREADY)
                errno = EINPROGRESS;
        }
        if (errno != EINPROGRESS) {
            u->last_errno = errno;
            close(fd);
            a->fd = -1;
            continue;
        }
        ev_io_init(&a->io, up_attempt_cb, fd, EV_WRITE);
        a->io.data = a;
        ev_io_start(kap_loop(), &a->io);
        u->live++;
        ev_timer_stop(kap_loop(), &u->eyeball);
        if (u->next < u->naddrs) {
            ev_timer_set(&u->eyeball, UP_EYEBALL_DELAY, 0.);
            ev_timer_start(kap_loop(), &u->eyeball);
        }
        return;
    }
    if (u->live)
        return;                         /* others still trying */
    {
        char why[400];

        struct kap_upstream_result res;

        snprintf(why, sizeof(why), "cannot connect to %s:%u: %s", u->host,
                 u->port, strerror(u->last_errno ? u->last_errno
                                                 : ECONNREFUSED));
        memset(&res, 0, sizeof(res));
        res.rc = KAP_ERROR;
        res.fd = -1;
        res.status = 502;
        res.reason = why;
        res.connecting = 1;
        up_finish(u, &res);
    }
}

/* ---- the address questions ------------------------------------------------- */

static struct kap_req *
up_question(const struct kap_upstream_target *t, struct kap_pool *p,
            const struct sockaddr *sa)
{
    char at[KAP_ADDR_TEXT_MAX];
    struct kap_attr *attr;
    struct kap_req *r;

    if (kap_addr_to_text(sa, at, sizeof(at)) == NULL
        || (r = kap_req_new(t->gen, p, KAP_REQ_ADDR, t->asked_by, at)) == NULL
        || (attr = kap_palloc(p, sizeof(*attr))) == NULL
        || (attr->value = kap_pstrdup(p, t->host)) == NULL)
        return NULL;
    attr->name = "host";
    r->attrs = attr;
    r->nattrs = 1;
    r->conn = t->conn;
    r->port = t->port;
    r->client = t->client;
    r->detail = t->detail;
    return r;
}

int
kap_upstream_addr_allowed(const struct kap_upstream_target *t,
                          const struct sockaddr *sa)
{
    struct kap_pool *p, *tmp = NULL;
    struct kap_req *r;
    int ok;

    if (t == NULL || t->gen == NULL || t->asked_by == NULL || t->host == NULL)
        return 0;
    if ((p = t->pool) == NULL && (p = tmp = kap_pool_create()) == NULL)
        return 0;
    /* answered at once: a hook that would wait counts as a no */
    r = up_question(t, p, sa);
    ok = r != NULL && kap_policy_check(r, NULL, NULL) != KAP_ERROR
         && r->verdict == KAP_ALLOW;
    kap_pool_destroy(tmp);
    return ok;
}

static void
up_refused(struct kap_upstream *u, const struct kap_req *r)
{
    struct kap_upstream_result res;

    memset(&res, 0, sizeof(res));
    res.rc = KAP_DENY;
    res.fd = -1;
    res.status = 403;
    res.reason = r->reason != NULL ? r->reason : "denied address";
    res.req = r;
    up_finish(u, &res);
}

static void up_ask_next(struct kap_upstream *u);

/* an address question answered: 1 to go on, 0 when the dial is over */
static int
up_asked(struct kap_upstream *u, struct kap_req *r)
{
    u->aq = NULL;
    if (r->verdict != KAP_ALLOW) {
        up_refused(u, r);
        return 0;
    }
    u->asked++;
    return 1;
}

static void
up_answer(struct kap_req *r, void *data)
{
    struct kap_upstream *u = data;

    if (u->aq == r && up_asked(u, r))
        up_ask_next(u);
}

/* one question per address, in order; all allowed: dial */
static void
up_ask_next(struct kap_upstream *u)
{
    struct kap_upstream_target t;

    memset(&t, 0, sizeof(t));
    t.gen = u->gen;
    t.host = u->host;
    t.port = u->port;
    t.asked_by = u->asked_by;
    t.conn = u->conn;
    t.client = u->client;
    t.detail = u->detail;
    while (u->asked < u->naddrs) {
        struct kap_req *r;

        kap_pool_destroy(u->qpool);     /* the last one is answered */
        u->qpool = kap_pool_create();
        r = u->qpool != NULL
            ? up_question(&t, u->qpool,
                          (const struct sockaddr *) &u->addrs[u->asked])
            : NULL;
        if (r == NULL) {
            up_fail(u, 502, "out of memory");
            return;
        }
        u->aq = r;
        if (kap_policy_check(r, up_answer, u) == KAP_AGAIN
            || !up_asked(u, r))
            return;
    }
    kap_pool_destroy(u->qpool);
    u->qpool = NULL;
    if (u->resolve_only) {
        struct kap_upstream_result res;

        memset(&res, 0, sizeof(res));
        res.rc = KAP_OK;
        res.fd = -1;
        res.addrs = u->addrs;
        res.naddrs = u->naddrs;
        up_finish(u, &res);
        return;
    }
    up_dial_next(u);
}

/* the name gave no address to dial: 504 for a resolver timeout, else 502 */
static void
up_unresolved(struct kap_upstream *u, const char *errmsg)
{
    char why[400];
    int tmo = errmsg != NULL && strcmp(errmsg, "timeout") == 0;

    snprintf(why, sizeof(why), "cannot resolve %s: %s", u->host,
             errmsg != NULL ? errmsg : "no address");
    up_fail(u, tmo ? 504 : 502, why);
}

static void
up_resolved(void *data, int rc, const struct sockaddr_storage *addrs,
            size_t naddrs, const char *errmsg)
{
    struct kap_upstream *u = data;
    size_t i;

    u->rq = NULL;
    if (rc != KAP_OK || naddrs == 0) {
        up_unresolved(u, errmsg);
        return;
    }
    if (naddrs > KAP_RESOLVE_MAX_ADDRS)
        naddrs = KAP_RESOLVE_MAX_ADDRS;
    if ((u->addrs = calloc(naddrs, sizeof(u->addrs[0]))) == NULL
        || (u->att = calloc(naddrs, sizeof(u->att[0]))) == NULL) {
        up_fail(u, 502, "out of memory");
        return;
    }
    for (i = 0; i < naddrs; i++) {
        struct up_attempt *a = &u->att[u->naddrs];
        struct sockaddr_storage ss = addrs[i];

        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *) &ss)->sin_port = htons((uint16_t) u->port);
        else if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *) &ss)->sin6_port = htons((uint16_t) u->port);
        else
            continue;
        u->addrs[u->naddrs] = ss;
        memset(a, 0, sizeof(*a));
        a->to = &u->addrs[u->naddrs];
        a->fd = -1;
        a->u = u;
        u->naddrs++;
    }
    if (u->naddrs == 0) {
        up_unresolved(u, NULL);
        return;
    }
    up_ask_next(u);
}

static struct kap_upstream *
up_start(const struct kap_upstream_target *t, kap_upstream_fn cb, void *data,
         int resolve_only)
{
    struct kap_upstream *u;
    size_t n;

    if (t == NULL || t->gen == NULL || t->host == NULL || cb == NULL
        || t->port == 0 || t->port > 65535 || t->asked_by == NULL
        || (n = strlen(t->host)) == 0 || n >= UP_HOST_MAX)
        return NULL;
    if ((u = calloc(1, sizeof(*u))) == NULL)
        return NULL;
    memcpy(u->host, t->host, n + 1);
    u->port = t->port;
    u->cb = cb;
    u->data = data;
    u->asked_by = t->asked_by;
    u->conn = t->conn;
    if ((t->client != NULL && (u->client = strdup(t->client)) == NULL)
        || (t->detail != NULL && (u->detail = strdup(t->detail)) == NULL)) {
        free(u->client);
        free(u);
        return NULL;
    }
    u->resolve_only = resolve_only;
    u->gen = t->gen;
    kap_gen_ref(u->gen);
    ev_timer_init(&u->eyeball, up_eyeball_cb, UP_EYEBALL_DELAY, 0.);
    u->eyeball.data = u;
    u->rq = kap_resolve_addrs(t->gen, u->host, t->want_v6, up_resolved, u);
    if (u->rq == NULL) {
        up_free(u);
        return NULL;
    }
    return u;
}

struct kap_upstream *
kap_upstream_dial(const struct kap_upstream_target *t, kap_upstream_fn cb,
                  void *data)
{
    return up_start(t, cb, data, 0);
}

struct kap_upstream *
kap_upstream_resolve(const struct kap_upstream_target *t, kap_upstream_fn cb,
                     void *data)
{
    return up_start(t, cb, data, 1);
}

void
kap_upstream_cancel(struct kap_upstream *u)
{
    if (u != NULL)
        up_free(u);
}
