/*
 * kapd_curl_int.h -- the parts of kap_curl (kap_curl.h) that talk to each
 * other: the per-generation multi handle on the loop (kapd_curl.c), the
 * transfers (kapd_curl_fetch.c) and the address pinning helpers
 * (kapd_curl_pin.c, pure, unit-tested by t/unit/test_curl_pin.c).
 */
#ifndef KAPD_CURL_INT_H
#define KAPD_CURL_INT_H

#include <stddef.h>
#include <sys/socket.h>
#include <curl/curl.h>

#include <kapd/kap_curl.h>

/* ---- kapd_curl.c: one multi handle per generation --------------------- */

/*
 * Add easy to gen's multi handle (created on first use); libcurl starts
 * it from the loop, never from inside this call.  KAP_OK or KAP_ERROR
 * (out of memory, libcurl refused).
 */
int  kapd_curl_multi_add(struct kap_gen *gen, CURL *easy);
/* Take easy out of gen's multi handle (no-op when it is not in it). */
void kapd_curl_multi_remove(struct kap_gen *gen, CURL *easy);

/* ---- kapd_curl_fetch.c ------------------------------------------------- */

/* libcurl finished easy (CURLMSG_DONE) with rc: end its transfer.  Called
   by kapd_curl.c from the loop, after curl_multi_socket_action returned. */
void kapd_curl_fetch_finished(CURL *easy, CURLcode rc);

/* ---- kapd_curl_pin.c: the allowed addresses ---------------------------- */

/* Most addresses one transfer may be pinned to. */
#define KAPD_CURL_MAX_ADDRS 32

/*
 * The CURLOPT_RESOLVE entry "host:port:addr1,[v6addr2],..." for the
 * addresses (AF_INET / AF_INET6) into buf.  host must hold no ':' (an
 * IPv6 literal needs no entry: libcurl does not resolve literals).
 * Returns the length written, or -1 when host is empty or holds ':', an
 * address is of another family, or buf is too small (nothing usable is
 * left in buf then).
 */
int  kapd_curl_resolve_entry(char *buf, size_t len, const char *host,
                             unsigned port,
                             const struct sockaddr_storage *addrs,
                             size_t naddrs);

/*
 * Non-zero when sa (AF_INET or AF_INET6, its port included) is one of the
 * addresses, with port.  An IPv4-mapped IPv6 sockaddr matches its IPv4
 * address.  salen is the length libcurl gave (checked against the
 * family).
 */
int  kapd_curl_addr_allowed(const struct sockaddr *sa, size_t salen,
                            unsigned port,
                            const struct sockaddr_storage *addrs,
                            size_t naddrs);

/* Same for an address in text form ("192.0.2.1", "2001:db8::1"), as
   CURLOPT_PREREQFUNCTION reports it.  Not an address: 0. */
int  kapd_curl_addr_text_allowed(const char *ip, unsigned port,
                                 const struct sockaddr_storage *addrs,
                                 size_t naddrs);

#endif /* KAPD_CURL_INT_H */
