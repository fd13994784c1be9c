/*
 * kapd_network.c -- the built-in `network` module: the domain allowlist
 * policy shared by http_connect (CONNECT, plain HTTP) and dns, and the
 * answers to the two follow-up questions about an allowed request: may
 * this resolved address be dialled or answered (KAP_REQ_ADDR), and do
 * these first bytes of a tunnel go where the CONNECT said (KAP_REQ_FIRST).
 *
 *   network = {
 *     allow = [ "github.com", "*.githubusercontent.com", "github.com:22" ];
 *     deny  = [ "gist.github.com" ];
 *     ports = [ 80, 443 ];      # ports of an allow rule that lists none
 *     deny_addresses = [ "172.17.0.1" ];   # e.g. the Docker gateway
 *   };
 *
 * The rules are compiled into a kapd_match (kapd_match.h) once per
 * generation, in conf_parse, so that a bad rule is an error with its
 * file:line and a lookup never allocates.  Everything lives in the
 * generation pool.
 *
 * Names (connect, http, dns): an allow rule covering name and port
 * allows; a deny rule, or an allow rule for the name but not the port,
 * denies; a malformed name or literal is refused (KAP_REFUSE: observe
 * mode does not lift it); a name no rule mentions is DECLINED, so that
 * later hooks and kapd.policy.default (deny) decide it.
 *
 * Address check order (kapd_network_addr_check, KAP_REQ_ADDR):
 *   1. network.deny_addresses, or a network.deny address rule -> refused;
 *   2. this host's own interface addresses and its default gateways (in a
 *      sidecar: the Docker bridge gateway, i.e. the host) -> refused,
 *      unless network.allow lists that single address (a /32 or /128 rule,
 *      not a wider CIDR that merely covers it);
 *   3. an address rule of network.allow covering it (and the port, when
 *      sa has one) -> allowed, even in the built-in deny set when the rule
 *      lies inside the denied range (this is how a test or an intranet
 *      target is allowed on purpose: "10.0.0.0/8", "10.1.2.3"); a wider
 *      rule that merely covers a denied range does not open it;
 *   4. the built-in deny set (kap_addr_is_denied) -> refused;
 *   5. anything else is allowed.
 * A name rule never lets a name resolve into the deny set.  Address and
 * first-bytes questions are always decided here, never declined.
 *
 * Observe mode is the core's (kapd.policy.observe, kapd_chain.c).
 */
#include "kapd.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kapd/kap_addr.h>
#include "kapd_match.h"

#define NETWORK_KINDS (KAP_REQ_CONNECT | KAP_REQ_HTTP | KAP_REQ_DNS \
                       | KAP_REQ_ADDR | KAP_REQ_FIRST)

struct network_cidr {
    struct sockaddr_storage ss;       /* AF_INET or AF_INET6 */
    unsigned                plen;
    const char             *text;     /* as configured */
};

struct network_conf {
    struct kapd_match   *match;       /* allow + deny rules */
    int                  ports_set;
    uint16_t             ports[KAPD_MATCH_MAX_PORTS];
    size_t               nports;
    struct network_cidr *deny_addrs;  /* network.deny_addresses */
    size_t               ndeny_addrs;
    struct network_cidr *own;         /* this host's addresses and default
                                         gateways (/32, /128) */
    size_t               nown;
};

static const char *const network_keys[] = {
    "allow", "deny", "observe", "ports", "deny_addresses", NULL
};

static void *
network_conf_create(struct kap_gen *gen)
{
    struct network_conf *conf = kap_palloc(kap_gen_pool(gen), sizeof(*conf));

    return conf;
}

/* A list or array setting, or an error. */
static const config_setting_t *
network_list(const config_setting_t *group, const char *key,
             struct kap_err *err)
{
    config_setting_t *s = config_setting_get_member(group, key);

    if (s == NULL)
        return NULL;
    if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
        kap_err_at(err, s, "network.%s must be a list, e.g. %s = [ ... ]",
                   key, key);
        return NULL;
    }
    return s;
}

static int
network_parse_rules(struct kap_gen *gen, struct network_conf *conf,
                    const config_setting_t *group, const char *key,
                    int deny, struct kap_err *err)
{
    const config_setting_t *list;
    int                     i, n;

    (void)gen;
    list = network_list(group, key, err);
    if (list == NULL)
        return err->set ? KAP_ERROR : KAP_OK;
    n = config_setting_length(list);
    for (i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        const char             *text;

        if (e == NULL || config_setting_type(e) != CONFIG_TYPE_STRING) {
            kap_err_at(err, e ? e : list,
                       "network.%s: every entry must be a string", key);
            return KAP_ERROR;
        }
        text = config_setting_get_string(e);
        if (kapd_match_add(conf->match, deny, text,
                           config_setting_source_file(e),
                           config_setting_source_line(e), err) != KAP_OK)
            return KAP_ERROR;
    }
    return KAP_OK;
}

