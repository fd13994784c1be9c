/*
 * kap_mcp_conf.c -- the mcp group: listeners, upstream_timeout, prefix,
 * auth_dir and the servers list (docs/kap.conf.5, MCP).  A server's url
 * and headers come from kap.conf, or from its `kap mcp add`
 * registration in auth_dir when url is left out; every header value is
 * a kap_secret (never logged).  ${VAR} in a header value is filled in
 * from the project's env file (env_file), then from kapd's environment.
 *
 * locked (kap run sets it: the policy file there comes from the agent's
 * side): a server's url and headers come only from its registration, and
 * the file may name no ca_file; allow, deny, ask and pin may only narrow
 * what the registration reaches.  Without it a project could send a
 * host's credential (a ${VAR} header, a registration's token) to a URL
 * of its choosing.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kap_mcp_envfile.h"
#include "kap_mcp_mod.h"

/* ${VAR}: the project's env file first, then kapd's environment */
static const char *
conf_env(const char *var, void *data)
{
    const char *v = data != NULL ? kap_mcp_envfile_get(data, var) : NULL;

    return v != NULL ? v : getenv(var);
}

/* mcp.locked: the keys a server may not have */
static int
conf_locked(const config_setting_t *s, const char *name, struct kap_err *err)
{
    static const char *const keys[] = { "url", "headers", "ca_file", NULL };
    const config_setting_t *m;
    size_t i;

    for (i = 0; keys[i] != NULL; i++)
        if ((m = config_setting_get_member(s, keys[i])) != NULL) {
            kap_err_at(err, m, "mcp server \"%s\": mcp.locked (kap run): "
                       "no %s here, the policy file comes from the agent's "
                       "side; a server's url and headers come from its "
                       "registration on the host (kap mcp add %s URL)",
                       name, keys[i], name);
            return KAP_ERROR;
        }
    return KAP_OK;
}

static int
conf_url_ok(const char *u)
{
    size_t i;

    if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8)
        != 0)
        return 0;
    for (i = 0; u[i] != '\0'; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
            return 0;
    return i < KAP_CURL_MAX_URL;
}

/* Add or replace header name (kap.conf's value wins over the
 * registration's of the same name). */
static int
conf_header_set(struct kap_pool *pool, struct kap_mcp_server *sv,
                const char *name, const struct kap_secret *v)
{
    struct kap_mcp_reg_header *h;
    size_t i;

    for (i = 0; i < sv->nheaders; i++)
        if (strcasecmp(sv->headers[i].name, name) == 0) {
            sv->headers[i].value = v;
            return KAP_OK;
        }
    h = kap_palloc(pool, (sv->nheaders + 1) * sizeof(*h));
    if (h == NULL)
        return KAP_ERROR;
    if (sv->nheaders > 0)
        memcpy(h, sv->headers, sv->nheaders * sizeof(*h));
    h[sv->nheaders].name = name;
    h[sv->nheaders].value = v;
    sv->headers = h;
    sv->nheaders++;
    return KAP_OK;
}

/* headers = { Authorization = "Bearer ${TOKEN}"; X-Api-Key = "..."; }; */
static int
conf_headers(struct kap_gen *gen, struct kap_mcp_server *sv,
             const config_setting_t *hs, struct kap_mcp_envfile *ef,
             struct kap_err *err)
{
    struct kap_pool *pool = kap_gen_pool(gen);
    const struct kap_secret *v;
    const config_setting_t *h;
    const char *name, *val, *label;
    struct kap_err e2;
    unsigned i, n;

