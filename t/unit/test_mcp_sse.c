/*
 * test_mcp_sse.c -- the mcp module's event-stream parser and re-framer
 * (modules/mcp/kap_mcp_sse.c, kap_mcp_sse_frame.c): every framing (LF,
 * CRLF, CR, "data:" with and without the space, multi-line data,
 * comments, event/id/retry, a BOM at the start) read the same when fed
 * whole, split at every byte, or a byte at a time; the standard's edge
 * cases; the memory bound; tools lists filtered inside events and the
 * events written back in one canonical framing.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "kap_mcp.h"
#include "tap.h"

static struct kap_buf seen;

/* Record an event as text: C; or T=..|I=..|R=..|D=..; */
static int
record(void *arg, const struct kap_mcp_sse_event *ev)
{
    (void) arg;
    if (ev->comment)
        return kap_buf_append(&seen, "C;", 2);
    kap_buf_printf(&seen, "T=%.*s|", (int) ev->type_len, ev->type);
    if (ev->has_id)
        kap_buf_printf(&seen, "I=%.*s|", (int) ev->id_len, ev->id);
    if (ev->has_retry)
        kap_buf_printf(&seen, "R=%llu|", ev->retry);
    if (ev->has_data)
        kap_buf_printf(&seen, "D=%.*s", (int) ev->data_len, ev->data);
    return kap_buf_append(&seen, ";", 1);
}

/* Parse s (n bytes) fed in pieces of `step` (0: whole, else cut at `cut`
 * then the rest by step). */
static const char *
parse(const char *s, size_t n, size_t cut, size_t step)
{
    struct kap_mcp_sse p;
    struct kap_err err;
    size_t i, k;

    memset(&err, 0, sizeof(err));
    kap_buf_reset(&seen);
    kap_mcp_sse_init(&p, 0);
    if (step == 0) {
        kap_mcp_sse_feed(&p, s, n, record, NULL, &err);
    } else {
        if (cut > n)
            cut = n;
        kap_mcp_sse_feed(&p, s, cut, record, NULL, &err);
        for (i = cut; i < n; i += k) {
            k = n - i < step ? n - i : step;
            kap_mcp_sse_feed(&p, s + i, k, record, NULL, &err);
        }
    }
    kap_mcp_sse_free(&p);
    if (err.set)
        kap_buf_printf(&seen, "ERR=%s", err.msg);
    return seen.data ? seen.data : "";
}

static void
same_every_split(const char *name, const char *s, size_t n, const char *want)
{
    size_t cut;
    int bad = 0;

    is_str(parse(s, n, 0, 0), want, name);
    for (cut = 0; cut <= n && !bad; cut++)
        if (strcmp(parse(s, n, cut, n), want) != 0) {
            bad = 1;
            diag("split at %zu: %s", cut, seen.data);
        }
    ok(!bad, "%s: the same split at every byte", name);
    ok(strcmp(parse(s, n, 0, 1), want) == 0, "%s: the same a byte at a time", name);
}

#define S(lit) lit, sizeof(lit) - 1

static void
test_framings(void)
{
    const char *want = "T=|D={\"a\":1};T=|I=7|D=line1\nline2;C;T=ping|R=3000|D=;";

    same_every_split("LF", S("data: {\"a\":1}\n\nid: 7\ndata: line1\ndata: line2\n\n"
                             ": keep-alive\nevent: ping\nretry: 3000\ndata\n\n"), want);
    same_every_split("CRLF", S("data: {\"a\":1}\r\n\r\nid: 7\r\ndata: line1\r\n"
                               "data: line2\r\n\r\n: keep-alive\r\nevent: ping\r\n"
                               "retry: 3000\r\ndata\r\n\r\n"), want);
    same_every_split("CR", S("data: {\"a\":1}\r\rid: 7\rdata: line1\rdata: line2\r\r"
                             ": keep-alive\revent: ping\rretry: 3000\rdata\r\r"), want);
    same_every_split("no space, mixed ends, BOM",
                     S("\xef\xbb\xbf" "data:{\"a\":1}\r\n\nid:7\rdata:line1\r\n"
                       "data:line2\n\r:\nevent:ping\nretry:3000\r\ndata:\r\n\r\n"), want);
}

