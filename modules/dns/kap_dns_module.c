/*
 * kap_dns_module.c -- the dns module: a filtering DNS forwarder on UDP
 * and TCP (RFC 7766: length-prefixed, pipelined, idle timeout).
 *
 * Every query is parsed strictly (kap_dns_wire.c); anything malformed is
 * answered FORMERR/NOTIMP (or dropped when it is not a query at all),
 * audited, and never forwarded.  A well-formed query goes through the
 * type rules of `dns.types`, then the policy chain (kind KAP_REQ_DNS,
 * subject = the query name, or the address for reverse lookups); denied
 * names get NXDOMAIN for every type.  Allowed queries are asked of the
 * core's shared resolver (kap_resolve_raw) and the reply is rebuilt for
 * the client: its ID and question as asked, answers on the CNAME chain
 * only, addresses in the deny set filtered or refused (rebinding), TC
 * when the reply does not fit the client's UDP size.  Per-client token
 * buckets and a bound on outstanding queries keep it from being a lever.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include <kapd/kap_addr.h>
#include <kapd/kap_core.h>
#include <kapd/kap_resolver.h>

#include "kap_dns_wire.h"

#define DNS_NAME                "dns"
#define DNS_DEF_LISTEN          "127.0.0.1:53"
#define DNS_DEF_EDNS            1232
#define DNS_DEF_RATE            200         /* queries/s per client */
#define DNS_DEF_OUTSTANDING     1024
#define DNS_DEF_TCP_IDLE        10.0
#define DNS_TCP_PIPELINE        32          /* pending queries per conn */
#define DNS_TCP_WBUF_MAX        (256 * 1024)
#define DNS_RATE_SLOTS          4096
#define DNS_MAX_TYPE_RULES      64
#define DNS_CACHE_SLOTS         8192        /* direct-mapped, per generation */
#define DNS_CACHE_MAX_REPLY     4096        /* larger replies are not cached */
#define DNS_CACHE_MAX_TTL       3600
#define DNS_CACHE_MAX_RRS       64
#define DNS_REPLY_SMALL         (KAP_DNS_HDR_LEN + KAP_DNS_NAME_MAX + 4 + 64)

enum dns_mode {
    M_POLICY = 0,   /* ask the policy; forward if allowed */
    M_REFUSE,       /* REFUSED, never forwarded */
    M_NODATA,       /* ask the policy; allowed: empty NOERROR */
    M_ADDRESS,      /* PTR: ask the policy about the address */
    M_HINFO         /* ANY: ask the policy; allowed: RFC 8482 HINFO */
};
static const char *const dns_mode_names[] = {
    "policy", "refuse", "nodata", "address", "hinfo", NULL
};

struct dns_type_rule {
    uint16_t type;
    int      mode;
};

/* One cached reply (as rebuilt for a client, before TC). */
struct dns_cache_entry {
    uint32_t       hash;
    size_t         keylen;
    unsigned char  key[KAP_DNS_NAME_MAX + 8];
    double         stored;
    double         expires;
    unsigned char *reply;
    size_t         len;
    uint16_t       ttl_off[DNS_CACHE_MAX_RRS];
    size_t         nttl;
    int            rcode;
    unsigned       answers;
    unsigned       removed;          /* addresses the filter removed */
    const char    *why;              /* static */
};

struct dns_conf {
    struct dns_cache_entry **cache;      /* DNS_CACHE_SLOTS, lazily */
    unsigned long long   cache_hits;
    const char         **listen;
    size_t               nlisten;
    size_t               nlisten_one;     /* listen_udp + listen_tcp */
    struct dns_type_rule types[DNS_MAX_TYPE_RULES];
    size_t               ntypes;
    int                  rebinding;       /* 0 filter, 1 refuse; -1 unset */
    long long            rate_limit;      /* -1 unset, 0 off */
    long long            burst;           /* -1 unset */
    long long            max_outstanding; /* -1 unset */
    double               tcp_idle;        /* < 0 unset */
    long long            edns_size;       /* -1 unset */
    int                  observe;         /* kapd.policy.observe: 0 filter, 1 forward */
};

struct dns_tcp;

/* One query in flight. */
struct dnsq {
    struct kap_pool      *pool;      /* owns dnsq, r */
    struct kap_gen       *gen;       /* referenced */
    struct dns_conf      *conf;
    struct kap_dns_query  q;
    char                  tname[24];
    char                  client[64];
    int                   mode;
    /* UDP */
    struct kap_listen    *ls;
    struct sockaddr_storage peer;
    socklen_t             peerlen;
    /* TCP */
    struct dns_tcp       *t;
    struct dnsq          *prev, *next;
    uint64_t              conn_id;
    struct kap_req       *r;
    struct kap_resolve   *res;
};

/* One TCP (or unix stream) client. */
struct dns_tcp {
    struct kap_conn *c;
    struct dns_conf *conf;
    ev_io            rio, wio;
    ev_timer         idle;
    ev_timer         closer;         /* deferred kap_conn_close() */
    unsigned char   *rbuf;           /* 2 + 65535 */
    size_t           rlen;
    struct kap_buf   wbuf;
    size_t           woff;
    struct dnsq     *pending;
    unsigned         npending;
    int              eof;
    int              reading;
    int              closed;
};

/* Process-wide counters and the rate limiter (survive reloads). */
static unsigned long long dns_nqueries, dns_nforwarded, dns_ndenied,
                          dns_nmalformed, dns_nratelimited;
static unsigned dns_outstanding;

struct dns_rate_slot {
    unsigned char addr[16];
    int           family;
    double        tokens;
    double        last;
    double        logged;
};
static struct dns_rate_slot dns_rate[DNS_RATE_SLOTS];

/* -- configuration -------------------------------------------------------- */

static void
dns_cache_free(void *data)
{
    struct dns_conf *c = data;
    size_t i;

    if (c->cache == NULL)
        return;
    for (i = 0; i < DNS_CACHE_SLOTS; i++)
        if (c->cache[i] != NULL) {
            free(c->cache[i]->reply);
            free(c->cache[i]);
        }
    free(c->cache);
    c->cache = NULL;
}

