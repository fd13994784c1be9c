/*
 * kapd_audit_log.c -- the built-in `audit_log` module: the JSONL sink of
 * the audit chain.
 *
 *   audit_log = {
 *     path = "audit.jsonl";     # relative to the prefix; "off" disables;
 *                               # "-" or "stdout": kapd's standard output
 *     max_size = "10M";         # rotate before a line would pass this
 *     keep = 3;                 # path.1 .. path.3
 *   };
 *
 * One JSON object per line, appended to an O_APPEND descriptor.  Inside
 * the event loop, lines are collected in a per-file buffer and written
 * with one write(2) per loop iteration (an ev_prepare watcher, just
 * before the loop waits), or as soon as the buffer holds 64 KiB, so a
 * busy DNS server does not pay a system call per line; outside the loop
 * (start-up, shutdown, unit tests) every line is written at once, after
 * whatever is still buffered.  Buffered lines are written before a
 * reopen, a rotation, a generation's retirement and at exit, so none is
 * lost and their order is kept.  Whole lines only, one write per batch:
 *
 *
 *   {"ts":"2026-11-29T10:00:00.123456Z","gen":1,"conn":17,
 *    "module":"http_connect","kind":"connect","event":"decision",
 *    "subject":"github.com","domain":"github.com","port":443,
 *    "action":"allowed","reason":"allow \"github.com\" (kap.conf:3)",
 *    "decided_by":"network","detail":"CONNECT","method":"CONNECT",
 *    "client":"172.28.0.2:41234", ...extra fields}
 *
 * "domain" and "method" repeat subject and detail for the old kap format
 * (kap why-denied).  Lines are written with kap_json's writer
 * (kap_json.h), which escapes every string byte by byte: control
 * characters as \u00XX, and every byte that is not part of valid UTF-8 as
 * \u00XX too, so a line is always valid JSON whatever an agent sends.
 * Values are cut at a bounded length ("truncated":true) so a line stays
 * under KAPD_AUDIT_LINE_MAX.
 *
 * The open file is process-wide and shared by every generation naming the
 * same path (a registry with reference counts): init() of a new
 * generation reopens it (SIGUSR1 after an external rotation, and any
 * reload), and an older generation still serving connections writes
 * through the new descriptor.  Size-based rotation renames path to
 * path.1 ... path.keep.  The sink never blocks for long and never fails a
 * request: a write error is counted and logged at most every 10 s.
 *
 * On standard output ("-", "stdout": a container's log pipe) the lines
 * go through a non-blocking queue (kapd_lineq.h): a reader that stops
 * reading costs memory up to AUDIT_PIPE_QUEUE bytes, then whole lines are
 * dropped and counted; kapd never waits for the pipe.  No rotation there.
 *
 * The file's directory is opened once, when the path is first used, and
 * every open, rename and unlink happens relative to it with O_NOFOLLOW
 * (kapd_file.c): whoever can write that directory (an agent, when the log
 * lies in its reach) can delete the log, but cannot make kapd follow a
 * symbolic link or a hard link planted in its place or in place of a
 * rotated name, nor write into a FIFO or a device.  A reopen or rotation
 * that meets such a thing logs an error and keeps writing to the file
 * already open; only the first open fails the start.
 */
#include "kapd.h"
#include "kapd_lineq.h"

#include <kapd/kap_json.h>
#include "kapd_json_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define AUDIT_VALUE_MAX       2048   /* input bytes of one value, 1st try */
#define AUDIT_VALUE_MAX_SMALL  160   /* input bytes of one value, 2nd try */
#define AUDIT_WARN_EVERY      10.0   /* s between write-error warnings */
#define AUDIT_MAX_KEEP         100
#define AUDIT_BUF_MAX   (64 * 1024)  /* buffered bytes per file */
#define AUDIT_PIPE_QUEUE (256 * 1024) /* queued for a slow stdout reader */
#define AUDIT_STDOUT    "stdout"     /* registry name of standard output */

