/*
 * kap_http_connect_tunnel.c -- CONNECT after the 200: the client-first bytes
 * (ClientHello, SSH, HTTP) asked as a KAP_REQ_FIRST question, then the
 * splice(2) relay with its recycled pipes and half-close.
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

static void hc_dir_pump(struct hc_dir *d);

/* ---- cleanup ------------------------------------------------------------- */

/*
 * Empty splice pipes are recycled through a small free list shared by all
 * tunnels: a tunnel takes one while bytes are in flight and gives it back
 * (idle tunnels hold none), so short tunnels do not pay pipe2() and two
 * close() per direction and burst.  Only an empty pipe goes back; one with
 * bytes still in it (an error mid-relay) is closed.
 */
#define HC_PIPES_MAX 32

static int      pipes_free[HC_PIPES_MAX][2];
static unsigned pipes_n;

static int
pipe_get(int p[2])
{
    if (pipes_n) {
        pipes_n--;
        p[0] = pipes_free[pipes_n][0];
        p[1] = pipes_free[pipes_n][1];
        return 0;
    }
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    /* a bigger pipe moves more per splice (pages are only used while bytes
       are in flight); the default 64 KiB stays if the kernel refuses */
    (void)fcntl(p[1], F_SETPIPE_SZ, HC_SPLICE_MAX);
    return 0;
}

static void
pipe_put(int p[2], int empty)
{
    if (empty && pipes_n < HC_PIPES_MAX) {
        pipes_free[pipes_n][0] = p[0];
        pipes_free[pipes_n][1] = p[1];
        pipes_n++;
    } else {
        close(p[0]);
        close(p[1]);
    }
    p[0] = p[1] = -1;
}

/* at shutdown: close the recycled pipes */
void
kap_http_connect_pipes_drain(void)
{
    while (pipes_n) {
        pipes_n--;
        close(pipes_free[pipes_n][0]);
        close(pipes_free[pipes_n][1]);
    }
}

void
kap_http_connect_dir_free_pipe(struct hc_dir *d)
{
    if (d->pipe[0] >= 0)
        pipe_put(d->pipe, d->inpipe == 0);
    d->inpipe = 0;
    kap_http_connect_sized_free(d->buf, d->bcap);
    d->buf = NULL;
    d->boff = d->blen = d->bcap = 0;
}

/* ---- tunnel (splice relay) -------------------------------------------------- */

static void hc_tunnel_finish_check(struct hc *hc);

static void
dir_rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc_dir *d = w->data;
    struct hc *hc = d->hc;
    (void)loop; (void)revents;

    ENTER(hc);
    hc_dir_pump(d);
    LEAVE(hc);
}

static void
dir_wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc_dir *d = w->data;
    struct hc *hc = d->hc;
    (void)loop; (void)revents;

    ENTER(hc);
    hc_dir_pump(d);
    LEAVE(hc);
}

static void
dir_init(struct hc_dir *d, struct hc *hc, int from, int to, ev_io *rd,
         ev_io *wr)
{
    /* the head-phase watchers of the same descriptors, stopped, are
       re-aimed at the relay: a tunnel holds four, not eight */
    d->hc = hc;
    d->from = from;
    d->to = to;
    d->pipe[0] = d->pipe[1] = -1;
    d->rd = rd;
    d->wr = wr;
    /* only the callback changes when the descriptor does not: re-setting
       the fd would make libev re-add it to epoll (a failing EEXIST) */
    if (rd->fd != from)
        ev_io_set(rd, from, EV_READ);
    if (wr->fd != to)
        ev_io_set(wr, to, EV_WRITE);
    ev_set_cb(rd, dir_rd_cb);
    ev_set_cb(wr, dir_wr_cb);
    rd->data = wr->data = d;
}

