/*
 * kap_tls.h -- the TLS ClientHello inspector and the client-first-bytes
 * classifier used by CONNECT (DESIGN §6).
 *
 * kapd does not terminate TLS.  Before it forwards a single client byte of
 * a CONNECT tunnel it reads the complete ClientHello -- reassembled over
 * several TLS records and TCP segments, up to KAP_TLS_HELLO_MAX bytes --
 * and extracts the server name, so that the tunnel can be refused when the
 * SNI is missing, names several hosts, is hidden by ECH/ESNI, or is not the
 * CONNECT host.  Non-TLS client-first protocols are classified too: an SSH
 * identification line (RFC 4253 §4.2) or a plain HTTP request (whose Host
 * the caller compares with the CONNECT host).
 *
 * Both functions are pure and stateless: the caller accumulates received
 * bytes in one buffer and calls again with the whole buffer after each
 * read.  Nothing is allocated; results are copied into the caller's struct.
 */
#ifndef KAP_TLS_H
#define KAP_TLS_H

#include <stddef.h>

#define KAP_TLS_HELLO_MAX 16384   /* longest ClientHello message accepted */
#define KAP_TLS_BUF_MAX   (KAP_TLS_HELLO_MAX + 1024) /* its records, bytes */
#define KAP_TLS_NAME_MAX    253   /* longest host name */
#define KAP_SSH_IDENT_MAX   255   /* RFC 4253: ident line incl. CRLF */

enum kap_tls_result {
    KAP_TLS_NEED_MORE = 0,  /* incomplete: read more (within the bound) */
    KAP_TLS_SNI,            /* complete, exactly one valid host_name */
    KAP_TLS_NO_SNI,         /* complete, no server_name extension */
    KAP_TLS_MULTI_SNI,      /* complete, several server names */
    KAP_TLS_ECH,            /* encrypted_client_hello (0xfe0d) or ESNI */
    KAP_TLS_NOT_TLS,        /* the first bytes are not a TLS handshake */
    KAP_TLS_MALFORMED,      /* TLS, but invalid (or an invalid SNI name) */
    KAP_TLS_TOO_BIG         /* no complete hello within the bounds */
};

struct kap_tls_hello {
    char        sni[KAP_TLS_NAME_MAX + 2]; /* lower-case, NUL-terminated */
    size_t      sni_len;
    size_t      hello_len;  /* handshake message length (after complete) */
    size_t      records_len;/* bytes of the records that carried it */
    const char *error;      /* static text for NOT_TLS/MALFORMED/TOO_BIG */
};

/*
 * Inspect buf[0..len), the bytes the client sent so far.  Returns one of
 * enum kap_tls_result and fills h (h->sni only for KAP_TLS_SNI).
 */
int kap_tls_parse_hello(const unsigned char *buf, size_t len,
                        struct kap_tls_hello *h);

/* Name of a result code ("sni", "no-sni", "multiple-sni", "ech", ...). */
const char *kap_tls_result_name(int rc);

/*
 * Non-zero when s is a valid DNS host name for SNI: letters, digits and
 * '-' (not at either end of a label), labels 1..63, total <= 253, at most
 * one trailing dot.
 */
int kap_tls_valid_hostname(const char *s, size_t n);

/*
 * Compare two host names ASCII case-insensitively, ignoring one trailing
 * dot on either side.  Non-zero when equal.
 */
int kap_tls_host_eq(const char *a, const char *b);

/* Client-first bytes ------------------------------------------------------ */

enum kap_first_kind {
    KAP_FIRST_NEED_MORE = 0, /* cannot tell yet */
    KAP_FIRST_TLS,           /* a TLS handshake record: use parse_hello */
    KAP_FIRST_SSH,           /* a complete SSH-2.0 identification line */
    KAP_FIRST_HTTP,          /* a complete, valid HTTP request head */
    KAP_FIRST_OTHER          /* anything else (refuse) */
};

struct kap_first {
    int         kind;                      /* enum kap_first_kind */
    char        host[KAP_TLS_NAME_MAX + 2];/* HTTP: Host (lower-case, no port) */
    unsigned    port;                      /* HTTP: Host port, 0 if absent */
    const char *error;                     /* static text for OTHER */
};

/*
 * Classify the first bytes a client sent into a CONNECT tunnel.
 * Returns out->kind.  An HTTP request is only KAP_FIRST_HTTP once its
 * whole head has arrived and is valid for kap_http_parse_request (and has
 * a Host); an SSH line once its CRLF has arrived.
 */
int kap_first_classify(const unsigned char *buf, size_t len,
                       struct kap_first *out);

#endif /* KAP_TLS_H */
