/*
 * kapd_http_server.c -- the HTTP/1.1 server layer (kap_http_server.h):
 * one connection's reading, request framing, exchanges, output queue,
 * timeouts and close.  Response formatting is kapd_http_response.c; the
 * lingering close is kapd_linger.c.
 *
 * Shape of a connection (struct srv, in c->pool):
 *   in    bytes read and not yet consumed: the current request's head and
 *         body, and pipelined requests behind it
 *   out   bytes queued for the client (bounded by the producer seeing
 *         KAP_AGAIN over high_water)
 *   ex    the exchange being answered, or NULL; while it is alive no
 *         further request is parsed, so responses keep request order
 * Every loop callback brackets its work with ENTER/LEAVE; srv_close()
 * only marks the connection while a callback is on the stack and the
 * last LEAVE closes it, so no code touches a freed connection.  Calls
 * from the module outside our callbacks (an answer that came later) run
 * the same way: they enter, act, and leave.
 */
#include "kapd.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <kapd/kap_http_server.h>
#include <kapd/kap_tls.h>

#define SRV_READ        16384          /* bytes asked per read */
#define SRV_BACKLOG     65536          /* pipelined bytes read ahead */
#define SRV_FLUSH_NOW   16384          /* queued bytes sent at once */

enum srv_state {
    SV_HEAD = 0,       /* waiting for / reading a request head */
    SV_BODY,           /* reading a request body */
    SV_EX,             /* an exchange is alive */
    SV_FLUSH,          /* the last response is queued: flush, then end */
    SV_TLS             /* TLS handshake */
};

/* how a connection ends after its last response is flushed */
enum { END_KEEP = 0, END_CLOSE, END_LINGER_CHECK, END_LINGER };

struct srv {
    struct kap_conn             *c;
    struct kap_http_server_conf  cf;
    kap_http_handler_fn          handler;
    void                        *hdata;
    struct kap_tls              *tls;       /* NULL: plain socket */
    ev_io                        rd, wr;    /* plain socket only */
    ev_timer                     timer;
    ev_timer                     kick;      /* TLS: read again from the loop */
    struct kap_buf               in, out;
    int                          state;
    int                          end;       /* END_* after the flush */
    struct kap_http_req         *req;       /* parser over in (pool) */
    struct kap_http_chunked      ch;
    size_t                       body_at;   /* chunked: bytes of in read */
    struct kap_buf               body;      /* decoded request body */
    struct kap_http_ex          *ex;
    double                       since;     /* state's clock start */
    double                       head_since;/* first byte of this head */
    double                       progress;  /* last byte sent */
    int                          depth, closing;
    int                          rd_eof, failed, reading;
    int                          tls_wants_write;
    int                          tls_armed; /* a read said KAP_AGAIN */
    unsigned                     nreq;
};

struct kap_http_ex {
    struct srv          *s;
    struct kap_pool     *pool;
    struct kap_http_req *req;       /* parsed again over head (pool) */
    char                *head;
    char                *body;
    size_t               body_len;
    struct kap_buf       hdrs;      /* "Name: value\r\n" lines added */
    int                  started;   /* head queued */
    int                  chunked;   /* 1: chunked; 0 with started: raw */
    int                  head_only; /* HEAD: no body bytes */
    int                  keep;
    int                  wants_drain;
    int                  raw;       /* upgraded: bytes go to on_data */
    int                  held;      /* raw: on_data paused (raw_hold) */
    kap_http_ex_fn       on_abort, on_drain;
    void                *abort_data, *drain_data;
    kap_http_ex_data_fn  on_data;
    void                *data_data;
};

static void srv_run(struct srv *s);
static void srv_close(struct srv *s);
static int  ex_after_write(struct kap_http_ex *ex, int rc);

/* s->closing: how the connection ends when the last frame leaves */
enum { CL_NO = 0, CL_CLOSE, CL_LINGER, CL_LINGER_CHECK };

#define ENTER(s) ((s)->depth++)
#define LEAVE(s) srv_leave(s)

/* the last frame on the stack ends the connection when it was asked to;
   s is gone afterwards */
static void
srv_leave(struct srv *s)
{
    struct kap_conn *c = s->c;

    if (--s->depth > 0 || s->closing == CL_NO)
        return;
    if (s->closing == CL_CLOSE)
        kap_conn_close(c);
    else
        kap_conn_linger(c, s->closing == CL_LINGER_CHECK);
}

/* ---- the exchange's end --------------------------------------------------- */

static void
ex_free(struct kap_http_ex *ex)
{
    struct srv *s = ex->s;

    if (s->ex == ex)
        s->ex = NULL;
    kap_buf_free(&ex->hdrs);
    kap_pool_destroy(ex->pool);     /* ex lives in it */
}

/* the client is gone before the response ended: tell the module, drop ex */
static void
ex_abort(struct srv *s)
{
    struct kap_http_ex *ex = s->ex;

    if (ex == NULL)
        return;
    s->ex = NULL;
    if (ex->on_abort != NULL)
        ex->on_abort(ex, ex->abort_data);
    ex_free(ex);
}

