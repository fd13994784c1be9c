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
kap_http_connect_flush_buf(int fd, struct kap_buf *b, struct hc *hc)
{
    while (kap_buf_used(b)) {
        ssize_t n = send(fd, b->data + b->off, kap_buf_used(b),
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return KAP_AGAIN;
            return KAP_ERROR;
        }
        kap_buf_consume(b, (size_t)n);
        hc->last_active = kap_now();
    }
    return KAP_OK;
}

/* for a local answer that ends the connection: is a body still coming? */
static int
linger_mode(const struct hc *hc)
{
    const struct kap_http_req *q = hc->req;
    size_t in = kap_buf_used(&hc->cin), head;

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
    struct kap_buf head = { 0 };
    size_t blen = strlen(body);
    int rc;

    if (hc->req && hc->req->body != KAP_HTTP_BODY_NONE)
        keep = 0;               /* the request body was not consumed */
    if (!hc->client_ka || kap_shutting_down())
        keep = 0;
    rc = kap_http_head_write(&head, status, "text/plain; charset=utf-8",
                             (long long) blen, "Cache-Control: no-store\r\n",
                             keep);
    if (rc == KAP_OK)
        rc = kap_http_connect_buf_add(&hc->cout, head.data, head.len);
    kap_buf_free(&head);
    if (rc != KAP_OK || kap_http_connect_buf_add(&hc->cout, body, blen)
                            != KAP_OK) {
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
 * After a refusal the connection closes with the core's lingering close
 * (kap_conn_linger(): half-close, read and discard what the client still
 * sends, then close), so that the answer is read before any reset.  A
 * lingering connection still counts as a connection (max_connections,
 * max_per_client, the shutdown grace), so one over either limit closes at
 * once instead.
 */

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

/*
 * The last response is flushed and the connection ends (respond_close
 * says how): close at once, or let the core linger -- when the last
 * LEAVE runs, so nothing on the stack touches the connection after.
 */
void
kap_http_connect_linger(struct hc *hc)
{
    int mode = hc->respond_close;

    if (mode == HC_CLOSE || !linger_allowed(hc)) {
        kap_http_connect_close(hc);
        return;
    }
    kap_http_connect_close_as(hc, mode == HC_CLOSE_CHECK ? HC_CLOSING_CHECK
                                                        : HC_CLOSING_LINGER);
}
