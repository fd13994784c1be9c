/*
 * kap_remote_ws.c -- WebSocket (RFC 6455) for the remote module: the
 * handshake on kap_http_server's upgrade, frames with wslay, the list
 * of open sockets and what is sent to them.
 *
 * Handshake: GET, HTTP/1.1, "Upgrade: websocket", "Connection: ...
 * Upgrade ...", "Sec-WebSocket-Version: 13" (else 426 naming 13) and a
 * Sec-WebSocket-Key of 16 bytes; a request without Upgrade is 426.  The
 * Origin, when present, must be the page's own (a browser sends it; a
 * page elsewhere cannot ride a device's token).  The device token comes
 * as the subprotocol "kap.token.TOKEN" next to "kap.v1" (a browser
 * cannot set Authorization on a WebSocket), or as Authorization: Bearer;
 * never in the URL.  The answer chooses "kap.v1" only, so the token is
 * never echoed.  Failures count toward the failed-auth rate limit.
 *
 * Frames: wslay's server context, fed with the bytes kap_http_server
 * reads (on_data) and writing through its output queue.  wslay answers
 * pings, refuses unmasked client frames (1002), checks UTF-8 (1007),
 * message size (1009) and closes with the peer.  What a client sends is
 * ignored (the streams go one way); a close is answered, then the
 * connection ends.  A socket whose queue (kap_http_server's plus
 * wslay's) would pass ws_queue_max is closed with 1008: memory per slow
 * reader is bounded and everyone else goes on.  Idle sockets get a ping
 * every ws_ping_interval; one that has sent nothing for two intervals
 * is closed (1001).  When kapd starts to shut down (SIGTERM), every
 * socket is closed with 1001 "going away" at once, so that a page
 * reconnects to the next kapd rather than wait for the grace to end.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include <kapd/kap_conn.h>
#include <kapd/kap_json.h>

#include "kap_remote.h"

#define KR_WS_GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define KR_WS_CLOSE_WAIT 2.0    /* s for the peer's close after ours */

struct kr_ws {
    struct kr_ws           *next, *prev;
    struct kap_http_ex     *ex;
    wslay_event_context_ptr ctx;
    const struct kr_conf   *cf;
    char                    stream[16];
    char                    device[KR_ID_LEN + 1];
    int                     denied;       /* logs: denials only */
    const char             *rx;           /* being fed to wslay */
    size_t                  rxlen;
    double                  last_rx;
    int                     closing;      /* our close is queued */
    ev_timer                ping, close_wait;
    void                  (*on_free)(void *data);   /* the stream's */
    void                   *on_free_data;
};

static struct kr_ws *kr_ws_all;
static unsigned      kr_ws_n;
static ev_prepare    kr_ws_stop_watch;  /* notices the shutdown */

unsigned
kr_ws_count(void)
{
    return kr_ws_n;
}

/* ---- wslay callbacks ---------------------------------------------------- */

static ssize_t
kr_ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
              int flags, void *user)
{
    struct kr_ws *ws = user;
    size_t n = ws->rxlen < len ? ws->rxlen : len;

    (void) flags;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, ws->rx, n);
    ws->rx += n;
    ws->rxlen -= n;
    return (ssize_t) n;
}

static ssize_t
kr_ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
              int flags, void *user)
{
    struct kr_ws *ws = user;

    (void) flags;
    /* always taken: the bound is checked before a message is queued */
    if (kap_http_raw_write(ws->ex, data, len) == KAP_ERROR) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t) len;
}

static void
kr_ws_msg_cb(wslay_event_context_ptr ctx,
             const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    struct kr_ws *ws = user;

    (void) ctx;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE)
        KAP_LOG(KAP_LOG_INFO, KR_NAME, kap_http_ex_conn(ws->ex)->id,
                "websocket closed by the client (%u)",
                (unsigned) arg->status_code);
    /* text and binary messages: nothing to do (the streams go one way) */
}

static const struct wslay_event_callbacks kr_ws_callbacks = {
    kr_ws_recv_cb, kr_ws_send_cb, NULL, NULL, NULL, NULL, kr_ws_msg_cb
};

