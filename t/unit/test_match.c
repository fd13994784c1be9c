/*
 * test_match.c -- the allowlist matcher (core/kapd_match.c): exact and
 * wildcard names, deny precedence, case and trailing dot, ports, IP
 * literal and CIDR rules, invalid names, bad rules with file:line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kapd.h"
#include "kapd_match.h"
#include <kapd/kap_addr.h>
#include "tap.h"

static struct kap_pool *pool;

static struct kapd_match *
build(const char *const *allow, const char *const *deny)
{
    struct kapd_match *m = kapd_match_create(pool);
    struct kap_err     err;
    int                i;

    memset(&err, 0, sizeof(err));
    for (i = 0; allow && allow[i]; i++)
        if (kapd_match_add(m, 0, allow[i], "kap.conf", 10 + i, &err)
            != KAP_OK)
            diag("allow %s: %s", allow[i], err.msg);
    for (i = 0; deny && deny[i]; i++)
        if (kapd_match_add(m, 1, deny[i], "kap.conf", 100 + i, &err)
            != KAP_OK)
            diag("deny %s: %s", deny[i], err.msg);
    return m;
}

/* "allow", "deny" verdict of subject on port. */
static const char *
v(const struct kapd_match *m, const char *subject, unsigned port)
{
    struct kapd_match_result res;
    return kapd_match_lookup(m, subject, (uint16_t)port, &res) == KAP_ALLOW
           ? "allow" : "deny";
}

static const char *
reason(const struct kapd_match *m, const char *subject, unsigned port)
{
    static char              buf[512];
    struct kapd_match_result res;
    kapd_match_lookup(m, subject, (uint16_t)port, &res);
    return kapd_match_reason(&res, (uint16_t)port, buf, sizeof(buf));
}

/* The error for a single bad rule, "file:line: msg", or "OK". */
static const char *
bad(int deny, const char *rule)
{
    static char        buf[1024];
    struct kapd_match *m = kapd_match_create(pool);
    struct kap_err     err;

    memset(&err, 0, sizeof(err));
    if (kapd_match_add(m, deny, rule, "kap.conf", 7, &err) == KAP_OK)
        return "OK";
    snprintf(buf, sizeof(buf), "%s:%d: %s", err.file, err.line, err.msg);
    return buf;
}

static int
has(const char *s, const char *sub)
{
    return s && strstr(s, sub) != NULL;
}

/* ---- the network module ------------------------------------------------ */

struct ngen {
    struct kap_gen         gen;
    struct kapd_gen_module gm;
    config_t               cfg;
};

static void
ngen_free(struct ngen *t)
{
    if (t == NULL)
        return;
    config_destroy(&t->cfg);
    kap_pool_destroy(t->gen.pool);
    free(t);
}

/* A generation with only `network`, configured by text; NULL + err. */
static struct ngen *
ngen_new(const char *text, struct kap_err *err)
{
    const struct kap_module *mod = &kapd_network_module;
    struct ngen             *t = calloc(1, sizeof(*t));

    t->gen.magic = KAPD_GEN_MAGIC;
    t->gen.id = 3;
    t->gen.refs = 1;
    t->gen.pool = kap_pool_create();
    t->gm.mod = mod;
    t->gen.mods = &t->gm;
    t->gen.nmods = 1;
    memset(err, 0, sizeof(*err));
    config_init(&t->cfg);
    if (config_read_string(&t->cfg, text) != CONFIG_TRUE) {
        kap_err_set(err, "libconfig line %d: %s",
                    config_error_line(&t->cfg), config_error_text(&t->cfg));
        ngen_free(t);
        return NULL;
    }
    t->gm.conf = mod->conf_create(&t->gen);
    if (mod->conf_parse(&t->gen, t->gm.conf,
                        config_lookup(&t->cfg, "network"), err) != KAP_OK
        || mod->conf_check(&t->gen, t->gm.conf, err) != KAP_OK) {
        ngen_free(t);
        return NULL;
    }
    return t;
}

/* Run the policy hook on a request made by the core:
 * "allow"/"deny"/"declined", reason in *why. */
