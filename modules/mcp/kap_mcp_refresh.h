/*
 * kap_mcp_refresh.h -- kapd's side of OAuth token refresh
 * (docs/design/mcp-oauth.md): the one call the mcp module makes when an
 * upstream answers 401 or a registration's expires_at is near.
 *
 * It runs `kap-mcp refresh NAME [--stale SHA256]` as a child process with
 * KAP_AUTH_DIR set to the registrations' directory, and calls done from
 * the event loop when the child exits.  The child takes the
 * registration's lock, asks the token endpoint only when the token is
 * still the stale one (or near expiry), and renames the new file into
 * place (kap_mcp_token.h); kapd's loop never waits on the lock or the
 * token endpoint.  On done(ok = 1) the module reloads the registration
 * (kap_mcp_reg_load()) and retries the request once; done(ok = 0) means
 * the refresh failed (the helper wrote why on kapd's stderr): answer the
 * agent with the upstream's 401.  The stale token is passed as its
 * SHA-256, never on a command line itself.
 */
#ifndef KAP_MCP_REFRESH_H
#define KAP_MCP_REFRESH_H

#include <ev.h>

#include <kapd/kap_core.h>

struct kap_mcp_refresh;

/* ok: 1 when the registration now holds a usable token (refreshed by
   this child or by another process), 0 when the refresh failed */
typedef void (*kap_mcp_refresh_done)(int ok, void *data);

/*
 * Start a refresh of registration name in dir (both borrowed, copied).
 * helper: the kap-mcp program (NULL: $KAP_MCP, else the installed one).
 * stale: the access token the upstream refused (borrowed; NULL: refresh
 * only when near expiry).  Returns a handle owned by the loop until done
 * has been called or kap_mcp_refresh_cancel(); NULL with err set when the
 * child cannot be started.
 */
struct kap_mcp_refresh *
kap_mcp_refresh_start(struct ev_loop *loop, const char *helper,
                      const char *dir, const char *name, const char *stale,
                      kap_mcp_refresh_done done, void *data,
                      struct kap_err *err);

/* done will not be called; the child finishes (its write is atomic) and
   is reaped. */
void kap_mcp_refresh_cancel(struct kap_mcp_refresh *r);

/* The child's pid (for tests and logs). */
int kap_mcp_refresh_pid(const struct kap_mcp_refresh *r);

#endif /* KAP_MCP_REFRESH_H */
