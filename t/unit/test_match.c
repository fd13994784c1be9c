/*
 * test_match.c -- the allowlist matcher (core/kapd_match.c): exact and
 * wildcard names, deny precedence, case and trailing dot, ports, IP
 * literal and CIDR rules, invalid names, bad rules with file:line.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "kapd.h"
#include "kapd_match.h"
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

    kap_pool_destroy(pool);
    return done_testing();
}
