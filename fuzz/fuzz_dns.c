/*
 * fuzz_dns.c -- libFuzzer target for the dns module's wire layer: the
 * query path (strict parse, error / RFC 8482 replies, PTR names) and the
 * answer path (rebuilding a reply from a resolver packet, then walking it
 * as the answer cache does).  The input is a query, optionally followed
 * by 0xff 0x00 0xff and a resolver answer for it.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kap_dns_wire.h"

static int
deny_odd(void *ctx, const struct sockaddr *sa, const char **why)
{
    (void)ctx;
    *why = "test";
    return ((const unsigned char *)sa)[4] & 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_dns_query q;
    struct kap_dns_answer_opts o;
    struct sockaddr_storage ss;
    unsigned char out[600];
    unsigned char *ans = NULL;
    size_t anslen = 0, qlen = size, i;
    const uint8_t *answer = NULL;
    size_t answer_len = 0;
    enum kap_dns_parse pr;

    for (i = 0; i + 3 <= size; i++)
        if (data[i] == 0xff && data[i + 1] == 0x00 && data[i + 2] == 0xff) {
            qlen = i;
            answer = data + i + 3;
            answer_len = size - i - 3;
            break;
        }
    pr = kap_dns_parse_query(data, qlen, &q, NULL);
    if (pr != KAP_DNS_PARSE_DROP) {
        size_t n = kap_dns_error_reply(&q, KAP_DNS_FORMERR, 0, 1232, out,
                                       sizeof(out));
        if (n == 0 || n > sizeof(out))
            abort();
    }
    if (pr != KAP_DNS_PARSE_OK)
        return 0;
    if (strlen(q.name) >= sizeof(q.name))
        abort();
    (void)kap_dns_ptr_addr(q.name, &ss);
    (void)kap_dns_hinfo_reply(&q, 1232, out, sizeof(out));
    (void)kap_dns_error_reply(&q, KAP_DNS_BADVERS, 1, 4096, out, 512);
    if (answer != NULL) {
        memset(&o, 0, sizeof(o));
        o.maxlen = (answer_len & 1) ? 512 : 65535;
        o.edns_size = 1232;
        o.deny = deny_odd;
        o.refuse = (answer_len & 2) != 0;
        if (kap_dns_answer_reply(&q, answer, answer_len, &o, &ans, &anslen)
            == 0) {
            uint16_t offs[64];
            size_t nt;
            uint32_t minttl;
            if (ans == NULL || anslen > o.maxlen)
                abort();
            /* every reply we build must walk cleanly (the cache does) */
            if (anslen >= 12
                && ((ans[6] << 8 | ans[7]) + (ans[8] << 8 | ans[9])) < 64
                && kap_dns_reply_ttls(ans, anslen, offs, 64, &nt, &minttl)
                   != 0)
                abort();
            free(ans);
        }
    }
    return 0;
}
