/*
 * kap_cli_rule.c -- parse one allow/deny rule (or a profile's sensitive
 * or guarded entry) and canonicalise it with the tool's profile: command
 * words through the tree and its aliases, flags to their long names.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"

#define MAX_ITEMS 256

struct rp {
    struct kap_pool              *pool;
    const struct kap_cli_profile *p;
    char                         *err;
    size_t                        errlen;
};

static int
fail(struct rp *r, const char *what, const char *tok)
{
    snprintf(r->err, r->errlen, "%s%s%s", what, tok ? " " : "", tok ? tok : "");
    return -1;
}

/* Split text into items; quotes '…' and "…" keep blanks. */
static int
tokens(struct rp *r, const char *s, char **tok, size_t *ntok)
{
    *ntok = 0;
    for (;;) {
        char  *t, q = 0;
        size_t n = 0;

        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0')
            return 0;
        if (*ntok == MAX_ITEMS)
            return fail(r, "too many items", NULL);
        if ((t = kap_palloc(r->pool, strlen(s) + 1)) == NULL)
            return fail(r, "out of memory", NULL);
        for (; *s && (q || (*s != ' ' && *s != '\t')); s++) {
            if (q ? *s == q : (*s == '\'' || *s == '"')) {
                q = q ? 0 : *s;
                continue;
            }
            t[n++] = *s;
        }
        if (q)
            return fail(r, "unterminated quote", NULL);
        tok[(*ntok)++] = t;
    }
}

/*
 * A flag spelled spell anywhere in the subtree of n; ambiguity is an
 * error (the caller first tries the node the rule's words reached).
 */
static const struct kap_cli_flag *
flag_below(const struct kap_cli_node *n, const char *spell, size_t len,
           const struct kap_cli_flag *found, int *ambiguous)
{
    const struct kap_cli_flag *f = kap_cli_flag_at(n, spell, len);

    if (f != NULL) {
        if (found != NULL && strcmp(found->name, f->name) != 0)
            *ambiguous = 1;
        found = f;
    }
    for (size_t i = 0; i < n->nchild; i++)
        found = flag_below(n->child[i], spell, len, found, ambiguous);
    return found;
}

static int
is_derived_upper(const struct kap_cli_profile *p, const char *name)
{
    for (size_t i = 0; i < p->nderived; i++)
        if (strcmp(p->derived[i].flag, name) == 0)
            return 1;
    return 0;
}

static int
flag_item(struct rp *r, const struct kap_cli_node *at, const char *t,
          struct kap_cli_item *it)
{
    const char *eq;
    size_t      len;
    int         amb = 0;

    if (t[0] == '!') {
        it->kind = KAP_CLI_F_ABSENT;
        t++;
        if (strchr(t, '=') != NULL)
            return fail(r, "!--flag takes no value:", t);
    } else
        it->kind = KAP_CLI_F_PRESENT;
    eq = strchr(t, '=');
    len = eq ? (size_t) (eq - t) : strlen(t);
    if (eq != NULL) {
        it->kind = KAP_CLI_F_EQ;
        if (len > 0 && t[len - 1] == '!') {
            it->kind = KAP_CLI_F_NE;
            len--;
        }
        it->text = kap_pstrdup(r->pool, eq + 1);
        if (it->text == NULL)
            return fail(r, "out of memory", NULL);
    }
    if (len < 2 || t[0] != '-' || (t[1] != '-' && len != 2)
        || (t[1] == '-' && len == 2))
        return fail(r, "bad flag item", t);
    it->flag = kap_cli_flag_at(at, t, len);    /* where the words reached */
    if (it->flag == NULL)
        it->flag = flag_below(at, t, len, NULL, &amb);
    if (it->flag == NULL || amb)
        return fail(r, amb ? "ambiguous flag (use its long name)"
                           : "unknown flag", kap_pstrndup(r->pool, t, len));
    if (it->text != NULL && !it->flag->value
        && strcmp(it->text, "true") != 0 && strcmp(it->text, "false") != 0)
        return fail(r, "a bool flag's value is true or false:", t);
    if (it->text != NULL && is_derived_upper(r->p, it->flag->name)) {
        for (char *c = (char *) it->text; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char) (*c - 'a' + 'A');
    }
    return 0;
}

static int
has_glob(const char *s)
{
    return strpbrk(s, "*?") != NULL;
}

/*
 * The resource type a rule names after a resargs/resname command, in the
 * form kap_cli_res.c gives the call's: "get Secret/x" is "get secrets x"
 * (resname: "logs deploy/x" is "logs deployments/x"); a glob is only
 * lower-cased; a list is an error (a call's list is decided per type).
 */
