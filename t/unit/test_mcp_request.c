/*
 * test_mcp_request.c -- the mcp module's request check
 * (modules/mcp/kap_mcp_request.c, kap_mcp_ctype.c, kap_mcp_jsonrpc.c):
 * Content-Type rules, strict JSON, strict JSON-RPC (members, ids,
 * methods, tools/call params, case variants a lax server could read),
 * denied calls answered with -32602 naming tool and rule, batches
 * checked element by element (denied calls left out and answered, an
 * invalid element refusing the whole batch), and what is forwarded being
 * kapd's own printing of the checked tree; the request-target read
 * (kap_mcp_route.c), a query string refused; the headers that go
 * upstream (kap_mcp_headers.c).
 */
#include "config.h"

#include <string.h>

#include "kap_mcp.h"
#include "tap.h"

#define JSON "application/json"

static struct kap_pool *pool;
static struct kap_mcp_tools *tools;
static struct kap_mcp_req r;

/* Check body; returns r.status (-1 on KAP_ERROR). */
static int
check(const char *ctype, const char *body)
{
    kap_mcp_req_free(&r);
    if (kap_mcp_req_check(&r, tools, ctype, body, strlen(body), NULL) != KAP_OK)
        return -1;
    return r.status;
}

static const char *
fwd(void)
{
    return r.forward.data ? r.forward.data : "";
}

/* error.code of the answer (element i of an array answer, -1: object) */
static long long
code_at(int i)
{
    struct kap_json *j = kap_json_parse(r.answer.data, r.answer.len, NULL, NULL);
    const struct kap_json *e = j;
    int64_t c = 0;

    if (i >= 0)
        for (e = kap_json_child(j); e && i > 0; i--)
            e = kap_json_next(e);
    if (kap_json_int(kap_json_get(kap_json_get(e, "error"), "code"), &c) != KAP_OK)
        c = 0;
    kap_json_free(j);
    return c;
}

static int
answer_has(const char *s)
{
    return r.answer.data != NULL && strstr(r.answer.data, s) != NULL;
}

static void
test_ctype(void)
{
    static const char *const good[] = {
        JSON, "application/json; charset=utf-8", "Application/JSON;Charset=\"UTF-8\"",
        " application/json ;  charset=utf-8 ", NULL
    };
    static const char *const badct[] = {
        "text/plain", "application/json; charset=latin1",
        "application/json; charset=utf-8; charset=utf-8",
        "application/json; version=2", "application/json;", "application/json, text/plain",
        "application/jsonx", "application", "application/json; charset=\"utf-8",
        "text/event-stream", NULL
    };
    const char *const *p;
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";

    for (p = good; *p; p++)
        is_int(check(*p, body), 0, *p);
    for (p = badct; *p; p++) {
        is_int(check(*p, body), 415, *p);
        ok(code_at(-1) == KAP_MCP_INVALID_REQUEST && answer_has("Content-Type"),
           "... -32600 naming Content-Type: %s", r.answer.data);
    }
    is_int(check(NULL, body), 415, "no Content-Type");
    ok(answer_has("application/json is required"), "... saying what is: %s",
       r.reason);
}

static void
test_reply_kind(void)
{
    is_int(kap_mcp_reply_kind(200, "application/json; charset=utf-8"),
           KAP_MCP_REPLY_JSON, "reply JSON");
    is_int(kap_mcp_reply_kind(200, "Text/Event-Stream"), KAP_MCP_REPLY_SSE,
           "reply SSE");
    is_int(kap_mcp_reply_kind(200, "application/json;;"), KAP_MCP_REPLY_JSON,
           "reply JSON with unreadable parameters: filtered as JSON");
    is_int(kap_mcp_reply_kind(200, "text/plain"), KAP_MCP_REPLY_REFUSE,
           "2xx of another type refused");
    is_int(kap_mcp_reply_kind(200, NULL), KAP_MCP_REPLY_REFUSE,
           "2xx without a type refused");
    is_int(kap_mcp_reply_kind(202, NULL), KAP_MCP_REPLY_PASS, "202 passes");
    is_int(kap_mcp_reply_kind(404, "text/html"), KAP_MCP_REPLY_PASS,
           "an error page passes");
}

