/*
 * kap_tls.h -- TLS server termination on kapd's loop (OpenSSL).
 *
 * A listener module that speaks TLS (remote, or mcp when it listens with
 * TLS) makes one server context per generation from a PEM certificate
 * and key, then wraps each accepted connection:
 *
 *   conf_parse:  keep the file names (kap_conf_path()); read nothing.
 *   init:        ctx = kap_tls_ctx_new(gen, &opts, &err)
 *   accept:      t = kap_tls_new(ctx, c, &handler, state)
 *   ready(t):    handshake done: kap_tls_read() / kap_tls_write()
 *   readable(t): a read that returned KAP_AGAIN may progress: read again
 *   writable(t): a write that returned KAP_AGAIN may progress: write again
 *   end:         kap_tls_shutdown(t), then kap_conn_close(c)
 *
 * The layer owns the libev watchers of c->fd while t exists: the module
 * starts no ev_io of its own on that fd.  OpenSSL's SSL_ERROR_WANT_READ
 * and SSL_ERROR_WANT_WRITE become read and write watchers for whichever
 * direction the blocked call needs (a read may have to wait for the
 * socket to be writable, and a write for it to be readable).  A call that
 * returns KAP_AGAIN arms its callback once; the callback is the signal to
 * call again.  A module that stops reading (its output is full) simply
 * does not call kap_tls_read(): nothing is armed, nothing spins.  Bytes
 * OpenSSL already holds are not seen by libev, so a module reads until
 * KAP_AGAIN (or a short read) before it waits for readable().
 *
 * Only TLS 1.2 and 1.3 are accepted; TLS 1.2 only with ECDHE and AEAD
 * ciphers; no renegotiation, no compression.  ALPN: when opts.alpn lists
 * protocols, a client that offers ALPN gets the first of ours it offers,
 * or a no_application_protocol alert when it offers none of them; a
 * client that offers no ALPN is served (kap_tls_alpn() is then NULL).
 *
 * Failures (a handshake that fails or times out, a read or write error)
 * are logged once per connection by this layer, at info level for what a
 * client can cause, with the client's address; the module does not log
 * them again.  Every callback runs on the loop, never from inside the
 * kap_tls_* call that caused it.
 */
#ifndef KAP_TLS_H
#define KAP_TLS_H

#include <stddef.h>
#include <sys/types.h>

struct kap_gen;
struct kap_conn;
struct kap_err;

/* Handshake (and close_notify) deadline when opts.handshake_timeout is 0. */
#define KAP_TLS_HANDSHAKE_TIMEOUT 10.0

struct kap_tls_ctx;                     /* a server context, opaque */
struct kap_tls;                         /* one connection's TLS, opaque */

struct kap_tls_opts {
    const char         *cert_file;      /* PEM: certificate, then its chain */
    const char         *key_file;       /* PEM private key: a secret file,
                                           under kap_secret's rule (0600 in a
                                           0700 directory, kap_secret.h) */
    double              handshake_timeout; /* seconds; 0: the default */
    const char *const  *alpn;           /* protocols we speak, preferred
                                           first, NULL-terminated ("http/1.1");
                                           NULL: no ALPN */
};

/*
 * Make a server context for generation gen from opts (borrowed for the
 * call; the file names are used as given: resolve them with
 * kap_conf_path() first).  The context belongs to gen's pool and is freed
 * with the generation; connections hold a generation reference, so it
 * outlives them.  Returns NULL with err set when a file cannot be read,
 * the key file is not protected like a secret, the key does not match the
 * certificate, an ALPN name is empty or over 255 bytes, or memory runs
 * out.  Call while configuring (init): it reads files.
 */
struct kap_tls_ctx *kap_tls_ctx_new(struct kap_gen *gen,
                                    const struct kap_tls_opts *opts,
                                    struct kap_err *err);

/*
 * What the layer tells the module.  All callbacks are required except
 * writable (when the module never gets KAP_AGAIN from kap_tls_write()).
 * data is the pointer given to kap_tls_new().
 *
 * ready:    the handshake is done; the module may read and write.
 * readable: a kap_tls_read() that returned KAP_AGAIN may progress.
 * writable: a kap_tls_write() that returned KAP_AGAIN may progress.
 * done:     t has ended without the module asking for it to end now: rc
 *           KAP_ERROR when the handshake failed or timed out (logged),
 *           KAP_OK or KAP_ERROR when a kap_tls_shutdown() that returned
 *           KAP_AGAIN has finished.  The module closes the connection
 *           (kap_conn_close(), which frees t).
 */
struct kap_tls_handler {
    void (*ready)(struct kap_tls *t, void *data);
    void (*readable)(struct kap_tls *t, void *data);
    void (*writable)(struct kap_tls *t, void *data);
    void (*done)(struct kap_tls *t, int rc, void *data);
};

/*
 * Start TLS on c (accepted by the core, nothing read from it yet) with
 * ctx: the handshake runs from the loop, under the context's handshake
 * timeout.  t lives in c->pool: kap_conn_close(c) stops its watchers and
 * frees it (from any callback too).  handler is borrowed for t's lifetime
 * (a static table).  Returns NULL when memory runs out (logged): the
 * caller closes c.
 */
struct kap_tls *kap_tls_new(struct kap_tls_ctx *ctx, struct kap_conn *c,
                            const struct kap_tls_handler *handler,
                            void *data);

/*
 * Read decrypted bytes into buf[0..len) (caller's).  Returns the number
 * read (> 0), 0 when the client sent close_notify, KAP_AGAIN when nothing
 * can be read now (readable() will be called), or KAP_ERROR (logged; a
 * close without close_notify is one): the module closes the connection.
 */
ssize_t kap_tls_read(struct kap_tls *t, void *buf, size_t len);

/*
 * Encrypt and send buf[0..len) (caller's; a retry after KAP_AGAIN may
 * pass the same bytes from another buffer).  Returns the number of bytes
 * taken (> 0, maybe less than len: send the rest next), KAP_AGAIN when
 * none could be sent (writable() will be called), or KAP_ERROR (logged).
 * len 0 returns 0.
 */
ssize_t kap_tls_write(struct kap_tls *t, const void *buf, size_t len);

/*
 * End TLS cleanly: send close_notify (the client's is not waited for).
 * Call it when no kap_tls_write() waits for writable() (everything
 * written has been taken).  Returns KAP_OK when
 * it is sent (done() is not called), KAP_AGAIN when the socket must drain
 * first (done() is called later, within the handshake timeout), or
 * KAP_ERROR (logged).  No read or write after it.
 */
int kap_tls_shutdown(struct kap_tls *t);

/* The protocol ALPN chose ("http/1.1"), NUL-terminated, or NULL. */
const char *kap_tls_alpn(const struct kap_tls *t);
/* The protocol version in use ("TLSv1.3"), static; "" before ready. */
const char *kap_tls_version(const struct kap_tls *t);
/* The connection t runs on. */
struct kap_conn *kap_tls_conn(const struct kap_tls *t);

#endif /* KAP_TLS_H */
