/*
 * kap_channel_server.c -- the host side of the channel: one connection
 * per capsule kapd.
 *
 *   hello (name, nonce) -> challenge (our nonce, proof we know k)
 *   auth (proof it knows k) -> ready, or error and close
 *
 * Then each "ask" becomes a policy question of the same kind on this
 * kapd's own chain (asked_by "channel", attribute "capsule"), where a
 * human -- the phone UI, or the test module in tests -- answers, maybe
 * much later (KAP_AGAIN); the answer goes back with "always" when the
 * deciding hook set KAP_REQ_F_ALWAYS.  Each "audit" event is re-emitted
 * into this kapd's audit chain, marked with the capsule's name.  Every
 * question lives in a pool of its own, destroyed when answered or when
 * the connection closes (which cancels a waiting hook).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kap_channel.h"
#include "kap_channel_wire.h"

#define SV_OUT_MAX (1024 * 1024)

enum { SV_HELLO = 0, SV_AUTH, SV_READY };

struct sv_ask;

struct sv_conn {
    struct kap_conn          *c;
    struct ch_conf           *conf;
    const struct ch_capsule  *cap;
    int                       state, closing, depth;
    ev_io                     rd, wr;
    struct kap_buf            in, out;
    size_t                    out_off;
    char                      cnonce[CH_HEX_LEN + 1], hnonce[CH_HEX_LEN + 1];
    struct sv_ask            *asks;
    unsigned                  npending;
    char                     *policy;   /* hello's policy file, or NULL */
    int                       announced; /* capsule_connected emitted */
};

struct sv_ask {
    struct sv_ask   *next, *prev;
    struct sv_conn  *sc;
    struct kap_pool *pool;
    uint64_t         id;
    struct kap_attr  attr[5];
};

static void sv_close(struct sv_conn *sc);

/*
 * An authenticated capsule comes (capsule_connected) or goes
 * (capsule_closed): an audit event of the host, with the capsule's name
 * and the policy file its hello named, so the audit log records it and
 * an audit hook (the remote module's list of capsules) can follow which
 * capsules are connected.  A capsule's own events with these names are
 * not passed on (sv_audit): only the host says who is connected.
 */
static void
sv_announce(struct sv_conn *sc, int up)
{
    struct kap_audit_field f[2];
    struct kap_audit_event ev;
    struct kap_gen *gen = kap_gen_current();

    if (up == sc->announced || gen == NULL || kap_shutting_down())
        return;
    sc->announced = up;
    memset(&ev, 0, sizeof(ev));
    memset(f, 0, sizeof(f));
    f[0].name = "capsule";
    f[0].str = sc->cap->name;
    f[1].name = "policy_file";
    f[1].str = sc->policy;
    ev.module = CH_NAME;
    ev.event = up ? "capsule_connected" : "capsule_closed";
    ev.subject = sc->cap->name;
    ev.action = up ? "connected" : "closed";
    ev.client = sc->c->peer_text;
    ev.conn_id = sc->c->id;
    ev.fields = f;
    ev.nfields = sc->policy != NULL ? 2 : 1;
    kap_audit_emit(gen, &ev);
}

/*
 * A capsule not in channel.capsules whose secret is secrets_dir/NAME:
 * NAME is letters, digits, '.', '_', '-' and does not start with '.',
 * so it names a file in that directory and nothing else.  The secret is
 * read now (the file rule of kap_secret: private file, private
 * directory) and lives in the connection's pool.  NULL when there is
 * none.
 */
static const struct ch_capsule *
sv_capsule_from_dir(struct sv_conn *sc, const char *name)
{
    struct ch_capsule *cp;
    struct kap_err err;
    char path[4096];
    const char *p;

    if (sc->conf->secrets_dir == NULL || name[0] == '.')
        return NULL;
    for (p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
              || *p == '-'))
            return NULL;
    if ((size_t) snprintf(path, sizeof(path), "%s/%s", sc->conf->secrets_dir,
                          name) >= sizeof(path)
        || (cp = kap_palloc(sc->c->pool, sizeof(*cp))) == NULL
        || (cp->name = kap_pstrdup(sc->c->pool, name)) == NULL)
        return NULL;
    memset(&err, 0, sizeof(err));
    cp->secret_file = NULL;
    cp->secret = kap_secret_load(sc->c->pool, path, &err);
    if (cp->secret == NULL) {
        KAP_LOG(KAP_LOG_INFO, CH_NAME, sc->c->id, "capsule \"%s\": %s",
                name, err.msg);
        return NULL;
    }
    return cp;
}

