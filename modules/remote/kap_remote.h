/*
 * kap_remote.h -- the remote module (a phone watches kapd over the LAN):
 * shared declarations of its files, each with one job.
 *
 *   kap_remote_module.c   config group `remote`, listeners, accept
 *   kap_remote_routes.c   the routes: page, /api/pair, /api/status,
 *                         /api/logs; auth before every route but the page
 *   kap_remote_parse.c    pure parsers of untrusted bytes: the query
 *                         string, the pair request body, a Bearer
 *                         header, device ids (unit tests, fuzz/fuzz_remote)
 *   kap_remote_pair.c     the pairing secret (a file kap(1) writes) and
 *                         the exchange for a device token
 *   kap_remote_devices.c  paired devices: one 0600 file each, token kept
 *                         as a SHA-256 hash, last_seen
 *   kap_remote_limit.c    rate limits: pairing attempts, failed auth
 *   kap_remote_logs.c     the audit logs' tail: recent events, counters
 *   kap_remote_dkparse.c  pure parsers for the Docker routes: ids, the
 *                         agent query, the exec stream (fuzz_remote)
 *   kap_remote_docker.c   the Docker Engine API client (unix socket,
 *                         libcurl in the loop): JSON GETs, exec with an
 *                         argv and its demultiplexed output
 *   kap_remote_agent.c    /api/containers and /api/agent/...: kap
 *                         projects, Claude Code sessions in the app
 *   kap_remote_session.c  the Claude Code session JSONL parser (pure:
 *                         unit tests, fuzz/fuzz_session)
 *   kap_remote_asks.c     the policy hook: questions waiting for a human
 *                         (GET /api/asks, POST /api/asks/ID)
 *   kap_remote_ws.c       WebSocket: handshake, auth, frames (wslay),
 *                         open sockets, bounded queues, broadcast
 *   kap_remote_live.c     the live audit stream: audit hook, followed
 *                         files (inotify), catch-up ring, revocation
 *   kap_remote_capsules.c kap run capsules connected over the channel
 *                         (for /api/containers)
 *   kap_remote_follow.c   WS /ws/agent/ID: a session's timeline, live
 *   kap_remote_ui.c       the page at / (generated from ui/index.html)
 *
 * docs/design/remote-pairing.md says why it is built this way.
 * Everything runs on the event loop thread.
 */
#ifndef KAP_REMOTE_H
#define KAP_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>

#define KR_NAME "remote"

#define KR_DEFAULT_LISTEN      "0.0.0.0:19420"
#define KR_PAIR_LIFETIME       600.0     /* s a pairing secret is valid */
#define KR_PAIR_LIMIT          5         /* pairing attempts per window */
#define KR_AUTH_FAIL_LIMIT     10        /* failed auths per address */
#define KR_LIMIT_WINDOW        60.0      /* s */
#define KR_MAX_DEVICES         32
#define KR_LOG_TAIL_BYTES      (1024 * 1024)   /* read of each audit file */
#define KR_LOG_LIMIT_DEFAULT   100
#define KR_LOG_LIMIT_MAX       1000

#define KR_ID_LEN              12        /* device id: lowercase hex */
#define KR_NAME_MAX            64        /* device name, bytes */
#define KR_SECRET_HEX          32        /* pairing secret: 16 bytes hex */
#define KR_TOKEN_LEN           43        /* device token: 32 bytes b64url */
#define KR_BEARER_MAX          256
#define KR_ASK_ID_LEN          16        /* pending question: lowercase hex */
#define KR_ASK_TIMEOUT         60.0      /* s a question waits for a human */
#define KR_MAX_ASKS            64        /* questions waiting at once */

/* answers to a pending question */
#define KR_ANSWER_ONCE         1
#define KR_ANSWER_ALWAYS       2
#define KR_ANSWER_DENY         3
#define KR_WS_MAX_MESSAGE      (64 * 1024)     /* a client's message */
#define KR_WS_QUEUE_MAX        (1024 * 1024)   /* queued to one socket */
#define KR_WS_PING             30.0            /* s between idle pings */

