/*
 * kapd_tls.c -- TLS server termination on the loop (kap_tls.h).
 *
 * Context.  One SSL_CTX per call of kap_tls_ctx_new(), freed by a cleanup
 * of the generation's pool: TLS_server_method() pinned to TLS 1.2 and
 * later, ECDHE+AEAD ciphers for 1.2 (1.3's suites are all AEAD), no
 * renegotiation or compression, no server-side session cache (tickets
 * still resume).  The certificate chain is loaded by OpenSSL from its
 * file; the private key is read by us through kapd_secret_open() (the
 * secret files' rule), parsed from memory and the copy wiped.
 *
 * Connection.  The SSL object reads and writes c->fd through a socket
 * BIO that does not own the fd.  Two watchers on the fd (read, write)
 * are started from what is blocked: the handshake, a kap_tls_read(), a
 * kap_tls_write() or the shutdown, each waiting for EV_READ or EV_WRITE
 * as OpenSSL said (want_*).  When the fd is ready, the blocked operations
 * waiting for that event are retried (handshake, shutdown) or their
 * callback is called (read, write) after their want is cleared.  A
 * callback may close the connection, which runs our pool cleanup; the
 * `alive` word on the dispatcher's stack tells it to touch nothing more.
 *
 * Errors.  OpenSSL's thread error queue is cleared before each SSL call
 * and drained after a failure into the one log line of the connection.
 */
#include "kapd.h"
#include "kapd_secret.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include <kapd/kap_tls.h>

#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"
#define ALPN_WIRE_MAX 256               /* our ALPN list, wire format */

struct kap_tls_ctx {
    SSL_CTX        *ssl;
    double          timeout;            /* handshake and shutdown */
    unsigned char   alpn[ALPN_WIRE_MAX];
    size_t          alpn_len;           /* 0: no ALPN */
};

enum tls_state {
    TLS_HANDSHAKE = 0,
    TLS_OPEN,
    TLS_SHUTDOWN,                       /* close_notify waiting to go out */
    TLS_ENDED                           /* failed or shut down: no more I/O */
};

struct kap_tls {
    struct kap_tls_ctx            *ctx;
    struct kap_conn               *c;
    SSL                           *ssl;
    const struct kap_tls_handler  *h;
    void                          *data;
    ev_io                          rd, wr;
    ev_timer                       timer;  /* handshake, shutdown */
    int                            state;  /* enum tls_state */
    int                            want_hs;   /* EV_READ/EV_WRITE or 0 */
    int                            want_rd;   /* for a blocked read */
    int                            want_wr;   /* for a blocked write */
    int                            logged;    /* failure logged */
    const char                    *alpn;      /* chosen, in c->pool */
    int                           *alive;     /* dispatcher's, or NULL */
};

/* ---- the context --------------------------------------------------------- */

static void
tls_ctx_free(void *data)
{
    struct kap_tls_ctx *x = data;

    SSL_CTX_free(x->ssl);
}

/* the first error in OpenSSL's queue as text (the queue is emptied) */
static const char *
tls_err_text(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0)
        snprintf(buf, len, "unknown error");
    else
        ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

