/*
 * test_dns_wire.c -- unit tests of the DNS wire helpers the resolver's
 * forward fast path and the dns module share (core/kapd_dns_wire.c:
 * header, name walk with compression and its bounds, presentation to
 * wire names, question and record reading, question and OPT writing)
 * and of the dns module's wire layer (modules/dns/kap_dns_wire.c):
 * every malformed-query class, error and RFC 8482 replies, answer
 * rebuilding (CNAME chain, address filter, truncation, question
 * mismatch), reverse names.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include "tap.h"
#include "kap_dns_wire.h"

/* Build a query: header fields + name in presentation form (no escapes). */
static size_t
mkq(unsigned char *p, unsigned id, unsigned flags,
    unsigned qd, unsigned an, unsigned ns, unsigned ar,
    const char *name, unsigned type, unsigned cls)
{
    size_t pos = 12;
    const char *s = name;

    p[0] = (unsigned char)(id >> 8); p[1] = (unsigned char)id;
    p[2] = (unsigned char)(flags >> 8); p[3] = (unsigned char)flags;
    p[4] = 0; p[5] = (unsigned char)qd;
    p[6] = 0; p[7] = (unsigned char)an;
    p[8] = 0; p[9] = (unsigned char)ns;
    p[10] = 0; p[11] = (unsigned char)ar;
    if (name == NULL)
        return pos;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t l = dot ? (size_t)(dot - s) : strlen(s);
        p[pos++] = (unsigned char)l;
        memcpy(p + pos, s, l);
        pos += l;
        s += l;
        if (*s == '.')
            s++;
    }
    p[pos++] = 0;
    p[pos++] = (unsigned char)(type >> 8); p[pos++] = (unsigned char)type;
    p[pos++] = (unsigned char)(cls >> 8); p[pos++] = (unsigned char)cls;
    return pos;
}

static size_t
add_opt(unsigned char *p, size_t pos, unsigned udp,
        unsigned version, int do_bit, const unsigned char *rd,
        size_t rdlen)
{
    p[pos++] = 0;
    p[pos++] = 0; p[pos++] = 41;
    p[pos++] = (unsigned char)(udp >> 8); p[pos++] = (unsigned char)udp;
    p[pos++] = 0; p[pos++] = (unsigned char)version;
    p[pos++] = do_bit ? 0x80 : 0; p[pos++] = 0;
    p[pos++] = (unsigned char)(rdlen >> 8); p[pos++] = (unsigned char)rdlen;
    if (rdlen)
        memcpy(p + pos, rd, rdlen);
    return pos + rdlen;
}

static int
parse(const unsigned char *p, size_t len, struct kap_dns_query *q)
{
    return kap_dns_parse_query(p, len, q, NULL);
}

