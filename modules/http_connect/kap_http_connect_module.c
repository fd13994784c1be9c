/*
 * kap_http_connect_module.c -- the HTTP forward proxy and CONNECT tunnel
 * (module "http_connect", default 127.0.0.1:3128).
 *
 * One state machine per client connection:
 *
 *   HEAD      read and strictly parse a request head (kap_http.h)
 *   POLICY    ask the policy chain (KAP_REQ_CONNECT / KAP_REQ_HTTP)
 *   RESOLVE   resolve the target with the shared resolver, check EVERY
 *             address (a KAP_REQ_ADDR question) before any connect
 *   CONNECT   dial exactly the checked addresses (happy eyeballs)
 *   FIRST     CONNECT only: 200 sent; wait for whichever side speaks
 *             first; client-first bytes are classified (TLS SNI, SSH,
 *             HTTP Host) and asked as a KAP_REQ_FIRST question: `network`
 *             wants the ClientHello to name the CONNECT host (DESIGN §6).
 *             Bytes sent in the same segment as the CONNECT are asked
 *             before anything is dialled, so a mismatch gets a 403
 *   TUNNEL    splice(2) relay through a pipe per direction, allocated only
 *             while bytes are in flight (read/write fallback), half-close
 *   FORWARD   plain HTTP: request head rewritten (hop-by-hop removed),
 *             bodies streamed both ways with backpressure, upstream
 *             connections kept in a per-destination idle pool
 *   RESPOND   a local answer (403, 400, 502, ...) is being written; a
 *             connection that ends while the client still sends lingers
 *             (half-closed, input discarded, bounded) before the close
 *
 * Every resource of a connection (fds, watchers, heap buffers, pipes, the
 * resolver query, dial attempts) is released by one pool cleanup,
 * registered at accept before any of them exists, so a close at any point
 * releases everything.  Every decision, refusals by this module included
 * (kap_req_refuse), is audited once by the core; every tunnel close is
 * audited with its byte counts.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_addr.h>
#include <kapd/kap_http.h>
#include <kapd/kap_resolver.h>

#include "kap_http_connect_first.h"

#define HC_NAME          "http_connect"
#define HC_IOBUF         16384     /* read size / forward buffer high-water */
#define HC_SPLICE_MAX    262144    /* bytes moved per splice(2) */
#define HC_EYEBALL_DELAY 0.25      /* s before trying the next address */
#define HC_POOL_PER_DEST 64        /* idle upstream conns per destination */
#define HC_POOL_MAX      1024      /* idle upstream conns in total */

enum { SNI_UNSET = -1, SNI_REQUIRE = 0, SNI_IF_PRESENT = 1 };

struct hc_conf {
    const char **listen;
    int          sni;
    double       connect_timeout;
    double       idle_timeout;
    double       tunnel_timeout;     /* 0: no total limit */
    double       handshake_timeout;
    double       header_timeout;
    long long    max_connections;
    long long    max_per_client;
    long long    max_header_size;
    double       upstream_keepalive; /* idle seconds kept; 0: off */
};

enum hc_state {
    S_HEAD = 0, S_POLICY, S_RESOLVE, S_CONNECT, S_FIRST, S_TUNNEL,
    S_FORWARD, S_RESPOND
};

/* a byte buffer: data is p[off..len) */
struct hc_buf {
    char   *p;
    size_t  off, len, cap;
};

/* one direction of a tunnel */
struct hc_dir {
    struct hc *hc;
    int        from, to;
    int        pipe[2];        /* -1 when no bytes are in flight */
    size_t     inpipe;
    ev_io     *rd, *wr;        /* hc's watchers of from (read), to (write) */
    char      *buf;            /* read/write fallback, while in flight */
    size_t     boff, blen, bcap;
    int        eof;            /* source hit EOF */
    int        shut;           /* shutdown(to, SHUT_WR) done */
    int        nosplice;
    int        wait_ready;     /* next read only on readiness (just drained) */
    uint64_t   bytes;
};

/* an IPv4 or IPv6 socket address, without sockaddr_storage's padding */
union hc_sa {
    struct sockaddr     sa;
    struct sockaddr_in  in;
    struct sockaddr_in6 in6;
};

/* an address to dial: a checked answer, then its connect attempt */
struct hc_attempt {
    int                     fd;
    ev_io                   io;
    struct hc              *hc;
    union hc_sa             to;
};

/*
 * Dialling state: heap, sized to the answer (most names have one or two
 * addresses), freed once connected.  Thousands of tunnels may be dialling
 * at once, and what they free stays in the heap between the long-lived
 * connections: the smaller, the less an idle tunnel costs afterwards.
 */
struct hc_dial {
    size_t                  naddrs, next, natt, live, cap;
    ev_timer                eyeball;
    int                     last_errno;
    struct hc_attempt       att[];     /* naddrs checked addresses */
};

#define HC_DIAL_SMALL 2                /* dials of this many are recycled */

struct hc {
    struct kap_conn      *c;
    struct hc_conf       *conf;
    int                   state;
    int                   closing;
    ev_io                 crd, cwr, urd, uwr;
    ev_timer              timer;
    double                deadline_total;  /* tunnel: absolute, or 0 */
    double                last_active;
    double                idle;            /* current idle limit */
    int                   ufd;
    union hc_sa           usa;              /* the address dialled */
    int                   kfd;              /* upstream held between requests */
    char                  kkey[48];         /* its "host:port", "" if none */
    struct hc_buf         cin, cout, uin, uout;
    struct kap_http_req  *req;              /* heap while parsing */
    struct kap_http_resp *resp;             /* heap while forwarding */
    struct kap_req       *preq;             /* policy question */
    struct kap_pool      *rpool;            /* the question's own pool */
    struct kap_resolve   *rq;               /* pending resolver query */
    struct hc_dial       *dial;

    /* the current request */
    char                  host[KAP_HTTP_HOST_MAX + 1];
    const char           *subject;          /* host, lit or "": policy, audit */
    char                  lit[KAP_ADDR_TEXT_MAX]; /* an IP literal, canonical */
    uint16_t              port;
    int                   is_connect;
    int                   literal;
    char                  method[24];
    int                   client_minor;
    int                   client_ka;
    int                   head_only;

    /* forward: request body and response progress */
    int                   q_body;           /* KAP_HTTP_BODY_* */
    uint64_t              q_left;
    struct kap_http_chunked qch;
    int                   q_done;
    int                   r_body;
    uint64_t              r_left;
    struct kap_http_chunked rch;
    int                   r_dechunk;        /* 1.0 client, chunked resp */
    int                   r_started;        /* bytes sent to the client */
    int                   r_done;
    int                   upstream_ka;
    int                   c_eof, u_eof;

    /* tunnel */
    struct hc_dir         up, down;
    double                tstart;
    char                 *first;            /* client-first bytes */
    size_t                first_len, first_cap;
    int                   first_checked;
    int                   first_ok;         /* the first bytes were allowed */
    struct kap_req       *fq;               /* first-bytes question, waiting */
    struct kap_req       *aq;               /* address question, waiting */
    size_t                aq_next;          /* next address of hc->dial to ask */
    int                   respond_close;    /* RESPOND: close when flushed */
    int                   tunnel_audited;
    int                   depth;            /* callbacks on the stack */
    unsigned              nreq;             /* request heads parsed */
    int                   reused;           /* upstream from the idle pool */
    int                   head_skipped;     /* head consumed from cin */
};

/*
 * Every loop callback brackets its work with ENTER/LEAVE: hc_close() only
 * marks the connection while a callback is on the stack, and the last
 * LEAVE frees it, so no code ever touches a freed connection.
 */
#define ENTER(hc) ((hc)->depth++)
#define LEAVE(hc)                                                          \
    do {                                                                   \
        if (--(hc)->depth == 0 && (hc)->closing)                           \
            kap_conn_close((hc)->c);                                       \
    } while (0)

static unsigned hc_tunnels;

static void hc_close(struct hc *hc);
static void hc_run(struct hc *hc);
static void hc_sync_watchers(struct hc *hc);
static void hc_start_head(struct hc *hc);
static void hc_tunnel_start(struct hc *hc);
static void hc_dir_pump(struct hc_dir *d);
static void bad_head_names(struct hc *hc);

/* ---- configuration ------------------------------------------------------- */

static void *
hc_conf_create(struct kap_gen *gen)
{
    struct hc_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf == NULL)
        return NULL;
    cf->sni = SNI_UNSET;
    cf->connect_timeout = cf->idle_timeout = cf->tunnel_timeout = -1;
    cf->handshake_timeout = cf->header_timeout = -1;
    cf->upstream_keepalive = -1;
    cf->max_connections = cf->max_per_client = cf->max_header_size = -1;
    return cf;
}

static const char *const hc_keys[] = {
    "listen", "sni", "connect_timeout", "idle_timeout", "tunnel_timeout",
    "handshake_timeout", "header_timeout", "max_connections",
    "max_per_client", "max_header_size", "upstream_keepalive", NULL
};

static int
hc_conf_parse(struct kap_gen *gen, void *vconf, const config_setting_t *group,
              struct kap_err *err)
{
    static const char *const sni_choices[] = { "require", "if-present", NULL };
    struct hc_conf *cf = vconf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const config_setting_t *ls = NULL;
    static const char *def_listen[] = { "127.0.0.1:3128", NULL };