/* ---- a socket's life ------------------------------------------------------ */

static void
kr_ws_free(struct kr_ws *ws)
{
    if (ws->on_free != NULL)
        ws->on_free(ws->on_free_data);
    ev_timer_stop(kap_loop(), &ws->ping);
    ev_timer_stop(kap_loop(), &ws->close_wait);
    if (ws->prev != NULL)
        ws->prev->next = ws->next;
    else if (kr_ws_all == ws)
        kr_ws_all = ws->next;
    if (ws->next != NULL)
        ws->next->prev = ws->prev;
    kr_ws_n--;
    if (ws->ctx != NULL)
        wslay_event_context_free(ws->ctx);
    free(ws);
}

/* the client went away (or kapd ends the connection): ex is gone after */
static void
kr_ws_abort(struct kap_http_ex *ex, void *data)
{
    (void) ex;
    kr_ws_free(data);
}

/* close the connection now (ws is freed) */
static void
kr_ws_drop(struct kr_ws *ws)
{
    struct kap_http_ex *ex = ws->ex;

    kr_ws_free(ws);
    kap_http_ex_close(ex);
}

/*
 * Send what wslay holds; end the connection when the close handshake is
 * over or wslay failed.  Returns KAP_OK while ws lives, KAP_DONE when
 * it is gone.
 */
static int
kr_ws_pump(struct kr_ws *ws)
{
    struct kap_http_ex *ex = ws->ex;

    if (wslay_event_send(ws->ctx) != 0) {
        kr_ws_drop(ws);
        return KAP_DONE;
    }
    if (wslay_event_get_close_sent(ws->ctx)
        && (wslay_event_get_close_received(ws->ctx)
            || !wslay_event_get_read_enabled(ws->ctx))) {
        kr_ws_free(ws);
        kap_http_raw_end(ex);       /* flush the close, then close */
        return KAP_DONE;
    }
    if (wslay_event_get_close_sent(ws->ctx) && !ws->closing) {
        ws->closing = 1;            /* wslay sent a close of its own */
        ev_timer_start(kap_loop(), &ws->close_wait);
    }
    return KAP_OK;
}

static void
kr_ws_close(struct kr_ws *ws, int code, const char *why)
{
    if (ws->closing)
        return;
    KAP_LOG(KAP_LOG_INFO, KR_NAME, kap_http_ex_conn(ws->ex)->id,
            "websocket of device %s closed: %d %s", ws->device, code, why);
    ws->closing = 1;
    wslay_event_queue_close(ws->ctx, (uint16_t) code, (const uint8_t *) why,
                            strlen(why));
    ev_timer_start(kap_loop(), &ws->close_wait);
    kr_ws_pump(ws);
}

void
kr_ws_end(struct kr_ws *ws, int code, const char *why)
{
    kr_ws_close(ws, code, why);
}

void
kr_ws_on_free(struct kr_ws *ws, void (*fn)(void *data), void *data)
{
    ws->on_free = fn;
    ws->on_free_data = data;
}

struct kap_http_ex *
kr_ws_ex(const struct kr_ws *ws)
{
    return ws->ex;
}

static void
kr_ws_close_wait_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    kr_ws_drop(w->data);            /* no close from the peer in time */
}

static void
kr_ws_ping_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kr_ws *ws = w->data;
    struct wslay_event_msg m = { WSLAY_PING, (const uint8_t *) "kap", 3 };

    (void) loop;
    (void) revents;
    if (ws->closing)
        return;
    if (kap_now() - ws->last_rx > 2 * ws->cf->ws_ping) {
        kr_ws_close(ws, WSLAY_CODE_GOING_AWAY, "no answer to pings");
        return;
    }
    if (wslay_event_queue_msg(ws->ctx, &m) == 0)
        kr_ws_pump(ws);
}

