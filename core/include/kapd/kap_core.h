/*
 * kap_core.h -- the module-facing API of kapd (umbrella header).
 *
 * Everything a module may call is declared in the headers included here
 * and exported by the kapd binary with the kap_ prefix.  Unless a comment
 * says otherwise, every function must be called from the event loop
 * thread (kapd has one thread) and may be called from any callback.
 */
#ifndef KAP_CORE_H
#define KAP_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>
#include <libconfig.h>

#include <kapd/kap_build.h>
#include <kapd/kap_module.h>

#if defined(__GNUC__)
#define KAP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define KAP_PRINTF(a, b)
#endif

/* A counted string; not necessarily NUL-terminated.  Never owns data. */
struct kap_str {
    const char *data;
    size_t      len;
};

/*
 * An error with its origin.  file/line name the configuration line (or
 * are empty/0 when the error has no source position).  Filled by
 * kap_err_set*(); the first error set wins, later ones are ignored, so a
 * caller can report the root cause.
 */
struct kap_err {
    char msg[512];
    char file[256];
    int  line;
    int  set;            /* non-zero once an error has been recorded */
};

/* Record an error without a source position.  err may be NULL. */
void kap_err_set(struct kap_err *err, const char *fmt, ...) KAP_PRINTF(2, 3);
/* Record an error at the source position of setting s (may be NULL). */
void kap_err_at(struct kap_err *err, const config_setting_t *s,
                const char *fmt, ...) KAP_PRINTF(3, 4);

/*
 * A growable byte buffer (heap, not pool).  kap_buf_free() releases data.
 * Appends return KAP_OK or KAP_ERROR (out of memory; the buffer is left
 * as it was).
 *
 * As a queue: bytes are appended at len and taken from off, so the unread
 * bytes are data[off..len) (kap_buf_used() of them).  kap_buf_consume()
 * advances off and rewinds both to 0 when the buffer empties; a reserve
 * or append moves the unread bytes to the front when that makes room.
 * A buffer never consumed has off == 0 and is plain text in data[0..len).
 */
struct kap_buf {
    char   *data;        /* NUL-terminated when non-NULL */
    size_t  len;
    size_t  cap;
    size_t  off;         /* bytes at the front already consumed */
};
int  kap_buf_append(struct kap_buf *b, const void *p, size_t n);
int  kap_buf_printf(struct kap_buf *b, const char *fmt, ...) KAP_PRINTF(2, 3);
void kap_buf_reset(struct kap_buf *b);   /* len = off = 0, keeps memory */
void kap_buf_free(struct kap_buf *b);    /* frees data, zeroes b */
/* Unread bytes: len - off. */
size_t kap_buf_used(const struct kap_buf *b);
/* Mark n unread bytes (n <= kap_buf_used) as consumed. */
void kap_buf_consume(struct kap_buf *b, size_t n);
/*
 * Make room for at least `more` bytes after len (plus the terminator),
 * compacting or growing; so a caller may recv() into data + len, up to
 * kap_buf_room(b) bytes, and then kap_buf_added(b, n).  KAP_OK/KAP_ERROR.
 */
int    kap_buf_reserve(struct kap_buf *b, size_t more);
size_t kap_buf_room(const struct kap_buf *b);
void   kap_buf_added(struct kap_buf *b, size_t n);

/* The process's libev loop.  Borrowed; valid for the process lifetime. */
struct ev_loop *kap_loop(void);
/* The loop's cached time (ev_now), seconds since the epoch. */
double kap_now(void);
/* Non-zero once a graceful shutdown has begun. */
int kap_shutting_down(void);

#include <kapd/kap_pool.h>
#include <kapd/kap_log.h>
#include <kapd/kap_gen.h>
#include <kapd/kap_conf.h>
#include <kapd/kap_conn.h>
#include <kapd/kap_req.h>

#endif /* KAP_CORE_H */
