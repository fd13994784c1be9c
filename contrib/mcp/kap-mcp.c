/*
 * kap-mcp.c -- the host helper behind `kap mcp` (kap(1), docs/design/
 * mcp-oauth.md):
 *
 *   kap-mcp add NAME URL [--reauth]   register a server without headers:
 *       probe URL (then URL/mcp); a 401 starts the OAuth 2.1 flow, whose
 *       tokens are written to the registration; an open server is
 *       registered as it is; then initialize + tools/list, the tools and
 *       a kap.conf snippet printed
 *   kap-mcp check NAME                initialize + tools/list with the
 *       registration's headers (${VAR} from this environment)
 *   kap-mcp pin NAME [--accept]        the server's tools against the pins
 *       kapd keeps (NAME.pins.json): changed ones shown, --accept pins them
 *   kap-mcp missing KAP.CONF          servers the mcp group names
 *       without a url that nobody registered
 *   kap-mcp agent-config [--base URL] OUT KAPD.CONF...  the agent's
 *       .mcp.json at OUT: an http://127.0.0.1:3129/NAME entry (URL/NAME)
 *       per server configured
 *   kap-mcp refresh NAME [--stale SHA256 | --force]
 *       refresh an OAuth registration's token when it is near expiry (or
 *       still the stale one, or always), under the registration's lock
 *
 * The registrations live in KAP_AUTH_DIR, default ~/.kap/auth (0700),
 * one NAME.json each (0600), written atomically.  No token is printed.
 * Exit: 0 done, 1 failed, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_module.h>
#include <kapd/kap_pool.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_cli.h"
#include "kap_mcp_oauth.h"
#include "kap_mcp_reg.h"
#include "kap_mcp_token.h"

static int
usage(void)
{
    fputs("usage: kap-mcp add NAME URL [--reauth]\n"
          "       kap-mcp check NAME\n"
          "       kap-mcp refresh NAME [--stale SHA256 | --force]\n"
          "       kap-mcp pin NAME [--accept]\n"
          "       kap-mcp missing KAP.CONF\n"
          "       kap-mcp agent-config [--base URL] OUT KAPD.CONF...\n", stderr);
    return 2;
}

static int
auth_dir(char *out, size_t outlen, int create)
{
    const char *d = getenv("KAP_AUTH_DIR"), *home = getenv("HOME");
    struct stat st;
    int n;

    if (d != NULL && d[0] != '\0')
        n = snprintf(out, outlen, "%s", d);
    else if (home != NULL && home[0] != '\0')
        n = snprintf(out, outlen, "%s/.kap/auth", home);
    else
        n = -1;
    if (n < 0 || (size_t)n >= outlen) {
        mcpc_warn("neither KAP_AUTH_DIR nor HOME is set");
        return KAP_ERROR;
    }
    if (create && d == NULL) {
        char kap[PATH_MAX];
        snprintf(kap, sizeof(kap), "%s/.kap", home);
        (void)mkdir(kap, 0700);
    }
    if (create)
        (void)mkdir(out, 0700);
    if (lstat(out, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()
        || (create && (st.st_mode & 077) != 0 && chmod(out, 0700) != 0)) {
        mcpc_warn("cannot use %s (a directory of yours, mode 0700)", out);
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
name_ok(const char *n)
{
    size_t i;

    if (n[0] == '\0' || strlen(n) > KAP_MCP_REG_MAX_NAME || n[0] == '-'
        || n[0] == '_')
        return 0;
    for (i = 0; n[i] != '\0'; i++)
        if (!((n[i] >= 'a' && n[i] <= 'z') || (n[i] >= 'A' && n[i] <= 'Z')
              || (n[i] >= '0' && n[i] <= '9') || n[i] == '-' || n[i] == '_'))
            return 0;
    return 1;
}

/* a registration without credentials: { name, upstream } */
static int
write_open(const char *dir, const char *name, const char *url,
           struct kap_err *err)
{
    struct kap_buf b = { 0 }, file = { 0 };
    struct kap_json_writer w;
    int rc = KAP_ERROR;

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "name");
    kap_json_w_str(&w, name);
    kap_json_w_key(&w, "upstream");
    kap_json_w_str(&w, url);
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK || kap_buf_append(&b, "\n", 1)
        != KAP_OK || kap_buf_printf(&file, "%s.json", name) != KAP_OK)
        kap_err_set(err, "out of memory");
    else
        rc = kap_mcp_reg_write_text(dir, file.data, b.data, b.len, err);
    kap_buf_free(&b);
    kap_buf_free(&file);
    return rc;
}