static int
network_conf_parse(struct kap_gen *gen, void *vconf,
                   const config_setting_t *group, struct kap_err *err)
{
    struct network_conf    *conf = vconf;
    struct kap_pool        *pool = kap_gen_pool(gen);
    const config_setting_t *list;
    int                     i, n;

    if (group == NULL)
        return KAP_OK;
    if (kap_conf_check_keys(group, network_keys, err) != KAP_OK)
        return KAP_ERROR;

    if (config_setting_get_member(group, "observe") != NULL) {
        kap_err_at(err, config_setting_get_member(group, "observe"),
                   "network.observe is now kapd.policy.observe (one observe "
                   "mode for every module): write kapd = { policy = { "
                   "observe = true; }; };");
        return KAP_ERROR;
    }

    list = network_list(group, "ports", err);
    if (err->set)
        return KAP_ERROR;
    if (list != NULL) {
        n = config_setting_length(list);
        if (n > KAPD_MATCH_MAX_PORTS) {
            kap_err_at(err, list, "network.ports: at most %d ports",
                       KAPD_MATCH_MAX_PORTS);
            return KAP_ERROR;
        }
        for (i = 0; i < n; i++) {
            const config_setting_t *e =
                config_setting_get_elem(list, (unsigned)i);
            long long v;
            if (e == NULL || (config_setting_type(e) != CONFIG_TYPE_INT
                              && config_setting_type(e) != CONFIG_TYPE_INT64)) {
                kap_err_at(err, e ? e : list,
                           "network.ports: every entry must be a number");
                return KAP_ERROR;
            }
            v = config_setting_get_int64(e);
            if (config_setting_type(e) == CONFIG_TYPE_INT)
                v = config_setting_get_int(e);
            if (v < 1 || v > 65535) {
                kap_err_at(err, e, "network.ports: %lld is not a port"
                           " (1-65535)", v);
                return KAP_ERROR;
            }
            conf->ports[conf->nports++] = (uint16_t)v;
        }
        conf->ports_set = 1;
    }

    conf->match = kapd_match_create(pool);
    if (conf->match == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    {
        /* size the table once for the whole list (100 000 rules) */
        const config_setting_t *a = config_setting_get_member(group, "allow");
        const config_setting_t *d = config_setting_get_member(group, "deny");
        size_t n_rules = (a ? (size_t)config_setting_length(a) : 0)
                         + (d ? (size_t)config_setting_length(d) : 0);
        if (kapd_match_reserve(conf->match, n_rules) != KAP_OK) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
    }
    if (network_parse_rules(gen, conf, group, "allow", 0, err) != KAP_OK
        || network_parse_rules(gen, conf, group, "deny", 1, err) != KAP_OK)
        return KAP_ERROR;

    list = network_list(group, "deny_addresses", err);
    if (err->set)
        return KAP_ERROR;
    if (list != NULL) {
        n = config_setting_length(list);
        conf->deny_addrs = kap_palloc(pool, sizeof(*conf->deny_addrs)
                                      * (size_t)(n > 0 ? n : 1));
        if (conf->deny_addrs == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
        for (i = 0; i < n; i++) {
            const config_setting_t *e =
                config_setting_get_elem(list, (unsigned)i);
            struct network_cidr *c = &conf->deny_addrs[conf->ndeny_addrs];
            if (e == NULL || config_setting_type(e) != CONFIG_TYPE_STRING) {
                kap_err_at(err, e ? e : list,
                           "network.deny_addresses: every entry must be a"
                           " string");
                return KAP_ERROR;
            }
            c->text = kap_pstrdup(pool, config_setting_get_string(e));
            if (c->text == NULL) {
                kap_err_set(err, "out of memory");
                return KAP_ERROR;
            }
            if (kapd_match_parse_cidr(c->text, &c->ss, &c->plen,
                                      config_setting_source_file(e),
                                      config_setting_source_line(e), err)
                != KAP_OK)
                return KAP_ERROR;
            conf->ndeny_addrs++;
        }
    }
    return KAP_OK;
}

#define NETWORK_OWN_MAX 256      /* interface addresses + gateways kept */

static void
network_own_add(struct network_conf *conf, const struct sockaddr *sa,
                const char *why)
{
    struct network_cidr *c;

    if (conf->nown == NETWORK_OWN_MAX)
        return;
    c = &conf->own[conf->nown];
    memset(c, 0, sizeof(*c));
    if (sa->sa_family == AF_INET) {
        memcpy(&c->ss, sa, sizeof(struct sockaddr_in));
        c->plen = 32;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(&c->ss, sa, sizeof(struct sockaddr_in6));
        c->plen = 128;
    } else {
        return;
    }
    c->text = why;
    conf->nown++;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The default gateways of this network namespace (/proc/net/route and
 * /proc/net/ipv6_route); missing files are fine. */
static void
network_gateways(struct network_conf *conf)
{
    char  line[512];
    FILE *f;

    f = fopen("/proc/net/route", "re");
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            char               ifname[64], dst[16], gw[16];
            struct sockaddr_in sin;
            unsigned long      g;
            char              *end;

            if (sscanf(line, "%63s %15s %15s", ifname, dst, gw) != 3
                || strcmp(dst, "00000000") != 0)
                continue;
            g = strtoul(gw, &end, 16);
            if (*end != '\0' || g == 0)
                continue;
            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            sin.sin_addr.s_addr = (uint32_t)g;   /* printed as stored */
            network_own_add(conf, (struct sockaddr *)&sin,
                            "the default gateway (the host)");
        }
        fclose(f);
    }
    f = fopen("/proc/net/ipv6_route", "re");
    if (f != NULL) {
        while (fgets(line, sizeof(line), f) != NULL) {
            char                dst[40], dplen[4], src[40], splen[4], nh[40];
            struct sockaddr_in6 s6;
            int                 i, zero = 1;

            if (sscanf(line, "%32s %2s %32s %2s %32s", dst, dplen, src,
                       splen, nh) != 5
                || strcmp(dplen, "00") != 0 || strlen(nh) != 32)
                continue;
            memset(&s6, 0, sizeof(s6));
            s6.sin6_family = AF_INET6;
            for (i = 0; i < 16; i++) {
                int hi = hexval(nh[2 * i]), lo = hexval(nh[2 * i + 1]);
                if (hi < 0 || lo < 0)
                    break;
                s6.sin6_addr.s6_addr[i] = (unsigned char)(hi << 4 | lo);
                if (s6.sin6_addr.s6_addr[i] != 0)
                    zero = 0;
            }
            if (i == 16 && !zero)
                network_own_add(conf, (struct sockaddr *)&s6,
                                "the default gateway (the host)");
        }
        fclose(f);
    }
}

/* 127.0.0.0/8 or ::1 */
static int
is_loopback_range(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *) sa;
        return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *) sa;
        return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
    }
    return 0;
}

