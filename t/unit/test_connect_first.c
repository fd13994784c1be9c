/*
 * test_connect_first.c -- unit tests of the ClientHello inspector and the
 * client-first-bytes classifier (kap_http_connect_first.h): hand-built hellos for every
 * result class, hellos split over records and segments, and a real
 * OpenSSL client hello (with and without SNI).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/ssl.h>

#include "kap_http_connect_first.h"
#include "tap.h"

struct b {
    unsigned char d[40000];
    size_t n;
};

static void
put(struct b *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void
u8(struct b *b, unsigned v)
{
    b->d[b->n++] = (unsigned char)v;
}

static void
u16(struct b *b, unsigned v)
{
    u8(b, v >> 8);
    u8(b, v & 0xff);
}

/* hello options */
struct opt {
    const char *names[3];   /* host_name entries */
    int         sni;        /* include a server_name extension */
    int         ech;        /* add an ECH extension */
    int         esni;
    int         dup;        /* duplicate an extension */
    size_t      pad;        /* padding extension size */
    int         badlen;     /* corrupt the extensions length */
};

/* build the handshake message (type + len + body) */
static void
hello(struct b *m, const struct opt *o)
{
    struct b body = { .n = 0 }, ext = { .n = 0 };

    u16(&body, 0x0303);
    for (int i = 0; i < 32; i++)
        u8(&body, (unsigned)i);
    u8(&body, 32);
    for (int i = 0; i < 32; i++)
        u8(&body, 0xaa);
    u16(&body, 4);
    u16(&body, 0x1301);
    u16(&body, 0x1302);
    u8(&body, 1);
    u8(&body, 0);

    if (o->sni) {
        struct b l = { .n = 0 };
        for (int i = 0; i < 3 && o->names[i]; i++) {
            u8(&l, 0);
            u16(&l, (unsigned)strlen(o->names[i]));
            put(&l, o->names[i], strlen(o->names[i]));
        }
        u16(&ext, 0);
        u16(&ext, (unsigned)l.n + 2);
        u16(&ext, (unsigned)l.n);
        put(&ext, l.d, l.n);
    }
    u16(&ext, 43);                 /* supported_versions */
    u16(&ext, 3);
    u8(&ext, 2);
    u16(&ext, 0x0304);
    if (o->dup) {
        u16(&ext, 43);
        u16(&ext, 3);
        u8(&ext, 2);
        u16(&ext, 0x0304);
    }
    if (o->ech) {
        u16(&ext, 0xfe0d);
        u16(&ext, 4);
        u16(&ext, 0);
        u16(&ext, 0);
    }
    if (o->esni) {
        u16(&ext, 0xffce);
        u16(&ext, 0);
    }
    if (o->pad) {
        u16(&ext, 21);
        u16(&ext, (unsigned)o->pad);
        memset(ext.d + ext.n, 0, o->pad);
        ext.n += o->pad;
    }
    u16(&body, (unsigned)ext.n + (o->badlen ? 1 : 0));
    put(&body, ext.d, ext.n);

    m->n = 0;
    u8(m, 1);
    u8(m, (unsigned)(body.n >> 16));
    u16(m, (unsigned)(body.n & 0xffff));
    put(m, body.d, body.n);
}

/* wrap message m into records of at most frag bytes */
static void
records(struct b *out, const struct b *m, size_t frag)
{
    out->n = 0;
    for (size_t off = 0; off < m->n; off += frag) {
        size_t k = m->n - off < frag ? m->n - off : frag;
        u8(out, 22);
        u16(out, 0x0301);
        u16(out, (unsigned)k);
        put(out, m->d + off, k);
    }
}

static struct b M, W;
static struct hc_hello H;

static int
run(const struct opt *o, size_t frag)
{
    hello(&M, o);
    records(&W, &M, frag);
    return kap_http_connect_hello_parse(W.d, W.n, &H);
}

