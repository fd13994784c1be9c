/*
 * kapd_http.c -- the strict HTTP/1.1 parser behind kap_http.h.
 *
 * Two phases per head.  The scanner walks new bytes once, rejecting NUL,
 * bare CR and bare LF, enforcing the line and head limits, and stops at
 * the CRLFCRLF that ends the head.  The parser then splits the complete
 * head into the start line and fields and applies RFC 9112's framing
 * rules, refusing every ambiguity a downstream parser could read another
 * way (request smuggling).  The chunked decoder is a byte-wise state
 * machine so that a body can be streamed through without buffering.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include <kapd/kap_addr.h>
#include <kapd/kap_http.h>

/* tchar per RFC 9110 5.6.2 */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9'))
        return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'':
    case '*': case '+': case '-': case '.': case '^': case '_':
    case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}

/* field-vchar / SP / HTAB (obs-text allowed in values) */
static int
is_value_char(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

static int
lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int
str_ieq(struct kap_str s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.data[i]) != lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

static int
str_eq(struct kap_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.data, lit, n) == 0;
}

static const char slash[] = "/";

/* ---- limits ------------------------------------------------------------ */

static void
get_limits(const struct kap_http_limits *lim, size_t *line, size_t *head,
           size_t *nh)
{
    *line = (lim && lim->max_line) ? lim->max_line : KAP_HTTP_DEF_MAX_LINE;
    *head = (lim && lim->max_head) ? lim->max_head : KAP_HTTP_DEF_MAX_HEAD;
    *nh = (lim && lim->max_headers && lim->max_headers < KAP_HTTP_MAX_HEADERS)
              ? lim->max_headers : KAP_HTTP_MAX_HEADERS;
}

/* ---- scanner ------------------------------------------------------------- */

enum { SCAN_AGAIN = 0, SCAN_DONE = 1, SCAN_LINE = -1, SCAN_HEAD = -2,
       SCAN_BAD = -3 };

/*
 * Scan buf from *scanned.  *line_end is set to the offset of the first
 * CRLF (0 while not found; the start line is never empty).  On SCAN_DONE
 * *head_len is the head length.  *err gets a static reason on SCAN_BAD.
 */
static int
scan_head(const char *buf, size_t len, size_t *scanned, size_t *line_end,
          size_t max_line, size_t max_head, size_t *head_len,
          const char **err)
{
    size_t i = *scanned;

    for (; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r') {
            if (i + 1 >= len)
                break;                        /* need the next byte */
            if (buf[i + 1] != '\n') {
                *err = "bare CR";
                return SCAN_BAD;
            }
            if (*line_end == 0) {
                if (i == 0) {
                    *err = "empty request line";
                    return SCAN_BAD;
                }
                if (i > max_line)
                    return SCAN_LINE;
                *line_end = i;
            } else if (i >= 2 && buf[i - 1] == '\n' && i - 2 >= *line_end) {
                /* CRLF right after a CRLF: end of the head */
                if (i + 2 > max_head)
                    return SCAN_HEAD;
                *head_len = i + 2;
                *scanned = i + 2;
                return SCAN_DONE;
            }
            i++;                              /* skip the LF too */
            continue;
        }
        if (c == '\n') {
            *err = "bare LF";
            return SCAN_BAD;
        }
        if (c == 0) {
            *err = "NUL byte in head";
            return SCAN_BAD;
        }
        if (*line_end == 0 && i >= max_line)
            return SCAN_LINE;
        if (i + 1 > max_head)
            return SCAN_HEAD;
    }
    *scanned = i;
    if (*line_end == 0 && i > max_line)
        return SCAN_LINE;
    if (i > max_head)
        return SCAN_HEAD;
    return SCAN_AGAIN;
}

/*
 * Split header lines of head[from..end) (end is the offset of the final
 * CRLF of the empty line).  Returns 0, or 400 / 431 with *err.
 */
