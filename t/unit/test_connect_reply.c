/*
 * test_connect_reply.c -- kap-shim connect's parser of the proxy's answer
 * to CONNECT (contrib/shim/kap_shim_connect_reply.c): what it accepts
 * (CRLF and bare LF, a status line without a reason, 1xx heads, bytes
 * after the head left alone, Content-Length repeated with one value),
 * what it needs more bytes for (every prefix of a valid head), and what
 * it refuses, with a reason (not HTTP/1.x, a bad status, control bytes,
 * folded or malformed header lines, bare CR, conflicting or bad
 * Content-Length).
 */
#include <string.h>

#include "kap_shim_connect_reply.h"
#include "tap.h"

static int
parse(const char *s, struct kap_connect_reply *r)
{
    return kap_connect_reply_parse(s, strlen(s), r);
}

static void
refused(const char *s, const char *name)
{
    struct kap_connect_reply r;
    int rc = parse(s, &r);
    ok(rc == -1 && r.error != NULL && r.error[0] != '\0', "refused: %s", name);
    if (rc != -1)
        diag("rc %d", rc);
}

int
main(void)
{
    struct kap_connect_reply r;

    const char *ok200 = "HTTP/1.1 200 Connection Established\r\n\r\nSSH-2.0-x\r\n";
    is_int(parse(ok200, &r), 1, "200 with a banner after it: complete");
    is_int(r.status, 200, "status 200");
    is_int(r.minor, 1, "HTTP/1.1");
    is_str(r.reason, "Connection Established", "reason phrase");
    is_int(r.head_len, strlen("HTTP/1.1 200 Connection Established\r\n\r\n"),
           "head_len stops at the blank line (the banner is not consumed)");
    is_int(r.content_length, -1, "no Content-Length");

    for (size_t n = 0; n < r.head_len; n++) {
        struct kap_connect_reply p;
        if (kap_connect_reply_parse(ok200, n, &p) != 0) {
            ok(0, "prefix of %zu bytes: needs more", n);
            break;
        }
        if (n + 1 == r.head_len)
            ok(1, "every prefix of a valid head: needs more bytes (0)");
    }

    is_int(parse("HTTP/1.0 200\n\n", &r), 1, "bare LF, no reason: complete");
    is_int(r.status, 200, "bare LF: status");
    is_str(r.reason, "", "no reason: empty");
    is_int(r.head_len, 14, "bare LF: head_len");

    is_int(parse("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n"
                 "Content-Length: 140\r\ncontent-length:  140 \r\n\r\nkap: x", &r), 1,
           "403 with a body: complete");
    is_int(r.status, 403, "403");
    is_int(r.content_length, 140, "Content-Length (repeated, one value, any case)");

    is_int(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", &r), 1,
           "1xx head: complete on its own");
    is_int(r.status, 100, "1xx status (the caller reads on)");
    is_int(r.head_len, 25, "1xx head_len");

    is_int(parse("HTTP/1.1 200 OK\r\nX: y", &r), 0, "header line not ended: needs more");
    is_int(parse("HTTP/1.1 20", &r), 0, "status line not ended: needs more");

    is_int(parse("HTTP/1.1 502 Bad \x80 Gateway\r\n\r\n", &r), 1, "8-bit reason: accepted");
    is_str(r.reason, "Bad ? Gateway", "8-bit reason: shown as ?");

    refused("SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP");
    refused("HTTP/2 200\r\n\r\n", "HTTP/2 status line");
    refused("HTTP/1.2 200 OK\r\n\r\n", "HTTP/1.2");
    refused("HTTP/1.1 20x OK\r\n\r\n", "non-digit status");
    refused("HTTP/1.1 099 Low\r\n\r\n", "status below 100");
    refused("HTTP/1.1 600 High\r\n\r\n", "status above 599");
    refused("HTTP/1.1  200 OK\r\n\r\n", "two spaces before the status");
    refused("HTTP/1.1 2000 OK\r\n\r\n", "four-digit status");
    refused("HTTP/1.1 200 O\x01K\r\n\r\n", "control byte in the reason");
    refused("HTTP/1.1 200 OK\r\n X: folded\r\n\r\n", "obs-fold");
    refused("HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", "header without a colon");
    refused("HTTP/1.1 200 OK\r\nX : y\r\n\r\n", "space before the colon");
    refused("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n", "bare CR in a header");
    refused("HTTP/1.1 200 OK\r\nX: a\x7f\r\n\r\n", "DEL in a header");
    refused("HTTP/1.1 403 F\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "conflicting Content-Length");
    refused("HTTP/1.1 403 F\r\nContent-Length: 1x\r\n\r\n", "bad Content-Length");
    refused("HTTP/1.1 403 F\r\nContent-Length:\r\n\r\n", "empty Content-Length");
    refused("HTTP/1.1 403 F\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "huge Content-Length");
    refused("\r\nHTTP/1.1 200 OK\r\n\r\n", "blank line first");

    return done_testing();
}
