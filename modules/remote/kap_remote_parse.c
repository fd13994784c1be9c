/*
 * kap_remote_parse.c -- the remote module's parsers of untrusted bytes:
 * the /api/logs query string, the /api/pair body, the Bearer header,
 * device ids.  Pure functions (no I/O, no globals): unit-tested in
 * t/unit/test_remote_parse and fuzzed by fuzz/fuzz_remote.
 *
 * Strict on purpose: anything not exactly expected is refused, so that
 * no ambiguity (a repeated key, a percent-escape, a sign) reaches the
 * code behind.
 */
#include <string.h>
#include <strings.h>

#include <kapd/kap_json.h>

#include "kap_remote.h"

static int
kr_is(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

/* "limit" value: 1..KR_LOG_LIMIT_MAX, decimal digits, no leading zero */
static int
kr_limit_value(const char *v, size_t n, long *out)
{
    long x = 0;
    size_t i;

    if (n == 0 || n > 4 || v[0] == '0')
        return KAP_ERROR;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return KAP_ERROR;
        x = x * 10 + (v[i] - '0');
    }
    if (x > KR_LOG_LIMIT_MAX)
        return KAP_ERROR;
    *out = x;
    return KAP_OK;
}

/* "since" value: 0..10^18-1, decimal digits, no leading zero */
static int
kr_since_value(const char *v, size_t n, long long *out)
{
    long long x = 0;
    size_t i;

    if (n == 0 || n > 18 || (v[0] == '0' && n > 1))
        return KAP_ERROR;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return KAP_ERROR;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return KAP_OK;
}

/* both queries; ws: "since" is known too */
static int
kr_query_parse_as(const char *q, size_t len, struct kr_query *out,
                  const char **why, int ws)
{
    const char *p = q, *end = q + len, *amp, *eq;
    int seen_limit = 0, seen_denied = 0, seen_since = 0;

    out->limit = KR_LOG_LIMIT_DEFAULT;
    out->denied = 0;
    out->since = -1;
    while (p < end) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL)
            amp = end;
        eq = memchr(p, '=', (size_t) (amp - p));
        if (eq == NULL || eq == p) {
            *why = "query: expected name=value pairs";
            return KAP_ERROR;
        }
        if (kr_is(p, (size_t) (eq - p), "limit")) {
            if (seen_limit++) {
                *why = "query: limit given twice";
                return KAP_ERROR;
            }
            if (kr_limit_value(eq + 1, (size_t) (amp - eq - 1), &out->limit)
                != KAP_OK) {
                *why = "query: limit must be a number from 1 to 1000";
                return KAP_ERROR;
            }
        } else if (kr_is(p, (size_t) (eq - p), "denied")) {
            const char *v = eq + 1;
            size_t n = (size_t) (amp - v);

            if (seen_denied++) {
                *why = "query: denied given twice";
                return KAP_ERROR;
            }
            if (kr_is(v, n, "1") || kr_is(v, n, "true"))
                out->denied = 1;
            else if (kr_is(v, n, "0") || kr_is(v, n, "false"))
                out->denied = 0;
            else {
                *why = "query: denied must be 0, 1, true or false";
                return KAP_ERROR;
            }
        } else if (ws && kr_is(p, (size_t) (eq - p), "since")) {
            if (seen_since++) {
                *why = "query: since given twice";
                return KAP_ERROR;
            }
            if (kr_since_value(eq + 1, (size_t) (amp - eq - 1), &out->since)
                != KAP_OK) {
                *why = "query: since must be an event number";
                return KAP_ERROR;
            }
        } else if (kr_is(p, (size_t) (eq - p), "token")
                   || kr_is(p, (size_t) (eq - p), "access_token")) {
            *why = "query: a token never goes in the URL (use the"
                   " Authorization header or the WebSocket subprotocol)";
            return KAP_ERROR;
        } else {
            *why = ws ? "query: unknown parameter (known: since, limit,"
                        " denied)"
                      : "query: unknown parameter (known: limit, denied)";
            return KAP_ERROR;
        }
        p = amp == end ? end : amp + 1;
        if (amp != end && p == end) {
            *why = "query: trailing '&'";
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

int
kr_query_parse(const char *q, size_t len, struct kr_query *out,
               const char **why)
{
    return kr_query_parse_as(q, len, out, why, 0);
}

int
kr_ws_query_parse(const char *q, size_t len, struct kr_query *out,
                  const char **why)
{
    return kr_query_parse_as(q, len, out, why, 1);
}

/* ---- the WebSocket handshake's fields (RFC 6455 §4.2.1) ------------------- */

static int
kr_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z')
           || (c >= 'A' && c <= 'Z') || (c != '\0'
                                         && strchr("!#$%&'*+-.^_`|~", c));
}

