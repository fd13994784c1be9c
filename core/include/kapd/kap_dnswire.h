/*
 * kap_dnswire.h -- DNS wire-format helpers (RFC 1035 section 4): header
 * fields, names (a compression-safe walk, presentation to wire form, a
 * case-insensitive compare), questions and resource records read in
 * place, and a header, a question and an OPT record written.
 *
 * The resolver's forward fast path (it asks upstreams and reads their
 * replies) and the dns module (it parses client queries, builds replies
 * and walks its cached answers) both use these, so that one walk over
 * untrusted bytes exists, not two with different bounds.
 *
 * All functions here are pure (no allocation, no global state, no kapd
 * state) and may be called from any callback.  Packets and output
 * buffers are the caller's and borrowed only for the call.  Every read is checked
 * against the packet length; a walk never follows a compression pointer
 * (it stops after it), so no packet can make one loop.  Offsets are from
 * the start of the packet (the first byte of the header).
 */
#ifndef KAP_DNSWIRE_H
#define KAP_DNSWIRE_H

#include <stddef.h>
#include <stdint.h>

#define KAP_DNSWIRE_HDR_LEN   12
#define KAP_DNSWIRE_NAME_MAX  255      /* wire form, root label included */
#define KAP_DNSWIRE_LABEL_MAX 63
#define KAP_DNSWIRE_OPT_LEN   11       /* an OPT record without options */

/* header flags (the 16-bit word after the ID) */
#define KAP_DNSWIRE_F_QR      0x8000u
#define KAP_DNSWIRE_F_TC      0x0200u
#define KAP_DNSWIRE_F_RD      0x0100u
#define KAP_DNSWIRE_F_RA      0x0080u
#define KAP_DNSWIRE_F_AD      0x0020u
#define KAP_DNSWIRE_F_CD      0x0010u
#define KAP_DNSWIRE_OPCODE(flags) (((unsigned)(flags) >> 11) & 0xfu)
#define KAP_DNSWIRE_RCODE(flags)  ((unsigned)(flags) & 0xfu)

/* record types and the class used here */
#define KAP_DNSWIRE_T_A       1
#define KAP_DNSWIRE_T_CNAME   5
#define KAP_DNSWIRE_T_SOA     6
#define KAP_DNSWIRE_T_PTR     12
#define KAP_DNSWIRE_T_HINFO   13
#define KAP_DNSWIRE_T_AAAA    28
#define KAP_DNSWIRE_T_DNAME   39
#define KAP_DNSWIRE_T_OPT     41
#define KAP_DNSWIRE_T_RRSIG   46
#define KAP_DNSWIRE_T_NSEC    47
#define KAP_DNSWIRE_T_NSEC3   50
#define KAP_DNSWIRE_T_ANY     255
#define KAP_DNSWIRE_C_IN      1

/* Big-endian fields at p (the caller has checked the bounds). */
#define KAP_DNSWIRE_GET16(p) \
    ((uint16_t)(((unsigned)((const unsigned char *)(p))[0] << 8) \
                | ((const unsigned char *)(p))[1]))
#define KAP_DNSWIRE_GET32(p) \
    (((uint32_t)((const unsigned char *)(p))[0] << 24) \
     | ((uint32_t)((const unsigned char *)(p))[1] << 16) \
     | ((uint32_t)((const unsigned char *)(p))[2] << 8) \
     | (uint32_t)((const unsigned char *)(p))[3])
#define KAP_DNSWIRE_PUT16(p, v) \
    do { \
        ((unsigned char *)(p))[0] = (unsigned char)((unsigned)(v) >> 8); \
        ((unsigned char *)(p))[1] = (unsigned char)(v); \
    } while (0)
#define KAP_DNSWIRE_PUT32(p, v) \
    do { \
        KAP_DNSWIRE_PUT16((p), (uint32_t)(v) >> 16); \
        KAP_DNSWIRE_PUT16((unsigned char *)(p) + 2, (uint32_t)(v) & 0xffffu); \
    } while (0)

