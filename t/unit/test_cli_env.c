/*
 * test_cli_env.c -- a tool's environment and per-call home: isolation
 * variables with their directories under the home, git's hardening,
 * the proxy variables only when a proxy is given, the tool's own
 * variables added (and replacing nothing of the isolation: reserved
 * names refused), and a home made fresh and removed with what a tool
 * left in it, links removed and never followed.
 */
#define _GNU_SOURCE
#include "kap_cli_env.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tap.h"

static const char *
get(char **env, const char *name)
{
    size_t n = strlen(name);

    for (; env != NULL && *env != NULL; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

static size_t
count(char **env, const char *name)
{
    size_t n = strlen(name), c = 0;

    for (; env != NULL && *env != NULL; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            c++;
    return c;
}

static void
test_build(void)
{
    struct kap_pool  *pool = kap_pool_create();
    struct kap_err    e = { 0 };
    const char *const tool[] = { "GH_TOKEN=s3cret", "FOO=a=b" };
    const char *const bad1[] = { "HOME=/root" };
    const char *const bad2[] = { "GIT_CONFIG_COUNT=0" };
    const char *const bad3[] = { "LD_PRELOAD=/x.so" };
    const char *const bad4[] = { "NOVALUE" };
    const char *const bad5[] = { "=x" };
    char            **env;

    env = kap_cli_env_build(pool, "/run/h/call-1", NULL, tool, 2, &e);
    ok(env != NULL, "built: %s", e.msg);
    is_str(get(env, "HOME"), "/run/h/call-1", "HOME is the per-call home");
    is_str(get(env, "GH_CONFIG_DIR"), "/run/h/call-1/.config/gh",
           "gh's config dir inside it");
    is_str(get(env, "XDG_DATA_HOME"), "/run/h/call-1/.local/share",
           "XDG data (gh extensions) inside it");
    is_str(get(env, "DOCKER_CONFIG"), "/run/h/call-1/.docker",
           "docker's config (plugins, aliases) inside it");
    is_str(get(env, "PATH"), KAP_CLI_PATH, "a fixed PATH");
    is_str(get(env, "GH_EDITOR"), "/bin/false", "no editor");
    is_str(get(env, "BROWSER"), "/bin/false", "no browser");
    is_str(get(env, "GH_PAGER"), "cat", "no pager");
    is_str(get(env, "GIT_CONFIG_GLOBAL"), "/dev/null", "no global git config");
    is_str(get(env, "GIT_CONFIG_KEY_0"), "core.fsmonitor", "fsmonitor...");
    is_str(get(env, "GIT_CONFIG_VALUE_0"), "false", "...off");
    is_str(get(env, "GIT_CONFIG_KEY_1"), "core.hooksPath", "hooks...");
    is_str(get(env, "GIT_CONFIG_VALUE_1"), "/dev/null", "...nowhere");
    is_str(get(env, "GIT_CONFIG_COUNT"), "5", "all five settings counted");
    ok(get(env, "HTTPS_PROXY") == NULL, "no proxy variables without a proxy");
    is_str(get(env, "GH_TOKEN"), "s3cret", "the tool's credential is set");
    is_str(get(env, "FOO"), "a=b", "a value may hold '='");
    is_int(count(env, "HOME"), 1, "every name once");

    env = kap_cli_env_build(pool, "/h", "http://127.0.0.1:3128", NULL, 0, &e);
    is_str(get(env, "HTTPS_PROXY"), "http://127.0.0.1:3128",
           "HTTPS_PROXY is kapd's egress listener");
    is_str(get(env, "http_proxy"), "http://127.0.0.1:3128",
           "and the lower-case form");
    ok(get(env, "NO_PROXY") == NULL, "nothing is exempt from the proxy");

    memset(&e, 0, sizeof(e));
    ok(kap_cli_env_build(pool, "/h", NULL, bad1, 1, &e) == NULL
       && strstr(e.msg, "HOME") != NULL, "a tool cannot set HOME: %s", e.msg);
    memset(&e, 0, sizeof(e));
    ok(kap_cli_env_build(pool, "/h", NULL, bad2, 1, &e) == NULL,
       "nor undo git's hardening: %s", e.msg);
    memset(&e, 0, sizeof(e));
    ok(kap_cli_env_build(pool, "/h", NULL, bad3, 1, &e) == NULL,
       "nor preload a library: %s", e.msg);
    memset(&e, 0, sizeof(e));
    ok(kap_cli_env_build(pool, "/h", NULL, bad4, 1, &e) == NULL,
       "an entry without '=' is refused: %s", e.msg);
    memset(&e, 0, sizeof(e));
    ok(kap_cli_env_build(pool, "/h", NULL, bad5, 1, &e) == NULL,
       "an empty name is refused");
    ok(kap_cli_env_reserved("HTTPS_PROXY") && kap_cli_env_reserved("PAGER")
       && kap_cli_env_reserved("GIT_CONFIG_KEY_7")
       && !kap_cli_env_reserved("GH_TOKEN")
       && !kap_cli_env_reserved("AWS_ACCESS_KEY_ID"),
       "reserved names: isolation ones, not credentials");
    kap_pool_destroy(pool);
}

static void
test_home(void)
{
    struct kap_pool *pool = kap_pool_create();
    struct kap_err   e = { 0 };
    char             parent[] = "/tmp/kap-cli-home-XXXXXX";
    char             outside[] = "/tmp/kap-cli-out-XXXXXX";
    char            *home, *a, *b, *p;
    struct stat      st;
    int              fd;

    ok(mkdtemp(parent) != NULL && mkdtemp(outside) != NULL, "dirs");
    home = kap_cli_home_make(pool, parent, &e);
    ok(home != NULL && strncmp(home, parent, strlen(parent)) == 0,
       "a home under the parent: %s", home != NULL ? home : e.msg);
    if (home == NULL)
        return;
    ok(stat(home, &st) == 0 && (st.st_mode & 0777) == 0700, "mode 0700");
    p = kap_psprintf(pool, "%s/.config/gh", home);
    ok(stat(p, &st) == 0 && S_ISDIR(st.st_mode), "gh's config dir exists");
    b = kap_cli_home_make(pool, parent, &e);
    ok(b != NULL && strcmp(b, home) != 0, "each call its own home");

    /* What a tool leaves: files, and a link to something outside. */
    a = kap_psprintf(pool, "%s/.config/gh/hosts.yml", home);
    fd = open(a, O_WRONLY | O_CREAT, 0600);
    ok(fd >= 0 && write(fd, "x", 1) == 1, "a file in the home");
    if (fd >= 0)
        close(fd);
    a = kap_psprintf(pool, "%s/keep", outside);
    fd = open(a, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
    p = kap_psprintf(pool, "%s/link", home);
    ok(symlink(outside, p) == 0, "a link to a directory outside");
    is_int(kap_cli_home_remove(home), KAP_OK, "removed");
    ok(stat(home, &st) != 0, "the home is gone");
    ok(stat(a, &st) == 0, "the link's target was not followed");
    is_int(kap_cli_home_remove(b), KAP_OK, "the other one too");
    ok(kap_cli_home_make(pool, "/nonexistent/kap", &e) == NULL
       && strstr(e.msg, "/nonexistent/kap") != NULL,
       "a missing parent is an error: %s", e.msg);
    unlink(a);
    rmdir(outside);
    rmdir(parent);
    kap_pool_destroy(pool);
}

int
main(void)
{
    test_build();
    test_home();
    return done_testing();
}
