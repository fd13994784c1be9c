/*
 * kap_dns_wire.c -- the dns module's wire layer: a strict query parser
 * (our own: every byte of an untrusted query is accounted for), error and
 * RFC 8482 replies built by hand, and answers rebuilt from the resolver's
 * packet with ldns (CNAME-chain filtering, address filtering,
 * truncation).  No kapd state: see kap_dns_wire.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldns/ldns.h>

#include <kapd/kap_addr.h>

#include "kap_dns_wire.h"

#define rd16(p)     KAP_DNSWIRE_GET16(p)
#define wr16(p, v)  KAP_DNSWIRE_PUT16(p, v)

/* Presentation form of the wire name in q (already validated), each
   byte that may not appear in a host name escaped. */
static void
name_to_text_escaped(struct kap_dns_query *q)
{
    size_t i = 0, o = 0;
    int ok = 1;

    while (i < q->qname_len && q->qname[i] != 0) {
        size_t l = q->qname[i++], j;
        if (o > 0)
            q->name[o++] = '.';
        for (j = 0; j < l; j++, i++) {
            unsigned char ch = q->qname[i];
            if (kap_host_char_ok(ch)) {
                q->name[o++] = (char)ch;
            } else {
                ok = 0;
                if (ch == '.' || ch == '\\' || (ch > 32 && ch < 127)) {
                    q->name[o++] = '\\';
                    q->name[o++] = (char)ch;
                } else {
                    q->name[o++] = '\\';
                    q->name[o++] = (char)('0' + ch / 100);
                    q->name[o++] = (char)('0' + ch / 10 % 10);
                    q->name[o++] = (char)('0' + ch % 10);
                }
            }
        }
    }
    q->name[o] = '\0';
    /* the one host-name rule (kap_addr.h): the wire already bounds the
       labels to 63 and the name to 253 characters */
    q->name_ok = ok && kap_host_name_norm(q->name, o, NULL, 0) >= 0;
}

/*
 * Presentation form of the wire name in q (already validated).  Nearly
 * every name is a host name: its labels are copied as they are and the
 * whole checked once by the one host-name rule (kap_addr.h), which
 * passes exactly when no byte needed an escape.  A label holding a dot
 * or a name that fails the rule is written again, escaped.
 */
static void
name_to_text(struct kap_dns_query *q)
{
    size_t i = 0, o = 0;

    if (q->qname_len == 1) {
        memcpy(q->name, ".", 2);
        q->name_ok = 0;
        return;
    }
    while (i < q->qname_len && q->qname[i] != 0) {
        size_t l = q->qname[i++];
        if (memchr(q->qname + i, '.', l) != NULL) {
            name_to_text_escaped(q);
            return;
        }
        if (o > 0)
            q->name[o++] = '.';
        memcpy(q->name + o, q->qname + i, l);
        o += l;
        i += l;
    }
    q->name[o] = '\0';
    if (kap_host_name_norm(q->name, o, NULL, 0) < 0) {
        name_to_text_escaped(q);
        return;
    }
    q->name_ok = 1;
}

#define FAIL(code, text) do { if (why) *why = (text); return (code); } while (0)

