/*
 * kap_cli_conf.c -- the cli group: listeners and the tools list.  See
 * kap_cli.h for the shape; docs/kap.conf.5 (CLI) for the meaning.
 */
#include "kap_cli.h"
#include "kap_cli_cred.h"

#include <stdlib.h>
#include <string.h>

#include <kapd/kap_secret.h>

#define KAP_CLI_WALL_TIME   300.0
#define KAP_CLI_MAX_OUTPUT  (16LL * 1024 * 1024)
#define KAP_CLI_CONCURRENCY 4

static int
kap_cli_name_ok(const char *s, int env)
{
    size_t i;

    if (s[0] == '\0' || (!env && s[0] == '.') || (env && s[0] >= '0'
                                                  && s[0] <= '9'))
        return 0;
    for (i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_'
              || (!env && (c == '-' || c == '.'))))
            return 0;
    }
    return i <= 64;
}

/* One "NAME=value" of a tool's env: value literal, ${VAR} or file:PATH. */
static int
kap_cli_conf_var(struct kap_gen *gen, const struct kap_cli_tool *t,
                 const char *spec, const config_setting_t *at,
                 struct kap_cli_env_var *v, struct kap_err *err)
{
    struct kap_pool *pool = kap_gen_pool(gen);
    const char      *eq = strchr(spec, '='), *val, *label;
    struct kap_err   e2;
    size_t           vl;
    char            *var;

