/*
 * fuzz_cli_stdin.c -- libFuzzer target for the cli module's decoder of
 * streamed stdin frames (modules/cli/kap_cli_stdin.c).
 *
 * The input is fed whole, and again split at a point taken from its first
 * byte (reading in pieces must give the same result).  Invariants: feed
 * returns 0 or -1, -1 with a reason and -1 ever after; the callback never
 * gets more bytes than were fed, no bytes after the EOF call, and the EOF
 * call at most once; the two runs agree on the bytes, the EOF and the
 * verdict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_cli_stdin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
    size_t        n;
    unsigned long sum;
    int           eofs;
};

static int
piece(const char *p, size_t n, void *data)
{
    struct sink *s = data;

    if (s->eofs != 0)
        abort();                 /* nothing after the EOF */
    if (p == NULL) {
        if (n != 0)
            abort();
        s->eofs++;
        return 0;
    }
    if (n == 0)
        abort();
    for (size_t i = 0; i < n; i++)
        s->sum = s->sum * 31 + (unsigned char) p[i];
    s->n += n;
    return 0;
}

static int
run(const char *buf, size_t size, size_t cut, struct sink *s)
{
    struct kap_cli_stdin_dec d;
    int                      rc;

    kap_cli_stdin_init(&d);
    memset(s, 0, sizeof(*s));
    rc = kap_cli_stdin_feed(&d, buf, cut, piece, s);
    if (rc == 0)
        rc = kap_cli_stdin_feed(&d, buf + cut, size - cut, piece, s);
    if (rc != 0 && rc != -1)
        abort();
    if (rc == -1 && (d.error == NULL
                     || kap_cli_stdin_feed(&d, "", 1, piece, s) != -1))
        abort();
    if (s->n > size || (s->eofs != 0) != (d.eof != 0))
        abort();
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sink a, b;
    size_t      cut = size > 0 ? data[0] % (size + 1) : 0;
    int         ra = run((const char *) data, size, size, &a);
    int         rb = run((const char *) data, size, cut, &b);

    if (ra != rb || a.n != b.n || a.sum != b.sum || a.eofs != b.eofs)
        abort();
    return 0;
}
