/*
 * kap_shim_dns_reply.h -- judge a resolver's answer to kap-shim
 * netcheck's DNS probe.  A pure function on bytes from the network (no
 * I/O, no allocation, no global state), so that
 * fuzz/fuzz_netcheck_dns.c can call it directly.
 */
#ifndef KAP_SHIM_DNS_REPLY_H
#define KAP_SHIM_DNS_REPLY_H

#include <stddef.h>

struct kap_dns_reply {
    unsigned rcode;                     /* 0..15 */
    unsigned ancount;                   /* as the header says */
};

/*
 * Whether a[0..alen) answers the query q[0..qlen) (a header and one
 * question, as netcheck sends it): at least a header, the same id, the
 * QR bit set, and either no question or exactly ours (the name compared
 * without regard to ASCII case, type and class byte for byte).  1 with r
 * filled, or 0 (not an answer to this query: the caller keeps waiting).
 */
int kap_dns_reply_check(const unsigned char *q, size_t qlen,
                        const unsigned char *a, size_t alen,
                        struct kap_dns_reply *r);

#endif