static int
split_fields(const char *buf, size_t from, size_t end,
             struct kap_http_header *hv, size_t *nhv, size_t max,
             const char **err)
{
    size_t p = from, n = 0;

    while (p < end) {
        const char *line = buf + p;
        const char *eol = memchr(line, '\r', end - p + 1);
        size_t llen = (size_t)(eol - line);

        if (llen == 0)
            break;
        if (line[0] == ' ' || line[0] == '\t') {
            *err = "obs-fold (line folding) is not allowed";
            return 400;
        }
        const char *colon = memchr(line, ':', llen);
        if (!colon || colon == line) {
            *err = "malformed header field";
            return 400;
        }
        for (const char *q = line; q < colon; q++) {
            if (*q == ' ' || *q == '\t') {
                *err = "whitespace before colon";
                return 400;
            }
            if (!is_tchar((unsigned char)*q)) {
                *err = "invalid character in header name";
                return 400;
            }
        }
        const char *v = colon + 1, *ve = line + llen;
        for (const char *q = v; q < ve; q++)
            if (!is_value_char((unsigned char)*q)) {
                *err = "control character in header value";
                return 400;
            }
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        if (n >= max) {
            *err = "too many header fields";
            return 431;
        }
        hv[n].name.data = line;
        hv[n].name.len = (size_t)(colon - line);
        hv[n].value.data = v;
        hv[n].value.len = (size_t)(ve - v);
        n++;
        p += llen + 2;
    }
    *nhv = n;
    return 0;
}

