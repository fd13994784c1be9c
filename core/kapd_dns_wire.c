/*
 * kapd_dns_wire.c -- the DNS wire-format helpers of kap_dnswire.h: one
 * header reader and writer, one compression-safe name walk, one question
 * and resource-record reader, and the question and OPT writers, for the
 * resolver's forward fast path and the dns module alike.  Pure: no kapd
 * state, so the unit test and the fuzzer link this file alone.
 */
#include <string.h>

#include <kapd/kap_dnswire.h>

int
kap_dnswire_hdr_read(const unsigned char *p, size_t len,
                     struct kap_dnswire_hdr *h)
{
    if (p == NULL || len < KAP_DNSWIRE_HDR_LEN)
        return -1;
    h->id = KAP_DNSWIRE_GET16(p);
    h->flags = KAP_DNSWIRE_GET16(p + 2);
    h->qdcount = KAP_DNSWIRE_GET16(p + 4);
    h->ancount = KAP_DNSWIRE_GET16(p + 6);
    h->nscount = KAP_DNSWIRE_GET16(p + 8);
    h->arcount = KAP_DNSWIRE_GET16(p + 10);
    return 0;
}

void
kap_dnswire_hdr_write(unsigned char *out, const struct kap_dnswire_hdr *h)
{
    KAP_DNSWIRE_PUT16(out, h->id);
    KAP_DNSWIRE_PUT16(out + 2, h->flags);
    KAP_DNSWIRE_PUT16(out + 4, h->qdcount);
    KAP_DNSWIRE_PUT16(out + 6, h->ancount);
    KAP_DNSWIRE_PUT16(out + 8, h->nscount);
    KAP_DNSWIRE_PUT16(out + 10, h->arcount);
}

int
kap_dnswire_name_skip(const unsigned char *p, size_t len, size_t *pos)
{
    size_t i = *pos, n = 0;

    while (i < len) {
        unsigned l = p[i];
        if ((l & 0xc0) == 0xc0) {        /* pointer: the name ends here */
            if (i + 2 > len)
                return -1;
            *pos = i + 2;
            return 0;
        }
        if (l & 0xc0)                    /* 0x40, 0x80: reserved types */
            return -1;
        n += 1 + (size_t)l;
        if (n > KAP_DNSWIRE_NAME_MAX)
            return -1;
        i += 1 + (size_t)l;
        if (l == 0) {
            *pos = i;
            return 0;
        }
    }
    return -1;
}

size_t
kap_dnswire_name_from_text(const char *name, size_t len,
                           unsigned char *out, size_t cap)
{
    size_t i = 0, o = 0;

    if (cap > KAP_DNSWIRE_NAME_MAX)
        cap = KAP_DNSWIRE_NAME_MAX;
    while (i < len) {
        const char *dot = memchr(name + i, '.', len - i);
        size_t l = dot != NULL ? (size_t)(dot - (name + i)) : len - i;
        if (l == 0 || l > KAP_DNSWIRE_LABEL_MAX || o + 1 + l + 1 > cap)
            return 0;
        out[o++] = (unsigned char)l;
        memcpy(out + o, name + i, l);
        o += l;
        i += l + 1;
        if (dot != NULL && i == len)     /* "a." : an empty last label */
            return 0;
    }
    if (o == 0)
        return 0;
    out[o++] = 0;
    return o;
}

int
kap_dnswire_name_eq(const unsigned char *a, const unsigned char *b,
                    size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        unsigned char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z')
            y = (unsigned char)(y + 32);
        if (x != y)
            return 0;
    }
    return 1;
}

int
kap_dnswire_question_read(const unsigned char *p, size_t len, size_t *pos,
                          uint16_t *qtype, uint16_t *qclass)
{
    size_t o = *pos;

    if (kap_dnswire_name_skip(p, len, &o) != 0 || o + 4 > len)
        return -1;
    if (qtype != NULL)
        *qtype = KAP_DNSWIRE_GET16(p + o);
    if (qclass != NULL)
        *qclass = KAP_DNSWIRE_GET16(p + o + 2);
    *pos = o + 4;
    return 0;
}

int
kap_dnswire_rr_read(const unsigned char *p, size_t len, size_t *pos,
                    struct kap_dnswire_rr *rr)
{
    size_t o = *pos;

    if (kap_dnswire_name_skip(p, len, &o) != 0 || o + 10 > len)
        return -1;
    rr->owner = *pos;
    rr->type = KAP_DNSWIRE_GET16(p + o);
    rr->rclass = KAP_DNSWIRE_GET16(p + o + 2);
    rr->ttl_off = o + 4;
    rr->ttl = KAP_DNSWIRE_GET32(p + o + 4);
    rr->rdlen = KAP_DNSWIRE_GET16(p + o + 8);
    rr->rdata = o + 10;
    if (rr->rdlen > len - rr->rdata)
        return -1;
    *pos = rr->rdata + rr->rdlen;
    return 0;
}

size_t
kap_dnswire_question_write(unsigned char *out, size_t cap, size_t pos,
                           const unsigned char *qname, size_t qlen,
                           unsigned qtype, unsigned qclass)
{
    if (pos > cap || qlen + 4 > cap - pos)
        return 0;
    memcpy(out + pos, qname, qlen);
    pos += qlen;
    KAP_DNSWIRE_PUT16(out + pos, qtype);
    KAP_DNSWIRE_PUT16(out + pos + 2, qclass);
    return pos + 4;
}

size_t
kap_dnswire_opt_write(unsigned char *out, size_t cap, size_t pos,
                      unsigned udp_size, unsigned rcode, int dnssec_ok)
{
    if (pos > cap || KAP_DNSWIRE_OPT_LEN > cap - pos)
        return 0;
    out[pos] = 0;                                  /* root owner */
    KAP_DNSWIRE_PUT16(out + pos + 1, KAP_DNSWIRE_T_OPT);
    KAP_DNSWIRE_PUT16(out + pos + 3, udp_size);    /* class: payload size */
    out[pos + 5] = (unsigned char)(rcode >> 4);    /* extended rcode */
    out[pos + 6] = 0;                              /* version */
    out[pos + 7] = dnssec_ok ? 0x80 : 0;           /* DO */
    out[pos + 8] = 0;
    KAP_DNSWIRE_PUT16(out + pos + 9, 0);           /* no options */
    return pos + KAP_DNSWIRE_OPT_LEN;
}
