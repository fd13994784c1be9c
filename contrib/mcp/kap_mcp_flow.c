/*
 * kap_mcp_flow.c -- kap-mcp's OAuth 2.1 authorization code flow
 * (kap_mcp_cli.h, docs/design/mcp-oauth.md): RFC 9728 protected resource
 * metadata (from the 401's WWW-Authenticate, else the well-known path),
 * RFC 8414 authorization server metadata, RFC 7591 dynamic client
 * registration, PKCE S256, state, the resource parameter (RFC 8707), the
 * browser, the loopback callback, the code exchanged for tokens.
 */
#include "config.h"

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_module.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_cli.h"
#include "kap_mcp_oauth.h"
#include "kap_mcp_token.h"

extern char **environ;

#define FLOW_TIMEOUT 300        /* seconds to wait for the browser */

static void
b64url(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    unsigned char tmp[256];
    size_t i, o = 0;
    int len;

    out[0] = '\0';
    if (n > 180 || outlen < 4 * ((n + 2) / 3) + 1)
        return;
    len = EVP_EncodeBlock(tmp, in, (int)n);
    for (i = 0; i < (size_t)len && tmp[i] != '='; i++)
        out[o++] = tmp[i] == '+' ? '-' : tmp[i] == '/' ? '_' : (char)tmp[i];
    out[o] = '\0';
}

int
mcpc_random_b64url(size_t n, char *out, size_t outlen)
{
    unsigned char r[64];

    if (n > sizeof(r) || RAND_bytes(r, (int)n) != 1)
        return KAP_ERROR;
    b64url(r, n, out, outlen);
    return out[0] != '\0' ? KAP_OK : KAP_ERROR;
}

int
mcpc_s256(const char *s, char *out, size_t outlen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1)
        return KAP_ERROR;
    b64url(md, n, out, outlen);
    return out[0] != '\0' ? KAP_OK : KAP_ERROR;
}

void
mcpc_oauth_clear(struct mcpc_oauth *o)
{
    char **s[] = { &o->issuer, &o->token_endpoint, &o->client_id,
                   &o->client_secret, &o->resource, &o->scope,
                   &o->access_token, &o->refresh_token };
    size_t i;

    for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (*s[i] != NULL) {
            kap_secret_wipe(*s[i], strlen(*s[i]));
            free(*s[i]);
        }
    }
    memset(o, 0, sizeof(*o));
}

/* url's scheme://authority in origin, its path (no query) in path */
static int
split_url(const char *url, struct kap_buf *origin, struct kap_buf *path)
{
    const char *a = strstr(url, "://"), *p;
    size_t pl;

    if (a == NULL)
        return KAP_ERROR;
    p = a + 3 + strcspn(a + 3, "/?#");
    pl = strcspn(p, "?#");
    while (pl > 0 && p[pl - 1] == '/')
        pl--;
    return kap_buf_append(origin, url, (size_t)(p - url)) == KAP_OK
           && kap_buf_append(path, p, pl) == KAP_OK ? KAP_OK : KAP_ERROR;
}