static void *
dns_conf_create(struct kap_gen *gen)
{
    struct dns_conf *c = kap_palloc(kap_gen_pool(gen), sizeof(*c));

    if (c == NULL)
        return NULL;
    if (kap_pool_cleanup_add(kap_gen_pool(gen), dns_cache_free, c)
        != KAP_OK)
        return NULL;
    c->rebinding = -1;
    c->rate_limit = -1;
    c->burst = -1;
    c->max_outstanding = -1;
    c->tcp_idle = -1.0;
    c->edns_size = -1;
    return c;
}

static uint16_t
dns_type_by_name(const char *name)
{
    ldns_rr_type t;

    if (strcasecmp(name, "ANY") == 0)
        return 255;
    if (strncasecmp(name, "TYPE", 4) == 0 && name[4] >= '0'
        && name[4] <= '9') {
        char *end;
        long v = strtol(name + 4, &end, 10);
        if (*end == '\0' && v > 0 && v < 65536)
            return (uint16_t)v;
        return 0;
    }
    t = ldns_get_rr_type_by_name(name);
    return (uint16_t)t;
}

static int
dns_set_type(struct dns_conf *c, uint16_t type, int mode)
{
    size_t i;

    for (i = 0; i < c->ntypes; i++)
        if (c->types[i].type == type) {
            c->types[i].mode = mode;
            return KAP_OK;
        }
    if (c->ntypes >= DNS_MAX_TYPE_RULES)
        return KAP_ERROR;
    c->types[c->ntypes].type = type;
    c->types[c->ntypes].mode = mode;
    c->ntypes++;
    return KAP_OK;
}

static int
dns_parse_types(struct dns_conf *c, const config_setting_t *g,
                struct kap_err *err)
{
    int i, n, mode;

    if (!config_setting_is_group(g)) {
        kap_err_at(err, g, "dns: \"types\" must be a group, e.g. "
                   "types = { PTR = \"refuse\"; }");
        return KAP_ERROR;
    }
    n = config_setting_length(g);
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(e);
        const char *val = config_setting_get_string(e);
        uint16_t type = dns_type_by_name(name);
        int k;
        if (type == 0) {
            kap_err_at(err, e, "dns: unknown record type \"%s\"", name);
            return KAP_ERROR;
        }
        if (val == NULL) {
            kap_err_at(err, e, "dns: types.%s must be a string", name);
            return KAP_ERROR;
        }
        mode = -1;
        for (k = 0; dns_mode_names[k] != NULL; k++)
            if (strcmp(val, dns_mode_names[k]) == 0)
                mode = k;
        if (mode < 0) {
            kap_err_at(err, e, "dns: types.%s: \"%s\" is not one of "
                       "policy, refuse, nodata, address, hinfo", name, val);
            return KAP_ERROR;
        }
        if ((mode == M_ADDRESS && type != LDNS_RR_TYPE_PTR)
            || (mode == M_HINFO && type != 255)) {
            kap_err_at(err, e, "dns: \"%s\" applies only to %s", val,
                       mode == M_ADDRESS ? "PTR" : "ANY");
            return KAP_ERROR;
        }
        if (type == 251 || type == 252) {
            kap_err_at(err, e, "dns: zone transfers are always refused");
            return KAP_ERROR;
        }
        if (dns_set_type(c, type, mode) != KAP_OK) {
            kap_err_at(err, e, "dns: too many type rules");
            return KAP_ERROR;
        }
    }
    return KAP_OK;
}

/* listen_udp / listen_tcp: one socket type per address (unix paths). */
static int
dns_parse_listen1(struct kap_gen *gen, struct dns_conf *c,
                  const config_setting_t *group, const char *key,
                  enum kap_listen_type type, struct kap_err *err)
{
    const char **list = NULL;
    size_t n = 0, i;
    const config_setting_t *s = config_setting_get_member(group, key);
    int rc = kap_conf_get_strlist(group, key, kap_gen_pool(gen), &list, &n,
                                  err);

    if (rc == KAP_ERROR)
        return KAP_ERROR;
    for (i = 0; i < n; i++)
        if (kap_listen_add(gen, DNS_NAME, type, list[i], s, err) != KAP_OK)
            return KAP_ERROR;
    c->nlisten_one += n;
    return KAP_OK;
}

