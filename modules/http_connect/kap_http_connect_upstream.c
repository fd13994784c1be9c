/*
 * kap_http_connect_upstream.c -- the way to the origin, through the
 * core's kap_upstream (kap_upstream.h): it resolves, asks every address
 * (KAP_REQ_ADDR) before any dial, dials the allowed ones (happy eyeballs)
 * and keeps idle connections; here are what http_connect adds -- the
 * answers (403 with the refused address, 502, 504), the connection one
 * keep-alive client holds between requests, and what follows a connect.
 * Part of the http_connect module (kap_http_connect.h).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kapd/kap_upstream.h>

#include "kap_http_connect.h"

/* the dial in progress, if any, stopped: attempts closed, a waiting
   address question cancelled */
void
kap_http_connect_dial_free(struct hc *hc)
{
    kap_upstream_cancel(hc->dialer);
    hc->dialer = NULL;
}

/* what kap_upstream needs to know of this request */
static void
target(struct hc *hc, struct kap_upstream_target *t)
{
    memset(t, 0, sizeof(*t));
    t->gen = kap_http_connect_policy_gen(hc);
    t->host = hc->subject;
    t->port = hc->port;
    t->want_v6 = 1;
    t->asked_by = HC_NAME;
    t->conn = hc->c;
    t->client = hc->c->peer_text;
    t->detail = hc->method[0] ? hc->method : NULL;
    /* an answered question's pool when there is one (a keep-alive request
       reusing a held connection makes no pool of its own per check) */
    t->pool = hc->rpool;
}

/* ---- idle upstream connections ----------------------------------------------- */

/* a connection whose response is complete: kept for the next request */
void
kap_http_connect_pool_put(struct hc *hc, int fd)
{
    kap_upstream_idle_put(hc->subject, hc->port, fd, &hc->usa.sa,
                          hc->conf->upstream_keepalive);
}

/*
 * A keep-alive client usually asks the same origin again: its upstream
 * connection stays with it between requests (no pool walk, no watcher
 * switch, no allocation), and is checked exactly as a pooled one when the
 * next request wants it.  Any other next request closes it.
 */
int
kap_http_connect_held_put(struct hc *hc)
{
    size_t n = strlen(hc->subject);

    if (!hc->client_ka || kap_shutting_down() || hc->kfd >= 0)
        return 0;
    if (n >= sizeof(hc->kkey)) {
        hc->kkey[0] = '\0';
        return 0;
    }
    memcpy(hc->kkey, hc->subject, n + 1);
    hc->kport = hc->port;
    hc->kfd = hc->ufd;
    return 1;
}

int
kap_http_connect_held_get(struct hc *hc)
{
    struct kap_upstream_target t;
    int fd = hc->kfd;

    if (fd < 0)
        return -1;
    hc->kfd = -1;
    target(hc, &t);
    /* asked again at once: the policy may have changed since the dial */
    if (hc->port != hc->kport || strcmp(hc->subject, hc->kkey) != 0
        || !kap_upstream_addr_allowed(&t, &hc->usa.sa)
        || kap_upstream_unclean(fd)) {
        kap_http_connect_up_watchers_drop(hc);
        close(fd);
        return -1;
    }
    return fd;
}

/* take an idle connection to host:port whose address still passes */
int
kap_http_connect_pool_get(struct hc *hc)
{
    struct kap_upstream_target t;
    struct sockaddr_storage ss;
    int fd;

    target(hc, &t);
    fd = kap_upstream_idle_take(&t, &ss);
    if (fd >= 0)
        kap_http_connect_usa_set(hc, (struct sockaddr *)&ss);
    return fd;
}

/* ---- connected upstream ------------------------------------------------------- */

