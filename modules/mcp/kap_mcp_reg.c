/*
 * kap_mcp_reg.c -- read an MCP server's registration (kap_mcp_reg.h):
 * the file under the secret rule, strict JSON, ${VAR} expansion, every
 * value a kap_secret, the bytes read wiped.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_reg.h"

#define REG_LABEL_MAX 160

int
kap_mcp_reg_header_ok(const char *name)
{
    static const char *const kapds[] = {
        "host", "content-length", "transfer-encoding", "connection",
        "keep-alive", "upgrade", "te", "trailer", "content-type", "accept",
        "mcp-session-id", "mcp-protocol-version", "last-event-id", NULL
    };
    size_t i;

    if (name == NULL || name[0] == '\0')
        return 0;
    for (i = 0; name[i] != '\0'; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(c >= 0x21 && c < 0x7f
              && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL))
            return 0;           /* not an RFC 9110 token */
    }
    if (strncasecmp(name, "proxy-", 6) == 0)
        return 0;
    for (i = 0; kapds[i] != NULL; i++)
        if (strcasecmp(name, kapds[i]) == 0)
            return 0;
    return 1;
}

/* a variable name: [A-Za-z_][A-Za-z0-9_]* */
int
kap_mcp_reg_var_ok(const char *p, size_t n)
{
    size_t i;

    if (n == 0 || (p[0] >= '0' && p[0] <= '9'))
        return 0;
    for (i = 0; i < n; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return 0;
    return 1;
}

/*
 * Walk value's ${VAR} references: with b NULL, check them (and make each
 * variable's value a secret) and add up the expanded length in *len;
 * with b, append the expansion.  KAP_OK or KAP_ERROR with err set.
 */
static int
reg_expand(struct kap_pool *pool, const char *label, const char *value,
           kap_mcp_env_fn env, void *env_data, struct kap_buf *b,
           size_t *len, struct kap_err *err)
{
    const char *p = value, *ref, *end, *v;
    char var[128], vl[REG_LABEL_MAX];
    size_t n;

    while ((ref = strstr(p, "${")) != NULL) {
        end = strchr(ref + 2, '}');
        n = end != NULL ? (size_t)(end - ref - 2) : 0;
        if (end == NULL || !kap_mcp_reg_var_ok(ref + 2, n)
            || n >= sizeof(var)) {
            kap_err_set(err, "%s: \"${\" must be followed by a variable "
                        "name and \"}\"", label);
            return KAP_ERROR;
        }
        memcpy(var, ref + 2, n);
        var[n] = '\0';
        v = env != NULL ? env(var, env_data) : NULL;
        if (v == NULL || v[0] == '\0') {
            kap_err_set(err, "%s: environment variable %s is not set (set "
                        "it for kapd, or in the project's env file)", label,
                        var);
            return KAP_ERROR;
        }
        if (b == NULL) {
            /* the variable alone is redacted too (an upstream may echo
               the token without its "Bearer ") */
            snprintf(vl, sizeof(vl), "environment variable %s", var);
            if (kap_secret_new(pool, vl, v, strlen(v), err) == NULL)
                return KAP_ERROR;
            *len += (size_t)(ref - p) + strlen(v);
        } else if (kap_buf_append(b, p, (size_t)(ref - p)) != KAP_OK
                   || kap_buf_append(b, v, strlen(v)) != KAP_OK) {
            return KAP_ERROR;
        }
        p = end + 1;
    }
    if (b == NULL)
        *len += strlen(p);
    else if (kap_buf_append(b, p, strlen(p)) != KAP_OK)
        return KAP_ERROR;
    return KAP_OK;
}

int
kap_mcp_reg_value(struct kap_pool *pool, const char *label,
                  const char *value, kap_mcp_env_fn env, void *env_data,
                  const struct kap_secret **out, struct kap_err *err)
{
    struct kap_buf b = { 0 };
    size_t len = 0;
    int rc = KAP_ERROR;

    *out = NULL;
    if (reg_expand(pool, label, value, env, env_data, NULL, &len, err)
        != KAP_OK)
        return KAP_ERROR;
    if (len == 0) {
        kap_err_set(err, "%s is empty", label);
        return KAP_ERROR;
    }
    /* one allocation for the whole expansion, made before any byte of it
       is written: no copy is left behind by a realloc */
    if (kap_buf_reserve(&b, len) != KAP_OK
        || reg_expand(pool, label, value, env, env_data, &b, &len, err)
           != KAP_OK) {
        kap_err_set(err, "%s: out of memory", label);
        goto out;
    }
    if ((*out = kap_secret_new(pool, label, b.data, b.len, err)) != NULL)
        rc = KAP_OK;
out:
    if (b.data != NULL)
        kap_secret_wipe(b.data, b.cap);
    kap_buf_free(&b);
    return rc;
}

/* every string value of the tree's headers object wiped (the parse left
   copies of them) */
static void
reg_wipe_values(const struct kap_json *headers)
{
    const struct kap_json *h;

    for (h = kap_json_child(headers); h != NULL; h = kap_json_next(h)) {
        const char *v = kap_json_string(h);
        if (v != NULL)
            kap_secret_wipe((char *)v, strlen(v));
    }
}

static int
reg_headers(struct kap_pool *pool, const char *path, const char *name,
            const struct kap_json *hs, kap_mcp_env_fn env, void *env_data,
            struct kap_mcp_reg *reg, struct kap_err *err)
{
    const struct kap_json *h;
    size_t n = kap_json_size(hs), i = 0;

    if (hs == NULL)
        return KAP_OK;
    if (kap_json_type(hs) != KAP_JSON_OBJECT) {
        kap_err_set(err, "%s: \"headers\" is not an object", path);
        return KAP_ERROR;
    }
    if (n > KAP_MCP_REG_MAX_HEADERS) {
        kap_err_set(err, "%s: more than %d headers", path,
                    KAP_MCP_REG_MAX_HEADERS);
        return KAP_ERROR;
    }
    reg->headers = kap_palloc(pool, (n ? n : 1) * sizeof(*reg->headers));
    if (reg->headers == NULL) {
        kap_err_set(err, "%s: out of memory", path);
        return KAP_ERROR;
    }
    for (h = kap_json_child(hs); h != NULL; h = kap_json_next(h), i++) {
        const char *k = kap_json_key(h), *v = kap_json_string(h);
        char label[REG_LABEL_MAX];

        if (!kap_mcp_reg_header_ok(k)) {
            kap_err_set(err, "%s: header \"%.64s\" cannot be injected (not "
                        "a field name, or one kapd sets itself)", path, k);
            return KAP_ERROR;
        }
        if (v == NULL) {
            kap_err_set(err, "%s: header %s is not a string", path, k);
            return KAP_ERROR;
        }
        snprintf(label, sizeof(label), "mcp server %s header %s", name, k);
        reg->headers[i].name = kap_pstrdup(pool, k);
        if (reg->headers[i].name == NULL
            || kap_mcp_reg_value(pool, label, v, env, env_data,
                                 &reg->headers[i].value, err) != KAP_OK) {
            kap_err_set(err, "%s: out of memory", path);
            return KAP_ERROR;
        }
    }
    reg->nheaders = i;
    return KAP_OK;
}

int
kap_mcp_reg_load(struct kap_pool *pool, const char *dir, const char *name,
                 kap_mcp_env_fn env, void *env_data,
                 struct kap_mcp_reg *reg, struct kap_err *err)
{
    char path[PATH_MAX];
    struct kap_buf b = { 0 };
    struct kap_json *j = NULL;
    struct kap_err je = { 0 };
    const char *up, *nm;
    int rc = KAP_ERROR;

    memset(reg, 0, sizeof(*reg));
    if (name == NULL || name[0] == '\0' || strlen(name) > KAP_MCP_REG_MAX_NAME
        || strchr(name, '/') != NULL || name[0] == '.') {
        kap_err_set(err, "mcp server name \"%.64s\" is not one kap mcp add "
                    "registers", name ? name : "");
        return KAP_ERROR;
    }
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.json", dir, name)
        >= sizeof(path)) {
        kap_err_set(err, "mcp server %s: path too long", name);
        return KAP_ERROR;
    }
    if (access(path, F_OK) != 0 && errno == ENOENT) {
        kap_err_set(err, "mcp server %s is not registered: no %s (register "
                    "it on the host: kap mcp add %s URL)", name, path, name);
        return KAP_ERROR;
    }
    if (kap_secret_file_read(path, &b, err) != KAP_OK)
        return KAP_ERROR;
    j = kap_json_parse(b.data, b.len, NULL, &je);
    if (j == NULL) {
        kap_err_set(err, "%s is not valid JSON: %s (register it again: "
                    "kap mcp add %s URL ... --reauth)", path,
                    je.set ? je.msg : "out of memory", name);
        goto out;
    }
    if (kap_json_type(j) != KAP_JSON_OBJECT) {
        kap_err_set(err, "%s: not a JSON object", path);
        goto out;
    }
    nm = kap_json_get_string(j, "name");
    if (kap_json_get(j, "name") != NULL
        && (nm == NULL || strcmp(nm, name) != 0)) {
        kap_err_set(err, "%s: \"name\" is not %s", path, name);
        goto out;
    }
    up = kap_json_get_string(j, "upstream");
    if (up == NULL || !(strncmp(up, "http://", 7) == 0
                        || strncmp(up, "https://", 8) == 0)) {
        kap_err_set(err, "%s: \"upstream\" must be an http:// or https:// "
                    "URL", path);
        goto out;
    }
    reg->name = kap_pstrdup(pool, name);
    reg->upstream = kap_pstrdup(pool, up);
    if (reg->name == NULL || reg->upstream == NULL) {
        kap_err_set(err, "%s: out of memory", path);
        goto out;
    }
    if (kap_json_get(j, "oauth") != NULL) {
        int64_t exp = 0;
        const struct kap_json *e = kap_json_get(kap_json_get(j, "oauth"),
                                                "expires_at");
        if (kap_json_type(kap_json_get(j, "oauth")) != KAP_JSON_OBJECT
            || (e != NULL && (kap_json_int(e, &exp) != KAP_OK || exp < 0))) {
            kap_err_set(err, "%s: \"oauth\" is not an object with a "
                        "number expires_at", path);
            goto out;
        }
        reg->oauth = 1;
        reg->expires_at = (long long)exp;
    }
    rc = reg_headers(pool, path, name, kap_json_get(j, "headers"), env,
                     env_data, reg, err);
out:
    if (j != NULL) {
        reg_wipe_values(kap_json_get(j, "headers"));
        kap_json_free(j);
    }
    kap_secret_wipe(b.data, b.cap);
    kap_buf_free(&b);
    if (rc != KAP_OK)
        memset(reg, 0, sizeof(*reg));
    return rc;
}
