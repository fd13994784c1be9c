/*
 * kap_mcp_audit.c -- the mcp module's questions and audit events.
 *
 * Every tools/call is a KAP_REQ_MCP_CALL question (subject: the tool;
 * attributes "server" and "rule") asked through the policy chain, where
 * the module's own hook answers it from the server's allow/deny
 * patterns; the core writes the decision to the audit chain once.  The
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

    if (r->kind != KAP_REQ_MCP_CALL || server == NULL
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

/*
 * Ask the policy chain about every tools/call of r (decisions audited by
 * the core).  The module's own verdict (r's) stands when the chain
 * agrees; returns the index of the first call the module allowed and the
 * chain denied (the request is then refused whole), or -1.
 */
long
kap_mcp_ask_calls(struct kap_conn *c, struct kap_pool *p,
                  const struct kap_mcp_server *sv, const struct kap_mcp_req *r,
                  const char **why)
{
    struct kap_attr *at;
    struct kap_req *q;
    char rule[KAP_MCP_PATTERN_MAX + 64];
    size_t i;

    for (i = 0; i < r->nmsgs; i++) {
        const struct kap_mcp_msg *m = &r->msgs[i];
        if (m->tool == NULL || m->method == NULL)
            continue;
        q = kap_req_new(kap_gen_current(), p, KAP_REQ_MCP_CALL, KAP_MCP_NAME,
                        m->tool);
        at = kap_palloc(p, 2 * sizeof(*at));
        if (q == NULL || at == NULL) {
            *why = "out of memory";
            return (long)i;
        }
        kap_mcp_verdict_describe(&m->verdict, rule, sizeof(rule));
        at[0].name = "server";
        at[0].value = sv->name;
        at[1].name = "rule";
        at[1].value = kap_pstrdup(p, rule);
        q->attrs = at;
        q->nattrs = 2;
        q->conn = c;
        q->client = c->peer_text;
        q->detail = "tools/call";
        q->flags |= KAP_REQ_F_FILTER;
        kap_policy_check(q, NULL, NULL);
        if (!m->denied && q->verdict != KAP_ALLOW) {
            *why = q->reason != NULL ? q->reason : "denied";
            return (long)i;
        }
    }
    return -1;
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