static int
dns_conf_parse(struct kap_gen *gen, void *conf,
               const config_setting_t *group, struct kap_err *err)
{
    static const char *const known[] = {
        "listen", "listen_udp", "listen_tcp", "types", "rebinding", "rate_limit", "burst",
        "max_outstanding", "tcp_idle_timeout", "edns_size", "observe", NULL
    };
    static const char *const rebind[] = { "filter", "refuse", NULL };
    static const char *const observe[] = { "filter", "forward", NULL };
    struct dns_conf *c = conf;
    struct kap_pool *pool = kap_gen_pool(gen);
    const config_setting_t *s;
    size_t i;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, known, err) != KAP_OK)
        return KAP_ERROR;
    if (kap_conf_get_strlist(group, "listen", pool, &c->listen, &c->nlisten,
                             err) == KAP_ERROR)
        return KAP_ERROR;
    s = config_setting_get_member(group, "listen");
    for (i = 0; i < c->nlisten; i++) {
        if (kap_listen_add(gen, DNS_NAME, KAP_LISTEN_UDP, c->listen[i], s,
                           err) != KAP_OK
            || kap_listen_add(gen, DNS_NAME, KAP_LISTEN_TCP, c->listen[i], s,
                              err) != KAP_OK)
            return KAP_ERROR;
    }
    if (c->listen != NULL && c->nlisten == 0) {
        kap_err_at(err, s, "dns: listen is empty");
        return KAP_ERROR;
    }
    if (dns_parse_listen1(gen, c, group, "listen_udp", KAP_LISTEN_UDP, err)
        != KAP_OK
        || dns_parse_listen1(gen, c, group, "listen_tcp", KAP_LISTEN_TCP, err)
           != KAP_OK)
        return KAP_ERROR;
    s = config_setting_get_member(group, "types");
    if (s != NULL && dns_parse_types(c, s, err) != KAP_OK)
        return KAP_ERROR;
    if (kap_conf_get_enum(group, "rebinding", rebind, &c->rebinding, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_int(group, "rate_limit", 0, 1000000, &c->rate_limit,
                         err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_int(group, "burst", 1, 10000000, &c->burst, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_int(group, "max_outstanding", 1, 1000000,
                         &c->max_outstanding, err) == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_secs(group, "tcp_idle_timeout", &c->tcp_idle, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (c->tcp_idle != -1.0 && (c->tcp_idle <= 0.0 || c->tcp_idle > 3600)) {
        kap_err_at(err, config_setting_get_member(group, "tcp_idle_timeout"),
                   "dns: tcp_idle_timeout must be in (0, 3600] seconds");
        return KAP_ERROR;
    }
    if (kap_conf_get_int(group, "edns_size", 512, 4096, &c->edns_size, err)
        == KAP_ERROR)
        return KAP_ERROR;
    if (kap_conf_get_enum(group, "observe", observe, &c->observe, err)
        == KAP_ERROR)
        return KAP_ERROR;
    return KAP_OK;
}

static int
dns_conf_check(struct kap_gen *gen, void *conf,
               struct kap_err *err)
{
    struct dns_conf *c = conf;
    size_t i;
    static const struct dns_type_rule defaults[] = {
        { 255, M_REFUSE },                     /* ANY */
        { LDNS_RR_TYPE_NULL, M_REFUSE },
        { LDNS_RR_TYPE_PTR, M_ADDRESS },
        { 64, M_NODATA },                      /* SVCB: no ECH configs */
        { 65, M_NODATA },                      /* HTTPS */
        { LDNS_RR_TYPE_TXT, M_POLICY },
    };

    if (c->listen == NULL && c->nlisten_one == 0) {
        c->listen = kap_palloc(kap_gen_pool(gen), 2 * sizeof(*c->listen));
        if (c->listen == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        c->listen[0] = DNS_DEF_LISTEN;
        c->nlisten = 1;
        if (kap_listen_add(gen, DNS_NAME, KAP_LISTEN_UDP, DNS_DEF_LISTEN,
                           NULL, err) != KAP_OK
            || kap_listen_add(gen, DNS_NAME, KAP_LISTEN_TCP, DNS_DEF_LISTEN,
                              NULL, err) != KAP_OK)
            return KAP_ERROR;
    }
    for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        size_t k;
        int found = 0;
        for (k = 0; k < c->ntypes; k++)
            found |= c->types[k].type == defaults[i].type;
        if (!found && dns_set_type(c, defaults[i].type, defaults[i].mode)
                      != KAP_OK) {
            kap_err_set(err, "dns: too many type rules");
            return KAP_ERROR;
        }
    }
    if (c->rebinding < 0)
        c->rebinding = 0;
    if (c->rate_limit < 0)
        c->rate_limit = DNS_DEF_RATE;
    if (c->burst < 0)
        c->burst = c->rate_limit > 0 ? 2 * c->rate_limit : 1;
    if (c->max_outstanding < 0)
        c->max_outstanding = DNS_DEF_OUTSTANDING;
    if (c->tcp_idle < 0.0)
        c->tcp_idle = DNS_DEF_TCP_IDLE;
    if (c->edns_size < 0)
        c->edns_size = DNS_DEF_EDNS;
    return KAP_OK;
}

static int
dns_type_mode(const struct dns_conf *c, uint16_t type)
{
    size_t i;

    for (i = 0; i < c->ntypes; i++)
        if (c->types[i].type == type)
            return c->types[i].mode;
    return M_POLICY;
}

/* -- rate limiting -------------------------------------------------------- */

/* Returns 1 when the client may send one more query now. */
static int
dns_rate_ok(const struct dns_conf *c,
            const struct sockaddr_storage *peer, int *log_it)
{
    unsigned char a[16];
    int fam = peer->ss_family;
    size_t alen, i;
    uint32_t h = 2166136261u;
    struct dns_rate_slot *s;
    double now = kap_now();

    *log_it = 0;
    if (c->rate_limit == 0)
        return 1;
    memset(a, 0, sizeof(a));
    if (fam == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)peer)->sin_addr, 4);
        alen = 4;
    } else if (fam == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
        alen = 16;
    } else {
        alen = 0;     /* unix: one bucket for all */
    }
    for (i = 0; i < alen; i++) {
        h ^= a[i];
        h *= 16777619u;
    }
    h ^= (uint32_t)fam;
    s = &dns_rate[h % DNS_RATE_SLOTS];
    if (s->family != fam || memcmp(s->addr, a, sizeof(a)) != 0
        || s->last == 0.0) {
        s->family = fam;
        memcpy(s->addr, a, sizeof(a));
        s->tokens = (double)c->burst;
        s->last = now;
        s->logged = 0.0;
    }
    s->tokens += (now - s->last) * (double)c->rate_limit;
    if (s->tokens > (double)c->burst)
        s->tokens = (double)c->burst;
    s->last = now;
    if (s->tokens >= 1.0) {
        s->tokens -= 1.0;
        return 1;
    }
    if (now - s->logged >= 1.0) {
        s->logged = now;
        *log_it = 1;
    }
    return 0;
}

/* -- audit helpers -------------------------------------------------------- */

static void
dns_audit(struct dnsq *dq, const char *event, const char *action,
          const char *reason, const struct kap_audit_field *f,
          size_t nf)
{
    struct kap_audit_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.kind = KAP_REQ_DNS;
    ev.module = DNS_NAME;
    ev.event = event;
    ev.subject = dq->q.has_question ? dq->q.name : "";
    ev.action = action;
    ev.reason = reason;
    ev.decided_by = DNS_NAME;
    ev.detail = dq->q.has_question ? dq->tname : NULL;
    ev.client = dq->client;
    ev.conn_id = dq->conn_id;
    ev.gen_id = kap_gen_id(dq->gen);
    ev.fields = f;
    ev.nfields = nf;
    kap_audit_emit(dq->gen, &ev);
}

/* -- TCP plumbing (declared early: replies go through it) ----------------- */

static void dns_tcp_send(struct dns_tcp *t, const unsigned char *p,
                         size_t len);
static void dns_tcp_after_query(struct dns_tcp *t);

/* -- query life ----------------------------------------------------------- */

static void
dnsq_cleanup(void *data)
{
    struct dnsq *dq = data;

    if (dq->res != NULL) {
        kap_resolve_cancel(dq->res);
        dq->res = NULL;
    }
    if (dns_outstanding > 0)
        dns_outstanding--;
    if (dq->gen != NULL)
        kap_gen_unref(dq->gen);
}

static struct dnsq *
dnsq_new(struct kap_gen *gen, struct dns_conf *conf,
         const char *client)
{
    struct kap_pool *pool = kap_pool_create();
    struct dnsq *dq;

    if (pool == NULL)
        return NULL;
    dq = kap_palloc(pool, sizeof(*dq));
    if (dq == NULL || kap_pool_cleanup_add(pool, dnsq_cleanup, dq) != KAP_OK) {
        kap_pool_destroy(pool);
        return NULL;
    }
    dq->pool = pool;
    dq->gen = gen;
    kap_gen_ref(gen);
    dq->conf = conf;
    dns_outstanding++;
    if (client != NULL) {
        size_t n = strlen(client);
        if (n >= sizeof(dq->client))
            n = sizeof(dq->client) - 1;
        memcpy(dq->client, client, n);
        dq->client[n] = '\0';
    }
    return dq;
}

static void
dnsq_unlink(struct dnsq *dq)
{
    struct dns_tcp *t = dq->t;

    if (t == NULL)
        return;
    if (dq->prev != NULL)
        dq->prev->next = dq->next;
    else
        t->pending = dq->next;
    if (dq->next != NULL)
        dq->next->prev = dq->prev;
    dq->prev = dq->next = NULL;
    t->npending--;
    dq->t = NULL;
}

/* Send reply (may be NULL: no reply) and free dq. */
static void
dnsq_finish(struct dnsq *dq, const unsigned char *reply,
            size_t len)
{
    struct dns_tcp *t = dq->t;

    if (t != NULL) {
        dnsq_unlink(dq);
        kap_pool_destroy(dq->pool);
        if (reply != NULL && len > 0)
            dns_tcp_send(t, reply, len);
        dns_tcp_after_query(t);
        return;
    }
    if (reply != NULL && len > 0)
        (void)kap_dgram_send(dq->ls, (const struct sockaddr *)&dq->peer,
                             dq->peerlen, reply, len);
    kap_pool_destroy(dq->pool);
}

static size_t
dnsq_maxlen(const struct dnsq *dq)
{
    size_t m;

    if (dq->t != NULL)
        return 65535;
    if (!dq->q.edns)
        return KAP_DNS_UDP_MIN;
    m = dq->q.edns_udp;
    if (m < KAP_DNS_UDP_MIN)
        m = KAP_DNS_UDP_MIN;
    if (m > (size_t)dq->conf->edns_size)
        m = (size_t)dq->conf->edns_size;
    return m;
}

static void
dnsq_finish_tc(struct dnsq *dq, int rcode)
{
    unsigned char out[DNS_REPLY_SMALL];
    size_t n = kap_dns_error_reply(&dq->q, rcode, 1,
                                   (unsigned)dq->conf->edns_size, out,
                                   sizeof(out));
    dnsq_finish(dq, out, n);
}

static void
dnsq_reply_rcode(struct dnsq *dq, int rcode)
{
    unsigned char out[DNS_REPLY_SMALL];
    size_t n = kap_dns_error_reply(&dq->q, rcode, 0,
                                   (unsigned)dq->conf->edns_size, out,
                                   sizeof(out));
    dnsq_finish(dq, out, n);
}

/* A refusal by this module (malformed, type rules, bad names): decided
 * and audited once by the core (kap_req_refuse), like every decision. */
static void
dns_refuse_audit(struct dnsq *dq, const char *reason)
{
    struct kap_req *r = kap_req_new(dq->gen, dq->pool, KAP_REQ_DNS, DNS_NAME,
                                    dq->q.has_question ? dq->q.name : "");

    if (r == NULL)
        return;
    r->detail = dq->q.has_question ? dq->tname : NULL;
    r->client = dq->client;
    kap_req_refuse(r, reason);
}

/* Refuse without asking the policy (type rules, bad names, ...). */
static void
dnsq_refuse(struct dnsq *dq, int rcode, const char *reason)
{
    dns_ndenied++;
    dns_refuse_audit(dq, reason);
    dnsq_reply_rcode(dq, rcode);
}

/* An address in an answer: a KAP_REQ_ADDR question (subject the address,
 * attribute "host" the query name) that must be answered at once; a
 * denied one is filtered out or refuses the answer (dns.rebinding). */
static int
dns_addr_deny(void *ctx, const struct sockaddr *sa,
              const char **why)
{
    struct dnsq *dq = ctx;
    char at[KAP_ADDR_TEXT_MAX];
    struct kap_attr a[1];
    struct kap_req *r;
    int deny = 1;

    *why = "denied address";
    if (kap_addr_to_text(sa, at, sizeof(at)) == NULL)
        return 1;
    /* in the query's pool: freed with the query, no pool per address */
    r = kap_req_new(dq->gen, dq->pool, KAP_REQ_ADDR, DNS_NAME, at);
    if (r != NULL) {
        a[0].name = "host";
        a[0].value = dq->q.name;
        r->attrs = a;
        r->nattrs = 1;
        r->client = dq->client;
        r->detail = dq->tname;
        (void)kap_policy_check(r, NULL, NULL);
        deny = r->verdict != KAP_ALLOW;
        if (deny)
            *why = strcmp(r->decided_by ? r->decided_by : "", "network") == 0
                   ? "address in the deny set" : "address denied by policy";
        r->attrs = NULL;                /* a is gone when this returns */
        r->nattrs = 0;
    }
    return deny;
}

/* -- answer cache ---------------------------------------------------------- */

/* Key: lower-cased question name, type, class, RD/CD/AD, EDNS, DO. */
static size_t
dns_cache_key(const struct kap_dns_query *q, unsigned char *k,
              uint32_t *hash)
{
    size_t i, n = q->qname_len;
    uint32_t h = 2166136261u;

    for (i = 0; i < n; i++) {
        unsigned char ch = q->qname[i];
        k[i] = (ch >= 'A' && ch <= 'Z') ? (unsigned char)(ch + 32) : ch;
    }
    k[n++] = (unsigned char)(q->qtype >> 8);
    k[n++] = (unsigned char)q->qtype;
    k[n++] = (unsigned char)(q->qclass >> 8);
    k[n++] = (unsigned char)q->qclass;
    k[n++] = (unsigned char)(q->flags & 0x0130);
    k[n++] = (unsigned char)((q->edns ? 1 : 0) | (q->edns_do ? 2 : 0));
    for (i = 0; i < n; i++) {
        h ^= k[i];
        h *= 16777619u;
    }
    *hash = h;
    return n;
}

static void
dns_cache_put(struct dnsq *dq, const unsigned char *reply,
              size_t len, const struct kap_dns_answer_opts *o)
{
    struct dns_conf *c = dq->conf;
    struct dns_cache_entry *e;
    uint32_t minttl;
    size_t slot;

    if (o->truncated || len > DNS_CACHE_MAX_REPLY
        || (o->rcode != KAP_DNS_NOERROR && o->rcode != KAP_DNS_NXDOMAIN))
        return;
    if (c->cache == NULL) {
        c->cache = calloc(DNS_CACHE_SLOTS, sizeof(*c->cache));
        if (c->cache == NULL)
            return;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return;
    if (kap_dns_reply_ttls(reply, len, e->ttl_off, DNS_CACHE_MAX_RRS,
                           &e->nttl, &minttl) != 0
        || minttl == UINT32_MAX || minttl == 0
        || (e->reply = malloc(len)) == NULL) {
        free(e);
        return;
    }
    memcpy(e->reply, reply, len);
    e->len = len;
    e->keylen = dns_cache_key(&dq->q, e->key, &e->hash);
    e->stored = kap_now();
    e->expires = e->stored + (minttl > DNS_CACHE_MAX_TTL ? DNS_CACHE_MAX_TTL
                                                         : minttl);
    e->rcode = o->rcode;
    e->answers = o->answers;
    e->removed = o->removed;
    e->why = o->why;
    slot = e->hash % DNS_CACHE_SLOTS;
    if (c->cache[slot] != NULL) {
        free(c->cache[slot]->reply);
        free(c->cache[slot]);
    }
    c->cache[slot] = e;
}

static void
dnsq_audit_answer(struct dnsq *dq, int rcode, unsigned answers,
                  int truncated, int cached)
{
    struct kap_audit_field f[5];
    char rcbuf[16];
    const char *rc = rcbuf;

    switch (rcode) {
    case 0: rc = "NOERROR"; break;
    case 2: rc = "SERVFAIL"; break;
    case 3: rc = "NXDOMAIN"; break;
    case 5: rc = "REFUSED"; break;
    default: snprintf(rcbuf, sizeof(rcbuf), "RCODE%d", rcode); break;
    }
    memset(f, 0, sizeof(f));
    f[0].name = "rcode";
    f[0].str = rc;
    f[1].name = "answers";
    f[1].num = answers;
    f[2].name = "truncated";
    f[2].num = truncated;
    f[3].name = "transport";
    f[3].str = dq->t != NULL ? "tcp" : "udp";
    f[4].name = "cached";
    f[4].num = cached;
    dns_audit(dq, "dns_answer", "answered", NULL, f, 5);
}

static void
dnsq_audit_rebinding(struct dnsq *dq, unsigned removed,
                     const char *why, int refused)
{
    struct kap_audit_field f[1];

    memset(f, 0, sizeof(f));
    f[0].name = "removed";
    f[0].num = removed;
    dns_audit(dq, "dns_rebinding", refused ? "refused" : "filtered",
              why ? why : "address in the deny set", f, 1);
}

/* Answer dq from the cache; returns 1 when it did (dq is gone then). */
static int
dns_cache_answer(struct dnsq *dq)
{
    struct dns_conf *c = dq->conf;
    struct dns_cache_entry *e;
    unsigned char key[KAP_DNS_NAME_MAX + 8];
    unsigned char out[DNS_CACHE_MAX_REPLY];
    uint32_t hash, age;
    size_t klen, i, slot;
    double now = kap_now();

    if (c->cache == NULL)
        return 0;
    klen = dns_cache_key(&dq->q, key, &hash);
    slot = hash % DNS_CACHE_SLOTS;
    e = c->cache[slot];
    if (e == NULL || e->hash != hash || e->keylen != klen
        || memcmp(e->key, key, klen) != 0)
        return 0;
    if (now >= e->expires) {
        free(e->reply);
        free(e);
        c->cache[slot] = NULL;
        return 0;
    }
    c->cache_hits++;
    if (e->removed > 0)
        dnsq_audit_rebinding(dq, e->removed, e->why, 0);
    if (e->len > dnsq_maxlen(dq)) {
        dnsq_audit_answer(dq, e->rcode, 0, 1, 1);
        dnsq_finish_tc(dq, e->rcode);
        return 1;
    }
    memcpy(out, e->reply, e->len);
    KAP_DNSWIRE_PUT16(out, dq->q.id);
    memcpy(out + KAP_DNS_HDR_LEN, dq->q.qname, dq->q.qname_len);
    age = (uint32_t)(now - e->stored);
    for (i = 0; i < e->nttl; i++) {
        unsigned char *p = out + e->ttl_off[i];
        uint32_t ttl = KAP_DNSWIRE_GET32(p);
        ttl = ttl > age ? ttl - age : 0;
        KAP_DNSWIRE_PUT32(p, ttl);
    }
    dnsq_audit_answer(dq, e->rcode, e->answers, 0, 1);
    dnsq_finish(dq, out, e->len);
    return 1;
}

static void
dnsq_resolved(void *data, int rc, const unsigned char *wire,
              size_t len, int rcode, int secure, int bogus,
              const char *errmsg)
{
    struct dnsq *dq = data;
    struct kap_dns_answer_opts o;
    unsigned char *out = NULL;
    size_t outlen = 0;
    struct kap_audit_field f[1];

    (void)rcode;
    (void)secure;
    dq->res = NULL;
    if (rc != KAP_OK || bogus) {
        KAP_DEBUG(DNS_NAME, dq->conn_id, "%s %s: upstream failed: %s",
                  dq->q.name, dq->tname, errmsg ? errmsg : "bogus");
        f[0].name = "rcode";
        f[0].str = "SERVFAIL";
        dns_audit(dq, "dns_answer", "servfail",
                  errmsg ? errmsg : "DNSSEC validation failed", f, 1);
        dnsq_reply_rcode(dq, KAP_DNS_SERVFAIL);
        return;
    }
    memset(&o, 0, sizeof(o));
    o.maxlen = dnsq_maxlen(dq);
    o.edns_size = (unsigned)dq->conf->edns_size;
    o.deny = dns_addr_deny;
    o.deny_ctx = dq;
    o.refuse = dq->conf->rebinding == 1;
    if (kap_dns_answer_reply(&dq->q, wire, len, &o, &out, &outlen) != 0) {
        dns_audit(dq, "dns_answer", "servfail",
                  "resolver answer unusable", NULL, 0);
        dnsq_reply_rcode(dq, KAP_DNS_SERVFAIL);
        return;
    }
    if (o.removed > 0)
        dnsq_audit_rebinding(dq, o.removed, o.why, o.refuse);
    if (!o.refuse || o.removed == 0)
        dns_cache_put(dq, out, outlen, &o);
    dnsq_audit_answer(dq, o.rcode, o.answers, o.truncated, 0);
    dnsq_finish(dq, out, outlen);
    free(out);
}

static void
dnsq_policy_done(struct kap_req *r, void *data)
{
    struct dnsq *dq = data;
    unsigned char out[DNS_REPLY_SMALL + 32];
    size_t n;

    if (r->verdict != KAP_ALLOW) {
        dns_ndenied++;
        dnsq_reply_rcode(dq, KAP_DNS_NXDOMAIN);  /* empty, no SOA */
        return;
    }
    switch (dq->mode) {
    case M_NODATA:
        dnsq_reply_rcode(dq, KAP_DNS_NOERROR);
        return;
    case M_HINFO:
        n = kap_dns_hinfo_reply(&dq->q, (unsigned)dq->conf->edns_size, out,
                                sizeof(out));
        dnsq_finish(dq, out, n);
        return;
    default:
        break;
    }
    if (dns_outstanding > (unsigned)dq->conf->max_outstanding) {
        dns_audit(dq, "dns_answer", "servfail", "too many outstanding queries",
                  NULL, 0);
        dnsq_reply_rcode(dq, KAP_DNS_SERVFAIL);
        return;
    }
    if (dns_cache_answer(dq))
        return;
    dns_nforwarded++;
    dq->res = kap_resolve_raw(dq->gen, dq->q.name, dq->q.qtype,
                              dq->q.qclass, dnsq_resolved, dq);
    if (dq->res == NULL) {
        dns_audit(dq, "dns_answer", "servfail", "resolver unavailable",
                  NULL, 0);
        dnsq_reply_rcode(dq, KAP_DNS_SERVFAIL);
    }
}

/* Handle one raw query.  dq is filled with transport and client data. */
static void
dnsq_run(struct dnsq *dq, const unsigned char *pkt, size_t len)
{
    const char *why = NULL;
    const char *subject;
    char abuf[INET6_ADDRSTRLEN];
    struct sockaddr_storage ss;
    enum kap_dns_parse pr;
    uint16_t qt;

    dns_nqueries++;
    pr = kap_dns_parse_query(pkt, len, &dq->q, &why);
    if (dq->q.has_question)
        kap_dns_type_name(dq->q.qtype, dq->tname, sizeof(dq->tname));
    if (pr != KAP_DNS_PARSE_OK) {
        dns_nmalformed++;
        if (pr == KAP_DNS_PARSE_DROP) {
            char dw[200];
            snprintf(dw, sizeof(dw), "dropped, no answer: %s",
                     why ? why : "malformed");
            dns_refuse_audit(dq, dw);
        } else {
            dns_refuse_audit(dq, why ? why : "malformed query");
        }
        KAP_DEBUG(DNS_NAME, dq->conn_id, "malformed query from %s: %s",
                  dq->client, why);
        if (pr == KAP_DNS_PARSE_DROP) {
            dnsq_finish(dq, NULL, 0);
            return;
        }
        dq->q.edns = dq->q.edns && pr == KAP_DNS_PARSE_BADVERS;
        dnsq_reply_rcode(dq, pr == KAP_DNS_PARSE_NOTIMP ? KAP_DNS_NOTIMP
                             : pr == KAP_DNS_PARSE_BADVERS ? KAP_DNS_BADVERS
                             : KAP_DNS_FORMERR);
        return;
    }
    qt = dq->q.qtype;
    if (qt == 251 || qt == 252) {
        dnsq_refuse(dq, KAP_DNS_REFUSED, "zone transfers are refused");
        return;
    }
    if (qt == LDNS_RR_TYPE_OPT || qt == LDNS_RR_TYPE_TSIG || qt == 249) {
        dns_nmalformed++;
        dns_refuse_audit(dq, "meta type as question");
        dnsq_reply_rcode(dq, KAP_DNS_FORMERR);
        return;
    }
    if (qt == 0 || (qt >= 128 && qt <= 254)) {
        dnsq_refuse(dq, KAP_DNS_REFUSED, "meta or reserved query type");
        return;
    }
    if (dq->q.qclass != LDNS_RR_CLASS_IN) {
        dnsq_refuse(dq, KAP_DNS_REFUSED, "query class is not IN");
        return;
    }
    if (!dq->q.name_ok) {
        dnsq_refuse(dq, KAP_DNS_REFUSED,
                    dq->q.nlabels == 0 ? "root name"
                    : "name has characters other than letters, digits, "
                      "'-' and '_'");
        return;
    }
    dq->mode = dns_type_mode(dq->conf, qt);
    if (dq->mode == M_REFUSE) {
        dnsq_refuse(dq, KAP_DNS_REFUSED, "query type refused by dns.types");
        return;
    }
    subject = dq->q.name;
    if (dq->mode == M_ADDRESS && kap_dns_ptr_addr(dq->q.name, &ss)) {
        const void *src = ss.ss_family == AF_INET
            ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (inet_ntop(ss.ss_family, src, abuf, sizeof(abuf)) != NULL)
            subject = abuf;
    }
    dq->r = kap_req_new(dq->gen, dq->pool, KAP_REQ_DNS, DNS_NAME, subject);
    if (dq->r == NULL) {
        dnsq_reply_rcode(dq, KAP_DNS_SERVFAIL);
        return;
    }
    dq->r->detail = kap_pstrdup(dq->pool, dq->tname);
    dq->r->client = dq->client;
    dq->r->port = 0;
    /*
     * kapd.policy.observe allows what the allowlist would deny, but DNS
     * keeps filtering: proxied clients never resolve for themselves, and
     * an open resolver is an exfiltration channel exactly while a user is
     * building a list.  dns.observe = "forward" changes it.
     */
    if (dq->conf->observe == 0)
        dq->r->flags |= KAP_REQ_F_FILTER;
    if (kap_policy_check(dq->r, dnsq_policy_done, dq) == KAP_OK)
        dnsq_policy_done(dq->r, dq);
}

/* -- UDP ------------------------------------------------------------------ */

static void
dns_datagram(struct kap_listen *ls, void *conf,
             struct kap_dgram *d)
{
    struct dns_conf *c = conf;
    struct kap_gen *gen = kap_gen_current();
    struct dnsq *dq;
    int log_it;

    if (gen == NULL || c == NULL)
        return;
    if (!dns_rate_ok(c, &d->peer, &log_it)) {
        dns_nratelimited++;
        if (log_it) {
            struct kap_audit_event ev;
            memset(&ev, 0, sizeof(ev));
            ev.kind = KAP_REQ_DNS;
            ev.module = DNS_NAME;
            ev.event = "rate_limited";
            ev.action = "dropped";
            ev.reason = "per-client query rate exceeded";
            ev.client = d->peer_text;
            ev.gen_id = kap_gen_id(gen);
            kap_audit_emit(gen, &ev);
            KAP_LOG(KAP_LOG_NOTICE, DNS_NAME, 0,
                    "rate limit: dropping queries from %s", d->peer_text);
        }
        return;
    }
    dq = dnsq_new(gen, c, d->peer_text);
    if (dq == NULL)
        return;
    dq->ls = ls;
    if (d->peerlen <= sizeof(dq->peer)) {
        memcpy(&dq->peer, &d->peer, d->peerlen);
        dq->peerlen = d->peerlen;
    }
    dnsq_run(dq, d->data, d->len);
}

/* -- TCP ------------------------------------------------------------------ */

/*
 * Close t from the loop, not from inside the current callback chain:
 * t stays valid (closed set, watchers stopped) until the closer timer
 * runs kap_conn_close(), whose pool cleanup is dns_tcp_cleanup.
 */
static void
dns_tcp_closer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns_tcp *t = w->data;

    (void)loop;
    (void)revents;
    kap_conn_close(t->c);
}

static void
dns_tcp_close(struct dns_tcp *t)
{
    struct ev_loop *loop = kap_loop();

    if (t->closed)
        return;
    t->closed = 1;
    ev_io_stop(loop, &t->rio);
    ev_io_stop(loop, &t->wio);
    ev_timer_stop(loop, &t->idle);
    ev_timer_set(&t->closer, 0.0, 0.0);
    ev_timer_start(loop, &t->closer);
}

static void
dns_tcp_cleanup(void *data)
{
    struct dns_tcp *t = data;
    struct ev_loop *loop = kap_loop();

    t->closed = 1;
    ev_io_stop(loop, &t->rio);
    ev_io_stop(loop, &t->wio);
    ev_timer_stop(loop, &t->idle);
    ev_timer_stop(loop, &t->closer);
    while (t->pending != NULL) {
        struct dnsq *dq = t->pending;
        dnsq_unlink(dq);
        kap_pool_destroy(dq->pool);
    }
    kap_buf_free(&t->wbuf);
}

static void
dns_tcp_flush(struct dns_tcp *t)
{
    while (t->woff < t->wbuf.len) {
        ssize_t n = write(t->c->fd, t->wbuf.data + t->woff,
                          t->wbuf.len - t->woff);
        if (n > 0) {
            t->woff += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ev_io_start(kap_loop(), &t->wio);
            return;
        }
        dns_tcp_close(t);
        return;
    }
    kap_buf_reset(&t->wbuf);
    t->woff = 0;
    ev_io_stop(kap_loop(), &t->wio);
}

static void
dns_tcp_send(struct dns_tcp *t, const unsigned char *p,
             size_t len)
{
    unsigned char pre[2];

    if (t->closed || len > 65535)
        return;
    KAP_DNSWIRE_PUT16(pre, len);
    if (kap_buf_append(&t->wbuf, pre, 2) != KAP_OK
        || kap_buf_append(&t->wbuf, p, len) != KAP_OK) {
        dns_tcp_close(t);
        return;
    }
    ev_timer_again(kap_loop(), &t->idle);
    if (!ev_is_active(&t->wio))
        dns_tcp_flush(t);
}

static void dns_tcp_read_cb(struct ev_loop *loop, ev_io *w, int revents);

/* After a query finished (or was queued): resume reading, close at EOF. */
static void
dns_tcp_after_query(struct dns_tcp *t)
{
    if (t->closed)
        return;
    if (t->eof) {
        if (t->npending == 0 && t->woff >= t->wbuf.len)
            dns_tcp_close(t);
        return;
    }
    if (!t->reading && t->npending < DNS_TCP_PIPELINE
        && t->wbuf.len - t->woff < DNS_TCP_WBUF_MAX) {
        t->reading = 1;
        ev_io_start(kap_loop(), &t->rio);
        /* frames may already be buffered */
        ev_feed_event(kap_loop(), &t->rio, EV_READ);
    }
}

static void
dns_tcp_write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_tcp *t = w->data;

    (void)loop;
    (void)revents;
    dns_tcp_flush(t);
    if (!t->closed && t->woff >= t->wbuf.len)
        dns_tcp_after_query(t);
}

