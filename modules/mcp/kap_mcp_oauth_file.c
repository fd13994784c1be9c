/*
 * kap_mcp_oauth_file.c -- an OAuth registration read, written atomically
 * and refreshed under a lock shared by processes (kap_mcp_token.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_secret.h>

#include "kap_mcp_token.h"

static void
w_opt(struct kap_json_writer *w, const char *k, const char *v)
{
    if (v != NULL) {
        kap_json_w_key(w, k);
        kap_json_w_str(w, v);
    }
}

/* the registration as JSON text, one member a line (readable by people
   and by kap-shim jsonc) */
static int
oauth_text(const struct kap_mcp_oauth_reg *r, struct kap_buf *b)
{
    struct kap_json_writer w;
    struct kap_buf bearer = { 0 };
    int rc;

    if (kap_buf_printf(&bearer, "Bearer %s", r->access_token) != KAP_OK)
        return KAP_ERROR;
    kap_json_w_init(&w, b);
    kap_json_w_obj_begin(&w);
    w_opt(&w, "name", r->name);
    w_opt(&w, "upstream", r->upstream);
    kap_json_w_key(&w, "headers");
    kap_json_w_obj_begin(&w);
    w_opt(&w, "Authorization", bearer.data);
    kap_json_w_obj_end(&w);
    kap_json_w_key(&w, "oauth");
    kap_json_w_obj_begin(&w);
    w_opt(&w, "issuer", r->issuer);
    w_opt(&w, "token_endpoint", r->token_endpoint);
    w_opt(&w, "client_id", r->client_id);
    w_opt(&w, "client_secret", r->client_secret);
    w_opt(&w, "refresh_token", r->refresh_token);
    w_opt(&w, "resource", r->resource);
    w_opt(&w, "scope", r->scope);
    kap_json_w_key(&w, "expires_at");
    kap_json_w_int(&w, r->expires_at);
    kap_json_w_obj_end(&w);
    kap_json_w_obj_end(&w);
    rc = kap_json_w_finish(&w);
    if (rc == KAP_OK)
        rc = kap_buf_append(b, "\n", 1);
    kap_secret_wipe(bearer.data, bearer.cap);
    kap_buf_free(&bearer);
    return rc;
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return KAP_ERROR;
        p += w;
        n -= (size_t)w;
    }
    return KAP_OK;
}

int
kap_mcp_reg_write_text(const char *dir, const char *file, const char *text,
                       size_t len, struct kap_err *err)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    int fd;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file)
            >= sizeof(path)
        || (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", dir, file,
                            (long)getpid()) >= sizeof(tmp)) {
        kap_err_set(err, "%s: path too long", dir);
        return KAP_ERROR;
    }
    (void)unlink(tmp);         /* left by a process of ours that died */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || write_all(fd, text, len) != KAP_OK
        || fsync(fd) != 0) {
        kap_err_set(err, "cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        (void)unlink(tmp);
        return KAP_ERROR;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        kap_err_set(err, "cannot write %s: %s", path, strerror(errno));
        (void)unlink(tmp);
        return KAP_ERROR;
    }
    return KAP_OK;
}

int
kap_mcp_oauth_write(const char *dir, const struct kap_mcp_oauth_reg *reg,
                    struct kap_err *err)
{
    struct kap_buf b = { 0 }, file = { 0 };
    int rc = KAP_ERROR;

    if (reg->name == NULL || reg->upstream == NULL
        || reg->access_token == NULL) {
        kap_err_set(err, "an OAuth registration needs a name, an upstream "
                    "and a token");
        return KAP_ERROR;
    }
    if (oauth_text(reg, &b) != KAP_OK
        || kap_buf_printf(&file, "%s.json", reg->name) != KAP_OK)
        kap_err_set(err, "out of memory");
    else
        rc = kap_mcp_reg_write_text(dir, file.data, b.data, b.len, err);
    kap_buf_free(&file);
    if (b.data != NULL)
        kap_secret_wipe(b.data, b.cap);
    kap_buf_free(&b);
    return rc;
}

