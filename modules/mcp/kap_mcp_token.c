/*
 * kap_mcp_token.c -- a token endpoint's answer parsed (kap_mcp_token.h),
 * a token's digest and form encoding.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_token.h"

static void
tok_free(char *s)
{
    if (s != NULL) {
        kap_secret_wipe(s, strlen(s));
        free(s);
    }
}

void
kap_mcp_token_clear(struct kap_mcp_token *t)
{
    tok_free(t->access_token);
    tok_free(t->refresh_token);
    free(t->scope);
    memset(t, 0, sizeof(*t));
    t->expires_in = -1;
}

/* 1 when s is 1..4096 visible ASCII bytes (a token that fits a header) */
static int
tok_visible(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return i > 0 && i <= 4096;
}

static int
tok_expires(const struct kap_json *e, long long *out)
{
    int64_t v;
    const char *s;
    char *end;

    if (e == NULL || kap_json_type(e) == KAP_JSON_NULL) {
        *out = -1;
        return KAP_OK;
    }
    if (kap_json_int(e, &v) == KAP_OK && v >= 0 && v <= 100LL * 365 * 86400) {
        *out = (long long)v;
        return KAP_OK;
    }
    s = kap_json_string(e);
    if (s != NULL && s[0] >= '0' && s[0] <= '9' && strlen(s) <= 10) {
        *out = strtoll(s, &end, 10);
        if (*end == '\0')
            return KAP_OK;
    }
    return KAP_ERROR;
}

int
kap_mcp_token_parse(const char *body, size_t len, struct kap_mcp_token *t,
                    struct kap_err *err)
{
    struct kap_json_limits lim = { KAP_MCP_TOKEN_MAX, 16, 256,
                                   KAP_JSON_LOOSE_NUMBERS };
    struct kap_json *j;
    struct kap_err je = { 0 };
    const char *at, *tt, *rt, *sc;
    int rc = KAP_ERROR;

    memset(t, 0, sizeof(*t));
    t->expires_in = -1;
    j = kap_json_parse(body, len, &lim, &je);
    if (j == NULL) {
        kap_err_set(err, "the token endpoint's answer is not JSON: %s",
                    je.set ? je.msg : "out of memory");
        return KAP_ERROR;
    }
    if (kap_json_type(j) != KAP_JSON_OBJECT) {
        kap_err_set(err, "the token endpoint's answer is not a JSON object");
        goto out;
    }
    at = kap_json_get_string(j, "access_token");
    tt = kap_json_get_string(j, "token_type");
    rt = kap_json_get_string(j, "refresh_token");
    sc = kap_json_get_string(j, "scope");
    if (at == NULL || !tok_visible(at)) {
        kap_err_set(err, "the token endpoint's answer has no usable "
                    "access_token");
        goto out;
    }
    if (tt == NULL || strcasecmp(tt, "bearer") != 0) {
        kap_err_set(err, "the token endpoint's token_type is not Bearer");
        goto out;
    }
    if ((kap_json_get(j, "refresh_token") != NULL
         && (rt == NULL || !tok_visible(rt)))
        || (kap_json_get(j, "scope") != NULL && sc == NULL)) {
        kap_err_set(err, "the token endpoint's refresh_token or scope is "
                    "not a string of visible characters");
        goto out;
    }
    if (tok_expires(kap_json_get(j, "expires_in"), &t->expires_in)
        != KAP_OK) {
        kap_err_set(err, "the token endpoint's expires_in is not a number "
                    "of seconds");
        goto out;
    }
    t->access_token = strdup(at);
    t->refresh_token = rt != NULL ? strdup(rt) : NULL;
    t->scope = sc != NULL ? strdup(sc) : NULL;
    if (t->access_token == NULL || (rt != NULL && t->refresh_token == NULL)
        || (sc != NULL && t->scope == NULL)) {
        kap_err_set(err, "out of memory");
        goto out;
    }
    rc = KAP_OK;
out:
    if (j != NULL) {
        if ((at = kap_json_get_string(j, "access_token")) != NULL)
            kap_secret_wipe((char *)at, strlen(at));
        if ((rt = kap_json_get_string(j, "refresh_token")) != NULL)
            kap_secret_wipe((char *)rt, strlen(rt));
        kap_json_free(j);
    }
    if (rc != KAP_OK)
        kap_mcp_token_clear(t);
    return rc;
}

int
kap_mcp_token_digest(const char *token, char hex[KAP_MCP_TOKEN_HEX + 1])
{
    static const char d[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    hex[0] = '\0';
    if (EVP_Digest(token, strlen(token), md, &n, EVP_sha256(), NULL) != 1
        || n * 2 != KAP_MCP_TOKEN_HEX)
        return KAP_ERROR;
    for (i = 0; i < n; i++) {
        hex[2 * i] = d[md[i] >> 4];
        hex[2 * i + 1] = d[md[i] & 15];
    }
    hex[2 * n] = '\0';
    return KAP_OK;
}

int
kap_mcp_form_escape(struct kap_buf *b, const char *s)
{
    static const char d[] = "0123456789ABCDEF";
    char e[3];

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
            || c == '~') {
            if (kap_buf_append(b, s, 1) != KAP_OK)
                return KAP_ERROR;
            continue;
        }
        e[0] = '%';
        e[1] = d[c >> 4];
        e[2] = d[c & 15];
        if (kap_buf_append(b, e, 3) != KAP_OK)
            return KAP_ERROR;
    }
    return KAP_OK;
}
