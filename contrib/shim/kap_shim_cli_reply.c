/*
 * kap_shim_cli_reply.c -- decode kapd's answer to a cli call (see
 * kap_shim_cli_reply.h).
 */
#include "kap_shim_cli_reply.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kap_shim_connect_reply.h"

enum { ST_HEAD, ST_SIZE, ST_DATA, ST_DATA_CRLF, ST_TRAILER, ST_PLAIN,
       ST_DONE };

void
kap_cli_reply_init(struct kap_cli_reply *r)
{
    memset(r, 0, sizeof(*r));
    r->clen = -1;
}

void
kap_cli_reply_free(struct kap_cli_reply *r)
{
    free(r->body);
    r->body = NULL;
}

static int
fail(struct kap_cli_reply *r, const char *why)
{
    r->error = why;
    return -1;
}

/* The value of header name in the head (first one), or NULL; *vlen. */
static const char *
header(const struct kap_cli_reply *r, size_t hl, const char *name,
       size_t *vlen)
{
    size_t nl = strlen(name), i = 0;

    while (i < hl) {
        const char *ln = r->head + i, *e = memchr(ln, '\n', hl - i);
        size_t      len = e != NULL ? (size_t)(e - ln) : hl - i;

        i += len + 1;
        if (len > nl && ln[nl] == ':' && strncasecmp(ln, name, nl) == 0) {
            const char *v = ln + nl + 1;
            size_t      vl = len - nl - 1;
            while (vl > 0 && (*v == ' ' || *v == '\t')) {
                v++;
                vl--;
            }
            while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' '
                              || v[vl - 1] == '\t'))
                vl--;
            *vlen = vl;
            return v;
        }
    }
    return NULL;
}