/* the response is complete in out: drop ex, then flush and go on */
static void
ex_done(struct kap_http_ex *ex)
{
    struct srv *s = ex->s;

    if (!ex->keep && s->end == END_KEEP)
        s->end = END_LINGER_CHECK;  /* pipelined bytes may be unread */
    ex_free(ex);
    s->state = SV_FLUSH;
    srv_run(s);
}

/* ---- connection close and cleanup ----------------------------------------- */

static void
srv_cleanup(void *data)
{
    struct srv *s = data;

    ev_io_stop(kap_loop(), &s->rd);
    ev_io_stop(kap_loop(), &s->wr);
    ev_timer_stop(kap_loop(), &s->timer);
    ev_timer_stop(kap_loop(), &s->kick);
    ex_abort(s);                    /* kapd closing it: the module hears */
    kap_buf_free(&s->in);
    kap_buf_free(&s->out);
    kap_buf_free(&s->body);
}

/* stop everything; the connection ends (close or linger) when the last
   frame leaves.  Always called inside a frame (ENTER). */
static void
srv_close_as(struct srv *s, int how)
{
    if (s->closing)
        return;
    s->closing = how;
    ev_io_stop(kap_loop(), &s->rd);
    ev_io_stop(kap_loop(), &s->wr);
    ev_timer_stop(kap_loop(), &s->timer);
    ev_timer_stop(kap_loop(), &s->kick);
}

static void
srv_close(struct srv *s)
{
    srv_close_as(s, CL_CLOSE);
}

/* the last response is in the kernel: close, linger, or (TLS) say
   close_notify first */
static void
srv_end(struct srv *s)
{
    if (s->tls != NULL) {
        ev_timer_stop(kap_loop(), &s->timer);
        s->state = SV_FLUSH;
        s->end = END_CLOSE;
        if (kap_tls_shutdown(s->tls) != KAP_AGAIN)
            srv_close(s);           /* else done() closes */
        return;
    }
    srv_close_as(s, s->end == END_CLOSE ? CL_CLOSE
                    : s->end == END_LINGER ? CL_LINGER : CL_LINGER_CHECK);
}

/* ---- I/O ------------------------------------------------------------------ */

/* read what is there into in; KAP_OK (read or would block), KAP_DONE (EOF)
   or KAP_ERROR */
static int
srv_read(struct srv *s)
{
    ssize_t n;

    for (;;) {
        if (kap_buf_reserve(&s->in, SRV_READ) != KAP_OK)
            return KAP_ERROR;
        if (s->tls != NULL) {
            /* until KAP_AGAIN: bytes OpenSSL holds do not wake the loop */
            n = kap_tls_read(s->tls, s->in.data + s->in.len,
                             kap_buf_room(&s->in));
            if (n == KAP_AGAIN) {
                s->tls_armed = 1;
                return KAP_OK;
            }
            if (n < 0)
                return KAP_ERROR;
        } else {
            n = recv(s->c->fd, s->in.data + s->in.len,
                     kap_buf_room(&s->in), 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return KAP_OK;
                return KAP_ERROR;
            }
        }
        if (n == 0)
            return KAP_DONE;
        kap_buf_added(&s->in, (size_t) n);
        if (kap_buf_used(&s->in) >= SRV_BACKLOG)
            return KAP_OK;
        if ((size_t) n < SRV_READ && s->tls == NULL)
            return KAP_OK;
    }
}

/* send what out holds; KAP_OK (all sent), KAP_AGAIN or KAP_ERROR */
static int
srv_flush(struct srv *s)
{
    ssize_t n;

    while (kap_buf_used(&s->out) > 0) {
        const char *p = s->out.data + s->out.off;
        size_t len = kap_buf_used(&s->out);

        if (s->tls != NULL) {
            n = kap_tls_write(s->tls, p, len);
            if (n == KAP_AGAIN) {
                s->tls_wants_write = 1;
                return KAP_AGAIN;
            }
            if (n <= 0)
                return KAP_ERROR;
        } else {
            n = send(s->c->fd, p, len, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                    return KAP_AGAIN;
                return KAP_ERROR;
            }
        }
        kap_buf_consume(&s->out, (size_t) n);
        s->progress = kap_now();
    }
    return KAP_OK;
}

/* ---- requests --------------------------------------------------------------- */

/* a local error before (or instead of) an exchange; the connection ends */
static void
srv_refuse(struct srv *s, int status, const char *why, int end)
{
    s->end = end;
    if (kap_http_error_page(&s->out, status, why, s->cf.error_format, 0)
        != KAP_OK)
        s->end = END_CLOSE;
    KAP_LOG(KAP_LOG_INFO, s->cf.module, s->c->id, "%s: %d %s",
            s->c->peer_text, status, why);
    s->state = SV_FLUSH;
}