/* the next element of a comma-separated list, OWS trimmed; NULL at the
   end.  *p moves past it. */
static const char *
kr_list_next(const char **p, size_t *n)
{
    const char *s = *p, *e;

    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    if (*s == '\0')
        return NULL;
    e = strchr(s, ',');
    if (e == NULL)
        e = s + strlen(s);
    *p = e;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *n = (size_t) (e - s);
    return s;
}

int
kr_list_has(const char *value, const char *token)
{
    const char *p = value, *e;
    size_t n;

    if (value == NULL)
        return 0;
    while ((e = kr_list_next(&p, &n)) != NULL)
        if (n == strlen(token) && strncasecmp(e, token, n) == 0)
            return 1;
    return 0;
}

int
kr_ws_key_ok(const char *key)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *c;
    size_t i;

    /* 16 bytes in base64: 22 characters, "==", the last character's
       low four bits zero */
    if (key == NULL || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (i = 0; i < 22; i++)
        if (key[i] == '\0' || (c = strchr(b64, key[i])) == NULL)
            return 0;
    return ((c - b64) & 0x0f) == 0;
}

int
kr_ws_protocols(const char *value, const char **tok, size_t *toklen,
                const char **why)
{
    const char *p = value, *e;
    size_t n, i;
    int v1 = 0;

    *tok = NULL;
    *toklen = 0;
    if (value == NULL) {
        *why = "Sec-WebSocket-Protocol must offer kap.v1";
        return KAP_ERROR;
    }
    while ((e = kr_list_next(&p, &n)) != NULL) {
        for (i = 0; i < n; i++)
            if (!kr_tchar((unsigned char) e[i])) {
                *why = "Sec-WebSocket-Protocol: not a list of tokens";
                return KAP_ERROR;
            }
        if (n == 6 && memcmp(e, "kap.v1", 6) == 0) {
            v1 = 1;
        } else if (n > 10 && memcmp(e, "kap.token.", 10) == 0) {
            if (*tok != NULL) {
                *why = "Sec-WebSocket-Protocol: two tokens";
                return KAP_ERROR;
            }
            if (n - 10 > KR_BEARER_MAX) {
                *why = "Sec-WebSocket-Protocol: token too long";
                return KAP_ERROR;
            }
            *tok = e + 10;
            *toklen = n - 10;
        }                               /* other offers: not chosen */
    }
    if (!v1) {
        *why = "Sec-WebSocket-Protocol must offer kap.v1";
        return KAP_ERROR;
    }
    return KAP_OK;
}

int
kr_origin_ok(const char *origin, const char *host, int tls)
{
    const char *scheme = tls ? "https://" : "http://";
    size_t sl = strlen(scheme);

    if (origin == NULL)
        return 1;                       /* not a browser */
    if (host == NULL || *host == '\0')
        return 0;
    return strncasecmp(origin, scheme, sl) == 0
           && strcasecmp(origin + sl, host) == 0;
}

/*
 * A device name: valid UTF-8 (the JSON parser checked it) without C0
 * controls, DEL, C1 controls (U+0080..U+009F), or the bidirectional
 * embeddings, overrides and isolates (U+202A..U+202E, U+2066..U+2069)
 * that would make a name display as another in `kap remote status`.
 */
static int
kr_name_ok(const unsigned char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > KR_NAME_MAX)
        return 0;
    for (i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f)
            return 0;
        if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
            return 0;
        if (s[i] == 0xe2 && i + 2 < n) {
            if (s[i + 1] == 0x80 && s[i + 2] >= 0xaa && s[i + 2] <= 0xae)
                return 0;
            if (s[i + 1] == 0x81 && s[i + 2] >= 0xa6 && s[i + 2] <= 0xa9)
                return 0;
        }
    }
    /* no leading or trailing space: names are shown trimmed elsewhere */
    return s[0] != ' ' && s[n - 1] != ' ';
}

