/*
 * kap_cli_canon.c -- wire checks and the cobra/pflag walk that turns an
 * agent's argv into words, flags and the canonical argv kapd executes
 * (docs/design/cli-rules.md; cobra's Find/stripFlags, pflag's parseArgs).
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"

/* One flag occurrence while walking. */
struct occ {
    const char                *spell;   /* "--name" or "-x" */
    const struct kap_cli_flag *flag;
    const char                *value;
    int                        cont;    /* a further value of a list */
};

struct walk {
    struct kap_pool           *pool;
    const struct kap_cli_profile *p;
    const char               **arg;     /* NUL-terminated copies */
    size_t                     narg, i;
    const struct kap_cli_node *node;
    int                        in_path;
    struct occ                *occ;
    size_t                     nocc, capocc;
    const char               **pos;     /* positionals before "--" */
    size_t                     npos;
    const char               **path;
    size_t                     npath;
    const char                *why;
};

static int
utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i], need, min, cp;

        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf)      { need = 1; min = 0x80;    cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { need = 2; min = 0x800;   cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { need = 3; min = 0x10000; cp = c & 0x07; }
        else return 0;
        if (n - i <= need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int
deny(struct walk *w, const char *what, const char *tok)
{
    w->why = tok ? kap_psprintf(w->pool, "%s %s", what, tok)
                 : kap_pstrdup(w->pool, what);
    if (w->why == NULL)
        w->why = "out-of-memory";
    return -1;
}

static int
wire_check(struct walk *w, const struct kap_cli_arg *args, size_t nargs)
{
    size_t total = 0;

    if (nargs > KAP_CLI_MAX_ARGS)
        return deny(w, "bad-request: more than 4096 arguments", NULL);
    w->arg = kap_palloc(w->pool, (nargs + 1) * sizeof(*w->arg));
    if (w->arg == NULL)
        return deny(w, "out-of-memory", NULL);
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].len > KAP_CLI_MAX_ARG)
            return deny(w, "bad-request: argument longer than 131071 bytes", NULL);
        total += args[i].len + 1;
        if (total > KAP_CLI_MAX_TOTAL)
            return deny(w, "bad-request: arguments over 1 MiB", NULL);
        if (args[i].len > 0 && memchr(args[i].data, '\0', args[i].len) != NULL)
            return deny(w, "bad-request: NUL byte in an argument", NULL);
        if (!utf8_ok((const unsigned char *) args[i].data, args[i].len))
            return deny(w, "bad-request: invalid UTF-8 in an argument", NULL);
        w->arg[i] = args[i].len > 0
            ? kap_pstrndup(w->pool, args[i].data, args[i].len)
            : kap_pstrdup(w->pool, "");
        if (w->arg[i] == NULL)
            return deny(w, "out-of-memory", NULL);
    }
    w->narg = nargs;
    return 0;
}

static int
push(struct kap_pool *pool, const char ***arr, size_t *n, size_t cap,
     const char *s)
{
    if (*arr == NULL && (*arr = kap_palloc(pool, (cap + 1) * sizeof(**arr)))
        == NULL)
        return -1;
    (*arr)[(*n)++] = s;
    return 0;
}

static int
add_occ(struct walk *w, const char *spell, const struct kap_cli_flag *f,
        const char *value, int cont)
{
    if (w->nocc == w->capocc) {           /* a cluster -abc gives several */
        size_t      cap = w->capocc ? w->capocc * 2 : w->narg + 8;
        struct occ *o = kap_palloc(w->pool, cap * sizeof(*o));

        if (o == NULL)
            return deny(w, "out-of-memory", NULL);
        if (w->nocc > 0)
            memcpy(o, w->occ, w->nocc * sizeof(*o));
        w->occ = o;
        w->capocc = cap;
    }
    w->occ[w->nocc].spell = spell;
    w->occ[w->nocc].flag = f;
    w->occ[w->nocc].value = value;
    w->occ[w->nocc].cont = cont;
    w->nocc++;
    return 0;
}

static const char *
bool_value(const char *v)
{
    static const char *const t[] = { "true", "1", "t", "T", "TRUE", "True" };
    static const char *const f[] = { "false", "0", "f", "F", "FALSE", "False" };

    for (size_t i = 0; i < 6; i++) {
        if (strcmp(v, t[i]) == 0)
            return "true";
        if (strcmp(v, f[i]) == 0)
            return "false";
    }
    return NULL;
}

