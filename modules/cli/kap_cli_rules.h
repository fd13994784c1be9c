/*
 * kap_cli_rules.h -- the deciding part of the cli module (module-private):
 * tool profiles, the argv canonicaliser and the rule language of
 * docs/design/cli-rules.md.  Pure functions: no I/O, no globals; every
 * allocation comes from the kap_pool the caller passes and is owned by it.
 *
 * 1. A PROFILE describes how one CLI reads its argv.  It is loaded from
 *    text (kap_cli_profile_parse); for gh the text is generated at build
 *    time from `gh reference` (modules/cli/gen-gh-profile) and joined with
 *    hand-kept lines (modules/cli/profiles/gh.extra).  One directive a line,
 *    tokens separated by blanks, '#' starts a comment.  NODE is a command
 *    path with '/' between words ("pr/list"); "/" is the root.
 *      tool NAME | version V
 *      family cobra|argparse|git         whose parser (below)
 *      option abbrev                     unique prefixes of long flags
 *                                        expand (aws, az, git leaves)
 *      option underscore                 '_' in a flag name is '-' (kubectl)
 *      versioncmd ARG...                 how `version` is printed: the
 *                                        output of TOOL ARG... must hold V
 *                                        as a token (kap_cli_version_ok)
 *      cmd NODE                          a command (parents created too)
 *      flag NODE --name T [-x]           a flag of NODE; T: b bool, v value,
 *                                        p value that is a local path,
 *                                        l list (argparse nargs '+': the
 *                                        following words up to a flag),
 *                                        o optional value (only --name=V)
 *      flag NODE -x T                    a flag with no long name (git -c)
 *      pflag NODE --name T [-x]          persistent: NODE and below
 *      gflag / --name T [-x]             a global read only before the
 *                                        command (docker, git): emitted
 *                                        before the command path
 *      guardvalue GLOB                   a flag value or argument word
 *                                        matching GLOB is guarded (aws
 *                                        file:// values, az @file)
 *      stopatarg NODE                    after NODE's first argument every
 *                                        word is an argument (docker run
 *                                        IMAGE CMD...: pflag with
 *                                        interspersed flags off)
 *      alias NODE WORD EXPANSION...      built-in alias at NODE
 *      derived NODE --name upper DEFAULT IMPLIED TRIGGER...
 *                                        values upper-cased; absent: IMPLIED
 *                                        when a TRIGGER flag is given, else
 *                                        DEFAULT (gh api --method)
 *      sensitive RULE                    a wildcard never reaches it
 *      guarded RULE                      an allow rule must name it
 *      sensitive? RULE, guarded? RULE    the same, skipped when the
 *                                        installed version lacks a word
 *                                        or flag of RULE
 *      restype PLURAL GROUPS [NAME...]   a built-in resource type (kubectl):
 *                                        its canonical plural, its API
 *                                        groups (comma list; "core" is the
 *                                        "" group) and every other name the
 *                                        CLI takes for it (singular, kind,
 *                                        short names)
 *      rescat NAME MEMBER...             a category (kubectl "all")
 *      resargs NODE                      NODE's arguments are TYPE[,TYPE...]
 *                                        [NAME...] or TYPE/NAME... (kubectl
 *                                        get, delete, ...): see kap_cli_res.c
 *      resname NODE                      NODE's first argument may be
 *                                        TYPE/NAME (kubectl logs, exec)
 *      resargs? NODE, resname? NODE      skipped when NODE is not known
 *    Every value flag keeps every occurrence (a scalar flag's last one
 *    wins in the CLI; matching all of them is stricter for allow and
 *    broader for deny).
 *
 * 2. CANONICALISE (kap_cli_canon): wire checks (UTF-8, no NUL, 4096
 *    words, 131071 bytes each, 1 MiB in all), then the cobra walk:
 *    before the command path is complete only flags the current node
 *    knows are accepted (else "unknown-global-flag"), a word at a group
 *    must be a child or a built-in alias ("unknown-command"), after the
 *    leaf every flag must be in the leaf's table ("unknown-flag").  The
 *    result is words (path, then positionals), flags, and the canonical
 *    argv kapd executes: tool, pre-command globals, path, --name=value /
 *    --name, positionals, then "--" and what followed it.  The families
 *    differ where their parsers do:
 *      cobra     pflag forms (-xv, -x=v, clusters, --b=false).
 *      argparse  globals anywhere; a bool takes no "=V"; a value given as
 *                the next word may not start with '-' (argparse refuses
 *                it); a list flag takes the following words up to the
 *                next flag; the canonical argv puts positionals before
 *                the flags so a list cannot swallow one.
 *      git       globals (gflag) before the command only; a bool takes
 *                no "=V"; long names of the leaf abbreviate with
 *                "option abbrev".
 *    With "option abbrev" a long flag that is not exact expands when it
 *    is a unique prefix: first of the root's persistent flags (argparse
 *    reads the globals from the whole argv first, so `--endp` is
 *    --endpoint-url even after the operation), else of the flags known
 *    where it appears; two or more candidates: "ambiguous-flag X".
 *
 * 3. RULES (kap_cli_rule_parse) are canonicalised with the same profile:
 *    an unknown command word or flag is an error the caller reports with
 *    its file:line.  kap_cli_decide applies deny rules (prefix, any
 *    value), then allow rules (exact, every value), sensitive and
 *    guarded entries, and explains a denial: reason text such as
 *    "unknown-global-flag --user", "sensitive: auth token", "guarded:
 *    --hostname", "no-allow-rule", plus a rule that would allow it.
 */
