/*
 * kap_mcp_oauth.c -- the OAuth 2.1 discovery documents, a client
 * registration answer, a WWW-Authenticate challenge, a callback query
 * and an MCP reply parsed strictly (kap_mcp_oauth.h).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_module.h>

#include "kap_mcp_oauth.h"

static const struct kap_json_limits doc_lim = {
    KAP_MCP_OAUTH_MAX, 16, 1024, KAP_JSON_LOOSE_NUMBERS
};

/* ---- WWW-Authenticate ------------------------------------------------ */

static int
tchar(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *
ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int
kap_mcp_www_auth_param(const char *hdr, const char *param, char *out,
                       size_t outlen)
{
    const char *p = hdr, *k;
    size_t kl, n;
    int bearer = 0, want;

    if (outlen == 0)
        return KAP_ERROR;
    out[0] = '\0';
    while (*(p = ows(p)) != '\0') {
        if (*p == ',') {
            p++;
            continue;
        }
        for (k = p; tchar((unsigned char)*p); p++)
            ;
        kl = (size_t)(p - k);
        if (kl == 0)
            return KAP_ERROR;
        if (*p == ' ' || *p == '\t' || *p == ',' || *p == '\0') {
            /* a scheme name (a new challenge), or token68 after one */
            const char *q = ows(p);
            if (*q != '=' ) {
                bearer = kl == 6 && strncasecmp(k, "Bearer", 6) == 0;
                continue;
            }
            p = q;
        }
        if (*p != '=')
            return KAP_ERROR;
        p = ows(p + 1);
        want = bearer && strlen(param) == kl && strncasecmp(k, param, kl) == 0;
        n = 0;
        if (*p == '"') {
            for (p++; *p != '"'; p++) {
                if (*p == '\\')
                    p++;
                if (*p == '\0' || (unsigned char)*p < 0x20)
                    return KAP_ERROR;
                if (want) {
                    if (n + 1 >= outlen)
                        return KAP_ERROR;
                    out[n++] = *p;
                }
            }
            p++;
        } else {
            for (; tchar((unsigned char)*p) || *p == '/'; p++) {
                if (want) {
                    if (n + 1 >= outlen)
                        return KAP_ERROR;
                    out[n++] = *p;
                }
            }
        }
        if (want) {
            out[n] = '\0';
            return n > 0 ? KAP_OK : KAP_ERROR;
        }
        p = ows(p);
        if (*p != ',' && *p != '\0')
            return KAP_ERROR;
    }
    return KAP_ERROR;
}

/* ---- query string ----------------------------------------------------- */

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* decode s[0..n) into out (outlen); KAP_ERROR on a bad escape, a
   control byte or no room */
static int
form_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int h, l;
            if (i + 2 >= n)
                return KAP_ERROR;
            h = hexval((unsigned char)s[i + 1]);
            l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return KAP_ERROR;
            c = h * 16 + l;
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= outlen)
            return KAP_ERROR;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return KAP_OK;
}

int
kap_mcp_query_get(const char *query, const char *key, char *out,
                  size_t outlen)
{
    const char *p = query, *amp, *eq;
    char name[128];
    int found = 0;

    if (outlen == 0)
        return KAP_ERROR;
    out[0] = '\0';
    while (*p != '\0') {
        size_t seg;
        amp = strchr(p, '&');
        seg = amp != NULL ? (size_t)(amp - p) : strlen(p);
        eq = memchr(p, '=', seg);
        if (seg > 0) {
            size_t kl = eq != NULL ? (size_t)(eq - p) : seg;
            if (form_decode(p, kl, name, sizeof(name)) != KAP_OK)
                return KAP_ERROR;
            if (strcmp(name, key) == 0) {
                if (found)
                    return KAP_ERROR;       /* twice: which one? */
                found = 1;
                if (eq == NULL)
                    out[0] = '\0';
                else if (form_decode(eq + 1, seg - kl - 1, out, outlen)
                         != KAP_OK)
                    return KAP_ERROR;
            }
        }
        p += seg;
        if (*p == '&')
            p++;
    }
    return found ? KAP_OK : KAP_DECLINED;
}