static void
test_edges(void)
{
    is_str(parse(S("data:  two spaces\n\n"), 0, 0), "T=|D= two spaces;",
           "only one space after the colon is dropped");
    is_str(parse(S("Data: x\ndata: y\nfoo: z\n\n"), 0, 0), "T=|D=y;",
           "field names are case-sensitive, unknown fields ignored");
    is_str(parse(S("id: a\0b\ndata: x\n\n"), 0, 0), "T=|D=x;", "an id holding NUL ignored");
    is_str(parse(S("retry: 12a\nretry: -1\ndata: x\n\n"), 0, 0), "T=|D=x;",
           "a retry that is not digits ignored");
    is_str(parse(S("data: x\n\n\xef\xbb\xbf" "data: y\n\n"), 0, 0), "T=|D=x;",
           "a BOM after the start is part of the line (an unknown field)");
    is_str(parse(S("\xef\xbb" "data: y\n\n"), 0, 0), "",
           "a partial BOM is part of the line");
    is_str(parse(S("\xef\xbb\xbf\xef\xbb\xbf" "data: y\n\n"), 0, 0), "",
           "only one BOM is skipped");
    is_str(parse(S("event: e\nid: 1\n\n"), 0, 0), "T=e|I=1|;",
           "an event with an id and no data is reported (it sets the last id)");
    is_str(parse(S("event: e\n\n"), 0, 0), "", "a type alone is no event");
    is_str(parse(S("id\n\n"), 0, 0), "T=|I=|;", "an empty id resets the last id");
    is_str(parse(S("data: x\n"), 0, 0), "", "no empty line: no event yet");
    is_str(parse(S(":a\n:b\r\n"), 0, 0), "C;C;", "comments");
    is_str(parse(S("data:a:b\n\n"), 0, 0), "T=|D=a:b;", "the first colon splits");
}

static void
test_bound(void)
{
    struct kap_mcp_sse p;
    struct kap_err err;
    char big[100];

    memset(&err, 0, sizeof(err));
    memset(big, 'x', sizeof(big));
    kap_buf_reset(&seen);
    kap_mcp_sse_init(&p, 64);
    ok(kap_mcp_sse_feed(&p, S("data: 0123456789\n\n"), record, NULL, &err) == KAP_OK,
       "an event under the bound");
    ok(kap_mcp_sse_feed(&p, S("data: "), record, NULL, &err) == KAP_OK
       && kap_mcp_sse_feed(&p, big, 30, record, NULL, &err) == KAP_OK
       && kap_mcp_sse_pending(&p), "a part of an event is pending");
    ok(kap_mcp_sse_feed(&p, S("\ndata: "), record, NULL, &err) == KAP_OK
       && kap_mcp_sse_feed(&p, big, 40, record, NULL, &err) == KAP_ERROR
       && strstr(err.msg, "over 64 bytes"), "over the bound across lines: %s", err.msg);
    ok(kap_mcp_sse_feed(&p, S("\n\n"), record, NULL, &err) == KAP_ERROR,
       "a failed parser stays failed");
    kap_mcp_sse_free(&p);
    kap_mcp_sse_init(&p, 64);
    memset(&err, 0, sizeof(err));
    ok(kap_mcp_sse_feed(&p, S(":"), record, NULL, &err) == KAP_OK
       && kap_mcp_sse_feed(&p, big, 100, record, NULL, &err) == KAP_OK
       && kap_mcp_sse_feed(&p, big, 100, record, NULL, &err) == KAP_OK,
       "a comment is not held in memory");
    kap_mcp_sse_free(&p);
}

