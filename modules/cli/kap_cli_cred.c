/*
 * kap_cli_cred.c -- the credential proxy's configuration, its socket's
 * mode and the live dummies of running calls.  The requests on the
 * socket are kap_cli_credfwd.c's.  See kap_cli_cred.h.
 */
#define _GNU_SOURCE
#include "config.h"

#include "kap_cli_cred.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_conn.h>
#include <kapd/kap_secret.h>

static const char *const kap_cli_cred_vars[] = { "GH_TOKEN", "GITHUB_TOKEN",
    "GH_ENTERPRISE_TOKEN", "GITHUB_ENTERPRISE_TOKEN", NULL };

int
kap_cli_cred_token_var(const char *name)
{
    size_t i;

    for (i = 0; kap_cli_cred_vars[i] != NULL; i++)
        if (strcmp(name, kap_cli_cred_vars[i]) == 0)
            return 1;
    return 0;
}

/* The value of the tool's (non-secret) variable name, copied to pool. */
static const char *
kap_cli_cred_plain(struct kap_pool *pool, const struct kap_cli_tool *t,
                   const char *name)
{
    char           buf[4096];
    const char    *v = NULL;
    struct kap_err e;
    size_t         i;

    memset(&e, 0, sizeof(e));
    for (i = 0; i < t->nenv; i++)
        if (strcmp(t->env[i].name, name) == 0
            && kap_secret_env(t->env[i].value, name, buf, sizeof(buf), &e)
               == KAP_OK)
            v = kap_pstrdup(pool, buf + strlen(name) + 1);
    kap_secret_wipe(buf, sizeof(buf));
    return v;
}

int
kap_cli_cred_conf(struct kap_gen *gen, struct kap_cli_tool *t, int on,
                  const char *sock, const config_setting_t *at,
                  struct kap_err *err)
{
    struct kap_pool *pool = kap_gen_pool(gen);
    const char      *addr, *name;
    size_t           i, ntok = 0;

