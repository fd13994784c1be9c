/*
 * kap_remote_docker.c -- the remote module's Docker Engine API client:
 * HTTP over the engine's unix socket with kap_curl (libcurl in kapd's
 * loop: nothing blocks, no docker CLI).
 *
 * A chain of engine calls (struct kr_dk) belongs to one HTTP exchange
 * and lives in its pool: when the phone goes away the pool is destroyed,
 * which cancels the transfer in flight and the deadline.  The deadline
 * covers the whole chain (docker_timeout); an engine that does not
 * answer in time gets the client a 504, an engine that cannot be reached
 * or answers nonsense a 502, both as JSON.
 *
 * An exec is three calls: create (the argv as a JSON array, never a
 * shell line), start (the multiplexed stdout/stderr stream, read up to a
 * size limit, then cut), and inspect (the exit code).
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <string.h>

#include <ev.h>

#include <kapd/kap_conn.h>
#include <kapd/kap_curl.h>
#include <kapd/kap_json.h>

#include "kap_remote.h"
#include "kap_remote_docker.h"

#define KR_DK_URL "http://docker" KR_DOCKER_API

static void
kr_dk_cleanup(void *data)
{
    struct kr_dk *d = data;

    ev_timer_stop(kap_loop(), &d->tm);
    kap_buf_free(&d->raw);
    kap_buf_free(&d->out);
    kap_buf_free(&d->err);
}

/* the client went away: the pool's cleanups stop everything */
static void
kr_dk_abort(struct kap_http_ex *ex, void *data)
{
    struct kr_dk *d = data;

    (void) ex;
    d->ex = NULL;
}

void
kr_dk_fail(struct kr_dk *d, int status, const char *why)
{
    struct kap_http_ex *ex = d->ex;

    if (d->cu != NULL) {
        kap_curl_cancel(d->cu);
        d->cu = NULL;
    }
    ev_timer_stop(kap_loop(), &d->tm);
    if (ex == NULL)
        return;
    d->ex = NULL;
    if (d->fail != NULL) {
        d->fail(d, status, why);
        return;
    }
    if (status >= 500)
        KAP_LOG(KAP_LOG_WARN, KR_NAME, kap_http_ex_conn(ex)->id,
                "docker engine: %s", why);
    kap_http_error(ex, status, why);      /* d is gone from here on */
}

static void
kr_dk_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kr_dk *d = w->data;
    char why[96];

    (void) loop;
    (void) revents;
    snprintf(why, sizeof(why), "the docker engine did not answer within"
             " %g s", d->cf->docker_timeout);
    kr_dk_fail(d, 504, why);
}

struct kr_dk *
kr_dk_new_pool(struct kap_pool *pool, struct kap_http_ex *ex,
               const struct kr_conf *cf, kr_dk_fail_fn fail, void *data)
{
    struct kr_dk *d = kap_palloc(pool, sizeof(*d));

    if (d == NULL)
        return NULL;
    memset(d, 0, sizeof(*d));
    d->ex = ex;
    d->pool = pool;
    d->cf = cf;
    d->fail = fail;
    d->data = data;
    ev_timer_init(&d->tm, kr_dk_deadline, cf->docker_timeout, 0.);
    d->tm.data = d;
    if (kap_pool_cleanup_add(pool, kr_dk_cleanup, d) != KAP_OK)
        return NULL;
    ev_timer_start(kap_loop(), &d->tm);
    return d;
}

struct kr_dk *
kr_dk_new(struct kap_http_ex *ex, const struct kr_conf *cf)
{
    struct kr_dk *d = kr_dk_new_pool(kap_http_ex_pool(ex), ex, cf, NULL,
                                     NULL);

    if (d != NULL)
        kap_http_ex_on_abort(ex, kr_dk_abort, d);
    return d;
}

/* the client has gone (d->ex NULL) or the chain failed: 1 */
static int
kr_dk_gone(struct kr_dk *d)
{
    return d->ex == NULL;
}

/* a failed transfer: 502, or 504 for a timeout */
static void
kr_dk_transfer_failed(struct kr_dk *d, const char *err)
{
    char why[300];

    snprintf(why, sizeof(why), "docker engine unavailable: %.250s",
             err != NULL ? err : "error");
    kr_dk_fail(d, strstr(why, "time") != NULL ? 504 : 502, why);
}

