/*
 * kap_mcp_forward.c -- one request to its server and the reply back
 * (kap_mcp_mod.h): kap_curl_stream() with the server's headers injected,
 * the reply sorted by kap_mcp_reply_kind() and filtered as it arrives
 * (an event stream event by event, with backpressure both ways: the
 * agent's writer over high_water pauses the upstream read, on_drain
 * resumes it), sessions mapped, failures answered 502/504 as JSON.
 * An OAuth registration's token the upstream refuses (401) is refreshed
 * and the request sent again once with the new one; only when the
 * refresh fails does the agent get 503 Retry-After.
 *
 * The state lives in the exchange's pool: when the exchange ends
 * (answered, or the agent went away) the pool's cleanups stop the
 * transfer and free the rest.  Nothing here touches the state after a
 * call that ends the exchange.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <kapd/kap_gen.h>
#include <kapd/kap_json.h>

#include "kap_mcp_mod.h"

enum fw_kind { FW_NONE = 0, FW_BUFFER, FW_SSE };

struct fw {
    struct kap_http_ex          *ex;
    struct kap_conn             *c;
    struct kap_gen              *gen;      /* referenced */
    const struct kap_mcp_server *sv;       /* in gen */
    const struct kap_mcp_conf   *cf;       /* in gen */
    struct kap_mcp_req          *r;        /* NULL for GET, DELETE */
    struct kap_mcp_filter        f;
    struct kap_mcp_sse_filter    sf;
    struct kap_mcp_reply_stats   st;
    struct kap_curl             *cu;
    enum kap_mcp_reply_kind      rk;
    enum fw_kind                 kind;
    int                          media;    /* the upstream's, for PASS */
    long                         status;
    struct kap_buf               body, out;
    char                         client[96];
    char                         sid_in[KAP_MCP_SID_MAX + 1];
    char                         sid_down[33];
    const char                  *method;
    struct kap_mcp_fwd_headers   fh;       /* into the agent's request */
    const char                  *up_sid;   /* in the exchange's pool */
    unsigned                     paused:1, sse_init:1, is_delete:1;
    unsigned                     audited:1, replayed:1;
    struct kap_mcp_audit_info    a;
    struct kap_mcp_pins         *pins;     /* pin = true */
};

/* ---- answers ------------------------------------------------------------ */

void
kap_mcp_answer(struct kap_http_ex *ex, int status, const char *why,
               const struct kap_mcp_conf *servers)
{
    struct kap_json_writer w;
    struct kap_buf b = { 0 };
    size_t i;

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "error");
    kap_json_w_str(&w, why);
    kap_json_w_key(&w, "status");
    kap_json_w_int(&w, status);
    if (servers != NULL) {
        kap_json_w_key(&w, "servers");
        kap_json_w_arr_begin(&w);
        for (i = 0; i < servers->nservers; i++)
            kap_json_w_str(&w, servers->servers[i].name);
        kap_json_w_arr_end(&w);
    }
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK
        || kap_buf_append(&b, "\n", 1) != KAP_OK) {
        kap_buf_free(&b);
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    kap_http_header_add(ex, "Cache-Control", "no-store");
    kap_http_respond(ex, status, "application/json", b.data, b.len);
    kap_buf_free(&b);
}

static void
fw_cleanup(void *data)
{
    struct fw *fw = data;

    kap_mcp_req_free(fw->r);
    if (fw->sse_init)
        kap_mcp_sse_filter_free(&fw->sf);
    kap_buf_free(&fw->body);
    kap_buf_free(&fw->out);
    kap_gen_unref(fw->gen);
}

static void
fw_audit(struct fw *fw, long status, const char *error)
{
    if (fw->audited)
        return;
    fw->audited = 1;
    fw->a.status = status;
    fw->a.upstream = fw->status;
    fw->a.error = error;
    fw->a.st = fw->sse_init ? &fw->sf.st : &fw->st;
    kap_mcp_audit(fw->c, &fw->a);
}

