/*
 * fuzz_connect_reply.c -- libFuzzer target for kap-shim connect's parser
 * of the proxy's answer to CONNECT (contrib/shim/kap_shim_connect_reply.c):
 * bytes from the network, before any tunnel exists.
 *
 * Invariants checked: the result is -1, 0 or 1; -1 comes with a reason;
 * a complete head has a status in 100..599, HTTP/1.0 or 1.1, a length
 * within the input that ends in an empty line, a NUL-terminated reason of
 * printable ASCII, a Content-Length of -1 or more; the same head parses
 * the same on its own and with other bytes after it; a shorter prefix of
 * it is never malformed (incremental reading gives the same verdict).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_shim_connect_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const struct kap_connect_reply *r, const char *buf, size_t len)
{
    if (r->status < 100 || r->status > 599)
        abort();
    if (r->minor != 0 && r->minor != 1)
        abort();
    if (r->head_len == 0 || r->head_len > len || buf[r->head_len - 1] != '\n')
        abort();
    if (r->head_len < 2 || (buf[r->head_len - 2] != '\n'
                            && !(buf[r->head_len - 2] == '\r' && r->head_len >= 3
                                 && buf[r->head_len - 3] == '\n')))
        abort();
    size_t rl = strnlen(r->reason, sizeof r->reason);
    if (rl >= sizeof r->reason)
        abort();
    for (size_t i = 0; i < rl; i++) {
        if ((unsigned char)r->reason[i] < 0x20 || (unsigned char)r->reason[i] >= 0x7f)
            abort();
    }
    if (r->content_length < -1)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct kap_connect_reply r, r2;
    int rc = kap_connect_reply_parse(buf, size, &r);

    if (rc < -1 || rc > 1)
        abort();
    if (rc == -1) {
        if (r.error == NULL || r.error[0] == '\0')
            abort();
        return 0;
    }
    if (rc == 0)
        return 0;
    check_reply(&r, buf, size);

    /* the head alone: the same answer */
    char *copy = malloc(r.head_len);
    if (copy == NULL)
        return 0;
    memcpy(copy, buf, r.head_len);
    if (kap_connect_reply_parse(copy, r.head_len, &r2) != 1
        || r2.head_len != r.head_len || r2.status != r.status
        || r2.content_length != r.content_length
        || strcmp(r2.reason, r.reason) != 0)
        abort();
    /* shorter prefixes: never malformed, never complete */
    size_t cuts[3] = { r.head_len - 1, r.head_len / 2, 1 };
    for (int i = 0; i < 3; i++) {
        if (cuts[i] == 0 || cuts[i] >= r.head_len)
            continue;
        if (kap_connect_reply_parse(copy, cuts[i], &r2) != 0)
            abort();
    }
    free(copy);
    return 0;
}
