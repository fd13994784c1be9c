/*
 * kap_cli_module.c -- the cli module: its listeners are served by the
 * core's HTTP server layer; POST /<tool> with a strict JSON body
 * (docs/cli-protocol.md).  A direct-mode tool's answer is its
 * environment (its credentials) for the shim to exec the tool with,
 * given only to a unix-socket or loopback peer; a proxy-mode tool is run
 * by kapd (kap_cli_proxy.c).  The module's policy hook answers the "cli"
 * questions it asks itself with its rules' verdict.
 */
#include "kap_cli.h"
#include "kap_cli_cred.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <kapd/kap_json.h>
#include <kapd/kap_secret.h>

static void *
kap_cli_conf_create(struct kap_gen *gen)
{
    struct kap_cli_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf != NULL) {
        cf->srv.module = KAP_CLI_NAME;
        cf->srv.error_format = KAP_HTTP_ERR_JSON;
        cf->srv.max_body = KAP_CLI_MAX_BODY;
        cf->srv.upgrade = KAP_HTTP_UPGRADE_BODY;   /* streamed stdin */
    }
    return cf;
}

static int
kap_cli_conf_parse_group(struct kap_gen *gen, void *conf,
                         const config_setting_t *group, struct kap_err *err)
{
    if (group == NULL)
        return KAP_OK;
    return kap_cli_conf_parse(gen, conf, group, err);
}

/*
 * The environment as a JSON object, written into out, whose memory is
 * reserved first so that no copy of a secret is left in memory a
 * realloc freed.  The caller wipes out.
 */
static int
kap_cli_direct_body(const struct kap_cli_tool *t, struct kap_buf *out)
{
    struct kap_json_writer w;
    struct kap_err         e;
    size_t                 i, need = 256 + strlen(t->path) * 6;
    char                  *ent;
    size_t                 entlen = KAP_SECRET_MAX + 128;
    int                    rc = KAP_OK;

    ent = malloc(entlen);
    if (ent == NULL)
        return KAP_ERROR;
    for (i = 0; i < t->nenv; i++) {
        memset(&e, 0, sizeof(e));
        if (kap_secret_env(t->env[i].value, t->env[i].name, ent, entlen, &e)
            != KAP_OK) {
            rc = KAP_ERROR;
            break;
        }
        need += strlen(ent) * 6 + 16;
    }
    if (rc == KAP_OK && kap_buf_reserve(out, need) != KAP_OK)
        rc = KAP_ERROR;
    if (rc == KAP_OK) {
        kap_json_w_init(&w, out);
        kap_json_w_obj_begin(&w);
        kap_json_w_key(&w, "mode");
        kap_json_w_str(&w, "direct");
        kap_json_w_key(&w, "tool");
        kap_json_w_str(&w, t->name);
        kap_json_w_key(&w, "path");
        kap_json_w_str(&w, t->path);
        kap_json_w_key(&w, "env");
        kap_json_w_obj_begin(&w);
        for (i = 0; i < t->nenv && rc == KAP_OK; i++) {
            memset(&e, 0, sizeof(e));
            rc = kap_secret_env(t->env[i].value, t->env[i].name, ent, entlen,
                                &e);
            kap_json_w_key(&w, t->env[i].name);
            kap_json_w_str(&w, ent + strlen(t->env[i].name) + 1);
        }
        kap_json_w_obj_end(&w);
        kap_json_w_obj_end(&w);
        if (rc == KAP_OK)
            rc = kap_json_w_finish(&w);
        if (rc == KAP_OK)
            rc = kap_buf_append(out, "\n", 1);
    }
    kap_secret_wipe(ent, entlen);
    free(ent);
    return rc;
}

static void
kap_cli_direct(struct kap_http_ex *ex, const struct kap_cli_tool *t)
{
    struct kap_conn *c = kap_http_ex_conn(ex);
    struct kap_buf   b = { 0 };

    if (!kap_cli_peer_local(&c->peer, c->peerlen)) {
        KAP_LOG(KAP_LOG_WARN, KAP_CLI_NAME, 0, "direct tool %s refused to "
                "%s: not a unix-socket or loopback peer", t->name,
                c->peer_text);
        kap_http_error(ex, 403, "a direct-mode tool's environment is given "
                       "only over a unix socket or loopback");
        return;
    }
    if (kap_cli_direct_body(t, &b) != KAP_OK) {
        kap_http_error(ex, 500, "cannot build the environment");
    } else {
        KAP_LOG(KAP_LOG_INFO, KAP_CLI_NAME, 0, "direct tool %s: %zu "
                "variable(s) to %s (uid %ld)", t->name, t->nenv,
                c->peer_text, (long)c->peer_uid);
        kap_http_header_add(ex, "Cache-Control", "no-store");
        kap_http_respond(ex, 200, "application/json", b.data, b.len);
    }
    if (b.data != NULL)
        kap_secret_wipe(b.data, b.cap);
    kap_buf_free(&b);
}

