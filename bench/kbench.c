/*
 * kbench.c -- the load generator bench/run-proxy drives: one process, one
 * epoll loop per thread (default one thread), nonblocking sockets, no
 * allocation on the hot path.  It measures an HTTP proxy (CONNECT tunnels
 * and plain forwarding) against the same transfers made directly to the
 * origin, and prints one machine-readable line of key=value pairs per run
 * on stdout (diagnostics go to stderr).  Modes:
 *
 *   tunnels  new connection per unit: CONNECT host:port -> 2xx -> GET path
 *            -> full response -> close (direct: connect -> GET -> close)
 *   forward  keep-alive connections: GET absolute-form through the proxy
 *            (direct: origin-form); -c 1 gives the latency figures
 *   denied   new connection per unit: CONNECT to a denied authority,
 *            expects 403 (direct: GET -u /deny to nginx, expects 403)
 *   bulk     one tunnel (or one direct connection), GET a large file again
 *            and again with keep-alive; reports body bytes/s
 *   idle     open -c tunnels and hold them; reports the RSS of -P PIDs
 *            before, after the CONNECTs and after one GET through each
 *            (direct, e.g. -o pointing at a TCP relay: plain connections,
 *            "after the CONNECTs" is after the TCP handshakes)
 *
 * With -n N a run makes exactly N units on one connection at a time, with
 * no warm-up and no time limit, so that a profiler around the proxy (run-proxy
 * -I: callgrind, strace -c) can divide its counts by N.
 *
 * Addresses (-x proxy, -o origin) are numeric; the name in -H is only
 * written into the requests, kbench itself never resolves names.
 * Benchmarks never assert timings: the exit status is 0 unless the run
 * could not be made at all (bad options, no unit completed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KB_HBUF        8192        /* response header buffer per connection */
#define KB_RBUF        (256 * 1024) /* body read buffer per thread */
#define KB_REQ         1024        /* request text per thread */
#define KB_EVENTS      512         /* epoll events per wait */
#define KB_IDLE_INFL   256         /* idle: tunnels being set up at once */
#define KB_MAX_THREADS 16

enum kb_mode { KB_TUNNELS = 0, KB_FORWARD, KB_DENIED, KB_BULK, KB_IDLE };

enum kb_state {
    KB_S_FREE = 0,     /* slot unused */
    KB_S_CONNECTING,   /* nonblocking connect() in progress */
    KB_S_WRITING,      /* writing the current request */
    KB_S_READING,      /* reading the response */
    KB_S_HELD,         /* idle mode: tunnel (or direct connection) open,
                          nothing in flight */
    KB_S_DEAD          /* idle mode: failed or dropped, not restarted */
};

enum kb_body { KB_B_NONE = 0, KB_B_LEN, KB_B_CHUNKED, KB_B_EOF };

struct kb_resp {
    int      in_body;  /* 0: reading headers, 1: reading body */
    int      status;   /* status code of the response */
    int      body;     /* enum kb_body */
    int      close;    /* server will close after this response */
    int      cstate;   /* chunked decoder state */
    int      tlen;     /* chunked: length of the current trailer line */
    uint64_t left;     /* KB_B_LEN / chunk: bytes still expected */
    uint64_t nbody;    /* body bytes received */
};

struct kb_worker;

struct kb_conn {
    int               fd;      /* socket, -1 when none */
    int               state;   /* enum kb_state */
    int               step;    /* 0: CONNECT exchange, 1: the GET */
    uint64_t          t0;      /* start of the measured unit (ns) */
    size_t            woff;    /* bytes of the request already written */
    const char       *wbuf;    /* request being written (worker-owned) */
    size_t            wlen;    /* its length */
    size_t            hlen;    /* bytes in hbuf */
    unsigned          nreq;    /* responses completed on this connection */
    struct kb_resp    r;       /* response being parsed */
    struct kb_worker *w;       /* owning worker */
    char              hbuf[KB_HBUF]; /* response headers */
};

struct kb_opts {
    int                     mode;      /* enum kb_mode */
    int                     proxied;   /* -x given */
    struct sockaddr_storage dst;       /* where sockets connect */
    socklen_t               dstlen;
    const char             *authority; /* -H host:port */
    const char             *path;      /* -u */
    int                     conc;      /* -c */
    double                  secs;      /* -d */
    double                  warm;      /* -w */
    int                     threads;   /* -T */
    int                     expect;    /* -s */
    const char             *pids;      /* -P */
    const char             *label;     /* -l */
    int                     idle_get;  /* idle: GET through each tunnel */
    uint64_t                count;     /* -n: stop after this many units
                                          (0: run for -d seconds) */
};

