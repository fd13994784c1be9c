/*
 * kap_http_connect_first.c -- TLS ClientHello inspection and
 * client-first-bytes classification (kap_http_connect_first.h).
 *
 * The hello is reassembled from every handshake record received so far
 * (a ClientHello may span records and TCP segments), then walked with
 * strict length checks: every vector must fit its parent exactly, so a
 * hello that a TLS server would reject is never "interpreted" here.
 */
#include "config.h"

#include <string.h>

#include <kapd/kap_addr.h>
#include <kapd/kap_http.h>

#include "kap_http_connect_first.h"

#define EXT_SERVER_NAME  0x0000
#define EXT_ESNI         0xffce
#define EXT_ECH          0xfe0d

static unsigned
be16(const unsigned char *p)
{
    return ((unsigned)p[0] << 8) | p[1];
}

static int
fail(struct hc_hello *h, int rc, const char *why)
{
    h->error = why;
    return rc;
}

const char *
kap_http_connect_hello_result(int rc)
{
    switch (rc) {
    case HC_HELLO_NEED_MORE: return "need-more";
    case HC_HELLO_SNI:       return "sni";
    case HC_HELLO_NO_SNI:    return "no-sni";
    case HC_HELLO_MULTI_SNI: return "multiple-sni";
    case HC_HELLO_ECH:       return "ech";
    case HC_HELLO_NOT_TLS:   return "not-tls";
    case HC_HELLO_MALFORMED: return "malformed";
    case HC_HELLO_TOO_BIG:   return "too-big";
    default:                return "unknown";
    }
}

