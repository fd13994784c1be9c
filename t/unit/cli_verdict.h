/*
 * cli_verdict.h -- helpers the cli rule tests share (t/unit only): a
 * profile, argv from C strings, rules parsed with the profile, and the
 * verdict or the canonical argv of one call as text.
 */
#ifndef KAP_T_CLI_VERDICT_H
#define KAP_T_CLI_VERDICT_H

#include <stdlib.h>
#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_rules.h"
#include "tap.h"

static struct kap_pool        *pool;
static struct kap_cli_profile *prof;
static struct kap_cli_call     last;

static size_t
mkargs(struct kap_cli_arg *a, const char *const *w)
{
    size_t n = 0;

    for (; w[n] != NULL; n++) {
        a[n].data = w[n];
        a[n].len = strlen(w[n]);
    }
    return n;
}

static struct kap_cli_rule **
rules(const char *const *txt, size_t *n)
{
    struct kap_cli_rule **r = kap_palloc(pool, 32 * sizeof(*r));
    char                  err[256];

    for (*n = 0; txt != NULL && txt[*n] != NULL; (*n)++) {
        r[*n] = kap_cli_rule_parse(pool, prof, txt[*n], "test.conf", 1, err,
                                   sizeof(err));
        if (r[*n] == NULL) {
            diag("rule '%s': %s", txt[*n], err);
            exit(1);
        }
    }
    return r;
}

/* The verdict text: "allow", or the denial reason. */
static const char *
verdict(const char *const *argv, const char *const *allow,
        const char *const *deny)
{
    struct kap_cli_arg     a[64];
    struct kap_cli_verdict v;
    struct kap_cli_rule  **ar, **dr;
    size_t                 na, nd, n = mkargs(a, argv);
    const char            *why;

    if (kap_cli_canon(pool, prof, a, n, &last, &why) < 0)
        return why;
    ar = rules(allow, &na);
    dr = rules(deny, &nd);
    kap_cli_decide(pool, prof, &last, dr, nd, ar, na, &v);
    if (!v.allow && v.rule == NULL && v.suggest == NULL)
        return "BUG: no suggestion";
    return v.reason;
}

static const char *
canon(const char *const *argv)
{
    struct kap_cli_arg a[64];
    const char        *why, *s = "";
    size_t             n = mkargs(a, argv);

    if (kap_cli_canon(pool, prof, a, n, &last, &why) < 0)
        return why;
    for (size_t i = 0; i < last.argc; i++)
        s = kap_psprintf(pool, "%s%s%s", s, i ? " " : "", last.argv[i]);
    return s;
}

#define A(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define NONE   ((const char *const *) NULL)
#define ALL    A("**")

#endif /* KAP_T_CLI_VERDICT_H */