    if (group != NULL) {
        if (kap_conf_check_keys(group, hc_keys, err) != KAP_OK)
            return KAP_ERROR;
        ls = config_setting_get_member(group, "listen");
        if (ls != NULL && config_setting_type(ls) == CONFIG_TYPE_STRING) {
            const char **v = kap_palloc(pool, 2 * sizeof(*v));
            if (v == NULL ||
                (v[0] = kap_pstrdup(pool, config_setting_get_string(ls)))
                    == NULL) {
                kap_err_set(err, "out of memory");
                return KAP_ERROR;
            }
            cf->listen = v;
        } else if (kap_conf_get_strlist(group, "listen", pool, &cf->listen,
                                        NULL, err) == KAP_ERROR) {
            return KAP_ERROR;
        }
        if (kap_conf_get_enum(group, "sni", sni_choices, &cf->sni, err)
                == KAP_ERROR ||
            kap_conf_get_secs(group, "connect_timeout", &cf->connect_timeout,
                              err) == KAP_ERROR ||
            kap_conf_get_secs(group, "idle_timeout", &cf->idle_timeout, err)
                == KAP_ERROR ||
            kap_conf_get_secs(group, "tunnel_timeout", &cf->tunnel_timeout,
                              err) == KAP_ERROR ||
            kap_conf_get_secs(group, "handshake_timeout",
                              &cf->handshake_timeout, err) == KAP_ERROR ||
            kap_conf_get_secs(group, "header_timeout", &cf->header_timeout,
                              err) == KAP_ERROR ||
            kap_conf_get_secs(group, "upstream_keepalive",
                              &cf->upstream_keepalive, err) == KAP_ERROR ||
            kap_conf_get_int(group, "max_connections", 1, 1000000,
                             &cf->max_connections, err) == KAP_ERROR ||
            kap_conf_get_int(group, "max_per_client", 0, 1000000,
                             &cf->max_per_client, err) == KAP_ERROR ||
            kap_conf_get_size(group, "max_header_size", &cf->max_header_size,
                              err) == KAP_ERROR)
            return KAP_ERROR;
    }
    if (cf->listen == NULL)
        cf->listen = def_listen;
    for (size_t i = 0; cf->listen[i]; i++)
        if (kap_listen_add(gen, HC_NAME, KAP_LISTEN_TCP, cf->listen[i], ls,
                           err) != KAP_OK)
            return KAP_ERROR;
    return KAP_OK;
}

/*
 * A tunnel holds two descriptors: say so when the open files limit, not
 * max_connections, is what bounds the tunnels.  Runs when a generation
 * goes live (never for kapd -t: checking a file is not serving), and only
 * when the limit or max_connections changed since the last notice.
 */
static int
hc_init(struct kap_gen *gen, void *vconf)
{
    static unsigned long long said_cur, said_max;
    const struct hc_conf *cf = vconf;
    struct rlimit rl;
    unsigned long long need = (unsigned long long)cf->max_connections * 2 + 64;

    (void)gen;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (unsigned long long)rl.rlim_cur < need &&
        (said_cur != (unsigned long long)rl.rlim_cur ||
         said_max != (unsigned long long)cf->max_connections)) {
        said_cur = (unsigned long long)rl.rlim_cur;
        said_max = (unsigned long long)cf->max_connections;
        KAP_LOG(KAP_LOG_NOTICE, HC_NAME, 0, "the open files limit (%llu) "
                "allows about %llu tunnels, fewer than http_connect."
                "max_connections (%lld): raise the hard limit "
                "(LimitNOFILE=, docker run --ulimit nofile=) or lower it",
                (unsigned long long)rl.rlim_cur,
                rl.rlim_cur > 64 ? (unsigned long long)(rl.rlim_cur - 64) / 2
                                 : 0ULL,
                cf->max_connections);
    }
    return KAP_OK;
}

static int
hc_conf_check(struct kap_gen *gen, void *vconf, struct kap_err *err)
{
    struct hc_conf *cf = vconf;

    if (cf->connect_timeout < 0) cf->connect_timeout = 10;
    if (cf->idle_timeout < 0) cf->idle_timeout = 300;
    if (cf->tunnel_timeout < 0) cf->tunnel_timeout = 0;
    if (cf->handshake_timeout < 0) cf->handshake_timeout = 10;
    if (cf->header_timeout < 0) cf->header_timeout = 10;
    if (cf->upstream_keepalive < 0) cf->upstream_keepalive = 30;
    if (cf->max_connections < 0) cf->max_connections = 20000;
    if (cf->max_per_client < 0) cf->max_per_client = 0;
    if (cf->max_header_size < 0) cf->max_header_size = 32768;
    if (cf->max_header_size < 1024 || cf->max_header_size > 1048576) {
        kap_err_set(err, "http_connect.max_header_size must be between 1k "
                    "and 1M");
        return KAP_ERROR;
    }
    if (cf->connect_timeout <= 0 || cf->idle_timeout <= 0 ||
        cf->handshake_timeout <= 0 || cf->header_timeout <= 0) {
        kap_err_set(err, "http_connect: timeouts must be positive");
        return KAP_ERROR;
    }
    return KAP_OK;
}

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

static struct hc_cache cache_req = { .size = sizeof(struct kap_http_req) };
static struct hc_cache cache_1k = { .size = 1024 };
static struct hc_cache cache_2k = { .size = 2048 };
static struct hc_cache cache_dial = {
    .size = sizeof(struct hc_dial) + HC_DIAL_SMALL * sizeof(struct hc_attempt)
};

static void *
cache_get(struct hc_cache *c)
{
    return c->n ? c->v[--c->n] : malloc(c->size);
}

static void
cache_put(struct hc_cache *c, void *p)
{
    if (p == NULL)
        return;
    if (c->n < HC_CACHE_MAX)
        c->v[c->n++] = p;
    else
        free(p);
}

/* free a buffer that may have come from a cache of its size */
static void
sized_free(void *p, size_t cap)
{
    if (cap == 1024)
        cache_put(&cache_1k, p);
    else if (cap == 2048)
        cache_put(&cache_2k, p);
    else
        free(p);
}

static void
cache_drain(struct hc_cache *c)
{
    while (c->n)
        free(c->v[--c->n]);
}

static int
buf_reserve(struct hc_buf *b, size_t more, size_t max)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + more <= b->cap)
        return KAP_OK;
    if (b->off) {
        memmove(b->p, b->p + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->len + more <= b->cap)
            return KAP_OK;
    }
    size_t ncap = b->cap ? b->cap : 1024;
    while (ncap < b->len + more)
        ncap *= 2;
    if (max && ncap > max)
        ncap = max;
    if (ncap < b->len + more)
        return KAP_ERROR;
    char *np = b->p == NULL && ncap == 1024 ? cache_get(&cache_1k)
                                            : realloc(b->p, ncap);
    if (np == NULL)
        return KAP_ERROR;
    b->p = np;
    b->cap = ncap;
    return KAP_OK;
}

static int
buf_add(struct hc_buf *b, const void *p, size_t n)
{
    if (n == 0)
        return KAP_OK;
    if (buf_reserve(b, n, 0) != KAP_OK)
        return KAP_ERROR;
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return KAP_OK;
}

static int
buf_str(struct hc_buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

static size_t
buf_used(const struct hc_buf *b)
{
    return b->len - b->off;
}

static void
buf_free(struct hc_buf *b)
{
    sized_free(b->p, b->cap);
    memset(b, 0, sizeof(*b));
}

/* shrink an idle buffer so that idle connections stay small */
static void
buf_trim(struct hc_buf *b)
{
    if (buf_used(b) == 0)
        buf_free(b);
}

static void
io_stop(ev_io *w)
{
    ev_io_stop(kap_loop(), w);
}

static void
audit(struct hc *hc, const char *event, const char *action,
      const char *reason, const struct kap_audit_field *f, size_t nf)
{
    struct kap_audit_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = hc->is_connect ? KAP_REQ_CONNECT : KAP_REQ_HTTP;
    ev.module = HC_NAME;
    ev.event = event;
    ev.subject = hc->subject[0] ? hc->subject : hc->host;
    ev.port = hc->port;
    ev.action = action;
    ev.reason = reason;
    ev.decided_by = HC_NAME;
    ev.detail = hc->method;
    ev.client = hc->c->peer_text;
    ev.conn_id = hc->c->id;
    ev.fields = f;
    ev.nfields = nf;
    kap_audit_emit(hc->c->gen, &ev);
}

static struct kap_gen *policy_gen(const struct hc *hc);

/* the request as a question of this module's kind */
static struct kap_req *
hc_req_new(struct hc *hc, struct kap_pool *p, uint32_t kind,
           const char *subject)
{
    struct kap_req *r = kap_req_new(policy_gen(hc), p, kind, HC_NAME,
                                    subject);
    if (r == NULL)
        return NULL;
    r->conn = hc->c;
    r->port = hc->port;
    r->client = hc->c->peer_text;
    r->detail = hc->method[0] ? kap_pstrdup(p, hc->method) : NULL;
    return r;
}

/* a refusal by this module (malformed, limits, timeouts): decided and
   audited by the core (kap_req_refuse), like every decision */
static void
refuse_audit(struct hc *hc, const char *reason)
{
    struct kap_pool *p;
    struct kap_req *r;

    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s %s:%u refused: %s",
            hc->method, hc->subject, (unsigned)hc->port, reason);
    if ((p = kap_pool_create()) == NULL)
        return;
    r = hc_req_new(hc, p, hc->is_connect ? KAP_REQ_CONNECT : KAP_REQ_HTTP,
                   hc->subject[0] ? hc->subject : hc->host);
    if (r != NULL)
        kap_req_refuse(r, reason);
    kap_pool_destroy(p);
}

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

static void
dir_free_pipe(struct hc_dir *d)
{
    if (d->pipe[0] >= 0)
        pipe_put(d->pipe, d->inpipe == 0);
    d->inpipe = 0;
    sized_free(d->buf, d->bcap);
    d->buf = NULL;
    d->boff = d->blen = d->bcap = 0;
}

static void
dial_free(struct hc *hc)
{
    struct hc_dial *dl = hc->dial;

    if (dl == NULL)
        return;
    ev_timer_stop(kap_loop(), &dl->eyeball);
    for (size_t i = 0; i < dl->natt; i++)
        if (dl->att[i].fd >= 0) {
            io_stop(&dl->att[i].io);
            close(dl->att[i].fd);
            dl->att[i].fd = -1;
        }
    if (dl->cap == HC_DIAL_SMALL)
        cache_put(&cache_dial, dl);
    else
        free(dl);
    hc->dial = NULL;
}

static void
hc_stop_all(struct hc *hc)
{
    io_stop(&hc->crd);
    io_stop(&hc->cwr);
    io_stop(&hc->urd);
    io_stop(&hc->uwr);
    ev_timer_stop(kap_loop(), &hc->timer);
}

/* the one pool cleanup: releases everything the connection holds */
/*
 * Each policy question lives in its own pool, destroyed when the exchange
 * ends (or the tunnel starts), so a long keep-alive connection does not
 * grow and an idle tunnel keeps nothing of it.  Destroying it cancels a
 * question still pending.
 */
static void
rpool_release(struct hc *hc)
{
    struct kap_pool *p = hc->rpool;

    hc->rpool = NULL;
    hc->preq = NULL;
    hc->fq = NULL;
    hc->aq = NULL;
    kap_pool_destroy(p);
}

