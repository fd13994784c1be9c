/*
 * kap_mcp.h -- the deciding half of the mcp module (module-private).
 *
 * Pure functions: no sockets, no files, no clock.  The module's listener
 * and upstream code call them; t/unit/test_mcp_*.c and fuzz/fuzz_mcp_*.c
 * drive them directly.  docs/design/mcp-filter.md says why they decide
 * as they do.
 *
 * API at a glance
 *
 *   Tool patterns (kap_mcp_tools.c)
 *     kap_mcp_tools_create(pool)            empty policy, owned by pool
 *     kap_mcp_tools_conf(t, allow, deny, server, err)
 *                                           the allow/deny settings of one
 *                                           server (empty allow: an error
 *                                           suggesting ["*"])
 *     kap_mcp_tools_add(t, deny, pattern, file, line, err)
 *     kap_mcp_tools_match(t, name, &verdict)  deny wins, case-sensitive
 *     kap_mcp_verdict_describe(&verdict, buf) "deny rule \"delete_*\"", ...
 *
 *   Content-Type (kap_mcp_ctype.c)
 *     kap_mcp_ctype_request(value)          NULL, or why a request's is refused
 *     kap_mcp_reply_kind(status, value)     JSON / SSE (filter) / PASS / REFUSE
 *
 *   Routing (kap_mcp_route.c)
 *     kap_mcp_route(target, prefix, name, n, &why)  "/NAME[/...]" -> NAME;
 *                                           a query string is refused
 *     kap_mcp_name_ok(name, len)            a server name (config, URL)
 *     kap_mcp_headers_pick(headers, n, &fwd, &why)  the agent's headers
 *                                           that go upstream (the rest:
 *                                           dropped); doubled or malformed:
 *                                           400
 *
 *   Request check (kap_mcp_request.c, helpers in kap_mcp_jsonrpc.c)
 *     kap_mcp_req_check(&r, tools, ctype, body, len, limits)
 *         r.status 0: send r.forward upstream (printed from the checked
 *         tree); r.ndenied calls were answered here: merge them into the
 *         reply (kap_mcp_reply_json(..., &r, ...) or kap_mcp_sse_errors),
 *         or, when the upstream answers 202 without a body,
 *         kap_mcp_req_errors(&r, out) is the whole answer (HTTP 200)
 *         r.status 200/400/415: answer r.answer (application/json)
 *         r.msgs[]: every message with method, tool, verdict (audit)
 *     kap_mcp_req_free(&r)
 *
 *   Reply filter (kap_mcp_reply.c)
 *     kap_mcp_reply_json(filter, body, len, merge, out, stats, err)
 *         PASS: send body; REWRITTEN: send out; REFUSED: 502
 *
 *   Event streams (kap_mcp_sse.c parses, kap_mcp_sse_frame.c re-frames)
 *     kap_mcp_sse_filter_init(&sf, filter, max_event)
 *     kap_mcp_sse_filter_feed(&sf, bytes, n, out, err)   per upstream read:
 *         appends whole filtered events to out; KAP_ERROR: end the stream
 *     kap_mcp_sse_errors(&r, out)     a request's denied calls as events
 *                                     (write them before the first read)
 *     kap_mcp_sse_filter_free(&sf)
 *     kap_mcp_sse_init/feed/free, kap_mcp_sse_write: the two halves alone
 *
 *   Tool pins (kap_mcp_pin.c)
 *     kap_mcp_pin_text(tool, out)     canonical JSON of a definition
 *     kap_mcp_pin_digest(tool, hex)   its SHA-256 (for the keep() hook)
 *
 * How a listener uses them, per request:
 *   1. kap_mcp_route(target) -> server (unknown: 404 naming the known);
 *      kap_mcp_headers_pick() (400 on refusal); only these headers and
 *      the server's configured ones go upstream.
 *   2. POST: kap_mcp_req_check() -> answer r.answer with r.status, or send
 *      r.forward (Content-Type: application/json).  GET/DELETE: no body.
 *   3. Reply, by kap_mcp_reply_kind(): JSON -> the whole body (at most
 *      KAP_MCP_REPLY_MAX) through kap_mcp_reply_json(f, body, len, &r)
 *      (502 when REFUSED); SSE -> kap_mcp_sse_errors(&r) first, then every
 *      read through kap_mcp_sse_filter_feed() (end the stream on
 *      KAP_ERROR); PASS -> as is, except that a 202/204 for a request
 *      with r.ndenied > 0 becomes 200 with kap_mcp_req_errors(&r);
 *      REFUSE -> 502 unless the body is empty.  Content-Type sent on is
 *      the canonical one.
 *   4. Audit from r.msgs[] (method, tool, verdict) and the reply stats.
 */