static void
sv_flush(struct sv_conn *sc)
{
    while (sc->out_off < sc->out.len) {
        ssize_t n = send(sc->c->fd, sc->out.data + sc->out_off,
                         sc->out.len - sc->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            sc->out_off += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(kap_loop(), &sc->wr);
            return;
        }
        sv_close(sc);
        return;
    }
    kap_buf_reset(&sc->out);
    sc->out_off = 0;
    ev_io_stop(kap_loop(), &sc->wr);
}

/* refuse and close, telling the capsule why */
static void
sv_refuse(struct sv_conn *sc, const char *why)
{
    KAP_LOG(KAP_LOG_WARN, CH_NAME, sc->c->id, "capsule %s%s%s(%s): %s",
            sc->cap ? "\"" : "", sc->cap ? sc->cap->name : "",
            sc->cap ? "\" " : "", sc->c->peer_text, why);
    (void) kap_channel_put_error(&sc->out, why);
    sv_flush(sc);
    sv_close(sc);
}

/* ---- questions from the capsule ------------------------------------------- */

static void
ask_free(struct sv_ask *a)
{
    struct sv_conn *sc = a->sc;

    if (a->prev)
        a->prev->next = a->next;
    else
        sc->asks = a->next;
    if (a->next)
        a->next->prev = a->prev;
    sc->npending--;
    kap_pool_destroy(a->pool);          /* a lives in it */
}

static void
ask_done(struct kap_req *r, void *data)
{
    struct sv_ask *a = data;
    struct sv_conn *sc = a->sc;

    sc->depth++;
    if (kap_channel_put_answer(&sc->out, a->id, r->verdict == KAP_ALLOW,
                      (r->flags & KAP_REQ_F_ALWAYS) != 0, r->reason,
                      r->decided_by) != KAP_OK)
        sc->closing = 1;
    ask_free(a);
    if (!sc->closing)
        sv_flush(sc);
    if (--sc->depth == 0 && sc->closing)
        kap_conn_close(sc->c);
}

/* one more attribute of a forwarded question (value copied; NULL: none) */
static void
sv_ask_attr(struct kap_req *r, struct kap_attr *attr, const char *name,
            const char *value)
{
    if (value != NULL
        && (attr[r->nattrs].value = kap_pstrdup(r->pool, value)) != NULL)
        attr[r->nattrs++].name = name;
}

static void
sv_ask(struct sv_conn *sc, const struct ch_msg *m)
{
    struct kap_pool *p;
    struct sv_ask *a;
    struct kap_req *r;
    char client[300];

    if (sc->npending >= sc->conf->max_pending) {
        (void) kap_channel_put_answer(&sc->out, m->id, 0, 0, "too many questions "
                             "waiting on the host (channel.max_pending)",
                             CH_NAME);
        sv_flush(sc);
        return;
    }
    if ((p = kap_pool_create()) == NULL
        || (a = kap_palloc(p, sizeof(*a))) == NULL) {
        kap_pool_destroy(p);
        sc->closing = 1;
        return;
    }
    a->pool = p;
    a->sc = sc;
    a->id = m->id;
    /* the current policy, as http_connect asks: a reload applies at once */
    r = kap_req_new(kap_gen_current() ? kap_gen_current() : sc->c->gen, p,
                    kap_channel_kind_bit(m->kind), CH_NAME, m->subject);
    if (r == NULL) {
        kap_pool_destroy(p);
        sc->closing = 1;
        return;
    }
    snprintf(client, sizeof(client), "%s/%s", sc->cap->name,
             m->client ? m->client : "-");
    r->conn = sc->c;
    r->port = (uint16_t) m->port;
    r->detail = m->detail ? kap_pstrdup(p, m->detail) : NULL;
    r->client = kap_pstrdup(p, client);
    a->attr[0].name = "capsule";
    a->attr[0].value = sc->cap->name;
    r->attrs = a->attr;
    r->nattrs = 1;
    if (sc->policy != NULL              /* where "allow always" goes */
        && (a->attr[1].value = kap_pstrdup(p, sc->policy)) != NULL) {
        a->attr[1].name = "policy_file";
        r->nattrs = 2;
    }
    /* what the capsule's ask rule said: the rule, the mcp server, the
       rule that would allow exactly this call ("allow always" writes it) */
    sv_ask_attr(r, a->attr, "server", m->server);
    sv_ask_attr(r, a->attr, "rule", m->rule);
    sv_ask_attr(r, a->attr, "suggest", m->suggest);
    a->next = sc->asks;
    if (sc->asks)
        sc->asks->prev = a;
    sc->asks = a;
    sc->npending++;
    if (kap_policy_check(r, ask_done, a) == KAP_OK)
        ask_done(r, a);
}

