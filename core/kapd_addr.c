/*
 * kapd_addr.c -- IP address literals in every spelling, and the built-in
 * address deny set (DESIGN §6), behind the public kap_addr.h.
 *
 * The IPv4 parser is our own, not inet_aton(3): glibc's stops at the first
 * whitespace ("127.0.0.1 x" parses), and we want the whole string or
 * nothing.  It accepts exactly what inet_aton and the WHATWG URL parser
 * accept otherwise (1-4 parts, decimal/octal/hex, last part fills the
 * rest, one trailing dot), so that no spelling of a denied address slips
 * through as a "name".  IPv6 goes through inet_pton(3), which rejects zone
 * ids.  Nothing here allocates or keeps state.
 */
#include "kapd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <kapd/kap_addr.h>

/* ---- IPv4 ----------------------------------------------------------- */

/* One inet_aton part: "0x1f", "017", "10", "0x" (= 0).  -1 when invalid. */
static int
v4_part(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t   i = 0;
    unsigned base = 10;

    if (len == 0)
        return -1;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (len >= 2 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        if (d >= base)
            return -1;
        v = v * base + d;
        if (v > 0xffffffffULL)
            return -1;
    }
    *out = v;
    return 0;
}

/* Does the label look like a number (so the name must be an IPv4)? */
static int
v4_numeric_label(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0)
        return 0;
    if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        for (i = 2; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
                  || (c >= 'A' && c <= 'F')))
                return 0;
        }
        return 1;
    }
    for (i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* KAP_OK with *addr (host order), KAP_DECLINED (a name), KAP_ERROR. */
static int
v4_parse(const char *s, size_t len, uint32_t *addr)
{
    uint64_t parts[4];
    size_t   n = 0, start = 0, i, last_start;
    uint64_t v;

    if (len > 0 && s[len - 1] == '.')
        len--;                       /* one trailing dot, as WHATWG */
    if (len == 0)
        return KAP_DECLINED;

    /* the last label decides whether this is meant as a number */
    last_start = len;
    while (last_start > 0 && s[last_start - 1] != '.')
        last_start--;
    if (!v4_numeric_label(s + last_start, len - last_start))
        return KAP_DECLINED;

    for (i = 0; i <= len; i++) {
        if (i < len && s[i] != '.')
            continue;
        if (n == 4)
            return KAP_ERROR;        /* "1.2.3.4.5" */
        if (v4_part(s + start, i - start, &parts[n]) != 0)
            return KAP_ERROR;        /* "1.2.3.256x", "08", "a..1" */
        n++;
        start = i + 1;
    }

    for (i = 0; i + 1 < n; i++)
        if (parts[i] > 255)
            return KAP_ERROR;
    if (parts[n - 1] > (0xffffffffULL >> (8 * (n - 1))))
        return KAP_ERROR;
    v = parts[n - 1];
    for (i = 0; i + 1 < n; i++)
        v |= parts[i] << (24 - 8 * i);
    *addr = (uint32_t)v;
    return KAP_OK;
}

/* ---- IPv4-mapped IPv6 ----------------------------------------------- */

int
kap_addr_is_v4mapped(const unsigned char *a6)
{
    static const unsigned char prefix[12] =
        { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    return memcmp(a6, prefix, sizeof(prefix)) == 0;
}

int
kap_addr_raw(const struct sockaddr *sa, unsigned char *out, unsigned *port)
{
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(out, &s4->sin_addr, 4);
        if (port != NULL)
            *port = ntohs(s4->sin_port);
        return AF_INET;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (port != NULL)
            *port = ntohs(s6->sin6_port);
        if (kap_addr_is_v4mapped(s6->sin6_addr.s6_addr)) {
            memcpy(out, s6->sin6_addr.s6_addr + 12, 4);
            return AF_INET;
        }
        memcpy(out, s6->sin6_addr.s6_addr, 16);
        return AF_INET6;
    }
    return 0;
}

int
kap_addr_unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
    unsigned char a[16];
    unsigned      port = 0;
    int           family = kap_addr_raw(sa, a, &port);

    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)out;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, a, 4);
    } else if (family == AF_INET6) {
        /* copied whole: flow label and scope id stay */
        memcpy(out, sa, sizeof(struct sockaddr_in6));
    }
    return family;
}

void
kap_addr_map_v4(const struct sockaddr_in *s4, struct sockaddr_in6 *out)
{
    memset(out, 0, sizeof(*out));
    out->sin6_family = AF_INET6;
    out->sin6_port = s4->sin_port;
    out->sin6_addr.s6_addr[10] = 0xff;
    out->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&out->sin6_addr.s6_addr[12], &s4->sin_addr, 4);
}

