/*
 * kapd_lineq.c -- a non-blocking queue of whole lines to a pipe
 * (kapd_lineq.h).
 */
#include "kapd_lineq.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINEQ_WARN_EVERY 10.0   /* s between "dropped" warnings */

static void lineq_io_cb(struct ev_loop *loop, ev_io *w, int revents);

int
kapd_lineq_init(struct kapd_lineq *q, int fd, size_t cap, const char *name)
{
    int fl;

    memset(q, 0, sizeof(*q));
    q->fd = fd;
    q->cap = cap;
    q->name = name;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return KAP_ERROR;
    ev_io_init(&q->io, lineq_io_cb, fd, EV_WRITE);
    q->io.data = q;
    return KAP_OK;
}

/* Write as much of p as the descriptor takes now; bytes written. */
static size_t
lineq_try(struct kapd_lineq *q, const char *p, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t w = write(q->fd, p + done, n - done);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            /* a closed reader or an error: this will not get better */
            return n + 1;
        }
        break;
    }
    return done;
}

static void
lineq_warn(struct kapd_lineq *q, const char *why)
{
    if (kap_now() - q->last_warn < LINEQ_WARN_EVERY)
        return;
    q->last_warn = kap_now();
    KAP_LOG(KAP_LOG_ERR, "audit_log", 0, "%s: %s; %lu line(s) dropped so "
            "far", q->name, why, q->dropped);
}

static void
lineq_watch(struct kapd_lineq *q)
{
    struct ev_loop *loop = kap_loop();

    if (loop == NULL)
        return;
    if (q->len > 0 && !q->io_on) {
        ev_io_start(loop, &q->io);
        q->io_on = 1;
    } else if (q->len == 0 && q->io_on) {
        ev_io_stop(loop, &q->io);
        q->io_on = 0;
    }
}

/* Append p to the queue (it must fit: the caller checked or must keep). */
static int
lineq_queue(struct kapd_lineq *q, const char *p, size_t n)
{
    char *nb = realloc(q->buf, q->len + n);

    if (nb == NULL)
        return -1;
    q->buf = nb;
    memcpy(q->buf + q->len, p, n);
    q->len += n;
    return 0;
}

void
kapd_lineq_write(struct kapd_lineq *q, const char *p, size_t n,
                 unsigned long nlines)
{
    size_t done;

    if (q->fd < 0 || n == 0)
        return;
    if (q->len > 0) {
        if (q->len + n > q->cap || lineq_queue(q, p, n) != 0) {
            q->dropped += nlines > 0 ? nlines : 1;
            lineq_warn(q, "the reader is not keeping up");
        }
        lineq_watch(q);
        return;
    }
    done = lineq_try(q, p, n);
    if (done > n) {
        q->dropped += nlines > 0 ? nlines : 1;
        lineq_warn(q, strerror(errno));
        return;
    }
    /* the rest, a begun line included, is kept: never a torn line */
    if (done < n && lineq_queue(q, p + done, n - done) != 0) {
        q->dropped += nlines > 0 ? nlines : 1;
        lineq_warn(q, "out of memory");
    }
    lineq_watch(q);
}

static void
lineq_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct kapd_lineq *q = w->data;
    size_t done;

    (void)loop;
    (void)revents;
    done = lineq_try(q, q->buf, q->len);
    if (done > q->len) {
        q->dropped++;
        lineq_warn(q, strerror(errno));
        done = q->len;
    }
    memmove(q->buf, q->buf + done, q->len - done);
    q->len -= done;
    lineq_watch(q);
}

size_t
kapd_lineq_pending(const struct kapd_lineq *q)
{
    return q->len;
}

void
kapd_lineq_close(struct kapd_lineq *q)
{
    if (q->fd < 0)
        return;
    if (q->len > 0 && lineq_try(q, q->buf, q->len) < q->len)
        q->dropped++;
    q->len = 0;
    lineq_watch(q);
    close(q->fd);
    q->fd = -1;
    free(q->buf);
    q->buf = NULL;
}
