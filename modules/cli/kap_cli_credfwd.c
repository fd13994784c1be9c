/*
 * kap_cli_credfwd.c -- one request on a tool's credential socket
 * (kap_cli_cred.h): the peer, the dummy, the Host and the method are
 * checked; the request goes to https://<Host><target> with the real
 * token in Authorization through kap_curl_stream(); the answer streams
 * back as it comes (status, headers but hop-by-hop ones, the body as
 * received, Content-Encoding kept); the request is audited.  Every
 * refusal is a JSON error page (the listener's error format).
 *
 * The state lives in the exchange's pool: when the exchange ends the
 * pool's cleanup stops the transfer.
 */
#include "config.h"

#include "kap_cli_cred.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <kapd/kap_curl.h>
#include <kapd/kap_http.h>
#include <kapd/kap_secret.h>

#define KAP_CLI_CRED_MAX_HEADERS 64

struct kap_cli_fwd {
    struct kap_http_ex        *ex;
    struct kap_conn           *c;
    const struct kap_cli_tool *t;
    struct kap_curl           *cu;
    const char                *method, *host, *path;
    long                       status;
    int                        started, paused, audited;
};

static const char *const kap_cli_cred_hosts[] = { "api.github.com",
    "uploads.github.com", "github.com", NULL };

static const char *const kap_cli_cred_methods[] = { "GET", "HEAD", "POST",
    "PUT", "PATCH", "DELETE", NULL };

/* Request fields kapd sets itself or that end at this hop. */
static const char *const kap_cli_cred_drop[] = { "Host", "Authorization",
    "Content-Length", "Expect", "Cookie", NULL };

/* Response fields the server layer writes itself. */
static const char *const kap_cli_cred_own[] = { "Content-Length",
    "Transfer-Encoding", "Connection", "Date", "Content-Type", NULL };

static int
kap_cli_cred_in(const char *const *set, const char *s, size_t n)
{
    size_t i;

    for (i = 0; set[i] != NULL; i++)
        if (strlen(set[i]) == n && strncasecmp(set[i], s, n) == 0)
            return 1;
    return 0;
}

static void
kap_cli_cred_audit(struct kap_cli_fwd *f, long status, const char *error)
{
    struct kap_audit_event ev;
    struct kap_audit_field fl[3];

    if (f->audited)
        return;
    f->audited = 1;
    memset(&ev, 0, sizeof(ev));
    memset(fl, 0, sizeof(fl));
    fl[0].name = "host";   fl[0].str = f->host;
    fl[1].name = "path";   fl[1].str = f->path;
    fl[2].name = "status"; fl[2].num = (double)status;
    ev.kind = KAP_REQ_CLI;
    ev.module = KAP_CLI_NAME;
    ev.event = "cli_credential";
    ev.subject = f->t->name;
    ev.action = error == NULL ? "forwarded" : "failed";
    ev.detail = f->method;      /* written as "detail" and "method" */
    ev.reason = error;
    ev.client = f->c->peer_text;
    ev.conn_id = f->c->id;
    ev.gen_id = kap_gen_id(f->c->gen);
    ev.fields = fl;
    ev.nfields = sizeof(fl) / sizeof(fl[0]);
    kap_audit_emit(f->c->gen, &ev);
}

/* A refusal before anything was forwarded: logged, answered. */
static void
kap_cli_cred_refuse(struct kap_http_ex *ex, const struct kap_cli_tool *t,
                    int status, const char *why)
{
    KAP_LOG(KAP_LOG_INFO, KAP_CLI_NAME, kap_http_ex_conn(ex)->id,
            "tool %s: credential socket: %d %s", t->name, status, why);
    kap_http_header_add(ex, "Cache-Control", "no-store");
    kap_http_error(ex, status, why);
}

/* ---- the answer ----------------------------------------------------------- */