enum kap_dns_parse
kap_dns_parse_query(const unsigned char *pkt, size_t len,
                    struct kap_dns_query *q,
                    const char **why)
{
    struct kap_dnswire_hdr h;
    size_t pos, nl = 0;
    unsigned i;

    memset(q, 0, sizeof(*q));
    if (why)
        *why = NULL;
    if (kap_dnswire_hdr_read(pkt, len, &h) != 0)
        FAIL(KAP_DNS_PARSE_DROP, "shorter than a DNS header");
    q->id = h.id;
    q->flags = h.flags;
    q->opcode = (int)KAP_DNSWIRE_OPCODE(h.flags);
    if (h.flags & KAP_DNSWIRE_F_QR)
        FAIL(KAP_DNS_PARSE_DROP, "QR set (a response, not a query)");
    if (q->opcode != 0)
        FAIL(KAP_DNS_PARSE_NOTIMP, "opcode is not QUERY");
    if (h.qdcount != 1)
        FAIL(KAP_DNS_PARSE_FORMERR, "QDCOUNT is not 1");
    if (h.ancount != 0 || h.nscount != 0)
        FAIL(KAP_DNS_PARSE_FORMERR, "answer or authority records in a query");

    /* question name: plain labels only */
    pos = KAP_DNS_HDR_LEN;
    for (;;) {
        unsigned l;
        if (pos >= len)
            FAIL(KAP_DNS_PARSE_FORMERR, "truncated question name");
        l = pkt[pos];
        if ((l & 0xc0) == 0xc0)
            FAIL(KAP_DNS_PARSE_FORMERR, "compression pointer in question");
        if (l & 0xc0)
            FAIL(KAP_DNS_PARSE_FORMERR, "extended label type in question");
        if (nl + 1 + l > KAP_DNS_NAME_MAX)
            FAIL(KAP_DNS_PARSE_FORMERR, "question name longer than 255");
        if (pos + 1 + l > len)
            FAIL(KAP_DNS_PARSE_FORMERR, "truncated question name");
        memcpy(q->qname + nl, pkt + pos, 1 + l);
        nl += 1 + l;
        pos += 1 + l;
        if (l == 0)
            break;
        q->nlabels++;
    }
    q->qname_len = nl;
    if (pos + 4 > len)
        FAIL(KAP_DNS_PARSE_FORMERR, "truncated question");
    q->qtype = rd16(pkt + pos);
    q->qclass = rd16(pkt + pos + 2);
    pos += 4;
    q->has_question = 1;
    name_to_text(q);

    /* additional: one OPT at most */
    for (i = 0; i < h.arcount; i++) {
        struct kap_dnswire_rr rr;
        size_t end;
        if (pos >= len)
            FAIL(KAP_DNS_PARSE_FORMERR, "truncated additional record");
        if (pkt[pos] != 0)
            FAIL(KAP_DNS_PARSE_FORMERR, "additional record other than OPT");
        if (pos + 11 > len)
            FAIL(KAP_DNS_PARSE_FORMERR, "truncated additional record");
        if (rd16(pkt + pos + 1) != KAP_DNSWIRE_T_OPT)
            FAIL(KAP_DNS_PARSE_FORMERR, "additional record other than OPT");
        if (q->edns)
            FAIL(KAP_DNS_PARSE_FORMERR, "more than one OPT record");
        if (kap_dnswire_rr_read(pkt, len, &pos, &rr) != 0)
            FAIL(KAP_DNS_PARSE_FORMERR, "truncated OPT record");
        q->edns = 1;
        q->edns_udp = rr.rclass;
        q->edns_version = (uint8_t)((rr.ttl >> 16) & 0xff);
        q->edns_do = (rr.ttl & 0x8000) != 0;
        for (pos = rr.rdata, end = rr.rdata + rr.rdlen; pos < end; ) {
            size_t olen;
            if (pos + 4 > end)
                FAIL(KAP_DNS_PARSE_FORMERR, "malformed EDNS option");
            olen = rd16(pkt + pos + 2);
            pos += 4;
            if (pos + olen > end)
                FAIL(KAP_DNS_PARSE_FORMERR, "malformed EDNS option");
            pos += olen;
        }
    }
    if (pos != len)
        FAIL(KAP_DNS_PARSE_FORMERR, "trailing bytes after the query");
    if (q->edns && q->edns_version != 0)
        FAIL(KAP_DNS_PARSE_BADVERS, "unsupported EDNS version");
    return KAP_DNS_PARSE_OK;
}

const char *
kap_dns_type_name(uint16_t type, char *buf, size_t size)
{
    const ldns_rr_descriptor *d = ldns_rr_descript(type);

    if (type == 251)
        snprintf(buf, size, "IXFR");
    else if (type == 252)
        snprintf(buf, size, "AXFR");
    else if (type == 253)
        snprintf(buf, size, "MAILB");
    else if (type == 254)
        snprintf(buf, size, "MAILA");
    else if (type == 255)
        snprintf(buf, size, "ANY");
    else if (d != NULL && d->_name != NULL && type != 0)
        snprintf(buf, size, "%s", d->_name);
    else
        snprintf(buf, size, "TYPE%u", (unsigned)type);
    return buf;
}

