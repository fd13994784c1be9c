/*
 * kap_mcp_agent.c -- `kap-mcp agent-config OUT KAPD.CONF...`
 * (kap_mcp_cli.h, docs/design/mcp-agent.md): the agent's MCP client
 * configuration for the servers the kapd configurations name, in
 * Claude Code's .mcp.json form: mcpServers.NAME = { "type": "http",
 * "url": "http://127.0.0.1:3129[PREFIX]/NAME" } -- an address and a
 * name, never a credential (kapd adds those upstream).  `--base URL`
 * names kapd elsewhere (kap up: the sidecar's address on the project's
 * internal network, http://A.B.C.3:3129).
 *
 * OUT is the agent's own file (in the workspace, which the capsule can
 * write): it is read as data, never trusted.  Every member other than
 * mcpServers, and every server entry that is not kapd's (another url),
 * is kept; kapd's entries for servers no longer configured are removed.
 * A file that is not a regular file (a symbolic link planted there is
 * never followed) or not a JSON object is left alone, and the entries are
 * printed instead.  The new file is written beside it and renamed over
 * it.  Nothing configured, nothing written.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_module.h>

#include "kap_mcp_cli.h"

#define AGENT_BASE      "http://127.0.0.1:3129"
#define AGENT_MAX_FILE  (1024 * 1024)
#define AGENT_MAX       64

struct agent {
    const char *base;           /* http://HOST:PORT, no slash at the end */
    char   *name[AGENT_MAX];
    char   *url[AGENT_MAX];
    size_t  n;
};

static int
agent_name_ok(const char *n)
{
    size_t i;

    if (!((n[0] >= 'A' && n[0] <= 'Z') || (n[0] >= 'a' && n[0] <= 'z')
          || (n[0] >= '0' && n[0] <= '9')))
        return 0;
    for (i = 0; n[i] != '\0'; i++)
        if (!((n[i] >= 'A' && n[i] <= 'Z') || (n[i] >= 'a' && n[i] <= 'z')
              || (n[i] >= '0' && n[i] <= '9') || n[i] == '_' || n[i] == '-'))
            return 0;
    return i <= 64;
}

/* http://, then a host (name, IPv4, [IPv6]) and an optional port: a
 * string that goes into a URL the agent's client opens */
static int
agent_base_ok(const char *b)
{
    size_t i;

    if (strncmp(b, "http://", 7) != 0 || b[7] == '\0')
        return 0;
    for (i = 7; b[i] != '\0'; i++)
        if (!((b[i] >= 'A' && b[i] <= 'Z') || (b[i] >= 'a' && b[i] <= 'z')
              || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' || b[i] == '-'
              || b[i] == ':' || b[i] == '[' || b[i] == ']'))
            return 0;
    return i < 128;
}

static int
agent_prefix_ok(const char *p)
{
    size_t i;

    if (p[0] == '\0')
        return 1;
    if (p[0] != '/')
        return 0;
    for (i = 0; p[i] != '\0'; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f
            || p[i] == '?' || p[i] == '#' || p[i] == '%' || p[i] == '"')
            return 0;
    return i < 256;
}

/* the servers of one kapd configuration (rewritten by kap run) */
static int
agent_read_conf(struct agent *a, const char *conf)
{
    config_t c;
    config_setting_t *servers;
    const char *name, *prefix = "";
    char url[512];
    int i, n, rc = 0;
    size_t k;

    config_init(&c);
    if (config_read_file(&c, conf) != CONFIG_TRUE) {
        mcpc_warn("%s:%d: %s", conf, config_error_line(&c),
                  config_error_text(&c));
        config_destroy(&c);
        return -1;
    }
    (void)config_lookup_string(&c, "mcp.prefix", &prefix);
    if (!agent_prefix_ok(prefix))
        prefix = "";
    servers = config_lookup(&c, "mcp.servers");
    n = servers != NULL ? config_setting_length(servers) : 0;
    for (i = 0; i < n && rc == 0; i++) {
        if (config_setting_lookup_string(config_setting_get_elem(servers,
                                                                 (unsigned)i),
                                         "name", &name) != CONFIG_TRUE
            || !agent_name_ok(name))
            continue;
        for (k = 0; k < a->n && strcmp(a->name[k], name) != 0; k++)
            ;
        if (k < a->n || a->n == AGENT_MAX)
            continue;
        snprintf(url, sizeof(url), "%s%s/%s", a->base, prefix, name);
        a->name[a->n] = strdup(name);
        a->url[a->n] = strdup(url);
        if (a->name[a->n] == NULL || a->url[a->n] == NULL)
            rc = -1;
        a->n++;
    }
    config_destroy(&c);
    return rc;
}

static int
agent_ours(const struct agent *a, const char *name)
{
    size_t k;

    for (k = 0; k < a->n; k++)
        if (strcmp(a->name[k], name) == 0)
            return 1;
    return 0;
}