static void
test_parse(void)
{
    unsigned char p[1024];
    struct kap_dns_query q;
    const char *why;
    size_t n, i;
    unsigned char opts[] = { 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8 };

    n = mkq(p, 0x1234, 0x0100, 1, 0, 0, 0, "WwW.ExAmple.com", 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_OK, "plain A query parses");
    is_str(q.name, "WwW.ExAmple.com", "0x20 case preserved in name");
    is_int(q.qtype, 1, "qtype");
    is_int(q.id, 0x1234, "id");
    ok(q.name_ok, "LDH name is ok");
    is_int(q.nlabels, 3, "three labels");
    ok(!q.edns, "no EDNS");

    is_int(parse(p, 11, &q), KAP_DNS_PARSE_DROP, "11 bytes: dropped");
    is_int(parse(p, 0, &q), KAP_DNS_PARSE_DROP, "empty: dropped");
    for (i = 12; i < n; i++)
        if (parse(p, i, &q) != KAP_DNS_PARSE_FORMERR)
            break;
    is_int(i, n, "every truncation of the question is FORMERR");

    n = mkq(p, 1, 0x8100, 1, 0, 0, 0, "a.com", 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_DROP, "QR set: dropped");
    n = mkq(p, 1, 0x2800, 1, 0, 0, 0, "a.com", 1, 1);  /* opcode 5 UPDATE */
    is_int(parse(p, n, &q), KAP_DNS_PARSE_NOTIMP, "opcode UPDATE: NOTIMP");
    n = mkq(p, 1, 0x0100, 2, 0, 0, 0, "a.com", 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "QDCOUNT 2: FORMERR");
    n = mkq(p, 1, 0x0100, 0, 0, 0, 0, NULL, 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "QDCOUNT 0: FORMERR");
    n = mkq(p, 1, 0x0100, 1, 1, 0, 0, "a.com", 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "ANCOUNT 1: FORMERR");
    n = mkq(p, 1, 0x0100, 1, 0, 1, 0, "a.com", 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "NSCOUNT 1: FORMERR");

    /* a second question hidden after the first */
    n = mkq(p, 1, 0x0100, 1, 0, 0, 0, "a.com", 1, 1);
    n += mkq(p + n - 12, 0, 0, 0, 0, 0, 0, NULL, 0, 0) - 12;
    memcpy(p + n, "\x04leak\x03""com\x00\x00\x10\x00\x01", 14);
    is_int(kap_dns_parse_query(p, n + 14, &q, &why), KAP_DNS_PARSE_FORMERR,
           "trailing second question: FORMERR");
    ok(why && strstr(why, "trailing"), "reason names trailing bytes");

    /* compression pointer in question */
    n = mkq(p, 1, 0x0100, 1, 0, 0, 0, NULL, 0, 0);
    memcpy(p + n, "\x01" "a\xc0\x0c\x00\x01\x00\x01", 8);
    is_int(kap_dns_parse_query(p, n + 8, &q, &why), KAP_DNS_PARSE_FORMERR,
           "compression pointer in question: FORMERR");
    ok(why && strstr(why, "compression"), "reason names compression");
    p[n] = 0x41;   /* extended label type 01 */
    is_int(parse(p, n + 8, &q), KAP_DNS_PARSE_FORMERR,
           "extended label type: FORMERR");

    /* label of 64 is impossible (top bits 01 = extended); 63 ok */
    {
        char name[300];
        memset(name, 'a', 63);
        name[63] = '\0';
        n = mkq(p, 1, 0x0100, 1, 0, 0, 0, name, 1, 1);
        is_int(parse(p, n, &q), KAP_DNS_PARSE_OK, "63-byte label ok");
        /* 4 labels of 63 = 1+63 * 4 + 1 = 257 > 255 */
        memset(name, 'a', 255);
        name[63] = name[127] = name[191] = '.';
        name[255] = '\0';
        n = mkq(p, 1, 0x0100, 1, 0, 0, 0, name, 1, 1);
        is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "name > 255: FORMERR");
        name[253] = '\0';     /* 63.63.63.61 = 255 wire bytes */
        n = mkq(p, 1, 0x0100, 1, 0, 0, 0, name, 1, 1);
        is_int(parse(p, n, &q), KAP_DNS_PARSE_OK, "name of 255: ok");
    }

    /* EDNS */
    n = mkq(p, 1, 0x0100, 1, 0, 0, 1, "a.com", 1, 1);
    n = add_opt(p, n, 4096, 0, 1, opts, sizeof(opts));
    is_int(parse(p, n, &q), KAP_DNS_PARSE_OK, "EDNS with a cookie option");
    ok(q.edns && q.edns_udp == 4096 && q.edns_do, "EDNS fields");
    is_int(parse(p, n - 1, &q), KAP_DNS_PARSE_FORMERR, "truncated OPT");
    n = mkq(p, 1, 0x0100, 1, 0, 0, 1, "a.com", 1, 1);
    opts[3] = 9;   /* option longer than the rdata */
    n = add_opt(p, n, 4096, 0, 0, opts, sizeof(opts));
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "bad EDNS option length");
    opts[3] = 8;
    n = mkq(p, 1, 0x0100, 1, 0, 0, 1, "a.com", 1, 1);
    n = add_opt(p, n, 4096, 1, 0, NULL, 0);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_BADVERS, "EDNS version 1: BADVERS");
    n = mkq(p, 1, 0x0100, 1, 0, 0, 2, "a.com", 1, 1);
    n = add_opt(p, n, 4096, 0, 0, NULL, 0);
    n = add_opt(p, n, 4096, 0, 0, NULL, 0);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "two OPT: FORMERR");
    n = mkq(p, 1, 0x0100, 1, 0, 0, 1, "a.com", 1, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "ARCOUNT 1, no record");
    n = add_opt(p, n, 4096, 0, 0, NULL, 0);
    p[n - 11 + 2] = 250;   /* TSIG */
    is_int(parse(p, n, &q), KAP_DNS_PARSE_FORMERR, "TSIG: FORMERR");

    /* odd names */
    n = mkq(p, 1, 0x0100, 1, 0, 0, 0, NULL, 0, 0);
    memcpy(p + n, "\x05" "a.b\xff!" "\x03" "com\x00\x00\x01\x00\x01", 15);
    is_int(parse(p, n + 15, &q), KAP_DNS_PARSE_OK, "binary label parses");
    ok(!q.name_ok, "binary label is not name_ok");
    is_str(q.name, "a\\.b\\255\\!.com", "escaped presentation");
    n = mkq(p, 1, 0x0100, 1, 0, 0, 0, "", 2, 1);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_OK, "root query parses");
    is_str(q.name, ".", "root name");
    ok(!q.name_ok, "root is not name_ok");
}

