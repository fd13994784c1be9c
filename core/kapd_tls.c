/*
 * kapd_tls.c -- TLS ClientHello inspection and client-first-bytes
 * classification (kap_tls.h).
 *
 * The hello is reassembled from every handshake record received so far
 * (a ClientHello may span records and TCP segments), then walked with
 * strict length checks: every vector must fit its parent exactly, so a
 * hello that a TLS server would reject is never "interpreted" here.
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_tls.h>
#include <kapd/kap_http.h>

#define EXT_SERVER_NAME  0x0000
#define EXT_ESNI         0xffce
#define EXT_ECH          0xfe0d

static unsigned
be16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static int
fail(struct kap_tls_hello *h, int rc, const char *why)
{
    h->error = why;
    return rc;
}

int
kap_tls_valid_hostname(const char *s, size_t n)
{
    size_t label = 0;

    if (n && s[n - 1] == '.')
        n--;
    if (n == 0 || n > KAP_TLS_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                   (c >= '0' && c <= '9')) {
            label++;
        } else if (c == '-') {
            if (label == 0)
                return 0;
            label++;
        } else {
            return 0;
        }
        if (label > 63)
            return 0;
    }
    return label > 0 && s[n - 1] != '-';
}

int
kap_tls_host_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (la && a[la - 1] == '.')
        la--;
    if (lb && b[lb - 1] == '.')
        lb--;
    if (la != lb)
        return 0;
    for (size_t i = 0; i < la; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y)
            return 0;
    }
    return 1;
}

const char *
kap_tls_result_name(int rc)
{
    switch (rc) {
    case KAP_TLS_NEED_MORE: return "need-more";
    case KAP_TLS_SNI:       return "sni";
    case KAP_TLS_NO_SNI:    return "no-sni";
    case KAP_TLS_MULTI_SNI: return "multiple-sni";
    case KAP_TLS_ECH:       return "ech";
    case KAP_TLS_NOT_TLS:   return "not-tls";
    case KAP_TLS_MALFORMED: return "malformed";
    case KAP_TLS_TOO_BIG:   return "too-big";
    default:                return "unknown";
    }
}

/* Walk a complete ClientHello body m[0..n). */
static int
parse_body(const unsigned char *m, size_t n, struct kap_tls_hello *h)
{
    size_t p = 0;

    if (n < 2 + 32 + 1)
        return fail(h, KAP_TLS_MALFORMED, "ClientHello too short");
    if (m[0] != 3)
        return fail(h, KAP_TLS_MALFORMED, "ClientHello version");
    p = 34;
    size_t sid = m[p++];
    if (sid > 32 || p + sid > n)
        return fail(h, KAP_TLS_MALFORMED, "session id");
    p += sid;
    if (p + 2 > n)
        return fail(h, KAP_TLS_MALFORMED, "cipher suites");
    size_t cs = be16(m + p);
    p += 2;
    if (cs < 2 || (cs & 1) || p + cs > n)
        return fail(h, KAP_TLS_MALFORMED, "cipher suites");
    p += cs;
    if (p + 1 > n)
        return fail(h, KAP_TLS_MALFORMED, "compression methods");
    size_t cm = m[p++];
    if (cm < 1 || p + cm > n)
        return fail(h, KAP_TLS_MALFORMED, "compression methods");
    p += cm;
    if (p == n)
        return KAP_TLS_NO_SNI;               /* no extensions at all */
    if (p + 2 > n)
        return fail(h, KAP_TLS_MALFORMED, "extensions length");
    size_t el = be16(m + p);
    p += 2;
    if (p + el != n)
        return fail(h, KAP_TLS_MALFORMED, "extensions length");

    int ech = 0, names = 0, seen_sni = 0;
    const unsigned char *name = NULL;
    size_t name_len = 0;
    unsigned seen[64];
    size_t nseen = 0;

    while (p < n) {
        if (p + 4 > n)
            return fail(h, KAP_TLS_MALFORMED, "extension header");
        unsigned type = be16(m + p);
        size_t len = be16(m + p + 2);
        p += 4;
        if (p + len > n)
            return fail(h, KAP_TLS_MALFORMED, "extension length");
        for (size_t i = 0; i < nseen; i++)
            if (seen[i] == type)
                return fail(h, KAP_TLS_MALFORMED, "duplicate extension");
        if (nseen < sizeof(seen) / sizeof(seen[0]))
            seen[nseen++] = type;
        else
            return fail(h, KAP_TLS_MALFORMED, "too many extensions");

        if (type == EXT_ECH || type == EXT_ESNI ||
            (type >= 0xfe08 && type <= 0xfe0c))
            ech = 1;
        if (type == EXT_SERVER_NAME) {
            const unsigned char *e = m + p;
            seen_sni = 1;
            if (len < 2 || be16(e) != len - 2)
                return fail(h, KAP_TLS_MALFORMED, "server_name list");
            size_t q = 2;
            while (q < len) {
                if (q + 3 > len)
                    return fail(h, KAP_TLS_MALFORMED, "server_name entry");
                size_t nl = be16(e + q + 1);
                if (q + 3 + nl > len)
                    return fail(h, KAP_TLS_MALFORMED, "server_name entry");
                names++;
                if (e[q] == 0 && !name) {
                    name = e + q + 3;
                    name_len = nl;
                }
                q += 3 + nl;
            }
        }
        p += len;
    }
    if (ech)
        return fail(h, KAP_TLS_ECH, "encrypted ClientHello (ECH/ESNI)");
    if (names > 1)
        return fail(h, KAP_TLS_MULTI_SNI, "several server names");
    if (!seen_sni)
        return KAP_TLS_NO_SNI;
    if (!name)
        return fail(h, KAP_TLS_MALFORMED, "server_name without host_name");
    if (!kap_tls_valid_hostname((const char *)name, name_len))
        return fail(h, KAP_TLS_MALFORMED, "invalid host name in SNI");
    for (size_t i = 0; i < name_len; i++) {
        char c = (char)name[i];
        h->sni[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    h->sni[name_len] = '\0';
    h->sni_len = name_len;
    return KAP_TLS_SNI;
}

int
kap_tls_parse_hello(const unsigned char *buf, size_t len,
                    struct kap_tls_hello *h)
{
    unsigned char hs[KAP_TLS_HELLO_MAX + 4];
    size_t hl = 0, off = 0;

    memset(h, 0, sizeof(*h));
    if (len >= 1 && buf[0] != 22)
        return fail(h, KAP_TLS_NOT_TLS, "not a TLS handshake record");
    if (len >= 2 && buf[1] != 3)
        return fail(h, KAP_TLS_NOT_TLS, "not a TLS record version");

    for (;;) {
        if (len - off < 5)
            goto more;
        const unsigned char *r = buf + off;
        if (r[0] != 22 || r[1] != 3)
            return fail(h, KAP_TLS_MALFORMED, "non-handshake record in hello");
        size_t rl = be16(r + 3);
        if (rl == 0 || rl > 16384)
            return fail(h, KAP_TLS_MALFORMED, "record length");
        if (off + 5 + rl > KAP_TLS_BUF_MAX)
            return fail(h, KAP_TLS_TOO_BIG, "ClientHello records too large");
        if (len - off - 5 < rl)
            goto more;
        size_t take = rl;
        if (hl + take > sizeof(hs))
            return fail(h, KAP_TLS_TOO_BIG, "ClientHello too large");
        memcpy(hs + hl, r + 5, take);
        hl += take;
        off += 5 + rl;
        if (hl >= 4) {
            if (hs[0] != 1)
                return fail(h, KAP_TLS_MALFORMED, "not a ClientHello");
            size_t ml = ((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3];
            if (ml > KAP_TLS_HELLO_MAX)
                return fail(h, KAP_TLS_TOO_BIG, "ClientHello too large");
            if (hl >= ml + 4) {
                if (hl > ml + 4)
                    return fail(h, KAP_TLS_MALFORMED,
                                "data after ClientHello in its record");
                h->hello_len = ml;
                h->records_len = off;
                return parse_body(hs + 4, ml, h);
            }
        }
    }
more:
    if (len >= KAP_TLS_BUF_MAX)
        return fail(h, KAP_TLS_TOO_BIG, "ClientHello not complete in bound");
    return KAP_TLS_NEED_MORE;
}

/* ---- first bytes -------------------------------------------------------- */

static int
first_other(struct kap_first *out, const char *why)
{
    out->kind = KAP_FIRST_OTHER;
    out->error = why;
    return out->kind;
}

static int
classify_ssh(const unsigned char *buf, size_t len, struct kap_first *out)
{
    size_t max = len < KAP_SSH_IDENT_MAX ? len : KAP_SSH_IDENT_MAX;

    for (size_t i = 0; i < max; i++) {
        unsigned char c = buf[i];
        if (c == '\r') {
            if (i + 1 == len)
                return KAP_FIRST_NEED_MORE;
            if (buf[i + 1] != '\n')
                return first_other(out, "SSH line: bare CR");
            /* SSH-protoversion-softwareversion [SP comments] */
            if (i >= 8 && memcmp(buf, "SSH-2.0-", 8) == 0 && i > 8 &&
                buf[8] != ' ')
                return out->kind = KAP_FIRST_SSH;
            if (i >= 9 && memcmp(buf, "SSH-1.99-", 9) == 0 && i > 9 &&
                buf[9] != ' ')
                return out->kind = KAP_FIRST_SSH;
            return first_other(out, "SSH line: unsupported version");
        }
        if (c < 0x20 || c > 0x7e)
            return first_other(out, "SSH line: invalid character");
    }
    if (len >= KAP_SSH_IDENT_MAX)
        return first_other(out, "SSH line too long");
    return KAP_FIRST_NEED_MORE;
}

int
kap_first_classify(const unsigned char *buf, size_t len,
                   struct kap_first *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return KAP_FIRST_NEED_MORE;
    if (buf[0] == 22) {
        if (len >= 2 && buf[1] != 3)
            return first_other(out, "not a TLS record");
        return out->kind = KAP_FIRST_TLS;
    }
    if (buf[0] == 'S' && memcmp(buf, "SSH-", len < 4 ? len : 4) == 0) {
        if (len < 4)
            return KAP_FIRST_NEED_MORE;
        return classify_ssh(buf, len, out);
    }
    if (buf[0] >= 'A' && buf[0] <= 'Z') {
        struct kap_http_req req;
        kap_http_req_reset(&req);
        int rc = kap_http_parse_request(&req, (const char *)buf, len, NULL);
        if (rc == KAP_AGAIN)
            return KAP_FIRST_NEED_MORE;
        if (rc != KAP_OK)
            return first_other(out, "invalid HTTP request");
        if (!req.host || req.host->value.len == 0)
            return first_other(out, "HTTP request without Host");
        if (req.form == KAP_HTTP_FORM_AUTHORITY)
            return first_other(out, "CONNECT inside a tunnel");
        struct kap_http_uri u;
        if (kap_http_parse_authority(req.host->value.data,
                                     req.host->value.len, 80, &u) != KAP_OK ||
            u.host_len > KAP_TLS_NAME_MAX + 1)
            return first_other(out, "invalid Host");
        if (req.form == KAP_HTTP_FORM_ABSOLUTE &&
            strcmp(req.uri.host, u.host) != 0)
            return first_other(out, "HTTP URI host differs from Host");
        memcpy(out->host, u.host, u.host_len + 1);
        out->port = u.port_given ? u.port : 0;
        return out->kind = KAP_FIRST_HTTP;
    }
    return first_other(out, "unrecognised protocol");
}
