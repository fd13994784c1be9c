/*
 * kap_mcp_mod.h -- the mcp module's listener half (module-private): its
 * configuration, the per-client session map, the forwarding of one
 * request to its server and the audit.  The deciding half is kap_mcp.h;
 * what a request goes through, in order, is at the top of
 * kap_mcp_module.c.
 */
#ifndef KAP_MCP_MOD_H
#define KAP_MCP_MOD_H

#include <stddef.h>

#include <kapd/kap_core.h>
#include <kapd/kap_curl.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_secret.h>

#include "kap_mcp.h"
#include "kap_mcp_reg.h"

#define KAP_MCP_NAME            "mcp"
#define KAP_MCP_LISTEN          "127.0.0.1:3129"
#define KAP_MCP_UPSTREAM_TIMEOUT 30.0       /* s to the response head */
#define KAP_MCP_MAX_SERVERS     256
#define KAP_MCP_SID_MAX         1024        /* bytes of a session id */

/* One `servers` entry.  Everything lives in the generation's pool. */
struct kap_mcp_server {
    const char                *name;
    const char                *url;       /* http:// or https:// */
    const char                *ca_file;   /* NULL: the system's CAs */
    struct kap_mcp_tools      *tools;
    struct kap_mcp_tools      *ask;       /* tools the chain is asked
                                             about (NULL: none) */
    struct kap_mcp_reg_header *headers;   /* injected upstream */
    size_t                     nheaders;
    int                        pin;       /* pin tool definitions */
    int                        oauth;     /* an OAuth registration */
    long long                  expires_at; /* its token's (0: unknown) */
    const char                *pin_file;  /* pin: AUTH_DIR/NAME.pins.json */
};

/* The mcp group of one generation. */
struct kap_mcp_conf {
    struct kap_http_server_conf srv;
    double                      upstream_timeout;
    const char                 *prefix;     /* "" or "/path" */
    const char                 *auth_dir;   /* kap mcp add's files */
    const char                 *env_file;   /* ${VAR} values, or NULL */
    int                         locked;     /* the policy file comes from
                                               the agent's side: servers
                                               only from registrations */
    struct kap_mcp_server      *servers;
    size_t                      nservers;
};

/* ---- configuration (kap_mcp_conf.c) ---- */

/* Parse the mcp group (NULL: the defaults) into cf.  KAP_OK or
 * KAP_ERROR with err set at file:line. */
int kap_mcp_conf_parse(struct kap_gen *gen, struct kap_mcp_conf *cf,
                       const config_setting_t *group, struct kap_err *err);
/* The server called name (len bytes), or NULL.  Borrowed from cf. */
const struct kap_mcp_server *kap_mcp_server_find(const struct kap_mcp_conf *cf,
                                                 const char *name);

/* ---- sessions (kap_mcp_session.c) ----
 *
 * kapd gives the agent its own session ids (random, 32 hex digits) and
 * keeps the upstream's to itself.  An id is bound to one server and one
 * client (the peer's address, or the peer's uid on a unix socket): any
 * other client or server presenting it is told the session is unknown.
 * The map is the process's (it outlives reloads); freed at shutdown.
 */

/* The client key of connection c, into key (n bytes). */
void kap_mcp_client_key(const struct kap_conn *c, char *key, size_t n);
/* The upstream session id of downstream id sid for (server, client), or
 * NULL when there is none.  Borrowed until the next call that changes
 * the map. */
const char *kap_mcp_session_get(const char *server, const char *client,
                                const char *sid);
/*
 * Record upstream id up for (server, client): under sid when it is not
 * NULL (an existing session whose upstream id changed), else under a new
 * downstream id.  The downstream id is copied into out (at least 33
 * bytes).  KAP_OK or KAP_ERROR (out of memory, no randomness).
 */
int kap_mcp_session_put(const char *server, const char *client,
                        const char *sid, const char *up, char *out);
/* Forget downstream id sid (no effect when unknown). */
void kap_mcp_session_del(const char *sid);
/* Forget every session (module shutdown). */
void kap_mcp_session_clear(void);

/* ---- tool pins (kap_mcp_pinstore.c) ---- */

struct kap_mcp_pins;

/* What kap_mcp_pins_check() found when a pinned tool changed. */
struct kap_mcp_pin_change {
    struct kap_pool *pool;                    /* in: for seen_text */
    int              changed;                 /* first seen changed now */
    char             pinned[KAP_MCP_PIN_HEX + 1], seen[KAP_MCP_PIN_HEX + 1];
    const char      *pinned_text, *seen_text; /* canonical definitions */
};

/* The pins of server kept in path, read again when the file changed on
 * disk.  Process-owned (freed by kap_mcp_pins_clear); NULL on OOM. */
struct kap_mcp_pins *kap_mcp_pins_get(const char *server, const char *path);
/* 1 when tool name (its definition tool) may be shown: pinned now (first
 * sight, the file rewritten) or as pinned; 0 when it changed (ch says
 * how, the first time) or the pins cannot be read or written. */
int kap_mcp_pins_check(struct kap_mcp_pins *ps, const char *name,
                       const struct kap_json *tool,
                       struct kap_mcp_pin_change *ch);
