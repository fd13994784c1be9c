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
 *             wall_time = "5m"; max_output = "16M"; concurrency = 4; }
 *       );
 *   };
 *
 * Proxy mode (kapd runs the tool under argv rules) is refused at load
 * until the argv rule engine (kap_cli_rules.h) is part of the module:
 * a tool is never run unchecked.
 */
#ifndef KAP_CLI_H
#define KAP_CLI_H

#include <stddef.h>
#include <sys/socket.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_module.h>

#define KAP_CLI_NAME         "cli"
#define KAP_CLI_LISTEN       "127.0.0.1:3130"
#define KAP_CLI_MAX_ARGS     4096          /* argv words in a request */
#define KAP_CLI_MAX_ARG      (128 * 1024)  /* bytes of one word */
#define KAP_CLI_MAX_ENV      64            /* configured variables */

enum kap_cli_mode { KAP_CLI_PROXY = 0, KAP_CLI_DIRECT };

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
};

struct kap_cli_conf {
    struct kap_http_server_conf  srv;
    struct kap_cli_tool         *tools;
    size_t                       ntools;
};

/* Parse the cli group into cf (kap_cli_conf.c).  KAP_OK / KAP_ERROR. */
int kap_cli_conf_parse(struct kap_gen *gen, struct kap_cli_conf *cf,
                       const config_setting_t *group, struct kap_err *err);

/* The tool called name, or NULL (borrowed from cf). */
const struct kap_cli_tool *kap_cli_tool_find(const struct kap_cli_conf *cf,
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
                                 const char *path, struct kap_err *err);

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