#define KR_DOCKER_SOCKET       "/var/run/docker.sock"
#define KR_DOCKER_TIMEOUT      10.0      /* s for one engine call chain */
#define KR_DOCKER_API          "/v1.41"  /* Engine 20.10 and later */
#define KR_DOCKER_MAX_JSON     (4 * 1024 * 1024)
#define KR_EXEC_MAX_OUT        (1024 * 1024)  /* an exec's stdout kept */
#define KR_EXEC_MAX_ERR        (16 * 1024)    /* its stderr kept */
#define KR_PROJECT_MAX         64        /* compose project name, bytes */
#define KR_UUID_LEN            36        /* a session id */

struct kap_tls_ctx;

/* The module's configuration (one per generation). */
struct kr_conf {
    struct kap_http_server_conf srv;
    size_t       nlisten;
    const char  *state_dir;        /* absolute */
    const char **audit_logs;       /* files or directories of *.jsonl */
    size_t       naudit;
    double       pair_lifetime;
    long long    pair_limit;       /* attempts per window, all clients */
    long long    auth_fail_limit;  /* failures per window, one address */
    double       limit_window;
    const char  *cert, *key;
    struct kap_tls_ctx *tls;
    const char  *docker_socket;    /* absolute; KR_DOCKER_SOCKET */
    double       docker_timeout;   /* KR_DOCKER_TIMEOUT */
    double       ask_timeout;      /* s a question waits for an answer */
    unsigned     max_asks;         /* questions waiting at once */
    const char **follow;           /* audit files or directories to
                                      follow live (inotify) */
    size_t       nfollow;
    long long    ws_max_message;   /* bytes of a client's message */
    long long    ws_queue_max;     /* bytes queued to one socket */
    double       ws_ping;          /* s between idle pings */
};

/* ---- kap_remote_parse.c: pure ------------------------------------------- */

struct kr_query {
    long limit;                    /* KR_LOG_LIMIT_DEFAULT when absent */
    int  denied;                   /* 0 or 1 */
    long long since;               /* WS only: -1 when absent */
};

/*
 * Parse the query string q[0..len) (after '?', without it) of
 * /api/logs: "limit=N" (1..KR_LOG_LIMIT_MAX, digits only) and
 * "denied=0|1|true|false", each at most once, nothing else (no
 * percent-escapes, no empty pairs).  KAP_OK, or KAP_ERROR with why set
 * to a static message.
 */
int kr_query_parse(const char *q, size_t len, struct kr_query *out,
                   const char **why);

/*
 * The query of WS /ws/logs: as kr_query_parse(), and "since=N" (an
 * event number, 0..10^18-1, no leading zero) at most once.  Both refuse
 * "token=" and "access_token=" with a message of their own.
 */
int kr_ws_query_parse(const char *q, size_t len, struct kr_query *out,
                      const char **why);

/* 1 when the comma-separated header value (NULL: 0) holds token,
   case-insensitively (Connection: keep-alive, Upgrade). */
int kr_list_has(const char *value, const char *token);

/* 1 when key (NULL: 0) is a Sec-WebSocket-Key: 16 bytes in base64. */
int kr_ws_key_ok(const char *key);

/*
 * Sec-WebSocket-Protocol (NULL: refused): a list of tokens that must
 * offer "kap.v1" and may offer one "kap.token.TOKEN" (the device token;
 * at most KR_BEARER_MAX bytes); other offers are ignored.  KAP_OK with
 * *tok pointing into value (NULL when none) and *toklen, or KAP_ERROR
 * with why static.
 */
int kr_ws_protocols(const char *value, const char **tok, size_t *toklen,
                    const char **why);

/* 1 when origin is NULL (not a browser) or is exactly the page's own
   origin: http(s)://host with host the request's Host value. */
int kr_origin_ok(const char *origin, const char *host, int tls);