/* ---- URLs ------------------------------------------------------------- */

int
kap_mcp_url_safe(const char *url)
{
    const char *h, *e;
    size_t n;

    if (url == NULL || strlen(url) > KAP_MCP_URL_MAX)
        return 0;
    for (h = url; *h != '\0'; h++)
        if ((unsigned char)*h <= 0x20 || (unsigned char)*h >= 0x7f)
            return 0;
    if (strncmp(url, "https://", 8) == 0)
        return url[8] != '\0' && url[8] != '/';
    if (strncmp(url, "http://", 7) != 0)
        return 0;
    h = url + 7;
    e = h + strcspn(h, "/?#");
    n = (size_t)(e - h);
    if (memchr(h, '@', n) != NULL)
        return 0;
    if (n >= 9 && strncmp(h, "localhost", 9) == 0 && (n == 9 || h[9] == ':'))
        return 1;
    if (n >= 5 && strncmp(h, "[::1]", 5) == 0 && (n == 5 || h[5] == ':'))
        return 1;
    if (n >= 4 && strncmp(h, "127.", 4) == 0) {
        const char *p;
        for (p = h + 4; p < e && *p != ':'; p++)
            if (!((*p >= '0' && *p <= '9') || *p == '.'))
                return 0;
        return 1;
    }
    return 0;
}

static char *
dup_url(const struct kap_json *j, const char *key, int need, int *bad)
{
    const char *s = kap_json_get_string(j, key);
    char *d;

    if (s == NULL) {
        if (need || kap_json_get(j, key) != NULL)
            *bad = 1;
        return NULL;
    }
    if (!kap_mcp_url_safe(s)) {
        *bad = 1;
        return NULL;
    }
    if ((d = strdup(s)) == NULL)
        *bad = 1;
    return d;
}

/* ---- RFC 9728 ---------------------------------------------------------- */

void
kap_mcp_prm_clear(struct kap_mcp_prm *m)
{
    free(m->resource);
    free(m->auth_server);
    free(m->scope);
    memset(m, 0, sizeof(*m));
}

static char *
join_scopes(const struct kap_json *a, int *bad)
{
    const struct kap_json *c;
    struct kap_buf b = { 0 };
    char *s;

    if (a == NULL)
        return NULL;
    if (kap_json_type(a) != KAP_JSON_ARRAY) {
        *bad = 1;
        return NULL;
    }
    for (c = kap_json_child(a); c != NULL; c = kap_json_next(c)) {
        const char *v = kap_json_string(c), *q;
        if (v == NULL || v[0] == '\0') {
            *bad = 1;
            break;
        }
        for (q = v; *q != '\0'; q++)
            if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f
                || *q == '"' || *q == '\\')
                *bad = 1;
        if (*bad || (b.len > 0 && kap_buf_append(&b, " ", 1) != KAP_OK)
            || kap_buf_append(&b, v, strlen(v)) != KAP_OK) {
            *bad = 1;
            break;
        }
    }
    if (*bad || b.data == NULL) {
        kap_buf_free(&b);
        return NULL;
    }
    s = b.data;                 /* the buffer's memory is the string */
    return s;
}

int
kap_mcp_prm_parse(const char *body, size_t len, struct kap_mcp_prm *m,
                  struct kap_err *err)
{
    struct kap_err je = { 0 };
    struct kap_json *j;
    const struct kap_json *as, *c;
    int bad = 0;

