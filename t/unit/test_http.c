/*
 * test_http.c -- unit tests of the strict HTTP/1.1 parser (kap_http.h):
 * every rejection class, incremental feeding, pipelining, URIs, response
 * framing, hop-by-hop removal and the chunked decoder.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <kapd/kap_http.h>
#include "tap.h"

static struct kap_http_req R;

static int
req(const char *s)
{
    kap_http_req_reset(&R);
    return kap_http_parse_request(&R, s, strlen(s), NULL);
}

/* the request must be rejected with status */
static void
rej(const char *s, int status, const char *name)
{
    int rc = req(s);
    ok(rc == KAP_ERROR && R.status == status, "reject %d: %s", status, name);
    if (rc != KAP_ERROR || R.status != status)
        diag("rc %d status %d error %s", rc, R.status,
             R.error ? R.error : "-");
}

static void
acc(const char *s, const char *name)
{
    int rc = req(s);
    ok(rc == KAP_OK, "accept: %s", name);
    if (rc != KAP_OK)
        diag("rc %d status %d error %s", rc, R.status,
             R.error ? R.error : "-");
}

static void
test_requests(void)
{
    acc("GET / HTTP/1.1\r\nHost: a.com\r\n\r\n", "simple 1.1");
    is_int(R.head_len, 31, "head_len");
    is_int(R.form, KAP_HTTP_FORM_ORIGIN, "origin-form");
    is_int(R.keep_alive, 1, "1.1 keep-alive default");
    ok(R.host && R.host->value.len == 5, "host field");
    acc("GET / HTTP/1.0\r\n\r\n", "1.0 without Host");
    is_int(R.keep_alive, 0, "1.0 close default");
    acc("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "1.0 keep-alive");
    is_int(R.keep_alive, 1, "1.0 keep-alive on request");
    acc("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n", "close");
    is_int(R.keep_alive, 0, "Connection close");

    acc("GET http://Example.COM:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "absolute-form");
    is_int(R.form, KAP_HTTP_FORM_ABSOLUTE, "absolute form");
    is_str(R.uri.host, "example.com", "uri host lowercased");
    is_int(R.uri.port, 8080, "uri port");
    ok(R.uri.path.len == 6 && memcmp(R.uri.path.data, "/p?q=1", 6) == 0,
       "uri path");
    acc("GET http://a.com HTTP/1.1\r\nHost: a.com\r\n\r\n", "absolute no path");
    ok(R.uri.path.len == 1 && R.uri.path.data[0] == '/', "default path /");
    is_int(R.uri.port, 80, "default port 80");
    acc("CONNECT github.com:443 HTTP/1.1\r\nHost: github.com:443\r\n\r\n",
        "CONNECT");
    is_int(R.form, KAP_HTTP_FORM_AUTHORITY, "authority form");
    is_int(R.uri.port, 443, "CONNECT port");
    acc("CONNECT [::1]:22 HTTP/1.1\r\nHost: [::1]:22\r\n\r\n", "CONNECT v6");
    is_int(R.uri.host_type, KAP_HTTP_HOST_IPV6, "v6 host type");
    is_str(R.uri.host, "::1", "v6 host without brackets");
    acc("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "asterisk-form");
    acc("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        "POST CL");
    is_int(R.body, KAP_HTTP_BODY_LENGTH, "body length");
    is_int(R.content_length, 5, "content length");
    acc("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n",
        "chunked");
    is_int(R.body, KAP_HTTP_BODY_CHUNKED, "body chunked");
    acc("GET / HTTP/1.1\r\nHost: a\r\nX-E:\r\nX-S:   v  \r\n\r\n", "OWS");
    ok(R.nheaders == 3 && R.headers[1].value.len == 0 &&
       R.headers[2].value.len == 1, "empty value and OWS trimmed");
    acc("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", "expect");
    is_int(R.expect_continue, 1, "expect 100-continue");

    /* rejections */
    rej("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP/2.0");
    rej("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "HTTP/1.2");
    rej("GET / HTTP/0.9\r\n\r\n", 505, "HTTP/0.9");
    rej("GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400, "garbage version");
    rej("GET /\r\n\r\n", 400, "no version");
    rej("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "double SP");
    rej("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bad method char");
    rej("GET / HTTP/1.1\r\n\r\n", 400, "missing Host 1.1");
    rej("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate Host");
    rej("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host");
    rej("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", 400, "Host with @");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        "Transfer-Encoding: chunked\r\n\r\n", 400, "CL+TE");
    rej("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 5\r\n\r\n", 400, "TE+CL");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        "Content-Length: 5\r\n\r\n", 400, "duplicate CL equal");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400,
        "CL list");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400,
        "CL sign");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400,
        "CL hex");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
        400, "CL overflow");
    rej("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, "CL empty");
    rej("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        400, "chunked not final");
    rej("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        400, "chunked twice");
    rej("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        501, "unknown coding");
    rej("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
        501, "xchunked");
    rej("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n", 400, "two TE fields");
    rej("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
        "TE in 1.0");
    rej("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, "obs-fold");
    rej("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "leading SP first field");
    rej("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "bare CR");
    rej("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "bare LF");
    rej("GET / HTTP/1.1\n\n", 400, "LF only");
    ok(kap_http_parse_request(&R, "GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n",
                              31, NULL) == KAP_ERROR || 1, "NUL (setup)");
    {
        static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
        kap_http_req_reset(&R);
        int rc = kap_http_parse_request(&R, nul, sizeof(nul) - 1, NULL);
        ok(rc == KAP_ERROR && R.status == 400, "reject 400: NUL");
    }
    rej("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n", 400, "CTL in value");
    rej("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, "DEL in value");
    rej("GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n", 400, "space before colon");
    rej("GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n", 400, "tab before colon");
    rej("GET / HTTP/1.1\r\nHost: a\r\nX(: b\r\n\r\n", 400, "bad name char");
    rej("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, "empty name");
    rej("GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400, "no colon");
    rej("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "leading CRLF");
    rej("GET http://u:p@a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "userinfo");
    rej("GET http://a.com/#f HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "fragment");
    rej("GET https://a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 501, "https URI");
    rej("GET ftp://a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "ftp URI");
    rej("GET http://a.com:0/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "port 0");
    rej("GET http://a.com:65536/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400,
        "port 65536");
    rej("GET http://a.com:/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "empty port");
    rej("GET http:///x HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "empty host");
    rej("GET http://a%2ecom/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "pct host");
    rej("GET http://[::1/ HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "bad v6");
    rej("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "non-ASCII target");
    rej("CONNECT a.com HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "CONNECT no port");
    rej("CONNECT /x HTTP/1.1\r\nHost: a.com\r\n\r\n", 400, "CONNECT origin");
    rej("CONNECT a.com:443 HTTP/1.1\r\nHost: a.com\r\nContent-Length: 3\r\n\r\n",
        400, "CONNECT with body");
    rej("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk for GET");
    rej("GET a.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "authority for GET");

    /* size limits */
    {
        struct kap_http_limits lim = { 64, 256, 4 };
        char buf[1024];
        memset(buf, 'a', sizeof(buf));
        memcpy(buf, "GET /", 5);
        kap_http_req_reset(&R);
        int rc = kap_http_parse_request(&R, buf, 100, &lim);
        ok(rc == KAP_ERROR && R.status == 414, "414 long line, incomplete");
        snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n"
                 "B: 1\r\nC: 1\r\nD: 1\r\n\r\n");
        kap_http_req_reset(&R);
        rc = kap_http_parse_request(&R, buf, strlen(buf), &lim);
        ok(rc == KAP_ERROR && R.status == 431, "431 too many headers");
        memset(buf, 'x', sizeof(buf));
        memcpy(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ", 28);
        kap_http_req_reset(&R);
        rc = kap_http_parse_request(&R, buf, 300, &lim);
        ok(rc == KAP_ERROR && R.status == 431, "431 head too large");
    }
}

static void
test_incremental(void)
{
    const char *s = "POST http://a.com/x HTTP/1.1\r\nHost: a.com\r\n"
                    "Content-Length: 3\r\n\r\nabcGET http://b.com/ HTTP/1.1\r\n"
                    "Host: b.com\r\n\r\n";
    size_t n = strlen(s), i;
    int rc = KAP_AGAIN;

    kap_http_req_reset(&R);
    for (i = 1; i <= n && rc == KAP_AGAIN; i++)
        rc = kap_http_parse_request(&R, s, i, NULL);
    ok(rc == KAP_OK, "byte-by-byte feeding completes");
    is_int(R.head_len, 64, "head length when fed byte by byte");
    is_int(i - 1, 64, "completes exactly at the end of the head");

    /* pipelining */
    kap_http_req_reset(&R);
    rc = kap_http_parse_request(&R, s, n, NULL);
    ok(rc == KAP_OK && R.content_length == 3, "first pipelined request");
    size_t off = R.head_len + (size_t)R.content_length;
    kap_http_req_reset(&R);
    rc = kap_http_parse_request(&R, s + off, n - off, NULL);
    ok(rc == KAP_OK, "second pipelined request");
    is_str(R.uri.host, "b.com", "second request host");
    is_int(off + R.head_len, n, "all bytes consumed");
}

static void
test_hosts(void)
{
    char out[300];
    struct kap_http_uri u;

    is_int(kap_http_host_normalise("GitHub.COM", 10, out, sizeof(out)),
           KAP_HTTP_HOST_NAME, "name");
    is_str(out, "github.com", "lowercased");
    is_int(kap_http_host_normalise("a.com.", 6, out, sizeof(out)),
           KAP_HTTP_HOST_NAME, "trailing dot");
    is_int(kap_http_host_normalise("a..com", 6, out, sizeof(out)), -1,
           "empty label");
    is_int(kap_http_host_normalise("a.com..", 7, out, sizeof(out)), -1,
           "two trailing dots");
    is_int(kap_http_host_normalise("127.0.0.1", 9, out, sizeof(out)),
           KAP_HTTP_HOST_IPV4, "ipv4");
    is_int(kap_http_host_normalise("127.000.0.1", 11, out, sizeof(out)),
           KAP_HTTP_HOST_NAME, "leading zeros: not a strict quad");
    is_int(kap_http_host_normalise("::FFFF:127.0.0.1", 16, out, sizeof(out)),
           KAP_HTTP_HOST_IPV6, "v6 mapped");
    is_str(out, "::ffff:127.0.0.1", "v6 lowercased");
    is_int(kap_http_host_normalise("fe80::1%eth0", 12, out, sizeof(out)), -1,
           "zone id refused");
    is_int(kap_http_host_normalise("\xc3\xa9.com", 6, out, sizeof(out)), -1,
           "raw non-ASCII refused");
    memset(out, 'a', 64);
    is_int(kap_http_host_normalise(out, 64, out + 100, 200), -1,
           "label of 64");
    is_int(kap_http_parse_authority("a.com:443", 9, 0, &u), KAP_OK, "auth");
    is_int(kap_http_parse_authority("a.com", 5, 0, &u), KAP_ERROR,
           "auth requires port");
    is_int(kap_http_parse_authority("[::1]", 5, 80, &u), KAP_OK, "[::1]");
    is_int(kap_http_parse_authority("::1:80", 6, 80, &u), KAP_ERROR,
           "v6 without brackets");
    is_int(kap_http_parse_authority("[127.0.0.1]:80", 14, 80, &u), KAP_ERROR,
           "v4 in brackets");
    is_int(kap_http_parse_authority("a.com:0080", 10, 80, &u), KAP_OK,
           "port leading zeros");
    is_int(kap_http_parse_authority("a.com:123456", 12, 80, &u), KAP_ERROR,
           "port too long");
    is_int(kap_http_parse_absolute("HTTP://a.com/", 13, &u), KAP_OK,
           "scheme case-insensitive");
}

static struct kap_http_resp P;

static int
resp(const char *s, const char *method)
{
    kap_http_resp_reset(&P);
    return kap_http_parse_response(&P, s, strlen(s), method, NULL);
}

static void
test_responses(void)
{
    ok(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "GET") == KAP_OK
       && P.body == KAP_HTTP_BODY_LENGTH && P.content_length == 10 &&
       P.keep_alive, "200 CL");
    ok(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD") == KAP_OK
       && P.body == KAP_HTTP_BODY_NONE, "HEAD: no body");
    ok(resp("HTTP/1.1 204 No Content\r\n\r\n", "GET") == KAP_OK &&
       P.body == KAP_HTTP_BODY_NONE, "204");
    ok(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", "GET")
       == KAP_OK && P.body == KAP_HTTP_BODY_NONE, "304");
    ok(resp("HTTP/1.1 100 Continue\r\n\r\n", "POST") == KAP_OK &&
       P.status == 100 && P.body == KAP_HTTP_BODY_NONE, "100");
    ok(resp("HTTP/1.1 101 Switching\r\nUpgrade: websocket\r\n\r\n", "GET")
       == KAP_OK && P.body == KAP_HTTP_BODY_TUNNEL, "101 tunnel");
    ok(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET")
       == KAP_OK && P.body == KAP_HTTP_BODY_CHUNKED, "chunked");
    ok(resp("HTTP/1.1 200 OK\r\n\r\n", "GET") == KAP_OK &&
       P.body == KAP_HTTP_BODY_CLOSE && !P.keep_alive, "read until close");
    ok(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET")
       == KAP_OK && P.body == KAP_HTTP_BODY_CLOSE, "TE gzip: until close");
    ok(resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", "GET") == KAP_OK
       && !P.keep_alive, "1.0 close");
    ok(resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET") == KAP_OK &&
       P.reason.len == 0, "no reason phrase");
    ok(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: "
            "chunked\r\n\r\n", "GET") == KAP_ERROR, "resp CL+TE");
    ok(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "GET") == KAP_ERROR, "resp dup CL");
    ok(resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", "GET") == KAP_ERROR,
       "resp obs-fold");
    ok(resp("HTTP/1.1 20 OK\r\n\r\n", "GET") == KAP_ERROR, "short status");
    ok(resp("HTTP/1.1 600 X\r\n\r\n", "GET") == KAP_ERROR, "status 600");
    ok(resp("HTTP/2 200 OK\r\n\r\n", "GET") == KAP_ERROR, "HTTP/2 resp");
    ok(resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n", "GET") == KAP_AGAIN,
       "incomplete response");
}

static void
test_hop(void)
{
    const char *s = "GET http://a/ HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, close"
                    "\r\nX-Foo: 1\r\nX-Bar: 2\r\nKeep-Alive: 5\r\nTE: trailers"
                    "\r\nProxy-Authorization: secret\r\nUpgrade: h2c\r\n"
                    "Proxy-Connection: keep-alive\r\n\r\n";
    ok(req(s) == KAP_OK, "hop test request");
    int kept = 0;
    for (size_t i = 0; i < R.nheaders; i++)
        if (!kap_http_is_hop_by_hop(R.headers, R.nheaders, i))
            kept++;
    is_int(kept, 2, "only Host and X-Bar kept");
    ok(!kap_http_is_hop_by_hop(R.headers, R.nheaders, 0), "Host kept");
    {
        char big[600];
        int k = snprintf(big, sizeof(big), "GET http://a/ HTTP/1.1\r\nHost: a\r\n"
                         "Connection: X-%0200d\r\nX-%0200d: 1\r\n\r\n", 0, 0);
        kap_http_req_reset(&R);
        ok(kap_http_parse_request(&R, big, (size_t)k, NULL) == KAP_OK &&
           kap_http_is_hop_by_hop(R.headers, R.nheaders, 2),
           "long field name listed in Connection is hop-by-hop");
    }
    {
        /* framing and routing fields stay, whatever Connection says */
        const char *c = "POST http://a/ HTTP/1.1\r\nHost: a\r\n"
                        "Connection: content-length, HOST, x-z\r\n"
                        "Content-Length: 3\r\nX-Z: 1\r\n\r\n";
        ok(req(c) == KAP_OK, "Connection naming Host and Content-Length");
        ok(!kap_http_is_hop_by_hop(R.headers, R.nheaders, 0),
           "Host named in Connection is kept");
        ok(!kap_http_is_hop_by_hop(R.headers, R.nheaders, 2),
           "Content-Length named in Connection is kept");
        ok(kap_http_is_hop_by_hop(R.headers, R.nheaders, 3),
           "another field named with them is dropped");
    }
    ok(kap_http_list_has((struct kap_str){ "a , b,c", 7 }, "B"), "list_has");
    ok(!kap_http_list_has((struct kap_str){ "ab,c", 4 }, "a"),
       "list_has no prefix match");
}

/* decode body fed in pieces of step bytes; returns rc, fills out */
static int
chunked(const char *in, size_t n, size_t step, char *out, size_t *outlen,
        size_t *consumed)
{
    struct kap_http_chunked d;
    size_t off = 0, o = 0;
    int rc = KAP_AGAIN;

    kap_http_chunked_reset(&d);
    for (size_t avail = step < n ? step : n; rc == KAP_AGAIN;) {
        size_t used;
        struct kap_str data;
        rc = kap_http_chunked_parse(&d, in + off, avail - off, &used, &data);
        off += used;
        memcpy(out + o, data.data, data.len);
        o += data.len;
        if (rc == KAP_AGAIN && off == avail) {
            if (avail == n)
                break;
            avail = avail + step < n ? avail + step : n;
        }
    }
    *outlen = o;
    *consumed = off;
    return rc;
}

static void
test_chunked(void)
{
    const char *b = "5\r\nhello\r\n1;ext=\"v\"\r\n \r\nA\r\n0123456789\r\n"
                    "0\r\nX-T: 1\r\n\r\nNEXT";
    char out[256];
    size_t ol, used;
    size_t n = strlen(b);

    for (size_t step = 1; step <= n; step += (step < 4 ? 1 : 7)) {
        int rc = chunked(b, n, step, out, &ol, &used);
        if (!(rc == KAP_OK && ol == 16 && memcmp(out, "hello 0123456789", 16) == 0
              && used == n - 4)) {
            ok(0, "chunked decode at step %zu", step);
            return;
        }
    }
    ok(1, "chunked decode at every split");
    ok(chunked("0\r\n\r\n", 5, 5, out, &ol, &used) == KAP_OK && ol == 0,
       "empty chunked body");
    ok(chunked("ffffffffffffffffff\r\n", 20, 20, out, &ol, &used) == KAP_ERROR,
       "size overflow");
    ok(chunked("0000000000000000001\r\n", 21, 21, out, &ol, &used) == KAP_ERROR,
       "too many digits");
    ok(chunked("5 \r\nhello\r\n0\r\n\r\n", 16, 16, out, &ol, &used) == KAP_ERROR,
       "space after size");
    ok(chunked("-5\r\n", 4, 4, out, &ol, &used) == KAP_ERROR, "negative");
    ok(chunked("0x5\r\n", 5, 5, out, &ol, &used) == KAP_ERROR, "0x prefix");
    ok(chunked("\r\n", 2, 2, out, &ol, &used) == KAP_ERROR, "empty size");
    ok(chunked("5\nhello\r\n", 9, 9, out, &ol, &used) == KAP_ERROR, "LF only");
    ok(chunked("5\r\nhelloX\r\n", 11, 11, out, &ol, &used) == KAP_ERROR,
       "data overrun");
    ok(chunked("1;a\x01\r\nx\r\n", 9, 9, out, &ol, &used) == KAP_ERROR,
       "CTL in extension");
    ok(chunked("0\r\n b: 1\r\n\r\n", 12, 12, out, &ol, &used) == KAP_ERROR,
       "obs-fold in trailer");
    ok(chunked("0\r\nX A: 1\r\n\r\n", 13, 13, out, &ol, &used) == KAP_ERROR,
       "space in a trailer name");
    ok(chunked("0\r\nX-A : 1\r\n\r\n", 14, 14, out, &ol, &used) == KAP_ERROR,
       "space before a trailer's colon");
    ok(chunked("0\r\nnocolon\r\n\r\n", 14, 14, out, &ol, &used) == KAP_ERROR,
       "trailer line without a colon");
    ok(chunked("0\r\nX-A:\r\nX-B: a:b\r\n\r\n", 21, 3, out, &ol, &used) == KAP_OK,
       "trailers: empty value, colon in a value, fed in pieces");
    {
        char big[3000];
        size_t k = (size_t)snprintf(big, sizeof(big), "1;");
        memset(big + k, 'a', 1100);
        memcpy(big + k + 1100, "\r\nx\r\n0\r\n\r\n", 10);
        ok(chunked(big, k + 1110, 64, out, &ol, &used) == KAP_ERROR,
           "extension too long");
    }
    {
        static char big[20000];
        size_t k = (size_t)snprintf(big, sizeof(big), "0\r\n");
        for (int i = 0; i < 1000; i++)
            k += (size_t)snprintf(big + k, sizeof(big) - k, "X-Trailer: 1\r\n");
        memcpy(big + k, "\r\n", 2);
        ok(chunked(big, k + 2, 512, out, &ol, &used) == KAP_ERROR,
           "trailers too large");
    }
}

int
main(void)
{
    test_requests();
    test_incremental();
    test_hosts();
    test_responses();
    test_hop();
    test_chunked();
    return done_testing();
}
