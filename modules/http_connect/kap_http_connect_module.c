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
 * The module's files follow that order (kap_http_connect.h lists them);
 * this one holds the descriptor, configuration, accept, request heads,
 * the policy question, the pump that moves a connection between states,
 * its timers and its one cleanup.
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
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kap_http_connect.h"

static void *hc_conf_create(struct kap_gen *gen);
static int   hc_conf_parse(struct kap_gen *gen, void *vconf,
                           const config_setting_t *group, struct kap_err *err);
static int   hc_conf_check(struct kap_gen *gen, void *vconf,
                           struct kap_err *err);
static int   hc_init(struct kap_gen *gen, void *vconf);
static void  hc_shutdown(void);
static void  hc_status(struct kap_gen *gen, void *conf, struct kap_buf *out);
static void  hc_accept(struct kap_conn *c);
static void  hc_conn_close(struct kap_conn *c);
static void  hc_sync_watchers(struct hc *hc);
static void  hc_start_head(struct hc *hc);
static void  bad_head_names(struct hc *hc);

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

unsigned kap_http_connect_tunnels;  /* tunnels open now */

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

void
kap_http_connect_audit(struct hc *hc, const char *event, const char *action,
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

/*
 * The generation whose policy decides a new request: the current one,
 * even on a keep-alive connection accepted before a reload (a domain
 * taken out of the allowlist is refused at once, not when the agent
 * reconnects).  The connection keeps its own generation for its module
 * settings.
 */
struct kap_gen *
kap_http_connect_policy_gen(const struct hc *hc)
{
    struct kap_gen *g = kap_gen_current();

    return g != NULL ? g : hc->c->gen;
}

/* the request as a question of this module's kind */
struct kap_req *
kap_http_connect_req_new(struct hc *hc, struct kap_pool *p, uint32_t kind,
           const char *subject)
{
    struct kap_req *r = kap_req_new(kap_http_connect_policy_gen(hc), p, kind,
                                    HC_NAME, subject);
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
void
kap_http_connect_refuse_audit(struct hc *hc, const char *reason)
{
    struct kap_pool *p;
    struct kap_req *r;

    KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id, "%s %s:%u refused: %s",
            hc->method, hc->subject, (unsigned)hc->port, reason);
    if ((p = kap_pool_create()) == NULL)
        return;
    r = kap_http_connect_req_new(
        hc, p, hc->is_connect ? KAP_REQ_CONNECT : KAP_REQ_HTTP,
        hc->subject[0] ? hc->subject : hc->host);
    if (r != NULL)
        kap_req_refuse(r, reason);
    kap_pool_destroy(p);
}

static void
hc_stop_all(struct hc *hc)
{
    kap_http_connect_io_stop(&hc->crd);
    kap_http_connect_io_stop(&hc->cwr);
    kap_http_connect_io_stop(&hc->urd);
    kap_http_connect_io_stop(&hc->uwr);
    ev_timer_stop(kap_loop(), &hc->timer);
}

/* the one pool cleanup: releases everything the connection holds */
/*
 * Each policy question lives in its own pool, destroyed when the exchange
 * ends (or the tunnel starts), so a long keep-alive connection does not
 * grow and an idle tunnel keeps nothing of it.  Destroying it cancels a
 * question still pending.
 */
void
kap_http_connect_rpool_release(struct hc *hc)
{
    struct kap_pool *p = hc->rpool;

    hc->rpool = NULL;
    hc->preq = NULL;
    hc->fq = NULL;
    kap_pool_destroy(p);
}

void
kap_http_connect_cleanup(void *data)
{
    struct hc *hc = data;

    hc_stop_all(hc);
    kap_http_connect_rpool_release(hc);
    kap_http_connect_dial_free(hc);
    kap_http_connect_dir_free_pipe(&hc->up);
    kap_http_connect_dir_free_pipe(&hc->down);
    if (hc->state == S_TUNNEL && kap_http_connect_tunnels)
        kap_http_connect_tunnels--;
    if (hc->ufd >= 0) {
        close(hc->ufd);
        hc->ufd = -1;
    }
    if (hc->kfd >= 0) {
        close(hc->kfd);
        hc->kfd = -1;
    }
    kap_http_connect_buf_free(&hc->cin);
    kap_http_connect_buf_free(&hc->cout);
    kap_http_connect_buf_free(&hc->uin);
    kap_http_connect_buf_free(&hc->uout);
    kap_http_connect_cache_put(HC_CACHE_REQ, hc->req);
    hc->req = NULL;
    free(hc->resp);
    hc->resp = NULL;
    kap_http_connect_sized_free(hc->first, hc->first_cap);
    hc->first = NULL;
}


void
kap_http_connect_close(struct hc *hc)
{
    kap_http_connect_close_as(hc, HC_CLOSING);
}

/* stop everything; the connection ends as how says (HC_CLOSING*) now,
   or when the last LEAVE runs */
void
kap_http_connect_close_as(struct hc *hc, int how)
{
    if (hc->closing)
        return;
    hc->closing = how;
    hc_stop_all(hc);
    if (hc->state == S_TUNNEL)
        kap_http_connect_tunnel_close_audit(hc);
    if (hc->depth == 0)
        kap_http_connect_final(hc); /* else the last LEAVE */
}

/* end the connection as hc->closing says: close (which runs
   kap_http_connect_cleanup), or hand it to the core's lingering close */
void
kap_http_connect_final(struct hc *hc)
{
    struct kap_conn *c = hc->c;

    if (hc->closing == HC_CLOSING)
        kap_conn_close(c);
    else
        kap_conn_linger(c, hc->closing == HC_CLOSING_CHECK);
}

/* ---- timers -------------------------------------------------------------- */

void
kap_http_connect_timer_set(struct hc *hc, double secs)
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
        if (kap_buf_used(&hc->cin) == 0) {
            kap_http_connect_close(hc); /* idle keep-alive connection */
        } else {
            KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                    "client sent no complete request head in time");
            hc->client_ka = 0;
            bad_head_names(hc);
            kap_http_connect_refuse_audit(hc, "request head timeout (408)");
            kap_http_connect_respond_error(hc, 408, "request head timeout");
        }
        goto out;
    case S_POLICY:
        /* a waiting policy hook (ask a human): give up at idle_timeout */
        kap_http_connect_rpool_release(hc); /* cancels the waiting question */
        kap_http_connect_refuse_audit(hc, "policy decision timed out");
        hc->client_ka = 0;
        kap_http_connect_respond_error(hc, 504,
                                       "the policy decision timed out");
        goto out;
    case S_RESOLVE:
        /* resolving, asking about an address, or dialling: all stopped
           (a waiting address question is cancelled) */
        kap_http_connect_dial_free(hc);
        kap_http_connect_rpool_release(hc);
        kap_http_connect_refuse_audit(hc, "upstream connect timeout");
        kap_http_connect_respond_error(hc, 504,
                                       "timed out connecting upstream");
        goto out;
    case S_FIRST:
        if (hc->fq != NULL) {
            kap_http_connect_rpool_release(hc);
            kap_http_connect_refuse_audit(
                hc, "first bytes policy decision timed out "
                    "(handshake timeout)");
        } else if (hc->first_len)
            kap_http_connect_refuse_audit(
                hc, "incomplete TLS ClientHello / first bytes "
                    "(handshake timeout)");
        else
            kap_http_connect_refuse_audit(hc, "no first bytes from either side "
                             "(handshake timeout)");
        kap_http_connect_close(hc);
        goto out;
    case S_TUNNEL:
    case S_FORWARD:
        if (hc->deadline_total > 0 && now >= hc->deadline_total) {
            kap_http_connect_close(hc);
            goto out;
        }
        if (now - hc->last_active >= hc->idle) {
            kap_http_connect_close(hc);
            goto out;
        }
        {
            double next = hc->last_active + hc->idle - now;
            if (hc->deadline_total > 0 && hc->deadline_total - now < next)
                next = hc->deadline_total - now;
            kap_http_connect_timer_set(hc, next > 0.001 ? next : 0.001);
        }
        goto out;
    case S_RESPOND:
        kap_http_connect_close(hc);
        goto out;
    default:
        kap_http_connect_close(hc);
        goto out;
    }
