/*
 * kap_mcp_request.c -- check a request body for an MCP server and decide
 * what goes upstream (kap_mcp.h, docs/design/mcp-filter.md).
 *
 * The body is parsed strictly (kap_json: one value, no duplicate keys,
 * UTF-8 only, limits) and read as JSON-RPC 2.0 strictly: every message
 * an object with only the members JSON-RPC defines, "jsonrpc":"2.0", ids
 * strings or integers, tools/call with an id and params.name a string.
 * What is forwarded is printed from the checked tree, never the client's
 * bytes.  A denied tools/call is answered here with -32602 and never
 * reaches the server; in a batch the other elements still go.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kap_mcp.h"

/* Members a JSON-RPC message may have.  Anything else (a case variant
 * such as "Method" above all) is refused: a case-insensitive server
 * could read it in place of the member kapd checked. */
static const char *const msg_members[] = {
    "jsonrpc", "id", "method", "params", "result", "error", NULL
};
/* tools/call params kapd reads or a server reads beside them */
static const char *const call_params[] = { "name", "arguments", "_meta", NULL };
/* methods whose case variants are refused */
static const char *const filtered_methods[] = { "tools/call", "tools/list",
                                                NULL };

/* Mark m invalid with code and a message (printf-style). */
static void
bad(struct kap_mcp_req *r, struct kap_mcp_msg *m, int code, const char *fmt,
    ...) KAP_PRINTF(4, 5);

static void
bad(struct kap_mcp_req *r, struct kap_mcp_msg *m, int code, const char *fmt,
    ...)
{
    char buf[512];
    va_list ap;

    if (m->code != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    m->code = code;
    m->message = kap_pstrdup(r->pool, buf);
    if (m->message == NULL)
        r->oom = 1;
}

static int
in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

/* The name in list that s is a case variant of, or NULL. */
static const char *
variant_of(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (kap_mcp_fold_variant(s, *list))
            return *list;
    return NULL;
}

static void
check_call(struct kap_mcp_req *r, struct kap_mcp_msg *m,
           const struct kap_json *params, const struct kap_mcp_tools *t)
{
    const struct kap_json *c, *args;
    const char *k, *v;
    char why[KAP_MCP_PATTERN_MAX + 32];

    if (m->id == NULL) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "tools/call without an id");
        return;
    }
    if (kap_json_type(params) != KAP_JSON_OBJECT) {
        bad(r, m, KAP_MCP_INVALID_PARAMS, "tools/call: params must be an "
            "object with a string \"name\"");
        return;
    }
    for (c = kap_json_child(params); c; c = kap_json_next(c)) {
        k = kap_json_key(c);
        if ((v = variant_of(k, call_params)) != NULL) {
            bad(r, m, KAP_MCP_INVALID_PARAMS, "tools/call: params member "
                "\"%.64s\" is a variant of \"%s\"", k, v);
            return;
        }
    }
    m->tool = kap_json_get_string(params, "name");
    if (m->tool == NULL) {
        bad(r, m, KAP_MCP_INVALID_PARAMS, "tools/call: params.name must be "
            "a string");
        return;
    }
    args = kap_json_get(params, "arguments");
    if (args != NULL && kap_json_type(args) != KAP_JSON_OBJECT) {
        bad(r, m, KAP_MCP_INVALID_PARAMS, "tools/call: params.arguments "
            "must be an object");
        return;
    }
    kap_mcp_tools_match(t, m->tool, &m->verdict);
    if (!m->verdict.allow) {
        m->denied = 1;
        bad(r, m, KAP_MCP_INVALID_PARAMS, "tool \"%.200s\" is denied by "
            "kap's MCP filter (%s)", m->tool,
            kap_mcp_verdict_describe(&m->verdict, why, sizeof(why)));
    }
}

static void
check_request(struct kap_mcp_req *r, struct kap_mcp_msg *m,
              const struct kap_json *method, const struct kap_mcp_tools *t)
{
    const struct kap_json *params = kap_json_get(m->node, "params");
    const char *v;

    m->method = kap_json_string(method);
    if (m->method == NULL) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "method must be a string");
        return;
    }
    if (kap_json_get(m->node, "result") || kap_json_get(m->node, "error")) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "a request has no result or "
            "error");
        return;
    }
    if (params != NULL && kap_json_type(params) != KAP_JSON_OBJECT
        && kap_json_type(params) != KAP_JSON_ARRAY) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "params must be an object");
        return;
    }
    if ((v = variant_of(m->method, filtered_methods)) != NULL) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "method \"%.64s\" is a variant "
            "of \"%s\"", m->method, v);
        return;
    }
    if (strcmp(m->method, "tools/call") == 0)
        check_call(r, m, params, t);
    else if (strcmp(m->method, "tools/list") == 0)
        m->list = 1;
}