#ifndef KAP_CLI_RULES_H
#define KAP_CLI_RULES_H

#include <stddef.h>

struct kap_pool;

#define KAP_CLI_MAX_ARGS   4096
#define KAP_CLI_MAX_ARG    131071
#define KAP_CLI_MAX_TOTAL  (1024 * 1024)

/* One argv element as it came off the wire (not NUL-terminated). */
struct kap_cli_arg {
    const char *data;
    size_t      len;
};

struct kap_cli_flag {
    const char *name;          /* long name without "--" (short-only: the letter) */
    char        shorthand;     /* 0: none */
    unsigned    value : 1;     /* takes a value */
    unsigned    path : 1;      /* the value is a local path */
    unsigned    list : 1;      /* argparse nargs '+' (value is set too) */
    unsigned    optval : 1;    /* value only as --name=V (value is clear) */
    unsigned    pre : 1;       /* global read before the command only */
    unsigned    shortonly : 1; /* no long name: emitted "-x" "V" */
};

enum kap_cli_family { KAP_CLI_COBRA, KAP_CLI_ARGPARSE, KAP_CLI_GIT };

struct kap_cli_alias {
    const char  *word;
    const char **expansion;    /* canonical words, from this node */
    size_t       nexpansion;
};

struct kap_cli_node {
    const char            *name;     /* "" for the root */
    struct kap_cli_node   *parent;
    struct kap_cli_node  **child;
    size_t                 nchild;
    struct kap_cli_alias  *alias;
    size_t                 nalias;
    struct kap_cli_flag   *flag;     /* local flags */
    size_t                 nflag;
    struct kap_cli_flag   *pflag;    /* persistent: this node and below */
    size_t                 npflag;
    unsigned               stopatarg : 1; /* flags end at the first argument */
    unsigned               resargs : 1;   /* TYPE[,TYPE] NAME... arguments */
    unsigned               resname : 1;   /* first argument may be TYPE/NAME */
};

/* A built-in resource type (restype) or category (rescat). */
struct kap_cli_restype {
    const char  *plural;       /* canonical name */
    const char **group;        /* API groups ("" for core) */
    size_t       ngroup;
    const char **name;         /* other names: singular, kind, short */
    size_t       nname;
    const char **member;       /* rescat: canonical member plurals */
    size_t       nmember;
};

struct kap_cli_derived {
    const struct kap_cli_node *node;
    const char                *flag;      /* long name */
    const char                *dflt, *implied;
    const char               **trigger;   /* long names */
    size_t                     ntrigger;
};

struct kap_cli_rule;

struct kap_cli_profile {
    const char              *tool, *version;
    enum kap_cli_family      family;
    unsigned                 abbrev : 1, underscore : 1;
    const char             **versioncmd;  /* NULL-terminated, or NULL */
    const char             **guardvalue;  /* globs */
    size_t                   nguardvalue;
    struct kap_cli_node     *root;
    struct kap_cli_derived  *derived;
    size_t                   nderived;
    struct kap_cli_rule    **sensitive;
    size_t                   nsensitive;
    struct kap_cli_rule    **guarded;
    size_t                   nguarded;
    struct kap_cli_restype  *restype;     /* types, then categories */
    size_t                   nrestype;
};

