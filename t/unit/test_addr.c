/*
 * test_addr.c -- kap_addr_parse_literal() in every spelling, the
 * built-in address deny set (DESIGN §6, bypass classes 3, 5 and 6), the
 * one place IPv4-mapped IPv6 is unwrapped, and the one host-name rule.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <kapd/kap_core.h>
#include <kapd/kap_addr.h>
#include "kapd.h"
#include "tap.h"

/* Parse s and return its canonical text, or "DECLINED"/"ERROR". */
static const char *
lit(const char *s)
{
    static char             buf[KAP_ADDR_TEXT_MAX];
    struct sockaddr_storage ss;
    int                     rc = kap_addr_parse_literal(s, &ss);

    if (rc == KAP_DECLINED)
        return "DECLINED";
    if (rc != KAP_OK)
        return "ERROR";
    if (kap_addr_to_text((struct sockaddr *)&ss, buf, sizeof(buf)) == NULL)
        return "NOTEXT";
    return buf;
}

/* Is the literal s in the deny set?  -1 when s is not a literal. */
static int
denied(const char *s, const char **why)
{
    struct sockaddr_storage ss;

    if (kap_addr_parse_literal(s, &ss) != KAP_OK)
        return -1;
    return kap_addr_is_denied((struct sockaddr *)&ss, why);
}

/* kap_host_name_norm of s (NUL-terminated): the canonical form, or "-1". */
static const char *
host(const char *s)
{
    static char buf[KAP_HOST_NAME_MAX + 2];

    if (kap_host_name_norm(s, strlen(s), buf, sizeof(buf)) < 0)
        return "-1";
    return buf;
}

/* a name of total length n: labels of up to lab characters joined by '.' */
static const char *
long_name(size_t n, size_t lab)
{
    static char buf[600];
    size_t      i;

    for (i = 0; i < n && i < sizeof(buf) - 1; i++)
        buf[i] = (i % (lab + 1) == lab) ? '.' : 'a';
    buf[i] = '\0';
    return buf;
}

static void
test_host_names(void)
{
    char out[KAP_HOST_NAME_MAX + 2];

    is_str(host("GitHub.COM"), "github.com", "case folded");
    is_str(host("a.com."), "a.com", "one trailing dot dropped");
    is_str(host("a.com.."), "-1", "two trailing dots");
    is_str(host("."), "-1", "the root alone");
    is_str(host(""), "-1", "empty");
    is_str(host("a..com"), "-1", "empty label");
    is_str(host(".a.com"), "-1", "empty first label");
    is_str(host("a b.com"), "-1", "space");
    is_str(host("a:b"), "-1", "colon");
    is_str(host("*.a.com"), "-1", "a literal '*' label");
    is_str(host("caf\xc3\xa9.fr"), "-1", "8-bit (a U-label)");
    is_str(host("xn--caf-dma.fr"), "xn--caf-dma.fr", "IDN as xn-- A-label");
    is_str(host("XN--CAF-DMA.FR"), "xn--caf-dma.fr", "A-label case folded");
    is_str(host("_dmarc.example.com"), "_dmarc.example.com", "underscore");
    is_str(host("a_b.example.com"), "a_b.example.com", "underscore inside");
    is_str(host("-a.com"), "-a.com", "leading hyphen (resolvers accept it)");
    is_str(host("a-.com"), "a-.com", "trailing hyphen");
    ok(kap_host_name_norm("a\0b.com", 7, NULL, 0) < 0, "embedded NUL");
    /* label length 63 */
    is_int(kap_host_name_norm(long_name(63, 63), 63, NULL, 0), 63,
           "63-character label");
    is_int(kap_host_name_norm(long_name(64, 64), 64, NULL, 0), -1,
           "64-character label");
    /* total length 253 (+ one trailing dot), labels of 50 */
    is_int(kap_host_name_norm(long_name(253, 50), 253, NULL, 0), 253,
           "253 characters");
    is_int(kap_host_name_norm(long_name(254, 50), 254, NULL, 0), -1,
           "254 characters");
    {
        char n254[260];
        memcpy(n254, long_name(253, 50), 253);
        n254[253] = '.';
        is_int(kap_host_name_norm(n254, 254, out, sizeof(out)), 253,
               "253 characters and the trailing dot");
    }
    is_int(kap_host_name_norm("abc.de", 6, out, 6), -1,
           "does not fit in out (NUL needs a byte)");
    is_int(kap_host_name_norm("abc.de", 6, out, 7), 6, "fits exactly");
    /* IP literals are kap_addr_parse_literal's: the syntax alone */
    is_str(host("127.0.0.1"), "127.0.0.1", "dotted quad is name syntax");
    is_str(host("::1"), "-1", "IPv6 literal is not a name");
    is_str(host("[::1]"), "-1", "bracketed IPv6 is not a name");
    ok(kap_host_char_ok('_') && kap_host_char_ok('-') && kap_host_char_ok('Z')
       && !kap_host_char_ok('.') && !kap_host_char_ok('*')
       && !kap_host_char_ok(0x80), "label characters");

    ok(kap_host_eq("GitHub.com.", "github.COM"), "eq: dot and case");
    ok(!kap_host_eq("github.com..", "github.com"), "eq: two dots");
    ok(!kap_host_eq("evilgithub.com", "github.com"), "eq: suffix");
    ok(!kap_host_eq("github.com", "github.co"), "eq: prefix");
    ok(kap_host_eq("", "."), "eq: root spellings");
}