/* The header, field by field. */
struct kap_dnswire_hdr {
    uint16_t id;
    uint16_t flags;                   /* QR, opcode, AA TC RD RA Z AD CD, rcode */
    uint16_t qdcount;
    uint16_t ancount;
    uint16_t nscount;
    uint16_t arcount;
};

/* One resource record as kap_dnswire_rr_read() found it: offsets into
 * the packet, nothing copied. */
struct kap_dnswire_rr {
    size_t   owner;                   /* offset of its owner name */
    uint16_t type;
    uint16_t rclass;
    uint32_t ttl;
    size_t   ttl_off;                 /* offset of the TTL field */
    uint16_t rdlen;
    size_t   rdata;                   /* offset of the RDATA */
};

/*
 * The header of the len bytes at p into *h.  Returns 0, or -1 when len
 * is shorter than a header (then *h is untouched).
 */
int kap_dnswire_hdr_read(const unsigned char *p, size_t len,
                         struct kap_dnswire_hdr *h);

/* h as the 12 bytes at out (the caller provides them). */
void kap_dnswire_hdr_write(unsigned char *out,
                           const struct kap_dnswire_hdr *h);

/*
 * Walk the name at *pos: its labels up to the root label, or up to a
 * compression pointer (which ends the name here and is not followed).
 * On 0, *pos is the offset just after the name.  Returns -1 (and leaves
 * *pos) when the name runs past len, uses a reserved label type (0x40,
 * 0x80) or is longer than KAP_DNSWIRE_NAME_MAX before the pointer.
 */
int kap_dnswire_name_skip(const unsigned char *p, size_t len, size_t *pos);

/*
 * The presentation name (len bytes of name, no trailing dot, no escapes:
 * a backslash is an ordinary byte here) in wire form into out (cap
 * bytes).  Returns the wire length (root label included), or 0 when a
 * label is empty or longer than 63, or the result does not fit in cap
 * or in KAP_DNSWIRE_NAME_MAX.
 */
size_t kap_dnswire_name_from_text(const char *name, size_t len,
                                  unsigned char *out, size_t cap);

/*
 * 1 when the n bytes at a and b are the same uncompressed wire name with
 * ASCII letters compared case-insensitively (RFC 4343), else 0.
 */
int kap_dnswire_name_eq(const unsigned char *a, const unsigned char *b,
                        size_t n);

/*
 * The question at *pos: its name walked (kap_dnswire_name_skip), its type
 * and class into *qtype and *qclass (either may be NULL).  On 0, *pos is
 * just after it; -1 when it is malformed or truncated.
 */
int kap_dnswire_question_read(const unsigned char *p, size_t len,
                              size_t *pos, uint16_t *qtype,
                              uint16_t *qclass);

/*
 * The resource record at *pos into *rr: owner walked, type, class, TTL,
 * RDATA bounds.  On 0, *pos is just after its RDATA, which lies inside
 * len.  Returns -1 when it is malformed or truncated.
 */
int kap_dnswire_rr_read(const unsigned char *p, size_t len, size_t *pos,
                        struct kap_dnswire_rr *rr);

/*
 * Write a question (qname: qlen bytes of wire form, copied as given;
 * qtype, qclass) at offset pos of out (cap bytes).  Returns the offset
 * after it, or 0 when it does not fit.  Counts are the caller's.
 */
size_t kap_dnswire_question_write(unsigned char *out, size_t cap,
                                  size_t pos, const unsigned char *qname,
                                  size_t qlen, unsigned qtype,
                                  unsigned qclass);

/*
 * Write an OPT record (RFC 6891: root owner, no options) at offset pos of
 * out (cap bytes): UDP payload size udp_size, the upper 8 bits of a
 * 12-bit rcode (rcode >> 4), version 0, the DO flag when dnssec_ok.
 * Returns the offset after it, or 0 when it does not fit.  ARCOUNT is the
 * caller's.
 */
size_t kap_dnswire_opt_write(unsigned char *out, size_t cap, size_t pos,
                             unsigned udp_size, unsigned rcode,
                             int dnssec_ok);

#endif /* KAP_DNSWIRE_H */
