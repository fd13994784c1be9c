/*
 * fuzz_shim_cli_reply.c -- libFuzzer target for the kap-shim shim role's
 * decoder of kapd's answer to a cli call (contrib/shim/kap_shim_cli_reply.c):
 * response head, chunked body, frames.
 *
 * The input is fed whole, and again split at a point taken from its first
 * byte (reading in pieces must give the same result), then EOF.
 * Invariants: feed returns 0 or -1, -1 with a reason; the output callback
 * gets streams 1 or 2 only and never more bytes than were fed; a
 * finished framed answer has an exit status in 0..255; the two runs agree
 * on the status, the exit and the bytes written.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_shim_cli_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    size_t n;
    unsigned long sum;
};

static int
out(int stream, const char *p, size_t n, void *data)
{
    struct sink *s = data;

    if (stream != 1 && stream != 2)
        abort();
    for (size_t i = 0; i < n; i++)
        s->sum = s->sum * 31 + (unsigned char)p[i] + (unsigned)stream;
    s->n += n;
    return 0;
}

static int
run(const char *buf, size_t size, size_t cut, struct kap_cli_reply *r,
    struct sink *s)
{
    int rc;

    kap_cli_reply_init(r);
    memset(s, 0, sizeof(*s));
    rc = cut > 0 ? kap_cli_reply_feed(r, buf, cut, out, s) : 0;  /* 0: EOF */
    if (rc == 0 && size > cut)
        rc = kap_cli_reply_feed(r, buf + cut, size - cut, out, s);
    if (rc == 0 && !r->done)
        rc = kap_cli_reply_feed(r, buf, 0, out, s);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == -1 && r->error == NULL)
        abort();
    if (s->n > size)
        abort();
    if (rc == 0 && r->framed && (!r->have_exit || r->exit_code < 0
                                 || r->exit_code > 255))
        abort();
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_cli_reply a, b;
    struct sink          sa, sb;
    size_t               cut = size > 0 ? (size_t)data[0] % (size + 1) : 0;
    int                  ra, rb;

    ra = run((const char *)data, size, size, &a, &sa);
    rb = run((const char *)data, size, cut, &b, &sb);
    if (ra != rb || (ra == 0 && (a.status != b.status
                                 || a.exit_code != b.exit_code
                                 || sa.n != sb.n || sa.sum != sb.sum
                                 || a.body_len != b.body_len)))
        abort();
    kap_cli_reply_free(&a);
    kap_cli_reply_free(&b);
    return 0;
}
