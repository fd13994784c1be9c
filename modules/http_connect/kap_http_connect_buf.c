/*
 * kap_http_connect_buf.c -- the module's free lists of transient
 * allocations (request parsers, 1/2 KiB buffers), and the storage of its
 * connection buffers (the core's struct kap_buf) taken from and given
 * back to them.  Part of the http_connect module (kap_http_connect.h).
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

/* ---- small helpers ------------------------------------------------------- */

/*
 * Transient buffers (request parsers, 1 KiB head buffers, 2 KiB first-byte
 * buffers) are recycled through small free lists, so that they do not
 * interleave in the heap with the long-lived objects of idle tunnels
 * (which would leave a hole per tunnel: DESIGN §7 wants <= 4 KiB each).
 */
#define HC_CACHE_MAX 64

struct hc_cache {
    void    *v[HC_CACHE_MAX];
    unsigned n;
    size_t   size;
};

static struct hc_cache caches[HC_NCACHES] = {
    [HC_CACHE_REQ]  = { .size = sizeof(struct kap_http_req) },
    [HC_CACHE_1K]   = { .size = 1024 },
    [HC_CACHE_2K]   = { .size = 2048 },
};

void *
kap_http_connect_cache_get(int which)
{
    struct hc_cache *c = &caches[which];

    return c->n ? c->v[--c->n] : malloc(c->size);
}

void
kap_http_connect_cache_put(int which, void *p)
{
    struct hc_cache *c = &caches[which];

    if (p == NULL)
        return;
    if (c->n < HC_CACHE_MAX)
        c->v[c->n++] = p;
    else
        free(p);
}

/* free a buffer that may have come from a cache of its size */
void
kap_http_connect_sized_free(void *p, size_t cap)
{
    if (cap == 1024)
        kap_http_connect_cache_put(HC_CACHE_1K, p);
    else if (cap == 2048)
        kap_http_connect_cache_put(HC_CACHE_2K, p);
    else
        free(p);
}

static void
cache_drain(struct hc_cache *c)
{
    while (c->n)
        free(c->v[--c->n]);
}

/* at shutdown: the recycled buffers go back to the heap */
void
kap_http_connect_caches_drain(void)
{
    cache_drain(&caches[HC_CACHE_REQ]);
    cache_drain(&caches[HC_CACHE_1K]);
    cache_drain(&caches[HC_CACHE_2K]);
}

/*
 * Room for `more` bytes after b->len, with at most max bytes unread
 * (0: no limit).  An empty buffer that needs less than 1 KiB gets a block
 * from the 1 KiB cache; anything bigger is kap_buf_reserve()'s.
 */
int
kap_http_connect_buf_reserve(struct kap_buf *b, size_t more, size_t max)
{
    if (max && (b->len - b->off > max || more > max - (b->len - b->off)))
        return KAP_ERROR;
    if (b->data == NULL && more < 1024) {
        char *p = kap_http_connect_cache_get(HC_CACHE_1K);
        if (p == NULL)
            return KAP_ERROR;
        p[0] = '\0';
        b->data = p;
        b->cap = 1024;
        b->len = b->off = 0;
        return KAP_OK;
    }
    if (b->data != NULL && b->cap - b->len > more)
        return KAP_OK;
    return kap_buf_reserve(b, more);
}

/*
 * Append n bytes.  Heads are built from dozens of small pieces, so the
 * bytes are copied here after the reserve (the fill pattern of kap_core.h:
 * room, copy at data + len, then what kap_buf_added() does) rather than
 * through kap_buf_append(), which would check the room a second time.
 */
int
kap_http_connect_buf_add(struct kap_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return KAP_OK;
    if (kap_http_connect_buf_reserve(b, n, 0) != KAP_OK)
        return KAP_ERROR;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return KAP_OK;
}

int
kap_http_connect_buf_str(struct kap_buf *b, const char *s)
{
    return kap_http_connect_buf_add(b, s, strlen(s));
}

/* the storage goes back to the 1 KiB cache when it is a 1 KiB block */
void
kap_http_connect_buf_free(struct kap_buf *b)
{
    kap_http_connect_sized_free(b->data, b->cap);
    memset(b, 0, sizeof(*b));
}

/* shrink an idle buffer so that idle connections stay small */
void
kap_http_connect_buf_trim(struct kap_buf *b)
{
    if (kap_buf_used(b) == 0)
        kap_http_connect_buf_free(b);
}

void
kap_http_connect_io_stop(ev_io *w)
{
    ev_io_stop(kap_loop(), w);
}

/*
 * Before the upstream descriptor is closed or handed on: its watchers
 * stopped and aimed at no descriptor.  The next upstream descriptor may
 * get the same number; hc_sync_watchers() then sees a different fd in the
 * watcher and sets it with ev_io_set(), which makes libev register it
 * with epoll afresh even when the stop and the start fall in one loop
 * iteration (a watcher merely stopped and started again on the "same"
 * number would leave a new socket unregistered: it was never added).
 */
void
kap_http_connect_up_watchers_drop(struct hc *hc)
{
    ev_io_stop(kap_loop(), &hc->urd);
    ev_io_stop(kap_loop(), &hc->uwr);
    ev_io_set(&hc->urd, -1, EV_READ);
    ev_io_set(&hc->uwr, -1, EV_WRITE);
}

