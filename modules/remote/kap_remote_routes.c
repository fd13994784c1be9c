/*
 * kap_remote_routes.c -- the remote module's routes.
 *
 *   GET  /  (or /index.html)   the page; the only route without auth
 *   POST /api/pair             pairing secret -> device token
 *   GET  /api/status           kapd, this device, audit counters
 *   GET  /api/logs?limit&denied  newest audit events first
 *   /api/containers, /api/agent/...  kap_remote_agent.c
 *   GET  /api/asks             questions waiting for a human
 *   POST /api/asks/ID          {"answer":"once"|"always"|"deny"}
 *   WS   /ws/logs?since&limit&denied  live audit events (kap_remote_ws.c)
 *   WS   /ws/agent/ID?project   a session's timeline, live
 *                              (kap_remote_follow.c)
 *
 * Every other path, /api or not, is authenticated first and then 404,
 * so an unauthenticated client learns nothing about the routes.  A
 * device token is taken from "Authorization: Bearer" only, never from
 * the URL: a query string ends up in browser history, proxies' and
 * servers' logs.  Errors are JSON ({"error":..,"status":N}).
 */
#define _GNU_SOURCE

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kapd/kap_build.h>
#include <kapd/kap_conn.h>
#include <kapd/kap_json.h>

#include "kap_remote.h"

static double kr_started;

static int
kr_eq(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

static int
kr_method(const struct kap_http_req *q, const char *m)
{
    return kr_eq(q->method.data, q->method.len, m);
}

/* the client's address without port, for rate limits and logs */
static void
kr_client(struct kap_http_ex *ex, char *out, size_t size)
{
    struct kap_conn *c = kap_http_ex_conn(ex);

    if (getnameinfo((const struct sockaddr *) &c->peer, c->peerlen, out,
                    (socklen_t) size, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, size, "unknown");
}

void
kr_json_reply(struct kap_http_ex *ex, int status, struct kap_buf *b,
              struct kap_json_writer *w)
{
    if (kap_json_w_finish(w) != KAP_OK) {
        kap_buf_free(b);
        kap_http_error(ex, 500, "out of memory");
        return;
    }
    kap_buf_append(b, "\n", 1);
    kap_http_header_add(ex, "Cache-Control", "no-store");
    kap_http_respond(ex, status, "application/json", b->data, b->len);
    kap_buf_free(b);
}

static void
kr_too_many(struct kap_http_ex *ex, double retry, const char *why)
{
    char v[32];

    snprintf(v, sizeof(v), "%.0f", retry);
    kap_http_header_add(ex, "Retry-After", v);
    kap_http_error(ex, 429, why);
}

static void
kr_unauthorized(struct kap_http_ex *ex, const char *why)
{
    kap_http_header_add(ex, "WWW-Authenticate", "Bearer realm=\"kap\"");
    kap_http_error(ex, 401, why);
}

static void
kr_not_allowed(struct kap_http_ex *ex, const char *allow)
{
    kap_http_header_add(ex, "Allow", allow);
    kap_http_error(ex, 405, "method not allowed");
}

/* ---- / -------------------------------------------------------------------- */

static void
kr_page(struct kap_http_ex *ex)
{
    /* one inline script and style; nothing from elsewhere, no framing,
       no referrer (the fragment never leaves, the path carries nothing) */
    kap_http_header_add(ex, "Content-Security-Policy",
                        "default-src 'none'; script-src 'unsafe-inline';"
                        " style-src 'unsafe-inline'; connect-src 'self';"
                        " img-src 'self' data:; base-uri 'none';"
                        " form-action 'none'; frame-ancestors 'none'");
    kap_http_header_add(ex, "Cache-Control", "no-store");
    kap_http_header_add(ex, "Referrer-Policy", "no-referrer");
    kap_http_header_add(ex, "X-Content-Type-Options", "nosniff");
    kap_http_respond(ex, 200, "text/html; charset=utf-8", kr_ui_page,
                     kr_ui_page_len);
}

/* ---- POST /api/pair ---------------------------------------------------------- */

static void
kr_pair(struct kap_http_ex *ex, const struct kr_conf *cf, const char *ip)
{
    char name[KR_NAME_MAX + 1], token[KR_TOKEN_LEN + 1];
    struct kr_device dev;
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    const char *sec, *why = "", *body;
    size_t slen, blen;
    double retry;
    int rc;

    if (!kr_method(kap_http_ex_req(ex), "POST")) {
        kr_not_allowed(ex, "POST");
        return;
    }
    if (kr_limit_over(KR_LIMIT_PAIR, "*", cf->pair_limit, cf->limit_window,
                      &retry)
        || kr_limit_over(KR_LIMIT_AUTH, ip, cf->auth_fail_limit,
                         cf->limit_window, &retry)) {
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "pairing from %s refused: rate"
                " limit", ip);
        kr_too_many(ex, retry, "too many pairing attempts; try later");
        return;
    }
    kr_limit_hit(KR_LIMIT_PAIR, "*", cf->limit_window);
    sec = kr_bearer(kap_http_ex_header(ex, "Authorization"), &slen);
    if (sec == NULL || !kr_hex_lower(sec, slen, KR_SECRET_HEX)) {
        kr_limit_hit(KR_LIMIT_AUTH, ip, cf->limit_window);
        kr_unauthorized(ex, "a pairing secret is required");
        return;
    }
    body = kap_http_ex_body(ex, &blen);
    if (kr_pair_body_parse(body, blen, name, &why) != KAP_OK) {
        kap_http_error(ex, 400, why);
        return;
    }
    rc = kr_pair_consume(cf, sec, slen, &why);
    if (rc == KAP_DECLINED) {
        kr_limit_hit(KR_LIMIT_AUTH, ip, cf->limit_window);
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "pairing from %s refused: %s", ip,
                why);
        kr_unauthorized(ex, "invalid or expired pairing secret");
        return;
    }
    if (rc != KAP_OK || kr_device_add(cf, name, &dev, token) != KAP_OK) {
        kap_http_error(ex, 500, "pairing failed (see kapd's error log)");
        return;
    }
    KAP_LOG(KAP_LOG_NOTICE, KR_NAME, 0, "paired device %s (\"%s\") from %s",
            dev.id, dev.name, ip);
    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "token");
    kap_json_w_str(&w, token);
    kap_json_w_key(&w, "device_id");
    kap_json_w_str(&w, dev.id);
    kap_json_w_key(&w, "name");
    kap_json_w_str(&w, dev.name);
    kap_json_w_obj_end(&w);
    memset(token, 0, sizeof(token));
    kr_json_reply(ex, 200, &b, &w);
}

