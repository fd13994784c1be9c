/*
 * kapd_listen_int.h -- what kapd_listen.c and kapd_conn.c share: the
 * private layout of struct kap_listen and the accept-side callbacks.
 * Nothing here is part of the module ABI.
 */
#ifndef KAPD_LISTEN_INT_H
#define KAPD_LISTEN_INT_H

#include "kapd.h"
#include "kapd_clients.h"

#include <sys/types.h>

#define KAPD_LISTEN_MAGIC 0x4b4c534eU  /* "KLSN" */

/*
 * A listening socket.  malloc'd, owned by the process-wide listener list
 * (kapd_listen.c) until closed; a listener retired by a reload is freed
 * when the generation it last served is destroyed, so kap_dgram_send()
 * on it stays memory-safe (it fails) while that generation lives.
 */
struct kap_listen {
    uint32_t                 magic;     /* KAPD_LISTEN_MAGIC */
    enum kap_listen_type     type;
    int                      fd;        /* -1 once closed */
    int                      family;    /* AF_INET, AF_INET6 or AF_UNIX */
    int                      port;      /* bound port, 0 for unix */
    int                      active;    /* should be watching */
    int                      paused;    /* accept back-off (EMFILE) */
    int                      emfile_logged;
    int                      keep;      /* scratch: kept by an activation */
    char                    *addr;      /* as configured (heap) */
    char                    *canon;     /* canonical address (heap) */
    char                    *module;    /* owning module name (heap) */
    char                    *unix_path; /* heap; NULL unless AF_UNIX */
    char                    *unix_dir;  /* heap: its directory */
    unsigned long            foreign;   /* datagrams from peers outside it */
    double                   foreign_logged;
    const struct kapd_clients *clients; /* allowlist (gen pool) or NULL */
    unsigned long            refused;   /* peers refused by it, total */
    unsigned long            refused_quiet; /* refused, not yet audited */
    unsigned                 refused_audited; /* in this window */
    double                   refused_window;  /* window start */
    dev_t                    unix_dev;  /* to unlink only our own file */
    ino_t                    unix_ino;
    struct kap_gen          *gen;       /* generation it dispatches to */
    const struct kap_module *mod;       /* module in gen */
    void                    *conf;      /* module's conf in gen */
    ev_io                    io;
    ev_timer                 retry;     /* resumes accepting after EMFILE */
    struct kap_listen       *next;      /* process list */
};

/* kapd_conn.c: the EV_READ callback of stream listeners. */
void kapd_conn_accept_cb(struct ev_loop *loop, ev_io *w, int revents);
/* kapd_conn.c: the back-off timer callback of stream listeners. */
void kapd_conn_retry_cb(struct ev_loop *loop, ev_timer *w, int revents);

/*
 * Format a peer address: "127.0.0.1:4567", "[::1]:4567" (v4-mapped IPv6
 * shown as IPv4), "unix".  Always NUL-terminates buf (size > 0).
 */
void kapd_sockaddr_text(const struct sockaddr *sa, socklen_t len,
                        char *buf, size_t size);

/*
 * Whether a datagram peer of a unix listener whose socket lies in dir may
 * be answered: its address -- a path, or an abstract name read as one --
 * lies under dir, with no empty, "." or ".." component.  Anything else
 * (another directory, an unnamed socket) would make kapd send to a socket
 * a client merely named.  1 or 0.
 */
int kapd_unix_peer_ok(const char *dir, const struct sockaddr *sa,
                      socklen_t len);

#endif /* KAPD_LISTEN_INT_H */