/* Walk a complete ClientHello body m[0..n). */
static int
parse_body(const unsigned char *m, size_t n, struct hc_hello *h)
{
    size_t p = 0;

    if (n < 2 + 32 + 1)
        return fail(h, HC_HELLO_MALFORMED, "ClientHello too short");
    if (m[0] != 3)
        return fail(h, HC_HELLO_MALFORMED, "ClientHello version");
    p = 34;
    size_t sid = m[p++];
    if (sid > 32 || p + sid > n)
        return fail(h, HC_HELLO_MALFORMED, "session id");
    p += sid;
    if (p + 2 > n)
        return fail(h, HC_HELLO_MALFORMED, "cipher suites");
    size_t cs = be16(m + p);
    p += 2;
    if (cs < 2 || (cs & 1) || p + cs > n)
        return fail(h, HC_HELLO_MALFORMED, "cipher suites");
    p += cs;
    if (p + 1 > n)
        return fail(h, HC_HELLO_MALFORMED, "compression methods");
    size_t cm = m[p++];
    if (cm < 1 || p + cm > n)
        return fail(h, HC_HELLO_MALFORMED, "compression methods");
    p += cm;
    if (p == n)
        return HC_HELLO_NO_SNI;               /* no extensions at all */
    if (p + 2 > n)
        return fail(h, HC_HELLO_MALFORMED, "extensions length");
    size_t el = be16(m + p);
    p += 2;
    if (p + el != n)
        return fail(h, HC_HELLO_MALFORMED, "extensions length");

    int ech = 0, names = 0, seen_sni = 0;
    const unsigned char *name = NULL;
    size_t name_len = 0;
    unsigned seen[64];
    size_t nseen = 0;

    while (p < n) {
        if (p + 4 > n)
            return fail(h, HC_HELLO_MALFORMED, "extension header");
        unsigned type = be16(m + p);
        size_t len = be16(m + p + 2);
        p += 4;
        if (p + len > n)
            return fail(h, HC_HELLO_MALFORMED, "extension length");
        for (size_t i = 0; i < nseen; i++)
            if (seen[i] == type)
                return fail(h, HC_HELLO_MALFORMED, "duplicate extension");
        if (nseen < sizeof(seen) / sizeof(seen[0]))
            seen[nseen++] = type;
        else
            return fail(h, HC_HELLO_MALFORMED, "too many extensions");

        if (type == EXT_ECH || type == EXT_ESNI ||
            (type >= 0xfe08 && type <= 0xfe0c))
            ech = 1;
        if (type == EXT_SERVER_NAME) {
            const unsigned char *e = m + p;
            seen_sni = 1;
            if (len < 2 || be16(e) != len - 2)
                return fail(h, HC_HELLO_MALFORMED, "server_name list");
            size_t q = 2;
            while (q < len) {
                if (q + 3 > len)
                    return fail(h, HC_HELLO_MALFORMED, "server_name entry");
                size_t nl = be16(e + q + 1);
                if (q + 3 + nl > len)
                    return fail(h, HC_HELLO_MALFORMED, "server_name entry");
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
        return fail(h, HC_HELLO_ECH, "encrypted ClientHello (ECH/ESNI)");
    if (names > 1)
        return fail(h, HC_HELLO_MULTI_SNI, "several server names");
    if (!seen_sni)
        return HC_HELLO_NO_SNI;
    if (!name)
        return fail(h, HC_HELLO_MALFORMED, "server_name without host_name");
    if (kap_host_name_norm((const char *)name, name_len, NULL, 0) < 0)
        return fail(h, HC_HELLO_MALFORMED, "invalid host name in SNI");
    for (size_t i = 0; i < name_len; i++) {
        char c = (char)name[i];
        h->sni[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    h->sni[name_len] = '\0';
    h->sni_len = name_len;
    return HC_HELLO_SNI;
}

int
kap_http_connect_hello_parse(const unsigned char *buf, size_t len,
                    struct hc_hello *h)
{
    unsigned char hs[HC_HELLO_MAX + 4];
    size_t hl = 0, off = 0;

    memset(h, 0, sizeof(*h));
    if (len >= 1 && buf[0] != 22)
        return fail(h, HC_HELLO_NOT_TLS, "not a TLS handshake record");
    if (len >= 2 && buf[1] != 3)
        return fail(h, HC_HELLO_NOT_TLS, "not a TLS record version");

    for (;;) {
        if (len - off < 5)
            goto more;
        const unsigned char *r = buf + off;
        if (r[0] != 22 || r[1] != 3)
            return fail(h, HC_HELLO_MALFORMED, "non-handshake record in hello");
        size_t rl = be16(r + 3);
        if (rl == 0 || rl > 16384)
            return fail(h, HC_HELLO_MALFORMED, "record length");
        if (off + 5 + rl > HC_HELLO_BUF_MAX)
            return fail(h, HC_HELLO_TOO_BIG, "ClientHello records too large");
        if (len - off - 5 < rl)
            goto more;
        size_t take = rl;
        if (hl + take > sizeof(hs))
            return fail(h, HC_HELLO_TOO_BIG, "ClientHello too large");
        memcpy(hs + hl, r + 5, take);
        hl += take;
        off += 5 + rl;
        if (hl >= 4) {
            if (hs[0] != 1)
                return fail(h, HC_HELLO_MALFORMED, "not a ClientHello");
            size_t ml = ((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3];
            if (ml > HC_HELLO_MAX)
                return fail(h, HC_HELLO_TOO_BIG, "ClientHello too large");
            if (hl >= ml + 4) {
                if (hl > ml + 4)
                    return fail(h, HC_HELLO_MALFORMED,
                                "data after ClientHello in its record");
                h->hello_len = ml;
                h->records_len = off;
                return parse_body(hs + 4, ml, h);
            }
        }
    }
more:
    if (len >= HC_HELLO_BUF_MAX)
        return fail(h, HC_HELLO_TOO_BIG, "ClientHello not complete in bound");
    return HC_HELLO_NEED_MORE;
}

/* ---- first bytes -------------------------------------------------------- */

static int
first_other(struct hc_first *out, const char *why)
{
    out->kind = HC_FIRST_OTHER;
    out->error = why;
    return out->kind;
}

static int
classify_ssh(const unsigned char *buf, size_t len, struct hc_first *out)
{
    size_t max = len < HC_SSH_IDENT_MAX ? len : HC_SSH_IDENT_MAX;

    for (size_t i = 0; i < max; i++) {
        unsigned char c = buf[i];
        if (c == '\r') {
            if (i + 1 == len)
                return HC_FIRST_NEED_MORE;
            if (buf[i + 1] != '\n')
                return first_other(out, "SSH line: bare CR");
            /* SSH-protoversion-softwareversion [SP comments] */
            if (i >= 8 && memcmp(buf, "SSH-2.0-", 8) == 0 && i > 8 &&
                buf[8] != ' ')
                return out->kind = HC_FIRST_SSH;
            if (i >= 9 && memcmp(buf, "SSH-1.99-", 9) == 0 && i > 9 &&
                buf[9] != ' ')
                return out->kind = HC_FIRST_SSH;
            return first_other(out, "SSH line: unsupported version");
        }
        if (c < 0x20 || c > 0x7e)
            return first_other(out, "SSH line: invalid character");
    }
    if (len >= HC_SSH_IDENT_MAX)
        return first_other(out, "SSH line too long");
    return HC_FIRST_NEED_MORE;
}

int
kap_http_connect_first_classify(const unsigned char *buf, size_t len,
                   struct hc_first *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0)
        return HC_FIRST_NEED_MORE;
    if (buf[0] == 22) {
        if (len >= 2 && buf[1] != 3)
            return first_other(out, "not a TLS record");
        return out->kind = HC_FIRST_TLS;
    }
    if (buf[0] == 'S' && memcmp(buf, "SSH-", len < 4 ? len : 4) == 0) {
        if (len < 4)
            return HC_FIRST_NEED_MORE;
        return classify_ssh(buf, len, out);
    }
    if (buf[0] >= 'A' && buf[0] <= 'Z') {
        struct kap_http_req req;
        kap_http_req_reset(&req);
        int rc = kap_http_parse_request(&req, (const char *)buf, len, NULL);
        if (rc == KAP_AGAIN)
            return HC_FIRST_NEED_MORE;
        if (rc != KAP_OK)
            return first_other(out, "invalid HTTP request");
        if (!req.host || req.host->value.len == 0)
            return first_other(out, "HTTP request without Host");
        if (req.form == KAP_HTTP_FORM_AUTHORITY)
            return first_other(out, "CONNECT inside a tunnel");
        struct kap_http_uri u;
        if (kap_http_parse_authority(req.host->value.data,
                                     req.host->value.len, 80, &u) != KAP_OK ||
            u.host_len > KAP_HOST_NAME_MAX + 1)
            return first_other(out, "invalid Host");
        if (req.form == KAP_HTTP_FORM_ABSOLUTE &&
            strcmp(req.uri.host, u.host) != 0)
            return first_other(out, "HTTP URI host differs from Host");
        memcpy(out->host, u.host, u.host_len + 1);
        out->port = u.port_given ? u.port : 0;
        return out->kind = HC_FIRST_HTTP;
    }
    return first_other(out, "unrecognised protocol");
}
