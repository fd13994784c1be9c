/*
 * kap_test_tls_module.c -- the test module "test_tls" (never installed):
 * a TLS listener on the core's TLS layer (kap_tls.h) that answers
 * one HTTP/1.1 request per connection, for t/022-tls-server.t.
 *
 *   test_tls: {
 *       listen = ["127.0.0.1:PORT"];
 *       cert = "tls/cert.pem";          # PEM chain (relative: prefix)
 *       key = "tls/key/key.pem";        # PEM key: 0600 in a 0700 directory
 *       handshake_timeout = 1;          # seconds (default: the layer's)
 *       alpn = ["http/1.1"];            # optional
 *   };
 *
 * Answers, always with Connection: close, then close_notify:
 *   GET /big/N   ->  200, N bytes of "abc...zabc..." (N up to 64 MiB)
 *   anything     ->  200, "tls <version> alpn=<alpn or -> <request line>\n"
 *   a head over 8 KiB, or a client that closes early: closed, no answer.
 */
#define _GNU_SOURCE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_core.h>
#include <kapd/kap_tls.h>

#define TT_NAME     "test_tls"
#define TT_HEAD_MAX 8192
#define TT_BIG_MAX  (64LL * 1024 * 1024)
#define TT_PATTERN  (26 * 2520)         /* 65520 bytes: whole alphabets */

struct tt_conf {
    const char  *cert, *key;
    const char **alpn;
    double       timeout;               /* -1: unset */
    size_t       nlisten;
    struct kap_tls_ctx *ctx;            /* made in init */
};

static char tt_pattern[TT_PATTERN];

static void *
tt_conf_create(struct kap_gen *gen)
{
    struct tt_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf != NULL)
        cf->timeout = -1;
    return cf;
}

static int
tt_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *group,
              struct kap_err *err)
{
    static const char *const keys[] = { "listen", "cert", "key",
                                        "handshake_timeout", "alpn", NULL };
    struct tt_conf *cf = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const char **listen;
    size_t i, n;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, keys, err) != KAP_OK
        || kap_conf_get_strlist(group, "listen", pool, &listen, &n, err)
           != KAP_OK)
        return KAP_ERROR;
    for (i = 0; i < n; i++)
        if (kap_listen_add(gen, TT_NAME, KAP_LISTEN_TCP, listen[i],
                           config_setting_get_member(group, "listen"), err)
            != KAP_OK)
            return KAP_ERROR;
    cf->nlisten = n;
    if (kap_conf_get_str(group, "cert", pool, &cf->cert, err) == KAP_ERROR
        || kap_conf_get_str(group, "key", pool, &cf->key, err) == KAP_ERROR
        || kap_conf_get_secs(group, "handshake_timeout", &cf->timeout, err)
           == KAP_ERROR
        || kap_conf_get_strlist(group, "alpn", pool, &cf->alpn, NULL, err)
           == KAP_ERROR)
        return KAP_ERROR;
    if (cf->cert != NULL && (cf->cert = kap_conf_path(gen, cf->cert)) == NULL)
        return KAP_ERROR;
    if (cf->key != NULL && (cf->key = kap_conf_path(gen, cf->key)) == NULL)
        return KAP_ERROR;
    return KAP_OK;
}

static int
tt_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct tt_conf *cf = conf;

    (void) gen;
    if (cf->nlisten == 0 || cf->cert == NULL || cf->key == NULL) {
        kap_err_set(err, "test_tls: listen, cert and key are required");
        return KAP_ERROR;
    }
    if (cf->timeout < 0)
        cf->timeout = 0;                /* the layer's default */
    return KAP_OK;
}