/*
 * The pair request body: a JSON object with an optional "name" (a
 * string of 1..KR_NAME_MAX bytes without controls, C1 controls or
 * bidirectional overrides) and nothing else; an empty body is {}.  The
 * name is copied into name (size >= KR_NAME_MAX + 1), "" when absent.
 * KAP_OK, or KAP_ERROR with why static.
 */
int kr_pair_body_parse(const char *body, size_t len, char *name,
                       const char **why);

/*
 * The token of an "Authorization: Bearer TOKEN" value (scheme
 * case-insensitive, one space, TOKEN of RFC 6750 b64token characters,
 * at most KR_BEARER_MAX bytes).  Returns a pointer into value and its
 * length in *len, or NULL.
 */
const char *kr_bearer(const char *value, size_t *len);

/* 1 when s is a device id: exactly KR_ID_LEN lowercase hex digits. */
int kr_id_valid(const char *s, size_t len);
/* 1 when s[0..len) is exactly want lowercase hex digits. */
int kr_hex_lower(const char *s, size_t len, size_t want);

/* 1 when s[0..len) is a container id: 12..64 lowercase hex digits. */
int kr_container_id_valid(const char *s, size_t len);
/* 1 when s[0..len) is a session id: a UUID, 8-4-4-4-12 lowercase hex. */
int kr_session_id_valid(const char *s, size_t len);
/* 1 when s[0..len) is a compose project name: 1..KR_PROJECT_MAX of
   [a-z0-9_-], starting with a letter or digit (what compose allows). */
int kr_project_valid(const char *s, size_t len);

/*
 * The query string of the /api/containers and /api/agent routes:
 * "project=NAME" (kr_project_valid) and, for /diff, "format=stat|patch",
 * each at most once, nothing else.  project[0] is '\0' when absent
 * (size >= KR_PROJECT_MAX + 1); *patch 0 or 1.  KAP_OK, or KAP_ERROR
 * with why static.
 */
int kr_agent_query_parse(const char *q, size_t len, char *project,
                         int *patch, const char **why);

/*
 * The engine's multiplexed exec stream (Tty false): frames of an 8-byte
 * head (stream 0 stdin, 1 stdout, 2 stderr; 3 zero bytes; a big-endian
 * 32-bit length) and the payload.  Appends stdout to out (at most
 * max_out bytes) and stderr to err (at most max_err), *cut set when
 * either was cut.  A final frame cut short is accepted only when
 * partial is set (the caller stopped reading).  KAP_OK, or KAP_ERROR
 * (a frame of another stream type, non-zero padding, a short frame;
 * why static) -- out and err then hold what came before.
 */
int kr_demux(const char *p, size_t n, int partial, struct kap_buf *out,
             size_t max_out, struct kap_buf *err, size_t max_err,
             int *cut, const char **why);
/*
 * The body of POST /api/asks/ID: exactly {"answer":"once"|"always"|
 * "deny"}.  *answer is KR_ANSWER_*.  KAP_OK, or KAP_ERROR with why
 * static.
 */
int kr_answer_body_parse(const char *body, size_t len, int *answer,
                         const char **why);

/* 1 when s[0..len) is a pending question's id (KR_ASK_ID_LEN hex). */
int kr_ask_id_valid(const char *s, size_t len);

/* ---- kap_remote_rule.c ---------------------------------------------------- */

/*
 * The network.allow entry an "allow always" answer to a question of kind
 * (KAP_REQ_*) about subject and port becomes: "host:port" (connect,
 * http; "host" when port is 0 or for dns) into out (size bytes).  The
 * subject must be a host name or dotted IPv4 address (letters, digits,
 * '-', '.'; labels 1..63, 253 bytes at most): nothing else may reach a
 * policy file.  KAP_OK, or KAP_ERROR with why static.
 */
int kr_rule_entry(uint32_t kind, const char *subject, unsigned port,
                  char *out, size_t size, const char **why);

