/*
 * kap_mcp_cli.h -- the parts of the kap-mcp helper (kap-mcp.c): blocking
 * HTTP with libcurl, the OAuth 2.1 flow, the loopback callback, the
 * initialize + tools/list check.  A host program run by `kap mcp`, one
 * command at a time: blocking I/O is fine here.
 */
#ifndef KAP_MCP_CLI_H
#define KAP_MCP_CLI_H

#include <stddef.h>

#include <kapd/kap_core.h>

#define MCPC_HTTP_TIMEOUT   30      /* seconds for one HTTP exchange */
#define MCPC_HTTP_MAX       (4 * 1024 * 1024)

/* One HTTP answer; strings heap, freed by mcpc_http_free(). */
struct mcpc_http {
    long           status;
    struct kap_buf body;
    char          *www_auth;    /* WWW-Authenticate (the first) */
    char          *session;     /* Mcp-Session-Id */
    char          *ctype;       /* Content-Type */
};

/*
 * method url (redirects never followed), with hdrs ("K: V", NULL-ended,
 * may be NULL) and body (NULL: none).  KAP_OK once an answer came (any
 * status), KAP_ERROR with err set when none did.
 */
int mcpc_http(const char *method, const char *url, const char *const *hdrs,
              const char *body, struct mcpc_http *r, struct kap_err *err);
void mcpc_http_free(struct mcpc_http *r);
/* kap_mcp_post_fn for kap_mcp_token_refresh() */
int mcpc_http_post_form(const char *url, const char *form,
                        struct kap_buf *body, long *status, void *data,
                        struct kap_err *err);

/* say(): a line on standard output; warn(): on standard error */
void mcpc_say(const char *fmt, ...) KAP_PRINTF(1, 2);
void mcpc_warn(const char *fmt, ...) KAP_PRINTF(1, 2);

/* What the OAuth flow leaves for the registration (heap strings). */
struct mcpc_oauth {
    char     *issuer, *token_endpoint, *client_id, *client_secret;
    char     *resource, *scope;
    char     *access_token, *refresh_token;
    long long expires_at;
};
void mcpc_oauth_clear(struct mcpc_oauth *o);

/*
 * The whole flow for the MCP server at url, which answered 401 with
 * challenge www_auth (may be NULL): discovery, registration, the
 * browser, the callback, the code exchanged for tokens.
 */
int mcpc_oauth_run(const char *url, const char *www_auth,
                   struct mcpc_oauth *o, struct kap_err *err);

/*
 * A loopback listener on 127.0.0.1, an ephemeral port: mcpc_cb_open()
 * gives its port; mcpc_cb_wait() serves GET /callback until one carries
 * the right state (KAP_OK and the code in code[codelen]) or an error,
 * a wrong state (answered 400, KAP_ERROR) or the timeout.
 */
struct mcpc_cb {
    int fd;
    int port;
};
int mcpc_cb_open(struct mcpc_cb *cb, struct kap_err *err);
int mcpc_cb_wait(struct mcpc_cb *cb, const char *state, int timeout,
                 char *code, size_t codelen, struct kap_err *err);
void mcpc_cb_close(struct mcpc_cb *cb);

/*
 * initialize + notifications/initialized + tools/list against url with
 * the headers hdrs ("K: V"); prints the tools as a table.  *status is the
 * initialize's HTTP status (401: needs OAuth) when it was answered,
 * *www_auth its WWW-Authenticate (heap, caller frees) on a 401.  tools
 * (may be NULL) gets every tool of every page as one JSON array text.
 */
int mcpc_verify(const char *url, const char *const *hdrs, int print,
                long *status, char **www_auth, struct kap_buf *tools,
                struct kap_err *err);

/* s on one line for a terminal: control bytes as ' ', at most max bytes,
   not cutting a UTF-8 sequence, "..." when cut */
void mcpc_safe_line(const char *s, size_t max, char *out, size_t outlen);

/* `kap-mcp missing KAP.CONF` (kap_mcp_missing.c): the servers conf names
   without a url and without a registration in dir, one a line */
int mcpc_missing(const char *dir, const char *conf);

/* `kap-mcp agent-config [--base URL] OUT KAPD.CONF...` (kap_mcp_agent.c):
   the agent's .mcp.json entries for the servers the configurations name,
   at BASE/NAME (NULL: http://127.0.0.1:3129).  Borrows every argument. */
int mcpc_agent_config(const char *out, const char *base, char **confs,
                      int nconfs);

/* `kap-mcp pin NAME [--accept]` (kap_mcp_pins.c) */
int mcpc_pin(const char *dir, const char *name, int accept,
             const char *const *hdrs, const char *url);

/* random bytes as base64url (n bytes, out of size 2n) */
int mcpc_random_b64url(size_t n, char *out, size_t outlen);
/* base64url of SHA-256(s) (out of at least 44) */
int mcpc_s256(const char *s, char *out, size_t outlen);

#endif /* KAP_MCP_CLI_H */