/* This host's own addresses (not loopback's: the built-in set has them,
 * and a test may allow 127.0.0.0/8 on purpose) and its default gateways. */
static int
network_own_addrs(struct kap_pool *pool, struct network_conf *conf,
                  struct kap_err *err)
{
    struct ifaddrs *ifa, *i;

    conf->own = kap_palloc(pool, sizeof(*conf->own) * NETWORK_OWN_MAX);
    if (conf->own == NULL) {
        kap_err_set(err, "out of memory");
        return KAP_ERROR;
    }
    if (getifaddrs(&ifa) != 0) {
        kap_err_set(err, "getifaddrs: %s", strerror(errno));
        return KAP_ERROR;
    }
    for (i = ifa; i; i = i->ifa_next) {
        if (i->ifa_addr == NULL)
            continue;
        /*
         * Every address of this host counts, on lo too (an address such as
         * 10.0.0.1 put on lo is as much ours as one on eth0) -- except the
         * loopback range itself: it is in the built-in deny set already,
         * and a user who allows 127.0.0.0/8 means it.
         */
        if ((i->ifa_flags & IFF_LOOPBACK) && is_loopback_range(i->ifa_addr))
            continue;
        network_own_add(conf, i->ifa_addr, "this host's own address");
    }
    freeifaddrs(ifa);
    network_gateways(conf);
    return KAP_OK;
}

static int
network_conf_check(struct kap_gen *gen, void *vconf, struct kap_err *err)
{
    struct network_conf *conf = vconf;
    struct kap_pool     *pool = kap_gen_pool(gen);

    if (conf->match == NULL) {
        conf->match = kapd_match_create(pool);
        if (conf->match == NULL) {
            kap_err_set(err, "out of memory");
            return KAP_ERROR;
        }
    }
    if (conf->ports_set
        && kapd_match_set_default_ports(conf->match, conf->ports,
                                        conf->nports) != KAP_OK) {
        kap_err_set(err, "network.ports: too many ports");
        return KAP_ERROR;
    }
    return network_own_addrs(pool, conf, err);
}

