/*
 * kap_channel_wire.c -- parse and build the channel's messages
 * (kap_channel_wire.h, docs/channel-protocol.md).
 *
 * Parsing is strict twice over: kap_json refuses what JSON does not
 * allow (and duplicate keys), and every message type has a fixed set of
 * fields with fixed types; anything else is a protocol error that closes
 * the connection.  Unknown extra fields are refused too, so the two ends
 * cannot read one message two ways.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "kap_channel_wire.h"

static const char *const type_names[] = {
    "", "hello", "challenge", "auth", "ready", "error", "ask", "answer",
    "audit", NULL
};

/* the fields each type may (and, where marked, must) carry */
static const char *const fields[][12] = {
    [CH_HELLO]     = { "type", "v", "name", "nonce", "policy", NULL },
    [CH_CHALLENGE] = { "type", "nonce", "proof", NULL },
    [CH_AUTH]      = { "type", "proof", NULL },
    [CH_READY]     = { "type", NULL },
    [CH_ERROR]     = { "type", "message", NULL },
    [CH_ASK]       = { "type", "id", "kind", "subject", "port", "detail",
                       "client", "server", "rule", "suggest", NULL },
    [CH_ANSWER]    = { "type", "id", "verdict", "always", "reason", "by",
                       NULL },
    [CH_AUDIT]     = { "type", "event", NULL },
};

static const char *const kind_names[] = {
    "connect", "http", "dns", "mcp_list", "mcp_call", "cli", "test", "addr",
    "first", NULL
};

uint32_t
kap_channel_kind_bit(const char *name)
{
    size_t i;

    if (name == NULL)
        return 0;
    for (i = 0; kind_names[i]; i++)
        if (strcmp(kind_names[i], name) == 0)
            return 1u << i;
    return 0;
}

void
kap_channel_hex(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

int
kap_channel_nonce(char hex[CH_HEX_LEN + 1])
{
    unsigned char b[CH_NONCE_LEN];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return KAP_ERROR;
        got += (size_t) n;
    }
    kap_channel_hex(b, sizeof(b), hex);
    return KAP_OK;
}