/* One flag occurrence of a call, by canonical name. */
struct kap_cli_fval {
    const struct kap_cli_flag *flag;
    const char                *value;   /* bools: "true" / "false" */
    int                        derived; /* added by the profile */
    int                        cont;    /* one more value of the list before */
};

/* A canonicalised call.  Everything owned by the pool given to canon. */
struct kap_cli_call {
    const struct kap_cli_node *node;    /* where the command path ended */
    const char         **word;          /* path then positionals */
    size_t               nword, npath;
    struct kap_cli_fval *fv;
    size_t               nfv;
    const char         **argv;          /* canonical, NULL-terminated */
    size_t               argc;
    /* Readings (kubectl "get secrets,pods", "get all", "get a/x b/y"):
       when nreading > 0 the call is decided once per reading, with that
       reading's words; it is allowed only when every reading is. */
    struct kap_cli_reading {
        const char **word;
        size_t       nword;
    }                   *reading;
    size_t               nreading;
};

enum kap_cli_item_kind {
    KAP_CLI_WORD, KAP_CLI_STAR, KAP_CLI_DSTAR,
    KAP_CLI_F_PRESENT, KAP_CLI_F_ABSENT, KAP_CLI_F_EQ, KAP_CLI_F_NE
};

struct kap_cli_item {
    enum kap_cli_item_kind kind;
    const char            *text;   /* word glob, or the flag's value glob */
    const struct kap_cli_flag *flag; /* flag items */
};

struct kap_cli_rule {
    const char          *text;     /* as written */
    struct kap_cli_item *word;     /* WORD / STAR / DSTAR */
    size_t               nword;
    struct kap_cli_item *cond;     /* flag items */
    size_t               ncond;
    const char          *file;     /* where it was written; may be NULL */
    int                  line;
};

struct kap_cli_verdict {
    int                        allow;    /* 1: run call->argv */
    int                        ask;      /* 1: a human decides (an ask rule
                                            matched; allow is 0) */
    const char                *reason;   /* denial reason, or "allow" */
    const struct kap_cli_rule *rule;     /* the rule that decided, or NULL */
    const char                *suggest;  /* a rule that would allow it, or NULL */
};

/*
 * Parse profile text (len bytes).  Returns a profile owned by pool, or
 * NULL with a message "line N: ..." in err (errlen bytes).
 */
struct kap_cli_profile *kap_cli_profile_parse(struct kap_pool *pool,
    const char *text, size_t len, char *err, size_t errlen);

/* Child of n named word (exact), or NULL.  Aliases are not followed. */
const struct kap_cli_node *kap_cli_node_child(const struct kap_cli_node *n,
    const char *word);
/* The alias of n spelled word, or NULL. */
const struct kap_cli_alias *kap_cli_node_alias(const struct kap_cli_node *n,
    const char *word);
/*
 * The flag known at n spelled tok ("--name" or "-x", no value part):
 * n's own flags, then persistent flags of n and its ancestors.  NULL if
 * unknown.
 */
const struct kap_cli_flag *kap_cli_flag_at(const struct kap_cli_node *n,
    const char *tok, size_t toklen);
/* The node path of n joined with blanks, owned by pool. */
const char *kap_cli_node_path(struct kap_pool *pool,
    const struct kap_cli_node *n);

/*
 * Canonicalise argv (args[0] is the first argument after the tool name).
 * Returns 0 with *call filled, or -1 with *why set to the denial reason
 * (owned by pool, e.g. "unknown-global-flag --user", "bad-request: NUL
 * in argument 2").
 */
int kap_cli_canon(struct kap_pool *pool, const struct kap_cli_profile *p,
    const struct kap_cli_arg *args, size_t nargs,
    struct kap_cli_call *call, const char **why);

/*
 * Parse one rule (NUL-terminated text), canonicalised with p.  file and
 * line are kept for messages (file may be NULL).  NULL on error with the
 * message in err.
 */
struct kap_cli_rule *kap_cli_rule_parse(struct kap_pool *pool,
    const struct kap_cli_profile *p, const char *text, const char *file,
    int line, char *err, size_t errlen);

/*
 * Does rule r match call c?  deny: words as a prefix, any value; else
 * words exactly, every value.  map (may be NULL, c->nword entries) gets
 * for each word the index of the rule item that consumed it.
 */
