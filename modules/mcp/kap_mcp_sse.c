/*
 * kap_mcp_sse.c -- an incremental text/event-stream parser (kap_mcp.h),
 * as the WHATWG HTML standard's "Parsing an event stream" reads one:
 *
 *   - one byte order mark at the very start is skipped;
 *   - lines end in CRLF, LF or CR (a CR at the end of one read and an LF
 *     at the start of the next are one line end);
 *   - a line starting with ':' is a comment;
 *   - "field:value" (one space after the colon dropped) or "field"
 *     alone (empty value); fields data, event, id (ignored when the
 *     value holds a NUL), retry (ASCII digits only); others ignored;
 *   - an empty line ends the event: data lines joined with LF.
 *
 * Bytes arrive in pieces split anywhere; an event is reported once it is
 * whole, through the caller's callback.  Memory is bounded: the pending
 * line plus the event's fields may not exceed s->max bytes.
 */
#include "config.h"

#include <string.h>

#include "kap_mcp.h"

static const unsigned char bom[3] = { 0xef, 0xbb, 0xbf };

void
kap_mcp_sse_init(struct kap_mcp_sse *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    s->max = max ? max : KAP_MCP_SSE_MAX;
}

static void
event_reset(struct kap_mcp_sse *s)
{
    kap_buf_reset(&s->data);
    kap_buf_reset(&s->type);
    kap_buf_reset(&s->id);
    s->has_data = s->has_id = s->has_retry = 0;
    s->retry = 0;
}

void
kap_mcp_sse_free(struct kap_mcp_sse *s)
{
    kap_buf_free(&s->line);
    kap_buf_free(&s->data);
    kap_buf_free(&s->type);
    kap_buf_free(&s->id);
}

static size_t
held(const struct kap_mcp_sse *s)
{
    return s->line.len + s->data.len + s->type.len + s->id.len;
}

/* more bytes would exceed the bound (the line's own bytes not counted
 * when they are being moved into a field: lineless) */
static int
too_big(struct kap_mcp_sse *s, size_t more, int lineless, struct kap_err *err)
{
    size_t h = held(s) - (lineless ? s->line.len : 0);

    if (more > s->max || h > s->max - more) {
        kap_err_set(err, "event stream: an event over %zu bytes", s->max);
        return 1;
    }
    return 0;
}

static int
put(struct kap_mcp_sse *s, struct kap_buf *b, const char *p, size_t n,
    struct kap_err *err)
{
    if (too_big(s, n, b != &s->line, err))
        return KAP_ERROR;
    if (kap_buf_append(b, p, n) != KAP_OK) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* The field of one complete, non-comment line. */
static int
field(struct kap_mcp_sse *s, struct kap_err *err)
{
    const char *l = s->line.data ? s->line.data : "";
    size_t n = s->line.len, fl, i;
    const char *colon = memchr(l, ':', n);
    const char *v;
    size_t vn;

    fl = colon ? (size_t) (colon - l) : n;
    v = colon ? colon + 1 : l + n;
    vn = (size_t) (l + n - v);
    if (vn > 0 && v[0] == ' ') {
        v++;
        vn--;
    }
    if (fl == 4 && memcmp(l, "data", 4) == 0) {
        if (s->has_data && put(s, &s->data, "\n", 1, err) != KAP_OK)
            return KAP_ERROR;
        s->has_data = 1;
        return put(s, &s->data, v, vn, err);
    }
    if (fl == 5 && memcmp(l, "event", 5) == 0) {
        kap_buf_reset(&s->type);
        return put(s, &s->type, v, vn, err);
    }
    if (fl == 2 && memcmp(l, "id", 2) == 0) {
        if (memchr(v, '\0', vn) != NULL)
            return KAP_OK;
        kap_buf_reset(&s->id);
        s->has_id = 1;
        return put(s, &s->id, v, vn, err);
    }
    if (fl == 5 && memcmp(l, "retry", 5) == 0) {
        unsigned long long r = 0;

        if (vn == 0 || vn > 18)
            return KAP_OK;
        for (i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9')
                return KAP_OK;
            r = r * 10 + (unsigned) (v[i] - '0');
        }
        s->retry = r;
        s->has_retry = 1;
    }
    return KAP_OK;
}

static int
dispatch(struct kap_mcp_sse *s, kap_mcp_sse_cb cb, void *arg)
{
    struct kap_mcp_sse_event ev;
    int rc = KAP_OK;

    if (s->has_data || s->has_id || s->has_retry) {
        memset(&ev, 0, sizeof(ev));
        ev.data = s->data.data ? s->data.data : "";
        ev.data_len = s->data.len;
        ev.has_data = s->has_data;
        ev.type = s->type.data ? s->type.data : "";
        ev.type_len = s->type.len;
        ev.id = s->id.data ? s->id.data : "";
        ev.id_len = s->id.len;
        ev.has_id = s->has_id;
        ev.retry = s->retry;
        ev.has_retry = s->has_retry;
        s->events++;
        rc = cb(arg, &ev);
    }
    event_reset(s);
    return rc;
}

/* A line ended (its bytes are in s->line unless it was a comment). */
static int
line_end(struct kap_mcp_sse *s, kap_mcp_sse_cb cb, void *arg,
         struct kap_err *err)
{
    struct kap_mcp_sse_event ev;
    int rc;

    if (s->comment) {
        s->comment = 0;
        memset(&ev, 0, sizeof(ev));
        ev.comment = 1;
        ev.data = ev.type = ev.id = "";
        return cb(arg, &ev);
    }
    if (s->line.len == 0)
        return dispatch(s, cb, arg);
    rc = field(s, err);
    kap_buf_reset(&s->line);
    return rc;
}

int
kap_mcp_sse_feed(struct kap_mcp_sse *s, const char *p, size_t n,
                 kap_mcp_sse_cb cb, void *arg, struct kap_err *err)
{
    size_t i = 0, j;

    if (s->failed) {
        kap_err_set(err, "event stream: already failed");
        return KAP_ERROR;
    }
    while (i < n) {
        unsigned char c = (unsigned char) p[i];

        if (!s->started) {
            if (c == bom[s->bom]) {
                i++;
                if (++s->bom == 3)
                    s->started = 1;
                continue;
            }
            s->started = 1;
            /* not a BOM after all: its first bytes belong to the line */
            if (s->bom > 0 && put(s, &s->line, (const char *) bom, s->bom,
                                  err) != KAP_OK)
                goto fail;
        }
        if (s->cr) {
            s->cr = 0;
            if (c == '\n') {
                i++;
                continue;
            }
        }
        if (c == '\r' || c == '\n') {
            s->cr = c == '\r';
            i++;
            if (line_end(s, cb, arg, err) != KAP_OK)
                goto fail;
            continue;
        }
        if (s->line.len == 0 && !s->comment && c == ':') {
            s->comment = 1;
            i++;
            continue;
        }
        for (j = i; j < n && p[j] != '\r' && p[j] != '\n'; j++)
            ;
        if (!s->comment && put(s, &s->line, p + i, j - i, err) != KAP_OK)
            goto fail;
        i = j;
    }
    return KAP_OK;
fail:
    if (err != NULL && !err->set)
        kap_err_set(err, "event stream: stopped by its reader");
    s->failed = 1;
    return KAP_ERROR;
}

int
kap_mcp_sse_pending(const struct kap_mcp_sse *s)
{
    return s->line.len > 0 || s->comment || s->has_data || s->has_id
           || s->has_retry || s->type.len > 0 || (!s->started && s->bom > 0);
}
