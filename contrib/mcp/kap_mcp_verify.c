/*
 * kap_mcp_verify.c -- kap-mcp's check of a server (kap_mcp_cli.h):
 * initialize, notifications/initialized, tools/list (every page), the
 * tools printed as a table with the server's text made safe for a
 * terminal, the session ended.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_module.h>

#include "kap_mcp_cli.h"
#include "kap_mcp_oauth.h"

#define VERIFY_PAGES 20
#define VERIFY_PROTO "2025-06-18"

/* POST one JSON-RPC message; the answer with id (id < 0: none awaited) */
static int
rpc(const char *url, const char *const *hdrs, const char *session,
    const char *proto, const char *msg, int64_t id, struct kap_json **out,
    struct mcpc_http *r, struct kap_err *err)
{
    const char *h[48];
    char sh[300], ph[80];
    size_t n = 0;
    int rc;

    h[n++] = "Content-Type: application/json";
    h[n++] = "Accept: application/json, text/event-stream";
    if (session != NULL) {
        snprintf(sh, sizeof(sh), "Mcp-Session-Id: %.250s", session);
        h[n++] = sh;
    }
    if (proto != NULL) {
        snprintf(ph, sizeof(ph), "MCP-Protocol-Version: %.40s", proto);
        h[n++] = ph;
    }
    for (; hdrs != NULL && *hdrs != NULL && n < 47; hdrs++)
        h[n++] = *hdrs;
    h[n] = NULL;
    if (mcpc_http("POST", url, h, msg, r, err) != KAP_OK)
        return KAP_ERROR;
    if (id < 0)
        return KAP_OK;
    if (r->status != 200) {
        kap_err_set(err, "the server answered HTTP %ld", r->status);
        return KAP_ERROR;
    }
    rc = kap_mcp_rpc_result(r->ctype, r->body.data ? r->body.data : "",
                            r->body.len, id, out, err);
    if (rc == KAP_OK && kap_json_get(*out, "result") == NULL) {
        const char *m = kap_json_get_string(kap_json_get(*out, "error"),
                                            "message");
        kap_err_set(err, "the server answered with an error: %.200s",
                    m != NULL ? m : "(no message)");
        kap_json_free(*out);
        *out = NULL;
        rc = KAP_ERROR;
    }
    return rc;
}

/* s on one line for a terminal: controls and line ends as ' ', at most
   max bytes (not cutting a UTF-8 sequence), "..." when cut */
