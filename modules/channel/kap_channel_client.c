/*
 * kap_channel_client.c -- the capsule side of the channel: one
 * connection to the host kapd per process, kept across reloads and
 * redialled (1 s, doubling to 10 s) when it drops.
 *
 *   DOWN -> CONNECTING -> HELLO sent -> AUTH sent -> READY
 *
 * The host proves it knows the shared secret before the capsule does
 * (its "challenge" carries an HMAC of our nonce), so a socket that only
 * pretends to be the host learns nothing and can answer nothing.
 *
 * A question (kap_channel_client_policy) is sent only when READY; otherwise it is
 * denied at once.  It waits in `asks` with a timer; the answer, the
 * timer, or the channel going down finishes it (kap_policy_resume), and
 * the hook is called again to decide.  Nothing here blocks; the output
 * buffer is bounded (audit events beyond it are dropped and counted).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kap_channel.h"
#include "kap_channel_wire.h"

#define CH_OUT_MAX   (1024 * 1024)     /* bytes queued for the host */
#define CH_RETRY_MAX 10.0

enum { ST_DOWN = 0, ST_CONNECTING, ST_HELLO, ST_AUTH, ST_READY };

struct ch_ask {
    struct ch_ask  *next, *prev;
    uint64_t        id;
    struct kap_req *r;
    ev_timer        timer;
    int             done, allow;
    int             sent;               /* on the wire (else: until ready) */
    char            reason[300];
};

struct ch_always {
    struct ch_always *next;
    char              key[];           /* "kind subject port" */
};

static struct {
    struct ch_conf   *conf;            /* the live generation's, or NULL */
    int               fd, state;
    ev_io             rd, wr;
    ev_timer          retry;
    double            backoff;
    struct kap_buf    in, out;
    size_t            out_off;
    char              target[300], name[CH_NAME_MAX + 1];
    char              cnonce[CH_HEX_LEN + 1];
    uint64_t          next_id;
    struct ch_ask    *asks;
    unsigned long     dropped, asked, answered;
    char              why_down[200];
    struct ch_always *always;
    int               started;
} cl = { .fd = -1 };

static void cl_down(const char *why);
static void cl_flush(void);

/* ---- the always set ------------------------------------------------------ */

/* the key of an "allow always" answer: the kind, the subject (an mcp
   tool with its server) and the port; a cli call with its whole command,
   so that the answer allows that call, not every call of the tool */
static int
always_key(char *k, size_t n, const struct kap_req *r)
{
    const char *server = kap_req_attr(r, "server"), *p;
    int m;

    for (p = r->subject; *p; p++)       /* one line, three words */
        if ((unsigned char) *p <= ' ' || *p == 0x7f)
            return KAP_ERROR;
    if (r->kind == KAP_REQ_CLI) {
        if (r->detail == NULL)
            return KAP_ERROR;
        for (p = r->detail; *p; p++)
            if ((unsigned char) *p < ' ' || *p == 0x7f)
                return KAP_ERROR;
        m = snprintf(k, n, "%s %s %u %s", kap_req_kind_name(r->kind),
                     r->subject, r->port, r->detail);
    } else if (r->kind == KAP_REQ_MCP_CALL) {
        for (p = server; p != NULL && *p; p++)
            if ((unsigned char) *p <= ' ' || *p == 0x7f)
                return KAP_ERROR;
        m = server == NULL ? -1
          : snprintf(k, n, "%s %s/%s %u", kap_req_kind_name(r->kind), server,
                     r->subject, r->port);
    } else {
        m = snprintf(k, n, "%s %s %u", kap_req_kind_name(r->kind), r->subject,
                     r->port);
    }
    return m > 0 && (size_t) m < n ? KAP_OK : KAP_ERROR;
}

static int
always_has(const char *key)
{
    const struct ch_always *a;

    for (a = cl.always; a; a = a->next)
        if (strcmp(a->key, key) == 0)
            return 1;
    return 0;
}

static void
always_add(const char *key)
{
    size_t n = strlen(key);
    struct ch_always *a;

    if (always_has(key) || (a = malloc(sizeof(*a) + n + 1)) == NULL)
        return;
    memcpy(a->key, key, n + 1);
    a->next = cl.always;
    cl.always = a;
}