/* URL with its query hidden (a key may sit there) */
static void
url_shown(const char *url, char *out, size_t outlen)
{
    size_t n = strcspn(url, "?#");

    snprintf(out, outlen, "%.*s%s", (int)(n > 4000 ? 4000 : n), url,
             url[n] != '\0' ? "?[hidden]" : "");
}

static void
snippet(const char *name)
{
    mcpc_say("add it to kap.conf, with the tools the agent may call:");
    mcpc_say("  mcp: { servers = ( { name = \"%s\"; allow = [\"*\"]; } ); };",
             name);
}

/* probe url, then url/mcp: the one that answers initialize (any status
   but 404/405) in *used; *status and *www_auth from its answer */
static int
probe(const char *url, char **used, long *status, char **www_auth,
      struct kap_err *err)
{
    struct kap_buf alt = { 0 };
    struct kap_err e1 = { 0 }, e2 = { 0 };
    size_t n = strcspn(url, "?#");
    int rc;

    *used = NULL;
    rc = mcpc_verify(url, NULL, 0, status, www_auth, NULL, &e1);
    if (rc == KAP_OK || *status == 401) {
        *used = strdup(url);
        return rc == KAP_OK ? KAP_OK : KAP_DECLINED;
    }
    if ((*status == 404 || *status == 405) && url[n] == '\0'
        && (n < 4 || strcmp(url + n - 4, "/mcp") != 0)
        && kap_buf_printf(&alt, "%s%smcp", url,
                          url[n - 1] == '/' ? "" : "/") == KAP_OK) {
        free(*www_auth);
        *www_auth = NULL;
        rc = mcpc_verify(alt.data, NULL, 0, status, www_auth, NULL, &e2);
        if (rc == KAP_OK || *status == 401) {
            *used = alt.data;
            return rc == KAP_OK ? KAP_OK : KAP_DECLINED;
        }
        kap_buf_free(&alt);
    }
    kap_err_set(err, "%s is not an MCP server kap can reach: %s", url,
                e1.msg);
    return KAP_ERROR;
}

static int
cmd_add(int argc, char **argv)
{
    char dir[PATH_MAX], path[PATH_MAX], shown[4200], hdr[8300];
    const char *name, *url, *h[2];
    char *used = NULL, *www = NULL;
    struct kap_err err = { 0 };
    struct mcpc_oauth o = { 0 };
    struct kap_mcp_oauth_reg r;
    long status = 0;
    int reauth = 0, i, rc = 1, pr;

    if (argc < 2)
        return usage();
    name = argv[0];
    url = argv[1];
    for (i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--reauth") == 0)
            reauth = 1;
        else
            return usage();
    }
    if (!name_ok(name)) {
        mcpc_warn("bad server name (letters, digits, '-' and '_')");
        return 2;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        mcpc_warn("the URL must start with http:// or https://");
        return 2;
    }
    if (auth_dir(dir, sizeof(dir), 1) != KAP_OK)
        return 1;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.json", dir, name)
        >= sizeof(path)) {
        mcpc_warn("%s: path too long", dir);
        return 1;
    }
    url_shown(url, shown, sizeof(shown));
    if (access(path, F_OK) == 0 && !reauth) {
        mcpc_say("%s is already registered.", name);
        mcpc_say("To replace it: kap mcp add %s URL ... --reauth", name);
        return 0;
    }
    pr = probe(url, &used, &status, &www, &err);
    if (pr == KAP_ERROR) {
        mcpc_warn("%s", err.msg);
        goto out;
    }
    if (strcmp(used, url) != 0)
        mcpc_say("%s answers at %s/mcp: registering that", shown, shown);
    url_shown(used, shown, sizeof(shown));
    if (pr == KAP_OK) {
        /* answered without credentials */
        if (write_open(dir, name, used, &err) != KAP_OK) {
            mcpc_warn("%s", err.msg);
            goto out;
        }
        mcpc_say("registered %s: %s (%s), no credentials needed", name,
                 shown, path);
        h[0] = NULL;
    } else {
        if (mcpc_oauth_run(used, www, &o, &err) != KAP_OK) {
            mcpc_warn("OAuth: %s", err.msg);
            goto out;
        }
        memset(&r, 0, sizeof(r));
        r.name = name;
        r.upstream = used;
        r.access_token = o.access_token;
        r.issuer = o.issuer;
        r.token_endpoint = o.token_endpoint;
        r.client_id = o.client_id;
        r.client_secret = o.client_secret;
        r.refresh_token = o.refresh_token;
        r.resource = o.resource;
        r.scope = o.scope;
        r.expires_at = o.expires_at;
        if (kap_mcp_oauth_write(dir, &r, &err) != KAP_OK) {
            mcpc_warn("%s", err.msg);
            goto out;
        }
        mcpc_say("registered %s: %s (%s), OAuth%s", name, shown, path,
                 o.refresh_token != NULL ? ", refreshable" : "");
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s",
                 o.access_token);
        h[0] = hdr;
        h[1] = NULL;
    }
    if (mcpc_verify(used, h, 1, &status, NULL, NULL, &err) != KAP_OK)
        mcpc_warn("registered, but the check failed: %s", err.msg);
    snippet(name);
    rc = 0;