static void
hc_cleanup(void *data)
{
    struct hc *hc = data;

    hc_stop_all(hc);
    rpool_release(hc);
    if (hc->rq) {
        kap_resolve_cancel(hc->rq);
        hc->rq = NULL;
    }
    dial_free(hc);
    dir_free_pipe(&hc->up);
    dir_free_pipe(&hc->down);
    if (hc->state == S_TUNNEL && hc_tunnels)
        hc_tunnels--;
    if (hc->ufd >= 0) {
        close(hc->ufd);
        hc->ufd = -1;
    }
    if (hc->kfd >= 0) {
        close(hc->kfd);
        hc->kfd = -1;
    }
    buf_free(&hc->cin);
    buf_free(&hc->cout);
    buf_free(&hc->uin);
    buf_free(&hc->uout);
    cache_put(&cache_req, hc->req);
    hc->req = NULL;
    free(hc->resp);
    hc->resp = NULL;
    sized_free(hc->first, hc->first_cap);
    hc->first = NULL;
}

static void tunnel_close_audit(struct hc *hc);

static void
hc_close(struct hc *hc)
{
    if (hc->closing)
        return;
    hc->closing = 1;
    hc_stop_all(hc);
    if (hc->state == S_TUNNEL)
        tunnel_close_audit(hc);
    if (hc->depth == 0)
        kap_conn_close(hc->c);  /* runs hc_cleanup; else the last LEAVE */
}

/* ---- upstream idle pool --------------------------------------------------- */

struct pool_ent {
    int                     fd;
    char                    key[KAP_HTTP_HOST_MAX + 8];
    union hc_sa             sa;
    double                  expires;
    ev_io                   io;
    ev_timer                t;
    struct pool_ent        *next, *prev;
};

static struct pool_ent *pool_head;
static unsigned         pool_n;

static void
pool_del(struct pool_ent *e, int close_fd)
{
    io_stop(&e->io);
    ev_timer_stop(kap_loop(), &e->t);
    if (e->prev) e->prev->next = e->next; else pool_head = e->next;
    if (e->next) e->next->prev = e->prev;
    if (close_fd)
        close(e->fd);
    pool_n--;
    free(e);
}

static void
pool_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop; (void)revents;
    /* an idle upstream connection became readable: closed or junk */
    pool_del(w->data, 1);
}

static void
pool_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop; (void)revents;
    pool_del(w->data, 1);
}

/*
 * The generation whose policy decides a new request: the current one,
 * even on a keep-alive connection accepted before a reload (a domain
 * taken out of the allowlist is refused at once, not when the agent
 * reconnects).  The connection keeps its own generation for its module
 * settings.
 */
static struct kap_gen *
policy_gen(const struct hc *hc)
{
    struct kap_gen *g = kap_gen_current();

    return g != NULL ? g : hc->c->gen;
}

static void
pool_key(char *key, size_t n, const char *host, unsigned port)
{
    snprintf(key, n, "%s:%u", host, port);
}

/*
 * Whether an idle upstream connection has anything to read (bytes past
 * the last response, or EOF/error): such a connection must not carry the
 * next request, or those bytes would answer it (response desync).
 */