static void
test_strict_json(void)
{
    static const char *const badjson[] = {
        "", "{", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} x",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"method\":\"tools/call\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":9007199254740993,\"method\":\"ping\"}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\\u0000\"}",
        "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        NULL
    };
    const char *const *p;
    int i = 0;

    for (p = badjson; *p; p++, i++) {
        is_int(check(JSON, *p), 400, "not strict JSON refused");
        ok(code_at(-1) == KAP_MCP_PARSE_ERROR && answer_has("\"id\":null"),
           "... %d: -32700 with id null: %s", i, r.reason);
        is_int(r.forward.len, 0, "... nothing forwarded");
    }
}

static void
test_strict_jsonrpc(void)
{
    static const struct { const char *body; int code; const char *why; } t[] = {
        { "{\"id\":1,\"method\":\"ping\"}", -32600, "jsonrpc must be" },
        { "{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}", -32600, "jsonrpc must be" },
        { "{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}", -32600, "jsonrpc must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}", -32600, "method must be a string" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", -32600, "id must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"ping\"}", -32600, "id must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1e2,\"method\":\"ping\"}", -32600, "id must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}", -32600, "id must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}", -32600, "id must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}", -32600, "id must be" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":1}", -32600,
          "unknown member \\\"x\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"Method\":\"tools/call\"}", -32600,
          "\\\"Method\\\" is a variant of \\\"method\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"param\xc5\xbf\":{}}", -32600,
          "variant of \\\"params\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":\"x\"}", -32600,
          "params must be an object" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"result\":{}}", -32600,
          "no result or error" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"Tools/Call\",\"params\":{\"name\":\"x\"}}",
          -32600, "variant of \\\"tools/call\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\" tools/call\",\"params\":{\"name\":\"x\"}}",
          -32600, "variant of \\\"tools/call\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"TOOLS/LIST\"}", -32600,
          "variant of \\\"tools/list\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"get_x\"}}",
          -32600, "tools/call without an id" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}", -32602,
          "params must be an object" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":[\"get_x\"]}",
          -32602, "params must be an object" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}", -32602,
          "params.name must be a string" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":1}}",
          -32602, "params.name must be a string" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
          "{\"name\":\"get_x\",\"Name\":\"delete_all\"}}", -32602,
          "\\\"Name\\\" is a variant of \\\"name\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
          "{\"NAME \":\"delete_all\",\"name\":\"get_x\"}}", -32602, "variant of \\\"name\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
          "{\"name\":\"get_x\",\"argument\xc5\xbf\":{}}}", -32602, "variant of \\\"arguments\\\"" },
        { "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
          "{\"name\":\"get_x\",\"arguments\":[1]}}", -32602, "arguments must be an object" },
        { "{\"jsonrpc\":\"2.0\",\"result\":{}}", -32600, "needs the id" },
        { "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{}}", -32600, "needs the id" },
        { "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{},\"error\":{\"code\":1,\"message\":\"m\"}}",
          -32600, "exactly one of result and error" },
        { "{\"jsonrpc\":\"2.0\",\"id\":3}", -32600, "exactly one of result and error" },
        { "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":1.5,\"message\":\"m\"}}", -32600,
          "integer code" },
        { "{\"jsonrpc\":\"2.0\",\"id\":3,\"params\":{},\"result\":{}}", -32600,
          "params without a method" },
        { "[1]", -32600, "a JSON-RPC message is an object" },
        { "\"ping\"", -32600, "a JSON-RPC message is an object" },
        { "[]", -32600, "an empty batch" },
        { "[[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]]", -32600,
          "a batch inside a batch" },
    };
    size_t i;

    for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int st = check(JSON, t[i].body);
        long long code = code_at(r.answer.data && r.answer.data[0] == '[' ? 0 : -1);

        ok(st == 400 && code == t[i].code && answer_has(t[i].why)
           && r.forward.len == 0, "%zu refused with %d (%s): %s", i, t[i].code,
           t[i].why, r.answer.data ? r.answer.data : "(no answer)");
    }
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"Ping\"}"), 0,
           "case is only refused for the filtered methods");
}