out:
    LEAVE(hc);
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
    kap_http_connect_respond(hc, 403, body, 1);
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
        int fd = kap_http_connect_held_get(hc);
        if (fd < 0)
            fd = kap_http_connect_pool_get(hc);
        if (fd >= 0) {
            hc->ufd = fd;
            hc->reused = 1;
            kap_http_connect_forward_begin(hc);
            return;
        }
    }
    if (hc->kfd >= 0) {         /* a tunnel never needs the held one */
        kap_http_connect_up_watchers_drop(hc);
        close(hc->kfd);
        hc->kfd = -1;
    }
    /* a ClientHello (or other first message) sent in the same segment as
       the CONNECT is checked before anything is dialled */
    if (hc->is_connect && kap_buf_used(&hc->cin)) {
        if (kap_http_connect_take_pipelined(hc) != KAP_OK) {
            kap_http_connect_close(hc);
            return;
        }
        int fr = kap_http_connect_first_check(hc);
        if (fr < 0) {
            kap_http_connect_deny_first_403(hc);
            return;
        }
        if (fr == 0 && hc->fq != NULL)
            return;             /* kap_http_connect_first_answer() goes on */
    }
    kap_http_connect_resolve(hc);
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
    kap_http_connect_rpool_release(hc);
    hc->rpool = qp = kap_pool_create();
    if (qp == NULL) {
        kap_http_connect_close(hc);
        return;
    }
    struct kap_req *r = kap_req_new(kap_http_connect_policy_gen(hc), qp,
                                    hc->is_connect ? KAP_REQ_CONNECT
                                                   : KAP_REQ_HTTP,
                                    HC_NAME, hc->subject);
    if (r == NULL) {
        kap_http_connect_close(hc);
        return;
    }
    r->conn = hc->c;
    r->port = hc->port;
    r->client = hc->c->peer_text;
    r->detail = kap_pstrdup(qp, hc->method);
    hc->preq = r;
    hc->state = S_POLICY;
    /* the client's read watcher stays started: a keep-alive client sends
       nothing until it has its answer, and a stop now and a start for the
       next head would cost an epoll_ctl each; fired meanwhile, crd_cb
       stops it */
    kap_http_connect_timer_set(hc, hc->conf->idle_timeout);
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
    {
        /* truncated to the field, without printf (once per request) */
        size_t ml = q->method.len < sizeof(hc->method) - 1
                    ? q->method.len : sizeof(hc->method) - 1;
        if (ml > 0)
            memcpy(hc->method, q->method.data, ml);
        hc->method[ml] = '\0';
    }
    hc->client_minor = q->minor;
    hc->client_ka = q->keep_alive && !hc->is_connect;
    hc->subject = "";
    hc->port = 0;

    if (q->form != KAP_HTTP_FORM_AUTHORITY
        && q->form != KAP_HTTP_FORM_ABSOLUTE) {
        bad_head_names(hc);
        kap_http_connect_refuse_audit(
            hc, "not a proxy request (origin-form or asterisk-form)");
        kap_http_connect_respond(
            hc, 400,
            "kap: this is a proxy: send absolute-form requests "
            "(http://host/path) or CONNECT host:port\n",
            q->body == KAP_HTTP_BODY_NONE);
        return;
    }
    if ((st = set_target(hc, &q->uri, &why)) != 0) {
        char body[300];
        snprintf(body, sizeof(body), "kap: %s\n", why);
        kap_http_connect_refuse_audit(hc, why);
        kap_http_connect_respond(hc, st, body, 0);
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
                kap_http_connect_refuse_audit(
                    hc, "Host header does not match the request URI");
                kap_http_connect_respond(
                    hc, 400,
                    "kap: the Host header does not match the "
                    "request URI\n",
                    0);
                return;
            }
        }
        /* Upgrade is hop-by-hop: upgraded plain HTTP is not tunnelled */
    } else {
        /* a CONNECT needs nothing more of its head: give the parser and
           (unless bytes followed the head) the buffer back at once, so
           that many tunnels being set up at once stay small */
        kap_buf_consume(&hc->cin, q->head_len);
        kap_http_connect_cache_put(HC_CACHE_REQ, hc->req);
        hc->req = NULL;
        if (kap_buf_used(&hc->cin) == 0)
            kap_http_connect_buf_free(&hc->cin);
    }
    hc_ask(hc);
}