static int
upstream_unclean(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

static void
pool_put(struct hc *hc, int fd)
{
    struct pool_ent *e;
    unsigned same = 0;
    char key[KAP_HTTP_HOST_MAX + 8];

    pool_key(key, sizeof(key), hc->subject, hc->port);
    for (e = pool_head; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            same++;
    if (same >= HC_POOL_PER_DEST || pool_n >= HC_POOL_MAX ||
        upstream_unclean(fd) || (e = calloc(1, sizeof(*e))) == NULL) {
        close(fd);
        return;
    }
    e->fd = fd;
    memcpy(e->key, key, sizeof(key));
    e->sa = hc->usa;
    ev_io_init(&e->io, pool_io_cb, fd, EV_READ);
    e->io.data = e;
    ev_timer_init(&e->t, pool_timer_cb, hc->conf->upstream_keepalive, 0);
    e->t.data = e;
    ev_io_start(kap_loop(), &e->io);
    ev_timer_start(kap_loop(), &e->t);
    e->next = pool_head;
    if (pool_head)
        pool_head->prev = e;
    pool_head = e;
    pool_n++;
}

/*
 * A keep-alive client usually asks the same origin again: its upstream
 * connection stays with it between requests (no pool walk, no watcher
 * switch, no allocation), and is checked exactly as a pooled one when the
 * next request wants it.  Any other next request closes it.
 */
static int
held_put(struct hc *hc)
{
    int n;

    if (!hc->client_ka || kap_shutting_down() || hc->kfd >= 0)
        return 0;
    n = snprintf(hc->kkey, sizeof(hc->kkey), "%s:%u", hc->subject,
                 (unsigned)hc->port);
    if (n < 0 || (size_t)n >= sizeof(hc->kkey)) {
        hc->kkey[0] = '\0';
        return 0;
    }
    hc->kfd = hc->ufd;
    return 1;
}

/* May an idle upstream connection to sa serve this request?  Asked as a
   KAP_REQ_ADDR question that must be answered at once (the policy may
   have changed since it was dialled); a refusal is audited. */
static int
addr_allowed_now(struct hc *hc, const struct sockaddr *sa)
{
    char at[KAP_ADDR_TEXT_MAX];
    struct kap_attr a[1];
    struct kap_pool *p = hc->rpool, *tmp = NULL;
    struct kap_req *r;
    int ok = 0;

    if (kap_addr_to_text(sa, at, sizeof(at)) == NULL)
        return 0;
    /* the answered question's pool when there is one (a keep-alive
       request reuses a held connection: no pool of its own per check) */
    if (p == NULL && (p = tmp = kap_pool_create()) == NULL)
        return 0;
    r = hc_req_new(hc, p, KAP_REQ_ADDR, at);
    if (r != NULL) {
        a[0].name = "host";
        a[0].value = hc->subject;
        r->attrs = a;
        r->nattrs = 1;
        (void)kap_policy_check(r, NULL, NULL);
        ok = r->verdict == KAP_ALLOW;
        r->attrs = NULL;                /* a is gone when this returns */
        r->nattrs = 0;
    }
    kap_pool_destroy(tmp);
    return ok;
}

static int
held_get(struct hc *hc)
{
    char key[KAP_HTTP_HOST_MAX + 8];
    int fd = hc->kfd;

    if (fd < 0)
        return -1;
    hc->kfd = -1;
    pool_key(key, sizeof(key), hc->subject, hc->port);
    if (strcmp(key, hc->kkey) != 0 ||
        !addr_allowed_now(hc, &hc->usa.sa) ||
        upstream_unclean(fd)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* take an idle connection to host:port whose address still passes */
static int
pool_get(struct hc *hc)
{
    char key[KAP_HTTP_HOST_MAX + 8];
    struct pool_ent *e, *next;

    pool_key(key, sizeof(key), hc->subject, hc->port);
    for (e = pool_head; e; e = next) {
        next = e->next;
        if (strcmp(e->key, key) != 0)
            continue;
        if (!addr_allowed_now(hc, (struct sockaddr *)&e->sa)) {
            pool_del(e, 1);
            continue;
        }
        if (upstream_unclean(e->fd)) {  /* bytes or EOF while idle */
            pool_del(e, 1);
            continue;
        }
        int fd = e->fd;
        hc->usa = e->sa;
        pool_del(e, 0);
        return fd;
    }
    return -1;
}

/* ---- client output and local responses ------------------------------------ */

/* write as much of b as possible to fd; KAP_OK, KAP_AGAIN (more left) or
   KAP_ERROR */
static int
flush_buf(int fd, struct hc_buf *b, struct hc *hc)
{
    while (buf_used(b)) {
        ssize_t n = send(fd, b->p + b->off, buf_used(b), MSG_NOSIGNAL);
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

/*
 * How a connection is closed once its last response is flushed
 * (hc->respond_close; 0 keeps it alive):
 *   HC_CLOSE         close at once (a forwarded exchange ended cleanly)
 *   HC_CLOSE_CHECK   a local refusal: linger only if input is pending
 *   HC_CLOSE_LINGER  the client is still sending (an unread request
 *                    body): linger without looking
 */
#define HC_CLOSE        1
#define HC_CLOSE_CHECK  2
#define HC_CLOSE_LINGER 3

/* for a local answer that ends the connection: is a body still coming? */
static int
linger_mode(const struct hc *hc)
{
    const struct kap_http_req *q = hc->req;
    size_t in = buf_used(&hc->cin), head;

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
static void
respond(struct hc *hc, int status, const char *body, int keep)
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
    if (buf_str(&hc->cout, head) != KAP_OK ||
        buf_add(&hc->cout, body, blen) != KAP_OK) {
        hc_close(hc);
        return;
    }
    if (hc->req && keep) {
        /* drop the answered head; pipelined bytes stay in cin */
        hc->cin.off += hc->req->head_len;
    }
    hc->respond_close = keep ? 0 : linger_mode(hc);
    hc->state = S_RESPOND;
    hc_run(hc);
}

static void
respond_error(struct hc *hc, int status, const char *why)
{
    char body[512];

    snprintf(body, sizeof(body), "kap: %s\n", why);
    respond(hc, status, body, 0);
}

/* ---- timers -------------------------------------------------------------- */

static void
timer_set(struct hc *hc, double secs)
{
    ev_timer_stop(kap_loop(), &hc->timer);
    ev_timer_set(&hc->timer, secs, 0);
    ev_timer_start(kap_loop(), &hc->timer);
}

static void
hc_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hc *hc = w->data;
    double now = kap_now();
    (void)loop; (void)revents;
    ENTER(hc);

    switch (hc->state) {
    case S_HEAD:
        if (buf_used(&hc->cin) == 0) {
            hc_close(hc);           /* idle keep-alive connection */
        } else {
            KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                    "client sent no complete request head in time");
            hc->client_ka = 0;
            bad_head_names(hc);
            refuse_audit(hc, "request head timeout (408)");
            respond_error(hc, 408, "request head timeout");
        }
        goto out;
    case S_POLICY:
        /* a waiting policy hook (ask a human): give up at idle_timeout */
        rpool_release(hc);          /* cancels the waiting question */
        refuse_audit(hc, "policy decision timed out");
        hc->client_ka = 0;
        respond_error(hc, 504, "the policy decision timed out");
        goto out;
    case S_RESOLVE:
    case S_CONNECT:
        rpool_release(hc);          /* cancels a waiting address question */
        refuse_audit(hc, "upstream connect timeout");
        if (hc->rq) {
            kap_resolve_cancel(hc->rq);
            hc->rq = NULL;
        }
        dial_free(hc);
        respond_error(hc, 504, "timed out connecting upstream");
        goto out;
    case S_FIRST:
        if (hc->fq != NULL) {
            rpool_release(hc);
            refuse_audit(hc, "first bytes policy decision timed out "
                             "(handshake timeout)");
        } else if (hc->first_len)
            refuse_audit(hc, "incomplete TLS ClientHello / first bytes "
                             "(handshake timeout)");
        else
            refuse_audit(hc, "no first bytes from either side "
                             "(handshake timeout)");
        hc_close(hc);
        goto out;
    case S_TUNNEL:
    case S_FORWARD:
        if (hc->deadline_total > 0 && now >= hc->deadline_total) {
            hc_close(hc);
            goto out;
        }
        if (now - hc->last_active >= hc->idle) {
            hc_close(hc);
            goto out;
        }
        {
            double next = hc->last_active + hc->idle - now;
            if (hc->deadline_total > 0 && hc->deadline_total - now < next)
                next = hc->deadline_total - now;
            timer_set(hc, next > 0.001 ? next : 0.001);
        }
        goto out;
    case S_RESPOND:
        hc_close(hc);
        goto out;
    default:
        hc_close(hc);
        goto out;
    }
out:
    LEAVE(hc);
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
        hc_close(hc);
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
        hc_close(hc);
    else
        timer_set(hc, next);
    LEAVE(hc);
}

/*
 * The last response is flushed and the connection ends (respond_close
 * says how): close at once, or half-close and linger.  Costs nothing on a
 * clean close and one recv() after a refusal with nothing pending.
 */
static void
hc_linger(struct hc *hc)
{
    int mode = hc->respond_close;

    if (mode == HC_CLOSE) {
        hc_close(hc);
        return;
    }
    hc->q_left = HC_LINGER_BYTES;           /* from here: discard budget */
    if (mode == HC_CLOSE_CHECK &&
        (!linger_drain(hc, 1) || hc->q_left == HC_LINGER_BYTES)) {
        hc_close(hc);                       /* EOF, or nothing pending */
        return;
    }
    if (!linger_allowed(hc) || shutdown(hc->c->fd, SHUT_WR) != 0) {
        hc_close(hc);
        return;
    }
    KAP_DEBUG(HC_NAME, hc->c->id, "lingering on %s", hc->c->peer_text);
    hc_cleanup(hc);         /* idempotent: drops buffers, upstream, timer */
    hc->last_active = kap_now();
    hc->deadline_total = hc->last_active + HC_LINGER_TIME;
    ev_set_cb(&hc->crd, linger_read_cb);
    ev_set_cb(&hc->timer, linger_timer_cb);
    ev_io_start(kap_loop(), &hc->crd);
    timer_set(hc, HC_LINGER_TIMEOUT);
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
            hc_close(hc);
            return;
        }
        if (r == 0) {
            io_stop(d->rd);
            ev_io_start(loop, d->wr);
            return;
        }
        io_stop(d->wr);
        if (d->eof) {
            dir_free_pipe(d);
            if (!d->shut) {
                shutdown(d->to, SHUT_WR);
                d->shut = 1;
            }
            io_stop(d->rd);
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
                dir_free_pipe(d);
                d->nosplice = 1;
                continue;
            }
            if (n > 0)
                d->inpipe = (size_t)n;
        } else {
            if (d->bcap < HC_IOBUF) {
                char *nb = realloc(d->buf, HC_IOBUF);
                if (nb == NULL) {
                    hc_close(hc);
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
        hc_close(hc);
        return;
    }
    if (d->inpipe || d->blen > d->boff) {
        /* fairness cut with bytes in flight: write them when writable */
        ev_io_start(loop, d->wr);
        return;
    }
    if (burst < HC_SPLICE_MAX)
        dir_free_pipe(d);               /* nothing in flight: give it back */
    ev_io_start(loop, d->rd);
}

static void
hc_tunnel_finish_check(struct hc *hc)
{
    if (!(hc->up.eof && hc->up.shut && hc->down.eof && hc->down.shut))
        return;
    hc_close(hc);
}

static void
tunnel_close_audit(struct hc *hc)
{
    struct kap_audit_field f[3];

    if (hc->tunnel_audited)
        return;
    hc->tunnel_audited = 1;
    f[0].name = "bytes_up";   f[0].str = NULL; f[0].num = (double)hc->up.bytes;
    f[1].name = "bytes_down"; f[1].str = NULL; f[1].num = (double)hc->down.bytes;
    f[2].name = "duration";   f[2].str = NULL; f[2].num = kap_now() - hc->tstart;
    audit(hc, "tunnel_close", "closed", NULL, f, 3);
}

static void
hc_tunnel_start(struct hc *hc)
{
    struct hc_conf *cf = hc->conf;

    /* bytes already read on either side go first */
    rpool_release(hc);
    hc->state = S_TUNNEL;
    hc_tunnels++;
    io_stop(&hc->crd);
    io_stop(&hc->cwr);
    io_stop(&hc->urd);
    io_stop(&hc->uwr);
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
    if (buf_used(&hc->uin) || buf_used(&hc->cout)) {
        /* an unsent 200 first, then what the server already said */
        size_t a = buf_used(&hc->cout), n = buf_used(&hc->uin);
        hc->down.bcap = a + n;
        hc->down.buf = malloc(hc->down.bcap);
        if (hc->down.buf == NULL) {
            hc_close(hc);
            return;
        }
        if (a)                  /* the 200's buffer is gone once sent */
            memcpy(hc->down.buf, hc->cout.p + hc->cout.off, a);
        if (n)
            memcpy(hc->down.buf + a, hc->uin.p + hc->uin.off, n);
        hc->down.blen = a + n;
        hc->down.bytes += n;
    }
    buf_free(&hc->cin);
    buf_free(&hc->cout);
    buf_free(&hc->uin);
    buf_free(&hc->uout);
    cache_put(&cache_req, hc->req);
    hc->req = NULL;
    hc->idle = cf->idle_timeout;
    hc->last_active = kap_now();
    hc->deadline_total = cf->tunnel_timeout > 0
                         ? hc->tstart + cf->tunnel_timeout : 0;
    timer_set(hc, 0.001 + (hc->deadline_total > 0 &&
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
 * waiting for an answer: first_answer() continues), -1 refused (audited
 * by the core; hc_fwhy says why).
 */
static int
first_check(struct hc *hc)
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

    rpool_release(hc);
    struct kap_pool *qp = hc->rpool = kap_pool_create();
    struct kap_req *r = qp ? hc_req_new(hc, qp, KAP_REQ_FIRST, hc->host)
                           : NULL;
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
        rpool_release(hc);
        return 1;
    }
    snprintf(hc_fwhy, sizeof(hc_fwhy), "%s",
             r->reason ? r->reason : "first bytes denied");
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "tunnel to %s:%u refused: %s",
            hc->host, (unsigned)hc->port, hc_fwhy);
    rpool_release(hc);
    return -1;
oom:
    snprintf(hc_fwhy, sizeof(hc_fwhy), "out of memory");
    rpool_release(hc);
    return -1;
}

static void hc_resolve(struct hc *hc);
static void deny_first_403(struct hc *hc);

/* the answer to a first-bytes question that had to wait */
static void
first_answer(struct kap_req *r, struct hc *hc)
{
    int ok = r->verdict == KAP_ALLOW;

    if (hc->fq != r || hc->closing)
        return;
    hc->fq = NULL;
    if (!ok)
        snprintf(hc_fwhy, sizeof(hc_fwhy), "%s",
                 r->reason ? r->reason : "first bytes denied");
    rpool_release(hc);              /* r is gone */
    if (hc->state == S_POLICY) {    /* asked before dialling */
        if (!ok) {
            deny_first_403(hc);
            return;
        }
        hc->first_ok = 1;
        hc_resolve(hc);
        return;
    }
    if (hc->state != S_FIRST)
        return;
    if (!ok) {
        KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                "tunnel to %s:%u refused: %s", hc->host, (unsigned)hc->port,
                hc_fwhy);
        hc_close(hc);
        return;
    }
    hc->first_ok = 1;
    hc_tunnel_start(hc);
}

static void
first_done(struct kap_req *r, void *data)
{
    struct hc *hc = data;

    ENTER(hc);
    first_answer(r, hc);
    LEAVE(hc);
}

static void
first_client_read(struct hc *hc)
{
    if (hc->fq != NULL) {           /* a hook is answering: read nothing */
        io_stop(&hc->crd);
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
                       ? cache_get(&cache_2k) : realloc(hc->first, ncap);
            if (nb == NULL) {
                hc_close(hc);
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
        hc_close(hc);
        return;
    }
    int r = hc->first_len ? first_check(hc) : 0;
    if (r < 0) {
        hc_close(hc);
        return;
    }
    if (r > 0) {
        hc_tunnel_start(hc);
        return;
    }
    if (hc->c_eof) {
        if (hc->first_len)
            refuse_audit(hc, "client closed before a complete first message");
        hc_close(hc);
    }
}

static void
first_upstream_read(struct hc *hc)
{
    if (hc->fq != NULL) {
        io_stop(&hc->urd);
        return;
    }
    if (buf_reserve(&hc->uin, HC_IOBUF, 0) != KAP_OK) {
        hc_close(hc);
        return;
    }
    ssize_t n = recv(hc->ufd, hc->uin.p + hc->uin.len,
                     hc->uin.cap - hc->uin.len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        hc_close(hc);
        return;
    }
    hc->uin.len += (size_t)n;
    /* server speaks first (SSH banner): forward at once, no SNI check;
       client bytes already buffered are an incomplete message and are
       forwarded after it */
    hc_tunnel_start(hc);
}

/* ---- connected upstream ------------------------------------------------------- */

static void hc_forward_begin(struct hc *hc);
static int take_pipelined(struct hc *hc);

static void
hc_connected(struct hc *hc)
{
    int one = 1;

    setsockopt(hc->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    dial_free(hc);
    hc->reused = 0;
    if (hc->is_connect) {
        static const char ok200[] =
            "HTTP/1.1 200 Connection Established\r\n\r\n";
        if (take_pipelined(hc) != KAP_OK) {
            hc_close(hc);
            return;
        }
        if (buf_add(&hc->cout, ok200, sizeof(ok200) - 1) != KAP_OK) {
            hc_close(hc);
            return;
        }
        hc->state = S_FIRST;
        hc->tstart = kap_now();
        timer_set(hc, hc->conf->handshake_timeout);
        if (hc->first_len) {
            int r = first_check(hc);
            if (r < 0) {
                hc_close(hc);
                return;
            }
            if (r > 0) {                /* the 200 goes first in the relay */
                hc_tunnel_start(hc);
                return;
            }
        }
        hc_run(hc);
        return;
    }
    hc_forward_begin(hc);
}

static void dial_next(struct hc *hc);

/* bytes the client pipelined after the CONNECT head are first bytes */
static int
take_pipelined(struct hc *hc)
{
    size_t extra = buf_used(&hc->cin);

    if (extra) {
        if (hc->first != NULL || extra > HC_HELLO_BUF_MAX)
            return KAP_ERROR;
        hc->first_cap = extra > 2048 ? extra : 2048;
        hc->first = hc->first_cap == 2048 ? cache_get(&cache_2k)
                                          : malloc(hc->first_cap);
        if (hc->first == NULL)
            return KAP_ERROR;
        memcpy(hc->first, hc->cin.p + hc->cin.off, extra);
        hc->first_len = extra;
    }
    buf_free(&hc->cin);
    return KAP_OK;
}

/* remember the address the upstream connection was dialled to */
static void
usa_set(struct hc *hc, const struct sockaddr *sa)
{
    memset(&hc->usa, 0, sizeof(hc->usa));
    memcpy(&hc->usa, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                  : sizeof(struct sockaddr_in));
}

static void
att_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc_attempt *a = w->data;
    struct hc *hc = a->hc;
    int err = 0;
    socklen_t len = sizeof(err);
    (void)loop; (void)revents;
    ENTER(hc);

    io_stop(&a->io);
    if (getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        close(a->fd);
        a->fd = -1;
        hc->dial->live--;
        hc->dial->last_errno = err;
        dial_next(hc);
        goto out;
    }
    hc->ufd = a->fd;
    usa_set(hc, &a->to.sa);
    a->fd = -1;
    hc_connected(hc);
out:
    LEAVE(hc);
}

static void
eyeball_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;

    ENTER(hc);
    dial_next(hc);
    LEAVE(hc);
}

/* start the next attempt; respond 502 when all have failed */
static void
dial_next(struct hc *hc)
{
    struct hc_dial *dl = hc->dial;

    while (dl->next < dl->naddrs) {
        struct hc_attempt *a = &dl->att[dl->next++];
        const struct sockaddr *ss = &a->to.sa;
        socklen_t sl = ss->sa_family == AF_INET6
                       ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
        int fd = socket(ss->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
                        SOCK_CLOEXEC, 0);
        if (fd < 0) {
            dl->last_errno = errno;
            continue;
        }
        dl->natt = dl->next;
        a->fd = fd;
        a->hc = hc;
        if (connect(fd, ss, sl) == 0) {
            hc->ufd = fd;
            usa_set(hc, ss);
            a->fd = -1;
            hc_connected(hc);
            return;
        }
        /*
         * A connect to a local listener has usually completed by the time
         * the first call returns (the SYN-ACK is processed as the socket
         * is released): asking again says so at once (0), which saves the
         * write watcher, a loop turn and getsockopt(SO_ERROR).  EALREADY:
         * still in progress; any other error: this attempt failed.
         */
        if (errno == EINPROGRESS) {
            if (connect(fd, ss, sl) == 0) {
                hc->ufd = fd;
                usa_set(hc, ss);
                a->fd = -1;
                hc_connected(hc);
                return;
            }
            if (errno == EALREADY || errno == EINPROGRESS)
                errno = EINPROGRESS;
        }
        if (errno != EINPROGRESS) {
            dl->last_errno = errno;
            close(fd);
            a->fd = -1;
            continue;
        }
        ev_io_init(&a->io, att_cb, fd, EV_WRITE);
        a->io.data = a;
        ev_io_start(kap_loop(), &a->io);
        dl->live++;
        ev_timer_stop(kap_loop(), &dl->eyeball);
        if (dl->next < dl->naddrs) {
            ev_timer_set(&dl->eyeball, HC_EYEBALL_DELAY, 0);
            ev_timer_start(kap_loop(), &dl->eyeball);
        }
        return;
    }
    if (dl->live)
        return;                     /* others still trying */
    char why[300];
    snprintf(why, sizeof(why), "cannot connect to %s:%u: %s", hc->subject,
             (unsigned)hc->port, strerror(dl->last_errno ? dl->last_errno
                                                         : ECONNREFUSED));
    dial_free(hc);
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s", why);
    respond_error(hc, 502, why);
}

static void addr_ask_next(struct hc *hc);

static void
resolve_answer(struct hc *hc, int rc, const struct sockaddr_storage *addrs,
               size_t naddrs, const char *errmsg)
{
    char why[400];

    hc->rq = NULL;
    if (rc != KAP_OK || naddrs == 0) {
        int tmo = errmsg && strcmp(errmsg, "timeout") == 0;
        snprintf(why, sizeof(why), "cannot resolve %s: %s", hc->subject,
                 errmsg ? errmsg : "no address");
        refuse_audit(hc, why);
        respond_error(hc, tmo ? 504 : 502, why);
        return;
    }
    if (naddrs > KAP_RESOLVE_MAX_ADDRS)
        naddrs = KAP_RESOLVE_MAX_ADDRS;
    size_t cap = naddrs <= HC_DIAL_SMALL ? HC_DIAL_SMALL : naddrs;
    struct hc_dial *dl = cap == HC_DIAL_SMALL
        ? cache_get(&cache_dial)
        : malloc(sizeof(*dl) + cap * sizeof(dl->att[0]));
    if (dl == NULL) {
        hc_close(hc);
        return;
    }
    memset(dl, 0, sizeof(*dl) + cap * sizeof(dl->att[0]));
    dl->cap = cap;
    for (size_t i = 0; i < cap; i++)
        dl->att[i].fd = -1;
    hc->dial = dl;
    ev_timer_init(&dl->eyeball, eyeball_cb, HC_EYEBALL_DELAY, 0);
    dl->eyeball.data = hc;
    for (size_t i = 0; i < naddrs; i++) {
        struct sockaddr_storage ss = addrs[i];
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = htons(hc->port);
        else if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons(hc->port);
        else
            continue;
        struct hc_attempt *a = &dl->att[dl->naddrs++];
        memcpy(&a->to, &ss, ss.ss_family == AF_INET6
                            ? sizeof(struct sockaddr_in6)
                            : sizeof(struct sockaddr_in));
    }
    /* ask about EVERY address before any connect attempt */
    hc->aq_next = 0;
    addr_ask_next(hc);
}

/* an address the chain refused: 403 with the reason, nothing dialled */
static void
addr_denied(struct hc *hc, const struct kap_req *r)
{
    char body[800];

    snprintf(body, sizeof(body),
             "kap: %s:%u is not dialled: %s.\n"
             "kap never connects to loopback, private, link-local or this "
             "host's own addresses unless network.allow lists the address.\n",
             hc->subject, (unsigned)hc->port,
             r->reason ? r->reason : "denied address");
    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s %s:%u refused: %s",
            hc->method, hc->subject, (unsigned)hc->port,
            r->reason ? r->reason : "denied address");
    dial_free(hc);
    rpool_release(hc);
    respond(hc, 403, body, 0);
}

static void addr_done(struct kap_req *r, void *data);

/* one KAP_REQ_ADDR question per resolved address, in order; all allowed:
   dial; one denied: 403; a waiting hook: addr_done() goes on */
static void
addr_ask_next(struct hc *hc)
{
    struct hc_dial *dl = hc->dial;

    while (hc->aq_next < dl->naddrs) {
        struct hc_attempt *a = &dl->att[hc->aq_next];
        char at[KAP_ADDR_TEXT_MAX];
        struct kap_pool *qp;
        struct kap_req *r;

        if (kap_addr_to_text((struct sockaddr *)&a->to, at, sizeof(at))
            == NULL) {
            hc_close(hc);
            return;
        }
        rpool_release(hc);
        qp = hc->rpool = kap_pool_create();
        r = qp ? hc_req_new(hc, qp, KAP_REQ_ADDR, at) : NULL;
        if (r == NULL) {
            hc_close(hc);
            return;
        }
        struct kap_attr *aa = kap_palloc(qp, sizeof(*aa));
        if (aa == NULL || (aa->value = kap_pstrdup(qp, hc->subject)) == NULL) {
            hc_close(hc);
            return;
        }
        aa->name = "host";
        r->attrs = aa;
        r->nattrs = 1;
        hc->aq = r;
        if (kap_policy_check(r, addr_done, hc) == KAP_AGAIN)
            return;
        hc->aq = NULL;
        if (r->verdict != KAP_ALLOW) {
            addr_denied(hc, r);
            return;
        }
        hc->aq_next++;
    }
    rpool_release(hc);
    hc->state = S_CONNECT;
    dial_next(hc);
}

static void
addr_done(struct kap_req *r, void *data)
{
    struct hc *hc = data;

    ENTER(hc);
    if (hc->aq == r && !hc->closing && hc->state == S_RESOLVE) {
        hc->aq = NULL;
        if (r->verdict != KAP_ALLOW) {
            addr_denied(hc, r);
        } else {
            hc->aq_next++;
            addr_ask_next(hc);
        }
    }
    LEAVE(hc);
}

static void
resolve_cb(void *data, int rc, const struct sockaddr_storage *addrs,
           size_t naddrs, const char *errmsg)
{
    struct hc *hc = data;

    ENTER(hc);
    resolve_answer(hc, rc, addrs, naddrs, errmsg);
    LEAVE(hc);
}

static void
hc_resolve(struct hc *hc)
{
    rpool_release(hc);          /* the question is answered */
    hc->state = S_RESOLVE;
    timer_set(hc, hc->conf->connect_timeout);
    io_stop(&hc->crd);
    hc->rq = kap_resolve_addrs(policy_gen(hc), hc->subject, 1, resolve_cb, hc);
    if (hc->rq == NULL) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve %s: resolver unavailable",
                 hc->subject);
        refuse_audit(hc, why);
        respond_error(hc, 502, why);
    }
}

