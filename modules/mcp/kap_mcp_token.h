/*
 * kap_mcp_token.h -- OAuth tokens of an MCP server's registration
 * (docs/design/mcp-oauth.md): the token endpoint's answer parsed, the
 * registration file read and written atomically, and a refresh under a
 * lock that several processes (kap-mcp, any number of kapds) share.
 *
 * An OAuth registration is the file DIR/NAME.json that kap_mcp_reg_load()
 * reads, with the access token as its one header and an "oauth" member:
 *   { "name": NAME, "upstream": URL,
 *     "headers": { "Authorization": "Bearer ACCESS" },
 *     "oauth": { "issuer": ..., "token_endpoint": ..., "client_id": ...,
 *                "client_secret": ... (optional), "refresh_token": ...,
 *                "resource": ..., "scope": ... (optional),
 *                "expires_at": UNIX-SECONDS (0: unknown) } }
 * The lock is an fcntl() write lock on DIR/NAME.lock (kap mcp remove
 * deletes it with the registration).  A refresh takes the lock, reads the
 * file again, and only asks the token endpoint when the token it holds
 * is still the stale one (or is near expiry): a second process that
 * waited for the lock finds the new token and uses it.  The new file is
 * written to a temporary file (0600, O_EXCL) in DIR and renamed over
 * the old one.
 *
 * Blocking file and network I/O: kap-mcp calls it directly; kapd runs
 * `kap-mcp refresh` as a child process (kap_mcp_refresh.h) so that its
 * event loop never waits on the lock or the token endpoint.
 */
#ifndef KAP_MCP_TOKEN_H
#define KAP_MCP_TOKEN_H

#include <stddef.h>

#include <kapd/kap_core.h>

/* refresh this many seconds before expires_at */
#define KAP_MCP_TOKEN_MARGIN   60
#define KAP_MCP_TOKEN_MAX      (64 * 1024)  /* a token endpoint's answer */
#define KAP_MCP_TOKEN_HEX      64           /* hex digits of a token digest */

/* A token endpoint's answer (RFC 6749 5.1).  Strings are heap, owned by
 * the struct, wiped and freed by kap_mcp_token_clear(). */
struct kap_mcp_token {
    char      *access_token;
    char      *refresh_token;   /* NULL: none issued (keep the old one) */
    char      *scope;           /* NULL: not said */
    long long  expires_in;      /* seconds; -1 when not said */
};

/*
 * Parse a token endpoint's 200 answer (untrusted bytes): a JSON object
 * with a string access_token of visible ASCII (it goes into a header),
 * token_type "Bearer" (any case), optional expires_in (a non-negative
 * integer, or a string of digits, as some servers send), refresh_token
 * and scope strings.  KAP_OK with *t filled (the caller clears it), or
 * KAP_ERROR with err set (never to a token) and *t empty.
 */
int kap_mcp_token_parse(const char *body, size_t len, struct kap_mcp_token *t,
                        struct kap_err *err);
void kap_mcp_token_clear(struct kap_mcp_token *t);

/* An OAuth registration; every string borrowed (from a parsed file, or
 * the caller's), NULL when absent. */
struct kap_mcp_oauth_reg {
    const char *name, *upstream, *access_token;
    const char *issuer, *token_endpoint, *client_id, *client_secret;
    const char *refresh_token, *resource, *scope;
    long long   expires_at;
};

/*
 * Write reg as DIR/NAME.json (reg->name), atomically: a temporary file
 * created 0600 with O_EXCL in dir, written, fsync()ed, renamed over the
 * old file.  dir must exist.  KAP_OK, or KAP_ERROR with err set.
 */
int kap_mcp_oauth_write(const char *dir, const struct kap_mcp_oauth_reg *reg,
                        struct kap_err *err);

/* Write text (len bytes) as DIR/FILE (a name in dir: "NAME.json",
 * "NAME.pins.json") the same atomic way. */
int kap_mcp_reg_write_text(const char *dir, const char *file,
                           const char *text, size_t len, struct kap_err *err);

/*
 * Read DIR/NAME.json under the secret file rule.  *tree is the parsed
 * file (the caller frees it with kap_mcp_oauth_free()); reg's strings
 * point into it.  A file without an "oauth" member is KAP_ERROR ("not
 * an OAuth registration").
 */
struct kap_json;
int kap_mcp_oauth_read(const char *dir, const char *name,
                       struct kap_json **tree, struct kap_mcp_oauth_reg *reg,
                       struct kap_err *err);
void kap_mcp_oauth_free(struct kap_json *tree);

/* The SHA-256 of token as lowercase hex (how a stale token is named on a
 * command line without the token itself). */
int kap_mcp_token_digest(const char *token, char hex[KAP_MCP_TOKEN_HEX + 1]);

/* Take the fcntl() write lock of DIR/NAME.lock (waits for it): an open
 * descriptor, closed by kap_mcp_token_unlock(); -1 with err set. */
int kap_mcp_token_lock(const char *dir, const char *name, struct kap_err *err);
void kap_mcp_token_unlock(int fd);

/*
 * POST form (application/x-www-form-urlencoded) to url; the answer's
 * body in *body (empty on entry, the caller's), its status in *status.
 * KAP_OK once an answer came, KAP_ERROR (err set) when none did.
 */
typedef int (*kap_mcp_post_fn)(const char *url, const char *form,
                               struct kap_buf *body, long *status,
                               void *data, struct kap_err *err);

enum kap_mcp_refresh_why {
    KAP_MCP_REFRESH_EXPIRY = 0,  /* only when within the margin of expiry */
    KAP_MCP_REFRESH_STALE,       /* the token with digest stale was refused */
    KAP_MCP_REFRESH_FORCE        /* always */
};

/*
 * Refresh NAME's access token when it needs it: under the lock, read the
 * file; with why EXPIRY, refresh when expires_at is known and within
 * KAP_MCP_TOKEN_MARGIN of now; with STALE, when the file's token still
 * has digest stale (another process has not replaced it) or is near
 * expiry; with FORCE, always.  A refresh posts grant_type=refresh_token
 * (with client_id, client_secret when registered, and resource) through
 * post and writes the new token, the new refresh token when one was
 * issued and the new expiry.  *did is 1 when this call refreshed.
 * KAP_OK, or KAP_ERROR with err set (the file is left as it was).
 */
int kap_mcp_token_refresh(const char *dir, const char *name,
                          enum kap_mcp_refresh_why why, const char *stale,
                          long long now, kap_mcp_post_fn post, void *data,
                          int *did, struct kap_err *err);

/* Append s to b form-urlencoded (RFC 3986 unreserved bytes kept). */
int kap_mcp_form_escape(struct kap_buf *b, const char *s);

#endif /* KAP_MCP_TOKEN_H */