/* name what we can of a refused head (method, target) for the audit */
static void
bad_head_names(struct hc *hc)
{
    const char *p = hc->cin.data + hc->cin.off;
    size_t n = kap_buf_used(&hc->cin), i;

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

    if (kap_buf_used(&hc->cin) == 0)
        return;
    if (hc->req == NULL) {
        hc->req = kap_http_connect_cache_get(HC_CACHE_REQ);
        if (hc->req == NULL) {
            kap_http_connect_close(hc);
            return;
        }
        kap_http_req_reset(hc->req);
    }
    int rc = kap_http_parse_request(hc->req, hc->cin.data + hc->cin.off,
                                    kap_buf_used(&hc->cin), &lim);
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
        kap_http_connect_refuse_audit(hc, body);
        snprintf(body, sizeof(body), "kap: bad request: %s\n",
                 hc->req->error ? hc->req->error : "malformed");
        kap_http_connect_respond(hc, hc->req->status, body, 0);
        return;
    }
    hc_head_done(hc);
}

static void
hc_start_head(struct hc *hc)
{
    kap_http_connect_rpool_release(hc);
    hc->head_skipped = 0;
    hc->reused = 0;
    hc->state = S_HEAD;
    kap_http_connect_cache_put(HC_CACHE_REQ, hc->req);
    hc->req = NULL;
    free(hc->resp);
    hc->resp = NULL;
    kap_http_connect_buf_trim(&hc->cin);
    kap_http_connect_buf_trim(&hc->cout);
    kap_http_connect_buf_trim(&hc->uin);
    kap_http_connect_buf_trim(&hc->uout);
    hc->subject = "";
    hc->is_connect = 0;
    /* the first head (and any started one) must arrive within
       header_timeout; an idle keep-alive connection gets idle_timeout */
    kap_http_connect_timer_set(hc, kap_buf_used(&hc->cin)
                                           || hc->nreq == 0
                                       ? hc->conf->header_timeout
                                       : hc->conf->idle_timeout);
    hc_parse_head(hc);
    if (!hc->closing && hc->state == S_HEAD)
        hc_sync_watchers(hc);
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
        crd = !hc->c_eof && kap_buf_used(&hc->cout) == 0;
        urd = 1;
        cwr = kap_buf_used(&hc->cout) > 0;
        break;
    case S_FORWARD:
        crd = !hc->q_done && !hc->c_eof
              && kap_buf_used(&hc->uout) < HC_IOBUF;
        urd = !hc->u_eof && !hc->r_done
              && kap_buf_used(&hc->cout) < HC_IOBUF;
        cwr = kap_buf_used(&hc->cout) > 0;
        uwr = kap_buf_used(&hc->uout) > 0;
        break;
    case S_RESPOND:
        cwr = kap_buf_used(&hc->cout) > 0;
        break;
    default:
        break;
    }
