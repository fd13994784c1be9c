/*
 * kapd_curl_stream.c -- the streamed mode of kap_curl (kap_curl_stream(),
 * kap_curl.h): the response head is handed over when its blank line
 * arrives, then every piece of the body as libcurl writes it.
 *
 * Backpressure: when the caller's head or body callback answers
 * KAP_AGAIN it has taken the bytes but wants no more; the next write
 * callback then returns CURL_WRITEFUNC_PAUSE, so libcurl keeps that piece
 * and stops reading the socket, and the upstream's writes block on TCP
 * flow control.  kap_curl_resume() unpauses with curl_easy_pause() from
 * an ev_timer of 0: libcurl forbids it inside its own callbacks (and it
 * may call the write callback before it returns, which the caller must
 * not see inside kap_curl_resume()).
 *
 * The deadline (cu->tm) covers everything up to the head and is stopped
 * there: an SSE stream that is idle for minutes is not cut.
 */
#include "kapd.h"

#include <stdlib.h>
#include <string.h>

#include "kapd_curl_int.h"

#define KC_STOPPED "stopped by the caller"

static void kc_resume_cb(struct ev_loop *loop, ev_timer *w, int revents);

void
kapd_curl_stream_init(struct kap_curl *cu,
                      const struct kap_curl_stream_ops *ops)
{
    ev_timer_init(&cu->resume_tm, kc_resume_cb, 0., 0.);
    if (ops != NULL) {
        cu->stream = 1;
        cu->ops = *ops;
    }
}

void
kapd_curl_stream_stop(struct kap_curl *cu)
{
    ev_timer_stop(kap_loop(), &cu->resume_tm);
}

/* what a callback's answer means to libcurl; n bytes were handed over */
static size_t
kc_answer(struct kap_curl *cu, int rc, size_t n)
{
    if (cu->gone)
        return 0;           /* released inside the callback: stop */
    switch (rc) {
    case KAP_OK:
        return n;
    case KAP_AGAIN:
        cu->want_pause = 1; /* the next piece waits in libcurl */
        return n;
    default:
        cu->over = KC_STOPPED;
        return 0;
    }
}

/* "HTTP/1.1 200 OK", "HTTP/2 204": the status, or 0 */
static long
kc_status(const char *p, size_t n)
{
    size_t i = 5;
    long st = 0;
    int digits = 0;

    while (i < n && p[i] != ' ')
        i++;
    while (i < n && p[i] == ' ')
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '9' && digits < 3; i++, digits++)
        st = st * 10 + (p[i] - '0');
    return digits == 3 ? st : 0;
}

/* the final head is complete: no deadline from here on */
static size_t
kc_head(struct kap_curl *cu, size_t n)
{
    int rc;

    cu->head_done = 1;
    ev_timer_stop(kap_loop(), &cu->tm);
    cu->in_cb = 1;
    rc = cu->ops.head(cu, cu->block_status, &cu->hbuf, cu->data);
    cu->in_cb = 0;
    return kc_answer(cu, rc, n);
}

size_t
kapd_curl_stream_header(struct kap_curl *cu, const char *p, size_t n)
{
    if (cu->gone)
        return 0;
    if (cu->head_done)
        return n;           /* trailers after a chunked body: not kept */
    if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
        cu->block_status = kc_status(p, n);
    if (kapd_curl_header_keep(cu, p, n) != n)
        return 0;
    if (!((n == 2 && p[0] == '\r' && p[1] == '\n')
          || (n == 1 && p[0] == '\n')))
        return n;           /* a header line: the block goes on */
    if (cu->block_status < 200)
        return n;           /* an interim response: the final one follows */
    return kc_head(cu, n);
}

size_t
kapd_curl_stream_body(struct kap_curl *cu, const char *p, size_t n)
{
    int rc;

    if (cu->gone)
        return 0;
    if (!cu->head_done && kc_head(cu, n) != n)
        return 0;           /* a body without a blank line first */
    if (cu->want_pause) {
        cu->paused = 1;     /* libcurl keeps p and gives it again */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (n == 0)
        return 0;
    if (cu->max_body > 0 && n > cu->max_body - cu->streamed) {
        cu->over = "response body over the size limit";
        return 0;
    }
    cu->streamed += n;
    cu->in_cb = 1;
    rc = cu->ops.body(cu, p, n, cu->data);
    cu->in_cb = 0;
    return kc_answer(cu, rc, n);
}

struct kap_curl *
kap_curl_stream(struct kap_gen *gen, struct kap_pool *pool,
                const struct kap_curl_opts *o,
                const struct kap_curl_stream_ops *ops,
                kap_curl_done_fn done, void *data)
{
    if (ops == NULL)
        return NULL;
    return kapd_curl_start(gen, pool, o, ops, done, data);
}

void
kap_curl_resume(struct kap_curl *cu)
{
    if (cu == NULL || cu->magic != KC_MAGIC || !cu->stream
        || cu->state == KC_DONE || cu->gone)
        return;
    cu->want_pause = 0;
    if (cu->paused && !ev_is_active(&cu->resume_tm)) {
        ev_timer_set(&cu->resume_tm, 0., 0.);
        ev_timer_start(kap_loop(), &cu->resume_tm);
    }
}

/* from the loop: libcurl gives the piece it kept to the write callback
   (inside curl_easy_pause) and reads the socket again */
static void
kc_resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kap_curl *cu = (struct kap_curl *)((char *)w
                                              - offsetof(struct kap_curl,
                                                         resume_tm));
    CURLcode rc;

    (void)loop;
    (void)revents;
    if (!cu->paused || cu->want_pause || cu->state != KC_TRANSFER
        || cu->easy == NULL)
        return;
    cu->paused = 0;
    rc = curl_easy_pause(cu->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK && !cu->gone && cu->in_multi)
        kapd_curl_fetch_finished(cu->easy, rc);   /* ends it, with done */
}