static void
test_v4mapped(void)
{
    struct sockaddr_in6     s6, back;
    struct sockaddr_in      s4;
    struct sockaddr_storage ss;
    unsigned char           raw[16];
    unsigned                port = 0;

    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(443);
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &s6.sin6_addr);
    ok(kap_addr_is_v4mapped(s6.sin6_addr.s6_addr), "::ffff:10.1.2.3 mapped");
    is_int(kap_addr_raw((struct sockaddr *)&s6, raw, &port), AF_INET,
           "raw of a mapped address is IPv4");
    ok(raw[0] == 10 && raw[3] == 3 && port == 443, "its bytes and port");
    is_int(kap_addr_unmap((struct sockaddr *)&s6, &ss), AF_INET, "unmap");
    ok(((struct sockaddr_in *)&ss)->sin_port == htons(443), "unmap port");
    s4 = *(struct sockaddr_in *)&ss;
    kap_addr_map_v4(&s4, &back);
    ok(back.sin6_family == AF_INET6 && back.sin6_port == htons(443)
       && memcmp(&back.sin6_addr, &s6.sin6_addr, 16) == 0, "map back");

    inet_pton(AF_INET6, "::ffff:0:10.1.2.3", &s6.sin6_addr);
    ok(!kap_addr_is_v4mapped(s6.sin6_addr.s6_addr), "translated is not");
    is_int(kap_addr_raw((struct sockaddr *)&s6, raw, NULL), AF_INET6,
           "raw of another IPv6 address");
    inet_pton(AF_INET6, "::10.1.2.3", &s6.sin6_addr);
    ok(!kap_addr_is_v4mapped(s6.sin6_addr.s6_addr), "compatible is not");
    ss.ss_family = AF_UNIX;
    is_int(kap_addr_raw((struct sockaddr *)&ss, raw, NULL), 0, "AF_UNIX");
    {
        struct sockaddr_storage o;
        is_int(kap_addr_unmap((struct sockaddr *)&ss, &o), 0, "unmap AF_UNIX");
    }
}

