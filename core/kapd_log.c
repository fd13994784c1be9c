/*
 * kapd_log.c -- the error log (kap_log.h, kapd.h log section).
 *
 * One line per message, written with a single write(2) to an O_APPEND
 * file or to stderr:
 *   2026/11/29 10:00:00 [warn] 1234#*17 http_connect: message
 * Control characters in the message are escaped (\xNN) so that a peer
 * cannot forge log lines.  A line longer than KAPD_LOG_LINE_MAX is cut.
 * While a secret is loaded (kap_secret.h), the message is passed through
 * kap_secret_redact() before it is escaped; with none, this costs a test.
 * A failed or short write is dropped (never retried, never blocks long).
 * The file is opened relative to its directory, opened once per path, with
 * O_NOFOLLOW, and only when it is a regular file with one link
 * (kapd_file.c): a reopen (SIGUSR1) that finds a symbolic link, a hard
 * link or a FIFO in its place fails and the old file stays in use.
 */
#include "kapd.h"
#include "kapd_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

int kap_log_level_current = KAP_LOG_NOTICE;

static int log_fd = STDERR_FILENO;
static int log_dirfd = -1;              /* the error log's directory */
static char *log_name;                  /* heap: its name in log_dirfd */
static char *log_path;                  /* heap: as configured */
static char **log_debug;                /* heap, NULL-terminated */
static int log_debug_all;               /* "*" or "all" in the list */

static const char *const level_names[] = {
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"
};

const char *
kapd_log_level_name(int level)
{
    if (level < KAP_LOG_EMERG || level > KAP_LOG_DEBUG)
        return "unknown";
    return level_names[level];
}

int
kapd_log_level_parse(const char *s)
{
    int i;

    if (s == NULL)
        return -1;
    for (i = KAP_LOG_EMERG; i <= KAP_LOG_DEBUG; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "err") == 0)
        return KAP_LOG_ERR;
    if (strcasecmp(s, "warning") == 0)
        return KAP_LOG_WARN;
    return -1;
}

void
kapd_log_set_level(int level)
{
    if (level < KAP_LOG_EMERG)
        level = KAP_LOG_EMERG;
    if (level > KAP_LOG_DEBUG)
        level = KAP_LOG_DEBUG;
    kap_log_level_current = level;
}

static void
debug_free(void)
{
    size_t i;

    if (log_debug) {
        for (i = 0; log_debug[i]; i++)
            free(log_debug[i]);
        free(log_debug);
    }
    log_debug = NULL;
    log_debug_all = 0;
}

void
kapd_log_set_debug(const char *const *modules)
{
    size_t n = 0, i;
    char **v;

    debug_free();
    if (modules == NULL)
        return;
    while (modules[n])
        n++;
    if (n == 0)
        return;
    v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        return;                 /* debug logging is best effort */
    for (i = 0; i < n; i++) {
        v[i] = strdup(modules[i]);
        if (v[i] == NULL)
            break;
        if (strcmp(v[i], "*") == 0 || strcmp(v[i], "all") == 0)
            log_debug_all = 1;
    }
    log_debug = v;
}

int
kap_log_debug_enabled(const char *module)
{
    size_t i;

    if (kap_log_level_current >= KAP_LOG_DEBUG || log_debug_all)
        return 1;
    if (log_debug == NULL)
        return 0;
    if (module == NULL)
        module = "kapd";
    for (i = 0; log_debug[i]; i++)
        if (strcmp(log_debug[i], module) == 0)
            return 1;
    return 0;
}

int
kapd_log_open(const char *path, struct kap_err *err)
{
    int fd, old = log_fd;

    if (path == NULL || *path == '\0' || strcmp(path, "stderr") == 0) {
        log_fd = STDERR_FILENO;
    } else {
        if (log_path == NULL || strcmp(log_path, path) != 0) {
            /* a new path: its directory is opened now, and kept */
            char *name = NULL, *copy = strdup(path);
            int dfd = copy ? kapd_dir_open(path, &name, 0) : -1;
            if (dfd < 0) {
                kap_err_set(err, "cannot open error log \"%s\": %s", path,
                            copy ? strerror(errno) : "out of memory");
                free(copy);
                return KAP_ERROR;
            }
            if (log_dirfd >= 0)
                close(log_dirfd);
            free(log_name);
            free(log_path);
            log_dirfd = dfd;
            log_name = name;
            log_path = copy;
        }
        fd = kapd_file_openat(log_dirfd, log_name,
                              O_WRONLY | O_CREAT | O_APPEND, 0640, NULL);
        if (fd < 0) {
            kap_err_set(err, "cannot open error log \"%s\": %s", path,
                        kapd_file_strerror(errno));
            return KAP_ERROR;
        }
        if (fd <= STDERR_FILENO) {
            /* stdio fds were closed: keep ours clear of them. */
            int nfd = fcntl(fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
            close(fd);
            if (nfd < 0) {
                kap_err_set(err, "cannot open error log \"%s\": %s", path,
                            strerror(errno));
                return KAP_ERROR;
            }
            fd = nfd;
        }
        log_fd = fd;
    }
    if (old > STDERR_FILENO && old != log_fd)
        close(old);
    return KAP_OK;
}

/* Append s to line[*pos..cap), escaping control bytes; cuts when full. */
static void
log_escape(char *line, size_t *pos, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t p = *pos;
    unsigned char ch;

    for (; *s; s++) {
        ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f) {
            if (p + 4 >= cap)
                break;
            line[p++] = '\\';
            line[p++] = 'x';
            line[p++] = hex[ch >> 4];
            line[p++] = hex[ch & 0xf];
        } else {
            if (p + 1 >= cap)
                break;
            line[p++] = (char)ch;
        }
    }
    *pos = p;
}

void
kap_log_error(int level, const char *module, uint64_t conn_id,
              const char *fmt, ...)
{
    char line[KAPD_LOG_LINE_MAX];
    char msg[KAPD_LOG_LINE_MAX];
    char red[KAPD_LOG_LINE_MAX];
    const char *text = msg;
    struct tm tm;
    time_t now;
    size_t pos;
    int n, saved = errno;
    va_list ap;

    if (level > kap_log_level_current
        && !(level == KAP_LOG_DEBUG && kap_log_debug_enabled(module)))
        return;
    if (level < KAP_LOG_EMERG)
        level = KAP_LOG_EMERG;
    if (level > KAP_LOG_DEBUG)
        level = KAP_LOG_DEBUG;

    now = time(NULL);
    if (localtime_r(&now, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    if (conn_id)
        n = snprintf(line, sizeof(line),
                     "%04d/%02d/%02d %02d:%02d:%02d [%s] %ld#*%llu %s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, level_names[level],
                     (long)getpid(), (unsigned long long)conn_id,
                     module ? module : "", module ? ": " : "");
    else
        n = snprintf(line, sizeof(line),
                     "%04d/%02d/%02d %02d:%02d:%02d [%s] %ld# %s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, level_names[level],
                     (long)getpid(), module ? module : "",
                     module ? ": " : "");
    if (n < 0)
        n = 0;
    pos = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;

    va_start(ap, fmt);
    errno = saved;              /* so %m works in the message */
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (kapd_secret_nlive > 0) {
        /* while a secret is loaded, none reaches the log (kap_secret.h) */
        kap_secret_redact(msg, red, sizeof(red));
        kap_secret_wipe(msg, sizeof(msg));
        text = red;
    }
    log_escape(line, &pos, sizeof(line) - 1, text);
    line[pos++] = '\n';

    if (write(log_fd, line, pos) < 0) {
        /* nowhere left to complain; drop the line */
    }
    errno = saved;
}
