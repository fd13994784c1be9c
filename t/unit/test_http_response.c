/*
 * test_http_response.c -- unit tests of the response formatting shared by
 * HTTP answerers (kapd_http_response.c, kap_http_server.h): response
 * heads, error pages in text and JSON (escaped), and SSE event framing
 * (every line break style in a payload, refused fields, nothing written
 * on a refusal).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_json.h>
#include "tap.h"

static void
test_head(void)
{
    struct kap_buf b = { 0 };

    ok(kap_http_head_write(&b, 200, "text/plain", 5, NULL, 1) == KAP_OK,
       "head written");
    is_str(b.data, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 5\r\nConnection: keep-alive\r\n\r\n",
           "status line, type, length, keep-alive, blank line");
    kap_buf_reset(&b);
    ok(kap_http_head_write(&b, 204, NULL, -1, "X-A: 1\r\n", 0) == KAP_OK,
       "no type, no length");
    is_str(b.data, "HTTP/1.1 204 No Content\r\nX-A: 1\r\n"
                   "Connection: close\r\n\r\n", "extra lines kept, close");
    kap_buf_reset(&b);
    kap_buf_append(&b, "keep", 4);
    ok(kap_http_head_write(&b, 42, NULL, 0, NULL, 0) == KAP_ERROR
       && b.len == 4 && strcmp(b.data, "keep") == 0,
       "a status out of range is refused and nothing is written");
    kap_buf_free(&b);
}

static void
test_error_page(void)
{
    struct kap_buf b = { 0 };
    struct kap_json *j;
    const char *body;

    ok(kap_http_error_page(&b, 404, "no \"such\"\nroute\\", KAP_HTTP_ERR_JSON,
                           1) == KAP_OK, "JSON error page");
    ok(strstr(b.data, "Content-Type: application/json\r\n") != NULL
       && strstr(b.data, "Cache-Control: no-store\r\n") != NULL
       && strstr(b.data, "Connection: keep-alive\r\n") != NULL,
       "JSON page head: type, no-store, keep-alive");
    body = strstr(b.data, "\r\n\r\n");
    body = body ? body + 4 : "";
    j = kap_json_parse(body, strlen(body), NULL, NULL);
    ok(j != NULL, "the body is strict JSON");
    is_str(j ? kap_json_get_string(j, "error") : NULL, "no \"such\"\nroute\\",
           "the message comes back exactly, quotes and line break escaped");
    {
        char want[64];
        snprintf(want, sizeof(want), "Content-Length: %zu\r\n", strlen(body));
        ok(strstr(b.data, want) != NULL, "the length is the body's");
    }
    kap_json_free(j);
    kap_buf_reset(&b);
    ok(kap_http_error_page(&b, 403, "denied", KAP_HTTP_ERR_TEXT, 0) == KAP_OK
       && strstr(b.data, "HTTP/1.1 403 Forbidden\r\n") == b.data
       && strstr(b.data, "text/plain; charset=utf-8") != NULL
       && strstr(b.data, "\r\n\r\nkap: denied\n") != NULL,
       "text error page");
    kap_buf_reset(&b);
    ok(kap_http_error_page(&b, 500, NULL, KAP_HTTP_ERR_TEXT, 0) == KAP_OK
       && strstr(b.data, "kap: Internal Server Error\n") != NULL,
       "no message: the reason phrase");
    kap_buf_free(&b);
}

static void
sse(const char *ev, const char *id, const char *data, const char *want,
    const char *name)
{
    struct kap_buf b = { 0 };
    int rc = kap_http_sse_frame(&b, ev, id, data, strlen(data));

    ok(rc == KAP_OK && b.data && strcmp(b.data, want) == 0, "sse: %s", name);
    if (rc != KAP_OK || !b.data || strcmp(b.data, want) != 0)
        diag("got '%s'", b.data ? b.data : "(null)");
    kap_buf_free(&b);
}

static void
test_sse(void)
{
    struct kap_buf b = { 0 };

    sse(NULL, NULL, "{\"a\":1}", "data: {\"a\":1}\n\n", "one line");
    sse("message", "7", "x", "event: message\nid: 7\ndata: x\n\n",
        "event and id");
    sse(NULL, NULL, "a\nb", "data: a\ndata: b\n\n", "LF splits");
    sse(NULL, NULL, "a\r\nb", "data: a\ndata: b\n\n", "CRLF is one break");
    sse(NULL, NULL, "a\rb", "data: a\ndata: b\n\n", "CR alone splits");
    sse(NULL, NULL, "a\r\rb", "data: a\ndata: \ndata: b\n\n",
        "two CRs: an empty line between");
    sse(NULL, NULL, "a\n", "data: a\ndata: \n\n",
        "a trailing break comes back (empty last line)");
    sse(NULL, NULL, "", "data: \n\n", "an empty payload");
    sse(NULL, NULL, "data: x\n\nevent: y", "data: data: x\ndata: \n"
        "data: event: y\n\n", "a payload cannot end the event or add fields");
    kap_buf_append(&b, "old", 3);
    ok(kap_http_sse_frame(&b, "a\nb", NULL, "x", 1) == KAP_ERROR
       && strcmp(b.data, "old") == 0, "an event name with LF: refused, "
       "nothing written");
    ok(kap_http_sse_frame(&b, NULL, "1\r", "x", 1) == KAP_ERROR
       && strcmp(b.data, "old") == 0, "an id with CR: refused");
    ok(kap_http_sse_frame(&b, NULL, NULL, NULL, 3) == KAP_ERROR,
       "NULL data with a length: refused");
    kap_buf_free(&b);
}

int
main(void)
{
    test_head();
    test_error_page();
    test_sse();
    return done_testing();
}
