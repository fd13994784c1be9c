/*
 * kap_mcp_tokens.c -- OAuth registrations' tokens kept fresh for the
 * mcp module (kap_mcp_mod.h; docs/design/mcp-oauth.md).
 *
 * Per server (name and auth_dir), process state that outlives reloads:
 * the refresh under way (kap_mcp_refresh_start(): `kap-mcp refresh` as a
 * child, so the event loop never waits on the lock or the token
 * endpoint) and, once one finished, the registration's headers read
 * again into a pool of their own, used instead of the generation's.  A
 * request to a server whose token is within the margin of expiry starts
 * a refresh and goes on with the token it has; a 401 starts one (at
 * most one at a time per server) with the refused token as the stale
 * one, and the request waits for it (kap_mcp_tokens_wait()) to be sent
 * again once with the new token.  Freed at shutdown.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kapd/kap_core.h>
#include <kapd/kap_log.h>
#include <kapd/kap_module.h>
#include <kapd/kap_pool.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_mod.h"
#include "kap_mcp_refresh.h"
#include "kap_mcp_token.h"

/* a request waiting for the refresh (in the exchange's pool) */
struct tok_wait {
    struct tok        *t;              /* NULL once called or dropped */
    kap_mcp_tokens_fn  fn;
    void              *data;
    struct tok_wait   *prev, *next;
};

struct tok {
    char                      *server, *dir;
    struct tok_wait           *waiters;
    struct kap_mcp_refresh    *rf;         /* under way, or NULL */
    struct kap_pool           *pool;       /* the fresh headers' */
    struct kap_mcp_reg_header *headers;
    size_t                     nheaders;
    long long                  expires_at;
    struct tok                *next;
};

static struct tok *toks;

static struct tok *
tok_get(const char *server, const char *dir)
{
    struct tok *t;

    for (t = toks; t != NULL; t = t->next)
        if (strcmp(t->server, server) == 0 && strcmp(t->dir, dir) == 0)
            return t;
    if ((t = calloc(1, sizeof(*t))) == NULL)
        return NULL;
    t->server = strdup(server);
    t->dir = strdup(dir);
    if (t->server == NULL || t->dir == NULL) {
        free(t->server);
        free(t->dir);
        free(t);
        return NULL;
    }
    t->next = toks;
    toks = t;
    return t;
}

static const char *
tok_env(const char *var, void *data)
{
    (void)data;
    return getenv(var);
}

static void
tok_unlink(struct tok_wait *w)
{
    if (w->t == NULL)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        w->t->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->t = NULL;
    w->prev = w->next = NULL;
}

static void
tok_wait_cleanup(void *data)
{
    tok_unlink(data);
}

/* every waiter called once with ok (each may end its own exchange) */
static void
tok_wake(struct tok *t, int ok)
{
    struct tok_wait *w;

    while ((w = t->waiters) != NULL) {
        tok_unlink(w);
        w->fn(ok, w->data);
    }
}

static int
tok_reload(struct tok *t)
{
    struct kap_pool *p;
    struct kap_mcp_reg reg;
    struct kap_err err = { 0 };

    if ((p = kap_pool_create()) == NULL)
        return KAP_ERROR;
    if (kap_mcp_reg_load(p, t->dir, t->server, tok_env, NULL, &reg, &err)
        != KAP_OK) {
        KAP_LOG(KAP_LOG_ERR, KAP_MCP_NAME, 0, "server %s: after the token "
                "refresh: %s", t->server, err.msg);
        kap_pool_destroy(p);
        return KAP_ERROR;
    }
    /* requests render the headers when they start: the old ones are in
       no request's hands */
    if (t->pool != NULL)
        kap_pool_destroy(t->pool);
    t->pool = p;
    t->headers = reg.headers;
    t->nheaders = reg.nheaders;
    t->expires_at = reg.expires_at;
    KAP_LOG(KAP_LOG_INFO, KAP_MCP_NAME, 0, "server %s: OAuth token "
            "refreshed", t->server);
    return KAP_OK;
}

