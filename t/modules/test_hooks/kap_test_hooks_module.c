/*
 * kap_test_hooks_module.c -- the test module "test_hooks" (never
 * installed).  It registers a policy hook and an audit hook for every
 * request kind and answers as its configuration says, so the chain and
 * generation machinery can be tested without real policy:
 *
 *   test_hooks: {
 *       listen = "127.0.0.1:PORT";     # line protocol below
 *       answer = "allow";              # allow|deny|decline|error|wait
 *       wait = 0.2;                    # seconds, for answer = "wait"
 *       after_wait = "allow";          # answer once the wait is over
 *       kinds = ["test", "connect"];   # kinds it answers (others: decline);
 *                                      # any built-in name, or th_custom,
 *                                      # the kind test_hooks defines
 *       audit = true;                  # record audit events ...
 *       audit_file = "hooks.log";      # ... one line each, in this file
 *       always = false;                # an allow says "allow always"
 *                                      # (KAP_REQ_F_ALWAYS)
 *   };
 *
 * Line protocol (one command per line):
 *   CHECK <subject> [<kind> [<port>]]  ->  "ALLOW <decided_by> <reason>"
 *                                          or "DENY <decided_by> <reason>"
 *   PEER                               ->  "PEER <known> uid=U gid=G pid=P"
 *                                          (SO_PEERCRED of a unix socket)
 *   GEN                                ->  generation id of the connection
 *   FETCH <url> [<max_bytes> [<ca_file>]]  ->  fetched with kap_curl
 *       (asked_by test_hooks, 10 s timeout): "FETCHED <status> <body
 *       bytes> <header bytes> <first 200 body bytes, controls as '.'>" or
 *       "FETCH-ERROR <reason>"; the connection keeps reading meanwhile, so
 *       closing it mid-fetch releases the transfer
 *   STREAM <url> [<timeout> [<mode> [<max_bytes> [<ca_file>]]]]  ->
 *       kap_curl_stream()
 *       (asked_by test_hooks; timeout to the head, default 10 s), one line
 *       per event as it happens: "HEAD <status> <header bytes>
 *       <content-type or ->", "DATA <bytes> <first 200 bytes, controls as
 *       '.'>" for each piece, then "DONE <status> <total bytes>" or
 *       "STREAM-ERROR <status> <reason>".  mode "go" (default) takes every
 *       piece; "pause" answers KAP_AGAIN to the head and to every piece
 *       ("RESUME" on the connection lets the next one come); "stop"
 *       answers KAP_ERROR to the first piece; "close" closes the
 *       connection from inside the first piece's callback
 *   RESUME                             ->  kap_curl_resume() of the
 *                                          STREAM in progress (no answer)
 *   GO                                 ->  its mode becomes "go", and
 *                                          kap_curl_resume() (no answer)
 *   FETCHING                           ->  kap_curl_pending() of the
 *                                          connection's generation
 *   DIAL <host> <port>                 ->  dialled with kap_upstream
 *       (asked_by test_hooks, the current generation): "DIALED <addr>",
 *       "DIAL-DENY <status> <address> <reason>" or "DIAL-ERROR <status>
 *       <reason>"; the connection keeps reading, so closing it mid-dial
 *       cancels the dial; the dialled socket is kept for IDLE-PUT
 *   IDLE-PUT <seconds>                 ->  kap_upstream_idle_put() of it:
 *                                          "PUT"
 *   IDLE-TAKE <host> <port>            ->  kap_upstream_idle_take():
 *                                          "TOOK <addr>" or "NONE"
 *   anything else                      ->  echoed back
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_addr.h>
#include <kapd/kap_curl.h>
#include <kapd/kap_upstream.h>

#define TH_NAME "test_hooks"

enum th_answer { TH_ALLOW = 0, TH_DENY, TH_DECLINE, TH_ERROR, TH_WAIT };
static const char *const th_answers[] = {
    "allow", "deny", "decline", "error", "wait", NULL
};

struct th_conf {
    int          answer;        /* enum th_answer */
    int          after_wait;    /* enum th_answer (not wait) */
    double       wait;
    uint32_t     kinds;
    int          audit;
    const char  *audit_file;    /* gen pool, or NULL */
    int          always;        /* allows carry KAP_REQ_F_ALWAYS */
};