static void
test_forward(void)
{
    const char *call = "{ \"method\" : \"tools/call\", \"jsonrpc\":\"2.0\",\n"
        " \"params\":{\"name\":\"\\u0067et_issue\",\"arguments\":{\"n\":1.50,"
        "\"s\":\"\\/x\"}},\"id\":-7}";

    is_int(check(JSON, call), 0, "an allowed call is forwarded");
    is_str(fwd(), "{\"method\":\"tools/call\",\"jsonrpc\":\"2.0\",\"params\":"
           "{\"name\":\"get_issue\",\"arguments\":{\"n\":1.50,\"s\":\"/x\"}},"
           "\"id\":-7}", "... as kapd prints the checked tree, not the client's bytes");
    ok(r.nmsgs == 1 && r.msgs[0].tool && strcmp(r.msgs[0].tool, "get_issue") == 0
       && r.msgs[0].verdict.allow && r.ndenied == 0 && r.nrequests == 1,
       "... with its tool and verdict for the audit");
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/list\","
                 "\"params\":{\"cursor\":\"c\"}}"), 0, "tools/list forwarded");
    is_int(r.lists, 1, "... and counted for the reply filter");
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"),
           0, "a notification forwarded");
    is_int(r.nrequests, 0, "... expecting no reply");
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"x\":[]}}"), 0,
           "a response of the client's forwarded");
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                 "\"message\":\"bad\"}}"), 0, "an error response with a null id forwarded");
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":[1]}"),
           0, "positional params for another method forwarded");
}

static void
test_denied(void)
{
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"tools/call\","
                 "\"params\":{\"name\":\"delete_repo\"}}"), 200,
           "a denied call is answered here");
    is_int(r.forward.len, 0, "... nothing forwarded");
    is_int(code_at(-1), KAP_MCP_INVALID_PARAMS, "... with -32602");
    ok(answer_has("\"id\":\"q\"") && answer_has("tool \\\"delete_repo\\\" is denied")
       && answer_has("deny rule \\\"delete_*\\\"")
       && answer_has("\"data\":{\"tool\":\"delete_repo\",\"rule\":\"delete_*\",\"list\":\"deny\"}"),
       "... naming the tool and the rule: %s", r.answer.data);
    is_int(check(JSON, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                 "\"params\":{\"name\":\"Get_issue\"}}"), 200, "not allowed");
    ok(answer_has("no allow rule matches") && answer_has("\"rule\":null"),
       "... saying no allow rule matches: %s", r.answer.data);
}