static int
unknown(struct walk *w, const char *spell, size_t len)
{
    const char *s = kap_pstrndup(w->pool, spell, len);

    return deny(w, w->in_path && w->node->nchild > 0 ? "unknown-global-flag"
                                                     : "unknown-flag", s ? s : "");
}

static const struct kap_cli_flag *
lookup(struct walk *w, const char *spell, size_t len)
{
    const struct kap_cli_flag *f = kap_cli_flag_at(w->node, spell, len);

    if (f == NULL)
        unknown(w, spell, len);
    return f;
}

/* Long flags of arr that tok (len bytes, "--" included) is a prefix of. */
static size_t
prefixes(const struct kap_cli_flag *arr, size_t n, const char *tok, size_t len,
         const struct kap_cli_flag **hit, size_t nhit)
{
    for (size_t i = 0; i < n; i++) {
        const struct kap_cli_flag *f = &arr[i];
        int                        dup = 0;

        if (f->shortonly || f->pre || strlen(f->name) < len - 2
            || memcmp(f->name, tok + 2, len - 2) != 0)
            continue;
        for (size_t k = 0; k < nhit && k < 2; k++)
            dup |= strcmp(hit[k]->name, f->name) == 0;
        if (!dup) {
            if (nhit < 2)
                hit[nhit] = f;
            nhit++;
        }
    }
    return nhit;
}

/* The one flag tok abbreviates, from the root's globals then from n. */
static const struct kap_cli_flag *
abbrev(struct walk *w, const char *tok, size_t len)
{
    const struct kap_cli_flag *hit[2];
    const struct kap_cli_node *root = w->p->root, *n;
    size_t                     nhit;

    nhit = prefixes(root->pflag, root->npflag, tok, len, hit, 0);
    if (nhit == 0) {
        nhit = prefixes(w->node->flag, w->node->nflag, tok, len, hit, 0);
        for (n = w->node; n != NULL; n = n->parent)
            nhit = prefixes(n->pflag, n->npflag, tok, len, hit, nhit);
    }
    if (nhit == 1)
        return hit[0];
    if (nhit == 0)
        unknown(w, tok, len);
    else
        deny(w, "ambiguous-flag", kap_pstrndup(w->pool, tok, len));
    return NULL;
}

/*
 * The flag a long token (len bytes before any '=') names: kubectl's '_'
 * is '-'; argparse's exact globals come first; then an exact name where
 * the walk is; then an abbreviation when the tool allows them.
 */
static const struct kap_cli_flag *
long_lookup(struct walk *w, const char *a, size_t len)
{
    const struct kap_cli_flag *f;
    char                      *t = kap_pstrndup(w->pool, a, len);

    if (t == NULL) {
        deny(w, "out-of-memory", NULL);
        return NULL;
    }
    if (w->p->underscore)
        for (char *c = t + 2; *c; c++)
            if (*c == '_')
                *c = '-';
    if (w->p->family == KAP_CLI_ARGPARSE
        && (f = kap_cli_flag_at(w->p->root, t, len)) != NULL && !f->pre)
        return f;
    if ((f = kap_cli_flag_at(w->node, t, len)) != NULL)
        return f;
    if (!w->p->abbrev)
        return lookup(w, t, len);
    return abbrev(w, t, len);
}

/* Is v a negative number (argparse takes it as a value)? */
static int
negative_number(const char *v)
{
    size_t digits = 0;

    if (*v++ != '-')
        return 0;
    for (; *v; v++) {
        if (*v >= '0' && *v <= '9')
            digits++;
        else if (*v != '.')
            return 0;
    }
    return digits > 0;
}

/* The value of a value flag: attached text, or the next argument. */
static const char *
take_value(struct walk *w, const char *attached, const char *spell)
{
    const char *v;

    if (attached != NULL)
        return attached;
    if (w->i + 1 >= w->narg) {
        deny(w, "missing-value", spell);
        return NULL;
    }
    v = w->arg[w->i + 1];
    if (w->p->family == KAP_CLI_ARGPARSE && v[0] == '-' && v[1] != '\0'
        && !negative_number(v)) {
        deny(w, "missing-value", spell);
        return NULL;
    }
    w->i++;
    return v;
}

