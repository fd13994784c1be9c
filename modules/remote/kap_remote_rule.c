/*
 * kap_remote_rule.c -- the "allow always" rule: which network.allow
 * entry a question becomes, and that entry added to the text of a
 * policy file (libconfig) with its comments and layout kept.
 *
 * The text is read by a small libconfig tokenizer (strings with escapes,
 * the three comment styles, nesting); nothing of it is reinterpreted or
 * rewritten: the entry is inserted after the last element of the first
 * top-level network group's allow list, or an allow list is added at the
 * top of that group, or a network group at the end of the file.  The
 * result must parse with libconfig and hold the entry in network.allow,
 * else nothing is returned.  The policy file is data from the agent's
 * side, so this is fuzzed (fuzz/fuzz_remote.c).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "kap_remote.h"

enum { TK_END = 0, TK_NAME, TK_STR, TK_PUNCT, TK_OTHER, TK_BAD };

struct kr_tok {
    int         type;
    size_t      b, e;           /* text[b..e) */
};

struct kr_lex {
    const char *s;
    size_t      n, i;
};

static int
kr_is_punct(char c)
{
    return c != '\0' && strchr("{}[]():=;,", c) != NULL;
}

static int
kr_is_name(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*'
           || (!first && ((c >= '0' && c <= '9') || c == '_' || c == '-'));
}

/* the next token that is not a blank or a comment */
static struct kr_tok
kr_next(struct kr_lex *lx)
{
    struct kr_tok t = { TK_END, 0, 0 };
    const char *s = lx->s;
    size_t n = lx->n;

    for (;;) {
        while (lx->i < n && strchr(" \t\r\n\f\v", s[lx->i]) != NULL)
            lx->i++;
        if (lx->i < n && (s[lx->i] == '#'
                          || (s[lx->i] == '/' && lx->i + 1 < n
                              && s[lx->i + 1] == '/'))) {
            while (lx->i < n && s[lx->i] != '\n')
                lx->i++;
            continue;
        }
        if (lx->i + 1 < n && s[lx->i] == '/' && s[lx->i + 1] == '*') {
            lx->i += 2;
            while (lx->i + 1 < n && !(s[lx->i] == '*' && s[lx->i + 1] == '/'))
                lx->i++;
            if (lx->i + 1 >= n) {
                t.type = TK_BAD;        /* unterminated comment */
                return t;
            }
            lx->i += 2;
            continue;
        }
        break;
    }
    t.b = lx->i;
    if (lx->i >= n)
        return t;
    if (s[lx->i] == '"') {
        for (lx->i++; lx->i < n && s[lx->i] != '"'; lx->i++)
            if (s[lx->i] == '\\' && lx->i + 1 < n)
                lx->i++;
        if (lx->i >= n) {
            t.type = TK_BAD;
            return t;
        }
        lx->i++;
        t.type = TK_STR;
    } else if (kr_is_punct(s[lx->i])) {
        lx->i++;
        t.type = TK_PUNCT;
    } else if (kr_is_name(s[lx->i], 1)) {
        while (lx->i < n && kr_is_name(s[lx->i], 0))
            lx->i++;
        t.type = TK_NAME;
    } else {
        while (lx->i < n && !kr_is_punct(s[lx->i]) && s[lx->i] != '"'
               && strchr(" \t\r\n\f\v#", s[lx->i]) == NULL)
            lx->i++;
        if (lx->i == t.b)
            lx->i++;
        t.type = TK_OTHER;
    }
    t.e = lx->i;
    return t;
}

static int
kr_tok_is(const struct kr_lex *lx, const struct kr_tok *t, const char *w)
{
    size_t n = strlen(w);

    return t->e - t->b == n && memcmp(lx->s + t->b, w, n) == 0;
}

static int
kr_has_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w), i;

    for (i = 0; i + wl <= n; i++)
        if (memcmp(s + i, w, wl) == 0)
            return 1;
    return 0;
}

static unsigned
kr_line_at(const char *s, size_t at)
{
    unsigned line = 1;
    size_t i;

    for (i = 0; i < at; i++)
        if (s[i] == '\n')
            line++;
    return line;
}

