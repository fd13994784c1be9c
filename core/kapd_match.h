/*
 * kapd_match.h -- the domain and address matcher behind the `network`
 * allowlist (core-internal).
 *
 * A matcher is built once per configuration generation from the allow
 * and deny rule lists and is read-only afterwards.  Rules:
 *   github.com              exact name
 *   *.github.com            any subdomain at any depth, not github.com
 *   github.com:22           with ports (":22,2222"); no port = the
 *                           default ports (80, 443 unless changed) for
 *                           an allow rule, every port for a deny rule
 *   10.1.2.3  10.0.0.0/8    IPv4 literal or CIDR (optionally :ports)
 *   [2001:db8::1]  2001:db8::/32  [2001:db8::]/32:443   IPv6
 * Names are case-folded, one trailing dot is ignored, labels are ASCII
 * letters, digits, '-' and '_' (IDNs as xn-- A-labels).  A bare `*` (and
 * the CIDRs 0.0.0.0/0 and ::/0 as allow rules) are refused: an allowlist
 * that allows everything is not a sandbox; network.observe exists for
 * finding out what an agent needs.
 *
 * Lookup costs one hash probe per label of the name (a hash per suffix,
 * hashed right to left in one pass), independent of the number of rules;
 * an address costs one probe per distinct prefix length in the rules.
 * Deny wins over allow; with no allow rule everything is denied.
 */
#ifndef KAPD_MATCH_H
#define KAPD_MATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct kap_pool;
struct kap_err;

#define KAPD_MATCH_MAX_PORTS 16   /* ports listed on one rule */

/* One compiled rule.  Owned by the matcher's pool; read-only. */
struct kapd_match_rule {
    const char             *text;     /* as configured */
    const char             *file;     /* config file, or "" */
    int                     line;     /* config line, or 0 */
    unsigned                deny:1;   /* from the deny list */
    unsigned                wildcard:1;  /* "*.suffix" */
    unsigned                addr:1;   /* IP literal or CIDR */
    uint16_t                plen;     /* address rules: prefix length
                                         (32 or 128: a single address) */
    uint16_t                nports;   /* 0: default (allow) / all (deny) */
    uint16_t                ports[KAPD_MATCH_MAX_PORTS];
    struct kapd_match_rule *next;     /* same key, in order of addition */
};

/* Why a lookup decided as it did. */
enum kapd_match_why {
    KAPD_MATCH_ALLOWED = 0,  /* an allow rule covers name and port */
    KAPD_MATCH_DENIED,       /* a deny rule covers it */
    KAPD_MATCH_NOT_LISTED,   /* no allow rule covers the name */
    KAPD_MATCH_PORT,         /* an allow rule covers the name, not the port */
    KAPD_MATCH_INVALID_NAME, /* not a valid name (non-ASCII, empty label...) */
    KAPD_MATCH_INVALID_ADDR  /* looks like an address literal but is not */
};

struct kapd_match_result {
    int                           verdict; /* KAP_ALLOW or KAP_DENY */
    enum kapd_match_why           why;
    const struct kapd_match_rule *rule;    /* deciding rule, or NULL */
};

struct kapd_match;

/*
 * New empty matcher (denies everything) allocated from pool and freed
 * with it.  NULL on out of memory.
 */
struct kapd_match *kapd_match_create(struct kap_pool *pool);

/*
 * The ports an allow rule without ports permits (default 80, 443).  ports
 * is copied; n <= KAPD_MATCH_MAX_PORTS.  KAP_OK or KAP_ERROR.
 */
int kapd_match_set_default_ports(struct kapd_match *m, const uint16_t *ports,
                                 size_t n);

/*
 * Compile one rule into m.  deny: non-zero for the deny list.  text, file
 * are copied (file may be NULL).  Returns KAP_OK, or KAP_ERROR with err
 * set (message, file, line) for a bad rule or out of memory.
 */
int kapd_match_add(struct kapd_match *m, int deny, const char *text,
                   const char *file, int line, struct kap_err *err);

/* Parse an address rule ("10.0.0.0/8", "[::1]", "fe80::/10") without
 * ports into family/bytes/prefix length.  KAP_OK or KAP_ERROR with err. */
int kapd_match_parse_cidr(const char *text, struct sockaddr_storage *ss,
                          unsigned *plen, const char *file, int line,
                          struct kap_err *err);

/*
 * Decide subject (a host name, DNS name or IP literal in any spelling)
 * on port (0: any port, for DNS questions).  Fills *res and returns its
 * verdict (KAP_ALLOW or KAP_DENY).  Pure; callable from any callback.
 */
int kapd_match_lookup(const struct kapd_match *m, const char *subject,
                      uint16_t port, struct kapd_match_result *res);

/* Same for an address (AF_INET or AF_INET6; the port in sa is ignored). */
int kapd_match_lookup_addr(const struct kapd_match *m,
                           const struct sockaddr *sa, uint16_t port,
                           struct kapd_match_result *res);

/*
 * Text for the audit reason: `allow "*.github.com" (kap.conf:12)`,
 * `deny "gist.github.com" (kap.conf:14)`, `not in network.allow`,
 * `port 8443 not allowed for "github.com" (kap.conf:12)`,
 * `invalid name`.  Writes at most len bytes (NUL-terminated) into buf and
 * returns buf.
 */
char *kapd_match_reason(const struct kapd_match_result *res, uint16_t port,
                        char *buf, size_t len);

/*
 * Make room for n more rules at once (optional: saves rehashing while a
 * long list is added).  KAP_OK or KAP_ERROR (out of memory).
 */
int kapd_match_reserve(struct kapd_match *m, size_t n);

/* Number of rules compiled into m. */
size_t kapd_match_count(const struct kapd_match *m);

#endif /* KAPD_MATCH_H */