/* A list flag's further values: the next words up to one with a dash. */
static int
take_list(struct walk *w, const char *spell, const struct kap_cli_flag *f)
{
    while (w->i + 1 < w->narg) {
        const char *v = w->arg[w->i + 1];

        if (v[0] == '-' && v[1] != '\0' && !negative_number(v))
            break;
        w->i++;
        if (add_occ(w, spell, f, v, 1) < 0)
            return -1;
    }
    return 0;
}

/* A bool given "=V": pflag reads V, argparse and git refuse it. */
static const char *
bool_attached(struct walk *w, const char *v, const char *a)
{
    const char *b = w->p->family == KAP_CLI_COBRA ? bool_value(v) : NULL;

    if (b == NULL)
        deny(w, "bad-bool-value", a);
    return b;
}

static int
long_flag(struct walk *w, const char *a)
{
    const char                *eq = strchr(a, '=');
    size_t                     len = eq ? (size_t) (eq - a) : strlen(a);
    const struct kap_cli_flag *f;
    const char                *spell, *v;

    if (len == 2 || a[2] == '-')
        return deny(w, "bad-flag", a);
    if ((f = long_lookup(w, a, len)) == NULL)
        return -1;
    spell = kap_psprintf(w->pool, "--%s", f->name);
    if (spell == NULL)
        return deny(w, "out-of-memory", NULL);
    if (f->optval) {
        if (eq != NULL && eq[1] == '\0')
            return deny(w, "bad-flag", a);
        v = eq ? eq + 1 : "";
    } else if (f->value)
        v = take_value(w, eq ? eq + 1 : NULL, spell);
    else
        v = eq ? bool_attached(w, eq + 1, a) : "true";
    if (v == NULL)
        return -1;
    if (add_occ(w, spell, f, v, 0) < 0)
        return -1;
    return f->list && eq == NULL ? take_list(w, spell, f) : 0;
}

static int
short_flags(struct walk *w, const char *a)
{
    for (const char *c = a + 1; *c; c++) {
        char                       spell[3] = { '-', *c, '\0' };
        const struct kap_cli_flag *f;
        const char                *v, *sp;

        if (*c == '=' || (f = lookup(w, spell, 2)) == NULL)
            return *c == '=' ? deny(w, "bad-flag", a) : -1;
        if ((sp = kap_pstrdup(w->pool, spell)) == NULL)
            return deny(w, "out-of-memory", NULL);
        if (f->optval)
            return deny(w, "bad-flag", a);
        if (f->value) {
            const char *rest = c[1] == '=' ? c + 2 : c[1] ? c + 1 : NULL;
            if ((v = take_value(w, rest, sp)) == NULL)
                return -1;
            if (add_occ(w, sp, f, v, 0) < 0)
                return -1;
            return f->list && rest == NULL ? take_list(w, sp, f) : 0;
        }
        if (c[1] == '=') {
            if ((v = bool_attached(w, c + 2, a)) == NULL)
                return -1;
            return add_occ(w, sp, f, v, 0);
        }
        if (add_occ(w, sp, f, "true", 0) < 0)
            return -1;
    }
    return 0;
}

/* A command word while the path is not complete. */
static int
command_word(struct walk *w, const char *a)
{
    const struct kap_cli_node  *c = kap_cli_node_child(w->node, a);
    const struct kap_cli_alias *al;

    if (c != NULL) {
        w->node = c;
        return push(w->pool, &w->path, &w->npath, w->narg + 16, c->name);
    }
    if ((al = kap_cli_node_alias(w->node, a)) == NULL)
        return deny(w, "unknown-command", a);
    for (size_t k = 0; k < al->nexpansion; k++) {
        if ((c = kap_cli_node_child(w->node, al->expansion[k])) == NULL)
            return deny(w, "unknown-command", a);
        w->node = c;
        if (push(w->pool, &w->path, &w->npath, w->narg + 16, c->name) < 0)
            return deny(w, "out-of-memory", NULL);
    }
    return 0;
}

