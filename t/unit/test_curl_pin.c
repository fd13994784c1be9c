/*
 * test_curl_pin.c -- kap_curl's address pinning helpers (kapd_curl_pin.c):
 * the CURLOPT_RESOLVE entry, and the comparisons the open-socket and
 * pre-request callbacks make.  The entry is also handed to libcurl itself,
 * with an open-socket callback that records what libcurl wants to dial
 * and refuses it, so the test proves libcurl reads the entry as meant
 * (IPv6 in brackets, several addresses, the port in the sockaddr) with no
 * network at all.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <kapd/kap_core.h>
#include "kapd.h"
#include "kapd_curl_int.h"
#include "tap.h"

static struct sockaddr_storage
addr(const char *ip, unsigned port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, ip,
                         &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    }
    return ss;
}

/* what libcurl asked to open, in order */
static char seen[8][64];
static int nseen;

static curl_socket_t
record_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    char at[INET6_ADDRSTRLEN];
    const void *p;
    unsigned port;

    (void)clientp;
    (void)purpose;
    if (a->family == AF_INET) {
        p = &((struct sockaddr_in *)&a->addr)->sin_addr;
        port = ntohs(((struct sockaddr_in *)&a->addr)->sin_port);
    } else {
        p = &((struct sockaddr_in6 *)&a->addr)->sin6_addr;
        port = ntohs(((struct sockaddr_in6 *)&a->addr)->sin6_port);
    }
    if (nseen < 8 && inet_ntop(a->family, p, at, sizeof(at)) != NULL)
        snprintf(seen[nseen++], sizeof(seen[0]), "%s/%u", at, port);
    return CURL_SOCKET_BAD;
}

/* run libcurl on url with one CURLOPT_RESOLVE entry; the sockets it
   wanted are in seen[] */
static CURLcode
try_curl(const char *url, const char *entry)
{
    struct curl_slist *l = curl_slist_append(NULL, entry);
    CURL *e = curl_easy_init();
    CURLcode rc;

    nseen = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_RESOLVE, l);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, record_open);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    rc = curl_easy_perform(e);
    curl_easy_cleanup(e);
    curl_slist_free_all(l);
    return rc;
}

