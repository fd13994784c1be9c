/*
 * kap_mcp_reg.h -- an MCP server's registration as `kap mcp add` writes
 * it (docs/design/mcp-registrations.md), read for the mcp module: the
 * upstream URL and the headers kapd injects upstream, every value a
 * kap_secret of its own.
 *
 * The file DIR/NAME.json is read under the secret file rule
 * (kap_secret_file_read(): no symbolic link, 0700 directory, 0600 file)
 * and parsed strictly (kap_json): an object with "upstream" (an http://
 * or https:// URL), optional "name" (NAME itself) and optional "headers"
 * (an object of strings); of the "oauth" member (kap_mcp_token.h) only
 * its presence and expires_at are read here, the rest is kap-mcp's.  A header value is literal or holds ${VAR} references,
 * filled in by the caller's lookup (kapd's environment, the project's env
 * file); an unset variable, a "${" without a valid name and "}", a header
 * kapd sets itself (Host, framing and hop-by-hop fields, Content-Type,
 * Accept, Mcp-Session-Id, MCP-Protocol-Version, Last-Event-ID, Proxy-*)
 * and more than KAP_MCP_REG_MAX_HEADERS headers are errors.  Each
 * variable's value and each whole header value become secrets
 * (redacted from every log line); the bytes read are wiped.
 *
 * Configuring time only (blocking file I/O).
 */
#ifndef KAP_MCP_REG_H
#define KAP_MCP_REG_H

#include <stddef.h>

#include <kapd/kap_core.h>
#include <kapd/kap_secret.h>

#define KAP_MCP_REG_MAX_HEADERS 32
#define KAP_MCP_REG_MAX_NAME    64      /* a server name, as kap mcp add */

/* One header to send upstream: kap_secret_header(value, "NAME: {}"). */
struct kap_mcp_reg_header {
    const char              *name;      /* field name, in pool */
    const struct kap_secret *value;     /* the whole value, expanded */
};

struct kap_mcp_reg {
    const char                *name;      /* in pool */
    const char                *upstream;  /* in pool */
    struct kap_mcp_reg_header *headers;   /* in pool */
    size_t                     nheaders;
    int                        oauth;     /* an "oauth" member (kap-mcp's
                                             OAuth flow wrote the file) */
    long long                  expires_at; /* oauth.expires_at, 0: unknown */
};

/* The value of environment variable var, or NULL when it is unset. */
typedef const char *(*kap_mcp_env_fn)(const char *var, void *data);

/*
 * Read DIR/NAME.json into reg; everything (strings, secrets) is owned by
 * pool.  KAP_OK, or KAP_ERROR with err set to a message that names the
 * file and the fix, never a value.
 */
int kap_mcp_reg_load(struct kap_pool *pool, const char *dir, const char *name,
                     kap_mcp_env_fn env, void *env_data,
                     struct kap_mcp_reg *reg, struct kap_err *err);

/*
 * One header value with ${VAR} references (from a registration or from
 * kap.conf's headers) expanded into a secret owned by pool; label names
 * it in messages ("mcp server github header Authorization").  KAP_OK or
 * KAP_ERROR with err set.
 */
int kap_mcp_reg_value(struct kap_pool *pool, const char *label,
                      const char *value, kap_mcp_env_fn env, void *env_data,
                      const struct kap_secret **out, struct kap_err *err);

/* 1 when the n bytes at p are a variable name: [A-Za-z_][A-Za-z0-9_]* */
int kap_mcp_reg_var_ok(const char *p, size_t n);

/* 1 when name is a header kapd may inject (a token, not one kapd sets). */
int kap_mcp_reg_header_ok(const char *name);

#endif /* KAP_MCP_REG_H */