static int
walk_args(struct walk *w, size_t *dash)
{
    *dash = w->narg;
    for (w->i = 0; w->i < w->narg; w->i++) {
        const char *a = w->arg[w->i];
        int         r;

        if (w->in_path && w->node->nchild == 0)
            w->in_path = 0;
        if (strcmp(a, "--") == 0) {
            if (w->in_path)
                return deny(w, "no-command", NULL);
            *dash = w->i;
            return 0;
        }
        if (!w->in_path && w->node->stopatarg && w->npos > 0) {
            for (; w->i < w->narg; w->i++)      /* IMAGE CMD ARG... */
                if (push(w->pool, &w->pos, &w->npos, w->narg, w->arg[w->i]) < 0)
                    return deny(w, "out-of-memory", NULL);
            return 0;
        }
        if (a[0] == '-' && a[1] != '\0')
            r = a[1] == '-' ? long_flag(w, a) : short_flags(w, a);
        else if (w->in_path)
            /* an empty word or "-" where a command word belongs is an
               unknown command to the tool too: taken as a positional, it
               was run at the end of the canonical argv, after the command
               word that followed it (git '' -ca=b X ran git -c a=b X '') */
            r = command_word(w, a);
        else
            r = push(w->pool, &w->pos, &w->npos, w->narg, a);
        if (r < 0)
            return w->why ? -1 : deny(w, "out-of-memory", NULL);
    }
    return 0;
}

/* Every flag, wherever it was given, must be one the final node knows. */
static int
recheck_flags(struct walk *w)
{
    for (size_t i = 0; i < w->nocc; i++) {
        const struct kap_cli_flag *f;

        if (w->occ[i].flag->pre)
            continue;
        f = kap_cli_flag_at(w->node, w->occ[i].spell, strlen(w->occ[i].spell));

        if (f == NULL)
            return deny(w, "unknown-flag", w->occ[i].spell);
        if (f->value != w->occ[i].flag->value)
            return deny(w, "flag-arity-differs", w->occ[i].spell);
        w->occ[i].flag = f;
    }
    return 0;
}

static void
upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char) (*s - 'a' + 'A');
}

static int
derive(struct walk *w, const struct kap_cli_profile *p,
       struct kap_cli_call *c)
{
    for (size_t d = 0; d < p->nderived; d++) {
        const struct kap_cli_derived *dv = &p->derived[d];
        const struct kap_cli_flag    *f = NULL;
        int                           trig = 0;

        if (dv->node != w->node)
            continue;
        for (size_t i = 0; i < c->nfv; i++) {
            if (strcmp(c->fv[i].flag->name, dv->flag) == 0) {
                char *v = kap_pstrdup(w->pool, c->fv[i].value);
                if (v == NULL)
                    return deny(w, "out-of-memory", NULL);
                upper(v);
                c->fv[i].value = v;
                f = c->fv[i].flag;
            }
            for (size_t t = 0; t < dv->ntrigger; t++)
                trig |= strcmp(c->fv[i].flag->name, dv->trigger[t]) == 0;
        }
        if (f == NULL) {
            char spell[128];
            size_t n = strlen(dv->flag);

            if (n + 3 > sizeof(spell))
                return deny(w, "out-of-memory", NULL);
            spell[0] = spell[1] = '-';
            memcpy(spell + 2, dv->flag, n + 1);
            f = kap_cli_flag_at(w->node, spell, n + 2);
            if (f == NULL)
                return deny(w, "unknown-flag", spell);
            c->fv[c->nfv].flag = f;
            c->fv[c->nfv].value = trig ? dv->implied : dv->dflt;
            c->fv[c->nfv].derived = 1;
            c->nfv++;
        }
    }
    return 0;
}

/* One flag occurrence as argv words (one, or two for "-x" "V"). */
static int
emit_flag(struct walk *w, struct kap_cli_call *c, size_t i)
{
    const struct kap_cli_flag *f = c->fv[i].flag;
    const char                *v = c->fv[i].value, *s;

    if (c->fv[i].cont) {                 /* a list's further value */
        c->argv[c->argc++] = v;
        return 0;
    }
    if (f->shortonly) {
        c->argv[c->argc++] = kap_psprintf(w->pool, "-%c", f->shorthand);
        if (c->argv[c->argc - 1] == NULL)
            return deny(w, "out-of-memory", NULL);
        if (f->value)
            c->argv[c->argc++] = v;
        return 0;
    }
    if (f->list && i + 1 < c->nfv && c->fv[i + 1].cont) {
        s = kap_psprintf(w->pool, "--%s", f->name);    /* values follow */
        if (s == NULL)
            return deny(w, "out-of-memory", NULL);
        c->argv[c->argc++] = s;
        c->argv[c->argc++] = v;
        return 0;
    }
    if (f->value || (f->optval && *v != '\0')
             || (!f->optval && strcmp(v, "true") != 0))
        s = kap_psprintf(w->pool, "--%s=%s", f->name, v);
    else
        s = kap_psprintf(w->pool, "--%s", f->name);
    if (s == NULL)
        return deny(w, "out-of-memory", NULL);
    c->argv[c->argc++] = s;
    return 0;
}