/* keep an "allow always" answer: in memory now, in always_file for the
 * next start */
static void
always_keep(const char *key)
{
    char line[600];
    int fd, n;

    if (always_has(key))
        return;
    always_add(key);
    if (cl.conf == NULL || cl.conf->always_file == NULL)
        return;
    n = snprintf(line, sizeof(line), "%s\n", key);
    fd = open(cl.conf->always_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC
              | O_NOFOLLOW, 0600);
    if (fd < 0 || n <= 0 || write(fd, line, (size_t) n) != n)
        KAP_LOG(KAP_LOG_WARN, CH_NAME, 0, "cannot keep \"%s\" in %s: %s",
                key, cl.conf->always_file, strerror(errno));
    if (fd >= 0)
        close(fd);
}

static void
always_load(const char *path)
{
    char buf[65536];
    ssize_t n;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return;                         /* nothing kept yet */
    while (len < sizeof(buf) - 1
           && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t) n;
    close(fd);
    buf[len] = '\0';
    for (char *l = buf, *e; *l; l = e) {
        e = strchr(l, '\n');
        if (e == NULL)
            break;                      /* a line still being written */
        *e++ = '\0';
        if (*l)
            always_add(l);
    }
}

/* ---- questions ----------------------------------------------------------- */

static void
ask_unlink(struct ch_ask *a)
{
    if (a->prev)
        a->prev->next = a->next;
    else if (cl.asks == a)
        cl.asks = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->next = a->prev = NULL;
    ev_timer_stop(kap_loop(), &a->timer);
}

static void
ask_finish(struct ch_ask *a, int allow, const char *reason)
{
    ask_unlink(a);
    a->done = 1;
    a->allow = allow;
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    kap_policy_resume(a->r);
}

static void
ask_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct ch_ask *a = w->data;
    char why[200];

    (void) loop;
    (void) revents;
    snprintf(why, sizeof(why), "no answer from the host within %g s "
             "(channel.timeout)", cl.conf ? cl.conf->timeout : 0.0);
    ask_finish(a, 0, why);
}

/* put a question on the wire (the channel is ready) */
static int
ask_send(struct ch_ask *a)
{
    const struct kap_req *r = a->r;
    const char *sg = kap_req_attr(r, "suggest");
    struct ch_ask_attrs at = { kap_req_attr(r, "server"),
                               kap_req_attr(r, "rule"),
                               sg != NULL && sg[0] != '\0' ? sg : NULL };

    if (at.rule != NULL && at.rule[0] == '\0')
        at.rule = NULL;
    if (kap_channel_put_ask(&cl.out, a->id, kap_req_kind_name(r->kind),
                            r->subject, r->port, r->detail, r->client, &at)
        != KAP_OK)
        return KAP_ERROR;
    a->sent = 1;
    return KAP_OK;
}

/* the request died while waiting (client gone, gave up) */
static void
ask_cancel(struct kap_req *r)
{
    struct ch_ask *a = r->hook_data;

    if (a != NULL && !a->done)
        ask_unlink(a);
}

int
kap_channel_client_policy(struct kap_req *r, struct ch_conf *cf)
{
    struct ch_ask *a = r->hook_data;
    char key[2048];

    if (a != NULL) {                    /* called again: decide */
        if (!a->done)
            return KAP_AGAIN;
        kap_req_decide(r, a->allow ? KAP_ALLOW : KAP_DENY, CH_NAME,
                       a->reason);
        return KAP_OK;
    }
    if (always_key(key, sizeof(key), r) == KAP_OK
        && always_has(key)) {
        kap_req_decide(r, KAP_ALLOW, CH_NAME, "allowed always by the host");
        return KAP_OK;
    }
    if (cl.state == ST_DOWN) {
        char why[300];
        snprintf(why, sizeof(why), "nobody can approve it: the channel to "
                 "the host is down (%s)", cl.why_down[0] ? cl.why_down
                                                        : "not connected");
        kap_req_decide(r, KAP_DENY, CH_NAME, why);
        return KAP_OK;
    }
    if ((a = kap_palloc(r->pool, sizeof(*a))) == NULL)
        return KAP_ERROR;
    a->id = ++cl.next_id;
    a->r = r;
    /* while the channel is still being set up (at start, or after a
     * reconnect), the question waits for it, within its timeout */
    if (cl.state == ST_READY) {
        if (ask_send(a) != KAP_OK)
            return KAP_ERROR;
    }
    a->next = cl.asks;
    if (cl.asks)
        cl.asks->prev = a;
    cl.asks = a;
    ev_timer_init(&a->timer, ask_timeout, cf->timeout, 0.);
    a->timer.data = a;
    ev_timer_start(kap_loop(), &a->timer);
    r->hook_data = a;
    r->hook_cancel = ask_cancel;
    cl.asked++;
    if (a->sent)
        cl_flush();
    return KAP_AGAIN;
}

