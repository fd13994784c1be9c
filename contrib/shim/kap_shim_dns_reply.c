/*
 * kap_shim_dns_reply.c -- judge a resolver's answer to netcheck's DNS
 * probe (kap_shim_dns_reply.h).
 */
#include "kap_shim_dns_reply.h"

#define DNS_HEAD 12

static unsigned char
lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

int
kap_dns_reply_check(const unsigned char *q, size_t qlen,
                    const unsigned char *a, size_t alen,
                    struct kap_dns_reply *r)
{
    unsigned qd;
    size_t i;

    if (qlen < DNS_HEAD || alen < DNS_HEAD || a[0] != q[0] || a[1] != q[1]
        || (a[2] & 0x80) == 0)
        return 0;
    qd = (unsigned)a[4] << 8 | a[5];
    if (qd > 1)
        return 0;
    if (qd == 1) {
        /* the question section: ours, byte for byte but the name's case */
        if (alen < qlen)
            return 0;
        for (i = DNS_HEAD; i < qlen; i++)
            if (lower(a[i]) != lower(q[i]))
                return 0;
    }
    r->rcode = a[3] & 0x0fu;
    r->ancount = (unsigned)a[6] << 8 | a[7];
    return 1;
}