static const char *
ask(struct ngen *t, uint32_t kind, const char *subject, unsigned port,
    const char **why)
{
    static char      reason[700];
    struct kap_pool *p = kap_pool_create();
    struct kap_req  *r = kap_req_new(&t->gen, p, kind, "test", subject);
    const char      *res;
    int              rc;

    if (r == NULL) {
        kap_pool_destroy(p);
        return "error";
    }
    r->port = (uint16_t)port;
    rc = kapd_network_module.hooks[0].policy(r, t->gm.conf);
    snprintf(reason, sizeof(reason), "%s", r->reason ? r->reason : "(none)");
    if (why)
        *why = reason;
    if (rc == KAP_DECLINED)
        res = r->verdict == KAP_VERDICT_NONE ? "declined" : "error";
    else if (rc != KAP_OK || r->decided_by == NULL
             || strcmp(r->decided_by, "network") != 0)
        res = "error";
    else
        res = r->verdict == KAP_ALLOW ? "allow"
            : r->verdict == KAP_DENY ? "deny" : "none";
    kap_pool_destroy(p);
    return res;
}

/* kapd_network_addr_check of a literal (with port) */
static int
addr_ok(struct ngen *t, const char *lit, unsigned port, const char **why)
{
    struct sockaddr_storage ss;

    if (kap_addr_parse_literal(lit, &ss) != KAP_OK)
        return -1;
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    return kapd_network_addr_check(t ? &t->gen : NULL,
                                   (struct sockaddr *)&ss, why);
}