/* move bytes in flight to d->to; 1 drained, 0 would block, -1 error */
static int
dir_drain(struct hc_dir *d)
{
    while (d->inpipe) {
        ssize_t n = splice(d->pipe[0], NULL, d->to, NULL, d->inpipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        d->inpipe -= (size_t)n;
    }
    while (d->blen > d->boff) {
        ssize_t n = send(d->to, d->buf + d->boff, d->blen - d->boff,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        d->boff += (size_t)n;
    }
    return 1;
}

static void
hc_dir_pump(struct hc_dir *d)
{
    struct hc *hc = d->hc;
    struct ev_loop *loop = kap_loop();
    size_t burst = 0;
    int idle = 0;

    /*
     * libev polls level-triggered: after a short read the loop stops and
     * waits for the next readiness instead of reading until EAGAIN.  The
     * pipe (or fallback buffer) is released when a wake-up moved little,
     * so idle tunnels hold none; bulk flows keep theirs.
     */
    for (int rounds = 0; rounds < 16; rounds++) {
        int r = dir_drain(d);
        if (r < 0) {
            kap_http_connect_close(hc);
            return;
        }
        if (r == 0) {
            kap_http_connect_io_stop(d->rd);
            ev_io_start(loop, d->wr);
            return;
        }
        kap_http_connect_io_stop(d->wr);
        if (d->eof) {
            kap_http_connect_dir_free_pipe(d);
            if (!d->shut) {
                shutdown(d->to, SHUT_WR);
                d->shut = 1;
            }
            kap_http_connect_io_stop(d->rd);
            hc_tunnel_finish_check(hc);
            return;
        }
        if (idle)
            break;
        if (d->wait_ready) {
            d->wait_ready = 0;
            break;
        }
        /* read more */
        ssize_t n;
        size_t want;
        if (!d->nosplice) {
            if (d->pipe[0] < 0) {
                if (pipe_get(d->pipe) < 0) {
                    d->pipe[0] = d->pipe[1] = -1;
                    d->nosplice = 1;
                    continue;
                }
            }
            want = HC_SPLICE_MAX;
            n = splice(d->from, NULL, d->pipe[1], NULL, want,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n < 0 && errno == EINVAL) {
                kap_http_connect_dir_free_pipe(d);
                d->nosplice = 1;
                continue;
            }
            if (n > 0)
                d->inpipe = (size_t)n;
        } else {
            if (d->bcap < HC_IOBUF) {
                char *nb = realloc(d->buf, HC_IOBUF);
                if (nb == NULL) {
                    kap_http_connect_close(hc);
                    return;
                }
                d->buf = nb;
                d->bcap = HC_IOBUF;
            }
            d->boff = d->blen = 0;
            want = HC_IOBUF;
            n = recv(d->from, d->buf, want, 0);
            if (n > 0)
                d->blen = (size_t)n;
        }
        if (n > 0) {
            d->bytes += (uint64_t)n;
            burst += (size_t)n;
            hc->last_active = kap_now();
            if ((size_t)n < want)
                idle = 1;               /* drained the socket: drain, wait */
            continue;
        }
        if (n == 0) {
            d->eof = 1;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        kap_http_connect_close(hc);
        return;
    }
    if (d->inpipe || d->blen > d->boff) {
        /* fairness cut with bytes in flight: write them when writable */
        ev_io_start(loop, d->wr);
        return;
    }
    if (burst < HC_SPLICE_MAX)
        kap_http_connect_dir_free_pipe(
            d); /* nothing in flight: give it back */
    ev_io_start(loop, d->rd);
}

static void
hc_tunnel_finish_check(struct hc *hc)
{
    if (!(hc->up.eof && hc->up.shut && hc->down.eof && hc->down.shut))
        return;
    kap_http_connect_close(hc);
}

void
kap_http_connect_tunnel_close_audit(struct hc *hc)
{
    struct kap_audit_field f[3];

    if (hc->tunnel_audited)
        return;
    hc->tunnel_audited = 1;
    f[0].name = "bytes_up";   f[0].str = NULL; f[0].num = (double)hc->up.bytes;
    f[1].name = "bytes_down";
    f[1].str = NULL;
    f[1].num = (double)hc->down.bytes;
    f[2].name = "duration";
    f[2].str = NULL;
    /* seconds to the microsecond (the loop clock's own resolution): the
       audit line then writes it without a shortest-digits search */
    f[2].num = (double)(long long)((kap_now() - hc->tstart) * 1e6 + 0.5)
               / 1e6;
    kap_http_connect_audit(hc, "tunnel_close", "closed", NULL, f, 3);
}

void
kap_http_connect_tunnel_start(struct hc *hc)
{
    struct hc_conf *cf = hc->conf;

    /* bytes already read on either side go first */
    kap_http_connect_rpool_release(hc);
    hc->state = S_TUNNEL;
    kap_http_connect_tunnels++;
    kap_http_connect_io_stop(&hc->crd);
    kap_http_connect_io_stop(&hc->cwr);
    kap_http_connect_io_stop(&hc->urd);
    kap_http_connect_io_stop(&hc->uwr);
    dir_init(&hc->up, hc, hc->c->fd, hc->ufd, &hc->crd, &hc->uwr);
    dir_init(&hc->down, hc, hc->ufd, hc->c->fd, &hc->urd, &hc->cwr);
    if (hc->first_len) {
        hc->up.buf = hc->first;           /* send it with the fallback path */
        hc->up.bcap = hc->first_cap;
        hc->up.blen = hc->first_len;
        hc->up.boff = 0;
        hc->up.bytes += hc->first_len;
        hc->first = NULL;
        hc->first_len = hc->first_cap = 0;
    }
    if (kap_buf_used(&hc->uin)
        || kap_buf_used(&hc->cout)) {
        /* an unsent 200 first, then what the server already said */
        size_t a = kap_buf_used(&hc->cout),
               n = kap_buf_used(&hc->uin);
        hc->down.bcap = a + n;
        hc->down.buf = malloc(hc->down.bcap);
        if (hc->down.buf == NULL) {
            kap_http_connect_close(hc);
            return;
        }
        if (a)                  /* the 200's buffer is gone once sent */
            memcpy(hc->down.buf, hc->cout.data + hc->cout.off, a);
        if (n)
            memcpy(hc->down.buf + a, hc->uin.data + hc->uin.off, n);
        hc->down.blen = a + n;
        hc->down.bytes += n;
    }
    kap_http_connect_buf_free(&hc->cin);
    kap_http_connect_buf_free(&hc->cout);
    kap_http_connect_buf_free(&hc->uin);
    kap_http_connect_buf_free(&hc->uout);
    kap_http_connect_cache_put(HC_CACHE_REQ, hc->req);
    hc->req = NULL;
    hc->idle = cf->idle_timeout;
    hc->last_active = kap_now();
    hc->deadline_total = cf->tunnel_timeout > 0
                         ? hc->tstart + cf->tunnel_timeout : 0;
    kap_http_connect_timer_set(hc, 0.001 + (hc->deadline_total > 0 &&
                           cf->tunnel_timeout < hc->idle
                           ? cf->tunnel_timeout : hc->idle));
    /* both sockets were just read to their end or are being watched
       (level-triggered): forward what is buffered, then wait for
       readiness instead of a read that would only say EAGAIN */
    hc->up.wait_ready = hc->down.wait_ready = 1;
    hc_dir_pump(&hc->up);
    if (hc->closing)
        return;
    hc_dir_pump(&hc->down);
}

/* ---- CONNECT: first bytes ---------------------------------------------------- */

static int
sni_required(struct hc *hc)
{
    if (hc->conf->sni == SNI_REQUIRE)
        return 1;
    if (hc->conf->sni == SNI_IF_PRESENT)
        return 0;
    return hc->port == 443;
}

static void first_done(struct kap_req *r, void *data);

/* why the first bytes were denied, for the log and a 403 right after the
   decision (one loop, so one buffer; an idle tunnel keeps nothing) */
static char hc_fwhy[400];

/*
 * Classify the client-first bytes and ask the policy chain whether they
 * go where the CONNECT said (a KAP_REQ_FIRST question, answered by
 * `network`).  Returns 1 pass, 0 wait (more bytes needed, or hc->fq is
 * waiting for an answer: kap_http_connect_first_answer() continues), -1 refused (audited
 * by the core; hc_fwhy says why).
 */
int
kap_http_connect_first_check(struct hc *hc)
{
    struct hc_first f;
    struct hc_hello h;
    const unsigned char *b = (const unsigned char *)hc->first;
    const char *first = "other", *sni = NULL, *tls = NULL, *hh = NULL;
    char error[200];
    int rc;

    if (hc->first_ok)
        return 1;
    if (hc->fq != NULL)
        return 0;
    error[0] = '\0';
    switch (kap_http_connect_first_classify(b, hc->first_len, &f)) {
    case HC_FIRST_NEED_MORE:
        if (hc->first_len < HC_HELLO_BUF_MAX)
            return 0;
        snprintf(error, sizeof(error), "unrecognised first bytes");
        break;
    case HC_FIRST_SSH:
        first = "ssh";
        break;
    case HC_FIRST_HTTP:
        first = "http";
        hh = f.host;
        break;
    case HC_FIRST_TLS:
        first = "tls";
        rc = kap_http_connect_hello_parse(b, hc->first_len, &h);
        switch (rc) {
        case HC_HELLO_NEED_MORE:
            return 0;
        case HC_HELLO_SNI:
            sni = h.sni;
            break;
        case HC_HELLO_NO_SNI:
            tls = "no_sni";
            break;
        case HC_HELLO_MULTI_SNI:
            tls = "multi_sni";
            break;
        case HC_HELLO_ECH:
            tls = "ech";
            break;
        default:
            tls = "invalid";
            snprintf(error, sizeof(error), "%s",
                     h.error ? h.error : kap_http_connect_hello_result(rc));
            break;
        }
        break;
    default:
        snprintf(error, sizeof(error), "%s",
                 f.error ? f.error : "unrecognised");
        break;
    }

    kap_http_connect_rpool_release(hc);
    struct kap_pool *qp = hc->rpool = kap_pool_create();
    struct kap_req *r =
        qp ? kap_http_connect_req_new(hc, qp, KAP_REQ_FIRST, hc->host) : NULL;
    if (r == NULL) {
        snprintf(hc_fwhy, sizeof(hc_fwhy), "out of memory");
        return -1;
    }
    size_t n = 0;
    struct kap_attr *fa = kap_palloc(qp, 7 * sizeof(*fa));
    if (fa == NULL)
        goto oom;
#define FATTR(k, v)                                                         \
    do {                                                                    \
        if ((v) != NULL) {                                                  \
            fa[n].name = (k);                                               \
            fa[n].value = kap_pstrdup(qp, (v));                             \
            if (fa[n].value == NULL)                                        \
                goto oom;                                                   \
            n++;                                                            \
        }                                                                   \
    } while (0)
    FATTR("first", first);
    FATTR("sni", sni);
    FATTR("http_host", hh);
    FATTR("tls", tls);
    FATTR("error", error[0] ? error : NULL);
    FATTR("sni_required", sni_required(hc) ? "1" : "0");
    FATTR("literal", hc->literal ? "1" : "0");
#undef FATTR
    r->attrs = fa;
    r->nattrs = n;
    hc->fq = r;
    if (kap_policy_check(r, first_done, hc) == KAP_AGAIN)
        return 0;
    hc->fq = NULL;
    if (r->verdict == KAP_ALLOW) {
        hc->first_ok = 1;
        kap_http_connect_rpool_release(hc);
        return 1;
    }
    snprintf(hc_fwhy, sizeof(hc_fwhy), "%s",
             r->reason ? r->reason : "first bytes denied");
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "tunnel to %s:%u refused: %s",
            hc->host, (unsigned)hc->port, hc_fwhy);
    kap_http_connect_rpool_release(hc);
    return -1;
oom:
    snprintf(hc_fwhy, sizeof(hc_fwhy), "out of memory");
    kap_http_connect_rpool_release(hc);
    return -1;
}


/* the answer to a first-bytes question that had to wait */
void
kap_http_connect_first_answer(struct kap_req *r, struct hc *hc)
{
    int ok = r->verdict == KAP_ALLOW;

    if (hc->fq != r || hc->closing)
        return;
    hc->fq = NULL;
    if (!ok)
        snprintf(hc_fwhy, sizeof(hc_fwhy), "%s",
                 r->reason ? r->reason : "first bytes denied");
    kap_http_connect_rpool_release(hc);              /* r is gone */
    if (hc->state == S_POLICY) {    /* asked before dialling */
        if (!ok) {
            kap_http_connect_deny_first_403(hc);
            return;
        }
        hc->first_ok = 1;
        kap_http_connect_resolve(hc);
        return;
    }
    if (hc->state != S_FIRST)
        return;
    if (!ok) {
        KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                "tunnel to %s:%u refused: %s", hc->host, (unsigned)hc->port,
                hc_fwhy);
        kap_http_connect_close(hc);
        return;
    }
    hc->first_ok = 1;
    kap_http_connect_tunnel_start(hc);
}

static void
first_done(struct kap_req *r, void *data)
{
    struct hc *hc = data;

    ENTER(hc);
    kap_http_connect_first_answer(r, hc);
    LEAVE(hc);
}

void
kap_http_connect_first_client_read(struct hc *hc)
{
    if (hc->fq != NULL) {           /* a hook is answering: read nothing */
        kap_http_connect_io_stop(&hc->crd);
        return;
    }
    for (;;) {
        if (hc->first_len == hc->first_cap) {
            /* grow from 2 KiB: most hellos and request heads are small */
            size_t ncap = hc->first_cap ? hc->first_cap * 2 : 2048;
            if (ncap > HC_HELLO_BUF_MAX)
                ncap = HC_HELLO_BUF_MAX;
            if (ncap == hc->first_cap)
                break;                  /* the bound: classify decides */
            char *nb = hc->first == NULL && ncap == 2048
                           ? kap_http_connect_cache_get(HC_CACHE_2K)
                           : realloc(hc->first, ncap);
            if (nb == NULL) {
                kap_http_connect_close(hc);
                return;
            }
            hc->first = nb;
            hc->first_cap = ncap;
        }
        size_t room = hc->first_cap - hc->first_len;
        ssize_t n = recv(hc->c->fd, hc->first + hc->first_len, room, 0);
        if (n > 0) {
            hc->first_len += (size_t)n;
            if ((size_t)n < room)
                break;                  /* drained: the check decides */
            continue;
        }
        if (n == 0) {
            hc->c_eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        kap_http_connect_close(hc);
        return;
    }
    int r = hc->first_len ? kap_http_connect_first_check(hc) : 0;
    if (r < 0) {
        kap_http_connect_close(hc);
        return;
    }
    if (r > 0) {
        kap_http_connect_tunnel_start(hc);
        return;
    }
    if (hc->c_eof) {
        if (hc->first_len)
            kap_http_connect_refuse_audit(
                hc, "client closed before a complete first message");
        kap_http_connect_close(hc);
    }
}

void
kap_http_connect_first_upstream_read(struct hc *hc)
{
    if (hc->fq != NULL) {
        kap_http_connect_io_stop(&hc->urd);
        return;
    }
    /* HC_IOBUF of storage: kap_buf keeps one byte for its terminator */
    if (kap_http_connect_buf_reserve(&hc->uin, HC_IOBUF - 1, 0) != KAP_OK) {
        kap_http_connect_close(hc);
        return;
    }
    ssize_t n = recv(hc->ufd, hc->uin.data + hc->uin.len,
                     kap_buf_room(&hc->uin), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        kap_http_connect_close(hc);
        return;
    }
    kap_buf_added(&hc->uin, (size_t)n);
    /* server speaks first (SSH banner): forward at once, no SNI check;
       client bytes already buffered are an incomplete message and are
       forwarded after it */
    kap_http_connect_tunnel_start(hc);
}

/* first bytes that do not match, seen before dialling: 403, not a dial */
void
kap_http_connect_deny_first_403(struct hc *hc)
{
    char body[1100];

    snprintf(body, sizeof(body),
             "kap: the first bytes of this tunnel do not go to %s:%u: %s\n",
             hc->host, (unsigned)hc->port, hc_fwhy);
    kap_http_connect_respond(hc, 403, body, 1);
}