static void
test_replies(void)
{
    unsigned char p[600], out[600];
    struct kap_dns_query q;
    size_t n, r;

    n = mkq(p, 0xbeef, 0x0110, 1, 0, 0, 1, "Evil.Example", 16, 1);
    n = add_opt(p, n, 1400, 0, 1, NULL, 0);
    is_int(parse(p, n, &q), KAP_DNS_PARSE_OK, "TXT query");
    r = kap_dns_error_reply(&q, KAP_DNS_NXDOMAIN, 0, 1232, out, sizeof(out));
    ok(r == n, "NXDOMAIN reply is query-sized (question + OPT)");
    ok(out[0] == 0xbe && out[1] == 0xef, "ID copied");
    ok((out[2] & 0x80) && (out[2] & 0x01) && !(out[2] & 0x02),
       "QR and RD set, TC clear");
    is_int(out[3] & 0x0f, 3, "rcode NXDOMAIN");
    ok(out[3] & 0x10, "CD copied");
    ok(out[7] == 0 && out[9] == 0 && out[11] == 1, "no records but OPT");
    ok(memcmp(out + 12, p + 12, q.qname_len + 4) == 0,
       "question exactly as asked");
    r = kap_dns_error_reply(&q, KAP_DNS_BADVERS, 0, 1232, out, sizeof(out));
    ok(r > 0 && (out[3] & 0xf) == 0 && out[r - 6] == 1,
       "BADVERS: low bits 0, extended rcode 1 in OPT");
    r = kap_dns_error_reply(&q, KAP_DNS_SERVFAIL, 1, 1232, out, sizeof(out));
    ok(out[2] & 0x02, "TC set when asked");
    r = kap_dns_error_reply(&q, KAP_DNS_SERVFAIL, 0, 1232, out, 100);
    is_int(r, 0, "too small a buffer: 0");

    n = mkq(p, 7, 0x0100, 1, 0, 0, 0, "a.com", 255, 1);
    parse(p, n, &q);
    r = kap_dns_hinfo_reply(&q, 1232, out, sizeof(out));
    {
        ldns_pkt *pk = NULL;
        ok(r > 0 && ldns_wire2pkt(&pk, out, r) == LDNS_STATUS_OK,
           "RFC 8482 reply parses");
        ok(pk && ldns_pkt_ancount(pk) == 1
           && ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(pk), 0))
              == LDNS_RR_TYPE_HINFO, "one HINFO answer");
        ldns_pkt_free(pk);
    }
}