#ifndef KAP_MCP_H
#define KAP_MCP_H

#include <stddef.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http.h>
#include <kapd/kap_json.h>

/* ---- tool patterns ------------------------------------------------------
 *
 *   get_issue   exactly that name
 *   get_*       every name that starts with "get_" (and "get_" itself)
 *   *           every name
 *
 * Names and patterns compare byte for byte (case-sensitive).  A '*'
 * anywhere but at the end, an empty pattern, control characters, spaces
 * and invalid UTF-8 are configuration errors.  Deny wins over allow; a
 * name no allow pattern covers is denied.
 */
#define KAP_MCP_PATTERN_MAX 256     /* bytes of one pattern */

/* One pattern, as configured.  Owned by the policy's pool. */
struct kap_mcp_rule {
    const char          *text;      /* as written, NUL-terminated */
    size_t               plen;      /* bytes compared (without the '*') */
    unsigned             deny:1;    /* from the deny list */
    unsigned             prefix:1;  /* ends in '*' */
    const char          *file;      /* config file, or "" */
    int                  line;      /* config line, or 0 */
    struct kap_mcp_rule *next;      /* in configuration order */
};

/* The allow and deny patterns of one server.  Read-only once built. */
struct kap_mcp_tools {
    struct kap_pool     *pool;      /* borrowed */
    struct kap_mcp_rule *allow, **allow_tail;
    struct kap_mcp_rule *deny, **deny_tail;
    size_t               nallow, ndeny;
};

/* Why a name was allowed or denied. */
enum kap_mcp_why {
    KAP_MCP_ALLOWED = 0,   /* rule: the first allow pattern covering it */
    KAP_MCP_DENIED,        /* rule: the first deny pattern covering it */
    KAP_MCP_NOT_ALLOWED    /* no allow pattern covers it (rule NULL) */
};

struct kap_mcp_verdict {
    int                         allow;   /* 1 allowed, 0 denied */
    enum kap_mcp_why            why;
    const struct kap_mcp_rule  *rule;    /* borrowed from the policy */
};

/* An empty policy (denies every name) owned by pool; NULL on OOM. */
struct kap_mcp_tools *kap_mcp_tools_create(struct kap_pool *pool);

/*
 * Add one pattern (copied into the pool).  file/line name its place in
 * the configuration (NULL/0: none).  KAP_OK, or KAP_ERROR with err set
 * (an invalid pattern, out of memory).
 */
int kap_mcp_tools_add(struct kap_mcp_tools *t, int deny, const char *pattern,
                      const char *file, int line, struct kap_err *err);

/*
 * The `allow` and `deny` settings of server `server` (either may be
 * NULL: absent).  Each must be an array or list of strings.  A missing or
 * empty allow is an error that suggests allow = ["*"].  KAP_OK or
 * KAP_ERROR with err set at the offending setting.
 */
int kap_mcp_tools_conf(struct kap_mcp_tools *t, const config_setting_t *allow,
                       const config_setting_t *deny, const char *server,
                       struct kap_err *err);

/* 1 when an allow pattern of t is exactly name (no '*': what "allow
   always" writes), which an ask pattern does not override. */
int kap_mcp_tools_named(const struct kap_mcp_tools *t, const char *name);