/* bytes from the client */
static void
kr_ws_data(struct kap_http_ex *ex, const char *data, size_t len, void *udata)
{
    struct kr_ws *ws = udata;

    (void) ex;
    ws->rx = data;
    ws->rxlen = len;
    ws->last_rx = kap_now();
    if (wslay_event_recv(ws->ctx) != 0) {
        kr_ws_drop(ws);
        return;
    }
    ws->rx = NULL;
    ws->rxlen = 0;
    kr_ws_pump(ws);
}

/*
 * Queue one text message to ws; close it with 1008 when its queue would
 * pass ws_queue_max.  KAP_OK, or KAP_DONE (ws is closing or gone).
 */
static int
kr_ws_text(struct kr_ws *ws, const char *json, size_t len)
{
    struct wslay_event_msg m = { WSLAY_TEXT_FRAME, (const uint8_t *) json,
                                 len };

    if (ws->closing)
        return KAP_DONE;
    if (kap_http_ex_queued(ws->ex) + wslay_event_get_queued_msg_length(ws->ctx)
            + len > (size_t) ws->cf->ws_queue_max) {
        kr_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION,
                    "client too slow: queue full");
        return KAP_DONE;
    }
    if (wslay_event_queue_msg(ws->ctx, &m) != 0) {
        kr_ws_drop(ws);
        return KAP_DONE;
    }
    return kr_ws_pump(ws);
}

unsigned
kr_ws_broadcast(const char *stream, const char *json, size_t len, int denied)
{
    struct kr_ws *ws, *next;
    unsigned n = 0;

    for (ws = kr_ws_all; ws != NULL; ws = next) {
        next = ws->next;            /* ws may be freed */
        if (strcmp(ws->stream, stream) != 0 || (ws->denied && !denied))
            continue;
        if (kr_ws_text(ws, json, len) == KAP_OK)
            n++;
    }
    return n;
}

/* every loop turn while sockets may be open: has the shutdown begun? */
static void
kr_ws_stop_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct kr_ws *ws, *next;

    (void) revents;
    if (!kap_shutting_down())
        return;
    ev_ref(loop);
    ev_prepare_stop(loop, w);
    for (ws = kr_ws_all; ws != NULL; ws = next) {
        next = ws->next;
        kr_ws_close(ws, WSLAY_CODE_GOING_AWAY, "kapd is shutting down");
    }
}

void
kr_ws_exit(void)
{
    if (ev_is_active(&kr_ws_stop_watch)) {
        ev_ref(kap_loop());
        ev_prepare_stop(kap_loop(), &kr_ws_stop_watch);
    }
}

void
kr_ws_revoked(const char *device)
{
    struct kr_ws *ws, *next;

    for (ws = kr_ws_all; ws != NULL; ws = next) {
        next = ws->next;
        if (strcmp(ws->device, device) == 0)
            kr_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION, "device revoked");
    }
}

/* ---- the handshake ---------------------------------------------------------- */

/* base64(SHA-1(key GUID)) into out (size >= 29) */
static int
kr_ws_accept(const char *key, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char in[64];
    int n = snprintf(in, sizeof(in), "%s%s", key, KR_WS_GUID);

    if (n < 0 || (size_t) n >= sizeof(in)
        || EVP_Digest(in, (size_t) n, md, &mdlen, EVP_sha1(), NULL) != 1
        || mdlen != 20)
        return KAP_ERROR;
    EVP_EncodeBlock((unsigned char *) out, md, 20);
    return KAP_OK;
}

/* a refused handshake; auth failures are counted by the caller */
static void
kr_ws_refuse(struct kap_http_ex *ex, int status, const char *why)
{
    if (status == 426) {
        kap_http_header_add(ex, "Upgrade", "websocket");
        kap_http_header_add(ex, "Sec-WebSocket-Version", "13");
    }
    kap_http_error(ex, status, why);
}