/* Build an upstream answer with ldns from zone-file lines. */
static size_t
upstream(unsigned char **wire, const char *qname, int qtype,
         int rcode, const char *const *rrs)
{
    ldns_pkt *pk = ldns_pkt_new();
    ldns_rr *rr = NULL;
    size_t size = 0;
    char line[300];

    snprintf(line, sizeof(line), "%s IN %s", qname,
             ldns_rr_descript((uint16_t)qtype)->_name);
    ldns_rr_new_question_frm_str(&rr, line, NULL, NULL);
    ldns_pkt_push_rr(pk, LDNS_SECTION_QUESTION, rr);
    for (; rrs && *rrs; rrs++) {
        ldns_pkt_section sec = LDNS_SECTION_ANSWER;
        const char *s = *rrs;
        if (strncmp(s, "NS:", 3) == 0) {
            sec = LDNS_SECTION_AUTHORITY;
            s += 3;
        }
        rr = NULL;
        if (ldns_rr_new_frm_str(&rr, s, 300, NULL, NULL) != LDNS_STATUS_OK)
            diag("bad rr %s", s);
        else
            ldns_pkt_push_rr(pk, sec, rr);
    }
    ldns_pkt_set_qr(pk, 1);
    ldns_pkt_set_rcode(pk, (uint8_t)rcode);
    ldns_pkt2wire(wire, pk, &size);
    ldns_pkt_free(pk);
    return size;
}

static int
deny_private(void *ctx, const struct sockaddr *sa,
             const char **why)
{
    (void)ctx;
    if (sa->sa_family == AF_INET) {
        const unsigned char *a = (const unsigned char *)
            &((const struct sockaddr_in *)sa)->sin_addr;
        if (a[0] == 127 || a[0] == 10) {
            *why = "private";
            return 1;
        }
    }
    return 0;
}

static ldns_pkt *
reply_of(const unsigned char *out, size_t len)
{
    ldns_pkt *pk = NULL;

    if (ldns_wire2pkt(&pk, out, len) != LDNS_STATUS_OK)
        return NULL;
    return pk;
}

