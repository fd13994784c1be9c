/*
 * kap_http.h -- kapd's strict HTTP/1.1 message parser (RFC 9112).
 *
 * Zero-copy and incremental over a caller-owned buffer: the caller keeps
 * appending received bytes to one contiguous buffer and calls the parser
 * again with the whole buffer; the parser remembers how far it has
 * scanned, so each byte is examined once while looking for the end of the
 * head.  Results (method, target, header names and values) are counted
 * strings pointing INTO the caller's buffer: they stay valid while the
 * buffer is neither freed nor moved.  Nothing is allocated.
 *
 * Ambiguous framing is rejected, never "repaired": CL+TE together,
 * duplicate or list-valued Content-Length, transfer codings other than a
 * final "chunked", obs-fold, bare CR or LF, NUL and other controls,
 * invalid header names, whitespace before the colon, a missing or
 * duplicate Host in HTTP/1.1.  A rejected message carries the HTTP status
 * to answer with (400, 414, 431, 501, 505) and a static reason.
 *
 * Pipelining: parse_request returns the head length; the caller consumes
 * the head plus the body (CL or chunked) and calls again for the next
 * request on the remaining bytes (after kap_http_req_reset()).
 *
 * All functions are pure (no globals, no I/O) and may be called from any
 * thread or callback.
 */
#ifndef KAP_HTTP_H
#define KAP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <kapd/kap_core.h>

#define KAP_HTTP_MAX_HEADERS     100    /* hard cap of the header array */
#define KAP_HTTP_DEF_MAX_LINE   8192    /* default request-line limit (414) */
#define KAP_HTTP_DEF_MAX_HEAD  32768    /* default head limit (431) */
#define KAP_HTTP_HOST_MAX        255    /* longest host name kept */

/* Limits; a NULL pointer or 0 fields mean the defaults above. */
struct kap_http_limits {
    size_t max_line;      /* request/status line, without CRLF */
    size_t max_head;      /* whole head including the final CRLFCRLF */
    size_t max_headers;   /* number of fields, <= KAP_HTTP_MAX_HEADERS */
};

struct kap_http_header {
    struct kap_str name;  /* as received (case preserved) */
    struct kap_str value; /* leading/trailing OWS removed */
};

enum kap_http_form {
    KAP_HTTP_FORM_ORIGIN = 0,   /* "/path?q" */
    KAP_HTTP_FORM_ABSOLUTE,     /* "http://host[:port]/path?q" */
    KAP_HTTP_FORM_AUTHORITY,    /* "host:port" (CONNECT only) */
    KAP_HTTP_FORM_ASTERISK      /* "*" (OPTIONS only) */
};

enum kap_http_host_type {
    KAP_HTTP_HOST_NAME = 0,     /* reg-name, lower-cased */
    KAP_HTTP_HOST_IPV4,         /* dotted quad as written */
    KAP_HTTP_HOST_IPV6          /* without the brackets, lower-cased */
};

/*
 * A parsed authority / absolute URI.  host is a NUL-terminated lower-case
 * copy (so it is not tied to the buffer); path points into the input (or
 * to a static "/" when the URI had no path).
 */
struct kap_http_uri {
    char           host[KAP_HTTP_HOST_MAX + 1];
    size_t         host_len;
    int            host_type;    /* enum kap_http_host_type */
    uint16_t       port;         /* explicit or the default */
    int            port_given;   /* non-zero when the URI named the port */
    struct kap_str path;         /* path + "?query", never empty */
};

/* How the body of a message is delimited. */
enum kap_http_body {
    KAP_HTTP_BODY_NONE = 0,     /* no body */
    KAP_HTTP_BODY_LENGTH,       /* content_length bytes */
    KAP_HTTP_BODY_CHUNKED,      /* chunked coding: use kap_http_chunked */
    KAP_HTTP_BODY_CLOSE,        /* responses: until the server closes */
    KAP_HTTP_BODY_TUNNEL        /* 101 / 2xx to CONNECT: raw bytes follow */
};

/* Request parser state and result.  Zero it (or _reset) before use. */
struct kap_http_req {
    /* scanner state (private) */
    size_t         scanned;
    size_t         line_end;

    /* result, valid after KAP_OK */
    size_t         head_len;     /* bytes of the head, incl. CRLFCRLF */
    struct kap_str method;
    struct kap_str target;
    int            minor;        /* 0 or 1: HTTP/1.x */
    int            form;         /* enum kap_http_form */
    struct kap_http_uri uri;     /* absolute- and authority-form */
    struct kap_http_header headers[KAP_HTTP_MAX_HEADERS];
    size_t         nheaders;
    const struct kap_http_header *host;   /* the Host field, or NULL */
    int            body;         /* KAP_HTTP_BODY_NONE/_LENGTH/_CHUNKED */
    uint64_t       content_length;
    int            keep_alive;   /* after this exchange, per Connection */
    int            expect_continue;
    int            upgrade;      /* an Upgrade field was present */

    /* error, valid after KAP_ERROR */
    int            status;       /* 400, 414, 431, 501, 505 */
    const char    *error;        /* static text */
};

/* Response parser state and result.  Zero it (or _reset) before use. */
struct kap_http_resp {
    size_t         scanned;
    size_t         line_end;