struct kb_worker {
    const struct kb_opts *o;      /* shared options (read-only) */
    int                   ep;     /* epoll fd */
    int                   nconn;  /* connections of this worker */
    struct kb_conn       *conns;  /* array of nconn */
    uint64_t              warm_end; /* ns: units before this are not counted */
    uint64_t              end;    /* ns: stop issuing work */
    int                   stop;   /* set when the worker should return */
    uint64_t              ok;     /* units completed in the window */
    uint64_t              err;    /* failed units in the window */
    uint64_t              bytes;  /* body bytes received in the window */
    uint64_t              reconn; /* keep-alive connections the server
                                     closed before a request (retried) */
    uint32_t             *lat;    /* latencies (ns, clamped) */
    size_t                nlat, lat_cap;
    char                  connect_req[KB_REQ]; /* CONNECT text */
    size_t                connect_len;
    char                  get_req[KB_REQ];     /* GET text */
    size_t                get_len;
    char                  rbuf[KB_RBUF];       /* body sink */
    /* idle mode */
    int                   limit;   /* idle: set up this many for now */
    int                   started; /* connections started so far */
    int                   inflight;/* connections in set-up or GET */
    int                   held;    /* tunnels established */
    int                   failed;  /* tunnels that failed */
    int                   got;     /* GETs completed through held tunnels */
    int                   dropped; /* held tunnels the peer closed */
    pthread_t             tid;
};

static int kb_nerrmsg;            /* error messages printed so far */
static pthread_mutex_t kb_errlock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print at most 10 error messages per run, so a refusing peer does not
 * flood the terminal; every error is still counted. */
static void
errmsg(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&kb_errlock);
    if (kb_nerrmsg++ < 10) {
        va_start(ap, fmt);
        fputs("kbench: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    pthread_mutex_unlock(&kb_errlock);
}

static void
lat_add(struct kb_worker *w, uint64_t ns)
{
    if (w->nlat == w->lat_cap) {
        size_t cap = w->lat_cap ? w->lat_cap * 2 : 65536;
        uint32_t *p = realloc(w->lat, cap * sizeof *p);
        if (p == NULL)
            return;
        w->lat = p;
        w->lat_cap = cap;
    }
    w->lat[w->nlat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t) ns;
}

/* ---- response parsing ------------------------------------------------ */

static int
hdr_is(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);

    return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static int
val_has(const char *v, size_t len, const char *tok)
{
    size_t n = strlen(tok);

    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(v + i, tok, n) == 0)
            return 1;
    return 0;
}

/* Parse the status line and headers in buf[0..len) (which ends at the
 * blank line).  Returns 0, or -1 when the response is not HTTP. */
