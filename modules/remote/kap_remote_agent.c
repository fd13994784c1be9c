/*
 * kap_remote_agent.c -- the Docker routes of the remote module:
 *
 *   GET  /api/containers                   kap projects (compose labels)
 *   GET  /api/agent/sessions               Claude Code sessions in the app
 *   GET  /api/agent/session/ID             the session's timeline
 *   GET  /api/agent/session/ID/status      running (written in the last 15 s)
 *   GET  /api/agent/session/ID/diff        git diff --stat (format=patch)
 *   POST /api/agent/session/ID/cancel      SIGINT to the session's claude
 *   POST /api/agent/session/ID/message     {"message":..}: resume the
 *                                          session with a follow-up prompt
 *
 * The /api/agent routes take ?project=NAME (needed when more than one
 * kap project runs).  IDs are checked (kap_remote_dkparse.c) before any
 * engine call; everything that runs in the app container is an argv
 * (kap_remote_docker.c), so nothing from a request reaches a shell.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kapd/kap_json.h>

#include "kap_remote.h"
#include "kap_remote_docker.h"
#include "kap_remote_session.h"

#define KR_MAX_PROJECTS   64
#define KR_MAX_SESSIONS   200
#define KR_TAIL_BYTES     (4 * 1024 * 1024)   /* a session file's tail */
#define KR_HEAD_LINES     "20"
#define KR_RUNNING_SECS   15.0
#define KR_MESSAGE_MAX    8000
#define KR_DIFF_MAX       (512 * 1024)
#define KR_SANDBOX_NET    "_kap_sandbox"

/* the containers of kap projects: compose label kap.project */
#define KR_LIST_PATH "/containers/json?all=1&filters=" \
    "%7B%22label%22%3A%5B%22kap.project%22%5D%7D"

enum kr_op {
    KR_OP_CONTAINERS, KR_OP_SESSIONS, KR_OP_TIMELINE, KR_OP_STATUS,
    KR_OP_DIFF, KR_OP_CANCEL, KR_OP_MESSAGE, KR_OP_FOLLOW
};

struct kr_ctr {
    const char *id, *name, *state, *status;
};

struct kr_proj {
    const char   *name, *dir;
    struct kr_ctr app, sidecar;
};

struct kr_ag {
    enum kr_op  op;
    char        project[KR_PROJECT_MAX + 1];
    char        sid[KR_UUID_LEN + 1];
    int         patch;
    const char *app;         /* the app container's id */
    const char *path;        /* the session file */
    double      mtime;
    const char *cwd;         /* the session's, from its head */
    const char *message;
    long long   size;        /* the session file's, when found */
    struct kr_follow_res fr; /* follow: what was read */
    kr_follow_fn follow;     /* follow: called with d->out */
    void       *follow_data;
};

static const char *const kr_find_base[] = {
    "find", "/root/.claude/projects", "/home", "-maxdepth", "5",
    "-path", "*/.claude/projects/*", "-not", "-path", "*/subagents/*",
    "-type", "f"
};
#define KR_FIND_BASE (sizeof(kr_find_base) / sizeof(kr_find_base[0]))

static void kr_ag_found(struct kr_dk *d);

/* ---- replies ------------------------------------------------------------- */

static void
kr_ag_reply(struct kr_dk *d, struct kap_buf *b, struct kap_json_writer *w)
{
    struct kap_http_ex *ex = d->ex;

    ev_timer_stop(kap_loop(), &d->tm);
    d->ex = NULL;
    kr_json_reply(ex, 200, b, w);
}

static void
kr_w_ctr(struct kap_json_writer *w, const char *key, const struct kr_ctr *c)
{
    kap_json_w_key(w, key);
    if (c->id == NULL) {
        kap_json_w_null(w);
        return;
    }
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "id");
    kap_json_w_strn(w, c->id, 12);
    kap_json_w_key(w, "name");
    kap_json_w_str(w, c->name);
    kap_json_w_key(w, "state");
    kap_json_w_str(w, c->state);
    kap_json_w_key(w, "status");
    kap_json_w_str(w, c->status);
    kap_json_w_obj_end(w);
}

/* ---- the projects ----------------------------------------------------------- */

static int
kr_proj_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kr_proj *) a)->name,
                  ((const struct kr_proj *) b)->name);
}