static void
kap_cli_handle(struct kap_http_ex *ex, void *data)
{
    const struct kap_http_req *q = kap_http_ex_req(ex);
    struct kap_conn           *c = kap_http_ex_conn(ex);
    const struct kap_cli_conf *cf = c->conf;
    struct kap_cli_tool       *t;
    struct kap_cli_req         r;
    struct kap_err             e;
    const char                *body, *qm, *sin, *up;
    size_t                     blen, plen, slen = 0;
    int                        stream = 0;
    char                      *end;
    unsigned long long         n;

    (void)data;
    t = kap_cli_cred_tool(c);
    if (t != NULL) {
        kap_cli_cred_handle(ex, t);
        return;
    }
    if (q->method.len != 4 || memcmp(q->method.data, "POST", 4) != 0) {
        kap_http_error(ex, 405, "only POST /<tool>");
        return;
    }
    qm = memchr(q->target.data, '?', q->target.len);
    plen = qm != NULL ? (size_t)(qm - q->target.data) : q->target.len;
    if (plen < 2 || q->target.data[0] != '/') {
        kap_http_error(ex, 404, "POST /<tool>");
        return;
    }
    t = kap_cli_tool_find(cf, q->target.data + 1, plen - 1);
    if (t == NULL) {
        kap_http_error(ex, 404, "no such tool");
        return;
    }
    memset(&e, 0, sizeof(e));
    body = kap_http_ex_body(ex, &blen);
    /* Upgrade: kap-cli -- stdin streamed as frames while the tool runs */
    if (q->upgrade) {
        up = kap_http_ex_header(ex, "Upgrade");
        if (up == NULL || strcasecmp(up, "kap-cli") != 0
            || kap_http_ex_header(ex, "Kap-Stdin") != NULL) {
            kap_http_error(ex, 400, "Upgrade: kap-cli only, without "
                           "Kap-Stdin");
            return;
        }
        stream = 1;
    }
    /* Kap-Stdin: N -- the body's last N bytes are the tool's stdin */
    sin = kap_http_ex_header(ex, "Kap-Stdin");
    if (sin != NULL) {
        errno = 0;
        n = strtoull(sin, &end, 10);
        if (sin[0] < '0' || sin[0] > '9' || *end != '\0' || errno != 0
            || n > blen || t->mode == KAP_CLI_DIRECT) {
            kap_http_error(ex, 400, "Kap-Stdin: a byte count within the "
                           "body, for a proxy-mode tool");
            return;
        }
        slen = (size_t)n;
        blen -= slen;
    }
    if (kap_cli_req_decode(kap_http_ex_pool(ex), body, blen, &r, &e)
        != KAP_OK) {
        kap_http_error(ex, 400, e.msg);
        return;
    }
    if (t->mode == KAP_CLI_DIRECT)
        kap_cli_direct(ex, t);
    else
        kap_cli_proxy(ex, t, &r, body + blen, slen, stream);
}

static void
kap_cli_accept(struct kap_conn *c)
{
    kap_http_server_start(c, &((struct kap_cli_conf *)c->conf)->srv,
                          kap_cli_handle, NULL);
}

static const struct kap_listener_ops kap_cli_listener = {
    .accept = kap_cli_accept,
};

static const struct kap_hook kap_cli_hooks[] = {
    { KAP_HOOK_POLICY, KAP_REQ_CLI, kap_cli_policy, NULL, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

const struct kap_module kap_cli_module = {
    KAP_MODULE_V1(KAP_CLI_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER | KAP_MOD_POLICY,
    .conf_create = kap_cli_conf_create,
    .conf_parse = kap_cli_conf_parse_group,
    .init = kap_cli_cred_init,
    .shutdown = kap_cli_home_parent_remove,
    .listener = &kap_cli_listener,
    .hooks = kap_cli_hooks,
};