static int
kap_cli_cred_head(struct kap_curl *cu, long status,
                  const struct kap_buf *head, void *data)
{
    struct kap_cli_fwd   *f = data;
    struct kap_http_resp *resp;
    const struct kap_http_header *h;
    char                  name[128], *val, *ct = NULL;
    size_t                i;

    (void)cu;
    f->status = status;
    resp = kap_palloc(kap_http_ex_pool(f->ex), sizeof(*resp));
    if (resp == NULL)
        return KAP_ERROR;
    kap_http_resp_reset(resp);
    if (kap_http_parse_response(resp, head->data, head->len, f->method, NULL)
        != KAP_OK) {
        kap_cli_cred_audit(f, 502, "the upstream's head does not parse");
        kap_http_error(f->ex, 502, "the upstream's response head does not "
                       "parse");
        return KAP_ERROR;
    }
    for (i = 0; i < resp->nheaders; i++) {
        h = &resp->headers[i];
        if (h->name.len >= sizeof(name)
            || kap_http_is_hop_by_hop(resp->headers, resp->nheaders, i))
            continue;
        val = kap_pstrndup(kap_http_ex_pool(f->ex), h->value.data,
                           h->value.len);
        if (val == NULL)
            continue;
        if (h->name.len == 12 && strncasecmp(h->name.data, "Content-Type",
                                             12) == 0)
            ct = val;
        if (kap_cli_cred_in(kap_cli_cred_own, h->name.data, h->name.len))
            continue;
        memcpy(name, h->name.data, h->name.len);
        name[h->name.len] = '\0';
        (void)kap_http_header_add(f->ex, name, val);
    }
    f->started = 1;
    kap_cli_cred_audit(f, status, NULL);
    if (kap_http_stream_start(f->ex, (int)status, ct) == KAP_ERROR)
        return KAP_ERROR;
    return KAP_OK;
}

static int
kap_cli_cred_body(struct kap_curl *cu, const char *p, size_t n, void *data)
{
    struct kap_cli_fwd *f = data;
    int                 rc;

    (void)cu;
    rc = kap_http_stream_write(f->ex, p, n);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    if (rc == KAP_AGAIN) {
        f->paused = 1;
        return KAP_AGAIN;
    }
    return KAP_OK;
}

static void
kap_cli_cred_done(struct kap_curl *cu, struct kap_curl_result *res,
                  void *data)
{
    struct kap_cli_fwd *f = data;
    char                why[512];

    (void)cu;
    f->cu = NULL;
    kap_http_ex_on_drain(f->ex, NULL, NULL);
    kap_http_ex_on_abort(f->ex, NULL, NULL);
    if (f->started) {
        if (res->rc == KAP_OK)
            kap_http_stream_end(f->ex);
        else
            kap_http_ex_close(f->ex);       /* gh sees it cut short */
        return;
    }
    snprintf(why, sizeof(why), "%s: %s", f->host,
             res->error != NULL ? res->error : "failed");
    kap_cli_cred_audit(f, 502, why);
    kap_cli_cred_refuse(f->ex, f->t, res->error != NULL
                        && strncmp(res->error, "timeout", 7) == 0 ? 504 : 502,
                        why);
}

static void
kap_cli_cred_drain(struct kap_http_ex *ex, void *data)
{
    struct kap_cli_fwd *f = data;

    (void)ex;
    if (f->paused && f->cu != NULL) {
        f->paused = 0;
        kap_curl_resume(f->cu);
    }
}

static void
kap_cli_cred_abort(struct kap_http_ex *ex, void *data)
{
    struct kap_cli_fwd *f = data;

    (void)ex;
    kap_cli_cred_audit(f, 499, "the client went away");
}

static const struct kap_curl_stream_ops kap_cli_cred_ops = {
    .head = kap_cli_cred_head,
    .body = kap_cli_cred_body,
};

/* ---- the request ----------------------------------------------------------- */

/* The token for host: the enterprise one for GH_HOST, else GitHub's. */
static const struct kap_secret *
kap_cli_cred_token(const struct kap_cli_tool *t, const char *host)
{
    static const char *const ent[] = { "GH_ENTERPRISE_TOKEN",
        "GITHUB_ENTERPRISE_TOKEN", NULL };
    static const char *const com[] = { "GH_TOKEN", "GITHUB_TOKEN", NULL };
    const char *const *names = com;
    size_t             i, k;

    if (t->gh_host != NULL && strcasecmp(host, t->gh_host) == 0
        && !kap_cli_cred_in(kap_cli_cred_hosts, host, strlen(host)))
        names = ent;
    for (k = 0; names[k] != NULL; k++)
        for (i = 0; i < t->nenv; i++)
            if (strcmp(t->env[i].name, names[k]) == 0)
                return t->env[i].value;
    return NULL;
}

/* The upstream request's header lines: the client's but those dropped,
   then Authorization with the real token (rendered into *tokbuf, which
   the caller wipes). */
