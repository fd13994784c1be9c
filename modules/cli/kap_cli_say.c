/*
 * kap_cli_say.c -- the words of a cli verdict (kap_cli_say.h).
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_pool.h>

#include "kap_cli_say.h"

char *
kap_cli_say_argv(struct kap_pool *pool, const char *const *argv)
{
    size_t i, n = 1;
    char  *out, *p;

    for (i = 0; argv[i] != NULL; i++)
        n += strlen(argv[i]) + 3;
    out = p = kap_palloc(pool, n);
    if (out == NULL)
        return NULL;
    for (i = 0; argv[i] != NULL; i++) {
        const char *w = argv[i];
        int         q = *w == '\0' || strpbrk(w, " \t\n'\"\\$`") != NULL;

        if (i > 0)
            *p++ = ' ';
        if (q)
            *p++ = '\'';
        for (; *w != '\0'; w++)                 /* one line: no controls */
            *p++ = (unsigned char)*w < 0x20 || *w == 0x7f ? '?' : *w;
        if (q)
            *p++ = '\'';
    }
    *p = '\0';
    return out;
}

char *
kap_cli_say_denied(struct kap_pool *pool, const char *cmd, const char *reason,
                   const char *suggest)
{
    int    s = suggest != NULL && suggest[0] != '\0';
    char  *line, *p;

    line = kap_psprintf(pool, "kap: %s: denied: %s%s%s%s", cmd,
                        reason != NULL && reason[0] != '\0' ? reason
                                                            : "denied",
                        s ? " (a rule that would allow it: \"" : "",
                        s ? suggest : "", s ? "\")" : "");
    if (line == NULL)
        return NULL;
    for (p = line; *p != '\0'; p++)            /* one line: no controls */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return kap_psprintf(pool, "%s\n", line);
}