static void
test_answers(void)
{
    unsigned char p[600], *wire = NULL, *out = NULL;
    struct kap_dns_query q;
    struct kap_dns_answer_opts o;
    size_t n, wl, ol;
    ldns_pkt *pk;
    static const char *const chain[] = {
        "www.example.com. 300 IN CNAME cdn.example.net.",
        "cdn.example.net. 300 IN CNAME edge.example.org.",
        "edge.example.org. 300 IN A 192.0.2.1",
        "edge.example.org. 300 IN A 10.0.0.1",
        "stray.attacker. 300 IN A 192.0.2.99",
        "NS:example.org. 300 IN NS ns.example.org.",
        NULL
    };
    static const char *const nx[] = {
        "NS:example.com. 300 IN SOA ns. host. 1 2 3 4 5", NULL
    };

    n = mkq(p, 0x4242, 0x0100, 1, 0, 0, 0, "WWW.example.COM", 1, 1);
    parse(p, n, &q);
    wl = upstream(&wire, "www.example.com.", 1, 0, chain);
    memset(&o, 0, sizeof(o));
    o.maxlen = 512;
    o.edns_size = 1232;
    o.deny = deny_private;
    is_int(kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol), 0,
           "chain answer rebuilt");
    {
        uint16_t offs[8];
        size_t nt = 0;
        uint32_t minttl = 0;
        ok(kap_dns_reply_ttls(out, ol, offs, 8, &nt, &minttl) == 0
           && nt == 3 && minttl == 300, "reply TTLs: 3 records, min 300");
        ok(kap_dns_reply_ttls(out, ol, offs, 2, &nt, &minttl) == -1,
           "reply TTLs: too many records");
        ok(kap_dns_reply_ttls(out, ol - 1, offs, 8, &nt, &minttl) == -1,
           "reply TTLs: truncated packet");
    }
    pk = reply_of(out, ol);
    ok(pk != NULL, "reply parses");
    if (pk) {
        ldns_rr_list *an = ldns_pkt_answer(pk);
        const ldns_rr *qr = ldns_rr_list_rr(ldns_pkt_question(pk), 0);
        char *qs = ldns_rdf2str(ldns_rr_owner(qr));
        is_int(ldns_pkt_id(pk), 0x4242, "client ID");
        is_str(qs, "WWW.example.COM.", "question case preserved");
        free(qs);
        is_int(ldns_rr_list_rr_count(an), 3,
               "2 CNAMEs + 1 A: stray and private removed");
        is_int(ldns_pkt_nscount(pk), 0, "NS authority dropped");
        is_int(o.removed, 1, "one address removed");
        ok(ldns_pkt_rd(pk) && ldns_pkt_ra(pk), "RD and RA");
        ldns_pkt_free(pk);
    }
    free(out);

    o.refuse = 1;
    kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol);
    is_int(o.rcode, KAP_DNS_REFUSED, "rebinding refuse: REFUSED");
    ok(ol > 12 && (out[3] & 0xf) == 5 && out[7] == 0, "no answers");
    free(out);
    free(wire);

    /* question mismatch */
    wl = upstream(&wire, "other.example.com.", 1, 0, chain);
    is_int(kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol), -1,
           "answer to another question rejected");
    free(wire);
    is_int(kap_dns_answer_reply(&q, (const unsigned char *)"\1\2\3", 3, &o,
                                &out, &ol), -1, "garbage answer rejected");

    /* a TTL with the top bit set is read as zero (RFC 2181 8) */
    {
        static const char *const top[] = {
            "www.example.com. 4294967280 IN A 192.0.2.7", NULL
        };
        wl = upstream(&wire, "www.example.com.", 1, 0, top);
        is_int(kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol), 0,
               "answer with a top-bit TTL");
        pk = reply_of(out, ol);
        ok(pk && ldns_pkt_ancount(pk) == 1
           && ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(pk), 0)) == 0,
           "top-bit TTL passed on as 0");
        ldns_pkt_free(pk);
        free(out);
        free(wire);
    }

    /* NXDOMAIN with SOA */
    wl = upstream(&wire, "www.example.com.", 1, 3, nx);
    o.refuse = 0;
    is_int(kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol), 0, "NXDOMAIN");
    pk = reply_of(out, ol);
    ok(pk && ldns_pkt_get_rcode(pk) == 3 && ldns_pkt_nscount(pk) == 1,
       "NXDOMAIN with its SOA");
    ldns_pkt_free(pk);
    free(out);
    free(wire);

    /* truncation */
    {
        const char *big[40];
        char lines[40][100];
        int i;
        for (i = 0; i < 39; i++) {
            snprintf(lines[i], sizeof(lines[i]),
                     "www.example.com. 300 IN TXT \"%040d\"", i);
            big[i] = lines[i];
        }
        big[39] = NULL;
        n = mkq(p, 9, 0x0100, 1, 0, 0, 0, "www.example.com", 16, 1);
        parse(p, n, &q);
        wl = upstream(&wire, "www.example.com.", 16, 0, big);
        o.maxlen = 512;
        is_int(kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol), 0,
               "big answer");
        ok(o.truncated && ol <= 512 && (out[2] & 0x02), "TC set, fits");
        free(out);
        o.maxlen = 65535;
        kap_dns_answer_reply(&q, wire, wl, &o, &out, &ol);
        pk = reply_of(out, ol);
        ok(!o.truncated && pk && ldns_pkt_ancount(pk) == 39,
           "TCP size: all 39 records");
        ldns_pkt_free(pk);
        free(out);
        free(wire);
    }
}

static void
test_ptr(void)
{
    struct sockaddr_storage ss;
    char buf[INET6_ADDRSTRLEN];

    ok(kap_dns_ptr_addr("4.3.2.1.in-addr.arpa", &ss)
       && ss.ss_family == AF_INET, "v4 reverse name");
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf,
              sizeof(buf));
    is_str(buf, "1.2.3.4", "v4 address");
    ok(!kap_dns_ptr_addr("3.2.1.in-addr.arpa", &ss), "partial v4: no");
    ok(!kap_dns_ptr_addr("04.3.2.1.in-addr.arpa", &ss), "leading zero: no");
    ok(!kap_dns_ptr_addr("256.3.2.1.in-addr.arpa", &ss), "256: no");
    ok(kap_dns_ptr_addr("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                        "0.0.0.0.0.0.0.0.ip6.arpa", &ss)
       && ss.ss_family == AF_INET6, "v6 reverse name");
    inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf,
              sizeof(buf));
    is_str(buf, "::1", "v6 address");
    ok(!kap_dns_ptr_addr("example.com", &ss), "not a reverse name");
}


