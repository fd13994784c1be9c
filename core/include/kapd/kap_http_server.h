/*
 * kap_http_server.h -- the HTTP/1.1 server layer for modules that answer
 * requests themselves (mcp, remote, cli, the test modules).
 *
 * A module's accept callback hands its struct kap_conn to
 * kap_http_server_start() (plain) or kap_http_server_start_tls() (TLS
 * terminated by kap_tls.h) with a handler.  From then on the layer owns
 * the connection:
 *   - it reads and parses requests with kap_http.h (strict: ambiguous
 *     framing is answered 400 and the connection closed), bodies by
 *     Content-Length or chunked up to conf->max_body (413), and answers
 *     "Expect: 100-continue";
 *   - it calls handler once per complete request (head and whole body)
 *     with a struct kap_http_ex, one at a time: pipelined requests wait
 *     in the input buffer until the response before them has ended, so
 *     responses go out in request order;
 *   - it writes responses (a whole one, a local error page, or a
 *     streamed body: chunked, or SSE events) with backpressure: the
 *     output queue is bounded by conf->high_water, not by the producer;
 *   - keep-alive per RFC 9112 (HTTP/1.0 only with "Connection:
 *     keep-alive"), header and idle timeouts, a write timeout, and a
 *     lingering close after an error so that the answer is read before
 *     any reset (kap_conn_linger()).
 *
 * Lifetime of an exchange: ex is valid from the handler call until the
 * module ends the response (kap_http_respond(), kap_http_error(),
 * kap_http_stream_end()), or until the on_abort callback it set has
 * returned -- whichever comes first.  Everything borrowed from ex (the
 * request head, the body, the pool) is valid for that long.  The module
 * may answer from inside the handler or later from any loop callback.
 * When the client goes away (EOF, reset, write timeout) before the
 * response has ended, on_abort is called (once) and ex is gone when it
 * returns; without an on_abort the module would never learn of it, so a
 * module that answers later MUST set one.  The connection (struct
 * kap_conn and its pool) stays valid while an exchange is alive.
 *
 * All functions: event loop thread only.
 */
#ifndef KAP_HTTP_SERVER_H
#define KAP_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http.h>

struct kap_tls_ctx;

/* Defaults of struct kap_http_server_conf's zero fields. */
#define KAP_HTTP_SERVER_HEADER_TIMEOUT  10.0          /* s for one head */
#define KAP_HTTP_SERVER_IDLE_TIMEOUT    60.0          /* s between requests */
#define KAP_HTTP_SERVER_WRITE_TIMEOUT   60.0          /* s without progress */
#define KAP_HTTP_SERVER_MAX_BODY        (1024 * 1024) /* request body bytes */
#define KAP_HTTP_SERVER_HIGH_WATER      (64 * 1024)   /* queued output bytes */
#define KAP_HTTP_SERVER_MAX_CONNS       1024          /* per module */

/* How local error pages are written. */
enum kap_http_error_format {
    KAP_HTTP_ERR_TEXT = 0,    /* text/plain: "kap: <why>\n" */
    KAP_HTTP_ERR_JSON         /* application/json: {"error":..,"status":N} */
};

/*
 * Per-listener settings; copied by kap_http_server_start(), so the
 * module's struct may live anywhere.  Zero fields get the defaults.
 */
struct kap_http_server_conf {
    const char  *module;          /* name in logs (required, static) */
    double       header_timeout;  /* a request head must arrive within */
    double       idle_timeout;    /* keep-alive wait for the next request */
    double       write_timeout;   /* queued output without progress */
    size_t       max_body;        /* request body limit (413 over it) */
    size_t       high_water;      /* output bytes queued before writes
                                     report KAP_AGAIN */
    int          error_format;    /* enum kap_http_error_format */
    unsigned     max_connections; /* open connections of the module (all
                                     its listeners, lingering ones too);
                                     over it: 503 and close */
    unsigned     max_per_client;  /* from one client address; over it:
                                     429 and close; 0: no limit */
    struct kap_http_limits limits;/* request line/head/header limits */
    int          upgrade;         /* 1: a GET with an Upgrade field and
                                     no body reaches the handler, which
                                     answers kap_http_upgrade() or an
                                     error; KAP_HTTP_UPGRADE_BODY: a
                                     request of any method but CONNECT
                                     with an Upgrade field does, its body
                                     read in whole first (the client's
                                     bytes behind the body go to on_data
                                     after the 101, or are the next
                                     request after any other answer);
                                     0: 501 and close */
};