/* an engine answer that is not 2xx: its "message", and our status */
static void
kr_dk_status_failed(struct kr_dk *d, long status, const struct kap_buf *b)
{
    struct kap_json *j = b->len > 0
                         ? kap_json_parse(b->data, b->len, NULL, NULL) : NULL;
    const char *m = kap_json_get_string(j, "message");
    char why[300];

    snprintf(why, sizeof(why), "docker engine: %ld %.250s", status,
             m != NULL ? m : "error");
    kap_json_free(j);
    kr_dk_fail(d, status == 404 ? 404 : status == 409 ? 409 : 502, why);
}

static struct kap_curl *
kr_dk_call(struct kr_dk *d, const char *method, const char *path,
           const struct kap_buf *body, const struct kap_curl_stream_ops *ops,
           kap_curl_done_fn done)
{
    static const char *const hdrs[] = {
        "Content-Type: application/json", "Accept: application/json", NULL
    };
    struct kap_conn *c = kap_http_ex_conn(d->ex);
    struct kap_curl_opts o;
    char url[512];

    if ((size_t) snprintf(url, sizeof(url), "%s%s", KR_DK_URL, path)
        >= sizeof(url))
        return NULL;
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.asked_by = KR_NAME;
    o.conn = c;
    o.method = method;
    o.headers = hdrs;
    o.body = body != NULL ? body->data : NULL;
    o.body_len = body != NULL ? body->len : 0;
    o.max_body = KR_DOCKER_MAX_JSON;
    o.timeout = d->cf->docker_timeout + 1;    /* ours fires first */
    o.connect_timeout = d->cf->docker_timeout + 1;
    o.unix_socket = d->cf->docker_socket;
    if (ops != NULL)
        return kap_curl_stream(c->gen, d->pool, &o, ops, done, d);
    return kap_curl_fetch(c->gen, d->pool, &o, done, d);
}

/* ---- GET returning JSON ---------------------------------------------- */

static void
kr_dk_get_done(struct kap_curl *cu, struct kap_curl_result *res, void *data)
{
    struct kr_dk *d = data;
    struct kap_json_limits lim = { KR_DOCKER_MAX_JSON, 0, 0, 0 };
    struct kap_json *j;
    struct kap_err err;
    char why[300];

    (void) cu;
    d->cu = NULL;
    if (kr_dk_gone(d))
        return;
    if (res->rc != KAP_OK) {
        kr_dk_transfer_failed(d, res->error);
        return;
    }
    if (res->status < 200 || res->status > 299) {
        kr_dk_status_failed(d, res->status, res->body);
        return;
    }
    memset(&err, 0, sizeof(err));
    j = kap_json_parse_pool(d->pool, res->body->data, res->body->len, &lim,
                            &err);
    if (j == NULL) {
        snprintf(why, sizeof(why), "docker engine: bad JSON: %.200s",
                 err.msg);
        kr_dk_fail(d, 502, why);
        return;
    }
    d->json_done(d, j);
}

static void
kr_dk_request(struct kr_dk *d, const char *method, const char *path,
              const struct kap_buf *body, kr_dk_json_fn done)
{
    d->json_done = done;
    d->cu = kr_dk_call(d, method, path, body, NULL, kr_dk_get_done);
    if (d->cu == NULL)
        kr_dk_fail(d, 500, "cannot start an engine call");
}

void
kr_dk_get(struct kr_dk *d, const char *path, kr_dk_json_fn done)
{
    kr_dk_request(d, NULL, path, NULL, done);
}

/* ---- exec ---------------------------------------------------------------- */

static void
kr_dk_exec_inspected(struct kr_dk *d, const struct kap_json *j)
{
    int64_t code;

    d->exit_code = kap_json_int(kap_json_get(j, "ExitCode"), &code) == KAP_OK
                   ? (long long) code : -1;
    d->exec_done(d);
}

static int
kr_dk_stream_head(struct kap_curl *cu, long status,
                  const struct kap_buf *headers, void *data)
{
    struct kr_dk *d = data;

    (void) cu;
    (void) headers;
    d->start_status = status;
    return status == 200 ? KAP_OK : KAP_ERROR;
}

static int
kr_dk_stream_body(struct kap_curl *cu, const char *p, size_t n, void *data)
{
    struct kr_dk *d = data;
    size_t max = d->max_out + d->max_out / 8 + KR_EXEC_MAX_ERR + 4096;

    (void) cu;
    if (n > max - d->raw.len) {
        d->stopped = 1;
        n = max - d->raw.len;
    }
    if (n > 0 && kap_buf_append(&d->raw, p, n) != KAP_OK)
        return KAP_ERROR;
    return d->stopped ? KAP_ERROR : KAP_OK;
}