/* A response the client sends (to a request of the server's). */
static void
check_response(struct kap_mcp_req *r, struct kap_mcp_msg *m)
{
    const struct kap_json *res = kap_json_get(m->node, "result");
    const struct kap_json *err = kap_json_get(m->node, "error");
    const struct kap_json *id = kap_json_get(m->node, "id");
    int64_t code;

    if (kap_json_get(m->node, "params")) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "params without a method");
        return;
    }
    if ((res == NULL) == (err == NULL)) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "a message needs a method, or "
            "exactly one of result and error");
        return;
    }
    if (id == NULL || (m->id == NULL && !(err != NULL
                                          && kap_json_type(id) == KAP_JSON_NULL))) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "a response needs the id of its "
            "request");
        return;
    }
    if (err != NULL
        && (kap_json_type(err) != KAP_JSON_OBJECT
            || kap_json_int(kap_json_get(err, "code"), &code) != KAP_OK
            || kap_json_get_string(err, "message") == NULL)) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "error must be an object with an "
            "integer code and a string message");
        return;
    }
}

static void
check_msg(struct kap_mcp_req *r, struct kap_mcp_msg *m,
          const struct kap_mcp_tools *t)
{
    const struct kap_json *c, *id, *method;
    const char *k, *v;

    if (kap_json_type(m->node) == KAP_JSON_ARRAY) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "a batch inside a batch");
        return;
    }
    if (kap_json_type(m->node) != KAP_JSON_OBJECT) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "a JSON-RPC message is an object");
        return;
    }
    id = kap_json_get(m->node, "id");
    if (kap_mcp_id_ok(id))
        m->id = id;
    for (c = kap_json_child(m->node); c; c = kap_json_next(c)) {
        k = kap_json_key(c);
        if (!in_list(k, msg_members)) {
            if ((v = variant_of(k, msg_members)) != NULL)
                bad(r, m, KAP_MCP_INVALID_REQUEST, "member \"%.64s\" is a "
                    "variant of \"%s\"", k, v);
            else
                bad(r, m, KAP_MCP_INVALID_REQUEST, "unknown member \"%.64s\"",
                    k);
            return;
        }
    }
    v = kap_json_get_string(m->node, "jsonrpc");
    if (v == NULL || strcmp(v, "2.0") != 0) {
        bad(r, m, KAP_MCP_INVALID_REQUEST, "jsonrpc must be \"2.0\"");
        return;
    }
    method = kap_json_get(m->node, "method");
    if (method != NULL) {
        if (id != NULL && m->id == NULL) {
            bad(r, m, KAP_MCP_INVALID_REQUEST, "id must be a string or an "
                "integer");
            return;
        }
        check_request(r, m, method, t);
    } else {
        check_response(r, m);
    }
}

/* Refuse the second use of one request id in a batch. */
static void
check_ids(struct kap_mcp_req *r)
{
    struct kap_buf a = { 0 }, b = { 0 };
    size_t i, j;

    for (i = 0; i < r->nmsgs; i++) {
        struct kap_mcp_msg *m = &r->msgs[i];

        if ((m->code != 0 && !m->denied) || m->method == NULL || m->id == NULL)
            continue;
        kap_buf_reset(&a);
        if (kap_json_print(m->id, &a) != KAP_OK) {
            r->oom = 1;
            break;
        }
        for (j = 0; j < i; j++) {
            struct kap_mcp_msg *o = &r->msgs[j];

            if (o->method == NULL || o->id == NULL)
                continue;
            kap_buf_reset(&b);
            if (kap_json_print(o->id, &b) != KAP_OK) {
                r->oom = 1;
                break;
            }
            if (a.len == b.len && memcmp(a.data, b.data, a.len) == 0) {
                /* not merely denied: the answers could not be told apart */
                m->denied = 0;
                m->code = 0;
                bad(r, m, KAP_MCP_INVALID_REQUEST, "id %.64s is used twice "
                    "in the batch", a.data);
                break;
            }
        }
    }
    kap_buf_free(&a);
    kap_buf_free(&b);
}

/* The whole body is answered here: status and one error (not a batch). */
static int
answer_one(struct kap_mcp_req *r, int status, const struct kap_json *id,
           int code, const char *message)
{
    struct kap_json_writer w;

    r->status = status;
    kap_json_w_init(&w, &r->answer);
    kap_mcp_error_w(&w, id, code, message, NULL, NULL);
    return kap_json_w_finish(&w);
}

void
kap_mcp_msg_error_w(struct kap_json_writer *w, const struct kap_mcp_msg *m)
{
    kap_mcp_error_w(w, m->id, m->code, m->message,
                    m->denied ? m->tool : NULL,
                    m->denied ? &m->verdict : NULL);
}

/*
 * A batch with an invalid element is refused whole: an error for every
 * element that has one and for every other request (so the client waits
 * for nothing); notifications and responses get none, as JSON-RPC says.
 */
static int
refuse_batch(struct kap_mcp_req *r, size_t first_bad)
{
    struct kap_json_writer w;
    char msg[160];
    size_t i;

    snprintf(msg, sizeof(msg), "batch refused: element %zu is invalid "
             "(%.100s)", first_bad, r->msgs[first_bad].message);
    r->status = 400;
    kap_json_w_init(&w, &r->answer);
    kap_json_w_arr_begin(&w);
    for (i = 0; i < r->nmsgs; i++) {
        const struct kap_mcp_msg *m = &r->msgs[i];

        if (m->code != 0)
            kap_mcp_msg_error_w(&w, m);
        else if (m->method != NULL && m->id != NULL)
            kap_mcp_error_w(&w, m->id, KAP_MCP_INVALID_REQUEST, msg, NULL,
                            NULL);
    }
    kap_json_w_arr_end(&w);
    return kap_json_w_finish(&w);
}

