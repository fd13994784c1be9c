/*
 * kap_test_http_module.c -- the test module "test_http" (never installed):
 * a listener served by the core's HTTP server layer (kap_http_server.h),
 * for t/023-http-server.t.
 *
 *   test_http: {
 *       listen = ["127.0.0.1:PORT"];
 *       errors = "json";               # or "text" (default)
 *       header_timeout = 1; idle_timeout = 2; write_timeout = 2;
 *       max_body = 1000; high_water = 8192;     # optional
 *       max_connections = 50; max_per_client = 20;   # optional
 *       cert = "tls/cert.pem"; key = "tls/key/key.pem";  # optional: TLS
 *   };
 *
 * Routes:
 *   GET  /hello             200 "hello\n", X-Test: 1
 *   POST /echo              200, the request body back
 *   GET  /later/MS          200 "later\n" after MS milliseconds (a timer:
 *                           the answer comes from outside the handler)
 *   GET  /sse/N/SIZE        N server-sent events of about SIZE bytes, made
 *                           only while the writer says KAP_OK (KAP_AGAIN:
 *                           wait for on_drain); then "event: end"
 *   GET  /stream/N          chunked, N lines "line I\n"
 *   GET  /error/NNN         kap_http_error(NNN, "test error NNN")
 *   GET  /header-inject     200 "refused\n" when a header value with CR LF
 *                           and a Content-Length header are both refused
 *   GET  /stats             {"max_queued":..,"aborts":..,"sse_done":..,
 *                            "requests":..}: what the module saw
 *   anything else           404 (kap_http_error)
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_core.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_tls.h>

#define TH_NAME "test_http"

struct th_conf {
    struct kap_http_server_conf srv;
    size_t nlisten;
    const char *cert, *key;
    struct kap_tls_ctx *ctx;            /* made in init when cert is set */
};

/* what the module saw, over the process's life */
static struct {
    size_t   max_queued;
    unsigned aborts, sse_done, requests;
} th_stats;

static void *
th_conf_create(struct kap_gen *gen)
{
    struct th_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf != NULL)
        cf->srv.module = TH_NAME;
    return cf;
}

static int
th_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *group,
              struct kap_err *err)
{
    static const char *const keys[] = {
        "listen", "errors", "header_timeout", "idle_timeout",
        "write_timeout", "max_body", "high_water", "cert", "key",
        "max_connections", "max_per_client", NULL
    };
    struct th_conf *cf = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const char **listen, *errors = NULL;
    long long n = 0;
    size_t i, nl;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, keys, err) != KAP_OK
        || kap_conf_get_strlist(group, "listen", pool, &listen, &nl, err)
           != KAP_OK)
        return KAP_ERROR;
    for (i = 0; i < nl; i++)
        if (kap_listen_add(gen, TH_NAME, KAP_LISTEN_TCP, listen[i],
                           config_setting_get_member(group, "listen"), err)
            != KAP_OK)
            return KAP_ERROR;
    cf->nlisten = nl;
    if (kap_conf_get_str(group, "errors", pool, &errors, err) == KAP_ERROR
        || kap_conf_get_secs(group, "header_timeout",
                             &cf->srv.header_timeout, err) == KAP_ERROR
        || kap_conf_get_secs(group, "idle_timeout", &cf->srv.idle_timeout,
                             err) == KAP_ERROR
        || kap_conf_get_secs(group, "write_timeout", &cf->srv.write_timeout,
                             err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_str(group, "cert", pool, &cf->cert, err) == KAP_ERROR
        || kap_conf_get_str(group, "key", pool, &cf->key, err) == KAP_ERROR)
        return KAP_ERROR;
    if (cf->cert != NULL && (cf->cert = kap_conf_path(gen, cf->cert)) == NULL)
        return KAP_ERROR;
    if (cf->key != NULL && (cf->key = kap_conf_path(gen, cf->key)) == NULL)
        return KAP_ERROR;
    if (errors != NULL)
        cf->srv.error_format = strcmp(errors, "json") == 0
                                   ? KAP_HTTP_ERR_JSON : KAP_HTTP_ERR_TEXT;
    if (config_setting_lookup_int64(group, "max_body", &n) == CONFIG_TRUE)
        cf->srv.max_body = (size_t) n;
    if (config_setting_lookup_int64(group, "high_water", &n) == CONFIG_TRUE)
        cf->srv.high_water = (size_t) n;
    if (config_setting_lookup_int64(group, "max_connections", &n)
        == CONFIG_TRUE)
        cf->srv.max_connections = (unsigned) n;
    if (config_setting_lookup_int64(group, "max_per_client", &n)
        == CONFIG_TRUE)
        cf->srv.max_per_client = (unsigned) n;
    return KAP_OK;
}