    for (i = 0; i < t->nenv; i++)
        if (kap_cli_cred_token_var(t->env[i].name))
            ntok++;
    if (on < 0)
        on = t->mode == KAP_CLI_PROXY && t->profile != NULL
             && strcmp(t->profile->tool, "gh") == 0 && ntok > 0;
    if (!on) {
        if (sock != NULL) {
            kap_err_at(err, at, "cli: tool \"%s\": credential_socket "
                       "without the credential proxy", t->name);
            return KAP_ERROR;
        }
        return KAP_OK;
    }
    if (t->mode != KAP_CLI_PROXY || t->profile == NULL
        || strcmp(t->profile->tool, "gh") != 0) {
        kap_err_at(err, at, "cli: tool \"%s\": credential_proxy is for a "
                   "proxy-mode tool with gh's profile", t->name);
        return KAP_ERROR;
    }
    if (ntok == 0) {
        kap_err_at(err, at, "cli: tool \"%s\": credential_proxy: the env "
                   "holds no token (GH_TOKEN, GITHUB_TOKEN, "
                   "GH_ENTERPRISE_TOKEN, GITHUB_ENTERPRISE_TOKEN)", t->name);
        return KAP_ERROR;
    }
    name = sock != NULL ? sock : kap_psprintf(pool, "cli-%s.sock", t->name);
    t->cred_socket = name != NULL ? kap_conf_path(gen, name) : NULL;
    addr = t->cred_socket != NULL
           ? kap_psprintf(pool, "unix:%s", t->cred_socket) : NULL;
    if (addr == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    if (strlen(t->cred_socket) >= 100) {
        kap_err_at(err, at, "cli: tool \"%s\": the credential socket path "
                   "%s is too long for a unix socket", t->name,
                   t->cred_socket);
        return KAP_ERROR;
    }
    if (kap_listen_add(gen, KAP_CLI_NAME, KAP_LISTEN_TCP, addr, at, err)
        != KAP_OK)
        return KAP_ERROR;
    t->gh_host = kap_cli_cred_plain(pool, t, "GH_HOST");
    t->ca_file = kap_cli_cred_plain(pool, t, "SSL_CERT_FILE");
    t->cred = 1;
    return KAP_OK;
}

int
kap_cli_cred_init(struct kap_gen *gen, void *conf)
{
    const struct kap_cli_conf *cf = conf;
    struct stat                st;
    size_t                     i;

    (void)gen;
    for (i = 0; i < cf->ntools; i++) {
        const char *p = cf->tools[i].cred_socket;
        if (!cf->tools[i].cred || p == NULL)
            continue;
        /* the core bound it (0666 by default): only kapd's user, whose
           child gh is, may connect; a symbolic link is never followed */
        if (lstat(p, &st) != 0 || !S_ISSOCK(st.st_mode)
            || chmod(p, 0600) != 0) {
            KAP_LOG(KAP_LOG_ERR, KAP_CLI_NAME, 0, "tool %s: cannot make the "
                    "credential socket %s private: %s", cf->tools[i].name, p,
                    strerror(errno != 0 ? errno : EINVAL));
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

struct kap_cli_tool *
kap_cli_cred_tool(const struct kap_conn *c)
{
    const struct kap_cli_conf *cf = c->conf;
    const char                *a = c->listen != NULL
                                   ? kap_listen_addr(c->listen) : NULL;
    size_t                     i;

    if (a == NULL || strncmp(a, "unix:", 5) != 0)
        return NULL;
    for (i = 0; i < cf->ntools; i++)
        if (cf->tools[i].cred
            && strcmp(a + 5, cf->tools[i].cred_socket) == 0)
            return &cf->tools[i];
    return NULL;
}

/* ---- live dummies ------------------------------------------------------ */

struct kap_cli_dummy {
    char                  tok[KAP_CLI_DUMMY_LEN + 1];
    char                  tool[72];
    struct kap_cli_dummy *prev, *next;
    int                   linked;
};

static struct kap_cli_dummy *kap_cli_dummies;

void
kap_cli_cred_forget(struct kap_cli_dummy *d)
{
    if (d == NULL || !d->linked)
        return;
    if (d->prev != NULL)
        d->prev->next = d->next;
    else
        kap_cli_dummies = d->next;
    if (d->next != NULL)
        d->next->prev = d->prev;
    d->linked = 0;
    kap_secret_wipe(d->tok, sizeof(d->tok));
}

static void
kap_cli_cred_cleanup(void *data)
{
    kap_cli_cred_forget(data);
}

/* gh's config.yml in the per-call home: the socket, nothing else. */
static int
kap_cli_cred_yml(struct kap_pool *pool, const char *home, const char *sock,
                 struct kap_err *e)
{
    const char *path = kap_psprintf(pool, "%s/.config/gh/config.yml", home);
    const char *txt = kap_psprintf(pool, "http_unix_socket: \"%s\"\n", sock);
    ssize_t     n = -1;
    int         fd;

    if (path == NULL || txt == NULL) {
        kap_err_set(e, "cli: out of memory");
        return KAP_ERROR;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd >= 0) {
        n = write(fd, txt, strlen(txt));
        if (close(fd) != 0)
            n = -1;
    }
    if (n != (ssize_t)strlen(txt)) {
        kap_err_set(e, "cli: cannot write %s: %s", path, strerror(errno));
        return KAP_ERROR;
    }
    return KAP_OK;
}

struct kap_cli_dummy *
kap_cli_cred_begin(struct kap_pool *pool, const struct kap_cli_tool *t,
                   const char *home, char *out, struct kap_err *e)
{
    static const char     hex[] = "0123456789abcdef";
    struct kap_cli_dummy *d;
    unsigned char         rnd[16];
    size_t                i;

    if (strchr(t->cred_socket, '"') != NULL
        || strchr(t->cred_socket, '\\') != NULL) {
        kap_err_set(e, "cli: the credential socket path holds a quote");
        return NULL;
    }
    if (kap_cli_cred_yml(pool, home, t->cred_socket, e) != KAP_OK)
        return NULL;
    d = kap_palloc(pool, sizeof(*d));
    if (d == NULL || kap_pool_cleanup_add(pool, kap_cli_cred_cleanup, d)
                     != KAP_OK) {
        kap_err_set(e, "cli: out of memory");
        return NULL;
    }
    memset(d, 0, sizeof(*d));
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        kap_err_set(e, "cli: getrandom: %s", strerror(errno));
        return NULL;
    }
    memcpy(d->tok, "kapdummy_", 9);
    for (i = 0; i < sizeof(rnd); i++) {
        d->tok[9 + 2 * i] = hex[rnd[i] >> 4];
        d->tok[10 + 2 * i] = hex[rnd[i] & 15];
    }
    d->tok[KAP_CLI_DUMMY_LEN] = '\0';
    snprintf(d->tool, sizeof(d->tool), "%s", t->name);
    d->next = kap_cli_dummies;
    if (d->next != NULL)
        d->next->prev = d;
    kap_cli_dummies = d;
    d->linked = 1;
    memcpy(out, d->tok, KAP_CLI_DUMMY_LEN + 1);
    return d;
}

/* Equal in time that does not depend on where they differ. */
static int
kap_cli_cred_same(const char *a, const char *b, size_t n)
{
    unsigned char d = 0;
    size_t        i;

    for (i = 0; i < n; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int
kap_cli_cred_live(const char *tool, const char *auth)
{
    const struct kap_cli_dummy *d;
    const char                 *tok;
    int                         hit = 0;

    if (strncasecmp(auth, "token ", 6) == 0)
        tok = auth + 6;
    else if (strncasecmp(auth, "bearer ", 7) == 0)
        tok = auth + 7;
    else
        return 0;
    while (*tok == ' ')
        tok++;
    if (strlen(tok) != KAP_CLI_DUMMY_LEN)
        return 0;
    for (d = kap_cli_dummies; d != NULL; d = d->next)
        if (strcmp(d->tool, tool) == 0
            && kap_cli_cred_same(d->tok, tok, KAP_CLI_DUMMY_LEN))
            hit = 1;
    return hit;
}
