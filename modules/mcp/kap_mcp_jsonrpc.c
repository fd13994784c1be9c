/*
 * kap_mcp_jsonrpc.c -- small JSON-RPC 2.0 pieces the request check and
 * the reply filter share (kap_mcp.h): how a case-insensitive reader sees
 * a member name, which ids are valid, and writing an error response.
 */
#include "config.h"

#include <string.h>

#include "kap_mcp.h"

/*
 * The ASCII letter a case-insensitive reader may take the character at
 * *p for, advancing *p past it; 0 when it is no letter.  Beside ASCII's
 * own two cases, Go's encoding/json (bytes.EqualFold) reads U+017F LATIN
 * SMALL LETTER LONG S as 's' and U+212A KELVIN SIGN as 'k'; Java's
 * equalsIgnoreCase and .NET's upper-casing read U+0130 and U+0131 (dotted
 * capital and dotless small i) as 'i'.
 */
static int
fold_char(const unsigned char **p)
{
    const unsigned char *s = *p;

    if (s[0] >= 'A' && s[0] <= 'Z') {
        *p += 1;
        return s[0] - 'A' + 'a';
    }
    if (s[0] < 0x80) {
        *p += 1;
        return s[0];
    }
    if (s[0] == 0xc5 && s[1] == 0xbf) {
        *p += 2;
        return 's';
    }
    if (s[0] == 0xc4 && (s[1] == 0xb0 || s[1] == 0xb1)) {
        *p += 2;
        return 'i';
    }
    if (s[0] == 0xe2 && s[1] == 0x84 && s[2] == 0xaa) {
        *p += 3;
        return 'k';
    }
    return -1;
}

static int
is_ows(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int
kap_mcp_fold_eq(const char *s, const char *name)
{
    const unsigned char *p = (const unsigned char *) s;
    const unsigned char *e;
    const unsigned char *n = (const unsigned char *) name;

    if (s == NULL)
        return 0;
    e = p + strlen(s);
    while (p < e && is_ows(*p))
        p++;
    while (e > p && is_ows(e[-1]))
        e--;
    while (p < e && *n) {
        /* fold_char reads at most 3 bytes; the string is NUL-terminated
         * and a NUL never matches the second or third byte */
        if (fold_char(&p) != *n++)
            return 0;
    }
    return p >= e && *n == '\0';
}

int
kap_mcp_fold_variant(const char *s, const char *name)
{
    return s != NULL && strcmp(s, name) != 0 && kap_mcp_fold_eq(s, name);
}

int
kap_mcp_id_ok(const struct kap_json *id)
{
    struct kap_buf b = { 0 };
    size_t i;
    int ok;

    if (kap_json_type(id) == KAP_JSON_STRING)
        return 1;
    if (kap_json_type(id) != KAP_JSON_NUMBER)
        return 0;
    /* an integer, written as one: 1.0 and 1e0 are numbers a server may
     * keep as floats, and then answer with another id */
    if (kap_json_print(id, &b) != KAP_OK || b.len == 0) {
        kap_buf_free(&b);
        return 0;
    }
    ok = 1;
    for (i = b.data[0] == '-' ? 1 : 0; i < b.len; i++)
        if (b.data[i] < '0' || b.data[i] > '9')
            ok = 0;
    kap_buf_free(&b);
    return ok;
}

void
kap_mcp_error_w(struct kap_json_writer *w, const struct kap_json *id,
                int code, const char *message, const char *tool,
                const struct kap_mcp_verdict *v)
{
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "jsonrpc");
    kap_json_w_str(w, "2.0");
    kap_json_w_key(w, "id");
    if (id != NULL)
        kap_json_w_tree(w, id);
    else
        kap_json_w_null(w);
    kap_json_w_key(w, "error");
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "code");
    kap_json_w_int(w, code);
    kap_json_w_key(w, "message");
    kap_json_w_str(w, message);
    if (tool != NULL && v != NULL) {
        kap_json_w_key(w, "data");
        kap_json_w_obj_begin(w);
        kap_json_w_key(w, "tool");
        kap_json_w_str(w, tool);
        kap_json_w_key(w, "rule");
        if (v->rule != NULL) {
            kap_json_w_str(w, v->rule->text);
            kap_json_w_key(w, "list");
            kap_json_w_str(w, v->rule->deny ? "deny" : "allow");
        } else {
            kap_json_w_null(w);
        }
        kap_json_w_obj_end(w);
    }
    kap_json_w_obj_end(w);
    kap_json_w_obj_end(w);
}
