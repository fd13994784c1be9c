/*
 * kap_cli_env.c -- a tool's whole environment: isolation first, then the
 * tool's configured variables.  See kap_cli_env.h.
 */
#include "kap_cli_env.h"

#include <string.h>

#include <kapd/kap_module.h>

/* Directories inside the per-call home (kap_cli_home.c makes them). */
static const struct { const char *name, *sub; } kap_cli_env_dirs[] = {
    { "HOME",            "" },
    { "XDG_CONFIG_HOME", "/.config" },
    { "XDG_DATA_HOME",   "/.local/share" },
    { "XDG_STATE_HOME",  "/.local/state" },
    { "XDG_CACHE_HOME",  "/.cache" },
    { "GH_CONFIG_DIR",   "/.config/gh" },
    { "GLAB_CONFIG_DIR", "/.config/glab-cli" },
    { "DOCKER_CONFIG",   "/.docker" },
    { "TMPDIR",          "/tmp" },
};

/* Fixed values: no editor, browser, pager, prompt or update check; git's
 * program-running settings off, and this beats the repository's config. */
static const char *const kap_cli_env_fixed[] = {
    "PATH=" KAP_CLI_PATH,
    "LANG=C.UTF-8",
    "EDITOR=/bin/false", "VISUAL=/bin/false", "GIT_EDITOR=/bin/false",
    "GH_EDITOR=/bin/false", "KUBE_EDITOR=/bin/false",
    "BROWSER=/bin/false", "GH_BROWSER=/bin/false",
    "PAGER=cat", "GIT_PAGER=cat", "GH_PAGER=cat", "GLAB_PAGER=cat",
    "AWS_PAGER=",
    "GH_PROMPT_DISABLED=1", "GH_NO_UPDATE_NOTIFIER=1", "NO_PROMPT=1",
    "GLAB_CHECK_UPDATE=false", "AWS_CLI_AUTO_PROMPT=off",
    "AWS_EC2_METADATA_DISABLED=true", "KUBECTL_KUBERC=false", "KUBERC=off",
    "DOCKER_CLI_HOOKS=false",
    "GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1",
    "GIT_CONFIG_GLOBAL=/dev/null",
    "GIT_CONFIG_COUNT=5",
    "GIT_CONFIG_KEY_0=core.fsmonitor", "GIT_CONFIG_VALUE_0=false",
    "GIT_CONFIG_KEY_1=core.hooksPath", "GIT_CONFIG_VALUE_1=/dev/null",
    "GIT_CONFIG_KEY_2=core.sshCommand", "GIT_CONFIG_VALUE_2=false",
    "GIT_CONFIG_KEY_3=protocol.ext.allow", "GIT_CONFIG_VALUE_3=never",
    "GIT_CONFIG_KEY_4=credential.helper", "GIT_CONFIG_VALUE_4=",
};

/* Set from the proxy URL when kapd has an egress listener. */
static const char *const kap_cli_env_proxy[] = {
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
};

/* Never from a tool's config either: they would undo the isolation or
 * send the tool around the egress proxy. */
static const char *const kap_cli_env_more[] = {
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "LD_PRELOAD",
    "LD_LIBRARY_PATH", "LD_AUDIT", "GIT_CONFIG", "GIT_CONFIG_SYSTEM",
    "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS",
    "SSH_ASKPASS", "KUBECONFIG", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
};

#define KAP_CLI_N(a) (sizeof(a) / sizeof((a)[0]))

static int
kap_cli_env_is(const char *entry, const char *name)
{
    size_t n = strlen(name);

    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

int
kap_cli_env_reserved(const char *name)
{
    size_t i, n;

    if (strncmp(name, "GIT_CONFIG_", 11) == 0)
        return 1;
    for (i = 0; i < KAP_CLI_N(kap_cli_env_dirs); i++)
        if (strcmp(name, kap_cli_env_dirs[i].name) == 0)
            return 1;
    for (i = 0; i < KAP_CLI_N(kap_cli_env_proxy); i++)
        if (strcmp(name, kap_cli_env_proxy[i]) == 0)
            return 1;
    for (i = 0; i < KAP_CLI_N(kap_cli_env_more); i++)
        if (strcmp(name, kap_cli_env_more[i]) == 0)
            return 1;
    for (i = 0; i < KAP_CLI_N(kap_cli_env_fixed); i++) {
        n = strcspn(kap_cli_env_fixed[i], "=");
        if (strlen(name) == n && strncmp(name, kap_cli_env_fixed[i], n) == 0)
            return 1;
    }
    return 0;
}

char **
kap_cli_env_build(struct kap_pool *pool, const char *home, const char *proxy,
                  const char *const *tool_env, size_t n_tool,
                  struct kap_err *e)
{
    size_t  max, n = 0, i, k;
    char  **env, *name;

    max = KAP_CLI_N(kap_cli_env_dirs) + KAP_CLI_N(kap_cli_env_fixed)
          + KAP_CLI_N(kap_cli_env_proxy) + n_tool + 1;
    env = kap_palloc(pool, max * sizeof(*env));
    if (env == NULL)
        goto nomem;
    for (i = 0; i < KAP_CLI_N(kap_cli_env_dirs); i++) {
        env[n] = kap_psprintf(pool, "%s=%s%s", kap_cli_env_dirs[i].name,
                              home, kap_cli_env_dirs[i].sub);
        if (env[n++] == NULL)
            goto nomem;
    }
    for (i = 0; i < KAP_CLI_N(kap_cli_env_fixed); i++)
        env[n++] = (char *)kap_cli_env_fixed[i];
    for (i = 0; proxy != NULL && i < KAP_CLI_N(kap_cli_env_proxy); i++) {
        env[n] = kap_psprintf(pool, "%s=%s", kap_cli_env_proxy[i], proxy);
        if (env[n++] == NULL)
            goto nomem;
    }
    for (i = 0; i < n_tool; i++) {
        k = strcspn(tool_env[i], "=");
        if (k == 0 || tool_env[i][k] != '=') {
            kap_err_set(e, "cli: tool variable %zu is not NAME=value", i);
            return NULL;
        }
        name = kap_pstrndup(pool, tool_env[i], k);
        if (name == NULL)
            goto nomem;
        if (kap_cli_env_reserved(name)) {
            kap_err_set(e, "cli: %s is set by kapd's isolation and cannot "
                        "come from a tool's env", name);
            return NULL;
        }
        for (k = 0; k < n; k++)
            if (kap_cli_env_is(env[k], name))
                break;
        env[k] = kap_pstrdup(pool, tool_env[i]);
        if (env[k] == NULL)
            goto nomem;
        if (k == n)
            n++;
    }
    env[n] = NULL;
    return env;

nomem:
    kap_err_set(e, "cli: out of memory");
    return NULL;
}