/* ---- policy ----------------------------------------------------------------- */

static void
deny_403(struct hc *hc, const struct kap_req *r)
{
    char body[800];

    snprintf(body, sizeof(body),
             "kap: %s is not on the allowlist (denied by %s).\n"
             "Add it to network.allow in kap.conf, or see `kap why-denied`.\n",
             hc->subject, r->reason ? r->reason
                                    : (r->decided_by ? r->decided_by
                                                     : "policy"));
    respond(hc, 403, body, 1);
}

/* first bytes that do not match, seen before dialling: 403, not a dial */
static void
deny_first_403(struct hc *hc)
{
    char body[1100];

    snprintf(body, sizeof(body),
             "kap: the first bytes of this tunnel do not go to %s:%u: %s\n",
             hc->host, (unsigned)hc->port, hc_fwhy);
    respond(hc, 403, body, 1);
}

static void
policy_answer(struct kap_req *r, struct hc *hc)
{
    if (hc->state != S_POLICY || hc->closing)
        return;                 /* answered after we gave up */
    hc->preq = NULL;
    if (r->verdict != KAP_ALLOW) {
        deny_403(hc, r);
        return;
    }
    /* the upstream pool is only for plain HTTP */
    if (!hc->is_connect) {
        int fd = held_get(hc);
        if (fd < 0)
            fd = pool_get(hc);
        if (fd >= 0) {
            hc->ufd = fd;
            hc->reused = 1;
            hc_forward_begin(hc);
            return;
        }
    }
    if (hc->kfd >= 0) {         /* a tunnel never needs the held one */
        close(hc->kfd);
        hc->kfd = -1;
    }
    /* a ClientHello (or other first message) sent in the same segment as
       the CONNECT is checked before anything is dialled */
    if (hc->is_connect && buf_used(&hc->cin)) {
        if (take_pipelined(hc) != KAP_OK) {
            hc_close(hc);
            return;
        }
        int fr = first_check(hc);
        if (fr < 0) {
            deny_first_403(hc);
            return;
        }
        if (fr == 0 && hc->fq != NULL)
            return;             /* first_answer() goes on */
    }
    hc_resolve(hc);
}