void
mcpc_safe_line(const char *s, size_t max, char *out, size_t outlen)
{
    size_t i = 0, o = 0;

    if (s == NULL)
        s = "";
    for (; s[i] != '\0' && o + 4 < outlen && o < max; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    while (o > 0 && ((unsigned char)out[o - 1] & 0xc0) == 0x80
           && s[i] != '\0')
        o--;                    /* a cut sequence's continuation bytes */
    if (o > 0 && s[i] != '\0' && ((unsigned char)out[o - 1] & 0xc0) == 0xc0)
        o--;                    /* and its lead byte */
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static void
print_tools(const struct kap_json *tools, size_t *count)
{
    const struct kap_json *t;
    char name[80], desc[120];

    for (t = kap_json_child(tools); t != NULL; t = kap_json_next(t)) {
        const char *nm = kap_json_get_string(t, "name");
        if (nm == NULL)
            continue;
        mcpc_safe_line(nm, 40, name, sizeof(name));
        mcpc_safe_line(kap_json_get_string(t, "description"), 70, desc,
                  sizeof(desc));
        mcpc_say("  %-32s %s", name, desc);
        (*count)++;
    }
}

/* append every tool of list to tools (an array text being built) */
static int
collect_tools(const struct kap_json *list, struct kap_buf *tools)
{
    const struct kap_json *t;

    for (t = kap_json_child(list); t != NULL; t = kap_json_next(t)) {
        if (kap_buf_append(tools, tools->len > 1 ? "," : "", tools->len > 1)
                != KAP_OK
            || kap_json_print(t, tools) != KAP_OK)
            return KAP_ERROR;
    }
    return KAP_OK;
}

int
mcpc_verify(const char *url, const char *const *hdrs, int print,
            long *status, char **www_auth, struct kap_buf *tools,
            struct kap_err *err)
{
    static const char init[] =
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":"
        "{\"protocolVersion\":\"" VERIFY_PROTO "\",\"capabilities\":{},"
        "\"clientInfo\":{\"name\":\"kap-mcp\",\"version\":\""
        PACKAGE_VERSION "\"}}}";
    struct mcpc_http r;
    struct kap_json *j = NULL;
    struct kap_buf msg = { 0 }, cursor = { 0 };
    char *session = NULL, proto[48];
    const char *pv, *nc;
    size_t count = 0;
    int page, rc = KAP_ERROR;

    *status = 0;
    if (www_auth != NULL)
        *www_auth = NULL;
    if (tools != NULL && kap_buf_append(tools, "[", 1) != KAP_OK)
        return KAP_ERROR;
    if (rpc(url, hdrs, NULL, NULL, init, 1, &j, &r, err) != KAP_OK) {
        if (r.status != 0) {
            *status = r.status;
            if (www_auth != NULL && r.www_auth != NULL)
                *www_auth = strdup(r.www_auth);
        }
        mcpc_http_free(&r);
        return KAP_ERROR;
    }
    *status = r.status;
    session = r.session != NULL ? strdup(r.session) : NULL;
    mcpc_http_free(&r);
    pv = kap_json_get_string(kap_json_get(j, "result"), "protocolVersion");
    snprintf(proto, sizeof(proto), "%s",
             pv != NULL && strlen(pv) < 40 ? pv : VERIFY_PROTO);
    kap_json_free(j);
    j = NULL;
    if (rpc(url, hdrs, session, proto,
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}",
            -1, NULL, &r, err) == KAP_OK)
        mcpc_http_free(&r);
    if (print)
        mcpc_say("tools:");
    for (page = 0; page < VERIFY_PAGES; page++) {
        struct kap_json_writer w;

        kap_buf_reset(&msg);
        kap_json_w_init(&w, &msg);
        kap_json_w_obj_begin(&w);
        kap_json_w_key(&w, "jsonrpc");
        kap_json_w_str(&w, "2.0");
        kap_json_w_key(&w, "id");
        kap_json_w_int(&w, 2 + page);
        kap_json_w_key(&w, "method");
        kap_json_w_str(&w, "tools/list");
        if (cursor.len > 0) {
            kap_json_w_key(&w, "params");
            kap_json_w_obj_begin(&w);
            kap_json_w_key(&w, "cursor");
            kap_json_w_str(&w, cursor.data);
            kap_json_w_obj_end(&w);
        }
        kap_json_w_obj_end(&w);
        if (kap_json_w_finish(&w) != KAP_OK) {
            kap_err_set(err, "out of memory");
            goto out;
        }
        if (rpc(url, hdrs, session, proto, msg.data, 2 + page, &j, &r, err)
            != KAP_OK) {
            mcpc_http_free(&r);
            kap_err_set(err, "tools/list failed");
            goto out;
        }
        mcpc_http_free(&r);
        if (print)
            print_tools(kap_json_get(kap_json_get(j, "result"), "tools"),
                        &count);
        if (tools != NULL
            && collect_tools(kap_json_get(kap_json_get(j, "result"), "tools"),
                             tools) != KAP_OK) {
            kap_err_set(err, "out of memory");
            goto out;
        }
        nc = kap_json_get_string(kap_json_get(j, "result"), "nextCursor");
        kap_buf_reset(&cursor);
        if (nc != NULL && nc[0] != '\0'
            && kap_buf_append(&cursor, nc, strlen(nc)) != KAP_OK)
            goto out;
        kap_json_free(j);
        j = NULL;
        if (cursor.len == 0)
            break;
    }
    if (print)
        mcpc_say("(%zu tool%s)", count, count == 1 ? "" : "s");
    if (tools != NULL && kap_buf_append(tools, "]", 1) != KAP_OK)
        goto out;
    rc = KAP_OK;
out:
    kap_json_free(j);
    if (session != NULL) {
        char sh[300];
        const char *h[34];
        size_t n = 0;
        snprintf(sh, sizeof(sh), "Mcp-Session-Id: %.250s", session);
        h[n++] = sh;
        for (; hdrs != NULL && *hdrs != NULL && n < 33; hdrs++)
            h[n++] = *hdrs;
        h[n] = NULL;
        if (mcpc_http("DELETE", url, h, NULL, &r, NULL) == KAP_OK)
            mcpc_http_free(&r);
        free(session);
    }
    kap_buf_free(&msg);
    kap_buf_free(&cursor);
    return rc;
}
