/*
 * kapd_linger.c -- the lingering close every HTTP answerer needs
 * (kap_conn_linger(), kap_http_server.h).
 *
 * close() with unread bytes in the receive queue makes the kernel send an
 * RST, which can overtake the response just written, and a client still
 * sending its body gets a reset on send before it reads the answer.  So
 * once the last response is in the kernel: shutdown(SHUT_WR) (the client
 * gets the response and an EOF), then read and discard what the client
 * still sends until its EOF, LINGER_IDLE without data, LINGER_TIME in all
 * or LINGER_BYTES, and close.  A lingering connection does no protocol
 * work; it still counts as its module's connection (limits, shutdown
 * grace), so a module over a limit closes instead of lingering.
 */
#include "kapd.h"

#include <errno.h>
#include <sys/socket.h>

#include <kapd/kap_http_server.h>

#define LINGER_IDLE   2.0                   /* s without data */
#define LINGER_TIME   10.0                  /* s in all */
#define LINGER_BYTES  (4 * 1024 * 1024)     /* discarded at most */
#define LINGER_READS  8                     /* recv()s per wake-up */

static char linger_sink[16384];            /* discarded bytes land here */

struct kapd_linger {
    struct kap_conn *c;
    ev_io            rd;
    ev_timer         timer;
    double           last, until;
    size_t           left;                 /* bytes still to discard */
};

/* discard what the client sends (at most reads recv()s); 1 while
   lingering should go on */
static int
linger_drain(struct kapd_linger *lg, int reads)
{
    for (int i = 0; i < reads; i++) {
        ssize_t n = recv(lg->c->fd, linger_sink, sizeof(linger_sink),
                         MSG_DONTWAIT);
        if (n > 0) {
            lg->last = kap_now();
            if ((size_t) n >= lg->left)
                return 0;
            lg->left -= (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
    }
    return 1;
}

static void
linger_cleanup(void *data)
{
    struct kapd_linger *lg = data;

    ev_io_stop(kap_loop(), &lg->rd);
    ev_timer_stop(kap_loop(), &lg->timer);
}

static void
linger_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kapd_linger *lg = w->data;

    (void) loop;
    (void) revents;
    if (!linger_drain(lg, LINGER_READS))
        kap_conn_close(lg->c);
}

static void
linger_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kapd_linger *lg = w->data;
    double now = kap_now(), next;

    (void) revents;
    next = lg->last + LINGER_IDLE - now;
    if (lg->until - now < next)
        next = lg->until - now;
    if (next <= 0) {
        kap_conn_close(lg->c);
        return;
    }
    ev_timer_set(w, next, 0);
    ev_timer_start(loop, w);
}

void
kap_conn_linger(struct kap_conn *c, int check)
{
    struct kapd_linger *lg;

    if (c == NULL)
        return;
    lg = kap_palloc(c->pool, sizeof(*lg));
    if (lg == NULL) {
        kap_conn_close(c);
        return;
    }
    lg->c = c;
    lg->left = LINGER_BYTES;
    if (check && (!linger_drain(lg, 1) || lg->left == LINGER_BYTES)) {
        kap_conn_close(c);              /* EOF, or nothing pending */
        return;
    }
    if (shutdown(c->fd, SHUT_WR) != 0
        || kap_pool_cleanup_add(c->pool, linger_cleanup, lg) != KAP_OK) {
        kap_conn_close(c);
        return;
    }
    KAP_DEBUG("core", c->id, "lingering on %s", c->peer_text);
    lg->last = kap_now();
    lg->until = lg->last + LINGER_TIME;
    ev_io_init(&lg->rd, linger_read_cb, c->fd, EV_READ);
    lg->rd.data = lg;
    ev_timer_init(&lg->timer, linger_timer_cb, LINGER_IDLE, 0);
    lg->timer.data = lg;
    ev_io_start(kap_loop(), &lg->rd);
    ev_timer_start(kap_loop(), &lg->timer);
}