/* ---- audit stream ---------------------------------------------------------- */

void
kap_channel_client_audit(const struct kap_audit_event *ev, struct ch_conf *cf)
{
    (void) cf;
    if (cl.state != ST_READY)
        return;
    if (cl.out.len - cl.out_off > CH_OUT_MAX) {
        cl.dropped++;
        return;
    }
    if (kap_channel_put_audit(&cl.out, ev) != KAP_OK) {
        cl_down("out of memory");
        return;
    }
    cl_flush();
}

void
kap_channel_client_status(struct kap_buf *out)
{
    static const char *const st[] = { "down", "connecting", "hello",
                                      "authenticating", "ready" };

    kap_buf_printf(out, "channel: %s to %s as \"%s\", %lu asked, %lu "
                   "answered, %lu audit events dropped", st[cl.state],
                   cl.target, cl.name, cl.asked, cl.answered, cl.dropped);
}

/* ---- the connection ------------------------------------------------------ */

static void cl_connect(void);

static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
    if (cl.conf != NULL && cl.state == ST_DOWN)
        cl_connect();
}

static void
cl_down(const char *why)
{
    char reason[300];

    if (cl.fd >= 0) {
        ev_io_stop(kap_loop(), &cl.rd);
        ev_io_stop(kap_loop(), &cl.wr);
        close(cl.fd);
        cl.fd = -1;
    }
    if (cl.state != ST_DOWN)
        KAP_LOG(KAP_LOG_WARN, CH_NAME, 0, "channel to %s down: %s",
                cl.target, why);
    cl.state = ST_DOWN;
    snprintf(cl.why_down, sizeof(cl.why_down), "%s", why);
    kap_buf_reset(&cl.in);
    kap_buf_reset(&cl.out);
    cl.out_off = 0;
    snprintf(reason, sizeof(reason), "the channel to the host closed before "
             "an answer (%s)", why);
    while (cl.asks != NULL)
        ask_finish(cl.asks, 0, reason);
    if (cl.conf != NULL && !ev_is_active(&cl.retry)) {
        cl.backoff = cl.backoff <= 0 ? 1 : cl.backoff * 2;
        if (cl.backoff > CH_RETRY_MAX)
            cl.backoff = CH_RETRY_MAX;
        ev_timer_set(&cl.retry, cl.backoff, 0.);
        ev_timer_start(kap_loop(), &cl.retry);
    }
}

static void
cl_flush(void)
{
    while (cl.fd >= 0 && cl.state != ST_CONNECTING
           && cl.out_off < cl.out.len) {
        ssize_t n = send(cl.fd, cl.out.data + cl.out_off,
                         cl.out.len - cl.out_off, MSG_NOSIGNAL);
        if (n > 0) {
            cl.out_off += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(kap_loop(), &cl.wr);
            return;
        }
        cl_down(n < 0 ? strerror(errno) : "closed");
        return;
    }
    if (cl.out_off == cl.out.len) {
        kap_buf_reset(&cl.out);
        cl.out_off = 0;
        if (cl.fd >= 0 && cl.state != ST_CONNECTING)
            ev_io_stop(kap_loop(), &cl.wr);
    }
}