/* Content-Length: exactly one field of 1..19 digits. */
static int
parse_content_length(const struct kap_http_header *h, size_t n,
                     uint64_t *out, const char **err)
{
    const struct kap_http_header *cl = NULL;

    for (size_t i = 0; i < n; i++) {
        if (!str_ieq(h[i].name, "content-length"))
            continue;
        if (cl) {
            *err = "duplicate Content-Length";
            return -1;
        }
        cl = &h[i];
    }
    if (!cl)
        return 0;
    if (cl->value.len == 0 || cl->value.len > 19) {
        *err = "invalid Content-Length";
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < cl->value.len; i++) {
        unsigned char c = (unsigned char)cl->value.data[i];
        if (c < '0' || c > '9') {
            *err = "invalid Content-Length";
            return -1;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    *out = v;
    return 1;
}

/*
 * Transfer-Encoding: returns 0 absent, 1 final chunked, 2 some other
 * coding (no chunked at all), -1 invalid (chunked not final, repeated,
 * several fields).
 */
static int
parse_te(const struct kap_http_header *h, size_t n, const char **err)
{
    const struct kap_http_header *te = NULL;

    for (size_t i = 0; i < n; i++) {
        if (!str_ieq(h[i].name, "transfer-encoding"))
            continue;
        if (te) {
            *err = "several Transfer-Encoding fields";
            return -1;
        }
        te = &h[i];
    }
    if (!te)
        return 0;
    if (str_ieq(te->value, "chunked"))
        return 1;
    if (kap_http_list_has(te->value, "chunked")) {
        *err = "chunked is not the only transfer coding";
        return -1;
    }
    if (te->value.len == 0) {
        *err = "empty Transfer-Encoding";
        return -1;
    }
    *err = "unsupported transfer coding";
    return 2;
}

static int
conn_keep_alive(const struct kap_http_header *h, size_t n, int minor)
{
    int close = 0, ka = 0;

    for (size_t i = 0; i < n; i++) {
        if (!str_ieq(h[i].name, "connection"))
            continue;
        if (kap_http_list_has(h[i].value, "close"))
            close = 1;
        if (kap_http_list_has(h[i].value, "keep-alive"))
            ka = 1;
    }
    if (close)
        return 0;
    return minor >= 1 ? 1 : ka;
}

/* ---- requests ------------------------------------------------------------ */

void
kap_http_req_reset(struct kap_http_req *req)
{
    memset(req, 0, offsetof(struct kap_http_req, headers));
    req->nheaders = 0;
    req->host = NULL;
    req->body = KAP_HTTP_BODY_NONE;
    req->content_length = 0;
    req->keep_alive = 0;
    req->expect_continue = 0;
    req->upgrade = 0;
    req->status = 0;
    req->error = NULL;
}

static int
req_fail(struct kap_http_req *req, int status, const char *err)
{
    req->status = status;
    req->error = err;
    return KAP_ERROR;
}

/* "HTTP/1.0" / "HTTP/1.1" -> minor; other HTTP/x.y -> -2; garbage -> -1 */
static int
parse_version(const char *p, size_t n)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
        p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
        return -1;
    if (p[5] == '1' && (p[7] == '0' || p[7] == '1'))
        return p[7] - '0';
    return -2;
}

int
kap_http_parse_request(struct kap_http_req *req, const char *buf,
                       size_t len, const struct kap_http_limits *lim)
{
    size_t max_line, max_head, max_nh, head_len = 0;
    const char *err = "malformed request";

    get_limits(lim, &max_line, &max_head, &max_nh);
    switch (scan_head(buf, len, &req->scanned, &req->line_end, max_line,
                      max_head, &head_len, &err)) {
    case SCAN_AGAIN: return KAP_AGAIN;
    case SCAN_LINE:  return req_fail(req, 414, "request line too long");
    case SCAN_HEAD:  return req_fail(req, 431, "request header too large");
    case SCAN_BAD:   return req_fail(req, 400, err);
    default:         break;
    }
    req->head_len = head_len;

    /* request-line = method SP request-target SP HTTP-version */
    const char *line = buf, *le = buf + req->line_end;
    const char *sp1 = memchr(line, ' ', (size_t)(le - line));
    if (!sp1 || sp1 == line)
        return req_fail(req, 400, "malformed request line");
    for (const char *q = line; q < sp1; q++)
        if (!is_tchar((unsigned char)*q))
            return req_fail(req, 400, "invalid method");
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t)(le - t));
    if (!sp2 || sp2 == t)
        return req_fail(req, 400, "malformed request line");
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return req_fail(req, 400, "invalid character in request target");
    int minor = parse_version(sp2 + 1, (size_t)(le - sp2 - 1));
    if (minor == -2)
        return req_fail(req, 505, "HTTP version not supported");
    if (minor < 0)
        return req_fail(req, 400, "malformed HTTP version");
    req->method.data = line;
    req->method.len = (size_t)(sp1 - line);
    req->target.data = t;
    req->target.len = (size_t)(sp2 - t);
    req->minor = minor;

    int st = split_fields(buf, req->line_end + 2, head_len - 2, req->headers,
                          &req->nheaders, max_nh, &err);
    if (st)
        return req_fail(req, st, err);

    const struct kap_http_header *h = req->headers;
    size_t n = req->nheaders;

    /* Host */
    size_t nhost = kap_http_header_count(h, n, "host");
    if (nhost > 1)
        return req_fail(req, 400, "duplicate Host");
    req->host = kap_http_header_find(h, n, "host");
    if (minor == 1 && !req->host)
        return req_fail(req, 400, "missing Host");
    if (req->host && req->host->value.len) {
        struct kap_http_uri hu;
        if (kap_http_parse_authority(req->host->value.data,
                                     req->host->value.len, 80, &hu) != KAP_OK)
            return req_fail(req, 400, "invalid Host");
    }

    /* framing */
    uint64_t cl = 0;
    int has_cl = parse_content_length(h, n, &cl, &err);
    if (has_cl < 0)
        return req_fail(req, 400, err);
    int te = parse_te(h, n, &err);
    if (te < 0)
        return req_fail(req, 400, err);
    if (te && minor == 0)
        return req_fail(req, 400, "Transfer-Encoding in HTTP/1.0");
    if (te && has_cl)
        return req_fail(req, 400, "both Content-Length and Transfer-Encoding");
    if (te == 2)
        return req_fail(req, 501, err);
    if (te == 1) {
        req->body = KAP_HTTP_BODY_CHUNKED;
    } else if (has_cl && cl > 0) {
        req->body = KAP_HTTP_BODY_LENGTH;
        req->content_length = cl;
    } else {
        req->body = KAP_HTTP_BODY_NONE;
    }

    req->keep_alive = conn_keep_alive(h, n, minor);
    const struct kap_http_header *ex = kap_http_header_find(h, n, "expect");
    if (ex && str_ieq(ex->value, "100-continue"))
        req->expect_continue = 1;
    req->upgrade = kap_http_header_find(h, n, "upgrade") != NULL;

    /* request target forms */
    int is_connect = str_eq(req->method, "CONNECT");
    if (is_connect) {
        if (te || has_cl)
            return req_fail(req, 400, "CONNECT with a body");
        req->form = KAP_HTTP_FORM_AUTHORITY;
        if (kap_http_parse_authority(t, req->target.len, 0, &req->uri)
            != KAP_OK)
            return req_fail(req, 400, "invalid CONNECT target");
    } else if (req->target.len == 1 && t[0] == '*') {
        if (!str_eq(req->method, "OPTIONS"))
            return req_fail(req, 400, "asterisk-form is only for OPTIONS");
        req->form = KAP_HTTP_FORM_ASTERISK;
    } else if (t[0] == '/') {
        req->form = KAP_HTTP_FORM_ORIGIN;
        if (memchr(t, '#', req->target.len))
            return req_fail(req, 400, "fragment in request target");
    } else {
        req->form = KAP_HTTP_FORM_ABSOLUTE;
        int rc = kap_http_parse_absolute(t, req->target.len, &req->uri);
        if (rc == KAP_DECLINED)
            return req_fail(req, 501, "https URI in a plain request");
        if (rc != KAP_OK)
            return req_fail(req, 400, "invalid request target");
    }
    return KAP_OK;
}