static void
policy_done(struct kap_req *r, void *data)
{
    struct hc *hc = data;

    ENTER(hc);
    policy_answer(r, hc);
    LEAVE(hc);
}

static void
hc_ask(struct hc *hc)
{
    /* every question has a pool of its own, given back once answered
       (a CONNECT's before it dials): an idle tunnel keeps only its
       connection's pool, one block */
    struct kap_pool *qp;
    rpool_release(hc);
    hc->rpool = qp = kap_pool_create();
    if (qp == NULL) {
        hc_close(hc);
        return;
    }
    struct kap_req *r = kap_req_new(policy_gen(hc), qp,
                                    hc->is_connect ? KAP_REQ_CONNECT
                                                   : KAP_REQ_HTTP,
                                    HC_NAME, hc->subject);
    if (r == NULL) {
        hc_close(hc);
        return;
    }
    r->conn = hc->c;
    r->port = hc->port;
    r->client = hc->c->peer_text;
    r->detail = kap_pstrdup(qp, hc->method);
    hc->preq = r;
    hc->state = S_POLICY;
    io_stop(&hc->crd);
    timer_set(hc, hc->conf->idle_timeout);
    if (kap_policy_check(r, policy_done, hc) == KAP_OK)
        policy_done(r, hc);
}

/* ---- request heads ---------------------------------------------------------- */

/* set hc->host/subject/port from a parsed URI; 0 ok, or an HTTP status */
static int
set_target(struct hc *hc, const struct kap_http_uri *u, const char **why)
{
    struct sockaddr_storage ss;
    size_t hl = strlen(u->host);

    memcpy(hc->host, u->host, hl + 1);
    if (hl > 1 && hc->host[hl - 1] == '.')
        hc->host[--hl] = '\0';          /* one trailing dot ignored */
    hc->port = u->port;
    hc->literal = 0;
    hc->subject = hc->host;
    int rc = kap_addr_parse_literal(hc->host, &ss);
    if (rc == KAP_OK) {
        char t[KAP_ADDR_TEXT_MAX];
        if (kap_addr_to_text((struct sockaddr *)&ss, t, sizeof(t)) == NULL) {
            *why = "invalid IP address";
            return 400;
        }
        snprintf(hc->lit, sizeof(hc->lit), "%s", t);
        hc->subject = hc->lit;
        hc->literal = 1;
    } else if (rc == KAP_ERROR) {
        *why = "invalid IP address literal or numeric host name";
        return 400;
    }
    return 0;
}

static void
hc_head_done(struct hc *hc)
{
    struct kap_http_req *q = hc->req;
    const char *why = NULL;
    int st;

    hc->nreq++;
    hc->is_connect = q->form == KAP_HTTP_FORM_AUTHORITY;
    snprintf(hc->method, sizeof(hc->method), "%.*s",
             (int)(q->method.len < sizeof(hc->method) - 1
                   ? q->method.len : sizeof(hc->method) - 1),
             q->method.data);
    hc->client_minor = q->minor;
    hc->client_ka = q->keep_alive && !hc->is_connect;
    hc->subject = "";
    hc->port = 0;

    if (q->form != KAP_HTTP_FORM_AUTHORITY && q->form != KAP_HTTP_FORM_ABSOLUTE) {
        bad_head_names(hc);
        refuse_audit(hc, "not a proxy request (origin-form or asterisk-form)");
        respond(hc, 400, "kap: this is a proxy: send absolute-form requests "
                "(http://host/path) or CONNECT host:port\n",
                q->body == KAP_HTTP_BODY_NONE);
        return;
    }
    if ((st = set_target(hc, &q->uri, &why)) != 0) {
        char body[300];
        snprintf(body, sizeof(body), "kap: %s\n", why);
        refuse_audit(hc, why);
        respond(hc, st, body, 0);
        return;
    }
    if (!hc->is_connect) {
        /* Host must agree with the absolute URI (an empty one does not) */
        if (q->host) {
            struct kap_http_uri hu;
            if (kap_http_parse_authority(q->host->value.data,
                                         q->host->value.len, 80,
                                         &hu) != KAP_OK ||
                !kap_host_eq(hu.host, q->uri.host) ||
                hu.port != q->uri.port) {
                refuse_audit(hc, "Host header does not match the request URI");
                respond(hc, 400, "kap: the Host header does not match the "
                        "request URI\n", 0);
                return;
            }
        }
        /* Upgrade is hop-by-hop: upgraded plain HTTP is not tunnelled */
    } else {
        /* a CONNECT needs nothing more of its head: give the parser and
           (unless bytes followed the head) the buffer back at once, so
           that many tunnels being set up at once stay small */
        hc->cin.off += q->head_len;
        cache_put(&cache_req, hc->req);
        hc->req = NULL;
        if (buf_used(&hc->cin) == 0)
            buf_free(&hc->cin);
    }
    hc_ask(hc);
}

/* name what we can of a refused head (method, target) for the audit */
static void
bad_head_names(struct hc *hc)
{
    const char *p = hc->cin.p + hc->cin.off;
    size_t n = buf_used(&hc->cin), i;

    hc->method[0] = '\0';
    hc->subject = "";
    for (i = 0; i < n && i < sizeof(hc->method) - 1; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch < 0x21 || ch > 0x7e)
            break;
        hc->method[i] = (char)ch;
    }
    hc->method[i] = '\0';
    hc->is_connect = strcmp(hc->method, "CONNECT") == 0;
    if (i < n && p[i] == ' ') {
        size_t j = 0;
        for (i++; i < n && j < sizeof(hc->host) - 1; i++, j++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\')
                break;
            hc->host[j] = (char)ch;
        }
        hc->host[j] = '\0';
        hc->subject = hc->host;
    }
}

static void
hc_parse_head(struct hc *hc)
{
    struct kap_http_limits lim = {
        .max_line = (size_t)hc->conf->max_header_size,
        .max_head = (size_t)hc->conf->max_header_size,
        .max_headers = KAP_HTTP_MAX_HEADERS
    };

    if (buf_used(&hc->cin) == 0)
        return;
    if (hc->req == NULL) {
        hc->req = cache_get(&cache_req);
        if (hc->req == NULL) {
            hc_close(hc);
            return;
        }
        kap_http_req_reset(hc->req);
    }
    int rc = kap_http_parse_request(hc->req, hc->cin.p + hc->cin.off,
                                    buf_used(&hc->cin), &lim);
    if (rc == KAP_AGAIN)
        return;
    if (rc == KAP_ERROR) {
        char body[300];
        snprintf(body, sizeof(body), "kap: bad request: %s\n",
                 hc->req->error ? hc->req->error : "malformed");
        hc->client_ka = 0;
        KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "bad request from %s: %s",
                hc->c->peer_text, hc->req->error ? hc->req->error : "");
        bad_head_names(hc);
        snprintf(body, sizeof(body), "bad request (%d): %s", hc->req->status,
                 hc->req->error ? hc->req->error : "malformed");
        refuse_audit(hc, body);
        snprintf(body, sizeof(body), "kap: bad request: %s\n",
                 hc->req->error ? hc->req->error : "malformed");
        respond(hc, hc->req->status, body, 0);
        return;
    }
    hc_head_done(hc);
}

static void
hc_start_head(struct hc *hc)
{
    rpool_release(hc);
    hc->head_skipped = 0;
    hc->reused = 0;
    hc->state = S_HEAD;
    cache_put(&cache_req, hc->req);
    hc->req = NULL;
    free(hc->resp);
    hc->resp = NULL;
    buf_trim(&hc->cin);
    buf_trim(&hc->cout);
    buf_trim(&hc->uin);
    buf_trim(&hc->uout);
    hc->subject = "";
    hc->is_connect = 0;
    /* the first head (and any started one) must arrive within
       header_timeout; an idle keep-alive connection gets idle_timeout */
    timer_set(hc, buf_used(&hc->cin) || hc->nreq == 0
                  ? hc->conf->header_timeout : hc->conf->idle_timeout);
    hc_parse_head(hc);
    if (!hc->closing && hc->state == S_HEAD)
        hc_sync_watchers(hc);
}

