/*
 * kapd_limits.h -- tunables, one line each.
 */
#ifndef KAPD_LIMITS_H
#define KAPD_LIMITS_H

#define KAPD_DEFAULT_GRACE        10.0   /* s: shutdown grace for open conns */
#define KAPD_DEFAULT_RELOAD_CHECK  2.0   /* s: config content check interval */
#define KAPD_LISTEN_BACKLOG       4096   /* listen(2) backlog */
#define KAPD_DGRAM_MAX           65535   /* largest datagram received */
#define KAPD_ACCEPT_BATCH           64   /* accepts per loop iteration */
#define KAPD_MAX_CONF_FILES         64   /* @include'd files watched */
#define KAPD_LOG_LINE_MAX         4096   /* longest error-log line */
#define KAPD_AUDIT_LINE_MAX      16384   /* longest audit JSONL line */

#endif /* KAPD_LIMITS_H */