void
kap_mcp_oauth_free(struct kap_json *tree)
{
    const struct kap_json *o;
    const char *s;

    if (tree == NULL)
        return;
    if ((s = kap_json_get_string(kap_json_get(tree, "headers"),
                                 "Authorization")) != NULL)
        kap_secret_wipe((char *)s, strlen(s));
    o = kap_json_get(tree, "oauth");
    if ((s = kap_json_get_string(o, "refresh_token")) != NULL)
        kap_secret_wipe((char *)s, strlen(s));
    if ((s = kap_json_get_string(o, "client_secret")) != NULL)
        kap_secret_wipe((char *)s, strlen(s));
    kap_json_free(tree);
}

int
kap_mcp_oauth_read(const char *dir, const char *name, struct kap_json **tree,
                   struct kap_mcp_oauth_reg *reg, struct kap_err *err)
{
    char path[PATH_MAX];
    struct kap_buf b = { 0 };
    struct kap_err je = { 0 };
    const struct kap_json *o;
    const char *auth;
    int64_t exp = 0;

    *tree = NULL;
    memset(reg, 0, sizeof(*reg));
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.json", dir, name)
        >= sizeof(path)) {
        kap_err_set(err, "%s: path too long", dir);
        return KAP_ERROR;
    }
    if (kap_secret_file_read(path, &b, err) != KAP_OK)
        return KAP_ERROR;
    *tree = kap_json_parse(b.data, b.len, NULL, &je);
    kap_secret_wipe(b.data, b.cap);
    kap_buf_free(&b);
    if (*tree == NULL) {
        kap_err_set(err, "%s is not valid JSON: %s", path,
                    je.set ? je.msg : "out of memory");
        return KAP_ERROR;
    }
    o = kap_json_get(*tree, "oauth");
    auth = kap_json_get_string(kap_json_get(*tree, "headers"),
                               "Authorization");
    reg->name = name;
    reg->upstream = kap_json_get_string(*tree, "upstream");
    reg->issuer = kap_json_get_string(o, "issuer");
    reg->token_endpoint = kap_json_get_string(o, "token_endpoint");
    reg->client_id = kap_json_get_string(o, "client_id");
    reg->client_secret = kap_json_get_string(o, "client_secret");
    reg->refresh_token = kap_json_get_string(o, "refresh_token");
    reg->resource = kap_json_get_string(o, "resource");
    reg->scope = kap_json_get_string(o, "scope");
    if (kap_json_get(o, "expires_at") != NULL
        && kap_json_int(kap_json_get(o, "expires_at"), &exp) != KAP_OK)
        exp = -1;
    reg->expires_at = (long long)exp;
    if (auth != NULL && strncmp(auth, "Bearer ", 7) == 0)
        reg->access_token = auth + 7;
    if (kap_json_type(o) != KAP_JSON_OBJECT || reg->upstream == NULL
        || reg->token_endpoint == NULL || reg->client_id == NULL
        || reg->access_token == NULL || exp < 0) {
        kap_err_set(err, "%s is not an OAuth registration (no oauth member "
                    "with token_endpoint, client_id and expires_at, or no "
                    "Bearer token): kap mcp add %s URL --reauth", path, name);
        kap_mcp_oauth_free(*tree);
        *tree = NULL;
        memset(reg, 0, sizeof(*reg));
        return KAP_ERROR;
    }
    return KAP_OK;
}