/* ---- responses ------------------------------------------------------------ */

void
kap_http_resp_reset(struct kap_http_resp *resp)
{
    memset(resp, 0, offsetof(struct kap_http_resp, headers));
    resp->nheaders = 0;
    resp->body = KAP_HTTP_BODY_NONE;
    resp->content_length = 0;
    resp->keep_alive = 0;
    resp->error = NULL;
}

static int
resp_fail(struct kap_http_resp *resp, const char *err)
{
    resp->error = err;
    return KAP_ERROR;
}

int
kap_http_parse_response(struct kap_http_resp *resp, const char *buf,
                        size_t len, const char *method,
                        const struct kap_http_limits *lim)
{
    size_t max_line, max_head, max_nh, head_len = 0;
    const char *err = "malformed response";

    get_limits(lim, &max_line, &max_head, &max_nh);
    switch (scan_head(buf, len, &resp->scanned, &resp->line_end, max_line,
                      max_head, &head_len, &err)) {
    case SCAN_AGAIN: return KAP_AGAIN;
    case SCAN_LINE:  return resp_fail(resp, "status line too long");
    case SCAN_HEAD:  return resp_fail(resp, "response header too large");
    case SCAN_BAD:   return resp_fail(resp, err);
    default:         break;
    }
    resp->head_len = head_len;

    /* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
    size_t ll = resp->line_end;
    if (ll < 12 || buf[8] != ' ')
        return resp_fail(resp, "malformed status line");
    int minor = parse_version(buf, 8);
    if (minor < 0)
        return resp_fail(resp, "unsupported HTTP version in response");
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return resp_fail(resp, "malformed status code");
        code = code * 10 + (buf[i] - '0');
    }
    if (code < 100 || code > 599)
        return resp_fail(resp, "status code out of range");
    if (ll > 12 && buf[12] != ' ')
        return resp_fail(resp, "malformed status line");
    for (size_t i = 13; i < ll; i++)
        if (!is_value_char((unsigned char)buf[i]))
            return resp_fail(resp, "control character in reason phrase");
    resp->minor = minor;
    resp->status = code;
    resp->reason.data = buf + (ll > 12 ? 13 : 12);
    resp->reason.len = ll > 12 ? ll - 13 : 0;

    if (split_fields(buf, ll + 2, head_len - 2, resp->headers,
                     &resp->nheaders, max_nh, &err))
        return resp_fail(resp, err);
    const struct kap_http_header *h = resp->headers;
    size_t n = resp->nheaders;

    uint64_t cl = 0;
    int has_cl = parse_content_length(h, n, &cl, &err);
    if (has_cl < 0)
        return resp_fail(resp, err);
    int te = parse_te(h, n, &err);
    if (te < 0)
        return resp_fail(resp, err);
    if (te && minor == 0)
        return resp_fail(resp, "Transfer-Encoding in HTTP/1.0 response");
    if (te && has_cl)
        return resp_fail(resp, "both Content-Length and Transfer-Encoding");

    resp->keep_alive = conn_keep_alive(h, n, minor);
    int head = method && strcmp(method, "HEAD") == 0;
    int connect = method && strcmp(method, "CONNECT") == 0;

    if (code == 101) {
        resp->body = KAP_HTTP_BODY_TUNNEL;
        resp->keep_alive = 0;
    } else if (connect && code >= 200 && code < 300) {
        resp->body = KAP_HTTP_BODY_TUNNEL;
        resp->keep_alive = 0;
    } else if (code < 200 || code == 204 || code == 304 || head) {
        resp->body = KAP_HTTP_BODY_NONE;
    } else if (te == 1) {
        resp->body = KAP_HTTP_BODY_CHUNKED;
    } else if (te == 2) {
        resp->body = KAP_HTTP_BODY_CLOSE;
    } else if (has_cl) {
        resp->body = cl ? KAP_HTTP_BODY_LENGTH : KAP_HTTP_BODY_NONE;
        resp->content_length = cl;
    } else {
        resp->body = KAP_HTTP_BODY_CLOSE;
    }
    if (resp->body == KAP_HTTP_BODY_CLOSE)
        resp->keep_alive = 0;
    return KAP_OK;
}

/* ---- URIs and hosts ------------------------------------------------------- */

int
kap_http_host_normalise(const char *s, size_t n, char *out, size_t outsz)
{
    if (n == 0 || n + 1 > outsz)
        return -1;

    if (memchr(s, ':', n)) {
        char tmp[64];
        unsigned char a6[16];
        if (n >= sizeof(tmp))
            return -1;
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                  (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
                return -1;
            tmp[i] = (char)lower((unsigned char)c);
        }
        tmp[n] = '\0';
        if (inet_pton(AF_INET6, tmp, a6) != 1)
            return -1;
        memcpy(out, tmp, n + 1);
        return KAP_HTTP_HOST_IPV6;
    }

    size_t body = n;
    if (s[n - 1] == '.')
        body = n - 1;                 /* one trailing dot allowed */
    if (body == 0 || body > 253)
        return -1;

    /* strict dotted-quad decimal */
    int parts = 0, digits = 0, val = 0, quad = 1, lead0 = 0;
    for (size_t i = 0; i < n && quad; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            if (digits == 0 && c == '0')
                lead0 = 1;
            else if (lead0)
                quad = 0;
            val = val * 10 + (c - '0');
            if (++digits > 3 || val > 255)
                quad = 0;
        } else if (c == '.' && digits) {
            parts++;
            digits = val = lead0 = 0;
        } else {
            quad = 0;
        }
    }
    if (quad && digits && parts == 3 && body == n) {
        memcpy(out, s, n);
        out[n] = '\0';
        return KAP_HTTP_HOST_IPV4;
    }

    if (kap_host_name_norm(s, n, out, outsz) < 0)
        return -1;
    if (body < n)                     /* the trailing dot is kept */
        out[body] = '.';
    out[n] = '\0';
    return KAP_HTTP_HOST_NAME;
}

