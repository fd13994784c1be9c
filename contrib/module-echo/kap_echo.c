/*
 * kap_echo.c -- a minimal third-party kapd LISTENER module, built out of
 * tree: a line echo server that asks the policy chain before it serves a
 * client.
 *
 *   kapd: { load = ["echo"]; module_path = ["/dir/of/kap_echo.so"]; };
 *   echo: { listen = ["127.0.0.1:7007"]; max_line = 1024; timeout = 60; };
 *
 * The parts, in the order kapd uses them:
 *
 * 1. Configuration (echo_conf_create/parse/check).  Pure functions: they
 *    run for `kapd -t` and for reloads that may be thrown away, so no
 *    sockets and no printing.  conf_parse declares each listen address
 *    with kap_listen_add(); the core binds it later, when the generation
 *    goes live, and keeps the socket across reloads that keep the address.
 *    Everything kept is copied into the generation pool.
 *
 * 2. accept (echo_accept).  The core owns the listening socket and
 *    accept(2); it hands us a struct kap_conn with a nonblocking fd, its
 *    own pool (c->pool), the generation it was accepted in (c->gen) and
 *    our conf in that generation (c->conf).  We allocate our state from
 *    c->pool, embed the libev watchers in it (a read and a write ev_io,
 *    an idle ev_timer) and register a pool cleanup that stops them.  From
 *    then on every resource of the connection lives in c->pool, and one
 *    call, kap_conn_close(c), releases all of it: cleanups (reverse
 *    order), memory, the fd, the generation reference.
 *
 * 3. One policy question per connection (echo_ask).  A protocol module
 *    never decides: the first line the client sends becomes the subject
 *    of a KAP_REQ_TEST question (r->client is the peer address, so a
 *    policy can judge either).  kap_policy_check() answers now (KAP_OK)
 *    or later (KAP_AGAIN: echo_decided is called from the loop; we stop
 *    reading meanwhile).  The core audits the decision; a denied client
 *    gets one "DENIED <by> <reason>" line and is closed.  An allowed one
 *    gets that first line and every later line echoed back.
 *
 * 4. Our own refusal (echo_refuse_long).  A line longer than
 *    echo.max_line is malformed input, not policy: we make a request and
 *    kap_req_refuse() it, and the core audits it once, decided_by "echo",
 *    which observe mode never lifts.  A module never writes "decision"
 *    audit events itself.
 *
 * 5. Output and closing (echo_flush, echo_close).  write() may be partial:
 *    the rest waits in the out buffer behind the write watcher, and we do
 *    not read while it is there (a client that does not read cannot make
 *    us buffer).  Every path that ends the connection goes through
 *    kap_conn_close(); after it, the state is gone.
 *
 * One thread: every callback runs on kapd's loop (kap_loop()) and must
 * not block.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <kapd/kap_core.h>

#define ECHO_NAME        "echo"
#define ECHO_DEF_LINE    1024      /* echo.max_line: bytes, without "\n" */
#define ECHO_DEF_TIMEOUT 60.0      /* echo.timeout: idle seconds */

/* ---- 1. configuration --------------------------------------------------- */

struct echo_conf {
    long long   max_line;          /* -1 until conf_check */
    double      timeout;           /* -1 until conf_check */
    size_t      nlisten;           /* addresses declared */
};

static void *
echo_conf_create(struct kap_gen *gen)
{
    struct echo_conf *cf = kap_palloc(kap_gen_pool(gen), sizeof(*cf));

    if (cf == NULL)
        return NULL;
    cf->max_line = -1;             /* "unset": defaults come in conf_check */
    cf->timeout = -1;
    return cf;
}

/* group is our top-level `echo` group, or NULL when the file has none */
static int
echo_conf_parse(struct kap_gen *gen, void *conf, const config_setting_t *group,
                struct kap_err *err)
{
    static const char *const keys[] = { "listen", "max_line", "timeout",
                                        NULL };
    struct echo_conf *cf = conf;
    const char **listen;
    size_t i, n;
    int rc;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, keys, err) != KAP_OK)
        return KAP_ERROR;
    rc = kap_conf_get_strlist(group, "listen", kap_gen_pool(gen), &listen,
                              &n, err);
    if (rc == KAP_ERROR)
        return KAP_ERROR;
    /* declare, do not bind: the core binds when the generation goes live */
    for (i = 0; rc == KAP_OK && i < n; i++)
        if (kap_listen_add(gen, ECHO_NAME, KAP_LISTEN_TCP, listen[i],
                           config_setting_get_member(group, "listen"), err)
            != KAP_OK)
            return KAP_ERROR;
    cf->nlisten = rc == KAP_OK ? n : 0;
    if (kap_conf_get_int(group, "max_line", 64, 65536, &cf->max_line, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_secs(group, "timeout", &cf->timeout, err) == KAP_ERROR)
        return KAP_ERROR;
    return KAP_OK;
}