/* state of one waiting policy question (r->hook_data) */
struct th_wait {
    ev_timer        timer;
    struct kap_req *r;
    int             ready;
};

/* one connection of the line protocol */
struct th_conn {
    struct kap_conn *c;
    ev_io            io;
    char             buf[4096];
    size_t           len;
    int              busy;      /* a CHECK is waiting for its answer */
    struct kap_pool *rpool;     /* that CHECK's request pool */
    struct kap_curl *fetch;     /* a FETCH in progress (busy is set) */
    struct kap_curl *stream;    /* a STREAM in progress (busy is set) */
    int              smode;     /* enum th_smode */
    size_t           sbytes;    /* its body bytes so far */
    struct kap_upstream *dial;  /* a DIAL in progress (busy is set) */
    int              ufd;       /* the last DIAL's socket, or -1 */
    struct sockaddr_storage usa;
    char             uhost[256];
    unsigned         uport;
};

enum th_smode { TH_S_GO = 0, TH_S_PAUSE, TH_S_STOP, TH_S_CLOSE };

/* the kinds test_hooks defines itself (a protocol module's own question
 * kind), besides answering every built-in one */
static const char *const th_defined_kinds[] = { "th_custom", NULL };

/* a kind by name: built in, th_custom, or another module's */
static uint32_t
th_kind(const char *name)
{
    return kap_req_kind(name);
}

/* ---- configuration ------------------------------------------------------ */

static void *
th_conf_create(struct kap_gen *gen)
{
    struct th_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf == NULL)
        return NULL;
    cf->answer = -1;
    cf->after_wait = -1;
    cf->wait = -1;
    cf->audit = -1;
    return cf;
}

static int
th_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *g,
              struct kap_err *err)
{
    static const char *const keys[] = {
        "listen", "answer", "wait", "after_wait", "kinds", "audit", "always",
        "audit_file", NULL
    };
    struct th_conf *cf = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const char *s, **kinds;
    size_t i, n;
    int rc;

