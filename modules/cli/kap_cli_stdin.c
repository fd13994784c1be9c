/*
 * kap_cli_stdin.c -- decode a streamed call's stdin frames (see
 * kap_cli_stdin.h).
 */
#include "kap_cli_stdin.h"

#include <string.h>

void
kap_cli_stdin_init(struct kap_cli_stdin_dec *d)
{
    memset(d, 0, sizeof(*d));
}

static int
fail(struct kap_cli_stdin_dec *d, const char *why)
{
    d->error = why;
    return -1;
}

int
kap_cli_stdin_feed(struct kap_cli_stdin_dec *d, const char *p, size_t n,
                   kap_cli_stdin_fn fn, void *data)
{
    if (d->error != NULL)
        return -1;
    while (n > 0) {
        size_t k;

        if (d->eof)
            return fail(d, "bytes after the stdin EOF frame");
        if (d->left == 0) {
            d->h[d->hlen++] = (unsigned char) *p++;
            n--;
            if (d->hlen < 5)
                continue;
            d->hlen = 0;
            if (d->h[0] != 0)
                return fail(d, "an unknown stdin frame");
            d->left = ((size_t) d->h[1] << 24) | ((size_t) d->h[2] << 16)
                      | ((size_t) d->h[3] << 8) | d->h[4];
            if (d->left > KAP_CLI_STDIN_FRAME_MAX)
                return fail(d, "a stdin frame over 1 MiB");
            if (d->left == 0) {
                d->eof = 1;
                if (fn(NULL, 0, data) != 0)
                    return fail(d, "stopped");
            }
            continue;
        }
        k = n < d->left ? n : d->left;
        if (fn(p, k, data) != 0)
            return fail(d, "stopped");
        p += k;
        n -= k;
        d->left -= k;
    }
    return 0;
}