/* a failure of kapd's own: audited, answered; fw is gone afterwards */
static void
fw_fail(struct fw *fw, int status, const char *why)
{
    fw_audit(fw, status, why);
    KAP_LOG(KAP_LOG_INFO, KAP_MCP_NAME, fw->c->id, "server %s: %d: %s",
            fw->sv->name, status, why);
    kap_mcp_answer(fw->ex, status, why, NULL);
}

static void
fw_respond(struct fw *fw, int status, const char *ctype, const void *p,
           size_t n)
{
    fw->a.bytes_out += n;
    fw_audit(fw, status, NULL);
    if (fw->sid_down[0] != '\0')
        kap_http_header_add(fw->ex, "Mcp-Session-Id", fw->sid_down);
    kap_http_respond(fw->ex, status, ctype, p, n);
}

static int fw_start(struct fw *fw);

/* the refresh a 401 started has ended: send the request again (once) */
static void
fw_refreshed(int ok, void *data)
{
    struct fw *fw = data;
    char why[256];

    if (!ok) {
        snprintf(why, sizeof(why), "server %s refused kapd's OAuth token "
                 "(401) and the refresh failed; retry later", fw->sv->name);
        kap_http_header_add(fw->ex, "Retry-After", "1");
        fw_fail(fw, 503, why);
        return;
    }
    KAP_LOG(KAP_LOG_INFO, KAP_MCP_NAME, fw->c->id, "server %s: sending the "
            "request again with the refreshed token", fw->sv->name);
    fw->replayed = 1;
    fw->status = 0;
    fw->kind = FW_NONE;
    if (fw_start(fw) != KAP_OK)
        fw_fail(fw, 500, "cannot start the upstream request");
}

/*
 * The upstream refused kapd's credential.  The one place an upstream 401
 * is seen: token refresh (an OAuth registration) hooks in here: the
 * transfer is cancelled and the request waits for the refresh, or the
 * agent is answered.
 */
static void
fw_unauthorized(struct fw *fw)
{
    char why[256];

    if (kap_mcp_tokens_refused(fw->cf, fw->sv)) {
        /* an OAuth registration: kap-mcp refresh runs as a child; the
           request goes out again with the new token when it is done */
        if (!fw->replayed
            && kap_mcp_tokens_wait(fw->cf, fw->sv, kap_http_ex_pool(fw->ex),
                                   fw_refreshed, fw) == KAP_OK) {
            kap_curl_cancel(fw->cu);
            fw->cu = NULL;
            return;
        }
        snprintf(why, sizeof(why), "server %s refused kapd's OAuth token "
                 "(401): kapd is refreshing it; retry", fw->sv->name);
        kap_http_header_add(fw->ex, "Retry-After", "1");
        fw_fail(fw, 503, why);
        return;
    }

    snprintf(why, sizeof(why), "server %s refused kapd's credential (401): "
             "check its headers, or register it again (kap mcp add %s URL "
             "--reauth)", fw->sv->name, fw->sv->name);
    fw_fail(fw, 502, why);
}

/* ---- the upstream's head ------------------------------------------------- */

/* The value of the one header name of the parsed head (NUL-terminated
 * into out): 1 found, 0 absent, -1 sent twice or too long. */
static int
fw_head_value(const struct kap_http_resp *h, const char *name, char *out,
              size_t n)
{
    const struct kap_http_header *v = NULL;
    size_t i, nl = strlen(name);

    out[0] = '\0';
    for (i = 0; i < h->nheaders; i++)
        if (h->headers[i].name.len == nl
            && strncasecmp(h->headers[i].name.data, name, nl) == 0) {
            if (v != NULL)
                return -1;
            v = &h->headers[i];
        }
    if (v == NULL)
        return 0;
    if (v->value.len >= n)
        return -1;
    memcpy(out, v->value.data, v->value.len);
    out[v->value.len] = '\0';
    return 1;
}

static int
fw_sid_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return i > 0;
}