static int
parse_head(struct kb_resp *r, const char *buf, size_t len, int to_connect)
{
    const char *p = buf, *end = buf + len;
    int have_len = 0, chunked = 0;
    uint64_t clen = 0;

    if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return -1;
    r->close = p[7] == '0';
    r->status = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        r->status = r->status * 10 + (p[i] - '0');
    }
    p = memchr(p, '\n', (size_t) (end - p));
    while (p != NULL && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t) (end - p));
        size_t ll;

        if (eol == NULL)
            break;
        ll = (size_t) (eol - p);
        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll == 0)
            break;
        if (hdr_is(p, ll, "content-length")) {
            char tmp[32];
            size_t vl = ll - 15;
            if (vl >= sizeof tmp)
                return -1;
            memcpy(tmp, p + 15, vl);
            tmp[vl] = '\0';
            clen = strtoull(tmp, NULL, 10);
            have_len = 1;
        } else if (hdr_is(p, ll, "transfer-encoding")) {
            chunked = val_has(p + 18, ll - 18, "chunked");
        } else if (hdr_is(p, ll, "connection")
                   || hdr_is(p, ll, "proxy-connection")) {
            const char *v = memchr(p, ':', ll) + 1;
            size_t vl = ll - (size_t) (v - p);
            if (val_has(v, vl, "close"))
                r->close = 1;
            else if (val_has(v, vl, "keep-alive"))
                r->close = 0;
        }
        p = eol;
    }
    r->left = 0;
    r->cstate = 0;
    r->tlen = 0;
    if ((to_connect && r->status / 100 == 2) || r->status / 100 == 1
        || r->status == 204 || r->status == 304)
        r->body = KB_B_NONE;
    else if (chunked)
        r->body = KB_B_CHUNKED;
    else if (have_len) {
        r->body = KB_B_LEN;
        r->left = clen;
    } else {
        r->body = KB_B_EOF;
        r->close = 1;
    }
    return 0;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char) (c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Consume body bytes; returns 1 when the body is complete, 0 when more is
 * needed, -1 on a malformed chunked body.  Extra bytes are ignored. */
static int
feed_body(struct kb_resp *r, const char *p, size_t n)
{
    size_t i = 0;

    switch (r->body) {
    case KB_B_NONE:
        return 1;
    case KB_B_EOF:
        r->nbody += n;
        return 0;
    case KB_B_LEN:
        if (n > r->left)
            n = (size_t) r->left;
        r->left -= n;
        r->nbody += n;
        return r->left == 0;
    default:
        break;
    }
    while (i < n) {
        char c;
        int v;
        size_t take;

        switch (r->cstate) {
        case 0: /* chunk size */
            c = p[i++];
            v = hexval(c);
            if (v >= 0) {
                if (r->left > (UINT64_MAX >> 4))
                    return -1;
                r->left = r->left * 16 + (uint64_t) v;
            } else if (c == '\n') {
                r->cstate = r->left ? 2 : 4;
                r->tlen = 0;
            } else {
                r->cstate = 1;
            }
            break;
        case 1: /* chunk extension, CR */
            if (p[i++] == '\n') {
                r->cstate = r->left ? 2 : 4;
                r->tlen = 0;
            }
            break;
        case 2: /* chunk data */
            take = n - i;
            if (take > r->left)
                take = (size_t) r->left;
            i += take;
            r->left -= take;
            r->nbody += take;
            if (r->left == 0)
                r->cstate = 3;
            break;
        case 3: /* CRLF after the data */
            if (p[i++] == '\n')
                r->cstate = 0;
            break;
        default: /* trailers until an empty line */
            c = p[i++];
            if (c == '\n') {
                if (r->tlen == 0)
                    return 1;
                r->tlen = 0;
            } else if (c != '\r') {
                r->tlen++;
            }
            break;
        }
    }
    return 0;
}

/* ---- connections ------------------------------------------------------- */

static void conn_start(struct kb_conn *c);

static void
conn_close(struct kb_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);       /* also removes it from the epoll set */
        c->fd = -1;
    }
}

static void
begin_request(struct kb_conn *c, int step)
{
    struct kb_worker *w = c->w;

    c->step = step;
    if (step == 0) {
        c->wbuf = w->connect_req;
        c->wlen = w->connect_len;
    } else {
        c->wbuf = w->get_req;
        c->wlen = w->get_len;
    }
    c->woff = 0;
    c->hlen = 0;
    memset(&c->r, 0, sizeof c->r);
    c->state = KB_S_WRITING;
}

static int
in_window(const struct kb_worker *w, uint64_t t)
{
    return t >= w->warm_end && t < w->end;
}

/* -n: the fixed number of units has been made (completed or failed). */
static int
count_reached(struct kb_worker *w)
{
    return w->o->count > 0 && w->ok + w->err >= w->o->count;
}

/* A unit failed: count it and, in the load modes, start over on a new
 * connection (a refused connect would otherwise end the run early). */
static void
conn_fail(struct kb_conn *c, const char *why)
{
    struct kb_worker *w = c->w;
    uint64_t t = now_ns();

    if (in_window(w, t) || w->o->mode == KB_IDLE)
        w->err++;
    if (count_reached(w))
        w->end = t;
    errmsg("%s (step %d, state %d)", why, c->step, c->state);
    conn_close(c);
    if (w->o->mode == KB_IDLE) {
        c->state = KB_S_DEAD;
        w->failed++;
        w->inflight--;
        return;
    }
    if (w->o->mode == KB_BULK && t >= w->end) {
        c->state = KB_S_FREE;
        return;
    }
    conn_start(c);
}

