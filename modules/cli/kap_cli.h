/*
 * kap_cli.h -- the cli module's configuration and the pieces its files
 * share (modules/cli/).
 *
 *   cli: {
 *       listen = "127.0.0.1:3130";          # or a list; "unix:PATH" too
 *       tools = (
 *           { name = "gh"; mode = "direct";
 *             path = "/usr/bin/gh";          # default: found on PATH
 *             env = [ "GH_TOKEN=file:/etc/kap/gh.token" ];
 *             wall_time = "5m"; max_output = "16M"; concurrency = 4; },
 *           { name = "gh";                   # mode = "proxy": kapd runs it
 *             profile = "gh.prof";           # default: PROFILE_DIR/gh.prof
 *             allow = [ "pr list", "issue view *" ]; deny = [ "pr merge" ];
 *             cwd = "workspace"; }           # or "home" (the default)
 *       );
 *       workspace = "/srv/ws";               # the capsule's workspace here
 *       capsule_workspace = "/workspace";    # and its path in the capsule
 *       home_dir = "/var/lib/kapd/cli";      # per-call homes (default: a
 *                                            # private directory in /tmp)
 *       egress_proxy = "http://127.0.0.1:3128";  # the child's HTTP(S)_PROXY
 *   };
 *
 * A proxy-mode call (kap_cli_proxy.c) is canonicalised and decided with
 * the tool's profile and rules (kap_cli_rules.h), asked on the core's
 * policy chain as a "cli" question (the module's own policy hook answers
 * with that verdict), and run with the runner (kap_cli_run.h).
 */
#ifndef KAP_CLI_H
#define KAP_CLI_H

#include <stddef.h>
#include <sys/socket.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_module.h>

#include "kap_cli_rules.h"   /* KAP_CLI_MAX_ARGS, KAP_CLI_MAX_ARG */

#define KAP_CLI_NAME         "cli"
#define KAP_CLI_LISTEN       "127.0.0.1:3130"
#define KAP_CLI_MAX_ENV      64            /* configured variables */
#define KAP_CLI_MAX_BODY     (16 * 1024 * 1024)  /* request + stdin */

enum kap_cli_mode { KAP_CLI_PROXY = 0, KAP_CLI_DIRECT };

struct kap_cli_req;

struct kap_cli_env_var {
    const char         *name;      /* "GH_TOKEN" */
    struct kap_secret  *value;     /* owned by the generation's pool */
};

struct kap_cli_tool {
    const char             *name;
    int                     mode;        /* enum kap_cli_mode */
    const char             *path;        /* absolute */
    struct kap_cli_env_var *env;
    size_t                  nenv;
    double                  wall_time;
    long long               max_output;
    long long               concurrency;
    /* proxy mode */
    struct kap_cli_profile *profile;
    const char             *profile_path;
    struct kap_cli_rule   **allow, **deny, **ask;
    size_t                  nallow, ndeny, nask;
    int                     cwd_workspace; /* run in the mapped cwd */
    /* credential proxy (kap_cli_cred.h); gh only */
    int                     cred;          /* on */
    const char             *cred_socket;   /* absolute socket path */
    const char             *gh_host;       /* GH_HOST of env, or NULL */
    const char             *ca_file;       /* SSL_CERT_FILE of env, or NULL */
    long long               running;       /* calls running now (this
                                              generation's count) */
};

struct kap_cli_conf {
    struct kap_http_server_conf  srv;
    struct kap_cli_tool         *tools;
    size_t                       ntools;
    const char                  *workspace;          /* host path or NULL */
    const char                  *capsule_workspace;  /* "/workspace" */
    const char                  *home_dir;           /* NULL: private tmp */
    const char                  *egress_proxy;       /* URL or NULL */
    int                          locked;   /* the policy file comes from
                                              the agent's side (kap run):
                                              no tool path, root-owned
                                              binaries and profiles */
};

/* Parse the cli group into cf (kap_cli_conf.c).  KAP_OK / KAP_ERROR. */
int kap_cli_conf_parse(struct kap_gen *gen, struct kap_cli_conf *cf,
                       const config_setting_t *group, struct kap_err *err);

