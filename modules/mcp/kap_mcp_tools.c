/*
 * kap_mcp_tools.c -- tool patterns of one MCP server (kap_mcp.h): build
 * the allow and deny lists from the configuration and decide a name.
 *
 * Lists are short (a server has tens of tools, a policy a few patterns),
 * so a decision walks them in order: the first covering deny pattern
 * wins, else the first covering allow pattern, else "not allowed".
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "kap_mcp.h"

/* Length of the valid UTF-8 sequence at p (1..4), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
    size_t len, i;
    unsigned c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)
        || (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return len;
}

/* NULL when pattern is acceptable, else why not. */
static const char *
pattern_problem(const char *pattern)
{
    const unsigned char *p = (const unsigned char *) pattern;
    size_t n = strlen(pattern), i, l;

    if (n == 0)
        return "is empty";
    if (n > KAP_MCP_PATTERN_MAX)
        return "is too long";
    for (i = 0; i < n; i += l) {
        if (p[i] <= 0x20 || p[i] == 0x7f)
            return "holds a space or a control character";
        if (p[i] == '*' && i + 1 != n)
            return "has a '*' that is not its last character "
                   "(patterns are NAME, PREFIX* or *)";
        l = utf8_len(p + i, n - i);
        if (l == 0)
            return "is not valid UTF-8";
    }
    return NULL;
}

struct kap_mcp_tools *
kap_mcp_tools_create(struct kap_pool *pool)
{
    struct kap_mcp_tools *t = kap_palloc(pool, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->pool = pool;
    t->allow_tail = &t->allow;
    t->deny_tail = &t->deny;
    return t;
}

int
kap_mcp_tools_add(struct kap_mcp_tools *t, int deny, const char *pattern,
                  const char *file, int line, struct kap_err *err)
{
    struct kap_mcp_rule *r;
    const char *why;
    size_t n;

    if (pattern == NULL) {
        kap_err_set(err, "tool pattern missing");
        return KAP_ERROR;
    }
    why = pattern_problem(pattern);
    if (why != NULL) {
        kap_err_set(err, "tool pattern \"%.*s\" %s", KAP_MCP_PATTERN_MAX,
                    pattern, why);
        return KAP_ERROR;
    }
    r = kap_palloc(t->pool, sizeof(*r));
    if (r == NULL || (r->text = kap_pstrdup(t->pool, pattern)) == NULL
        || (r->file = kap_pstrdup(t->pool, file ? file : "")) == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    n = strlen(pattern);
    r->prefix = pattern[n - 1] == '*';
    r->plen = r->prefix ? n - 1 : n;
    r->deny = deny ? 1 : 0;
    r->line = line;
    if (deny) {
        *t->deny_tail = r;
        t->deny_tail = &r->next;
        t->ndeny++;
    } else {
        *t->allow_tail = r;
        t->allow_tail = &r->next;
        t->nallow++;
    }
    return KAP_OK;
}

/* Add every string of list s (NULL: none). */
static int
conf_list(struct kap_mcp_tools *t, const config_setting_t *s, int deny,
          const char *server, struct kap_err *err)
{
    const char *what = deny ? "deny" : "allow";
    const config_setting_t *e;
    struct kap_err why;
    const char *v;
    int i, n;

    memset(&why, 0, sizeof(why));
    if (s == NULL)
        return KAP_OK;
    if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
        kap_err_at(err, s, "mcp server \"%s\": %s must be a list of tool "
                   "patterns, e.g. %s = [\"%s\"]", server, what, what,
                   deny ? "delete_*" : "*");
        return KAP_ERROR;
    }
    n = config_setting_length(s);
    for (i = 0; i < n; i++) {
        e = config_setting_get_elem(s, (unsigned) i);
        v = e ? config_setting_get_string(e) : NULL;
        if (v == NULL) {
            kap_err_at(err, e ? e : s, "mcp server \"%s\": %s[%d] is not "
                       "a string", server, what, i);
            return KAP_ERROR;
        }
        if (kap_mcp_tools_add(t, deny, v, config_setting_source_file(e),
                              (int) config_setting_source_line(e),
                              &why) != KAP_OK) {
            kap_err_at(err, e, "mcp server \"%s\": %s: %s", server, what,
                       why.msg);
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

int
kap_mcp_tools_conf(struct kap_mcp_tools *t, const config_setting_t *allow,
                   const config_setting_t *deny, const char *server,
                   struct kap_err *err)
{
    if (server == NULL)
        server = "";
    if (conf_list(t, allow, 0, server, err) != KAP_OK
        || conf_list(t, deny, 1, server, err) != KAP_OK)
        return KAP_ERROR;
    if (t->nallow == 0) {
        kap_err_at(err, allow, "mcp server \"%s\": allow %s: no tool would "
                   "be callable; list the tools to allow, or allow = [\"*\"] "
                   "for all of them", server,
                   allow ? "is empty" : "is missing");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
covers(const struct kap_mcp_rule *r, const char *name, size_t n)
{
    if (r->prefix)
        return n >= r->plen && memcmp(name, r->text, r->plen) == 0;
    return n == r->plen && memcmp(name, r->text, n) == 0;
}

void
kap_mcp_tools_match(const struct kap_mcp_tools *t, const char *name,
                    struct kap_mcp_verdict *v)
{
    const struct kap_mcp_rule *r;
    size_t n;

    v->allow = 0;
    v->why = KAP_MCP_NOT_ALLOWED;
    v->rule = NULL;
    if (t == NULL || name == NULL)
        return;
    n = strlen(name);
    for (r = t->deny; r; r = r->next)
        if (covers(r, name, n)) {
            v->why = KAP_MCP_DENIED;
            v->rule = r;
            return;
        }
    for (r = t->allow; r; r = r->next)
        if (covers(r, name, n)) {
            v->allow = 1;
            v->why = KAP_MCP_ALLOWED;
            v->rule = r;
            return;
        }
}

int
kap_mcp_tools_named(const struct kap_mcp_tools *t, const char *name)
{
    const struct kap_mcp_rule *r;
    size_t n;

    if (t == NULL || name == NULL)
        return 0;
    n = strlen(name);
    for (r = t->allow; r; r = r->next)
        if (!r->prefix && covers(r, name, n))
            return 1;
    return 0;
}

const char *
kap_mcp_verdict_describe(const struct kap_mcp_verdict *v, char *buf, size_t n)
{
    if (n == 0)
        return buf;
    if (v->rule == NULL)
        snprintf(buf, n, "no allow rule matches");
    else
        snprintf(buf, n, "%s rule \"%s\"", v->rule->deny ? "deny" : "allow",
                 v->rule->text);
    return buf;
}
