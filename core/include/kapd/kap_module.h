/*
 * kap_module.h -- the kapd module ABI.
 *
 * A module is a shared object that exports exactly one symbol,
 * kap_<name>_module, a const struct kap_module.  kapd checks the identity
 * block (magic, ABI major/minor, struct size, build signature, name) before
 * it calls any function of the module.  Every callback is optional.
 *
 * ABI rules: the major version changes on any incompatible change (and the
 * minor resets to 0); the minor grows when fields are appended before
 * `spare`.  The core reads a field only when `size` covers it.
 */
#ifndef KAP_MODULE_H
#define KAP_MODULE_H

#include <stdint.h>
#include <stddef.h>
#include <libconfig.h>
#include <kapd/kap_build.h>

#define KAP_MODULE_MAGIC  0x4b41504dU   /* "KAPM" */
#define KAP_ABI_MAJOR     2             /* incompatible change: bump, reset minor */
#define KAP_ABI_MINOR     1             /* append-only change: bump */

/*
 * ABI changelog (what a module author must know about each version):
 *
 * 2.1  KAP_REQ_F_ASK: a hook that leaves a question to a human (an ask
 *      rule) sets it before it declines; a chain that then ends without
 *      an answer denies the question whatever policy.default says.
 * 2.0  One decider (core v2).  New request kinds KAP_REQ_ADDR (a resolved
 *      address, asked before anything is dialled or answered) and
 *      KAP_REQ_FIRST (the first bytes of a CONNECT tunnel: sni, first,
 *      ...), both answered by `network`; kap_req_refuse() for a module's
 *      own refusals (modules never emit "decision" events);
 *      kap_req_attr(); KAP_REFUSE verdict; r->flags with
 *      KAP_REQ_F_FILTER; kap_policy_check(r, NULL, NULL) for a question
 *      that needs an answer at once; observe mode is the core's
 *      (kapd.policy.observe, kapd --observe); `network` declines names no
 *      rule mentions.  Removed: kap_network_addr_check(),
 *      kap_network_observe(), and the core-private fields of struct
 *      kap_req (cursor, pending, audited, done, done_data).  The build
 *      signature no longer carries the debug flag.  struct kap_conn
 *      carries a unix-socket peer's credentials (peer_cred, peer_uid,
 *      peer_gid, peer_pid: SO_PEERCRED at accept).  KAP_REQ_F_ALWAYS;
 *      kap_secret_*, kap_json_* (strict JSON) in the ABI.  Request
 *      kinds by name: struct kap_module.kinds (kinds a module defines,
 *      given bits 9..31 at load), struct kap_hook.kind_names (hooks for
 *      them; hook tables with positional initialisers take a fifth
 *      field), kap_req_kind(); KAP_REQ_ALL covers 32 bits.  TLS server
 *      termination on the loop (kap_tls_ctx_new(), kap_tls_new(),
 *      kap_tls_read/write/shutdown(): kap_tls.h, which no longer holds
 *      the ClientHello inspector: that is private to http_connect); one
 *      host-name rule, kap_host_name_norm()/kap_host_eq()/
 *      kap_host_char_ok(), and one place for IPv4-mapped IPv6,
 *      kap_addr_raw()/kap_addr_unmap()/kap_addr_map_v4()/
 *      kap_addr_is_v4mapped(), in kap_addr.h.  struct kap_buf is also
 *      a byte queue: field off, kap_buf_used()/consume()/reserve()/
 *      room()/added() (one buffer type for core and modules).  DNS wire
 *      helpers, kap_dnswire_*() in kap_dnswire.h (header, name walk,
 *      question and record reading, question and OPT writing).  The
 *      HTTP/1.1 server layer (kap_http_server.h: kap_http_server_start
 *      [_tls](), exchanges, whole/streamed/SSE responses with
 *      backpressure, error pages, kap_conn_linger()).
 *      kap_curl_stream() and kap_curl_resume(): a response's head, then
 *      its body in pieces with backpressure (kap_curl.h).
 *      kap_secret_new() (a secret from bytes in memory) and
 *      kap_secret_file_read() (a file of several credentials, read under
 *      the secret file rule).
 * 1.0  First release.
 */

/* One return vocabulary for every hook and API call. */
enum kap_rc {
    KAP_OK       =  0,   /* done / decided */
    KAP_ERROR    = -1,   /* failed; the caller fails closed */
    KAP_AGAIN    = -2,   /* in progress; the core will be resumed */
    KAP_DECLINED = -3,   /* no opinion; continue with the next hook */
    KAP_DONE     = -4    /* finished elsewhere (e.g. connection taken over) */
};

struct kap_gen;
struct kap_conn;
struct kap_listen;
struct kap_dgram;
struct kap_req;
struct kap_audit_event;
struct kap_err;
struct kap_buf;

/* module flags (informational, printed by kapd -V) */
#define KAP_MOD_LISTENER  0x1u
#define KAP_MOD_POLICY    0x2u
#define KAP_MOD_AUDIT     0x4u
/* its listeners keep accepting while kapd drains after SIGTERM (a health
   endpoint that must answer "not ready" then, not go silent) */