#define KAP_HTTP_UPGRADE_BODY 2

/* One request and its response.  Opaque. */
struct kap_http_ex;

/*
 * Called with each complete request.  The module answers now or later
 * (see the file comment).  data is the one given to _start.
 */
typedef void (*kap_http_handler_fn)(struct kap_http_ex *ex, void *data);

/*
 * Serve HTTP/1.1 on c (accepted by the core, nothing read from it).
 * conf is copied; data is passed to every handler call.  The layer keeps
 * its state in c->pool and closes c itself (kap_conn_close) when the
 * connection ends; the module must not close c while an exchange is
 * alive (use kap_http_ex_close()).  Returns KAP_OK, or KAP_ERROR (out of
 * memory, logged): c has been closed.
 */
int kap_http_server_start(struct kap_conn *c,
                          const struct kap_http_server_conf *conf,
                          kap_http_handler_fn handler, void *data);

/*
 * The same over TLS: the handshake with ctx runs first (kap_tls.h); the
 * first request is read after it.  A failed handshake closes c
 * (logged by the TLS layer); the handler is never called for it.
 */
int kap_http_server_start_tls(struct kap_conn *c, struct kap_tls_ctx *ctx,
                              const struct kap_http_server_conf *conf,
                              kap_http_handler_fn handler, void *data);

/* ---- the request (all borrowed from ex) ---------------------------------- */

/* The parsed head: method, target, headers (kap_http.h). */
const struct kap_http_req *kap_http_ex_req(const struct kap_http_ex *ex);
/* The whole request body (decoded from chunked; "" and 0 when none). */
const char *kap_http_ex_body(const struct kap_http_ex *ex, size_t *len);
/* The connection (peer address, credentials, generation). */
struct kap_conn *kap_http_ex_conn(const struct kap_http_ex *ex);
/* A pool that lives exactly as long as the exchange. */
struct kap_pool *kap_http_ex_pool(struct kap_http_ex *ex);
/* The first header named name (case-insensitive) as a NUL-terminated
   copy in the exchange's pool, or NULL. */
const char *kap_http_ex_header(struct kap_http_ex *ex, const char *name);

/* ---- callbacks --------------------------------------------------------- */

/*
 * on_abort: the client went away (or the connection must end: shutdown
 * grace over, write timeout) before the response ended.  Stop producing;
 * ex is freed when fn returns.
 * on_drain: a write returned KAP_AGAIN and the queue has now fallen to
 * half of high_water: produce more.  Called only after a KAP_AGAIN.
 * fn may be NULL to unset.
 */
typedef void (*kap_http_ex_fn)(struct kap_http_ex *ex, void *data);
void kap_http_ex_on_abort(struct kap_http_ex *ex, kap_http_ex_fn fn,
                          void *data);
void kap_http_ex_on_drain(struct kap_http_ex *ex, kap_http_ex_fn fn,
                          void *data);

/* ---- responses ----------------------------------------------------------- */

/*
 * Add a response header before the response starts.  name must be a
 * token, value printable (no CR, LF or other controls): anything else,
 * and headers the layer writes itself (Content-Length,
 * Transfer-Encoding, Connection, Date), is refused with KAP_ERROR.
 * Both are copied.
 */
int kap_http_header_add(struct kap_http_ex *ex, const char *name,
                        const char *value);

