/*
 * kap_log.h -- the error log (for operators; decisions go to the audit
 * chain, never here).
 *
 * Line format:
 *   2026/11/29 10:00:00 [warn] 1234#*17 http_connect: message
 * "*17" is the connection id (omitted when 0).  Levels as syslog/nginx.
 * Writing never blocks the loop for long: the log is an O_APPEND file or
 * stderr.
 */
#ifndef KAP_LOG_H
#define KAP_LOG_H

#include <stdint.h>

enum kap_log_level {
    KAP_LOG_EMERG = 0,
    KAP_LOG_ALERT,
    KAP_LOG_CRIT,
    KAP_LOG_ERR,
    KAP_LOG_WARN,
    KAP_LOG_NOTICE,
    KAP_LOG_INFO,
    KAP_LOG_DEBUG
};

/* Current threshold; messages above it are not formatted. */
extern int kap_log_level_current;

/*
 * Log a message.  module is a module name or NULL for the core; conn_id
 * is a connection id or 0.  Use the KAP_LOG macro, which skips the
 * formatting when the level is filtered out.
 */
void kap_log_error(int level, const char *module, uint64_t conn_id,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Non-zero when debug logging is on for module (kapd.log.debug list). */
int kap_log_debug_enabled(const char *module);

#define KAP_LOG(level, module, conn_id, ...)                               \
    do {                                                                   \
        if ((level) <= kap_log_level_current)                              \
            kap_log_error((level), (module), (conn_id), __VA_ARGS__);      \
    } while (0)

#define KAP_DEBUG(module, conn_id, ...)                                    \
    do {                                                                   \
        if (kap_log_debug_enabled(module))                                 \
            kap_log_error(KAP_LOG_DEBUG, (module), (conn_id), __VA_ARGS__);\
    } while (0)

#endif /* KAP_LOG_H */