/* ---- audit events from the capsule ---------------------------------------- */

static void
sv_audit(struct sv_conn *sc, const struct ch_msg *m)
{
    const struct kap_json *e = m->event, *fs, *f;
    struct kap_audit_field fld[34];
    struct kap_audit_event ev;
    size_t nf = 0;
    double d;
    int64_t port;

    memset(&ev, 0, sizeof(ev));
    if (kap_json_number(kap_json_get(e, "ts"), &d) == KAP_OK)
        ev.ts = d;
    ev.kind = kap_channel_kind_bit(kap_json_get_string(e, "kind"));
    ev.module = CH_NAME;
    ev.event = kap_json_get_string(e, "event");
    if (ev.event == NULL || strncmp(ev.event, "capsule_", 8) == 0)
        return;                         /* the host's own (sv_announce) */
    ev.subject = kap_json_get_string(e, "subject");
    if (kap_json_int(kap_json_get(e, "port"), &port) == KAP_OK
        && port >= 0 && port <= 65535)
        ev.port = (uint16_t) port;
    ev.action = kap_json_get_string(e, "action");
    ev.reason = kap_json_get_string(e, "reason");
    ev.decided_by = kap_json_get_string(e, "decided_by");
    ev.detail = kap_json_get_string(e, "detail");
    ev.client = kap_json_get_string(e, "client");
    ev.conn_id = sc->c->id;
    fld[nf].name = "capsule";
    fld[nf].str = sc->cap->name;
    nf++;
    if (kap_json_get_string(e, "module") != NULL) {
        fld[nf].name = "capsule_module";
        fld[nf].str = kap_json_get_string(e, "module");
        nf++;
    }
    fs = kap_json_get(e, "fields");
    for (f = kap_json_child(fs); f != NULL && nf < 34; f = kap_json_next(f)) {
        const char *k = kap_json_key(f);
        if (strcmp(k, "capsule") == 0 || strcmp(k, "capsule_module") == 0)
            continue;
        fld[nf].name = k;
        fld[nf].str = kap_json_string(f);
        fld[nf].num = 0;
        if (fld[nf].str == NULL && kap_json_number(f, &fld[nf].num) != KAP_OK)
            continue;
        nf++;
    }
    ev.fields = fld;
    ev.nfields = nf;
    kap_audit_emit(kap_gen_current() ? kap_gen_current() : sc->c->gen, &ev);
}

/* ---- the handshake and dispatch ------------------------------------------- */

static void
sv_message(struct sv_conn *sc, const struct ch_msg *m)
{
    char proof[CH_HEX_LEN + 1];
    size_t i;

    switch (sc->state) {
    case SV_HELLO:
        if (m->type != CH_HELLO)
            break;
        if (m->v != CH_VERSION) {
            sv_refuse(sc, "unsupported channel protocol version");
            return;
        }
        for (i = 0; i < sc->conf->ncaps; i++)
            if (strcmp(sc->conf->caps[i].name, m->name) == 0)
                sc->cap = &sc->conf->caps[i];
        if (sc->cap == NULL)
            sc->cap = sv_capsule_from_dir(sc, m->name);
        if (sc->cap == NULL || sc->cap->secret == NULL) {
            sv_refuse(sc, "unknown capsule (not in channel.capsules, no "
                      "secret in channel.secrets_dir)");
            return;
        }
        memcpy(sc->cnonce, m->nonce, CH_HEX_LEN + 1);
        if (m->policy != NULL
            && (sc->policy = kap_pstrdup(sc->c->pool, m->policy))
               == NULL) {
            sv_refuse(sc, "out of memory");
            return;
        }
        if (kap_channel_nonce(sc->hnonce) != KAP_OK
            || kap_channel_proof(sc->cap->secret, "host", sc->cnonce, sc->hnonce,
                        proof) != KAP_OK
            || kap_channel_put_challenge(&sc->out, sc->hnonce, proof) != KAP_OK) {
            sv_refuse(sc, "the host cannot compute its proof");
            return;
        }
        sc->state = SV_AUTH;
        sv_flush(sc);
        return;
    case SV_AUTH:
        if (m->type != CH_AUTH)
            break;
        if (kap_channel_proof(sc->cap->secret, "capsule", sc->hnonce, sc->cnonce,
                     proof) != KAP_OK
            || CRYPTO_memcmp(proof, m->proof, CH_HEX_LEN) != 0) {
            sv_refuse(sc, "authentication failed (the capsule's secret_file "
                      "differs from the host's)");
            return;
        }
        sc->state = SV_READY;
        KAP_LOG(KAP_LOG_NOTICE, CH_NAME, sc->c->id, "capsule \"%s\" "
                "connected", sc->cap->name);
        sv_announce(sc, 1);
        if (kap_channel_put_ready(&sc->out) != KAP_OK)
            sc->closing = 1;
        else
            sv_flush(sc);
        return;
    case SV_READY:
        if (m->type == CH_ASK) {
            sv_ask(sc, m);
            return;
        }
        if (m->type == CH_AUDIT) {
            sv_audit(sc, m);
            return;
        }
        break;
    default:
        break;
    }
    sv_refuse(sc, "unexpected message");
}

