/*
 * kap_addr.h -- IP address literals, the built-in address deny set,
 * IPv4-mapped IPv6, and host names.
 *
 * Every module that takes a host from the agent (a CONNECT target, a Host
 * header, a DNS name, a URL) must decide whether it is an address literal
 * the same way the resolver and the client libraries would, or an agent
 * can smuggle 127.0.0.1 past a name check as "127.1", "0x7f.0.0.1",
 * "2130706433" or "017700000001".  kap_addr_parse_literal() recognises
 * every spelling inet_aton(3) and the WHATWG URL parser accept.
 *
 * All functions here are pure (no allocation, no global state) and may be
 * called from any callback.
 */
#ifndef KAP_ADDR_H
#define KAP_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netinet/in.h>

/* Longest text kap_addr_to_text() writes, with brackets and NUL. */
#define KAP_ADDR_TEXT_MAX 48

/*
 * Parse host as an IP address literal.
 *   IPv4: every inet_aton spelling, whole string only: 1 to 4 parts of
 *     decimal, octal (leading 0) or hex (0x), the last part filling the
 *     remaining bytes ("127.1", "0x7f.0.0.1", "2130706433",
 *     "017700000001"); one trailing dot is ignored ("127.0.0.1.").
 *   IPv6: inet_pton forms, with or without [brackets]; zone ids ("%eth0")
 *     are rejected; IPv4-mapped ::ffff:a.b.c.d becomes the AF_INET address.
 * host is NUL-terminated and borrowed.  On KAP_OK *ss holds an AF_INET or
 * AF_INET6 sockaddr with port 0.
 * Returns KAP_OK (a literal), KAP_DECLINED (not an address literal: treat
 * as a name), or KAP_ERROR (looks like a literal but is not a valid one,
 * e.g. "1.2.3.256", "[::1", "fe80::1%eth0", "1.2.3.4.5", a name whose
 * last label is numeric: the caller must refuse it).
 */
int kap_addr_parse_literal(const char *host, struct sockaddr_storage *ss);

/*
 * Same, for len bytes of s (not NUL-terminated; embedded NULs make it a
 * KAP_ERROR).
 */
int kap_addr_parse_literal_n(const char *s, size_t len,
                             struct sockaddr_storage *ss);

/*
 * Canonical text of the address in sa (AF_INET or AF_INET6) into buf:
 * "127.0.0.1", "2001:db8::1" (no brackets, no port).  Returns buf, or
 * NULL when the family is unknown or buf is too small (use
 * KAP_ADDR_TEXT_MAX bytes).
 */
char *kap_addr_to_text(const struct sockaddr *sa, char *buf, size_t len);

/*
 * The fixed part of the DESIGN §6 deny set: 0.0.0.0/8, 127/8,
 * 169.254/16, 10/8, 172.16/12, 192.168/16, 100.64/10, 192.0.0.0/24,
 * 198.18/15, 224/4, 240/4 (incl. 255.255.255.255); ::, ::1, fe80::/10,
 * fc00::/7, ff00::/8; and for ::ffff:0:0/96 (mapped), ::/96 (compatible),
 * 64:ff9b::/96 (NAT64) and 2002::/16 (6to4) the embedded IPv4 address.
 * Returns non-zero when sa is in the set, with *why (may be NULL) set to a
 * static description ("loopback", "link-local", ...); 0 otherwise.
 * Unknown families are in the set ("not an IP address").
 */
int kap_addr_is_denied(const struct sockaddr *sa, const char **why);

/*
 * The IPv4 address embedded in an IPv6 address by the mapped, translated
 * (::ffff:0:0/96), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) conventions
 * (the compatible ::/96 is denied whole by kap_addr_is_denied).  Returns 1 and
 * stores it (network byte order, 4 bytes) in v4, or 0 when a6 embeds none.
 * a6 is 16 bytes.
 */
int kap_addr_embedded_v4(const unsigned char *a6, unsigned char *v4);

/*
 * Non-zero when the first plen bits of a and b (n bytes each) are equal.
 */
int kap_addr_prefix_eq(const unsigned char *a, const unsigned char *b,
                       unsigned plen);

/* ---- IPv4-mapped IPv6 ---------------------------------------------------
 * The one place kapd unwraps ::ffff:a.b.c.d (RFC 4291 §2.5.5.2): a peer on
 * a dual-stack socket, an answer record or a sockaddr from a library is the
 * IPv4 address it carries, for every comparison, key and log line.
 */

/* Non-zero when a6 (16 bytes, borrowed) is in ::ffff:0:0/96. */
int kap_addr_is_v4mapped(const unsigned char *a6);

/*
 * The IP of sa (borrowed) as raw bytes in out (caller's, 16 bytes: 4 are
 * written for IPv4, 16 for IPv6), an IPv4-mapped IPv6 address as its IPv4
 * address; *port (may be NULL) gets the port in host order.  Returns
 * AF_INET or AF_INET6, or 0 for any other family (out untouched).
 */
int kap_addr_raw(const struct sockaddr *sa, unsigned char *out,
                 unsigned *port);

/*
 * sa (borrowed) with a mapped address unwrapped, into *out (caller's): an
 * AF_INET6 ::ffff:a.b.c.d becomes the AF_INET a.b.c.d with the same port,
 * any other AF_INET/AF_INET6 address is copied.  Returns the family of
 * *out, or 0 (out zeroed) for any other family.
 */
int kap_addr_unmap(const struct sockaddr *sa, struct sockaddr_storage *out);

/*
 * The reverse, for sending to an IPv4 peer from a dual-stack socket: the
 * ::ffff:a.b.c.d form of s4 (borrowed, same port) into *out (caller's).
 */
void kap_addr_map_v4(const struct sockaddr_in *s4, struct sockaddr_in6 *out);

/* ---- Host names -----------------------------------------------------------
 * The one host-name validator and comparator: a CONNECT target, a Host
 * header, an SNI, a policy rule, a DNS question are judged by the same
 * rules, so no two parts of kapd disagree about what a name is.
 *
 * A host name is 1 to KAP_HOST_NAME_MAX characters of labels separated by
 * '.', with at most one trailing dot (not counted).  A label is 1 to 63
 * of the ASCII letters, digits, '-' and '_' ('_' for service names such
 * as _dmarc and the hosts that carry it in practice; '-' anywhere in a
 * label, as resolvers accept it).  No empty label, no other byte (an IDN
 * is written as its xn-- A-label).  Letters compare case-insensitively.
 * An IP literal is not judged here: callers ask kap_addr_parse_literal()
 * first; a dotted quad is syntactically a name, "[::1]" and "::1" are not.
 */
#define KAP_HOST_NAME_MAX  253
#define KAP_HOST_LABEL_MAX 63

/* Non-zero when c may appear in a label. */
int kap_host_char_ok(unsigned char c);

/*
 * Check the n bytes of s (borrowed, not NUL-terminated) and, when out is
 * not NULL, write the canonical form into out (caller's, outsz bytes):
 * lower case, without the trailing dot, NUL-terminated.  Returns the
 * length of the canonical form, or -1 when s is not a host name or does
 * not fit in out.
 */
int kap_host_name_norm(const char *s, size_t n, char *out, size_t outsz);

/*
 * Non-zero when the NUL-terminated names a and b (borrowed) are the same
 * host: ASCII case-insensitive, ignoring one trailing dot on either side.
 * No validation: two equal invalid strings compare equal.
 */
int kap_host_eq(const char *a, const char *b);

#endif /* KAP_ADDR_H */