static int
th_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct th_conf *cf = conf;

    (void) gen;
    if (cf->nlisten == 0) {
        kap_err_set(err, "test_http: listen is required");
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
th_init(struct kap_gen *gen, void *conf)
{
    struct th_conf *cf = conf;
    struct kap_tls_opts o;
    struct kap_err err;

    if (cf->cert == NULL)
        return KAP_OK;
    memset(&err, 0, sizeof(err));
    memset(&o, 0, sizeof(o));
    o.cert_file = cf->cert;
    o.key_file = cf->key;
    cf->ctx = kap_tls_ctx_new(gen, &o, &err);
    if (cf->ctx == NULL) {
        KAP_LOG(KAP_LOG_ERR, TH_NAME, 0, "%s", err.msg);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- routes that answer later ------------------------------------------- */

/* /later/MS: a timer in the exchange's pool answers */
struct th_later {
    struct kap_http_ex *ex;
    ev_timer            timer;
};

static void
th_later_stop(struct kap_http_ex *ex, void *data)
{
    struct th_later *l = data;

    (void) ex;
    th_stats.aborts++;
    ev_timer_stop(kap_loop(), &l->timer);
}

static void
th_later_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct th_later *l = w->data;

    (void) loop;
    (void) revents;
    kap_http_respond(l->ex, 200, "text/plain", "later\n", 6);
}

static void
th_later(struct kap_http_ex *ex, long ms)
{
    struct th_later *l = kap_palloc(kap_http_ex_pool(ex), sizeof(*l));

    if (l == NULL) {
        kap_http_error(ex, 503, "out of memory");
        return;
    }
    l->ex = ex;
    ev_timer_init(&l->timer, th_later_cb, (double) ms / 1000.0, 0);
    l->timer.data = l;
    ev_timer_start(kap_loop(), &l->timer);
    kap_http_ex_on_abort(ex, th_later_stop, l);
}

/* /sse/N/SIZE: produce while the writer lets us */
struct th_sse {
    long   n, size, i;
    char  *pad;
};

static void
th_sse_note(struct kap_http_ex *ex)
{
    size_t q = kap_http_ex_queued(ex);

    if (q > th_stats.max_queued)
        th_stats.max_queued = q;
}

static void
th_sse_more(struct kap_http_ex *ex, void *data)
{
    struct th_sse *st = data;
    char ev[128];
    int rc = KAP_OK, n;

    while (st->i < st->n && rc == KAP_OK) {
        /* the payload holds a line break: it must come back joined */
        n = snprintf(ev, sizeof(ev), "{\"i\":%ld,\n\"pad\":\"", st->i);
        {
            struct kap_buf b = { 0 };
            kap_buf_append(&b, ev, (size_t) n);
            kap_buf_append(&b, st->pad, (size_t) st->size);
            kap_buf_append(&b, "\"}", 2);
            rc = kap_http_sse_event(ex, NULL, NULL, b.data, b.len);
            kap_buf_free(&b);
        }
        st->i++;
        th_sse_note(ex);
    }
    if (rc == KAP_ERROR)
        return;                     /* on_abort follows */
    if (st->i < st->n)
        return;                     /* KAP_AGAIN: on_drain calls again */
    kap_http_ex_on_drain(ex, NULL, NULL);
    kap_http_sse_event(ex, "end", "last", "done", 4);
    th_sse_note(ex);
    th_stats.sse_done++;
    kap_http_stream_end(ex);
}

static void
th_sse_abort(struct kap_http_ex *ex, void *data)
{
    (void) ex;
    (void) data;
    th_stats.aborts++;
}

static void
th_sse(struct kap_http_ex *ex, long n, long size)
{
    struct th_sse *st = kap_palloc(kap_http_ex_pool(ex), sizeof(*st));

    if (size < 0 || size > 65536 || n < 0)
        size = n = 0;
    if (st == NULL || (st->pad = kap_palloc(kap_http_ex_pool(ex),
                                            (size_t) size + 1)) == NULL) {
        kap_http_error(ex, 503, "out of memory");
        return;
    }
    memset(st->pad, 'x', (size_t) size);
    st->n = n;
    st->size = size;
    kap_http_ex_on_abort(ex, th_sse_abort, st);
    kap_http_ex_on_drain(ex, th_sse_more, st);
    if (kap_http_sse_start(ex) != KAP_OK)
        return;
    /* a field with a line break is refused, and nothing is written */
    if (kap_http_sse_event(ex, "bad\nevent", NULL, "x", 1) != KAP_ERROR) {
        kap_http_ex_close(ex);
        return;
    }
    th_sse_more(ex, st);
}

static void
th_stream(struct kap_http_ex *ex, long n)
{
    char line[64];
    int len;

    if (kap_http_stream_start(ex, 200, "text/plain") == KAP_ERROR)
        return;
    for (long i = 0; i < n; i++) {
        len = snprintf(line, sizeof(line), "line %ld\n", i);
        if (kap_http_stream_write(ex, line, (size_t) len) == KAP_ERROR)
            return;
    }
    kap_http_stream_end(ex);
}

static void
th_stats_answer(struct kap_http_ex *ex)
{
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"max_queued\":%zu,\"aborts\":%u,\"sse_done\":%u,"
                     "\"requests\":%u}\n",
                     th_stats.max_queued, th_stats.aborts, th_stats.sse_done,
                     th_stats.requests);

    kap_http_respond(ex, 200, "application/json", body, (size_t) n);
}

/* ---- the handler ---------------------------------------------------------- */

static int
is(const struct kap_str *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->data, lit, s->len) == 0;
}