static void
tok_done(int ok, void *data)
{
    struct tok *t = data;

    t->rf = NULL;
    if (!ok)
        KAP_LOG(KAP_LOG_ERR, KAP_MCP_NAME, 0, "server %s: the OAuth token "
                "refresh failed (kap mcp check %s; kap mcp add %s URL "
                "--reauth)", t->server, t->server, t->server);
    else if (tok_reload(t) != KAP_OK)
        ok = 0;
    tok_wake(t, ok);
}

/* the access token in sv's Authorization header (out: wiped by caller) */
static int
tok_seen(const struct kap_mcp_reg_header *h, size_t n, char *out,
         size_t outlen)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcasecmp(h[i].name, "Authorization") == 0
            && kap_secret_header(h[i].value, "{}", out, outlen, NULL)
               == KAP_OK
            && strncmp(out, "Bearer ", 7) == 0) {
            memmove(out, out + 7, strlen(out + 7) + 1);
            return KAP_OK;
        }
    return KAP_ERROR;
}

static void
tok_start(struct tok *t, const char *stale)
{
    struct kap_err err = { 0 };

    if (t->rf != NULL)
        return;                 /* one at a time */
    t->rf = kap_mcp_refresh_start(kap_loop(), NULL, t->dir, t->server,
                                  stale, tok_done, t, &err);
    if (t->rf == NULL)
        KAP_LOG(KAP_LOG_ERR, KAP_MCP_NAME, 0, "server %s: %s", t->server,
                err.msg);
}

void
kap_mcp_tokens_headers(const struct kap_mcp_conf *cf,
                       const struct kap_mcp_server *sv,
                       const struct kap_mcp_reg_header **h, size_t *n)
{
    struct tok *t;
    long long exp = sv->expires_at;

    *h = sv->headers;
    *n = sv->nheaders;
    if (!sv->oauth || cf->auth_dir == NULL
        || (t = tok_get(sv->name, cf->auth_dir)) == NULL)
        return;
    if (t->pool != NULL) {
        *h = t->headers;
        *n = t->nheaders;
        exp = t->expires_at;
    }
    if (exp > 0 && exp - KAP_MCP_TOKEN_MARGIN <= (long long)time(NULL))
        tok_start(t, NULL);     /* near expiry: in the background */
}

int
kap_mcp_tokens_refused(const struct kap_mcp_conf *cf,
                       const struct kap_mcp_server *sv)
{
    const struct kap_mcp_reg_header *h;
    struct tok *t;
    char seen[4200];
    size_t n;

    if (!sv->oauth || cf->auth_dir == NULL
        || (t = tok_get(sv->name, cf->auth_dir)) == NULL)
        return 0;
    h = t->pool != NULL ? t->headers : sv->headers;
    n = t->pool != NULL ? t->nheaders : sv->nheaders;
    if (tok_seen(h, n, seen, sizeof(seen)) == KAP_OK)
        tok_start(t, seen);
    kap_secret_wipe(seen, sizeof(seen));
    return t->rf != NULL;
}

int
kap_mcp_tokens_wait(const struct kap_mcp_conf *cf,
                    const struct kap_mcp_server *sv, struct kap_pool *pool,
                    kap_mcp_tokens_fn fn, void *data)
{
    struct tok_wait *w;
    struct tok *t;

    if (!sv->oauth || cf->auth_dir == NULL
        || (t = tok_get(sv->name, cf->auth_dir)) == NULL || t->rf == NULL)
        return KAP_ERROR;
    if ((w = kap_palloc(pool, sizeof(*w))) == NULL)
        return KAP_ERROR;
    memset(w, 0, sizeof(*w));
    if (kap_pool_cleanup_add(pool, tok_wait_cleanup, w) != KAP_OK)
        return KAP_ERROR;
    w->t = t;
    w->fn = fn;
    w->data = data;
    w->next = t->waiters;
    if (t->waiters != NULL)
        t->waiters->prev = w;
    t->waiters = w;
    return KAP_OK;
}

void
kap_mcp_tokens_clear(void)
{
    struct tok *t;

    while ((t = toks) != NULL) {
        toks = t->next;
        while (t->waiters != NULL)
            tok_unlink(t->waiters);
        kap_mcp_refresh_cancel(t->rf);
        if (t->pool != NULL)
            kap_pool_destroy(t->pool);
        free(t->server);
        free(t->dir);
        free(t);
    }
}
