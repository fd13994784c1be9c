/*
 * kap_http_connect.h -- what the files of the http_connect module share:
 * its configuration, the connection state (struct hc), and the functions
 * one file calls in another.  Private to the module; nothing here is ABI.
 *
 * The files, in request order:
 *   kap_http_connect_module.c    descriptor, configuration, accept, request
 *                                heads, policy, the pump, timers, cleanup
 *   kap_http_connect_upstream.c  resolve, address questions, dial, idle pool
 *   kap_http_connect_tunnel.c    CONNECT: first bytes, splice relay
 *   kap_http_connect_forward.c   plain HTTP forwarding
 *   kap_http_connect_respond.c   local answers (the core writes their
 *                                heads and does the lingering close)
 *   kap_http_connect_buf.c       the byte buffer, free lists
 *   kap_http_connect_first.c     ClientHello / first-bytes classifier
 */
#ifndef KAP_HTTP_CONNECT_H
#define KAP_HTTP_CONNECT_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <kapd/kap_core.h>
#include <kapd/kap_addr.h>
#include <kapd/kap_http.h>
#include <kapd/kap_http_server.h>
#include <kapd/kap_resolver.h>
#include <kapd/kap_upstream.h>

#include "kap_http_connect_first.h"

#define HC_NAME          "http_connect"
#define HC_IOBUF         16384     /* read size / forward buffer high-water */
#define HC_SPLICE_MAX    262144    /* bytes moved per splice(2) */

enum { SNI_UNSET = -1, SNI_REQUIRE = 0, SNI_IF_PRESENT = 1 };

struct hc_conf {
    const char **listen;
    int          sni;
    double       connect_timeout;
    double       idle_timeout;
    double       tunnel_timeout;     /* 0: no total limit */
    double       handshake_timeout;
    double       header_timeout;
    long long    max_connections;
    long long    max_per_client;
    long long    max_header_size;
    double       upstream_keepalive; /* idle seconds kept; 0: off */
};

enum hc_state {
    S_HEAD = 0, S_POLICY, S_RESOLVE, S_FIRST, S_TUNNEL,
    S_FORWARD, S_RESPOND
};

/* one direction of a tunnel */
struct hc_dir {
    struct hc *hc;
    int        from, to;
    int        pipe[2];        /* -1 when no bytes are in flight */
    size_t     inpipe;
    ev_io     *rd, *wr;        /* hc's watchers of from (read), to (write) */
    char      *buf;            /* read/write fallback, while in flight */
    size_t     boff, blen, bcap;
    int        eof;            /* source hit EOF */
    int        shut;           /* shutdown(to, SHUT_WR) done */
    int        nosplice;
    int        wait_ready;     /* next read only on readiness (just drained) */
    uint64_t   bytes;
};

/* an IPv4 or IPv6 socket address, without sockaddr_storage's padding */
union hc_sa {
    struct sockaddr     sa;
    struct sockaddr_in  in;
    struct sockaddr_in6 in6;
};


struct hc {
    struct kap_conn      *c;
    struct hc_conf       *conf;
    int                   state;
    int                   closing;
    ev_io                 crd, cwr, urd, uwr;
    ev_timer              timer;
    double                deadline_total;  /* tunnel: absolute, or 0 */
    double                last_active;
    double                idle;            /* current idle limit */
    int                   ufd;
    union hc_sa           usa;              /* the address dialled */
    int                   kfd;              /* upstream held between requests */
    char                  kkey[48];         /* its host, "" if none */
    uint16_t              kport;            /* and port */
    struct kap_buf        cin, cout, uin, uout;
    struct kap_http_req  *req;              /* heap while parsing */
    struct kap_http_resp *resp;             /* heap while forwarding */
    struct kap_req       *preq;             /* policy question */
    struct kap_pool      *rpool;            /* the question's own pool */
    struct kap_upstream  *dialer;           /* resolving, asking, dialling */

    /* the current request */
    char                  host[KAP_HTTP_HOST_MAX + 1];
    const char *subject; /* host, lit or "": policy, audit */
    char                  lit[KAP_ADDR_TEXT_MAX]; /* an IP literal, canonical */
    uint16_t              port;
    int                   is_connect;
    int                   literal;
    char                  method[24];
    int                   client_minor;
    int                   client_ka;
    int                   head_only;

    /* forward: request body and response progress */
    int                   q_body;           /* KAP_HTTP_BODY_* */
    uint64_t              q_left;
    struct kap_http_chunked qch;
    int                   q_done;
    int                   r_body;
    uint64_t              r_left;
    struct kap_http_chunked rch;
    int                   r_dechunk;        /* 1.0 client, chunked resp */
    int                   r_started;        /* bytes sent to the client */
    int                   r_done;
    int                   upstream_ka;
    int                   c_eof, u_eof;

    /* tunnel */
    struct hc_dir         up, down;
    double                tstart;
    char                 *first;            /* client-first bytes */
    size_t                first_len, first_cap;
    int                   first_checked;
    int                   first_ok;         /* the first bytes were allowed */
    struct kap_req       *fq;               /* first-bytes question, waiting */
    int                   respond_close;    /* RESPOND: close when flushed */
    int                   tunnel_audited;
    int                   depth;            /* callbacks on the stack */
    unsigned              nreq;             /* request heads parsed */
    int                   reused;           /* upstream from the idle pool */
    int                   head_skipped;     /* head consumed from cin */
};

/*
 * Every loop callback brackets its work with ENTER/LEAVE:
 * kap_http_connect_close() only marks the connection while a callback is
 * on the stack, and the last LEAVE frees it, so no code ever touches a
 * freed connection.
 */