static int
is_hex(const char *s, size_t n)
{
    size_t i;

    if (s == NULL || strlen(s) != n)
        return 0;
    for (i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* a string member; required ones must be there */
static int
get_str(const struct kap_json *o, const char *key, int required,
        const char **out, struct kap_err *err)
{
    const struct kap_json *v = kap_json_get(o, key);

    *out = NULL;
    if (v == NULL) {
        if (required)
            kap_err_set(err, "\"%s\" is missing", key);
        return required ? KAP_ERROR : KAP_OK;
    }
    if ((*out = kap_json_string(v)) == NULL) {
        kap_err_set(err, "\"%s\" must be a string", key);
        return KAP_ERROR;
    }
    return KAP_OK;
}

static int
get_int(const struct kap_json *o, const char *key, int required,
        long long min, long long max, long long *out, struct kap_err *err)
{
    const struct kap_json *v = kap_json_get(o, key);
    int64_t x;

    *out = 0;
    if (v == NULL) {
        if (required)
            kap_err_set(err, "\"%s\" is missing", key);
        return required ? KAP_ERROR : KAP_OK;
    }
    if (kap_json_int(v, &x) != KAP_OK || x < min || x > max) {
        kap_err_set(err, "\"%s\" must be an integer from %lld to %lld", key,
                    min, max);
        return KAP_ERROR;
    }
    *out = (long long) x;
    return KAP_OK;
}

static int
only_fields(const struct kap_json *o, enum ch_type t, struct kap_err *err)
{
    const struct kap_json *c;

    for (c = kap_json_child(o); c != NULL; c = kap_json_next(c)) {
        const char *k = kap_json_key(c);
        size_t i;
        int known = 0;
        for (i = 0; fields[t][i]; i++)
            if (strcmp(fields[t][i], k) == 0)
                known = 1;
        if (!known) {
            kap_err_set(err, "unknown field \"%.64s\" in a %s message", k,
                        type_names[t]);
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

/* an absolute path without controls ("/..." up to CH_PATH_MAX bytes) */
static int
policy_path_ok(const char *p)
{
    size_t i, n = strlen(p);

    if (n < 2 || n > CH_PATH_MAX || p[0] != '/')
        return 0;
    for (i = 0; i < n; i++)
        if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
            return 0;
    return 1;
}

static int
parse_fields(struct ch_msg *m, const struct kap_json *o, struct kap_err *err)
{
    long long id;
    const char *verdict;

    switch (m->type) {
    case CH_HELLO:
        if (get_int(o, "v", 1, 1, 1000, &m->v, err) != KAP_OK
            || get_str(o, "name", 1, &m->name, err) != KAP_OK
            || get_str(o, "nonce", 1, &m->nonce, err) != KAP_OK)
            return KAP_ERROR;
        if (m->name[0] == '\0' || strlen(m->name) > CH_NAME_MAX) {
            kap_err_set(err, "\"name\" must have 1 to %d bytes", CH_NAME_MAX);
            return KAP_ERROR;
        }
        if (!is_hex(m->nonce, CH_HEX_LEN)) {
            kap_err_set(err, "\"nonce\" must be %d hex digits", CH_HEX_LEN);
            return KAP_ERROR;
        }
        if (get_str(o, "policy", 0, &m->policy, err) != KAP_OK)
            return KAP_ERROR;
        if (m->policy != NULL && !policy_path_ok(m->policy)) {
            kap_err_set(err, "\"policy\" must be an absolute path of 1 to %d"
                        " bytes without control characters", CH_PATH_MAX);
            return KAP_ERROR;
        }
        return KAP_OK;
    case CH_CHALLENGE:
        if (get_str(o, "nonce", 1, &m->nonce, err) != KAP_OK
            || get_str(o, "proof", 1, &m->proof, err) != KAP_OK)
            return KAP_ERROR;
        if (!is_hex(m->nonce, CH_HEX_LEN) || !is_hex(m->proof, CH_HEX_LEN)) {
            kap_err_set(err, "\"nonce\" and \"proof\" must be %d hex digits",
                        CH_HEX_LEN);
            return KAP_ERROR;
        }
        return KAP_OK;
    case CH_AUTH:
        if (get_str(o, "proof", 1, &m->proof, err) != KAP_OK)
            return KAP_ERROR;
        if (!is_hex(m->proof, CH_HEX_LEN)) {
            kap_err_set(err, "\"proof\" must be %d hex digits", CH_HEX_LEN);
            return KAP_ERROR;
        }
        return KAP_OK;
    case CH_READY:
        return KAP_OK;
    case CH_ERROR:
        return get_str(o, "message", 1, &m->message, err);
    case CH_ASK:
        if (get_int(o, "id", 1, 1, (1LL << 53), &id, err) != KAP_OK
            || get_str(o, "kind", 1, &m->kind, err) != KAP_OK
            || get_str(o, "subject", 1, &m->subject, err) != KAP_OK
            || get_int(o, "port", 0, 0, 65535, &m->port, err) != KAP_OK
            || get_str(o, "detail", 0, &m->detail, err) != KAP_OK
            || get_str(o, "client", 0, &m->client, err) != KAP_OK
            || get_str(o, "server", 0, &m->server, err) != KAP_OK
            || get_str(o, "rule", 0, &m->rule, err) != KAP_OK
            || get_str(o, "suggest", 0, &m->suggest, err) != KAP_OK)
            return KAP_ERROR;
        m->id = (uint64_t) id;
        if (kap_channel_kind_bit(m->kind) == 0) {
            kap_err_set(err, "unknown kind \"%.32s\"", m->kind);
            return KAP_ERROR;
        }
        return KAP_OK;
    case CH_ANSWER:
        if (get_int(o, "id", 1, 1, (1LL << 53), &id, err) != KAP_OK
            || get_str(o, "verdict", 1, &verdict, err) != KAP_OK
            || get_str(o, "reason", 0, &m->reason, err) != KAP_OK
            || get_str(o, "by", 0, &m->by, err) != KAP_OK)
            return KAP_ERROR;
        m->id = (uint64_t) id;
        if (strcmp(verdict, "allow") == 0)
            m->allow = 1;
        else if (strcmp(verdict, "deny") != 0) {
            kap_err_set(err, "\"verdict\" must be \"allow\" or \"deny\"");
            return KAP_ERROR;
        }
        if (kap_json_get(o, "always") != NULL) {
            m->always = kap_json_bool(kap_json_get(o, "always"));
            if (m->always < 0) {
                kap_err_set(err, "\"always\" must be true or false");
                return KAP_ERROR;
            }
        }
        return KAP_OK;
    case CH_AUDIT:
        m->event = kap_json_get(o, "event");
        if (kap_json_type(m->event) != KAP_JSON_OBJECT) {
            kap_err_set(err, "\"event\" must be an object");
            return KAP_ERROR;
        }
        return KAP_OK;
    default:
        return KAP_ERROR;
    }
}

int
kap_channel_msg_parse(const char *line, size_t len, struct ch_msg *m,
             struct kap_err *err)
{
    /* loose numbers: only audit timestamps and durations are not
       integers; ids and ports are checked integers (exact below 2^53) */
    struct kap_json_limits lim = { CH_LINE_MAX, 8, 64,
                                   KAP_JSON_LOOSE_NUMBERS };
    const char *type;
    size_t i;

    memset(m, 0, sizeof(*m));
    m->root = kap_json_parse(line, len, &lim, err);
    if (m->root == NULL)
        return KAP_ERROR;
    if (kap_json_type(m->root) != KAP_JSON_OBJECT) {
        kap_err_set(err, "a message must be a JSON object");
        goto bad;
    }
    if (get_str(m->root, "type", 1, &type, err) != KAP_OK)
        goto bad;
    for (i = 1; type_names[i]; i++)
        if (strcmp(type_names[i], type) == 0)
            m->type = (enum ch_type) i;
    if (m->type == CH_NONE) {
        kap_err_set(err, "unknown message type \"%.32s\"", type);
        goto bad;
    }
    if (only_fields(m->root, m->type, err) != KAP_OK
        || parse_fields(m, m->root, err) != KAP_OK)
        goto bad;
    return KAP_OK;
bad:
    kap_channel_msg_free(m);
    return KAP_ERROR;
}

void
kap_channel_msg_free(struct ch_msg *m)
{
    kap_json_free(m->root);
    memset(m, 0, sizeof(*m));
}

/* ---- builders ----------------------------------------------------------- */

static int
finish(struct kap_json_writer *w, struct kap_buf *out)
{
    if (kap_json_w_finish(w) != KAP_OK)
        return KAP_ERROR;
    return kap_buf_append(out, "\n", 1);
}

static void
kv(struct kap_json_writer *w, const char *k, const char *v)
{
    if (v == NULL)
        return;
    kap_json_w_key(w, k);
    kap_json_w_str(w, v);
}

int
kap_channel_put_hello(struct kap_buf *out, const char *name, const char *nonce,
                      const char *policy)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "hello");
    kap_json_w_key(&w, "v");
    kap_json_w_int(&w, CH_VERSION);
    kv(&w, "name", name);
    kv(&w, "nonce", nonce);
    kv(&w, "policy", policy);           /* omitted when NULL */
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}

int
kap_channel_put_challenge(struct kap_buf *out, const char *nonce, const char *proof)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "challenge");
    kv(&w, "nonce", nonce);
    kv(&w, "proof", proof);
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}

int
kap_channel_put_auth(struct kap_buf *out, const char *proof)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "auth");
    kv(&w, "proof", proof);
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}