#define SYNC(w, want)                                                      \
    do {                                                                   \
        if ((want) && !ev_is_active(w)) ev_io_start(loop, (w));            \
        else if (!(want) && ev_is_active(w)) ev_io_stop(loop, (w));        \
    } while (0)
    /* a forwarded request whose body is all read: the client's read
       watcher is left started (see hc_ask) and stopped by crd_cb if the
       client sends before its answer is complete */
    if (hc->state == S_FORWARD && hc->q_done && !hc->c_eof)
        crd = ev_is_active(&hc->crd);
    SYNC(&hc->crd, crd);
    SYNC(&hc->cwr, cwr);
    if (hc->ufd >= 0) {
        if (hc->urd.fd != hc->ufd) {
            kap_http_connect_io_stop(&hc->urd);
            kap_http_connect_io_stop(&hc->uwr);
            ev_io_set(&hc->urd, hc->ufd, EV_READ);
            ev_io_set(&hc->uwr, hc->ufd, EV_WRITE);
        }
        SYNC(&hc->urd, urd);
        SYNC(&hc->uwr, uwr);
    } else if (hc->kfd >= 0 && hc->urd.fd == hc->kfd) {
        kap_http_connect_io_stop(&hc->uwr);  /* urd: see fwd_finish */
    } else {
        kap_http_connect_io_stop(&hc->urd);
        kap_http_connect_io_stop(&hc->uwr);
    }