/* Decide for tool `name` (NUL-terminated; NULL is denied as not allowed). */
void kap_mcp_tools_match(const struct kap_mcp_tools *t, const char *name,
                         struct kap_mcp_verdict *v);

/*
 * What decided, for messages and the audit log, into buf (always
 * NUL-terminated, cut to n bytes): `allow rule "get_*"`,
 * `deny rule "delete_*"`, `no allow rule matches`.  Returns buf.
 */
const char *kap_mcp_verdict_describe(const struct kap_mcp_verdict *v,
                                     char *buf, size_t n);

/* ---- Content-Type ------------------------------------------------------ */

enum kap_mcp_media {
    KAP_MCP_MEDIA_NONE = 0,   /* no value, or only spaces */
    KAP_MCP_MEDIA_JSON,       /* application/json */
    KAP_MCP_MEDIA_SSE,        /* text/event-stream */
    KAP_MCP_MEDIA_OTHER
};

struct kap_mcp_ctype {
    enum kap_mcp_media media;
    unsigned           ncharset;      /* charset parameters */
    int                charset_utf8;  /* the (last) charset is utf-8 */
    unsigned           nother;        /* other parameters */
};

/*
 * Read a Content-Type value (NULL: none) into ct.  KAP_OK, or KAP_ERROR
 * when it does not parse (ct->media still says what the type/subtype
 * before the error was, if that much parsed).
 */
int kap_mcp_ctype_parse(const char *v, struct kap_mcp_ctype *ct);

/* NULL when v is a request's acceptable Content-Type (application/json,
 * at most one charset and it utf-8), else the reason (static text). */
const char *kap_mcp_ctype_request(const char *v);

enum kap_mcp_reply_kind {
    KAP_MCP_REPLY_JSON = 0,   /* filter it: kap_mcp_reply_json() */
    KAP_MCP_REPLY_SSE,        /* filter it: kap_mcp_sse_filter_feed() */
    KAP_MCP_REPLY_PASS,       /* pass on (an error status, 202, 204) */
    KAP_MCP_REPLY_REFUSE      /* a 2xx body no filter reads: 502 unless
                                 the body is empty */
};

/* What to do with an upstream reply of this status and Content-Type.
 * The module sends the canonical type (application/json,
 * text/event-stream) on, never the upstream's value. */
enum kap_mcp_reply_kind kap_mcp_reply_kind(int status,
                                           const char *content_type);

/* ---- routing ------------------------------------------------------------ */

#define KAP_MCP_NAME_MAX 64   /* bytes of a server name */

/* 1 when name (n bytes) is a server name, as `kap mcp add` registers
 * them: [A-Za-z0-9][A-Za-z0-9_-]{0,63}. */
int kap_mcp_name_ok(const char *name, size_t n);

/*
 * The server a request-target names: origin-form "/NAME" or
 * "/NAME/rest" (the rest is ignored), under prefix when it is set and
 * not empty ("/mcp" takes "/mcp/NAME").  KAP_OK with NAME copied into
 * name (n bytes, NUL-terminated), or KAP_ERROR with *why (static text):
 * a query string or fragment (JSON-RPC is read from the body only), not
 * a path, outside the prefix, no valid name.
 */
int kap_mcp_route(const char *target, const char *prefix, char *name,
                  size_t n, const char **why);

/*
 * The agent's request headers that go upstream (borrowed from the
 * request; NULL when absent).  Content-Type is picked for the request
 * check only: kapd sends its own.
 */
struct kap_mcp_fwd_headers {
    const struct kap_http_header *session;        /* Mcp-Session-Id: the
                                                     module maps it */
    const struct kap_http_header *version;        /* MCP-Protocol-Version */
    const struct kap_http_header *last_event_id;  /* Last-Event-ID */
    const struct kap_http_header *accept;         /* Accept */
    const struct kap_http_header *content_type;   /* for the check */
};

