/*
 * kap_remote_live.c -- the live audit stream behind WS /ws/logs.
 *
 * Events come from two places: this kapd's own audit chain (an audit
 * hook: it sees the events of its modules and those the channel module
 * re-emits from capsules, marked with the capsule's name), and the
 * files of remote.follow, followed with inotify (for audit logs of
 * kapds that have no channel to this one).  A line of a followed file
 * is parsed by kap_json's strict parser and re-serialised; a line that
 * is not a JSON object is skipped.  Each event gets a number (seq) and
 * is kept in a ring of the last KR_LIVE_RING events: a socket opens
 * with those after ?since=N, or the newest ?limit=N, then goes live.
 *
 * Frames (text, JSON):
 *   {"type":"hello","stream":"logs","seq":LAST}   first
 *   {"type":"event","seq":N,"event":{...}}        catch-up, then live
 *   {"type":"live"}                                after the catch-up
 *
 * The same inotify descriptor watches state_dir/devices: a device file
 * removed (kap remote revoke) closes that device's sockets at once.
 * State is process-wide; the newest generation's init configures it.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kapd/kap_json.h>
#include <kapd/kap_req.h>

#include "kap_remote.h"

#define KR_LIVE_RING     1024      /* events kept for the catch-up */
#define KR_TAILS_MAX     64        /* followed files */
#define KR_LINE_MAX      (64 * 1024)
#define KR_READ_CHUNK    (16 * 1024)  /* read of a followed file per
                                         loop iteration: sockets drain
                                         between two */

struct kr_ring_ev {
    long long seq;
    int       denied;
    char     *frame;               /* {"type":"event",...}, malloc'd */
    size_t    len;
};

struct kr_tail {
    char          *path;
    off_t          off;
    struct kap_buf part;           /* a line not yet ended */
    int            skip;           /* dropping an over-long line */
    int            more;           /* not read to its end yet */
};

struct kr_watch {
    int         wd;
    char       *dir;
    char       *name;              /* NULL: every *.jsonl of dir */
    int         devices;           /* the devices directory */
};

static struct {
    struct kr_ring_ev ring[KR_LIVE_RING];
    long long         seq;
    int               ifd;
    ev_io             io;
    ev_timer          more;        /* read on from the loop */
    const void       *owner;       /* the kr_conf that configured it */
    struct kr_watch  *w;
    size_t            nw;
    struct kr_tail    tails[KR_TAILS_MAX];
    size_t            ntails;
    struct kap_buf    scratch;
} kr_live = { .ifd = -1 };

/* ---- the ring and the broadcast ------------------------------------------- */

static void
kr_live_push(const char *json, size_t len, int denied)
{
    struct kr_ring_ev *r;
    struct kap_buf f = { 0 };

    if (kap_buf_printf(&f, "{\"type\":\"event\",\"seq\":%lld,\"event\":",
                       kr_live.seq + 1) != KAP_OK
        || kap_buf_append(&f, json, len) != KAP_OK
        || kap_buf_append(&f, "}", 1) != KAP_OK) {
        kap_buf_free(&f);
        return;
    }
    r = &kr_live.ring[(kr_live.seq + 1) % KR_LIVE_RING];
    free(r->frame);
    r->seq = ++kr_live.seq;
    r->denied = denied;
    r->frame = f.data;              /* the buffer's memory, taken over */
    r->len = f.len;
    kr_ws_broadcast("logs", r->frame, r->len, denied);
}

void
kr_live_catch_up(struct kr_ws *ws, const struct kr_query *q)
{
    char hello[96];
    long long from, s;
    long n = 0;
    int len;
    const struct kr_ring_ev *r;

    len = snprintf(hello, sizeof(hello),
                   "{\"type\":\"hello\",\"stream\":\"logs\",\"seq\":%lld}",
                   kr_live.seq);
    if (kr_ws_send(ws, hello, (size_t) len) != KAP_OK)
        return;
    from = kr_live.seq - KR_LIVE_RING + 1;
    if (from < 1)
        from = 1;
    if (q->since >= 0 && q->since <= kr_live.seq && q->since + 1 > from)
        from = q->since + 1;
    /* the newest q->limit events from `from`, oldest first */
    for (s = kr_live.seq; s >= from && n < q->limit; s--)
        if (!q->denied || kr_live.ring[s % KR_LIVE_RING].denied)
            n++;
    for (s++; s <= kr_live.seq; s++) {
        r = &kr_live.ring[s % KR_LIVE_RING];
        if (r->seq != s || (q->denied && !r->denied))
            continue;
        if (kr_ws_send(ws, r->frame, r->len) != KAP_OK)
            return;
    }
    kr_ws_send(ws, "{\"type\":\"live\"}", 15);
}

