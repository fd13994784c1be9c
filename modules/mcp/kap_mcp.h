/*
 * kap_mcp.h -- the deciding half of the mcp module (module-private).
 *
 * Pure functions: no sockets, no files, no clock.  The module's listener
 * and upstream code call them; t/unit/test_mcp_*.c and fuzz/fuzz_mcp_*.c
 * drive them directly.  docs/design/mcp-filter.md says why they decide
 * as they do.
 *
 * API at a glance
 *
 *   Tool patterns (kap_mcp_tools.c)
 *     kap_mcp_tools_create(pool)            empty policy, owned by pool
 *     kap_mcp_tools_conf(t, allow, deny, server, err)
 *                                           the allow/deny settings of one
 *                                           server (empty allow: an error
 *                                           suggesting ["*"])
 *     kap_mcp_tools_add(t, deny, pattern, file, line, err)
 *     kap_mcp_tools_match(t, name, &verdict)  deny wins, case-sensitive
 *     kap_mcp_verdict_describe(&verdict, buf) "deny rule \"delete_*\"", ...
 */
#ifndef KAP_MCP_H
#define KAP_MCP_H

#include <stddef.h>

#include <kapd/kap_core.h>

/* ---- tool patterns ------------------------------------------------------
 *
 *   get_issue   exactly that name
 *   get_*       every name that starts with "get_" (and "get_" itself)
 *   *           every name
 *
 * Names and patterns compare byte for byte (case-sensitive).  A '*'
 * anywhere but at the end, an empty pattern, control characters, spaces
 * and invalid UTF-8 are configuration errors.  Deny wins over allow; a
 * name no allow pattern covers is denied.
 */
#define KAP_MCP_PATTERN_MAX 256     /* bytes of one pattern */

/* One pattern, as configured.  Owned by the policy's pool. */
struct kap_mcp_rule {
    const char          *text;      /* as written, NUL-terminated */
    size_t               plen;      /* bytes compared (without the '*') */
    unsigned             deny:1;    /* from the deny list */
    unsigned             prefix:1;  /* ends in '*' */
    const char          *file;      /* config file, or "" */
    int                  line;      /* config line, or 0 */
    struct kap_mcp_rule *next;      /* in configuration order */
};

/* The allow and deny patterns of one server.  Read-only once built. */
struct kap_mcp_tools {
    struct kap_pool     *pool;      /* borrowed */
    struct kap_mcp_rule *allow, **allow_tail;
    struct kap_mcp_rule *deny, **deny_tail;
    size_t               nallow, ndeny;
};

/* Why a name was allowed or denied. */
enum kap_mcp_why {
    KAP_MCP_ALLOWED = 0,   /* rule: the first allow pattern covering it */
    KAP_MCP_DENIED,        /* rule: the first deny pattern covering it */
    KAP_MCP_NOT_ALLOWED    /* no allow pattern covers it (rule NULL) */
};

struct kap_mcp_verdict {
    int                         allow;   /* 1 allowed, 0 denied */
    enum kap_mcp_why            why;
    const struct kap_mcp_rule  *rule;    /* borrowed from the policy */
};

/* An empty policy (denies every name) owned by pool; NULL on OOM. */
struct kap_mcp_tools *kap_mcp_tools_create(struct kap_pool *pool);

/*
 * Add one pattern (copied into the pool).  file/line name its place in
 * the configuration (NULL/0: none).  KAP_OK, or KAP_ERROR with err set
 * (an invalid pattern, out of memory).
 */
int kap_mcp_tools_add(struct kap_mcp_tools *t, int deny, const char *pattern,
                      const char *file, int line, struct kap_err *err);

/*
 * The `allow` and `deny` settings of server `server` (either may be
 * NULL: absent).  Each must be an array or list of strings.  A missing or
 * empty allow is an error that suggests allow = ["*"].  KAP_OK or
 * KAP_ERROR with err set at the offending setting.
 */
int kap_mcp_tools_conf(struct kap_mcp_tools *t, const config_setting_t *allow,
                       const config_setting_t *deny, const char *server,
                       struct kap_err *err);

/* Decide for tool `name` (NUL-terminated; NULL is denied as not allowed). */
void kap_mcp_tools_match(const struct kap_mcp_tools *t, const char *name,
                         struct kap_mcp_verdict *v);

/*
 * What decided, for messages and the audit log, into buf (always
 * NUL-terminated, cut to n bytes): `allow rule "get_*"`,
 * `deny rule "delete_*"`, `no allow rule matches`.  Returns buf.
 */
const char *kap_mcp_verdict_describe(const struct kap_mcp_verdict *v,
                                     char *buf, size_t n);

#endif /* KAP_MCP_H */