static void
dns_tcp_idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct dns_tcp *t = w->data;

    (void)loop;
    (void)revents;
    if (t->npending > 0) {
        ev_timer_again(kap_loop(), &t->idle);
        return;
    }
    KAP_DEBUG(DNS_NAME, t->c->id, "tcp idle timeout");
    dns_tcp_close(t);
}

/* Run every complete frame in rbuf.  Returns 0, or -1 when t was closed. */
static int
dns_tcp_frames(struct dns_tcp *t)
{
    size_t off = 0;

    while (!t->closed && t->rlen - off >= 2) {
        size_t flen = KAP_DNSWIRE_GET16(t->rbuf + off);
        struct dnsq *dq;
        int log_it;
        if (t->npending >= DNS_TCP_PIPELINE
            || t->wbuf.len - t->woff >= DNS_TCP_WBUF_MAX)
            break;
        if (t->rlen - off < 2 + flen)
            break;
        if (!dns_rate_ok(t->conf, &t->c->peer, &log_it)) {
            dns_nratelimited++;
            dns_tcp_close(t);
            return -1;
        }
        dq = dnsq_new(t->c->gen, t->conf, t->c->peer_text);
        if (dq == NULL) {
            dns_tcp_close(t);
            return -1;
        }
        dq->conn_id = t->c->id;
        dq->t = t;
        dq->next = t->pending;
        if (t->pending != NULL)
            t->pending->prev = dq;
        t->pending = dq;
        t->npending++;
        off += 2 + flen;
        /* a zero-length frame is a malformed query like any other */
        dnsq_run(dq, t->rbuf + off - flen, flen);
    }
    if (t->closed)
        return -1;
    if (off > 0) {
        memmove(t->rbuf, t->rbuf + off, t->rlen - off);
        t->rlen -= off;
    }
    return 0;
}