int
kap_http_parse_authority(const char *s, size_t n, int default_port,
                         struct kap_http_uri *u)
{
    const char *host, *port = NULL;
    size_t hlen, plen = 0;

    memset(u, 0, sizeof(*u));
    u->path.data = slash;
    u->path.len = 1;
    if (n == 0)
        return KAP_ERROR;
    if (s[0] == '[') {
        const char *rb = memchr(s, ']', n);
        if (!rb)
            return KAP_ERROR;
        host = s + 1;
        hlen = (size_t)(rb - host);
        if (hlen == 0)
            return KAP_ERROR;
        size_t rest = n - (size_t)(rb + 1 - s);
        if (rest) {
            if (rb[1] != ':')
                return KAP_ERROR;
            port = rb + 2;
            plen = rest - 1;
        }
        if (kap_http_host_normalise(host, hlen, u->host, sizeof(u->host))
            != KAP_HTTP_HOST_IPV6)
            return KAP_ERROR;
        u->host_type = KAP_HTTP_HOST_IPV6;
    } else {
        const char *colon = memchr(s, ':', n);
        host = s;
        hlen = colon ? (size_t)(colon - s) : n;
        if (colon) {
            port = colon + 1;
            plen = n - hlen - 1;
        }
        int ht = kap_http_host_normalise(host, hlen, u->host, sizeof(u->host));
        if (ht < 0 || ht == KAP_HTTP_HOST_IPV6)
            return KAP_ERROR;
        u->host_type = ht;
    }
    u->host_len = strlen(u->host);