    memset(&e2, 0, sizeof(e2));
    v->name = eq != NULL ? kap_pstrndup(pool, spec, (size_t)(eq - spec))
                         : NULL;
    if (eq == NULL || v->name == NULL || !kap_cli_name_ok(v->name, 1)) {
        kap_err_at(err, at, "cli: tool \"%s\": env entries are NAME=value "
                   "with NAME of [A-Za-z_][A-Za-z0-9_]*", t->name);
        return KAP_ERROR;
    }
    val = eq + 1;
    vl = strlen(val);
    label = kap_psprintf(pool, "cli tool %s env %s", t->name, v->name);
    if (strncmp(val, "file:", 5) == 0) {
        const char *p = kap_conf_path(gen, val + 5);
        v->value = p != NULL ? kap_secret_load(pool, p, &e2) : NULL;
    } else if (vl > 3 && val[0] == '$' && val[1] == '{' && val[vl - 1] == '}') {
        var = kap_pstrndup(pool, val + 2, vl - 3);
        val = var != NULL ? getenv(var) : NULL;
        if (val == NULL) {
            kap_err_at(err, at, "cli: tool \"%s\": env %s: ${%s} is not set "
                       "in kapd's environment", t->name, v->name,
                       var != NULL ? var : "?");
            return KAP_ERROR;
        }
        v->value = kap_secret_new(pool, label, val, strlen(val), &e2);
    } else {
        v->value = kap_secret_new(pool, label, val, vl, &e2);
    }
    if (v->value == NULL) {
        kap_err_at(err, at, "cli: tool \"%s\": env %s: %s", t->name, v->name,
                   e2.msg[0] != '\0' ? e2.msg : "out of memory");
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* A known tool in direct mode without env: its table's names that are
 * set in kapd's environment. */
static int
kap_cli_conf_known(struct kap_gen *gen, struct kap_cli_tool *t,
                   const config_setting_t *at, struct kap_err *err)
{
    const char *const *names = kap_cli_known_env(t->name);
    struct kap_pool   *pool = kap_gen_pool(gen);
    struct kap_err     e2;
    const char        *val;
    size_t             i, n = 0;

    if (names == NULL)
        return KAP_OK;
    for (i = 0; names[i] != NULL; i++)
        n++;
    t->env = kap_palloc(pool, n * sizeof(*t->env));
    if (t->env == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; names[i] != NULL; i++) {
        val = getenv(names[i]);
        if (val == NULL || val[0] == '\0')
            continue;
        memset(&e2, 0, sizeof(e2));
        t->env[t->nenv].name = names[i];
        t->env[t->nenv].value = kap_secret_new(pool, names[i], val,
                                               strlen(val), &e2);
        if (t->env[t->nenv].value == NULL) {
            kap_err_at(err, at, "cli: tool \"%s\": %s: %s", t->name,
                       names[i], e2.msg);
            return KAP_ERROR;
        }
        t->nenv++;
    }
    return KAP_OK;
}

/* A proxy-mode tool is served only when the installed binary is the
 * version its profile was read from: another version may take flags and
 * commands the profile does not know, and read argv differently from
 * the canonical form that was decided. */
static int
version_ok(const struct kap_cli_tool *t, const config_setting_t *g,
           struct kap_err *err)
{
    char msg[512];

    if (kap_cli_version_verify(t->profile, t->path, msg, sizeof(msg)) == 0)
        return KAP_OK;
    kap_err_at(err, g, "cli: tool \"%s\": %s (profile %s)", t->name, msg,
               t->profile_path);
    return KAP_ERROR;
}

static int
kap_cli_conf_tool(struct kap_gen *gen, struct kap_cli_conf *cf,
                  const config_setting_t *g, struct kap_cli_tool *t,
                  struct kap_err *err)
{
    static const char *const keys[] = { "name", "mode", "path", "env",
        "allow", "deny", "ask", "wall_time", "max_output", "concurrency",
        "profile", "cwd", "credential_proxy", "credential_socket", NULL };
    static const char *const modes[] = { "proxy", "direct", NULL };
    static const char *const cwds[] = { "home", "workspace", NULL };
    struct kap_pool *pool = kap_gen_pool(gen);
    const char     **env = NULL, *path = NULL, *sock = NULL;
    size_t           nenv = 0, i;
    int              cred = -1;
    struct kap_err   e2;

    if (!config_setting_is_group(g)) {
        kap_err_at(err, g, "cli: each entry of tools is a group { name = ...; }");
        return KAP_ERROR;
    }
    if (kap_conf_check_keys(g, keys, err) != KAP_OK
        || kap_conf_get_str(g, "name", pool, &t->name, err) == KAP_ERROR
        || kap_conf_get_enum(g, "mode", modes, &t->mode, err) == KAP_ERROR
        || kap_conf_get_str(g, "path", pool, &path, err) == KAP_ERROR
        || kap_conf_get_strlist(g, "env", pool, &env, &nenv, err)
           == KAP_ERROR
        || kap_conf_get_secs(g, "wall_time", &t->wall_time, err) == KAP_ERROR
        || kap_conf_get_size(g, "max_output", &t->max_output, err)
           == KAP_ERROR
        || kap_conf_get_int(g, "concurrency", 1, 1024, &t->concurrency, err)
           == KAP_ERROR
        || kap_conf_get_enum(g, "cwd", cwds, &t->cwd_workspace, err)
           == KAP_ERROR
        || kap_conf_get_bool(g, "credential_proxy", &cred, err) == KAP_ERROR
        || kap_conf_get_str(g, "credential_socket", pool, &sock, err)
           == KAP_ERROR)
        return KAP_ERROR;
    if (t->name == NULL || !kap_cli_name_ok(t->name, 0)) {
        kap_err_at(err, g, "cli: a tool needs a name of letters, digits, "
                   "'-', '_' and '.' (not first)");
        return KAP_ERROR;
    }
    if (kap_cli_tool_find(cf, t->name, strlen(t->name)) != NULL) {
        kap_err_at(err, g, "cli: tool \"%s\" is defined twice", t->name);
        return KAP_ERROR;
    }
    if (t->mode == KAP_CLI_DIRECT) {
        if (config_setting_get_member(g, "allow") != NULL
            || config_setting_get_member(g, "deny") != NULL
            || config_setting_get_member(g, "ask") != NULL
            || config_setting_get_member(g, "profile") != NULL
            || config_setting_get_member(g, "cwd") != NULL) {
            kap_err_at(err, g, "cli: tool \"%s\": a direct-mode tool runs "
                       "in the capsule, where kapd sees none of its "
                       "commands: allow/deny/ask/profile/cwd cannot apply "
                       "(use mode = \"proxy\" for rules)", t->name);
            return KAP_ERROR;
        }
    } else if (config_setting_get_member(g, "allow") == NULL) {
        kap_err_at(err, g, "cli: tool \"%s\": a proxy-mode tool needs "
                   "allow rules; to allow every command write allow = "
                   "[\"**\"]", t->name);
        return KAP_ERROR;
    } else if (kap_cli_conf_rules(gen, t, g, cf->locked, err) != KAP_OK) {
        return KAP_ERROR;
    }
    if (cf->locked && sock != NULL) {
        kap_err_at(err, g, "cli: tool \"%s\": cli.locked: "
                   "credential_socket cannot be set", t->name);
        return KAP_ERROR;
    }
    if (cf->locked && path != NULL) {
        kap_err_at(err, g, "cli: tool \"%s\": cli.locked: a tool's path "
                   "cannot be set (the binary is the root-owned \"%s\" on "
                   "kapd's PATH)", t->name, t->name);
        return KAP_ERROR;
    }
    memset(&e2, 0, sizeof(e2));
    t->path = kap_cli_path_resolve(pool, t->name, path,
                                   cf->locked ? KAP_CLI_ROOT_ONLY : 0, &e2);
    if (t->path == NULL) {
        kap_err_at(err, g, "cli: tool \"%s\": %s", t->name, e2.msg);
        return KAP_ERROR;
    }
    if (t->mode == KAP_CLI_PROXY && version_ok(t, g, err) != KAP_OK)
        return KAP_ERROR;
    if (nenv > KAP_CLI_MAX_ENV) {
        kap_err_at(err, g, "cli: tool \"%s\": at most %d env entries",
                   t->name, KAP_CLI_MAX_ENV);
        return KAP_ERROR;
    }
    if (t->wall_time <= 0)
        t->wall_time = KAP_CLI_WALL_TIME;
    if (t->max_output <= 0)
        t->max_output = KAP_CLI_MAX_OUTPUT;
    if (t->concurrency <= 0)
        t->concurrency = KAP_CLI_CONCURRENCY;
    if (nenv == 0) {
        if (kap_cli_conf_known(gen, t, g, err) != KAP_OK)
            return KAP_ERROR;
        return kap_cli_cred_conf(gen, t, cred, sock, g, err);
    }
    t->env = kap_palloc(pool, nenv * sizeof(*t->env));
    if (t->env == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; i < nenv; i++) {
        if (kap_cli_conf_var(gen, t, env[i],
                             config_setting_get_member(g, "env"),
                             &t->env[i], err) != KAP_OK)
            return KAP_ERROR;
        t->nenv++;
    }
    return kap_cli_cred_conf(gen, t, cred, sock, g, err);
}

int
kap_cli_conf_parse(struct kap_gen *gen, struct kap_cli_conf *cf,
                   const config_setting_t *group, struct kap_err *err)
{
    static const char *const keys[] = { "listen", "tools", "workspace",
        "capsule_workspace", "home_dir", "egress_proxy", "locked", NULL };
    struct kap_pool          *pool = kap_gen_pool(gen);
    const config_setting_t   *tools, *ls;
    const char              **listen = NULL, *one = NULL;
    size_t                    nl = 0, i, n;

    if (kap_conf_check_keys(group, keys, err) != KAP_OK
        || kap_conf_get_str(group, "workspace", pool, &cf->workspace, err)
           == KAP_ERROR
        || kap_conf_get_str(group, "capsule_workspace", pool,
                            &cf->capsule_workspace, err) == KAP_ERROR
        || kap_conf_get_str(group, "home_dir", pool, &cf->home_dir, err)
           == KAP_ERROR
        || kap_conf_get_str(group, "egress_proxy", pool, &cf->egress_proxy,
                            err) == KAP_ERROR
        || kap_conf_get_bool(group, "locked", &cf->locked, err) == KAP_ERROR)
        return KAP_ERROR;
    if (cf->locked && (cf->home_dir != NULL || cf->workspace != NULL
                       || cf->egress_proxy != NULL)) {
        kap_err_at(err, group, "cli: cli.locked: home_dir, workspace and "
                   "egress_proxy cannot be set");
        return KAP_ERROR;
    }
    if (cf->workspace != NULL)
        cf->workspace = kap_conf_path(gen, cf->workspace);
    if (cf->home_dir != NULL)
        cf->home_dir = kap_conf_path(gen, cf->home_dir);
    if (cf->capsule_workspace == NULL)
        cf->capsule_workspace = "/workspace";
    if (cf->capsule_workspace[0] != '/') {
        kap_err_at(err, group, "cli: capsule_workspace must be absolute");
        return KAP_ERROR;
    }
    ls = config_setting_get_member(group, "listen");
    if (ls != NULL && config_setting_type(ls) == CONFIG_TYPE_STRING) {
        if (kap_conf_get_str(group, "listen", pool, &one, err) == KAP_ERROR)
            return KAP_ERROR;
    } else if (kap_conf_get_strlist(group, "listen", pool, &listen, &nl, err)
               == KAP_ERROR) {
        return KAP_ERROR;
    }
    if (one == NULL && nl == 0)
        one = KAP_CLI_LISTEN;
    if (one != NULL && kap_listen_add(gen, KAP_CLI_NAME, KAP_LISTEN_TCP, one,
                                      ls, err) != KAP_OK)
        return KAP_ERROR;
    for (i = 0; i < nl; i++)
        if (kap_listen_add(gen, KAP_CLI_NAME, KAP_LISTEN_TCP, listen[i], ls,
                           err) != KAP_OK)
            return KAP_ERROR;
    tools = config_setting_get_member(group, "tools");
    n = tools != NULL ? (size_t)config_setting_length(tools) : 0;
    if (tools != NULL && !config_setting_is_list(tools)) {
        kap_err_at(err, tools, "cli: tools is a list: ( { name = ...; } )");
        return KAP_ERROR;
    }
    cf->tools = kap_palloc(pool, (n + 1) * sizeof(*cf->tools));
    if (cf->tools == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        if (kap_cli_conf_tool(gen, cf, config_setting_get_elem(tools,
                                                               (unsigned)i),
                              &cf->tools[i], err) != KAP_OK)
            return KAP_ERROR;
        cf->ntools++;
    }
    return KAP_OK;
}

struct kap_cli_tool *
kap_cli_tool_find(const struct kap_cli_conf *cf, const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < cf->ntools; i++)
        if (strlen(cf->tools[i].name) == len
            && memcmp(cf->tools[i].name, name, len) == 0)
            return &cf->tools[i];
    return NULL;
}