int
kr_rule_entry(uint32_t kind, const char *subject, unsigned port, char *out,
              size_t size, const char **why)
{
    size_t n = strlen(subject), i, label = 0;
    int digits_only = 1;

    if (!(kind & (KAP_REQ_CONNECT | KAP_REQ_HTTP | KAP_REQ_DNS))) {
        *why = "only a network request (connect, http, dns) becomes a rule";
        return KAP_ERROR;
    }
    /* a host name or a dotted IPv4 address: letters, digits, '-' and '.',
       labels of 1..63, at most 253 bytes; nothing else may reach the file */
    if (n == 0 || n > 253 || subject[0] == '.' || subject[n - 1] == '.') {
        *why = "the subject is not a valid host name";
        return KAP_ERROR;
    }
    for (i = 0; i < n; i++) {
        char c = subject[i];

        if (c == '.') {
            if (label == 0 || subject[i - 1] == '-') {
                *why = "the subject is not a valid host name";
                return KAP_ERROR;
            }
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || (c == '-' && label > 0))
            || ++label > 63) {
            *why = "the subject is not a valid host name";
            return KAP_ERROR;
        }
        if (!(c >= '0' && c <= '9'))
            digits_only = 0;
    }
    if (subject[n - 1] == '-' || (digits_only && n < 7)) {
        *why = "the subject is not a valid host name";
        return KAP_ERROR;
    }
    /* dns asks about a name, not a port: the name's rule with the
       default ports; a connection's rule names its port */
    if ((kind & KAP_REQ_DNS) || port == 0)
        i = (size_t) snprintf(out, size, "%s", subject);
    else
        i = (size_t) snprintf(out, size, "%s:%u", subject, port);
    if (i >= size) {
        *why = "the subject is too long";
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* the allow list the rule goes to, as libconfig reads it: network.allow,
   or the allow of the element of section.list whose name is at->name */
static config_setting_t *
kr_rule_list(config_t *cfg, const struct kr_rule_at *at)
{
    config_setting_t *l, *e;
    const char *v;
    char path[64];
    int i, n;

    if (at == NULL)
        return config_lookup(cfg, "network.allow");
    snprintf(path, sizeof(path), "%s.%s", at->section, at->list);
    if ((l = config_lookup(cfg, path)) == NULL || !config_setting_is_list(l))
        return NULL;
    n = config_setting_length(l);
    for (i = 0; i < n; i++) {
        e = config_setting_get_elem(l, (unsigned) i);
        if (e != NULL && config_setting_is_group(e)
            && config_setting_lookup_string(e, "name", &v) == CONFIG_TRUE
            && strcmp(v, at->name) == 0)
            return config_setting_get_member(e, "allow");
    }
    return NULL;
}

/* the result holds the entry in its allow list, as libconfig reads it */
static int
kr_rule_verify(const struct kap_buf *b, const struct kr_rule_at *at,
               const char *entry)
{
    config_t cfg;
    config_setting_t *l;
    const char *v;
    int i, n, ok = 0;
    char *s;

    if ((s = malloc(b->len + 1)) == NULL)
        return 0;
    memcpy(s, b->data, b->len);
    s[b->len] = '\0';
    config_init(&cfg);
    if (config_read_string(&cfg, s) == CONFIG_TRUE
        && (l = kr_rule_list(&cfg, at)) != NULL
        && (config_setting_is_array(l) || config_setting_is_list(l))) {
        n = config_setting_length(l);
        for (i = 0; i < n && !ok; i++)
            ok = (v = config_setting_get_string_elem(l, i)) != NULL
                 && strcmp(v, entry) == 0;
    }
    config_destroy(&cfg);
    free(s);
    return ok;
}

/* out = text[0..at) + ins + text[at..) */
static int
kr_splice(struct kap_buf *out, const char *text, size_t len, size_t at,
          const char *ins)
{
    return kap_buf_append(out, text, at) != KAP_OK
           || kap_buf_append(out, ins, strlen(ins)) != KAP_OK
           || kap_buf_append(out, text + at, len - at) != KAP_OK
           ? KAP_ERROR : KAP_OK;
}

/* NULL when the text may be edited, else why not */
static const char *
kr_text_problem(const char *text, size_t len)
{
    if (memchr(text, '\0', len) != NULL)
        return "the policy file holds a NUL byte";
    /* libconfig would read another file (the check below parses it) */
    if (kr_has_word(text, len, "@include"))
        return "the policy file has an @include directive";
    return NULL;
}

int
kr_rule_insert(const char *text, size_t len, const char *entry,
               struct kap_buf *out, unsigned *line, const char **why)
{
    struct kr_lex lx = { text, len, 0 };
    struct kr_tok t, prev = { TK_END, 0, 0 };
    char ins[400];
    size_t elen = strlen(entry), open = 0;
    int depth = 0, want = 0;    /* 1: network seen, 2: and ':' or '=' */
    int in_net = 0, lwant = 0, in_list = 0;

    *line = 0;
    if ((*why = kr_text_problem(text, len)) != NULL)
        return KAP_ERROR;
    for (;;) {
        t = kr_next(&lx);
        if (t.type == TK_BAD) {
            *why = "the policy file has an unterminated string or comment";
            return KAP_ERROR;
        }
        if (t.type == TK_END)
            break;
        if (in_list) {
            if (t.type == TK_PUNCT && (text[t.b] == ']' || text[t.b] == ')')) {
                if (prev.type == TK_STR) {
                    snprintf(ins, sizeof(ins), ", \"%s\"", entry);
                    open = prev.e;
                } else {
                    snprintf(ins, sizeof(ins), "%s\"%s\"",
                             text[prev.b] == ',' ? " " : "", entry);
                    open = prev.e;
                }
                *line = kr_line_at(text, open);
                goto splice;
            }
            if (t.type == TK_STR && t.e - t.b == elen + 2
                && memcmp(text + t.b + 1, entry, elen) == 0) {
                *line = kr_line_at(text, t.b);
                return KAP_DECLINED;    /* there already */
            }
            if (t.type != TK_STR && !(t.type == TK_PUNCT && text[t.b] == ',')) {
                *why = "network.allow holds something other than strings";
                return KAP_ERROR;
            }
            prev = t;
            continue;
        }
        if (t.type == TK_PUNCT && strchr("{[(", text[t.b]) != NULL) {
            if (in_net && depth == 1 && lwant == 2) {
                if (text[t.b] == '{') {
                    *why = "network.allow is not a list";
                    return KAP_ERROR;
                }
                in_list = 1;
                prev = t;
                depth++;
                continue;
            }
            if (!in_net && depth == 0 && want == 2 && text[t.b] == '{') {
                in_net = 1;
                open = t.e;
            }
            depth++;
            want = lwant = 0;
            continue;
        }
        if (t.type == TK_PUNCT && strchr("}])", text[t.b]) != NULL) {
            if (depth == 0) {
                *why = "the policy file's brackets do not match";
                return KAP_ERROR;
            }
            depth--;
            if (in_net && depth == 0) {
                /* the network group has no allow list: add one on top */
                snprintf(ins, sizeof(ins), "\n    allow = [\"%s\"];", entry);
                *line = kr_line_at(text, open) + 1;
                goto splice;
            }
            continue;
        }
        if (depth == 0 && !in_net) {
            want = t.type == TK_NAME && kr_tok_is(&lx, &t, "network") ? 1
                 : want == 1 && t.type == TK_PUNCT
                   && (text[t.b] == ':' || text[t.b] == '=') ? 2 : 0;
        } else if (in_net && depth == 1) {
            lwant = t.type == TK_NAME && kr_tok_is(&lx, &t, "allow") ? 1
                  : lwant == 1 && t.type == TK_PUNCT
                    && (text[t.b] == ':' || text[t.b] == '=') ? 2
                  : lwant == 2 ? 3 : 0;
            if (lwant == 3) {
                *why = "network.allow is not a list";
                return KAP_ERROR;
            }
        }
    }
    if (depth != 0 || in_net) {
        *why = "the policy file's brackets do not match";
        return KAP_ERROR;
    }
    /* no network group: one at the end */
    snprintf(ins, sizeof(ins), "%snetwork: {\n    allow = [\"%s\"];\n};\n",
             len > 0 && text[len - 1] != '\n' ? "\n" : "", entry);
    open = len;
    *line = kr_line_at(text, open) + (len > 0 && text[len - 1] != '\n') + 1;
splice:
    if (kr_splice(out, text, len, open, ins) != KAP_OK) {
        *why = "out of memory";
        return KAP_ERROR;
    }
    if (!kr_rule_verify(out, NULL, entry)) {
        *why = "the policy file does not read as libconfig with the rule added";
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- mcp.servers and cli.tools: the allow list of one named element ------ */

static int
kr_punct(const struct kr_lex *lx, const struct kr_tok *t, const char *set)
{
    return t->type == TK_PUNCT && strchr(set, lx->s[t->b]) != NULL;
}

/* past one value that starts with t: a group, list or array with all it
   holds, or a scalar (and the strings libconfig glues to a string) */
static int
kr_skip_value(struct kr_lex *lx, struct kr_tok t)
{
    int depth = 0;
    size_t save;

    for (;;) {
        if (t.type == TK_BAD || t.type == TK_END)
            return KAP_ERROR;
        if (kr_punct(lx, &t, "{[("))
            depth++;
        else if (kr_punct(lx, &t, "}])")) {
            if (--depth < 0)
                return KAP_ERROR;
        } else if (depth == 0 && t.type == TK_PUNCT)
            return KAP_ERROR;           /* ';' where a value belongs */
        if (depth == 0)
            break;
        t = kr_next(lx);
    }
    while (t.type == TK_STR) {
        save = lx->i;
        if ((t = kr_next(lx)).type != TK_STR)
            lx->i = save;
    }
    return KAP_OK;
}

/*
 * The settings of a group from lx on (top: of the file): KAP_OK with *val
 * the first token of the value of the one called name (NULL: none);
 * KAP_DECLINED at the group's end (lx past its '}'); KAP_ERROR when the
 * text is not settings.
 */
static int
kr_find(struct kr_lex *lx, int top, const char *name, struct kr_tok *val)
{
    struct kr_tok t, eq;

    for (;;) {
        t = kr_next(lx);
        if (t.type == TK_END)
            return top ? KAP_DECLINED : KAP_ERROR;
        if (kr_punct(lx, &t, "}"))
            return top ? KAP_ERROR : KAP_DECLINED;
        if (kr_punct(lx, &t, ";,"))
            continue;
        if (t.type != TK_NAME)
            return KAP_ERROR;
        eq = kr_next(lx);
        if (!kr_punct(lx, &eq, ":="))
            return KAP_ERROR;
        *val = kr_next(lx);
        if (name != NULL && kr_tok_is(lx, &t, name))
            return KAP_OK;
        if (kr_skip_value(lx, *val) != KAP_OK)
            return KAP_ERROR;
    }
}

/* t is the string "s" (written without escapes) */
static int
kr_str_is(const struct kr_lex *lx, const struct kr_tok *t, const char *s)
{
    size_t n = strlen(s);

    return t->type == TK_STR && t->e - t->b == n + 2
           && memcmp(lx->s + t->b + 1, s, n) == 0;
}

/* lx just past '{' of the group whose name is at->name: where the entry
   goes in its allow list (*pos, with ins), KAP_DECLINED when it is there */
static int
kr_group_allow(struct kr_lex *lx, const char *entry, char *ins, size_t size,
               size_t *pos, unsigned *line, const char **why)
{
    struct kr_tok v, t, prev;
    int rc = kr_find(lx, 0, "allow", &v);

    if (rc != KAP_OK) {
        *why = rc == KAP_ERROR ? "the policy file does not read as libconfig"
                               : "that entry has no allow list";
        return KAP_ERROR;
    }
    if (!kr_punct(lx, &v, "[(")) {
        *why = "its allow is not a list";
        return KAP_ERROR;
    }
    for (prev = v;; prev = t) {
        t = kr_next(lx);
        if (kr_punct(lx, &t, "])"))
            break;
        if (kr_str_is(lx, &t, entry)) {
            *line = kr_line_at(lx->s, t.b);
            return KAP_DECLINED;        /* there already */
        }
        if (t.type != TK_STR && !kr_punct(lx, &t, ",")) {
            *why = "its allow holds something other than strings";
            return KAP_ERROR;
        }
    }
    snprintf(ins, size, "%s\"%s\"", prev.type == TK_STR ? ", "
             : kr_punct(lx, &prev, ",") ? " " : "", entry);
    *pos = prev.e;
    *line = kr_line_at(lx->s, *pos);
    return KAP_OK;
}

int
kr_rule_insert_at(const char *text, size_t len, const struct kr_rule_at *at,
                  const char *entry, struct kap_buf *out, unsigned *line,
                  const char **why)
{
    struct kr_lex lx = { text, len, 0 };
    struct kr_tok v, t;
    char ins[1200];
    size_t body, pos = 0;
    int rc;

    *line = 0;
    if (at == NULL)
        return kr_rule_insert(text, len, entry, out, line, why);
    if ((*why = kr_text_problem(text, len)) != NULL)
        return KAP_ERROR;
    if (strlen(entry) > 1000) {
        *why = "the rule is too long";
        return KAP_ERROR;
    }
    if ((rc = kr_find(&lx, 1, at->section, &v)) != KAP_OK
        || !kr_punct(&lx, &v, "{")
        || (rc = kr_find(&lx, 0, at->list, &v)) != KAP_OK
        || !kr_punct(&lx, &v, "(")) {
        *why = rc == KAP_ERROR ? "the policy file does not read as libconfig"
             : rc == KAP_DECLINED ? "the policy file has no such list"
             : "that setting is not a list of groups";
        return KAP_ERROR;
    }
    for (;;) {
        t = kr_next(&lx);
        if (kr_punct(&lx, &t, ","))
            continue;
        if (kr_punct(&lx, &t, ")")) {
            *why = "no entry of that name in the list";
            return KAP_ERROR;
        }
        if (!kr_punct(&lx, &t, "{")) {
            *why = "the list holds something other than groups";
            return KAP_ERROR;
        }
        body = lx.i;
        if ((rc = kr_find(&lx, 0, "name", &v)) == KAP_ERROR) {
            *why = "the policy file does not read as libconfig";
            return KAP_ERROR;
        }
        lx.i = body;
        if (rc == KAP_OK && kr_str_is(&lx, &v, at->name))
            break;
        if (kr_find(&lx, 0, NULL, &v) != KAP_DECLINED) {
            *why = "the policy file does not read as libconfig";
            return KAP_ERROR;
        }
    }
    rc = kr_group_allow(&lx, entry, ins, sizeof(ins), &pos, line, why);
    if (rc != KAP_OK)
        return rc;
    if (kr_splice(out, text, len, pos, ins) != KAP_OK) {
        *why = "out of memory";
        return KAP_ERROR;
    }
    if (!kr_rule_verify(out, at, entry)) {
        *why = "the policy file does not read as libconfig with the rule added";
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* 1 when s is 1..max bytes of [A-Za-z0-9] and the bytes of more (not
   first) */
static int
kr_word_ok(const char *s, size_t max, const char *more)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9')
              || (i > 0 && strchr(more, s[i]) != NULL)))
            return 0;
    return 1;
}

int
kr_rule_target(uint32_t kind, const char *subject, unsigned port,
               const char *server, const char *rule, struct kr_rule_at *at,
               char *out, size_t size, const char **why)
{
    const char *p;

    memset(at, 0, sizeof(*at));
    if (kind == KAP_REQ_MCP_CALL) {
        /* an MCP server's name, and a tool's name: never a pattern */
        if (server == NULL || !kr_word_ok(server, 64, "_-")) {
            *why = "the question names no valid mcp server";
            return KAP_ERROR;
        }
        if (!kr_word_ok(subject, 128, "_-.")) {
            *why = "the tool's name is not letters, digits, '_', '-', '.'";
            return KAP_ERROR;
        }
        at->section = "mcp";
        at->list = "servers";
        at->name = server;
        rule = subject;
    } else if (kind == KAP_REQ_CLI) {
        if (!kr_word_ok(subject, 64, "_-.")) {
            *why = "the tool's name is not letters, digits, '_', '-', '.'";
            return KAP_ERROR;
        }
        /* the canonical rule of the call (kap cli test's): printable
           ASCII without quotes or backslashes, never every command */
        if (rule == NULL || rule[0] == '\0') {
            *why = "the question carries no rule for the command";
            return KAP_ERROR;
        }
        for (p = rule; *p; p++)
            if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\') {
                *why = "the command's rule holds a quote, a backslash or"
                       " a byte that is not printable ASCII";
                return KAP_ERROR;
            }
        if (strpbrk(rule, "*?") != NULL) {
            *why = "the command's rule has a wildcard: it would allow more"
                   " than this call";
            return KAP_ERROR;
        }
        at->section = "cli";
        at->list = "tools";
        at->name = subject;
    } else {
        return kr_rule_entry(kind, subject, port, out, size, why);
    }
    if ((size_t) snprintf(out, size, "%s", rule) >= size) {
        *why = "the rule is too long";
        return KAP_ERROR;
    }
    return KAP_OK;
}
