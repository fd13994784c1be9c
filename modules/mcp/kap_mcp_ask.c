/*
 * kap_mcp_ask.c -- the policy questions of one checked POST
 * (kap_mcp_mod.h).
 *
 * Every tools/call is a KAP_REQ_MCP_CALL question (subject: the tool;
 * attributes "server" and "rule"; KAP_REQ_F_FILTER, so observe mode
 * does not lift a tool deny).  The module's own hook (kap_mcp_policy)
 * answers from the server's patterns and pins, and declines a tool
 * under an `ask` pattern so that a later hook -- the channel, where a
 * human answers -- decides; an exhausted chain denies.  The core audits
 * each decision once.  The exchange waits for the last answer; the
 * agent going away cancels the questions (they live in its pool).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <kapd/kap_gen.h>
#include <kapd/kap_json.h>

#include "kap_mcp_mod.h"

struct ask {
    struct kap_http_ex          *ex;
    struct kap_gen              *gen;    /* referenced */
    const struct kap_mcp_conf   *cf;
    const struct kap_mcp_server *sv;
    struct kap_mcp_req          *r;      /* until handed on */
    struct kap_mcp_fwd_headers   fh;
    const char                  *up;
    char                         client[96];
    size_t                       pending;
    const char                  *denied; /* why the chain denied a call */
    const char                  *tool;
};

struct ask_q {
    struct ask               *a;
    const struct kap_mcp_msg *m;
};

static void
ask_cleanup(void *data)
{
    struct ask *a = data;

    if (a->r != NULL)
        kap_mcp_req_free(a->r);
    kap_gen_unref(a->gen);
}

/*
 * A call the chain denied: nothing is forwarded, and every request of
 * the body is answered with a JSON-RPC error (HTTP 200, as a call the
 * patterns deny): the denied call says why, the others that they were
 * not sent.  An MCP client reads these as tool errors, not as a
 * transport failure.
 */
static void
ask_refuse(struct ask *a)
{
    struct kap_mcp_req *r = a->r;
    struct kap_json_writer w;
    struct kap_buf b = { 0 };
    char msg[512];
    size_t i;

    kap_json_w_init(&w, &b);
    if (r->batch)
        kap_json_w_arr_begin(&w);
    for (i = 0; i < r->nmsgs; i++) {
        const struct kap_mcp_msg *m = &r->msgs[i];
        if (m->method == NULL || m->id == NULL)
            continue;                   /* notifications, responses */
        if (m->tool != NULL && strcmp(m->tool, a->tool) == 0)
            snprintf(msg, sizeof(msg), "tool \"%s\" denied: %s%s", m->tool,
                     a->denied, strcmp(a->denied, "default deny") == 0
                         ? " (kapd.policy.chain must name \"mcp\")" : "");
        else
            snprintf(msg, sizeof(msg), "not sent: tool \"%s\" in the same "
                     "request was denied", a->tool);
        kap_mcp_error_w(&w, m->id, KAP_MCP_INVALID_PARAMS, msg, NULL, NULL);
        if (!r->batch)
            break;
    }
    if (r->batch)
        kap_json_w_arr_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK || b.len == 0) {
        kap_buf_free(&b);
        kap_mcp_answer(a->ex, 403, "a tools/call was denied", NULL);
        return;
    }
    kap_http_header_add(a->ex, "Cache-Control", "no-store");
    kap_http_respond(a->ex, 200, "application/json", b.data, b.len);
    kap_buf_free(&b);
}

static void
ask_answered(struct ask *a)
{
    struct kap_mcp_req *r = a->r;

    if (r->status != 0) {               /* every call denied here */
        kap_http_header_add(a->ex, "Cache-Control", "no-store");
        kap_http_respond(a->ex, r->status, "application/json",
                         r->answer.data, r->answer.len);
        return;
    }
    if (a->denied != NULL) {
        ask_refuse(a);
        return;
    }
    a->r = NULL;                        /* the forward owns it now */
    kap_mcp_forward(a->ex, a->gen, a->cf, a->sv, r, &a->fh, a->up,
                    a->client);
}

/* one answer: a call the patterns allowed and the chain did not stops
 * the request */
static void
ask_one(struct ask_q *q, struct kap_req *req)
{
    struct ask *a = q->a;

    if (!q->m->denied && req->verdict != KAP_ALLOW && a->denied == NULL) {
        a->denied = kap_pstrdup(kap_http_ex_pool(a->ex),
                                req->reason != NULL ? req->reason : "denied");
        a->tool = q->m->tool;
    }
}

static void
ask_done(struct kap_req *req, void *data)
{
    struct ask_q *q = data;
    struct ask *a = q->a;

    ask_one(q, req);
    if (--a->pending == 0)
        ask_answered(a);
}

static void
ask_abort(struct kap_http_ex *ex, void *data)
{
    (void)ex;
    (void)data;                         /* the pool's end cancels all */
}

static struct kap_req *
ask_req(struct ask *a, struct kap_pool *p, const struct kap_mcp_msg *m)
{
    struct kap_conn *c = kap_http_ex_conn(a->ex);
    char rule[KAP_MCP_PATTERN_MAX + 64];
    struct kap_attr *at = kap_palloc(p, 2 * sizeof(*at));
    struct kap_req *q = kap_req_new(a->gen, p, KAP_REQ_MCP_CALL,
                                    KAP_MCP_NAME, m->tool);

    if (q == NULL || at == NULL)
        return NULL;
    kap_mcp_verdict_describe(&m->verdict, rule, sizeof(rule));
    at[0].name = "server";
    at[0].value = a->sv->name;
    at[1].name = "rule";
    at[1].value = kap_pstrdup(p, rule);
    q->attrs = at;
    q->nattrs = at[1].value != NULL ? 2 : 1;
    q->conn = c;
    q->client = c->peer_text;
    q->detail = "tools/call";
    q->flags |= KAP_REQ_F_FILTER;
    return q;
}

void
kap_mcp_ask(struct kap_http_ex *ex, struct kap_gen *gen,
            const struct kap_mcp_conf *cf, const struct kap_mcp_server *sv,
            struct kap_mcp_req *r, const struct kap_mcp_fwd_headers *fh,
            const char *up, const char *client)
{
    struct kap_pool *p = kap_http_ex_pool(ex);
    struct ask *a = kap_palloc(p, sizeof(*a));
    struct ask_q *q;
    struct kap_req *req;
    size_t i;

    if (a == NULL || kap_pool_cleanup_add(p, ask_cleanup, a) != KAP_OK) {
        kap_mcp_req_free(r);
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    memset(a, 0, sizeof(*a));
    a->ex = ex;
    a->gen = gen;
    kap_gen_ref(gen);
    a->cf = cf;
    a->sv = sv;
    a->r = r;
    a->fh = *fh;
    a->up = up;
    snprintf(a->client, sizeof(a->client), "%s", client);
    kap_http_ex_on_abort(ex, ask_abort, a);
    a->pending = 1;                     /* held while asking */
    for (i = 0; i < r->nmsgs; i++) {
        const struct kap_mcp_msg *m = &r->msgs[i];
        if (m->tool == NULL || m->method == NULL)
            continue;
        q = kap_palloc(p, sizeof(*q));
        req = q != NULL ? ask_req(a, p, m) : NULL;
        if (req == NULL) {
            a->denied = "out of memory";
            a->tool = m->tool;
            break;
        }
        q->a = a;
        q->m = m;
        if (kap_policy_check(req, ask_done, q) == KAP_AGAIN)
            a->pending++;
        else
            ask_one(q, req);
    }
    if (--a->pending == 0)
        ask_answered(a);
}