static void
hc_connected(struct hc *hc)
{
    hc->reused = 0;
    if (hc->is_connect) {
        static const char ok200[] =
            "HTTP/1.1 200 Connection Established\r\n\r\n";
        if (kap_http_connect_take_pipelined(hc) != KAP_OK) {
            kap_http_connect_close(hc);
            return;
        }
        if (kap_http_connect_buf_add(&hc->cout, ok200, sizeof(ok200) - 1)
            != KAP_OK) {
            kap_http_connect_close(hc);
            return;
        }
        hc->state = S_FIRST;
        hc->tstart = kap_now();
        kap_http_connect_timer_set(hc, hc->conf->handshake_timeout);
        if (hc->first_len) {
            int r = kap_http_connect_first_check(hc);
            if (r < 0) {
                kap_http_connect_close(hc);
                return;
            }
            if (r > 0) {                /* the 200 goes first in the relay */
                kap_http_connect_tunnel_start(hc);
                return;
            }
        }
        kap_http_connect_run(hc);
        return;
    }
    kap_http_connect_forward_begin(hc);
}

/* bytes the client pipelined after the CONNECT head are first bytes */
int
kap_http_connect_take_pipelined(struct hc *hc)
{
    size_t extra = kap_buf_used(&hc->cin);

    if (extra) {
        if (hc->first != NULL || extra > HC_HELLO_BUF_MAX)
            return KAP_ERROR;
        hc->first_cap = extra > 2048 ? extra : 2048;
        hc->first = hc->first_cap == 2048
                        ? kap_http_connect_cache_get(HC_CACHE_2K)
                        : malloc(hc->first_cap);
        if (hc->first == NULL)
            return KAP_ERROR;
        memcpy(hc->first, hc->cin.data + hc->cin.off, extra);
        hc->first_len = extra;
    }
    kap_http_connect_buf_free(&hc->cin);
    return KAP_OK;
}

/* remember the address the upstream connection was dialled to */
void
kap_http_connect_usa_set(struct hc *hc, const struct sockaddr *sa)
{
    memset(&hc->usa, 0, sizeof(hc->usa));
    memcpy(&hc->usa, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
}

/* an address the chain refused: 403 with the reason, nothing dialled */
static void
addr_denied(struct hc *hc, const char *reason)
{
    char body[800];

    snprintf(body, sizeof(body),
             "kap: %s:%u is not dialled: %s.\n"
             "kap never connects to loopback, private, link-local or this "
             "host's own addresses unless network.allow lists the address.\n",
             hc->subject, (unsigned)hc->port, reason);
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s %s:%u refused: %s",
            hc->method, hc->subject, (unsigned)hc->port, reason);
    kap_http_connect_rpool_release(hc);
    kap_http_connect_respond(hc, 403, body, 0);
}

static void
dialled(void *data, const struct kap_upstream_result *res)
{
    struct hc *hc = data;

    ENTER(hc);
    hc->dialer = NULL;
    if (hc->closing || hc->state != S_RESOLVE) {
        if (res->rc == KAP_OK)
            close(res->fd);
    } else if (res->rc == KAP_OK) {
        hc->ufd = res->fd;
        kap_http_connect_usa_set(hc, res->sa);
        hc_connected(hc);
    } else if (res->rc == KAP_DENY) {
        addr_denied(hc, res->reason);
    } else if (res->connecting) {
        /* allowed and resolved, but the origin did not answer */
        KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s", res->reason);
        kap_http_connect_respond_error(hc, res->status, res->reason);
    } else {
        kap_http_connect_refuse_audit(hc, res->reason);
        kap_http_connect_respond_error(hc, res->status, res->reason);
    }
    LEAVE(hc);
}

void
kap_http_connect_resolve(struct hc *hc)
{
    struct kap_upstream_target t;

    kap_http_connect_rpool_release(hc);          /* the question is answered */
    hc->state = S_RESOLVE;
    kap_http_connect_timer_set(hc, hc->conf->connect_timeout);
    kap_http_connect_io_stop(&hc->crd);
    target(hc, &t);
    hc->dialer = kap_upstream_dial(&t, dialled, hc);
    if (hc->dialer == NULL) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve %s: resolver unavailable",
                 hc->subject);
        kap_http_connect_refuse_audit(hc, why);
        kap_http_connect_respond_error(hc, 502, why);
    }
}
