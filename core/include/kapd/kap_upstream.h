/*
 * kap_upstream.h -- reaching an origin: resolve, ask, dial, keep idle.
 *
 * Every module that opens a connection to a host the agent named does it
 * here, so that no module can skip a step:
 *
 *   1. the name is resolved by the generation's resolver (kap_resolver.h);
 *   2. EVERY resolved address is asked through the policy chain as a
 *      KAP_REQ_ADDR question (subject the address, attribute "host" the
 *      name) before any connect attempt; one refused address refuses the
 *      dial (a name that resolves into the deny set is a rebinding
 *      attempt, not a reason to try the next address);
 *   3. the allowed addresses are dialled happy-eyeballs style: one attempt
 *      at a time, the next one started after 250 ms without an answer or
 *      at once when one fails; the first connection wins;
 *   4. a connection a module is done with can be kept idle for the next
 *      request to the same host:port (kap_upstream_idle_put); taking it
 *      (kap_upstream_idle_take) asks its address again, at once, so a
 *      policy change since the dial is obeyed, and refuses a connection
 *      that has bytes or EOF waiting (a response desync).
 *
 * Call from the event loop thread only.
 */
#ifndef KAP_UPSTREAM_H
#define KAP_UPSTREAM_H

#include <sys/socket.h>

struct kap_gen;
struct kap_conn;
struct kap_req;
struct kap_pool;

/* One dial in progress.  Opaque; owned by the core. */
struct kap_upstream;

/* What to dial.  Read during kap_upstream_dial() only: strings are copied. */
struct kap_upstream_target {
    struct kap_gen  *gen;        /* whose resolver and policy (the current
                                    generation, for a request decided now) */
    const char      *host;       /* name or IP literal */
    unsigned         port;       /* 1..65535 */
    int              want_v6;    /* ask AAAA too */
    /* the address questions, as the asking module's own requests */
    const char      *asked_by;   /* module name; static string */
    struct kap_conn *conn;       /* the client connection, or NULL; must
                                    outlive the dial */
    const char      *client;     /* peer text, or NULL */
    const char      *detail;     /* e.g. the method, or NULL */
    struct kap_pool *pool;       /* for the questions asked at once
                                    (idle_take, addr_allowed): a pool of
                                    the caller's that outlives the call,
                                    or NULL for a temporary one */
};

/* How a dial ended.  Borrowed for the callback only. */
struct kap_upstream_result {
    int                    rc;     /* KAP_OK: connected; KAP_DENY: an
                                      address was refused; KAP_ERROR: not
                                      resolved, or no attempt connected */
    int                    fd;     /* KAP_OK: the connected socket
                                      (non-blocking, close-on-exec,
                                      TCP_NODELAY); the callee's now */
    const struct sockaddr *sa;     /* KAP_OK: the address dialled */
    int                    status; /* a fitting HTTP status on failure: 403
                                      (refused), 502, 504 (resolver timeout) */
    const char            *reason; /* on failure: why, for people */
    int                    connecting; /* KAP_ERROR: 1 when the name resolved
                                      and was allowed, but no attempt
                                      connected (an origin failure); 0
                                      when it did not resolve */
    const struct kap_req  *req;    /* KAP_DENY: the refused address question
                                      (its subject, reason, decided_by) */
    const struct sockaddr_storage *addrs; /* kap_upstream_resolve(), KAP_OK:
                                      every address, each allowed, port
                                      set, IPv4 first */
    size_t                 naddrs;
};

typedef void (*kap_upstream_fn)(void *data,
                                const struct kap_upstream_result *res);

/*
 * Start resolving, asking and dialling t->host:t->port.  cb is called
 * exactly once, later, from the loop (never before this returns), unless
 * kap_upstream_cancel() was called first.  Returns NULL on an immediate
 * failure (no resolver, bad name, out of memory): then cb is never
 * called.  There is no timeout of its own beyond the resolver's: the
 * caller bounds the whole dial with its own timer and cancels.
 */
struct kap_upstream *kap_upstream_dial(const struct kap_upstream_target *t,
                                       kap_upstream_fn cb, void *data);

/*
 * Steps 1 and 2 only, for a module whose client library dials itself
 * (kap_curl pins libcurl to the result): resolve t->host and ask every
 * address; cb gets KAP_OK with res->addrs (all of them allowed), or
 * KAP_DENY / KAP_ERROR as a dial would.  Same rules as kap_upstream_dial().
 */
struct kap_upstream *kap_upstream_resolve(const struct kap_upstream_target *t,
                                          kap_upstream_fn cb, void *data);

/* Stop a dial: no callback, every attempt closed, a waiting question
   cancelled.  u is invalid afterwards. */
void kap_upstream_cancel(struct kap_upstream *u);

/*
 * Keep a connection the caller is done with (a complete response read,
 * nothing else in flight) for the next request to host:port, for at most
 * keepalive seconds.  Takes fd in every case: closes it instead when
 * keepalive <= 0, when there is more than a few per destination or in
 * total, or when it has bytes or EOF waiting.
 */
void kap_upstream_idle_put(const char *host, unsigned port, int fd,
                           const struct sockaddr *sa, double keepalive);

/*
 * Take an idle connection to t->host:t->port whose address the policy
 * still allows (asked at once, as in a dial, in gen t->gen) and which has
 * nothing waiting; connections that fail either test are closed.  Returns
 * the fd (the caller's now) and its address in *sa, or -1.
 */
int kap_upstream_idle_take(const struct kap_upstream_target *t,
                           struct sockaddr_storage *sa);

/*
 * Ask, at once, whether a connection to sa (already open, for host
 * t->host) may carry a request now.  A waiting policy hook counts as a
 * refusal here.  For connections a module keeps itself (one held per
 * keep-alive client).
 */
int kap_upstream_addr_allowed(const struct kap_upstream_target *t,
                              const struct sockaddr *sa);

/* Whether an idle connection has bytes or EOF waiting (then it must not
   carry the next request). */
int kap_upstream_unclean(int fd);

/* Idle connections kept now. */
unsigned kap_upstream_idle_count(void);

/* Close every idle connection (at shutdown). */
void kap_upstream_idle_close_all(void);

#endif /* KAP_UPSTREAM_H */
