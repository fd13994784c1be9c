/*
 * kap_mcp_oauth.h -- parsers of what an MCP server and its OAuth 2.1
 * authorization server send to `kap mcp add` (docs/design/mcp-oauth.md):
 * every one takes untrusted bytes, checks them strictly and copies out
 * only what the flow needs (fuzz/fuzz_mcp_oauth.c).  Pure functions.
 *
 * Strings returned in the structs are heap, owned by the struct and
 * freed by its _clear() function.
 */
#ifndef KAP_MCP_OAUTH_H
#define KAP_MCP_OAUTH_H

#include <stddef.h>
#include <stdint.h>

#include <kapd/kap_core.h>

struct kap_json;

#define KAP_MCP_OAUTH_MAX   (256 * 1024)    /* one metadata document */
#define KAP_MCP_URL_MAX     8192

/*
 * The value of auth-param `param` (case-insensitive name) in a
 * WWW-Authenticate field value of the Bearer scheme (RFC 9110 11.6.1:
 * token or quoted-string, backslash escapes), e.g. resource_metadata
 * (RFC 9728 5.1).  KAP_OK with out NUL-terminated, KAP_ERROR when the
 * field has no Bearer challenge, no such parameter, a syntax error, or
 * the value does not fit outlen.
 */
int kap_mcp_www_auth_param(const char *hdr, const char *param, char *out,
                           size_t outlen);

/*
 * The value of key in an application/x-www-form-urlencoded query (no
 * leading '?'), percent- and '+'-decoded into out.  A key present twice,
 * a bad escape, a decoded NUL or control byte, or a value longer than
 * outlen - 1 is KAP_ERROR; an absent key is KAP_DECLINED.
 */
int kap_mcp_query_get(const char *query, const char *key, char *out,
                      size_t outlen);

/* RFC 9728 protected resource metadata. */
struct kap_mcp_prm {
    char *resource;          /* the resource identifier */
    char *auth_server;       /* the first authorization_servers entry */
    char *scope;             /* scopes_supported joined by ' '; NULL */
};
/* KAP_OK, or KAP_ERROR with err set (*m empty). */
int kap_mcp_prm_parse(const char *body, size_t len, struct kap_mcp_prm *m,
                      struct kap_err *err);
void kap_mcp_prm_clear(struct kap_mcp_prm *m);

/* RFC 8414 authorization server metadata (or OpenID configuration). */
struct kap_mcp_asm {
    char *issuer;
    char *authorization_endpoint;
    char *token_endpoint;
    char *registration_endpoint;     /* NULL: no dynamic registration */
};
/*
 * issuer: the one the metadata was fetched for; the document's issuer
 * must be exactly it (RFC 8414 3.3).  Endpoints must be https:// URLs,
 * or http:// on a loopback host; code_challenge_methods_supported must
 * list S256 (the MCP authorization spec's rule: no PKCE, no flow).
 */
int kap_mcp_asm_parse(const char *body, size_t len, const char *issuer,
                      struct kap_mcp_asm *m, struct kap_err *err);
void kap_mcp_asm_clear(struct kap_mcp_asm *m);

/* RFC 7591 client registration answer: client_id, client_secret. */
int kap_mcp_dcr_parse(const char *body, size_t len, char **client_id,
                      char **client_secret, struct kap_err *err);

/* 1 when url is https://, or http:// to 127.0.0.0/8, [::1] or localhost */
int kap_mcp_url_safe(const char *url);

/*
 * The JSON-RPC message with id `id` in an MCP reply body: ctype
 * "application/json" (one message or a batch) or "text/event-stream"
 * (the data: lines of each event).  *out is a tree the caller frees
 * (kap_json_free).  KAP_OK, or KAP_ERROR with err set.
 */
int kap_mcp_rpc_result(const char *ctype, const char *body, size_t len,
                       int64_t id, struct kap_json **out, struct kap_err *err);

#endif /* KAP_MCP_OAUTH_H */
