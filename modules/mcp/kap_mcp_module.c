/*
 * kap_mcp_module.c -- the mcp module: a tool-level firewall for remote
 * MCP servers (Streamable HTTP, MCP 2025-03-26 and 2025-06-18) that
 * keeps their credentials in kapd.  Its listeners (default
 * 127.0.0.1:3129) are served by the core's HTTP server layer.
 *
 * Per request (kap_mcp.h says why each step decides as it does):
 *   1. the target names the server ("/NAME", under prefix): unknown ->
 *      404 naming the known ones; a query string -> 400;
 *   2. POST, GET or DELETE only (405); the agent's headers picked
 *      (kap_mcp_headers_pick: Authorization and the rest dropped);
 *   3. an Mcp-Session-Id must be one kapd gave this client for this
 *      server (404 otherwise) and is swapped for the upstream's;
 *   4. POST: kap_mcp_req_check() -- refusals answered here; every
 *      tools/call asked through the policy chain (kap_mcp_ask.c, which
 *      may wait for a human);
 *   5. kap_mcp_forward(): the re-serialised bytes upstream, the reply
 *      filtered back (kap_mcp_forward.c).
 * The policy of the current generation decides every new request, so a
 * reload re-filters at once.
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_gen.h>

#include "kap_mcp_mod.h"

static void *
mcp_conf_create(struct kap_gen *gen)
{
    struct kap_mcp_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf != NULL) {
        memset(cf, 0, sizeof(*cf));
        cf->srv.module = KAP_MCP_NAME;
        cf->srv.error_format = KAP_HTTP_ERR_JSON;
        cf->srv.max_body = 4 * 1024 * 1024;
        cf->upstream_timeout = KAP_MCP_UPSTREAM_TIMEOUT;
        cf->prefix = "";
    }
    return cf;
}

static int
mcp_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *group,
               struct kap_err *err)
{
    return kap_mcp_conf_parse(gen, conf, group, err);
}

static int
is(const struct kap_str *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->data, lit, s->len) == 0;
}

static void
mcp_post(struct kap_http_ex *ex, struct kap_gen *gen,
         const struct kap_mcp_conf *cf, const struct kap_mcp_server *sv,
         const struct kap_mcp_fwd_headers *fh, const char *up,
         const char *client)
{
    struct kap_pool *p = kap_http_ex_pool(ex);
    struct kap_mcp_req r, *keep;
    const char *body, *ct = NULL;
    size_t len;

    body = kap_http_ex_body(ex, &len);
    if (fh->content_type != NULL)
        ct = kap_pstrndup(p, fh->content_type->value.data,
                          fh->content_type->value.len);
    memset(&r, 0, sizeof(r));
    if (kap_mcp_req_check(&r, sv->tools, ct, body, len, NULL) != KAP_OK
        || (keep = kap_palloc(p, sizeof(*keep))) == NULL) {
        kap_mcp_req_free(&r);
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    if (r.status != 0 && r.status != 200) {     /* refused: 400, 415 */
        kap_mcp_refuse_audit(kap_http_ex_conn(ex), sv->name, r.reason);
        kap_http_header_add(ex, "Cache-Control", "no-store");
        kap_http_respond(ex, r.status, "application/json", r.answer.data,
                         r.answer.len);
        kap_mcp_req_free(&r);
        return;
    }
    memcpy(keep, &r, sizeof(r));
    kap_mcp_ask(ex, gen, cf, sv, keep, fh, up, client);
}

static void
mcp_handle(struct kap_http_ex *ex, void *data)
{
    const struct kap_http_req *q = kap_http_ex_req(ex);
    struct kap_conn *c = kap_http_ex_conn(ex);
    struct kap_pool *p = kap_http_ex_pool(ex);
    struct kap_gen *gen = kap_gen_current();
    const struct kap_mcp_conf *cf;
    const struct kap_mcp_server *sv;
    struct kap_mcp_fwd_headers fh;
    const char *target, *why = NULL, *up = NULL, *sid;
    char name[KAP_MCP_NAME_MAX + 1], client[96], msg[256];

    (void)data;
    cf = kap_gen_module_conf(gen, KAP_MCP_NAME);
    if (cf == NULL) {
        gen = c->gen;
        cf = c->conf;
    }
    target = kap_pstrndup(p, q->target.data, q->target.len);
    if (target == NULL) {
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    if (kap_mcp_route(target, cf->prefix, name, sizeof(name), &why)
        != KAP_OK) {
        int st = memchr(q->target.data, '?', q->target.len) != NULL ? 400
                                                                     : 404;
        kap_mcp_refuse_audit(c, NULL, why);
        kap_mcp_answer(ex, st, why, st == 404 ? cf : NULL);
        return;
    }
    if ((sv = kap_mcp_server_find(cf, name)) == NULL) {
        snprintf(msg, sizeof(msg), "unknown MCP server: %s", name);
        kap_mcp_refuse_audit(c, NULL, msg);
        kap_mcp_answer(ex, 404, msg, cf);
        return;
    }
    if (!is(&q->method, "POST") && !is(&q->method, "GET")
        && !is(&q->method, "DELETE")) {
        kap_http_header_add(ex, "Allow", "POST, GET, DELETE");
        kap_mcp_answer(ex, 405, "only POST, GET and DELETE", NULL);
        return;
    }
    if (kap_mcp_headers_pick(q->headers, q->nheaders, &fh, &why) != KAP_OK) {
        kap_mcp_refuse_audit(c, sv->name, why);
        kap_mcp_answer(ex, 400, why, NULL);
        return;
    }
    kap_mcp_client_key(c, client, sizeof(client));
    if (fh.session != NULL) {
        sid = kap_pstrndup(p, fh.session->value.data, fh.session->value.len);
        up = sid != NULL ? kap_mcp_session_get(sv->name, client, sid) : NULL;
        if (up == NULL) {
            kap_mcp_refuse_audit(c, sv->name, "unknown session");
            kap_mcp_answer(ex, 404, "unknown session: initialize a new one",
                           NULL);
            return;
        }
        up = kap_pstrdup(p, up);
    }
    if (is(&q->method, "POST"))
        mcp_post(ex, gen, cf, sv, &fh, up, client);
    else
        kap_mcp_forward(ex, gen, cf, sv, NULL, &fh, up, client);
}

static void
mcp_accept(struct kap_conn *c)
{
    kap_http_server_start(c, &((struct kap_mcp_conf *)c->conf)->srv,
                          mcp_handle, NULL);
}

static void
mcp_shutdown(void)
{
    kap_mcp_session_clear();
    kap_mcp_pins_clear();
    kap_mcp_tokens_clear();
}

static const struct kap_listener_ops mcp_listener = {
    .accept = mcp_accept,
};

static const struct kap_hook mcp_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_MCP_CALL, kap_mcp_policy, NULL, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL },
};

const struct kap_module kap_mcp_module = {
    KAP_MODULE_V1(KAP_MCP_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER,
    .conf_create = mcp_conf_create,
    .conf_parse = mcp_conf_parse,
    .shutdown = mcp_shutdown,
    .listener = &mcp_listener,
    .hooks = mcp_hooks,
};