/* Is the address of sa (v4, or v6 with mapped v4 unwrapped) in c? */
static int
network_cidr_has(const struct network_cidr *c, const struct sockaddr *sa)
{
    unsigned char a[16], b[16];
    int           family = kap_addr_raw(sa, a, NULL);

    if (family == 0 || kap_addr_raw((const struct sockaddr *)&c->ss, b, NULL)
                       != family)
        return 0;
    return kap_addr_prefix_eq(a, b, c->plen);
}

int
kapd_network_addr_check(struct kap_gen *gen, const struct sockaddr *sa,
                        const char **why)
{
    struct network_conf     *conf = NULL;
    struct kapd_match_result res;
    const char              *w = NULL;
    uint16_t                 port = 0;
    size_t                   i;
    struct sockaddr_storage  plain;

    if (why)
        *why = NULL;
    if (sa == NULL
        || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        if (why)
            *why = "not an IP address";
        return KAP_DECLINED;
    }
    /* ::ffff:a.b.c.d is a.b.c.d everywhere below */
    kap_addr_unmap(sa, &plain);
    sa = (const struct sockaddr *)&plain;
    if (gen != NULL)
        conf = kap_gen_module_conf(gen, "network");
    if (sa->sa_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    else
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);

    if (conf != NULL) {
        int exact = 0, listed = 0;

        for (i = 0; i < conf->ndeny_addrs; i++)
            if (network_cidr_has(&conf->deny_addrs[i], sa)) {
                if (why)
                    *why = "in network.deny_addresses";
                return KAP_DECLINED;
            }
        if (conf->match != NULL) {
            kapd_match_lookup_addr(conf->match, sa, port, &res);
            if (res.why == KAPD_MATCH_DENIED) {
                if (why)
                    *why = "denied by a network.deny address rule";
                return KAP_DECLINED;
            }
            if (res.why == KAPD_MATCH_ALLOWED) {
                listed = 1;
                exact = res.rule != NULL
                        && res.rule->plen == (sa->sa_family == AF_INET
                                              ? 32 : 128);
            }
        }
        for (i = 0; !exact && i < conf->nown; i++)
            if (network_cidr_has(&conf->own[i], sa)) {
                if (why)
                    *why = conf->own[i].text;
                return KAP_DECLINED;
            }
        if (listed) {
            unsigned dplen;
            /* on purpose = a rule inside the denied range ("10.0.0.0/8",
               a single address); a wider one that merely covers it
               ("128.0.0.0/1" over 169.254.0.0/16) does not open it */
            if (!kapd_addr_denied_range(sa, &dplen, &w)
                || res.rule->plen >= dplen)
                return KAP_OK;
            if (why)
                *why = w;
            return KAP_DECLINED;
        }
    }
    if (kap_addr_is_denied(sa, &w)) {
        if (why)
            *why = w;
        return KAP_DECLINED;
    }
    return KAP_OK;
}

/* ---- the policy hook -------------------------------------------------- */

static int
network_name(struct kap_req *r, struct network_conf *conf)
{
    struct kapd_match_result res;
    char                     reason[640];
    int                      verdict;

    verdict = kapd_match_lookup(conf->match, r->subject, r->port, &res);
    if (verdict == KAP_ALLOW) {
        kapd_match_reason(&res, r->port, reason, sizeof(reason));
        kap_req_decide(r, KAP_ALLOW, "network", reason);
        return KAP_OK;
    }
    if (res.why == KAPD_MATCH_NOT_LISTED)
        return KAP_DECLINED;
    kapd_match_reason(&res, r->port, reason, sizeof(reason));
    kap_req_decide(r, res.why == KAPD_MATCH_INVALID_NAME
                      || res.why == KAPD_MATCH_INVALID_ADDR ? KAP_REFUSE
                                                            : KAP_DENY,
                   "network", reason);
    return KAP_OK;
}

/* canonical address text (kap_addr_to_text) and a port into ss */
static int
addr_from_text(const char *text, uint16_t port, struct sockaddr_storage *ss)
{
    struct sockaddr_in  *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return KAP_OK;
    }
    if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        return KAP_OK;
    }
    return KAP_ERROR;
}

