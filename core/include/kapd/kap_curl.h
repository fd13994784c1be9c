/*
 * kap_curl.h -- HTTP(S) requests from kapd to upstreams, over libcurl.
 *
 * One libcurl multi handle per generation, created on first use and
 * cleaned up when the generation retires, runs on kapd's libev loop.
 * A module starts a transfer with kap_curl_fetch() and gets one done
 * callback with the status, the final response's headers and the body,
 * or an error text; or with kap_curl_stream(), which hands over the
 * head as soon as it arrives and the body in pieces, with backpressure.
 *
 * What a module does NOT have to do, because kap_curl does it for every
 * transfer (docs/design/kap-curl.md):
 * - Only http and https, for the request and for any redirect; redirects
 *   are never followed (a 3xx is an answer like any other); no proxy,
 *   from the environment or elsewhere; no cookies, alt-svc or HSTS files.
 * - The host is resolved by kapd's resolver (kap_resolver.h), and a
 *   KAP_REQ_ADDR question (subject: the address, port: the port,
 *   attribute "host": the name, asked_by: opts->asked_by) is asked for
 *   EVERY address before anything is dialled.  One refused address ends
 *   the fetch with an error naming it and the reason.  libcurl is then
 *   pinned to exactly the allowed addresses: they are its only DNS
 *   answer (CURLOPT_RESOLVE), a socket to any other address is refused
 *   (CURLOPT_OPENSOCKETFUNCTION), and a connection it reuses must be to
 *   one of them as well (CURLOPT_PREREQFUNCTION).
 * kap_curl asks nothing about the name or the URL itself: the calling
 * module asks its own question (its kind) before it fetches.
 *
 * Rules:
 * - Call from the event loop thread only.
 * - The done callback is never called before kap_curl_fetch() returns,
 *   and is called exactly once unless the transfer is cancelled first
 *   (kap_curl_cancel, or destruction of the pool it was started with):
 *   then it is never called.
 * - A transfer holds a reference on its generation until it is released.
 */
#ifndef KAP_CURL_H
#define KAP_CURL_H

#include <stddef.h>

#include <kapd/kap_core.h>

/* One transfer.  Opaque; owned by the core. */
struct kap_curl;

#define KAP_CURL_MAX_BODY_DEFAULT   (1024 * 1024)  /* response body bytes */
#define KAP_CURL_MAX_HEADERS        (64 * 1024)    /* response header bytes */
#define KAP_CURL_MAX_URL            8192
#define KAP_CURL_TIMEOUT_DEFAULT    30.0           /* seconds, whole fetch */
#define KAP_CURL_CONNECT_DEFAULT    10.0           /* seconds, connect+TLS */

/*
 * What to fetch.  Every pointer is borrowed for the kap_curl_fetch() call
 * only (what is needed later is copied); zero/NULL fields get defaults.
 */
struct kap_curl_opts {
    const char         *url;          /* http:// or https:// URL; the host
                                         must be ASCII (xn-- form) */
    const char         *asked_by;     /* module name for the KAP_REQ_ADDR
                                         questions and log lines; required */
    struct kap_conn    *conn;         /* the client the fetch is for, or
                                         NULL: r->conn and r->client of the
                                         questions; must outlive the fetch
                                         (use its pool) */
    const char         *method;       /* NULL: GET, or POST with a body;
                                         else an HTTP token ("PUT", "HEAD") */
    const char *const  *headers;      /* "Name: value" lines, NULL-ended;
                                         a line holding CR or LF is refused */
    const void         *body;         /* request body, or NULL */
    size_t              body_len;
    size_t              max_body;     /* response body limit, bytes; 0:
                                         KAP_CURL_MAX_BODY_DEFAULT */
    double              timeout;      /* whole fetch, resolving and the
                                         policy questions included; 0:
                                         KAP_CURL_TIMEOUT_DEFAULT */
    double              connect_timeout; /* 0: KAP_CURL_CONNECT_DEFAULT */
    const char         *ca_file;      /* PEM file of trusted CAs for https,
                                         or NULL: the system's store */
    const char         *unix_socket;  /* absolute path of a local service's
                                         unix socket (the Docker Engine
                                         API), or NULL.  Set: the URL's host
                                         names nothing, no resolving and no
                                         KAP_REQ_ADDR question (the path is
                                         the operator's configuration, not
                                         an address anyone asked for), and
                                         libcurl connects to this path only;
                                         every other rule holds */
};

/*
 * The outcome, borrowed for the done callback only.
 *   rc       KAP_OK       a response arrived (any status, 3xx and 5xx too);
 *            KAP_DECLINED refused before any byte was sent: a KAP_REQ_ADDR
 *                         question denied an address, or the URL, method
 *                         or a header line is not allowed;
 *            KAP_ERROR    failed: resolving, connecting, TLS, timeout, a
 *                         response over a limit, out of memory.
 *   status   HTTP status of the final response, 0 when there is none.
 *   headers  the final response's status line and header lines as
 *            received (CRLF-terminated); interim 1xx blocks are dropped.
 *   body     the response body (decoded from chunked, never decompressed).
 *            The callback may keep headers->data or body->data by taking
 *            the pointer and zeroing the kap_buf; it then frees it with
 *            free() (or kap_buf_free on a struct holding it).
 *   error    NULL when rc is KAP_OK; else why, for logs and for the
 *            client (never a credential from opts->headers): "address
 *            127.0.0.1 of x.test refused: <reason>", "scheme ftp is not
 *            allowed", "timeout after 30 s", libcurl's error text, ...
 */
