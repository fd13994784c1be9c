/*
 * fuzz_match.c -- libFuzzer target for the allowlist matcher: rule
 * compilation (kapd_match_add) and lookups (kapd_match_lookup, names and
 * literals in every spelling), plus kap_addr_parse_literal on its own.
 *
 * Input: lines.  Lines before a line "--" are rules (a first byte '!'
 * makes it a deny rule); lines after it are subjects to look up, each on
 * ports 0, 443 and 22.  Arbitrary bytes, NULs included, are fine: a line
 * with a NUL is cut there (as a C string would be).  Invariants checked:
 * a verdict is KAP_ALLOW or KAP_DENY and agrees with its reason; an
 * allowed subject is a valid name or literal; a rule the matcher took
 * has file:line; reasons always fit.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kapd.h"
#include "kapd_match.h"
#include <kapd/kap_addr.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_lookup(const struct kapd_match *m, const char *s, uint16_t port)
{
    struct kapd_match_result res;
    struct sockaddr_storage  ss;
    char                     reason[700], norm[260];
    int                      v = kapd_match_lookup(m, s, port, &res);

    if (v != KAP_ALLOW && v != KAP_DENY)
        abort();
    if (v != res.verdict)
        abort();
    if ((v == KAP_ALLOW) != (res.why == KAPD_MATCH_ALLOWED))
        abort();
    if (v == KAP_ALLOW) {
        if (res.rule == NULL || res.rule->deny)
            abort();
        if (kap_addr_parse_literal(s, &ss) != KAP_OK
            && kap_host_name_norm(s, strlen(s), norm, sizeof(norm)) < 0)
            abort();                 /* allowed something invalid */
    }
    if (res.why == KAPD_MATCH_DENIED && (res.rule == NULL || !res.rule->deny))
        abort();
    kapd_match_reason(&res, port, reason, sizeof(reason));
    if (strlen(reason) >= sizeof(reason))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_pool   *pool = kap_pool_create();
    struct kapd_match *m;
    struct kap_err     err;
    char              *buf, *line, *next;
    int                rules = 1, lineno = 0;

    if (pool == NULL)
        return 0;
    m = kapd_match_create(pool);
    buf = malloc(size + 1);
    if (m == NULL || buf == NULL) {
        free(buf);
        kap_pool_destroy(pool);
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';

    for (line = buf; line != NULL; line = next) {
        struct sockaddr_storage ss;
        char                    txt[KAP_ADDR_TEXT_MAX];

        next = memchr(line, '\n', (size_t)(buf + size - line));
        if (next != NULL)
            *next++ = '\0';
        lineno++;
        if (strcmp(line, "--") == 0) {
            rules = 0;
            continue;
        }
        if (rules) {
            int deny = line[0] == '!';
            memset(&err, 0, sizeof(err));
            if (kapd_match_add(m, deny, line + deny, "fuzz.conf", lineno,
                               &err) != KAP_OK) {
                if (!err.set || err.line != lineno)
                    abort();         /* every error has its position */
            }
            continue;
        }
        if (kap_addr_parse_literal(line, &ss) == KAP_OK) {
            if (kap_addr_to_text((struct sockaddr *)&ss, txt, sizeof(txt))
                == NULL)
                abort();
            (void)kap_addr_is_denied((struct sockaddr *)&ss, NULL);
        }
        check_lookup(m, line, 0);
        check_lookup(m, line, 443);
        check_lookup(m, line, 22);
    }
    free(buf);
    kap_pool_destroy(pool);
    return 0;
}
