/*
 * kap_shim_connect_reply.h -- parse an HTTP proxy's answer to CONNECT
 * (the response head), for kap-shim connect.  A pure function on bytes
 * that came from the network: no I/O, no allocation, no global state, so
 * that fuzz/fuzz_connect_reply.c can call it directly.
 */
#ifndef KAP_SHIM_CONNECT_REPLY_H
#define KAP_SHIM_CONNECT_REPLY_H

#include <stddef.h>

#define KAP_CONNECT_REASON_MAX 128   /* reason phrase kept (truncated) */

struct kap_connect_reply {
    int       status;                /* 100..599 */
    int       minor;                 /* HTTP/1.<minor> (0 or 1) */
    size_t    head_len;              /* bytes up to and incl. the blank line */
    long long content_length;        /* -1: no Content-Length header */
    char      reason[KAP_CONNECT_REASON_MAX];  /* printable ASCII only */
    const char *error;               /* why the head is malformed (rc -1) */
};

/*
 * Parse the response head at the start of buf[0..len).
 * Returns 1 when a whole head is there (r filled; bytes after
 * r->head_len belong to what follows: the tunnel, or a body), 0 when
 * more bytes are needed (every line so far is well formed), -1 when it
 * is malformed (r->error says why).  Lines end in CRLF or a bare LF.
 * Only complete lines are judged, so a prefix of a valid head never
 * gives -1.  The caller bounds the head's size.
 */
int kap_connect_reply_parse(const char *buf, size_t len,
                            struct kap_connect_reply *r);

#endif