    if (port) {
        unsigned v = 0;
        if (plen == 0 || plen > 5)
            return KAP_ERROR;
        for (size_t i = 0; i < plen; i++) {
            if (port[i] < '0' || port[i] > '9')
                return KAP_ERROR;
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return KAP_ERROR;
        u->port = (uint16_t)v;
        u->port_given = 1;
    } else {
        if (default_port <= 0 || default_port > 65535)
            return KAP_ERROR;
        u->port = (uint16_t)default_port;
    }
    return KAP_OK;
}

int
kap_http_parse_absolute(const char *s, size_t n, struct kap_http_uri *u)
{
    int https = 0;
    size_t skip;

    if (n >= 7 && str_ieq((struct kap_str){ s, 7 }, "http://")) {
        skip = 7;
    } else if (n >= 8 && str_ieq((struct kap_str){ s, 8 }, "https://")) {
        skip = 8;
        https = 1;
    } else {
        return KAP_ERROR;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '#')
            return KAP_ERROR;
    }
    const char *a = s + skip, *e = s + n, *p = a;
    while (p < e && *p != '/' && *p != '?')
        p++;
    if (memchr(a, '@', (size_t)(p - a)))
        return KAP_ERROR;                  /* userinfo */
    if (kap_http_parse_authority(a, (size_t)(p - a), https ? 443 : 80, u)
        != KAP_OK)
        return KAP_ERROR;
    if (p < e) {
        u->path.data = p;
        u->path.len = (size_t)(e - p);
    }
    return https ? KAP_DECLINED : KAP_OK;
}

/* ---- header helpers ---------------------------------------------------------- */

const struct kap_http_header *
kap_http_header_find(const struct kap_http_header *h, size_t n,
                     const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (str_ieq(h[i].name, name))
            return &h[i];
    return NULL;
}

size_t
kap_http_header_count(const struct kap_http_header *h, size_t n,
                      const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (str_ieq(h[i].name, name))
            c++;
    return c;
}

static int
list_has_n(struct kap_str value, const char *token, size_t tl)
{
    const char *p = value.data, *e = value.data + value.len;

    while (p < e) {
        while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < e && *p != ',')
            p++;
        const char *te = p;
        while (te > s && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - s) == tl && tl) {
            size_t i;
            for (i = 0; i < tl; i++)
                if (lower((unsigned char)s[i]) != lower((unsigned char)token[i]))
                    break;
            if (i == tl)
                return 1;
        }
    }
    return 0;
}

int
kap_http_list_has(struct kap_str value, const char *token)
{
    return list_has_n(value, token, strlen(token));
}

int
kap_http_is_hop_by_hop(const struct kap_http_header *h, size_t n, size_t i)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding",
        "upgrade", NULL
    };
    if (i >= n)
        return 0;
    for (size_t k = 0; hop[k]; k++)
        if (str_ieq(h[i].name, hop[k]))
            return 1;
    /* "Connection: content-length" or "Connection: host" must not make
       the forwarded head lose its framing or its Host (request smuggling
       past the Host == URI check) */
    if (str_ieq(h[i].name, "content-length") || str_ieq(h[i].name, "host"))
        return 0;
    for (size_t k = 0; k < n; k++) {
        if (!str_ieq(h[k].name, "connection"))
            continue;
        if (list_has_n(h[k].value, h[i].name.data, h[i].name.len))
            return 1;
    }
    return 0;
}

const char *
kap_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default:  return "Unknown";
    }
}

/* ---- chunked ---------------------------------------------------------------- */

enum {
    CH_SIZE = 0,      /* hex digits of chunk-size */
    CH_EXT,           /* chunk extensions up to CR */
    CH_SIZE_LF,       /* LF after the size line */
    CH_DATA,          /* chunk data */
    CH_DATA_CR,       /* CR after data */
    CH_DATA_LF,       /* LF after data */
    CH_TRAILER_START, /* start of a trailer line (or the final CRLF) */
    CH_TRAILER,       /* inside a trailer line */
    CH_TRAILER_LF,    /* LF ending a trailer line */
    CH_END_LF,        /* LF of the final empty line */
    CH_DONE
};