/* ---- IPv6 ----------------------------------------------------------- */

static int
v6_parse(const char *s, size_t len, struct sockaddr_storage *ss)
{
    char            buf[64];
    struct in6_addr a6;

    if (len > 0 && s[0] == '[') {
        if (len < 2 || s[len - 1] != ']')
            return KAP_ERROR;
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf))
        return KAP_ERROR;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, &a6) != 1)
        return KAP_ERROR;            /* includes zone ids "fe80::1%eth0" */

    memset(ss, 0, sizeof(*ss));
    if (kap_addr_is_v4mapped(a6.s6_addr)) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a6.s6_addr + 12, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = a6;
    }
    return KAP_OK;
}

int
kap_addr_parse_literal_n(const char *s, size_t len,
                         struct sockaddr_storage *ss)
{
    uint32_t a4;
    int      rc;

    if (s == NULL || ss == NULL || len == 0)
        return KAP_DECLINED;
    if (memchr(s, '\0', len) != NULL)
        return KAP_ERROR;
    if (s[0] == '[' || memchr(s, ':', len) != NULL)
        return v6_parse(s, len, ss);
    rc = v4_parse(s, len, &a4);
    if (rc == KAP_OK) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        memset(ss, 0, sizeof(*ss));
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(a4);
    }
    return rc;
}

int
kap_addr_parse_literal(const char *host, struct sockaddr_storage *ss)
{
    if (host == NULL)
        return KAP_DECLINED;
    return kap_addr_parse_literal_n(host, strlen(host), ss);
}

int
kapd_ipv4_text(const unsigned char *a, char *buf, size_t size)
{
    char     tmp[16], *p = tmp;
    unsigned i, v;

    for (i = 0; i < 4; i++) {
        v = a[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
    if ((size_t)(p - tmp) > size)
        return -1;
    memcpy(buf, tmp, (size_t)(p - tmp));
    return (int)(p - tmp) - 1;
}

char *
kap_addr_to_text(const struct sockaddr *sa, char *buf, size_t len)
{
    if (sa == NULL || buf == NULL)
        return NULL;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        if (kapd_ipv4_text((const unsigned char *)&sin->sin_addr, buf, len)
            < 0)
            return NULL;
        return buf;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)len)
            == NULL)
            return NULL;
        return buf;
    }
    return NULL;
}

/* ---- the deny set --------------------------------------------------- */

int
kap_addr_prefix_eq(const unsigned char *a, const unsigned char *b,
                   unsigned plen)
{
    unsigned full = plen / 8, rest = plen % 8;

    if (full > 0 && memcmp(a, b, full) != 0)
        return 0;
    if (rest != 0) {
        unsigned char mask = (unsigned char)(0xff << (8 - rest));
        if ((a[full] & mask) != (b[full] & mask))
            return 0;
    }
    return 1;
}

struct deny_net {
    unsigned char addr[16];
    unsigned      plen;
    const char   *why;
};

static const struct deny_net deny_v4[] = {
    { { 0, 0, 0, 0 },         8, "\"this\" network (0.0.0.0/8)" },
    { { 127, 0, 0, 0 },       8, "loopback" },
    { { 169, 254, 0, 0 },    16, "link-local (cloud metadata)" },
    { { 10, 0, 0, 0 },        8, "private (RFC 1918)" },
    { { 172, 16, 0, 0 },     12, "private (RFC 1918)" },
    { { 192, 168, 0, 0 },    16, "private (RFC 1918)" },
    { { 100, 64, 0, 0 },     10, "shared address space (CGNAT)" },
    { { 192, 0, 0, 0 },      24, "IETF protocol assignments" },
    { { 198, 18, 0, 0 },     15, "benchmarking (198.18.0.0/15)" },
    { { 224, 0, 0, 0 },       4, "multicast" },
    { { 240, 0, 0, 0 },       4, "reserved (240.0.0.0/4)" },
};

