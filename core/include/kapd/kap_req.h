/*
 * kap_req.h -- one question (policy chain) and the audit chain.
 *
 * A protocol module never decides policy itself.  It creates a request
 * with kap_req_new(), fills subject/port/attributes and asks
 * kap_policy_check().  Policy hooks run in the order of
 * kapd.policy.chain; the first that decides wins; an exhausted chain is
 * kapd.policy.default (deny).  Each decision is sent to the audit chain
 * exactly once, by the core.
 */
#ifndef KAP_REQ_H
#define KAP_REQ_H

#include <stdint.h>
#include <sys/socket.h>

struct kap_gen;
struct kap_conn;
struct kap_pool;

/* Request kinds: one bit each. */
#define KAP_REQ_CONNECT   0x0001u  /* CONNECT host:port (http_connect) */
#define KAP_REQ_HTTP      0x0002u  /* plain HTTP absolute URI host */
#define KAP_REQ_DNS       0x0004u  /* DNS query name */
#define KAP_REQ_MCP_LIST  0x0008u  /* MCP tools/list (one tool name) */
#define KAP_REQ_MCP_CALL  0x0010u  /* MCP tools/call */
#define KAP_REQ_CLI       0x0020u  /* CLI command */
#define KAP_REQ_TEST      0x0040u  /* used by tests and the test module */
/*
 * A resolved address an allowed name led to, before anything is dialled
 * or answered with it: subject = the address as text ("192.0.2.1",
 * "2001:db8::1"), port = the port to dial (0 for a DNS answer), attribute
 * "host" = the name it came from.  Answered by `network` (the deny set of
 * DESIGN §6).  Asked for every address, before any connect attempt.
 */
#define KAP_REQ_ADDR      0x0080u
/*
 * The first bytes of a CONNECT tunnel, before any byte is relayed:
 * subject = the CONNECT host, port = its port, attributes "first" (tls,
 * ssh, http or other), "sni" (the one TLS server name), "http_host" (the
 * Host of a tunnelled HTTP request), "tls" (no_sni, multi_sni, ech or
 * invalid, when there is no single SNI), "error" (what the classifier
 * found wrong), "sni_required" ("1" when a TLS hello must name the host)
 * and "literal" ("1" when the host is an IP address).  Answered by
 * `network`.
 */
#define KAP_REQ_FIRST     0x0100u
#define KAP_REQ_ALL       0xffffffffu  /* every kind, defined ones too */

enum kap_verdict {
    KAP_VERDICT_NONE = 0,
    KAP_ALLOW,
    KAP_DENY,
    /* given to kap_req_decide() only: a deny observe mode never lifts
       (malformed input rather than policy); r->verdict reads KAP_DENY */
    KAP_REFUSE
};

/* r->flags, set by the asking module before kap_policy_check() */
#define KAP_REQ_F_FILTER  0x0001u  /* observe mode does not lift a deny of
                                      this question (dns.observe =
                                      "filter": DNS keeps filtering) */
/* r->flags, set by the deciding hook with its KAP_ALLOW */
#define KAP_REQ_F_ALWAYS  0x0002u  /* "allow always": the asker may keep
                                      the answer for this subject (the
                                      channel does, kap_channel_client.c) */
/* r->flags, set by a hook before it returns KAP_DECLINED (ABI 2.1) */
#define KAP_REQ_F_ASK     0x0004u  /* a human must decide (an ask rule):
                                      a later hook may answer (the
                                      channel asks the host); a chain
                                      that ends without an answer denies,
                                      whatever policy.default says */

struct kap_attr {
    const char *name;
    const char *value;
};

struct kap_req;
typedef void (*kap_policy_done_fn)(struct kap_req *r, void *data);
typedef void (*kap_req_cancel_fn)(struct kap_req *r);

#define KAP_REQ_MAGIC 0x4b524551U  /* "KREQ" */

/* The core allocates a request (kap_req_new); modules read and fill the
 * fields below and never copy the struct. */
struct kap_req {
    uint32_t          magic;       /* KAP_REQ_MAGIC */
    uint32_t          kind;        /* exactly one KAP_REQ_* bit */
    uint32_t          flags;       /* KAP_REQ_F_* */
    struct kap_gen   *gen;         /* referenced while r lives */
    struct kap_pool  *pool;        /* r lives in it; borrowed */
    struct kap_conn  *conn;        /* NULL for datagrams */
    const char       *asked_by;    /* module name */
    const char       *subject;     /* host, qname, tool, argv[0]; NUL-terminated */
    uint16_t          port;        /* 0 when not applicable */
    const char       *client;      /* client address text, may be NULL */
    const char       *detail;      /* e.g. HTTP method, DNS qtype; may be NULL */
    const struct kap_attr *attrs;  /* kind-specific, may be NULL; borrowed
                                      until the decision (audited as
                                      string fields of the decision event) */
    size_t            nattrs;

