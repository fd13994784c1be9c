/*
 * kap_remote_logs.c -- what the phone sees of the audit logs: the newest
 * events (/api/logs) and counters (/api/status).
 *
 * The configured audit_logs are files, or directories whose *.jsonl
 * files are all read (kap run writes one per session).  Of each file
 * only the last KR_LOG_TAIL_BYTES are read, the first partial line
 * dropped; each line is parsed by kap_json's strict parser and a line
 * that is not a JSON object is skipped, so a torn or hostile line
 * cannot reach the page as anything but escaped JSON.  Events go out
 * as kap_json re-serialises them, never as the file's bytes.
 */
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_json.h>

#include "kap_remote.h"

#define KR_LOG_FILES_MAX 64

typedef void (*kr_line_fn)(const char *file, struct kap_json *ev,
                           void *data);

/* read the tail of path; call fn for every JSON object line */
static int
kr_log_file(const char *path, kr_line_fn fn, void *data)
{
    struct kap_json_limits lim = { 64 * 1024, 16, 256, KAP_JSON_LOOSE_NUMBERS };
    struct stat st;
    char *buf, *p, *e, *end;
    off_t from = 0;
    ssize_t n;
    size_t got = 0;
    struct kap_json *j;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    if (fd < 0)
        return KAP_ERROR;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return KAP_ERROR;
    }
    if (st.st_size > KR_LOG_TAIL_BYTES)
        from = st.st_size - KR_LOG_TAIL_BYTES;
    buf = malloc(KR_LOG_TAIL_BYTES + 1);
    if (buf == NULL) {
        close(fd);
        return KAP_ERROR;
    }
    while (got < KR_LOG_TAIL_BYTES
           && (n = pread(fd, buf + got, KR_LOG_TAIL_BYTES - got,
                         from + (off_t) got)) > 0)
        got += (size_t) n;
    close(fd);
    end = buf + got;
    p = buf;
    if (from > 0) {                 /* the first line is likely cut */
        p = memchr(buf, '\n', got);
        p = p == NULL ? end : p + 1;
    }
    for (; p < end; p = e + 1) {
        e = memchr(p, '\n', (size_t) (end - p));
        if (e == NULL)
            break;                  /* a line still being written */
        if (e == p)
            continue;
        j = kap_json_parse(p, (size_t) (e - p), &lim, NULL);
        if (j == NULL)
            continue;
        if (kap_json_type(j) == KAP_JSON_OBJECT)
            fn(path, j, data);      /* fn owns j */
        else
            kap_json_free(j);
    }
    free(buf);
    return KAP_OK;
}

int
kr_is_jsonl(const char *name)
{
    size_t n = strlen(name);

    return n > 6 && name[0] != '.' && strcmp(name + n - 6, ".jsonl") == 0;
}

/*
 * Call fn for every event of every configured log; status, when not
 * NULL, is called per file with whether it could be read.
 */