static void
th_handle(struct kap_http_ex *ex, void *data)
{
    const struct kap_http_req *q = kap_http_ex_req(ex);
    char path[256];
    const char *body;
    size_t blen;
    long a = 0, b = 0;

    (void) data;
    th_stats.requests++;
    snprintf(path, sizeof(path), "%.*s", (int) q->target.len, q->target.data);
    if ((is(&q->method, "GET") || is(&q->method, "HEAD"))
        && strcmp(path, "/hello") == 0) {
        kap_http_header_add(ex, "X-Test", "1");
        kap_http_respond(ex, 200, "text/plain", "hello\n", 6);
    } else if (is(&q->method, "POST") && strcmp(path, "/echo") == 0) {
        body = kap_http_ex_body(ex, &blen);
        kap_http_respond(ex, 200, "application/octet-stream", body, blen);
    } else if (sscanf(path, "/later/%ld", &a) == 1) {
        th_later(ex, a);
    } else if (sscanf(path, "/sse/%ld/%ld", &a, &b) == 2) {
        th_sse(ex, a, b);
    } else if (sscanf(path, "/stream/%ld", &a) == 1) {
        th_stream(ex, a);
    } else if (sscanf(path, "/error/%ld", &a) == 1) {
        snprintf(path, sizeof(path), "test error \"%ld\"", a);
        kap_http_error(ex, (int) a, path);
    } else if (strcmp(path, "/header-inject") == 0) {
        if (kap_http_header_add(ex, "X-Evil", "a\r\nSet-Cookie: x=1")
                == KAP_ERROR
            && kap_http_header_add(ex, "Content-Length", "0") == KAP_ERROR)
            kap_http_respond(ex, 200, "text/plain", "refused\n", 8);
        else
            kap_http_respond(ex, 500, "text/plain", "accepted\n", 9);
    } else if (strcmp(path, "/stats") == 0) {
        th_stats_answer(ex);
    } else {
        kap_http_error(ex, 404, "no such route");
    }
}

static void
th_accept(struct kap_conn *c)
{
    struct th_conf *cf = c->conf;

    if (cf->ctx != NULL)
        kap_http_server_start_tls(c, cf->ctx, &cf->srv, th_handle, NULL);
    else
        kap_http_server_start(c, &cf->srv, th_handle, NULL);
}

static const struct kap_listener_ops th_listener = {
    .accept = th_accept,
};

const struct kap_module kap_test_http_module = {
    KAP_MODULE_V1(TH_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER,
    .conf_create = th_conf_create,
    .conf_parse = th_conf_parse,
    .conf_check = th_conf_check,
    .init = th_init,
    .listener = &th_listener,
};
