/*
 * kap_http_connect_first.h -- the TLS ClientHello inspector and the
 * client-first-bytes classifier of CONNECT tunnels (DESIGN §6).  Private to
 * the http_connect module: nothing else reads a client's first bytes.
 *
 * kapd does not terminate TLS.  Before it forwards a single client byte of
 * a CONNECT tunnel it reads the complete ClientHello -- reassembled over
 * several TLS records and TCP segments, up to HC_HELLO_MAX bytes --
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
#ifndef KAP_HTTP_CONNECT_FIRST_H
#define KAP_HTTP_CONNECT_FIRST_H

#include <stddef.h>

#include <kapd/kap_addr.h>

#define HC_HELLO_MAX 16384   /* longest ClientHello message accepted */
#define HC_HELLO_BUF_MAX   (HC_HELLO_MAX + 1024) /* its records, bytes */
#define HC_SSH_IDENT_MAX   255   /* RFC 4253: ident line incl. CRLF */

enum hc_hello_result {
    HC_HELLO_NEED_MORE = 0,  /* incomplete: read more (within the bound) */
    HC_HELLO_SNI,            /* complete, exactly one valid host_name */
    HC_HELLO_NO_SNI,         /* complete, no server_name extension */
    HC_HELLO_MULTI_SNI,      /* complete, several server names */
    HC_HELLO_ECH,            /* encrypted_client_hello (0xfe0d) or ESNI */
    HC_HELLO_NOT_TLS,        /* the first bytes are not a TLS handshake */
    HC_HELLO_MALFORMED,      /* TLS, but invalid (or an invalid SNI name) */
    HC_HELLO_TOO_BIG         /* no complete hello within the bounds */
};

struct hc_hello {
    char        sni[KAP_HOST_NAME_MAX + 2]; /* lower-case, NUL-terminated */
    size_t      sni_len;
    size_t      hello_len;  /* handshake message length (after complete) */
    size_t      records_len;/* bytes of the records that carried it */
    const char *error;      /* static text for NOT_TLS/MALFORMED/TOO_BIG */
};

/*
 * Inspect buf[0..len), the bytes the client sent so far.  Returns one of
 * enum hc_hello_result and fills h (h->sni only for HC_HELLO_SNI).
 */
int kap_http_connect_hello_parse(const unsigned char *buf, size_t len,
                        struct hc_hello *h);

/* Name of a result code ("sni", "no-sni", "multiple-sni", "ech", ...). */
const char *kap_http_connect_hello_result(int rc);

/* Client-first bytes ------------------------------------------------------ */

enum hc_first_kind {
    HC_FIRST_NEED_MORE = 0, /* cannot tell yet */
    HC_FIRST_TLS,           /* a TLS handshake record: use parse_hello */
    HC_FIRST_SSH,           /* a complete SSH-2.0 identification line */
    HC_FIRST_HTTP,          /* a complete, valid HTTP request head */
    HC_FIRST_OTHER          /* anything else (refuse) */
};

struct hc_first {
    int         kind;                      /* enum hc_first_kind */
    char        host[KAP_HOST_NAME_MAX + 2];/* HTTP: Host (lower-case, no port) */
    unsigned    port;                      /* HTTP: Host port, 0 if absent */
    const char *error;                     /* static text for OTHER */
};

/*
 * Classify the first bytes a client sent into a CONNECT tunnel.
 * Returns out->kind.  An HTTP request is only HC_FIRST_HTTP once its
 * whole head has arrived and is valid for kap_http_parse_request (and has
 * a Host); an SSH line once its CRLF has arrived.
 */
int kap_http_connect_first_classify(const unsigned char *buf, size_t len,
                       struct hc_first *out);

#endif /* KAP_HTTP_CONNECT_FIRST_H */
