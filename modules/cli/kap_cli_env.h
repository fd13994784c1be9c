/*
 * kap_cli_env.h -- the environment and the per-call home of a tool run
 * by the cli module (cli-policy.md §2.4 isolation column, §2.5).
 *
 * A tool never sees kapd's environment nor the agent's.  Its whole
 * environment is built here: a fixed PATH; HOME and every XDG and
 * per-tool config directory inside a fresh per-call directory (so no
 * alias, extension, plugin or stored credential of an earlier call or
 * of the user is found); editors and browsers set to /bin/false, pagers
 * to cat, prompts and update checks off; git hardened through
 * GIT_CONFIG_COUNT (core.fsmonitor, core.hooksPath, core.sshCommand,
 * protocol.ext.allow, credential.helper), which beats a repository's
 * own config; the HTTP(S) proxy variables pointed at kapd's own egress
 * listener when one is given; then the tool's configured variables
 * (credentials), which may not redefine an isolation variable
 * (kap_cli_env_reserved() is for the config check).
 */
#ifndef KAP_CLI_ENV_H
#define KAP_CLI_ENV_H

#include <stddef.h>

#include <kapd/kap_core.h>

/* The PATH every tool runs with. */
#define KAP_CLI_PATH "/usr/local/bin:/usr/bin:/bin"

/*
 * Non-zero when NAME (a variable name, no '=') is set by the isolation
 * and so may not come from a tool's configured env.
 */
int kap_cli_env_reserved(const char *name);

/*
 * Build a child's environment in pool: isolation with its directories
 * under home (absolute, borrowed), the proxy variables when proxy (a URL
 * such as "http://127.0.0.1:3128", borrowed) is not NULL, then the
 * tool's "NAME=value" strings (tool_env, n_tool; borrowed; copied).
 * Returns a NULL-terminated array allocated in pool, or NULL with e set
 * (no memory, a tool variable without '=' or one that is reserved).
 */
char **kap_cli_env_build(struct kap_pool *pool, const char *home,
                         const char *proxy, const char *const *tool_env,
                         size_t n_tool, struct kap_err *e);

/*
 * Make a fresh per-call home (mode 0700) under parent (an existing
 * directory only kapd can write, borrowed) with the config directories
 * the environment names.  Returns its path allocated in pool, or NULL
 * with e set.
 */
char *kap_cli_home_make(struct kap_pool *pool, const char *parent,
                        struct kap_err *e);

/*
 * Remove a per-call home and everything a tool left in it (symbolic
 * links are removed, never followed).  KAP_OK, or KAP_ERROR when
 * something could not be removed.
 */
int kap_cli_home_remove(const char *home);

#endif /* KAP_CLI_ENV_H */
