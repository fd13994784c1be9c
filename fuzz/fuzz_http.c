/*
 * fuzz_http.c -- libFuzzer target for the HTTP/1.1 parser (kap_http.h).
 *
 * The input is treated as a pipelined stream of requests (heads, CL and
 * chunked bodies), as a response, and as a bare chunked body.  Besides
 * memory errors it checks that feeding the same bytes in two pieces gives
 * the same result as feeding them whole (the incremental scanner must not
 * depend on how TCP segmented the input) and that every span the parser
 * returns lies inside the input.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_http.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const char *buf, size_t len, struct kap_str s)
{
    if (s.len && (s.data < buf || s.data + s.len > buf + len))
        abort();
}

static struct kap_http_req r1, r2;

static void
requests(const char *buf, size_t len)
{
    size_t off = 0;

    for (int n = 0; n < 64 && off < len; n++) {
        kap_http_req_reset(&r1);
        int rc = kap_http_parse_request(&r1, buf + off, len - off, NULL);

        /* same bytes split in two must agree */
        size_t cut = (len - off) / 2;
        kap_http_req_reset(&r2);
        int rc2 = kap_http_parse_request(&r2, buf + off, cut, NULL);
        if (rc2 == KAP_AGAIN)
            rc2 = kap_http_parse_request(&r2, buf + off, len - off, NULL);
        if (rc != rc2 || (rc == KAP_OK && r1.head_len != r2.head_len) ||
            (rc == KAP_ERROR && r1.status != r2.status))
            abort();
        if (rc != KAP_OK)
            return;
        inside(buf + off, len - off, r1.method);
        inside(buf + off, len - off, r1.target);
        for (size_t i = 0; i < r1.nheaders; i++) {
            inside(buf + off, len - off, r1.headers[i].name);
            inside(buf + off, len - off, r1.headers[i].value);
            (void)kap_http_is_hop_by_hop(r1.headers, r1.nheaders, i);
        }
        off += r1.head_len;
        if (r1.body == KAP_HTTP_BODY_LENGTH) {
            if (r1.content_length > len - off)
                return;
            off += (size_t)r1.content_length;
        } else if (r1.body == KAP_HTTP_BODY_CHUNKED) {
            struct kap_http_chunked d;
            kap_http_chunked_reset(&d);
            int crc = KAP_AGAIN;
            while (crc == KAP_AGAIN && off < len) {
                size_t used;
                struct kap_str s;
                crc = kap_http_chunked_parse(&d, buf + off, len - off, &used,
                                             &s);
                if (used > len - off)
                    abort();
                inside(buf + off, len - off, s);
                off += used;
            }
            if (crc != KAP_OK)
                return;
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    static struct kap_http_resp p;

    requests(buf, size);

    kap_http_resp_reset(&p);
    if (kap_http_parse_response(&p, buf, size, "GET", NULL) == KAP_OK) {
        inside(buf, size, p.reason);
        if (p.head_len > size)
            abort();
    }

    struct kap_http_uri u;
    (void)kap_http_parse_absolute(buf, size, &u);
    (void)kap_http_parse_authority(buf, size, 80, &u);
    if (u.host_len > KAP_HTTP_HOST_MAX)
        abort();

    /* byte-at-a-time chunked decoding must equal whole-buffer decoding */
    struct kap_http_chunked d1, d2;
    size_t o1 = 0, o2 = 0, used;
    struct kap_str s;
    int rc1 = KAP_AGAIN, rc2 = KAP_AGAIN;
    kap_http_chunked_reset(&d1);
    kap_http_chunked_reset(&d2);
    for (size_t off = 0; rc1 == KAP_AGAIN && off < size; off += used) {
        rc1 = kap_http_chunked_parse(&d1, buf + off, size - off, &used, &s);
        o1 += s.len;
        if (used == 0 && rc1 == KAP_AGAIN)
            abort();
    }
    for (size_t off = 0; rc2 == KAP_AGAIN && off < size; off++) {
        rc2 = kap_http_chunked_parse(&d2, buf + off, 1, &used, &s);
        o2 += s.len;
        if (rc2 != KAP_AGAIN)
            break;
    }
    if (rc1 != rc2 || (rc1 == KAP_OK && o1 != o2))
        abort();
    return 0;
}