/*
 * Load a proxy-mode tool's profile (key "profile", or the installed
 * PROFILE_DIR/<name>.prof; locked: root-owned only) and canonicalise its deny, ask and allow rules with
 * it (kap_cli_conf_rules.c).  Everything in the generation's pool.
 * KAP_OK, or KAP_ERROR with err naming file:line.
 */
int kap_cli_conf_rules(struct kap_gen *gen, struct kap_cli_tool *t,
                       const config_setting_t *g, int locked,
                       struct kap_err *err);

/*
 * A proxy-mode call (kap_cli_proxy.c): decide, ask the policy chain, run
 * and stream the framed response.  stdin_data/len: the request's stdin
 * (borrowed from ex).  stream: the request asked for "Upgrade: kap-cli":
 * the answer is a 101 and raw frames, and stdin comes as frames while
 * the tool runs (after stdin_data).  Ends the exchange, now or later.
 */
void kap_cli_proxy(struct kap_http_ex *ex, struct kap_cli_tool *t,
                   const struct kap_cli_req *req, const char *stdin_data,
                   size_t stdin_len, int stream);

/* The cli module's policy hook for "cli" questions it asked itself. */
int kap_cli_policy(struct kap_req *r, void *conf);

/* The directory per-call homes are made in (kap_cli_proxy.c). */
const char *kap_cli_home_parent(const struct kap_cli_conf *cf,
                                struct kap_err *err);

/* Remove the private directory kap_cli_home_parent() made, if any. */
void kap_cli_home_parent_remove(void);

/* The tool called name, or NULL (borrowed from cf). */
struct kap_cli_tool *kap_cli_tool_find(const struct kap_cli_conf *cf,
                                       const char *name, size_t len);

/*
 * The environment variable names a known tool's credentials use, for
 * direct mode without an env list (kap_cli_known.c): a NULL-terminated
 * static array, or NULL for a tool kapd does not know.
 */
const char *const *kap_cli_known_env(const char *tool);

/*
 * Resolve a tool's binary (kap_cli_path.c): path as configured, or the
 * first executable "name" on kapd's PATH.  Refused: not absolute, not an
 * executable regular file, or in a directory (any on the way from /)
 * that someone other than root and kapd's euid, or a group or everyone,
 * may write: a capsule (or another user) could replace it.  Returns the
 * path in pool, or NULL with err set.
 */
const char *kap_cli_path_resolve(struct kap_pool *pool, const char *name,
                                 const char *path, unsigned flags,
                                 struct kap_err *err);

#define KAP_CLI_ROOT_ONLY 0x1u   /* owned by root, not kapd's euid too */
#define KAP_CLI_EXEC      0x2u   /* an executable file */
/*
 * The same ownership check for any file (a profile): path and every
 * directory from / owned by root (or kapd's euid without
 * KAP_CLI_ROOT_ONLY) and writable by no group or others.  KAP_OK or
 * KAP_ERROR with err set.
 */
int kap_cli_path_safe(struct kap_pool *pool, const char *path, unsigned flags,
                      struct kap_err *err);

/*
 * May this peer receive a direct-mode environment (kap_cli_peer.c)?  A
 * unix-socket peer or a loopback TCP peer (127.0.0.0/8, ::1, and
 * ::ffff:127.0.0.0/104): non-zero.
 */
int kap_cli_peer_local(const struct sockaddr_storage *ss, socklen_t len);

/* One decoded request body (kap_cli_req.c); everything in the pool. */
struct kap_cli_req {
    const char **args;           /* NULL-terminated */
    size_t       nargs;
    const char  *cwd;            /* or NULL */
};

/*
 * Decode a request body strictly: a JSON object with "args" (an array of
 * strings: any other element type is refused, never dropped) and an
 * optional "cwd" (a string); any other key ("stdin" comes with proxy
 * mode), a
 * duplicate key, a NUL or invalid UTF-8 in a string, more than
 * KAP_CLI_MAX_ARGS words or a word over KAP_CLI_MAX_ARG bytes is refused.
 * KAP_OK, or KAP_ERROR with err set to a message for the client.
 */
int kap_cli_req_decode(struct kap_pool *pool, const char *body, size_t len,
                       struct kap_cli_req *out, struct kap_err *err);

#endif /* KAP_CLI_H */