static void
conn_start(struct kb_conn *c)
{
    struct kb_worker *w = c->w;
    const struct kb_opts *o = w->o;
    struct epoll_event ev;
    int fd, one = 1;

    c->t0 = now_ns();
    if (c->t0 >= w->end) {
        c->state = KB_S_FREE;
        return;
    }
    fd = socket(o->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                0);
    if (fd < 0) {
        errmsg("socket: %s", strerror(errno));
        c->state = KB_S_FREE;
        w->err++;
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->nreq = 0;
    begin_request(c, o->proxied && o->mode != KB_FORWARD ? 0 : 1);
    c->state = KB_S_CONNECTING;
    if (connect(fd, (const struct sockaddr *) &o->dst, o->dstlen) < 0
        && errno != EINPROGRESS) {
        char why[128];
        snprintf(why, sizeof why, "connect: %s", strerror(errno));
        c->state = KB_S_FREE;
        conn_close(c);
        if (in_window(w, now_ns()) || o->mode == KB_IDLE)
            w->err++;
        errmsg("%s", why);
        if (o->mode == KB_IDLE) {
            c->state = KB_S_DEAD;
            w->failed++;
            w->inflight--;
        }
        return;
    }
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        conn_fail(c, "epoll_ctl");
        return;
    }
}

/* Idle mode: the tunnel (or, direct, the connection) is set up; hold it. */
static void
idle_hold(struct kb_conn *c)
{
    c->state = KB_S_HELD;
    c->w->held++;
    c->w->inflight--;
}

/* The response to the current request is complete.  Returns 1 when the
 * connection has a new request to write (state WRITING), 0 otherwise. */
static int
unit_done(struct kb_conn *c)
{
    struct kb_worker *w = c->w;
    const struct kb_opts *o = w->o;
    uint64_t t = now_ns();
    int st = c->r.status;

    if (c->step == 0 && o->mode != KB_DENIED) {
        if (st / 100 != 2) {
            char why[64];
            snprintf(why, sizeof why, "CONNECT answered %d", st);
            conn_fail(c, why);
            return 0;
        }
        if (o->mode == KB_IDLE) {
            idle_hold(c);
            return 0;
        }
        begin_request(c, 1);
        return 1;
    }
    if (st != o->expect) {
        char why[64];
        snprintf(why, sizeof why, "answered %d, expected %d", st, o->expect);
        conn_fail(c, why);
        return 0;
    }
    if (o->mode == KB_IDLE) {
        c->state = KB_S_HELD;
        w->got++;
        w->inflight--;
        return 0;
    }
    if (in_window(w, t)) {
        w->ok++;
        lat_add(w, t - c->t0);
        if (count_reached(w))
            w->end = t;     /* start nothing more */
    }
    if ((o->mode == KB_FORWARD || o->mode == KB_BULK) && !c->r.close) {
        if (t >= w->end) {
            conn_close(c);
            c->state = KB_S_FREE;
            return 0;
        }
        c->t0 = t;
        c->nreq++;
        begin_request(c, 1);
        return 1;
    }
    conn_close(c);
    conn_start(c);
    return 0;
}

/* Write what remains of the request: 1 done, 0 would block, -1 failed. */
static int
do_write(struct kb_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            conn_fail(c, "send failed");
            return -1;
        }
        c->woff += (size_t) n;
    }
    c->state = KB_S_READING;
    return 1;
}

/* Read: 1 response complete, 0 would block, -1 failed (conn handled). */
static int
do_read(struct kb_conn *c)
{
    struct kb_worker *w = c->w;

    for (;;) {
        ssize_t n;
        int r;

        if (!c->r.in_body) {
            char *eoh;

            if (c->hlen >= sizeof c->hbuf - 1) {
                conn_fail(c, "response header too large");
                return -1;
            }
            n = recv(c->fd, c->hbuf + c->hlen, sizeof c->hbuf - 1 - c->hlen,
                     0);
            if (n == 0 && c->hlen == 0 && c->nreq > 0) {
                /* the server closed an idle keep-alive connection (it
                 * did not say so): retry on a new one, as clients do */
                if (in_window(w, now_ns()))
                    w->reconn++;
                conn_close(c);
                conn_start(c);
                return -1;
            }
            if (n == 0) {
                conn_fail(c, c->hlen ? "EOF in response header"
                                     : "connection closed before response");
                return -1;
            }
            if (n < 0) {
                if (errno == EAGAIN)
                    return 0;
                if (errno == EINTR)
                    continue;
                conn_fail(c, "recv failed (header)");
                return -1;
            }
            c->hlen += (size_t) n;
            c->hbuf[c->hlen] = '\0';
            eoh = strstr(c->hbuf, "\r\n\r\n");
            if (eoh == NULL)
                continue;
            eoh += 4;
            if (parse_head(&c->r, c->hbuf, (size_t) (eoh - c->hbuf),
                           c->step == 0) < 0) {
                conn_fail(c, "not an HTTP response");
                return -1;
            }
            c->r.in_body = 1;
            {
                size_t extra = c->hlen - (size_t) (eoh - c->hbuf);
                uint64_t before = c->r.nbody;
                r = feed_body(&c->r, eoh, extra);
                if (in_window(w, now_ns()))
                    w->bytes += c->r.nbody - before;
            }
        } else {
            uint64_t before = c->r.nbody;

            n = recv(c->fd, w->rbuf, sizeof w->rbuf, 0);
            if (n == 0) {
                if (c->r.body == KB_B_EOF)
                    return 1;
                conn_fail(c, "EOF in response body");
                return -1;
            }
            if (n < 0) {
                if (errno == EAGAIN)
                    return 0;
                if (errno == EINTR)
                    continue;
                conn_fail(c, "recv failed (body)");
                return -1;
            }
            r = feed_body(&c->r, w->rbuf, (size_t) n);
            if (in_window(w, now_ns()))
                w->bytes += c->r.nbody - before;
        }
        if (r < 0) {
            conn_fail(c, "bad chunked body");
            return -1;
        }
        if (r == 1)
            return 1;
    }
}

