/*
 * kap_mcp_pinstore.c -- tool pins of servers with `pin = true`
 * (kap_mcp_mod.h; docs/design/mcp-proxy.md, Pins).
 *
 * A server's pins are one file, AUTH_DIR/NAME.pins.json, 0600 in the
 * 0700 auth directory (read under the secret file rule):
 *   {"server":"NAME","tools":{"TOOL":{"sha256":"HEX","definition":"..."}}}
 * where definition is kap_mcp_pin_text() of the tool as first seen.  A
 * tool seen for the first time in a tools/list is pinned and the file
 * rewritten (temp file, then rename).  A tool whose definition differs
 * from its pin is taken out of every list and its calls are refused
 * until the user accepts it: `kap mcp pin NAME --accept` removes the
 * pins of changed tools (or the file), and kapd, which looks at the
 * file again whenever it changed on disk, pins what it sees next.
 * Process state (it outlives reloads); freed at shutdown.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_json.h>

#include "kap_mcp_mod.h"

struct pin_ent {
    char *tool;
    char  hex[KAP_MCP_PIN_HEX + 1];
    char *text;
    int   changed;
};

struct kap_mcp_pins {
    char                *server, *path;
    struct pin_ent      *v;
    size_t               n, cap;
    int                  exists, broken;
    struct stat          st;
    struct kap_mcp_pins *next;
};

static struct kap_mcp_pins *pins_head;

static void
pins_empty(struct kap_mcp_pins *ps)
{
    size_t i;

    for (i = 0; i < ps->n; i++) {
        free(ps->v[i].tool);
        free(ps->v[i].text);
    }
    ps->n = 0;
}

static int
pins_add(struct kap_mcp_pins *ps, const char *tool, const char *hex,
         const char *text)
{
    struct pin_ent *v;

    if (ps->n == ps->cap) {
        v = realloc(ps->v, (ps->cap * 2 + 8) * sizeof(*v));
        if (v == NULL)
            return KAP_ERROR;
        ps->v = v;
        ps->cap = ps->cap * 2 + 8;
    }
    v = &ps->v[ps->n];
    memset(v, 0, sizeof(*v));
    v->tool = strdup(tool);
    v->text = strdup(text);
    if (v->tool == NULL || v->text == NULL || strlen(hex) != KAP_MCP_PIN_HEX) {
        free(v->tool);
        free(v->text);
        return KAP_ERROR;
    }
    memcpy(v->hex, hex, sizeof(v->hex));
    ps->n++;
    return KAP_OK;
}

/* read the file again when it changed on disk (or went away) */
static void
pins_refresh(struct kap_mcp_pins *ps)
{
    struct stat st;
    struct kap_buf b = { 0 };
    struct kap_err err;
    struct kap_json *j;
    const struct kap_json *t, *e;

    if (stat(ps->path, &st) != 0) {
        if (errno == ENOENT && (ps->exists || ps->broken)) {
            pins_empty(ps);
            ps->exists = ps->broken = 0;
        } else if (errno != ENOENT) {
            ps->broken = 1;
        }
        return;
    }
    if (ps->exists && st.st_ino == ps->st.st_ino && st.st_dev == ps->st.st_dev
        && st.st_size == ps->st.st_size
        && st.st_mtim.tv_sec == ps->st.st_mtim.tv_sec
        && st.st_mtim.tv_nsec == ps->st.st_mtim.tv_nsec)
        return;
    pins_empty(ps);
    ps->exists = 1;
    ps->st = st;
    memset(&err, 0, sizeof(err));
    if (kap_secret_file_read(ps->path, &b, &err) != KAP_OK
        || (j = kap_json_parse(b.data, b.len, NULL, &err)) == NULL) {
        KAP_LOG(KAP_LOG_ERR, KAP_MCP_NAME, 0, "pins of server %s: %s: every "
                "tool is held back until the file is fixed or removed",
                ps->server, err.msg);
        ps->broken = 1;
        kap_buf_free(&b);
        return;
    }
    ps->broken = 0;
    t = kap_json_get(j, "tools");
    for (e = kap_json_child(t); e != NULL; e = kap_json_next(e)) {
        const char *hex = kap_json_get_string(e, "sha256");
        const char *def = kap_json_get_string(e, "definition");
        if (hex == NULL || def == NULL
            || pins_add(ps, kap_json_key(e), hex, def) != KAP_OK) {
            ps->broken = 1;
            break;
        }
    }
    kap_json_free(j);
    kap_buf_free(&b);
}