/*
 * text[0..len) (a libconfig policy file) with the string entry added to
 * network.allow, appended to out (caller's, kap_buf_free): after the
 * last element of the first top-level network group's allow list, else
 * as an allow list at the top of that group, else as a network group at
 * the end; comments and layout are kept, and the result must read with
 * libconfig and hold the entry.  *line is the 1-based line of the entry
 * in the result.  KAP_OK; KAP_DECLINED when the list has the entry
 * already (*line: where; out untouched); KAP_ERROR with why static (a
 * text that is not libconfig, an @include, an allow that is not a list
 * of strings; out may hold part of the result).
 */
int kr_rule_insert(const char *text, size_t len, const char *entry,
                   struct kap_buf *out, unsigned *line, const char **why);

/*
 * Where an "allow always" rule goes besides network.allow: the allow list
 * of the element of section.list (a libconfig list of groups) whose
 * "name" is name -- mcp.servers for an mcp tools/call, cli.tools for a
 * cli call.  Strings borrowed.
 */
struct kr_rule_at {
    const char *section, *list, *name;
};

/*
 * The rule an "allow always" answer to a question of kind about subject
 * and port becomes: a network question's kr_rule_entry() (at->list
 * NULL), an mcp_call's tool name in the allow of its server (server:
 * the question's "server" attribute) in mcp.servers, a cli call's
 * canonical rule (suggest: its "suggest" attribute, what kap cli test
 * prints) in the allow of its tool in cli.tools.  Names must be letters, digits
 * and '_', '-', '.'; a cli rule printable ASCII without '"', '\', '*'
 * or '?': nothing may inject syntax or allow more than the call.  The
 * entry goes into out (size bytes, at least 1001); at's strings are
 * server or subject.  KAP_OK, or KAP_ERROR with why static.
 */
int kr_rule_target(uint32_t kind, const char *subject, unsigned port,
                   const char *server, const char *suggest,
                   struct kr_rule_at *at, char *out, size_t size,
                   const char **why);

/*
 * kr_rule_insert() for any place (at NULL: network.allow): the entry
 * added after the last element of the allow list of at's named group,
 * keeping comments and layout, checked by reading the result with
 * libconfig.  No such group, or a group without an allow list, is an
 * error (nothing is created there).  Same returns as kr_rule_insert().
 */
int kr_rule_insert_at(const char *text, size_t len,
                      const struct kr_rule_at *at, const char *entry,
                      struct kap_buf *out, unsigned *line, const char **why);

/*
 * Add entry to network.allow (at NULL) or at's allow list of the
 * policy file path (absolute, a
 * regular file owned by this euid, not a symlink, at most 1 MiB) with
 * kr_rule_insert_at(), atomically: a temporary file in its directory with
 * the file's mode and group, then rename, unless the file changed
 * meanwhile.  where (size bytes) gets "path:line".  KAP_OK (added),
 * KAP_DECLINED (there already; where says where), KAP_ERROR with the
 * reason in why (whysize bytes); the file is then unchanged.
 */
int kr_rule_write(const char *path, const struct kr_rule_at *at,
                  const char *entry, char *where,
                  size_t size, char *why, size_t whysize);

/* ---- kap_remote_pair.c ---------------------------------------------------- */

/*
 * Check secret[0..len) against the pairing file in state_dir (written
 * by kap(1): "sha256:HEX\n", mode 0600, owned by kapd's euid) that is
 * younger than lifetime seconds, in constant time; on a match the file
 * is removed (single use).  KAP_OK (matched and consumed), KAP_DECLINED
 * (no valid secret, or no match; why says which, for the log only), or
 * KAP_ERROR (I/O error, logged).
 */
int kr_pair_consume(const struct kr_conf *cf, const char *secret,
                    size_t len, const char **why);

/* ---- kap_remote_devices.c ------------------------------------------------- */

struct kr_device {
    char id[KR_ID_LEN + 1];
    char name[KR_NAME_MAX + 1];
};

/*
 * A new device named name ("" gives "device"): a random id and token;
 * the device file state_dir/devices/ID (0600) keeps the token's hash.
 * The token (KR_TOKEN_LEN chars, NUL-terminated) goes into token (size
 * >= KR_TOKEN_LEN + 1) and is returned once, never stored.  KAP_OK, or
 * KAP_ERROR (full, I/O; logged).
 */