static void
test_network(void)
{
    struct ngen    *t;
    struct kap_err  err;
    const char     *why = NULL;

    t = ngen_new(
        "network = {\n"
        "  allow = [ \"github.com\", \"*.example.com\", \"10.0.0.0/8\",\n"
        "            \"127.0.0.1:8080\", \"github.com:22\" ];\n"
        "  deny = [ \"bad.example.com\" ];\n"
        "  ports = [ 443 ];\n"
        "  deny_addresses = [ \"172.17.0.1\", \"203.0.113.0/24\" ];\n"
        "};\n", &err);
    ok(t != NULL, "network config parses (%s)", err.msg);
    if (t == NULL)
        return;
    is_str(ask(t, KAP_REQ_CONNECT, "github.com", 443, &why), "allow",
           "policy: allowed");
    is_str(why, "allow \"github.com\" (line 2)", "policy reason");
    is_str(ask(t, KAP_REQ_CONNECT, "github.com", 80, &why), "deny",
           "ports = [443]: 80 denied");
    ok(has(why, "port 80 not allowed"), "port reason: %s", why);
    is_str(ask(t, KAP_REQ_CONNECT, "github.com", 22, NULL), "allow",
           "github.com:22");
    is_str(ask(t, KAP_REQ_HTTP, "a.example.com", 443, NULL), "allow",
           "http kind");
    is_str(ask(t, KAP_REQ_DNS, "bad.example.com", 0, &why), "deny",
           "dns deny");
    is_str(why, "deny \"bad.example.com\" (line 4)", "deny reason line 4");
    is_str(ask(t, KAP_REQ_DNS, "evil.net", 0, &why), "declined",
           "not listed: declined (later hooks and the default decide)");
    is_str(ask(t, KAP_REQ_CONNECT, "10.9.8.7", 443, NULL), "allow",
           "IP literal in listed CIDR");
    is_str(ask(t, KAP_REQ_CONNECT, "0xa.0x9.8.7", 443, NULL), "allow",
           "hex IP literal in listed CIDR");
    is_str(ask(t, KAP_REQ_CONNECT, "140.82.114.4", 443, NULL), "declined",
           "IP literal not listed: declined (bypass class 3)");
    is_str(ask(t, KAP_REQ_CONNECT, "2130706433", 8080, NULL), "allow",
           "decimal 127.0.0.1 matches its rule");
    is_str(ask(t, KAP_REQ_CONNECT, "2130706433", 443, NULL), "deny",
           "decimal 127.0.0.1 other port");

    /* the resolved-address check */
    is_int(addr_ok(t, "140.82.114.4", 443, &why), KAP_OK, "public address");
    is_int(addr_ok(t, "127.0.0.1", 443, &why), KAP_DECLINED, "loopback");
    is_str(why, "loopback", "loopback why");
    is_int(addr_ok(t, "127.0.0.1", 8080, NULL), KAP_OK,
           "listed loopback:port allowed");
    is_int(addr_ok(t, "127.0.0.2", 8080, NULL), KAP_DECLINED,
           "other loopback address");
    is_int(addr_ok(t, "10.1.1.1", 443, NULL), KAP_OK,
           "listed CIDR overrides RFC 1918");
    is_int(addr_ok(t, "192.168.1.1", 443, NULL), KAP_DECLINED, "RFC 1918");
    is_int(addr_ok(t, "169.254.169.254", 80, &why), KAP_DECLINED,
           "metadata (bypass class 6)");
    is_int(addr_ok(t, "172.17.0.1", 443, &why), KAP_DECLINED,
           "deny_addresses");
    ok(has(why, "deny_addresses"), "deny_addresses why: %s", why);
    is_int(addr_ok(t, "::ffff:172.17.0.1", 443, NULL), KAP_DECLINED,
           "deny_addresses via mapped v6");
    is_int(addr_ok(t, "203.0.113.77", 443, NULL), KAP_DECLINED,
           "deny_addresses CIDR");
    is_int(addr_ok(t, "64:ff9b::a9fe:a9fe", 443, NULL), KAP_DECLINED,
           "NAT64 metadata");
    is_int(addr_ok(t, "2606:4700::1111", 443, NULL), KAP_OK, "public v6");
    is_int(addr_ok(NULL, "127.0.0.1", 443, NULL), KAP_DECLINED,
           "no generation: built-in set still applies");
    {
        struct ifaddrs *ifa, *i;
        char            txt[KAP_ADDR_TEXT_MAX];
        const char     *own = NULL;
        if (getifaddrs(&ifa) == 0) {
            for (i = ifa; i && own == NULL; i = i->ifa_next) {
                const char *w = NULL;
                if (i->ifa_addr == NULL
                    || (i->ifa_addr->sa_family != AF_INET
                        && i->ifa_addr->sa_family != AF_INET6))
                    continue;
                if (kap_addr_is_denied(i->ifa_addr, &w))
                    continue;
                own = kap_addr_to_text(i->ifa_addr, txt, sizeof(txt));
            }
            freeifaddrs(ifa);
        }
        if (own != NULL) {
            is_int(addr_ok(t, own, 443, &why), KAP_DECLINED,
                   "this host's own address");
        } else {
            ok(1, "# SKIP no public interface address here");
        }
    }
    ngen_free(t);

    /* the default gateway (the Docker host) and own addresses: a CIDR that
     * covers them does not open them, only the single address does */
    {
        FILE         *f = fopen("/proc/net/route", "re");
        char          line[512], ifn[64], dst[16], gw[16], txt[64];
        unsigned long g = 0;
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "%63s %15s %15s", ifn, dst, gw) == 3
                && strcmp(dst, "00000000") == 0
                && (g = strtoul(gw, NULL, 16)) != 0)
                break;
        if (f)
            fclose(f);
        if (g != 0) {
            struct in_addr ia;
            char           conf[300];
            ia.s_addr = (uint32_t)g;
            inet_ntop(AF_INET, &ia, txt, sizeof(txt));
            snprintf(conf, sizeof(conf), "network = { allow = ["
                     " \"0.0.0.0/1\", \"128.0.0.0/1\" ]; };");
            t = ngen_new(conf, &err);
            ok(t != NULL, "gateway CIDR config (%s)", err.msg);
            if (t) {
                is_int(addr_ok(t, txt, 443, &why), KAP_DECLINED,
                       "default gateway refused under a covering CIDR");
                ok(has(why, "gateway"), "gateway why: %s", why);
                ngen_free(t);
            }
            snprintf(conf, sizeof(conf), "network = { allow = [ \"%s\" ];"
                     " };", txt);
            t = ngen_new(conf, &err);
            if (t) {
                is_int(addr_ok(t, txt, 443, NULL), KAP_OK,
                       "gateway allowed when listed exactly");
                ngen_free(t);
            }
        } else {
            ok(1, "# SKIP no IPv4 default route here");
            ok(1, "# SKIP no IPv4 default route here");
            ok(1, "# SKIP no IPv4 default route here");
            ok(1, "# SKIP no IPv4 default route here");
        }
    }

    /* observe is the core's now: the old key says where it went */
    t = ngen_new("network = {\n allow = [ \"github.com\" ];\n observe = true; };",
                 &err);
    ok(t == NULL, "network.observe is refused");
    ok(has(err.msg, "kapd.policy.observe") && err.line == 3,
       "and the error names kapd.policy.observe, line 3: %s", err.msg);
    t = ngen_new("network = { allow = [ \"github.com\" ]; };", &err);
    ok(t != NULL, "plain config");
    if (t == NULL)
        return;
    is_str(ask(t, KAP_REQ_CONNECT, "b\xc3\xbc" "cher.de", 443, &why), "deny",
           "invalid names are denied (refused: observe does not lift it)");
    ngen_free(t);

    /* no network group: deny everything */
    t = ngen_new("", &err);
    ok(t != NULL, "no network group");
    if (t != NULL) {
        is_str(ask(t, KAP_REQ_CONNECT, "github.com", 443, NULL), "declined",
               "no group: nothing allowed (the default denies)");
        is_int(addr_ok(t, "8.8.8.8", 443, NULL), KAP_OK,
               "no group: public address passes the address check");
        ngen_free(t);
    }

    /* config errors, with their line */
    t = ngen_new("network = {\n allow = [\n \"github.com\",\n \"*\" ];\n};",
                 &err);
    ok(t == NULL && err.line == 4 && has(err.msg, "defeat"),
       "bare * refused at line 4: %d %s", err.line, err.msg);
    t = ngen_new("network = {\n deny = [ \"*evil.com\" ];\n};", &err);
    ok(t == NULL && err.line == 2, "bad deny at line 2: %d %s", err.line,
       err.msg);
    t = ngen_new("network = { allow = \"github.com\"; };", &err);
    ok(t == NULL && has(err.msg, "list"), "allow must be a list: %s",
       err.msg);
    t = ngen_new("network = { allow = [ 42 ]; };", &err);
    ok(t == NULL && has(err.msg, "string"), "entries are strings: %s",
       err.msg);
    t = ngen_new("network = {\n\n ports = [ 443, 0 ];\n};", &err);
    ok(t == NULL && err.line == 3, "bad port at line 3: %d %s", err.line,
       err.msg);
    t = ngen_new("network = { deny_addresses = [ \"github.com\" ]; };", &err);
    ok(t == NULL && err.set, "deny_addresses must be addresses: %s",
       err.msg);
    t = ngen_new("network = { alow = [ \"github.com\" ]; };", &err);
    ok(t == NULL && has(err.msg, "alow"), "unknown key: %s", err.msg);
    t = ngen_new("network = { observe = 1; };", &err);
    ok(t == NULL && err.set, "observe must be a bool: %s", err.msg);
}