int kap_cli_rule_match(const struct kap_cli_rule *r,
    const struct kap_cli_call *c, int deny, size_t *map);

/*
 * The verdict on call c under deny then allow rules and the profile's
 * sensitive and guarded entries.  Strings owned by pool.
 */
void kap_cli_decide(struct kap_pool *pool, const struct kap_cli_profile *p,
    const struct kap_cli_call *c,
    struct kap_cli_rule *const *deny, size_t ndeny,
    struct kap_cli_rule *const *allow, size_t nallow,
    struct kap_cli_verdict *v);

/*
 * The narrowest rule that allows c (its words and flags, as kap cli test
 * prints it): allocated from pool, or NULL when out of memory.
 */
const char *kap_cli_suggest(struct kap_pool *pool,
    const struct kap_cli_call *c);

/*
 * kap_cli_decide with ask rules between deny and allow: a call no deny
 * rule refuses and an ask rule matches (exactly, as an allow rule would,
 * sensitive and guarded entries included) gets v->ask = 1, v->allow = 0
 * and v->rule = that ask rule, whether or not an allow rule also
 * matches: ask narrows what allow lets through, and turns what no allow
 * rule covers from a denial into a question.  An allow rule whose text is
 * exactly c's kap_cli_suggest() spelling every word and value (what
 * "allow always" writes) is not narrowed: c is allowed.
 */
void kap_cli_decide_ask(struct kap_pool *pool,
    const struct kap_cli_profile *p, const struct kap_cli_call *c,
    struct kap_cli_rule *const *deny, size_t ndeny,
    struct kap_cli_rule *const *ask, size_t nask,
    struct kap_cli_rule *const *allow, size_t nallow,
    struct kap_cli_verdict *v);

/*
 * Does the output of p's versioncmd (out, len bytes) name p->version as a
 * token (bounded by anything but letters, digits and ".+~_-")?  1 yes, 0
 * no; a profile without a version matches nothing.
 */
int kap_cli_version_ok(const struct kap_cli_profile *p, const char *out,
    size_t len);

/*
 * Run the tool at path with p's versioncmd (blocking, at most 30 s; an
 * empty environment) and check its output with kap_cli_version_ok.
 * 0 when it matches; -1 with a message in err otherwise (the caller
 * refuses to serve the tool in proxy mode).  kap_cli_version.c: not a
 * pure function, unlike the rest of this header.
 */
int kap_cli_version_check(const struct kap_cli_profile *p, const char *path,
    char *err, size_t errlen);

/*
 * kap_cli_version_check, once per binary: a path whose file (device,
 * inode, size, mtime, ctime) already passed with this profile version
 * passes again without running it.  A profile without version and
 * versioncmd fails (nothing to compare).  0 or -1 with a message in err.
 * Neither argument is kept; the table of passed binaries is the module's.
 */
int kap_cli_version_verify(const struct kap_cli_profile *p, const char *path,
    char *err, size_t errlen);

/*
 * kap_cli_res.c: resource arguments of a resargs/resname node.
 * kap_cli_res_type: the canonical form of one resource type as the CLI
 * reads it (lower-cased; a built-in type's other names and its
 * TYPE.VERSION.GROUP / TYPE.GROUP forms of its own group map to its
 * plural; anything else stays lower-cased as written), owned by pool;
 * NULL when out of memory.
 * kap_cli_res_canon: rewrite the positionals pos[0..*npos) of a call at
 * node n in place (canonical types, "TYPE/NAME" alone split into TYPE
 * NAME; *npos may grow by one: pos has room for npos + 1) and fill the
 * call's readings.  0, or -1 with *why (a form the CLI refuses).
 * kap_cli_res_rule_word: a rule's word at the type position, canonical.
 */
const char *kap_cli_res_type(struct kap_pool *pool,
    const struct kap_cli_profile *p, const char *tok);
int kap_cli_res_canon(struct kap_pool *pool, const struct kap_cli_profile *p,
    const struct kap_cli_node *n, const char **path, size_t npath,
    const char **pos, size_t *npos, struct kap_cli_call *call,
    const char **why);

/* Glob: '*' any run of bytes ('/' included), '?' one byte. */
int kap_cli_glob(const char *pat, const char *s);

#endif /* KAP_CLI_RULES_H */
