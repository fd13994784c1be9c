/*
 * kap_mcp_sse_frame.c -- write events back in one canonical framing and
 * filter an upstream event stream on its way to the agent (kap_mcp.h).
 *
 * Canonical framing: LF line ends only, "field: value" with one space,
 * the fields in the order event, id, retry, data (one "data: " line per
 * LF-separated line of the data), then an empty line; a comment as ":"
 * alone.  Unknown fields and comment text are not passed on, so a lax
 * SSE reader at the agent's end reads exactly the events kapd read.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "kap_mcp.h"

static int
line(struct kap_buf *out, const char *name, const char *v, size_t n)
{
    if (kap_buf_append(out, name, strlen(name)) != KAP_OK
        || kap_buf_append(out, ": ", 2) != KAP_OK
        || kap_buf_append(out, v, n) != KAP_OK
        || kap_buf_append(out, "\n", 1) != KAP_OK)
        return KAP_ERROR;
    return KAP_OK;
}

int
kap_mcp_sse_write(struct kap_buf *out, const struct kap_mcp_sse_event *ev,
                  const char *data, size_t len, int has_data)
{
    const char *p, *e, *nl;
    char num[32];

    if (ev != NULL && ev->comment)
        return kap_buf_append(out, ":\n", 2);
    if (!has_data && (ev == NULL || (!ev->has_id && !ev->has_retry)))
        return KAP_OK;
    if (ev != NULL && ev->type_len > 0 && has_data
        && line(out, "event", ev->type, ev->type_len) != KAP_OK)
        return KAP_ERROR;
    if (ev != NULL && ev->has_id && line(out, "id", ev->id, ev->id_len) != KAP_OK)
        return KAP_ERROR;
    if (ev != NULL && ev->has_retry) {
        snprintf(num, sizeof(num), "%llu", ev->retry);
        if (line(out, "retry", num, strlen(num)) != KAP_OK)
            return KAP_ERROR;
    }
    if (has_data) {
        p = data;
        e = data + len;
        do {
            nl = memchr(p, '\n', (size_t) (e - p));
            if (line(out, "data", p, (size_t) ((nl ? nl : e) - p)) != KAP_OK)
                return KAP_ERROR;
            p = nl ? nl + 1 : e;
        } while (nl != NULL);
    }
    return kap_buf_append(out, "\n", 1);
}

void
kap_mcp_sse_filter_init(struct kap_mcp_sse_filter *sf,
                        const struct kap_mcp_filter *f, size_t max_event)
{
    memset(sf, 0, sizeof(*sf));
    kap_mcp_sse_init(&sf->sse, max_event);
    sf->f = f;
}

void
kap_mcp_sse_filter_free(struct kap_mcp_sse_filter *sf)
{
    kap_mcp_sse_free(&sf->sse);
    kap_buf_free(&sf->tmp);
}

/* One whole upstream event: filter its data and write it to sf->out. */
static int
filter_event(void *arg, const struct kap_mcp_sse_event *ev)
{
    struct kap_mcp_sse_filter *sf = arg;
    struct kap_err err;
    int rc;

    if (ev->comment || !ev->has_data || ev->data_len == 0)
        return kap_mcp_sse_write(sf->out, ev, ev->data, ev->data_len,
                                 ev->has_data);
    memset(&err, 0, sizeof(err));
    kap_buf_reset(&sf->tmp);
    rc = kap_mcp_reply_json(sf->f, ev->data, ev->data_len, NULL, &sf->tmp,
                            &sf->st, &err);
    switch (rc) {
    case KAP_MCP_PASS:
        return kap_mcp_sse_write(sf->out, ev, ev->data, ev->data_len, 1);
    case KAP_MCP_REWRITTEN:
        return kap_mcp_sse_write(sf->out, ev, sf->tmp.data, sf->tmp.len, 1);
    case KAP_MCP_REFUSED:
        /* the data goes, its id and retry stay (resumption still works) */
        sf->st.dropped++;
        snprintf(sf->last_refusal, sizeof(sf->last_refusal), "%.200s", err.msg);
        return kap_mcp_sse_write(sf->out, ev, NULL, 0, 0);
    default:
        return KAP_ERROR;
    }
}

int
kap_mcp_sse_filter_feed(struct kap_mcp_sse_filter *sf, const char *p, size_t n,
                        struct kap_buf *out, struct kap_err *err)
{
    int rc;

    sf->out = out;
    rc = kap_mcp_sse_feed(&sf->sse, p, n, filter_event, sf, err);
    sf->out = NULL;
    return rc;
}

int
kap_mcp_sse_errors(const struct kap_mcp_req *r, struct kap_buf *out)
{
    struct kap_buf one = { 0 };
    struct kap_json_writer w;
    size_t i;
    int rc = KAP_OK;

    for (i = 0; i < r->nmsgs && rc == KAP_OK; i++) {
        if (!r->msgs[i].denied)
            continue;
        kap_buf_reset(&one);
        kap_json_w_init(&w, &one);
        kap_mcp_msg_error_w(&w, &r->msgs[i]);
        rc = kap_json_w_finish(&w);
        if (rc == KAP_OK)
            rc = kap_mcp_sse_write(out, NULL, one.data, one.len, 1);
    }
    kap_buf_free(&one);
    return rc;
}