/* a complete request: make its exchange and call the handler */
static void
srv_dispatch(struct srv *s, size_t head_len, size_t consumed)
{
    struct kap_http_ex *ex;
    struct kap_pool *p = kap_pool_create();
    int rc;

    ex = p ? kap_palloc(p, sizeof(*ex)) : NULL;
    if (ex != NULL) {
        ex->pool = p;
        ex->s = s;
        ex->head = kap_pstrndup(p, s->in.data + s->in.off, head_len);
        ex->req = kap_palloc(p, sizeof(*ex->req));
        ex->body_len = s->body.len;
        ex->body = kap_pstrndup(p, s->body.data ? s->body.data : "",
                                s->body.len);
    }
    if (ex == NULL || ex->head == NULL || ex->req == NULL || ex->body == NULL) {
        kap_pool_destroy(p);
        srv_refuse(s, 503, "out of memory", END_CLOSE);
        return;
    }
    /* the head again over the exchange's own copy: the pointers of the
       result then stay valid while in moves under later reads */
    rc = kap_http_parse_request(ex->req, ex->head, head_len, &s->cf.limits);
    if (rc != KAP_OK) {
        kap_pool_destroy(p);
        srv_refuse(s, 500, "request head changed", END_CLOSE);
        return;
    }
    ex->head_only = ex->req->method.len == 4
                    && memcmp(ex->req->method.data, "HEAD", 4) == 0;
    ex->keep = ex->req->keep_alive;
    kap_buf_consume(&s->in, consumed);
    kap_buf_reset(&s->body);
    s->progress = kap_now();
    s->nreq++;
    s->ex = ex;
    s->state = SV_EX;
    s->handler(ex, s->hdata);       /* may answer, abort, close */
}

/* look for the next request in in: parse the head, gather the body */
static void
srv_parse(struct srv *s)
{
    struct kap_http_req *q = s->req;
    const char *p = s->in.data ? s->in.data + s->in.off : "";
    size_t len = kap_buf_used(&s->in), used;
    struct kap_str data;
    int rc;

    if (s->state == SV_HEAD) {
        if (len == 0)
            return;
        rc = kap_http_parse_request(q, p, len, &s->cf.limits);
        if (rc == KAP_AGAIN)
            return;
        if (rc != KAP_OK) {
            srv_refuse(s, q->status, q->error, END_LINGER_CHECK);
            return;
        }
        if (q->body == KAP_HTTP_BODY_LENGTH
            && q->content_length > s->cf.max_body) {
            srv_refuse(s, 413, "request body too large", END_LINGER);
            return;
        }
        if ((q->upgrade && !(s->cf.upgrade == KAP_HTTP_UPGRADE_BODY
                             || (s->cf.upgrade
                                 && q->body == KAP_HTTP_BODY_NONE
                                 && q->method.len == 3
                                 && memcmp(q->method.data, "GET", 3) == 0)))
            || (q->method.len == 7
                           && memcmp(q->method.data, "CONNECT", 7) == 0)) {
            srv_refuse(s, 501, "not supported here", END_LINGER_CHECK);
            return;
        }
        s->state = SV_BODY;
        s->since = kap_now();
        s->body_at = q->head_len;
        kap_http_chunked_reset(&s->ch);
        kap_buf_reset(&s->body);
        if (q->expect_continue && q->body != KAP_HTTP_BODY_NONE
            && len == q->head_len
            && kap_buf_append(&s->out, "HTTP/1.1 100 Continue\r\n\r\n", 25)
               != KAP_OK) {
            srv_refuse(s, 503, "out of memory", END_CLOSE);
            return;
        }
    }
    /* SV_BODY */
    if (q->body == KAP_HTTP_BODY_NONE) {
        srv_dispatch(s, q->head_len, q->head_len);
        return;
    }
    if (q->body == KAP_HTTP_BODY_LENGTH) {
        if (len - q->head_len < q->content_length)
            return;
        if (kap_buf_append(&s->body, p + q->head_len,
                           (size_t) q->content_length) != KAP_OK) {
            srv_refuse(s, 503, "out of memory", END_CLOSE);
            return;
        }
        srv_dispatch(s, q->head_len,
                     q->head_len + (size_t) q->content_length);
        return;
    }
    /* chunked: decode what has arrived, data spans into body */
    while (s->body_at < len) {
        rc = kap_http_chunked_parse(&s->ch, p + s->body_at,
                                    len - s->body_at, &used, &data);
        s->body_at += used;
        if (rc == KAP_ERROR) {
            srv_refuse(s, 400, s->ch.error, END_LINGER);
            return;
        }
        if (data.len > 0) {
            if (s->body.len + data.len > s->cf.max_body) {
                srv_refuse(s, 413, "request body too large", END_LINGER);
                return;
            }
            if (kap_buf_append(&s->body, data.data, data.len) != KAP_OK) {
                srv_refuse(s, 503, "out of memory", END_CLOSE);
                return;
            }
        }
        if (rc == KAP_OK) {
            srv_dispatch(s, q->head_len, s->body_at);
            return;
        }
        if (used == 0)
            return;
    }
}

/* ---- the driver --------------------------------------------------------------- */

static double
srv_deadline(struct srv *s)
{
    switch (s->state) {
    case SV_HEAD:
        if (kap_buf_used(&s->in) == 0)
            return s->since + (s->nreq ? s->cf.idle_timeout
                                       : s->cf.header_timeout);
        return s->head_since + s->cf.header_timeout;
    case SV_BODY:
        return s->since + s->cf.header_timeout;
    default:
        if (kap_buf_used(&s->out) > 0)
            return s->progress + s->cf.write_timeout;
        return 0;
    }
}

