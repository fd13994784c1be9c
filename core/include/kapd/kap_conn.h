/*
 * kap_conn.h -- listeners, stream connections and datagrams.
 *
 * The core owns listening sockets and accept(2); modules own protocol
 * state.  A module declares its listeners while parsing its config with
 * kap_listen_add(); the core binds new addresses when the generation is
 * activated and hands existing sockets over unchanged (no rebind) when a
 * reload keeps an address.
 */
#ifndef KAP_CONN_H
#define KAP_CONN_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <libconfig.h>

struct kap_gen;
struct kap_pool;
struct kap_err;
struct kap_module;

enum kap_listen_type {
    KAP_LISTEN_TCP = 0,   /* stream: TCP, or unix:/path */
    KAP_LISTEN_UDP        /* datagram: UDP, or unix:/path (SOCK_DGRAM) */
};

/*
 * Declare a listener for module name `module` in generation gen.
 * addr: "127.0.0.1:3128", "[::1]:53", "*:3128" / ":3128" (all IPv4 and
 * IPv6), "localhost:3128", or "unix:/path" (relative to the prefix; an old
 * socket file is replaced, mode 0666 unless kapd.unix_mode says otherwise).
 * where: the setting, for file:line in errors (may be NULL).
 * Returns KAP_OK or KAP_ERROR (bad address, duplicate; err set).
 * Nothing is bound here: conf_parse stays pure.
 */
int kap_listen_add(struct kap_gen *gen, const char *module,
                   enum kap_listen_type type, const char *addr,
                   const config_setting_t *where, struct kap_err *err);

/* A listening socket.  Owned by the core; opaque except for these. */
struct kap_listen;
/* The address as configured ("127.0.0.1:53").  Borrowed. */
const char *kap_listen_addr(const struct kap_listen *ls);
/* The bound port (0 for unix sockets). */
int kap_listen_port(const struct kap_listen *ls);

/* One received datagram.  Borrowed for the datagram callback only. */
struct kap_dgram {
    const unsigned char     *data;
    size_t                   len;
    struct sockaddr_storage  peer;
    socklen_t                peerlen;
    const char              *peer_text;   /* "127.0.0.1:5353" */
};

/*
 * Send a datagram from listener ls to peer.  Never blocks: when the
 * socket buffer is full the datagram is dropped (as the network might).
 * ls stays valid while any generation holding it is alive: keep a
 * reference to the generation across asynchronous work.
 * Returns KAP_OK or KAP_ERROR.
 */
int kap_dgram_send(struct kap_listen *ls, const struct sockaddr *peer,
                   socklen_t peerlen, const void *buf, size_t len);

#define KAP_CONN_MAGIC 0x4b434f4eU  /* "KCON" */

/*
 * A stream connection accepted by the core.  The core allocates it (in
 * its own pool), sets every field below, holds a reference to gen, and
 * passes it to the module's accept callback.  The module owns the
 * protocol from then on and must end it with kap_conn_close().
 */
struct kap_conn {
    uint32_t                 magic;        /* KAP_CONN_MAGIC */
    uint64_t                 id;           /* unique in this process, > 0 */
    int                      fd;           /* nonblocking, close-on-exec;
                                              TCP: TCP_NODELAY is set */
    struct kap_pool         *pool;         /* freed by kap_conn_close() */
    struct kap_gen          *gen;          /* generation at accept time */
    const struct kap_module *module;       /* owner of the listener */
    void                    *conf;         /* module's conf in gen */
    struct kap_listen       *listen;       /* where it was accepted */
    struct sockaddr_storage  peer;
    socklen_t                peerlen;
    char                     peer_text[64];/* "127.0.0.1:4567", "unix" */
    double                   start;        /* kap_now() at accept */
    void                    *data;         /* module private */
    /* the peer process of a unix-socket connection (SO_PEERCRED at
       accept: the credentials it had when it connected); peer_cred is 0
       and the ids are -1 for TCP or when the kernel gave none */
    int                      peer_cred;
    uid_t                    peer_uid;
    gid_t                    peer_gid;
    pid_t                    peer_pid;
};

/*
 * Close c: run its pool cleanups (reverse order), close the fd (unless
 * the module took it with kap_conn_take_fd()), drop the generation
 * reference and free c.  c is invalid afterwards.  The listener's close
 * callback is NOT called.
 */
void kap_conn_close(struct kap_conn *c);
/* Take ownership of the fd away from c: kap_conn_close() won't close it. */
int  kap_conn_take_fd(struct kap_conn *c);
/* Number of open connections on all listeners of module (all gens). */
unsigned kap_conn_count(const char *module);
/* Open connections from the same client address (IP only) for module. */
unsigned kap_conn_count_peer(const char *module,
                             const struct sockaddr_storage *peer);

#endif /* KAP_CONN_H */
