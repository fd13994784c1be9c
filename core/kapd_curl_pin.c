/*
 * kapd_curl_pin.c -- the set of addresses a kap_curl transfer may use:
 * the CURLOPT_RESOLVE entry that makes them libcurl's only DNS answer,
 * and the comparisons that refuse any other destination when libcurl
 * opens a socket or reuses a connection.  Pure functions (no allocation,
 * no state), so they are unit-tested on their own (t/unit/test_curl_pin).
 */
#include "kapd.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <kapd/kap_addr.h>

#include "kapd_curl_int.h"

/* append s to buf at *off; 0, or -1 when it does not fit (NUL included) */
static int
put(char *buf, size_t len, size_t *off, const char *s)
{
    size_t n = strlen(s);

    if (n >= len - *off)
        return -1;
    memcpy(buf + *off, s, n + 1);
    *off += n;
    return 0;
}

int
kapd_curl_resolve_entry(char *buf, size_t len, const char *host,
                        unsigned port, const struct sockaddr_storage *addrs,
                        size_t naddrs)
{
    char num[16], at[INET6_ADDRSTRLEN];
    size_t off = 0, i;

    if (buf == NULL || len == 0)
        return -1;
    buf[0] = '\0';
    /* a ':' in the host would move libcurl's field boundaries */
    if (host == NULL || host[0] == '\0' || strchr(host, ':') != NULL
        || naddrs == 0 || port == 0 || port > 65535)
        return -1;
    snprintf(num, sizeof(num), ":%u:", port);
    if (put(buf, len, &off, host) < 0 || put(buf, len, &off, num) < 0)
        goto full;
    for (i = 0; i < naddrs; i++) {
        const struct sockaddr_storage *ss = &addrs[i];
        int v6 = ss->ss_family == AF_INET6;
        const void *a;

        if (ss->ss_family == AF_INET)
            a = &((const struct sockaddr_in *)ss)->sin_addr;
        else if (v6)
            a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        else
            goto full;
        if (inet_ntop(ss->ss_family, a, at, sizeof(at)) == NULL)
            goto full;
        /* libcurl reads "[v6]" in a list: the brackets keep the colons
           of the address apart from the entry's own */
        if ((i > 0 && put(buf, len, &off, ",") < 0)
            || (v6 && put(buf, len, &off, "[") < 0)
            || put(buf, len, &off, at) < 0
            || (v6 && put(buf, len, &off, "]") < 0))
            goto full;
    }
    return (int)off;
full:
    buf[0] = '\0';
    return -1;
}

/* family and raw address of sa (an IPv4-mapped IPv6 address as IPv4);
   0 when sa is neither, or shorter than its family needs */
static int
raw_addr(const struct sockaddr *sa, size_t salen, unsigned char *out,
         unsigned *port)
{
    if (salen < (sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in)))
        return 0;
    return kap_addr_raw(sa, out, port);
}

int
kapd_curl_addr_allowed(const struct sockaddr *sa, size_t salen,
                       unsigned port, const struct sockaddr_storage *addrs,
                       size_t naddrs)
{
    unsigned char want[16], have[16];
    unsigned wport, hport;
    int wf, hf;
    size_t i;

    if (sa == NULL || addrs == NULL)
        return 0;
    if ((wf = raw_addr(sa, salen, want, &wport)) == 0 || wport != port)
        return 0;
    for (i = 0; i < naddrs; i++) {
        hf = raw_addr((const struct sockaddr *)&addrs[i], sizeof(addrs[i]),
                      have, &hport);
        if (hf == wf && memcmp(want, have, wf == AF_INET ? 4 : 16) == 0)
            return 1;
    }
    return 0;
}

int
kapd_curl_addr_text_allowed(const char *ip, unsigned port,
                            const struct sockaddr_storage *addrs,
                            size_t naddrs)
{
    struct sockaddr_storage ss;

    if (ip == NULL || port == 0 || port > 65535)
        return 0;
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        return kapd_curl_addr_allowed((struct sockaddr *)&ss,
                                      sizeof(struct sockaddr_in), port,
                                      addrs, naddrs);
    }
    if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr)
        == 1) {
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        return kapd_curl_addr_allowed((struct sockaddr *)&ss,
                                      sizeof(struct sockaddr_in6), port,
                                      addrs, naddrs);
    }
    return 0;
}