static void
srv_want(struct srv *s, int rd, int wr)
{
    struct ev_loop *loop = kap_loop();

    s->reading = rd;
    if (s->tls != NULL) {
        /* the TLS layer watches the socket and calls readable() after a
           read that said KAP_AGAIN; when reading stopped short of that,
           read again from the loop */
        if (((rd && !s->tls_armed) || (wr && !s->tls_wants_write))
            && !ev_is_active(&s->kick))
            ev_timer_start(loop, &s->kick);
        return;
    }
    if (rd && !ev_is_active(&s->rd))
        ev_io_start(loop, &s->rd);
    else if (!rd && ev_is_active(&s->rd))
        ev_io_stop(loop, &s->rd);
    if (wr && !ev_is_active(&s->wr))
        ev_io_start(loop, &s->wr);
    else if (!wr && ev_is_active(&s->wr))
        ev_io_stop(loop, &s->wr);
}

/* an upgraded exchange: hand what was read to the module */
static void
srv_deliver(struct srv *s)
{
    struct kap_http_ex *ex = s->ex;
    size_t len = kap_buf_used(&s->in);

    if (ex == NULL || !ex->raw || ex->held || len == 0 || s->closing)
        return;
    ex->on_data(ex, s->in.data + s->in.off, len, ex->data_data);
    kap_buf_consume(&s->in, len);   /* in lives until the last LEAVE */
}

/*
 * Do everything that can be done now: parse and dispatch requests, flush
 * output, tell a producer it may go on, end the connection, and set the
 * watchers and the timer for what is left.
 */
static void
srv_run(struct srv *s)
{
    double dl;
    int rc, again;

    if (s->closing || s->depth > 1 || s->state == SV_TLS)
        return;                     /* the outer srv_run goes on */
    do {
        again = 0;
        if (s->failed) {
            ex_abort(s);
            srv_close(s);
            return;
        }
        if (s->state == SV_HEAD || s->state == SV_BODY) {
            if (s->state == SV_HEAD && kap_buf_used(&s->in) > 0
                && s->head_since == 0)
                s->head_since = kap_now();
            srv_parse(s);
            if (s->closing)
                return;
        }
        if (s->state == SV_EX) {
            srv_deliver(s);
            if (s->closing)
                return;
        }
        rc = srv_flush(s);
        if (rc == KAP_ERROR) {
            s->failed = 1;
            again = 1;
            continue;
        }
        if (s->ex && s->ex->wants_drain
            && kap_buf_used(&s->out) <= s->cf.high_water / 2) {
            s->ex->wants_drain = 0;
            if (s->ex->on_drain != NULL) {
                s->ex->on_drain(s->ex, s->ex->drain_data);
                again = 1;          /* it may have written or ended */
                continue;
            }
        }
        if (s->state == SV_FLUSH && rc == KAP_OK) {
            if (s->end != END_KEEP || kap_shutting_down()) {
                srv_end(s);
                return;
            }
            s->state = SV_HEAD;     /* next request, maybe pipelined */
            s->since = kap_now();
            s->head_since = 0;
            kap_http_req_reset(s->req);
            again = kap_buf_used(&s->in) > 0;
        }
    } while (again && !s->closing);

    if (s->state == SV_HEAD && s->rd_eof) {
        srv_close(s);               /* EOF between or within heads */
        return;
    }
    /* read while a request is being gathered, and ahead while an
       exchange runs (to see the client leave), up to the backlog */
    srv_want(s, !s->rd_eof && s->state != SV_FLUSH
                    && kap_buf_used(&s->in) < SRV_BACKLOG,
             kap_buf_used(&s->out) > 0);
    dl = srv_deadline(s);
    ev_timer_stop(kap_loop(), &s->timer);
    if (dl > 0) {
        dl -= kap_now();
        ev_timer_set(&s->timer, dl > 0 ? dl : 0, 0);
        ev_timer_start(kap_loop(), &s->timer);
    }
}

/* readable: read, notice EOF, go on */
static void
srv_readable(struct srv *s)
{
    size_t had = kap_buf_used(&s->in);
    int rc;

    s->tls_armed = 0;               /* a TLS readable() is used up */
    if (!s->reading)
        return;
    rc = srv_read(s);
    if (s->state == SV_BODY && kap_buf_used(&s->in) > had)
        s->since = kap_now();       /* a body times out without progress */
    if (rc == KAP_ERROR) {
        s->failed = 1;
    } else if (rc == KAP_DONE) {
        s->rd_eof = 1;
        if (s->state == SV_EX)
            srv_deliver(s);         /* what came before the EOF first */
        if (s->state == SV_BODY)
            s->failed = 1;          /* cut in the middle of a body */
        else if (s->state == SV_EX)
            s->failed = 1;          /* the client left before its answer */
    }
    srv_run(s);
}

static void
srv_rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct srv *s = w->data;

    (void) loop;
    (void) revents;
    ENTER(s);
    srv_readable(s);
    LEAVE(s);
}

static void
srv_wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct srv *s = w->data;

    (void) loop;
    (void) revents;
    ENTER(s);
    srv_run(s);
    LEAVE(s);
}