/*
 * A whole response: status line, the added headers, Content-Type (if
 * content_type is not NULL), Content-Length, Connection, then body
 * (copied; NULL with len 0 for none; a HEAD request gets the head only).
 * Ends the exchange: ex is invalid when this returns.  KAP_OK, or
 * KAP_ERROR when the connection is already failing (ex is gone all the
 * same).
 */
int kap_http_respond(struct kap_http_ex *ex, int status,
                     const char *content_type, const void *body, size_t len);

/*
 * A local error page (status >= 400) in the listener's error format,
 * with why (plain text, written escaped) as the message.  After a 4xx/5xx
 * the connection is kept only when the request was read in whole and
 * status is not 400/408/413/431; otherwise it is closed after a
 * lingering close.  Ends the exchange like kap_http_respond().
 */
int kap_http_error(struct kap_http_ex *ex, int status, const char *why);

/*
 * Streamed responses.  kap_http_stream_start() writes the head with
 * Transfer-Encoding: chunked (HTTP/1.1 clients) or with no length and
 * "Connection: close" (HTTP/1.0: the body ends when the connection
 * does).  Then any number of kap_http_stream_write() calls, and
 * kap_http_stream_end(), which ends the exchange.
 * kap_http_stream_write() queues data (copied) and tries to send it:
 *   KAP_OK     queued; the queue is below high_water: go on producing
 *   KAP_AGAIN  queued, but the queue is over high_water: stop producing
 *              until on_drain is called (writing more is not refused,
 *              but the module that ignores it holds the memory)
 *   KAP_ERROR  the connection is failing: on_abort follows from the
 *              loop (not from inside this call)
 * Writes of 0 bytes do nothing (an empty chunk would end the body).
 */
int kap_http_stream_start(struct kap_http_ex *ex, int status,
                          const char *content_type);
int kap_http_stream_write(struct kap_http_ex *ex, const void *data,
                          size_t len);
int kap_http_stream_end(struct kap_http_ex *ex);

/*
 * Server-sent events (text/event-stream, WHATWG HTML §9.2) over a
 * streamed response.  kap_http_sse_start() is kap_http_stream_start()
 * with status 200, Content-Type text/event-stream and Cache-Control:
 * no-store.  kap_http_sse_event() writes one event: "event:" when event
 * is not NULL, "id:" when id is not NULL (neither may hold CR, LF or
 * NUL), and data[0..len) split at every CRLF, CR or LF into "data:"
 * lines (a client joins them with LF: a payload without CR arrives
 * exactly as given, JSON included).  Returns
 * like kap_http_stream_write().  kap_http_sse_comment() writes a ":"
 * comment line (a keep-alive ping); text must not hold CR or LF.
 */
int kap_http_sse_start(struct kap_http_ex *ex);
int kap_http_sse_event(struct kap_http_ex *ex, const char *event,
                       const char *id, const void *data, size_t len);
int kap_http_sse_comment(struct kap_http_ex *ex, const char *text);

/* Bytes queued for the client and not yet sent (for tests and limits). */
size_t kap_http_ex_queued(const struct kap_http_ex *ex);

/*
 * End the exchange without a complete response and close the
 * connection (a chunked body is cut without its last chunk, so the
 * client sees the truncation).  ex is invalid afterwards.
 */
void kap_http_ex_close(struct kap_http_ex *ex);

/* ---- protocol upgrade (RFC 9110 §7.8), for WebSocket ------------------ */

/*
 * Called with the client's bytes after an upgrade, in order, from loop
 * callbacks only.  data[0..len) is borrowed for the call: the callee
 * consumes (copies or parses) all of it.
 */
typedef void (*kap_http_ex_data_fn)(struct kap_http_ex *ex,
                                    const char *data, size_t len,
                                    void *udata);

