/*
 * kap_shim_cli_reply.h -- decode kapd's answer to a cli call, for the
 * kap-shim shim role (docs/cli-protocol.md): the response head, a
 * chunked body, and in it the frames of a proxy-mode call (0x01 stdout,
 * 0x02 stderr, 'x' the exit status); or after a 101 (streamed stdin) the
 * same frames raw, the exit frame ending the answer.  A pure state machine on bytes from
 * the network: no I/O, no global state, bounded memory, so that
 * fuzz/fuzz_shim_cli_reply.c can drive it.  libc only.
 */
#ifndef KAP_SHIM_CLI_REPLY_H
#define KAP_SHIM_CLI_REPLY_H

#include <stddef.h>

#define KAP_CLI_REPLY_HEAD_MAX  16384          /* response head bytes */
#define KAP_CLI_REPLY_BODY_MAX  (1024 * 1024)  /* a JSON body kept */

/* Called with the bytes of one stdout (1) or stderr (2) frame piece.
   Returns 0, or -1 to stop (feed then returns -1). */
typedef int (*kap_cli_reply_out_fn)(int stream, const char *p, size_t n,
                                    void *data);

struct kap_cli_reply {
    /* results */
    int        status;        /* HTTP status, once the head is read */
    int        framed;        /* Content-Type application/x-kap-cli,
                                 or a 101 to kap-cli */
    int        upgraded;      /* 101 Switching Protocols (Upgrade:
                                 kap-cli): raw frames until the exit
                                 frame, stdin may be sent */
    int        done;          /* the response has ended */
    int        have_exit;     /* the 'x' frame was read */
    int        exit_code;     /* from it: 0..255 */
    char       why[32];       /* from it: "exited", "signal", ... */
    char      *body;          /* an unframed body (JSON), NUL-terminated;
                                 owned: free with kap_cli_reply_free */
    size_t     body_len;
    const char *error;        /* static text when feed returned -1 */
    /* state */
    int        st;
    int        chunked;
    long long  clen;          /* Content-Length, or -1 */
    char       head[KAP_CLI_REPLY_HEAD_MAX];
    size_t     hlen;
    char       line[80];      /* a chunk-size line */
    size_t     llen;
    unsigned long long chunk_left;
    unsigned char fh[5];      /* a frame header */
    size_t     fhlen;
    size_t     frame_left;
    char       xb[64];        /* the 'x' frame */
    size_t     xlen;
    size_t     body_cap;
    long long  plain_seen;    /* body bytes of an unchunked answer */
};

void kap_cli_reply_init(struct kap_cli_reply *r);
void kap_cli_reply_free(struct kap_cli_reply *r);

/*
 * Feed n bytes read from the connection (n == 0: the peer closed).
 * Returns 0 (go on; r->done when the response is complete), or -1 with
 * r->error (malformed, too large, cut short, or out stopped).
 */
int kap_cli_reply_feed(struct kap_cli_reply *r, const char *p, size_t n,
                       kap_cli_reply_out_fn out, void *data);

#endif
