/*
 * kap_shim_say.c -- kap-shim's one-line messages on standard error,
 * shared by its roles (bridge, exec/pty, capsule, connect).
 */
#include "kap_shim_say.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void
kap_shim_vsay(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "%s: ", prefix);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line)
        line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}