static void
kr_dk_started(struct kap_curl *cu, struct kap_curl_result *res, void *data)
{
    struct kr_dk *d = data;
    const char *why = "";
    char path[160];

    (void) cu;
    d->cu = NULL;
    if (kr_dk_gone(d))
        return;
    if (d->start_status != 0 && d->start_status != 200) {
        kr_dk_status_failed(d, d->start_status, &d->raw);
        return;
    }
    if (res->rc != KAP_OK && !d->stopped) {
        kr_dk_transfer_failed(d, res->error);
        return;
    }
    if (kr_demux(d->raw.data, d->raw.len, d->stopped, &d->out, d->max_out,
                 &d->err, KR_EXEC_MAX_ERR, &d->cut, &why) != KAP_OK) {
        kr_dk_fail(d, 502, why);
        return;
    }
    d->cut |= d->stopped;
    if (d->stopped || d->detach) {
        d->exit_code = -1;          /* still running, or not waited for */
        d->exec_done(d);
        return;
    }
    snprintf(path, sizeof(path), "/exec/%s/json", d->eid);
    kr_dk_get(d, path, kr_dk_exec_inspected);
}

static void
kr_dk_created(struct kr_dk *d, const struct kap_json *j)
{
    static const struct kap_curl_stream_ops ops = {
        kr_dk_stream_head, kr_dk_stream_body
    };
    const char *id = kap_json_get_string(j, "Id");
    struct kap_buf b = { 0 };
    char path[160];

    if (id == NULL || !kr_container_id_valid(id, strlen(id))) {
        kr_dk_fail(d, 502, "docker engine: exec create without an id");
        return;
    }
    if ((d->eid = kap_pstrdup(d->pool, id)) == NULL
        || kap_buf_printf(&b, "{\"Detach\":%s,\"Tty\":false}",
                          d->detach ? "true" : "false") != KAP_OK) {
        kap_buf_free(&b);
        kr_dk_fail(d, 500, "out of memory");
        return;
    }
    snprintf(path, sizeof(path), "/exec/%s/start", id);
    d->cu = kr_dk_call(d, "POST", path, &b, &ops, kr_dk_started);
    kap_buf_free(&b);
    if (d->cu == NULL)
        kr_dk_fail(d, 500, "cannot start an engine call");
}

static void
kr_dk_strs(struct kap_json_writer *w, const char *key,
           const char *const *v)
{
    kap_json_w_key(w, key);
    kap_json_w_arr_begin(w);
    for (; *v != NULL; v++)
        kap_json_w_str(w, *v);
    kap_json_w_arr_end(w);
}

void
kr_dk_exec(struct kr_dk *d, const char *cid, const struct kr_dk_cmd *cmd,
           kr_dk_exec_fn done)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    char path[160];

    d->exec_done = done;
    d->detach = cmd->detach;
    d->max_out = cmd->max_out > 0 ? cmd->max_out : KR_EXEC_MAX_OUT;
    kap_buf_reset(&d->raw);
    kap_buf_reset(&d->out);
    kap_buf_reset(&d->err);
    d->cut = d->stopped = 0;
    d->start_status = 0;
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "AttachStdin");
    kap_json_w_bool(&w, 0);
    kap_json_w_key(&w, "AttachStdout");
    kap_json_w_bool(&w, !cmd->detach);
    kap_json_w_key(&w, "AttachStderr");
    kap_json_w_bool(&w, !cmd->detach);
    kap_json_w_key(&w, "Tty");
    kap_json_w_bool(&w, 0);
    kr_dk_strs(&w, "Cmd", cmd->argv);
    if (cmd->env != NULL)
        kr_dk_strs(&w, "Env", cmd->env);
    if (cmd->user != NULL) {
        kap_json_w_key(&w, "User");
        kap_json_w_str(&w, cmd->user);
    }
    if (cmd->workdir != NULL) {
        kap_json_w_key(&w, "WorkingDir");
        kap_json_w_str(&w, cmd->workdir);
    }
    kap_json_w_obj_end(&w);
    if (kap_json_w_finish(&w) != KAP_OK
        || (size_t) snprintf(path, sizeof(path), "/containers/%s/exec", cid)
           >= sizeof(path)) {
        kap_buf_free(&b);
        kr_dk_fail(d, 500, "cannot build the exec request");
        return;
    }
    kr_dk_request(d, "POST", path, &b, kr_dk_created);
    kap_buf_free(&b);
}
