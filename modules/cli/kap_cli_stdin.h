/*
 * kap_cli_stdin.h -- the decoder of a streamed call's stdin frames
 * (docs/cli-protocol.md, "Streamed stdin"): after kapd's 101 the shim
 * sends frames of id 0x00, a 4-byte big-endian length and that many
 * bytes of the tool's stdin; a frame of length 0 is the EOF, and nothing
 * may follow it.  A pure state machine on bytes from the network: no
 * I/O, no allocation, no global state (fuzz/fuzz_cli_stdin.c drives it).
 */
#ifndef KAP_CLI_STDIN_H
#define KAP_CLI_STDIN_H

#include <stddef.h>

#define KAP_CLI_STDIN_FRAME_MAX (1024 * 1024)   /* bytes in one frame */

struct kap_cli_stdin_dec {
    unsigned char h[5];        /* a frame header being read */
    size_t        hlen;
    size_t        left;        /* payload bytes of the current frame */
    int           eof;         /* the EOF frame was read */
    const char   *error;       /* static text once feed failed */
};

/*
 * Called with each piece of stdin (p borrowed for the call), and once
 * with p NULL and n 0 at the EOF frame.  Returns 0, or -1 to stop (feed
 * then fails with "stopped").
 */
typedef int (*kap_cli_stdin_fn)(const char *p, size_t n, void *data);

void kap_cli_stdin_init(struct kap_cli_stdin_dec *d);

/*
 * Feed n bytes from the connection.  0, or -1 with d->error (an unknown
 * frame id, a frame over KAP_CLI_STDIN_FRAME_MAX, bytes after the EOF
 * frame, fn stopped); after -1 every feed fails.
 */
int kap_cli_stdin_feed(struct kap_cli_stdin_dec *d, const char *p, size_t n,
                       kap_cli_stdin_fn fn, void *data);

#endif /* KAP_CLI_STDIN_H */
