/*
 * kap_mcp_audit.c -- the mcp module's questions and audit events.
 *
 * Every tools/call is a KAP_REQ_MCP_CALL question (kap_mcp_ask.c); the
 * module's own hook answers it from the server's allow/deny patterns
 * and pins, or declines a tool under an ask pattern; the core writes
 * the decision to the audit chain once.  The
 * module's refusals (unknown server, malformed request, unknown
 * session) are kap_req_refuse() decisions.  When an exchange ends, one
 * "mcp_call" / "mcp_list" / "mcp_request" event says how it went:
 * server, JSON-RPC method, tool, statuses, duration, bytes, tools seen
 * and removed.  No header value ever reaches an event.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <kapd/kap_gen.h>

#include "kap_mcp_mod.h"

int
kap_mcp_policy(struct kap_req *r, void *conf)
{
    const struct kap_mcp_conf *cf = conf;
    const struct kap_mcp_server *sv;
    struct kap_mcp_verdict v;
    const char *server = kap_req_attr(r, "server");
    char why[KAP_MCP_PATTERN_MAX + 64];

    /* only its own questions: a capsule's, forwarded by the channel,
       was decided by the capsule's policy */
    if (r->kind != KAP_REQ_MCP_CALL || server == NULL
        || r->asked_by == NULL || strcmp(r->asked_by, KAP_MCP_NAME) != 0
        || (sv = kap_mcp_server_find(cf, server)) == NULL)
        return KAP_DECLINED;
    kap_mcp_tools_match(sv->tools, r->subject, &v);
    if (v.allow && sv->pin_file != NULL
        && kap_mcp_pins_changed(kap_mcp_pins_get(sv->name, sv->pin_file),
                                r->subject)) {
        snprintf(why, sizeof(why), "the tool's definition changed since it "
                 "was pinned (accept it: kap mcp pin %s --accept)", sv->name);
        kap_req_decide(r, KAP_DENY, KAP_MCP_NAME, why);
        return KAP_OK;
    }
    /* ask narrows the patterns of allow, not a tool it names exactly */
    if (v.allow && sv->ask != NULL
        && !kap_mcp_tools_named(sv->tools, r->subject)) {
        struct kap_mcp_verdict av;
        kap_mcp_tools_match(sv->ask, r->subject, &av);
        if (av.allow) {
            r->flags |= KAP_REQ_F_ASK;  /* a later hook asks a human; */
            return KAP_DECLINED;        /* nobody after: denied */
        }
    }
    kap_mcp_verdict_describe(&v, why, sizeof(why));
    kap_req_decide(r, v.allow ? KAP_ALLOW : KAP_DENY, KAP_MCP_NAME, why);
    return KAP_OK;
}

void
kap_mcp_refuse_audit(struct kap_conn *c, const char *server,
                     const char *reason)
{
    struct kap_pool *p = kap_pool_create();
    struct kap_attr *at;
    struct kap_req *r;

    KAP_LOG(KAP_LOG_INFO, KAP_MCP_NAME, c->id, "%s: refused: %s",
            server != NULL ? server : "-", reason);
    if (p == NULL)
        return;
    r = kap_req_new(kap_gen_current(), p, KAP_REQ_MCP_CALL, KAP_MCP_NAME,
                    server != NULL ? server : "-");
    at = kap_palloc(p, sizeof(*at));
    if (r != NULL && at != NULL) {
        r->conn = c;
        r->client = c->peer_text;
        at->name = "server";
        at->value = server != NULL ? server : "";
        r->attrs = at;
        r->nattrs = 1;
        kap_req_refuse(r, reason);
    }
    kap_pool_destroy(p);
}

void
kap_mcp_audit(struct kap_conn *c, const struct kap_mcp_audit_info *a)
{
    struct kap_audit_event ev;
    struct kap_audit_field f[12];
    size_t n = 0;

    memset(&ev, 0, sizeof(ev));
    memset(f, 0, sizeof(f));
    ev.kind = a->lists > 0 && a->calls == 0 ? KAP_REQ_MCP_LIST
                                            : KAP_REQ_MCP_CALL;
    ev.module = KAP_MCP_NAME;
    ev.event = a->calls > 0 ? "mcp_call" : a->lists > 0 ? "mcp_list"
                                                        : "mcp_request";
    ev.subject = a->tool != NULL ? a->tool : a->server;
    ev.action = a->error != NULL ? "failed" : "done";
    ev.reason = a->error;
    ev.decided_by = KAP_MCP_NAME;
    ev.detail = a->method;
    ev.client = c->peer_text;
    ev.conn_id = c->id;
    f[n].name = "server";
    f[n++].str = a->server;
    if (a->rpc != NULL) {
        f[n].name = "rpc";
        f[n++].str = a->rpc;
    }
    f[n].name = "status";
    f[n++].num = (double)a->status;
    f[n].name = "upstream_status";
    f[n++].num = (double)a->upstream;
    f[n].name = "duration";
    f[n++].num = (double)(long long)((kap_now() - a->start) * 1e6) / 1e6;
    f[n].name = "bytes_in";
    f[n++].num = (double)a->bytes_in;
    f[n].name = "bytes_out";
    f[n++].num = (double)a->bytes_out;
    f[n].name = "calls";
    f[n++].num = (double)a->calls;
    f[n].name = "denied";
    f[n++].num = (double)a->denied;
    if (a->st != NULL && a->st->lists > 0) {
        f[n].name = "tools";
        f[n++].num = (double)a->st->tools;
        f[n].name = "tools_removed";
        f[n++].num = (double)a->st->removed;
    }
    ev.fields = f;
    ev.nfields = n;
    kap_audit_emit(c->gen, &ev);
}

void
kap_mcp_pin_audit(struct kap_conn *c, const char *server, const char *tool,
                  const struct kap_mcp_pin_change *ch)
{
    struct kap_audit_event ev;
    struct kap_audit_field f[5];

    KAP_LOG(KAP_LOG_WARN, KAP_MCP_NAME, c->id, "server %s: tool %s changed "
            "since it was pinned: held back until accepted", server, tool);
    memset(&ev, 0, sizeof(ev));
    memset(f, 0, sizeof(f));
    f[0].name = "server";
    f[0].str = server;
    f[1].name = "pinned";
    f[1].str = ch->pinned;
    f[2].name = "seen";
    f[2].str = ch->seen;
    f[3].name = "pinned_definition";
    f[3].str = ch->pinned_text != NULL ? ch->pinned_text : "";
    f[4].name = "seen_definition";
    f[4].str = ch->seen_text != NULL ? ch->seen_text : "";
    ev.kind = KAP_REQ_MCP_LIST;
    ev.module = KAP_MCP_NAME;
    ev.event = "mcp_pin_changed";
    ev.subject = tool;
    ev.action = "held";
    ev.reason = "definition changed since it was pinned";
    ev.decided_by = KAP_MCP_NAME;
    ev.client = c->peer_text;
    ev.conn_id = c->id;
    ev.fields = f;
    ev.nfields = 5;
    kap_audit_emit(c->gen, &ev);
}
