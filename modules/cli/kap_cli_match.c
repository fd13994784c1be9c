/*
 * kap_cli_match.c -- match rules against a canonical call and decide:
 * deny rules (prefix, any value), then allow rules (exact, every value),
 * with the profile's sensitive and guarded entries that only an allow
 * rule naming them reaches (docs/design/cli-rules.md).
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"

int
kap_cli_glob(const char *pat, const char *s)
{
    const char *star = NULL, *mark = NULL;

    while (*s) {
        if (*pat == '*') {
            star = pat++;
            mark = s;
        } else if (*pat == '?' || *pat == *s) {
            pat++;
            s++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++mark;
        } else
            return 0;
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static int
words(const struct kap_cli_item *it, size_t ni, size_t ii,
      const char *const *w, size_t nw, size_t wi, int deny, size_t *map)
{
    if (ii == ni)
        return deny || wi == nw;
    switch (it[ii].kind) {
    case KAP_CLI_DSTAR:
        for (size_t k = wi; k <= nw; k++) {
            if (map != NULL && k > wi)
                map[k - 1] = ii;
            if (words(it, ni, ii + 1, w, nw, k, deny, map))
                return 1;
        }
        return 0;
    case KAP_CLI_STAR:
    case KAP_CLI_WORD:
        if (wi == nw)
            return 0;
        if (it[ii].kind == KAP_CLI_WORD && !kap_cli_glob(it[ii].text, w[wi]))
            return 0;
        if (map != NULL)
            map[wi] = ii;
        return words(it, ni, ii + 1, w, nw, wi + 1, deny, map);
    default:
        return 0;
    }
}

static int
cond(const struct kap_cli_item *c, const struct kap_cli_call *call, int deny)
{
    size_t n = 0, hit = 0;

    for (size_t i = 0; i < call->nfv; i++) {
        const char *v = call->fv[i].value;
        int         m;

        if (strcmp(call->fv[i].flag->name, c->flag->name) != 0)
            continue;
        if (c->kind == KAP_CLI_F_PRESENT || c->kind == KAP_CLI_F_ABSENT)
            m = c->flag->value || strcmp(v, "false") != 0;
        else
            m = kap_cli_glob(c->text, v) == (c->kind == KAP_CLI_F_EQ);
        n++;
        hit += m != 0;
    }
    if (c->kind == KAP_CLI_F_ABSENT)
        return hit == 0;
    return deny ? hit > 0 : n > 0 && hit == n;
}

int
kap_cli_rule_match(const struct kap_cli_rule *r, const struct kap_cli_call *c,
                   int deny, size_t *map)
{
    for (size_t i = 0; i < r->ncond; i++)
        if (!cond(&r->cond[i], c, deny))
            return 0;
    return words(r->word, r->nword, 0, c->word, c->nword, 0, deny, map);
}

/* Does allow rule a (matched with map) spell entry e's words and flags? */
static int
reaches(const struct kap_cli_rule *a, const size_t *map,
        const struct kap_cli_rule *e, const struct kap_cli_call *c)
{
    for (size_t j = 0; j < e->nword && j < c->nword; j++) {
        if (e->word[j].kind == KAP_CLI_DSTAR)
            break;
        if (a->word[map[j]].kind != KAP_CLI_WORD)
            return 0;
    }
    for (size_t k = 0; k < e->ncond; k++) {
        int named = 0;

        for (size_t i = 0; i < a->ncond && !named; i++)
            named = strcmp(a->cond[i].flag->name, e->cond[k].flag->name) == 0
                    && a->cond[i].kind != KAP_CLI_F_ABSENT
                    && (!e->cond[k].flag->value
                        || a->cond[i].kind == KAP_CLI_F_EQ
                        || a->cond[i].kind == KAP_CLI_F_NE);
        if (!named)
            return 0;
    }
    return 1;
}

/* A path value kapd will not let through without a rule naming it. */
static int
unsafe_path(const char *v)
{
    return v[0] == '/' || v[0] == '~' || strchr(v, '$') != NULL
           || strstr(v, "..") != NULL;
}

/* Does allow rule a name path flag f with a value pattern? */
static int
names_value(const struct kap_cli_rule *a, const struct kap_cli_flag *f)
{
    for (size_t i = 0; i < a->ncond; i++)
        if (strcmp(a->cond[i].flag->name, f->name) == 0
            && (a->cond[i].kind == KAP_CLI_F_EQ
                || a->cond[i].kind == KAP_CLI_F_NE))
            return 1;
    return 0;
}