static const char **
kap_cli_cred_lines(struct kap_pool *p, const struct kap_http_req *q,
                   const struct kap_secret *s, struct kap_buf *tokbuf)
{
    const char   **h = kap_palloc(p, (q->nheaders + 2) * sizeof(*h));
    struct kap_err e;
    size_t         i, n = 0;

    if (h == NULL)
        return NULL;
    for (i = 0; i < q->nheaders; i++) {
        const struct kap_http_header *x = &q->headers[i];
        if (kap_http_is_hop_by_hop(q->headers, q->nheaders, i)
            || kap_cli_cred_in(kap_cli_cred_drop, x->name.data, x->name.len))
            continue;
        h[n] = kap_psprintf(p, "%.*s: %.*s", (int)x->name.len, x->name.data,
                            (int)x->value.len, x->value.data);
        if (h[n++] == NULL)
            return NULL;
    }
    memset(&e, 0, sizeof(e));
    if (kap_secret_header_buf(s, "Authorization: token {}", tokbuf, &e)
        != KAP_OK || kap_buf_append(tokbuf, "", 1) != KAP_OK)
        return NULL;
    h[n++] = tokbuf->data;
    h[n] = NULL;
    return h;
}

static int
kap_cli_cred_host_ok(const struct kap_cli_tool *t, const char *host)
{
    return kap_cli_cred_in(kap_cli_cred_hosts, host, strlen(host))
           || (t->gh_host != NULL && strcasecmp(host, t->gh_host) == 0);
}

void
kap_cli_cred_handle(struct kap_http_ex *ex, struct kap_cli_tool *t)
{
    struct kap_pool           *p = kap_http_ex_pool(ex);
    const struct kap_http_req *q = kap_http_ex_req(ex);
    struct kap_conn           *c = kap_http_ex_conn(ex);
    const struct kap_secret   *s;
    const char                *auth, *host, *url, **lines, *body;
    struct kap_buf             tok = { 0 };
    struct kap_curl_opts       o;
    struct kap_cli_fwd        *f;
    size_t                     blen;

    if (!c->peer_cred || c->peer_uid != geteuid()) {
        kap_cli_cred_refuse(ex, t, 403, "only kapd's own tools may use "
                            "this socket");
        return;
    }
    auth = kap_http_ex_header(ex, "Authorization");
    if (auth == NULL || kap_http_header_count(q->headers, q->nheaders,
                                              "Authorization") != 1
        || !kap_cli_cred_live(t->name, auth)) {
        kap_cli_cred_refuse(ex, t, 401, "Authorization does not carry the "
                            "token of a running call");
        return;
    }
    host = kap_http_ex_header(ex, "Host");
    if (host == NULL || !kap_cli_cred_host_ok(t, host)) {
        kap_cli_cred_refuse(ex, t, 403, "Host is not one this tool may "
                            "reach");
        return;
    }
    if (q->form != KAP_HTTP_FORM_ORIGIN
        || !kap_cli_cred_in(kap_cli_cred_methods, q->method.data,
                            q->method.len)) {
        kap_cli_cred_refuse(ex, t, 405, "only GET, HEAD, POST, PUT, PATCH "
                            "and DELETE of a /path");
        return;
    }
    s = kap_cli_cred_token(t, host);
    if (s == NULL) {
        kap_cli_cred_refuse(ex, t, 403, "no token for this host");
        return;
    }
    f = kap_palloc(p, sizeof(*f));
    url = kap_psprintf(p, "https://%s%.*s", host, (int)q->target.len,
                       q->target.data);
    if (f == NULL || url == NULL) {
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    memset(f, 0, sizeof(*f));
    f->ex = ex;
    f->c = c;
    f->t = t;
    f->host = host;
    f->method = kap_pstrndup(p, q->method.data, q->method.len);
    f->path = kap_pstrndup(p, q->target.data, q->target.len);
    lines = f->method != NULL && f->path != NULL
            ? kap_cli_cred_lines(p, q, s, &tok) : NULL;
    if (lines == NULL) {
        if (tok.data != NULL)
            kap_secret_wipe(tok.data, tok.cap);
        kap_buf_free(&tok);
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    body = kap_http_ex_body(ex, &blen);
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.asked_by = KAP_CLI_NAME;
    o.conn = c;
    o.method = f->method;
    o.headers = lines;
    o.body = blen > 0 ? body : NULL;
    o.body_len = blen;
    o.ca_file = t->ca_file;
    kap_http_ex_on_abort(ex, kap_cli_cred_abort, f);
    kap_http_ex_on_drain(ex, kap_cli_cred_drain, f);
    f->cu = kap_curl_stream(c->gen, p, &o, &kap_cli_cred_ops,
                            kap_cli_cred_done, f);
    kap_secret_wipe(tok.data, tok.cap);
    kap_buf_free(&tok);
    if (f->cu == NULL) {
        kap_http_ex_on_abort(ex, NULL, NULL);
        kap_http_ex_on_drain(ex, NULL, NULL);
        kap_http_error(ex, 500, "cannot start the upstream request");
    }
}
