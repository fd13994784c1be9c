/*
 * kapd_clients.h -- the client allowlist of IP listeners (kapd.clients,
 * kapd.listener_clients): which peers a TCP listener accepts and a UDP
 * listener answers.  Core-internal; the check runs in the listener layer
 * (kapd_conn.c, kapd_listen.c) before any module sees the peer.
 */
#ifndef KAPD_CLIENTS_H
#define KAPD_CLIENTS_H

#include "kapd.h"

#include <sys/socket.h>

struct kap_listen;

/* One network: family AF_INET/AF_INET6, address bytes, prefix length. */
struct kapd_client_net {
    int           family;
    unsigned      plen;
    unsigned char a[16];
};

/* An allowlist, in the generation's pool. */
struct kapd_clients {
    struct kapd_client_net *nets;
    size_t                  n;
    const char             *file;    /* where it was configured */
    int                     line;
};

/* One kapd.listener_clients entry, in the generation's pool. */
struct kapd_clients_rule {
    const char          *listen;     /* listen address as written */
    struct kapd_clients  acl;
    int                  used;       /* matched a declared listener */
};

/*
 * Read kapd.clients and kapd.listener_clients from the kapd group g into
 * gen->core (pool memory).  KAP_OK, or KAP_ERROR with err at file:line.
 */
int kapd_clients_parse(struct kap_gen *gen, const config_setting_t *g,
                       struct kap_err *err);

/*
 * Whether sa (borrowed) may use a listener guarded by c: 1 when c is NULL
 * (no allowlist) or an IPv4/IPv6 peer -- a v4-mapped one as its IPv4
 * address -- lies in one of its networks; 0 otherwise.
 */
int kapd_clients_ok(const struct kapd_clients *c, const struct sockaddr *sa);

/*
 * Record that ls refused (TCP) or dropped (UDP) a peer: one audit event
 * "client_refused" per peer, at most KAPD_CLIENTS_AUDIT_MAX per listener
 * per KAPD_CLIENTS_AUDIT_WINDOW seconds; the rest are counted and the
 * next record carries the count as "suppressed".
 */
void kapd_clients_refused(struct kap_listen *ls, const struct sockaddr *sa,
                          socklen_t len);

/*
 * kapd -T: c's networks (address/prefix, each after a space) and where
 * it was configured, on stdout; " anyone" for NULL.
 */
void kapd_clients_print(const struct kapd_clients *c);

#define KAPD_CLIENTS_AUDIT_MAX    10
#define KAPD_CLIENTS_AUDIT_WINDOW 10.0

#endif /* KAPD_CLIENTS_H */