struct kap_curl_result {
    int             rc;
    long            status;
    struct kap_buf *headers;
    struct kap_buf *body;
    const char     *error;
};

typedef void (*kap_curl_done_fn)(struct kap_curl *cu,
                                 struct kap_curl_result *res, void *data);

/*
 * Start fetching o->url in generation gen (its policy answers the address
 * questions; pass kap_gen_current() for the newest, or the connection's).
 * The transfer is released by a cleanup of pool (normally the client
 * connection's or request's pool): destroying the pool mid-transfer stops
 * it and frees everything, without calling done.  After done returns, the
 * transfer is released at once (the pool cleanup runs then), so a long
 * connection that fetches many times costs its pool one small cleanup
 * record per fetch.  done may destroy pool or start other fetches.
 * Returns the transfer, valid until done returns or until it is
 * cancelled; or NULL on out of memory or missing arguments (then done is
 * never called).  Every other failure, bad URLs included, reaches done.
 */
struct kap_curl *kap_curl_fetch(struct kap_gen *gen, struct kap_pool *pool,
                                const struct kap_curl_opts *o,
                                kap_curl_done_fn done, void *data);

/*
 * Streaming: the response head as soon as it arrives, then the body in
 * pieces as they arrive, then done.  For an SSE stream or a long body
 * that a module passes on to its client while it comes.
 *
 *   head(cu, status, headers, data)
 *       once, when the final response's head is complete (interim 1xx
 *       blocks are skipped): its status and the status line and header
 *       lines as received (CRLF-terminated, borrowed for the call).
 *   body(cu, p, n, data)
 *       each piece of the body as it arrives (decoded from chunked, never
 *       decompressed), n > 0, borrowed for the call.
 *   Both return
 *       KAP_OK     go on;
 *       KAP_AGAIN  the bytes are taken, but hand over nothing more until
 *                  kap_curl_resume(cu): kapd stops reading the upstream
 *                  (libcurl holds at most one more piece; the upstream's
 *                  writes then block on TCP flow control);
 *       KAP_ERROR  stop: the transfer ends and done reports KAP_ERROR
 *                  "stopped by the caller".
 *   Inside head and body the caller may close its connection, destroy
 *   the pool or kap_curl_cancel(cu): the transfer stops, is released from
 *   the loop afterwards, and done is never called.
 *
 * In this mode o->timeout (0: KAP_CURL_TIMEOUT_DEFAULT) covers only what
 * comes before the head: resolving, the address questions, connecting,
 * sending the request and waiting for the head.  Once the head has
 * arrived no deadline applies: an idle stream (an SSE stream with nothing
 * to say) stays open until either side ends it.  o->max_body 0 means no
 * limit on the body bytes handed over; otherwise the transfer ends with
 * "response body over the size limit" past it.  A stream is always
 * HTTP/1.1 (one per connection, so pausing it holds back no other
 * transfer).  Everything else -- the
 * URL, scheme and header checks, the address questions and the pinning,
 * no redirects, no proxy -- is exactly as for kap_curl_fetch().
 *
 * done is called once at the end, as for kap_curl_fetch(), with
 * res->body empty (the bytes went to body): rc KAP_OK when the whole
 * response arrived; KAP_ERROR (and status 0) when it failed before the
 * head; KAP_ERROR with the status of the head already handed over when
 * the body was cut short.  done may come while paused (nothing more was
 * on its way); cu is invalid after done, so kap_curl_resume() must not be
 * called then.  ops is copied; every other rule of kap_curl_fetch()
 * (pool, cancel, never before return) holds.
 */
struct kap_curl_stream_ops {
    int (*head)(struct kap_curl *cu, long status,
                const struct kap_buf *headers, void *data);
    int (*body)(struct kap_curl *cu, const char *p, size_t n, void *data);
};

struct kap_curl *kap_curl_stream(struct kap_gen *gen, struct kap_pool *pool,
                                 const struct kap_curl_opts *o,
                                 const struct kap_curl_stream_ops *ops,
                                 kap_curl_done_fn done, void *data);

/*
 * A paused stream (head or body returned KAP_AGAIN) may go on.  libcurl is
 * told from the loop, never from inside this call, so body is never
 * called before kap_curl_resume() returns.  No-op when cu is not paused;
 * NULL is ok.
 */
void kap_curl_resume(struct kap_curl *cu);

/*
 * Stop a transfer whose done callback has not been called: done is never
 * called, the connection and memory are released, cu is invalid.  NULL
 * is ok; a call from inside cu's own done callback does nothing (cu is
 * released when it returns).
 */
void kap_curl_cancel(struct kap_curl *cu);

/* Transfers in progress in gen's multi handle (for status and tests). */
unsigned kap_curl_pending(struct kap_gen *gen);

#endif /* KAP_CURL_H */