static int
kr_is_denied(const char *action)
{
    return action != NULL && strcmp(action, "denied") == 0;
}

void
kr_live_audit(const struct kap_audit_event *ev, void *conf)
{
    (void) conf;
    kr_caps_audit(ev);                  /* capsules coming and going */
    if (kap_audit_event_json(&kr_live.scratch, ev) == KAP_OK)
        kr_live_push(kr_live.scratch.data, kr_live.scratch.len,
                     kr_is_denied(ev->action));
}

/* ---- followed files ---------------------------------------------------------- */

static void
kr_live_line(const char *p, size_t n)
{
    struct kap_json_limits lim = { 64 * 1024, 16, 256, KAP_JSON_LOOSE_NUMBERS };
    struct kap_json_writer w;
    struct kap_json *j = kap_json_parse(p, n, &lim, NULL);

    if (j == NULL)
        return;
    if (kap_json_type(j) == KAP_JSON_OBJECT) {
        kap_buf_reset(&kr_live.scratch);
        kap_json_w_init(&w, &kr_live.scratch);
        kap_json_w_tree(&w, j);
        if (kap_json_w_finish(&w) == KAP_OK)
            kr_live_push(kr_live.scratch.data, kr_live.scratch.len,
                         kr_is_denied(kap_json_get_string(j, "action")));
    }
    kap_json_free(j);
}

/* split bytes into lines; a line longer than KR_LINE_MAX is dropped */
static void
kr_tail_bytes(struct kr_tail *t, const char *p, size_t n)
{
    const char *e;
    size_t k;

    while (n > 0) {
        e = memchr(p, '\n', n);
        k = e != NULL ? (size_t) (e - p) : n;
        if (!t->skip && kap_buf_used(&t->part) + k > KR_LINE_MAX) {
            t->skip = 1;
            kap_buf_reset(&t->part);
        }
        if (!t->skip)
            kap_buf_append(&t->part, p, k);
        if (e == NULL)
            return;
        if (!t->skip && t->part.len > 0)
            kr_live_line(t->part.data, t->part.len);
        kap_buf_reset(&t->part);
        t->skip = 0;
        p = e + 1;
        n -= k + 1;
    }
}

/* read one chunk of what was appended; t->more when there is more */
static void
kr_tail_read(struct kr_tail *t)
{
    char *buf;
    struct stat st;
    ssize_t n;
    int fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

    t->more = 0;
    if (fd < 0)
        return;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
        || (buf = malloc(KR_READ_CHUNK)) == NULL) {
        close(fd);
        return;
    }
    if (st.st_size < t->off) {      /* truncated: start again */
        t->off = 0;
        kap_buf_reset(&t->part);
    }
    if ((n = pread(fd, buf, KR_READ_CHUNK, t->off)) > 0) {
        t->off += n;
        kr_tail_bytes(t, buf, (size_t) n);
        t->more = t->off < st.st_size || n == KR_READ_CHUNK;
    }
    free(buf);
    close(fd);
    if (t->more && !ev_is_active(&kr_live.more))
        ev_timer_start(kap_loop(), &kr_live.more);
}

static void
kr_live_more_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    size_t i;

    (void) loop;
    (void) w;
    (void) revents;
    for (i = 0; i < kr_live.ntails; i++)
        if (kr_live.tails[i].more)
            kr_tail_read(&kr_live.tails[i]);
}

static struct kr_tail *
kr_tail_get(const char *path, int at_end)
{
    struct kr_tail *t;
    struct stat st;
    size_t i;

    for (i = 0; i < kr_live.ntails; i++)
        if (strcmp(kr_live.tails[i].path, path) == 0)
            return &kr_live.tails[i];
    if (kr_live.ntails == KR_TAILS_MAX)
        return NULL;
    t = &kr_live.tails[kr_live.ntails];
    memset(t, 0, sizeof(*t));
    if ((t->path = strdup(path)) == NULL)
        return NULL;
    if (at_end && stat(path, &st) == 0 && S_ISREG(st.st_mode))
        t->off = st.st_size;
    kr_live.ntails++;
    return t;
}

/* an inotify event for name in the directory of watch w */
static void
kr_live_event(const struct kr_watch *w, const struct inotify_event *ie)
{
    char path[PATH_MAX];
    struct kr_tail *t;

    if (ie->len == 0)
        return;
    if (w->devices) {
        if (ie->mask & (IN_DELETE | IN_MOVED_FROM)
            && kr_id_valid(ie->name, strlen(ie->name)))
            kr_ws_revoked(ie->name);
        return;
    }
    if (w->name != NULL ? strcmp(w->name, ie->name) != 0
                        : !kr_is_jsonl(ie->name))
        return;
    if ((size_t) snprintf(path, sizeof(path), "%s/%s", w->dir, ie->name)
            >= sizeof(path)
        || (t = kr_tail_get(path, 0)) == NULL)
        return;
    if (ie->mask & (IN_CREATE | IN_MOVED_TO)) {
        t->off = 0;                 /* a new file under the name */
        kap_buf_reset(&t->part);
        t->skip = 0;
    }
    kr_tail_read(t);
}