out:
    kap_secret_wipe(hdr, sizeof(hdr));
    mcpc_oauth_clear(&o);
    free(used);
    free(www);
    return rc;
}

static const char *
env_get(const char *var, void *data)
{
    (void)data;
    return getenv(var);
}

/* A registration loaded with its headers as "K: V" lines. */
struct loaded {
    struct kap_pool   *pool;
    struct kap_mcp_reg reg;
    struct kap_buf     hb[KAP_MCP_REG_MAX_HEADERS];
    const char        *h[KAP_MCP_REG_MAX_HEADERS + 1];
    size_t             n;
};

static void
unload(struct loaded *l)
{
    size_t i;

    for (i = 0; i < l->n; i++) {
        kap_secret_wipe(l->hb[i].data, l->hb[i].cap);
        kap_buf_free(&l->hb[i]);
    }
    if (l->pool != NULL)
        kap_pool_destroy(l->pool);
    memset(l, 0, sizeof(*l));
}

static int
load(const char *dir, const char *name, struct loaded *l)
{
    struct kap_err err = { 0 };
    size_t i;

    memset(l, 0, sizeof(*l));
    if ((l->pool = kap_pool_create()) == NULL)
        return KAP_ERROR;
    if (kap_mcp_reg_load(l->pool, dir, name, env_get, NULL, &l->reg, &err)
        != KAP_OK)
        goto fail;
    for (i = 0; i < l->reg.nheaders; i++) {
        char tmpl[300];
        snprintf(tmpl, sizeof(tmpl), "%s: {}", l->reg.headers[i].name);
        if (kap_secret_header_buf(l->reg.headers[i].value, tmpl, &l->hb[l->n],
                                  &err) != KAP_OK)
            goto fail;
        l->h[l->n] = l->hb[l->n].data;
        l->n++;
    }
    l->h[l->n] = NULL;
    return KAP_OK;
fail:
    mcpc_warn("not checked: %s", err.msg);
    unload(l);
    return KAP_ERROR;
}

/* one check with the registration's headers; *status: initialize's */
static int
check_once(const char *dir, const char *name, long *status)
{
    struct loaded l;
    struct kap_err err = { 0 };
    int rc = KAP_OK;

    *status = 0;
    if (load(dir, name, &l) != KAP_OK)
        return KAP_ERROR;
    if (mcpc_verify(l.reg.upstream, l.h, 1, status, NULL, NULL, &err)
        != KAP_OK) {
        mcpc_warn("%s: the check failed: %s", name, err.msg);
        rc = KAP_ERROR;
    }
    unload(&l);
    return rc;
}

static int
cmd_pin(int argc, char **argv)
{
    char dir[PATH_MAX];
    struct loaded l;
    int rc;

    if (argc < 1 || argc > 2 || !name_ok(argv[0])
        || (argc == 2 && strcmp(argv[1], "--accept") != 0))
        return usage();
    if (auth_dir(dir, sizeof(dir), 0) != KAP_OK
        || load(dir, argv[0], &l) != KAP_OK)
        return 1;
    rc = mcpc_pin(dir, argv[0], argc == 2, l.h, l.reg.upstream);
    unload(&l);
    return rc;
}

/* the digest of an OAuth registration's access token (KAP_ERROR: not
   an OAuth registration) */