static void
kr_logs_each(const struct kr_conf *cf, kr_line_fn fn,
             void (*status)(const char *file, int ok, void *data),
             void *data)
{
    char path[4096];
    struct dirent *de;
    struct stat st;
    unsigned files = 0;
    size_t i;
    DIR *d;
    int ok;

    for (i = 0; i < cf->naudit && files < KR_LOG_FILES_MAX; i++) {
        if (stat(cf->audit_logs[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            if ((d = opendir(cf->audit_logs[i])) == NULL)
                continue;
            while ((de = readdir(d)) != NULL && files < KR_LOG_FILES_MAX) {
                if (!kr_is_jsonl(de->d_name)
                    || (size_t) snprintf(path, sizeof(path), "%s/%s",
                                         cf->audit_logs[i], de->d_name)
                       >= sizeof(path))
                    continue;
                files++;
                ok = kr_log_file(path, fn, data) == KAP_OK;
                if (status != NULL)
                    status(path, ok, data);
            }
            closedir(d);
            continue;
        }
        files++;
        ok = kr_log_file(cf->audit_logs[i], fn, data) == KAP_OK;
        if (status != NULL)
            status(cf->audit_logs[i], ok, data);
    }
}

/* ---- /api/logs ------------------------------------------------------------ */

struct kr_events {
    struct kap_json **ev;
    size_t n, cap;
    int denied;
};

static void
kr_collect(const char *file, struct kap_json *ev, void *data)
{
    struct kr_events *c = data;
    struct kap_json **nv;
    const char *a = kap_json_get_string(ev, "action");

    (void) file;
    if (c->denied && (a == NULL || strcmp(a, "denied") != 0)) {
        kap_json_free(ev);
        return;
    }
    if (c->n == c->cap) {
        nv = realloc(c->ev, (c->cap ? c->cap * 2 : 256) * sizeof(*nv));
        if (nv == NULL) {
            kap_json_free(ev);
            return;
        }
        c->ev = nv;
        c->cap = c->cap ? c->cap * 2 : 256;
    }
    c->ev[c->n++] = ev;
}

static const char *
kr_ts(const struct kap_json *ev)
{
    const char *t = kap_json_get_string(ev, "ts");

    return t != NULL ? t : "";
}

/* newest first; ties keep file order reversed (qsort is not stable, so
 * compare the position too) */
struct kr_sorted { struct kap_json *ev; size_t pos; };

static int
kr_newer(const void *a, const void *b)
{
    const struct kr_sorted *x = a, *y = b;
    int c = strcmp(kr_ts(y->ev), kr_ts(x->ev));

    if (c != 0)
        return c;
    return x->pos < y->pos ? 1 : x->pos > y->pos ? -1 : 0;
}

void
kr_logs_write(const struct kr_conf *cf, long limit, int denied,
              struct kap_json_writer *w)
{
    struct kr_events c = { NULL, 0, 0, denied };
    struct kr_sorted *s;
    size_t i;

    kr_logs_each(cf, kr_collect, NULL, &c);
    kap_json_w_arr_begin(w);
    s = c.n > 0 ? malloc(c.n * sizeof(*s)) : NULL;
    if (s != NULL) {
        for (i = 0; i < c.n; i++) {
            s[i].ev = c.ev[i];
            s[i].pos = i;
        }
        qsort(s, c.n, sizeof(*s), kr_newer);
        for (i = 0; i < c.n && i < (size_t) limit; i++)
            kap_json_w_tree(w, s[i].ev);
        free(s);
    }
    kap_json_w_arr_end(w);
    for (i = 0; i < c.n; i++)
        kap_json_free(c.ev[i]);
    free(c.ev);
}

/* ---- /api/status ------------------------------------------------------------ */

#define KR_MODS_MAX 16

struct kr_counts {
    struct kap_json_writer *w;
    unsigned long long allowed, denied, other;
    struct {
        char name[32];
        unsigned long long allowed, denied;
        char last[40];
    } mod[KR_MODS_MAX];
    size_t nmod;
};

static void
kr_count(const char *file, struct kap_json *ev, void *data)
{
    struct kr_counts *c = data;
    const char *a = kap_json_get_string(ev, "action");
    const char *m = kap_json_get_string(ev, "module");
    size_t i;
    int al = a != NULL && strcmp(a, "allowed") == 0;
    int de = a != NULL && strcmp(a, "denied") == 0;

    (void) file;
    if (a != NULL) {
        c->allowed += (unsigned long long) al;
        c->denied += (unsigned long long) de;
        c->other += (unsigned long long) (!al && !de);
    }
    if (m != NULL && strlen(m) < sizeof(c->mod[0].name)) {
        for (i = 0; i < c->nmod && strcmp(c->mod[i].name, m) != 0; i++)
            ;
        if (i == c->nmod && c->nmod < KR_MODS_MAX)
            snprintf(c->mod[c->nmod++].name, sizeof(c->mod[0].name), "%s",
                     m);
        if (i < c->nmod) {
            c->mod[i].allowed += (unsigned long long) al;
            c->mod[i].denied += (unsigned long long) de;
            if (strcmp(kr_ts(ev), c->mod[i].last) > 0)
                snprintf(c->mod[i].last, sizeof(c->mod[i].last), "%s",
                         kr_ts(ev));
        }
    }
    kap_json_free(ev);
}

static void
kr_file_status(const char *file, int ok, void *data)
{
    struct kr_counts *c = data;

    kap_json_w_obj_begin(c->w);
    kap_json_w_key(c->w, "path");
    kap_json_w_str(c->w, file);
    kap_json_w_key(c->w, "readable");
    kap_json_w_bool(c->w, ok);
    kap_json_w_obj_end(c->w);
}

void
kr_logs_status(const struct kr_conf *cf, struct kap_json_writer *w)
{
    struct kr_counts *c = calloc(1, sizeof(*c));
    size_t i;

    if (c == NULL) {
        kap_json_w_null(w);
        return;
    }
    c->w = w;
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "files");
    kap_json_w_arr_begin(w);
    kr_logs_each(cf, kr_count, kr_file_status, c);
    kap_json_w_arr_end(w);
    kap_json_w_key(w, "allowed");
    kap_json_w_uint(w, c->allowed);
    kap_json_w_key(w, "denied");
    kap_json_w_uint(w, c->denied);
    kap_json_w_key(w, "other");
    kap_json_w_uint(w, c->other);
    kap_json_w_key(w, "modules");
    kap_json_w_obj_begin(w);
    for (i = 0; i < c->nmod; i++) {
        kap_json_w_key(w, c->mod[i].name);
        kap_json_w_obj_begin(w);
        kap_json_w_key(w, "allowed");
        kap_json_w_uint(w, c->mod[i].allowed);
        kap_json_w_key(w, "denied");
        kap_json_w_uint(w, c->mod[i].denied);
        kap_json_w_key(w, "last_event");
        kap_json_w_str(w, c->mod[i].last[0] != '\0' ? c->mod[i].last : NULL);
        kap_json_w_obj_end(w);
    }
    kap_json_w_obj_end(w);
    kap_json_w_obj_end(w);
    free(c);
}