int
main(void)
{
    struct sockaddr_storage a[3], mapped;
    char buf[256], small[20];
    int n;

    plan(26);

    /* ---- the entry ---------------------------------------------------- */
    a[0] = addr("192.0.2.1", 0);
    a[1] = addr("2001:db8::1", 0);
    a[2] = addr("127.0.0.2", 0);
    n = kapd_curl_resolve_entry(buf, sizeof(buf), "api.example", 443, a, 1);
    is_str(buf, "api.example:443:192.0.2.1", "one IPv4 address");
    is_int(n, (int)strlen(buf), "returns the length");
    kapd_curl_resolve_entry(buf, sizeof(buf), "api.example", 8080, a, 3);
    is_str(buf, "api.example:8080:192.0.2.1,[2001:db8::1],127.0.0.2",
           "several, IPv6 in brackets");
    is_int(kapd_curl_resolve_entry(buf, sizeof(buf), "::1", 80, a, 1), -1,
           "a host with ':' gets no entry");
    is_int(kapd_curl_resolve_entry(buf, sizeof(buf), "", 80, a, 1), -1,
           "an empty host gets no entry");
    is_int(kapd_curl_resolve_entry(buf, sizeof(buf), "x.test", 80, a, 0), -1,
           "no address, no entry");
    is_int(kapd_curl_resolve_entry(buf, sizeof(buf), "x.test", 0, a, 1), -1,
           "port 0 refused");
    n = kapd_curl_resolve_entry(small, sizeof(small), "api.example", 443,
                                a, 3);
    ok(n == -1 && small[0] == '\0', "too small: -1 and nothing half-written");
    n = kapd_curl_resolve_entry(buf, 25, "api.example", 443, a, 1);
    ok(n == -1, "one byte short for the NUL: -1");
    n = kapd_curl_resolve_entry(buf, 26, "api.example", 443, a, 1);
    is_int(n, 25, "exactly fits");

    /* ---- the comparisons ------------------------------------------------ */
    {
        struct sockaddr_storage t = addr("192.0.2.1", 443);
        ok(kapd_curl_addr_allowed((struct sockaddr *)&t,
                                  sizeof(struct sockaddr_in), 443, a, 3),
           "allowed address and port");
        ok(!kapd_curl_addr_allowed((struct sockaddr *)&t,
                                   sizeof(struct sockaddr_in), 80, a, 3),
           "another port than the URL's: refused");
        t = addr("192.0.2.1", 80);
        ok(!kapd_curl_addr_allowed((struct sockaddr *)&t,
                                   sizeof(struct sockaddr_in), 443, a, 3),
           "sockaddr with another port: refused");
        t = addr("127.0.0.1", 443);
        ok(!kapd_curl_addr_allowed((struct sockaddr *)&t,
                                   sizeof(struct sockaddr_in), 443, a, 3),
           "an address not in the set: refused");
        t = addr("192.0.2.1", 443);
        ok(!kapd_curl_addr_allowed((struct sockaddr *)&t, 4, 443, a, 3),
           "a sockaddr shorter than its family: refused");
        t = addr("2001:db8::1", 443);
        ok(kapd_curl_addr_allowed((struct sockaddr *)&t,
                                  sizeof(struct sockaddr_in6), 443, a, 3),
           "allowed IPv6 address");
        mapped = addr("::ffff:127.0.0.2", 443);
        ok(kapd_curl_addr_allowed((struct sockaddr *)&mapped,
                                  sizeof(struct sockaddr_in6), 443, a, 3),
           "IPv4-mapped form of an allowed address");
        mapped = addr("::ffff:127.0.0.1", 443);
        ok(!kapd_curl_addr_allowed((struct sockaddr *)&mapped,
                                   sizeof(struct sockaddr_in6), 443, a, 3),
           "IPv4-mapped form of another address: refused");
    }
    ok(kapd_curl_addr_text_allowed("127.0.0.2", 443, a, 3),
       "text: allowed");
    ok(kapd_curl_addr_text_allowed("2001:db8:0::1", 443, a, 3),
       "text: another spelling of an allowed IPv6 address");
    ok(!kapd_curl_addr_text_allowed("127.0.0.1", 443, a, 3),
       "text: another address");
    ok(!kapd_curl_addr_text_allowed("127.1", 443, a, 3),
       "text: not inet_pton form");
    ok(!kapd_curl_addr_text_allowed("127.0.0.2", 0, a, 3), "text: port 0");

    /* ---- libcurl reads the entry as meant ------------------------------- */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    kapd_curl_resolve_entry(buf, sizeof(buf), "pin.invalid", 4711, a, 3);
    try_curl("http://pin.invalid:4711/", buf);
    ok(nseen >= 1 && strcmp(seen[0], "192.0.2.1/4711") == 0,
       "libcurl dials the first pinned address, with the URL's port (%s)",
       nseen ? seen[0] : "nothing");
    {
        int v6 = 0, i;
        for (i = 0; i < nseen; i++)
            v6 |= strcmp(seen[i], "2001:db8::1/4711") == 0;
        ok(v6, "and the bracketed IPv6 one (%d sockets)", nseen);
    }
    a[0] = addr("2001:db8::7", 0);
    kapd_curl_resolve_entry(buf, sizeof(buf), "pin6.invalid", 80, a, 1);
    try_curl("http://pin6.invalid/", buf);
    ok(nseen == 1 && strcmp(seen[0], "2001:db8::7/80") == 0,
       "an IPv6-only entry, default port (%s)", nseen ? seen[0] : "nothing");
    curl_global_cleanup();
    return done_testing();
}