int
main(void)
{
    static const char *loop[] = {
        "127.0.0.1", "127.1", "127.0.1", "0x7f.0.0.1", "0x7F.1",
        "2130706433", "017700000001", "0177.0.0.1", "0177.0.0.01",
        "0x7f000001", "127.0.0.1.", "0x7f.0x0.0x0.0x1", "127.0x0.1",
        "[::ffff:127.0.0.1]", "::ffff:7f00:1", "0000177.0.0.1",
        "0X7F000001", "127.00.0.1",
    };
    static const char *meta[] = {
        "169.254.169.254", "0xa9.0xfe.0xa9.0xfe", "0xa9fea9fe",
        "2852039166", "025177524776", "0251.0376.0251.0376", "169.254.43518",
        "169.16689662", "::ffff:169.254.169.254", "[::ffff:a9fe:a9fe]",
    };
    static const char *bad[] = {
        "1.2.3.256", "256.1.1.1", "1.2.3.4.5", "08.1.1.1", "0x1g.1.1.1",
        "1..2.3", ".1.2.3", "4294967296", "0x100000000",
        "1.16777216", "1.2.65536", "[::1", "::1]", "fe80::1%eth0",
        "[fe80::1%25eth0]", "1:2:3:4:5:6:7:8:9", "[]", "[1.2.3.4]",
        "::g", "example.123", "a.0x10",
    };
    static const char *names[] = {
        "example.com", "github.com", "1.2.3.4.example", "0x7f.example",
        "xn--bcher-kva.example", "a1", "1a.com", "localhost", "1.2.3.4 ",
    };
    const char *why = NULL;
    size_t      i;
    char        buf[KAP_ADDR_TEXT_MAX];
    unsigned char a6[16], v4[4];

    for (i = 0; i < sizeof(loop) / sizeof(loop[0]); i++)
        is_str(lit(loop[i]), "127.0.0.1", loop[i]);
    for (i = 0; i < sizeof(meta) / sizeof(meta[0]); i++)
        is_str(lit(meta[i]), "169.254.169.254", meta[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_str(lit(bad[i]), "ERROR", bad[i]);
    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        is_str(lit(names[i]), "DECLINED", names[i]);
    /* "0x" alone is a number (0) for inet_aton and WHATWG */
    is_str(lit("0x.0x.0x.0x"), "0.0.0.0", "0x parts are 0");
    is_str(lit("0"), "0.0.0.0", "0");
    is_str(lit("1.2.3.4"), "1.2.3.4", "plain dotted quad");
    is_str(lit("255.255.255.255"), "255.255.255.255", "broadcast");
    is_str(lit("0xffffffff"), "255.255.255.255", "broadcast in hex");
    is_str(lit("10.1"), "10.0.0.1", "two parts");
    is_str(lit("10.1.2"), "10.1.0.2", "three parts");

    /* IPv6 forms */
    is_str(lit("::1"), "::1", "::1");
    is_str(lit("[::1]"), "::1", "[::1]");
    is_str(lit("0:0:0:0:0:0:0:1"), "::1", "long ::1");
    is_str(lit("2001:DB8::1"), "2001:db8::1", "upper-case v6 folded");
    is_str(lit("[2001:db8:0:0:0:0:0:1]"), "2001:db8::1", "bracketed long");
    is_str(lit("::ffff:1.2.3.4"), "1.2.3.4", "mapped becomes IPv4");
    is_str(lit("64:ff9b::7f00:1"), "64:ff9b::7f00:1", "NAT64 stays v6");
    is_str(lit(""), "DECLINED", "empty is not a literal");
    ok(kap_addr_parse_literal_n("127.0.0.1\0x", 11,
       &(struct sockaddr_storage){0}) == KAP_ERROR, "embedded NUL refused");

    /* deny set */
    is_int(denied("127.0.0.1", &why), 1, "127.0.0.1 denied");
    is_str(why, "loopback", "why loopback");
    is_int(denied("0x7f.1", NULL), 1, "0x7f.1 denied");
    is_int(denied("127.255.255.254", NULL), 1, "127/8 denied");
    is_int(denied("169.254.169.254", &why), 1, "metadata denied");
    ok(why && strstr(why, "link-local"), "why link-local");
    is_int(denied("0251.0376.0251.0376", NULL), 1, "octal metadata denied");
    is_int(denied("0.0.0.0", NULL), 1, "0.0.0.0 denied");
    is_int(denied("0", NULL), 1, "\"0\" denied");
    is_int(denied("10.200.0.1", NULL), 1, "10/8 denied");
    is_int(denied("172.16.0.1", NULL), 1, "172.16/12 low denied");
    is_int(denied("172.31.255.255", NULL), 1, "172.16/12 high denied");
    is_int(denied("172.32.0.1", NULL), 0, "172.32.0.1 allowed");
    is_int(denied("172.15.255.255", NULL), 0, "172.15.255.255 allowed");
    is_int(denied("192.168.1.1", NULL), 1, "192.168/16 denied");
    is_int(denied("100.64.0.1", NULL), 1, "CGNAT denied");
    is_int(denied("100.127.255.255", NULL), 1, "CGNAT top denied");
    is_int(denied("100.128.0.1", NULL), 0, "100.128.0.1 allowed");
    is_int(denied("192.0.0.8", NULL), 1, "192.0.0.0/24 denied");
    is_int(denied("198.18.0.1", NULL), 1, "198.18/15 denied");
    is_int(denied("198.19.255.1", NULL), 1, "198.19 denied");
    is_int(denied("198.20.0.1", NULL), 0, "198.20 allowed");
    is_int(denied("224.0.0.1", NULL), 1, "multicast denied");
    is_int(denied("239.255.255.250", NULL), 1, "SSDP multicast denied");
    is_int(denied("240.0.0.1", NULL), 1, "240/4 denied");
    is_int(denied("255.255.255.255", NULL), 1, "broadcast denied");
    is_int(denied("8.8.8.8", NULL), 0, "8.8.8.8 allowed");
    is_int(denied("140.82.114.4", NULL), 0, "public address allowed");
    is_int(denied("::", NULL), 1, ":: denied");
    is_int(denied("::1", NULL), 1, "::1 denied");
    is_int(denied("fe80::1", NULL), 1, "fe80::/10 denied");
    is_int(denied("febf::1", NULL), 1, "febf:: denied");
    is_int(denied("fc00::1", NULL), 1, "ULA fc00 denied");
    is_int(denied("fd12:3456::1", NULL), 1, "ULA fd denied");
    is_int(denied("ff02::1", NULL), 1, "v6 multicast denied");
    is_int(denied("::ffff:10.0.0.1", NULL), 1, "mapped 10/8 denied");
    is_int(denied("::ffff:8.8.8.8", NULL), 0, "mapped 8.8.8.8 allowed");
    is_int(denied("64:ff9b::7f00:1", &why), 1, "NAT64 loopback denied");
    is_str(why, "loopback", "NAT64 why = embedded v4");
    is_int(denied("64:ff9b::a9fe:a9fe", NULL), 1, "NAT64 metadata denied");
    is_int(denied("64:ff9b::808:808", NULL), 0, "NAT64 8.8.8.8 allowed");
    is_int(denied("2002:7f00:1::1", NULL), 1, "6to4 loopback denied");
    is_int(denied("2002:c0a8:101::", NULL), 1, "6to4 192.168 denied");
    is_int(denied("2002:808:808::1", NULL), 0, "6to4 8.8.8.8 allowed");
    is_int(denied("::127.0.0.1", NULL), 1, "v4-compatible denied");
    is_int(denied("::ffff:0:7f00:1", &why), 1, "v4-translated loopback denied");
    is_str(why, "loopback", "v4-translated why = embedded v4");
    is_int(denied("::ffff:0:a9fe:a9fe", NULL), 1, "v4-translated metadata denied");
    is_int(denied("::ffff:0:808:808", NULL), 0, "v4-translated 8.8.8.8 allowed");
    is_int(denied("fec0::1", NULL), 1, "site-local fec0::/10 denied");
    is_int(denied("feff:ffff::1", NULL), 1, "site-local top denied");
    is_int(denied("ff00::1", NULL), 1, "ff00:: (multicast) denied");
    {
        /* the denied range's prefix length, in the address's family */
        static const struct { const char *a; int denied; unsigned plen; }
        r[] = {
            { "169.254.169.254", 1, 16 }, { "10.1.2.3", 1, 8 },
            { "172.17.0.2", 1, 12 }, { "100.64.0.1", 1, 10 },
            { "8.8.8.8", 0, 0 }, { "fd00::1", 1, 7 }, { "fe80::1", 1, 10 },
            { "::1", 1, 128 }, { "64:ff9b::a9fe:a9fe", 1, 96 + 16 },
            { "2002:a00:1::", 1, 16 + 8 }, { "::ffff:0:7f00:1", 1, 96 + 8 },
            { "2001:db8::1", 0, 0 },
        };
        for (size_t k = 0; k < sizeof(r) / sizeof(r[0]); k++) {
            struct sockaddr_storage ss;
            unsigned plen = 99;
            kap_addr_parse_literal(r[k].a, &ss);
            int d = kapd_addr_denied_range((struct sockaddr *)&ss, &plen,
                                           NULL);
            ok(d == r[k].denied && plen == r[k].plen,
               "%s: denied %d, range /%u (got %d, /%u)", r[k].a, r[k].denied,
               r[k].plen, d, plen);
        }
    }
    is_int(denied("2606:4700::1111", NULL), 0, "public v6 allowed");
    {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = AF_UNIX;
        is_int(kap_addr_is_denied((struct sockaddr *)&ss, NULL), 1,
               "unknown family denied");
    }

    /* differential: whatever glibc's inet_aton accepts (no whitespace
     * here, which glibc lets trail) we accept too, with the same value */
    {
        static const char alpha[] = "0123456789xX.abfg";
        unsigned long n, missed = 0, differs = 0, accepted = 0;
        unsigned int  seed = 12345;
        char          s[16];
        for (n = 0; n < 300000; n++) {
            struct in_addr          a;
            struct sockaddr_storage ss;
            int len, k, mine;
            seed = seed * 1103515245u + 12345u;
            len = 1 + (int)((seed >> 16) % 12);
            for (k = 0; k < len; k++) {
                seed = seed * 1103515245u + 12345u;
                s[k] = alpha[(seed >> 16) % (sizeof(alpha) - 1)];
            }
            s[len] = '\0';
            if (!inet_aton(s, &a))
                continue;
            accepted++;
            mine = kap_addr_parse_literal(s, &ss) == KAP_OK
                   && ss.ss_family == AF_INET;
            if (!mine) {
                if (missed++ < 5)
                    diag("inet_aton accepts \"%s\", we do not", s);
            } else if (memcmp(&a, &((struct sockaddr_in *)&ss)->sin_addr,
                              4) != 0) {
                if (differs++ < 5)
                    diag("\"%s\": value differs from inet_aton", s);
            }
        }
        ok(accepted > 10000, "differential: %lu inet_aton literals",
           accepted);
        is_int(missed, 0, "every inet_aton literal recognised");
        is_int(differs, 0, "same value as inet_aton");
    }

    /* helpers */
    inet_pton(AF_INET6, "2002:0102:0304::", a6);
    ok(kap_addr_embedded_v4(a6, v4) && v4[0] == 1 && v4[3] == 4,
       "6to4 embedded v4");
    inet_pton(AF_INET6, "2001:db8::", a6);
    is_int(kap_addr_embedded_v4(a6, v4), 0, "no embedded v4");
    {
        struct sockaddr_in6 s6;
        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr);
        is_str(kap_addr_to_text((struct sockaddr *)&s6, buf, sizeof(buf)),
               "2001:db8::1", "to_text v6");
        ok(kap_addr_to_text((struct sockaddr *)&s6, buf, 4) == NULL,
           "to_text short buffer");
    }
    {
        /* IPv4 without inet_ntop: every byte value in every place, and
           the buffer sizes around the text's length, as inet_ntop does */
        struct sockaddr_in s4;
        char want[INET_ADDRSTRLEN], got[INET_ADDRSTRLEN + 2];
        unsigned v, pos, bad4 = 0, badsize = 0;
        size_t sz;

        memset(&s4, 0, sizeof(s4));
        s4.sin_family = AF_INET;
        for (pos = 0; pos < 4; pos++)
            for (v = 0; v < 256; v++) {
                unsigned char *a = (unsigned char *)&s4.sin_addr;
                a[0] = 1; a[1] = 22; a[2] = 233; a[3] = 0;
                a[pos] = (unsigned char)v;
                inet_ntop(AF_INET, &s4.sin_addr, want, sizeof(want));
                if (kap_addr_to_text((struct sockaddr *)&s4, got,
                                     sizeof(got)) == NULL
                    || strcmp(got, want) != 0)
                    bad4++;
                for (sz = 0; sz <= strlen(want) + 1; sz++) {
                    memset(got, 'x', sizeof(got));
                    if ((kap_addr_to_text((struct sockaddr *)&s4, got, sz)
                         != NULL) != (sz > strlen(want))
                        || (sz <= strlen(want) && got[0] != 'x'))
                        badsize++;
                }
            }
        ok(bad4 == 0, "to_text v4: the same text as inet_ntop (1024 addresses)");
        ok(badsize == 0, "to_text v4: NULL, buffer untouched, when too short");
    }
    {
        unsigned char x[4] = { 10, 1, 2, 3 }, y[4] = { 10, 1, 255, 0 };
        ok(kap_addr_prefix_eq(x, y, 16), "prefix /16 equal");
        ok(!kap_addr_prefix_eq(x, y, 17), "prefix /17 differs");
        ok(kap_addr_prefix_eq(x, y, 0), "prefix /0 equal");
    }
    test_host_names();
    test_v4mapped();
    return done_testing();
}