/*
 * Pick those of the n headers h (a request's, kap_http.h) into out.
 * KAP_OK, or KAP_ERROR with *why (static text; answer 400): one of them
 * sent twice, or a value that is empty, over 1024 bytes, holds a control
 * character or a non-ASCII byte, or (MCP-Protocol-Version) is not a date
 * YYYY-MM-DD.  Every header not picked is dropped: Authorization, Cookie
 * and the rest never reach the server.
 */
int kap_mcp_headers_pick(const struct kap_http_header *h, size_t n,
                         struct kap_mcp_fwd_headers *out, const char **why);

/* ---- JSON-RPC helpers (kap_mcp_jsonrpc.c) --------------------------------- */

#define KAP_MCP_PARSE_ERROR      (-32700)
#define KAP_MCP_INVALID_REQUEST  (-32600)
#define KAP_MCP_INVALID_PARAMS   (-32602)
#define KAP_MCP_INTERNAL_ERROR   (-32603)

/*
 * 1 when a case-insensitive reader may take member name (or method) s
 * for `name` (lower-case ASCII): ASCII case and surrounding white space
 * ignored, and U+017F, U+212A, U+0130, U+0131 read as s, k, i, i (Go,
 * Java, .NET).  _variant: such a reading that is not s == name itself.
 */
int kap_mcp_fold_eq(const char *s, const char *name);
int kap_mcp_fold_variant(const char *s, const char *name);

/* 1 when id is a request id kapd accepts: a string, or an integer
 * written as one (no fraction, no exponent). */
int kap_mcp_id_ok(const struct kap_json *id);

/*
 * Write one JSON-RPC error response to w: id (NULL: null), code, message;
 * with tool and v also "data": {"tool", "rule", "list"}.
 */
void kap_mcp_error_w(struct kap_json_writer *w, const struct kap_json *id,
                     int code, const char *message, const char *tool,
                     const struct kap_mcp_verdict *v);

/* ---- request check ------------------------------------------------------ */

/* One JSON-RPC message of a request (the body, or one batch element). */
struct kap_mcp_msg {
    const struct kap_json *node;     /* in the checked tree */
    const struct kap_json *id;       /* a valid id, or NULL */
    const char            *method;   /* NULL: a response of the client's */
    const char            *tool;     /* tools/call: params.name */
    struct kap_mcp_verdict verdict;  /* tools/call: the policy's */
    int                    code;     /* 0, or the JSON-RPC error it gets */
    const char            *message;  /* that error's message */
    unsigned               denied:1; /* a tools/call the policy refused */
    unsigned               list:1;   /* tools/list */
};

/* The decision for one request body.  Everything is owned by r. */
struct kap_mcp_req {
    struct kap_pool    *pool;       /* the tree, msgs and their messages */
    int                 status;     /* 0: forward; else answer locally */
    struct kap_buf      forward;    /* status 0: the bytes to send upstream */
    struct kap_buf      answer;     /* status != 0: the JSON answer body */
    int                 batch;      /* the body is an array */
    struct kap_mcp_msg *msgs;
    size_t              nmsgs;
    size_t              ndenied;    /* denied calls, answered here */
    size_t              nrequests;  /* forwarded requests (ids) */
    size_t              lists;      /* forwarded tools/list requests */
    int                 oom;
    char                reason[256]; /* status 400/415: why */
};

/*
 * Check body (len bytes, the whole request body) sent with Content-Type
 * content_type (NULL: none) under policy t and parse limits lim (NULL:
 * kap_json's defaults).  Fills r (free it with kap_mcp_req_free() either
 * way).  KAP_OK, or KAP_ERROR when out of memory (answer 500).
 *
 *   415  Content-Type not application/json (charset utf-8 only)
 *   400  not strict JSON (-32700); not strict JSON-RPC, an empty batch,
 *        a nested array, an id used twice in a batch (-32600/-32602):
 *        nothing is forwarded, a refused batch answers every request
 *   200  every message a denied tools/call (-32602 each)
 *   0    forward r->forward; r->ndenied denied calls left out of it
 */