int kr_device_add(const struct kr_conf *cf, const char *name,
                  struct kr_device *dev, char *token);

/*
 * The device whose token is tok[0..len): every device file's hash is
 * compared in constant time.  KAP_OK with *dev filled (and its
 * last_seen updated, at most once a minute), or KAP_DECLINED.
 */
int kr_device_auth(const struct kr_conf *cf, const char *tok, size_t len,
                   struct kr_device *dev);

/* Number of paired devices (device files). */
unsigned kr_device_count(const struct kr_conf *cf);

/* ---- kap_remote_limit.c ---------------------------------------------------- */

/*
 * Fixed-window counters, process-wide (they survive reloads).  key is
 * a client address without port ("*" for the global pairing counter).
 * kr_limit_over(): 1 when key has max or more events in the current
 * window (and *retry = seconds until it ends).  kr_limit_hit(): count
 * one event for key.
 */
int  kr_limit_over(int kind, const char *key, long long max, double window,
                   double *retry);
void kr_limit_hit(int kind, const char *key, double window);
#define KR_LIMIT_PAIR 0
#define KR_LIMIT_AUTH 1

/* ---- kap_remote_logs.c ------------------------------------------------------ */

/*
 * Append a JSON array of the newest audit events (at most limit; only
 * denied ones when denied) from every configured audit log's tail,
 * newest first, to w's buffer.
 */
struct kap_json_writer;
void kr_logs_write(const struct kr_conf *cf, long limit, int denied,
                   struct kap_json_writer *w);

/* Append the "audit" object of /api/status: per file, per module. */
void kr_logs_status(const struct kr_conf *cf, struct kap_json_writer *w);

/* ---- kap_remote_asks.c ------------------------------------------------------ */

struct kap_req;

/* The policy hook (conf is the kr_conf): holds a question until an
 * answer or the deadline. */
int kr_policy(struct kap_req *r, void *conf);

/* Append {"asks":[...]} (pending questions, newest first) to w. */
void kr_asks_write(struct kap_json_writer *w);

/*
 * Answer pending question id (valid, NUL-terminated) with answer
 * (KR_ANSWER_*) from dev: audited ("ask_answered", with the device id),
 * the waiting question resumes on the next loop turn, and the answer
 * is written to w as a JSON object.  KAP_OK; KAP_DECLINED when id is
 * not pending, with *state "answered", "expired" or "withdrawn" when it
 * was recently, or NULL when it is unknown.
 */
int kr_ask_answer(const char *id, int answer, const struct kr_device *dev,
                  struct kap_json_writer *w, const char **state);
/* 1 when a directory entry's name is an audit log's (*.jsonl, no dot
   first). */
int kr_is_jsonl(const char *name);

/* ---- kap_remote_ws.c ----------------------------------------------------------- */

/* One open WebSocket (after the upgrade).  Opaque. */
struct kr_ws;

/*
 * A request for /ws/...: path[0..plen) without the query, qs[0..qlen)
 * the query (after '?').  Checks the handshake, the Origin, the device
 * token (subprotocol or Bearer; failures count toward the auth rate
 * limit of ip), the route and the query, and answers with an error or
 * the upgrade.
 */
void kr_ws_open(struct kap_http_ex *ex, const struct kr_conf *cf,
                const char *ip, const char *path, size_t plen,
                const char *qs, size_t qlen);

/*
 * Send json[0..len) (borrowed; copied) as one text frame to every open
 * socket of stream ("logs"); sockets opened with ?denied=1 get it only
 * when denied is non-zero.  A socket whose queue would pass
 * ws_queue_max is closed with 1008 instead.  Returns the number of
 * sockets it was queued to.  For other files of the module (new
 * streams, new event types on "logs"): the frame is a JSON object with
 * a "type".
 */
unsigned kr_ws_broadcast(const char *stream, const char *json, size_t len,
                         int denied);

