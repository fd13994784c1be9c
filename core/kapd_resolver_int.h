/*
 * kapd_resolver_int.h -- what the resolver's two files share: the
 * resolver module and its libunbound glue (kapd_resolver.c) and the
 * forward fast path for raw questions (kapd_resolver_fwd.c).
 */
#ifndef KAPD_RESOLVER_INT_H
#define KAPD_RESOLVER_INT_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unbound.h>
#include <unbound-event.h>

#include <kapd/kap_resolver.h>

#define RESOLVER_NAME          "resolver"
#define RESOLVER_DEF_TIMEOUT   5.0
#define RESOLVER_DEF_RESOLV    "/etc/resolv.conf"
#define RESOLVER_DEF_TA        "/usr/share/dns/root.key"
#define RESOLVER_MAX_UPSTREAMS 16
#define FWD_SOCKS              8      /* fast path: UDP sockets */
#define FWD_BUCKETS            4096   /* fast path: (socket, ID) table */
#define FWD_TRY                1.0    /* s before libunbound takes over */
#define FWD_BATCH              64     /* replies read per wakeup */
#define FWD_RBATCH             16     /* replies per recvmmsg() */
#define FWD_EDNS               1232
#define FWD_MISSES             8      /* unanswered in a row: pause */
#define FWD_PAUSE              10.0   /* s without the fast path then */

struct kap_resolve;
struct resolver_conf;

/* One socket of the fast path, connected to the upstream. */
struct fwd_sock {
    int                   fd;
    ev_io                 io;
    struct resolver_conf *rc;
};

/* The ub_event_base of one context: libev's loop. */
struct kub_base {
    struct ub_event_base  ub;         /* magic, vmt: first */
    struct resolver_conf *rc;
};

/* One libunbound event (socket and/or timeout) as libev watchers. */
struct kub_event {
    struct ub_event       ub;         /* magic, vmt: first */
    struct resolver_conf *rc;
    ev_io                 io;
    ev_timer              tm;
    int                   fd;
    short                 bits;       /* UB_EV_* */
    double                timeout;    /* < 0: none */
    void                (*cb)(int, short, void *);
    void                 *arg;
};

/* The resolver's conf and, once init() ran, its per-generation state. */
struct resolver_conf {
    const char        **upstream;     /* "addr@port" forms, NULL-terminated */
    size_t              nupstream;
    const char         *resolv_conf;  /* path or NULL (unset) */
    int                 recursion;    /* -1 unset */
    const char         *trust_anchor; /* path or NULL (unset) */
    int                 ta_explicit;  /* trust_anchor given in the file */
    double              timeout;      /* < 0 unset */

    /* runtime (init .. fini) */
    struct kap_gen     *gen;
    struct ub_ctx      *ctx;
    struct kub_base     base;
    unsigned            pending;
    struct kap_resolve *queries;      /* doubly linked list of pending */
    unsigned long long  total;
    unsigned long long  timeouts;

    /* fast path for raw questions in forward mode (see resolver_fwd_*) */
    int                 fwd_on;
    int                 fwd_init;     /* fwd[].fd set (to -1 or a socket) */
    struct sockaddr_storage fwd_addr;
    socklen_t           fwd_addrlen;
    struct fwd_sock     fwd[FWD_SOCKS];
    unsigned            fwd_rr;
    struct kap_resolve *fwd_tab[FWD_BUCKETS];
    unsigned long long  fwd_fast, fwd_handover;
    unsigned            fwd_misses;   /* unanswered in a row */
    double              fwd_paused;   /* until (kap_now) */
};

enum { Q_ADDRS = 1, Q_RAW = 2 };

/* One libunbound sub-query of a kap_resolve. */
struct resolve_sub {
    struct kap_resolve *q;
    int                 rrtype;
    int                 async_id;
    int                 active;       /* ub_resolve_event pending */
    int                 done;
    int                 failed;       /* error / SERVFAIL / bogus */
    const char         *errmsg;
    /* an answer that came inside ub_resolve_event(), delivered later */
    int                 deferred;
    int                 d_rcode, d_sec;
    unsigned char      *d_pkt;        /* heap */
    size_t              d_len;
    size_t              naddrs;
    struct sockaddr_storage addrs[KAP_RESOLVE_MAX_ADDRS];
};

struct kap_resolve {
    struct resolver_conf *rc;
    struct kap_gen       *gen;        /* referenced */
    int                   type;       /* Q_ADDRS / Q_RAW */
    int                   literal;    /* addrs of an IP literal */
    int                   starting;   /* inside ub_resolve_event() */
    int                   has_deferred;
    double                timeout;
    ev_timer              timer;      /* deadline, or 0 for a literal */
    struct resolve_sub    sub[2];     /* [0] A / raw, [1] AAAA */
    int                   nsub;
    kap_resolve_addr_fn   addr_cb;
    kap_resolve_raw_fn    raw_cb;
    void                 *data;
    struct kap_resolve   *prev, *next;
    /* fast path: asked of the upstream directly, libunbound after FWD_TRY */
    int                   fwd;        /* in fwd_tab */
    unsigned              fwd_sock;
    uint16_t              fwd_id;
    int                   rrtype, rrclass;
    ev_timer              fwd_timer;
    struct kap_resolve   *fwd_next;   /* bucket chain */
    size_t                qwire_len;
    unsigned char         qwire[256]; /* question name, wire form */
    char                  name[256];  /* as asked, for libunbound */
};


/* kapd_resolver.c, for the fast path */
struct kap_gen *kapd_resolver_query_release(struct kap_resolve *q);
void kapd_resolver_gen_unref(struct kap_gen *gen);
int  kapd_resolver_sub_start(struct kap_resolve *q, int i, const char *name,
                             int rrtype, int rrclass);

/*
 * kapd_resolver_fwd.c: the forward fast path.  open/close with the
 * generation's context (init, fini); start asks a raw question on it
 * (KAP_OK: taken, or KAP_DECLINED: ask libunbound); remove takes a query
 * out of the fast path's table (cancel, release).
 */
void kapd_resolver_fwd_open(struct resolver_conf *c);
void kapd_resolver_fwd_close(struct resolver_conf *c);
void kapd_resolver_fwd_remove(struct kap_resolve *q);
int  kapd_resolver_fwd_start(struct kap_resolve *q, const char *name,
                             int rrtype, int rrclass);

#endif /* KAPD_RESOLVER_INT_H */