int
kap_mcp_token_lock(const char *dir, const char *name, struct kap_err *err)
{
    char path[PATH_MAX];
    struct flock fl;
    int fd;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s.lock", dir, name)
        >= sizeof(path)) {
        kap_err_set(err, "%s: path too long", dir);
        return -1;
    }
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        kap_err_set(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    while (fcntl(fd, F_SETLKW, &fl) != 0) {
        if (errno == EINTR)
            continue;
        kap_err_set(err, "cannot lock %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

void
kap_mcp_token_unlock(int fd)
{
    if (fd >= 0)
        close(fd);              /* releases the fcntl() lock */
}

static int
refresh_needed(const struct kap_mcp_oauth_reg *r, enum kap_mcp_refresh_why why,
               const char *stale, long long now)
{
    char hex[KAP_MCP_TOKEN_HEX + 1];
    int near = r->expires_at > 0
               && r->expires_at - KAP_MCP_TOKEN_MARGIN <= now;

    switch (why) {
    case KAP_MCP_REFRESH_FORCE:
        return 1;
    case KAP_MCP_REFRESH_STALE:
        if (near)
            return 1;
        return stale != NULL
               && kap_mcp_token_digest(r->access_token, hex) == KAP_OK
               && strcmp(hex, stale) == 0;
    case KAP_MCP_REFRESH_EXPIRY:
    default:
        return near;
    }
}

static int
refresh_form(const struct kap_mcp_oauth_reg *r, struct kap_buf *f)
{
    if (kap_buf_append(f, "grant_type=refresh_token&refresh_token=", 39)
            != KAP_OK
        || kap_mcp_form_escape(f, r->refresh_token) != KAP_OK
        || kap_buf_append(f, "&client_id=", 11) != KAP_OK
        || kap_mcp_form_escape(f, r->client_id) != KAP_OK)
        return KAP_ERROR;
    if (r->client_secret != NULL
        && (kap_buf_append(f, "&client_secret=", 15) != KAP_OK
            || kap_mcp_form_escape(f, r->client_secret) != KAP_OK))
        return KAP_ERROR;
    if (r->resource != NULL
        && (kap_buf_append(f, "&resource=", 10) != KAP_OK
            || kap_mcp_form_escape(f, r->resource) != KAP_OK))
        return KAP_ERROR;
    return KAP_OK;
}

int
kap_mcp_token_refresh(const char *dir, const char *name,
                      enum kap_mcp_refresh_why why, const char *stale,
                      long long now, kap_mcp_post_fn post, void *data,
                      int *did, struct kap_err *err)
{
    struct kap_json *tree = NULL;
    struct kap_mcp_oauth_reg r;
    struct kap_mcp_token t = { 0 };
    struct kap_buf form = { 0 }, body = { 0 };
    long status = 0;
    int fd, rc = KAP_ERROR;

    *did = 0;
    fd = kap_mcp_token_lock(dir, name, err);
    if (fd < 0)
        return KAP_ERROR;
    if (kap_mcp_oauth_read(dir, name, &tree, &r, err) != KAP_OK)
        goto out;
    if (!refresh_needed(&r, why, stale, now)) {
        rc = KAP_OK;            /* fresh, or another process refreshed */
        goto out;
    }
    if (r.refresh_token == NULL) {
        kap_err_set(err, "mcp server %s: the token expired and there is no "
                    "refresh token: kap mcp add %s URL --reauth", name, name);
        goto out;
    }
    if (refresh_form(&r, &form) != KAP_OK) {
        kap_err_set(err, "out of memory");
        goto out;
    }
    if (post(r.token_endpoint, form.data, &body, &status, data, err)
        != KAP_OK)
        goto out;
    if (status != 200) {
        kap_err_set(err, "mcp server %s: the token endpoint refused the "
                    "refresh (HTTP %ld): kap mcp add %s URL --reauth", name,
                    status, name);
        goto out;
    }
    if (kap_mcp_token_parse(body.data, body.len, &t, err) != KAP_OK)
        goto out;
    r.access_token = t.access_token;
    if (t.refresh_token != NULL)
        r.refresh_token = t.refresh_token;
    if (t.scope != NULL)
        r.scope = t.scope;
    r.expires_at = t.expires_in >= 0 ? now + t.expires_in : 0;
    if (kap_mcp_oauth_write(dir, &r, err) != KAP_OK)
        goto out;
    *did = 1;
    rc = KAP_OK;
out:
    kap_mcp_token_clear(&t);
    if (form.data != NULL)
        kap_secret_wipe(form.data, form.cap);
    if (body.data != NULL)
        kap_secret_wipe(body.data, body.cap);
    kap_buf_free(&form);
    kap_buf_free(&body);
    kap_mcp_oauth_free(tree);
    kap_mcp_token_unlock(fd);
    return rc;
}