static void
on_event(struct kb_conn *c, uint32_t ev)
{
    for (int guard = 0; guard < 64; guard++) {
        switch (c->state) {
        case KB_S_CONNECTING: {
            int err = 0;
            socklen_t el = sizeof err;

            if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                return;
            if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
                err = errno;
            if (err != 0) {
                char why[128];
                snprintf(why, sizeof why, "connect: %s", strerror(err));
                conn_fail(c, why);
                return;
            }
            if (c->w->o->mode == KB_IDLE && !c->w->o->proxied) {
                idle_hold(c);   /* direct: nothing to send until the GETs */
                return;
            }
            c->state = KB_S_WRITING;
            break;
        }
        case KB_S_WRITING:
            if (do_write(c) <= 0)
                return;
            break;
        case KB_S_READING:
            if (do_read(c) <= 0)
                return;
            if (!unit_done(c))
                return;
            break;
        case KB_S_HELD:
            if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                char b[256];
                ssize_t n = recv(c->fd, b, sizeof b, 0);
                if (n > 0 || (n < 0 && errno == EAGAIN))
                    return;     /* stray bytes; still open */
                c->w->dropped++;
                conn_close(c);
                c->state = KB_S_DEAD;
            }
            return;
        default:
            return;
        }
    }
}

/* Run the event loop until `until` (ns) or until done() says so. */
static void
loop(struct kb_worker *w, uint64_t until, int (*done)(struct kb_worker *))
{
    struct epoll_event evs[KB_EVENTS];

    for (;;) {
        uint64_t t = now_ns();
        int n, ms;

        if (t >= until || (done != NULL && done(w)))
            return;
        ms = (int) ((until - t) / 1000000u) + 1;
        if (ms > 100)
            ms = 100;
        n = epoll_wait(w->ep, evs, KB_EVENTS, ms);
        if (n < 0 && errno != EINTR) {
            perror("epoll_wait");
            return;
        }
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
}

static int
all_free(struct kb_worker *w)
{
    for (int i = 0; i < w->nconn; i++)
        if (w->conns[i].state != KB_S_FREE)
            return 0;
    return 1;
}

static void *
worker_run(void *arg)
{
    struct kb_worker *w = arg;

    for (int i = 0; i < w->nconn; i++)
        conn_start(&w->conns[i]);
    loop(w, w->end, w->o->count > 0 ? count_reached : NULL);
    /* let units in flight at the deadline finish (not counted) */
    loop(w, w->end + 2000000000u, all_free);
    for (int i = 0; i < w->nconn; i++)
        conn_close(&w->conns[i]);
    return NULL;
}

/* ---- idle mode ----------------------------------------------------------- */

static long
rss_kb(const char *pids)
{
    long total = 0;
    const char *p = pids;

    while (p != NULL && *p) {
        char path[64], line[256];
        char *end;
        long pid = strtol(p, &end, 10);
        FILE *f;

        if (end == p)
            break;
        snprintf(path, sizeof path, "/proc/%ld/status", pid);
        f = fopen(path, "r");
        if (f != NULL) {
            while (fgets(line, sizeof line, f) != NULL)
                if (strncmp(line, "VmRSS:", 6) == 0)
                    total += strtol(line + 6, NULL, 10);
            fclose(f);
        }
        p = *end == ',' ? end + 1 : NULL;
    }
    return total;
}

static int
idle_setup_done(struct kb_worker *w)
{
    /* top up the connections being set up */
    while (w->started < w->limit && w->inflight < KB_IDLE_INFL) {
        w->inflight++;
        conn_start(&w->conns[w->started++]);
    }
    return w->held + w->failed >= w->limit;
}

static int
idle_get_done(struct kb_worker *w)
{
    while (w->started < w->nconn && w->inflight < KB_IDLE_INFL) {
        struct kb_conn *c = &w->conns[w->started++];
        if (c->state != KB_S_HELD)
            continue;
        w->inflight++;
        begin_request(c, 1);
        on_event(c, EPOLLOUT);
    }
    return w->started >= w->nconn && w->inflight == 0;
}

static void
settle(void)
{
    struct timespec ts = { 0, 200000000 }; /* let the proxy finish its work */

    nanosleep(&ts, NULL);
}

static int
run_idle(struct kb_worker *w, const struct kb_opts *o)
{
    long rss0, rssh, rss1, rss2 = 0;
    int held, heldh, n = w->nconn, alive = 0;
    uint64_t t;

    w->warm_end = 0;
    w->end = UINT64_MAX;
    rss0 = rss_kb(o->pids);
    /* half, then all: the slope between the two excludes one-time costs */
    t = now_ns();
    w->limit = n / 2;
    loop(w, t + 120ull * 1000000000u, idle_setup_done);
    settle();
    rssh = rss_kb(o->pids);
    heldh = w->held;
    w->limit = n;
    loop(w, now_ns() + 120ull * 1000000000u, idle_setup_done);
    settle();
    rss1 = rss_kb(o->pids);
    held = w->held;
    if (o->idle_get) {
        w->started = 0;
        w->failed = 0;
        loop(w, now_ns() + 120ull * 1000000000u, idle_get_done);
        settle();
        rss2 = rss_kb(o->pids);
    }
    loop(w, now_ns() + (uint64_t) (o->secs * 1e9), NULL);
    for (int i = 0; i < n; i++)
        if (w->conns[i].state == KB_S_HELD)
            alive++;
    printf("kbench label=%s mode=idle via=%s tunnels=%d held=%d got=%d "
           "alive_after_hold=%d dropped=%d rss_before_kb=%ld "
           "rss_half_kb=%ld rss_connect_kb=%ld rss_get_kb=%ld "
           "per_tunnel_connect_b=%.0f per_tunnel_get_b=%.0f "
           "marginal_b=%.0f hold_s=%.1f\n",
           o->label, o->proxied ? "proxy" : "direct", n, held, w->got, alive,
           w->dropped, rss0, rssh, rss1, rss2,
           held ? (double) (rss1 - rss0) * 1024.0 / held : 0.0,
           (o->idle_get && w->got) ? (double) (rss2 - rss0) * 1024.0 / w->got
                                   : 0.0,
           held > heldh ? (double) (rss1 - rssh) * 1024.0 / (held - heldh)
                        : 0.0,
           o->secs);
    for (int i = 0; i < n; i++)
        conn_close(&w->conns[i]);
    return held > 0 ? 0 : 1;
}

/* ---- main ------------------------------------------------------------------- */

static int
parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[128];
    const char *colon, *port;
    struct addrinfo hints, *res;
    size_t hl;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (rb == NULL || rb[1] != ':')
            return -1;
        hl = (size_t) (rb - s - 1);
        s++;
        port = rb + 2;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t) (colon - s);
        port = colon + 1;
    }
    if (hl == 0 || hl >= sizeof host)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void