/* Filter a stream through kap_mcp_sse_filter fed a byte at a time. */
static const char *
filtered(const struct kap_mcp_filter *f, const char *s, size_t n,
         struct kap_mcp_reply_stats *st)
{
    static struct kap_buf out;
    struct kap_mcp_sse_filter sf;
    struct kap_err err;
    size_t i;

    memset(&err, 0, sizeof(err));
    kap_buf_reset(&out);
    kap_mcp_sse_filter_init(&sf, f, 0);
    for (i = 0; i < n; i++)
        if (kap_mcp_sse_filter_feed(&sf, s + i, 1, &out, &err) != KAP_OK)
            break;
    *st = sf.st;
    kap_mcp_sse_filter_free(&sf);
    return out.data ? out.data : "";
}

static void
test_filter(void)
{
    struct kap_pool *pool = kap_pool_create();
    struct kap_mcp_tools *t = kap_mcp_tools_create(pool);
    struct kap_mcp_filter f;
    struct kap_mcp_reply_stats st;
    struct kap_mcp_req r;
    struct kap_buf out = { 0 };
    struct kap_err err;
    const char *body = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"},"
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":"
        "{\"name\":\"rm\"}}]";
    const char *want = "data: {\"jsonrpc\":\"2.0\",\"id\":2,\"error\":";

    memset(&err, 0, sizeof(err));
    memset(&f, 0, sizeof(f));
    kap_mcp_tools_add(t, 0, "get_*", NULL, 0, &err);
    f.tools = t;
    is_str(filtered(&f, S("\xef\xbb\xbf: hi\r\nevent: message\rid: e1\r\ndata:{\"jsonrpc\":"
                          "\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"rm\"},\r"
                          "data:{\"name\":\"get_a\"}]}}\r\n\r\n"), &st),
           ":\nevent: message\nid: e1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":"
           "{\"tools\":[{\"name\":\"get_a\"}]}}\n\n",
           "a tools list split over two data lines, CR and CRLF: filtered, re-framed");
    ok(st.lists == 1 && st.removed == 1, "... one tool removed");
    is_str(filtered(&f, S("data: {\"jsonrpc\":\"2.0\",\n"
                          "data:  \"method\":\"notifications/tools/list_changed\"}\n\n"), &st),
           "data: {\"jsonrpc\":\"2.0\",\n"
           "data:  \"method\":\"notifications/tools/list_changed\"}\n\n",
           "other messages pass unchanged, line by line");
    is_str(filtered(&f, S("id: 9\nretry: 10\ndata: {\"a\":1,\"a\":2}\n\ndata: not json\n\n"
                          "id: 10\ndata:\n\n"), &st),
           "id: 9\nretry: 10\n\nid: 10\ndata: \n\n",
           "unreadable data dropped, its id and retry kept; empty data passes");
    is_int(st.dropped, 2, "... the dropped counted");
    is_str(filtered(&f, S("data: [{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":"
                          "[{\"name\":\"rm\"}]}}]\n\n"), &st),
           "data: [{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}]\n\n",
           "a batch inside an event filtered");
    is_int(kap_mcp_req_check(&r, t, "application/json", body, strlen(body), NULL),
           KAP_OK, "a batch with a denied call");
    is_int(kap_mcp_sse_errors(&r, &out), KAP_OK, "... its errors as events");
    ok(out.data && strncmp(out.data, want, strlen(want)) == 0
       && strchr(out.data, '\n') == out.data + out.len - 2
       && out.data[out.len - 1] == '\n', "... one event: %s", out.data ? out.data : "");
    kap_mcp_req_free(&r);
    kap_buf_free(&out);
    kap_pool_destroy(pool);
}

int
main(void)
{
    test_framings();
    test_edges();
    test_bound();
    test_filter();
    kap_buf_free(&seen);
    return done_testing();
}