static void
sv_read(struct sv_conn *sc)
{
    char buf[16384];

    for (;;) {
        ssize_t n = recv(sc->c->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            if (kap_buf_append(&sc->in, buf, (size_t) n) != KAP_OK) {
                sv_close(sc);
                return;
            }
            if (sc->in.len > 4 * CH_LINE_MAX)
                break;                  /* parse what we have first */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        sv_close(sc);                   /* EOF or error */
        return;
    }
    size_t off = 0;
    while (!sc->closing) {
        char *nl = memchr(sc->in.data + off, '\n', sc->in.len - off);
        struct ch_msg m;
        struct kap_err err;
        if (nl == NULL)
            break;
        memset(&err, 0, sizeof(err));
        if (kap_channel_msg_parse(sc->in.data + off,
                         (size_t) (nl - sc->in.data) - off, &m, &err)
            != KAP_OK) {
            char why[300];
            kap_channel_msg_free(&m);
            snprintf(why, sizeof(why), "bad message: %.250s", err.msg);
            sv_refuse(sc, why);
            return;
        }
        off = (size_t) (nl - sc->in.data) + 1;
        sv_message(sc, &m);
        kap_channel_msg_free(&m);
    }
    if (sc->closing)
        return;
    if (off > 0) {
        memmove(sc->in.data, sc->in.data + off, sc->in.len - off);
        sc->in.len -= off;
        sc->in.data[sc->in.len] = '\0';
    }
    if (sc->in.len > CH_LINE_MAX)
        sv_refuse(sc, "message too long");
    else if (sc->out.len - sc->out_off > SV_OUT_MAX)
        sv_close(sc);                   /* it does not read its answers */
}

static void
sv_rd_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sv_conn *sc = w->data;

    (void) loop;
    (void) revents;
    sc->depth++;
    sv_read(sc);
    if (--sc->depth == 0 && sc->closing)
        kap_conn_close(sc->c);
}

static void
sv_wr_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct sv_conn *sc = w->data;

    (void) loop;
    (void) revents;
    sc->depth++;
    sv_flush(sc);
    if (--sc->depth == 0 && sc->closing)
        kap_conn_close(sc->c);
}

static void
sv_close(struct sv_conn *sc)
{
    sv_announce(sc, 0);
    sc->closing = 1;
    ev_io_stop(kap_loop(), &sc->rd);
    ev_io_stop(kap_loop(), &sc->wr);
}

/* connection pool cleanup: waiting questions die with it (their hooks
 * are cancelled by the pools' request cleanups) */
static void
sv_cleanup(void *data)
{
    struct sv_conn *sc = data;

    sv_announce(sc, 0);                 /* closed by the core */
    ev_io_stop(kap_loop(), &sc->rd);
    ev_io_stop(kap_loop(), &sc->wr);
    while (sc->asks != NULL)
        ask_free(sc->asks);
    kap_buf_free(&sc->in);
    kap_buf_free(&sc->out);
}

void
kap_channel_server_accept(struct kap_conn *c)
{
    struct ch_conf *cf = c->conf;
    struct sv_conn *sc;

    if (cf->role != CH_ROLE_HOST
        || (sc = kap_palloc(c->pool, sizeof(*sc))) == NULL
        || kap_pool_cleanup_add(c->pool, sv_cleanup, sc) != KAP_OK) {
        kap_conn_close(c);
        return;
    }
    sc->c = c;
    sc->conf = cf;
    c->data = sc;
    ev_io_init(&sc->rd, sv_rd_cb, c->fd, EV_READ);
    ev_io_init(&sc->wr, sv_wr_cb, c->fd, EV_WRITE);
    sc->rd.data = sc->wr.data = sc;
    ev_io_start(kap_loop(), &sc->rd);
}