/* the existing file, parsed; NULL (none) or *bad when it is not usable */
static struct kap_json *
agent_old(const char *out, int *bad)
{
    struct kap_json_limits lim = { .max_bytes = AGENT_MAX_FILE };
    struct kap_buf b = { 0 };
    struct kap_json *j = NULL;
    struct stat st;
    ssize_t r;
    int fd;

    *bad = 0;
    if (lstat(out, &st) < 0)
        return NULL;
    if (!S_ISREG(st.st_mode) || st.st_size > AGENT_MAX_FILE) {
        *bad = 1;
        return NULL;
    }
    fd = open(out, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || kap_buf_reserve(&b, (size_t)st.st_size + 1) != KAP_OK) {
        *bad = 1;
        goto done;
    }
    while ((r = read(fd, b.data + b.len, kap_buf_room(&b))) > 0
           && b.len + (size_t)r <= AGENT_MAX_FILE) {
        kap_buf_added(&b, (size_t)r);
        if (kap_buf_room(&b) == 0 && kap_buf_reserve(&b, 4096) != KAP_OK)
            break;
    }
    j = kap_json_parse(b.data, b.len, &lim, NULL);
    if (j == NULL || kap_json_type(j) != KAP_JSON_OBJECT
        || (kap_json_get(j, "mcpServers") != NULL
            && kap_json_type(kap_json_get(j, "mcpServers"))
               != KAP_JSON_OBJECT)) {
        kap_json_free(j);
        j = NULL;
        *bad = 1;
    }
done:
    if (fd >= 0)
        close(fd);
    kap_buf_free(&b);
    return j;
}

static void
agent_entry(struct kap_json_writer *w, const char *name, const char *url)
{
    kap_json_w_key(w, name);
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "type");
    kap_json_w_str(w, "http");
    kap_json_w_key(w, "url");
    kap_json_w_str(w, url);
    kap_json_w_obj_end(w);
}

static int
agent_write(const char *out, const struct kap_buf *b)
{
    char tmp[PATH_MAX];
    ssize_t w;
    size_t off = 0;
    int fd;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.kapXXXXXX", out)
        >= sizeof(tmp))
        return -1;
    if ((fd = mkstemp(tmp)) < 0)
        return -1;
    while (off < b->len && (w = write(fd, b->data + off, b->len - off)) > 0)
        off += (size_t)w;
    if (off != b->len || fchmod(fd, 0644) < 0 || close(fd) < 0
        || rename(tmp, out) < 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int
mcpc_agent_config(const char *out, const char *base, char **confs, int nconfs)
{
    struct kap_json_writer w;
    struct kap_buf b = { 0 };
    struct kap_json *old;
    const struct kap_json *m, *srv;
    const char *url;
    struct agent a;
    int i, bad, rc = 1;
    size_t k;

    memset(&a, 0, sizeof(a));
    a.base = base != NULL ? base : AGENT_BASE;
    if (!agent_base_ok(a.base)) {
        mcpc_warn("agent-config: --base %s: not http://HOST[:PORT]", a.base);
        return 2;
    }
    for (i = 0; i < nconfs; i++)
        if (agent_read_conf(&a, confs[i]) < 0)
            goto done;
    old = agent_old(out, &bad);
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    for (m = kap_json_child(old); m != NULL; m = kap_json_next(m))
        if (strcmp(kap_json_key(m), "mcpServers") != 0) {
            kap_json_w_key(&w, kap_json_key(m));
            kap_json_w_tree(&w, m);
        }
    kap_json_w_key(&w, "mcpServers");
    kap_json_w_obj_begin(&w);
    for (srv = kap_json_child(kap_json_get(old, "mcpServers")); srv != NULL;
         srv = kap_json_next(srv)) {
        url = kap_json_get_string(srv, "url");
        if (agent_ours(&a, kap_json_key(srv)) || (url != NULL
            && strncmp(url, a.base, strlen(a.base)) == 0
            && url[strlen(a.base)] == '/'))
            continue;           /* ours: rewritten below, or gone */
        kap_json_w_key(&w, kap_json_key(srv));
        kap_json_w_tree(&w, srv);
    }
    for (k = 0; k < a.n; k++)
        agent_entry(&w, a.name[k], a.url[k]);
    kap_json_w_obj_end(&w);
    kap_json_w_obj_end(&w);
    kap_json_free(old);
    if (kap_json_w_finish(&w) != KAP_OK || kap_buf_append(&b, "\n", 1)
        != KAP_OK)
        goto done;
    if (a.n == 0 && (bad || access(out, F_OK) != 0)) {
        rc = 0;                 /* nothing to say, nothing there */
        goto done;
    }
    if (bad || agent_write(out, &b) < 0) {
        mcpc_warn("not writing %s (%s): the agent's MCP servers are",
                  out, bad ? "not a regular file holding a JSON object"
                           : strerror(errno));
        fwrite(b.data, 1, b.len, stderr);
        goto done;
    }
    for (k = 0; k < a.n; k++)
        mcpc_say("%s\t%s", a.name[k], a.url[k]);
    rc = 0;
done:
    for (k = 0; k < a.n; k++) {
        free(a.name[k]);
        free(a.url[k]);
    }
    kap_buf_free(&b);
    return rc;
}
