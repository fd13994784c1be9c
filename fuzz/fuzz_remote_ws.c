/*
 * fuzz_remote_ws.c -- libFuzzer target for what the remote module's
 * WebSocket layer parses: the handshake's fields (kap_remote_parse.c:
 * the /ws/logs query, Sec-WebSocket-Protocol, Sec-WebSocket-Key, a
 * Connection list, Origin) and client frames fed through a wslay server
 * context configured as kap_remote_ws.c configures it (max message
 * 1024 bytes), with callbacks that check what wslay hands them.  The
 * first byte picks which.
 *
 * Besides memory errors it aborts when a refusal has no message, an
 * accepted query is out of range, a token runs past the value or is
 * over KR_BEARER_MAX, or wslay delivers a message over the maximum.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wslay/wslay.h>

#include "kap_remote.h"

#define FZ_MAX_MSG 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz_feed { const uint8_t *p; size_t n; };

static ssize_t
fz_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
        void *user)
{
    struct fz_feed *f = user;
    /* small reads: frames arrive in pieces, as from a socket */
    size_t n = f->n < len ? f->n : len;

    (void) flags;
    if (n > 7)
        n = 7;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, f->p, n);
    f->p += n;
    f->n -= n;
    return (ssize_t) n;
}

static ssize_t
fz_send(wslay_event_context_ptr ctx, const uint8_t *d, size_t len, int flags,
        void *user)
{
    (void) ctx;
    (void) d;
    (void) flags;
    (void) user;
    return (ssize_t) len;
}

static void
fz_msg(wslay_event_context_ptr ctx,
       const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void) ctx;
    (void) user;
    if (arg->opcode != WSLAY_CONNECTION_CLOSE && arg->msg_length > FZ_MAX_MSG)
        abort();
}

static void
fz_frames(const uint8_t *p, size_t n)
{
    static const struct wslay_event_callbacks cb = {
        fz_recv, fz_send, NULL, NULL, NULL, NULL, fz_msg
    };
    struct fz_feed f = { p, n };
    wslay_event_context_ptr ctx;

    if (wslay_event_context_server_init(&ctx, &cb, &f) != 0)
        return;
    wslay_event_config_set_max_recv_msg_length(ctx, FZ_MAX_MSG);
    while (f.n > 0 && wslay_event_want_read(ctx)) {
        if (wslay_event_recv(ctx) != 0 || wslay_event_send(ctx) != 0)
            break;
    }
    wslay_event_context_free(ctx);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = NULL, *tok = NULL;
    struct kr_query q;
    size_t n = 0;
    char *s;

    if (size < 1 || size > 8192)
        return 0;
    if (data[0] % 4 == 3) {
        fz_frames(data + 1, size - 1);
        return 0;
    }
    s = malloc(size);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    switch (data[0] % 4) {
    case 0:
        if (kr_ws_query_parse(s, size - 1, &q, &why) == KAP_OK) {
            if (q.limit < 1 || q.limit > KR_LOG_LIMIT_MAX || q.since < -1
                || (q.denied != 0 && q.denied != 1))
                abort();
        } else if (why == NULL || why[0] == '\0') {
            abort();
        }
        break;
    case 1:
        if (kr_ws_protocols(s, &tok, &n, &why) == KAP_OK) {
            if (tok != NULL && (n == 0 || n > KR_BEARER_MAX || tok < s
                                || tok + n > s + strlen(s)))
                abort();
        } else if (why == NULL || why[0] == '\0') {
            abort();
        }
        break;
    default:
        (void) kr_ws_key_ok(s);
        (void) kr_list_has(s, "upgrade");
        (void) kr_origin_ok(s, "127.0.0.1:19420", 0);
        (void) kr_origin_ok("http://127.0.0.1:19420", s, 1);
        break;
    }
    free(s);
    return 0;
}