static int
network_addr(struct kap_req *r)
{
    struct sockaddr_storage ss;
    const char *host = kap_req_attr(r, "host");
    const char *w = NULL;
    char reason[600];

    memset(&ss, 0, sizeof(ss));
    if (addr_from_text(r->subject, r->port, &ss) != KAP_OK) {
        snprintf(reason, sizeof(reason), "not an IP address: %.200s",
                 r->subject);
        kap_req_decide(r, KAP_REFUSE, "network", reason);
        return KAP_OK;
    }
    if (kapd_network_addr_check(r->gen, (struct sockaddr *)&ss, &w)
        == KAP_OK) {
        kap_req_decide(r, KAP_ALLOW, "network", NULL);
        return KAP_OK;
    }
    if (host != NULL)
        snprintf(reason, sizeof(reason), "%.256s resolves to %s (%s)",
                 host, r->subject, w ? w : "denied address");
    else
        snprintf(reason, sizeof(reason), "%s is a denied address (%s)",
                 r->subject, w ? w : "denied address");
    kap_req_decide(r, KAP_DENY, "network", reason);
    return KAP_OK;
}

/* The first bytes of a tunnel must go where the CONNECT said. */
static int
network_first(struct kap_req *r)
{
    const char *first = kap_req_attr(r, "first");
    const char *sni = kap_req_attr(r, "sni");
    const char *tls = kap_req_attr(r, "tls");
    const char *hh = kap_req_attr(r, "http_host");
    const char *error = kap_req_attr(r, "error");
    const char *req = kap_req_attr(r, "sni_required");
    const char *lit = kap_req_attr(r, "literal");
    char why[400];

    if (first == NULL)
        first = "other";
    if (strcmp(first, "ssh") == 0) {
        kap_req_decide(r, KAP_ALLOW, "network", NULL);
        return KAP_OK;
    }
    if (strcmp(first, "http") == 0) {
        if (hh != NULL && kap_host_eq(hh, r->subject)) {
            kap_req_decide(r, KAP_ALLOW, "network", NULL);
            return KAP_OK;
        }
        snprintf(why, sizeof(why), "HTTP Host mismatch: %.256s",
                 hh ? hh : "(none)");
    } else if (strcmp(first, "tls") == 0) {
        if (sni != NULL) {
            if (kap_host_eq(sni, r->subject)) {
                kap_req_decide(r, KAP_ALLOW, "network", NULL);
                return KAP_OK;
            }
            snprintf(why, sizeof(why), "SNI mismatch: %.256s", sni);
        } else if (tls != NULL && strcmp(tls, "no_sni") == 0) {
            if ((req == NULL || strcmp(req, "1") != 0)
                || (lit != NULL && strcmp(lit, "1") == 0)) {
                kap_req_decide(r, KAP_ALLOW, "network", NULL);
                return KAP_OK;
            }
            snprintf(why, sizeof(why), "TLS without SNI");
        } else if (tls != NULL && strcmp(tls, "multi_sni") == 0) {
            snprintf(why, sizeof(why), "TLS with several server names");
        } else if (tls != NULL && strcmp(tls, "ech") == 0) {
            snprintf(why, sizeof(why), "TLS with encrypted ClientHello "
                     "(ECH/ESNI)");
        } else {
            snprintf(why, sizeof(why), "invalid TLS ClientHello: %.256s",
                     error ? error : "unparsable");
        }
    } else {
        snprintf(why, sizeof(why), "not TLS, SSH or HTTP: %.256s",
                 error ? error : "unrecognised");
    }
    kap_req_decide(r, KAP_DENY, "network", why);
    return KAP_OK;
}

static int
network_policy(struct kap_req *r, void *vconf)
{
    switch (r->kind) {
    case KAP_REQ_ADDR:
        return network_addr(r);
    case KAP_REQ_FIRST:
        return network_first(r);
    default:
        return network_name(r, vconf);
    }
}

static void
network_status(struct kap_gen *gen, void *vconf, struct kap_buf *out)
{
    struct network_conf *conf = vconf;

    (void)gen;
    kap_buf_printf(out, "network: %zu rules, %zu deny_addresses",
                   kapd_match_count(conf->match), conf->ndeny_addrs);
}

static const struct kap_hook network_hooks[] = {
    { KAP_HOOK_POLICY, NETWORK_KINDS, network_policy, NULL, NULL },
    { KAP_HOOK_NONE, 0, NULL, NULL, NULL }
};

const struct kap_module kapd_network_module = {
    KAP_MODULE_V1("network"),
    .version     = PACKAGE_VERSION,
    .flags       = KAP_MOD_POLICY,
    .conf_create = network_conf_create,
    .conf_parse  = network_conf_parse,
    .conf_check  = network_conf_check,
    .hooks       = network_hooks,
    .status      = network_status,
};