/* core/kapd_dns_wire.c: the helpers both DNS users share */
static void
test_shared_helpers(void)
{
    static const unsigned char reply[] = {
        0x12, 0x34, 0x81, 0x83, 0, 1, 0, 2, 0, 0, 0, 1,
        3, 'W', 'w', 'W', 1, 'x', 0, 0, 1, 0, 1,         /* question */
        0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4,    /* A, ptr owner */
        10, 0, 0, 1,
        1, 'a', 0xc0, 12, 0, 28, 0, 1, 0x80, 0, 0, 1,    /* AAAA, label */
        0, 16, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0,    /* + pointer */
        0, 0, 0, 0, 0, 1,
        0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0           /* OPT */
    };
    unsigned char out[300], big[300], lname[280];
    struct kap_dnswire_hdr h, h2;
    struct kap_dnswire_rr rr;
    size_t pos, n, i;
    uint16_t qt = 0, qc = 0;

    ok(kap_dnswire_hdr_read(reply, 11, &h) == -1, "hdr: 11 bytes refused");
    ok(kap_dnswire_hdr_read(reply, sizeof(reply), &h) == 0
       && h.id == 0x1234 && (h.flags & KAP_DNSWIRE_F_QR)
       && KAP_DNSWIRE_RCODE(h.flags) == 3 && KAP_DNSWIRE_OPCODE(h.flags) == 0
       && h.qdcount == 1 && h.ancount == 2 && h.nscount == 0
       && h.arcount == 1, "hdr: every field");
    kap_dnswire_hdr_write(out, &h);
    ok(memcmp(out, reply, 12) == 0, "hdr: write is read's inverse");
    ok(kap_dnswire_hdr_read(out, 12, &h2) == 0
       && memcmp(&h, &h2, sizeof(h)) == 0, "hdr: round trip");

    pos = 12;
    ok(kap_dnswire_question_read(reply, sizeof(reply), &pos, &qt, &qc) == 0
       && pos == 23 && qt == 1 && qc == 1, "question: read, pos after");
    ok(kap_dnswire_rr_read(reply, sizeof(reply), &pos, &rr) == 0
       && rr.owner == 23 && rr.type == 1 && rr.rclass == 1
       && rr.ttl == 3600 && rr.ttl_off == 29 && rr.rdlen == 4
       && rr.rdata == 35 && pos == 39, "rr: pointer owner, A record");
    ok(kap_dnswire_rr_read(reply, sizeof(reply), &pos, &rr) == 0
       && rr.type == 28 && rr.ttl == 0x80000001u && rr.rdlen == 16
       && memcmp(reply + rr.rdata, "\x20\x01\x0d\xb8", 4) == 0,
       "rr: label + pointer owner, AAAA record, TTL read unsigned");
    ok(kap_dnswire_rr_read(reply, sizeof(reply), &pos, &rr) == 0
       && rr.type == KAP_DNSWIRE_T_OPT && rr.rclass == 4096
       && (rr.ttl & 0x8000) && pos == sizeof(reply), "rr: OPT, at the end");
    ok(kap_dnswire_rr_read(reply, sizeof(reply), &pos, &rr) == -1,
       "rr: nothing left");
    pos = 23;
    ok(kap_dnswire_rr_read(reply, 38, &pos, &rr) == -1 && pos == 23,
       "rr: RDATA past the end refused, pos kept");

    /* the walk: every way a name can be malformed */
    pos = 0;
    ok(kap_dnswire_name_skip((const unsigned char *)"\x01", 1, &pos) == -1,
       "name: label past the end");
    pos = 0;
    ok(kap_dnswire_name_skip((const unsigned char *)"\x01" "a", 2, &pos)
       == -1, "name: no root label");
    pos = 0;
    ok(kap_dnswire_name_skip((const unsigned char *)"\xc0", 1, &pos) == -1,
       "name: pointer cut in half");
    pos = 0;
    ok(kap_dnswire_name_skip((const unsigned char *)"\x40\x00", 2, &pos)
       == -1, "name: 0x40 label type");
    pos = 0;
    ok(kap_dnswire_name_skip((const unsigned char *)"\x80\x00", 2, &pos)
       == -1, "name: 0x80 label type");
    pos = 0;
    ok(kap_dnswire_name_skip((const unsigned char *)"\xc0\x00", 2, &pos) == 0
       && pos == 2, "name: a pointer to itself is not followed");
    /* 128 one-byte labels: 257 bytes, longer than any name */
    for (i = 0; i < 256; i += 2) {
        lname[i] = 1;
        lname[i + 1] = 'a';
    }
    lname[256] = 0;
    pos = 0;
    ok(kap_dnswire_name_skip(lname, 257, &pos) == -1,
       "name: 257 bytes refused");
    pos = 2;
    ok(kap_dnswire_name_skip(lname, 257, &pos) == 0 && pos == 257,
       "name: 255 bytes walked");

    n = kap_dnswire_name_from_text("www.Example.com", 15, out, sizeof(out));
    ok(n == 17 && memcmp(out, "\x03www\x07" "Example\x03" "com", 17) == 0,
       "from_text: labels, case kept, root label");
    ok(kap_dnswire_name_from_text("a..b", 4, out, sizeof(out)) == 0,
       "from_text: empty label");
    ok(kap_dnswire_name_from_text("a.", 2, out, sizeof(out)) == 0,
       "from_text: trailing dot is the caller's");
    ok(kap_dnswire_name_from_text("", 0, out, sizeof(out)) == 0,
       "from_text: empty name");
    memset(big, 'a', sizeof(big));
    ok(kap_dnswire_name_from_text((const char *)big, 64, out, sizeof(out))
       == 0, "from_text: 64-byte label");
    ok(kap_dnswire_name_from_text((const char *)big, 63, out, sizeof(out))
       == 65, "from_text: 63-byte label");
    for (i = 63; i < 260; i += 64)
        big[i] = '.';
    ok(kap_dnswire_name_from_text((const char *)big, 253, out, sizeof(out))
       == 255, "from_text: 253 characters fit in 255");
    ok(kap_dnswire_name_from_text((const char *)big, 254, out, sizeof(out))
       == 0, "from_text: 254 characters do not");
    ok(kap_dnswire_name_from_text("abc", 3, out, 5) == 5
       && kap_dnswire_name_from_text("abc", 3, out, 4) == 0,
       "from_text: cap");
    ok(kap_dnswire_name_eq((const unsigned char *)"\x03WwW\x01x",
                           (const unsigned char *)"\x03wWw\x01X", 7),
       "name_eq: ASCII case-insensitive");
    ok(!kap_dnswire_name_eq((const unsigned char *)"\x01\xc1",
                            (const unsigned char *)"\x01\xe1", 2),
       "name_eq: bytes above ASCII compared exactly");

    n = kap_dnswire_question_write(out, sizeof(out), 12,
                                   (const unsigned char *)"\x01x", 3, 28, 1);
    ok(n == 19 && memcmp(out + 12, "\x01x\x00\x00\x1c\x00\x01", 7) == 0,
       "question_write: name, type, class");
    ok(kap_dnswire_question_write(out, 18, 12,
                                  (const unsigned char *)"\x01x", 3, 28, 1)
       == 0, "question_write: no room");
    n = kap_dnswire_opt_write(out, sizeof(out), 0, 1232, 16, 1);
    ok(n == 11 && memcmp(out, "\x00\x00\x29\x04\xd0\x01\x00\x80\x00\x00\x00",
                         11) == 0, "opt_write: size, extended rcode, DO");
    ok(kap_dnswire_opt_write(out, 10, 0, 1232, 0, 0) == 0
       && kap_dnswire_opt_write(out, 10, 11, 1232, 0, 0) == 0,
       "opt_write: no room");
}

int
main(void)
{
    char tb[32];


    test_shared_helpers();
    test_parse();
    test_replies();
    test_answers();
    test_ptr();
    is_str(kap_dns_type_name(65, tb, sizeof(tb)), "HTTPS", "type name HTTPS");
    is_str(kap_dns_type_name(252, tb, sizeof(tb)), "AXFR", "type name AXFR");
    is_str(kap_dns_type_name(65280, tb, sizeof(tb)), "TYPE65280",
           "unknown type name");
    return done_testing();
}
