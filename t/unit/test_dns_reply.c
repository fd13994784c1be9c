/*
 * test_dns_reply.c -- kap-shim netcheck's judge of a resolver's answer
 * (contrib/shim/kap_shim_dns_reply.c): an answer to the query (its id,
 * QR, the question echoed, its case changed, or no question) is taken
 * with its rcode and answer count; another id, a query (no QR), a short
 * packet, another question, two questions, a truncated question are not.
 */
#include "config.h"

#include <string.h>

#include "kap_shim_dns_reply.h"
#include "tap.h"

/* "kap.test" A IN, id 0x1234 */
static const unsigned char Q[] = {
    0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
    3, 'k', 'a', 'p', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1
};

static int
check(const unsigned char *a, size_t n, struct kap_dns_reply *r)
{
    return kap_dns_reply_check(Q, sizeof(Q), a, n, r);
}

int
main(void)
{
    unsigned char a[64];
    struct kap_dns_reply r;

    memcpy(a, Q, sizeof(Q));
    a[2] = 0x81;
    a[3] = 0x83;                        /* RA, NXDOMAIN */
    a[7] = 2;
    ok(check(a, sizeof(Q), &r) == 1 && r.rcode == 3 && r.ancount == 2,
       "the answer: NXDOMAIN, 2 records");
    a[13] = 'K';
    ok(check(a, sizeof(Q), &r) == 1, "the name in another case (0x20)");
    a[13] = 'k';
    a[5] = 0;
    ok(check(a, 12, &r) == 1, "no question (a FORMERR-style answer)");
    a[5] = 1;
    ok(check(a, sizeof(Q) - 1, &r) == 0, "the question cut short");
    ok(check(a, 11, &r) == 0, "shorter than a header");
    a[1] = 0x35;
    ok(check(a, sizeof(Q), &r) == 0, "another id");
    a[1] = 0x34;
    a[2] = 0x01;
    ok(check(a, sizeof(Q), &r) == 0, "no QR bit (a query)");
    a[2] = 0x81;
    a[14] = 'b';
    ok(check(a, sizeof(Q), &r) == 0, "another name");
    a[14] = 'a';
    a[23] = 28;
    ok(check(a, sizeof(Q), &r) == 0, "another type (AAAA)");
    a[23] = 1;
    a[5] = 2;
    ok(check(a, sizeof(Q), &r) == 0, "two questions");
    return done_testing();
}