static void
test_classes(void)
{
    struct opt o = { .names = { "GitHub.com" }, .sni = 1 };
    is_int(run(&o, 16384), HC_HELLO_SNI, "one record: SNI");
    is_str(H.sni, "github.com", "SNI lower-cased");

    /* every truncation needs more */
    int bad = 0;
    for (size_t i = 0; i < W.n; i++)
        if (kap_http_connect_hello_parse(W.d, i, &H) != HC_HELLO_NEED_MORE)
            bad++;
    is_int(bad, 0, "every prefix of a hello needs more");

    is_int(run(&o, 7), HC_HELLO_SNI, "hello split over 7-byte records");
    is_str(H.sni, "github.com", "SNI from split records");
    is_int(run(&o, 1), HC_HELLO_SNI, "hello split over 1-byte records");

    struct opt none = { .sni = 0 };
    is_int(run(&none, 16384), HC_HELLO_NO_SNI, "no SNI");
    struct opt multi = { .names = { "a.com", "b.com" }, .sni = 1 };
    is_int(run(&multi, 16384), HC_HELLO_MULTI_SNI, "two host names");
    struct opt ech = { .names = { "a.com" }, .sni = 1, .ech = 1 };
    is_int(run(&ech, 16384), HC_HELLO_ECH, "ECH");
    struct opt esni = { .names = { "a.com" }, .sni = 1, .esni = 1 };
    is_int(run(&esni, 16384), HC_HELLO_ECH, "ESNI");
    struct opt dup = { .names = { "a.com" }, .sni = 1, .dup = 1 };
    is_int(run(&dup, 16384), HC_HELLO_MALFORMED, "duplicate extension");
    struct opt bl = { .names = { "a.com" }, .sni = 1, .badlen = 1 };
    is_int(run(&bl, 16384), HC_HELLO_MALFORMED, "bad extensions length");
    /* the one host-name rule (kap_addr.h) allows '_', as for the CONNECT
       host the SNI must equal */
    struct opt us = { .names = { "A_b.com" }, .sni = 1 };
    is_int(run(&us, 16384), HC_HELLO_SNI, "underscore in SNI");
    is_str(H.sni, "a_b.com", "underscore SNI, lower-cased");
    struct opt inv = { .names = { "a*b.com" }, .sni = 1 };
    is_int(run(&inv, 16384), HC_HELLO_MALFORMED, "'*' in SNI");
    struct opt dots = { .names = { "a..com" }, .sni = 1 };
    is_int(run(&dots, 16384), HC_HELLO_MALFORMED, "empty label in SNI");
    struct opt inv2 = { .names = { "a\xc3\xa9.com" }, .sni = 1 };
    is_int(run(&inv2, 16384), HC_HELLO_MALFORMED, "non-ASCII SNI");
    struct opt inv3 = { .names = { "a.com\0evil" }, .sni = 1 };
    is_int(run(&inv3, 16384), HC_HELLO_SNI, "NUL-cut test name is plain");
    struct opt empty = { .names = { "" }, .sni = 1 };
    is_int(run(&empty, 16384), HC_HELLO_MALFORMED, "empty SNI");

    struct opt big = { .names = { "a.com" }, .sni = 1, .pad = 9000 };
    is_int(run(&big, 4000), HC_HELLO_SNI, "9 KB hello over 3 records");
    struct opt huge = { .names = { "a.com" }, .sni = 1, .pad = 17000 };
    is_int(run(&huge, 16000), HC_HELLO_TOO_BIG, "17 KB hello too big");

    /* corruptions */
    hello(&M, &o);
    records(&W, &M, 16384);
    W.d[5] = 2;                              /* ServerHello */
    is_int(kap_http_connect_hello_parse(W.d, W.n, &H), HC_HELLO_MALFORMED,
           "not a ClientHello");
    records(&W, &M, 100);
    W.d[105] = 21;                           /* alert in the middle */
    is_int(kap_http_connect_hello_parse(W.d, W.n, &H), HC_HELLO_MALFORMED,
           "alert record inside hello");
    is_int(kap_http_connect_hello_parse((const unsigned char *)"GET /", 5, &H),
           HC_HELLO_NOT_TLS, "HTTP is not TLS");
    is_int(kap_http_connect_hello_parse((const unsigned char *)"\x16\x02", 2, &H),
           HC_HELLO_NOT_TLS, "record version 2");
    {
        unsigned char z[] = { 22, 3, 1, 0, 0 };
        is_int(kap_http_connect_hello_parse(z, 5, &H), HC_HELLO_MALFORMED,
               "empty record");
    }
    {
        unsigned char w[HC_HELLO_BUF_MAX + 10];
        memset(w, 0, sizeof(w));
        w[0] = 22; w[1] = 3; w[2] = 1; w[3] = 0x40; w[4] = 0x00;
        w[5] = 1; w[6] = 0x00; w[7] = 0x50; w[8] = 0x00;   /* 20480 */
        is_int(kap_http_connect_hello_parse(w, 10, &H), HC_HELLO_NEED_MORE,
               "huge length declared: need more first");
        is_int(kap_http_connect_hello_parse(w, 16389, &H), HC_HELLO_TOO_BIG,
               "huge declared hello: too big once the record is in");
    }
}