    if (hs == NULL)
        return KAP_OK;
    if (!config_setting_is_group(hs)) {
        kap_err_at(err, hs, "mcp server \"%s\": headers is a group: "
                   "headers = { Authorization = \"Bearer ${TOKEN}\"; }",
                   sv->name);
        return KAP_ERROR;
    }
    n = (unsigned)config_setting_length(hs);
    if (n > KAP_MCP_REG_MAX_HEADERS) {
        kap_err_at(err, hs, "mcp server \"%s\": more than %d headers",
                   sv->name, KAP_MCP_REG_MAX_HEADERS);
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        h = config_setting_get_elem(hs, i);
        name = config_setting_name(h);
        val = config_setting_get_string(h);
        if (val == NULL) {
            kap_err_at(err, h, "mcp server \"%s\": header %s: the value is "
                       "a string", sv->name, name);
            return KAP_ERROR;
        }
        if (!kap_mcp_reg_header_ok(name)) {
            kap_err_at(err, h, "mcp server \"%s\": header %s is one kapd "
                       "sets itself (or not a field name)", sv->name, name);
            return KAP_ERROR;
        }
        label = kap_psprintf(pool, "mcp server %s header %s", sv->name,
                             name);
        memset(&e2, 0, sizeof(e2));
        if (label == NULL
            || kap_mcp_reg_value(pool, label, val, conf_env, ef, &v, &e2)
               != KAP_OK) {
            kap_err_at(err, h, "%s", e2.msg[0] ? e2.msg : "out of memory");
            return KAP_ERROR;
        }
        name = kap_pstrdup(pool, name);
        if (name == NULL || conf_header_set(pool, sv, name, v) != KAP_OK) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

/* ask = ["create_*"]: allowed by the patterns, decided by a human */
static int
conf_ask(struct kap_pool *pool, struct kap_mcp_server *sv,
         const config_setting_t *ask, struct kap_err *err)
{
    const config_setting_t *e;
    const char *pat, *file;
    unsigned i, n;

    if (ask == NULL)
        return KAP_OK;
    if (!config_setting_is_array(ask) && !config_setting_is_list(ask)) {
        kap_err_at(err, ask, "mcp server \"%s\": ask is a list of tool "
                   "patterns", sv->name);
        return KAP_ERROR;
    }
    if ((sv->ask = kap_mcp_tools_create(pool)) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    n = (unsigned)config_setting_length(ask);
    for (i = 0; i < n; i++) {
        e = config_setting_get_elem(ask, i);
        pat = config_setting_get_string(e);
        file = config_setting_source_file(e);
        if (pat == NULL) {
            kap_err_at(err, e, "mcp server \"%s\": ask patterns are "
                       "strings", sv->name);
            return KAP_ERROR;
        }
        if (kap_mcp_tools_add(sv->ask, 0, pat, file,
                              config_setting_source_line(e),
                              err) != KAP_OK
            || kap_mcp_tools_add(sv->tools, 0, pat, file,
                                 config_setting_source_line(e), err)
               != KAP_OK)
            return KAP_ERROR;
    }
    return KAP_OK;
}

static int
conf_server(struct kap_gen *gen, struct kap_mcp_conf *cf,
            const config_setting_t *s, struct kap_mcp_server *sv,
            struct kap_mcp_envfile *ef, struct kap_err *err)
{
    static const char *const keys[] = {
        "name", "url", "allow", "deny", "ask", "headers", "pin", "ca_file",
        NULL
    };
    struct kap_pool *pool = kap_gen_pool(gen);
    struct kap_mcp_reg reg;
    struct kap_err e2;
    size_t i;
    int rc;

    if (!config_setting_is_group(s)) {
        kap_err_at(err, s, "mcp: servers is a list of groups: "
                   "( { name = \"github\"; allow = [\"get_*\"]; } )");
        return KAP_ERROR;
    }
    if (kap_conf_check_keys(s, keys, err) != KAP_OK)
        return KAP_ERROR;
    rc = kap_conf_get_str(s, "name", pool, &sv->name, err);
    if (rc == KAP_DECLINED)
        kap_err_at(err, s, "mcp: a server needs a name");
    if (rc != KAP_OK)
        return KAP_ERROR;
    if (!kap_mcp_name_ok(sv->name, strlen(sv->name))) {
        kap_err_at(err, s, "mcp: server name \"%s\" is not "
                   "[A-Za-z0-9][A-Za-z0-9_-]{0,63}", sv->name);
        return KAP_ERROR;
    }
    if (cf->locked && conf_locked(s, sv->name, err) != KAP_OK)
        return KAP_ERROR;
    for (i = 0; i < cf->nservers; i++)
        if (strcmp(cf->servers[i].name, sv->name) == 0) {
            kap_err_at(err, s, "mcp: server \"%s\" is listed twice",
                       sv->name);
            return KAP_ERROR;
        }
    if (kap_conf_get_str(s, "url", pool, &sv->url, err) == KAP_ERROR
        || kap_conf_get_str(s, "ca_file", pool, &sv->ca_file, err)
           == KAP_ERROR
        || kap_conf_get_bool(s, "pin", &sv->pin, err) == KAP_ERROR)
        return KAP_ERROR;
    if (sv->ca_file != NULL
        && (sv->ca_file = kap_conf_path(gen, sv->ca_file)) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    sv->tools = kap_mcp_tools_create(pool);
    if (sv->tools == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    if (config_setting_get_member(s, "allow") == NULL) {
        kap_err_at(err, s, "mcp server \"%s\": allow is missing: no tool "
                   "would be callable; list the tools to allow, or "
                   "allow = [\"*\"] for all of them", sv->name);
        return KAP_ERROR;
    }
    if (kap_mcp_tools_conf(sv->tools, config_setting_get_member(s, "allow"),
                           config_setting_get_member(s, "deny"), sv->name,
                           err) != KAP_OK)
        return KAP_ERROR;
    if (conf_ask(pool, sv, config_setting_get_member(s, "ask"), err)
        != KAP_OK)
        return KAP_ERROR;
    if (sv->url == NULL) {
        if (cf->auth_dir == NULL) {
            kap_err_at(err, s, "mcp server \"%s\": no url, and no auth_dir "
                       "to find its registration in (kap mcp add %s URL)",
                       sv->name, sv->name);
            return KAP_ERROR;
        }
        memset(&reg, 0, sizeof(reg));
        memset(&e2, 0, sizeof(e2));
        if (kap_mcp_reg_load(pool, cf->auth_dir, sv->name, conf_env, ef,
                             &reg, &e2) != KAP_OK) {
            kap_err_at(err, s, "mcp server \"%s\": no url, and %s", sv->name,
                       e2.msg);
            return KAP_ERROR;
        }
        sv->url = reg.upstream;
        sv->headers = reg.headers;
        sv->nheaders = reg.nheaders;
        sv->oauth = reg.oauth;
        sv->expires_at = reg.expires_at;
    }
    if (sv->pin) {
        if (cf->auth_dir == NULL) {
            kap_err_at(err, config_setting_get_member(s, "pin"),
                       "mcp server \"%s\": pin needs auth_dir (the pins "
                       "are kept there)", sv->name);
            return KAP_ERROR;
        }
        sv->pin_file = kap_psprintf(pool, "%s/%s.pins.json", cf->auth_dir,
                                    sv->name);
        if (sv->pin_file == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
    }
    if (!conf_url_ok(sv->url)) {
        kap_err_at(err, s, "mcp server \"%s\": url must be an http:// or "
                   "https:// URL", sv->name);
        return KAP_ERROR;
    }
    return conf_headers(gen, sv, config_setting_get_member(s, "headers"),
                        ef, err);
}

static int
conf_listen(struct kap_gen *gen, const config_setting_t *group,
            struct kap_err *err)
{
    struct kap_pool *pool = kap_gen_pool(gen);
    const config_setting_t *ls = group != NULL
        ? config_setting_get_member(group, "listen") : NULL;
    const char **listen = NULL, *one = NULL;
    size_t nl = 0, i;

    if (ls != NULL && config_setting_type(ls) == CONFIG_TYPE_STRING) {
        if (kap_conf_get_str(group, "listen", pool, &one, err) == KAP_ERROR)
            return KAP_ERROR;
    } else if (ls != NULL && kap_conf_get_strlist(group, "listen", pool,
                                                  &listen, &nl, err)
               == KAP_ERROR) {
        return KAP_ERROR;
    }
    if (one == NULL && nl == 0)
        one = KAP_MCP_LISTEN;
    if (one != NULL)
        return kap_listen_add(gen, KAP_MCP_NAME, KAP_LISTEN_TCP, one, ls,
                              err);
    for (i = 0; i < nl; i++)
        if (kap_listen_add(gen, KAP_MCP_NAME, KAP_LISTEN_TCP, listen[i], ls,
                           err) != KAP_OK)
            return KAP_ERROR;
    return KAP_OK;
}

static int
conf_prefix(const char *p)
{
    size_t i;

    if (p[0] == '\0')
        return 1;
    if (p[0] != '/' || p[strlen(p) - 1] == '/')
        return 0;
    for (i = 0; p[i] != '\0'; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f
            || p[i] == '?' || p[i] == '#' || p[i] == '%')
            return 0;
    return 1;
}

int
kap_mcp_conf_parse(struct kap_gen *gen, struct kap_mcp_conf *cf,
                   const config_setting_t *group, struct kap_err *err)
{
    static const char *const keys[] = {
        "listen", "upstream_timeout", "prefix", "auth_dir", "servers",
        "locked", "env_file", NULL
    };
    struct kap_pool *pool = kap_gen_pool(gen);
    const config_setting_t *servers;
    struct kap_mcp_envfile ef;
    const char *home;
    size_t i, n;
    int rc;

    cf->upstream_timeout = KAP_MCP_UPSTREAM_TIMEOUT;
    cf->prefix = "";
    if (group != NULL && kap_conf_check_keys(group, keys, err) != KAP_OK)
        return KAP_ERROR;
    if (conf_listen(gen, group, err) != KAP_OK)
        return KAP_ERROR;
    if (group == NULL)
        return KAP_OK;
    if (kap_conf_get_secs(group, "upstream_timeout", &cf->upstream_timeout,
                          err) == KAP_ERROR
        || kap_conf_get_str(group, "prefix", pool, &cf->prefix, err)
           == KAP_ERROR
        || kap_conf_get_str(group, "auth_dir", pool, &cf->auth_dir, err)
           == KAP_ERROR
        || kap_conf_get_str(group, "env_file", pool, &cf->env_file, err)
           == KAP_ERROR
        || kap_conf_get_bool(group, "locked", &cf->locked, err) == KAP_ERROR)
        return KAP_ERROR;
    if (cf->upstream_timeout <= 0 || cf->upstream_timeout > 3600) {
        kap_err_at(err, config_setting_get_member(group, "upstream_timeout"),
                   "mcp: upstream_timeout must be between 0 and 3600 s");
        return KAP_ERROR;
    }
    if (!conf_prefix(cf->prefix)) {
        kap_err_at(err, config_setting_get_member(group, "prefix"),
                   "mcp: prefix is a path such as \"/mcp\" (no trailing "
                   "slash, query or escapes)");
        return KAP_ERROR;
    }
    if (cf->auth_dir != NULL)
        cf->auth_dir = kap_conf_path(gen, cf->auth_dir);
    else if ((home = getenv("HOME")) != NULL && home[0] == '/')
        cf->auth_dir = kap_psprintf(pool, "%s/.kap/auth", home);
    servers = config_setting_get_member(group, "servers");
    if (servers == NULL)
        return KAP_OK;
    if (!config_setting_is_list(servers)) {
        kap_err_at(err, servers, "mcp: servers is a list: "
                   "( { name = \"github\"; allow = [\"get_*\"]; } )");
        return KAP_ERROR;
    }
    n = (size_t)config_setting_length(servers);
    if (n > KAP_MCP_MAX_SERVERS) {
        kap_err_at(err, servers, "mcp: more than %d servers",
                   KAP_MCP_MAX_SERVERS);
        return KAP_ERROR;
    }
    cf->servers = kap_palloc(pool, (n + 1) * sizeof(*cf->servers));
    if (cf->servers == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    memset(cf->servers, 0, (n + 1) * sizeof(*cf->servers));
    memset(&ef, 0, sizeof(ef));
    if (cf->env_file != NULL) {
        if ((cf->env_file = kap_conf_path(gen, cf->env_file)) == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        if (kap_mcp_envfile_read(&ef, cf->env_file, err) != KAP_OK)
            return KAP_ERROR;
    }
    rc = KAP_OK;
    for (i = 0; i < n && rc == KAP_OK; i++) {
        rc = conf_server(gen, cf, config_setting_get_elem(servers,
                                                          (unsigned)i),
                         &cf->servers[i], &ef, err);
        if (rc == KAP_OK)
            cf->nservers++;
    }
    kap_mcp_envfile_free(&ef);
    return rc;
}

const struct kap_mcp_server *
kap_mcp_server_find(const struct kap_mcp_conf *cf, const char *name)
{
    size_t i;

    for (i = 0; cf != NULL && i < cf->nservers; i++)
        if (strcmp(cf->servers[i].name, name) == 0)
            return &cf->servers[i];
    return NULL;
}
