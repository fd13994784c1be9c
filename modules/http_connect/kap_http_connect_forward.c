/*
 * kap_http_connect_forward.c -- plain HTTP forwarding: the request head
 * rewritten, bodies streamed both ways with backpressure, the upstream
 * kept for the next request when both sides allow it.
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

/* ---- plain HTTP forwarding ------------------------------------------------------ */

void
kap_http_connect_forward_begin(struct hc *hc)
{
    struct kap_http_req *q = hc->req;
    struct kap_buf *o = &hc->uout;
    char line[64];
    int ok = KAP_OK;

    hc->state = S_FORWARD;
    kap_buf_reset(&hc->uout);             /* a retry rebuilds the head */
    hc->idle = hc->conf->idle_timeout;
    hc->last_active = kap_now();
    hc->deadline_total = 0;
    kap_http_connect_timer_set(hc, hc->idle);

    /* request line: origin-form towards the origin */
    ok |= kap_http_connect_buf_add(o, q->method.data, q->method.len);
    ok |= kap_http_connect_buf_str(o, " ");
    if (q->uri.path.data[0] == '?')
        ok |= kap_http_connect_buf_str(o, "/");
    ok |= kap_http_connect_buf_add(o, q->uri.path.data, q->uri.path.len);
    ok |= kap_http_connect_buf_str(o, " HTTP/1.1\r\n");
    if (!q->host) {
        ok |= kap_http_connect_buf_str(o, "Host: ");
        if (q->uri.host_type == KAP_HTTP_HOST_IPV6)
            ok |= kap_http_connect_buf_str(o, "[");
        ok |= kap_http_connect_buf_str(o, q->uri.host);
        if (q->uri.host_type == KAP_HTTP_HOST_IPV6)
            ok |= kap_http_connect_buf_str(o, "]");
        if (q->uri.port_given) {
            snprintf(line, sizeof(line), ":%u", (unsigned)q->uri.port);
            ok |= kap_http_connect_buf_str(o, line);
        }
        ok |= kap_http_connect_buf_str(o, "\r\n");
    }
    for (size_t i = 0; i < q->nheaders; i++) {
        if (kap_http_is_hop_by_hop(q->headers, q->nheaders, i))
            continue;
        ok |= kap_http_connect_buf_add(o, q->headers[i].name.data,
                                       q->headers[i].name.len);
        ok |= kap_http_connect_buf_str(o, ": ");
        ok |= kap_http_connect_buf_add(o, q->headers[i].value.data,
                                       q->headers[i].value.len);
        ok |= kap_http_connect_buf_str(o, "\r\n");
    }
    if (q->body == KAP_HTTP_BODY_CHUNKED)
        ok |= kap_http_connect_buf_str(o, "Transfer-Encoding: chunked\r\n");
    ok |= kap_http_connect_buf_str(o, hc->conf->upstream_keepalive > 0
                     ? "Connection: keep-alive\r\n\r\n"
                     : "Connection: close\r\n\r\n");
    if (ok != KAP_OK) {
        kap_http_connect_close(hc);
        return;
    }
    if (!hc->head_skipped) {
        kap_buf_consume(&hc->cin, q->head_len);
        hc->head_skipped = 1;
    }
    hc->q_body = q->body;
    hc->q_left = q->content_length;
    hc->q_done = q->body == KAP_HTTP_BODY_NONE;
    kap_http_chunked_reset(&hc->qch);
    hc->head_only = strcmp(hc->method, "HEAD") == 0;
    hc->r_started = hc->r_done = 0;
    hc->r_dechunk = 0;
    hc->u_eof = 0;
    hc->upstream_ka = hc->conf->upstream_keepalive > 0;
    if (hc->resp == NULL && (hc->resp = malloc(sizeof(*hc->resp))) == NULL) {
        kap_http_connect_close(hc);
        return;
    }
    kap_http_resp_reset(hc->resp);
    kap_http_connect_run(hc);
}