int
kap_channel_put_ready(struct kap_buf *out)
{
    return kap_buf_append(out, "{\"type\":\"ready\"}\n", 17);
}

int
kap_channel_put_error(struct kap_buf *out, const char *message)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "error");
    kv(&w, "message", message);
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}

int
kap_channel_put_ask(struct kap_buf *out, uint64_t id, const char *kind,
           const char *subject, unsigned port, const char *detail,
           const char *client, const struct ch_ask_attrs *at)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "ask");
    kap_json_w_key(&w, "id");
    kap_json_w_uint(&w, id);
    kv(&w, "kind", kind);
    kv(&w, "subject", subject);
    if (port) {
        kap_json_w_key(&w, "port");
        kap_json_w_uint(&w, port);
    }
    kv(&w, "detail", detail);
    kv(&w, "client", client);
    if (at != NULL) {
        kv(&w, "server", at->server);
        kv(&w, "rule", at->rule);
        kv(&w, "suggest", at->suggest);
    }
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}

int
kap_channel_put_answer(struct kap_buf *out, uint64_t id, int allow, int always,
              const char *reason, const char *by)
{
    struct kap_json_writer w;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "answer");
    kap_json_w_key(&w, "id");
    kap_json_w_uint(&w, id);
    kv(&w, "verdict", allow ? "allow" : "deny");
    kap_json_w_key(&w, "always");
    kap_json_w_bool(&w, allow && always);
    kv(&w, "reason", reason);
    kv(&w, "by", by);
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}

int
kap_channel_put_audit(struct kap_buf *out, const struct kap_audit_event *ev)
{
    struct kap_json_writer w;
    size_t i;

    kap_json_w_init(&w, out);
    kap_json_w_obj_begin(&w);
    kv(&w, "type", "audit");
    kap_json_w_key(&w, "event");
    kap_json_w_obj_begin(&w);
    kap_json_w_key(&w, "ts");
    kap_json_w_double(&w, ev->ts);
    kv(&w, "kind", ev->kind ? kap_req_kind_name(ev->kind) : NULL);
    kv(&w, "module", ev->module);
    kv(&w, "event", ev->event);
    kv(&w, "subject", ev->subject);
    if (ev->port) {
        kap_json_w_key(&w, "port");
        kap_json_w_uint(&w, ev->port);
    }
    kv(&w, "action", ev->action);
    kv(&w, "reason", ev->reason);
    kv(&w, "decided_by", ev->decided_by);
    kv(&w, "detail", ev->detail);
    kv(&w, "client", ev->client);
    if (ev->nfields) {
        kap_json_w_key(&w, "fields");
        kap_json_w_obj_begin(&w);
        for (i = 0; i < ev->nfields && i < 32; i++) {
            const struct kap_audit_field *f = &ev->fields[i];
            size_t j;
            int dup = 0;
            if (f->name == NULL)
                continue;
            for (j = 0; j < i; j++)     /* a key twice: the host refuses */
                if (ev->fields[j].name != NULL
                    && strcmp(ev->fields[j].name, f->name) == 0)
                    dup = 1;
            if (dup)
                continue;
            kap_json_w_key(&w, f->name);
            if (f->str != NULL)
                kap_json_w_str(&w, f->str);
            else
                kap_json_w_double(&w, f->num);
        }
        kap_json_w_obj_end(&w);
    }
    kap_json_w_obj_end(&w);
    kap_json_w_obj_end(&w);
    return finish(&w, out);
}
