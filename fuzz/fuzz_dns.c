/*
 * fuzz_dns.c -- libFuzzer target for the DNS wire layers: the dns
 * module's query path (strict parse, error / RFC 8482 replies, PTR names)
 * and answer path (rebuilding a reply from a resolver packet, then
 * walking it as the answer cache does), and the shared helpers of
 * core/kapd_dns_wire.c walking the resolver packet as the resolver reads
 * an upstream's reply (header, questions, every record).  The input is a
 * query, optionally followed by 0xff 0x00 0xff and a resolver answer.
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

/* Walk a packet as the resolver does; every record must lie inside it. */
static void
walk_packet(const unsigned char *p, size_t len)
{
    struct kap_dnswire_hdr h;
    struct kap_dnswire_rr rr;
    size_t pos = KAP_DNSWIRE_HDR_LEN, i, last;

    if (kap_dnswire_hdr_read(p, len, &h) != 0)
        return;
    for (i = 0; i < h.qdcount; i++)
        if (kap_dnswire_question_read(p, len, &pos, NULL, NULL) != 0)
            return;
    for (i = 0; i < (size_t)h.ancount + h.nscount + h.arcount; i++) {
        last = pos;
        if (kap_dnswire_rr_read(p, len, &pos, &rr) != 0) {
            if (pos != last)
                abort();                 /* a failed read moved pos */
            return;
        }
        if (rr.owner != last || rr.rdata + rr.rdlen != pos || pos > len
            || rr.ttl_off + 6 != rr.rdata)
            abort();
    }
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
    walk_packet(data, qlen);
    if (answer != NULL)
        walk_packet(answer, answer_len);
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
