/*
 * kap_mcp_headers.c -- which of the agent's request headers go upstream
 * (kap_mcp.h).  Only the transport's own: Mcp-Session-Id (mapped by the
 * module to the upstream session of this client), MCP-Protocol-Version,
 * Last-Event-ID and Accept; every other header -- Authorization and
 * Cookie above all -- is dropped by not being picked.  A picked header
 * sent twice, or with a value outside its syntax, refuses the request:
 * kapd and the server must not read two different values.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "kap_mcp.h"

#define VALUE_MAX 1024

static int
is(const struct kap_str *s, const char *name)
{
    return s->len == strlen(name) && strncasecmp(s->data, name, s->len) == 0;
}

/* visible ASCII (and spaces when sp) only, 1..VALUE_MAX bytes */
static int
visible(const struct kap_str *v, int sp)
{
    size_t i;

    if (v->len == 0 || v->len > VALUE_MAX)
        return 0;
    for (i = 0; i < v->len; i++) {
        unsigned char c = (unsigned char) v->data[i];

        if (!((c > 0x20 && c < 0x7f) || (sp && c == ' ')))
            return 0;
    }
    return 1;
}

/* a protocol version is a date: YYYY-MM-DD */
static int
version(const struct kap_str *v)
{
    size_t i;

    if (v->len != 10)
        return 0;
    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (v->data[i] != '-')
                return 0;
        } else if (v->data[i] < '0' || v->data[i] > '9') {
            return 0;
        }
    }
    return 1;
}

int
kap_mcp_headers_pick(const struct kap_http_header *h, size_t n,
                     struct kap_mcp_fwd_headers *out, const char **why)
{
    static const struct {
        const char *name;
        size_t      off;
        int         spaces;
    } picks[] = {
        { "Mcp-Session-Id", offsetof(struct kap_mcp_fwd_headers, session), 0 },
        { "MCP-Protocol-Version", offsetof(struct kap_mcp_fwd_headers, version), 0 },
        { "Last-Event-ID", offsetof(struct kap_mcp_fwd_headers, last_event_id), 1 },
        { "Accept", offsetof(struct kap_mcp_fwd_headers, accept), 1 },
        { "Content-Type", offsetof(struct kap_mcp_fwd_headers, content_type), 1 },
    };
    const struct kap_http_header **slot;
    size_t i, k;

    memset(out, 0, sizeof(*out));
    *why = NULL;
    for (i = 0; i < n; i++) {
        for (k = 0; k < sizeof(picks) / sizeof(picks[0]); k++)
            if (is(&h[i].name, picks[k].name))
                break;
        if (k == sizeof(picks) / sizeof(picks[0]))
            continue;
        slot = (const struct kap_http_header **) ((char *) out + picks[k].off);
        if (*slot != NULL) {
            *why = "a header the MCP transport uses was sent twice";
            return KAP_ERROR;
        }
        if (!visible(&h[i].value, picks[k].spaces)
            || (slot == &out->version && !version(&h[i].value))) {
            *why = "a header the MCP transport uses has a malformed value";
            return KAP_ERROR;
        }
        *slot = &h[i];
    }
    return KAP_OK;
}
