/*
 * kap_mcp_pins.c -- `kap-mcp pin NAME [--accept]` (kap_mcp_cli.h): the
 * server's tools now against the pins kapd keeps for a server with
 * `pin = true`, AUTH_DIR/NAME.pins.json:
 *   {"server":"NAME","tools":{"TOOL":{"sha256":"HEX","definition":"..."}}}
 * (definition: kap_mcp_pin_text() of the tool; sha256: its digest; the
 * mcp module's format, docs/design/mcp-proxy.md).  Each tool is shown as
 * pinned, CHANGED (both definitions), new or gone; --accept pins the
 * definitions just shown, so a server that changes a tool again between
 * the look and kapd's next list is caught again.  The file is written
 * 0600 with a temporary file and a rename; kapd re-reads it when it
 * changes on disk.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kapd/kap_core.h>
#include <kapd/kap_json.h>
#include <kapd/kap_module.h>
#include <kapd/kap_secret.h>

#include "kap_mcp.h"
#include "kap_mcp_cli.h"
#include "kap_mcp_token.h"

#define PIN_SHOW 400            /* bytes of a definition shown */

/* the pins file's tools object (NULL: no file); KAP_ERROR: unreadable */
static int
pins_read(const char *dir, const char *name, struct kap_json **j)
{
    char path[PATH_MAX];
    struct kap_buf b = { 0 };
    struct kap_err err = { 0 };

    *j = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.pins.json", dir, name)
        >= sizeof(path))
        return KAP_ERROR;
    if (access(path, F_OK) != 0 && errno == ENOENT)
        return KAP_OK;
    if (kap_secret_file_read(path, &b, &err) != KAP_OK) {
        mcpc_warn("%s", err.msg);
        return KAP_ERROR;
    }
    *j = kap_json_parse(b.data, b.len, NULL, &err);
    kap_buf_free(&b);
    if (*j == NULL || kap_json_type(kap_json_get(*j, "tools"))
                      != KAP_JSON_OBJECT) {
        mcpc_warn("%s is not a pins file (%s): remove it to pin afresh",
                  path, err.set ? err.msg : "no tools object");
        kap_json_free(*j);
        *j = NULL;
        return KAP_ERROR;
    }
    return KAP_OK;
}

static void
show(const char *label, const char *text)
{
    char line[PIN_SHOW + 8];

    mcpc_safe_line(text, PIN_SHOW, line, sizeof(line));
    mcpc_say("      %s %s", label, line);
}

/* the tool named name in the array tools, or NULL */
static const struct kap_json *
find_tool(const struct kap_json *tools, const char *name)
{
    const struct kap_json *t;

    for (t = kap_json_child(tools); t != NULL; t = kap_json_next(t))
        if (kap_json_get_string(t, "name") != NULL
            && strcmp(kap_json_get_string(t, "name"), name) == 0)
            return t;
    return NULL;
}

static void
w_pin(struct kap_json_writer *w, const char *tool, const char *hex,
      const char *text)
{
    kap_json_w_key(w, tool);
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "sha256");
    kap_json_w_str(w, hex);
    kap_json_w_key(w, "definition");
    kap_json_w_str(w, text);
    kap_json_w_obj_end(w);
}

int
mcpc_pin(const char *dir, const char *name, int accept,
         const char *const *hdrs, const char *url)
{
    struct kap_buf list = { 0 }, text = { 0 }, out = { 0 }, file = { 0 };
    struct kap_json *tools = NULL, *pins = NULL;
    const struct kap_json *t, *ptools, *p;
    struct kap_json_writer w;
    struct kap_err err = { 0 };
    char hex[KAP_MCP_PIN_HEX + 1];
    size_t changed = 0, fresh = 0;
    long status = 0;
    int rc = 1;

    if (mcpc_verify(url, hdrs, 0, &status, NULL, &list, &err) != KAP_OK) {
        mcpc_warn("%s: cannot list the tools: %s", name, err.msg);
        goto out;
    }
    tools = kap_json_parse(list.data, list.len, NULL, &err);
    if (tools == NULL || pins_read(dir, name, &pins) != KAP_OK)
        goto out;
    ptools = kap_json_get(pins, "tools");
    if (pins == NULL)
        mcpc_say("%s has no pins yet (kapd pins each tool at first sight "
                 "when the server has pin = true)", name);
    kap_json_w_init(&w, &out);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "server");
    kap_json_w_str(&w, name);
    kap_json_w_key(&w, "tools");
    kap_json_w_obj_begin(&w);
    for (t = kap_json_child(tools); t != NULL; t = kap_json_next(t)) {
        const char *tn = kap_json_get_string(t, "name"), *ph;
        char shown[80];
        if (tn == NULL)
            continue;
        kap_buf_reset(&text);
        if (kap_mcp_pin_text(t, &text) != KAP_OK
            || kap_mcp_pin_digest(t, hex) != KAP_OK)
            goto out;
        mcpc_safe_line(tn, 64, shown, sizeof(shown));
        p = kap_json_get(ptools, tn);
        ph = kap_json_get_string(p, "sha256");
        if (p == NULL) {
            mcpc_say("  new      %s", shown);
            fresh++;
        } else if (ph == NULL || strcmp(ph, hex) != 0) {
            mcpc_say("  CHANGED  %s", shown);
            show("pinned:", kap_json_get_string(p, "definition"));
            show("now:   ", text.data);
            changed++;
        } else {
            mcpc_say("  pinned   %s", shown);
        }
        w_pin(&w, tn, hex, text.data);
    }
    /* a pinned tool the server no longer lists keeps its pin */
    for (p = kap_json_child(ptools); p != NULL; p = kap_json_next(p)) {
        char shown[80];
        if (find_tool(tools, kap_json_key(p)) != NULL)
            continue;
        mcpc_safe_line(kap_json_key(p), 64, shown, sizeof(shown));
        mcpc_say("  gone     %s", shown);
        w_pin(&w, kap_json_key(p),
              kap_json_get_string(p, "sha256") ? kap_json_get_string(p, "sha256") : "",
              kap_json_get_string(p, "definition")
                  ? kap_json_get_string(p, "definition") : "");
    }
    kap_json_w_obj_end(&w);
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK || kap_buf_append(&out, "\n", 1)
        != KAP_OK || kap_buf_printf(&file, "%s.pins.json", name) != KAP_OK)
        goto out;
    if (!accept) {
        if (changed > 0 || fresh > 0)
            mcpc_say("to approve the definitions shown: kap mcp pin %s "
                     "--accept", name);
        rc = 0;
        goto out;
    }
    if (kap_mcp_reg_write_text(dir, file.data, out.data, out.len, &err)
        != KAP_OK) {
        mcpc_warn("%s", err.msg);
        goto out;
    }
    mcpc_say("accepted: %zu changed, %zu new tool%s pinned", changed, fresh,
             fresh == 1 ? "" : "s");
    rc = 0;
out:
    kap_json_free(tools);
    kap_json_free(pins);
    kap_buf_free(&list);
    kap_buf_free(&text);
    kap_buf_free(&out);
    kap_buf_free(&file);
    return rc;
}