#define ENTER(hc) ((hc)->depth++)
#define LEAVE(hc)                                                          \
    do {                                                                   \
        if (--(hc)->depth == 0 && (hc)->closing)                           \
            kap_http_connect_final(hc);                                    \
    } while (0)

/* hc->closing: how the last LEAVE ends the connection (0: open) */
#define HC_CLOSING        1     /* kap_conn_close() */
#define HC_CLOSING_LINGER 2     /* kap_conn_linger(), the core's */
#define HC_CLOSING_CHECK  3     /* kap_conn_linger() if input is pending */

/*
 * How a connection is closed once its last response is flushed
 * (hc->respond_close; 0 keeps it alive):
 *   HC_CLOSE         close at once (a forwarded exchange ended cleanly)
 *   HC_CLOSE_CHECK   a local refusal: linger only if input is pending
 *   HC_CLOSE_LINGER  the client is still sending (an unread request
 *                    body): linger without looking
 */
#define HC_CLOSE        1
#define HC_CLOSE_CHECK  2
#define HC_CLOSE_LINGER 3

/* free lists (kap_http_connect_buf.c) */
enum { HC_CACHE_REQ, HC_CACHE_1K, HC_CACHE_2K, HC_NCACHES };

extern unsigned kap_http_connect_tunnels;   /* tunnels open now */

/*
 * Functions one file calls in another.  Every struct hc is the
 * connection's (kap_palloc'd from its pool, freed by
 * kap_http_connect_cleanup); none of these takes ownership of it.
 */

/* kap_http_connect_buf.c: the module's free lists, and struct kap_buf
   storage taken from them (an empty buffer starts with a cached 1 KiB
   block; buf_free gives a 1 KiB block back); the buffer owns its data.
   KAP_OK or KAP_ERROR (out of memory, or more than max bytes unread) */
void  *kap_http_connect_cache_get(int which);        /* HC_CACHE_*; heap */
void   kap_http_connect_cache_put(int which, void *p);   /* takes p */
void   kap_http_connect_sized_free(void *p, size_t cap);
void   kap_http_connect_caches_drain(void);
int    kap_http_connect_buf_reserve(struct kap_buf *b, size_t more,
                                    size_t max);
int    kap_http_connect_buf_add(struct kap_buf *b, const void *p, size_t n);
int    kap_http_connect_buf_str(struct kap_buf *b, const char *s);
void   kap_http_connect_buf_free(struct kap_buf *b);
void   kap_http_connect_buf_trim(struct kap_buf *b);
void   kap_http_connect_io_stop(ev_io *w);
void   kap_http_connect_up_watchers_drop(struct hc *hc);

/* kap_http_connect_module.c */
void   kap_http_connect_audit(struct hc *hc, const char *event,
                              const char *action, const char *reason,
                              const struct kap_audit_field *f, size_t nf);
struct kap_gen *kap_http_connect_policy_gen(const struct hc *hc);
/* a question of this module's kind, allocated from p (the caller's) */
struct kap_req *kap_http_connect_req_new(struct hc *hc, struct kap_pool *p,
                                         uint32_t kind, const char *subject);
void   kap_http_connect_refuse_audit(struct hc *hc, const char *reason);
void   kap_http_connect_rpool_release(struct hc *hc);
void   kap_http_connect_cleanup(void *data);
void   kap_http_connect_close(struct hc *hc);
void   kap_http_connect_close_as(struct hc *hc, int how);  /* HC_CLOSING* */
void   kap_http_connect_final(struct hc *hc);   /* hc is gone after it */
void   kap_http_connect_timer_set(struct hc *hc, double secs);
void   kap_http_connect_run(struct hc *hc);

/* kap_http_connect_upstream.c */
void   kap_http_connect_resolve(struct hc *hc);
void   kap_http_connect_dial_free(struct hc *hc);
int    kap_http_connect_take_pipelined(struct hc *hc);
void   kap_http_connect_pool_put(struct hc *hc, int fd);    /* takes fd */
int    kap_http_connect_held_put(struct hc *hc);
int    kap_http_connect_held_get(struct hc *hc);
int    kap_http_connect_pool_get(struct hc *hc);
void   kap_http_connect_usa_set(struct hc *hc, const struct sockaddr *sa);

/* kap_http_connect_tunnel.c */
int    kap_http_connect_first_check(struct hc *hc);
void   kap_http_connect_first_answer(struct kap_req *r, struct hc *hc);
void   kap_http_connect_first_client_read(struct hc *hc);
void   kap_http_connect_first_upstream_read(struct hc *hc);
void   kap_http_connect_deny_first_403(struct hc *hc);
void   kap_http_connect_tunnel_start(struct hc *hc);
void   kap_http_connect_tunnel_close_audit(struct hc *hc);
void   kap_http_connect_dir_free_pipe(struct hc_dir *d);
void   kap_http_connect_pipes_drain(void);

/* kap_http_connect_forward.c */
void   kap_http_connect_forward_begin(struct hc *hc);
int    kap_http_connect_fwd_request_body(struct hc *hc);
int    kap_http_connect_fwd_response(struct hc *hc);
void   kap_http_connect_fwd_finish(struct hc *hc);
int    kap_http_connect_fwd_retry(struct hc *hc);
int    kap_http_connect_read_into(int fd, struct kap_buf *b, size_t chunk,
                                  size_t max, int *eof, struct hc *hc);

/* kap_http_connect_respond.c: body is borrowed (copied into hc->cout) */
int    kap_http_connect_flush_buf(int fd, struct kap_buf *b, struct hc *hc);
void   kap_http_connect_respond(struct hc *hc, int status, const char *body,
                                int keep);
void   kap_http_connect_respond_error(struct hc *hc, int status,
                                      const char *why);
void   kap_http_connect_linger(struct hc *hc);

#endif /* KAP_HTTP_CONNECT_H */