/* One open audit file, shared by the generations that name its path. */
struct audit_file {
    char              *path;         /* heap */
    int                dirfd;        /* its directory, opened once */
    char              *name;         /* heap: the name in dirfd */
    int                fd;
    long long          size;         /* bytes in the current file */
    int                refs;
    unsigned long      dropped;      /* lines lost to write errors */
    double             last_warn;
    char              *buf;          /* AUDIT_BUF_MAX, heap, lazily */
    size_t             blen;         /* bytes buffered, whole lines */
    unsigned long      blines;       /* lines buffered */
    int                is_pipe;      /* standard output: through q */
    struct kapd_lineq  q;
    struct audit_file *next;
};

static struct audit_file *audit_files;   /* the registry */
static ev_prepare         audit_prep;    /* flushes once per iteration */
static int                audit_prep_on;
static int                audit_atexit_set;
static pid_t              audit_pid;     /* atexit flushes in this one */

struct audit_conf {
    const char        *path_cfg;     /* as configured */
    const char        *path;         /* resolved against the prefix */
    int                off;
    int                is_stdout;    /* path "-" or "stdout" */
    long long          max_size;     /* -1 unset; 0 no rotation */
    long long          keep;         /* -1 unset */
    struct audit_file *file;         /* after init */
};

static const char *const audit_keys[] = {
    "path", "max_size", "keep", NULL
};

/* ---- configuration ------------------------------------------------- */

static void *
audit_conf_create(struct kap_gen *gen)
{
    struct audit_conf *conf = kap_palloc(kap_gen_pool(gen), sizeof(*conf));

    if (conf == NULL)
        return NULL;
    conf->max_size = -1;
    conf->keep = -1;
    return conf;
}

