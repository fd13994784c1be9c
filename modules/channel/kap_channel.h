/*
 * kap_channel.h -- the channel module's shared declarations (internal).
 *
 * One module, two roles (docs/channel-protocol.md):
 *   capsule side ("connect"): a policy hook placed after `network` sends
 *     the questions no rule answers to the host and waits for the answer
 *     (KAP_AGAIN), failing closed on timeout or a lost channel; an audit
 *     hook streams every audit event to the host (kap_channel_client.c);
 *   host side ("listen"): authenticates capsules by their shared secret,
 *     asks each forwarded question on its own policy chain (where a human,
 *     the phone UI, or the test module answers) and re-emits the
 *     capsule's audit events into its own audit chain
 *     (kap_channel_server.c).
 */
#ifndef KAP_CHANNEL_H
#define KAP_CHANNEL_H

#include <kapd/kap_core.h>
#include <kapd/kap_secret.h>

#define CH_NAME "channel"

enum ch_role { CH_ROLE_NONE = 0, CH_ROLE_CAPSULE, CH_ROLE_HOST };

struct ch_capsule {
    const char        *name;
    const char        *secret_file;
    struct kap_secret *secret;          /* loaded in init */
};

struct ch_conf {
    int                 role;           /* enum ch_role */
    /* capsule side */
    const char         *connect;        /* "unix:/path" or "addr:port" */
    const char         *name;
    const char         *secret_file;
    struct kap_secret  *secret;         /* loaded in init */
    double              timeout;        /* seconds a question may wait */
    const char         *always_file;    /* kept allow-always answers */
    const char         *policy_file;    /* the policy this capsule runs, as
                                           the host sees it (absolute): the
                                           file "allow always" writes to */
    int                 audit;          /* stream audit events */
    uint32_t            kinds;          /* kinds asked of the host */
    /* host side */
    struct ch_capsule  *caps;
    size_t              ncaps;
    const char         *secrets_dir;    /* capsule NAME's secret: dir/NAME */
    unsigned            max_pending;    /* questions per capsule */
};

/* capsule side (kap_channel_client.c) */
int  kap_channel_client_init(struct kap_gen *gen, struct ch_conf *cf);
void kap_channel_client_fini(struct ch_conf *cf);
int  kap_channel_client_policy(struct kap_req *r, struct ch_conf *cf);
void kap_channel_client_audit(const struct kap_audit_event *ev, struct ch_conf *cf);
void kap_channel_client_status(struct kap_buf *out);

/* host side (kap_channel_server.c) */
void kap_channel_server_accept(struct kap_conn *c);

/* both: the two proofs of the handshake, as hex, into out (65 bytes) */
int kap_channel_proof(const struct kap_secret *k, const char *who, const char *n1,
             const char *n2, char *out);

#endif /* KAP_CHANNEL_H */