usage(void)
{
    fputs(
"usage: kbench MODE [-x PROXY | -o ORIGIN] [options]\n"
"  MODE      tunnels | forward | denied | bulk | idle\n"
"  -x A:P    proxy address (numeric); without it the run is direct\n"
"  -o A:P    origin address for direct runs (numeric)\n"
"  -H H:P    authority written into CONNECT / URL / Host (origin.test:18080)\n"
"  -u PATH   request path (/; bulk /big; denied direct /deny)\n"
"  -c N      concurrent connections (64; bulk 1; idle: tunnels to open)\n"
"  -d SECS   measured duration (5; idle: how long to hold)\n"
"  -w SECS   warm-up before measuring (1; bulk 1)\n"
"  -T N      threads (1; bulk and idle always 1)\n"
"  -s CODE   expected final status (200; denied 403)\n"
"  -P PIDS   idle: comma-separated pids whose VmRSS is summed\n"
"            (idle -o: plain connections, e.g. through a TCP relay)\n"
"  -G        idle: do not GET through each tunnel\n"
"  -l LABEL  label printed in the result line\n"
"  -n N      make exactly N units, one connection, no warm-up, no time\n"
"            limit (bulk: N whole GETs); for instruction counts per unit\n", stderr);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;

    return x < y ? -1 : x > y;
}