struct kap_mcp_pins *
kap_mcp_pins_get(const char *server, const char *path)
{
    struct kap_mcp_pins *ps;

    for (ps = pins_head; ps != NULL; ps = ps->next)
        if (strcmp(ps->server, server) == 0 && strcmp(ps->path, path) == 0)
            break;
    if (ps == NULL) {
        if ((ps = calloc(1, sizeof(*ps))) == NULL)
            return NULL;
        ps->server = strdup(server);
        ps->path = strdup(path);
        if (ps->server == NULL || ps->path == NULL) {
            free(ps->server);
            free(ps->path);
            free(ps);
            return NULL;
        }
        ps->next = pins_head;
        pins_head = ps;
    }
    pins_refresh(ps);
    return ps;
}

static int
pins_save(struct kap_mcp_pins *ps)
{
    struct kap_json_writer w;
    struct kap_buf b = { 0 }, tmp = { 0 };
    size_t i, off = 0;
    ssize_t n;
    int fd, rc = KAP_ERROR;

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "server");
    kap_json_w_str(&w, ps->server);
    kap_json_w_key(&w, "tools");
    kap_json_w_obj_begin(&w);
    for (i = 0; i < ps->n; i++) {
        kap_json_w_key(&w, ps->v[i].tool);
        kap_json_w_obj_begin(&w);
        kap_json_w_key(&w, "sha256");
        kap_json_w_str(&w, ps->v[i].hex);
        kap_json_w_key(&w, "definition");
        kap_json_w_str(&w, ps->v[i].text);
        kap_json_w_obj_end(&w);
    }
    kap_json_w_obj_end(&w);
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK || kap_buf_append(&b, "\n", 1)
        != KAP_OK || kap_buf_printf(&tmp, "%s.tmp.%ld", ps->path,
                                    (long)getpid()) != KAP_OK
        || kap_buf_append(&tmp, "", 1) != KAP_OK)
        goto out;
    fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
              0600);
    if (fd < 0)
        goto out;
    while (off < b.len && (n = write(fd, b.data + off, b.len - off)) > 0)
        off += (size_t)n;
    if (close(fd) == 0 && off == b.len && rename(tmp.data, ps->path) == 0
        && stat(ps->path, &ps->st) == 0) {
        ps->exists = 1;
        rc = KAP_OK;
    } else {
        unlink(tmp.data);
    }
out:
    if (rc != KAP_OK)
        KAP_LOG(KAP_LOG_ERR, KAP_MCP_NAME, 0, "pins of server %s: cannot "
                "write %s", ps->server, ps->path);
    kap_buf_free(&b);
    kap_buf_free(&tmp);
    return rc;
}

int
kap_mcp_pins_check(struct kap_mcp_pins *ps, const char *name,
                   const struct kap_json *tool, struct kap_mcp_pin_change *ch)
{
    char hex[KAP_MCP_PIN_HEX + 1];
    struct kap_buf text = { 0 };
    size_t i;
    int keep = 0;
    struct kap_pool *pool = ch->pool;

    memset(ch, 0, sizeof(*ch));
    ch->pool = pool;
    if (ps == NULL || ps->broken)
        return 0;
    if (kap_mcp_pin_digest(tool, hex) != KAP_OK
        || kap_mcp_pin_text(tool, &text) != KAP_OK
        || kap_buf_append(&text, "", 1) != KAP_OK) {
        kap_buf_free(&text);
        return 0;
    }
    for (i = 0; i < ps->n; i++)
        if (strcmp(ps->v[i].tool, name) == 0)
            break;
    if (i == ps->n) {
        keep = pins_add(ps, name, hex, text.data) == KAP_OK
               && pins_save(ps) == KAP_OK;
    } else if (strcmp(ps->v[i].hex, hex) == 0) {
        ps->v[i].changed = 0;       /* back to what was approved */
        keep = 1;
    } else if (!ps->v[i].changed) {
        ps->v[i].changed = 1;
        ch->changed = 1;
        snprintf(ch->pinned, sizeof(ch->pinned), "%s", ps->v[i].hex);
        snprintf(ch->seen, sizeof(ch->seen), "%s", hex);
        ch->pinned_text = ps->v[i].text;
        ch->seen_text = kap_pstrdup(ch->pool, text.data);
    }
    kap_buf_free(&text);
    return keep;
}

int
kap_mcp_pins_changed(struct kap_mcp_pins *ps, const char *name)
{
    size_t i;

    if (ps == NULL || ps->broken)
        return 1;
    for (i = 0; i < ps->n; i++)
        if (strcmp(ps->v[i].tool, name) == 0)
            return ps->v[i].changed;
    return 0;
}

void
kap_mcp_pins_clear(void)
{
    struct kap_mcp_pins *ps;

    while ((ps = pins_head) != NULL) {
        pins_head = ps->next;
        pins_empty(ps);
        free(ps->v);
        free(ps->server);
        free(ps->path);
        free(ps);
    }
}
