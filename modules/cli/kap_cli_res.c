/*
 * kap_cli_res.c -- kubectl's resource arguments in canonical form, so
 * that a rule on "get secrets" cannot be dodged by another spelling of
 * the same type (cli-policy.md 1.4, 2.2).  kubectl reads the arguments
 * of get, describe, delete, ... (cli-runtime's resource builder) as
 *   TYPE[,TYPE...] [NAME...]   or   TYPE/NAME [TYPE/NAME...]
 * (a mix is refused), a TYPE case-insensitively as a plural, a singular,
 * a kind, a short name, TYPE.GROUP or TYPE.VERSION.GROUP, and a category
 * ("all") as its member types.  Here each TYPE becomes the plural the
 * rule language uses, the canonical argv carries those plurals, and a
 * list, a category or several TYPE/NAME arguments become readings: one
 * word list per type, each decided on its own (kap_cli_match.c).
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"

static char *
lower_dup(struct kap_pool *pool, const char *s, size_t n)
{
    char *d = kap_pstrndup(pool, s, n);

    for (char *c = d; c != NULL && *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char) (*c - 'A' + 'a');
    return d;
}

/* The type (not a category) named t (lower case), or NULL. */
static const struct kap_cli_restype *
find_type(const struct kap_cli_profile *p, const char *t, size_t n)
{
    for (size_t i = 0; i < p->nrestype; i++) {
        const struct kap_cli_restype *r = &p->restype[i];

        if (r->nmember > 0)
            continue;
        if (strlen(r->plural) == n && memcmp(r->plural, t, n) == 0)
            return r;
        for (size_t k = 0; k < r->nname; k++)
            if (strlen(r->name[k]) == n && memcmp(r->name[k], t, n) == 0)
                return r;
    }
    return NULL;
}

static const struct kap_cli_restype *
find_category(const struct kap_cli_profile *p, const char *t)
{
    for (size_t i = 0; i < p->nrestype; i++)
        if (p->restype[i].nmember > 0 && strcmp(p->restype[i].plural, t) == 0)
            return &p->restype[i];
    return NULL;
}

/* g names one of r's groups ("core" is the "" group too). */
static int
in_group(const struct kap_cli_restype *r, const char *g)
{
    if (strcmp(g, "core") == 0)
        g = "";
    for (size_t k = 0; k < r->ngroup; k++)
        if (strcmp(r->group[k], g) == 0)
            return 1;
    return 0;
}