static double
pct_us(const uint32_t *v, size_t n, double p)
{
    if (n == 0)
        return 0.0;
    return v[(size_t) (p * (double) (n - 1))] / 1000.0;
}

static int
build_requests(struct kb_worker *w, const struct kb_opts *o)
{
    int n;

    n = snprintf(w->connect_req, sizeof w->connect_req,
                 "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
                 o->authority, o->authority);
    if (n < 0 || (size_t) n >= sizeof w->connect_req)
        return -1;
    w->connect_len = (size_t) n;
    if (o->mode == KB_FORWARD && o->proxied)
        n = snprintf(w->get_req, sizeof w->get_req,
                     "GET http://%s%s HTTP/1.1\r\nHost: %s\r\n"
                     "User-Agent: kbench\r\nAccept: */*\r\n\r\n",
                     o->authority, o->path, o->authority);
    else
        n = snprintf(w->get_req, sizeof w->get_req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\n"
                     "User-Agent: kbench\r\nAccept: */*\r\n\r\n",
                     o->path, o->authority);
    if (n < 0 || (size_t) n >= sizeof w->get_req)
        return -1;
    w->get_len = (size_t) n;
    return 0;
}

static void
workers_free(struct kb_worker *ws, int n)
{
    for (int i = 0; i < n; i++) {
        if (ws[i].ep >= 0)
            close(ws[i].ep);
        free(ws[i].conns);
        free(ws[i].lat);
    }
    free(ws);
}