static int
hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

int
kap_dns_ptr_addr(const char *name, struct sockaddr_storage *ss)
{
    size_t len = strlen(name);
    static const char v4[] = ".in-addr.arpa", v6[] = ".ip6.arpa";

    memset(ss, 0, sizeof(*ss));
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len > sizeof(v4) - 1
        && strncasecmp(name + len - (sizeof(v4) - 1), v4, sizeof(v4) - 1)
           == 0) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        unsigned char b[4];
        size_t n = len - (sizeof(v4) - 1), i = 0;
        int k;
        for (k = 3; k >= 0; k--) {
            unsigned v = 0, digits = 0;
            while (i < n && name[i] >= '0' && name[i] <= '9') {
                v = v * 10 + (unsigned)(name[i++] - '0');
                if (++digits > 3)
                    return 0;
            }
            if (digits == 0 || v > 255 || (digits > 1 && name[i - digits] == '0'))
                return 0;
            b[k] = (unsigned char)v;
            if (k > 0) {
                if (i >= n || name[i] != '.')
                    return 0;
                i++;
            }
        }
        if (i != n)
            return 0;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, b, 4);
        return 1;
    }
    if (len > sizeof(v6) - 1
        && strncasecmp(name + len - (sizeof(v6) - 1), v6, sizeof(v6) - 1)
           == 0) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        unsigned char b[16];
        size_t n = len - (sizeof(v6) - 1), i;
        int k;
        if (n != 63)
            return 0;
        memset(b, 0, sizeof(b));
        for (k = 0; k < 32; k++) {
            int h;
            i = (size_t)k * 2;
            h = hexval((unsigned char)name[i]);
            if (h < 0 || (k < 31 && name[i + 1] != '.'))
                return 0;
            /* nibble k counts from the least significant */
            b[15 - k / 2] |= (unsigned char)(k % 2 ? h << 4 : h);
        }
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, b, 16);
        return 1;
    }
    return 0;
}

/* Header + question (+ OPT) with the given counts; returns length or 0. */
static size_t
build_head(const struct kap_dns_query *q, int rcode, int tc,
           unsigned ancount, unsigned char *out, size_t cap,
           size_t *qend)
{
    struct kap_dnswire_hdr h;
    size_t pos = KAP_DNS_HDR_LEN;

    if (cap < KAP_DNS_HDR_LEN + KAP_DNS_NAME_MAX + 4)
        return 0;
    h.id = q->id;
    h.flags = (uint16_t)(KAP_DNSWIRE_F_QR | ((unsigned)q->opcode << 11)
                         | (q->flags & KAP_DNSWIRE_F_RD) | KAP_DNSWIRE_F_RA
                         | (q->flags & KAP_DNSWIRE_F_CD)
                         | ((unsigned)rcode & 0xfu)
                         | (tc ? KAP_DNSWIRE_F_TC : 0));
    h.qdcount = q->has_question ? 1 : 0;
    h.ancount = (uint16_t)ancount;
    h.nscount = 0;
    h.arcount = 0;
    kap_dnswire_hdr_write(out, &h);
    if (q->has_question)
        pos = kap_dnswire_question_write(out, cap, pos, q->qname,
                                         q->qname_len, q->qtype, q->qclass);
    *qend = pos;
    return pos;
}

/* Append our OPT record at pos (ARCOUNT += 1); returns new length or 0. */
static size_t
add_opt(const struct kap_dns_query *q, int rcode,
        unsigned edns_size, unsigned char *out, size_t pos,
        size_t cap)
{
    if (!q->edns)
        return pos;
    pos = kap_dnswire_opt_write(out, cap, pos,
                                edns_size < KAP_DNS_UDP_MIN ? KAP_DNS_UDP_MIN
                                                            : edns_size,
                                (unsigned)rcode, q->edns_do);
    if (pos != 0)
        wr16(out + 10, rd16(out + 10) + 1);
    return pos;
}