static void
cl_message(const struct ch_msg *m)
{
    char proof[CH_HEX_LEN + 1];
    struct ch_ask *a;

    switch (cl.state) {
    case ST_HELLO:
        if (m->type != CH_CHALLENGE)
            break;
        /* the host first: it must know the secret too */
        if (kap_channel_proof(cl.conf->secret, "host", cl.cnonce, m->nonce, proof)
            != KAP_OK
            || CRYPTO_memcmp(proof, m->proof, CH_HEX_LEN) != 0) {
            (void) kap_channel_put_error(&cl.out, "the host's proof is wrong");
            cl_flush();
            cl_down("the host could not prove it knows the secret (is "
                    "channel.connect the host kapd, with the same "
                    "secret_file?)");
            return;
        }
        if (kap_channel_proof(cl.conf->secret, "capsule", m->nonce, cl.cnonce, proof)
            != KAP_OK || kap_channel_put_auth(&cl.out, proof) != KAP_OK) {
            cl_down("cannot compute the proof");
            return;
        }
        cl.state = ST_AUTH;
        cl_flush();
        return;
    case ST_AUTH:
        if (m->type != CH_READY)
            break;
        cl.state = ST_READY;
        cl.backoff = 0;
        cl.why_down[0] = '\0';
        KAP_LOG(KAP_LOG_NOTICE, CH_NAME, 0, "channel to %s ready as \"%s\"",
                cl.target, cl.name);
        /* the questions that came while the channel was being set up */
        for (a = cl.asks; a; a = a->next)
            if (!a->sent && ask_send(a) != KAP_OK) {
                cl_down("out of memory");
                return;
            }
        cl_flush();
        return;
    case ST_READY:
        if (m->type != CH_ANSWER)
            break;
        for (a = cl.asks; a; a = a->next)
            if (a->id == m->id)
                break;
        if (a == NULL)
            return;                     /* timed out or cancelled: late */
        cl.answered++;
        {
            char why[300], key[2048];
            snprintf(why, sizeof(why), "%s by the host%s%s%s",
                     m->allow ? (m->always ? "allowed always" : "allowed once")
                              : "denied",
                     m->by || m->reason ? " (" : "",
                     m->reason ? m->reason : (m->by ? m->by : ""),
                     m->by || m->reason ? ")" : "");
            if (m->allow && m->always
                && always_key(key, sizeof(key), a->r) == KAP_OK)
                always_keep(key);
            ask_finish(a, m->allow, why);
        }
        return;
    default:
        break;
    }
    if (m->type == CH_ERROR) {
        char why[300];
        snprintf(why, sizeof(why), "the host refused: %.200s", m->message);
        cl_down(why);
        return;
    }
    cl_down("unexpected message from the host");
}

static void
cl_read(void)
{
    char buf[16384];

    for (;;) {
        ssize_t n = recv(cl.fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (kap_buf_append(&cl.in, buf, (size_t) n) != KAP_OK) {
                cl_down("out of memory");
                return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        cl_down(n == 0 ? "the host closed the connection" : strerror(errno));
        return;
    }
    size_t off = 0;
    while (cl.fd >= 0) {
        char *nl = memchr(cl.in.data + off, '\n', cl.in.len - off);
        struct ch_msg m;
        struct kap_err err;
        if (nl == NULL)
            break;
        memset(&err, 0, sizeof(err));
        if (kap_channel_msg_parse(cl.in.data + off, (size_t) (nl - cl.in.data) - off,
                         &m, &err) != KAP_OK) {
            char why[300];
            snprintf(why, sizeof(why), "bad message from the host: %.250s",
                     err.msg);
            kap_channel_msg_free(&m);
            cl_down(why);
            return;
        }
        off = (size_t) (nl - cl.in.data) + 1;
        cl_message(&m);
        kap_channel_msg_free(&m);
    }
    if (cl.fd < 0)
        return;
    if (off > 0) {
        memmove(cl.in.data, cl.in.data + off, cl.in.len - off);
        cl.in.len -= off;
        cl.in.data[cl.in.len] = '\0';
    }
    if (cl.in.len > CH_LINE_MAX)
        cl_down("a message from the host is too long");
}

static void
rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
    cl_read();
}

static void
wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    int e = 0;
    socklen_t el = sizeof(e);

    (void) loop;
    (void) revents;
    if (cl.state == ST_CONNECTING) {
        if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
            char why[400];
            snprintf(why, sizeof(why), "cannot connect to %.300s: %s",
                     cl.target, strerror(e ? e : errno));
            cl_down(why);
            return;
        }
        ev_io_stop(kap_loop(), &cl.wr);
        ev_io_start(kap_loop(), &cl.rd);
        cl.state = ST_HELLO;
    }
    cl_flush();
}