    if (g == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(g, keys, err) != KAP_OK)
        return KAP_ERROR;
    rc = kap_conf_get_str(g, "listen", pool, &s, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_OK
        && kap_listen_add(gen, TH_NAME, KAP_LISTEN_TCP, s,
                          config_setting_get_member(g, "listen"), err)
           != KAP_OK)
        return KAP_ERROR;
    if (kap_conf_get_enum(g, "answer", th_answers, &cf->answer, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_enum(g, "after_wait", th_answers, &cf->after_wait, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (cf->after_wait == TH_WAIT) {
        kap_err_at(err, config_setting_get_member(g, "after_wait"),
                   "after_wait cannot be \"wait\"");
        return KAP_ERROR;
    }
    if (kap_conf_get_secs(g, "wait", &cf->wait, err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_bool(g, "always", &cf->always, err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_bool(g, "audit", &cf->audit, err) == KAP_ERROR)
        return KAP_ERROR;
    rc = kap_conf_get_str(g, "audit_file", pool, &s, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_OK && (cf->audit_file = kap_conf_path(gen, s)) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    rc = kap_conf_get_strlist(g, "kinds", pool, &kinds, &n, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_OK) {
        cf->kinds = 0;
        for (i = 0; i < n; i++) {
            uint32_t b = th_kind(kinds[i]);
            if (b == 0) {
                kap_err_at(err, config_setting_get_member(g, "kinds"),
                           "unknown request kind \"%s\"", kinds[i]);
                return KAP_ERROR;
            }
            cf->kinds |= b;
        }
    }
    return KAP_OK;
}

static int
th_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct th_conf *cf = conf;

    (void) gen;
    (void) err;
    if (cf->answer < 0)
        cf->answer = TH_DECLINE;
    if (cf->after_wait < 0)
        cf->after_wait = TH_ALLOW;
    if (cf->wait < 0)
        cf->wait = 0.2;
    if (cf->kinds == 0)
        cf->kinds = KAP_REQ_TEST;
    if (cf->audit < 0)
        cf->audit = 1;
    return KAP_OK;
}

/* ---- hooks ---------------------------------------------------------------- */

static int
th_answer(struct kap_req *r, int answer)
{
    switch (answer) {
    case TH_ALLOW:
        kap_req_decide(r, KAP_ALLOW, TH_NAME, "test allow");
        return KAP_OK;
    case TH_DENY:
        kap_req_decide(r, KAP_DENY, TH_NAME, "test deny");
        return KAP_OK;
    case TH_ERROR:
        return KAP_ERROR;
    default:
        return KAP_DECLINED;
    }
}

static void
th_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct th_wait *tw = (struct th_wait *) w;

    (void) loop;
    (void) revents;
    tw->ready = 1;
    kap_policy_resume(tw->r);
}

static void
th_cancel(struct kap_req *r)
{
    struct th_wait *tw = r->hook_data;

    if (tw != NULL)
        ev_timer_stop(kap_loop(), &tw->timer);
}

static int
th_policy(struct kap_req *r, void *conf)
{
    struct th_conf *cf = conf;
    struct th_wait *tw = r->hook_data;
    int rc;

    if (!(cf->kinds & r->kind))
        return KAP_DECLINED;
    if (tw != NULL) {                       /* called again after resume */
        if (!tw->ready)
            return KAP_AGAIN;
        rc = th_answer(r, cf->after_wait);
        if (rc == KAP_OK && r->verdict == KAP_ALLOW && cf->always)
            r->flags |= KAP_REQ_F_ALWAYS;
        return rc;
    }
    if (cf->answer != TH_WAIT) {
        rc = th_answer(r, cf->answer);
        if (rc == KAP_OK && r->verdict == KAP_ALLOW && cf->always)
            r->flags |= KAP_REQ_F_ALWAYS;
        return rc;
    }
    tw = kap_palloc(r->pool, sizeof(*tw));
    if (tw == NULL)
        return KAP_ERROR;
    tw->r = r;
    ev_timer_init(&tw->timer, th_wait_cb, cf->wait, 0.);
    ev_timer_start(kap_loop(), &tw->timer);
    r->hook_data = tw;
    r->hook_cancel = th_cancel;
    return KAP_AGAIN;
}

static void
th_audit(const struct kap_audit_event *ev, void *conf)
{
    struct th_conf *cf = conf;
    char line[2048];
    int fd, n;

    if (!cf->audit || cf->audit_file == NULL)
        return;
    n = snprintf(line, sizeof(line), "%s %s %s %s %s %s gen=%llu\n",
                 ev->event ? ev->event : "-", kap_req_kind_name(ev->kind),
                 ev->subject ? ev->subject : "-",
                 ev->action ? ev->action : "-",
                 ev->decided_by ? ev->decided_by : "-",
                 ev->reason ? ev->reason : "-",
                 (unsigned long long) ev->gen_id);
    if (n < 0)
        return;
    if ((size_t) n >= sizeof(line))
        n = (int) sizeof(line) - 1;
    fd = open(cf->audit_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
              0644);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t) n) < 0)
        KAP_LOG(KAP_LOG_WARN, TH_NAME, ev->conn_id, "audit_file: %s",
                strerror(errno));
    close(fd);
}

static const struct kap_hook th_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_ALL, th_policy, NULL, NULL },
    { KAP_HOOK_AUDIT, KAP_REQ_ALL, NULL, th_audit, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

/* ---- the line protocol ------------------------------------------------- */

static void th_process(struct th_conn *tc);

static void
th_pool_free(void *p)
{
    kap_pool_destroy(p);
}

static void
th_reply(struct th_conn *tc, const char *s)
{
    size_t n = strlen(s), off = 0;

    while (off < n) {
        ssize_t w = write(tc->c->fd, s + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;     /* tests read small replies: good enough */
        off += (size_t) w;
    }
}

static void
th_close(struct th_conn *tc)
{
    ev_io_stop(kap_loop(), &tc->io);
    kap_conn_close(tc->c);     /* runs the cleanups: cancels a waiting CHECK */
}

static void
th_answered(struct th_conn *tc, struct kap_req *r)
{
    char out[1024];

    snprintf(out, sizeof(out), "%s %s %s\n",
             r->verdict == KAP_ALLOW ? "ALLOW" : "DENY",
             r->decided_by ? r->decided_by : "-",
             r->reason ? r->reason : "");
    th_reply(tc, out);
    kap_pool_cleanup_run(tc->c->pool, th_pool_free,
                         tc->rpool);
    tc->rpool = NULL;
}

static void
th_done(struct kap_req *r, void *data)
{
    struct th_conn *tc = data;

    th_answered(tc, r);
    tc->busy = 0;
    ev_io_start(kap_loop(), &tc->io);
    th_process(tc);
}

static void
th_check(struct th_conn *tc, char *args)
{
    char *subject, *kind, *port, *save = NULL;
    uint32_t bit = KAP_REQ_TEST;
    struct kap_req *r;

    subject = strtok_r(args, " ", &save);
    kind = strtok_r(NULL, " ", &save);
    port = strtok_r(NULL, " ", &save);
    if (subject == NULL) {
        th_reply(tc, "ERR no subject\n");
        return;
    }
    if (kind != NULL && (bit = th_kind(kind)) == 0) {
        th_reply(tc, "ERR unknown kind\n");
        return;
    }
    tc->rpool = kap_pool_create();
    if (tc->rpool == NULL
        || kap_pool_cleanup_add(tc->c->pool, th_pool_free,
                                tc->rpool) != KAP_OK) {
        kap_pool_destroy(tc->rpool);
        tc->rpool = NULL;
        th_reply(tc, "ERR no memory\n");
        return;
    }
    r = kap_req_new(tc->c->gen, tc->rpool, bit, TH_NAME, subject);
    if (r == NULL) {
        th_reply(tc, "ERR no memory\n");
        return;
    }
    r->conn = tc->c;
    r->client = tc->c->peer_text;
    if (port != NULL) {
        long p = strtol(port, NULL, 10);
        r->port = (uint16_t) (p > 0 && p < 65536 ? p : 0);
    }
    if (kap_policy_check(r, th_done, tc) == KAP_AGAIN) {
        tc->busy = 1;
        ev_io_stop(kap_loop(), &tc->io);
        return;
    }
    th_answered(tc, r);
}

static void
th_fetched(struct kap_curl *cu, struct kap_curl_result *res, void *data)
{
    struct th_conn *tc = data;
    char out[1024], snip[201];
    size_t i;

    (void) cu;
    tc->fetch = NULL;
    if (res->rc == KAP_OK) {
        for (i = 0; i < res->body->len && i < sizeof(snip) - 1; i++) {
            unsigned char ch = (unsigned char) res->body->data[i];
            snip[i] = ch < 0x20 || ch >= 0x7f ? '.' : (char) ch;
        }
        snip[i] = '\0';
        snprintf(out, sizeof(out), "FETCHED %ld %zu %zu %s\n", res->status,
                 res->body->len, res->headers->len, snip);
    } else {
        snprintf(out, sizeof(out), "FETCH-ERROR %s\n", res->error);
    }
    th_reply(tc, out);
    tc->busy = 0;
    th_process(tc);
}

/* FETCH <url> [<max_bytes> [<ca_file>]]: the reader stays on, so a client
   that goes away ends the connection and, through its pool, the fetch */
static void
th_fetch(struct th_conn *tc, char *args)
{
    struct kap_curl_opts o;
    char *url, *max, *ca, *save = NULL;

    url = strtok_r(args, " ", &save);
    max = strtok_r(NULL, " ", &save);
    ca = strtok_r(NULL, " ", &save);
    if (url == NULL) {
        th_reply(tc, "ERR no url\n");
        return;
    }
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.asked_by = TH_NAME;
    o.conn = tc->c;
    o.max_body = max != NULL ? (size_t) strtoul(max, NULL, 10) : 0;
    o.ca_file = ca;
    o.timeout = 10;
    tc->fetch = kap_curl_fetch(tc->c->gen, tc->c->pool, &o, th_fetched, tc);
    if (tc->fetch == NULL) {
        th_reply(tc, "ERR no memory\n");
        return;
    }
    tc->busy = 1;
}

/* a piece of text for a reply line: at most 200 bytes, controls as '.' */
static void
th_snip(char *out, size_t outlen, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n && i < 200 && i + 1 < outlen; i++) {
        unsigned char ch = (unsigned char) p[i];
        out[i] = ch < 0x20 || ch >= 0x7f ? '.' : (char) ch;
    }
    out[i] = '\0';
}

static int
th_stream_head(struct kap_curl *cu, long status, const struct kap_buf *h,
               void *data)
{
    struct th_conn *tc = data;
    char out[512], ct[201] = "-";
    const char *p = h->data, *end = h->data + h->len, *nl;

    (void) cu;
    for (; p < end; p = nl + 1) {
        if ((nl = memchr(p, '\n', (size_t) (end - p))) == NULL)
            break;
        if ((size_t) (nl - p) > 13
            && strncasecmp(p, "content-type:", 13) == 0) {
            const char *v = p + 13;
            size_t n;
            while (v < nl && *v == ' ')
                v++;
            n = (size_t) (nl - v);
            if (n > 0 && v[n - 1] == '\r')
                n--;
            th_snip(ct, sizeof(ct), v, n);
        }
    }
    snprintf(out, sizeof(out), "HEAD %ld %zu %s\n", status, h->len, ct);
    th_reply(tc, out);
    return tc->smode == TH_S_PAUSE ? KAP_AGAIN : KAP_OK;
}

static int
th_stream_body(struct kap_curl *cu, const char *p, size_t n, void *data)
{
    struct th_conn *tc = data;
    char out[300], snip[201];

    (void) cu;
    tc->sbytes += n;
    th_snip(snip, sizeof(snip), p, n);
    snprintf(out, sizeof(out), "DATA %zu %s\n", n, snip);
    th_reply(tc, out);
    switch (tc->smode) {
    case TH_S_PAUSE:
        return KAP_AGAIN;
    case TH_S_STOP:
        return KAP_ERROR;
    case TH_S_CLOSE:
        th_close(tc);       /* the pool goes: the transfer with it */
        return KAP_OK;
    default:
        return KAP_OK;
    }
}

static void
th_streamed(struct kap_curl *cu, struct kap_curl_result *res, void *data)
{
    struct th_conn *tc = data;
    char out[700];

    (void) cu;
    tc->stream = NULL;
    if (res->rc == KAP_OK)
        snprintf(out, sizeof(out), "DONE %ld %zu\n", res->status, tc->sbytes);
    else
        snprintf(out, sizeof(out), "STREAM-ERROR %ld %s\n", res->status,
                 res->error);
    th_reply(tc, out);
    tc->busy = 0;
    th_process(tc);
}

/* STREAM <url> [<timeout> [<mode> [<max_bytes> [<ca_file>]]]]: while it
   runs, the connection reads only RESUME and GO (and its end) */
static void
th_stream(struct th_conn *tc, char *args)
{
    static const struct kap_curl_stream_ops ops = {
        th_stream_head, th_stream_body
    };
    static const char *const modes[] = { "go", "pause", "stop", "close" };
    struct kap_curl_opts o;
    char *url, *tmo, *mode, *max, *ca, *save = NULL;
    size_t i;

    url = strtok_r(args, " ", &save);
    tmo = strtok_r(NULL, " ", &save);
    mode = strtok_r(NULL, " ", &save);
    max = strtok_r(NULL, " ", &save);
    ca = strtok_r(NULL, " ", &save);
    if (url == NULL) {
        th_reply(tc, "ERR no url\n");
        return;
    }
    tc->smode = TH_S_GO;
    for (i = 0; mode != NULL && i < sizeof(modes) / sizeof(modes[0]); i++)
        if (strcmp(mode, modes[i]) == 0)
            tc->smode = (int) i;
    tc->sbytes = 0;
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.asked_by = TH_NAME;
    o.conn = tc->c;
    o.timeout = tmo != NULL ? strtod(tmo, NULL) : 10;
    o.max_body = max != NULL ? (size_t) strtoul(max, NULL, 10) : 0;
    o.ca_file = ca;
    tc->stream = kap_curl_stream(tc->c->gen, tc->c->pool, &o, &ops,
                                 th_streamed, tc);
    if (tc->stream == NULL) {
        th_reply(tc, "ERR no memory\n");
        return;
    }
    tc->busy = 1;
}

static void
th_dialled(void *data, const struct kap_upstream_result *res)
{
    struct th_conn *tc = data;
    char out[700], at[KAP_ADDR_TEXT_MAX];

    tc->dial = NULL;
    if (res->rc == KAP_OK) {
        tc->ufd = res->fd;
        memcpy(&tc->usa, res->sa, res->sa->sa_family == AF_INET6
               ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
        snprintf(out, sizeof(out), "DIALED %s\n",
                 kap_addr_to_text(res->sa, at, sizeof(at)) ? at : "?");
    } else if (res->rc == KAP_DENY) {
        snprintf(out, sizeof(out), "DIAL-DENY %d %s %s\n", res->status,
                 res->req != NULL ? res->req->subject : "-", res->reason);
    } else {
        snprintf(out, sizeof(out), "DIAL-ERROR %d %s\n", res->status,
                 res->reason);
    }
    th_reply(tc, out);
    tc->busy = 0;
    th_process(tc);
}

static void
th_upstream_target(struct th_conn *tc, struct kap_upstream_target *t,
                   const char *host, unsigned port)
{
    memset(t, 0, sizeof(*t));
    t->gen = kap_gen_current();
    t->host = host;
    t->port = port;
    t->want_v6 = 1;
    t->asked_by = TH_NAME;
    t->conn = tc->c;
    t->client = tc->c->peer_text;
}

/* DIAL <host> <port> */
static void
th_dial(struct th_conn *tc, char *args)
{
    struct kap_upstream_target t;
    char *host, *port, *save = NULL;

    host = strtok_r(args, " ", &save);
    port = strtok_r(NULL, " ", &save);
    if (host == NULL || port == NULL || strlen(host) >= sizeof(tc->uhost)) {
        th_reply(tc, "ERR DIAL host port\n");
        return;
    }
    if (tc->ufd >= 0)
        close(tc->ufd);
    tc->ufd = -1;
    snprintf(tc->uhost, sizeof(tc->uhost), "%s", host);
    tc->uport = (unsigned) strtoul(port, NULL, 10);
    th_upstream_target(tc, &t, tc->uhost, tc->uport);
    tc->dial = kap_upstream_dial(&t, th_dialled, tc);
    if (tc->dial == NULL) {
        th_reply(tc, "DIAL-ERROR 502 cannot start\n");
        return;
    }
    tc->busy = 1;
}

/* IDLE-TAKE <host> <port> */
static void
th_idle_take(struct th_conn *tc, char *args)
{
    struct kap_upstream_target t;
    struct sockaddr_storage sa;
    char *host, *port, *save = NULL, out[300], at[KAP_ADDR_TEXT_MAX];
    int fd;

    host = strtok_r(args, " ", &save);
    port = strtok_r(NULL, " ", &save);
    if (host == NULL || port == NULL) {
        th_reply(tc, "ERR IDLE-TAKE host port\n");
        return;
    }
    th_upstream_target(tc, &t, host, (unsigned) strtoul(port, NULL, 10));
    fd = kap_upstream_idle_take(&t, &sa);
    if (fd < 0) {
        th_reply(tc, "NONE\n");
        return;
    }
    if (tc->ufd >= 0)
        close(tc->ufd);
    tc->ufd = fd;
    tc->usa = sa;
    snprintf(out, sizeof(out), "TOOK %s\n",
             kap_addr_to_text((struct sockaddr *) &sa, at, sizeof(at))
             ? at : "?");
    th_reply(tc, out);
}

/* the connection's end: a dial in progress is cancelled, a socket closed */
static void
th_upstream_cleanup(void *data)
{
    struct th_conn *tc = data;

    kap_upstream_cancel(tc->dial);
    tc->dial = NULL;
    if (tc->ufd >= 0)
        close(tc->ufd);
    tc->ufd = -1;
}

/* handle every complete line in the buffer (stops while a CHECK waits) */
static void
th_process(struct th_conn *tc)
{
    char *nl;

    while ((nl = memchr(tc->buf, '\n', tc->len)) != NULL) {
        size_t n = (size_t) (nl - tc->buf);
        char line[sizeof(tc->buf)];

        memcpy(line, tc->buf, n);
        line[n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[n - 1] = '\0';
        if (tc->busy && !(tc->stream != NULL && (strcmp(line, "RESUME") == 0
                                                 || strcmp(line, "GO") == 0)))
            break;          /* later, once the command in progress ends */
        memmove(tc->buf, nl + 1, tc->len - n - 1);
        tc->len -= n + 1;

        if (strcmp(line, "RESUME") == 0) {
            kap_curl_resume(tc->stream);
        } else if (strcmp(line, "GO") == 0) {
            tc->smode = TH_S_GO;
            kap_curl_resume(tc->stream);
        } else if (strncmp(line, "STREAM ", 7) == 0) {
            th_stream(tc, line + 7);
        } else if (strncmp(line, "CHECK ", 6) == 0) {
            th_check(tc, line + 6);
        } else if (strncmp(line, "FETCH ", 6) == 0) {
            th_fetch(tc, line + 6);
        } else if (strncmp(line, "DIAL ", 5) == 0) {
            th_dial(tc, line + 5);
        } else if (strncmp(line, "IDLE-PUT ", 9) == 0) {
            kap_upstream_idle_put(tc->uhost, tc->uport, tc->ufd,
                                  (struct sockaddr *) &tc->usa,
                                  strtod(line + 9, NULL));
            tc->ufd = -1;
            th_reply(tc, "PUT\n");
        } else if (strncmp(line, "IDLE-TAKE ", 10) == 0) {
            th_idle_take(tc, line + 10);
        } else if (strcmp(line, "FETCHING") == 0) {
            char out[32];
            snprintf(out, sizeof(out), "%u\n", kap_curl_pending(tc->c->gen));
            th_reply(tc, out);
        } else if (strcmp(line, "PEER") == 0) {
            char out[96];
            snprintf(out, sizeof(out), "PEER %d uid=%ld gid=%ld pid=%ld\n",
                     tc->c->peer_cred, (long) tc->c->peer_uid,
                     (long) tc->c->peer_gid, (long) tc->c->peer_pid);
            th_reply(tc, out);
        } else if (strcmp(line, "GEN") == 0) {
            char out[32];
            snprintf(out, sizeof(out), "%llu\n",
                     (unsigned long long) kap_gen_id(tc->c->gen));
            th_reply(tc, out);
        } else {
            char out[sizeof(line) + 1];
            snprintf(out, sizeof(out), "%s\n", line);
            th_reply(tc, out);
        }
    }
}

static void
th_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct th_conn *tc = (struct th_conn *) ((char *) w
                                             - offsetof(struct th_conn, io));
    ssize_t n;

    (void) loop;
    (void) revents;
    if (tc->len == sizeof(tc->buf)) {
        th_reply(tc, "ERR line too long\n");
        th_close(tc);
        return;
    }
    n = read(tc->c->fd, tc->buf + tc->len, sizeof(tc->buf) - tc->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        th_close(tc);
        return;
    }
    tc->len += (size_t) n;
    th_process(tc);
}

static void
th_accept(struct kap_conn *c)
{
    struct th_conn *tc = kap_palloc(c->pool, sizeof(*tc));

    if (tc == NULL) {
        kap_conn_close(c);
        return;
    }
    tc->c = c;
    tc->ufd = -1;
    if (kap_pool_cleanup_add(c->pool, th_upstream_cleanup, tc) != KAP_OK) {
        kap_conn_close(c);
        return;
    }
    c->data = tc;
    ev_io_init(&tc->io, th_read_cb, c->fd, EV_READ);
    ev_io_start(kap_loop(), &tc->io);
}

static void
th_conn_close(struct kap_conn *c)
{
    struct th_conn *tc = c->data;

    if (tc != NULL)
        ev_io_stop(kap_loop(), &tc->io);
}

static const struct kap_listener_ops th_listener = {
    th_accept, NULL, th_conn_close
};

const struct kap_module kap_test_hooks_module = {
    KAP_MODULE_V1(TH_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER | KAP_MOD_POLICY | KAP_MOD_AUDIT,
    .conf_create = th_conf_create,
    .conf_parse = th_conf_parse,
    .conf_check = th_conf_check,
    .listener = &th_listener,
    .hooks = th_hooks,
    .kinds = th_defined_kinds,
};