static void
kr_live_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    const struct inotify_event *ie;
    ssize_t n;
    char *p;
    size_t i;

    (void) loop;
    (void) io;
    (void) revents;
    while ((n = read(kr_live.ifd, buf, sizeof(buf))) > 0) {
        for (p = buf; p < buf + n; p += sizeof(*ie) + ie->len) {
            ie = (const struct inotify_event *) (void *) p;
            for (i = 0; i < kr_live.nw; i++)
                if (kr_live.w[i].wd == ie->wd)
                    kr_live_event(&kr_live.w[i], ie);
        }
    }
}

static int
kr_watch_add(const char *dir, const char *name, int devices)
{
    uint32_t mask = devices ? IN_DELETE | IN_MOVED_FROM
                            : IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE
                              | IN_MOVED_TO;
    struct kr_watch *nw, *w;
    int wd = inotify_add_watch(kr_live.ifd, dir, mask | IN_ONLYDIR);

    if (wd < 0) {
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "cannot watch %s: %s", dir,
                strerror(errno));
        return KAP_ERROR;
    }
    nw = realloc(kr_live.w, (kr_live.nw + 1) * sizeof(*nw));
    if (nw == NULL)
        return KAP_ERROR;
    kr_live.w = nw;
    w = &nw[kr_live.nw];
    w->wd = wd;
    w->devices = devices;
    w->dir = strdup(dir);
    w->name = name != NULL ? strdup(name) : NULL;
    if (w->dir == NULL || (name != NULL && w->name == NULL)) {
        free(w->dir);
        free(w->name);
        return KAP_ERROR;
    }
    kr_live.nw++;
    return KAP_OK;
}

/* follow path: a directory (its *.jsonl) or a file (its directory is
   watched, so that the file may appear or be replaced later) */
static void
kr_follow(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    struct stat st;

    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        kr_watch_add(path, NULL, 0);
        return;
    }
    if (slash == NULL || (size_t) (slash - path) >= sizeof(dir))
        return;
    memcpy(dir, path, (size_t) (slash - path));
    dir[slash - path] = '\0';
    if (kr_watch_add(dir[0] != '\0' ? dir : "/", slash + 1, 0) == KAP_OK)
        kr_tail_get(path, 1);       /* only what is written from now */
}

static void
kr_live_teardown(void)
{
    size_t i;

    ev_timer_stop(kap_loop(), &kr_live.more);
    if (kr_live.ifd >= 0) {
        ev_io_stop(kap_loop(), &kr_live.io);
        close(kr_live.ifd);
        kr_live.ifd = -1;
    }
    for (i = 0; i < kr_live.nw; i++) {
        free(kr_live.w[i].dir);
        free(kr_live.w[i].name);
    }
    free(kr_live.w);
    kr_live.w = NULL;
    kr_live.nw = 0;
    for (i = 0; i < kr_live.ntails; i++) {
        free(kr_live.tails[i].path);
        kap_buf_free(&kr_live.tails[i].part);
    }
    kr_live.ntails = 0;
    kr_live.owner = NULL;
}

void
kr_live_stop(const struct kr_conf *cf)
{
    if (cf == kr_live.owner)
        kr_live_teardown();         /* else a newer generation's */
}

void
kr_live_exit(void)
{
    size_t i;

    kr_live_teardown();
    for (i = 0; i < KR_LIVE_RING; i++) {
        free(kr_live.ring[i].frame);
        kr_live.ring[i].frame = NULL;
    }
    kap_buf_free(&kr_live.scratch);
}

int
kr_live_start(const struct kr_conf *cf)
{
    char dev[PATH_MAX];
    size_t i;

    kr_live_teardown();
    kr_live.owner = cf;
    kr_live.ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (kr_live.ifd < 0) {
        KAP_LOG(KAP_LOG_ERR, KR_NAME, 0, "inotify_init1: %s",
                strerror(errno));
        return KAP_ERROR;
    }
    if ((size_t) snprintf(dev, sizeof(dev), "%s/devices", cf->state_dir)
            < sizeof(dev))
        kr_watch_add(dev, NULL, 1);
    for (i = 0; i < cf->nfollow; i++)
        kr_follow(cf->follow[i]);
    ev_timer_init(&kr_live.more, kr_live_more_cb, 0, 0);
    ev_io_init(&kr_live.io, kr_live_io_cb, kr_live.ifd, EV_READ);
    ev_io_start(kap_loop(), &kr_live.io);
    return KAP_OK;
}