/* An API version: v1, v2beta1, v1alpha3. */
static int
is_version(const char *s)
{
    if (*s++ != 'v' || *s < '1' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    if (strncmp(s, "alpha", 5) == 0 || strncmp(s, "beta", 4) == 0) {
        s += s[0] == 'a' ? 5 : 4;
        if (*s < '1' || *s > '9')
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

const char *
kap_cli_res_type(struct kap_pool *pool, const struct kap_cli_profile *p,
                 const char *tok)
{
    char                         *t = lower_dup(pool, tok, strlen(tok));
    const char                   *dot, *rest, *g;
    const struct kap_cli_restype *r;

    if (t == NULL)
        return NULL;
    if ((r = find_type(p, t, strlen(t))) != NULL)
        return r->plural;
    if ((dot = strchr(t, '.')) == NULL
        || (r = find_type(p, t, (size_t) (dot - t))) == NULL)
        return t;
    /* TYPE.GROUP ("secrets." is the core group), or TYPE.VERSION.GROUP
       (kubectl tries that reading first, then TYPE.GROUP with the rest
       as the group: either one naming the type's own group is it) */
    rest = dot + 1;
    if (in_group(r, rest))
        return r->plural;
    /* TYPE.VERSION: kubectl reads VERSION as a group and finds none; the
       type it spells is taken all the same (no other reading exists) */
    if (is_version(rest))
        return r->plural;
    if ((g = strchr(rest, '.')) != NULL && g > rest && in_group(r, g + 1))
        return r->plural;
    return t;                   /* another group's type: as written */
}

static int
fail(const char **why, const char *what)
{
    *why = what;
    return -1;
}

/* Room for n readings in call. */
static int
readings(struct kap_pool *pool, struct kap_cli_call *call, size_t n)
{
    call->reading = kap_palloc(pool, (n + 1) * sizeof(*call->reading));
    call->nreading = 0;
    return call->reading == NULL ? -1 : 0;
}

/* One reading: path, type, then words[0..nw). */
static int
reading(struct kap_pool *pool, struct kap_cli_call *call, const char **path,
        size_t npath, const char *type, const char **words, size_t nw)
{
    struct kap_cli_reading *r = &call->reading[call->nreading];

    r->word = kap_palloc(pool, (npath + 1 + nw + 1) * sizeof(*r->word));
    if (r->word == NULL)
        return -1;
    memcpy(r->word, path, npath * sizeof(*path));
    r->word[npath] = type;
    if (nw > 0)
        memcpy(r->word + npath + 1, words, nw * sizeof(*words));
    r->nword = npath + 1 + nw;
    call->nreading++;
    return 0;
}

/* Not a resource argument: a label, an annotation, a KEY=VALUE, a taint
   or its removal (label pod/x a=b, set env deploy/x K=V, label po/x a-). */
static int
extra(const char *w)
{
    size_t n = strlen(w);

    return strchr(w, '=') != NULL
           || (n > 1 && w[n - 1] == '-' && strchr(w, '/') == NULL);
}

/* TYPE/NAME arguments: every resource argument is one (kubectl refuses a
   mix); each pair is a reading with the other words after it. */
static int
res_pairs(struct kap_pool *pool, const struct kap_cli_profile *p,
          const char **path, size_t npath, const char **pos, size_t *npos,
          struct kap_cli_call *call, const char **why)
{
    const char **rest = kap_palloc(pool, (*npos + 2) * sizeof(*rest));
    const char  *type = NULL, *name = NULL;
    size_t       nrest = 0, npair = 0;

    if (rest == NULL || readings(pool, call, *npos) < 0)
        return fail(why, "out-of-memory");
    for (size_t i = 0; i < *npos; i++)
        if (extra(pos[i]))
            rest[nrest++] = pos[i];
    for (size_t i = 0; i < *npos; i++) {
        const char *sl = strchr(pos[i], '/'), *t;
        char       *tt;

        if (extra(pos[i]))
            continue;
        if (sl == NULL)
            return fail(why, "bad-resource-args: TYPE/NAME mixed with other "
                        "arguments");
        if (sl == pos[i] || sl[1] == '\0' || strchr(sl + 1, '/') != NULL
            || memchr(pos[i], ',', (size_t) (sl - pos[i])) != NULL)
            return fail(why, "bad-resource-args: TYPE/NAME");
        tt = kap_pstrndup(pool, pos[i], (size_t) (sl - pos[i]));
        t = tt != NULL ? kap_cli_res_type(pool, p, tt) : NULL;
        if (t == NULL || find_category(p, t) != NULL)
            return fail(why, t == NULL ? "out-of-memory"
                                       : "bad-resource-args: category/NAME");
        /* a lone pair is run as two words: a TYPE or a NAME that reads
           as a label on its own (x=y, or x- : no Kubernetes type or name
           has either) would be taken as one by kubectl, and another word
           as the type (label foo-/secrets a=b --all); a NAME that starts
           with '-' (no Kubernetes name does) as flags
           (get pods/-nkube-system) */
        if (extra(t) || extra(sl + 1) || sl[1] == '-')
            return fail(why, "bad-resource-args: TYPE/NAME that reads as "
                        "a label or a flag");
        rest[nrest] = sl + 1;    /* the name, then the other words */
        memmove(rest + 1, rest, nrest * sizeof(*rest));
        rest[0] = sl + 1;
        if (reading(pool, call, path, npath, t, rest, nrest + 1) < 0
            || (pos[i] = kap_psprintf(pool, "%s/%s", t, sl + 1)) == NULL)
            return fail(why, "out-of-memory");
        memmove(rest, rest + 1, nrest * sizeof(*rest));
        type = t;
        name = sl + 1;
        npair++;
    }
    if (npair == 1) {            /* TYPE/NAME alone is TYPE NAME, first */
        pos[0] = type;
        pos[1] = name;
        memcpy(pos + 2, rest, nrest * sizeof(*rest));
        *npos = nrest + 2;
        call->nreading = 0;
    }
    return 0;
}

/* TYPE[,TYPE...] [NAME...]: one reading per type, categories expanded. */
static int
res_list(struct kap_pool *pool, const struct kap_cli_profile *p,
         const char **path, size_t npath, const char **pos, size_t npos,
         struct kap_cli_call *call, const char **why)
{
    const char *s, *out = "";
    size_t      nread = 1, most = 1, ntype = 0, k = 0;

    /* the type list is the first resource argument: it goes first, the
       other words keep their order (kubectl label x=y pods a) */
    while (k < npos && extra(pos[k]))
        k++;
    if (k == npos)
        return 0;
    s = pos[k];
    memmove(pos + 1, pos, k * sizeof(*pos));
    pos[0] = s;

    for (const char *c = s; *c; c++)
        nread += *c == ',';
    for (size_t i = 0; i < p->nrestype; i++)
        if (p->restype[i].nmember > most)
            most = p->restype[i].nmember;
    if (readings(pool, call, nread * most) < 0)
        return fail(why, "out-of-memory");
    for (;;) {
        const char                   *e = strchr(s, ','), *t;
        size_t                        n = e ? (size_t) (e - s) : strlen(s);
        const struct kap_cli_restype *cat;
        char                         *one;

        if (n == 0)
            return fail(why, "bad-resource-args: empty type");
        one = kap_pstrndup(pool, s, n);
        t = one != NULL ? kap_cli_res_type(pool, p, one) : NULL;
        out = t != NULL ? kap_psprintf(pool, "%s%s%s", out, ntype ? "," : "",
                                       t) : NULL;
        if (out == NULL)
            return fail(why, "out-of-memory");
        ntype++;
        if ((cat = find_category(p, t)) != NULL) {
            for (size_t m = 0; m < cat->nmember; m++)
                if (reading(pool, call, path, npath, cat->member[m], pos + 1,
                            npos - 1) < 0)
                    return fail(why, "out-of-memory");
        } else if (reading(pool, call, path, npath, t, pos + 1, npos - 1)
                   < 0)
            return fail(why, "out-of-memory");
        if (e == NULL)
            break;
        s = e + 1;
    }
    pos[0] = out;
    if (call->nreading == 1)
        call->nreading = 0;      /* one type: the words say it all */
    return 0;
}

int
kap_cli_res_canon(struct kap_pool *pool, const struct kap_cli_profile *p,
                  const struct kap_cli_node *n, const char **path,
                  size_t npath, const char **pos, size_t *npos,
                  struct kap_cli_call *call, const char **why)
{
    const char *sl;
    char       *tt;
    const char *t;

    call->nreading = 0;
    if (*npos == 0)
        return 0;
    if (n->resargs) {
        for (size_t i = 0; i < *npos; i++)
            if (strchr(pos[i], '/') != NULL && !extra(pos[i]))
                return res_pairs(pool, p, path, npath, pos, npos, call, why);
        return res_list(pool, p, path, npath, pos, *npos, call, why);
    }
    /* resname: POD, or TYPE/NAME in one word */
    if (!n->resname || (sl = strchr(pos[0], '/')) == NULL)
        return 0;
    if (sl == pos[0] || sl[1] == '\0')
        return fail(why, "bad-resource-args: TYPE/NAME");
    tt = kap_pstrndup(pool, pos[0], (size_t) (sl - pos[0]));
    t = tt != NULL ? kap_cli_res_type(pool, p, tt) : NULL;
    if (t == NULL || (pos[0] = kap_psprintf(pool, "%s%s", t, sl)) == NULL)
        return fail(why, "out-of-memory");
    return 0;
}