static void
srv_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct srv *s = w->data;

    (void) loop;
    (void) revents;
    ENTER(s);
    if (s->reading && !s->tls_armed)
        srv_readable(s);
    else
        srv_run(s);
    LEAVE(s);
}

static void
srv_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct srv *s = w->data;
    double dl;

    (void) loop;
    (void) revents;
    ENTER(s);
    dl = srv_deadline(s);
    if (s->failed || (dl > 0 && dl <= kap_now() + 0.001)) {
        if (s->failed || s->state == SV_EX || s->state == SV_FLUSH) {
            s->failed = 1;
        } else if (kap_buf_used(&s->in) > 0) {
            srv_refuse(s, 408, "request head or body not received in time",
                       END_LINGER);
        } else {
            srv_close(s);           /* idle keep-alive: end quietly */
        }
    }
    srv_run(s);
    LEAVE(s);
}

/* ---- TLS callbacks ------------------------------------------------------------ */

static void
srv_tls_ready(struct kap_tls *t, void *data)
{
    struct srv *s = data;

    (void) t;
    ENTER(s);
    s->state = SV_HEAD;
    s->since = kap_now();
    s->reading = 1;
    srv_readable(s);
    LEAVE(s);
}

static void
srv_tls_readable(struct kap_tls *t, void *data)
{
    struct srv *s = data;

    (void) t;
    ENTER(s);
    srv_readable(s);
    LEAVE(s);
}

static void
srv_tls_writable(struct kap_tls *t, void *data)
{
    struct srv *s = data;

    (void) t;
    ENTER(s);
    s->tls_wants_write = 0;
    srv_run(s);
    LEAVE(s);
}

static void
srv_tls_done(struct kap_tls *t, int rc, void *data)
{
    struct srv *s = data;

    (void) t;
    (void) rc;
    ENTER(s);
    s->failed = 1;
    ex_abort(s);
    srv_close(s);
    LEAVE(s);
}

static const struct kap_tls_handler srv_tls_handler = {
    srv_tls_ready, srv_tls_readable, srv_tls_writable, srv_tls_done
};

/* ---- start ---------------------------------------------------------------------- */

static struct srv *
srv_new(struct kap_conn *c, const struct kap_http_server_conf *conf,
        kap_http_handler_fn handler, void *data)
{
    struct srv *s = kap_palloc(c->pool, sizeof(*s));

    if (s == NULL || (s->req = kap_palloc(c->pool, sizeof(*s->req))) == NULL
        || kap_pool_cleanup_add(c->pool, srv_cleanup, s) != KAP_OK) {
        KAP_LOG(KAP_LOG_ERR, conf->module, c->id, "out of memory");
        kap_conn_close(c);
        return NULL;
    }
    s->c = c;
    s->cf = *conf;
    if (s->cf.module == NULL)
        s->cf.module = "http";
    if (s->cf.header_timeout <= 0)
        s->cf.header_timeout = KAP_HTTP_SERVER_HEADER_TIMEOUT;
    if (s->cf.idle_timeout <= 0)
        s->cf.idle_timeout = KAP_HTTP_SERVER_IDLE_TIMEOUT;
    if (s->cf.write_timeout <= 0)
        s->cf.write_timeout = KAP_HTTP_SERVER_WRITE_TIMEOUT;
    if (s->cf.max_body == 0)
        s->cf.max_body = KAP_HTTP_SERVER_MAX_BODY;
    if (s->cf.high_water == 0)
        s->cf.high_water = KAP_HTTP_SERVER_HIGH_WATER;
    if (s->cf.max_connections == 0)
        s->cf.max_connections = KAP_HTTP_SERVER_MAX_CONNS;
    s->handler = handler;
    s->hdata = data;
    s->since = s->progress = kap_now();
    ev_io_init(&s->rd, srv_rd_cb, c->fd, EV_READ);
    s->rd.data = s;
    ev_io_init(&s->wr, srv_wr_cb, c->fd, EV_WRITE);
    s->wr.data = s;
    ev_init(&s->timer, srv_timer_cb);
    s->timer.data = s;
    ev_timer_init(&s->kick, srv_kick_cb, 0, 0);
    s->kick.data = s;
    return s;
}

/* over the module's connection limits?  0, or the status to refuse with
   (logged); the connection then closes at once: a lingering connection
   would count against the limit it is refused by */
static int
srv_over_limit(struct srv *s)
{
    struct kap_conn *c = s->c;

    if (kap_conn_count(s->cf.module) > s->cf.max_connections) {
        KAP_LOG(KAP_LOG_WARN, s->cf.module, c->id,
                "max_connections (%u) reached, refusing %s",
                s->cf.max_connections, c->peer_text);
        return 503;
    }
    if (s->cf.max_per_client > 0
        && kap_conn_count_peer(s->cf.module, &c->peer)
               > s->cf.max_per_client) {
        KAP_LOG(KAP_LOG_WARN, s->cf.module, c->id,
                "max_per_client (%u) reached for %s", s->cf.max_per_client,
                c->peer_text);
        return 429;
    }
    return 0;
}

