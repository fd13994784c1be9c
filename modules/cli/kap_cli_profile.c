/*
 * kap_cli_profile.c -- load a CLI profile from its text form and look up
 * commands, aliases and flags in it (format: kap_cli_rules.h).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"

#define MAXTOK 64

/* Grow a pool array of elements of size sz from n to n + 1. */
static void *
grow(struct kap_pool *pool, void *arr, size_t n, size_t sz)
{
    char *a;

    if (n != 0 && (n < 8 || (n & (n - 1)) != 0))
        return arr;                  /* room left (capacity 8, then 2^k) */
    a = kap_palloc(pool, (n == 0 ? 8 : n * 2) * sz);
    if (a != NULL && n > 0)
        memcpy(a, arr, n * sz);
    return a;
}

/* Command words and flag names: ASCII letters, digits, '_', '-' (not first). */
static int
name_ok(const char *s)
{
    if (*s == '\0' || *s == '-')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static void
perr(char *err, size_t errlen, int line, const char *fmt, ...)
{
    va_list ap;
    int     k = snprintf(err, errlen, "line %d: ", line);

    if (k < 0 || (size_t) k >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t) k, fmt, ap);
    va_end(ap);
}

const struct kap_cli_node *
kap_cli_node_child(const struct kap_cli_node *n, const char *word)
{
    for (size_t i = 0; i < n->nchild; i++)
        if (strcmp(n->child[i]->name, word) == 0)
            return n->child[i];
    return NULL;
}

const struct kap_cli_alias *
kap_cli_node_alias(const struct kap_cli_node *n, const char *word)
{
    for (size_t i = 0; i < n->nalias; i++)
        if (strcmp(n->alias[i].word, word) == 0)
            return &n->alias[i];
    return NULL;
}

static const struct kap_cli_flag *
flag_in(const struct kap_cli_flag *f, size_t nf, const char *tok, size_t len)
{
    for (size_t i = 0; i < nf; i++) {
        if (len == 2 && tok[0] == '-' && tok[1] != '-') {
            if (f[i].shorthand == tok[1])
                return &f[i];
        } else if (len > 2 && tok[0] == '-' && tok[1] == '-'
                   && !f[i].shortonly && strlen(f[i].name) == len - 2
                   && memcmp(f[i].name, tok + 2, len - 2) == 0)
            return &f[i];
    }
    return NULL;
}

const struct kap_cli_flag *
kap_cli_flag_at(const struct kap_cli_node *n, const char *tok, size_t len)
{
    const struct kap_cli_flag *f = flag_in(n->flag, n->nflag, tok, len);

    for (; f == NULL && n != NULL; n = n->parent)
        f = flag_in(n->pflag, n->npflag, tok, len);
    return f;
}

const char *
kap_cli_node_path(struct kap_pool *pool, const struct kap_cli_node *n)
{
    const char *s = "";

    for (; n != NULL && n->parent != NULL; n = n->parent)
        s = *s ? kap_psprintf(pool, "%s %s", n->name, s)
               : kap_pstrdup(pool, n->name);
    return s;
}

static struct kap_cli_node *
node_new(struct kap_pool *pool, struct kap_cli_node *parent, const char *name)
{
    struct kap_cli_node *n = kap_palloc(pool, sizeof(*n));

    if (n == NULL || (n->name = kap_pstrdup(pool, name)) == NULL)
        return NULL;
    n->parent = parent;
    if (parent != NULL) {
        parent->child = grow(pool, parent->child, parent->nchild,
                             sizeof(*parent->child));
        if (parent->child == NULL)
            return NULL;
        parent->child[parent->nchild++] = n;
    }
    return n;
}

