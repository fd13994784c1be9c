/*
 * kapd_err.c -- struct kap_err: the first error wins (kap_core.h).
 *
 * Configuration and load paths report one root cause with its source
 * position; later errors (usually consequences of the first) are dropped.
 */
#include "kapd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void
err_vset(struct kap_err *err, const char *file, int line,
         const char *fmt, va_list ap)
{
    size_t n;

    if (err == NULL || err->set)
        return;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    err->file[0] = '\0';
    if (file != NULL) {
        n = strlen(file);
        if (n >= sizeof(err->file))
            n = sizeof(err->file) - 1;
        memcpy(err->file, file, n);
        err->file[n] = '\0';
    }
    err->line = line;
    err->set = 1;
}

void
kap_err_set(struct kap_err *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(err, NULL, 0, fmt, ap);
    va_end(ap);
}

void
kap_err_at(struct kap_err *err, const config_setting_t *s,
           const char *fmt, ...)
{
    va_list ap;
    const char *file = NULL;
    int line = 0;

    if (s != NULL) {
        file = config_setting_source_file(s);
        line = (int)config_setting_source_line(s);
    }
    va_start(ap, fmt);
    err_vset(err, file, line, fmt, ap);
    va_end(ap);
}