void
kap_http_chunked_reset(struct kap_http_chunked *d)
{
    memset(d, 0, sizeof(*d));
}

static int
hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int
ch_fail(struct kap_http_chunked *d, size_t i, size_t *used, const char *e)
{
    d->error = e;
    *used = i;
    return KAP_ERROR;
}

int
kap_http_chunked_parse(struct kap_http_chunked *d, const char *in,
                       size_t len, size_t *used, struct kap_str *data)
{
    size_t i = 0;

    data->data = in;
    data->len = 0;
    if (d->state == CH_DONE) {
        *used = 0;
        return KAP_OK;
    }
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        switch (d->state) {
        case CH_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (d->count >= 16)
                    return ch_fail(d, i, used, "chunk size too long");
                d->remaining = (d->remaining << 4) | (uint64_t)v;
                d->count++;
                i++;
                break;
            }
            if (d->count == 0)
                return ch_fail(d, i, used, "invalid chunk size");
            if (c == ';') {
                d->state = CH_EXT;
                d->line = 0;
                i++;
            } else if (c == '\r') {
                d->state = CH_SIZE_LF;
                i++;
            } else {
                return ch_fail(d, i, used, "invalid chunk size");
            }
            break;
        }
        case CH_EXT:
            if (c == '\r') {
                d->state = CH_SIZE_LF;
            } else if (c == '\t' || (c >= 0x20 && c < 0x7f)) {
                if (++d->line > KAP_HTTP_CHUNK_EXT_MAX)
                    return ch_fail(d, i, used, "chunk extension too long");
            } else {
                return ch_fail(d, i, used, "invalid chunk extension");
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (c != '\n')
                return ch_fail(d, i, used, "bare CR in chunk size line");
            i++;
            d->count = 0;
            if (d->remaining == 0) {
                d->state = CH_TRAILER_START;
                d->line = 0;          /* trailer bytes so far */
            } else {
                d->state = CH_DATA;
            }
            break;
        case CH_DATA: {
            size_t take = len - i;
            if ((uint64_t)take > d->remaining)
                take = (size_t)d->remaining;
            data->data = in + i;
            data->len = take;
            d->remaining -= take;
            i += take;
            if (d->remaining == 0)
                d->state = CH_DATA_CR;
            *used = i;
            return KAP_AGAIN;
        }
        case CH_DATA_CR:
            if (c != '\r')
                return ch_fail(d, i, used, "missing CRLF after chunk data");
            d->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (c != '\n')
                return ch_fail(d, i, used, "missing CRLF after chunk data");
            d->state = CH_SIZE;
            d->remaining = 0;
            d->count = 0;
            i++;
            break;
        case CH_TRAILER_START:
            if (c == '\r') {
                d->state = CH_END_LF;
                i++;
                break;
            }
            if (c == ' ' || c == '\t' || c == ':' || !is_tchar(c))
                return ch_fail(d, i, used, "invalid trailer field");
            d->state = CH_TRAILER;
            d->count = 1;             /* in the field name */
            /* FALLTHROUGH */
        case CH_TRAILER:
            if (d->count) {
                /* field-name = token, then ':' (as in a head) */
                if (c == ':')
                    d->count = 0;
                else if (!is_tchar(c))
                    return ch_fail(d, i, used, "invalid trailer field name");
            } else if (c == '\r') {
                d->state = CH_TRAILER_LF;
            } else if (!is_value_char(c)) {
                return ch_fail(d, i, used, "invalid trailer field");
            }
            if (++d->line > KAP_HTTP_TRAILER_MAX)
                return ch_fail(d, i, used, "trailer section too large");
            i++;
            break;
        case CH_TRAILER_LF:
            if (c != '\n')
                return ch_fail(d, i, used, "bare CR in trailer");
            d->state = CH_TRAILER_START;
            i++;
            break;
        case CH_END_LF:
            if (c != '\n')
                return ch_fail(d, i, used, "bare CR at end of chunked body");
            d->state = CH_DONE;
            i++;
            *used = i;
            return KAP_OK;
        default:
            return ch_fail(d, i, used, "chunked decoder state");
        }
    }
    *used = i;
    return KAP_AGAIN;
}
