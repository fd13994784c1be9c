/*
 * kap_mcp_refresh.c -- `kap-mcp refresh` as a child of kapd, reaped by
 * ev_child (kap_mcp_refresh.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_module.h>

#include "kap_mcp_refresh.h"
#include "kap_mcp_token.h"

#ifndef KAP_MCP_HELPER
#define KAP_MCP_HELPER "/usr/local/libexec/kapd/kap-mcp"
#endif

extern char **environ;

struct kap_mcp_refresh {
    ev_child             child;
    kap_mcp_refresh_done done;
    void                *data;
    int                  cancelled;
};

static void
kap_mcp_refresh_exited(struct ev_loop *loop, ev_child *w, int revents)
{
    struct kap_mcp_refresh *r = w->data;
    int ok = WIFEXITED(w->rstatus) && WEXITSTATUS(w->rstatus) == 0;

    (void)revents;
    ev_child_stop(loop, w);
    if (!r->cancelled)
        r->done(ok, r->data);
    free(r);
}

/* environ with KAP_AUTH_DIR=dir in place of any other (heap array;
   strings borrowed but the one built into kv) */
static char **
kap_mcp_refresh_env(const char *kv)
{
    size_t n = 0, i, o = 0;
    char **e;

    while (environ[n] != NULL)
        n++;
    if ((e = calloc(n + 2, sizeof(*e))) == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        if (strncmp(environ[i], "KAP_AUTH_DIR=", 13) != 0)
            e[o++] = environ[i];
    e[o++] = (char *)kv;
    e[o] = NULL;
    return e;
}

static int
kap_mcp_refresh_spawn(pid_t *pid, const char *helper, char *const argv[],
                      char *const envp[], struct kap_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    int rc;

    if (posix_spawn_file_actions_init(&fa) != 0)
        return KAP_ERROR;
    if (posix_spawnattr_init(&at) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return KAP_ERROR;
    }
    sigemptyset(&none);
    sigfillset(&all);
    /* nothing to read, nothing to say on stdout; stderr stays kapd's */
    rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null",
                                              O_WRONLY, 0);
    if (rc == 0)
        rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK
                                      | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&at, &none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &all);
    if (rc == 0)
        rc = posix_spawn(pid, helper, &fa, &at, argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        kap_err_set(err, "mcp: cannot run %s: %s", helper, strerror(rc));
        return KAP_ERROR;
    }
    return KAP_OK;
}

struct kap_mcp_refresh *
kap_mcp_refresh_start(struct ev_loop *loop, const char *helper,
                      const char *dir, const char *name, const char *stale,
                      kap_mcp_refresh_done done, void *data,
                      struct kap_err *err)
{
    char hex[KAP_MCP_TOKEN_HEX + 1], kv[PATH_MAX + 16], nm[128];
    char *argv[6], **envp;
    struct kap_mcp_refresh *r;
    pid_t pid;
    int n = 0;

    if (helper == NULL)
        helper = getenv("KAP_MCP");
    if (helper == NULL || helper[0] == '\0')
        helper = KAP_MCP_HELPER;
    if ((size_t)snprintf(kv, sizeof(kv), "KAP_AUTH_DIR=%s", dir)
            >= sizeof(kv)
        || (size_t)snprintf(nm, sizeof(nm), "%s", name) >= sizeof(nm)
        || (stale != NULL && kap_mcp_token_digest(stale, hex) != KAP_OK)) {
        kap_err_set(err, "mcp: cannot refresh %.64s: bad name or directory",
                    name);
        return NULL;
    }
    argv[n++] = (char *)helper;
    argv[n++] = (char *)"refresh";
    argv[n++] = nm;
    if (stale != NULL) {
        argv[n++] = (char *)"--stale";
        argv[n++] = hex;
    }
    argv[n] = NULL;
    if ((r = calloc(1, sizeof(*r))) == NULL
        || (envp = kap_mcp_refresh_env(kv)) == NULL) {
        free(r);
        kap_err_set(err, "mcp: out of memory");
        return NULL;
    }
    if (kap_mcp_refresh_spawn(&pid, helper, argv, envp, err) != KAP_OK) {
        free(envp);
        free(r);
        return NULL;
    }
    free(envp);
    r->done = done;
    r->data = data;
    ev_child_init(&r->child, kap_mcp_refresh_exited, pid, 0);
    r->child.data = r;
    ev_child_start(loop, &r->child);
    return r;
}

void
kap_mcp_refresh_cancel(struct kap_mcp_refresh *r)
{
    if (r != NULL)
        r->cancelled = 1;
}

int
kap_mcp_refresh_pid(const struct kap_mcp_refresh *r)
{
    return r->child.pid;
}