/* One text frame to one socket (json borrowed).  KAP_OK, or KAP_DONE:
   the socket is closing or gone (do not use ws again). */
int kr_ws_send(struct kr_ws *ws, const char *json, size_t len);

/* Close ws with code and why (a WebSocket close of our own). */
void kr_ws_end(struct kr_ws *ws, int code, const char *why);
/* Call fn(data) when ws is freed (once; the stream's own state). */
void kr_ws_on_free(struct kr_ws *ws, void (*fn)(void *data), void *data);
/* The upgraded exchange of ws (its connection), while ws lives. */
struct kap_http_ex *kr_ws_ex(const struct kr_ws *ws);

/* Close (1008 "device revoked") every socket of device id. */
void kr_ws_revoked(const char *device);

/* Open sockets (all streams). */
unsigned kr_ws_count(void);

/* At exit: stop watching for the shutdown (sockets close with 1001 as
   soon as it begins). */
void kr_ws_exit(void);

/* ---- kap_remote_live.c ---------------------------------------------------------- */

/* The audit hook: every event of this kapd goes to the ring and out. */
struct kap_audit_event;
void kr_live_audit(const struct kap_audit_event *ev, void *conf);

/* Send the hello, the catch-up q asks for, and the live marker. */
void kr_live_catch_up(struct kr_ws *ws, const struct kr_query *q);

/* Follow cf->follow and watch cf's devices directory (replacing what an
   older generation set up).  KAP_OK or KAP_ERROR (logged). */
int  kr_live_start(const struct kr_conf *cf);
/* Stop following when cf set it up (a retired generation). */
void kr_live_stop(const struct kr_conf *cf);
/* At exit: stop, and free the ring. */
void kr_live_exit(void);

/* ---- kap_remote_follow.c --------------------------------------------------- */

/*
 * WS /ws/agent/ID: follow session sid (a valid UUID) of project ("":
 * the only one) for ws: its timeline now, then the events appended to
 * its file, polled through the Docker engine every KR_FOLLOW_INTERVAL.
 * Stops when ws is freed.  KAP_OK, or KAP_ERROR (out of memory).
 */
#define KR_FOLLOW_INTERVAL 1.0
int kr_follow_start(struct kr_ws *ws, const struct kr_conf *cf,
                    const char *project, const char *sid);

/* ---- kap_remote_capsules.c ------------------------------------------------- */

/* Note a capsule_connected or capsule_closed event of the channel
   module (every other event is ignored). */
void kr_caps_audit(const struct kap_audit_event *ev);

/* Append one object per connected kap run capsule to the array being
   written: project (its name), dir (null), capsule true, policy_file,
   connected (s since the epoch), app and sidecar null. */
void kr_caps_write(struct kap_json_writer *w);

/* Capsules connected now. */
unsigned kr_caps_count(void);

/* ---- kap_remote_routes.c ---------------------------------------------------- */

/* The handler given to kap_http_server_start(); data is the kr_conf. */
void kr_handle(struct kap_http_ex *ex, void *data);

/* Note the process start for /api/status (first init). */
void kr_remote_started(void);

/* Answer 200 (or status) with the JSON w wrote into b (freed here). */
struct kap_json_writer;
void kr_json_reply(struct kap_http_ex *ex, int status, struct kap_buf *b,
                   struct kap_json_writer *w);

/* ---- kap_remote_agent.c --------------------------------------------------- */

/*
 * The Docker routes (/api/containers, /api/agent/...) for the path
 * p[0..n) and the query qs[0..qlen) of an authenticated request: 1 when
 * the path is one of them (the exchange is then answered, now or
 * later), 0 when not.
 */
int kr_agent_route(struct kap_http_ex *ex, const struct kr_conf *cf,
                   const char *p, size_t n, const char *qs, size_t qlen,
                   int get);

/* ---- kap_remote_ui.c ---------------------------------------------------------- */

extern const char kr_ui_page[];
extern const size_t kr_ui_page_len;

#endif /* KAP_REMOTE_H */