int kap_mcp_req_check(struct kap_mcp_req *r, const struct kap_mcp_tools *t,
                      const char *content_type, const char *body, size_t len,
                      const struct kap_json_limits *lim);

/* The errors of r's denied calls: an array for a batch, else the one
 * object.  Appended to out; KAP_OK, KAP_ERROR (OOM, or none denied). */
int kap_mcp_req_errors(const struct kap_mcp_req *r, struct kap_buf *out);

void kap_mcp_req_free(struct kap_mcp_req *r);

/* Write message m's error response (m->code != 0) to w. */
void kap_mcp_msg_error_w(struct kap_json_writer *w, const struct kap_mcp_msg *m);

/* ---- reply filter (kap_mcp_reply.c) --------------------------------------
 *
 * A message lists tools when a member a case-insensitive client reads as
 * "result" is an object with a member it reads as "tools" that is an
 * array.  Such a message is printed again with every tools array
 * filtered; a tool stays only when it is an object with exactly one
 * member read as "name", that member is "name" itself, a string, allowed
 * by the policy, and keep() (if set) agrees.  Everything else passes as
 * the server wrote it.  Parsed strictly but with loose numbers.
 */
#define KAP_MCP_REPLY_MAX   (8 * 1024 * 1024)  /* bytes of one JSON reply */
#define KAP_MCP_REPLY_DEPTH 256

struct kap_mcp_filter {
    const struct kap_mcp_tools *tools;     /* borrowed */
    /* optional second say on an allowed tool (pinning): 0 drops it */
    int                       (*keep)(void *arg, const char *name,
                                      const struct kap_json *tool);
    void                       *arg;
    struct kap_json_limits      lim;       /* 0 fields: the defaults above */
};

/* Counters the filter adds to (zero them once; for the audit log). */
struct kap_mcp_reply_stats {
    size_t messages;   /* JSON-RPC messages read */
    size_t lists;      /* tools arrays filtered */
    size_t tools;      /* tools seen in them */
    size_t removed;    /* tools taken out */
    size_t dropped;    /* batch elements or SSE events not passed on */
};

enum kap_mcp_filtered {
    KAP_MCP_PASS = 0,    /* send the input unchanged */
    KAP_MCP_REWRITTEN,   /* send what was appended to out instead */
    KAP_MCP_REFUSED      /* send nothing of it: err says why */
};

/*
 * Filter one JSON text (a reply body or an SSE event's data): a message
 * or a batch.  With merge (a checked request with denied calls) their
 * errors are appended: to the batch, or a single message becomes a
 * batch of it and them.  Returns an enum kap_mcp_filtered, or KAP_ERROR
 * when out of memory (out as it was).  REFUSED: not strict JSON, or not
 * an object or array; the module answers 502 (a JSON reply) or drops
 * the event's data (SSE).
 */
int kap_mcp_reply_json(const struct kap_mcp_filter *f, const char *data,
                       size_t len, const struct kap_mcp_req *merge,
                       struct kap_buf *out, struct kap_mcp_reply_stats *st,
                       struct kap_err *err);

/* ---- event streams ------------------------------------------------------- */

#define KAP_MCP_SSE_MAX (8 * 1024 * 1024)   /* bytes of one event, default */

/* One event (or comment) as parsed.  Every pointer is borrowed for the
 * callback's duration only; data/type/id are not NUL-terminated. */
struct kap_mcp_sse_event {
    int                comment;        /* a comment line, nothing else */
    const char        *data;           /* data lines joined with LF */
    size_t             data_len;
    int                has_data;       /* a data field was seen */
    const char        *type;           /* event field ("" none) */
    size_t             type_len;
    const char        *id;             /* id field (has_id) */
    size_t             id_len;
    int                has_id;
    unsigned long long retry;          /* retry field (has_retry) */
    int                has_retry;
};

/* Called for each whole event and comment; KAP_OK, or KAP_ERROR to stop
 * (the feed then fails). */
typedef int (*kap_mcp_sse_cb)(void *arg, const struct kap_mcp_sse_event *ev);