    size_t         head_len;
    int            minor;
    int            status;       /* 100..599 */
    struct kap_str reason;
    struct kap_http_header headers[KAP_HTTP_MAX_HEADERS];
    size_t         nheaders;
    int            body;         /* enum kap_http_body */
    uint64_t       content_length;
    int            keep_alive;

    const char    *error;        /* static text, after KAP_ERROR */
};

void kap_http_req_reset(struct kap_http_req *req);
void kap_http_resp_reset(struct kap_http_resp *resp);

/*
 * Parse a request head from buf[0..len).  buf holds everything received
 * so far for this message (the same start each call).
 * Returns KAP_AGAIN (incomplete: call again with more bytes), KAP_OK
 * (req->head_len bytes form a valid head; the body, if any, follows), or
 * KAP_ERROR (req->status and req->error say why; close after answering).
 * lim may be NULL.  Results point into buf (see the file comment).
 */
int kap_http_parse_request(struct kap_http_req *req, const char *buf,
                           size_t len, const struct kap_http_limits *lim);

/*
 * Parse a response head.  method is the request's method ("HEAD" and
 * "CONNECT" change the framing); it may be NULL.  Returns as above;
 * on KAP_ERROR the message is unusable (a proxy answers 502).  1xx
 * responses other than 101 are returned too (body NONE): the caller
 * forwards them and parses the next head.
 */
int kap_http_parse_response(struct kap_http_resp *resp, const char *buf,
                            size_t len, const char *method,
                            const struct kap_http_limits *lim);

/*
 * Parse an absolute URI "http://host[:port][/path][?query]" (scheme
 * case-insensitive).  Userinfo, fragments, empty hosts, bad ports are
 * refused.  Returns KAP_OK, KAP_DECLINED for a well-formed https URI (the
 * caller answers 501 or uses CONNECT), or KAP_ERROR.
 */
int kap_http_parse_absolute(const char *s, size_t n, struct kap_http_uri *u);

/*
 * Parse an authority "host[:port]" (a Host field or a CONNECT target).
 * default_port is used when none is given; pass 0 to require a port.
 * Returns KAP_OK or KAP_ERROR.  u->path is set to "/".
 */
int kap_http_parse_authority(const char *s, size_t n, int default_port,
                             struct kap_http_uri *u);

/*
 * Validate and lower-case a host: reg-name of letters, digits, '-', '.',
 * '_' (labels 1..63, total <= 253, one trailing dot kept), a dotted-quad
 * IPv4, or an IPv6 literal (without brackets).  Writes a NUL-terminated
 * copy into out (outsz >= n + 1).  Returns the host type (>= 0) or -1.
 */
int kap_http_host_normalise(const char *s, size_t n, char *out, size_t outsz);

/*
 * First header named name (ASCII case-insensitive), or NULL.  Borrowed
 * from the header array.  kap_http_header_count counts all of them.
 */
const struct kap_http_header *kap_http_header_find(
    const struct kap_http_header *h, size_t n, const char *name);
size_t kap_http_header_count(const struct kap_http_header *h, size_t n,
                             const char *name);

/*
 * Non-zero when header i must not be forwarded by a proxy: the hop-by-hop
 * set (Connection, Keep-Alive, Proxy-Connection, Proxy-Authenticate,
 * Proxy-Authorization, TE, Trailer, Transfer-Encoding, Upgrade) and every
 * field named in a Connection header -- except Host and Content-Length,
 * which frame and route the message: a proxy that dropped them on a
 * client's word would forward a body the next hop reads as another
 * request, or a request without its Host.
 */
int kap_http_is_hop_by_hop(const struct kap_http_header *h, size_t n,
                           size_t i);

/* Non-zero when the comma-separated list value contains token (ci). */
int kap_http_list_has(struct kap_str value, const char *token);

/* Chunked body decoder ---------------------------------------------------- */

#define KAP_HTTP_CHUNK_EXT_MAX   1024   /* bytes of extensions per chunk */
#define KAP_HTTP_TRAILER_MAX     8192   /* bytes of the trailer section */

struct kap_http_chunked {
    int      state;        /* private */
    uint64_t remaining;    /* data bytes left in the current chunk */
    size_t   count;        /* private: digits / ext / trailer bytes */
    size_t   line;         /* private */
    const char *error;     /* static text after KAP_ERROR */
};

void kap_http_chunked_reset(struct kap_http_chunked *d);

/*
 * Feed in[0..len).  Sets *used to the bytes consumed and *data to at most
 * one span of decoded body data inside in (data->len may be 0).
 * Returns KAP_AGAIN (call again with in + *used, or with more input when
 * *used == len), KAP_OK (the body including trailers ended at *used), or
 * KAP_ERROR (d->error).  The framing bytes consumed are valid chunked
 * syntax, so a proxy may forward in[0..*used) unchanged.
 */
int kap_http_chunked_parse(struct kap_http_chunked *d, const char *in,
                           size_t len, size_t *used, struct kap_str *data);

/* "Bad Request" etc. for a status code; "Unknown" when not known. */
const char *kap_http_reason(int status);

#endif /* KAP_HTTP_H */
