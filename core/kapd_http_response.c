/*
 * kapd_http_response.c -- response formatting shared by every module that
 * answers HTTP itself: response heads, local error pages (text or JSON)
 * and server-sent event framing (kap_http_server.h).  Pure: no I/O, no
 * globals; every function appends to the caller's buffer whole or not at
 * all.
 */
#include "kapd.h"

#include <string.h>

#include <kapd/kap_http_server.h>
#include <kapd/kap_json.h>

/* undo a partial append */
static void
buf_truncate(struct kap_buf *b, size_t mark)
{
    b->len = mark;
    if (b->data)
        b->data[mark] = '\0';
}

/* append the pieces of s, NUL-terminated, in one go; KAP_OK/KAP_ERROR */
static int
buf_cat(struct kap_buf *b, const char *const *piece, size_t n)
{
    size_t len[8], total = 0, i;

    for (i = 0; i < n; i++)
        total += len[i] = strlen(piece[i]);
    if (kap_buf_reserve(b, total) != KAP_OK)
        return KAP_ERROR;
    for (i = 0; i < n; i++) {
        memcpy(b->data + b->len, piece[i], len[i]);
        b->len += len[i];
    }
    b->data[b->len] = '\0';
    return KAP_OK;
}

/* decimal text of v in buf (at least 24 bytes); returns its start */
static const char *
dec(char *buf, size_t size, unsigned long long v)
{
    char *p = buf + size;

    *--p = '\0';
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return p;
}

/* without printf: a denied CONNECT's whole answer is this head */
int
kap_http_head_write(struct kap_buf *out, int status, const char *content_type,
                    long long clen, const char *extra, int keep)
{
    char st[24], cl[24];
    const char *piece[8];
    size_t n = 0, mark = out->len;

    if (status < 100 || status > 999)
        return KAP_ERROR;
    piece[n++] = "HTTP/1.1 ";
    piece[n++] = dec(st, sizeof(st), (unsigned long long) status);
    piece[n++] = " ";
    piece[n++] = kap_http_reason(status);
    if (buf_cat(out, piece, n) != KAP_OK)
        return KAP_ERROR;           /* nothing was appended */
    n = 0;
    piece[n++] = "\r\n";
    if (content_type != NULL) {
        piece[n++] = "Content-Type: ";
        piece[n++] = content_type;
        piece[n++] = "\r\n";
    }
    if (clen >= 0) {
        piece[n++] = "Content-Length: ";
        piece[n++] = dec(cl, sizeof(cl), (unsigned long long) clen);
        piece[n++] = "\r\n";
    }
    if (extra != NULL)
        piece[n++] = extra;
    if (buf_cat(out, piece, n) != KAP_OK
        || buf_cat(out, (const char *const[]) {
                            keep ? "Connection: keep-alive\r\n\r\n"
                                 : "Connection: close\r\n\r\n" }, 1)
               != KAP_OK) {
        buf_truncate(out, mark);
        return KAP_ERROR;
    }
    return KAP_OK;
}

const char *
kapd_http_error_type(int format)
{
    return format == KAP_HTTP_ERR_JSON ? "application/json"
                                       : "text/plain; charset=utf-8";
}

int
kapd_http_error_body(struct kap_buf *body, int status, const char *why,
                     int format)
{
    struct kap_json_writer w;
    size_t mark = body->len;
    int rc;

    if (why == NULL)
        why = kap_http_reason(status);
    if (format == KAP_HTTP_ERR_JSON) {
        kap_json_w_init(&w, body);
        kap_json_w_obj_begin(&w);
        kap_json_w_key(&w, "error");
        kap_json_w_str(&w, why);
        kap_json_w_key(&w, "status");
        kap_json_w_int(&w, status);
        kap_json_w_obj_end(&w);
        rc = kap_json_w_finish(&w);
        if (rc == KAP_OK)
            rc = kap_buf_append(body, "\n", 1);
    } else {
        rc = kap_buf_printf(body, "kap: %s\n", why);
    }
    if (rc != KAP_OK)
        buf_truncate(body, mark);
    return rc;
}

int
kap_http_error_page(struct kap_buf *out, int status, const char *why,
                    int format, int keep)
{
    struct kap_buf body = { 0 };
    size_t mark = out->len;
    int rc;

    rc = kapd_http_error_body(&body, status, why, format);
    if (rc == KAP_OK)
        rc = kap_http_head_write(out, status, kapd_http_error_type(format),
                                 (long long) body.len,
                                 "Cache-Control: no-store\r\n", keep);
    if (rc == KAP_OK)
        rc = kap_buf_append(out, body.data, body.len);
    if (rc != KAP_OK)
        buf_truncate(out, mark);
    kap_buf_free(&body);
    return rc;
}

/* a field value of an SSE line: no CR, LF or NUL */
static int
sse_value_ok(const char *s)
{
    return s == NULL || strpbrk(s, "\r\n") == NULL;
}

int
kap_http_sse_frame(struct kap_buf *out, const char *event, const char *id,
                   const void *data, size_t len)
{
    const char *p = data, *end = p + len, *eol;
    size_t mark = out->len;
    int rc = KAP_OK;

    if (!sse_value_ok(event) || !sse_value_ok(id) || (p == NULL && len))
        return KAP_ERROR;
    if (event != NULL)
        rc = kap_buf_printf(out, "event: %s\n", event);
    if (rc == KAP_OK && id != NULL)
        rc = kap_buf_printf(out, "id: %s\n", id);
    /* one "data:" line per line of the payload; a payload ending in a
       line break gets an empty last data line, so it comes back whole */
    while (rc == KAP_OK) {
        for (eol = p; eol < end && *eol != '\r' && *eol != '\n'; eol++)
            ;
        rc = kap_buf_append(out, "data: ", 6);
        if (rc == KAP_OK)
            rc = kap_buf_append(out, p, (size_t) (eol - p));
        if (rc == KAP_OK)
            rc = kap_buf_append(out, "\n", 1);
        if (eol == end)
            break;
        p = eol + (*eol == '\r' && eol + 1 < end && eol[1] == '\n' ? 2 : 1);
    }
    if (rc == KAP_OK)
        rc = kap_buf_append(out, "\n", 1);
    if (rc != KAP_OK)
        buf_truncate(out, mark);
    return rc;
}