static int
body_add(struct kap_cli_reply *r, const char *p, size_t n)
{
    if (r->body_len + n > KAP_CLI_REPLY_BODY_MAX)
        return fail(r, "the answer is too large");
    if (r->body_len + n + 1 > r->body_cap) {
        size_t cap = (r->body_len + n + 1) * 2;
        char  *b = realloc(r->body, cap);
        if (b == NULL)
            return fail(r, "out of memory");
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

/* The exit frame's "CODE WHY". */
static int
exit_frame(struct kap_cli_reply *r)
{
    size_t i = 0, w = 0;
    int    code = 0;

    if (r->xlen == 0 || r->xb[0] < '0' || r->xb[0] > '9')
        return fail(r, "a malformed exit frame");
    while (i < r->xlen && r->xb[i] >= '0' && r->xb[i] <= '9' && i < 3)
        code = code * 10 + (r->xb[i++] - '0');
    if (code > 255 || (i < r->xlen && r->xb[i] != ' '))
        return fail(r, "a malformed exit frame");
    for (i++; i < r->xlen && w + 1 < sizeof(r->why); i++)
        r->why[w++] = (r->xb[i] >= 'a' && r->xb[i] <= 'z') || r->xb[i] == '-'
                      ? r->xb[i] : '?';
    r->why[w] = '\0';
    r->exit_code = code;
    r->have_exit = 1;
    return 0;
}

/* Body bytes (dechunked) of a framed answer. */
static int
frames(struct kap_cli_reply *r, const char *p, size_t n,
       kap_cli_reply_out_fn out, void *data)
{
    while (n > 0) {
        if (r->have_exit && r->upgraded)
            return 0;            /* the answer has ended: the rest is not
                                    read, as after a chunked body's end */
        if (r->have_exit)
            return fail(r, "bytes after the exit frame");
        if (r->fhlen < 5) {
            r->fh[r->fhlen++] = (unsigned char)*p++;
            n--;
            if (r->fhlen == 5) {
                r->frame_left = ((size_t)r->fh[1] << 24)
                              | ((size_t)r->fh[2] << 16)
                              | ((size_t)r->fh[3] << 8) | r->fh[4];
                if (r->fh[0] != 1 && r->fh[0] != 2 && r->fh[0] != 'x')
                    return fail(r, "an unknown frame");
                if (r->fh[0] == 'x' && r->frame_left >= sizeof(r->xb))
                    return fail(r, "a malformed exit frame");
                if (r->frame_left == 0) {
                    r->fhlen = 0;
                    if (r->fh[0] == 'x' && exit_frame(r) != 0)
                        return -1;
                    if (r->have_exit && r->upgraded)
                        r->st = ST_DONE;
                }
            }
            continue;
        }
        size_t k = n < r->frame_left ? n : r->frame_left;
        if (r->fh[0] == 'x') {
            memcpy(r->xb + r->xlen, p, k);
            r->xlen += k;
        } else if (out != NULL && out(r->fh[0], p, k, data) != 0) {
            return fail(r, "stopped");
        }
        p += k;
        n -= k;
        r->frame_left -= k;
        if (r->frame_left == 0) {
            r->fhlen = 0;
            if (r->fh[0] == 'x' && exit_frame(r) != 0)
                return -1;
        }
        if (r->have_exit && r->upgraded)
            r->st = ST_DONE;     /* raw frames: the exit frame ends them */
    }
    return 0;
}

static int
content(struct kap_cli_reply *r, const char *p, size_t n,
        kap_cli_reply_out_fn out, void *data)
{
    return r->framed ? frames(r, p, n, out, data) : body_add(r, p, n);
}

static int
head_done(struct kap_cli_reply *r, size_t hl)
{
    struct kap_connect_reply cr;
    const char              *v;
    size_t                   vl;

    if (kap_connect_reply_parse(r->head, hl, &cr) != 1)
        return fail(r, "a malformed response head");
    r->status = cr.status;
    r->clen = cr.content_length;
    if (r->status == 101) {
        v = header(r, hl, "Upgrade", &vl);
        if (v == NULL || vl != 7 || strncasecmp(v, "kap-cli", 7) != 0)
            return fail(r, "a 101 to another protocol");
        r->upgraded = 1;
        r->framed = 1;
        r->clen = -1;
        r->st = ST_PLAIN;         /* raw frames until the exit frame */
        return 0;
    }
    if (r->status < 200)
        return fail(r, "an unexpected interim response");
    v = header(r, hl, "Transfer-Encoding", &vl);
    if (v != NULL) {
        if (vl != 7 || strncasecmp(v, "chunked", 7) != 0)
            return fail(r, "an unknown transfer coding");
        r->chunked = 1;
    }
    v = header(r, hl, "Content-Type", &vl);
    r->framed = v != NULL && vl == 21
                && strncasecmp(v, "application/x-kap-cli", 21) == 0;
    r->st = r->chunked ? ST_SIZE : ST_PLAIN;
    if (!r->chunked && r->clen == 0)
        r->st = ST_DONE;
    return 0;
}

int
kap_cli_reply_feed(struct kap_cli_reply *r, const char *p, size_t n,
                   kap_cli_reply_out_fn out, void *data)
{
    if (r->error != NULL)
        return -1;
    if (n == 0) {                           /* the peer closed */
        if (r->st == ST_PLAIN && r->clen < 0)
            r->st = ST_DONE;
        if (r->st != ST_DONE)
            return fail(r, "the connection was cut");
        if (r->framed && !r->have_exit)
            return fail(r, "the answer ended without an exit status");
        r->done = 1;
        return 0;
    }
    while (n > 0) {
        switch (r->st) {
        case ST_HEAD: {
            size_t k = sizeof(r->head) - r->hlen, i;
            if (k == 0)
                return fail(r, "the response head is too large");
            if (k > n)
                k = n;
            memcpy(r->head + r->hlen, p, k);
            for (i = r->hlen; i < r->hlen + k; i++) {
                if (r->head[i] == '\n' && i >= 1
                    && (r->head[i - 1] == '\n'
                        || (i >= 2 && r->head[i - 1] == '\r'
                            && r->head[i - 2] == '\n'))) {
                    size_t used = i + 1 - r->hlen;
                    r->hlen = i + 1;
                    if (head_done(r, r->hlen) != 0)
                        return -1;
                    p += used;
                    n -= used;
                    goto next;
                }
            }
            r->hlen += k;
            p += k;
            n -= k;
            break;
        }
        case ST_SIZE:
        case ST_TRAILER:
            if (*p != '\n') {
                if (r->llen + 1 >= sizeof(r->line))
                    return fail(r, "a chunk line is too long");
                r->line[r->llen++] = *p;
            } else {
                size_t l = r->llen;
                if (l > 0 && r->line[l - 1] == '\r')
                    l--;
                r->llen = 0;
                if (r->st == ST_TRAILER) {
                    if (l == 0)
                        r->st = ST_DONE;
                } else {
                    unsigned long long v = 0;
                    size_t i;
                    for (i = 0; i < l && i < 16; i++) {
                        char c = r->line[i];
                        int  d = c >= '0' && c <= '9' ? c - '0'
                               : c >= 'a' && c <= 'f' ? c - 'a' + 10
                               : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                        if (d < 0)
                            break;
                        v = v * 16 + (unsigned)d;
                    }
                    if (i == 0 || (i < l && r->line[i] != ';'))
                        return fail(r, "a malformed chunk size");
                    r->chunk_left = v;
                    r->st = v == 0 ? ST_TRAILER : ST_DATA;
                }
            }
            p++;
            n--;
            break;
        case ST_DATA: {
            size_t k = n < r->chunk_left ? n : (size_t)r->chunk_left;
            if (content(r, p, k, out, data) != 0)
                return -1;
            p += k;
            n -= k;
            r->chunk_left -= k;
            if (r->chunk_left == 0)
                r->st = ST_DATA_CRLF;
            break;
        }
        case ST_DATA_CRLF:
            if (*p == '\n')
                r->st = ST_SIZE;
            else if (*p != '\r')
                return fail(r, "a chunk without its CRLF");
            p++;
            n--;
            break;
        case ST_PLAIN: {
            size_t k = n;
            if (r->clen >= 0 && (long long)k > r->clen - r->plain_seen)
                k = (size_t)(r->clen - r->plain_seen);
            if (content(r, p, k, out, data) != 0)
                return -1;
            p += k;
            n -= k;
            r->plain_seen += (long long)k;
            if (r->clen >= 0 && r->plain_seen == r->clen)
                r->st = ST_DONE;
            break;
        }
        case ST_DONE:
        default:
            goto end;                  /* anything after it is ignored */
        }
next:
        ;
    }
end:
    if (r->st == ST_DONE) {
        if (r->framed && !r->have_exit)
            return fail(r, "the answer ended without an exit status");
        r->done = 1;
    }
    return 0;
}