size_t
kap_dns_error_reply(const struct kap_dns_query *q, int rcode, int tc,
                    unsigned edns_size, unsigned char *out,
                    size_t cap)
{
    size_t pos, qend;

    pos = build_head(q, rcode, tc, 0, out, cap, &qend);
    if (pos == 0)
        return 0;
    /* extended rcodes need EDNS; without it say FORMERR (RFC 6891) */
    if (rcode > 15 && !q->edns)
        wr16(out + 2, (rd16(out + 2) & ~0xfu) | KAP_DNS_FORMERR);
    return add_opt(q, rcode, edns_size, out, pos, cap);
}

size_t
kap_dns_hinfo_reply(const struct kap_dns_query *q, unsigned edns_size,
                    unsigned char *out, size_t cap)
{
    static const unsigned char rdata[] = {
        7, 'R', 'F', 'C', '8', '4', '8', '2', 0
    };
    size_t pos, qend;

    pos = build_head(q, KAP_DNS_NOERROR, 0, 1, out, cap, &qend);
    if (pos == 0 || !q->has_question || pos + 12 + sizeof(rdata) > cap)
        return 0;
    wr16(out + pos, 0xc00c);                 /* the question name */
    wr16(out + pos + 2, KAP_DNSWIRE_T_HINFO);
    wr16(out + pos + 4, q->qclass);
    wr16(out + pos + 6, 0);
    wr16(out + pos + 8, 3600);
    wr16(out + pos + 10, sizeof(rdata));
    memcpy(out + pos + 12, rdata, sizeof(rdata));
    pos += 12 + sizeof(rdata);
    return add_opt(q, 0, edns_size, out, pos, cap);
}

/* -- answers -------------------------------------------------------------- */

static int
in_names(ldns_rdf *const *names, size_t n, const ldns_rdf *d)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (ldns_dname_compare(names[i], d) == 0)
            return 1;
    return 0;
}

static int
rr_addr(const ldns_rr *rr, struct sockaddr_storage *ss)
{
    const ldns_rdf *rd = ldns_rr_rdf(rr, 0);

    memset(ss, 0, sizeof(*ss));
    if (rd == NULL)
        return 0;
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_A && ldns_rdf_size(rd) == 4) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, ldns_rdf_data(rd), 4);
        return 1;
    }
    if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_AAAA && ldns_rdf_size(rd) == 16) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, ldns_rdf_data(rd), 16);
        return 1;
    }
    return 0;
}

#define CHAIN_MAX 16

/* Push a clone of rr into section sec of p; -1 on out of memory.  A TTL
 * with the top bit set is read as zero (RFC 2181 8). */
static int
push_clone(ldns_pkt *p, ldns_pkt_section sec, const ldns_rr *rr)
{
    ldns_rr *c = ldns_rr_clone(rr);

    if (c == NULL)
        return -1;
    if (ldns_rr_ttl(c) > 0x7fffffffu)
        ldns_rr_set_ttl(c, 0);
    if (!ldns_pkt_push_rr(p, sec, c)) {
        ldns_rr_free(c);
        return -1;
    }
    return 0;
}