/* GET url's JSON: KAP_OK with a 200 answer in r */
static int
get_json(const char *url, struct mcpc_http *r, struct kap_err *err)
{
    static const char *const h[] = { "Accept: application/json", NULL };

    if (mcpc_http("GET", url, h, NULL, r, err) != KAP_OK)
        return KAP_ERROR;
    if (r->status != 200) {
        kap_err_set(err, "GET %s: HTTP %ld", url, r->status);
        mcpc_http_free(r);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* the well-known URL origin + wk + path */
static char *
well_known(const char *url, const char *wk, int with_path)
{
    struct kap_buf o = { 0 }, p = { 0 }, u = { 0 };

    if (split_url(url, &o, &p) != KAP_OK
        || kap_buf_printf(&u, "%s%s%s", o.data, wk,
                          with_path && p.data ? p.data : "") != KAP_OK) {
        kap_buf_free(&u);
        u.data = NULL;
    }
    kap_buf_free(&o);
    kap_buf_free(&p);
    return u.data;
}

/* 1 when resource names url: the same, or a prefix ending at a '/' */
static int
resource_covers(const char *resource, const char *url)
{
    size_t n = strlen(resource);

    while (n > 0 && resource[n - 1] == '/')
        n--;
    return strncmp(resource, url, n) == 0
           && (url[n] == '\0' || url[n] == '/' || url[n] == '?');
}

static int
discover_prm(const char *url, const char *www_auth, struct kap_mcp_prm *prm,
             struct kap_err *err)
{
    char rm[KAP_MCP_URL_MAX];
    char *cand[3] = { NULL, NULL, NULL };
    struct mcpc_http r;
    struct kap_err e2 = { 0 };
    size_t i;
    int rc = KAP_ERROR;

    if (www_auth != NULL
        && kap_mcp_www_auth_param(www_auth, "resource_metadata", rm,
                                  sizeof(rm)) == KAP_OK) {
        if (!kap_mcp_url_safe(rm)) {
            kap_err_set(err, "the server's resource_metadata URL is not "
                        "https://");
            return KAP_ERROR;
        }
        cand[0] = strdup(rm);
    } else {
        cand[0] = well_known(url, "/.well-known/oauth-protected-resource", 1);
        cand[1] = well_known(url, "/.well-known/oauth-protected-resource", 0);
    }
    for (i = 0; i < 2 && cand[i] != NULL && rc != KAP_OK; i++) {
        if (get_json(cand[i], &r, &e2) != KAP_OK)
            continue;
        rc = kap_mcp_prm_parse(r.body.data, r.body.len, prm, err);
        mcpc_http_free(&r);
        if (rc == KAP_OK && !resource_covers(prm->resource, url)) {
            kap_err_set(err, "the protected resource metadata is for %.200s, "
                        "not for %.200s", prm->resource, url);
            kap_mcp_prm_clear(prm);
            rc = KAP_ERROR;
            break;
        }
    }
    if (rc != KAP_OK)
        kap_err_set(err, "no OAuth protected resource metadata for %.200s "
                    "(%s); if it takes a key, register it with --header",
                    url, e2.set ? e2.msg : "none found");
    for (i = 0; i < 3; i++)
        free(cand[i]);
    return rc;
}

static int
discover_asm(const char *issuer, struct kap_mcp_asm *as, struct kap_err *err)
{
    char *cand[3];
    struct mcpc_http r;
    struct kap_err e2 = { 0 };
    struct kap_buf o = { 0 };
    size_t i;
    int rc = KAP_ERROR;

    cand[0] = well_known(issuer, "/.well-known/oauth-authorization-server", 1);
    cand[1] = well_known(issuer, "/.well-known/openid-configuration", 1);
    cand[2] = kap_buf_printf(&o, "%s/.well-known/openid-configuration",
                             issuer) == KAP_OK ? o.data : NULL;
    for (i = 0; i < 3 && rc != KAP_OK; i++) {
        if (cand[i] == NULL || get_json(cand[i], &r, &e2) != KAP_OK)
            continue;
        rc = kap_mcp_asm_parse(r.body.data, r.body.len, issuer, as, err);
        mcpc_http_free(&r);
        if (rc != KAP_OK)
            break;              /* found, but not acceptable */
    }
    if (rc != KAP_OK)
        kap_err_set(err, "no authorization server metadata for %.200s (%s)",
                    issuer, e2.set ? e2.msg : "none found");
    for (i = 0; i < 3; i++)
        free(cand[i]);
    return rc;
}

static int
do_register(const struct kap_mcp_asm *as, const char *redirect,
            struct mcpc_oauth *o, struct kap_err *err)
{
    static const char *const h[] = { "Content-Type: application/json",
                                     "Accept: application/json", NULL };
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    struct mcpc_http r;
    int rc = KAP_ERROR;

    if (as->registration_endpoint == NULL) {
        kap_err_set(err, "the authorization server offers no dynamic client "
                    "registration (RFC 7591): register a client there and "
                    "pass its token with --header Authorization");
        return KAP_ERROR;
    }
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "client_name");
    kap_json_w_str(&w, "kap");
    kap_json_w_key(&w, "redirect_uris");
    kap_json_w_arr_begin(&w);
    kap_json_w_str(&w, redirect);
    kap_json_w_arr_end(&w);
    kap_json_w_key(&w, "grant_types");
    kap_json_w_arr_begin(&w);
    kap_json_w_str(&w, "authorization_code");
    kap_json_w_str(&w, "refresh_token");
    kap_json_w_arr_end(&w);
    kap_json_w_key(&w, "response_types");
    kap_json_w_arr_begin(&w);
    kap_json_w_str(&w, "code");
    kap_json_w_arr_end(&w);
    kap_json_w_key(&w, "token_endpoint_auth_method");
    kap_json_w_str(&w, "none");
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK) {
        kap_buf_free(&b);
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    if (mcpc_http("POST", as->registration_endpoint, h, b.data, &r, err)
        == KAP_OK) {
        if (r.status == 200 || r.status == 201)
            rc = kap_mcp_dcr_parse(r.body.data, r.body.len, &o->client_id,
                                   &o->client_secret, err);
        else
            kap_err_set(err, "the client registration was refused (HTTP "
                        "%ld)", r.status);
        mcpc_http_free(&r);
    }
    kap_buf_free(&b);
    return rc;
}

/* the browser: KAP_OPEN, else BROWSER, else xdg-open or open on PATH */
static void
open_browser(const char *url)
{
    const char *cmd = getenv("KAP_OPEN");
    char *argv[3];
    pid_t pid;

    if (cmd == NULL || cmd[0] == '\0')
        cmd = getenv("BROWSER");
    if (cmd == NULL || cmd[0] == '\0')
        cmd = access("/usr/bin/xdg-open", X_OK) == 0 ? "xdg-open"
              : access("/usr/bin/open", X_OK) == 0 ? "open" : NULL;
    if (cmd == NULL)
        return;
    argv[0] = (char *)cmd;
    argv[1] = (char *)url;
    argv[2] = NULL;
    if (posix_spawnp(&pid, cmd, NULL, NULL, argv, environ) != 0)
        mcpc_warn("could not start %s: open the URL by hand", cmd);
}

static int
auth_url(const struct kap_mcp_asm *as, const struct mcpc_oauth *o,
         const char *redirect, const char *challenge, const char *state,
         struct kap_buf *u)
{
    const char *sep = strchr(as->authorization_endpoint, '?') ? "&" : "?";

    if (kap_buf_printf(u, "%s%sresponse_type=code&client_id=",
                       as->authorization_endpoint, sep) != KAP_OK
        || kap_mcp_form_escape(u, o->client_id) != KAP_OK
        || kap_buf_append(u, "&redirect_uri=", 14) != KAP_OK
        || kap_mcp_form_escape(u, redirect) != KAP_OK
        || kap_buf_append(u, "&code_challenge=", 16) != KAP_OK
        || kap_mcp_form_escape(u, challenge) != KAP_OK
        || kap_buf_append(u, "&code_challenge_method=S256&state=", 34)
           != KAP_OK
        || kap_mcp_form_escape(u, state) != KAP_OK
        || kap_buf_append(u, "&resource=", 10) != KAP_OK
        || kap_mcp_form_escape(u, o->resource) != KAP_OK)
        return KAP_ERROR;
    if (o->scope != NULL
        && (kap_buf_append(u, "&scope=", 7) != KAP_OK
            || kap_mcp_form_escape(u, o->scope) != KAP_OK))
        return KAP_ERROR;
    return KAP_OK;
}

static int
exchange(const char *code, const char *verifier, const char *redirect,
         struct mcpc_oauth *o, struct kap_err *err)
{
    struct kap_buf f = { 0 }, body = { 0 };
    struct kap_mcp_token t;
    long status = 0;
    int rc = KAP_ERROR;

    if (kap_buf_append(&f, "grant_type=authorization_code&code=", 35)
            != KAP_OK
        || kap_mcp_form_escape(&f, code) != KAP_OK
        || kap_buf_append(&f, "&redirect_uri=", 14) != KAP_OK
        || kap_mcp_form_escape(&f, redirect) != KAP_OK
        || kap_buf_append(&f, "&client_id=", 11) != KAP_OK
        || kap_mcp_form_escape(&f, o->client_id) != KAP_OK
        || kap_buf_append(&f, "&code_verifier=", 15) != KAP_OK
        || kap_mcp_form_escape(&f, verifier) != KAP_OK
        || kap_buf_append(&f, "&resource=", 10) != KAP_OK
        || kap_mcp_form_escape(&f, o->resource) != KAP_OK
        || (o->client_secret != NULL
            && (kap_buf_append(&f, "&client_secret=", 15) != KAP_OK
                || kap_mcp_form_escape(&f, o->client_secret) != KAP_OK))) {
        kap_err_set(err, "out of memory");
        goto out;
    }
    if (mcpc_http_post_form(o->token_endpoint, f.data, &body, &status, NULL,
                            err) != KAP_OK)
        goto out;
    if (status != 200) {
        kap_err_set(err, "the token endpoint refused the code (HTTP %ld)",
                    status);
        goto out;
    }
    if (kap_mcp_token_parse(body.data, body.len, &t, err) != KAP_OK)
        goto out;
    o->access_token = t.access_token;
    o->refresh_token = t.refresh_token;
    t.access_token = t.refresh_token = NULL;
    if (t.scope != NULL) {
        free(o->scope);
        o->scope = t.scope;
        t.scope = NULL;
    }
    o->expires_at = t.expires_in >= 0 ? (long long)time(NULL) + t.expires_in
                                       : 0;
    kap_mcp_token_clear(&t);
    rc = KAP_OK;
out:
    if (f.data != NULL)
        kap_secret_wipe(f.data, f.cap);
    if (body.data != NULL)
        kap_secret_wipe(body.data, body.cap);
    kap_buf_free(&f);
    kap_buf_free(&body);
    return rc;
}

int
mcpc_oauth_run(const char *url, const char *www_auth, struct mcpc_oauth *o,
               struct kap_err *err)
{
    struct kap_mcp_prm prm = { 0 };
    struct kap_mcp_asm as = { 0 };
    struct mcpc_cb cb = { -1, 0 };
    struct kap_buf u = { 0 };
    char redirect[64], verifier[64], challenge[64], state[64], code[2048];
    const char *tmo = getenv("KAP_MCP_TIMEOUT");
    int timeout = tmo != NULL && tmo[0] >= '1' && tmo[0] <= '9'
                  ? (int)strtol(tmo, NULL, 10) : FLOW_TIMEOUT;
    int rc = KAP_ERROR;

    memset(o, 0, sizeof(*o));
    if (discover_prm(url, www_auth, &prm, err) != KAP_OK
        || discover_asm(prm.auth_server, &as, err) != KAP_OK
        || mcpc_cb_open(&cb, err) != KAP_OK)
        goto out;
    snprintf(redirect, sizeof(redirect), "http://127.0.0.1:%d/callback",
             cb.port);
    o->issuer = strdup(as.issuer);
    o->token_endpoint = strdup(as.token_endpoint);
    o->resource = strdup(prm.resource);
    o->scope = prm.scope != NULL ? strdup(prm.scope) : NULL;
    if (o->issuer == NULL || o->token_endpoint == NULL || o->resource == NULL
        || do_register(&as, redirect, o, err) != KAP_OK)
        goto out;
    if (mcpc_random_b64url(32, verifier, sizeof(verifier)) != KAP_OK
        || mcpc_s256(verifier, challenge, sizeof(challenge)) != KAP_OK
        || mcpc_random_b64url(16, state, sizeof(state)) != KAP_OK
        || auth_url(&as, o, redirect, challenge, state, &u) != KAP_OK) {
        kap_err_set(err, "out of memory or no randomness");
        goto out;
    }
    mcpc_say("Authorize kap in your browser (waiting up to %d s):", timeout);
    mcpc_say("  %s", u.data);
    open_browser(u.data);
    if (mcpc_cb_wait(&cb, state, timeout, code, sizeof(code), err) != KAP_OK)
        goto out;
    mcpc_cb_close(&cb);
    rc = exchange(code, verifier, redirect, o, err);
    kap_secret_wipe(code, sizeof(code));
out:
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    mcpc_cb_close(&cb);
    kap_buf_free(&u);
    kap_mcp_prm_clear(&prm);
    kap_mcp_asm_clear(&as);
    kap_secret_wipe(verifier, sizeof(verifier));
    if (rc != KAP_OK)
        mcpc_oauth_clear(o);
    return rc;
}