/* The node for a '/'-separated path; created when create is set. */
static struct kap_cli_node *
node_get(struct kap_pool *pool, struct kap_cli_node *root, const char *path,
         int create)
{
    struct kap_cli_node *n = root;
    char                 w[256];

    while (*path == '/')
        path++;
    while (*path && n != NULL) {
        size_t k = strcspn(path, "/");

        if (k >= sizeof(w))
            return NULL;
        memcpy(w, path, k);
        w[k] = '\0';
        if (!name_ok(w))
            return NULL;
        {
            struct kap_cli_node *c =
                (struct kap_cli_node *) kap_cli_node_child(n, w);
            n = c != NULL ? c : create ? node_new(pool, n, w) : NULL;
        }
        path += k;
        while (*path == '/')
            path++;
    }
    return n;
}

/* A flag's name token: "--name" (long) or "-x" (short only). */
static int
flag_name_ok(const char *t)
{
    if (strncmp(t, "--", 2) == 0)
        return name_ok(t + 2);
    return t[0] == '-' && strlen(t) == 2 && name_ok(t + 1) && t[1] != '_';
}

static int
add_flag(struct kap_pool *pool, struct kap_cli_node *n, int kind,
         char **tok, int ntok, char *err, size_t errlen, int line)
{
    struct kap_cli_flag **arr = kind == 'p' ? &n->pflag : &n->flag;
    size_t               *cnt = kind == 'p' ? &n->npflag : &n->nflag;
    struct kap_cli_flag  *f;
    int                   shortonly = ntok >= 1 && tok[0][1] != '-';

    if (ntok < 2 || ntok > 3 || !flag_name_ok(tok[0])
        || (ntok == 3 && (shortonly || !flag_name_ok(tok[2])
                          || tok[2][1] == '-'))
        || strlen(tok[1]) != 1 || strchr("bvplo", tok[1][0]) == NULL
        || (shortonly && strchr("bv", tok[1][0]) == NULL)
        || (ntok == 3 && tok[1][0] == 'o')) {
        perr(err, errlen, line, "flag: want --name b|v|p|l|o [-x], or -x b|v");
        return -1;
    }
    if (flag_in(*arr, *cnt, tok[0], strlen(tok[0])) != NULL)
        return 0;                           /* listed twice: same flag */
    *arr = grow(pool, *arr, *cnt, sizeof(**arr));
    if (*arr == NULL)
        return -1;
    f = &(*arr)[(*cnt)++];
    memset(f, 0, sizeof(*f));
    f->name = kap_pstrdup(pool, tok[0] + (shortonly ? 1 : 2));
    f->value = strchr("vpl", tok[1][0]) != NULL;
    f->path = tok[1][0] == 'p';
    f->list = tok[1][0] == 'l';
    f->optval = tok[1][0] == 'o';
    f->pre = kind == 'g';
    f->shortonly = (unsigned) shortonly;
    f->shorthand = shortonly ? tok[0][1] : ntok == 3 ? tok[2][1] : 0;
    return f->name == NULL ? -1 : 0;
}

static const char **
words_dup(struct kap_pool *pool, char **tok, int ntok)
{
    const char **w = kap_palloc(pool, ((size_t) ntok + 1) * sizeof(*w));

    for (int i = 0; w != NULL && i < ntok; i++)
        if ((w[i] = kap_pstrdup(pool, tok[i])) == NULL)
            return NULL;
    return w;
}

/* The rest of a directive line after its keyword, as one string. */
static char *
rest_of(struct kap_pool *pool, const char *line)
{
    line += strspn(line, " \t");
    line += strcspn(line, " \t");
    line += strspn(line, " \t");
    return kap_pstrdup(pool, line);
}