/* The profile's guardvalue glob v matches, or NULL. */
static const char *
guard_glob(const struct kap_cli_profile *p, const char *v)
{
    for (size_t g = 0; g < p->nguardvalue; g++)
        if (kap_cli_glob(p->guardvalue[g], v))
            return p->guardvalue[g];
    return NULL;
}

/*
 * A flag value or an argument word matching a guardvalue glob (aws
 * file://, az @file): the allow rule must name the flag with a value
 * pattern, or spell the word with a word item (not * or **).
 */
static const char *
guarded_value(struct kap_pool *pool, const struct kap_cli_profile *p,
              const struct kap_cli_call *c, const struct kap_cli_rule *a,
              const size_t *map)
{
    const char *g;

    for (size_t i = 0; i < c->nfv; i++)
        if (c->fv[i].flag->value && (g = guard_glob(p, c->fv[i].value)) != NULL
            && !names_value(a, c->fv[i].flag))
            return kap_psprintf(pool, "guarded: --%s=%s", c->fv[i].flag->name, g);
    for (size_t i = c->npath; i < c->nword; i++)
        if ((g = guard_glob(p, c->word[i])) != NULL
            && a->word[map[i]].kind != KAP_CLI_WORD)
            return kap_psprintf(pool, "guarded: %s", g);
    return NULL;
}

/* Why allow rule a (matched, with map) may not allow c; NULL if it may. */
static const char *
blocked(struct kap_pool *pool, const struct kap_cli_profile *p,
        const struct kap_cli_call *c, const struct kap_cli_rule *a,
        const size_t *map)
{
    for (size_t i = 0; i < p->nsensitive; i++)
        if (kap_cli_rule_match(p->sensitive[i], c, 1, NULL)
            && !reaches(a, map, p->sensitive[i], c))
            return kap_psprintf(pool, "sensitive: %s", p->sensitive[i]->text);
    for (size_t i = 0; i < p->nguarded; i++)
        if (kap_cli_rule_match(p->guarded[i], c, 1, NULL)
            && !reaches(a, map, p->guarded[i], c))
            return kap_psprintf(pool, "guarded: %s", p->guarded[i]->text);
    for (size_t i = 0; i < c->nfv; i++)
        if (c->fv[i].flag->path && unsafe_path(c->fv[i].value)
            && !names_value(a, c->fv[i].flag))
            return kap_psprintf(pool, "guarded: --%s (path)",
                                c->fv[i].flag->name);
    return guarded_value(pool, p, c, a, map);
}

/* A word as a rule item: quoted when it has blanks, globs escaped away. */
static const char *
item_text(struct kap_pool *pool, const char *w)
{
    if (*w == '\0' || strpbrk(w, "*?'\" \t") != NULL || w[0] == '-'
        || w[0] == '!')
        return "*";
    return w;
}

/* The narrowest rule that allows c: its words and its flags; *literal
 * is 1 when it spells every word and value (it allows exactly c). */
static const char *
suggestion(struct kap_pool *pool, const struct kap_cli_call *c, int *literal)
{
    const char *s = "";

    *literal = 1;
    for (size_t i = 0; s != NULL && i < c->nword; i++) {
        const char *w = item_text(pool, c->word[i]);

        if (w[0] == '*')
            *literal = 0;
        s = kap_psprintf(pool, "%s%s%s", s, i ? " " : "", w);
    }
    for (size_t i = 0; s != NULL && i < c->nfv; i++) {
        const struct kap_cli_flag *f = c->fv[i].flag;
        const char *v = c->fv[i].value;

        if (f->value && strpbrk(v, "*?'\" \t") == NULL)
            s = kap_psprintf(pool, "%s%s--%s=%s", s, *s ? " " : "", f->name, v);
        else if (f->value) {
            *literal = 0;
            s = kap_psprintf(pool, "%s%s--%s", s, *s ? " " : "", f->name);
        } else if (strcmp(v, "true") == 0)
            s = kap_psprintf(pool, "%s%s--%s", s, *s ? " " : "", f->name);
    }
    if (s != NULL && *s == '\0')
        *literal = 0;
    return s != NULL && *s == '\0' ? "**" : s;
}

const char *
kap_cli_suggest(struct kap_pool *pool, const struct kap_cli_call *c)
{
    int literal;

    return suggestion(pool, c, &literal);
}