/* the handshake's HTTP part: 0 when it is a WebSocket request */
static int
kr_ws_check(struct kap_http_ex *ex, const struct kr_conf *cf,
            const char **why)
{
    const struct kap_http_req *q = kap_http_ex_req(ex);
    const char *v;

    if (!(q->method.len == 3 && memcmp(q->method.data, "GET", 3) == 0)) {
        *why = "a WebSocket opens with GET";
        return 405;
    }
    v = kap_http_ex_header(ex, "Upgrade");
    if (v == NULL) {
        *why = "this route is a WebSocket: Upgrade: websocket required";
        return 426;
    }
    if (!kr_list_has(v, "websocket") || q->minor < 1) {
        *why = "only a WebSocket upgrade over HTTP/1.1";
        return 400;
    }
    if (!kr_list_has(kap_http_ex_header(ex, "Connection"), "upgrade")) {
        *why = "Connection: Upgrade required";
        return 400;
    }
    v = kap_http_ex_header(ex, "Sec-WebSocket-Version");
    if (v == NULL || strcmp(v, "13") != 0) {
        *why = "Sec-WebSocket-Version 13 only";
        return 426;
    }
    if (!kr_ws_key_ok(kap_http_ex_header(ex, "Sec-WebSocket-Key"))) {
        *why = "Sec-WebSocket-Key must be 16 bytes in base64";
        return 400;
    }
    if (!kr_origin_ok(kap_http_ex_header(ex, "Origin"),
                      kap_http_ex_header(ex, "Host"), cf->tls != NULL)) {
        *why = "Origin is not this page's";
        return 403;
    }
    return 0;
}

/* the device token: the subprotocol, or Bearer; KAP_DECLINED when none */
static int
kr_ws_token(struct kap_http_ex *ex, const char **tok, size_t *len,
            const char **why)
{
    if (kr_ws_protocols(kap_http_ex_header(ex, "Sec-WebSocket-Protocol"),
                        tok, len, why) != KAP_OK)
        return KAP_ERROR;
    if (*tok == NULL)
        *tok = kr_bearer(kap_http_ex_header(ex, "Authorization"), len);
    return *tok != NULL ? KAP_OK : KAP_DECLINED;
}