/*
 * Parse body[0..len) (at most max bytes) into *j: a JSON object whose
 * members are all named key.  KAP_OK; or KAP_ERROR with *j NULL (not
 * JSON), or with *j set (the caller frees it) and *why "object" (not an
 * object) or "member" (another member).
 */
static int
kr_json_only(const char *body, size_t len, size_t max, const char *key,
             struct kap_json **j, const char **why)
{
    struct kap_json_limits lim = { max, 4, 16, 0 };
    const struct kap_json *m;

    *j = kap_json_parse(body, len, &lim, NULL);
    if (*j == NULL)
        return KAP_ERROR;
    *why = "object";
    if (kap_json_type(*j) != KAP_JSON_OBJECT)
        return KAP_ERROR;
    *why = "member";
    for (m = kap_json_child(*j); m != NULL; m = kap_json_next(m))
        if (strcmp(kap_json_key(m), key) != 0)
            return KAP_ERROR;
    return KAP_OK;
}

int
kr_pair_body_parse(const char *body, size_t len, char *name,
                   const char **why)
{
    struct kap_json *j;
    const struct kap_json *m;
    const char *s;
    int rc = KAP_ERROR;

    name[0] = '\0';
    if (len == 0)
        return KAP_OK;
    if (kr_json_only(body, len, 4096, "name", &j, why) != KAP_OK) {
        *why = j == NULL ? "pair: the body is not valid JSON"
             : *why[0] == 'o' ? "pair: the body must be a JSON object"
             : "pair: unknown member (known: name)";
        goto out;
    }
    m = kap_json_get(j, "name");
    if (m != NULL) {
        s = kap_json_string(m);
        if (s == NULL || !kr_name_ok((const unsigned char *) s, strlen(s))) {
            *why = "pair: name must be 1 to 64 bytes of printable text";
            goto out;
        }
        memcpy(name, s, strlen(s) + 1);
    }
    rc = KAP_OK;
out:
    kap_json_free(j);
    return rc;
}

static int
kr_b64token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
           || c == '~' || c == '+' || c == '/';
}

const char *
kr_bearer(const char *value, size_t *len)
{
    const char *t;
    size_t n = 0;

    if (value == NULL || strncasecmp(value, "Bearer ", 7) != 0)
        return NULL;
    t = value + 7;
    while (kr_b64token_char((unsigned char) t[n]))
        n++;
    while (t[n] == '=' && n > 0)         /* b64token's trailing padding */
        n++;
    if (n == 0 || n > KR_BEARER_MAX || t[n] != '\0')
        return NULL;
    *len = n;
    return t;
}

int
kr_hex_lower(const char *s, size_t len, size_t want)
{
    size_t i;

    if (len != want)
        return 0;
    for (i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int
kr_id_valid(const char *s, size_t len)
{
    return kr_hex_lower(s, len, KR_ID_LEN);
}

int
kr_ask_id_valid(const char *s, size_t len)
{
    return kr_hex_lower(s, len, KR_ASK_ID_LEN);
}

int
kr_answer_body_parse(const char *body, size_t len, int *answer,
                     const char **why)
{
    struct kap_json *j = NULL;
    const char *s, *w;
    int rc = KAP_ERROR;

    *answer = 0;
    *why = "answer: the body must be {\"answer\": \"once\"|\"always\"|"
           "\"deny\"}";
    if (len == 0 || kr_json_only(body, len, 1024, "answer", &j, &w) != KAP_OK)
        goto out;
    s = kap_json_string(kap_json_get(j, "answer"));
    if (s == NULL)
        goto out;
    if (strcmp(s, "once") == 0)
        *answer = KR_ANSWER_ONCE;
    else if (strcmp(s, "always") == 0)
        *answer = KR_ANSWER_ALWAYS;
    else if (strcmp(s, "deny") == 0)
        *answer = KR_ANSWER_DENY;
    else
        goto out;
    rc = KAP_OK;
out:
    kap_json_free(j);
    return rc;
}