/* ---- plain HTTP forwarding ------------------------------------------------------ */

static void
hc_forward_begin(struct hc *hc)
{
    struct kap_http_req *q = hc->req;
    struct hc_buf *o = &hc->uout;
    char line[64];
    int ok = KAP_OK;

    hc->state = S_FORWARD;
    hc->uout.off = hc->uout.len = 0;      /* a retry rebuilds the head */
    hc->idle = hc->conf->idle_timeout;
    hc->last_active = kap_now();
    hc->deadline_total = 0;
    timer_set(hc, hc->idle);

    /* request line: origin-form towards the origin */
    ok |= buf_add(o, q->method.data, q->method.len);
    ok |= buf_str(o, " ");
    if (q->uri.path.data[0] == '?')
        ok |= buf_str(o, "/");
    ok |= buf_add(o, q->uri.path.data, q->uri.path.len);
    ok |= buf_str(o, " HTTP/1.1\r\n");
    if (!q->host) {
        ok |= buf_str(o, "Host: ");
        if (q->uri.host_type == KAP_HTTP_HOST_IPV6)
            ok |= buf_str(o, "[");
        ok |= buf_str(o, q->uri.host);
        if (q->uri.host_type == KAP_HTTP_HOST_IPV6)
            ok |= buf_str(o, "]");
        if (q->uri.port_given) {
            snprintf(line, sizeof(line), ":%u", (unsigned)q->uri.port);
            ok |= buf_str(o, line);
        }
        ok |= buf_str(o, "\r\n");
    }
    for (size_t i = 0; i < q->nheaders; i++) {
        if (kap_http_is_hop_by_hop(q->headers, q->nheaders, i))
            continue;
        ok |= buf_add(o, q->headers[i].name.data, q->headers[i].name.len);
        ok |= buf_str(o, ": ");
        ok |= buf_add(o, q->headers[i].value.data, q->headers[i].value.len);
        ok |= buf_str(o, "\r\n");
    }
    if (q->body == KAP_HTTP_BODY_CHUNKED)
        ok |= buf_str(o, "Transfer-Encoding: chunked\r\n");
    ok |= buf_str(o, hc->conf->upstream_keepalive > 0
                     ? "Connection: keep-alive\r\n\r\n"
                     : "Connection: close\r\n\r\n");
    if (ok != KAP_OK) {
        hc_close(hc);
        return;
    }
    if (!hc->head_skipped) {
        hc->cin.off += q->head_len;
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
        hc_close(hc);
        return;
    }
    kap_http_resp_reset(hc->resp);
    hc_run(hc);
}

/* move request body bytes from cin to uout; -1 on a framing error */
static int
fwd_request_body(struct hc *hc)
{
    while (!hc->q_done && buf_used(&hc->cin) && buf_used(&hc->uout) < HC_IOBUF) {
        const char *p = hc->cin.p + hc->cin.off;
        size_t n = buf_used(&hc->cin);
        if (hc->q_body == KAP_HTTP_BODY_LENGTH) {
            if (n > hc->q_left)
                n = (size_t)hc->q_left;
            if (buf_add(&hc->uout, p, n) != KAP_OK)
                return -1;
            hc->cin.off += n;
            hc->q_left -= n;
            if (hc->q_left == 0)
                hc->q_done = 1;
        } else {
            size_t used;
            struct kap_str d;
            int rc = kap_http_chunked_parse(&hc->qch, p, n, &used, &d);
            if (rc == KAP_ERROR)
                return -1;
            if (buf_add(&hc->uout, p, used) != KAP_OK)
                return -1;
            hc->cin.off += used;
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
    struct hc_buf *o = &hc->cout;
    char line[64];
    int ok = KAP_OK;

    snprintf(line, sizeof(line), "HTTP/1.1 %03d ", p->status);
    ok |= buf_str(o, line);
    ok |= buf_add(o, p->reason.data, p->reason.len);
    ok |= buf_str(o, "\r\n");
    for (size_t i = 0; i < p->nheaders; i++) {
        if (kap_http_is_hop_by_hop(p->headers, p->nheaders, i))
            continue;
        ok |= buf_add(o, p->headers[i].name.data, p->headers[i].name.len);
        ok |= buf_str(o, ": ");
        ok |= buf_add(o, p->headers[i].value.data, p->headers[i].value.len);
        ok |= buf_str(o, "\r\n");
    }
    if (p->status >= 200) {
        if (p->body == KAP_HTTP_BODY_CHUNKED && !hc->r_dechunk)
            ok |= buf_str(o, "Transfer-Encoding: chunked\r\n");
        ok |= buf_str(o, hc->client_ka ? "Connection: keep-alive\r\n"
                                       : "Connection: close\r\n");
    }
    ok |= buf_str(o, "\r\n");
    return ok;
}

/* parse response heads and move body bytes from uin to cout */
static int
fwd_response(struct hc *hc)
{
    struct kap_http_resp *p = hc->resp;

    while (!hc->r_done && buf_used(&hc->cout) < HC_IOBUF) {
        if (!hc->r_started) {
            /* reading a head */
            if (buf_used(&hc->uin) == 0)
                return 0;
            int rc = kap_http_parse_response(p, hc->uin.p + hc->uin.off,
                                             buf_used(&hc->uin), hc->method,
                                             NULL);
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
                hc->uin.off += p->head_len;
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
            hc->uin.off += p->head_len;
            if (p->body == KAP_HTTP_BODY_NONE) {
                hc->r_done = 1;
                break;
            }
            continue;
        }
        if (buf_used(&hc->uin) == 0)
            return 0;
        const char *d = hc->uin.p + hc->uin.off;
        size_t n = buf_used(&hc->uin);
        if (hc->r_body == KAP_HTTP_BODY_LENGTH) {
            if (n > hc->r_left)
                n = (size_t)hc->r_left;
            if (buf_add(&hc->cout, d, n) != KAP_OK)
                return -2;
            hc->uin.off += n;
            hc->r_left -= n;
            if (hc->r_left == 0)
                hc->r_done = 1;
        } else if (hc->r_body == KAP_HTTP_BODY_CHUNKED) {
            size_t used;
            struct kap_str s;
            int rc = kap_http_chunked_parse(&hc->rch, d, n, &used, &s);
            if (rc == KAP_ERROR)
                return -1;
            if (buf_add(&hc->cout, hc->r_dechunk ? s.data : d,
                        hc->r_dechunk ? s.len : used) != KAP_OK)
                return -2;
            hc->uin.off += used;
            if (rc == KAP_OK)
                hc->r_done = 1;
        } else {                                /* until close */
            if (buf_add(&hc->cout, d, n) != KAP_OK)
                return -2;
            hc->uin.off += n;
        }
    }
    return 0;
}

/* the exchange is complete: recycle or close both sides */
static void
fwd_finish(struct hc *hc)
{
    if (hc->upstream_ka && hc->q_done && buf_used(&hc->uin) == 0 &&
        buf_used(&hc->uout) == 0 && !hc->u_eof) {
        if (!held_put(hc))
            pool_put(hc, hc->ufd);
    } else {
        close(hc->ufd);
    }
    /* whatever that upstream sent past its response dies with it: it must
       never be read as the answer to the client's next request */
    buf_free(&hc->uin);
    buf_free(&hc->uout);
    hc->ufd = -1;
    io_stop(&hc->urd);
    io_stop(&hc->uwr);
    if (!hc->client_ka || !hc->q_done || kap_shutting_down()) {
        /* the body is still coming; or a keep-alive client (kapd is
           stopping) or pipelined bytes: more may be pending */
        hc->respond_close = !hc->q_done ? HC_CLOSE_LINGER
                          : hc->client_ka || buf_used(&hc->cin)
                            ? HC_CLOSE_CHECK : HC_CLOSE;
        hc->state = S_RESPOND;
        return;
    }
    hc->respond_close = 0;
    hc->state = S_RESPOND;       /* flush, then next head */
}

static int
read_into(int fd, struct hc_buf *b, size_t chunk, size_t max, int *eof,
          struct hc *hc)
{
    if (buf_reserve(b, chunk, max) != KAP_OK) {
        if (buf_reserve(b, 1, max) != KAP_OK)
            return 0;           /* full: parsing will complain */
    }
    ssize_t n = recv(fd, b->p + b->len, b->cap - b->len, 0);
    if (n > 0) {
        b->len += (size_t)n;
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
static int
fwd_retry(struct hc *hc)
{
    if (!hc->reused || hc->q_body != KAP_HTTP_BODY_NONE || hc->r_started ||
        buf_used(&hc->uin) != 0)
        return 0;
    io_stop(&hc->urd);
    io_stop(&hc->uwr);
    close(hc->ufd);
    hc->ufd = -1;
    hc->reused = 0;
    hc->u_eof = 0;
    KAP_DEBUG(HC_NAME, hc->c->id, "pooled upstream for %s closed, redialling",
              hc->subject);
    hc_resolve(hc);
    return 1;
}

/* ---- the pump --------------------------------------------------------------- */

static void
hc_sync_watchers(struct hc *hc)
{
    struct ev_loop *loop = kap_loop();
    int crd = 0, cwr = 0, urd = 0, uwr = 0;

    if (hc->state == S_TUNNEL)
        return;                 /* the relay drives the watchers */
    switch (hc->state) {
    case S_HEAD:
        crd = !hc->c_eof;
        break;
    case S_FIRST:
        crd = !hc->c_eof && buf_used(&hc->cout) == 0;
        urd = 1;
        cwr = buf_used(&hc->cout) > 0;
        break;
    case S_FORWARD:
        crd = !hc->q_done && !hc->c_eof && buf_used(&hc->uout) < HC_IOBUF;
        urd = !hc->u_eof && !hc->r_done && buf_used(&hc->cout) < HC_IOBUF;
        cwr = buf_used(&hc->cout) > 0;
        uwr = buf_used(&hc->uout) > 0;
        break;
    case S_RESPOND:
        cwr = buf_used(&hc->cout) > 0;
        break;
    default:
        break;
    }
#define SYNC(w, want)                                                      \
    do {                                                                   \
        if ((want) && !ev_is_active(w)) ev_io_start(loop, (w));            \
        else if (!(want) && ev_is_active(w)) ev_io_stop(loop, (w));        \
    } while (0)
    SYNC(&hc->crd, crd);
    SYNC(&hc->cwr, cwr);
    if (hc->ufd >= 0) {
        if (hc->urd.fd != hc->ufd) {
            io_stop(&hc->urd);
            io_stop(&hc->uwr);
            ev_io_set(&hc->urd, hc->ufd, EV_READ);
            ev_io_set(&hc->uwr, hc->ufd, EV_WRITE);
        }
        SYNC(&hc->urd, urd);
        SYNC(&hc->uwr, uwr);
    } else {
        io_stop(&hc->urd);
        io_stop(&hc->uwr);
    }
#undef SYNC
}

/* progress without I/O readiness knowledge; called after every event */
static void
hc_run(struct hc *hc)
{
    for (int guard = 0; guard < 64 && !hc->closing; guard++) {
        switch (hc->state) {
        case S_RESPOND: {
            int rc = flush_buf(hc->c->fd, &hc->cout, hc);
            if (rc == KAP_ERROR) {
                hc_close(hc);
                return;
            }
            if (rc == KAP_AGAIN)
                break;
            if (hc->respond_close) {
                hc_linger(hc);
                return;
            }
            hc_start_head(hc);
            if (hc->state != S_HEAD)
                continue;
            break;
        }
        case S_FIRST:
            if (flush_buf(hc->c->fd, &hc->cout, hc) == KAP_ERROR) {
                hc_close(hc);
                return;
            }
            if (buf_used(&hc->cout) == 0)
                buf_free(&hc->cout);    /* the 200 is out: hold nothing */
            break;
        case S_FORWARD: {
            int r = fwd_request_body(hc);
            if (r < 0) {
                KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                        "bad request body framing from %s", hc->c->peer_text);
                hc_close(hc);
                return;
            }
            if (flush_buf(hc->ufd, &hc->uout, hc) == KAP_ERROR) {
                if (fwd_retry(hc))
                    return;
                if (!hc->r_started) {
                    close(hc->ufd);
                    hc->ufd = -1;
                    hc->client_ka = 0;
                    respond_error(hc, 502, "upstream closed the connection");
                    return;
                }
                hc_close(hc);
                return;
            }
            r = fwd_response(hc);
            if (r < 0) {
                if (!hc->r_started && r == -1) {
                    close(hc->ufd);
                    hc->ufd = -1;
                    hc->client_ka = 0;
                    respond_error(hc, 502, "invalid response from upstream");
                    return;
                }
                hc_close(hc);
                return;
            }
            if (flush_buf(hc->c->fd, &hc->cout, hc) == KAP_ERROR) {
                hc_close(hc);
                return;
            }
            if (hc->u_eof && !hc->r_done) {
                if (hc->r_started && hc->r_body == KAP_HTTP_BODY_CLOSE &&
                    buf_used(&hc->uin) == 0) {
                    hc->r_done = 1;
                    hc->client_ka = 0;
                } else if (fwd_retry(hc)) {
                    return;
                } else if (!hc->r_started) {
                    close(hc->ufd);
                    hc->ufd = -1;
                    hc->client_ka = 0;
                    respond_error(hc, 502, "upstream closed the connection "
                                  "without a response");
                    return;
                } else if (buf_used(&hc->uin) == 0) {
                    hc_close(hc);       /* truncated body */
                    return;
                }
            }
            if (hc->r_done) {
                if (!hc->q_done)
                    hc->client_ka = 0;
                fwd_finish(hc);
                continue;
            }
            if (hc->c_eof && !hc->q_done) {
                hc_close(hc);
                return;
            }
            break;
        }
        default:
            break;
        }
        break;
    }
    if (!hc->closing)
        hc_sync_watchers(hc);
}

static void
crd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;
    ENTER(hc);

    switch (hc->state) {
    case S_HEAD: {
        size_t before = buf_used(&hc->cin);
        int r = read_into(hc->c->fd, &hc->cin, 1024,
                          (size_t)hc->conf->max_header_size + HC_IOBUF,
                          &hc->c_eof, hc);
        if (r < 0 || (hc->c_eof && buf_used(&hc->cin) == 0)) {
            hc_close(hc);
            goto out;
        }
        if (hc->c_eof) {
            hc->client_ka = 0;
            bad_head_names(hc);
            refuse_audit(hc, "incomplete request head");
            respond_error(hc, 400, "incomplete request head");
            goto out;
        }
        if (before == 0 && buf_used(&hc->cin) && hc->nreq > 0)
            timer_set(hc, hc->conf->header_timeout);
        hc_parse_head(hc);
        if (!hc->closing && hc->state == S_HEAD) {
            if (buf_used(&hc->cin) >= (size_t)hc->conf->max_header_size +
                                      HC_IOBUF) {
                hc->client_ka = 0;
                bad_head_names(hc);
                refuse_audit(hc, "request header too large (431)");
                respond_error(hc, 431, "request header too large");
            }
        }
        goto out;
    }
    case S_FIRST:
        first_client_read(hc);
        goto out;
    case S_FORWARD: {
        int r = read_into(hc->c->fd, &hc->cin, HC_IOBUF, 0, &hc->c_eof, hc);
        if (r < 0) {
            hc_close(hc);
            goto out;
        }
        hc_run(hc);
        goto out;
    }
    default:
        io_stop(w);
        goto out;
    }
out:
    LEAVE(hc);
}

/* either side writable: the state machine decides what to flush */
static void
wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;

    ENTER(hc);
    hc_run(hc);
    LEAVE(hc);
}

static void
urd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;
    ENTER(hc);

    if (hc->state == S_FIRST) {
        first_upstream_read(hc);
        goto out;
    }
    if (hc->state != S_FORWARD) {
        io_stop(w);
        goto out;
    }
    if (read_into(hc->ufd, &hc->uin, HC_IOBUF, 0, &hc->u_eof, hc) < 0)
        hc->u_eof = 1;
    hc_run(hc);
out:
    LEAVE(hc);
}