/* the context is made when the generation goes live: it reads files */
static int
tt_init(struct kap_gen *gen, void *conf)
{
    struct tt_conf *cf = conf;
    struct kap_tls_opts o;
    struct kap_err err;
    size_t i;

    for (i = 0; i < sizeof(tt_pattern); i++)
        tt_pattern[i] = (char) ('a' + i % 26);
    memset(&err, 0, sizeof(err));
    memset(&o, 0, sizeof(o));
    o.cert_file = cf->cert;
    o.key_file = cf->key;
    o.handshake_timeout = cf->timeout;
    o.alpn = cf->alpn;
    cf->ctx = kap_tls_ctx_new(gen, &o, &err);
    if (cf->ctx == NULL) {
        KAP_LOG(KAP_LOG_ERR, TT_NAME, 0, "%s", err.msg);
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- one connection ------------------------------------------------------ */

struct tt_conn {
    struct kap_conn *c;
    struct kap_tls  *t;
    char             head[TT_HEAD_MAX];
    size_t           headlen;
    char             out[TT_HEAD_MAX + 256];  /* response head, or text */
    size_t           outlen, outoff;
    long long        body, sent;        /* /big/N: pattern bytes */
    int              answering;
};

static void
tt_close(struct tt_conn *tc)
{
    kap_conn_close(tc->c);              /* frees tc and the TLS state */
}

/* all sent: close_notify, then close (now or when done() comes) */
static void
tt_finish(struct tt_conn *tc)
{
    if (kap_tls_shutdown(tc->t) != KAP_AGAIN)
        tt_close(tc);
}

/* send what is left; then finish (or wait for writable(), or closed) */
static void
tt_send(struct tt_conn *tc)
{
    ssize_t n;
    size_t  off, len;

    while (tc->outoff < tc->outlen || tc->sent < tc->body) {
        if (tc->outoff < tc->outlen) {
            n = kap_tls_write(tc->t, tc->out + tc->outoff,
                              tc->outlen - tc->outoff);
        } else {
            off = (size_t) (tc->sent % 26);
            len = sizeof(tt_pattern) - off;
            if ((long long) len > tc->body - tc->sent)
                len = (size_t) (tc->body - tc->sent);
            n = kap_tls_write(tc->t, tt_pattern + off, len);
        }
        if (n == KAP_AGAIN)
            return;                     /* writable() calls us again */
        if (n <= 0) {
            tt_close(tc);               /* logged by the layer */
            return;
        }
        if (tc->outoff < tc->outlen)
            tc->outoff += (size_t) n;
        else
            tc->sent += n;
    }
    tt_finish(tc);
}

static void
tt_answer(struct tt_conn *tc)
{
    const char *alpn = kap_tls_alpn(tc->t);
    char *eol = memchr(tc->head, '\r', tc->headlen);
    size_t llen = eol ? (size_t) (eol - tc->head) : 0;
    char body[TT_HEAD_MAX + 128];
    int n, blen = 0;

    tc->answering = 1;
    if (llen > 9 && strncmp(tc->head, "GET /big/", 9) == 0) {
        tc->body = strtoll(tc->head + 9, NULL, 10);
        if (tc->body < 0 || tc->body > TT_BIG_MAX)
            tc->body = 0;
    } else {
        blen = snprintf(body, sizeof(body), "tls %s alpn=%s %.*s\n",
                        kap_tls_version(tc->t), alpn ? alpn : "-",
                        (int) llen, tc->head);
        if (blen < 0)
            blen = 0;
    }
    n = snprintf(tc->out, sizeof(tc->out), "HTTP/1.1 200 OK\r\n"
                 "Content-Type: text/plain\r\nContent-Length: %lld\r\n"
                 "Connection: close\r\n\r\n%s",
                 tc->body > 0 ? tc->body : (long long) blen,
                 tc->body > 0 ? "" : body);
    tc->outlen = n < 0 ? 0 : (size_t) n;
    tc->outoff = 0;
    tt_send(tc);
}

/* read until the end of the request head, then answer */
static void
tt_readable(struct kap_tls *t, void *data)
{
    struct tt_conn *tc = data;
    ssize_t n;

    (void) t;
    while (!tc->answering) {          /* data after the head: ignored */
        if (tc->headlen == sizeof(tc->head)) {
            tt_close(tc);               /* head too long */
            return;
        }
        n = kap_tls_read(tc->t, tc->head + tc->headlen,
                         sizeof(tc->head) - tc->headlen);
        if (n == KAP_AGAIN)
            return;
        if (n <= 0) {
            tt_close(tc);               /* closed early, or logged error */
            return;
        }
        tc->headlen += (size_t) n;
        if (tc->headlen >= 4
            && memmem(tc->head, tc->headlen, "\r\n\r\n", 4) != NULL) {
            tt_answer(tc);              /* may close: tc may be gone */
            return;
        }
    }
}

static void
tt_ready(struct kap_tls *t, void *data)
{
    tt_readable(t, data);
}

static void
tt_writable(struct kap_tls *t, void *data)
{
    (void) t;
    tt_send(data);
}

static void
tt_done(struct kap_tls *t, int rc, void *data)
{
    (void) t;
    (void) rc;
    tt_close(data);
}

static const struct kap_tls_handler tt_handler = {
    .ready = tt_ready,
    .readable = tt_readable,
    .writable = tt_writable,
    .done = tt_done,
};

static void
tt_accept(struct kap_conn *c)
{
    struct tt_conf *cf = c->conf;
    struct tt_conn *tc = kap_palloc(c->pool, sizeof(*tc));

    if (tc == NULL) {
        kap_conn_close(c);
        return;
    }
    tc->c = c;
    c->data = tc;
    tc->t = kap_tls_new(cf->ctx, c, &tt_handler, tc);
    if (tc->t == NULL)
        kap_conn_close(c);
}

static const struct kap_listener_ops tt_listener = {
    .accept = tt_accept,
};

const struct kap_module kap_test_tls_module = {
    KAP_MODULE_V1(TT_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER,
    .conf_create = tt_conf_create,
    .conf_parse = tt_conf_parse,
    .conf_check = tt_conf_check,
    .init = tt_init,
    .listener = &tt_listener,
};