static int
echo_conf_check(struct kap_gen *gen, void *conf, struct kap_err *err)
{
    struct echo_conf *cf = conf;

    (void) gen;
    if (cf->nlisten == 0) {
        kap_err_set(err, "echo: no listener: set echo.listen, e.g. "
                    "[\"127.0.0.1:7007\"]");
        return KAP_ERROR;
    }
    if (cf->max_line < 0)
        cf->max_line = ECHO_DEF_LINE;
    if (cf->timeout < 0)
        cf->timeout = ECHO_DEF_TIMEOUT;
    if (cf->timeout == 0) {
        kap_err_set(err, "echo.timeout must be more than 0");
        return KAP_ERROR;
    }
    return KAP_OK;
}

/* ---- 2. one connection -------------------------------------------------- */

enum echo_state {
    ECHO_FIRST = 0,                /* waiting for the first line */
    ECHO_ASKING,                   /* the policy question is pending */
    ECHO_ECHOING,                  /* allowed: echo every line */
    ECHO_CLOSING                   /* close once the out buffer is sent */
};

struct echo_conn {
    struct kap_conn  *c;
    ev_io             rd, wr;      /* embedded: no allocation, no free */
    ev_timer          idle;
    int               state;       /* enum echo_state */
    size_t            cap;         /* size of in and out: max_line + 1 */
    char             *in;          /* c->pool: bytes read, not yet used */
    size_t            inlen;
    char             *out;         /* c->pool: bytes to send */
    size_t            outlen, outoff;
};

static void echo_process(struct echo_conn *ec);

/* pool cleanup: kap_conn_close() runs it before the fd is closed */
static void
echo_stop(void *data)
{
    struct echo_conn *ec = data;

    ev_io_stop(kap_loop(), &ec->rd);
    ev_io_stop(kap_loop(), &ec->wr);
    ev_timer_stop(kap_loop(), &ec->idle);
}

/* the only way out: after this, ec and ec->c are gone */
static void
echo_close(struct echo_conn *ec, const char *why)
{
    KAP_DEBUG(ECHO_NAME, ec->c->id, "close: %s", why);
    kap_conn_close(ec->c);         /* runs echo_stop, cancels a pending
                                      question, frees c->pool */
}

/*
 * Send what is in the out buffer.  Returns 1 when all is sent, 0 when the
 * socket is full (the write watcher takes over), -1 when ec is closed.
 */
static int
echo_flush(struct echo_conn *ec)
{
    while (ec->outoff < ec->outlen) {
        ssize_t n = write(ec->c->fd, ec->out + ec->outoff,
                          ec->outlen - ec->outoff);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_stop(kap_loop(), &ec->rd);   /* no reading meanwhile */
            ev_io_start(kap_loop(), &ec->wr);
            return 0;
        }
        if (n <= 0) {
            echo_close(ec, "write failed");
            return -1;
        }
        ec->outoff += (size_t) n;
    }
    ec->outoff = ec->outlen = 0;
    ev_io_stop(kap_loop(), &ec->wr);
    if (ec->state == ECHO_CLOSING) {
        echo_close(ec, "done");
        return -1;
    }
    return 1;
}

/* queue one line (truncated to the buffer) and send it */
static int
echo_say(struct echo_conn *ec, const char *s, size_t len)
{
    if (len > ec->cap - 1)
        len = ec->cap - 1;
    memcpy(ec->out, s, len);
    ec->out[len] = '\n';
    ec->outlen = len + 1;
    ec->outoff = 0;
    return echo_flush(ec);
}

static void
echo_wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct echo_conn *ec = w->data;

    (void) loop;
    (void) revents;
    if (echo_flush(ec) == 1) {
        ev_io_start(kap_loop(), &ec->rd);
        echo_process(ec);          /* lines that came in meanwhile */
    }
}

static void
echo_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    echo_close(w->data, "idle timeout");
}

/* ---- 3. the policy question --------------------------------------------- */

/* the decision: now (called by echo_ask) or later (by the core) */
static void
echo_decided(struct kap_req *r, void *data)
{
    struct echo_conn *ec = data;
    char msg[512];
    int n;

    if (r->verdict != KAP_ALLOW) {
        n = snprintf(msg, sizeof(msg), "DENIED %s %s",
                     r->decided_by ? r->decided_by : "-",
                     r->reason ? r->reason : "");
        ec->state = ECHO_CLOSING;
        echo_say(ec, msg, n < 0 ? 0 : (size_t) n);
        return;                    /* closed once the line is sent */
    }
    ec->state = ECHO_ECHOING;
    ev_io_start(kap_loop(), &ec->rd);
    ev_timer_again(kap_loop(), &ec->idle);
    echo_process(ec);              /* echoes the first line, and the rest */
}

/* ask about the first line (len bytes at ec->in, without "\r\n") */
static void
echo_ask(struct echo_conn *ec, size_t len)
{
    struct kap_conn *c = ec->c;
    struct kap_req *r;
    char *subject;

    /* the request lives in c->pool: closing c cancels a pending check */
    subject = kap_pstrndup(c->pool, ec->in, len);
    r = subject ? kap_req_new(c->gen, c->pool, KAP_REQ_TEST, ECHO_NAME,
                              subject) : NULL;
    if (r == NULL) {
        KAP_LOG(KAP_LOG_ERR, ECHO_NAME, c->id, "out of memory");
        echo_close(ec, "out of memory");
        return;
    }
    r->conn = c;
    r->client = c->peer_text;
    r->detail = "first line";
    ec->state = ECHO_ASKING;
    ev_io_stop(kap_loop(), &ec->rd);   /* one question at a time */
    ev_timer_stop(kap_loop(), &ec->idle);
    if (kap_policy_check(r, echo_decided, ec) == KAP_OK)
        echo_decided(r, ec);       /* decided now: done is never called */
    /* KAP_AGAIN: echo_decided runs later, from the loop */
}