void
kap_cli_decide(struct kap_pool *pool, const struct kap_cli_profile *p,
               const struct kap_cli_call *c,
               struct kap_cli_rule *const *deny, size_t ndeny,
               struct kap_cli_rule *const *allow, size_t nallow,
               struct kap_cli_verdict *v)
{
    kap_cli_decide_ask(pool, p, c, deny, ndeny, NULL, 0, allow, nallow, v);
}

/* The first of rules (matched as allow rules are) that c passes with the
 * profile's sensitive and guarded entries, or NULL; the first entry that
 * blocked a matching rule goes to *why unless it is set. */
static const struct kap_cli_rule *
first_exact(struct kap_pool *pool, const struct kap_cli_profile *p,
            const struct kap_cli_call *c, struct kap_cli_rule *const *rules,
            size_t n, size_t *map, const char **why)
{
    for (size_t i = 0; i < n; i++) {
        const char *b;

        if (!kap_cli_rule_match(rules[i], c, 0, map))
            continue;
        if ((b = blocked(pool, p, c, rules[i], map)) == NULL)
            return rules[i];
        if (*why == NULL)
            *why = b;
    }
    return NULL;
}

static void
decide_one(struct kap_pool *pool, const struct kap_cli_profile *p,
           const struct kap_cli_call *c,
           struct kap_cli_rule *const *deny, size_t ndeny,
           struct kap_cli_rule *const *ask, size_t nask,
           struct kap_cli_rule *const *allow, size_t nallow,
           struct kap_cli_verdict *v)
{
    size_t     *map = kap_palloc(pool, (c->nword + 1) * sizeof(*map));
    const char *why = NULL, *sg;
    int         literal;

    memset(v, 0, sizeof(*v));
    v->reason = "out-of-memory";
    if (map == NULL)
        return;
    for (size_t i = 0; i < ndeny; i++)
        if (kap_cli_rule_match(deny[i], c, 1, NULL)) {
            v->reason = kap_psprintf(pool, "deny-rule: %s", deny[i]->text);
            v->rule = deny[i];
            return;
        }
    /* ask narrows allow, but not an allow rule that spells exactly this
       call (what "allow always" writes: the call's suggestion) */
    if (nask > 0 && (sg = suggestion(pool, c, &literal)) != NULL && literal)
        for (size_t i = 0; i < nallow; i++)
            if (strcmp(allow[i]->text, sg) == 0
                && first_exact(pool, p, c, &allow[i], 1, map, &why) != NULL) {
                v->allow = 1;
                v->reason = "allow";
                v->rule = allow[i];
                return;
            }
    if ((v->rule = first_exact(pool, p, c, ask, nask, map, &why)) != NULL) {
        v->ask = 1;
        v->reason = kap_psprintf(pool, "ask-rule: %s", v->rule->text);
        return;
    }
    if ((v->rule = first_exact(pool, p, c, allow, nallow, map, &why))
        != NULL) {
        v->allow = 1;
        v->reason = "allow";
        return;
    }
    v->reason = why != NULL ? why : "no-allow-rule";
    v->suggest = suggestion(pool, c, &literal);
}

/*
 * A call with readings (kubectl "get secrets,pods") is decided once per
 * reading: the first denied reading decides; else one that asks; else
 * all are allowed and the first reading's rule is named.
 */
void
kap_cli_decide_ask(struct kap_pool *pool, const struct kap_cli_profile *p,
                   const struct kap_cli_call *c,
                   struct kap_cli_rule *const *deny, size_t ndeny,
                   struct kap_cli_rule *const *ask, size_t nask,
                   struct kap_cli_rule *const *allow, size_t nallow,
                   struct kap_cli_verdict *v)
{
    struct kap_cli_call    one;
    struct kap_cli_verdict vi, asked;

    if (c->nreading == 0) {
        decide_one(pool, p, c, deny, ndeny, ask, nask, allow, nallow, v);
        return;
    }
    memset(&asked, 0, sizeof(asked));
    for (size_t i = 0; i < c->nreading; i++) {
        one = *c;
        one.word = c->reading[i].word;
        one.nword = c->reading[i].nword;
        one.reading = NULL;
        one.nreading = 0;
        decide_one(pool, p, &one, deny, ndeny, ask, nask, allow, nallow, &vi);
        if (!vi.allow && !vi.ask) {
            *v = vi;
            return;
        }
        if (vi.ask && !asked.ask)
            asked = vi;
        if (i == 0)
            *v = vi;
    }
    if (asked.ask)
        *v = asked;
}