static void
dns_tcp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct dns_tcp *t = w->data;
    ssize_t n;

    (void)loop;
    (void)revents;
    if (t->closed)
        return;
    if (dns_tcp_frames(t) != 0)
        return;
    if (t->npending >= DNS_TCP_PIPELINE
        || t->wbuf.len - t->woff >= DNS_TCP_WBUF_MAX) {
        t->reading = 0;
        ev_io_stop(kap_loop(), &t->rio);
        return;
    }
    n = read(t->c->fd, t->rbuf + t->rlen, 2 + 65535 - t->rlen);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        dns_tcp_close(t);
        return;
    }
    if (n == 0) {
        t->eof = 1;
        t->reading = 0;
        ev_io_stop(kap_loop(), &t->rio);
        dns_tcp_after_query(t);
        return;
    }
    t->rlen += (size_t)n;
    if (dns_tcp_frames(t) != 0)
        return;
    /*
     * Only a whole message earns more time: a partial one must complete
     * within tcp_idle_timeout, so that a client dribbling a byte at a time
     * cannot hold the connection (and its buffer) forever.
     */
    if (t->rlen == 0)
        ev_timer_again(kap_loop(), &t->idle);
}

static void
dns_accept(struct kap_conn *c)
{
    struct dns_tcp *t = kap_palloc(c->pool, sizeof(*t));

    if (t == NULL || (t->rbuf = kap_palloc(c->pool, 2 + 65535)) == NULL
        || kap_pool_cleanup_add(c->pool, dns_tcp_cleanup, t) != KAP_OK) {
        kap_conn_close(c);
        return;
    }
    t->c = c;
    t->conf = c->conf;
    c->data = t;
    ev_io_init(&t->rio, dns_tcp_read_cb, c->fd, EV_READ);
    t->rio.data = t;
    ev_io_init(&t->wio, dns_tcp_write_cb, c->fd, EV_WRITE);
    t->wio.data = t;
    ev_init(&t->idle, dns_tcp_idle_cb);
    t->idle.repeat = t->conf->tcp_idle;
    t->idle.data = t;
    ev_init(&t->closer, dns_tcp_closer_cb);
    t->closer.data = t;
    ev_timer_again(kap_loop(), &t->idle);
    t->reading = 1;
    ev_io_start(kap_loop(), &t->rio);
}