static const struct deny_net deny_v6[] = {
    { { 0 }, 128, "unspecified (::)" },
    { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128, "loopback" },
    { { 0xfe, 0x80 },  10, "link-local" },
    { { 0xfe, 0xc0 },  10, "site-local (deprecated, fec0::/10)" },
    { { 0xfc },         7, "unique local (ULA)" },
    { { 0xff },         8, "multicast" },
    { { 0 },           96, "IPv4-compatible (deprecated)" },
    { { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48, "local-use NAT64" },
    { { 0x20, 0x01, 0, 0 }, 32, "Teredo" },
    { { 0x01, 0, 0, 0, 0, 0, 0, 0 }, 64, "discard-only (100::/64)" },
};

/* The embedded IPv4 address and the bits of the embedding prefix (96 or
 * 16), or 0 when a6 embeds none. */
static unsigned
embedded_v4(const unsigned char *a6, unsigned char *v4)
{
    static const unsigned char nat64[12] =
        { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
    /* IPv4-translated (SIIT, RFC 2765): ::ffff:0:a.b.c.d */
    static const unsigned char translated[12] =
        { 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0 };

    if (kap_addr_is_v4mapped(a6)
        || memcmp(a6, nat64, 12) == 0
        || memcmp(a6, translated, 12) == 0) {
        memcpy(v4, a6 + 12, 4);
        return 96;
    }
    if (a6[0] == 0x20 && a6[1] == 0x02) {      /* 6to4: 2002:AABB:CCDD:: */
        memcpy(v4, a6 + 2, 4);
        return 16;
    }
    return 0;
}

int
kap_addr_embedded_v4(const unsigned char *a6, unsigned char *v4)
{
    return embedded_v4(a6, v4) != 0;
}

static int
v4_denied(const unsigned char *a4, unsigned *plen, const char **why)
{
    size_t i;

    for (i = 0; i < sizeof(deny_v4) / sizeof(deny_v4[0]); i++) {
        if (kap_addr_prefix_eq(a4, deny_v4[i].addr, deny_v4[i].plen)) {
            *plen = deny_v4[i].plen;
            if (why)
                *why = deny_v4[i].why;
            return 1;
        }
    }
    return 0;
}

int
kapd_addr_denied_range(const struct sockaddr *sa, unsigned *plen,
                      const char **why)
{
    size_t i;

    *plen = 0;
    if (sa != NULL && sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        return v4_denied((const unsigned char *)&sin->sin_addr, plen, why);
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *a6 = sin6->sin6_addr.s6_addr;
        unsigned char v4[4];
        unsigned emb;

        for (i = 0; i < sizeof(deny_v6) / sizeof(deny_v6[0]); i++) {
            if (kap_addr_prefix_eq(a6, deny_v6[i].addr, deny_v6[i].plen)) {
                *plen = deny_v6[i].plen;
                if (why)
                    *why = deny_v6[i].why;
                return 1;
            }
        }
        emb = embedded_v4(a6, v4);
        if (emb != 0 && v4_denied(v4, plen, why)) {
            *plen += emb;
            return 1;
        }
        return 0;
    }
    if (why)
        *why = "not an IP address";
    return 1;
}

int
kap_addr_is_denied(const struct sockaddr *sa, const char **why)
{
    unsigned plen;

    return kapd_addr_denied_range(sa, &plen, why);
}

/* ---- Host names ------------------------------------------------------ */

/* c in lower case when it may appear in a label, else 0: the letters
   by one OR (only A-Z and a-z land in a-z), then the rest. */
static inline unsigned char
host_char_lower(unsigned char c)
{
    unsigned char l = (unsigned char)(c | 0x20);

    if (l >= 'a' && l <= 'z')
        return l;
    if ((c >= '0' && c <= '9') || c == '-' || c == '_')
        return c;
    return 0;
}

int
kap_host_char_ok(unsigned char c)
{
    return host_char_lower(c) != 0;
}

int
kap_host_name_norm(const char *s, size_t n, char *out, size_t outsz)
{
    size_t label = 0;

    if (n > 0 && s[n - 1] == '.')
        n--;                              /* one trailing dot */
    if (n == 0 || n > KAP_HOST_NAME_MAX || (out != NULL && outsz <= n))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0)
                return -1;                /* empty label */
            label = 0;
        } else if ((c = host_char_lower(c)) != 0) {
            if (++label > KAP_HOST_LABEL_MAX)
                return -1;
        } else {
            return -1;                    /* NUL, space, ':', '*', 8-bit */
        }
        if (out != NULL)
            out[i] = (char)c;
    }
    if (label == 0)
        return -1;                        /* "a..": empty last label */
    if (out != NULL)
        out[n] = '\0';
    return (int)n;
}

int
kap_host_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la > 0 && a[la - 1] == '.')
        la--;
    if (lb > 0 && b[lb - 1] == '.')
        lb--;
    if (la != lb)
        return 0;
    for (size_t i = 0; i < la; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 'a' - 'A';
        if (y >= 'A' && y <= 'Z')
            y += 'a' - 'A';
        if (x != y)
            return 0;
    }
    return 1;
}