/* ---- 4. our own refusal ------------------------------------------------- */

static void
echo_refuse_long(struct echo_conn *ec)
{
    static const char msg[] = "ERR line too long";
    struct kap_conn *c = ec->c;
    struct echo_conf *cf = c->conf;
    struct kap_req *r;
    char reason[96];

    /* a decision like any other: the core audits it (decided_by "echo") */
    r = kap_req_new(c->gen, c->pool, KAP_REQ_TEST, ECHO_NAME, c->peer_text);
    if (r != NULL) {
        r->conn = c;
        r->client = c->peer_text;
        snprintf(reason, sizeof(reason), "line longer than echo.max_line "
                 "(%lld bytes)", cf->max_line);
        kap_req_refuse(r, reason);
    }
    ec->state = ECHO_CLOSING;
    ev_io_stop(kap_loop(), &ec->rd);
    echo_say(ec, msg, sizeof(msg) - 1);
}

/* ---- 5. reading lines --------------------------------------------------- */

/* use the complete lines in ec->in while nothing else is in progress */
static void
echo_process(struct echo_conn *ec)
{
    char *nl;
    size_t n, len;

    while ((ec->state == ECHO_FIRST || ec->state == ECHO_ECHOING)
           && ec->outlen == 0) {
        nl = memchr(ec->in, '\n', ec->inlen);
        if (nl == NULL) {
            if (ec->inlen == ec->cap)  /* max_line bytes and no "\n" */
                echo_refuse_long(ec);
            return;
        }
        n = (size_t) (nl - ec->in);    /* the line, without "\n" */
        len = n > 0 && ec->in[n - 1] == '\r' ? n - 1 : n;
        if (ec->state == ECHO_FIRST) {
            echo_ask(ec, len);         /* the line stays until decided */
            return;
        }
        memcpy(ec->out, ec->in, len);
        ec->out[len] = '\n';
        ec->outlen = len + 1;
        memmove(ec->in, nl + 1, ec->inlen - n - 1);
        ec->inlen -= n + 1;
        if (echo_flush(ec) != 1)
            return;                    /* waiting for the socket, or closed */
    }
}

static void
echo_rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct echo_conn *ec = w->data;
    ssize_t n;

    (void) loop;
    (void) revents;
    n = read(ec->c->fd, ec->in + ec->inlen, ec->cap - ec->inlen);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        echo_close(ec, n == 0 ? "client closed" : "read failed");
        return;
    }
    ec->inlen += (size_t) n;
    ev_timer_again(kap_loop(), &ec->idle);
    echo_process(ec);
}

static void
echo_accept(struct kap_conn *c)
{
    struct echo_conf *cf = c->conf;    /* our conf in c->gen */
    struct echo_conn *ec;

    ec = kap_palloc(c->pool, sizeof(*ec));
    if (ec != NULL) {
        ec->cap = (size_t) cf->max_line + 1;
        ec->in = kap_palloc(c->pool, ec->cap);
        ec->out = kap_palloc(c->pool, ec->cap);
    }
    if (ec == NULL || ec->in == NULL || ec->out == NULL
        || kap_pool_cleanup_add(c->pool, echo_stop, ec) != KAP_OK) {
        KAP_LOG(KAP_LOG_ERR, ECHO_NAME, c->id, "out of memory");
        kap_conn_close(c);
        return;
    }
    ec->c = c;
    c->data = ec;
    ev_io_init(&ec->rd, echo_rd_cb, c->fd, EV_READ);
    ev_io_init(&ec->wr, echo_wr_cb, c->fd, EV_WRITE);
    ev_init(&ec->idle, echo_idle_cb);
    ec->idle.repeat = cf->timeout;
    ec->rd.data = ec->wr.data = ec->idle.data = ec;
    ev_io_start(kap_loop(), &ec->rd);
    ev_timer_again(kap_loop(), &ec->idle);
}

/* kapd is shutting down and closes c itself: stop, do not kap_conn_close */
static void
echo_conn_close(struct kap_conn *c)
{
    if (c->data != NULL)
        echo_stop(c->data);
}

static const struct kap_listener_ops echo_listener = {
    .accept = echo_accept,
    .close = echo_conn_close,
};

/* the one exported symbol: kap_<name>_module */
const struct kap_module kap_echo_module = {
    KAP_MODULE_V1(ECHO_NAME),
    .version = "1.0",
    .flags = KAP_MOD_LISTENER,
    .conf_create = echo_conf_create,
    .conf_parse = echo_conf_parse,
    .conf_check = echo_conf_check,
    .listener = &echo_listener,
};