static int
token_digest(const char *dir, const char *name,
             char hex[KAP_MCP_TOKEN_HEX + 1])
{
    struct kap_json *tree;
    struct kap_mcp_oauth_reg r;
    int rc;

    if (kap_mcp_oauth_read(dir, name, &tree, &r, NULL) != KAP_OK)
        return KAP_ERROR;
    rc = kap_mcp_token_digest(r.access_token, hex);
    kap_mcp_oauth_free(tree);
    return rc;
}

static int
cmd_check(int argc, char **argv)
{
    char dir[PATH_MAX], hex[KAP_MCP_TOKEN_HEX + 1];
    struct kap_err err = { 0 };
    long status = 0;
    int did = 0;

    if (argc != 1 || !name_ok(argv[0]))
        return usage();
    if (auth_dir(dir, sizeof(dir), 0) != KAP_OK)
        return 1;
    /* an OAuth token near expiry is refreshed first, a refused one once */
    if (token_digest(dir, argv[0], hex) == KAP_OK
        && kap_mcp_token_refresh(dir, argv[0], KAP_MCP_REFRESH_EXPIRY, NULL,
                                 (long long)time(NULL), mcpc_http_post_form,
                                 NULL, &did, &err) != KAP_OK)
        mcpc_warn("%s", err.msg);
    if (check_once(dir, argv[0], &status) == KAP_OK)
        return 0;
    if (status != 401 || token_digest(dir, argv[0], hex) != KAP_OK)
        return 1;
    if (kap_mcp_token_refresh(dir, argv[0], KAP_MCP_REFRESH_STALE, hex,
                              (long long)time(NULL), mcpc_http_post_form,
                              NULL, &did, &err) != KAP_OK) {
        mcpc_warn("%s", err.msg);
        return 1;
    }
    mcpc_say("%s: the token was refused; refreshed it, checking again",
             argv[0]);
    return check_once(dir, argv[0], &status) == KAP_OK ? 0 : 1;
}

static int
cmd_refresh(int argc, char **argv)
{
    char dir[PATH_MAX];
    struct kap_err err = { 0 };
    enum kap_mcp_refresh_why why = KAP_MCP_REFRESH_EXPIRY;
    const char *stale = NULL;
    int did = 0;

    if (argc < 1 || !name_ok(argv[0]))
        return usage();
    if (argc == 3 && strcmp(argv[1], "--stale") == 0
        && strlen(argv[2]) == KAP_MCP_TOKEN_HEX) {
        why = KAP_MCP_REFRESH_STALE;
        stale = argv[2];
    } else if (argc == 2 && strcmp(argv[1], "--force") == 0) {
        why = KAP_MCP_REFRESH_FORCE;
    } else if (argc != 1) {
        return usage();
    }
    if (auth_dir(dir, sizeof(dir), 0) != KAP_OK)
        return 1;
    if (kap_mcp_token_refresh(dir, argv[0], why, stale,
                              (long long)time(NULL), mcpc_http_post_form,
                              NULL, &did, &err) != KAP_OK) {
        mcpc_warn("%s", err.msg);
        return 1;
    }
    mcpc_say("%s: %s", argv[0], did ? "token refreshed" : "token is current");
    return 0;
}

int
main(int argc, char **argv)
{
    char dir[PATH_MAX];
    int rc;

    if (argc < 2)
        return usage();
    umask(077);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    if (strcmp(argv[1], "add") == 0)
        rc = cmd_add(argc - 2, argv + 2);
    else if (strcmp(argv[1], "check") == 0)
        rc = cmd_check(argc - 2, argv + 2);
    else if (strcmp(argv[1], "refresh") == 0)
        rc = cmd_refresh(argc - 2, argv + 2);
    else if (strcmp(argv[1], "pin") == 0)
        rc = cmd_pin(argc - 2, argv + 2);
    else if (strcmp(argv[1], "missing") == 0 && argc == 3)
        rc = auth_dir(dir, sizeof(dir), 0) == KAP_OK
             ? mcpc_missing(dir, argv[2]) : 1;
    else if (strcmp(argv[1], "agent-config") == 0 && argc >= 6
             && strcmp(argv[2], "--base") == 0)
        rc = mcpc_agent_config(argv[4], argv[3], argv + 5, argc - 5);
    else if (strcmp(argv[1], "agent-config") == 0 && argc >= 4)
        rc = mcpc_agent_config(argv[2], NULL, argv + 3, argc - 3);
    else
        rc = usage();
    curl_global_cleanup();
    return rc;
}