static void
test_batches(void)
{
    const char *ok1 = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"get_a\"}}";
    const char *no2 = "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"delete_b\"}}";
    const char *no3 = "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                      "\"params\":{\"name\":\"rm\"}}";
    const char *note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}";
    char body[1024];
    struct kap_buf e = { 0 };

    snprintf(body, sizeof(body), "[%s, %s, %s]", ok1, no2, note);
    is_int(check(JSON, body), 0, "batch with a denied call: the rest is forwarded");
    snprintf(body, sizeof(body), "[%s,%s]", ok1, note);
    is_str(fwd(), body, "... without the denied call");
    ok(r.batch && r.ndenied == 1 && r.nrequests == 1 && r.msgs[1].denied,
       "... which is counted and marked");
    is_int(kap_mcp_req_errors(&r, &e), KAP_OK, "... its error ready to merge");
    ok(e.data && e.data[0] == '[' && strstr(e.data, "\"id\":2")
       && strstr(e.data, "delete_b"), "... in an array: %s", e.data ? e.data : "");
    kap_buf_free(&e);

    snprintf(body, sizeof(body), "[%s,%s]", no2, no3);
    is_int(check(JSON, body), 200, "a batch of denied calls is answered here");
    ok(r.answer.data[0] == '[' && code_at(0) == -32602 && code_at(1) == -32602
       && answer_has("\"id\":3"), "... an error for each: %s", r.answer.data);

    snprintf(body, sizeof(body), "[%s,%s]", no2, note);
    is_int(check(JSON, body), 0, "denied call and a notification: the notification goes");
    ok(r.nrequests == 0 && r.ndenied == 1, "... no reply is owed by the server: "
       "kap_mcp_req_errors() answers");

    snprintf(body, sizeof(body), "[%s,{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":7},%s,%s]",
             ok1, no2, note);
    is_int(check(JSON, body), 400, "a batch with an invalid element is refused whole");
    ok(r.forward.len == 0 && code_at(0) == -32600 && answer_has("element 1 is invalid")
       && code_at(1) == -32600 && answer_has("method must be a string")
       && code_at(2) == -32602 && code_at(3) == 0,
       "... every request answered, the notification not: %s", r.answer.data);

    snprintf(body, sizeof(body), "[%s,%s]", ok1, ok1);
    is_int(check(JSON, body), 400, "an id used twice in a batch refused");
    ok(answer_has("id 1 is used twice"), "... saying so: %s", r.answer.data);
    snprintf(body, sizeof(body), "[%s,{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
             "\"tools/call\",\"params\":{\"name\":\"delete_x\"}}]", ok1);
    is_int(check(JSON, body), 400, "... also when the second one is a denied call");
    snprintf(body, sizeof(body), "[%s,{\"jsonrpc\":\"2.0\",\"id\":\"1\",\"method\":\"ping\"}]",
             ok1);
    is_int(check(JSON, body), 0, "1 and \"1\" are different ids");
    snprintf(body, sizeof(body), "[%s,{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]", ok1);
    is_int(check(JSON, body), 0, "a response may carry a request's id");
}

static const char *
route(const char *target, const char *prefix)
{
    static char name[KAP_MCP_NAME_MAX + 1];
    const char *why;

    if (kap_mcp_route(target, prefix, name, sizeof(name), &why) != KAP_OK)
        return why;
    return name;
}

static void
test_route(void)
{
    char long_name[KAP_MCP_NAME_MAX + 3];

    is_str(route("/github", NULL), "github", "/NAME");
    is_str(route("/github/mcp/x", NULL), "github", "/NAME/rest");
    is_str(route("/mcp/linear", "/mcp"), "linear", "under a prefix");
    is_str(route("/mcp/linear/", "/mcp/"), "linear", "under a prefix written with /");
    is_str(route("/linear", "/mcp"), "the path is not under the MCP prefix",
           "outside the prefix");
    is_str(route("/mcpx/linear", "/mcp"), "the path is not under the MCP prefix",
           "a prefix is a whole segment");
    is_str(route("/github?jsonrpc=2.0&method=tools/call", NULL),
           "a query string is refused: JSON-RPC goes in the body", "a query string refused");
    is_str(route("/github?", NULL), "a query string is refused: JSON-RPC goes in the body",
           "an empty query string refused");
    is_str(route("/github#x", NULL), "a query string is refused: JSON-RPC goes in the body",
           "a fragment refused");
    ok(strncmp(route("/", NULL), "no MCP server name", 18) == 0, "no name");
    ok(strncmp(route("//github", NULL), "no MCP server name", 18) == 0, "empty segment");
    ok(strncmp(route("/%67ithub", NULL), "no MCP server name", 18) == 0,
       "percent-encoding is not a name");
    ok(strncmp(route("/..", NULL), "no MCP server name", 18) == 0, "dot-dot");
    ok(strncmp(route("/a.b", NULL), "no MCP server name", 18) == 0, "a dot");
    ok(strncmp(route("/-a", NULL), "no MCP server name", 18) == 0, "a leading '-'");
    is_str(route("/Git_hub-2", NULL), "Git_hub-2", "letters, digits, '_', '-'");
    is_str(route("http://x/github", NULL), "the request-target must be a path (/NAME)",
           "absolute-form refused");
    long_name[0] = '/';
    memset(long_name + 1, 'a', KAP_MCP_NAME_MAX + 1);
    long_name[KAP_MCP_NAME_MAX + 2] = '\0';
    ok(strncmp(route(long_name, NULL), "no MCP server name", 18) == 0, "too long a name");
    long_name[KAP_MCP_NAME_MAX + 1] = '\0';
    is_int(strlen(route(long_name, NULL)), KAP_MCP_NAME_MAX, "the longest name");
}

