/*
 * match-bench.c -- speed of the allowlist matcher (core/kapd_match.c).
 *
 * Builds a 100 000-rule allowlist (half exact names, half "*.suffix"
 * wildcards, plus a few deny rules and CIDRs) the way a generation build
 * does, then times lookups of: exact hits, wildcard hits three labels
 * deep, misses, deep names (20 labels) and IP literals.  Prints the build
 * time (target: < 50 ms, DESIGN §7) and lookups per second for each.
 *
 *   make bench-match            (or: bench/match-bench [rules] [lookups])
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kapd.h"
#include "kapd_match.h"

/* CPU time of this process: other work on a shared 2-core machine does
 * not count against us (wall time is printed too, for the build). */
static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long
parse_count(const char *s, unsigned long dflt)
{
    char         *end;
    unsigned long v;

    if (s == NULL)
        return dflt;
    v = strtoul(s, &end, 10);
    return *end == '\0' && v > 0 ? v : dflt;
}

/* Time `n` lookups of names[i % nnames]; returns lookups/s. */
static double
run(const struct kapd_match *m, char **names, size_t nnames, unsigned long n,
    uint16_t port, int want, const char *label)
{
    struct kapd_match_result res;
    unsigned long            i, good = 0;
    double                   t0, dt;

    t0 = now();
    for (i = 0; i < n; i++)
        good += kapd_match_lookup(m, names[i % nnames], port, &res) == want;
    dt = now() - t0;
    printf("  %-28s %10.0f lookups/s  %6.1f ns/lookup (CPU)%s\n", label,
           (double)n / dt, dt * 1e9 / (double)n,
           good == n ? "" : "  (UNEXPECTED VERDICTS)");
    return (double)n / dt;
}

int
main(int argc, char **argv)
{
    unsigned long      nrules = parse_count(argc > 1 ? argv[1] : NULL, 100000);
    unsigned long      nlook = parse_count(argc > 2 ? argv[2] : NULL, 2000000);
    struct kap_pool   *pool;
    struct kapd_match *m;
    struct kap_err     err;
    char               buf[300];
    char             **hit, **whit, **miss, **deep, **lit, **rules;
    size_t             k, nq = 4096;
    unsigned long      i;
    double             t0, w0, build, wbuild;
    int                rc = 0;

    pool = kap_pool_create();
    memset(&err, 0, sizeof(err));
    /* the rule texts, as libconfig would hand them over */
    rules = malloc(nrules * sizeof(*rules));
    for (i = 0; rules != NULL && i < nrules; i++) {
        if (i % 2 == 0)
            snprintf(buf, sizeof(buf), "host%lu.example-%lu.com", i, i % 97);
        else
            snprintf(buf, sizeof(buf), "*.dom%lu.net", i);
        rules[i] = kap_pstrdup(pool, buf);
    }
    if (rules == NULL)
        return 1;
    t0 = now();
    w0 = wall();
    m = kapd_match_create(pool);
    if (m != NULL && kapd_match_reserve(m, nrules + 3) != KAP_OK)
        m = NULL;
    for (i = 0; m != NULL && i < nrules; i++) {
        if (kapd_match_add(m, 0, rules[i], "bench.conf", (int)i + 1, &err)
            != KAP_OK) {
            fprintf(stderr, "match-bench: %s\n", err.msg);
            return 1;
        }
    }
    kapd_match_add(m, 1, "*.denied.dom1.net", "bench.conf", 0, &err);
    kapd_match_add(m, 0, "10.0.0.0/8", "bench.conf", 0, &err);
    kapd_match_add(m, 0, "2001:db8::/32", "bench.conf", 0, &err);
    build = now() - t0;
    wbuild = wall() - w0;
    printf("match-bench: %lu rules built in %.1f ms CPU, %.1f ms wall"
           " (target < 50 ms)%s\n", kapd_match_count(m), build * 1e3,
           wbuild * 1e3, build < 0.050 ? "" : "  ** OVER TARGET **");
    if (build >= 0.050)
        rc = 2;

    hit = calloc(nq, sizeof(*hit));
    whit = calloc(nq, sizeof(*whit));
    miss = calloc(nq, sizeof(*miss));
    deep = calloc(nq, sizeof(*deep));
    lit = calloc(nq, sizeof(*lit));
    for (k = 0; k < nq; k++) {
        unsigned long r = (unsigned long)rand() % (nrules / 2);
        snprintf(buf, sizeof(buf), "host%lu.example-%lu.com", r * 2,
                 (r * 2) % 97);
        hit[k] = kap_pstrdup(pool, buf);
        snprintf(buf, sizeof(buf), "a.b.c%zu.dom%lu.net", k, r * 2 + 1);
        whit[k] = kap_pstrdup(pool, buf);
        snprintf(buf, sizeof(buf), "www.nothere%zu.org", k);
        miss[k] = kap_pstrdup(pool, buf);
        snprintf(buf, sizeof(buf),
                 "l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.l11.l12.l13.l14.l15.l16"
                 ".l17.x%zu.dom%lu.net", k, r * 2 + 1);
        deep[k] = kap_pstrdup(pool, buf);
        snprintf(buf, sizeof(buf), "10.%zu.%zu.1", k % 256, k / 256);
        lit[k] = kap_pstrdup(pool, buf);
    }
    run(m, hit, nq, nlook, 443, KAP_ALLOW, "exact hits");
    run(m, whit, nq, nlook, 443, KAP_ALLOW, "wildcard hits (4 labels)");
    run(m, miss, nq, nlook, 443, KAP_DENY, "misses");
    run(m, deep, nq, nlook, 443, KAP_ALLOW, "deep names (20 labels)");
    run(m, lit, nq, nlook, 443, KAP_ALLOW, "IPv4 literals in a CIDR");
    run(m, hit, nq, nlook, 0, KAP_ALLOW, "DNS questions (port 0)");

    t0 = now();
    kap_pool_destroy(pool);
    printf("  generation pool destroyed in %.1f ms\n", (now() - t0) * 1e3);
    free(hit);
    free(whit);
    free(miss);
    free(deep);
    free(lit);
    free(rules);
    return rc;
}