/* Parser state: zero it with kap_mcp_sse_init(), free its buffers with
 * kap_mcp_sse_free(). */
struct kap_mcp_sse {
    size_t             max;            /* bytes of line + fields */
    unsigned           bom;            /* BOM bytes matched at the start */
    unsigned           started:1;      /* past the BOM check */
    unsigned           cr:1;           /* last byte a CR */
    unsigned           comment:1;      /* in a comment line */
    unsigned           failed:1;
    unsigned           has_data:1, has_id:1, has_retry:1;
    unsigned long long retry;
    struct kap_buf     line, data, type, id;
    size_t             events;         /* dispatched */
};

/* max: bytes of one event (0: KAP_MCP_SSE_MAX). */
void kap_mcp_sse_init(struct kap_mcp_sse *s, size_t max);
void kap_mcp_sse_free(struct kap_mcp_sse *s);

/*
 * Feed n bytes (any split of the stream); cb runs for every event the
 * bytes complete.  KAP_OK, or KAP_ERROR with err set: an event over the
 * maximum, out of memory, or cb said stop.  After an error every feed
 * fails.
 */
int kap_mcp_sse_feed(struct kap_mcp_sse *s, const char *p, size_t n,
                     kap_mcp_sse_cb cb, void *arg, struct kap_err *err);

/* 1 when the stream stopped inside an event (the standard discards it). */
int kap_mcp_sse_pending(const struct kap_mcp_sse *s);

/*
 * Append one event in the canonical framing: ev's event type (when there
 * is data), id and retry, then data (len bytes, LF-separated lines) when
 * has_data; a comment as ":".  ev may be NULL (data only).  Nothing is
 * written for an event without data, id and retry.  KAP_OK or KAP_ERROR.
 */
int kap_mcp_sse_write(struct kap_buf *out, const struct kap_mcp_sse_event *ev,
                      const char *data, size_t len, int has_data);

/* An upstream event stream on its way to the agent. */
struct kap_mcp_sse_filter {
    struct kap_mcp_sse           sse;
    const struct kap_mcp_filter *f;            /* borrowed */
    struct kap_mcp_reply_stats   st;
    char                         last_refusal[256];  /* an event's data
                                                        dropped: why */
    struct kap_buf              *out;          /* during a feed */
    struct kap_buf               tmp;
};

void kap_mcp_sse_filter_init(struct kap_mcp_sse_filter *sf,
                             const struct kap_mcp_filter *f, size_t max_event);
/*
 * Parse n more bytes, filter each whole event's data (kap_mcp_reply_json:
 * a list rewritten, unreadable data dropped with the event's id and
 * retry kept) and append the events re-framed to out.  KAP_OK, or
 * KAP_ERROR with err set (event over the maximum, out of memory): end
 * the stream.
 */
int kap_mcp_sse_filter_feed(struct kap_mcp_sse_filter *sf, const char *p,
                            size_t n, struct kap_buf *out, struct kap_err *err);
void kap_mcp_sse_filter_free(struct kap_mcp_sse_filter *sf);

/* Append r's denied calls' errors, one event each.  KAP_OK or KAP_ERROR. */
int kap_mcp_sse_errors(const struct kap_mcp_req *r, struct kap_buf *out);

/* ---- tool pins ------------------------------------------------------------ */

#define KAP_MCP_PIN_HEX 64   /* hex digits of a pin digest */

/*
 * Append tool's definition as canonical JSON to out: the object without
 * its "_meta" member, every object's members sorted by name, compact.
 * Reordering or re-spacing keeps the text; any other change alters it.
 * KAP_OK or KAP_ERROR (out of memory; out as it was).
 */
int kap_mcp_pin_text(const struct kap_json *tool, struct kap_buf *out);
/* SHA-256 of kap_mcp_pin_text() as 64 lowercase hex digits. */
int kap_mcp_pin_digest(const struct kap_json *tool,
                       char hex[KAP_MCP_PIN_HEX + 1]);

#endif /* KAP_MCP_H */