int
kap_dns_answer_reply(const struct kap_dns_query *q,
                     const unsigned char *wire, size_t len,
                     struct kap_dns_answer_opts *o,
                     unsigned char **out, size_t *outlen)
{
    ldns_pkt *up = NULL, *rp = NULL;
    ldns_rdf *qn = NULL;
    ldns_rdf *names[CHAIN_MAX + 1];
    size_t nnames = 0, i, n;
    ldns_rr_list *ans, *auth;
    ldns_rr *qrr = NULL;
    unsigned char keep[512];
    uint8_t *buf = NULL;
    size_t size = 0;
    int rc = -1, rcode, progress, refused = 0;

    *out = NULL;
    *outlen = 0;
    o->removed = 0;
    o->why = NULL;
    o->truncated = 0;
    o->answers = 0;
    o->rcode = KAP_DNS_SERVFAIL;
    if (!q->has_question || wire == NULL)
        return -1;
    if (ldns_wire2pkt(&up, wire, len) != LDNS_STATUS_OK)
        return -1;

    /* the resolver must answer the question we asked */
    qn = ldns_dname_new_frm_data((uint16_t)q->qname_len, q->qname);
    if (qn == NULL)
        goto done;
    if (ldns_pkt_qdcount(up) != 1)
        goto done;
    {
        const ldns_rr *uq = ldns_rr_list_rr(ldns_pkt_question(up), 0);
        if (uq == NULL || ldns_dname_compare(ldns_rr_owner(uq), qn) != 0
            || ldns_rr_get_type(uq) != q->qtype
            || ldns_rr_get_class(uq) != q->qclass)
            goto done;
    }
    rcode = ldns_pkt_get_rcode(up);
    if (rcode != KAP_DNS_NOERROR && rcode != KAP_DNS_NXDOMAIN)
        rcode = KAP_DNS_SERVFAIL;

    rp = ldns_pkt_new();
    if (rp == NULL)
        goto done;
    ldns_pkt_set_id(rp, q->id);
    ldns_pkt_set_qr(rp, true);
    ldns_pkt_set_opcode(rp, LDNS_PACKET_QUERY);
    ldns_pkt_set_rd(rp, (q->flags & 0x0100) != 0);
    ldns_pkt_set_ra(rp, true);
    ldns_pkt_set_cd(rp, (q->flags & 0x0010) != 0);
    ldns_pkt_set_ad(rp, ((q->flags & 0x0020) || q->edns_do)
                        && ldns_pkt_ad(up));
    qrr = ldns_rr_new();
    if (qrr == NULL)
        goto done;
    ldns_rr_set_question(qrr, true);
    ldns_rr_set_owner(qrr, ldns_rdf_clone(qn));
    ldns_rr_set_type(qrr, (ldns_rr_type)q->qtype);
    ldns_rr_set_class(qrr, (ldns_rr_class)q->qclass);
    if (ldns_rr_owner(qrr) == NULL
        || !ldns_pkt_push_rr(rp, LDNS_SECTION_QUESTION, qrr)) {
        ldns_rr_free(qrr);
        goto done;
    }

    /* answer: records on the CNAME chain from the question name */
    ans = ldns_pkt_answer(up);
    n = ans != NULL ? ldns_rr_list_rr_count(ans) : 0;
    if (n > sizeof(keep))
        n = sizeof(keep);
    memset(keep, 0, sizeof(keep));
    names[nnames++] = qn;
    do {
        progress = 0;
        for (i = 0; i < n; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(ans, i);
            ldns_rr_type t = ldns_rr_get_type(rr);
            if (keep[i] || !in_names(names, nnames, ldns_rr_owner(rr)))
                continue;
            if (ldns_rr_get_class(rr) != q->qclass)
                continue;
            if (t == LDNS_RR_TYPE_CNAME && q->qtype != KAP_DNSWIRE_T_CNAME) {
                const ldns_rdf *tg = ldns_rr_rdf(rr, 0);
                if (tg == NULL || nnames >= CHAIN_MAX)
                    continue;
                keep[i] = 1;
                progress = 1;
                if (!in_names(names, nnames, tg))
                    names[nnames++] = (ldns_rdf *)tg;
            } else if (t == q->qtype
                       || (t == LDNS_RR_TYPE_RRSIG && q->edns_do)) {
                keep[i] = 1;
            }
        }
    } while (progress);
    for (i = 0; i < n; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ans, i);
        struct sockaddr_storage ss;
        if (keep[i] != 1)
            continue;
        if (o->deny != NULL && rr_addr(rr, &ss)) {
            const char *why = NULL;
            if (o->deny(o->deny_ctx, (const struct sockaddr *)&ss, &why)) {
                o->removed++;
                o->why = why;
                if (o->refuse)
                    refused = 1;
                continue;
            }
        }
        if (push_clone(rp, LDNS_SECTION_ANSWER, rr) != 0)
            goto done;
        o->answers++;
    }
    if (refused) {
        ldns_pkt_free(rp);
        rp = NULL;
        *out = malloc(KAP_DNS_HDR_LEN + KAP_DNS_NAME_MAX + 4 + 11);
        if (*out == NULL)
            goto done;
        *outlen = kap_dns_error_reply(q, KAP_DNS_REFUSED, 0, o->edns_size,
                                      *out,
                                      KAP_DNS_HDR_LEN + KAP_DNS_NAME_MAX
                                      + 4 + 11);
        o->rcode = KAP_DNS_REFUSED;
        o->answers = 0;
        rc = 0;
        goto done;
    }

    /* authority: negative-caching SOA (and its proofs when DO) */
    auth = ldns_pkt_authority(up);
    n = auth != NULL ? ldns_rr_list_rr_count(auth) : 0;
    for (i = 0; i < n && i < 64; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(auth, i);
        ldns_rr_type t = ldns_rr_get_type(rr);
        if (t == LDNS_RR_TYPE_SOA
            || (q->edns_do && (t == LDNS_RR_TYPE_RRSIG
                               || t == LDNS_RR_TYPE_NSEC
                               || t == LDNS_RR_TYPE_NSEC3)))
            if (push_clone(rp, LDNS_SECTION_AUTHORITY, rr) != 0)
                goto done;
    }
    ldns_pkt_set_rcode(rp, (uint8_t)rcode);
    if (q->edns) {
        ldns_pkt_set_edns_udp_size(rp, (uint16_t)(o->edns_size
                                                  < KAP_DNS_UDP_MIN
                                                  ? KAP_DNS_UDP_MIN
                                                  : o->edns_size));
        ldns_pkt_set_edns_do(rp, q->edns_do);
    }
    if (ldns_pkt2wire(&buf, rp, &size) != LDNS_STATUS_OK || buf == NULL)
        goto done;
    o->rcode = rcode;
    if (size > o->maxlen) {
        size_t cap = KAP_DNS_HDR_LEN + KAP_DNS_NAME_MAX + 4 + 11;
        free(buf);
        buf = malloc(cap);
        if (buf == NULL)
            goto done;
        size = kap_dns_error_reply(q, rcode, 1, o->edns_size, buf, cap);
        o->truncated = 1;
        o->answers = 0;
    }
    *out = buf;
    *outlen = size;
    buf = NULL;
    rc = 0;

