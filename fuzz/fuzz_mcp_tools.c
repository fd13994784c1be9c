/*
 * fuzz_mcp_tools.c -- libFuzzer target for the mcp module's tool patterns
 * (modules/mcp/kap_mcp_tools.c).
 *
 * Input: lines.  Lines before a line "--" are patterns (a first byte '!'
 * makes it a deny pattern); lines after it are tool names.  A line with a
 * NUL is cut there.  Every decision is checked against a plain reference
 * (deny wins, exact or prefix or everything, byte for byte) and must name
 * the first covering pattern of its list; a refused pattern must come
 * with a message.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "kap_mcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAXP 64

static int
ref_covers(const char *pat, const char *name)
{
    size_t n = strlen(pat);

    if (n > 0 && pat[n - 1] == '*')
        return strncmp(pat, name, n - 1) == 0;
    return strcmp(pat, name) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kap_pool *pool = kap_pool_create();
    struct kap_mcp_tools *t = kap_mcp_tools_create(pool);
    const char *pats[MAXP];
    int deny[MAXP];
    size_t npat = 0, i;
    char *copy = malloc(size + 1), *line, *next;
    int names = 0;

    if (copy == NULL || t == NULL)
        abort();
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (line = copy; line != NULL; line = next) {
        next = memchr(line, '\n', (size_t) (copy + size - line));
        if (next != NULL)
            *next++ = '\0';
        if (!names && strcmp(line, "--") == 0) {
            names = 1;
        } else if (!names && npat < MAXP) {
            struct kap_err err = { .set = 0 };
            int d = line[0] == '!';

            if (kap_mcp_tools_add(t, d, line + d, "f", 1, &err) == KAP_OK) {
                pats[npat] = line + d;
                deny[npat++] = d;
            } else if (err.msg[0] == '\0') {
                abort();
            }
        } else if (names) {
            struct kap_mcp_verdict v;
            const char *first_deny = NULL, *first_allow = NULL;
            char why[400];

            kap_mcp_tools_match(t, line, &v);
            for (i = 0; i < npat; i++) {
                if (!ref_covers(pats[i], line))
                    continue;
                if (deny[i] && first_deny == NULL)
                    first_deny = pats[i];
                if (!deny[i] && first_allow == NULL)
                    first_allow = pats[i];
            }
            if (first_deny != NULL) {
                if (v.allow || v.why != KAP_MCP_DENIED || v.rule == NULL
                    || !v.rule->deny || strcmp(v.rule->text, first_deny) != 0)
                    abort();
            } else if (first_allow != NULL) {
                if (!v.allow || v.why != KAP_MCP_ALLOWED || v.rule == NULL
                    || v.rule->deny || strcmp(v.rule->text, first_allow) != 0)
                    abort();
            } else if (v.allow || v.why != KAP_MCP_NOT_ALLOWED || v.rule) {
                abort();
            }
            kap_mcp_verdict_describe(&v, why, sizeof(why));
            if (strlen(why) == 0 || strlen(why) >= sizeof(why))
                abort();
        }
    }
    free(copy);
    kap_pool_destroy(pool);
    return 0;
}