static int
emit_flags(struct walk *w, struct kap_cli_call *c, int pre)
{
    for (size_t i = 0; i < c->nfv; i++)
        if ((c->fv[i].flag->pre != 0) == pre && emit_flag(w, c, i) < 0)
            return -1;
    return 0;
}

static void
emit_positionals(struct walk *w, struct kap_cli_call *c)
{
    for (size_t i = 0; i < w->npos; i++)
        c->argv[c->argc++] = c->word[c->nword++] = w->pos[i];
}

/*
 * The canonical argv: tool, pre-command globals, path, flags and
 * positionals (argparse: positionals first, so a list flag cannot take
 * one), then "--" and what followed it.
 */
static int
emit(struct walk *w, struct kap_cli_call *c, const char *tool, size_t dash)
{
    size_t after = dash < w->narg ? w->narg - dash - 1 : 0;
    size_t cap = 2 + w->npath + 2 * c->nfv + w->npos + after + 1;
    int    argparse = w->p->family == KAP_CLI_ARGPARSE;

    c->argv = kap_palloc(w->pool, (cap + 1) * sizeof(*c->argv));
    c->word = kap_palloc(w->pool, (w->npath + w->npos + after + 1)
                                  * sizeof(*c->word));
    if (c->argv == NULL || c->word == NULL)
        return deny(w, "out-of-memory", NULL);
    c->argv[c->argc++] = tool;
    if (emit_flags(w, c, 1) < 0)
        return -1;
    for (size_t i = 0; i < w->npath; i++)
        c->argv[c->argc++] = c->word[c->nword++] = w->path[i];
    c->npath = w->npath;
    if (argparse)
        emit_positionals(w, c);
    if (emit_flags(w, c, 0) < 0)
        return -1;
    if (!argparse)
        emit_positionals(w, c);
    if (dash < w->narg) {
        c->argv[c->argc++] = "--";
        for (size_t i = dash + 1; i < w->narg; i++)
            c->argv[c->argc++] = c->word[c->nword++] = w->arg[i];
    }
    c->argv[c->argc] = NULL;
    return 0;
}

int
kap_cli_canon(struct kap_pool *pool, const struct kap_cli_profile *p,
              const struct kap_cli_arg *args, size_t nargs,
              struct kap_cli_call *call, const char **why)
{
    struct walk w;
    size_t      dash;

    memset(&w, 0, sizeof(w));
    memset(call, 0, sizeof(*call));
    w.pool = pool;
    w.p = p;
    w.node = p->root;
    w.in_path = 1;
    if (wire_check(&w, args, nargs) < 0 || walk_args(&w, &dash) < 0
        || recheck_flags(&w) < 0)
        goto denied;
    call->node = w.node;
    call->fv = kap_palloc(pool, (w.nocc + p->nderived + 1) * sizeof(*call->fv));
    if (call->fv == NULL) {
        deny(&w, "out-of-memory", NULL);
        goto denied;
    }
    for (size_t i = 0; i < w.nocc; i++) {
        call->fv[i].flag = w.occ[i].flag;
        call->fv[i].value = w.occ[i].value;
        call->fv[i].cont = w.occ[i].cont;
    }
    call->nfv = w.nocc;
    if (w.node->resargs && dash < w.narg) {
        /* kubectl reads the words after "--" as more resource
           arguments: refused rather than read two ways */
        deny(&w, "bad-resource-args: arguments after --", NULL);
        goto denied;
    }
    if ((w.node->resargs || w.node->resname)
        && kap_cli_res_canon(pool, p, w.node, w.path, w.npath, w.pos,
                             &w.npos, call, &w.why) < 0)
        goto denied;
    if (derive(&w, p, call) < 0 || emit(&w, call, p->tool, dash) < 0)
        goto denied;
    *why = NULL;
    return 0;
denied:
    *why = w.why;
    return -1;
}
