/*
 * kap_remote_follow.c -- WS /ws/agent/ID: one Claude Code session's
 * timeline, live.
 *
 * Every KR_FOLLOW_INTERVAL the session file is read through the Docker
 * engine from the offset already sent (kr_agent_follow: the app
 * container, find, `tail -c +N` as an argv), and the complete lines that
 * arrived are parsed with the session parser, the same events
 * GET /api/agent/session/ID returns:
 *
 *   {"type":"timeline","id":ID,"running":B,"events":[...],"truncated":B}
 *       first, the file's last 4 MiB (again when the file shrank)
 *   {"type":"events","running":B,"events":[...]}
 *       the events of the lines appended since (none when only
 *       "running" changed: the file was last written 15 s ago)
 *
 * A failure before the timeline closes the socket with 4000 + the HTTP
 * status the GET would have answered (4404: no such session, 4503: the
 * app container is not running, ...); a failure after it is retried at
 * the next interval.  One poll at a time; each lives in a pool of its
 * own, destroyed before the next one and when the socket goes (after
 * the loop turn, never inside the engine call's callback).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_json.h>

#include "kap_remote.h"
#include "kap_remote_docker.h"
#include "kap_remote_session.h"

#define KR_RUNNING_SECS 15.0

struct kr_follow {
    struct kr_ws         *ws;         /* NULL once it is gone */
    const struct kr_conf *cf;
    char                  project[KR_PROJECT_MAX + 1];
    char                  sid[KR_UUID_LEN + 1];
    long long             offset;     /* bytes sent; -1: no timeline yet */
    struct kap_pool      *pool;       /* the poll's, or NULL */
    struct kr_dk         *d;
    int                   busy;       /* a poll runs */
    int                   in_cb;      /* in the poll's callback */
    int                   running;    /* as last sent */
    ev_timer              tick, reap;
};

static void
kr_follow_drop_poll(struct kr_follow *f)
{
    if (f->d != NULL)
        f->d->ex = NULL;                /* no engine call goes out */
    f->d = NULL;
    if (f->pool != NULL)
        kap_pool_destroy(f->pool);      /* cancels what is in flight */
    f->pool = NULL;
    f->busy = 0;
}

/* the socket has gone: free after this loop turn */
static void
kr_follow_reap_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kr_follow *f = w->data;

    (void) loop;
    (void) revents;
    kr_follow_drop_poll(f);
    free(f);
}

static void
kr_follow_gone(void *data)
{
    struct kr_follow *f = data;

    f->ws = NULL;
    ev_timer_stop(kap_loop(), &f->tick);
    if (f->in_cb) {                     /* not inside the engine call's */
        if (f->d != NULL)
            f->d->ex = NULL;            /* the exchange goes with ws */
        ev_timer_start(kap_loop(), &f->reap);
        return;
    }
    kr_follow_drop_poll(f);
    free(f);
}

static void
kr_follow_fail(struct kr_dk *d, int status, const char *why)
{
    struct kr_follow *f = d->data;
    char reason[120];

    f->busy = 0;
    if (f->ws == NULL)
        return;
    if (f->offset >= 0) {               /* retried at the next tick */
        KAP_LOG(KAP_LOG_INFO, KR_NAME, 0, "session %s: %s", f->sid, why);
        return;
    }
    snprintf(reason, sizeof(reason), "%.110s", why);  /* a close's reason */
    ev_timer_stop(kap_loop(), &f->tick);
    f->in_cb = 1;
    kr_ws_end(f->ws, 4000 + (status >= 400 && status < 600 ? status : 500),
              reason);
    f->in_cb = 0;
}

/* the lines of p[0..n) that are complete: their length */
static size_t
kr_complete(const char *p, size_t n)
{
    while (n > 0 && p[n - 1] != '\n')
        n--;
    return n;
}

static void
kr_follow_read(struct kr_dk *d, const struct kr_follow_res *r, void *data)
{
    struct kr_follow *f = data;
    struct kr_session_meta meta;
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    const char *p = d->out.data != NULL ? d->out.data : "";
    size_t n = kr_complete(p, d->out.len), skip = 0;
    int first = f->offset < 0 || r->from != f->offset, running;

    f->busy = 0;
    if (f->ws == NULL)
        return;
    if (first && r->from > 0) {         /* the tail's first line is cut */
        const char *nl = memchr(p, '\n', n);
        skip = nl != NULL ? (size_t) (nl - p) + 1 : n;
    }
    running = kap_now() - r->mtime < KR_RUNNING_SECS;
    if (!first && n == 0 && running == f->running)
        return;                         /* nothing new */
    f->running = running;
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "type");
    kap_json_w_str(&w, first ? "timeline" : "events");
    kap_json_w_key(&w, "id");
    kap_json_w_str(&w, f->sid);
    kap_json_w_key(&w, "running");
    kap_json_w_bool(&w, running);
    kap_json_w_key(&w, "events");
    if (kr_session_parse(p + skip, n - skip, &w, &meta) != KAP_OK) {
        kap_buf_free(&b);
        return;
    }
    if (first) {
        kap_json_w_key(&w, "truncated");
        kap_json_w_bool(&w, r->from > 0 || meta.dropped > 0);
    }
    kap_json_w_obj_end(&w);
    f->offset = r->from + (long long) n;
    f->in_cb = 1;
    if (kap_json_w_finish(&w) == KAP_OK)
        (void) kr_ws_send(f->ws, (const char *) b.data, b.len);
    f->in_cb = 0;                       /* f->ws may be gone now */
    kap_buf_free(&b);
}

static void
kr_follow_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kr_follow *f = w->data;

    (void) loop;
    (void) revents;
    if (f->busy || f->ws == NULL)
        return;
    kr_follow_drop_poll(f);             /* the last one's */
    if ((f->pool = kap_pool_create()) == NULL
        || (f->d = kr_dk_new_pool(f->pool, kr_ws_ex(f->ws), f->cf,
                                  kr_follow_fail, f)) == NULL) {
        kr_follow_drop_poll(f);
        return;
    }
    f->busy = 1;
    kr_agent_follow(f->d, f->project, f->sid, f->offset, kr_follow_read, f);
}

int
kr_follow_start(struct kr_ws *ws, const struct kr_conf *cf,
                const char *project, const char *sid)
{
    struct kr_follow *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return KAP_ERROR;
    f->ws = ws;
    f->cf = cf;
    f->offset = -1;
    snprintf(f->project, sizeof(f->project), "%s", project);
    snprintf(f->sid, sizeof(f->sid), "%s", sid);
    ev_timer_init(&f->tick, kr_follow_tick, 0., KR_FOLLOW_INTERVAL);
    f->tick.data = f;
    ev_timer_init(&f->reap, kr_follow_reap_cb, 0., 0.);
    f->reap.data = f;
    kr_ws_on_free(ws, kr_follow_gone, f);
    ev_timer_start(kap_loop(), &f->tick);
    return KAP_OK;
}