int
main(int argc, char **argv)
{
    static const char *modes[] = { "tunnels", "forward", "denied", "bulk",
                                   "idle" };
    struct kb_opts o;
    struct kb_worker *ws;
    const char *xarg = NULL, *oarg = NULL;
    struct rlimit rl;
    uint64_t t0, ok = 0, err = 0, bytes = 0, reconn = 0;
    size_t nlat = 0;
    uint32_t *lat;
    int opt, cset = 0, wset = 0, sset = 0;
    double window, cpu_s = 0;

    if (argc < 2) {
        usage();
        return 2;
    }
    memset(&o, 0, sizeof o);
    o.mode = -1;
    for (int i = 0; i < 5; i++)
        if (strcmp(argv[1], modes[i]) == 0)
            o.mode = i;
    if (o.mode < 0) {
        usage();
        return 2;
    }
    o.authority = "origin.test:18080";
    o.path = NULL;
    o.conc = 64;
    o.secs = 5;
    o.warm = 1;
    o.threads = 1;
    o.expect = 200;
    o.label = "-";
    o.idle_get = 1;
    optind = 2;
    while ((opt = getopt(argc, argv, "x:o:H:u:c:d:w:T:s:P:Gl:n:")) != -1) {
        switch (opt) {
        case 'x': xarg = optarg; break;
        case 'o': oarg = optarg; break;
        case 'H': o.authority = optarg; break;
        case 'u': o.path = optarg; break;
        case 'c': o.conc = (int) strtol(optarg, NULL, 10); cset = 1; break;
        case 'd': o.secs = strtod(optarg, NULL); break;
        case 'w': o.warm = strtod(optarg, NULL); wset = 1; break;
        case 'T': o.threads = (int) strtol(optarg, NULL, 10); break;
        case 's': o.expect = (int) strtol(optarg, NULL, 10); sset = 1; break;
        case 'P': o.pids = optarg; break;
        case 'G': o.idle_get = 0; break;
        case 'l': o.label = optarg; break;
        case 'n': o.count = strtoull(optarg, NULL, 10); break;
        default: usage(); return 2;
        }
    }
    (void) wset;
    if ((xarg == NULL) == (oarg == NULL)) {
        fputs("kbench: give exactly one of -x PROXY or -o ORIGIN\n", stderr);
        return 2;
    }
    o.proxied = xarg != NULL;
    if (parse_addr(o.proxied ? xarg : oarg, &o.dst, &o.dstlen) < 0) {
        fprintf(stderr, "kbench: bad numeric address %s\n",
                o.proxied ? xarg : oarg);
        return 2;
    }
    if (o.mode == KB_BULK) {
        if (!cset)
            o.conc = 1;
        o.threads = 1;
    }
    if (o.mode == KB_IDLE)
        o.threads = 1;
    if (o.mode == KB_DENIED && !sset)
        o.expect = 403;
    if (o.path == NULL)
        o.path = o.mode == KB_BULK ? "/big"
               : (o.mode == KB_DENIED && !o.proxied) ? "/deny" : "/";
    if (o.conc < 1 || o.threads < 1 || o.threads > KB_MAX_THREADS
        || o.secs <= 0 || o.warm < 0) {
        usage();
        return 2;
    }
    if (o.threads > o.conc)
        o.threads = o.conc;
    if (o.count > 0) {
        if (o.mode == KB_IDLE) {
            usage();
            return 2;
        }
        /* one unit at a time, so exactly N are made and none is cut off */
        o.conc = 1;
        o.threads = 1;
        o.warm = 0;
        o.secs = 3600;
    }

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    ws = calloc((size_t) o.threads, sizeof *ws);
    if (ws == NULL)
        return 1;
    t0 = now_ns();
    for (int i = 0; i < o.threads; i++) {
        struct kb_worker *w = &ws[i];

        w->o = &o;
        w->nconn = o.conc / o.threads + (i < o.conc % o.threads);
        w->conns = calloc((size_t) w->nconn, sizeof *w->conns);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->conns == NULL || w->ep < 0 || build_requests(w, &o) < 0) {
            fputs("kbench: out of memory or request too long\n", stderr);
            return 1;
        }
        for (int j = 0; j < w->nconn; j++) {
            w->conns[j].fd = -1;
            w->conns[j].w = w;
        }
        w->warm_end = t0 + (uint64_t) (o.warm * 1e9);
        w->end = w->warm_end + (uint64_t) (o.secs * 1e9);
    }
    if (o.mode == KB_IDLE) {
        int rc = run_idle(&ws[0], &o);
        workers_free(ws, o.threads);
        return rc;
    }

    for (int i = 0; i < o.threads; i++)
        if (pthread_create(&ws[i].tid, NULL, worker_run, &ws[i]) != 0) {
            fputs("kbench: pthread_create failed\n", stderr);
            return 1;
        }
    for (int i = 0; i < o.threads; i++) {
        pthread_join(ws[i].tid, NULL);
        ok += ws[i].ok;
        err += ws[i].err;
        bytes += ws[i].bytes;
        reconn += ws[i].reconn;
        nlat += ws[i].nlat;
    }
    lat = malloc((nlat ? nlat : 1) * sizeof *lat);
    if (lat == NULL)
        return 1;
    nlat = 0;
    for (int i = 0; i < o.threads; i++) {
        if (ws[i].nlat)
            memcpy(lat + nlat, ws[i].lat, ws[i].nlat * sizeof *lat);
        nlat += ws[i].nlat;
    }
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    window = o.count > 0 ? (double) (now_ns() - t0) / 1e9 : o.secs;
    /* kbench's own CPU (user + system, warm-up included): run-proxy -C
       charges each process of a run its share per unit */
    {
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) == 0)
            cpu_s = (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
                    + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    }
    printf("kbench label=%s mode=%s via=%s c=%d threads=%d secs=%.2f ok=%llu "
           "err=%llu reconn=%llu rate=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "max_us=%.1f bytes=%llu MBps=%.1f cpu_s=%.3f\n",
           o.label, modes[o.mode], o.proxied ? "proxy" : "direct", o.conc,
           o.threads, window, (unsigned long long) ok,
           (unsigned long long) err, (unsigned long long) reconn,
           (double) ok / window,
           pct_us(lat, nlat, 0.50), pct_us(lat, nlat, 0.90),
           pct_us(lat, nlat, 0.99), nlat ? lat[nlat - 1] / 1000.0 : 0.0,
           (unsigned long long) bytes, (double) bytes / window / 1e6, cpu_s);
    fflush(stdout);
    free(lat);
    workers_free(ws, o.threads);
    return ok > 0 || bytes > 0 ? 0 : 1;
}