/* ---- authenticated routes ------------------------------------------------------ */

static void
kr_status(struct kap_http_ex *ex, const struct kr_conf *cf,
          const struct kr_device *dev)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;

    kap_json_w_init(&w, &b);
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "kapd");
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "version");
    kap_json_w_str(&w, KAP_VERSION);
    kap_json_w_key(&w, "pid");
    kap_json_w_int(&w, (long long) getpid());
    kap_json_w_key(&w, "uptime");
    kap_json_w_double(&w, kr_started > 0 ? kap_now() - kr_started : 0);
    kap_json_w_obj_end(&w);
    kap_json_w_key(&w, "device");
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "id");
    kap_json_w_str(&w, dev->id);
    kap_json_w_key(&w, "name");
    kap_json_w_str(&w, dev->name);
    kap_json_w_obj_end(&w);
    kap_json_w_key(&w, "devices");
    kap_json_w_uint(&w, kr_device_count(cf));
    kap_json_w_key(&w, "audit");
    kr_logs_status(cf, &w);
    kap_json_w_obj_end(&w);
    kr_json_reply(ex, 200, &b, &w);
}

static void
kr_logs(struct kap_http_ex *ex, const struct kr_conf *cf, const char *qs,
        size_t qlen)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    struct kr_query q;
    const char *why = "";

    if (kr_query_parse(qs, qlen, &q, &why) != KAP_OK) {
        kap_http_error(ex, 400, why);
        return;
    }
    kap_json_w_init(&w, &b);
    kr_logs_write(cf, q.limit, q.denied, &w);
    kr_json_reply(ex, 200, &b, &w);
}

static void
kr_asks(struct kap_http_ex *ex)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;

    kap_json_w_init(&w, &b);
    kr_asks_write(&w);
    kr_json_reply(ex, 200, &b, &w);
}