    memset(m, 0, sizeof(*m));
    j = kap_json_parse(body, len, &doc_lim, &je);
    if (j == NULL || kap_json_type(j) != KAP_JSON_OBJECT) {
        kap_err_set(err, "the protected resource metadata is not a JSON "
                    "object%s%s", je.set ? ": " : "", je.set ? je.msg : "");
        kap_json_free(j);
        return KAP_ERROR;
    }
    as = kap_json_get(j, "authorization_servers");
    m->resource = dup_url(j, "resource", 1, &bad);
    if (as != NULL && kap_json_type(as) != KAP_JSON_ARRAY)
        bad = 1;
    for (c = kap_json_child(as); c != NULL; c = kap_json_next(c))
        if (kap_mcp_url_safe(kap_json_string(c))) {
            if ((m->auth_server = strdup(kap_json_string(c))) == NULL)
                bad = 1;
            break;
        }
    m->scope = join_scopes(kap_json_get(j, "scopes_supported"), &bad);
    kap_json_free(j);
    if (bad || m->resource == NULL) {
        kap_err_set(err, "the protected resource metadata has no resource "
                    "URL, or a member of the wrong type");
        kap_mcp_prm_clear(m);
        return KAP_ERROR;
    }
    if (m->auth_server == NULL) {
        kap_err_set(err, "the protected resource metadata names no "
                    "authorization server (an https:// URL)");
        kap_mcp_prm_clear(m);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- RFC 8414 ---------------------------------------------------------- */

void
kap_mcp_asm_clear(struct kap_mcp_asm *m)
{
    free(m->issuer);
    free(m->authorization_endpoint);
    free(m->token_endpoint);
    free(m->registration_endpoint);
    memset(m, 0, sizeof(*m));
}

static int
has_s256(const struct kap_json *a)
{
    const struct kap_json *c;

    for (c = kap_json_child(a); c != NULL; c = kap_json_next(c))
        if (kap_json_string(c) != NULL && strcmp(kap_json_string(c), "S256") == 0)
            return 1;
    return 0;
}

int
kap_mcp_asm_parse(const char *body, size_t len, const char *issuer,
                  struct kap_mcp_asm *m, struct kap_err *err)
{
    struct kap_err je = { 0 };
    struct kap_json *j;
    const char *is;
    int bad = 0;

    memset(m, 0, sizeof(*m));
    j = kap_json_parse(body, len, &doc_lim, &je);
    if (j == NULL || kap_json_type(j) != KAP_JSON_OBJECT) {
        kap_err_set(err, "the authorization server metadata is not a JSON "
                    "object%s%s", je.set ? ": " : "", je.set ? je.msg : "");
        kap_json_free(j);
        return KAP_ERROR;
    }
    is = kap_json_get_string(j, "issuer");
    if (is == NULL || issuer == NULL || strcmp(is, issuer) != 0) {
        kap_err_set(err, "the authorization server metadata's issuer is not "
                    "the authorization server it was fetched from");
        kap_json_free(j);
        return KAP_ERROR;
    }
    if (!has_s256(kap_json_get(j, "code_challenge_methods_supported"))) {
        kap_err_set(err, "the authorization server does not support PKCE "
                    "S256 (code_challenge_methods_supported)");
        kap_json_free(j);
        return KAP_ERROR;
    }
    m->issuer = strdup(is);
    m->authorization_endpoint = dup_url(j, "authorization_endpoint", 1, &bad);
    m->token_endpoint = dup_url(j, "token_endpoint", 1, &bad);
    m->registration_endpoint = dup_url(j, "registration_endpoint", 0, &bad);
    kap_json_free(j);
    if (bad || m->issuer == NULL) {
        kap_err_set(err, "the authorization server metadata lacks an "
                    "authorization or token endpoint, or one is not an "
                    "https:// URL");
        kap_mcp_asm_clear(m);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- RFC 7591 ---------------------------------------------------------- */

int
kap_mcp_dcr_parse(const char *body, size_t len, char **client_id,
                  char **client_secret, struct kap_err *err)
{
    struct kap_err je = { 0 };
    struct kap_json *j;
    const char *id, *sec;
    int rc = KAP_ERROR;

    *client_id = *client_secret = NULL;
    j = kap_json_parse(body, len, &doc_lim, &je);
    id = kap_json_get_string(j, "client_id");
    sec = kap_json_get_string(j, "client_secret");
    if (id == NULL || id[0] == '\0' || strlen(id) > 1024
        || (kap_json_get(j, "client_secret") != NULL
            && kap_json_type(kap_json_get(j, "client_secret")) != KAP_JSON_NULL
            && sec == NULL)) {
        kap_err_set(err, "the client registration answer has no client_id "
                    "string%s%s", je.set ? ": " : "", je.set ? je.msg : "");
        goto out;
    }
    *client_id = strdup(id);
    *client_secret = sec != NULL && sec[0] != '\0' ? strdup(sec) : NULL;
    if (*client_id == NULL || (sec != NULL && sec[0] != '\0'
                               && *client_secret == NULL)) {
        free(*client_id);
        free(*client_secret);
        *client_id = *client_secret = NULL;
        kap_err_set(err, "out of memory");
        goto out;
    }
    rc = KAP_OK;
out:
    kap_json_free(j);
    return rc;
}

/* ---- an MCP reply ------------------------------------------------------ */

static int
rpc_is(const struct kap_json *m, int64_t id)
{
    int64_t v;

    return kap_json_type(m) == KAP_JSON_OBJECT
           && kap_json_int(kap_json_get(m, "id"), &v) == KAP_OK && v == id;
}

/* the message with id in the JSON text [p, p+n): a tree of its own */
static struct kap_json *
rpc_pick(const char *p, size_t n, int64_t id, struct kap_err *je)
{
    struct kap_json *j = kap_json_parse(p, n, &doc_lim, je);
    const struct kap_json *c;
    struct kap_buf b = { 0 };
    struct kap_json *one = NULL;

    if (j == NULL)
        return NULL;
    if (rpc_is(j, id))
        return j;
    if (kap_json_type(j) == KAP_JSON_ARRAY)
        for (c = kap_json_child(j); c != NULL; c = kap_json_next(c))
            if (rpc_is(c, id)) {
                if (kap_json_print(c, &b) == KAP_OK)
                    one = kap_json_parse(b.data, b.len, &doc_lim, je);
                break;
            }
    kap_buf_free(&b);
    kap_json_free(j);
    return one;
}

int
kap_mcp_rpc_result(const char *ctype, const char *body, size_t len,
                   int64_t id, struct kap_json **out, struct kap_err *err)
{
    struct kap_err je = { 0 };
    struct kap_buf ev = { 0 };
    size_t i = 0;

    *out = NULL;
    if (ctype != NULL && strncasecmp(ctype, "text/event-stream", 17) == 0) {
        /* events: data: lines joined by LF, ended by a blank line */
        while (i <= len && *out == NULL) {
            size_t s = i, e;
            while (i < len && body[i] != '\n' && body[i] != '\r')
                i++;
            e = i;
            if (i < len && body[i] == '\r' && i + 1 < len && body[i + 1] == '\n')
                i++;
            i++;
            if (e == s || i > len) {         /* blank line or the end */
                if (ev.len > 0)
                    *out = rpc_pick(ev.data, ev.len, id, &je);
                kap_buf_reset(&ev);
                if (i > len)
                    break;
                continue;
            }
            if (e - s >= 5 && memcmp(body + s, "data:", 5) == 0) {
                s += 5;
                if (s < e && body[s] == ' ')
                    s++;
                if ((ev.len > 0 && kap_buf_append(&ev, "\n", 1) != KAP_OK)
                    || kap_buf_append(&ev, body + s, e - s) != KAP_OK)
                    break;
            }
        }
        kap_buf_free(&ev);
    } else if (ctype != NULL
               && strncasecmp(ctype, "application/json", 16) == 0) {
        *out = rpc_pick(body, len, id, &je);
    } else {
        kap_err_set(err, "the MCP server answered with Content-Type %.64s, "
                    "neither JSON nor an event stream",
                    ctype != NULL ? ctype : "(none)");
        return KAP_ERROR;
    }
    if (*out == NULL) {
        kap_err_set(err, "the MCP server's reply holds no JSON-RPC answer "
                    "to request %lld%s%s", (long long)id,
                    je.set ? ": " : "", je.set ? je.msg : "");
        return KAP_ERROR;
    }
    return KAP_OK;
}