/* 1 when container c is on the project's internal network */
static int
kr_on_sandbox(const struct kap_json *c, const char *project)
{
    const struct kap_json *n = kap_json_child(kap_json_get(
        kap_json_get(c, "NetworkSettings"), "Networks"));
    size_t pl = strlen(project);

    for (; n != NULL; n = kap_json_next(n)) {
        const char *k = kap_json_key(n);
        if (k != NULL && strncmp(k, project, pl) == 0
            && strcmp(k + pl, KR_SANDBOX_NET) == 0)
            return 1;
    }
    return 0;
}

/* the engine's container list into projects: sorted, n returned */
static size_t
kr_projects(const struct kap_json *list, struct kr_proj *pr, size_t max)
{
    const struct kap_json *c;
    size_t n = 0, i;

    for (c = kap_json_child(list); c != NULL; c = kap_json_next(c)) {
        const struct kap_json *lab = kap_json_get(c, "Labels");
        const char *id = kap_json_get_string(c, "Id");
        const char *proj = kap_json_get_string(lab,
                                               "com.docker.compose.project");
        const char *svc = kap_json_get_string(lab,
                                              "com.docker.compose.service");
        const char *name = kap_json_string(kap_json_child(
            kap_json_get(c, "Names")));
        struct kr_ctr *slot;

        if (id == NULL || !kr_container_id_valid(id, strlen(id))
            || strlen(id) != 64 || proj == NULL
            || !kr_project_valid(proj, strlen(proj)) || svc == NULL
            || kap_json_get_string(lab, "kap.project") == NULL)
            continue;           /* not a kap project's */
        for (i = 0; i < n && strcmp(pr[i].name, proj) != 0; i++)
            ;
        if (i == n) {
            if (n == max)
                continue;
            memset(&pr[n], 0, sizeof(pr[n]));
            pr[n].name = proj;
            pr[n++].dir = kap_json_get_string(lab, "kap.project");
        }
        if (strcmp(svc, "kap") == 0)
            slot = &pr[i].sidecar;
        else if (kr_on_sandbox(c, proj))
            slot = &pr[i].app;
        else
            continue;
        if (slot->id != NULL)
            continue;           /* the first of each, as kap does */
        slot->id = id;
        slot->name = name != NULL ? name + (name[0] == '/') : "";
        slot->state = kap_json_get_string(c, "State");
        slot->status = kap_json_get_string(c, "Status");
    }
    qsort(pr, n, sizeof(*pr), kr_proj_cmp);
    return n;
}

static void
kr_containers_listed(struct kr_dk *d, const struct kap_json *j)
{
    struct kr_proj pr[KR_MAX_PROJECTS];
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    size_t n = kr_projects(j, pr, KR_MAX_PROJECTS), i;

    kap_json_w_init(&w, &b);
    kap_json_w_arr_begin(&w);
    for (i = 0; i < n; i++) {
        kap_json_w_obj_begin(&w);
        kap_json_w_key(&w, "project");
        kap_json_w_str(&w, pr[i].name);
        kap_json_w_key(&w, "dir");
        kap_json_w_str(&w, pr[i].dir);
        kap_json_w_key(&w, "capsule");
        kap_json_w_bool(&w, 0);
        kr_w_ctr(&w, "app", &pr[i].app);
        kr_w_ctr(&w, "sidecar", &pr[i].sidecar);
        kap_json_w_obj_end(&w);
    }
    kr_caps_write(&w);                  /* kap run capsules (channel) */
    kap_json_w_arr_end(&w);
    kr_ag_reply(d, &b, &w);
}

/* no Docker engine on this host: the kap run capsules only */
static void
kr_containers_capsules(struct kap_http_ex *ex)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;

    kap_json_w_init(&w, &b);
    kap_json_w_arr_begin(&w);
    kr_caps_write(&w);
    kap_json_w_arr_end(&w);
    kr_json_reply(ex, 200, &b, &w);
}

