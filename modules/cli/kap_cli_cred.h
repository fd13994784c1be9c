/*
 * kap_cli_cred.h -- the credential proxy of a proxy-mode gh tool
 * (docs/design/cli-credential-proxy.md): the child never holds the
 * token.
 *
 * kapd listens on a unix socket of its own for the tool (0600; its
 * path is in tool->cred_socket).  Each call gets a fresh random dummy
 * token: every token variable of the tool's env (GH_TOKEN,
 * GITHUB_TOKEN, GH_ENTERPRISE_TOKEN, GITHUB_ENTERPRISE_TOKEN) is set to
 * it in the child, and GH_CONFIG_DIR/config.yml in the per-call home
 * names the socket as gh's "http_unix_socket", so gh sends every API
 * request there as plain HTTP/1.1.  A request on the socket is
 * forwarded only when its Authorization carries a dummy of a call of
 * that tool that is still running, its Host is one the tool may reach
 * (api.github.com, uploads.github.com, github.com, or the GH_HOST of
 * its env) and it is well formed (the core's HTTP server parses it);
 * kapd replaces Authorization with the real token for that host and
 * forwards it over HTTPS with kap_curl_stream(), streaming the answer
 * back as it comes.  Each forwarded request is audited (method, host,
 * path, status), never with a token.
 */
#ifndef KAP_CLI_CRED_H
#define KAP_CLI_CRED_H

#include <stddef.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>

#include "kap_cli.h"

/* "kapdummy_" and 32 hex digits. */
#define KAP_CLI_DUMMY_LEN 41

/* Non-zero when name (no '=') is one of gh's token variables. */
int kap_cli_cred_token_var(const char *name);

/*
 * Settle a tool's credential proxy after its env was parsed
 * (kap_cli_conf.c): on (explicitly, or by default for a proxy-mode tool
 * whose profile is gh's and whose env holds a token variable), declare
 * the socket listener and note GH_HOST and SSL_CERT_FILE from the env.
 * on: the "credential_proxy" setting (-1 when absent); sock: the
 * "credential_socket" setting or NULL.  KAP_OK or KAP_ERROR with err.
 */
int kap_cli_cred_conf(struct kap_gen *gen, struct kap_cli_tool *t, int on,
                      const char *sock, const config_setting_t *at,
                      struct kap_err *err);

/* Make the tools' sockets 0600 once bound (the module's init). */
int kap_cli_cred_init(struct kap_gen *gen, void *conf);

/*
 * One call's dummy: made random, registered as live for tool t until
 * pool (the call's) is destroyed or kap_cli_cred_forget() is called,
 * written to out (KAP_CLI_DUMMY_LEN + 1 bytes), and the socket named in
 * home's gh config.yml.  KAP_OK, or KAP_ERROR with e set.
 */
struct kap_cli_dummy;
struct kap_cli_dummy *kap_cli_cred_begin(struct kap_pool *pool,
                                         const struct kap_cli_tool *t,
                                         const char *home, char *out,
                                         struct kap_err *e);

/* The call ended: its dummy is no longer accepted.  NULL is ok. */
void kap_cli_cred_forget(struct kap_cli_dummy *d);

/*
 * Non-zero when the Authorization value auth ("token X" or "Bearer X")
 * carries a live dummy of the tool named tool.
 */
int kap_cli_cred_live(const char *tool, const char *auth);

/* A request on a tool's credential socket: checked, then forwarded.
   Ends the exchange, now or later. */
void kap_cli_cred_handle(struct kap_http_ex *ex, struct kap_cli_tool *t);

/* The tool whose credential socket is the listener c came in on, or
   NULL (borrowed from c->conf). */
struct kap_cli_tool *kap_cli_cred_tool(const struct kap_conn *c);

#endif /* KAP_CLI_CRED_H */