/* Decide for the checked messages. */
static int
decide(struct kap_mcp_req *r, const struct kap_json *root)
{
    struct kap_json_writer w;
    size_t i, nfwd = 0;

    for (i = 0; i < r->nmsgs; i++)
        if (r->msgs[i].code != 0 && !r->msgs[i].denied) {
            if (!r->batch)
                return answer_one(r, 400, r->msgs[i].id, r->msgs[i].code,
                                  r->msgs[i].message);
            return refuse_batch(r, i);
        }
    for (i = 0; i < r->nmsgs; i++) {
        const struct kap_mcp_msg *m = &r->msgs[i];

        if (m->denied) {
            r->ndenied++;
            continue;
        }
        nfwd++;
        if (m->method != NULL && m->id != NULL)
            r->nrequests++;
        if (m->list)
            r->lists++;
    }
    if (nfwd == 0) {
        /* every element a denied call: nothing goes upstream */
        r->status = 200;
        return kap_mcp_req_errors(r, &r->answer);
    }
    if (!r->batch)
        return kap_json_print(root, &r->forward);
    kap_json_w_init(&w, &r->forward);
    kap_json_w_arr_begin(&w);
    for (i = 0; i < r->nmsgs; i++)
        if (!r->msgs[i].denied)
            kap_json_w_tree(&w, r->msgs[i].node);
    kap_json_w_arr_end(&w);
    return kap_json_w_finish(&w);
}

int
kap_mcp_req_check(struct kap_mcp_req *r, const struct kap_mcp_tools *t,
                  const char *content_type, const char *body, size_t len,
                  const struct kap_json_limits *lim)
{
    const struct kap_json *root, *c;
    struct kap_err err;
    const char *why;
    size_t i;

    memset(r, 0, sizeof(*r));
    memset(&err, 0, sizeof(err));
    r->pool = kap_pool_create();
    if (r->pool == NULL)
        return KAP_ERROR;
    why = kap_mcp_ctype_request(content_type);
    if (why != NULL) {
        snprintf(r->reason, sizeof(r->reason), "%s", why);
        return answer_one(r, 415, NULL, KAP_MCP_INVALID_REQUEST, why);
    }
    root = kap_json_parse_pool(r->pool, body ? body : "", body ? len : 0, lim,
                               &err);
    if (root == NULL) {
        if (strncmp(err.msg, "out of memory", 13) == 0)
            return KAP_ERROR;
        snprintf(r->reason, sizeof(r->reason), "not strict JSON: %.200s", err.msg);
        return answer_one(r, 400, NULL, KAP_MCP_PARSE_ERROR, r->reason);
    }
    r->batch = kap_json_type(root) == KAP_JSON_ARRAY;
    r->nmsgs = r->batch ? kap_json_size(root) : 1;
    if (r->nmsgs == 0) {
        snprintf(r->reason, sizeof(r->reason), "an empty batch");
        return answer_one(r, 400, NULL, KAP_MCP_INVALID_REQUEST, r->reason);
    }
    r->msgs = kap_palloc(r->pool, r->nmsgs * sizeof(*r->msgs));
    if (r->msgs == NULL)
        return KAP_ERROR;
    if (r->batch)
        for (i = 0, c = kap_json_child(root); c; c = kap_json_next(c), i++)
            r->msgs[i].node = c;
    else
        r->msgs[0].node = root;
    for (i = 0; i < r->nmsgs; i++)
        check_msg(r, &r->msgs[i], t);
    if (r->batch)
        check_ids(r);
    if (r->oom)
        return KAP_ERROR;
    for (i = 0; i < r->nmsgs; i++)
        if (r->msgs[i].code != 0 && !r->msgs[i].denied) {
            snprintf(r->reason, sizeof(r->reason), "%s%.200s",
                     r->batch ? "in a batch: " : "", r->msgs[i].message);
            break;
        }
    return decide(r, root);
}

int
kap_mcp_req_errors(const struct kap_mcp_req *r, struct kap_buf *out)
{
    struct kap_json_writer w;
    size_t i;

    kap_json_w_init(&w, out);
    if (r->batch)
        kap_json_w_arr_begin(&w);
    for (i = 0; i < r->nmsgs; i++)
        if (r->msgs[i].denied) {
            kap_mcp_msg_error_w(&w, &r->msgs[i]);
            if (!r->batch)
                break;
        }
    if (r->batch)
        kap_json_w_arr_end(&w);
    return kap_json_w_finish(&w);
}

void
kap_mcp_req_free(struct kap_mcp_req *r)
{
    if (r == NULL)
        return;
    kap_buf_free(&r->forward);
    kap_buf_free(&r->answer);
    kap_pool_destroy(r->pool);
    r->pool = NULL;
    r->msgs = NULL;
    r->nmsgs = 0;
}