/* ---- listener ------------------------------------------------------------------ */

static void
hc_accept_setup(struct kap_conn *c)
{
    struct hc_conf *cf = c->conf;
    struct hc *hc = kap_palloc(c->pool, sizeof(*hc));

    if (hc == NULL) {
        kap_conn_close(c);
        return;
    }
    hc->c = c;
    hc->conf = cf;
    hc->ufd = -1;
    hc->kfd = -1;
    hc->kkey[0] = '\0';
    hc->subject = "";
    hc->up.pipe[0] = hc->up.pipe[1] = -1;
    hc->down.pipe[0] = hc->down.pipe[1] = -1;
    ev_io_init(&hc->crd, crd_cb, c->fd, EV_READ);
    ev_io_init(&hc->cwr, wr_cb, c->fd, EV_WRITE);
    ev_io_init(&hc->urd, urd_cb, -1, EV_READ);
    ev_io_init(&hc->uwr, wr_cb, -1, EV_WRITE);
    hc->crd.data = hc->cwr.data = hc->urd.data = hc->uwr.data = hc;
    ev_timer_init(&hc->timer, hc_timer_cb, 1, 0);
    hc->timer.data = hc;
    hc->up.hc = hc->down.hc = hc;
    if (kap_pool_cleanup_add(c->pool, hc_cleanup, hc) != KAP_OK) {
        kap_conn_close(c);
        return;
    }
    c->data = hc;
    hc->client_ka = 1;
}

static void
hc_accept_limits(struct hc *hc)
{
    struct kap_conn *c = hc->c;
    struct hc_conf *cf = hc->conf;

    if (kap_conn_count(HC_NAME) > (unsigned)cf->max_connections) {
        KAP_LOG(KAP_LOG_WARN, HC_NAME, c->id,
                "max_connections (%lld) reached, refusing %s",
                cf->max_connections, c->peer_text);
        hc->client_ka = 0;
        refuse_audit(hc, "max_connections reached (503)");
        respond_error(hc, 503, "too many connections");
        return;
    }
    if (cf->max_per_client > 0 &&
        kap_conn_count_peer(HC_NAME, &c->peer) > (unsigned)cf->max_per_client) {
        KAP_LOG(KAP_LOG_WARN, HC_NAME, c->id,
                "max_per_client (%lld) reached for %s", cf->max_per_client,
                c->peer_text);
        hc->client_ka = 0;
        refuse_audit(hc, "max_per_client reached (429)");
        respond_error(hc, 429, "too many connections from this client");
        return;
    }
    hc_start_head(hc);
}

static void
hc_accept(struct kap_conn *c)
{
    struct hc *hc;

    hc_accept_setup(c);
    if ((hc = c->data) == NULL)
        return;
    ENTER(hc);
    hc_accept_limits(hc);
    /* clients speak first, and under load the request is usually
       there already: read it now rather than after another loop turn
       (the watcher start is then undone before libev tells epoll) */
    if (!hc->closing && hc->state == S_HEAD && ev_is_active(&hc->crd))
        crd_cb(kap_loop(), &hc->crd, EV_READ);
    LEAVE(hc);
}

static void
hc_conn_close(struct kap_conn *c)
{
    struct hc *hc = c->data;

    if (hc != NULL) {
        hc->closing = 1;
        hc_stop_all(hc);
        if (hc->state == S_TUNNEL)
            tunnel_close_audit(hc);
    }
}

static void
hc_status(struct kap_gen *gen, void *conf, struct kap_buf *out)
{
    (void)gen; (void)conf;
    kap_buf_printf(out, "%u connections, %u tunnels, %u idle upstream",
                   kap_conn_count(HC_NAME), hc_tunnels, pool_n);
}

static void
hc_shutdown(void)
{
    while (pool_head)
        pool_del(pool_head, 1);
    while (pipes_n) {
        pipes_n--;
        close(pipes_free[pipes_n][0]);
        close(pipes_free[pipes_n][1]);
    }
    cache_drain(&cache_req);
    cache_drain(&cache_1k);
    cache_drain(&cache_2k);
    cache_drain(&cache_dial);
}

static const struct kap_listener_ops hc_listener = {
    hc_accept, NULL, hc_conn_close
};

const struct kap_module kap_http_connect_module = {
    KAP_MODULE_V1(HC_NAME),
    .version     = "0.1.0",
    .flags       = KAP_MOD_LISTENER,
    .conf_create = hc_conf_create,
    .conf_parse  = hc_conf_parse,
    .conf_check  = hc_conf_check,
    .init        = hc_init,
    .shutdown    = hc_shutdown,
    .listener    = &hc_listener,
    .status      = hc_status,
};