#define KAP_MOD_DRAIN_LISTEN 0x8u

/*
 * Listener callbacks.  The core owns listening sockets and accept(2).
 *   accept:   a stream connection was accepted; c is nonblocking and owned
 *             by the core until kap_conn_close(c).  c->conf is the module's
 *             conf in the generation the connection belongs to.
 *   datagram: one UDP packet; d and its buffer are borrowed for the call
 *             only.  conf is the module's conf in the current generation.
 *   close:    the core is closing c (shutdown grace expired, or the
 *             listener went away).  Stop every watcher; the core frees c
 *             (and runs its pool cleanups) after this returns.  Do not call
 *             kap_conn_close() from here.
 */
struct kap_listener_ops {
    void (*accept)(struct kap_conn *c);
    void (*datagram)(struct kap_listen *ls, void *conf, struct kap_dgram *d);
    void (*close)(struct kap_conn *c);
};

enum kap_hook_id {
    KAP_HOOK_NONE = 0,   /* terminates a hook table */
    KAP_HOOK_POLICY,     /* answers questions: int policy(r, conf) */
    KAP_HOOK_AUDIT       /* watches decisions:  void audit(ev, conf) */
};

/*
 * A hook table entry.  `kinds` is a mask of KAP_REQ_* bits; the core
 * flattens chains per kind when a generation is built, so a hook is only
 * called for the kinds it asked for.
 *
 * policy: return KAP_DECLINED (no opinion), KAP_OK after setting the
 *   verdict with kap_req_decide(), KAP_AGAIN to wait (then call
 *   kap_policy_resume(r) later: the core calls this same hook again), or
 *   KAP_ERROR (the request is denied: fail closed).
 * audit: must not block and must not fail; it cannot veto.
 */
struct kap_hook {
    enum kap_hook_id id;
    uint32_t         kinds;        /* KAP_REQ_* bits of built-in kinds */
    int            (*policy)(struct kap_req *r, void *conf);
    void           (*audit)(const struct kap_audit_event *ev, void *conf);
    /* kinds by name too (NULL-terminated, may be NULL): for kinds another
       module defines (struct kap_module.kinds), whose bits are given at
       load; a name no loaded module defines is ignored */
    const char *const *kind_names;
};

struct kap_module {
    /* -- identity and ABI gate: fixed layout forever (KAP_MODULE_V1) -- */
    uint32_t     magic;
    uint16_t     abi_major;
    uint16_t     abi_minor;
    uint32_t     size;             /* sizeof(struct kap_module) at module build */
    const char  *build_sig;        /* KAP_BUILD_SIG at module build */
    /* -- description -- */
    const char  *name;             /* also its config group and symbol name */
    const char  *version;          /* module release, for -V */
    uint32_t     flags;            /* KAP_MOD_* */

    /*
     * Configuration: pure functions run on every load (kapd -t too).
     * conf_create returns the module's conf, allocated from the
     * generation's pool (kap_gen_pool()), with every field UNSET.
     * conf_parse gets the module's top-level group, or NULL when the file
     * has none; it copies everything it keeps into the generation pool
     * (never keep config_setting_t pointers).  conf_check sets defaults
     * and checks cross-field rules.  Errors go into err with file:line;
     * modules never print while parsing.
     */
    void  *(*conf_create)(struct kap_gen *gen);
    int    (*conf_parse)(struct kap_gen *gen, void *conf,
                         const config_setting_t *group, struct kap_err *err);
    int    (*conf_check)(struct kap_gen *gen, void *conf, struct kap_err *err);

    /* -- lifecycle -- */
    int    (*startup)(void);                         /* once, at process start */
    int    (*init)(struct kap_gen *gen, void *conf); /* generation goes live */
    void   (*fini)(struct kap_gen *gen, void *conf); /* generation retired */
    void   (*shutdown)(void);                        /* once, at exit */

    /* -- serving -- */
    const struct kap_listener_ops *listener;        /* NULL: no listeners */
    const struct kap_hook         *hooks;           /* NULL or ends with KAP_HOOK_NONE */

    /* -- introspection: append a one-line status to out (kapd -V, remote UI) -- */
    void   (*status)(struct kap_gen *gen, void *conf, struct kap_buf *out);

    /*
     * Request kinds this module defines and asks (NULL-terminated names,
     * a-z 0-9 _, at most 32 bytes; may be NULL), e.g. { "ssh_agent",
     * NULL }: each gets a bit when the module is loaded, the same for the
     * life of the process; kap_req_kind("ssh_agent") returns it, policy
     * and audit hooks of any module name it in kind_names.
     */
    const char *const *kinds;

    uintptr_t    spare[8];         /* must be zero */
};

/* Fills the identity block; use as the first line of the initialiser. */
#define KAP_MODULE_V1(modname)                                          \
    .magic = KAP_MODULE_MAGIC, .abi_major = KAP_ABI_MAJOR,              \
    .abi_minor = KAP_ABI_MINOR, .size = sizeof(struct kap_module),      \
    .build_sig = KAP_BUILD_SIG, .name = (modname)

#endif /* KAP_MODULE_H */
