/*
 * kap_mcp_ctype.c -- read a Content-Type value (RFC 9110 8.3: type "/"
 * subtype, then ";" parameters, names case-insensitive, values a token
 * or a quoted string) and decide what the mcp module does with it
 * (kap_mcp.h): a request must be application/json with at most a
 * charset of utf-8; a reply is JSON, an event stream, or something else.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "kap_mcp.h"

static int
is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *
skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A token at p: its length (0 when there is none). */
static size_t
token(const char *p)
{
    size_t n = 0;

    while (is_tchar((unsigned char) p[n]))
        n++;
    return n;
}

static int
is(const char *p, size_t n, const char *lower)
{
    return strlen(lower) == n && strncasecmp(p, lower, n) == 0;
}

int
kap_mcp_ctype_parse(const char *v, struct kap_mcp_ctype *ct)
{
    const char *p, *t, *s;
    size_t tn, sn, nn, vn;
    char val[32];

    memset(ct, 0, sizeof(*ct));
    ct->media = KAP_MCP_MEDIA_NONE;
    if (v == NULL)
        return KAP_OK;
    p = skip_ows(v);
    if (*p == '\0')
        return KAP_OK;
    ct->media = KAP_MCP_MEDIA_OTHER;
    t = p;
    tn = token(t);
    if (tn == 0 || t[tn] != '/')
        return KAP_ERROR;
    s = t + tn + 1;
    sn = token(s);
    if (sn == 0)
        return KAP_ERROR;
    if (is(t, tn, "application") && is(s, sn, "json"))
        ct->media = KAP_MCP_MEDIA_JSON;
    else if (is(t, tn, "text") && is(s, sn, "event-stream"))
        ct->media = KAP_MCP_MEDIA_SSE;
    p = skip_ows(s + sn);
    while (*p == ';') {
        const char *name = skip_ows(p + 1), *value;

        nn = token(name);
        if (nn == 0 || name[nn] != '=')
            return KAP_ERROR;
        value = name + nn + 1;
        vn = 0;
        if (*value == '"') {
            /* a quoted string: copy it out without its escapes */
            for (p = value + 1; *p != '"'; p++) {
                if (*p == '\\')
                    p++;
                if (*p == '\0' || (unsigned char) *p < 0x20 || *p == 0x7f)
                    return KAP_ERROR;
                if (vn < sizeof(val) - 1)
                    val[vn] = *p;
                vn++;
            }
            p++;
        } else {
            vn = token(value);
            if (vn == 0)
                return KAP_ERROR;
            if (vn < sizeof(val))
                memcpy(val, value, vn);
            p = value + vn;
        }
        if (is(name, nn, "charset")) {
            ct->ncharset++;
            ct->charset_utf8 = vn == 5 && strncasecmp(val, "utf-8", 5) == 0;
        } else {
            ct->nother++;
        }
        p = skip_ows(p);
    }
    return *p == '\0' ? KAP_OK : KAP_ERROR;
}

const char *
kap_mcp_ctype_request(const char *v)
{
    struct kap_mcp_ctype ct;

    if (kap_mcp_ctype_parse(v, &ct) != KAP_OK)
        return "Content-Type is not a valid media type";
    if (ct.media == KAP_MCP_MEDIA_NONE)
        return "Content-Type application/json is required";
    if (ct.media != KAP_MCP_MEDIA_JSON)
        return "Content-Type must be application/json";
    if (ct.nother > 0)
        return "Content-Type application/json takes no parameter but charset";
    if (ct.ncharset > 1)
        return "Content-Type has more than one charset";
    if (ct.ncharset == 1 && !ct.charset_utf8)
        return "Content-Type charset must be utf-8";
    return NULL;
}

enum kap_mcp_reply_kind
kap_mcp_reply_kind(int status, const char *content_type)
{
    struct kap_mcp_ctype ct;

    /* by the media type alone: what a lax client would read the body as
     * even when the parameters after it do not parse */
    (void) kap_mcp_ctype_parse(content_type, &ct);
    if (ct.media == KAP_MCP_MEDIA_JSON)
        return KAP_MCP_REPLY_JSON;
    if (ct.media == KAP_MCP_MEDIA_SSE)
        return KAP_MCP_REPLY_SSE;
    /* an error page, or the bodiless 202/204 of notifications, is no
     * message a client reads tools from; a 2xx body of another type may
     * be one to a lax client */
    if (status < 200 || status > 299 || status == 202 || status == 204)
        return KAP_MCP_REPLY_PASS;
    return KAP_MCP_REPLY_REFUSE;
}