int
kap_http_server_start(struct kap_conn *c,
                      const struct kap_http_server_conf *conf,
                      kap_http_handler_fn handler, void *data)
{
    struct srv *s;

    if (c == NULL || conf == NULL || handler == NULL)
        return KAP_ERROR;
    if ((s = srv_new(c, conf, handler, data)) == NULL)
        return KAP_ERROR;
    s->state = SV_HEAD;
    ENTER(s);
    switch (srv_over_limit(s)) {
    case 503:
        srv_refuse(s, 503, "too many connections", END_CLOSE);
        break;
    case 429:
        srv_refuse(s, 429, "too many connections from this client",
                   END_CLOSE);
        break;
    }
    srv_run(s);
    LEAVE(s);
    return KAP_OK;
}

int
kap_http_server_start_tls(struct kap_conn *c, struct kap_tls_ctx *ctx,
                          const struct kap_http_server_conf *conf,
                          kap_http_handler_fn handler, void *data)
{
    struct srv *s;

    if (c == NULL || ctx == NULL || conf == NULL || handler == NULL)
        return KAP_ERROR;
    if ((s = srv_new(c, conf, handler, data)) == NULL)
        return KAP_ERROR;
    if (srv_over_limit(s) != 0) {
        kap_conn_close(c);              /* no handshake for a refusal */
        return KAP_ERROR;
    }
    s->state = SV_TLS;
    s->tls = kap_tls_new(ctx, c, &srv_tls_handler, s);
    if (s->tls == NULL) {
        kap_conn_close(c);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- the exchange's API --------------------------------------------------------- */

const struct kap_http_req *
kap_http_ex_req(const struct kap_http_ex *ex)
{
    return ex->req;
}

const char *
kap_http_ex_body(const struct kap_http_ex *ex, size_t *len)
{
    if (len != NULL)
        *len = ex->body_len;
    return ex->body;
}

struct kap_conn *
kap_http_ex_conn(const struct kap_http_ex *ex)
{
    return ex->s->c;
}

struct kap_pool *
kap_http_ex_pool(struct kap_http_ex *ex)
{
    return ex->pool;
}

const char *
kap_http_ex_header(struct kap_http_ex *ex, const char *name)
{
    const struct kap_http_header *h =
        kap_http_header_find(ex->req->headers, ex->req->nheaders, name);

    return h ? kap_pstrndup(ex->pool, h->value.data, h->value.len) : NULL;
}

void
kap_http_ex_on_abort(struct kap_http_ex *ex, kap_http_ex_fn fn, void *data)
{
    ex->on_abort = fn;
    ex->abort_data = data;
}

void
kap_http_ex_on_drain(struct kap_http_ex *ex, kap_http_ex_fn fn, void *data)
{
    ex->on_drain = fn;
    ex->drain_data = data;
}

size_t
kap_http_ex_queued(const struct kap_http_ex *ex)
{
    return kap_buf_used(&ex->s->out);
}

static int
token_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!strchr("!#$%&'*+-.^_`|~", *s)
            && !(*s >= '0' && *s <= '9') && !(*s >= 'a' && *s <= 'z')
            && !(*s >= 'A' && *s <= 'Z'))
            return 0;
    return 1;
}

static int
value_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char) *s < 0x20 && *s != '\t') || *s == 0x7f)
            return 0;
    return 1;
}

int
kap_http_header_add(struct kap_http_ex *ex, const char *name,
                    const char *value)
{
    static const char *const own[] = { "content-length", "transfer-encoding",
                                       "connection", "date", NULL };

    if (ex->started || name == NULL || value == NULL || !token_ok(name)
        || !value_ok(value))
        return KAP_ERROR;
    for (size_t i = 0; own[i]; i++)
        if (strcasecmp(name, own[i]) == 0)
            return KAP_ERROR;
    return kap_buf_printf(&ex->hdrs, "%s: %s\r\n", name, value);
}

/* keep the connection after this response? */
static int
ex_keep(const struct kap_http_ex *ex, int status)
{
    if (!ex->keep || kap_shutting_down() || ex->s->rd_eof)
        return 0;
    return status != 400 && status != 408 && status != 413 && status != 431;
}

/* write the head of a response into out (the exchange's own headers too) */
static int
ex_head(struct kap_http_ex *ex, int status, const char *ctype,
        long long clen, const char *more)
{
    struct kap_buf extra = { 0 };
    int rc = KAP_OK;

    if (ex->hdrs.len)
        rc = kap_buf_append(&extra, ex->hdrs.data, ex->hdrs.len);
    if (rc == KAP_OK && more != NULL)
        rc = kap_buf_append(&extra, more, strlen(more));
    if (rc == KAP_OK)
        rc = kap_http_head_write(&ex->s->out, status, ctype, clen,
                                 extra.data, ex->keep);
    kap_buf_free(&extra);
    ex->started = 1;
    return rc;
}

/* a call from the module: bracket it like a loop callback */
#define EX_ENTER(ex, s) struct srv *s = (ex)->s; ENTER(s)

