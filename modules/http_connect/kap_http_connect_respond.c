/*
 * kap_http_connect_respond.c -- local answers (403, 400, 502, ...) written to
 * the client, and the lingering close after the last one.
 * Part of the http_connect module (kap_http_connect.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kap_http_connect.h"

/* ---- client output and local responses ------------------------------------ */

/* write as much of b as possible to fd; KAP_OK, KAP_AGAIN (more left) or
   KAP_ERROR */
int
kap_http_connect_flush_buf(int fd, struct hc_buf *b, struct hc *hc)
{
    while (kap_http_connect_buf_used(b)) {
        ssize_t n = send(fd, b->p + b->off, kap_http_connect_buf_used(b),
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return KAP_AGAIN;
            return KAP_ERROR;
        }
        b->off += (size_t)n;
        hc->last_active = kap_now();
    }
    b->off = b->len = 0;
    return KAP_OK;
}

/* for a local answer that ends the connection: is a body still coming? */
static int
linger_mode(const struct hc *hc)
{
    const struct kap_http_req *q = hc->req;
    size_t in = kap_http_connect_buf_used(&hc->cin), head;

    if (hc->state == S_FORWARD)             /* a 502 while forwarding */
        return hc->q_done ? HC_CLOSE_CHECK : HC_CLOSE_LINGER;
    if (q == NULL || q->body == KAP_HTTP_BODY_NONE)
        return HC_CLOSE_CHECK;
    /* refused before its body: lingers, unless all of it is read */
    head = hc->head_skipped ? 0 : q->head_len;
    if (q->body == KAP_HTTP_BODY_LENGTH && in >= head &&
        in - head >= q->content_length)
        return HC_CLOSE_CHECK;
    return HC_CLOSE_LINGER;
}

/* queue a local response; the connection is closed after it unless keep */
void
kap_http_connect_respond(struct hc *hc, int status, const char *body, int keep)
{
    char head[512];
    size_t blen = strlen(body);

    if (hc->req && hc->req->body != KAP_HTTP_BODY_NONE)
        keep = 0;               /* the request body was not consumed */
    if (!hc->client_ka || kap_shutting_down())
        keep = 0;
    snprintf(head, sizeof(head),
             "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Length: %zu\r\nCache-Control: no-store\r\n"
             "Connection: %s\r\n\r\n",
             status, kap_http_reason(status), blen,
             keep ? "keep-alive" : "close");
    if (kap_http_connect_buf_str(&hc->cout, head) != KAP_OK ||
        kap_http_connect_buf_add(&hc->cout, body, blen) != KAP_OK) {
        kap_http_connect_close(hc);
        return;
    }
    if (hc->req && keep) {
        /* drop the answered head; pipelined bytes stay in cin */
        hc->cin.off += hc->req->head_len;
    }
    hc->respond_close = keep ? 0 : linger_mode(hc);
    hc->state = S_RESPOND;
    kap_http_connect_run(hc);
}

void
kap_http_connect_respond_error(struct hc *hc, int status, const char *why)
{
    char body[512];

    snprintf(body, sizeof(body), "kap: %s\n", why);
    kap_http_connect_respond(hc, status, body, 0);
}

/* ---- lingering close ---------------------------------------------------------- */

/*
 * close() with unread bytes in the receive queue makes the kernel send an
 * RST, which can overtake the response just written, and a client still
 * sending its body gets a reset on send before it reads the answer.  So
 * once the last response is flushed: shutdown(SHUT_WR) (the client gets
 * the response and an EOF), then read and discard what the client still
 * sends until its EOF, HC_LINGER_TIMEOUT without data, HC_LINGER_TIME in
 * all or HC_LINGER_BYTES, and close.  A lingering connection does no
 * protocol work and emits no audit event; it still counts as a
 * connection (max_connections, max_per_client, the shutdown grace), so a
 * connection over either limit closes at once instead.
 */
#define HC_LINGER_TIMEOUT 2.0                  /* s without data */
#define HC_LINGER_TIME    10.0                 /* s in all */
#define HC_LINGER_BYTES   (4 * 1024 * 1024)    /* discarded at most */
#define HC_LINGER_READS   8                    /* reads per wake-up */

static char linger_sink[16384];               /* discarded bytes land here */

/* may this connection stay open to linger? not when over a limit */
static int
linger_allowed(const struct hc *hc)
{
    const struct hc_conf *cf = hc->conf;

    if (kap_conn_count(HC_NAME) > (unsigned)cf->max_connections)
        return 0;
    return cf->max_per_client <= 0 ||
           kap_conn_count_peer(HC_NAME, &hc->c->peer)
               <= (unsigned)cf->max_per_client;
}

/* discard what the client sends (at most reads recv()s); 1 while
   lingering should go on */
static int
linger_drain(struct hc *hc, int reads)
{
    for (int i = 0; i < reads; i++) {
        ssize_t n = recv(hc->c->fd, linger_sink, sizeof(linger_sink),
                         MSG_DONTWAIT);
        if (n > 0) {
            hc->last_active = kap_now();
            if ((uint64_t)n >= hc->q_left)
                return 0;
            hc->q_left -= (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return 1;
}

static void
linger_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;

    ENTER(hc);
    if (!linger_drain(hc, HC_LINGER_READS))
        kap_http_connect_close(hc);
    LEAVE(hc);
}

static void
linger_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hc *hc = w->data;
    double now = kap_now(), next;
    (void)loop; (void)revents;

    ENTER(hc);
    next = hc->last_active + HC_LINGER_TIMEOUT - now;
    if (hc->deadline_total - now < next)
        next = hc->deadline_total - now;
    if (next <= 0)
        kap_http_connect_close(hc);
    else
        kap_http_connect_timer_set(hc, next);
    LEAVE(hc);
}

/*
 * The last response is flushed and the connection ends (respond_close
 * says how): close at once, or half-close and linger.  Costs nothing on a
 * clean close and one recv() after a refusal with nothing pending.
 */
void
kap_http_connect_linger(struct hc *hc)
{
    int mode = hc->respond_close;

    if (mode == HC_CLOSE) {
        kap_http_connect_close(hc);
        return;
    }
    hc->q_left = HC_LINGER_BYTES;           /* from here: discard budget */
    if (mode == HC_CLOSE_CHECK &&
        (!linger_drain(hc, 1) || hc->q_left == HC_LINGER_BYTES)) {
        kap_http_connect_close(hc); /* EOF, or nothing pending */
        return;
    }
    if (!linger_allowed(hc) || shutdown(hc->c->fd, SHUT_WR) != 0) {
        kap_http_connect_close(hc);
        return;
    }
    KAP_DEBUG(HC_NAME, hc->c->id, "lingering on %s", hc->c->peer_text);
    kap_http_connect_cleanup(
        hc); /* idempotent: drops buffers, upstream, timer */
    hc->last_active = kap_now();
    hc->deadline_total = hc->last_active + HC_LINGER_TIME;
    ev_set_cb(&hc->crd, linger_read_cb);
    ev_set_cb(&hc->timer, linger_timer_cb);
    ev_io_start(kap_loop(), &hc->crd);
    kap_http_connect_timer_set(hc, HC_LINGER_TIMEOUT);
}