#define H(n, v) { { n, sizeof(n) - 1 }, { v, sizeof(v) - 1 } }

static const char *
pick(const struct kap_http_header *h, size_t n, struct kap_mcp_fwd_headers *f)
{
    const char *why;

    if (kap_mcp_headers_pick(h, n, f, &why) != KAP_OK)
        return why;
    return "ok";
}

static void
test_headers(void)
{
    static const struct kap_http_header all[] = {
        H("Host", "127.0.0.1:3129"), H("Authorization", "Bearer agent-token"),
        H("mcp-session-id", "s-1"), H("MCP-Protocol-Version", "2025-06-18"),
        H("Last-Event-ID", "ev 7"), H("accept", "application/json, text/event-stream"),
        H("Content-Type", "application/json"), H("Cookie", "a=b"),
    };
    static const struct kap_http_header twice[] = {
        H("Mcp-Session-Id", "a"), H("MCP-SESSION-ID", "b"),
    };
    static const struct kap_http_header ct_twice[] = {
        H("Content-Type", "application/json"), H("Content-Type", "text/plain"),
    };
    static const struct kap_http_header bad[][1] = {
        { H("Mcp-Session-Id", "a b") }, { H("Mcp-Session-Id", "") },
        { H("Mcp-Session-Id", "a\x01") }, { H("Mcp-Session-Id", "caf\xc3\xa9") },
        { H("MCP-Protocol-Version", "latest") }, { H("MCP-Protocol-Version", "2025-6-18") },
        { H("Last-Event-ID", "a\tb") },
    };
    struct kap_mcp_fwd_headers f;
    size_t i;

    is_str(pick(all, sizeof(all) / sizeof(all[0]), &f), "ok", "the transport's headers picked");
    ok(f.session == &all[2] && f.version == &all[3] && f.last_event_id == &all[4]
       && f.accept == &all[5] && f.content_type == &all[6],
       "... case-insensitively; Authorization, Cookie and Host are not among them");
    is_str(pick(twice, 2, &f), "a header the MCP transport uses was sent twice",
           "Mcp-Session-Id twice refused");
    is_str(pick(ct_twice, 2, &f), "a header the MCP transport uses was sent twice",
           "Content-Type twice refused");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_str(pick(bad[i], 1, &f), "a header the MCP transport uses has a malformed value",
               "a malformed value refused");
    is_str(pick(NULL, 0, &f), "ok", "no headers");
}

int
main(void)
{
    struct kap_err err;

    memset(&err, 0, sizeof(err));
    pool = kap_pool_create();
    tools = kap_mcp_tools_create(pool);
    kap_mcp_tools_add(tools, 0, "get_*", NULL, 0, &err);
    kap_mcp_tools_add(tools, 0, "delete_*", NULL, 0, &err);
    kap_mcp_tools_add(tools, 1, "delete_*", NULL, 0, &err);
    test_ctype();
    test_reply_kind();
    test_strict_json();
    test_strict_jsonrpc();
    test_forward();
    test_denied();
    test_batches();
    test_route();
    test_headers();
    kap_mcp_req_free(&r);
    kap_pool_destroy(pool);
    return done_testing();
}
