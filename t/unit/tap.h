/*
 * tap.h -- a minimal TAP producer for the C unit tests (header only).
 *
 *   plan(n) or plan_no_plan(); ok(cond, fmt, ...); is_int(got, want, name);
 *   is_str(got, want, name); diag(fmt, ...); return done_testing();
 */
#ifndef KAP_TAP_H
#define KAP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_failed, tap_planned = -1;

static inline void plan(int n) { tap_planned = n; printf("1..%d\n", n); }

static inline void diag(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void diag(const char *fmt, ...)
{
    va_list ap;
    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

static inline int ok_(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int ok_(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%sok %d - ", cond ? "" : "not ", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    if (!cond) {
        tap_failed++;
        printf("#   Failed at %s line %d\n", file, line);
    }
    fflush(stdout);
    return cond;
}

#define ok(cond, ...) ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, name)                                             \
    do {                                                                    \
        long long g_ = (long long)(got), w_ = (long long)(want);            \
        if (!ok(g_ == w_, "%s", name))                                      \
            diag("got %lld, want %lld", g_, w_);                            \
    } while (0)

#define is_str(got, want, name)                                             \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        int eq_ = (g_ && w_) ? strcmp(g_, w_) == 0 : g_ == w_;              \
        if (!ok(eq_, "%s", name))                                           \
            diag("got \"%s\", want \"%s\"", g_ ? g_ : "(null)",             \
                 w_ ? w_ : "(null)");                                       \
    } while (0)

static inline int done_testing(void)
{
    if (tap_planned < 0)
        printf("1..%d\n", tap_n);
    else if (tap_planned != tap_n)
        printf("# planned %d tests but ran %d\n", tap_planned, tap_n);
    return tap_failed || (tap_planned >= 0 && tap_planned != tap_n);
}

/* The whole file at path, NUL-terminated (malloc; caller frees); NULL if
 * it cannot be opened.  *len gets its length when len is not NULL. */
static inline char *
tap_slurp(const char *path, size_t *len)
{
    FILE  *f = fopen(path, "rb");
    char  *buf;
    long   n;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)n + 1);
    if (buf == NULL) {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

#endif /* KAP_TAP_H */