/* A resource type name: lower-case letters, digits, '-' and '.'. */
static int
res_name_ok(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')
              || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

/* The plural of the type (cat: the category) that name already names,
   or NULL. */
static const char *
restype_owner(const struct kap_cli_profile *p, const char *name, int cat)
{
    for (size_t i = 0; i < p->nrestype; i++) {
        const struct kap_cli_restype *r = &p->restype[i];

        if ((r->member != NULL) != (cat != 0))
            continue;
        if (strcmp(r->plural, name) == 0)
            return r->plural;
        for (size_t k = 0; k < r->nname; k++)
            if (strcmp(r->name[k], name) == 0)
                return r->plural;
    }
    return NULL;
}

/* "restype PLURAL GROUPS NAME..." or "rescat NAME MEMBER...". */
static int
add_restype(struct kap_pool *pool, struct kap_cli_profile *p, char **tok,
            int ntok, char *err, size_t errlen, int line)
{
    struct kap_cli_restype *r;
    int                     cat = strcmp(tok[0], "rescat") == 0;

    for (int i = 1; i < ntok; i++)
        if (!res_name_ok(tok[i]) && !(i == 2 && !cat)) {
            perr(err, errlen, line, "%s: bad name %s", tok[0], tok[i]);
            return -1;
        }
    /* one name, one type: a name two types (or two categories) answer
       to would make the canonical type depend on the order of the lines,
       and the argv kapd runs would not read back to the type it decided */
    for (int i = 1; i < ntok; i++) {
        const char *dup;

        if (!cat && i == 2)
            continue;                   /* the groups */
        if (cat && i > 1)
            break;                      /* the members */
        if ((dup = restype_owner(p, tok[i], cat)) != NULL) {
            perr(err, errlen, line, "%s: %s already names %s", tok[0],
                 tok[i], dup);
            return -1;
        }
    }
    if ((p->restype = grow(pool, p->restype, p->nrestype,
                           sizeof(*p->restype))) == NULL)
        return -1;
    r = &p->restype[p->nrestype++];
    memset(r, 0, sizeof(*r));
    if ((r->plural = kap_pstrdup(pool, tok[1])) == NULL)
        return -1;
    if (cat) {
        r->member = words_dup(pool, tok + 2, ntok - 2);
        r->nmember = (size_t) ntok - 2;
        return r->member != NULL ? 0 : -1;
    }
    /* groups: "core" is the "" group */
    r->group = kap_palloc(pool, strlen(tok[2]) * sizeof(*r->group) + 1);
    for (char *g = tok[2], *e = NULL; r->group != NULL; g = e + 1) {
        e = strchr(g, ',');
        if (e != NULL)
            *e = '\0';
        r->group[r->ngroup++] = strcmp(g, "core") == 0 ? ""
                                                        : kap_pstrdup(pool, g);
        if (r->group[r->ngroup - 1] == NULL)
            return -1;
        if (e == NULL)
            break;
    }
    r->name = words_dup(pool, tok + 3, ntok - 3);
    r->nname = (size_t) ntok - 3;
    return r->group != NULL && r->name != NULL ? 0 : -1;
}

static int
directive(struct kap_pool *pool, struct kap_cli_profile *p, char *buf,
          int line, char *err, size_t errlen)
{
    char                *tok[MAXTOK], *save = NULL, *copy, *t;
    int                  ntok = 0;
    struct kap_cli_node *n;

    if ((copy = kap_pstrdup(pool, buf)) == NULL)
        return -1;
    for (t = strtok_r(buf, " \t", &save); t != NULL;
         t = strtok_r(NULL, " \t", &save)) {
        if (ntok == MAXTOK) {
            perr(err, errlen, line, "too many words");
            return -1;
        }
        tok[ntok++] = t;
    }
    if (ntok == 0)
        return 0;
    if (strcmp(tok[0], "sensitive") == 0 || strcmp(tok[0], "guarded") == 0
        || strcmp(tok[0], "sensitive?") == 0 || strcmp(tok[0], "guarded?") == 0) {
        int                   sens = tok[0][0] == 's';
        int                   opt = tok[0][strlen(tok[0]) - 1] == '?';
        struct kap_cli_rule ***arr = sens ? &p->sensitive : &p->guarded;
        size_t               *cnt = sens ? &p->nsensitive : &p->nguarded;
        char                  rerr[256];
        struct kap_cli_rule  *r =
            kap_cli_rule_parse(pool, p, rest_of(pool, copy), NULL, line,
                               rerr, sizeof(rerr));

        if (r == NULL && opt && strncmp(rerr, "unknown ", 8) == 0)
            return 0;                  /* not in this version of the tool */
        if (r == NULL) {
            perr(err, errlen, line, "%s: %s", tok[0], rerr);
            return -1;
        }
        if ((*arr = grow(pool, *arr, *cnt, sizeof(**arr))) == NULL)
            return -1;
        (*arr)[(*cnt)++] = r;
        return 0;
    }
    if (ntok < 2) {
        perr(err, errlen, line, "%s: missing argument", tok[0]);
        return -1;
    }
    if (strcmp(tok[0], "tool") == 0)
        return (p->tool = kap_pstrdup(pool, tok[1])) ? 0 : -1;
    if (strcmp(tok[0], "version") == 0)
        return (p->version = kap_pstrdup(pool, tok[1])) ? 0 : -1;
    if (strcmp(tok[0], "family") == 0 && ntok == 2) {
        static const char *const fam[] = { "cobra", "argparse", "git" };

        for (size_t i = 0; i < 3; i++)
            if (strcmp(tok[1], fam[i]) == 0) {
                p->family = (enum kap_cli_family) i;
                return 0;
            }
        perr(err, errlen, line, "family %s: want cobra, argparse or git", tok[1]);
        return -1;
    }
    if (strcmp(tok[0], "option") == 0 && ntok == 2
        && (strcmp(tok[1], "abbrev") == 0 || strcmp(tok[1], "underscore") == 0)) {
        if (tok[1][0] == 'a')
            p->abbrev = 1;
        else
            p->underscore = 1;
        return 0;
    }
    if (strcmp(tok[0], "versioncmd") == 0) {
        if ((p->versioncmd = words_dup(pool, tok + 1, ntok - 1)) == NULL)
            return -1;
        p->versioncmd[ntok - 1] = NULL;
        return 0;
    }
    if (strcmp(tok[0], "guardvalue") == 0 && ntok == 2) {
        if ((p->guardvalue = grow(pool, p->guardvalue, p->nguardvalue,
                                  sizeof(*p->guardvalue))) == NULL
            || (p->guardvalue[p->nguardvalue] = kap_pstrdup(pool, tok[1]))
               == NULL)
            return -1;
        p->nguardvalue++;
        return 0;
    }
    if (strcmp(tok[0], "cmd") == 0 || strcmp(tok[0], "flag") == 0
        || strcmp(tok[0], "pflag") == 0 || strcmp(tok[0], "gflag") == 0) {
        if ((n = node_get(pool, p->root, tok[1], 1)) == NULL) {
            perr(err, errlen, line, "%s: bad command path %s", tok[0], tok[1]);
            return -1;
        }
        if (tok[0][0] == 'c')
            return 0;
        if (tok[0][0] == 'g' && n != p->root) {
            perr(err, errlen, line, "gflag: only at /");
            return -1;
        }
        return add_flag(pool, n, tok[0][0], tok + 2, ntok - 2, err,
                        errlen, line);
    }
    if ((strcmp(tok[0], "restype") == 0 || strcmp(tok[0], "rescat") == 0)
        && ntok >= 3)
        return add_restype(pool, p, tok, ntok, err, errlen, line);
    if ((strcmp(tok[0], "resargs?") == 0 || strcmp(tok[0], "resname?") == 0)
        && ntok == 2 && node_get(pool, p->root, tok[1], 0) == NULL)
        return 0;                          /* not in this version */
    if ((n = node_get(pool, p->root, tok[1], 0)) == NULL) {
        perr(err, errlen, line, "%s: unknown command %s", tok[0], tok[1]);
        return -1;
    }
    if (strncmp(tok[0], "resargs", 7) == 0 && ntok == 2) {
        n->resargs = 1;
        return 0;
    }
    if (strncmp(tok[0], "resname", 7) == 0 && ntok == 2) {
        n->resname = 1;
        return 0;
    }
    if (strcmp(tok[0], "stopatarg") == 0 && ntok == 2) {
        n->stopatarg = 1;
        return 0;
    }
    if (strcmp(tok[0], "alias") == 0 && ntok >= 4) {
        struct kap_cli_alias *a;

        for (int i = 2; i < ntok; i++)
            if (!name_ok(tok[i])) {
                perr(err, errlen, line, "alias: bad word %s", tok[i]);
                return -1;
            }
        if (kap_cli_node_child(n, tok[2]) != NULL)
            return 0;                      /* a real command wins */
        if ((n->alias = grow(pool, n->alias, n->nalias, sizeof(*n->alias)))
            == NULL)
            return -1;
        a = &n->alias[n->nalias++];
        a->word = kap_pstrdup(pool, tok[2]);
        a->expansion = words_dup(pool, tok + 3, ntok - 3);
        a->nexpansion = (size_t) ntok - 3;
        return a->word && a->expansion ? 0 : -1;
    }
    if (strcmp(tok[0], "derived") == 0 && ntok >= 6
        && strcmp(tok[3], "upper") == 0 && strncmp(tok[2], "--", 2) == 0) {
        struct kap_cli_derived *d;

        if (kap_cli_flag_at(n, tok[2], strlen(tok[2])) == NULL) {
            perr(err, errlen, line, "derived: %s unknown at %s", tok[2], tok[1]);
            return -1;
        }
        if ((p->derived = grow(pool, p->derived, p->nderived,
                               sizeof(*p->derived))) == NULL)
            return -1;
        d = &p->derived[p->nderived++];
        d->node = n;
        d->flag = kap_pstrdup(pool, tok[2] + 2);
        d->dflt = kap_pstrdup(pool, tok[4]);
        d->implied = kap_pstrdup(pool, tok[5]);
        d->trigger = words_dup(pool, tok + 6, ntok - 6);
        d->ntrigger = (size_t) ntok - 6;
        for (size_t i = 0; d->trigger != NULL && i < d->ntrigger; i++)
            d->trigger[i] += 2 * (strncmp(d->trigger[i], "--", 2) == 0);
        return d->flag && d->dflt && d->implied && d->trigger ? 0 : -1;
    }
    perr(err, errlen, line, "unknown or malformed directive %s", tok[0]);
    return -1;
}

struct kap_cli_profile *
kap_cli_profile_parse(struct kap_pool *pool, const char *text, size_t len,
                      char *err, size_t errlen)
{
    struct kap_cli_profile *p = kap_palloc(pool, sizeof(*p));
    size_t                  off = 0;
    int                     line = 0;

    if (errlen > 0)
        err[0] = '\0';
    if (p == NULL || (p->root = node_new(pool, NULL, "")) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    while (off < len) {
        size_t e = off;
        char  *buf, *hash;

        while (e < len && text[e] != '\n')
            e++;
        line++;
        if ((buf = kap_pstrndup(pool, text + off, e - off)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        if (strlen(buf) != e - off) {
            perr(err, errlen, line, "NUL byte");
            return NULL;
        }
        off = e + 1;
        if ((hash = strchr(buf, '#')) != NULL)
            *hash = '\0';
        if (directive(pool, p, buf, line, err, errlen) < 0) {
            if (err[0] == '\0')
                perr(err, errlen, line, "out of memory");
            return NULL;
        }
    }
    if (p->tool == NULL) {
        snprintf(err, errlen, "no tool line");
        return NULL;
    }
    return p;
}

static int
version_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || (c != '\0' && strchr(".+~_-", c));
}

int
kap_cli_version_ok(const struct kap_cli_profile *p, const char *out,
                   size_t len)
{
    size_t n = p->version != NULL ? strlen(p->version) : 0;

    if (n == 0 || len < n)
        return 0;
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(out + i, p->version, n) == 0
            && (i == 0 || !version_char(out[i - 1]))
            && (i + n == len || !version_char(out[i + n])))
            return 1;
    return 0;
}