/* "unix:/path", "a.b.c.d:port" or "[v6]:port" */
static int
parse_target(const char *t, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (strncmp(t, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *) ss;
        size_t n = strlen(t + 5);
        if (n == 0 || n >= sizeof(un->sun_path))
            return KAP_ERROR;
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, t + 5, n + 1);
        *len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);
        return KAP_OK;
    }
    const char *c = strrchr(t, ':');
    char host[64];
    char *end;
    long port;
    if (c == NULL || (size_t) (c - t) >= sizeof(host))
        return KAP_ERROR;
    memcpy(host, t, (size_t) (c - t));
    host[c - t] = '\0';
    port = strtol(c + 1, &end, 10);
    if (*end || port < 1 || port > 65535)
        return KAP_ERROR;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) ss;
        host[strlen(host) - 1] = '\0';
        if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1)
            return KAP_ERROR;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t) port);
        *len = sizeof(*s6);
        return KAP_OK;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *) ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
        return KAP_ERROR;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t) port);
    *len = sizeof(*s4);
    return KAP_OK;
}

static void
cl_connect(void)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    int fd;

    if (parse_target(cl.target, &ss, &len) != KAP_OK) {
        cl_down("channel.connect is not \"unix:/path\" or \"addr:port\"");
        return;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        cl_down(strerror(errno));
        return;
    }
    cl.fd = fd;
    cl.state = ST_CONNECTING;
    if (kap_channel_nonce(cl.cnonce) != KAP_OK
        || kap_channel_put_hello(&cl.out, cl.name, cl.cnonce,
                                 cl.conf ? cl.conf->policy_file : NULL) != KAP_OK) {
        cl_down("no randomness for the nonce");
        return;
    }
    ev_io_init(&cl.rd, rd_cb, fd, EV_READ);
    ev_io_init(&cl.wr, wr_cb, fd, EV_WRITE);
    if (connect(fd, (struct sockaddr *) &ss, len) == 0) {
        cl.state = ST_HELLO;
        ev_io_start(kap_loop(), &cl.rd);
        cl_flush();
        return;
    }
    if (errno == EINPROGRESS || errno == EAGAIN) {
        ev_io_start(kap_loop(), &cl.wr);
        return;
    }
    {
        char why[400];
        snprintf(why, sizeof(why), "cannot connect to %.300s: %s",
                 cl.target, strerror(errno));
        cl_down(why);
    }
}

int
kap_channel_client_init(struct kap_gen *gen, struct ch_conf *cf)
{
    (void) gen;
    if (!cl.started) {
        ev_init(&cl.retry, retry_cb);
        cl.started = 1;
    }
    if (cf->always_file != NULL)
        always_load(cf->always_file);
    cl.conf = cf;
    /* the same host and name keep the connection across a reload */
    if (cl.state != ST_DOWN && strcmp(cl.target, cf->connect) == 0
        && strcmp(cl.name, cf->name) == 0)
        return KAP_OK;
    if (cl.state != ST_DOWN)
        cl_down("the configuration changed");
    ev_timer_stop(kap_loop(), &cl.retry);
    snprintf(cl.target, sizeof(cl.target), "%s", cf->connect);
    snprintf(cl.name, sizeof(cl.name), "%s", cf->name);
    cl.backoff = 0;
    cl_connect();
    return KAP_OK;
}

void
kap_channel_client_fini(struct ch_conf *cf)
{
    struct ch_always *a;

    if (cl.conf != cf)
        return;                         /* a newer generation took over */
    cl.conf = NULL;
    ev_timer_stop(kap_loop(), &cl.retry);
    cl_down("kapd is stopping");
    ev_timer_stop(kap_loop(), &cl.retry);
    kap_buf_free(&cl.in);
    kap_buf_free(&cl.out);
    while ((a = cl.always) != NULL) {
        cl.always = a->next;
        free(a);
    }
}
