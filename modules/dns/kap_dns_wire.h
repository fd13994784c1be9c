/*
 * kap_dns_wire.h -- the dns module's wire layer: strict query parsing,
 * error replies and answer rebuilding.  Pure functions without any kapd
 * state, so the unit test and the fuzzer link them alone (with ldns and
 * the core's wire helpers, kap_dnswire.h, which the resolver's forward
 * fast path uses too).
 */
#ifndef KAP_DNS_WIRE_H
#define KAP_DNS_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <kapd/kap_dnswire.h>

#define KAP_DNS_HDR_LEN      KAP_DNSWIRE_HDR_LEN
#define KAP_DNS_NAME_MAX     KAP_DNSWIRE_NAME_MAX
#define KAP_DNS_TEXT_MAX     (KAP_DNS_NAME_MAX * 4 + 1)
#define KAP_DNS_UDP_MIN      512

/* RCODEs used here */
#define KAP_DNS_NOERROR      0
#define KAP_DNS_FORMERR      1
#define KAP_DNS_SERVFAIL     2
#define KAP_DNS_NXDOMAIN     3
#define KAP_DNS_NOTIMP       4
#define KAP_DNS_REFUSED      5
#define KAP_DNS_BADVERS      16         /* extended: needs EDNS */

/* Outcome of kap_dns_parse_query(). */
enum kap_dns_parse {
    KAP_DNS_PARSE_OK = 0,   /* a well-formed query */
    KAP_DNS_PARSE_DROP,     /* no reply at all: header unreadable, or QR set */
    KAP_DNS_PARSE_FORMERR,  /* reply FORMERR */
    KAP_DNS_PARSE_NOTIMP,   /* reply NOTIMP (opcode other than QUERY) */
    KAP_DNS_PARSE_BADVERS   /* reply BADVERS (EDNS version other than 0) */
};

/* A parsed query.  Everything is copied out of the packet. */
struct kap_dns_query {
    uint16_t      id;
    uint16_t      flags;             /* header flags word as received */
    int           opcode;
    int           has_question;      /* question parsed (echo it in replies) */
    unsigned char qname[KAP_DNS_NAME_MAX]; /* wire form, case as asked */
    size_t        qname_len;
    uint16_t      qtype;
    uint16_t      qclass;
    int           nlabels;
    char          name[KAP_DNS_TEXT_MAX];  /* presentation, no trailing
                                             dot, "." for the root,
                                             \DDD escapes, case as asked */
    int           name_ok;           /* every label is letters, digits,
                                        '-' or '_' and the name is not root */
    int           edns;              /* an OPT record was present */
    uint16_t      edns_udp;          /* its UDP payload size */
    uint8_t       edns_version;
    int           edns_do;           /* DNSSEC OK bit */
};

/*
 * Parse and validate one query (UDP payload or one TCP frame without its
 * length prefix).  Rules: header of 12 bytes (else DROP); QR clear (else
 * DROP); opcode QUERY (else NOTIMP); QDCOUNT 1, ANCOUNT 0, NSCOUNT 0;
 * question name without compression, labels <= 63, name <= 255; at most
 * one additional record, which must be an OPT with the root name and
 * well-formed options (version 0, else BADVERS); no trailing bytes.
 * q is always filled as far as parsing got (id, flags; question when
 * has_question).  *why (may be NULL) gets a static reason on failure.
 */
enum kap_dns_parse kap_dns_parse_query(const unsigned char *pkt, size_t len,
                                       struct kap_dns_query *q,
                                       const char **why);

/* Name of a type ("A", "TYPE65432") into buf (>= 16 bytes).  Returns buf. */
const char *kap_dns_type_name(uint16_t type, char *buf, size_t size);

/*
 * Reverse-lookup names: if name (presentation) is a complete
 * d.c.b.a.in-addr.arpa or 32-nibble ip6.arpa name, write the address to
 * *ss (port 0) and return 1; else 0.
 */
int kap_dns_ptr_addr(const char *name, struct sockaddr_storage *ss);

/*
 * Build a reply without records: header (client's ID, opcode, RD and CD;
 * QR and RA set; rcode; TC when tc), the question when q->has_question,
 * and an OPT record advertising edns_size when the client sent EDNS (an
 * extended rcode such as BADVERS is carried in it).  Returns the length
 * written to out, or 0 when cap is too small (cap >= 512 always fits).
 */
size_t kap_dns_error_reply(const struct kap_dns_query *q, int rcode, int tc,
                           unsigned edns_size, unsigned char *out,
                           size_t cap);

/*
 * Address check used while rebuilding answers: return 0 when the address
 * may be given to the client, non-zero (and *why) when it must not.
 */
typedef int (*kap_dns_addr_deny_fn)(void *ctx, const struct sockaddr *sa,
                                    const char **why);

struct kap_dns_answer_opts {
    size_t               maxlen;      /* reply size limit (UDP) or 65535 */
    unsigned             edns_size;   /* advertised in our OPT */
    kap_dns_addr_deny_fn deny;        /* NULL: no address check */
    void                *deny_ctx;
    int                  refuse;      /* a denied address refuses the reply */
    /* out */
    unsigned             removed;     /* addresses removed by deny */
    const char          *why;         /* reason of the last removal */
    int                  rcode;       /* rcode of the reply built */
    int                  truncated;   /* TC was set */
    unsigned             answers;     /* answer records in the reply */
};

/*
 * Rebuild a reply for q from the resolver's answer packet (wire, len):
 * the client's ID, flags and question exactly as asked (case preserved);
 * answer records on the CNAME chain from the question name only (the
 * question's type, CNAME, DNAME, RRSIG when DO was set), with addresses
 * passed through o->deny; SOA (and DNSSEC records when DO) from the
 * authority section; no additional records but our OPT.  An answer whose
 * question differs from q is rejected.  When the reply exceeds o->maxlen,
 * it is replaced by an empty one with TC set.  Returns 0 and *out
 * (malloc'd, the caller frees it) with *outlen, or -1 (SERVFAIL it).
 */
int kap_dns_answer_reply(const struct kap_dns_query *q,
                         const unsigned char *wire, size_t len,
                         struct kap_dns_answer_opts *o,
                         unsigned char **out, size_t *outlen);

/*
 * RFC 8482 minimal reply to an ANY query: one synthesised HINFO record
 * "RFC8482" "" with TTL 3600 for the question name.  Returns its length
 * or 0 if cap is too small.
 */
size_t kap_dns_hinfo_reply(const struct kap_dns_query *q, unsigned edns_size,
                           unsigned char *out, size_t cap);

/*
 * Walk a reply built by this layer: the offsets of the TTL fields of its
 * records (OPT excluded) into offs (at most maxoffs; *n set) and the
 * smallest TTL into *minttl (UINT32_MAX when there is no record).
 * Returns 0, or -1 when the packet is malformed or has too many records.
 */
int kap_dns_reply_ttls(const unsigned char *p, size_t len, uint16_t *offs,
                       size_t maxoffs, size_t *n, uint32_t *minttl);

#endif /* KAP_DNS_WIRE_H */