/* the session the upstream names in its head: mapped, or dropped */
static int
fw_session(struct fw *fw, const struct kap_http_resp *head)
{
    char up[KAP_MCP_SID_MAX + 1];
    int rc = fw_head_value(head, "Mcp-Session-Id", up, sizeof(up));

    if (fw->sid_in[0] != '\0' && (fw->status == 404
                                  || (fw->is_delete && fw->status < 300))) {
        kap_mcp_session_del(fw->sid_in);    /* ended upstream */
        return KAP_OK;
    }
    if (rc == 0 || fw->status >= 300)
        return KAP_OK;
    if (rc < 0 || !fw_sid_ok(up))
        return KAP_ERROR;
    return kap_mcp_session_put(fw->sv->name, fw->client,
                               fw->sid_in[0] ? fw->sid_in : NULL, up,
                               fw->sid_down);
}

/* write what the SSE filter produced; KAP_AGAIN pauses the upstream */
static int
fw_sse_flush(struct fw *fw)
{
    int rc = KAP_OK;

    if (fw->out.len > 0) {
        fw->a.bytes_out += fw->out.len;
        rc = kap_http_stream_write(fw->ex, fw->out.data, fw->out.len);
        kap_buf_reset(&fw->out);
    }
    if (rc == KAP_ERROR)
        return KAP_AGAIN;           /* on_abort follows from the loop */
    if (rc == KAP_AGAIN)
        fw->paused = 1;
    return rc;
}

static int
fw_sse_start(struct fw *fw)
{
    kap_mcp_sse_filter_init(&fw->sf, &fw->f, 0);
    fw->sse_init = 1;
    fw->kind = FW_SSE;
    if (fw->sid_down[0] != '\0')
        kap_http_header_add(fw->ex, "Mcp-Session-Id", fw->sid_down);
    kap_http_header_add(fw->ex, "Cache-Control", "no-store");
    if (kap_http_stream_start(fw->ex, (int)fw->status, "text/event-stream")
        == KAP_ERROR)
        return KAP_AGAIN;           /* on_abort follows */
    if (fw->r != NULL && fw->r->ndenied > 0
        && kap_mcp_sse_errors(fw->r, &fw->out) != KAP_OK) {
        kap_http_ex_close(fw->ex);
        return KAP_ERROR;
    }
    return fw_sse_flush(fw);
}

static int
fw_head(struct kap_curl *cu, long status, const struct kap_buf *head,
        void *data)
{
    struct fw *fw = data;
    struct kap_http_resp *resp;
    char ct[512], why[256];

    (void)cu;
    fw->status = status;
    /* libcurl read the head; kapd's own parser reads it again, so that
     * what the module acts on is what a strict reader sees */
    resp = kap_palloc(kap_http_ex_pool(fw->ex), sizeof(*resp));
    if (resp == NULL) {
        fw_fail(fw, 500, "out of memory");
        return KAP_ERROR;
    }
    kap_http_resp_reset(resp);
    if (kap_http_parse_response(resp, head->data, head->len, fw->method, NULL)
        != KAP_OK) {
        fw_fail(fw, 502, "the upstream's response head does not parse");
        return KAP_ERROR;
    }
    if (status == 401) {
        fw_unauthorized(fw);
        return KAP_ERROR;
    }
    if (status >= 300 && status < 400) {
        snprintf(why, sizeof(why), "server %s answered a redirect (%ld); "
                 "kapd does not follow redirects", fw->sv->name, status);
        fw_fail(fw, 502, why);
        return KAP_ERROR;
    }
    if (fw_session(fw, resp) != KAP_OK) {
        fw_fail(fw, 502, "the upstream's Mcp-Session-Id is not usable");
        return KAP_ERROR;
    }
    if (fw_head_value(resp, "Content-Type", ct, sizeof(ct)) < 0) {
        fw_fail(fw, 502, "the upstream's Content-Type is not usable");
        return KAP_ERROR;
    }
    fw->rk = kap_mcp_reply_kind((int)status, ct[0] ? ct : NULL);
    {
        struct kap_mcp_ctype t;
        kap_mcp_ctype_parse(ct[0] ? ct : NULL, &t);
        fw->media = t.media;
    }
    if (fw->rk == KAP_MCP_REPLY_SSE)
        return fw_sse_start(fw);
    fw->kind = FW_BUFFER;
    return KAP_OK;
}