static int
cls(const char *s, struct hc_first *f)
{
    return kap_http_connect_first_classify((const unsigned char *)s, strlen(s), f);
}

static void
test_first(void)
{
    struct hc_first f;

    is_int(cls("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", &f), HC_FIRST_SSH, "ssh");
    is_int(cls("SSH-2.0-OpenSSH_9.2p1", &f), HC_FIRST_NEED_MORE,
           "ssh without CRLF yet");
    is_int(cls("SSH", &f), HC_FIRST_NEED_MORE, "SSH prefix");
    is_int(cls("SSH-1.5-old\r\n", &f), HC_FIRST_OTHER, "ssh 1.5");
    is_int(cls("SSH-2.0-\r\n", &f), HC_FIRST_OTHER, "ssh empty software");
    is_int(cls("SSH-2.0-x\x01y\r\n", &f), HC_FIRST_OTHER, "ssh control");
    {
        char l[400];
        memset(l, 'x', sizeof(l));
        memcpy(l, "SSH-2.0-", 8);
        is_int(kap_http_connect_first_classify((unsigned char *)l, 300, &f),
               HC_FIRST_OTHER, "ssh line too long");
    }
    is_int(cls("GET / HTTP/1.1\r\nHost: Example.com\r\n\r\n", &f),
           HC_FIRST_HTTP, "http");
    is_str(f.host, "example.com", "http host");
    is_int(cls("GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", &f),
           HC_FIRST_HTTP, "http with port");
    is_int(f.port, 8080, "http host port");
    is_int(cls("GET / HTTP/1.1\r\nHost: a", &f), HC_FIRST_NEED_MORE,
           "partial http");
    is_int(cls("GET / HTTP/1.0\r\n\r\n", &f), HC_FIRST_OTHER,
           "http without Host");
    is_int(cls("GET http://b.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n", &f),
           HC_FIRST_OTHER, "URI host differs");
    is_int(cls("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
               "Transfer-Encoding: chunked\r\n\r\n", &f),
           HC_FIRST_OTHER, "smuggling head");
    is_int(cls("\x16\x03\x01", &f), HC_FIRST_TLS, "tls");
    is_int(cls("\x01\x02garbage", &f), HC_FIRST_OTHER, "garbage");
    is_int(cls("hello", &f), HC_FIRST_OTHER, "lower-case text");
}

/* a real client hello from OpenSSL */
static int
openssl_hello(const char *sni, unsigned char *out, size_t outsz)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *s = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(s, rb, wb);
    if (sni)
        SSL_set_tlsext_host_name(s, sni);
    SSL_set_connect_state(s);
    (void)SSL_do_handshake(s);
    int n = BIO_read(wb, out, (int)outsz);
    SSL_free(s);
    SSL_CTX_free(ctx);
    return n;
}

static void
test_openssl(void)
{
    unsigned char buf[8192];
    int n = openssl_hello("Api.Example.org", buf, sizeof(buf));
    ok(n > 0, "openssl produced a hello (%d bytes)", n);
    if (n <= 0)
        return;
    is_int(kap_http_connect_hello_parse(buf, (size_t)n, &H), HC_HELLO_SNI,
           "openssl hello: SNI");
    is_str(H.sni, "api.example.org", "openssl SNI");
    /* split into TCP segments: every prefix needs more */
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (kap_http_connect_hello_parse(buf, (size_t)i, &H) != HC_HELLO_NEED_MORE)
            bad++;
    is_int(bad, 0, "openssl hello prefixes need more");
    n = openssl_hello(NULL, buf, sizeof(buf));
    is_int(kap_http_connect_hello_parse(buf, (size_t)n, &H), HC_HELLO_NO_SNI,
           "openssl hello without SNI");
}

int
main(void)
{
    test_classes();
    test_first();
    test_openssl();
    return done_testing();
}