/*
 * Answer the request (a GET with an Upgrade field, on a listener with
 * conf->upgrade set) with "101 Switching Protocols", "Upgrade:
 * protocol", "Connection: Upgrade" and the headers added with
 * kap_http_header_add(), and switch the connection to raw bytes.  The
 * exchange stays alive: on_data gets every byte the client sends from
 * now on (those already read behind the request head first, from the
 * loop); kap_http_raw_write() sends bytes with the same output queue,
 * backpressure (KAP_AGAIN, on_drain) and write timeout as a streamed
 * response; on_abort is called when the client closes or fails (after
 * on_data got the bytes before its EOF).  There are no header or idle
 * timeouts any more: the protocol keeps its own.  The module ends it
 * with kap_http_raw_end() (flush, then close) or kap_http_ex_close()
 * (close now).  KAP_OK (when the connection is failing already,
 * on_abort follows from the loop), or KAP_ERROR (not an upgrade
 * request, already answered: the exchange is closed, on_abort is not
 * called).
 */
int kap_http_upgrade(struct kap_http_ex *ex, const char *protocol,
                     kap_http_ex_data_fn on_data, void *udata);
/*
 * Backpressure on the client's bytes after kap_http_upgrade(): with hold
 * non-zero on_data is not called; the bytes wait in the connection's
 * read-ahead (at most 64 KiB, then reading stops and the client's
 * writes block in TCP).  hold 0 hands what waits to on_data from the
 * loop (never from inside this call) and reads on.  Held, the client's
 * EOF is seen only while the read-ahead has room (then on_abort, the
 * held bytes dropped).  May be called from on_data.  KAP_OK, or
 * KAP_ERROR when ex is not upgraded.
 */
int kap_http_raw_hold(struct kap_http_ex *ex, int hold);

/* Queue bytes after kap_http_upgrade(); returns like
   kap_http_stream_write(). */
int kap_http_raw_write(struct kap_http_ex *ex, const void *data, size_t len);
/* Flush what is queued (within the write timeout), then close the
   connection (a lingering close when the client's bytes are pending, so
   that they cannot reset the connection before it read the last ones;
   kap_conn_linger()).  Ends the exchange: ex is invalid afterwards. */
int kap_http_raw_end(struct kap_http_ex *ex);

/* ---- response formatting, for modules with their own connection code ---- */

/*
 * Append a response head to out: "HTTP/1.1 <status> <reason>", then
 * "Content-Type" when content_type is not NULL, "Content-Length: <clen>"
 * when clen >= 0, extra (zero or more complete "Name: value\r\n" lines,
 * or NULL), "Connection: keep-alive|close", and the blank line.
 * KAP_OK or KAP_ERROR (out of memory; out unchanged).
 */
int kap_http_head_write(struct kap_buf *out, int status,
                        const char *content_type, long long clen,
                        const char *extra, int keep);

/*
 * Append a whole local error page (head and body) to out: text
 * ("kap: <why>\n") or JSON ({"error":"<why>","status":N}, why escaped),
 * with Cache-Control: no-store.  KAP_OK or KAP_ERROR.
 */
int kap_http_error_page(struct kap_buf *out, int status, const char *why,
                        int format, int keep);

/*
 * Append one SSE event (framed as kap_http_sse_event() says) to out.
 * KAP_OK, or KAP_ERROR (event or id holds CR, LF or NUL; out of memory;
 * out unchanged).
 */
int kap_http_sse_frame(struct kap_buf *out, const char *event,
                       const char *id, const void *data, size_t len);

/*
 * Lingering close, for any stream connection whose last response is
 * queued in the kernel: shutdown(SHUT_WR) so the client reads the answer
 * and an EOF, then read and discard what it still sends until its EOF,
 * 2 s without data, 10 s in all or 4 MiB, then kap_conn_close(c).  With
 * check non-zero the connection closes at once when nothing is pending
 * to read (the common case costs one recv()).  The core takes c over:
 * the module must have stopped every watcher of its own on c->fd and
 * must not touch c again (its pool cleanups run at the final close).
 */
void kap_conn_linger(struct kap_conn *c, int check);

#endif /* KAP_HTTP_SERVER_H */