static void
dns_close(struct kap_conn *c)
{
    /* the core frees c and runs dns_tcp_cleanup from its pool */
    (void)c;
}

/* -- module --------------------------------------------------------------- */

static void
dns_status(struct kap_gen *gen, void *conf, struct kap_buf *out)
{
    struct dns_conf *c = conf;

    (void)gen;
    kap_buf_printf(out, "%zu listen, %llu queries, %llu forwarded, "
                   "%llu denied, %llu malformed, %llu rate-limited, "
                   "%u outstanding, %llu cache hits", c->nlisten + c->nlisten_one, dns_nqueries,
                   dns_nforwarded, dns_ndenied, dns_nmalformed,
                   dns_nratelimited, dns_outstanding, c->cache_hits);
}

static const struct kap_listener_ops dns_listener_ops = {
    .accept = dns_accept,
    .datagram = dns_datagram,
    .close = dns_close,
};

const struct kap_module kap_dns_module = {
    KAP_MODULE_V1(DNS_NAME),
    .version = KAP_VERSION,
    .flags = KAP_MOD_LISTENER,
    .conf_create = dns_conf_create,
    .conf_parse = dns_conf_parse,
    .conf_check = dns_conf_check,
    .listener = &dns_listener_ops,
    .status = dns_status,
};
