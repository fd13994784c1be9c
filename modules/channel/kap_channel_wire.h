/*
 * kap_channel_wire.h -- the messages of the sidecar <-> host channel
 * (docs/channel-protocol.md): one strict JSON object per line, parsed
 * with kap_json (duplicate keys, bad UTF-8, trailing bytes refused) and
 * written with its writer.  Pure functions: no sockets, no state; the
 * fuzz target fuzz/fuzz_channel.c drives kap_channel_msg_parse().
 */
#ifndef KAP_CHANNEL_WIRE_H
#define KAP_CHANNEL_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>

#define CH_VERSION     1
#define CH_LINE_MAX    65536          /* one message, newline excluded */
#define CH_NONCE_LEN   32             /* bytes; sent as 64 hex digits */
#define CH_HEX_LEN     (2 * CH_NONCE_LEN)
#define CH_NAME_MAX    128            /* a capsule's name */
#define CH_PATH_MAX    4000           /* hello's policy file path */

enum ch_type {
    CH_NONE = 0,
    CH_HELLO,       /* capsule -> host: name, nonce, v */
    CH_CHALLENGE,   /* host -> capsule: nonce, proof (the host knows k) */
    CH_AUTH,        /* capsule -> host: proof (the capsule knows k) */
    CH_READY,       /* host -> capsule: authenticated */
    CH_ERROR,       /* either way, then close: message */
    CH_ASK,         /* capsule -> host: a question waiting for a human */
    CH_ANSWER,      /* host -> capsule: its answer */
    CH_AUDIT        /* capsule -> host: one audit event */
};

/* A parsed message.  Strings point into root (freed by kap_channel_msg_free). */
struct ch_msg {
    enum ch_type            type;
    const char             *name, *nonce, *proof, *message;
    const char             *policy;        /* hello: the capsule's policy
                                              file, absolute, or NULL */
    long long               v;
    uint64_t                id;             /* ask, answer */
    const char             *kind, *subject, *detail, *client;
    const char             *server, *rule, *suggest; /* ask: optional */
    long long               port;
    int                     allow, always;  /* answer */
    const char             *reason, *by;    /* answer */
    const struct kap_json  *event;          /* audit: an object */
    struct kap_json        *root;
};

/*
 * Parse one line (without its newline) into m.  KAP_OK, or KAP_ERROR with
 * err set (m is then empty): not strict JSON, not an object, an unknown
 * "type", a missing or mistyped field, a nonce or proof that is not
 * CH_HEX_LEN hex digits, a name longer than CH_NAME_MAX.  Free m with
 * kap_channel_msg_free() either way.
 */
int kap_channel_msg_parse(const char *line, size_t len, struct ch_msg *m,
                 struct kap_err *err);
void kap_channel_msg_free(struct ch_msg *m);

/*
 * Builders: append one message and its newline to out.  Strings are
 * borrowed.  KAP_OK or KAP_ERROR (out of memory; out may hold part of
 * the line then: callers drop the connection).
 */
int kap_channel_put_hello(struct kap_buf *out, const char *name, const char *nonce,
                          const char *policy);
int kap_channel_put_challenge(struct kap_buf *out, const char *nonce,
                     const char *proof);
int kap_channel_put_auth(struct kap_buf *out, const char *proof);
int kap_channel_put_ready(struct kap_buf *out);
int kap_channel_put_error(struct kap_buf *out, const char *message);
/* what an ask may carry besides its subject (each NULL: left out): the
   mcp server of an mcp_call, the rule that asked, and the rule that would
   allow exactly this call (cli: what kap cli test prints) */
struct ch_ask_attrs {
    const char *server, *rule, *suggest;
};
int kap_channel_put_ask(struct kap_buf *out, uint64_t id, const char *kind,
               const char *subject, unsigned port, const char *detail,
               const char *client, const struct ch_ask_attrs *at);
int kap_channel_put_answer(struct kap_buf *out, uint64_t id, int allow, int always,
                  const char *reason, const char *by);
int kap_channel_put_audit(struct kap_buf *out, const struct kap_audit_event *ev);

/* n random bytes as 2n lowercase hex digits + NUL into hex.  KAP_OK or
 * KAP_ERROR (no randomness). */
int kap_channel_nonce(char hex[CH_HEX_LEN + 1]);

/* hex of n bytes into out (2n + 1 bytes) */
void kap_channel_hex(const unsigned char *p, size_t n, char *out);

/* Request kind bit of a kind name ("connect"), or 0. */
uint32_t kap_channel_kind_bit(const char *name);

#endif /* KAP_CHANNEL_WIRE_H */