static int
audit_conf_parse(struct kap_gen *gen, void *vconf,
                 const config_setting_t *group, struct kap_err *err)
{
    struct audit_conf *conf = vconf;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, audit_keys, err) != KAP_OK)
        return KAP_ERROR;
    if (kap_conf_get_str(group, "path", kap_gen_pool(gen), &conf->path_cfg,
                         err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_size(group, "max_size", &conf->max_size, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (conf->max_size != -1 && conf->max_size != 0
        && conf->max_size < 1024) {
        kap_err_at(err, config_setting_get_member(group, "max_size"),
                   "audit_log.max_size must be 0 (no rotation) or at least"
                   " 1k");
        return KAP_ERROR;
    }
    if (kap_conf_get_int(group, "keep", 0, AUDIT_MAX_KEEP, &conf->keep, err)
        == KAP_ERROR)
        return KAP_ERROR;
    return KAP_OK;
}

static int
audit_conf_check(struct kap_gen *gen, void *vconf, struct kap_err *err)
{
    struct audit_conf *conf = vconf;

    if (conf->path_cfg == NULL)
        conf->path_cfg = "audit.jsonl";
    if (conf->max_size < 0)
        conf->max_size = 10LL * 1024 * 1024;
    if (conf->keep < 0)
        conf->keep = 3;
    if (conf->path_cfg[0] == '\0' || strcmp(conf->path_cfg, "off") == 0) {
        conf->off = 1;
        return KAP_OK;
    }
    if (strcmp(conf->path_cfg, "-") == 0
        || strcmp(conf->path_cfg, AUDIT_STDOUT) == 0) {
        conf->is_stdout = 1;
        conf->path = AUDIT_STDOUT;
        conf->max_size = 0;          /* a pipe is not rotated */
        return KAP_OK;
    }
    conf->path = kap_conf_path(gen, conf->path_cfg);
    if (conf->path == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    if (strlen(conf->path) + 8 >= PATH_MAX) {
        kap_err_set(err, "audit_log.path is too long");
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- the file ------------------------------------------------------ */

static int
audit_open(const struct audit_file *f, int excl, long long *size)
{
    struct stat st;
    int         fd;

    fd = kapd_file_openat(f->dirfd, f->name, O_WRONLY | O_APPEND | O_CREAT
                          | (excl ? O_EXCL : 0), 0640, &st);
    if (fd < 0)
        return -1;
    *size = (long long)st.st_size;
    return fd;
}

/* name.N for N > 0, name for 0.  0 or -1 (too long). */
static int
audit_name(char *buf, size_t len, const char *name, long long n)
{
    int r = n > 0 ? snprintf(buf, len, "%s.%lld", name, n)
                  : snprintf(buf, len, "%s", name);
    return r < 0 || (size_t)r >= len ? -1 : 0;
}

static void audit_flush(struct audit_file *f);

/* Rotate f: path -> path.1 -> ... -> path.keep, then reopen. */
static void
audit_rotate(struct audit_file *f, long long keep)
{
    char      from[PATH_MAX], to[PATH_MAX];
    long long i, size = 0;
    int       fd;

    audit_flush(f);                  /* pending lines end the old file */
    /* renames and unlinks move names, never follow them */
    if (keep == 0) {
        (void)unlinkat(f->dirfd, f->name, 0);
    } else {
        if (audit_name(to, sizeof(to), f->name, keep) == 0)
            (void)unlinkat(f->dirfd, to, 0);
        for (i = keep - 1; i >= 0; i--) {
            if (audit_name(from, sizeof(from), f->name, i) != 0
                || audit_name(to, sizeof(to), f->name, i + 1) != 0)
                continue;
            (void)renameat(f->dirfd, from, f->dirfd, to);
        }
    }
    /* a new file: whatever appeared under the name since is not ours */
    fd = audit_open(f, 1, &size);
    if (fd < 0) {
        int e = errno;
        KAP_LOG(KAP_LOG_ERR, "audit_log", 0, "reopen \"%s\" after rotation"
                " failed: %s; still writing to the rotated file", f->path,
                e == EEXIST ? "something took its place (refused)"
                            : kapd_file_strerror(e));
        f->size = 0;                 /* try again at the next limit */
        return;                      /* keep writing to the old file */
    }
    close(f->fd);
    f->fd = fd;
    f->size = size;
}

static void
audit_warn(struct audit_file *f, const char *what)
{
    if (kap_now() - f->last_warn >= AUDIT_WARN_EVERY) {
        f->last_warn = kap_now();
        KAP_LOG(KAP_LOG_ERR, "audit_log", 0,
                "write to \"%s\" failed (%s); %lu line(s) lost so far",
                f->path, what, f->dropped);
    }
}

/* Write n bytes (nlines whole lines) to f's file, at once. */
static void
audit_write_now(struct audit_file *f, const char *p, size_t n,
                unsigned long nlines)
{
    size_t  done = 0;
    ssize_t w = 0;

    if (f->is_pipe) {
        kapd_lineq_write(&f->q, p, n, nlines);
        f->size += (long long)n;
        return;
    }
    while (done < n) {
        w = write(f->fd, p + done, n - done);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        break;
    }
    f->size += (long long)done;
    if (done == n)
        return;
    /* the lines not (wholly) written are lost; count them roughly */
    f->dropped += nlines > 0 ? nlines : 1;
    audit_warn(f, w < 0 ? strerror(errno) : "short write");
}

static void
audit_flush(struct audit_file *f)
{
    if (f->blen == 0)
        return;
    audit_write_now(f, f->buf, f->blen, f->blines);
    f->blen = 0;
    f->blines = 0;
}

static void
audit_flush_all(void)
{
    struct audit_file *f;

    for (f = audit_files; f; f = f->next)
        audit_flush(f);
}

static void
audit_prep_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)revents;
    audit_flush_all();
    /* the watcher does not keep the loop alive (ev_unref at start) */
    ev_ref(loop);
    ev_prepare_stop(loop, w);
    audit_prep_on = 0;
}

static void
audit_atexit(void)
{
    if (getpid() == audit_pid)       /* not in a forked child */
        audit_flush_all();
}

static void
audit_write(struct audit_file *f, const struct audit_conf *conf,
            const char *line, size_t n)
{
    struct ev_loop *loop = kap_loop();
    int             in_loop = loop != NULL && ev_depth(loop) > 0;

    if (conf->max_size > 0 && f->size + (long long)f->blen > 0
        && f->size + (long long)(f->blen + n) > conf->max_size) {
        struct stat st;
        audit_flush(f);
        /* trust the file, not our count: someone may have rotated it */
        if (fstat(f->fd, &st) == 0)
            f->size = (long long)st.st_size;
        if (f->size > 0 && f->size + (long long)n > conf->max_size)
            audit_rotate(f, conf->keep);
    }
    if (!in_loop || n > AUDIT_BUF_MAX) {
        audit_flush(f);
        audit_write_now(f, line, n, 1);
        return;
    }
    if (f->buf == NULL && (f->buf = malloc(AUDIT_BUF_MAX)) == NULL) {
        audit_write_now(f, line, n, 1);
        return;
    }
    if (f->blen + n > AUDIT_BUF_MAX)
        audit_flush(f);
    memcpy(f->buf + f->blen, line, n);
    f->blen += n;
    f->blines++;
    if (!audit_prep_on) {
        ev_prepare_init(&audit_prep, audit_prep_cb);
        ev_prepare_start(loop, &audit_prep);
        ev_unref(loop);
        audit_prep_on = 1;
    }
}

/* The registry entry of standard output (a dup of fd 1, non-blocking). */
static struct audit_file *
audit_stdout_open(void)
{
    struct audit_file *f = calloc(1, sizeof(*f));
    int fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);

    if (f == NULL || fd < 0
        || (f->path = strdup(AUDIT_STDOUT)) == NULL
        || kapd_lineq_init(&f->q, fd, AUDIT_PIPE_QUEUE, "audit log on stdout")
           != KAP_OK) {
        KAP_LOG(KAP_LOG_EMERG, "audit_log", 0, "cannot use standard output "
                "for the audit log: %s", fd < 0 ? strerror(errno)
                                                : "out of memory");
        if (fd >= 0)
            close(fd);
        if (f != NULL)
            free(f->path);
        free(f);
        return NULL;
    }
    f->is_pipe = 1;
    f->fd = fd;
    f->dirfd = -1;
    f->next = audit_files;
    audit_files = f;
    return f;
}

static int
audit_init(struct kap_gen *gen, void *vconf)
{
    struct audit_conf *conf = vconf;
    struct audit_file *f;
    long long          size = 0;
    int                fd;

    (void)gen;
    if (conf->off)
        return KAP_OK;
    for (f = audit_files; f; f = f->next)
        if (strcmp(f->path, conf->path) == 0)
            break;
    if (f == NULL && conf->is_stdout) {
        f = audit_stdout_open();
        if (f == NULL)
            return KAP_ERROR;
    } else if (f != NULL && f->is_pipe) {
        /* standard output: nothing to reopen */
    } else if (f != NULL) {
        /* reopen (new generation, SIGUSR1) in the directory opened first */
        fd = audit_open(f, 0, &size);
        if (fd < 0) {
            KAP_LOG(KAP_LOG_ERR, "audit_log", 0, "cannot reopen \"%s\": %s;"
                    " still writing to the file open before", conf->path,
                    kapd_file_strerror(errno));
        } else {
            audit_flush(f);          /* to the file it belongs to */
            close(f->fd);
            f->fd = fd;
            f->size = size;
        }
    } else {
        f = calloc(1, sizeof(*f));
        if (f == NULL || (f->path = strdup(conf->path)) == NULL) {
            free(f);
            KAP_LOG(KAP_LOG_EMERG, "audit_log", 0, "out of memory");
            return KAP_ERROR;
        }
        f->dirfd = kapd_dir_open(conf->path, &f->name, 1);
        fd = f->dirfd < 0 ? -1 : audit_open(f, 0, &size);
        if (fd < 0) {
            KAP_LOG(KAP_LOG_EMERG, "audit_log", 0, "cannot open \"%s\": %s",
                    conf->path, kapd_file_strerror(errno));
            if (f->dirfd >= 0)
                close(f->dirfd);
            free(f->name);
            free(f->path);
            free(f);
            return KAP_ERROR;
        }
        f->fd = fd;
        f->size = size;
        f->next = audit_files;
        audit_files = f;
    }
    f->refs++;
    conf->file = f;
    if (!audit_atexit_set) {
        audit_pid = getpid();
        audit_atexit_set = atexit(audit_atexit) == 0;
    }
    return KAP_OK;
}

static void
audit_fini(struct kap_gen *gen, void *vconf)
{
    struct audit_conf  *conf = vconf;
    struct audit_file **pp, *f = conf->file;

    (void)gen;
    if (f == NULL)
        return;
    conf->file = NULL;
    audit_flush(f);
    if (--f->refs > 0)
        return;
    for (pp = &audit_files; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    if (f->is_pipe) {
        kapd_lineq_close(&f->q);
    } else {
        close(f->fd);
        close(f->dirfd);
    }
    free(f->buf);
    free(f->name);
    free(f->path);
    free(f);
}

/* ---- JSON (kap_json's writer) -------------------------------------- */

/* How much of value (not NULL) is written: at most vmax bytes (*cut set
   when it is longer). */
static size_t
audit_cut(const char *value, size_t vmax, int *cut)
{
    size_t n = strnlen(value, vmax + 1);

    if (n > vmax) {
        n = vmax;
        *cut = 1;
    }
    return n;
}

/* A string member with a constant name (KAPD_JSON_KEY), its value cut
   at vmax input bytes: one piece, nearly always. */
static void
audit_str(struct kap_json_writer *w, const char *lit, size_t klen,
          const char *value, size_t vmax, int *cut)
{
    if (value != NULL)
        kapd_json_w_member_strn(w, lit, klen, value,
                                audit_cut(value, vmax, cut));
}

/* A module's extra string member (its name is not a constant of ours). */
static void
audit_extra_str(struct kap_json_writer *w, const char *name,
                const char *value, size_t vmax, int *cut)
{
    size_t n = audit_cut(value, vmax, cut);

    kap_json_w_key(w, name);
    kap_json_w_strn(w, value, n);
}

static void
audit_uint(struct kap_json_writer *w, const char *lit, size_t klen,
           unsigned long long v)
{
    kapd_json_w_key_lit(w, lit, klen);
    kap_json_w_uint(w, v);
}

static const char *const audit_reserved[] = {
    "ts", "gen", "conn", "module", "kind", "event", "subject", "domain",
    "port", "action", "reason", "decided_by", "detail", "method", "client",
    "truncated", NULL
};

static int
audit_reserved_name(const struct kap_audit_event *ev, size_t idx)
{
    const char *name = ev->fields[idx].name;
    size_t      i;

    if (name == NULL)
        return 1;
    for (i = 0; audit_reserved[i]; i++)
        if (name[0] == audit_reserved[i][0]
            && strcmp(name, audit_reserved[i]) == 0)
            return 1;
    for (i = 0; i < idx; i++)        /* no duplicate keys */
        if (ev->fields[i].name && ev->fields[i].name[0] == name[0]
            && strcmp(ev->fields[i].name, name) == 0)
            return 1;
    return 0;
}

/* RFC 3339 UTC with microseconds; the seconds part is kept per second. */
static void
audit_ts(double ts, char *buf, size_t len)
{
    static time_t last_sec = (time_t)-1;
    static char   last[40];
    static size_t last_len;
    long long     us;
    time_t        sec;
    struct tm     tm;
    int           i, frac;

    if (!(ts > 0) || !isfinite(ts))
        ts = 0;
    us = (long long)(ts * 1e6 + 0.5);
    sec = (time_t)(us / 1000000);
    if (sec != last_sec) {
        int n;
        if (gmtime_r(&sec, &tm) == NULL)
            memset(&tm, 0, sizeof(tm));
        n = snprintf(last, sizeof(last), "%04d-%02d-%02dT%02d:%02d:%02d.",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
        if (n < 0 || (size_t)n >= sizeof(last))
            n = 0;
        last_len = (size_t)n;
        last_sec = sec;
    }
    if (len < last_len + 8) {
        if (len > 0)
            buf[0] = '\0';
        return;
    }
    memcpy(buf, last, last_len);
    frac = (int)(us % 1000000);
    for (i = 5; i >= 0; i--) {
        buf[last_len + (size_t)i] = (char)('0' + frac % 10);
        frac /= 10;
    }
    buf[last_len + 6] = 'Z';
    buf[last_len + 7] = '\0';
}

/*
 * Format ev as one line (a JSON object and "\n") into out, each string
 * value cut at vmax input bytes; extras: 0 none, 1 all.  KAP_OK, or
 * KAP_ERROR (out of memory).
 */
static int
audit_format(struct kap_buf *out, const struct kap_audit_event *ev,
             size_t vmax, int extras)
{
    struct kap_json_writer w;
    char   ts[48];
    int    cut = 0;
    size_t i;

    kap_buf_reset(out);
    audit_ts(ev->ts != 0 ? ev->ts : kap_now(), ts, sizeof(ts));
    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    audit_str(&w, KAPD_JSON_KEY("ts"), ts, sizeof(ts), &cut);
    audit_uint(&w, KAPD_JSON_KEY("gen"), ev->gen_id);
    if (ev->conn_id != 0)
        audit_uint(&w, KAPD_JSON_KEY("conn"), ev->conn_id);
    audit_str(&w, KAPD_JSON_KEY("module"), ev->module, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("kind"),
              ev->kind ? kap_req_kind_name(ev->kind) : NULL, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("event"), ev->event, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("subject"), ev->subject, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("domain"), ev->subject, vmax, &cut);
    if (ev->port != 0)
        audit_uint(&w, KAPD_JSON_KEY("port"), ev->port);
    audit_str(&w, KAPD_JSON_KEY("action"), ev->action, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("reason"), ev->reason, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("decided_by"), ev->decided_by, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("detail"), ev->detail, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("method"), ev->detail, vmax, &cut);
    audit_str(&w, KAPD_JSON_KEY("client"), ev->client, vmax, &cut);
    for (i = 0; extras && ev->fields && i < ev->nfields; i++) {
        if (audit_reserved_name(ev, i))
            continue;
        if (ev->fields[i].str != NULL) {
            audit_extra_str(&w, ev->fields[i].name, ev->fields[i].str, vmax,
                            &cut);
        } else {
            kap_json_w_key(&w, ev->fields[i].name);
            kap_json_w_double(&w, ev->fields[i].num);
        }
    }
    if (cut) {
        kap_json_w_key(&w, "truncated");
        kap_json_w_bool(&w, 1);
    }
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK)
        return KAP_ERROR;
    return kap_buf_append(out, "\n", 1);
}

/*
 * Format one line into out: with values of AUDIT_VALUE_MAX bytes, then
 * AUDIT_VALUE_MAX_SMALL, then without the module's extra fields, until
 * it fits in KAPD_AUDIT_LINE_MAX.  Its length, or 0 when nothing fits.
 */
static size_t
audit_line(const struct kap_audit_event *ev, struct kap_buf *out)
{
    if (audit_format(out, ev, AUDIT_VALUE_MAX, 1) == KAP_OK
        && out->len <= KAPD_AUDIT_LINE_MAX)
        return out->len;
    if (audit_format(out, ev, AUDIT_VALUE_MAX_SMALL, 1) == KAP_OK
        && out->len <= KAPD_AUDIT_LINE_MAX)
        return out->len;
    if (audit_format(out, ev, AUDIT_VALUE_MAX_SMALL, 0) == KAP_OK
        && out->len <= KAPD_AUDIT_LINE_MAX)
        return out->len;
    return 0;
}

int
kap_audit_event_json(struct kap_buf *out, const struct kap_audit_event *ev)
{
    if (out == NULL || ev == NULL || audit_line(ev, out) == 0)
        return KAP_ERROR;
    out->data[--out->len] = '\0';     /* the newline */
    return KAP_OK;
}

static void
audit_event(const struct kap_audit_event *ev, void *vconf)
{
    static struct kap_buf line;      /* reused: grows to the longest */
    struct audit_conf    *conf = vconf;
    size_t                n;

    if (conf == NULL || conf->file == NULL || ev == NULL)
        return;
    n = audit_line(ev, &line);
    if (n > 0)
        audit_write(conf->file, conf, line.data, n);
}

static void
audit_status(struct kap_gen *gen, void *vconf, struct kap_buf *out)
{
    struct audit_conf *conf = vconf;

    (void)gen;
    if (conf->off) {
        kap_buf_printf(out, "audit_log: off");
        return;
    }
    kap_buf_printf(out, "audit_log: %s, %lld bytes, %lu lost",
                   conf->path,
                   conf->file ? conf->file->size
                                + (long long)conf->file->blen : 0LL,
                   conf->file ? conf->file->dropped + conf->file->q.dropped
                              : 0UL);
}

static const struct kap_hook audit_hooks[] = {
    { KAP_HOOK_AUDIT, KAP_REQ_ALL, NULL, audit_event, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

const struct kap_module kapd_audit_log_module = {
    KAP_MODULE_V1("audit_log"),
    .version     = PACKAGE_VERSION,
    .flags       = KAP_MOD_AUDIT,
    .conf_create = audit_conf_create,
    .conf_parse  = audit_conf_parse,
    .conf_check  = audit_conf_check,
    .init        = audit_init,
    .fini        = audit_fini,
    .hooks       = audit_hooks,
    .status      = audit_status,
};