static int
tls_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                const unsigned char *in, unsigned int inlen, void *arg)
{
    struct kap_tls_ctx *x = arg;
    unsigned char *sel;

    (void) ssl;
    if (SSL_select_next_proto(&sel, outlen, x->alpn, (unsigned) x->alpn_len,
                              in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;     /* no_application_protocol */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static int
tls_ctx_alpn(struct kap_tls_ctx *x, const char *const *alpn,
             struct kap_err *err)
{
    size_t n;

    for (; alpn != NULL && *alpn != NULL; alpn++) {
        n = strlen(*alpn);
        if (n == 0 || n > 255) {
            kap_err_set(err, "TLS: ALPN protocol name \"%s\" must be 1 to "
                        "255 bytes", *alpn);
            return KAP_ERROR;
        }
        if (x->alpn_len + 1 + n > sizeof(x->alpn)) {
            kap_err_set(err, "TLS: the ALPN list is longer than %zu bytes",
                        sizeof(x->alpn));
            return KAP_ERROR;
        }
        x->alpn[x->alpn_len++] = (unsigned char) n;
        memcpy(x->alpn + x->alpn_len, *alpn, n);
        x->alpn_len += n;
    }
    if (x->alpn_len > 0)
        SSL_CTX_set_alpn_select_cb(x->ssl, tls_alpn_select, x);
    return KAP_OK;
}

/* the certificate chain file: readable, then loaded by OpenSSL */
static int
tls_ctx_cert(struct kap_tls_ctx *x, const char *path, struct kap_err *err)
{
    char why[256];

    if (path == NULL || path[0] == '\0') {
        kap_err_set(err, "TLS: no certificate file given");
        return KAP_ERROR;
    }
    if (access(path, R_OK) != 0) {
        kap_err_set(err, "TLS certificate file %s: %s", path,
                    strerror(errno));
        return KAP_ERROR;
    }
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(x->ssl, path) != 1) {
        kap_err_set(err, "TLS certificate file %s: not a PEM certificate "
                    "chain (%s)", path, tls_err_text(why, sizeof(why)));
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* the private key: a secret file, parsed from a wiped copy */
static int
tls_ctx_key(struct kap_tls_ctx *x, const char *path, const char *cert,
            struct kap_err *err)
{
    char         why[256];
    struct stat  st;
    EVP_PKEY    *pk = NULL;
    BIO         *bio = NULL;
    char        *buf;
    size_t       got = 0;
    ssize_t      n;
    int          fd, rc = KAP_ERROR;

    fd = kapd_secret_open("TLS key", path, &st, err);
    if (fd < 0)
        return KAP_ERROR;
    buf = malloc((size_t) st.st_size + 1);
    if (buf == NULL) {
        kap_err_set(err, "TLS key file %s: out of memory", path);
        close(fd);
        return KAP_ERROR;
    }
    while (got < (size_t) st.st_size) {
        n = read(fd, buf + got, (size_t) st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    close(fd);
    if (got != (size_t) st.st_size) {
        kap_err_set(err, "TLS key file %s: cannot read it whole", path);
        goto out;
    }
    ERR_clear_error();
    bio = BIO_new_mem_buf(buf, (int) got);
    if (bio != NULL)
        pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (pk == NULL) {
        kap_err_set(err, "TLS key file %s: not a PEM private key without a "
                    "passphrase (%s)", path, tls_err_text(why, sizeof(why)));
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(x->ssl, pk) != 1
        || SSL_CTX_check_private_key(x->ssl) != 1) {
        kap_err_set(err, "TLS key file %s does not match the certificate in "
                    "%s (%s)", path, cert, tls_err_text(why, sizeof(why)));
        goto out;
    }
    rc = KAP_OK;
out:
    EVP_PKEY_free(pk);
    BIO_free(bio);
    kap_secret_wipe(buf, (size_t) st.st_size + 1);
    free(buf);
    ERR_clear_error();
    return rc;
}

struct kap_tls_ctx *
kap_tls_ctx_new(struct kap_gen *gen, const struct kap_tls_opts *opts,
                struct kap_err *err)
{
    struct kap_pool    *pool = kap_gen_pool(gen);
    struct kap_tls_ctx *x;
    char                why[256];

    if (opts == NULL || opts->handshake_timeout < 0) {
        kap_err_set(err, "TLS: %s", opts == NULL ? "no options"
                    : "the handshake timeout must not be negative");
        return NULL;
    }
    x = kap_palloc(pool, sizeof(*x));
    if (x == NULL) {
        kap_err_set(err, "TLS: out of memory");
        return NULL;
    }
    ERR_clear_error();
    x->ssl = SSL_CTX_new(TLS_server_method());
    if (x->ssl == NULL
        || kap_pool_cleanup_add(pool, tls_ctx_free, x) != KAP_OK) {
        kap_err_set(err, "TLS: cannot make a context (%s)",
                    tls_err_text(why, sizeof(why)));
        SSL_CTX_free(x->ssl);
        return NULL;
    }
    x->timeout = opts->handshake_timeout > 0 ? opts->handshake_timeout
                                             : KAP_TLS_HANDSHAKE_TIMEOUT;
    SSL_CTX_set_min_proto_version(x->ssl, TLS1_2_VERSION);
    SSL_CTX_set_options(x->ssl, SSL_OP_NO_RENEGOTIATION
                                | SSL_OP_NO_COMPRESSION
                                | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(x->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE
                             | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                             | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(x->ssl, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_cipher_list(x->ssl, TLS12_CIPHERS) != 1) {
        kap_err_set(err, "TLS: cannot set the ciphers (%s)",
                    tls_err_text(why, sizeof(why)));
        return NULL;
    }
    if (tls_ctx_cert(x, opts->cert_file, err) != KAP_OK
        || tls_ctx_key(x, opts->key_file, opts->cert_file, err) != KAP_OK
        || tls_ctx_alpn(x, opts->alpn, err) != KAP_OK)
        return NULL;
    return x;
}

/* ---- one connection ------------------------------------------------------ */

/* log the connection's failure, once; level by who caused it */
static void
tls_fail_log(struct kap_tls *t, int level, const char *what, const char *why)
{
    if (t->logged)
        return;
    t->logged = 1;
    KAP_LOG(level, t->c->module->name, t->c->id, "TLS %s: %s, client %s",
            what, why, t->c->peer_text);
}

/* why an SSL call failed with code e (after ret), for the log */
static const char *
tls_why(int e, char *buf, size_t len)
{
    unsigned long q = ERR_peek_error();

    if (e == SSL_ERROR_SYSCALL && q == 0) {
        snprintf(buf, len, "%s", errno == 0 ? "the client closed the "
                 "connection" : strerror(errno));
        return buf;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return "the client closed TLS";
    if (ERR_GET_LIB(q) == ERR_LIB_SSL
        && ERR_GET_REASON(q) == SSL_R_HTTP_REQUEST) {
        ERR_clear_error();
        return "not TLS: a plain HTTP request";
    }
    if (ERR_GET_LIB(q) == ERR_LIB_SSL
        && ERR_GET_REASON(q) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return "the client closed the connection without close_notify";
    }
    return tls_err_text(buf, len);
}

/* start or stop the two watchers as the blocked operations need */
static void
tls_sync(struct kap_tls *t)
{
    int ev = t->want_hs | t->want_rd | t->want_wr;

    if (ev & EV_READ)
        ev_io_start(kap_loop(), &t->rd);
    else
        ev_io_stop(kap_loop(), &t->rd);
    if (ev & EV_WRITE)
        ev_io_start(kap_loop(), &t->wr);
    else
        ev_io_stop(kap_loop(), &t->wr);
}

static void
tls_stop(struct kap_tls *t)
{
    t->want_hs = t->want_rd = t->want_wr = 0;
    tls_sync(t);
    ev_timer_stop(kap_loop(), &t->timer);
}

/* pool cleanup: kap_conn_close() runs it before the fd is closed */
static void
tls_free(void *data)
{
    struct kap_tls *t = data;

    tls_stop(t);
    if (t->alive != NULL)
        *t->alive = 0;
    SSL_free(t->ssl);
    t->ssl = NULL;
}

/* the event a want code asks for, or 0 for a failure */
static int
tls_want(int e)
{
    return e == SSL_ERROR_WANT_READ ? EV_READ
         : e == SSL_ERROR_WANT_WRITE ? EV_WRITE : 0;
}

/* end t from the loop and tell the module (which then closes c) */
static void
tls_end(struct kap_tls *t, int rc)
{
    t->state = TLS_ENDED;
    tls_stop(t);
    t->h->done(t, rc, t->data);
}

/* the protocol ALPN chose, kept as a C string (NULL: none, or no memory) */
static void
tls_alpn_keep(struct kap_tls *t)
{
    const unsigned char *p;
    unsigned int         n;

    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (p != NULL && n > 0)
        t->alpn = kap_pstrndup(t->c->pool, (const char *) p, n);
}

static void
tls_handshake(struct kap_tls *t)
{
    char buf[256];
    int  ret, e;

    ERR_clear_error();
    errno = 0;
    ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->state = TLS_OPEN;
        t->want_hs = 0;
        tls_alpn_keep(t);
        ev_timer_stop(kap_loop(), &t->timer);
        tls_sync(t);
        KAP_DEBUG(t->c->module->name, t->c->id, "TLS %s handshake done",
                  SSL_get_version(t->ssl));
        t->h->ready(t, t->data);
        return;
    }
    e = SSL_get_error(t->ssl, ret);
    t->want_hs = tls_want(e);
    if (t->want_hs != 0) {
        tls_sync(t);
        return;
    }
    tls_fail_log(t, KAP_LOG_INFO, "handshake failed", tls_why(e, buf,
                 sizeof(buf)));
    SSL_set_quiet_shutdown(t->ssl, 1);
    tls_end(t, KAP_ERROR);
}

/* one SSL_shutdown step: KAP_OK sent, KAP_AGAIN blocked, KAP_ERROR */
static int
tls_shutdown_step(struct kap_tls *t)
{
    char buf[256];
    int  ret, e;

    ERR_clear_error();
    errno = 0;
    ret = SSL_shutdown(t->ssl);
    if (ret >= 0) {                     /* 0: sent, the client's not seen */
        t->state = TLS_ENDED;
        tls_stop(t);
        return KAP_OK;
    }
    e = SSL_get_error(t->ssl, ret);
    t->want_hs = tls_want(e);
    if (t->want_hs != 0) {
        tls_sync(t);
        return KAP_AGAIN;
    }
    tls_fail_log(t, KAP_LOG_INFO, "shutdown failed", tls_why(e, buf,
                 sizeof(buf)));
    t->state = TLS_ENDED;
    tls_stop(t);
    return KAP_ERROR;
}

/* the fd is ready for ev: retry or call back what waits for it */
static void
tls_dispatch(struct kap_tls *t, int ev)
{
    int alive = 1;
    int rc;

    if (t->state == TLS_HANDSHAKE) {
        tls_handshake(t);
        return;
    }
    if (t->state == TLS_SHUTDOWN) {
        rc = tls_shutdown_step(t);
        if (rc != KAP_AGAIN)
            tls_end(t, rc);
        return;
    }
    t->alive = &alive;
    if (t->want_rd & ev) {
        t->want_rd = 0;
        tls_sync(t);
        t->h->readable(t, t->data);
        if (!alive)
            return;
    }
    if ((t->want_wr & ev) && t->state == TLS_OPEN) {
        t->want_wr = 0;
        tls_sync(t);
        if (t->h->writable != NULL)
            t->h->writable(t, t->data);
        if (!alive)
            return;
    }
    t->alive = NULL;
}

static void
tls_rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    tls_dispatch(w->data, EV_READ);
}

static void
tls_wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    tls_dispatch(w->data, EV_WRITE);
}

static void
tls_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct kap_tls *t = w->data;
    char why[64];

    (void) loop;
    (void) revents;
    snprintf(why, sizeof(why), "no progress within %gs",
             t->ctx->timeout);
    tls_fail_log(t, KAP_LOG_INFO, t->state == TLS_HANDSHAKE
                 ? "handshake timed out" : "shutdown timed out", why);
    SSL_set_quiet_shutdown(t->ssl, 1);
    tls_end(t, KAP_ERROR);
}

struct kap_tls *
kap_tls_new(struct kap_tls_ctx *ctx, struct kap_conn *c,
            const struct kap_tls_handler *handler, void *data)
{
    struct kap_tls *t;

    t = kap_palloc(c->pool, sizeof(*t));
    if (t == NULL)
        goto nomem;
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl);
    if (t->ssl == NULL)
        goto nomem;
    if (kap_pool_cleanup_add(c->pool, tls_free, t) != KAP_OK) {
        SSL_free(t->ssl);
        goto nomem;
    }
    if (SSL_set_fd(t->ssl, c->fd) != 1)
        goto nomem;
    SSL_set_accept_state(t->ssl);
    t->ctx = ctx;
    t->c = c;
    t->h = handler;
    t->data = data;
    ev_io_init(&t->rd, tls_rd_cb, c->fd, EV_READ);
    ev_io_init(&t->wr, tls_wr_cb, c->fd, EV_WRITE);
    ev_timer_init(&t->timer, tls_timer_cb, ctx->timeout, 0.);
    t->rd.data = t->wr.data = t->timer.data = t;
    t->state = TLS_HANDSHAKE;
    t->want_hs = EV_READ;               /* the ClientHello comes first */
    tls_sync(t);
    ev_timer_start(kap_loop(), &t->timer);
    return t;
nomem:
    ERR_clear_error();
    KAP_LOG(KAP_LOG_ERR, c->module->name, c->id, "TLS: out of memory");
    return NULL;
}

/*
 * One SSL_read (rbuf) or SSL_write (wbuf) of up to len bytes: the bytes
 * moved, 0 at the client's close_notify (reads) or for len 0, KAP_AGAIN
 * with the direction's want armed, or KAP_ERROR (logged; no more I/O).
 */
static ssize_t
tls_io(struct kap_tls *t, void *rbuf, const void *wbuf, size_t len)
{
    int *want = rbuf != NULL ? &t->want_rd : &t->want_wr;
    int  n = len > INT_MAX ? INT_MAX : (int) len;
    char why[256];
    int  ret, e;

    if (t->state != TLS_OPEN)
        return KAP_ERROR;
    if (len == 0)
        return 0;
    ERR_clear_error();
    errno = 0;
    ret = rbuf != NULL ? SSL_read(t->ssl, rbuf, n)
                       : SSL_write(t->ssl, wbuf, n);
    if (ret > 0)
        return ret;
    e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_ZERO_RETURN && rbuf != NULL)
        return 0;
    *want = tls_want(e);
    if (*want != 0) {
        tls_sync(t);
        return KAP_AGAIN;
    }
    tls_fail_log(t, KAP_LOG_INFO, rbuf != NULL ? "read failed"
                 : "write failed", tls_why(e, why, sizeof(why)));
    SSL_set_quiet_shutdown(t->ssl, 1);
    t->state = TLS_ENDED;
    tls_stop(t);
    return KAP_ERROR;
}

ssize_t
kap_tls_read(struct kap_tls *t, void *buf, size_t len)
{
    return buf == NULL ? KAP_ERROR : tls_io(t, buf, NULL, len);
}

ssize_t
kap_tls_write(struct kap_tls *t, const void *buf, size_t len)
{
    return buf == NULL ? KAP_ERROR : tls_io(t, NULL, buf, len);
}

int
kap_tls_shutdown(struct kap_tls *t)
{
    int rc;

    if (t->state != TLS_OPEN)
        return t->state == TLS_SHUTDOWN ? KAP_AGAIN : KAP_ERROR;
    t->state = TLS_SHUTDOWN;
    t->want_rd = t->want_wr = 0;
    rc = tls_shutdown_step(t);
    if (rc == KAP_AGAIN)
        ev_timer_start(kap_loop(), &t->timer);
    return rc;
}

const char *
kap_tls_alpn(const struct kap_tls *t)
{
    return t->alpn;
}

const char *
kap_tls_version(const struct kap_tls *t)
{
    return t->state == TLS_HANDSHAKE || t->ssl == NULL ? ""
           : SSL_get_version(t->ssl);
}

struct kap_conn *
kap_tls_conn(const struct kap_tls *t)
{
    return t->c;
}