int
main(void)
{
    struct kapd_match *m;

    pool = kap_pool_create();

    /* exact and wildcard */
    {
        static const char *const allow[] = {
            "github.com", "*.githubusercontent.com", "Example.ORG.", NULL };
        m = build(allow, NULL);
        is_int(kapd_match_count(m), 3, "three rules");
        is_str(v(m, "github.com", 443), "allow", "exact");
        is_str(v(m, "api.github.com", 443), "deny", "exact does not cover sub");
        is_str(v(m, "notgithub.com", 443), "deny", "no suffix over-match");
        is_str(v(m, "github.com.evil.net", 443), "deny", "no prefix match");
        is_str(v(m, "raw.githubusercontent.com", 443), "allow", "wildcard 1");
        is_str(v(m, "a.b.c.d.githubusercontent.com", 443), "allow",
               "wildcard any depth");
        is_str(v(m, "githubusercontent.com", 443), "deny",
               "wildcard does not match the bare suffix");
        is_str(v(m, "xgithubusercontent.com", 443), "deny",
               "wildcard is label-aligned");
        is_str(v(m, "GitHub.COM", 443), "allow", "case folded");
        is_str(v(m, "github.com.", 443), "allow", "trailing dot ignored");
        is_str(v(m, "github.com..", 443), "deny", "two trailing dots refused");
        is_str(v(m, "example.org", 443), "allow", "rule case and dot folded");
        is_str(v(m, "", 443), "deny", "empty name");
        is_str(v(m, ".github.com", 443), "deny", "leading empty label");
        is_str(v(m, "a..github.com", 443), "deny", "empty label");
        is_str(v(m, "gith\xc3\xbc" "b.com", 443), "deny", "raw UTF-8 refused");
        is_str(reason(m, "gith\xc3\xbc" "b.com", 443), "invalid name",
               "reason invalid name");
        is_str(v(m, "github.com\x01", 443), "deny", "control char refused");
        is_str(v(m, "git hub.com", 443), "deny", "space refused");
        is_str(v(m, "*.githubusercontent.com", 443), "deny",
               "a '*' subject is refused");
        is_str(reason(m, "raw.githubusercontent.com", 443),
               "allow \"*.githubusercontent.com\" (kap.conf:11)",
               "allow reason with file:line");
        is_str(reason(m, "evil.com", 443), "not in network.allow",
               "not listed reason");
        is_str(v(m, "github.com", 0), "allow", "DNS question (port 0)");
        is_str(v(m, "evil.com", 0), "deny", "DNS question denied");
    }

    /* deny wins */
    {
        static const char *const allow[] = {
            "*.github.com", "gist.github.com", "api.example.com", NULL };
        static const char *const deny[] = {
            "gist.github.com", "*.corp.github.com", "api.example.com:8443",
            NULL };
        m = build(allow, deny);
        is_str(v(m, "api.github.com", 443), "allow", "wildcard allows");
        is_str(v(m, "gist.github.com", 443), "deny", "exact deny wins");
        is_str(reason(m, "gist.github.com", 443),
               "deny \"gist.github.com\" (kap.conf:100)", "deny reason");
        is_str(v(m, "gist.github.com", 0), "deny", "deny applies to DNS");
        is_str(v(m, "x.y.corp.github.com", 443), "deny", "wildcard deny");
        is_str(v(m, "corp.github.com", 443), "allow",
               "wildcard deny does not cover the bare name");
        is_str(v(m, "api.example.com", 443), "allow",
               "deny with a port leaves other ports");
        is_str(v(m, "api.example.com", 0), "allow",
               "deny with a port does not block DNS");
    }

    /* empty allow list */
    m = build(NULL, NULL);
    is_str(v(m, "github.com", 443), "deny", "empty allow denies all");
    is_str(v(m, "1.2.3.4", 443), "deny", "empty allow denies literals");
    is_str(reason(m, "github.com", 443), "not in network.allow",
           "empty allow reason");

    /* ports */
    {
        static const char *const allow[] = {
            "github.com", "github.com:22", "ssh.example.com:22,2222",
            "*.internal.example:8080", NULL };
        m = build(allow, NULL);
        is_str(v(m, "github.com", 443), "allow", "default 443");
        is_str(v(m, "github.com", 80), "allow", "default 80");
        is_str(v(m, "github.com", 22), "allow", "explicit 22");
        is_str(v(m, "github.com", 8443), "deny", "8443 not allowed");
        is_str(reason(m, "github.com", 8443),
               "port 8443 not allowed for \"github.com\" (kap.conf:10)",
               "port reason");
        {
            /* a short buffer truncates the reason, as snprintf did */
            struct kapd_match_result res;
            char small[12];
            kapd_match_lookup(m, "github.com", 8443, &res);
            is_str(kapd_match_reason(&res, 8443, small, sizeof(small)),
                   "port 8443 n", "reason truncated to the buffer");
            is_str(kapd_match_reason(&res, 8443, small, 1), "",
                   "a one-byte buffer holds the terminator only");
        }
        is_str(v(m, "ssh.example.com", 2222), "allow", "port list 2");
        is_str(v(m, "ssh.example.com", 22), "allow", "port list 1");
        is_str(v(m, "ssh.example.com", 443), "deny",
               "explicit ports replace the default");
        is_str(v(m, "ssh.example.com", 0), "allow", "DNS for a port rule");
        is_str(v(m, "a.internal.example", 8080), "allow", "wildcard port");
        is_str(v(m, "a.internal.example", 443), "deny", "wildcard port only");
        {
            static const uint16_t p[] = { 443 };
            kapd_match_set_default_ports(m, p, 1);
            is_str(v(m, "github.com", 80), "deny", "network.ports = [443]");
            is_str(v(m, "github.com", 443), "allow", "443 still allowed");
        }
    }

    /* IP literals and CIDRs */
    {
        static const char *const allow[] = {
            "10.1.2.3", "192.168.0.0/16", "[2001:db8::1]", "2001:db8:1::/48",
            "203.0.113.5:8443", "[2001:db8::2]:22", "[2001:db8:2::]/64:443",
            "::ffff:198.51.100.0/120", NULL };
        static const char *const deny[] = { "192.168.66.0/24", NULL };
        m = build(allow, deny);
        is_str(v(m, "10.1.2.3", 443), "allow", "literal rule");
        is_str(v(m, "10.1.2.4", 443), "deny", "other literal");
        is_str(v(m, "0x0a.1.2.3", 443), "allow", "hex spelling normalised");
        is_str(v(m, "10.66051", 443), "allow", "two-part spelling");
        is_str(v(m, "167838211", 443), "allow", "one-part spelling");
        is_str(v(m, "012.1.2.3", 443), "allow", "octal spelling");
        is_str(v(m, "192.168.5.5", 443), "allow", "CIDR covers");
        is_str(v(m, "192.168.66.7", 443), "deny", "narrower deny CIDR wins");
        is_str(reason(m, "192.168.66.7", 443),
               "deny \"192.168.66.0/24\" (kap.conf:100)", "CIDR deny reason");
        is_str(v(m, "[2001:db8::1]", 443), "allow", "v6 literal bracketed");
        is_str(v(m, "2001:DB8:0::1", 443), "allow", "v6 literal other form");
        is_str(v(m, "2001:db8:1:ffff::9", 443), "allow", "v6 CIDR");
        is_str(v(m, "2001:db8:3::9", 443), "deny", "outside v6 CIDR");
        is_str(v(m, "203.0.113.5", 8443), "allow", "literal with port");
        is_str(v(m, "203.0.113.5", 443), "deny", "literal other port");
        is_str(v(m, "2001:db8::2", 22), "allow", "v6 literal with port");
        is_str(v(m, "2001:db8:2::77", 443), "allow", "v6 CIDR with port");
        is_str(v(m, "2001:db8:2::77", 80), "deny", "v6 CIDR other port");
        is_str(v(m, "198.51.100.9", 443), "allow", "mapped CIDR as v4");
        is_str(v(m, "::ffff:10.1.2.3", 443), "allow", "mapped subject as v4");
        is_str(v(m, "10.1.2.3.", 443), "allow", "literal trailing dot");
        is_str(v(m, "1.2.3.4.5", 443), "deny", "bad literal");
        is_str(reason(m, "1.2.3.4.5", 443), "invalid IP address",
               "bad literal reason");
        is_str(v(m, "fe80::1%eth0", 443), "deny", "zone id refused");
        {
            struct sockaddr_in sin;
            struct kapd_match_result res;
            memset(&sin, 0, sizeof(sin));
            sin.sin_family = AF_INET;
            inet_pton(AF_INET, "192.168.1.1", &sin.sin_addr);
            is_int(kapd_match_lookup_addr(m, (struct sockaddr *)&sin, 0,
                                          &res), KAP_ALLOW, "lookup_addr");
        }
    }
    {
        static const char *const allow[] = { "github.com", NULL };
        m = build(allow, NULL);
        is_str(v(m, "127.0.0.1", 443), "deny", "literal not listed");
        is_str(v(m, "0x7f.1", 443), "deny", "odd literal not listed");
    }

    /* long names and many labels */
    {
        static const char *const allow[] = { "*.a", NULL };
        char name[300];
        size_t i;
        m = build(allow, NULL);
        for (i = 0; i + 2 < 253; i += 2) {
            name[i] = 'x';
            name[i + 1] = '.';
        }
        name[i] = 'a';
        name[i + 1] = '\0';
        is_str(v(m, name, 443), "allow", "126 labels");
        memset(name, 'b', 64);
        memcpy(name + 64, ".a", 3);
        is_str(v(m, name, 443), "deny", "64-byte label refused");
        memset(name, 'b', 63);
        memcpy(name + 63, ".a", 3);
        is_str(v(m, name, 443), "allow", "63-byte label");
        memset(name, 'c', 260);
        name[260] = '\0';
        name[250] = '.';
        is_str(v(m, name, 443), "deny", "name > 253 refused");
    }

    /* bad rules: config errors with file:line */
    ok(has(bad(0, "*"), "kap.conf:7:") && has(bad(0, "*"), "defeat"),
       "bare * refused: %s", bad(0, "*"));
    ok(has(bad(0, "*github.com"), "kap.conf:7:"), "*github.com refused: %s",
       bad(0, "*github.com"));
    ok(has(bad(0, "a.*.com"), "invalid name"), "inner * refused");
    ok(has(bad(0, "*."), "kap.conf:7"), "*. refused");
    ok(has(bad(0, "a..b"), "invalid name"), "a..b refused: %s",
       bad(0, "a..b"));
    ok(has(bad(0, ""), "empty"), "empty rule refused");
    ok(has(bad(0, "github.com:0"), "bad port"), "port 0 refused: %s",
       bad(0, "github.com:0"));
    ok(has(bad(0, "github.com:65536"), "bad port"), "port 65536 refused");
    ok(has(bad(0, "github.com:"), "bad port"), "empty port refused");
    ok(has(bad(0, "github.com:22,"), "bad port"), "trailing comma refused");
    ok(has(bad(0, "github.com:ssh"), "bad port"), "named port refused");
    ok(has(bad(0, "10.0.0.0/33"), "prefix"), "/33 refused: %s",
       bad(0, "10.0.0.0/33"));
    ok(has(bad(0, "10.0.0.1/8"), "host bits"), "host bits refused: %s",
       bad(0, "10.0.0.1/8"));
    ok(has(bad(0, "10.0.0.0/"), "prefix"), "empty prefix refused");
    ok(has(bad(0, "2001:db8::/129"), "prefix"), "/129 refused");
    ok(has(bad(0, "0.0.0.0/0"), "defeat"), "allow 0.0.0.0/0 refused");
    ok(has(bad(0, "::/0"), "defeat"), "allow ::/0 refused");
    is_str(bad(1, "0.0.0.0/0"), "OK", "deny 0.0.0.0/0 accepted");
    ok(has(bad(0, "1.2.3.256"), "invalid IP"), "1.2.3.256 refused");
    ok(has(bad(0, "github.com/24"), "prefix length needs"),
       "prefix on a name refused");
    ok(has(bad(0, "*.10.0.0.1"), "wildcard cannot"), "wildcard IP refused");
    ok(has(bad(0, "[::1"), "invalid"), "unclosed bracket refused");
    ok(has(bad(0, "[::1]x"), "invalid"), "junk after bracket refused");
    ok(has(bad(0, "b\xc3\xbc" "cher.de"), "xn--"), "non-ASCII rule refused");
    ok(has(bad(0, "fe80::1%eth0"), "invalid"), "zone id rule refused");
    is_str(bad(0, "xn--bcher-kva.de"), "OK", "A-label accepted");
    is_str(bad(0, "_dmarc.example.com"), "OK", "underscore accepted");
    is_str(bad(0, "[2001:db8::]/32:443,8443"), "OK", "bracketed CIDR ports");

    test_network();
    kap_pool_destroy(pool);
    return done_testing();
}
