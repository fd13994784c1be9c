/*
 * kap_resolver.h -- the shared asynchronous resolver (libunbound).
 *
 * kapd resolves every name itself, with one libunbound context per
 * configuration generation (the built-in `resolver` module, group
 * `resolver { upstream; resolv_conf; recursion; trust_anchor; timeout; }`).
 * http_connect uses kap_resolve_addrs() to find the addresses it checks
 * and dials; the dns module uses kap_resolve_raw() to forward a question.
 *
 * Rules common to every function here:
 * - Call from the event loop thread only.
 * - The callback is never called before the starting function returns:
 *   it always runs later, from the loop (a literal address too).
 * - The callback is called exactly once, unless kap_resolve_cancel() was
 *   called first; then it is never called.
 * - A query holds a reference on the generation it was started in, so a
 *   reload never frees the context under a pending query.  The handle
 *   (struct kap_resolve) is owned by the core and becomes invalid when the
 *   callback returns or when kap_resolve_cancel() returns.
 * - Every answer is bounded by resolver.timeout (default 5 s): after it
 *   the callback gets KAP_ERROR with errmsg "timeout".
 */
#ifndef KAP_RESOLVER_H
#define KAP_RESOLVER_H

#include <stddef.h>
#include <sys/socket.h>

struct kap_gen;

/* One pending query.  Opaque; owned by the core. */
struct kap_resolve;

/* Most addresses delivered by kap_resolve_addrs() (A and AAAA together). */
#define KAP_RESOLVE_MAX_ADDRS 32

/*
 * Address lookup result.
 *   rc      KAP_OK       naddrs >= 1 addresses in addrs;
 *           KAP_DECLINED the name does not exist or has no address of the
 *                        wanted families (NXDOMAIN / NODATA);
 *           KAP_ERROR    failure: timeout, SERVFAIL, DNSSEC bogus, ...
 *   addrs   AF_INET / AF_INET6 sockaddrs with port 0 (set your own), IPv4
 *           first, in answer order, duplicates removed.  Borrowed for the
 *           call only: copy what you keep.  NULL when naddrs is 0.
 *   errmsg  static text for logs ("NXDOMAIN", "no address", "timeout",
 *           "SERVFAIL", ...); NULL when rc is KAP_OK.
 */
typedef void (*kap_resolve_addr_fn)(void *data, int rc,
                                    const struct sockaddr_storage *addrs,
                                    size_t naddrs, const char *errmsg);

/*
 * Resolve name (a host name, or an IPv4/IPv6 literal, which is returned
 * as is) to addresses: A always, AAAA too when want_v6 is non-zero; one
 * callback once both are answered.  CNAME chains are followed by the
 * resolver.  name is copied.
 * Returns the pending query, or NULL on immediate failure (no resolver in
 * gen, name empty or longer than 253, out of memory): then cb is never
 * called.
 */
struct kap_resolve *kap_resolve_addrs(struct kap_gen *gen, const char *name,
                                      int want_v6, kap_resolve_addr_fn cb,
                                      void *data);

/*
 * Raw lookup result.
 *   rc      KAP_OK when the resolver produced an answer packet (which may
 *           carry NXDOMAIN, NODATA or SERVFAIL in rcode); KAP_ERROR when
 *           it did not (timeout, resolver failure): wire is NULL then.
 *   wire    the answer packet in wire format (header, question, answer,
 *           authority, additional) as the resolver built it; its ID is 0
 *           and its flags are the resolver's.  Borrowed for the call only.
 *   rcode   DNS RCODE (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...).
 *   secure  non-zero when DNSSEC-validated (recursion mode only).
 *   bogus   non-zero when DNSSEC validation failed; rcode is SERVFAIL.
 *   errmsg  static text when rc is KAP_ERROR, else NULL.
 */
typedef void (*kap_resolve_raw_fn)(void *data, int rc,
                                   const unsigned char *wire, size_t len,
                                   int rcode, int secure, int bogus,
                                   const char *errmsg);

/*
 * Ask the resolver one question: name (presentation form, with or
 * without the trailing dot; copied), rrtype (1 A, 28 AAAA, 16 TXT, ...),
 * rrclass (1 IN).  Returns the pending query or NULL on immediate failure
 * (then cb is never called).
 */
struct kap_resolve *kap_resolve_raw(struct kap_gen *gen, const char *name,
                                    int rrtype, int rrclass,
                                    kap_resolve_raw_fn cb, void *data);

/*
 * Cancel a pending query: its callback is never called afterwards and q
 * is freed.  q must be a query whose callback has not run yet (calling
 * this from inside q's own callback, or after it, is a bug).  NULL ok.
 */
void kap_resolve_cancel(struct kap_resolve *q);

/* Number of queries pending in gen's resolver (for status and limits). */
unsigned kap_resolve_pending(struct kap_gen *gen);

#endif /* KAP_RESOLVER_H */
