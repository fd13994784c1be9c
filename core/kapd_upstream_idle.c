/*
 * kapd_upstream_idle.c -- kap_upstream's idle connections: kept per
 * host:port for the next request, each asked about again (at once) when
 * taken, and closed when they turn readable while idle (the origin
 * closed, or sent bytes nobody asked for) or after their keep-alive.
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "kapd.h"
#include <kapd/kap_addr.h>
#include <kapd/kap_req.h>
#include <kapd/kap_upstream.h>

#define IDLE_PER_DEST 64               /* idle connections per destination */
#define IDLE_MAX      1024             /* idle connections in total */
#define IDLE_KEY_MAX  (256 + 8)        /* "host:port" */

struct idle_ent {
    struct idle_ent         *next, *prev;
    int                      fd;
    ev_io                    io;
    ev_timer                 t;
    struct sockaddr_storage  sa;
    char                     key[IDLE_KEY_MAX];
};

static struct idle_ent *idle_head;
static unsigned idle_n;

static int
idle_key(char *key, size_t n, const char *host, unsigned port)
{
    int m = snprintf(key, n, "%s:%u", host, port);

    return m > 0 && (size_t) m < n ? KAP_OK : KAP_ERROR;
}

static void
idle_del(struct idle_ent *e, int close_fd)
{
    ev_io_stop(kap_loop(), &e->io);
    ev_timer_stop(kap_loop(), &e->t);
    if (e->prev)
        e->prev->next = e->next;
    else
        idle_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    if (close_fd)
        close(e->fd);
    idle_n--;
    free(e);
}

/* readable while idle: closed by the origin, or junk; either way gone */
static void
idle_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    idle_del(w->data, 1);
}

static void
idle_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    idle_del(w->data, 1);
}

int
kap_upstream_unclean(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

void
kap_upstream_idle_put(const char *host, unsigned port, int fd,
                      const struct sockaddr *sa, double keepalive)
{
    char key[IDLE_KEY_MAX];
    struct idle_ent *e;
    unsigned same = 0;

    if (fd < 0)
        return;
    if (keepalive <= 0 || host == NULL || sa == NULL
        || idle_key(key, sizeof(key), host, port) != KAP_OK) {
        close(fd);
        return;
    }
    for (e = idle_head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            same++;
    if (same >= IDLE_PER_DEST || idle_n >= IDLE_MAX
        || kap_upstream_unclean(fd) || (e = calloc(1, sizeof(*e))) == NULL) {
        close(fd);
        return;
    }
    e->fd = fd;
    memcpy(e->key, key, sizeof(key));
    memcpy(&e->sa, sa, sa->sa_family == AF_INET6
                       ? sizeof(struct sockaddr_in6)
                       : sizeof(struct sockaddr_in));
    ev_io_init(&e->io, idle_io_cb, fd, EV_READ);
    e->io.data = e;
    ev_timer_init(&e->t, idle_timer_cb, keepalive, 0.);
    e->t.data = e;
    ev_io_start(kap_loop(), &e->io);
    ev_timer_start(kap_loop(), &e->t);
    e->next = idle_head;
    if (idle_head)
        idle_head->prev = e;
    idle_head = e;
    idle_n++;
}

int
kap_upstream_idle_take(const struct kap_upstream_target *t,
                       struct sockaddr_storage *sa)
{
    char key[IDLE_KEY_MAX];
    struct idle_ent *e, *next;

    if (t == NULL || t->host == NULL
        || idle_key(key, sizeof(key), t->host, t->port) != KAP_OK)
        return -1;
    for (e = idle_head; e; e = next) {
        int fd;

        next = e->next;
        if (strcmp(e->key, key) != 0)
            continue;
        if (!kap_upstream_addr_allowed(t, (struct sockaddr *) &e->sa)
            || kap_upstream_unclean(e->fd)) {
            idle_del(e, 1);
            continue;
        }
        fd = e->fd;
        if (sa != NULL)
            *sa = e->sa;
        idle_del(e, 0);
        return fd;
    }
    return -1;
}

unsigned
kap_upstream_idle_count(void)
{
    return idle_n;
}

void
kap_upstream_idle_close_all(void)
{
    while (idle_head != NULL)
        idle_del(idle_head, 1);
}
