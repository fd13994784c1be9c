/*
 * fuzz_netcheck_dns.c -- libFuzzer target for kap-shim netcheck's judge
 * of a resolver's answer (contrib/shim/kap_shim_dns_reply.c): bytes from
 * whatever answers on the probed address.
 *
 * The query is netcheck's own for a name taken from the first input
 * byte's choice; the rest is the answer.  Invariants checked: the result
 * is 0 or 1; 1 only for an answer of at least a header with the query's
 * id and the QR bit, whose rcode is 0..15 and ancount the header's; the
 * verdict does not change when bytes are appended after the question
 * (an answer's records), and an answer cut inside its header is never
 * accepted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kap_shim_dns_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* netcheck's query for name (a header and one question for A IN) */
static size_t
query(const char *name, unsigned id, unsigned char *q)
{
    size_t n = 12;
    const char *dot;

    memset(q, 0, 12);
    q[0] = (unsigned char)(id >> 8);
    q[1] = (unsigned char)id;
    q[2] = 0x01;
    q[5] = 1;
    for (; *name; name = *dot ? dot + 1 : dot) {
        dot = strchr(name, '.');
        if (dot == NULL)
            dot = name + strlen(name);
        q[n++] = (unsigned char)(dot - name);
        memcpy(q + n, name, (size_t)(dot - name));
        n += (size_t)(dot - name);
    }
    q[n++] = 0;
    q[n++] = 0; q[n++] = 1;
    q[n++] = 0; q[n++] = 1;
    return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = { "kap-gate.invalid", "github.com",
                                         "x", "kubernetes.default.svc" };
    unsigned char q[300];
    struct kap_dns_reply r, r2;
    size_t qlen;
    unsigned id;
    int rc;

    if (size < 3)
        return 0;
    id = (unsigned)data[1] << 8 | data[2];
    qlen = query(names[data[0] % 4], id, q);
    data++;
    size--;
    memset(&r, 0xa5, sizeof(r));
    rc = kap_dns_reply_check(q, qlen, data, size, &r);
    if (rc != 0 && rc != 1)
        abort();
    if (rc == 0)
        return 0;
    if (size < 12 || data[0] != q[0] || data[1] != q[1] || !(data[2] & 0x80))
        abort();
    if (r.rcode > 15 || r.rcode != (data[3] & 0x0fu)
        || r.ancount != ((unsigned)data[6] << 8 | data[7]))
        abort();
    /* cut inside the header: never an answer */
    if (kap_dns_reply_check(q, qlen, data, 11, &r2) != 0)
        abort();
    /* records after the question do not change the verdict */
    {
        unsigned char *more = malloc(size + 16);
        if (more == NULL)
            return 0;
        memcpy(more, data, size);
        memset(more + size, 0xff, 16);
        if (kap_dns_reply_check(q, qlen, more, size + 16, &r2) != 1
            || r2.rcode != r.rcode || r2.ancount != r.ancount)
            abort();
        free(more);
    }
    return 0;
}