int
kap_http_respond(struct kap_http_ex *ex, int status, const char *content_type,
                 const void *body, size_t len)
{
    int rc;
    EX_ENTER(ex, s);

    if (ex->started || (body == NULL && len > 0)) {
        kap_http_ex_close(ex);
        LEAVE(s);
        return KAP_ERROR;
    }
    ex->keep = ex_keep(ex, status);
    if (status < 200 || status == 204 || status == 304)
        len = 0;                    /* these never carry a body */
    rc = ex_head(ex, status, content_type,
                 status < 200 || status == 204 ? -1 : (long long) len, NULL);
    if (rc == KAP_OK && !ex->head_only && len > 0)
        rc = kap_buf_append(&s->out, body, len);
    if (rc != KAP_OK) {
        s->end = END_CLOSE;
        s->failed = 1;
    }
    ex_done(ex);
    LEAVE(s);
    return rc;
}

int
kap_http_error(struct kap_http_ex *ex, int status, const char *why)
{
    struct kap_buf body = { 0 };
    int rc;
    EX_ENTER(ex, s);

    if (ex->started) {
        kap_http_ex_close(ex);
        LEAVE(s);
        return KAP_ERROR;
    }
    ex->keep = ex_keep(ex, status);
    rc = kapd_http_error_body(&body, status, why, s->cf.error_format);
    if (rc == KAP_OK)
        rc = ex_head(ex, status, kapd_http_error_type(s->cf.error_format),
                     (long long) body.len, "Cache-Control: no-store\r\n");
    if (rc == KAP_OK && !ex->head_only)
        rc = kap_buf_append(&s->out, body.data, body.len);
    kap_buf_free(&body);
    if (rc != KAP_OK) {
        s->end = END_CLOSE;
        s->failed = 1;
    }
    ex_done(ex);
    LEAVE(s);
    return rc;
}

int
kap_http_stream_start(struct kap_http_ex *ex, int status,
                      const char *content_type)
{
    int rc;
    EX_ENTER(ex, s);

    if (ex->started) {
        LEAVE(s);
        return KAP_ERROR;
    }
    ex->keep = ex_keep(ex, status);
    ex->chunked = ex->req->minor >= 1 && !ex->head_only;
    if (!ex->chunked && !ex->head_only)
        ex->keep = 0;               /* HTTP/1.0: the close ends the body */
    rc = ex_head(ex, status, content_type, -1,
                 ex->chunked ? "Transfer-Encoding: chunked\r\n" : NULL);
    if (rc != KAP_OK)
        s->failed = 1;
    rc = ex_after_write(ex, rc);
    LEAVE(s);
    return rc == KAP_ERROR ? KAP_ERROR : KAP_OK;
}