static int
res_word(struct rp *r, const struct kap_cli_node *n, struct kap_cli_rule *rule,
         size_t at)
{
    struct kap_cli_item *it = &rule->word[at];
    const char          *t = it->text, *sl, *ty;
    char                *typ;

    if (!(n->resargs || n->resname) || it->kind != KAP_CLI_WORD)
        return 0;
    if (n->resargs && strchr(t, ',') != NULL)
        return fail(r, "a rule names one resource type per word:", t);
    sl = strchr(t, '/');
    typ = kap_pstrndup(r->pool, t, sl ? (size_t) (sl - t) : strlen(t));
    if (typ == NULL)
        return fail(r, "out of memory", NULL);
    if (has_glob(typ)) {
        for (char *c = typ; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char) (*c - 'A' + 'a');
        ty = typ;
    } else if ((ty = kap_cli_res_type(r->pool, r->p, typ)) == NULL)
        return fail(r, "out of memory", NULL);
    if (sl == NULL) {
        it->text = ty;
        return 0;
    }
    if (n->resname) {
        it->text = kap_psprintf(r->pool, "%s%s", ty, sl);
        return it->text == NULL ? fail(r, "out of memory", NULL) : 0;
    }
    /* resargs TYPE/NAME: two words, as the call is split */
    memmove(it + 2, it + 1, (rule->nword - at - 1) * sizeof(*it));
    it->text = ty;
    it[1].kind = strcmp(sl + 1, "*") == 0 ? KAP_CLI_STAR : KAP_CLI_WORD;
    it[1].text = sl + 1;
    it[1].flag = NULL;
    rule->nword++;
    return 0;
}

struct kap_cli_rule *
kap_cli_rule_parse(struct kap_pool *pool, const struct kap_cli_profile *p,
                   const char *text, const char *file, int line,
                   char *err, size_t errlen)
{
    struct rp                  r = { pool, p, err, errlen };
    char                      *tok[MAX_ITEMS];
    size_t                     ntok, ndstar = 0;
    struct kap_cli_rule       *rule = kap_palloc(pool, sizeof(*rule));
    const struct kap_cli_node *node = p->root;
    int                        resolving = 1;
    size_t                     first_arg = (size_t) -1;

    if (errlen > 0)
        err[0] = '\0';
    if (rule == NULL || tokens(&r, text, tok, &ntok) < 0)
        return NULL;
    rule->text = kap_pstrdup(pool, text);
    rule->file = file ? kap_pstrdup(pool, file) : NULL;
    rule->line = line;
    rule->word = kap_palloc(pool, (ntok * 4 + 1) * sizeof(*rule->word));
    rule->cond = kap_palloc(pool, (ntok + 1) * sizeof(*rule->cond));
    if (rule->text == NULL || rule->word == NULL || rule->cond == NULL) {
        fail(&r, "out of memory", NULL);
        return NULL;
    }
    /* words first: flags are resolved at the node the words reach */
    for (size_t i = 0; i < ntok; i++) {
        const char          *t = tok[i];
        struct kap_cli_item *it = &rule->word[rule->nword];

        if ((t[0] == '-' && t[1] != '\0') || t[0] == '!')
            continue;
        it->kind = strcmp(t, "**") == 0 ? KAP_CLI_DSTAR
                 : strcmp(t, "*") == 0 ? KAP_CLI_STAR : KAP_CLI_WORD;
        it->text = t;
        if (it->kind == KAP_CLI_DSTAR && ++ndstar > 2) {
            fail(&r, "more than two ** in a rule", NULL);
            return NULL;
        }
        if (resolving && node->nchild == 0) {
            resolving = 0;
            first_arg = rule->nword;
        }
        if (resolving && it->kind == KAP_CLI_WORD && !has_glob(t)) {
            const struct kap_cli_node  *c = kap_cli_node_child(node, t);
            const struct kap_cli_alias *a = kap_cli_node_alias(node, t);

            if (c == NULL && a == NULL) {
                fail(&r, "unknown command word", t);
                return NULL;
            }
            if (c != NULL) {
                node = c;
                it->text = c->name;
                rule->nword++;
                continue;
            }
            for (size_t k = 0; k < a->nexpansion; k++) {
                if ((c = kap_cli_node_child(node, a->expansion[k])) == NULL) {
                    fail(&r, "unknown command word", t);
                    return NULL;
                }
                node = c;
                rule->word[rule->nword].kind = KAP_CLI_WORD;
                rule->word[rule->nword++].text = c->name;
            }
            continue;
        }
        resolving = 0;
        rule->nword++;
    }
    if (first_arg < rule->nword && res_word(&r, node, rule, first_arg) < 0)
        return NULL;
    for (size_t i = 0; i < ntok; i++) {
        const char *t = tok[i];

        if (!((t[0] == '-' && t[1] != '\0') || t[0] == '!'))
            continue;
        if (flag_item(&r, node, t, &rule->cond[rule->ncond]) < 0)
            return NULL;
        rule->ncond++;
    }
    return rule;
}