/* move request body bytes from cin to uout; -1 on a framing error */
int
kap_http_connect_fwd_request_body(struct hc *hc)
{
    while (!hc->q_done && kap_buf_used(&hc->cin)
           && kap_buf_used(&hc->uout) < HC_IOBUF) {
        const char *p = hc->cin.data + hc->cin.off;
        size_t n = kap_buf_used(&hc->cin);
        if (hc->q_body == KAP_HTTP_BODY_LENGTH) {
            if (n > hc->q_left)
                n = (size_t)hc->q_left;
            if (kap_http_connect_buf_add(&hc->uout, p, n) != KAP_OK)
                return -1;
            kap_buf_consume(&hc->cin, n);
            hc->q_left -= n;
            if (hc->q_left == 0)
                hc->q_done = 1;
        } else {
            size_t used;
            struct kap_str d;
            int rc = kap_http_chunked_parse(&hc->qch, p, n, &used, &d);
            if (rc == KAP_ERROR)
                return -1;
            if (kap_http_connect_buf_add(&hc->uout, p, used) != KAP_OK)
                return -1;
            kap_buf_consume(&hc->cin, used);
            if (rc == KAP_OK)
                hc->q_done = 1;
        }
    }
    return 0;
}

static int
resp_head_out(struct hc *hc)
{
    struct kap_http_resp *p = hc->resp;
    struct kap_buf *o = &hc->cout;
    char line[64];
    int ok = KAP_OK;

    snprintf(line, sizeof(line), "HTTP/1.1 %03d ", p->status);
    ok |= kap_http_connect_buf_str(o, line);
    ok |= kap_http_connect_buf_add(o, p->reason.data, p->reason.len);
    ok |= kap_http_connect_buf_str(o, "\r\n");
    for (size_t i = 0; i < p->nheaders; i++) {
        if (kap_http_is_hop_by_hop(p->headers, p->nheaders, i))
            continue;
        ok |= kap_http_connect_buf_add(o, p->headers[i].name.data,
                                       p->headers[i].name.len);
        ok |= kap_http_connect_buf_str(o, ": ");
        ok |= kap_http_connect_buf_add(o, p->headers[i].value.data,
                                       p->headers[i].value.len);
        ok |= kap_http_connect_buf_str(o, "\r\n");
    }
    if (p->status >= 200) {
        if (p->body == KAP_HTTP_BODY_CHUNKED && !hc->r_dechunk)
            ok |= kap_http_connect_buf_str(o, "Transfer-Encoding: chunked\r\n");
        ok |= kap_http_connect_buf_str(o, hc->client_ka
                                              ? "Connection: keep-alive\r\n"
                                              : "Connection: close\r\n");
    }
    ok |= kap_http_connect_buf_str(o, "\r\n");
    return ok;
}

/* parse response heads and move body bytes from uin to cout */
int
kap_http_connect_fwd_response(struct hc *hc)
{
    struct kap_http_resp *p = hc->resp;

    while (!hc->r_done && kap_buf_used(&hc->cout) < HC_IOBUF) {
        if (!hc->r_started) {
            /* reading a head */
            if (kap_buf_used(&hc->uin) == 0)
                return 0;
            int rc = kap_http_parse_response(
                p, hc->uin.data + hc->uin.off,
                kap_buf_used(&hc->uin), hc->method, NULL);
            if (rc == KAP_AGAIN)
                return 0;
            if (rc == KAP_ERROR || p->body == KAP_HTTP_BODY_TUNNEL) {
                KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                        "bad response from %s: %s", hc->subject,
                        p->error ? p->error : "unexpected upgrade");
                return -1;
            }
            if (p->status < 200) {
                /* interim: forward to 1.1 clients, then the next head */
                if (hc->client_minor >= 1 && resp_head_out(hc) != KAP_OK)
                    return -2;
                kap_buf_consume(&hc->uin, p->head_len);
                kap_http_resp_reset(p);
                continue;
            }
            hc->r_body = p->body;
            hc->r_left = p->content_length;
            kap_http_chunked_reset(&hc->rch);
            if (p->body == KAP_HTTP_BODY_CHUNKED && hc->client_minor == 0) {
                hc->r_dechunk = 1;
                hc->client_ka = 0;
            }
            if (p->body == KAP_HTTP_BODY_CLOSE)
                hc->client_ka = 0;
            if (!p->keep_alive || p->body == KAP_HTTP_BODY_CLOSE)
                hc->upstream_ka = 0;
            if (resp_head_out(hc) != KAP_OK)
                return -2;
            hc->r_started = 1;
            kap_buf_consume(&hc->uin, p->head_len);
            if (p->body == KAP_HTTP_BODY_NONE) {
                hc->r_done = 1;
                break;
            }
            continue;
        }
        if (kap_buf_used(&hc->uin) == 0)
            return 0;
        const char *d = hc->uin.data + hc->uin.off;
        size_t n = kap_buf_used(&hc->uin);
        if (hc->r_body == KAP_HTTP_BODY_LENGTH) {
            if (n > hc->r_left)
                n = (size_t)hc->r_left;
            if (kap_http_connect_buf_add(&hc->cout, d, n) != KAP_OK)
                return -2;
            kap_buf_consume(&hc->uin, n);
            hc->r_left -= n;
            if (hc->r_left == 0)
                hc->r_done = 1;
        } else if (hc->r_body == KAP_HTTP_BODY_CHUNKED) {
            size_t used;
            struct kap_str s;
            int rc = kap_http_chunked_parse(&hc->rch, d, n, &used, &s);
            if (rc == KAP_ERROR)
                return -1;
            if (kap_http_connect_buf_add(&hc->cout, hc->r_dechunk ? s.data : d,
                        hc->r_dechunk ? s.len : used) != KAP_OK)
                return -2;
            kap_buf_consume(&hc->uin, used);
            if (rc == KAP_OK)
                hc->r_done = 1;
        } else {                                /* until close */
            if (kap_http_connect_buf_add(&hc->cout, d, n) != KAP_OK)
                return -2;
            kap_buf_consume(&hc->uin, n);
        }
    }
    return 0;
}