/* queue bytes of the body (framed when chunked) and report the queue */
static int
ex_queue(struct kap_http_ex *ex, const void *data, size_t len)
{
    struct srv *s = ex->s;
    int rc = KAP_OK;

    if (s->failed || s->closing)
        return KAP_ERROR;
    if (len == 0 || ex->head_only)
        return KAP_OK;
    if (kap_buf_used(&s->out) == 0)
        s->progress = kap_now();    /* the write clock starts now */
    if (ex->chunked)
        rc = kap_buf_printf(&s->out, "%zx\r\n", len);
    if (rc == KAP_OK)
        rc = kap_buf_append(&s->out, data, len);
    if (rc == KAP_OK && ex->chunked)
        rc = kap_buf_append(&s->out, "\r\n", 2);
    if (rc != KAP_OK) {
        s->failed = 1;
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* after queueing: send, and report whether the producer should wait */
static int
ex_after_write(struct kap_http_ex *ex, int rc)
{
    struct srv *s = ex->s;

    if (rc != KAP_OK) {
        ev_timer_stop(kap_loop(), &s->timer);   /* abort from the loop */
        ev_timer_set(&s->timer, 0, 0);
        ev_timer_start(kap_loop(), &s->timer);
        return KAP_ERROR;
    }
    /* small writes are coalesced: the write watcher sends them on the
       next loop iteration, in one send() */
    if (kap_buf_used(&s->out) >= SRV_FLUSH_NOW && srv_flush(s) == KAP_ERROR) {
        s->failed = 1;
        return ex_after_write(ex, KAP_ERROR);
    }
    if (kap_buf_used(&s->out) > s->cf.high_water) {
        ex->wants_drain = 1;
        srv_want(s, s->reading, 1);
        if (!ev_is_active(&s->timer)) {
            ev_timer_set(&s->timer, s->cf.write_timeout, 0);
            ev_timer_start(kap_loop(), &s->timer);
        }
        return KAP_AGAIN;
    }
    if (kap_buf_used(&s->out) > 0)
        srv_want(s, s->reading, 1);
    return KAP_OK;
}

int
kap_http_stream_write(struct kap_http_ex *ex, const void *data, size_t len)
{
    int rc;
    EX_ENTER(ex, s);

    rc = ex->started ? ex_queue(ex, data, len) : KAP_ERROR;
    rc = ex_after_write(ex, rc);
    LEAVE(s);
    return rc;
}

int
kap_http_stream_end(struct kap_http_ex *ex)
{
    int rc = KAP_OK;
    EX_ENTER(ex, s);

    if (!ex->started) {
        kap_http_ex_close(ex);
        LEAVE(s);
        return KAP_ERROR;
    }
    if (ex->chunked && !s->failed)
        rc = kap_buf_append(&s->out, "0\r\n\r\n", 5);
    if (rc != KAP_OK)
        s->failed = 1;
    ex_done(ex);
    LEAVE(s);
    return rc;
}

int
kap_http_sse_start(struct kap_http_ex *ex)
{
    if (ex->started || kap_http_header_add(ex, "Cache-Control", "no-store")
                           != KAP_OK)
        return KAP_ERROR;
    return kap_http_stream_start(ex, 200, "text/event-stream");
}

int
kap_http_sse_event(struct kap_http_ex *ex, const char *event, const char *id,
                   const void *data, size_t len)
{
    struct kap_buf ev = { 0 };
    int rc;
    EX_ENTER(ex, s);

    if (!ex->started) {
        LEAVE(s);
        return KAP_ERROR;
    }
    rc = kap_http_sse_frame(&ev, event, id, data, len);
    if (rc != KAP_OK) {
        kap_buf_free(&ev);
        LEAVE(s);
        return KAP_ERROR;           /* a bad field: nothing was written */
    }
    rc = ex_after_write(ex, ex_queue(ex, ev.data, ev.len));
    kap_buf_free(&ev);
    LEAVE(s);
    return rc;
}

int
kap_http_sse_comment(struct kap_http_ex *ex, const char *text)
{
    struct kap_buf line = { 0 };
    int rc;
    EX_ENTER(ex, s);

    if (!ex->started || text == NULL || strpbrk(text, "\r\n") != NULL
        || kap_buf_printf(&line, ":%s\n\n", text) != KAP_OK) {
        kap_buf_free(&line);
        LEAVE(s);
        return KAP_ERROR;
    }
    rc = ex_after_write(ex, ex_queue(ex, line.data, line.len));
    kap_buf_free(&line);
    LEAVE(s);
    return rc;
}

void
kap_http_ex_close(struct kap_http_ex *ex)
{
    EX_ENTER(ex, s);

    s->ex = NULL;
    ex_free(ex);
    s->end = END_CLOSE;
    srv_close(s);
    LEAVE(s);
}

/* ---- protocol upgrade --------------------------------------------------------- */

int
kap_http_upgrade(struct kap_http_ex *ex, const char *protocol,
                 kap_http_ex_data_fn on_data, void *udata)
{
    int rc;
    EX_ENTER(ex, s);

    if (ex->started || !ex->req->upgrade || !s->cf.upgrade || on_data == NULL
        || protocol == NULL || !token_ok(protocol)) {
        kap_http_ex_close(ex);
        LEAVE(s);
        return KAP_ERROR;
    }
    ex->started = 1;
    ex->raw = 1;
    ex->keep = 0;
    ex->chunked = 0;
    ex->head_only = 0;
    ex->on_data = on_data;
    ex->data_data = udata;
    rc = kap_buf_printf(&s->out, "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: %s\r\nConnection: Upgrade\r\n", protocol);
    if (rc == KAP_OK && ex->hdrs.len > 0)
        rc = kap_buf_append(&s->out, ex->hdrs.data, ex->hdrs.len);
    if (rc == KAP_OK)
        rc = kap_buf_append(&s->out, "\r\n", 2);
    if (rc != KAP_OK)
        s->failed = 1;
    rc = ex_after_write(ex, rc);    /* failing: on_abort from the loop */
    if (rc != KAP_ERROR && kap_buf_used(&s->in) > 0) {
        /* bytes behind the head: delivered from the loop, not from
           inside the handler */
        ev_timer_stop(kap_loop(), &s->kick);
        ev_timer_set(&s->kick, 0, 0);
        ev_timer_start(kap_loop(), &s->kick);
    }
    LEAVE(s);
    return KAP_OK;
}

int
kap_http_raw_hold(struct kap_http_ex *ex, int hold)
{
    struct srv *s = ex->s;

    if (!ex->raw)
        return KAP_ERROR;
    ex->held = hold != 0;
    if (!ex->held && !s->closing) {
        /* what waits (and reading on) from the loop, not from inside the
           caller, which may be on_data itself */
        ev_timer_stop(kap_loop(), &s->kick);
        ev_timer_set(&s->kick, 0, 0);
        ev_timer_start(kap_loop(), &s->kick);
    }
    return KAP_OK;
}

int
kap_http_raw_write(struct kap_http_ex *ex, const void *data, size_t len)
{
    /* an upgraded exchange is a started, unchunked stream */
    return ex->raw ? kap_http_stream_write(ex, data, len) : KAP_ERROR;
}

int
kap_http_raw_end(struct kap_http_ex *ex)
{
    EX_ENTER(ex, s);

    if (!ex->raw) {
        kap_http_ex_close(ex);
        LEAVE(s);
        return KAP_ERROR;
    }
    /* a lingering close: the client may still be sending (cli's stdin
       that nobody reads); a plain close would reset the connection and
       could destroy the last bytes before the client read them */
    s->end = END_LINGER_CHECK;
    ex_done(ex);
    LEAVE(s);
    return KAP_OK;
}