/* the agent routes: the project's running app container, then the op */
static void
kr_ag_listed(struct kr_dk *d, const struct kap_json *j)
{
    struct kr_ag *a = d->route;
    struct kr_proj pr[KR_MAX_PROJECTS];
    size_t n = kr_projects(j, pr, KR_MAX_PROJECTS), i;
    const struct kr_proj *p = NULL;

    if (a->project[0] == '\0') {
        if (n != 1) {
            kr_dk_fail(d, n == 0 ? 503 : 400, n == 0
                       ? "no kap project is running"
                       : "several kap projects: say which (?project=)");
            return;
        }
        p = &pr[0];
    }
    for (i = 0; i < n && p == NULL; i++)
        if (strcmp(pr[i].name, a->project) == 0)
            p = &pr[i];
    if (p == NULL) {
        kr_dk_fail(d, 404, "no such kap project");
        return;
    }
    if (p->app.id == NULL || p->app.state == NULL
        || strcmp(p->app.state, "running") != 0) {
        kr_dk_fail(d, 503, "the project's app container is not running");
        return;
    }
    if ((a->app = kap_pstrdup(d->pool, p->app.id)) == NULL) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    kr_ag_found(d);
}

/* ---- sessions ------------------------------------------------------------------ */

/* find's argv with extra tests and its -printf format */
static const char **
kr_find_argv(struct kr_dk *d, const char *name)
{
    const char **v = kap_palloc(d->pool, (KR_FIND_BASE + 6) * sizeof(*v));
    size_t i;

    if (v == NULL)
        return NULL;
    for (i = 0; i < KR_FIND_BASE; i++)
        v[i] = kr_find_base[i];
    v[i++] = "-name";
    v[i++] = name;
    v[i++] = "-printf";
    v[i++] = "%T@ %s %p\\n";
    v[i] = NULL;
    return v;
}

static void
kr_run(struct kr_dk *d, const char *const *argv, size_t max_out,
       kr_dk_exec_fn done)
{
    struct kr_dk_cmd cmd;
    struct kr_ag *a = d->route;

    if (argv == NULL) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    memset(&cmd, 0, sizeof(cmd));
    cmd.argv = argv;
    cmd.max_out = max_out;
    kr_dk_exec(d, a->app, &cmd, done);
}

/*
 * One line of find's output: "MTIME SIZE PATH" with PATH ending in
 * /UUID.jsonl.  KAP_OK with the parts (path NUL-terminated in place).
 */
static int
kr_find_line(char *line, double *mtime, long long *size, char **path,
             char *sid, char *dir, size_t dsize)
{
    char *e, *sp, *base, *parent;
    size_t pl;

    *mtime = strtod(line, &e);
    if (e == line || *e != ' ')
        return KAP_ERROR;
    *size = strtoll(e + 1, &sp, 10);
    if (sp == e + 1 || *sp != ' ' || sp[1] != '/')
        return KAP_ERROR;
    *path = sp + 1;
    pl = strlen(*path);
    base = strrchr(*path, '/');
    if (base == NULL || pl < 7 || strcmp(*path + pl - 6, ".jsonl") != 0
        || !kr_session_id_valid(base + 1, (size_t) (*path + pl - 6
                                                     - base - 1)))
        return KAP_ERROR;
    memcpy(sid, base + 1, KR_UUID_LEN);
    sid[KR_UUID_LEN] = '\0';
    for (parent = base; parent > *path && parent[-1] != '/'; parent--)
        ;
    kr_session_project(parent, (size_t) (base - parent), dir, dsize);
    return KAP_OK;
}

struct kr_sess {
    double      mtime;
    long long   size;
    char        sid[KR_UUID_LEN + 1];
    char        project[256];
};

static int
kr_sess_cmp(const void *a, const void *b)
{
    double x = ((const struct kr_sess *) a)->mtime;
    double y = ((const struct kr_sess *) b)->mtime;

    return x < y ? 1 : x > y ? -1 : 0;
}