done:
    free(buf);
    if (rp != NULL)
        ldns_pkt_free(rp);
    if (up != NULL)
        ldns_pkt_free(up);
    if (qn != NULL)
        ldns_rdf_deep_free(qn);
    return rc;
}

/* -- reply TTLs (for the answer cache) ------------------------------------ */

int
kap_dns_reply_ttls(const unsigned char *p, size_t len, uint16_t *offs,
                   size_t maxoffs, size_t *n, uint32_t *minttl)
{
    struct kap_dnswire_hdr h;
    struct kap_dnswire_rr rr;
    size_t pos = KAP_DNS_HDR_LEN, i, count;
    uint32_t min = UINT32_MAX;

    *n = 0;
    if (kap_dnswire_hdr_read(p, len, &h) != 0 || h.qdcount > 1)
        return -1;
    if (h.qdcount == 1
        && kap_dnswire_question_read(p, len, &pos, NULL, NULL) != 0)
        return -1;
    count = (size_t)h.ancount + h.nscount + h.arcount;
    for (i = 0; i < count; i++) {
        if (kap_dnswire_rr_read(p, len, &pos, &rr) != 0)
            return -1;
        if (rr.type != KAP_DNSWIRE_T_OPT) {
            if (*n >= maxoffs || rr.ttl_off > 65535)
                return -1;
            offs[(*n)++] = (uint16_t)rr.ttl_off;
            if (rr.ttl < min)
                min = rr.ttl;
        }
    }
    if (pos != len)
        return -1;
    *minttl = min;
    return 0;
}