#undef SYNC
}

/* progress without I/O readiness knowledge; called after every event */
void
kap_http_connect_run(struct hc *hc)
{
    for (int guard = 0; guard < 64 && !hc->closing; guard++) {
        switch (hc->state) {
        case S_RESPOND: {
            int rc = kap_http_connect_flush_buf(hc->c->fd, &hc->cout, hc);
            if (rc == KAP_ERROR) {
                kap_http_connect_close(hc);
                return;
            }
            if (rc == KAP_AGAIN)
                break;
            if (hc->respond_close) {
                kap_http_connect_linger(hc);
                return;
            }
            hc_start_head(hc);
            if (hc->state != S_HEAD)
                continue;
            break;
        }
        case S_FIRST:
            if (kap_http_connect_flush_buf(hc->c->fd, &hc->cout, hc)
                == KAP_ERROR) {
                kap_http_connect_close(hc);
                return;
            }
            if (kap_buf_used(&hc->cout) == 0)
                kap_http_connect_buf_free(
                    &hc->cout); /* the 200 is out: hold nothing */
            break;
        case S_FORWARD: {
            int r = kap_http_connect_fwd_request_body(hc);
            if (r < 0) {
                KAP_LOG(KAP_LOG_INFO, HC_NAME, hc->c->id,
                        "bad request body framing from %s", hc->c->peer_text);
                kap_http_connect_close(hc);
                return;
            }
            if (kap_http_connect_flush_buf(hc->ufd, &hc->uout, hc)
                == KAP_ERROR) {
                if (kap_http_connect_fwd_retry(hc))
                    return;
                if (!hc->r_started) {
                    kap_http_connect_up_watchers_drop(hc);
                    close(hc->ufd);
                    hc->ufd = -1;
                    hc->client_ka = 0;
                    kap_http_connect_respond_error(
                        hc, 502, "upstream closed the connection");
                    return;
                }
                kap_http_connect_close(hc);
                return;
            }
            r = kap_http_connect_fwd_response(hc);
            if (r < 0) {
                if (!hc->r_started && r == -1) {
                    kap_http_connect_up_watchers_drop(hc);
                    close(hc->ufd);
                    hc->ufd = -1;
                    hc->client_ka = 0;
                    kap_http_connect_respond_error(
                        hc, 502, "invalid response from upstream");
                    return;
                }
                kap_http_connect_close(hc);
                return;
            }
            if (kap_http_connect_flush_buf(hc->c->fd, &hc->cout, hc)
                == KAP_ERROR) {
                kap_http_connect_close(hc);
                return;
            }
            if (hc->u_eof && !hc->r_done) {
                if (hc->r_started && hc->r_body == KAP_HTTP_BODY_CLOSE &&
                    kap_buf_used(&hc->uin) == 0) {
                    hc->r_done = 1;
                    hc->client_ka = 0;
                } else if (kap_http_connect_fwd_retry(hc)) {
                    return;
                } else if (!hc->r_started) {
                    kap_http_connect_up_watchers_drop(hc);
                    close(hc->ufd);
                    hc->ufd = -1;
                    hc->client_ka = 0;
                    kap_http_connect_respond_error(
                        hc, 502,
                        "upstream closed the connection "
                        "without a response");
                    return;
                } else if (kap_buf_used(&hc->uin) == 0) {
                    kap_http_connect_close(hc);       /* truncated body */
                    return;
                }
            }
            if (hc->r_done) {
                if (!hc->q_done)
                    hc->client_ka = 0;
                kap_http_connect_fwd_finish(hc);
                continue;
            }
            if (hc->c_eof && !hc->q_done) {
                kap_http_connect_close(hc);
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
        size_t before = kap_buf_used(&hc->cin);
        int r = kap_http_connect_read_into(hc->c->fd, &hc->cin, 1024,
                          (size_t)hc->conf->max_header_size + HC_IOBUF,
                          &hc->c_eof, hc);
        if (r < 0 || (hc->c_eof && kap_buf_used(&hc->cin) == 0)) {
            kap_http_connect_close(hc);
            goto out;
        }
        if (hc->c_eof) {
            hc->client_ka = 0;
            bad_head_names(hc);
            kap_http_connect_refuse_audit(hc, "incomplete request head");
            kap_http_connect_respond_error(hc, 400, "incomplete request head");
            goto out;
        }
        if (before == 0 && kap_buf_used(&hc->cin) && hc->nreq > 0)
            kap_http_connect_timer_set(hc, hc->conf->header_timeout);
        hc_parse_head(hc);
        if (!hc->closing && hc->state == S_HEAD) {
            if (kap_buf_used(&hc->cin)
                >= (size_t)hc->conf->max_header_size + HC_IOBUF) {
                hc->client_ka = 0;
                bad_head_names(hc);
                kap_http_connect_refuse_audit(
                    hc, "request header too large (431)");
                kap_http_connect_respond_error(hc, 431,
                                               "request header too large");
            }
        }
        goto out;
    }
    case S_FIRST:
        kap_http_connect_first_client_read(hc);
        goto out;
    case S_FORWARD: {
        if (hc->q_done || hc->c_eof) {
            kap_http_connect_io_stop(w);    /* left started: see hc_ask */
            goto out;
        }
        int r = kap_http_connect_read_into(hc->c->fd, &hc->cin, HC_IOBUF, 0,
                                           &hc->c_eof, hc);
        if (r < 0) {
            kap_http_connect_close(hc);
            goto out;
        }
        kap_http_connect_run(hc);
        goto out;
    }
    default:
        kap_http_connect_io_stop(w);
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
    kap_http_connect_run(hc);
    LEAVE(hc);
}

static void
urd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct hc *hc = w->data;
    (void)loop; (void)revents;
    ENTER(hc);

    if (hc->state == S_FIRST) {
        kap_http_connect_first_upstream_read(hc);
        goto out;
    }
    if (hc->state != S_FORWARD) {
        kap_http_connect_io_stop(w);
        goto out;
    }
    if (kap_http_connect_read_into(hc->ufd, &hc->uin, HC_IOBUF, 0, &hc->u_eof,
                                   hc)
        < 0)
        hc->u_eof = 1;
    kap_http_connect_run(hc);
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
    if (kap_pool_cleanup_add(c->pool, kap_http_connect_cleanup, hc) != KAP_OK) {
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
        kap_http_connect_refuse_audit(hc, "max_connections reached (503)");
        kap_http_connect_respond_error(hc, 503, "too many connections");
        return;
    }
    if (cf->max_per_client > 0 &&
        kap_conn_count_peer(HC_NAME, &c->peer) > (unsigned)cf->max_per_client) {
        KAP_LOG(KAP_LOG_WARN, HC_NAME, c->id,
                "max_per_client (%lld) reached for %s", cf->max_per_client,
                c->peer_text);
        hc->client_ka = 0;
        kap_http_connect_refuse_audit(hc, "max_per_client reached (429)");
        kap_http_connect_respond_error(
            hc, 429, "too many connections from this client");
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
            kap_http_connect_tunnel_close_audit(hc);
    }
}

static void
hc_status(struct kap_gen *gen, void *conf, struct kap_buf *out)
{
    (void)gen; (void)conf;
    kap_buf_printf(out, "%u connections, %u tunnels, %u idle upstream",
                   kap_conn_count(HC_NAME), kap_http_connect_tunnels,
                   kap_upstream_idle_count());
}

static void
hc_shutdown(void)
{
    kap_upstream_idle_close_all();
    kap_http_connect_pipes_drain();
    kap_http_connect_caches_drain();
}