static int
fw_body(struct kap_curl *cu, const char *p, size_t n, void *data)
{
    struct fw *fw = data;
    struct kap_err err;

    (void)cu;
    fw->a.bytes_in += n;
    if (fw->kind == FW_SSE) {
        memset(&err, 0, sizeof(err));
        if (kap_mcp_sse_filter_feed(&fw->sf, p, n, &fw->out, &err)
            != KAP_OK) {
            KAP_LOG(KAP_LOG_INFO, KAP_MCP_NAME, fw->c->id, "server %s: "
                    "event stream ended: %s", fw->sv->name, err.msg);
            fw_audit(fw, fw->status, err.msg);
            kap_http_ex_close(fw->ex);
            return KAP_ERROR;
        }
        return fw_sse_flush(fw);
    }
    if (fw->body.len + n > KAP_MCP_REPLY_MAX) {
        fw_fail(fw, 502, "the upstream's reply is over the size limit");
        return KAP_ERROR;
    }
    if (kap_buf_append(&fw->body, p, n) != KAP_OK) {
        fw_fail(fw, 500, "out of memory");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static void
fw_drain(struct kap_http_ex *ex, void *data)
{
    struct fw *fw = data;

    (void)ex;
    if (fw->paused && fw->cu != NULL) {
        fw->paused = 0;
        kap_curl_resume(fw->cu);
    }
}

static void
fw_abort(struct kap_http_ex *ex, void *data)
{
    struct fw *fw = data;

    (void)ex;
    fw_audit(fw, 499, "the client went away");
}

/* ---- the end of the reply ------------------------------------------------ */

static void
fw_buffered(struct fw *fw)
{
    struct kap_err err;
    const struct kap_mcp_req *merge =
        fw->r != NULL && fw->r->ndenied > 0 ? fw->r : NULL;
    int rc;

    if (fw->body.len == 0 && fw->rk == KAP_MCP_REPLY_JSON)
        fw->rk = KAP_MCP_REPLY_PASS;    /* nothing to filter: a DELETE */
    switch (fw->rk) {
    case KAP_MCP_REPLY_JSON:
        memset(&err, 0, sizeof(err));
        rc = kap_mcp_reply_json(&fw->f, fw->body.data ? fw->body.data : "",
                                fw->body.len, merge, &fw->out, &fw->st, &err);
        if (rc == KAP_MCP_PASS)
            fw_respond(fw, (int)fw->status, "application/json",
                       fw->body.data, fw->body.len);
        else if (rc == KAP_MCP_REWRITTEN)
            fw_respond(fw, (int)fw->status, "application/json",
                       fw->out.data, fw->out.len);
        else if (rc == KAP_MCP_REFUSED)
            fw_fail(fw, 502, "the upstream's JSON reply is not strict "
                    "JSON-RPC");
        else
            fw_fail(fw, 500, "out of memory");
        return;
    case KAP_MCP_REPLY_PASS:
        if (fw->status >= 200 && fw->status < 300 && fw->body.len == 0
            && merge != NULL) {
            if (kap_mcp_req_errors(merge, &fw->out) != KAP_OK)
                fw_fail(fw, 500, "out of memory");
            else
                fw_respond(fw, 200, "application/json", fw->out.data,
                           fw->out.len);
            return;
        }
        fw_respond(fw, (int)fw->status, fw->body.len == 0 ? NULL
                   : fw->media == KAP_MCP_MEDIA_JSON ? "application/json"
                   : "text/plain; charset=utf-8", fw->body.data,
                   fw->body.len);
        return;
    default:
        if (fw->body.len == 0) {
            fw_respond(fw, (int)fw->status, NULL, NULL, 0);
            return;
        }
        fw_fail(fw, 502, "the upstream answered with a Content-Type that "
                "kapd does not pass on");
        return;
    }
}

static void
fw_done(struct kap_curl *cu, struct kap_curl_result *res, void *data)
{
    struct fw *fw = data;
    char why[512];

    (void)cu;
    fw->cu = NULL;
    if (fw->kind == FW_SSE) {
        kap_http_ex_on_drain(fw->ex, NULL, NULL);
        fw_audit(fw, fw->status, res->rc == KAP_OK ? NULL : res->error);
        if (res->rc == KAP_OK)
            kap_http_stream_end(fw->ex);
        else
            kap_http_ex_close(fw->ex);  /* the agent sees it cut short */
        return;
    }
    if (res->rc != KAP_OK) {
        snprintf(why, sizeof(why), "server %s: %s", fw->sv->name,
                 res->error != NULL ? res->error : "failed");
        fw_fail(fw, res->status == 0 && res->error != NULL
                        && strncmp(res->error, "timeout", 7) == 0 ? 504 : 502,
                why);
        return;
    }
    fw_buffered(fw);
}

/* ---- the request ----------------------------------------------------------- */

static int
fw_add(const char **h, size_t *n, struct kap_pool *p, const char *name,
       const struct kap_http_header *v)
{
    if (v == NULL)
        return KAP_OK;
    h[*n] = kap_psprintf(p, "%s: %.*s", name, (int)v->value.len,
                         v->value.data);
    if (h[*n] == NULL)
        return KAP_ERROR;
    (*n)++;
    return KAP_OK;
}

/* the filter's second say on an allowed tool: its pin */
static int
fw_keep(void *arg, const char *name, const struct kap_json *tool)
{
    struct fw *fw = arg;
    struct kap_mcp_pin_change ch;
    int keep;

    memset(&ch, 0, sizeof(ch));
    ch.pool = kap_http_ex_pool(fw->ex);
    keep = kap_mcp_pins_check(fw->pins, name, tool, &ch);
    if (ch.changed)
        kap_mcp_pin_audit(fw->c, fw->sv->name, name, &ch);
    return keep;
}

static const struct kap_curl_stream_ops fw_ops = {
    .head = fw_head,
    .body = fw_body,
};

/* the upstream request's header lines; the server's own are rendered
 * into bufs (wiped by the caller once kap_curl has its copy) */
static int
fw_headers(struct fw *fw, struct kap_pool *p, const char **h,
           struct kap_buf *bufs, const struct kap_mcp_fwd_headers *fh,
           const char *upstream_sid, const struct kap_mcp_reg_header *hs,
           size_t nh)
{
    struct kap_err err;
    size_t n = 0, i;

    if (fw->r != NULL)
        h[n++] = "Content-Type: application/json";
    if (fh->accept != NULL) {
        if (fw_add(h, &n, p, "Accept", fh->accept) != KAP_OK)
            return KAP_ERROR;
    } else {
        h[n++] = "Accept: application/json, text/event-stream";
    }
    if (fw_add(h, &n, p, "MCP-Protocol-Version", fh->version) != KAP_OK
        || fw_add(h, &n, p, "Last-Event-ID", fh->last_event_id) != KAP_OK)
        return KAP_ERROR;
    if (upstream_sid != NULL
        && (h[n++] = kap_psprintf(p, "Mcp-Session-Id: %s", upstream_sid))
           == NULL)
        return KAP_ERROR;
    for (i = 0; i < nh; i++) {
        const char *tmpl = kap_psprintf(p, "%s: {}", hs[i].name);
        memset(&err, 0, sizeof(err));
        if (tmpl == NULL
            || kap_secret_header_buf(hs[i].value, tmpl, &bufs[i],
                                     &err) != KAP_OK
            || kap_buf_append(&bufs[i], "", 1) != KAP_OK)
            return KAP_ERROR;
        h[n++] = bufs[i].data;
    }
    h[n] = NULL;
    return KAP_OK;
}

void
kap_mcp_forward(struct kap_http_ex *ex, struct kap_gen *gen,
                const struct kap_mcp_conf *cf,
                const struct kap_mcp_server *sv, struct kap_mcp_req *r,
                const struct kap_mcp_fwd_headers *fh,
                const char *upstream_sid, const char *client)
{
    struct kap_pool *p = kap_http_ex_pool(ex);
    const struct kap_http_req *q = kap_http_ex_req(ex);
    struct fw *fw;
    size_t i;

    fw = kap_palloc(p, sizeof(*fw));
    if (fw == NULL || kap_pool_cleanup_add(p, fw_cleanup, fw) != KAP_OK) {
        kap_mcp_req_free(r);
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    memset(fw, 0, sizeof(*fw));
    fw->ex = ex;
    fw->c = kap_http_ex_conn(ex);
    fw->gen = gen;
    kap_gen_ref(fw->gen);
    fw->sv = sv;
    fw->cf = cf;
    fw->r = r;
    fw->f.tools = sv->tools;
    if (sv->pin_file != NULL) {
        fw->pins = kap_mcp_pins_get(sv->name, sv->pin_file);
        fw->f.keep = fw_keep;
        fw->f.arg = fw;
    }
    fw->method = kap_pstrndup(p, q->method.data, q->method.len);
    fw->is_delete = q->method.len == 6
                    && memcmp(q->method.data, "DELETE", 6) == 0;
    snprintf(fw->client, sizeof(fw->client), "%s", client);
    if (fh->session != NULL && fh->session->value.len < sizeof(fw->sid_in))
        snprintf(fw->sid_in, sizeof(fw->sid_in), "%.*s",
                 (int)fh->session->value.len, fh->session->value.data);
    fw->a.server = sv->name;
    fw->a.method = fw->method;
    fw->a.start = kap_now();
    if (r != NULL) {
        fw->a.lists = r->lists;
        fw->a.denied = r->ndenied;
        for (i = 0; i < r->nmsgs; i++) {
            if (r->msgs[i].method != NULL && fw->a.rpc == NULL)
                fw->a.rpc = r->msgs[i].method;
            if (r->msgs[i].tool != NULL && !r->msgs[i].denied) {
                fw->a.calls++;
                if (fw->a.tool == NULL)
                    fw->a.tool = r->msgs[i].tool;
            }
        }
    }
    fw->fh = *fh;
    if (upstream_sid != NULL
        && (fw->up_sid = kap_pstrdup(p, upstream_sid)) == NULL) {
        fw_fail(fw, 500, "out of memory");
        return;
    }
    kap_http_ex_on_abort(ex, fw_abort, fw);
    kap_http_ex_on_drain(ex, fw_drain, fw);
    if (fw_start(fw) != KAP_OK)
        fw_fail(fw, 500, "cannot start the upstream request");
}

/* the upstream request, with the server's headers as they are now */
static int
fw_start(struct fw *fw)
{
    struct kap_pool *p = kap_http_ex_pool(fw->ex);
    const struct kap_mcp_reg_header *hs;
    struct kap_curl_opts o;
    struct kap_buf *bufs;
    const char **h;
    size_t i, nh;
    int rc;

    kap_mcp_tokens_headers(fw->cf, fw->sv, &hs, &nh);
    h = kap_palloc(p, (nh + 8) * sizeof(*h));
    bufs = kap_palloc(p, (nh + 1) * sizeof(*bufs));
    if (h == NULL || bufs == NULL)
        return KAP_ERROR;
    memset(bufs, 0, (nh + 1) * sizeof(*bufs));
    rc = fw_headers(fw, p, h, bufs, &fw->fh, fw->up_sid, hs, nh);
    memset(&o, 0, sizeof(o));
    o.url = fw->sv->url;
    o.asked_by = KAP_MCP_NAME;
    o.conn = fw->c;
    o.method = fw->method;
    o.headers = h;
    if (fw->r != NULL) {
        o.body = fw->r->forward.data;
        o.body_len = fw->r->forward.len;
    }
    o.timeout = fw->cf->upstream_timeout;
    o.ca_file = fw->sv->ca_file;
    if (rc == KAP_OK)
        fw->cu = kap_curl_stream(fw->gen, p, &o, &fw_ops, fw_done, fw);
    for (i = 0; i < nh; i++) {
        if (bufs[i].data != NULL)
            kap_secret_wipe(bufs[i].data, bufs[i].cap);
        kap_buf_free(&bufs[i]);
    }
    return rc == KAP_OK && fw->cu != NULL ? KAP_OK : KAP_ERROR;
}
