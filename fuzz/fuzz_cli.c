/*
 * fuzz_cli.c -- libFuzzer target for the cli module's deciding part:
 * profile text, rule parsing and the argv canonicaliser with matching.
 *
 * Input: lines.  If the first line is "#profile", the lines up to a line
 * "--" are a profile (kap_cli_profile_parse: any family; the seeds hold
 * small profiles shaped like each generated one, gh, kubectl, docker,
 * aws, git); otherwise a built-in cobra profile shaped like gh is used.  Then lines up to a line "==" are
 * rules (a first byte '!' makes a deny rule, '?' an ask rule); every line
 * after it is one
 * argv element (NUL bytes and invalid UTF-8 included).  Invariants: a
 * verdict is allow with an allow rule, ask with an ask rule, or deny with
 * a reason; the
 * canonical argv starts with the tool name, and canonicalising it again
 * gives the same argv and the same verdict.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char builtin[] =
    "tool gh\nfamily cobra\n"
    "pflag / --help b\nflag / --version b\nflag / --repo v -R\n"
    "cmd auth/token\nflag auth/token --hostname v -h\n"
    "cmd auth/status\nflag auth/status --hostname v -h\n"
    "flag auth/status --show-token b -t\n"
    "cmd pr/list\nflag pr/list --draft b -d\nflag pr/list --limit v -L\n"
    "flag pr/list --jq v -q\ncmd pr/view\nflag pr/view --comments b -c\n"
    "cmd pr/checkout\npflag pr --repo v -R\nalias pr ls list\n"
    "alias / co pr checkout\n"
    "cmd issue/create\nflag issue/create --body-file p -F\n"
    "cmd api\nflag api --method v -X\nflag api --include b -i\n"
    "flag api --field v -F\nflag api --raw-field v -f\nflag api --input p\n"
    "flag api --header v -H\n"
    "derived api --method upper GET POST --raw-field --field --input\n"
    "sensitive auth token\nsensitive auth status --show-token\n"
    "sensitive api --method!=GET\nguarded --hostname\nguarded --jq\n"
    "guarded api *://*\nguarded --repo=*/*/*\n";

struct lines {
    const char *p, *end;
};

/* The next line (without '\n'); 0 at the end. */
static int
next_line(struct lines *l, const char **s, size_t *n)
{
    const char *e;

    if (l->p >= l->end)
        return 0;
    e = memchr(l->p, '\n', (size_t) (l->end - l->p));
    if (e == NULL)
        e = l->end;
    *s = l->p;
    *n = (size_t) (e - l->p);
    l->p = e + 1;
    return 1;
}

static void
decide(struct kap_pool *pool, const struct kap_cli_profile *prof,
       const struct kap_cli_arg *a, size_t na,
       struct kap_cli_rule **rule, const int *isdeny, size_t nr,
       struct kap_cli_call *c, struct kap_cli_verdict *v, int *ok)
{
    struct kap_cli_rule *al[64], *dn[64], *ak[64];
    size_t               nal = 0, ndn = 0, nak = 0;
    const char          *why;

    for (size_t i = 0; i < nr; i++) {
        if (isdeny[i] == 1)
            dn[ndn++] = rule[i];
        else if (isdeny[i] == 2)
            ak[nak++] = rule[i];
        else
            al[nal++] = rule[i];
    }
    *ok = kap_cli_canon(pool, prof, a, na, c, &why) == 0;
    if (!*ok) {
        if (why == NULL || *why == '\0')
            abort();
        return;
    }
    if (c->argc < 1 || strcmp(c->argv[0], prof->tool) != 0
        || c->argv[c->argc] != NULL || c->npath > c->nword)
        abort();
    kap_cli_decide_ask(pool, prof, c, dn, ndn, ak, nak, al, nal, v);
    if (v->reason == NULL || (v->ask && v->allow))
        abort();
    if (v->ask) {
        int found = 0;
        for (size_t i = 0; i < nak; i++)
            found |= v->rule == ak[i];
        if (!found)
            abort();
        return;
    }
    if (v->allow && (v->rule == NULL || strcmp(v->reason, "allow") != 0))
        abort();
    if (!v->allow && v->rule == NULL && v->suggest == NULL
        && strcmp(v->reason, "out-of-memory") != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_pool        *pool = kap_pool_create();
    struct lines            l = { (const char *) data, (const char *) data + size };
    const struct kap_cli_profile *prof;
    struct kap_cli_rule    *rule[64];
    int                     isdeny[64], ok1, ok2;
    size_t                  nr = 0, na = 0, n;
    const char             *s;
    struct kap_cli_arg      a[256], b[512];
    struct kap_cli_call     c1, c2;
    struct kap_cli_verdict  v1, v2;
    char                    err[256];

    if (pool == NULL)
        return 0;
    if (size >= 9 && memcmp(data, "#profile\n", 9) == 0) {
        const char *start = (const char *) data + 9, *end = start;

        l.p = start;
        while (next_line(&l, &s, &n) && !(n == 2 && memcmp(s, "--", 2) == 0))
            end = s + n;
        prof = kap_cli_profile_parse(pool, start, (size_t) (end - start), err,
                                     sizeof(err));
    } else
        prof = kap_cli_profile_parse(pool, builtin, sizeof(builtin) - 1, err,
                                     sizeof(err));
    if (prof == NULL) {
        if (err[0] == '\0')
            abort();
        kap_pool_destroy(pool);
        return 0;
    }
    (void) kap_cli_version_ok(prof, (const char *) data, size);
    while (next_line(&l, &s, &n) && !(n == 2 && memcmp(s, "==", 2) == 0)) {
        char *t = kap_pstrndup(pool, s, n);
        int   d = n > 0 && s[0] == '!' ? 1 : n > 0 && s[0] == '?' ? 2 : 0;

        if (t == NULL || nr == 64)
            continue;
        rule[nr] = kap_cli_rule_parse(pool, prof, t + (d != 0), "fuzz", 1, err,
                                      sizeof(err));
        if (rule[nr] == NULL && err[0] == '\0')
            abort();
        if (rule[nr] != NULL)
            isdeny[nr++] = d;
    }
    while (na < 256 && next_line(&l, &s, &n)) {
        a[na].data = s;
        a[na++].len = n;
    }
    decide(pool, prof, a, na, rule, isdeny, nr, &c1, &v1, &ok1);
    if (ok1 && c1.argc - 1 <= 512) {
        /* what kapd executes reads back to itself */
        for (size_t i = 1; i < c1.argc; i++) {
            b[i - 1].data = c1.argv[i];
            b[i - 1].len = strlen(c1.argv[i]);
        }
        decide(pool, prof, b, c1.argc - 1, rule, isdeny, nr, &c2, &v2, &ok2);
        if (!ok2 || c2.argc != c1.argc || v2.allow != v1.allow
            || v2.ask != v1.ask)
            abort();
        for (size_t i = 0; i < c1.argc; i++)
            if (strcmp(c1.argv[i], c2.argv[i]) != 0)
                abort();
    }
    kap_pool_destroy(pool);
    return 0;
}