    /* set by the deciding hook with kap_req_decide() */
    int               verdict;     /* enum kap_verdict */
    int               observed;    /* allowed only because of observe mode */
    const char       *decided_by;  /* module name, or "default" */
    const char       *reason;      /* rule or why; pool-owned */

    /* for a hook that returned KAP_AGAIN */
    void             *hook_data;   /* the waiting hook's private state */
    kap_req_cancel_fn hook_cancel; /* called if r dies while waiting */
};

/*
 * New request of `kind` from module `asked_by` about `subject` (copied),
 * allocated from pool and released with it (a pending asynchronous check
 * is cancelled then).  Takes a reference to gen.  NULL on out of memory.
 */
struct kap_req *kap_req_new(struct kap_gen *gen, struct kap_pool *pool,
                            uint32_t kind, const char *asked_by,
                            const char *subject);

/*
 * Set the verdict from a policy hook (KAP_ALLOW, KAP_DENY, or KAP_REFUSE
 * for a deny that observe mode must not lift); decided_by and reason are
 * copied into r's pool.
 */
void kap_req_decide(struct kap_req *r, int verdict, const char *decided_by,
                    const char *reason);

/*
 * A refusal by the asking module itself, without the policy chain: the
 * input is malformed, a limit is reached, a timeout ended it.  r is
 * decided KAP_DENY by r->asked_by with reason (copied) and audited once,
 * by the core, as every decision is; observe mode does not lift it.
 * Modules never emit "decision" events themselves.  No effect on a
 * request that is already decided or has a check pending.
 */
void kap_req_refuse(struct kap_req *r, const char *reason);

/* Value of attribute name in r->attrs, or NULL.  Borrowed. */
const char *kap_req_attr(const struct kap_req *r, const char *name);

/*
 * Ask the policy chain.  Returns KAP_OK when decided now (r->verdict is
 * set, done is never called), or KAP_AGAIN when a hook is waiting (done
 * is called later from the loop, exactly once, never before this returns).
 * Never returns anything else: errors become KAP_DENY verdicts.  With
 * done == NULL the caller cannot wait: a hook that returns KAP_AGAIN is
 * cancelled and the question is denied ("policy answer needed at once").
 * In observe mode (kapd.policy.observe) the core turns a deny into an
 * allow with r->observed set, except for KAP_REFUSE verdicts and
 * questions flagged KAP_REQ_F_FILTER.
 */
int kap_policy_check(struct kap_req *r, kap_policy_done_fn done, void *data);

/*
 * Called by a hook that returned KAP_AGAIN when it can answer: the core
 * calls the same hook again (it now returns its answer) and continues the
 * chain from there.  May be called from any loop callback.
 */
void kap_policy_resume(struct kap_req *r);

/* Audit events ---------------------------------------------------------- */

struct kap_audit_field {
    const char *name;
    const char *str;      /* string value, or NULL for a number */
    double      num;
};

/*
 * One event for the audit chain.  Every pointer is borrowed for the
 * duration of kap_audit_emit(); sinks copy what they keep.
 */
struct kap_audit_event {
    double      ts;         /* kap_now() when 0 */
    uint32_t    kind;       /* KAP_REQ_* bit of the question */
    const char *module;     /* who reports */
    const char *event;      /* "decision", "tunnel_close", "dns_answer", ... */
    const char *subject;
    uint16_t    port;
    const char *action;     /* "allowed", "denied", "observed", "closed", ... */
    const char *reason;
    const char *decided_by;
    const char *detail;     /* method, qtype, ... */
    const char *client;
    uint64_t    conn_id;
    uint64_t    gen_id;
    const struct kap_audit_field *fields;  /* extra fields */
    size_t      nfields;
};

/* Name of a kind bit: "connect", "http", "dns", ... (borrowed, static) */
const char *kap_req_kind_name(uint32_t kind);
/*
 * The bit of a kind by name: a built-in one, or one a loaded module
 * defines (struct kap_module.kinds).  0 when none.  Stable for the life
 * of the process; kinds are registered when modules are loaded, before
 * any conf_parse.
 */
uint32_t kap_req_kind(const char *name);

/*
 * ev as the audit log writes it: one JSON object (no newline) into out
 * (reset first), values cut as the log cuts them.  For audit hooks that
 * forward events (the remote module's live stream).  KAP_OK, or
 * KAP_ERROR (out of memory, or too large even when cut).
 */
struct kap_buf;
int kap_audit_event_json(struct kap_buf *out,
                         const struct kap_audit_event *ev);

/* Send ev to every audit hook of gen, in chain order.  Never blocks. */
void kap_audit_emit(struct kap_gen *gen, const struct kap_audit_event *ev);

#endif /* KAP_REQ_H */