/* the exchange is complete: recycle or close both sides */
void
kap_http_connect_fwd_finish(struct hc *hc)
{
    int reusable = hc->upstream_ka && hc->q_done
                   && kap_buf_used(&hc->uin) == 0
                   && kap_buf_used(&hc->uout) == 0 && !hc->u_eof;

    if (reusable && kap_http_connect_held_put(hc)) {
        /* held by this client: its read watcher stays started (a stop
           and a start again for the next request would cost an epoll_ctl
           each); fired while held, urd_cb stops it */
        kap_http_connect_io_stop(&hc->uwr);
    } else {
        kap_http_connect_up_watchers_drop(hc);
        if (reusable)
            kap_http_connect_pool_put(hc, hc->ufd);
        else
            close(hc->ufd);
    }
    /* whatever that upstream sent past its response dies with it: it must
       never be read as the answer to the client's next request */
    kap_http_connect_buf_free(&hc->uin);
    kap_http_connect_buf_free(&hc->uout);
    hc->ufd = -1;
    if (!hc->client_ka || !hc->q_done || kap_shutting_down()) {
        /* the body is still coming; or a keep-alive client (kapd is
           stopping) or pipelined bytes: more may be pending */
        hc->respond_close = !hc->q_done ? HC_CLOSE_LINGER
                          : hc->client_ka || kap_buf_used(&hc->cin)
                            ? HC_CLOSE_CHECK : HC_CLOSE;
        hc->state = S_RESPOND;
        return;
    }
    hc->respond_close = 0;
    hc->state = S_RESPOND;       /* flush, then next head */
}

int
kap_http_connect_read_into(int fd, struct kap_buf *b, size_t chunk, size_t max,
                           int *eof, struct hc *hc)
{
    size_t room;

    /* chunk bytes of storage: kap_buf keeps one for its terminator, so
       the buffers stay 1 KiB (the cache's) and 16 KiB */
    if (kap_http_connect_buf_reserve(b, chunk - 1, max) != KAP_OK) {
        if (kap_http_connect_buf_reserve(b, 1, max) != KAP_OK)
            return 0;           /* full: parsing will complain */
    }
    room = kap_buf_room(b);
    if (max && room > max - kap_buf_used(b))
        room = max - kap_buf_used(b);  /* never more than max unread */
    ssize_t n = recv(fd, b->data + b->len, room, 0);
    if (n > 0) {
        kap_buf_added(b, (size_t)n);
        hc->last_active = kap_now();
        return 1;
    }
    if (n == 0) {
        *eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return 0;
    return -1;
}

/*
 * A pooled upstream connection may have been closed by the origin just as
 * it was reused: when nothing of the response came and the request had no
 * body, dial afresh (resolving and checking again) instead of failing.
 */
int
kap_http_connect_fwd_retry(struct hc *hc)
{
    if (!hc->reused || hc->q_body != KAP_HTTP_BODY_NONE || hc->r_started ||
        kap_buf_used(&hc->uin) != 0)
        return 0;
    kap_http_connect_up_watchers_drop(hc);
    close(hc->ufd);
    hc->ufd = -1;
    hc->reused = 0;
    hc->u_eof = 0;
    KAP_DEBUG(HC_NAME, hc->c->id, "pooled upstream for %s closed, redialling",
              hc->subject);
    kap_http_connect_resolve(hc);
    return 1;
}

