/*
 * kap_shim_connect_reply.c -- the proxy's answer to CONNECT, parsed
 * strictly enough to trust the status code and nothing else:
 *
 *   status-line = "HTTP/1." DIGIT SP 3DIGIT [ SP reason-phrase ] EOL
 *   field-line  = token ":" OWS value EOL      (no obs-fold)
 *   end         = EOL on its own
 *
 * EOL is CRLF or a bare LF (what curl accepts).  The reason phrase is
 * kept for messages with anything but printable ASCII replaced by '?'.
 * Content-Length is read only so that the caller can take a bounded
 * look at an error body; conflicting values are malformed.
 */
#include "kap_shim_connect_reply.h"

#include <string.h>

/* RFC 9110 tchar */
static int
is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int
fail(struct kap_connect_reply *r, const char *why)
{
    r->error = why;
    return -1;
}

/* the status line p[0..n) (EOL removed) */
static int
status_line(const char *p, size_t n, struct kap_connect_reply *r)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0)
        return fail(r, "the reply does not start with HTTP/1.x");
    if (p[7] != '0' && p[7] != '1')
        return fail(r, "unsupported HTTP version in the reply");
    if (p[8] != ' ')
        return fail(r, "malformed status line");
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fail(r, "malformed status code");
    }
    int st = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (st < 100 || st > 599)
        return fail(r, "status code out of range");
    if (n > 12 && p[12] != ' ')
        return fail(r, "malformed status line");
    r->status = st;
    r->minor = p[7] - '0';

    size_t o = 0;
    for (size_t i = 13; i < n && o + 1 < sizeof r->reason; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
            return fail(r, "control byte in the status line");
        r->reason[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    for (size_t i = 13 + o; i < n; i++) {          /* the part not kept */
        unsigned char c = (unsigned char)p[i];
        if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
            return fail(r, "control byte in the status line");
    }
    r->reason[o] = '\0';
    return 0;
}

/* one field line p[0..n) (EOL removed) */
static int
field_line(const char *p, size_t n, struct kap_connect_reply *r)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0) {
        return fail(r, p[0] == ' ' || p[0] == '\t'
                       ? "folded header line in the reply"
                       : "malformed header line in the reply");
    }
    if (i >= n || p[i] != ':')
        return fail(r, "malformed header line in the reply");
    size_t name_len = i++;
    for (size_t k = i; k < n; k++) {
        unsigned char c = (unsigned char)p[k];
        if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f)
            return fail(r, "control byte in a header of the reply");
    }
    static const char cl[] = "content-length";
    if (name_len != sizeof cl - 1)
        return 0;
    for (size_t k = 0; k < name_len; k++) {
        if (lower((unsigned char)p[k]) != cl[k])
            return 0;
    }
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t e = n;
    while (e > i && (p[e - 1] == ' ' || p[e - 1] == '\t'))
        e--;
    if (i == e)
        return fail(r, "empty Content-Length in the reply");
    long long v = 0;
    for (; i < e; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fail(r, "malformed Content-Length in the reply");
        if (v > 100000000000LL)
            return fail(r, "Content-Length too large in the reply");
        v = v * 10 + (p[i] - '0');
    }
    if (r->content_length >= 0 && r->content_length != v)
        return fail(r, "conflicting Content-Length headers in the reply");
    r->content_length = v;
    return 0;
}

int
kap_connect_reply_parse(const char *buf, size_t len,
                        struct kap_connect_reply *r)
{
    memset(r, 0, sizeof *r);
    r->content_length = -1;

    size_t pos = 0;
    int line_no = 0;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL)
            return 0;                   /* only complete lines are judged */
        size_t end = (size_t)(nl - buf);
        size_t n = end - pos;
        if (n > 0 && buf[end - 1] == '\r')
            n--;
        const char *p = buf + pos;
        pos = end + 1;
        if (line_no++ == 0) {
            if (status_line(p, n, r) < 0)
                return -1;
            continue;
        }
        if (n == 0) {
            r->head_len = pos;
            return 1;
        }
        if (memchr(p, '\r', n) != NULL)
            return fail(r, "bare CR in a header of the reply");
        if (field_line(p, n, r) < 0)
            return -1;
    }
}