/* 1 when calls to tool name are held: its definition changed since it
 * was pinned, or the pins cannot be read. */
int kap_mcp_pins_changed(struct kap_mcp_pins *ps, const char *name);
void kap_mcp_pins_clear(void);

/* ---- OAuth tokens (kap_mcp_tokens.c; docs/design/mcp-oauth.md) ---- */

/* The headers to send to sv: its refreshed registration's once a
 * refresh finished, else its own.  A token within the margin of expiry
 * starts a refresh in the background (kap-mcp refresh as a child). */
void kap_mcp_tokens_headers(const struct kap_mcp_conf *cf,
                            const struct kap_mcp_server *sv,
                            const struct kap_mcp_reg_header **h, size_t *n);
/* sv's upstream refused its token (401): start a refresh of it (one at a
 * time per server).  1 when one is under way (tell the agent to retry),
 * 0 when sv is not an OAuth registration or none could start. */
int kap_mcp_tokens_refused(const struct kap_mcp_conf *cf,
                           const struct kap_mcp_server *sv);
/* After kap_mcp_tokens_refused() said 1: fn(ok, data) once, when the
 * refresh under way ends (ok 1: the next kap_mcp_tokens_headers() has
 * the new token; 0: it failed).  The waiter lives in pool (the
 * exchange's); kap_mcp_tokens_unwait() (NULL ok) drops it before then,
 * and a pool cleanup does so too.  KAP_ERROR when no refresh is under
 * way or out of memory. */
typedef void (*kap_mcp_tokens_fn)(int ok, void *data);
int kap_mcp_tokens_wait(const struct kap_mcp_conf *cf,
                        const struct kap_mcp_server *sv,
                        struct kap_pool *pool, kap_mcp_tokens_fn fn,
                        void *data);
/* Forget every server's tokens (module shutdown); waiters are dropped
 * without a call. */
void kap_mcp_tokens_clear(void);

/* ---- audit (kap_mcp_audit.c) ---- */

/* A pinned tool's definition changed: one "mcp_pin_changed" event with
 * both definitions. */
void kap_mcp_pin_audit(struct kap_conn *c, const char *server,
                       const char *tool, const struct kap_mcp_pin_change *ch);

/* The module's policy hook for KAP_REQ_MCP_CALL questions: subject the
 * tool, attribute "server". */
int kap_mcp_policy(struct kap_req *r, void *conf);


/* A refusal of a request for server (NULL: none named) by the module:
 * decided and audited by the core. */
void kap_mcp_refuse_audit(struct kap_conn *c, const char *server,
                          const char *reason);

/* What one exchange did, for its audit event. */
struct kap_mcp_audit_info {
    const char *server;
    const char *method;     /* HTTP method */
    const char *rpc;        /* first JSON-RPC method, or NULL */
    const char *tool;       /* first tools/call tool, or NULL */
    size_t      calls, lists, denied;
    long        status;     /* to the agent */
    long        upstream;   /* upstream status, 0: none */
    double      start;
    size_t      bytes_in, bytes_out;
    const struct kap_mcp_reply_stats *st;
    const char *error;      /* upstream failure, or NULL */
};
void kap_mcp_audit(struct kap_conn *c, const struct kap_mcp_audit_info *a);

/* ---- the questions of a POST (kap_mcp_ask.c) ---- */

/*
 * Ask the policy chain about every tools/call of the checked request r
 * (taken over), then answer: r's own answer when every call was denied
 * here, JSON-RPC errors (HTTP 200) when the chain denied a call the
 * patterns allowed (nothing is forwarded past a deny), else
 * kap_mcp_forward().  The chain may wait
 * (a tool under an `ask` pattern: a human answers through the channel);
 * the exchange waits with it.
 */
void kap_mcp_ask(struct kap_http_ex *ex, struct kap_gen *gen,
                 const struct kap_mcp_conf *cf,
                 const struct kap_mcp_server *sv, struct kap_mcp_req *r,
                 const struct kap_mcp_fwd_headers *fh, const char *up,
                 const char *client);

/* ---- forwarding (kap_mcp_forward.c) ---- */

/*
 * Send the checked request (r: its forward bytes for a POST; NULL for
 * GET and DELETE) to server sv of generation gen (cf, sv are its; a
 * reference is taken) with the agent's picked headers, and answer ex
 * from the upstream's reply, filtered.  Takes r over (freed with the
 * exchange).  Answers ex itself on every path.
 */
void kap_mcp_forward(struct kap_http_ex *ex, struct kap_gen *gen,
                     const struct kap_mcp_conf *cf,
                     const struct kap_mcp_server *sv, struct kap_mcp_req *r,
                     const struct kap_mcp_fwd_headers *fh,
                     const char *upstream_sid, const char *client);

/* An answer of the module's own: {"error": why, "status": N} (with
 * "servers" when servers is not NULL). */
void kap_mcp_answer(struct kap_http_ex *ex, int status, const char *why,
                    const struct kap_mcp_conf *servers);

#endif /* KAP_MCP_MOD_H */