static void
kr_sessions_found(struct kr_dk *d)
{
    struct kr_sess *s = kap_palloc(d->pool,
                                   KR_MAX_SESSIONS * sizeof(*s));
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    char *line, *save = NULL, *path;
    size_t n = 0, i;
    double now = kap_now();

    if (s == NULL || kap_buf_append(&d->out, "", 1) != KAP_OK) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    for (line = strtok_r(d->out.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
        if (n < KR_MAX_SESSIONS
            && kr_find_line(line, &s[n].mtime, &s[n].size, &path, s[n].sid,
                            s[n].project, sizeof(s[n].project)) == KAP_OK)
            n++;
    qsort(s, n, sizeof(*s), kr_sess_cmp);
    kap_json_w_init(&w, &b);
    kap_json_w_arr_begin(&w);
    for (i = 0; i < n; i++) {
        kap_json_w_obj_begin(&w);
        kap_json_w_key(&w, "id");
        kap_json_w_str(&w, s[i].sid);
        kap_json_w_key(&w, "project");
        kap_json_w_str(&w, s[i].project[0] != '\0' ? s[i].project
                                                   : "unknown");
        kap_json_w_key(&w, "modified");
        kap_json_w_double(&w, (double) (long long) s[i].mtime);
        kap_json_w_key(&w, "size");
        kap_json_w_int(&w, s[i].size);
        kap_json_w_key(&w, "running");
        kap_json_w_bool(&w, now - s[i].mtime < KR_RUNNING_SECS);
        kap_json_w_obj_end(&w);
    }
    kap_json_w_arr_end(&w);
    kr_ag_reply(d, &b, &w);
}

/* ---- one session ------------------------------------------------------------------ */

static void kr_ag_with_file(struct kr_dk *d);

static void
kr_session_located(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    char *line, *save = NULL, *path, sid[KR_UUID_LEN + 1], dir[8];
    long long size;

    if (kap_buf_append(&d->out, "", 1) != KAP_OK) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    for (line = strtok_r(d->out.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
        if (kr_find_line(line, &a->mtime, &size, &path, sid, dir,
                         sizeof(dir)) == KAP_OK
            && strcmp(sid, a->sid) == 0)
            break;
    if (line == NULL) {
        kr_dk_fail(d, 404, "no such session");
        return;
    }
    if ((a->path = kap_pstrdup(d->pool, path)) == NULL) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    a->size = size;
    kr_ag_with_file(d);
}

/* an object for session a: {"id":..,"running":.., ... */
static void
kr_w_session(struct kap_json_writer *w, struct kap_buf *b,
             const struct kr_ag *a)
{
    kap_json_w_init(w, b);
    kap_json_w_obj_begin(w);
    kap_json_w_key(w, "id");
    kap_json_w_str(w, a->sid);
    kap_json_w_key(w, "running");
    kap_json_w_bool(w, kap_now() - a->mtime < KR_RUNNING_SECS);
}

/* key: s, or null when s is "" */
static void
kr_w_opt(struct kap_json_writer *w, const char *key, const char *s)
{
    kap_json_w_key(w, key);
    kap_json_w_str(w, s[0] != '\0' ? s : NULL);
}

static void
kr_timeline_read(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    struct kr_session_meta meta;
    struct kap_buf b = { 0 };
    struct kap_json_writer w;

    kr_w_session(&w, &b, a);
    kap_json_w_key(&w, "events");
    if (kr_session_parse(d->out.data, d->out.len, &w, &meta) != KAP_OK) {
        kap_buf_free(&b);
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    kr_w_opt(&w, "cwd", meta.cwd);
    kr_w_opt(&w, "branch", meta.branch);
    kr_w_opt(&w, "task", meta.task);
    kr_w_opt(&w, "last_event", meta.last_ts);
    kap_json_w_key(&w, "truncated");
    kap_json_w_bool(&w, d->cut || meta.dropped > 0
                        || d->out.len >= KR_TAIL_BYTES);
    kap_json_w_key(&w, "malformed");
    kap_json_w_uint(&w, meta.malformed);
    kap_json_w_key(&w, "huge");
    kap_json_w_uint(&w, meta.huge);
    kap_json_w_obj_end(&w);
    kr_ag_reply(d, &b, &w);
}

static void
kr_status_reply(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    struct kap_buf b = { 0 };
    struct kap_json_writer w;

    kr_w_session(&w, &b, a);
    kap_json_w_key(&w, "modified");
    kap_json_w_double(&w, (double) (long long) a->mtime);
    kap_json_w_obj_end(&w);
    kr_ag_reply(d, &b, &w);
}

/* the first line of stderr, for an error message */
static const char *
kr_stderr_line(struct kr_dk *d)
{
    char *nl;

    if (kap_buf_append(&d->err, "", 1) != KAP_OK)
        return "";
    if ((nl = strchr(d->err.data, '\n')) != NULL)
        *nl = '\0';
    return d->err.data;
}

static void
kr_diff_done(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    char why[300];

    if (d->exit_code != 0 && !d->cut) {
        snprintf(why, sizeof(why), "git diff failed (exit %lld): %.200s",
                 d->exit_code, kr_stderr_line(d));
        kr_dk_fail(d, 500, why);
        return;
    }
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "format");
    kap_json_w_str(&w, a->patch ? "patch" : "stat");
    kap_json_w_key(&w, "cwd");
    kap_json_w_str(&w, a->cwd);
    kap_json_w_key(&w, "diff");
    kap_json_w_strn(&w, d->out.data != NULL ? d->out.data : "", d->out.len);
    kap_json_w_key(&w, "truncated");
    kap_json_w_bool(&w, d->cut);
    kap_json_w_obj_end(&w);
    kr_ag_reply(d, &b, &w);
}

static void
kr_diff_run(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    const char **v = kap_palloc(d->pool, 10 * sizeof(*v));

    if (v != NULL) {
        v[0] = "git";
        v[1] = "-C";
        v[2] = a->cwd;
        v[3] = "--no-pager";
        v[4] = "diff";
        v[5] = "--no-ext-diff";
        v[6] = "--no-textconv";
        v[7] = "--no-color";
        v[8] = a->patch ? "--patch" : "--stat";
        v[9] = NULL;
    }
    kr_run(d, v, KR_DIFF_MAX, kr_diff_done);
}

/* pids: lines of decimal digits; how many, the first in *first */
static size_t
kr_pids(struct kr_dk *d, const char **first)
{
    char *line, *save = NULL;
    size_t n = 0;

    *first = NULL;
    if (kap_buf_append(&d->out, "", 1) != KAP_OK)
        return 0;
    for (line = strtok_r(d->out.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        size_t l = strlen(line);
        if (l == 0 || l > 10 || strspn(line, "0123456789") != l
            || line[0] == '0')
            continue;
        if (n++ == 0)
            *first = kap_pstrdup(d->pool, line);
    }
    return n;
}

static void
kr_simple_reply(struct kr_dk *d, const char *k1, int v1, const char *k2,
                const char *v2)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, k1);
    kap_json_w_bool(&w, v1);
    kap_json_w_key(&w, k2);
    kap_json_w_str(&w, v2);
    kap_json_w_obj_end(&w);
    kr_ag_reply(d, &b, &w);
}

static void
kr_killed(struct kr_dk *d)
{
    char why[300];

    if (d->exit_code != 0) {
        snprintf(why, sizeof(why), "kill failed (exit %lld): %.200s",
                 d->exit_code, kr_stderr_line(d));
        kr_dk_fail(d, 500, why);
        return;
    }
    kr_simple_reply(d, "cancelled", 1, "message", "SIGINT sent");
}

static void
kr_kill(struct kr_dk *d, const char *pid)
{
    const char **v = kap_palloc(d->pool, 5 * sizeof(*v));

    if (v != NULL) {
        v[0] = "kill";
        v[1] = "-s";
        v[2] = "INT";
        v[3] = pid;
        v[4] = NULL;
    }
    kr_run(d, v, 4096, kr_killed);
}

/* any claude: used when no process names the session */
static void
kr_cancel_any(struct kr_dk *d)
{
    const char *pid;
    size_t n = kr_pids(d, &pid);

    if (n == 0)
        kr_simple_reply(d, "cancelled", 0, "message",
                        "no claude process is running");
    else if (n > 1)
        kr_dk_fail(d, 409, "several claude processes run and none names"
                           " this session; stop it in the container");
    else
        kr_kill(d, pid);
}

static void
kr_cancel_pgrep(struct kr_dk *d)
{
    static const char *const any[] = { "pgrep", "-x", "claude", NULL };
    const char *pid;
    size_t n = kr_pids(d, &pid);

    if (n == 1)
        kr_kill(d, pid);
    else if (n > 1)
        kr_dk_fail(d, 409, "several processes name this session");
    else
        kr_run(d, any, 4096, kr_cancel_any);
}

/* ---- follow-up message ------------------------------------------------------------ */

/* the first account with 1000 <= uid < 65534 in getent passwd's output */
static const char *
kr_user_of(struct kr_dk *d, const char **home)
{
    char *line, *save = NULL;

    if (kap_buf_append(&d->out, "", 1) != KAP_OK)
        return NULL;
    for (line = strtok_r(d->out.data, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *f[7], *s = line, *c;
        size_t i;
        long uid;

        for (i = 0; i < 7; i++) {
            f[i] = s;
            c = strchr(s, ':');
            if (i < 6 && c == NULL)
                break;
            if (c != NULL) {
                *c = '\0';
                s = c + 1;
            }
        }
        if (i < 7 || f[0][0] == '\0' || strspn(f[2], "0123456789")
                                        != strlen(f[2]) || f[2][0] == '\0')
            continue;
        uid = strtol(f[2], NULL, 10);
        if (uid < 1000 || uid >= 65534 || f[5][0] != '/'
            || strspn(f[0], "abcdefghijklmnopqrstuvwxyz0123456789_-.")
               != strlen(f[0]))
            continue;
        *home = kap_pstrdup(d->pool, f[5]);
        return kap_pstrdup(d->pool, f[0]);
    }
    return NULL;
}

static void
kr_message_sent(struct kr_dk *d)
{
    struct kr_ag *a = d->route;

    kr_simple_reply(d, "sent", 1, "session_id", a->sid);
}

static void
kr_message_user(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    const char *home = NULL, *user = kr_user_of(d, &home);
    const char **argv = kap_palloc(d->pool, 7 * sizeof(*argv));
    const char **env = kap_palloc(d->pool, 3 * sizeof(*env));
    struct kr_dk_cmd cmd;

    if (user == NULL || home == NULL) {
        kr_dk_fail(d, 500, "no user account (uid 1000 or above) in the"
                           " app container");
        return;
    }
    if (argv == NULL || env == NULL
        || (env[0] = kap_psprintf(d->pool, "HOME=%s", home)) == NULL
        || (env[1] = kap_psprintf(d->pool, "PATH=%s/.local/bin:"
                                  "/usr/local/sbin:/usr/local/bin:"
                                  "/usr/sbin:/usr/bin:/sbin:/bin", home))
           == NULL) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    env[2] = NULL;
    argv[0] = "claude";
    argv[1] = "--resume";
    argv[2] = a->sid;
    argv[3] = "--dangerously-skip-permissions";
    argv[4] = "-p";
    argv[5] = a->message;
    argv[6] = NULL;
    memset(&cmd, 0, sizeof(cmd));
    cmd.argv = argv;
    cmd.env = env;
    cmd.user = user;
    cmd.workdir = a->cwd;
    cmd.detach = 1;
    kr_dk_exec(d, a->app, &cmd, kr_message_sent);
}

static void
kr_message_idle(struct kr_dk *d)
{
    static const char *const getent[] = { "getent", "passwd", NULL };
    const char *pid;

    if (kr_pids(d, &pid) > 0) {
        kr_dk_fail(d, 409, "the session is running; stop it first");
        return;
    }
    kr_run(d, getent, 256 * 1024, kr_message_user);
}

/* ---- the steps ------------------------------------------------------------------- */

/* the head of the session file has been read: its cwd */
static void
kr_head_read(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    struct kr_session_meta meta;
    const char **pg = kap_palloc(d->pool, 5 * sizeof(*pg));

    if (kr_session_parse(d->out.data, d->out.len, NULL, &meta) != KAP_OK) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    a->cwd = meta.cwd[0] == '/' ? kap_pstrdup(d->pool, meta.cwd)
                                : "/workspace";
    if (a->op == KR_OP_DIFF) {
        kr_diff_run(d);
        return;
    }
    if (pg != NULL) {
        pg[0] = "pgrep";
        pg[1] = "-f";
        pg[2] = "--";
        pg[3] = a->sid;     /* a UUID: no regex meta-characters */
        pg[4] = NULL;
    }
    kr_run(d, pg, 4096, kr_message_idle);
}

/* follow: the bytes read from a->fr.from on */
static void
kr_follow_done(struct kr_dk *d)
{
    struct kr_ag *a = d->route;

    ev_timer_stop(kap_loop(), &d->tm);
    d->ex = NULL;                       /* the chain is over */
    a->follow(d, &a->fr, a->follow_data);
}

/* follow: the file from a->fr.from on (-1: its last KR_TAIL_BYTES) */
static void
kr_follow_read(struct kr_dk *d, const char **v)
{
    struct kr_ag *a = d->route;
    long long from = a->fr.from;

    if (from < 0 || from > a->size)     /* first, or the file shrank */
        from = a->size > KR_TAIL_BYTES ? a->size - KR_TAIL_BYTES : 0;
    a->fr.from = from;
    a->fr.size = a->size;
    a->fr.mtime = a->mtime;
    if (from == a->size && from > 0) {  /* nothing new: no exec */
        kap_buf_reset(&d->out);
        kr_follow_done(d);
        return;
    }
    v[0] = "tail";
    v[1] = "-c";
    v[2] = kap_psprintf(d->pool, "+%lld", from + 1);
    v[3] = "--";
    v[4] = a->path;
    v[5] = NULL;
    kr_run(d, v[2] != NULL ? v : NULL, KR_TAIL_BYTES, kr_follow_done);
}

static void
kr_ag_with_file(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    const char **v = kap_palloc(d->pool, 6 * sizeof(*v));

    if (v == NULL) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    switch (a->op) {
    case KR_OP_FOLLOW:
        kr_follow_read(d, v);
        return;
    case KR_OP_TIMELINE:
        v[0] = "tail";
        v[1] = "-c";
        v[2] = "4194304";
        v[3] = "--";
        v[4] = a->path;
        v[5] = NULL;
        kr_run(d, v, KR_TAIL_BYTES, kr_timeline_read);
        return;
    case KR_OP_STATUS:
        kr_status_reply(d);
        return;
    case KR_OP_CANCEL:
        v[0] = "pgrep";
        v[1] = "-f";
        v[2] = "--";
        v[3] = a->sid;
        v[4] = NULL;
        kr_run(d, v, 4096, kr_cancel_pgrep);
        return;
    default:                /* diff, message: the session's cwd first */
        v[0] = "head";
        v[1] = "-n";
        v[2] = KR_HEAD_LINES;
        v[3] = "--";
        v[4] = a->path;
        v[5] = NULL;
        kr_run(d, v, 1024 * 1024, kr_head_read);
        return;
    }
}

static void
kr_ag_found(struct kr_dk *d)
{
    struct kr_ag *a = d->route;
    const char *name;

    if (a->op == KR_OP_SESSIONS) {
        kr_run(d, kr_find_argv(d, "*.jsonl"), 256 * 1024, kr_sessions_found);
        return;
    }
    name = kap_psprintf(d->pool, "%s.jsonl", a->sid);
    kr_run(d, name != NULL ? kr_find_argv(d, name) : NULL, 64 * 1024,
           kr_session_located);
}

void
kr_agent_follow(struct kr_dk *d, const char *project, const char *sid,
                long long from, kr_follow_fn done, void *data)
{
    struct kr_ag *a = kap_palloc(d->pool, sizeof(*a));

    if (a == NULL) {
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    memset(a, 0, sizeof(*a));
    a->op = KR_OP_FOLLOW;
    snprintf(a->project, sizeof(a->project), "%s", project);
    snprintf(a->sid, sizeof(a->sid), "%s", sid);
    a->fr.from = from;
    a->follow = done;
    a->follow_data = data;
    d->route = a;
    kr_dk_get(d, KR_LIST_PATH, kr_ag_listed);
}

/* ---- entry --------------------------------------------------------------------------- */

/* {"message":"..."}: a string of 1..KR_MESSAGE_MAX bytes, not blank */
static const char *
kr_message_body(struct kap_http_ex *ex, struct kap_pool *pool,
                const char **why)
{
    struct kap_json_limits lim = { 64 * 1024, 4, 8, 0 };
    const char *body, *m;
    struct kap_json *j;
    size_t len;

    body = kap_http_ex_body(ex, &len);
    j = kap_json_parse_pool(pool, body, len, &lim, NULL);
    m = kap_json_get_string(j, "message");
    if (kap_json_type(j) != KAP_JSON_OBJECT || kap_json_size(j) != 1
        || m == NULL) {
        *why = "body: expected {\"message\": \"...\"}";
        return NULL;
    }
    if (strlen(m) > KR_MESSAGE_MAX || m[strspn(m, " \t\r\n")] == '\0') {
        *why = "message: 1 to 8000 bytes, not blank";
        return NULL;
    }
    return m;
}

/* /api/agent/session/ID[/what]: KAP_OK with a->sid and a->op */
static int
kr_agent_path(const char *p, size_t n, struct kr_ag *a, int *post)
{
    static const char pre[] = "/api/agent/session/";
    const char *rest;
    size_t rl;

    if (n < sizeof(pre) - 1 + KR_UUID_LEN
        || memcmp(p, pre, sizeof(pre) - 1) != 0
        || !kr_session_id_valid(p + sizeof(pre) - 1, KR_UUID_LEN))
        return KAP_ERROR;
    memcpy(a->sid, p + sizeof(pre) - 1, KR_UUID_LEN);
    a->sid[KR_UUID_LEN] = '\0';
    rest = p + sizeof(pre) - 1 + KR_UUID_LEN;
    rl = n - (sizeof(pre) - 1 + KR_UUID_LEN);
    *post = 0;
#define KR_IS(lit) (rl == sizeof(lit) - 1 && memcmp(rest, lit, rl) == 0)
    if (rl == 0)
        a->op = KR_OP_TIMELINE;
    else if (KR_IS("/status"))
        a->op = KR_OP_STATUS;
    else if (KR_IS("/diff"))
        a->op = KR_OP_DIFF;
    else if (KR_IS("/cancel"))
        a->op = KR_OP_CANCEL, *post = 1;
    else if (KR_IS("/message"))
        a->op = KR_OP_MESSAGE, *post = 1;
    else
        return KAP_ERROR;
#undef KR_IS
    return KAP_OK;
}

int
kr_agent_route(struct kap_http_ex *ex, const struct kr_conf *cf,
               const char *p, size_t n, const char *qs, size_t qlen, int get)
{
    static const char sess[] = "/api/agent/session/";
    const struct kap_http_req *q = kap_http_ex_req(ex);
    int post = 0, is_post = q->method.len == 4
                            && memcmp(q->method.data, "POST", 4) == 0;
    struct kr_ag ag, *a;
    struct kr_dk *d;
    const char *why = "";

    memset(&ag, 0, sizeof(ag));
    if (n == 15 && memcmp(p, "/api/containers", 15) == 0) {
        ag.op = KR_OP_CONTAINERS;
        if (qlen > 0) {
            kap_http_error(ex, 400, "query: /api/containers takes no"
                                    " parameters");
            return 1;
        }
    } else if (n == 19 && memcmp(p, "/api/agent/sessions", 19) == 0) {
        ag.op = KR_OP_SESSIONS;
    } else if (n >= sizeof(sess) - 1
               && memcmp(p, sess, sizeof(sess) - 1) == 0) {
        if (kr_agent_path(p, n, &ag, &post) != KAP_OK) {
            kap_http_error(ex, 400, "a session id is a UUID (lowercase hex"
                                    " 8-4-4-4-12); routes: /status, /diff,"
                                    " /cancel, /message");
            return 1;
        }
    } else {
        return 0;
    }
    if (post ? !is_post : !get) {
        kap_http_header_add(ex, "Allow", post ? "POST" : "GET, HEAD");
        kap_http_error(ex, 405, "method not allowed");
        return 1;
    }
    if (ag.op != KR_OP_CONTAINERS
        && kr_agent_query_parse(qs, qlen, ag.project, &ag.patch, &why)
           != KAP_OK) {
        kap_http_error(ex, 400, why);
        return 1;
    }
    if (ag.patch && ag.op != KR_OP_DIFF) {
        kap_http_error(ex, 400, "query: format is for /diff");
        return 1;
    }
    if (ag.op == KR_OP_MESSAGE
        && (ag.message = kr_message_body(ex, kap_http_ex_pool(ex), &why))
           == NULL) {
        kap_http_error(ex, 400, why);
        return 1;
    }
    /* no Docker engine here, but capsules: those (else the engine's 502) */
    if (ag.op == KR_OP_CONTAINERS && kr_caps_count() > 0
        && access(cf->docker_socket, F_OK) != 0) {
        kr_containers_capsules(ex);
        return 1;
    }
    if ((d = kr_dk_new(ex, cf)) == NULL
        || (a = kap_palloc(d->pool, sizeof(*a))) == NULL) {
        kap_http_error(ex, 500, "out of memory");
        return 1;
    }
    *a = ag;
    d->route = a;
    kr_dk_get(d, KR_LIST_PATH, ag.op == KR_OP_CONTAINERS
                               ? kr_containers_listed : kr_ag_listed);
    return 1;
}