static struct kr_ws *
kr_ws_new(struct kap_http_ex *ex, const struct kr_conf *cf,
          const char *stream, const struct kr_device *dev, int denied)
{
    struct kr_ws *ws = calloc(1, sizeof(*ws));

    if (ws == NULL)
        return NULL;
    if (wslay_event_context_server_init(&ws->ctx, &kr_ws_callbacks, ws)
        != 0) {
        free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(ws->ctx,
                                               (uint64_t) cf->ws_max_message);
    ws->ex = ex;
    ws->cf = cf;
    snprintf(ws->stream, sizeof(ws->stream), "%s", stream);
    memcpy(ws->device, dev->id, sizeof(ws->device));
    ws->denied = denied;
    ws->last_rx = kap_now();
    ev_timer_init(&ws->ping, kr_ws_ping_cb, cf->ws_ping, cf->ws_ping);
    ws->ping.data = ws;
    ev_timer_init(&ws->close_wait, kr_ws_close_wait_cb, KR_WS_CLOSE_WAIT, 0);
    ws->close_wait.data = ws;
    ws->next = kr_ws_all;
    if (kr_ws_all != NULL)
        kr_ws_all->prev = ws;
    kr_ws_all = ws;
    kr_ws_n++;
    if (!ev_is_active(&kr_ws_stop_watch)) {
        /* not a reason for the loop to run on its own: unref'd */
        ev_prepare_init(&kr_ws_stop_watch, kr_ws_stop_cb);
        ev_prepare_start(kap_loop(), &kr_ws_stop_watch);
        ev_unref(kap_loop());
    }
    return ws;
}

void
kr_ws_open(struct kap_http_ex *ex, const struct kr_conf *cf, const char *ip,
           const char *path, size_t plen, const char *qs, size_t qlen)
{
    struct kr_device dev;
    struct kr_query q = { 0, 0, -1 };
    struct kr_ws *ws;
    const char *why = "", *tok;
    char accept[32], project[KR_PROJECT_MAX + 1], sid[KR_UUID_LEN + 1];
    size_t tlen;
    double retry;
    int st, rc, agent, patch = 0;

    if (kap_shutting_down()) {
        kap_http_error(ex, 503, "kapd is shutting down");
        return;
    }
    if (kr_limit_over(KR_LIMIT_AUTH, ip, cf->auth_fail_limit,
                      cf->limit_window, &retry)) {
        snprintf(accept, sizeof(accept), "%.0f", retry);
        kap_http_header_add(ex, "Retry-After", accept);
        kap_http_error(ex, 429, "too many failed authentications; try later");
        return;
    }
    if ((st = kr_ws_check(ex, cf, &why)) != 0) {
        if (st == 403)
            kr_limit_hit(KR_LIMIT_AUTH, ip, cf->limit_window);
        KAP_LOG(KAP_LOG_INFO, KR_NAME, kap_http_ex_conn(ex)->id,
                "websocket from %s refused: %s", ip, why);
        kr_ws_refuse(ex, st, why);
        return;
    }
    rc = kr_ws_token(ex, &tok, &tlen, &why);
    if (rc == KAP_ERROR) {
        kr_ws_refuse(ex, 400, why);
        return;
    }
    if (rc == KAP_DECLINED || kr_device_auth(cf, tok, tlen, &dev) != KAP_OK) {
        if (rc == KAP_OK) {
            kr_limit_hit(KR_LIMIT_AUTH, ip, cf->limit_window);
            KAP_LOG(KAP_LOG_WARN, KR_NAME, 0, "unknown or revoked device"
                    " token from %s (websocket)", ip);
        }
        kap_http_header_add(ex, "WWW-Authenticate", "Bearer realm=\"kap\"");
        kap_http_error(ex, 401, rc == KAP_OK
                       ? "unknown or revoked device token"
                       : "a device token is required (subprotocol"
                         " kap.token.TOKEN)");
        return;
    }
    agent = plen > 10 && memcmp(path, "/ws/agent/", 10) == 0;
    if (!agent && !(plen == 8 && memcmp(path, "/ws/logs", 8) == 0)) {
        kap_http_error(ex, 404, "no such route");
        return;
    }
    if (agent && !kr_session_id_valid(path + 10, plen - 10)) {
        kr_ws_refuse(ex, 400, "a session id is a UUID (lowercase hex"
                              " 8-4-4-4-12)");
        return;
    }
    if (agent ? kr_agent_query_parse(qs, qlen, project, &patch, &why)
                != KAP_OK || (patch && (why = "query: format is for /diff"))
              : kr_ws_query_parse(qs, qlen, &q, &why) != KAP_OK) {
        kr_ws_refuse(ex, 400, why);
        return;
    }
    if (kr_ws_accept(kap_http_ex_header(ex, "Sec-WebSocket-Key"), accept)
            != KAP_OK
        || (ws = kr_ws_new(ex, cf, agent ? "agent" : "logs", &dev,
                           agent ? 0 : q.denied)) == NULL) {
        kap_http_error(ex, 503, "out of memory");
        return;
    }
    kap_http_header_add(ex, "Sec-WebSocket-Accept", accept);
    kap_http_header_add(ex, "Sec-WebSocket-Protocol", "kap.v1");
    kap_http_ex_on_abort(ex, kr_ws_abort, ws);
    if (kap_http_upgrade(ex, "websocket", kr_ws_data, ws) != KAP_OK) {
        kr_ws_free(ws);             /* closed, without on_abort */
        return;
    }
    KAP_LOG(KAP_LOG_INFO, KR_NAME, kap_http_ex_conn(ex)->id,
            "websocket %.*s for device %s from %s", (int) plen, path, dev.id,
            ip);
    ev_timer_start(kap_loop(), &ws->ping);
    if (agent) {
        memcpy(sid, path + 10, KR_UUID_LEN);
        sid[KR_UUID_LEN] = '\0';
        if (kr_follow_start(ws, cf, project, sid) != KAP_OK)
            kr_ws_close(ws, WSLAY_CODE_INTERNAL_SERVER_ERROR, "out of memory");
        return;
    }
    kr_live_catch_up(ws, &q);
}

int
kr_ws_send(struct kr_ws *ws, const char *json, size_t len)
{
    return kr_ws_text(ws, json, len);
}