/* POST /api/asks/ID: id[0..n) is the rest of the path */
static void
kr_ask(struct kap_http_ex *ex, const struct kr_device *dev, const char *id,
       size_t n)
{
    struct kap_buf b = { 0 };
    struct kap_json_writer w;
    char idz[KR_ASK_ID_LEN + 1];
    const char *why = "", *body, *state = NULL;
    size_t blen;
    int answer;

    if (!kr_method(kap_http_ex_req(ex), "POST")) {
        kr_not_allowed(ex, "POST");
        return;
    }
    if (!kr_ask_id_valid(id, n)) {
        kap_http_error(ex, 400, "bad question id (16 lowercase hex digits)");
        return;
    }
    body = kap_http_ex_body(ex, &blen);
    if (kr_answer_body_parse(body, blen, &answer, &why) != KAP_OK) {
        kap_http_error(ex, 400, why);
        return;
    }
    memcpy(idz, id, n);
    idz[n] = '\0';
    kap_json_w_init(&w, &b);
    if (kr_ask_answer(idz, answer, dev, &w, &state) == KAP_OK) {
        kr_json_reply(ex, 200, &b, &w);
        return;
    }
    kap_buf_free(&b);
    if (state == NULL)
        kap_http_error(ex, 404, "no such question");
    else if (strcmp(state, "answered") == 0)
        kap_http_error(ex, 409, "this question was answered already");
    else if (strcmp(state, "expired") == 0)
        kap_http_error(ex, 409, "this question expired (denied)");
    else
        kap_http_error(ex, 409, "this question was withdrawn by its asker");
}

void
kr_remote_started(void)
{
    if (kr_started == 0)
        kr_started = kap_now();
}

void
kr_handle(struct kap_http_ex *ex, void *data)
{
    const struct kr_conf *cf = data;
    const struct kap_http_req *q = kap_http_ex_req(ex);
    const char *t = q->target.data, *qm, *tok;
    size_t n = q->target.len, plen, qlen = 0, tlen;
    struct kr_device dev;
    char ip[64];
    double retry;
    int get = kr_method(q, "GET") || kr_method(q, "HEAD");

    if (n == 0 || t[0] != '/') {
        kap_http_error(ex, 400, "only origin-form request targets");
        return;
    }
    qm = memchr(t, '?', n);
    plen = qm != NULL ? (size_t) (qm - t) : n;
    if (qm != NULL)
        qlen = n - plen - 1;
    if (kr_eq(t, plen, "/") || kr_eq(t, plen, "/index.html")) {
        if (get)
            kr_page(ex);
        else
            kr_not_allowed(ex, "GET, HEAD");
        return;
    }
    kr_client(ex, ip, sizeof(ip));
    if (plen > 4 && memcmp(t, "/ws/", 4) == 0) {
        kr_ws_open(ex, cf, ip, t, plen, qm != NULL ? qm + 1 : "", qlen);
        return;
    }
    if (kr_eq(t, plen, "/api/pair")) {
        kr_pair(ex, cf, ip);
        return;
    }
    if (kr_limit_over(KR_LIMIT_AUTH, ip, cf->auth_fail_limit,
                      cf->limit_window, &retry)) {
        kr_too_many(ex, retry, "too many failed authentications; try later");
        return;
    }
    tok = kr_bearer(kap_http_ex_header(ex, "Authorization"), &tlen);
    if (tok == NULL) {
        kr_unauthorized(ex, "a device token is required"
                            " (Authorization: Bearer)");
        return;
    }
    if (kr_device_auth(cf, tok, tlen, &dev) != KAP_OK) {
        kr_limit_hit(KR_LIMIT_AUTH, ip, cf->limit_window);
        KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "unknown or revoked device token"
                " from %s", ip);
        kr_unauthorized(ex, "unknown or revoked device token");
        return;
    }
    if (kr_eq(t, plen, "/api/status")) {
        if (!get)
            kr_not_allowed(ex, "GET, HEAD");
        else if (qm != NULL)
            kap_http_error(ex, 400, "query: /api/status takes no parameters");
        else
            kr_status(ex, cf, &dev);
    } else if (kr_eq(t, plen, "/api/logs")) {
        if (!get)
            kr_not_allowed(ex, "GET, HEAD");
        else
            kr_logs(ex, cf, qm != NULL ? qm + 1 : "", qlen);
    } else if (kr_agent_route(ex, cf, t, plen, qm != NULL ? qm + 1 : "",
                              qlen, get)) {
        ;   /* containers and agent sessions: kap_remote_agent.c */
    } else if (kr_eq(t, plen, "/api/asks")) {
        if (!get)
            kr_not_allowed(ex, "GET, HEAD");
        else if (qm != NULL)
            kap_http_error(ex, 400, "query: /api/asks takes no parameters");
        else
            kr_asks(ex);
    } else if (plen > 10 && memcmp(t, "/api/asks/", 10) == 0) {
        if (qm != NULL)
            kap_http_error(ex, 400, "query: /api/asks/ID takes no parameters");
        else
            kr_ask(ex, &dev, t + 10, plen - 10);
    } else {
        kap_http_error(ex, 404, "no such route");
    }
}
